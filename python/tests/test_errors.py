"""Errors: the CLI's exit-2 message as a SpecError naming the file, field and value; nothing a
caller passes crashes the interpreter."""

import random

import pytest
import roofline
from conftest import REPO, cli


def cli_error(*args):
    r = cli(*args, check=False)
    assert r.returncode == 2, r
    return r.stderr


def test_bad_field_of_a_spec_file(tmp_path):
    text = (REPO / "models/gpt2-124m.toml").read_text()
    assert "heads = 12" in text
    bad = tmp_path / "bad.toml"
    bad.write_text(text.replace("heads = 12", "heads = 0"))
    with pytest.raises(roofline.SpecError) as e:
        roofline.estimate(model=str(bad))
    stderr = cli_error("estimate", "--model", str(bad))
    assert stderr == f"error: {e.value}\n"
    assert isinstance(e.value, ValueError)
    assert (e.value.kind, e.value.file, e.value.field, e.value.value) == (
        "spec", str(bad), "transformer.heads", "0")
    assert str(bad) in str(e.value) and "transformer.heads" in str(e.value)


def test_bad_field_of_a_dict_spec():
    model = roofline.load_model("gpt2-124m")
    model["transformer"]["heads"] = 0
    with pytest.raises(roofline.SpecError) as e:
        roofline.estimate(model=model)
    assert (e.value.file, e.value.field, e.value.value) == ("<model dict>", "transformer.heads", "0")
    assert str(e.value).startswith("<model dict>: field `transformer.heads`: ")
    with pytest.raises(roofline.SpecError) as e:
        roofline.load_gpu({"name": "x"})
    assert e.value.file == "<gpu dict>"


@pytest.mark.parametrize(
    "options,words,field,value",
    [
        ({"batch": -1}, ["--batch", "-1"], "batch", "-1"),
        ({"attention": "flash9"}, ["--attention", "flash9"], "attention", "flash9"),
        ({"gpus": "1.5"}, ["--gpus", "1.5"], "gpus", "1.5"),
        ({"zero": 3, "fsdp": True}, ["--zero", "3", "--fsdp"], ("zero", "fsdp"), None),
        ({"batch": True}, ["--batch"], "batch", None),
    ],
)
def test_bad_option_values(options, words, field, value):
    with pytest.raises(roofline.SpecError) as e:
        roofline.estimate(**options)
    assert e.value.kind == "option" and e.value.value == value
    assert e.value.field in (field if isinstance(field, tuple) else (field,))
    stderr = cli_error("estimate", *words)
    # The CLI's message, less its usage line and --help tip.
    assert str(e.value).splitlines()[0] in stderr


@pytest.mark.parametrize(
    "options,words,kind",
    [
        ({"model": "gpt9"}, ["--model", "gpt9"], "unknown_name"),
        ({"gpus": 12}, ["--gpus", "12"], "invalid"),
        ({"tokens_per_sample": 100}, ["--tokens-per-sample", "100"], "invalid"),
        ({"model": "/nonexistent/m.toml"}, ["--model", "/nonexistent/m.toml"], "io"),
        ({"model": "gpt2-124m", "seq": 100000}, ["--model", "gpt2-124m", "--seq", "100000"], None),
    ],
)
def test_errors_have_the_cli_message(options, words, kind):
    with pytest.raises(roofline.SpecError) as e:
        roofline.estimate(**options)
    assert cli_error("estimate", *words) == f"error: {e.value}\n"
    if kind:
        assert e.value.kind == kind
    if kind == "unknown_name":
        assert (e.value.field, e.value.value) == ("model", "gpt9")


def test_sweep_and_search_errors():
    with pytest.raises(roofline.SpecError, match="--vary `batch=0..4`"):
        roofline.sweep({"batch": "0..4"})
    with pytest.raises(roofline.SpecError, match="unknown sweep parameter"):
        roofline.sweep({"layers": [1, 2]})
    with pytest.raises(roofline.SpecError, match="search does not take --tp"):
        roofline.search(global_batch=64, tp=2)


def test_a_panic_is_an_exception():
    with pytest.raises(roofline.InternalError, match="a test panic"):
        roofline._native._panic_for_tests()
    # The interpreter and the extension carry on.
    assert roofline.estimate().step_time_s > 0


def test_nothing_crashes_the_interpreter():
    """Random settings, many nonsensical: each call returns or raises SpecError."""
    rng = random.Random(17)
    values = {
        "batch": [0, 1, 7, 2**40, 2**70, -3, "1K", "x"],
        "gpus": [0, 1, 3, 8, 2**30, "1K"],
        "seq": [0, 1, 17, 2**40],
        "tp": [0, 1, 2, 3, 64, 2**20],
        "pp": [1, 2, 5, 2**17],
        "cp": [1, 2, 3],
        "zero": [0, 3, 4, 255, 256],
        "inter_node_gbps": [float("nan"), float("inf"), -1.0, 0.5, 100.0],
        "workspace_gib": [float("nan"), -0.0, 1e300],
        "epochs": [float("nan"), 0.0, 1e-300, 2.0],
        "train_samples": ["1e30", 0, 1, "500M"],
        "price_per_gpu_hour": [float("-inf"), -0.0, 1e5, 2.0],
        "model": ["jit-b4", "gpt2-124m", "mixtral-8x7b", "", "a,b", "../nothing"],
        "attention": ["naive", "flash3", ""],
        "global_batch": [1, 3, 2**64 - 1],
    }
    outcomes = {"ok": 0, "SpecError": 0}
    for _ in range(300):
        options = {k: rng.choice(v) for k, v in rng.sample(sorted(values.items()), 4)}
        try:
            roofline.estimate(**options)
            outcomes["ok"] += 1
        except roofline.SpecError:
            outcomes["SpecError"] += 1
    assert outcomes["ok"] > 0 and outcomes["SpecError"] > 0, outcomes
