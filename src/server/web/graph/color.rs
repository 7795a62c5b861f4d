//! graphite-web's colours: its names (with its own RGB values, not CSS's),
//! `RRGGBB` and `RRGGBBAA` hex with an optional `#` or `%23`, and the
//! graph templates of its `graphTemplates.conf.example`.

use super::canvas::Color;

const NAMES: [(&str, Color); 22] = [
    ("black", Color::rgb(0, 0, 0)),
    ("white", Color::rgb(255, 255, 255)),
    ("blue", Color::rgb(100, 100, 255)),
    ("green", Color::rgb(0, 200, 0)),
    ("red", Color::rgb(200, 0, 50)),
    ("yellow", Color::rgb(255, 255, 0)),
    ("orange", Color::rgb(255, 165, 0)),
    ("purple", Color::rgb(200, 100, 255)),
    ("brown", Color::rgb(150, 100, 50)),
    ("cyan", Color::rgb(0, 255, 255)),
    ("aqua", Color::rgb(0, 150, 150)),
    ("gray", Color::rgb(175, 175, 175)),
    ("grey", Color::rgb(175, 175, 175)),
    ("magenta", Color::rgb(255, 0, 255)),
    ("pink", Color::rgb(255, 100, 100)),
    ("gold", Color::rgb(200, 200, 0)),
    ("rose", Color::rgb(200, 150, 200)),
    ("darkblue", Color::rgb(0, 0, 255)),
    ("darkgreen", Color::rgb(0, 255, 0)),
    ("darkred", Color::rgb(255, 0, 0)),
    ("darkgray", Color::rgb(111, 111, 111)),
    ("darkgrey", Color::rgb(111, 111, 111)),
];

/// A colour as graphite-web reads one: a name, or hex (`ff0000`,
/// `#ff0000`, `%23ff0000`; `ff000080` with alpha).
pub fn parse(text: &str) -> Result<Color, String> {
    if let Some((_, c)) = NAMES.iter().find(|(n, _)| *n == text) {
        return Ok(*c);
    }
    let bad = || format!("Invalid color {text:?}: a name such as blue, or hex RRGGBB[AA]");
    if text.len() < 6 {
        return Err(bad());
    }
    let hex = text.strip_prefix('#').unwrap_or(text);
    let hex = hex.strip_prefix("%23").unwrap_or(hex);
    let byte = |i: usize| {
        hex.get(i..i + 2)
            .and_then(|h| u8::from_str_radix(h, 16).ok())
            .ok_or_else(bad)
    };
    let c = Color::rgb(byte(0)?, byte(2)?, byte(4)?);
    Ok(if hex.len() == 8 {
        c.with_alpha(f64::from(byte(6)?) / 255.0)
    } else {
        c
    })
}

/// Whether the colour text carries its own alpha (`RRGGBBAA`).
pub fn has_alpha(text: &str) -> bool {
    let hex = text.strip_prefix('#').unwrap_or(text);
    let hex = hex.strip_prefix("%23").unwrap_or(hex);
    hex.len() == 8 && !NAMES.iter().any(|(n, _)| *n == text)
}

/// A graph template: the colours and font a `template=` name stands for.
#[derive(Debug, Clone, PartialEq)]
pub struct Template {
    pub background: String,
    pub foreground: String,
    pub major_line: String,
    pub minor_line: String,
    pub line_colors: Vec<String>,
    pub font_size: f64,
    pub font_bold: bool,
    pub font_italic: bool,
}

impl Default for Template {
    fn default() -> Template {
        Template {
            background: "white".into(),
            foreground: "black".into(),
            major_line: "rose".into(),
            minor_line: "grey".into(),
            line_colors: "blue,green,red,purple,brown,yellow,aqua,grey,magenta,pink,gold,rose"
                .split(',')
                .map(String::from)
                .collect(),
            font_size: 10.0,
            font_bold: false,
            font_italic: false,
        }
    }
}

/// The templates of graphite-web's `graphTemplates.conf.example`, for
/// `template=NAME` (graphite-web has them once that file is copied into
/// place; carbyne has them built in). An unknown name is the default.
pub fn template(name: &str) -> Template {
    let t = Template::default();
    let colors = |list: &str| list.split(',').map(|c| c.trim().to_string()).collect();
    let with = |bg: &str, fg: &str, major: &str, minor: &str| Template {
        background: bg.into(),
        foreground: fg.into(),
        major_line: major.into(),
        minor_line: minor.into(),
        ..Template::default()
    };
    let solarized = "268bd2aa,859900aa,dc322faa,d33682aa,db4b16aa,b58900aa,2aa198aa,6c71c4aa";
    let ramp = |list: &str, reverse: bool| {
        let mut c: Vec<String> = colors(list);
        if reverse {
            c.reverse();
        }
        Template {
            line_colors: c,
            ..Template::default()
        }
    };
    const OCEAN: &str = "f7fcf0,e0f3db,ccebc5,a8ddb5,7bccc4,4eb3d3,2b8cbe,0868ac,084081";
    const FOREST: &str = "f7fcf5,e5f5e0,c7e9c0,a1d99b,74c476,41ab5d,238b45,005a32";
    const SUNSET: &str = "fff5eb,fee6ce,fdd0a2,fdae6b,fd8d3c,f16913,d94801,8c2d04";
    const MOONLIGHT: &str = "fcfbfd,efedf5,dadaeb,bcbddc,9e9ac8,807dba,6a51a3,4a1486";
    const LAVA: &str = "fff5f0,fee0d2,fcbba1,fc9272,fb6a4a,ef3b2c,cb181d,99000d";
    match name {
        "solarized-light" => Template {
            line_colors: colors(solarized),
            ..with("#fdf6e3", "#657b83", "#073642", "#586e75")
        },
        "solarized-dark" => Template {
            line_colors: colors(solarized),
            ..with("#002b36", "#839496", "#fdf6e3", "#eee8d5")
        },
        "classic" => with("black", "white", "white", "grey"),
        "noc" => Template {
            line_colors: colors(
                "blue,green,red,yellow,purple,brown,aqua,grey,magenta,pink,gold,rose",
            ),
            ..with("black", "white", "white", "grey")
        },
        "summary" => Template {
            background: "black".into(),
            line_colors: colors("#6666ff, #66ff66, #ff6666"),
            ..t
        },
        "alphas" => Template {
            line_colors: colors("00ff00aa,ff000077,00337799"),
            ..with("white", "black", "grey", "rose")
        },
        "grafana" => Template {
            line_colors: colors(
                "#7eb26d,#eab839,#6ed0e0,#ef843c,#e24d42,#1f78c1,#ba43a9,#705da0,#508642,#cca300,#447ebc",
            ),
            ..t
        },
        "ocean1" => ramp(OCEAN, false),
        "ocean2" => ramp(OCEAN, true),
        "forest1" => ramp(FOREST, false),
        "forest2" => ramp(FOREST, true),
        "sunset1" => ramp(SUNSET, false),
        "sunset2" => ramp(SUNSET, true),
        "moonlight1" => ramp(MOONLIGHT, false),
        "moonlight2" => ramp(MOONLIGHT, true),
        "lava1" => ramp(LAVA, false),
        "lava2" => ramp(LAVA, true),
        _ => t,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_hex() {
        assert_eq!(parse("red").expect("red").rgba8(), [200, 0, 50, 255]);
        assert_eq!(parse("ff0000").expect("hex").rgba8(), [255, 0, 0, 255]);
        assert_eq!(parse("#00FF00").expect("hex").rgba8(), [0, 255, 0, 255]);
        assert_eq!(parse("%230000ff").expect("hex").rgba8(), [0, 0, 255, 255]);
        assert_eq!(parse("ff000080").expect("alpha").rgba8(), [255, 0, 0, 128]);
        // Seven characters: the first six count.
        assert_eq!(parse("ff00001").expect("hex").rgba8(), [255, 0, 0, 255]);
        for bad in ["Blue", "fff", "zzzzzz", "", "#12"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn templates() {
        assert_eq!(template("nope"), Template::default());
        let d = template("solarized-dark");
        assert_eq!(d.background, "#002b36");
        assert_eq!(d.line_colors.len(), 8);
        assert_eq!(template("summary").line_colors[1], "#66ff66");
        assert_eq!(template("ocean2").line_colors[0], "084081");
        for c in template("grafana").line_colors {
            parse(&c).expect("every template colour parses");
        }
    }
}
