//! The aggregator: counters, timers, gauges and sets between flushes, in
//! shards by key, and the Graphite lines of a flush.

use super::parse::{parse_line, split_on, Op, Update};
use super::StatsdServerConfig;
use crate::server::{held_note, Throttle};
use std::borrow::Cow;
use std::collections::{HashMap, HashSet};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

type Hasher = foldhash::fast::RandomState;
/// Keys as `Box<str>`: 8 bytes less per table slot than `String`.
type Map<V> = HashMap<Box<str>, V, Hasher>;

/// statsd's own counters, kept like any other counter.
pub(super) struct Internal {
    pub(super) bad_lines: String,
    pub(super) packets: String,
    pub(super) metrics: String,
    pub(super) lag: String,
    /// Counted only once something was dropped, so a server that drops
    /// nothing flushes exactly what etsy statsd flushes.
    pub(super) dropped_keys: String,
    pub(super) dropped_members: String,
}

/// A timer's timings since the last flush.
#[derive(Default)]
pub(super) struct Timer {
    pub(super) values: Vec<f64>,
    /// Their count, each weighted by 1 / its sample rate.
    pub(super) count: f64,
    /// The position and weight of each timing whose weight is not 1 (sent
    /// with a sample rate), in order: most timers have none.
    pub(super) weights: Vec<(u32, f64)>,
}

impl Timer {
    fn push(&mut self, v: f64, weight: f64) {
        if weight != 1.0 {
            self.weights.push((self.values.len() as u32, weight));
        }
        self.values.push(v);
        self.count += weight;
    }
}

/// One shard's keys. A key lives in exactly one shard (chosen by its hash),
/// so its updates keep their order whichever socket they arrive on, and
/// receivers working on different shards never wait for each other.
#[derive(Default)]
pub(super) struct Store {
    /// Value, and whether a line counted it since the last flush.
    pub(super) counters: Map<(f64, bool)>,
    /// Values since the last flush and their sample-rate-weighted count.
    pub(super) timers: Map<Timer>,
    /// Value, and whether a line set it since the last flush.
    pub(super) gauges: Map<(f64, bool)>,
    pub(super) sets: Map<HashSet<Box<str>, Hasher>>,
}

/// What the shards may hold, and what they dropped for it.
pub(super) struct Limits {
    pub(super) max_keys: AtomicUsize,
    pub(super) keys: AtomicUsize,
    /// Lines dropped for `max_keys`, since start, and as last reported.
    pub(super) dropped: AtomicU64,
    pub(super) dropped_reported: AtomicU64,
    pub(super) max_members: AtomicUsize,
    pub(super) max_member_bytes: AtomicUsize,
    /// Set members dropped for the two bounds above, since start, and as
    /// last reported.
    pub(super) dropped_members: AtomicU64,
    pub(super) dropped_members_reported: AtomicU64,
    pub(super) log: Throttle,
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
    pub(super) fn dropped_since(&self) -> (u64, u64) {
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
    fn apply(&mut self, op: Op<'_>, limits: &Limits) {
        let key = op.key;
        match op.update {
            Update::Count(v) => self.count(key, v, limits, false),
            Update::Time(v, weight) => match self.timers.get_mut(&*key) {
                Some(t) => t.push(v, weight),
                None if limits.room() => {
                    let mut t = Timer::default();
                    t.push(v, weight);
                    self.timers.insert(Box::from(key), t);
                }
                None => {}
            },
            Update::Gauge(v, delta) => {
                match self.gauges.get_mut(&*key) {
                    // statsd adds only to a gauge that is set and not 0.
                    Some(g) => {
                        if delta && g.0 != 0.0 && !g.0.is_nan() {
                            g.0 += v;
                        } else {
                            g.0 = v;
                        }
                        g.1 = true;
                    }
                    None if limits.room() => {
                        self.gauges.insert(Box::from(key), (v, true));
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
            c.0 += v;
            c.1 = true;
        } else if own {
            limits.keys.fetch_add(1, Ordering::Relaxed);
            self.counters.insert(Box::from(key), (v, true));
        } else if limits.room() {
            self.counters.insert(Box::from(key), (v, true));
        }
    }

    /// After a flush, as statsd: zero or delete what was flushed.
    pub(super) fn reset(&mut self, c: &StatsdServerConfig, internal: &[&str; 3], limits: &Limits) {
        let all = c.delete_idle_stats;
        let before = self.counters.len() + self.timers.len() + self.gauges.len() + self.sets.len();
        if c.delete_counters || all {
            self.counters
                .retain(|k, _| internal.iter().any(|i| k.contains(i)));
        }
        self.counters.values_mut().for_each(|v| *v = (0.0, false));
        if c.delete_timers || all {
            self.timers.clear();
        } else {
            for t in self.timers.values_mut() {
                t.values.clear();
                t.weights.clear();
                t.count = 0.0;
            }
        }
        if c.delete_sets || all {
            self.sets.clear();
        } else {
            self.sets.values_mut().for_each(HashSet::clear);
        }
        if c.delete_gauges || all {
            // The gauges lines set (statsd's own lag gauge stays).
            self.gauges.retain(|_, g| !g.1);
        } else {
            self.gauges.values_mut().for_each(|g| g.1 = false);
        }
        let after = self.counters.len() + self.timers.len() + self.gauges.len() + self.sets.len();
        limits.forget(before - after);
    }
}

/// Everything received since the last flush, in shards by key.
pub struct Aggregator {
    pub(super) cfg: StatsdServerConfig,
    pub(super) shards: Vec<Mutex<Store>>,
    pub(super) hasher: Hasher,
    pub(super) limits: Limits,
    pub(super) internal: Internal,
    /// Lines that were not statsd lines, since start.
    pub(super) bad_lines_total: AtomicU64,
    /// Unix time of the last message.
    pub(super) last_msg_seen: AtomicI64,
    pub(super) old_timestamp: AtomicI64,
}

pub(super) fn lock(m: &Mutex<Store>) -> MutexGuard<'_, Store> {
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

    pub(super) fn shard(&self, key: &str) -> &Mutex<Store> {
        let i = match self.shards.len() {
            1 => 0,
            n => (self.hasher.hash_one(key) % n as u64) as usize,
        };
        &self.shards[i]
    }

    /// Adds to one of statsd's own counters.
    pub(super) fn add(&self, key: &str, v: f64) {
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
                    s.apply(op, &self.limits);
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
                .map(|(k, v)| (k.to_string(), v.0))
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
                .map(|(k, t)| (k.to_string(), t.values.clone()))
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::server::js;

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
    fn a_flush_gives_only_what_lines_changed_since_the_last() {
        let a = agg();
        let updates = |a: &Aggregator| {
            let mut got = Vec::new();
            a.flush_into(1000, Some(&mut |u| got.push(format!("{u:?}"))));
            got.retain(|u| !u.contains("\"statsd."));
            got.sort();
            got
        };
        a.packet(b"c:2|c|@0.5\ng:3|g\ng:+1|g\nt:5|ms|@0.5\nt:7|ms|@0.5\ns:x|s");
        assert_eq!(
            updates(&a),
            [
                "Counter(\"c\", 4.0)",
                "Gauge(\"g\", 4.0)",
                "Timer(\"t\", [5.0, 7.0], [(0, 2.0), (1, 2.0)])"
            ]
        );
        // Idle keys (kept by statsd at 0, or at their value) are not given.
        assert!(updates(&a).is_empty());
        a.packet(b"g:-1|g");
        assert_eq!(updates(&a), ["Gauge(\"g\", 3.0)"]);
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
