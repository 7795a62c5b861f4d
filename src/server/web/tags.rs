//! Tagged series (`name;tag=value;...`): graphite-web's tag database over
//! the names the carbon receiver stored.
//!
//! carbon keeps a tagged series in a file named by the hash of its name
//! (`_tagged/abc/def/<sha256>.wsp`), so names cannot be read back from the
//! tree: the receiver appends each tagged name it creates a file for to
//! `_tagged/.names` in the storage directory, and `/tags/tagSeries` and
//! `/tags/tagMultiSeries` (what carbon's ENABLE_TAGS posts) add to it too.
//! The index here is that file, read again when it grows.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use std::sync::Mutex;

use regex::Regex;

use super::series::{tags_of, Tags};
use crate::server::carbon::names::{self, index_file, record};

/// Tagged names indexed at most (a bound on memory: about 200 bytes each).
pub const MAX_SERIES: usize = 5_000_000;

#[derive(Default)]
struct Loaded {
    /// Bytes of the file read so far.
    read: u64,
    names: BTreeSet<String>,
}

pub struct TagIndex {
    root: PathBuf,
    loaded: Mutex<Loaded>,
}

/// One tag expression (`tag=value`, `tag!=value`, `tag=~re`, `tag!=~re`).
struct Spec {
    tag: String,
    negate: bool,
    matcher: Matcher,
}

enum Matcher {
    Equal(String),
    Regex(Regex),
}

impl Spec {
    fn parse(expr: &str) -> Result<Spec, String> {
        let bad = || format!("Invalid tag expression {expr:?}");
        let at = expr.find(['=', '!']).ok_or_else(bad)?;
        let tag = expr[..at].trim().to_string();
        if tag.is_empty() || tag.contains(';') {
            return Err(bad());
        }
        let rest = &expr[at..];
        let (op, value) = ["!=~", "=~", "!=", "="]
            .iter()
            .find_map(|op| rest.strip_prefix(op).map(|v| (*op, v.trim_start())))
            .ok_or_else(bad)?;
        let matcher = if op.ends_with('~') {
            // Anchored at the start, as graphite-web matches (re.match).
            let re = regex::RegexBuilder::new(&format!("^(?:{value})"))
                .size_limit(1 << 20)
                .build()
                .map_err(|e| format!("bad regular expression {value:?}: {e}"))?;
            Matcher::Regex(re)
        } else {
            Matcher::Equal(value.to_string())
        };
        Ok(Spec {
            tag,
            negate: op.starts_with('!'),
            matcher,
        })
    }

    fn matches_value(&self, v: &str) -> bool {
        let hit = match &self.matcher {
            Matcher::Equal(s) => v == s,
            Matcher::Regex(re) => re.is_match(v),
        };
        hit != self.negate
    }

    fn matches(&self, tags: &Tags) -> bool {
        self.matches_value(tags.get(&self.tag).map_or("", String::as_str))
    }
}

impl TagIndex {
    pub fn new(root: &Path) -> Self {
        TagIndex {
            root: root.to_path_buf(),
            loaded: Mutex::new(Loaded::default()),
        }
    }

    /// The names indexed, the file's new lines read first.
    fn names(&self) -> BTreeSet<String> {
        let mut l = self.loaded.lock().unwrap_or_else(|p| p.into_inner());
        let file = index_file(&self.root);
        let len = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        if len < l.read {
            // Rewritten (a delSeries): read again from the start.
            *l = Loaded::default();
        }
        if len > l.read {
            if let Ok(mut f) = std::fs::File::open(&file) {
                let mut text = String::new();
                if f.seek(SeekFrom::Start(l.read)).is_ok()
                    && f.take(len - l.read).read_to_string(&mut text).is_ok()
                {
                    // Only whole lines; a line being appended waits its turn.
                    let whole = text.rfind('\n').map_or(0, |i| i + 1);
                    for line in text[..whole].lines() {
                        if l.names.len() >= MAX_SERIES {
                            break;
                        }
                        if let Ok(n) = names::normalize(line.trim()) {
                            l.names.insert(n.into_owned());
                        }
                    }
                    l.read += whole as u64;
                }
            }
        }
        l.names.clone()
    }

    /// Adds names (as tagSeries does); their canonical forms.
    pub fn add(&self, paths: &[&str]) -> Result<Vec<String>, String> {
        let mut out = Vec::new();
        for p in paths {
            let n = names::normalize(p)
                .map_err(|e| format!("{p:?}: {e}"))?
                .into_owned();
            if !self.names().contains(&n) {
                record(&self.root, &n)
                    .map_err(|e| format!("{}: {e}", index_file(&self.root).display()))?;
            }
            out.push(n);
        }
        Ok(out)
    }

    /// Removes names (delSeries): the file rewritten without them.
    pub fn remove(&self, paths: &[&str]) -> Result<(), String> {
        let gone: BTreeSet<String> = paths
            .iter()
            .filter_map(|p| names::normalize(p).ok().map(|n| n.into_owned()))
            .collect();
        let keep: Vec<String> = self
            .names()
            .into_iter()
            .filter(|n| !gone.contains(n))
            .collect();
        let file = index_file(&self.root);
        let tmp = file.with_extension("tmp");
        let text: String = keep.iter().map(|n| format!("{n}\n")).collect();
        std::fs::write(&tmp, text)
            .and_then(|()| std::fs::rename(&tmp, &file))
            .map_err(|e| format!("{}: {e}", file.display()))
    }

    /// graphite-web's `find_series`: the names every expression matches,
    /// sorted; at least one expression must need a non-empty value.
    pub fn find(&self, exprs: &[&str]) -> Result<Vec<String>, String> {
        let specs: Vec<Spec> = exprs
            .iter()
            .map(|e| Spec::parse(e))
            .collect::<Result<_, _>>()?;
        if !specs.iter().any(|s| !s.matches_value("")) {
            return Err("At least one tagspec must not match the empty string".into());
        }
        Ok(self
            .names()
            .into_iter()
            .filter(|n| {
                let tags = tags_of(n);
                specs.iter().all(|s| s.matches(&tags))
            })
            .collect())
    }

    /// Every tag and, for each, its values and how many series have each.
    fn values(&self) -> BTreeMap<String, BTreeMap<String, usize>> {
        let mut out: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
        for n in self.names() {
            for (k, v) in tags_of(&n) {
                *out.entry(k).or_default().entry(v).or_default() += 1;
            }
        }
        out
    }

    /// `/tags`: `[{"tag": ...}]`, filtered by a regex (searched), sorted.
    pub fn list_tags(
        &self,
        filter: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<String>, String> {
        let re = filter.map(user_regex).transpose()?;
        let mut out: Vec<String> = self
            .values()
            .into_keys()
            .filter(|t| re.as_ref().is_none_or(|r| r.is_match(t)))
            .collect();
        if let Some(l) = limit {
            out.truncate(l);
        }
        Ok(out)
    }

    /// `/tags/<tag>`: its values with their counts, filtered and sorted.
    pub fn tag_values(
        &self,
        tag: &str,
        filter: Option<&str>,
        limit: Option<usize>,
    ) -> Result<Vec<(String, usize)>, String> {
        let re = filter.map(user_regex).transpose()?;
        let mut out: Vec<(String, usize)> = self
            .values()
            .remove(tag)
            .unwrap_or_default()
            .into_iter()
            .filter(|(v, _)| re.as_ref().is_none_or(|r| r.is_match(v)))
            .collect();
        if let Some(l) = limit {
            out.truncate(l);
        }
        Ok(out)
    }

    /// `/tags/autoComplete/tags`.
    pub fn complete_tags(
        &self,
        exprs: &[&str],
        prefix: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, String> {
        let keep = |t: &str| prefix.is_none_or(|p| t.starts_with(p));
        if exprs.is_empty() {
            let mut all = self.list_tags(None, None)?;
            all.retain(|t| keep(t));
            all.truncate(limit);
            return Ok(all);
        }
        let searched: BTreeSet<String> = exprs
            .iter()
            .filter_map(|e| Spec::parse(e).ok().map(|s| s.tag))
            .collect();
        let mut out = BTreeSet::new();
        for n in self.find(exprs)? {
            for (t, _) in tags_of(&n) {
                if !searched.contains(&t) && keep(&t) {
                    out.insert(t);
                }
            }
        }
        Ok(out.into_iter().take(limit).collect())
    }

    /// `/tags/autoComplete/values`.
    pub fn complete_values(
        &self,
        exprs: &[&str],
        tag: &str,
        prefix: Option<&str>,
        limit: usize,
    ) -> Result<Vec<String>, String> {
        let keep = |v: &str| prefix.is_none_or(|p| v.starts_with(p));
        if exprs.is_empty() {
            return Ok(self
                .tag_values(tag, None, None)?
                .into_iter()
                .map(|(v, _)| v)
                .filter(|v| keep(v))
                .take(limit)
                .collect());
        }
        let not_empty = format!("{tag}!=");
        let mut with: Vec<&str> = exprs.to_vec();
        with.push(&not_empty);
        let mut out = BTreeSet::new();
        for n in self.find(&with)? {
            if let Some(v) = tags_of(&n).get(tag).filter(|v| keep(v)) {
                out.insert(v.clone());
            }
        }
        Ok(out.into_iter().take(limit).collect())
    }
}

fn user_regex(s: &str) -> Result<Regex, String> {
    regex::RegexBuilder::new(s)
        .size_limit(1 << 20)
        .build()
        .map_err(|e| format!("bad regular expression {s:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_and_queries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let idx = TagIndex::new(dir.path());
        let added = idx
            .add(&[
                "cpu;host=web1;dc=eu",
                "cpu;dc=us;host=web2",
                "mem;host=web1",
                "disk;host=db1;dc=eu",
            ])
            .expect("add");
        assert_eq!(added[0], "cpu;dc=eu;host=web1");
        assert_eq!(
            idx.find(&["name=cpu"]),
            Ok(vec![
                "cpu;dc=eu;host=web1".into(),
                "cpu;dc=us;host=web2".into()
            ])
        );
        assert_eq!(
            idx.find(&["host=~web", "dc!=us"]),
            Ok(vec!["cpu;dc=eu;host=web1".into(), "mem;host=web1".into()])
        );
        assert_eq!(idx.find(&["name=~.", "dc!=~e"]).map(|v| v.len()), Ok(2));
        assert!(idx.find(&["dc!=eu"]).is_err(), "nothing requires a value");
        assert_eq!(
            idx.list_tags(None, None),
            Ok(vec!["dc".into(), "host".into(), "name".into()])
        );
        assert_eq!(
            idx.tag_values("dc", None, None),
            Ok(vec![("eu".into(), 2), ("us".into(), 1)])
        );
        assert_eq!(
            idx.complete_tags(&["name=cpu"], None, 100),
            Ok(vec!["dc".into(), "host".into()])
        );
        assert_eq!(
            idx.complete_values(&["name=cpu"], "host", Some("web"), 100),
            Ok(vec!["web1".into(), "web2".into()])
        );
        idx.remove(&["mem;host=web1"]).expect("remove");
        assert_eq!(
            idx.find(&["host=web1"]),
            Ok(vec!["cpu;dc=eu;host=web1".into()])
        );
        // Written by another process (the receiver): read when the file grows.
        record(dir.path(), "net;host=web3").expect("record");
        assert_eq!(idx.find(&["host=web3"]), Ok(vec!["net;host=web3".into()]));
    }
}
