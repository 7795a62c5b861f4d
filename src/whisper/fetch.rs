//! Reading points: whisper's `fetch`, the stored slots behind it, `diff` and
//! the dump of an archive.

use super::*;

/// What `diff` finds in one archive.
#[derive(Debug, Clone, PartialEq)]
pub struct ArchiveDiff {
    pub archive: usize,
    /// (timestamp, value in the first file, value in the second)
    pub diffs: Vec<(i64, Option<f64>, Option<f64>)>,
    /// How many points were compared.
    pub total: usize,
}

/// A fetched series: `values[i]` is the slot at `from + i * step`.
#[derive(Debug, Clone, PartialEq)]
pub struct Series {
    pub from: i64,
    pub until: i64,
    pub step: i64,
    pub values: Vec<Option<f64>>,
}

impl Series {
    /// The known points as (timestamp, value), in time order.
    pub fn known_points(&self) -> Vec<(i64, f64)> {
        self.values
            .iter()
            .enumerate()
            .filter_map(|(i, v)| v.map(|v| (self.from + i as i64 * self.step, v)))
            .collect()
    }
}

/// An archive's slots between two times as stored (`fetch_slots`):
/// `len` values from `from` on, each known only where its slot holds its
/// own timestamp.
pub struct Slots {
    pub from: i64,
    pub until: i64,
    pub step: i64,
    len: usize,
    /// The points are `raw[parts[0]]` then `raw[parts[1]]` (an archive's
    /// ring wraps at its end).
    raw: Vec<u8>,
    parts: [std::ops::Range<usize>; 2],
    /// Where in the file they lie: the first slot's offset and how many.
    ring: Option<(u64, u64)>,
}

impl Slots {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    fn points(&self) -> impl Iterator<Item = &[u8]> {
        let [a, b] = &self.parts;
        let part = |r: &std::ops::Range<usize>| self.raw.get(r.clone()).unwrap_or(&[]);
        part(a)
            .chunks_exact(POINT_SIZE as usize)
            .chain(part(b).chunks_exact(POINT_SIZE as usize))
    }

    /// The values, as `fetch` gives them.
    pub fn values(&self) -> impl ExactSizeIterator<Item = Option<f64>> + '_ {
        let (from, step) = (self.from, self.step);
        let mut points = self.points();
        (0..self.len).map(move |i| {
            let (t, v) = point_at(points.next()?);
            (t as i64 == from + i as i64 * step).then_some(v)
        })
    }

    /// Calls `f(i, value)` for each known value, in order: what `values`
    /// gives, without the unknown ones.
    #[inline]
    pub fn each_known(&self, mut f: impl FnMut(usize, f64)) {
        let (mut i, mut t) = (0, self.from);
        for part in &self.parts {
            let Some(raw) = self.raw.get(part.clone()) else {
                return;
            };
            for p in raw.chunks_exact(POINT_SIZE as usize) {
                if i >= self.len {
                    return;
                }
                let (ts, v) = point_at(p);
                if ts as i64 == t {
                    f(i, v);
                }
                i += 1;
                t += self.step;
            }
        }
    }

    /// Adds each known value into `acc` and counts it in `known` (slot
    /// `i` into index `i`, as far as both reach): `each_known` for sums,
    /// without a branch per point, so the loop runs at the speed of the
    /// memory. Adding 0.0 for an unknown slot leaves every sum as it was
    /// (a sum started at +0.0 is never -0.0).
    pub fn add_into(&self, acc: &mut [f64], known: &mut [u32]) {
        let (mut i, mut t) = (0usize, self.from);
        for part in &self.parts {
            let Some(raw) = self.raw.get(part.clone()) else {
                return;
            };
            let (points, _) = raw.as_chunks::<{ POINT_SIZE as usize }>();
            let n = points
                .len()
                .min(self.len.saturating_sub(i))
                .min(acc.len().saturating_sub(i))
                .min(known.len().saturating_sub(i));
            let (acc, known) = (&mut acc[i..i + n], &mut known[i..i + n]);
            for ((p, a), k) in points[..n].iter().zip(acc).zip(known) {
                let ts = u32::from_be_bytes([p[0], p[1], p[2], p[3]]);
                let v = f64::from_be_bytes([p[4], p[5], p[6], p[7], p[8], p[9], p[10], p[11]]);
                let hit = ts as i64 == t;
                *a += if hit { v } else { 0.0 };
                *k += hit as u32;
                t += self.step;
            }
            i += n;
        }
    }

    /// The buffer, for the next read.
    pub fn into_buffer(self) -> Vec<u8> {
        self.raw
    }
}

impl Whisper {
    /// Whisper's `fetch`: `((from, until, step), values)`, `None` when the
    /// range is entirely outside the file's retention. `archive` picks an
    /// archive by its seconds per point.
    pub fn fetch(
        &self,
        from: i64,
        until: Option<i64>,
        now: Option<i64>,
        archive: Option<u32>,
    ) -> Result<Option<Series>> {
        let now = now.unwrap_or_else(unix_now);
        let until = until.unwrap_or(now);
        let Some((a, from, until)) = self.choose(from, until, now, archive)? else {
            return Ok(None);
        };
        self.archive_fetch(&a, from, until).map(Some)
    }

    /// `fetch`'s range check and archive: the archive (the one of `archive`
    /// seconds per point, or the finest that reaches back to `from`) and
    /// the range clamped to what files hold; None when nothing is kept.
    fn choose(
        &self,
        from: i64,
        until: i64,
        now: i64,
        archive: Option<u32>,
    ) -> Result<Option<(ArchiveInfo, i64, i64)>> {
        if from > until {
            return Err(WhisperError::InvalidTimeInterval(format!(
                "Invalid time interval: from time '{from}' is after until time '{until}'"
            )));
        }
        let oldest = now - self.header.max_retention as i64;
        if from > now || until < oldest {
            return Ok(None);
        }
        let (from, until) = (from.max(oldest), until.min(now));
        let diff = now - from;
        let archives = &self.header.archives;
        let a = match archive {
            Some(spp) => archives
                .iter()
                .find(|a| a.seconds_per_point == spp)
                .ok_or_else(|| {
                    WhisperError::InvalidRetention(format!("Invalid granularity: {spp}"))
                })?,
            None => archives
                .iter()
                .find(|a| a.retention() as i64 >= diff)
                .unwrap_or(&archives[archives.len() - 1]),
        };
        Ok(Some((*a, from, until)))
    }

    /// What `fetch` reads (its archive chosen as `fetch` chooses it),
    /// left undecoded: in the file's copy when it was read whole
    /// (`open_whole`), else in `buf` (reused from the call before). For a
    /// reader that folds many files into one series without holding each
    /// one's values.
    pub fn fetch_slots(
        mut self,
        from: i64,
        until: i64,
        now: i64,
        buf: Vec<u8>,
    ) -> Result<Option<Slots>> {
        let Some((a, from, until)) = self.choose(from, until, now, None)? else {
            return Ok(None);
        };
        let mut slots = self.archive_slots(&a, from, until)?;
        match (self.whole.take(), slots.ring) {
            (Some(whole), Some((first, count))) => {
                let ring = a.offset() as usize..(a.offset() + a.size()) as usize;
                let (first, bytes) = (first as usize, (count * POINT_SIZE) as usize);
                let head = (ring.end - first).min(bytes);
                slots.parts = [first..first + head, ring.start..ring.start + bytes - head];
                slots.raw = whole;
            }
            (_, Some((first, count))) => {
                let mut buf = buf;
                buf.clear();
                buf.resize((count * POINT_SIZE) as usize, 0);
                self.read_ring_into(&a, first, &mut buf)?;
                slots.parts = [0..buf.len(), 0..0];
                slots.raw = buf;
            }
            (_, None) => slots.raw = buf,
        }
        Ok(Some(slots))
    }

    /// Reads one archive's slots between two times (whisper's `__archive_fetch`).
    pub fn archive_fetch(&self, a: &ArchiveInfo, from: i64, until: i64) -> Result<Series> {
        let mut slots = self.archive_slots(a, from, until)?;
        if let Some((first, count)) = slots.ring {
            slots.raw = self.read_ring(a, first, count)?;
            slots.parts = [0..slots.raw.len(), 0..0];
        }
        Ok(Series {
            from: slots.from,
            until: slots.until,
            step: slots.step,
            values: slots.values().collect(),
        })
    }

    /// `archive_fetch`'s times, and where its points lie (`ring`: the
    /// first slot's offset and how many), not read yet.
    fn archive_slots(&self, a: &ArchiveInfo, from: i64, until: i64) -> Result<Slots> {
        let step = a.step();
        let from_i = from - from.rem_euclid(step) + step;
        let mut until_i = until - until.rem_euclid(step) + step;
        if from_i == until_i {
            until_i += step;
        }
        // Never written: every slot unknown. Else as many as whisper reads.
        let mut len = ((until_i - from_i) / step).max(0) as usize;
        let mut ring = None;
        let base = self.base(a)?;
        if base != 0 {
            let first = Self::slot(a, base, from_i);
            let last = Self::slot(a, base, until_i);
            let count = if first < last {
                (last - first) / POINT_SIZE
            } else {
                (a.offset() + a.size() - first + last - a.offset()) / POINT_SIZE
            };
            len = count as usize;
            ring = Some((first, count));
        }
        Ok(Slots {
            from: from_i,
            until: until_i,
            step,
            len,
            raw: Vec::new(),
            parts: [0..0, 0..0],
            ring,
        })
    }

    /// Whisper's `diff`: per archive, the points where the two files differ
    /// (timestamp, this file's value, the other's) and how many were compared.
    pub fn diff(
        &self,
        other: &Whisper,
        ignore_empty: bool,
        until: Option<i64>,
        now: Option<i64>,
    ) -> Result<Vec<ArchiveDiff>> {
        if other.header.archives != self.header.archives {
            return Err(WhisperError::InvalidConfiguration(format!(
                "{} and {} archive configurations are unalike. Resize the input before diffing",
                self.path.display(),
                other.path.display()
            )));
        }
        let now = now.unwrap_or_else(unix_now);
        let mut until = until.filter(|u| *u != 0).unwrap_or(now).min(now);
        let mut out = Vec::new();
        for (n, a) in self.header.archives.iter().enumerate() {
            let start_time = now - a.retention() as i64;
            let x = self.archive_fetch(a, start_time, until)?;
            let y = other.archive_fetch(a, start_time, until)?;
            let (start, end, step) = (x.from.min(y.from), x.until.max(y.until), x.step.min(y.step));
            let count = ((end - start) / step).max(0) as usize;
            let points: Vec<(i64, Option<f64>, Option<f64>)> = (0..count)
                .map(|s| {
                    let v = |z: &Series| z.values.get(s).copied().flatten();
                    (start + s as i64 * step, v(&x), v(&y))
                })
                .filter(|(_, a, b)| {
                    if ignore_empty {
                        a.is_some() && b.is_some()
                    } else {
                        a.is_some() || b.is_some()
                    }
                })
                .collect();
            let total = points.len();
            let diffs = points
                .into_iter()
                .filter(|(_, a, b)| match (a, b) {
                    (Some(a), Some(b)) => !(a == b),
                    (a, b) => a.is_some() != b.is_some(),
                })
                .collect();
            out.push(ArchiveDiff {
                archive: n,
                diffs,
                total,
            });
            until = until.min(start_time);
        }
        Ok(out)
    }

    /// Every point of every archive, as stored: (slot, timestamp, value).
    pub fn dump_archive(&self, a: &ArchiveInfo) -> Result<Vec<(u32, f64)>> {
        let data = self.read_ring(a, a.offset(), a.points as u64)?;
        Ok(data.chunks_exact(12).map(point_at).collect())
    }
}
