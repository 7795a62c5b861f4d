//! Where a render's series come from: the whisper files under
//! `storage_dir`, merged with the points the carbon receiver of the same
//! process still holds in its cache (what graphite-web asks carbonlink for).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::finder::{self, FindError, Node};
use super::functions::{Context, RenderError, Result, Source};
use super::series::Series;
use crate::server::carbon::cache::Cache;
use crate::whisper::Whisper;

/// What every request reads from.
pub struct Storage {
    pub root: PathBuf,
    pub cache: Option<Arc<Cache>>,
    /// The carbon receiver's rules: the archives a metric held only in the
    /// cache will get, so that it reads as its file will.
    pub carbon: Option<Arc<crate::server::carbon::cache::Store>>,
    /// carbon-cache daemons asked for their cached points (`carbonlink_hosts`).
    pub carbonlink: Option<super::carbonlink::CarbonLink>,
    /// The tagged names stored (`seriesByTag`, `/tags`).
    pub tags: super::tags::TagIndex,
}

impl Storage {
    /// Nodes a pattern matches: on disk, and in the cache for metrics not
    /// written yet (a branch or leaf once, disk first), sorted by path.
    pub fn find(&self, pattern: &str, limit: usize) -> std::result::Result<Vec<Node>, FindError> {
        let mut nodes = finder::find(&self.root, pattern, limit)?;
        if let Some(cache) = &self.cache {
            let pat = finder::Pattern::new(pattern)?;
            let mut extra: Vec<Node> = Vec::new();
            for name in cache.metrics_where(|m| pat.matches(m) || pat.branch_of(m).is_some()) {
                let node = match pat.branch_of(&name) {
                    Some(branch) => Node {
                        path: branch,
                        is_leaf: false,
                        file: None,
                        intervals: Vec::new(),
                    },
                    None => Node {
                        path: name,
                        is_leaf: true,
                        file: None,
                        intervals: Vec::new(),
                    },
                };
                if !nodes
                    .iter()
                    .chain(&extra)
                    .any(|n| n.path == node.path && n.is_leaf == node.is_leaf)
                {
                    extra.push(node);
                }
            }
            if nodes.len() + extra.len() > limit {
                return Err(FindError::TooMany(limit));
            }
            nodes.extend(extra);
        }
        nodes.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(nodes)
    }
}

/// One request's reads, within its limits.
pub struct Reader<'a> {
    pub storage: &'a Storage,
    pub max_series: usize,
    pub max_points: usize,
    series: AtomicUsize,
    points: AtomicUsize,
}

impl<'a> Reader<'a> {
    pub fn new(storage: &'a Storage, max_series: usize, max_points: usize) -> Self {
        Reader {
            storage,
            max_series,
            max_points,
            series: AtomicUsize::new(0),
            points: AtomicUsize::new(0),
        }
    }

    pub(super) fn count(&self, series: usize, points: usize) -> Result<()> {
        let s = self.series.fetch_add(series, Ordering::Relaxed) + series;
        if s > self.max_series {
            return Err(RenderError::TooLarge(format!(
                "the request reads more than max_series_per_request ({}) series",
                self.max_series
            )));
        }
        let p = self.points.fetch_add(points, Ordering::Relaxed) + points;
        if p > self.max_points {
            return Err(RenderError::TooLarge(format!(
                "the request reads more than max_points_per_request ({}) points",
                self.max_points
            )));
        }
        Ok(())
    }

    fn read(&self, node: &Node, ctx: &Context) -> Result<Option<Series>> {
        let mut cached = match &self.storage.cache {
            Some(c) => c.query(&node.path),
            None => Vec::new(),
        };
        let Some(file) = &node.file else {
            return self.read_cached(node, ctx, &cached);
        };
        if let Some(link) = &self.storage.carbonlink {
            cached.extend(link.query(&node.path));
        }
        let w = match Whisper::open(file, false) {
            Ok(w) => w,
            Err(e) => return skip_or_fail(file, e),
        };
        // Bound the read before it is made: the slots whisper would read.
        self.count(0, expected_points(&w.header, ctx.start, ctx.end, ctx.now))?;
        let got = match w.fetch(ctx.start, Some(ctx.end), Some(ctx.now), None) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(None),
            Err(e) => return skip_or_fail(file, e),
        };
        self.count(1, 0)?;
        let mut values = got.values;
        if !cached.is_empty() {
            let raw_step = w
                .header
                .archives
                .first()
                .map_or(got.step, |a| a.seconds_per_point as i64);
            merge_cache(
                &cached,
                got.from,
                got.step,
                &mut values,
                w.header.aggregation.name(),
                raw_step,
            );
        }
        Ok(Some(Series::new(
            node.path.clone(),
            got.from,
            got.until,
            got.step,
            values,
            ctx.xff,
        )))
    }
}

impl Reader<'_> {
    /// A metric the cache holds but no file yet: read as whisper would
    /// read the file the receiver is about to create.
    fn read_cached(
        &self,
        node: &Node,
        ctx: &Context,
        cached: &[(f64, f64)],
    ) -> Result<Option<Series>> {
        let Some(store) = &self.storage.carbon else {
            return Ok(None);
        };
        if cached.is_empty() {
            return Ok(None);
        }
        let rules = store.rules();
        let archives = &rules.schema(&node.path).archives;
        let method = rules
            .aggregation(&node.path)
            .method
            .unwrap_or(crate::whisper::Aggregation::Average);
        let header = crate::whisper::Header {
            aggregation: method,
            max_retention: archives.iter().map(|(s, p)| s * p).max().unwrap_or(0),
            x_files_factor: 0.5,
            archives: archives
                .iter()
                .map(|&(spp, points)| crate::whisper::ArchiveInfo {
                    offset: 0,
                    seconds_per_point: spp,
                    points,
                })
                .collect(),
        };
        self.count(0, expected_points(&header, ctx.start, ctx.end, ctx.now))?;
        let oldest = ctx.now - header.max_retention as i64;
        if ctx.start > ctx.now || ctx.end < oldest {
            return Ok(None);
        }
        let (from, until) = (ctx.start.max(oldest), ctx.end.min(ctx.now));
        let diff = ctx.now - from;
        let Some(a) = header
            .archives
            .iter()
            .find(|a| a.retention() as i64 >= diff)
            .or(header.archives.last())
        else {
            return Ok(None);
        };
        let step = (a.seconds_per_point as i64).max(1);
        let from_i = from - from.rem_euclid(step) + step;
        let mut until_i = until - until.rem_euclid(step) + step;
        if from_i == until_i {
            until_i += step;
        }
        let mut values = vec![None; ((until_i - from_i) / step).max(0) as usize];
        let raw_step = header
            .archives
            .first()
            .map_or(step, |a| a.seconds_per_point as i64);
        merge_cache(cached, from_i, step, &mut values, method.name(), raw_step);
        self.count(1, 0)?;
        Ok(Some(Series::new(
            node.path.clone(),
            from_i,
            until_i,
            step,
            values,
            ctx.xff,
        )))
    }
}

impl Source for Reader<'_> {
    fn fetch(&self, pattern: &str, ctx: &Context) -> Result<Vec<Series>> {
        let room = self
            .max_series
            .saturating_sub(self.series.load(Ordering::Relaxed));
        let nodes = self
            .storage
            .find(pattern, room.max(1))
            .map_err(|e| match e {
                FindError::TooMany(_) => RenderError::TooLarge(format!(
                    "{pattern:?} matches more than max_series_per_request ({}) series",
                    self.max_series
                )),
                FindError::Unavailable(..) => RenderError::Unavailable(e.to_string()),
                e => RenderError::Input(e.to_string()),
            })?;
        let mut out: Vec<Series> = Vec::new();
        for node in nodes.iter().filter(|n| n.is_leaf) {
            if let Some(mut s) = self.read(node, ctx)? {
                s.path_expression = pattern.to_string();
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        Ok(out)
    }

    fn fetch_tagged(&self, exprs: &[String], raw: &str, ctx: &Context) -> Result<Vec<Series>> {
        let exprs: Vec<&str> = exprs.iter().map(String::as_str).collect();
        let names = self.storage.tags.find(&exprs).map_err(RenderError::Input)?;
        if names.len() > self.max_series {
            return Err(RenderError::TooLarge(format!(
                "{raw} selects more than max_series_per_request ({}) series",
                self.max_series
            )));
        }
        let mut out = Vec::new();
        for name in names {
            let file = crate::server::carbon::names::path(&self.storage.root, &name);
            let node = Node {
                file: file.is_file().then_some(file),
                intervals: Vec::new(),
                path: name,
                is_leaf: true,
            };
            if let Some(mut s) = self.read(&node, ctx)? {
                s.path_expression = raw.to_string();
                out.push(s);
            }
        }
        Ok(out)
    }
}

/// A file that cannot be read: skipped when it is being replaced or is
/// damaged (graphite-web logs and skips it); the whole request answered
/// 503 when the process is short of file descriptors or memory, since
/// skipping would give a wrong sum with a 200.
fn skip_or_fail(file: &std::path::Path, e: crate::whisper::WhisperError) -> Result<Option<Series>> {
    if let crate::whisper::WhisperError::Io { source, .. } = &e {
        if super::functions::short_of_resources(source) {
            return Err(RenderError::Unavailable(format!(
                "cannot read {}: {source}; try again (or raise the service's open files limit)",
                file.display()
            )));
        }
    }
    log::warn!("web: cannot read {}: {e}", file.display());
    Ok(None)
}

/// The slots a whisper fetch of `[from, until]` reads (the archive chosen
/// as whisper chooses it), so that a huge read is refused before it is made.
fn expected_points(h: &crate::whisper::Header, from: i64, until: i64, now: i64) -> usize {
    let oldest = now - h.max_retention as i64;
    if from > now || until < oldest {
        return 0;
    }
    let (from, until) = (from.max(oldest), until.min(now));
    let diff = now - from;
    let Some(a) = h
        .archives
        .iter()
        .find(|a| a.retention() as i64 >= diff)
        .or(h.archives.last())
    else {
        return 0;
    };
    ((until - from) / (a.seconds_per_point.max(1) as i64) + 2).max(0) as usize
}

/// graphite-web's `merge_with_cache`: cached points laid over the values
/// read, first reduced to one per raw slot (the last), then consolidated
/// to the read step by the file's aggregation method.
pub fn merge_cache(
    cached: &[(f64, f64)],
    start: i64,
    step: i64,
    values: &mut [Option<f64>],
    method: &str,
    raw_step: i64,
) {
    let mut per_slot: Vec<(i64, f64)> = Vec::new();
    for &(ts, v) in cached {
        let t = ts as i64;
        let slot = if raw_step > 1 {
            t - t.rem_euclid(raw_step)
        } else {
            t
        };
        match per_slot.iter_mut().find(|(s, _)| *s == slot) {
            Some(p) => p.1 = v,
            None => per_slot.push((slot, v)),
        }
    }
    let consolidated: Vec<(i64, Option<f64>)> = if step != raw_step {
        let mut groups: Vec<(i64, Vec<f64>)> = Vec::new();
        for (t, v) in per_slot {
            let slot = t - t.rem_euclid(step.max(1));
            match groups.iter_mut().find(|(s, _)| *s == slot) {
                Some(g) => g.1.push(v),
                None => groups.push((slot, vec![v])),
            }
        }
        groups
            .into_iter()
            .map(|(slot, vs)| {
                let n = vs.len() as f64;
                let v = match method {
                    "sum" => Some(vs.iter().sum()),
                    "max" => vs.iter().copied().reduce(f64::max),
                    "min" => vs.iter().copied().reduce(f64::min),
                    "last" => vs.last().copied(),
                    _ => Some(vs.iter().sum::<f64>() / n),
                };
                (slot, v)
            })
            .collect()
    } else {
        per_slot.into_iter().map(|(t, v)| (t, Some(v))).collect()
    };
    for (t, v) in consolidated {
        let i = (t - start).div_euclid(step.max(1));
        if i >= 0 && (i as usize) < values.len() {
            values[i as usize] = v;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cache_points_laid_over() {
        let mut v = vec![None, Some(1.0), None];
        // Two points in one 60 s slot: the last wins; one outside the range.
        merge_cache(
            &[(125.0, 5.0), (130.0, 7.0), (10.0, 9.0)],
            60,
            60,
            &mut v,
            "average",
            60,
        );
        assert_eq!(v, vec![None, Some(7.0), None]);
        let mut w = vec![None, None];
        // Raw step 60, read step 300: consolidated by the file's method.
        merge_cache(&[(300.0, 2.0), (360.0, 4.0)], 300, 300, &mut w, "sum", 60);
        assert_eq!(w, vec![Some(6.0), None]);
    }
}
