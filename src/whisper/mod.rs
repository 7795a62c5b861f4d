//! Whisper: Graphite's fixed-size round-robin database format, byte for byte
//! as Graphite's `whisper` 1.1.10 writes it, and its operations.
//!
//! A file is a header — aggregation type, max retention, xFilesFactor (f32),
//! archive count, then per archive its offset, seconds per point and point
//! count, all big-endian — followed by each archive's points (u32 timestamp,
//! f64 value). A point's slot is found from the archive's first point (its
//! "base"), so an archive is a ring whose origin moves with the data.
//!
//! Every operation opens the file once and uses positioned reads and writes.
//! This module depends on nothing else of carbyne.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub mod tools;

const METADATA_SIZE: u64 = 16;
const ARCHIVE_INFO_SIZE: u64 = 12;
/// Bytes of one point: a u32 timestamp and an f64 value.
pub const POINT_SIZE: u64 = 12;

/// Why a whisper operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a whisper file, or is damaged.
    #[error("{what} ({})", path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("{0}")]
    InvalidConfiguration(String),
    #[error("{0}")]
    InvalidAggregationMethod(String),
    #[error("{0}")]
    InvalidXFilesFactor(String),
    #[error("{0}")]
    InvalidTimeInterval(String),
    #[error("Timestamp not covered by any archives in this database.")]
    TimestampNotCovered,
    /// Whisper keeps seconds in 32 bits: 1970 to 2106.
    #[error("Timestamp {0} is outside whisper's range (0 to 4294967295)")]
    TimestampOutOfRange(i64),
    #[error("{0}")]
    InvalidRetention(String),
}

pub type Result<T> = std::result::Result<T, WhisperError>;

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> WhisperError + '_ {
    move |source| WhisperError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, what: impl Into<String>) -> WhisperError {
    WhisperError::Corrupt {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

/// How points are combined when they propagate to a coarser archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    Average = 1,
    Sum = 2,
    Last = 3,
    Max = 4,
    Min = 5,
    AvgZero = 6,
    AbsMax = 7,
    AbsMin = 8,
}

impl Aggregation {
    pub const ALL: [Aggregation; 8] = [
        Aggregation::Average,
        Aggregation::Sum,
        Aggregation::Last,
        Aggregation::Max,
        Aggregation::Min,
        Aggregation::AvgZero,
        Aggregation::AbsMax,
        Aggregation::AbsMin,
    ];

    pub fn from_type(t: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|a| *a as u32 == t)
    }

    pub fn name(self) -> &'static str {
        match self {
            Aggregation::Average => "average",
            Aggregation::Sum => "sum",
            Aggregation::Last => "last",
            Aggregation::Max => "max",
            Aggregation::Min => "min",
            Aggregation::AvgZero => "avg_zero",
            Aggregation::AbsMax => "absmax",
            Aggregation::AbsMin => "absmin",
        }
    }

    pub fn from_name(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                WhisperError::InvalidAggregationMethod(format!(
                    "Unrecognized aggregation method: {s}"
                ))
            })
    }

    /// Combines the known values of a slot (and, for avg_zero, all of them,
    /// unknown as 0), with Python's semantics: ties and signed zeros keep
    /// the first value, sums start from +0.
    pub fn aggregate(self, known: &[f64], neighbors: &[Option<f64>]) -> f64 {
        let sum = |v: &mut dyn Iterator<Item = f64>| v.fold(0.0f64, |a, b| a + b);
        let pick = |better: &dyn Fn(f64, f64) -> bool| {
            known[1..]
                .iter()
                .fold(known[0], |cur, &v| if better(v, cur) { v } else { cur })
        };
        match self {
            Aggregation::Average => sum(&mut known.iter().copied()) / known.len() as f64,
            Aggregation::Sum => sum(&mut known.iter().copied()),
            Aggregation::Last => known[known.len() - 1],
            Aggregation::Max => pick(&|v, cur| v > cur),
            Aggregation::Min => pick(&|v, cur| v < cur),
            Aggregation::AvgZero => {
                sum(&mut neighbors.iter().map(|v| v.unwrap_or(0.0))) / neighbors.len() as f64
            }
            Aggregation::AbsMax => pick(&|v, cur| v.abs() > cur.abs()),
            Aggregation::AbsMin => pick(&|v, cur| v.abs() < cur.abs()),
        }
    }
}

/// One archive's entry in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveInfo {
    pub offset: u32,
    pub seconds_per_point: u32,
    pub points: u32,
}

impl ArchiveInfo {
    pub fn retention(&self) -> u64 {
        self.seconds_per_point as u64 * self.points as u64
    }

    pub fn size(&self) -> u64 {
        self.points as u64 * POINT_SIZE
    }

    fn offset(&self) -> u64 {
        self.offset as u64
    }

    fn step(&self) -> i64 {
        self.seconds_per_point as i64
    }
}

/// A whisper file's header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub aggregation: Aggregation,
    pub max_retention: u32,
    pub x_files_factor: f32,
    pub archives: Vec<ArchiveInfo>,
}

/// Parses whisper's retention definitions, `60:1440` or `10s:6h`: precision
/// and points, each a number or a number with a unit matched by prefix
/// (s, min, h, d, w, y and their longer forms).
pub fn parse_retention_def(def: &str) -> Result<(u32, u32)> {
    let bad = || WhisperError::InvalidRetention(format!("Invalid retention definition '{def}'"));
    let (precision, points) = def.trim().split_once(':').ok_or_else(bad)?;
    let unit = |s: &str| -> Option<u64> {
        ["seconds", "minutes", "hours", "days", "weeks", "years"]
            .iter()
            .zip([1u64, 60, 3600, 86_400, 604_800, 31_536_000])
            .find(|(name, _)| name.starts_with(s))
            .map(|(_, m)| m)
    };
    fn split(s: &str) -> Option<(u64, &str)> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let (n, rest) = s.split_at(digits);
        if n.is_empty() || !rest.bytes().all(|b| b.is_ascii_lowercase()) {
            return None;
        }
        Some((n.parse().ok()?, rest))
    }
    let (n, u) = split(precision).ok_or_else(|| {
        WhisperError::InvalidRetention(format!("Invalid precision specification '{precision}'"))
    })?;
    let precision = if u.is_empty() {
        n
    } else {
        n * unit(u).ok_or_else(|| WhisperError::InvalidRetention(format!("Invalid unit '{u}'")))?
    };
    let (n, u) = split(points).ok_or_else(|| {
        WhisperError::InvalidRetention(format!("Invalid retention specification '{points}'"))
    })?;
    let points = if u.is_empty() {
        n
    } else {
        let secs = n * unit(u)
            .ok_or_else(|| WhisperError::InvalidRetention(format!("Invalid unit '{u}'")))?;
        secs.checked_div(precision).ok_or_else(bad)?
    };
    Ok((
        u32::try_from(precision).map_err(|_| bad())?,
        u32::try_from(points).map_err(|_| bad())?,
    ))
}

/// Sorts an archive list by precision and checks whisper's rules.
pub fn validate_archive_list(archives: &mut [(u32, u32)]) -> Result<()> {
    let bad = |m: String| WhisperError::InvalidConfiguration(m);
    if archives.is_empty() {
        return Err(bad(
            "You must specify at least one archive configuration!".into()
        ));
    }
    archives.sort_by_key(|a| a.0);
    if archives.iter().any(|a| a.0 == 0 || a.1 == 0) {
        return Err(bad("An archive needs a precision and points above 0".into()));
    }
    for i in 0..archives.len() - 1 {
        let (a, n) = (archives[i], archives[i + 1]);
        if a.0 >= n.0 {
            return Err(bad(format!(
                "A Whisper database may not be configured having two archives with the same precision (archive{i}: {a:?}, archive{}: {n:?})",
                i + 1
            )));
        }
        if n.0 % a.0 != 0 {
            return Err(bad(format!(
                "Higher precision archives' precision must evenly divide all lower precision archives' precision (archive{i}: {}, archive{}: {})",
                a.0,
                i + 1,
                n.0
            )));
        }
        let (r, nr) = (a.0 as u64 * a.1 as u64, n.0 as u64 * n.1 as u64);
        if nr <= r {
            return Err(bad(format!(
                "Lower precision archives must cover larger time intervals than higher precision archives (archive{i}: {r} seconds, archive{}: {nr} seconds)",
                i + 1
            )));
        }
        let per = n.0 / a.0;
        if a.1 < per {
            return Err(bad(format!(
                "Each archive must have at least enough points to consolidate to the next archive (archive{} consolidates {per} of archive{i}'s points but it has only {} total points)",
                i + 1,
                a.1
            )));
        }
    }
    let total: u64 = METADATA_SIZE
        + ARCHIVE_INFO_SIZE * archives.len() as u64
        + archives
            .iter()
            .map(|a| a.1 as u64 * POINT_SIZE)
            .sum::<u64>();
    if total > u32::MAX as u64 {
        return Err(bad(
            "The archives would make a file larger than 4 GiB".into()
        ));
    }
    Ok(())
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn point_at(b: &[u8]) -> (u32, f64) {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[4..12]);
    (be32(b), f64::from_be_bytes(v))
}

/// A timestamp whisper can store, or the error saying it cannot.
fn in_range(ts: i64) -> Result<()> {
    if u32::try_from(ts).is_ok() {
        Ok(())
    } else {
        Err(WhisperError::TimestampOutOfRange(ts))
    }
}

fn pack_point(ts: i64, v: f64) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..4].copy_from_slice(&(ts as u32).to_be_bytes());
    out[4..].copy_from_slice(&v.to_be_bytes());
    out
}

/// An open whisper file: its handle, path and header, and the base (first
/// slot's timestamp) of each archive as far as known. While a handle is open
/// it assumes it is the only writer (whisper's flock, [`Whisper::lock`]), so
/// a long-lived handle reads neither the header nor the bases again.
pub struct Whisper {
    /// Shared with a cache of open files for `open_shared`; every access
    /// is a positioned read or write, so sharing it is safe.
    file: std::sync::Arc<File>,
    path: PathBuf,
    pub header: Header,
    bases: Vec<std::cell::Cell<Option<u32>>>,
    /// The whole file, when it was read at once (`open_whole`).
    whole: Option<Vec<u8>>,
}

impl Whisper {
    /// Opens and reads the header; `write` for read-write access.
    pub fn open(path: &Path, write: bool) -> Result<Self> {
        Self::open_with(path, write, 0)
    }

    /// Opens for reading; a file of at most `whole` bytes is read at once
    /// with its header, and later reads come from that copy (one read per
    /// file for a reader that fetches from many small files).
    pub fn open_whole(path: &Path, whole: u64) -> Result<Self> {
        Self::open_with(path, false, whole)
    }

    fn open_with(path: &Path, write: bool, whole: u64) -> Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        // Non-blocking, so that opening a FIFO returns at once (and is then
        // refused as not a regular file); no effect on a regular file.
        let file = OpenOptions::new()
            .read(true)
            .write(write)
            .custom_flags(libc::O_NONBLOCK)
            .open(path)
            .map_err(io(path))?;
        let meta = file.metadata().map_err(io(path))?;
        if !meta.is_file() {
            return Err(io(path)(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "not a regular file",
            )));
        }
        Self::with_file(std::sync::Arc::new(file), path, meta.len(), write, whole)
    }

    /// Reads a regular file `len` bytes long that the caller keeps open
    /// for reading between reads: as `open_whole`, without opening it.
    pub fn open_shared(
        file: std::sync::Arc<File>,
        path: &Path,
        len: u64,
        whole: u64,
    ) -> Result<Self> {
        Self::with_file(file, path, len, false, whole)
    }

    fn with_file(
        file: std::sync::Arc<File>,
        path: &Path,
        len: u64,
        write: bool,
        whole: u64,
    ) -> Result<Self> {
        let (header, head, len) = Self::read_header(&file, path, len, whole)?;
        // Bases that the header read already brought in (the first archive's, usually).
        let bases = header
            .archives
            .iter()
            .map(|a| {
                let at = a.offset as usize;
                std::cell::Cell::new(head.get(at..at + 4).map(be32))
            })
            .collect();
        // (Never for a handle that writes: its copy would go stale.)
        let whole = (!write && whole > 0 && head.len() as u64 == len).then_some(head);
        Ok(Whisper {
            file,
            path: path.to_path_buf(),
            header,
            bases,
            whole,
        })
    }

    /// The header, the bytes read for it (the whole file when its `len`
    /// is at most `whole` bytes) and the file's length.
    fn read_header(
        file: &File,
        path: &Path,
        len: u64,
        whole: u64,
    ) -> Result<(Header, Vec<u8>, u64)> {
        // One read for the metadata and (usually) every archive entry, or
        // for the whole file. Positioned reads only: the descriptor may be
        // shared (`open_shared`).
        let mut buf;
        if len <= whole {
            buf = vec![0u8; len as usize];
            let n = read_upto(file, &mut buf, 0).map_err(io(path))?;
            buf.truncate(n);
        } else {
            buf = vec![0u8; 256];
            let n = read_upto(file, &mut buf, 0).map_err(io(path))?;
            buf.truncate(n);
        }
        let n = buf.len();
        if n < METADATA_SIZE as usize {
            return Err(corrupt(path, "Unable to read header"));
        }
        let agg = be32(&buf[0..4]);
        let max_retention = be32(&buf[4..8]);
        let xff = f32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]);
        let count = be32(&buf[12..16]) as u64;
        let aggregation =
            Aggregation::from_type(agg).ok_or_else(|| corrupt(path, "Unable to read header"))?;
        if !(0.0..=1.0).contains(&xff) {
            return Err(corrupt(path, "Unable to read header"));
        }
        if count == 0 {
            return Err(corrupt(path, "Unable to read header: no archives"));
        }
        let table = METADATA_SIZE + count * ARCHIVE_INFO_SIZE;
        if table > len {
            return Err(corrupt(
                path,
                format!(
                    "Unable to read archive{} metadata",
                    (len.saturating_sub(METADATA_SIZE)) / ARCHIVE_INFO_SIZE
                ),
            ));
        }
        if (n as u64) < table {
            buf.resize(table as usize, 0);
            file.read_exact_at(&mut buf[n..], n as u64)
                .map_err(io(path))?;
        }
        let mut archives = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            let b = &buf[16 + 12 * i..28 + 12 * i];
            let a = ArchiveInfo {
                offset: be32(b),
                seconds_per_point: be32(&b[4..]),
                points: be32(&b[8..]),
            };
            if a.seconds_per_point == 0
                || a.points == 0
                || (a.offset as u64) < table
                || a.offset as u64 + a.size() > len
            {
                return Err(corrupt(path, format!("Unable to read archive{i} metadata")));
            }
            archives.push(a);
        }
        // The rules whisper creates files by: finer archives first, each
        // precision dividing the next, enough points to consolidate. A file
        // breaking them is damaged (and would make propagation read wildly).
        let mut list: Vec<(u32, u32)> = archives
            .iter()
            .map(|a| (a.seconds_per_point, a.points))
            .collect();
        let in_order = list.windows(2).all(|w| w[0].0 < w[1].0);
        if !in_order || validate_archive_list(&mut list).is_err() {
            return Err(corrupt(path, "Invalid archive layout in header"));
        }
        Ok((
            Header {
                aggregation,
                max_retention,
                x_files_factor: xff,
                archives,
            },
            buf,
            len,
        ))
    }

    fn read_at(&self, buf: &mut [u8], at: u64) -> Result<()> {
        if let Some(whole) = &self.whole {
            let part = usize::try_from(at)
                .ok()
                .and_then(|at| whole.get(at..at.checked_add(buf.len())?));
            return match part {
                Some(part) => {
                    buf.copy_from_slice(part);
                    Ok(())
                }
                None => Err(io(&self.path)(std::io::ErrorKind::UnexpectedEof.into())),
            };
        }
        self.file.read_exact_at(buf, at).map_err(io(&self.path))
    }

    fn write_at(&self, buf: &[u8], at: u64) -> Result<()> {
        self.file.write_all_at(buf, at).map_err(io(&self.path))
    }

    fn index(&self, a: &ArchiveInfo) -> usize {
        self.header
            .archives
            .iter()
            .position(|x| x.offset == a.offset)
            .unwrap_or(0)
    }

    /// The timestamp in an archive's first slot (0 while it is empty).
    fn base(&self, a: &ArchiveInfo) -> Result<u32> {
        let cell = &self.bases[self.index(a)];
        if let Some(b) = cell.get() {
            return Ok(b);
        }
        let mut b = [0u8; 4];
        self.read_at(&mut b, a.offset())?;
        let b = be32(&b);
        cell.set(Some(b));
        Ok(b)
    }

    /// The file offset of `interval`'s slot, given the archive's base.
    fn slot(a: &ArchiveInfo, base: u32, interval: i64) -> u64 {
        let distance = (interval - base as i64).div_euclid(a.step());
        a.offset() + (distance * POINT_SIZE as i64).rem_euclid(a.size() as i64) as u64
    }

    /// Reads `count` consecutive slots starting at `first` (a file offset),
    /// wrapping at the archive's end.
    fn read_ring(&self, a: &ArchiveInfo, first: u64, count: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; (count * POINT_SIZE) as usize];
        self.read_ring_into(a, first, &mut buf)?;
        Ok(buf)
    }

    fn read_ring_into(&self, a: &ArchiveInfo, first: u64, buf: &mut [u8]) -> Result<()> {
        let end = a.offset() + a.size();
        let head = ((end - first) as usize).min(buf.len());
        self.read_at(&mut buf[..head], first)?;
        if head < buf.len() {
            self.read_at(&mut buf[head..], a.offset())?;
        }
        Ok(())
    }

    /// Writes packed points at `first`, wrapping at the archive's end.
    fn write_ring(&self, a: &ArchiveInfo, first: u64, data: &[u8]) -> Result<()> {
        let end = a.offset() + a.size();
        let head = ((end - first) as usize).min(data.len());
        self.write_at(&data[..head], first)?;
        self.note_write(first, &data[..head]);
        if head < data.len() {
            // As whisper does, the rest goes from the archive's start on,
            // even past its end when a run is longer than the archive.
            self.write_at(&data[head..], a.offset())?;
            self.note_write(a.offset(), &data[head..]);
        }
        Ok(())
    }

    /// Keeps the known bases right after `data` was written at `at`: any
    /// archive whose first slot it covers has a new base.
    fn note_write(&self, at: u64, data: &[u8]) {
        let end = at + data.len() as u64;
        for (a, cell) in self.header.archives.iter().zip(&self.bases) {
            let o = a.offset();
            if o + 4 <= at || o >= end {
                continue;
            }
            if o >= at && o + 4 <= end {
                let i = (o - at) as usize;
                cell.set(Some(be32(&data[i..i + 4])));
            } else {
                cell.set(None);
            }
        }
    }

    /// Whisper's propagation of the slot `interval` falls in from archive
    /// `higher` to `lower`; false when too few points are known.
    fn propagate(&self, interval: i64, higher: &ArchiveInfo, lower: &ArchiveInfo) -> Result<bool> {
        let lower_start = interval - interval.rem_euclid(lower.step());
        let hbase = self.base(higher)?;
        let first = if hbase == 0 {
            higher.offset()
        } else {
            Self::slot(higher, hbase, lower_start)
        };
        let count = (lower.seconds_per_point / higher.seconds_per_point) as u64;
        let series = self.read_ring(higher, first, count)?;
        let mut neighbors = Vec::with_capacity(count as usize);
        for (i, p) in series.chunks_exact(12).enumerate() {
            let (t, v) = point_at(p);
            neighbors.push((t as i64 == lower_start + i as i64 * higher.step()).then_some(v));
        }
        let known: Vec<f64> = neighbors.iter().flatten().copied().collect();
        if known.is_empty() {
            return Ok(false);
        }
        let xff = self.header.x_files_factor as f64;
        if (known.len() as f64 / neighbors.len() as f64) < xff {
            return Ok(false);
        }
        let value = self.header.aggregation.aggregate(&known, &neighbors);
        let lbase = self.base(lower)?;
        let at = if lbase == 0 {
            lower.offset()
        } else {
            Self::slot(lower, lbase, lower_start)
        };
        self.write_ring(lower, at, &pack_point(lower_start, value))?;
        Ok(true)
    }

    /// Whisper's `update`: one point; `timestamp` and `now` default to now.
    pub fn update(&self, value: f64, timestamp: Option<i64>, now: Option<i64>) -> Result<()> {
        let now = now.unwrap_or_else(unix_now);
        let ts = timestamp.unwrap_or(now);
        in_range(ts)?;
        let diff = now - ts;
        if !(diff >= 0 && diff < self.header.max_retention as i64) {
            return Err(WhisperError::TimestampNotCovered);
        }
        let archives = &self.header.archives;
        let Some(i) = archives.iter().position(|a| a.retention() as i64 >= diff) else {
            return Err(WhisperError::TimestampNotCovered);
        };
        let a = &archives[i];
        let interval = ts - ts.rem_euclid(a.step());
        let base = self.base(a)?;
        let at = if base == 0 {
            a.offset()
        } else {
            Self::slot(a, base, interval)
        };
        self.write_ring(a, at, &pack_point(interval, value))?;
        let mut higher = a;
        for lower in &archives[i + 1..] {
            if !self.propagate(interval, higher, lower)? {
                break;
            }
            higher = lower;
        }
        Ok(())
    }

    /// Whisper's `update_many`: points go to the finest archive that still
    /// covers their age, each archive written in runs of consecutive slots,
    /// then propagated once per affected coarser slot. Points older than the
    /// file's retention are dropped; of two points for the same second, the
    /// first given wins (as in whisper).
    pub fn update_many(&self, points: &[(i64, f64)], now: Option<i64>) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let now = now.unwrap_or_else(unix_now);
        for p in points {
            in_range(p.0)?;
        }
        let mut pts = points.to_vec();
        pts.sort_by_key(|p| std::cmp::Reverse(p.0)); // newest first, stable
        let archives = &self.header.archives;
        let mut idx = 0;
        let mut current: Vec<(i64, f64)> = Vec::new();
        for p in pts {
            let age = now - p.0;
            while (archives[idx].retention() as i64) < age {
                if !current.is_empty() {
                    current.reverse();
                    self.archive_update_many(idx, &current)?;
                    current.clear();
                }
                idx += 1;
                if idx == archives.len() {
                    return Ok(());
                }
            }
            current.push(p);
        }
        if !current.is_empty() {
            current.reverse();
            self.archive_update_many(idx, &current)?;
        }
        Ok(())
    }

    fn archive_update_many(&self, idx: usize, points: &[(i64, f64)]) -> Result<()> {
        let a = &self.header.archives[idx];
        let step = a.step();
        let aligned: Vec<(i64, f64)> = points
            .iter()
            .map(|(t, v)| (t - t.rem_euclid(step), *v))
            .collect();
        // Runs of consecutive slots: (last interval, packed points). As in
        // whisper, a run's start is worked out from its last slot, and a
        // previous slot at 0 (whisper tests `not previousInterval`) does not
        // end a run.
        let mut runs: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut prev: Option<i64> = None;
        for i in 0..aligned.len() {
            if i + 1 < aligned.len() && aligned[i].0 == aligned[i + 1].0 {
                continue;
            }
            let (interval, value) = aligned[i];
            let extend = matches!(prev, None | Some(0)) || prev == Some(interval - step);
            match runs.last_mut() {
                Some((last, buf)) if extend => {
                    buf.extend_from_slice(&pack_point(interval, value));
                    *last = interval;
                }
                _ => runs.push((interval, pack_point(interval, value).to_vec())),
            }
            prev = Some(interval);
        }
        let start = |(last, buf): &(i64, Vec<u8>)| last - step * (buf.len() as i64 / 12 - 1);
        let mut base = self.base(a)?;
        if base == 0 {
            base = start(&runs[0]) as u32;
        }
        for run in &runs {
            let buf = &run.1;
            let at = Self::slot(a, base, start(run));
            self.write_ring(a, at, buf)?;
        }
        let mut higher = a;
        for lower in self
            .header
            .archives
            .iter()
            .filter(|l| l.seconds_per_point > a.seconds_per_point)
        {
            let intervals: Vec<i64> = aligned
                .iter()
                .map(|(t, _)| t - t.rem_euclid(lower.step()))
                .collect();
            // whisper walks a Python set of these: when the lower archive is
            // still empty, the first one to propagate fixes its base, so the
            // order is CPython's.
            let mut further = false;
            for interval in python_set_order(&intervals) {
                if self.propagate(interval, higher, lower)? {
                    further = true;
                }
            }
            if !further {
                break;
            }
            higher = lower;
        }
        Ok(())
    }

    /// Whisper's `fetch`: `((from, until, step), values)`, `None` when the
    /// range is entirely outside the file's retention. `archive` picks an
    /// archive by its seconds per point.
    pub fn fetch(
        &self,
        from: i64,
        until: Option<i64>,
        now: Option<i64>,
        archive: Option<u32>,
    ) -> Result<Option<Series>> {
        let now = now.unwrap_or_else(unix_now);
        let until = until.unwrap_or(now);
        let Some((a, from, until)) = self.choose(from, until, now, archive)? else {
            return Ok(None);
        };
        self.archive_fetch(&a, from, until).map(Some)
    }

    /// `fetch`'s range check and archive: the archive (the one of `archive`
    /// seconds per point, or the finest that reaches back to `from`) and
    /// the range clamped to what files hold; None when nothing is kept.
    fn choose(
        &self,
        from: i64,
        until: i64,
        now: i64,
        archive: Option<u32>,
    ) -> Result<Option<(ArchiveInfo, i64, i64)>> {
        if from > until {
            return Err(WhisperError::InvalidTimeInterval(format!(
                "Invalid time interval: from time '{from}' is after until time '{until}'"
            )));
        }
        let oldest = now - self.header.max_retention as i64;
        if from > now || until < oldest {
            return Ok(None);
        }
        let (from, until) = (from.max(oldest), until.min(now));
        let diff = now - from;
        let archives = &self.header.archives;
        let a = match archive {
            Some(spp) => archives
                .iter()
                .find(|a| a.seconds_per_point == spp)
                .ok_or_else(|| {
                    WhisperError::InvalidRetention(format!("Invalid granularity: {spp}"))
                })?,
            None => archives
                .iter()
                .find(|a| a.retention() as i64 >= diff)
                .unwrap_or(&archives[archives.len() - 1]),
        };
        Ok(Some((*a, from, until)))
    }

    /// What `fetch` reads (its archive chosen as `fetch` chooses it),
    /// left undecoded: in the file's copy when it was read whole
    /// (`open_whole`), else in `buf` (reused from the call before). For a
    /// reader that folds many files into one series without holding each
    /// one's values.
    pub fn fetch_slots(
        mut self,
        from: i64,
        until: i64,
        now: i64,
        buf: Vec<u8>,
    ) -> Result<Option<Slots>> {
        let Some((a, from, until)) = self.choose(from, until, now, None)? else {
            return Ok(None);
        };
        let mut slots = self.archive_slots(&a, from, until)?;
        match (self.whole.take(), slots.ring) {
            (Some(whole), Some((first, count))) => {
                let ring = a.offset() as usize..(a.offset() + a.size()) as usize;
                let (first, bytes) = (first as usize, (count * POINT_SIZE) as usize);
                let head = (ring.end - first).min(bytes);
                slots.parts = [first..first + head, ring.start..ring.start + bytes - head];
                slots.raw = whole;
            }
            (_, Some((first, count))) => {
                let mut buf = buf;
                buf.clear();
                buf.resize((count * POINT_SIZE) as usize, 0);
                self.read_ring_into(&a, first, &mut buf)?;
                slots.parts = [0..buf.len(), 0..0];
                slots.raw = buf;
            }
            (_, None) => slots.raw = buf,
        }
        Ok(Some(slots))
    }

    /// Reads one archive's slots between two times (whisper's `__archive_fetch`).
    pub fn archive_fetch(&self, a: &ArchiveInfo, from: i64, until: i64) -> Result<Series> {
        let mut slots = self.archive_slots(a, from, until)?;
        if let Some((first, count)) = slots.ring {
            slots.raw = self.read_ring(a, first, count)?;
            slots.parts = [0..slots.raw.len(), 0..0];
        }
        Ok(Series {
            from: slots.from,
            until: slots.until,
            step: slots.step,
            values: slots.values().collect(),
        })
    }

    /// `archive_fetch`'s times, and where its points lie (`ring`: the
    /// first slot's offset and how many), not read yet.
    fn archive_slots(&self, a: &ArchiveInfo, from: i64, until: i64) -> Result<Slots> {
        let step = a.step();
        let from_i = from - from.rem_euclid(step) + step;
        let mut until_i = until - until.rem_euclid(step) + step;
        if from_i == until_i {
            until_i += step;
        }
        // Never written: every slot unknown. Else as many as whisper reads.
        let mut len = ((until_i - from_i) / step).max(0) as usize;
        let mut ring = None;
        let base = self.base(a)?;
        if base != 0 {
            let first = Self::slot(a, base, from_i);
            let last = Self::slot(a, base, until_i);
            let count = if first < last {
                (last - first) / POINT_SIZE
            } else {
                (a.offset() + a.size() - first + last - a.offset()) / POINT_SIZE
            };
            len = count as usize;
            ring = Some((first, count));
        }
        Ok(Slots {
            from: from_i,
            until: until_i,
            step,
            len,
            raw: Vec::new(),
            parts: [0..0, 0..0],
            ring,
        })
    }

    /// Whisper's `merge`: copies the known points of `from` (between
    /// `time_from` and `time_to`, default: all) into this file, archive by
    /// archive. Both files need the same archives.
    pub fn merge_from(
        &self,
        from: &Whisper,
        time_from: Option<i64>,
        time_to: Option<i64>,
        now: Option<i64>,
    ) -> Result<()> {
        if from.header.archives != self.header.archives {
            return Err(WhisperError::InvalidConfiguration(format!(
                "{} and {} archive configurations are unalike. Resize the input before merging",
                from.path.display(),
                self.path.display()
            )));
        }
        let now = now.unwrap_or_else(unix_now);
        // Nothing is stored past now: a later end would only size a huge
        // empty series.
        let until = time_to.unwrap_or(now).min(now);
        let start = time_from.unwrap_or(0);
        if until < start {
            return Err(WhisperError::InvalidTimeInterval(
                "time_to must be >= time_from".into(),
            ));
        }
        for (idx, a) in from.header.archives.iter().enumerate() {
            let oldest = now - a.retention() as i64;
            if until < oldest {
                continue;
            }
            let s = from.archive_fetch(a, start.max(oldest), until)?;
            let points: Vec<(i64, f64)> = s
                .values
                .iter()
                .enumerate()
                .filter_map(|(i, v)| v.map(|v| (s.from + i as i64 * s.step, v)))
                .collect();
            if !points.is_empty() {
                self.archive_update_many(idx, &points)?;
            }
        }
        Ok(())
    }

    /// Whisper's `diff`: per archive, the points where the two files differ
    /// (timestamp, this file's value, the other's) and how many were compared.
    pub fn diff(
        &self,
        other: &Whisper,
        ignore_empty: bool,
        until: Option<i64>,
        now: Option<i64>,
    ) -> Result<Vec<ArchiveDiff>> {
        if other.header.archives != self.header.archives {
            return Err(WhisperError::InvalidConfiguration(format!(
                "{} and {} archive configurations are unalike. Resize the input before diffing",
                self.path.display(),
                other.path.display()
            )));
        }
        let now = now.unwrap_or_else(unix_now);
        let mut until = until.filter(|u| *u != 0).unwrap_or(now).min(now);
        let mut out = Vec::new();
        for (n, a) in self.header.archives.iter().enumerate() {
            let start_time = now - a.retention() as i64;
            let x = self.archive_fetch(a, start_time, until)?;
            let y = other.archive_fetch(a, start_time, until)?;
            let (start, end, step) = (x.from.min(y.from), x.until.max(y.until), x.step.min(y.step));
            let count = ((end - start) / step).max(0) as usize;
            let points: Vec<(i64, Option<f64>, Option<f64>)> = (0..count)
                .map(|s| {
                    let v = |z: &Series| z.values.get(s).copied().flatten();
                    (start + s as i64 * step, v(&x), v(&y))
                })
                .filter(|(_, a, b)| {
                    if ignore_empty {
                        a.is_some() && b.is_some()
                    } else {
                        a.is_some() || b.is_some()
                    }
                })
                .collect();
            let total = points.len();
            let diffs = points
                .into_iter()
                .filter(|(_, a, b)| match (a, b) {
                    (Some(a), Some(b)) => !(a == b),
                    (a, b) => a.is_some() != b.is_some(),
                })
                .collect();
            out.push(ArchiveDiff {
                archive: n,
                diffs,
                total,
            });
            until = until.min(start_time);
        }
        Ok(out)
    }

    /// Every point of every archive, as stored: (slot, timestamp, value).
    pub fn dump_archive(&self, a: &ArchiveInfo) -> Result<Vec<(u32, f64)>> {
        let data = self.read_ring(a, a.offset(), a.points as u64)?;
        Ok(data.chunks_exact(12).map(point_at).collect())
    }

    /// Sets the aggregation method and/or xFilesFactor; returns the old ones.
    pub fn set_aggregation(
        &mut self,
        aggregation: Option<Aggregation>,
        xff: Option<f64>,
    ) -> Result<(Aggregation, f32)> {
        let old = (self.header.aggregation, self.header.x_files_factor);
        let agg = aggregation.unwrap_or(old.0);
        let xff = match xff {
            Some(x) if !(0.0..=1.0).contains(&x) => {
                return Err(WhisperError::InvalidXFilesFactor(format!(
                    "Invalid xFilesFactor {x}, not between 0 and 1"
                )))
            }
            Some(x) => x as f32,
            None => old.1,
        };
        let mut meta = [0u8; 16];
        meta[0..4].copy_from_slice(&(agg as u32).to_be_bytes());
        meta[4..8].copy_from_slice(&self.header.max_retention.to_be_bytes());
        meta[8..12].copy_from_slice(&xff.to_be_bytes());
        meta[12..16].copy_from_slice(&(self.header.archives.len() as u32).to_be_bytes());
        self.write_at(&meta, 0)?;
        self.header.aggregation = agg;
        self.header.x_files_factor = xff;
        Ok(old)
    }

    /// Takes an exclusive lock on the file (flock), as whisper does with LOCK on.
    pub fn lock(&self) -> Result<()> {
        rustix::fs::flock(&self.file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io(&self.path)(e.into()))
    }
}

/// The iteration order of `set(values)` in CPython (3.11's set table:
/// hash = the int itself, 9 linear probes then perturbed probing, the
/// table grown 4x when 3/5 full). Used where whisper iterates a set and the
/// order shows in the file.
pub fn python_set_order(values: &[i64]) -> Vec<i64> {
    const LINEAR_PROBES: usize = 9;
    const PERTURB_SHIFT: u32 = 5;
    fn hash(v: i64) -> u64 {
        // CPython's int hash: v mod (2^61 - 1), with -1 mapped to -2.
        let m: i128 = (1i128 << 61) - 1;
        let mut h = (v as i128).rem_euclid(m);
        if v < 0 {
            h -= m;
        }
        let h = if h == -1 { -2 } else { h };
        h as i64 as u64
    }
    fn insert(table: &mut [Option<i64>], v: i64) -> bool {
        let mask = table.len() - 1;
        let h = hash(v);
        let mut perturb = h;
        let mut i = (h as usize) & mask;
        loop {
            let probes = if i + LINEAR_PROBES <= mask {
                LINEAR_PROBES
            } else {
                0
            };
            for slot in &mut table[i..=i + probes] {
                match *slot {
                    None => {
                        *slot = Some(v);
                        return true;
                    }
                    Some(x) if x == v => return false,
                    Some(_) => {}
                }
            }
            perturb >>= PERTURB_SHIFT;
            i = (i
                .wrapping_mul(5)
                .wrapping_add(1)
                .wrapping_add(perturb as usize))
                & mask;
        }
    }
    let mut table: Vec<Option<i64>> = vec![None; 8];
    let mut used = 0usize;
    for &v in values {
        if insert(&mut table, v) {
            used += 1;
            let mask = table.len() - 1;
            if used * 5 >= mask * 3 {
                let min_used = if used > 50_000 { used * 2 } else { used * 4 };
                let mut size = 8;
                while size <= min_used {
                    size <<= 1;
                }
                let old = std::mem::replace(&mut table, vec![None; size]);
                for x in old.into_iter().flatten() {
                    insert(&mut table, x);
                }
            }
        }
    }
    table.into_iter().flatten().collect()
}

fn read_upto(f: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], at + n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// What `diff` finds in one archive.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveDiff {
    pub archive: usize,
    /// (timestamp, value in the first file, value in the second)
    pub diffs: Vec<(i64, Option<f64>, Option<f64>)>,
    /// How many points were compared.
    pub total: usize,
}

/// A fetched series: `values[i]` is the slot at `from + i * step`.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub from: i64,
    pub until: i64,
    pub step: i64,
    pub values: Vec<Option<f64>>,
}

/// An archive's slots between two times as stored (`fetch_slots`):
/// `len` values from `from` on, each known only where its slot holds its
/// own timestamp.
pub struct Slots {
    pub from: i64,
    pub until: i64,
    pub step: i64,
    len: usize,
    /// The points are `raw[parts[0]]` then `raw[parts[1]]` (an archive's
    /// ring wraps at its end).
    raw: Vec<u8>,
    parts: [std::ops::Range<usize>; 2],
    /// Where in the file they lie: the first slot's offset and how many.
    ring: Option<(u64, u64)>,
}

impl Slots {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn points(&self) -> impl Iterator<Item = &[u8]> {
        let [a, b] = &self.parts;
        let part = |r: &std::ops::Range<usize>| self.raw.get(r.clone()).unwrap_or(&[]);
        part(a)
            .chunks_exact(POINT_SIZE as usize)
            .chain(part(b).chunks_exact(POINT_SIZE as usize))
    }

    /// The values, as `fetch` gives them.
    pub fn values(&self) -> impl ExactSizeIterator<Item = Option<f64>> + '_ {
        let (from, step) = (self.from, self.step);
        let mut points = self.points();
        (0..self.len).map(move |i| {
            let (t, v) = point_at(points.next()?);
            (t as i64 == from + i as i64 * step).then_some(v)
        })
    }

    /// Calls `f(i, value)` for each known value, in order: what `values`
    /// gives, without the unknown ones.
    #[inline]
    pub fn each_known(&self, mut f: impl FnMut(usize, f64)) {
        let (mut i, mut t) = (0, self.from);
        for part in &self.parts {
            let Some(raw) = self.raw.get(part.clone()) else {
                return;
            };
            for p in raw.chunks_exact(POINT_SIZE as usize) {
                if i >= self.len {
                    return;
                }
                let (ts, v) = point_at(p);
                if ts as i64 == t {
                    f(i, v);
                }
                i += 1;
                t += self.step;
            }
        }
    }

    /// Adds each known value into `acc` and counts it in `known` (slot
    /// `i` into index `i`, as far as both reach): `each_known` for sums,
    /// without a branch per point, so the loop runs at the speed of the
    /// memory. Adding 0.0 for an unknown slot leaves every sum as it was
    /// (a sum started at +0.0 is never -0.0).
    pub fn add_into(&self, acc: &mut [f64], known: &mut [u32]) {
        let (mut i, mut t) = (0usize, self.from);
        for part in &self.parts {
            let Some(raw) = self.raw.get(part.clone()) else {
                return;
            };
            let (points, _) = raw.as_chunks::<{ POINT_SIZE as usize }>();
            let n = points
                .len()
                .min(self.len.saturating_sub(i))
                .min(acc.len().saturating_sub(i))
                .min(known.len().saturating_sub(i));
            let (acc, known) = (&mut acc[i..i + n], &mut known[i..i + n]);
            for ((p, a), k) in points[..n].iter().zip(acc).zip(known) {
                let ts = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                let v = f64::from_be_bytes([p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]]);
                let hit = ts as i64 == t;
                *a += if hit { v } else { 0.0 };
                *k += hit as u32;
                t += self.step;
            }
            i += n;
        }
    }

    /// The buffer, for the next read.
    pub fn into_buffer(self) -> Vec<u8> {
        self.raw
    }
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// How `create` lays out the points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Allocation {
    /// Zeroes written (whisper's default).
    #[default]
    Zeroed,
    /// Only the last byte written (a sparse file).
    Sparse,
    /// Space reserved with fallocate.
    Fallocate,
}

/// Whisper's `create`: a new file with `archives` as (seconds per point,
/// points); refuses to overwrite an existing file. The file is written
/// whole under a temporary name in the same directory and then renamed into
/// place, so a crash or a kill never leaves a truncated file at `path`.
pub fn create(
    path: &Path,
    archives: &[(u32, u32)],
    x_files_factor: f64,
    aggregation: Aggregation,
    allocation: Allocation,
) -> Result<()> {
    let mut list = archives.to_vec();
    validate_archive_list(&mut list)?;
    if !(0.0..=1.0).contains(&x_files_factor) {
        return Err(WhisperError::InvalidXFilesFactor(format!(
            "Invalid xFilesFactor {x_files_factor}, not between 0 and 1"
        )));
    }
    if path.exists() {
        return Err(WhisperError::InvalidConfiguration(format!(
            "File {} already exists!",
            path.display()
        )));
    }
    let oldest = list
        .iter()
        .map(|(s, p)| *s as u64 * *p as u64)
        .max()
        .unwrap_or(0) as u32;
    let header_size = METADATA_SIZE + ARCHIVE_INFO_SIZE * list.len() as u64;
    let mut head = Vec::with_capacity(header_size as usize);
    head.extend_from_slice(&(aggregation as u32).to_be_bytes());
    head.extend_from_slice(&oldest.to_be_bytes());
    head.extend_from_slice(&(x_files_factor as f32).to_be_bytes());
    head.extend_from_slice(&(list.len() as u32).to_be_bytes());
    let mut offset = header_size;
    for (spp, points) in &list {
        head.extend_from_slice(&(offset as u32).to_be_bytes());
        head.extend_from_slice(&spp.to_be_bytes());
        head.extend_from_slice(&points.to_be_bytes());
        offset += *points as u64 * POINT_SIZE;
    }
    let tmp = temporary_name(path);
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .map_err(io(path))?;
    let res = (|| -> std::io::Result<()> {
        file.write_all_at(&head, 0)?;
        match allocation {
            Allocation::Sparse => file.write_all_at(&[0], offset - 1)?,
            Allocation::Fallocate => {
                rustix::fs::fallocate(
                    &file,
                    rustix::fs::FallocateFlags::empty(),
                    header_size,
                    offset - header_size,
                )
                .map_err(std::io::Error::from)?;
            }
            Allocation::Zeroed => {
                let zeroes = vec![0u8; 1 << 16];
                let mut at = header_size;
                while at < offset {
                    let n = (offset - at).min(zeroes.len() as u64) as usize;
                    file.write_all_at(&zeroes[..n], at)?;
                    at += n as u64;
                }
            }
        }
        drop(file);
        rename_new(&tmp, path)
    })();
    if let Err(e) = res {
        let _ = std::fs::remove_file(&tmp);
        return Err(match e.kind() {
            std::io::ErrorKind::AlreadyExists => WhisperError::InvalidConfiguration(format!(
                "File {} already exists!",
                path.display()
            )),
            _ => io(path)(e),
        });
    }
    Ok(())
}

/// `.NAME.PID.N.tmp` beside `path`: hidden, not a `.wsp`, and unique to
/// this process and call.
fn temporary_name(path: &Path) -> PathBuf {
    static N: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|f| f.to_string_lossy())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.{}.{n}.tmp", std::process::id()))
}

/// Renames `from` to `to` unless `to` exists (then `AlreadyExists`).
fn rename_new(from: &Path, to: &Path) -> std::io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        Ok(()) => Ok(()),
        // A file system without RENAME_NOREPLACE: a hard link refuses an
        // existing name as well.
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => {
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        Err(e) => Err(e.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_definitions() {
        assert_eq!(parse_retention_def("60:1440").expect("def"), (60, 1440));
        assert_eq!(parse_retention_def("10s:6h").expect("def"), (10, 2160));
        assert_eq!(parse_retention_def("1m:7d").expect("def"), (60, 10080));
        assert_eq!(parse_retention_def("1min:1y").expect("def"), (60, 525_600));
        assert_eq!(parse_retention_def("5h:2w").expect("def"), (18000, 67));
        assert!(parse_retention_def("60").is_err());
        assert!(parse_retention_def("1x:10").is_err());
        assert!(parse_retention_def("1m:10q").is_err());
    }

    #[test]
    fn archive_rules() {
        let mut ok = vec![(60, 1440), (10, 360)];
        validate_archive_list(&mut ok).expect("valid");
        assert_eq!(ok, vec![(10, 360), (60, 1440)]);
        for bad in [
            vec![],
            vec![(10, 10), (10, 20)],
            vec![(10, 60), (15, 100)],
            vec![(10, 60), (60, 10)],
            vec![(10, 5), (60, 100)],
        ] {
            let mut b = bad.clone();
            assert!(validate_archive_list(&mut b).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn set_order_like_cpython() {
        // Orders printed by CPython 3.11 for list(set([...])).
        assert_eq!(python_set_order(&[3, 1, 2]), vec![1, 2, 3]);
        assert_eq!(python_set_order(&[10, 2, 18, 2]), vec![18, 10, 2]);
        assert_eq!(
            python_set_order(&[1_700_000_040, 1_700_000_000, 1_700_000_020, 1_700_000_060]),
            vec![1_700_000_040, 1_700_000_000, 1_700_000_020, 1_700_000_060]
        );
    }

    #[test]
    fn aggregation_like_python() {
        let n = |v: &[f64]| v.iter().map(|x| Some(*x)).collect::<Vec<_>>();
        assert_eq!(
            Aggregation::Average.aggregate(&[1.0, 2.0], &n(&[1.0, 2.0])),
            1.5
        );
        assert_eq!(
            Aggregation::AbsMax.aggregate(&[-3.0, 3.0], &n(&[-3.0, 3.0])),
            -3.0
        );
        assert_eq!(
            Aggregation::AbsMin.aggregate(&[2.0, -1.0, 1.0], &n(&[2.0, -1.0, 1.0])),
            -1.0
        );
        assert!(Aggregation::Max
            .aggregate(&[0.0, -0.0], &n(&[0.0, -0.0]))
            .is_sign_positive());
        assert!(Aggregation::Sum
            .aggregate(&[-0.0], &n(&[-0.0]))
            .is_sign_positive());
        assert_eq!(
            Aggregation::AvgZero.aggregate(&[4.0], &[Some(4.0), None]),
            2.0
        );
        assert_eq!(
            Aggregation::Last.aggregate(&[1.0, 9.0], &n(&[1.0, 9.0])),
            9.0
        );
    }

    /// `fetch_slots` decodes to what `fetch` gives, read whole or not,
    /// over a wrapped ring, a range in the second archive, and a file
    /// never written.
    #[test]
    fn slots_are_what_fetch_gives() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("a.wsp");
        let now = 1_800_000_000;
        create(
            &p,
            &[(60, 100), (600, 100)],
            0.0,
            Aggregation::Sum,
            Allocation::Sparse,
        )
        .expect("create");
        let w = Whisper::open(&p, true).expect("open");
        for i in (0..250).filter(|i| i % 5 != 2) {
            w.update(
                i as f64,
                Some(now - 15_000 + 60 * i),
                Some(now - 15_000 + 60 * i),
            )
            .expect("update");
        }
        let empty = d.path().join("e.wsp");
        create(
            &empty,
            &[(60, 100)],
            0.0,
            Aggregation::Sum,
            Allocation::Sparse,
        )
        .expect("create");
        for (file, from) in [
            (&p, 5_000),
            (&p, 1_234),
            (&p, 60),
            (&p, 40_000),
            (&empty, 3_000),
        ] {
            let want = Whisper::open(file, false)
                .expect("open")
                .fetch(now - from, Some(now), Some(now), None)
                .expect("fetch")
                .expect("in range");
            for whole in [0, 1 << 20] {
                let slots = Whisper::open_whole(file, whole)
                    .expect("open")
                    .fetch_slots(now - from, now, now, vec![7; 3])
                    .expect("slots")
                    .expect("in range");
                assert_eq!(
                    (slots.from, slots.until, slots.step),
                    (want.from, want.until, want.step)
                );
                let values: Vec<Option<f64>> = slots.values().collect();
                assert_eq!(values, want.values, "{file:?} -{from}s whole {whole}");
                let mut known = vec![None; slots.len()];
                slots.each_known(|i, v| known[i] = Some(v));
                assert_eq!(known, want.values);
                // Added onto 1.0 each: the known values plus one, counted.
                let (mut acc, mut count) = (vec![1.0; slots.len()], vec![0u32; slots.len()]);
                slots.add_into(&mut acc, &mut count);
                let sums: Vec<Option<f64>> = acc
                    .iter()
                    .zip(&count)
                    .map(|(a, c)| (*c == 1).then_some(a - 1.0))
                    .collect();
                assert_eq!(sums, want.values);
                assert!(count.iter().all(|c| *c <= 1));
            }
        }
        assert!(want_known(&p, now));
    }

    /// Some of what the test above compares is known (not all gaps).
    fn want_known(p: &Path, now: i64) -> bool {
        let got = Whisper::open(p, false)
            .expect("open")
            .fetch(now - 1_234, Some(now), Some(now), None)
            .expect("fetch")
            .expect("in range");
        got.values.iter().any(Option::is_some) && got.values.iter().any(Option::is_none)
    }

    fn bad_file(bytes: &[u8]) -> (String, bool) {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("bad.wsp");
        std::fs::write(&p, bytes).expect("write");
        let e = match Whisper::open(&p, true) {
            Ok(w) => match w.update(1.0, Some(1_700_000_000), Some(1_700_000_000)) {
                Ok(()) => return (String::new(), true),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        let untouched = std::fs::read(&p).expect("read") == bytes;
        assert!(e.contains("bad.wsp"), "the error names the file: {e}");
        (e, untouched)
    }

    fn header(agg: u32, count: u32, archives: &[(u32, u32, u32)]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [agg, 60, 0.5f32.to_bits(), count] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        for (o, s, p) in archives {
            for v in [o, s, p] {
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
        b
    }

    #[test]
    fn bad_files_are_named_and_never_written() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "not whisper",
                b"hello, this is not a whisper file at all".to_vec(),
            ),
            ("truncated header", vec![0, 0, 0, 1, 0, 0]),
            ("zero archives", header(1, 0, &[])),
            ("table past the end", header(1, 1000, &[(28, 60, 1)])),
            ("unknown aggregation", header(99, 1, &[(28, 60, 1)])),
            ("points overflow", {
                let mut b = header(1, 1, &[(28, 60, u32::MAX)]);
                b.extend_from_slice(&[0; 24]);
                b
            }),
            ("archive past the end", {
                let mut b = header(1, 1, &[(28, 60, 10)]);
                b.extend_from_slice(&[0; 12]);
                b
            }),
        ];
        for (what, bytes) in cases {
            let (e, untouched) = bad_file(&bytes);
            assert!(!e.is_empty(), "{what}: accepted");
            assert!(untouched, "{what}: the file was written");
        }
    }

    /// Random damage to a valid file's header: an error or a success, never
    /// a panic or an out-of-bounds write.
    #[test]
    fn damaged_headers_never_panic() {
        let d = tempfile::tempdir().expect("tempdir");
        let good = d.path().join("good.wsp");
        create(
            &good,
            &[(1, 20), (10, 12)],
            0.5,
            Aggregation::Average,
            Allocation::Zeroed,
        )
        .expect("create");
        let bytes = std::fs::read(&good).expect("read");
        let mut rng = fastrand::Rng::with_seed(7);
        let p = d.path().join("fuzz.wsp");
        for _ in 0..3000 {
            let mut b = bytes.clone();
            for _ in 0..rng.usize(1..6) {
                let i = rng.usize(..40);
                b[i] = rng.u8(..);
            }
            if rng.bool() {
                b.truncate(rng.usize(..b.len()));
            }
            std::fs::write(&p, &b).expect("write");
            let len = b.len() as u64;
            if let Ok(w) = Whisper::open(&p, true) {
                let now = 1_700_000_000;
                let _ = w.update_many(&[(now - 5, 1.0), (now - 50, 2.0)], Some(now));
                let _ = w.fetch(now - 100, Some(now), Some(now), None);
                assert_eq!(
                    std::fs::metadata(&p).expect("meta").len(),
                    len,
                    "never grows the file"
                );
            }
        }
    }

    /// The case the seeded damage test found: an archive table whose
    /// consolidation would read billions of slots is refused, not allocated.
    #[test]
    fn regression_huge_consolidation_is_refused() {
        let mut b = header(1, 2, &[(40, 1, 20), (280, 3_000_000_000, 1)]);
        b.extend_from_slice(&[0; 21 * 12]);
        let (e, untouched) = bad_file(&b);
        assert!(e.contains("Invalid archive layout"), "{e}");
        assert!(untouched);
    }

    proptest::proptest! {
        /// Any bytes at all: opening, updating and fetching give a result or
        /// an error, never a panic, and never grow the file.
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let d = tempfile::tempdir().expect("tempdir");
            let p = d.path().join("p.wsp");
            std::fs::write(&p, &bytes).expect("write");
            if let Ok(w) = Whisper::open(&p, true) {
                let now = 1_700_000_000;
                let _ = w.update(1.0, Some(now - 1), Some(now));
                let _ = w.update_many(&[(now - 3, 2.0), (now - 30, 3.0)], Some(now));
                let _ = w.fetch(now - 1000, Some(now), Some(now), None);
                proptest::prop_assert_eq!(std::fs::metadata(&p).expect("meta").len(), bytes.len() as u64);
            }
        }

        /// Valid headers with random archive tables: the same.
        #[test]
        fn random_archive_tables_never_panic(
            table in proptest::collection::vec((0u32..2000, 0u32..100_000, 0u32..50), 1..5),
            agg in 0u32..10,
        ) {
            let mut b = header(agg, table.len() as u32, &table);
            b.extend_from_slice(&vec![0u8; 600]);
            let d = tempfile::tempdir().expect("tempdir");
            let p = d.path().join("t.wsp");
            std::fs::write(&p, &b).expect("write");
            if let Ok(w) = Whisper::open(&p, true) {
                let now = 1_700_000_000;
                let _ = w.update_many(&[(now - 3, 2.0), (now - 300, 3.0)], Some(now));
                let _ = w.fetch(now - 100_000, Some(now), Some(now), None);
                proptest::prop_assert_eq!(std::fs::metadata(&p).expect("meta").len(), b.len() as u64);
            }
        }
    }

    #[test]
    fn sparse_and_fallocated_files_read_the_same() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut sizes = Vec::new();
        for (n, alloc) in [
            Allocation::Zeroed,
            Allocation::Sparse,
            Allocation::Fallocate,
        ]
        .into_iter()
        .enumerate()
        {
            let p = d.path().join(format!("{n}.wsp"));
            create(&p, &[(60, 100), (600, 100)], 0.5, Aggregation::Sum, alloc).expect("create");
            sizes.push(std::fs::read(&p).expect("read"));
        }
        assert_eq!(sizes[0], sizes[1]);
        assert_eq!(sizes[0], sizes[2]);
    }

    #[test]
    fn create_update_fetch_round_trip() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("a.wsp");
        create(
            &p,
            &[(60, 10), (300, 12)],
            0.5,
            Aggregation::Average,
            Allocation::Zeroed,
        )
        .expect("create");
        assert_eq!(
            std::fs::metadata(&p).expect("meta").len(),
            16 + 24 + 22 * 12
        );
        let w = Whisper::open(&p, true).expect("open");
        let now = 1_700_000_000;
        for i in 0..10 {
            w.update(i as f64, Some(now - 600 + i * 60), Some(now))
                .expect("update");
        }
        let s = w
            .fetch(now - 600, Some(now), Some(now), None)
            .expect("fetch")
            .expect("series");
        assert_eq!(s.step, 60);
        // whisper's from is exclusive: the first slot is not returned.
        assert_eq!(s.values.iter().flatten().count(), 9);
        assert!(
            create(
                &p,
                &[(60, 10)],
                0.5,
                Aggregation::Average,
                Allocation::Zeroed
            )
            .is_err(),
            "no overwrite"
        );
        assert!(matches!(
            w.update(1.0, Some(now + 10), Some(now)),
            Err(WhisperError::TimestampNotCovered)
        ));
    }
}
