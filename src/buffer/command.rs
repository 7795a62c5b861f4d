//! `carbyne buffer status|drain|discard [HANDLER]`: the disk buffers of
//! the configured handlers, inspected and managed from the command line.

use super::disk::Disk;
use super::{Spec, Status};
use crate::config::Config;
use crate::handlers::{HandlerConfig, HandlerSpec};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// What to do with the buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Action {
    /// Show each buffer's records, bytes and oldest timestamp.
    Status,
    /// Deliver what the buffers hold now (the agent must not be running).
    Drain,
    /// Delete what the buffers hold, undelivered.
    Discard,
}

/// The handlers with a disk buffer (the one named, when a name is given).
fn buffered(cfg: &Config, name: Option<&str>) -> Result<Vec<(HandlerSpec, Spec)>, String> {
    let specs = HandlerConfig::resolve_all(&cfg.handlers, false).map_err(|e| e.to_string())?;
    if let Some(n) = name {
        if !specs.iter().any(|s| s.name == n) {
            return Err(format!("no handler named {n:?} is configured"));
        }
    }
    let out: Vec<_> = specs
        .into_iter()
        .filter(|s| name.is_none_or(|n| s.name == n))
        .filter_map(|s| {
            let b = s.buffer_spec(&cfg.state_dir)?;
            Some((s, b))
        })
        .collect();
    if let (Some(n), true) = (name, out.is_empty()) {
        return Err(format!(
            "handlers.{n} has no disk buffer (its buffer = \"memory\")"
        ));
    }
    Ok(out)
}

/// A buffer's directory and those of its parts, each with a label.
fn dirs(name: &str, spec: &Spec) -> Vec<(String, PathBuf)> {
    let mut out = vec![(name.to_string(), spec.dir.clone())];
    for p in super::part_dirs(&spec.dir) {
        let label = p
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        out.push((format!("{name}[{label}]"), p));
    }
    out
}

fn when(ts: Option<i64>) -> String {
    match ts.and_then(|t| chrono::DateTime::from_timestamp(t, 0)) {
        Some(t) => t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        None => "-".into(),
    }
}

/// The status table: one line per buffer.
pub fn table(rows: &[(String, Status)]) -> String {
    let w = rows.iter().map(|(n, _)| n.len()).max().unwrap_or(0).max(7);
    let mut out = format!(
        "{:<w$}  {:>10}  {:>12}  {:<20}  DIR\n",
        "HANDLER", "RECORDS", "BYTES", "OLDEST"
    );
    for (name, st) in rows {
        out.push_str(&format!(
            "{name:<w$}  {:>10}  {:>12}  {:<20}  {}\n",
            st.records,
            st.bytes,
            when(st.oldest),
            st.dir.display()
        ));
        if let Some(d) = &st.damage {
            out.push_str(&format!("  damaged: {d}\n"));
        }
    }
    out
}

/// The carbon receiver's relay destinations with a disk buffer, as
/// `relay[host:port:instance]` and their buffers.
fn relay_buffers(cfg: &Config) -> Vec<(String, Spec)> {
    let Some(relay) = cfg.server.carbon.as_ref().and_then(|c| c.relay.as_ref()) else {
        return Vec::new();
    };
    relay
        .destinations
        .iter()
        .filter_map(|d| {
            let dest = crate::server::carbon::ring::Destination::parse(d).ok()?;
            Some((format!("relay[{d}]"), relay.buffer_spec(&dest)?))
        })
        .collect()
}

/// Runs `carbyne buffer ACTION [HANDLER]`; returns the exit status.
/// `relay` names the carbon receiver's relay destinations.
pub fn run(cfg: &Config, action: Action, name: Option<&str>) -> i32 {
    let relay = if name.is_none_or(|n| n == "relay") {
        relay_buffers(cfg)
    } else {
        Vec::new()
    };
    let handlers = match (name, relay.is_empty()) {
        (Some("relay"), false) => Vec::new(),
        _ => match buffered(cfg, name) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("carbyne buffer: {e}");
                return crate::cli::EXIT_CONFIG;
            }
        },
    };
    if handlers.is_empty() && relay.is_empty() {
        println!("no handler has a disk buffer (buffer = \"disk\")");
        return 0;
    }
    match action {
        Action::Status => status(&handlers, &relay),
        Action::Discard => discard(&handlers, &relay),
        Action::Drain => {
            if !relay.is_empty() {
                println!("the relay's buffers are sent by `carbyne server`, once their destinations are back");
            }
            if handlers.is_empty() {
                return 0;
            }
            drain(cfg, handlers)
        }
    }
}

/// Every buffer directory to show or discard: the handlers' (and their
/// parts'), then the relay's.
fn all_dirs(handlers: &[(HandlerSpec, Spec)], relay: &[(String, Spec)]) -> Vec<(String, Spec)> {
    let mut out = Vec::new();
    for (h, spec) in handlers {
        for (label, dir) in dirs(&h.name, spec) {
            out.push((
                label,
                Spec {
                    dir,
                    ..spec.clone()
                },
            ));
        }
    }
    out.extend(relay.iter().cloned());
    out
}

fn status(handlers: &[(HandlerSpec, Spec)], relay: &[(String, Spec)]) -> i32 {
    let mut rows = Vec::new();
    let mut failed = false;
    for (label, spec) in all_dirs(handlers, relay) {
        match super::status(&spec.dir) {
            Ok(st) => rows.push((label, st)),
            Err(e) => {
                eprintln!("carbyne buffer: {}: {e}", spec.dir.display());
                failed = true;
            }
        }
    }
    print!("{}", table(&rows));
    if failed {
        crate::cli::EXIT_FAILED
    } else {
        0
    }
}

fn discard(handlers: &[(HandlerSpec, Spec)], relay: &[(String, Spec)]) -> i32 {
    let mut failed = false;
    for (label, spec) in all_dirs(handlers, relay) {
        if !spec.dir.exists() {
            println!("{label}: no buffer at {}", spec.dir.display());
            continue;
        }
        match Disk::open(&spec, Duration::from_secs(2)).map(Disk::discard) {
            Ok((records, bytes)) => {
                println!("{label}: {records} records ({bytes} bytes) discarded")
            }
            Err(e) => {
                eprintln!("carbyne buffer: {e}");
                failed = true;
            }
        }
    }
    if failed {
        crate::cli::EXIT_FAILED
    } else {
        0
    }
}

/// Runs the buffered handlers with nothing new to send until their
/// buffers are delivered or `flush_timeout` passes.
fn drain(cfg: &Config, handlers: Vec<(HandlerSpec, Spec)>) -> i32 {
    let dirs_of: Vec<(String, PathBuf)> = handlers
        .iter()
        .flat_map(|(h, s)| dirs(&h.name, s))
        .collect();
    for (label, dir) in &dirs_of {
        // Refuse at once when the agent holds a buffer, rather than
        // waiting for its lock.
        if let Err(e) = probe(dir) {
            eprintln!("carbyne buffer: {label}: {e}");
            return crate::cli::EXIT_FAILED;
        }
    }
    // The agent's own plan (hostname, names), with nothing to collect and
    // only these handlers.
    let names: Vec<String> = handlers.into_iter().map(|(h, _)| h.name).collect();
    let mut plan = match crate::scheduler::Plan::new(cfg, false) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("carbyne buffer: {e}");
            return crate::cli::EXIT_CONFIG;
        }
    };
    plan.collectors.clear();
    plan.logs.clear();
    plan.self_path = None;
    plan.handlers.retain(|h| names.contains(&h.name));
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("carbyne buffer: cannot start the runtime: {e}");
            return crate::cli::EXIT_FAILED;
        }
    };
    let failures = rt.block_on(crate::scheduler::run_once(cfg, plan));
    for f in &failures {
        eprintln!("{f}");
    }
    let mut left = 0;
    let mut rows = Vec::new();
    for (label, dir) in dirs_of {
        if let Ok(st) = super::status(&dir) {
            left += st.records;
            rows.push((label, st));
        }
    }
    print!("{}", table(&rows));
    if left == 0 && failures.is_empty() {
        0
    } else {
        eprintln!("carbyne buffer: {left} records not delivered yet");
        crate::cli::EXIT_FAILED
    }
}

/// Whether another process holds the buffer in `dir`.
fn probe(dir: &Path) -> Result<(), String> {
    if !dir.exists() {
        return Ok(());
    }
    let spec = Spec {
        dir: dir.to_path_buf(),
        max_bytes: u64::MAX,
        fsync: super::Fsync::Never,
    };
    Disk::probe(&spec).map_err(|e| e.to_string())
}
