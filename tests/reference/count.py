#!/usr/bin/env python3
"""Reference counts from PyTorch for the roofline model: matmul FLOPs and saved-activation bytes.

No GPU needed. The models of validation/models.py run under
``torch._subclasses.fake_tensor.FakeTensorMode``: tensors carry shapes, dtypes and storages but
no data (their storage is on the meta device) and report device ``cpu``, so CPU autocast applies
and each op's real CPU kernel choice (and what it saves for backward) is reproduced without
computing anything. A whole step is counted in seconds, even Mixtral 8x7B's at sequence 32768.

For each model and attention implementation, in fp32 and under bf16 autocast:

* FLOPs of the forward (one ``FlopCounterMode``) and of the backward (another), per op type and
  per top-level module. FlopCounterMode counts 2 FLOPs per multiply-add, only matmul-like ops
  (mm, addmm, bmm, baddbmm, convolution and its backward, SDPA kernels) and never halves causal
  attention.
* Bytes that autograd saves for backward, seen through ``torch.autograd.graph.saved_tensors_hooks``:
  every packed tensor is attributed to the module that was running (module forward hooks keep a
  stack), then deduplicated by storage (two tensors that share an untyped storage, e.g. q, k and
  v views of one qkv output, or a tensor saved by two ops, count once, with the storage's full
  size). On fake tensors the storage identity is the meta StorageImpl (``_cdata``); all saved
  tensors stay referenced by the autograd graph while counting, so identities are not reused.
  Storages that belong to parameters are reported apart (``parameter_bytes``): they exist anyway.

Usage (from the repository root):

    python3 tests/reference/count.py --out-dir tests/reference/fixtures
    python3 tests/reference/count.py --model jit-b4 --batch 2 --out tests/reference/fixtures/jit-b4.json
    python3 tests/reference/count.py --model llama3-8b      # -> tests/reference/fixtures/llama3-8b.json
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import json
import os
import shlex
import sys
import warnings
from collections import defaultdict

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "validation"))

from models import build_model, count_parameters  # noqa: E402

SCHEMA = "roofline-reference-counts/1"
DEFAULT_BATCH = {"jit-b4": 2, "gpt2-124m": 1, "llama3-8b": 1, "mixtral-8x7b": 1}
ATTENTIONS = ("naive", "sdpa-math", "flash2")
PRECISIONS = ("fp32", "bf16-autocast")


def _storage_key(t: torch.Tensor):
    """Identity of the storage behind ``t`` (works for real CPU, meta and fake tensors)."""
    try:
        return t.untyped_storage()._cdata
    except Exception:  # e.g. tensor subclasses without a storage: fall back to the object
        return ("object", id(t))


def _storage_nbytes(t: torch.Tensor) -> int:
    try:
        return int(t.untyped_storage().nbytes())
    except Exception:
        return t.numel() * t.element_size()


def _top_scope(name: str) -> str:
    """'blocks.3.attn.qkv' -> 'blocks.3'; 'final_layer.linear' -> 'final_layer'; '' -> '(model)'."""
    if not name:
        return "(model)"
    parts = name.split(".")
    if parts[0] == "blocks" and len(parts) > 1:
        return ".".join(parts[:2])
    return parts[0]


def _module_scopes(model: torch.nn.Module):
    """Install forward hooks that keep a stack of the running modules' names."""
    stack: list[str] = []
    handles = []
    for name, mod in model.named_modules():
        if not name:
            continue

        def pre(_m, _inp, name=name):
            stack.append(name)

        def post(_m, _inp, _out, name=name):
            if stack and stack[-1] == name:
                stack.pop()

        handles.append(mod.register_forward_pre_hook(pre))
        handles.append(mod.register_forward_hook(post))
    return stack, handles


def _flop_summary(counter) -> dict:
    counts = counter.get_flop_counts()
    by_op = {str(op).replace("aten.", ""): int(v) for op, v in counts.get("Global", {}).items()}
    by_module: dict[str, int] = defaultdict(int)
    for mod_name, ops in counts.items():
        if mod_name == "Global":
            continue
        parts = mod_name.split(".")
        # FlopCounterMode names modules "<Class>.<child>..."; keep the level below the root.
        if len(parts) == 2 or (len(parts) == 3 and parts[1] == "blocks"):
            by_module[".".join(parts[1:])] = int(sum(ops.values()))
    return {"total": int(sum(by_op.values())), "by_op": dict(sorted(by_op.items())),
            "by_module": dict(by_module)}


def count_one(model_name: str, batch: int, attention: str, precision: str,
              model_kwargs: dict | None = None) -> dict:
    """Count FLOPs and saved bytes for one training step of ``model_name`` (no optimizer).

    ``model_kwargs`` override the model's config (used by the unit tests with tiny models).
    """
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils.flop_counter import FlopCounterMode

    autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16-autocast"
                else contextlib.nullcontext())
    with FakeTensorMode():
        torch.manual_seed(0)
        model = build_model(model_name, attention, **(model_kwargs or {}))
        data = model.make_batch(batch, "cpu")
        param_storages = {_storage_key(p) for p in model.parameters()}

        stack, handles = _module_scopes(model)
        modules = dict(model.named_modules())
        records = []  # (scope, storage key, storage bytes, view bytes, dtype, is weight copy)

        def pack(t: torch.Tensor):
            scope = stack[-1] if stack else ""
            # A lower-precision copy of the running module's own weight made by autocast (saved
            # as is or as a transposed view, e.g. addmm's mat2 = weight.t()).
            w = getattr(modules.get(scope), "weight", None)
            weight_copy = (isinstance(w, torch.Tensor) and t.dtype != w.dtype
                           and sorted(t.shape) == sorted(w.shape)
                           and _storage_nbytes(t) == t.numel() * t.element_size())
            records.append((scope, _storage_key(t), _storage_nbytes(t), t.numel() * t.element_size(),
                            str(t.dtype).replace("torch.", ""), weight_copy))
            return t

        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
                with FlopCounterMode(display=False) as fwd_counter, autocast:
                    loss = model.training_loss(data)
            backends = sorted({getattr(m, "last_backend", None) for m in model.modules()} - {None})
            for h in handles:
                h.remove()
            # All saved tensors are still alive here (held by the graph): identities are valid.
            seen = set()
            activation_bytes = parameter_bytes = weight_copy_bytes = undeduplicated = 0
            per_scope: dict[str, int] = defaultdict(int)
            per_module_block0: dict[str, int] = defaultdict(int)
            per_dtype: dict[str, int] = defaultdict(int)
            for scope, key, nbytes, view_bytes, dtype, weight_copy in records:
                undeduplicated += view_bytes
                if key in seen:
                    continue
                seen.add(key)
                if key in param_storages:
                    parameter_bytes += nbytes
                    continue
                if weight_copy:
                    weight_copy_bytes += nbytes
                    continue
                activation_bytes += nbytes
                per_scope[_top_scope(scope)] += nbytes
                per_dtype[dtype] += nbytes
                if scope == "blocks.0" or scope.startswith("blocks.0."):
                    per_module_block0[scope[len("blocks.0."):] or "(block)"] += nbytes
            with FlopCounterMode(display=False) as bwd_counter:
                loss.backward()

    return {
        "attention": attention,
        "attention_backend_ran": backends,
        "precision": precision,
        "flops_forward": _flop_summary(fwd_counter),
        "flops_backward": _flop_summary(bwd_counter),
        "saved_for_backward": {
            "activation_bytes": activation_bytes,
            "autocast_weight_copy_bytes": weight_copy_bytes,
            "parameter_bytes": parameter_bytes,
            "undeduplicated_bytes": undeduplicated,
            "saved_tensor_count": len(records),
            "unique_storages": len(seen),
            "by_scope": dict(per_scope),
            "block0_by_module": dict(per_module_block0),
            "by_dtype": dict(per_dtype),
        },
    }


# Ops that launch no kernel: views without alias info in their schema, allocation without
# initialisation, and metadata queries. Ops whose every output is a view of an input (schema
# alias info) are skipped too (see _launches_kernel).
_NO_KERNEL_OPS = frozenset({
    "empty", "empty_like", "empty_strided", "new_empty", "new_empty_strided", "lift_fresh",
    "_unsafe_view", "_reshape_alias",
    "device", "is_same_size", "_local_scalar_dense", "sym_size", "sym_stride", "sym_numel",
    "sym_storage_offset",
})


def _launches_kernel(func) -> bool:
    """Whether an ATen op dispatched on real tensors would run device code: not a view (every
    return aliases an input), not an allocation or a metadata query."""
    name = func.overloadpacket.__name__
    if name in _NO_KERNEL_OPS or func.namespace == "prim":
        return False
    if torch.Tag.inplace_view in func.tags:  # unsqueeze_, transpose_, detach_, ...
        return False
    returns = func._schema.returns
    if returns and all(r.alias_info is not None and not r.alias_info.is_write for r in returns):
        return False
    return True


def _tensor_bytes(t: torch.Tensor) -> int:
    """Bytes a kernel touches for one tensor argument: numel * element size, capped by the
    storage (an expanded view reads its storage once)."""
    n = t.numel() * t.element_size()
    try:
        return min(n, int(t.untyped_storage().nbytes()))
    except Exception:
        return n


# Gathers: (table argument, index argument). They read one table row (embedding) or one element
# (nll_loss) per index, not the whole table.
_GATHER_OPS = {"embedding": (0, 1), "nll_loss_forward": (0, 1)}
# Arguments whose data an op never reads (only their shape): nll_loss_backward's input, the
# template of the *_like factories.
_SHAPE_ONLY_ARGS = {"nll_loss_backward": 1, "ones_like": 0, "zeros_like": 0, "full_like": 0}


def _op_bytes(func, args, kwargs, out) -> int:
    """Bytes an op moves: its tensor inputs and outputs (see _tensor_bytes); for a gather, the
    table counts only the rows (or elements) that the indices select; an argument read only for
    its shape counts nothing."""
    from torch.utils._pytree import tree_leaves

    name = func.overloadpacket.__name__
    skip = None
    total = 0
    gather = _GATHER_OPS.get(name)
    if gather is not None:
        table, index = args[gather[0]], args[gather[1]]
        row = table.element_size() * (table[0].numel() if name == "embedding" else 1)
        total += index.numel() * row
        skip = table
    elif name in _SHAPE_ONLY_ARGS:
        skip = args[_SHAPE_ONLY_ARGS[name]]
    for t in tree_leaves((args, kwargs, out)):
        if isinstance(t, torch.Tensor) and t is not skip:
            total += _tensor_bytes(t)
    return total


def dispatch_one(model_name: str, batch: int, attention: str, precision: str = "bf16-autocast",
                 model_kwargs: dict | None = None) -> dict:
    """Eager ATen ops of one training step (forward with loss, then backward; no optimizer) in
    `precision` ("bf16-autocast" or "fp32"), as a TorchDispatchMode sees them below autograd
    and autocast: every op that launches device code, with the bytes of its tensor inputs and
    outputs."""
    from torch._subclasses.fake_tensor import FakeTensorMode
    from torch.utils._python_dispatch import TorchDispatchMode

    phases = {p: {"kernels": 0, "bytes": 0, "by_op": defaultdict(int)} for p in ("forward", "backward")}
    current = ["forward"]

    class Recorder(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            out = func(*args, **(kwargs or {}))
            if _launches_kernel(func):
                rec = phases[current[0]]
                rec["kernels"] += 1
                rec["bytes"] += _op_bytes(func, args, kwargs, out)
                rec["by_op"][func.overloadpacket.__name__] += 1
            return out

    with FakeTensorMode(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.manual_seed(0)
        model = build_model(model_name, attention, **(model_kwargs or {}))
        data = model.make_batch(batch, "cpu")
        autocast = (torch.autocast("cpu", dtype=torch.bfloat16) if precision == "bf16-autocast"
                    else contextlib.nullcontext())
        with Recorder():
            with autocast:
                loss = model.training_loss(data)
            current[0] = "backward"
            loss.backward()
    return {
        "attention": attention,
        "precision": precision,
        **{p: {"kernels": r["kernels"], "bytes": r["bytes"], "by_op": dict(sorted(r["by_op"].items()))}
           for p, r in phases.items()},
    }


def count_model(model_name: str, batch: int, command: str) -> dict:
    with torch.device("meta"):
        params = count_parameters(build_model(model_name))
        seq = build_model(model_name).seq_len
    runs = []
    for precision in PRECISIONS:
        for attention in ATTENTIONS:
            print(f"[count] {model_name} batch {batch} {attention} {precision}", file=sys.stderr, flush=True)
            try:
                runs.append(count_one(model_name, batch, attention, precision))
            except Exception as exc:  # record, keep going
                runs.append({"attention": attention, "precision": precision,
                             "error": f"{type(exc).__name__}: {exc}"})
    # At batch 1 a [1, h, s, dh] view of the qkv output can enter bmm without a contiguous copy;
    # count the dispatch at batch 2 at least, where the copies appear as at training batches.
    dispatch_batch = max(batch, 2)
    dispatch = []
    for precision in PRECISIONS:
        for attention in ATTENTIONS:
            print(f"[count] {model_name} batch {dispatch_batch} {attention} {precision} dispatch",
                  file=sys.stderr, flush=True)
            try:
                dispatch.append(dispatch_one(model_name, dispatch_batch, attention, precision))
            except Exception as exc:  # record, keep going
                dispatch.append({"attention": attention, "precision": precision,
                                 "error": f"{type(exc).__name__}: {exc}"})
    return {
        "schema": SCHEMA,
        "model": model_name,
        "batch": batch,
        "seq": seq,
        "parameters": params,
        "torch_version": torch.__version__,
        "command": command,
        "date": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "device": "meta",
        "device_detail": ("torch FakeTensorMode: tensors report device cpu (CPU kernels, CPU autocast "
                          "with dtype bfloat16 for 'bf16-autocast'), storage on meta, no data computed"),
        "conventions": {
            "flops": "torch.utils.flop_counter.FlopCounterMode: 2 FLOPs per multiply-add; only "
                     "mm/addmm/bmm/baddbmm/convolution/SDPA ops; causal attention not halved; "
                     "SDPA forward 4*B*h*Lq*Lk*dh, SDPA backward 2.5x forward (recompute of scores)",
            "attention_note": ("flash2 on this CPU-semantics run selects "
                               "_scaled_dot_product_flash_attention_for_cpu (the CUDA flash kernel "
                               "cannot be chosen without a GPU); its FLOP formula and saved tensors "
                               "(q, k, v, out, fp32 logsumexp) match the CUDA flash kernel's"),
            "saved_bytes": ("bytes of distinct storages packed by saved_tensors_hooks during the "
                            "forward. activation_bytes excludes parameters (parameter_bytes) and "
                            "the bf16 copies of module weights that autocast makes and autograd "
                            "keeps (autocast_weight_copy_bytes: a saved tensor with the running "
                            "module's weight shape, or its transpose, in another dtype). by_scope, block0_by_module "
                            "and by_dtype break down activation_bytes. undeduplicated_bytes sums "
                            "numel*element_size over every packed tensor, parameters included"),
            "scope": "module running when the tensor was saved; '(model)' = outside any submodule "
                     "(loss, input mixing)",
            "training_step": "loss forward + backward only; no optimizer",
            "dispatch": ("eager ATen ops of a step (fp32 and bf16-autocast) as a TorchDispatchMode sees them "
                         "(below autograd and autocast): ops that launch device code only (views, "
                         "allocations and metadata queries excluded); bytes = sum over each op's "
                         "tensor inputs and outputs of numel * element size, capped by the storage "
                         "(gathers: only the selected rows of the table). "
                         "CPU semantics: one op here can be several CUDA kernels (flash backward, "
                         "LayerNorm backward, embedding backward, memsets of split reductions)"),
        },
        "runs": runs,
        "dispatch_batch": dispatch_batch,
        "dispatch": dispatch,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", choices=sorted(DEFAULT_BATCH), action="append",
                    help="model(s) to count (default: all)")
    ap.add_argument("--batch", type=int, help="batch size (default: jit-b4 2, the others 1)")
    ap.add_argument("--out", help="output file (only with a single --model)")
    ap.add_argument("--out-dir", default=os.path.join(HERE, "fixtures"),
                    help="directory for <model>.json (default: tests/reference/fixtures)")
    args = ap.parse_args(argv)
    models = args.model or sorted(DEFAULT_BATCH)
    if args.out and len(models) != 1:
        ap.error("--out needs exactly one --model")
    command = "python3 " + " ".join(shlex.quote(a) for a in [os.path.relpath(sys.argv[0])] + sys.argv[1:])
    for name in models:
        result = count_model(name, args.batch or DEFAULT_BATCH[name], command)
        path = args.out or os.path.join(args.out_dir, f"{name}.json")
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path + ".tmp", "w") as f:
            json.dump(result, f, indent=1)
            f.write("\n")
        os.replace(path + ".tmp", path)
        print(f"[count] wrote {path}", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
