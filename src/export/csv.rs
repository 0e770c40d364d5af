//! CSV output (RFC 4180 quoting): the rows of a sweep, one at a time.

use crate::analysis::sweep::{Row, COLUMNS};
use crate::error::{Error, Result};

/// The header line: [`COLUMNS`], the JSON field names of a row.
pub fn sweep_header() -> String {
    let mut s = COLUMNS.join(",");
    s.push('\n');
    s
}

/// One row of a sweep as a CSV line.
pub fn sweep_row(row: &Row) -> Result<String> {
    let v = serde_json::to_value(row)
        .map_err(|e| Error::Internal(format!("cannot serialize a row: {e}")))?;
    let cells: Vec<String> = COLUMNS
        .iter()
        .map(|c| match &v[*c] {
            serde_json::Value::Null => String::new(),
            serde_json::Value::String(t) if t.contains([',', '"', '\n', '\r']) => {
                format!("\"{}\"", t.replace('"', "\"\""))
            }
            serde_json::Value::String(t) => t.clone(),
            other => other.to_string(),
        })
        .collect();
    let mut s = cells.join(",");
    s.push('\n');
    Ok(s)
}
