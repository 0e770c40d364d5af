//! Cluster networks (models/network/*.toml): GPUs per node, the adapters that link nodes and
//! what NCCL gets out of them. Every number is a [`Sourced`] value.

use super::hardware::Sourced;
use crate::error::{Error, Result};
use crate::spec::toml_error::{toml_error_field, toml_error_problem};
use serde::{Deserialize, Serialize};

/// A node: its GPUs and network adapters.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    /// GPUs per node (the NVLink domain of the GPU file's all-reduce bus bandwidth).
    pub gpus: Sourced,
    /// Network adapters per node for the compute fabric (rails).
    pub nics: Sourced,
    /// Line rate of one adapter, Gb/s.
    pub nic_gbps: Sourced,
}

/// What collectives across nodes get.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Fabric {
    /// Achievable fraction of the line rate.
    pub efficiency: Sourced,
    /// Latency of one step of a ring collective across nodes (s).
    pub ring_step_latency_s: Sourced,
    /// Latency of one level of a tree all-reduce across nodes (s).
    pub tree_level_latency_s: Sourced,
}

/// A cluster network.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// Short name.
    pub name: String,
    /// One line for people.
    pub description: String,
    /// Nodes.
    pub node: Node,
    /// Links between nodes.
    pub fabric: Fabric,
}

impl NetworkSpec {
    /// Parses and checks a network file; `file` names it in errors.
    pub fn from_toml(text: &str, file: &str) -> Result<Self> {
        let n: NetworkSpec = toml::from_str(text)
            .map_err(|e| Error::spec(file, toml_error_field(&e, text), toml_error_problem(&e)))?;
        let check = |field: &str, v: &Sourced, lo: f64, hi: f64, integer: bool| -> Result<()> {
            let x = v.value;
            if !(x.is_finite() && (lo..=hi).contains(&x)) || (integer && x.fract() != 0.0) {
                return Err(Error::spec(
                    file,
                    field,
                    format!(
                        "{x} must be {}between {lo} and {hi}",
                        if integer { "a whole number " } else { "" }
                    ),
                ));
            }
            Ok(())
        };
        check("node.gpus.value", &n.node.gpus, 1.0, 1024.0, true)?;
        check("node.nics.value", &n.node.nics, 1.0, 1024.0, true)?;
        check("node.nic_gbps.value", &n.node.nic_gbps, 1.0, 1e6, false)?;
        check(
            "fabric.efficiency.value",
            &n.fabric.efficiency,
            0.01,
            1.0,
            false,
        )?;
        check(
            "fabric.ring_step_latency_s.value",
            &n.fabric.ring_step_latency_s,
            0.0,
            1.0,
            false,
        )?;
        check(
            "fabric.tree_level_latency_s.value",
            &n.fabric.tree_level_latency_s,
            0.0,
            1.0,
            false,
        )?;
        Ok(n)
    }

    /// Inter-node bandwidth per GPU and direction, Gb/s: the node's adapters shared by its GPUs.
    pub fn gbps_per_gpu(&self) -> f64 {
        self.node.nics.value * self.node.nic_gbps.value / self.node.gpus.value
    }
}
