"""Type stubs of roofline's Rust extension. Every function takes the options as the words of a
``roofline`` command line; the ``roofline`` package builds them from keyword arguments."""

from typing import Any, Dict, List, Optional, Tuple

__version__: str

class SpecError(ValueError):
    """Bad input, as the CLI reports it with exit code 2 (same message)."""

    kind: str
    """"spec" (a spec file's field), "unknown_name", "option", "invalid" or "io"."""
    file: Optional[str]
    """The spec file (``embedded:NAME``, a path, ``<model dict>``), when there is one."""
    field: Optional[str]
    """The dotted field (``transformer.heads``), the option (``batch``) or the kind of name."""
    value: Optional[str]
    """The value given, as text, when known."""
    problem: Optional[str]
    """What is wrong, without the file and field."""

class InternalError(RuntimeError):
    """A bug in roofline (exit code 1 of the CLI, or a Rust panic)."""

def json(words: List[str]) -> Any:
    """What ``roofline WORDS... --json`` prints (models, gpus, ops, memory, estimate, search)."""

def options(command: List[str]) -> List[Dict[str, Any]]:
    """The options of ``roofline COMMAND...``: name, flag, default, help."""

def sweep(
    fixed: List[str], vary: List[str]
) -> Tuple[Dict[str, Any], List[Tuple[str, str, bytes, Any]]]:
    """A sweep's summary and columns: (name, kind, data bytes, absent-mask bytes or labels)."""

def plot_roofline(words: List[str], measured: Optional[str], format: str) -> bytes:
    """``roofline plot roofline`` as SVG or PNG bytes."""

def load_model(name_or_path: str) -> Dict[str, Any]: ...
def load_gpu(name_or_path: str) -> Dict[str, Any]: ...
def spec_toml(kind: str, json: str, label: str) -> str:
    """A dict spec (as JSON text) checked as a spec file is, as TOML text."""
