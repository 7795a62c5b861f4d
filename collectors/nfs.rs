//! nfs: the NFS client's RPC counts from `/proc/net/rpc/nfs`, per second,
//! as Diamond's NfsCollector: `nfs.net.{packets,udpcnt,tcpcnt,tcpconn}`,
//! `nfs.rpc.{calls,retrans,authrefrsh}`, `nfs.v2.<op>`, `nfs.v3.<op>` and
//! `nfs.v4.<op>`. Nothing is sent on a host that is no NFS client.

use super::{read_optional, CollectError, Collector, Emit, Missing};
use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.nfs]` has only the common keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NfsConfig {}

/// A line of the file by its first word: the names of its counts in order
/// (`skip`: leading counts not named, such as the procN lines' count of
/// the counts that follow).
pub struct Line {
    pub tag: &'static str,
    pub prefix: &'static str,
    pub skip: usize,
    pub names: &'static [&'static str],
}

pub const V2: &[&str] = &[
    "null", "getattr", "setattr", "root", "lookup", "readlink", "read", "wrcache", "write",
    "create", "remove", "rename", "link", "symlink", "mkdir", "rmdir", "readdir", "fsstat",
];

pub const V3: &[&str] = &[
    "null",
    "getattr",
    "setattr",
    "lookup",
    "access",
    "readlink",
    "read",
    "write",
    "create",
    "mkdir",
    "symlink",
    "mknod",
    "remove",
    "rmdir",
    "rename",
    "link",
    "readdir",
    "readdirplus",
    "fsstat",
    "fsinfo",
    "pathconf",
    "commit",
];

/// Diamond's names for the client's NFSv4 operations; a later kernel's
/// further operations are not sent.
pub const V4: &[&str] = &[
    "null",
    "read",
    "write",
    "commit",
    "open",
    "open_conf",
    "open_noat",
    "open_dgrd",
    "close",
    "setattr",
    "fsinfo",
    "renew",
    "setclntid",
    "confirm",
    "lock",
    "lockt",
    "locku",
    "access",
    "getattr",
    "lookup",
    "lookup_root",
    "remove",
    "rename",
    "link",
    "symlink",
    "create",
    "pathconf",
    "statfs",
    "readlink",
    "readdir",
    "server_caps",
    "delegreturn",
    "getacl",
    "setacl",
    "fs_locations",
    "rel_lkowner",
    "exchange_id",
    "create_ses",
    "destroy_ses",
    "sequence",
    "get_lease_t",
    "reclaim_comp",
    "layoutget",
    "layoutcommit",
    "layoutreturn",
    "getdevlist",
    "getdevinfo",
    "ds_write",
    "ds_commit",
];

pub const LINES: &[Line] = &[
    Line {
        tag: "net",
        prefix: "net",
        skip: 0,
        names: &["packets", "udpcnt", "tcpcnt", "tcpconn"],
    },
    Line {
        tag: "rpc",
        prefix: "rpc",
        skip: 0,
        names: &["calls", "retrans", "authrefrsh"],
    },
    Line {
        tag: "proc2",
        prefix: "v2",
        skip: 1,
        names: V2,
    },
    Line {
        tag: "proc3",
        prefix: "v3",
        skip: 1,
        names: V3,
    },
    Line {
        tag: "proc4",
        prefix: "v4",
        skip: 1,
        names: V4,
    },
];

/// `(metric, count)` for each named count of the lines `lines` describes;
/// counts that are not numbers are skipped, and so are lines shorter than
/// their names (what they have is sent). Fractions (the server's thread
/// times) are cut to whole units, as Diamond does.
pub fn counts<'a>(text: &'a str, lines: &'a [Line]) -> impl Iterator<Item = (String, u64)> + 'a {
    text.lines().flat_map(move |l| {
        let mut words = l.split_ascii_whitespace();
        let tag = words.next().unwrap_or("");
        // No Vec of the words: they are zipped with the names as they come.
        lines
            .iter()
            .find(|d| d.tag == tag)
            .map(|d| {
                d.names
                    .iter()
                    .zip(words.skip(d.skip))
                    .filter_map(move |(name, v)| {
                        let v: f64 = v.parse().ok()?;
                        (v.is_finite() && v >= 0.0)
                            .then(|| (format!("{}.{name}", d.prefix), v as u64))
                    })
            })
            .into_iter()
            .flatten()
    })
}

pub struct Nfs {
    file: PathBuf,
    missing: Missing,
    buf: String,
}

impl Nfs {
    pub fn new(_opts: &NfsConfig, cfg: &Config) -> Self {
        Nfs {
            file: cfg.proc_root.join("net/rpc/nfs"),
            missing: Missing::default(),
            buf: String::new(),
        }
    }
}

impl Collector for Nfs {
    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let Some(text) = read_optional(&self.file, &mut self.buf, &mut self.missing)? else {
            return Ok(());
        };
        for (name, raw) in counts(text, LINES) {
            out.rate(&name, raw);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{two_runs, values};

    const RHEL6_1: &str = "net 0 0 0 0\nrpc 1214576 0 1214592\n\
        proc2 18 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
        proc3 22 0 187892 93582 26708 133407 0 93437 236074 23541 1968 0 0 45 0 56 0 0 90 417770 2 1 0\n\
        proc4 48 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
    const RHEL6_2: &str = "net 0 0 0 0\nrpc 1214608 0 1214624\n\
        proc2 18 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
        proc3 22 0 187899 93583 26708 133413 0 93437 236075 23541 1968 0 0 45 0 56 0 0 90 417787 2 1 0\n\
        proc4 48 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";

    #[test]
    fn diamonds_rhel6_case_per_second() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut c = Nfs::new(&NfsConfig {}, &Config::default());
        c.file = d.path().join("nfs");
        let file = c.file.clone();
        let (first, second) = two_runs(&mut c, 1.0, |_, i| {
            std::fs::write(&file, if i == 0 { RHEL6_1 } else { RHEL6_2 }).expect("write");
        });
        assert!(first.is_empty());
        let v = values(&second);
        // Diamond's test at interval 1: the differences.
        assert_eq!(v["rpc.calls"], 32.0);
        assert_eq!(v["rpc.authrefrsh"], 32.0);
        assert_eq!(v["rpc.retrans"], 0.0);
        assert_eq!(v["v3.getattr"], 7.0);
        assert_eq!(v["v3.setattr"], 1.0);
        assert_eq!(v["v3.access"], 6.0);
        assert_eq!(v["v3.write"], 1.0);
        assert_eq!(v["v3.fsstat"], 17.0);
        assert_eq!(v["v3.null"], 0.0);
        assert_eq!(v["v4.ds_write"], 0.0);
        assert!(!v.contains_key("v4.ds_commit"), "48 counts: up to ds_write");
        assert_eq!(v.len(), 4 + 3 + 18 + 22 + 48);
    }

    #[test]
    fn short_and_odd_lines() {
        let got: Vec<_> = counts("proc3 22 1 2\nrpc x 5\nother 1 2\n", LINES).collect();
        assert_eq!(
            got,
            [
                ("v3.null".to_string(), 1),
                ("v3.getattr".to_string(), 2),
                ("rpc.retrans".to_string(), 5)
            ]
        );
        let mut c = Nfs::new(&NfsConfig {}, &Config::default());
        c.file = PathBuf::from("/nonexistent/nfs");
        let (first, second) = two_runs(&mut c, 1.0, |_, _| {});
        assert!(first.is_empty() && second.is_empty());
    }
}
