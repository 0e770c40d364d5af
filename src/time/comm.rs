//! Data-parallel communication: gradient all-reduce (DDP), ZeRO's reduce-scatter and
//! all-gather, within a node and across nodes, and how much of it backward hides.
//!
//! Ring all-reduce of `x` bytes over `n` GPUs moves 2(n-1)/n · x bytes per GPU; nccl-tests'
//! bus bandwidth is defined so that `time = x · 2(n-1)/n / busbw` (NVIDIA/nccl-tests
//! doc/PERFORMANCE.md), so the measured busbw from the GPU file is used directly, plus a fixed
//! latency per call. Across nodes the all-reduce is hierarchical: reduce-scatter and all-gather
//! inside each node (one intra-node all-reduce's worth of traffic) and an all-reduce of x/g bytes
//! per GPU across the N nodes over the inter-node link (the network file: adapters per node,
//! line rate, efficiency and NCCL's latencies), the faster of a ring,
//! 2(N-1)·α_ring + 2(N-1)/N · (x/g) / (link · efficiency), and a tree,
//! 2⌊log2 N⌋·α_tree + 2 · (x/g) / (link · efficiency). Reduce-scatters and all-gathers are
//! rings (NCCL has no tree for them).
//!
//! Overlap (PyTorch DDP): gradients are reduced in buckets of 25 MiB as the backward produces
//! them; all but the last bucket can hide behind the rest of that backward (b, wall time):
//! exposed = max(grads - b · (1 - 1/buckets), grads / buckets). DDP and ZeRO-1 keep whole
//! gradients, so with k accumulated micro-steps only the last one reduces (`no_sync` before).
//! ZeRO-2 keeps only its shard of the gradients, so every micro-step reduce-scatters its own
//! (half an all-reduce's volume, same overlap). ZeRO-1/2 all-gather the updated parameters (in
//! the compute dtype) after the optimizer step, where nothing hides it.
//!
//! ZeRO-3 (FSDP, PyTorch's FullyShardedDataParallel with one unit per block and a root unit of
//! the embeddings and head; Zhao et al. 2023, arXiv 2304.11277, section 3.3): each block's
//! parameters are all-gathered (g) one block ahead, behind the previous block's compute (c_f in
//! the forward, c_b in the backward, where the previous block's gradient reduce-scatter (r)
//! shares the link). Per micro-step of L blocks:
//! exposed = g_root + g + (L-1)·max(0, g - c_f) + g + (L-1)·max(0, g + r - c_b) + r + r_root:
//! the root's and the first block's gathers and the last reduce-scatters wait; the rest is
//! exposed only where a block's communication outlasts its compute.
//!
//! Hybrid sharding (HSDP, `--shard-group N`): ZeRO shards over N ranks; the replicas of a shard
//! all-reduce its gradients after each reduce-scatter (bucket or block), across the replicas'
//! nodes.
//!
//! Rank order (an assumption stated with the estimate): tensor-parallel ranks fastest, then
//! context-parallel, pipeline stages, data-parallel replicas, as the issue that introduced
//! model parallelism asked ("TP and CP inside the NVLink domain, then PP, then DP across
//! nodes"). Megatron-LM's default order is tp-cp-ep-dp-pp (data-parallel peers inside a stage);
//! the two differ only when tp·cp is smaller than a node and pp > 1.
//!
//! Communication hidden behind compute still slows it: NCCL's kernels hold
//! [`NCCL_SM_SHARE`] of the SMs while they run, so that share of the hidden time is added.
//! A step is therefore never shorter than its communication.
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
    /// Latency of one ring step across nodes.
    pub ring_step_latency: Seconds,
    /// Latency of one tree level across nodes.
    pub tree_level_latency: Seconds,
}

impl Default for Fleet {
    /// 8 GPUs in one node; between nodes 8 x 400 Gb/s InfiniBand NDR per node, one NIC per GPU
    /// (50 GB/s per GPU per direction), 80% achievable (assumption), NCCL's network latencies:
    /// the embedded network ib-ndr-8x400 (models/network/ib-ndr-8x400.toml).
    fn default() -> Self {
        Fleet {
            gpus: 8,
            gpus_per_node: 8,
            inter_node_bandwidth: ByteRate(50e9),
            inter_node_efficiency: 0.8,
            ring_step_latency: Seconds(9.6e-6),
            tree_level_latency: Seconds(50e-6),
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

    /// The first `size` ranks holding the same weights under the split `par`, ranks numbered
    /// tensor-parallel fastest, then context-parallel, pipeline and data-parallel: the
    /// context-parallel peers tp apart, the data-parallel ones tp·cp·pp apart.
    pub fn weight_replicas(&self, par: &crate::graph::Parallelism, size: u64) -> Fleet {
        let node = self.gpus_per_node.max(1);
        let cp_here = par.cp.min((node / par.tp.max(1)).max(1));
        let dp_here = (node / (par.tp * par.cp * par.pp).max(1)).max(1);
        Fleet {
            gpus: size.max(1),
            gpus_per_node: (cp_here * dp_here).clamp(1, size.max(1)),
            ..*self
        }
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
        // NCCL picks the faster of ring and tree (NVIDIA/nccl src/graph/tuning.cc): a ring
        // takes 2(N-1) steps and moves 2(N-1)/N of the data, a tree climbs and descends
        // log2(N) levels and moves it twice.
        let link = fleet.inter_node_bandwidth * fleet.inter_node_efficiency;
        let share = bytes.0 / g;
        let ring = fleet.ring_step_latency * (2.0 * (nodes - 1.0))
            + Bytes(2.0 * (nodes - 1.0) / nodes * share) / link;
        let tree =
            fleet.tree_level_latency * (2.0 * nodes.log2().ceil()) + Bytes(2.0 * share) / link;
        Seconds(ring.0.min(tree.0))
    } else {
        Seconds::ZERO
    };
    mach.allreduce_latency + intra + inter
}

/// Time of a reduce-scatter or all-gather of `bytes` per GPU: (n-1)/n of the volume, half an
/// all-reduce's traffic, plus one call's latency; across nodes always a ring (NCCL has no tree
/// for these), (N-1)·α_ring + (N-1)/N · (x/g) / link.
fn half_collective(fleet: &Fleet, mach: &Machine, bytes: Bytes) -> Seconds {
    if fleet.gpus <= 1 {
        return Seconds::ZERO;
    }
    let g = fleet.gpus_per_node.min(fleet.gpus) as f64;
    let nodes = fleet.nodes() as f64;
    let intra = if g > 1.0 {
        Bytes(bytes.0 * (g - 1.0) / g) / mach.allreduce_busbw
    } else {
        Seconds::ZERO
    };
    let inter = if nodes > 1.0 {
        fleet.ring_step_latency * (nodes - 1.0)
            + Bytes((nodes - 1.0) / nodes * bytes.0 / g)
                / (fleet.inter_node_bandwidth * fleet.inter_node_efficiency)
    } else {
        Seconds::ZERO
    };
    mach.allreduce_latency + intra + inter
}

/// Share of a GPU's SMs NCCL's kernels hold while a collective runs beside compute, which
/// slows that compute by the same share (assumption: NCCL runs one CTA per channel and uses
/// 8 to 32 channels on NVLink and InfiniBand (NCCL_MIN_NCHANNELS / NCCL_MAX_NCHANNELS), 6-24%
/// of an H100's 132 SMs; 10% taken; a plausible range of 5-20% is not varied by `--interval`
/// or `sensitivity`).
pub const NCCL_SM_SHARE: f64 = 0.10;

/// What one data-parallel rank reduces and gathers: its parameters in all, one block's and the
/// root unit's (embeddings and head, gathered once per micro-step), and its blocks.
#[derive(Debug, Clone, Copy)]
pub struct DataParallelWork {
    /// Parameters the rank holds (before ZeRO sharding).
    pub params: f64,
    /// Parameters of one block (a ZeRO-3 / FSDP unit).
    pub per_block: f64,
    /// Parameters outside the blocks (the root unit).
    pub root: f64,
    /// Blocks.
    pub layers: f64,
    /// Hybrid sharding (HSDP): the groups holding the same shard, across which each shard's
    /// gradients are all-reduced after their reduce-scatter (a one-GPU fleet without).
    pub replicas: Fleet,
    /// Ranks the ZeRO shards are spread over (the shard group).
    pub shards: f64,
}

/// Total and exposed communication per optimizer step of `grad_accum` micro-steps, each with
/// `forward` and `backward` wall time, with ZeRO stage `zero` (see the module docs).
#[allow(clippy::too_many_arguments)]
pub fn exposed_communication(
    fleet: &Fleet,
    mach: &Machine,
    work: &DataParallelWork,
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
    let k = grad_accum.max(1) as f64;
    let grad = policy.gradient_bytes();
    let gather_bytes = policy.gather_bytes();
    let (total, exposed) = if zero >= 3 {
        // FSDP: per block, the gather is prefetched behind the previous block's compute in the
        // forward and in the backward (where the previous block's reduce-scatter shares the
        // link); the root unit's gather, the first block's and the last reduce-scatters wait.
        let l = work.layers.max(1.0);
        let g = half_collective(fleet, mach, Bytes(gather_bytes * work.per_block));
        // Hybrid sharding adds the shard's all-reduce across the replicas to each reduce-scatter.
        let across = |params: f64| {
            if work.replicas.gpus > 1 {
                allreduce_time(&work.replicas, mach, Bytes(grad * params / work.shards))
            } else {
                Seconds::ZERO
            }
        };
        let r = half_collective(fleet, mach, Bytes(grad * work.per_block)) + across(work.per_block);
        let g_root = half_collective(fleet, mach, Bytes(gather_bytes * work.root));
        let r_root = half_collective(fleet, mach, Bytes(grad * work.root)) + across(work.root);
        let (cf, cb) = (forward * (1.0 / l), backward * (1.0 / l));
        let fwd = g_root + g + (g - cf).max(Seconds::ZERO) * (l - 1.0);
        let bwd = g + (g + r - cb).max(Seconds::ZERO) * (l - 1.0) + r + r_root;
        let total = g_root + g * (2.0 * l) + r * l + r_root;
        (total * k, (fwd + bwd) * k)
    } else {
        // Gradient buckets of 25 MiB reduced as the backward produces them; all but the last
        // hide behind the rest of the backward.
        let grad_bytes = Bytes(grad * work.params);
        let buckets = (grad_bytes.0 / BUCKET_BYTES).ceil().max(1.0);
        let bucket = Bytes(grad_bytes.0 / buckets);
        let per_bucket = if zero >= 1 {
            half_collective(fleet, mach, bucket)
                + if work.replicas.gpus > 1 {
                    allreduce_time(&work.replicas, mach, Bytes(bucket.0 / work.shards))
                } else {
                    Seconds::ZERO
                }
        } else {
            allreduce_time(fleet, mach, bucket)
        };
        let grads = per_bucket * buckets;
        // Micro-steps that reduce gradients: all of them once gradients are sharded.
        let reducing = if zero >= 2 { k } else { 1.0 };
        let exposed = (grads - backward * (1.0 - 1.0 / buckets)).max(grads / buckets);
        let (mut total, mut exposed) = (grads * reducing, exposed * reducing);
        if zero >= 1 {
            // The updated parameters, gathered after the optimizer step.
            let gather = half_collective(fleet, mach, Bytes(gather_bytes * work.params));
            total += gather;
            exposed += gather;
        }
        (total, exposed)
    };
    if !mach.mechanisms.comm_overlap {
        // The fidelity report's ablation: everything hides behind the step's compute.
        let compute = (forward + backward) * k;
        return (total, (total - compute).max(Seconds::ZERO));
    }
    // What hides behind compute slows it by NCCL's share of the SMs.
    let hidden = (total - exposed).max(Seconds::ZERO);
    let contention = Seconds(hidden.0.min(((forward + backward) * k).0)) * NCCL_SM_SHARE;
    (total, exposed + contention)
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
    /// (FSDP's per-block exposure is tested against its closed form below.)
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
        let work = DataParallelWork {
            params: 1e9,
            per_block: 3e7,
            root: 1e8,
            layers: 30.0,
            replicas: Fleet {
                gpus: 1,
                ..Fleet::default()
            },
            shards: 64.0,
        };
        let comm = |zero, k| exposed_communication(&fleet, &mach, &work, &step, zero, k, b, f);
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

    /// FSDP: with compute longer than every block's communication only the root's and the first
    /// block's gathers and the last reduce-scatters are exposed (plus NCCL's share of the
    /// hidden time); with no compute, all of it.
    #[test]
    fn fsdp_exposes_the_ends_and_what_outlasts_compute() {
        let gpu = crate::spec::load_gpu("h100-sxm").unwrap();
        let mach = Machine::new(&gpu, None);
        let fleet = Fleet {
            gpus: 16,
            ..Fleet::default()
        };
        let step = StepConfig::default();
        let work = DataParallelWork {
            params: 32.0 * 2e8 + 5e8,
            per_block: 2e8,
            root: 5e8,
            layers: 32.0,
            replicas: Fleet {
                gpus: 1,
                ..Fleet::default()
            },
            shards: 16.0,
        };
        let p = PrecisionPolicy::of(step.precision);
        let half = |bytes: f64| half_collective(&fleet, &mach, Bytes(bytes));
        let (g, r) = (half(p.gather_bytes() * 2e8), half(p.gradient_bytes() * 2e8));
        let (gr, rr) = (half(p.gather_bytes() * 5e8), half(p.gradient_bytes() * 5e8));
        let total = gr + g * 64.0 + r * 32.0 + rr;
        let long = Seconds(10.0);
        let (t, e) = exposed_communication(&fleet, &mach, &work, &step, 3, 1, long, long);
        assert!((t.0 / total.0 - 1.0).abs() < 1e-12);
        let ends = gr + g * 2.0 + r + rr;
        let want = ends + (total - ends) * NCCL_SM_SHARE;
        assert!((e.0 / want.0 - 1.0).abs() < 1e-12, "{e:?} vs {want:?}");
        let (t0, e0) = exposed_communication(
            &fleet,
            &mach,
            &work,
            &step,
            3,
            1,
            Seconds::ZERO,
            Seconds::ZERO,
        );
        assert!((e0.0 / t0.0 - 1.0).abs() < 1e-12);
    }

    /// Across many nodes a small all-reduce pays the tree's 2⌊log2 N⌋ levels, not the ring's
    /// 2(N-1) steps; across two nodes the ring's two steps.
    #[test]
    fn all_reduce_latency_is_the_faster_of_ring_and_tree() {
        let gpu = crate::spec::load_gpu("h100-sxm").unwrap();
        let mach = Machine::new(&gpu, None);
        let lat = |nodes: u64| {
            let fleet = Fleet {
                gpus: 8 * nodes,
                ..Fleet::default()
            };
            let intra = allreduce_time(&Fleet { gpus: 8, ..fleet }, &mach, Bytes(8.0));
            allreduce_time(&fleet, &mach, Bytes(8.0)) - intra
        };
        let f = Fleet::default();
        assert!((lat(128).0 / (f.tree_level_latency.0 * 14.0) - 1.0).abs() < 1e-4);
        assert!((lat(2).0 / (f.ring_step_latency.0 * 2.0) - 1.0).abs() < 1e-4);
    }
}
