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
            eprintln!("carbyne migrate: {e}");
            return crate::cli::EXIT_CONFIG;
        }
    };
    if let Err(e) = migration.check() {
        eprintln!("carbyne migrate: the result does not pass `carbyne config check`: {e}");
        return crate::cli::EXIT_CONFIG;
    }
    if let Err(e) = migration.write(args.output.as_deref(), args.force) {
        eprintln!("carbyne migrate: {e}");
        return crate::cli::EXIT_FAILED;
    }
    for l in &migration.left {
        eprintln!("not carried over: {}", l.replace('\n', " "));
    }
    0
}

/// What a migration produces.
#[derive(Debug, Default)]
pub struct Migration {
    /// Files, relative to the output folder (`conf.d/50-server-carbon.toml`).
    pub files: Vec<(PathBuf, String)>,
    /// The settings not carried over, each with why (`KEY = value: why`).
    pub left: Vec<String>,
}

/// A TOML file being written: each key with the old setting it comes from.
pub struct Toml {
    text: String,
    left: Vec<String>,
}

impl Toml {
    /// A file whose first lines say where it comes from.
    pub fn new(source: &Path, what: &str) -> Self {
        Toml {
            text: format!(
                "# Written by `carbyne migrate` from {}{what}.\n",
                source.display()
            ),
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
            let _ = write!(self.text, "  # {from}");
        }
        self.text.push('\n');
    }

    /// A comment line.
    pub fn comment(&mut self, line: &str) {
        let _ = writeln!(self.text, "# {line}");
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
                for (i, line) in l.lines().enumerate() {
                    let lead = if i == 0 { "# - " } else { "#   " };
                    let _ = writeln!(self.text, "{lead}{line}");
                }
            }
        }
        (self.text, self.left)
    }
}

impl Migration {
    /// Adds a finished file.
    pub fn add(&mut self, path: impl Into<PathBuf>, file: Toml) {
        let (text, left) = file.finish();
        self.files.push((path.into(), text));
        self.left.extend(left);
    }

    /// Checks the files together as `carbyne config check` does, from a
    /// scratch folder; an error names the file as it will be written.
    pub fn check(&self) -> Result<crate::config::Config, ConfigError> {
        let dir = tempfile::tempdir()
            .map_err(|e| ConfigError::general(None, format!("a scratch folder: {e}")))?;
        std::fs::create_dir_all(dir.path().join("conf.d"))
            .map_err(|e| ConfigError::general(None, format!("a scratch folder: {e}")))?;
        for (path, text) in &self.files {
            std::fs::write(dir.path().join(path), text)
                .map_err(|e| ConfigError::general(None, format!("a scratch file: {e}")))?;
        }
        let sources = Sources::find(Some(dir.path()))?;
        crate::config::load(&sources).map_err(|mut e| {
            if let Some(f) = &e.file {
                if let Ok(rel) = f.strip_prefix(dir.path()) {
                    e.file = Some(rel.to_path_buf());
                }
            }
            e
        })
    }

    /// Writes the files under `dir` (refusing to replace one that is there
    /// unless `force`), or prints them, each under a `# ==> path <==` line.
    pub fn write(&self, dir: Option<&Path>, force: bool) -> Result<(), String> {
        let Some(dir) = dir else {
            let mut out = String::new();
            for (i, (path, text)) in self.files.iter().enumerate() {
                if i > 0 {
                    out.push('\n');
                }
                let _ = writeln!(out, "# ==> {} <==", path.display());
                out.push_str(text);
            }
            crate::cli::print_quietly(&out);
            return Ok(());
        };
        if !force {
            for (path, _) in &self.files {
                let target = dir.join(path);
                if target.exists() {
                    return Err(format!(
                        "{} is there already (--force replaces it)",
                        target.display()
                    ));
                }
            }
        }
        for (path, text) in &self.files {
            let target = dir.join(path);
            if let Some(parent) = target.parent() {
                std::fs::create_dir_all(parent)
                    .map_err(|e| format!("{}: {e}", parent.display()))?;
            }
            std::fs::write(&target, text).map_err(|e| format!("{}: {e}", target.display()))?;
            eprintln!("wrote {}", target.display());
        }
        Ok(())
    }
}

/// A number as TOML writes it: whole numbers as integers.
pub fn number(v: f64) -> toml::Value {
    if v.fract() == 0.0 && v.abs() < 9e15 {
        toml::Value::Integer(v as i64)
    } else {
        toml::Value::Float(v)
    }
}
