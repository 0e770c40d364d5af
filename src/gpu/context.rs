//! State shared by the suites: the device, the fill kernels, the options, fresh seeds and the
//! results gathered so far.

use std::time::{SystemTime, UNIX_EPOCH};

use cudarc::driver::sys::{self, CUdevice_attribute as Attr};
use rayon::prelude::*;

use super::driver::{Arg, DeviceBuffer, Function, Gpu, Module};
use super::error::GpuError;
use super::nvrtc::{self, KernelSource};
use super::reference::{hash_u32, Uniform};
use super::report::{iso8601_utc, BenchReport, BenchResult, DeviceInfo, SCHEMA};
use super::stats::Timing;
use super::{BenchOptions, Peaks};

/// Untimed runs before the timed ones.
pub const WARMUP: u32 = 3;
/// Input sets rotate until they span this many L2 sizes (or `MAX_SETS`).
const L2_SPAN: u64 = 3;
const MAX_SETS: u64 = 1024;

/// Which peak a kernel's rate is compared with.
#[derive(Debug, Clone, Copy)]
pub enum PeakKind {
    Tensor,
    Fp32,
    Memory,
}

pub struct Bench<'a> {
    pub gpu: &'a Gpu,
    pub opts: &'a BenchOptions,
    pub device: DeviceInfo,
    pub sm_count: u32,
    pub l2_bytes: u64,
    pub max_dynamic_shared: u32,
    fill_f32: Function,
    fill_bf16: Function,
    _fill_module: Module,
    seed: u32,
    date: String,
    results: Vec<BenchResult>,
}

impl<'a> Bench<'a> {
    pub fn new(gpu: &'a Gpu, opts: &'a BenchOptions) -> Result<Self, GpuError> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let date = iso8601_utc(nanos.as_secs());
        let (nv_major, nv_minor) = nvrtc::version()?;
        let attr = |a: Attr| gpu.attribute(a);
        let sm_count = attr(Attr::CU_DEVICE_ATTRIBUTE_MULTIPROCESSOR_COUNT)? as u32;
        let l2_bytes = attr(Attr::CU_DEVICE_ATTRIBUTE_L2_CACHE_SIZE)? as u64;
        let device = DeviceInfo {
            name: gpu.name()?,
            compute_capability: format!(
                "{}.{}",
                gpu.compute_capability.0, gpu.compute_capability.1
            ),
            sm_count,
            l2_bytes,
            memory_bytes: gpu.total_memory()? as u64,
            clock_khz: attr(Attr::CU_DEVICE_ATTRIBUTE_CLOCK_RATE)? as u64,
            memory_clock_khz: attr(Attr::CU_DEVICE_ATTRIBUTE_MEMORY_CLOCK_RATE)? as u64,
            memory_bus_width_bits: attr(Attr::CU_DEVICE_ATTRIBUTE_GLOBAL_MEMORY_BUS_WIDTH)? as u32,
            driver_version: kernel_driver_version(),
            cuda_driver_version: gpu.driver_cuda_version()?,
            nvrtc_version: format!("{nv_major}.{nv_minor}"),
        };
        let max_dynamic_shared =
            attr(Attr::CU_DEVICE_ATTRIBUTE_MAX_SHARED_MEMORY_PER_BLOCK_OPTIN)? as u32;
        eprintln!(
            "device: {} (cc {}, {} SMs, L2 {} MiB, {} GiB), target {}, NVRTC {}",
            device.name,
            device.compute_capability,
            sm_count,
            l2_bytes >> 20,
            device.memory_bytes >> 30,
            gpu.arch,
            device.nvrtc_version
        );
        let fill_module = gpu.load(&nvrtc::FILL, &[])?;
        Ok(Bench {
            gpu,
            opts,
            device,
            sm_count,
            l2_bytes,
            max_dynamic_shared,
            fill_f32: fill_module.function("fill_uniform_f32")?,
            fill_bf16: fill_module.function("fill_uniform_bf16")?,
            _fill_module: fill_module,
            seed: hash_u32(nanos.subsec_nanos() ^ nanos.as_secs() as u32),
            date,
            results: Vec::new(),
        })
    }

    /// Compiles and loads a kernel source, printing ptxas's resource report to stderr.
    pub fn load(&self, src: &KernelSource, extra_options: &[&str]) -> Result<Module, GpuError> {
        let module = self.gpu.load(src, extra_options)?;
        nvrtc::print_resources(&module.log);
        Ok(module)
    }

    /// A fresh seed for every filled buffer.
    pub fn next_seed(&mut self) -> u32 {
        self.seed = hash_u32(self.seed.wrapping_add(0x9e37_79b9));
        self.seed
    }

    /// Number of input sets so that the sets together span several L2 sizes.
    pub fn rotation(&self, bytes_per_set: u64) -> u64 {
        (L2_SPAN * self.l2_bytes)
            .div_ceil(bytes_per_set.max(1))
            .clamp(1, MAX_SETS)
    }

    /// Grid of a grid-stride kernel with 256-thread blocks: enough blocks to fill every SM.
    pub fn stride_grid(&self, work_items: u64) -> u32 {
        work_items.div_ceil(256).clamp(1, 8 * self.sm_count as u64) as u32
    }

    /// Fills `n` fp32 at `ptr` with a fresh uniform stream in [lo, hi) and returns the stream.
    pub fn fill_f32(
        &mut self,
        ptr: sys::CUdeviceptr,
        n: u64,
        lo: f32,
        hi: f32,
    ) -> Result<Uniform, GpuError> {
        self.fill(false, ptr, n, lo, hi)
    }

    /// Fills `n` bf16 at `ptr` with a fresh uniform stream in [lo, hi) and returns the stream.
    pub fn fill_bf16(
        &mut self,
        ptr: sys::CUdeviceptr,
        n: u64,
        lo: f32,
        hi: f32,
    ) -> Result<Uniform, GpuError> {
        self.fill(true, ptr, n, lo, hi)
    }

    fn fill(
        &mut self,
        bf16: bool,
        ptr: sys::CUdeviceptr,
        n: u64,
        lo: f32,
        hi: f32,
    ) -> Result<Uniform, GpuError> {
        let u = Uniform::new(self.next_seed(), lo, hi);
        let grid = self.stride_grid(n);
        let kernel = if bf16 {
            &self.fill_bf16
        } else {
            &self.fill_f32
        };
        kernel.launch(
            self.gpu,
            (grid, 1, 1),
            256,
            0,
            &[
                Arg::Ptr(ptr),
                Arg::U64(n),
                Arg::U32(u.seed),
                Arg::F32(u.scale),
                Arg::F32(u.offset),
            ],
        )?;
        Ok(u)
    }

    pub fn alloc(&self, bytes: u64) -> Result<DeviceBuffer, GpuError> {
        self.gpu.alloc(bytes as usize)
    }

    pub fn time(
        &self,
        launch: impl FnMut(usize) -> Result<(), GpuError>,
    ) -> Result<Timing, GpuError> {
        self.gpu.time(WARMUP, self.opts.reps.max(1), launch)
    }

    /// Records a measured result, with its fraction of the relevant peak.
    pub fn push(&mut self, mut result: BenchResult, peak: PeakKind) {
        if let Some(p) = self.opts.peaks {
            result.fraction_of_peak = fraction(&p, peak, &result);
        }
        eprintln!(
            "  {:<16} {:<28} {:>10.1} us  {:>8.1} TFLOP/s  {:>8.1} GB/s  err {:.1e}  {}",
            result.kernel,
            result.shape,
            result.time_s * 1e6,
            result.flops_per_s / 1e12,
            result.bytes_per_s / 1e9,
            result.max_rel_error,
            if result.correct { "ok" } else { "FAILED" }
        );
        self.results.push(result);
    }

    /// Records a kernel that could not be measured (CUDA error): listed as incorrect, no timing.
    pub fn push_error(&mut self, suite: &str, kernel: &str, shape: String, error: &GpuError) {
        eprintln!("  {kernel:<16} {shape:<28} ERROR: {error}");
        let timing = Timing {
            median_s: 0.0,
            min_s: 0.0,
            p90_s: 0.0,
            reps: 0,
        };
        let mut r = BenchResult::new(suite, kernel, shape, 0.0, 0.0, timing, f64::INFINITY, 0.0);
        r.error = Some(error.to_string());
        self.results.push(r);
    }

    pub fn report(&self) -> BenchReport {
        BenchReport {
            schema: SCHEMA.to_string(),
            date: self.date.clone(),
            command: std::env::args().collect::<Vec<_>>().join(" "),
            roofline_version: env!("CARGO_PKG_VERSION").to_string(),
            device: self.device.clone(),
            results: self.results.clone(),
        }
    }

    pub fn write_report(&self) -> Result<(), GpuError> {
        if let Some(path) = &self.opts.out {
            std::fs::write(path, self.report().to_json())?;
        }
        Ok(())
    }
}

fn fraction(p: &Peaks, kind: PeakKind, r: &BenchResult) -> Option<f64> {
    let (achieved, peak) = match kind {
        PeakKind::Tensor => (r.flops_per_s, p.bf16_tensor_flops),
        PeakKind::Fp32 => (r.flops_per_s, p.fp32_vector_flops),
        PeakKind::Memory => (r.bytes_per_s, p.hbm_bytes_per_s),
    };
    (peak > 0.0 && achieved > 0.0).then(|| achieved / peak)
}

/// The NVIDIA kernel module's version ("580.95.05"): the first dotted number after "Kernel
/// Module" in /proc/driver/nvidia/version (the open module writes "Kernel Module for x86_64
/// 580.159.04"); empty if unavailable.
fn kernel_driver_version() -> String {
    std::fs::read_to_string("/proc/driver/nvidia/version")
        .ok()
        .and_then(|text| {
            let line = text.lines().next()?.to_string();
            let idx = line.find("Kernel Module")?;
            line[idx..]
                .split_whitespace()
                .find(|w| w.contains('.') && w.chars().all(|c| c.is_ascii_digit() || c == '.'))
                .map(str::to_string)
        })
        .unwrap_or_default()
}

/// Relative error ||out - ref|| / ||ref|| over `len` elements in parallel, `out(i)` and
/// `reference(i)` giving element i; infinite if any output is not finite (unwritten poison).
pub fn rel_error_par(
    len: usize,
    out: impl Fn(usize) -> f64 + Sync,
    reference: impl Fn(usize) -> f64 + Sync,
) -> f64 {
    let (diff, norm, bad) = (0..len)
        .into_par_iter()
        .map(|i| {
            let o = out(i);
            let r = reference(i);
            if o.is_finite() {
                ((o - r) * (o - r), r * r, 0u64)
            } else {
                (0.0, r * r, 1)
            }
        })
        .reduce(|| (0.0, 0.0, 0), |a, b| (a.0 + b.0, a.1 + b.1, a.2 + b.2));
    if bad > 0 {
        f64::INFINITY
    } else if norm == 0.0 {
        if diff == 0.0 {
            0.0
        } else {
            f64::INFINITY
        }
    } else {
        (diff / norm).sqrt()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_error_matches_serial() {
        let out: Vec<f64> = (0..1000).map(|i| i as f64 * 1.001).collect();
        let reference: Vec<f64> = (0..1000).map(|i| i as f64).collect();
        let par = rel_error_par(1000, |i| out[i], |i| reference[i]);
        let ser = super::super::reference::rel_error(&out, &reference);
        assert!((par - ser).abs() < 1e-12);
        assert!(rel_error_par(2, |i| if i == 1 { f64::NAN } else { 1.0 }, |_| 1.0).is_infinite());
    }
}
