//! `carbyne logster`: Logster's one-shot run from a crontab line, its
//! options and parser names.

use super::*;

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

pub(super) fn run(a: &LogsterArgs) -> i32 {
    init_logging(if a.debug { "debug" } else { "warn" });
    let Some((cfg, plan)) = reported(logster_plan(a), "carbyne logster") else {
        return EXIT_CONFIG;
    };
    let Some(rt) = runtime() else {
        return EXIT_FAILED;
    };
    once(&rt, &cfg, plan)
}
