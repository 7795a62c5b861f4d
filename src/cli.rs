//! The command line: `carbyne agent` and `carbyne config check`.

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
    about = "Host metrics agent, Diamond-compatible, shipping to Graphite",
    long_about = "carbyne collects a server's metrics (CPU, disk space, disk I/O, load, memory, NFS, sockets, vmstat) with Diamond's metric names and ships them to Graphite.\n\nLog verbosity follows RUST_LOG (error, warn, info, debug)."
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
}

#[derive(Debug, Args)]
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

fn runtime() -> std::io::Result<tokio::runtime::Runtime> {
    // One thread drives the handlers and timers; collectors run on their
    // own threads. Fewer threads mean fewer wake-ups per collection.
    tokio::runtime::Builder::new_current_thread()
        .max_blocking_threads(16)
        .enable_all()
        .build()
}

fn agent(args: &AgentArgs) -> i32 {
    init_logging(if args.once { "warn" } else { "info" });
    let cfg = match load(&args.config) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("carbyne: {e}");
            return EXIT_CONFIG;
        }
    };
    let plan = match Plan::new(&cfg, args.dry_run) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("carbyne: {e}");
            return EXIT_CONFIG;
        }
    };
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("carbyne: cannot start the runtime: {e}");
            return EXIT_FAILED;
        }
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
        let failures = rt.block_on(scheduler::run_daemon(&cfg, plan, shutdown_signal()));
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
            print!("{text}");
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

/// Runs the command line; returns the process exit code.
pub fn main() -> i32 {
    quiet_collector_panics();
    let cli = Cli::parse();
    match &cli.command {
        Command::Agent(a) => agent(a),
        Command::Config(ConfigCommand::Check(a)) => config_check(a),
    }
}
