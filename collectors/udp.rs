//! udp: UDP counters from `/proc/net/snmp` (`Udp:`), as Diamond's
//! UDPCollector, with IPv6's (`/proc/net/snmp6`, `Udp6<Key>`) added in
//! where the kernel has them: `udp.<Key>`, per second.
//!
//! For Prometheus, node_exporter's netstat families of `/proc/net/snmp6`
//! (`node_netstat_Ip6_InOctets`, `node_netstat_Udp6_InDatagrams`, ...);
//! the tcp collector gives those of `/proc/net/snmp` and `netstat`.

use super::tcp::table;
use super::{read_optional, CollectError, Collector, Emit, Missing};
use crate::config::{Config, ConfigError};
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.udp]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UdpConfig {
    /// The keys sent; empty: every key of the table.
    pub allowed_names: Vec<String>,
}

pub const DEFAULT_ALLOWED: [&str; 6] = [
    "InDatagrams",
    "NoPorts",
    "InErrors",
    "OutDatagrams",
    "RcvbufErrors",
    "SndbufErrors",
];

impl Default for UdpConfig {
    fn default() -> Self {
        UdpConfig {
            allowed_names: DEFAULT_ALLOWED.iter().map(|s| s.to_string()).collect(),
        }
    }
}

/// The `Udp6<Key> value` lines of a `/proc/net/snmp6` text, as `(Key, value)`.
pub fn udp6(text: &str) -> impl Iterator<Item = (&str, u64)> {
    text.lines().filter_map(|l| {
        let mut it = l.split_ascii_whitespace();
        let key = it.next()?.strip_prefix("Udp6")?;
        Some((key, it.next()?.parse().ok()?))
    })
}

/// node_exporter's series of a `/proc/net/snmp6` text: `Ip6InOctets 5`
/// is the field `InOctets` of `Ip6` (the name up to its `6`).
fn snmp6_series(text: &str, out: &mut Emit) {
    for line in text.lines() {
        let mut it = line.split_ascii_whitespace();
        let (Some(key), Some(v)) = (it.next(), it.next()) else {
            continue;
        };
        let Some(i) = key.find('6') else { continue };
        if let Ok(v) = v.parse::<f64>() {
            super::tcp::netstat_series(&key[..=i], &key[i + 1..], v, out);
        }
    }
}

pub struct Udp {
    snmp: PathBuf,
    snmp6: PathBuf,
    allowed: Vec<String>,
    missing: [Missing; 2],
    buf: String,
    /// The IPv4 counters of this run, IPv6's added in.
    sums: Vec<(String, u64)>,
}

impl Udp {
    pub fn new(opts: &UdpConfig, cfg: &Config) -> Result<Self, ConfigError> {
        if let Some(bad) = opts
            .allowed_names
            .iter()
            .find(|n| n.is_empty() || n.contains(['.', ' ']))
        {
            return Err(ConfigError::new(
                "collectors.udp.allowed_names",
                format!("{bad:?} is not a counter name"),
            ));
        }
        Ok(Udp {
            snmp: cfg.proc_root.join("net/snmp"),
            snmp6: cfg.proc_root.join("net/snmp6"),
            allowed: opts.allowed_names.clone(),
            missing: Default::default(),
            buf: String::new(),
            sums: Vec::new(),
        })
    }
}

impl Collector for Udp {
    fn native_series(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        self.sums.clear();
        let Some(text) = read_optional(&self.snmp, &mut self.buf, &mut self.missing[0])? else {
            return Ok(());
        };
        let allowed = &self.allowed;
        self.sums = table(text, "Udp")
            .into_iter()
            .filter(|(k, _)| allowed.is_empty() || allowed.iter().any(|a| a == k))
            .filter_map(|(k, v)| Some((k.to_string(), u64::try_from(v).ok()?)))
            .collect();
        if let Some(text) = read_optional(&self.snmp6, &mut self.buf, &mut self.missing[1])? {
            if out.wants_series() {
                snmp6_series(text, out);
            }
            for (key, v) in udp6(text) {
                if let Some((_, sum)) = self.sums.iter_mut().find(|(k, _)| k == key) {
                    *sum = sum.wrapping_add(v);
                }
            }
        }
        for (key, raw) in &self.sums {
            out.rate(key, *raw);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{fixture, two_runs, values};

    fn runs(opts: &UdpConfig, v6: bool) -> Vec<crate::sample::Sample> {
        let mut c = Udp::new(opts, &Config::default()).expect("udp");
        let (first, second) = two_runs(&mut c, 10.0, |c, i| {
            let dir = fixture(if i == 0 { "proc/t0/net" } else { "proc/t1/net" });
            c.snmp = dir.join("snmp");
            c.snmp6 = if v6 {
                dir.join("snmp6")
            } else {
                dir.join("none")
            };
        });
        assert!(values(&first).is_empty());
        let p = crate::collectors::testutil::series(&first);
        assert_eq!(v6, p.contains_key("node_netstat_Udp6_InDatagrams"), "{p:?}");
        assert!(p
            .keys()
            .all(|k| k.starts_with("node_netstat_") && k.contains('6')));
        second
    }

    fn raw(t: &str, key: &str) -> (i64, u64) {
        let dir = fixture(&format!("proc/{t}/net"));
        let v4 = table(
            &std::fs::read_to_string(dir.join("snmp")).expect("snmp"),
            "Udp",
        )
        .into_iter()
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v)
        .expect(key);
        let text = std::fs::read_to_string(dir.join("snmp6")).expect("snmp6");
        let v6 = udp6(&text)
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .expect(key);
        (v4, v6)
    }

    #[test]
    fn ipv4_and_ipv6_summed_on_a_real_capture() {
        let v = values(&runs(&UdpConfig::default(), true));
        // 100 datagrams each way over IPv4 (87 466 -> 87 566) and 30 over
        // IPv6 (0 -> 30).
        assert_eq!(v["InDatagrams"], 13.0);
        assert_eq!(v["OutDatagrams"], 13.0);
        let ((a4, a6), (b4, b6)) = (raw("t0", "InDatagrams"), raw("t1", "InDatagrams"));
        assert_eq!((b4 - a4, b6 - a6), (100, 30));
        assert_eq!(v.len(), DEFAULT_ALLOWED.len());
        // Without snmp6 (no IPv6): IPv4 alone.
        let v = values(&runs(&UdpConfig::default(), false));
        assert_eq!(v["InDatagrams"], 10.0);
    }

    #[test]
    fn every_key_when_allowed_names_is_empty() {
        let v = values(&runs(
            &UdpConfig {
                allowed_names: vec![],
            },
            true,
        ));
        assert!(
            v.contains_key("IgnoredMulti") && v.contains_key("InCsumErrors"),
            "{v:?}"
        );
    }
}
