//! Log jobs: `[logs.NAME]` sections, each a file (or glob) read by a parser
//! from `parsers/`, its metrics sent through the same handlers as the
//! collectors'. Once mode reads from the saved offsets to the end (like
//! logtail); the daemon follows the files (see `crate::tail`).

use crate::config::{CommonKeys, Config, ConfigError, Section};
use crate::parsers::{Parser, ParserConfig};
use crate::sample::{Kind, MetricPath, Sample};
use crate::tail::{self, FileState, LineStats, StartAt};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The keys every `[logs.NAME]` section has, beside its parser's options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogCommon {
    /// Read this log.
    pub enabled: bool,
    /// The log file, or a glob of files (`/var/log/app/*.log`).
    pub file: String,
    /// Seconds between metric reports; the global `interval` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(
        default,
        deserialize_with = "crate::config::duration::opt_whole_seconds"
    )]
    pub interval: Option<u64>,
    /// Where to start in a file never read before: `end` (only new lines) or `beginning`.
    pub start_at: StartAt,
    /// Longer lines are counted (`lines_too_long`) and skipped.
    pub max_line_bytes: usize,
    /// Logster's `--metric-prefix`: a segment before each metric name.
    pub metric_prefix: String,
    /// Logster's `--metric-suffix`: a segment after each metric name.
    pub metric_suffix: String,
    /// Logster's own names, `[metric_prefix.]metric[.metric_suffix]`,
    /// without path_prefix, hostname or the log's name (what a crontab's
    /// `logster` sent).
    pub logster_names: bool,
}

impl Default for LogCommon {
    fn default() -> Self {
        LogCommon {
            enabled: true,
            file: String::new(),
            interval: None,
            start_at: StartAt::End,
            max_line_bytes: 65536,
            metric_prefix: String::new(),
            metric_suffix: String::new(),
            logster_names: false,
        }
    }
}

impl CommonKeys for LogCommon {
    const KEYS: &'static [&'static str] = &[
        "enabled",
        "file",
        "interval",
        "start_at",
        "max_line_bytes",
        "metric_prefix",
        "metric_suffix",
        "logster_names",
    ];
}

impl Default for ParserConfig {
    fn default() -> Self {
        ParserConfig::Postfix(Default::default())
    }
}

/// A `[logs.NAME]` section.
pub type LogConfig = Section<ParserConfig, LogCommon>;

/// A configured log, ready to read.
pub struct LogJob {
    pub name: String,
    pub pattern: String,
    pub interval: Duration,
    pub start_at: StartAt,
    pub max_line: usize,
    path: MetricPath,
    prefix: String,
    suffix: String,
    pub parser: Box<dyn Parser>,
    /// Lines read, matched and not, since the last report.
    counts: Counts,
    /// A missing file is an error (`carbyne logster`), not a warning.
    pub missing_is_error: bool,
    /// The warning for a missing file was given (later ones go to debug).
    warned_missing: bool,
}

#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    lines: LineStats,
    matched: u64,
}

impl LogJob {
    /// Builds a job whose metric names are `<path>.[prefix.]metric[.suffix]`.
    pub fn new(
        name: &str,
        cfg: &LogConfig,
        path: MetricPath,
        interval: Duration,
    ) -> Result<LogJob, ConfigError> {
        let key = format!("logs.{name}");
        let c = &cfg.common;
        if c.file.trim().is_empty() {
            return Err(ConfigError::new(
                format!("{key}.file"),
                "missing: the log file (or glob) to read",
            ));
        }
        glob::Pattern::new(&c.file)
            .map_err(|e| ConfigError::new(format!("{key}.file"), format!("bad glob: {e}")))?;
        if c.max_line_bytes == 0 {
            return Err(ConfigError::new(
                format!("{key}.max_line_bytes"),
                "must be at least 1",
            ));
        }
        for (k, v) in [
            ("metric_prefix", &c.metric_prefix),
            ("metric_suffix", &c.metric_suffix),
        ] {
            if v.contains(char::is_whitespace) || v.starts_with('.') || v.ends_with('.') {
                return Err(ConfigError::new(
                    format!("{key}.{k}"),
                    format!("{v:?} is not a metric path segment"),
                ));
            }
        }
        Ok(LogJob {
            name: name.to_string(),
            pattern: c.file.clone(),
            interval,
            start_at: c.start_at,
            max_line: c.max_line_bytes,
            path,
            prefix: c.metric_prefix.clone(),
            suffix: c.metric_suffix.clone(),
            parser: cfg.options.build(&key)?,
            counts: Counts::default(),
            missing_is_error: false,
            warned_missing: false,
        })
    }

    /// Says that no file matches the job's pattern: an error for
    /// `carbyne logster`; for the agent a warning the first time, then at
    /// debug level (the file may come later, it is read once it does).
    fn note_missing(&mut self) -> Result<(), String> {
        if self.missing_is_error {
            return Err(format!("{}: no such file", self.pattern));
        }
        let what = format!("log {}: {}: no such file", self.name, self.pattern);
        if self.warned_missing {
            log::debug!("{what}");
        } else {
            self.warned_missing = true;
            log::warn!("{what} (read once it exists)");
        }
        Ok(())
    }

    /// The files the job reads now (a glob is expanded each time).
    pub fn files(&self) -> Vec<PathBuf> {
        let is_glob = self.pattern.contains(['*', '?', '[']);
        if !is_glob {
            return vec![PathBuf::from(&self.pattern)];
        }
        let mut v: Vec<PathBuf> = glob::glob(&self.pattern)
            .map(|paths| paths.flatten().collect())
            .unwrap_or_default();
        v.sort();
        v
    }

    fn metric(&self, m: &str) -> String {
        let mut name = String::new();
        for part in [self.prefix.as_str(), m, self.suffix.as_str()] {
            if !part.is_empty() {
                if !name.is_empty() {
                    name.push('.');
                }
                name.push_str(part);
            }
        }
        self.path.name(&name)
    }

    /// Feeds one line to the parser, counting it.
    pub fn feed(&mut self, line: &[u8]) {
        if self.parser.parse_line(line) {
            self.counts.matched += 1;
        }
    }

    /// Adds the line counts of a read.
    pub fn count(&mut self, s: LineStats) {
        self.counts.lines.add(s);
    }

    /// The metrics of the lines since the last report, over `duration`
    /// seconds, as samples at `ts`; starts counting afresh.
    pub fn report(&mut self, duration: f64, ts: i64) -> Vec<Sample> {
        let mut m = Vec::new();
        self.parser.take_metrics(duration, &mut m);
        let c = std::mem::take(&mut self.counts);
        let valid = c.lines.read - c.lines.too_long;
        m.push(("lines_read".into(), c.lines.read as f64));
        m.push(("lines_matched".into(), c.matched as f64));
        m.push((
            "lines_unmatched".into(),
            valid.saturating_sub(c.matched) as f64,
        ));
        m.push(("lines_too_long".into(), c.lines.too_long as f64));
        m.into_iter()
            .map(|(k, v)| Sample::new(self.metric(&k), v, ts, Kind::Gauge))
            .collect()
    }
}

/// Builds every enabled log job of `cfg` (all are checked), named
/// `path_prefix.hostname[.path_suffix].<log name>.<metric>` (or as
/// Logster names them, with `logster_names`).
pub fn build(cfg: &Config, hostname: Option<&str>) -> Result<Vec<LogJob>, ConfigError> {
    let mut out = Vec::new();
    for (name, lc) in &cfg.logs {
        if name.is_empty() || name.contains(['.', ' ', '/']) {
            return Err(ConfigError::new(
                format!("logs.{name}"),
                "the log name is a metric path segment: no '.', '/' or spaces",
            ));
        }
        let interval = lc.common.interval.unwrap_or(cfg.interval);
        if interval == 0 {
            return Err(ConfigError::new(
                format!("logs.{name}.interval"),
                "must be at least 1 second",
            ));
        }
        let path = if lc.common.logster_names {
            MetricPath::new("", None, "", ".")
        } else {
            MetricPath::new(&cfg.path_prefix, hostname, &cfg.path_suffix, name)
        };
        let job = LogJob::new(name, lc, path, Duration::from_secs(interval))?;
        if lc.common.enabled {
            out.push(job);
        }
    }
    Ok(out)
}

/// Saved positions of one job's files, by path.
pub type JobState = BTreeMap<String, FileState>;

/// Where a job's positions are kept: `<state_dir>/logs/<name>.json`.
pub fn state_path(state_dir: &Path, name: &str) -> PathBuf {
    state_dir.join("logs").join(format!("{name}.json"))
}

pub fn load_state(path: &Path) -> JobState {
    match std::fs::read_to_string(path) {
        Ok(t) => serde_json::from_str(&t).unwrap_or_else(|e| {
            log::warn!("{}: unreadable ({e}); starting afresh", path.display());
            JobState::new()
        }),
        Err(_) => JobState::new(),
    }
}

/// Writes a job's positions atomically.
pub fn save_state(path: &Path, st: &JobState) -> std::io::Result<()> {
    let data = serde_json::to_vec(st).map_err(std::io::Error::other)?;
    crate::rates::write_atomically(path, &data)
}

/// What one `--once` read of a job gives: its samples, and the positions
/// to save once they are delivered.
pub struct OnceOutcome {
    pub samples: Vec<Sample>,
    pub state_path: PathBuf,
    pub state: JobState,
}

/// Reads a job's files from their saved positions to the end and reports
/// over the time since the last run. The first run with `start_at = "end"`
/// only records where the files end, as logtail does, and reports nothing.
pub fn run_once(
    job: &mut LogJob,
    state_dir: &Path,
    now: f64,
    ts: i64,
) -> Result<OnceOutcome, String> {
    let state_path = state_path(state_dir, &job.name);
    let prev = load_state(&state_path);
    let mut state = JobState::new();
    let mut duration: Option<f64> = None;
    let mut first = true;
    let mut found = false;
    for file in job.files() {
        let key = file.to_string_lossy().into_owned();
        let p = prev.get(&key);
        first &= p.is_none();
        let (start_at, max_line) = (job.start_at, job.max_line);
        let r = tail::read_once(&file, p, start_at, max_line, now, &mut |l| job.feed(l))
            .map_err(|e| format!("log {}: {}: {e}", job.name, file.display()))?;
        if let Some(r) = r {
            found = true;
            job.count(r.stats);
            duration = match (duration, r.duration) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            state.insert(key, r.state);
        }
    }
    if !found {
        job.note_missing()?;
    }
    let samples = if first && job.start_at == StartAt::End {
        Vec::new()
    } else {
        // A first run from the beginning has no previous run: report over the interval.
        job.report(duration.unwrap_or(job.interval.as_secs_f64()), ts)
    };
    Ok(OnceOutcome {
        samples,
        state_path,
        state,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tail::tests::append;

    fn job(file: &Path, extra: &str) -> LogJob {
        let text = format!(
            "file = {:?}\nparser = \"log4j\"\n{extra}",
            file.display().to_string()
        );
        let lc: LogConfig = toml::from_str(&text).expect("log config");
        LogJob::new(
            "app",
            &lc,
            MetricPath::new("servers", Some("h"), "", "app"),
            Duration::from_secs(60),
        )
        .expect("job")
    }

    #[test]
    fn two_runs_count_each_line_once() {
        let d = tempfile::tempdir().expect("tempdir");
        let log = d.path().join("app.log");
        append(&log, "13:00:00 ERROR before the first run\n");
        let mut j = job(&log, "metric_prefix = \"java\"\n");
        let first = run_once(&mut j, d.path(), 1000.0, 1000).expect("run");
        assert!(
            first.samples.is_empty(),
            "the first run only records the end"
        );
        save_state(&first.state_path, &first.state).expect("save");
        append(
            &log,
            "13:00:01 ERROR one\n13:00:02 WARN two\n13:00:03 INFO three\nno timestamp\n",
        );
        let second = run_once(&mut j, d.path(), 1010.0, 1010).expect("run");
        let v: BTreeMap<String, f64> = second
            .samples
            .iter()
            .map(|s| (s.name.clone(), s.value))
            .collect();
        assert_eq!(v["servers.h.app.java.ERROR"], 0.1);
        assert_eq!(v["servers.h.app.java.WARN"], 0.1);
        assert_eq!(v["servers.h.app.java.lines_read"], 4.0);
        assert_eq!(v["servers.h.app.java.lines_matched"], 2.0);
        assert_eq!(v["servers.h.app.java.lines_unmatched"], 2.0);
        // Not saved (as when a handler failed): the same lines come again.
        let again = run_once(&mut j, d.path(), 1020.0, 1020).expect("run");
        let v: BTreeMap<String, f64> = again
            .samples
            .iter()
            .map(|s| (s.name.clone(), s.value))
            .collect();
        assert_eq!(v["servers.h.app.java.lines_read"], 4.0);
        save_state(&again.state_path, &again.state).expect("save");
        let third = run_once(&mut j, d.path(), 1030.0, 1030).expect("run");
        let v: BTreeMap<String, f64> = third
            .samples
            .iter()
            .map(|s| (s.name.clone(), s.value))
            .collect();
        assert_eq!(v["servers.h.app.java.lines_read"], 0.0);
    }

    #[test]
    fn config_errors() {
        let bad = |text: &str| -> String {
            let cfg: Result<Config, _> = toml::from_str(text);
            match cfg {
                Err(e) => e.to_string(),
                Ok(c) => build(&c, Some("h"))
                    .err()
                    .map(|e| e.to_string())
                    .unwrap_or_default(),
            }
        };
        assert!(bad("[logs.a]\nfile = \"/x\"\n").contains("parser"));
        assert!(bad("[logs.a]\nfile = \"/x\"\nparser = \"apache\"\n").contains("apache"));
        assert!(bad("[logs.a]\nparser = \"postfix\"\n").contains("logs.a.file"));
        assert!(
            bad("[logs.a]\nfile = \"/x\"\nparser = \"postfix\"\nlog_levels = [\"X\"]\n")
                .contains("log_levels")
        );
        assert!(bad("[logs.a]\nfile = \"/x\"\nparser = \"regex\"\nregex = \"(?P<a>x)\"\nmetrics = [{name = \"n.{b}\", kind = \"counter\"}]\n").contains("{b}"));
        assert!(bad("[logs.\"a.b\"]\nfile = \"/x\"\nparser = \"postfix\"\n").contains("segment"));
    }
}

/// What wakes the daemon's log thread.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// Something changed in a watched directory.
    Changed,
    /// Report what was read and stop.
    Stop,
}

/// Longest wait between two looks at the files when no change is notified.
pub const POLL: Duration = Duration::from_millis(500);

struct Followed {
    job: LogJob,
    followers: BTreeMap<PathBuf, tail::Follower>,
    state_path: PathBuf,
    ticker: crate::scheduler::Ticker,
    due: (i64, f64),
    last_report: f64,
}

impl Followed {
    /// Starts following new files of a glob (and the file itself once it exists).
    fn discover(&mut self, saved: &JobState) {
        let files = self.job.files();
        if !files.iter().any(|f| f.exists()) {
            let _ = self.job.note_missing();
        }
        for f in files {
            self.followers.entry(f.clone()).or_insert_with(|| {
                let prev = saved.get(f.to_string_lossy().as_ref());
                tail::Follower::new(&f, prev, self.job.start_at, self.job.max_line)
            });
        }
    }

    fn poll(&mut self) {
        let job = &mut self.job;
        for (path, f) in self.followers.iter_mut() {
            match f.poll(&mut |l| job.feed(l)) {
                Ok(stats) => job.count(stats),
                Err(e) => log::warn!("log {}: {}: {e}", job.name, path.display()),
            }
        }
    }

    fn report(&mut self, ts: i64, now: f64, fan: &dyn Fn(Vec<Sample>)) {
        fan(self.job.report(now - self.last_report, ts));
        self.last_report = now;
        let state: JobState = self
            .followers
            .iter()
            .filter_map(|(p, f)| Some((p.to_string_lossy().into_owned(), f.state(now)?)))
            .collect();
        if let Err(e) = save_state(&self.state_path, &state) {
            log::warn!("log {}: cannot save positions: {e}", self.job.name);
        }
    }
}

/// The daemon's log thread: follows every job's files, parses new lines as
/// they come, and at each job's interval sends its metrics through `fan`
/// and saves its positions. Returns after a final report on [`Wake::Stop`].
pub fn follow(
    jobs: Vec<LogJob>,
    state_dir: &Path,
    fan: &dyn Fn(Vec<Sample>),
    wake: std::sync::mpsc::Receiver<Wake>,
    notifier: std::sync::mpsc::Sender<Wake>,
) {
    use notify::Watcher;
    let now = crate::scheduler::unix_now();
    let mut all: Vec<Followed> = jobs
        .into_iter()
        .map(|job| {
            let state_path = state_path(state_dir, &job.name);
            let saved = load_state(&state_path);
            let mut ticker = crate::scheduler::Ticker::new(job.interval);
            let (ts, wait) = ticker.next(now);
            let mut f = Followed {
                job,
                followers: BTreeMap::new(),
                state_path,
                ticker,
                due: (ts, now + wait.as_secs_f64()),
                last_report: now,
            };
            f.discover(&saved);
            f
        })
        .collect();
    // Changes in the logs' directories wake the thread; polling covers the rest.
    let watcher = notify::recommended_watcher(move |_: notify::Result<notify::Event>| {
        let _ = notifier.send(Wake::Changed);
    });
    let _watcher = match watcher {
        Ok(mut w) => {
            for f in &all {
                let dir = Path::new(&f.job.pattern)
                    .parent()
                    .filter(|d| {
                        !d.as_os_str().is_empty() && !d.to_string_lossy().contains(['*', '?', '['])
                    })
                    .unwrap_or(Path::new("."));
                if let Err(e) = w.watch(dir, notify::RecursiveMode::NonRecursive) {
                    log::debug!(
                        "log {}: not watching {}: {e}; polling",
                        f.job.name,
                        dir.display()
                    );
                }
            }
            Some(w)
        }
        Err(e) => {
            log::debug!("no file notifications ({e}); polling every {POLL:?}");
            None
        }
    };
    loop {
        for f in &mut all {
            f.poll();
        }
        let now = crate::scheduler::unix_now();
        let mut next = now + POLL.as_secs_f64();
        for f in &mut all {
            if now >= f.due.1 {
                f.report(f.due.0, now, fan);
                let saved = load_state(&f.state_path);
                f.discover(&saved);
                let (ts, wait) = f.ticker.next(now);
                f.due = (ts, now + wait.as_secs_f64());
            }
            next = next.min(f.due.1);
        }
        let wait = Duration::from_secs_f64((next - now).max(0.0));
        match wake.recv_timeout(wait) {
            Ok(Wake::Stop) | Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Ok(Wake::Changed) | Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                // Let a burst of events settle into one look at the files.
                while let Ok(w) = wake.try_recv() {
                    if w == Wake::Stop {
                        return final_report(&mut all, fan);
                    }
                }
            }
        }
    }
    final_report(&mut all, fan)
}

/// The lines read since the last report, at stop: stamped with the job's
/// next slot, the end of the interval they belong to, so every log point
/// falls on the slots the collectors use (rates still over the real time).
fn final_report(all: &mut [Followed], fan: &dyn Fn(Vec<Sample>)) {
    let now = crate::scheduler::unix_now();
    for f in all {
        f.poll();
        f.report(f.due.0, now, fan);
    }
}
