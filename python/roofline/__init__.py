"""roofline from Python: how fast a transformer trains on a GPU fleet, and why.

Every function here is a command of the ``roofline`` CLI, run in-process by the same Rust core:
keyword arguments are the CLI's options (``gpus_per_node`` is ``--gpus-per-node``), an argument
left at ``None`` takes the CLI's default, and results carry the keys and units of the CLI's
``--json`` output (seconds, bytes, FLOP/s, USD). The options are handed to the CLI's own parser,
so their names, defaults, number suffixes (``train_tokens="1T"``) and checks are the CLI's.

    >>> import roofline
    >>> e = roofline.estimate(batch=32)
    >>> e.step_time_s, e.mfu
    >>> df = roofline.sweep(vary={"batch": [8, 16, 32], "gpu": ["h100-sxm", "h200-sxm"]})

A model or GPU is an embedded name (``roofline.models()``, ``roofline.gpus()``), a path to a TOML
spec or a Hugging Face ``config.json``, or a dict with a TOML spec's fields. Bad input raises
:class:`SpecError` (a ``ValueError``) with the CLI's message; a bug raises :class:`InternalError`.
"""

from __future__ import annotations

import atexit
import hashlib
import html
import json as _json
import os
import shutil
import tempfile
from typing import Any, Dict, Iterator, List, Mapping, Optional, Sequence, Union

from . import _native
from ._native import InternalError, SpecError

__version__: str = _native.__version__

__all__ = [
    "Chart",
    "Estimate",
    "InternalError",
    "Result",
    "SpecError",
    "defaults",
    "estimate",
    "gpus",
    "load_gpu",
    "load_model",
    "memory",
    "models",
    "ops",
    "plot_roofline",
    "search",
    "sweep",
]

#: A model or GPU: an embedded name, a path to a TOML spec (or a Hugging Face config.json for a
#: model), or a dict with the TOML spec's fields.
Spec = Union[str, "os.PathLike[str]", Mapping[str, Any]]
Number = Union[int, float, str]

_spec_dir: Optional[str] = None


def _dict_spec(kind: str, fields: Mapping[str, Any]) -> str:
    """A dict spec checked as a spec file is, written once to a private TOML file; its path."""
    global _spec_dir
    label = f"<{kind} dict>"
    text = _native.spec_toml(kind, _json.dumps(fields), label)
    if _spec_dir is None:
        _spec_dir = tempfile.mkdtemp(prefix="roofline-specs-")
        atexit.register(shutil.rmtree, _spec_dir, True)
    digest = hashlib.sha256(text.encode()).hexdigest()[:20]
    path = os.path.join(_spec_dir, f"{kind}-{digest}.toml")
    if not os.path.exists(path):
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    return path


def _spec(kind: str, value: Any) -> Any:
    if isinstance(value, Mapping):
        return _dict_spec(kind, value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return value


def _word(value: Any) -> str:
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    return str(value)


def _words(command: Sequence[str], options: Mapping[str, Any]) -> List[str]:
    """The command line of `command` with `options`: None is left out (the CLI's default), True
    is a flag, anything else ``--name=value``."""
    words = list(command)
    for name, value in options.items():
        if value is None or value is False:
            continue
        if name in ("model", "gpu"):
            value = _spec(name, value)
        flag = "--" + name.replace("_", "-")
        words.append(flag if value is True else f"{flag}={_word(value)}")
    return words


def defaults(command: str = "estimate") -> Dict[str, Optional[str]]:
    """The CLI's default of every option of `command` (as the CLI's help shows it): what an
    argument left at ``None`` takes. ``command`` may be "plot roofline"."""
    return {o["name"]: o["default"] for o in _native.options(command.split())}


def _document(*command: str, skip: Sequence[str] = ()):
    """Appends the CLI's help and default of every option of `command` to a docstring."""

    def wrap(f):
        lines = ["", "", "Options (the CLI's; ``None`` takes the default shown):", ""]
        for o in _native.options(list(command)):
            if o["name"] in skip:
                continue
            default = "" if o["flag"] or o["default"] is None else f" Default: {o['default']}."
            help_text = " ".join((o["help"] or "").split()).rstrip(".") + "."
            lines.append(f"    {o['name']}: {help_text}{default}")
        f.__doc__ = (f.__doc__ or "") + "\n".join(lines) + "\n"
        return f

    return wrap


class Result(Mapping[str, Any]):
    """A command's JSON result: the same keys and values as the CLI's ``--json``, read as
    attributes (``r.step_time_s``) or items (``r["step_time_s"]``)."""

    def __init__(self, data: Dict[str, Any]):
        self._data = data

    def __getattr__(self, name: str) -> Any:
        try:
            return self.__dict__["_data"][name]
        except KeyError:
            raise AttributeError(
                f"{type(self).__name__} has no field {name!r} (fields: {', '.join(self._data)})"
            ) from None

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __dir__(self) -> List[str]:
        return sorted(set(super().__dir__()) | set(self._data))

    def to_dict(self) -> Dict[str, Any]:
        """The result as plain dicts and lists: equal to ``json.loads`` of the CLI's ``--json``."""
        return _json.loads(_json.dumps(self._data))

    def __repr__(self) -> str:
        scalars = [f"{k}={v!r}" for k, v in self._data.items() if not isinstance(v, (dict, list))]
        return f"{type(self).__name__}({', '.join(scalars[:8])}{', ...' if len(scalars) > 8 else ''})"

    def _repr_html_(self) -> str:
        rows = []
        for k, v in self._data.items():
            if isinstance(v, (dict, list)):
                v = f"{type(v).__name__} of {len(v)}"
            elif isinstance(v, float):
                v = f"{v:.6g}"
            rows.append(f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                        f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>")
        return f"<table><caption>{type(self).__name__}</caption>{''.join(rows)}</table>"


class Estimate(Result):
    """``roofline estimate --json`` as an object: ``step_time_s``, ``samples_per_s``, ``mfu``,
    ``memory_per_gpu_bytes``, ``fits``, ``breakdown``, ``findings``... (``dir(e)`` lists them)."""

    _MAIN = (
        "model", "gpu", "gpus", "batch_per_gpu", "attention", "precision", "mode", "zero",
        "step_time_s", "forward_s", "backward_s", "optimizer_s", "comm_exposed_s",
        "samples_per_s", "tokens_per_s", "mfu", "hfu", "memory_per_gpu_bytes",
        "memory_capacity_bytes", "fits", "max_batch", "price_per_gpu_hour",
        "train_time_s", "gpu_hours", "cost",
    )

    def _repr_html_(self) -> str:
        def cell(k: str, v: Any) -> str:
            if isinstance(v, float):
                if k.endswith("_s") and v < 1:
                    v = f"{v * 1e3:.4g} ms"
                elif k.endswith("_bytes"):
                    v = f"{v / 2**30:.4g} GiB"
                else:
                    v = f"{v:.6g}"
            return (f"<tr><th style='text-align:left'>{html.escape(k)}</th>"
                    f"<td style='text-align:left'>{html.escape(str(v))}</td></tr>")

        rows = [cell(k, self._data[k]) for k in self._MAIN if self._data.get(k) is not None]
        findings = "".join(f"<li>{html.escape(str(f.get('message', f)) if isinstance(f, dict) else str(f))}</li>"
                           for f in self._data.get("findings", []))
        fit = "" if self._data.get("fits", True) else "<p><b>DOES NOT FIT</b></p>"
        return (f"<div>{fit}<table><caption>roofline estimate</caption>{''.join(rows)}</table>"
                + (f"<ul>{findings}</ul>" if findings else "") + "</div>")


@_document("estimate", skip=("json", "markdown", "ops"))
def estimate(
    *,
    model: Optional[Spec] = None,
    gpu: Optional[Spec] = None,
    gpus: Optional[Number] = None,
    gpus_per_node: Optional[Number] = None,
    batch: Optional[Number] = None,
    seq: Optional[Number] = None,
    attention: Optional[str] = None,
    precision: Optional[str] = None,
    checkpointing: Optional[str] = None,
    loss: Optional[str] = None,
    mode: Optional[str] = None,
    ema: Optional[int] = None,
    ep: Optional[Number] = None,
    tp: Optional[Number] = None,
    sp: Optional[bool] = None,
    pp: Optional[Number] = None,
    vpp: Optional[Number] = None,
    cp: Optional[Number] = None,
    zero: Optional[int] = None,
    fsdp: Optional[bool] = None,
    shard_group: Optional[Number] = None,
    tp_overlap: Optional[bool] = None,
    nvls: Optional[bool] = None,
    grad_accum: Optional[Number] = None,
    global_batch: Optional[Number] = None,
    inter_node_gbps: Optional[float] = None,
    network: Optional[Union[str, "os.PathLike[str]"]] = None,
    calibration: Optional[Union[str, "os.PathLike[str]"]] = None,
    workspace_gib: Optional[float] = None,
    train_samples: Optional[Number] = None,
    train_tokens: Optional[Number] = None,
    tokens_per_sample: Optional[Number] = None,
    epochs: Optional[float] = None,
    price_per_gpu_hour: Optional[float] = None,
    interval: Optional[bool] = None,
) -> Estimate:
    """Step time, throughput, MFU, memory, training time and cost of one training run:
    ``roofline estimate --json`` (default: the planned JiT-B/4 run, batch 64 on 8 x H200)."""
    return Estimate(_native.json(_words(["estimate"], locals())))


@_document("ops", skip=("json",))
def ops(
    *,
    model: Optional[Spec] = None,
    batch: Optional[Number] = None,
    seq: Optional[Number] = None,
    attention: Optional[str] = None,
    precision: Optional[str] = None,
    checkpointing: Optional[str] = None,
    loss: Optional[str] = None,
    ema: Optional[int] = None,
    ep: Optional[Number] = None,
    tp: Optional[Number] = None,
    sp: Optional[bool] = None,
    pp: Optional[Number] = None,
    vpp: Optional[Number] = None,
    cp: Optional[Number] = None,
) -> Result:
    """Per-op FLOPs, bytes and arithmetic intensity of one training step on one GPU:
    ``roofline ops --json`` (``r.ops`` is the list of ops)."""
    return Result(_native.json(_words(["ops"], locals())))


@_document("memory", skip=("json",))
def memory(
    *,
    model: Optional[Spec] = None,
    gpu: Optional[Spec] = None,
    gpus: Optional[Number] = None,
    batch: Optional[Number] = None,
    seq: Optional[Number] = None,
    attention: Optional[str] = None,
    precision: Optional[str] = None,
    checkpointing: Optional[str] = None,
    loss: Optional[str] = None,
    mode: Optional[str] = None,
    ema: Optional[int] = None,
    ep: Optional[Number] = None,
    tp: Optional[Number] = None,
    sp: Optional[bool] = None,
    pp: Optional[Number] = None,
    vpp: Optional[Number] = None,
    cp: Optional[Number] = None,
    zero: Optional[int] = None,
    workspace_gib: Optional[float] = None,
) -> Result:
    """Memory footprint per GPU and the largest batch that fits: ``roofline memory --json``."""
    return Result(_native.json(_words(["memory"], locals())))


@_document("search", skip=("json", "csv"))
def search(
    *,
    global_batch: Number,
    model: Optional[Spec] = None,
    gpu: Optional[Spec] = None,
    gpus: Optional[Number] = None,
    gpus_per_node: Optional[Number] = None,
    objective: Optional[str] = None,
    top: Optional[Number] = None,
    max_tp: Optional[Number] = None,
    max_pp: Optional[Number] = None,
    max_vpp: Optional[Number] = None,
    max_cp: Optional[Number] = None,
    batch: Optional[Number] = None,
    seq: Optional[Number] = None,
    attention: Optional[str] = None,
    precision: Optional[str] = None,
    checkpointing: Optional[str] = None,
    loss: Optional[str] = None,
    mode: Optional[str] = None,
    ema: Optional[int] = None,
    ep: Optional[Number] = None,
    tp: Optional[Number] = None,
    sp: Optional[bool] = None,
    pp: Optional[Number] = None,
    vpp: Optional[Number] = None,
    cp: Optional[Number] = None,
    zero: Optional[int] = None,
    fsdp: Optional[bool] = None,
    shard_group: Optional[Number] = None,
    tp_overlap: Optional[bool] = None,
    nvls: Optional[bool] = None,
    grad_accum: Optional[Number] = None,
    inter_node_gbps: Optional[float] = None,
    network: Optional[Union[str, "os.PathLike[str]"]] = None,
    calibration: Optional[Union[str, "os.PathLike[str]"]] = None,
    workspace_gib: Optional[float] = None,
    train_samples: Optional[Number] = None,
    train_tokens: Optional[Number] = None,
    tokens_per_sample: Optional[Number] = None,
    epochs: Optional[float] = None,
    price_per_gpu_hour: Optional[float] = None,
) -> Result:
    """The best executions (tp, sp, pp, vpp, cp, dp, micro-batch, recompute, ZeRO) of a model on a
    fleet at a global batch, ranked: ``roofline search --json`` (``r.rows`` are the ranking).
    The execution settings are searched: giving tp, pp, zero... is refused, as by the CLI."""
    return Result(_native.json(_words(["search"], locals())))


def models() -> List[Dict[str, Any]]:
    """The embedded models (``roofline models --json``)."""
    return _native.json(["models"])


def gpus() -> List[Dict[str, Any]]:
    """The embedded GPUs (``roofline gpus --json``)."""
    return _native.json(["gpus"])


def load_model(model: Spec) -> Dict[str, Any]:
    """A model spec's fields (as its TOML has them): an embedded name, a TOML path, a Hugging
    Face config.json path, or a dict (checked as a spec file is)."""
    return _native.load_model(_spec("model", model))


def load_gpu(gpu: Spec) -> Dict[str, Any]:
    """A GPU spec's fields (as its TOML has them): an embedded name, a TOML path or a dict."""
    return _native.load_gpu(_spec("gpu", gpu))


def _vary_word(name: str, values: Union[str, Sequence[Any]]) -> str:
    if isinstance(values, str):
        spec = values
    else:
        items = [_word(_spec(name, v) if name in ("model", "gpu") else v) for v in values]
        bad = [v for v in items if "," in v]
        if bad:
            raise SpecError(f"--vary {name}: value {bad[0]!r} contains a comma")
        spec = ",".join(items)
    return f"{name}={spec}"


def _columns_to_frame(columns: list):
    import numpy as np
    import pandas as pd

    data = {}
    for name, kind, buf, extra in columns:
        if kind == "text":
            codes = np.frombuffer(buf, dtype=np.int64)
            data[name] = pd.Categorical.from_codes(codes, categories=list(extra))
            continue
        dtype = {"float": np.float64, "int": np.int64, "bool": np.bool_}[kind]
        values = np.frombuffer(buf, dtype=dtype)
        absent = np.frombuffer(extra, dtype=np.bool_)
        if not absent.any():
            data[name] = values
        elif kind == "float":
            values = values.copy()
            values[absent] = np.nan
            data[name] = values
        elif kind == "int":
            data[name] = pd.arrays.IntegerArray(values.copy(), absent.copy())
        else:
            data[name] = pd.arrays.BooleanArray(values.copy(), absent.copy())
    return pd.DataFrame(data, copy=False)


def _columns_to_rows(columns: list) -> List[Dict[str, Any]]:
    from array import array

    names, lists = [], []
    for name, kind, buf, extra in columns:
        if kind == "text":
            labels = list(extra)
            lists.append([labels[c] if c >= 0 else None for c in array("q", buf)])
        else:
            values = array({"float": "d", "int": "q", "bool": "B"}[kind], buf).tolist()
            if kind == "bool":
                values = [bool(v) for v in values]
            lists.append([None if a else v for v, a in zip(values, extra)])
        names.append(name)
    return [dict(zip(names, row)) for row in zip(*lists)]


@_document("sweep", skip=("vary", "out", "plot", "metric"))
def sweep(
    vary: Mapping[str, Union[str, Sequence[Any]]],
    *,
    frame: Optional[bool] = None,
    model: Optional[Spec] = None,
    gpu: Optional[Spec] = None,
    gpus: Optional[Number] = None,
    gpus_per_node: Optional[Number] = None,
    batch: Optional[Number] = None,
    seq: Optional[Number] = None,
    attention: Optional[str] = None,
    precision: Optional[str] = None,
    checkpointing: Optional[str] = None,
    loss: Optional[str] = None,
    mode: Optional[str] = None,
    ema: Optional[int] = None,
    ep: Optional[Number] = None,
    tp: Optional[Number] = None,
    sp: Optional[bool] = None,
    pp: Optional[Number] = None,
    vpp: Optional[Number] = None,
    cp: Optional[Number] = None,
    zero: Optional[int] = None,
    fsdp: Optional[bool] = None,
    shard_group: Optional[Number] = None,
    tp_overlap: Optional[bool] = None,
    nvls: Optional[bool] = None,
    grad_accum: Optional[Number] = None,
    global_batch: Optional[Number] = None,
    inter_node_gbps: Optional[float] = None,
    network: Optional[Union[str, "os.PathLike[str]"]] = None,
    calibration: Optional[Union[str, "os.PathLike[str]"]] = None,
    workspace_gib: Optional[float] = None,
    train_samples: Optional[Number] = None,
    train_tokens: Optional[Number] = None,
    tokens_per_sample: Optional[Number] = None,
    epochs: Optional[float] = None,
    price_per_gpu_hour: Optional[float] = None,
    fits_only: Optional[bool] = None,
):
    """The cartesian product of `vary` over the fixed settings: ``roofline sweep``, one row per
    configuration (last parameter fastest), columns and values as the CLI's ``--out x.json``
    rows (an invalid configuration has ``error`` set and no numbers).

    ``vary`` maps a parameter to a list of values or a range spec as the CLI takes it
    (``"8..512"`` doubles, ``"8..512:8"`` steps by 8, ``"8..512:x4"`` multiplies by 4), e.g.
    ``{"batch": [8, 16, 32], "gpu": ["h100-sxm", "h200-sxm"]}``. Parameters: model, gpu, seq,
    batch, attention, mode, precision, checkpointing, gpus, grad_accum, zero, ema, ep, tp, pp,
    vpp, cp, price. It is evaluated in parallel in Rust, without the GIL. ``fits_only=True``
    keeps the configurations that fit in memory, as the CLI's ``--fits-only``; the CLI's
    ``--objective``/``--top`` summary is a sort of the result here, e.g.
    ``df[df.fits].nsmallest(5, "train_cost_usd")``.

    Returns a pandas DataFrame when pandas is installed (``frame=None``) or ``frame=True``
    (absent numbers are NaN or <NA>, text columns categorical; ``df.attrs["roofline_sweep"]``
    has the varied values, the number of configurations and of invalid ones, and the
    evaluation's seconds), else a list of dicts (``None`` where the CLI's JSON has null).
    """
    fixed = {k: v for k, v in locals().items() if k not in ("vary", "frame", "fits_only")}
    if not isinstance(vary, Mapping) or not vary:
        raise SpecError("vary: give at least one parameter, e.g. vary={'batch': [8, 16]}")
    words = [_vary_word(name, values) for name, values in vary.items()]
    if frame is None:
        try:
            import pandas  # noqa: F401

            frame = True
        except ImportError:
            frame = False
    summary, columns = _native.sweep(_words([], fixed), words)
    if not frame:
        rows = _columns_to_rows(columns)
        return [r for r in rows if r["fits"] is True] if fits_only else rows
    df = _columns_to_frame(columns)
    if fits_only:
        df = df[df["fits"].eq(True).fillna(False).astype(bool)].reset_index(drop=True)
    df.attrs["roofline_sweep"] = summary
    return df


class Chart:
    """A chart: shown inline in Jupyter (SVG); ``.save("x.png")`` or ``.save("x.svg")``."""

    def __init__(self, svg: str, render):
        self.svg = svg
        self._render = render

    def _repr_svg_(self) -> str:
        return self.svg

    def save(self, path: Union[str, "os.PathLike[str]"]) -> None:
        """Writes the chart; the format is the extension's (.svg or .png)."""
        path = os.fspath(path)
        ext = os.path.splitext(path)[1].lower()
        if ext == ".svg":
            data = self.svg.encode()
        elif ext == ".png":
            data = self._render("png")
        else:
            raise SpecError(f"{path}: a chart is saved as .svg or .png")
        with open(path, "wb") as f:
            f.write(data)

    def __repr__(self) -> str:
        return f"Chart(svg of {len(self.svg)} characters)"


@_document("plot", "roofline", skip=("out",))
def plot_roofline(
    *,
    measured: Optional[Union[str, "os.PathLike[str]"]] = None,
    model: Optional[Spec] = None,
    gpu: Optional[Spec] = None,
    gpus: Optional[Number] = None,
    gpus_per_node: Optional[Number] = None,
    batch: Optional[Number] = None,
    seq: Optional[Number] = None,
    attention: Optional[str] = None,
    precision: Optional[str] = None,
    checkpointing: Optional[str] = None,
    loss: Optional[str] = None,
    mode: Optional[str] = None,
    ema: Optional[int] = None,
    ep: Optional[Number] = None,
    tp: Optional[Number] = None,
    sp: Optional[bool] = None,
    pp: Optional[Number] = None,
    vpp: Optional[Number] = None,
    cp: Optional[Number] = None,
    zero: Optional[int] = None,
    fsdp: Optional[bool] = None,
    shard_group: Optional[Number] = None,
    tp_overlap: Optional[bool] = None,
    nvls: Optional[bool] = None,
    grad_accum: Optional[Number] = None,
    global_batch: Optional[Number] = None,
    inter_node_gbps: Optional[float] = None,
    network: Optional[Union[str, "os.PathLike[str]"]] = None,
    calibration: Optional[Union[str, "os.PathLike[str]"]] = None,
    workspace_gib: Optional[float] = None,
    train_samples: Optional[Number] = None,
    train_tokens: Optional[Number] = None,
    tokens_per_sample: Optional[Number] = None,
    epochs: Optional[float] = None,
    price_per_gpu_hour: Optional[float] = None,
) -> Chart:
    """Every op of one training step on the GPU's roofline (``roofline plot roofline``), with
    the kernels of a ``roofline bench`` file beside them when `measured` names one."""
    fixed = {k: v for k, v in locals().items() if k != "measured"}
    words = _words([], fixed)
    where = None if measured is None else os.fspath(measured)

    def render(fmt: str) -> bytes:
        return _native.plot_roofline(words, where, fmt)

    return Chart(render("svg").decode(), render)
