//! hwmon: temperatures and fan speeds from `/sys/class/hwmon` (Diamond
//! never had them): `hwmon.<chip>.<sensor>`, the chip named by its `name`
//! file (with `_<n>` from `hwmon<n>` when two chips share a name), the
//! sensor by its `_label` (spaces as `_`) or else `temp<i>`/`fan<i>`.
//! Temperatures in degrees Celsius, fans in RPM, as they are.

use super::{segment, CollectError, Collector, Emit, Missing};
use crate::config::Config;
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// `[collectors.hwmon]` has only the common keys.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HwmonConfig {}

/// `temp3_input` -> ("temp", 3); `fan1_input` -> ("fan", 1).
pub fn sensor_file(name: &str) -> Option<(&str, u32)> {
    let stem = name.strip_suffix("_input")?;
    for kind in ["temp", "fan"] {
        if let Some(i) = stem.strip_prefix(kind).and_then(|n| n.parse().ok()) {
            return Some((kind, i));
        }
    }
    None
}

pub struct Hwmon {
    dir: PathBuf,
    missing: Missing,
    buf: String,
}

impl Hwmon {
    pub fn new(_opts: &HwmonConfig, cfg: &Config) -> Self {
        Hwmon {
            dir: cfg.sys_root.join("class/hwmon"),
            missing: Missing::default(),
            buf: String::new(),
        }
    }

    fn read_trim(&mut self, path: &Path) -> Option<String> {
        super::read(path, &mut self.buf)
            .ok()
            .map(|t| t.trim().to_string())
    }
}

/// The entries of a directory, sorted by name (none when it cannot be read).
fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .map(|rd| {
            rd.flatten()
                .filter_map(|e| e.file_name().into_string().ok())
                .collect()
        })
        .unwrap_or_default();
    v.sort_unstable();
    v
}

impl Collector for Hwmon {
    fn collect(&mut self, out: &mut Emit) -> Result<(), CollectError> {
        if !self.dir.is_dir() {
            self.missing.note(&self.dir);
            return Ok(());
        }
        // (hwmon number, chip name, its directory)
        let mut chips: Vec<(u32, String, PathBuf)> = Vec::new();
        for entry in names(&self.dir) {
            let Some(n) = entry.strip_prefix("hwmon").and_then(|n| n.parse().ok()) else {
                continue;
            };
            let dir = self.dir.join(&entry);
            let name = self
                .read_trim(&dir.join("name"))
                .map(|n| segment(&n))
                .filter(|n| !n.is_empty())
                .unwrap_or_else(|| entry.clone());
            chips.push((n, name, dir));
        }
        chips.sort_by_key(|c| c.0);
        for (n, name, dir) in &chips {
            let shared = chips.iter().filter(|c| c.1 == *name).count() > 1;
            let chip = if shared {
                format!("{name}_{n}")
            } else {
                name.clone()
            };
            let files = names(dir);
            let mut sensors: Vec<(&str, u32, String)> = files
                .iter()
                .filter_map(|f| sensor_file(f).map(|(k, i)| (k, i, f.clone())))
                .collect();
            sensors.sort_by_key(|s| (s.0, s.1));
            for (kind, i, file) in sensors {
                let Some(raw) = self.read_trim(&dir.join(&file)) else {
                    continue;
                };
                let Ok(v) = raw.parse::<f64>() else { continue };
                let label = self
                    .read_trim(&dir.join(format!("{kind}{i}_label")))
                    .map(|l| segment(&l))
                    .filter(|l| !l.is_empty())
                    .unwrap_or_else(|| format!("{kind}{i}"));
                let value = if kind == "temp" { v / 1000.0 } else { v };
                out.gauge(&format!("{chip}.{label}"), value);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::collectors::testutil::{two_runs, values};

    #[test]
    fn chips_sensors_and_units() {
        let d = tempfile::tempdir().expect("tempdir");
        let hw = d.path().join("class/hwmon");
        let files: &[(&str, &str)] = &[
            ("hwmon0/name", "coretemp\n"),
            ("hwmon0/temp1_input", "45000\n"),
            ("hwmon0/temp1_label", "Package id 0\n"),
            ("hwmon0/temp2_input", "43500\n"),
            ("hwmon0/temp2_label", "Core 0\n"),
            ("hwmon0/temp2_max", "100000\n"),
            ("hwmon1/name", "coretemp\n"),
            ("hwmon1/temp1_input", "47000\n"),
            ("hwmon2/name", "nct6775\n"),
            ("hwmon2/fan1_input", "1200\n"),
            ("hwmon2/fan2_input", "0\n"),
            ("hwmon2/temp7_input", "-5000\n"),
            ("hwmon3/name", "acpi.tz\n"),
            ("hwmon3/temp1_input", "bogus\n"),
        ];
        for (f, text) in files {
            let p = hw.join(f);
            std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            std::fs::write(p, text).expect("write");
        }
        let cfg = Config {
            sys_root: d.path().to_path_buf(),
            ..Config::default()
        };
        let mut c = Hwmon::new(&HwmonConfig {}, &cfg);
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        let v = values(&first);
        assert_eq!(v["coretemp_0.Package_id_0"], 45.0);
        assert_eq!(v["coretemp_0.Core_0"], 43.5);
        assert_eq!(v["coretemp_1.temp1"], 47.0);
        assert_eq!(v["nct6775.fan1"], 1200.0);
        assert_eq!(v["nct6775.fan2"], 0.0);
        assert_eq!(v["nct6775.temp7"], -5.0);
        assert_eq!(v.len(), 6, "{v:?}");
    }

    #[test]
    fn no_hwmon_sends_nothing() {
        let cfg = Config {
            sys_root: PathBuf::from("/nonexistent"),
            ..Config::default()
        };
        let mut c = Hwmon::new(&HwmonConfig {}, &cfg);
        let (first, _) = two_runs(&mut c, 10.0, |_, _| {});
        assert!(first.is_empty());
        assert_eq!(sensor_file("temp12_input"), Some(("temp", 12)));
        assert_eq!(sensor_file("temp1_max"), None);
        assert_eq!(sensor_file("in0_input"), None);
    }
}
