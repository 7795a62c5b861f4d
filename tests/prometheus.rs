//! The text exposition against the real `promtool check metrics`
//! (Prometheus 2.42 from Debian, installed by tests/run.sh): generated
//! families with hostile names, label names and values, help texts and
//! values must always parse. promtool's lints are advice on naming, and two
//! are allowed, as names come from the user's (Graphite) names: camelCase,
//! which node_exporter's own `node_memory_MemTotal_bytes` draws, and a gauge
//! whose name ends in `_total`. Every other lint (no help text, a colon,
//! `le` outside a histogram) fails the test.

use carbyne::prometheus::{Exposition, Kind};
use std::io::Write;
use std::process::{Command, Stdio};

fn promtool(text: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (tests/run.sh installs Debian's prometheus)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), said)
}

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
        let lints: Vec<&str> = said
            .lines()
            .filter(|l| {
                !l.contains("should be written in 'snake_case' not 'camelCase'")
                    && !l.contains("non-counter metrics should not have \"_total\" suffix")
            })
            .collect();
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
