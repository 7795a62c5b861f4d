//! Any bytes as log lines to every parser (Postfix, Squid, Log4j and the
//! regex parser with conf.d's example): read or skipped, never a panic;
//! the metrics taken are finite numbers.
#![no_main]

use carbyne::parsers::ParserConfig;
use libfuzzer_sys::fuzz_target;

const CONFIGS: [&str; 4] = [
    "parser = \"postfix\"\n",
    "parser = \"squid\"\n",
    "parser = \"log4j\"\n",
    "parser = \"regex\"\nregex = '\"(?P<method>[A-Z]+) [^\"]*\" (?P<status>\\d{3}) (?P<bytes>\\d+) .* (?P<request_time>[0-9.]+)$'\nmetrics = [\n  { name = \"http.{status}\", kind = \"counter\" },\n  { name = \"bytes\", kind = \"counter\", value = \"bytes\" },\n  { name = \"request_time.{method}\", kind = \"timer\", value = \"request_time\" },\n]\n",
];

fuzz_target!(|data: &[u8]| {
    for cfg in CONFIGS {
        let c: ParserConfig = toml::from_str(cfg).expect("config");
        let mut p = c.build("logs.fuzz").expect("parser");
        for line in data.split(|b| *b == b'\n') {
            p.parse_line(line);
        }
        let mut out = Vec::new();
        p.take_metrics(60.0, &mut out);
        for (name, v) in &out {
            assert!(v.is_finite(), "{name} {v}");
        }
    }
});
