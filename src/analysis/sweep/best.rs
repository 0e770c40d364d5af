//! The best rows of a sweep by an objective, kept while the rows stream past (a sweep of
//! millions of configurations keeps only `k` of them).

use super::Row;
pub use crate::analysis::search::Objective as SweepObjective;

/// What "best" means for a sweep (`--objective`, the same words as `roofline search`'s): the
/// configuration that trains fastest (`time`: the training time with a dataset, else seconds
/// per sample, 1 / samples per second, so that rows of different batch sizes compare) or
/// cheapest (`cost`: the training cost with a dataset, else USD per sample, GPUs × price per
/// GPU-hour / 3600 / samples per second) among those that fit in memory. The value to minimise
/// for `row` and what it is, or `None` when the row does not fit, failed, or lacks the figure
/// (no price for cost).
pub fn objective_value(objective: SweepObjective, row: &Row) -> Option<(f64, &'static str)> {
    if row.fits != Some(true) {
        return None;
    }
    let per_sample_s = row.samples_per_s.filter(|v| *v > 0.0).map(|v| 1.0 / v);
    let v = match objective {
        SweepObjective::Time => match row.train_time_s {
            Some(t) => (t, "training time, s"),
            None => (per_sample_s?, "seconds per sample"),
        },
        SweepObjective::Cost => match row.train_cost_usd {
            Some(c) => (c, "training cost, USD"),
            None => (
                row.usd_per_gpu_hour? * row.gpus as f64 / 3600.0 * per_sample_s?,
                "USD per sample",
            ),
        },
    };
    v.0.is_finite().then_some(v)
}

/// The `k` best rows seen so far (ties keep the first seen, so the answer does not depend on
/// evaluation order).
#[derive(Debug, Clone)]
pub struct Best {
    /// The objective.
    pub objective: SweepObjective,
    k: usize,
    /// (value, what the value is, row), best first.
    pub rows: Vec<(f64, &'static str, Row)>,
    /// Rows that had a value (fit, and had the figures).
    pub candidates: usize,
}

impl Best {
    /// Keeps the `k` best by `objective`.
    pub fn new(objective: SweepObjective, k: usize) -> Self {
        Best {
            objective,
            k,
            rows: Vec::with_capacity(k + 1),
            candidates: 0,
        }
    }

    /// Considers `row`.
    pub fn offer(&mut self, row: &Row) {
        let Some((v, what)) = objective_value(self.objective, row) else {
            return;
        };
        self.candidates += 1;
        if self.rows.len() == self.k && self.rows.last().is_some_and(|(w, _, _)| v >= *w) {
            return;
        }
        let at = self.rows.partition_point(|(w, _, _)| *w <= v);
        self.rows.insert(at, (v, what, row.clone()));
        self.rows.truncate(self.k);
    }
}
