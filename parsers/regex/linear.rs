//! A capture engine for the regexes most log formats are written as: a
//! line anchored at its start, made of literal text and character classes
//! repeated, where each repeated class stops at a character the next part
//! cannot start with:
//!
//! ```text
//! ^\S+ \S+ \S+ \[[^\]]+\] "(?P<method>[A-Z]+) [^"]*" (?P<status>\d{3}) (?P<bytes>\d+)$
//! ```
//!
//! Such a regex has one way to match a line, found in one pass with no
//! going back, so the groups are where a greedy walk puts them: exactly
//! what the regex crate reports, for less than half its cost (its one-pass
//! engine handles every regex of this kind, and more, through a general
//! transition table). Anything else (alternation, `.*` before text that
//! `.` also matches, lookarounds but `^` and `$`, lazy repeats) is not
//! compiled here and stays with the regex crate. The tests check both
//! engines give the same groups on generated regexes and lines.

use regex_syntax::hir::{Class, Hir, HirKind, Look};

/// What one step of the walk matches.
#[derive(Debug, Clone)]
enum Atom {
    /// This byte.
    Byte(u8),
    /// These bytes, exactly (two or more).
    Text(Box<[u8]>),
    /// Characters of a class, as many as there are: at least one when
    /// `nonempty` (`+`), else any number (`*`). The common case of `Repeat`.
    Run { set: CharSet, nonempty: bool },
    /// `min..=max` characters of a class, as many as there are.
    Repeat {
        set: CharSet,
        min: u32,
        max: Option<u32>,
    },
    /// Where a group starts or ends (slot `2i` and `2i + 1`).
    Slot(usize),
    /// The end of the line (`$`).
    End,
}

/// A character class, by the first byte of a character: a table says
/// whether a byte is a character of the class (ASCII, or any byte of a byte
/// class) or starts one whose whole UTF-8 character must be looked up in
/// the class's non-ASCII ranges (Unicode classes).
#[derive(Debug, Clone)]
struct CharSet {
    table: [u8; 256],
    /// Unicode classes: the non-ASCII ranges.
    ranges: Vec<(char, char)>,
}

/// `CharSet::table` entries.
const NO: u8 = 0;
const ONE: u8 = 1;
const DECODE: u8 = 2;

impl CharSet {
    fn empty() -> CharSet {
        CharSet {
            table: [NO; 256],
            ranges: Vec::new(),
        }
    }

    fn from_class(class: &Class) -> CharSet {
        let mut set = CharSet::empty();
        match class {
            Class::Unicode(c) => {
                for r in c.ranges() {
                    for b in u32::from(r.start())..=u32::from(r.end()).min(0x7F) {
                        set.table[b as usize] = ONE;
                    }
                    if u32::from(r.end()) >= 0x80 {
                        let start =
                            char::from_u32(u32::from(r.start()).max(0x80)).unwrap_or('\u{80}');
                        set.ranges.push((start, r.end()));
                    }
                }
                if !set.ranges.is_empty() {
                    // Any lead byte of a multi-byte character.
                    for b in 0xC2..=0xF4 {
                        set.table[b] = DECODE;
                    }
                }
            }
            Class::Bytes(c) => {
                for r in c.ranges() {
                    for b in r.start()..=r.end() {
                        set.table[usize::from(b)] = ONE;
                    }
                }
            }
        }
        set
    }

    /// The class of one character (a repeated one-character literal).
    fn from_literal(bytes: &[u8]) -> Option<CharSet> {
        let c = std::str::from_utf8(bytes).ok()?;
        let mut chars = c.chars();
        let ch = chars.next()?;
        if chars.next().is_some() {
            return None;
        }
        let mut set = CharSet::empty();
        match u8::try_from(ch) {
            Ok(b) if b < 0x80 => set.table[usize::from(b)] = ONE,
            _ => {
                set.ranges.push((ch, ch));
                set.table[usize::from(bytes[0])] = DECODE;
            }
        }
        Some(set)
    }

    /// The bytes a match of this class can start with.
    fn first_bytes(&self) -> [bool; 256] {
        self.table.map(|t| t != NO)
    }

    /// The length of the non-ASCII character at `hay[at..]` when the class
    /// has it.
    #[cold]
    fn decode_at(&self, hay: &[u8], at: usize) -> Option<usize> {
        let end = (at + 4).min(hay.len());
        let text = match std::str::from_utf8(hay.get(at..end)?) {
            Ok(t) => t,
            Err(e) => std::str::from_utf8(&hay[at..at + e.valid_up_to()]).unwrap_or(""),
        };
        let ch = text.chars().next()?;
        let found = self
            .ranges
            .binary_search_by(|&(lo, hi)| {
                if hi < ch {
                    std::cmp::Ordering::Less
                } else if lo > ch {
                    std::cmp::Ordering::Greater
                } else {
                    std::cmp::Ordering::Equal
                }
            })
            .is_ok();
        found.then_some(ch.len_utf8())
    }
}

/// A compiled linear regex.
#[derive(Debug, Clone)]
pub struct Linear {
    atoms: Vec<Atom>,
    slots: usize,
}

/// The atoms of `hir` appended to `out`; false when `hir` is not linear.
fn flatten(hir: &Hir, out: &mut Vec<Atom>) -> bool {
    match hir.kind() {
        HirKind::Empty => true,
        HirKind::Literal(l) => {
            match *l.0 {
                [] => {}
                [b] => out.push(Atom::Byte(b)),
                _ => out.push(Atom::Text(l.0.clone())),
            }
            true
        }
        HirKind::Class(c) => {
            out.push(Atom::Repeat {
                set: CharSet::from_class(c),
                min: 1,
                max: Some(1),
            });
            true
        }
        HirKind::Repetition(r) if r.greedy => {
            let set = match r.sub.kind() {
                HirKind::Class(c) => CharSet::from_class(c),
                HirKind::Literal(l) => match CharSet::from_literal(&l.0) {
                    Some(set) => set,
                    None => return false,
                },
                _ => return false,
            };
            out.push(match (r.min, r.max) {
                (0 | 1, None) => Atom::Run {
                    set,
                    nonempty: r.min == 1,
                },
                (min, max) => Atom::Repeat { set, min, max },
            });
            true
        }
        HirKind::Capture(c) => {
            let i = c.index as usize;
            out.push(Atom::Slot(2 * i));
            let ok = flatten(&c.sub, out);
            out.push(Atom::Slot(2 * i + 1));
            ok
        }
        HirKind::Concat(subs) => subs.iter().all(|s| flatten(s, out)),
        HirKind::Look(Look::End) => {
            out.push(Atom::End);
            true
        }
        _ => false,
    }
}

/// The bytes the part after atom `i` can start with, or None when it may
/// be empty before something else (which would need looking further).
fn next_first_bytes(atoms: &[Atom], i: usize) -> Option<[bool; 256]> {
    for atom in &atoms[i + 1..] {
        match atom {
            Atom::Slot(_) => continue,
            Atom::End => return Some([false; 256]),
            Atom::Byte(b) => {
                let mut out = [false; 256];
                out[usize::from(*b)] = true;
                return Some(out);
            }
            Atom::Text(t) => {
                let mut out = [false; 256];
                out[usize::from(*t.first()?)] = true;
                return Some(out);
            }
            Atom::Repeat { set, min, .. } if *min >= 1 => return Some(set.first_bytes()),
            Atom::Run {
                set,
                nonempty: true,
            } => return Some(set.first_bytes()),
            Atom::Repeat { .. } | Atom::Run { .. } => return None,
        }
    }
    // Nothing after it: the greedy walk takes what the regex takes.
    Some([false; 256])
}

/// Whether a repeat of `set` (atom `i`) ends where what follows cannot
/// start: then taking as many characters as there are is the only way on.
fn stops_before_next(set: &CharSet, atoms: &[Atom], i: usize) -> bool {
    let Some(next) = next_first_bytes(atoms, i) else {
        return false;
    };
    !set.first_bytes().iter().zip(next).any(|(a, b)| *a && b)
}

impl Linear {
    /// Compiles `pattern` as `regex::bytes::Regex::new` parses it, when it
    /// is linear (see the module's documentation); None otherwise.
    pub fn new(pattern: &str) -> Option<Linear> {
        let hir = regex_syntax::ParserBuilder::new()
            .utf8(false)
            .build()
            .parse(pattern)
            .ok()?;
        let parts: Vec<&Hir> = match hir.kind() {
            HirKind::Concat(subs) => subs.iter().collect(),
            _ => vec![&hir],
        };
        // Anchored at the start: a walk from the first byte only.
        let (first, rest) = parts.split_first()?;
        if !matches!(first.kind(), HirKind::Look(Look::Start)) {
            return None;
        }
        let mut atoms = vec![Atom::Slot(0)];
        for part in rest {
            if !flatten(part, &mut atoms) {
                return None;
            }
        }
        atoms.push(Atom::Slot(1));
        let slots = 2 * (hir.properties().explicit_captures_len() + 1);
        // `$` only last; each repeat of varying length stops where what
        // follows cannot start.
        for (i, atom) in atoms.iter().enumerate() {
            let fits = match atom {
                Atom::End => atoms[i + 1..].iter().all(|a| matches!(a, Atom::Slot(_))),
                Atom::Repeat { set, min, max } if Some(*min) != *max => {
                    stops_before_next(set, &atoms, i)
                }
                Atom::Run { set, .. } => stops_before_next(set, &atoms, i),
                _ => true,
            };
            if !fits {
                return None;
            }
        }
        Some(Linear { atoms, slots })
    }

    /// How many slots `captures` fills: two per group, group 0 included.
    pub fn slots(&self) -> usize {
        self.slots
    }

    /// Matches `hay`, filling `slots` (start and end of each group) as the
    /// regex crate's `captures_read` does. False when it does not match.
    pub fn captures(&self, hay: &[u8], slots: &mut [Option<usize>]) -> bool {
        slots.fill(None);
        let mut at = 0;
        for atom in &self.atoms {
            match atom {
                Atom::Slot(i) => {
                    if let Some(s) = slots.get_mut(*i) {
                        *s = Some(at);
                    }
                }
                Atom::Byte(b) => {
                    if hay.get(at) != Some(b) {
                        return false;
                    }
                    at += 1;
                }
                Atom::Text(t) => {
                    if !hay.get(at..).is_some_and(|rest| rest.starts_with(t)) {
                        return false;
                    }
                    at += t.len();
                }
                Atom::Run { set, nonempty } => {
                    let start = at;
                    loop {
                        let rest = hay.get(at..).unwrap_or(&[]);
                        at += rest
                            .iter()
                            .position(|&b| set.table[usize::from(b)] != ONE)
                            .unwrap_or(rest.len());
                        match hay.get(at) {
                            Some(&b) if set.table[usize::from(b)] == DECODE => {
                                match set.decode_at(hay, at) {
                                    Some(len) => at += len,
                                    None => break,
                                }
                            }
                            _ => break,
                        }
                    }
                    if *nonempty && at == start {
                        return false;
                    }
                }
                Atom::Repeat { set, min, max } => {
                    let limit = max.map_or(usize::MAX, |m| m as usize);
                    let mut n = 0usize;
                    while n < limit {
                        let Some(&b) = hay.get(at) else { break };
                        match set.table[usize::from(b)] {
                            ONE => at += 1,
                            DECODE => match set.decode_at(hay, at) {
                                Some(len) => at += len,
                                None => break,
                            },
                            _ => break,
                        }
                        n += 1;
                    }
                    if n < *min as usize {
                        return false;
                    }
                }
                Atom::End => {
                    if at != hay.len() {
                        return false;
                    }
                }
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NGINX: &str = r#"^\S+ \S+ \S+ \[[^\]]+\] "(?P<method>[A-Z]+) [^"]*" (?P<status>\d{3}) (?P<bytes>\d+) (?P<rt>[0-9.]+)$"#;

    /// A match's slots, or None when there is no match.
    type Groups = Option<Vec<Option<usize>>>;

    /// Both engines' groups for `line` (ours, the regex crate's).
    fn both(pattern: &str, line: &[u8]) -> (Groups, Groups) {
        let re = regex::bytes::Regex::new(pattern).expect("regex");
        let lin = Linear::new(pattern).expect("linear");
        both_compiled(&re, &lin, line)
    }

    fn both_compiled(re: &regex::bytes::Regex, lin: &Linear, line: &[u8]) -> (Groups, Groups) {
        let mut locs = re.capture_locations();
        let theirs = re.captures_read(&mut locs, line).map(|_| {
            (0..locs.len())
                .flat_map(|i| {
                    let g = locs.get(i);
                    [g.map(|g| g.0), g.map(|g| g.1)]
                })
                .collect()
        });
        let mut slots = vec![None; lin.slots()];
        let ours = lin.captures(line, &mut slots).then_some(slots);
        (ours, theirs)
    }

    #[test]
    fn the_access_log_regex_is_linear_and_agrees() {
        for line in [
            &b"192.0.2.1 - - [22/Nov/2026:13:55:36 +0000] \"GET / HTTP/1.1\" 200 3000 0.010"[..],
            b"192.0.2.3 - - [22/Nov/2026:13:55:37 +0000] \"POST /api HTTP/1.1\" 500 1000 0.500",
            b"192.0.2.3 - - [22/Nov/2026:13:55:37 +0000] \"POST /api HTTP/1.1\" 5000 1000 0.500",
            b"192.0.2.3 - - [22/Nov/2026:13:55:37 +0000] \"POST /api HTTP/1.1\" 500 1000 0.500 ",
            "h\u{e9}te - - [x] \"GET /\u{e9} HTTP/1.1\" 200 1 1".as_bytes(),
            b"h\xff - - [x] \"GET / HTTP/1.1\" 200 1 1",
            b"not an access log line",
            b"",
        ] {
            let (ours, theirs) = both(NGINX, line);
            assert_eq!(ours, theirs, "{:?}", String::from_utf8_lossy(line));
        }
    }

    #[test]
    fn what_is_not_linear_is_left_to_the_regex_crate() {
        for pattern in [
            r"\S+ (\d+)",   // not anchored
            r"^.*foo(\d+)", // `.` also matches the `f`
            r"^(a|b)+",     // alternation
            r"^\w+?x",      // lazy
            r"^a*b*c",      // a repeat that may be empty next
            r"^(?m)a$b",    // multi-line anchors
            r"^a$b",        // `$` before the end
            r"^\bfoo",      // word boundary
            r"^(?:ab)+",    // a repeated string
        ] {
            assert!(Linear::new(pattern).is_none(), "{pattern}");
        }
        for pattern in [
            r"^(\d+)",
            r"^\S+ (\d+)$",
            r"^(?i)get (x*)",
            r"^a+b+c",
            r"^[^,]*,(.*)",
        ] {
            assert!(Linear::new(pattern).is_some(), "{pattern}");
        }
    }

    /// Generated regexes from parts log formats use, and generated lines
    /// over the same characters (with some non-ASCII and invalid UTF-8):
    /// wherever a regex compiles here, both engines give the same groups.
    #[test]
    fn generated_regexes_agree_with_the_regex_crate() {
        const PARTS: &[&str] = &[
            "a",
            "b",
            " ",
            "\"",
            "\\[",
            "\\]",
            ",",
            "\u{e9}",
            r"\d",
            r"\S",
            r"\w",
            "[a-z]",
            "[^\"]",
            "[^ ]",
            "[^,]",
            r"\s",
            ".",
            "[0-9.]",
            "(?-u:[^ ])",
            "(?i:a)",
        ];
        const QUANT: &[&str] = &["", "+", "*", "?", "{2}", "{1,3}", "{0,2}"];
        const CHARS: &[&str] = &[
            "a", "b", " ", "\"", "[", "]", ",", "\u{e9}", "1", "7", ".", "A", "\t", "\u{3000}",
            "\u{ff}",
        ];
        let mut rng = fastrand::Rng::with_seed(14);
        let (mut compiled, mut lines, mut matched) = (0, 0, 0);
        for _ in 0..3000 {
            let mut pattern = String::from("^");
            for _ in 0..rng.usize(1..6) {
                let part = format!(
                    "{}{}",
                    PARTS[rng.usize(..PARTS.len())],
                    QUANT[rng.usize(..QUANT.len())]
                );
                if rng.bool() {
                    pattern.push_str(&format!("({part})"));
                } else {
                    pattern.push_str(&part);
                }
            }
            if rng.bool() {
                pattern.push('$');
            }
            let Some(lin) = Linear::new(&pattern) else {
                continue;
            };
            let re = regex::bytes::Regex::new(&pattern).expect("regex");
            compiled += 1;
            for _ in 0..40 {
                let mut line = Vec::new();
                for _ in 0..rng.usize(0..10) {
                    if rng.u8(..) < 8 {
                        line.push(0xC3); // a lone lead byte
                    } else {
                        line.extend_from_slice(CHARS[rng.usize(..CHARS.len())].as_bytes());
                    }
                }
                let (ours, theirs) = both_compiled(&re, &lin, &line);
                matched += usize::from(theirs.is_some());
                lines += 1;
                assert_eq!(
                    ours,
                    theirs,
                    "{pattern:?} on {:?}",
                    String::from_utf8_lossy(&line)
                );
            }
        }
        // The comparison covers many regexes and matching lines.
        assert!(
            compiled > 500 && matched > 5000,
            "{compiled} regexes, {matched} of {lines} lines matched"
        );
    }
}
