#!/usr/bin/env python3
"""Measure training step time, per-class GPU kernel time and peak memory on one CUDA GPU.

The measuring side of roofline's validation: for each configuration (model, batch, attention
implementation, eager or compiled) it times complete training steps (bf16 autocast forward,
backward, AdamW step with fp32 master weights, optional EMA update), then profiles a few steps
with torch.profiler to split GPU time into op classes, and records the peak memory. Results are
written after every configuration, so a run cut short still leaves valid JSON.

    python3 validation/measure.py --out measurements.json              # default plan, ~4 min on H100
    python3 validation/measure.py --config jit-b4:64:flash2:eager --out one.json
    python3 validation/measure.py --count --out tests/reference/fixtures   # CPU only: reference counts

See validation/README.md for the JSON schema and the kernel classification rules.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import gc
import json
import os
import shlex
import statistics
import subprocess
import sys
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from profile_summary import (CLASSES, KERNEL_RULES, attention_kernel_family,  # noqa: E402,F401
                             classify_kernel, profiled_kernels, summarize_device_ops,
                             summarize_host_ops, summarize_kernels)

SCHEMA = "roofline-validation/1"

# Default plan: every batch eager; one batch per model compiled (compiling costs ~0.5-1 min each).
# llama3-8b and mixtral-8x7b are not in it: fp32 weights, gradients and AdamW state (16 bytes per
# parameter: 128 GB and 747 GB) leave no room for a step on one GPU. Named with --models they run
# at batch 1 unless --batches says otherwise (the count mode is what they are there for).
DEFAULT_EAGER = {"jit-b4": (8, 16, 32, 64, 128), "gpt2-124m": (4, 8, 16)}
DEFAULT_COMPILED = {"jit-b4": (64,), "gpt2-124m": (8,)}
DEFAULT_ATTENTION = ("naive", "flash2")

# The planned-workload plan (``--plan planned``): the run the project plans for first, JiT-B/4
# at batch 64 per GPU with the public code's naive attention, compiled as the public code runs
# it, then eager; then flash2 at the same batch; then the other jit-b4 batches and gpt2-124m,
# each compiled then eager. A time budget that ends the session early still has the planned
# configurations measured.
PLANNED = (
    [("jit-b4", 64, "naive", "compiled"), ("jit-b4", 64, "naive", "eager"),
     ("jit-b4", 64, "flash2", "compiled"), ("jit-b4", 64, "flash2", "eager")]
    + [("jit-b4", b, a, m) for b in (16, 32, 128) for a in ("naive", "flash2")
       for m in ("compiled", "eager")]
    + [("gpt2-124m", b, a, m) for b in (8, 16) for a in ("flash2", "naive")
       for m in ("compiled", "eager")]
)


def log(msg: str) -> None:
    print(f"[measure {time.strftime('%H:%M:%S')}] {msg}", flush=True)


# ---------------------------------------------------------------------------------------------
# Configuration plan
# ---------------------------------------------------------------------------------------------

def parse_config(spec: str) -> dict:
    """'jit-b4:64:flash2:eager' -> config dict."""
    parts = spec.split(":")
    if len(parts) != 4:
        raise ValueError(f"config {spec!r}: expected MODEL:BATCH:ATTENTION:MODE")
    model, batch, attention, mode = parts
    from models import ATTENTION_CHOICES, MODEL_CHOICES
    if model not in MODEL_CHOICES:
        raise ValueError(f"config {spec!r}: model must be one of {MODEL_CHOICES}")
    if attention not in ATTENTION_CHOICES:
        raise ValueError(f"config {spec!r}: attention must be one of {ATTENTION_CHOICES}")
    if mode not in ("eager", "compiled"):
        raise ValueError(f"config {spec!r}: mode must be eager or compiled")
    return {"model": model, "batch": int(batch), "attention": attention, "mode": mode}


def plan_configs(args) -> list[dict]:
    """The configurations to run, in order: per model (jit-b4, the planned workload, first),
    eager batches then the compiled ones (compiling is the slow part)."""
    if args.config:
        return [parse_config(s) for s in args.config]
    if getattr(args, "plan", "default") == "planned":
        return [{"model": m, "batch": b, "attention": a, "mode": mode} for m, b, a, mode in PLANNED]
    models = args.models or list(DEFAULT_EAGER)
    attentions = args.attention or list(DEFAULT_ATTENTION)
    modes = args.modes or ["eager", "compiled"]
    plan = []
    for model in models:
        for mode in ("eager", "compiled"):
            if mode not in modes:
                continue
            table = DEFAULT_EAGER if mode == "eager" else DEFAULT_COMPILED
            batches = args.batches or table.get(model, (1,))
            for batch in batches:
                for attention in attentions:
                    plan.append({"model": model, "batch": batch, "attention": attention, "mode": mode})
    return plan


# ---------------------------------------------------------------------------------------------
# Output
# ---------------------------------------------------------------------------------------------

def write_json(path: str, doc: dict) -> None:
    """Write atomically (temp file + rename): a kill mid-write leaves the previous valid file."""
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(doc, f, indent=1)
        f.write("\n")
    os.replace(tmp, path)


def empty_result(cfg: dict, args) -> dict:
    return {
        "model": cfg["model"], "batch": cfg["batch"], "attention": cfg["attention"],
        "mode": cfg["mode"], "precision": "bf16", "ema": args.ema > 0, "ema_copies": args.ema,
        "tf32": args.tf32,
        "step_time_s": None, "step_time_p10_s": None, "step_time_p90_s": None, "steps": 0,
        "class_times_s": None, "kernels_per_step": None, "peak_memory_bytes": None,
        "error": None,
    }


def device_info() -> dict:
    import torch

    props = torch.cuda.get_device_properties(0)
    driver = None
    try:
        driver = subprocess.run(["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                                capture_output=True, text=True, timeout=20).stdout.strip().splitlines()[0]
    except Exception:
        pass
    return {
        "name": props.name,
        "sm_count": props.multi_processor_count,
        "total_memory_bytes": props.total_memory,
        "l2_cache_bytes": getattr(props, "L2_cache_size", None),
        "compute_capability": f"{props.major}.{props.minor}",
        "driver": driver,
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cudnn": torch.backends.cudnn.version(),
        "triton": _triton_version(),
    }


def _triton_version():
    try:
        import triton
        return triton.__version__
    except Exception:
        return None


# ---------------------------------------------------------------------------------------------
# Running one configuration
# ---------------------------------------------------------------------------------------------

def make_optimizer(params):
    """AdamW betas (0.9, 0.95), fused when this PyTorch supports it; returns (opt, description)."""
    import torch

    kw = dict(lr=1e-4, betas=(0.9, 0.95), weight_decay=0.0)
    try:
        return torch.optim.AdamW(params, fused=True, **kw), "AdamW(fused=True)"
    except (TypeError, RuntimeError, ValueError) as exc:
        return torch.optim.AdamW(params, foreach=True, **kw), f"AdamW(foreach=True); fused failed: {exc}"


# Whether a profiler session with CUDA activity has run in this process: Kineto leaves CUPTI
# attached after one unless TEARDOWN_CUPTI=1, and the attached CUPTI keeps slowing the host's
# CUDA calls (every kernel launch) afterwards (pytorch/pytorch#144455, PR #146604: "the profiler
# slowed down training by roughly 10-20% even after completion"). main() sets TEARDOWN_CUPTI=1
# unless the environment says otherwise; each result records whether it was timed after one.
_PROCESS = {"profiled": False}


def run_config(cfg: dict, args, result: dict, device: str = "cuda", model_kwargs=None) -> None:
    """Build, time, profile one configuration; fills ``result`` in place (raises on failure).

    ``device`` and ``model_kwargs`` exist for the CPU unit test (tiny model, wall-clock timing);
    measurements use the defaults.
    """
    import torch
    from models import attention_backends, build_model, count_parameters

    dev = torch.device(device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    torch.manual_seed(0)
    model = build_model(cfg["model"], cfg["attention"], **(model_kwargs or {})).to(dev)
    result["parameters"] = count_parameters(model)["trainable"]
    params = [p for p in model.parameters() if p.requires_grad]
    opt, opt_desc = make_optimizer(params)
    result["optimizer"] = opt_desc
    ema = [[p.detach().clone() for p in params] for _ in range(args.ema)]
    gen = torch.Generator(device=dev).manual_seed(1)
    batch = model.make_batch(cfg["batch"], dev, generator=gen)

    if cfg["mode"] == "compiled":
        for blk in model.blocks:  # as the public JiT code: each block compiled, not the model
            blk.compile()

    def step():
        with torch.autocast(dev.type, dtype=torch.bfloat16):
            loss = model.training_loss(batch)
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        for copy in ema:
            torch._foreach_lerp_(copy, params, 1.0 - args.ema_decay)
        return loss

    t0 = time.perf_counter()
    for i in range(args.warmup):
        loss = step()
        if i == 0:
            sync()
            result["first_step_s"] = time.perf_counter() - t0  # includes compile in compiled mode
    sync()
    result["warmup_s"] = time.perf_counter() - t0
    if not torch.isfinite(loss).item():
        raise RuntimeError(f"non-finite loss after warm-up: {loss.item()}")
    result["attention_ran"] = attention_backends(model)  # empty when compiled (not recorded there)

    # Timed steps: one pair of CUDA events per step, no host synchronisation between steps
    # (on CPU, only for the unit test: wall clock per step).
    alloc_before = allocator_counts() if cuda else {}
    result["timed_after_profiler"] = _PROCESS["profiled"]
    t0 = time.perf_counter()
    times = timed_steps(step, args.steps, cuda)
    wall = time.perf_counter() - t0
    alloc_after = allocator_counts() if cuda else {}
    q = statistics.quantiles(times, n=10, method="inclusive") if len(times) > 1 else [times[0]] * 9
    result.update({
        "step_time_s": statistics.median(times), "step_time_p10_s": q[0], "step_time_p90_s": q[-1],
        "step_time_min_s": times[0], "step_time_max_s": times[-1], "steps": len(times),
        "wall_time_per_step_s": wall / len(times),
        "peak_memory_bytes": torch.cuda.max_memory_allocated() if cuda else None,
        "steady_memory_bytes": torch.cuda.memory_allocated() if cuda else None,
    })
    log(f"  step {result['step_time_s'] * 1e3:.2f} ms (p10 {q[0] * 1e3:.2f}, p90 {q[-1] * 1e3:.2f}), "
        f"peak {(result['peak_memory_bytes'] or 0) / 2**30:.2f} GiB")

    # Host time: each step issued onto an idle GPU and timed until step() returns, with no
    # synchronisation inside it: the CPU's cost of dispatching and launching the step. Exact
    # when the step is host-bound (the launch queue never fills); an upper bound otherwise.
    # Its spread (min, max) tells a steady host from a disturbed one.
    if args.host_steps > 0:
        host = host_times(step, args.host_steps, sync)
        result["host_step_time_s"] = statistics.median(host)
        result["host_step_time_min_s"], result["host_step_time_max_s"] = min(host), max(host)
        log(f"  host {result['host_step_time_s'] * 1e3:.2f} ms per step (launch to return; "
            f"min {min(host) * 1e3:.2f}, max {max(host) * 1e3:.2f})")

    # What could couple the host to the GPU inside a step: synchronising calls the step makes
    # (torch.cuda's sync debug mode warns on each) and device allocations during the timed steps
    # (cudaMalloc/cudaFree, which synchronise, and the allocator's retries after a failed one).
    if cuda:
        result["sync_calls_per_step"] = count_sync_calls(step)
        result["allocator_during_timed_steps"] = {
            k: (alloc_after[k] - alloc_before[k]
                if alloc_after.get(k) is not None and alloc_before.get(k) is not None else None)
            for k in ALLOCATOR_COUNTERS}

    if args.profile_steps > 0:
        from torch.profiler import ProfilerActivity, profile

        # The CPU side too: which ops the host spends its time on (self CPU time per op name,
        # profiler overhead included), the host half of a host-bound step.
        with profile(activities=[ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else []),
                     record_shapes=True) as prof:
            for _ in range(args.profile_steps):
                step()
            sync()
        _PROCESS["profiled"] = _PROCESS["profiled"] or cuda
        kernels = profiled_kernels(prof)
        if not kernels:
            result["profile_error"] = "the profiler recorded no GPU activity"
        summary = summarize_kernels(kernels, args.profile_steps)
        summary["profiled_steps"] = args.profile_steps
        summary.update(summarize_host_ops(prof, args.profile_steps))
        summary.update(summarize_device_ops(prof, args.profile_steps))
        result.update(summary)
        ct = summary["class_times_s"]
        log("  classes (ms/step): " + ", ".join(f"{c} {ct[c] * 1e3:.2f}" for c in CLASSES)
            + f"; {summary['kernels_per_step']:.0f} kernels/step; attention kernels "
            f"{summary['attention_kernel_family'] or 'none fused'}")
        if args.retime_after_profile:
            retime_after_profile(step, args, result, cuda, sync)
    if cfg["mode"] == "compiled":
        try:
            from torch._dynamo.utils import counters
            result["compile_unique_graphs"] = int(counters["stats"]["unique_graphs"])
            result["compile_graph_breaks"] = int(sum(counters["graph_break"].values()))
        except Exception:
            pass


def retime_after_profile(step, args, result: dict, cuda: bool, sync) -> None:
    """The same steps timed again right after the profile (``after_profile``): with
    TEARDOWN_CUPTI=0 the difference is what a CUPTI left attached costs. A few untimed steps
    first (they pay a teardown's cuptiFinalize when it is on). A failure is recorded there and
    keeps the configuration's first measurement."""
    after = {"cupti_teardown": os.environ.get("TEARDOWN_CUPTI") == "1"}
    result["after_profile"] = after
    try:
        for _ in range(3):
            step()
        sync()
        again = timed_steps(step, args.steps, cuda)
        after.update({"step_time_s": statistics.median(again), "step_time_min_s": again[0]})
        if args.host_steps > 0:
            host = host_times(step, args.host_steps, sync)
            after.update({"host_step_time_s": statistics.median(host),
                          "host_step_time_min_s": min(host)})
        log(f"  after the profile: step {after['step_time_s'] * 1e3:.2f} ms"
            + (f", host {after['host_step_time_s'] * 1e3:.2f} ms" if args.host_steps > 0 else ""))
    except Exception as exc:  # diagnostics: the configuration's first measurement stands
        after["error"] = f"{type(exc).__name__}: {exc}"[:2000]
        log(f"  after the profile: FAILED: {after['error'][:300]}")


def timed_steps(step, n: int, cuda: bool) -> list[float]:
    """``n`` steps, each between a pair of CUDA events with no host synchronisation between
    steps (on CPU, only for the unit test: wall clock per step); sorted durations in seconds."""
    import torch

    if cuda:
        starts = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        ends = [torch.cuda.Event(enable_timing=True) for _ in range(n)]
        for i in range(n):
            starts[i].record()
            step()
            ends[i].record()
        torch.cuda.synchronize()
        return sorted(s.elapsed_time(e) * 1e-3 for s, e in zip(starts, ends))
    times = []
    for _ in range(n):
        t1 = time.perf_counter()
        step()
        times.append(time.perf_counter() - t1)
    return sorted(times)


def host_times(step, n: int, sync) -> list[float]:
    """``n`` steps, each issued onto an idle device and timed until ``step()`` returns."""
    host = []
    for _ in range(n):
        sync()
        t1 = time.perf_counter()
        step()
        host.append(time.perf_counter() - t1)
    sync()
    return host


# Caching-allocator counters (torch.cuda.memory_stats) whose change over the timed steps shows
# device allocations inside steady-state steps: cudaFree synchronises the device and cudaMalloc
# can stall the host.
ALLOCATOR_COUNTERS = ("num_device_alloc", "num_device_free", "num_alloc_retries",
                      "num_sync_all_streams")


def allocator_counts() -> dict:
    import torch

    stats = torch.cuda.memory_stats()
    return {k: int(stats[k]) if k in stats else None for k in ALLOCATOR_COUNTERS}


def count_sync_calls(step) -> int | None:
    """Synchronising CUDA calls made by one step (``torch.cuda.set_sync_debug_mode("warn")``
    warns on each); None when this PyTorch has no sync debug mode."""
    import warnings

    import torch

    if not hasattr(torch.cuda, "set_sync_debug_mode"):
        return None
    previous = torch.cuda.get_sync_debug_mode() if hasattr(torch.cuda, "get_sync_debug_mode") else 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            step()
        finally:
            torch.cuda.set_sync_debug_mode(previous)
    torch.cuda.synchronize()
    # c10's warning on each: "called a synchronizing CUDA operation".
    return sum(1 for w in caught if "synchronizing cuda operation" in str(w.message).lower())


def cleanup() -> None:
    import torch

    gc.collect()
    torch.cuda.empty_cache()
    try:
        torch._dynamo.reset()
    except Exception:
        pass
    torch.cuda.reset_peak_memory_stats()


# ---------------------------------------------------------------------------------------------

# A measured step counts as host-bound when the profiled kernels kept the GPU busy for less than
# this share of it (roofline calibrate's threshold, calibrate::HOST_BOUND_GPU_SHARE).
HOST_BOUND_GPU_SHARE = 0.75

# What a repeat keeps of its run.
REPEAT_FIELDS = ("step_time_s", "step_time_p10_s", "step_time_p90_s", "step_time_min_s",
                 "host_step_time_s", "host_step_time_min_s", "host_step_time_max_s",
                 "gpu_kernel_time_s", "kernels_per_step", "sync_calls_per_step",
                 "allocator_during_timed_steps", "host_ops_per_step", "timed_after_profiler",
                 "config_wall_s", "error")


def host_bound(result: dict) -> bool:
    step, busy = result.get("step_time_s"), result.get("gpu_kernel_time_s")
    return bool(result.get("error") is None and step and busy  # busy 0: no profile to judge by
                and busy < HOST_BOUND_GPU_SHARE * step)


def repeat_host_bound(doc: dict, plan: list[dict], args, started: float) -> None:
    """Measure each host-bound configuration a second time, later in the same process, within
    the budget: a host disturbed at one moment (a VM's CPU, the process's first seconds) gives
    different numbers twice, a steady one the same. The repeat is kept under the configuration's
    ``repeat`` key; validation compares the first measurement."""
    if not args.repeat_host_bound:
        return
    for i, (cfg, result) in enumerate(zip(plan, doc["configs"])):
        if not host_bound(result):
            continue
        name = f"{cfg['model']} batch {cfg['batch']} {cfg['attention']} {cfg['mode']}"
        elapsed = time.perf_counter() - started
        # The first run's wall time is the repeat's best estimate (compiling again included:
        # cleanup() reset dynamo), with the main loop's compile reserve on top.
        need = max(10.0, result.get("config_wall_s") or 0.0)
        need += args.compile_reserve_s if cfg["mode"] == "compiled" else 0.0
        if elapsed + need > args.budget_s:
            result["repeat"] = {"error": f"skipped: time budget ({elapsed:.0f} s used of "
                                         f"--budget-s {args.budget_s:.0f})"}
            log(f"[repeat {i + 1}] {name}: {result['repeat']['error']}")
            write_json(args.out, doc)
            continue
        log(f"[repeat {i + 1}] {name} (host-bound: GPU busy "
            f"{result['gpu_kernel_time_s'] / result['step_time_s']:.0%} of the step)")
        again = empty_result(cfg, args)
        t0 = time.perf_counter()
        try:
            run_config(cfg, args, again)
        except Exception as exc:  # the repeat is diagnostics: its failure is recorded, not fatal
            again["error"] = f"{type(exc).__name__}: {exc}"[:2000]
            log(f"  FAILED: {again['error'][:300]}")
            del exc
        again["config_wall_s"] = time.perf_counter() - t0
        result["repeat"] = {k: again.get(k) for k in REPEAT_FIELDS}
        write_json(args.out, doc)
        cleanup()


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="measurements.json",
                    help="output JSON (measure mode); in --count mode a directory, or a .json file "
                         "with exactly one --models")
    ap.add_argument("--config", action="append", metavar="MODEL:BATCH:ATTENTION:MODE",
                    help="run exactly these configurations (repeatable), e.g. jit-b4:64:flash2:eager")
    ap.add_argument("--plan", choices=["default", "planned"], default="default",
                    help="default: every batch eager, one per model compiled; planned: the planned "
                         "workload (jit-b4 batch 64 naive, compiled then eager) first, then flash2, "
                         "the other jit-b4 batches and gpt2-124m, compiled then eager")
    ap.add_argument("--models", nargs="+", choices=["jit-b4", "gpt2-124m", "llama3-8b", "mixtral-8x7b"])
    ap.add_argument("--batches", nargs="+", type=int, help="override the default batch sizes")
    ap.add_argument("--attention", nargs="+", choices=["naive", "sdpa-math", "flash2", "sdpa"])
    ap.add_argument("--modes", nargs="+", choices=["eager", "compiled"])
    ap.add_argument("--warmup", type=int, default=10, help="warm-up steps (default 10)")
    ap.add_argument("--steps", type=int, default=20, help="timed steps (default 20)")
    ap.add_argument("--profile-steps", type=int, default=3, help="profiled steps, 0 = no profile")
    ap.add_argument("--host-steps", type=int, default=5,
                    help="steps timed from launch to return on an idle GPU (host time), 0 = none")
    ap.add_argument("--no-repeat-host-bound", dest="repeat_host_bound", action="store_false",
                    help="do not measure host-bound configurations (GPU busy < 75%% of the step) a "
                         "second time at the end of the run")
    ap.add_argument("--retime-after-profile", action="store_true",
                    help="time the steps again right after each profile (result 'after_profile'); "
                         "with TEARDOWN_CUPTI=0 this measures what a CUPTI left attached costs")
    ap.add_argument("--ema", type=int, default=0, metavar="N",
                    help="number of EMA copies of the weights updated every step (JiT uses 2; default 0)")
    ap.add_argument("--ema-decay", type=float, default=0.9999)
    ap.add_argument("--tf32", action="store_true",
                    help="allow TF32 for fp32 matmuls (naive attention's fp32 scores); PyTorch default off")
    ap.add_argument("--budget-s", type=float, default=225.0,
                    help="start no configuration after this many seconds; a compiled one needs "
                         "--compile-reserve-s left (remaining ones are recorded as skipped)")
    ap.add_argument("--compile-reserve-s", type=float, default=50.0)
    ap.add_argument("--count", action="store_true",
                    help="no GPU: write PyTorch reference FLOP / saved-byte counts (tests/reference/count.py)")
    ap.add_argument("--dry-run", action="store_true", help="print the plan and exit")
    return ap


def run_count(args) -> int:
    sys.path.insert(0, os.path.join(HERE, "..", "tests", "reference"))
    import count

    argv = []
    for m in args.models or []:
        argv += ["--model", m]
    if args.batches:
        argv += ["--batch", str(args.batches[0])]
    if args.out.endswith(".json"):
        argv += ["--out", args.out]
    else:
        argv += ["--out-dir", args.out]
    return count.main(argv)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.count:
        if args.out == "measurements.json":
            args.out = os.path.join(HERE, "..", "tests", "reference", "fixtures")
        return run_count(args)
    if args.steps < 1 or args.warmup < 1:
        print("measure.py: --steps and --warmup must be at least 1", file=sys.stderr)
        return 2
    if args.retime_after_profile and args.profile_steps < 1:
        print("measure.py: --retime-after-profile times the steps after a profile; it needs "
              "--profile-steps of at least 1", file=sys.stderr)
        return 2
    try:
        plan = plan_configs(args)
    except ValueError as exc:
        print(f"measure.py: {exc}", file=sys.stderr)
        return 2
    if args.dry_run:
        for cfg in plan:
            print(f"{cfg['model']}:{cfg['batch']}:{cfg['attention']}:{cfg['mode']}")
        return 0

    # Release CUPTI at the end of each profile (read by Kineto when a profile stops), so the
    # configurations timed after one are not slowed by it; TEARDOWN_CUPTI=0 in the environment
    # keeps CUPTI attached (the file records which).
    os.environ.setdefault("TEARDOWN_CUPTI", "1")
    import torch

    if not torch.cuda.is_available():
        print("measure.py: no CUDA device is available; this script measures GPU training steps. "
              "Run it on a CUDA machine, or use --count for the CPU-only reference counts.",
              file=sys.stderr)
        return 2
    torch.backends.cuda.matmul.allow_tf32 = args.tf32
    torch.backends.cudnn.allow_tf32 = args.tf32
    torch.cuda.reset_peak_memory_stats()

    started = time.perf_counter()
    doc = {
        "schema": SCHEMA,
        "example": False,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "command": "python3 " + " ".join(shlex.quote(a) for a in sys.argv),
        "device": device_info(),
        "settings": {"warmup": args.warmup, "steps": args.steps, "profile_steps": args.profile_steps,
                     "host_steps": args.host_steps, "repeat_host_bound": args.repeat_host_bound,
                     "cupti_teardown": os.environ.get("TEARDOWN_CUPTI") == "1",
                     "retime_after_profile": args.retime_after_profile,
                     "ema": args.ema, "ema_decay": args.ema_decay, "tf32": args.tf32,
                     "optimizer": "AdamW lr 1e-4 betas (0.9, 0.95) weight_decay 0",
                     "autocast": "bf16, fp32 master parameters",
                     "data": "synthetic batch generated once on the GPU and reused every step"},
        "configs": [],
    }
    log(f"device {doc['device']['name']}, torch {torch.__version__}, {len(plan)} configs")
    write_json(args.out, doc)
    for i, cfg in enumerate(plan):
        result = empty_result(cfg, args)
        name = f"{cfg['model']} batch {cfg['batch']} {cfg['attention']} {cfg['mode']}"
        elapsed = time.perf_counter() - started
        need = args.compile_reserve_s if cfg["mode"] == "compiled" else 0.0
        if elapsed + need > args.budget_s:
            result["error"] = f"skipped: time budget ({elapsed:.0f} s used of --budget-s {args.budget_s:.0f})"
            log(f"[{i + 1}/{len(plan)}] {name}: {result['error']}")
            doc["configs"].append(result)
            write_json(args.out, doc)
            continue
        log(f"[{i + 1}/{len(plan)}] {name}")
        t0 = time.perf_counter()
        try:
            run_config(cfg, args, result)
        except Exception as exc:  # one failing configuration must not end the run
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                msg = f"OutOfMemoryError: {str(exc).splitlines()[0]}"
                result["peak_memory_bytes"] = torch.cuda.max_memory_allocated()
            else:
                msg = f"{type(exc).__name__}: {exc}"
                tb = traceback.format_exc().strip().splitlines()
                result["error_traceback_tail"] = tb[-12:]
            result["error"] = msg[:2000]
            log(f"  FAILED: {msg[:300]}")
            del exc
        result["config_wall_s"] = time.perf_counter() - t0
        doc["configs"].append(result)
        write_json(args.out, doc)
        cleanup()
    repeat_host_bound(doc, plan, args, started)
    doc["total_wall_s"] = time.perf_counter() - started
    write_json(args.out, doc)
    ok = sum(1 for c in doc["configs"] if c["error"] is None)
    log(f"done: {ok}/{len(plan)} configs measured in {doc['total_wall_s']:.0f} s -> {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
