//! `carbyne migrate carbon carbon.conf`: one carbon daemon's section of
//! carbon.conf as `[server.carbon]`. carbon-cache, carbon-relay,
//! carbon-aggregator and carbon-aggregator-cache each read their own
//! section (`[cache]`, `[relay]`, `[aggregator]`, `[aggregator-cache]`)
//! and their instance's on top (`[cache:a]`); a key the file leaves out
//! takes carbon's default, which is written out too (carbyne's defaults
//! differ). The files carbon reads from its CONF_DIR (storage schemas,
//! lists, rules) are pointed at where they are, and `storage_dir` at the
//! existing whisper tree, so no data moves.

use super::{number, Migration, Toml};
use crate::config::ConfigError;
use crate::server::carbon::schemas::parse_ini;
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

/// The daemon's settings: upper-cased keys with their value and line.
struct Settings {
    file: PathBuf,
    keys: BTreeMap<String, (String, usize)>,
    used: std::collections::BTreeSet<String>,
}

impl Settings {
    fn err(&self, line: usize, msg: String) -> ConfigError {
        ConfigError {
            file: Some(self.file.clone()),
            line: (line > 0).then_some(line),
            key: None,
            message: msg,
        }
    }

    /// The value of `key` (marked as carried over) and its line.
    fn get(&mut self, key: &str) -> Option<(String, usize)> {
        self.used.insert(key.to_string());
        self.keys.get(key).cloned()
    }

    /// Where `key` is set: ` (line N)`, or ` (carbon's default)`.
    fn at(&self, key: &str) -> String {
        match self.keys.get(key) {
            Some((_, line)) => format!(" (line {line})"),
            None => " (carbon's default)".into(),
        }
    }

    /// A string, or carbon's default.
    fn string(&mut self, key: &str, default: &str) -> String {
        self.get(key).map_or_else(|| default.to_string(), |v| v.0)
    }

    /// A number as carbon reads one (int, then float: `inf` too).
    fn number(&mut self, key: &str, default: f64) -> Result<f64, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some((v, line)) => {
                python_float(&v).ok_or_else(|| self.err(line, format!("{key} = {v}: not a number")))
            }
        }
    }

    /// `None` (carbon's way of saying "not set") or a number.
    fn optional_number(&mut self, key: &str) -> Result<Option<f64>, ConfigError> {
        match self.get(key) {
            None => Ok(None),
            Some((v, _)) if v == "None" || v.is_empty() => Ok(None),
            Some((v, line)) => python_float(&v)
                .map(Some)
                .ok_or_else(|| self.err(line, format!("{key} = {v}: not a number or None"))),
        }
    }

    /// Python's `getboolean`.
    fn boolean(&mut self, key: &str, default: bool) -> Result<bool, ConfigError> {
        match self.get(key) {
            None => Ok(default),
            Some((v, line)) => match v.to_ascii_lowercase().as_str() {
                "1" | "yes" | "true" | "on" => Ok(true),
                "0" | "no" | "false" | "off" => Ok(false),
                _ => Err(self.err(line, format!("{key} = {v}: not a boolean"))),
            },
        }
    }

    /// `INTERFACE:PORT` for carbyne's listen keys; "" when the port is 0
    /// (carbon's way of turning a listener off).
    fn address(&mut self, iface: &str, port: &str, default: u16) -> Result<String, ConfigError> {
        let host = self.string(iface, "0.0.0.0");
        let p = self.number(port, f64::from(default))?;
        if !(0.0..=65535.0).contains(&p) || p.fract() != 0.0 {
            let line = self.keys.get(port).map_or(0, |v| v.1);
            return Err(self.err(line, format!("{port} = {p}: not a port")));
        }
        if p == 0.0 {
            return Ok(String::new());
        }
        super::host_port(&host, p as u16, "0.0.0.0").map_err(|m| {
            let line = self.keys.get(iface).map_or(0, |v| v.1);
            self.err(line, format!("{iface}: {m}"))
        })
    }

    /// A count carbyne takes as a whole number: `inf` (or more than any
    /// count) is `unlimited`; below `min` is an error, since carbon would
    /// not run as carbyne does.
    fn count(
        &mut self,
        key: &str,
        default: f64,
        min: f64,
        unlimited: Option<i64>,
    ) -> Result<toml::Value, ConfigError> {
        let n = self.number(key, default)?;
        let line = self.keys.get(key).map_or(0, |v| v.1);
        if n.is_nan() || n < min {
            return Err(self.err(
                line,
                format!("{key} = {n}: carbon needs at least {min} (carbyne will not guess what was meant)"),
            ));
        }
        if n >= 1e15 {
            return unlimited.map(toml::Value::Integer).ok_or_else(|| {
                self.err(line, format!("{key} = {n}: carbyne needs a whole number"))
            });
        }
        Ok(toml::Value::Integer(n.floor() as i64))
    }
}

/// A path as carbon takes it: `~` expanded, relative to where it runs
/// (written out absolute, since carbyne runs elsewhere).
fn local_path(p: &str) -> PathBuf {
    let expanded = match (p.strip_prefix("~/"), std::env::var_os("HOME")) {
        (Some(rest), Some(home)) => PathBuf::from(home).join(rest),
        _ if p == "~" => std::env::var_os("HOME").map_or_else(|| PathBuf::from(p), PathBuf::from),
        _ => PathBuf::from(p),
    };
    std::path::absolute(&expanded).unwrap_or(expanded)
}

/// Python's `float()` of a carbon.conf value (its `int()` first gives the
/// same number).
fn python_float(v: &str) -> Option<f64> {
    let t = v.trim();
    match t.to_ascii_lowercase().trim_start_matches(['+', '-']) {
        "inf" | "infinity" => {
            return Some(if t.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            })
        }
        "nan" => return None,
        _ => {}
    }
    t.replace('_', "").parse::<f64>().ok()
}

/// ConfigParser's `%(name)s` and `%%` in `value`, from `keys`.
fn interpolate(
    value: &str,
    keys: &BTreeMap<String, (String, usize)>,
    depth: usize,
) -> Result<String, String> {
    if !value.contains('%') {
        return Ok(value.to_string());
    }
    if depth > 10 {
        return Err("interpolation nested more than 10 deep".into());
    }
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find('%') {
        if out.len() > MAX_VALUE {
            return Err(format!(
                "interpolation makes a value over {MAX_VALUE} bytes"
            ));
        }
        out.push_str(&rest[..i]);
        rest = &rest[i + 1..];
        if let Some(r) = rest.strip_prefix('%') {
            out.push('%');
            rest = r;
        } else if let Some(r) = rest.strip_prefix('(') {
            let Some(end) = r.find(")s") else {
                return Err(format!("bad interpolation in {value:?}"));
            };
            let name = r[..end].to_ascii_uppercase();
            let Some((v, _)) = keys.get(&name) else {
                return Err(format!("%({}) names no key", &r[..end]));
            };
            out.push_str(&interpolate(v, keys, depth + 1)?);
            rest = &r[end + 2..];
        } else {
            return Err(format!("'%' must be followed by '%' or '(' in {value:?}"));
        }
    }
    out.push_str(rest);
    if out.len() > MAX_VALUE {
        return Err(format!(
            "interpolation makes a value over {MAX_VALUE} bytes"
        ));
    }
    Ok(out)
}

/// Longest value interpolation may make (carbon's values are short).
const MAX_VALUE: usize = 64 << 10;

/// Keys that carbyne does on its own, with the value that means the same,
/// and why any other value is not carried over. Keys not listed here and
/// not read are listed as unknown.
fn fixed(key: &str, value: &str) -> Option<Option<&'static str>> {
    let v = value.to_ascii_lowercase();
    let is = |options: &[&str]| options.contains(&v.as_str());
    let falsy = is(&["false", "no", "off", "0"]);
    Some(match key {
        "DATABASE" => (!is(&["whisper"])).then_some("carbyne stores whisper files only"),
        "USER" => (!v.is_empty()).then_some("the package's services run as their own user"),
        "ENABLE_LOGROTATION" | "LOG_DIR" => {
            Some("carbyne logs to stderr (the journal, under systemd)")
        }
        "PID_DIR" => Some("systemd keeps track of the service; there is no pid file"),
        "LOG_UPDATES"
        | "LOG_CREATES"
        | "LOG_CACHE_HITS"
        | "LOG_CACHE_QUEUE_SORTS"
        | "LOG_LISTENER_CONN_SUCCESS"
        | "LOG_LISTENER_CONN_LOST"
        | "LOG_AGGREGATOR_MISSES" => {
            (!falsy).then_some("carbyne counts these in its own metrics instead of logging each")
        }
        "MIN_TIMESTAMP_RESOLUTION" => (!is(&["0", "1"]))
            .then_some("whisper keeps whole seconds; carbyne does not round timestamps further"),
        "MIN_TIMESTAMP_LAG" => (!is(&["0"])).then_some("carbyne writes points as they come"),
        "WHISPER_AUTOFLUSH" => (!falsy).then_some("carbyne leaves flushing to the kernel"),
        "WHISPER_LOCK_WRITES" => {
            (!falsy).then_some("carbyne does not take flock locks; each file has one writer thread")
        }
        "WHISPER_FADVISE_RANDOM" => (!falsy).then_some("carbyne gives no fadvise hints"),
        "USE_FLOW_CONTROL" => (falsy).then_some(
            "carbyne always makes senders wait while its cache or queues are full, never drops",
        ),
        "USE_INSECURE_UNPICKLER" => {
            (!falsy).then_some("carbyne's unpickler takes only what carbon's safe unpickler takes")
        }
        "PICKLE_RECEIVER_MAX_LENGTH" => {
            Some("carbyne bounds the pickle messages being decoded, together, by max_decode_bytes")
        }
        "MAX_UPDATES_PER_SECOND_ON_SHUTDOWN" => {
            Some("carbyne writes its whole cache at full speed when it stops")
        }
        "ENABLE_TAGS"
        | "TAG_UPDATE_INTERVAL"
        | "TAG_BATCH_SIZE"
        | "TAG_QUEUE_SIZE"
        | "GRAPHITE_URL"
        | "SKIP_TAGS_FOR_NONTAGGED" => {
            Some("carbyne's web server lists the tagged names it writes itself (no tagdb posts)")
        }
        "TAG_HASH_FILENAMES" => {
            (falsy).then_some("carbyne names tagged files by hash, as carbon's default")
        }
        "QUEUE_LOW_WATERMARK_PCT" | "TIME_TO_DEFER_SENDING" => {
            Some("carbyne's relay sends as fast as the destination takes")
        }
        "USE_RATIO_RESET" => {
            (!falsy).then_some("carbyne's relay does not reset connections by ratio")
        }
        // Read only with USE_RATIO_RESET (listed if on).
        "MIN_RESET_STAT_FLOW" | "MIN_RESET_RATIO" | "MIN_RESET_INTERVAL" => None,
        "DESTINATION_PROTOCOL" => {
            (!is(&["pickle"])).then_some("carbyne's relay speaks carbon's pickle protocol only")
        }
        "DESTINATION_TRANSPORT" => (!is(&["none"])).then_some("carbyne's relay sends without TLS"),
        "ENABLE_AMQP" => (!falsy).then_some("carbyne has no AMQP listener"),
        "ENABLE_MANHOLE" => (!falsy).then_some("carbyne has no manhole (debug shell)"),
        "CACHE_METRIC_NAMES_MAX" | "CACHE_METRIC_NAMES_TTL" => {
            Some("carbyne keeps each name's rule matches up to 64 MiB of them")
        }
        "TAG_RELAY_NORMALIZED" => {
            (!falsy).then_some("carbyne relays tagged names as they came (not normalized)")
        }
        "BIND_PATTERNS"
        | "RAVEN_DSN"
        | "DYNAMIC_ROUTER"
        | "DYNAMIC_ROUTER_MAX_RETRIES"
        | "DESTINATION_SSL_CA"
        | "DESTINATION_POOL_REPLICAS"
        | "TCP_KEEPALIVE"
        | "TCP_KEEPIDLE"
        | "TCP_KEEPINTVL"
        | "TCP_KEEPCNT"
        | "CERES_MAX_SLICE_GAP"
        | "CERES_NODE_CACHING_BEHAVIOR"
        | "CERES_SLICE_CACHING_BEHAVIOR"
        | "CERES_LOCK_WRITES"
        | "MANHOLE_INTERFACE"
        | "MANHOLE_PORT"
        | "MANHOLE_USER"
        | "MANHOLE_PUBLIC_KEY"
        | "MANHOLE_HOST_KEY_DIR"
        | "PROTOBUF_RECEIVER_INTERFACE"
        | "PROTOBUF_RECEIVER_PORT" => Some("carbyne has no such setting"),
        _ if key.starts_with("AMQP_") => Some("carbyne has no AMQP listener"),
        _ => return None,
    })
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
