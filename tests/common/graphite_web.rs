//! graphite-web 1.1.10 (PyPI) as the differential tests run it: in-process
//! through Django's test client (tests/peers/graphite_web.py), or served
//! over HTTP for a cluster; carbyne's web server beside it; answers
//! compared.

use super::*;
use serde_json::Value;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};

/// Runs a Python `script` that makes whisper files under `dir` with
/// Python's whisper and prints the `now` they end at.
pub fn make_with_python(script: &str, dir: &Path) -> i64 {
    let out = Command::new("python3")
        .args(["-c", script, &dir.to_string_lossy()])
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "making whisper files failed (whisper 1.1.10 is installed by tests/run.sh): {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .expect("now")
}

/// graphite-web in-process, answering one request per line.
pub struct GraphiteWeb {
    child: Child,
    out: BufReader<std::process::ChildStdout>,
}

impl GraphiteWeb {
    pub fn start(whisper: &Path) -> Self {
        Self::start_with(whisper, &[])
    }

    /// With CARBONLINK_HOSTS (`host:port:instance`).
    pub fn start_with(whisper: &Path, carbonlink: &[String]) -> Self {
        Self::start_env(whisper, carbonlink, &[])
    }

    /// With the harness's environment settings (GRAPHITE_CLUSTER_SERVERS,
    /// GRAPHITE_SERVE).
    pub fn start_env(whisper: &Path, carbonlink: &[String], env: &[(&str, String)]) -> Self {
        let script = repo("tests/peers/graphite_web.py");
        let mut child = Command::new("python3")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .arg(&script)
            .arg(whisper)
            .args(carbonlink)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("python3");
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut ready = String::new();
        out.read_line(&mut ready).expect("graphite-web starts");
        assert!(
            ready.contains("ready"),
            "graphite-web 1.1.10 did not start (tests/run.sh installs it): {ready}"
        );
        GraphiteWeb {
            child: Child(child),
            out,
        }
    }

    pub fn ask(&mut self, line: &Value) -> Value {
        let stdin = self.child.0.stdin.as_mut().expect("stdin");
        writeln!(stdin, "{line}").expect("write");
        stdin.flush().expect("flush");
        let mut answer = String::new();
        self.out.read_line(&mut answer).expect("read");
        serde_json::from_str(&answer).expect("json answer")
    }

    /// `(status, body)`.
    pub fn request(
        &mut self,
        method: &str,
        path: &str,
        params: &[(String, String)],
    ) -> (u16, Vec<u8>) {
        let a = self.ask(&serde_json::json!({"method": method, "path": path, "params": params}));
        let body = base64_decode(a["body"].as_str().unwrap_or(""));
        (a["status"].as_u64().unwrap_or(0) as u16, body)
    }

    pub fn unpickle(&mut self, body: &[u8]) -> Value {
        let a = self.ask(&serde_json::json!({ "unpickle": base64_encode(body) }));
        a["json"].clone()
    }
}

const B64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

pub fn base64_encode(b: &[u8]) -> String {
    let mut out = String::new();
    for chunk in b.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |a, (i, &c)| a | (c as u32) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(B64[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn base64_decode(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes() {
        let Some(v) = B64.iter().position(|&x| x == c) else {
            continue;
        };
        acc = acc << 6 | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

/// Values equal to 1e-9 relative (None, NaN and infinities exactly).
pub fn close(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) => x == y || (x - y).abs() <= 1e-9 * x.abs().max(y.abs()),
        _ => a == b,
    }
}

/// Two JSON answers alike: objects key by key, arrays item by item,
/// numbers by [`close`].
pub fn same(a: &Value, b: &Value, at: &str) -> Result<(), String> {
    match (a, b) {
        (Value::Array(x), Value::Array(y)) => {
            if x.len() != y.len() {
                return Err(format!(
                    "{at}: {} items, graphite-web has {}",
                    x.len(),
                    y.len()
                ));
            }
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                same(p, q, &format!("{at}[{i}]"))?;
            }
            Ok(())
        }
        (Value::Object(x), Value::Object(y)) => {
            let kx: Vec<&String> = x.keys().collect();
            let ky: Vec<&String> = y.keys().collect();
            let (mut sx, mut sy) = (kx.clone(), ky.clone());
            sx.sort();
            sy.sort();
            if sx != sy {
                return Err(format!("{at}: keys {sx:?}, graphite-web has {sy:?}"));
            }
            for k in kx {
                same(&x[k], &y[k], &format!("{at}.{k}"))?;
            }
            Ok(())
        }
        (p, q) if close(p, q) => Ok(()),
        (p, q) => Err(format!("{at}: {p} but graphite-web has {q}")),
    }
}

pub fn p(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn start_carbyne(dir: &Path, whisper: &Path, extra: &str) -> (Child, u16) {
    let port = free_port();
    let cfg = dir.join("carbyne.toml");
    std::fs::write(
        &cfg,
        format!(
            "state_dir = {:?}\n[server.web]\nlisten = \"127.0.0.1:{port}\"\nstorage_dir = {:?}\n{extra}",
            dir.join("state"),
            whisper
        ),
    )
    .expect("config");
    let child = bin()
        .args(["server", "--config"])
        .arg(&cfg)
        .stderr(Stdio::null())
        .spawn()
        .expect("carbyne server");
    wait_for_port(port);
    (Child(child), port)
}

/// carbyne's web server with a carbon receiver (plaintext TCP on a free
/// port, no pickle, UDP or cache query port) writing into `whisper`:
/// `(server, web port, line port)`, both listening.
pub fn start_carbyne_with_carbon(dir: &Path, whisper: &Path) -> (Child, u16, u16) {
    let line = free_port();
    let extra = format!(
        "[server.carbon]\nlisten = \"127.0.0.1:{line}\"\npickle_listen = \"\"\nudp = false\n\
         cache_query_listen = \"\"\nstorage_dir = {whisper:?}\ncarbon_metric_interval = 0\n"
    );
    let (server, port) = start_carbyne(dir, whisper, &extra);
    wait_for_port(line);
    (server, port, line)
}
