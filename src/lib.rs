//! roofline: a first-principles model of transformer training on GPUs.
//!
//! For every op of a training step it counts FLOPs and bytes moved through GPU memory
//! ([`graph`]), places each op on the GPU's roofline and adds up a bottleneck-aware step time
//! ([`time`]), and from it throughput, MFU, memory ([`memory`]), training time and cost.

pub mod error;
pub mod graph;
pub mod memory;
pub mod spec;
pub mod time;
pub mod units;
pub mod audit;
pub mod cli;
pub mod export;
pub mod flash_report;
pub mod plot;
pub mod report;
pub mod sensitivity;
pub mod sweep;
pub mod uncertainty;
