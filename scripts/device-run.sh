#!/usr/bin/env bash
# The one prepared script for a lent GPU machine (H100 / H200): microbenchmarks, PyTorch
# cross-check and training-step validation, each bounded by a timeout and allowed to fail
# without stopping the others. Needs a prebuilt target/release/roofline (carried) and python3
# with PyTorch. At most 8 files come back from $OUT: the key results, plus all logs in a tarball.
#
#   OUT=/some/dir scripts/device-run.sh
#   OUT=/some/dir BENCH_SUITES=gemm,cublas VALIDATION_ARGS="--config gpt2-124m:8:flash2:compiled" scripts/device-run.sh
set -u
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
final="${OUT:-$root/gpu-out}"
mkdir -p "$final"
work="$(mktemp -d /tmp/roofline-gpu.XXXXXX)"
name="$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)"
case "$name" in
    *H200*) GPU_SPEC=h200-sxm ;;
    *H100*PCIe*) GPU_SPEC=h100-pcie ;;
    *H100*) GPU_SPEC=h100-sxm ;;
    *) GPU_SPEC="" ;;
esac
export GPU_SPEC
echo "device: $name -> spec ${GPU_SPEC:-unknown}"
{
    echo "date: $(date -u +%Y-%m-%dT%H:%M:%SZ)"
    echo "device: $name"
    nvidia-smi --query-gpu=name,driver_version,memory.total,clocks.sm,clocks.max.sm,clocks.mem,power.limit --format=csv
    python3 -c 'import torch, sys; print("python", sys.version.split()[0], "torch", torch.__version__, "cuda", torch.version.cuda, "cudnn", torch.backends.cudnn.version())' 2>&1
    command -v nvcc >/dev/null && nvcc --version | tail -n 2
    uname -r
} >"$work/provenance.txt" 2>&1
cat "$work/provenance.txt"

# The H200 session (issue 15): GEMM shapes of jit-b4 at batch 16-128 and of gpt2-124m, and the
# planned workload measured first. Elsewhere the H100 profile's plan.
if [ "${GPU_SPEC:-}" = h200-sxm ]; then
    export BENCH_SHAPES="${BENCH_SHAPES:-jit-b4:16 jit-b4:32 jit-b4:64 jit-b4:128 gpt2-124m:8 gpt2-124m:16}"
    MEASURE_PLAN="${MEASURE_PLAN:-planned}"
fi
# Results are copied to $OUT after every stage, so a run stopped at the device call's limit still
# returns what finished. At most 8 files come back: the results, the session log and the tarball
# (which holds every log and every other file).
collect() {
    (cd "$work" && tar czf "$final/all-logs.tar.gz.tmp" . && mv "$final/all-logs.tar.gz.tmp" "$final/all-logs.tar.gz")
    for f in provenance.txt bench.json gemm-table.toml torch-baseline.json measurements.json cupti-check.json session.log; do
        [ -f "$work/$f" ] && cp "$work/$f" "$final/"
    done
}
collect

# Worst case with the default timeouts: bench 160 s, PyTorch cross-check 65 s, measure.py 240 s,
# CUPTI checks 2 x 45 s: 555 s, inside a 600 s device call.
OUT="$work" BENCH_TIMEOUT="${BENCH_TIMEOUT:-150}" TORCH_TIMEOUT="${TORCH_TIMEOUT:-60}" bash scripts/gpu-session.sh
collect

echo "== validation/measure.py (budget ${VALIDATION_BUDGET:-190} s, plan ${MEASURE_PLAN:-default})"
# VALIDATION_ARGS (word-split) replaces the default plan, e.g. "--config gpt2-124m:8:flash2:compiled".
# shellcheck disable=SC2086
PYTHONUNBUFFERED=1 timeout -k 10 "${VALIDATION_TIMEOUT:-230}" python3 validation/measure.py \
    --budget-s "${VALIDATION_BUDGET:-190}" --plan "${MEASURE_PLAN:-default}" ${VALIDATION_ARGS:-} --out "$work/measurements.json" >"$work/validation.log" 2>&1
echo "measure.py exit code: $?"
tail -n 40 "$work/validation.log"
collect

# The profiler's leftover cost on the host (pytorch/pytorch#144455): jit-b4 batch 8 eager, the
# H100 profile's host-bound case, timed before and right after one profile, each check in a
# process of its own: with CUPTI left attached (TEARDOWN_CUPTI=0; flash2, then naive) and with
# teardown (flash2). CUPTI_CHECK_TIMEOUT=0 skips them.
cupti_check() {  # name, TEARDOWN_CUPTI value, configurations...
    local name="$1" teardown="$2"
    shift 2
    echo "== CUPTI check $name (TEARDOWN_CUPTI=$teardown, timeout ${CUPTI_CHECK_TIMEOUT:-40} s)"
    # shellcheck disable=SC2046
    TEARDOWN_CUPTI="$teardown" PYTHONUNBUFFERED=1 timeout -k 5 "${CUPTI_CHECK_TIMEOUT:-40}" python3 validation/measure.py \
        $(printf -- '--config %s ' "$@") --profile-steps 1 --retime-after-profile \
        --no-repeat-host-bound --budget-s 25 --out "$work/$name.json" >"$work/$name.log" 2>&1
    echo "exit code: $?"
    tail -n 8 "$work/$name.log"
}
if [ "${CUPTI_CHECK_TIMEOUT:-40}" -gt 0 ]; then
    cupti_check cupti-check 0 jit-b4:8:flash2:eager jit-b4:8:naive:eager
    collect
    cupti_check cupti-check-teardown 1 jit-b4:8:flash2:eager
fi
collect
ls -la "$final"
