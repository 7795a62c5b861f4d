//! Metric names as carbon-cache 1.1 stores them: tagged names
//! (`name;tag=value;...`) normalized (tags sorted, later duplicates win) and
//! stored under `_tagged/<sha256[0:3]>/<sha256[3:6]>/<sha256>.wsp`; plain
//! names as dotted directories. Stricter than carbon: a name that could
//! reach outside the storage directory, or that no file system takes, is
//! rejected.

use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::path::{Path, PathBuf};

/// Longest name accepted, in bytes.
pub const MAX_NAME: usize = 4096;
/// Longest path segment (a file name, with `.wsp`), as Linux allows.
const MAX_SEGMENT: usize = 255 - 4;

/// Why a name was rejected.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BadName {
    #[error("empty name")]
    Empty,
    #[error("longer than {MAX_NAME} bytes")]
    TooLong,
    #[error("a segment is longer than {MAX_SEGMENT} bytes")]
    SegmentTooLong,
    #[error("an empty segment (leading, trailing or doubled '.')")]
    EmptySegment,
    #[error("'/' in the name")]
    Slash,
    #[error("a control character in the name")]
    Control,
    #[error("bad tag {0:?}")]
    Tag(String),
}

/// carbon's `TaggedSeries.parse(...).path`: `name;a=1;b=2` with the tags
/// sorted; a plain name as it is. Checked so that it maps to a path inside
/// the storage directory.
pub fn normalize(metric: &str) -> Result<Cow<'_, str>, BadName> {
    if metric.is_empty() {
        return Err(BadName::Empty);
    }
    if metric.len() > MAX_NAME {
        return Err(BadName::TooLong);
    }
    // Control characters: C0, DEL, and C1 (U+0080..U+009F, 0xC2 0x80..0x9F in UTF-8).
    let b = metric.as_bytes();
    if b.iter().enumerate().any(|(i, &c)| {
        c < 0x20
            || c == 0x7f
            || (c == 0xc2 && b.get(i + 1).is_some_and(|n| (0x80..0xa0).contains(n)))
    }) {
        return Err(BadName::Control);
    }
    let mut parts = metric.split(';');
    let name = parts.next().unwrap_or_default();
    let tagged = metric.contains(';');
    if !tagged {
        check_plain(name)?;
        return Ok(Cow::Borrowed(metric));
    }
    // carbon: the name becomes the `name` tag, without leading '~'.
    let name = name.trim_start_matches('~');
    if name.is_empty() {
        return Err(BadName::Empty);
    }
    let mut tags: Vec<(&str, &str)> = Vec::new();
    for seg in parts {
        let Some((tag, value)) = seg.split_once('=') else {
            return Err(BadName::Tag(seg.to_string()));
        };
        if tag.is_empty()
            || value.is_empty()
            || tag.contains(['!', '^', '='])
            || value.starts_with('~')
        {
            return Err(BadName::Tag(seg.to_string()));
        }
        // A later value of the same tag wins; `name` is the metric's name.
        if tag != "name" {
            tags.retain(|(t, _)| *t != tag);
            tags.push((tag, value));
        }
    }
    let mut segs: Vec<String> = tags.iter().map(|(t, v)| format!(";{t}={v}")).collect();
    segs.sort();
    Ok(Cow::Owned(format!("{name}{}", segs.concat())))
}

fn check_plain(name: &str) -> Result<(), BadName> {
    if name.contains('/') {
        return Err(BadName::Slash);
    }
    for seg in name.split('.') {
        if seg.is_empty() {
            return Err(BadName::EmptySegment);
        }
        if seg.len() > MAX_SEGMENT {
            return Err(BadName::SegmentTooLong);
        }
    }
    Ok(())
}

/// Where carbon-cache keeps the whisper file of a normalized name.
pub fn path(root: &Path, metric: &str) -> PathBuf {
    if metric.contains(';') {
        let hash: String = Sha256::digest(metric.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        return root
            .join("_tagged")
            .join(&hash[0..3])
            .join(&hash[3..6])
            .join(format!("{hash}.wsp"));
    }
    let mut p = root.to_path_buf();
    let mut segs = metric.split('.').peekable();
    while let Some(seg) = segs.next() {
        if segs.peek().is_some() {
            p.push(seg);
        } else {
            p.push(format!("{seg}.wsp"));
        }
    }
    p
}

/// The file listing the tagged names stored under `root`: carbon names
/// their files by a hash, so the names are kept here to be found again
/// (graphite-web's tag queries, `seriesByTag`).
pub fn index_file(root: &Path) -> PathBuf {
    root.join("_tagged").join(".names")
}

/// Adds `name` (normalized) to the index file of `root`; one line, one
/// append (atomic for lines this short).
pub fn record(root: &Path, name: &str) -> std::io::Result<()> {
    let file = index_file(root);
    if let Some(dir) = file.parent() {
        std::fs::create_dir_all(dir)?;
    }
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)?;
    f.write_all(format!("{name}\n").as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_sorted_and_later_values_win() {
        assert_eq!(normalize("x;t=1;a=2"), Ok("x;a=2;t=1".into()));
        assert_eq!(normalize("x;a=1;a=3"), Ok("x;a=3".into()));
        assert_eq!(normalize("~x;b=1;name=y"), Ok("x;b=1".into()));
        assert_eq!(normalize("a.b.c"), Ok("a.b.c".into()));
        // Sorted as strings, the `;tag=value` way carbon sorts them.
        assert_eq!(normalize("m;b=1;a.b=2;a=3"), Ok("m;a.b=2;a=3;b=1".into()));
    }

    #[test]
    fn names_that_could_escape_or_break_are_rejected() {
        for bad in [
            "",
            "a..b",
            ".a",
            "a.",
            "a/b",
            "../x",
            "a.\u{0}b",
            "a.\u{85}b",
            "a\u{7f}",
            "x;novalue",
            "x;=1",
            "x;a=",
            "x;a!=1",
            "x;a=~1",
            ";a=1",
        ] {
            assert!(normalize(bad).is_err(), "{bad:?}");
        }
        assert_eq!(normalize(&"a".repeat(300)), Err(BadName::SegmentTooLong));
        assert_eq!(normalize(&"a.".repeat(3000)), Err(BadName::TooLong));
    }

    #[test]
    fn paths_as_carbon_cache_writes_them() {
        let root = Path::new("/s");
        assert_eq!(path(root, "a.b.c"), Path::new("/s/a/b/c.wsp"));
        // carbon-cache 1.1.10 wrote this one for "x;t=1;a=2".
        assert_eq!(
            path(root, "x;a=2;t=1"),
            Path::new(
                "/s/_tagged/689/8c4/6898c456f669ab1022e39fc3170868db1fc7eedf417c048c309b71fccd9400ce.wsp"
            )
        );
    }
}
