//! The command line: help and version, `config check`, bad configurations
//! (exit 2 with file, key and what was expected), `--dry-run` output, and
//! the example drop-ins in conf.d/.

mod common;

use common::*;

fn stderr(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_on_every_subcommand_and_version() {
    for args in [
        vec!["--help"],
        vec!["agent", "--help"],
        vec!["config", "--help"],
        vec!["config", "check", "--help"],
    ] {
        let o = run(&args);
        assert!(o.status.success(), "{args:?}");
        assert!(
            String::from_utf8_lossy(&o.stdout).contains("Usage: carbyne"),
            "{args:?}"
        );
    }
    let o = run(&["--version"]);
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        format!("carbyne {}", env!("CARGO_PKG_VERSION"))
    );
}

fn bad_config(dropin: &str) -> (String, Option<i32>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_dir(dir.path(), "proc/t0", "");
    std::fs::create_dir(dir.path().join("conf.d")).expect("mkdir");
    std::fs::write(dir.path().join("conf.d/50-bad.toml"), dropin).expect("write");
    let o = run(&[
        "agent",
        "--once",
        "--dry-run",
        "--config",
        cfg.to_str().expect("path"),
    ]);
    assert!(o.stdout.is_empty(), "nothing runs on a bad config");
    let c = run(&["config", "check", "--config", cfg.to_str().expect("path")]);
    assert_eq!(c.status.code(), Some(2));
    (stderr(&o), o.status.code())
}

#[test]
fn unknown_key_is_rejected_with_file_line_and_key() {
    let (err, code) = bad_config("[collectors.cpu]\npercore = true\npercor = false\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("50-bad.toml"), "{err}");
    assert!(err.contains("line 3: key `collectors.cpu.percor`"), "{err}");
    assert!(err.contains("unknown field `percor`"), "{err}");
}

#[test]
fn bad_regex_is_rejected_naming_the_key() {
    let (err, code) = bad_config("[collectors.diskusage]\ndevices = \"sd[a-z\"\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("50-bad.toml"), "{err}");
    assert!(err.contains("collectors.diskusage.devices"), "{err}");
    assert!(err.contains("invalid regex"), "{err}");
}

#[test]
fn bad_type_is_rejected_with_what_was_expected() {
    let (err, code) = bad_config("interval = true\n");
    assert_eq!(code, Some(2));
    assert!(
        err.contains("50-bad.toml") && err.contains("interval"),
        "{err}"
    );
    assert!(err.contains("expected seconds"), "{err}");
    // A duration it cannot read says what it takes.
    let (err, code) = bad_config("interval = \"ten\"\n");
    assert_eq!(code, Some(2));
    assert!(err.contains("\"10s\", \"1m\""), "{err}");
}

#[test]
fn bad_handler_settings_are_rejected() {
    let (err, _) = bad_config("[handlers.graphite]\nproto = \"sctp\"\n");
    assert!(
        err.contains("handlers.graphite") && err.contains("sctp"),
        "{err}"
    );
    let (err, _) = bad_config("[handlers.graphite]\nport = 70000\n");
    assert!(
        err.contains("handlers.graphite") && err.contains("port"),
        "{err}"
    );
    let (err, _) = bad_config("[handlers.second]\nhost = \"10.0.0.1\"\n");
    assert!(err.contains("handlers.second.type"), "{err}");
    let (err, _) = bad_config("[handlers.x]\ntype = \"carrier-pigeon\"\n");
    assert!(err.contains("unknown handler type"), "{err}");
}

#[test]
fn missing_config_file_is_an_error() {
    let o = run(&["config", "check", "--config", "/nonexistent/carbyne.toml"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("/nonexistent/carbyne.toml"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn config_check_prints_the_merged_effective_config() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_dir(dir.path(), "proc/t0", "interval = 30\n");
    std::fs::create_dir(dir.path().join("conf.d")).expect("mkdir");
    std::fs::write(
        dir.path().join("conf.d/10-cpu.toml"),
        "[collectors.cpu]\npercore = false\n[handlers.backup]\ntype = \"graphite\"\nhost = \"192.0.2.1\"\n",
    )
    .expect("write");
    let o = run(&["config", "check", "--config", cfg.to_str().expect("path")]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    let v: toml::Table = toml::from_str(&text).expect("config check prints TOML");
    assert_eq!(v["interval"].as_integer(), Some(30));
    assert_eq!(v["collectors"]["cpu"]["percore"].as_bool(), Some(false));
    assert_eq!(v["collectors"]["memory"]["detailed"].as_bool(), Some(false));
    let backup = &v["handlers"]["backup"];
    assert_eq!(backup["host"].as_str(), Some("192.0.2.1"));
    assert_eq!(
        backup["port"].as_integer(),
        Some(2003),
        "defaults filled in"
    );
}

#[test]
fn the_repository_conf_d_checks_clean() {
    let o = run(&[
        "config",
        "check",
        "--config",
        repo("conf.d").to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn dry_run_prints_plaintext_and_sends_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A handler pointing at a closed port: dry-run must not even try it.
    let cfg = config_dir(
        dir.path(),
        "proc/t0",
        &format!("[handlers.graphite]\nport = {}\n", free_port()),
    );
    let o = run(&[
        "agent",
        "--once",
        "--dry-run",
        "--config",
        cfg.to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines = parse_lines(&String::from_utf8_lossy(&o.stdout));
    assert!(lines.len() > 40);
    assert!(lines
        .iter()
        .all(|(n, _, _)| n.starts_with("servers.testhost.")));
    assert!(lines
        .iter()
        .any(|(n, _, _)| n == "servers.testhost.loadavg.15_normalized"));
}

#[test]
fn collector_path_and_filters_shape_the_names() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config_dir(
        dir.path(),
        "proc/t0",
        "path_prefix = \"hosts\"\npath_suffix = \"dc1\"\nself_metrics = false\n\
         [collectors.memory]\npath = \"mem\"\nmetrics_whitelist = \"Mem\"\n\
         [collectors.loadavg]\nmetrics_blacklist = \".*normalized\"\n",
    );
    let o = run(&[
        "agent",
        "--once",
        "--dry-run",
        "--config",
        cfg.to_str().expect("path"),
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let names: Vec<String> = parse_lines(&String::from_utf8_lossy(&o.stdout))
        .into_iter()
        .map(|(n, _, _)| n)
        .collect();
    let mem: Vec<&String> = names.iter().filter(|n| n.contains(".mem.")).collect();
    assert_eq!(mem.len(), 4, "{mem:?}"); // MemTotal, MemFree, MemAvailable, MemUsedPercentage
    assert!(mem
        .iter()
        .all(|n| n.starts_with("hosts.testhost.dc1.mem.Mem")));
    assert!(names.iter().any(|n| n == "hosts.testhost.dc1.loadavg.01"));
    assert!(!names.iter().any(|n| n.contains("normalized")));
}

/// Every example drop-in parses to exactly the built-in defaults and shows
/// every key of its section (set, or commented out when it has no default).
#[test]
fn conf_d_examples_show_every_key_with_its_default() {
    use carbyne::config::{check_file, Config};
    let defaults = Config::default();
    let default_toml: toml::Table =
        toml::from_str(&carbyne::cli::effective_toml(&defaults).expect("toml")).expect("parse");
    let mut seen = 0;
    for entry in std::fs::read_dir(repo("conf.d")).expect("conf.d") {
        let path = entry.expect("entry").path();
        let text = std::fs::read_to_string(&path).expect("read");
        let cfg = check_file(&path).unwrap_or_else(|e| panic!("{e}"));
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .expect("name")
            .to_string();
        let (keys, _) = if let Some(kind) = stem.strip_prefix("server-") {
            // Shipped commented out: uncommented, it is the defaults (but
            // for the example paths and destinations, which have none).
            let on: String = text
                .lines()
                .map(|l| match l.strip_prefix("# ") {
                    Some(rest)
                        if rest.starts_with("[server")
                            || rest.split_once(" = ").is_some_and(|(k, _)| {
                                k.chars().all(|c| c.is_ascii_lowercase() || c == '_')
                            }) =>
                    {
                        rest
                    }
                    _ => l,
                })
                .map(|l| format!("{l}\n"))
                .collect();
            let mine: toml::Table = toml::from_str(&on).expect("toml");
            let section = mine["server"][kind].as_table().expect("section").clone();
            let want = match kind {
                "statsd" => {
                    toml::Table::try_from(carbyne::server::statsd::StatsdServerConfig::default())
                }
                "web" => toml::Table::try_from(carbyne::server::web::WebServerConfig::default()),
                _ => toml::Table::try_from(carbyne::server::carbon::CarbonServerConfig::default()),
            }
            .expect("defaults");
            let relay =
                toml::Table::try_from(carbyne::server::carbon::relay::RelayConfig::default())
                    .expect("relay");
            let mut keys: Vec<String> = want.keys().cloned().collect();
            for (k, v) in &section {
                match (k.as_str(), v.as_table()) {
                    ("relay", Some(r)) => {
                        for (k, v) in r {
                            if k != "destinations" && k != "rules" {
                                assert_eq!(relay.get(k), Some(v), "{}: relay.{k}", path.display());
                            }
                        }
                        keys.extend(r.keys().cloned());
                        keys.extend(relay.keys().cloned());
                    }
                    (
                        "schemas" | "aggregation" | "whitelist" | "blacklist" | "rewrite_rules"
                        | "aggregation_rules",
                        _,
                    ) => keys.push(k.clone()),
                    ("storage_dir", _) if kind == "web" => keys.push(k.clone()),
                    _ => assert_eq!(
                        want.get(k),
                        Some(v),
                        "{}: {k} is not the default",
                        path.display()
                    ),
                }
            }
            assert!(
                carbyne::config::Config::default().server.statsd.is_none(),
                "receivers are off by default"
            );
            (keys, ())
        } else if let Some((name, section)) = cfg.logs.iter().next() {
            assert_eq!(name, &stem, "{} is named after its parser", path.display());
            assert_eq!(section.options.name(), stem);
            let want = carbyne::logs::LogCommon {
                file: section.common.file.clone(),
                enabled: section.common.enabled,
                ..Default::default()
            };
            assert_eq!(
                section.common,
                want,
                "{}: a key is not the default",
                path.display()
            );
            let mut keys: Vec<String> =
                <carbyne::logs::LogCommon as carbyne::config::CommonKeys>::KEYS
                    .iter()
                    .map(|k| k.to_string())
                    .collect();
            keys.extend(
                toml::Table::try_from(&section.options)
                    .expect("table")
                    .keys()
                    .cloned(),
            );
            (keys, ())
        } else if let Some((name, table)) = cfg.handlers.iter().next() {
            assert_eq!(name, &stem, "{} is named after its handler", path.display());
            let spec = carbyne::handlers::HandlerConfig::resolve_all(&cfg.handlers, false)
                .expect("resolve")
                .remove(0);
            let full = spec.to_table().expect("table");
            for (k, v) in table {
                if k != "enabled" && k != "url" {
                    assert_eq!(
                        full.get(k),
                        Some(v),
                        "{}: {k} is not the default",
                        path.display()
                    );
                }
            }
            (full.keys().cloned().collect::<Vec<_>>(), ())
        } else {
            let mine: toml::Table = toml::from_str(&text).expect("toml");
            let section = &mine["collectors"][stem.as_str()];
            let want = &default_toml["collectors"][stem.as_str()];
            let want = want.as_table().expect("table");
            // `enabled` is unset in the defaults: the example shows what
            // the collector does without it.
            let on = !carbyne::collectors::OFF_BY_DEFAULT.contains(&stem.as_str());
            assert_eq!(
                section.get("enabled").and_then(|v| v.as_bool()),
                Some(on),
                "{}: enabled",
                path.display()
            );
            for (k, v) in section
                .as_table()
                .expect("table")
                .iter()
                .filter(|(k, _)| *k != "enabled")
            {
                assert_eq!(
                    want.get(k),
                    Some(v),
                    "{}: {k} is not the default",
                    path.display()
                );
            }
            let mut keys: Vec<String> = want.keys().cloned().collect();
            keys.extend(
                ["interval", "path", "metrics_whitelist", "metrics_blacklist"].map(String::from),
            );
            (keys, ())
        };
        for k in keys {
            assert!(
                text.contains(&format!("\n{k} = ")) || text.contains(&format!("\n# {k} = ")),
                "{} does not show `{k}`",
                path.display()
            );
        }
        seen += 1;
    }
    assert_eq!(
        seen, 40,
        "twenty-five collectors, eight handlers, four parsers, two receivers, the web server"
    );
}

/// The files the server reads are read by `config check` too, and before
/// the server listens: a bad retention or a missing file exits 2, naming
/// the file (and line), with no port opened.
#[test]
fn config_check_reads_the_servers_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    let schemas = dir.path().join("storage-schemas.conf");
    let (line, udp, admin) = (free_port(), free_port(), free_port());
    let cfg = dir.path().join("c.toml");
    std::fs::write(
        &cfg,
        format!(
            "[server.carbon]\ncache_query_listen = \"\"\nlisten = \"127.0.0.1:{line}\"\npickle_listen = \"\"\n\
             storage_dir = {:?}\nschemas = {schemas:?}\n\
             [server.statsd]\nlisten = \"127.0.0.1:{udp}\"\nadmin = \"127.0.0.1:{admin}\"\n",
            dir.path().join("whisper")
        ),
    )
    .expect("config");
    let c = cfg.to_str().expect("path");
    let o = run(&["config", "check", "--config", c]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert!(
        err.contains("storage-schemas.conf: key `server.carbon.schemas`: cannot read"),
        "{err}"
    );
    std::fs::write(&schemas, "[a]\npattern = .*\nretentions = 5x:6h\n").expect("schemas");
    let o = run(&["config", "check", "--config", c]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("storage-schemas.conf: line 3: key `server.carbon.schemas`"),
        "{}",
        stderr(&o)
    );
    let o = run(&["server", "--config", c]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(std::net::TcpStream::connect(("127.0.0.1", admin)).is_err());
    std::fs::write(&schemas, "[a]\npattern = .*\nretentions = 10s:6h\n").expect("schemas");
    assert!(run(&["config", "check", "--config", c]).status.success());
}

/// The release build's function ordering names functions without crate
/// hashes or thin LTO's suffixes, so its list holds from build to build.
#[test]
fn ordering_names_drop_crate_hashes_and_lto_suffixes() {
    use std::io::Write;
    let mut child = std::process::Command::new("bash")
        .arg(repo("packaging/order-functions.sh"))
        .arg("--names")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("bash");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(b"_RNvCsjrHSEGnQ3l9_3std4main.llvm.12345\n_RNvNtCs1234_7carbyne9scheduler3run\n")
        .expect("write");
    let out = child.wait_with_output().expect("order-functions.sh");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "std::main\ncarbyne::scheduler::run\n"
    );
    // Every name in the list is one such name, once, sorted.
    let list = std::fs::read_to_string(repo("packaging/agent-functions.txt")).expect("list");
    let names: Vec<&str> = list.lines().collect();
    assert!(names.len() > 100, "{} names", names.len());
    assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted, no repeats");
    assert!(names
        .iter()
        .all(|n| !n.contains(".llvm.") && !n.starts_with("_R")));
}
