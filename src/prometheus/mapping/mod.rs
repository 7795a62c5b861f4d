//! Mapping rules from dotted (Graphite or statsd) names to Prometheus
//! families and labels, in graphite_exporter's YAML format (the mapper it
//! shares with statsd_exporter):
//!
//! ```yaml
//! mappings:
//! - match: "servers.*.nginx.*"
//!   name: nginx_requests
//!   labels: {host: "$1", status: "$2"}
//! - match: 'servers\.(.*)\.postfix\.(.*)'
//!   match_type: regex
//!   name: "postfix_${2}"
//!   labels: {host: "$1"}
//! - match: "servers.*.debug.*"
//!   action: drop
//!   name: dropped
//! ```
//!
//! As the exporters do: glob rules are tried before regex rules, each kind
//! in file order, the first that matches wins. A glob's `*` matches within
//! one dot-separated field and the whole name must match; a regex may
//! match anywhere in the name. `$1`/`${1}` in the name and label values
//! are the captures (a regex rule also expands `$name`, as Go's
//! `Regexp.Expand` does). The expanded name is made a valid metric name.
//! A name no rule matches keeps its sanitised dotted name.

mod observe;

pub use observe::{parse_go_duration, MetricType, Observe, ObserverType, Options};

use observe::{HistogramSpec, OptionSpec, QuantileSpec, SummarySpec};
use regex::{Regex, RegexSet};
use serde::Deserialize;
use std::collections::BTreeMap;

/// The largest mapping file read (a rule is a few lines; this is
/// thousands of rules).
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// The deepest `{`/`[` nesting taken (brackets in regexes count too).
const MAX_NESTING: usize = 64;

/// The names node_exporter's families have: the collectors' own. A rule
/// naming into it would merge Graphite samples into them.
pub const NODE_NAMESPACE: &str = "node_";
pub const NODE_NAMESPACE_WHY: &str =
    "node_ names are the collectors' own node_exporter families; a rule may not map into them";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum MatchType {
    #[default]
    Glob,
    Regex,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
enum Action {
    #[default]
    Map,
    Drop,
}

/// A duration as YAML gives it: Go's text (`10m`), or nanoseconds.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum DurationSpec {
    Text(String),
    Nanos(u64),
}

impl DurationSpec {
    fn text(self) -> String {
        match self {
            DurationSpec::Text(t) => t,
            DurationSpec::Nanos(0) => "0".into(),
            DurationSpec::Nanos(n) => format!("{n}ns"),
        }
    }
}

#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct Defaults {
    #[serde(default)]
    match_type: MatchType,
    #[serde(default)]
    glob_disable_ordering: bool,
    #[serde(default, alias = "timer_type")]
    observer_type: Option<String>,
    #[serde(default)]
    buckets: Option<Vec<f64>>,
    #[serde(default)]
    quantiles: Option<Vec<QuantileSpec>>,
    #[serde(default)]
    summary_options: Option<SummarySpec>,
    #[serde(default)]
    histogram_options: Option<HistogramSpec>,
    #[serde(default)]
    ttl: Option<DurationSpec>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RuleSpec {
    #[serde(rename = "match")]
    pattern: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
    #[serde(default)]
    action: Action,
    match_type: Option<MatchType>,
    help: Option<String>,
    /// statsd_exporter's keys (graphite_exporter's samples are gauges).
    #[serde(default)]
    match_metric_type: Option<MetricType>,
    #[serde(default, alias = "timer_type")]
    observer_type: Option<String>,
    #[serde(default)]
    buckets: Option<Vec<f64>>,
    #[serde(default)]
    quantiles: Option<Vec<QuantileSpec>>,
    #[serde(default)]
    summary_options: Option<SummarySpec>,
    #[serde(default)]
    histogram_options: Option<HistogramSpec>,
    #[serde(default)]
    ttl: Option<DurationSpec>,
    #[serde(default)]
    scale: Option<f64>,
    #[serde(default)]
    honor_labels: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileSpec {
    #[serde(default)]
    defaults: Defaults,
    #[serde(default)]
    mappings: Vec<RuleSpec>,
}

#[derive(Debug)]
struct Rule {
    kind: MatchType,
    regex: Regex,
    name: String,
    labels: Vec<(String, String)>,
    drop: bool,
    help: Option<String>,
    /// The statsd type it is for; any when `None`.
    metric_type: Option<MetricType>,
    options: Options,
    /// The line of its `match:` in the file, when known.
    line: Option<usize>,
}

/// What a rule makes of a name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mapped {
    /// No rule matched.
    Unmatched,
    /// A rule said `action: drop`.
    Drop,
    /// The family name (valid), its labels, the rule's help text, and
    /// the rule (for [`Mapper::options`]).
    To {
        name: String,
        labels: Vec<(String, String)>,
        help: Option<String>,
        rule: usize,
    },
}

/// A set of mapping rules, compiled.
#[derive(Debug, Default)]
pub struct Mapper {
    rules: Vec<Rule>,
    /// The glob rules' regexes, in file order (their indexes in `globs`).
    glob_set: Option<RegexSet>,
    globs: Vec<usize>,
    regexes: Vec<usize>,
    /// `defaults:`'s options, for names no rule maps.
    defaults: Options,
}

/// Why a mapping file was refused: the line (1-based, when known) and what.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", line.map(|l| format!("line {l}: ")).unwrap_or_default())]
pub struct MappingError {
    pub line: Option<usize>,
    pub message: String,
}

/// The lines (1-based) of the rules' `match:` keys in `text`, in order
/// (fewer than the rules when the file is not written one key per line).
fn rule_lines(text: &str) -> Vec<usize> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| {
            let t = l.trim_start();
            let t = t.strip_prefix('-').map_or(t, str::trim_start);
            t.starts_with("match:")
        })
        .map(|(i, _)| i + 1)
        .collect()
}

/// The most rules a file may hold: more is not a mapping file someone
/// keeps by hand, and compiling their globs together costs memory.
pub const MAX_RULES: usize = 10_000;

/// A glob as an anchored regex: each `*` is `([^.]*)`, the rest literal.
fn glob_regex(glob: &str) -> Result<Regex, String> {
    if glob.is_empty() || glob.split('.').any(str::is_empty) {
        return Err(format!("invalid glob {glob:?}: an empty field"));
    }
    let mut re = String::with_capacity(glob.len() * 2 + 2);
    re.push('^');
    for (i, part) in glob.split('*').enumerate() {
        if i > 0 {
            re.push_str("([^.]*)");
        }
        re.push_str(&regex::escape(part));
    }
    re.push('$');
    Regex::new(&re).map_err(|e| e.to_string())
}

/// A `$N` or `${N}` capture reference (digits only, as the exporters'
/// formatter reads them) at byte `i` of `t`: its number and where it ends.
fn capture_ref(t: &str, i: usize) -> Option<(usize, usize)> {
    let b = t.as_bytes();
    if b.get(i) != Some(&b'$') {
        return None;
    }
    let braced = b.get(i + 1) == Some(&b'{');
    let start = i + 1 + usize::from(braced);
    let end = start + b[start..].iter().take_while(|c| c.is_ascii_digit()).count();
    if end == start || (braced && b.get(end) != Some(&b'}')) {
        return None;
    }
    let n = t[start..end].parse().unwrap_or(usize::MAX);
    Some((n, end + usize::from(braced)))
}

/// Whether `t` is a valid name template: letters, digits, `_` and `$N` /
/// `${N}` references, not starting with a digit (the exporters' check).
fn valid_name_template(t: &str) -> bool {
    let b = t.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if let Some((_, end)) = capture_ref(t, i) {
            i = end;
            continue;
        }
        let c = b[i];
        if !(c.is_ascii_alphabetic() || c == b'_' || (i > 0 && c.is_ascii_digit())) {
            return false;
        }
        i += 1;
    }
    !t.is_empty()
}

/// The highest `$N`/`${N}` reference in `t` (0 for none).
fn highest_ref(t: &str) -> usize {
    (0..t.len())
        .filter_map(|i| capture_ref(t, i))
        .map(|(n, _)| n)
        .max()
        .unwrap_or(0)
}

/// A glob rule's template with its captures: `$N` and `${N}`, everything
/// else as is.
fn expand_glob(template: &str, caps: &regex::Captures) -> String {
    let mut out = String::with_capacity(template.len() + 16);
    let mut i = 0;
    while i < template.len() {
        if let Some((n, end)) = capture_ref(template, i) {
            out.push_str(caps.get(n).map_or("", |m| m.as_str()));
            i = end;
            continue;
        }
        // A char boundary: `$` is ASCII, and so is every byte a reference spans.
        let ch_len = template[i..].chars().next().map_or(1, char::len_utf8);
        out.push_str(&template[i..i + ch_len]);
        i += ch_len;
    }
    out
}

impl Mapper {
    /// Reads and compiles a mapping file.
    pub fn load(path: &std::path::Path) -> Result<Mapper, MappingError> {
        use std::io::Read;
        let err = |message: String| MappingError {
            line: None,
            message,
        };
        let mut bytes = Vec::new();
        std::fs::File::open(path)
            .and_then(|f| f.take(MAX_FILE_BYTES as u64 + 1).read_to_end(&mut bytes))
            .map_err(|e| err(e.to_string()))?;
        if bytes.len() > MAX_FILE_BYTES {
            return Err(err(format!(
                "larger than {MAX_FILE_BYTES} bytes: not a mapping file"
            )));
        }
        let text = String::from_utf8(bytes).map_err(|e| err(format!("not UTF-8: {e}")))?;
        Mapper::parse(&text)
    }

    /// Compiles the rules of a mapping file's text.
    pub fn parse(text: &str) -> Result<Mapper, MappingError> {
        if text.trim().is_empty() {
            return Ok(Mapper::default());
        }
        // The YAML reader takes time growing with the square of the
        // nesting: a mapping file needs four levels of it.
        let mut depth = 0usize;
        for (n, line) in text.lines().enumerate() {
            for c in line.bytes() {
                match c {
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => depth = depth.saturating_sub(1),
                    _ => {}
                }
                if depth > MAX_NESTING {
                    return Err(MappingError {
                        line: Some(n + 1),
                        message: format!("nested deeper than {MAX_NESTING} levels"),
                    });
                }
            }
        }
        let spec: FileSpec = yaml_serde::from_str(text).map_err(|e| MappingError {
            line: e.location().map(|l| l.line()),
            message: e.to_string(),
        })?;
        if spec.defaults.glob_disable_ordering {
            return Err(MappingError {
                line: None,
                message:
                    "defaults.glob_disable_ordering is not supported: rules apply in file order"
                        .into(),
            });
        }
        let d = spec.defaults;
        let defaults = OptionSpec {
            observer_type: d.observer_type,
            buckets: d.buckets,
            quantiles: d.quantiles,
            summary_options: d.summary_options,
            histogram_options: d.histogram_options,
            ttl: d.ttl.map(DurationSpec::text),
            scale: None,
            honor_labels: None,
        }
        .resolve(&Options::default())
        .map_err(|message| MappingError {
            line: text
                .lines()
                .position(|l| l.trim_start().starts_with("defaults:"))
                .map(|i| i + 1),
            message: format!("defaults: {message}"),
        })?;
        let mut m = Mapper {
            defaults,
            ..Mapper::default()
        };
        let mut glob_patterns = Vec::new();
        if spec.mappings.len() > MAX_RULES {
            return Err(MappingError {
                line: None,
                message: format!(
                    "{} rules: at most {MAX_RULES} are taken",
                    spec.mappings.len()
                ),
            });
        }
        let lines = rule_lines(text);
        let rule_line = |n: usize| lines.get(n).copied();
        for (n, r) in spec.mappings.into_iter().enumerate() {
            let err = |message: String| MappingError {
                line: rule_line(n),
                message: format!("mappings[{n}] (match {:?}): {message}", r.pattern),
            };
            if r.name.is_empty() {
                return Err(err("no name (every rule needs one, a drop rule too)".into()));
            }
            if !valid_name_template(&r.name) {
                return Err(err(format!(
                    "name {:?} is not letters, digits, _ and $N captures",
                    r.name
                )));
            }
            for k in r.labels.keys() {
                if !super::valid_label_name(k) || k.starts_with("__") {
                    return Err(err(format!("label name {k:?} is not valid")));
                }
            }
            let options = OptionSpec {
                observer_type: r.observer_type,
                buckets: r.buckets,
                quantiles: r.quantiles,
                summary_options: r.summary_options,
                histogram_options: r.histogram_options,
                ttl: r.ttl.map(DurationSpec::text),
                scale: r.scale,
                honor_labels: r.honor_labels,
            }
            .resolve(&m.defaults)
            .map_err(err)?;
            let kind = r.match_type.unwrap_or(d.match_type);
            let regex = match kind {
                MatchType::Glob => glob_regex(&r.pattern).map_err(err)?,
                MatchType::Regex => {
                    Regex::new(&r.pattern).map_err(|e| err(format!("invalid regex: {e}")))?
                }
            };
            // A capture the match does not have would always be empty.
            let captures = regex.captures_len() - 1;
            let highest = std::iter::once(r.name.as_str())
                .chain(r.labels.values().map(String::as_str))
                .map(highest_ref)
                .max()
                .unwrap_or(0);
            if highest > captures {
                return Err(err(format!(
                    "${highest} is used, but the match has {captures} capture{}",
                    if captures == 1 { "" } else { "s" }
                )));
            }
            match kind {
                MatchType::Glob => {
                    m.globs.push(m.rules.len());
                    glob_patterns.push(regex.as_str().to_string());
                }
                MatchType::Regex => m.regexes.push(m.rules.len()),
            }
            m.rules.push(Rule {
                kind,
                regex,
                name: r.name,
                labels: r.labels.into_iter().collect(),
                drop: r.action == Action::Drop,
                help: r.help,
                metric_type: r.match_metric_type,
                options,
                line: rule_line(n),
            });
        }
        if !glob_patterns.is_empty() {
            let n = glob_patterns.len();
            // The glob rules compiled together: room for MAX_RULES of them.
            let set = regex::RegexSetBuilder::new(&glob_patterns)
                .size_limit(256 << 20)
                .build();
            m.glob_set = Some(set.map_err(|e| MappingError {
                line: None,
                message: format!("the {n} glob rules, compiled together: {e}"),
            })?);
        }
        Ok(m)
    }

    /// The first mapping rule (not a drop rule) whose name starts with
    /// `prefix`, as an error naming its line.
    pub fn naming_into(&self, prefix: &str, why: &str) -> Result<(), MappingError> {
        match self
            .rules
            .iter()
            .enumerate()
            .find(|(_, r)| !r.drop && r.name.starts_with(prefix))
        {
            Some((n, r)) => Err(MappingError {
                line: r.line,
                message: format!("mappings[{n}]: name {:?}: {why}", r.name),
            }),
            None => Ok(()),
        }
    }

    /// The rules of a handler's `mapping_file` (none when it is ""), which
    /// may not name into `node_`; an error names the key, file and line.
    pub fn for_handler(
        key: &str,
        path: &str,
    ) -> Result<Option<Mapper>, crate::config::ConfigError> {
        if path.is_empty() {
            return Ok(None);
        }
        Mapper::load(std::path::Path::new(path))
            .and_then(|m| {
                m.naming_into(NODE_NAMESPACE, NODE_NAMESPACE_WHY)?;
                Ok(Some(m))
            })
            .map_err(|e| {
                crate::config::ConfigError::new(
                    format!("{key}.mapping_file"),
                    format!("{path}: {e}"),
                )
            })
    }

    /// A digest of a mapping file's bytes (0 for none or unreadable): a
    /// handler whose file changed is a changed handler at a reload.
    pub fn file_digest(path: &str) -> u64 {
        use std::hash::BuildHasher;
        if path.is_empty() {
            return 0;
        }
        std::fs::read(path)
            .map(|b| foldhash::fast::FixedState::with_seed(1).hash_one(&b))
            .unwrap_or(0)
    }

    /// The number of rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// What the rules make of a Graphite `name` (a gauge, to rules that
    /// name a `match_metric_type`).
    pub fn map(&self, name: &str) -> Mapped {
        self.map_typed(name, MetricType::Gauge)
    }

    /// The options of a rule [`Mapped::To`] named, or `defaults:`'s.
    pub fn options(&self, rule: Option<usize>) -> &Options {
        rule.and_then(|i| self.rules.get(i))
            .map_or(&self.defaults, |r| &r.options)
    }

    /// What the rules make of `name`, a statsd metric of type `t`: rules
    /// for another `match_metric_type` are passed over.
    pub fn map_typed(&self, name: &str, t: MetricType) -> Mapped {
        let fits = |i: &usize| self.rules[*i].metric_type.is_none_or(|m| m == t);
        let glob = self.glob_set.as_ref().and_then(|set| {
            set.matches(name)
                .iter()
                .map(|i| self.globs[i])
                .find(|i| fits(i))
        });
        let found = glob.or_else(|| {
            self.regexes
                .iter()
                .copied()
                .filter(|i| fits(i))
                .find(|&i| self.rules[i].regex.is_match(name))
        });
        let Some(i) = found else {
            return Mapped::Unmatched;
        };
        let rule = &self.rules[i];
        if rule.drop {
            return Mapped::Drop;
        }
        let Some(caps) = rule.regex.captures(name) else {
            return Mapped::Unmatched;
        };
        let expand = |t: &str| match rule.kind {
            MatchType::Glob => expand_glob(t, &caps),
            MatchType::Regex => {
                let mut s = String::new();
                caps.expand(t, &mut s);
                s
            }
        };
        Mapped::To {
            name: super::metric_name(&expand(&rule.name)),
            labels: rule
                .labels
                .iter()
                .map(|(k, v)| (k.clone(), expand(v)))
                .collect(),
            help: rule.help.clone(),
            rule: i,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn to(rule: usize, name: &str, labels: &[(&str, &str)]) -> Mapped {
        Mapped::To {
            rule,
            name: name.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            help: None,
        }
    }

    const RULES: &str = r#"
mappings:
- match: 'servers\.([^.]+)\.app\.(.*)'
  match_type: regex
  name: "app_${2}"
  labels: {host: "$1"}
- match: "servers.*.nginx.*"
  name: nginx_requests
  labels:
    host: "$1"
    status: "${2}"
- match: "servers.*.debug.*"
  action: drop
  name: dropped
- match: "servers.*.nginx.2xx"
  name: never_reached
- match: "servers.web*.cpu.*"
  name: "cpu_$2_seconds"
  labels: {host: "web$1"}
"#;

    #[test]
    fn globs_first_in_order_then_regexes() {
        let m = Mapper::parse(RULES).expect("rules");
        assert_eq!(m.len(), 5);
        assert_eq!(
            m.map("servers.web01.nginx.2xx"),
            to(1, "nginx_requests", &[("host", "web01"), ("status", "2xx")])
        );
        assert_eq!(m.map("servers.web01.debug.x"), Mapped::Drop);
        // `*` is one field, partial globs too; `$2_` is capture 2 then `_`.
        assert_eq!(
            m.map("servers.web01.cpu.user"),
            to(4, "cpu_user_seconds", &[("host", "web01")])
        );
        assert_eq!(m.map("servers.db01.cpu.user"), Mapped::Unmatched);
        assert_eq!(m.map("servers.a.b.nginx.2xx"), Mapped::Unmatched);
        // The regex matches where no glob does; its name is made valid.
        assert_eq!(
            m.map("servers.db01.app.requests.ok-count"),
            to(0, "app_requests_ok_count", &[("host", "db01")])
        );
        assert_eq!(m.map("other.name"), Mapped::Unmatched);
    }

    #[test]
    fn a_regex_rule_matches_anywhere_and_expands_as_go_does() {
        let m = Mapper::parse(
            "mappings:\n- match: 'b\\.(?P<what>[a-z]+)'\n  match_type: regex\n  name: x_${1}\n  labels: {w: \"$what\", raw: \"$1_\"}\n",
        )
        .expect("rules");
        // Unanchored; `$1_` names a group `1_`, which is empty.
        assert_eq!(
            m.map("a.b.cd.e"),
            to(0, "x_cd", &[("raw", ""), ("w", "cd")])
        );
    }

    #[test]
    fn defaults_match_type_and_help() {
        let m = Mapper::parse(
            "defaults:\n  match_type: regex\nmappings:\n- match: '^a\\.(.+)$'\n  name: a\n  help: The a.\n  labels: {rest: \"$1\"}\n",
        )
        .expect("rules");
        assert_eq!(
            m.map("a.b.c"),
            Mapped::To {
                name: "a".into(),
                labels: vec![("rest".into(), "b.c".into())],
                help: Some("The a.".into()),
                rule: 0,
            }
        );
    }

    #[test]
    fn bad_files_name_the_line() {
        let cases: &[(&str, Option<usize>, &str)] = &[
            ("mappings:\n- match: a.*\n  name: [x\n", Some(3), ""),
            ("mappings:\n- match: a.*\n  nmae: x\n", Some(3), "nmae"),
            ("mappings:\n- match: a.*\n  name: x\n- match: \"b..c\"\n  name: y\n", Some(4), "empty field"),
            ("mappings:\n- match: a.*\n  name: x\n- match: '(b'\n  match_type: regex\n  name: y\n", Some(4), "invalid regex"),
            ("mappings:\n- match: a.*\n", Some(2), "no name"),
            ("mappings:\n- match: a.*\n  name: 1x\n", Some(2), "not letters"),
            ("mappings:\n- match: a.*\n  name: x-y\n", Some(2), "not letters"),
            ("mappings:\n- match: a.*\n  name: x\n  labels: {\"a-b\": c}\n", Some(2), "label name"),
            ("mappings:\n- match: a.*\n  name: x\n  action: keep\n", Some(4), "keep"),
            ("mappings:\n- match: a.*\n  name: x\n  match_type: fuzzy\n", Some(4), "fuzzy"),
            ("mappings:\n- match: a.*\n  name: x\n  labels: {b: \"$2\"}\n", Some(2), "$2 is used, but the match has 1 capture"),
            ("mappings:\n- match: 'a(b)'\n  match_type: regex\n  name: x_${3}\n", Some(2), "has 1 capture"),
        ];
        for (text, line, word) in cases {
            let e = Mapper::parse(text).expect_err(text);
            assert_eq!(e.line, *line, "{text}: {e}");
            assert!(e.to_string().contains(word), "{text}: {e}");
        }
        assert!(Mapper::parse("").expect("empty").is_empty());
        let deep = format!(
            "mappings:\n- match: a.*\n  name: x\n  labels: {}\n",
            "{a: ".repeat(100)
        );
        let e = Mapper::parse(&deep).expect_err("deep");
        assert_eq!(e.line, Some(4), "{e}");
        let dir = tempfile::tempdir().expect("tempdir");
        let big = dir.path().join("big.yml");
        std::fs::write(&big, "#".repeat(MAX_FILE_BYTES + 1)).expect("write");
        assert!(Mapper::load(&big)
            .expect_err("big")
            .to_string()
            .contains("larger"));
        assert!(Mapper::load(std::path::Path::new("/dev/zero")).is_err());
        assert!(Mapper::parse("mappings: []\n").expect("none").is_empty());
    }

    #[test]
    fn a_rule_into_a_reserved_namespace_is_named_with_its_line() {
        let m = Mapper::parse(
            "mappings:\n- match: a.*\n  action: drop\n  name: node_x\n- match: b.*\n  name: ok\n- match: c.*\n  name: node_load1\n",
        )
        .expect("rules");
        let e = m.naming_into("node_", "reserved").expect_err("node_load1");
        assert_eq!(e.line, Some(7));
        assert!(
            e.to_string()
                .contains("mappings[2]: name \"node_load1\": reserved"),
            "{e}"
        );
        assert!(m.naming_into("zzz_", "reserved").is_ok());
    }

    #[test]
    fn statsd_keys_type_the_rules_and_their_timers() {
        let m = Mapper::parse(
            r#"
defaults:
  timer_type: histogram
  buckets: [0.1, 1]
  ttl: 5m
mappings:
- match: "api.*.time"
  match_metric_type: counter
  name: api_calls
- match: "api.*.time"
  name: api_seconds
  labels: {route: "$1"}
  observer_type: summary
  summary_options:
    quantiles: [{quantile: 0.99, error: 0.001}, {quantile: 0.5, error: 0.05}]
    max_age: 1m
    age_buckets: 3
  ttl: 0
  scale: 0.5
  honor_labels: true
- match: "db.*"
  match_metric_type: timer
  name: db_seconds
"#,
        )
        .expect("rules");
        assert!(matches!(
            m.map_typed("api.get.time", MetricType::Counter),
            Mapped::To { ref name, rule: 0, .. } if name == "api_calls"
        ));
        let Mapped::To { name, rule, .. } = m.map_typed("api.get.time", MetricType::Observer)
        else {
            panic!("no rule for the timer")
        };
        assert_eq!((name.as_str(), rule), ("api_seconds", 1));
        let o = m.options(Some(rule));
        assert_eq!(o.observe.kind, ObserverType::Summary);
        assert_eq!(&*o.observe.quantiles, &[0.5, 0.99]);
        assert_eq!(o.observe.max_age, std::time::Duration::from_secs(60));
        assert_eq!(o.observe.age_buckets, 3);
        // A rule's ttl 0 keeps the defaults'.
        assert_eq!(o.ttl, std::time::Duration::from_secs(300));
        assert!(o.honor_labels && o.scale == 0.5);
        // `timer` is `observer`; a gauge passes over a timer rule.
        assert!(matches!(
            m.map_typed("db.q", MetricType::Observer),
            Mapped::To { rule: 2, .. }
        ));
        assert_eq!(m.map_typed("db.q", MetricType::Gauge), Mapped::Unmatched);
        assert_eq!(m.map("db.q"), Mapped::Unmatched);
        let d = m.options(None);
        assert_eq!(d.observe.kind, ObserverType::Histogram);
        assert_eq!(&*d.observe.buckets, &[0.1, 1.0]);
        // Bad options name the rule's line, or the defaults'.
        let e = Mapper::parse("mappings:\n- match: a.*\n  name: x\n  observer_type: gauge\n")
            .expect_err("type");
        assert_eq!(e.line, Some(2), "{e}");
        let e = Mapper::parse("defaults:\n  ttl: 5 minutes\nmappings: []\n").expect_err("ttl");
        assert_eq!(e.line, Some(1), "{e}");
        assert!(e.to_string().contains("defaults: ttl"), "{e}");
    }

    #[test]
    fn glob_templates() {
        let re = glob_regex("a.*.c*").expect("glob");
        let caps = re.captures("a.bb.cdd").expect("match");
        assert_eq!(expand_glob("x_$1_${2}_$3_$", &caps), "x_bb_dd__$");
        assert_eq!(expand_glob("é$1{", &caps), "ébb{");
        assert!(re.captures("a.b.b.cdd").is_none());
    }
}
