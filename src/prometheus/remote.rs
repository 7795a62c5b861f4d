//! Prometheus remote_write 1.0's body: a protobuf `WriteRequest`
//! (prost's derive, no protoc), snappy block compressed. Each series'
//! labels are `__name__` first, then the others sorted by name; the
//! external labels join those a series does not have; a series' samples
//! are in time order.

use super::naming::Named;
use std::collections::HashMap;
use std::hash::BuildHasher;

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

/// A series with the hash of its labels (which shard sends it).
#[derive(Debug, Clone, PartialEq)]
pub struct Grouped {
    pub hash: u64,
    pub series: TimeSeries,
}

fn label_hash(labels: &[Label]) -> u64 {
    foldhash::fast::FixedState::with_seed(0x5eed).hash_one(labels)
}

/// Groups named samples into series: labels in remote_write's order, with
/// `external` (sorted, valid) added where a series has no label of that
/// name, samples in time order.
pub fn group(named: Vec<Named>, external: &[(String, String)]) -> Vec<Grouped> {
    let mut out: Vec<Grouped> = Vec::new();
    let mut index: HashMap<u64, Vec<usize>> = HashMap::new();
    for n in named {
        let mut labels = Vec::with_capacity(n.labels.len() + external.len() + 1);
        labels.push(Label {
            name: "__name__".into(),
            value: n.name,
        });
        // Both lists are sorted: merge them, the series' own label winning.
        let mut ext = external.iter().peekable();
        for (k, v) in n.labels {
            while let Some((ek, ev)) = ext.next_if(|(ek, _)| *ek < k) {
                labels.push(Label {
                    name: ek.clone(),
                    value: ev.clone(),
                });
            }
            if ext.peek().is_some_and(|(ek, _)| *ek == k) {
                ext.next();
            }
            labels.push(Label { name: k, value: v });
        }
        labels.extend(ext.map(|(k, v)| Label {
            name: k.clone(),
            value: v.clone(),
        }));
        let point = Point {
            value: n.value,
            timestamp: n.timestamp.saturating_mul(1000),
        };
        let hash = label_hash(&labels);
        let slot = index.entry(hash).or_default();
        match slot.iter().find(|&&i| out[i].series.labels == labels) {
            Some(&i) => out[i].series.samples.push(point),
            None => {
                slot.push(out.len());
                out.push(Grouped {
                    hash,
                    series: TimeSeries {
                        labels,
                        samples: vec![point],
                    },
                });
            }
        }
    }
    for g in &mut out {
        if g.series.samples.len() > 1 {
            g.series.samples.sort_by_key(|p| p.timestamp);
        }
    }
    out
}

/// Requests of at most `max_samples` samples each, in order: a series
/// longer than that is split, its earlier samples first.
pub fn requests(series: Vec<TimeSeries>, max_samples: usize) -> Vec<(WriteRequest, usize)> {
    let max = max_samples.max(1);
    let mut out = Vec::new();
    let mut cur = WriteRequest::default();
    let mut n = 0;
    for mut ts in series {
        while !ts.samples.is_empty() {
            let room = max - n;
            let take = ts.samples.len().min(room);
            let rest = ts.samples.split_off(take);
            cur.timeseries.push(TimeSeries {
                labels: ts.labels.clone(),
                samples: std::mem::replace(&mut ts.samples, rest),
            });
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

/// The request's body: protobuf, then snappy's block format.
pub fn encode(req: &WriteRequest) -> Result<Vec<u8>, snap::Error> {
    let raw = prost::Message::encode_to_vec(req);
    snap::raw::Encoder::new().compress_vec(&raw)
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
            name: name.into(),
            kind: Kind::Gauge,
            help: String::new(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
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

    #[test]
    fn series_grouped_name_first_external_labels_merged_time_ordered() {
        let ext = vec![
            ("a".to_string(), "ext".to_string()),
            ("instance".to_string(), "web01".to_string()),
            ("z".to_string(), "last".to_string()),
        ];
        let g = group(
            vec![
                named("m", &[("cpu", "0"), ("instance", "own")], 2.0, 20),
                named("m", &[("cpu", "1")], 5.0, 10),
                named("m", &[("cpu", "0"), ("instance", "own")], 1.0, 10),
            ],
            &ext,
        );
        assert_eq!(g.len(), 2);
        assert_eq!(
            names(&g[0].series),
            [
                ("__name__", "m"),
                ("a", "ext"),
                ("cpu", "0"),
                ("instance", "own"),
                ("z", "last")
            ]
        );
        assert_eq!(
            g[0].series.samples,
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
        assert_eq!(names(&g[1].series)[3], ("instance", "web01"));
        assert_ne!(g[0].hash, g[1].hash);
    }

    #[test]
    fn requests_split_at_the_sample_limit_in_order() {
        let g = group(
            (0..5)
                .map(|i| named("a", &[], i as f64, i))
                .chain((0..2).map(|i| named("b", &[], i as f64, i)))
                .collect(),
            &[],
        );
        let reqs = requests(g.into_iter().map(|g| g.series).collect(), 3);
        let shape: Vec<Vec<(String, Vec<f64>)>> = reqs
            .iter()
            .map(|(r, _)| {
                r.timeseries
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
    fn the_body_reads_back() {
        let req = WriteRequest {
            timeseries: group(vec![named("x_total", &[("k", "v\"\n")], -1.5, 7)], &[])
                .into_iter()
                .map(|g| g.series)
                .collect(),
        };
        let body = encode(&req).expect("encode");
        assert_eq!(decode(&body).expect("decode"), req);
        // Protobuf field 1 (timeseries), length-delimited, after snappy's
        // length preamble: not the raw protobuf.
        assert_ne!(body, prost::Message::encode_to_vec(&req));
        assert!(decode(b"garbage").is_err());
    }
}
