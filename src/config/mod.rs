//! Configuration: the main file plus `conf.d/*.toml` drop-ins, merged in
//! lexical order by the `config` crate, checked strictly before anything runs.
//!
//! Every file is first read on its own with a strict TOML deserializer, so an
//! unknown key, a wrong type or a bad regex is reported with the file, the
//! line and the key. Only then are the files merged.

pub mod duration;

use crate::hostname::HostnameMethod;
use serde::de::{DeserializeOwned, Error as _};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// Where the agent looks for its main file when `--config` is not given.
pub const DEFAULT_CONFIG: &str = "/etc/carbyne/carbyne.toml";

/// A configuration that cannot be used, with where it came from.
#[derive(Debug, thiserror::Error)]
pub struct ConfigError {
    /// The file at fault, or `None` when only the merged result is wrong.
    pub file: Option<PathBuf>,
    /// The line of the file at fault, where known (1-based).
    pub line: Option<usize>,
    /// The dotted key at fault, where known.
    pub key: Option<String>,
    pub message: String,
}

impl ConfigError {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            line: None,
            key: Some(key.into()),
            message: message.into(),
        }
    }

    /// An error about a whole file (or the merge), with no key.
    pub fn general(file: Option<&Path>, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.map(Path::to_path_buf),
            line: None,
            key: None,
            message: message.into(),
        }
    }

    /// Places a key error in `file`, finding the key's line in `text`.
    fn in_file(mut self, file: &Path, text: &str) -> Self {
        // An error already placed in another file (one the config names,
        // such as storage-schemas.conf) stays there.
        if self.file.is_none() {
            self.file = Some(file.to_path_buf());
            if self.line.is_none() {
                self.line = self.key.as_deref().and_then(|k| locate(text, k));
            }
        }
        self
    }

    /// Turns a TOML error into one line: file, line, key (when a plugin
    /// section named it) and message.
    fn from_toml(file: &Path, text: &str, e: &toml::de::Error) -> Self {
        let line = e.span().map(|s| line_of(text, s.start));
        let msg = e.message();
        if let Some((k, m)) = msg.strip_prefix("key `").and_then(|r| r.split_once("`: ")) {
            let key = match line.and_then(|l| header_before(text, l)) {
                Some(section) => format!("{section}.{k}"),
                None => k.to_string(),
            };
            return ConfigError {
                file: Some(file.to_path_buf()),
                line: locate(text, &key).or(line),
                key: Some(key),
                message: m.to_string(),
            };
        }
        // Otherwise name the key set on the line at fault, if one is.
        let key = line.and_then(|l| {
            let (name, _) = text.lines().nth(l - 1)?.split_once('=')?;
            let name = name.trim();
            let plain = !name.is_empty() && !name.starts_with(['[', '#']);
            plain.then(|| match header_before(text, l) {
                Some(section) => format!("{section}.{name}"),
                None => name.to_string(),
            })
        });
        ConfigError {
            file: Some(file.to_path_buf()),
            line,
            key,
            message: msg.to_string(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.file {
            Some(p) => write!(f, "{}: ", p.display())?,
            None => write!(f, "merged configuration: ")?,
        }
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        if let Some(k) = &self.key {
            write!(f, "key `{k}`: ")?;
        }
        write!(f, "{}", self.message)
    }
}

/// 1-based line number of byte offset `at`.
fn line_of(text: &str, at: usize) -> usize {
    text[..at.min(text.len())].matches('\n').count() + 1
}

/// The `[table]` header in force at `line` (1-based), without brackets.
fn header_before(text: &str, line: usize) -> Option<String> {
    text.lines()
        .take(line)
        .filter_map(|l| {
            let t = l.trim();
            t.strip_prefix('[')?
                .strip_suffix(']')
                .map(|h| h.trim().to_string())
        })
        .last()
}

/// The line (1-based) where the dotted `key` is set in `text`, if it is set
/// there in the plain `[section]` + `name = value` form.
pub fn locate(text: &str, key: &str) -> Option<usize> {
    let (section, name) = match key.rsplit_once('.') {
        Some((s, n)) => (Some(s), n),
        None => (None, key),
    };
    let mut current: Option<String> = None;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if let Some(h) = t.strip_prefix('[').and_then(|t| t.strip_suffix(']')) {
            current = Some(h.trim().to_string());
            continue;
        }
        if current.as_deref() == section {
            if let Some(rest) = t.strip_prefix(name) {
                if rest.trim_start().starts_with('=') {
                    return Some(i + 1);
                }
            }
        }
    }
    None
}

/// The keys every collector section has, beside its own options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Common {
    /// Run this collector; unset: the collector's default (on, but for
    /// the few that are off as in Diamond, `collectors::OFF_BY_DEFAULT`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// Seconds between runs; the global `interval` when absent.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(
        default,
        deserialize_with = "crate::config::duration::opt_whole_seconds"
    )]
    pub interval: Option<u64>,
    /// The metric path segment (Diamond's `path`); `.` for none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Only metrics whose name (after the path) matches this regex at its start are sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_whitelist: Option<String>,
    /// Metrics whose name matches this regex at its start are not sent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_blacklist: Option<String>,
}

/// The keys a kind of section shares, beside each plugin's own options.
pub trait CommonKeys {
    const KEYS: &'static [&'static str];
}

impl CommonKeys for Common {
    const KEYS: &'static [&'static str] = &[
        "enabled",
        "interval",
        "path",
        "metrics_whitelist",
        "metrics_blacklist",
    ];
}

/// A plugin section: the common keys `C` and the plugin's own options `T`,
/// side by side in one flat TOML table as Diamond users write them.
///
/// (Not `#[serde(flatten)]`: flatten would let unknown keys through.)
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Section<T, C = Common> {
    pub common: C,
    pub options: T,
}

impl<'de, T: DeserializeOwned, C: DeserializeOwned + CommonKeys> Deserialize<'de>
    for Section<T, C>
{
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut table = toml::Table::deserialize(d)?;
        let mut common = toml::Table::new();
        for k in C::KEYS {
            if let Some(v) = table.remove(*k) {
                common.insert((*k).to_string(), v);
            }
        }
        let common = strict::<C>(common).map_err(D::Error::custom)?;
        let options = strict::<T>(table).map_err(|m| {
            D::Error::custom(if m.contains("unknown field") {
                format!("{m} (or a common key: {})", C::KEYS.join(", "))
            } else {
                m
            })
        })?;
        Ok(Section { common, options })
    }
}

/// Deserializes a table into `T`, the message starting with ``key `K`: ``
/// (the key at fault) so the file's line can be found.
fn strict<T: DeserializeOwned>(table: toml::Table) -> Result<T, String> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let (key, msg) = key_and_message(&e);
        format!("key `{key}`: {msg}")
    })
}

/// The key at fault (relative to the table) and a one-line message that
/// says what was expected in words, not in Rust's type names.
fn key_and_message(e: &serde_path_to_error::Error<toml::de::Error>) -> (String, String) {
    let full = e.inner().to_string();
    // toml adds "\nin `key`" lines; the key is named in front instead.
    let msg = full.lines().next().unwrap_or_default().trim_end();
    let named = |marker: &str| {
        msg.split_once(marker)
            .map(|(_, rest)| rest.split('`').next().unwrap_or_default().to_string())
    };
    let path = e.path().to_string();
    let key = named("unknown field `")
        .or_else(|| named("missing field `"))
        .filter(|_| path == "." || path.is_empty() || msg.starts_with("unknown field"))
        .unwrap_or(path);
    (key, in_words(msg))
}

/// `expected u16` and the like, as a person would say them.
fn in_words(msg: &str) -> String {
    let mut out = String::with_capacity(msg.len());
    let mut rest = msg;
    while let Some(i) = rest.find("expected ") {
        out.push_str(&rest[..i + "expected ".len()]);
        rest = &rest[i + "expected ".len()..];
        let end = rest
            .find(|c: char| !c.is_ascii_alphanumeric())
            .unwrap_or(rest.len());
        let words = match &rest[..end] {
            "u8" => "a whole number from 0 to 255",
            "u16" => "a whole number from 0 to 65535",
            "u32" | "u64" | "usize" => "a whole number, 0 or more",
            "i32" | "i64" => "a whole number",
            "f32" | "f64" => "a number",
            _ => continue,
        };
        out.push_str(words);
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

impl<T: Serialize, C: Serialize> Serialize for Section<T, C> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::Error as _;
        let mut table = toml::Table::try_from(&self.common).map_err(S::Error::custom)?;
        let options = toml::Table::try_from(&self.options).map_err(S::Error::custom)?;
        table.extend(options);
        table.serialize(s)
    }
}

/// The whole agent configuration, as merged from every file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// A fixed hostname segment; overrides `hostname_method`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// How the hostname segment is derived (Diamond's methods).
    pub hostname_method: HostnameMethod,
    /// First segment of every metric name.
    pub path_prefix: String,
    /// Segment after the hostname, if not empty.
    pub path_suffix: String,
    /// Default seconds between collector runs.
    #[serde(deserialize_with = "crate::config::duration::whole_seconds")]
    pub interval: u64,
    /// Where `--once` keeps counters between runs.
    pub state_dir: PathBuf,
    /// Seconds each handler gets to deliver what it holds at the end of
    /// `--once` and on shutdown.
    #[serde(deserialize_with = "crate::config::duration::seconds")]
    pub flush_timeout: f64,
    /// Root of the proc filesystem the collectors read (tests point it at fixtures).
    pub proc_root: PathBuf,
    /// Root of `/dev` (for `/dev/disk/by-label`).
    pub dev_root: PathBuf,
    /// Root of the sys filesystem the collectors read (ksm, hwmon, cgroup).
    pub sys_root: PathBuf,
    /// Send the agent's own metrics (`<prefix>.<host>.carbyne.*`).
    pub self_metrics: bool,
    pub collectors: crate::collectors::CollectorsConfig,
    /// `[handlers.NAME]` sections, resolved by `crate::handlers::HandlerConfig`.
    pub handlers: BTreeMap<String, toml::Table>,
    /// `[logs.NAME]` sections: log files and the parser for each.
    pub logs: BTreeMap<String, crate::logs::LogConfig>,
    /// `[server.*]`: receivers for `carbyne server`.
    pub server: crate::server::ServerConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            hostname: None,
            hostname_method: HostnameMethod::Smart,
            path_prefix: "servers".into(),
            path_suffix: String::new(),
            interval: 10,
            state_dir: PathBuf::from("/var/lib/carbyne"),
            flush_timeout: 5.0,
            proc_root: PathBuf::from("/proc"),
            dev_root: PathBuf::from("/dev"),
            sys_root: PathBuf::from("/sys"),
            self_metrics: true,
            collectors: Default::default(),
            handlers: BTreeMap::new(),
            logs: BTreeMap::new(),
            server: Default::default(),
        }
    }
}

/// Which files make up a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sources {
    /// The main file, if there is one.
    pub main: Option<PathBuf>,
    /// Drop-ins in the order they are merged (lexical).
    pub dropins: Vec<PathBuf>,
}

impl Sources {
    /// Finds the files for `--config PATH`, or the default location.
    ///
    /// A file is the main file, with drop-ins from `conf.d/` beside it. A
    /// directory holds `carbyne.toml` (optional) and its drop-ins in
    /// `conf.d/`, or directly when it has no `conf.d/`. With no `--config` and
    /// no file at the default place, the built-in defaults are used.
    pub fn find(arg: Option<&Path>) -> Result<Sources, ConfigError> {
        let path = match arg {
            Some(p) => p.to_path_buf(),
            None => {
                let p = PathBuf::from(DEFAULT_CONFIG);
                if !p.exists() {
                    return Ok(Sources {
                        main: None,
                        dropins: Vec::new(),
                    });
                }
                p
            }
        };
        let meta = std::fs::metadata(&path)
            .map_err(|e| ConfigError::general(Some(&path), format!("cannot read: {e}")))?;
        if meta.is_dir() {
            let main = path.join("carbyne.toml");
            let main = main.is_file().then_some(main);
            let confd = path.join("conf.d");
            let dropins = if confd.is_dir() {
                list_toml(&confd, None)?
            } else {
                list_toml(&path, main.as_deref())?
            };
            Ok(Sources { main, dropins })
        } else {
            let dir = path.parent().unwrap_or(Path::new("."));
            let confd = dir.join("conf.d");
            let dropins = if confd.is_dir() {
                list_toml(&confd, None)?
            } else {
                Vec::new()
            };
            Ok(Sources {
                main: Some(path),
                dropins,
            })
        }
    }

    pub fn files(&self) -> impl Iterator<Item = &PathBuf> {
        self.main.iter().chain(self.dropins.iter())
    }
}

fn list_toml(dir: &Path, except: Option<&Path>) -> Result<Vec<PathBuf>, ConfigError> {
    let rd = std::fs::read_dir(dir)
        .map_err(|e| ConfigError::general(Some(dir), format!("cannot list: {e}")))?;
    let mut out: Vec<PathBuf> = rd
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .filter(|p| {
            let dangling = !p.exists() && p.symlink_metadata().is_ok();
            if dangling {
                log::warn!("{}: a symbolic link to nothing; skipped", p.display());
            }
            p.is_file()
        })
        .filter(|p| Some(p.as_path()) != except)
        .collect();
    out.sort();
    Ok(out)
}

/// Reads one file strictly: TOML syntax, known keys, right types, and the
/// checks of [`Config::validate`]. Errors name the file (and line, for TOML).
pub fn check_file(path: &Path) -> Result<Config, ConfigError> {
    let text = read_text(path)?;
    let cfg: Config = toml::from_str(&text).map_err(|e| ConfigError::from_toml(path, &text, &e))?;
    cfg.validate(true).map_err(|e| e.in_file(path, &text))?;
    Ok(cfg)
}

/// The largest configuration file read: far past any real one, and a
/// bound for `--config /dev/zero`.
pub const MAX_FILE_BYTES: u64 = 4 << 20;

/// Reads a configuration file (or a file it names, such as carbon's
/// storage-schemas.conf) as text: only a regular file of at most
/// [`MAX_FILE_BYTES`], in UTF-8; errors name the file, and the line of a
/// byte that is not UTF-8.
pub fn read_text(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let fail = |m: String| ConfigError::general(Some(path), m);
    // Non-blocking: a FIFO opens at once and is then refused.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if !meta.is_file() {
        return Err(fail("cannot read: not a regular file".into()));
    }
    let mut bytes = Vec::new();
    file.take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(format!("cannot read: {e}")))?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(fail(format!(
            "larger than {} MiB: not a configuration file",
            MAX_FILE_BYTES >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|e| {
        let at = e.utf8_error().valid_up_to();
        let line = 1 + e.as_bytes()[..at].iter().filter(|b| **b == b'\n').count();
        ConfigError {
            file: Some(path.to_path_buf()),
            line: Some(line),
            key: None,
            message: "not UTF-8 text".into(),
        }
    })
}

/// Loads and merges every file of `sources`, later files overriding earlier ones.
pub fn load(sources: &Sources) -> Result<Config, ConfigError> {
    let mut builder = config::Config::builder();
    for f in sources.files() {
        check_file(f)?;
        builder = builder.add_source(
            config::File::from(f.as_path())
                .format(config::FileFormat::Toml)
                .required(true),
        );
    }
    let merged = builder
        .build()
        .map_err(|e| ConfigError::general(None, e.to_string()))?;
    let mut cfg: Config = merged
        .try_deserialize()
        .map_err(|e| ConfigError::general(None, e.to_string()))?;
    cfg.validate(false)?;
    // The relay's disk buffers default to a folder of state_dir.
    if let Some(relay) = cfg.server.carbon.as_mut().and_then(|c| c.relay.as_mut()) {
        relay.state_dir = cfg.state_dir.clone();
    }
    Ok(cfg)
}

impl Config {
    /// Checks what serde cannot: ranges, regexes, handler sections. With
    /// `partial`, a handler section whose type another file may give is let through.
    pub fn validate(&self, partial: bool) -> Result<(), ConfigError> {
        if self.interval == 0 {
            return Err(ConfigError::new("interval", "must be at least 1 second"));
        }
        if !self.state_dir.is_absolute() {
            return Err(ConfigError::new(
                "state_dir",
                "must be an absolute path (cron, the service and `carbyne buffer` start in different folders)",
            ));
        }
        if !(self.flush_timeout.is_finite() && self.flush_timeout >= 0.0) {
            return Err(ConfigError::new(
                "flush_timeout",
                "must be a number of seconds, 0 or more",
            ));
        }
        for (key, value) in [
            ("path_prefix", &self.path_prefix),
            ("path_suffix", &self.path_suffix),
        ] {
            check_segment(key, value)?;
        }
        if let Some(h) = &self.hostname {
            check_segment("hostname", h)?;
        }
        crate::collectors::build(self)?;
        crate::logs::build(self, Some("host"))?;
        if let Some(s) = &self.server.statsd {
            s.validate("server.statsd")?;
        }
        if let Some(c) = &self.server.carbon {
            c.validate("server.carbon")?;
        }
        if let Some(w) = &self.server.web {
            w.validate("server.web")?;
        }
        let specs = crate::handlers::HandlerConfig::resolve_all(&self.handlers, partial)?;
        // Two disk buffers in one folder, defaults included, would mix
        // their samples.
        let mut seen: Vec<(PathBuf, &str)> = Vec::new();
        for h in &specs {
            if let Some(b) = h.buffer_spec(&self.state_dir) {
                let dir = PathBuf::from(b.dir.to_string_lossy().trim_end_matches('/'));
                if let Some((_, other)) = seen.iter().find(|(d, _)| *d == dir) {
                    return Err(ConfigError::new(
                        format!("handlers.{}.buffer_dir", h.name),
                        format!(
                            "{}: handlers.{other} keeps its buffer there too: each handler needs its own",
                            dir.display()
                        ),
                    ));
                }
                seen.push((dir, &h.name));
            }
        }
        Ok(())
    }

    /// The merged configuration as TOML, for `config check`.
    pub fn to_toml(&self) -> Result<String, ConfigError> {
        toml::to_string_pretty(self).map_err(|e| ConfigError::general(None, e.to_string()))
    }
}

/// A name segment must not break the dotted Graphite path.
fn check_segment(key: &str, value: &str) -> Result<(), ConfigError> {
    if value.chars().any(|c| c.is_whitespace() || c == '/') {
        return Err(ConfigError::new(
            key,
            format!("{value:?} must not contain whitespace or '/'"),
        ));
    }
    if value.starts_with('.') || value.ends_with('.') || value.contains("..") {
        return Err(ConfigError::new(
            key,
            format!("{value:?} must not start or end with '.' or contain an empty segment"),
        ));
    }
    Ok(())
}

/// Compiles an optional regex option, naming the key when it is bad.
/// `anchored` makes it match at the start only, like Python's `re.match`.
pub fn compile_regex(
    key: &str,
    pattern: Option<&str>,
    anchored: bool,
) -> Result<Option<regex::Regex>, ConfigError> {
    let Some(p) = pattern else { return Ok(None) };
    // Errors quote what the user wrote (not the anchored wrapper), cut short.
    let bad = |e: regex::Error| {
        let mut m = format!("invalid regex {:?}: {e}", shorten(p));
        if m.len() > 600 {
            m = format!("{}...", shorten(&m));
        }
        ConfigError::new(key, m)
    };
    let plain = regex::Regex::new(p).map_err(bad)?;
    if !anchored {
        return Ok(Some(plain));
    }
    regex::Regex::new(&format!("^(?:{p})"))
        .map(Some)
        .map_err(bad)
}

/// The first 500 bytes of `s` (at a character boundary), and how many more.
fn shorten(s: &str) -> String {
    if s.len() <= 500 {
        return s.to_string();
    }
    let mut end = 500;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}... ({} bytes more)", &s[..end], s.len() - end)
}

/// Deserializes a plugin's options table strictly, naming `key` on error.
pub fn options_from_table<T: DeserializeOwned>(
    key: &str,
    table: toml::Table,
) -> Result<T, ConfigError> {
    serde_path_to_error::deserialize(toml::Value::Table(table)).map_err(|e| {
        let (k, msg) = key_and_message(&e);
        match k.as_str() {
            "" | "." => ConfigError::new(key, msg),
            k => ConfigError::new(format!("{key}.{k}"), msg),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&p, text).expect("write");
        p
    }

    #[test]
    fn dropins_merge_in_lexical_order_over_the_main_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let main = write(
            d.path(),
            "carbyne.toml",
            "interval = 30\npath_prefix = \"hosts\"\n",
        );
        write(
            d.path(),
            "conf.d/20-b.toml",
            "[collectors.cpu]\npercore = true\n",
        );
        write(
            d.path(),
            "conf.d/10-a.toml",
            "interval = 20\n[collectors.cpu]\npercore = false\nnormalize = true\n",
        );
        let src = Sources::find(Some(&main)).expect("sources");
        assert_eq!(src.dropins.len(), 2);
        assert!(src.dropins[0].ends_with("10-a.toml"));
        let cfg = load(&src).expect("load");
        assert_eq!(cfg.interval, 20);
        assert_eq!(cfg.path_prefix, "hosts");
        assert!(cfg.collectors.cpu.options.percore);
        assert!(cfg.collectors.cpu.options.normalize);
        // A directory works the same.
        let cfg2 = load(&Sources::find(Some(d.path())).expect("sources")).expect("load");
        assert_eq!(cfg, cfg2);
    }

    #[test]
    fn unknown_key_names_file_line_and_key() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = write(d.path(), "a.toml", "[collectors.cpu]\npercor = true\n");
        let e = check_file(&f).expect_err("must fail").to_string();
        assert!(
            e.contains("a.toml: line 2: key `collectors.cpu.percor`"),
            "{e}"
        );
        assert!(e.contains("unknown field `percor`"), "{e}");
    }

    #[test]
    fn a_typo_in_every_section_is_rejected() {
        let sections = [
            "",
            "[collectors.cpu]\n",
            "[collectors.diskspace]\n",
            "[collectors.diskusage]\n",
            "[collectors.loadavg]\n",
            "[collectors.memory]\n",
            "[collectors.mountstats]\n",
            "[collectors.sockstat]\n",
            "[collectors.vmstat]\n",
            "[handlers.graphite]\n",
            "[handlers.statsd]\n",
            "[logs.mail]\nfile = \"/var/log/mail.log\"\nparser = \"postfix\"\n",
            "[logs.app]\nfile = \"/var/log/app.log\"\nparser = \"log4j\"\n",
        ];
        let d = tempfile::tempdir().expect("tempdir");
        for s in sections {
            let f = write(d.path(), "t.toml", &format!("{s}no_such_key = 1\n"));
            let e = check_file(&f).expect_err(s).to_string();
            assert!(e.contains("no_such_key"), "{s}: {e}");
        }
    }

    #[test]
    fn wrong_type_and_bad_regex() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = write(
            d.path(),
            "t.toml",
            "[collectors.memory]\ndetailed = \"yes\"\n",
        );
        let e = check_file(&f).expect_err("type").to_string();
        assert!(
            e.contains("line 2: key `collectors.memory.detailed`"),
            "{e}"
        );
        let f = write(
            d.path(),
            "t.toml",
            "[collectors.cpu]\nmetrics_whitelist = \"total.(user\"\n",
        );
        let e = check_file(&f).expect_err("regex").to_string();
        assert!(
            e.contains("line 2: key `collectors.cpu.metrics_whitelist`"),
            "{e}"
        );
        assert!(e.contains("t.toml"), "{e}");
    }

    #[test]
    fn defaults_round_trip_through_toml() {
        let cfg = Config::default();
        let text = cfg.to_toml().expect("toml");
        let back: Config = toml::from_str(&text).expect("parse");
        assert_eq!(cfg, back);
    }

    #[test]
    fn type_errors_read_as_words_with_the_full_key() {
        assert_eq!(
            in_words("invalid type: string \"2003\", expected u16"),
            "invalid type: string \"2003\", expected a whole number from 0 to 65535"
        );
        assert_eq!(
            in_words("expected f64 or usize"),
            "expected a number or usize"
        );
        assert_eq!(in_words("expected a boolean"), "expected a boolean");
        let d = tempfile::tempdir().expect("tempdir");
        let f = write(
            d.path(),
            "h.toml",
            "[handlers.graphite]\nhost = \"x\"\nport = \"2003\"\n",
        );
        let e = load(&Sources::find(Some(&f)).expect("sources")).expect_err("bad port");
        let text = e.to_string();
        assert!(
            text.contains("line 3: key `handlers.graphite.port`: invalid type"),
            "{text}"
        );
        assert!(!text.contains('\n') && !text.contains("u16"), "{text}");
        let f = write(
            d.path(),
            "l.toml",
            "[logs.mail]\nfile = \"/var/log/mail.log\"\n",
        );
        let text = load(&Sources::find(Some(&f)).expect("sources"))
            .expect_err("no parser")
            .to_string();
        assert!(
            text.contains("key `logs.mail.parser`: missing field `parser`"),
            "{text}"
        );
        let f = write(
            d.path(),
            "p.toml",
            "[logs.mail]\nfile = \"/x\"\nparser = \"PostfixLogster\"\n",
        );
        assert!(load(&Sources::find(Some(&f)).expect("sources")).is_ok());
    }

    #[test]
    fn two_disk_buffers_in_one_folder_are_refused_defaults_included() {
        let d = tempfile::tempdir().expect("tempdir");
        let f = write(
            d.path(),
            "carbyne.toml",
            "state_dir = \"/var/lib/carbyne\"\n[handlers.graphite]\nbuffer = \"disk\"\n\
             [handlers.backup]\ntype = \"graphite\"\nbuffer = \"disk\"\nbuffer_dir = \"/var/lib/carbyne/buffers/graphite/\"\n",
        );
        let e = load(&Sources::find(Some(&f)).expect("sources")).expect_err("one folder");
        assert!(e.to_string().contains("keeps its buffer there too"), "{e}");
        let f = write(d.path(), "carbyne.toml", "state_dir = \"relstate\"\n");
        let e = load(&Sources::find(Some(&f)).expect("sources")).expect_err("relative");
        assert_eq!(e.key.as_deref(), Some("state_dir"), "{e}");
    }
}
