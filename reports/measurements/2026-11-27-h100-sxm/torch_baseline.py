"""Cross-check of the ceilings roofline bench measures, through PyTorch: bf16 matmul on random
data (8192^3 and the jit-b4 GEMMs as F.linear, C = A B^T), a device-to-device copy of 2 GiB
(bytes read + written), and SDPA forward at the seed's attention shape. CUDA events, warm-up,
median of the timed runs."""
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
