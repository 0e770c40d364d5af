#!/usr/bin/env bash
# Installs NVRTC (the CUDA run-time compiler) from PyPI into .cache/cuda under the repository root,
# so that tests/kernels_compile.rs can compile kernels/*.cu without a GPU or a CUDA toolkit.
# Idempotent and quiet; never fails the caller: on any error it prints a warning and exits 0.
set -u
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
target="$root/.cache/cuda"
version="13.0.*"

if find "$target" -name 'libnvrtc.so*' -print -quit 2>/dev/null | grep -q .; then
    exit 0
fi
python="$(command -v python3 || command -v python || true)"
if [ -z "$python" ]; then
    echo "warning: install-nvrtc.sh: no python3 found; the NVRTC compile test will be skipped" >&2
    exit 0
fi
mkdir -p "$target"
if ! "$python" -m pip install --quiet --disable-pip-version-check --no-deps \
    --target "$target" "nvidia-cuda-nvrtc==$version" >"$target/pip.log" 2>&1; then
    echo "warning: install-nvrtc.sh: pip could not install nvidia-cuda-nvrtc==$version (see $target/pip.log); the NVRTC compile test will be skipped" >&2
    exit 0
fi
if ! find "$target" -name 'libnvrtc.so*' -print -quit | grep -q .; then
    echo "warning: install-nvrtc.sh: nvidia-cuda-nvrtc installed but no libnvrtc.so* found under $target" >&2
fi
exit 0
