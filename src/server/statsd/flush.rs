//! A flush: statsd's Graphite lines for what the shards hold, then the
//! reset statsd does; and statsd's timer statistics.

use super::aggregate::{lock, Aggregator};
use super::HistogramSpec;

/// What one key's lines did since the last flush.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Update<'a> {
    /// The sum counted (each value over its sample rate).
    Counter(&'a str, f64),
    /// The value now.
    Gauge(&'a str, f64),
    /// The timings (milliseconds), and the position and weight (1 / the
    /// sample rate) of those whose weight is not 1.
    Timer(&'a str, &'a [f64], &'a [(u32, f64)]),
}
use crate::server::js;
use std::sync::atomic::Ordering;

impl Aggregator {
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
        self.flush_into(ts, None)
    }

    /// [`Aggregator::flush`], also giving `updates` what lines changed
    /// since the last flush: each counter counted, gauge set and timer
    /// timed (the Prometheus exposition's input).
    pub fn flush_into(&self, ts: i64, mut updates: Option<&mut dyn FnMut(Update<'_>)>) -> String {
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
            if let Some(give) = updates.as_mut() {
                for (key, (v, touched)) in &s.counters {
                    if *touched {
                        give(Update::Counter(key, *v));
                    }
                }
                for (key, (v, touched)) in &s.gauges {
                    if *touched {
                        give(Update::Gauge(key, *v));
                    }
                }
                for (key, t) in &s.timers {
                    if !t.values.is_empty() {
                        give(Update::Timer(key, &t.values, &t.weights));
                    }
                }
            }
            for (key, (value, _)) in &s.counters {
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
            for (key, t) in &s.timers {
                for (stat, v) in timer_stats(
                    &t.values,
                    t.count,
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
