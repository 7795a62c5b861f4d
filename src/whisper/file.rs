//! An open whisper file: opening it, reading its header, and the positioned
//! reads and writes of an archive's ring that every operation is built on.

use super::*;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;

/// An open whisper file: its handle, path and header, and the base (first
/// slot's timestamp) of each archive as far as known. While a handle is open
/// it assumes it is the only writer (whisper's flock, [`Whisper::lock`]), so
/// a long-lived handle reads neither the header nor the bases again.
pub struct Whisper {
    /// Shared with a cache of open files for `open_shared`; every access
    /// is a positioned read or write, so sharing it is safe.
    pub(super) file: std::sync::Arc<File>,
    pub(super) path: PathBuf,
    pub header: Header,
    pub(super) bases: Vec<std::cell::Cell<Option<u32>>>,
    /// The whole file, when it was read at once (`open_whole`).
    pub(super) whole: Option<Vec<u8>>,
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

    pub(super) fn open_with(path: &Path, write: bool, whole: u64) -> Result<Self> {
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

    pub(super) fn with_file(
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
    pub(super) fn read_header(
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

    pub(super) fn read_at(&self, buf: &mut [u8], at: u64) -> Result<()> {
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

    pub(super) fn write_at(&self, buf: &[u8], at: u64) -> Result<()> {
        self.file.write_all_at(buf, at).map_err(io(&self.path))
    }

    pub(super) fn index(&self, a: &ArchiveInfo) -> usize {
        self.header
            .archives
            .iter()
            .position(|x| x.offset == a.offset)
            .unwrap_or(0)
    }

    /// The timestamp in an archive's first slot (0 while it is empty).
    pub(super) fn base(&self, a: &ArchiveInfo) -> Result<u32> {
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
    pub(super) fn slot(a: &ArchiveInfo, base: u32, interval: i64) -> u64 {
        let distance = (interval - base as i64).div_euclid(a.step());
        a.offset() + (distance * POINT_SIZE as i64).rem_euclid(a.size() as i64) as u64
    }

    /// Reads `count` consecutive slots starting at `first` (a file offset),
    /// wrapping at the archive's end.
    pub(super) fn read_ring(&self, a: &ArchiveInfo, first: u64, count: u64) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; (count * POINT_SIZE) as usize];
        self.read_ring_into(a, first, &mut buf)?;
        Ok(buf)
    }

    pub(super) fn read_ring_into(&self, a: &ArchiveInfo, first: u64, buf: &mut [u8]) -> Result<()> {
        let end = a.offset() + a.size();
        let head = ((end - first) as usize).min(buf.len());
        self.read_at(&mut buf[..head], first)?;
        if head < buf.len() {
            self.read_at(&mut buf[head..], a.offset())?;
        }
        Ok(())
    }

    /// Writes packed points at `first`, wrapping at the archive's end.
    pub(super) fn write_ring(&self, a: &ArchiveInfo, first: u64, data: &[u8]) -> Result<()> {
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
    pub(super) fn note_write(&self, at: u64, data: &[u8]) {
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

    /// Takes an exclusive lock on the file (flock), as whisper does with LOCK on.
    pub fn lock(&self) -> Result<()> {
        rustix::fs::flock(&self.file, rustix::fs::FlockOperation::LockExclusive)
            .map_err(|e| io(&self.path)(e.into()))
    }
}

pub(super) fn read_upto(f: &File, buf: &mut [u8], at: u64) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match f.read_at(&mut buf[n..], at + n as u64)? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}
