//! The benchmark report (schema "roofline-bench/1"), its JSON form and its text table.

use serde::{Deserialize, Serialize};

use super::stats::Timing;

pub const SCHEMA: &str = "roofline-bench/1";

#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct DeviceInfo {
    pub name: String,
    pub compute_capability: String,
    pub sm_count: u32,
    pub l2_bytes: u64,
    pub memory_bytes: u64,
    pub clock_khz: u64,
    pub memory_clock_khz: u64,
    pub memory_bus_width_bits: u32,
    /// Kernel-module driver version (from /proc/driver/nvidia/version), empty if unreadable.
    pub driver_version: String,
    /// Highest CUDA version the driver supports (cuDriverGetVersion).
    pub cuda_driver_version: String,
    pub nvrtc_version: String,
}

/// One measured kernel at one size.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BenchResult {
    /// memory | gemm | attention | norm | cublas
    pub suite: String,
    pub kernel: String,
    /// Human-readable shape.
    pub shape: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub m: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub k: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub elements: Option<u64>,
    /// Floating-point operations of one run (0 for pure data movement).
    pub flops: f64,
    /// Fewest device-memory bytes one run must read plus write.
    pub bytes: f64,
    /// Median time of one run.
    pub time_s: f64,
    pub time_min_s: f64,
    pub time_p90_s: f64,
    pub reps: u32,
    pub flops_per_s: f64,
    pub bytes_per_s: f64,
    /// Achieved rate over the relevant peak (tensor FLOP/s, fp32 FLOP/s or memory bandwidth).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fraction_of_peak: Option<f64>,
    /// ||out - ref|| / ||ref|| of the checked run; infinite (JSON null) if an output was NaN,
    /// i.e. unwritten poison, or the check could not run.
    #[serde(with = "finite_or_null")]
    pub max_rel_error: f64,
    /// Whether the correctness check passed. Timings of an incorrect kernel are not valid.
    pub correct: bool,
    /// The CUDA error that stopped this measurement, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl BenchResult {
    /// A result from a timing and the work of one run; rates use the median time.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        suite: &str,
        kernel: &str,
        shape: String,
        flops: f64,
        bytes: f64,
        timing: Timing,
        rel_error: f64,
        tolerance: f64,
    ) -> Self {
        let rate = |amount: f64| {
            if timing.median_s > 0.0 {
                amount / timing.median_s
            } else {
                0.0
            }
        };
        BenchResult {
            suite: suite.to_string(),
            kernel: kernel.to_string(),
            shape,
            m: None,
            n: None,
            k: None,
            elements: None,
            flops,
            bytes,
            time_s: timing.median_s,
            time_min_s: timing.min_s,
            time_p90_s: timing.p90_s,
            reps: timing.reps,
            flops_per_s: rate(flops),
            bytes_per_s: rate(bytes),
            fraction_of_peak: None,
            max_rel_error: rel_error,
            correct: rel_error.is_finite() && rel_error <= tolerance,
            error: None,
        }
    }

    pub fn with_mnk(mut self, m: u64, n: u64, k: u64) -> Self {
        self.m = Some(m);
        self.n = Some(n);
        self.k = Some(k);
        self
    }

    pub fn with_elements(mut self, elements: u64) -> Self {
        self.elements = Some(elements);
        self
    }
}

/// Non-finite f64 as JSON null (JSON has no infinity), read back as +infinity.
mod finite_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(v: &f64, s: S) -> Result<S::Ok, S::Error> {
        if v.is_finite() {
            s.serialize_f64(*v)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::INFINITY))
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct BenchReport {
    pub schema: String,
    /// UTC, ISO 8601.
    pub date: String,
    /// Full command line.
    pub command: String,
    pub roofline_version: String,
    pub device: DeviceInfo,
    pub results: Vec<BenchResult>,
}

impl BenchReport {
    pub fn to_json(&self) -> String {
        serde_json::to_string_pretty(self).expect("a BenchReport always serializes")
    }
}

/// UTC date-time of a Unix time in seconds, "YYYY-MM-DDTHH:MM:SSZ" (proleptic Gregorian).
pub fn iso8601_utc(unix_seconds: u64) -> String {
    let days = (unix_seconds / 86_400) as i64;
    let secs = unix_seconds % 86_400;
    // Days since 1970-01-01 to a civil date (H. Hinnant's days_from_civil, inverted).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs % 3600) / 60,
        secs % 60
    )
}

fn si(value: f64, unit: &str) -> String {
    if value <= 0.0 || !value.is_finite() {
        return "-".to_string();
    }
    let (scaled, prefix) = [(1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
        .iter()
        .find(|(s, _)| value >= *s)
        .map(|(s, p)| (value / s, *p))
        .unwrap_or((value, ""));
    format!("{scaled:.1} {prefix}{unit}")
}

/// The report as a fixed-width text table, one row per result.
pub fn format_table(report: &BenchReport) -> String {
    let mut out = format!(
        "{} ({}, {} SMs), {}\n{:<10} {:<16} {:<28} {:>11} {:>13} {:>12} {:>7} {:>9} {}\n",
        report.device.name,
        report.device.compute_capability,
        report.device.sm_count,
        report.date,
        "suite",
        "kernel",
        "shape",
        "median",
        "FLOP/s",
        "bytes/s",
        "peak",
        "rel.err",
        "check"
    );
    for r in &report.results {
        let peak = r
            .fraction_of_peak
            .map(|f| format!("{:.1}%", 100.0 * f))
            .unwrap_or_else(|| "-".to_string());
        out.push_str(&format!(
            "{:<10} {:<16} {:<28} {:>8.1} us {:>13} {:>12} {:>7} {:>9.1e} {}\n",
            r.suite,
            r.kernel,
            r.shape,
            r.time_s * 1e6,
            si(r.flops_per_s, "FLOP/s"),
            si(r.bytes_per_s, "B/s"),
            peak,
            r.max_rel_error,
            if r.correct {
                "ok"
            } else {
                "FAILED (timing invalid)"
            }
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> BenchReport {
        let timing = Timing {
            median_s: 2e-3,
            min_s: 1.9e-3,
            p90_s: 2.1e-3,
            reps: 50,
        };
        let gemm = BenchResult::new(
            "gemm",
            "gemm_mma_sync",
            "8192x8192x8192".into(),
            2.0 * 8192f64.powi(3),
            3.0 * 2.0 * 8192f64.powi(2),
            timing,
            3e-3,
            1e-2,
        )
        .with_mnk(8192, 8192, 8192);
        let copy = BenchResult::new(
            "memory",
            "copy",
            "1 GiB".into(),
            0.0,
            2.0 * 1073741824.0,
            timing,
            f64::INFINITY,
            1e-5,
        )
        .with_elements(1 << 28);
        BenchReport {
            schema: SCHEMA.into(),
            date: iso8601_utc(0),
            command: "roofline bench".into(),
            roofline_version: env!("CARGO_PKG_VERSION").into(),
            device: DeviceInfo::default(),
            results: vec![gemm, copy],
        }
    }

    #[test]
    fn json_has_the_schema_fields() {
        let v: serde_json::Value = serde_json::from_str(&sample().to_json()).unwrap();
        assert_eq!(v["schema"], "roofline-bench/1");
        for key in ["date", "command", "roofline_version", "device", "results"] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        for key in [
            "name",
            "compute_capability",
            "sm_count",
            "l2_bytes",
            "memory_bytes",
            "clock_khz",
            "memory_clock_khz",
            "memory_bus_width_bits",
            "driver_version",
            "cuda_driver_version",
            "nvrtc_version",
        ] {
            assert!(v["device"].get(key).is_some(), "missing device.{key}");
        }
        let r = &v["results"][0];
        for key in [
            "suite",
            "kernel",
            "shape",
            "m",
            "n",
            "k",
            "flops",
            "bytes",
            "time_s",
            "time_min_s",
            "time_p90_s",
            "reps",
            "flops_per_s",
            "bytes_per_s",
            "max_rel_error",
            "correct",
        ] {
            assert!(r.get(key).is_some(), "missing results[0].{key}");
        }
        assert!((r["flops_per_s"].as_f64().unwrap() - 2.0 * 8192f64.powi(3) / 2e-3).abs() < 1.0);
        assert_eq!(r["correct"], true);
    }

    #[test]
    fn failed_check_is_marked_and_serializes() {
        let report = sample();
        assert!(!report.results[1].correct);
        let v: serde_json::Value = serde_json::from_str(&report.to_json()).unwrap();
        assert_eq!(v["results"][1]["correct"], false);
        assert!(v["results"][1]["max_rel_error"].is_null());
        let back: BenchReport = serde_json::from_str(&report.to_json()).unwrap();
        assert!(back.results[1].max_rel_error.is_infinite());
        assert!(format_table(&report).contains("FAILED"));
    }

    #[test]
    fn dates_are_iso8601_utc() {
        assert_eq!(iso8601_utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(iso8601_utc(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(iso8601_utc(1_795_800_000), "2026-11-27T17:20:00Z");
    }
}
