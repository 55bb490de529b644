"""ruff, mypy and the import-linter contracts run with the tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
CODE = ["platform/src", "adapters/src", "connectors/src", "auth/src"]


def _run(*argv: str) -> None:
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, f"{' '.join(argv)} failed:\n{result.stdout}\n{result.stderr}"


@pytest.mark.slow
def test_ruff_lint() -> None:
    _run(sys.executable, "-m", "ruff", "check", ".")


@pytest.mark.slow
def test_ruff_format() -> None:
    _run(sys.executable, "-m", "ruff", "format", "--check", ".")


@pytest.mark.slow
def test_mypy_strict() -> None:
    _run(sys.executable, "-m", "mypy", *CODE)


@pytest.mark.slow
def test_import_linter_contracts() -> None:
    _run(str(Path(sys.executable).with_name("lint-imports")))
