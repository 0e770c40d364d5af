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
//! Overlap (PyTorch DDP): gradients are reduced in buckets of 25 MiB as the backward produces
//! them; all but the last bucket can hide behind the rest of that backward (b, wall time):
//! exposed = max(grads - b · (1 - 1/buckets), grads / buckets). DDP and ZeRO-1 keep whole
//! gradients, so with k accumulated micro-steps only the last one reduces (`no_sync` before).
//! ZeRO-2 and ZeRO-3 keep only their shard of the gradients, so every micro-step
//! reduce-scatters its own (half an all-reduce's volume, same overlap). ZeRO-1/2 all-gather
//! the updated parameters (in the compute dtype) after the optimizer step, where nothing hides
//! it. ZeRO-3 (FSDP) also all-gathers the parameters (g) before each micro-step's forward (f)
//! and again before its backward, prefetched behind that phase's compute; in the backward the
//! gather and the gradient reduce-scatter share the compute, so per micro-step
//! exposed = max(0, g - f) + max(g + grads - b · (1 - 1/buckets), grads / buckets).
//! A step is therefore never shorter than its communication. Communication kernels slowing the
//! overlapped compute (SM contention) is not modelled.
//!
//! Expert parallelism over P ranks (a mixture of experts): each MoE layer sends every routed row
//! to the rank holding its expert and back, in the forward and again (their gradients) in the
//! backward: four all-to-alls per layer per micro-step (six when full checkpointing recomputes
//! the forward). nccl-tests defines an all-to-all's bus bandwidth so that time = x·(n-1)/n /
//! busbw (NVIDIA/nccl-tests doc/PERFORMANCE.md); within a node the model takes the measured
//! all-reduce bus bandwidth of the GPU file for it (the same NVLink/NVSwitch links; an
//! assumption, no all-to-all figure is in the GPU files). Ranks of a group fill a node first;
//! the share of a rank's rows bound for other nodes, (P - g)/P, crosses the inter-node link at
//! the same time as the rest crosses NVLink. The experts wait for their rows, so nothing hides
//! these (overlapping them, as DeepSeek-V3's DualPipe does, is not modelled).

use super::machine::Machine;
use crate::graph::{PrecisionPolicy, StepConfig};
use crate::units::{ByteRate, Bytes, Seconds};

/// DDP's default bucket size (`bucket_cap_mb = 25`).
pub const BUCKET_BYTES: f64 = 25.0 * 1024.0 * 1024.0;

/// The GPUs of a run and the links between nodes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Fleet {
    /// GPUs in total.
    pub gpus: u64,
    /// GPUs per node.
    pub gpus_per_node: u64,
    /// Inter-node bandwidth per GPU, per direction.
    pub inter_node_bandwidth: ByteRate,
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
            inter_node_bandwidth: ByteRate(50e9),
            inter_node_efficiency: 0.8,
        }
    }
}

impl Fleet {
    /// Nodes (rounded up).
    pub fn nodes(&self) -> u64 {
        self.gpus.div_ceil(self.gpus_per_node.max(1))
    }

    /// A communication group of `size` GPUs whose members are `stride` ranks apart (GPUs are
    /// numbered node by node): `gpus_per_node / stride` members share a node (at least one),
    /// the rest sit on other nodes, reached over the inter-node link of each GPU (one NIC per
    /// GPU: every group of a node communicates at once on its own rail).
    pub fn group(&self, size: u64, stride: u64) -> Fleet {
        let per_node = (self.gpus_per_node / stride.max(1)).clamp(1, size.max(1));
        Fleet {
            gpus: size.max(1),
            gpus_per_node: per_node,
            ..*self
        }
    }

    /// Whether a group of `size` GPUs `stride` ranks apart spans more than one node.
    pub fn crosses_nodes(&self, size: u64, stride: u64) -> bool {
        self.group(size, stride).nodes() > 1
    }
}

/// Time of one all-reduce of `bytes` per GPU over the fleet.
pub fn allreduce_time(fleet: &Fleet, mach: &Machine, bytes: Bytes) -> Seconds {
    if fleet.gpus <= 1 {
        return Seconds::ZERO;
    }
    let g = fleet.gpus_per_node.min(fleet.gpus) as f64;
    let nodes = fleet.nodes() as f64;
    let intra = if g > 1.0 {
        Bytes(bytes.0 * 2.0 * (g - 1.0) / g) / mach.allreduce_busbw
    } else {
        Seconds::ZERO
    };
    let inter = if nodes > 1.0 {
        Bytes(2.0 * (nodes - 1.0) / nodes * (bytes.0 / g))
            / (fleet.inter_node_bandwidth * fleet.inter_node_efficiency)
    } else {
        Seconds::ZERO
    };
    mach.allreduce_latency + intra + inter
}

/// Time of a reduce-scatter or all-gather of `bytes` per GPU: (n-1)/n of the volume, half an
/// all-reduce's traffic, plus one call's latency.
fn half_collective(fleet: &Fleet, mach: &Machine, bytes: Bytes) -> Seconds {
    (allreduce_time(fleet, mach, bytes) - mach.allreduce_latency) * 0.5 + mach.allreduce_latency
}

/// Total and exposed communication per optimizer step of `grad_accum` micro-steps, each with
/// `forward` and `backward` wall time (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn exposed_communication(
    fleet: &Fleet,
    mach: &Machine,
    params: f64,
    step: &StepConfig,
    zero: u8,
    grad_accum: u64,
    backward: Seconds,
    forward: Seconds,
) -> (Seconds, Seconds) {
    if fleet.gpus <= 1 {
        return (Seconds::ZERO, Seconds::ZERO);
    }
    let policy = PrecisionPolicy::of(step.precision);
    let grad_bytes = Bytes(policy.gradient_bytes() * params);
    let buckets = (grad_bytes.0 / BUCKET_BYTES).ceil().max(1.0);
    let bucket = Bytes(grad_bytes.0 / buckets);
    let per_bucket = if zero >= 1 {
        half_collective(fleet, mach, bucket)
    } else {
        allreduce_time(fleet, mach, bucket)
    };
    let grads = per_bucket * buckets;
    let gather = half_collective(fleet, mach, Bytes(policy.gather_bytes() * params));
    let k = grad_accum.max(1) as f64;
    // Micro-steps that reduce gradients: all of them once gradients are sharded.
    let reducing = if zero >= 2 { k } else { 1.0 };
    // ZeRO-3's gather before the backward shares it with the reduce-scatter.
    let (forward_gather, backward_gather) = if zero >= 3 {
        (gather, gather)
    } else {
        (Seconds::ZERO, Seconds::ZERO)
    };
    let per_micro_step = (forward_gather - forward).max(Seconds::ZERO)
        + (backward_gather + grads - backward * (1.0 - 1.0 / buckets)).max(grads / buckets);
    let mut total = (forward_gather + backward_gather + grads) * reducing;
    let mut exposed = per_micro_step * reducing;
    if zero == 1 || zero == 2 {
        // The updated parameters, gathered after the optimizer step.
        total += gather;
        exposed += gather;
    }
    (total, exposed)
}

/// Time of one point-to-point send of `bytes` between pipeline stages `stride` ranks apart: over
/// the inter-node link when that crosses a node, else over NVLink at the all-reduce bus
/// bandwidth (an all-reduce's busbw is what one link direction sustains in a ring); plus one
/// call's latency.
pub fn p2p_time(fleet: &Fleet, mach: &Machine, bytes: Bytes, stride: u64) -> Seconds {
    let link = if stride >= fleet.gpus_per_node {
        fleet.inter_node_bandwidth * fleet.inter_node_efficiency
    } else {
        mach.allreduce_busbw
    };
    mach.allreduce_latency + bytes / link
}

/// Time of one all-to-all in which each of `ranks` GPUs sends `bytes` in all (its share to
/// itself included), the ranks filling nodes of the fleet first (see the module docs).
pub fn all_to_all_time(fleet: &Fleet, mach: &Machine, bytes: Bytes, ranks: u64) -> Seconds {
    if ranks <= 1 {
        return Seconds::ZERO;
    }
    let p = ranks as f64;
    let g = fleet.gpus_per_node.clamp(1, ranks) as f64;
    let intra = Bytes(bytes.0 * (g - 1.0) / p) / mach.allreduce_busbw;
    let inter = if p > g {
        Bytes(bytes.0 * (p - g) / p) / (fleet.inter_node_bandwidth * fleet.inter_node_efficiency)
    } else {
        Seconds::ZERO
    };
    mach.allreduce_latency + intra.max(inter)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sharded gradients are reduced every micro-step; whole ones once per optimizer step. A
    /// step's compute plus its exposed communication covers all of its communication.
    #[test]
    fn accumulation_reduces_sharded_gradients_every_micro_step() {
        let gpu = crate::spec::load_gpu("h100-sxm").unwrap();
        let mach = Machine::new(&gpu, None);
        let fleet = Fleet {
            gpus: 64,
            ..Fleet::default()
        };
        let step = StepConfig::default();
        let (f, b) = (Seconds(0.002), Seconds(0.004));
        let comm = |zero, k| exposed_communication(&fleet, &mach, 1e9, &step, zero, k, b, f);
        for zero in 0..=3u8 {
            let (one, four) = (comm(zero, 1).0, comm(zero, 4).0);
            if zero >= 2 {
                assert!(four.0 > 3.0 * one.0, "ZeRO-{zero}: {four:?} vs {one:?}");
            } else {
                assert_eq!(four, one, "ZeRO-{zero}");
            }
            for k in [1, 4] {
                let (total, exposed) = comm(zero, k);
                assert!(exposed <= total && exposed.0 > 0.0, "ZeRO-{zero}, k {k}");
                assert!((f + b).0 * k as f64 + exposed.0 >= total.0 * (1.0 - 1e-12));
            }
        }
    }
}
