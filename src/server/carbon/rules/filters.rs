//! carbon's `whitelist.conf` and `blacklist.conf` (its `USE_WHITELIST`):
//! one regular expression per line, searched anywhere in a received name.
//! A name the blacklist matches is dropped (`blacklistMatches`); when the
//! whitelist holds any expression, a name it does not match is dropped
//! (`whitelistRejects`), the blacklist being asked first, as carbon does.
//!
//! As carbon reads them: a line starting with `#` and a blank line are
//! skipped; a missing file is an empty list; a file that changes is read
//! again within 10 seconds (and on SIGHUP). Where carbon skips an
//! expression it cannot compile, the file is refused here, naming the
//! line: at start `config check` fails, later the lists in force stay.

use super::super::schemas::SchemaError;
use super::Watched;
use regex::RegexSet;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

/// The expressions of one list file.
#[derive(Debug, Clone)]
pub struct RegexList {
    set: RegexSet,
}

impl RegexList {
    /// Reads `text` as carbon reads a list file; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<RegexList, SchemaError> {
        let mut patterns = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let pattern = line.trim();
            if line.starts_with('#') || pattern.is_empty() {
                continue;
            }
            if let Err(e) = regex::Regex::new(pattern) {
                return Err(SchemaError {
                    file: file.to_string(),
                    line: i + 1,
                    msg: super::regex_error("the expression", pattern, &e),
                });
            }
            patterns.push(pattern.to_string());
        }
        let set = super::regex_set(&patterns, file)?;
        Ok(RegexList { set })
    }

    /// Reads a list file; a missing one is an empty list.
    pub fn load(path: &Path) -> Result<RegexList, SchemaError> {
        Watched::open(path, RegexList::parse).map(|w| w.value)
    }

    pub fn is_empty(&self) -> bool {
        self.set.is_empty()
    }

    pub fn matches(&self, name: &str) -> bool {
        self.set.is_match(name)
    }
}

/// The whitelist and the blacklist in force, when configured.
type Lists = (
    Option<Arc<Watched<RegexList>>>,
    Option<Arc<Watched<RegexList>>>,
);

/// The receiver's lists and their counts.
#[derive(Default)]
pub struct Filters {
    lists: RwLock<Lists>,
    /// Whether any list is configured (the hot path's shortcut).
    active: AtomicBool,
    pub blacklist_matches: AtomicU64,
    pub whitelist_rejects: AtomicU64,
}

impl Filters {
    /// The lists the configuration names (`None`: no such list).
    pub fn new(whitelist: Option<&Path>, blacklist: Option<&Path>) -> Result<Filters, SchemaError> {
        let f = Filters::default();
        f.set(whitelist, blacklist)?;
        Ok(f)
    }

    /// Puts in force the lists of a configuration; nothing changes when a
    /// file cannot be read.
    pub fn set(
        &self,
        whitelist: Option<&Path>,
        blacklist: Option<&Path>,
    ) -> Result<(), SchemaError> {
        let open = |p: &Path| Watched::open(p, RegexList::parse).map(Arc::new);
        let (white, black) = (
            whitelist.map(open).transpose()?,
            blacklist.map(open).transpose()?,
        );
        self.active
            .store(white.is_some() || black.is_some(), Ordering::Relaxed);
        *self.lists.write().unwrap_or_else(|p| p.into_inner()) = (white, black);
        Ok(())
    }

    /// Whether the receiver keeps `name`; a dropped name is counted.
    pub fn admits(&self, name: &str) -> bool {
        if !self.active.load(Ordering::Relaxed) {
            return true;
        }
        let lists = self.lists.read().unwrap_or_else(|p| p.into_inner());
        if let Some(b) = &lists.1 {
            if b.value.matches(name) {
                self.blacklist_matches.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        }
        if let Some(w) = &lists.0 {
            if !w.value.is_empty() && !w.value.matches(name) {
                self.whitelist_rejects.fetch_add(1, Ordering::Relaxed);
                return false;
            }
        }
        true
    }

    /// Reads again a list whose file changed (or appeared, or went: an
    /// empty list); the receiver asks every [`RECHECK`]. A file that no
    /// longer reads keeps the list in force, said in the log.
    pub fn refresh(&self) {
        if !self.active.load(Ordering::Relaxed) {
            return;
        }
        let (white, black) = self.lists.read().unwrap_or_else(|p| p.into_inner()).clone();
        let renew = |w: Option<Arc<Watched<RegexList>>>| {
            let w = w?;
            Some(w.renewed(RegexList::parse).map(Arc::new).unwrap_or(w))
        };
        let new = (renew(white), renew(black));
        *self.lists.write().unwrap_or_else(|p| p.into_inner()) = new;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, SystemTime};

    #[test]
    fn lists_read_as_carbon_reads_them() {
        let l = RegexList::parse(
            "# a comment\n\n  ^servers\\.  \n # not a comment: searched as written\nweb[0-9]+\n",
            "whitelist.conf",
        )
        .expect("list");
        assert!(l.matches("servers.a.cpu"));
        assert!(l.matches("x.web01.y"), "searched anywhere, as re.search");
        assert!(l.matches("a # not a comment: searched as written"));
        assert!(!l.matches("other.servers"));
        let e = RegexList::parse("ok\n(unclosed\n", "blacklist.conf").expect_err("bad");
        assert_eq!(e.line, 2, "{e}");
        assert!(e.to_string().contains("blacklist.conf"), "{e}");
    }

    #[test]
    fn the_blacklist_is_asked_first_and_an_empty_whitelist_lets_all_through() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (w, b) = (
            dir.path().join("whitelist.conf"),
            dir.path().join("blacklist.conf"),
        );
        std::fs::write(&b, "\\.tmp\\.\n").expect("blacklist");
        std::fs::write(&w, "# nothing yet\n").expect("whitelist");
        let f = Filters::new(Some(&w), Some(&b)).expect("filters");
        assert!(f.admits("a.b"));
        assert!(!f.admits("a.tmp.b"));
        std::fs::write(&w, "^a\\.\n").expect("whitelist");
        // Read again once the file changed (the mtime's granularity aside).
        let later = SystemTime::now() + Duration::from_secs(5);
        std::fs::File::options()
            .write(true)
            .open(&w)
            .and_then(|h| h.set_modified(later))
            .expect("mtime");
        f.refresh();
        assert!(f.admits("a.b"));
        assert!(!f.admits("c.d"));
        assert!(!f.admits("a.tmp.c"), "blacklisted, though whitelisted");
        assert_eq!(f.blacklist_matches.load(Ordering::Relaxed), 2);
        assert_eq!(f.whitelist_rejects.load(Ordering::Relaxed), 1);
        // A file broken later keeps the list in force.
        std::fs::write(&w, "(\n").expect("whitelist");
        std::fs::File::options()
            .write(true)
            .open(&w)
            .and_then(|h| h.set_modified(later + Duration::from_secs(5)))
            .expect("mtime");
        f.refresh();
        assert!(!f.admits("c.d"));
        // A missing file is an empty list.
        let none = Filters::new(Some(&dir.path().join("nope.conf")), None).expect("missing");
        assert!(none.admits("anything"));
    }
}
