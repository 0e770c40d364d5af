//! roofline: a first-principles model of transformer training on GPUs.
//!
//! Data flows one way: the command line ([`cli`]) or a plan file becomes a
//! [`scenario::Scenario`] (model and GPU specs from [`spec`]); the scenario becomes the op graph
//! of one training step ([`graph`]: FLOPs and bytes per op); [`time`] places each op on the GPU's
//! roofline, [`memory`] adds up the footprint and [`estimate`] the whole step; [`analysis`] turns
//! estimates into data (sweeps, sensitivity, audits...), which [`export`] and [`plot`] render and
//! [`files`] writes. CUDA microkernels ([`gpu`]) measure what a real GPU reaches; [`calibrate`]
//! and [`validate`] fit the model to measurements and check it against them.

pub mod analysis;
pub mod calibrate;
pub mod cli;
pub mod error;
pub mod estimate;
pub mod export;
pub mod files;
pub mod gpu;
pub mod graph;
pub mod memory;
pub mod plot;
pub mod reports;
pub mod scenario;
pub mod spec;
pub mod time;
pub mod units;
pub mod validate;
