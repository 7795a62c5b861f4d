//! `carbyne migrate logster CRONTAB`: each crontab line that runs etsy's
//! logster (`logster [options] PARSER LOGFILE`) as a `[logs.NAME]` drop-in
//! with Logster's names (`logster_names`), its prefix, suffix and parser
//! options, reporting as often as cron ran it; its outputs (`--output
//! graphite --graphite-host H:P`, `statsd`) as handlers.

use super::{Migration, Toml};
use crate::config::ConfigError;
use std::collections::BTreeMap;
use std::path::Path;

/// One logster command line, as its option parser (optparse) reads it.
#[derive(Debug, Default)]
struct Run {
    prefix: String,
    suffix: String,
    outputs: Vec<String>,
    graphite_host: Option<String>,
    graphite_protocol: Option<String>,
    statsd_host: Option<String>,
    parser_options: Option<String>,
    dry_run: bool,
    /// Options with no equivalent, as given.
    ignored: Vec<String>,
    positional: Vec<String>,
}

/// Options that take a value (long and short forms).
const VALUED: &[(&str, Option<char>)] = &[
    ("tailer", Some('t')),
    ("locker", None),
    ("logtail", None),
    ("metric-prefix", Some('p')),
    ("metric-suffix", Some('x')),
    ("parser-options", None),
    ("state-dir", Some('s')),
    ("log-dir", Some('l')),
    ("log-conf", None),
    ("output", Some('o')),
    ("graphite-host", None),
    ("graphite-protocol", None),
    ("statsd-host", None),
    ("gmetric-options", None),
    ("stdout-separator", None),
    ("aws-key", None),
    ("aws-secret-key", None),
    ("nsca-host", None),
    ("nsca-service-hostname", None),
];

fn parse_run(args: &[String]) -> Result<Run, String> {
    let mut r = Run::default();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let (name, inline): (String, Option<String>) = if let Some(long) = a.strip_prefix("--") {
            match long.split_once('=') {
                Some((n, v)) => (n.to_string(), Some(v.to_string())),
                None => (long.to_string(), None),
            }
        } else if a.len() > 1 && a.starts_with('-') {
            let c = a[1..].chars().next().unwrap_or('-');
            let long = VALUED
                .iter()
                .find(|(_, s)| *s == Some(c))
                .map(|(l, _)| l.to_string())
                .or(match c {
                    'd' => Some("dry-run".into()),
                    'D' => Some("debug".into()),
                    'h' => Some("help".into()),
                    _ => None,
                })
                .ok_or_else(|| format!("unknown option {a}"))?;
            let rest = &a[1 + c.len_utf8()..];
            (long, (!rest.is_empty()).then(|| rest.to_string()))
        } else {
            r.positional.push(a.clone());
            continue;
        };
        if !VALUED.iter().any(|(l, _)| *l == name) {
            match name.as_str() {
                "dry-run" => r.dry_run = true,
                "debug" | "parser-help" => r.ignored.push(format!("--{name}")),
                _ => return Err(format!("unknown option --{name}")),
            }
            continue;
        }
        let value = match inline {
            Some(v) => v,
            None => it
                .next()
                .cloned()
                .ok_or_else(|| format!("--{name} needs a value"))?,
        };
        match name.as_str() {
            "metric-prefix" => r.prefix = value,
            "metric-suffix" => r.suffix = value,
            "output" => r.outputs.push(value),
            "graphite-host" => r.graphite_host = Some(value),
            "graphite-protocol" => r.graphite_protocol = Some(value),
            "statsd-host" => r.statsd_host = Some(value),
            "parser-options" => r.parser_options = Some(value),
            _ => r.ignored.push(format!("--{name} {value}")),
        }
    }
    Ok(r)
}

/// The crontab line's command after its schedule (and user, in
/// /etc/crontab and cron.d), and the seconds between runs when the
/// schedule is every N minutes or hours.
fn schedule(line: &str) -> Option<(Option<u64>, &str)> {
    let line = line.trim_start();
    if let Some(rest) = line.strip_prefix('@') {
        let (word, cmd) = rest.split_once(char::is_whitespace)?;
        let every = match word {
            "hourly" => Some(3600),
            "daily" | "midnight" => Some(86_400),
            _ => None,
        };
        return Some((every, cmd));
    }
    let mut rest = line;
    let mut fields = Vec::new();
    for _ in 0..5 {
        let (f, r) = rest.trim_start().split_once(char::is_whitespace)?;
        fields.push(f);
        rest = r;
    }
    let stars = |fs: &[&str]| fs.iter().all(|f| *f == "*");
    let every_n = |f: &str, unit: u64| {
        f.strip_prefix("*/")
            .and_then(|n| n.parse::<u64>().ok())
            .filter(|n| *n > 0)
            .map(|n| n * unit)
    };
    let at_minute = fields[0].parse::<u8>().is_ok();
    let every = if stars(&fields[1..]) {
        match fields[0] {
            "*" => Some(60),
            m if at_minute => Some(3600).filter(|_| !m.is_empty()),
            m => every_n(m, 60),
        }
    } else if at_minute && stars(&fields[2..]) {
        match fields[1] {
            h if h.parse::<u8>().is_ok() => Some(86_400),
            h => every_n(h, 3600),
        }
    } else {
        None
    };
    Some((every, rest))
}

/// A log name from the parser and file: `postfix-mail`.
fn log_name(parser: &str, file: &str, taken: &BTreeMap<String, ()>) -> String {
    let stem = Path::new(file)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let clean: String = format!("{parser}-{stem}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut name = clean.clone();
    let mut n = 2;
    while taken.contains_key(&name) {
        name = format!("{clean}-{n}");
        n += 1;
    }
    name
}

/// `HOST:PORT` as `carbyne logster` reads it.
fn host_port(v: &str) -> Option<(String, u16)> {
    crate::cli::host_port("", Some(v)).ok()
}

/// Every logster line of `path` (a crontab, or a file of command lines).
pub fn migrate(path: &Path) -> Result<Migration, ConfigError> {
    let text = crate::config::read_text(path)?;
    let at = |line: usize, msg: String| ConfigError {
        file: Some(path.to_path_buf()),
        line: Some(line),
        key: None,
        message: msg,
    };
    let mut m = Migration::default();
    let mut names = BTreeMap::new();
    // Handler sections by (kind, host, port, proto): name.
    let mut handlers: BTreeMap<(String, String, u16, String), String> = BTreeMap::new();
    let mut skipped = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') || !line.contains("logster") {
            continue;
        }
        // A crontab line, or a bare command line.
        let (every, command) = match schedule(line) {
            Some((every, cmd)) if cmd.contains("logster") => (every, cmd),
            _ => (None, line),
        };
        let Some(words) = shlex::split(command) else {
            return Err(at(n, "unbalanced quotes".into()));
        };
        // From the logster program to the first shell operator.
        let Some(start) = words.iter().position(|w| {
            let base = w.rsplit('/').next().unwrap_or(w);
            !w.contains('=') && (base == "logster" || base == "logster.py")
        }) else {
            if line.contains('$') {
                skipped.push(format!(
                    "line {n}: runs logster through a shell variable; write the command out"
                ));
            }
            continue;
        };
        let mut args: Vec<String> = Vec::new();
        for w in &words[start + 1..] {
            if matches!(w.as_str(), "|" | "||" | "&&" | ";" | "&")
                || w.starts_with('>')
                || w.starts_with("2>")
                || w.starts_with("1>")
                || w.starts_with('<')
            {
                break;
            }
            // `file.log;` ends the command too.
            if let Some(last) = w.strip_suffix(';') {
                args.push(last.to_string());
                break;
            }
            args.push(w.clone());
        }
        let run = parse_run(&args).map_err(|e| at(n, format!("logster: {e}")))?;
        let [parser_name, file] = run.positional.as_slice() else {
            return Err(at(
                n,
                format!("logster takes PARSER LOGFILE, found {:?}", run.positional),
            ));
        };
        if run.dry_run {
            skipped.push(format!("line {n}: a --dry-run line sent nothing; skipped"));
            continue;
        }
        let carried = run.outputs.iter().any(|o| o == "graphite" || o == "statsd");
        if !carried {
            skipped.push(format!(
                "line {n}: no --output carbyne has ({}); skipped",
                if run.outputs.is_empty() {
                    "none at all, which logster refuses too".to_string()
                } else {
                    run.outputs.join(", ")
                }
            ));
            continue;
        }
        let parser = match crate::cli::logster_parser(parser_name, run.parser_options.as_deref()) {
            Ok(p) => p,
            Err(e) => {
                skipped.push(format!(
                        "line {n}: parser {parser_name}: {e}; carbyne has postfix, squid and log4j (and regex rules: see conf.d/regex.toml)"
                    ));
                continue;
            }
        };
        let name = log_name(parser.name(), file, &names);
        names.insert(name.clone(), ());
        let mut out = Toml::new(path, &format!(", line {n}"));
        out.table(&format!("logs.{name}"));
        out.key("file", file.as_str(), "LOGFILE");
        let mut t = toml::Table::try_from(&parser).map_err(|e| at(n, e.to_string()))?;
        for (k, v) in std::mem::take(&mut t) {
            out.key(
                &k,
                v,
                if k == "parser" {
                    "PARSER (--parser-options)"
                } else {
                    "--parser-options"
                },
            );
        }
        out.key("metric_prefix", run.prefix.as_str(), "--metric-prefix");
        out.key("metric_suffix", run.suffix.as_str(), "--metric-suffix");
        out.key(
            "logster_names",
            true,
            "Logster's names, not servers.<host>.<log>.*",
        );
        match every {
            Some(s) => out.key("interval", s as i64, "how often cron ran it"),
            None => {
                out.key("interval", 60, "");
                out.left(format!(
                    "the schedule of line {n}: not every N minutes or hours; reported every 60 s"
                ));
            }
        }
        out.key(
            "start_at",
            "end",
            "the lines before the switch were logster's to count",
        );
        for o in &run.outputs {
            let handler = match o.as_str() {
                "graphite" => run
                    .graphite_host
                    .as_deref()
                    .and_then(host_port)
                    .map(|(h, p)| {
                        let proto = run
                            .graphite_protocol
                            .clone()
                            .unwrap_or_else(|| "tcp".into());
                        ("graphite".to_string(), h, p, proto)
                    }),
                "statsd" => run
                    .statsd_host
                    .as_deref()
                    .and_then(host_port)
                    .map(|(h, p)| ("statsd".to_string(), h, p, "udp".to_string())),
                other => {
                    out.left(format!(
                        "--output {other}: carbyne's handlers are graphite, statsd, http, syslog, zeromq and prometheus"
                    ));
                    continue;
                }
            };
            let Some(key) = handler else {
                return Err(at(
                    n,
                    format!("--output {o} without a good --{o}-host HOST:PORT"),
                ));
            };
            let count = handlers.len();
            handlers.entry(key).or_insert_with(|| {
                if count == 0 {
                    o.clone()
                } else {
                    format!("{o}-{}", count + 1)
                }
            });
        }
        for ig in &run.ignored {
            let plumbing = [
                "--tailer",
                "--locker",
                "--logtail",
                "--state-dir",
                "--log-dir",
                "--log-conf",
                "--debug",
                "--parser-help",
            ]
            .iter()
            .any(|p| ig.starts_with(p));
            out.left(format!(
                "{ig} (line {n}): {}",
                if plumbing {
                    "carbyne keeps positions in its state_dir and logs to stderr"
                } else {
                    "an option of an output carbyne does not have"
                }
            ));
        }
        m.add(format!("conf.d/50-logs-{name}.toml"), out);
    }
    if m.files.is_empty() {
        return Err(ConfigError::general(
            Some(path),
            match skipped.first() {
                Some(s) => format!("no logster line carbyne can carry over ({s})"),
                None => "no line runs logster".into(),
            },
        ));
    }
    if !handlers.is_empty() {
        let mut out = Toml::new(path, " (the logster lines' outputs)");
        if handlers.len() > 1 {
            out.comment("Every log (and collector) now goes to every handler below.");
        }
        for ((kind, host, port, proto), name) in &handlers {
            out.table(&format!("handlers.{name}"));
            if name != kind {
                out.key("type", kind.as_str(), "");
            }
            out.key("host", host.as_str(), &format!("--{kind}-host"));
            out.key("port", i64::from(*port), "");
            if kind == "graphite" {
                out.key("proto", proto.as_str(), "--graphite-protocol");
            }
        }
        m.add("conf.d/50-logster-outputs.toml", out);
    }
    m.left.extend(skipped);
    Ok(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_as_optparse_reads_them() {
        let args: Vec<String> = "-p web1 --metric-suffix=prod -ographite --graphite-host graphite:2003 -s /var/run --parser-options '-l WARN,ERROR' Log4jLogster /var/log/app.log"
            .split(' ')
            .map(String::from)
            .collect();
        let r = parse_run(&args).expect("parse");
        assert_eq!(r.prefix, "web1");
        assert_eq!(r.suffix, "prod");
        assert_eq!(r.outputs, ["graphite"]);
        assert_eq!(r.graphite_host.as_deref(), Some("graphite:2003"));
        assert_eq!(r.ignored, ["--state-dir /var/run"]);
        assert!(parse_run(&["--frob".to_string()]).is_err());
    }

    #[test]
    fn schedules() {
        assert_eq!(schedule("* * * * * logster x").map(|s| s.0), Some(Some(60)));
        assert_eq!(
            schedule("*/5 * * * * root logster x").map(|s| s.0),
            Some(Some(300))
        );
        assert_eq!(
            schedule("7 * * * * logster x").map(|s| s.0),
            Some(Some(3600))
        );
        assert_eq!(schedule("@hourly logster x").map(|s| s.0), Some(Some(3600)));
        assert_eq!(schedule("0 9 * * 1 logster x").map(|s| s.0), Some(None));
    }

    #[test]
    fn a_crontab_becomes_logs_and_one_handler() {
        let dir = tempfile::tempdir().expect("dir");
        let p = dir.path().join("crontab");
        std::fs::write(
            &p,
            "MAILTO=ops\n# logster lines\n\
             * * * * * /usr/bin/logster -p mail --output=graphite --graphite-host=g:2003 PostfixLogster /var/log/mail.log >/dev/null 2>&1\n\
             */5 * * * * root logster -x prod -o graphite --graphite-host g:2003 -o statsd --statsd-host s:8125 logster.parsers.SquidLogster.SquidLogster /var/log/squid/access.log\n\
             * * * * * logster --output ganglia SampleLogster /var/log/httpd/access_log\n",
        )
        .expect("crontab");
        let m = migrate(&p).expect("migrate");
        let files: Vec<String> = m.files.iter().map(|f| f.0.display().to_string()).collect();
        assert_eq!(
            files,
            [
                "conf.d/50-logs-postfix-mail.toml",
                "conf.d/50-logs-squid-access.toml",
                "conf.d/50-logster-outputs.toml"
            ]
        );
        assert!(m.files[1].1.contains("interval = 300"), "{}", m.files[1].1);
        assert!(m.left.iter().any(|l| l.contains("ganglia")), "{:?}", m.left);
        let cfg = m.check().expect("config check");
        assert!(cfg.logs["postfix-mail"].common.logster_names);
        assert_eq!(cfg.handlers.len(), 2, "{:?}", cfg.handlers);
    }
}
