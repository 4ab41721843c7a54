"""Fixtures for end-to-end CLI tests: the real program in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path

import pytest

RunModule = Callable[..., "subprocess.CompletedProcess[str]"]


@pytest.fixture
def run_module(tmp_path: Path) -> RunModule:
    """``run_module("list", env={"NO_COLOR": "1"})``: ``python -m fda_vault`` with pipes.

    stdout and stderr are pipes (not a terminal); the environment is this test's (HOME
    and FDA_VAULT_* isolated by the autouse fixture) plus ``env``.
    """

    def run(
        *args: str | os.PathLike[str], env: Mapping[str, str] | None = None, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        full_env = {**os.environ, **(env or {})}
        return subprocess.run(
            [sys.executable, "-m", "fda_vault", *(os.fspath(a) for a in args)],
            capture_output=True,
            text=True,
            encoding="utf-8",
            env=full_env,
            cwd=tmp_path,
            timeout=timeout,
            check=False,
        )

    return run
