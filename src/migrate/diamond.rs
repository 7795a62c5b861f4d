//! `carbyne migrate diamond diamond.conf`: Diamond's ConfigObj files (the
//! main file, `[configs]` files, `collectors_config_path` and
//! `handlers_config_path` drop-ins, merged as Diamond merges them) as
//! `conf.d/50-diamond.toml` (hostname, prefix, suffix, interval), one
//! `conf.d/50-<collector>.toml` per collector Diamond runs, one per
//! handler, and `conf.d/50-diamond-off.toml` turning off carbyne's
//! collectors Diamond did not run, so the same metric names come out.

use super::configobj::{self, Section, Val};
use super::{Migration, Toml};
use crate::config::ConfigError;
use std::path::{Path, PathBuf};

/// Diamond's collector classes and carbyne's collectors.
const COLLECTORS: &[(&str, &str)] = &[
    ("ConnTrackCollector", "conntrack"),
    ("CPUCollector", "cpu"),
    ("DiskSpaceCollector", "diskspace"),
    ("DiskUsageCollector", "diskusage"),
    ("EntropyStatCollector", "entropy"),
    ("FilestatCollector", "filestat"),
    ("InterruptCollector", "interrupt"),
    ("KSMCollector", "ksm"),
    ("LoadAverageCollector", "loadavg"),
    ("MemoryCollector", "memory"),
    ("MountStatsCollector", "mountstats"),
    ("NetworkCollector", "network"),
    ("NfsCollector", "nfs"),
    ("NfsdCollector", "nfsd"),
    ("ProcessStatCollector", "proc"),
    ("ProcessResourcesCollector", "processresources"),
    ("SockstatCollector", "sockstat"),
    ("TCPCollector", "tcp"),
    ("UDPCollector", "udp"),
    ("UptimeCollector", "uptime"),
    ("VMStatCollector", "vmstat"),
];

/// Diamond's `str_to_bool`.
fn boolean(v: &Val) -> Option<bool> {
    let Val::Str(v) = v else {
        // A list (`True,`): str_to_bool fails on it.
        return None;
    };
    match v.trim().to_ascii_lowercase().as_str() {
        "true" | "t" | "yes" | "y" => Some(true),
        "false" | "f" | "no" | "n" | "" => Some(false),
        _ => None,
    }
}

/// Reads a ConfigObj file; errors name the file and line.
fn read(path: &Path) -> Result<Section, ConfigError> {
    let text = crate::config::read_text(path)?;
    configobj::parse(&text).map_err(|(line, msg)| ConfigError {
        file: Some(path.to_path_buf()),
        line: Some(line),
        key: None,
        message: msg,
    })
}

/// The files of `dir` ending in `ext`, sorted.
fn dropins(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.is_file() && p.to_string_lossy().ends_with(ext))
        .collect();
    files.sort();
    files
}

/// The main file with everything Diamond merges into it.
fn load(path: &Path) -> Result<Section, ConfigError> {
    let mut c = read(path)?;
    let ext = c
        .sub("configs")
        .and_then(|s| s.get("extension"))
        .map_or_else(|| ".conf".to_string(), Val::text);
    if let Some(dir) = c.sub("configs").and_then(|s| s.get("path")).map(Val::text) {
        if !Path::new(&dir).is_dir() {
            return Err(ConfigError::general(
                Some(path),
                format!("[configs] path = {dir}: no such folder (Diamond stops there too)"),
            ));
        }
        for f in dropins(Path::new(&dir), &ext) {
            let more = read(&f)?;
            c.merge(more);
        }
    }
    for (key, section) in [
        ("collectors_config_path", "collectors"),
        ("handlers_config_path", "handlers"),
    ] {
        let Some(dir) = c.sub("server").and_then(|s| s.get(key)).map(Val::text) else {
            continue;
        };
        for f in dropins(Path::new(&dir), &ext) {
            let name = f
                .file_name()
                .map(|n| {
                    n.to_string_lossy()
                        .trim_end_matches(ext.as_str())
                        .to_string()
                })
                .unwrap_or_default();
            let more = read(&f)?;
            c.sub_mut(section).sub_mut(&name).merge(more);
        }
    }
    Ok(c)
}

/// A Diamond value as the TOML value of the type carbyne's default has.
/// A string where a list goes is one item (Diamond wraps it), but for
/// `filesystems` and `byte_unit`, which Diamond splits (on commas, on
/// whitespace).
fn convert(key: &str, v: &Val, like: &toml::Value) -> Option<toml::Value> {
    Some(match like {
        toml::Value::Boolean(_) => toml::Value::Boolean(boolean(v)?),
        toml::Value::Integer(_) => toml::Value::Integer(v.text().trim().parse().ok()?),
        toml::Value::Float(_) => toml::Value::Float(v.text().trim().parse().ok()?),
        toml::Value::String(_) => toml::Value::String(v.text()),
        toml::Value::Array(_) => toml::Value::Array(
            match v {
                Val::List(l) => l.clone(),
                Val::Str(s) if key == "filesystems" => {
                    s.split(',').map(|x| x.trim().to_string()).collect()
                }
                Val::Str(s) if key == "byte_unit" => {
                    s.split_whitespace().map(String::from).collect()
                }
                Val::Str(s) => vec![s.clone()],
            }
            .into_iter()
            .map(toml::Value::String)
            .collect(),
        ),
        _ => return None,
    })
}

/// Diamond 4.0.515's defaults where carbyne's own select more (newer
/// interface and device names): written when the section leaves them out,
/// so the same names come out.
const DIAMOND_DEFAULTS: &[(&str, &str, &str)] = &[
    (
        "network",
        "interfaces",
        "eth, bond, em, p1p, eno, enp, ens, enx",
    ),
    (
        "diskusage",
        "devices",
        "PhysicalDrive[0-9]+$|md[0-9]+$|sd[a-z]+[0-9]*$|x?vd[a-z]+[0-9]*$|disk[0-9]+$|dm\\-[0-9]+$",
    ),
];

/// Keys of the base Collector that carbyne has once, globally.
const GLOBAL_KEYS: &[&str] = &[
    "hostname",
    "hostname_method",
    "path_prefix",
    "path_suffix",
    "instance_prefix",
];

/// ConfigObj resolves `%(name)s` when a value is read; carbyne does not:
/// such a value among those read here is refused with its line.
fn no_interpolation(c: &Section, path: &Path) -> Result<(), ConfigError> {
    let empty = Section::default();
    let mut sections = vec![("[server]".to_string(), c.sub("server").unwrap_or(&empty))];
    for top in ["collectors", "handlers"] {
        for (n, s, _) in &c.sub(top).unwrap_or(&empty).subs {
            sections.push((format!("[{top}] [[{n}]]"), s));
        }
    }
    for (name, s) in sections {
        if let Some((k, v, line)) = s.keys.iter().find(|(_, v, _)| v.text().contains("%(")) {
            return Err(ConfigError {
                file: Some(path.to_path_buf()),
                line: (*line > 0).then_some(*line),
                key: None,
                message: format!(
                    "{name} {k} = {}: %(name)s interpolation; write the value it stands for",
                    v.text()
                ),
            });
        }
    }
    Ok(())
}

/// diamond.conf and what it merges, as carbyne configuration.
pub fn migrate(path: &Path) -> Result<Migration, ConfigError> {
    let c = load(path)?;
    no_interpolation(&c, path)?;
    let mut m = Migration::default();
    let empty = Section::default();
    let collectors = c.sub("collectors").unwrap_or(&empty);
    let default = collectors.sub("default").unwrap_or(&empty);
    let err = |msg: String| ConfigError::general(Some(path), msg);

    // Globals, from [collectors] [[default]] and Diamond's defaults.
    let mut main = Toml::new(path, " (Diamond's settings for every collector)");
    main.comment("Keys diamond.conf leaves out are written with Diamond's defaults.");
    let text = |k: &str, d: &str| default.get(k).map_or_else(|| d.to_string(), Val::text);
    let method = text("hostname_method", "smart").to_ascii_lowercase();
    if let Some(h) = default.get("hostname").filter(|_| method != "shell") {
        main.key("hostname", h.text(), "hostname");
    }
    match method.as_str() {
        "smart" | "fqdn_short" | "fqdn" | "fqdn_rev" | "uname_short" | "uname_rev" | "hostname"
        | "hostname_short" | "hostname_rev" | "none" => {
            main.key("hostname_method", method.as_str(), "hostname_method")
        }
        other => {
            main.key("hostname_method", "smart", "");
            main.left(format!(
                "hostname_method = {other}: carbyne has Diamond's methods but shell; set hostname to the name it gave"
            ));
        }
    }
    let (prefix, suffix) = (text("path_prefix", "servers"), text("path_suffix", ""));
    main.key("path_prefix", prefix.as_str(), "path_prefix");
    main.key("path_suffix", suffix.as_str(), "path_suffix");
    let interval: u64 = text("interval", "300").trim().parse().map_err(|_| {
        err(format!(
            "[collectors] [[default]] interval = {}: not a whole number of seconds",
            text("interval", "")
        ))
    })?;
    main.key(
        "interval",
        interval as i64,
        "interval (Diamond's default is 300 s)",
    );
    main.key(
        "self_metrics",
        false,
        "Diamond sent no metrics of its own (true adds <prefix>.<host>.carbyne.*)",
    );
    for (k, v, line) in &c.sub("server").unwrap_or(&empty).keys {
        match k.as_str() {
            "handlers" | "collectors_config_path" | "handlers_config_path" | "pid_file"
            | "collectors_load_delay" | "handlers_path" => {}
            "user" | "group" if v.text().is_empty() => {}
            "metric_queue_size" if v.text() == "16384" => {}
            "collectors_path"
                if v.text().trim_end_matches('/') == "/usr/share/diamond/collectors" => {}
            "user" | "group" => main.left(format!(
                "[server] {k} = {} (line {line}): the package's service runs as its own user",
                v.text()
            )),
            "collectors_path" => main.left(format!(
                "[server] collectors_path = {} (line {line}): carbyne's collectors are built in; custom Python collectors are not carried over",
                v.text()
            )),
            _ => main.left(format!(
                "[server] {k} = {} (line {line}): not a setting carbyne has",
                v.text()
            )),
        }
    }

    // Collectors: those whose own section says enabled.
    let defaults = toml::Table::try_from(crate::collectors::CollectorsConfig::default())
        .map_err(|e| err(e.to_string()))?;
    let mut running = Vec::new();
    for (section, s, line) in &collectors.subs {
        if section == "default" {
            continue;
        }
        let mut words = section.split_whitespace();
        let class = words.next().unwrap_or_default();
        let enabled = match s.get("enabled") {
            None => false,
            Some(v) => boolean(v).ok_or_else(|| {
                err(format!(
                    "[[{section}]] enabled = {}: not a boolean",
                    v.text()
                ))
            })?,
        };
        if !enabled {
            continue;
        }
        let Some((_, name)) = COLLECTORS.iter().find(|(c, _)| *c == class) else {
            main.left(format!(
                "[[{section}]] (line {line}): a collector carbyne does not have"
            ));
            continue;
        };
        if words.next().is_some() {
            main.left(format!(
                "[[{section}]] (line {line}): a second instance of {class}; carbyne runs one {name}"
            ));
            continue;
        }
        if s.get("metrics_whitelist").is_some() && s.get("metrics_blacklist").is_some()
            || default.get("metrics_whitelist").is_some()
                && default.get("metrics_blacklist").is_some()
        {
            return Err(err(format!(
                "[[{section}]] (line {line}): metrics_whitelist and metrics_blacklist together; Diamond refuses that collector"
            )));
        }
        for (sub, _, sline) in &s.subs {
            main.left(format!(
                "[[{section}]] [[[{sub}]]] (line {sline}): a subsection carbyne's {name} does not take{}",
                if *name == "processresources" {
                    " (write it as [collectors.processresources.process.NAME], see conf.d/processresources.toml)"
                } else {
                    ""
                }
            ));
        }
        running.push(*name);
        let like = defaults
            .get(*name)
            .and_then(toml::Value::as_table)
            .cloned()
            .unwrap_or_default();
        let mut out = Toml::new(path, &format!(", [collectors] [[{section}]]"));
        out.table(&format!("collectors.{name}"));
        out.key("enabled", true, "enabled");
        // Diamond: the class's defaults, then [[default]], then its own.
        let mut merged = default.clone();
        merged.merge(s.clone());
        for (c, k, v) in DIAMOND_DEFAULTS {
            if c == name && merged.get(k).is_none() {
                // Diamond's interfaces default is a list; devices one regex.
                let value = if *k == "interfaces" {
                    Val::List(v.split(", ").map(String::from).collect())
                } else {
                    Val::Str((*v).to_string())
                };
                merged.set(k, value, 0);
            }
        }
        for (k, v, kline) in &merged.keys {
            match k.as_str() {
                "enabled" => {}
                "interval" => {
                    let n: u64 = v.text().trim().parse().map_err(|_| {
                        err(format!("[[{section}]] interval = {}: not a whole number", v.text()))
                    })?;
                    if n != interval {
                        out.key("interval", n as i64, "interval");
                    }
                }
                "path" => {
                    let p = v.text();
                    out.key("path", if p.is_empty() { "." } else { p.as_str() }, "path")
                }
                "metrics_whitelist" | "metrics_blacklist" => match v {
                    Val::Str(re) => out.key(k, re.as_str(), k),
                    Val::List(_) => {
                        return Err(err(format!(
                            "[[{section}]] {k} (line {kline}): an unquoted comma made it a list, which Diamond cannot compile either; quote the regex"
                        )))
                    }
                },
                g if GLOBAL_KEYS.contains(&g) => {
                    let same = match g {
                        "path_prefix" => v.text() == prefix,
                        "path_suffix" => v.text() == suffix,
                        "hostname_method" => v.text().to_ascii_lowercase() == method,
                        "hostname" => default.get("hostname") == Some(v),
                        _ => true,
                    };
                    if !same {
                        out.left(format!(
                            "{k} = {} (line {kline}): carbyne has one {k} for every collector",
                            v.text()
                        ));
                    }
                }
                "measure_collector_time" | "ttl_multiplier" | "method" | "force_psutil" => {
                    let quiet = matches!(
                        (k.as_str(), v.text().as_str()),
                        ("measure_collector_time", "False" | "false")
                            | ("ttl_multiplier", "2")
                            | ("method", "Threaded")
                            | ("force_psutil", "False" | "false")
                    );
                    if !quiet {
                        let why = match k.as_str() {
                            "measure_collector_time" => "carbyne reports its own collector times (carbyne.collectors.*)",
                            "ttl_multiplier" => "carbyne's handlers send no TTL",
                            _ => "carbyne reads /proc itself, one way",
                        };
                        out.left(format!("{k} = {} (line {kline}): {why}", v.text()));
                    }
                }
                "detailed" if *name == "memory" => {
                    // Diamond: the key's presence, whatever its value.
                    out.key("detailed", true, "detailed (Diamond: present at all)")
                }
                other => match like.get(other).and_then(|d| convert(other, v, d).map(|c| (d, c))) {
                    Some((_, value)) => out.key(other, value, other),
                    None if like.contains_key(other) => {
                        return Err(err(format!(
                            "[[{section}]] {other} = {} (line {kline}): not the kind of value it takes",
                            v.text()
                        )))
                    }
                    None => out.left(format!(
                        "{other} = {} (line {kline}): not an option of carbyne's {name}",
                        v.text()
                    )),
                },
            }
        }
        m.add(format!("conf.d/50-{name}.toml"), out);
    }
    // carbyne's collectors that Diamond did not run.
    let mut off = Toml::new(path, " (collectors Diamond did not run)");
    let mut any = false;
    for name in defaults.keys() {
        if !running.contains(&name.as_str()) {
            off.table(&format!("collectors.{name}"));
            off.key("enabled", false, "");
            any = true;
        }
    }
    if any {
        m.add("conf.d/50-diamond-off.toml", off);
    }

    handlers(&c, path, &mut m, &mut main)?;
    // A drop-in, not carbyne.toml: the package's carbyne.toml stays.
    m.files
        .insert(0, ("conf.d/50-diamond.toml".into(), String::new()));
    let (text, left) = main.finish();
    m.files[0].1 = text;
    m.left.splice(0..0, left);
    Ok(m)
}

/// `[server] handlers` as `[handlers.*]`.
fn handlers(
    c: &Section,
    path: &Path,
    m: &mut Migration,
    main: &mut Toml,
) -> Result<(), ConfigError> {
    let empty = Section::default();
    let list: Vec<String> = match c.sub("server").and_then(|s| s.get("handlers")) {
        None => {
            return Err(ConfigError::general(
                Some(path),
                "[server] has no handlers (Diamond does not start without them)",
            ))
        }
        Some(Val::Str(s)) => vec![s.clone()],
        Some(Val::List(l)) => l.clone(),
    };
    let hs = c.sub("handlers").unwrap_or(&empty);
    for full in list {
        let class = full.rsplit('.').next().unwrap_or(&full).to_string();
        if class == "QueueHandler" {
            continue;
        }
        let mut conf = hs.sub("default").cloned().unwrap_or_default();
        if let Some(own) = hs.sub(&class) {
            conf.merge(own.clone());
        }
        let get = |k: &str, d: &str| conf.get(k).map_or_else(|| d.to_string(), Val::text);
        let num = |k: &str, d: &str| -> Result<f64, ConfigError> {
            get(k, d).trim().parse::<f64>().map_err(|_| {
                ConfigError::general(
                    Some(path),
                    format!("[[{class}]] {k} = {}: not a number", get(k, d)),
                )
            })
        };
        let mut out = Toml::new(path, &format!(", [handlers] [[{class}]]"));
        let used: &[&str] = match class.as_str() {
            "GraphiteHandler" => {
                out.table("handlers.graphite");
                out.key("host", get("host", "localhost"), "host");
                out.key("port", num("port", "2003")? as i64, "port");
                let proto = get("proto", "tcp");
                out.key(
                    "proto",
                    if proto == "udp" { "udp" } else { "tcp" },
                    "proto (Diamond opens TCP for all but exactly udp)",
                );
                out.key("timeout", super::number(num("timeout", "15")?), "timeout");
                out.key("batch", num("batch", "1")?.max(1.0) as i64, "batch");
                &["host", "port", "proto", "timeout", "batch"]
            }
            "StatsdHandler" => {
                out.table("handlers.statsd");
                if get("host", "").trim().is_empty() {
                    return Err(ConfigError::general(
                        Some(path),
                        "[[StatsdHandler]] has no host (Diamond's default, '', sends nowhere useful); set one",
                    ));
                }
                out.key("host", get("host", ""), "host");
                out.key("port", num("port", "1234")? as i64, "port");
                &["host", "port", "batch"]
            }
            "HttpPostHandler" => {
                out.table("handlers.http");
                out.key("url", get("url", "http://localhost/blah/blah/blah"), "url");
                out.key(
                    "format",
                    "plain",
                    "Diamond posts the metrics' plaintext lines",
                );
                out.key("max_batch", num("batch", "100")?.max(1.0) as i64, "batch");
                &["url", "batch"]
            }
            "zmqHandler" => {
                out.table("handlers.zeromq");
                out.key(
                    "endpoint",
                    format!("tcp://*:{}", num("port", "1234")? as i64),
                    "port (Diamond binds a PUB socket on every interface)",
                );
                out.key("bind", true, "");
                &["port"]
            }
            _ => {
                main.left(format!(
                    "handler {full}: carbyne's handlers are graphite, statsd, http, zeromq, syslog, prometheus and remote_write{}",
                    if class == "GraphitePickleHandler" {
                        " (graphite sends the line protocol: point it at carbon's line port)"
                    } else {
                        ""
                    }
                ));
                continue;
            }
        };
        for (k, v, line) in &conf.keys {
            if !used.contains(&k.as_str()) {
                out.left(format!(
                    "{k} = {} (line {line}): not a setting of carbyne's handler",
                    v.text()
                ));
            }
        }
        let name = match class.as_str() {
            "GraphiteHandler" => "graphite",
            "StatsdHandler" => "statsd",
            "HttpPostHandler" => "http",
            _ => "zeromq",
        };
        m.add(format!("conf.d/50-{name}.toml"), out);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(conf: &str) -> Result<Migration, ConfigError> {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("diamond.conf");
        std::fs::write(&p, conf).expect("write");
        migrate(&p)
    }

    #[test]
    fn options_take_carbynes_types_and_unknown_ones_are_listed() {
        let m = run("[server]\nhandlers = diamond.handler.graphite.GraphiteHandler\n[collectors]\n[[DiskSpaceCollector]]\nenabled = TRUE\nfilesystems = ext4, xfs\nexclude_filters = ^/boot,\nfrob = 1\n")
            .expect("migrate");
        let (_, text) = m
            .files
            .iter()
            .find(|(p, _)| p.ends_with("50-diskspace.toml"))
            .expect("diskspace");
        assert!(text.contains("exclude_filters = [\"^/boot\"]"), "{text}");
        assert!(
            m.left.iter().any(|l| l.starts_with("frob = 1")),
            "{:?}",
            m.left
        );
        m.check().expect("config check");
    }

    #[test]
    fn what_diamond_cannot_read_either_is_refused() {
        // `on` is not one of str_to_bool's words.
        let e = run("[collectors]\n[[CPUCollector]]\nenabled = on\n").expect_err("on");
        assert!(e.to_string().contains("not a boolean"), "{e}");
        let e = run("[collectors]\n[[CPUCollector]]\nenabled = True\nmetrics_whitelist = a,b\n")
            .expect_err("list");
        assert!(e.to_string().contains("quote the regex"), "{e}");
        let e = run("[collectors]\n[[default]]\nbase = x\n[[CPUCollector]]\nenabled = True\npath = %(base)s\n")
            .expect_err("interpolation");
        assert_eq!(e.line, Some(6), "{e}");
    }
}
