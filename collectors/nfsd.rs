//! nfsd: the NFS server's counts from `/proc/net/rpc/nfsd`, per second, as
//! Diamond's NfsdCollector: `nfsd.reply_cache.*`, `nfsd.filehandle.*`,
//! `nfsd.input_output.*`, `nfsd.threads.*`, `nfsd.read-ahead.*`,
//! `nfsd.net.*`, `nfsd.rpc.*`, `nfsd.v2.<op>`, `nfsd.v3.<op>`,
//! `nfsd.v4.<op>` and `nfsd.v4.ops.<op>` (each `unknown` is the line's
//! count of counts, as Diamond sends it). Nothing is sent on a host that
//! is no NFS server.

use super::nfs::{counts, Line, V2, V3};
use super::{read_optional, CollectError, Collector, Emit, Missing};
use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.nfsd]` has only the common keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NfsdConfig {}

const V4_OPS: &[&str] = &[
    "unknown",
    "op0-unused",
    "op1-unused",
    "op2-future",
    "access",
    "close",
    "commit",
    "create",
    "delegpurge",
    "delegreturn",
    "getattr",
    "getfh",
    "link",
    "lock",
    "lockt",
    "locku",
    "lookup",
    "lookup_root",
    "nverify",
    "open",
    "openattr",
    "open_conf",
    "open_dgrd",
    "putfh",
    "putpubfh",
    "putrootfh",
    "read",
    "readdir",
    "readlink",
    "remove",
    "rename",
    "renew",
    "restorefh",
    "savefh",
    "secinfo",
    "setattr",
    "setcltid",
    "setcltidconf",
    "verify",
    "write",
    "rellockowner",
];

/// The server's lines. Its procN lines keep their count column (as
/// `unknown`), unlike the client's.
fn lines() -> [Line; 11] {
    // `unknown` then the client's names.
    const V2_ALL: [&str; 19] = with_unknown::<19>(V2);
    const V3_ALL: [&str; 23] = with_unknown::<23>(V3);
    [
        Line {
            tag: "rc",
            prefix: "reply_cache",
            skip: 0,
            names: &["hits", "misses", "nocache"],
        },
        Line {
            tag: "fh",
            prefix: "filehandle",
            skip: 0,
            names: &[
                "stale",
                "total-lookups",
                "anonlookups",
                "dir-not-in-cache",
                "nodir-not-in-cache",
            ],
        },
        Line {
            tag: "io",
            prefix: "input_output",
            skip: 0,
            names: &["bytes-read", "bytes-written"],
        },
        Line {
            tag: "th",
            prefix: "threads",
            skip: 0,
            names: &[
                "threads",
                "fullcnt",
                "10-20-pct",
                "20-30-pct",
                "30-40-pct",
                "40-50-pct",
                "50-60-pct",
                "60-70-pct",
                "70-80-pct",
                "80-90-pct",
                "90-100-pct",
                "100-pct",
            ],
        },
        Line {
            tag: "ra",
            prefix: "read-ahead",
            skip: 0,
            names: &[
                "cache-size",
                "10-pct",
                "20-pct",
                "30-pct",
                "40-pct",
                "50-pct",
                "60-pct",
                "70-pct",
                "80-pct",
                "90-pct",
                "100-pct",
                "not-found",
            ],
        },
        Line {
            tag: "net",
            prefix: "net",
            skip: 0,
            names: &["cnt", "udpcnt", "tcpcnt", "tcpconn"],
        },
        // The kernel's five: calls, bad calls (the three after summed),
        // bad format, bad auth, bad client.
        Line {
            tag: "rpc",
            prefix: "rpc",
            skip: 0,
            names: &["cnt", "badcnt", "badfmt", "badauth", "badclnt"],
        },
        Line {
            tag: "proc2",
            prefix: "v2",
            skip: 0,
            names: &V2_ALL,
        },
        Line {
            tag: "proc3",
            prefix: "v3",
            skip: 0,
            names: &V3_ALL,
        },
        Line {
            tag: "proc4",
            prefix: "v4",
            skip: 0,
            names: &["unknown", "null", "compound"],
        },
        Line {
            tag: "proc4ops",
            prefix: "v4.ops",
            skip: 0,
            names: V4_OPS,
        },
    ]
}

/// `["unknown", names...]`.
const fn with_unknown<const N: usize>(names: &[&'static str]) -> [&'static str; N] {
    let mut out = ["unknown"; N];
    let mut i = 1;
    while i < N && i - 1 < names.len() {
        out[i] = names[i - 1];
        i += 1;
    }
    out
}

pub struct Nfsd {
    file: PathBuf,
    lines: [Line; 11],
    missing: Missing,
    buf: String,
}

impl Nfsd {
    pub fn new(_opts: &NfsdConfig, cfg: &Config) -> Self {
        Nfsd {
            file: cfg.proc_root.join("net/rpc/nfsd"),
            lines: lines(),
            missing: Missing::default(),
            buf: String::new(),
        }
    }
}

impl Collector for Nfsd {
    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let Some(text) = read_optional(&self.file, &mut self.buf, &mut self.missing)? else {
            return Ok(());
        };
        for (name, raw) in counts(text, &self.lines) {
            out.rate(&name, raw);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{two_runs, values};

    const ZERO: &str = "rc 0 0 0\nfh 0 0 0 0 0\nio 0 0\n\
        th 0 0 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000 0.000\n\
        ra 0 0 0 0 0 0 0 0 0 0 0 0\nnet 0 0 0 0\nrpc 0 0 0 0 0\n\
        proc2 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
        proc3 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\nproc4 0 0 0\n\
        proc4ops 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n";
    const BUSY: &str = "rc 0 71080 14491982\nfh 0 0 0 0 0\nio 3139369493 15691669\n\
        th 8 1324492 22163.787 8448.718 1642.101 0.000 5072.760 1210.985 3889.516 2654.306 0.000 22111.454\n\
        ra 32 8751152 0 0 0 0 0 0 0 0 0 18612\nnet 14564086 0 14562696 30773\n\
        rpc 14563007 0 0 0 0\n\
        proc2 18 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n\
        proc3 22 8 724974 0 213165 136921 0 8761683 67937 1655 0 0 0 1488 0 0 0 11295 132298 34450 11 0 635\n\
        proc4 2 18 4476320\n\
        proc4ops 40 0 0 0 2083822 34801 3955 0 0 0 2302848 51791 0 0 0 0 68501 0 0 34847 0 29002 0 4435270 0 6237 8030 272 0 7802 0 28594 34839 34847 0 7870 6226 6227 0 76562 0\n";

    #[test]
    fn diamonds_case_per_second() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut c = Nfsd::new(&NfsdConfig {}, &Config::default());
        c.file = d.path().join("nfsd");
        let file = c.file.clone();
        let (first, second) = two_runs(&mut c, 1.0, |_, i| {
            std::fs::write(&file, if i == 0 { ZERO } else { BUSY }).expect("write");
        });
        assert!(first.is_empty());
        let v = values(&second);
        // Diamond's test at interval 1 (its names without the leading dot).
        for (name, want) in [
            ("input_output.bytes-read", 3_139_369_493.0),
            ("net.tcpconn", 30_773.0),
            ("read-ahead.not-found", 18_612.0),
            ("reply_cache.nocache", 14_491_982.0),
            ("rpc.cnt", 14_563_007.0),
            ("threads.threads", 8.0),
            ("threads.10-20-pct", 22_163.0),
            ("threads.100-pct", 22_111.0),
            ("v2.unknown", 18.0),
            ("v3.unknown", 22.0),
            ("v3.null", 8.0),
            ("v3.getattr", 724_974.0),
            ("v3.commit", 635.0),
            ("v4.unknown", 2.0),
            ("v4.compound", 4_476_320.0),
            ("v4.ops.unknown", 40.0),
            ("v4.ops.access", 2_083_822.0),
            ("v4.ops.putfh", 4_435_270.0),
            ("v4.ops.write", 76_562.0),
            ("v4.ops.rellockowner", 0.0),
        ] {
            assert_eq!(v[name], want, "{name}");
        }
        assert_eq!(v.len(), 3 + 5 + 2 + 12 + 12 + 4 + 5 + 19 + 23 + 3 + 41);
    }
}
