//! Golden cases: every collector on a fixture /proc snapshot, then on a
//! second one 10 s later, compared line by line with
//! `tests/fixtures/golden/<case>.txt`. A change of output that is intended:
//! run with `UPDATE_GOLDEN=1`, and review the diff of the expected files.

mod common;

use carbyne::collectors::build_with_host;
use carbyne::config::Config;
use carbyne::rates::CounterState;
use common::fixture;
use std::collections::HashMap;

/// (case, first snapshot, second snapshot)
const CASES: &[(&str, &str, &str)] = &[
    ("server", "proc/server-a", "proc/server-b"),
    ("captured-6.18", "proc/t0", "proc/t1"),
    ("old-kernel-2.6", "proc/old-2.6", "proc/old-2.6"),
];

fn config(proc: &str) -> Config {
    let mut cfg = Config {
        proc_root: fixture(proc),
        dev_root: fixture("dev"),
        ..Config::default()
    };
    // Free space is read from the mounted filesystems themselves, which
    // differ from machine to machine; its logic has fixture tests of its own.
    cfg.collectors.diskspace.common.enabled = Some(false);
    cfg
}

/// Runs every collector on `proc` at time `t`, after `states`.
fn run(proc: &str, t: i64, states: &mut HashMap<&'static str, CounterState>, out: &mut String) {
    let cfg = config(proc);
    let root = fixture("").display().to_string();
    for mut inst in build_with_host(&cfg, Some("host")).expect("config") {
        let (res, samples, state) = inst.run(t, t as f64, states.remove(inst.name));
        states.insert(inst.name, state);
        if let Err(e) = res {
            out.push_str(&format!(
                "! {}: {}\n",
                inst.name,
                e.to_string().replace(&root, "<fixtures>/")
            ));
        }
        for s in samples {
            s.write_plaintext(out);
        }
    }
}

#[test]
fn golden_cases() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut failed = Vec::new();
    for (case, a, b) in CASES {
        let mut states = HashMap::new();
        let mut got = format!("# {a} at t=1000\n");
        run(a, 1000, &mut states, &mut got);
        got.push_str(&format!("# {b} at t=1010\n"));
        run(b, 1010, &mut states, &mut got);
        let path = fixture(&format!("golden/{case}.txt"));
        if update {
            std::fs::write(&path, &got).expect("write golden");
            continue;
        }
        let want = std::fs::read_to_string(&path).unwrap_or_default();
        if want != got {
            let first = want
                .lines()
                .zip(got.lines())
                .position(|(w, g)| w != g)
                .unwrap_or(want.lines().count().min(got.lines().count()));
            failed.push(format!(
                "{case}: differs from line {}: want {:?}, got {:?}",
                first + 1,
                want.lines().nth(first),
                got.lines().nth(first)
            ));
        }
    }
    assert!(
        failed.is_empty(),
        "{}\n(run with UPDATE_GOLDEN=1 if the change is intended)",
        failed.join("\n")
    );
}
