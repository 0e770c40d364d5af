#!/usr/bin/env bash
# One measuring session on a lent GPU machine (H100 / H200; CUDA 13 driver, PyTorch in python3,
# no network, no Rust). Needs a prebuilt target/release/roofline in the repository.
#
#   scripts/gpu-session.sh            # writes under $OUT (default ./gpu-out)
#
# Steps, each bounded by a timeout and allowed to fail without stopping the others:
#   1. nvidia-smi (card, driver, clocks as found: nothing is changed);
#   2. find libnvrtc, libcublas and libcublasLt (CUDA toolkit, then PyTorch's nvidia wheels) and
#      export LD_LIBRARY_PATH;
#   3. roofline bench --suite memory,gemm,attention,norm,cublas --shapes ... -> $OUT/bench.json and
#      the cuBLAS GEMMs as a [gemm_table] section -> $OUT/gemm-table.toml;
#   4. a PyTorch cross-check of the same ceilings -> $OUT/torch-baseline.json.
# Logs: $OUT/session.log (everything), $OUT/bench.stdout, $OUT/bench.stderr, $OUT/torch.log.
# Timeouts (seconds) can be changed with BENCH_TIMEOUT and TORCH_TIMEOUT; BENCH_SUITES picks the
# bench suites (default: all); BENCH_SHAPES (space-separated MODEL[:BATCH]) the models whose GEMM
# shapes are measured (default: jit-b4 at batch 64).
set -u
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
OUT="${OUT:-$root/gpu-out}"
mkdir -p "$OUT"
BENCH_TIMEOUT="${BENCH_TIMEOUT:-150}"
TORCH_TIMEOUT="${TORCH_TIMEOUT:-60}"
exec > >(tee -a "$OUT/session.log") 2>&1

echo "== $(date -u +%Y-%m-%dT%H:%M:%SZ) gpu-session on $(hostname)"
echo "== nvidia-smi"
timeout 20 nvidia-smi || echo "nvidia-smi failed (rc $?)"
timeout 20 nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.draw,power.limit,temperature.gpu --format=csv || true

echo "== locating CUDA libraries"
lib_dirs=()
add_dir() { [ -d "$1" ] && lib_dirs+=("$1"); }
add_dir /usr/local/nvidia/lib64
add_dir /usr/local/cuda/lib64
add_dir /usr/local/cuda/targets/x86_64-linux/lib
python="$(command -v python3 || true)"
if [ -n "$python" ]; then
    nvidia_root="$(timeout 30 "$python" -c 'import nvidia, os; print(os.path.dirname(list(nvidia.__path__)[0]))' 2>/dev/null || true)"
    if [ -n "$nvidia_root" ]; then
        for d in "$nvidia_root"/nvidia/*/lib "$nvidia_root"/nvidia/cu13/lib; do add_dir "$d"; done
    fi
fi
find_lib() { # first directory holding $1.so*
    local d
    for d in "${lib_dirs[@]}"; do
        if compgen -G "$d/$1.so*" >/dev/null; then echo "$d"; return 0; fi
    done
    timeout 20 find / -xdev \( -path /proc -o -path /sys \) -prune -o -name "$1.so*" -print 2>/dev/null | head -n 1 | xargs -r dirname
}
ld_path=""
for lib in libnvrtc libcublas libcublasLt; do
    dir="$(find_lib "$lib")"
    if [ -n "$dir" ]; then
        echo "$lib: $dir ($(cd "$dir" && ls $lib.so* | tr '\n' ' '))"
        case ":$ld_path:" in *":$dir:"*) ;; *) ld_path="${ld_path:+$ld_path:}$dir" ;; esac
    else
        echo "$lib: NOT FOUND"
    fi
done
export LD_LIBRARY_PATH="${ld_path}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
echo "LD_LIBRARY_PATH=$LD_LIBRARY_PATH"

echo "== roofline bench (timeout ${BENCH_TIMEOUT}s)"
shape_args=()
for s in ${BENCH_SHAPES:-jit-b4:64}; do shape_args+=(--shapes "$s"); done
bench_rc=0
if [ -x target/release/roofline ]; then
    RUST_BACKTRACE=1 timeout -k 10 "$BENCH_TIMEOUT" target/release/roofline bench \
        --suite "${BENCH_SUITES:-memory,gemm,attention,norm,cublas}" ${shape_args[@]+"${shape_args[@]}"} \
        ${GPU_SPEC:+--gpu "$GPU_SPEC" --gemm-table "$OUT/gemm-table.toml"} --out "$OUT/bench.json" \
        >"$OUT/bench.stdout" 2>"$OUT/bench.stderr" || bench_rc=$?
    echo "roofline bench exit code: $bench_rc (124 = timed out; $OUT/bench.json holds the suites finished)"
    echo "-- stderr (last 80 lines)"
    tail -n 80 "$OUT/bench.stderr"
else
    echo "target/release/roofline is missing: build it with cargo build --release and carry it"
    bench_rc=127
fi

echo "== PyTorch cross-check (timeout ${TORCH_TIMEOUT}s)"
torch_rc=0
if [ -n "$python" ]; then
    timeout -k 5 "$TORCH_TIMEOUT" "$python" scripts/torch_baseline.py "$OUT/torch-baseline.json" >"$OUT/torch.log" 2>&1 || torch_rc=$?
    echo "torch cross-check exit code: $torch_rc"
    tail -n 20 "$OUT/torch.log"
else
    echo "no python3: PyTorch cross-check skipped"
fi

echo "== roofline bench table"
if [ -s "$OUT/bench.stdout" ]; then tail -n 60 "$OUT/bench.stdout"; else echo "(no table: see $OUT/bench.stderr)"; fi
echo "== done: bench rc $bench_rc, torch rc $torch_rc; outputs in $OUT"
exit 0
