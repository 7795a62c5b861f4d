//! Prometheus's own programs in the tests: `promtool check metrics` as the
//! judge of an exposition, a real Prometheus 2.42 scraping targets, and
//! its query API. All are Debian's, installed by tests/run.sh.

use super::{free_port, Child};
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `promtool check metrics` on `text`: its exit code and what it said.
pub fn promtool(text: &str) -> (i32, String) {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool (tests/run.sh installs Debian's prometheus)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), said)
}

/// promtool's lints other than the two that names taken from elsewhere
/// (node_exporter's `node_memory_MemTotal_bytes`, a Graphite name ending in
/// `_total`) draw: camelCase, and a gauge whose name ends in `_total`.
pub fn lints(said: &str) -> Vec<&str> {
    said.lines()
        .filter(|l| !l.trim().is_empty())
        .filter(|l| {
            !l.contains("should be written in 'snake_case' not 'camelCase'")
                && !l.contains("non-counter metrics should not have \"_total\" suffix")
        })
        .collect()
}

/// `GET path` on 127.0.0.1:port with extra request header lines: the
/// response head and body.
pub fn get_with(port: u16, path: &str, headers: &str) -> Option<(String, Vec<u8>)> {
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(10))).ok()?;
    // HTTP/1.0: no chunked answer.
    write!(
        conn,
        "GET {path} HTTP/1.0\r\nHost: 127.0.0.1\r\n{headers}\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    conn.read_to_end(&mut raw).ok()?;
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    Some((
        String::from_utf8_lossy(&raw[..split]).into_owned(),
        raw[split + 4..].to_vec(),
    ))
}

/// `GET path` on 127.0.0.1:port, the body as text.
pub fn get(port: u16, path: &str) -> Option<String> {
    get_with(port, path, "").map(|(_, b)| String::from_utf8_lossy(&b).into_owned())
}

/// The result of an instant PromQL query on the Prometheus at `port`.
pub fn query(port: u16, promql: &str) -> Vec<serde_json::Value> {
    let q: String = form_urlencoded::byte_serialize(promql.as_bytes()).collect();
    get(port, &format!("/api/v1/query?query={q}"))
        .and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok())
        .and_then(|v| v["data"]["result"].as_array().cloned())
        .unwrap_or_default()
}

/// Asks `promql` until `done` says its result is complete (45 s at most);
/// the last result.
pub fn query_until(
    port: u16,
    promql: &str,
    done: impl Fn(&[serde_json::Value]) -> bool,
) -> Vec<serde_json::Value> {
    let start = Instant::now();
    loop {
        let found = query(port, promql);
        if done(&found) || start.elapsed() > Duration::from_secs(45) {
            return found;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A real Prometheus scraping `targets` (`host:port`, job `carbyne`) every
/// second, its data in `dir`; its HTTP port.
pub fn start_prometheus(dir: &Path, targets: &[String]) -> (Child, u16) {
    start_prometheus_with(dir, targets, &[], free_port())
}

/// [`start_prometheus`] with extra arguments, on `port`.
pub fn start_prometheus_with(
    dir: &Path,
    targets: &[String],
    args: &[&str],
    port: u16,
) -> (Child, u16) {
    let cfg = dir.join("prometheus.yml");
    let list: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    std::fs::write(
        &cfg,
        format!(
            "global: {{scrape_interval: 1s, scrape_timeout: 1s}}\n\
             scrape_configs:\n  - job_name: carbyne\n    static_configs: [{{targets: [{}]}}]\n",
            list.join(", ")
        ),
    )
    .expect("config");
    let child = Child(
        Command::new("prometheus")
            .args(args)
            .arg(format!("--config.file={}", cfg.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address=127.0.0.1:{port}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("prometheus (tests/run.sh installs Debian's prometheus)"),
    );
    (child, port)
}
