//! Whisper: Graphite's fixed-size round-robin database format, byte for byte
//! as Graphite's `whisper` 1.1.10 writes it, and its operations.
//!
//! A file is a header — aggregation type, max retention, xFilesFactor (f32),
//! archive count, then per archive its offset, seconds per point and point
//! count, all big-endian — followed by each archive's points (u32 timestamp,
//! f64 value). A point's slot is found from the archive's first point (its
//! "base"), so an archive is a ring whose origin moves with the data.
//!
//! Every operation opens the file once and uses positioned reads and writes.
//! This module depends on nothing else of carbyne.

use std::path::{Path, PathBuf};

mod create;
mod fetch;
mod file;
mod format;
mod pyset;
pub mod tools;
mod update;

pub use create::{create, Allocation};
pub use fetch::{ArchiveDiff, Series, Slots};
pub use file::Whisper;
pub use format::{parse_retention_def, validate_archive_list, Aggregation, ArchiveInfo, Header};
pub use pyset::python_set_order;

const METADATA_SIZE: u64 = 16;
const ARCHIVE_INFO_SIZE: u64 = 12;
/// Bytes of one point: a u32 timestamp and an f64 value.
pub const POINT_SIZE: u64 = 12;

/// Why a whisper operation failed.
#[derive(Debug, thiserror::Error)]
pub enum WhisperError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    /// The file is not a whisper file, or is damaged.
    #[error("{what} ({})", path.display())]
    Corrupt { path: PathBuf, what: String },
    #[error("{0}")]
    InvalidConfiguration(String),
    #[error("{0}")]
    InvalidAggregationMethod(String),
    #[error("{0}")]
    InvalidXFilesFactor(String),
    #[error("{0}")]
    InvalidTimeInterval(String),
    #[error("Timestamp not covered by any archives in this database.")]
    TimestampNotCovered,
    /// Whisper keeps seconds in 32 bits: 1970 to 2106.
    #[error("Timestamp {0} is outside whisper's range (0 to 4294967295)")]
    TimestampOutOfRange(i64),
    #[error("{0}")]
    InvalidRetention(String),
}

pub type Result<T> = std::result::Result<T, WhisperError>;

pub(crate) fn io(path: &Path) -> impl Fn(std::io::Error) -> WhisperError + '_ {
    move |source| WhisperError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn corrupt(path: &Path, what: impl Into<String>) -> WhisperError {
    WhisperError::Corrupt {
        path: path.to_path_buf(),
        what: what.into(),
    }
}

fn be32(b: &[u8]) -> u32 {
    u32::from_be_bytes([b[0], b[1], b[2], b[3]])
}

fn point_at(b: &[u8]) -> (u32, f64) {
    let mut v = [0u8; 8];
    v.copy_from_slice(&b[4..12]);
    (be32(b), f64::from_be_bytes(v))
}

/// A timestamp whisper can store, or the error saying it cannot.
fn in_range(ts: i64) -> Result<()> {
    if u32::try_from(ts).is_ok() {
        Ok(())
    } else {
        Err(WhisperError::TimestampOutOfRange(ts))
    }
}

fn pack_point(ts: i64, v: f64) -> [u8; 12] {
    let mut out = [0u8; 12];
    out[..4].copy_from_slice(&(ts as u32).to_be_bytes());
    out[4..].copy_from_slice(&v.to_be_bytes());
    out
}

pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retention_definitions() {
        assert_eq!(parse_retention_def("60:1440").expect("def"), (60, 1440));
        assert_eq!(parse_retention_def("10s:6h").expect("def"), (10, 2160));
        assert_eq!(parse_retention_def("1m:7d").expect("def"), (60, 10080));
        assert_eq!(parse_retention_def("1min:1y").expect("def"), (60, 525_600));
        assert_eq!(parse_retention_def("5h:2w").expect("def"), (18000, 67));
        assert!(parse_retention_def("60").is_err());
        assert!(parse_retention_def("1x:10").is_err());
        assert!(parse_retention_def("1m:10q").is_err());
    }

    #[test]
    fn archive_rules() {
        let mut ok = vec![(60, 1440), (10, 360)];
        validate_archive_list(&mut ok).expect("valid");
        assert_eq!(ok, vec![(10, 360), (60, 1440)]);
        for bad in [
            vec![],
            vec![(10, 10), (10, 20)],
            vec![(10, 60), (15, 100)],
            vec![(10, 60), (60, 10)],
            vec![(10, 5), (60, 100)],
        ] {
            let mut b = bad.clone();
            assert!(validate_archive_list(&mut b).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn set_order_like_cpython() {
        // Orders printed by CPython 3.11 for list(set([...])).
        assert_eq!(python_set_order(&[3, 1, 2]), vec![1, 2, 3]);
        assert_eq!(python_set_order(&[10, 2, 18, 2]), vec![18, 10, 2]);
        assert_eq!(
            python_set_order(&[1_700_000_040, 1_700_000_000, 1_700_000_020, 1_700_000_060]),
            vec![1_700_000_040, 1_700_000_000, 1_700_000_020, 1_700_000_060]
        );
    }

    #[test]
    fn aggregation_like_python() {
        let n = |v: &[f64]| v.iter().map(|x| Some(*x)).collect::<Vec<_>>();
        assert_eq!(
            Aggregation::Average.aggregate(&[1.0, 2.0], &n(&[1.0, 2.0])),
            1.5
        );
        assert_eq!(
            Aggregation::AbsMax.aggregate(&[-3.0, 3.0], &n(&[-3.0, 3.0])),
            -3.0
        );
        assert_eq!(
            Aggregation::AbsMin.aggregate(&[2.0, -1.0, 1.0], &n(&[2.0, -1.0, 1.0])),
            -1.0
        );
        assert!(Aggregation::Max
            .aggregate(&[0.0, -0.0], &n(&[0.0, -0.0]))
            .is_sign_positive());
        assert!(Aggregation::Sum
            .aggregate(&[-0.0], &n(&[-0.0]))
            .is_sign_positive());
        assert_eq!(
            Aggregation::AvgZero.aggregate(&[4.0], &[Some(4.0), None]),
            2.0
        );
        assert_eq!(
            Aggregation::Last.aggregate(&[1.0, 9.0], &n(&[1.0, 9.0])),
            9.0
        );
    }

    /// `fetch_slots` decodes to what `fetch` gives, read whole or not,
    /// over a wrapped ring, a range in the second archive, and a file
    /// never written.
    #[test]
    fn slots_are_what_fetch_gives() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("a.wsp");
        let now = 1_800_000_000;
        create(
            &p,
            &[(60, 100), (600, 100)],
            0.0,
            Aggregation::Sum,
            Allocation::Sparse,
        )
        .expect("create");
        let w = Whisper::open(&p, true).expect("open");
        for i in (0..250).filter(|i| i % 5 != 2) {
            w.update(
                i as f64,
                Some(now - 15_000 + 60 * i),
                Some(now - 15_000 + 60 * i),
            )
            .expect("update");
        }
        let empty = d.path().join("e.wsp");
        create(
            &empty,
            &[(60, 100)],
            0.0,
            Aggregation::Sum,
            Allocation::Sparse,
        )
        .expect("create");
        for (file, from) in [
            (&p, 5_000),
            (&p, 1_234),
            (&p, 60),
            (&p, 40_000),
            (&empty, 3_000),
        ] {
            let want = Whisper::open(file, false)
                .expect("open")
                .fetch(now - from, Some(now), Some(now), None)
                .expect("fetch")
                .expect("in range");
            for whole in [0, 1 << 20] {
                let slots = Whisper::open_whole(file, whole)
                    .expect("open")
                    .fetch_slots(now - from, now, now, vec![7; 3])
                    .expect("slots")
                    .expect("in range");
                assert_eq!(
                    (slots.from, slots.until, slots.step),
                    (want.from, want.until, want.step)
                );
                let values: Vec<Option<f64>> = slots.values().collect();
                assert_eq!(values, want.values, "{file:?} -{from}s whole {whole}");
                let mut known = vec![None; slots.len()];
                slots.each_known(|i, v| known[i] = Some(v));
                assert_eq!(known, want.values);
                // Added onto 1.0 each: the known values plus one, counted.
                let (mut acc, mut count) = (vec![1.0; slots.len()], vec![0u32; slots.len()]);
                slots.add_into(&mut acc, &mut count);
                let sums: Vec<Option<f64>> = acc
                    .iter()
                    .zip(&count)
                    .map(|(a, c)| (*c == 1).then_some(a - 1.0))
                    .collect();
                assert_eq!(sums, want.values);
                assert!(count.iter().all(|c| *c <= 1));
            }
        }
        assert!(want_known(&p, now));
    }

    /// Some of what the test above compares is known (not all gaps).
    fn want_known(p: &Path, now: i64) -> bool {
        let got = Whisper::open(p, false)
            .expect("open")
            .fetch(now - 1_234, Some(now), Some(now), None)
            .expect("fetch")
            .expect("in range");
        got.values.iter().any(Option::is_some) && got.values.iter().any(Option::is_none)
    }

    fn bad_file(bytes: &[u8]) -> (String, bool) {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("bad.wsp");
        std::fs::write(&p, bytes).expect("write");
        let e = match Whisper::open(&p, true) {
            Ok(w) => match w.update(1.0, Some(1_700_000_000), Some(1_700_000_000)) {
                Ok(()) => return (String::new(), true),
                Err(e) => e.to_string(),
            },
            Err(e) => e.to_string(),
        };
        let untouched = std::fs::read(&p).expect("read") == bytes;
        assert!(e.contains("bad.wsp"), "the error names the file: {e}");
        (e, untouched)
    }

    fn header(agg: u32, count: u32, archives: &[(u32, u32, u32)]) -> Vec<u8> {
        let mut b = Vec::new();
        for v in [agg, 60, 0.5f32.to_bits(), count] {
            b.extend_from_slice(&v.to_be_bytes());
        }
        for (o, s, p) in archives {
            for v in [o, s, p] {
                b.extend_from_slice(&v.to_be_bytes());
            }
        }
        b
    }

    #[test]
    fn bad_files_are_named_and_never_written() {
        let cases: Vec<(&str, Vec<u8>)> = vec![
            (
                "not whisper",
                b"hello, this is not a whisper file at all".to_vec(),
            ),
            ("truncated header", vec![0, 0, 0, 1, 0, 0]),
            ("zero archives", header(1, 0, &[])),
            ("table past the end", header(1, 1000, &[(28, 60, 1)])),
            ("unknown aggregation", header(99, 1, &[(28, 60, 1)])),
            ("points overflow", {
                let mut b = header(1, 1, &[(28, 60, u32::MAX)]);
                b.extend_from_slice(&[0; 24]);
                b
            }),
            ("archive past the end", {
                let mut b = header(1, 1, &[(28, 60, 10)]);
                b.extend_from_slice(&[0; 12]);
                b
            }),
        ];
        for (what, bytes) in cases {
            let (e, untouched) = bad_file(&bytes);
            assert!(!e.is_empty(), "{what}: accepted");
            assert!(untouched, "{what}: the file was written");
        }
    }

    /// Random damage to a valid file's header: an error or a success, never
    /// a panic or an out-of-bounds write.
    #[test]
    fn damaged_headers_never_panic() {
        let d = tempfile::tempdir().expect("tempdir");
        let good = d.path().join("good.wsp");
        create(
            &good,
            &[(1, 20), (10, 12)],
            0.5,
            Aggregation::Average,
            Allocation::Zeroed,
        )
        .expect("create");
        let bytes = std::fs::read(&good).expect("read");
        let mut rng = fastrand::Rng::with_seed(7);
        let p = d.path().join("fuzz.wsp");
        for _ in 0..3000 {
            let mut b = bytes.clone();
            for _ in 0..rng.usize(1..6) {
                let i = rng.usize(..40);
                b[i] = rng.u8(..);
            }
            if rng.bool() {
                b.truncate(rng.usize(..b.len()));
            }
            std::fs::write(&p, &b).expect("write");
            let len = b.len() as u64;
            if let Ok(w) = Whisper::open(&p, true) {
                let now = 1_700_000_000;
                let _ = w.update_many(&[(now - 5, 1.0), (now - 50, 2.0)], Some(now));
                let _ = w.fetch(now - 100, Some(now), Some(now), None);
                assert_eq!(
                    std::fs::metadata(&p).expect("meta").len(),
                    len,
                    "never grows the file"
                );
            }
        }
    }

    /// The case the seeded damage test found: an archive table whose
    /// consolidation would read billions of slots is refused, not allocated.
    #[test]
    fn regression_huge_consolidation_is_refused() {
        let mut b = header(1, 2, &[(40, 1, 20), (280, 3_000_000_000, 1)]);
        b.extend_from_slice(&[0; 21 * 12]);
        let (e, untouched) = bad_file(&b);
        assert!(e.contains("Invalid archive layout"), "{e}");
        assert!(untouched);
    }

    proptest::proptest! {
        /// Any bytes at all: opening, updating and fetching give a result or
        /// an error, never a panic, and never grow the file.
        #[test]
        fn any_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..400)) {
            let d = tempfile::tempdir().expect("tempdir");
            let p = d.path().join("p.wsp");
            std::fs::write(&p, &bytes).expect("write");
            if let Ok(w) = Whisper::open(&p, true) {
                let now = 1_700_000_000;
                let _ = w.update(1.0, Some(now - 1), Some(now));
                let _ = w.update_many(&[(now - 3, 2.0), (now - 30, 3.0)], Some(now));
                let _ = w.fetch(now - 1000, Some(now), Some(now), None);
                proptest::prop_assert_eq!(std::fs::metadata(&p).expect("meta").len(), bytes.len() as u64);
            }
        }

        /// Valid headers with random archive tables: the same.
        #[test]
        fn random_archive_tables_never_panic(
            table in proptest::collection::vec((0u32..2000, 0u32..100_000, 0u32..50), 1..5),
            agg in 0u32..10,
        ) {
            let mut b = header(agg, table.len() as u32, &table);
            b.extend_from_slice(&vec![0u8; 600]);
            let d = tempfile::tempdir().expect("tempdir");
            let p = d.path().join("t.wsp");
            std::fs::write(&p, &b).expect("write");
            if let Ok(w) = Whisper::open(&p, true) {
                let now = 1_700_000_000;
                let _ = w.update_many(&[(now - 3, 2.0), (now - 300, 3.0)], Some(now));
                let _ = w.fetch(now - 100_000, Some(now), Some(now), None);
                proptest::prop_assert_eq!(std::fs::metadata(&p).expect("meta").len(), b.len() as u64);
            }
        }
    }

    #[test]
    fn sparse_and_fallocated_files_read_the_same() {
        let d = tempfile::tempdir().expect("tempdir");
        let mut sizes = Vec::new();
        for (n, alloc) in [
            Allocation::Zeroed,
            Allocation::Sparse,
            Allocation::Fallocate,
        ]
        .into_iter()
        .enumerate()
        {
            let p = d.path().join(format!("{n}.wsp"));
            create(&p, &[(60, 100), (600, 100)], 0.5, Aggregation::Sum, alloc).expect("create");
            sizes.push(std::fs::read(&p).expect("read"));
        }
        assert_eq!(sizes[0], sizes[1]);
        assert_eq!(sizes[0], sizes[2]);
    }

    #[test]
    fn create_update_fetch_round_trip() {
        let d = tempfile::tempdir().expect("tempdir");
        let p = d.path().join("a.wsp");
        create(
            &p,
            &[(60, 10), (300, 12)],
            0.5,
            Aggregation::Average,
            Allocation::Zeroed,
        )
        .expect("create");
        assert_eq!(
            std::fs::metadata(&p).expect("meta").len(),
            16 + 24 + 22 * 12
        );
        let w = Whisper::open(&p, true).expect("open");
        let now = 1_700_000_000;
        for i in 0..10 {
            w.update(i as f64, Some(now - 600 + i * 60), Some(now))
                .expect("update");
        }
        let s = w
            .fetch(now - 600, Some(now), Some(now), None)
            .expect("fetch")
            .expect("series");
        assert_eq!(s.step, 60);
        // whisper's from is exclusive: the first slot is not returned.
        assert_eq!(s.values.iter().flatten().count(), 9);
        assert!(
            create(
                &p,
                &[(60, 10)],
                0.5,
                Aggregation::Average,
                Allocation::Zeroed
            )
            .is_err(),
            "no overwrite"
        );
        assert!(matches!(
            w.update(1.0, Some(now + 10), Some(now)),
            Err(WhisperError::TimestampNotCovered)
        ));
    }
}
