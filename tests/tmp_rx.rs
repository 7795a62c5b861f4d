use carbyne::parsers::{Parser, ParserConfig};
const NGINX: &str = r#"
parser = "regex"
regex = '^\S+ \S+ \S+ \[[^\]]+\] "(?P<method>[A-Z]+) [^"]*" (?P<status>\d{3}) (?P<bytes>\d+) (?P<rt>[0-9.]+)$'
metrics = [
    { name = "http.{status}", kind = "counter" },
    { name = "bytes", kind = "counter", value = "bytes" },
    { name = "last_bytes", kind = "gauge", value = "bytes" },
    { name = "request_time.{method}", kind = "timer", value = "rt" },
]
"#;
#[test]
fn tmp_rx() {
    let src: Vec<Vec<u8>> = std::fs::read("tests/fixtures/logs/nginx.log")
        .unwrap()
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| l.to_vec())
        .collect();
    let n: usize = std::env::var("N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let cfg: ParserConfig = toml::from_str(NGINX).unwrap();
    let mut p: Box<dyn Parser> = cfg.build("bench").unwrap();
    let t = std::time::Instant::now();
    let mut m = 0;
    for i in 0..n {
        m += p.parse_line(&src[i % src.len()]) as usize;
    }
    let dt = t.elapsed().as_secs_f64();
    eprintln!("matched {m} of {n}: {:.2} M lines/s", n as f64 / dt / 1e6);
}
