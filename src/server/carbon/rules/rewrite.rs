//! carbon's `rewrite-rules.conf`: `[pre]` and `[post]` sections of
//! `regex = replacement` lines, each applied in order to a name as Python's
//! `re.sub` does (every match replaced). carbon applies `[pre]` to a
//! received name before the aggregation rules and `[post]` to a name
//! passed on after them; aggregated names skip both.
//!
//! Read as carbon reads it: lines are stripped, a line starting with `#` and
//! a blank line are skipped, a section name is lowercased and a section
//! header empties that section (a second `[pre]` replaces the first). The
//! replacement is Python's: `\1`, `\g<1>`, `\g<name>`, `\n` and the like.
//! Where carbon logs and skips a line it cannot use (an expression that does
//! not compile, a line that is neither a header nor a rule), the file is
//! refused here, naming the line; so is a group reference the expression
//! lacks, which carbon only finds when a name matches (and drops the point).

use super::super::schemas::SchemaError;
use regex::Regex;
use std::borrow::Cow;

/// One `regex = replacement` line.
#[derive(Debug, Clone)]
struct Rule {
    regex: Regex,
    /// The replacement in the regex crate's syntax.
    replacement: String,
}

/// The rules of one rewrite-rules.conf.
#[derive(Debug, Clone, Default)]
pub struct RewriteRules {
    pre: Vec<Rule>,
    post: Vec<Rule>,
    /// Sections carbon never applies, with their line (logged when loaded).
    pub ignored: Vec<(String, usize)>,
}

/// Which section applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stage {
    Pre,
    Post,
}

impl RewriteRules {
    /// Reads `text` as carbon reads a rewrite-rules.conf; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<RewriteRules, SchemaError> {
        let err = |line: usize, msg: String| SchemaError {
            file: file.to_string(),
            line,
            msg,
        };
        let mut rules = RewriteRules::default();
        // None: before any header, or a section carbon does not apply.
        let mut section: Option<Stage> = None;
        let mut named: Option<(String, usize)> = None;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            if line.starts_with('[') && line.ends_with(']') {
                let name = line[1..line.len() - 1].to_lowercase();
                section = match name.as_str() {
                    "pre" => Some(Stage::Pre),
                    "post" => Some(Stage::Post),
                    _ => None,
                };
                match section {
                    Some(Stage::Pre) => rules.pre.clear(),
                    Some(Stage::Post) => rules.post.clear(),
                    None => rules.ignored.push((name.clone(), n)),
                }
                named = Some((name, n));
                continue;
            }
            let Some((pattern, replacement)) = line.split_once('=') else {
                return Err(err(
                    n,
                    format!(
                        "{:?} is neither a [section] nor `regex = replacement`",
                        super::shown(line)
                    ),
                ));
            };
            let (pattern, replacement) = (pattern.trim(), replacement.trim());
            let regex = Regex::new(pattern)
                .map_err(|e| err(n, super::regex_error("the expression", pattern, &e)))?;
            let replacement = py_replacement(replacement, &regex).map_err(|e| err(n, e))?;
            let rule = Rule { regex, replacement };
            match section {
                Some(Stage::Pre) => rules.pre.push(rule),
                Some(Stage::Post) => rules.post.push(rule),
                None if named.is_none() => {
                    return Err(err(
                        n,
                        "a rule before any [pre] or [post] section, which carbon never applies"
                            .into(),
                    ))
                }
                // Under a section carbon keeps but never applies: logged.
                None => {}
            }
        }
        Ok(rules)
    }

    pub fn is_empty(&self) -> bool {
        self.pre.is_empty() && self.post.is_empty()
    }

    pub fn has(&self, stage: Stage) -> bool {
        !self.rules(stage).is_empty()
    }

    fn rules(&self, stage: Stage) -> &[Rule] {
        match stage {
            Stage::Pre => &self.pre,
            Stage::Post => &self.post,
        }
    }

    /// `name` through the rules of `stage`, in order.
    pub fn apply<'a>(&self, stage: Stage, name: &'a str) -> Cow<'a, str> {
        let mut out = Cow::Borrowed(name);
        for r in self.rules(stage) {
            if let Cow::Owned(s) = r.regex.replace_all(&out, r.replacement.as_str()) {
                out = Cow::Owned(s);
            }
        }
        out
    }
}

/// Python's `re.sub` replacement template in the regex crate's syntax:
/// `\N` and `\g<N>`/`\g<name>` become `${N}`/`${name}`, a literal `$`
/// becomes `$$`, Python's character escapes their character, and an escape
/// Python does not know keeps its backslash (as Python does for
/// punctuation; an unknown ASCII letter is an error in Python too).
fn py_replacement(template: &str, regex: &Regex) -> Result<String, String> {
    let groups = regex.captures_len();
    let check_number = |n: usize| {
        if n < groups {
            Ok(())
        } else {
            Err(format!(
                "the replacement {template:?} refers to group {n}, which the expression lacks"
            ))
        }
    };
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' => out.push_str("$$"),
            '\\' => match chars.next() {
                None => {
                    return Err(format!(
                        "the replacement {template:?} ends with a backslash"
                    ))
                }
                Some(d @ '1'..='9') => {
                    let mut n = d.to_digit(10).unwrap_or(0) as usize;
                    if let Some(e) = chars.peek().and_then(|e| e.to_digit(10)) {
                        n = n * 10 + e as usize;
                        chars.next();
                    }
                    check_number(n)?;
                    out.push_str(&format!("${{{n}}}"));
                }
                Some('0') => {
                    return Err(format!(
                        "the replacement {template:?} holds an octal escape, which no name may hold"
                    ))
                }
                Some('g') => {
                    if chars.next() != Some('<') {
                        return Err(format!("the replacement {template:?}: \\g needs <group>"));
                    }
                    let name: String = chars.by_ref().take_while(|&c| c != '>').collect();
                    if let Ok(n) = name.parse::<usize>() {
                        check_number(n)?;
                    } else if !regex.capture_names().flatten().any(|g| g == name) {
                        return Err(format!(
                            "the replacement {template:?} refers to group {name:?}, which the expression lacks"
                        ));
                    }
                    out.push_str(&format!("${{{name}}}"));
                }
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some('f') => out.push('\x0c'),
                Some('v') => out.push('\x0b'),
                Some('a') => out.push('\x07'),
                Some('b') => out.push('\x08'),
                Some('\\') => out.push('\\'),
                Some(d) if d.is_ascii_alphabetic() => {
                    return Err(format!(
                        "the replacement {template:?} holds \\{d}, an escape Python refuses"
                    ))
                }
                Some(d) => {
                    out.push('\\');
                    if d == '$' {
                        out.push_str("$$");
                    } else {
                        out.push(d);
                    }
                }
            },
            c => out.push(c),
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> RewriteRules {
        RewriteRules::parse(text, "rewrite-rules.conf").expect("rules")
    }

    #[test]
    fn sections_and_order_as_carbon_reads_them() {
        let r = rules(
            "# comment\n[PRE]\nold = first\n\n  [pre]  \n^servers\\. = hosts.\n\\.cpu\\. = .processor.\n\
             [post]\n  # an indented comment\n_sum$ = .sum\n[other]\nx = y\n",
        );
        assert_eq!(r.pre.len(), 2, "a second [pre] replaces the first");
        assert_eq!(
            r.apply(Stage::Pre, "servers.a.cpu.idle"),
            "hosts.a.processor.idle"
        );
        assert_eq!(r.apply(Stage::Pre, "old.servers.x"), "old.servers.x");
        assert!(matches!(r.apply(Stage::Pre, "untouched"), Cow::Borrowed(_)));
        assert_eq!(r.apply(Stage::Post, "a.b_sum"), "a.b.sum");
        assert_eq!(r.ignored, vec![("other".to_string(), 11)]);
    }

    #[test]
    fn python_replacements() {
        let r = rules(
            "[pre]\n^(\\w+)\\.(?P<host>[^.]+)\\. = \\2.\\g<1>.\\g<host>.$x\\.\n(a)(b)(c)(d)(e)(f)(g)(h)(i)(j)(k) = \\11-\\1\n",
        );
        assert_eq!(r.apply(Stage::Pre, "web.h1.cpu"), "h1.web.h1.$x\\.cpu");
        assert_eq!(r.apply(Stage::Pre, "abcdefghijk"), "k-a");
        // Every match, as re.sub.
        let r = rules("[post]\n\\. = _\n");
        assert_eq!(r.apply(Stage::Post, "a.b.c"), "a_b_c");
    }

    #[test]
    fn what_carbon_skips_or_fails_on_is_refused_with_its_line() {
        for (text, line) in [
            ("[pre]\n(unclosed = x\n", 2),
            ("[pre]\nok = x\nno equals sign\n", 3),
            ("[pre]\n(a) = \\2\n", 2),
            ("[pre]\n(a) = \\g<host>\n", 2),
            ("[post]\na = \\q\n", 2),
            ("a = b\n[pre]\n", 1),
        ] {
            let e = RewriteRules::parse(text, "rewrite-rules.conf").expect_err(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
            assert!(e.to_string().starts_with("rewrite-rules.conf:"), "{e}");
        }
    }
}
