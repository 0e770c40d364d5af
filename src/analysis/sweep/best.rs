//! The best rows of a sweep by an objective, kept while the rows stream past (a sweep of
//! millions of configurations keeps only `k` of them).

use super::Row;
use crate::error::{Error, Result};
use serde::Serialize;

/// What "best" means for a sweep (`--objective`): the configuration that trains fastest or
/// cheapest per sample, among those that fit in memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SweepObjective {
    /// Least time: the training time with a dataset, else seconds per sample
    /// (1 / samples per second), so that rows of different batch sizes compare.
    Time,
    /// Least cost: the training cost with a dataset, else USD per sample
    /// (GPUs × price per GPU-hour / 3600 / samples per second).
    Cost,
}

impl std::str::FromStr for SweepObjective {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "time" => Ok(SweepObjective::Time),
            "cost" => Ok(SweepObjective::Cost),
            _ => Err(Error::Invalid(format!(
                "--objective {s}: choose time or cost"
            ))),
        }
    }
}

impl std::fmt::Display for SweepObjective {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SweepObjective::Time => "time",
            SweepObjective::Cost => "cost",
        })
    }
}

impl SweepObjective {
    /// The value to minimise for `row` and what it is, or `None` when the row does not fit,
    /// failed, or lacks the figure (no price for cost).
    pub fn value(self, row: &Row) -> Option<(f64, &'static str)> {
        if row.fits != Some(true) {
            return None;
        }
        let per_sample_s = row.samples_per_s.filter(|v| *v > 0.0).map(|v| 1.0 / v);
        let v = match self {
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
        let Some((v, what)) = self.objective.value(row) else {
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
