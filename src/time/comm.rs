//! Data-parallel communication: gradient all-reduce (DDP), ZeRO's reduce-scatter and
//! all-gather, within a node and across nodes, and how much of it backward hides.
//!
//! Ring all-reduce of `x` bytes over `n` GPUs moves 2(n-1)/n · x bytes per GPU; nccl-tests'
//! bus bandwidth is defined so that `time = x · 2(n-1)/n / busbw` (NVIDIA/nccl-tests
//! doc/PERFORMANCE.md), so the measured busbw from the GPU file is used directly, plus a fixed
//! latency per call. Across nodes the all-reduce is hierarchical: reduce-scatter and all-gather
//! inside each node (one intra-node all-reduce's worth of traffic) and an all-reduce of x/g bytes
//! per GPU across the N nodes over the inter-node link: 2(N-1)/N · (x/g) / (link · efficiency).
//!
//! Overlap (PyTorch DDP): gradients are reduced in buckets of 25 MiB as backward produces them;
//! all but the last bucket can hide behind the rest of backward:
//! exposed = max(total - backward · (1 - 1/buckets), total / buckets).
//! ZeRO-1/2 replace the all-reduce by reduce-scatter + all-gather: the same volume. ZeRO-3 adds an
//! all-gather of the parameters before forward and again before backward, hidden behind forward
//! and backward compute by prefetching up to the same rule. Communication kernels slowing the
//! overlapped compute (SM contention) is not modelled.

use super::efficiency::Machine;
use crate::graph::{Precision, StepConfig};
use crate::units::Seconds;

/// DDP's default bucket size (`bucket_cap_mb = 25`).
pub const BUCKET_BYTES: f64 = 25.0 * 1024.0 * 1024.0;

/// The GPUs of a run and the links between nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fleet {
    /// GPUs in total.
    pub gpus: u64,
    /// GPUs per node.
    pub gpus_per_node: u64,
    /// Inter-node bandwidth per GPU, per direction (B/s).
    pub inter_node_bandwidth: f64,
    /// Achievable fraction of the inter-node bandwidth.
    pub inter_node_efficiency: f64,
}

impl Default for Fleet {
    /// 8 GPUs in one node; between nodes 8 x 400 Gb/s InfiniBand NDR per node, one NIC per GPU
    /// (50 GB/s per GPU per direction), 80% achievable (assumption).
    fn default() -> Self {
        Fleet {
            gpus: 8,
            gpus_per_node: 8,
            inter_node_bandwidth: 50e9,
            inter_node_efficiency: 0.8,
        }
    }
}

impl Fleet {
    /// Nodes (rounded up).
    pub fn nodes(&self) -> u64 {
        self.gpus.div_ceil(self.gpus_per_node.max(1))
    }
}

/// Time of one all-reduce of `bytes` per GPU over the fleet.
pub fn allreduce_time(fleet: &Fleet, mach: &Machine, bytes: f64) -> Seconds {
    if fleet.gpus <= 1 {
        return Seconds::ZERO;
    }
    let g = fleet.gpus_per_node.min(fleet.gpus) as f64;
    let nodes = fleet.nodes() as f64;
    let intra = if g > 1.0 {
        bytes * 2.0 * (g - 1.0) / g / mach.allreduce_busbw
    } else {
        0.0
    };
    let inter = if nodes > 1.0 {
        2.0 * (nodes - 1.0) / nodes * (bytes / g)
            / (fleet.inter_node_bandwidth * fleet.inter_node_efficiency)
    } else {
        0.0
    };
    Seconds(mach.allreduce_latency + intra + inter)
}

/// Total and exposed communication per optimizer step.
pub fn exposed_communication(
    fleet: &Fleet,
    mach: &Machine,
    params: f64,
    step: &StepConfig,
    zero: u8,
    backward: Seconds,
    forward: Seconds,
) -> (Seconds, Seconds) {
    if fleet.gpus <= 1 {
        return (Seconds::ZERO, Seconds::ZERO);
    }
    let grad_bytes = 4.0 * params;
    let buckets = (grad_bytes / BUCKET_BYTES).ceil().max(1.0);
    let per_bucket = allreduce_time(fleet, mach, grad_bytes / buckets);
    let mut total = per_bucket.0 * buckets;
    let mut window = backward.0 * (1.0 - 1.0 / buckets);
    if zero >= 3 {
        let wbytes = match step.precision {
            Precision::Bf16 | Precision::Bf16Pure => 2.0,
            Precision::Fp8 => 1.0,
            Precision::Fp32 | Precision::Tf32 => 4.0,
        };
        // An all-gather moves half an all-reduce's volume: (n-1)/n · x.
        let gather =
            0.5 * (allreduce_time(fleet, mach, wbytes * params).0 - mach.allreduce_latency);
        total += 2.0 * gather;
        window += forward.0;
    }
    let exposed = (total - window).max(total / buckets);
    (Seconds(total), Seconds(exposed))
}
