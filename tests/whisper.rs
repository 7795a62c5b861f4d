//! The whisper format against Graphite's own `whisper` 1.1.10 (PyPI): the
//! same seeded random operation sequences applied by both must leave
//! byte-identical files and fetch the same series; files written by one are
//! read and updated by the other.

mod common;

use carbyne::whisper::{self, Aggregation, Allocation, Whisper};
use common::python_scripts;
use serde_json::{json, Value};
use std::path::Path;
use std::process::Command;

/// Applies a list of sequences with Python's whisper; prints fetch results as JSON.
const PY: &str = r#"
import json, sys, whisper
assert whisper.__version__ == "1.1.10" if hasattr(whisper, "__version__") else True
seqs = json.load(open(sys.argv[1]))
out = []
for s in seqs:
    path = s["path"]
    whisper.create(path, [tuple(a) for a in s["archives"]], s["xff"], s["agg"])
    results = []
    for op in s["ops"]:
        try:
            if op[0] == "update":
                whisper.update(path, op[1], op[2], now=op[3])
            elif op[0] == "many":
                whisper.update_many(path, [tuple(p) for p in op[1]], now=op[2])
            results.append("ok")
        except whisper.TimestampNotCovered:
            results.append("not covered")
    fetches = []
    for (f, u, now) in s["fetches"]:
        r = whisper.fetch(path, f, u, now=now)
        fetches.append(None if r is None else [list(r[0]), r[1]])
    out.append({"results": results, "fetches": fetches})
json.dump(out, sys.stdout)
"#;

fn python_whisper() -> String {
    let ok = Command::new("python3")
        .args(["-c", "import whisper"])
        .status()
        .is_ok_and(|s| s.success());
    assert!(
        ok,
        "python3 with whisper==1.1.10 is missing: `bash tests/run.sh` installs it"
    );
    "python3".into()
}

struct Rng(fastrand::Rng);

impl Rng {
    fn pick<T: Copy>(&mut self, v: &[T]) -> T {
        v[self.0.usize(..v.len())]
    }
}

/// A random valid schema: 1 to 3 archives.
fn schema(r: &mut Rng) -> Vec<(u32, u32)> {
    loop {
        let n = r.0.usize(1..=3);
        let mut p = r.pick(&[1u32, 5, 10, 60]);
        let mut pts = r.0.u32(2..40);
        let mut v = vec![(p, pts)];
        for _ in 1..n {
            let k = r.0.u32(2..6);
            p *= k;
            let min = pts / k + 1;
            pts = r.0.u32(min.max(2)..min.max(2) + 30);
            v.push((p, pts));
        }
        if whisper::validate_archive_list(&mut v.clone()).is_ok() {
            return v;
        }
    }
}

fn value(r: &mut Rng) -> f64 {
    match r.0.u8(..10) {
        0 => 0.0,
        1 => -0.0,
        2 => -(r.0.u32(..1000) as f64) / 8.0,
        _ => r.0.f64() * 1e6 - 1e5,
    }
}

/// A seeded sequence of creates, updates and update_manys, and fetches.
fn sequence(seed: u64, path: &Path) -> Value {
    let mut r = Rng(fastrand::Rng::with_seed(seed));
    let archives = schema(&mut r);
    let max_ret = archives.iter().map(|(s, p)| s * p).max().unwrap_or(1) as i64;
    let agg = r.pick(&Aggregation::ALL).name();
    let xff = r.pick(&[0.0, 0.1, 0.3, 0.5, 0.75, 1.0, 0.33]);
    let mut now: i64 = 1_700_000_000 + r.0.i64(0..3600);
    let mut ops = Vec::new();
    for _ in 0..r.0.usize(10..40) {
        now += r.0.i64(0..max_ret / 4 + 2);
        let ts = |r: &mut Rng| now - r.0.i64(-3..max_ret + max_ret / 5 + 2);
        if r.0.bool() {
            let t = ts(&mut r);
            ops.push(json!(["update", value(&mut r), t, now]));
        } else {
            let n = r.0.usize(1..60);
            let mut pts: Vec<(i64, f64)> = (0..n).map(|_| (ts(&mut r), value(&mut r))).collect();
            if r.0.bool() && !pts.is_empty() {
                // Duplicates and a run of consecutive seconds.
                let (t, _) = pts[0];
                pts.push((t, value(&mut r)));
                for k in 0..r.0.i64(0..20) {
                    pts.push((t - k * archives[0].0 as i64, value(&mut r)));
                }
            }
            ops.push(json!(["many", pts, now]));
        }
    }
    let fetches: Vec<Value> = (0..8)
        .map(|_| {
            let from = now - r.0.i64(0..max_ret + 100);
            let until = from + r.0.i64(0..max_ret + 100);
            json!([from, until, now])
        })
        .collect();
    json!({
        "path": path.display().to_string(),
        "archives": archives,
        "xff": xff,
        "agg": agg,
        "ops": ops,
        "fetches": fetches,
    })
}

/// Applies a sequence with carbyne.
fn apply(seq: &Value, path: &Path) -> Value {
    let archives: Vec<(u32, u32)> =
        serde_json::from_value(seq["archives"].clone()).expect("archives");
    let agg = Aggregation::from_name(seq["agg"].as_str().expect("agg")).expect("agg");
    let xff = seq["xff"].as_f64().expect("xff");
    whisper::create(path, &archives, xff, agg, Allocation::Zeroed).expect("create");
    let w = Whisper::open(path, true).expect("open");
    let mut results = Vec::new();
    for op in seq["ops"].as_array().expect("ops") {
        let r = match op[0].as_str() {
            Some("update") => w.update(op[1].as_f64().expect("v"), op[2].as_i64(), op[3].as_i64()),
            _ => {
                let pts: Vec<(i64, f64)> = serde_json::from_value(op[1].clone()).expect("points");
                w.update_many(&pts, op[2].as_i64())
            }
        };
        results.push(match r {
            Ok(()) => "ok",
            Err(whisper::WhisperError::TimestampNotCovered) => "not covered",
            Err(e) => panic!("{e}"),
        });
    }
    let fetches: Vec<Value> = seq["fetches"]
        .as_array()
        .expect("fetches")
        .iter()
        .map(|f| {
            let s = w
                .fetch(
                    f[0].as_i64().expect("from"),
                    f[1].as_i64(),
                    f[2].as_i64(),
                    None,
                )
                .expect("fetch");
            match s {
                None => Value::Null,
                Some(s) => json!([[s.from, s.until, s.step], s.values]),
            }
        })
        .collect();
    json!({"results": results, "fetches": fetches})
}

struct DirRef(std::path::PathBuf);
impl DirRef {
    fn path(&self) -> &Path {
        &self.0
    }
}

#[test]
fn random_sequences_leave_byte_identical_files_and_fetch_the_same() {
    let py = python_whisper();
    let dir = tempfile::tempdir().expect("tempdir");
    let keep = std::env::var_os("WHISPER_KEEP").map(std::path::PathBuf::from);
    let dir_path = keep.clone().unwrap_or_else(|| dir.path().to_path_buf());
    let dir = DirRef(dir_path);
    let seeds: Vec<u64> = match std::env::var("WHISPER_SEED") {
        Ok(s) => vec![s.parse().expect("seed")],
        Err(_) => (1..=400).collect(),
    };
    let seqs: Vec<Value> = seeds
        .iter()
        .map(|s| sequence(*s, &dir.path().join(format!("py-{s}.wsp"))))
        .collect();
    let input = dir.path().join("seqs.json");
    std::fs::write(&input, serde_json::to_vec(&seqs).expect("json")).expect("write");
    let out = Command::new(py)
        .args(["-c", PY])
        .arg(&input)
        .output()
        .expect("python");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs: Vec<Value> = serde_json::from_slice(&out.stdout).expect("python output");
    for (i, seq) in seqs.iter().enumerate() {
        let seed = seeds[i];
        let ours_path = dir.path().join(format!("rs-{seed}.wsp"));
        let ours = apply(seq, &ours_path);
        let a = std::fs::read(&ours_path).expect("ours");
        let b = std::fs::read(dir.path().join(format!("py-{seed}.wsp"))).expect("theirs");
        assert_eq!(
            ours["results"], theirs[i]["results"],
            "seed {seed}: update outcomes"
        );
        if a != b {
            let at = a
                .iter()
                .zip(&b)
                .position(|(x, y)| x != y)
                .unwrap_or(a.len().min(b.len()));
            panic!(
                "seed {seed}: files differ from byte {at} (len {} vs {}); schema {}",
                a.len(),
                b.len(),
                seq["archives"]
            );
        }
        assert_eq!(
            ours["fetches"], theirs[i]["fetches"],
            "seed {seed}: fetches"
        );
    }
}

/// Where pip put whisper's scripts.
fn scripts() -> std::path::PathBuf {
    python_whisper();
    let dir = python_scripts();
    assert!(
        dir.join("whisper-info.py").exists(),
        "whisper's scripts are missing from {}",
        dir.display()
    );
    dir
}

/// Runs `whisper-TOOL.py args` and `carbyne whisper TOOL args`; both outputs.
fn both(tool: &str, args: &[&str]) -> (String, String) {
    let py = Command::new("python3")
        .arg(scripts().join(format!("whisper-{tool}.py")))
        .args(args)
        .output()
        .expect("python tool");
    let mut ours = vec!["whisper", tool];
    ours.extend_from_slice(args);
    let rs = common::run(&ours);
    assert_eq!(
        py.status.code(),
        rs.status.code(),
        "{tool} {args:?}: exit codes"
    );
    (
        String::from_utf8_lossy(&py.stdout).into_owned(),
        String::from_utf8_lossy(&rs.stdout).into_owned(),
    )
}

#[test]
fn the_tools_print_what_graphites_scripts_print() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("m.wsp");
    let q = dir.path().join("n.wsp");
    let (ps, qs) = (p.display().to_string(), q.display().to_string());
    // create: the same bytes and the same message.
    let out = Command::new("python3")
        .arg(scripts().join("whisper-create.py"))
        .args([
            &ps,
            "10s:1h",
            "1m:1d",
            "--xFilesFactor",
            "0.33",
            "--aggregationMethod",
            "max",
        ])
        .output()
        .expect("create");
    let ours = common::run(&[
        "whisper",
        "create",
        &qs,
        "10s:1h",
        "1m:1d",
        "--xFilesFactor",
        "0.33",
        "--aggregationMethod",
        "max",
    ]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).replace(&ps, "F"),
        String::from_utf8_lossy(&ours.stdout).replace(&qs, "F")
    );
    assert_eq!(std::fs::read(&p).expect("p"), std::fs::read(&q).expect("q"));
    // update: many points through each tool, the same file after.
    let now = whisper::unix_now();
    let pts: Vec<String> = (0..40)
        .map(|i| format!("{}:{}", now - 7 * i, i as f64 * 1.25 - 7.0))
        .collect();
    let args: Vec<&str> = pts.iter().map(String::as_str).collect();
    let mut a = vec![ps.as_str()];
    a.extend(&args);
    let mut b = vec!["whisper", "update", qs.as_str()];
    b.extend(&args);
    let o = Command::new("python3")
        .arg(scripts().join("whisper-update.py"))
        .args(&a)
        .output()
        .expect("update");
    assert!(o.status.success());
    assert!(common::run(&b).status.success());
    assert_eq!(std::fs::read(&p).expect("p"), std::fs::read(&q).expect("q"));
    // Read-only tools on the same file.
    for args in [
        vec!["info", ps.as_str()],
        vec!["info", "--json", ps.as_str()],
        vec!["info", ps.as_str(), "xFilesFactor"],
        vec!["info", ps.as_str(), "maxRetention"],
        vec!["dump", ps.as_str()],
        vec!["dump", "--raw", ps.as_str()],
        vec!["dump", "--pretty", ps.as_str()],
    ] {
        let (py, rs) = both(args[0], &args[1..]);
        assert_eq!(py, rs, "{args:?}");
    }
    let (from, until) = ((now - 600).to_string(), now.to_string());
    for extra in [
        vec![],
        vec!["--json"],
        vec!["--drop", "zeroes", "--json"],
        vec!["--pretty"],
    ] {
        let mut args = vec!["--from", from.as_str(), "--until", until.as_str()];
        args.extend(extra);
        args.push(ps.as_str());
        let (py, rs) = both("fetch", &args);
        assert_eq!(py, rs, "fetch {args:?}");
    }
    // --drop nulls: the same values as whisper 1.1.10, each at its own
    // timestamp (the script numbered them from the window's start).
    let fetch = |extra: &[&str]| {
        let mut args = vec!["--from", from.as_str(), "--until", until.as_str()];
        args.extend(extra);
        args.push(ps.as_str());
        both("fetch", &args)
    };
    let (_, all) = fetch(&[]);
    let (py, rs) = fetch(&["--drop", "nulls"]);
    let kept: Vec<&str> = all.lines().filter(|l| !l.ends_with("\tNone")).collect();
    assert_eq!(rs.lines().collect::<Vec<_>>(), kept);
    let value = |l: &str| l.split('\t').nth(1).map(str::to_string);
    assert_eq!(
        py.lines().map(value).collect::<Vec<_>>(),
        rs.lines().map(value).collect::<Vec<_>>()
    );
    if all.lines().next().is_some_and(|l| l.ends_with("\tNone")) && !kept.is_empty() {
        assert_ne!(py, rs, "whisper 1.1.10's timestamps are off after a drop");
    }
    // Changing the header.
    let (py, rs) = both("set-aggregation-method", &[ps.as_str(), "sum", "0.75"]);
    assert_eq!(
        py.replace("max ->", "sum ->"),
        rs,
        "the second run sees the first's change"
    );
    let (py, rs) = both("set-xfilesfactor", &[ps.as_str(), "0.1"]);
    assert_eq!(py.replace("0.75 ->", "0.10000000149011612 ->"), rs);
    // carbyne writes into the file Python created and updated; both read it the same.
    assert!(common::run(&[
        "whisper",
        "update",
        ps.as_str(),
        &format!("{}:42.5", now - 3)
    ])
    .status
    .success());
    let mut args = vec!["--from", from.as_str(), "--until", until.as_str(), "--json"];
    args.push(ps.as_str());
    let (py, rs) = both("fetch", &args);
    assert_eq!(py, rs);
    assert!(py.contains("42.5"), "{py}");
    // Errors: a missing file.
    let (py, rs) = both("info", &["/nonexistent.wsp"]);
    assert_eq!((py.as_str(), rs.as_str()), ("", ""));
}

#[test]
fn merge_and_diff_like_graphites_scripts() {
    let dir = tempfile::tempdir().expect("tempdir");
    let f = |n: &str| dir.path().join(n).display().to_string();
    let (a, b) = (f("a.wsp"), f("b.wsp"));
    for p in [&a, &b] {
        assert!(common::run(&["whisper", "create", p, "10s:10m", "1m:1h"])
            .status
            .success());
    }
    let now = whisper::unix_now();
    let pts = |off: f64, skip: i64| -> Vec<String> {
        (0..50)
            .filter(|i| i % skip != 0)
            .map(|i| format!("{}:{}", now - 10 * i, i as f64 + off))
            .collect()
    };
    for (p, points) in [(&a, pts(0.0, 7)), (&b, pts(0.5, 5))] {
        let mut args = vec!["whisper", "update", p.as_str()];
        args.extend(points.iter().map(String::as_str));
        assert!(common::run(&args).status.success());
    }
    for extra in [
        vec![],
        vec!["--summary"],
        vec!["--columns"],
        vec!["--columns", "--no-headers"],
        vec!["--ignore-empty"],
        vec!["--json"],
        vec!["--summary", "--json"],
    ] {
        let mut args = extra.clone();
        args.extend([a.as_str(), b.as_str()]);
        let (py, rs) = both("diff", &args);
        assert_eq!(py, rs, "diff {extra:?}");
    }
    // Merging a into two copies of b, once with each tool: the same bytes.
    let (c, d) = (f("c.wsp"), f("d.wsp"));
    std::fs::copy(&b, &c).expect("copy");
    std::fs::copy(&b, &d).expect("copy");
    let py = Command::new("python3")
        .arg(scripts().join("whisper-merge.py"))
        .args([&a, &c])
        .output()
        .expect("merge");
    assert!(py.status.success());
    assert!(common::run(&["whisper", "merge", &a, &d]).status.success());
    assert_eq!(std::fs::read(&c).expect("c"), std::fs::read(&d).expect("d"));
    // Unlike archives are refused by both.
    let e = f("e.wsp");
    assert!(common::run(&["whisper", "create", &e, "10s:20m"])
        .status
        .success());
    let (py, rs) = both("diff", &[&a, &e]);
    assert_eq!((py.is_empty(), rs.is_empty()), (true, true));
}

/// `whisper resize` beside whisper-resize.py on copies of one file: the same
/// messages and the same bytes. Both read the clock, so a run that
/// straddles a second is tried again.
#[test]
fn resize_like_whisper_resize() {
    for extra in [
        vec!["--nobackup"],
        vec!["--aggregate", "--xFilesFactor", "0"],
        vec!["--aggregationMethod", "max"],
    ] {
        let mut last = String::new();
        let ok = (0..3).any(|_| {
            let dir = tempfile::tempdir().expect("tempdir");
            let f = |n: &str| dir.path().join(n).display().to_string();
            let (a, b) = (f("a.wsp"), f("b.wsp"));
            assert!(common::run(&["whisper", "create", &a, "10s:10m", "1m:1h"])
                .status
                .success());
            let now = whisper::unix_now();
            let pts: Vec<String> = (1..300)
                .map(|i| format!("{}:{}", now - 10 * i, (i % 17) as f64 * 0.5))
                .collect();
            let mut args = vec!["whisper", "update", a.as_str()];
            args.extend(pts.iter().map(String::as_str));
            assert!(common::run(&args).status.success());
            std::fs::copy(&a, &b).expect("copy");
            let mut py_args = vec![a.as_str(), "30s:30m", "5m:2h"];
            py_args.extend(&extra);
            let py = Command::new("python3")
                .arg(scripts().join("whisper-resize.py"))
                .args(&py_args)
                .output()
                .expect("resize");
            let mut rs_args = vec!["whisper", "resize", b.as_str(), "30s:30m", "5m:2h"];
            rs_args.extend(&extra);
            let rs = common::run(&rs_args);
            let (po, ro) = (
                String::from_utf8_lossy(&py.stdout).replace(&a, "F"),
                String::from_utf8_lossy(&rs.stdout).replace(&b, "F"),
            );
            let same = po == ro && std::fs::read(&a).ok() == std::fs::read(&b).ok();
            if !same {
                last = format!("python:\n{po}\ncarbyne:\n{ro}");
            }
            same
        });
        assert!(ok, "{extra:?}: {last}");
    }
}

/// `whisper fill` beside whisper-fill.py: the same bytes in the filled file
/// (tried again when a run straddles a second).
#[test]
fn fill_like_whisper_fill() {
    let mut last = String::new();
    let ok = (0..3).any(|_| {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = |n: &str| dir.path().join(n).display().to_string();
        let (src, a, b) = (f("src.wsp"), f("a.wsp"), f("b.wsp"));
        for p in [&src, &a] {
            assert!(common::run(&["whisper", "create", p, "10s:10m", "1m:1h"])
                .status
                .success());
        }
        let now = whisper::unix_now();
        let full: Vec<String> = (1..400)
            .map(|i| format!("{}:{}", now - 10 * i, i as f64 + 0.25))
            .collect();
        let holey: Vec<String> = (1..400)
            .filter(|i| (i / 9) % 3 != 0)
            .map(|i| format!("{}:{}", now - 10 * i, -(i as f64)))
            .collect();
        for (p, pts) in [(&src, &full), (&a, &holey)] {
            let mut args = vec!["whisper", "update", p.as_str()];
            args.extend(pts.iter().map(String::as_str));
            assert!(common::run(&args).status.success());
        }
        std::fs::copy(&a, &b).expect("copy");
        let before = std::fs::read(&a).expect("a");
        let py = Command::new("python3")
            .arg(scripts().join("whisper-fill.py"))
            .args([&src, &a])
            .output()
            .expect("fill");
        assert!(
            py.status.success(),
            "{}",
            String::from_utf8_lossy(&py.stderr)
        );
        assert!(common::run(&["whisper", "fill", &src, &b]).status.success());
        let (x, y) = (std::fs::read(&a).expect("a"), std::fs::read(&b).expect("b"));
        assert_ne!(x, before, "the gaps were filled");
        if x != y {
            last = format!(
                "differ from byte {:?}",
                x.iter().zip(&y).position(|(p, q)| p != q)
            );
        }
        x == y
    });
    assert!(ok, "{last}");
}
