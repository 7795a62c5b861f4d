//! Evaluating a parsed target: paths are fetched, calls run graphite-web's
//! functions (one file per graphite-web group).

mod alias;
mod calculate;
pub mod catalog;
mod combine;
mod filter;
mod graph;
mod sort;
mod transform;

pub use combine::{Input, Stream};

/// `aggregate` itself, for tests that compare other paths with it.
#[cfg(test)]
pub fn combine_aggregate(
    ctx: &Context,
    lists: Vec<Vec<Series>>,
    func: &str,
) -> Result<Vec<Series>> {
    combine::aggregate(ctx, lists, func, None)
}

use super::grammar::{Call, Node};
use super::pyfmt;
use super::series::Series;

/// Why a render failed, and the HTTP status it answers with.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// The request is wrong (400).
    #[error("{0}")]
    Input(String),
    /// The request asks for more than the limits allow (413).
    #[error("{0}")]
    TooLarge(String),
    /// Reading the data failed (500).
    #[error("{0}")]
    Internal(String),
    /// The server lacks what it needs to answer now (file descriptors,
    /// memory): 503, never a partial answer.
    #[error("{0}")]
    Unavailable(String),
}

/// Whether an I/O error is the process running short (of file
/// descriptors or memory), not the file being bad.
pub fn short_of_resources(e: &std::io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOMEM)
    )
}

pub type Result<T> = std::result::Result<T, RenderError>;

fn input<T>(msg: impl Into<String>) -> Result<T> {
    Err(RenderError::Input(msg.into()))
}

/// Where series come from: the whisper files (and the carbon cache).
pub trait Source: Sync {
    fn fetch(&self, pattern: &str, ctx: &Context) -> Result<Vec<Series>>;

    /// The tagged series `seriesByTag(exprs...)` (written `raw`) selects.
    fn fetch_tagged(&self, exprs: &[String], raw: &str, ctx: &Context) -> Result<Vec<Series>> {
        let _ = (exprs, raw, ctx);
        Ok(Vec::new())
    }

    /// Feeds the series `fetch` would give for each of `patterns`, in the
    /// same order, to `into` one at a time, without holding them all.
    /// False when this source cannot, or `into` refused a series: the
    /// caller then fetches as usual.
    fn fold(&self, patterns: &[&str], ctx: &Context, into: &mut Stream) -> Result<bool> {
        let _ = (patterns, ctx, into);
        Ok(false)
    }
}

/// A render's time range and settings (graphite-web's `requestContext`).
#[derive(Clone, Copy)]
pub struct Context<'a> {
    pub start: i64,
    pub end: i64,
    pub now: i64,
    pub xff: f64,
    pub source: &'a dyn Source,
}

/// What an argument or a function gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    List(Vec<Series>),
    Int(i64),
    Float(f64),
    Str(String),
    Bool(bool),
    None,
}

impl Value {
    fn kind(&self) -> &'static str {
        match self {
            Value::List(_) => "a series list",
            Value::Int(_) | Value::Float(_) => "a number",
            Value::Str(_) => "a string",
            Value::Bool(_) => "a boolean",
            Value::None => "None",
        }
    }
}

/// Evaluates one target to its series.
pub fn evaluate_target(node: &Node, ctx: &Context) -> Result<Vec<Series>> {
    match evaluate(node, ctx)? {
        Value::List(l) => Ok(l),
        other => input(format!("a target must give series, not {}", other.kind())),
    }
}

pub fn evaluate(node: &Node, ctx: &Context) -> Result<Value> {
    Ok(match node {
        Node::Path(p) => Value::List(ctx.source.fetch(p, ctx)?),
        Node::Int(i) => Value::Int(*i),
        Node::Float(f) => Value::Float(*f),
        Node::Str(s) => Value::Str(s.clone()),
        Node::Bool(b) => Value::Bool(*b),
        Node::None => Value::None,
        Node::Call(call) if call.name == "seriesByTag" => {
            let exprs = call
                .args
                .iter()
                .map(|a| match a {
                    Node::Str(s) => Ok(s.clone()),
                    _ => input("seriesByTag: each argument must be a quoted tag expression"),
                })
                .collect::<Result<Vec<_>>>()?;
            if exprs.is_empty() {
                return input("seriesByTag: at least one tag expression");
            }
            Value::List(ctx.source.fetch_tagged(&exprs, &call.raw, ctx)?)
        }
        Node::Call(call) => {
            if let Some(v) = combine::folded(call, ctx)? {
                return Ok(v);
            }
            let Some(f) = lookup(&call.name) else {
                return input(format!(
                    "Received request for unknown function: {}",
                    call.name
                ));
            };
            let pos = call
                .args
                .iter()
                .map(|a| evaluate(a, ctx).map(Some))
                .collect::<Result<Vec<_>>>()?;
            let kw = call
                .kwargs
                .iter()
                .map(|(k, v)| Ok((k.clone(), Some(evaluate(v, ctx)?))))
                .collect::<Result<Vec<_>>>()?;
            let mut args = Args {
                func: &call.name,
                pos,
                kw,
            };
            let out = f(&mut args, ctx, call)?;
            args.finish()?;
            out
        }
    })
}

type Function = fn(&mut Args, &Context, &Call) -> Result<Value>;

/// The function a target names, by graphite-web's name (and alias).
pub fn lookup(name: &str) -> Option<Function> {
    combine::lookup(name)
        .or_else(|| transform::lookup(name))
        .or_else(|| calculate::lookup(name))
        .or_else(|| filter::lookup(name))
        .or_else(|| sort::lookup(name))
        .or_else(|| alias::lookup(name))
        .or_else(|| graph::lookup(name))
}

/// Every function name carbyne knows (for `/functions`).
pub fn names() -> Vec<&'static str> {
    let mut all: Vec<&'static str> = [
        combine::NAMES,
        transform::NAMES,
        calculate::NAMES,
        filter::NAMES,
        sort::NAMES,
        alias::NAMES,
        graph::NAMES,
        &["seriesByTag"],
    ]
    .concat();
    all.sort_unstable();
    all
}

/// A call's arguments, taken by position or keyword.
pub struct Args<'a> {
    func: &'a str,
    pos: Vec<Option<Value>>,
    kw: Vec<(String, Option<Value>)>,
}

impl Args<'_> {
    fn bad<T>(&self, msg: String) -> Result<T> {
        input(format!("{}: {msg}", self.func))
    }

    /// The argument at position `i` or named `name`, taken.
    pub fn take(&mut self, i: usize, name: &str) -> Option<Value> {
        if let Some((_, v)) = self.kw.iter_mut().find(|(k, _)| k == name) {
            return v.take();
        }
        self.pos.get_mut(i).and_then(Option::take)
    }

    /// Extra arguments left over are an error, as in graphite-web.
    fn finish(&self) -> Result<()> {
        if let Some((k, _)) = self.kw.iter().find(|(_, v)| v.is_some()) {
            return self.bad(format!("unexpected keyword argument '{k}'"));
        }
        if self.pos.iter().any(Option::is_some) {
            return self.bad("too many arguments".into());
        }
        Ok(())
    }

    pub fn series(&mut self, i: usize, name: &str) -> Result<Vec<Series>> {
        match self.take(i, name) {
            Some(Value::List(l)) => Ok(l),
            Some(other) => self.bad(format!(
                "{name} must be a series list, not {}",
                other.kind()
            )),
            None => self.bad(format!("missing required argument {name}")),
        }
    }

    /// A series list when given, `None` when absent or None.
    pub fn opt_series(&mut self, i: usize, name: &str) -> Result<Option<Vec<Series>>> {
        match self.take(i, name) {
            Some(Value::List(l)) => Ok(Some(l)),
            None | Some(Value::None) => Ok(None),
            Some(other) => self.bad(format!(
                "{name} must be a series list, not {}",
                other.kind()
            )),
        }
    }

    /// `*seriesLists` from position `i` on.
    pub fn rest_series(&mut self, i: usize) -> Result<Vec<Vec<Series>>> {
        let mut out = Vec::new();
        for j in i..self.pos.len() {
            match self.pos[j].take() {
                Some(Value::List(l)) => out.push(l),
                Some(other) => {
                    return self.bad(format!(
                        "argument {} must be a series list, not {}",
                        j + 1,
                        other.kind()
                    ))
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// `*nodes` (integers, or tag names) from position `i` on.
    pub fn rest_nodes(&mut self, i: usize) -> Result<Vec<NodeKey>> {
        let mut out = Vec::new();
        for j in i..self.pos.len() {
            match self.pos[j].take() {
                Some(Value::Int(n)) => out.push(NodeKey::Index(n)),
                Some(Value::Float(f)) if f.fract() == 0.0 => out.push(NodeKey::Index(f as i64)),
                Some(Value::Str(s)) => out.push(NodeKey::Tag(s)),
                Some(other) => {
                    return self.bad(format!(
                        "node {} must be a number or a tag, not {}",
                        j + 1,
                        other.kind()
                    ))
                }
                None => {}
            }
        }
        Ok(out)
    }

    /// A number and whether it was written as an integer.
    pub fn opt_number(&mut self, i: usize, name: &str) -> Result<Option<(f64, bool)>> {
        match self.take(i, name) {
            Some(Value::Int(n)) => Ok(Some((n as f64, true))),
            Some(Value::Float(f)) => Ok(Some((f, false))),
            None | Some(Value::None) => Ok(None),
            Some(other) => self.bad(format!("{name} must be a number, not {}", other.kind())),
        }
    }

    pub fn number(&mut self, i: usize, name: &str) -> Result<(f64, bool)> {
        match self.opt_number(i, name)? {
            Some(n) => Ok(n),
            None => self.bad(format!("missing required argument {name}")),
        }
    }

    pub fn int(&mut self, i: usize, name: &str) -> Result<i64> {
        let (n, _) = self.number(i, name)?;
        if n.fract() != 0.0 || n.abs() > 1e15 {
            return self.bad(format!("{name} must be an integer"));
        }
        Ok(n as i64)
    }

    pub fn opt_int(&mut self, i: usize, name: &str) -> Result<Option<i64>> {
        match self.opt_number(i, name)? {
            Some((n, _)) if n.fract() == 0.0 && n.abs() <= 1e15 => Ok(Some(n as i64)),
            Some(_) => self.bad(format!("{name} must be an integer")),
            None => Ok(None),
        }
    }

    pub fn opt_string(&mut self, i: usize, name: &str) -> Result<Option<String>> {
        match self.take(i, name) {
            Some(Value::Str(s)) => Ok(Some(s)),
            None | Some(Value::None) => Ok(None),
            Some(other) => self.bad(format!("{name} must be a string, not {}", other.kind())),
        }
    }

    pub fn string(&mut self, i: usize, name: &str) -> Result<String> {
        match self.opt_string(i, name)? {
            Some(s) => Ok(s),
            None => self.bad(format!("missing required argument {name}")),
        }
    }

    pub fn boolean(&mut self, i: usize, name: &str, default: bool) -> Result<bool> {
        match self.take(i, name) {
            Some(Value::Bool(b)) => Ok(b),
            Some(Value::Int(n)) => Ok(n != 0),
            None | Some(Value::None) => Ok(default),
            Some(other) => self.bad(format!("{name} must be a boolean, not {}", other.kind())),
        }
    }
}

/// One of the nodes `groupByNodes`, `aliasByNode` and friends key by.
#[derive(Debug, Clone, PartialEq)]
pub enum NodeKey {
    Index(i64),
    Tag(String),
}

/// The first path expression in a function-wrapped name.
fn first_path(name: &str) -> Option<String> {
    let mut node = super::grammar::parse(name).ok()?;
    loop {
        match node {
            Node::Path(p) => return Some(p),
            Node::Call(c) => node = c.args.into_iter().next()?,
            _ => return None,
        }
    }
}

/// graphite-web's `getNodeOrTag`.
fn node_or_tag(series: &Series, key: &NodeKey, path: Option<&str>) -> String {
    if let NodeKey::Index(n) = key {
        let base = path.unwrap_or(&series.name);
        let head = base.split(';').next().unwrap_or(base);
        let parts: Vec<&str> = head.split('.').collect();
        let idx = if *n < 0 { parts.len() as i64 + n } else { *n };
        if idx >= 0 && (idx as usize) < parts.len() {
            return parts[idx as usize].to_string();
        }
    }
    let tag = match key {
        NodeKey::Index(n) => n.to_string(),
        NodeKey::Tag(t) => t.clone(),
    };
    series.tags.get(&tag).cloned().unwrap_or_default()
}

/// graphite-web's `aggKey`: the nodes of a name (of its first path
/// expression when the name is a function call) joined by dots.
fn agg_key(series: &Series, nodes: &[NodeKey]) -> String {
    let path = series
        .name
        .ends_with(')')
        .then(|| first_path(&series.name))
        .flatten();
    nodes
        .iter()
        .map(|k| node_or_tag(series, k, path.as_deref()))
        .collect::<Vec<_>>()
        .join(".")
}

fn gcd(a: i64, b: i64) -> i64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

/// The least common multiple of two steps; past a year (steps a
/// summarize or hitcount made far apart) the larger step.
fn lcm(a: i64, b: i64) -> i64 {
    if a == b {
        return a;
    }
    let (a, b) = if a < b { (b, a) } else { (a, b) };
    (a / gcd(a, b).max(1))
        .checked_mul(b)
        .filter(|l| *l <= 366 * 86400)
        .unwrap_or(a)
}

/// Points one function may make for one series (summarize, hitcount): a
/// bound on the memory a target can ask for, whatever its arguments.
pub const MAX_POINTS_MADE: usize = 1_000_000;

/// graphite-web's `normalize`: one list, consolidated to the least common
/// multiple of the steps; `(series, start, end, step)`.
fn normalize(lists: Vec<Vec<Series>>) -> Option<(Vec<Series>, i64, i64, i64)> {
    let mut all: Vec<Series> = lists.into_iter().flatten().collect();
    if all.is_empty() {
        return None;
    }
    let step = all.iter().map(|s| s.step).reduce(lcm)?;
    for s in &mut all {
        s.values_per_point = (step / s.step.max(1)).max(1) as usize;
    }
    let start = all.iter().map(|s| s.start).min()?;
    let mut end = all.iter().map(|s| s.end).max()?;
    end -= (end - start).rem_euclid(step.max(1));
    Some((all, start, end, step))
}

/// The rows of consolidated values, padded with None (`zip_longest`).
fn rows(series: &[Series]) -> Vec<Vec<Option<f64>>> {
    let cols: Vec<std::borrow::Cow<[Option<f64>]>> = series.iter().map(Series::view).collect();
    let n = cols.iter().map(|c| c.len()).max().unwrap_or(0);
    (0..n)
        .map(|i| cols.iter().map(|c| c.get(i).copied().flatten()).collect())
        .collect()
}

/// graphite-web's `formatPathExpressions`: each once, in order.
fn path_expressions(series: &[Series]) -> String {
    let mut seen: Vec<&str> = Vec::new();
    for s in series {
        if !seen.contains(&s.path_expression.as_str()) {
            seen.push(&s.path_expression);
        }
    }
    seen.join(",")
}

/// The aggregation functions graphite-web's `aggregate` and friends take.
/// A null-safe aggregation over a row or a window.
type Aggregation = fn(&[Option<f64>]) -> Option<f64>;

fn agg_func(name: &str) -> Option<Aggregation> {
    Some(match name {
        "average" | "avg" => calculate::avg,
        "avg_zero" => calculate::avg_zero,
        "median" => calculate::median,
        "sum" | "total" => calculate::sum,
        "min" => calculate::min,
        "max" => calculate::max,
        "diff" => calculate::diff,
        "stddev" => calculate::stddev,
        "count" => calculate::count,
        "range" | "rangeOf" => calculate::range,
        "multiply" => calculate::multiply,
        "last" | "current" => calculate::last,
        _ => return None,
    })
}

/// Tag values as graphite-web stores them (`str()` of the argument).
fn tag_number(x: f64, was_int: bool) -> String {
    pyfmt::number(x, was_int)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two series whatever the pattern: 60 s with gaps, and 10 s.
    struct Fixed;

    impl Source for Fixed {
        fn fetch(&self, pattern: &str, ctx: &Context) -> Result<Vec<Series>> {
            let start = ctx.start - ctx.start.rem_euclid(60);
            let a = (0..60).map(|i| (i % 7 != 3).then_some(i as f64)).collect();
            let b = (0..360).map(|i| Some(i as f64 / 7.0)).collect();
            Ok(vec![
                Series::new(format!("{pattern}.a"), start, start + 3600, 60, a, 0.0),
                Series::new("x.y".into(), start, start + 3600, 10, b, 0.0),
            ])
        }
    }

    #[test]
    fn absurd_arguments_are_errors_or_answers_never_panics() {
        let now = 1_800_000_000;
        let ctx = Context {
            start: now - 3600,
            end: now,
            now,
            xff: 0.0,
            source: &Fixed,
        };
        for target in [
            "movingAverage(a, 9223372036854775807)",
            "movingSum(a, -5)",
            "movingMax(a, '999999999y')",
            "timeStack(a, '1y', -9223372036854775807, 9223372036854775807)",
            "timeStack(a, '1000y', 100000000, 100000005)",
            "sumSeries(summarize(a, '9999999y'), a)",
            "hitcount(a, '1s')",
            "summarize(a, '1s')",
            "delay(a, -9223372036854775807)",
            "delay(a, 9223372036854775807)",
            "limit(a, -9223372036854775807)",
            "highest(a, 9223372036854775807)",
            "asPercent(a, 0)",
            "divideSeries(a, x)",
            "groupByNode(a, 9223372036854775807, 'sum')",
            "aliasByNode(a, -9223372036854775807)",
            "applyByNode(a, 9223372036854775807, '%')",
            "applyByNode(a, 0, 'applyByNode(%, 0, \"%\")')",
            "legendValue(a)",
            "cactiStyle(a, 'si', 'B')",
            "scale(a, 1e308)|scale(1e308)|integral()",
            "removeAbovePercentile(a, -1)",
            "keepLastValue(a, -1)",
            "constantLine(inf)",
        ] {
            let node = crate::server::web::grammar::parse(target).expect(target);
            let _ = evaluate_target(&node, &ctx);
        }
    }
}
