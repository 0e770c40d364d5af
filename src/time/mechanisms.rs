//! Switches for the mechanisms of the time and memory model that explain how real runs depart
//! from the plain roofline, so that each can be turned off and its effect on the validation sets
//! measured ([`crate::analysis::fidelity`], reports/fidelity.md). Every estimate runs with all of
//! them on; turning one off gives the model as it was before that mechanism was added.

/// Which mechanisms the model applies (all on by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mechanisms {
    /// Data-parallel communication overlapped as the frameworks do it ([`super::comm`]): FSDP /
    /// ZeRO-3 gathers prefetched one block ahead and reduce-scatters per block, exposed where a
    /// block's communication outlasts its compute, the first gather and last reduce-scatter
    /// exposed; DDP / ZeRO-1/2 gradient buckets, the last exposed; compute slowed by NCCL's
    /// share of the SMs. Off: all communication hides behind the step's compute (exposed only
    /// what exceeds it), with no contention.
    pub comm_overlap: bool,
    /// torch.compile pads misaligned matmuls (Inductor's `shape_padding`,
    /// [`super::Machine::gemm_rate`]). Off: compiled GEMMs with a misaligned dimension pay the
    /// eager alignment-1 ceiling.
    pub shape_padding: bool,
    /// Compiled cross-entropy is Inductor's fused log-softmax + NLL (one pass forward, one
    /// backward; 16-bit logits and a log-sum-exp per row kept, `graph::parts::head`). Off: the
    /// loss moves its eager bytes in every mode. The switch changes time only: the memory model
    /// keeps what the fused loss saves either way.
    pub fused_loss: bool,
    /// Where the GPU file has no attention table for the kernel (or the table is off), the
    /// fused-attention rate stops growing with sequence length at the kernel's published best on
    /// the GPU (`attention.flash2_max` / `flash3_max`, [`super::Machine::flash_rate`]). Off: it
    /// grows up to the GEMM ceiling.
    pub attention_cap: bool,
    /// The GPU file's measured GEMM table corrects the analytic GEMM rate where it covers the
    /// shape ([`super::gemm_table`]). Off: the analytic rate everywhere.
    pub gemm_table: bool,
    /// The GPU file's published FlashAttention rates by sequence length, mask and head
    /// dimension ([`super::attention_table`]). Off: the `[attention]` fractions at `seq_ref`
    /// grown as s/(s + seq_half), times the causal factor, capped at the kernel's best.
    pub attention_table: bool,
}

impl Mechanisms {
    /// Every mechanism on: what every estimate uses.
    pub const ALL: Mechanisms = Mechanisms {
        comm_overlap: true,
        shape_padding: true,
        fused_loss: true,
        attention_cap: true,
        gemm_table: true,
        attention_table: true,
    };

    /// Every mechanism off.
    pub const NONE: Mechanisms = Mechanisms {
        comm_overlap: false,
        shape_padding: false,
        fused_loss: false,
        attention_cap: false,
        gemm_table: false,
        attention_table: false,
    };
}

impl Default for Mechanisms {
    fn default() -> Self {
        Self::ALL
    }
}

/// One mechanism: its name, what it models, its source, and its switch.
#[derive(Debug, Clone, Copy)]
pub struct Mechanism {
    /// Short name.
    pub name: &'static str,
    /// What it models, in a sentence.
    pub what: &'static str,
    /// Where the behaviour is documented.
    pub source: &'static str,
    /// Turns it off.
    pub off: fn(&mut Mechanisms),
}

/// Every mechanism, in the order the fidelity report lists them.
pub const MECHANISMS: [Mechanism; 6] = [
    Mechanism {
        name: "data-parallel overlap",
        what: "FSDP/ZeRO-3 gathers prefetched one block ahead, reduce-scatters per block, \
               exposure where a block's communication outlasts its compute, the first gather and \
               last reduce-scatter exposed; DDP/ZeRO-1/2 buckets, the last exposed; compute \
               slowed by NCCL's share of the SMs (off: everything hides behind compute)",
        source: "PyTorch FSDP (Zhao et al. 2023, arXiv 2304.11277, section 3.3); PyTorch DDP \
                 (Li et al. 2020, arXiv 2006.15704: gradient buckets, 25 MiB by default)",
        off: |m| m.comm_overlap = false,
    },
    Mechanism {
        name: "compiled shape padding",
        what: "Inductor (torch.compile) pads misaligned matmul dimensions to the alignment, so \
               compiled GEMMs do not pay the alignment-1 ceiling (off: they do)",
        source: "torch/_inductor/config.py `shape_padding` (on by default) and \
                 torch/_inductor/fx_passes/pad_mm.py",
        off: |m| m.shape_padding = false,
    },
    Mechanism {
        name: "Inductor-fused cross-entropy",
        what: "compiled cross-entropy is one fused log-softmax + NLL pass forward and one \
               backward (off: its eager bytes, about 48 B per logit over the step; step time only)",
        source: "torch/_decomp/decompositions.py (log_softmax, nll_loss decompositions) and \
                 Inductor's reduction codegen",
        off: |m| m.fused_loss = false,
    },
    Mechanism {
        name: "fused-attention cap",
        what: "without an attention table for the kernel, the FlashAttention rate stops growing \
               with sequence length at the kernel's published best on the GPU (off: it grows \
               to the GEMM ceiling); the tables hold their longest length's rate instead",
        source: "Dao 2023, arXiv 2307.08691 (FlashAttention-2: up to 73% of the A100's peak); \
                 Shah et al. 2024, arXiv 2407.08608 (FlashAttention-3: 75% of the H100's peak, \
                 FlashAttention-2 35%)",
        off: |m| m.attention_cap = false,
    },
    Mechanism {
        name: "measured GEMM table",
        what: "where the GPU file's [gemm_table] covers a GEMM's shape, the analytic rate is \
               corrected by the measured/analytic ratio interpolated in log space (off: the \
               analytic rate everywhere; only h100-sxm has a table)",
        source: "this project's cuBLAS measurements on an H100 SXM, \
                 reports/measurements/2026-11-27-h100-sxm/bench.json",
        off: |m| m.gemm_table = false,
    },
    Mechanism {
        name: "published attention tables",
        what: "FlashAttention (v1, 2, 3) rates by sequence length (512 to 16k), mask and head dimension \
               from the kernels' published benchmark charts, interpolated in log length and \
               held at the longest length measured (off: the seq-512 fractions grown as \
               s/(s + seq_half), a causal factor, and the cap; only a100-sxm-80gb, h100-sxm and \
               h200-sxm have tables)",
        source: "Dao-AILab/flash-attention assets/flash2_a100_fwd_bwd_benchmark.png and \
                 flash2_h100_fwd_bwd_benchmark.png (FlashAttention-2, Dao 2023, arXiv \
                 2307.08691), assets/flash3_fp16_fwd.png (FlashAttention-3, Shah et al. 2024, \
                 arXiv 2407.08608)",
        off: |m| m.attention_table = false,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_switch_turns_off_exactly_one_mechanism() {
        let mut all_off = Mechanisms::ALL;
        for m in MECHANISMS {
            let mut one = Mechanisms::ALL;
            (m.off)(&mut one);
            assert_ne!(one, Mechanisms::ALL, "{}", m.name);
            (m.off)(&mut all_off);
        }
        assert_eq!(all_off, Mechanisms::NONE);
    }
}
