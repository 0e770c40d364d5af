//! Analyses: each takes a [`crate::scenario::Scenario`] (or the parts it needs) and returns data.
//! None prints or writes; [`crate::export`] and [`crate::plot`] render what they return.
//!
//! - [`summary`]: what `estimate` and `memory` report (throughput, training time, cost,
//!   assumptions) and the per-op times of `estimate --ops`;
//! - [`catalog`]: the embedded models and GPUs;
//! - [`sweep`]: the cartesian product of varied settings, in parallel;
//! - [`sensitivity`]: each assumption moved over its range;
//! - [`uncertainty`]: a Monte Carlo interval of the step time;
//! - [`flash`]: attention implementations across sequence lengths;
//! - [`roofline`]: the points and roofs of a roofline chart;
//! - [`audit`]: a plan's claims checked against the model;
//! - [`fidelity`]: each modelled mechanism's effect on the validation sets.

pub mod audit;
pub mod catalog;
pub mod fidelity;
pub mod findings;
pub mod flash;
pub mod model_error;
pub mod published;
pub mod roofline;
pub mod search;
pub mod sensitivity;
pub mod summary;
pub mod sweep;
pub mod uncertainty;
