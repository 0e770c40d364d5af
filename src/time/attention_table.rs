//! A GPU file's fused-attention table ([`crate::spec::attention_table`]) as the time model uses
//! it: for each kernel (FlashAttention 1, 2 or 3), mask and head dimension, the forward and backward
//! rates at the tabulated sequence lengths, inline in the `Copy` [`super::Machine`].
//!
//! Resolving the passes (FlashAttention's FLOP convention, fwd : bwd : fwd+bwd = 1 : 2.5 : 3.5):
//! a forward and a fwd+bwd series give the backward, R_b = 2.5 / (3.5/R_t − 1/R_f); a backward
//! and a fwd+bwd series the forward, R_f = 1 / (3.5/R_t − 2.5/R_b); one pass alone is split
//! with the backward/forward ratio k of the GPU file's `[attention]` fractions of that kernel
//! (R_b = k·R_f; from fwd+bwd alone, R_f = R_t·(1 + 2.5/k)/3.5, at most the kernel's published
//! best forward `flash*_max`, the backward then from the total), as
//! [`crate::spec::attention_table::resolve`] states.
//!
//! Each rate is stored as a ratio to the file's `[attention]` fraction of its kernel and pass
//! (times the bf16 peak), so that the model's rate is that fraction (calibrated or perturbed
//! as any figure) times the table's ratio:
//!
//! rate(kernel, pass, mask, d, s) = fraction(kernel, pass) · ratio(kernel, pass, mask, d, s) · peak
//!
//! where ratio is interpolated linearly in ln s between tabulated lengths and in ln d between
//! tabulated head dimensions (the nearest one outside them); above the longest length it stays
//! at the longest length's value (the rate is capped at what was measured); below the shortest
//! length s₀ it falls as the `[attention]` law does, ratio(s₀)·(s/(s + seq_half))/(s₀/(s₀ +
//! seq_half)). A causal kernel without causal series runs at the non-causal ratio times
//! `attention.causal_factor`.

use crate::spec::attention_table::{
    resolve, AttentionSeries, Split, KERNELS, MAX_HEAD_DIMS, MAX_SEQ_POINTS,
};

/// One kernel, mask and head dimension: ratios at each tabulated length.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Curve {
    /// ln of the head dimension.
    ln_d: f32,
    /// Tabulated lengths in use.
    n: u8,
    /// ln of each length.
    ln_s: [f32; MAX_SEQ_POINTS],
    /// Length of the first point (for the fall below it).
    s0: f32,
    /// Forward rate / (file's forward fraction · peak).
    fwd: [f32; MAX_SEQ_POINTS],
    /// Backward rate / (file's backward fraction · peak).
    bwd: [f32; MAX_SEQ_POINTS],
}

const EMPTY_CURVE: Curve = Curve {
    ln_d: 0.0,
    n: 0,
    ln_s: [0.0; MAX_SEQ_POINTS],
    s0: 0.0,
    fwd: [0.0; MAX_SEQ_POINTS],
    bwd: [0.0; MAX_SEQ_POINTS],
};

/// The curves of one kernel and mask, by increasing head dimension.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Curves {
    n: u8,
    curve: [Curve; MAX_HEAD_DIMS],
}

const EMPTY_CURVES: Curves = Curves {
    n: 0,
    curve: [EMPTY_CURVE; MAX_HEAD_DIMS],
};

/// A GPU file's attention table, resolved ([`AttentionTable::EMPTY`] when it has none).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct AttentionTable {
    /// [kernel: flash2, flash3, flash1 ([`KERNELS`] order)][mask: non-causal, causal].
    by: [[Curves; 2]; KERNELS.len()],
}

impl Default for AttentionTable {
    fn default() -> Self {
        Self::EMPTY
    }
}

impl AttentionTable {
    /// No series: the `[attention]` law everywhere.
    pub const EMPTY: AttentionTable = AttentionTable {
        by: [[EMPTY_CURVES; 2]; KERNELS.len()],
    };

    /// Resolves checked series ([`crate::spec::attention_table::check`]) with
    /// [`resolve`]. `fractions` gives, for a kernel name, the GPU file's (forward, backward,
    /// highest) fractions of the dense bf16 peak `peak` (FLOP/s); a kernel without fractions
    /// gets no curve, and so does a group whose rates do not resolve to positive finite ones
    /// (only possible for a spec built without its check).
    pub fn new(
        series: &[AttentionSeries],
        fractions: impl Fn(&str) -> Option<(f64, f64, Option<f64>)>,
        peak: f64,
    ) -> Self {
        let mut t = Self::EMPTY;
        for (i, s) in series.iter().enumerate() {
            if series[..i].iter().any(|o| o.same_group(s)) {
                continue; // the group was resolved at its first series
            }
            let Some((ff, fb, max)) = fractions(&s.kernel) else {
                continue;
            };
            let group: Vec<&AttentionSeries> = series.iter().filter(|o| o.same_group(s)).collect();
            let split = Split {
                k: fb / ff,
                fwd_max: max.map_or(f64::INFINITY, |m| m * peak / 1e12),
            };
            let Some(rates) = resolve(&group, split) else {
                continue;
            };
            let n = rates.len().min(s.seq.len()).min(MAX_SEQ_POINTS);
            let good = |x: f64| x.is_finite() && x > 0.0;
            if n == 0 || !rates.iter().all(|&(f, b)| good(f) && good(b)) {
                continue;
            }
            let mut c = Curve {
                ln_d: (s.head_dim as f32).ln(),
                n: n as u8,
                s0: s.seq[0] as f32,
                ..EMPTY_CURVE
            };
            for (j, &(f, b)) in rates.iter().take(n).enumerate() {
                c.ln_s[j] = (s.seq[j] as f32).ln();
                c.fwd[j] = (f * 1e12 / (ff * peak)) as f32;
                c.bwd[j] = (b * 1e12 / (fb * peak)) as f32;
            }
            let slot = &mut t.by[s.kernel_index()][usize::from(s.causal)];
            let at = slot.curve[..usize::from(slot.n)]
                .iter()
                .position(|o| o.ln_d > c.ln_d)
                .unwrap_or(usize::from(slot.n));
            if usize::from(slot.n) < MAX_HEAD_DIMS {
                slot.curve.copy_within(at..usize::from(slot.n), at + 1);
                slot.curve[at] = c;
                slot.n += 1;
            }
        }
        t
    }

    /// Whether the table sets the rates of kernel `flash` (1, 2 or 3) for a mask: it has
    /// curves of that mask, or (causal) non-causal ones to scale by the causal factor.
    pub fn covers(&self, flash: u8, causal: bool) -> bool {
        let k = &self.by[slot(flash)];
        k[usize::from(causal)].n > 0 || (causal && k[0].n > 0)
    }

    /// Whether kernel `flash` (1, 2 or 3) has causal curves (else causal runs use the causal
    /// factor).
    pub fn covers_causal(&self, flash: u8) -> bool {
        self.by[slot(flash)][1].n > 0
    }

    /// The ratio to the `[attention]` fraction for kernel `flash` (1, 2 or 3), mask, head
    /// dimension and length; `None` when the table has no curve of that kernel and mask.
    pub fn ratio(
        &self,
        flash: u8,
        causal: bool,
        head_dim: u64,
        seq: u64,
        backward: bool,
        seq_half: f64,
    ) -> Option<f64> {
        let curves = &self.by[slot(flash)][usize::from(causal)];
        let n = usize::from(curves.n);
        if n == 0 {
            return None;
        }
        let at = |c: &Curve| c.at(seq, backward, seq_half);
        let ln_d = (head_dim.max(1) as f32).ln();
        let cs = &curves.curve[..n];
        let value = match cs.iter().position(|c| c.ln_d >= ln_d) {
            Some(0) => at(&cs[0]),
            None => at(&cs[n - 1]),
            Some(i) => {
                let (a, b) = (&cs[i - 1], &cs[i]);
                let w = f64::from((ln_d - a.ln_d) / (b.ln_d - a.ln_d));
                at(a) * (1.0 - w) + at(b) * w
            }
        };
        Some(value)
    }
}

/// The index of FlashAttention generation `flash` in [`KERNELS`].
fn slot(flash: u8) -> usize {
    match flash {
        3 => 1,
        1 => 2,
        _ => 0,
    }
}

impl Curve {
    fn at(&self, seq: u64, backward: bool, seq_half: f64) -> f64 {
        let v = if backward { &self.bwd } else { &self.fwd };
        let n = usize::from(self.n);
        let ln_s = (seq.max(1) as f32).ln();
        if ln_s <= self.ln_s[0] {
            let shape = |s: f64| s / (s + seq_half);
            return f64::from(v[0]) * shape(seq as f64) / shape(f64::from(self.s0));
        }
        match self.ln_s[..n].iter().position(|&x| x >= ln_s) {
            None => f64::from(v[n - 1]),
            Some(i) => {
                let w = (ln_s - self.ln_s[i - 1]) / (self.ln_s[i] - self.ln_s[i - 1]);
                f64::from(v[i - 1] * (1.0 - w) + v[i] * w)
            }
        }
    }
}
