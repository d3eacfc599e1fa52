"""The code stays clean: ruff (lint and format) and strict mypy run as part of `make test`."""

from __future__ import annotations

import subprocess
import sys

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
