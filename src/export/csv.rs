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

/// `roofline search --csv`: one line per ranked execution, best first.
pub fn search(r: &crate::analysis::search::SearchResult) -> String {
    let mut s = String::from(
        "rank,tp,sp,pp,vpp,cp,dp,batch,grad_accum,checkpointing,zero,step_time_s,mfu,tokens_per_s,memory_per_gpu_bytes,communication_share,bubble_share,cost_per_step_usd\n",
    );
    for (i, row) in r.rows.iter().enumerate() {
        let c = &row.candidate;
        let p = &c.parallel;
        s += &format!(
            "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}\n",
            i + 1,
            p.tp,
            p.sp,
            p.pp,
            p.vpp,
            p.cp,
            c.dp,
            c.batch,
            c.grad_accum,
            c.checkpointing,
            c.zero,
            row.step_time_s,
            row.mfu,
            row.tokens_per_s,
            row.memory_per_gpu_bytes,
            row.communication_share,
            row.bubble_share,
            row.cost_per_step_usd
                .map_or(String::new(), |x| x.to_string())
        );
    }
    s
}
