//! `carbyne migrate TOOL FILE`: an existing setup's configuration, read in
//! its own format, written as carbyne configuration that gives the same
//! metric names. Each tool has its own reader (`carbon`, ...); they all
//! produce a [`Migration`]: the files to write, and the settings that have
//! no equivalent, which are listed in the files as comments and on stderr,
//! never dropped silently. The files are checked as `carbyne config check`
//! checks them before anything is written.

pub mod carbon;
pub mod configobj;
pub mod diamond;
pub mod js;
pub mod logster;
pub mod statsd;

use crate::config::{ConfigError, Sources};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// `carbyne migrate`.
#[derive(Debug, clap::Args)]
pub struct MigrateArgs {
    /// Write the files into DIR (`conf.d/50-*.toml` ...) instead of
    /// printing them; DIR can be /etc/carbyne.
    #[arg(long, short, global = true, value_name = "DIR")]
    pub output: Option<PathBuf>,
    /// Replace files that are already in DIR.
    #[arg(long, global = true)]
    pub force: bool,
    #[command(subcommand)]
    pub tool: Tool,
}

/// The setups `carbyne migrate` reads.
#[derive(Debug, clap::Subcommand)]
pub enum Tool {
    /// Diamond's diamond.conf (and the collector and handler files it
    /// merges) as carbyne.toml and conf.d drop-ins.
    Diamond {
        #[arg(default_value = "/etc/diamond/diamond.conf")]
        file: PathBuf,
    },
    /// One carbon daemon's section of carbon.conf as [server.carbon],
    /// pointing at its storage schemas, rule files and whisper tree.
    Carbon {
        #[arg(default_value = "/etc/carbon/carbon.conf")]
        file: PathBuf,
        /// Which daemon's section: cache ([cache]), relay, aggregator or
        /// aggregator-cache.
        #[arg(long, value_enum, default_value = "cache")]
        program: carbon::Program,
        /// The daemon's --instance: its [section:INSTANCE] applies on top.
        #[arg(long, default_value = "a")]
        instance: String,
    },
    /// The crontab lines that run etsy's logster, as [logs.NAME] drop-ins
    /// with Logster's names, and their outputs as handlers.
    Logster {
        /// A crontab (or any file of logster command lines).
        file: PathBuf,
    },
    /// etsy statsd's config.js (read, never run) as [server.statsd].
    Statsd {
        #[arg(default_value = "/etc/statsd/localConfig.js")]
        file: PathBuf,
    },
}

/// A line on stderr; a stderr that cannot be written (`2>/dev/full`) is
/// no reason to stop.
fn say(line: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Runs `carbyne migrate`: reads, checks, writes or prints; what is not
/// carried over goes to stderr too.
pub fn run(args: &MigrateArgs) -> i32 {
    let migration = match &args.tool {
        Tool::Carbon {
            file,
            program,
            instance,
        } => carbon::migrate(file, *program, instance),
        Tool::Statsd { file } => statsd::migrate(file),
        Tool::Diamond { file } => diamond::migrate(file),
        Tool::Logster { file } => logster::migrate(file),
    };
    let migration = match migration {
        Ok(m) => m,
        Err(e) => {
            say(&format!("carbyne migrate: {e}"));
            return crate::cli::EXIT_CONFIG;
        }
    };
    let target = args
        .output
        .as_deref()
        .map(|d| Target::new(d, &migration, args.force));
    let target = match target.transpose() {
        Ok(t) => t,
        Err(e) => {
            say(&format!("carbyne migrate: {e}"));
            return crate::cli::EXIT_FAILED;
        }
    };
    if let Err(e) = migration.check_with(target.as_ref()) {
        say(&format!(
            "carbyne migrate: the result does not pass `carbyne config check`: {e}"
        ));
        return crate::cli::EXIT_CONFIG;
    }
    let written = match &target {
        Some(t) => migration.write(t),
        None => migration.print(),
    };
    if let Err(e) = written {
        say(&format!("carbyne migrate: {e}"));
        return crate::cli::EXIT_FAILED;
    }
    for l in &migration.left {
        say(&format!("not carried over: {}", l.replace('\n', " ")));
    }
    0
}

/// Where `--output` writes: the folder, the files there that stay, and
/// those an earlier migration of the same file wrote that `--force` removes.
pub struct Target {
    dir: PathBuf,
    keep: Vec<PathBuf>,
    stale: Vec<PathBuf>,
}

impl Target {
    fn new(dir: &Path, m: &Migration, force: bool) -> Result<Target, String> {
        let ours = |rel: &Path| m.files.iter().any(|(p, _)| p == rel);
        let mut existing = Vec::new();
        if dir.join("carbyne.toml").is_file() {
            existing.push(PathBuf::from("carbyne.toml"));
        }
        if let Ok(entries) = std::fs::read_dir(dir.join("conf.d")) {
            for e in entries.flatten() {
                let name = e.file_name().to_string_lossy().into_owned();
                if name.ends_with(".toml") && e.path().is_file() {
                    existing.push(Path::new("conf.d").join(name));
                }
            }
        }
        existing.sort();
        let (mut keep, mut stale) = (Vec::new(), Vec::new());
        for rel in existing {
            if ours(&rel) {
                if !force {
                    return Err(format!(
                        "{} is there already (--force replaces it)",
                        dir.join(&rel).display()
                    ));
                }
                continue;
            }
            let head = std::fs::read_to_string(dir.join(&rel))
                .ok()
                .and_then(|t| t.lines().next().map(String::from))
                .unwrap_or_default();
            if force && !m.header.is_empty() && head.starts_with(&m.header) {
                stale.push(rel);
            } else {
                keep.push(rel);
            }
        }
        Ok(Target {
            dir: dir.to_path_buf(),
            keep,
            stale,
        })
    }
}

/// What a migration produces.
#[derive(Debug, Default)]
pub struct Migration {
    /// The first words of every file's first line (`# Written by ... from
    /// FILE`): how a later `--force` finds what this run wrote.
    pub header: String,
    /// Files, relative to the output folder (`conf.d/50-server-carbon.toml`).
    pub files: Vec<(PathBuf, String)>,
    /// The settings not carried over, each with why (`KEY = value: why`).
    pub left: Vec<String>,
}

/// A TOML file being written: each key with the old setting it comes from.
pub struct Toml {
    text: String,
    header: String,
    left: Vec<String>,
}

/// A text safe in a TOML comment: control characters shown escaped.
fn plain(s: &str) -> String {
    s.chars()
        .flat_map(|c| {
            if c.is_control() && c != '\n' {
                c.escape_default().collect::<Vec<_>>()
            } else {
                vec![c]
            }
        })
        .collect()
}

impl Toml {
    /// A file whose first lines say where it comes from.
    pub fn new(source: &Path, what: &str) -> Self {
        let source = std::path::absolute(source).unwrap_or_else(|_| source.to_path_buf());
        let header = plain(&format!(
            "# Written by `carbyne migrate` from {}",
            source.display()
        ));
        Toml {
            text: format!("{header}{}.\n", plain(what)),
            header,
            left: Vec::new(),
        }
    }

    pub fn table(&mut self, name: &str) {
        let _ = write!(self.text, "\n[{name}]\n");
    }

    /// `key = value`, with the setting it comes from as a comment.
    pub fn key(&mut self, key: &str, value: impl Into<toml::Value>, from: &str) {
        let value: toml::Value = value.into();
        let _ = write!(self.text, "{key} = {value}");
        if !from.is_empty() {
            let _ = write!(self.text, "  # {}", plain(from));
        }
        self.text.push('\n');
    }

    /// A comment line.
    pub fn comment(&mut self, line: &str) {
        let _ = writeln!(self.text, "# {}", plain(line));
    }

    /// A setting not carried over, and why: listed at the end of the file.
    pub fn left(&mut self, what: String) {
        self.left.push(what);
    }

    /// The text, ending with what was not carried over; and that list.
    pub fn finish(mut self) -> (String, Vec<String>) {
        if !self.left.is_empty() {
            self.text
                .push_str("\n# Not carried over (carbyne has no equivalent):\n");
            for l in &self.left {
                for (i, line) in plain(l).lines().enumerate() {
                    let lead = if i == 0 { "# - " } else { "#   " };
                    let _ = writeln!(self.text, "{lead}{line}");
                }
            }
        }
        (self.text, self.left)
    }

    /// The first words of the file's first line.
    pub fn header(&self) -> &str {
        &self.header
    }
}

impl Migration {
    /// Adds a finished file.
    pub fn add(&mut self, path: impl Into<PathBuf>, file: Toml) {
        if self.header.is_empty() {
            self.header = file.header().to_string();
        }
        let (text, left) = file.finish();
        self.files.push((path.into(), text));
        self.left.extend(left);
    }

    /// Checks the files alone as `carbyne config check` does.
    pub fn check(&self) -> Result<crate::config::Config, ConfigError> {
        self.check_with(None)
    }

    /// Checks the files as `carbyne config check` does, from a scratch
    /// folder, together with the files of `target` that stay; an error
    /// names the file as it will be written. Two drop-ins that would share
    /// a handler section are refused (one would quietly take the other's
    /// metrics).
    pub fn check_with(
        &self,
        target: Option<&Target>,
    ) -> Result<crate::config::Config, ConfigError> {
        let scratch_err =
            |e: std::io::Error| ConfigError::general(None, format!("a scratch folder: {e}"));
        let dir = tempfile::tempdir().map_err(scratch_err)?;
        std::fs::create_dir_all(dir.path().join("conf.d")).map_err(scratch_err)?;
        if let Some(t) = target {
            for rel in &t.keep {
                let text = crate::config::read_text(&t.dir.join(rel))?;
                // Only another migration's files: the shipped 00-*.toml
                // and an admin's own are there to be overridden.
                let migrated = text.starts_with("# Written by `carbyne migrate`");
                let theirs: toml::Table = if migrated {
                    text.parse().unwrap_or_default()
                } else {
                    toml::Table::new()
                };
                let their_handlers = theirs.get("handlers").and_then(toml::Value::as_table);
                for (path, ours) in &self.files {
                    let ours: toml::Table = ours.parse().unwrap_or_default();
                    let our_handlers = ours.get("handlers").and_then(toml::Value::as_table);
                    if let (Some(a), Some(b)) = (our_handlers, their_handlers) {
                        if let Some(name) = a.keys().find(|k| b.contains_key(*k)) {
                            return Err(ConfigError::general(
                                Some(&t.dir.join(rel)),
                                format!(
                                    "already has [handlers.{name}], which {} would change; rename one of them (a [handlers.NAME] with type = ...)",
                                    path.display()
                                ),
                            ));
                        }
                    }
                }
                std::fs::write(dir.path().join(rel), text).map_err(scratch_err)?;
            }
        }
        for (path, text) in &self.files {
            std::fs::write(dir.path().join(path), text).map_err(scratch_err)?;
        }
        let sources = Sources::find(Some(dir.path()))?;
        let base = target.map_or_else(PathBuf::new, |t| t.dir.clone());
        crate::config::load(&sources).map_err(|mut e| {
            if let Some(f) = &e.file {
                if let Ok(rel) = f.strip_prefix(dir.path()) {
                    e.file = Some(base.join(rel));
                }
            }
            e
        })
    }

    /// Prints the files, each under a `# ==> path <==` line; a reader that
    /// went away (`| head`) ends it quietly.
    pub fn print(&self) -> Result<(), String> {
        use std::io::Write as _;
        let mut out = String::new();
        for (i, (path, text)) in self.files.iter().enumerate() {
            if i > 0 {
                out.push('\n');
            }
            let _ = writeln!(out, "# ==> {} <==", path.display());
            out.push_str(text);
        }
        let mut stdout = std::io::stdout().lock();
        match stdout
            .write_all(out.as_bytes())
            .and_then(|()| stdout.flush())
        {
            Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(format!("stdout: {e}")),
            _ => Ok(()),
        }
    }

    /// Writes the files into the target folder, each whole or not at all
    /// (a temporary file renamed over the old one, or over a link to it),
    /// and removes what an earlier run on the same file wrote and this one
    /// does not.
    pub fn write(&self, t: &Target) -> Result<(), String> {
        for (path, text) in &self.files {
            let target = t.dir.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            let tmp = target.with_extension("toml.migrate-tmp");
            std::fs::write(&tmp, text)
                .and_then(|()| std::fs::File::open(&tmp).and_then(|f| f.sync_all()))
                .and_then(|()| std::fs::rename(&tmp, &target))
                .map_err(|e| {
                    let _ = std::fs::remove_file(&tmp);
                    format!("{}: {e}", target.display())
                })?;
            say(&format!("wrote {}", target.display()));
        }
        for rel in &t.stale {
            let p = t.dir.join(rel);
            std::fs::remove_file(&p).map_err(|e| format!("{}: {e}", p.display()))?;
            say(&format!(
                "removed {} (written by an earlier run on the same file)",
                p.display()
            ));
        }
        Ok(())
    }
}

/// `host:port` as carbyne's listen and handler keys take it: an IPv6
/// address in brackets, "" for every interface; a host that no resolver
/// would take (spaces, a comment carried in the value) is an error.
pub fn host_port(host: &str, port: u16, any: &str) -> Result<String, String> {
    let h = host.trim();
    let h = h
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(h);
    let h = if h.is_empty() { any } else { h };
    if h.contains(':') {
        return match h.parse::<std::net::Ipv6Addr>() {
            Ok(_) => Ok(format!("[{h}]:{port}")),
            Err(_) => Err(format!("{host:?} is not a host name or address")),
        };
    }
    let ok = h
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_' | '%'))
        || h.parse::<std::net::Ipv4Addr>().is_ok();
    if !ok {
        return Err(format!("{host:?} is not a host name or address"));
    }
    Ok(format!("{h}:{port}"))
}

/// A number as TOML writes it: whole numbers as integers.
pub fn number(v: f64) -> toml::Value {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        toml::Value::Integer(v as i64)
    } else {
        toml::Value::Float(v)
    }
}
