//! One full collection cycle of every collector that is on by default on
//! this machine's real /proc, beside the floor of merely reading the same
//! files in one process; and processresources' cycle with 5 groups over
//! 500 processes, and filestat's per-user counts over them beside lsof.
//!
//! Run: `cargo bench --bench collect`

use carbyne::collectors::build_with_host;
use carbyne::config::Config;
use carbyne::rates::CounterState;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn cycle(c: &mut Criterion) {
    let cfg = Config::default();
    let mut all = build_with_host(&cfg, Some("bench")).expect("default config builds");
    let mut states: Vec<Option<CounterState>> = vec![None; all.len()];
    // Let every collector see a previous reading, so rates are computed too.
    let mut t = now();
    for (inst, st) in all.iter_mut().zip(states.iter_mut()) {
        *st = Some(inst.run(t as i64, t, None).2);
    }
    c.bench_function("cycle/all_default_collectors", |b| {
        b.iter(|| {
            t += 10.0;
            let mut n = 0;
            for (inst, st) in all.iter_mut().zip(states.iter_mut()) {
                let (res, samples, next) = inst.run(t as i64, t, st.take());
                n += samples.len();
                let _ = black_box(res);
                *st = Some(next);
            }
            black_box(n)
        })
    });

    let files = [
        "/proc/stat",
        "/proc/mounts",
        "/proc/diskstats",
        "/proc/loadavg",
        "/proc/meminfo",
        "/proc/self/mountstats",
        "/proc/net/sockstat",
        "/proc/net/sockstat6",
        "/proc/vmstat",
        "/proc/net/dev",
        "/proc/net/netstat",
        "/proc/net/snmp",
        "/proc/net/snmp6",
        "/proc/uptime",
        "/proc/sys/kernel/random/entropy_avail",
        "/proc/sys/fs/file-nr",
        "/proc/pressure/cpu",
        "/proc/pressure/memory",
        "/proc/pressure/io",
    ];
    c.bench_function("floor/read_the_same_proc_files", |b| {
        b.iter(|| {
            let mut n = 0;
            for f in files {
                n += std::fs::read_to_string(f).map(|s| s.len()).unwrap_or(0);
            }
            let _ = black_box(rustix::fs::statvfs("/"));
            black_box(n)
        })
    });
}

/// processresources, the host-collectors issue's case: 5 groups over 500
/// processes. The bench starts 500 `sleep 600.NNN` children (killed when
/// it ends); four groups match ten of them each by command line, the
/// fifth is carbyne itself (`selfmon`). A cycle after the first scan.
fn processresources(c: &mut Criterion) {
    struct Children(Vec<std::process::Child>);
    impl Drop for Children {
        fn drop(&mut self) {
            for child in &mut self.0 {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
    let children = Children(
        (0..500)
            .map(|i| {
                std::process::Command::new("sleep")
                    .arg(format!("600.{i:03}"))
                    .spawn()
                    .expect("sleep")
            })
            .collect(),
    );
    let mut cfg = Config::default();
    cfg.collectors.processresources.common.enabled = Some(true);
    cfg.collectors.processresources.options = toml::from_str(
        r#"
[process.a]
cmdline = ['^sleep 600\.00\d$']
[process.b]
cmdline = ['^sleep 600\.01\d$']
[process.c]
cmdline = ['^sleep 600\.02\d$']
[process.d]
cmdline = ['^sleep 600\.03\d$']
[process.self]
selfmon = true
"#,
    )
    .expect("groups");
    let mut inst = build_with_host(&cfg, Some("bench"))
        .expect("config builds")
        .into_iter()
        .find(|i| i.name == "processresources")
        .expect("processresources");
    let mut t = now();
    let (res, samples, state) = inst.run(t as i64, t, None);
    res.expect("first scan");
    let groups: std::collections::BTreeSet<String> = samples
        .iter()
        .filter_map(|s| s.name.split('.').nth(3).map(str::to_string))
        .collect();
    assert_eq!(groups.len(), 5, "every group matched: {groups:?}");
    let mut state = Some(state);
    c.bench_function("cycle/processresources_5_groups_500_processes", |b| {
        b.iter(|| {
            t += 10.0;
            let (res, samples, next) = inst.run(t as i64, t, state.take());
            let _ = black_box(res);
            state = Some(next);
            black_box(samples.len())
        })
    });

    // filestat's per-user counts over the same processes, beside one run
    // of lsof (Diamond runs it twice, and once more per user).
    let mut cfg = Config::default();
    cfg.collectors.filestat.options.collect_user_data = true;
    let mut inst = build_with_host(&cfg, Some("bench"))
        .expect("config builds")
        .into_iter()
        .find(|i| i.name == "filestat")
        .expect("filestat");
    c.bench_function("cycle/filestat_per_user_500_processes", |b| {
        b.iter(|| {
            t += 10.0;
            let (res, samples, _) = inst.run(t as i64, t, None);
            let _ = black_box(res);
            black_box(samples.len())
        })
    });
    if std::process::Command::new("lsof")
        .arg("-v")
        .output()
        .is_ok()
    {
        c.bench_function("peer/lsof_500_processes", |b| {
            b.iter(|| {
                let out = std::process::Command::new("lsof")
                    .arg("-wb")
                    .stdout(std::process::Stdio::null())
                    .status()
                    .expect("lsof");
                black_box(out)
            })
        });
    }
    drop(children);
}

criterion_group!(benches, cycle, processresources);
criterion_main!(benches);
