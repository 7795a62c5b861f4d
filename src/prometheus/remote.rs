//! Prometheus remote_write 1.0's body: a protobuf `WriteRequest`
//! (prost's derive, no protoc), snappy block compressed. Each series'
//! labels are `__name__` first, then the others sorted by name; the
//! external labels join those a series does not have; a series' samples
//! are in time order.

use super::naming::Named;
use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::BuildHasher;
use std::ops::Range;

/// `prometheus.WriteRequest` (field 2 is reserved; metadata, 3, is not sent).
#[derive(Clone, PartialEq, prost::Message)]
pub struct WriteRequest {
    #[prost(message, repeated, tag = "1")]
    pub timeseries: Vec<TimeSeries>,
}

/// `prometheus.TimeSeries`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct TimeSeries {
    #[prost(message, repeated, tag = "1")]
    pub labels: Vec<Label>,
    #[prost(message, repeated, tag = "2")]
    pub samples: Vec<Point>,
}

/// `prometheus.Label`.
#[derive(Clone, PartialEq, Eq, Hash, prost::Message)]
pub struct Label {
    #[prost(string, tag = "1")]
    pub name: String,
    #[prost(string, tag = "2")]
    pub value: String,
}

/// `prometheus.Sample`: a value at a time in milliseconds.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Point {
    #[prost(double, tag = "1")]
    pub value: f64,
    #[prost(int64, tag = "2")]
    pub timestamp: i64,
}

/// A series: its name, labels (valid, sorted) and samples in time order,
/// with the hash of its name and labels (which shard sends it). The
/// external labels join at encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct Grouped {
    pub hash: u64,
    pub name: Cow<'static, str>,
    pub labels: Vec<(Cow<'static, str>, String)>,
    pub points: Vec<Point>,
}

fn series_hash(name: &str, labels: &[(Cow<'static, str>, String)]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5eed).hash_one((name, labels))
}

/// Groups named samples into series, each series' samples in time order.
pub fn group(named: Vec<Named>) -> Vec<Grouped> {
    let mut out: Vec<Grouped> = Vec::new();
    let mut index: HashMap<u64, Vec<usize>> = HashMap::new();
    for n in named {
        let point = Point {
            value: n.value,
            timestamp: n.timestamp.saturating_mul(1000),
        };
        let hash = series_hash(&n.name, &n.labels);
        let slot = index.entry(hash).or_default();
        match slot
            .iter()
            .find(|&&i| out[i].name == n.name && out[i].labels == n.labels)
        {
            Some(&i) => out[i].points.push(point),
            None => {
                slot.push(out.len());
                out.push(Grouped {
                    hash,
                    name: n.name,
                    labels: n.labels,
                    points: vec![point],
                });
            }
        }
    }
    for g in &mut out {
        if g.points.len() > 1 {
            g.points.sort_by_key(|p| p.timestamp);
        }
    }
    out
}

/// One request's share of the series: (series index, its samples' range).
pub type Part = (usize, Range<usize>);

/// Requests of at most `max_samples` samples each, in order: a series
/// longer than that is split, its earlier samples first. Each with its
/// sample count.
pub fn plan(series: &[Grouped], max_samples: usize) -> Vec<(Vec<Part>, usize)> {
    let max = max_samples.max(1);
    let mut out = Vec::new();
    let mut cur = Vec::new();
    let mut n = 0;
    for (i, g) in series.iter().enumerate() {
        let mut from = 0;
        while from < g.points.len() {
            let take = (g.points.len() - from).min(max - n);
            cur.push((i, from..from + take));
            from += take;
            n += take;
            if n == max {
                out.push((std::mem::take(&mut cur), n));
                n = 0;
            }
        }
    }
    if n > 0 {
        out.push((cur, n));
    }
    out
}

/// The samples of `parts` as Prometheus-only samples again (named as sent,
/// without the external labels), to be kept when they could not be sent.
pub fn samples(series: &[Grouped], parts: &[Part]) -> Vec<crate::sample::Sample> {
    let mut out = Vec::new();
    for (i, range) in parts {
        let g = &series[*i];
        for p in &g.points[range.clone()] {
            out.push(crate::sample::Sample::series(
                crate::sample::Series {
                    name: g.name.clone(),
                    // Named already (a counter's `_total` on): a gauge
                    // keeps the name as it is.
                    kind: super::Kind::Gauge,
                    help: Cow::Borrowed(""),
                    labels: g.labels.clone(),
                },
                p.value,
                p.timestamp.div_euclid(1000),
            ));
        }
    }
    out
}

/// A series' labels in remote_write's order: `__name__`, then its own and
/// the external ones merged by name (its own winning).
fn labels<'a>(
    g: &'a Grouped,
    external: &'a [(String, String)],
) -> impl Iterator<Item = (&'a str, &'a str)> + 'a {
    let mut own = g.labels.iter().map(|(k, v)| (&**k, v.as_str())).peekable();
    let mut ext = external
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .peekable();
    std::iter::once(("__name__", &*g.name)).chain(std::iter::from_fn(move || {
        match (own.peek(), ext.peek()) {
            (Some(o), Some(e)) if e.0 < o.0 => ext.next(),
            (Some(o), Some(e)) if e.0 == o.0 => {
                ext.next();
                own.next()
            }
            (Some(_), _) => own.next(),
            (None, _) => ext.next(),
        }
    }))
}

fn varint_len(v: u64) -> usize {
    (64 - (v | 1).leading_zeros() as usize).div_ceil(7)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push(v as u8 | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A string field's bytes (proto3 leaves out an empty one).
fn str_field_len(s: &str) -> usize {
    if s.is_empty() {
        0
    } else {
        1 + varint_len(s.len() as u64) + s.len()
    }
}

fn put_str_field(out: &mut Vec<u8>, tag: u8, s: &str) {
    if !s.is_empty() {
        out.push(tag);
        put_varint(out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
}

fn point_len(p: &Point) -> usize {
    let v = if p.value != 0.0 { 9 } else { 0 };
    let t = if p.timestamp != 0 {
        1 + varint_len(p.timestamp as u64)
    } else {
        0
    };
    v + t
}

/// The protobuf `WriteRequest` of `parts`, appended to `out`: the bytes
/// prost writes for the same message, without building it.
pub fn encode_protobuf(
    series: &[Grouped],
    parts: &[Part],
    external: &[(String, String)],
    out: &mut Vec<u8>,
) {
    for (i, range) in parts {
        let g = &series[*i];
        let points = &g.points[range.clone()];
        let mut len = 0;
        for (k, v) in labels(g, external) {
            let l = str_field_len(k) + str_field_len(v);
            len += 1 + varint_len(l as u64) + l;
        }
        for p in points {
            let l = point_len(p);
            len += 1 + varint_len(l as u64) + l;
        }
        out.push(0x0a); // WriteRequest.timeseries
        put_varint(out, len as u64);
        for (k, v) in labels(g, external) {
            out.push(0x0a); // TimeSeries.labels
            put_varint(out, (str_field_len(k) + str_field_len(v)) as u64);
            put_str_field(out, 0x0a, k);
            put_str_field(out, 0x12, v);
        }
        for p in points {
            out.push(0x12); // TimeSeries.samples
            put_varint(out, point_len(p) as u64);
            if p.value != 0.0 {
                out.push(0x09);
                out.extend_from_slice(&p.value.to_le_bytes());
            }
            if p.timestamp != 0 {
                out.push(0x10);
                put_varint(out, p.timestamp as u64);
            }
        }
    }
}

/// The same request as prost's message (what a receiver decodes).
pub fn write_request(
    series: &[Grouped],
    parts: &[Part],
    external: &[(String, String)],
) -> WriteRequest {
    WriteRequest {
        timeseries: parts
            .iter()
            .map(|(i, range)| TimeSeries {
                labels: labels(&series[*i], external)
                    .map(|(k, v)| Label {
                        name: k.to_string(),
                        value: v.to_string(),
                    })
                    .collect(),
                samples: series[*i].points[range.clone()].to_vec(),
            })
            .collect(),
    }
}

/// Snappy's block format, as remote_write's body.
pub fn compress(raw: &[u8]) -> Result<Vec<u8>, snap::Error> {
    snap::raw::Encoder::new().compress_vec(raw)
}

/// A message's body: protobuf, then snappy's block format.
pub fn encode(req: &WriteRequest) -> Result<Vec<u8>, snap::Error> {
    compress(&prost::Message::encode_to_vec(req))
}

/// Reads a body back (what a receiver does).
pub fn decode(body: &[u8]) -> Result<WriteRequest, String> {
    let raw = snap::raw::Decoder::new()
        .decompress_vec(body)
        .map_err(|e| e.to_string())?;
    prost::Message::decode(raw.as_slice()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::prometheus::Kind;

    fn named(name: &str, labels: &[(&str, &str)], value: f64, ts: i64) -> Named {
        Named {
            name: Cow::Owned(name.into()),
            kind: Kind::Gauge,
            help: Cow::Borrowed(""),
            labels: labels
                .iter()
                .map(|(k, v)| (Cow::Owned(k.to_string()), v.to_string()))
                .collect(),
            native: false,
            value,
            timestamp: ts,
        }
    }

    fn names(ts: &TimeSeries) -> Vec<(&str, &str)> {
        ts.labels
            .iter()
            .map(|l| (l.name.as_str(), l.value.as_str()))
            .collect()
    }

    fn whole(g: &[Grouped]) -> Vec<Part> {
        g.iter()
            .enumerate()
            .map(|(i, s)| (i, 0..s.points.len()))
            .collect()
    }

    #[test]
    fn series_grouped_name_first_external_labels_merged_time_ordered() {
        let ext = vec![
            ("a".to_string(), "ext".to_string()),
            ("instance".to_string(), "web01".to_string()),
            ("z".to_string(), "last".to_string()),
        ];
        let g = group(vec![
            named("m", &[("cpu", "0"), ("instance", "own")], 2.0, 20),
            named("m", &[("cpu", "1")], 5.0, 10),
            named("m", &[("cpu", "0"), ("instance", "own")], 1.0, 10),
        ]);
        assert_eq!(g.len(), 2);
        let req = write_request(&g, &whole(&g), &ext);
        assert_eq!(
            names(&req.timeseries[0]),
            [
                ("__name__", "m"),
                ("a", "ext"),
                ("cpu", "0"),
                ("instance", "own"),
                ("z", "last")
            ]
        );
        assert_eq!(
            req.timeseries[0].samples,
            [
                Point {
                    value: 1.0,
                    timestamp: 10_000
                },
                Point {
                    value: 2.0,
                    timestamp: 20_000
                }
            ]
        );
        assert_eq!(names(&req.timeseries[1])[3], ("instance", "web01"));
        assert_ne!(g[0].hash, g[1].hash);
    }

    #[test]
    fn requests_split_at_the_sample_limit_in_order() {
        let g = group(
            (0..5)
                .map(|i| named("a", &[], i as f64, i))
                .chain((0..2).map(|i| named("b", &[], i as f64, i)))
                .collect(),
        );
        let reqs = plan(&g, 3);
        let shape: Vec<Vec<(String, Vec<f64>)>> = reqs
            .iter()
            .map(|(parts, _)| {
                write_request(&g, parts, &[])
                    .timeseries
                    .iter()
                    .map(|t| {
                        (
                            t.labels[0].value.clone(),
                            t.samples.iter().map(|p| p.value).collect(),
                        )
                    })
                    .collect()
            })
            .collect();
        assert_eq!(
            shape,
            [
                vec![("a".to_string(), vec![0.0, 1.0, 2.0])],
                vec![
                    ("a".to_string(), vec![3.0, 4.0]),
                    ("b".to_string(), vec![0.0])
                ],
                vec![("b".to_string(), vec![1.0])],
            ]
        );
        assert_eq!(
            reqs.iter().map(|(_, n)| n).collect::<Vec<_>>(),
            [&3, &3, &1]
        );
    }

    #[test]
    fn the_hand_encoding_is_prosts_byte_for_byte() {
        let mut rng = fastrand::Rng::with_seed(7);
        for round in 0..200 {
            let n = rng.usize(1..40);
            let named: Vec<Named> = (0..n)
                .map(|_| {
                    let long = "x".repeat(rng.usize(0..300));
                    let value = match rng.u8(0..5) {
                        0 => 0.0,
                        1 => -0.0,
                        2 => f64::NAN,
                        3 => -1e300,
                        _ => rng.f64() * 1e6,
                    };
                    let ts = match rng.u8(0..4) {
                        0 => 0,
                        1 => -5,
                        _ => rng.i64(0..2_000_000_000),
                    };
                    named(
                        &format!("m{}", rng.u8(0..4)),
                        &[
                            ("k", if rng.bool() { "" } else { "v\u{e9}" }),
                            ("long", &long),
                        ],
                        value,
                        ts,
                    )
                })
                .collect();
            let g = group(named);
            let ext = vec![("job".to_string(), String::new())];
            for (parts, _) in plan(&g, rng.usize(1..10)) {
                let mut mine = Vec::new();
                encode_protobuf(&g, &parts, &ext, &mut mine);
                let theirs = prost::Message::encode_to_vec(&write_request(&g, &parts, &ext));
                assert_eq!(mine, theirs, "round {round}");
            }
        }
        assert_eq!(varint_len(0), 1);
        assert_eq!(varint_len(127), 1);
        assert_eq!(varint_len(128), 2);
        assert_eq!(varint_len(u64::MAX), 10);
    }

    #[test]
    fn unsent_parts_become_samples_that_name_the_same_series() {
        let g = group(vec![
            named("x_total", &[("k", "v")], 1.5, 7),
            named("x_total", &[("k", "v")], 2.5, 8),
        ]);
        let back = samples(&g, &[(0, 1..2)]);
        assert_eq!(back.len(), 1);
        assert_eq!((back[0].value, back[0].timestamp), (2.5, 8));
        let mut namer = crate::prometheus::naming::Namer::new(None);
        let again = group(back.into_iter().filter_map(|s| namer.name(s)).collect());
        assert_eq!(
            (&again[0].name, &again[0].labels),
            (&g[0].name, &g[0].labels)
        );
    }

    #[test]
    fn the_body_reads_back() {
        let g = group(vec![named("x_total", &[("k", "v\"\n")], -1.5, 7)]);
        let req = write_request(&g, &whole(&g), &[]);
        let mut raw = Vec::new();
        encode_protobuf(&g, &whole(&g), &[], &mut raw);
        let body = compress(&raw).expect("snappy");
        assert_eq!(decode(&body).expect("decode"), req);
        assert_eq!(encode(&req).expect("encode"), body);
        assert!(decode(b"garbage").is_err());
    }
}
