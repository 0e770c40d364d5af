//! Errors of the GPU benchmark runner.

use std::fmt;

/// Everything that can stop `roofline bench`. A failed correctness check is not an error: it is
/// recorded in the report (`correct = false`) and the run goes on.
#[derive(Debug)]
pub enum GpuError {
    /// libcuda.so could not be loaded: no NVIDIA driver on this machine.
    NoDriver,
    /// libnvrtc.so could not be loaded.
    NoNvrtc,
    /// The driver loaded but reports no CUDA device.
    NoDevice,
    /// A CUDA driver, cuBLAS or NVRTC call returned an error.
    Cuda { call: String, detail: String },
    /// NVRTC rejected a kernel source; `log` is the compiler's log.
    Compile { file: String, log: String },
    /// A CUDA library panicked (for instance a symbol missing from an old driver).
    Panic(String),
    /// Options that cannot be run (for instance a GEMM shape the kernels do not support).
    Invalid(String),
    /// Writing the report failed.
    Io(std::io::Error),
}

impl fmt::Display for GpuError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            GpuError::NoDriver => write!(
                f,
                "no CUDA driver found (libcuda.so could not be loaded): `roofline bench` needs an NVIDIA GPU and driver"
            ),
            GpuError::NoNvrtc => write!(
                f,
                "NVRTC not found (libnvrtc.so could not be loaded): add the CUDA toolkit's lib64 folder, or the nvidia-cuda-nvrtc wheel's lib folder, to LD_LIBRARY_PATH"
            ),
            GpuError::NoDevice => write!(f, "the CUDA driver reports no GPU"),
            GpuError::Cuda { call, detail } => write!(f, "{call} failed: {detail}"),
            GpuError::Compile { file, log } => write!(f, "NVRTC could not compile {file}:\n{log}"),
            GpuError::Panic(msg) => write!(f, "a CUDA library panicked: {msg}"),
            GpuError::Invalid(msg) => write!(f, "{msg}"),
            GpuError::Io(e) => write!(f, "could not write the report: {e}"),
        }
    }
}

impl std::error::Error for GpuError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GpuError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<std::io::Error> for GpuError {
    fn from(e: std::io::Error) -> Self {
        GpuError::Io(e)
    }
}

/// Attaches the name of the failing call to a CUDA library error.
pub(crate) trait CallContext<T> {
    fn call(self, call: &str) -> Result<T, GpuError>;
}

impl<T, E: fmt::Debug> CallContext<T> for Result<T, E> {
    fn call(self, call: &str) -> Result<T, GpuError> {
        self.map_err(|e| GpuError::Cuda {
            call: call.to_string(),
            detail: format!("{e:?}"),
        })
    }
}

/// Runs `f`, turning a panic into `GpuError::Panic` with the default panic message suppressed.
/// cudarc's dynamic loading panics when a library or symbol is missing.
pub(crate) fn catch_silently<T>(f: impl FnOnce() -> T) -> Result<T, GpuError> {
    let previous = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    std::panic::set_hook(previous);
    result.map_err(|payload| {
        let msg = payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_else(|| "unknown panic".to_string());
        GpuError::Panic(msg)
    })
}
