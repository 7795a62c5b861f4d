//! The management interface's commands, answered as statsd answers them.

use super::{Shared, StatsdServerConfig};
use crate::server::js;

/// One command of the management interface, as statsd answers it.
pub(super) fn admin_command(
    s: &Shared,
    cfg: &StatsdServerConfig,
    cmd: &str,
    args: &[&str],
) -> String {
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
            let a = &s.agg;
            format!(
                "uptime: {}\nmessages.last_msg_seen: {}\nmessages.bad_lines_seen: {}\ngraphite.last_flush: {}\ngraphite.last_exception: {}\ngraphite.flush_time: {}\ngraphite.flush_length: {}\nEND\n\n",
                now - s.started,
                now - a.last_msg_seen(),
                a.bad_lines_total(),
                now - s.last_flush.load(Ordering::Relaxed),
                now - s.last_exception.load(Ordering::Relaxed),
                s.flush_time.load(Ordering::Relaxed),
                s.flush_length.load(Ordering::Relaxed),
            )
        }
        "counters" => map(&s.agg.counters()),
        "gauges" => map(&s.agg.gauges()),
        "timers" => {
            let body: Vec<String> = s
                .agg
                .timer_values()
                .iter()
                .map(|(k, v)| {
                    let vals: Vec<String> = v.iter().map(|x| js::to_string(*x)).collect();
                    format!("  '{k}': [ {} ]", vals.join(", "))
                })
                .collect();
            format!("{{\n{}\n}}\nEND\n\n", body.join(",\n"))
        }
        "delcounters" | "deltimers" | "delgauges" => {
            let kind = &cmd[3..];
            let gone = s.agg.delete(kind, args);
            let mut out: String = gone.iter().map(|k| format!("deleted: {k}\n")).collect();
            out.push_str("END\n\n");
            out
        }
        _ => "ERROR\n".into(),
    }
}
