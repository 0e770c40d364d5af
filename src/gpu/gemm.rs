//! GEMM suite: C[M,N] = A[M,K] * B[N,K]^T in bf16 with fp32 accumulation and bf16 output, on
//! the square sweep 1024..8192 and the requested shapes, by the mma.sync kernel, the wgmma
//! kernels (sm_90a only: gemm_wgmma, and gemm_wgmma_v2 with TMA loads, a producer warpgroup and
//! persistent CTAs) and cuBLAS; plus the fp32 FMA peak. FLOPs = 2MNK; bytes = 2(MK + NK + MN).

use std::ffi::{c_void, CString};

use cudarc::cublas::{result as cublas, sys as cublas_sys};
use cudarc::driver::{result as driver_result, sys as driver_sys};

use super::context::{rel_error_par, Bench, PeakKind};
use super::driver::{Arg, DeviceBuffer, Function, Module};
use super::error::{catch_silently, CallContext, GpuError};
use super::nvrtc;
use super::reference::{bf16_bits_to_f64, dot, fma_chains, Uniform};
use super::report::BenchResult;
use super::stats::Timing;
use super::GemmShape;

/// bf16 operands with fp32 accumulation and a bf16 output (relative error ~2^-9 from the final
/// rounding alone).
const TOL_BF16: f64 = 1e-2;
/// Rows and columns of C sampled for the host reference (plus the first and last of each).
const SAMPLES: usize = 48;
const SQUARES: [u64; 4] = [1024, 2048, 4096, 8192];

const MMA_TILE: u32 = 128;
const MMA_SHARED: u32 = 4 * (128 + 128) * 32 * 2;
const WGMMA_TILE: u32 = 128;
const WGMMA_SHARED: u32 = 4 * 2 * 128 * 64 * 2 + 1024;
/// gemm_wgmma_v2: CTA tile V2_BM x V2_BN x 64, 384 threads (a producer and two consumer
/// warpgroups), V2_STAGES stages of A and B tiles, 2 * V2_STAGES mbarriers and 1024 bytes of
/// alignment slack (V2_SHARED_BYTES in the kernel).
const V2_BM: u32 = 128;
const V2_BN: u32 = 256;
const V2_BK: u32 = 64;
const V2_STAGES: u32 = 4;
const V2_THREADS: u32 = 384;
const V2_SHARED: u32 = V2_STAGES * (V2_BM + V2_BN) * V2_BK * 2 + 2 * V2_STAGES * 8 + 1024;

/// The implementation a pass over the shapes measures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Pass {
    /// kernels/gemm_mma.cu, and the FMA peak.
    MmaSync,
    /// kernels/gemm_wgmma.cu (sm_90a only). `run` schedules it after every other suite: a
    /// faulting kernel leaves the CUDA context unusable, and this one has the least certain
    /// addressing (shared-memory descriptors).
    Wgmma,
    /// cuBLAS GemmEx.
    Cublas,
    /// kernels/gemm_wgmma_v2.cu (sm_90a only): TMA, mbarrier pipeline, warp specialization,
    /// persistent CTAs. Scheduled after `Wgmma`, last of all, for the same reason.
    WgmmaV2,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Gemm {
    MmaSync,
    Wgmma,
    WgmmaV2,
    Cublas,
}

impl Gemm {
    fn name(self) -> &'static str {
        match self {
            Gemm::MmaSync => "gemm_mma_sync",
            Gemm::Wgmma => "gemm_wgmma",
            Gemm::WgmmaV2 => "gemm_wgmma_v2",
            Gemm::Cublas => "cublas_gemm",
        }
    }
    fn suite(self) -> &'static str {
        match self {
            Gemm::Cublas => "cublas",
            _ => "gemm",
        }
    }
}

struct CublasHandle(cublas_sys::cublasHandle_t);

impl Drop for CublasHandle {
    fn drop(&mut self) {
        unsafe {
            let _ = cublas::destroy_handle(self.0);
        }
    }
}

enum Runner {
    /// The function and the module that must outlive it.
    Kernel {
        f: Function,
        _module: Module,
    },
    Cublas(CublasHandle),
    /// gemm_wgmma_v2, loaded here rather than through `driver::Module` because its launch
    /// passes two 128-byte CUtensorMaps by value.
    Tma(TmaKernel),
}

/// A module and its one kernel, launched directly with cuLaunchKernel.
struct TmaKernel {
    module: driver_sys::CUmodule,
    f: driver_sys::CUfunction,
}

impl Drop for TmaKernel {
    fn drop(&mut self) {
        unsafe {
            let _ = driver_result::module::unload(self.module);
        }
    }
}

/// All shapes of a pass: the square sweep, then the requested shapes.
fn shapes(requested: &[GemmShape]) -> Vec<GemmShape> {
    let mut all: Vec<GemmShape> = SQUARES
        .iter()
        .map(|&s| GemmShape::new(&format!("square{s}"), s, s, s))
        .collect();
    all.extend(requested.iter().cloned());
    all
}

pub fn run(b: &mut Bench, pass: Pass) {
    let gemm = match pass {
        Pass::MmaSync => Gemm::MmaSync,
        Pass::Wgmma => Gemm::Wgmma,
        Pass::WgmmaV2 => Gemm::WgmmaV2,
        Pass::Cublas => Gemm::Cublas,
    };
    if pass == Pass::MmaSync {
        if let Err(e) = fma_peak(b) {
            b.push_error("gemm", "fma_fp32", "peak".into(), &e);
        }
    }
    if pass == Pass::Wgmma && (b.gpu.arch != "sm_90a" || b.max_dynamic_shared < WGMMA_SHARED) {
        eprintln!(
            "  gemm_wgmma skipped: needs sm_90a (this device compiles for {})",
            b.gpu.arch
        );
        return;
    }
    if pass == Pass::WgmmaV2 && (b.gpu.arch != "sm_90a" || b.max_dynamic_shared < V2_SHARED) {
        eprintln!(
            "  gemm_wgmma_v2 skipped: needs sm_90a and {V2_SHARED} B of shared memory (this device compiles for {}, allows {} B)",
            b.gpu.arch, b.max_dynamic_shared
        );
        return;
    }
    let runner = match load(b, gemm) {
        Ok(r) => r,
        Err(e) => return b.push_error(gemm.suite(), gemm.name(), "compile/load".into(), &e),
    };
    for shape in shapes(&b.opts.gemm_shapes) {
        let label = format!("{} {}x{}x{}", shape.name, shape.m, shape.n, shape.k);
        if !supported(&shape) {
            let e = GpuError::Invalid(format!(
                "GEMM shape {label}: the kernels need K and N multiples of 8, N and K below 2^31 and 0 < M <= 65535 * 128"
            ));
            b.push_error(gemm.suite(), gemm.name(), label, &e);
            continue;
        }
        let result = Operands::new(b, &shape)
            .and_then(|operands| measure(b, &runner, gemm, &shape, &operands, &label));
        if let Err(e) = result {
            b.push_error(gemm.suite(), gemm.name(), label, &e);
        }
    }
}

/// Shapes the kernels accept: 16-byte rows of K, bf16 pairs of N, grid.y = ceil(M / 128) within
/// the launch limit, int32 indices.
fn supported(s: &GemmShape) -> bool {
    s.k.is_multiple_of(8)
        && s.n.is_multiple_of(8)
        && s.m > 0
        && s.m.div_ceil(MMA_TILE as u64) <= 65_535
        && s.n <= i32::MAX as u64
        && s.k <= i32::MAX as u64
}

fn load(b: &Bench, gemm: Gemm) -> Result<Runner, GpuError> {
    let (src, name, shared) = match gemm {
        Gemm::MmaSync => (&nvrtc::GEMM_MMA, "gemm_mma_sync", MMA_SHARED),
        Gemm::Wgmma => (&nvrtc::GEMM_WGMMA, "gemm_wgmma", WGMMA_SHARED),
        Gemm::WgmmaV2 => return load_tma_kernel(b).map(Runner::Tma),
        Gemm::Cublas => return open_cublas(b).map(Runner::Cublas),
    };
    let module = b.load(src, &[])?;
    let f = module.function(name)?;
    f.set_max_dynamic_shared(shared)?;
    Ok(Runner::Kernel { f, _module: module })
}

/// Compiles kernels/gemm_wgmma_v2.cu, prints ptxas's resource report, loads it and allows its
/// dynamic shared memory.
fn load_tma_kernel(b: &Bench) -> Result<TmaKernel, GpuError> {
    let src = &nvrtc::GEMM_WGMMA_V2;
    let compiled = nvrtc::compile(src, &b.gpu.arch, &[])?;
    nvrtc::print_resources(&compiled.log);
    let module = unsafe { driver_result::module::load_data(compiled.cubin.as_ptr().cast()) }
        .call(&format!("cuModuleLoadData({})", src.file))?;
    // From here on `kernel` unloads the module if anything fails.
    let mut kernel = TmaKernel {
        module,
        f: std::ptr::null_mut(),
    };
    let name = CString::new("gemm_wgmma_v2").expect("no NUL in the kernel name");
    kernel.f = unsafe { driver_result::module::get_function(kernel.module, name) }
        .call("cuModuleGetFunction(gemm_wgmma_v2)")?;
    unsafe {
        driver_result::function::set_function_attribute(
            kernel.f,
            driver_sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
            V2_SHARED as i32,
        )
    }
    .call("cuFuncSetAttribute(gemm_wgmma_v2)")?;
    Ok(kernel)
}

/// TMA descriptor of a row-major bf16 matrix [rows, k] (k contiguous) read in boxes of
/// `box_rows` rows x 64 k with the 128-byte swizzle; out-of-bounds elements read as zero.
fn tensor_map(
    ptr: u64,
    rows: u64,
    k: u64,
    box_rows: u32,
) -> Result<driver_sys::CUtensorMap, GpuError> {
    use driver_sys::{
        CUtensorMapDataType as Dt, CUtensorMapFloatOOBfill as Oob, CUtensorMapInterleave as Il,
        CUtensorMapL2promotion as L2, CUtensorMapSwizzle as Sw,
    };
    let mut map = driver_sys::CUtensorMap { opaque: [0; 16] };
    let dims: [u64; 2] = [k, rows];
    let strides: [u64; 1] = [2 * k];
    let boxes: [u32; 2] = [V2_BK, box_rows];
    let element_strides: [u32; 2] = [1, 1];
    catch_silently(|| unsafe {
        driver_sys::cuTensorMapEncodeTiled(
            &mut map,
            Dt::CU_TENSOR_MAP_DATA_TYPE_BFLOAT16,
            2,
            ptr as *mut c_void,
            dims.as_ptr(),
            strides.as_ptr(),
            boxes.as_ptr(),
            element_strides.as_ptr(),
            Il::CU_TENSOR_MAP_INTERLEAVE_NONE,
            Sw::CU_TENSOR_MAP_SWIZZLE_128B,
            L2::CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
            Oob::CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE,
        )
        .result()
    })?
    .call("cuTensorMapEncodeTiled")?;
    Ok(map)
}

/// Persistent grid of gemm_wgmma_v2: one CTA per SM (its shared memory allows no second one),
/// at most one per output tile.
fn v2_grid(s: &GemmShape, sm_count: u32) -> u32 {
    let tiles = s.m.div_ceil(V2_BM as u64) * s.n.div_ceil(V2_BN as u64);
    tiles.min(sm_count.max(1) as u64) as u32
}

fn open_cublas(b: &Bench) -> Result<CublasHandle, GpuError> {
    let present = catch_silently(|| unsafe { cublas_sys::is_culib_present() }).unwrap_or(false);
    if !present {
        return Err(GpuError::Invalid(
            "libcublas.so could not be loaded: add its folder to LD_LIBRARY_PATH".into(),
        ));
    }
    catch_silently(|| -> Result<CublasHandle, GpuError> {
        let handle = CublasHandle(cublas::create_handle().call("cublasCreate")?);
        unsafe { cublas::set_stream(handle.0, b.gpu.stream.cast()) }.call("cublasSetStream")?;
        Ok(handle)
    })?
}

/// `sets` rotating copies of A, B and C, filled with fresh uniform values in [-1, 1).
struct Operands {
    a: DeviceBuffer,
    b: DeviceBuffer,
    c: DeviceBuffer,
    ua: Uniform,
    ub: Uniform,
    sets: u64,
}

impl Operands {
    fn new(bench: &mut Bench, s: &GemmShape) -> Result<Self, GpuError> {
        let sets = bench.rotation(s.bytes() as u64);
        let (na, nb, nc) = (s.m * s.k, s.n * s.k, s.m * s.n);
        let a = bench.alloc(2 * na * sets)?;
        let b = bench.alloc(2 * nb * sets)?;
        let c = bench.alloc(2 * nc * sets)?;
        let ua = bench.fill_bf16(a.ptr, na * sets, -1.0, 1.0)?;
        let ub = bench.fill_bf16(b.ptr, nb * sets, -1.0, 1.0)?;
        Ok(Operands {
            a,
            b,
            c,
            ua,
            ub,
            sets,
        })
    }

    /// Device addresses of A, B, C of input set `set`.
    fn set(&self, s: &GemmShape, set: u64) -> (u64, u64, u64) {
        (
            self.a.at((2 * s.m * s.k * set) as usize),
            self.b.at((2 * s.n * s.k * set) as usize),
            self.c.at((2 * s.m * s.n * set) as usize),
        )
    }
}

fn launch(
    b: &Bench,
    runner: &Runner,
    gemm: Gemm,
    s: &GemmShape,
    (pa, pb, pc): (u64, u64, u64),
) -> Result<(), GpuError> {
    let (m, n, k) = (s.m as i32, s.n as i32, s.k as i32);
    let args = [
        Arg::Ptr(pa),
        Arg::Ptr(pb),
        Arg::Ptr(pc),
        Arg::I32(m),
        Arg::I32(n),
        Arg::I32(k),
    ];
    match (runner, gemm) {
        (Runner::Kernel { f, .. }, Gemm::MmaSync) => {
            let grid = (
                (s.n as u32).div_ceil(MMA_TILE),
                (s.m as u32).div_ceil(MMA_TILE),
                1,
            );
            f.launch(b.gpu, grid, 256, MMA_SHARED, &args)
        }
        (Runner::Kernel { f, .. }, Gemm::Wgmma) => {
            let grid = (
                (s.n as u32).div_ceil(WGMMA_TILE),
                (s.m as u32).div_ceil(WGMMA_TILE),
                1,
            );
            f.launch(b.gpu, grid, 256, WGMMA_SHARED, &args)
        }
        (Runner::Tma(kernel), Gemm::WgmmaV2) => {
            let mut map_a = tensor_map(pa, s.m, s.k, V2_BM)?;
            let mut map_b = tensor_map(pb, s.n, s.k, V2_BN)?;
            let (mut c, mut m, mut n, mut k) = (pc, m, n, k);
            let mut params: [*mut c_void; 6] = [
                (&mut map_a as *mut driver_sys::CUtensorMap).cast(),
                (&mut map_b as *mut driver_sys::CUtensorMap).cast(),
                (&mut c as *mut u64).cast(),
                (&mut m as *mut i32).cast(),
                (&mut n as *mut i32).cast(),
                (&mut k as *mut i32).cast(),
            ];
            unsafe {
                driver_result::launch_kernel(
                    kernel.f,
                    (v2_grid(s, b.sm_count), 1, 1),
                    (V2_THREADS, 1, 1),
                    V2_SHARED,
                    b.gpu.stream,
                    &mut params,
                )
            }
            .call("cuLaunchKernel(gemm_wgmma_v2)")
        }
        (Runner::Cublas(h), Gemm::Cublas) => {
            // Column-major cuBLAS computes C^T[N,M] = B[N,K] (op T of the K x N column-major
            // view) times A^T (the K x M column-major view of row-major A).
            let alpha = 1.0f32;
            let beta = 0.0f32;
            let bf16 = cublas_sys::cudaDataType::CUDA_R_16BF;
            unsafe {
                cublas::gemm_ex(
                    h.0,
                    cublas_sys::cublasOperation_t::CUBLAS_OP_T,
                    cublas_sys::cublasOperation_t::CUBLAS_OP_N,
                    n,
                    m,
                    k,
                    (&alpha as *const f32).cast::<c_void>(),
                    pb as *const c_void,
                    bf16,
                    k,
                    pa as *const c_void,
                    bf16,
                    k,
                    (&beta as *const f32).cast::<c_void>(),
                    pc as *mut c_void,
                    bf16,
                    n,
                    cublas_sys::cublasComputeType_t::CUBLAS_COMPUTE_32F,
                    cublas_sys::cublasGemmAlgo_t::CUBLAS_GEMM_DEFAULT,
                )
            }
            .call("cublasGemmEx")
        }
        _ => Err(GpuError::Invalid(format!(
            "{} is not run by this pass",
            gemm.name()
        ))),
    }
}

fn measure(
    b: &mut Bench,
    runner: &Runner,
    gemm: Gemm,
    s: &GemmShape,
    ops: &Operands,
    label: &str,
) -> Result<(), GpuError> {
    let error = check(b, runner, gemm, s, ops)?;
    let timing: Timing =
        b.time(|rep| launch(b, runner, gemm, s, ops.set(s, rep as u64 % ops.sets)))?;
    let result = BenchResult::new(
        gemm.suite(),
        gemm.name(),
        label.to_string(),
        s.flops(),
        s.bytes(),
        timing,
        error,
        TOL_BF16,
    )
    .with_mnk(s.m, s.n, s.k);
    b.push(result, PeakKind::Tensor);
    Ok(())
}

/// Poisons C, runs once on set 0, requires every element written (no NaN left) and compares a
/// sample of rows x columns (including the last row and column) with the host product.
fn check(
    b: &mut Bench,
    runner: &Runner,
    gemm: Gemm,
    s: &GemmShape,
    ops: &Operands,
) -> Result<f64, GpuError> {
    let (pa, pb, pc) = ops.set(s, 0);
    b.gpu.poison(pc, (2 * s.m * s.n) as usize)?;
    launch(b, runner, gemm, s, (pa, pb, pc))?;
    let c: Vec<u16> = b.gpu.download(pc, (s.m * s.n) as usize)?;
    let rows = sample_indices(s.m, b.next_seed());
    let cols = sample_indices(s.n, b.next_seed());
    let k = s.k as usize;
    let a_rows: Vec<Vec<f64>> = rows
        .iter()
        .map(|&i| ops.ua.bf16_range(i * s.k, k))
        .collect();
    let b_rows: Vec<Vec<f64>> = cols
        .iter()
        .map(|&j| ops.ub.bf16_range(j * s.k, k))
        .collect();
    let pairs: Vec<(usize, usize)> = (0..rows.len())
        .flat_map(|r| (0..cols.len()).map(move |q| (r, q)))
        .collect();
    let got: Vec<f64> = pairs
        .iter()
        .map(|&(r, q)| bf16_bits_to_f64(&[c[(rows[r] * s.n + cols[q]) as usize]])[0])
        .collect();
    let sampled = rel_error_par(
        pairs.len(),
        |i| got[i],
        |i| dot(&a_rows[pairs[i].0], &b_rows[pairs[i].1]),
    );
    let all_written = c.iter().all(|&bits| (bits & 0x7f80) != 0x7f80);
    Ok(if all_written { sampled } else { f64::INFINITY })
}

/// Up to SAMPLES + 2 distinct indices in 0..len: 0, len - 1 and pseudo-random ones.
fn sample_indices(len: u64, seed: u32) -> Vec<u64> {
    let u = Uniform::new(seed, 0.0, 1.0);
    let mut idx: Vec<u64> = (0..SAMPLES as u64)
        .map(|i| ((u.f32_at(i) as f64 * len as f64) as u64).min(len - 1))
        .collect();
    idx.push(0);
    idx.push(len - 1);
    idx.sort_unstable();
    idx.dedup();
    idx
}

/// fp32 FMA peak: every thread runs 16 independent chains of ITERS FMAs (2 FLOPs each).
fn fma_peak(b: &mut Bench) -> Result<(), GpuError> {
    const CHAINS: u64 = 16;
    const ITERS: u32 = 8192;
    const MUL: f32 = 0.999_9;
    const ADD: f32 = 1.0e-4;
    let module = b.load(&nvrtc::MEMORY, &[])?;
    let f = module.function("fma_fp32")?;
    let blocks = 8 * b.sm_count;
    let threads = blocks as u64 * 256;
    let out = b.alloc(4 * threads)?;
    let args = [
        Arg::Ptr(out.ptr),
        Arg::F32(MUL),
        Arg::F32(ADD),
        Arg::U32(ITERS),
    ];
    b.gpu.poison(out.ptr, (4 * threads) as usize)?;
    f.launch(b.gpu, (blocks, 1, 1), 256, 0, &args)?;
    let got: Vec<f32> = b.gpu.download(out.ptr, threads as usize)?;
    let expected = fma_chains(CHAINS as usize, ITERS, MUL, ADD) as f64;
    let error = rel_error_par(got.len(), |i| got[i] as f64, |_| expected);
    let timing = b.time(|_| f.launch(b.gpu, (blocks, 1, 1), 256, 0, &args))?;
    let flops = 2.0 * (threads * CHAINS * ITERS as u64) as f64;
    let shape = format!("{blocks}x256 threads x {CHAINS}x{ITERS}");
    let result = BenchResult::new(
        "gemm",
        "fma_fp32",
        shape,
        flops,
        4.0 * threads as f64,
        timing,
        error,
        1e-6,
    );
    b.push(result, PeakKind::Fp32);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn samples_cover_both_ends_and_stay_in_range() {
        let idx = sample_indices(64, 3);
        assert_eq!(idx[0], 0);
        assert_eq!(*idx.last().unwrap(), 63);
        assert!(idx.windows(2).all(|w| w[0] < w[1]));
        assert_eq!(sample_indices(1, 5), vec![0]);
    }

    #[test]
    fn v2_shared_memory_and_grid() {
        // 4 stages of (128 + 256) x 64 bf16, 8 mbarriers, 1024 B alignment slack: within the
        // 227 KiB a Hopper block may opt in to.
        const { assert!(V2_SHARED <= 232_448) };
        assert_eq!(V2_SHARED, 196_608 + 64 + 1024);
        let square = GemmShape::new("s", 8192, 8192, 8192);
        assert_eq!(v2_grid(&square, 132), 132);
        let small = GemmShape::new("adaln", 64, 4608, 768);
        assert_eq!(v2_grid(&small, 132), 18);
    }

    #[test]
    fn unsupported_shapes_are_rejected() {
        assert!(supported(&GemmShape::new("ok", 64, 4608, 768)));
        assert!(!supported(&GemmShape::new("odd k", 64, 64, 100)));
        assert!(!supported(&GemmShape::new("empty", 0, 64, 64)));
    }

    #[test]
    fn sweep_precedes_requested_shapes() {
        let requested = [
            GemmShape::new("adaln", 64, 4608, 768),
            GemmShape::new("qkv", 32768, 2304, 768),
        ];
        let all = shapes(&requested);
        assert_eq!(all.len(), SQUARES.len() + 2);
        assert_eq!(all[3].m, 8192);
        assert_eq!(all[4].name, "adaln");
    }
}
