//! Uncertainty of the step time: Monte Carlo propagation of the `range`s in the GPU file (and
//! the calibration file, whose ranges take precedence for the values it sets).
//!
//! Method (stated in every output): [`SAMPLES`] samples with the fixed seed [`SEED`]; in each,
//! every value that has a range in a file is drawn uniformly and independently within
//! `[low, high]` (values without a range stay fixed); the interval is the 5th to 95th percentile
//! of the sampled step times (90%). Random numbers come from SplitMix64 (Steele, Lea & Flood,
//! "Fast splittable pseudorandom number generators", OOPSLA 2014), 53 bits mapped to [0, 1).

use super::sensitivity::assumptions;
use crate::error::Result;
use crate::estimate::Estimator;
use crate::scenario::Scenario;
use serde::Serialize;

/// Monte Carlo samples.
pub const SAMPLES: usize = 1000;

/// Fixed seed: intervals are reproducible.
pub const SEED: u64 = 0x5EED_2026;

/// Coverage of the interval.
pub const COVERAGE: f64 = 0.90;

/// SplitMix64 generator.
#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    /// A generator with `seed`.
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn next_f64(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// The step-time interval of a configuration.
#[derive(Debug, Clone, Serialize)]
pub struct Interval {
    /// Point estimate (all values at their nominal value).
    pub step_time_s: f64,
    /// `[low, high]` percentiles of the step time.
    pub step_time_interval_s: [f64; 2],
    /// Coverage of the interval (0.9).
    pub coverage: f64,
    /// Monte Carlo samples.
    pub samples: usize,
    /// Seed.
    pub seed: u64,
    /// Names of the values sampled.
    pub sampled: Vec<String>,
    /// The model's own error on its validation sets for a scenario like this one.
    pub model_error: super::model_error::ModelError,
    /// The step-time interval widened by the model's error: low × (1 − e), high × (1 + e).
    pub step_time_interval_with_model_error_s: [f64; 2],
    /// With a dataset: `[low, high]` of the training time, the step-time interval with the
    /// model's error times the optimizer steps.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub train_time_interval_s: Option<[f64; 2]>,
    /// The price per GPU-hour sampled uniformly within: the GPU file's range, or the one price
    /// given with --price-per-gpu-hour.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_range_usd_per_gpu_hour: Option<[f64; 2]>,
    /// With a dataset and a price: `[low, high]` of the training cost in USD, each sample's
    /// training time times GPUs times a price drawn within its range (independently of the
    /// GPU figures, from a second generator seeded [`SEED`] + 1), widened by the model's error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_interval_usd: Option<[f64; 2]>,
}

/// Propagates the files' ranges to the step time of scenario `s`.
pub fn step_interval(s: &Scenario) -> Result<Interval> {
    let (model, mach, run) = (&s.model, s.machine, &s.run);
    let params: Vec<_> = assumptions(&s.gpu, s.calibration.as_ref(), &mach)
        .into_iter()
        .filter(|p| p.from_file)
        .collect();
    let mut est = Estimator::new();
    let point = est.estimate(model, &mach, run)?;
    let nominal = point.step_time.0;
    let steps = super::summary::dataset(s, &point).map(|d| d.steps);
    let price_range = match (s.price_per_gpu_hour, &s.gpu.price) {
        (Some(p), _) => Some([p, p]),
        (None, Some(p)) => Some(
            p.usd_per_gpu_hour
                .range
                .unwrap_or([p.usd_per_gpu_hour.value, p.usd_per_gpu_hour.value]),
        ),
        (None, None) => None,
    };
    let mut price_rng = SplitMix64::new(SEED + 1);
    let gpus = run.fleet.gpus as f64;
    let mut costs = Vec::with_capacity(SAMPLES);
    let mut rng = SplitMix64::new(SEED);
    let mut times = Vec::with_capacity(SAMPLES);
    for _ in 0..SAMPLES {
        let mut m = mach;
        for p in &params {
            let u = rng.next_f64();
            m = p.apply(&m, p.range[0] + u * (p.range[1] - p.range[0]));
        }
        let t = est.estimate(model, &m, run)?.step_time.0;
        times.push(t);
        if let (Some(n), Some([lo, hi])) = (steps, price_range) {
            let price = lo + price_rng.next_f64() * (hi - lo);
            costs.push(t * n / 3600.0 * gpus * price);
        }
    }
    let tail = (1.0 - COVERAGE) / 2.0;
    let interval = |v: &mut Vec<f64>| -> [f64; 2] {
        v.sort_by(f64::total_cmp);
        let q = |f: f64| v[((v.len() - 1) as f64 * f).round() as usize];
        [q(tail), q(1.0 - tail)]
    };
    let step = interval(&mut times);
    let model_error = super::model_error::model_error(s)?;
    let e = model_error.fraction;
    let widen = |[lo, hi]: [f64; 2]| [lo * (1.0 - e), hi * (1.0 + e)];
    let with_model = widen(step);
    Ok(Interval {
        step_time_s: nominal,
        step_time_interval_s: step,
        coverage: COVERAGE,
        samples: SAMPLES,
        seed: SEED,
        sampled: params.iter().map(|p| p.name.to_string()).collect(),
        // Training time is the step time times a fixed number of steps: same percentiles.
        train_time_interval_s: steps.map(|n| [with_model[0] * n, with_model[1] * n]),
        price_range_usd_per_gpu_hour: price_range,
        cost_interval_usd: (!costs.is_empty()).then(|| widen(interval(&mut costs))),
        model_error,
        step_time_interval_with_model_error_s: with_model,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitmix_is_uniform_enough_and_reproducible() {
        let mut a = SplitMix64::new(7);
        let mut b = SplitMix64::new(7);
        let xs: Vec<f64> = (0..10_000).map(|_| a.next_f64()).collect();
        assert!(xs.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = xs.iter().sum::<f64>() / xs.len() as f64;
        assert!((mean - 0.5).abs() < 0.01, "mean {mean}");
        assert_eq!(b.next_f64(), xs[0]);
    }
}
