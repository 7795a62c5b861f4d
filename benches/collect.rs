//! One full collection cycle of every collector that is on by default on
//! this machine's real /proc, beside the floor of merely reading the same
//! files in one process.
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

criterion_group!(benches, cycle);
criterion_main!(benches);
