//! The disk buffer's files and state: segments of records, the `ack`
//! file, the window of records read back and the records a handler has
//! taken but not yet settled.

use super::record::{self, Damage};
use super::{Fsync, Spec, Status};
use crate::sample::Sample;
use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The first bytes of every segment file.
const MAGIC: &[u8; 8] = b"CBYNBUF1";

/// Records read back from disk at a time, at most, in bytes.
const READ_BYTES: usize = 4 << 20;

/// One segment file: records `first..first + count`.
#[derive(Debug)]
struct Segment {
    first: u64,
    count: u64,
    bytes: u64,
}

impl Segment {
    fn end(&self) -> u64 {
        self.first.saturating_add(self.count)
    }
}

/// Where the reader is: at record `seq`, byte `offset` of the segment
/// starting at `first`.
struct Reader {
    first: u64,
    seq: u64,
    file: std::io::BufReader<File>,
}

/// Why a buffer could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum BufferError {
    #[error("{0}: {1}")]
    Io(PathBuf, std::io::Error),
    #[error("{0}: in use by another carbyne process")]
    Busy(PathBuf),
}

/// An open disk buffer, owned by one handler (an exclusive lock on the
/// directory keeps other processes out).
pub struct Disk {
    spec: Spec,
    segment_bytes: u64,
    _lock: File,
    segments: VecDeque<Segment>,
    writer: Option<File>,
    next_seq: u64,
    /// Every record before this one is delivered (as the `ack` file says).
    acked: u64,
    /// The next record to read from disk.
    read_seq: u64,
    reader: Option<Reader>,
    /// Records read back or put back, not yet taken.
    window: VecDeque<(u64, Sample)>,
    /// Records taken by the handler, not yet settled, in order.
    in_flight: VecDeque<u64>,
    /// Records found at opening end before this one.
    replay_until: u64,
    replay_mark: u64,
    total_bytes: u64,
    last_sync: Instant,
    dirty: bool,
    ack_failing: bool,
    /// Records dropped to stay within `max_bytes` (the oldest).
    pub dropped: u64,
    /// Records delivered again after a restart.
    pub replayed: u64,
    /// What opening found damaged and cut off.
    pub damage: Vec<String>,
}

fn seg_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(format!("{first:020}.seg"))
}

/// The highest sequence number a segment may start at: far beyond what
/// any buffer reaches (a million records a second for 140 000 years), so
/// that counting on from it never overflows.
const MAX_SEQ: u64 = 1 << 62;

/// The segments of `dir`, ascending: regular files named `<seq>.seg`.
/// Other entries with that name are said in `damage` and left alone.
fn list(dir: &Path, damage: &mut Vec<String>) -> std::io::Result<Vec<(u64, PathBuf)>> {
    let mut out = Vec::new();
    let rd = match std::fs::read_dir(dir) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for e in rd {
        let e = e?;
        let name = e.file_name();
        let Some(n) = name.to_str().and_then(|n| n.strip_suffix(".seg")) else {
            continue;
        };
        let path = e.path();
        match n.parse::<u64>() {
            Ok(first) if first <= MAX_SEQ && e.file_type().is_ok_and(|t| t.is_file()) => {
                out.push((first, path))
            }
            _ => damage.push(format!(
                "{}: not a buffer segment; left alone",
                path.display()
            )),
        }
    }
    out.sort();
    Ok(out)
}

/// Moves a damaged file aside (`<name>.bad`), for a human to look at.
fn set_aside(path: &Path) -> String {
    let mut bad = path.as_os_str().to_owned();
    bad.push(".bad");
    match std::fs::rename(path, &bad) {
        Ok(()) => format!("moved to {}", Path::new(&bad).display()),
        Err(e) => format!("cannot move it aside: {e}"),
    }
}

/// Reads the `ack` file: the first record not yet delivered; `Err(None)`
/// when there is none, `Err(Some(why))` when it cannot be read.
fn read_ack(dir: &Path) -> Result<u64, Option<String>> {
    let b = match std::fs::read(dir.join("ack")) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(None),
        Err(e) => return Err(Some(e.to_string())),
    };
    if b.len() != 12 {
        return Err(Some("not an acknowledgement".into()));
    }
    let mut v = [0; 8];
    v.copy_from_slice(&b[..8]);
    let crc = u32::from_le_bytes([b[8], b[9], b[10], b[11]]);
    if crc32fast::hash(&v) != crc {
        return Err(Some("its checksum does not match".into()));
    }
    Ok(u64::from_le_bytes(v))
}

/// What a segment file holds.
#[derive(Debug, Default, PartialEq)]
struct Scan {
    /// Records, damaged ones included (each keeps its place).
    count: u64,
    /// Of them, those whose checksum does not match (skipped when read).
    damaged: u64,
    /// The bytes of whole records: where a torn or unreadable one starts.
    len: usize,
    /// What ended the records early, if anything.
    stop: Option<Damage>,
}

/// Reads a segment file's records: a record whose checksum does not match
/// (a flipped bit) is counted and passed over; a header that cannot be a
/// record (cut short, or a length beyond any sample) ends them.
fn scan(bytes: &[u8]) -> Scan {
    let mut sc = Scan::default();
    if bytes.len() < MAGIC.len() || &bytes[..MAGIC.len()] != MAGIC {
        sc.stop = Some(Damage::Malformed(0));
        return sc;
    }
    let mut at = MAGIC.len();
    loop {
        match record::frame(&bytes[at..]) {
            Ok(Some((len, _))) => {
                at += len;
                sc.count += 1;
            }
            Ok(None) => break,
            Err(Damage::Checksum(_)) => {
                let len =
                    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
                at += record::HEADER + len as usize;
                sc.count += 1;
                sc.damaged += 1;
            }
            Err(d) => {
                sc.stop = Some(match d {
                    Damage::Torn(o) => Damage::Torn(o + at),
                    Damage::Malformed(o) => Damage::Malformed(o + at),
                    Damage::Checksum(o) => Damage::Checksum(o + at),
                });
                break;
            }
        }
    }
    sc.len = at;
    sc
}

impl Disk {
    /// Opens (or creates) the buffer in `spec.dir`, waiting up to `wait`
    /// for another process to let go of it. A torn or damaged record cuts
    /// its segment there (said in [`Disk::damage`]).
    pub fn open(spec: &Spec, wait: Duration) -> Result<Disk, BufferError> {
        let dir = &spec.dir;
        let at = |p: PathBuf| move |e| BufferError::Io(p, e);
        if dir.exists() && !dir.is_dir() {
            return Err(BufferError::Io(
                dir.clone(),
                std::io::Error::new(std::io::ErrorKind::NotADirectory, "not a directory"),
            ));
        }
        std::fs::create_dir_all(dir).map_err(at(dir.clone()))?;
        let lock_path = dir.join("lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&lock_path)
            .map_err(at(lock_path.clone()))?;
        let until = Instant::now() + wait;
        loop {
            match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
                Ok(()) => break,
                Err(rustix::io::Errno::WOULDBLOCK) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(50));
                }
                Err(rustix::io::Errno::WOULDBLOCK) => return Err(BufferError::Busy(dir.clone())),
                Err(e) => return Err(BufferError::Io(lock_path, e.into())),
            }
        }
        let mut segments: VecDeque<Segment> = VecDeque::new();
        let mut damage = Vec::new();
        let mut total_bytes = 0;
        for (first, path) in list(dir, &mut damage).map_err(at(dir.clone()))? {
            let bytes = std::fs::read(&path).map_err(at(path.clone()))?;
            let sc = scan(&bytes);
            if sc.len == 0 || segments.back().is_some_and(|s| first < s.end()) {
                // Not a segment of ours, or one overlapping the one before.
                damage.push(format!(
                    "{}: not a buffer segment; {}",
                    path.display(),
                    set_aside(&path)
                ));
                continue;
            }
            if sc.damaged > 0 {
                damage.push(format!(
                    "{}: {} records whose checksum does not match; skipped",
                    path.display(),
                    sc.damaged
                ));
            }
            if let Some(d) = &sc.stop {
                damage.push(format!(
                    "{}: {d}; the {} bytes from there cut off",
                    path.display(),
                    bytes.len() - sc.len
                ));
                let f = OpenOptions::new()
                    .write(true)
                    .open(&path)
                    .map_err(at(path.clone()))?;
                f.set_len(sc.len as u64).map_err(at(path.clone()))?;
            }
            if sc.count == 0 {
                // Only a header: nothing to keep, and its name is the one
                // the next segment would take.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            total_bytes += sc.len as u64;
            segments.push_back(Segment {
                first,
                count: sc.count,
                bytes: sc.len as u64,
            });
        }
        let first = segments.front().map(|s| s.first);
        let end = segments.back().map(|s| s.end());
        let ack = match (read_ack(dir), first, end) {
            (Ok(a), Some(f), Some(e)) if a > e || a < f => {
                // Not one this buffer wrote (or its records were lost):
                // from the oldest, at least once.
                damage.push(format!(
                    "{}: acknowledges record {a}, outside the records held ({f}..{e}); delivering them all",
                    dir.join("ack").display()
                ));
                None
            }
            (Ok(a), _, _) => Some(a.min(MAX_SEQ)),
            (Err(Some(why)), _, _) => {
                damage.push(format!(
                    "{}: {why}; delivering every record held",
                    dir.join("ack").display()
                ));
                None
            }
            (Err(None), _, _) => None,
        };
        let next_seq = end.or(ack).unwrap_or(0);
        let acked = ack.unwrap_or(first.unwrap_or(next_seq));
        let mut disk = Disk {
            spec: spec.clone(),
            segment_bytes: (spec.max_bytes / 8).clamp(16 << 10, 16 << 20),
            _lock: lock,
            segments,
            writer: None,
            next_seq,
            acked,
            read_seq: acked,
            reader: None,
            window: VecDeque::new(),
            in_flight: VecDeque::new(),
            replay_until: next_seq,
            replay_mark: acked,
            total_bytes,
            last_sync: Instant::now(),
            dirty: false,
            ack_failing: false,
            dropped: 0,
            replayed: 0,
            damage,
        };
        disk.forget_settled();
        Ok(disk)
    }

    pub fn dir(&self) -> &Path {
        &self.spec.dir
    }

    /// Whether the buffer in `spec.dir` is free: an error when another
    /// process holds it.
    pub fn probe(spec: &Spec) -> Result<(), BufferError> {
        let dir = &spec.dir;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.join("lock"))
            .map_err(|e| BufferError::Io(dir.clone(), e))?;
        match rustix::fs::flock(&lock, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => Ok(()),
            Err(rustix::io::Errno::WOULDBLOCK) => Err(BufferError::Busy(dir.clone())),
            Err(e) => Err(BufferError::Io(dir.clone(), e.into())),
        }
    }

    /// Deletes every record, delivered or not: how many were waiting, and
    /// the bytes freed.
    pub fn discard(mut self) -> (u64, u64) {
        let (records, bytes) = (self.unsettled(), self.total_bytes);
        while !self.segments.is_empty() {
            if let Some(seg) = self.segments.pop_front() {
                let _ = std::fs::remove_file(seg_path(&self.spec.dir, seg.first));
            }
        }
        self.acked = self.next_seq;
        self.write_ack();
        (records, bytes)
    }

    /// Records waiting: not taken, or taken and put back.
    pub fn len(&self) -> u64 {
        self.window.len() as u64 + self.next_seq.saturating_sub(self.read_seq)
    }

    /// Records not yet settled (waiting or in flight).
    pub fn unsettled(&self) -> u64 {
        self.next_seq.saturating_sub(self.acked)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn bytes(&self) -> u64 {
        self.total_bytes
    }

    /// Appends `samples`; returns how many could not be written (the disk
    /// full, the directory gone), which are lost.
    pub fn push(&mut self, samples: &[Sample]) -> Result<(), String> {
        let mut buf = Vec::new();
        let mut n = 0u64;
        for s in samples {
            let before = buf.len();
            record::encode(s, &mut buf);
            if buf.len() - before > record::HEADER + record::MAX_PAYLOAD {
                buf.truncate(before);
                self.dropped += 1;
                continue;
            }
            n += 1;
        }
        if n == 0 {
            return Ok(());
        }
        // Within the bound: the oldest segments go first.
        let need = buf.len() as u64;
        if need + MAGIC.len() as u64 > self.spec.max_bytes {
            // A single append larger than the whole buffer: keep its newest.
            let (kept, skipped) = newest_within(&buf, self.spec.max_bytes / 2);
            self.dropped += skipped;
            n -= skipped;
            buf = kept;
        }
        while self.total_bytes + buf.len() as u64 > self.spec.max_bytes {
            if self.segments.len() <= 1 {
                if self.roll().is_err() {
                    break;
                }
                if self.segments.len() <= 1 {
                    break;
                }
            }
            self.drop_oldest();
        }
        if self.writer.is_none() || self.writer_bytes() >= self.segment_bytes {
            self.roll().map_err(|e| {
                format!("{}: {e}", seg_path(&self.spec.dir, self.next_seq).display())
            })?;
        }
        let path = seg_path(&self.spec.dir, self.segments.back().map_or(0, |s| s.first));
        let Some(w) = self.writer.as_mut() else {
            return Err(format!("{}: no segment open", self.spec.dir.display()));
        };
        if let Err(e) = w.write_all(&buf) {
            // Nothing written half: back to the last whole record.
            let len = self.segments.back().map(|s| s.bytes).unwrap_or(0);
            let _ = w.set_len(len);
            let _ = w.seek(SeekFrom::Start(len));
            return Err(format!("{}: {e}", path.display()));
        }
        if let Some(seg) = self.segments.back_mut() {
            seg.count += n;
            seg.bytes += buf.len() as u64;
        }
        self.total_bytes += buf.len() as u64;
        self.next_seq += n;
        self.dirty = true;
        self.sync(false);
        Ok(())
    }

    fn writer_bytes(&self) -> u64 {
        self.segments.back().map(|s| s.bytes).unwrap_or(0)
    }

    /// Syncs the writes since the last sync, as the policy says (`force`:
    /// now, unless the policy is never).
    fn sync(&mut self, force: bool) {
        let due = match self.spec.fsync {
            Fsync::Never => false,
            Fsync::Always => true,
            Fsync::Batch => force || self.last_sync.elapsed() >= Duration::from_secs(1),
        };
        if due && self.dirty {
            if let Some(w) = &self.writer {
                let _ = w.sync_data();
            }
            self.dirty = false;
            self.last_sync = Instant::now();
        }
    }

    /// Starts a new segment for appends.
    fn roll(&mut self) -> std::io::Result<()> {
        self.sync(true);
        if self.writer.is_some() && self.writer_bytes() <= MAGIC.len() as u64 {
            return Ok(()); // an empty segment is as good as a new one
        }
        let path = seg_path(&self.spec.dir, self.next_seq);
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&path)?;
        if let Err(e) = f.write_all(MAGIC) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        self.segments.push_back(Segment {
            first: self.next_seq,
            count: 0,
            bytes: MAGIC.len() as u64,
        });
        self.total_bytes += MAGIC.len() as u64;
        self.writer = Some(f);
        Ok(())
    }

    /// Deletes the oldest segment to make room; its records not yet
    /// taken are dropped and counted.
    fn drop_oldest(&mut self) {
        let Some(seg) = self.segments.pop_front() else {
            return;
        };
        let _ = std::fs::remove_file(seg_path(&self.spec.dir, seg.first));
        self.total_bytes = self.total_bytes.saturating_sub(seg.bytes);
        let end = seg.end();
        let unread = end.saturating_sub(self.read_seq.max(seg.first));
        let before = self.window.len();
        self.window.retain(|(seq, _)| *seq >= end);
        self.dropped += unread + (before - self.window.len()) as u64;
        self.acked = self.acked.max(end);
        self.read_seq = self.read_seq.max(end);
        self.replay_mark = self.replay_mark.max(end);
        if self.reader.as_ref().is_some_and(|r| r.first == seg.first) {
            self.reader = None;
        }
        if self.segments.is_empty() {
            self.writer = None;
        }
    }

    /// Takes up to `max` records in order: first those put back, then from
    /// disk. Those `keep` refuses are settled as they are passed over.
    pub fn take(&mut self, max: usize, keep: impl Fn(&Sample) -> bool) -> Vec<Sample> {
        let mut out = Vec::new();
        while out.len() < max {
            let Some((seq, s)) = self.window.pop_front() else {
                break;
            };
            if keep(&s) {
                self.in_flight.push_back(seq);
                out.push(s);
            }
        }
        let mut budget = READ_BYTES;
        while out.len() < max && budget > 0 {
            let Some((seq, s, len)) = self.read_next() else {
                break;
            };
            budget = budget.saturating_sub(len);
            if seq < self.replay_until && seq >= self.replay_mark {
                self.replayed += 1;
                self.replay_mark = seq + 1;
            }
            if keep(&s) {
                self.in_flight.push_back(seq);
                out.push(s);
            }
        }
        out
    }

    /// The next record from disk: its sequence number, the sample and its
    /// size. A record that cannot be read is skipped and counted.
    fn read_next(&mut self) -> Option<(u64, Sample, usize)> {
        loop {
            if self.read_seq >= self.next_seq {
                return None;
            }
            let seg_i = self.segments.iter().position(|s| s.end() > self.read_seq)?;
            let (first, end) = (self.segments[seg_i].first, self.segments[seg_i].end());
            if self.read_seq < first {
                self.read_seq = first; // a gap left by damage
            }
            let positioned = self
                .reader
                .as_ref()
                .is_some_and(|r| r.first == first && r.seq == self.read_seq);
            if !positioned {
                match self.position(first) {
                    Ok(r) => self.reader = Some(r),
                    Err(_) => {
                        self.skip_segment(end);
                        continue;
                    }
                }
            }
            let r = self.reader.as_mut()?;
            let mut head = [0u8; record::HEADER];
            let read = r.file.read_exact(&mut head).and_then(|_| {
                let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]) as usize;
                if len > record::MAX_PAYLOAD {
                    return Err(std::io::ErrorKind::InvalidData.into());
                }
                let mut frame = head.to_vec();
                frame.resize(record::HEADER + len, 0);
                r.file.read_exact(&mut frame[record::HEADER..])?;
                Ok(frame)
            });
            let whole = read.is_ok();
            let decoded = read.ok().and_then(|f| record::decode(&f).ok().flatten());
            match (decoded, whole) {
                (Some((s, n)), _) => {
                    let seq = self.read_seq;
                    r.seq += 1;
                    self.read_seq += 1;
                    return Some((seq, s, n));
                }
                // Read whole but damaged (a flipped bit): that one is lost.
                (None, true) => {
                    r.seq += 1;
                    self.read_seq += 1;
                    self.dropped += 1;
                }
                (None, false) => self.skip_segment(end),
            }
        }
    }

    /// Gives up on the rest of a segment that cannot be read.
    fn skip_segment(&mut self, end: u64) {
        self.dropped += end.saturating_sub(self.read_seq);
        self.damage.push(format!(
            "records {}..{end} could not be read back; dropped",
            self.read_seq
        ));
        self.read_seq = end;
        self.reader = None;
    }

    /// A reader at `read_seq` in the segment starting at `first`.
    fn position(&self, first: u64) -> std::io::Result<Reader> {
        let f = File::open(seg_path(&self.spec.dir, first))?;
        let mut file = std::io::BufReader::with_capacity(64 << 10, f);
        file.seek(SeekFrom::Start(MAGIC.len() as u64))?;
        let mut seq = first;
        let mut head = [0u8; record::HEADER];
        while seq < self.read_seq {
            file.read_exact(&mut head)?;
            let len = u32::from_le_bytes([head[0], head[1], head[2], head[3]]);
            file.seek_relative(len as i64)?;
            seq += 1;
        }
        Ok(Reader { first, seq, file })
    }

    /// Puts back taken samples, in front, in order: they are the last
    /// ones taken. Samples beyond what is in flight (handed over from
    /// another queue) are appended.
    pub fn put_back(&mut self, mut batch: Vec<Sample>) -> Result<(), (Vec<Sample>, String)> {
        let extra = batch.len().saturating_sub(self.in_flight.len());
        let rest = batch.split_off(extra);
        if extra > 0 {
            if let Err(why) = self.push(&batch) {
                return Err((batch, why));
            }
        }
        let seqs = self.in_flight.split_off(self.in_flight.len() - rest.len());
        for (seq, s) in seqs.into_iter().zip(rest).rev() {
            if seq >= self.acked {
                self.window.push_front((seq, s));
            }
        }
        Ok(())
    }

    /// Everything taken and not put back has been delivered (or refused
    /// for good): the acknowledgement moves up to the first record still
    /// waiting, and segments wholly before it are deleted.
    pub fn settle(&mut self) {
        self.settle_first(self.in_flight.len());
    }

    /// Records taken and not settled.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// The first `n` records taken (in the order they were taken) have
    /// been delivered: the acknowledgement moves up to the first record
    /// still in flight or waiting.
    pub fn settle_first(&mut self, n: usize) {
        self.in_flight.drain(..n.min(self.in_flight.len()));
        let to = self
            .window
            .front()
            .map_or(self.read_seq, |(s, _)| *s)
            .min(self.read_seq)
            .min(self.in_flight.front().copied().unwrap_or(u64::MAX));
        if to > self.acked {
            self.acked = to;
            self.write_ack();
            self.forget_settled();
        }
    }

    /// Forgets what was taken and not settled, and reads again from the
    /// acknowledgement: for a handler taking over from one a reload stopped.
    pub fn rewind(&mut self) {
        self.in_flight.clear();
        self.window.clear();
        self.read_seq = self.acked;
        self.reader = None;
    }

    fn write_ack(&mut self) {
        let dir = &self.spec.dir;
        let mut b = self.acked.to_le_bytes().to_vec();
        b.extend_from_slice(&crc32fast::hash(&b).to_le_bytes());
        let tmp = dir.join("ack.tmp");
        let done = std::fs::write(&tmp, &b)
            .and_then(|_| {
                if self.spec.fsync == Fsync::Always {
                    File::open(&tmp)?.sync_all()?;
                }
                Ok(())
            })
            .and_then(|_| std::fs::rename(&tmp, dir.join("ack")));
        match done {
            Ok(()) => self.ack_failing = false,
            Err(e) => {
                let _ = std::fs::remove_file(&tmp);
                // Records are then delivered again after a restart:
                // duplicates, not losses.
                if !std::mem::replace(&mut self.ack_failing, true) {
                    log::warn!(
                        "{}: cannot write the acknowledgement: {e}; after a restart, records already delivered are sent again",
                        dir.join("ack").display()
                    );
                }
            }
        }
    }

    /// Deletes the segments wholly before the acknowledgement, the one
    /// being written too once everything in it is settled: delivered
    /// records never hold the disk.
    fn forget_settled(&mut self) {
        while let Some(seg) = self.segments.front() {
            let last = self.segments.len() == 1;
            if seg.end() > self.acked || (last && seg.count == 0) {
                break;
            }
            let (first, bytes) = (seg.first, seg.bytes);
            self.segments.pop_front();
            let _ = std::fs::remove_file(seg_path(&self.spec.dir, first));
            self.total_bytes = self.total_bytes.saturating_sub(bytes);
            if self.reader.as_ref().is_some_and(|r| r.first == first) {
                self.reader = None;
            }
            if last {
                self.writer = None;
            }
        }
    }
}

/// Of the records in `buf`, the newest that fit in `max` bytes, and how
/// many older ones were left out.
fn newest_within(buf: &[u8], max: u64) -> (Vec<u8>, u64) {
    let mut starts = Vec::new();
    let mut at = 0;
    while let Ok(Some((len, _))) = record::frame(&buf[at..]) {
        starts.push(at);
        at += len;
    }
    let keep_from = starts
        .iter()
        .position(|&s| (buf.len() - s) as u64 <= max)
        .unwrap_or(starts.len());
    let from = starts.get(keep_from).copied().unwrap_or(buf.len());
    (buf[from..].to_vec(), keep_from as u64)
}

/// Reads a buffer directory without taking it: what `carbyne buffer
/// status` shows while the daemon runs.
pub fn inspect(dir: &Path) -> std::io::Result<Status> {
    let mut st = Status {
        dir: dir.to_path_buf(),
        ..Status::default()
    };
    let mut damage = Vec::new();
    let segs = list(dir, &mut damage)?;
    let ack = read_ack(dir).ok();
    let mut first_unacked_seen = false;
    for (first, path) in segs {
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // settled meanwhile
            Err(e) => return Err(e),
        };
        st.bytes += bytes.len() as u64;
        let sc = scan(&bytes);
        if sc.damaged > 0 {
            damage.push(format!(
                "{}: {} records damaged",
                path.display(),
                sc.damaged
            ));
        }
        if let Some(d) = &sc.stop {
            damage.push(format!("{}: {d}", path.display()));
        }
        let end = first.saturating_add(sc.count);
        let from = ack.unwrap_or(first).max(first);
        st.records += end.saturating_sub(from);
        if !first_unacked_seen && end > from {
            first_unacked_seen = true;
            let mut at = MAGIC.len();
            let mut seq = first;
            while let Ok(Some((len, _))) = record::frame(&bytes[at..]) {
                if seq >= from {
                    st.oldest = record::decode(&bytes[at..])
                        .ok()
                        .flatten()
                        .map(|(s, _)| s.timestamp);
                    break;
                }
                at += len;
                seq += 1;
            }
        }
    }
    if !damage.is_empty() {
        st.damage = Some(damage.join("; "));
    }
    Ok(st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sample::Kind;

    fn s(i: i64) -> Sample {
        Sample::new(format!("servers.h.m{i}"), i as f64, 1_000 + i, Kind::Gauge)
    }

    fn spec(dir: &Path, max: u64) -> Spec {
        Spec {
            dir: dir.to_path_buf(),
            max_bytes: max,
            fsync: Fsync::Never,
        }
    }

    /// A buffer in `dir` holding samples `0..n` in one segment, closed:
    /// its spec and the segment's path.
    fn one_segment(dir: &Path, n: i64) -> (Spec, PathBuf) {
        let sp = spec(dir, 1 << 20);
        let mut d = Disk::open(&sp, Duration::ZERO).expect("open");
        d.push(&(0..n).map(s).collect::<Vec<_>>()).expect("push");
        drop(d);
        let (_, path) = list(dir, &mut Vec::new())
            .expect("list")
            .pop()
            .expect("a segment");
        (sp, path)
    }

    fn stamps(v: &[Sample]) -> Vec<i64> {
        v.iter().map(|s| s.timestamp - 1_000).collect()
    }

    #[test]
    fn records_come_back_in_order_after_a_restart_from_the_acknowledgement() {
        let t = tempfile::tempdir().expect("tempdir");
        let sp = spec(t.path(), 1 << 20);
        let mut d = Disk::open(&sp, Duration::ZERO).expect("open");
        d.push(&(0..10).map(s).collect::<Vec<_>>()).expect("push");
        assert_eq!(stamps(&d.take(4, |_| true)), [0, 1, 2, 3]);
        d.settle();
        assert_eq!(stamps(&d.take(3, |_| true)), [4, 5, 6]);
        // Killed here: 4..6 were taken, never settled.
        drop(d);
        let mut d = Disk::open(&sp, Duration::ZERO).expect("reopen");
        assert_eq!(d.len(), 6);
        assert_eq!(stamps(&d.take(100, |_| true)), [4, 5, 6, 7, 8, 9]);
        assert_eq!(d.replayed, 6);
        d.settle();
        d.push(&[s(10)]).expect("push");
        drop(d);
        let mut d = Disk::open(&sp, Duration::ZERO).expect("reopen");
        assert_eq!(stamps(&d.take(100, |_| true)), [10]);
    }

    #[test]
    fn a_second_owner_is_kept_out() {
        let t = tempfile::tempdir().expect("tempdir");
        let sp = spec(t.path(), 1 << 20);
        let _d = Disk::open(&sp, Duration::ZERO).expect("open");
        assert!(matches!(
            Disk::open(&sp, Duration::from_millis(100)),
            Err(BufferError::Busy(_))
        ));
    }

    #[test]
    fn put_back_keeps_order_and_only_settled_records_are_forgotten() {
        let t = tempfile::tempdir().expect("tempdir");
        let sp = spec(t.path(), 1 << 20);
        let mut d = Disk::open(&sp, Duration::ZERO).expect("open");
        d.push(&(0..6).map(s).collect::<Vec<_>>()).expect("push");
        let mut b = d.take(4, |_| true);
        let tail = b.split_off(2);
        d.put_back(tail).expect("put back"); // 2, 3
        d.put_back(b).expect("put back"); // 0, 1
        assert_eq!(d.len(), 6);
        let b = d.take(3, |_| true);
        assert_eq!(stamps(&b), [0, 1, 2]);
        d.settle();
        drop(d);
        let mut d = Disk::open(&sp, Duration::ZERO).expect("reopen");
        assert_eq!(stamps(&d.take(100, |_| true)), [3, 4, 5]);
    }

    #[test]
    fn a_torn_last_record_is_cut_off_and_the_rest_delivered() {
        let t = tempfile::tempdir().expect("tempdir");
        let (sp, path) = one_segment(t.path(), 5);
        let len = std::fs::metadata(&path).expect("meta").len();
        let f = OpenOptions::new().write(true).open(&path).expect("open");
        f.set_len(len - 3).expect("tear");
        let mut d = Disk::open(&sp, Duration::ZERO).expect("reopen");
        assert_eq!(d.damage.len(), 1, "{:?}", d.damage);
        assert_eq!(stamps(&d.take(100, |_| true)), [0, 1, 2, 3]);
        // Appends after the cut read back whole.
        d.push(&[s(9)]).expect("push");
        assert_eq!(stamps(&d.take(100, |_| true)), [9]);
    }

    #[test]
    fn a_full_buffer_drops_its_oldest_and_stays_within_its_bound() {
        let t = tempfile::tempdir().expect("tempdir");
        let max = 64 << 10;
        let sp = spec(t.path(), max);
        let mut d = Disk::open(&sp, Duration::ZERO).expect("open");
        for i in 0..100 {
            d.push(&(i * 100..i * 100 + 100).map(s).collect::<Vec<_>>())
                .expect("push");
            let on_disk: u64 = list(t.path(), &mut Vec::new())
                .expect("list")
                .iter()
                .map(|(_, p)| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0))
                .sum();
            assert!(on_disk <= max, "{on_disk} bytes on disk");
        }
        assert!(d.dropped > 0);
        assert_eq!(d.dropped + d.len(), 10_000);
        let got = d.take(usize::MAX, |_| true);
        // The newest are kept, in order, without gaps.
        assert_eq!(got.last().map(|s| s.timestamp), Some(1_000 + 9_999));
        assert!(got.windows(2).all(|w| w[1].timestamp == w[0].timestamp + 1));
    }

    #[test]
    fn settled_segments_are_deleted() {
        let t = tempfile::tempdir().expect("tempdir");
        let sp = spec(t.path(), 256 << 10); // 32 KiB segments
        let mut d = Disk::open(&sp, Duration::ZERO).expect("open");
        for i in 0..20 {
            d.push(&(i * 100..i * 100 + 100).map(s).collect::<Vec<_>>())
                .expect("push");
        }
        assert!(list(t.path(), &mut Vec::new()).expect("list").len() > 2);
        while !d.take(500, |_| true).is_empty() {
            d.settle();
        }
        d.settle();
        assert!(list(t.path(), &mut Vec::new()).expect("list").len() <= 1);
        let st = inspect(t.path()).expect("status");
        assert_eq!((st.records, st.oldest), (0, None));
    }

    #[test]
    fn status_reads_without_taking_the_buffer() {
        let t = tempfile::tempdir().expect("tempdir");
        let sp = spec(t.path(), 1 << 20);
        let mut d = Disk::open(&sp, Duration::ZERO).expect("open");
        d.push(&(0..10).map(s).collect::<Vec<_>>()).expect("push");
        d.take(3, |_| true);
        d.settle();
        let st = inspect(t.path()).expect("status");
        assert_eq!(st.records, 7);
        assert_eq!(st.oldest, Some(1_003));
        assert!(st.bytes > 0);
    }

    #[test]
    fn a_flipped_bit_costs_one_record_not_the_rest() {
        let t = tempfile::tempdir().expect("tempdir");
        let (sp, path) = one_segment(t.path(), 5);
        let mut bytes = std::fs::read(&path).expect("read");
        // In the second record's payload.
        let first_len = record::frame(&bytes[MAGIC.len()..])
            .expect("frame")
            .expect("one")
            .0;
        bytes[MAGIC.len() + first_len + record::HEADER + 2] ^= 0x10;
        std::fs::write(&path, &bytes).expect("write");
        let mut d = Disk::open(&sp, Duration::ZERO).expect("reopen");
        assert!(
            d.damage
                .iter()
                .any(|m| m.contains("1 records whose checksum")),
            "{:?}",
            d.damage
        );
        assert_eq!(stamps(&d.take(100, |_| true)), [0, 2, 3, 4]);
        assert_eq!(d.dropped, 1);
        assert_eq!(inspect(t.path()).expect("status").records, 5);
    }

    #[test]
    fn an_acknowledgement_that_does_not_fit_the_records_is_not_trusted() {
        let t = tempfile::tempdir().expect("tempdir");
        let sp = spec(t.path(), 1 << 20);
        let mut d = Disk::open(&sp, Duration::ZERO).expect("open");
        d.push(&(0..4).map(s).collect::<Vec<_>>()).expect("push");
        drop(d);
        for ack in [5_000u64, u64::MAX - 10] {
            let mut b = ack.to_le_bytes().to_vec();
            b.extend_from_slice(&crc32fast::hash(&b).to_le_bytes());
            std::fs::write(t.path().join("ack"), &b).expect("ack");
            let mut d = Disk::open(&sp, Duration::ZERO).expect("reopen");
            assert!(
                d.damage
                    .iter()
                    .any(|m| m.contains("outside the records held")),
                "{:?}",
                d.damage
            );
            assert_eq!(stamps(&d.take(100, |_| true)), [0, 1, 2, 3], "ack {ack}");
        }
        std::fs::write(t.path().join("ack"), b"garbage\n").expect("ack");
        let mut d = Disk::open(&sp, Duration::ZERO).expect("reopen");
        assert!(
            d.damage
                .iter()
                .any(|m| m.contains("not an acknowledgement")),
            "{:?}",
            d.damage
        );
        assert_eq!(d.take(100, |_| true).len(), 4);
    }

    #[test]
    fn files_that_are_not_segments_are_left_alone() {
        let t = tempfile::tempdir().expect("tempdir");
        let sp = spec(t.path(), 1 << 20);
        let mut d = Disk::open(&sp, Duration::ZERO).expect("open");
        d.push(&(0..3).map(s).collect::<Vec<_>>()).expect("push");
        drop(d);
        std::fs::create_dir(t.path().join("00000000000000000300.seg")).expect("a folder");
        std::fs::write(t.path().join("18446744073709551600.seg"), b"CBYNBUF1").expect("huge");
        std::fs::write(t.path().join("00000000000000000900.seg"), b"not ours").expect("bad magic");
        let mut d = Disk::open(&sp, Duration::ZERO).expect("reopen");
        assert_eq!(stamps(&d.take(100, |_| true)), [0, 1, 2]);
        assert_eq!(d.damage.len(), 3, "{:?}", d.damage);
        assert!(t.path().join("00000000000000000900.seg.bad").exists());
        d.push(&[s(7)]).expect("push");
        assert_eq!(stamps(&d.take(100, |_| true)), [7]);
        assert!(inspect(t.path()).is_ok());
    }
}
