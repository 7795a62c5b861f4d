//! netstat: TCP connections by state from `/proc/net/tcp` and
//! `/proc/net/tcp6`, as Diamond's NetstatCollector: `netstat.<STATE>` for
//! each of the 11 states (`ESTABLISHED`, `SYN_SENT`, `SYN_RECV`,
//! `FIN_WAIT1`, `FIN_WAIT2`, `TIME_WAIT`, `CLOSE`, `CLOSE_WAIT`,
//! `LAST_ACK`, `LISTEN`, `CLOSING`), zeros included. Diamond counts IPv4
//! only; carbyne adds IPv6's. The files are read a line at a time, so a
//! host with a million sockets costs time, not memory. Off by default, as
//! in Diamond.

use super::{CollectError, Collector, Emit, Missing};
use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::io::BufRead;
use std::path::PathBuf;

/// `[collectors.netstat]` has only the common keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NetstatConfig {}

/// The states by their code in the `st` column (1 to 11).
pub const STATES: [&str; 11] = [
    "ESTABLISHED",
    "SYN_SENT",
    "SYN_RECV",
    "FIN_WAIT1",
    "FIN_WAIT2",
    "TIME_WAIT",
    "CLOSE",
    "CLOSE_WAIT",
    "LAST_ACK",
    "LISTEN",
    "CLOSING",
];

/// The index into [`STATES`] of one socket line (`sl local rem st ...`);
/// None for the header and unknown codes.
pub fn state(line: &str) -> Option<usize> {
    let st = line.split_ascii_whitespace().nth(3)?;
    let code = u8::from_str_radix(st, 16).ok()?;
    (1..=11).contains(&code).then(|| usize::from(code) - 1)
}

pub struct Netstat {
    files: [PathBuf; 2],
    missing: [Missing; 2],
    line: String,
}

impl Netstat {
    pub fn new(_opts: &NetstatConfig, cfg: &Config) -> Self {
        Netstat {
            files: [
                cfg.proc_root.join("net/tcp"),
                cfg.proc_root.join("net/tcp6"),
            ],
            missing: Default::default(),
            line: String::new(),
        }
    }

    /// Adds the states of one file into `counts`; false when it is not there.
    fn count(&mut self, i: usize, counts: &mut [u64; 11]) -> Result<bool, CollectError> {
        let path = &self.files[i];
        let io = |source| CollectError::Io {
            path: path.clone(),
            source,
        };
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                self.missing[i].note(path);
                return Ok(false);
            }
            Err(e) => return Err(io(e)),
        };
        let mut r = std::io::BufReader::with_capacity(64 * 1024, file);
        loop {
            self.line.clear();
            if r.read_line(&mut self.line).map_err(io)? == 0 {
                return Ok(true);
            }
            if let Some(s) = state(&self.line) {
                counts[s] += 1;
            }
        }
    }
}

impl Collector for Netstat {
    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let mut counts = [0u64; 11];
        let v4 = self.count(0, &mut counts)?;
        let v6 = self.count(1, &mut counts)?;
        if v4 || v6 {
            for (name, n) in STATES.iter().zip(counts) {
                out.gauge(name, n as f64);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{two_runs, values};

    const HEADER: &str = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n";

    fn line(st: &str) -> String {
        format!("   0: 0100007F:0019 00000000:0000 {st} 00000000:00000000 00:00000000 00000000     0        0 3806422273 1 ffff8802477e4440 99 0 0 10 -1\n")
    }

    #[test]
    fn every_state_counted_ipv4_and_ipv6() {
        let d = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(d.path().join("net")).expect("mkdir");
        let v4 = format!(
            "{HEADER}{}{}{}{}",
            line("0A"),
            line("0A"),
            line("01"),
            line("0C")
        );
        let v6 = format!("{HEADER}{}{}", line("06"), line("0A"));
        std::fs::write(d.path().join("net/tcp"), v4).expect("write");
        std::fs::write(d.path().join("net/tcp6"), v6).expect("write");
        let cfg = Config {
            proc_root: d.path().to_path_buf(),
            ..Config::default()
        };
        let mut c = Netstat::new(&NetstatConfig {}, &cfg);
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        let v = values(&first);
        assert_eq!(v["LISTEN"], 3.0);
        assert_eq!(v["ESTABLISHED"], 1.0);
        assert_eq!(v["TIME_WAIT"], 1.0);
        assert_eq!(v["CLOSING"], 0.0, "zeros are sent");
        assert_eq!(v.len(), 11, "an unknown code (0C) is not counted");
    }

    #[test]
    fn this_hosts_sockets() {
        let mut c = Netstat::new(&NetstatConfig {}, &Config::default());
        let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        assert!(values(&first)["LISTEN"] >= 1.0);
        drop(l);
        c.files = [
            PathBuf::from("/nonexistent/tcp"),
            PathBuf::from("/nonexistent/tcp6"),
        ];
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        assert!(first.is_empty());
        assert_eq!(state(HEADER), None);
    }
}
