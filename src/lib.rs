//! roofline: a first-principles model of transformer training on GPUs.
//!
//! For every op of a training step it counts FLOPs and bytes moved through GPU memory
//! ([`graph`]), places each op on the GPU's roofline and adds up a bottleneck-aware step time
//! ([`time`]), and from it throughput, MFU, memory ([`memory`]), training time and cost.
//! CUDA microkernels ([`gpu`]) measure what a real GPU reaches.

pub mod audit;
pub mod calibrate;
pub mod cli;
pub mod error;
pub mod export;
pub mod flash_report;
pub mod gpu;
pub mod graph;
pub mod memory;
pub mod plot;
pub mod report;
pub mod sensitivity;
pub mod spec;
pub mod sweep;
pub mod time;
pub mod uncertainty;
pub mod units;
pub mod validate;
