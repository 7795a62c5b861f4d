//! tcp: TCP counters from `/proc/net/netstat` (`TcpExt:`) and
//! `/proc/net/snmp` (`Tcp:`), as Diamond's TCPCollector: `tcp.<Key>`, per
//! second, except the `gauges` (`CurrEstab`, `MaxConn`), sent as they are.
//!
//! For Prometheus, node_exporter's netstat families from the same two
//! files: `node_netstat_<Proto>_<Field>` (untyped, raw) for the fields its
//! default `--collector.netstat.fields` selects, of every table (`Ip`,
//! `IpExt`, `Icmp`, `Tcp`, `TcpExt`, `Udp`, `UdpLite`); the udp collector
//! gives `/proc/net/snmp6`'s.

use super::{read_optional, CollectError, Collector, Emit, Missing};
use crate::config::{Config, ConfigError};
use crate::sample::PromKind;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.tcp]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TcpConfig {
    /// The keys sent; empty: every key of both tables.
    pub allowed_names: Vec<String>,
    /// The keys sent as they are instead of per second.
    pub gauges: Vec<String>,
}

pub const DEFAULT_ALLOWED: [&str; 16] = [
    "ListenOverflows",
    "ListenDrops",
    "TCPLoss",
    "TCPTimeouts",
    "TCPFastRetrans",
    "TCPLostRetransmit",
    "TCPForwardRetrans",
    "TCPSlowStartRetrans",
    "CurrEstab",
    "TCPAbortOnMemory",
    "TCPBacklogDrop",
    "AttemptFails",
    "EstabResets",
    "InErrs",
    "ActiveOpens",
    "PassiveOpens",
];

impl Default for TcpConfig {
    fn default() -> Self {
        TcpConfig {
            allowed_names: DEFAULT_ALLOWED.iter().map(|s| s.to_string()).collect(),
            gauges: vec!["CurrEstab".into(), "MaxConn".into()],
        }
    }
}

/// The `key value` pairs of one table of a `/proc/net/snmp`-style text:
/// a `Proto: Key1 Key2 ...` line followed by `Proto: v1 v2 ...`. Values
/// that are not integers (none are, in any kernel) are skipped.
pub fn table<'t>(text: &'t str, proto: &str) -> Vec<(&'t str, i64)> {
    let mut lines = text.lines().filter_map(|l| {
        let (p, rest) = l.split_once(':')?;
        (p == proto).then_some(rest)
    });
    let (Some(keys), Some(values)) = (lines.next(), lines.next()) else {
        return Vec::new();
    };
    keys.split_ascii_whitespace()
        .zip(values.split_ascii_whitespace())
        .filter_map(|(k, v)| Some((k, v.parse().ok()?)))
        .collect()
}

/// node_exporter 1.5's default `--collector.netstat.fields`.
const NODE_FIELDS: &str = r"^(.*_(InErrors|InErrs)|Ip_Forwarding|Ip(6|Ext)_(InOctets|OutOctets)|Icmp6?_(InMsgs|OutMsgs)|TcpExt_(Listen.*|Syncookies.*|TCPSynRetrans|TCPTimeouts)|Tcp_(ActiveOpens|InSegs|OutSegs|OutRsts|PassiveOpens|RetransSegs|CurrEstab)|Udp6?_(InDatagrams|OutDatagrams|NoPorts|RcvbufErrors|SndbufErrors))$";

static NODE_FIELDS_RE: std::sync::LazyLock<Option<regex::Regex>> =
    std::sync::LazyLock::new(|| regex::Regex::new(NODE_FIELDS).ok());

/// Emits `node_netstat_<proto>_<field>` when node_exporter sends that field.
pub fn netstat_series(proto: &str, field: &str, value: f64, out: &mut Emit) {
    let key = format!("{proto}_{field}");
    if !NODE_FIELDS_RE.as_ref().is_some_and(|r| r.is_match(&key)) {
        return;
    }
    out.series_named(
        format!("node_netstat_{key}"),
        PromKind::Untyped,
        format!("Statistic {proto}{field}."),
        Vec::new(),
        value,
    );
}

/// node_exporter's series of every table of a netstat/snmp text (lines in
/// pairs: `Proto: keys`, `Proto: values`).
fn tables_series(text: &str, out: &mut Emit) {
    let mut lines = text.lines();
    while let (Some(keys), Some(values)) = (lines.next(), lines.next()) {
        let (Some((p, keys)), Some((q, values))) = (keys.split_once(':'), values.split_once(':'))
        else {
            continue;
        };
        if p != q {
            continue;
        }
        for (k, v) in keys
            .split_ascii_whitespace()
            .zip(values.split_ascii_whitespace())
        {
            if let Ok(v) = v.parse::<f64>() {
                netstat_series(p, k, v, out);
            }
        }
    }
}

pub struct Tcp {
    /// (file, its table's name)
    sources: [(PathBuf, &'static str); 2],
    allowed: Vec<String>,
    gauges: Vec<String>,
    missing: [Missing; 2],
    buf: String,
}

impl Tcp {
    pub fn new(opts: &TcpConfig, cfg: &Config) -> Result<Self, ConfigError> {
        for (key, list) in [
            ("allowed_names", &opts.allowed_names),
            ("gauges", &opts.gauges),
        ] {
            if let Some(bad) = list.iter().find(|n| n.is_empty() || n.contains(['.', ' '])) {
                return Err(ConfigError::new(
                    format!("collectors.tcp.{key}"),
                    format!("{bad:?} is not a counter name"),
                ));
            }
        }
        Ok(Tcp {
            sources: [
                (cfg.proc_root.join("net/netstat"), "TcpExt"),
                (cfg.proc_root.join("net/snmp"), "Tcp"),
            ],
            allowed: opts.allowed_names.clone(),
            gauges: opts.gauges.clone(),
            missing: Default::default(),
            buf: String::new(),
        })
    }
}

impl Collector for Tcp {
    fn native_series(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        for ((file, proto), missing) in self.sources.iter().zip(&mut self.missing) {
            let Some(text) = read_optional(file, &mut self.buf, missing)? else {
                continue;
            };
            if out.wants_series() {
                tables_series(text, out);
            }
            for (key, value) in table(text, proto) {
                if !self.allowed.is_empty() && !self.allowed.iter().any(|a| a == key) {
                    continue;
                }
                if self.gauges.iter().any(|g| g == key) {
                    out.gauge(key, value as f64);
                } else if let Ok(raw) = u64::try_from(value) {
                    out.rate(key, raw);
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{fixture, two_runs, values};

    fn runs(opts: &TcpConfig) -> (Vec<crate::sample::Sample>, Vec<crate::sample::Sample>) {
        let mut c = Tcp::new(opts, &Config::default()).expect("tcp");
        two_runs(&mut c, 10.0, |c, i| {
            let dir = fixture(if i == 0 { "proc/t0/net" } else { "proc/t1/net" });
            c.sources[0].0 = dir.join("netstat");
            c.sources[1].0 = dir.join("snmp");
        })
    }

    /// The value of `key` in a fixture's table.
    fn raw(file: &str, proto: &str, key: &str) -> i64 {
        let text = std::fs::read_to_string(fixture(file)).expect("fixture");
        table(&text, proto)
            .into_iter()
            .find(|(k, _)| *k == key)
            .map(|(_, v)| v)
            .expect(key)
    }

    #[test]
    fn defaults_on_a_real_capture() {
        let (first, second) = runs(&TcpConfig::default());
        let v0 = values(&first);
        assert_eq!(
            v0.keys().collect::<Vec<_>>(),
            ["CurrEstab"],
            "gauges only at first"
        );
        let v = values(&second);
        let rate = |file: &str, proto: &str, key: &str| {
            (raw(&format!("proc/t1/net/{file}"), proto, key)
                - raw(&format!("proc/t0/net/{file}"), proto, key)) as f64
                / 10.0
        };
        // 40 connections opened between the captures (45 027 -> 45 067).
        assert_eq!(v["ActiveOpens"], 4.0);
        assert_eq!(v["PassiveOpens"], 4.0);
        assert_eq!(v["ActiveOpens"], rate("snmp", "Tcp", "ActiveOpens"));
        assert_eq!(v["ListenDrops"], 0.0);
        assert_eq!(v["CurrEstab"], 0.0);
        assert!(!v.contains_key("MaxConn") && !v.contains_key("InSegs"));
        // This kernel no longer counts TCPLoss and TCPForwardRetrans: the
        // other 14 defaults.
        assert!(!v.contains_key("TCPLoss") && !v.contains_key("TCPForwardRetrans"));
        assert_eq!(v.len(), DEFAULT_ALLOWED.len() - 2);
    }

    #[test]
    fn empty_allowed_names_sends_every_key() {
        let opts = TcpConfig {
            allowed_names: vec![],
            ..TcpConfig::default()
        };
        let (_, second) = runs(&opts);
        let v = values(&second);
        assert_eq!(v["MaxConn"], -1.0, "a gauge, as it is");
        // TcpExt's counters that moved (DelayedACKs 3 218 -> 3 235, TW
        // 41 720 -> 41 760), and Tcp's InSegs (772 283 -> 772 540).
        assert_eq!(v["DelayedACKs"], 1.7);
        assert_eq!(v["TW"], 4.0);
        assert_eq!(v["InSegs"], 25.7);
        assert!(v.contains_key("InSegs") && v.contains_key("TCPTimeouts"));
        let keys = |f: &str, p: &str| {
            table(&std::fs::read_to_string(fixture(f)).expect("fixture"), p).len()
        };
        assert_eq!(
            v.len(),
            keys("proc/t1/net/netstat", "TcpExt") + keys("proc/t1/net/snmp", "Tcp")
        );
    }

    #[test]
    fn node_exporter_netstat_series_of_both_files() {
        let (first, _) = runs(&TcpConfig::default());
        let p = crate::collectors::testutil::series(&first);
        let raw = |f: &str, proto: &str, k: &str| raw(f, proto, k) as f64;
        assert_eq!(
            p["node_netstat_Tcp_CurrEstab"],
            raw("proc/t0/net/snmp", "Tcp", "CurrEstab")
        );
        assert_eq!(
            p["node_netstat_TcpExt_ListenDrops"],
            raw("proc/t0/net/netstat", "TcpExt", "ListenDrops")
        );
        assert_eq!(
            p["node_netstat_Udp_NoPorts"],
            raw("proc/t0/net/snmp", "Udp", "NoPorts")
        );
        assert_eq!(
            p["node_netstat_Ip_Forwarding"],
            raw("proc/t0/net/snmp", "Ip", "Forwarding")
        );
        // Only node_exporter's default fields.
        assert!(!p.contains_key("node_netstat_TcpExt_TCPLoss"));
        assert!(!p.contains_key("node_netstat_Ip_InReceives"));
        assert!(p.keys().all(|k| k.starts_with("node_netstat_")));
    }

    #[test]
    fn tables_and_bad_names() {
        let t = table("Tcp: A B\nUdp: X\nTcp: 1 -1\nUdp: 2\n", "Tcp");
        assert_eq!(t, [("A", 1), ("B", -1)]);
        assert!(table("Tcp: A B\n", "Tcp").is_empty());
        let e = Tcp::new(
            &TcpConfig {
                gauges: vec!["a.b".into()],
                ..TcpConfig::default()
            },
            &Config::default(),
        )
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
        assert!(e.contains("collectors.tcp.gauges"), "{e}");
    }
}
