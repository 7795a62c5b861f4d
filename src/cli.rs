//! The command line: `carbyne agent`, `config check`, `logster`, `server`,
//! `whisper`, and the generated `manpages` and `completions`.

use crate::config::{self, Config, ConfigError, Sources};
use crate::handlers::HandlerConfig;
use crate::scheduler::{self, Plan};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Exit code for a configuration that cannot be used.
pub const EXIT_CONFIG: i32 = 2;
/// Exit code for a run in which something failed.
pub const EXIT_FAILED: i32 = 1;

#[derive(Debug, Parser)]
#[command(
    name = "carbyne",
    version,
    about = "Host metrics agent, Diamond-compatible, for Graphite and Prometheus",
    long_about = "carbyne collects a server's metrics (CPU, disk space, disk I/O, load, memory, NFS, sockets, vmstat) with Diamond's metric names and ships them to Graphite, statsd, HTTP, syslog or ZeroMQ; Prometheus scrapes them with node_exporter's names, or they go by remote_write. `carbyne server` runs the receivers: a statsd server (which Prometheus may scrape as statsd_exporter) and a carbon receiver with graphite-web's API.\n\nLog verbosity follows RUST_LOG (error, warn, info, debug)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the collectors and send their samples to the handlers.
    Agent(AgentArgs),
    /// Inspect the configuration.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Logster's one-shot run: parse what LOGFILE gained since the last run
    /// and send the metrics (a crontab's `logster` line becomes `carbyne logster`).
    Logster(Box<LogsterArgs>),
    /// Turn an existing Diamond, Logster, statsd or carbon configuration into carbyne's.
    Migrate(crate::migrate::MigrateArgs),
    /// Run the receivers configured under [server.*] (statsd server, carbon receiver, web server).
    Server(ConfigArg),
    /// The handlers' disk buffers (buffer = "disk"): show what they hold,
    /// deliver it now, or delete it.
    Buffer {
        #[arg(value_enum)]
        action: crate::buffer::command::Action,
        /// Only this handler's buffer (a [handlers.NAME] section), or
        /// "relay" for the carbon relay's destinations.
        handler: Option<String>,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Graphite's whisper tools, with their arguments and output.
    Whisper(WhisperArgs),
    /// Write the man pages (carbyne.1, one per command, carbyne.toml.5) into DIR.
    Manpages {
        #[arg(value_name = "DIR")]
        dir: PathBuf,
    },
    /// Print the shell completion script for SHELL.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

#[derive(Debug, Args)]
pub struct WhisperArgs {
    /// Where a metric name given in place of a file is looked up (the
    /// carbon receiver's storage_dir).
    #[arg(
        long,
        global = true,
        value_name = "DIR",
        default_value = "/var/lib/carbyne/whisper"
    )]
    pub storage_dir: PathBuf,
    #[command(subcommand)]
    pub command: WhisperCommand,
}

/// A time as Graphite takes it: Unix seconds, `now`, or an offset such as `-1h`.
fn attime(s: &str) -> Result<i64, String> {
    crate::whisper::tools::attime(s, crate::whisper::unix_now())
}

/// `carbyne whisper TOOL`: Graphite's `whisper-TOOL.py` scripts. Where a
/// tool reads one file, a metric name (`servers.web1.loadavg.01`, tagged
/// names too) stands for its file under --storage-dir.
#[derive(Debug, Subcommand)]
pub enum WhisperCommand {
    /// Create a whisper file (whisper-create.py).
    Create {
        path: PathBuf,
        /// Retentions, e.g. 60:1440 or 10s:6h 1m:7d.
        #[arg(required = true)]
        retentions: Vec<String>,
        #[arg(long = "xFilesFactor", default_value_t = 0.5)]
        x_files_factor: f64,
        #[arg(long = "aggregationMethod", default_value = "average")]
        aggregation_method: String,
        #[arg(long)]
        overwrite: bool,
        /// Create the file sparse.
        #[arg(long)]
        sparse: bool,
        /// Reserve the file's space with fallocate.
        #[arg(long)]
        fallocate: bool,
    },
    /// Print a file's header (whisper-info.py).
    Info {
        #[arg(long)]
        json: bool,
        path: PathBuf,
        /// Print only this field.
        field: Option<String>,
    },
    /// Print a series (whisper-fetch.py).
    Fetch {
        /// The start: Unix seconds, `now` or an offset such as `-1h`,
        /// `-10min`, `-7d` (default: 24 hours ago).
        #[arg(long = "from", allow_hyphen_values = true, value_parser = attime)]
        from: Option<i64>,
        /// The end, as --from (default: now).
        #[arg(long, allow_hyphen_values = true, value_parser = attime)]
        until: Option<i64>,
        #[arg(long)]
        json: bool,
        /// Human-readable times (UTC).
        #[arg(long)]
        pretty: bool,
        #[arg(long, value_enum)]
        drop: Option<crate::whisper::tools::Drop>,
        path: PathBuf,
    },
    /// Write points, `timestamp:value` or `N:value` for now (whisper-update.py);
    /// with none, one per line from standard input.
    Update { path: PathBuf, points: Vec<String> },
    /// Print every stored point (whisper-dump.py).
    Dump {
        #[arg(long)]
        pretty: bool,
        /// Only `timestamp:value` lines, as whisper-update reads them.
        #[arg(long, short = 'r')]
        raw: bool,
        path: PathBuf,
    },
    /// Fill one file's gaps from another (whisper-fill.py).
    Fill {
        /// Lock the files while writing.
        #[arg(long)]
        lock: bool,
        src: PathBuf,
        dst: PathBuf,
    },
    /// Change a file's archives, keeping its data (whisper-resize.py).
    Resize {
        path: PathBuf,
        #[arg(required = true)]
        retentions: Vec<String>,
        #[arg(long = "xFilesFactor")]
        x_files_factor: Option<f64>,
        #[arg(long = "aggregationMethod")]
        aggregation_method: Option<String>,
        /// Accepted as whisper-resize.py accepts it.
        #[arg(long)]
        force: bool,
        /// Write the new file here and leave the old one alone.
        #[arg(long)]
        newfile: Option<PathBuf>,
        /// Delete the .bak file afterwards.
        #[arg(long)]
        nobackup: bool,
        /// Aggregate the old points to fit the new archives.
        #[arg(long)]
        aggregate: bool,
    },
    /// Copy one file's points into another with the same archives (whisper-merge.py).
    Merge {
        #[arg(long = "from", allow_hyphen_values = true, value_parser = attime)]
        from: Option<i64>,
        #[arg(long, allow_hyphen_values = true, value_parser = attime)]
        until: Option<i64>,
        from_path: PathBuf,
        to_path: PathBuf,
    },
    /// Compare two files with the same archives (whisper-diff.py).
    Diff {
        #[arg(long)]
        summary: bool,
        #[arg(long)]
        ignore_empty: bool,
        #[arg(long)]
        columns: bool,
        #[arg(long)]
        no_headers: bool,
        #[arg(long, allow_hyphen_values = true, value_parser = attime)]
        until: Option<i64>,
        #[arg(long)]
        json: bool,
        path_a: PathBuf,
        path_b: PathBuf,
    },
    /// Change the aggregation method (whisper-set-aggregation-method.py).
    SetAggregationMethod {
        path: PathBuf,
        method: String,
        #[arg(value_name = "xFilesFactor")]
        x_files_factor: Option<f64>,
    },
    /// Change the xFilesFactor (whisper-set-xfilesfactor.py).
    SetXfilesfactor {
        path: PathBuf,
        #[arg(value_name = "xFilesFactor")]
        x_files_factor: f64,
    },
}

/// The file `path` names: itself when it exists or looks like a path, else
/// the file of the metric it names under `storage_dir` (as the carbon
/// receiver places it, tagged names under `_tagged/`).
fn metric_file(path: &std::path::Path, storage_dir: &std::path::Path) -> PathBuf {
    let s = path.to_string_lossy();
    if path.exists() || s.contains('/') || s.ends_with(".wsp") {
        return path.to_path_buf();
    }
    match crate::server::carbon::names::normalize(&s) {
        Ok(name) => crate::server::carbon::names::path(storage_dir, &name),
        Err(_) => path.to_path_buf(),
    }
}

fn whisper(args: &WhisperArgs) -> i32 {
    use crate::whisper::{tools, Allocation};
    let file = |p: &PathBuf| metric_file(p, &args.storage_dir);
    let res = match &args.command {
        WhisperCommand::Create {
            path,
            retentions,
            x_files_factor,
            aggregation_method,
            overwrite,
            sparse,
            fallocate,
        } => {
            let alloc = if *fallocate {
                Allocation::Fallocate
            } else if *sparse {
                Allocation::Sparse
            } else {
                Allocation::Zeroed
            };
            tools::create(
                path,
                retentions,
                *x_files_factor,
                aggregation_method,
                *overwrite,
                alloc,
            )
        }
        WhisperCommand::Info { json, path, field } => {
            tools::info(&file(path), *json, field.as_deref())
        }
        WhisperCommand::Fetch {
            from,
            until,
            json,
            pretty,
            drop,
            path,
        } => {
            let now = crate::whisper::unix_now();
            tools::fetch(
                &file(path),
                from.unwrap_or(now - 86_400),
                until.unwrap_or(now),
                *json,
                *pretty,
                *drop,
            )
        }
        WhisperCommand::Update { path, points } => {
            let points = if points.is_empty() {
                use std::io::BufRead;
                std::io::stdin()
                    .lock()
                    .lines()
                    .map_while(Result::ok)
                    .filter(|l| !l.trim().is_empty())
                    .collect()
            } else {
                points.clone()
            };
            tools::update(path, &points)
        }
        WhisperCommand::Dump { pretty, raw, path } => tools::dump(&file(path), *pretty, *raw),
        WhisperCommand::Fill { lock, src, dst } => tools::fill(src, dst, *lock),
        WhisperCommand::Resize {
            path,
            retentions,
            x_files_factor,
            aggregation_method,
            force: _,
            newfile,
            nobackup,
            aggregate,
        } => {
            let o = tools::ResizeOptions {
                x_files_factor: *x_files_factor,
                aggregation_method: aggregation_method.clone(),
                newfile: newfile.clone(),
                nobackup: *nobackup,
                aggregate: *aggregate,
            };
            tools::resize(path, retentions, &o)
        }
        WhisperCommand::Merge {
            from,
            until,
            from_path,
            to_path,
        } => tools::merge(from_path, to_path, *from, *until),
        WhisperCommand::Diff {
            summary,
            ignore_empty,
            columns,
            no_headers,
            until,
            json,
            path_a,
            path_b,
        } => {
            let o = tools::DiffOptions {
                summary: *summary,
                ignore_empty: *ignore_empty,
                columns: *columns,
                no_headers: *no_headers,
                json: *json,
                until: *until,
            };
            tools::diff(path_a, path_b, o)
        }
        WhisperCommand::SetAggregationMethod {
            path,
            method,
            x_files_factor,
        } => tools::set_aggregation_method(path, method, *x_files_factor),
        WhisperCommand::SetXfilesfactor {
            path,
            x_files_factor,
        } => tools::set_xfilesfactor(path, *x_files_factor),
    };
    match res {
        Ok(out) => {
            print_quietly(&out);
            0
        }
        Err(crate::whisper::WhisperError::InvalidTimeInterval(m))
            if m == "No data in selected timerange" =>
        {
            eprintln!("{m}");
            1
        }
        Err(e) => {
            eprintln!("[ERROR] {e}");
            1
        }
    }
}

/// Prints `text` on stdout; a reader that went away (`| head`) ends the
/// output quietly, as the Python scripts do, instead of a panic.
pub(crate) fn print_quietly(text: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    if let Err(e) = out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            eprintln!("carbyne: stdout: {e}");
        }
    }
}

/// Where `carbyne logster` sends metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogsterOutput {
    Graphite,
    Statsd,
    Stdout,
}

#[derive(Debug, Args)]
pub struct LogsterArgs {
    /// A segment put before every metric name.
    #[arg(long, short = 'p', default_value = "")]
    pub metric_prefix: String,
    /// A segment put after every metric name.
    #[arg(long, short = 'x', default_value = "")]
    pub metric_suffix: String,
    /// Where the position in LOGFILE is kept between runs.
    #[arg(long, short = 's', default_value = "/var/lib/carbyne")]
    pub state_dir: PathBuf,
    /// Where to send metrics (repeatable).
    #[arg(long, short = 'o', value_enum)]
    pub output: Vec<LogsterOutput>,
    /// Graphite server as HOST:PORT (with --output graphite).
    #[arg(long, value_name = "HOST:PORT")]
    pub graphite_host: Option<String>,
    /// tcp or udp, for --output graphite.
    #[arg(long, default_value = "tcp", value_parser = ["tcp", "udp"])]
    pub graphite_protocol: String,
    /// statsd server as HOST:PORT (with --output statsd).
    #[arg(long, value_name = "HOST:PORT")]
    pub statsd_host: Option<String>,
    /// Print the metrics as Graphite plaintext; send nothing, keep the position.
    #[arg(long, short = 'd')]
    pub dry_run: bool,
    /// Where the first run on a file starts: "beginning" reads it whole, as
    /// Logster (logtail) does; "end" only records where it ends.
    #[arg(long, default_value = "beginning", value_parser = ["beginning", "end"])]
    pub start_at: String,
    /// The parser's options, as Logster takes them (log4j: "-l WARN,ERROR").
    #[arg(long, allow_hyphen_values = true)]
    pub parser_options: Option<String>,
    /// Accepted for crontab compatibility with Logster; not used.
    #[arg(long, short = 't', hide = true)]
    pub tailer: Option<String>,
    /// Accepted for crontab compatibility with Logster; carbyne logs to stderr.
    #[arg(long, short = 'l', hide = true)]
    pub log_dir: Option<String>,
    /// More logging (same as RUST_LOG=debug).
    #[arg(long, short = 'D')]
    pub debug: bool,
    /// postfix, squid or log4j (Logster's PostfixLogster, SquidLogster and
    /// Log4jLogster names work too).
    pub parser: String,
    /// The log file.
    pub logfile: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct ConfigArg {
    /// Main config file (its conf.d/ beside it is merged in), or a directory.
    /// Default: /etc/carbyne/carbyne.toml, or the built-in defaults when absent.
    #[arg(long, short = 'c', value_name = "PATH")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct AgentArgs {
    #[command(flatten)]
    pub config: ConfigArg,
    /// Run every enabled collector once, deliver, and exit (for cron).
    #[arg(long)]
    pub once: bool,
    /// Send nothing: print every sample to stdout as `name value timestamp`.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Check the configuration and print the merged effective config (TOML).
    Check(ConfigArg),
}

fn load(arg: &ConfigArg) -> Result<Config, ConfigError> {
    let sources = Sources::find(arg.config.as_deref())?;
    config::load(&sources)
}

/// The effective configuration: the merged files with every handler
/// section's defaults filled in.
pub fn effective_toml(cfg: &Config) -> Result<String, ConfigError> {
    let mut full = cfg.clone();
    full.handlers.clear();
    for spec in HandlerConfig::resolve_all(&cfg.handlers, false)? {
        full.handlers.insert(spec.name.clone(), spec.to_table()?);
    }
    full.to_toml()
}

fn init_logging(default: &str) {
    let env = env_logger::Env::default().default_filter_or(default);
    let _ = env_logger::Builder::from_env(env)
        .format_target(false)
        .try_init();
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    match (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) {
        (Ok(mut term), Ok(mut int)) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
            }
        }
        _ => {
            log::warn!("cannot install signal handlers; stop with SIGKILL");
            std::future::pending::<()>().await
        }
    }
}

/// On each SIGHUP, reads the configuration again and hands it to the
/// daemon; a configuration that does not load is logged and the running one
/// stays.
fn reload_on_sighup(arg: &ConfigArg, dry_run: bool) -> tokio::sync::mpsc::Receiver<(Config, Plan)> {
    use tokio::signal::unix::{signal, SignalKind};
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    // Installed now, before the daemon runs: SIGHUP's default would end it.
    let mut hup = match signal(SignalKind::hangup()) {
        Ok(h) => h,
        Err(e) => {
            log::warn!("cannot install the SIGHUP handler ({e}); reloading needs a restart");
            return rx;
        }
    };
    let arg = arg.clone();
    tokio::spawn(async move {
        while hup.recv().await.is_some() {
            log::info!("SIGHUP: reading the configuration again");
            let a = arg.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                let cfg = load(&a)?;
                let plan = Plan::new(&cfg, dry_run)?;
                Ok::<_, ConfigError>((cfg, plan))
            })
            .await;
            match loaded {
                Ok(Ok(next)) => {
                    if tx.send(next).await.is_err() {
                        return;
                    }
                }
                Ok(Err(e)) => {
                    log::error!("configuration not reloaded, the running one stays: {e}")
                }
                Err(e) => log::error!("configuration not reloaded: {e}"),
            }
        }
    });
    rx
}

/// The value, or `None` after printing the error as `<prefix>: <error>`.
fn reported<T, E: std::fmt::Display>(r: Result<T, E>, prefix: &str) -> Option<T> {
    r.map_err(|e| eprintln!("{prefix}: {e}")).ok()
}

fn runtime() -> Option<tokio::runtime::Runtime> {
    // One thread drives the handlers and timers; collectors run on their
    // own threads. Fewer threads mean fewer wake-ups per collection.
    let rt = tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(16)
        .enable_all()
        .build();
    reported(rt, "carbyne: cannot start the runtime")
}

fn agent(args: &AgentArgs) -> i32 {
    init_logging(if args.once { "warn" } else { "info" });
    let loaded = load(&args.config).and_then(|cfg| Ok((Plan::new(&cfg, args.dry_run)?, cfg)));
    let Some((plan, cfg)) = reported(loaded, "carbyne") else {
        return EXIT_CONFIG;
    };
    let Some(rt) = runtime() else {
        return EXIT_FAILED;
    };
    if args.once {
        let failures = rt.block_on(scheduler::run_once(&cfg, plan));
        for f in &failures {
            eprintln!("{f}");
        }
        if failures.is_empty() {
            0
        } else {
            EXIT_FAILED
        }
    } else {
        log::info!(
            "carbyne {} agent: {} collectors, {} handlers",
            env!("CARGO_PKG_VERSION"),
            plan.collectors.len(),
            plan.handlers.len()
        );
        let reloads = rt.block_on(async { reload_on_sighup(&args.config, args.dry_run) });
        let failures = rt.block_on(scheduler::run_daemon(
            &cfg,
            plan,
            shutdown_signal(),
            reloads,
        ));
        for f in &failures {
            log::error!("{f}");
        }
        0
    }
}

fn config_check(arg: &ConfigArg) -> i32 {
    init_logging("warn");
    match load(arg).and_then(|c| effective_toml(&c)) {
        Ok(text) => {
            print_quietly(&text);
            0
        }
        Err(e) => {
            eprintln!("carbyne: {e}");
            EXIT_CONFIG
        }
    }
}

/// Collector panics are caught, counted and logged by the scheduler; the
/// default hook would print each one again on stderr.
fn quiet_collector_panics() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let collector = std::thread::current()
            .name()
            .is_some_and(|n| n.starts_with("collect-"));
        if collector {
            log::debug!("{info}");
        } else {
            default(info)
        }
    }));
}

/// Logster's parser names (`PostfixLogster`, `logster.parsers.SquidLogster...`) to ours.
pub(crate) fn logster_parser(
    name: &str,
    options: Option<&str>,
) -> Result<crate::parsers::ParserConfig, String> {
    use crate::parsers::{log4j::Log4jConfig, ParserConfig};
    let last = name.rsplit('.').next().unwrap_or(name).to_ascii_lowercase();
    let base = last.strip_suffix("logster").unwrap_or(&last);
    let opts: Vec<&str> = options.unwrap_or("").split_whitespace().collect();
    let no_options = |p: ParserConfig| {
        if opts.is_empty() {
            Ok(p)
        } else {
            Err(format!("parser {base} takes no --parser-options"))
        }
    };
    match base {
        "postfix" => no_options(ParserConfig::Postfix(Default::default())),
        "squid" => no_options(ParserConfig::Squid(Default::default())),
        "log4j" => {
            let mut c = Log4jConfig::default();
            let mut it = opts.iter();
            while let Some(o) = it.next() {
                let levels = match *o {
                    "-l" | "--log-levels" => it.next().copied(),
                    o => o
                        .strip_prefix("--log-levels=")
                        .or_else(|| o.strip_prefix("-l")),
                }
                .ok_or_else(|| format!("log4j parser option {o:?}: expected -l LEVELS"))?;
                c.log_levels = levels.split(',').map(String::from).collect();
            }
            Ok(ParserConfig::Log4j(c))
        }
        _ => Err(format!("unknown parser {name:?} (postfix, squid, log4j)")),
    }
}

pub(crate) fn host_port(opt: &str, v: Option<&str>) -> Result<(String, u16), String> {
    let v = v.ok_or_else(|| format!("{opt} HOST:PORT is needed for this output"))?;
    let (h, p) = v
        .rsplit_once(':')
        .ok_or_else(|| format!("{opt} {v:?}: expected HOST:PORT"))?;
    let port = p
        .parse::<u16>()
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| format!("{opt} {v:?}: bad port"))?;
    if h.is_empty() {
        return Err(format!("{opt} {v:?}: no host"));
    }
    Ok((h.trim_matches(['[', ']']).to_string(), port))
}

/// Builds the one-shot plan of `carbyne logster`.
fn logster_plan(a: &LogsterArgs) -> Result<(Config, Plan), String> {
    use crate::handlers::{
        graphite::GraphiteConfig, statsd::StatsdConfig, transport::Proto, HandlerSpec,
    };
    let parser = logster_parser(&a.parser, a.parser_options.as_deref())?;
    let mut handlers = Vec::new();
    if a.output.is_empty() && !a.dry_run {
        return Err(
            "supply where the data should be sent with --output (graphite, statsd, stdout)".into(),
        );
    }
    for o in &a.output {
        let (name, config) = match o {
            LogsterOutput::Graphite => {
                let (host, port) = host_port("--graphite-host", a.graphite_host.as_deref())?;
                let proto = if a.graphite_protocol == "udp" {
                    Proto::Udp
                } else {
                    Proto::Tcp
                };
                let c = GraphiteConfig {
                    host,
                    port,
                    proto,
                    ..Default::default()
                };
                ("graphite", HandlerConfig::Graphite(c))
            }
            LogsterOutput::Statsd => {
                let (host, port) = host_port("--statsd-host", a.statsd_host.as_deref())?;
                (
                    "statsd",
                    HandlerConfig::Statsd(StatsdConfig {
                        host,
                        port,
                        ..Default::default()
                    }),
                )
            }
            LogsterOutput::Stdout => ("stdout", HandlerConfig::Stdout(Default::default())),
        };
        handlers.push(HandlerSpec {
            name: name.into(),
            enabled: true,
            config,
            buffer: Default::default(),
        });
    }
    if a.dry_run {
        handlers = vec![HandlerSpec {
            name: "dry-run".into(),
            enabled: true,
            config: HandlerConfig::Stdout(Default::default()),
            buffer: Default::default(),
        }];
    }
    let cfg = Config {
        state_dir: a.state_dir.clone(),
        ..Config::default()
    };
    // Logster's state is per parser and file.
    let name =
        format!("logster-{}{}", parser.name(), a.logfile.display()).replace(['/', '.', ' '], "-");
    let section = crate::logs::LogConfig {
        common: crate::logs::LogCommon {
            file: a.logfile.display().to_string(),
            metric_prefix: a.metric_prefix.clone(),
            metric_suffix: a.metric_suffix.clone(),
            start_at: if a.start_at == "end" {
                crate::tail::StartAt::End
            } else {
                crate::tail::StartAt::Beginning
            },
            ..Default::default()
        },
        options: parser,
    };
    // Logster's names are bare: [prefix.]metric[.suffix].
    let bare = crate::sample::MetricPath::new("", None, "", ".");
    let mut job =
        crate::logs::LogJob::new(&name, &section, bare, std::time::Duration::from_secs(60))
            .map_err(|e| e.to_string())?;
    job.missing_is_error = true;
    Ok((
        cfg,
        Plan {
            collectors: Vec::new(),
            logs: vec![job],
            dry_run: a.dry_run,
            handlers,
            self_path: None,
            host: crate::hostname::HostnameMethod::Smart
                .resolve(&crate::hostname::HostNames::from_system())
                .unwrap_or_default(),
            state_dir: a.state_dir.clone(),
        },
    ))
}

fn logster(a: &LogsterArgs) -> i32 {
    init_logging(if a.debug { "debug" } else { "warn" });
    let Some((cfg, plan)) = reported(logster_plan(a), "carbyne logster") else {
        return EXIT_CONFIG;
    };
    let Some(rt) = runtime() else {
        return EXIT_FAILED;
    };
    let failures = rt.block_on(scheduler::run_once(&cfg, plan));
    for f in &failures {
        eprintln!("{f}");
    }
    if failures.is_empty() {
        0
    } else {
        EXIT_FAILED
    }
}

fn server(arg: &ConfigArg) -> i32 {
    init_logging("info");
    let Some(cfg) = reported(load(arg), "carbyne") else {
        return EXIT_CONFIG;
    };
    let (statsd, carbon, web) = (
        cfg.server.statsd.clone(),
        cfg.server.carbon.clone(),
        cfg.server.web.clone(),
    );
    if statsd.is_none() && carbon.is_none() && web.is_none() {
        eprintln!(
            "carbyne: no receiver configured: add a [server.statsd], [server.carbon] or [server.web] section"
        );
        return EXIT_CONFIG;
    }
    let Some(rt) = runtime() else {
        return EXIT_FAILED;
    };
    let state_dir = cfg.state_dir.clone();
    let result = rt.block_on(run_server(arg.clone(), statsd, carbon, web, state_dir));
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("carbyne server: {e}");
            EXIT_FAILED
        }
    }
}

/// A receiver's task with its stop and reload channels.
struct Receiver<C> {
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    reload: tokio::sync::mpsc::Sender<C>,
}

impl<C> Receiver<C> {
    fn start<F, Fut>(run: F) -> Self
    where
        F: FnOnce(tokio::sync::oneshot::Receiver<()>, tokio::sync::mpsc::Receiver<C>) -> Fut,
        Fut: std::future::Future<Output = std::io::Result<()>> + Send + 'static,
    {
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let (reload, reloads) = tokio::sync::mpsc::channel(4);
        Receiver {
            task: tokio::spawn(run(stopped, reloads)),
            stop: Some(stop),
            reload,
        }
    }

    /// Asks it to stop and waits until it has.
    async fn finish(mut self) -> std::io::Result<()> {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        self.task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e.to_string())))
    }
}

/// Resolves when `stop` fires or its sender is gone.
async fn stopped(stop: tokio::sync::oneshot::Receiver<()>) {
    let _ = stop.await;
}

/// Resolves when the receiver's task ends (never without one).
async fn ended<C>(
    r: &mut Option<Receiver<C>>,
) -> Result<std::io::Result<()>, tokio::task::JoinError> {
    match r.as_mut() {
        Some(r) => (&mut r.task).await,
        None => std::future::pending().await,
    }
}

/// Runs the receivers until SIGTERM or SIGINT (or one fails), reading the
/// configuration again on SIGHUP. They stop in dependency order: statsd
/// first, its last flush going into a carbon receiver that still listens,
/// then carbon, which writes everything it holds.
/// A render allocates its series afresh (tens of MB for a thousand files)
/// and frees them at the end; glibc gives freed memory at the top of its
/// heaps back to the kernel past 128 KiB, so the next render faults and
/// zeroes every page again (a fifth of a render's time). Up to 64 MiB per
/// heap stays for reuse instead; what the limits let requests hold is
/// unchanged.
fn keep_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets a tunable of the allocator.
    unsafe {
        libc::mallopt(libc::M_TRIM_THRESHOLD, 64 << 20);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
    }
}

async fn run_server(
    arg: ConfigArg,
    statsd: Option<crate::server::statsd::StatsdServerConfig>,
    carbon: Option<crate::server::carbon::CarbonServerConfig>,
    web: Option<crate::server::web::WebServerConfig>,
    state_dir: std::path::PathBuf,
) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    if let Some(w) = &web {
        keep_freed_memory();
        // The files it keeps open, left out of the carbon receiver's budget.
        let kept = crate::server::web::open_files::capacity(w.keep_open_files);
        crate::server::reserve_open_files(kept as u64);
    }
    // Installed before the receivers start: SIGHUP's default would end the process.
    let mut hup = signal(SignalKind::hangup()).ok();
    if hup.is_none() {
        log::warn!("cannot install the SIGHUP handler; reloading needs a restart");
    }
    if let (Some(s), Some(c)) = (&statsd, &carbon) {
        if let Some(w) = crate::server::statsd_overwrites(s, c) {
            log::warn!("{w}");
        }
    }
    // The web server reads the whisper files the carbon receiver writes,
    // and the points its cache still holds.
    let storage_dir = carbon.as_ref().map_or_else(
        || crate::server::carbon::CarbonServerConfig::default().storage_dir,
        |c| c.storage_dir.clone(),
    );
    let (publish, published) = tokio::sync::oneshot::channel();
    let mut carbon = carbon.map(|c| {
        Receiver::start(move |stop, reloads| {
            crate::server::carbon::run(c, stopped(stop), reloads, Some(publish))
        })
    });
    let shared = match carbon {
        Some(_) => published.await.ok(),
        None => None,
    };
    let web_running = web.clone();
    let mut web = web.map(|c| {
        Receiver::start(move |stop, _reloads: tokio::sync::mpsc::Receiver<()>| {
            crate::server::web::run(c, storage_dir, state_dir, shared, stopped(stop))
        })
    });
    let mut statsd = statsd.map(|c| {
        Receiver::start(move |stop, reloads| crate::server::statsd::run(c, stopped(stop), reloads))
    });
    let stop = shutdown_signal();
    tokio::pin!(stop);
    let mut failed: Option<std::io::Error> = None;
    loop {
        let hup_next = async {
            match hup.as_mut() {
                Some(h) => h.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = &mut stop => break,
            Some(()) = hup_next => reload_server(&arg, statsd.as_ref(), carbon.as_ref(), web_running.as_ref()).await,
            r = ended(&mut statsd) => {
                statsd = None;
                failed = Some(ended_early("statsd", r));
                break;
            }
            r = ended(&mut carbon) => {
                carbon = None;
                failed = Some(ended_early("carbon", r));
                break;
            }
            r = ended(&mut web) => {
                web = None;
                failed = Some(ended_early("web", r));
                break;
            }
        }
    }
    let mut result = Ok(());
    if let Some(r) = web {
        result = r.finish().await;
    }
    if let Some(r) = statsd {
        result = result.and(r.finish().await);
    }
    if let Some(r) = carbon {
        result = result.and(r.finish().await);
    }
    match failed {
        Some(e) => Err(e),
        None => result,
    }
}

/// The error of a receiver that ended before it was asked to.
fn ended_early(
    what: &str,
    r: Result<std::io::Result<()>, tokio::task::JoinError>,
) -> std::io::Error {
    match r {
        Ok(Err(e)) => e,
        Ok(Ok(())) => std::io::Error::other(format!("the {what} receiver ended")),
        Err(e) => std::io::Error::other(format!("the {what} receiver failed: {e}")),
    }
}

/// SIGHUP: reads the configuration again and hands each running receiver
/// its new section; a configuration that does not load is logged (file,
/// line, key) and the running one stays.
async fn reload_server(
    arg: &ConfigArg,
    statsd: Option<&Receiver<crate::server::statsd::StatsdServerConfig>>,
    carbon: Option<&Receiver<crate::server::carbon::CarbonServerConfig>>,
    web: Option<&crate::server::web::WebServerConfig>,
) {
    log::info!("SIGHUP: reading the configuration again");
    let a = arg.clone();
    let loaded = tokio::task::spawn_blocking(move || load(&a)).await;
    let cfg = match loaded {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return log::error!("configuration not reloaded, the running one stays: {e}"),
        Err(e) => return log::error!("configuration not reloaded: {e}"),
    };
    match (statsd, cfg.server.statsd) {
        (Some(r), Some(c)) => {
            let _ = r.reload.send(c).await;
        }
        (None, None) => {}
        _ => log::warn!("a [server.statsd] added or removed takes effect on restart"),
    }
    match (carbon, cfg.server.carbon) {
        (Some(r), Some(c)) => {
            let _ = r.reload.send(c).await;
        }
        (None, None) => {}
        _ => log::warn!("a [server.carbon] added or removed takes effect on restart"),
    }
    match (web, cfg.server.web) {
        (Some(old), Some(new)) => {
            let changed = crate::server::changed_keys(old, &new);
            if !changed.is_empty() {
                log::warn!("web: {changed:?} changed; that takes effect on restart");
            }
        }
        (None, None) => {}
        _ => log::warn!("a [server.web] added or removed takes effect on restart"),
    }
}

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    quiet_collector_panics();
    let cli = Cli::parse();
    match &cli.command {
        Command::Agent(a) => agent(a),
        Command::Config(ConfigCommand::Check(a)) => config_check(a),
        Command::Logster(a) => logster(a),
        Command::Migrate(a) => {
            init_logging("warn");
            crate::migrate::run(a)
        }
        Command::Whisper(w) => whisper(w),
        Command::Server(a) => server(a),
        Command::Buffer {
            action,
            handler,
            config,
        } => {
            init_logging("warn");
            match load(config) {
                Ok(cfg) => crate::buffer::command::run(&cfg, *action, handler.as_deref()),
                Err(e) => {
                    eprintln!("carbyne: {e}");
                    EXIT_CONFIG
                }
            }
        }
        Command::Manpages { dir } => match manpages(dir) {
            Ok(()) => 0,
            Err(e) => {
                eprintln!("carbyne manpages: {}: {e}", dir.display());
                EXIT_FAILED
            }
        },
        Command::Completions { shell } => {
            let mut cmd = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(*shell, &mut cmd, "carbyne", &mut std::io::stdout());
            0
        }
    }
}

/// carbyne.1, carbyne-COMMAND.1 for each command, and carbyne.toml.5.
fn manpages(dir: &std::path::Path) -> std::io::Result<()> {
    crate::manpages::write_all(&<Cli as clap::CommandFactory>::command(), dir)
}
