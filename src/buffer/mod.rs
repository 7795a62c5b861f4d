//! The disk buffer behind a handler (`buffer = "disk"`): what the handler
//! has not delivered yet, kept in files so that an outage longer than
//! memory allows, a restart, a `kill -9` or an `agent --once` run from
//! cron that cannot deliver loses nothing.
//!
//! A buffer is a directory of segment files (`<first seq>.seg`) of
//! checksummed records ([`record`]) and an `ack` file naming the first
//! record not yet delivered. Samples are appended as the scheduler hands
//! them over; the handler takes them in order and, once the receiver took
//! them, settles them (see [`disk::Disk::settle`]); settled segments are
//! deleted. On opening, a torn last record (a write cut by a crash) is cut
//! off and everything after the `ack` is delivered again: at least once,
//! never silently lost. When the buffer is full the oldest segment goes,
//! counted in `dropped`.

pub mod command;
pub mod disk;
pub mod record;

use crate::config::ConfigError;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Where a handler keeps what it has not delivered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// A bounded queue in memory (`max_queue`): lost on restart.
    #[default]
    Memory,
    /// Segment files under `buffer_dir`, bounded by `max_buffer_bytes`.
    Disk,
}

/// When appended records and acknowledgements reach the disk itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Fsync {
    /// At most once a second: a power cut may lose the last second (a
    /// killed process loses nothing: the kernel holds the writes).
    #[default]
    Batch,
    /// After every append and acknowledgement.
    Always,
    /// Left to the kernel.
    Never,
}

/// The buffer keys of a `[handlers.NAME]` section.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BufferConfig {
    pub buffer: Kind,
    pub max_buffer_bytes: u64,
    /// Empty: `state_dir/buffers/<handler>`.
    pub buffer_dir: String,
    pub fsync: Fsync,
}

impl Default for BufferConfig {
    fn default() -> Self {
        BufferConfig {
            buffer: Kind::Memory,
            max_buffer_bytes: 256 << 20,
            buffer_dir: String::new(),
            fsync: Fsync::Batch,
        }
    }
}

/// The keys [`BufferConfig`] takes out of a handler's section.
pub const KEYS: &[&str] = &["buffer", "max_buffer_bytes", "buffer_dir", "fsync"];

/// The smallest `max_buffer_bytes`: a few segments.
pub const MIN_BYTES: u64 = 64 << 10;

impl BufferConfig {
    /// Takes the buffer keys out of a handler's section.
    pub fn take_from(key: &str, table: &mut toml::Table) -> Result<Self, ConfigError> {
        let mut own = toml::Table::new();
        for k in KEYS {
            if let Some(v) = table.remove(*k) {
                own.insert((*k).to_string(), v);
            }
        }
        let c: BufferConfig = crate::config::options_from_table(key, own)?;
        if c.max_buffer_bytes < MIN_BYTES {
            return Err(ConfigError::new(
                format!("{key}.max_buffer_bytes"),
                format!("must be at least {MIN_BYTES} bytes"),
            ));
        }
        Ok(c)
    }

    /// The directory of handler `name`'s buffer.
    pub fn dir(&self, state_dir: &Path, name: &str) -> PathBuf {
        if self.buffer_dir.is_empty() {
            state_dir.join("buffers").join(name)
        } else {
            PathBuf::from(&self.buffer_dir)
        }
    }

    /// The keys as `config check` shows them.
    pub fn to_table(&self) -> toml::Table {
        toml::Table::try_from(self).unwrap_or_default()
    }
}

/// A disk buffer to open: where, how large, how safe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Spec {
    pub dir: PathBuf,
    pub max_bytes: u64,
    pub fsync: Fsync,
}

impl Spec {
    /// The buffer of one part of a handler (a destination), in a
    /// directory of its own under this one.
    pub fn part(&self, label: &str) -> Spec {
        let safe: String = label
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        Spec {
            dir: self.dir.join(safe),
            ..self.clone()
        }
    }
}

/// The buffers of a handler's parts (one per destination of a Graphite
/// handler with several): the folders in its own that hold a buffer.
pub fn part_dirs(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.is_dir() && p.join("lock").is_file())
        .collect();
    out.sort();
    out
}

/// What a buffer holds, as `carbyne buffer status` shows it.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Status {
    pub dir: PathBuf,
    /// Records not yet delivered.
    pub records: u64,
    /// Bytes of the segment files.
    pub bytes: u64,
    /// The timestamp of the oldest record not yet delivered.
    pub oldest: Option<i64>,
    /// Damage found (a torn last record, a bad checksum), if any.
    pub damage: Option<String>,
}

/// Reads a buffer's state without changing it (while its owner may be
/// writing): the records after the acknowledgement, their bytes and the
/// oldest timestamp. A missing directory is an empty buffer.
pub fn status(dir: &Path) -> std::io::Result<Status> {
    disk::inspect(dir)
}
