//! The PNG file of a drawn pixmap: 8-bit RGB when every pixel is opaque
//! (as cairo writes a graph), RGBA otherwise; every row Up-filtered, the
//! rows compressed by fdeflate into one IDAT chunk.
//!
//! Written here, not by the png crate's encoder (which uses the same
//! fdeflate for its fast setting), so that a row is converted from the
//! pixmap, filtered and compressed in one pass while it is in cache, and
//! the compressed stream goes straight into the file. The png crate's
//! encoder takes the converted image whole, filters it in a second pass,
//! compresses into a buffer grown from empty and then copies that into
//! the file's chunks.

use tiny_skia::Pixmap;

/// PNG's colour types: truecolour, and truecolour with alpha.
const RGB: u8 = 2;
const RGBA: u8 = 6;

/// PNG's filter type Up: each byte less the byte above it. A graph's rows
/// mostly repeat the one above (background, the vertical grid), which this
/// turns into runs of zeros; and it is the cheapest filter to compute.
const UP: u8 = 2;

/// The pixmap as a PNG file.
pub fn encode(pixmap: &Pixmap) -> Result<Vec<u8>, String> {
    let (w, h) = (pixmap.width() as usize, pixmap.height() as usize);
    let pixels = pixmap.pixels();
    let opaque = pixels.iter().all(|p| p.alpha() == 255);
    let (color, bpp) = if opaque { (RGB, 3) } else { (RGBA, 4) };
    let row_len = w * bpp;

    // (A graph's PNG is mostly under half its pixels' bytes.)
    let mut out = Vec::with_capacity(row_len * h / 2 + 64);
    out.extend_from_slice(b"\x89PNG\r\n\x1a\n");
    let mut ihdr = [0u8; 13];
    ihdr[..4].copy_from_slice(&pixmap.width().to_be_bytes());
    ihdr[4..8].copy_from_slice(&pixmap.height().to_be_bytes());
    // Bit depth 8, the colour type; compression, filter method and
    // interlace 0 (deflate, adaptive filtering, none).
    ihdr[8] = 8;
    ihdr[9] = color;
    chunk(&mut out, b"IHDR", &ihdr);

    // The IDAT chunk: its length is known once the rows are compressed.
    let idat = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(b"IDAT");
    // The row above the first is taken as zeros.
    let mut above = vec![0u8; row_len];
    let mut row = vec![0u8; row_len];
    let mut filtered = vec![0u8; row_len + 1];
    filtered[0] = UP;
    let mut z = fdeflate::Compressor::new(&mut out).map_err(|e| e.to_string())?;
    for line in pixels.chunks_exact(w.max(1)) {
        if opaque {
            // (Premultiplied is straight when opaque. As arrays, not
            // slices: a pixel is a load and two stores.)
            let (to, _) = row.as_chunks_mut::<3>();
            for (o, p) in to.iter_mut().zip(line) {
                *o = [p.red(), p.green(), p.blue()];
            }
        } else {
            let (to, _) = row.as_chunks_mut::<4>();
            for (o, p) in to.iter_mut().zip(line) {
                let c = p.demultiply();
                *o = [c.red(), c.green(), c.blue(), c.alpha()];
            }
        }
        for ((f, b), a) in filtered[1..].iter_mut().zip(&row).zip(&above) {
            *f = b.wrapping_sub(*a);
        }
        z.write_data(&filtered).map_err(|e| e.to_string())?;
        std::mem::swap(&mut row, &mut above);
    }
    z.finish().map_err(|e| e.to_string())?;
    let len = u32::try_from(out.len() - idat - 8)
        .ok()
        .filter(|l| *l <= i32::MAX as u32)
        .ok_or("the image is too large for a PNG chunk")?;
    out[idat..idat + 4].copy_from_slice(&len.to_be_bytes());
    let crc = crc32fast::hash(&out[idat + 4..]);
    out.extend_from_slice(&crc.to_be_bytes());
    chunk(&mut out, b"IEND", &[]);
    Ok(out)
}

/// Appends a chunk: length, type, data and the CRC of type and data.
fn chunk(out: &mut Vec<u8>, kind: &[u8; 4], data: &[u8]) {
    // (Only IHDR and IEND: a few bytes.)
    out.extend_from_slice(&(data.len() as u32).to_be_bytes());
    let start = out.len();
    out.extend_from_slice(kind);
    out.extend_from_slice(data);
    let crc = crc32fast::hash(&out[start..]);
    out.extend_from_slice(&crc.to_be_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;
    use tiny_skia::{Color, Paint, PathBuilder, Transform};

    /// A pixmap with a gradient of colours and alphas, and the pixels that
    /// the png crate's decoder reads back from its PNG.
    fn round_trip(opaque: bool) -> (Pixmap, Vec<u8>, png::OutputInfo) {
        let mut pixmap = Pixmap::new(37, 23).expect("pixmap");
        pixmap.fill(if opaque {
            Color::from_rgba8(250, 250, 240, 255)
        } else {
            Color::from_rgba8(0, 0, 0, 0)
        });
        let mut paint = Paint::default();
        for i in 0..5u8 {
            paint.set_color_rgba8(
                40 * i,
                255 - 50 * i,
                7 * i,
                if opaque { 255 } else { 60 + 40 * i },
            );
            let path =
                PathBuilder::from_circle(f32::from(i) * 7.0 + 3.0, 11.0, 6.5).expect("circle");
            pixmap.fill_path(
                &path,
                &paint,
                tiny_skia::FillRule::Winding,
                Transform::identity(),
                None,
            );
        }
        let file = encode(&pixmap).expect("encoded");
        let mut reader = png::Decoder::new(std::io::Cursor::new(file))
            .read_info()
            .expect("a PNG header");
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader.next_frame(&mut buf).expect("a PNG image");
        (pixmap, buf, info)
    }

    #[test]
    fn an_opaque_image_reads_back_as_rgb_pixel_for_pixel() {
        let (pixmap, buf, info) = round_trip(true);
        assert_eq!((info.width, info.height), (37, 23));
        assert_eq!(info.color_type, png::ColorType::Rgb);
        assert_eq!(info.bit_depth, png::BitDepth::Eight);
        let want: Vec<u8> = pixmap
            .pixels()
            .iter()
            .flat_map(|p| [p.red(), p.green(), p.blue()])
            .collect();
        assert_eq!(buf, want);
    }

    #[test]
    fn a_translucent_image_reads_back_as_straight_rgba() {
        let (pixmap, buf, info) = round_trip(false);
        assert_eq!(info.color_type, png::ColorType::Rgba);
        let want: Vec<u8> = pixmap
            .pixels()
            .iter()
            .flat_map(|p| {
                let c = p.demultiply();
                [c.red(), c.green(), c.blue(), c.alpha()]
            })
            .collect();
        assert_eq!(buf, want);
        assert!(want.chunks(4).any(|p| p[3] != 0 && p[3] != 255));
    }
}
