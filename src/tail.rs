//! Reading log files line by line from where the last read stopped, across
//! rotation (rename-and-create, copytruncate, truncation, delete-and-recreate).
//!
//! Only complete lines are read: a last line without its newline waits for
//! it. A file is known by its device and inode plus a fingerprint of its
//! first bytes, so a recycled inode is noticed.

use serde::{Deserialize, Serialize};
use std::fs::File;
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Bytes of a file's start kept to recognise it.
pub const FINGERPRINT_LEN: usize = 64;
const CHUNK: usize = 256 * 1024;

/// Where to start in a file there is no saved position for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StartAt {
    /// Only lines written from now on (logtail's behaviour).
    #[default]
    End,
    /// The whole file.
    Beginning,
}

/// The saved position in one file.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FileState {
    pub dev: u64,
    pub inode: u64,
    /// Byte offset after the last complete line read.
    pub offset: u64,
    /// The file's first bytes (at most 64), hex.
    pub fingerprint: String,
    /// Unix time of the read that left this state.
    pub last_run: f64,
}

/// Line counts of a read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineStats {
    /// Complete lines seen, too-long ones included.
    pub read: u64,
    /// Lines longer than the limit, skipped.
    pub too_long: u64,
}

impl LineStats {
    pub fn add(&mut self, o: LineStats) {
        self.read += o.read;
        self.too_long += o.too_long;
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

/// The first bytes of an open file.
pub fn fingerprint(f: &File) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; FINGERPRINT_LEN];
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    buf.truncate(n);
    Ok(buf)
}

/// Whether two fingerprints can be the same file (one is a prefix of the other).
fn same_start(a: &[u8], b: &[u8]) -> bool {
    let n = a.len().min(b.len());
    a[..n] == b[..n]
}

/// Reads the complete lines of `f` from `offset`, giving each (without its
/// newline or a trailing `\r`) to `line`; lines over `max_line` bytes are
/// counted and skipped. Returns the offset after the last complete line.
pub fn read_lines(
    f: &File,
    offset: u64,
    max_line: usize,
    stats: &mut LineStats,
    line: &mut dyn FnMut(&[u8]),
) -> io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut pending: Vec<u8> = Vec::new();
    let mut skipping = false;
    let mut pos = offset;
    let mut consumed = offset;
    loop {
        let n = f.read_at(&mut buf, pos)?;
        if n == 0 {
            return Ok(consumed);
        }
        let chunk = &buf[..n];
        let base = pos;
        pos += n as u64;
        let mut start = 0;
        for nl in memchr::memchr_iter(b'\n', chunk) {
            let piece = &chunk[start..nl];
            stats.read += 1;
            if skipping || pending.len() + piece.len() > max_line {
                stats.too_long += 1;
            } else if pending.is_empty() {
                line(piece.strip_suffix(b"\r").unwrap_or(piece));
            } else {
                pending.extend_from_slice(piece);
                line(pending.strip_suffix(b"\r").unwrap_or(&pending));
            }
            pending.clear();
            skipping = false;
            start = nl + 1;
            consumed = base + start as u64;
        }
        let rest = &chunk[start..];
        if !skipping {
            if pending.len() + rest.len() > max_line {
                skipping = true;
                pending.clear();
            } else {
                pending.extend_from_slice(rest);
            }
        }
    }
}

/// A rotated-away copy of the file `prev` describes: the file with its inode
/// among `path`'s siblings (`maillog.1`, `maillog-20261122`, ...), or else
/// `path.1` when it starts as `prev` did and is long enough (copytruncate).
pub fn find_rotated(path: &Path, prev: &FileState) -> Option<(PathBuf, File)> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let base = path.file_name()?.to_string_lossy().into_owned();
    let want = unhex(&prev.fingerprint);
    let matches = |f: &File| fingerprint(f).is_ok_and(|fp| same_start(&fp, &want));
    for e in std::fs::read_dir(dir).ok()?.flatten() {
        let name = e.file_name().to_string_lossy().into_owned();
        if name == base || !name.starts_with(&base) || name.ends_with(".gz") {
            continue;
        }
        let Ok(m) = e.metadata() else { continue };
        if (m.dev(), m.ino()) == (prev.dev, prev.inode) {
            if let Ok(f) = File::open(e.path()) {
                if matches(&f) {
                    return Some((e.path(), f));
                }
            }
        }
    }
    let copy = dir.join(format!("{base}.1"));
    let f = File::open(&copy).ok()?;
    let long_enough = f.metadata().is_ok_and(|m| m.len() >= prev.offset);
    (long_enough && matches(&f)).then_some((copy, f))
}

/// The outcome of one `--once` read of a file.
#[derive(Debug, Clone, PartialEq)]
pub struct OnceRead {
    /// The state to save once the metrics are delivered.
    pub state: FileState,
    pub stats: LineStats,
    /// Seconds since the previous read; `None` on the first.
    pub duration: Option<f64>,
}

/// Reads the lines written since `prev` (logtail's job): the rest of a
/// rotated-away file first, then the current one. With no `prev`, starts at
/// `start_at`. `Ok(None)` when the file does not exist and nothing is left
/// of it to read.
pub fn read_once(
    path: &Path,
    prev: Option<&FileState>,
    start_at: StartAt,
    max_line: usize,
    now: f64,
    line: &mut dyn FnMut(&[u8]),
) -> io::Result<Option<OnceRead>> {
    let mut stats = LineStats::default();
    let duration = prev.map(|p| (now - p.last_run).max(0.0));
    let current = match File::open(path) {
        Ok(f) => Some(f),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(e) => return Err(e),
    };
    let Some(f) = current else {
        // Rotated away and not recreated yet: finish the old file.
        let Some(p) = prev else { return Ok(None) };
        let Some((_, old)) = find_rotated(path, p) else {
            return Ok(None);
        };
        let offset = read_lines(&old, p.offset, max_line, &mut stats, line)?;
        let state = FileState {
            offset,
            last_run: now,
            ..p.clone()
        };
        return Ok(Some(OnceRead {
            state,
            stats,
            duration,
        }));
    };
    let meta = f.metadata()?;
    let fp = fingerprint(&f)?;
    let start = match prev {
        None => match start_at {
            StartAt::End => meta.len(),
            StartAt::Beginning => 0,
        },
        Some(p) => {
            let same = (meta.dev(), meta.ino()) == (p.dev, p.inode)
                && same_start(&fp, &unhex(&p.fingerprint))
                && meta.len() >= p.offset;
            if same {
                p.offset
            } else {
                if let Some((_, old)) = find_rotated(path, p) {
                    read_lines(&old, p.offset, max_line, &mut stats, line)?;
                }
                0
            }
        }
    };
    let offset = if prev.is_none() && start_at == StartAt::End {
        start
    } else {
        read_lines(&f, start, max_line, &mut stats, line)?
    };
    Ok(Some(OnceRead {
        state: FileState {
            dev: meta.dev(),
            inode: meta.ino(),
            offset,
            fingerprint: hex(&fp),
            last_run: now,
        },
        stats,
        duration,
    }))
}

/// How long a renamed or deleted file is still read after it stops growing
/// (writers may append to it until they reopen the log).
pub const ROTATE_WAIT: Duration = Duration::from_secs(5);

struct Open {
    file: File,
    dev: u64,
    inode: u64,
    pos: u64,
    fp: Vec<u8>,
}

impl Open {
    fn new(file: File, pos: u64) -> io::Result<Self> {
        let m = file.metadata()?;
        let fp = fingerprint(&file)?;
        Ok(Open {
            file,
            dev: m.dev(),
            inode: m.ino(),
            pos,
            fp,
        })
    }

    fn state(&self, now: f64) -> FileState {
        FileState {
            dev: self.dev,
            inode: self.inode,
            offset: self.pos,
            fingerprint: hex(&self.fp),
            last_run: now,
        }
    }
}

/// Follows one file for the daemon: call [`Follower::poll`] whenever it may
/// have changed (and now and then anyway).
pub struct Follower {
    path: PathBuf,
    max_line: usize,
    current: Option<Open>,
    /// Renamed or deleted files still read until quiet for [`ROTATE_WAIT`].
    draining: Vec<(Open, Instant)>,
}

impl Follower {
    /// Starts following `path`: from `prev` when it still describes the
    /// file, else from `start_at`. A file that does not exist yet is read
    /// from its beginning once it appears.
    pub fn new(path: &Path, prev: Option<&FileState>, start_at: StartAt, max_line: usize) -> Self {
        let current = File::open(path).ok().and_then(|f| {
            let m = f.metadata().ok()?;
            let fp = fingerprint(&f).ok()?;
            let resume = prev.filter(|p| {
                (m.dev(), m.ino()) == (p.dev, p.inode)
                    && same_start(&fp, &unhex(&p.fingerprint))
                    && m.len() >= p.offset
            });
            let pos = match (resume, start_at) {
                (Some(p), _) => p.offset,
                (None, StartAt::End) => m.len(),
                (None, StartAt::Beginning) => 0,
            };
            Open::new(f, pos).ok()
        });
        Follower {
            path: path.to_path_buf(),
            max_line,
            current,
            draining: Vec::new(),
        }
    }

    /// The position to save.
    pub fn state(&self, now: f64) -> Option<FileState> {
        self.current.as_ref().map(|o| o.state(now))
    }

    /// Reads every complete line written since the last poll, following
    /// rotation and truncation.
    pub fn poll(&mut self, line: &mut dyn FnMut(&[u8])) -> io::Result<LineStats> {
        let mut stats = LineStats::default();
        // Renamed-away files first: their lines are the older ones.
        let mut keep = Vec::new();
        for (mut o, mut quiet_since) in self.draining.drain(..) {
            let pos = read_lines(&o.file, o.pos, self.max_line, &mut stats, line)?;
            if pos != o.pos {
                quiet_since = Instant::now();
            }
            o.pos = pos;
            if quiet_since.elapsed() < ROTATE_WAIT {
                keep.push((o, quiet_since));
            }
        }
        self.draining = keep;

        if let Some(o) = &mut self.current {
            o.pos = read_lines(&o.file, o.pos, self.max_line, &mut stats, line)?;
        }
        match std::fs::metadata(&self.path) {
            Ok(m) => {
                let same = self
                    .current
                    .as_ref()
                    .is_some_and(|o| (m.dev(), m.ino()) == (o.dev, o.inode));
                if same {
                    self.check_truncated(&mut stats, line)?;
                } else {
                    // Renamed away (or deleted) and a new file in its place.
                    if let Some(o) = self.current.take() {
                        self.draining.push((o, Instant::now()));
                    }
                    if let Ok(f) = File::open(&self.path) {
                        let mut o = Open::new(f, 0)?;
                        o.pos = read_lines(&o.file, 0, self.max_line, &mut stats, line)?;
                        self.current = Some(o);
                    }
                }
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                if let Some(o) = self.current.take() {
                    self.draining.push((o, Instant::now()));
                }
            }
            Err(e) => return Err(e),
        }
        Ok(stats)
    }

    /// Same inode, but shorter than what was read or starting differently:
    /// truncated (copytruncate). The lines between the last read and the
    /// copy are in `path.1`; then the file is read again from its start.
    fn check_truncated(
        &mut self,
        stats: &mut LineStats,
        line: &mut dyn FnMut(&[u8]),
    ) -> io::Result<()> {
        let Some(o) = &mut self.current else {
            return Ok(());
        };
        let len = o.file.metadata()?.len();
        let fp = fingerprint(&o.file)?;
        if len >= o.pos && same_start(&fp, &o.fp) {
            if o.fp.len() < FINGERPRINT_LEN {
                o.fp = fp;
            }
            return Ok(());
        }
        let before = o.state(0.0);
        if let Some((_, copy)) = find_rotated(&self.path, &before) {
            read_lines(&copy, o.pos, self.max_line, stats, line)?;
        }
        o.fp = fp;
        o.pos = read_lines(&o.file, 0, self.max_line, stats, line)?;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    fn collect(f: &File, offset: u64, max: usize) -> (Vec<String>, u64, LineStats) {
        let mut lines = Vec::new();
        let mut st = LineStats::default();
        let end = read_lines(f, offset, max, &mut st, &mut |l| {
            lines.push(String::from_utf8_lossy(l).into_owned())
        })
        .expect("read");
        (lines, end, st)
    }

    #[test]
    fn complete_lines_only_and_long_lines_skipped() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("x.log");
        std::fs::write(&p, b"one\r\ntwo\nthree-is-long\nfour\npart").expect("write");
        let f = File::open(&p).expect("open");
        let (lines, end, st) = collect(&f, 0, 8);
        assert_eq!(lines, ["one", "two", "four"]);
        assert_eq!(end, 28, "the partial last line is left for later");
        assert_eq!(
            st,
            LineStats {
                read: 4,
                too_long: 1
            }
        );
        let mut w = std::fs::OpenOptions::new()
            .append(true)
            .open(&p)
            .expect("open");
        w.write_all(b"ial\n").expect("append");
        let (lines, end, _) = collect(&f, end, 8);
        assert_eq!(lines, ["partial"]);
        assert_eq!(end, 36);
    }

    #[test]
    fn lines_across_chunks_and_a_long_line_across_chunks() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("x.log");
        let mut data = Vec::new();
        for i in 0..40_000 {
            data.extend_from_slice(format!("line {i:05} of the test\n").as_bytes());
        }
        data.extend(std::iter::repeat_n(b'x', CHUNK + 10));
        data.extend_from_slice(b"\nlast\n");
        std::fs::write(&p, &data).expect("write");
        let f = File::open(&p).expect("open");
        let (lines, end, st) = collect(&f, 0, 1000);
        assert_eq!(lines.len(), 40_001);
        assert_eq!(lines[39_999], "line 39999 of the test");
        assert_eq!(lines[40_000], "last");
        assert_eq!(st.too_long, 1);
        assert_eq!(end, data.len() as u64);
    }

    fn once(p: &Path, prev: Option<&FileState>, start: StartAt) -> (Vec<String>, Option<OnceRead>) {
        let mut lines = Vec::new();
        let r = read_once(p, prev, start, 1 << 20, 100.0, &mut |l| {
            lines.push(String::from_utf8_lossy(l).into_owned())
        })
        .expect("read_once");
        (lines, r)
    }

    /// Appends `s` to the file at `p`, creating it.
    pub(crate) fn append(p: &Path, s: &str) {
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(p)
            .expect("open");
        f.write_all(s.as_bytes()).expect("write");
    }

    #[test]
    fn once_starts_at_end_then_reads_what_was_appended() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("app.log");
        append(&p, "old 1\nold 2\n");
        let (lines, r) = once(&p, None, StartAt::End);
        assert!(lines.is_empty());
        let st = r.expect("state").state;
        append(&p, "new 1\nnew 2\n");
        let (lines, r) = once(&p, Some(&st), StartAt::End);
        assert_eq!(lines, ["new 1", "new 2"]);
        let (lines, _) = once(&p, Some(&r.expect("state").state), StartAt::End);
        assert!(lines.is_empty());
        let (lines, _) = once(&p, None, StartAt::Beginning);
        assert_eq!(lines.len(), 4);
    }

    #[test]
    fn once_finishes_a_renamed_file_before_the_new_one() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("app.log");
        append(&p, "a\n");
        let st = once(&p, None, StartAt::End).1.expect("state").state;
        append(&p, "b\n");
        std::fs::rename(&p, d.path().join("app.log.1")).expect("rename");
        append(&d.path().join("app.log.1"), "c (after the rename)\n");
        // Not recreated yet: the old file is finished.
        let (lines, r) = once(&p, Some(&st), StartAt::End);
        assert_eq!(lines, ["b", "c (after the rename)"]);
        let st = r.expect("state").state;
        append(&d.path().join("app.log.1"), "d\n");
        append(&p, "e\n");
        let (lines, _) = once(&p, Some(&st), StartAt::End);
        assert_eq!(lines, ["d", "e"]);
    }

    #[test]
    fn once_after_copytruncate_reads_the_copy_then_the_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("app.log");
        append(&p, "header line that makes the fingerprint\n");
        let st = once(&p, None, StartAt::End).1.expect("state").state;
        append(&p, "x\ny\n");
        std::fs::copy(&p, d.path().join("app.log.1")).expect("copy");
        std::fs::OpenOptions::new()
            .write(true)
            .open(&p)
            .expect("open")
            .set_len(0)
            .expect("truncate");
        append(&p, "z\n");
        let (lines, _) = once(&p, Some(&st), StartAt::End);
        assert_eq!(lines, ["x", "y", "z"]);
    }

    #[test]
    fn once_on_a_missing_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("nope.log");
        assert_eq!(once(&p, None, StartAt::End).1, None);
    }
}
