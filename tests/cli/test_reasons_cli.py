"""Every --json error object carries a stable ``reason``: one test per reason a user can
cause (disk_full and permission_denied are in test_faults.py, on a real full disk and with
real permissions), and the README lists them all."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from fda_vault._backup import backup
from fda_vault._errors import REASONS, OperationError
from fda_vault._locking import folder_lock
from tests.conftest import ORTHO, CliCall, rewrite_archive
from tests.test_backup import _DuringPacking
from tests.test_docs import README, _read, _section
from tests.tree import swap_like_a_restore


def _error(cli: CliCall, *args: str | Path, code: int) -> dict[str, Any]:
    result = cli(*args, "--json")
    assert result.exit_code == code, (args, result.stdout, result.stderr)
    error: dict[str, Any] = json.loads(result.stdout)["error"]
    assert error["exit_code"] == code and error["reason"] in REASONS
    return error


@pytest.mark.slow
def test_usage(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "fda_vault", "backup", "--level", "12", "--json"],
        capture_output=True, text=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 2
    assert json.loads(done.stdout)["error"]["reason"] == "usage"


def test_not_found(cli: CliCall, tmp_path: Path) -> None:
    error = _error(cli, "list", tmp_path / "nope.zip", code=2)
    assert (error["reason"], error["path"]) == ("not_found", str(tmp_path / "nope.zip"))
    assert _error(cli, "restore", tmp_path / "nope.zip", code=2)["reason"] == "not_found"


def test_unknown_project(cli: CliCall, projects_dir: Path, archive: Path) -> None:
    args = ("backup", "-p", "K000000_nope", "--projects-dir", projects_dir)
    assert _error(cli, *args, code=2)["reason"] == "unknown_project"
    restore = ("restore", archive, "-p", "K000000_nope", "--dry-run")
    assert _error(cli, *restore, code=2)["reason"] == "unknown_project"


def test_locked(cli: CliCall, projects_dir: Path, backups_dir: Path) -> None:
    backups_dir.mkdir()
    with folder_lock(backups_dir):
        args = ("backup", "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
                "--lock-timeout", "0")  # fmt: skip
        assert _error(cli, *args, code=1)["reason"] == "locked"


def test_damaged_and_unsafe(cli: CliCall, archive: Path, tmp_path: Path) -> None:
    truncated = tmp_path / "cut_backup_20260101_000000.zip"
    truncated.write_bytes(archive.read_bytes()[:-40])
    assert _error(cli, "list", truncated, code=3)["reason"] == "damaged"
    hostile = rewrite_archive(archive, tmp_path / "evil_backup_20260101_000000.zip",
                              add={"projects/../../evil.txt": b"x"})  # fmt: skip
    assert _error(cli, "restore", hostile, "--target-dir", tmp_path / "t", code=3)["reason"] == (
        "unsafe"
    )


def test_refused(cli: CliCall, archive: Path, projects_dir: Path) -> None:
    (projects_dir / ORTHO / "device_profile.json").write_bytes(b"edited")
    args = ("restore", archive, "--projects-dir", projects_dir)
    assert _error(cli, *args, code=4)["reason"] == "refused"


def test_changed_while_read(projects_dir: Path, backups_dir: Path) -> None:
    """A project swapped (as a restore does) while the backup reads it."""

    def swap() -> None:
        swap_like_a_restore(projects_dir, ORTHO)

    with pytest.raises(OperationError) as info:
        backup(projects=[ORTHO], projects_dir=projects_dir, output_dir=backups_dir,
               progress=_DuringPacking(swap))  # fmt: skip
    assert info.value.reason == "changed_while_read"


@pytest.mark.slow
def test_interrupted(projects_dir: Path, tmp_path: Path) -> None:
    """SIGINT during a backup of a large project: the JSON error says interrupted."""
    big = projects_dir / ORTHO / "scan.pdf"
    with open(big, "wb") as out:
        for _ in range(256):
            out.write(os.urandom(1 << 20))
    backups = tmp_path / "b"
    proc = subprocess.Popen(
        [sys.executable, "-m", "fda_vault", "backup", "--all", "--projects-dir", projects_dir,
         "--output-dir", backups, "--json"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 30
    while not list(backups.glob("*.zip.tmp")) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)
    stdout, _stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130
    assert json.loads(stdout)["error"]["reason"] == "interrupted"


def test_the_readme_lists_every_reason() -> None:
    section = _section(_read(README), "JSON output")
    for reason in REASONS:
        assert f"`{reason}`" in section, reason
