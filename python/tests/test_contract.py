"""One contract: every function returns what the CLI's --json prints for the same settings."""

import json

import pytest
import roofline
from conftest import REPO, cli, cli_json


def flags(options):
    """The CLI words of keyword options, written independently of the package's own."""
    words = []
    for k, v in options.items():
        flag = "--" + k.replace("_", "-")
        if v is True:
            words.append(flag)
        else:
            words += [flag, str(v)]
    return words


ESTIMATES = [
    {},
    {"batch": 32, "gpu": "h100-sxm", "attention": "flash2", "mode": "compiled"},
    {"model": "gpt2-124m", "gpus": 16, "zero": 2, "train_tokens": "1T", "price_per_gpu_hour": 2.25},
    {"model": "llama3-8b", "gpus": 64, "tp": 4, "sp": True, "pp": 2, "batch": 1,
     "global_batch": 512, "attention": "flash3", "checkpointing": "selective"},
    {"model": "mixtral-8x7b", "gpus": 32, "ep": 8, "fsdp": True, "attention": "flash2", "batch": 2,
     "network": "ib-hdr-8x200"},
    {"model": "jit-l16", "batch": 1024, "gpu": "a100-sxm-80gb"},  # does not fit: fixes_to_fit
    {"model": str(REPO / "tests/hf/qwen2-1.5b.json"), "seq": 2048, "batch": 4},
    {"model": str(REPO / "models/gpt2-124m.toml"), "gpu": str(REPO / "models/hardware/b200.toml"),
     "precision": "fp8", "batch": 16, "interval": True},
]


@pytest.mark.parametrize("options", ESTIMATES, ids=lambda o: " ".join(flags(o)) or "defaults")
def test_estimate_equals_cli_json(options):
    py = roofline.estimate(**options)
    assert py.to_dict() == cli_json("estimate", "--json", *flags(options))
    assert py.step_time_s == py["step_time_s"] > 0


def test_default_step_time_is_the_cli_default():
    assert roofline.estimate().step_time_s == cli_json("estimate", "--json")["step_time_s"]


def test_ops_memory_search_models_gpus_equal_cli_json():
    o = {"model": "gpt2-124m", "batch": 8, "attention": "flash2"}
    assert roofline.ops(**o).to_dict() == cli_json("ops", "--json", *flags(o))
    m = {"model": "llama3-8b", "gpu": "h100-sxm", "batch": 2, "zero": 3, "gpus": 16,
         "checkpointing": "full"}
    assert roofline.memory(**m).to_dict() == cli_json("memory", "--json", *flags(m))
    s = {"model": "gpt2-124m", "gpus": 16, "global_batch": 256, "top": 5, "objective": "cost"}
    r = roofline.search(**s)
    assert r.to_dict() == cli_json("search", "--json", *flags(s))
    assert roofline.models() == cli_json("models", "--json")
    assert roofline.gpus() == cli_json("gpus", "--json")


def test_dict_specs_equal_their_files():
    model = roofline.load_model("gpt2-124m")
    gpu = roofline.load_gpu("h100-sxm")
    by_dict = roofline.estimate(model=model, gpu=gpu, batch=8).to_dict()
    by_name = roofline.estimate(model="gpt2-124m", gpu="h100-sxm", batch=8).to_dict()
    # The first assumption names the file the model's [defaults] came from: a temporary file
    # for a dict, models/gpt2-124m.toml by name; the rest is equal.
    first = [d["assumptions"].pop(0) for d in (by_dict, by_name)]
    assert all(f.startswith("not given, from the model file's [defaults]") for f in first)
    assert first[0].split("): ", 1)[1] == first[1].split("): ", 1)[1]
    assert by_dict == by_name
    by_dict = roofline.estimate(model=model, gpu=gpu, batch=8)
    wider = dict(model, name="gpt2-wide", transformer=dict(model["transformer"], width=1024, heads=16))
    assert roofline.estimate(model=wider, batch=8).step_time_s > by_dict.step_time_s


def test_sweep_rows_equal_cli_sweep_json(tmp_path):
    vary = {"batch": [8, 16, 4096], "gpu": ["h100-sxm", "h200-sxm"], "attention": "naive,flash2"}
    fixed = {"model": "gpt2-124m", "gpus": 8, "train_samples": "10M"}
    rows = roofline.sweep(vary, frame=False, **fixed)
    out = tmp_path / "s.json"
    words = [w for k, v in vary.items()
             for w in ("--vary", f"{k}={v if isinstance(v, str) else ','.join(map(str, v))}")]
    cli("sweep", *words, *flags(fixed), "--out", str(out))
    expected = json.loads(out.read_text())["rows"]
    assert rows == expected
    assert len(rows) == 12 and any(r["error"] for r in rows) is False
    assert any(r["fits"] is False for r in rows)


def test_sweep_fits_only_equals_cli(tmp_path):
    vary = {"batch": [1, 2, 4, 8], "checkpointing": ["none", "full"]}
    fixed = {"model": "llama2-7b", "gpu": "h100-sxm", "zero": 3, "attention": "flash2"}
    rows = roofline.sweep(vary, frame=False, fits_only=True, **fixed)
    out = tmp_path / "f.json"
    words = [w for k, v in vary.items() for w in ("--vary", f"{k}={','.join(map(str, v))}")]
    cli("sweep", *words, *flags(fixed), "--fits-only", "--out", str(out))
    expected = json.loads(out.read_text())["rows"]
    assert rows == expected and 0 < len(rows) < 8
    pd = pytest.importorskip("pandas")
    df = roofline.sweep(vary, fits_only=True, **fixed)
    assert isinstance(df, pd.DataFrame) and len(df) == len(rows) and bool(df["fits"].all())


def test_sweep_frame_equals_rows():
    pd = pytest.importorskip("pandas")
    vary = {"seq": [64, 128, 100000], "batch": "1..64:x4"}
    df = roofline.sweep(vary, model="gpt2-124m")
    rows = roofline.sweep(vary, model="gpt2-124m", frame=False)
    assert isinstance(df, pd.DataFrame) and len(df) == len(rows) == 12
    assert list(df.columns) == list(rows[0])
    for i, r in enumerate(rows):
        for k, v in r.items():
            got = df[k].iloc[i]
            if v is None:
                assert pd.isna(got), (i, k, got)
            else:
                assert got == v, (i, k, got, v)
    # seq 100000 is beyond GPT-2's positions: those rows carry the error and no numbers.
    assert df["error"].notna().sum() == 4 and df["step_time_s"].isna().sum() == 4


def test_sweep_of_100k_configurations_returns_a_data_frame():
    pd = pytest.importorskip("pandas")
    vary = {"batch": "1..1000:1", "seq": "64..1024:64", "attention": ["naive", "flash2"],
            "mode": ["eager", "compiled", "graphs"], "gpu": ["h100-sxm"]}
    # 1000 x 16 x 2 x 3 = 96,000; plus a second GPU: 192,000
    vary["gpu"] = ["h100-sxm", "h200-sxm"]
    df = roofline.sweep(vary, model="gpt2-124m")
    assert isinstance(df, pd.DataFrame)
    assert len(df) == 192_000
    assert df["step_time_s"].notna().all() and (df["step_time_s"] > 0).all()
    # Any row is the estimate of its settings.
    row = df.iloc[123_457]
    e = roofline.estimate(model="gpt2-124m", gpu=row["gpu"], batch=int(row["batch_per_gpu"]),
                          seq=int(row["seq"]), attention=row["attention"], mode=row["mode"])
    assert row["step_time_s"] == e.step_time_s and row["mfu"] == e.mfu


def test_plot_roofline_is_the_cli_chart(tmp_path):
    chart = roofline.plot_roofline(model="gpt2-124m", gpu="h100-sxm", batch=8)
    out = tmp_path / "c.svg"
    cli("plot", "roofline", "--model", "gpt2-124m", "--gpu", "h100-sxm", "--batch", "8",
        "--out", str(out))
    assert chart._repr_svg_() == out.read_text()
    png = tmp_path / "c.png"
    chart.save(png)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_defaults_are_the_cli_help_defaults():
    d = roofline.defaults()
    help_text = cli("estimate", "--help").stdout
    for name in ("model", "gpu", "gpus", "zero"):
        assert f"[default: {d[name]}]" in help_text, name
    # These come from the model file's [defaults] (else roofline's own): no fixed default.
    for name in ("batch", "attention", "precision", "mode"):
        assert d[name] is None, name
    assert "[default: the model file's [defaults], else 64]" in " ".join(help_text.split())
    assert roofline.estimate().batch_per_gpu == 64
    assert roofline.estimate().mode == "compiled"


@pytest.mark.parametrize(
    "function,command,skip",
    [
        (roofline.estimate, ["estimate"], {"json", "markdown", "ops"}),
        (roofline.ops, ["ops"], {"json"}),
        (roofline.memory, ["memory"], {"json"}),
        (roofline.search, ["search"], {"json", "csv"}),
        # --objective/--top print a summary of the written table: a sort of the DataFrame here.
        (roofline.sweep, ["sweep"], {"out", "plot", "metric", "objective", "top"}),
        (roofline.plot_roofline, ["plot", "roofline"], {"out"}),
    ],
)
def test_keywords_are_the_cli_options(function, command, skip):
    import inspect

    params = set(inspect.signature(function).parameters) - {"frame"}
    cli_options = {o["name"] for o in roofline._native.options(command)} - skip
    assert params == cli_options
