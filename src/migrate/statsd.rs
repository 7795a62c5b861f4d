//! `carbyne migrate statsd config.js`: etsy statsd 0.9.0's configuration
//! object (read as a literal, never run: see `js.rs`) as `[server.statsd]`,
//! each key as statsd's code reads it, its defaults written out where
//! carbyne's differ (statsd listens on every interface).

use super::js::{self, Value};
use super::{number, Migration, Toml};
use crate::config::ConfigError;
use std::path::Path;

/// Keys statsd reads that are carried over below (the rest is listed).
const CARRIED: &[&str] = &[
    "servers",
    "server",
    "address",
    "address_ipv6",
    "port",
    "mgmt_address",
    "mgmt_port",
    "backends",
    "graphiteHost",
    "graphitePort",
    "graphitePicklePort",
    "graphiteProtocol",
    "graphite",
    "flushInterval",
    "percentThreshold",
    "histogram",
    "flush_counts",
    "deleteIdleStats",
    "deleteCounters",
    "deleteTimers",
    "deleteGauges",
    "deleteSets",
    "gaugesMaxTTL",
    "keyNameSanitize",
    "prefixStats",
];

/// Why a key statsd reads is not carried over; `None` when its value
/// means what carbyne does anyway.
fn left(key: &str, v: &Value) -> Option<&'static str> {
    match key {
        "debug" | "dumpMessages" => v
            .truthy()
            .then_some("carbyne logs its errors; RUST_LOG=debug says more"),
        "log" => Some("carbyne logs to stderr (the journal, under systemd)"),
        "title" => Some("carbyne's process is named carbyne"),
        "automaticConfigReload" => (!matches!(v, Value::Bool(false))).then_some(
            "carbyne reads its configuration again on SIGHUP (systemctl reload), not when the file changes",
        ),
        "keyFlush" => Some("carbyne does not log its busiest keys"),
        "calculatedTimerMetrics" => (!matches!(v, Value::Array(a) if a.is_empty()))
            .then_some("carbyne sends every timer metric"),
        "healthStatus" => Some("statsd 0.9.0 does not read it from the file either"),
        "console" | "repeater" | "repeaterProtocol" => {
            Some("a backend carbyne's statsd server does not have")
        }
        "nodes" => Some(
            "statsd's proxy (proxy.js): carbyne has no statsd proxy; it aggregates here instead, so point it at Graphite or run it on the nodes",
        ),
        "checkInterval" | "cacheSize" | "forkCount" | "udp_version" | "host" => {
            Some("a setting of statsd's proxy (proxy.js)")
        }
        _ => Some("not a key etsy statsd 0.9.0 reads"),
    }
}

/// Whether a backend's module path is statsd's graphite backend
/// (`./backends/graphite`, `/usr/share/statsd/backends/graphite.js`...).
fn is_graphite(module: &str) -> bool {
    let m = module.trim_end_matches(".js");
    m == "backends/graphite" || m.ends_with("/backends/graphite")
}

/// config.js as `conf.d/50-server-statsd.toml`.
pub fn migrate(path: &Path) -> Result<Migration, ConfigError> {
    let text = crate::config::read_text(path)?;
    let err = |msg: String| ConfigError::general(Some(path), msg);
    let config = js::parse(&text).map_err(err)?;
    let Value::Object(members) = &config else {
        return Err(err("not an object literal { ... }".into()));
    };
    // An error about a top-level key names its line.
    let at = |key: &str, msg: String| ConfigError {
        file: Some(path.to_path_buf()),
        line: members
            .iter()
            .rev()
            .find(|(k, _, _)| k == key)
            .map(|(_, _, l)| *l),
        key: None,
        message: msg,
    };
    let address = |key: &str, host: &str, port: f64| {
        super::host_port(host, port as u16, "0.0.0.0").map_err(|m| at(key, format!("{key}: {m}")))
    };
    let mut out = Toml::new(path, " (etsy statsd's configuration)");
    out.comment("Keys config.js leaves out are written with statsd's defaults.");
    out.table("server.statsd");

    // The listener: the top-level object, or the first of `servers`.
    let server = match config.get("servers") {
        Value::Array(list) if list.is_empty() => {
            return Err(at(
                "servers",
                "servers = []: statsd then listens nowhere".into(),
            ))
        }
        Value::Array(list) => {
            for (i, s) in list.iter().enumerate().skip(1) {
                out.left(format!(
                    "servers[{i}] = {}: carbyne's statsd server listens on one address (UDP and TCP)",
                    s.show()
                ));
            }
            &list[0]
        }
        _ => &config,
    };
    // statsd's `config.port || 8125`, and a port it is.
    let port_of = |obj: &Value, key: &str, default: f64| {
        let port = match obj.get(key) {
            v if v.truthy() => v.number(),
            _ => default,
        };
        if (1.0..=65535.0).contains(&port) && port.fract() == 0.0 {
            Ok(port)
        } else {
            Err(at(
                key,
                format!("{key} = {}: not a port", obj.get(key).show()),
            ))
        }
    };
    let port = port_of(server, "port", 8125.0)?;
    let any = if server.get("address_ipv6").truthy() {
        "::"
    } else {
        "0.0.0.0"
    };
    let host = match server.get("address") {
        v if v.truthy() => v.text(),
        _ => any.to_string(),
    };
    let kind = match server.get("server") {
        v if v.truthy() => v.text(),
        _ => "./servers/udp".into(),
    };
    out.key(
        "listen",
        address("address", &host, port)?,
        &format!("address:port (statsd's {kind}; carbyne takes UDP and TCP there)"),
    );
    if server.get("socket").truthy() {
        out.left(format!(
            "socket = {}: carbyne's statsd server listens on TCP and UDP, not a unix socket",
            server.get("socket").show()
        ));
    }
    let mgmt_port = port_of(&config, "mgmt_port", 8126.0)?;
    let mgmt_host = match config.get("mgmt_address") {
        v if v.truthy() => v.text(),
        _ => "0.0.0.0".into(),
    };
    out.key(
        "admin",
        address("mgmt_address", &mgmt_host, mgmt_port)?,
        "mgmt_address:mgmt_port",
    );

    // Backends: graphite is carried over, any other is listed.
    let backends: Vec<String> = match config.get("backends") {
        Value::Undefined => vec!["./backends/graphite".into()],
        Value::Array(b) => b.iter().map(Value::text).collect(),
        other => vec![other.text()],
    };
    let graphite_backend = backends.iter().any(|b| is_graphite(b));
    for b in backends.iter().filter(|b| !is_graphite(b)) {
        out.left(format!("backends: {b:?}: carbyne's statsd server flushes to Graphite only (and serves Prometheus, prometheus_listen)"));
    }
    let host = config.get("graphiteHost");
    let graphite = if graphite_backend && host.truthy() {
        if config.get("graphiteProtocol").text() == "pickle" {
            out.left(
                "graphiteProtocol = \"pickle\": carbyne sends Graphite's plaintext protocol, to graphitePort"
                    .into(),
            );
        }
        let port = port_of(&config, "graphitePort", 2003.0)?;
        address("graphiteHost", &host.text(), port)?
    } else {
        out.comment("No graphiteHost (or no graphite backend): statsd sent its flushes nowhere.");
        String::new()
    };
    out.key("graphite", graphite, "graphiteHost:graphitePort");

    let flush = match config.get("flushInterval") {
        v if v.truthy() => v.number(),
        _ => 10000.0,
    };
    if !(flush.is_finite() && flush >= 10.0) {
        return Err(at(
            "flushInterval",
            format!(
                "flushInterval = {}: not a number of milliseconds (10 or more)",
                config.get("flushInterval").show()
            ),
        ));
    }
    out.key(
        "flush_interval",
        number(flush / 1000.0),
        "flushInterval / 1000",
    );

    // graphite's naming keys, with the backend's defaults.
    let g = config.get("graphite");
    let legacy = match g.get("legacyNamespace") {
        Value::Undefined => true,
        Value::Bool(b) => *b,
        other => {
            return Err(at(
                "graphite",
                format!(
                    "graphite.legacyNamespace = {}: statsd tests it against true and false exactly and mixes both namings for anything else; write true or false",
                    other.show()
                ),
            ))
        }
    };
    out.key("legacy_namespace", legacy, "graphite.legacyNamespace");
    for (js_key, key, default) in [
        ("globalPrefix", "global_prefix", "stats"),
        ("prefixCounter", "prefix_counter", "counters"),
        ("prefixTimer", "prefix_timer", "timers"),
        ("prefixGauge", "prefix_gauge", "gauges"),
        ("prefixSet", "prefix_set", "sets"),
    ] {
        let v = match g.get(js_key) {
            Value::Undefined => default.to_string(),
            v => v.text(),
        };
        out.key(key, v, &format!("graphite.{js_key}"));
    }
    match g.get("globalSuffix") {
        Value::Undefined => out.key("global_suffix", "", "graphite.globalSuffix"),
        v if v.text().is_empty() => out.left(
            "graphite.globalSuffix = \"\": statsd then ends every name with a dot; carbyne adds none"
                .into(),
        ),
        v => out.key("global_suffix", v.text(), "graphite.globalSuffix"),
    }
    let prefix_stats = match config.get("prefixStats") {
        Value::Undefined => "statsd".to_string(),
        v => v.text(),
    };
    out.key("prefix_stats", prefix_stats, "prefixStats");

    // percentThreshold: a number or a list (`|| 90`).
    let pct = config.get("percentThreshold");
    let thresholds: Vec<f64> = match pct {
        v if !v.truthy() => vec![90.0],
        Value::Array(list) => list.iter().map(Value::number).collect(),
        v => vec![v.number()],
    };
    if thresholds.iter().any(|t| !t.is_finite()) {
        return Err(at(
            "percentThreshold",
            format!("percentThreshold = {}: not numbers", pct.show()),
        ));
    }
    out.key(
        "percent_threshold",
        thresholds.into_iter().map(number).collect::<Vec<_>>(),
        "percentThreshold",
    );

    if let Value::Array(list) = config.get("histogram") {
        let mut specs = toml::value::Array::new();
        for h in list {
            let mut t = toml::Table::new();
            t.insert("metric".into(), h.get("metric").text().into());
            let mut bins: Vec<toml::Value> = Vec::new();
            if let Value::Array(b) = h.get("bins") {
                for x in b {
                    bins.push(match x {
                        Value::String(s) if s == "inf" => toml::Value::from("inf"),
                        other if other.number().is_finite() => number(other.number()),
                        other => {
                            return Err(at(
                                "histogram",
                                format!("histogram bin {}: a number or 'inf'", other.show()),
                            ))
                        }
                    });
                }
            }
            t.insert("bins".into(), bins.into());
            specs.push(t.into());
        }
        out.key("histogram", specs, "histogram");
    }

    let counts =
        !matches!(config.get("flush_counts"), v if !matches!(v, Value::Undefined) && !v.truthy());
    out.key("flush_counts", counts, "flush_counts");

    // statsd: deleteIdleStats sets each of the four unless given.
    let idle = config.get("deleteIdleStats").truthy();
    out.key(
        "delete_idle_stats",
        false,
        "deleteIdleStats, carried into each of the four below",
    );
    for (js_key, key) in [
        ("deleteCounters", "delete_counters"),
        ("deleteTimers", "delete_timers"),
        ("deleteGauges", "delete_gauges"),
        ("deleteSets", "delete_sets"),
    ] {
        let on = match config.get(js_key) {
            Value::Undefined => idle,
            v => v.truthy(),
        };
        out.key(key, on, &format!("{js_key} (deleteIdleStats when unset)"));
    }
    let ttl = config.get("gaugesMaxTTL").number();
    if ttl > 1.0 && ttl.fract() == 0.0 {
        out.left(format!(
            "gaugesMaxTTL = {ttl}: carbyne deletes an idle gauge after one flush"
        ));
    }
    let sanitize = match config.get("keyNameSanitize") {
        Value::Undefined => true,
        v => v.truthy(),
    };
    out.key("key_name_sanitize", sanitize, "keyNameSanitize");

    for (k, v, line) in members {
        if CARRIED.contains(&k.as_str()) {
            continue;
        }
        if let Some(why) = left(k, v) {
            out.left(format!("{k} = {} (line {line}): {why}", short(&v.show())));
        }
    }
    let mut m = Migration::default();
    m.add("conf.d/50-server-statsd.toml", out);
    Ok(m)
}

/// A value shown on one line, at most 80 characters.
fn short(s: &str) -> String {
    let one: String = s.split_whitespace().collect::<Vec<_>>().join(" ");
    if one.chars().count() > 80 {
        one.chars().take(77).collect::<String>() + "..."
    } else {
        one
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(js: &str) -> (String, Vec<String>) {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("config.js");
        std::fs::write(&p, js).expect("write");
        let m = migrate(&p).expect("migrate");
        m.check().expect("config check");
        (m.files[0].1.clone(), m.left)
    }

    #[test]
    fn an_empty_object_is_statsds_defaults() {
        let (t, left) = run("{}");
        for want in [
            "listen = \"0.0.0.0:8125\"",
            "admin = \"0.0.0.0:8126\"",
            "graphite = \"\"",
            "flush_interval = 10",
            "legacy_namespace = true",
            "percent_threshold = [90]",
            "flush_counts = true",
            "key_name_sanitize = true",
        ] {
            assert!(t.contains(want), "{want}: {t}");
        }
        assert!(left.is_empty(), "{left:?}");
    }

    #[test]
    fn delete_idle_stats_sets_each_unless_given() {
        let (t, _) = run("{ deleteIdleStats: true, deleteCounters: false, graphiteHost: 'g', graphitePort: 2103 }");
        assert!(t.contains("graphite = \"g:2103\""), "{t}");
        assert!(t.contains("delete_counters = false"), "{t}");
        assert!(t.contains("delete_timers = true"), "{t}");
        assert!(t.contains("delete_gauges = true"), "{t}");
    }

    #[test]
    fn other_backends_and_unknown_keys_are_listed() {
        let (t, left) = run(
            "{ backends: ['./backends/console', './backends/graphite'], graphiteHost: 'g', percentThreshold: 95, dumpMessages: false, frob: 1, servers: [{server: './servers/udp', port: 9125, address_ipv6: true}, {server: './servers/tcp', port: 9126}] }",
        );
        assert!(t.contains("listen = \"[::]:9125\""), "{t}");
        assert!(t.contains("percent_threshold = [95]"), "{t}");
        assert!(
            left.iter().any(|l| l.contains("./backends/console")),
            "{left:?}"
        );
        assert!(left.iter().any(|l| l.starts_with("frob = 1")), "{left:?}");
        assert!(left.iter().any(|l| l.starts_with("servers[1]")), "{left:?}");
        assert!(
            !left.iter().any(|l| l.starts_with("dumpMessages")),
            "{left:?}"
        );
    }
}
