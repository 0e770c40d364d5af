"""A 1M-configuration sweep, from the CLI and from Python, on the same machine in the same run.

    python python/bench_sweep.py [path/to/roofline]   (default: target/release/roofline)

The CLI writes its rows as CSV (to a temporary file); Python returns a pandas DataFrame. Both
figures are configurations per second of wall time, parse to finished output; the CLI's own
figure (evaluation only, as it prints it) is shown too.
"""

import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The installed package, not the source folder beside this script (which has no extension).
sys.path = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
import roofline  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
VARY = {
    "batch": "1..1000:1",
    "seq": "64..1024:64",
    "attention": ["naive", "flash2"],
    "mode": ["eager", "compiled", "graphs"],
    "gpu": ["h100-sxm", "h200-sxm"],
    "precision": ["bf16", "fp8"],
}  # 1000 x 16 x 2 x 3 x 2 x 2 = 384,000; x 2.6 below
VARY["checkpointing"] = ["none", "selective", "full"]  # x 3 = 1,152,000
FIXED = {"model": "gpt2-124m"}


def main():
    binary = sys.argv[1] if len(sys.argv) > 1 else str(REPO / "target/release/roofline")
    words = []
    for k, v in VARY.items():
        words += ["--vary", f"{k}={v if isinstance(v, str) else ','.join(v)}"]
    for k, v in FIXED.items():
        words += [f"--{k}", v]
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "sweep.csv")
        cmd = [binary, "sweep", *words, "--out", out]
        t = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, text=True, check=True)
        cli_s = time.perf_counter() - t
    m = re.search(r"evaluated (\d+) configurations in ([\d.]+) s", r.stderr)
    n, cli_eval_s = int(m.group(1)), float(m.group(2))
    t = time.perf_counter()
    df = roofline.sweep(VARY, **FIXED)
    py_s = time.perf_counter() - t
    assert len(df) == n, (len(df), n)
    print("CLI:    ", " ".join(cmd[1:-2]), "--out sweep.csv")
    print(f"        {n} configurations in {cli_s:.2f} s wall = {n / cli_s:,.0f} configurations/s "
          f"(evaluation alone, as the CLI prints it: {n / cli_eval_s:,.0f}/s)")
    print(f"Python: roofline.sweep({VARY!r}, model='gpt2-124m') -> {type(df).__name__}")
    print(f"        {n} configurations in {py_s:.2f} s wall = {n / py_s:,.0f} configurations/s "
          f"({n / py_s / (n / cli_s):.2f} x the CLI's wall rate, "
          f"{n / py_s / (n / cli_eval_s):.2f} x its evaluation-only rate)")


if __name__ == "__main__":
    main()
