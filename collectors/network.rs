//! network: interface counters from `/proc/net/dev`, per second, as
//! Diamond's NetworkCollector: `network.<dev>.{rx_<unit>,tx_<unit>}` for
//! each `byte_unit` (`rx_bit`, `rx_byte` by default), and `rx_packets`,
//! `rx_errors`, `rx_drop`, `rx_fifo`, `rx_frame`, `rx_compressed`,
//! `rx_multicast`, `tx_packets`, `tx_errors`, `tx_drop`, `tx_fifo`,
//! `tx_colls`, `tx_carrier`, `tx_compressed`.
//!
//! For Prometheus, node_exporter's netdev families from the same reading,
//! raw counters of every interface (node_exporter filters none):
//! `node_network_receive_bytes_total{device}` and the other fifteen
//! columns under node_exporter's names.

use super::{byte_units, read_optional, CollectError, Collector, Emit, Missing};
use crate::config::{compile_regex, Config, ConfigError};
use crate::sample::PromKind;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.network]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetworkConfig {
    /// Interface name patterns (regexes, joined as alternatives), matched at
    /// the start of the name.
    pub interfaces: Vec<String>,
    /// A pattern matches names that start with it (`eth` matches `eth0`);
    /// when false, the whole name must match.
    pub greedy: bool,
    /// The units of the byte counters, each sent as `rx_<unit>`/`tx_<unit>`.
    pub byte_unit: Vec<String>,
}

/// Diamond's prefixes, and wireless (`wl`), InfiniBand (`ib`) and VLAN
/// (`vlan`) interfaces, which Diamond leaves out.
pub const DEFAULT_INTERFACES: [&str; 11] = [
    "eth", "bond", "em", "p1p", "eno", "enp", "ens", "enx", "wl", "ib", "vlan",
];

impl Default for NetworkConfig {
    fn default() -> Self {
        NetworkConfig {
            interfaces: DEFAULT_INTERFACES.iter().map(|s| s.to_string()).collect(),
            greedy: true,
            byte_unit: vec!["bit".into(), "byte".into()],
        }
    }
}

/// The columns of `/proc/net/dev` after the name, as Diamond names them
/// (`rx_bytes`/`tx_bytes` are sent in each byte unit).
pub const COLUMNS: [&str; 16] = [
    "rx_bytes",
    "rx_packets",
    "rx_errors",
    "rx_drop",
    "rx_fifo",
    "rx_frame",
    "rx_compressed",
    "rx_multicast",
    "tx_bytes",
    "tx_packets",
    "tx_errors",
    "tx_drop",
    "tx_fifo",
    "tx_colls",
    "tx_carrier",
    "tx_compressed",
];

/// The interfaces of a `/proc/net/dev` text with their 16 counters (lines
/// that are not `name: 16 numbers` are skipped: the two header lines).
pub fn parse(text: &str) -> impl Iterator<Item = (&str, [u64; 16])> {
    text.lines().filter_map(|line| {
        let (name, rest) = line.split_once(':')?;
        let mut v = [0u64; 16];
        let mut it = rest.split_ascii_whitespace();
        for slot in v.iter_mut() {
            *slot = it.next()?.parse().ok()?;
        }
        Some((name.trim(), v))
    })
}

/// node_exporter's names of the columns of `/proc/net/dev`.
pub const NODE_COLUMNS: [&str; 16] = [
    "receive_bytes",
    "receive_packets",
    "receive_errs",
    "receive_drop",
    "receive_fifo",
    "receive_frame",
    "receive_compressed",
    "receive_multicast",
    "transmit_bytes",
    "transmit_packets",
    "transmit_errs",
    "transmit_drop",
    "transmit_fifo",
    "transmit_colls",
    "transmit_carrier",
    "transmit_compressed",
];

pub struct Network {
    file: PathBuf,
    interfaces: regex::Regex,
    /// (unit, bytes per unit).
    units: Vec<(String, f64)>,
    missing: Missing,
    buf: String,
}

impl Network {
    pub fn new(opts: &NetworkConfig, cfg: &Config) -> Result<Self, ConfigError> {
        let units = byte_units("collectors.network.byte_unit", &opts.byte_unit)?;
        if opts.interfaces.is_empty() {
            return Err(ConfigError::new(
                "collectors.network.interfaces",
                "needs at least one pattern",
            ));
        }
        for p in &opts.interfaces {
            compile_regex("collectors.network.interfaces", Some(p), false)?;
        }
        let joined = opts
            .interfaces
            .iter()
            .map(|p| format!("(?:{p})"))
            .collect::<Vec<_>>()
            .join("|");
        let tail = if opts.greedy { r"\S*" } else { "" };
        let interfaces = compile_regex(
            "collectors.network.interfaces",
            Some(&format!("^(?:{joined}){tail}$")),
            false,
        )?
        .ok_or_else(|| ConfigError::new("collectors.network.interfaces", "is empty"))?;
        Ok(Network {
            file: cfg.proc_root.join("net/dev"),
            interfaces,
            units,
            missing: Missing::default(),
            buf: String::new(),
        })
    }
}

impl Collector for Network {
    fn native_series(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let Some(text) = read_optional(&self.file, &mut self.buf, &mut self.missing)? else {
            return Ok(());
        };
        for (dev, counters) in parse(text) {
            if out.wants_series() {
                for (col, raw) in NODE_COLUMNS.iter().zip(counters) {
                    out.series_named(
                        format!("node_network_{col}_total"),
                        PromKind::Counter,
                        format!("Network device statistic {col}."),
                        vec![("device", dev.to_string())],
                        raw as f64,
                    );
                }
            }
            if !self.interfaces.is_match(dev) {
                continue;
            }
            for (col, raw) in COLUMNS.iter().zip(counters) {
                let key = format!("{dev}.{col}");
                let Some(delta) = out.counters().delta(&key, raw) else {
                    continue;
                };
                match col.strip_suffix("_bytes") {
                    Some(dir) => {
                        for (unit, bytes) in &self.units {
                            out.push_rate(&format!("{dev}.{dir}_{unit}"), delta, *bytes);
                        }
                    }
                    None => out.push_rate(&key, delta, 1.0),
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{close, fixture, two_runs, values};

    fn network(
        opts: &NetworkConfig,
        t0: &str,
        t1: &str,
    ) -> (Vec<crate::sample::Sample>, Vec<crate::sample::Sample>) {
        let mut c = Network::new(opts, &Config::default()).expect("network");
        let (a, b) = (fixture(t0), fixture(t1));
        two_runs(&mut c, 10.0, |c, i| {
            c.file = if i == 0 { a.clone() } else { b.clone() };
        })
    }

    #[test]
    fn per_second_on_a_busy_host() {
        let (first, second) = network(
            &NetworkConfig::default(),
            "proc/busy-t0/net/dev",
            "proc/busy-t1/net/dev",
        );
        assert!(values(&first).is_empty(), "no rate on the first run");
        // Prometheus has the raw counters of every interface from the start.
        let p = crate::collectors::testutil::series(&first);
        assert_eq!(p.len() % 16, 0);
        assert!(p.contains_key("node_network_receive_bytes_total{device=\"lo\"}"));
        assert!(p.contains_key("node_network_transmit_colls_total{device=\"docker0\"}"));
        let eth0 = |c: &str| p[&format!("node_network_{c}_total{{device=\"eth0\"}}")];
        assert_eq!(eth0("receive_bytes"), 104678650371.0);
        assert_eq!(eth0("receive_multicast"), 210.0);
        assert_eq!(eth0("transmit_bytes"), 749456393508.0);
        assert_eq!(eth0("transmit_compressed"), 945.0);
        let v = values(&second);
        // eth0: 1 000 000 bytes and 1 000 packets more in 10 s.
        assert_eq!(v["eth0.rx_byte"], 100_000.0);
        assert_eq!(v["eth0.rx_bit"], 800_000.0);
        assert_eq!(v["eth0.rx_packets"], 100.0);
        assert!(close(v["eth0.tx_byte"], 2_048.0));
        assert_eq!(v["eth0.tx_colls"], 0.0);
        // lo, docker0 and veth* are not sent; bonds, VLANs, wireless and
        // InfiniBand are.
        assert!(!v
            .keys()
            .any(|k| k.starts_with("lo.") || k.starts_with("docker0.") || k.starts_with("veth")));
        for dev in [
            "bond0",
            "eth1",
            "bond0.100",
            "vlan20",
            "wlp3s0",
            "ib0",
            "enp5s0f1",
        ] {
            assert!(v.contains_key(&format!("{dev}.rx_byte")), "{dev}");
        }
        // 18 metrics for each interface sent.
        let mut per_dev: std::collections::BTreeMap<&str, usize> = Default::default();
        for k in v.keys() {
            *per_dev
                .entry(k.rsplit_once('.').map_or("", |(d, _)| d))
                .or_default() += 1;
        }
        assert_eq!(per_dev.len(), 13, "{per_dev:?}");
        assert!(per_dev.values().all(|n| *n == 18), "{per_dev:?}");
    }

    #[test]
    fn not_greedy_and_other_units() {
        let opts = NetworkConfig {
            interfaces: vec!["eth0".into(), "lo".into()],
            greedy: false,
            byte_unit: vec!["kilobyte".into()],
        };
        let (_, second) = network(&opts, "proc/busy-t0/net/dev", "proc/busy-t1/net/dev");
        let v = values(&second);
        assert!(close(v["eth0.rx_kilobyte"], 100_000.0 / 1024.0));
        assert!(v.contains_key("lo.tx_kilobyte"));
        assert!(!v.contains_key("eth0.rx_byte"));
        assert!(!v.keys().any(|k| k.starts_with("eth1")), "eth1 is not eth0");
        assert_eq!(v.len(), 2 * 16);
    }

    #[test]
    fn old_kernels_join_the_name_and_the_first_count() {
        let line = "  em1:3359852461681 2645850679 1 2 3 4 5 6 7 8 9 10 11 12 13 14\n";
        let got: Vec<_> = parse(line).collect();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, "em1");
        assert_eq!(got[0].1[..3], [3_359_852_461_681, 2_645_850_679, 1]);
        assert_eq!(got[0].1[15], 14);
        // Too few numbers, or words: not an interface line.
        assert_eq!(
            parse("eth0: 1 2 3\n x: a b c d e f g h i j k l m n o p\n").count(),
            0
        );
    }

    #[test]
    fn this_hosts_capture_parses() {
        let text = std::fs::read_to_string(fixture("proc/server-a/net/dev")).expect("fixture");
        let devs: Vec<_> = parse(&text).map(|(d, _)| d).collect();
        assert!(devs.contains(&"eth0") && devs.contains(&"lo"), "{devs:?}");
    }

    #[test]
    fn bad_options_name_their_key() {
        let bad = |opts: NetworkConfig| match Network::new(&opts, &Config::default()) {
            Err(e) => e.to_string(),
            Ok(_) => String::new(),
        };
        let e = bad(NetworkConfig {
            interfaces: vec!["eth(".into()],
            ..NetworkConfig::default()
        });
        assert!(e.contains("collectors.network.interfaces"), "{e}");
        let e = bad(NetworkConfig {
            byte_unit: vec!["parsec".into()],
            ..NetworkConfig::default()
        });
        assert!(e.contains("collectors.network.byte_unit"), "{e}");
        let e = bad(NetworkConfig {
            interfaces: vec![],
            ..NetworkConfig::default()
        });
        assert!(e.contains("collectors.network.interfaces"), "{e}");
    }

    #[test]
    fn a_missing_file_sends_nothing_and_is_no_error() {
        let mut c = Network::new(&NetworkConfig::default(), &Config::default()).expect("network");
        c.file = PathBuf::from("/nonexistent/net/dev");
        let (first, second) = two_runs(&mut c, 10.0, |_, _| {});
        assert!(first.is_empty() && second.is_empty());
    }
}
