//! Pixel arithmetic for painting by coverage: premultiplied 8-bit
//! channels blended with the rounding of an exact division by 255, one
//! channel at a time or all four at once in the 16-bit lanes of a u64.

/// A pixel's four bytes a channel per 16 bits, the first lowest.
#[inline]
pub fn spread(px: [u8; 4]) -> u64 {
    let p = u64::from(u32::from_le_bytes(px));
    let x = (p | p << 16) & 0x0000_ffff_0000_ffff;
    (x | x << 8) & 0x00ff_00ff_00ff_00ff
}

/// The four 16-bit channels (each at most 255) back to bytes.
#[inline]
pub fn pack(v: u64) -> [u8; 4] {
    let y = (v | v >> 8) & 0x0000_ffff_0000_ffff;
    ((y | y >> 16) as u32).to_le_bytes()
}

/// `div255` in each 16-bit channel: `v / 255` rounded, for channels up to
/// 65 152 (a blend's sum: at most 255 * 255 + 127), which neither the
/// rounding's 128 nor the correction carry out of.
#[inline]
pub fn div255_lanes(v: u64) -> u64 {
    const LOW: u64 = 0x00ff_00ff_00ff_00ff;
    let v = v + 0x0080_0080_0080_0080;
    ((v + ((v >> 8) & LOW)) >> 8) & LOW
}

/// `v / 255` rounded, for `v` up to 65 535 (a blend's sum stays under
/// 255 * 255 + 127).
#[inline]
pub fn div255(v: u32) -> u32 {
    let v = v + 128;
    (v + (v >> 8)) >> 8
}

/// A colour ready to paint by coverage: for each coverage 0..=255, the
/// premultiplied colour's share and what is kept of the pixel beneath, so
/// that a blend is one multiply-add and a division by 255 in four lanes.
pub struct Ink {
    solid: [u8; 4],
    opaque: bool,
    share: [u64; 256],
    keep: [u64; 256],
}

impl Ink {
    /// `rgba` straight (not premultiplied), 0..=255.
    pub fn new(rgba: [u8; 4]) -> Ink {
        let sa = u32::from(rgba[3]);
        let pre = |k: usize| div255(u32::from(rgba[k]) * sa) as u8;
        let solid = [pre(0), pre(1), pre(2), rgba[3]];
        let src = spread(solid);
        let mut ink = Ink {
            solid,
            opaque: sa == 255,
            share: [0; 256],
            keep: [0; 256],
        };
        for c in 0..256u32 {
            ink.share[c as usize] = src * u64::from(c);
            ink.keep[c as usize] = u64::from(255 - div255(sa * c));
        }
        ink
    }

    /// Paints the ink at coverage `c` (0..=255) over the premultiplied
    /// pixel `px`, every channel rounded as `div255` does.
    #[inline]
    pub fn blend(&self, px: &mut [u8; 4], c: u32) {
        let c = c.min(255) as usize;
        if c == 255 && self.opaque {
            *px = self.solid;
            return;
        }
        let t = self.share[c] + spread(*px) * self.keep[c];
        *px = pack(div255_lanes(t));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_channels_are_blended_at_once_as_one_by_one() {
        for (a, b) in [(0u32, 0u32), (65_152, 1), (32_767, 65_025), (127, 65_152)] {
            let lanes = u64::from(a) | u64::from(b) << 16 | u64::from(b) << 32 | u64::from(a) << 48;
            let d = div255_lanes(lanes);
            let (da, db) = (u64::from(div255(a)), u64::from(div255(b)));
            assert_eq!(d, da | db << 16 | db << 32 | da << 48, "{a} {b}");
        }
        assert_eq!(pack(spread([1, 2, 250, 255])), [1, 2, 250, 255]);
        assert_eq!(spread([1, 2, 3, 4]), 0x0004_0003_0002_0001);
    }

    #[test]
    fn div255_rounds_as_division_does() {
        for v in 0..=65_535 {
            assert_eq!(div255(v), (f64::from(v) / 255.0).round() as u32, "{v}");
        }
    }
}
