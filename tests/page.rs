//! The built-in page (`/`) in a real browser: Debian's Chromium driven by
//! Playwright (tests/peers/page_browser.py) against a `carbyne server` fed
//! through its carbon receiver. Screenshots are kept in
//! target/artifacts/page/.

mod common;

use common::graphite_web::{p, start_carbyne_with_carbon};
use common::*;
use std::io::Write;
use std::net::TcpStream;
use std::process::Command;

#[test]
fn the_page_browses_draws_round_trips_and_shows_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whisper = dir.path().join("whisper");
    let (_server, port, line) = start_carbyne_with_carbon(dir.path(), &whisper);
    // An hour of points a minute apart, known values.
    let now = common::now() / 60 * 60;
    let sent: Vec<(i64, f64)> = (0..60)
        .map(|i| (now - 60 * (59 - i), (i * 7 % 50) as f64 + 0.5))
        .collect();
    let mut lines: Vec<String> = sent
        .iter()
        .map(|(t, v)| format!("pagetest.web.a {v} {t}"))
        .collect();
    lines.extend(
        sent.iter()
            .map(|(t, v)| format!("pagetest.web.b {} {t}", v * 2.0)),
    );
    let mut s = TcpStream::connect(("127.0.0.1", line)).expect("connect");
    s.write_all((lines.join("\n") + "\n").as_bytes())
        .expect("send");
    drop(s);
    // Wait until the receiver has taken them.
    let q = p(&[
        ("target", "pagetest.web.b"),
        ("format", "json"),
        ("from", "-2h"),
    ]);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (status, body) = http(port, "GET", "/render", &q);
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let known = v[0]["datapoints"]
            .as_array()
            .map_or(0, |d| d.iter().filter(|p| !p[0].is_null()).count());
        if status == 200 && known == sent.len() {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "points never arrived: {known}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }

    let shots = repo("target/artifacts/page");
    let out = Command::new("python3")
        .arg(repo("tests/peers/page_browser.py"))
        .arg(format!("http://127.0.0.1:{port}"))
        .arg(&shots)
        .args(["pagetest.web.a", "pagetest.web.b"])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "the browser walk failed (tests/run.sh installs chromium and playwright): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).expect("the walk's JSON");
    assert_eq!(seen["status"], 200);
    assert_eq!(
        seen["console_errors"],
        serde_json::json!([]),
        "console errors"
    );
    // Only the broken target's 400, which the browser logs itself.
    let expected = seen["expected_errors"].as_array().expect("errors");
    assert!(
        !expected.is_empty()
            && expected
                .iter()
                .all(|e| e.as_str().is_some_and(|e| e.contains("400"))),
        "{expected:?}"
    );
    let h = &seen["headers"];
    assert_eq!(h["x-frame-options"], "DENY");
    let csp = h["content-security-policy"].as_str().unwrap_or_default();
    assert!(
        csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self'"),
        "{csp}"
    );
    assert!(seen["tree_top"]
        .as_array()
        .is_some_and(|t| t.iter().any(|n| n == "pagetest")));

    // The graph's points are the points sent.
    let g = &seen["graph"];
    assert_eq!(g["labels"], serde_json::json!(["pagetest.web.a"]));
    // The last hour's points as sent: all of them, or all but the oldest
    // when the clock passed a minute between sending and drawing.
    let points = |g: &serde_json::Value| -> Vec<(i64, f64)> {
        g["x"]
            .as_array()
            .expect("x")
            .iter()
            .zip(g["y"].as_array().expect("y"))
            .filter_map(|(x, y)| Some((x.as_i64()?, y.as_f64()?)))
            .collect()
    };
    let as_sent = |drawn: &[(i64, f64)]| {
        drawn.len() + 2 >= sent.len() && drawn == &sent[sent.len() - drawn.len()..]
    };
    let drawn = points(g);
    assert!(
        as_sent(&drawn),
        "the chart's points {drawn:?}, sent {sent:?}"
    );

    // The URL round-trips.
    assert!(seen["url"]
        .as_str()
        .is_some_and(|u| u.contains("pagetest.web.a")));
    assert_eq!(
        seen["reloaded_state"]["graphs"][0]["targets"],
        serde_json::json!(["pagetest.web.a"])
    );
    assert!(as_sent(&points(&seen["reloaded_graph"])));
    // Opened from its URL, the graph was first on screen as the server's
    // PNG, which the interactive chart then replaced.
    assert!(
        seen["preview_shown_ms"].as_f64().is_some_and(|ms| ms > 0.0),
        "no preview shown: {}",
        seen["preview_shown_ms"]
    );
    assert_eq!(seen["previews_left"], 0, "a preview outlived its chart");
    assert_eq!(seen["reloaded_graph"]["labels"], g["labels"]);
    assert_eq!(
        seen["graphs"],
        serde_json::json!([["pagetest.web.a"], ["pagetest.web.b"]])
    );
    // Function names and their parameters from /functions.
    let names = seen["functions_served"].as_u64().unwrap_or(0);
    assert!(names > 50);
    assert_eq!(seen["function_options"].as_u64(), Some(names));
    assert!(
        seen["signature"]
            .as_str()
            .is_some_and(|s| s.starts_with("movingAverage(seriesList, windowSize")),
        "{}",
        seen["signature"]
    );
    // Hover shows values; the legend hides a series.
    assert!(
        seen["hover_values"]
            .as_array()
            .is_some_and(|v| v.iter().any(|x| x
                .as_str()
                .is_some_and(|s| s.chars().any(|c| c.is_ascii_digit())))),
        "{}",
        seen["hover_values"]
    );
    assert_eq!(seen["shown_after_click"], false);
    // A broken target shows the server's own error.
    let (_, body) = http(
        port,
        "GET",
        "/render",
        &p(&[
            ("target", "pagetest.web.a"),
            ("target", "sumSeries("),
            ("format", "json"),
        ]),
    );
    let server_error = serde_json::from_slice::<serde_json::Value>(&body).expect("json")["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(!server_error.is_empty());
    assert_eq!(seen["error_text"].as_str(), Some(server_error.as_str()));
    for shot in [
        "page-one-graph.png",
        "page-two-graphs.png",
        "page-legend-hidden.png",
        "page-error.png",
    ] {
        let bytes = std::fs::read(shots.join(shot)).expect("screenshot kept");
        assert_eq!(&bytes[1..4], b"PNG");
    }
    // First load under 200 KB over the wire.
    let total: u64 = seen["transferred"]
        .as_array()
        .expect("transferred")
        .iter()
        .filter(|e| {
            e[0].as_str().is_some_and(|u| {
                !u.contains("/render") && !u.contains("/metrics") && !u.contains("/functions")
            })
        })
        .filter_map(|e| e[1].as_u64())
        .sum();
    assert!(
        total > 10_000 && total < 200_000,
        "first load: {total} bytes"
    );
}
