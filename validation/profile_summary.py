"""How validation/measure.py reads a finished torch.profiler profile: every GPU activity
classified into roofline's op classes by kernel name, and the per-step summaries it writes
(kernel time per class, top kernels, CPU ops, ATen ops by input shape). Pure functions of the
profile, tested on CPU; see validation/README.md for the rules and the fields.
"""

from __future__ import annotations

CLASSES = ("gemm", "attention", "normalization", "elementwise", "optimizer", "other")

# Rules are applied in this order to the lower-cased kernel name; the first rule with a matching
# substring decides. Fused Triton kernels (torch.compile) are named by inductor after the aten
# ops they contain, so e.g. "triton_per_fused__softmax_add_0" is attention and
# "triton_red_fused__to_copy_add_mean_mul_pow_rsqrt_1" is normalization.
KERNEL_RULES: tuple[tuple[str, tuple[str, ...]], ...] = (
    # Optimizer step and EMA: fused/foreach AdamW and _foreach_lerp_ run multi-tensor kernels.
    ("optimizer", ("adam", "multi_tensor_apply", "multitensorapply", "foreach", "fused_sgd")),
    # Loss (log-softmax / NLL of GPT-2's cross entropy): not attention.
    ("other", ("log_softmax", "logsoftmax", "nll_loss", "cross_entropy", "crossentropy")),
    # Attention: fused kernels, and the softmax of the naive path (the models have no other).
    ("attention", ("flash", "fmha", "attention", "attn", "sdpa", "softmax")),
    # Matmuls and convolutions (cuBLAS, cuBLASLt, CUTLASS, cuDNN, inductor templates).
    ("gemm", ("gemm", "cutlass", "cublas", "xmma", "nvjet", "sm90_", "sm80_", "sm100_", "ampere_",
              "hopper", "matmul", "splitk", "gemv", "convolve", "convolution", "conv2d", "fprop",
              "wgrad", "dgrad", "triton_tem", "cudnn")),
    ("normalization", ("norm", "rsqrt", "gammabeta", "rms")),
    # Memory-bound data movement: pointwise, casts, copies, fills, concatenation, reductions such
    # as bias-gradient sums, gathers (embedding forward), memcpy/memset activities.
    ("elementwise", ("elementwise", "vectorized", "unrolled", "triton_poi", "triton_red",
                     "triton_per", "triton", "copy", "cast", "fill", "memcpy", "memset",
                     "pointwise", "cat", "reduce", "index", "where", "pow", "mul", "add")),
)


def classify_kernel(name: str) -> str:
    """Op class of a GPU kernel (or memcpy/memset activity) from its name."""
    low = name.lower()
    for cls, needles in KERNEL_RULES:
        if any(n in low for n in needles):
            return cls
    return "other"


def attention_kernel_family(names) -> list[str]:
    """Which fused attention implementations appear among kernel names."""
    fams = set()
    for n in names:
        low = n.lower()
        if "flash" in low:
            fams.add("flash")
        if "fmha" in low or "efficient_attention" in low or "mem_eff" in low:
            fams.add("mem-efficient")
        if "cudnn" in low and ("attn" in low or "attention" in low or "sdpa" in low):
            fams.add("cudnn-attention")
    return sorted(fams)


def summarize_host_ops(prof, steps: int, top: int = 30) -> dict:
    """CPU ops of a finished profile: how many per step and the `top` by self CPU time per step
    (name, calls, seconds). Empty (with the reason) when this PyTorch's profiler API differs."""
    try:
        rows = [e for e in prof.key_averages() if e.device_type.name == "CPU"]
        rows.sort(key=lambda e: e.self_cpu_time_total, reverse=True)
        return {
            "host_ops_per_step": sum(e.count for e in rows) / steps,
            "host_self_cpu_s_per_step": sum(e.self_cpu_time_total for e in rows) * 1e-6 / steps,
            "host_top_ops": [
                {"name": e.key[:160], "calls_per_step": e.count / steps,
                 "self_cpu_s_per_step": e.self_cpu_time_total * 1e-6 / steps}
                for e in rows[:top]
            ],
        }
    except Exception as exc:  # the profile is diagnostics; its absence must not fail a run
        return {"host_ops_error": f"{type(exc).__name__}: {exc}"}


def summarize_device_ops(prof, steps: int, top: int = 80) -> dict:
    """ATen ops of a finished profile (recorded with shapes) grouped by name and input shapes,
    the ``top`` by self device time per step: which op at which shape each kernel class's time
    comes from, so an eager step can be accounted op by op against the model's op graph.
    Empty (with the reason) when this PyTorch's profiler API differs."""
    def self_device_us(e):  # renamed from self_cuda_time_total in PyTorch 2.4
        return getattr(e, "self_device_time_total", None) or getattr(e, "self_cuda_time_total", 0)

    try:
        rows = [e for e in prof.key_averages(group_by_input_shape=True)
                if e.device_type.name == "CPU" and e.key.startswith("aten::")]
        rows.sort(key=self_device_us, reverse=True)
        return {
            "device_top_ops": [
                {"name": e.key[:120], "input_shapes": str(e.input_shapes)[:300],
                 "calls_per_step": e.count / steps,
                 "self_device_s_per_step": self_device_us(e) * 1e-6 / steps}
                for e in rows[:top]
            ],
        }
    except Exception as exc:  # diagnostics only, as summarize_host_ops
        return {"device_ops_error": f"{type(exc).__name__}: {exc}"}


def summarize_kernels(kernels, steps: int, top: int = 100) -> dict:
    """Aggregate (name, duration_s) pairs from ``steps`` profiled steps into per-step figures:
    time and launches per class, and the ``top`` kernels by time (enough to account for a
    compiled step's kernels one by one)."""
    class_times = {c: 0.0 for c in CLASSES}
    class_counts = {c: 0 for c in CLASSES}
    by_name: dict[str, list] = {}
    count = 0
    for name, dur in kernels:
        cls = classify_kernel(name)
        class_times[cls] += dur
        class_counts[cls] += 1
        rec = by_name.setdefault(name, [cls, 0.0, 0])
        rec[1] += dur
        rec[2] += 1
        count += 1
    steps = max(steps, 1)
    top_list = sorted(by_name.items(), key=lambda kv: -kv[1][1])[:top]
    return {
        "class_times_s": {c: t / steps for c, t in class_times.items()},
        "gpu_kernel_time_s": sum(class_times.values()) / steps,
        "kernels_per_step": count / steps,
        "class_kernels_per_step": {c: n / steps for c, n in class_counts.items()},
        "attention_kernel_family": attention_kernel_family(by_name),
        "top_kernels": [{"name": n[:200], "class": r[0], "time_s_per_step": r[1] / steps,
                         "calls_per_step": r[2] / steps} for n, r in top_list],
    }


def profiled_kernels(prof) -> list[tuple[str, float]]:
    """(name, seconds) of every GPU activity (kernels, memcpy, memset) in a finished profile."""
    from torch.autograd import DeviceType

    out = []
    try:
        events = prof.profiler.kineto_results.events()
        for e in events:
            if e.device_type() != DeviceType.CUDA or e.is_user_annotation():
                continue
            if "annotation" in getattr(e, "activity_type", lambda: "")():
                continue  # gpu_user_annotation spans overlap real kernels
            out.append((e.name(), e.duration_ns() * 1e-9))
        return out
    except AttributeError:
        pass
    for e in prof.events():  # older API: FunctionEvents
        if getattr(e, "device_type", None) == DeviceType.CUDA:
            out.append((e.name, e.time_range.elapsed_us() * 1e-6))
    return out
