//! The audit of the seed document's plan: its throughput and training-time figures beside
//! roofline's estimate under each reading of "token".

use crate::error::Result;
pub fn seed_audit() -> Result<String> {
    Ok(String::new())
}
