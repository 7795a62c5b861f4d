//! sockstat: socket counts from `/proc/net/sockstat` (and `sockstat6`,
//! summed in), as Diamond's SockstatCollector: `sockets.{used,tcp_inuse,
//! tcp_orphan,tcp_tw,tcp_alloc,tcp_mem,udp_inuse,udp_mem}`.
//!
//! For Prometheus, node_exporter's sockstat families from the same reading:
//! every field as `node_sockstat_<PROTO>_<field>` (`TCP6` apart from
//! `TCP`), `node_sockstat_sockets_used`, and `_mem_bytes` beside `_mem`.

use super::{read, CollectError, Collector, Emit};
use crate::config::Config;
use crate::sample::PromKind;
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

/// node_exporter's series of a sockstat/sockstat6 text; `page` is the
/// page size that `mem` counts in.
pub fn series(text: &str, page: f64, out: &mut Emit) {
    for line in text.lines() {
        let Some((proto, rest)) = line.split_once(':') else {
            continue;
        };
        let mut it = rest.split_ascii_whitespace();
        while let (Some(k), Some(v)) = (it.next(), it.next()) {
            let Ok(v) = v.parse::<u64>() else { continue };
            let v = v as f64;
            if proto == "sockets" {
                if k == "used" {
                    out.series_named(
                        "node_sockstat_sockets_used".into(),
                        PromKind::Gauge,
                        "Number of IPv4 sockets in use.".into(),
                        Vec::new(),
                        v,
                    );
                }
                continue;
            }
            let mut put = |field: &str, v: f64| {
                out.series_named(
                    format!("node_sockstat_{proto}_{field}"),
                    PromKind::Gauge,
                    format!("Number of {proto} sockets in state {field}."),
                    Vec::new(),
                    v,
                )
            };
            put(k, v);
            if k == "mem" {
                put("mem_bytes", v * page);
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
    fn native_series(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let mut acc = [None; 8];
        let page = rustix::param::page_size() as f64;
        let text = read(&self.v4, &mut self.buf)?;
        accumulate(text, &mut acc);
        if out.wants_series() {
            series(text, page, out);
        }
        // No IPv6 in the kernel: no sockstat6, nothing to add.
        if let Ok(text) = read(&self.v6, &mut self.buf) {
            accumulate(text, &mut acc);
            if out.wants_series() {
                series(text, page, out);
            }
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
    fn node_exporter_series_per_protocol() {
        let cfg = Config {
            proc_root: fixture("proc/server-a"),
            ..Config::default()
        };
        let mut c = Sockstat::new(&SockstatConfig {}, &cfg);
        let p = crate::collectors::testutil::series(&two_runs(&mut c, 1.0, |_, _| {}).0);
        let page = rustix::param::page_size() as f64;
        assert_eq!(p["node_sockstat_sockets_used"], 1289.0);
        assert_eq!(p["node_sockstat_TCP_inuse"], 112.0);
        assert_eq!(p["node_sockstat_TCP6_inuse"], 23.0);
        assert_eq!(p["node_sockstat_TCP_mem"], 58.0);
        assert_eq!(p["node_sockstat_TCP_mem_bytes"], 58.0 * page);
        assert_eq!(p["node_sockstat_UDP_mem_bytes"], 9.0 * page);
        assert_eq!(p["node_sockstat_FRAG6_memory"], 0.0);
        assert_eq!(p["node_sockstat_UDPLITE_inuse"], 0.0);
        // sockets 1, TCP 5, UDP 2, UDPLITE 1, RAW 1, FRAG 2, and the five
        // IPv6 lines 6 fields; two `mem` with their `mem_bytes`.
        assert_eq!(p.len(), 18 + 2, "{p:?}");
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
