"""What autograd keeps for backward per block when the blocks are compiled, as PyTorch counts it.

Each block of the model is compiled as the validation runs compile it (``blk.compile``, as the
public JiT code does) but with the ``aot_eager_decomp_partition`` backend: AOTAutograd with
Inductor's decompositions and its default min-cut partitioner (the part of torch.compile that
decides what the forward keeps for the backward), running the partitioned graphs eagerly instead
of generating Triton code, so it runs on a CPU. The saved tensors are seen through
``torch.autograd.graph.saved_tensors_hooks`` (AOTAutograd saves the partitioned forward's
outputs with ``save_for_backward``), deduplicated by storage, for one block in the middle of the
model, under ``torch.autocast("cpu", dtype=torch.bfloat16)``. Parameters and the bf16 copies of
the block's weights (which roofline counts as autocast weight copies, apart from activations)
are left out and reported on their own.

Real tensors (not fake ones: the compiler needs them), batch 1, the models' own sequence.

    python3 tests/reference/compiled_saved.py [--out tests/reference/fixtures/compiled-saved.json]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import shlex
import sys
import warnings

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "validation"))
from models import build_model  # noqa: E402

RUNS = (("jit-b4", "flash2"), ("jit-b4", "naive"), ("gpt2-124m", "flash2"), ("gpt2-124m", "naive"))
BLOCK = 3


def saved_per_block(model_name: str, attention: str, compiled: bool) -> dict:
    torch.manual_seed(0)
    model = build_model(model_name, attention)
    data = model.make_batch(1, "cpu")
    if compiled:
        for blk in model.blocks:
            blk.compile(backend="aot_eager_decomp_partition")
    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    block = model.blocks[BLOCK]
    weight_shapes = {tuple(sorted(p.shape)) for p in block.parameters()}
    current = [None]
    for i, blk in enumerate(model.blocks):
        blk.register_forward_pre_hook(lambda _m, _a, i=i: current.__setitem__(0, i))
        blk.register_forward_hook(lambda _m, _a, _o: current.__setitem__(0, None))
    records = []

    def pack(t: torch.Tensor):
        records.append((current[0], t.untyped_storage().data_ptr(), t.untyped_storage().nbytes(),
                        str(t.dtype).replace("torch.", ""), tuple(t.shape)))
        return t

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for _ in range(2):  # the first step compiles
            records.clear()
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                with torch.autocast("cpu", dtype=torch.bfloat16):
                    loss = model.training_loss(data)
            seen, tensors = set(), []
            activations = weight_copies = 0
            for blk, key, nbytes, dtype, shape in records:
                if blk != BLOCK or key in seen or key in params:
                    continue
                seen.add(key)
                if dtype != "float32" and tuple(sorted(shape)) in weight_shapes:
                    weight_copies += nbytes
                    continue
                activations += nbytes
                tensors.append({"bytes": nbytes, "dtype": dtype, "shape": list(shape)})
            loss.backward()
    return {"activation_bytes": activations, "weight_copy_bytes": weight_copies, "tensors": tensors}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", default=os.path.join(HERE, "fixtures", "compiled-saved.json"))
    args = ap.parse_args(argv)
    runs = []
    for model_name, attention in RUNS:
        eager = saved_per_block(model_name, attention, False)
        compiled = saved_per_block(model_name, attention, True)
        runs.append({"model": model_name, "attention": attention, "batch": 1, "block": BLOCK,
                     "eager": eager, "compiled": compiled})
        print(f"[compiled_saved] {model_name} {attention}: eager {eager['activation_bytes']} B, "
              f"compiled {compiled['activation_bytes']} B per block", file=sys.stderr, flush=True)
    out = {
        "torch_version": torch.__version__,
        "command": "python3 " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0])] + sys.argv[1:]),
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": "cpu",
        "backend": "aot_eager_decomp_partition (AOTAutograd, Inductor's decompositions and "
                   "min-cut partitioner, graphs run eagerly)",
        "autocast": "torch.autocast('cpu', dtype=torch.bfloat16)",
        "conventions": "bytes of distinct storages saved for backward by one block (index "
                       "'block'), batch 1 at the model's sequence; parameters excluded; 16-bit "
                       "copies of the block's weights reported apart as weight_copy_bytes",
        "runs": runs,
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".tmp", "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    os.replace(args.out + ".tmp", args.out)
    print(f"[compiled_saved] wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
