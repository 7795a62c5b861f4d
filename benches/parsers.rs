//! Lines per second for each log parser on a 1 000 000-line file (reading
//! it through the tailer included), beside `wc -l` on the same file as the
//! floor of reading it, and — for postfix — a Python loop applying
//! Logster's own regex as the upstream peer. One core each.
//!
//! Run: `cargo bench --bench parsers`

mod common;

use carbyne::parsers::{Parser, ParserConfig};
use carbyne::tail::{read_lines, LineStats};
use std::io::Write;
use std::path::Path;
use std::process::Command;
use std::time::Instant;

/// `cargo bench` passes `--bench`; under `cargo test` this is a quick smoke run.
fn fixture_lines(name: &str) -> Vec<Vec<u8>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/logs")
        .join(name);
    std::fs::read(path)
        .expect("fixture")
        .split(|b| *b == b'\n')
        // The fixtures' over-long line is for the tailer's tests, not a
        // realistic share of a log.
        .filter(|l| !l.is_empty() && l.len() < 4096)
        .map(|l| l.to_vec())
        .collect()
}

/// A file of `LINES` lines cycling through a fixture's (realistic mix of
/// matching and other lines).
fn make_file(dir: &Path, fixture: &str, lines: usize) -> std::path::PathBuf {
    let src = fixture_lines(fixture);
    let path = dir.join(format!("{fixture}.1m"));
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).expect("create"));
    for i in 0..lines {
        f.write_all(&src[i % src.len()]).expect("write");
        f.write_all(b"\n").expect("write");
    }
    f.flush().expect("flush");
    path
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn parse_file(path: &Path, cfg: &ParserConfig, lines: usize, runs: usize) -> f64 {
    let mut times = Vec::new();
    for _ in 0..runs {
        let mut p: Box<dyn Parser> = cfg.build("bench").expect("parser");
        let f = std::fs::File::open(path).expect("open");
        let mut st = LineStats::default();
        let mut matched = 0u64;
        let t = Instant::now();
        read_lines(&f, 0, 1 << 16, &mut st, &mut |l| {
            matched += p.parse_line(l) as u64
        })
        .expect("read");
        times.push(t.elapsed().as_secs_f64());
        assert_eq!(st.read as usize, lines);
        assert!(matched > 0);
    }
    lines as f64 / median(times)
}

fn timed(cmd: &mut Command, lines: usize, runs: usize) -> Option<f64> {
    let mut times = Vec::new();
    for _ in 0..runs {
        let t = Instant::now();
        let ok = cmd.output().ok()?.status.success();
        if !ok {
            return None;
        }
        times.push(t.elapsed().as_secs_f64());
    }
    Some(lines as f64 / median(times))
}

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

const LOGSTER_POSTFIX: &str = r#"
import re, sys
reg = re.compile('(.*delay=(?P<send_delay>[^,]+),.*status=(?P<status>(sent|deferred|bounced)))|(.*?(?P<untrustedtls>(Untrusted|Anonymous))*(?P<tls> TLS connection established )(?P<direction>(to|from)).*)|(.*nrcpt=(?P<incoming>[^ ]+).*queue active.*)')
n = 0
with open(sys.argv[1], errors='replace') as f:
    for line in f:
        if reg.match(line):
            n += 1
print(n)
"#;

fn main() {
    let (lines, runs) = if common::full() {
        (1_000_000, 5)
    } else {
        (10_000, 1)
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let cases = [
        (
            "postfix",
            "maillog",
            ParserConfig::Postfix(Default::default()),
        ),
        (
            "squid",
            "access.log",
            ParserConfig::Squid(Default::default()),
        ),
        ("log4j", "app.log", ParserConfig::Log4j(Default::default())),
        (
            "regex (nginx, 4 metrics)",
            "nginx.log",
            toml::from_str::<ParserConfig>(NGINX).expect("regex config"),
        ),
    ];
    println!("| parser | carbyne lines/s (1 core) | `wc -l` lines/s | carbyne / wc | Logster's regex in Python lines/s | carbyne / Python |");
    println!("|---|---|---|---|---|---|");
    for (name, fixture, cfg) in cases {
        let path = make_file(dir.path(), fixture, lines);
        let ours = parse_file(&path, &cfg, lines, runs);
        if !common::full() {
            continue;
        }
        let wc = timed(Command::new("wc").arg("-l").arg(&path), lines, runs).unwrap_or(f64::NAN);
        let py = if name == "postfix" {
            timed(
                Command::new("python3")
                    .args(["-c", LOGSTER_POSTFIX])
                    .arg(&path),
                lines,
                runs,
            )
        } else {
            None
        };
        let (py_s, ratio) = match py {
            Some(p) => (format!("{:.0}", p), format!("{:.1}x", ours / p)),
            None => ("—".into(), "—".into()),
        };
        println!(
            "| {name} | {ours:.0} | {wc:.0} | {:.2} | {py_s} | {ratio} |",
            ours / wc
        );
    }
}
