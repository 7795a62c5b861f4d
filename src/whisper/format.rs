//! The header's parts (aggregation method, archive entries) and whisper's
//! retention definitions and archive rules.

use super::*;

/// How points are combined when they propagate to a coarser archive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aggregation {
    Average = 1,
    Sum = 2,
    Last = 3,
    Max = 4,
    Min = 5,
    AvgZero = 6,
    AbsMax = 7,
    AbsMin = 8,
}

impl Aggregation {
    pub const ALL: [Aggregation; 8] = [
        Aggregation::Average,
        Aggregation::Sum,
        Aggregation::Last,
        Aggregation::Max,
        Aggregation::Min,
        Aggregation::AvgZero,
        Aggregation::AbsMax,
        Aggregation::AbsMin,
    ];

    pub fn from_type(t: u32) -> Option<Self> {
        Self::ALL.into_iter().find(|a| *a as u32 == t)
    }

    pub fn name(self) -> &'static str {
        match self {
            Aggregation::Average => "average",
            Aggregation::Sum => "sum",
            Aggregation::Last => "last",
            Aggregation::Max => "max",
            Aggregation::Min => "min",
            Aggregation::AvgZero => "avg_zero",
            Aggregation::AbsMax => "absmax",
            Aggregation::AbsMin => "absmin",
        }
    }

    pub fn from_name(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|a| a.name() == s)
            .ok_or_else(|| {
                WhisperError::InvalidAggregationMethod(format!(
                    "Unrecognized aggregation method: {s}"
                ))
            })
    }

    /// Combines the known values of a slot (and, for avg_zero, all of them,
    /// unknown as 0), with Python's semantics: ties and signed zeros keep
    /// the first value, sums start from +0.
    pub fn aggregate(self, known: &[f64], neighbors: &[Option<f64>]) -> f64 {
        let sum = |v: &mut dyn Iterator<Item = f64>| v.fold(0.0f64, |a, b| a + b);
        let pick = |better: &dyn Fn(f64, f64) -> bool| {
            known[1..]
                .iter()
                .fold(known[0], |cur, &v| if better(v, cur) { v } else { cur })
        };
        match self {
            Aggregation::Average => sum(&mut known.iter().copied()) / known.len() as f64,
            Aggregation::Sum => sum(&mut known.iter().copied()),
            Aggregation::Last => known[known.len() - 1],
            Aggregation::Max => pick(&|v, cur| v > cur),
            Aggregation::Min => pick(&|v, cur| v < cur),
            Aggregation::AvgZero => {
                sum(&mut neighbors.iter().map(|v| v.unwrap_or(0.0))) / neighbors.len() as f64
            }
            Aggregation::AbsMax => pick(&|v, cur| v.abs() > cur.abs()),
            Aggregation::AbsMin => pick(&|v, cur| v.abs() < cur.abs()),
        }
    }
}

/// One archive's entry in the header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ArchiveInfo {
    pub offset: u32,
    pub seconds_per_point: u32,
    pub points: u32,
}

impl ArchiveInfo {
    pub fn retention(&self) -> u64 {
        self.seconds_per_point as u64 * self.points as u64
    }

    pub fn size(&self) -> u64 {
        self.points as u64 * POINT_SIZE
    }

    pub(super) fn offset(&self) -> u64 {
        self.offset as u64
    }

    pub(super) fn step(&self) -> i64 {
        self.seconds_per_point as i64
    }
}

/// A whisper file's header.
#[derive(Debug, Clone, PartialEq)]
pub struct Header {
    pub aggregation: Aggregation,
    pub max_retention: u32,
    pub x_files_factor: f32,
    pub archives: Vec<ArchiveInfo>,
}

/// Parses whisper's retention definitions, `60:1440` or `10s:6h`: precision
/// and points, each a number or a number with a unit matched by prefix
/// (s, min, h, d, w, y and their longer forms).
pub fn parse_retention_def(def: &str) -> Result<(u32, u32)> {
    let bad = || WhisperError::InvalidRetention(format!("Invalid retention definition '{def}'"));
    let (precision, points) = def.trim().split_once(':').ok_or_else(bad)?;
    let unit = |s: &str| -> Option<u64> {
        ["seconds", "minutes", "hours", "days", "weeks", "years"]
            .iter()
            .zip([1u64, 60, 3600, 86_400, 604_800, 31_536_000])
            .find(|(name, _)| name.starts_with(s))
            .map(|(_, m)| m)
    };
    fn split(s: &str) -> Option<(u64, &str)> {
        let digits = s.bytes().take_while(u8::is_ascii_digit).count();
        let (n, rest) = s.split_at(digits);
        if n.is_empty() || !rest.bytes().all(|b| b.is_ascii_lowercase()) {
            return None;
        }
        Some((n.parse().ok()?, rest))
    }
    let (n, u) = split(precision).ok_or_else(|| {
        WhisperError::InvalidRetention(format!("Invalid precision specification '{precision}'"))
    })?;
    let precision = if u.is_empty() {
        n
    } else {
        n * unit(u).ok_or_else(|| WhisperError::InvalidRetention(format!("Invalid unit '{u}'")))?
    };
    let (n, u) = split(points).ok_or_else(|| {
        WhisperError::InvalidRetention(format!("Invalid retention specification '{points}'"))
    })?;
    let points = if u.is_empty() {
        n
    } else {
        let secs = n * unit(u)
            .ok_or_else(|| WhisperError::InvalidRetention(format!("Invalid unit '{u}'")))?;
        secs.checked_div(precision).ok_or_else(bad)?
    };
    Ok((
        u32::try_from(precision).map_err(|_| bad())?,
        u32::try_from(points).map_err(|_| bad())?,
    ))
}

/// Sorts an archive list by precision and checks whisper's rules.
pub fn validate_archive_list(archives: &mut [(u32, u32)]) -> Result<()> {
    let bad = |m: String| WhisperError::InvalidConfiguration(m);
    if archives.is_empty() {
        return Err(bad(
            "You must specify at least one archive configuration!".into()
        ));
    }
    archives.sort_by_key(|a| a.0);
    if archives.iter().any(|a| a.0 == 0 || a.1 == 0) {
        return Err(bad("An archive needs a precision and points above 0".into()));
    }
    for i in 0..archives.len() - 1 {
        let (a, n) = (archives[i], archives[i + 1]);
        if a.0 >= n.0 {
            return Err(bad(format!(
                "A Whisper database may not be configured having two archives with the same precision (archive{i}: {a:?}, archive{}: {n:?})",
                i + 1
            )));
        }
        if n.0 % a.0 != 0 {
            return Err(bad(format!(
                "Higher precision archives' precision must evenly divide all lower precision archives' precision (archive{i}: {}, archive{}: {})",
                a.0,
                i + 1,
                n.0
            )));
        }
        let (r, nr) = (a.0 as u64 * a.1 as u64, n.0 as u64 * n.1 as u64);
        if nr <= r {
            return Err(bad(format!(
                "Lower precision archives must cover larger time intervals than higher precision archives (archive{i}: {r} seconds, archive{}: {nr} seconds)",
                i + 1
            )));
        }
        let per = n.0 / a.0;
        if a.1 < per {
            return Err(bad(format!(
                "Each archive must have at least enough points to consolidate to the next archive (archive{} consolidates {per} of archive{i}'s points but it has only {} total points)",
                i + 1,
                a.1
            )));
        }
    }
    let total: u64 = METADATA_SIZE
        + ARCHIVE_INFO_SIZE * archives.len() as u64
        + archives
            .iter()
            .map(|a| a.1 as u64 * POINT_SIZE)
            .sum::<u64>();
    if total > u32::MAX as u64 {
        return Err(bad(
            "The archives would make a file larger than 4 GiB".into()
        ));
    }
    Ok(())
}
