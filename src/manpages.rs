//! The man pages: one per command (from the command-line definitions, with
//! FILES, SIGNALS and EXIT STATUS sections written here) and
//! carbyne.toml(5), every configuration key with its default and meaning,
//! generated from the example files themselves (packaging/carbyne.toml and
//! conf.d/*.toml, embedded at build time), so the page and the examples
//! cannot drift apart.

use std::fmt::Write as _;
use std::path::Path;

/// The main file's example.
pub const MAIN_EXAMPLE: &str = include_str!("../packaging/carbyne.toml");

/// Every example drop-in, by file name (a test checks the list against conf.d/).
pub const DROPINS: &[(&str, &str)] = &[
    ("cgroup.toml", include_str!("../conf.d/cgroup.toml")),
    ("conntrack.toml", include_str!("../conf.d/conntrack.toml")),
    ("cpu.toml", include_str!("../conf.d/cpu.toml")),
    ("diskspace.toml", include_str!("../conf.d/diskspace.toml")),
    ("diskusage.toml", include_str!("../conf.d/diskusage.toml")),
    ("entropy.toml", include_str!("../conf.d/entropy.toml")),
    ("filestat.toml", include_str!("../conf.d/filestat.toml")),
    ("graphite.toml", include_str!("../conf.d/graphite.toml")),
    ("http.toml", include_str!("../conf.d/http.toml")),
    ("hwmon.toml", include_str!("../conf.d/hwmon.toml")),
    ("interrupt.toml", include_str!("../conf.d/interrupt.toml")),
    ("ksm.toml", include_str!("../conf.d/ksm.toml")),
    ("loadavg.toml", include_str!("../conf.d/loadavg.toml")),
    ("log4j.toml", include_str!("../conf.d/log4j.toml")),
    ("memory.toml", include_str!("../conf.d/memory.toml")),
    ("mountstats.toml", include_str!("../conf.d/mountstats.toml")),
    ("netstat.toml", include_str!("../conf.d/netstat.toml")),
    ("network.toml", include_str!("../conf.d/network.toml")),
    ("nfs.toml", include_str!("../conf.d/nfs.toml")),
    ("nfsd.toml", include_str!("../conf.d/nfsd.toml")),
    ("postfix.toml", include_str!("../conf.d/postfix.toml")),
    ("pressure.toml", include_str!("../conf.d/pressure.toml")),
    ("proc.toml", include_str!("../conf.d/proc.toml")),
    (
        "processresources.toml",
        include_str!("../conf.d/processresources.toml"),
    ),
    ("prometheus.toml", include_str!("../conf.d/prometheus.toml")),
    ("regex.toml", include_str!("../conf.d/regex.toml")),
    (
        "remote_write.toml",
        include_str!("../conf.d/remote_write.toml"),
    ),
    (
        "server-carbon.toml",
        include_str!("../conf.d/server-carbon.toml"),
    ),
    (
        "server-statsd.toml",
        include_str!("../conf.d/server-statsd.toml"),
    ),
    ("server-web.toml", include_str!("../conf.d/server-web.toml")),
    ("sockstat.toml", include_str!("../conf.d/sockstat.toml")),
    ("squid.toml", include_str!("../conf.d/squid.toml")),
    ("statsd.toml", include_str!("../conf.d/statsd.toml")),
    ("stdout.toml", include_str!("../conf.d/stdout.toml")),
    ("syslog.toml", include_str!("../conf.d/syslog.toml")),
    ("tcp.toml", include_str!("../conf.d/tcp.toml")),
    ("udp.toml", include_str!("../conf.d/udp.toml")),
    ("uptime.toml", include_str!("../conf.d/uptime.toml")),
    ("vmstat.toml", include_str!("../conf.d/vmstat.toml")),
    ("zeromq.toml", include_str!("../conf.d/zeromq.toml")),
];

/// Writes carbyne.1, carbyne-COMMAND.1 for each command and nested command,
/// and carbyne.toml.5, into `dir`.
pub fn write_all(cmd: &clap::Command, dir: &Path) -> std::io::Result<()> {
    /// `name`: the page (carbyne-whisper-fetch); `words`: the command as
    /// typed (carbyne whisper fetch), which the synopsis shows.
    fn write(cmd: &clap::Command, name: &str, words: &str, dir: &Path) -> std::io::Result<()> {
        let cmd = cmd
            .clone()
            .name(name.to_string())
            .bin_name(words.to_string());
        let mut page = Vec::new();
        clap_mangen::Man::new(cmd.clone()).render(&mut page)?;
        page.extend_from_slice(extra_sections(name).as_bytes());
        std::fs::write(dir.join(format!("{name}.1")), page)?;
        for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
            let sub_name = sub.get_name();
            write(
                sub,
                &format!("{name}-{sub_name}"),
                &format!("{words} {sub_name}"),
                dir,
            )?;
        }
        Ok(())
    }
    std::fs::create_dir_all(dir)?;
    write(cmd, "carbyne", "carbyne", dir)?;
    std::fs::write(dir.join("carbyne.toml.5"), config_page())
}

/// Text as roff takes it: backslashes escaped, no line starting a request.
fn roff(text: &str) -> String {
    let t = text.replace('\\', "\\e");
    if t.starts_with(['.', '\'']) {
        format!("\\&{t}")
    } else {
        t
    }
}

/// FILES, SIGNALS (for the commands that run as services) and EXIT STATUS.
fn extra_sections(page: &str) -> String {
    let mut s = String::new();
    let service = matches!(page, "carbyne" | "carbyne-agent" | "carbyne-server");
    let config = service
        || matches!(
            page,
            "carbyne-config" | "carbyne-config-check" | "carbyne-buffer"
        );
    if config {
        s.push_str(
            ".SH FILES\n\
             .TP\n/etc/carbyne/carbyne.toml\nThe main file: the global keys (see \\fBcarbyne.toml\\fR(5)).\n\
             .TP\n/etc/carbyne/conf.d/*.toml\nDrop-ins, merged over the main file in name order: a later file wins. \
             The package ships one per plugin as 00-NAME.toml; put your own settings in a file that sorts after \
             them, such as 50-NAME.toml, and leave the shipped ones as they are.\n\
             .TP\n/var/lib/carbyne\nState: the agent's counters between cron runs (agent-counters.json), \
             the handlers' counts of the last run (agent-handlers.json), log positions (logs/), the handlers' disk \
             buffers (buffers/NAME/, with buffer = \"disk\"; see \\fBcarbyne buffer\\fR) and the carbon relay's \
             (relay-buffers/).\n\
             .TP\n/var/lib/carbyne/whisper\nThe carbon receiver's whisper files (storage_dir); kept when the package is purged.\n",
        );
    }
    if service {
        s.push_str(
            ".SH SIGNALS\n\
             .TP\nSIGTERM, SIGINT\nStop: the agent's handlers get flush_timeout to deliver; the server stops statsd first \
             (its last flush goes into the carbon receiver), then carbon, which writes every cached point.\n\
             .TP\nSIGHUP\nRead the configuration again (systemctl reload). A configuration that does not load is logged, \
             naming the file, line and key, and the running one stays.\n",
        );
    }
    if page == "carbyne-buffer" {
        s.push_str(
            ".SH EXIT STATUS\n\
             .TP\n0\nDone: for drain, every record delivered.\n\
             .TP\n1\nA buffer is held by a running carbyne (the agent: stop it first), cannot be read, or a drain left \
             records undelivered (said on stderr).\n\
             .TP\n2\nThe configuration cannot be used, or names no such handler, or one without a disk buffer.\n\
             .SH SEE ALSO\n\\fBcarbyne.toml\\fR(5)\n",
        );
        return s;
    }
    s.push_str(
        ".SH EXIT STATUS\n\
         .TP\n0\nEverything succeeded; for agent --once, also when what a handler could not deliver was kept in \
         its disk buffer for the next run (a warning says so).\n\
         .TP\n1\nSomething failed: a collector, a handler that could not deliver, a file that could not be read or written.\n\
         .TP\n2\nThe configuration or the command line cannot be used (the message names the file, line and key).\n\
         .SH SEE ALSO\n\\fBcarbyne.toml\\fR(5)\n",
    );
    s
}

/// carbyne.toml(5): every key of the main file and of each drop-in, with its
/// default and the comment above it in the example.
pub fn config_page() -> String {
    let mut s = String::new();
    s.push_str(&format!(
        ".TH CARBYNE.TOML 5 \"\" \"carbyne {}\" \"File Formats\"\n\
         .SH NAME\ncarbyne.toml \\- carbyne's configuration: the main file and its drop-ins\n\
         .SH DESCRIPTION\nTOML files: /etc/carbyne/carbyne.toml, then /etc/carbyne/conf.d/*.toml merged over it in name \
         order, the later file winning. The package ships one drop-in per plugin as conf.d/00-NAME.toml; put your own \
         settings in a drop-in that sorts after them (50-NAME.toml). \\fBcarbyne config check\\fR prints the merged \
         result or the error (file, line, key). Each key below is shown with its default; a key shown commented out \
         in the example has no default or is off. A time (an interval, a timeout, a backoff) is seconds, or a \
         duration with a unit: \"500ms\", \"10s\", \"1m\", \"1h30m\", \"1d\"; an interval is whole seconds.\n",
        env!("CARGO_PKG_VERSION")
    ));
    s.push_str(".SH THE MAIN FILE\n");
    s.push_str(&example_section(MAIN_EXAMPLE));
    for (name, text) in DROPINS {
        let _ = writeln!(
            s,
            ".SH {}",
            roff(&name.trim_end_matches(".toml").to_uppercase())
        );
        s.push_str(&example_section(text));
    }
    s.push_str(
        ".SH SEE ALSO\n\\fBcarbyne\\fR(1), \\fBcarbyne-agent\\fR(1), \\fBcarbyne-server\\fR(1)\n",
    );
    s
}

/// One example file as roff: its leading comment as a paragraph, each
/// [section] as a subsection, each key as a tagged paragraph with its
/// default and the comment lines above it.
fn example_section(text: &str) -> String {
    let mut out = String::new();
    let mut comment: Vec<String> = Vec::new();
    let mut intro_done = false;
    let flush_intro = |out: &mut String, comment: &mut Vec<String>| {
        if !comment.is_empty() {
            let _ = write!(out, ".PP\n{}\n", roff(&comment.join(" ")));
            comment.clear();
        }
    };
    for line in text.lines() {
        let t = line.trim();
        // "# key = value" and "# [section]": a commented-out setting;
        // "## text": a comment in a commented-out block.
        let setting = t
            .strip_prefix("# ")
            .filter(|r| is_setting(r))
            .or(Some(t).filter(|r| is_setting(r)));
        if let Some(set) = setting {
            if !intro_done {
                intro_done = true;
                if set.starts_with('[') {
                    flush_intro(&mut out, &mut comment);
                }
            }
            if set.starts_with('[') {
                flush_intro(&mut out, &mut comment);
                let _ = writeln!(out, ".SS {}", roff(set));
                continue;
            }
            let (key, value) = set.split_once(" = ").unwrap_or((set, ""));
            let _ = write!(
                out,
                ".TP\n\\fB{}\\fR = {}{}\n{}\n",
                roff(key),
                roff(value),
                if t.starts_with('#') {
                    " (commented out)"
                } else {
                    ""
                },
                roff(&comment.join(" "))
            );
            comment.clear();
        } else if let Some(c) = t.strip_prefix("##").or_else(|| t.strip_prefix('#')) {
            let c = c.trim();
            if !c.is_empty() {
                comment.push(c.to_string());
            }
        } else if t.is_empty() && !intro_done {
            flush_intro(&mut out, &mut comment);
        }
    }
    flush_intro(&mut out, &mut comment);
    out
}

/// `key = value` or `[section]`.
fn is_setting(s: &str) -> bool {
    if s.starts_with('[') {
        return s.ends_with(']') && !s.contains(' ');
    }
    s.split_once(" = ").is_some_and(|(k, _)| {
        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_dropin_is_in_the_page_and_every_key_with_its_default() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("conf.d");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .expect("conf.d")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let listed: Vec<String> = DROPINS.iter().map(|(n, _)| n.to_string()).collect();
        assert_eq!(listed, on_disk, "DROPINS lists conf.d/ exactly");
        let page = config_page();
        for (key, default) in [
            ("interval", "10"),
            ("percore", "true"),
            ("max_cache_bytes", "1073741824"),
            ("max_set_members", "100000"),
            ("port", "2003"),
        ] {
            assert!(
                page.contains(&format!("\\fB{key}\\fR = {default}")),
                "{key}"
            );
        }
        assert!(page.contains(".SS [server.carbon.relay]"));
        assert!(page.contains(".SH SERVER\\-CARBON") || page.contains(".SH SERVER-CARBON"));
    }
}
