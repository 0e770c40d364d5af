"""Cross-check of the ceilings roofline bench measures, through PyTorch: bf16 matmul on random
data (8192^3 and the jit-b4 GEMMs as F.linear, C = A B^T), a device-to-device copy of 2 GiB
(bytes read + written), and SDPA forward at the planned JiT-B/4 attention shape. Then what eager PyTorch
reaches on the pointwise ops a transformer block is made of (broadcast multiplies, casts,
reductions at the planned JiT-B/4 [64*512, 768] shape; kind "eager_pointwise", bytes = each input read
once + output written once) and what torch.compile's fused Triton kernels reach on the same
tensors (kind "compiled_pointwise"), PyTorch's fused LayerNorm forward and backward (kind
"native_norm"), and the host time to dispatch one tiny eager op (kind
"host_dispatch", wall clock over many launches while the GPU is idle-bound). CUDA events,
warm-up, median of the timed runs.

    python3 scripts/torch_baseline.py OUT.json
"""
import json, statistics, sys
import torch
import torch.nn.functional as F

out_path = sys.argv[1]
dev = torch.device("cuda")
props = torch.cuda.get_device_properties(dev)
report = {"torch_version": torch.__version__, "cuda": torch.version.cuda, "device": props.name,
          "sm_count": props.multi_processor_count, "results": []}

def time_ms(fn, reps=30, warmup=5):
    for _ in range(warmup):
        fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        s, e = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        s.record(); fn(); e.record()
        times.append((s, e))
    torch.cuda.synchronize()
    ms = sorted(s.elapsed_time(e) for s, e in times)
    return statistics.median(ms), ms[0]

def record(kind, shape, flops, nbytes, med_ms, min_ms):
    r = {"kind": kind, "shape": shape, "flops": flops, "bytes": nbytes, "time_s": med_ms / 1e3,
         "time_min_s": min_ms / 1e3, "flops_per_s": flops / (med_ms / 1e3),
         "bytes_per_s": nbytes / (med_ms / 1e3)}
    report["results"].append(r)
    print(f"{kind:<12} {shape:<28} {med_ms*1e3:10.1f} us  {r['flops_per_s']/1e12:8.1f} TFLOP/s  {r['bytes_per_s']/1e9:8.1f} GB/s", flush=True)
    with open(out_path, "w") as f:
        json.dump(report, f, indent=2)

shapes = [("square8192", 8192, 8192, 8192), ("adaln", 64, 4608, 768), ("qkv", 32768, 2304, 768),
          ("proj", 32768, 768, 768), ("w12", 32768, 4096, 768), ("w3", 32768, 768, 2048)]
for name, m, n, k in shapes:
    a = torch.randn(m, k, device=dev, dtype=torch.bfloat16)
    w = torch.randn(n, k, device=dev, dtype=torch.bfloat16)
    med, mn = time_ms(lambda: F.linear(a, w))
    record("matmul_bf16", f"{name} {m}x{n}x{k}", 2.0 * m * n * k, 2.0 * (m * k + n * k + m * n), med, mn)
    del a, w

n = 2 ** 29  # fp32 elements = 2 GiB
x = torch.rand(n, device=dev)
y = torch.empty_like(x)
med, mn = time_ms(lambda: y.copy_(x))
record("copy_d2d", "2 GiB", 0.0, 2.0 * 4 * n, med, mn)
del x, y

B, H, S, D = 64, 12, 512, 64
q, k, v = (torch.randn(B, H, S, D, device=dev, dtype=torch.bfloat16) for _ in range(3))
med, mn = time_ms(lambda: F.scaled_dot_product_attention(q, k, v))
record("sdpa_fwd", f"B{B} H{H} S{S} D{D}", 4.0 * B * S * S * H * D, 4 * 2.0 * B * H * S * D, med, mn)

# Eager pointwise ops at the planned JiT-B/4 activation shape (batch 64 x 512 tokens, width 768).
T, C = 64 * 512, 768
xf = torch.randn(T, C, device=dev)                      # fp32 residual stream
xf2 = torch.randn(T, C, device=dev)                     # a second, distinct operand (two reads)
xb = torch.randn(T, C, device=dev, dtype=torch.bfloat16)
xb2 = torch.randn(T, C, device=dev, dtype=torch.bfloat16)
row = torch.rand(T, 1, device=dev) + 0.5                 # per-row statistic (rsqrt)
col = torch.randn(C, device=dev)                         # per-column weight
per_sample = torch.randn(64, 1, C, device=dev, dtype=torch.bfloat16)  # adaLN scale
x3 = xf.view(64, 512, C)
tbl = torch.randn(512, 64, device=dev)                   # RoPE table [s, dh]
q = torch.randn(64, 12, 512, 64, device=dev)             # fp32 q after a permute
E4, E2 = 4.0 * T * C, 2.0 * T * C
pointwise = [
    ("add fp32", lambda: xf + xf2, 3 * E4),
    ("mul per-row fp32", lambda: xf * row, 2 * E4),
    ("mul per-column fp32", lambda: xf * col, 2 * E4),
    ("mul adaLN scale (fp32 x bf16 broadcast)", lambda: x3 * (1 + per_sample), 2 * E4),
    ("pow fp32", lambda: xf.pow(2), 2 * E4),
    ("mean over width fp32", lambda: xf.mean(-1, keepdim=True), E4),
    ("cast bf16 -> fp32", lambda: xb.float(), E2 + E4),
    ("cast fp32 -> bf16", lambda: xf.to(torch.bfloat16), E4 + E2),
    ("mul RoPE table [s, dh] on [B, h, s, dh] fp32", lambda: q * tbl, 2 * E4),
    ("silu bf16", lambda: F.silu(xb), 2 * E2),
]
for name, fn, nbytes in pointwise:
    med, mn = time_ms(fn)
    record("eager_pointwise", name, 0.0, nbytes, med, mn)

# PyTorch's own fused LayerNorm kernels (kind "native_norm"), which roofline streams at the copy
# rate: forward and backward (input, weight and bias gradients) at the same [T, 768] fp32 shape,
# as autocast runs LayerNorm; bytes = the least each must move (forward x read + y written,
# backward dy and x read + dx written), so the rate shows how far they stay from the copy rate.
w_ln, b_ln = torch.ones(C, device=dev), torch.zeros(C, device=dev)
_, ln_mean, ln_rstd = torch.native_layer_norm(xf, [C], w_ln, b_ln, 1e-5)
native_norms = [
    ("layer_norm forward fp32", lambda: torch.native_layer_norm(xf, [C], w_ln, b_ln, 1e-5), 2 * E4),
    ("layer_norm backward fp32 (input, weight, bias)",
     lambda: torch.ops.aten.native_layer_norm_backward(xf2, xf, [C], ln_mean, ln_rstd, w_ln, b_ln,
                                                       [True, True, True]), 3 * E4),
]
for name, fn, nbytes in native_norms:
    med, mn = time_ms(fn)
    record("native_norm", name, 0.0, nbytes, med, mn)

# The same kind of traffic through torch.compile: Inductor fuses each chain into one Triton
# kernel (kind "compiled_pointwise", bytes = inputs read once + output written once), the rate
# compiled mode's fused chains stream at (roofline models them at the copy rate).
compiled = [
    ("fused mul-add-cast fp32,fp32 -> bf16", lambda a, b: (a * b + a).to(torch.bfloat16), (xf, xf2), 2 * E4 + E2),
    ("fused rmsnorm-like fp32 -> bf16", lambda a: (a * torch.rsqrt(a.pow(2).mean(-1, keepdim=True) + 1e-6)).to(torch.bfloat16), (xf,), E4 + E2),
    ("fused silu-mul bf16", lambda a, b: F.silu(a) * b, (xb, xb2), 3 * E2),
]
for name, fn, args, nbytes in compiled:
    try:
        cfn = torch.compile(fn)
        med, mn = time_ms(lambda: cfn(*args))
        record("compiled_pointwise", name, 0.0, nbytes, med, mn)
    except Exception as exc:  # no working Triton: say so, keep the other results
        report["results"].append({"kind": "compiled_pointwise", "shape": name, "error": f"{type(exc).__name__}: {exc}"[:300]})
        print(f"compiled_pointwise {name}: {exc}", flush=True)

# Host dispatch: a tiny op launched many times; the GPU finishes each long before the next is
# issued, so wall time per op is the host's cost of one eager dispatch (Python + ATen + launch).
import time
small = torch.randn(16, device=dev)
for _ in range(200):
    small = small + 1.0
torch.cuda.synchronize()
n_ops = 5000
t0 = time.perf_counter()
for _ in range(n_ops):
    small = small + 1.0
torch.cuda.synchronize()
per_op = (time.perf_counter() - t0) / n_ops
report["results"].append({"kind": "host_dispatch", "shape": "tiny add, forward only", "time_s": per_op})
print(f"host dispatch per tiny eager op: {per_op * 1e6:.1f} us", flush=True)
# The same with autograd recording (forward + backward of a chain of tiny ops).
w = torch.randn(16, device=dev, requires_grad=True)
def chain():
    y = w
    for _ in range(50):
        y = y * 1.0001
    y.sum().backward()
for _ in range(5):
    chain()
torch.cuda.synchronize()
reps = 40
t0 = time.perf_counter()
for _ in range(reps):
    chain()
torch.cuda.synchronize()
per_op = (time.perf_counter() - t0) / (reps * 50)
report["results"].append({"kind": "host_dispatch", "shape": "tiny mul with autograd, forward + backward per forward op", "time_s": per_op})
print(f"host time per tiny eager op with autograd (fwd + bwd): {per_op * 1e6:.1f} us", flush=True)
with open(out_path, "w") as f:
    json.dump(report, f, indent=2)
