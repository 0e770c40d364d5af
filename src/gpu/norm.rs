//! Normalization suite over bf16 activations [64*512, 768] (the planned JiT-B/4 run's batch x tokens x width):
//! RMSNorm (fp32 math, eps 1e-6, bf16 weight) and adaLN modulate y = x (1 + scale[b]) + shift[b]
//! with scale and shift per sample, broadcast over the 512 tokens. Bytes: x read and y written
//! once (2 * rows * D * 2) plus the weight (D * 2) or scale and shift (2 * B * D * 2).

use rayon::prelude::*;

use super::context::{rel_error_par, Bench, PeakKind};
use super::driver::{Arg, DeviceBuffer, Function, Module};
use super::error::GpuError;
use super::nvrtc;
use super::reference::{bf16_bits_to_f64, modulate, rmsnorm_row, Uniform};
use super::report::BenchResult;

const BATCH: u64 = 64;
const TOKENS: u64 = 512;
const WIDTH: u64 = 768;
const EPS: f32 = 1e-6;
/// fp32 math, bf16 output: relative error ~2^-9 from the final rounding.
const TOL: f64 = 1e-2;

struct Kernels {
    rmsnorm: Function,
    modulate: Function,
    _module: Module,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    RmsNorm,
    Modulate,
}

struct Buffers {
    x: DeviceBuffer,
    y: DeviceBuffer,
    weight: DeviceBuffer,
    scale: DeviceBuffer,
    shift: DeviceBuffer,
    ux: Uniform,
    uw: Uniform,
    uscale: Uniform,
    ushift: Uniform,
    sets: u64,
}

fn rows() -> u64 {
    BATCH * TOKENS
}

pub fn run(b: &mut Bench) {
    let shape = format!("[{}x{}, {}] bf16", BATCH, TOKENS, WIDTH);
    let kernels = match load(b) {
        Ok(k) => k,
        Err(e) => return b.push_error("norm", "norm.cu", "compile/load".into(), &e),
    };
    let bufs = match alloc(b) {
        Ok(x) => x,
        Err(e) => return b.push_error("norm", "rmsnorm", shape, &e),
    };
    for (op, name) in [(Op::RmsNorm, "rmsnorm"), (Op::Modulate, "modulate")] {
        if let Err(e) = measure(b, &kernels, &bufs, op, name, &shape) {
            b.push_error("norm", name, shape.clone(), &e);
        }
    }
}

fn load(b: &Bench) -> Result<Kernels, GpuError> {
    let module = b.load(&nvrtc::NORM, &[])?;
    Ok(Kernels {
        rmsnorm: module.function("rmsnorm")?,
        modulate: module.function("modulate")?,
        _module: module,
    })
}

fn alloc(b: &mut Bench) -> Result<Buffers, GpuError> {
    let n = rows() * WIDTH;
    let sets = b.rotation(2 * 2 * n);
    let x = b.alloc(2 * n * sets)?;
    let y = b.alloc(2 * n * sets)?;
    let weight = b.alloc(2 * WIDTH)?;
    let scale = b.alloc(2 * BATCH * WIDTH)?;
    let shift = b.alloc(2 * BATCH * WIDTH)?;
    let ux = b.fill_bf16(x.ptr, n * sets, -2.0, 2.0)?;
    let uw = b.fill_bf16(weight.ptr, WIDTH, 0.5, 1.5)?;
    let uscale = b.fill_bf16(scale.ptr, BATCH * WIDTH, -0.5, 0.5)?;
    let ushift = b.fill_bf16(shift.ptr, BATCH * WIDTH, -0.5, 0.5)?;
    Ok(Buffers {
        x,
        y,
        weight,
        scale,
        shift,
        ux,
        uw,
        uscale,
        ushift,
        sets,
    })
}

fn launch(b: &Bench, k: &Kernels, bufs: &Buffers, op: Op, set: u64) -> Result<(), GpuError> {
    let n = rows() * WIDTH;
    let off = (2 * n * set) as usize;
    let (x, y) = (bufs.x.at(off), bufs.y.at(off));
    match op {
        Op::RmsNorm => k.rmsnorm.launch(
            b.gpu,
            ((rows() / 8) as u32, 1, 1),
            256,
            0,
            &[
                Arg::Ptr(x),
                Arg::Ptr(bufs.weight.ptr),
                Arg::Ptr(y),
                Arg::U64(rows()),
                Arg::I32(WIDTH as i32),
                Arg::F32(EPS),
            ],
        ),
        Op::Modulate => k.modulate.launch(
            b.gpu,
            (b.stride_grid(n / 8), 1, 1),
            256,
            0,
            &[
                Arg::Ptr(x),
                Arg::Ptr(bufs.scale.ptr),
                Arg::Ptr(bufs.shift.ptr),
                Arg::Ptr(y),
                Arg::U64(n),
                Arg::U64(TOKENS),
                Arg::I32(WIDTH as i32),
            ],
        ),
    }
}

/// Poisons y, runs once on set 0 and compares every element with the host reference.
fn check(b: &Bench, k: &Kernels, bufs: &Buffers, op: Op) -> Result<f64, GpuError> {
    let n = (rows() * WIDTH) as usize;
    let d = WIDTH as usize;
    b.gpu.poison(bufs.y.ptr, 2 * n)?;
    launch(b, k, bufs, op, 0)?;
    let y: Vec<u16> = b.gpu.download(bufs.y.ptr, n)?;
    let got = bf16_bits_to_f64(&y);
    let want: Vec<f64> = match op {
        Op::RmsNorm => {
            let w = bufs.uw.bf16_range(0, d);
            (0..rows() as usize)
                .into_par_iter()
                .flat_map_iter(|r| {
                    rmsnorm_row(&bufs.ux.bf16_range((r * d) as u64, d), &w, EPS as f64)
                })
                .collect()
        }
        Op::Modulate => (0..n)
            .into_par_iter()
            .map(|i| {
                let sample = (i / (TOKENS as usize * d)) as u64;
                let cond = sample * WIDTH + (i % d) as u64;
                modulate(
                    bufs.ux.bf16_at(i as u64),
                    bufs.uscale.bf16_at(cond),
                    bufs.ushift.bf16_at(cond),
                )
            })
            .collect(),
    };
    Ok(rel_error_par(n, |i| got[i], |i| want[i]))
}

fn measure(
    b: &mut Bench,
    k: &Kernels,
    bufs: &Buffers,
    op: Op,
    name: &str,
    shape: &str,
) -> Result<(), GpuError> {
    let error = check(b, k, bufs, op)?;
    let timing = b.time(|rep| launch(b, k, bufs, op, rep as u64 % bufs.sets))?;
    let n = (rows() * WIDTH) as f64;
    let extra = match op {
        Op::RmsNorm => 2.0 * WIDTH as f64,
        Op::Modulate => 2.0 * 2.0 * (BATCH * WIDTH) as f64,
    };
    // FLOPs per element: RMSNorm square-accumulate, two multiplies (rsqrt per row not counted) = 3;
    // modulate one add and one FMA = 3.
    let flops = 3.0 * n;
    let result = BenchResult::new(
        "norm",
        name,
        shape.to_string(),
        flops,
        2.0 * 2.0 * n + extra,
        timing,
        error,
        TOL,
    )
    .with_elements(rows() * WIDTH);
    b.push(result, PeakKind::Memory);
    Ok(())
}
