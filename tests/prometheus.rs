//! The exposition against the real Prometheus 2.42 (Debian's, installed by
//! tests/run.sh): a real server scrapes it (asking for OpenMetrics), and
//! `promtool check metrics` judges the text format on generated
//! families with hostile names, label names and values, help texts and
//! values must always parse. promtool's lints are advice on naming, and two
//! are allowed, as names come from the user's (Graphite) names: camelCase,
//! which node_exporter's own `node_memory_MemTotal_bytes` draws, and a gauge
//! whose name ends in `_total`. Every other lint (no help text, a colon,
//! `le` outside a histogram) fails the test.

mod common;

use carbyne::prometheus::{Exposition, Format, Kind};
use common::prom::{lints, promtool, query_until, start_prometheus};
use std::io::Write;
use std::time::Duration;

#[test]
fn hostile_input_always_gives_an_exposition_promtool_parses() {
    const PIECES: &[&str] = &[
        "a",
        "Z",
        "_",
        ":",
        ".",
        "-",
        " ",
        "0",
        "9",
        "\"",
        "\\",
        "\n",
        "{",
        "}",
        "=",
        ",",
        "#",
        "\u{e9}",
        "\u{1F600}",
        "\t",
        "le",
        "quantile",
        "__",
        "total",
    ];
    const VALUES: &[f64] = &[
        0.0,
        -0.0,
        1.0,
        -2.5,
        1e21,
        1e-7,
        5e-324,
        f64::MAX,
        f64::MIN,
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        0.1,
        12345.678,
    ];
    let mut rng = fastrand::Rng::with_seed(15);
    let text_of = |rng: &mut fastrand::Rng, n: usize| -> String {
        (0..rng.usize(0..n))
            .map(|_| PIECES[rng.usize(..PIECES.len())])
            .collect()
    };
    for round in 0..20 {
        let mut e = Exposition::new();
        for _ in 0..200 {
            let counter = rng.bool();
            let mut name = text_of(&mut rng, 6);
            if counter {
                name.push_str("_total");
            }
            let labels: Vec<(String, String)> = (0..rng.usize(0..4))
                .map(|_| (text_of(&mut rng, 4), text_of(&mut rng, 8)))
                .collect();
            let pairs: Vec<(&str, &str)> = labels
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect();
            let help = text_of(&mut rng, 10);
            let kind = if counter { Kind::Counter } else { Kind::Gauge };
            // A name already holding the other type is refused; fine here.
            let _ = e.add(
                &name,
                kind,
                &help,
                &pairs,
                VALUES[rng.usize(..VALUES.len())],
            );
        }
        assert!(e.len() > 50, "round {round}: {} series", e.len());
        let mut text = String::new();
        e.write_text(&mut text);
        let (code, said) = promtool(&text);
        let lints = lints(&said);
        assert!(
            code == 0 || (code == 3 && lints.is_empty()),
            "round {round}: promtool exit {code}: {said}\n{text}"
        );
    }
}

#[test]
fn promtool_refuses_what_the_exposition_prevents() {
    // The judge can fail: a raw dotted name, an unescaped quote, a
    // counter without a help text.
    assert_eq!(promtool("servers.web.load 1\n").0, 1);
    assert_eq!(promtool("a{b=\"x\"y\"} 1\n").0, 1);
    assert_eq!(promtool("# TYPE a_total counter\na_total 1\n").0, 3);
}

/// Answers every request on 127.0.0.1 with the exposition, in the format
/// its `Accept` header prefers, until dropped; keeps the formats asked.
struct Exporter {
    port: u16,
    asked: std::sync::Arc<std::sync::Mutex<Vec<Format>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
}

impl Exporter {
    fn start(e: Exposition) -> Exporter {
        use std::io::Read;
        use std::sync::atomic::Ordering;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let asked = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (asked2, stop2) = (asked.clone(), stop.clone());
        std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let Ok((mut conn, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                };
                let _ = conn.set_nonblocking(false);
                let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
                let mut req = Vec::new();
                let mut buf = [0u8; 4096];
                while !req.windows(4).any(|w| w == b"\r\n\r\n") && req.len() < 65536 {
                    match conn.read(&mut buf) {
                        Ok(0) | Err(_) => break,
                        Ok(n) => req.extend_from_slice(&buf[..n]),
                    }
                }
                let head = String::from_utf8_lossy(&req);
                let accept = head
                    .lines()
                    .find_map(|l| l.strip_prefix("Accept: ").or(l.strip_prefix("accept: ")));
                let format = Format::from_accept(accept);
                asked2.lock().expect("lock").push(format);
                let mut body = String::new();
                e.write(format, &mut body);
                let _ = write!(
                    conn,
                    "HTTP/1.1 200 OK\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    format.content_type(),
                    body.len()
                );
            }
        });
        Exporter { port, asked, stop }
    }
}

impl Drop for Exporter {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
fn a_real_prometheus_scrapes_what_is_written() {
    let mut e = Exposition::new();
    e.add(
        "carbyne_test.lines",
        Kind::Counter,
        "Lines read.",
        &[("log name", "a b")],
        42.0,
    )
    .expect("add");
    e.add(
        "carbyne_test_temp",
        Kind::Gauge,
        "A \"gauge\"\nwith \\ in its help.",
        &[("v", "q\"uote\nnew\\line")],
        -1.5,
    )
    .expect("add");
    e.add("carbyne_test_untyped", Kind::Untyped, "", &[], 7.0)
        .expect("add");
    let exporter = Exporter::start(e);

    let dir = tempfile::tempdir().expect("tempdir");
    let (_prometheus, port) =
        start_prometheus(dir.path(), &[format!("127.0.0.1:{}", exporter.port)]);
    let found = query_until(port, "{__name__=~\"carbyne_test.*\"}", |f| f.len() == 3);
    let series: std::collections::BTreeMap<String, (serde_json::Value, String)> = found
        .iter()
        .map(|s| {
            let name = s["metric"]["__name__"].as_str().unwrap_or("").to_string();
            (
                name,
                (
                    s["metric"].clone(),
                    s["value"][1].as_str().unwrap_or("").to_string(),
                ),
            )
        })
        .collect();
    assert_eq!(series.len(), 3, "Prometheus stored: {found:?}");
    let (labels, value) = &series["carbyne_test_lines_total"];
    assert_eq!(
        (labels["log_name"].as_str(), value.as_str()),
        (Some("a b"), "42")
    );
    assert_eq!(labels["job"].as_str(), Some("carbyne"));
    let (labels, value) = &series["carbyne_test_temp"];
    assert_eq!(
        (labels["v"].as_str(), value.as_str()),
        (Some("q\"uote\nnew\\line"), "-1.5")
    );
    assert_eq!(series["carbyne_test_untyped"].1, "7");
    // Prometheus asked for OpenMetrics, and got it.
    let asked = exporter.asked.lock().expect("lock").clone();
    assert!(asked.contains(&Format::OpenMetrics), "{asked:?}");
}

#[test]
fn histograms_and_summaries_pass_promtool() {
    use carbyne::prometheus::Distribution;
    let mut e = Exposition::new();
    for (i, m) in ["get", "put \"x\"\n"].iter().enumerate() {
        let h = Distribution {
            points: vec![(0.005, 0.0), (0.5, i as f64), (10.0, 3.0)],
            sum: 4.25,
            count: 5.0,
        };
        e.add_distribution(
            "carbyne_rpc_seconds",
            Kind::Histogram,
            "RPC time.",
            &[("method", m)],
            h,
            1,
            true,
        )
        .expect("histogram");
        let q = Distribution {
            points: vec![(0.5, 0.1), (0.9, 0.4), (0.99, f64::NAN)],
            sum: 4.25,
            count: 5.0,
        };
        e.add_distribution(
            "carbyne_lat_seconds",
            Kind::Summary,
            "Latency.",
            &[("method", m)],
            q,
            1,
            true,
        )
        .expect("summary");
    }
    let mut text = String::new();
    e.write_text(&mut text);
    let (code, said) = promtool(&text);
    assert!(
        code == 0 || (code == 3 && lints(&said).is_empty()),
        "promtool exit {code}: {said}\n{text}"
    );
}
