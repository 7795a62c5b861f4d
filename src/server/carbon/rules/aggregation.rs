//! carbon's `aggregation-rules.conf`: lines
//! `output_template (frequency) = method input_pattern`. A received name
//! the input pattern matches feeds the output metric the template names:
//! `<field>` captures one segment, `<<field>>` one or more, `*` stands for
//! one segment (or, inside a segment, for any characters but a dot), and
//! the rest of the pattern is a regular expression, anchored at both ends,
//! as carbon builds it.
//!
//! Read as carbon reads it: lines are stripped, a line starting with `#`
//! and a blank line are skipped. What carbon would fail on (a line not of
//! that form, an unknown method, a frequency that is not a positive
//! number, an expression that does not compile) or would fail on when a
//! name matches (a template field the pattern does not capture, a `%` or a
//! stray `<` or `>` in the template) is refused here, naming the line.

use super::super::schemas::SchemaError;
use regex::{Regex, RegexSet};

/// The longest frequency taken: a year.
const MAX_FREQUENCY: u64 = 366 * 86_400;

/// How the values of one interval become one.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Method {
    Sum,
    Avg,
    Min,
    Max,
    Count,
    /// carbon's `pNN`: the value at this fraction of the sorted values,
    /// interpolated between the two nearest ranks.
    Percentile(f64),
}

impl Method {
    fn parse(s: &str) -> Option<Method> {
        Some(match s {
            "sum" => Method::Sum,
            "avg" => Method::Avg,
            "min" => Method::Min,
            "max" => Method::Max,
            "count" => Method::Count,
            "p50" => Method::Percentile(0.50),
            "p75" => Method::Percentile(0.75),
            "p80" => Method::Percentile(0.80),
            "p90" => Method::Percentile(0.90),
            "p95" => Method::Percentile(0.95),
            "p99" => Method::Percentile(0.99),
            "p999" => Method::Percentile(0.999),
            _ => return None,
        })
    }
}

/// A piece of an output template.
#[derive(Debug, Clone)]
enum Piece {
    Text(String),
    Field(String),
}

/// One rule.
#[derive(Debug, Clone)]
pub struct Rule {
    regex: Regex,
    template: Vec<Piece>,
    pub frequency: u64,
    pub method: Method,
}

impl Rule {
    /// The output name for `name`, when the rule takes it.
    pub fn output(&self, name: &str) -> Option<String> {
        let caps = self.regex.captures(name)?;
        let mut out = String::new();
        for p in &self.template {
            match p {
                Piece::Text(t) => out.push_str(t),
                // A group that took no part: Python's None, as carbon writes it.
                Piece::Field(f) => out.push_str(caps.name(f).map_or("None", |m| m.as_str())),
            }
        }
        Some(out)
    }
}

/// The rules of one aggregation-rules.conf, in order, with one set of all
/// their expressions that tells in one pass which rules a name may match.
#[derive(Debug, Clone)]
pub struct AggregationRules {
    rules: Vec<Rule>,
    set: RegexSet,
}

impl Default for AggregationRules {
    fn default() -> Self {
        AggregationRules {
            rules: Vec::new(),
            set: RegexSet::empty(),
        }
    }
}

impl AggregationRules {
    /// Reads `text` as carbon reads an aggregation-rules.conf; `file` names
    /// it in errors.
    pub fn parse(text: &str, file: &str) -> Result<AggregationRules, SchemaError> {
        let mut rules = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let line = raw.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            rules.push(parse_rule(line).map_err(|msg| SchemaError {
                file: file.to_string(),
                line: i + 1,
                msg,
            })?);
        }
        let set = super::regex_set(rules.iter().map(|r| r.regex.as_str()), file)?;
        Ok(AggregationRules { rules, set })
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// The rules that take `name`, in the file's order, with the output
    /// name each gives.
    pub fn matches(&self, name: &str) -> Vec<(&Rule, String)> {
        if self.rules.is_empty() {
            return Vec::new();
        }
        self.set
            .matches(name)
            .iter()
            .filter_map(|i| {
                let r = &self.rules[i];
                r.output(name).map(|o| (r, o))
            })
            .collect()
    }
}

/// `output_template (frequency) = method input_pattern`.
fn parse_rule(line: &str) -> Result<Rule, String> {
    let form = || {
        format!(
            "{:?} is not `output_template (frequency) = method input_pattern`",
            super::shown(line)
        )
    };
    let (left, right) = line.split_once('=').ok_or_else(form)?;
    let (l, r): (Vec<&str>, Vec<&str>) = (
        left.split_whitespace().collect(),
        right.split_whitespace().collect(),
    );
    let ([output, frequency], [method, input]) = (l.as_slice(), r.as_slice()) else {
        return Err(form());
    };
    let frequency = frequency
        .trim_start_matches('(')
        .trim_end_matches(')')
        .parse::<u64>()
        .ok()
        .filter(|f| (1..=MAX_FREQUENCY).contains(f))
        .ok_or_else(|| {
            format!("frequency {frequency:?}: expected whole seconds from 1 to {MAX_FREQUENCY}, such as (60)")
        })?;
    let method = Method::parse(method).ok_or_else(|| {
        format!("unknown method {method:?}: expected sum, avg, min, max, count, p50, p75, p80, p90, p95, p99 or p999")
    })?;
    let pattern = input_regex(input);
    let regex =
        Regex::new(&pattern).map_err(|e| super::regex_error("the input pattern", input, &e))?;
    let template = template(output, &regex)?;
    Ok(Rule {
        regex,
        template,
        frequency,
        method,
    })
}

/// The expression carbon builds from an input pattern, segment by segment.
fn input_regex(input: &str) -> String {
    let parts: Vec<String> = input
        .split('.')
        .map(|part| {
            if let (Some(i), Some(j)) = (part.find("<<"), part.find(">>")) {
                if j > i {
                    let (pre, field, post) = (&part[..i], &part[i + 2..j], &part[j + 2..]);
                    return format!("{pre}(?P<{field}>.+?){post}");
                }
            }
            match (part.find('<'), part.find('>')) {
                (Some(i), Some(j)) if j > i => {
                    let (pre, field, post) = (&part[..i], &part[i + 1..j], &part[j + 1..]);
                    format!("{pre}(?P<{field}>[^.]+?){post}")
                }
                _ if part == "*" => "[^.]+".to_string(),
                _ => part.replace('*', "[^.]*"),
            }
        })
        .collect();
    // Anchored at the start as Python's re.match, at the end by carbon's
    // `$` (inside the group: a `|` in a pattern binds as it does there).
    format!("^(?:{}$)", parts.join("\\."))
}

/// An output template's text and `<field>`s, every field one the input
/// pattern captures.
fn template(output: &str, regex: &Regex) -> Result<Vec<Piece>, String> {
    if output.contains('%') {
        return Err(format!(
            "the output template {output:?} holds %, which carbon cannot fill"
        ));
    }
    if output.contains("<<") {
        return Err(format!(
            "the output template {output:?} holds <<field>>, which only an input pattern may hold; write <field>"
        ));
    }
    let mut pieces = Vec::new();
    let mut rest = output;
    while let Some(i) = rest.find(['<', '>']) {
        let j = match rest[i..].starts_with('<').then(|| rest[i..].find('>')) {
            Some(Some(j)) => i + j,
            _ => {
                return Err(format!(
                    "the output template {output:?} holds a stray < or >"
                ))
            }
        };
        let field = &rest[i + 1..j];
        if !regex.capture_names().flatten().any(|n| n == field) {
            return Err(format!(
                "the output template {output:?} names <{field}>, which the input pattern does not capture"
            ));
        }
        if i > 0 {
            pieces.push(Piece::Text(rest[..i].to_string()));
        }
        pieces.push(Piece::Field(field.to_string()));
        rest = &rest[j + 1..];
    }
    if !rest.is_empty() {
        pieces.push(Piece::Text(rest.to_string()));
    }
    Ok(pieces)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rules(text: &str) -> AggregationRules {
        AggregationRules::parse(text, "aggregation-rules.conf").expect("rules")
    }

    fn outputs(r: &AggregationRules, name: &str) -> Vec<String> {
        r.matches(name).into_iter().map(|(_, o)| o).collect()
    }

    #[test]
    fn carbon_documented_examples() {
        let r = rules(
            "# comment\n\n\
             <env>.applications.<app>.all.requests (60) = sum <env>.applications.<app>.*.requests\n\
             \x20 <env>.applications.<app>.all.latency (60) = avg <env>.applications.<app>.*.latency\n\
             servers.all.<metric> (10) = max servers.*.<<metric>>\n\
             prod.<host>_total.cpu (5) = p95 prod.<host>_*.cpu\n",
        );
        assert_eq!(r.len(), 4);
        assert_eq!(
            outputs(&r, "prod.applications.shop.web01.requests"),
            ["prod.applications.shop.all.requests"]
        );
        assert_eq!(
            outputs(&r, "prod.applications.shop.web01.requests.x"),
            Vec::<String>::new()
        );
        assert_eq!(
            outputs(&r, "servers.web1.disk.sda.reads"),
            ["servers.all.disk.sda.reads"]
        );
        // `_*` is a regular expression here (underscores), as in carbon.
        assert_eq!(outputs(&r, "prod.db_1.cpu"), ["prod.db_1_total.cpu"]);
        assert_eq!(
            outputs(&r, "xprod.db_1.cpu"),
            Vec::<String>::new(),
            "anchored"
        );
        let (rule, _) = &r.matches("prod.db_1.cpu")[0];
        assert_eq!((rule.frequency, rule.method), (5, Method::Percentile(0.95)));
    }

    #[test]
    fn lazy_captures_as_pythons() {
        // Around a capture the segment is a regular expression as written
        // (here `_*`: underscores), and a second <b> is text, as carbon
        // builds it; <a> takes as little as the rest lets it.
        let r = rules("<a>.out (60) = sum x.<a>_*.y\n");
        assert_eq!(outputs(&r, "x.p_q_r.y"), ["p_q_r.out"]);
        let r = rules("<a>.out (60) = sum x.<a>_[^.]*.y\n");
        assert_eq!(outputs(&r, "x.p_q_r.y"), ["p.out"]);
        let r = rules("<a>.out (60) = sum x.<a>_<b>\n");
        assert_eq!(outputs(&r, "x.p_<b>"), ["p.out"]);
        assert_eq!(outputs(&r, "x.p_q"), Vec::<String>::new());
        let r = rules("<a>.out (60) = sum <<a>>.<b>\n");
        assert_eq!(outputs(&r, "m.n.o"), ["m.n.out"]);
    }

    #[test]
    fn what_carbon_fails_on_is_refused_with_its_line() {
        for (text, line) in [
            ("# ok\na.b (60) sum a.*\n", 2),
            ("a.b (60) = sum\n", 1),
            ("a.b 60s = sum a.*\n", 1),
            ("a.b (0) = sum a.*\n", 1),
            ("a.b (60) = median a.*\n", 1),
            ("a.<x> (60) = sum a.<y>\n", 1),
            ("a.<<x>> (60) = sum a.<<x>>\n", 1),
            ("a.%s (60) = sum a.*\n", 1),
            ("a.b> (60) = sum a.*\n", 1),
            ("a.<x.<x> (60) = sum a.<x>.<x>\n", 1),
            ("a.b (60) = sum a.(\n", 1),
        ] {
            let e = AggregationRules::parse(text, "aggregation-rules.conf").expect_err(text);
            assert_eq!(e.line, line, "{text:?}: {e}");
        }
    }
}
