//! CSV output (RFC 4180 quoting): the rows of a sweep.

use crate::analysis::sweep::{SweepResult, COLUMNS};
use crate::error::{Error, Result};

/// The rows of a sweep as CSV, columns [`COLUMNS`] (the JSON field names of a row).
pub fn sweep(r: &SweepResult) -> Result<String> {
    let mut s = COLUMNS.join(",");
    s.push('\n');
    for row in &r.rows {
        let v = serde_json::to_value(row)
            .map_err(|e| Error::Internal(format!("cannot serialize a row: {e}")))?;
        let cells: Vec<String> = COLUMNS
            .iter()
            .map(|c| match &v[*c] {
                serde_json::Value::Null => String::new(),
                serde_json::Value::String(t) if t.contains([',', '"', '\n']) => {
                    format!("\"{}\"", t.replace('"', "\"\""))
                }
                serde_json::Value::String(t) => t.clone(),
                other => other.to_string(),
            })
            .collect();
        s.push_str(&cells.join(","));
        s.push('\n');
    }
    Ok(s)
}
