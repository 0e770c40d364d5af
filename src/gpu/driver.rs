//! Thin layer over the CUDA driver API (through cudarc's `result` bindings): one context, one
//! stream, device buffers freed on drop, modules compiled by NVRTC, launches and event timing.
//! Every call's status is checked.

use std::ffi::{c_void, CString};

use cudarc::driver::{result, sys};

use super::error::{catch_silently, CallContext, GpuError};
use super::nvrtc::{self, KernelSource};
use super::stats::{summarize, Timing};

/// The device in use, its primary context and a stream.
pub struct Gpu {
    pub device: sys::CUdevice,
    pub stream: sys::CUstream,
    context: sys::CUcontext,
    pub arch: String,
    pub compute_capability: (i32, i32),
}

impl Gpu {
    /// Loads the driver (a missing libcuda.so becomes `GpuError::NoDriver`, never a panic),
    /// initializes it and opens device 0.
    pub fn open() -> Result<Gpu, GpuError> {
        let present = catch_silently(|| unsafe { sys::is_culib_present() }).unwrap_or(false);
        if !present {
            return Err(GpuError::NoDriver);
        }
        catch_silently(|| -> Result<Gpu, GpuError> {
            result::init().call("cuInit")?;
            if result::device::get_count().call("cuDeviceGetCount")? < 1 {
                return Err(GpuError::NoDevice);
            }
            let device = result::device::get(0).call("cuDeviceGet")?;
            let context =
                unsafe { result::primary_ctx::retain(device) }.call("cuDevicePrimaryCtxRetain")?;
            unsafe { result::ctx::set_current(context) }.call("cuCtxSetCurrent")?;
            let stream = result::stream::create(result::stream::StreamKind::NonBlocking)
                .call("cuStreamCreate")?;
            let mut gpu = Gpu {
                device,
                stream,
                context,
                arch: String::new(),
                compute_capability: (0, 0),
            };
            let major = gpu
                .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR)?;
            let minor = gpu
                .attribute(sys::CUdevice_attribute::CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR)?;
            gpu.compute_capability = (major, minor);
            gpu.arch = nvrtc::arch_for(major, minor);
            Ok(gpu)
        })?
    }

    pub fn attribute(&self, attribute: sys::CUdevice_attribute) -> Result<i32, GpuError> {
        unsafe { result::device::get_attribute(self.device, attribute) }
            .call("cuDeviceGetAttribute")
    }

    pub fn name(&self) -> Result<String, GpuError> {
        result::device::get_name(self.device).call("cuDeviceGetName")
    }

    pub fn total_memory(&self) -> Result<usize, GpuError> {
        unsafe { result::device::total_mem(self.device) }.call("cuDeviceTotalMem")
    }

    /// CUDA version the driver supports, as "major.minor".
    pub fn driver_cuda_version(&self) -> Result<String, GpuError> {
        let mut v = 0;
        unsafe { sys::cuDriverGetVersion(&mut v) }
            .result()
            .call("cuDriverGetVersion")?;
        Ok(format!("{}.{}", v / 1000, (v % 1000) / 10))
    }

    pub fn synchronize(&self) -> Result<(), GpuError> {
        unsafe { result::stream::synchronize(self.stream) }.call("cuStreamSynchronize")
    }

    pub fn alloc(&self, bytes: usize) -> Result<DeviceBuffer, GpuError> {
        let ptr = unsafe { result::malloc_sync(bytes.max(1)) }
            .call(&format!("cuMemAlloc({bytes} bytes)"))?;
        Ok(DeviceBuffer { ptr, bytes })
    }

    /// Fills `bytes` bytes at `ptr` with 0xFF: a NaN in both fp32 and bf16 (the poison written
    /// before every checked run).
    pub fn poison(&self, ptr: sys::CUdeviceptr, bytes: usize) -> Result<(), GpuError> {
        unsafe { result::memset_d8_async(ptr, 0xFF, bytes, self.stream) }.call("cuMemsetD8Async")
    }

    pub fn download<T: Copy + Default>(
        &self,
        ptr: sys::CUdeviceptr,
        len: usize,
    ) -> Result<Vec<T>, GpuError> {
        let mut host = vec![T::default(); len];
        self.synchronize()?;
        unsafe { result::memcpy_dtoh_sync(&mut host, ptr) }.call("cuMemcpyDtoH")?;
        Ok(host)
    }

    pub fn copy_dtod(
        &self,
        dst: sys::CUdeviceptr,
        src: sys::CUdeviceptr,
        bytes: usize,
    ) -> Result<(), GpuError> {
        unsafe { result::memcpy_dtod_async(dst, src, bytes, self.stream) }.call("cuMemcpyDtoDAsync")
    }

    /// Compiles a kernel source for this device and loads it.
    pub fn load(&self, src: &KernelSource, extra_options: &[&str]) -> Result<Module, GpuError> {
        let compiled = nvrtc::compile(src, &self.arch, extra_options)?;
        let module = unsafe { result::module::load_data(compiled.cubin.as_ptr().cast()) }
            .call(&format!("cuModuleLoadData({})", src.file))?;
        Ok(Module {
            module,
            log: compiled.log,
        })
    }

    /// Times `reps` runs of `launch(rep)` with a CUDA event pair around each, after `warmup`
    /// untimed runs; `launch` receives the repetition index to rotate its buffers. A kernel
    /// shorter than its launch (a few microseconds) is timed with the launch gap included.
    pub fn time(
        &self,
        warmup: u32,
        reps: u32,
        mut launch: impl FnMut(usize) -> Result<(), GpuError>,
    ) -> Result<Timing, GpuError> {
        for i in 0..warmup as usize {
            launch(i)?;
        }
        self.synchronize()?;
        let events: Vec<Event> = (0..2 * reps.max(1))
            .map(|_| Event::new())
            .collect::<Result<_, _>>()?;
        for (i, pair) in events.chunks(2).enumerate() {
            pair[0].record(self.stream)?;
            launch(warmup as usize + i)?;
            pair[1].record(self.stream)?;
        }
        self.synchronize()?;
        let samples: Vec<f64> = events
            .chunks(2)
            .map(|pair| pair[0].elapsed_s(&pair[1]))
            .collect::<Result<_, _>>()?;
        Ok(summarize(&samples))
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        unsafe {
            let _ = result::stream::synchronize(self.stream);
            let _ = result::stream::destroy(self.stream);
            let _ = result::primary_ctx::release(self.device);
        }
        let _ = self.context;
    }
}

/// Device memory, freed on drop.
pub struct DeviceBuffer {
    pub ptr: sys::CUdeviceptr,
    pub bytes: usize,
}

impl DeviceBuffer {
    /// Device address `offset` bytes into the buffer.
    pub fn at(&self, offset: usize) -> sys::CUdeviceptr {
        assert!(
            offset <= self.bytes,
            "offset {offset} past a buffer of {} bytes",
            self.bytes
        );
        self.ptr + offset as u64
    }
}

impl Drop for DeviceBuffer {
    fn drop(&mut self) {
        unsafe {
            let _ = result::free_sync(self.ptr);
        }
    }
}

/// A loaded CUBIN and the compiler log (ptxas resource report).
pub struct Module {
    module: sys::CUmodule,
    pub log: String,
}

impl Module {
    pub fn function(&self, name: &str) -> Result<Function, GpuError> {
        let cname =
            CString::new(name).map_err(|_| GpuError::Invalid(format!("kernel name {name:?}")))?;
        let f = unsafe { result::module::get_function(self.module, cname) }
            .call(&format!("cuModuleGetFunction({name})"))?;
        Ok(Function {
            f,
            name: name.to_string(),
        })
    }
}

impl Drop for Module {
    fn drop(&mut self) {
        unsafe {
            let _ = result::module::unload(self.module);
        }
    }
}

/// A kernel argument, passed by value.
#[derive(Debug, Clone, Copy)]
pub enum Arg {
    Ptr(sys::CUdeviceptr),
    I32(i32),
    U32(u32),
    U64(u64),
    F32(f32),
}

pub struct Function {
    f: sys::CUfunction,
    pub name: String,
}

impl Function {
    /// Allows `bytes` of dynamic shared memory (needed above 48 KiB).
    pub fn set_max_dynamic_shared(&self, bytes: u32) -> Result<(), GpuError> {
        unsafe {
            result::function::set_function_attribute(
                self.f,
                sys::CUfunction_attribute::CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES,
                bytes as i32,
            )
        }
        .call(&format!("cuFuncSetAttribute({})", self.name))
    }

    pub fn launch(
        &self,
        gpu: &Gpu,
        grid: (u32, u32, u32),
        block: u32,
        shared: u32,
        args: &[Arg],
    ) -> Result<(), GpuError> {
        let mut values: Vec<[u8; 8]> = args
            .iter()
            .map(|a| match *a {
                Arg::Ptr(p) => p.to_ne_bytes(),
                Arg::U64(v) => v.to_ne_bytes(),
                Arg::I32(v) => widen(v.to_ne_bytes()),
                Arg::U32(v) => widen(v.to_ne_bytes()),
                Arg::F32(v) => widen(v.to_ne_bytes()),
            })
            .collect();
        let mut params: Vec<*mut c_void> =
            values.iter_mut().map(|v| v.as_mut_ptr().cast()).collect();
        unsafe {
            result::launch_kernel(self.f, grid, (block, 1, 1), shared, gpu.stream, &mut params)
        }
        .call(&format!("cuLaunchKernel({})", self.name))
    }
}

/// A 4-byte argument stored in the first bytes of an 8-byte slot (the driver reads 4 bytes).
fn widen(b: [u8; 4]) -> [u8; 8] {
    [b[0], b[1], b[2], b[3], 0, 0, 0, 0]
}

struct Event(sys::CUevent);

impl Event {
    fn new() -> Result<Event, GpuError> {
        result::event::create(sys::CUevent_flags::CU_EVENT_DEFAULT)
            .map(Event)
            .call("cuEventCreate")
    }

    fn record(&self, stream: sys::CUstream) -> Result<(), GpuError> {
        unsafe { result::event::record(self.0, stream) }.call("cuEventRecord")
    }

    fn elapsed_s(&self, end: &Event) -> Result<f64, GpuError> {
        let ms = unsafe { result::event::elapsed(self.0, end.0) }.call("cuEventElapsedTime")?;
        Ok(ms as f64 * 1e-3)
    }
}

impl Drop for Event {
    fn drop(&mut self) {
        unsafe {
            let _ = result::event::destroy(self.0);
        }
    }
}
