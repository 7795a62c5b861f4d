//! A sample's Prometheus identity, the same for a scrape and for
//! remote_write: a collector's own series as it gives them, every other
//! sample through the mapping rules (or its sanitised dotted name), with
//! valid names, `_total` on counters, and labels valid, sorted and
//! without duplicates.

use super::mapping::{Mapped, Mapper};
use super::{label_name, metric_name, valid_label_name, Kind};
use crate::sample::{Prom, Sample};
use std::borrow::Cow;
use std::collections::HashMap;

/// Most names whose mapping is remembered; past it the memo starts afresh.
const MEMO_NAMES: usize = 100_000;

/// What the rules made of a dotted name: `None` to drop it.
type MemoEntry = Option<(String, Vec<(String, String)>, Option<String>)>;

/// A sample as Prometheus names it.
#[derive(Debug, Clone, PartialEq)]
pub struct Named {
    /// A valid metric name (a counter's ends in `_total`).
    pub name: Cow<'static, str>,
    pub kind: Kind,
    pub help: Cow<'static, str>,
    /// Valid label names, sorted, each once.
    pub labels: Vec<(Cow<'static, str>, String)>,
    /// A collector's own series (replaced run by run), not a mapped name.
    pub native: bool,
    pub value: f64,
    /// Unix seconds.
    pub timestamp: i64,
}

/// Names samples; keeps the mapping of each dotted name seen.
#[derive(Debug, Default)]
pub struct Namer {
    mapper: Option<Mapper>,
    memo: HashMap<String, MemoEntry>,
    /// Samples a rule dropped.
    pub dropped: u64,
    /// `servers.<host>.`: left off a name no rule maps, so one metric has
    /// one name across hosts (Prometheus tells hosts apart by `instance`).
    host_root: String,
}

/// Valid, sorted, unique label names; `le` and `quantile`, which only
/// histograms and summaries have, become `exported_le`/`exported_quantile`
/// (as Prometheus renames a clash); the first of two alike stays.
pub fn clean_labels(labels: &mut Vec<(Cow<'static, str>, String)>) {
    for (k, _) in labels.iter_mut() {
        if !valid_label_name(k) || k.starts_with("__") {
            *k = Cow::Owned(label_name(k));
        }
        if k == "le" || k == "quantile" {
            k.to_mut().insert_str(0, "exported_");
        }
    }
    labels.sort_by(|a, b| a.0.cmp(&b.0));
    labels.dedup_by(|later, first| later.0 == first.0);
}

impl Namer {
    pub fn new(mapper: Option<Mapper>) -> Self {
        Namer {
            mapper,
            ..Default::default()
        }
    }

    /// Leaves `root` (the agent's `<prefix>.<host>.`) off the names no
    /// rule maps.
    pub fn with_host_root(mut self, root: &str) -> Self {
        self.host_root = root.to_string();
        self
    }

    /// The family name of a dotted name no rule maps.
    fn unmapped(&self, dotted: &str) -> String {
        match dotted.strip_prefix(self.host_root.as_str()) {
            Some(rest) if !self.host_root.is_empty() && !rest.is_empty() => metric_name(rest),
            _ => metric_name(dotted),
        }
    }

    /// The family, labels and help of a dotted name (`None`: dropped).
    fn mapped(&mut self, dotted: &str) -> MemoEntry {
        let Some(mapper) = &self.mapper else {
            return Some((self.unmapped(dotted), Vec::new(), None));
        };
        if let Some(m) = self.memo.get(dotted) {
            return m.clone();
        }
        let m = match mapper.map(dotted) {
            Mapped::Drop => None,
            Mapped::Unmatched => Some((self.unmapped(dotted), Vec::new(), None)),
            Mapped::To {
                name, labels, help, ..
            } => Some((name, labels, help)),
        };
        if self.memo.len() >= MEMO_NAMES {
            self.memo.clear();
        }
        self.memo.insert(dotted.to_string(), m.clone());
        m
    }

    /// `s` as Prometheus names it; `None` for a sample hidden from
    /// Prometheus or dropped by a rule (counted in `dropped`).
    pub fn name(&mut self, s: Sample) -> Option<Named> {
        let (mut name, kind, help, mut labels, native) = match s.prom {
            Prom::Hidden => return None,
            Prom::Series(p) => {
                let p = *p;
                (p.name, p.kind, p.help, p.labels, true)
            }
            Prom::Mapped => {
                let Some((name, rule_labels, help)) = self.mapped(&s.name) else {
                    self.dropped += 1;
                    return None;
                };
                let mut labels: Vec<(Cow<'static, str>, String)> = rule_labels
                    .into_iter()
                    .map(|(k, v)| (Cow::Owned(k), v))
                    .collect();
                // The rule's labels win over tags of the same name.
                for (k, v) in s.tags {
                    if !labels.iter().any(|(l, _)| *l == k) {
                        labels.push((Cow::Owned(k), v));
                    }
                }
                let help = help.unwrap_or_else(|| format!("Graphite metric {}", s.name));
                (
                    Cow::Owned(name),
                    Kind::Gauge,
                    Cow::Owned(help),
                    labels,
                    false,
                )
            }
        };
        if native && !super::valid_metric_name(&name) {
            name = Cow::Owned(metric_name(&name));
        }
        if kind == Kind::Counter && !name.ends_with("_total") {
            name.to_mut().push_str("_total");
        }
        clean_labels(&mut labels);
        Some(Named {
            name,
            kind,
            help,
            labels,
            native,
            value: s.value,
            timestamp: s.timestamp,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::{Kind as SampleKind, Series};
    use std::borrow::Cow;

    #[test]
    fn series_mapped_hidden_and_dropped() {
        let rules = "mappings:\n- match: a.*.drop\n  action: drop\n  name: x\n- match: a.*.c\n  name: a_c\n  labels: {b: $1}\n";
        let mut n = Namer::new(Some(Mapper::parse(rules).expect("rules")));
        let series = Sample::series(
            Series {
                name: Cow::Borrowed("node_forks"),
                kind: Kind::Counter,
                help: Cow::Borrowed("Forks."),
                labels: vec![
                    ("z".into(), "1".into()),
                    ("le".into(), "2".into()),
                    ("a-b".into(), "3".into()),
                ],
            },
            7.0,
            100,
        );
        let got = n.name(series).expect("series");
        assert_eq!(got.name, "node_forks_total");
        assert!(got.native);
        assert_eq!(
            got.labels,
            [
                (Cow::Borrowed("a_b"), "3".to_string()),
                ("exported_le".into(), "2".into()),
                ("z".into(), "1".into())
            ]
        );
        let mut tagged = Sample::new("a.x.c".into(), 1.0, 100, SampleKind::Gauge);
        tagged.tags = vec![("b".into(), "loses".into()), ("__x".into(), "y".into())];
        let got = n.name(tagged).expect("mapped");
        assert_eq!((&*got.name, got.kind), ("a_c", Kind::Gauge));
        assert_eq!(
            got.labels,
            [
                (Cow::Borrowed("_x"), "y".to_string()),
                ("b".into(), "x".into())
            ]
        );
        assert_eq!(got.help, "Graphite metric a.x.c");
        assert_eq!(
            n.name(Sample::new("a.x.drop".into(), 1.0, 1, SampleKind::Gauge)),
            None
        );
        assert_eq!(n.dropped, 1);
        let mut hidden = Sample::new("a.x.c".into(), 1.0, 1, SampleKind::Gauge);
        hidden.prom = Prom::Hidden;
        assert_eq!(n.name(hidden), None);
        assert_eq!(n.dropped, 1, "hidden is not dropped by a rule");
        let got = n
            .name(Sample::new(
                "other.thing-1".into(),
                2.0,
                1,
                SampleKind::Gauge,
            ))
            .expect("unmatched");
        assert_eq!(got.name, "other_thing_1");
    }
    #[test]
    fn the_agents_root_is_left_off_unmapped_names_only() {
        let s = |name: &str| Sample::new(name.into(), 1.0, 0, crate::sample::Kind::Gauge);
        let mut n = Namer::new(Some(
            Mapper::parse(
                "mappings:\n- match: servers.*.nginx.*\n  name: nginx\n  labels: {host: \"$1\"}\n",
            )
            .expect("rules"),
        ))
        .with_host_root("servers.web01.");
        let name = |n: &mut Namer, x: &str| n.name(s(x)).map(|m| m.name.to_string());
        // Rules see the whole Graphite name, as graphite_exporter's do.
        assert_eq!(
            name(&mut n, "servers.web01.nginx.2xx").as_deref(),
            Some("nginx")
        );
        assert_eq!(
            name(&mut n, "servers.web01.carbyne.x").as_deref(),
            Some("carbyne_x")
        );
        // Another root, or the root alone, keep their names.
        assert_eq!(
            name(&mut n, "logs.web01.x").as_deref(),
            Some("logs_web01_x")
        );
        let mut plain = Namer::new(None).with_host_root("servers.web01.");
        assert_eq!(
            name(&mut plain, "servers.web01.cpu.x").as_deref(),
            Some("cpu_x")
        );
    }
}
