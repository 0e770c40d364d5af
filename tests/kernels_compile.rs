//! Compiles every kernels/*.cu with NVRTC for sm_90a (Hopper) to a CUBIN, without a GPU, and
//! checks that each kernel compiles and that ptxas reports no register spills.
//!
//! libnvrtc is taken from $ROOFLINE_NVRTC_LIB (a path to libnvrtc.so*), else from .cache/cuda/
//! under the repository root (scripts/install-nvrtc.sh puts the PyPI wheel there), else from the
//! system's library path. The test is ignored by a plain `cargo test` (the summary shows it as
//! ignored, with the reason) because it needs that library; `.ci/run` installs NVRTC and runs
//! it with `-- --ignored`, where a missing or unloadable libnvrtc fails it.

use std::ffi::{c_char, c_int, c_void, CString};
use std::path::{Path, PathBuf};

use roofline::gpu::nvrtc::{self, KernelSource};

const ARCH: &str = "sm_90a";

extern "C" {
    fn dlopen(filename: *const c_char, flags: c_int) -> *mut c_void;
}
const RTLD_NOW: c_int = 2;
const RTLD_GLOBAL: c_int = 0x100;

fn find_files(dir: &Path, prefix: &str, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            find_files(&path, prefix, found);
        } else if path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with(prefix) && !n.contains(".alt."))
        {
            found.push(path);
        }
    }
}

/// Loads libnvrtc (and its builtins library, which it opens by name) from an explicit path, so
/// that cudarc's later dlopen by soname finds the already-loaded copy.
fn preload(lib: &Path) -> bool {
    let mut builtins = Vec::new();
    if let Some(dir) = lib.parent() {
        find_files(dir, "libnvrtc-builtins.so", &mut builtins);
    }
    for path in builtins.iter().chain(std::iter::once(&lib.to_path_buf())) {
        let Ok(c) = CString::new(path.to_string_lossy().as_bytes()) else {
            return false;
        };
        if unsafe { dlopen(c.as_ptr(), RTLD_NOW | RTLD_GLOBAL) }.is_null() {
            eprintln!("could not dlopen {}", path.display());
            return false;
        }
    }
    true
}

fn locate_nvrtc() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("ROOFLINE_NVRTC_LIB") {
        return Some(PathBuf::from(p));
    }
    let mut found = Vec::new();
    find_files(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join(".cache/cuda"),
        "libnvrtc.so",
        &mut found,
    );
    found.sort();
    found.into_iter().next()
}

#[test]
#[ignore = "needs libnvrtc: scripts/install-nvrtc.sh, then cargo test --test kernels_compile -- --ignored (.ci/run does)"]
fn every_kernel_compiles_for_sm90a_without_spills() {
    match locate_nvrtc() {
        Some(lib) if preload(&lib) => eprintln!("NVRTC: {}", lib.display()),
        Some(lib) => panic!("NVRTC compile test: could not load {}", lib.display()),
        None if nvrtc::nvrtc_present() => eprintln!("NVRTC: from the system library path"),
        None => panic!(
            "NVRTC compile test: no libnvrtc (set ROOFLINE_NVRTC_LIB or run scripts/install-nvrtc.sh)"
        ),
    }
    assert!(
        nvrtc::nvrtc_present(),
        "NVRTC compile test: libnvrtc was found but cudarc cannot load it"
    );
    let (major, minor) = nvrtc::version().expect("nvrtcVersion");
    eprintln!("NVRTC {major}.{minor}, target {ARCH}");

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("kernels");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("kernels/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "cu"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no kernels/*.cu found");

    let mut failures = Vec::new();
    for path in &files {
        let file: &'static str = Box::leak(
            path.file_name()
                .unwrap()
                .to_string_lossy()
                .into_owned()
                .into_boxed_str(),
        );
        let source: &'static str =
            Box::leak(std::fs::read_to_string(path).unwrap().into_boxed_str());
        let options: &[&str] = if file == nvrtc::ATTENTION.file {
            &["--use_fast_math"]
        } else {
            &[]
        };
        match nvrtc::compile(&KernelSource { file, source }, ARCH, options) {
            Err(e) => failures.push(format!("{file}: {e}")),
            Ok(compiled) => {
                assert!(!compiled.cubin.is_empty(), "{file}: empty CUBIN");
                let kernels = nvrtc::parse_ptxas_log(&compiled.log);
                if kernels.is_empty() {
                    failures.push(format!(
                        "{file}: no kernels in the ptxas report:\n{}",
                        compiled.log
                    ));
                }
                for k in kernels {
                    eprintln!(
                        "  {file:<14} {:<20} {:>3} registers {:>6} B smem {:>3} B stack, spills {} B stores / {} B loads",
                        k.name, k.registers, k.shared_bytes, k.stack_frame_bytes, k.spill_store_bytes, k.spill_load_bytes
                    );
                    if k.spill_store_bytes + k.spill_load_bytes > 0 {
                        failures.push(format!("{file}: {} spills registers", k.name));
                    }
                }
                if compiled.log.contains("warning") {
                    failures.push(format!("{file}: compiler warnings:\n{}", compiled.log));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
