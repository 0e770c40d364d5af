"""Shared helpers: the CLI binary the Python results are compared with."""

import json
import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def cli_binary() -> str:
    """$ROOFLINE_BIN, else the release or debug build of this checkout (.ci/run builds it)."""
    given = os.environ.get("ROOFLINE_BIN")
    if given:
        return given
    for profile in ("release", "debug"):
        p = REPO / "target" / profile / "roofline"
        if p.exists():
            return str(p)
    raise RuntimeError(
        "no roofline binary: run `cargo build --release` in the repository or set ROOFLINE_BIN"
    )


def cli(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    r = subprocess.run([cli_binary(), *args], capture_output=True, text=True, cwd=REPO)
    if check and r.returncode != 0:
        raise AssertionError(f"roofline {' '.join(args)} exited {r.returncode}: {r.stderr}")
    return r


def cli_json(*args: str):
    return json.loads(cli(*args).stdout)


@pytest.fixture
def repo() -> Path:
    return REPO
