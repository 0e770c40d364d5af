//! Order statistics of repeated timings.

/// Summary of repeated timings of one kernel, in seconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Timing {
    pub median_s: f64,
    pub min_s: f64,
    pub p90_s: f64,
    pub reps: u32,
}

/// The q-quantile (0 <= q <= 1) of `sorted` by linear interpolation between closest ranks
/// (position q * (n - 1)); NaN for an empty slice.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q.clamp(0.0, 1.0) * (sorted.len() - 1) as f64;
    let lo = pos.floor() as usize;
    let hi = pos.ceil() as usize;
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Median, minimum and 90th percentile of `samples` (seconds).
pub fn summarize(samples: &[f64]) -> Timing {
    let mut sorted = samples.to_vec();
    sorted.sort_by(f64::total_cmp);
    Timing {
        median_s: quantile(&sorted, 0.5),
        min_s: sorted.first().copied().unwrap_or(f64::NAN),
        p90_s: quantile(&sorted, 0.9),
        reps: samples.len() as u32,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_odd_and_even_counts() {
        assert_eq!(quantile(&[1.0, 2.0, 3.0], 0.5), 2.0);
        assert_eq!(quantile(&[1.0, 2.0, 3.0, 4.0], 0.5), 2.5);
    }

    #[test]
    fn summary_ignores_input_order() {
        let t = summarize(&[5.0, 1.0, 4.0, 2.0, 3.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0]);
        assert_eq!(t.median_s, 6.0);
        assert_eq!(t.min_s, 1.0);
        assert_eq!(t.p90_s, 10.0);
        assert_eq!(t.reps, 11);
    }

    #[test]
    fn empty_is_nan() {
        assert!(quantile(&[], 0.5).is_nan());
    }
}
