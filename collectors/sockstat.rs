//! sockstat: socket counts from `/proc/net/sockstat` (and `sockstat6`,
//! summed in), as Diamond's SockstatCollector: `sockets.{used,tcp_inuse,
//! tcp_orphan,tcp_tw,tcp_alloc,tcp_mem,udp_inuse,udp_mem}`.

use super::{read, CollectError, Collector, Emit};
use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.sockstat]` has only the common keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SockstatConfig {}

/// The metrics, in the order they are sent.
pub const METRICS: [&str; 8] = [
    "used",
    "tcp_inuse",
    "tcp_orphan",
    "tcp_tw",
    "tcp_alloc",
    "tcp_mem",
    "udp_inuse",
    "udp_mem",
];

/// Adds the values of a sockstat/sockstat6 text into `acc` (indexed as
/// [`METRICS`]); a field the kernel does not give stays `None`.
pub fn accumulate(text: &str, acc: &mut [Option<u64>; 8]) {
    for line in text.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            continue;
        };
        let tcp = matches!(proto, "TCP" | "TCP6");
        if !(tcp || matches!(proto, "sockets" | "UDP" | "UDP6")) {
            continue;
        }
        let mut it = rest.split_ascii_whitespace();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let i = match (proto, k) {
                ("sockets", "used") => 0,
                (_, "inuse") if tcp => 1,
                (_, "orphan") if tcp => 2,
                (_, "tw") if tcp => 3,
                (_, "alloc") if tcp => 4,
                (_, "mem") if tcp => 5,
                ("UDP" | "UDP6", "inuse") => 6,
                ("UDP" | "UDP6", "mem") => 7,
                _ => continue,
            };
            if let Ok(v) = v.parse::<u64>() {
                acc[i] = Some(acc[i].unwrap_or(0) + v);
            }
        }
    }
}

pub struct Sockstat {
    v4: PathBuf,
    v6: PathBuf,
    buf: String,
}

impl Sockstat {
    pub fn new(_opts: &SockstatConfig, cfg: &Config) -> Self {
        Sockstat {
            v4: cfg.proc_root.join("net/sockstat"),
            v6: cfg.proc_root.join("net/sockstat6"),
            buf: String::new(),
        }
    }
}

impl Collector for Sockstat {
    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let mut acc = [None; 8];
        accumulate(read(&self.v4, &mut self.buf)?, &mut acc);
        // No IPv6 in the kernel: no sockstat6, nothing to add.
        if let Ok(text) = read(&self.v6, &mut self.buf) {
            accumulate(text, &mut acc);
        }
        for (name, v) in METRICS.iter().zip(acc) {
            if let Some(v) = v {
                out.gauge(name, v as f64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{fixture, two_runs, values};

    fn run(root: &str) -> std::collections::BTreeMap<String, f64> {
        let cfg = Config {
            proc_root: fixture(root),
            ..Config::default()
        };
        let mut c = Sockstat::new(&SockstatConfig {}, &cfg);
        values(&two_runs(&mut c, 1.0, |_, _| {}).0)
    }

    #[test]
    fn ipv4_and_ipv6_summed() {
        let v = run("proc/server-a");
        assert_eq!(v["used"], 1289.0);
        assert_eq!(v["tcp_inuse"], 112.0 + 23.0);
        assert_eq!(v["tcp_orphan"], 3.0);
        assert_eq!(v["tcp_tw"], 210.0);
        assert_eq!(v["tcp_alloc"], 140.0);
        assert_eq!(v["tcp_mem"], 58.0);
        assert_eq!(v["udp_inuse"], 14.0 + 5.0);
        assert_eq!(v["udp_mem"], 9.0);
        assert_eq!(v.len(), 8);
    }

    #[test]
    fn old_kernel_without_udp_mem_or_ipv6() {
        let v = run("proc/old-2.6");
        assert_eq!(v["udp_inuse"], 3.0);
        assert!(!v.contains_key("udp_mem"));
        assert_eq!(v["tcp_tw"], 4.0);
        assert_eq!(v.len(), 7);
    }
}
