//! Memory suite: copy, scale, triad and reduce with 16-byte accesses, and cuMemcpyDtoD as the
//! baseline, over sizes from 1 MiB to 2 GiB per array. Bytes count every array read or written
//! once: copy, scale and memcpy 2 arrays, triad 3, reduce 1.

use rayon::prelude::*;

use super::context::{rel_error_par, Bench, PeakKind};
use super::driver::{Arg, DeviceBuffer, Function, Module};
use super::error::GpuError;
use super::nvrtc;
use super::reference::Uniform;
use super::report::BenchResult;

const MIB: u64 = 1 << 20;
/// Array sizes swept (bytes per array).
const SIZES: [u64; 7] = [
    MIB,
    4 * MIB,
    16 * MIB,
    64 * MIB,
    256 * MIB,
    1024 * MIB,
    2048 * MIB,
];
const SCALE: f32 = 1.5;
/// Tolerance of the exact kernels (copy, scale, triad reproduce the host bit for bit) and of
/// the fp32 reduction (summation order differs from the host's).
const TOL_EXACT: f64 = 1e-6;
const TOL_REDUCE: f64 = 1e-5;

#[derive(Debug, Clone, Copy, PartialEq)]
enum Kernel {
    Copy,
    Scale,
    Triad,
    Reduce,
    MemcpyDtoD,
}

impl Kernel {
    fn name(self) -> &'static str {
        match self {
            Kernel::Copy => "copy",
            Kernel::Scale => "scale",
            Kernel::Triad => "triad",
            Kernel::Reduce => "reduce",
            Kernel::MemcpyDtoD => "memcpy_dtod",
        }
    }

    /// Arrays read or written once per run.
    fn arrays(self) -> u64 {
        match self {
            Kernel::Triad => 3,
            Kernel::Reduce => 1,
            _ => 2,
        }
    }

    /// FLOPs per fp32 element: scale 1 multiply, triad 1 FMA = 2, reduce 1 add.
    fn flops_per_element(self) -> f64 {
        match self {
            Kernel::Scale | Kernel::Reduce => 1.0,
            Kernel::Triad => 2.0,
            Kernel::Copy | Kernel::MemcpyDtoD => 0.0,
        }
    }
}

struct Kernels {
    copy: Function,
    scale: Function,
    triad: Function,
    reduce: Function,
    reduce_final: Function,
    _module: Module,
}

/// Three pools of `pool_bytes` each: inputs p0 (and p1 for triad), output p1 (p2 for triad).
struct Pools {
    p: [DeviceBuffer; 3],
    partials: DeviceBuffer,
    total: DeviceBuffer,
}

pub fn run(b: &mut Bench) {
    let kernels = match load(b) {
        Ok(k) => k,
        Err(e) => return b.push_error("memory", "memory.cu", "compile/load".into(), &e),
    };
    let pool_bytes = SIZES[SIZES.len() - 1].min(b.device.memory_bytes / 8);
    let pools = match alloc_pools(b, pool_bytes) {
        Ok(p) => p,
        Err(e) => return b.push_error("memory", "pools", format!("{} MiB", pool_bytes / MIB), &e),
    };
    for kernel in [
        Kernel::Copy,
        Kernel::Scale,
        Kernel::Triad,
        Kernel::Reduce,
        Kernel::MemcpyDtoD,
    ] {
        for size in SIZES.into_iter().filter(|&s| s <= pool_bytes) {
            let shape = format!("{} MiB x {}", size / MIB, kernel.arrays());
            if let Err(e) = measure(b, &kernels, &pools, kernel, size, pool_bytes) {
                b.push_error("memory", kernel.name(), shape, &e);
            }
        }
    }
}

fn load(b: &Bench) -> Result<Kernels, GpuError> {
    let module = b.load(&nvrtc::MEMORY, &[])?;
    Ok(Kernels {
        copy: module.function("copy_u4")?,
        scale: module.function("scale_f4")?,
        triad: module.function("triad_f4")?,
        reduce: module.function("reduce_sum_f4")?,
        reduce_final: module.function("reduce_sum_final")?,
        _module: module,
    })
}

fn alloc_pools(b: &Bench, pool_bytes: u64) -> Result<Pools, GpuError> {
    Ok(Pools {
        p: [
            b.alloc(pool_bytes)?,
            b.alloc(pool_bytes)?,
            b.alloc(pool_bytes)?,
        ],
        partials: b.alloc(4 * 8 * b.sm_count as u64)?,
        total: b.alloc(4)?,
    })
}

fn launch(
    b: &Bench,
    k: &Kernels,
    pools: &Pools,
    kernel: Kernel,
    bytes: u64,
    offset: u64,
) -> Result<(), GpuError> {
    let n4 = bytes / 16;
    let grid = (b.stride_grid(n4), 1, 1);
    let [p0, p1, p2] = [
        pools.p[0].at(offset as usize),
        pools.p[1].at(offset as usize),
        pools.p[2].at(offset as usize),
    ];
    match kernel {
        Kernel::Copy => k.copy.launch(
            b.gpu,
            grid,
            256,
            0,
            &[Arg::Ptr(p0), Arg::Ptr(p1), Arg::U64(n4)],
        ),
        Kernel::Scale => k.scale.launch(
            b.gpu,
            grid,
            256,
            0,
            &[Arg::Ptr(p0), Arg::Ptr(p1), Arg::F32(SCALE), Arg::U64(n4)],
        ),
        Kernel::Triad => k.triad.launch(
            b.gpu,
            grid,
            256,
            0,
            &[
                Arg::Ptr(p2),
                Arg::Ptr(p0),
                Arg::Ptr(p1),
                Arg::F32(SCALE),
                Arg::U64(n4),
            ],
        ),
        Kernel::Reduce => {
            k.reduce.launch(
                b.gpu,
                grid,
                256,
                0,
                &[Arg::Ptr(p0), Arg::Ptr(pools.partials.ptr), Arg::U64(n4)],
            )?;
            k.reduce_final.launch(
                b.gpu,
                (1, 1, 1),
                1024,
                0,
                &[
                    Arg::Ptr(pools.partials.ptr),
                    Arg::Ptr(pools.total.ptr),
                    Arg::U32(grid.0),
                ],
            )
        }
        Kernel::MemcpyDtoD => b.gpu.copy_dtod(p1, p0, bytes as usize),
    }
}

fn measure(
    b: &mut Bench,
    k: &Kernels,
    pools: &Pools,
    kernel: Kernel,
    size: u64,
    pool_bytes: u64,
) -> Result<(), GpuError> {
    let n_pool = pool_bytes / 4;
    let u0 = b.fill_f32(pools.p[0].ptr, n_pool, -1.0, 1.0)?;
    let u1 = b.fill_f32(pools.p[1].ptr, n_pool, -1.0, 1.0)?;
    let n = (size / 4) as usize;

    let error = if kernel == Kernel::Reduce {
        b.gpu.poison(pools.total.ptr, 4)?;
        launch(b, k, pools, kernel, size, 0)?;
        let total: Vec<f32> = b.gpu.download(pools.total.ptr, 1)?;
        let reference: f64 = (0..n as u64)
            .into_par_iter()
            .map(|i| u0.f32_at(i) as f64)
            .sum();
        super::reference::rel_error(&[total[0] as f64], &[reference])
    } else {
        let out = if kernel == Kernel::Triad {
            &pools.p[2]
        } else {
            &pools.p[1]
        };
        b.gpu.poison(out.ptr, size as usize)?;
        launch(b, k, pools, kernel, size, 0)?;
        let got: Vec<f32> = b.gpu.download(out.ptr, n)?;
        let expected = |i: usize| expected(kernel, &u0, &u1, i as u64);
        rel_error_par(n, |i| got[i] as f64, expected)
    };

    let sets = b
        .rotation(kernel.arrays() * size)
        .min(pool_bytes / size)
        .max(1);
    let timing = b.time(|rep| launch(b, k, pools, kernel, size, (rep as u64 % sets) * size))?;
    let tolerance = if kernel == Kernel::Reduce {
        TOL_REDUCE
    } else {
        TOL_EXACT
    };
    let flops = kernel.flops_per_element() * n as f64;
    let bytes = (kernel.arrays() * size) as f64;
    let shape = format!("{} MiB x {}", size / MIB, kernel.arrays());
    let result = BenchResult::new(
        "memory",
        kernel.name(),
        shape,
        flops,
        bytes,
        timing,
        error,
        tolerance,
    )
    .with_elements(n as u64);
    b.push(result, PeakKind::Memory);
    Ok(())
}

/// Host value of output element i (fp32 arithmetic, as the device does it).
fn expected(kernel: Kernel, u0: &Uniform, u1: &Uniform, i: u64) -> f64 {
    let a = u0.f32_at(i);
    match kernel {
        Kernel::Copy | Kernel::MemcpyDtoD => a as f64,
        Kernel::Scale => (SCALE * a) as f64,
        Kernel::Triad => SCALE.mul_add(u1.f32_at(i), a) as f64,
        Kernel::Reduce => unreachable!("the reduction has a single output"),
    }
}
