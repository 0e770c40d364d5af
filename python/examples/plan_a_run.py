"""Planning a training run from Python, the way a notebook would (each block is a cell).

Run: python python/examples/plan_a_run.py   (CI runs it after installing the package).
"""

# %% The planned run, on the CLI's defaults: JiT-B/4, batch 64 per GPU on 8 x H200.
import roofline

plan = roofline.estimate()
print(f"{plan.model} on {plan.gpus} x {plan.gpu}: step {plan.step_time_s * 1e3:.1f} ms, "
      f"{plan.samples_per_s:,.0f} samples/s, MFU {plan.mfu:.1%}, fits: {plan.fits}")
for finding in plan.findings[:3]:
    print("  finding:", finding["message"])

# %% Which attention kernel and execution mode pay off? A sweep comes back as a DataFrame.
try:
    import pandas as pd
except ImportError:  # without pandas a sweep is a list of dicts
    pd = None
grid = roofline.sweep(
    vary={"attention": ["naive", "flash2"], "mode": ["eager", "compiled"], "batch": "32..256"},
    gpu="h200-sxm",
)
if pd is not None:
    fitting = grid[grid["fits"]].sort_values("samples_per_s", ascending=False)
    best = fitting.groupby(["attention", "mode"], observed=True).first()
    print(best[["batch_per_gpu", "step_time_s", "samples_per_s", "mfu", "fits"]])
else:
    print(max((r for r in grid if r["fits"]), key=lambda r: r["samples_per_s"]))

# %% A model of our own, stated as a dict with a spec file's fields: GPT-2 124M made wider.
gpt2 = roofline.load_model("gpt2-124m")
wide = dict(gpt2, name="gpt2-wide", transformer=dict(gpt2["transformer"], width=1024, heads=16))
for spec in (gpt2, wide):
    e = roofline.estimate(model=spec, gpu="h100-sxm", batch=16, attention="flash2",
                          train_tokens="10B")
    print(f"{e.model}: {e.params / 1e6:.0f}M params, {e.tokens_per_s:,.0f} tokens/s, "
          f"10B tokens in {e.train_time_s / 3600:.1f} h for ${e.cost:,.0f}")

# %% Errors name the field and the value, as the CLI does.
try:
    roofline.estimate(model=dict(gpt2, transformer=dict(gpt2["transformer"], heads=0)))
except roofline.SpecError as err:
    print("SpecError:", err, "| field:", err.field, "| value:", err.value)

# %% The best way to run a 8B model on 64 H100s at a global batch of 512.
ranking = roofline.search(model="llama3-8b", gpu="h100-sxm", gpus=64, global_batch=512, top=3)
for row in ranking.rows:
    p = row["parallel"]
    print(f"tp {p['tp']} pp {p['pp']} dp {row['dp']} batch {row['batch']} x {row['grad_accum']} "
          f"ZeRO {row['zero']}: step {row['step_time_s']:.2f} s, MFU {row['mfu']:.1%}")

# %% The roofline chart of the planned step (inline in Jupyter; saved here).
import os
import tempfile

chart = roofline.plot_roofline(model="jit-b4", gpu="h200-sxm")
path = os.path.join(tempfile.mkdtemp(), "roofline.png")
chart.save(path)
print("chart:", path, os.path.getsize(path), "bytes")
