//! The aggregator: counters, timers, gauges and sets between flushes, in
//! shards by key, and the Graphite lines of a flush.

use super::parse::{parse_line, split_on, Op, Update};
use super::{HistogramSpec, StatsdServerConfig};
use crate::server::{held_note, js, Throttle};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

type Hasher = foldhash::fast::RandomState;
/// Keys as `Box<str>`: 8 bytes less per table slot than `String`.
type Map<V> = HashMap<Box<str>, V, Hasher>;

/// statsd's own counters, kept like any other counter.
struct Internal {
    bad_lines: String,
    packets: String,
    metrics: String,
    lag: String,
    /// Counted only once something was dropped, so a server that drops
    /// nothing flushes exactly what etsy statsd flushes.
    dropped_keys: String,
    dropped_members: String,
}

/// One shard's keys. A key lives in exactly one shard (chosen by its hash),
/// so its updates keep their order whichever socket they arrive on, and
/// receivers working on different shards never wait for each other.
#[derive(Default)]
struct Store {
    counters: Map<f64>,
    /// Values since the last flush and their sample-rate-weighted count.
    timers: Map<(Vec<f64>, f64)>,
    /// Value, and whether a line set it since the last flush (tracked only
    /// when a flush deletes such gauges).
    gauges: Map<(f64, bool)>,
    sets: Map<HashSet<Box<str>, Hasher>>,
}

/// What the shards may hold, and what they dropped for it.
struct Limits {
    max_keys: AtomicUsize,
    keys: AtomicUsize,
    /// Lines dropped for `max_keys`, since start, and as last reported.
    dropped: AtomicU64,
    dropped_reported: AtomicU64,
    max_members: AtomicUsize,
    max_member_bytes: AtomicUsize,
    /// Set members dropped for the two bounds above, since start, and as
    /// last reported.
    dropped_members: AtomicU64,
    dropped_members_reported: AtomicU64,
    log: Throttle,
}

impl Limits {
    /// Takes one key from the budget, or counts a dropped line.
    fn room(&self) -> bool {
        let ok = self
            .keys
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| {
                (n < self.max_keys.load(Ordering::Relaxed)).then_some(n + 1)
            })
            .is_ok();
        if !ok {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            if let Some(held) = self.log.ready() {
                log::warn!(
                    "statsd: {} keys held (max_keys); a line for a new key dropped{}",
                    self.max_keys.load(Ordering::Relaxed),
                    held_note(held)
                );
            }
        }
        ok
    }

    /// Whether `member` may join a set of `len` members, or counts it dropped.
    fn member(&self, len: usize, member: &str) -> bool {
        let why = if member.len() > self.max_member_bytes.load(Ordering::Relaxed) {
            "longer than max_set_member_bytes"
        } else if len >= self.max_members.load(Ordering::Relaxed) {
            "past max_set_members"
        } else {
            return true;
        };
        self.dropped_members.fetch_add(1, Ordering::Relaxed);
        if let Some(held) = self.log.ready() {
            log::warn!("statsd: a set member dropped, {why}{}", held_note(held));
        }
        false
    }

    /// What was dropped since the last call: (lines for new keys, set members).
    fn dropped_since(&self) -> (u64, u64) {
        let since = |all: &AtomicU64, reported: &AtomicU64| {
            let now = all.load(Ordering::Relaxed);
            now - reported.swap(now, Ordering::Relaxed)
        };
        (
            since(&self.dropped, &self.dropped_reported),
            since(&self.dropped_members, &self.dropped_members_reported),
        )
    }

    fn forget(&self, n: usize) {
        self.keys.fetch_sub(n, Ordering::Relaxed);
    }
}

impl Store {
    fn apply(&mut self, op: Op<'_>, limits: &Limits, cfg: &StatsdServerConfig) {
        let key = op.key;
        match op.update {
            Update::Count(v) => self.count(key, v, limits, false),
            Update::Time(v, weight) => match self.timers.get_mut(&*key) {
                Some(t) => {
                    t.0.push(v);
                    t.1 += weight;
                }
                None if limits.room() => {
                    self.timers.insert(Box::from(key), (vec![v], weight));
                }
                None => {}
            },
            Update::Gauge(v, delta) => {
                let touched = cfg.delete_gauges || cfg.delete_idle_stats;
                match self.gauges.get_mut(&*key) {
                    // statsd adds only to a gauge that is set and not 0.
                    Some(g) => {
                        if delta && g.0 != 0.0 && !g.0.is_nan() {
                            g.0 += v;
                        } else {
                            g.0 = v;
                        }
                        g.1 |= touched;
                    }
                    None if limits.room() => {
                        self.gauges.insert(Box::from(key), (v, touched));
                    }
                    None => {}
                }
            }
            Update::Set(member) => match self.sets.get_mut(&*key) {
                // Looked up first: a member already there costs no allocation.
                Some(s) if !s.contains(member) && limits.member(s.len(), member) => {
                    s.insert(member.into());
                }
                Some(_) => {}
                None if limits.member(0, member) && limits.room() => {
                    let mut s = HashSet::default();
                    s.insert(member.into());
                    self.sets.insert(Box::from(key), s);
                }
                None => {}
            },
        }
    }

    /// statsd's own counters (`own`) never count against `max_keys`.
    fn count(&mut self, key: Cow<'_, str>, v: f64, limits: &Limits, own: bool) {
        if let Some(c) = self.counters.get_mut(&*key) {
            *c += v;
        } else if own {
            limits.keys.fetch_add(1, Ordering::Relaxed);
            self.counters.insert(Box::from(key), v);
        } else if limits.room() {
            self.counters.insert(Box::from(key), v);
        }
    }

    /// After a flush, as statsd: zero or delete what was flushed.
    fn reset(&mut self, c: &StatsdServerConfig, internal: &[&str; 3], limits: &Limits) {
        let all = c.delete_idle_stats;
        let before = self.counters.len() + self.timers.len() + self.gauges.len() + self.sets.len();
        if c.delete_counters || all {
            self.counters
                .retain(|k, _| internal.iter().any(|i| k.contains(i)));
        }
        self.counters.values_mut().for_each(|v| *v = 0.0);
        if c.delete_timers || all {
            self.timers.clear();
        } else {
            for t in self.timers.values_mut() {
                t.0.clear();
                t.1 = 0.0;
            }
        }
        if c.delete_sets || all {
            self.sets.clear();
        } else {
            self.sets.values_mut().for_each(HashSet::clear);
        }
        if c.delete_gauges || all {
            self.gauges.retain(|_, g| !g.1);
        }
        let after = self.counters.len() + self.timers.len() + self.gauges.len() + self.sets.len();
        limits.forget(before - after);
    }
}

/// Everything received since the last flush, in shards by key.
pub struct Aggregator {
    cfg: StatsdServerConfig,
    shards: Vec<Mutex<Store>>,
    hasher: Hasher,
    limits: Limits,
    internal: Internal,
    /// Lines that were not statsd lines, since start.
    bad_lines_total: AtomicU64,
    /// Unix time of the last message.
    last_msg_seen: AtomicI64,
    old_timestamp: AtomicI64,
}

fn lock(m: &Mutex<Store>) -> MutexGuard<'_, Store> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Aggregator {
    /// An aggregator with `shards` independent parts (one per receiving core).
    pub fn new(cfg: StatsdServerConfig, shards: usize) -> Self {
        let p = cfg.prefix_stats.clone();
        let internal = Internal {
            bad_lines: format!("{p}.bad_lines_seen"),
            packets: format!("{p}.packets_received"),
            metrics: format!("{p}.metrics_received"),
            lag: format!("{p}.timestamp_lag"),
            dropped_keys: format!("{p}.dropped_keys"),
            dropped_members: format!("{p}.dropped_set_members"),
        };
        let a = Aggregator {
            limits: Limits {
                max_keys: cfg.max_keys.into(),
                keys: AtomicUsize::new(0),
                dropped: AtomicU64::new(0),
                dropped_reported: AtomicU64::new(0),
                max_members: cfg.max_set_members.into(),
                max_member_bytes: cfg.max_set_member_bytes.into(),
                dropped_members: AtomicU64::new(0),
                dropped_members_reported: AtomicU64::new(0),
                log: Throttle::new(),
            },
            cfg,
            shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(),
            hasher: Hasher::default(),
            internal,
            bad_lines_total: AtomicU64::new(0),
            last_msg_seen: AtomicI64::new(crate::whisper::unix_now()),
            old_timestamp: AtomicI64::new(0),
        };
        for k in [
            &a.internal.bad_lines,
            &a.internal.packets,
            &a.internal.metrics,
        ] {
            a.add(k, 0.0);
        }
        a
    }

    fn shard(&self, key: &str) -> &Mutex<Store> {
        let i = match self.shards.len() {
            1 => 0,
            n => (self.hasher.hash_one(key) % n as u64) as usize,
        };
        &self.shards[i]
    }

    /// Adds to one of statsd's own counters.
    fn add(&self, key: &str, v: f64) {
        lock(self.shard(key)).count(Cow::Borrowed(key), v, &self.limits, true);
    }

    /// Takes the limits of a configuration read again; what is held past
    /// a lowered limit stays until it is flushed or deleted.
    pub fn set_limits(&self, cfg: &StatsdServerConfig) {
        let l = &self.limits;
        l.max_keys.store(cfg.max_keys, Ordering::Relaxed);
        l.max_members.store(cfg.max_set_members, Ordering::Relaxed);
        l.max_member_bytes
            .store(cfg.max_set_member_bytes, Ordering::Relaxed);
    }

    /// Distinct keys held.
    pub fn keys(&self) -> usize {
        self.limits.keys.load(Ordering::Relaxed)
    }

    /// Lines dropped because `max_keys` was reached.
    pub fn dropped_keys(&self) -> u64 {
        self.limits.dropped.load(Ordering::Relaxed)
    }

    /// Counts `n` lines that were not statsd lines (e.g. cut short).
    /// Counts a TCP line longer than `max` bytes as a bad line.
    pub(super) fn count_long_line(&self, max: usize) {
        self.count_bad(1);
        if let Some(held) = self.limits.log.ready() {
            log::warn!(
                "statsd: a line longer than {max} bytes (max_line_bytes) skipped{}",
                held_note(held)
            );
        }
    }

    pub(super) fn count_bad(&self, n: u64) {
        self.add(&self.internal.bad_lines, n as f64);
        self.bad_lines_total.fetch_add(n, Ordering::Relaxed);
    }

    pub fn bad_lines_total(&self) -> u64 {
        self.bad_lines_total.load(Ordering::Relaxed)
    }

    pub fn last_msg_seen(&self) -> i64 {
        self.last_msg_seen.load(Ordering::Relaxed)
    }

    /// Reads one packet (several lines), as statsd's `handlePacket`.
    pub fn packet(&self, data: &[u8]) {
        self.packets(std::iter::once(data));
    }

    /// Reads a batch of packets, taking each shard's lock once.
    pub fn packets<'a>(&self, batch: impl IntoIterator<Item = &'a [u8]>) {
        let texts: Vec<Cow<'_, str>> = batch
            .into_iter()
            .map(|b| match std::str::from_utf8(b) {
                Ok(t) => Cow::Borrowed(t),
                Err(_) => String::from_utf8_lossy(b),
            })
            .collect();
        let n = self.shards.len();
        let mut per_shard: Vec<Vec<Op<'_>>> = (0..n).map(|_| Vec::new()).collect();
        let mut ops = Vec::new();
        let (mut lines, mut bad) = (0u64, 0u64);
        for text in &texts {
            for line in split_on(text, b'\n').filter(|l| !l.is_empty()) {
                lines += 1;
                parse_line(line, self.cfg.key_name_sanitize, &mut ops, &mut bad);
                for op in ops.drain(..) {
                    let i = match n {
                        1 => 0,
                        _ => (self.hasher.hash_one(&*op.key) % n as u64) as usize,
                    };
                    per_shard[i].push(op);
                }
            }
        }
        for (shard, ops) in self.shards.iter().zip(per_shard) {
            if !ops.is_empty() {
                let mut s = lock(shard);
                for op in ops {
                    s.apply(op, &self.limits, &self.cfg);
                }
            }
        }
        self.add(&self.internal.packets, texts.len() as f64);
        self.add(&self.internal.metrics, lines as f64);
        if bad > 0 {
            self.add(&self.internal.bad_lines, bad as f64);
            self.bad_lines_total.fetch_add(bad, Ordering::Relaxed);
        }
        self.last_msg_seen
            .store(crate::whisper::unix_now(), Ordering::Relaxed);
    }

    fn namespaces(&self) -> [Vec<String>; 5] {
        let c = &self.cfg;
        if c.legacy_namespace {
            let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
            return [
                s(&["stats"]),
                s(&["stats"]),
                s(&["stats", "timers"]),
                s(&["stats", "gauges"]),
                s(&["stats", "sets"]),
            ];
        }
        let base: Vec<String> = if c.global_prefix.is_empty() {
            vec![]
        } else {
            vec![c.global_prefix.clone()]
        };
        let with = |p: &str| {
            let mut v = base.clone();
            if !p.is_empty() {
                v.push(p.to_string());
            }
            v
        };
        [
            base.clone(),
            with(&c.prefix_counter),
            with(&c.prefix_timer),
            with(&c.prefix_gauge),
            with(&c.prefix_set),
        ]
    }

    /// The Graphite lines of one flush at unix time `ts` (each ending in a
    /// newline), then resets as statsd does, one shard at a time (the others
    /// keep receiving).
    pub fn flush(&self, ts: i64) -> String {
        let start = std::time::Instant::now();
        let c = &self.cfg;
        let (keys, members) = self.limits.dropped_since();
        for (k, n) in [
            (&self.internal.dropped_keys, keys),
            (&self.internal.dropped_members, members),
        ] {
            if n > 0 {
                self.add(k, n as f64);
            }
        }
        let old = self.old_timestamp.swap(ts, Ordering::Relaxed);
        if old > 0 {
            let lag = (ts - old) as f64 - c.flush_interval;
            let k = &self.internal.lag;
            let mut s = lock(self.shard(k));
            if s.gauges.insert(k.as_str().into(), (lag, false)).is_none() {
                self.limits.keys.fetch_add(1, Ordering::Relaxed);
            }
        }
        let suffix = if c.global_suffix.is_empty() {
            String::new()
        } else {
            format!(".{}", c.global_suffix)
        };
        let fmt = |ns: &[String], key: &str, extra: &[&str]| -> String {
            let mut split = key.split(';');
            let name = split.next().unwrap_or_default();
            let tags: Vec<&str> = split.collect();
            let mut parts: Vec<&str> = ns.iter().map(String::as_str).collect();
            parts.push(name);
            parts.extend_from_slice(extra);
            let tags = if tags.is_empty() {
                String::new()
            } else {
                format!(";{}", tags.join(";"))
            };
            format!("{}{suffix}{tags}", parts.join("."))
        };
        let [global, counter_ns, timer_ns, gauge_ns, set_ns] = self.namespaces();
        let mut out = String::new();
        let mut line = |name: String, v: f64| {
            use std::fmt::Write;
            let _ = writeln!(out, "{name} {} {ts}", js::to_string(v));
        };
        let mut num_stats = 0u64;
        let secs = c.flush_interval;
        let internal = [
            self.internal.bad_lines.as_str(),
            self.internal.packets.as_str(),
            self.internal.metrics.as_str(),
        ];
        for shard in &self.shards {
            let mut s = lock(shard);
            for (key, value) in &s.counters {
                let rate = value / secs;
                if c.legacy_namespace {
                    line(fmt(&counter_ns, key, &[]), rate);
                    if c.flush_counts {
                        line(fmt(&["stats_counts".to_string()], key, &[]), *value);
                    }
                } else {
                    line(fmt(&counter_ns, key, &["rate"]), rate);
                    if c.flush_counts {
                        line(fmt(&counter_ns, key, &["count"]), *value);
                    }
                }
                num_stats += 1;
            }
            for (key, (values, count)) in &s.timers {
                for (stat, v) in timer_stats(
                    values,
                    *count,
                    secs,
                    &c.percent_threshold,
                    &c.histogram,
                    key,
                ) {
                    let parts: Vec<&str> = stat.split('.').collect();
                    line(fmt(&timer_ns, key, &parts), v);
                }
                num_stats += 1;
            }
            for (key, (v, _)) in &s.gauges {
                line(fmt(&gauge_ns, key, &[]), *v);
                num_stats += 1;
            }
            for (key, members) in &s.sets {
                line(fmt(&set_ns, key, &["count"]), members.len() as f64);
                num_stats += 1;
            }
            s.reset(c, &internal, &self.limits);
        }
        let calc = start.elapsed().as_millis() as f64;
        let p = &c.prefix_stats;
        if c.legacy_namespace {
            line(format!("{p}.numStats{suffix}"), num_stats as f64);
            line(
                format!("stats.{p}.graphiteStats.calculationtime{suffix}"),
                calc,
            );
            line(format!("stats.{p}.processing_time{suffix}"), calc);
        } else {
            line(fmt(&global, p, &["numStats"]), num_stats as f64);
            line(fmt(&global, p, &["graphiteStats", "calculationtime"]), calc);
            line(fmt(&global, p, &["processing_time"]), calc);
        }
        out
    }

    /// Every shard's entries of one kind, sorted by key.
    fn gather<V>(&self, pick: impl Fn(&Store) -> Vec<(String, V)>) -> Vec<(String, V)> {
        let mut v: Vec<(String, V)> = self.shards.iter().flat_map(|s| pick(&lock(s))).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// Counter values as the management interface shows them.
    pub fn counters(&self) -> Vec<(String, f64)> {
        self.gather(|s| {
            s.counters
                .iter()
                .map(|(k, v)| (k.to_string(), *v))
                .collect()
        })
    }

    pub fn gauges(&self) -> Vec<(String, f64)> {
        self.gather(|s| s.gauges.iter().map(|(k, g)| (k.to_string(), g.0)).collect())
    }

    pub fn timer_values(&self) -> Vec<(String, Vec<f64>)> {
        self.gather(|s| {
            s.timers
                .iter()
                .map(|(k, t)| (k.to_string(), t.0.clone()))
                .collect()
        })
    }

    /// Deletes stats of one kind by name or `prefix.*`; returns the names deleted.
    pub fn delete(&self, kind: &str, patterns: &[&str]) -> Vec<String> {
        let matches = |k: &str| {
            patterns.iter().any(|p| match p.strip_suffix('*') {
                Some(pre) => k.starts_with(pre),
                None => k == *p,
            })
        };
        let mut gone = Vec::new();
        for shard in &self.shards {
            let mut s = lock(shard);
            match kind {
                "counters" => remove_matching(&mut s.counters, matches, &mut gone),
                "timers" => remove_matching(&mut s.timers, matches, &mut gone),
                _ => remove_matching(&mut s.gauges, matches, &mut gone),
            }
        }
        self.limits.forget(gone.len());
        gone.sort();
        gone
    }
}

/// Removes the entries whose key `matches`, noting their keys in `gone`.
fn remove_matching<V>(items: &mut Map<V>, matches: impl Fn(&str) -> bool, gone: &mut Vec<String>) {
    items.retain(|k, _| {
        let hit = matches(k);
        if hit {
            gone.push(k.to_string());
        }
        !hit
    });
}

/// statsd's timer statistics, in its order (`count_90`, `mean_90`, ...,
/// `std`, `upper`, `lower`, `count`, `count_ps`, `sum`, `sum_squares`,
/// `mean`, `median`, `histogram.bin_*`).
pub fn timer_stats(
    values: &[f64],
    count: f64,
    secs: f64,
    pcts: &[f64],
    histogram: &[HistogramSpec],
    key: &str,
) -> Vec<(String, f64)> {
    let mut out = Vec::new();
    if values.is_empty() {
        out.push(("count".to_string(), 0.0));
        out.push(("count_ps".to_string(), 0.0));
        return out;
    }
    let mut v = values.to_vec();
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = v.len();
    let (min, max) = (v[0], v[n - 1]);
    let mut cum = vec![min];
    let mut cum_sq = vec![min * min];
    for i in 1..n {
        cum.push(v[i] + cum[i - 1]);
        cum_sq.push(v[i] * v[i] + cum_sq[i - 1]);
    }
    let (mut sum, mut sum_sq, mut mean, mut boundary) = (min, min * min, min, max);
    for &pct in pcts {
        let mut num = n;
        if n > 1 {
            num = ((pct.abs() / 100.0 * n as f64) + 0.5).floor() as usize;
            if num == 0 {
                continue;
            }
            if pct > 0.0 {
                boundary = v[num - 1];
                sum = cum[num - 1];
                sum_sq = cum_sq[num - 1];
            } else {
                boundary = v[n - num];
                let before = if n > num { cum[n - num - 1] } else { 0.0 };
                let before_sq = if n > num { cum_sq[n - num - 1] } else { 0.0 };
                sum = cum[n - 1] - before;
                sum_sq = cum_sq[n - 1] - before_sq;
            }
            mean = sum / num as f64;
        }
        let clean = js::to_string(pct)
            .replacen('.', "_", 1)
            .replacen('-', "top", 1);
        out.push((format!("count_{clean}"), num as f64));
        out.push((format!("mean_{clean}"), mean));
        out.push((
            format!("{}_{clean}", if pct > 0.0 { "upper" } else { "lower" }),
            boundary,
        ));
        out.push((format!("sum_{clean}"), sum));
        out.push((format!("sum_squares_{clean}"), sum_sq));
    }
    let sum = cum[n - 1];
    let sum_sq = cum_sq[n - 1];
    let mean = sum / n as f64;
    let diffs: f64 = v
        .iter()
        .map(|x| (x - mean) * (x - mean))
        .fold(0.0, |a, b| a + b);
    let mid = n / 2;
    let median = if n % 2 == 1 {
        v[mid]
    } else {
        (v[mid - 1] + v[mid]) / 2.0
    };
    out.push(("std".into(), (diffs / n as f64).sqrt()));
    out.push(("upper".into(), max));
    out.push(("lower".into(), min));
    out.push(("count".into(), count));
    out.push(("count_ps".into(), count / secs));
    out.push(("sum".into(), sum));
    out.push(("sum_squares".into(), sum_sq));
    out.push(("mean".into(), mean));
    out.push(("median".into(), median));
    if let Some(h) = histogram.iter().find(|h| key.contains(&h.metric)) {
        let mut i = 0;
        for b in &h.bins {
            let (inf, limit, label) = match b {
                toml::Value::String(s) if s == "inf" => (true, f64::INFINITY, "inf".to_string()),
                other => {
                    let x = other
                        .as_float()
                        .or_else(|| other.as_integer().map(|i| i as f64))
                        .unwrap_or(f64::INFINITY);
                    (false, x, js::to_string(x))
                }
            };
            let mut freq = 0;
            while i < n && (inf || v[i] < limit) {
                freq += 1;
                i += 1;
            }
            out.push((
                format!("histogram.bin_{}", label.replacen('.', "_", 1)),
                freq as f64,
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg() -> Aggregator {
        Aggregator::new(
            StatsdServerConfig {
                flush_interval: 10.0,
                ..Default::default()
            },
            2,
        )
    }

    fn flushed(a: &Aggregator) -> HashMap<String, f64> {
        a.flush(1000)
            .lines()
            .filter_map(|l| {
                let mut it = l.split(' ');
                Some((it.next()?.to_string(), js::number(it.next()?)))
            })
            .collect()
    }

    #[test]
    fn deleting_and_expiring_keeps_the_rest_addressable() {
        let a = agg();
        a.packet(b"a.x:1|ms\nb.y:2|ms\na.g:1|g\nb.g:2|g\nc.g:3|g");
        assert_eq!(a.delete("timers", &["a.*"]), ["a.x"]);
        assert_eq!(a.delete("gauges", &["a.g", "zz"]), ["a.g"]);
        // The keys left behind still land on their own entries.
        a.packet(b"b.y:4|ms\nc.g:+1|g");
        assert_eq!(a.timer_values(), [("b.y".to_string(), vec![2.0, 4.0])]);
        assert_eq!(
            a.gauges(),
            [("b.g".to_string(), 2.0), ("c.g".to_string(), 4.0)]
        );

        // Under delete_gauges a flush deletes the gauges sent since the last one
        // (statsd's own stay); a later update starts the gauge afresh.
        let a = Aggregator::new(
            StatsdServerConfig {
                delete_gauges: true,
                ..Default::default()
            },
            2,
        );
        a.packet(b"g1:1|g\ng2:2|g");
        a.flush(1000);
        assert!(a.gauges().iter().all(|(k, _)| k.starts_with("statsd.")));
        a.packet(b"g2:5|g\ng2:+1|g");
        assert!(a.gauges().contains(&("g2".to_string(), 6.0)));
        a.flush(1010);
        assert!(a.gauges().iter().all(|(k, _)| k.starts_with("statsd.")));
    }

    #[test]
    fn the_four_types_and_sample_rates() {
        let a = agg();
        a.packet(b"hits:3|c\nhits:1|c|@0.5\nlat:10|ms\nlat:20|ms|@0.5\nmem:50|g\nmem:+5|g\nmem:-15|g\nu:a|s\nu:b|s\nu:a|s");
        let v = flushed(&a);
        assert_eq!(v["stats.hits"], 0.5);
        assert_eq!(v["stats_counts.hits"], 5.0);
        assert_eq!(v["stats.timers.lat.count"], 3.0);
        assert_eq!(v["stats.timers.lat.mean"], 15.0);
        assert_eq!(v["stats.timers.lat.upper_90"], 20.0);
        assert_eq!(v["stats.gauges.mem"], 40.0);
        assert_eq!(v["stats.sets.u.count"], 2.0);
        assert_eq!(v["stats_counts.statsd.packets_received"], 1.0);
        assert_eq!(v["stats_counts.statsd.metrics_received"], 10.0);
        assert_eq!(v["statsd.numStats"], 7.0);
    }

    #[test]
    fn bad_lines_are_counted_and_the_rest_kept() {
        let a = agg();
        a.packet(b"ok:1|c\nnotype:5\nneg:-1|ms\nrate:1|c|@x\nword:abc|c\n\xff\xfe:1|c\n:1|g\nmulti:1|c:2|c:x|c");
        let v = flushed(&a);
        assert_eq!(v["stats_counts.statsd.bad_lines_seen"], 5.0);
        assert_eq!(v["stats_counts.ok"], 1.0);
        assert_eq!(v["stats_counts.multi"], 3.0);
        assert_eq!(a.bad_lines_total(), 5);
    }

    #[test]
    fn tags_and_sanitising() {
        let a = agg();
        a.packet(b"my key/x!:1|c|#env:prod,role\nbare");
        let v = flushed(&a);
        assert_eq!(v["stats_counts.my_key-x;env=prod;role"], 1.0);
        // A key alone gets the value "1" and no type: a bad line, as in statsd.
        assert_eq!(v["stats_counts.statsd.bad_lines_seen"], 1.0);
    }

    proptest::proptest! {
        /// Any bytes as a packet: counted, never a panic; the key count stays bounded.
        #[test]
        fn any_packet_is_read_or_counted(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let a = Aggregator::new(StatsdServerConfig { max_keys: 50, ..Default::default() }, 2);
            a.packet(&data);
            let _ = a.flush(1000);
            proptest::prop_assert!(a.keys() <= 50 + 3);
        }

        /// Lines built from statsd's own alphabet, to reach deep into the parser.
        #[test]
        fn statsd_shaped_lines_never_panic(line in "[a-z.;=/ ]{0,6}(:[-+0-9.eEx@]{0,8}(\\|[a-z#]{0,3}){0,3}){0,3}(\\|#[a-z:,;]{0,8})?") {
            let a = Aggregator::new(StatsdServerConfig::default(), 2);
            a.packet(line.as_bytes());
            for l in a.flush(1000).lines() {
                proptest::prop_assert_eq!(l.split(' ').count(), 3, "{}", l);
            }
        }
    }

    proptest::proptest! {
        /// Shards change where keys live, never what a flush says.
        #[test]
        fn shards_flush_what_one_store_flushes(
            lines in proptest::collection::vec("k[0-9]{1,2}:[-+]?[0-9]{1,3}\\|(c|ms|g|s)(\\|@0\\.[1-9])?", 1..60),
            per_packet in 1usize..8,
        ) {
            let one = Aggregator::new(StatsdServerConfig::default(), 1);
            let four = Aggregator::new(StatsdServerConfig::default(), 4);
            for round in 0..2 {
                let packets: Vec<String> = lines.chunks(per_packet).map(|c| c.join("\n")).collect();
                for a in [&one, &four] {
                    a.packets(packets.iter().map(|p| p.as_bytes()));
                }
                let [x, y] = [&one, &four].map(|a| {
                    let mut m = flushed(a);
                    m.retain(|k, _| !k.contains("calculationtime") && !k.contains("processing_time"));
                    m
                });
                proptest::prop_assert_eq!(x, y, "round {}", round);
            }
        }
    }

    /// Cases worth keeping: huge numbers, NaN-ish and infinite values,
    /// empty fields, thousands of characters.
    #[test]
    fn hostile_lines() {
        let a = agg();
        let long = format!("{}:1|c", "k".repeat(10_000));
        for p in [
            "x:1e400|c",
            "x:Infinity|g",
            "x:-Infinity|ms",
            "x:NaN|c",
            "x:|c",
            "x:1|c|@",
            "x:1|c|@0",
            "::::|||",
            "\n\n\n",
            long.as_str(),
        ] {
            a.packet(p.as_bytes());
        }
        let lines = a.flush(1000);
        assert!(lines.lines().all(|l| l.split(' ').count() == 3));
    }

    #[test]
    fn max_keys_bounds_memory() {
        let a = Aggregator::new(
            StatsdServerConfig {
                max_keys: 5,
                ..Default::default()
            },
            2,
        );
        for i in 0..100 {
            a.packet(format!("k{i}:1|c").as_bytes());
        }
        assert!(a.keys() <= 5);
        assert!(a.dropped_keys() >= 95);
    }

    #[test]
    fn only_statsds_own_names_pass_max_keys() {
        let a = Aggregator::new(
            StatsdServerConfig {
                max_keys: 5,
                ..Default::default()
            },
            2,
        );
        for i in 0..100 {
            a.packet(format!("statsd.k{i}:1|c\nstatsdx{i}:1|c").as_bytes());
        }
        assert!(a.keys() <= 5, "{}", a.keys());
        let v = flushed(&a);
        assert_eq!(
            v["stats_counts.statsd.dropped_keys"],
            a.dropped_keys() as f64
        );
        assert!(a.dropped_keys() >= 195);
    }

    #[test]
    fn sets_are_bounded_in_members_and_member_length() {
        let a = Aggregator::new(
            StatsdServerConfig {
                max_set_members: 10,
                max_set_member_bytes: 8,
                ..Default::default()
            },
            1,
        );
        let long = "m".repeat(9);
        a.packet(format!("u:{long}|s\nv:{long}|s").as_bytes());
        for i in 0..30 {
            a.packet(format!("u:m{i}|s").as_bytes());
        }
        let v = flushed(&a);
        assert_eq!(v["stats.sets.u.count"], 10.0);
        assert!(!v.contains_key("stats.sets.v.count"));
        assert_eq!(v["stats_counts.statsd.dropped_set_members"], 22.0);
        // Nothing dropped since: counted as 0, as statsd's own counters are.
        a.packet(b"u:again|s");
        let v = flushed(&a);
        assert_eq!(v["stats_counts.statsd.dropped_set_members"], 0.0);
        assert_eq!(v["stats.sets.u.count"], 1.0);
    }
}
