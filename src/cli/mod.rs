//! The command line: `carbyne agent`, `config check`, `logster`, `server`,
//! `whisper`, and the generated `manpages` and `completions`.

use crate::config::{self, Config, ConfigError, Sources};
use crate::handlers::HandlerConfig;
use crate::scheduler::{self, Plan};
use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

mod logster;
mod server;
mod whisper;

pub(crate) use logster::{host_port, logster_parser};
pub use logster::{LogsterArgs, LogsterOutput};
pub use whisper::{WhisperArgs, WhisperCommand};

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
        once(&rt, &cfg, plan)
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

/// Runs every collector of `plan` once and waits for delivery; prints each
/// failure and returns the exit code.
fn once(rt: &tokio::runtime::Runtime, cfg: &Config, plan: Plan) -> i32 {
    let failures = rt.block_on(scheduler::run_once(cfg, plan));
    for f in &failures {
        eprintln!("{f}");
    }
    if failures.is_empty() {
        0
    } else {
        EXIT_FAILED
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

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    quiet_collector_panics();
    let cli = Cli::parse();
    match &cli.command {
        Command::Agent(a) => agent(a),
        Command::Config(ConfigCommand::Check(a)) => config_check(a),
        Command::Logster(a) => logster::run(a),
        Command::Migrate(a) => {
            init_logging("warn");
            crate::migrate::run(a)
        }
        Command::Whisper(w) => whisper::run(w),
        Command::Server(a) => server::run(a),
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
