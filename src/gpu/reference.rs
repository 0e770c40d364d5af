//! Host-side references: the same pseudo-random inputs the device fill kernels write
//! (`kernels/common.cuh`), CPU implementations of every kernel in f64, and the error measure.

use half::bf16;

/// Integer hash lowbias32 (C. Wellons), identical to `hash_u32` in kernels/common.cuh.
pub fn hash_u32(mut x: u32) -> u32 {
    x ^= x >> 16;
    x = x.wrapping_mul(0x7feb_352d);
    x ^= x >> 15;
    x = x.wrapping_mul(0x846c_a68b);
    x ^= x >> 16;
    x
}

/// Uniform stream of the fill kernels: u = 24 random bits / 2^24 in [0, 1), value =
/// fma(u, scale, offset) rounded once, so host and device agree bit for bit.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Uniform {
    pub seed: u32,
    pub scale: f32,
    pub offset: f32,
}

impl Uniform {
    /// Values uniform in [lo, hi).
    pub fn new(seed: u32, lo: f32, hi: f32) -> Self {
        Uniform {
            seed,
            scale: hi - lo,
            offset: lo,
        }
    }

    /// Element `i` as fp32 (what `fill_uniform_f32` writes).
    pub fn f32_at(&self, i: u64) -> f32 {
        let h = hash_u32(hash_u32((i as u32) ^ self.seed).wrapping_add((i >> 32) as u32));
        let u = (h >> 8) as f32 * (1.0 / 16_777_216.0);
        u.mul_add(self.scale, self.offset)
    }

    /// Element `i` rounded to bf16 (what `fill_uniform_bf16` writes), as f64.
    pub fn bf16_at(&self, i: u64) -> f64 {
        bf16::from_f32(self.f32_at(i)).to_f64()
    }

    /// Elements `start..start + len` rounded to bf16.
    pub fn bf16_range(&self, start: u64, len: usize) -> Vec<f64> {
        (0..len as u64).map(|i| self.bf16_at(start + i)).collect()
    }
}

/// bf16 bit patterns to f64.
pub fn bf16_bits_to_f64(bits: &[u16]) -> Vec<f64> {
    bits.iter().map(|&b| bf16::from_bits(b).to_f64()).collect()
}

/// Relative error ||out - ref||_2 / ||ref||_2; infinite when `out` holds a NaN or infinity
/// (an element the kernel never wrote keeps the NaN poison).
pub fn rel_error(out: &[f64], reference: &[f64]) -> f64 {
    assert_eq!(
        out.len(),
        reference.len(),
        "output and reference lengths differ"
    );
    let mut diff = 0.0;
    let mut norm = 0.0;
    for (&o, &r) in out.iter().zip(reference) {
        if !o.is_finite() {
            return f64::INFINITY;
        }
        diff += (o - r) * (o - r);
        norm += r * r;
    }
    if norm == 0.0 {
        if diff == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (diff / norm).sqrt()
    }
}

/// Dot product of two rows (GEMM reference for one output element of C = A B^T).
pub fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Attention forward for one head: O = softmax(scale * Q K^T) V, Q/K/V/O [s, d] row-major.
pub fn attention_head(q: &[f64], k: &[f64], v: &[f64], s: usize, d: usize, scale: f64) -> Vec<f64> {
    let mut out = vec![0.0; s * d];
    let mut scores = vec![0.0; s];
    for i in 0..s {
        let qi = &q[i * d..(i + 1) * d];
        for (j, sc) in scores.iter_mut().enumerate() {
            *sc = scale * dot(qi, &k[j * d..(j + 1) * d]);
        }
        let max = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
        let mut sum = 0.0;
        for sc in scores.iter_mut() {
            *sc = (*sc - max).exp();
            sum += *sc;
        }
        let oi = &mut out[i * d..(i + 1) * d];
        for (j, &p) in scores.iter().enumerate() {
            for (o, &vv) in oi.iter_mut().zip(&v[j * d..(j + 1) * d]) {
                *o += p / sum * vv;
            }
        }
    }
    out
}

/// RMSNorm of one row: y = x / sqrt(mean(x^2) + eps) * w.
pub fn rmsnorm_row(x: &[f64], w: &[f64], eps: f64) -> Vec<f64> {
    let ms = x.iter().map(|v| v * v).sum::<f64>() / x.len() as f64;
    let r = 1.0 / (ms + eps).sqrt();
    x.iter().zip(w).map(|(v, wv)| v * r * wv).collect()
}

/// adaLN modulate of one element: y = x * (1 + scale) + shift.
pub fn modulate(x: f64, scale: f64, shift: f64) -> f64 {
    x * (1.0 + scale) + shift
}

/// Value of the per-thread sum written by `fma_fp32`: chain j starts at (j + 1) * 1e-3 and
/// takes `iters` steps x = fma(x, b, c) in fp32; the chains are summed in order.
pub fn fma_chains(chains: usize, iters: u32, b: f32, c: f32) -> f32 {
    let mut sum = 0.0f32;
    for j in 0..chains {
        let mut x = (j + 1) as f32 * 1.0e-3;
        for _ in 0..iters {
            x = x.mul_add(b, c);
        }
        sum += x;
    }
    sum
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_is_lowbias32() {
        assert_eq!(hash_u32(0), 0);
        assert_eq!(hash_u32(1), 0x6889_90c0);
        assert_eq!(hash_u32(12345), 0x912e_fcf7);
    }

    #[test]
    fn uniform_stays_in_range_and_is_not_constant() {
        let u = Uniform::new(7, -1.0, 1.0);
        let v: Vec<f32> = (0..10_000).map(|i| u.f32_at(i)).collect();
        assert!(v.iter().all(|x| (-1.0..1.0).contains(x)));
        let mean = v.iter().map(|&x| x as f64).sum::<f64>() / v.len() as f64;
        assert!(mean.abs() < 0.05, "mean {mean}");
        assert!(v.iter().any(|&x| x != v[0]));
        assert_ne!(
            u.f32_at(1 << 33),
            u.f32_at(0),
            "high index bits must matter"
        );
    }

    #[test]
    fn bf16_round_trip_is_exact_on_representable_values() {
        let bits = [
            bf16::from_f32(1.5).to_bits(),
            bf16::from_f32(-0.25).to_bits(),
        ];
        assert_eq!(bf16_bits_to_f64(&bits), vec![1.5, -0.25]);
    }

    #[test]
    fn rel_error_flags_nan_and_measures_norm_ratio() {
        assert_eq!(rel_error(&[1.0, 2.0], &[1.0, 2.0]), 0.0);
        assert!(rel_error(&[f64::NAN, 2.0], &[1.0, 2.0]).is_infinite());
        let e = rel_error(&[3.0, 0.0], &[4.0, 0.0]);
        assert!((e - 0.25).abs() < 1e-12);
    }

    #[test]
    fn attention_of_uniform_scores_averages_values() {
        let (s, d) = (4, 2);
        let q = vec![0.0; s * d];
        let k = vec![1.0; s * d];
        let v: Vec<f64> = (0..s * d).map(|i| i as f64).collect();
        let o = attention_head(&q, &k, &v, s, d, 0.125);
        assert!((o[0] - 3.0).abs() < 1e-12 && (o[1] - 4.0).abs() < 1e-12);
    }

    #[test]
    fn rmsnorm_normalizes_to_unit_rms() {
        let y = rmsnorm_row(&[3.0, -3.0, 3.0, -3.0], &[1.0; 4], 0.0);
        assert!(y.iter().all(|v| (v.abs() - 1.0).abs() < 1e-12));
    }

    #[test]
    fn fma_chain_converges_to_fixed_point() {
        let v = fma_chains(1, 100_000, 0.5, 1.0);
        assert!((v - 2.0).abs() < 1e-6);
    }
}
