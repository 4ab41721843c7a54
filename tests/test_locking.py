"""The two locks: a lock file in our backups folder, an flock on a user's folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from fda_vault._errors import LockedError, OperationError
from fda_vault._locking import LOCK_NAME, folder_lock, tree_lock


def test_folder_lock_names_its_holder_to_the_next_run(tmp_path: Path) -> None:
    with folder_lock(tmp_path):
        with pytest.raises(LockedError) as info, folder_lock(tmp_path, timeout=0):
            pass
        assert f"pid {os.getpid()}" in info.value.why
        assert info.value.reason == "locked"
    assert (tmp_path / LOCK_NAME).exists()  # ours to keep: the backups folder


def test_tree_lock_writes_nothing_and_excludes_another_process(tmp_path: Path) -> None:
    folder = tmp_path / "projects"
    folder.mkdir()
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from pathlib import Path; from fda_vault._locking import tree_lock\n"
         "with tree_lock(Path(sys.argv[1])):\n    print('held', flush=True); time.sleep(30)",
         str(folder)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with (
            pytest.raises(LockedError, match="in use by another fda-vault run"),
            tree_lock(folder, timeout=0.2),
        ):
            pass
    finally:
        holder.kill()
        holder.wait()
        if holder.stdout is not None:
            holder.stdout.close()
    with tree_lock(folder, timeout=5):  # released by the OS when its holder died
        pass
    assert list(folder.iterdir()) == []


def test_locking_a_missing_folder_names_it(tmp_path: Path) -> None:
    with pytest.raises(OperationError) as info, tree_lock(tmp_path / "gone"):
        pass
    assert info.value.what == str(tmp_path / "gone") and info.value.reason == "not_found"
