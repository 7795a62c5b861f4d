//! Drawing a graph in-process, without the server: the web bench's (e)
//! PNG (10 series of 1 000 points at 800x400, sawtooth data with a
//! full-height drop every 100 points) and the same graph as SVG, so the
//! drawing's own cost can be followed apart from fetching and HTTP; and
//! the PNG of 10 noisy series (random walks), where no two segments in a
//! row are straight on and none of the line can be drawn as one piece.
//!
//! Run: `cargo bench --bench graph`

use carbyne::server::web::graph::{render, Format, Options};
use carbyne::server::web::series::Series;
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

const NOW: i64 = 1_795_000_020;

fn series(noisy: bool) -> Vec<Series> {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = move || {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (seed >> 33) as f64 / f64::from(1u32 << 31)
    };
    (0..10)
        .map(|n| {
            let mut walk = 50.0;
            let values = (0..1000)
                .map(|i| {
                    if noisy {
                        walk = (walk + next() * 10.0 - 5.0f64).clamp(0.0, 100.0);
                        Some(walk)
                    } else {
                        Some(((n * 7 + i) % 100) as f64)
                    }
                })
                .collect();
            Series::new(
                format!("servers.h{n}.cpu.total.user"),
                NOW - 60_000,
                NOW,
                60,
                values,
                0.5,
            )
        })
        .collect()
}

fn graph(c: &mut Criterion) {
    let o = Options::parse(|k| match k {
        "width" => Some("800"),
        "height" => Some("400"),
        _ => None,
    })
    .expect("options");
    let max = 4096 * 4096;
    for (name, format, noisy) in [
        ("png", Format::Png, false),
        ("svg", Format::Svg, false),
        ("png_noisy", Format::Png, true),
    ] {
        c.bench_function(
            &format!("graph/{name}_800x400_10_series_1000_points"),
            |b| {
                b.iter(|| {
                    let out =
                        render(series(noisy), &o, format, chrono_tz::UTC, max).expect("drawn");
                    black_box(out.0.len())
                })
            },
        );
    }
}

criterion_group!(benches, graph);
criterion_main!(benches);
