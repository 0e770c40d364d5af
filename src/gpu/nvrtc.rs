//! Run-time compilation of the CUDA sources in `kernels/` with NVRTC, straight to a CUBIN.

use std::ffi::{c_char, c_int, CStr, CString};

use cudarc::nvrtc::sys;

use super::error::{catch_silently, GpuError};

/// A kernel source file embedded in the binary.
#[derive(Debug, Clone, Copy)]
pub struct KernelSource {
    /// File name under `kernels/`.
    pub file: &'static str,
    pub source: &'static str,
}

/// Header included by every kernel source (bf16 helpers, random fill, cp.async and mma wrappers).
pub const COMMON_HEADER: KernelSource = KernelSource {
    file: "common.cuh",
    source: include_str!("../../kernels/common.cuh"),
};

pub const FILL: KernelSource = KernelSource {
    file: "fill.cu",
    source: include_str!("../../kernels/fill.cu"),
};
pub const MEMORY: KernelSource = KernelSource {
    file: "memory.cu",
    source: include_str!("../../kernels/memory.cu"),
};
pub const GEMM_MMA: KernelSource = KernelSource {
    file: "gemm_mma.cu",
    source: include_str!("../../kernels/gemm_mma.cu"),
};
pub const GEMM_WGMMA: KernelSource = KernelSource {
    file: "gemm_wgmma.cu",
    source: include_str!("../../kernels/gemm_wgmma.cu"),
};
pub const GEMM_WGMMA_V2: KernelSource = KernelSource {
    file: "gemm_wgmma_v2.cu",
    source: include_str!("../../kernels/gemm_wgmma_v2.cu"),
};
pub const ATTENTION: KernelSource = KernelSource {
    file: "attention.cu",
    source: include_str!("../../kernels/attention.cu"),
};
pub const NORM: KernelSource = KernelSource {
    file: "norm.cu",
    source: include_str!("../../kernels/norm.cu"),
};

/// Every compilable source (the `.cu` files of `kernels/`).
pub const SOURCES: [KernelSource; 7] = [
    FILL,
    MEMORY,
    GEMM_MMA,
    GEMM_WGMMA,
    GEMM_WGMMA_V2,
    ATTENTION,
    NORM,
];

/// Sources that need the architecture-specific target sm_90a (wgmma); they compile for nothing else.
pub fn needs_sm90a(file: &str) -> bool {
    file == GEMM_WGMMA.file || file == GEMM_WGMMA_V2.file
}

/// NVRTC target for a compute capability: `sm_90a` on 9.0 (wgmma, setmaxnreg), `sm_XY` otherwise.
pub fn arch_for(major: i32, minor: i32) -> String {
    if (major, minor) == (9, 0) {
        "sm_90a".to_string()
    } else {
        format!("sm_{major}{minor}")
    }
}

/// A compiled CUBIN and NVRTC's log (which holds ptxas's resource report when asked for).
#[derive(Debug, Clone)]
pub struct Compiled {
    pub cubin: Vec<u8>,
    pub log: String,
}

/// True when libnvrtc can be loaded (never panics).
pub fn nvrtc_present() -> bool {
    catch_silently(|| unsafe { sys::is_culib_present() }).unwrap_or(false)
}

/// NVRTC's version as (major, minor).
pub fn version() -> Result<(i32, i32), GpuError> {
    if !nvrtc_present() {
        return Err(GpuError::NoNvrtc);
    }
    let (mut major, mut minor) = (0, 0);
    let r = catch_silently(|| unsafe { sys::nvrtcVersion(&mut major, &mut minor) })?;
    check(r, "nvrtcVersion")?;
    Ok((major, minor))
}

fn check(r: sys::nvrtcResult, call: &str) -> Result<(), GpuError> {
    if r == sys::nvrtcResult::NVRTC_SUCCESS {
        Ok(())
    } else {
        Err(GpuError::Cuda {
            call: call.to_string(),
            detail: format!("{r:?}"),
        })
    }
}

/// Compiles `src` for `arch` (e.g. "sm_90a") to a CUBIN with `-std=c++17`, ptxas's verbose
/// resource report and the given extra options; `common.cuh` is supplied as an include.
pub fn compile(
    src: &KernelSource,
    arch: &str,
    extra_options: &[&str],
) -> Result<Compiled, GpuError> {
    if !nvrtc_present() {
        return Err(GpuError::NoNvrtc);
    }
    catch_silently(|| compile_unchecked(src, arch, extra_options))?
}

struct Program(sys::nvrtcProgram);

impl Drop for Program {
    fn drop(&mut self) {
        unsafe {
            sys::nvrtcDestroyProgram(&mut self.0);
        }
    }
}

fn compile_unchecked(
    src: &KernelSource,
    arch: &str,
    extra_options: &[&str],
) -> Result<Compiled, GpuError> {
    let invalid =
        |what: &str| GpuError::Invalid(format!("{what} of {} contains a NUL byte", src.file));
    let source = CString::new(src.source).map_err(|_| invalid("source"))?;
    let name = CString::new(src.file).map_err(|_| invalid("name"))?;
    let header = CString::new(COMMON_HEADER.source).map_err(|_| invalid("common.cuh"))?;
    let header_name = CString::new(COMMON_HEADER.file).map_err(|_| invalid("header name"))?;
    let headers = [header.as_ptr()];
    let header_names = [header_name.as_ptr()];

    let mut raw = std::ptr::null_mut();
    check(
        unsafe {
            sys::nvrtcCreateProgram(
                &mut raw,
                source.as_ptr(),
                name.as_ptr(),
                1,
                headers.as_ptr(),
                header_names.as_ptr(),
            )
        },
        "nvrtcCreateProgram",
    )?;
    let program = Program(raw);

    let mut options: Vec<String> = vec![
        format!("--gpu-architecture={arch}"),
        "-std=c++17".to_string(),
        "--ptxas-options=-v".to_string(),
    ];
    options.extend(extra_options.iter().map(|s| s.to_string()));
    let options: Vec<CString> = options
        .into_iter()
        .map(|o| CString::new(o).map_err(|_| invalid("an option")))
        .collect::<Result<_, _>>()?;
    let option_ptrs: Vec<*const c_char> = options.iter().map(|o| o.as_ptr()).collect();
    let compiled = unsafe {
        sys::nvrtcCompileProgram(program.0, option_ptrs.len() as c_int, option_ptrs.as_ptr())
    };

    let mut log_size = 0usize;
    check(
        unsafe { sys::nvrtcGetProgramLogSize(program.0, &mut log_size) },
        "nvrtcGetProgramLogSize",
    )?;
    let mut log_buf = vec![0 as c_char; log_size.max(1)];
    check(
        unsafe { sys::nvrtcGetProgramLog(program.0, log_buf.as_mut_ptr()) },
        "nvrtcGetProgramLog",
    )?;
    let log = unsafe { CStr::from_ptr(log_buf.as_ptr()) }
        .to_string_lossy()
        .into_owned();

    if compiled != sys::nvrtcResult::NVRTC_SUCCESS {
        return Err(GpuError::Compile {
            file: src.file.to_string(),
            log: format!("{compiled:?}\n{log}"),
        });
    }
    let mut size = 0usize;
    check(
        unsafe { sys::nvrtcGetCUBINSize(program.0, &mut size) },
        "nvrtcGetCUBINSize",
    )?;
    let mut cubin = vec![0u8; size];
    check(
        unsafe { sys::nvrtcGetCUBIN(program.0, cubin.as_mut_ptr().cast()) },
        "nvrtcGetCUBIN",
    )?;
    Ok(Compiled { cubin, log })
}

/// Resource use of one kernel as reported by ptxas (`--ptxas-options=-v`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KernelResources {
    pub name: String,
    pub registers: u32,
    pub stack_frame_bytes: u64,
    pub spill_store_bytes: u64,
    pub spill_load_bytes: u64,
    pub shared_bytes: u64,
}

fn number_before(text: &str, unit: &str) -> Option<u64> {
    let idx = text.find(unit)?;
    text[..idx].split_whitespace().last()?.parse().ok()
}

/// Prints ptxas's resource report (registers, shared memory, stack, spills) per kernel to stderr.
pub fn print_resources(log: &str) {
    for k in parse_ptxas_log(log) {
        eprintln!(
            "  {}: {} registers, {} B smem, {} B stack, spills {} B stores / {} B loads",
            k.name,
            k.registers,
            k.shared_bytes,
            k.stack_frame_bytes,
            k.spill_store_bytes,
            k.spill_load_bytes
        );
    }
}

/// Parses ptxas's verbose report: one entry per "Compiling entry function 'NAME'" block, with
/// its "N bytes stack frame, N bytes spill stores, N bytes spill loads" and
/// "Used N registers, ..., N bytes smem" lines.
pub fn parse_ptxas_log(log: &str) -> Vec<KernelResources> {
    let mut kernels: Vec<KernelResources> = Vec::new();
    for line in log.lines() {
        if let Some(rest) = line.split("Compiling entry function '").nth(1) {
            let name = rest.split('\'').next().unwrap_or_default();
            kernels.push(KernelResources {
                name: name.to_string(),
                ..Default::default()
            });
            continue;
        }
        let Some(current) = kernels.last_mut() else {
            continue;
        };
        if line.contains("bytes stack frame") {
            current.stack_frame_bytes = number_before(line, "bytes stack frame").unwrap_or(0);
            current.spill_store_bytes = number_before(line, "bytes spill stores").unwrap_or(0);
            current.spill_load_bytes = number_before(line, "bytes spill loads").unwrap_or(0);
        } else if line.contains("Used ") && line.contains("registers") {
            current.registers = number_before(line, "registers").unwrap_or(0) as u32;
            current.shared_bytes = number_before(line, "bytes smem").unwrap_or(0);
        }
    }
    kernels
}

#[cfg(test)]
mod tests {
    use super::*;

    const LOG: &str = "ptxas info    : 0 bytes gmem
ptxas info    : Compiling entry function 'attention_fused' for 'sm_90a'
ptxas info    : Function properties for attention_fused
ptxas         .     8 bytes stack frame, 8 bytes spill stores, 4 bytes spill loads
ptxas info    : Used 128 registers, used 1 barriers, 8 bytes cumulative stack size, 40960 bytes smem
ptxas info    : Compiling entry function 'copy_u4' for 'sm_90a'
ptxas info    : Function properties for copy_u4
ptxas         .     0 bytes stack frame, 0 bytes spill stores, 0 bytes spill loads
ptxas info    : Used 14 registers, used 0 barriers
";

    #[test]
    fn parses_registers_spills_and_smem() {
        let k = parse_ptxas_log(LOG);
        assert_eq!(k.len(), 2);
        assert_eq!(k[0].name, "attention_fused");
        assert_eq!(k[0].registers, 128);
        assert_eq!(k[0].spill_store_bytes, 8);
        assert_eq!(k[0].spill_load_bytes, 4);
        assert_eq!(k[0].shared_bytes, 40960);
        assert_eq!(k[1].name, "copy_u4");
        assert_eq!(k[1].registers, 14);
        assert_eq!(k[1].spill_store_bytes + k[1].spill_load_bytes, 0);
        assert_eq!(k[1].shared_bytes, 0);
    }

    #[test]
    fn sm90a_only_for_hopper() {
        assert_eq!(arch_for(9, 0), "sm_90a");
        assert_eq!(arch_for(8, 0), "sm_80");
        assert_eq!(arch_for(10, 0), "sm_100");
    }

    #[test]
    fn every_kernel_file_is_embedded() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
        let mut on_disk: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .filter(|n| n.ends_with(".cu"))
            .collect();
        on_disk.sort();
        let mut embedded: Vec<String> = SOURCES.iter().map(|s| s.file.to_string()).collect();
        embedded.sort();
        assert_eq!(on_disk, embedded);
    }
}
