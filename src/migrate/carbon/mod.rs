//! `carbyne migrate carbon carbon.conf`: one carbon daemon's section of
//! carbon.conf as `[server.carbon]`. carbon-cache, carbon-relay,
//! carbon-aggregator and carbon-aggregator-cache each read their own
//! section (`[cache]`, `[relay]`, `[aggregator]`, `[aggregator-cache]`)
//! and their instance's on top (`[cache:a]`); a key the file leaves out
//! takes carbon's default, which is written out too (carbyne's defaults
//! differ). The files carbon reads from its CONF_DIR (storage schemas,
//! lists, rules) are pointed at where they are, and `storage_dir` at the
//! existing whisper tree, so no data moves.

mod known;
mod settings;

use super::{number, Migration, Toml};
use crate::config::ConfigError;
use crate::server::carbon::schemas::parse_ini;
use known::fixed;
use settings::{interpolate, local_path, Settings};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Which carbon daemon's settings to carry over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Program {
    /// carbon-cache: receives and writes whisper files.
    Cache,
    /// carbon-relay: receives and forwards.
    Relay,
    /// carbon-aggregator: rewrites, aggregates and forwards.
    Aggregator,
    /// carbon-aggregator-cache: rewrites, aggregates and writes.
    AggregatorCache,
}

impl Program {
    fn section(self) -> &'static str {
        match self {
            Program::Cache => "cache",
            Program::Relay => "relay",
            Program::Aggregator => "aggregator",
            Program::AggregatorCache => "aggregator-cache",
        }
    }
    fn stores(self) -> bool {
        matches!(self, Program::Cache | Program::AggregatorCache)
    }
    fn aggregates(self) -> bool {
        matches!(self, Program::Aggregator | Program::AggregatorCache)
    }
    fn relays(self) -> bool {
        matches!(self, Program::Relay | Program::Aggregator)
    }
}

/// carbon.conf's settings for `program` and its `instance`, as
/// `conf.d/50-server-carbon.toml`.
pub fn migrate(path: &Path, program: Program, instance: &str) -> Result<Migration, ConfigError> {
    let text = crate::config::read_text(path)?;
    let file = path.display().to_string();
    let sections = parse_ini(&text, &file).map_err(|e| ConfigError {
        file: Some(path.to_path_buf()),
        line: (e.line > 0).then_some(e.line),
        key: None,
        message: e.msg,
    })?;
    let name = program.section();
    let own = format!("{name}:{instance}");
    let cfg_err = |line: usize, message: String| ConfigError {
        file: Some(path.to_path_buf()),
        line: Some(line),
        key: None,
        message,
    };
    // ConfigParser: each section read with [DEFAULT] under it, `%(x)s`
    // resolved within that section; the instance's on top of the daemon's.
    let defaults: Vec<(String, String, usize)> = sections
        .iter()
        .filter(|s| s.name == "DEFAULT")
        .flat_map(|s| {
            s.keys()
                .map(|(k, v, l)| (k.to_ascii_uppercase(), v.to_string(), l))
        })
        .collect();
    let mut keys = BTreeMap::new();
    let mut found = false;
    for wanted in [name, own.as_str()] {
        let Some(section) = sections.iter().find(|s| s.name == wanted) else {
            continue;
        };
        found = true;
        let mut here: BTreeMap<String, (String, usize)> = defaults
            .iter()
            .map(|(k, v, l)| (k.clone(), (v.clone(), *l)))
            .collect();
        let mut seen = std::collections::BTreeSet::new();
        for (k, v, line) in section.keys() {
            let k = k.to_ascii_uppercase();
            if !seen.insert(k.clone()) {
                return Err(cfg_err(line, format!("{k} appears twice in [{wanted}]")));
            }
            here.insert(k, (v.to_string(), line));
        }
        let raw = here.clone();
        for (k, (v, line)) in here.iter_mut() {
            *v = interpolate(v, &raw, 0).map_err(|m| cfg_err(*line, format!("{k}: {m}")))?;
        }
        keys.extend(here);
    }
    let mut s = Settings {
        file: path.to_path_buf(),
        keys,
        used: Default::default(),
    };
    let mut out = Toml::new(
        path,
        &format!(", [{name}] and [{own}] (carbon-{name} --instance {instance})"),
    );
    out.comment("Keys carbon.conf leaves out are written with carbon's default.");
    if !found {
        out.comment(&format!(
            "carbon.conf has no [{name}] section: carbon-{name} runs on its defaults, written here."
        ));
    }
    out.table("server.carbon");

    // Where carbon finds its files (carbon's conf.py, as with --config).
    let abs = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let conf_dir = match s.get("CONF_DIR") {
        Some((d, _)) => local_path(&d),
        None => abs
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf),
    };
    let in_conf = |f: &str| conf_dir.join(f);

    let listen = s.address("LINE_RECEIVER_INTERFACE", "LINE_RECEIVER_PORT", 2003)?;
    if listen.is_empty() {
        return Err(s.err(
            s.keys.get("LINE_RECEIVER_PORT").map_or(0, |v| v.1),
            "LINE_RECEIVER_PORT = 0: carbyne's receiver always takes lines".into(),
        ));
    }
    out.key(
        "listen",
        listen.clone(),
        "LINE_RECEIVER_INTERFACE:LINE_RECEIVER_PORT",
    );
    let pickle = s.address("PICKLE_RECEIVER_INTERFACE", "PICKLE_RECEIVER_PORT", 2004)?;
    out.key(
        "pickle_listen",
        pickle,
        "PICKLE_RECEIVER_INTERFACE:PICKLE_RECEIVER_PORT",
    );
    let udp = s.boolean("ENABLE_UDP_LISTENER", false)?;
    let udp_at = s.address("UDP_RECEIVER_INTERFACE", "UDP_RECEIVER_PORT", 2003)?;
    out.key("udp", udp, "ENABLE_UDP_LISTENER");
    if udp && udp_at != listen {
        out.left(format!(
            "UDP_RECEIVER_INTERFACE:UDP_RECEIVER_PORT = {udp_at}: carbyne takes UDP on the line listener's address, {listen}"
        ));
    }
    if program.stores() {
        let q = s.address("CACHE_QUERY_INTERFACE", "CACHE_QUERY_PORT", 7002)?;
        out.key(
            "cache_query_listen",
            q,
            "CACHE_QUERY_INTERFACE:CACHE_QUERY_PORT",
        );
    } else {
        out.key(
            "cache_query_listen",
            "",
            "carbon-relay and carbon-aggregator keep no cache",
        );
    }

    match s.number("MAX_RECEIVER_CONNECTIONS", f64::INFINITY)? {
        n if n.is_finite() && (1.0..1e9).contains(&n) => {
            out.key("max_connections", number(n.floor()), "MAX_RECEIVER_CONNECTIONS")
        }
        n => out.left(format!(
            "MAX_RECEIVER_CONNECTIONS = {n}{}: carbyne takes at most max_connections (1024) per listener",
            s.at("MAX_RECEIVER_CONNECTIONS")
        )),
    }
    let idle = s.optional_number("METRIC_CLIENT_IDLE_TIMEOUT")?;
    out.key(
        "idle_timeout",
        number(idle.filter(|t| t.is_finite()).unwrap_or(0.0).max(0.0)),
        "METRIC_CLIENT_IDLE_TIMEOUT (None: never)",
    );

    if s.boolean("USE_WHITELIST", false)? {
        for list in ["whitelist", "blacklist"] {
            let p = in_conf(&format!("{list}.conf"));
            if p.is_file() {
                out.key(list, p.display().to_string(), "USE_WHITELIST, in CONF_DIR");
            } else {
                out.comment(&format!(
                    "USE_WHITELIST: no {} (carbon then lets every name through)",
                    p.display()
                ));
            }
        }
    }

    if program.stores() {
        carry_storage(&mut s, &mut out, &in_conf)?;
    }
    if program.aggregates() {
        carry_rules(&mut s, &mut out, &in_conf)?;
    }

    out.key(
        "carbon_metric_prefix",
        s.string("CARBON_METRIC_PREFIX", "carbon"),
        "CARBON_METRIC_PREFIX",
    );
    let interval = s.count("CARBON_METRIC_INTERVAL", 60.0, 0.0, None)?;
    out.key("carbon_metric_interval", interval, "CARBON_METRIC_INTERVAL");
    out.key("instance", instance, "--instance");
    out.key("store", program.stores(), "");

    if program.relays() {
        carry_relay(&mut s, &mut out, &in_conf, program)?;
    }

    // Whatever else the section holds.
    let rest: Vec<(String, String, usize)> = s
        .keys
        .iter()
        .filter(|(k, _)| !s.used.contains(*k))
        .map(|(k, (v, l))| (k.clone(), v.clone(), *l))
        .collect();
    for (k, v, line) in rest {
        match fixed(&k, &v) {
            Some(None) => {}
            Some(Some(why)) => out.left(format!("{k} = {v} (line {line}): {why}")),
            None if matches!(
                k.as_str(),
                "STORAGE_DIR" | "LOCAL_DATA_DIR" | "WHITELISTS_DIR" | "GRAPHITE_ROOT"
            ) => {}
            None => out.left(format!(
                "{k} = {v} (line {line}): not a setting carbon-{name} reads, or not one carbyne has"
            )),
        }
    }
    let mut m = Migration::default();
    m.add("conf.d/50-server-carbon.toml", out);
    Ok(m)
}

/// carbon-cache's storage keys.
fn carry_storage(
    s: &mut Settings,
    out: &mut Toml,
    in_conf: &dyn Fn(&str) -> PathBuf,
) -> Result<(), ConfigError> {
    // STORAGE_DIR: the file's, else carbon's environment and layout.
    let storage = match s.get("STORAGE_DIR") {
        Some((d, _)) => local_path(&d),
        None => match std::env::var_os("GRAPHITE_STORAGE_DIR") {
            Some(d) => local_path(&d.to_string_lossy()),
            None => {
                let root = std::env::var_os("GRAPHITE_ROOT").map_or_else(
                    || {
                        let conf = in_conf("");
                        conf.parent()
                            .map_or_else(|| PathBuf::from("/opt/graphite"), Path::to_path_buf)
                    },
                    PathBuf::from,
                );
                root.join("storage")
            }
        },
    };
    let data = match s.get("LOCAL_DATA_DIR") {
        Some((d, _)) => local_path(&d),
        None => storage.join("whisper"),
    };
    out.key(
        "storage_dir",
        data.display().to_string(),
        "LOCAL_DATA_DIR (STORAGE_DIR/whisper when unset)",
    );
    let schemas = in_conf("storage-schemas.conf");
    if !schemas.is_file() {
        return Err(s.err(
            0,
            format!(
                "{}: no such file (carbon-cache does not start without it)",
                schemas.display()
            ),
        ));
    }
    out.key(
        "schemas",
        schemas.display().to_string(),
        "CONF_DIR/storage-schemas.conf",
    );
    let agg = in_conf("storage-aggregation.conf");
    if agg.is_file() {
        out.key(
            "aggregation",
            agg.display().to_string(),
            "CONF_DIR/storage-aggregation.conf",
        );
    }
    let size = s.count("MAX_CACHE_SIZE", f64::INFINITY, 1.0, Some(0))?;
    out.key(
        "max_cache_size",
        size,
        "MAX_CACHE_SIZE (inf: 0, no bound in points; max_cache_bytes still bounds it)",
    );
    // A rate of 0 stops carbon (no update, no create ever); 0 is "no
    // limit" to carbyne, so it is refused rather than turned around.
    for (key, default, ours) in [
        ("MAX_UPDATES_PER_SECOND", 500.0, "max_updates_per_second"),
        (
            "MAX_CREATES_PER_MINUTE",
            f64::INFINITY,
            "max_creates_per_minute",
        ),
    ] {
        let n = s.number(key, default)?;
        if n.is_nan() || n <= 0.0 {
            let line = s.keys.get(key).map_or(0, |v| v.1);
            return Err(s.err(
                line,
                format!("{key} = {n}: carbon would never write (or divide by zero); carbyne will not guess what was meant"),
            ));
        }
        out.key(
            ours,
            number(if n.is_finite() { n } else { 0.0 }),
            &format!("{key} (inf: 0, no limit)"),
        );
    }
    let strategy = s.string("CACHE_WRITE_STRATEGY", "sorted");
    match strategy.as_str() {
        "sorted" | "max" | "naive" => out.key(
            "cache_write_strategy",
            strategy.as_str(),
            "CACHE_WRITE_STRATEGY",
        ),
        other => {
            out.key("cache_write_strategy", "sorted", "CACHE_WRITE_STRATEGY");
            out.left(format!(
                "CACHE_WRITE_STRATEGY = {other}: carbyne has sorted, max and naive; sorted is used"
            ));
        }
    }
    // whisper: fallocate wins over sparse.
    let fallocate = s.boolean("WHISPER_FALLOCATE_CREATE", false)?;
    let sparse = s.boolean("WHISPER_SPARSE_CREATE", false)?;
    let create = if fallocate {
        "fallocate"
    } else if sparse {
        "sparse"
    } else {
        "zeroed"
    };
    out.key(
        "create",
        create,
        "WHISPER_FALLOCATE_CREATE, WHISPER_SPARSE_CREATE",
    );
    Ok(())
}

/// carbon-aggregator's rule files and settings.
fn carry_rules(
    s: &mut Settings,
    out: &mut Toml,
    in_conf: &dyn Fn(&str) -> PathBuf,
) -> Result<(), ConfigError> {
    let rules = in_conf(&s.string("AGGREGATION_RULES", "aggregation-rules.conf"));
    out.key(
        "aggregation_rules",
        rules.display().to_string(),
        "AGGREGATION_RULES, in CONF_DIR",
    );
    let rewrite = in_conf(&s.string("REWRITE_RULES", "rewrite-rules.conf"));
    if rewrite.is_file() {
        out.key(
            "rewrite_rules",
            rewrite.display().to_string(),
            "REWRITE_RULES, in CONF_DIR",
        );
    }
    out.key(
        "forward_all",
        s.boolean("FORWARD_ALL", true)?,
        "FORWARD_ALL",
    );
    let intervals = s.count("MAX_AGGREGATION_INTERVALS", 5.0, 1.0, None)?;
    out.key(
        "max_aggregation_intervals",
        intervals,
        "MAX_AGGREGATION_INTERVALS",
    );
    let back = match s.optional_number("WRITE_BACK_FREQUENCY")? {
        None => toml::Value::Integer(0),
        Some(_) => s.count("WRITE_BACK_FREQUENCY", 0.0, 0.0, None)?,
    };
    out.key(
        "write_back_frequency",
        back,
        "WRITE_BACK_FREQUENCY (None: 0, each rule's frequency)",
    );
    Ok(())
}

/// carbon-relay's (and carbon-aggregator's) destinations.
fn carry_relay(
    s: &mut Settings,
    out: &mut Toml,
    in_conf: &dyn Fn(&str) -> PathBuf,
    program: Program,
) -> Result<(), ConfigError> {
    out.table("server.carbon.relay");
    let destinations: Vec<String> = s
        .string("DESTINATIONS", "")
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(String::from)
        .collect();
    if destinations.is_empty() {
        return Err(s.err(
            s.keys.get("DESTINATIONS").map_or(0, |v| v.1),
            "DESTINATIONS is empty: a relay needs somewhere to send".into(),
        ));
    }
    out.key("destinations", destinations, "DESTINATIONS");
    // carbon-aggregator always hashes.
    let method = if program == Program::Aggregator {
        s.used.insert("RELAY_METHOD".into());
        "consistent-hashing".to_string()
    } else {
        s.string("RELAY_METHOD", "rules")
    };
    match method.as_str() {
        "consistent-hashing" => out.key("method", "consistent-hashing", "RELAY_METHOD"),
        "rules" => {
            out.key("method", "rules", "RELAY_METHOD");
            let rules = in_conf(&s.string("RELAY_RULES", "relay-rules.conf"));
            out.key(
                "rules",
                rules.display().to_string(),
                "RELAY_RULES, in CONF_DIR",
            );
        }
        other => {
            let line = s.keys.get("RELAY_METHOD").map_or(0, |v| v.1);
            return Err(s.err(
                line,
                format!(
                    "RELAY_METHOD = {other}: carbyne's relay routes by consistent-hashing or rules only, and another method would send names elsewhere"
                ),
            ));
        }
    }
    if let Some((h, line)) = s
        .get("ROUTER_HASH_TYPE")
        .filter(|(h, _)| h != "None" && !h.is_empty())
    {
        return Err(s.err(
            line,
            format!("ROUTER_HASH_TYPE = {h}: carbyne's ring hashes as carbon's default (md5); another hash would send names elsewhere"),
        ));
    }
    let rf = s.count("REPLICATION_FACTOR", 1.0, 1.0, None)?;
    out.key("replication_factor", rf, "REPLICATION_FACTOR");
    out.key(
        "diverse_replicas",
        s.boolean("DIVERSE_REPLICAS", true)?,
        "DIVERSE_REPLICAS",
    );
    let q = s.count("MAX_QUEUE_SIZE", 1000.0, 1.0, Some(1_000_000_000))?;
    out.key("max_queue_size", q, "MAX_QUEUE_SIZE");
    let per = s.count("MAX_DATAPOINTS_PER_MESSAGE", 500.0, 1.0, None)?;
    out.key(
        "max_datapoints_per_message",
        per,
        "MAX_DATAPOINTS_PER_MESSAGE",
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(dir: &Path, text: &str) -> PathBuf {
        std::fs::write(
            dir.join("storage-schemas.conf"),
            "[d]\npattern = .*\nretentions = 60:1d\n",
        )
        .expect("schemas");
        let p = dir.join("carbon.conf");
        std::fs::write(&p, text).expect("carbon.conf");
        p
    }

    fn text(m: &Migration) -> &str {
        &m.files[0].1
    }

    #[test]
    fn defaults_left_out_are_carbons_and_the_instance_section_wins() {
        let dir = tempfile::tempdir().expect("dir");
        let p = conf(
            dir.path(),
            "[cache]\nSTORAGE_DIR = /srv/graphite\nLINE_RECEIVER_PORT = 2003\nUSER = _graphite\n\n[cache:b]\nLINE_RECEIVER_PORT: 2103\nPICKLE_RECEIVER_PORT = 0\n",
        );
        let m = migrate(&p, Program::Cache, "b").expect("migrate");
        let t = text(&m);
        assert!(t.contains("listen = \"0.0.0.0:2103\""), "{t}");
        assert!(t.contains("pickle_listen = \"\""), "{t}");
        assert!(t.contains("udp = false"), "{t}");
        assert!(t.contains("max_updates_per_second = 500"), "{t}");
        assert!(t.contains("storage_dir = \"/srv/graphite/whisper\""), "{t}");
        assert!(t.contains("instance = \"b\""), "{t}");
        assert!(
            m.left.iter().any(|l| l.starts_with("USER = _graphite")),
            "{:?}",
            m.left
        );
        m.check().expect("config check");
    }

    #[test]
    fn inf_is_no_limit_and_unknown_keys_are_listed() {
        let dir = tempfile::tempdir().expect("dir");
        let p = conf(
            dir.path(),
            "[cache]\nMAX_CACHE_SIZE = inf\nMAX_CREATES_PER_MINUTE = 50\nWHISPER_FALLOCATE_CREATE = True\nNO_SUCH_KEY = 1\nLOG_UPDATES = False\n",
        );
        let m = migrate(&p, Program::Cache, "a").expect("migrate");
        let t = text(&m);
        assert!(t.contains("max_cache_size = 0"), "{t}");
        assert!(t.contains("max_creates_per_minute = 50"), "{t}");
        assert!(t.contains("create = \"fallocate\""), "{t}");
        assert!(
            m.left.iter().any(|l| l.starts_with("NO_SUCH_KEY = 1")),
            "{:?}",
            m.left
        );
        // A value that means what carbyne does is not listed.
        assert!(
            !m.left.iter().any(|l| l.starts_with("LOG_UPDATES")),
            "{:?}",
            m.left
        );
    }

    #[test]
    fn bad_values_name_the_line() {
        let dir = tempfile::tempdir().expect("dir");
        let p = conf(dir.path(), "[cache]\n\nLINE_RECEIVER_PORT = 20o3\n");
        let e = migrate(&p, Program::Cache, "a").expect_err("bad port");
        assert_eq!(e.line, Some(3), "{e}");
        let p = conf(
            dir.path(),
            "[relay]\nRELAY_METHOD = fast-hashing\nDESTINATIONS = a:1\n",
        );
        let e = migrate(&p, Program::Relay, "a").expect_err("method");
        assert!(e.to_string().contains("fast-hashing"), "{e}");
        let p = conf(dir.path(), "[cache]\nX = %(nope)s\n");
        assert!(migrate(&p, Program::Cache, "a").is_err());
    }

    #[test]
    fn what_carbon_would_not_run_as_written_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        // An interpolation that doubles at every level: refused, not built.
        let mut bomb = String::from("[cache]\n");
        for level in 0..8 {
            let refs = format!("%(v{})s", level + 1).repeat(40);
            bomb.push_str(&format!("V{level} = {refs}\n"));
        }
        bomb.push_str(&format!("V8 = {}\n", "x".repeat(100)));
        let p = conf(dir.path(), &bomb);
        let start = std::time::Instant::now();
        let e = migrate(&p, Program::Cache, "a").expect_err("bomb");
        assert!(e.to_string().contains("bytes"), "{e}");
        assert!(start.elapsed() < std::time::Duration::from_secs(5));
        for text in [
            "[cache]\nMAX_UPDATES_PER_SECOND = 0\n",
            "[cache]\nMAX_CREATES_PER_MINUTE = -1\n",
            "[cache]\nLINE_RECEIVER_PORT = 1\nline_receiver_port = 2\n",
            "[cache]\nLINE_RECEIVER_INTERFACE = 127.0.0.1 # lo\n",
        ] {
            let p = conf(dir.path(), text);
            assert!(migrate(&p, Program::Cache, "a").is_err(), "{text}");
        }
    }

    #[test]
    fn default_applies_under_the_instance_section_too() {
        let dir = tempfile::tempdir().expect("dir");
        let p = conf(
            dir.path(),
            "[DEFAULT]\nLINE_RECEIVER_PORT = 9999\n[cache]\nLINE_RECEIVER_PORT = 2003\n[cache:a]\nX = 1\n",
        );
        let m = migrate(&p, Program::Cache, "a").expect("migrate");
        assert!(
            text(&m).contains("listen = \"0.0.0.0:9999\""),
            "{}",
            text(&m)
        );
    }

    #[test]
    fn an_aggregator_forwards_by_hashing_and_reads_its_rules() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(dir.path().join("aggregation-rules.conf"), "").expect("rules");
        let p = conf(
            dir.path(),
            "[aggregator]\nLINE_RECEIVER_PORT = 2023\nPICKLE_RECEIVER_PORT = 2024\nDESTINATIONS = 127.0.0.1:2004\nRELAY_METHOD = rules\n",
        );
        let m = migrate(&p, Program::Aggregator, "a").expect("migrate");
        let t = text(&m);
        assert!(t.contains("method = \"consistent-hashing\""), "{t}");
        assert!(t.contains("store = false"), "{t}");
        assert!(t.contains("aggregation-rules.conf"), "{t}");
        m.check().expect("config check");
    }
}
