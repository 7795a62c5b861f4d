//! `[server.web]` against graphite-web 1.1.10 (PyPI), run in-process
//! through Django's test client over the same whisper files: the same
//! requests to both, the answers compared (names, tags and timestamps
//! exact, values to 1e-9 relative).

mod common;

use common::graphite_web::*;
use common::*;
use serde_json::Value;
use std::io::Write;
use std::net::TcpStream;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

/// Whisper files made by Python's whisper: several retentions, gaps,
/// negative values, a counter that resets; `now` is the time they end at.
fn make_files(dir: &Path) -> i64 {
    let script = r#"
import random, sys, time, whisper, os
root = sys.argv[1]
rnd = random.Random(7)
now = int(time.time())
def make(name, archives, points, agg='average'):
    path = os.path.join(root, *name.split('.')) + '.wsp'
    os.makedirs(os.path.dirname(path), exist_ok=True)
    whisper.create(path, archives, aggregationMethod=agg)
    whisper.update_many(path, points)
def series(step, count, f, gaps=0.1):
    out = []
    for i in range(count):
        if rnd.random() < gaps:
            continue
        out.append((now - i * step, f(i)))
    return out
for host in ['web1', 'web2', 'web3']:
    for kind in ['user', 'system']:
        make('servers.%s.cpu.%s' % (host, kind), [(60, 1440), (300, 2016)],
             series(60, 1500, lambda i: round(rnd.uniform(-5, 100), 3)))
    for disk in ['sda', 'sdb']:
        make('servers.%s.diskspace.%s.byte_used' % (host, disk), [(60, 1440)],
             series(60, 600, lambda i: float(rnd.randint(10**9, 10**10)), 0.02), 'last')
make('servers.db1.cpu.user', [(10, 2160), (60, 1440)], series(10, 3000, lambda i: rnd.uniform(0, 50)))
make('servers.db1.cpu.system', [(10, 2160), (60, 1440)], series(10, 3000, lambda i: rnd.uniform(0, 50), 0.5))
total = [0.0]
def counter(i):
    total[0] += rnd.randint(0, 500)
    return total[0] if i % 200 else 3.0
make('counters.requests', [(60, 1440)], list(reversed(series(60, 1400, counter, 0.05))), 'max')
make('empty.series', [(60, 1440)], [])
print(now)
"#;
    make_with_python(script, dir)
}

/// Every target below asked of both servers in json, with `now` fixed.
const TARGETS: &[&str] = &[
    "servers.web1.cpu.user",
    "servers.*.cpu.user",
    "servers.web[12].cpu.*",
    "servers.{web1,db1}.cpu.user",
    "servers.web?.cpu.system",
    "servers.*.diskspace.*.byte_used",
    "nosuch.metric",
    "empty.series",
    "sumSeries(servers.*.cpu.user)",
    "sum(servers.web*.cpu.*)",
    "averageSeries(servers.*.cpu.user)",
    "avg(servers.web1.cpu.*)",
    "maxSeries(servers.*.cpu.user)",
    "minSeries(servers.*.cpu.system)",
    "diffSeries(servers.web1.cpu.user,servers.web2.cpu.user)",
    "multiplySeries(servers.web1.cpu.user,servers.web2.cpu.user)",
    "multiplySeries(servers.web1.cpu.user)",
    "countSeries(servers.*.cpu.user)",
    "rangeOfSeries(servers.*.cpu.user)",
    "stddevSeries(servers.*.cpu.user)",
    "aggregate(servers.*.cpu.user,'median')",
    "aggregate(servers.*.cpu.user,'avg_zero')",
    "aggregate(servers.web*.cpu.user,'count',0.5)",
    "aggregate(servers.web*.cpu.*,'last')",
    "sumSeries(nosuch.*)",
    "group(servers.web1.cpu.user,servers.web2.cpu.user)",
    "groupByNode(servers.*.cpu.*,1,'sum')",
    "groupByNode(servers.*.cpu.*,3)",
    "groupByNode(servers.*.diskspace.*.byte_used,1,'sumSeries')",
    "groupByNodes(servers.*.cpu.*,'max',1,3)",
    "sumSeriesWithWildcards(servers.*.cpu.user,1)",
    "averageSeriesWithWildcards(servers.*.cpu.*,1)",
    "aggregateWithWildcards(servers.*.cpu.*,'min',3)",
    "divideSeries(servers.web1.cpu.user,servers.web2.cpu.user)",
    "divideSeries(servers.web*.cpu.user,servers.db1.cpu.user)",
    "divideSeriesLists(servers.web*.cpu.user,servers.web*.cpu.system)",
    "asPercent(servers.web*.cpu.user)",
    "asPercent(servers.web*.cpu.user,100)",
    "asPercent(servers.web1.cpu.user,servers.web2.cpu.user)",
    "asPercent(servers.web*.cpu.user,servers.web*.cpu.system)",
    "scale(servers.web1.cpu.user,2.5)",
    "scale(servers.web1.cpu.user,-2)",
    "scaleToSeconds(counters.requests,1)",
    "offset(servers.web1.cpu.user,-10)",
    "absolute(servers.web1.cpu.user)",
    "pow(servers.web1.cpu.user,2)",
    "log(servers.web1.cpu.user)",
    "log(servers.web1.cpu.user,2)",
    "invert(servers.web1.cpu.user)",
    "squareRoot(servers.web1.cpu.user)",
    "derivative(counters.requests)",
    "nonNegativeDerivative(counters.requests)",
    "perSecond(counters.requests)",
    "integral(servers.web1.cpu.user)",
    "keepLastValue(servers.web1.cpu.user)",
    "keepLastValue(servers.db1.cpu.system,2)",
    "transformNull(servers.web1.cpu.user)",
    "transformNull(servers.web1.cpu.user,-1)",
    "transformNull(servers.db1.cpu.system,0,servers.db1.cpu.user)",
    "timeShift(servers.web1.cpu.user,'1h')",
    "timeShift(servers.web1.cpu.user,'-30min',false)",
    "delay(servers.web1.cpu.user,3)",
    "delay(servers.web1.cpu.user,-2)",
    "summarize(servers.web1.cpu.user,'1h')",
    "summarize(servers.web1.cpu.user,'30min','max')",
    "summarize(servers.web1.cpu.user,'1h','avg',true)",
    "summarize(counters.requests,'15min','last')",
    "movingAverage(servers.web1.cpu.user,5)",
    "movingAverage(servers.web1.cpu.user,'10min')",
    "movingSum(servers.web1.cpu.user,3)",
    "movingMin(servers.web1.cpu.user,4)",
    "movingMax(servers.db1.cpu.system,'5min')",
    "movingMedian(servers.web1.cpu.user,4)",
    "movingWindow(servers.web1.cpu.user,5,'sum')",
    "highestCurrent(servers.*.cpu.user,2)",
    "highestAverage(servers.*.cpu.*,3)",
    "highestMax(servers.*.cpu.*,1)",
    "highest(servers.*.cpu.*,2,'sum')",
    "lowestCurrent(servers.*.cpu.user,2)",
    "lowestAverage(servers.*.cpu.*,2)",
    "lowest(servers.*.cpu.*)",
    "limit(servers.*.cpu.*,3)",
    "exclude(servers.*.cpu.*,'web2')",
    "grep(servers.*.cpu.*,'sys')",
    "removeEmptySeries(servers.*.cpu.*)",
    "removeAboveValue(servers.*.cpu.user,50)",
    "removeBelowValue(servers.*.cpu.user,50)",
    "currentAbove(servers.web*.cpu.*,40)",
    "currentBelow(servers.web*.cpu.*,40)",
    "averageAbove(servers.*.cpu.*,45)",
    "averageBelow(servers.*.cpu.*,45)",
    "maximumAbove(servers.*.cpu.*,99)",
    "sortByTotal(servers.*.cpu.*)",
    "sortByMaxima(servers.*.cpu.*)",
    "sortByMinima(servers.*.cpu.*)",
    "sortByName(servers.*.cpu.*)",
    "sortByName(servers.*.cpu.*,true,true)",
    "alias(servers.web1.cpu.user,'web one')",
    "aliasByNode(servers.*.cpu.*,1,3)",
    "aliasByNode(servers.*.cpu.user,-1)",
    "aliasByMetric(sumSeries(servers.*.cpu.user))",
    "aliasByMetric(servers.web*.cpu.*)",
    "aliasSub(servers.*.cpu.user,'servers\\.(\\w+)\\..*','\\1 cpu')",
    "aliasSub(sumSeries(servers.*.cpu.user), \"(^.*$)\", \"\\1 A\")",
    "consolidateBy(servers.web1.cpu.user,'max')",
    "constantLine(42)",
    "constantLine(1.5)",
    "color(servers.web1.cpu.user,'red')",
    "lineWidth(servers.web1.cpu.user,2)",
    "dashed(servers.web1.cpu.user)",
    "stacked(servers.*.cpu.user)",
    "secondYAxis(servers.web1.cpu.user)",
    "drawAsInfinite(servers.web1.cpu.user)",
    "alpha(servers.web1.cpu.user,0.5)",
    "servers.*.cpu.user|sumSeries()|scale(2)",
    "servers.web1.cpu.user | alias('piped')",
    "legendValue(servers.web*.cpu.user,'avg','max')",
    "legendValue(servers.web*.cpu.user,'last','si')",
    "legendValue(servers.*.diskspace.sda.byte_used,'max','binary')",
    "legendValue(servers.web1.cpu.user,'nosuch')",
    "cactiStyle(servers.web*.cpu.*)",
    "cactiStyle(servers.*.diskspace.sda.byte_used,'si')",
    "cactiStyle(servers.*.diskspace.sdb.byte_used,'binary','B')",
    "cactiStyle(servers.web1.cpu.user,units='%')",
    "mostDeviant(servers.*.cpu.*,3)",
    "removeAbovePercentile(servers.web1.cpu.user,90)",
    "removeBelowPercentile(servers.web*.cpu.user,25.5)",
    "timeStack(servers.web1.cpu.user,'1h',0,3)",
    "timeStack(servers.web1.cpu.user)",
    "hitcount(counters.requests,'15min')",
    "hitcount(servers.db1.cpu.user,'7min')",
    "hitcount(servers.web1.cpu.user,'1h',true)",
    "applyByNode(servers.*.cpu.user,1,'sumSeries(%.cpu.*)')",
    "applyByNode(servers.web*.cpu.user,1,'maxSeries(%.cpu.*)','%.cpumax')",
    "groupByTags(servers.*.cpu.user,'sum','name')",
    "groupByTags(servers.*.cpu.*,'average','name')",
    "aliasByTags(servers.*.cpu.user,1,'name')",
];

#[test]
fn render_json_matches_graphite_web() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whisper = dir.path().join("whisper");
    let now = make_files(&whisper).to_string();
    let mut gw = GraphiteWeb::start(&whisper);
    let (_server, port) = start_carbyne(dir.path(), &whisper, "");
    let mut failures = Vec::new();
    let mut compare = |gw: &mut GraphiteWeb,
                       method: &str,
                       path: &str,
                       params: Vec<(String, String)>,
                       what: String| {
        let (gs, gb) = gw.request(method, path, &params);
        let (cs, cb) = http(port, method, path, &params);
        if gs != cs {
            failures.push(format!(
                "{what}: status {cs}, graphite-web {gs} ({})",
                String::from_utf8_lossy(&gb)
                    .chars()
                    .take(200)
                    .collect::<String>()
            ));
            return;
        }
        let (Ok(g), Ok(c)) = (
            serde_json::from_slice::<Value>(&gb),
            serde_json::from_slice::<Value>(&cb),
        ) else {
            if gb != cb {
                failures.push(format!("{what}: bodies differ"));
            }
            return;
        };
        if let Err(e) = same(&c, &g, "") {
            failures.push(format!("{what}: {e}"));
        }
    };
    for t in TARGETS {
        let params = p(&[
            ("target", t),
            ("format", "json"),
            ("from", "-6h"),
            ("now", &now),
        ]);
        compare(&mut gw, "GET", "/render", params, format!("{t} (-6h)"));
    }
    // Time forms, maxDataPoints and POST as Grafana sends them.
    let hhmm = {
        let t = now.parse::<i64>().expect("now") - 3 * 3600;
        let out = Command::new("date")
            .args(["-u", "-d", &format!("@{t}"), "+%H:%M_%Y%m%d"])
            .output()
            .expect("date");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    let epoch = (now.parse::<i64>().expect("now") - 7200).to_string();
    for (from, until) in [
        ("-1d", "-2h"),
        ("-30min", "now"),
        (epoch.as_str(), "now"),
        (hhmm.as_str(), "-1h"),
        ("midnight", "now"),
        ("-3d", "now"),
        ("-7d", "-5d"),
        ("-2h", "-3h"),
    ] {
        for target in [
            "servers.*.cpu.user",
            "sumSeries(servers.db1.cpu.*)",
            "movingAverage(servers.web1.cpu.user,3)",
        ] {
            let params = p(&[
                ("target", target),
                ("format", "json"),
                ("from", from),
                ("until", until),
                ("now", &now),
            ]);
            compare(
                &mut gw,
                "GET",
                "/render",
                params,
                format!("{target} from={from} until={until}"),
            );
        }
    }
    for mdp in ["1", "10", "100", "500", "5000"] {
        for target in [
            "servers.*.cpu.user",
            "consolidateBy(servers.web1.cpu.user,'sum')",
            "consolidateBy(servers.web1.cpu.user,'min')",
            "consolidateBy(servers.db1.cpu.system,'last')",
            "servers.db1.cpu.*",
        ] {
            let params = p(&[
                ("target", target),
                ("format", "json"),
                ("from", "-1d"),
                ("maxDataPoints", mdp),
                ("now", &now),
            ]);
            compare(
                &mut gw,
                "GET",
                "/render",
                params,
                format!("{target} maxDataPoints={mdp}"),
            );
        }
    }
    let grafana = p(&[
        (
            "target",
            "aliasSub(servers.web*.cpu.user, \"(^.*$)\", \"\\1 A\")",
        ),
        (
            "target",
            "aliasSub(sumSeries(servers.*.cpu.system), \"(^.*$)\", \"\\1 B\")",
        ),
        ("from", "-6h"),
        ("until", "now"),
        ("format", "json"),
        ("maxDataPoints", "300"),
        ("now", &now),
    ]);
    compare(&mut gw, "POST", "/render", grafana, "Grafana's POST".into());
    let opts = p(&[
        ("target", "servers.db1.cpu.system"),
        ("format", "json"),
        ("from", "-1h"),
        ("noNullPoints", "1"),
        ("now", &now),
    ]);
    compare(&mut gw, "GET", "/render", opts, "noNullPoints".into());
    let tz = p(&[
        ("target", "servers.web1.cpu.user"),
        ("format", "json"),
        ("from", "midnight"),
        ("tz", "America/New_York"),
        ("now", &now),
    ]);
    compare(&mut gw, "GET", "/render", tz, "tz=America/New_York".into());
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn data_formats_and_finds_match_graphite_web() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whisper = dir.path().join("whisper");
    let now = make_files(&whisper).to_string();
    let mut gw = GraphiteWeb::start(&whisper);
    let (_server, port) = start_carbyne(dir.path(), &whisper, "");
    let mut failures = Vec::new();
    for target in [
        "servers.*.cpu.user",
        "scale(servers.db1.cpu.system,0.1)",
        "empty.series",
    ] {
        for format in ["csv", "raw", "pickle"] {
            let params = p(&[
                ("target", target),
                ("format", format),
                ("from", "-3h"),
                ("now", &now),
            ]);
            let (gs, gb) = gw.request("GET", "/render", &params);
            let (cs, cb) = http(port, "GET", "/render", &params);
            let what = format!("{target} format={format}");
            if gs != cs {
                failures.push(format!("{what}: status {cs}, graphite-web {gs}"));
                continue;
            }
            let ok = match format {
                "pickle" => {
                    let (g, c) = (gw.unpickle(&gb), gw.unpickle(&cb));
                    same(&c, &g, "").map_err(|e| format!("{what}: {e}"))
                }
                _ => {
                    let (g, c) = (String::from_utf8_lossy(&gb), String::from_utf8_lossy(&cb));
                    let split = |s: &str| -> Vec<Value> {
                        s.split(['\n', ',', '|'])
                            .map(|f| {
                                f.trim()
                                    .parse::<f64>()
                                    .map_or(Value::String(f.trim().into()), |x| {
                                        serde_json::json!(x)
                                    })
                            })
                            .collect()
                    };
                    same(&Value::Array(split(&c)), &Value::Array(split(&g)), "")
                        .map_err(|e| format!("{what}: {e}"))
                }
            };
            if let Err(e) = ok {
                failures.push(e);
            }
        }
    }
    for query in [
        "*",
        "servers.*",
        "servers.web*",
        "servers.web1.cpu.*",
        "servers.{web1,db1}.*",
        "servers.*.diskspace.sd?",
        "nosuch.*",
        "servers.web[13].cpu",
    ] {
        for format in ["treejson", "completer", "json"] {
            for path in ["/metrics/find", "/metrics/find/"] {
                let params = p(&[("query", query), ("format", format)]);
                let (gs, gb) = gw.request("GET", path, &params);
                let (cs, cb) = http(port, "GET", path, &params);
                let what = format!("find {query} format={format} at {path}");
                if gs != cs {
                    failures.push(format!("{what}: status {cs}, graphite-web {gs}"));
                    continue;
                }
                let strip = |v: Value| -> Value {
                    // Intervals start at "now - retention" as each server's clock reads it.
                    let mut v = v;
                    if let Some(items) = v.as_array_mut() {
                        for i in items {
                            if let Some(iv) = i.get_mut("intervals").and_then(|x| x.as_array_mut())
                            {
                                for x in iv {
                                    if let Some(o) = x.as_object_mut() {
                                        for val in o.values_mut() {
                                            *val = serde_json::json!((val.as_f64().unwrap_or(0.0)
                                                / 100.0)
                                                .round());
                                        }
                                    }
                                }
                            }
                        }
                    }
                    v
                };
                // Nodes of one name come in graphite-web's directory order,
                // which differs from run to run: completer lists compared sorted.
                let sorted = |mut v: Value| {
                    if let Some(m) = v.get_mut("metrics").and_then(|m| m.as_array_mut()) {
                        m.sort_by_key(|x| x.to_string());
                    }
                    v
                };
                let g = sorted(strip(serde_json::from_slice(&gb).unwrap_or(Value::Null)));
                let c = sorted(strip(serde_json::from_slice(&cb).unwrap_or(Value::Null)));
                if let Err(e) = same(&c, &g, "") {
                    failures.push(format!("{what}: {e}"));
                }
            }
        }
    }
    let expand = p(&[
        ("query", "servers.*.cpu.user"),
        ("query", "counters.*"),
        ("groupByExpr", "1"),
    ]);
    let expand_plain = p(&[
        ("query", "servers.*"),
        ("query", "servers.web1.*"),
        ("leavesOnly", "0"),
    ]);
    for (what, path, params) in [
        ("expand grouped", "/metrics/expand", expand),
        ("expand", "/metrics/expand", expand_plain),
        ("index.json", "/metrics/index.json", Vec::new()),
    ] {
        let (gs, gb) = gw.request("GET", path, &params);
        let (cs, cb) = http(port, "GET", path, &params);
        let g: Value = serde_json::from_slice(&gb).unwrap_or(Value::Null);
        let c: Value = serde_json::from_slice(&cb).unwrap_or(Value::Null);
        if gs != cs {
            failures.push(format!("{what}: status {cs}, graphite-web {gs}"));
        } else if let Err(e) = same(&c, &g, "") {
            failures.push(format!("{what}: {e}"));
        }
    }
    let (gs, gb) = gw.request("GET", "/version", &[]);
    let (cs, cb) = http(port, "GET", "/version", &[]);
    assert_eq!(
        (cs, String::from_utf8_lossy(&cb).trim().to_string()),
        (gs, String::from_utf8_lossy(&gb).trim().to_string())
    );
    assert!(
        failures.is_empty(),
        "{} differences:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// Sends plaintext lines to a carbon listener.
fn send_lines(port: u16, lines: &[String]) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.write_all((lines.join("\n") + "\n").as_bytes())
        .expect("send");
}

/// Whisper files made by Python's whisper for `names`, 60 s for a day.
fn make_empty(whisper: &Path, names: &[String]) {
    let script = "import sys, os, whisper\n\
        for n in sys.argv[2:]:\n\
        \x20   p = os.path.join(sys.argv[1], *n.split('.')) + '.wsp'\n\
        \x20   os.makedirs(os.path.dirname(p), exist_ok=True)\n\
        \x20   whisper.create(p, [(60, 1440)])\n";
    let ok = Command::new("python3")
        .args(["-c", script])
        .arg(whisper)
        .args(names)
        .status()
        .expect("python3");
    assert!(ok.success(), "whisper.create");
}

/// The last known value of each series of a JSON render answer.
fn last_values(body: &[u8]) -> Vec<(String, Option<f64>)> {
    let v: Value = serde_json::from_slice(body).unwrap_or(Value::Null);
    v.as_array()
        .map(|a| {
            a.iter()
                .map(|s| {
                    let last = s["datapoints"]
                        .as_array()
                        .and_then(|d| d.iter().rev().find_map(|p| p[0].as_f64()));
                    (s["target"].as_str().unwrap_or("").to_string(), last)
                })
                .collect()
        })
        .unwrap_or_default()
}

/// With the carbon receiver in the same process, a point is read the moment
/// it is accepted, from the cache (files on disk or not); and graphite-web,
/// pointed at the receiver's cache query port as its CARBONLINK_HOSTS, reads
/// the same answer.
#[test]
fn cached_points_are_read_at_once_here_and_through_carbonlink() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whisper = dir.path().join("whisper");
    let names: Vec<String> = (0..5).map(|i| format!("hold.m{i}")).collect();
    make_empty(&whisper, &names);
    let (line, query) = (free_port(), free_port());
    let extra = format!(
        "[server.carbon]\nlisten = \"127.0.0.1:{line}\"\npickle_listen = \"\"\nudp = false\n\
         cache_query_listen = \"127.0.0.1:{query}\"\nstorage_dir = {whisper:?}\n\
         max_updates_per_second = 0.2\ncarbon_metric_interval = 0\n"
    );
    let (_server, port) = start_carbyne(dir.path(), &whisper, &extra);
    wait_for_port(line);
    wait_for_port(query);
    let mut gw = GraphiteWeb::start_with(&whisper, &[format!("127.0.0.1:{query}:a")]);
    let now = common::now();
    let mut lines: Vec<String> = names
        .iter()
        .enumerate()
        .map(|(i, n)| format!("{n} {i}.5 {now}"))
        .collect();
    lines.push(format!("fresh.metric 7 {now}"));
    send_lines(line, &lines);
    let params = p(&[
        ("target", "hold.*"),
        ("format", "json"),
        ("from", "-5min"),
        ("now", &now.to_string()),
    ]);
    let want: Vec<(String, Option<f64>)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), Some(i as f64 + 0.5)))
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let ours = loop {
        let (status, body) = http(port, "GET", "/render", &params);
        assert_eq!(status, 200);
        if last_values(&body) == want || std::time::Instant::now() > deadline {
            break body;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(last_values(&ours), want, "the points sent, read back");
    // At one update every five seconds, most are still only in the cache.
    let written = names
        .iter()
        .filter(|n| {
            let f = whisper.join(n.replace('.', "/") + ".wsp");
            carbyne::whisper::Whisper::open(&f, false)
                .and_then(|w| w.fetch(now - 300, Some(now), Some(now), None))
                .ok()
                .flatten()
                .is_some_and(|s| s.values.iter().any(Option::is_some))
        })
        .count();
    assert!(
        written <= 2,
        "{written} of 5 written already: the cache was not what was read"
    );
    let (gs, theirs) = gw.request("GET", "/render", &params);
    assert_eq!(gs, 200);
    let (c, g): (Value, Value) = (
        serde_json::from_slice(&ours).expect("json"),
        serde_json::from_slice(&theirs).expect("json"),
    );
    same(&c, &g, "").unwrap_or_else(|e| panic!("graphite-web through carbonlink: {e}"));
    // A metric with no file yet reads as the file it will get.
    let fresh = p(&[
        ("target", "fresh.metric"),
        ("format", "json"),
        ("from", "-5min"),
        ("now", &now.to_string()),
    ]);
    let (_, body) = http(port, "GET", "/render", &fresh);
    assert_eq!(
        last_values(&body),
        vec![("fresh.metric".to_string(), Some(7.0))]
    );
    let (_, found) = http(port, "GET", "/metrics/find", &p(&[("query", "fresh.*")]));
    assert!(
        String::from_utf8_lossy(&found).contains("\"id\": \"fresh.metric\"")
            || String::from_utf8_lossy(&found).contains("\"id\":\"fresh.metric\"")
    );
}

/// carbyne in front of a real carbon-cache, as graphite-web stands: both
/// ask its cache query port for what it has not written, and answer alike.
#[test]
fn carbonlink_reads_a_real_carbon_caches_cache() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whisper = dir.path().join("whisper");
    let conf = dir.path().join("conf");
    std::fs::create_dir_all(&conf).expect("conf");
    std::fs::write(
        conf.join("storage-schemas.conf"),
        "[default]\npattern = .*\nretentions = 60:1d\n",
    )
    .expect("schemas");
    // carbon-cache writes its first update after about 100 s at this rate:
    // every point sent stays in its cache while the test reads. (At 0.05 a
    // loaded machine reached its first update, at 20 s, within the test;
    // carbon holds a metric taken for writing out of its cache, and off
    // disk, until the rate lets it write.)
    let (_carbon, line, _, query) =
        start_carbon_cache(&conf, &whisper, "MAX_UPDATES_PER_SECOND = 0.01\n");
    let names: Vec<String> = (0..5).map(|i| format!("cl.m{i}")).collect();
    make_empty(&whisper, &names);
    let now = common::now();
    let link = format!("127.0.0.1:{query}:a");
    // carbon-cache answers slowly on a loaded machine; a question that
    // times out leaves the instance out for 15 s, so allow for both.
    let extra = format!("carbonlink_hosts = [{link:?}]\ncarbonlink_timeout = 5.0\n");
    let (_server, port) = start_carbyne(dir.path(), &whisper, &extra);
    let mut gw = GraphiteWeb::start_with(&whisper, std::slice::from_ref(&link));
    let more: Vec<String> = names
        .iter()
        .enumerate()
        .flat_map(|(i, n)| {
            [
                format!("{n} {} {}", i + 10, now - 60),
                format!("{n} {} {now}", i + 20),
            ]
        })
        .collect();
    send_lines(line, &more);
    let params = p(&[
        ("target", "cl.*"),
        ("format", "json"),
        ("from", "-10min"),
        ("now", &now.to_string()),
    ]);
    let want: Vec<(String, Option<f64>)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), Some(i as f64 + 20.0)))
        .collect();
    // Until carbon-cache has taken every line in (it reads them in its own time).
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let mut ours = http(port, "GET", "/render", &params).1;
    while last_values(&ours) != want && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        ours = http(port, "GET", "/render", &params).1;
    }
    assert_eq!(
        last_values(&ours),
        want,
        "carbon-cache's cached points, read through carbonlink"
    );
    // Then beside graphite-web, asking the same cache. carbon-cache's writer
    // takes a metric out of its cache before it waits for its turn to write,
    // so what the cache holds can change once between two questions: asked
    // again until both read the same state.
    let mut differs = String::new();
    for _ in 0..5 {
        let (gs, theirs) = gw.request("GET", "/render", &params);
        let (cs, ours) = http(port, "GET", "/render", &params);
        assert_eq!((cs, gs), (200, 200));
        let (c, g): (Value, Value) = (
            serde_json::from_slice(&ours).expect("json"),
            serde_json::from_slice(&theirs).expect("json"),
        );
        match same(&c, &g, "") {
            Ok(()) => return,
            Err(e) => differs = e,
        }
    }
    panic!("beside graphite-web: {differs}");
}

/// `/functions` describes each function carbyne evaluates as graphite-web
/// does (group; each parameter's name, type, required, default, multiple;
/// options a subset of graphite-web's). graphite-web's own /functions fails
/// on Python 3.11 (inspect.getargspec), so its list is read in-process.
#[test]
fn functions_are_described_as_graphite_web_describes_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whisper = dir.path().join("whisper");
    std::fs::create_dir_all(&whisper).expect("mkdir");
    let mut gw = GraphiteWeb::start(&whisper);
    let (_server, port) = start_carbyne(dir.path(), &whisper, "");
    let theirs = gw.ask(&serde_json::json!({"functions": true}))["json"].clone();
    let (status, body) = http(port, "GET", "/functions", &[]);
    assert_eq!(status, 200);
    // graphite-web writes an infinite default as 1e9999, past what JSON
    // readers take as a number: read as the text the peer gives for it.
    let text = String::from_utf8_lossy(&body).replace("1e9999", "\"Infinity\"");
    let ours: Value = serde_json::from_str(&text).expect("json");
    let ours = ours.as_object().expect("object");
    assert!(ours.len() >= 80, "{} functions", ours.len());
    let mut failures = Vec::new();
    for (name, f) in ours {
        let Some(t) = theirs.get(name) else {
            failures.push(format!("{name}: graphite-web has no such function"));
            continue;
        };
        if f["group"] != t["group"] {
            failures.push(format!(
                "{name}: group {} but graphite-web {}",
                f["group"], t["group"]
            ));
        }
        let (op, tp) = (
            f["params"].as_array().cloned().unwrap_or_default(),
            t["params"].as_array().cloned().unwrap_or_default(),
        );
        if op.len() != tp.len() {
            failures.push(format!(
                "{name}: {} parameters, graphite-web {}",
                op.len(),
                tp.len()
            ));
            continue;
        }
        for (a, b) in op.iter().zip(&tp) {
            for k in ["name", "type", "required", "default", "multiple"] {
                if a.get(k) != b.get(k) {
                    failures.push(format!(
                        "{name}.{}: {k} {:?} but graphite-web {:?}",
                        b["name"],
                        a.get(k),
                        b.get(k)
                    ));
                }
            }
            if let Some(opts) = a.get("options").and_then(Value::as_array) {
                let known = b
                    .get("options")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for o in opts {
                    if !known.contains(o) {
                        failures.push(format!(
                            "{name}.{}: option {o} unknown to graphite-web",
                            b["name"]
                        ));
                    }
                }
            }
        }
    }
    // Grafana asks for the grouped form and for one function.
    let (s, grouped) = http(port, "GET", "/functions", &p(&[("grouped", "1")]));
    let grouped: Value =
        serde_json::from_str(&String::from_utf8_lossy(&grouped).replace("1e9999", "0"))
            .expect("json");
    assert_eq!(s, 200);
    assert!(grouped["Combine"]["sumSeries"]["params"].is_array());
    let (s, one) = http(port, "GET", "/functions/aliasSub", &[]);
    assert_eq!(s, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&one).expect("json")["name"],
        "aliasSub"
    );
    assert_eq!(http(port, "GET", "/functions/noSuch", &[]).0, 404);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Events (Grafana's annotations) posted to both servers, then listed by
/// time and tags as graphite-web lists them.
#[test]
fn events_match_graphite_web() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whisper = dir.path().join("whisper");
    std::fs::create_dir_all(&whisper).expect("mkdir");
    let mut gw = GraphiteWeb::start(&whisper);
    let (_server, port) = start_carbyne(dir.path(), &whisper, "");
    let now = common::now();
    let events = [
        format!(
            r#"{{"what": "deploy web", "tags": ["deploy", "web"], "when": {}, "data": "v1.2"}}"#,
            now - 7200
        ),
        format!(
            r#"{{"what": "restart db", "tags": "db restart", "when": {}}}"#,
            now - 3600
        ),
        format!(
            r#"{{"what": "deploy db", "tags": ["deploy", "db", "deploy"], "when": {}}}"#,
            now - 1800
        ),
        format!(
            r#"{{"what": "note", "when": {}, "data": "no tags"}}"#,
            now - 600
        ),
    ];
    for e in &events {
        let a = gw.ask(&serde_json::json!({"path": "/events/", "json": e}));
        assert_eq!(a["status"], 200, "graphite-web took {e}");
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        write!(
            s,
            "POST /events/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{e}",
            e.len()
        )
        .expect("post");
        let mut answer = String::new();
        std::io::Read::read_to_string(&mut s, &mut answer).expect("answer");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    }
    let mut failures = Vec::new();
    for params in [
        vec![],
        vec![("from", "-1h")],
        vec![("from", "-3h"), ("until", "-45min")],
        vec![("tags", "deploy")],
        vec![("tags", "deploy db")],
        vec![("tags", "deploy db"), ("set", "union")],
        vec![("tags", "deploy db"), ("set", "intersection")],
        vec![("tags", "nosuch")],
    ] {
        let params = p(&params);
        let (gs, gb) = gw.request("GET", "/events/get_data", &params);
        let (cs, cb) = http(port, "GET", "/events/get_data", &params);
        let g: Value = serde_json::from_slice(&gb).unwrap_or(Value::Null);
        let mut c: Value = serde_json::from_slice(&cb).unwrap_or(Value::Null);
        // ids are each database's own.
        if let (Some(ca), Some(ga)) = (c.as_array_mut(), g.as_array()) {
            for (x, y) in ca.iter_mut().zip(ga) {
                x["id"] = y["id"].clone();
            }
        }
        if gs != cs {
            failures.push(format!("{params:?}: status {cs}, graphite-web {gs}"));
        } else if let Err(e) = same(&c, &g, "") {
            failures.push(format!("{params:?}: {e}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// Tagged series, stored where carbon stores them and registered as
/// carbon's ENABLE_TAGS registers them (`/tags/tagMultiSeries`): the tag
/// endpoints and `seriesByTag` renders answer as graphite-web's.
#[test]
fn tags_and_series_by_tag_match_graphite_web() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whisper = dir.path().join("whisper");
    let names = [
        "cpu.user;host=web1;dc=eu",
        "cpu.user;host=web2;dc=us",
        "cpu.user;host=db1;dc=eu;role=db",
        "cpu.system;host=web1;dc=eu",
        "mem.free;host=web1",
        "disk.used;host=db1;dc=eu;dev=sda",
    ];
    // Files at carbon's hashed paths, with points.
    let script = r#"
import hashlib, os, sys, time, whisper
root = sys.argv[1]
now = int(time.time())
for i, n in enumerate(sys.argv[2:]):
    parts = n.split(';')
    norm = ';'.join([parts[0]] + sorted(parts[1:]))
    h = hashlib.sha256(norm.encode()).hexdigest()
    p = os.path.join(root, '_tagged', h[0:3], h[3:6], h + '.wsp')
    os.makedirs(os.path.dirname(p), exist_ok=True)
    whisper.create(p, [(60, 1440)])
    whisper.update_many(p, [(now - 60 * k, float(i * 100 + k)) for k in range(0, 300, 3)])
print(now)
"#;
    let out = Command::new("python3")
        .args(["-c", script])
        .arg(&whisper)
        .args(names)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let now = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let mut gw = GraphiteWeb::start(&whisper);
    let (_server, port) = start_carbyne(dir.path(), &whisper, "");
    let register: Vec<(String, String)> = names
        .iter()
        .map(|n| ("path".to_string(), n.to_string()))
        .collect();
    let (gs, gb) = gw.request("POST", "/tags/tagMultiSeries", &register);
    let (cs, cb) = http(port, "POST", "/tags/tagMultiSeries", &register);
    assert_eq!((cs, gs), (200, 200));
    let (g, c): (Value, Value) = (
        serde_json::from_slice(&gb).expect("json"),
        serde_json::from_slice(&cb).expect("json"),
    );
    same(&c, &g, "tagMultiSeries").unwrap_or_else(|e| panic!("{e}"));
    let (cs, cb) = http(
        port,
        "POST",
        "/tags/tagSeries",
        &p(&[("path", "net.rx;host=web9")]),
    );
    assert_eq!(cs, 200);
    assert_eq!(
        serde_json::from_slice::<Value>(&cb).expect("json"),
        "net.rx;host=web9"
    );
    http(
        port,
        "POST",
        "/tags/delSeries",
        &p(&[("path", "net.rx;host=web9")]),
    );
    let mut failures = Vec::new();
    let mut compare =
        |gw: &mut GraphiteWeb, method: &str, path: &str, params: Vec<(String, String)>| {
            let (gs, gb) = gw.request(method, path, &params);
            let (cs, cb) = http(port, method, path, &params);
            let what = format!("{path} {params:?}");
            if gs != cs {
                failures.push(format!(
                    "{what}: status {cs}, graphite-web {gs}: {}",
                    String::from_utf8_lossy(&gb)
                        .chars()
                        .take(200)
                        .collect::<String>()
                ));
                return;
            }
            // graphite-web's SQL tag database adds its row ids ("id"), which
            // are its own; the rest must be the same.
            fn no_ids(v: &mut Value) {
                match v {
                    Value::Object(o) => {
                        o.remove("id");
                        o.values_mut().for_each(no_ids);
                    }
                    Value::Array(a) => a.iter_mut().for_each(no_ids),
                    _ => {}
                }
            }
            let mut g: Value = serde_json::from_slice(&gb).unwrap_or(Value::Null);
            no_ids(&mut g);
            let c: Value = serde_json::from_slice(&cb).unwrap_or(Value::Null);
            if let Err(e) = same(&c, &g, "") {
                failures.push(format!("{what}: {e}"));
            }
        };
    for (path, params) in [
        ("/tags", vec![]),
        ("/tags", vec![("filter", "^d")]),
        ("/tags/host", vec![]),
        ("/tags/dc", vec![("filter", "e")]),
        ("/tags/findSeries", vec![("expr", "name=cpu.user")]),
        (
            "/tags/findSeries",
            vec![("expr", "host=~web"), ("expr", "dc!=us")],
        ),
        (
            "/tags/findSeries",
            vec![("expr", "name=~cpu"), ("expr", "role!=~d")],
        ),
        ("/tags/autoComplete/tags", vec![]),
        ("/tags/autoComplete/tags", vec![("tagPrefix", "d")]),
        ("/tags/autoComplete/tags", vec![("expr", "name=cpu.user")]),
        ("/tags/autoComplete/values", vec![("tag", "host")]),
        (
            "/tags/autoComplete/values",
            vec![("tag", "host"), ("valuePrefix", "web")],
        ),
        (
            "/tags/autoComplete/values",
            vec![("tag", "dc"), ("expr", "name=cpu.user")],
        ),
    ] {
        compare(&mut gw, "GET", path, p(&params));
    }
    for target in [
        "seriesByTag('name=cpu.user')",
        "seriesByTag('name=~cpu', 'dc=eu')",
        "seriesByTag('host=web1')",
        "sumSeries(seriesByTag('name=cpu.user'))",
        "groupByTags(seriesByTag('name=cpu.user'), 'sum', 'dc')",
        "aliasByTags(seriesByTag('name=cpu.user'), 'host', 'dc')",
        "seriesByTag('name=nosuch')",
    ] {
        let params = p(&[
            ("target", target),
            ("format", "json"),
            ("from", "-1h"),
            ("now", &now),
        ]);
        compare(&mut gw, "GET", "/render", params);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A tagged series the carbon receiver stores is found by tag once its
/// file is made (the receiver lists its name then), and read by seriesByTag.
#[test]
fn tagged_series_received_are_found_by_tag() {
    let dir = tempfile::tempdir().expect("tempdir");
    let whisper = dir.path().join("whisper");
    let (_server, port, line) = start_carbyne_with_carbon(dir.path(), &whisper);
    let now = common::now();
    send_lines(
        line,
        &[
            format!("req.count;dc=eu;host=web1 5 {now}"),
            format!("req.count;host=web2;dc=us 7 {now}"),
        ],
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let index = whisper.join("_tagged/.names");
    while std::fs::read_to_string(&index).map_or(0, |t| t.lines().count()) < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the receiver did not list the tagged names"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let (s, found) = http(port, "GET", "/tags/findSeries", &p(&[("expr", "dc=eu")]));
    assert_eq!(
        (s, serde_json::from_slice::<Value>(&found).expect("json")),
        (200, serde_json::json!(["req.count;dc=eu;host=web1"]))
    );
    let params = p(&[
        ("target", "seriesByTag('name=req.count')"),
        ("format", "json"),
        ("from", "-5min"),
        ("now", &now.to_string()),
    ]);
    let (s, body) = http(port, "GET", "/render", &params);
    assert_eq!(s, 200);
    assert_eq!(
        last_values(&body),
        vec![
            ("req.count;dc=eu;host=web1".to_string(), Some(5.0)),
            ("req.count;dc=us;host=web2".to_string(), Some(7.0))
        ]
    );
}
