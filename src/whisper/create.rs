//! Whisper's `create`: a new file written whole under a temporary name and
//! renamed into place.

use super::*;
use std::fs::OpenOptions;
use std::os::unix::fs::FileExt;

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
