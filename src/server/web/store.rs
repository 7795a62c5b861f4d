//! Where a render's series come from: the whisper files under
//! `storage_dir`, merged with the points the carbon receiver of the same
//! process still holds in its cache (what graphite-web asks carbonlink for).

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use super::finder::{self, FindError, Node};
use super::functions::{Context, Input, RenderError, Result, Source, Stream};
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
    /// Files kept open between requests (`keep_open_files`).
    pub open_files: super::open_files::OpenFiles,
}

impl Storage {
    /// Nodes a pattern matches: on disk, and in the cache for metrics not
    /// written yet (a branch or leaf once, disk first), sorted by path.
    pub fn find(&self, pattern: &str, limit: usize) -> std::result::Result<Vec<Node>, FindError> {
        self.find_with(pattern, limit, finder::find)
    }

    /// `find`'s leaves for a render (`finder::find_leaves`): some may name
    /// files that are not there, which reading skips.
    pub fn find_leaves(
        &self,
        pattern: &str,
        limit: usize,
    ) -> std::result::Result<Vec<Node>, FindError> {
        match self.find_with(pattern, limit, finder::find_leaves) {
            // Unchecked candidates over the limit: count only what is there.
            Err(FindError::TooMany(_)) => self.find(pattern, limit),
            got => got,
        }
    }

    fn find_with(
        &self,
        pattern: &str,
        limit: usize,
        on_disk: fn(&std::path::Path, &str, usize) -> std::result::Result<Vec<Node>, FindError>,
    ) -> std::result::Result<Vec<Node>, FindError> {
        let mut nodes = on_disk(&self.root, pattern, limit)?;
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

/// Files up to this size are read whole at once (a day of minutes is
/// 17 KiB): one read instead of a header read and a points read.
const READ_WHOLE: u64 = 64 * 1024;

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
        let Some(w) = self.open(file, ctx)? else {
            // (Not there, or skipped: what the cache holds for it, if any.)
            return self.read_cached(node, ctx, &cached);
        };
        let got = match w.fetch(ctx.start, Some(ctx.end), Some(ctx.now), None) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.storage.open_files.forget(file);
                return skip_or_fail(file, e);
            }
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
    /// A file opened for reading, once the points it will give fit within
    /// the request's limits; None when it is skipped (see `skip_or_fail`).
    fn open(&self, file: &std::path::Path, ctx: &Context) -> Result<Option<Whisper>> {
        let files = &self.storage.open_files;
        let kept = match files.open(file) {
            Ok(Some(o)) => Whisper::open_shared(o.file, file, o.len, READ_WHOLE)
                .inspect_err(|_| files.forget(file))
                .ok(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            // Not a regular file, or not readable: its own open says why.
            _ => None,
        };
        // Otherwise (a kept descriptor that failed too) opened anew.
        let opened = match kept {
            Some(w) => Ok(w),
            None => Whisper::open_whole(file, READ_WHOLE),
        };
        let w = match opened {
            Ok(w) => w,
            // A candidate of `find_leaves` that is not there.
            Err(crate::whisper::WhisperError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(None)
            }
            Err(e) => return skip_or_fail(file, e).map(|_| None),
        };
        // Bound the read before it is made: the slots whisper would read.
        self.count(0, expected_points(&w.header, ctx.start, ctx.end, ctx.now))?;
        Ok(Some(w))
    }

    /// The leaves a pattern matches, within what is left of the request's
    /// series limit.
    fn leaves(&self, pattern: &str) -> Result<Vec<Node>> {
        let room = self
            .max_series
            .saturating_sub(self.series.load(Ordering::Relaxed));
        let mut nodes = self
            .storage
            .find_leaves(pattern, room.max(1))
            .map_err(|e| match e {
                FindError::TooMany(_) => RenderError::TooLarge(format!(
                    "{pattern:?} matches more than max_series_per_request ({}) series",
                    self.max_series
                )),
                FindError::Unavailable(..) => RenderError::Unavailable(e.to_string()),
                e => RenderError::Input(e.to_string()),
            })?;
        nodes.retain(|n| n.is_leaf);
        Ok(nodes)
    }

    /// One leaf folded into `into`, read undecoded into `buf` when it is
    /// a file alone (no cached points to lay over it); false when `into`
    /// refused it.
    fn fold_one(
        &self,
        node: &Node,
        pattern: &str,
        ctx: &Context,
        into: &mut Stream,
        buf: &mut Vec<u8>,
    ) -> Result<Option<bool>> {
        let plain = self.storage.carbonlink.is_none()
            && self
                .storage
                .cache
                .as_ref()
                .is_none_or(|c| c.query(&node.path).is_empty());
        let file = match &node.file {
            Some(file) if plain => file,
            _ => {
                return Ok(self.read(node, ctx)?.map(|s| {
                    into.add(
                        &s.name,
                        pattern,
                        (s.start, s.end, s.step),
                        Input::Values(&s.values),
                    )
                }))
            }
        };
        let Some(w) = self.open(file, ctx)? else {
            return Ok(None);
        };
        let slots = match w.fetch_slots(ctx.start, ctx.end, ctx.now, std::mem::take(buf)) {
            Ok(Some(s)) => s,
            Ok(None) => return Ok(None),
            Err(e) => {
                self.storage.open_files.forget(file);
                return skip_or_fail(file, e).map(|_| None);
            }
        };
        self.count(1, 0)?;
        let added = into.add(
            &node.path,
            pattern,
            (slots.from, slots.until, slots.step),
            Input::Slots(&slots),
        );
        *buf = slots.into_buffer();
        Ok(Some(added))
    }

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
        let mut out: Vec<Series> = Vec::new();
        for node in &self.leaves(pattern)? {
            if let Some(mut s) = self.read(node, ctx)? {
                s.path_expression = pattern.to_string();
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out.dedup_by(|a, b| a.name == b.name);
        Ok(out)
    }

    fn fold(&self, patterns: &[&str], ctx: &Context, into: &mut Stream) -> Result<bool> {
        let mut buf = Vec::new();
        for pattern in patterns {
            // Leaves come sorted by path, each once: as `fetch` lists them.
            let mut last: Option<&str> = None;
            for node in &self.leaves(pattern)? {
                if last == Some(node.path.as_str()) {
                    continue;
                }
                match self.fold_one(node, pattern, ctx, into, &mut buf)? {
                    Some(false) => return Ok(false),
                    Some(true) => last = Some(&node.path),
                    None => {}
                }
            }
        }
        Ok(true)
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
    use crate::server::web::functions::{evaluate_target, Value};
    use crate::whisper::{create, Aggregation, Allocation};

    /// Files of one shape under `root/servers/<host>/cpu.wsp`: 2 000
    /// minutes (gaps every 7th minute on odd hosts) over a day older, so
    /// that the archive's ring has wrapped and its gaps hold stale points.
    fn files(root: &std::path::Path, hosts: &[&str], now: i64, archives: &[(u32, u32)]) {
        for (n, host) in hosts.iter().enumerate() {
            let path = root.join(format!("servers/{host}/cpu.wsp"));
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            create(
                &path,
                archives,
                0.5,
                Aggregation::Average,
                Allocation::Sparse,
            )
            .expect("create");
            let w = Whisper::open(&path, true).expect("open");
            // A day before, every slot: what the gaps below still hold.
            let old: Vec<(i64, f64)> = (0..2000).map(|i| (now - 86_400 - 60 * i, 1e6)).collect();
            w.update_many(&old, Some(now - 86_400)).expect("update");
            let points: Vec<(i64, f64)> = (0..2000)
                .filter(|i| n % 2 == 0 || i % 7 != 3)
                .map(|i| (now - 60 * i, (n as i64 * 13 + i) as f64 / 3.0))
                .collect();
            w.update_many(&points, Some(now)).expect("update");
        }
    }

    /// A render of the last `from` seconds before `now`.
    fn ctx<'a>(reader: &'a Reader, now: i64, from: i64, xff: f64) -> Context<'a> {
        Context {
            start: now - from,
            end: now,
            now,
            xff,
            source: reader,
        }
    }

    fn storage(root: &std::path::Path) -> Storage {
        Storage {
            root: root.to_path_buf(),
            cache: None,
            carbon: None,
            carbonlink: None,
            tags: super::super::tags::TagIndex::new(&root.join("tags")),
            open_files: super::super::open_files::OpenFiles::new(16),
        }
    }

    /// `sumSeries(p)` and its kin folded while reading give what
    /// `aggregate` gives over the fetched series, to the bit, names and
    /// tags included; files of another shape fall back to it.
    #[test]
    fn folded_aggregates_are_the_fetched_ones() {
        let d = tempfile::tempdir().expect("tempdir");
        let now = 1_800_000_000;
        files(d.path(), &["a", "b", "c", "d"], now, &[(60, 1440)]);
        // A host without the file (a candidate that is not there), one
        // never written, and a directory where a file is expected.
        std::fs::create_dir_all(d.path().join("servers/e")).expect("mkdir");
        std::fs::create_dir_all(d.path().join("servers/f")).expect("mkdir");
        create(
            &d.path().join("servers/f/cpu.wsp"),
            &[(60, 1440)],
            0.5,
            Aggregation::Average,
            Allocation::Sparse,
        )
        .expect("create");
        std::fs::create_dir_all(d.path().join("servers/g/cpu.wsp")).expect("mkdir");
        let st = storage(d.path());
        let generic = |target: &str, from: i64, xff: f64| {
            let reader = Reader::new(&st, 1000, 10_000_000);
            let ctx = ctx(&reader, now, from, xff);
            let call = crate::server::web::grammar::parse(target).expect("parse");
            let crate::server::web::grammar::Node::Call(call) = call else {
                panic!("not a call")
            };
            let lists = call
                .args
                .iter()
                .map(|a| match super::super::functions::evaluate(a, &ctx) {
                    Ok(Value::List(l)) => l,
                    other => panic!("{other:?}"),
                })
                .collect();
            let func = match call.name.as_str() {
                "sumSeries" => "sum",
                "averageSeries" => "average",
                "minSeries" => "min",
                _ => "max",
            };
            super::super::functions::combine_aggregate(&ctx, lists, func)
        };
        let folded = |target: &str, from: i64, xff: f64| {
            let reader = Reader::new(&st, 1000, 10_000_000);
            let ctx = ctx(&reader, now, from, xff);
            evaluate_target(
                &crate::server::web::grammar::parse(target).expect("parse"),
                &ctx,
            )
        };
        for target in [
            "sumSeries(servers.*.cpu)",
            "averageSeries(servers.*.cpu)",
            "minSeries(servers.{a,c}.cpu, servers.b.cpu)",
            "maxSeries(servers.*.cpu, servers.a.cpu)",
            "sumSeries(servers.a.cpu)",
            "sumSeries(servers.nothing.cpu)",
        ] {
            for (from, xff) in [(86_400, 0.0), (3_600, 0.0), (7_200, 0.8), (120, 0.0)] {
                let want = generic(target, from, xff).expect(target);
                let got = folded(target, from, xff).expect(target);
                assert_eq!(got, want, "{target} from -{from}s xff {xff}");
            }
        }
        assert!(
            !folded("sumSeries(servers.*.cpu)", 86_400, 0.0).expect("sum")[0]
                .values
                .iter()
                .all(Option::is_none)
        );
        // Another retention beside: not one shape, so evaluated as usual.
        files(d.path(), &["h"], now, &[(10, 360), (60, 1440)]);
        let want = generic("sumSeries(servers.*.cpu)", 3_600, 0.0).expect("sum");
        assert_eq!(want[0].step, 60);
        assert_eq!(
            folded("sumSeries(servers.*.cpu)", 3_600, 0.0).expect("sum"),
            want
        );
    }

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
