//! Graphs: a render drawn as graphite-web 1.1.10 draws it, as PNG (the
//! default) or SVG. `options` reads the URL, `line` lays the graph out on
//! a `canvas` (`raster` for PNG, `svg` for SVG) with `legend` and `path`
//! (one series' line), `axis` chooses the axes' steps and labels,
//! `metadata` is SVG's block of what was drawn, `color` and `font` hold
//! graphite-web's colours and the font built into the binary, `coverage`
//! rasterises the PNG's solid lines and areas (`band` sums and paints
//! them a band of rows at a time, `pixel` blends) and `glyphs` draws its
//! text from glyphs kept per thread.

mod axis;
mod band;
mod canvas;
mod color;
mod coverage;
mod font;
mod glyphs;
mod legend;
mod line;
mod metadata;
mod options;
mod path;
mod pixel;
mod pngfile;
mod raster;
mod svg;

use chrono_tz::Tz;

pub use options::Options;

use super::series::Series;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Png,
    Svg,
}

/// Why a graph was not drawn: the request's fault (400) or its size (413).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GraphError {
    Input(String),
    TooLarge(String),
}

/// The image and its content type.
pub fn render(
    series: Vec<Series>,
    o: &Options,
    format: Format,
    tz: Tz,
    max_pixels: u64,
) -> Result<(Vec<u8>, &'static str), GraphError> {
    let pixels = u64::from(o.width) * u64::from(o.height);
    if pixels > max_pixels {
        return Err(GraphError::TooLarge(format!(
            "{}x{} is {pixels} pixels, more than max_image_pixels ({max_pixels})",
            o.width, o.height
        )));
    }
    match format {
        Format::Png => {
            let mut r = raster::Raster::new(o.width, o.height).ok_or_else(|| {
                GraphError::TooLarge(format!("{}x{}: cannot allocate", o.width, o.height))
            })?;
            line::draw(&mut r, series, o, tz, true).map_err(GraphError::Input)?;
            let png = r.png().map_err(GraphError::Input)?;
            Ok((png, "image/png"))
        }
        Format::Svg => {
            let mut s = svg::Svg::new(o.width, o.height);
            let drawn = line::draw(&mut s, series, o, tz, false).map_err(GraphError::Input)?;
            Ok((s.finish(&drawn.metadata).into_bytes(), "image/svg+xml"))
        }
    }
}
