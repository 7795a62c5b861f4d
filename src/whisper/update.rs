//! Writing points: whisper's `update` and `update_many` with propagation to
//! the coarser archives, `merge`, and changing the aggregation settings.

use super::*;

impl Whisper {
    /// Whisper's propagation of the slot `interval` falls in from archive
    /// `higher` to `lower`; false when too few points are known.
    fn propagate(&self, interval: i64, higher: &ArchiveInfo, lower: &ArchiveInfo) -> Result<bool> {
        let lower_start = interval - interval.rem_euclid(lower.step());
        let hbase = self.base(higher)?;
        let first = if hbase == 0 {
            higher.offset()
        } else {
            Self::slot(higher, hbase, lower_start)
        };
        let count = (lower.seconds_per_point / higher.seconds_per_point) as u64;
        let series = self.read_ring(higher, first, count)?;
        let mut neighbors = Vec::with_capacity(count as usize);
        for (i, p) in series.chunks_exact(12).enumerate() {
            let (t, v) = point_at(p);
            neighbors.push((t as i64 == lower_start + i as i64 * higher.step()).then_some(v));
        }
        let known: Vec<f64> = neighbors.iter().flatten().copied().collect();
        if known.is_empty() {
            return Ok(false);
        }
        let xff = self.header.x_files_factor as f64;
        if (known.len() as f64 / neighbors.len() as f64) < xff {
            return Ok(false);
        }
        let value = self.header.aggregation.aggregate(&known, &neighbors);
        let lbase = self.base(lower)?;
        let at = if lbase == 0 {
            lower.offset()
        } else {
            Self::slot(lower, lbase, lower_start)
        };
        self.write_ring(lower, at, &pack_point(lower_start, value))?;
        Ok(true)
    }

    /// Whisper's `update`: one point; `timestamp` and `now` default to now.
    pub fn update(&self, value: f64, timestamp: Option<i64>, now: Option<i64>) -> Result<()> {
        let now = now.unwrap_or_else(unix_now);
        let ts = timestamp.unwrap_or(now);
        in_range(ts)?;
        let diff = now - ts;
        if !(diff >= 0 && diff < self.header.max_retention as i64) {
            return Err(WhisperError::TimestampNotCovered);
        }
        let archives = &self.header.archives;
        let Some(i) = archives.iter().position(|a| a.retention() as i64 >= diff) else {
            return Err(WhisperError::TimestampNotCovered);
        };
        let a = &archives[i];
        let interval = ts - ts.rem_euclid(a.step());
        let base = self.base(a)?;
        let at = if base == 0 {
            a.offset()
        } else {
            Self::slot(a, base, interval)
        };
        self.write_ring(a, at, &pack_point(interval, value))?;
        let mut higher = a;
        for lower in &archives[i + 1..] {
            if !self.propagate(interval, higher, lower)? {
                break;
            }
            higher = lower;
        }
        Ok(())
    }

    /// Whisper's `update_many`: points go to the finest archive that still
    /// covers their age, each archive written in runs of consecutive slots,
    /// then propagated once per affected coarser slot. Points older than the
    /// file's retention are dropped; of two points for the same second, the
    /// first given wins (as in whisper).
    pub fn update_many(&self, points: &[(i64, f64)], now: Option<i64>) -> Result<()> {
        if points.is_empty() {
            return Ok(());
        }
        let now = now.unwrap_or_else(unix_now);
        for p in points {
            in_range(p.0)?;
        }
        let mut pts = points.to_vec();
        pts.sort_by_key(|p| std::cmp::Reverse(p.0)); // newest first, stable
        let archives = &self.header.archives;
        let mut idx = 0;
        let mut current: Vec<(i64, f64)> = Vec::new();
        for p in pts {
            let age = now - p.0;
            while (archives[idx].retention() as i64) < age {
                if !current.is_empty() {
                    current.reverse();
                    self.archive_update_many(idx, &current)?;
                    current.clear();
                }
                idx += 1;
                if idx == archives.len() {
                    return Ok(());
                }
            }
            current.push(p);
        }
        if !current.is_empty() {
            current.reverse();
            self.archive_update_many(idx, &current)?;
        }
        Ok(())
    }

    fn archive_update_many(&self, idx: usize, points: &[(i64, f64)]) -> Result<()> {
        let a = &self.header.archives[idx];
        let step = a.step();
        let aligned: Vec<(i64, f64)> = points
            .iter()
            .map(|(t, v)| (t - t.rem_euclid(step), *v))
            .collect();
        // Runs of consecutive slots: (last interval, packed points). As in
        // whisper, a run's start is worked out from its last slot, and a
        // previous slot at 0 (whisper tests `not previousInterval`) does not
        // end a run.
        let mut runs: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut prev: Option<i64> = None;
        for i in 0..aligned.len() {
            if i + 1 < aligned.len() && aligned[i].0 == aligned[i + 1].0 {
                continue;
            }
            let (interval, value) = aligned[i];
            let extend = matches!(prev, None | Some(0)) || prev == Some(interval - step);
            match runs.last_mut() {
                Some((last, buf)) if extend => {
                    buf.extend_from_slice(&pack_point(interval, value));
                    *last = interval;
                }
                _ => runs.push((interval, pack_point(interval, value).to_vec())),
            }
            prev = Some(interval);
        }
        let start = |(last, buf): &(i64, Vec<u8>)| last - step * (buf.len() as i64 / 12 - 1);
        let mut base = self.base(a)?;
        if base == 0 {
            base = start(&runs[0]) as u32;
        }
        for run in &runs {
            let buf = &run.1;
            let at = Self::slot(a, base, start(run));
            self.write_ring(a, at, buf)?;
        }
        let mut higher = a;
        for lower in self
            .header
            .archives
            .iter()
            .filter(|l| l.seconds_per_point > a.seconds_per_point)
        {
            let intervals: Vec<i64> = aligned
                .iter()
                .map(|(t, _)| t - t.rem_euclid(lower.step()))
                .collect();
            // whisper walks a Python set of these: when the lower archive is
            // still empty, the first one to propagate fixes its base, so the
            // order is CPython's.
            let mut further = false;
            for interval in python_set_order(&intervals) {
                if self.propagate(interval, higher, lower)? {
                    further = true;
                }
            }
            if !further {
                break;
            }
            higher = lower;
        }
        Ok(())
    }

    /// Whisper's `merge`: copies the known points of `from` (between
    /// `time_from` and `time_to`, default: all) into this file, archive by
    /// archive. Both files need the same archives.
    pub fn merge_from(
        &self,
        from: &Whisper,
        time_from: Option<i64>,
        time_to: Option<i64>,
        now: Option<i64>,
    ) -> Result<()> {
        if from.header.archives != self.header.archives {
            return Err(WhisperError::InvalidConfiguration(format!(
                "{} and {} archive configurations are unalike. Resize the input before merging",
                from.path.display(),
                self.path.display()
            )));
        }
        let now = now.unwrap_or_else(unix_now);
        // Nothing is stored past now: a later end would only size a huge
        // empty series.
        let until = time_to.unwrap_or(now).min(now);
        let start = time_from.unwrap_or(0);
        if until < start {
            return Err(WhisperError::InvalidTimeInterval(
                "time_to must be >= time_from".into(),
            ));
        }
        for (idx, a) in from.header.archives.iter().enumerate() {
            let oldest = now - a.retention() as i64;
            if until < oldest {
                continue;
            }
            let s = from.archive_fetch(a, start.max(oldest), until)?;
            let points = s.known_points();
            if !points.is_empty() {
                self.archive_update_many(idx, &points)?;
            }
        }
        Ok(())
    }

    /// Sets the aggregation method and/or xFilesFactor; returns the old ones.
    pub fn set_aggregation(
        &mut self,
        aggregation: Option<Aggregation>,
        xff: Option<f64>,
    ) -> Result<(Aggregation, f32)> {
        let old = (self.header.aggregation, self.header.x_files_factor);
        let agg = aggregation.unwrap_or(old.0);
        let xff = match xff {
            Some(x) if !(0.0..=1.0).contains(&x) => {
                return Err(WhisperError::InvalidXFilesFactor(format!(
                    "Invalid xFilesFactor {x}, not between 0 and 1"
                )))
            }
            Some(x) => x as f32,
            None => old.1,
        };
        let mut meta = [0u8; 16];
        meta[0..4].copy_from_slice(&(agg as u32).to_be_bytes());
        meta[4..8].copy_from_slice(&self.header.max_retention.to_be_bytes());
        meta[8..12].copy_from_slice(&xff.to_be_bytes());
        meta[12..16].copy_from_slice(&(self.header.archives.len() as u32).to_be_bytes());
        self.write_at(&meta, 0)?;
        self.header.aggregation = agg;
        self.header.x_files_factor = xff;
        Ok(old)
    }
}
