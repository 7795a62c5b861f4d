//! `carbyne migrate` on the configuration files the real packages ship
//! (installed by `tests/run.sh`) and on hand-written ones that turn many
//! options on: each result passes `carbyne config check` and says what it
//! did not carry over.

mod common;

use common::{bin, peer};
use std::path::{Path, PathBuf};
use std::process::Output;

fn migrate(out: &Path, args: &[&str]) -> Output {
    let o = bin()
        .args(["migrate", "--output"])
        .arg(out)
        .args(args)
        .output()
        .expect("carbyne migrate");
    assert!(
        o.status.success(),
        "carbyne migrate {args:?}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    o
}

/// `carbyne config check` on a migrated folder: its merged config.
fn check(dir: &Path) -> String {
    let o = bin()
        .args(["config", "check", "--config"])
        .arg(dir)
        .output()
        .expect("config check");
    assert!(
        o.status.success(),
        "config check {}: {}",
        dir.display(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn read(p: PathBuf) -> String {
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// carbon 1.1.10's example files as a CONF_DIR: `x.conf.example` as `x.conf`.
fn carbon_conf_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("dir");
    let examples = peer("carbon-1.1.10/conf");
    for f in [
        "carbon",
        "storage-schemas",
        "storage-aggregation",
        "relay-rules",
        "aggregation-rules",
        "rewrite-rules",
        "whitelist",
        "blacklist",
    ] {
        std::fs::copy(
            examples.join(format!("{f}.conf.example")),
            dir.path().join(format!("{f}.conf")),
        )
        .expect("copy example");
    }
    dir
}

#[test]
fn carbons_example_conf_migrates_for_each_daemon() {
    let conf = carbon_conf_dir();
    let carbon_conf = conf.path().join("carbon.conf");
    let out = tempfile::tempdir().expect("out");
    let conf_dir = conf.path().display().to_string();

    let cache = out.path().join("cache");
    let o = migrate(&cache, &["carbon", carbon_conf.to_str().expect("utf-8")]);
    let file = read(cache.join("conf.d/50-server-carbon.toml"));
    let merged = check(&cache);
    for want in [
        "listen = \"0.0.0.0:2003\"",
        "pickle_listen = \"0.0.0.0:2004\"",
        "cache_query_listen = \"0.0.0.0:7002\"",
        "udp = false",
        "max_updates_per_second = 500",
        "max_creates_per_minute = 50",
        "create = \"fallocate\"",
        "max_cache_size = 0",
    ] {
        assert!(merged.contains(want), "{want} not in\n{merged}");
    }
    // CONF_DIR is carbon.conf's folder; STORAGE_DIR its GRAPHITE_ROOT's storage.
    assert!(
        merged.contains(&format!("schemas = \"{conf_dir}/storage-schemas.conf\"")),
        "{merged}"
    );
    let root = conf.path().parent().expect("parent").display().to_string();
    assert!(
        merged.contains(&format!("storage_dir = \"{root}/storage/whisper\"")),
        "{merged}"
    );
    // What has no equivalent is in the file and on stderr.
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(file.contains("# - ENABLE_LOGROTATION = True"), "{file}");
    assert!(
        stderr.contains("not carried over: ENABLE_LOGROTATION = True"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("LOG_UPDATES"),
        "False is what carbyne does: {stderr}"
    );

    let relay = out.path().join("relay");
    migrate(
        &relay,
        &[
            "carbon",
            "--program",
            "relay",
            carbon_conf.to_str().expect("utf-8"),
        ],
    );
    let merged = check(&relay);
    for want in [
        "listen = \"0.0.0.0:2013\"",
        "store = false",
        "destinations = [\"127.0.0.1:2004\"]",
        "method = \"rules\"",
        "max_queue_size = 10000",
    ] {
        assert!(merged.contains(want), "{want} not in\n{merged}");
    }
    assert!(
        merged.contains(&format!("{conf_dir}/relay-rules.conf")),
        "{merged}"
    );

    let aggregator = out.path().join("aggregator");
    migrate(
        &aggregator,
        &[
            "carbon",
            "--program",
            "aggregator",
            carbon_conf.to_str().expect("utf-8"),
        ],
    );
    let merged = check(&aggregator);
    for want in [
        "listen = \"0.0.0.0:2023\"",
        "method = \"consistent-hashing\"",
        "forward_all = true",
        "max_aggregation_intervals = 5",
    ] {
        assert!(merged.contains(want), "{want} not in\n{merged}");
    }
    assert!(
        merged.contains(&format!("{conf_dir}/aggregation-rules.conf")),
        "{merged}"
    );
    assert!(
        merged.contains(&format!("{conf_dir}/rewrite-rules.conf")),
        "{merged}"
    );

    // Written files are not replaced without --force.
    let again = bin()
        .args(["migrate", "--output"])
        .arg(&cache)
        .args(["carbon", carbon_conf.to_str().expect("utf-8")])
        .output()
        .expect("again");
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("--force"));
}

#[test]
fn debians_etc_carbon_migrates_onto_its_own_tree() {
    let out = tempfile::tempdir().expect("out");
    let o = migrate(out.path(), &["carbon", "/etc/carbon/carbon.conf"]);
    let merged = check(out.path());
    for want in [
        "storage_dir = \"/var/lib/graphite/whisper/\"",
        "schemas = \"/etc/carbon/storage-schemas.conf\"",
        "listen = \"0.0.0.0:2003\"",
    ] {
        assert!(merged.contains(want), "{want} not in\n{merged}");
    }
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("not carried over: USER = _graphite"),
        "{stderr}"
    );
}

#[test]
fn a_carbon_conf_with_many_options_on() {
    let conf = carbon_conf_dir();
    std::fs::write(
        conf.path().join("carbon.conf"),
        "[DEFAULT]\nBASE = /srv/graphite\n\n\
         [cache]\nSTORAGE_DIR = %(BASE)s/storage\nLOCAL_DATA_DIR = /srv/whisper\n\
         LINE_RECEIVER_INTERFACE = 127.0.0.1\nENABLE_UDP_LISTENER = True\n\
         UDP_RECEIVER_INTERFACE = 127.0.0.1\nMAX_CACHE_SIZE = 2000000\n\
         MAX_UPDATES_PER_SECOND = inf\nMAX_CREATES_PER_MINUTE = inf\n\
         CACHE_WRITE_STRATEGY = timesorted\nWHISPER_SPARSE_CREATE = true\n\
         USE_WHITELIST = yes\nMETRIC_CLIENT_IDLE_TIMEOUT = 30\n\
         MAX_RECEIVER_CONNECTIONS = 500\nCARBON_METRIC_INTERVAL = 10\n\
         WHISPER_LOCK_WRITES = True\nENABLE_AMQP = True\nAMQP_HOST = mq\n\n\
         [cache:b]\nLINE_RECEIVER_PORT = 2103\nPICKLE_RECEIVER_PORT = 2104\n\
         CACHE_QUERY_PORT = 7102\nUDP_RECEIVER_PORT = 2103\n\n\
         [aggregator-cache]\nLINE_RECEIVER_PORT = 2023\nPICKLE_RECEIVER_PORT = 2024\n\
         FORWARD_ALL = False\nWRITE_BACK_FREQUENCY = 30\nMAX_AGGREGATION_INTERVALS = 3\n\
         AGGREGATION_RULES = aggregation-rules.conf\n",
    )
    .expect("carbon.conf");
    let carbon_conf = conf.path().join("carbon.conf");
    let out = tempfile::tempdir().expect("out");
    let b = out.path().join("b");
    let o = migrate(
        &b,
        &[
            "carbon",
            "--instance",
            "b",
            carbon_conf.to_str().expect("utf-8"),
        ],
    );
    let merged = check(&b);
    for want in [
        "listen = \"127.0.0.1:2103\"",
        "pickle_listen = \"0.0.0.0:2104\"",
        "cache_query_listen = \"0.0.0.0:7102\"",
        "udp = true",
        "storage_dir = \"/srv/whisper\"",
        "max_cache_size = 2000000",
        "max_updates_per_second = 0",
        "max_creates_per_minute = 0",
        "cache_write_strategy = \"sorted\"",
        "create = \"sparse\"",
        "idle_timeout = 30",
        "max_connections = 500",
        "carbon_metric_interval = 10",
        "instance = \"b\"",
    ] {
        assert!(merged.contains(want), "{want} not in\n{merged}");
    }
    assert!(merged.contains("whitelist.conf"), "{merged}");
    assert!(merged.contains("blacklist.conf"), "{merged}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    for left in [
        "CACHE_WRITE_STRATEGY = timesorted",
        "WHISPER_LOCK_WRITES = True",
        "ENABLE_AMQP = True",
        "AMQP_HOST = mq",
    ] {
        assert!(
            stderr.contains(&format!("not carried over: {left}")),
            "{left}: {stderr}"
        );
    }

    let ac = out.path().join("aggregator-cache");
    migrate(
        &ac,
        &[
            "carbon",
            "--program",
            "aggregator-cache",
            carbon_conf.to_str().expect("utf-8"),
        ],
    );
    let merged = check(&ac);
    for want in [
        "listen = \"0.0.0.0:2023\"",
        "store = true",
        "forward_all = false",
        "write_back_frequency = 30",
        "max_aggregation_intervals = 3",
    ] {
        assert!(merged.contains(want), "{want} not in\n{merged}");
    }
    assert!(!merged.contains("[server.carbon.relay]"), "{merged}");
}

#[test]
fn a_broken_carbon_conf_is_refused_with_its_line() {
    let conf = carbon_conf_dir();
    std::fs::write(
        conf.path().join("carbon.conf"),
        "[cache]\nLINE_RECEIVER_PORT = 2003\nMAX_CACHE_SIZE = lots\n",
    )
    .expect("carbon.conf");
    let out = tempfile::tempdir().expect("out");
    let o = bin()
        .args(["migrate", "--output"])
        .arg(out.path())
        .arg("carbon")
        .arg(conf.path().join("carbon.conf"))
        .output()
        .expect("migrate");
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("carbon.conf: line 3"), "{stderr}");
    assert!(stderr.contains("MAX_CACHE_SIZE = lots"), "{stderr}");
    // Nothing written.
    assert_eq!(std::fs::read_dir(out.path()).expect("out").count(), 0);
}

/// statsd's own files from its npm package.
fn statsd_file(name: &str) -> PathBuf {
    peer(&format!("node_modules/statsd/{name}"))
}

#[test]
fn statsds_example_configs_migrate() {
    let out = tempfile::tempdir().expect("out");
    let example = out.path().join("example");
    migrate(
        &example,
        &[
            "statsd",
            statsd_file("exampleConfig.js").to_str().expect("utf-8"),
        ],
    );
    let merged = check(&example);
    for want in [
        "listen = \"0.0.0.0:8125\"",
        "admin = \"0.0.0.0:8126\"",
        "graphite = \"graphite.example.com:2003\"",
        "flush_interval = 10.0",
        "legacy_namespace = true",
    ] {
        assert!(merged.contains(want), "{want} not in\n{merged}");
    }

    // The file statsd's Debian packaging installs as /etc/statsd/localConfig.js.
    let debian = out.path().join("debian");
    migrate(
        &debian,
        &[
            "statsd",
            statsd_file("debian/localConfig.js")
                .to_str()
                .expect("utf-8"),
        ],
    );
    assert!(check(&debian).contains("graphite = \"localhost:2003\""));

    // The proxy's file: the listener is carried, the proxy is listed.
    let proxy = out.path().join("proxy");
    let o = migrate(
        &proxy,
        &[
            "statsd",
            statsd_file("exampleProxyConfig.js")
                .to_str()
                .expect("utf-8"),
        ],
    );
    let merged = check(&proxy);
    assert!(merged.contains("listen = \"0.0.0.0:8125\""), "{merged}");
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("not carried over: nodes = [{host: \"127.0.0.1\", port: 8127"),
        "{stderr}"
    );
    assert!(stderr.contains("carbyne has no statsd proxy"), "{stderr}");
}

#[test]
fn a_config_js_that_is_code_is_refused_with_its_line() {
    let dir = tempfile::tempdir().expect("dir");
    let js = dir.path().join("config.js");
    std::fs::write(
        &js,
        "{\n  graphiteHost: 'g'\n, graphite: { globalSuffix: require('os').hostname().split('.')[0] }\n}\n",
    )
    .expect("js");
    let out = dir.path().join("out");
    let o = bin()
        .args(["migrate", "--output"])
        .arg(&out)
        .arg("statsd")
        .arg(&js)
        .output()
        .expect("migrate");
    assert_eq!(o.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("line 3, column 29"), "{stderr}");
    assert!(stderr.contains("does not run config.js"), "{stderr}");
    assert!(!out.exists());
}

/// What `carbyne logster --dry-run ARGS` prints for `log` read whole, as
/// name -> value.
fn logster_dry_run(args: &[&str], state: &Path) -> std::collections::BTreeMap<String, f64> {
    let o = bin()
        .args(["logster", "--dry-run", "--state-dir"])
        .arg(state)
        .args(args)
        .output()
        .expect("carbyne logster");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    common::parse_lines(&String::from_utf8_lossy(&o.stdout))
        .into_iter()
        .map(|(n, v, _)| (n, v))
        .collect()
}

#[test]
fn a_logster_crontab_runs_in_the_agent_under_logsters_names() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let graphite = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = graphite.local_addr().expect("addr").port();
    let (mail, app) = (d.join("mail.log"), d.join("app.log"));
    std::fs::write(&mail, "").expect("mail.log");
    std::fs::write(&app, "").expect("app.log");
    std::fs::write(
        d.join("crontab"),
        format!(
            "SHELL=/bin/sh\n\
             * * * * * /usr/bin/logster -p mail -x prod --output=graphite --graphite-host=127.0.0.1:{port} PostfixLogster {} >/dev/null 2>&1\n\
             */5 * * * * root /usr/local/bin/logster --metric-prefix web1 -o graphite --graphite-host 127.0.0.1:{port} --parser-options '-l WARN,ERROR,FATAL' logster.parsers.Log4jLogster.Log4jLogster {}\n",
            mail.display(),
            app.display()
        ),
    )
    .expect("crontab");
    let out = d.join("out");
    migrate(
        &out,
        &["logster", d.join("crontab").to_str().expect("utf-8")],
    );
    check(&out);
    std::fs::write(
        out.join("carbyne.toml"),
        format!("state_dir = \"{}\"\n", d.join("state").display()),
    )
    .expect("carbyne.toml");
    // As logster's first run: where the files end is noted, nothing sent.
    let agent = || {
        let o = bin()
            .args(["agent", "--once", "--config"])
            .arg(&out)
            .output()
            .expect("agent");
        assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    };
    agent();
    for (log, fixture) in [(&mail, "logs/maillog"), (&app, "logs/app.log")] {
        std::fs::copy(common::fixture(fixture), log).expect("fixture");
    }
    agent();
    let text = common::receive(graphite, std::time::Duration::from_secs(10), |t| {
        t.contains("mail.lines_read.prod") && t.contains("web1.lines_read")
    });
    let ours: std::collections::BTreeMap<String, f64> = common::parse_lines(&text)
        .into_iter()
        .filter(|(n, _, _)| !n.starts_with("servers."))
        .map(|(n, v, _)| (n, v))
        .collect();
    let mut theirs = logster_dry_run(
        &[
            "-p",
            "mail",
            "-x",
            "prod",
            "PostfixLogster",
            mail.to_str().expect("utf-8"),
        ],
        &d.join("s1"),
    );
    theirs.extend(logster_dry_run(
        &[
            "-p",
            "web1",
            "--parser-options",
            "-l WARN,ERROR,FATAL",
            "Log4jLogster",
            app.to_str().expect("utf-8"),
        ],
        &d.join("s2"),
    ));
    assert_eq!(
        ours.keys().collect::<Vec<_>>(),
        theirs.keys().collect::<Vec<_>>(),
        "the names"
    );
    // Counts are equal; per-second figures (log4j's levels, postfix's
    // *Sec) are over different times.
    for (k, v) in &theirs {
        let count = ["num", "total", "pct", "avgDelay", "lines_"]
            .iter()
            .any(|c| k.contains(c));
        if count {
            assert_eq!(ours[k], *v, "{k}");
        }
    }
    assert!(ours.len() > 20, "{ours:?}");
}

/// The names of `carbyne agent --once --dry-run` on `config`, without
/// carbyne's own metrics.
fn agent_names(config: &Path) -> std::collections::BTreeSet<String> {
    let o = bin()
        .args(["agent", "--once", "--dry-run", "--config"])
        .arg(config)
        .output()
        .expect("agent");
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    common::parse_lines(&String::from_utf8_lossy(&o.stdout))
        .into_iter()
        .map(|(n, _, _)| n)
        .filter(|n| !n.contains(".carbyne."))
        .collect()
}

#[test]
fn diamonds_example_conf_migrates() {
    let out = tempfile::tempdir().expect("out");
    let conf = peer("diamond-4.0.515/etc/diamond/diamond.conf.example");
    let o = migrate(out.path(), &["diamond", conf.to_str().expect("utf-8")]);
    let merged = check(out.path());
    assert!(merged.contains("interval = 300"), "{merged}");
    assert!(merged.contains("host = \"127.0.0.1\""), "{merged}");
    // Only the six collectors the example enables run.
    let cfg = format!("state_dir = \"{}\"\n", out.path().join("state").display());
    std::fs::write(out.path().join("carbyne.toml"), cfg).expect("state_dir");
    let paths: std::collections::BTreeSet<String> = agent_names(out.path())
        .iter()
        .filter_map(|n| n.split('.').nth(2).map(String::from))
        .collect();
    let want: std::collections::BTreeSet<String> =
        ["cpu", "diskspace", "iostat", "loadavg", "memory", "vmstat"]
            .into_iter()
            .map(String::from)
            .collect();
    assert!(paths.is_subset(&want), "{paths:?}");
    // (vmstat sends rates only, from the second run on.)
    for p in ["cpu", "loadavg", "memory"] {
        assert!(paths.contains(p), "{p}: {paths:?}");
    }
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("ArchiveHandler"), "{stderr}");
}

/// Diamond's rules, applied by hand to carbyne's default names: which
/// collectors run (their own section's `enabled`, drop-ins winning),
/// `path`, whitelists and blacklists matched at the start of the name
/// after the path, and hostname, prefix and suffix.
#[test]
fn a_diamond_conf_gives_the_names_diamond_would() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let (collectors, handlers) = (d.join("collectors"), d.join("handlers"));
    std::fs::create_dir_all(&collectors).expect("collectors");
    std::fs::create_dir_all(&handlers).expect("handlers");
    std::fs::write(
        d.join("diamond.conf"),
        format!(
            "[server]\nhandlers = diamond.handler.graphite.GraphiteHandler, diamond.handler.queue.QueueHandler\n\
             collectors_config_path = {}\nhandlers_config_path = {}\n\n\
             [handlers]\nkeys = rotated_file\n[[default]]\n[[GraphiteHandler]]\nhost = graphite.example.org\n\n\
             [collectors]\n[[default]]\nhostname = web01\npath_prefix = systems\npath_suffix = dc1\ninterval = 60\nenabled = True\n\
             [[LoadAverageCollector]]\nenabled = True\npath = load\nmetrics_whitelist = 0[15]\n\
             [[MemoryCollector]]\nenabled = yes\nmetrics_blacklist = \"Vmalloc.*|Swap.*\"\n\
             [[VMStatCollector]]\nenabled = True\n\
             [[UptimeCollector]]\n# no enabled: [[default]]'s does not start it\n\
             [[NetworkCollector eth1]]\nenabled = True\n\
             [[CPUCollector]]\nenabled = True\n",
            collectors.display(),
            handlers.display()
        ),
    )
    .expect("diamond.conf");
    std::fs::write(
        collectors.join("CPUCollector.conf"),
        "percore = False\ninterval = 30\n",
    )
    .expect("cpu");
    std::fs::write(
        collectors.join("SockstatCollector.conf"),
        "enabled = True\n",
    )
    .expect("sockstat");
    std::fs::write(collectors.join("VMStatCollector.conf"), "enabled = False\n").expect("vmstat");
    std::fs::write(
        handlers.join("GraphiteHandler.conf"),
        "port = 2103\nproto = udp\n",
    )
    .expect("graphite");
    let out = d.join("out");
    let o = migrate(
        &out,
        &["diamond", d.join("diamond.conf").to_str().expect("utf-8")],
    );
    let merged = check(&out);
    for want in [
        "host = \"graphite.example.org\"",
        "port = 2103",
        "proto = \"udp\"",
        "interval = 60",
    ] {
        assert!(merged.contains(want), "{want} not in\n{merged}");
    }
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("NetworkCollector eth1"), "{stderr}");
    let state = format!("state_dir = \"{}\"\n", d.join("s1").display());
    std::fs::write(out.join("carbyne.toml"), state).expect("state");
    let ours = agent_names(&out);

    // carbyne's names for the same collectors, unrenamed and unfiltered.
    let reference = d.join("reference.toml");
    std::fs::write(
        &reference,
        format!(
            "hostname = \"h\"\nstate_dir = \"{}\"\n[collectors.cpu]\npercore = false\n{}",
            d.join("s2").display(),
            [
                "diskspace",
                "diskusage",
                "network",
                "tcp",
                "udp",
                "entropy",
                "uptime",
                "vmstat",
                "mountstats",
                "filestat",
                "pressure",
                "proc",
            ]
            .iter()
            .map(|c| format!("[collectors.{c}]\nenabled = false\n"))
            .collect::<String>()
        ),
    )
    .expect("reference");
    let whitelist = regex::Regex::new("^(?:0[15])").expect("re");
    let blacklist = regex::Regex::new("^(?:Vmalloc.*|Swap.*)").expect("re");
    let want: std::collections::BTreeSet<String> = agent_names(&reference)
        .into_iter()
        .filter_map(|n| {
            let rest = n.strip_prefix("servers.h.")?;
            let (path, rel) = rest.split_once('.')?;
            let keep = match path {
                "loadavg" => whitelist.is_match(rel),
                "memory" => !blacklist.is_match(rel),
                "cpu" | "sockets" => true,
                _ => false,
            };
            let path = if path == "loadavg" { "load" } else { path };
            keep.then(|| format!("systems.web01.dc1.{path}.{rel}"))
        })
        .collect();
    assert_eq!(ours, want);
    assert!(
        ours.iter()
            .any(|n| n.starts_with("systems.web01.dc1.sockets.")),
        "{ours:?}"
    );
    assert!(
        ours.iter().any(|n| n == "systems.web01.dc1.load.01"),
        "{ours:?}"
    );
}

#[test]
fn force_replaces_an_earlier_run_and_two_migrations_never_share_a_handler() {
    let dir = tempfile::tempdir().expect("dir");
    let d = dir.path();
    let conf = d.join("diamond.conf");
    let write = |collectors: &str| {
        std::fs::write(
            &conf,
            format!(
                "[server]\nhandlers = diamond.handler.graphite.GraphiteHandler\n[handlers]\n[[GraphiteHandler]]\nhost = g1\n[collectors]\n{collectors}"
            ),
        )
        .expect("diamond.conf")
    };
    write("[[CPUCollector]]\nenabled = True\n[[MemoryCollector]]\nenabled = True\n");
    let out = d.join("out");
    migrate(&out, &["diamond", conf.to_str().expect("utf-8")]);
    assert!(out.join("conf.d/50-memory.toml").exists());
    // Memory no longer runs: --force takes away the file the first run wrote.
    write("[[CPUCollector]]\nenabled = True\n");
    migrate(&out, &["--force", "diamond", conf.to_str().expect("utf-8")]);
    assert!(!out.join("conf.d/50-memory.toml").exists());
    assert!(!check(&out).contains("[collectors.memory]\nenabled = true"));

    // A logster migration into the same folder would take over Diamond's
    // [handlers.graphite]: refused, naming the file.
    let cron = d.join("crontab");
    std::fs::write(
        &cron,
        format!(
            "* * * * * logster -o graphite --graphite-host g2:2003 PostfixLogster {}\n",
            d.join("mail.log").display()
        ),
    )
    .expect("crontab");
    let o = bin()
        .args(["migrate", "--output"])
        .arg(&out)
        .arg("logster")
        .arg(&cron)
        .output()
        .expect("migrate");
    assert!(!o.status.success());
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(stderr.contains("50-graphite.toml"), "{stderr}");
    assert!(stderr.contains("[handlers.graphite]"), "{stderr}");
}
