//! mountstats: per-NFS-mount statistics from `/proc/self/mountstats`, per
//! second, as Diamond's MountStatsCollector:
//! `mountstats.<mnt>.events.*`, `.bytes.*`, `.xprt.<tcp|udp|rdma>.*` and
//! `.rpc.<op>.{ops,rtt,exe}`, where `<mnt>` is the mount point with `/` and
//! `.` as `_`. Every operation of the per-op table is reported (Diamond
//! listed a fixed set and missed the NFSv4.1 ones).
//!
//! For Prometheus, node_exporter 1.5's mountstats families from the same
//! reading (`node_mountstats_nfs_*{export,protocol,mountaddr}`, raw
//! counters, times in seconds), `mountaddr` being the `addr=` option of the
//! mount's line in `/proc/self/mountinfo`; a mount of the same export,
//! protocol and address as one before it is left out, as node_exporter does.

use super::{read, regex_list, CollectError, Collector, Emit};
use crate::config::{Config, ConfigError};
use crate::sample::Family;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// `[collectors.mountstats]` options.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MountStatsConfig {
    /// Regexes (matched at the start of the mount point); matching mounts are skipped.
    pub exclude_filters: Vec<String>,
    /// Regexes; when set, only matching mounts are reported (wins over exclude).
    pub include_filters: Vec<String>,
}

/// The `events:` counters, by position.
pub const EVENTS: [&str; 23] = [
    "inoderevalidates",
    "dentryrevalidates",
    "datainvalidates",
    "attrinvalidates",
    "syncinodes",
    "vfsopen",
    "vfslookup",
    "vfspermission",
    "vfsreadpage",
    "vfsreadpages",
    "vfswritepage",
    "vfswritepages",
    "vfsreaddir",
    "vfsflush",
    "vfsfsync",
    "vfsflock",
    "vfsrelease",
    "setattrtrunc",
    "extendwrite",
    "sillyrenames",
    "shortreads",
    "shortwrites",
    "delay",
];

/// The `bytes:` counters, by position.
pub const BYTES: [&str; 8] = [
    "normalreadbytes",
    "normalwritebytes",
    "directreadbytes",
    "directwritebytes",
    "serverreadbytes",
    "serverwritebytes",
    "readpages",
    "writepages",
];

/// The `xprt:` counters per transport, by position after the transport name.
pub fn xprt_fields(proto: &str) -> Option<&'static [&'static str]> {
    // TCP has the first nine of RDMA's.
    const RDMA: [&str; 19] = [
        "port",
        "bind_count",
        "connect_count",
        "connect_time",
        "idle_time",
        "rpcsends",
        "rpcreceives",
        "badxids",
        "backlogutil",
        "read_chunks",
        "write_chunks",
        "reply_chunks",
        "total_rdma_req",
        "total_dma_rep",
        "pullup",
        "fixup",
        "hardway",
        "failed_marshal",
        "bad_reply",
    ];
    const UDP: [&str; 6] = [
        "port",
        "bind_count",
        "rpcsends",
        "rpcreceives",
        "badxids",
        "backlogutil",
    ];
    match proto {
        "tcp" => Some(&RDMA[..9]),
        "udp" => Some(&UDP),
        "rdma" => Some(&RDMA),
        _ => None,
    }
}

/// One counter of one mount: (`<mnt>.<group>.<name>`, raw value).
pub type Counter = (String, u64);

/// Parses a mountstats text into the counters of the mounts `keep` accepts.
pub fn parse(text: &str, keep: impl Fn(&str) -> bool) -> Vec<Counter> {
    let mut out = Vec::new();
    let mut mount: Option<String> = None;
    let mut in_ops = false;
    for line in text.lines() {
        let mut tokens = line.split_ascii_whitespace();
        let Some(first) = tokens.next() else { continue };
        if first == "device" {
            in_ops = false;
            // device SRC mounted on MOUNTPOINT with fstype TYPE ...
            let mp = tokens.nth(3);
            mount = mp
                .filter(|mp| keep(mp))
                .map(|mp| mp.replace(['.', '/'], "_"));
            continue;
        }
        let Some(m) = &mount else { continue };
        let nums = |it: std::str::SplitAsciiWhitespace<'_>| -> Vec<u64> {
            it.map_while(|t| t.parse::<u64>().ok()).collect()
        };
        match first {
            "events:" => {
                for (name, v) in EVENTS.iter().zip(nums(tokens)) {
                    out.push((format!("{m}.events.{name}"), v));
                }
            }
            "bytes:" => {
                for (name, v) in BYTES.iter().zip(nums(tokens)) {
                    out.push((format!("{m}.bytes.{name}"), v));
                }
            }
            "xprt:" => {
                let Some(proto) = tokens.next() else { continue };
                let Some(fields) = xprt_fields(proto) else {
                    continue;
                };
                for (name, v) in fields.iter().zip(nums(tokens)) {
                    out.push((format!("{m}.xprt.{proto}.{name}"), v));
                }
            }
            "per-op" => in_ops = true,
            op if in_ops && op.ends_with(':') => {
                // OP: ops trans timeouts bytes_sent bytes_recv queue rtt execute [errors]
                let v = nums(tokens);
                if v.len() < 8 {
                    continue;
                }
                let op = op.trim_end_matches(':').to_ascii_lowercase();
                out.push((format!("{m}.rpc.{op}.ops"), v[0]));
                out.push((format!("{m}.rpc.{op}.rtt"), v[6]));
                out.push((format!("{m}.rpc.{op}.exe"), v[7]));
            }
            _ => {}
        }
    }
    out
}

/// node_exporter's families of the `bytes:` counters, by position.
const BYTE_FAMILIES: [Family; 8] = [
    Family::counter(
        "node_mountstats_nfs_read_bytes_total",
        "Number of bytes read using the read() syscall.",
    ),
    Family::counter(
        "node_mountstats_nfs_write_bytes_total",
        "Number of bytes written using the write() syscall.",
    ),
    Family::counter(
        "node_mountstats_nfs_direct_read_bytes_total",
        "Number of bytes read using the read() syscall in O_DIRECT mode.",
    ),
    Family::counter(
        "node_mountstats_nfs_direct_write_bytes_total",
        "Number of bytes written using the write() syscall in O_DIRECT mode.",
    ),
    Family::counter(
        "node_mountstats_nfs_total_read_bytes_total",
        "Number of bytes read from the NFS server, in total.",
    ),
    Family::counter(
        "node_mountstats_nfs_total_write_bytes_total",
        "Number of bytes written to the NFS server, in total.",
    ),
    Family::counter(
        "node_mountstats_nfs_read_pages_total",
        "Number of pages read directly via mmap()'d files.",
    ),
    Family::counter(
        "node_mountstats_nfs_write_pages_total",
        "Number of pages written directly via mmap()'d files.",
    ),
];

/// node_exporter's families of the `events:` counters, by position (the
/// 19th, congestion waits, has none).
const EVENT_FAMILIES: [Option<Family>; 27] = {
    const fn e(name: &'static str, help: &'static str) -> Option<Family> {
        Some(Family::counter(name, help))
    }
    [
        e("node_mountstats_nfs_event_inode_revalidate_total", "Number of times cached inode attributes are re-validated from the server."),
        e("node_mountstats_nfs_event_dnode_revalidate_total", "Number of times cached dentry nodes are re-validated from the server."),
        e("node_mountstats_nfs_event_data_invalidate_total", "Number of times an inode cache is cleared."),
        e("node_mountstats_nfs_event_attribute_invalidate_total", "Number of times cached inode attributes are invalidated."),
        e("node_mountstats_nfs_event_vfs_open_total", "Number of times files or directories have been opened."),
        e("node_mountstats_nfs_event_vfs_lookup_total", "Number of times a directory lookup has occurred."),
        e("node_mountstats_nfs_event_vfs_access_total", "Number of times permissions have been checked."),
        e("node_mountstats_nfs_event_vfs_update_page_total", "Number of updates (and potential writes) to pages."),
        e("node_mountstats_nfs_event_vfs_read_page_total", "Number of pages read directly via mmap()'d files."),
        e("node_mountstats_nfs_event_vfs_read_pages_total", "Number of times a group of pages have been read."),
        e("node_mountstats_nfs_event_vfs_write_page_total", "Number of pages written directly via mmap()'d files."),
        e("node_mountstats_nfs_event_vfs_write_pages_total", "Number of times a group of pages have been written."),
        e("node_mountstats_nfs_event_vfs_getdents_total", "Number of times directory entries have been read with getdents()."),
        e("node_mountstats_nfs_event_vfs_setattr_total", "Number of times file attributes have been set."),
        e("node_mountstats_nfs_event_vfs_flush_total", "Number of pending writes that have been forcefully flushed to the server."),
        e("node_mountstats_nfs_event_vfs_fsync_total", "Number of times fsync() has been called on directories and files."),
        e("node_mountstats_nfs_event_vfs_lock_total", "Number of times locking has been attempted on a file."),
        e("node_mountstats_nfs_event_vfs_file_release_total", "Number of times files have been closed and released."),
        None,
        e("node_mountstats_nfs_event_truncation_total", "Number of times files have been truncated."),
        e("node_mountstats_nfs_event_write_extension_total", "Number of times a file has been grown due to writes beyond its existing end."),
        e("node_mountstats_nfs_event_silly_rename_total", "Number of times a file was removed while still open by another process."),
        e("node_mountstats_nfs_event_short_read_total", "Number of times the NFS server gave less data than expected while reading."),
        e("node_mountstats_nfs_event_short_write_total", "Number of times the NFS server wrote less data than expected while writing."),
        e("node_mountstats_nfs_event_jukebox_delay_total", "Number of times the NFS server indicated EJUKEBOX; retrieving data from offline storage."),
        e("node_mountstats_nfs_event_pnfs_read_total", "Number of NFS v4.1+ pNFS reads."),
        e("node_mountstats_nfs_event_pnfs_write_total", "Number of NFS v4.1+ pNFS writes."),
    ]
};

const AGE: Family = Family::counter(
    "node_mountstats_nfs_age_seconds_total",
    "The age of the NFS mount in seconds.",
);

/// The transport families, by position in [`NfsMount::xprt`].
const XPRT_FAMILIES: [Family; 10] = [
    Family::counter("node_mountstats_nfs_transport_bind_total", "Number of times the client has had to establish a connection from scratch to the NFS server."),
    Family::counter("node_mountstats_nfs_transport_connect_total", "Number of times the client has made a TCP connection to the NFS server."),
    Family::gauge("node_mountstats_nfs_transport_idle_time_seconds", "Duration since the NFS mount last saw any RPC traffic, in seconds."),
    Family::counter("node_mountstats_nfs_transport_sends_total", "Number of RPC requests for this mount sent to the NFS server."),
    Family::counter("node_mountstats_nfs_transport_receives_total", "Number of RPC responses for this mount received from the NFS server."),
    Family::counter("node_mountstats_nfs_transport_bad_transaction_ids_total", "Number of times the NFS server sent a response with a transaction ID unknown to this client."),
    Family::counter("node_mountstats_nfs_transport_backlog_queue_total", "Total number of items added to the RPC backlog queue."),
    Family::gauge("node_mountstats_nfs_transport_maximum_rpc_slots", "Maximum number of simultaneously active RPC requests ever used."),
    Family::counter("node_mountstats_nfs_transport_sending_queue_total", "Total number of items added to the RPC transmission sending queue."),
    Family::counter("node_mountstats_nfs_transport_pending_queue_total", "Total number of items added to the RPC transmission pending queue."),
];

/// The per-operation families, by position in an operation's line (the
/// last three are milliseconds, given in seconds).
const OP_FAMILIES: [Family; 8] = [
    Family::counter("node_mountstats_nfs_operations_requests_total", "Number of requests performed for a given operation."),
    Family::counter("node_mountstats_nfs_operations_transmissions_total", "Number of times an actual RPC request has been transmitted for a given operation."),
    Family::counter("node_mountstats_nfs_operations_major_timeouts_total", "Number of times a request has had a major timeout for a given operation."),
    Family::counter("node_mountstats_nfs_operations_sent_bytes_total", "Number of bytes sent for a given operation, including RPC headers and payload."),
    Family::counter("node_mountstats_nfs_operations_received_bytes_total", "Number of bytes received for a given operation, including RPC headers and payload."),
    Family::counter("node_mountstats_nfs_operations_queue_time_seconds_total", "Duration all requests spent queued for transmission for a given operation before they were sent, in seconds."),
    Family::counter("node_mountstats_nfs_operations_response_time_seconds_total", "Duration all requests took to get a reply back after a request for a given operation was transmitted, in seconds."),
    Family::counter("node_mountstats_nfs_operations_request_time_seconds_total", "Duration all requests took from when a request was enqueued to when it was completely handled for a given operation, in seconds."),
];

/// One NFS mount's statistics as node_exporter reads them.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct NfsMount {
    pub export: String,
    /// The `xprt:` line's transport ("" without one).
    pub protocol: String,
    /// The `addr=` option of the mount's line in mountinfo ("" without).
    pub mountaddr: String,
    pub age: u64,
    pub bytes: Vec<u64>,
    pub events: Vec<u64>,
    /// bind, connect, idle time, sends, receives, bad transaction ids,
    /// backlog, maximum slots, sending queue, pending queue (UDP has no
    /// connect or idle time: 0; statistics version 1.0 has no last three).
    pub xprt: [u64; 10],
    /// Each operation's eight counters.
    pub ops: Vec<(String, [u64; 8])>,
}

/// The `addr=` option of the `n`th line of a mountinfo text.
fn mount_addr(mountinfo: &str, n: usize) -> String {
    mountinfo
        .lines()
        .nth(n)
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|opts| opts.split(',').find_map(|o| o.strip_prefix("addr=")))
        .unwrap_or_default()
        .to_string()
}

/// The `xprt:` counters in [`NfsMount::xprt`]'s order, from the numbers
/// after the transport name.
fn xprt(proto: &str, v: &[u64]) -> Option<[u64; 10]> {
    let at = |i: usize| v.get(i).copied().unwrap_or(0);
    match (proto, v.len()) {
        // port bind connect connect_idle idle sends recvs bad_xids active backlog [max sending pending]
        ("tcp", 10 | 13) => Some([
            at(1),
            at(2),
            at(4),
            at(5),
            at(6),
            at(7),
            at(9),
            at(10),
            at(11),
            at(12),
        ]),
        // port bind sends recvs bad_xids active backlog [max sending pending]
        ("udp", 7 | 10) => Some([at(1), 0, 0, at(2), at(3), at(4), at(6), at(7), at(8), at(9)]),
        _ => None,
    }
}

/// The NFS mounts (`nfs`, `nfs4`, with statistics) of a mountstats text
/// whose mount point `keep` accepts, with their `mountinfo` addresses.
pub fn nfs_mounts(text: &str, mountinfo: &str, keep: impl Fn(&str) -> bool) -> Vec<NfsMount> {
    let mut out: Vec<NfsMount> = Vec::new();
    let mut cur: Option<NfsMount> = None;
    let mut in_ops = false;
    let mut devices = 0;
    let finish = |m: Option<NfsMount>, out: &mut Vec<NfsMount>| {
        if let Some(m) = m {
            let dup = out.iter().any(|o| {
                (&o.export, &o.protocol, &o.mountaddr) == (&m.export, &m.protocol, &m.mountaddr)
            });
            if !dup {
                out.push(m);
            }
        }
    };
    for line in text.lines() {
        let tokens: Vec<&str> = line.split_ascii_whitespace().collect();
        let Some(&first) = tokens.first() else {
            in_ops = false;
            continue;
        };
        if first == "device" {
            finish(cur.take(), &mut out);
            in_ops = false;
            devices += 1;
            // device SRC mounted on MOUNTPOINT with fstype TYPE statvers=X
            let nfs = tokens.len() > 8
                && matches!(tokens.get(7), Some(&"nfs" | &"nfs4"))
                && tokens.get(4).is_some_and(|mp| keep(mp));
            if nfs {
                cur = Some(NfsMount {
                    export: tokens[1].to_string(),
                    mountaddr: mount_addr(mountinfo, devices - 1),
                    ..Default::default()
                });
            }
            continue;
        }
        let Some(m) = cur.as_mut() else { continue };
        let nums: Vec<u64> = tokens[1..]
            .iter()
            .map_while(|t| t.parse::<u64>().ok())
            .collect();
        match first {
            "age:" => m.age = nums.first().copied().unwrap_or(0),
            "bytes:" => m.bytes = nums,
            "events:" => m.events = nums,
            "xprt:" => {
                let proto = tokens.get(1).copied().unwrap_or_default();
                let nums: Vec<u64> = tokens
                    .get(2..)
                    .unwrap_or_default()
                    .iter()
                    .map_while(|t| t.parse::<u64>().ok())
                    .collect();
                if let Some(x) = xprt(proto, &nums) {
                    m.protocol = proto.to_string();
                    m.xprt = x;
                }
            }
            "per-op" => in_ops = true,
            op if in_ops && op.ends_with(':') && nums.len() >= 8 => {
                let mut v = [0u64; 8];
                v.copy_from_slice(&nums[..8]);
                m.ops.push((op.trim_end_matches(':').to_string(), v));
            }
            _ => {}
        }
    }
    finish(cur, &mut out);
    out
}

/// Emits node_exporter's families of `mounts`.
fn emit_series(out: &mut Emit, mounts: &[NfsMount]) {
    for m in mounts {
        let labels = || {
            vec![
                ("export", m.export.clone()),
                ("protocol", m.protocol.clone()),
                ("mountaddr", m.mountaddr.clone()),
            ]
        };
        out.series(&AGE, labels(), m.age as f64);
        for (f, v) in BYTE_FAMILIES.iter().zip(&m.bytes) {
            out.series(f, labels(), *v as f64);
        }
        for (f, v) in EVENT_FAMILIES.iter().zip(&m.events) {
            if let Some(f) = f {
                out.series(f, labels(), *v as f64);
            }
        }
        for (f, v) in XPRT_FAMILIES.iter().zip(m.xprt) {
            // The exporters' float conversion keeps 53 bits.
            out.series(f, labels(), (v % (1 << 53)) as f64);
        }
        for (op, v) in &m.ops {
            for (i, f) in OP_FAMILIES.iter().enumerate() {
                let value = match i {
                    5..=7 => (v[i] % (1 << 53)) as f64 / 1000.0,
                    _ => v[i] as f64,
                };
                let mut l = labels();
                l.push(("operation", op.clone()));
                out.series(f, l, value);
            }
        }
    }
}

pub struct MountStats {
    exclude: Option<regex::Regex>,
    include: Option<regex::Regex>,
    file: PathBuf,
    mountinfo: PathBuf,
    buf: String,
}

impl MountStats {
    pub fn new(opts: &MountStatsConfig, cfg: &Config) -> Result<Self, ConfigError> {
        Ok(MountStats {
            exclude: regex_list(
                "collectors.mountstats.exclude_filters",
                &opts.exclude_filters,
                true,
            )?,
            include: regex_list(
                "collectors.mountstats.include_filters",
                &opts.include_filters,
                true,
            )?,
            file: cfg.proc_root.join("self/mountstats"),
            mountinfo: cfg.proc_root.join("self/mountinfo"),
            buf: String::new(),
        })
    }

    fn collect_from(&self, buf: &mut String, out: &mut Emit) -> Result<(), CollectError> {
        let text = read(&self.file, buf)?;
        for (name, raw) in parse(text, |mp| self.keep(mp)) {
            out.rate(&name, raw);
        }
        if out.wants_series() {
            // Without mountinfo the addresses are "", as node_exporter's.
            let mut info = String::new();
            let info = read(&self.mountinfo, &mut info).unwrap_or_default();
            emit_series(out, &nfs_mounts(text, info, |mp| self.keep(mp)));
        }
        Ok(())
    }

    fn keep(&self, mount_point: &str) -> bool {
        match (&self.include, &self.exclude) {
            (Some(inc), _) => inc.is_match(mount_point),
            (None, Some(exc)) => !exc.is_match(mount_point),
            (None, None) => true,
        }
    }
}

impl Collector for MountStats {
    fn native_series(&self) -> bool {
        true
    }

    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        let mut buf = std::mem::take(&mut self.buf);
        let done = self.collect_from(&mut buf, out);
        self.buf = buf;
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{fixture, two_runs, values};

    fn run(opts: MountStatsConfig) -> std::collections::BTreeMap<String, f64> {
        let mut c = MountStats::new(&opts, &Config::default()).expect("config");
        let (first, second) = two_runs(&mut c, 10.0, |c, i| {
            c.file = fixture(if i == 0 {
                "proc/server-a/self/mountstats"
            } else {
                "proc/server-b/self/mountstats"
            });
        });
        // Rates need two readings (the first gives only Prometheus's raw counters).
        assert!(values(&first).is_empty());
        values(&second)
    }

    #[test]
    fn nfs4_over_tcp_worked_by_hand() {
        let v = run(MountStatsConfig::default());
        // 10 s apart: 100 more inode revalidations, 10 MiB more read, 5 MiB
        // more written, 1000 more RPC sends, 100 more READs taking 500 ms
        // more round trip and 600 ms more in all.
        assert_eq!(v["_mnt_projects.events.inoderevalidates"], 10.0);
        assert_eq!(v["_mnt_projects.events.dentryrevalidates"], 0.0);
        assert_eq!(v["_mnt_projects.bytes.normalreadbytes"], 1_048_576.0);
        assert_eq!(v["_mnt_projects.bytes.normalwritebytes"], 524_288.0);
        assert_eq!(v["_mnt_projects.bytes.serverreadbytes"], 1_048_576.0);
        assert_eq!(v["_mnt_projects.xprt.tcp.rpcsends"], 100.0);
        assert_eq!(v["_mnt_projects.xprt.tcp.backlogutil"], 0.0);
        assert_eq!(v["_mnt_projects.rpc.read.ops"], 10.0);
        assert_eq!(v["_mnt_projects.rpc.read.rtt"], 50.0);
        assert_eq!(v["_mnt_projects.rpc.read.exe"], 60.0);
        assert_eq!(v["_mnt_projects.rpc.sequence.ops"], 0.0);
        assert_eq!(v["_mnt_projects.rpc.getattr.ops"], 0.0);
        let tcp = v
            .keys()
            .filter(|k| k.starts_with("_mnt_projects.xprt.tcp."))
            .count();
        assert_eq!(tcp, 9);
        let events = v
            .keys()
            .filter(|k| k.starts_with("_mnt_projects.events."))
            .count();
        assert_eq!(events, 23);
    }

    #[test]
    fn nfs3_over_udp_and_names() {
        let v = run(MountStatsConfig::default());
        assert_eq!(v["_mnt_backup_old.rpc.getattr.ops"], 2.0);
        assert_eq!(v["_mnt_backup_old.xprt.udp.rpcsends"], 0.0);
        assert_eq!(
            v.keys()
                .filter(|k| k.starts_with("_mnt_backup_old.xprt.udp."))
                .count(),
            6
        );
        assert!(!v
            .keys()
            .any(|k| k.starts_with("_proc") || k.starts_with("_run")));
    }

    #[test]
    fn include_and_exclude() {
        let v = run(MountStatsConfig {
            exclude_filters: vec!["/mnt/backup".into()],
            ..Default::default()
        });
        assert!(!v.keys().any(|k| k.starts_with("_mnt_backup_old")));
        assert!(v.keys().any(|k| k.starts_with("_mnt_projects")));
        let v = run(MountStatsConfig {
            include_filters: vec!["/mnt/backup".into()],
            exclude_filters: vec!["/mnt/backup".into()],
        });
        assert!(
            v.keys().all(|k| k.starts_with("_mnt_backup_old")),
            "include wins"
        );
    }

    #[test]
    fn nfs_mounts_as_node_exporter_reads_them() {
        let text = std::fs::read_to_string(fixture("proc/nfs/1/mountstats")).expect("fixture");
        let info = std::fs::read_to_string(fixture("proc/nfs/1/mountinfo")).expect("fixture");
        let m = nfs_mounts(&text, &info, |_| true);
        // The second mount of fileserver:/export/projects is left out.
        let ids: Vec<(&str, &str, &str)> = m
            .iter()
            .map(|m| (m.export.as_str(), m.protocol.as_str(), m.mountaddr.as_str()))
            .collect();
        assert_eq!(
            ids,
            [
                ("fileserver:/export/projects", "tcp", "192.0.2.10"),
                ("nas:/vol/backup", "udp", "192.0.2.9"),
                ("oldbox:/home", "tcp", "198.51.100.7"),
            ]
        );
        assert_eq!(m[0].age, 86410);
        assert_eq!(m[0].xprt, [1, 2, 15, 99765, 98760, 5, 0, 32, 4567, 1234]);
        // UDP: no connect or idle time.
        assert_eq!(m[1].xprt, [0, 0, 0, 500, 500, 0, 0, 0, 0, 0]);
        // Statistics 1.0: no slots or queues.
        assert_eq!(m[2].xprt, [2, 3, 5, 600, 599, 1, 7, 0, 0, 0]);
        assert_eq!(
            m[2].ops[0],
            (
                "GETATTR".into(),
                [500, 501, 1, 64000, 56000, 2500, 1234567, 1240000]
            )
        );
        assert_eq!(m[0].events.len(), 27);
        // Without mountinfo, or filtered out.
        assert_eq!(nfs_mounts(&text, "", |_| true)[0].mountaddr, "");
        // The first mount filtered out, its twin is reported.
        let kept = nfs_mounts(&text, &info, |mp| mp != "/mnt/projects");
        assert_eq!(kept.len(), 3);
        assert!(kept
            .iter()
            .any(|m| m.export == "fileserver:/export/projects" && m.age == 5));
    }

    #[test]
    fn garbage_does_not_panic() {
        let c = parse("device\nevents: x y\n\tper-op statistics\nREAD: 1 2\ndevice a mounted on /m with fstype nfs\nevents: 1 2 z 4\nxprt: sctp 1 2\nxprt:\n", |_| true);
        assert_eq!(
            c,
            vec![
                ("_m.events.inoderevalidates".to_string(), 1),
                ("_m.events.dentryrevalidates".to_string(), 2)
            ]
        );
        let m = nfs_mounts("device a mounted on /m with fstype nfs statvers=1.1\nxprt: tcp 1\nxprt:\nper-op\nREAD: 1 2\nevents: 1 x\n\n\ndevice\ndevice b mounted on\n", "", |_| true);
        assert_eq!(m.len(), 1);
        assert_eq!(
            (m[0].protocol.as_str(), m[0].events.as_slice()),
            ("", &[1][..])
        );
    }
}
