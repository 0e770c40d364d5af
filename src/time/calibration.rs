//! Calibration files (models/calibration/*.toml, written by `roofline calibrate`): measured
//! values that override the GPU file's. Besides `gpu` and `provenance`, every field is a
//! `{ value, source, range }` table named after a figure of [`FIGURES`] that a calibration may
//! override; any field present overrides, the rest keep the GPU file's value.

use super::figures::FIGURES;
use crate::error::{Error, Result};
use crate::spec::hardware::{bounds, check_sourced};
use crate::spec::toml_error::{toml_error_field, toml_error_problem};
use crate::spec::{GpuSpec, Sourced};
use serde::ser::SerializeMap;
use serde::{Deserialize, Serialize, Serializer};
use std::collections::BTreeMap;
use std::path::Path;

/// A calibration file.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Calibration {
    /// Which GPU the calibration was measured on.
    pub gpu: Option<String>,
    /// Where the measurements come from (command, date, device).
    pub provenance: Option<String>,
    /// Overridden figures by calibration field name.
    #[serde(flatten)]
    values: BTreeMap<String, Sourced>,
}

impl Calibration {
    /// A calibration of `gpu` with `provenance` and no values yet.
    pub fn new(gpu: &str, provenance: String) -> Self {
        Calibration {
            gpu: Some(gpu.to_string()),
            provenance: Some(provenance),
            values: BTreeMap::new(),
        }
    }

    /// The value of calibration field `key`, when the file sets it.
    pub fn get(&self, key: &str) -> Option<&Sourced> {
        self.values.get(key)
    }

    /// Sets calibration field `key` (one of the calibratable figures' fields).
    pub fn set(&mut self, key: &'static str, value: Sourced) {
        debug_assert!(FIGURES.iter().any(|f| f.calibration == Some(key)), "{key}");
        self.values.insert(key.to_string(), value);
    }

    /// Checks every value against its figure's physical bound; `label` names the source.
    pub fn check(&self, label: &str) -> Result<()> {
        for (key, v) in &self.values {
            let Some(f) = FIGURES.iter().find(|f| f.calibration == Some(key)) else {
                let known: Vec<&str> = FIGURES.iter().filter_map(|f| f.calibration).collect();
                return Err(Error::spec(
                    label,
                    key,
                    format!(
                        "unknown field; a calibration sets gpu, provenance and {}",
                        known.join(", ")
                    ),
                ));
            };
            check_sourced(label, key, v, bounds(f.name))?;
        }
        Ok(())
    }

    /// Checks that the calibration was measured on `gpu` (when it names a GPU).
    pub fn check_gpu(&self, gpu: &GpuSpec, label: &str) -> Result<()> {
        match &self.gpu {
            Some(g) if g != &gpu.name => Err(Error::spec(
                label,
                "gpu",
                format!(
                    "this calibration was measured on {g}, not on {} (pass --gpu {g})",
                    gpu.name
                ),
            )),
            _ => Ok(()),
        }
    }

    /// Parses and validates calibration text; `label` names it in errors.
    pub fn from_toml(text: &str, label: &str) -> Result<Self> {
        let c: Calibration = toml::from_str(text)
            .map_err(|e| Error::spec(label, toml_error_field(&e, text), toml_error_problem(&e)))?;
        c.check(label)?;
        for name in crate::spec::attention_table::KERNELS {
            let fwd = c.values.contains_key(&format!("{name}_fwd"));
            let bwd = c.values.contains_key(&format!("{name}_bwd"));
            if fwd != bwd {
                return Err(Error::spec(
                    label,
                    format!("{name}_fwd / {name}_bwd"),
                    "give both the forward and the backward fraction, or neither",
                ));
            }
        }
        Ok(c)
    }

    /// Reads and validates a calibration file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|e| Error::io(path, e))?;
        Self::from_toml(&text, &path.display().to_string())
    }
}

/// `gpu`, `provenance`, then the figures in [`FIGURES`] order.
impl Serialize for Calibration {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut m = s.serialize_map(None)?;
        if let Some(g) = &self.gpu {
            m.serialize_entry("gpu", g)?;
        }
        if let Some(p) = &self.provenance {
            m.serialize_entry("provenance", p)?;
        }
        for key in FIGURES.iter().filter_map(|f| f.calibration) {
            if let Some(v) = self.values.get(key) {
                m.serialize_entry(key, v)?;
            }
        }
        m.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_are_named_and_values_round_trip() {
        let e = Calibration::from_toml(
            "gpu = \"h100-sxm\"\n[bf16_tensr]\nvalue = 0.8\nsource = \"x\"\n",
            "cal.toml",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cal.toml") && e.contains("bf16_tensr"), "{e}");
        let e = Calibration::from_toml("[hbm]\nvalue = 1.5\nsource = \"x\"\n", "cal.toml")
            .unwrap_err()
            .to_string();
        assert!(e.contains("hbm") && e.contains("(0, 1]"), "{e}");
        let text = "gpu = \"h100-sxm\"\n[kernel_launch_s]\nvalue = 4e-6\nsource = \"fit\"\n\n[bf16_tensor]\nvalue = 0.8\nsource = \"fit\"\n";
        let c = Calibration::from_toml(text, "cal.toml").unwrap();
        assert_eq!(c.get("bf16_tensor").unwrap().value, 0.8);
        let back = toml::to_string(&c).unwrap();
        // Written in the order of the figure list: bf16_tensor before kernel_launch_s.
        assert!(back.find("[bf16_tensor]").unwrap() < back.find("[kernel_launch_s]").unwrap());
        let again = Calibration::from_toml(&back, "back.toml").unwrap();
        assert_eq!(again.get("kernel_launch_s").unwrap().value, 4e-6);
    }
}
