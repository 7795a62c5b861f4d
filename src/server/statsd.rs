//! The statsd server: etsy statsd 0.9.0's line protocol in, its Graphite
//! backend's flush out, same names and values.
//!
//! [`Aggregator`] holds the counters, timers, gauges and sets between
//! flushes and reads lines exactly as statsd does (JavaScript number rules
//! included); [`Aggregator::flush`] writes what statsd's Graphite backend
//! writes. [`run`] puts it behind UDP and TCP listeners and a flush timer.

use super::js;
use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};

/// A `histogram` entry: timers whose name contains `metric` get `bins`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistogramSpec {
    pub metric: String,
    /// Upper bounds of the bins; `"inf"` for the last, open one.
    pub bins: Vec<toml::Value>,
}

/// `[server.statsd]` options (statsd's keys in snake_case).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StatsdServerConfig {
    /// Address of the UDP and TCP listeners.
    pub listen: String,
    /// Address of the management interface.
    pub admin: String,
    /// Where flushes go (Graphite plaintext over TCP).
    pub graphite: String,
    /// Seconds between flushes.
    pub flush_interval: f64,
    pub legacy_namespace: bool,
    pub global_prefix: String,
    pub prefix_counter: String,
    pub prefix_timer: String,
    pub prefix_gauge: String,
    pub prefix_set: String,
    /// Appended to every name ("" for none).
    pub global_suffix: String,
    /// statsd's own metrics' prefix (`prefixStats`).
    pub prefix_stats: String,
    pub percent_threshold: Vec<f64>,
    pub histogram: Vec<HistogramSpec>,
    /// Also send `stats_counts.*` (or `.count`).
    pub flush_counts: bool,
    /// Delete every kind of idle stat after a flush.
    pub delete_idle_stats: bool,
    pub delete_counters: bool,
    pub delete_timers: bool,
    pub delete_gauges: bool,
    pub delete_sets: bool,
    /// Clean key names (whitespace to `_`, `/` to `-`, other odd characters removed).
    pub key_name_sanitize: bool,
    /// Most distinct keys held; lines for new keys past it are dropped and counted.
    pub max_keys: usize,
    /// Flushes held while Graphite is down.
    pub max_pending_flushes: usize,
}

impl Default for StatsdServerConfig {
    fn default() -> Self {
        StatsdServerConfig {
            listen: "127.0.0.1:8125".into(),
            admin: "127.0.0.1:8126".into(),
            graphite: "127.0.0.1:2003".into(),
            flush_interval: 10.0,
            legacy_namespace: true,
            global_prefix: "stats".into(),
            prefix_counter: "counters".into(),
            prefix_timer: "timers".into(),
            prefix_gauge: "gauges".into(),
            prefix_set: "sets".into(),
            global_suffix: String::new(),
            prefix_stats: "statsd".into(),
            percent_threshold: vec![90.0],
            histogram: Vec::new(),
            flush_counts: true,
            delete_idle_stats: false,
            delete_counters: false,
            delete_timers: false,
            delete_gauges: false,
            delete_sets: false,
            key_name_sanitize: true,
            max_keys: 1_000_000,
            max_pending_flushes: 60,
        }
    }
}

impl StatsdServerConfig {
    pub fn validate(&self, key: &str) -> Result<(), ConfigError> {
        for (k, v) in [
            ("listen", &self.listen),
            ("admin", &self.admin),
            ("graphite", &self.graphite),
        ] {
            let ok = v
                .rsplit_once(':')
                .is_some_and(|(h, p)| !h.is_empty() && p.parse::<u16>().is_ok());
            if !ok {
                return Err(ConfigError::new(
                    format!("{key}.{k}"),
                    format!("{v:?}: expected host:port"),
                ));
            }
        }
        if !(self.flush_interval.is_finite() && self.flush_interval >= 0.01) {
            return Err(ConfigError::new(
                format!("{key}.flush_interval"),
                "must be at least 0.01 seconds",
            ));
        }
        for h in &self.histogram {
            for b in &h.bins {
                let ok =
                    b.as_float().is_some() || b.as_integer().is_some() || b.as_str() == Some("inf");
                if !ok {
                    return Err(ConfigError::new(
                        format!("{key}.histogram"),
                        format!("bin {b} is not a number or \"inf\""),
                    ));
                }
            }
        }
        if self.max_keys == 0 || self.max_pending_flushes == 0 {
            return Err(ConfigError::new(
                format!("{key}.max_keys"),
                "max_keys and max_pending_flushes must be at least 1",
            ));
        }
        Ok(())
    }
}

/// statsd's own counters, kept like any other counter.
struct Internal {
    bad_lines: String,
    packets: String,
    metrics: String,
    lag: String,
}

/// Everything received since the last flush.
pub struct Aggregator {
    cfg: StatsdServerConfig,
    /// Counters by key (each key stored once: counters are the bulk of a
    /// busy server's keys).
    counters: HashMap<String, f64>,
    timers: Vec<(String, Vec<f64>, f64)>,
    timer_index: HashMap<String, usize>,
    gauges: Vec<(String, f64)>,
    gauge_index: HashMap<String, usize>,
    /// Gauges set since the last flush, deleted by it under `delete_gauges`.
    gauges_touched: HashSet<String>,
    sets: Vec<(String, HashSet<String>)>,
    set_index: HashMap<String, usize>,
    internal: Internal,
    /// Lines dropped because `max_keys` was reached.
    pub dropped_keys: u64,
    /// Lines that were not statsd lines, since start.
    pub bad_lines_total: u64,
    /// Unix time of the last message.
    pub last_msg_seen: i64,
    old_timestamp: i64,
}

fn sanitize(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    let mut in_space = false;
    for c in key.chars() {
        if c.is_whitespace() || c == '\u{feff}' {
            if !in_space {
                out.push('_');
            }
            in_space = true;
            continue;
        }
        in_space = false;
        match c {
            '/' => out.push('-'),
            'a'..='z' | 'A'..='Z' | '0'..='9' | '_' | '-' | '.' | ';' | '=' => out.push(c),
            _ => {}
        }
    }
    out
}

/// statsd's `isNumber`: not empty and not NaN.
fn is_number(s: &str) -> bool {
    !s.is_empty() && !js::number(s).is_nan()
}

/// statsd's `is_valid_packet` over the `|`-separated fields of one value.
fn valid(fields: &[&str]) -> bool {
    let Some(kind) = fields.get(1) else {
        return false;
    };
    if let Some(rate) = fields.get(2) {
        let ok = rate.len() > 1 && rate.starts_with('@') && {
            let n = &rate[1..];
            is_number(n) && !n.starts_with('-')
        };
        if !ok {
            return false;
        }
    }
    match *kind {
        "s" => true,
        "ms" => is_number(fields[0]) && js::number(fields[0]) >= 0.0,
        _ => is_number(fields[0]),
    }
}

impl Aggregator {
    pub fn new(cfg: StatsdServerConfig) -> Self {
        let p = cfg.prefix_stats.clone();
        let internal = Internal {
            bad_lines: format!("{p}.bad_lines_seen"),
            packets: format!("{p}.packets_received"),
            metrics: format!("{p}.metrics_received"),
            lag: format!("{p}.timestamp_lag"),
        };
        let mut a = Aggregator {
            cfg,
            counters: HashMap::new(),
            timers: Vec::new(),
            timer_index: HashMap::new(),
            gauges: Vec::new(),
            gauge_index: HashMap::new(),
            gauges_touched: HashSet::new(),
            sets: Vec::new(),
            set_index: HashMap::new(),
            internal,
            dropped_keys: 0,
            bad_lines_total: 0,
            last_msg_seen: crate::whisper::unix_now(),
            old_timestamp: 0,
        };
        for k in [
            a.internal.bad_lines.clone(),
            a.internal.packets.clone(),
            a.internal.metrics.clone(),
        ] {
            a.counter_add(&k, 0.0);
        }
        a
    }

    fn keys(&self) -> usize {
        self.counters.len() + self.timers.len() + self.gauges.len() + self.sets.len()
    }

    fn room(&mut self) -> bool {
        if self.keys() < self.cfg.max_keys {
            return true;
        }
        self.dropped_keys += 1;
        false
    }

    fn counter_add(&mut self, key: &str, v: f64) {
        if let Some(c) = self.counters.get_mut(key) {
            *c += v;
        } else if key.starts_with(&self.cfg.prefix_stats) || self.room() {
            self.counters.insert(key.to_string(), v);
        }
    }

    fn bad_line(&mut self) {
        let k = self.internal.bad_lines.clone();
        self.counter_add(&k, 1.0);
        self.bad_lines_total += 1;
    }

    /// Reads one packet (several lines), as statsd's `handlePacket`.
    pub fn packet(&mut self, data: &[u8]) {
        let k = self.internal.packets.clone();
        self.counter_add(&k, 1.0);
        let text = String::from_utf8_lossy(data);
        for line in text.split('\n') {
            if !line.is_empty() {
                self.line(line);
            }
        }
        self.last_msg_seen = crate::whisper::unix_now();
    }

    fn line(&mut self, line: &str) {
        let k = self.internal.metrics.clone();
        self.counter_add(&k, 1.0);
        let mut parts = line.split("|#");
        let head = parts.next().unwrap_or_default();
        let tags: Vec<&str> = match parts.next() {
            Some(t) if !t.is_empty() => t.split(',').collect(),
            _ => Vec::new(),
        };
        let mut bits: Vec<&str> = head.split(':').collect();
        let mut key = bits.remove(0).to_string();
        if !tags.is_empty() {
            // JavaScript's replace with a string changes the first match only.
            let tags: Vec<String> = tags
                .iter()
                .map(|t| t.replacen(';', "_", 1).replacen(':', "=", 1))
                .collect();
            key = format!("{key};{}", tags.join(";"));
        }
        if self.cfg.key_name_sanitize {
            key = sanitize(&key);
        }
        if bits.is_empty() {
            bits.push("1");
        }
        for bit in bits {
            let fields: Vec<&str> = bit.split('|').collect();
            if !valid(&fields) {
                self.bad_line();
                continue;
            }
            let rate = match fields.get(2) {
                Some(r) => {
                    let digits: String = r[1..]
                        .chars()
                        .take_while(|c| c.is_ascii_digit() || *c == '.')
                        .collect();
                    js::number(&digits)
                }
                None => 1.0,
            };
            let value = |default: f64| {
                if fields[0].is_empty() {
                    default
                } else {
                    js::number(fields[0])
                }
            };
            match fields[1].trim() {
                "ms" => {
                    let v = value(0.0);
                    match self.timer_index.get(&key).copied() {
                        Some(i) => {
                            self.timers[i].1.push(v);
                            self.timers[i].2 += 1.0 / rate;
                        }
                        None if self.room() => {
                            self.timer_index.insert(key.clone(), self.timers.len());
                            self.timers.push((key.clone(), vec![v], 1.0 / rate));
                        }
                        None => {}
                    }
                }
                "g" => {
                    let v = value(0.0);
                    let delta = fields[0].starts_with(['-', '+']);
                    if self.cfg.delete_gauges || self.cfg.delete_idle_stats {
                        self.gauges_touched.insert(key.clone());
                    }
                    match self.gauge_index.get(&key).copied() {
                        // statsd adds only to a gauge that is set and not 0.
                        Some(i)
                            if delta && self.gauges[i].1 != 0.0 && !self.gauges[i].1.is_nan() =>
                        {
                            self.gauges[i].1 += v
                        }
                        Some(i) => self.gauges[i].1 = v,
                        None if self.room() => {
                            self.gauge_index.insert(key.clone(), self.gauges.len());
                            self.gauges.push((key.clone(), v));
                        }
                        None => {}
                    }
                }
                "s" => {
                    let member = if fields[0].is_empty() { "0" } else { fields[0] };
                    match self.set_index.get(&key).copied() {
                        Some(i) => {
                            self.sets[i].1.insert(member.to_string());
                        }
                        None if self.room() => {
                            self.set_index.insert(key.clone(), self.sets.len());
                            self.sets
                                .push((key.clone(), HashSet::from([member.to_string()])));
                        }
                        None => {}
                    }
                }
                _ => {
                    let v = value(1.0) * (1.0 / rate);
                    self.counter_add(&key, v);
                }
            }
        }
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

    /// The Graphite lines of one flush at unix time `ts`, then resets as
    /// statsd does. `processing` is statsd's `processing_time` (ms).
    pub fn flush(&mut self, ts: i64) -> Vec<String> {
        let start = std::time::Instant::now();
        let c = self.cfg.clone();
        if self.old_timestamp > 0 {
            let lag = (ts - self.old_timestamp) as f64 - c.flush_interval;
            let k = self.internal.lag.clone();
            match self.gauge_index.get(&k).copied() {
                Some(i) => self.gauges[i].1 = lag,
                None => {
                    self.gauge_index.insert(k.clone(), self.gauges.len());
                    self.gauges.push((k, lag));
                }
            }
        }
        self.old_timestamp = ts;
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
        let mut out = Vec::new();
        let mut line = |name: String, v: f64| out.push(format!("{name} {} {ts}", js::to_string(v)));
        let mut num_stats = 0u64;
        let secs = c.flush_interval;
        for (key, value) in &self.counters {
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
        for (key, values, count) in &self.timers {
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
        for (key, v) in &self.gauges {
            line(fmt(&gauge_ns, key, &[]), *v);
            num_stats += 1;
        }
        for (key, members) in &self.sets {
            line(fmt(&set_ns, key, &["count"]), members.len() as f64);
            num_stats += 1;
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
        self.reset();
        out
    }

    fn reset(&mut self) {
        let c = &self.cfg;
        let all = c.delete_idle_stats;
        let internal = [
            &self.internal.bad_lines,
            &self.internal.packets,
            &self.internal.metrics,
        ];
        if c.delete_counters || all {
            self.counters
                .retain(|k, _| internal.iter().any(|i| k.contains(i.as_str())));
        }
        self.counters.values_mut().for_each(|v| *v = 0.0);
        if c.delete_timers || all {
            self.timers.clear();
            self.timer_index.clear();
        } else {
            for t in &mut self.timers {
                t.1.clear();
                t.2 = 0.0;
            }
        }
        if c.delete_sets || all {
            self.sets.clear();
            self.set_index.clear();
        } else {
            for s in &mut self.sets {
                s.1.clear();
            }
        }
        // Filled only under delete_gauges or delete_idle_stats. One pass and one
        // reindex, however many gauges go.
        if !self.gauges_touched.is_empty() {
            let gone = std::mem::take(&mut self.gauges_touched);
            self.gauges.retain(|(k, _)| !gone.contains(k));
            self.gauge_index = index_of(&self.gauges, |g| &g.0);
        }
    }

    /// Counter values as the management interface shows them.
    pub fn counters(&self) -> Vec<(String, f64)> {
        let mut v: Vec<(String, f64)> =
            self.counters.iter().map(|(k, v)| (k.clone(), *v)).collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    pub fn gauges(&self) -> &[(String, f64)] {
        &self.gauges
    }

    pub fn timer_values(&self) -> impl Iterator<Item = (&str, &[f64])> {
        self.timers
            .iter()
            .map(|(k, v, _)| (k.as_str(), v.as_slice()))
    }

    /// Deletes stats of one kind by name or `prefix.*`; returns the names deleted.
    pub fn delete(&mut self, kind: &str, patterns: &[&str]) -> Vec<String> {
        let matches = |k: &str| {
            patterns.iter().any(|p| match p.strip_suffix('*') {
                Some(pre) => k.starts_with(pre),
                None => k == *p,
            })
        };
        let mut gone = Vec::new();
        match kind {
            "counters" => self.counters.retain(|k, _| {
                let hit = matches(k);
                if hit {
                    gone.push(k.clone());
                }
                !hit
            }),
            "timers" => {
                remove_matching(&mut self.timers, |t| &t.0, matches, &mut gone);
                self.timer_index = index_of(&self.timers, |t| &t.0);
            }
            _ => {
                remove_matching(&mut self.gauges, |g| &g.0, matches, &mut gone);
                self.gauge_index = index_of(&self.gauges, |g| &g.0);
            }
        }
        gone
    }
}

/// Where each item's key stands in `items`.
fn index_of<T>(items: &[T], key: impl Fn(&T) -> &String) -> HashMap<String, usize> {
    items
        .iter()
        .enumerate()
        .map(|(i, t)| (key(t).clone(), i))
        .collect()
}

/// Removes the items whose key `matches`, noting their keys in `gone`.
fn remove_matching<T>(
    items: &mut Vec<T>,
    key: impl Fn(&T) -> &String,
    matches: impl Fn(&str) -> bool,
    gone: &mut Vec<String>,
) {
    items.retain(|t| {
        let k = key(t);
        let hit = matches(k);
        if hit {
            gone.push(k.clone());
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

/// The running statsd server's state shared by its tasks.
struct Shared {
    agg: std::sync::Mutex<Aggregator>,
    healthy: std::sync::atomic::AtomicBool,
    started: i64,
    last_flush: std::sync::atomic::AtomicI64,
    last_exception: std::sync::atomic::AtomicI64,
    flush_time: std::sync::atomic::AtomicI64,
    flush_length: std::sync::atomic::AtomicI64,
}

fn lock(s: &Shared) -> std::sync::MutexGuard<'_, Aggregator> {
    s.agg.lock().unwrap_or_else(|p| p.into_inner())
}

/// Runs the statsd server until `shutdown` resolves; then flushes once more.
pub async fn run(
    cfg: StatsdServerConfig,
    shutdown: impl std::future::Future<Output = ()>,
) -> std::io::Result<()> {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
    let now = crate::whisper::unix_now();
    let shared = std::sync::Arc::new(Shared {
        agg: std::sync::Mutex::new(Aggregator::new(cfg.clone())),
        healthy: std::sync::atomic::AtomicBool::new(true),
        started: now,
        last_flush: std::sync::atomic::AtomicI64::new(now),
        last_exception: std::sync::atomic::AtomicI64::new(0),
        flush_time: std::sync::atomic::AtomicI64::new(0),
        flush_length: std::sync::atomic::AtomicI64::new(0),
    });
    let udp = tokio::net::UdpSocket::bind(&cfg.listen).await?;
    // A deep receive queue absorbs bursts while a flush holds the aggregator
    // (beyond net.core.rmem_max needs root; the plain request is the fallback).
    let want = 16 << 20;
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(&udp, want).is_err() {
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(&udp, want);
    }
    let tcp = tokio::net::TcpListener::bind(&cfg.listen).await?;
    let admin = tokio::net::TcpListener::bind(&cfg.admin).await?;
    log::info!(
        "statsd server on {} (udp, tcp), admin {}",
        cfg.listen,
        cfg.admin
    );

    let s = shared.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 65_536];
        loop {
            if let Ok((n, _)) = udp.recv_from(&mut buf).await {
                lock(&s).packet(&buf[..n]);
            }
        }
    });
    let s = shared.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = tcp.accept().await {
            let s = s.clone();
            tokio::spawn(async move {
                let mut lines = tokio::io::BufReader::new(conn).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    lock(&s).packet(line.as_bytes());
                }
            });
        }
    });
    let s = shared.clone();
    let admin_cfg = cfg.clone();
    tokio::spawn(async move {
        while let Ok((conn, _)) = admin.accept().await {
            let (s, c) = (s.clone(), admin_cfg.clone());
            tokio::spawn(async move {
                let (r, mut w) = conn.into_split();
                let mut lines = tokio::io::BufReader::new(r).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let words: Vec<&str> = line.split_whitespace().collect();
                    let Some(cmd) = words.first() else { continue };
                    if *cmd == "quit" {
                        return;
                    }
                    let reply = admin_command(&s, &c, cmd, &words[1..]);
                    if w.write_all(reply.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });

    // Flushes, kept (bounded) while Graphite is down.
    let mut pending: std::collections::VecDeque<Vec<String>> = std::collections::VecDeque::new();
    let period = std::time::Duration::from_secs_f64(cfg.flush_interval);
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    tokio::pin!(shutdown);
    loop {
        let last = tokio::select! {
            _ = ticker.tick() => false,
            _ = &mut shutdown => true,
        };
        let ts = crate::whisper::unix_now();
        let lines = lock(&shared).flush(ts);
        pending.push_back(lines);
        while pending.len() > cfg.max_pending_flushes {
            pending.pop_front();
        }
        send_pending(&cfg, &shared, &mut pending).await;
        if last {
            return Ok(());
        }
    }
}

/// Sends held flushes to Graphite, each followed by statsd's graphiteStats.
async fn send_pending(
    cfg: &StatsdServerConfig,
    s: &Shared,
    pending: &mut std::collections::VecDeque<Vec<String>>,
) {
    use std::sync::atomic::Ordering;
    use tokio::io::AsyncWriteExt;
    let connect = tokio::time::timeout(
        std::time::Duration::from_secs(5),
        tokio::net::TcpStream::connect(&cfg.graphite),
    )
    .await;
    let mut conn = match connect {
        Ok(Ok(c)) => c,
        _ => {
            s.last_exception
                .store(crate::whisper::unix_now(), Ordering::Relaxed);
            log::warn!(
                "statsd: graphite {} unreachable; {} flushes held",
                cfg.graphite,
                pending.len()
            );
            return;
        }
    };
    while let Some(mut lines) = pending.pop_front() {
        let ts = crate::whisper::unix_now();
        let ns = if cfg.legacy_namespace || !cfg.global_prefix.is_empty() {
            let g = if cfg.legacy_namespace {
                "stats"
            } else {
                cfg.global_prefix.as_str()
            };
            format!("{g}.{}", cfg.prefix_stats)
        } else {
            cfg.prefix_stats.clone()
        };
        let suffix = if cfg.global_suffix.is_empty() {
            String::new()
        } else {
            format!(".{}", cfg.global_suffix)
        };
        for (k, a) in [
            ("last_exception", &s.last_exception),
            ("last_flush", &s.last_flush),
            ("flush_time", &s.flush_time),
            ("flush_length", &s.flush_length),
        ] {
            lines.push(format!(
                "{ns}.graphiteStats.{k}{suffix} {} {ts}",
                a.load(Ordering::Relaxed)
            ));
        }
        let mut payload = lines.join("\n");
        payload.push('\n');
        let start = std::time::Instant::now();
        if conn.write_all(payload.as_bytes()).await.is_err() {
            s.last_exception.store(ts, Ordering::Relaxed);
            lines.truncate(lines.len() - 4);
            pending.push_front(lines);
            return;
        }
        s.flush_time
            .store(start.elapsed().as_millis() as i64, Ordering::Relaxed);
        s.flush_length
            .store(payload.len() as i64, Ordering::Relaxed);
        s.last_flush
            .store(crate::whisper::unix_now(), Ordering::Relaxed);
    }
    let _ = conn.shutdown().await;
}

/// One command of the management interface, as statsd answers it.
fn admin_command(s: &Shared, cfg: &StatsdServerConfig, cmd: &str, args: &[&str]) -> String {
    use std::sync::atomic::Ordering;
    let now = crate::whisper::unix_now();
    let map = |items: &[(String, f64)]| -> String {
        let body: Vec<String> = items
            .iter()
            .map(|(k, v)| format!("  '{k}': {}", js::to_string(*v)))
            .collect();
        format!("{{\n{}\n}}\nEND\n\n", body.join(",\n"))
    };
    match cmd {
        "help" => "Commands: stats, counters, timers, gauges, delcounters, deltimers, delgauges, health, config, quit\n\n".into(),
        "config" => {
            let t = toml::to_string(cfg).unwrap_or_default();
            let body: Vec<String> = t.lines().filter_map(|l| l.split_once(" = ")).map(|(k, v)| format!("{k}: {v}")).collect();
            format!("\n{}\n", body.join("\n"))
        }
        "health" => {
            match args.first().map(|a| a.to_ascii_lowercase()).as_deref() {
                Some("up") => s.healthy.store(true, Ordering::Relaxed),
                Some("down") => s.healthy.store(false, Ordering::Relaxed),
                _ => {}
            }
            format!("health: {}\n", if s.healthy.load(Ordering::Relaxed) { "up" } else { "down" })
        }
        "stats" => {
            let a = lock(s);
            format!(
                "uptime: {}\nmessages.last_msg_seen: {}\nmessages.bad_lines_seen: {}\ngraphite.last_flush: {}\ngraphite.last_exception: {}\ngraphite.flush_time: {}\ngraphite.flush_length: {}\nEND\n\n",
                now - s.started,
                now - a.last_msg_seen,
                a.bad_lines_total,
                now - s.last_flush.load(Ordering::Relaxed),
                now - s.last_exception.load(Ordering::Relaxed),
                s.flush_time.load(Ordering::Relaxed),
                s.flush_length.load(Ordering::Relaxed),
            )
        }
        "counters" => map(&lock(s).counters()),
        "gauges" => map(lock(s).gauges()),
        "timers" => {
            let a = lock(s);
            let body: Vec<String> = a
                .timer_values()
                .map(|(k, v)| {
                    let vals: Vec<String> = v.iter().map(|x| js::to_string(*x)).collect();
                    format!("  '{k}': [ {} ]", vals.join(", "))
                })
                .collect();
            format!("{{\n{}\n}}\nEND\n\n", body.join(",\n"))
        }
        "delcounters" | "deltimers" | "delgauges" => {
            let kind = &cmd[3..];
            let gone = lock(s).delete(kind, args);
            let mut out: String = gone.iter().map(|k| format!("deleted: {k}\n")).collect();
            out.push_str("END\n\n");
            out
        }
        _ => "ERROR\n".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn agg() -> Aggregator {
        Aggregator::new(StatsdServerConfig {
            flush_interval: 10.0,
            ..Default::default()
        })
    }

    fn flushed(a: &mut Aggregator) -> HashMap<String, f64> {
        a.flush(1000)
            .iter()
            .filter_map(|l| {
                let mut it = l.split(' ');
                Some((it.next()?.to_string(), js::number(it.next()?)))
            })
            .collect()
    }

    #[test]
    fn deleting_and_expiring_keeps_the_rest_addressable() {
        let mut a = agg();
        a.packet(b"a.x:1|ms\nb.y:2|ms\na.g:1|g\nb.g:2|g\nc.g:3|g");
        assert_eq!(a.delete("timers", &["a.*"]), ["a.x"]);
        assert_eq!(a.delete("gauges", &["a.g", "zz"]), ["a.g"]);
        // The keys left behind still land on their own entries.
        a.packet(b"b.y:4|ms\nc.g:+1|g");
        let t: Vec<_> = a.timer_values().collect();
        assert_eq!(t, [("b.y", &[2.0, 4.0][..])]);
        assert_eq!(
            a.gauges(),
            [("b.g".to_string(), 2.0), ("c.g".to_string(), 4.0)]
        );

        // Under delete_gauges a flush deletes the gauges sent since the last one
        // (statsd's own stay); a later update starts the gauge afresh.
        let mut a = Aggregator::new(StatsdServerConfig {
            delete_gauges: true,
            ..Default::default()
        });
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
        let mut a = agg();
        a.packet(b"hits:3|c\nhits:1|c|@0.5\nlat:10|ms\nlat:20|ms|@0.5\nmem:50|g\nmem:+5|g\nmem:-15|g\nu:a|s\nu:b|s\nu:a|s");
        let v = flushed(&mut a);
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
        let mut a = agg();
        a.packet(b"ok:1|c\nnotype:5\nneg:-1|ms\nrate:1|c|@x\nword:abc|c\n\xff\xfe:1|c\n:1|g\nmulti:1|c:2|c:x|c");
        let v = flushed(&mut a);
        assert_eq!(v["stats_counts.statsd.bad_lines_seen"], 5.0);
        assert_eq!(v["stats_counts.ok"], 1.0);
        assert_eq!(v["stats_counts.multi"], 3.0);
        assert_eq!(a.bad_lines_total, 5);
    }

    #[test]
    fn tags_and_sanitising() {
        let mut a = agg();
        a.packet(b"my key/x!:1|c|#env:prod,role\nbare");
        let v = flushed(&mut a);
        assert_eq!(v["stats_counts.my_key-x;env=prod;role"], 1.0);
        // A key alone gets the value "1" and no type: a bad line, as in statsd.
        assert_eq!(v["stats_counts.statsd.bad_lines_seen"], 1.0);
    }

    proptest::proptest! {
        /// Any bytes as a packet: counted, never a panic; the key count stays bounded.
        #[test]
        fn any_packet_is_read_or_counted(data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let mut a = Aggregator::new(StatsdServerConfig { max_keys: 50, ..Default::default() });
            a.packet(&data);
            let _ = a.flush(1000);
            proptest::prop_assert!(a.keys() <= 50 + 3);
        }

        /// Lines built from statsd's own alphabet, to reach deep into the parser.
        #[test]
        fn statsd_shaped_lines_never_panic(line in "[a-z.;=/ ]{0,6}(:[-+0-9.eEx@]{0,8}(\\|[a-z#]{0,3}){0,3}){0,3}(\\|#[a-z:,;]{0,8})?") {
            let mut a = Aggregator::new(StatsdServerConfig::default());
            a.packet(line.as_bytes());
            for l in a.flush(1000) {
                proptest::prop_assert_eq!(l.split(' ').count(), 3, "{}", l);
            }
        }
    }

    /// Cases worth keeping: huge numbers, NaN-ish and infinite values,
    /// empty fields, thousands of characters.
    #[test]
    fn hostile_lines() {
        let mut a = agg();
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
        assert!(lines.iter().all(|l| l.split(' ').count() == 3));
    }

    #[test]
    fn max_keys_bounds_memory() {
        let mut a = Aggregator::new(StatsdServerConfig {
            max_keys: 5,
            ..Default::default()
        });
        for i in 0..100 {
            a.packet(format!("k{i}:1|c").as_bytes());
        }
        assert!(a.keys() <= 5);
        assert!(a.dropped_keys >= 95);
    }
}
