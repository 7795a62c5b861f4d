//! Rates from counters: the previous raw readings of every collector, the
//! derivative between two runs, and the state file that carries them from
//! one `agent --once` run to the next.

use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};

/// The previous raw readings of one collector and when they were taken.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct CounterState {
    /// Unix time (seconds, fractional) of the run that took these readings.
    pub time: f64,
    pub values: HashMap<String, u64>,
}

/// The counters of one collector run: reads the previous state, records the new one.
#[derive(Debug)]
pub struct Counters {
    prev: HashMap<String, u64>,
    next: HashMap<String, u64>,
    now: f64,
    elapsed: Option<f64>,
}

/// The increase of a counter from `old` to `new`.
///
/// A counter that went down either wrapped around 2^32 (a 32-bit kernel
/// counter) or was reset (reboot, driver reload). A wrap is assumed only when
/// the old value fits in 32 bits and the wrapped increase is plausible (under
/// 2^31); anything else is a reset and gives no value rather than a wrong one.
pub fn counter_delta(old: u64, new: u64) -> Option<u64> {
    if new >= old {
        return Some(new - old);
    }
    const WRAP: u64 = 1 << 32;
    if old < WRAP && new < WRAP {
        let d = WRAP - old + new;
        if d < (1 << 31) {
            return Some(d);
        }
    }
    None
}

impl Counters {
    /// Starts a run at unix time `now`, after the run recorded in `prev` (if any).
    pub fn begin(prev: Option<CounterState>, now: f64) -> Self {
        let (prev, elapsed) = match prev {
            Some(p) if now > p.time => (p.values, Some(now - p.time)),
            _ => (HashMap::new(), None),
        };
        Counters {
            next: HashMap::with_capacity(prev.len()),
            prev,
            now,
            elapsed,
        }
    }

    /// Seconds since the previous run, measured; `None` on the first run.
    pub fn elapsed(&self) -> Option<f64> {
        self.elapsed
    }

    /// Records `raw` under `key` and returns its increase since the previous
    /// run, or `None` on the first run or after a reset.
    pub fn delta(&mut self, key: &str, raw: u64) -> Option<f64> {
        let old = self.prev.get(key).copied();
        match self.next.get_mut(key) {
            Some(v) => *v = raw,
            None => {
                self.next.insert(key.to_owned(), raw);
            }
        }
        self.elapsed?;
        counter_delta(old?, raw).map(|d| d as f64)
    }

    /// The per-second rate of the counter `key` over the measured elapsed time.
    pub fn rate(&mut self, key: &str, raw: u64) -> Option<f64> {
        let d = self.delta(key, raw)?;
        Some(d / self.elapsed?)
    }

    /// The state to keep for the next run.
    pub fn finish(self) -> CounterState {
        CounterState {
            time: self.now,
            values: self.next,
        }
    }
}

/// All collectors' counters, as kept on disk between `--once` runs.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct StateFile {
    pub version: u32,
    /// The kernel's boot id when the counters were read: after a reboot every
    /// counter restarted, so old readings are discarded.
    pub boot_id: String,
    pub collectors: BTreeMap<String, CounterState>,
}

impl StateFile {
    pub const VERSION: u32 = 1;

    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join("agent-counters.json")
    }

    /// Loads the state; a missing, unreadable or foreign (other boot) file
    /// gives an empty state, so the run emits no rates instead of wrong ones.
    pub fn load(state_dir: &Path, boot_id: &str) -> Self {
        let path = Self::path(state_dir);
        let empty = StateFile {
            version: Self::VERSION,
            boot_id: boot_id.to_string(),
            collectors: BTreeMap::new(),
        };
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return empty,
            Err(e) => {
                log::warn!(
                    "{}: {e}; starting without previous counters",
                    path.display()
                );
                return empty;
            }
        };
        match serde_json::from_str::<StateFile>(&text) {
            Ok(s) if s.version == Self::VERSION && s.boot_id == boot_id => s,
            Ok(_) => empty,
            Err(e) => {
                log::warn!(
                    "{}: unreadable state ({e}); starting without previous counters",
                    path.display()
                );
                empty
            }
        }
    }

    /// Writes the state atomically (temporary file, rename). There is no
    /// fsync: after a crash the worst case is an unreadable file, which
    /// [`StateFile::load`] treats as no state (one run without rates).
    pub fn save(&self, state_dir: &Path) -> std::io::Result<()> {
        let data = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        write_atomically(&Self::path(state_dir), &data)
    }
}

/// Writes `data` to `path` through a temporary file beside it and a rename,
/// creating the folder when needed.
pub fn write_atomically(path: &Path, data: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        create_dir_like_parent(dir)?;
    }
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::File::create(&tmp)?.write_all(data)?;
    give_parents_owner(Path::new(&tmp));
    std::fs::rename(&tmp, path)
}

/// `create_dir_all`, each folder it makes given the owner of the folder it
/// is made in: run as root (`carbyne logster` from root's crontab), carbyne
/// would otherwise leave root's folders in the carbyne user's state folder,
/// where the service could then write nothing.
pub fn create_dir_like_parent(dir: &Path) -> std::io::Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    if let Some(parent) = dir.parent() {
        create_dir_like_parent(parent)?;
    }
    match std::fs::create_dir(dir) {
        Ok(()) => {
            give_parents_owner(dir);
            Ok(())
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(e),
    }
}

/// Gives `path` the owner and group of its folder, when running as root
/// (for anyone else there is nothing to change, or no right to).
fn give_parents_owner(path: &Path) {
    use std::os::unix::fs::MetadataExt;
    if !rustix::process::geteuid().is_root() {
        return;
    }
    let Some(meta) = path.parent().and_then(|p| std::fs::metadata(p).ok()) else {
        return;
    };
    let (uid, gid) = (meta.uid(), meta.gid());
    if uid != 0 || gid != 0 {
        let _ = std::os::unix::fs::chown(path, Some(uid), Some(gid));
    }
}

/// The running kernel's boot id (`<proc>/sys/kernel/random/boot_id`), or
/// empty where the kernel does not provide one.
pub fn boot_id(proc_root: &Path) -> String {
    std::fs::read_to_string(proc_root.join("sys/kernel/random/boot_id"))
        .map(|s| s.trim().to_string())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_run_gives_no_rate() {
        let mut c = Counters::begin(None, 100.0);
        assert_eq!(c.rate("a", 10), None);
        let st = c.finish();
        assert_eq!(st.values["a"], 10);
        assert_eq!(st.time, 100.0);
    }

    #[test]
    fn rate_uses_measured_elapsed_time() {
        let mut c = Counters::begin(None, 100.0);
        c.rate("a", 10);
        let mut c = Counters::begin(Some(c.finish()), 104.0);
        assert_eq!(c.elapsed(), Some(4.0));
        assert_eq!(c.rate("a", 30), Some(5.0));
        assert_eq!(c.delta("b", 7), None, "a key new in this run has no rate");
    }

    #[test]
    fn wrap_and_reset() {
        assert_eq!(counter_delta(5, 9), Some(4));
        // 32-bit wrap: 2^32 - 10 -> 5 is an increase of 15.
        assert_eq!(counter_delta((1u64 << 32) - 10, 5), Some(15));
        // A reset of a small counter is not a wrap.
        assert_eq!(counter_delta(1_000, 5), None);
        // A 64-bit counter that went down was reset.
        assert_eq!(counter_delta(1 << 40, 3), None);
    }

    #[test]
    fn clock_going_backwards_gives_no_rate() {
        let mut c = Counters::begin(None, 100.0);
        c.rate("a", 10);
        let mut c = Counters::begin(Some(c.finish()), 90.0);
        assert_eq!(c.rate("a", 20), None);
    }

    #[test]
    fn state_file_round_trip_and_boot_change() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut s = StateFile::load(dir.path(), "boot-a");
        assert!(s.collectors.is_empty());
        let mut c = Counters::begin(None, 1.0);
        c.delta("x", 3);
        s.collectors.insert("cpu".into(), c.finish());
        s.save(dir.path()).expect("save");
        let again = StateFile::load(dir.path(), "boot-a");
        assert_eq!(again, s);
        let other_boot = StateFile::load(dir.path(), "boot-b");
        assert!(other_boot.collectors.is_empty());
        std::fs::write(StateFile::path(dir.path()), "{garbage").expect("write");
        assert!(StateFile::load(dir.path(), "boot-a").collectors.is_empty());
    }

    #[test]
    fn state_written_as_root_belongs_to_the_state_folders_owner() {
        use std::os::unix::fs::MetadataExt;
        if !rustix::process::geteuid().is_root() {
            return; // only root can create files for another user
        }
        let d = tempfile::tempdir().expect("tempdir");
        let state = d.path().join("state");
        std::fs::create_dir(&state).expect("mkdir");
        std::os::unix::fs::chown(&state, Some(65534), Some(65534)).expect("chown");
        let file = state.join("logs/deeper/mail.json");
        write_atomically(&file, b"{}").expect("write");
        for p in [state.join("logs"), state.join("logs/deeper"), file] {
            let m = std::fs::metadata(&p).expect("meta");
            assert_eq!((m.uid(), m.gid()), (65534, 65534), "{}", p.display());
        }
    }
}
