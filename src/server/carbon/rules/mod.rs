//! carbon's rule files, applied where carbon applies them to a received
//! point: the [`filters`] (whitelist, blacklist), then [`rewrite`]'s
//! `[pre]` rules, then the [`aggregation`] rules (feeding the [`buffers`]),
//! then `[post]` for the points passed on. Aggregated points, and the
//! receiver's own, go straight to the cache and the relay, as carbon's
//! generated points do.
//!
//! What the rewrite and aggregation rules make of a name is worked out
//! once and kept (a name's route), so a name costs one lookup per point;
//! the routes are bounded in bytes and forgotten when the rules change.

pub mod aggregation;
pub mod buffers;
pub mod filters;
pub mod rewrite;
mod routes;

use super::names;
use super::schemas::SchemaError;
use super::Parsed;
use aggregation::{AggregationRules, Method};
use buffers::{Buffers, Hint};
use rewrite::{RewriteRules, Stage};
use routes::{Forward, Route, Routes};
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// How often changed rule files are looked for, as carbon does.
pub const RECHECK: Duration = Duration::from_secs(10);

/// Bytes of routes kept before they are all forgotten and worked out again.
const MAX_ROUTE_BYTES: usize = 64 << 20;

/// A rule file in force: what it says, and when it was read.
#[derive(Debug)]
pub struct Watched<T> {
    pub path: PathBuf,
    pub value: T,
    mtime: Option<SystemTime>,
    /// The change last refused (logged once, not at every check).
    refused: Mutex<Option<SystemTime>>,
}

impl<T> Watched<T> {
    /// Reads `path` with `parse`; a missing file reads as an empty one, as
    /// carbon takes it.
    pub fn open(
        path: &Path,
        parse: fn(&str, &str) -> Result<T, SchemaError>,
    ) -> Result<Watched<T>, SchemaError> {
        let file = path.display().to_string();
        let mtime = mtime(path);
        let value = match crate::config::read_text(path) {
            Ok(text) => parse(&text, &file)?,
            Err(_) if !path.exists() => parse("", &file)?,
            Err(e) => {
                return Err(SchemaError {
                    file,
                    line: 0,
                    msg: e.to_string(),
                })
            }
        };
        Ok(Watched {
            path: path.to_path_buf(),
            value,
            mtime,
            refused: Mutex::new(None),
        })
    }

    /// The file read again when it changed since (appeared, or went: then
    /// empty); `None` when it did not, or when it no longer reads, which is
    /// logged: the rules in force stay.
    pub fn renewed(&self, parse: fn(&str, &str) -> Result<T, SchemaError>) -> Option<Watched<T>> {
        let now = mtime(&self.path);
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if now == self.mtime || (now.is_some() && *refused == now) {
            return None;
        }
        match Watched::open(&self.path, parse) {
            Ok(n) => {
                log::info!("carbon: {} read again", self.path.display());
                Some(n)
            }
            Err(e) => {
                log::error!("carbon: {e}; the rules in force stay");
                *refused = now;
                None
            }
        }
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

/// The settings of `[server.carbon]` the rules take.
pub struct Settings<'a> {
    pub rewrite_rules: Option<&'a Path>,
    pub aggregation_rules: Option<&'a Path>,
    pub forward_all: bool,
    pub max_aggregation_intervals: u64,
    pub write_back_frequency: u64,
    pub max_aggregation_bytes: usize,
}

struct State {
    rewrite: Option<Watched<RewriteRules>>,
    aggregation: Option<Watched<AggregationRules>>,
    forward_all: bool,
    routes: Routes,
    buffers: Buffers,
}

/// The rewrite and aggregation rules in force, and the aggregator's buffers.
pub struct Rules {
    state: Mutex<State>,
    /// Whether any rule file is configured (the hot path's shortcut).
    active: AtomicBool,
    /// Whether aggregation rules are configured (own metrics).
    aggregating: AtomicBool,
}

impl Rules {
    pub fn new(s: &Settings) -> Result<Rules, SchemaError> {
        let r = Rules {
            state: Mutex::new(State {
                rewrite: None,
                aggregation: None,
                forward_all: true,
                routes: Routes::new(MAX_ROUTE_BYTES),
                buffers: Buffers::new(0, 0, 0),
            }),
            active: AtomicBool::new(false),
            aggregating: AtomicBool::new(false),
        };
        r.set(s)?;
        Ok(r)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Puts in force the rules of a configuration (at start and on SIGHUP);
    /// nothing changes when a file does not read. The buffers stay: an
    /// output metric keeps its frequency and method until it goes.
    pub fn set(&self, s: &Settings) -> Result<(), SchemaError> {
        // A file in force that did not change is kept, with the routes
        // worked out from it (a SIGHUP costs nothing then).
        let same = |w: Option<(&Path, Option<SystemTime>)>, p: Option<&Path>| match (w, p) {
            (Some((wp, wm)), Some(p)) => wp == p && wm == mtime(p),
            (None, None) => true,
            _ => false,
        };
        let (keep_rewrite, keep_aggregation, same_forward) = {
            let st = self.lock();
            (
                same(
                    st.rewrite.as_ref().map(|w| (w.path.as_path(), w.mtime)),
                    s.rewrite_rules,
                ),
                same(
                    st.aggregation.as_ref().map(|w| (w.path.as_path(), w.mtime)),
                    s.aggregation_rules,
                ),
                st.forward_all == s.forward_all,
            )
        };
        let rewrite = match s.rewrite_rules {
            Some(p) if !keep_rewrite => Some(Watched::open(p, RewriteRules::parse)?),
            _ => None,
        };
        let aggregation = match s.aggregation_rules {
            Some(p) if !keep_aggregation => Some(Watched::open(p, AggregationRules::parse)?),
            _ => None,
        };
        if let Some(w) = &rewrite {
            for (name, line) in &w.value.ignored {
                log::warn!(
                    "carbon: {}:{line}: carbon applies only [pre] and [post]; [{name}] is ignored",
                    w.path.display()
                );
            }
        }
        let mut st = self.lock();
        if !keep_rewrite {
            st.rewrite = rewrite;
        }
        if !keep_aggregation {
            st.aggregation = aggregation;
        }
        self.active.store(
            st.rewrite.is_some() || st.aggregation.is_some(),
            Ordering::Relaxed,
        );
        // Once aggregating, buffers may hold values whatever the rules
        // become: they are still computed, and at shutdown.
        self.aggregating
            .fetch_or(st.aggregation.is_some(), Ordering::Relaxed);
        st.forward_all = s.forward_all;
        st.buffers.max_intervals = s.max_aggregation_intervals;
        st.buffers.write_back = s.write_back_frequency;
        st.buffers.max_bytes = s.max_aggregation_bytes;
        if !(keep_rewrite && keep_aggregation && same_forward) {
            st.routes.clear();
        }
        Ok(())
    }

    /// Reads again a rule file that changed; the receiver asks every [`RECHECK`].
    pub fn refresh(&self) {
        if !self.active.load(Ordering::Relaxed) {
            return;
        }
        let mut st = self.lock();
        let mut changed = false;
        if let Some(n) = st
            .rewrite
            .as_ref()
            .and_then(|w| w.renewed(RewriteRules::parse))
        {
            st.rewrite = Some(n);
            changed = true;
        }
        if let Some(n) = st
            .aggregation
            .as_ref()
            .and_then(|w| w.renewed(AggregationRules::parse))
        {
            st.aggregation = Some(n);
            changed = true;
        }
        if changed {
            st.routes.clear();
        }
    }

    /// Received points (past the lists) through the rules: the values that
    /// feed output metrics go to their buffers; returned are the points to
    /// pass on, renamed by the rewrite rules. A name the rules make one
    /// that cannot be stored is given to `reject` with why.
    pub fn process<'a>(
        &self,
        batch: Vec<Parsed<'a>>,
        now: f64,
        max_name: usize,
        reject: &dyn Fn(&str, &str),
    ) -> Vec<Parsed<'a>> {
        if !self.active.load(Ordering::Relaxed) {
            return batch;
        }
        let mut st = self.lock();
        let st = &mut *st;
        let mut batch = batch;
        batch.retain_mut(|point| {
            // One lookup for a name seen before.
            let route = match st.routes.get_mut(&point.0) {
                Some(route) => route,
                None => {
                    let route = route(st, &point.0, max_name);
                    st.routes.insert(&point.0, route)
                }
            };
            for (n, why) in &route.rejects {
                reject(n, why);
            }
            follow(route, &mut st.buffers, point, now)
        });
        batch
    }

    /// The aggregated points due by `now` (`all`: every one pending, at
    /// shutdown).
    pub fn aggregated(&self, now: f64, all: bool) -> Vec<Parsed<'static>> {
        if !self.aggregating.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let mut points = Vec::new();
        {
            let mut st = self.lock();
            if all {
                st.buffers.compute_all(now, &mut points);
            } else {
                st.buffers.compute_due(now, &mut points);
            }
        }
        points
            .into_iter()
            .map(|(n, t, v)| (Cow::Owned(n.to_string()), t, v))
            .collect()
    }

    /// carbon-aggregator's own metrics (`allocatedBuffers`,
    /// `bufferedDatapoints`, `aggregateDatapointsSent`), with the values
    /// dropped at `max_aggregation_bytes`; none without aggregation rules.
    pub fn own_metrics(&self) -> Vec<(&'static str, f64)> {
        if !self.aggregating.load(Ordering::Relaxed) {
            return Vec::new();
        }
        let mut st = self.lock();
        let (buffers, points) = st.buffers.sizes();
        let sent = std::mem::take(&mut st.buffers.sent);
        let dropped = std::mem::take(&mut st.buffers.dropped);
        vec![
            ("allocatedBuffers", buffers as f64),
            ("bufferedDatapoints", points as f64),
            ("aggregateDatapointsSent", sent as f64),
            ("droppedDatapoints", dropped as f64),
        ]
    }
}

/// A point along its route: its value to the buffers of the output metrics
/// it feeds; whether it is passed on (renamed in place if so).
fn follow(route: &mut Route, buffers: &mut Buffers, point: &mut Parsed<'_>, now: f64) -> bool {
    let (ts, value) = (point.1, point.2);
    for (o, frequency, method, hint) in &mut route.outputs {
        buffers.input(o, hint, *frequency, *method, ts, value, now);
    }
    match &route.forward {
        Forward::No => false,
        Forward::Same => true,
        Forward::As(n) => {
            point.0 = Cow::Owned(n.to_string());
            true
        }
    }
}

/// A name that rules made, as the receiver would take it from a line.
fn storable<'a>(name: &'a str, max_name: usize) -> Result<Cow<'a, str>, String> {
    if name.len() > max_name {
        return Err(format!(
            "a name of {} bytes: its file path would pass the system's limit",
            name.len()
        ));
    }
    names::normalize(name).map_err(|e| e.to_string())
}

/// Why `pattern` (a `what`) does not compile, short for a long one (the
/// regex crate's message repeats the whole pattern).
pub fn regex_error(what: &str, pattern: &str, e: &regex::Error) -> String {
    if pattern.len() <= 200 {
        return format!("{what} {pattern:?} does not compile: {e}");
    }
    let detail = match e {
        regex::Error::Syntax(s) => s
            .lines()
            .rev()
            .find(|l| l.starts_with("error:"))
            .unwrap_or("a syntax error")
            .to_string(),
        other => other.to_string(),
    };
    format!(
        "{what} {:?} ({} bytes) does not compile: {detail}",
        shown(pattern),
        pattern.len()
    )
}

/// One set of all the expressions of `file`, which tells in one pass which
/// of them match. Past the regex engine's size limit (raised to 32 MiB of
/// compiled program), the file is refused as a whole, saying so.
pub fn regex_set<I, S>(patterns: I, file: &str) -> Result<regex::RegexSet, SchemaError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let patterns: Vec<S> = patterns.into_iter().collect();
    regex::RegexSetBuilder::new(patterns.iter().map(AsRef::as_ref))
        .size_limit(32 << 20)
        .build()
        .map_err(|e| SchemaError {
            file: file.to_string(),
            line: 0,
            msg: match e {
                regex::Error::CompiledTooBig(_) => format!(
                    "its {} expressions together pass the regex engine's limit of 32 MiB compiled; \
                     fewer or simpler ones fit (`[a-z0-9_]` rather than `\\w`, which stands for every Unicode letter and digit)",
                    patterns.len()
                ),
                e => e.to_string(),
            },
        })
}

/// A name or line as shown in a message: its first 200 characters.
pub fn shown(name: &str) -> String {
    match name.char_indices().nth(200) {
        Some((i, _)) => format!("{}...", &name[..i]),
        None => name.to_string(),
    }
}

/// What the rules in force make of `name`.
fn route(st: &State, name: &str, max_name: usize) -> Route {
    let mut rejects: Vec<(Box<str>, Box<str>)> = Vec::new();
    let rewrite = st.rewrite.as_ref().map(|w| &w.value);
    let pre = rewrite.map_or(Cow::Borrowed(name), |r| r.apply(Stage::Pre, name));
    let pre = match storable(&pre, max_name) {
        Ok(p) => p.into_owned(),
        Err(why) => {
            let why = format!("rewritten from {:?} by [pre]: {why}", shown(name));
            rejects.push((shown(&pre).into(), why.into()));
            return Route {
                outputs: Vec::new(),
                forward: Forward::No,
                rejects,
            };
        }
    };
    let mut outputs: Vec<(Arc<str>, u64, Method, Hint)> = Vec::new();
    if let Some(a) = &st.aggregation {
        for (rule, out) in a.value.matches(&pre) {
            match storable(&out, max_name) {
                Ok(o) => outputs.push((
                    Arc::from(o.as_ref()),
                    rule.frequency,
                    rule.method,
                    Hint::default(),
                )),
                Err(why) => {
                    let why = format!("aggregated from {:?}: {why}", shown(&pre));
                    rejects.push((shown(&out).into(), why.into()));
                }
            }
        }
    }
    // carbon passes a name on unless it is one of its own outputs.
    if !st.forward_all || outputs.iter().any(|(o, ..)| **o == *pre) {
        return Route {
            outputs,
            forward: Forward::No,
            rejects,
        };
    }
    let post = rewrite.map_or(Cow::Borrowed(pre.as_str()), |r| r.apply(Stage::Post, &pre));
    let forward = match storable(&post, max_name) {
        Ok(p) if p == name => Forward::Same,
        Ok(p) => Forward::As(p.into()),
        Err(why) => {
            let why = format!("rewritten from {:?}: {why}", shown(name));
            rejects.push((shown(&post).into(), why.into()));
            Forward::No
        }
    };
    Route {
        outputs,
        forward,
        rejects,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings<'a>(rewrite: &'a Path, aggregation: &'a Path) -> Settings<'a> {
        Settings {
            rewrite_rules: Some(rewrite),
            aggregation_rules: Some(aggregation),
            forward_all: true,
            max_aggregation_intervals: 5,
            write_back_frequency: 0,
            max_aggregation_bytes: 1 << 20,
        }
    }

    #[test]
    fn pre_rules_feed_aggregation_and_post_rules_rename_what_passes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (rw, ag) = (dir.path().join("rewrite.conf"), dir.path().join("agg.conf"));
        std::fs::write(
            &rw,
            "[pre]\n^srv\\. = servers.\n[post]\n\\.cpu$ = .processor\n",
        )
        .expect("rewrite");
        std::fs::write(
            &ag,
            "servers.all.<m> (10) = sum servers.*.<m>\nservers.<h>.cpu (10) = max servers.<h>.cpu\n",
        )
        .expect("aggregation");
        let r = Rules::new(&settings(&rw, &ag)).expect("rules");
        let rejected = std::cell::RefCell::new(Vec::new());
        let reject = |n: &str, why: &str| rejected.borrow_mut().push(format!("{n}: {why}"));
        let batch: Vec<Parsed> = vec![
            ("srv.a.cpu".into(), 1005.0, 1.0),
            ("srv.b.cpu".into(), 1006.0, 2.0),
            ("other.x".into(), 1006.0, 3.0),
            ("servers.all.mem".into(), 1006.0, 4.0),
        ];
        let out = r.process(batch, 1007.0, 4000, &reject);
        let names: Vec<&str> = out.iter().map(|(n, _, _)| n.as_ref()).collect();
        // servers.a.cpu is an output of its own (the max rule), and so is
        // servers.all.mem (the sum rule, `*` taking "all"): not passed on.
        assert_eq!(names, ["other.x"], "{out:?}");
        assert!(rejected.borrow().is_empty());
        let mut agg = r.aggregated(1017.0, false);
        agg.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(
            agg,
            vec![
                (Cow::Owned("servers.a.cpu".into()), 1000.0, 1.0),
                (Cow::Owned("servers.all.cpu".into()), 1000.0, 3.0),
                (Cow::Owned("servers.all.mem".into()), 1000.0, 4.0),
                (Cow::Owned("servers.b.cpu".into()), 1000.0, 2.0),
            ]
        );
        let own = r.own_metrics();
        assert!(own.contains(&("aggregateDatapointsSent", 4.0)), "{own:?}");
        // Renamed on the way out, and a rewrite into a bad name rejected.
        std::fs::write(&ag, "").expect("no rules");
        std::fs::write(
            &rw,
            "[pre]\n^srv\\. = servers.\n^bad = ../x\n[post]\n\\.cpu$ = .processor\n",
        )
        .expect("rewrite");
        r.set(&settings(&rw, &ag)).expect("set");
        let out = r.process(
            vec![("srv.a.cpu".into(), 1.0, 1.0), ("bad.a".into(), 1.0, 1.0)],
            2.0,
            4000,
            &reject,
        );
        assert_eq!(
            out,
            vec![(Cow::Owned("servers.a.processor".into()), 1.0, 1.0)]
        );
        assert_eq!(rejected.borrow().len(), 1, "{:?}", rejected.borrow());
    }

    #[test]
    fn rules_taken_away_leave_what_the_buffers_hold_and_rejects_count_each_point() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (rw, ag) = (dir.path().join("rewrite.conf"), dir.path().join("agg.conf"));
        std::fs::write(&rw, "[pre]\n^bad = ../x\n").expect("rewrite");
        std::fs::write(&ag, "all.<m> (60) = sum in.<m>\n").expect("aggregation");
        let r = Rules::new(&settings(&rw, &ag)).expect("rules");
        let count = std::cell::Cell::new(0);
        let reject = |_: &str, _: &str| count.set(count.get() + 1);
        let batch: Vec<Parsed> = vec![
            ("in.x".into(), 60.0, 1.0),
            ("bad.a".into(), 60.0, 1.0),
            ("bad.a".into(), 61.0, 1.0),
            ("in.x".into(), 61.0, 2.0),
        ];
        r.process(batch, 62.0, 4000, &reject);
        assert_eq!(count.get(), 2, "each point a rule made unstorable counts");
        // SIGHUP without the files: what the buffers hold is still computed.
        r.set(&Settings {
            rewrite_rules: None,
            aggregation_rules: None,
            ..settings(&rw, &ag)
        })
        .expect("set");
        assert_eq!(
            r.aggregated(63.0, true),
            vec![(Cow::Owned("all.x".into()), 60.0, 3.0)]
        );
    }

    #[test]
    fn without_forward_all_only_aggregates_go_on() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ag = dir.path().join("agg.conf");
        std::fs::write(&ag, "all.<m> (60) = avg *.<m>\n").expect("aggregation");
        let mut s = settings(Path::new("/nonexistent/rewrite.conf"), &ag);
        s.rewrite_rules = None;
        s.forward_all = false;
        let r = Rules::new(&s).expect("rules");
        let out = r.process(
            vec![("a.x".into(), 60.0, 1.0), ("lonely".into(), 60.0, 1.0)],
            61.0,
            4000,
            &|_, _| {},
        );
        assert!(out.is_empty(), "{out:?}");
        assert_eq!(
            r.aggregated(61.0, true),
            vec![(Cow::Owned("all.x".into()), 60.0, 1.0)]
        );
    }
}
