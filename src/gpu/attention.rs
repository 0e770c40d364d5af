//! Attention suite at the planned JiT-B/4 shape: batch 64, 12 heads, seq 512, head dim 64, non-causal,
//! bf16 Q/K/V/O [B*H, S, 64]. FLOPs in FlashAttention's convention, forward = 4 B s^2 h dh
//! (QK^T and PV, 2 FLOPs per multiply-add; softmax not counted).
//! Bytes: fused = Q, K, V read and O written once = 4 B h s dh * 2; naive adds the fp32 score
//! matrix written, read and written by the softmax, and read by PV = 4 B h s^2 * 4.

use super::context::{rel_error_par, Bench, PeakKind};
use super::driver::{Arg, DeviceBuffer, Function, Module};
use super::error::GpuError;
use super::nvrtc;
use super::reference::{attention_head, bf16_bits_to_f64, Uniform};
use super::report::BenchResult;

const BATCH: u64 = 64;
const HEADS: u64 = 12;
const SEQ: u64 = 512;
const HEAD_DIM: u64 = 64;
/// bf16 inputs, fp32 softmax, bf16 output (P also rounded to bf16 in the fused kernel).
const TOL: f64 = 1e-2;
/// Heads compared with the host reference: the first, the last and one in between.
const CHECKED_HEADS: [u64; 3] = [0, BATCH * HEADS / 2 + 5, BATCH * HEADS - 1];

struct Kernels {
    scores: Function,
    softmax: Function,
    pv: Function,
    fused: Function,
    _module: Module,
}

struct Buffers {
    q: DeviceBuffer,
    k: DeviceBuffer,
    v: DeviceBuffer,
    o: DeviceBuffer,
    scores: DeviceBuffer,
    uq: Uniform,
    uk: Uniform,
    uv: Uniform,
    sets: u64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Variant {
    Naive,
    Fused,
}

pub fn run(b: &mut Bench) {
    let shape = format!("B{BATCH} H{HEADS} S{SEQ} D{HEAD_DIM}");
    let kernels = match load(b) {
        Ok(k) => k,
        Err(e) => return b.push_error("attention", "attention.cu", "compile/load".into(), &e),
    };
    let bufs = match alloc(b) {
        Ok(x) => x,
        Err(e) => return b.push_error("attention", "attention_naive", shape, &e),
    };
    for (variant, name) in [
        (Variant::Naive, "attention_naive"),
        (Variant::Fused, "attention_fused"),
    ] {
        if let Err(e) = measure(b, &kernels, &bufs, variant, name, &shape) {
            b.push_error("attention", name, shape.clone(), &e);
        }
    }
}

fn load(b: &Bench) -> Result<Kernels, GpuError> {
    let module = b.load(&nvrtc::ATTENTION, &["--use_fast_math"])?;
    Ok(Kernels {
        scores: module.function("attn_scores")?,
        softmax: module.function("attn_softmax")?,
        pv: module.function("attn_pv")?,
        fused: module.function("attention_fused")?,
        _module: module,
    })
}

fn elements() -> u64 {
    BATCH * HEADS * SEQ * HEAD_DIM
}

fn alloc(b: &mut Bench) -> Result<Buffers, GpuError> {
    let n = elements();
    let sets = b.rotation(4 * 2 * n);
    let q = b.alloc(2 * n * sets)?;
    let k = b.alloc(2 * n * sets)?;
    let v = b.alloc(2 * n * sets)?;
    let o = b.alloc(2 * n * sets)?;
    let scores = b.alloc(4 * BATCH * HEADS * SEQ * SEQ)?;
    let uq = b.fill_bf16(q.ptr, n * sets, -2.0, 2.0)?;
    let uk = b.fill_bf16(k.ptr, n * sets, -2.0, 2.0)?;
    let uv = b.fill_bf16(v.ptr, n * sets, -1.0, 1.0)?;
    Ok(Buffers {
        q,
        k,
        v,
        o,
        scores,
        uq,
        uk,
        uv,
        sets,
    })
}

fn launch(
    b: &Bench,
    k: &Kernels,
    bufs: &Buffers,
    variant: Variant,
    set: u64,
) -> Result<(), GpuError> {
    let off = (2 * elements() * set) as usize;
    let (q, kk, v, o) = (
        bufs.q.at(off),
        bufs.k.at(off),
        bufs.v.at(off),
        bufs.o.at(off),
    );
    let heads = (BATCH * HEADS) as u32;
    let tiles = (SEQ / 64) as u32;
    let seq = SEQ as i32;
    let scale = 1.0 / (HEAD_DIM as f32).sqrt();
    match variant {
        Variant::Naive => {
            let s = bufs.scores.ptr;
            k.scores.launch(
                b.gpu,
                (tiles, tiles, heads),
                256,
                0,
                &[
                    Arg::Ptr(q),
                    Arg::Ptr(kk),
                    Arg::Ptr(s),
                    Arg::I32(seq),
                    Arg::F32(scale),
                ],
            )?;
            let rows = BATCH * HEADS * SEQ;
            k.softmax.launch(
                b.gpu,
                ((rows / 8) as u32, 1, 1),
                256,
                0,
                &[Arg::Ptr(s), Arg::U64(rows), Arg::I32(seq)],
            )?;
            k.pv.launch(
                b.gpu,
                (tiles, heads, 1),
                256,
                0,
                &[Arg::Ptr(s), Arg::Ptr(v), Arg::Ptr(o), Arg::I32(seq)],
            )
        }
        Variant::Fused => {
            let scale_log2 = scale * std::f32::consts::LOG2_E;
            k.fused.launch(
                b.gpu,
                (tiles, heads, 1),
                128,
                0,
                &[
                    Arg::Ptr(q),
                    Arg::Ptr(kk),
                    Arg::Ptr(v),
                    Arg::Ptr(o),
                    Arg::I32(seq),
                    Arg::F32(scale_log2),
                ],
            )
        }
    }
}

/// Poisons O, runs once on set 0, requires every element written and compares CHECKED_HEADS
/// with the host reference.
fn check(b: &Bench, k: &Kernels, bufs: &Buffers, variant: Variant) -> Result<f64, GpuError> {
    let n = elements();
    b.gpu.poison(bufs.o.ptr, (2 * n) as usize)?;
    launch(b, k, bufs, variant, 0)?;
    let o: Vec<u16> = b.gpu.download(bufs.o.ptr, n as usize)?;
    let all_written = o.iter().all(|&bits| (bits & 0x7f80) != 0x7f80);
    let (s, d) = (SEQ as usize, HEAD_DIM as usize);
    let mut got = Vec::new();
    let mut want = Vec::new();
    for head in CHECKED_HEADS {
        let start = head * SEQ * HEAD_DIM;
        let q = bufs.uq.bf16_range(start, s * d);
        let kk = bufs.uk.bf16_range(start, s * d);
        let v = bufs.uv.bf16_range(start, s * d);
        want.extend(attention_head(&q, &kk, &v, s, d, 1.0 / (d as f64).sqrt()));
        got.extend(bf16_bits_to_f64(&o[start as usize..start as usize + s * d]));
    }
    let error = rel_error_par(got.len(), |i| got[i], |i| want[i]);
    Ok(if all_written { error } else { f64::INFINITY })
}

fn measure(
    b: &mut Bench,
    k: &Kernels,
    bufs: &Buffers,
    variant: Variant,
    name: &str,
    shape: &str,
) -> Result<(), GpuError> {
    let error = check(b, k, bufs, variant)?;
    let timing = b.time(|rep| launch(b, k, bufs, variant, rep as u64 % bufs.sets))?;
    let flops = 4.0 * (BATCH * SEQ * SEQ * HEADS * HEAD_DIM) as f64;
    let io_bytes = 4.0 * 2.0 * elements() as f64;
    let bytes = match variant {
        Variant::Fused => io_bytes,
        Variant::Naive => io_bytes + 4.0 * 4.0 * (BATCH * HEADS * SEQ * SEQ) as f64,
    };
    let result = BenchResult::new(
        "attention",
        name,
        shape.to_string(),
        flops,
        bytes,
        timing,
        error,
        TOL,
    )
    .with_elements(elements());
    b.push(result, PeakKind::Tensor);
    Ok(())
}
