//! What the benchmarks share: the full/quick switch, free ports, and a
//! process's CPU time and memory read from /proc.
#![allow(dead_code)]

/// `cargo bench` passes `--bench`: the full run. Without it (as `cargo test`
/// runs benches) a quick smoke run.
pub fn full() -> bool {
    std::env::args().any(|a| a == "--bench")
}

// Free ports and waiting for a listener, as the tests have them.
#[path = "../../tests/common/mod.rs"]
mod shared;
#[allow(unused_imports)]
pub use shared::{free_port, wait_for_port};

/// utime + stime of a process, in clock ticks.
pub fn cpu_ticks(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let f: Vec<&str> = s.rsplit(')').next()?.split_whitespace().collect();
            Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
        })
        .unwrap_or(0)
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS:`, `VmHWM:`).
pub fn status_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with(key))?
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()
        })
        .unwrap_or(0)
}
