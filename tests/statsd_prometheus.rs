//! The statsd server scraped by Prometheus, as statsd_exporter is
//! (statsd_exporter itself is in no registry here): a seeded stream of
//! statsd lines with tags, sample rates, timers and a mapping file goes in
//! over TCP; the page must hold what the test works out from the stream
//! (cumulative counters named as given, gauges, timers in seconds into a
//! histogram and a summary within 1%), pass `promtool check metrics`, and a
//! real Prometheus must scrape it and answer PromQL with the same numbers.
//! A SIGHUP reads an edited mapping file.

mod common;

use common::prom::{get, lints, promtool, query_until, start_prometheus};
use common::*;
use std::collections::BTreeMap;
use std::io::Write;
use std::time::{Duration, Instant};

const MAPPING: &str = r#"
defaults:
  ttl: 10m
mappings:
- match: "rpc.*.time"
  match_metric_type: observer
  name: rpc_seconds
  labels: {method: "$1"}
  observer_type: histogram
  histogram_options:
    buckets: [0.005, 0.05, 0.5]
- match: "rpc.*.time"
  match_metric_type: counter
  name: rpc_calls
  labels: {method: "$1"}
- match: "debug.*"
  action: drop
  name: dropped
"#;

/// What the page must hold after the stream: each series' value, and the
/// timings of each summary (seconds).
#[derive(Default)]
struct Expected {
    values: BTreeMap<String, f64>,
    summaries: BTreeMap<String, Vec<f64>>,
}

/// The stream's lines, and what they must give.
fn stream(seed: u64) -> (Vec<String>, Expected) {
    let mut r = Rng(seed);
    let mut lines = Vec::new();
    let mut e = Expected::default();
    let mut gauge = 0.0;
    let mut hist: BTreeMap<&str, Vec<f64>> = BTreeMap::new();
    for i in 0..3000 {
        match r.below(7) {
            0 => {
                let n = r.below(5) + 1;
                let region = ["eu", "us"][r.below(2) as usize];
                lines.push(format!("api.hits:{n}|c|#region:{region}"));
                *e.values
                    .entry(format!("api_hits{{region=\"{region}\"}}"))
                    .or_default() += n as f64;
            }
            1 => {
                // Sampled at 0.25: each counts 4.
                lines.push("api.sampled-count:1|c|@0.25".into());
                *e.values.entry("api_sampled_count".into()).or_default() += 4.0;
            }
            2 => {
                let v = r.below(1000) as f64;
                if i % 2 == 0 || gauge == 0.0 {
                    lines.push(format!("queue.depth:{v}|g"));
                    gauge = v;
                } else {
                    lines.push(format!("queue.depth:+{v}|g"));
                    gauge += v;
                }
            }
            3 | 4 => {
                let method = ["get", "put"][r.below(2) as usize];
                let ms = r.below(800) as f64 + 0.5;
                lines.push(format!("rpc.{method}.time:{ms}|ms"));
                hist.entry(method).or_default().push(ms / 1000.0);
            }
            5 => {
                let ms = (r.below(100_000) as f64) / 10.0;
                lines.push(format!("db.query:{ms}|ms"));
                e.summaries
                    .entry("db_query".into())
                    .or_default()
                    .push(ms / 1000.0);
            }
            _ => {
                lines.push(format!("debug.noise:{}|c", r.below(9)));
                lines.push(format!("users:u{}|s", r.below(50)));
                lines.push("rpc.get.time:2|c".into());
                *e.values
                    .entry("rpc_calls{method=\"get\"}".into())
                    .or_default() += 2.0;
            }
        }
    }
    e.values.insert("queue_depth".into(), gauge);
    for (method, vs) in &hist {
        for le in ["0.005", "0.05", "0.5", "+Inf"] {
            let bound: f64 = if le == "+Inf" {
                f64::INFINITY
            } else {
                le.parse().expect("bound")
            };
            e.values.insert(
                format!("rpc_seconds_bucket{{method=\"{method}\",le=\"{le}\"}}"),
                vs.iter().filter(|v| **v <= bound).count() as f64,
            );
        }
        e.values.insert(
            format!("rpc_seconds_count{{method=\"{method}\"}}"),
            vs.len() as f64,
        );
        e.values.insert(
            format!("rpc_seconds_sum{{method=\"{method}\"}}"),
            vs.iter().sum(),
        );
    }
    for (name, vs) in &e.summaries {
        e.values.insert(format!("{name}_count"), vs.len() as f64);
        e.values.insert(format!("{name}_sum"), vs.iter().sum());
    }
    (lines, e)
}

/// Each sample line of a page: series to value.
fn samples(page: &str) -> BTreeMap<String, f64> {
    page.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, v) = l.rsplit_once(' ')?;
            Some((series.to_string(), v.parse().ok()?))
        })
        .collect()
}

/// The expected values the page does not hold (a sum to a relative 1e-9).
fn missing(page: &BTreeMap<String, f64>, e: &Expected) -> Vec<String> {
    e.values
        .iter()
        .filter(|(k, want)| {
            page.get(*k)
                .is_none_or(|got| (got - *want).abs() > want.abs() * 1e-9 + 1e-9)
        })
        .map(|(k, want)| format!("{k}: want {want}, got {:?}", page.get(k)))
        .collect()
}

fn start(dir: &std::path::Path) -> (Child, u16) {
    let (listen, admin, scrape) = (free_port(), free_port(), free_port());
    std::fs::write(dir.join("mapping.yml"), MAPPING).expect("mapping");
    std::fs::write(
        dir.join("c.toml"),
        format!(
            "[server.statsd]\nlisten = \"127.0.0.1:{listen}\"\nadmin = \"127.0.0.1:{admin}\"\n\
             graphite = \"\"\nflush_interval = 0.5\n\
             prometheus_listen = \"127.0.0.1:{scrape}\"\nmapping_file = \"{}\"\n",
            dir.join("mapping.yml").display()
        ),
    )
    .expect("config");
    let child = bin()
        .args(["server", "--config"])
        .arg(dir.join("c.toml"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("server");
    wait_for_port(scrape);
    wait_for_port(listen);
    (Child(child), listen)
}

/// Polls the page until `done` (15 s at most); the last page.
fn page_until(port: u16, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let page = get(port, "/metrics").unwrap_or_default();
        if done(&page) || start.elapsed() > Duration::from_secs(15) {
            return page;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn statsd_metrics_are_scraped_as_statsd_exporter_serves_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (server, listen) = start(dir.path());
    let scrape: u16 = std::fs::read_to_string(dir.path().join("c.toml"))
        .expect("config")
        .lines()
        .find_map(|l| l.strip_prefix("prometheus_listen = \"127.0.0.1:"))
        .and_then(|p| p.trim_end_matches('"').parse().ok())
        .expect("port");
    let (lines, expected) = stream(0x5eed_cafe);
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", listen)).expect("tcp");
    for chunk in lines.chunks(100) {
        conn.write_all(format!("{}\n", chunk.join("\n")).as_bytes())
            .expect("send");
    }
    drop(conn);

    let page = page_until(scrape, |p| missing(&samples(p), &expected).is_empty());
    let got = samples(&page);
    let wrong = missing(&got, &expected);
    assert!(wrong.is_empty(), "{wrong:#?}\n{page}");
    // Counters keep their names; sets and dropped names are not there.
    assert!(page.contains("# TYPE api_hits counter\n"), "{page}");
    assert!(page.contains("# TYPE rpc_seconds histogram\n"), "{page}");
    assert!(page.contains("# TYPE db_query summary\n"), "{page}");
    assert!(!page.contains("users") && !page.contains("debug"), "{page}");
    // The summary's quantiles are within 1% of the exact ones.
    let mut vs = expected.summaries["db_query"].clone();
    vs.sort_by(f64::total_cmp);
    for q in [0.5, 0.9, 0.99] {
        // The nearest rank, as the client library's summaries answer.
        let exact = vs[((q * vs.len() as f64).ceil() as usize).max(1) - 1];
        let v = got[&format!("db_query{{quantile=\"{q}\"}}")];
        assert!(
            (v - exact).abs() <= exact * 0.01 + 1e-9,
            "q{q}: {v} against {exact}"
        );
    }
    assert!(got["statsd_exporter_events_actions_total{action=\"drop\"}"] >= 1.0);
    assert_eq!(got["statsd_exporter_loaded_mappings"], 3.0);

    // promtool parses it (exit 3 is advice only). Its advice is on names
    // as statsd gives them, which statsd_exporter keeps too: counters
    // without `_total`, a counter named `..._count`, and statsd_exporter's
    // own gauge `statsd_exporter_metrics_total`.
    let (code, said) = promtool(&page);
    assert!(code == 0 || code == 3, "promtool exit {code}: {said}");
    let advice: Vec<&str> = lints(&said)
        .into_iter()
        .filter(|l| {
            !l.ends_with("counter metrics should have \"_total\" suffix")
                && !l.starts_with("api_sampled_count non-histogram")
        })
        .collect();
    assert!(advice.is_empty(), "{said}");

    // A real Prometheus scrapes it and sums the same.
    let (_prometheus, prom) = start_prometheus(dir.path(), &[format!("127.0.0.1:{scrape}")]);
    let want = expected.values["api_hits{region=\"eu\"}"].to_string();
    let found = query_until(prom, "api_hits{region=\"eu\"}", |r| {
        r.first().is_some_and(|s| s["value"][1] == want.as_str())
    });
    assert_eq!(
        found.first().map(|s| s["value"][1].clone()),
        Some(serde_json::Value::String(want)),
        "{found:?}"
    );
    let total: f64 = ["get", "put"]
        .iter()
        .map(|m| expected.values[&format!("rpc_seconds_count{{method=\"{m}\"}}")])
        .sum();
    let total = total.to_string();
    let found = query_until(prom, "sum(rpc_seconds_bucket{le=\"+Inf\"})", |r| {
        r.first().is_some_and(|s| s["value"][1] == total.as_str())
    });
    assert_eq!(
        found.first().map(|s| s["value"][1].clone()),
        Some(serde_json::Value::String(total)),
        "{found:?}"
    );

    // SIGHUP reads the edited mapping file; new updates take its names.
    std::fs::write(
        dir.path().join("mapping.yml"),
        format!(
            "{MAPPING}- match: \"late.*\"\n  name: late_renamed\n  labels: {{which: \"$1\"}}\n"
        ),
    )
    .expect("mapping");
    signal(&server.0, "-HUP");
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut page = String::new();
    while Instant::now() < deadline && !page.contains("late_renamed{which=\"one\"} 4") {
        let mut conn = std::net::TcpStream::connect(("127.0.0.1", listen)).expect("tcp");
        conn.write_all(b"late.one:4|g\n").expect("send");
        drop(conn);
        std::thread::sleep(Duration::from_millis(600));
        page = get(scrape, "/metrics").unwrap_or_default();
    }
    assert!(page.contains("late_renamed{which=\"one\"} 4\n"), "{page}");
    assert_eq!(samples(&page)["statsd_exporter_loaded_mappings"], 4.0);
}
