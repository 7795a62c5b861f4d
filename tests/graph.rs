//! Graphs (`format=png`, `format=svg`, PNG by default) from carbyne's web
//! server: the images decode at the asked size, lines are where the data
//! says, every graph option changes the picture, and the same URLs drawn
//! by graphite-web 1.1.10 (cairo) put their lines in the same places. Both
//! images of each pair are kept in target/artifacts/graphs/ for a reviewer.

mod common;

use common::graphite_web::*;
use common::*;
use std::path::Path;
use tiny_skia::Pixmap;

/// Two hours at 60 s, made by Python's whisper: a constant 25, a ramp
/// 0..119, a sine, one with a gap of ten points, one in the billions.
fn make_files(dir: &Path) -> i64 {
    let script = r#"
import math, sys, time, whisper, os
root = sys.argv[1]
now = int(time.time()) // 60 * 60
def make(name, f):
    path = os.path.join(root, *name.split('.')) + '.wsp'
    os.makedirs(os.path.dirname(path), exist_ok=True)
    whisper.create(path, [(60, 1440)])
    pts = [(now - 60 * (119 - i), f(i)) for i in range(120)]
    whisper.update_many(path, [(t, v) for t, v in pts if v is not None])
make('g.const', lambda i: 25.0)
make('g.ramp', lambda i: float(i))
make('g.sine', lambda i: 50 + 40 * math.sin(i / 10.0))
make('g.gappy', lambda i: None if 50 <= i < 60 else 10.0 + i % 7)
make('g.big', lambda i: 3e9 + 1e7 * i)
print(now)
"#;
    make_with_python(script, dir)
}

fn png(body: &[u8]) -> Pixmap {
    Pixmap::decode_png(body).expect("a PNG that decodes")
}

fn rgb(p: &Pixmap, x: u32, y: u32) -> [u8; 3] {
    let c = p.pixel(x, y).expect("inside").demultiply();
    [c.red(), c.green(), c.blue()]
}

fn near(a: [u8; 3], b: [u8; 3], tolerance: i32) -> bool {
    a.iter()
        .zip(b)
        .all(|(x, y)| (i32::from(*x) - i32::from(y)).abs() <= tolerance)
}

/// Whether `px` is `color` drawn over `bg` with at least 30 % coverage
/// (anti-aliased lines blend into the background at their edges).
fn blend_of(px: [u8; 3], color: [u8; 3], bg: [u8; 3]) -> bool {
    let f = |v: u8| f64::from(v);
    // The coverage that best explains all three channels (least squares).
    let (mut num, mut den) = (0.0, 0.0);
    for i in 0..3 {
        num += (f(px[i]) - f(bg[i])) * (f(color[i]) - f(bg[i]));
        den += (f(color[i]) - f(bg[i])).powi(2);
    }
    if den < 1.0 {
        return near(px, color, 20);
    }
    let alpha = num / den;
    (0.3..=1.05).contains(&alpha)
        && (0..3)
            .all(|i| (f(px[i]) - (alpha * f(color[i]) + (1.0 - alpha) * f(bg[i]))).abs() <= 24.0)
}

/// The rows of column `x` whose pixels are `color` (blended on white).
fn rows_of(p: &Pixmap, x: u32, color: [u8; 3], _tolerance: i32) -> Vec<u32> {
    rows_on(p, x, color, [255, 255, 255])
}

fn rows_on(p: &Pixmap, x: u32, color: [u8; 3], bg: [u8; 3]) -> Vec<u32> {
    (0..p.height())
        .filter(|y| blend_of(rgb(p, x, *y), color, bg))
        .collect()
}

/// Pixels of `color` (exact within `tolerance`, or blended on white).
fn count(p: &Pixmap, color: [u8; 3], tolerance: i32) -> usize {
    (0..p.height())
        .flat_map(|y| (0..p.width()).map(move |x| (x, y)))
        .filter(|(x, y)| {
            let px = rgb(p, *x, *y);
            near(px, color, tolerance) || blend_of(px, color, [255, 255, 255])
        })
        .count()
}

const BLUE: [u8; 3] = [100, 100, 255];
const GREEN: [u8; 3] = [0, 200, 0];
const RED: [u8; 3] = [200, 0, 50];

struct Setup {
    _dir: tempfile::TempDir,
    _server: Child,
    port: u16,
    now: i64,
    whisper: std::path::PathBuf,
}

fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().expect("tempdir");
    let whisper = dir.path().join("whisper");
    let now = make_files(&whisper);
    let (server, port) = start_carbyne(dir.path(), &whisper, extra);
    Setup {
        _dir: dir,
        _server: server,
        port,
        now,
        whisper,
    }
}

impl Setup {
    /// A render over the files' two hours, with `pairs` added.
    fn params(&self, pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        let mut all = p(&[
            ("from", &(self.now - 7200).to_string()),
            ("until", &self.now.to_string()),
        ]);
        all.extend(p(pairs));
        all
    }

    fn get(&self, pairs: &[(&str, &str)]) -> (u16, Vec<u8>) {
        http(self.port, "GET", "/render", &self.params(pairs))
    }

    fn image(&self, pairs: &[(&str, &str)]) -> Pixmap {
        let (status, body) = self.get(pairs);
        assert_eq!(status, 200, "{pairs:?}: {}", String::from_utf8_lossy(&body));
        png(&body)
    }
}

#[test]
fn png_by_default_svg_when_asked_at_the_asked_size() {
    let s = setup("");
    let (status, body) = s.get(&[("target", "g.ramp")]);
    assert_eq!(status, 200);
    assert_eq!(&body[1..4], b"PNG");
    let img = png(&body);
    assert_eq!(
        (img.width(), img.height()),
        (330, 250),
        "graphite-web's default size"
    );
    let img = s.image(&[
        ("target", "g.ramp"),
        ("format", "png"),
        ("width", "640"),
        ("height", "120"),
    ]);
    assert_eq!((img.width(), img.height()), (640, 120));

    let (status, body) = s.get(&[
        ("target", "g.ramp"),
        ("target", "g.sine"),
        ("format", "svg"),
        ("width", "500"),
    ]);
    assert_eq!(status, 200);
    let text = String::from_utf8(body).expect("utf-8");
    let (doc, metadata) = text.split_once("<script>").expect("metadata script");
    let doc = format!("{doc}</svg>");
    let xml = roxmltree::Document::parse(&doc).expect("SVG parses");
    let root = xml.root_element();
    assert_eq!(root.tag_name().name(), "svg");
    assert_eq!(
        (root.attribute("width"), root.attribute("height")),
        (Some("500px"), Some("250px"))
    );
    let texts: Vec<&str> = xml.descendants().filter_map(|n| n.text()).collect();
    assert!(
        texts.contains(&"g.ramp") && texts.contains(&"g.sine"),
        "legend: {texts:?}"
    );
    assert!(
        texts.iter().any(|t| t.trim() == "100.0"),
        "Y labels: {texts:?}"
    );
    let json = metadata
        .split_once("metadata = ")
        .and_then(|(_, m)| m.split_once('\n'))
        .map(|(m, _)| m)
        .expect("metadata line");
    let m: serde_json::Value = serde_json::from_str(json).expect("metadata is JSON");
    assert_eq!(m["series"][0]["name"], "g.ramp");
    assert_eq!(m["series"][1]["color"], "green");
    assert_eq!(m["y"]["labels"][0], "0 ");
    // The whole answer, with its script block, is XML too.
    roxmltree::Document::parse(&text).expect("the whole SVG parses");

    // jsonp wraps the SVG as a JavaScript string, as graphite-web's.
    let (_, body) = s.get(&[("target", "g.ramp"), ("format", "svg"), ("jsonp", "cb")]);
    let body = String::from_utf8(body).expect("utf-8");
    assert!(
        body.starts_with("cb(\"<?xml") && body.ends_with("\")"),
        "{}",
        &body[..40]
    );
}

#[test]
fn lines_are_where_the_data_says() {
    let s = setup("");
    // graphOnly: the plot is the whole image, 0 at the bottom row, 100 at the top.
    let base = [
        ("graphOnly", "true"),
        ("yMin", "0"),
        ("yMax", "100"),
        ("width", "240"),
        ("height", "200"),
    ];
    let with = |target: &str, extra: &[(&str, &str)]| {
        let mut q = base.to_vec();
        q.push(("target", target));
        q.extend_from_slice(extra);
        s.image(&q)
    };
    let img = with("g.const", &[]);
    for x in [10, 60, 120, 200, 230] {
        let rows = rows_of(&img, x, BLUE, 40);
        assert!(
            !rows.is_empty() && rows.iter().all(|y| (148..=151).contains(y)),
            "25 of 100 is row 150 of 200 in column {x}: {rows:?}"
        );
    }
    // The ramp climbs from 0 at the left to 119 (off the top) at the right:
    // in each sample column the line is where value = x / width * 119 is.
    let img = with("g.ramp", &[("lineWidth", "1")]);
    for x in [20u32, 60, 100, 140] {
        let rows = rows_of(&img, x, BLUE, 60);
        let value = (f64::from(x) - 0.5) / (240.0 - 2.0) * 119.0;
        let expect = 200.0 - value * 2.0;
        let got = rows.iter().map(|y| f64::from(*y)).sum::<f64>() / rows.len().max(1) as f64;
        assert!(
            !rows.is_empty() && (got - expect).abs() <= 3.0,
            "column {x}: line at {got}, data says {expect}: {rows:?}"
        );
    }
    // A gap in the data is a gap in the line.
    let img = with("g.gappy", &[("yMax", "20")]);
    let gap_x = ((55.0 / 119.0) * 238.0) as u32;
    assert!(
        rows_of(&img, gap_x, BLUE, 60).is_empty(),
        "no line inside the gap"
    );
    assert!(
        !rows_of(&img, 20, BLUE, 60).is_empty(),
        "a line before the gap"
    );
    // drawNullAsZero joins it at the bottom.
    let img = with("g.gappy", &[("yMax", "20"), ("drawNullAsZero", "true")]);
    let rows = rows_of(&img, gap_x, BLUE, 60);
    assert!(rows.iter().any(|y| *y >= 197), "drawn along zero: {rows:?}");
}

/// The PNG of `pairs` and of `pairs` plus `option`, both decoded.
fn pair(s: &Setup, pairs: &[(&str, &str)], option: (&str, &str)) -> (Pixmap, Pixmap) {
    let a = s.image(pairs);
    let mut q = pairs.to_vec();
    q.push(option);
    (a, s.image(&q))
}

#[test]
fn every_graph_option_changes_the_picture() {
    let s = setup("");
    let two: &[(&str, &str)] = &[("target", "g.ramp"), ("target", "g.gappy")];
    // Each option against the same graph without it: the images differ.
    for option in [
        ("title", "Hello"),
        ("vtitle", "bytes"),
        ("areaMode", "first"),
        ("areaMode", "all"),
        ("areaMode", "stacked"),
        ("lineMode", "staircase"),
        ("lineMode", "connected"),
        ("lineWidth", "4"),
        ("yMin", "-50"),
        ("yMax", "500"),
        ("hideLegend", "true"),
        ("hideAxes", "true"),
        ("hideGrid", "true"),
        ("bgcolor", "black"),
        ("fgcolor", "red"),
        ("colorList", "red,00ff00"),
        ("majorGridLineColor", "blue"),
        ("minorGridLineColor", "green"),
        ("fontSize", "14"),
        ("graphOnly", "true"),
        ("drawNullAsZero", "true"),
        ("template", "solarized-dark"),
    ] {
        let (a, b) = pair(&s, two, option);
        assert!(a.data() != b.data(), "{option:?} changed nothing");
    }
    let big: &[(&str, &str)] = &[("target", "g.big"), ("target", "g.sine")];
    for option in [
        ("yUnitSystem", "binary"),
        ("yUnitSystem", "none"),
        ("logBase", "10"),
    ] {
        let (a, b) = pair(&s, big, option);
        assert!(a.data() != b.data(), "{option:?} changed nothing");
    }
    let gappy: &[(&str, &str)] = &[("target", "g.gappy"), ("lineMode", "connected")];
    let (a, b) = pair(&s, gappy, ("connectedLimit", "3"));
    assert!(
        a.data() != b.data(),
        "connectedLimit below the gap breaks the line"
    );

    // And what each does, where a pixel can say it.
    let plain = s.image(two);
    let (_, black) = pair(&s, two, ("bgcolor", "black"));
    assert_eq!(rgb(&plain, 1, 1), [255, 255, 255]);
    assert_eq!(rgb(&black, 1, 1), [0, 0, 0]);
    let (_, red) = pair(&s, two, ("colorList", "red,00ff00"));
    assert!(count(&red, RED, 30) > 100 && count(&red, BLUE, 30) == 0);
    let (_, hidden) = pair(&s, two, ("hideLegend", "true"));
    let legend_rows = |p: &Pixmap| (230..250).map(|y| rows_of_row(p, y, BLUE)).sum::<usize>();
    assert!(legend_rows(&plain) > 20 && legend_rows(&hidden) == 0);
    let (_, filled) = pair(&s, two, ("areaMode", "all"));
    assert!(
        count(&filled, BLUE, 30) > 5 * count(&plain, BLUE, 30),
        "areas filled"
    );
    let (_, thick) = pair(&s, two, ("lineWidth", "4"));
    assert!(
        count(&thick, BLUE, 60) > 2 * count(&plain, BLUE, 60),
        "thicker lines"
    );
    let (_, no_grid) = pair(&s, two, ("majorGridLineColor", "00ffff"));
    assert!(
        count(&no_grid, [0, 255, 255], 40) > 100,
        "grid in the asked colour"
    );
    let (_, grid_off) = pair(
        &s,
        &[("target", "g.ramp"), ("majorGridLineColor", "00ffff")],
        ("hideGrid", "true"),
    );
    assert_eq!(count(&grid_off, [0, 255, 255], 40), 0, "no grid");
    let big = s.image(&[("target", "g.big"), ("width", "600"), ("height", "400")]);
    assert_eq!((big.width(), big.height()), (600, 400));
}

fn rows_of_row(p: &Pixmap, y: u32, color: [u8; 3]) -> usize {
    (0..p.width())
        .filter(|x| near(rgb(p, *x, y), color, 30))
        .count()
}

/// graphite-web's graph functions change the picture: in SVG the legend
/// names say which, and the pixels show their effect.
#[test]
fn graph_functions_take_effect() {
    let s = setup("");
    let svg = |targets: &[&str]| {
        let mut q: Vec<(&str, &str)> = targets.iter().map(|t| ("target", *t)).collect();
        q.push(("format", "svg"));
        let (status, body) = s.get(&q);
        assert_eq!(status, 200, "{targets:?}");
        String::from_utf8(body).expect("utf-8")
    };
    let doc = svg(&[
        "color(g.ramp, 'ff0000')",
        "lineWidth(g.sine, 3)",
        "dashed(g.const)",
    ]);
    assert!(doc.contains("stroke=\"#ff0000\""), "color()");
    assert!(doc.contains("stroke-width=\"3\""), "lineWidth()");
    assert!(doc.contains("stroke-dasharray=\"5,5\""), "dashed()");
    assert!(
        doc.contains(">dashed(g.const, 5)</text>"),
        "dashed() renames"
    );
    let doc = svg(&["alpha(color(g.ramp, 'blue'), 0.5)"]);
    assert!(doc.contains("stroke-opacity=\"0.5\""), "alpha()");
    let doc = svg(&["stacked(g.const)", "stacked(g.ramp)"]);
    assert!(doc.contains(" stroke=\"none\"/>"), "stacked() fills");
    let doc = svg(&["g.const", "secondYAxis(g.big)"]);
    assert!(doc.contains(">secondYAxis(g.big)</text>"));
    let labels: Vec<&str> = doc
        .lines()
        .filter(|l| l.contains("text-anchor") || l.contains("<text"))
        .collect();
    // graphite-web's prefix is the largest the axis step reaches too.
    assert!(
        doc.contains(">3000.0 M </text>"),
        "a right axis in millions: {labels:#?}"
    );
    let doc = svg(&["drawAsInfinite(g.const)"]);
    assert!(doc.contains(">drawAsInfinite(g.const)</text>"));
    let doc = svg(&["legendValue(g.ramp, 'last', 'avg')"]);
    assert!(
        doc.contains("g.ramp (last: 119.0) (avg: 59.5)"),
        "legendValue: {doc}"
    );
    let doc = svg(&["cactiStyle(g.const)"]);
    assert!(doc.contains("Current:25.00"), "cactiStyle");
    // drawAsInfinite: a full-height line at every positive point.
    let img = s.image(&[("target", "drawAsInfinite(g.const)"), ("graphOnly", "true")]);
    let full = (0..img.width())
        .filter(|x| rows_of(&img, *x, BLUE, 80).len() > 200)
        .count();
    assert!(full > 50, "vertical lines top to bottom: {full} columns");
}

#[test]
fn bad_graph_requests_are_clear_errors() {
    let s = setup("");
    for (k, v) in [
        ("width", "huge"),
        ("lineMode", "zigzag"),
        ("bgcolor", "notacolour"),
        ("yDivisors", "0"),
        ("logBase", "1"),
    ] {
        let (status, body) = s.get(&[("target", "g.ramp"), (k, v)]);
        let text = String::from_utf8_lossy(&body);
        assert_eq!(status, 400, "{k}={v}: {text}");
        assert!(
            text.contains("\"error\"") && text.contains(k),
            "{k}={v}: {text}"
        );
    }
    let (status, body) = s.get(&[("target", "g.ramp"), ("yMin", "10"), ("yMax", "5")]);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, body) = s.get(&[("target", "g.ramp"), ("logBase", "10"), ("yMin", "-1")]);
    assert_eq!(status, 400, "{}", String::from_utf8_lossy(&body));
    let (status, body) = s.get(&[
        ("target", "g.ramp"),
        ("width", "100000"),
        ("height", "100000"),
    ]);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&body));
    // No data: graphite-web's "No Data" in red, nothing else.
    let img = s.image(&[("target", "no.such.metric")]);
    assert!(count(&img, RED, 10) > 20 && count(&img, BLUE, 30) == 0);
}

#[test]
fn max_image_pixels_is_configurable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whisper = dir.path().join("whisper");
    let now = make_files(&whisper);
    let (_server, port) = start_carbyne(dir.path(), &whisper, "max_image_pixels = 10000\n");
    let q = |w: &str| {
        p(&[
            ("target", "g.ramp"),
            ("from", &(now - 7200).to_string()),
            ("width", w),
            ("height", "100"),
        ])
    };
    assert_eq!(http(port, "GET", "/render", &q("100")).0, 200);
    assert_eq!(http(port, "GET", "/render", &q("101")).0, 413);
}

/// The pixels of `color` (blended on `bg`) above row `below`.
fn mask(p: &Pixmap, color: [u8; 3], bg: [u8; 3], below: u32) -> Vec<(i64, i64)> {
    (0..below.min(p.height()))
        .flat_map(|y| (0..p.width()).map(move |x| (x, y)))
        .filter(|(x, y)| blend_of(rgb(p, *x, *y), color, bg))
        .map(|(x, y)| (i64::from(x), i64::from(y)))
        .collect()
}

/// The share of `a`'s pixels that have one of `b`'s within `d` pixels.
fn matched(a: &[(i64, i64)], b: &[(i64, i64)], d: i64) -> f64 {
    if a.is_empty() {
        return 1.0;
    }
    let set: std::collections::HashSet<(i64, i64)> = b.iter().copied().collect();
    let hit = a
        .iter()
        .filter(|(x, y)| (-d..=d).any(|dx| (-d..=d).any(|dy| set.contains(&(x + dx, y + dy)))))
        .count();
    hit as f64 / a.len() as f64
}

/// The same URLs drawn by graphite-web 1.1.10 and by carbyne: the same
/// size, and each series' pixels within 3 pixels of the other's (for at
/// least 95 % of them, both ways).
#[test]
fn graphs_match_graphite_web() {
    let s = setup("");
    let mut gw = GraphiteWeb::start(&s.whisper);
    let out = repo("target/artifacts/graphs");
    std::fs::create_dir_all(&out).expect("artifact dir");
    let cases: &[(&str, &[(&str, &str)])] = &[
        ("two-series", &[("target", "g.ramp"), ("target", "g.sine")]),
        (
            "title-vtitle",
            &[
                ("target", "g.sine"),
                ("title", "Load"),
                ("vtitle", "per second"),
            ],
        ),
        (
            "stacked",
            &[
                ("target", "g.const"),
                ("target", "g.sine"),
                ("areaMode", "stacked"),
                ("width", "500"),
            ],
        ),
        (
            "staircase-gap",
            &[("target", "g.gappy"), ("lineMode", "staircase")],
        ),
        (
            "second-axis",
            &[
                ("target", "g.sine"),
                ("target", "secondYAxis(g.big)"),
                ("width", "600"),
                ("height", "300"),
            ],
        ),
        (
            "log",
            &[("target", "g.big"), ("target", "g.sine"), ("logBase", "10")],
        ),
        (
            "limits",
            &[
                ("target", "g.ramp"),
                ("yMin", "20"),
                ("yMax", "80"),
                ("hideLegend", "true"),
            ],
        ),
        (
            "binary",
            &[
                ("target", "g.big"),
                ("yUnitSystem", "binary"),
                ("lineWidth", "2"),
            ],
        ),
        (
            "graph-only",
            &[
                ("target", "g.ramp"),
                ("target", "g.sine"),
                ("graphOnly", "true"),
            ],
        ),
        (
            "functions",
            &[
                ("target", "lineWidth(g.ramp, 3)"),
                ("target", "dashed(g.sine)"),
                ("target", "drawAsInfinite(g.gappy)"),
            ],
        ),
        (
            "colors",
            &[
                ("target", "g.ramp"),
                ("target", "g.sine"),
                ("colorList", "red,00ff00"),
                ("bgcolor", "black"),
                ("fgcolor", "white"),
            ],
        ),
    ];
    let mut report = Vec::new();
    for (name, pairs) in cases {
        let params = s.params(pairs);
        let (status, ours) = http(s.port, "GET", "/render", &params);
        assert_eq!(status, 200, "{name}: {}", String::from_utf8_lossy(&ours));
        let (status, theirs) = gw.request("GET", "/render", &params);
        assert_eq!(status, 200, "graphite-web {name}");
        std::fs::write(out.join(format!("{name}.carbyne.png")), &ours).expect("write");
        std::fs::write(out.join(format!("{name}.graphite-web.png")), &theirs).expect("write");
        let (a, b) = (png(&ours), png(&theirs));
        assert_eq!((a.width(), a.height()), (b.width(), b.height()), "{name}");
        let (colors, bg): (&[[u8; 3]], [u8; 3]) = if pairs.iter().any(|(k, _)| *k == "colorList") {
            // graphite-web's "red" is its own (200, 0, 50).
            (&[RED, [0, 255, 0]], [0, 0, 0])
        } else {
            (&[BLUE, GREEN], [255, 255, 255])
        };
        // Above the legend (its squares hold the same colours).
        let below = if pairs
            .iter()
            .any(|(k, v)| *k == "graphOnly" || (*k == "hideLegend" && *v == "true"))
        {
            a.height()
        } else {
            a.height() - 22
        };
        for color in colors {
            let (ma, mb) = (mask(&a, *color, bg, below), mask(&b, *color, bg, below));
            let (ours_near, theirs_near) = (matched(&ma, &mb, 3), matched(&mb, &ma, 3));
            report.push(format!(
                "{name} {color:?}: {:.1} % of carbyne's {} pixels near graphite-web's, {:.1} % of its {} near carbyne's",
                100.0 * ours_near,
                ma.len(),
                100.0 * theirs_near,
                mb.len()
            ));
            let far: Vec<&(i64, i64)> = ma
                .iter()
                .filter(|(x, y)| {
                    !mb.iter()
                        .any(|(u, v)| (u - x).abs() <= 3 && (v - y).abs() <= 3)
                })
                .take(8)
                .collect();
            assert!(
                ours_near >= 0.95 && theirs_near >= 0.95 && ma.is_empty() == mb.is_empty(),
                "{}  (images in target/artifacts/graphs/); far from graphite-web's: {far:?}",
                report.last().map_or("", String::as_str)
            );
        }
    }
    std::fs::write(out.join("report.txt"), report.join("\n") + "\n").expect("report");
}
