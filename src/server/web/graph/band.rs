//! One band of image rows being painted: the cells that the rows of a
//! layer's edges add their signed areas into, which cells were written,
//! and the painting of their running sums through the layer's ink.
//!
//! Each edge adds, per row it crosses, the signed area to its right into
//! the row's cells; a running sum along the row then gives each pixel's
//! winding-weighted coverage, taken as `min(|sum|, 1)` (nonzero).

use super::coverage::{Edge, Region};
use super::pixel::Ink;

/// Rows summed and painted together.
pub const BAND: usize = 16;

/// The buffers of one band, kept from one layer, band and graph to the next.
#[derive(Default)]
pub struct Band {
    /// BAND rows of cells; zeroed again as they are summed.
    acc: Vec<f32>,
    /// Per band row, which cells were written (a bit each): between two of
    /// them the coverage does not change, so only they are visited.
    touched: Vec<u64>,
}

impl Band {
    /// The band's cells laid out for a region `w` pixels wide.
    pub fn cells(&mut self, w: usize) -> Cells<'_> {
        // Two cells beyond the last column: the last column's edge pieces
        // give their right-hand share to the first, and what lies right of
        // the region adds to (and cancels in) cells nobody paints.
        let stride = w + 2;
        let words = stride.div_ceil(64);
        if self.acc.len() < stride * BAND {
            self.acc.resize(stride * BAND, 0.0);
        }
        if self.touched.len() < words * BAND {
            self.touched.resize(words * BAND, 0);
        }
        Cells {
            acc: &mut self.acc[..stride * BAND],
            touched: &mut self.touched[..words * BAND],
            stride,
            words,
        }
    }

    /// The buffers' size, for the caller's bound on what it keeps.
    pub fn bytes(&self) -> usize {
        self.acc.capacity() * 4 + self.touched.capacity() * 8
    }

    /// Whether every cell and bit is zero, as painting leaves them.
    #[cfg(test)]
    pub fn is_clear(&self) -> bool {
        self.acc.iter().all(|v| *v == 0.0) && self.touched.iter().all(|v| *v == 0)
    }
}

/// A band's cells for one region: `stride` cells and `words` bits' words
/// per band row. (Slices, not the buffers: the hot loops then keep their
/// addresses in registers.)
pub struct Cells<'a> {
    acc: &'a mut [f32],
    touched: &'a mut [u64],
    stride: usize,
    words: usize,
}

impl Cells<'_> {
    /// The rows `from..to` (region rows) of an edge into the band starting
    /// at row `band`, in a region `w` pixels wide.
    pub fn rows(&mut self, e: Edge, band: usize, from: usize, to: usize, w: f64) {
        if from >= to {
            return;
        }
        let (x0, y0, x1, y1, _) = e;
        let dxdy = (x1 - x0) / (y1 - y0);
        if x0.min(x1) >= 0.0 && x0.max(x1) <= w {
            // Inside the region's columns (nearly every edge): no clamping.
            // (Rounding may put a point an ulp left of the first column,
            // which counts as in it, or right of the last, into the spare
            // cells.)
            self.walk(e, band, from, to, |y| x0 + (y - y0) * dxdy);
        } else {
            // Left of the region counts as its first column's left edge,
            // right of it as the spare cells beyond the last column.
            self.walk(e, band, from, to, |y| (x0 + (y - y0) * dxdy).clamp(0.0, w));
        }
    }

    /// The rows `from..to` (region rows) of edge `e` into the band starting
    /// at row `band`, the edge's x at a height given by `x_at`.
    #[inline]
    fn walk(&mut self, e: Edge, band: usize, from: usize, to: usize, x_at: impl Fn(f64) -> f64) {
        let (_, y0, _, y1, dir) = e;
        let (acc, touched) = (&mut *self.acc, &mut *self.touched);
        // Each row's first cell and bit, counted from the band's.
        let step = (self.stride, self.words * 64);
        let (mut cell, mut bit) = ((from - band) * step.0, (from - band) * step.1);
        // A row the edge crosses only in part (its first and last): its
        // piece is as high as the part.
        let part = |acc: &mut [f32], touched: &mut [u64], row: usize, at: (usize, usize)| {
            let line = f64::from(row as i32);
            let (top, bottom) = (line.max(y0), (line + 1.0).min(y1));
            if bottom > top {
                let d = (bottom - top) as f32 * dir;
                piece(acc, touched, at, x_at(top), x_at(bottom), d);
            }
        };
        // The rows crossed from top to bottom, where the piece is as high
        // as the row (most of them). (Rows are counted in i32 for the
        // conversions: see `piece`.)
        let full_from = ceil_i32(y0).clamp(from as i32, to as i32) as usize;
        let full_to = floor_i32(y1).clamp(full_from as i32, to as i32) as usize;
        for row in from..full_from {
            part(acc, touched, row, (cell, bit));
            cell += step.0;
            bit += step.1;
        }
        let mut line = f64::from(full_from as i32);
        let mut xa = x_at(line);
        for _ in full_from..full_to {
            line += 1.0;
            let xb = x_at(line);
            piece(acc, touched, (cell, bit), xa, xb, dir);
            xa = xb;
            cell += step.0;
            bit += step.1;
        }
        for row in full_to..to {
            part(acc, touched, row, (cell, bit));
            cell += step.0;
            bit += step.1;
        }
    }

    /// Paints the band's rows `band..end` (region rows) of region `r` onto
    /// premultiplied RGBA8 `data` of an image `width` pixels wide, and
    /// zeroes them.
    pub fn paint(
        &mut self,
        r: &Region,
        band: usize,
        end: usize,
        data: &mut [u8],
        width: u32,
        ink: &Ink,
    ) {
        let rows = (r.y1 - r.y0) as usize;
        let w = (r.x1 - r.x0) as usize;
        for row in band..end {
            let mut row_part = 1.0;
            if row == 0 {
                row_part *= r.edge[2];
            }
            if row + 1 == rows {
                row_part *= r.edge[3];
            }
            // No partial pixels along the row (nearly always): every
            // column's coverage is the running sum's.
            let plain = row_part == 1.0 && r.edge[0] == 1.0 && r.edge[1] == 1.0;
            let line = (r.y0 as usize + row) * width as usize + r.x0 as usize;
            // (Always the whole row: the region lies inside the image.)
            let pixels = data.get_mut(line * 4..(line + w) * 4).unwrap_or(&mut []);
            let (pixels, _) = pixels.as_chunks_mut::<4>();
            let w = pixels.len();
            let at_band = row - band;
            let cells = &mut self.acc[at_band * self.stride..(at_band + 1) * self.stride];
            let bits = &mut self.touched[at_band * self.words..(at_band + 1) * self.words];
            // The coverage of column `c` as 0..=255, given the running sum.
            let cover = |c: usize, sum: f32| {
                if plain {
                    return (sum.abs().min(1.0) * 255.0 + 0.5) as i32 as u32;
                }
                let mut cov = sum.abs().min(1.0) * row_part;
                if c == 0 {
                    cov *= r.edge[0];
                }
                if c + 1 == w {
                    cov *= r.edge[1];
                }
                (cov * 255.0 + 0.5) as i32 as u32
            };
            let mut sum = 0.0f32;
            let mut at = 0usize;
            for (k, word) in bits.iter_mut().enumerate() {
                let mut b = std::mem::take(word);
                while b != 0 {
                    let c = k * 64 + b.trailing_zeros() as usize;
                    b &= b - 1;
                    // The run before `c` has the sum so far throughout
                    // (only its first and last column may be clipped).
                    let run = at..c.min(w);
                    if sum.abs() >= 1.0 / 512.0 && !run.is_empty() {
                        let inner = cover(w / 2, sum);
                        for x in run {
                            let v = if x == 0 || x + 1 == w {
                                cover(x, sum)
                            } else {
                                inner
                            };
                            ink.blend(&mut pixels[x], v);
                        }
                    }
                    sum += cells[c];
                    cells[c] = 0.0;
                    if c < w {
                        let v = cover(c, sum);
                        if v > 0 {
                            ink.blend(&mut pixels[c], v);
                        }
                    }
                    at = c + 1;
                }
            }
        }
    }
}

/// `v.ceil()` as an i32 (saturating), from the truncation: `f64::ceil`
/// and `floor` are calls into the runtime on the baseline x86-64 that the
/// build targets.
#[inline]
pub fn ceil_i32(v: f64) -> i32 {
    let t = v as i32;
    t.saturating_add(i32::from(f64::from(t) < v))
}

/// `v.floor()` as an i32 (saturating); see `ceil_i32`.
#[inline]
pub fn floor_i32(v: f64) -> i32 {
    let t = v as i32;
    t.saturating_sub(i32::from(f64::from(t) > v))
}

/// One row's piece of an edge, from `xa` (top) to `xb` (bottom), `d` its
/// signed height, into the band's `acc` and `touched` from the row's first
/// cell and bit (`at`). (Columns stay within the row: `xa` and `xb` are at
/// most the region's width, or an ulp more, and a row has two cells and
/// bits beyond it.)
#[inline]
fn piece(acc: &mut [f32], touched: &mut [u64], at: (usize, usize), xa: f64, xb: f64, d: f32) {
    let (cell, bit0) = at;
    let (lo, hi) = if xa < xb { (xa, xb) } else { (xb, xa) };
    // (lo is at least 0: truncation is floor.)
    let first = lo as i32;
    let c0 = f64::from(first);
    let first = first as usize;
    if hi <= c0 + 1.0 {
        // Within one column (most rows of most edges): the part of the
        // cell right of the edge's middle gets the area, the next cell the
        // rest.
        let f = ((lo + hi) * 0.5 - c0) as f32;
        if let Some(pair) = acc.get_mut(cell + first..cell + first + 2) {
            pair[0] += d * (1.0 - f);
            pair[1] += d * f;
        }
        let b = bit0 + first;
        let (word, bit) = (b / 64, b % 64);
        if let Some(w) = touched.get_mut(word) {
            *w |= 3 << bit;
        }
        if bit == 63 {
            if let Some(w) = touched.get_mut(word + 1) {
                *w |= 1;
            }
        }
        return;
    }
    // Across columns: each column's piece weighted by its height.
    let mut mark = |c: usize, v: f32| {
        if let Some(x) = acc.get_mut(cell + c) {
            *x += v;
        }
        let b = bit0 + c;
        if let Some(w) = touched.get_mut(b / 64) {
            *w |= 1 << (b % 64);
        }
    };
    let per_x = d / (hi - lo) as f32;
    let mut x = lo;
    let mut c = first;
    let mut cx = c0;
    while x < hi {
        let next = (cx + 1.0).min(hi);
        let dd = per_x * (next - x) as f32;
        let f = ((x + next) * 0.5 - cx) as f32;
        cx += 1.0;
        mark(c, dd * (1.0 - f));
        mark(c + 1, dd * f);
        x = next;
        c += 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ceiling_and_floor_are_the_library_s_as_i32() {
        for v in [
            0.0, -0.0, 0.5, -0.5, 1.0, -1.0, 1.5, -1.5, 399.999, 400.0, 1e-300, -1e-300, 2.5e9,
            -2.5e9,
        ] {
            assert_eq!(ceil_i32(v), v.ceil() as i32, "{v}");
            assert_eq!(floor_i32(v), v.floor() as i32, "{v}");
        }
    }
}
