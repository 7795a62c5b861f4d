//! graphite-web's standard finder over a whisper directory: a pattern's
//! dot-separated segments matched level by level with `*`, `?`, `[a-z]`,
//! `[!a]` and `{a,b}`, branches (directories) and leaves (`.wsp` files).
//!
//! Nothing outside the directory is ever looked at: a segment holding `/`
//! or NUL, or an empty one (`a..b`), matches nothing.

use std::path::{Path, PathBuf};

use regex::Regex;

/// Variants one segment's `{a,b}` lists may expand to.
pub const MAX_VARIANTS: usize = 1000;

#[derive(Debug, Clone, PartialEq)]
pub struct Node {
    /// The metric path (`a.b.c`).
    pub path: String,
    pub is_leaf: bool,
    /// The whisper file of a leaf found on disk.
    pub file: Option<PathBuf>,
    /// The times other servers of the cluster hold of it, `(start, end)`.
    pub intervals: Vec<(f64, f64)>,
}

impl Node {
    /// The last segment (graphite-web's `node.name`).
    pub fn name(&self) -> &str {
        self.path.rsplit('.').next().unwrap_or(&self.path)
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum FindError {
    #[error("the pattern {0:?} expands to more than {MAX_VARIANTS} variants")]
    TooManyVariants(String),
    #[error("more than {0} metrics match")]
    TooMany(usize),
    /// A folder could not be listed for want of file descriptors or memory.
    #[error("cannot list {0}: {1}")]
    Unavailable(String, String),
}

/// `s` with its `{a,b}` lists expanded (graphite-web's `expand_braces`).
pub fn expand_braces(s: &str) -> Result<Vec<String>, FindError> {
    let mut out = vec![s.to_string()];
    loop {
        let mut next = Vec::new();
        let mut grew = false;
        for v in &out {
            match v
                .find('{')
                .and_then(|open| v[open..].find('}').map(|c| (open, open + c)))
            {
                Some((open, close)) => {
                    grew = true;
                    for alt in v[open + 1..close].split(',') {
                        next.push(format!("{}{}{}", &v[..open], alt, &v[close + 1..]));
                    }
                }
                None => next.push(v.clone()),
            }
            if next.len() > MAX_VARIANTS {
                return Err(FindError::TooManyVariants(s.to_string()));
            }
        }
        out = next;
        if !grew {
            break;
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// A segment's pattern (after brace expansion) as an anchored regex, as
/// Python's `fnmatch.translate`.
fn translate(pat: &str) -> Regex {
    let mut re = String::from("^(?s:");
    let chars: Vec<char> = pat.chars().collect();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' => re.push_str(".*"),
            '?' => re.push('.'),
            '[' => {
                let mut j = i;
                if j < chars.len() && chars[j] == '!' {
                    j += 1;
                }
                if j < chars.len() && chars[j] == ']' {
                    j += 1;
                }
                while j < chars.len() && chars[j] != ']' {
                    j += 1;
                }
                if j >= chars.len() {
                    re.push_str("\\[");
                } else {
                    let mut body = &chars[i..j];
                    i = j + 1;
                    re.push('[');
                    if body.first() == Some(&'!') {
                        re.push('^');
                        body = &body[1..];
                    }
                    for &c in body {
                        if matches!(c, '\\' | '[' | ']' | '^' | '&' | '~') {
                            re.push('\\');
                        }
                        re.push(c);
                    }
                    re.push(']');
                }
            }
            c => re.push_str(&regex::escape(&c.to_string())),
        }
    }
    re.push_str(")$");
    Regex::new(&re).unwrap_or_else(|_| Regex::new("^$^").expect("a regex that matches nothing"))
}

fn has_wildcard(p: &str) -> bool {
    p.contains(['*', '?', '['])
}

/// A segment that may be looked up on disk at all.
fn safe_segment(p: &str) -> bool {
    !p.is_empty() && !p.contains(['/', '\0']) && p != "." && p != ".."
}

/// One pattern segment's matcher.
pub struct Segment {
    variants: Vec<(String, Option<Regex>)>,
}

impl Segment {
    pub fn new(pat: &str) -> Result<Self, FindError> {
        let clean = pat.replace('\\', "");
        Ok(Segment {
            variants: expand_braces(&clean)?
                .into_iter()
                .filter(|v| safe_segment(v))
                .map(|v| {
                    let re = has_wildcard(&v).then(|| translate(&v));
                    (v, re)
                })
                .collect(),
        })
    }

    /// The one name this segment matches, when it is a plain name.
    fn literal(&self) -> Option<&str> {
        match self.variants.as_slice() {
            [(v, None)] => Some(v),
            _ => None,
        }
    }

    pub fn matches(&self, name: &str) -> bool {
        self.variants.iter().any(|(v, re)| match re {
            Some(re) => re.is_match(name),
            None => v == name,
        })
    }
}

/// A whole pattern, for matching names not on disk (the carbon cache's).
pub struct Pattern(Vec<Segment>);

impl Pattern {
    pub fn new(pattern: &str) -> Result<Self, FindError> {
        pattern
            .split('.')
            .map(Segment::new)
            .collect::<Result<_, _>>()
            .map(Pattern)
    }

    /// Whether `name` matches whole (`leaf`) or as a branch above a match.
    pub fn matches(&self, name: &str) -> bool {
        let parts: Vec<&str> = name.split('.').collect();
        parts.len() == self.0.len() && parts.iter().zip(&self.0).all(|(p, s)| s.matches(p))
    }

    /// The branch of `name` this pattern matches, when `name` lies below one.
    pub fn branch_of(&self, name: &str) -> Option<String> {
        let parts: Vec<&str> = name.split('.').collect();
        (parts.len() > self.0.len() && parts.iter().zip(&self.0).all(|(p, s)| s.matches(p)))
            .then(|| parts[..self.0.len()].join("."))
    }
}

/// Finds the nodes a pattern matches under `root`, at most `limit`.
pub fn find(root: &Path, pattern: &str, limit: usize) -> Result<Vec<Node>, FindError> {
    find_in(root, pattern, limit, false)
}

/// The leaves a render reads. For a pattern whose plain tail names each
/// file (`servers.*.cpu.total.user`), the candidates' files are listed
/// without a lookup each, as opening them will tell whether they exist:
/// so it may list files that are not there (and count them against
/// `limit`).
pub fn find_leaves(root: &Path, pattern: &str, limit: usize) -> Result<Vec<Node>, FindError> {
    find_in(root, pattern, limit, true)
}

fn find_in(
    root: &Path,
    pattern: &str,
    limit: usize,
    unchecked_leaves: bool,
) -> Result<Vec<Node>, FindError> {
    let segments: Vec<Segment> = pattern
        .split('.')
        .map(Segment::new)
        .collect::<Result<_, _>>()?;
    let mut out = Vec::new();
    walk(
        root,
        &segments,
        String::new(),
        &mut out,
        (limit, unchecked_leaves),
    )?;
    Ok(out)
}

/// `find`'s walk; `how` is its limit and whether leaves from plain tails
/// go unchecked (and branches unlisted).
fn walk(
    dir: &Path,
    segments: &[Segment],
    prefix: String,
    out: &mut Vec<Node>,
    how: (usize, bool),
) -> Result<(), FindError> {
    let (limit, unchecked_leaves) = how;
    let Some((seg, rest)) = segments.split_first() else {
        return Ok(());
    };
    let exact: Vec<&str> = if seg.variants.iter().all(|(_, re)| re.is_none()) {
        seg.variants.iter().map(|(v, _)| v.as_str()).collect()
    } else {
        Vec::new()
    };
    // (name, is_dir, is_file) of the entries this segment could match.
    // Plain names from here to the end (`*.cpu.total.user` below the
    // glob): two lookups of the whole rest, not two per segment.
    let tail: Option<Vec<&str>> = rest.iter().map(Segment::literal).collect();
    if let (false, Some(tail)) = (exact.is_empty(), tail.filter(|t| !t.is_empty())) {
        let mut exact = exact;
        exact.sort_unstable();
        exact.dedup();
        for name in exact {
            let mut branch = dir.join(name);
            let mut path = if prefix.is_empty() {
                name.to_string()
            } else {
                format!("{prefix}.{name}")
            };
            for t in &tail {
                branch.push(t);
                path.push('.');
                path.push_str(t);
            }
            let leaf = branch.with_extension("wsp");
            // Unchecked: a leaf candidate only (opening it will tell).
            if !unchecked_leaves && branch.is_dir() {
                let node = Node {
                    path: path.clone(),
                    is_leaf: false,
                    file: None,
                    intervals: Vec::new(),
                };
                push(out, node, limit)?;
            }
            if unchecked_leaves || leaf.is_file() {
                let node = Node {
                    path,
                    is_leaf: true,
                    file: Some(leaf),
                    intervals: Vec::new(),
                };
                push(out, node, limit)?;
            }
        }
        return Ok(());
    }
    let mut entries: Vec<(String, bool, bool)> = Vec::new();
    if exact.is_empty() {
        let rd = match std::fs::read_dir(dir) {
            Ok(rd) => rd,
            Err(e) if crate::server::web::functions::short_of_resources(&e) => {
                return Err(FindError::Unavailable(
                    dir.display().to_string(),
                    e.to_string(),
                ))
            }
            Err(_) => return Ok(()),
        };
        for e in rd.flatten() {
            let Ok(ft) = e.file_type() else { continue };
            let name = e.file_name().to_string_lossy().into_owned();
            let (is_dir, is_file) = if ft.is_symlink() {
                let md = std::fs::metadata(e.path());
                (
                    md.as_ref().is_ok_and(|m| m.is_dir()),
                    md.is_ok_and(|m| m.is_file()),
                )
            } else {
                (ft.is_dir(), ft.is_file())
            };
            entries.push((name, is_dir, is_file));
        }
    } else {
        for name in exact {
            let p = dir.join(name);
            if p.is_dir() {
                entries.push((name.to_string(), true, false));
            }
            let f = dir.join(format!("{name}.wsp"));
            if f.is_file() {
                entries.push((format!("{name}.wsp"), false, true));
            }
        }
    }
    entries.sort();
    let join = |name: &str| {
        if prefix.is_empty() {
            name.to_string()
        } else {
            format!("{prefix}.{name}")
        }
    };
    for (name, is_dir, is_file) in entries {
        if name.starts_with('.') {
            continue;
        }
        if is_dir && seg.matches(&name) {
            if rest.is_empty() {
                push(
                    out,
                    Node {
                        path: join(&name),
                        is_leaf: false,
                        file: None,
                        intervals: Vec::new(),
                    },
                    limit,
                )?;
            } else {
                walk(&dir.join(&name), rest, join(&name), out, how)?;
            }
        } else if is_file && rest.is_empty() {
            if let Some(metric) = name.strip_suffix(".wsp").filter(|m| seg.matches(m)) {
                push(
                    out,
                    Node {
                        path: join(metric),
                        is_leaf: true,
                        file: Some(dir.join(&name)),
                        intervals: Vec::new(),
                    },
                    limit,
                )?;
            }
        }
    }
    Ok(())
}

fn push(out: &mut Vec<Node>, node: Node, limit: usize) -> Result<(), FindError> {
    if out.len() >= limit {
        return Err(FindError::TooMany(limit));
    }
    out.push(node);
    Ok(())
}

/// Every metric under `root` (graphite-web's `index.json`), sorted.
pub fn index(root: &Path, limit: usize) -> Result<Vec<String>, FindError> {
    let mut out = Vec::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    while let Some((dir, prefix)) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Ok(ft) = e.file_type() else { continue };
            if name.starts_with('.') {
                continue;
            }
            let full = if prefix.is_empty() {
                name.clone()
            } else {
                format!("{prefix}.{name}")
            };
            if ft.is_dir() {
                stack.push((e.path(), full));
            } else if let Some(m) = full.strip_suffix(".wsp") {
                if out.len() >= limit {
                    return Err(FindError::TooMany(limit));
                }
                out.push(m.to_string());
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        let s = |p: &str| Segment::new(p).expect("segment");
        assert!(s("a*").matches("abc"));
        assert!(s("a?c").matches("abc"));
        assert!(!s("a?c").matches("ac"));
        assert!(s("cpu[0-3]").matches("cpu2"));
        assert!(!s("cpu[!0-3]").matches("cpu2"));
        assert!(s("{web,db}*").matches("db01"));
        assert!(s("x{a,b}y{1,2}").matches("xby2"));
        assert!(s("a[").matches("a["));
        assert!(!s("..").matches(".."));
        assert!(!s("/etc").matches("/etc"));
        let big = "{".to_string() + &vec!["a"; 20].join(",") + "}";
        assert!(Segment::new(&format!("{big}{big}{big}")).is_err());
    }

    #[test]
    fn finds_on_disk() {
        let dir = tempfile::tempdir().expect("tempdir");
        for f in [
            "a/b/c.wsp",
            "a/b/d.wsp",
            "a/x.wsp",
            "a/.hidden.wsp",
            "a/b/e.wsp.corrupt",
        ] {
            let p = dir.path().join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, b"").expect("write");
        }
        let paths = |pat: &str| -> Vec<(String, bool)> {
            find(dir.path(), pat, 100)
                .expect("find")
                .into_iter()
                .map(|n| (n.path, n.is_leaf))
                .collect()
        };
        assert_eq!(
            paths("a.*"),
            vec![("a.b".into(), false), ("a.x".into(), true)]
        );
        assert_eq!(
            paths("a.b.*"),
            vec![("a.b.c".into(), true), ("a.b.d".into(), true)]
        );
        assert_eq!(paths("a.b.c"), vec![("a.b.c".into(), true)]);
        assert_eq!(paths("a..b"), vec![]);
        assert_eq!(
            paths("*.{b,x}"),
            vec![("a.b".into(), false), ("a.x".into(), true)]
        );
        assert_eq!(find(dir.path(), "a.b.*", 1), Err(FindError::TooMany(1)));
        assert_eq!(
            index(dir.path(), 10),
            Ok(vec!["a.b.c".into(), "a.b.d".into(), "a.x".into()])
        );
    }
}
