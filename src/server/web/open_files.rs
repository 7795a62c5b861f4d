//! Whisper files kept open for reading between requests (`keep_open_files`).
//!
//! A render over 1 000 files spent a third of its time opening, inspecting
//! and closing them. Here each read still looks the path up (`statx`),
//! so a file replaced under its name (whisper-resize, a restore, the
//! receiver creating it anew) or deleted is noticed on the next read: the
//! kept descriptor is used only while it is still the file at that path
//! (same device and inode). Reads through it are positioned (`pread`), so
//! requests share a descriptor safely.
//!
//! Bounded: at most `capacity` descriptors (and never more than a quarter
//! of the process's descriptor limit, which the receivers need too);
//! when full, a new file is read through a descriptor of its own as before
//! rather than evicting one in use. A descriptor not used for `IDLE` is
//! closed by `sweep` (the web server sweeps every 10 s), which also lets
//! the disk space of a file deleted or replaced behind a kept descriptor
//! go. Running out of descriptors closes every kept one before the open
//! is tried again.

use std::collections::HashMap;
use std::fs::{File, Metadata};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How long a kept descriptor may go unused before it is closed.
pub const IDLE: Duration = Duration::from_secs(120);

struct Entry {
    file: Arc<File>,
    dev: u64,
    ino: u64,
    used: Instant,
}

pub struct OpenFiles {
    capacity: usize,
    map: Mutex<HashMap<PathBuf, Entry>>,
}

/// A file to read: its descriptor and length.
pub struct Opened {
    pub file: Arc<File>,
    pub len: u64,
}

/// The descriptors `OpenFiles::new(wanted)` keeps at most: `wanted`,
/// within a quarter of the open file limit. The carbon receiver of the
/// same process leaves them out of its own budget
/// (`crate::server::reserve_open_files`).
pub fn capacity(wanted: usize) -> usize {
    wanted.min(descriptor_limit() / 4)
}

impl OpenFiles {
    /// Keeps at most `capacity(wanted)` descriptors; 0 keeps none.
    pub fn new(wanted: usize) -> Self {
        OpenFiles {
            capacity: capacity(wanted),
            map: Mutex::new(HashMap::new()),
        }
    }

    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Descriptors kept now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PathBuf, Entry>> {
        // A panic elsewhere while holding it leaves a map still whole.
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Lets the descriptor kept for `path` go (closed once no read holds
    /// it): after a read through it failed, so that the next read opens
    /// the file anew rather than failing on the same descriptor.
    pub fn forget(&self, path: &Path) {
        if self.capacity > 0 {
            let gone = self.lock().remove(path);
            drop(gone);
        }
    }

    /// The regular file at `path`, from a kept descriptor when it is still
    /// the file there; `Ok(None)` when `path` is something else than a
    /// regular file (the caller's own open reports it). Errors are those
    /// of looking `path` up or opening it.
    pub fn open(&self, path: &Path) -> std::io::Result<Option<Opened>> {
        let meta = match std::fs::metadata(path) {
            Ok(meta) if meta.is_file() => meta,
            other => {
                // Deleted, unreadable or no longer a file: let go.
                self.forget(path);
                return other.map(|_| None);
            }
        };
        if self.capacity > 0 {
            let mut map = self.lock();
            if let Some(e) = map.get_mut(path) {
                if (e.dev, e.ino) == (meta.dev(), meta.ino()) {
                    e.used = Instant::now();
                    return Ok(Some(Opened {
                        file: e.file.clone(),
                        len: meta.len(),
                    }));
                }
                // Replaced under its name: the old one is let go (closed
                // once the lock is released).
                let old = map.remove(path);
                drop(map);
                drop(old);
            }
        }
        let (file, meta) = match open_read(path) {
            Err(e) if is_out_of_descriptors(&e) && !self.is_empty() => {
                let kept = std::mem::take(&mut *self.lock());
                log::warn!(
                    "web: out of file descriptors; closing the {} kept open for reading",
                    kept.len()
                );
                drop(kept);
                open_read(path)?
            }
            r => r?,
        };
        if !meta.is_file() {
            return Ok(None);
        }
        let file = Arc::new(file);
        if self.capacity > 0 {
            let mut map = self.lock();
            if map.len() < self.capacity {
                map.insert(
                    path.to_path_buf(),
                    Entry {
                        file: file.clone(),
                        dev: meta.dev(),
                        ino: meta.ino(),
                        used: Instant::now(),
                    },
                );
            }
        }
        Ok(Some(Opened {
            file,
            len: meta.len(),
        }))
    }

    /// Closes the descriptors unused for `idle`; how many were closed.
    /// (Closed after the lock is released: readers do not wait on them.)
    pub fn sweep(&self, idle: Duration) -> usize {
        let mut idle_ones = Vec::new();
        self.lock().retain(|_, e| {
            let keep = e.used.elapsed() < idle;
            if !keep {
                idle_ones.push(e.file.clone());
            }
            keep
        });
        idle_ones.len()
    }
}

/// Read-only and non-blocking (opening a FIFO returns at once), with the
/// descriptor's own metadata: what will be read, whatever the path says by
/// now.
fn open_read(path: &Path) -> std::io::Result<(File, Metadata)> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)?;
    let meta = file.metadata()?;
    Ok((file, meta))
}

fn is_out_of_descriptors(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE) | Some(libc::ENFILE))
}

/// The soft limit on open descriptors, raised to the hard one first.
fn descriptor_limit() -> usize {
    usize::try_from(crate::server::raise_open_file_limit()).unwrap_or(usize::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read_all(o: &Opened) -> String {
        let mut s = String::new();
        (&*o.file).read_to_string(&mut s).expect("read");
        s
    }

    #[test]
    fn kept_while_the_path_names_the_same_file() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("a.wsp");
        std::fs::write(&p, "one").expect("write");
        let files = OpenFiles::new(10);
        let a = files.open(&p).expect("open").expect("file");
        let b = files.open(&p).expect("open").expect("file");
        assert!(Arc::ptr_eq(&a.file, &b.file));
        assert_eq!(files.len(), 1);
        // Replaced by a rename, as whisper-resize does: the new file is read.
        let tmp = d.path().join("a.wsp.tmp");
        std::fs::write(&tmp, "two!").expect("write");
        std::fs::rename(&tmp, &p).expect("rename");
        let c = files.open(&p).expect("open").expect("file");
        assert!(!Arc::ptr_eq(&a.file, &c.file));
        assert_eq!((read_all(&c), c.len), ("two!".to_string(), 4));
        // A read through it failed: forgotten, the next open is anew.
        files.forget(&p);
        assert!(files.is_empty());
        let c = files.open(&p).expect("open").expect("file");
        // Replaced by a directory: not a file any more, let go.
        std::fs::remove_file(&p).expect("remove");
        std::fs::create_dir(&p).expect("mkdir");
        assert!(files.open(&p).expect("open").is_none());
        assert!(files.is_empty());
        std::fs::remove_dir(&p).expect("rmdir");
        std::fs::write(&p, "three").expect("write");
        drop(c);
        assert!(files.open(&p).expect("open").is_some());
        // Deleted: an error, as opening it would be, and let go.
        std::fs::remove_file(&p).expect("remove");
        let gone = files.open(&p).err().expect("gone");
        assert_eq!(gone.kind(), std::io::ErrorKind::NotFound);
        assert!(files.is_empty());
    }

    #[test]
    fn bounded_and_swept() {
        let d = tempfile::tempdir().expect("tempdir");
        let files = OpenFiles::new(2);
        for i in 0..5 {
            let p = d.path().join(format!("{i}.wsp"));
            std::fs::write(&p, "x").expect("write");
            assert!(files.open(&p).expect("open").is_some());
        }
        assert_eq!(files.len(), 2);
        assert_eq!(files.sweep(IDLE), 0);
        assert_eq!(files.sweep(Duration::ZERO), 2);
        // Kept none when asked for none; directories are not files.
        let none = OpenFiles::new(0);
        assert!(none.open(&d.path().join("1.wsp")).expect("open").is_some());
        assert!(none.is_empty());
        assert!(none.open(d.path()).expect("open").is_none());
    }

    #[test]
    fn never_more_than_a_quarter_of_the_descriptor_limit() {
        let files = OpenFiles::new(usize::MAX);
        assert_eq!(files.capacity(), descriptor_limit() / 4);
    }
}
