//! Anti-aliased coverage of filled polygons and solid strokes, computed
//! as exact areas per pixel (the cell-area method of font rasterisers)
//! instead of tiny-skia's supersampled scan conversion: a graph's lines
//! are thousands of short segments, and this costs a few additions per
//! row an edge crosses (dashed lines stay with tiny-skia). The edges are
//! kept here; `band` sums and paints them.
//!
//! A stroke is the union of one rectangle per segment and one wedge per
//! join (miter up to cairo's limit of 10, else bevel; butt ends), all
//! turned the same way round so where they overlap their windings add.

use super::band::{ceil_i32, Band, BAND};
use super::canvas::{Path, Seg};
use super::pixel::Ink;

/// cairo's default miter limit, which graphite-web leaves as it is.
const MITER_LIMIT: f64 = 10.0;

/// A pixel rectangle `[x0, x1) x [y0, y1)` of the image and the partial
/// pixels of a fractional clip along its sides.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Region {
    pub x0: i32,
    pub y0: i32,
    pub x1: i32,
    pub y1: i32,
    /// How much of the first and last column and row lies inside the clip.
    pub edge: [f32; 4],
}

impl Region {
    /// The pixels of a `width` x `height` image inside `clip` (x, y, w, h)
    /// and inside `bounds` (x0, y0, x1, y1; what is drawn, grown by what
    /// may stick out of it). None when nothing is left.
    pub fn new(
        width: u32,
        height: u32,
        clip: Option<[f32; 4]>,
        bounds: [f64; 4],
    ) -> Option<Region> {
        let (mut cx0, mut cy0) = (0.0f64, 0.0f64);
        let (mut cx1, mut cy1) = (f64::from(width), f64::from(height));
        if let Some([x, y, w, h]) = clip {
            cx0 = cx0.max(f64::from(x));
            cy0 = cy0.max(f64::from(y));
            cx1 = cx1.min(f64::from(x) + f64::from(w));
            cy1 = cy1.min(f64::from(y) + f64::from(h));
        }
        let x0 = cx0.max(bounds[0].floor()).floor();
        let y0 = cy0.max(bounds[1].floor()).floor();
        let x1 = cx1.min(bounds[2].ceil()).ceil();
        let y1 = cy1.min(bounds[3].ceil()).ceil();
        if !(x0 < x1 && y0 < y1) {
            return None;
        }
        // The share of a boundary pixel inside the clip (1 when the clip's
        // side is on a pixel edge or the region stops short of it).
        let part = |inside: f64| inside.clamp(0.0, 1.0) as f32;
        let edge = [
            part(x0 + 1.0 - cx0),
            part(cx1 - (x1 - 1.0)),
            part(y0 + 1.0 - cy0),
            part(cy1 - (y1 - 1.0)),
        ];
        Some(Region {
            x0: x0 as i32,
            y0: y0 as i32,
            x1: x1 as i32,
            y1: y1 as i32,
            edge,
        })
    }
}

type Pt = (f64, f64);

/// An edge kept for `composite`: (x0, y0, x1, y1, direction) in region
/// coordinates, y0 < y1.
pub type Edge = (f64, f64, f64, f64, f32);

/// Edges kept before the layers waiting for `composite` are painted (10
/// MiB of them): a graph of many long series is painted in a few goes
/// instead of holding all its edges at once.
pub const MAX_EDGES: usize = 1 << 18;

/// One drawing waiting to be painted: its region, its colour and its
/// edges (a range of `Coverage::edges`).
struct Layer {
    region: Region,
    rgba: [u8; 4],
    edges: std::ops::Range<usize>,
}

/// The edges of drawings over regions of one image, and the accumulation
/// buffer for one band of rows: drawings are kept as layers until
/// `composite`, which walks the image a band at a time and paints every
/// layer's part of the band, in order, before the next band, so the cells
/// being summed and the pixels being painted stay in the processor's cache
/// (a graph's ten lines would otherwise each walk a megabyte of pixels).
/// The buffers are reused from one drawing to the next, and from one graph
/// to the next on the same thread (`take` and `give`).
#[derive(Default)]
pub struct Coverage {
    edges: Vec<Edge>,
    layers: Vec<Layer>,
    /// Per layer, the edges crossing the band being painted, and its ink.
    active: Vec<Vec<Edge>>,
    inks: Vec<Ink>,
    band: Band,
    /// The drawing being made: its region, where its edges start, and the
    /// orientation every polygon of it is turned to (+1 or -1, taken from
    /// the first one, so windings add).
    region: Option<Region>,
    start: usize,
    turn: f64,
}

/// Buffers larger than this (a graph above about 2 megapixels) are let go
/// after the graph instead of kept for the next one.
const KEEP_BYTES: usize = 8 << 20;

thread_local! {
    static SPARE: std::cell::Cell<Option<Coverage>> = const { std::cell::Cell::new(None) };
}

impl Coverage {
    /// This thread's buffers left by the graph before, or new ones: a
    /// fresh megabyte costs its page faults on every graph otherwise.
    pub fn take() -> Coverage {
        SPARE.with(|s| s.take()).unwrap_or_default()
    }

    /// Keeps the buffers for the next graph on this thread, unless large.
    pub fn give(mut self) {
        let bytes = self.band.bytes() + self.edges.capacity() * 40;
        if bytes <= KEEP_BYTES && self.region.is_none() {
            self.edges.clear();
            self.layers.clear();
            SPARE.with(|s| s.set(Some(self)));
        }
    }

    /// Starts a drawing over `r`.
    pub fn begin(&mut self, r: Region) {
        self.region = Some(r);
        self.start = self.edges.len();
        self.turn = 0.0;
    }

    /// Ends the drawing, to be painted in `rgba` (straight, 0..=255) by
    /// the next `composite`; returns how many edges are waiting.
    pub fn end(&mut self, rgba: [u8; 4]) -> usize {
        if let Some(region) = self.region.take() {
            if self.edges.len() > self.start {
                self.layers.push(Layer {
                    region,
                    rgba,
                    edges: self.start..self.edges.len(),
                });
            }
        }
        self.edges.len()
    }

    /// Whether drawings wait to be painted.
    pub fn pending(&self) -> bool {
        !self.layers.is_empty()
    }

    /// One directed edge, in image coordinates, kept for `composite`.
    fn edge(&mut self, (ax, ay): Pt, (bx, by): Pt) {
        let Some(r) = self.region else { return };
        if ay == by || !(ax.is_finite() && ay.is_finite() && bx.is_finite() && by.is_finite()) {
            return;
        }
        let h = f64::from(r.y1 - r.y0);
        let (ox, oy) = (f64::from(r.x0), f64::from(r.y0));
        let (dir, (x0, y0), (x1, y1)) = if ay < by {
            (1.0f32, (ax - ox, ay - oy), (bx - ox, by - oy))
        } else {
            (-1.0f32, (bx - ox, by - oy), (ax - ox, ay - oy))
        };
        if y1 <= 0.0 || y0 >= h {
            return;
        }
        self.edges.push((x0, y0, x1, y1, dir));
    }

    /// A closed polygon, turned to the drawing's orientation.
    fn polygon(&mut self, pts: &[Pt]) {
        let n = pts.len();
        if n < 3 {
            return;
        }
        let mut area = 0.0;
        for i in 0..n {
            let (a, b) = (pts[i], pts[(i + 1) % n]);
            area += a.0 * b.1 - b.0 * a.1;
        }
        if area == 0.0 || !area.is_finite() {
            return;
        }
        if self.turn == 0.0 {
            self.turn = area.signum();
        }
        if area.signum() == self.turn {
            for i in 0..n {
                self.edge(pts[i], pts[(i + 1) % n]);
            }
        } else {
            for i in (0..n).rev() {
                self.edge(pts[(i + 1) % n], pts[i]);
            }
        }
    }

    /// A path filled with the nonzero rule (each subpath closed).
    pub fn fill(&mut self, path: &Path) {
        let mut start: Option<Pt> = None;
        let mut at: Pt = (0.0, 0.0);
        for s in &path.segs {
            match *s {
                Seg::Move(x, y) => {
                    if let Some(p) = start {
                        self.edge(at, p);
                    }
                    start = Some((x, y));
                    at = (x, y);
                }
                Seg::Line(x, y) => {
                    if start.is_none() {
                        start = Some(at);
                    }
                    self.edge(at, (x, y));
                    at = (x, y);
                }
                Seg::Close => {
                    if let Some(p) = start.take() {
                        self.edge(at, p);
                        at = p;
                    }
                }
            }
        }
        if let Some(p) = start {
            self.edge(at, p);
        }
    }

    /// A path stroked `width` wide with butt ends and mitered joins.
    pub fn stroke(&mut self, path: &Path, width: f64) {
        let hw = width / 2.0;
        let mut pts: Vec<Pt> = Vec::new();
        let mut closed = false;
        let flush = |c: &mut Coverage, pts: &mut Vec<Pt>, closed: bool| {
            c.polyline(pts, closed, hw);
            pts.clear();
        };
        for s in &path.segs {
            match *s {
                Seg::Move(x, y) => {
                    flush(self, &mut pts, closed);
                    closed = false;
                    pts.push((x, y));
                }
                Seg::Line(x, y) => {
                    // Points that do not move are left out (no direction);
                    // a point that carries on straight ahead replaces the
                    // one before (their rectangles' union is one rectangle:
                    // flat and steady stretches cost one edge, not many).
                    match pts[..] {
                        [.., p] if p == (x, y) => {}
                        [.., a, b] if straight_on(a, b, (x, y)) => {
                            if let Some(last) = pts.last_mut() {
                                *last = (x, y);
                            }
                        }
                        _ => pts.push((x, y)),
                    }
                }
                Seg::Close => {
                    let first = pts.first().copied();
                    if let Some(p) = first {
                        if pts.last() == Some(&p) && pts.len() > 1 {
                            pts.pop();
                        }
                    }
                    flush(self, &mut pts, true);
                    // A line after a close starts where the subpath began.
                    if let Some(p) = first {
                        pts.push(p);
                    }
                    closed = false;
                }
            }
        }
        flush(self, &mut pts, closed);
    }

    fn polyline(&mut self, pts: &[Pt], closed: bool, hw: f64) {
        let n = pts.len();
        if n < 2 || hw <= 0.0 {
            return;
        }
        let segs = if closed && n > 2 { n } else { n - 1 };
        // The left-hand normal of segment i, half a width long.
        let normal = |i: usize| -> Option<Pt> {
            let (a, b) = (pts[i], pts[(i + 1) % n]);
            let (dx, dy) = (b.0 - a.0, b.1 - a.1);
            let len = (dx * dx + dy * dy).sqrt();
            (len > 0.0 && len.is_finite()).then(|| (-dy / len * hw, dx / len * hw))
        };
        let mut prev: Option<Pt> = None;
        let mut first: Option<Pt> = None;
        for i in 0..segs {
            let Some(nm) = normal(i) else {
                continue;
            };
            let (a, b) = (pts[i], pts[(i + 1) % n]);
            self.polygon(&[
                (a.0 + nm.0, a.1 + nm.1),
                (b.0 + nm.0, b.1 + nm.1),
                (b.0 - nm.0, b.1 - nm.1),
                (a.0 - nm.0, a.1 - nm.1),
            ]);
            if let Some(pn) = prev {
                self.join(a, pn, nm, hw);
            }
            first.get_or_insert(nm);
            prev = Some(nm);
        }
        if closed && n > 2 {
            if let (Some(pn), Some(fnm)) = (prev, first) {
                self.join(pts[0], pn, fnm, hw);
            }
        }
    }

    /// The wedge outside the turn at `p` from a segment with normal `n1`
    /// to one with normal `n2`.
    fn join(&mut self, p: Pt, n1: Pt, n2: Pt, hw: f64) {
        // The turn's side: the outer offsets are the normals on the side
        // away from the turn.
        let cross = n1.0 * n2.1 - n1.1 * n2.0;
        if cross.abs() < 1e-12 * hw * hw {
            return;
        }
        let s = if cross > 0.0 { -1.0 } else { 1.0 };
        let o1 = (n1.0 * s, n1.1 * s);
        let o2 = (n2.0 * s, n2.1 * s);
        let a = (p.0 + o1.0, p.1 + o1.1);
        let b = (p.0 + o2.0, p.1 + o2.1);
        // cos of the angle between the normals; the miter is as long as
        // hw / cos(half that angle), kept while within the limit.
        let cos = (n1.0 * n2.0 + n1.1 * n2.1) / (hw * hw);
        if MITER_LIMIT * MITER_LIMIT * (1.0 + cos) >= 2.0 {
            let (mx, my) = (o1.0 + o2.0, o1.1 + o2.1);
            let ml = (mx * mx + my * my).sqrt();
            let half_cos = ((1.0 + cos) / 2.0).sqrt();
            if ml > 0.0 && half_cos > 0.0 {
                let k = hw / half_cos / ml;
                let tip = (p.0 + mx * k, p.1 + my * k);
                self.polygon(&[p, a, tip, b]);
                return;
            }
        }
        self.polygon(&[p, a, b]);
    }

    /// Paints the waiting layers through their coverage onto premultiplied
    /// RGBA8 `data` of an image `width` pixels wide, band by band of image
    /// rows, and leaves the buffers zeroed.
    pub fn composite(&mut self, data: &mut [u8], width: u32) {
        let mut layers = std::mem::take(&mut self.layers);
        let mut edges = std::mem::take(&mut self.edges);
        let (mut top, mut bottom) = (i32::MAX, i32::MIN);
        self.inks.clear();
        for l in &layers {
            edges[l.edges.clone()].sort_unstable_by(|a, b| a.1.total_cmp(&b.1));
            top = top.min(l.region.y0);
            bottom = bottom.max(l.region.y1);
            self.inks.push(Ink::new(l.rgba));
        }
        if self.active.len() < layers.len() {
            self.active.resize_with(layers.len(), Vec::new);
        }
        // Per layer, its next edge not yet active.
        let mut next: Vec<usize> = layers.iter().map(|l| l.edges.start).collect();
        let mut y = top;
        while y < bottom {
            let y_end = y.saturating_add(BAND as i32).min(bottom);
            for (i, l) in layers.iter().enumerate() {
                let r = l.region;
                // The band's rows of this layer, in its region's rows.
                let (lo, hi) = (y.max(r.y0) - r.y0, y_end.min(r.y1) - r.y0);
                if lo >= hi {
                    continue;
                }
                let (lo, hi) = (lo as usize, hi as usize);
                let w = (r.x1 - r.x0) as usize;
                let mut cells = self.band.cells(w);
                let mut active = std::mem::take(&mut self.active[i]);
                while next[i] < l.edges.end && edges[next[i]].1 < hi as f64 {
                    active.push(edges[next[i]]);
                    next[i] += 1;
                }
                for &e in &active {
                    // (Truncation is floor here: both are at least 0.)
                    let from = (e.1.max(0.0) as usize).max(lo);
                    let to = ceil_i32(e.3).clamp(0, hi as i32) as usize;
                    cells.rows(e, lo, from, to, w as f64);
                }
                active.retain(|e| e.3 > hi as f64);
                self.active[i] = active;
                if let Some(ink) = self.inks.get(i) {
                    cells.paint(&r, lo, hi, data, width, ink);
                }
            }
            y = y_end;
        }
        for a in &mut self.active {
            a.clear();
        }
        layers.clear();
        edges.clear();
        self.layers = layers;
        self.edges = edges;
    }
}

/// Whether `c` carries on from `a` through `b` in a straight line: `b`
/// lies within two millionths of a pixel of the segment from `a` to `c`.
fn straight_on(a: Pt, b: Pt, c: Pt) -> bool {
    let (ux, uy) = (b.0 - a.0, b.1 - a.1);
    let (vx, vy) = (c.0 - b.0, c.1 - b.1);
    let cross = ux * vy - uy * vx;
    let dot = ux * vx + uy * vy;
    let (lu, lv) = ((ux * ux + uy * uy).sqrt(), (vx * vx + vy * vy).sqrt());
    dot > 0.0 && cross.abs() <= 1e-6 * (lu + lv)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The coverage of a drawing over a `w` x `h` image, as 0..=255.
    fn draw(w: u32, h: u32, clip: Option<[f32; 4]>, f: impl FnOnce(&mut Coverage)) -> Vec<u8> {
        let mut c = Coverage::default();
        let mut data = vec![0u8; (w * h * 4) as usize];
        if let Some(r) = Region::new(w, h, clip, [-1e9, -1e9, 1e9, 1e9]) {
            c.begin(r);
            f(&mut c);
            c.end([255, 255, 255, 255]);
            c.composite(&mut data, w);
        }
        data.chunks(4).map(|p| p[3]).collect()
    }

    fn path(pts: &[(f64, f64)]) -> Path {
        let mut p = Path::new();
        p.move_to(pts[0].0, pts[0].1);
        for q in &pts[1..] {
            p.line_to(q.0, q.1);
        }
        p
    }

    #[test]
    fn a_pixel_aligned_square_is_covered_exactly() {
        let a = draw(6, 6, None, |c| {
            c.fill(&path(&[(1.0, 1.0), (4.0, 1.0), (4.0, 3.0), (1.0, 3.0)]))
        });
        for y in 0..6 {
            for x in 0..6 {
                let inside = (1..4).contains(&x) && (1..3).contains(&y);
                assert_eq!(a[y * 6 + x], if inside { 255 } else { 0 }, "{x},{y}");
            }
        }
    }

    #[test]
    fn partial_pixels_get_their_area() {
        // Half a pixel wide, then a quarter of a pixel high.
        let a = draw(4, 4, None, |c| {
            c.fill(&path(&[(1.0, 0.0), (1.5, 0.0), (1.5, 4.0), (1.0, 4.0)]))
        });
        assert_eq!(a[1], 128);
        let b = draw(4, 4, None, |c| {
            c.fill(&path(&[(0.0, 1.0), (4.0, 1.0), (4.0, 1.25), (0.0, 1.25)]))
        });
        assert_eq!(b[4 + 2], 64);
        // A triangle's diagonal halves the pixels it crosses.
        let t = draw(4, 4, None, |c| {
            c.fill(&path(&[(0.0, 0.0), (4.0, 4.0), (0.0, 4.0)]))
        });
        assert_eq!(t[4 + 1], 128);
        assert_eq!(t[2 * 4], 255);
        assert_eq!(t[2], 0);
    }

    #[test]
    fn windings_add_and_either_direction_fills() {
        let square = [(1.0, 1.0), (3.0, 1.0), (3.0, 3.0), (1.0, 3.0)];
        let mut back = square;
        back.reverse();
        let a = draw(4, 4, None, |c| c.fill(&path(&square)));
        let b = draw(4, 4, None, |c| c.fill(&path(&back)));
        assert_eq!(a, b);
        // The same square twice: still fully covered once, not more.
        let twice = draw(4, 4, None, |c| {
            c.stroke(&path(&[(0.0, 2.0), (4.0, 2.0)]), 2.0);
            c.stroke(&path(&[(4.0, 2.0), (0.0, 2.0)]), 2.0);
        });
        assert_eq!(twice[4 + 2], 255);
        assert_eq!(twice[2 * 4 + 2], 255);
        assert_eq!(twice[2], 0);
    }

    #[test]
    fn a_one_pixel_line_on_a_half_pixel_fills_one_row() {
        let a = draw(8, 5, None, |c| {
            c.stroke(&path(&[(0.0, 2.5), (8.0, 2.5)]), 1.0)
        });
        for x in 0..8 {
            assert_eq!(a[2 * 8 + x], 255);
            assert_eq!(a[8 + x], 0);
            assert_eq!(a[3 * 8 + x], 0);
        }
        // On a whole pixel, it is half in each of two rows.
        let b = draw(8, 5, None, |c| {
            c.stroke(&path(&[(0.0, 2.0), (8.0, 2.0)]), 1.0)
        });
        assert_eq!(b[8 + 3], 128);
        assert_eq!(b[2 * 8 + 3], 128);
    }

    #[test]
    fn a_sharp_turn_is_beveled_and_a_right_angle_mitered() {
        // Right angle: the miter fills the outer corner square.
        let a = draw(10, 10, None, |c| {
            c.stroke(&path(&[(1.0, 5.0), (5.0, 5.0), (5.0, 9.0)]), 2.0)
        });
        assert_eq!(a[4 * 10 + 5], 255, "the outer corner");
        // A hairpin: the miter would be far longer than 10 widths, so the
        // pixels beyond the turn stay empty.
        let b = draw(30, 10, None, |c| {
            c.stroke(&path(&[(1.0, 4.0), (15.0, 5.0), (1.0, 6.0)]), 1.0)
        });
        assert!(b[5 * 30 + 16] < 64, "no miter spike: {}", b[5 * 30 + 16]);
        assert!(b[5 * 30 + 14] > 128);
    }

    #[test]
    fn straight_runs_draw_as_one_segment() {
        let many: Vec<(f64, f64)> = (0..=20)
            .map(|i| (f64::from(i) * 0.5, 1.0 + f64::from(i) * 0.3))
            .collect();
        let a = draw(12, 10, None, |c| c.stroke(&path(&many), 1.2));
        let b = draw(12, 10, None, |c| c.stroke(&path(&[many[0], many[20]]), 1.2));
        assert_eq!(a, b);
        // Going back the same way is not straight on; nor is a bend.
        assert!(!straight_on((0.0, 0.0), (2.0, 0.0), (1.0, 0.0)));
        assert!(!straight_on((0.0, 0.0), (2.0, 0.0), (4.0, 0.01)));
        assert!(straight_on((0.0, 0.0), (2.0, 1.0), (4.0, 2.0)));
    }

    #[test]
    fn a_clip_cuts_and_shares_its_partial_pixels() {
        let a = draw(8, 4, Some([2.5, 0.0, 3.0, 4.0]), |c| {
            c.fill(&path(&[(0.0, 0.0), (8.0, 0.0), (8.0, 4.0), (0.0, 4.0)]))
        });
        assert_eq!(&a[8..16], &[0, 0, 128, 255, 255, 128, 0, 0]);
    }

    #[test]
    fn far_and_odd_coordinates_are_safe() {
        let a = draw(8, 8, None, |c| {
            c.stroke(&path(&[(-1e6, -1e6), (1e6, 1e6)]), 1.5);
            c.stroke(&path(&[(3.0, 3.0), (3.0, 3.0), (3.0, 3.0)]), 1.0);
            c.fill(&path(&[(f64::NAN, 0.0), (1.0, f64::INFINITY), (2.0, 2.0)]));
        });
        assert!(a[3 * 8 + 3] > 200);
        assert_eq!(a[7], 0);
    }

    #[test]
    fn colour_is_blended_by_coverage_over_what_is_there() {
        let mut c = Coverage::default();
        let mut data = [0, 0, 255, 255].repeat(4);
        c.begin(Region::new(4, 1, None, [0.0, 0.0, 4.0, 1.0]).expect("region"));
        c.fill(&path(&[(1.0, 0.0), (1.5, 0.0), (1.5, 1.0), (1.0, 1.0)]));
        c.end([255, 0, 0, 255]);
        c.composite(&mut data, 4);
        // Half coverage is 128 of 255: 128 of the red and 127 of the blue.
        assert_eq!(&data[4..8], &[128, 0, 127, 255]);
        assert_eq!(&data[0..4], &[0, 0, 255, 255]);
    }

    #[test]
    fn layers_are_painted_in_order_over_overlapping_regions() {
        // Over 40 rows (more than a band): red on rows 0..30, then half
        // blue on rows 10..40 of columns 2..4; what is not drawn stays.
        let mut c = Coverage::default();
        let (w, h) = (6u32, 40u32);
        let mut data = vec![0u8; (w * h * 4) as usize];
        let region = |b: [f64; 4]| Region::new(w, h, None, b).expect("region");
        c.begin(region([0.0, 0.0, 6.0, 30.0]));
        c.fill(&path(&[(0.0, 0.0), (6.0, 0.0), (6.0, 30.0), (0.0, 30.0)]));
        // (Its two horizontal sides add nothing.)
        assert_eq!(c.end([255, 0, 0, 255]), 2);
        c.begin(region([2.0, 10.0, 4.0, 40.0]));
        c.fill(&path(&[(2.0, 10.0), (4.0, 10.0), (4.0, 40.0), (2.0, 40.0)]));
        c.end([0, 0, 255, 128]);
        // A drawing with no edges leaves no layer.
        c.begin(region([0.0, 0.0, 1.0, 1.0]));
        c.end([0, 255, 0, 255]);
        assert!(c.pending());
        c.composite(&mut data, w);
        assert!(!c.pending());
        let px = |x: u32, y: u32| {
            let i = ((y * w + x) * 4) as usize;
            [data[i], data[i + 1], data[i + 2], data[i + 3]]
        };
        assert_eq!(px(0, 5), [255, 0, 0, 255]);
        assert_eq!(px(2, 5), [255, 0, 0, 255]);
        assert_eq!(px(0, 25), [255, 0, 0, 255]);
        // Blue at 128 over red: premultiplied 128 blue, 127 of the red.
        assert_eq!(px(3, 25), [127, 0, 128, 255]);
        assert_eq!(px(3, 35), [0, 0, 128, 128]);
        assert_eq!(px(0, 35), [0, 0, 0, 0]);
        // The buffers are left zeroed: the next drawing starts clean.
        assert!(c.band.is_clear());
    }
}
