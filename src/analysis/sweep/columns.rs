//! A sweep's rows as columns: one typed array per field of [`Row`], named and ordered as
//! [`COLUMNS`], so that a million rows make a data frame without a million objects. Absent
//! values (a number of an invalid configuration, `error` of a valid one) are masked, never
//! invented.

use super::{Row, COLUMNS};
use std::collections::HashMap;

/// One column.
#[derive(Debug, Clone, PartialEq)]
pub enum Column {
    /// Numbers; `valid[i]` is false where row `i` has none.
    Float {
        /// The values (0 where absent).
        values: Vec<f64>,
        /// Which are present.
        valid: Vec<bool>,
    },
    /// Whole numbers; `valid[i]` is false where row `i` has none.
    Int {
        /// The values (0 where absent).
        values: Vec<i64>,
        /// Which are present.
        valid: Vec<bool>,
    },
    /// Booleans; `valid[i]` is false where row `i` has none.
    Bool {
        /// The values (false where absent).
        values: Vec<bool>,
        /// Which are present.
        valid: Vec<bool>,
    },
    /// Text as codes into `labels` (a categorical column); -1 where a row has none.
    Text {
        /// Per row, the index of its label, or -1.
        codes: Vec<i32>,
        /// The distinct labels, in order of first appearance.
        labels: Vec<String>,
        /// Label -> code.
        #[doc(hidden)]
        index: HashMap<String, i32>,
    },
}

impl Column {
    fn float() -> Self {
        Column::Float {
            values: Vec::new(),
            valid: Vec::new(),
        }
    }
    fn int() -> Self {
        Column::Int {
            values: Vec::new(),
            valid: Vec::new(),
        }
    }
    fn text() -> Self {
        Column::Text {
            codes: Vec::new(),
            labels: Vec::new(),
            index: HashMap::new(),
        }
    }

    fn push_f64(&mut self, v: Option<f64>) {
        if let Column::Float { values, valid } = self {
            values.push(v.unwrap_or(0.0));
            valid.push(v.is_some());
        }
    }

    fn push_int(&mut self, v: Option<u64>) {
        if let Column::Int { values, valid } = self {
            values.push(v.map_or(0, |v| i64::try_from(v).unwrap_or(i64::MAX)));
            valid.push(v.is_some());
        }
    }

    fn push_bool(&mut self, v: Option<bool>) {
        if let Column::Bool { values, valid } = self {
            values.push(v.unwrap_or(false));
            valid.push(v.is_some());
        }
    }

    fn push_text(&mut self, v: Option<&str>) {
        if let Column::Text {
            codes,
            labels,
            index,
        } = self
        {
            let code = match v {
                None => -1,
                // Neighbouring rows mostly repeat the label before.
                Some(s)
                    if codes
                        .last()
                        .is_some_and(|&c| c >= 0 && labels[c as usize] == s) =>
                {
                    codes[codes.len() - 1]
                }
                Some(s) => match index.get(s) {
                    Some(&c) => c,
                    None => {
                        let c = i32::try_from(labels.len()).unwrap_or(i32::MAX);
                        labels.push(s.to_string());
                        index.insert(s.to_string(), c);
                        c
                    }
                },
            };
            codes.push(code);
        }
    }

    /// Row `i` as `--json` writes it (for tests and small outputs).
    pub fn json(&self, i: usize) -> serde_json::Value {
        use serde_json::Value;
        match self {
            Column::Float { values, valid } => {
                if valid[i] {
                    serde_json::json!(values[i])
                } else {
                    Value::Null
                }
            }
            Column::Int { values, valid } => {
                if valid[i] {
                    serde_json::json!(values[i])
                } else {
                    Value::Null
                }
            }
            Column::Bool { values, valid } => {
                if valid[i] {
                    Value::Bool(values[i])
                } else {
                    Value::Null
                }
            }
            Column::Text { codes, labels, .. } => match usize::try_from(codes[i]) {
                Ok(c) => Value::String(labels[c].clone()),
                Err(_) => Value::Null,
            },
        }
    }
}

/// A sweep's rows by column, in [`COLUMNS`] order.
#[derive(Debug, Clone, PartialEq)]
pub struct Columns {
    /// (name, column), one per field of [`Row`].
    pub columns: Vec<(&'static str, Column)>,
    /// Rows pushed.
    pub rows: usize,
}

impl Default for Columns {
    fn default() -> Self {
        Self::new()
    }
}

impl Columns {
    /// No rows yet.
    pub fn new() -> Self {
        let kind = |name: &str| match name {
            "model" | "gpu" | "attention" | "mode" | "precision" | "checkpointing" | "error" => {
                Column::text()
            }
            "seq" | "batch_per_gpu" | "gpus" | "grad_accum" | "zero" | "ema" | "ep" | "tp"
            | "pp" | "vpp" | "cp" | "max_batch" => Column::int(),
            "fits" => Column::Bool {
                values: Vec::new(),
                valid: Vec::new(),
            },
            _ => Column::float(),
        };
        Columns {
            columns: COLUMNS.iter().map(|n| (*n, kind(n))).collect(),
            rows: 0,
        }
    }

    /// Adds one row.
    pub fn push(&mut self, r: &Row) {
        let c = &mut self.columns;
        let mut k = 0;
        let mut next = || {
            k += 1;
            k - 1
        };
        c[next()].1.push_text(Some(&r.model));
        c[next()].1.push_text(Some(&r.gpu));
        c[next()].1.push_int(r.seq);
        c[next()].1.push_int(Some(r.batch_per_gpu));
        c[next()].1.push_text(Some(&r.attention));
        c[next()].1.push_text(Some(&r.mode));
        c[next()].1.push_text(Some(&r.precision));
        c[next()].1.push_text(Some(&r.checkpointing));
        for v in [r.gpus, r.grad_accum, r.zero.into(), r.ema.into()] {
            c[next()].1.push_int(Some(v));
        }
        for v in [r.ep, r.tp, r.pp, r.vpp, r.cp] {
            c[next()].1.push_int(Some(v));
        }
        for v in [
            r.step_time_s,
            r.forward_s,
            r.backward_s,
            r.optimizer_s,
            r.comm_exposed_s,
            r.samples_per_s,
            r.tokens_per_s,
            r.mfu,
            r.hfu,
            r.memory_per_gpu_bytes,
        ] {
            c[next()].1.push_f64(v);
        }
        c[next()].1.push_bool(r.fits);
        c[next()].1.push_int(r.max_batch);
        for v in [
            r.usd_per_gpu_hour,
            r.cost_per_step_usd,
            r.train_time_s,
            r.gpu_hours,
            r.train_cost_usd,
        ] {
            c[next()].1.push_f64(v);
        }
        c[next()].1.push_text(r.error.as_deref());
        self.rows += 1;
    }

    /// Row `i` as the JSON object `roofline sweep --out x.json` writes for it.
    pub fn row_json(&self, i: usize) -> serde_json::Value {
        serde_json::Value::Object(
            self.columns
                .iter()
                .map(|(n, c)| (n.to_string(), c.json(i)))
                .collect(),
        )
    }
}
