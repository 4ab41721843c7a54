"""safeguard() and guard: back up, change, and undo a failed change byte for byte."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import fda_vault
from fda_vault._guard import GuardResult
from tests.conftest import CARDIAC, GLUCOSE, ORTHO
from tests.tree import snapshot


def _cmd(*args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "fda_vault", *(os.fspath(a) for a in args)]


def _projects(root: Path) -> dict[str, object]:
    return {p.name: snapshot(p) for p in sorted(root.iterdir()) if not p.name.startswith(".")}


# A stand-in for update_manager.py: edits, deletes and adds files, then fails.
BAD_UPDATER = f"""
import pathlib, sys
root = pathlib.Path(sys.argv[1])
(root / "{CARDIAC}" / "device_profile.json").write_text('{{"refreshed": "half"}}')
(root / "{CARDIAC}" / "pdfs" / "K201234_summary.pdf").unlink()
(root / "{GLUCOSE}" / "new_openfda_pull.json").write_text("[]")
print("updated 2 projects, then the openFDA API failed")
sys.exit(1)
"""


def test_safeguard_restores_everything_when_the_block_raises(
    projects_dir: Path, backups_dir: Path
) -> None:
    before = _projects(projects_dir)
    with (
        pytest.raises(RuntimeError, match="openFDA timeout"),
        fda_vault.safeguard(
            all_projects=True, projects_dir=projects_dir, backups_dir=backups_dir
        ) as snap,
    ):
        (projects_dir / ORTHO / "device_profile.json").write_bytes(b"half-updated")
        (projects_dir / CARDIAC / "data_manifest.json").unlink()
        raise RuntimeError("openFDA timeout")
    assert snap.rolled_back and snap.restore is not None
    assert _projects(projects_dir) == before
    assert snap.archive.exists()


def test_safeguard_keeps_changes_and_reports_the_backup_on_success(
    projects_dir: Path, backups_dir: Path
) -> None:
    with fda_vault.safeguard(
        projects=[ORTHO], projects_dir=projects_dir, backups_dir=backups_dir
    ) as snap:
        (projects_dir / ORTHO / "device_profile.json").write_bytes(b"refreshed")
    assert not snap.rolled_back and snap.kept
    assert (projects_dir / ORTHO / "device_profile.json").read_bytes() == b"refreshed"
    assert fda_vault.verify_archive(snap.archive).ok
    assert snap.backup.projects == [ORTHO]


def test_safeguard_refuses_to_enter_when_the_backup_fails(
    projects_dir: Path, tmp_path: Path
) -> None:
    not_a_folder = tmp_path / "file"
    not_a_folder.write_bytes(b"")
    entered = False
    with (
        pytest.raises(fda_vault.FdaVaultError),
        fda_vault.safeguard(
            all_projects=True, projects_dir=projects_dir, backups_dir=not_a_folder / "b"
        ),
    ):
        entered = True
    assert not entered


@pytest.mark.slow
def test_guard_cli_success_keeps_changes_and_the_backup(
    projects_dir: Path, backups_dir: Path
) -> None:
    script = (
        f"import pathlib; pathlib.Path({str(projects_dir / ORTHO / 'new.md')!r}).write_text('v2')"
    )
    done = subprocess.run(
        _cmd("guard", "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
             "--json", "--", sys.executable, "-c", script),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = GuardResult.model_validate_json(done.stdout)
    assert result.backup_kept and not result.rolled_back
    assert Path(result.backup.archive).exists()
    assert (projects_dir / ORTHO / "new.md").read_text() == "v2"


@pytest.mark.slow
def test_guard_cli_failure_rolls_back_byte_for_byte_and_passes_exit_1(
    projects_dir: Path, backups_dir: Path
) -> None:
    before = _projects(projects_dir)
    done = subprocess.run(
        _cmd("guard", "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
             "--", sys.executable, "-c", BAD_UPDATER, projects_dir),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "then the openFDA API failed" in done.stdout  # the command's output passes through
    assert "rolled back" in done.stderr
    assert _projects(projects_dir) == before


@pytest.mark.slow
def test_guard_cli_no_rollback_only_reports(projects_dir: Path, backups_dir: Path) -> None:
    done = subprocess.run(
        _cmd("guard", "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
             "--no-rollback", "--", sys.executable, "-c", BAD_UPDATER, projects_dir),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "not rolled back" in done.stderr
    assert (projects_dir / GLUCOSE / "new_openfda_pull.json").exists()


def _start_slow_update(
    projects_dir: Path, backups_dir: Path, *guard_args: str
) -> tuple[subprocess.Popen[str], int]:
    """Start ``guard`` around a command that half-updates ORTHO, then sleeps.

    Returns the guard process and, once the update has begun, the command's PID.
    """
    marker = projects_dir.parent / "started"
    slow = (
        "import os, pathlib, time\n"
        f"pathlib.Path({str(projects_dir / ORTHO / 'device_profile.json')!r}).write_text('half')\n"
        f"pathlib.Path({str(marker)!r}).write_text(str(os.getpid()))\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen(
        _cmd("guard", "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
             *guard_args, "--", sys.executable, "-c", slow),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text()) and time.monotonic() < deadline:
        time.sleep(0.02)
    time.sleep(0.1)
    return proc, int(marker.read_text())


@pytest.mark.slow
def test_guard_cli_command_killed_by_sigterm_is_rolled_back(
    projects_dir: Path, backups_dir: Path
) -> None:
    before = _projects(projects_dir)
    proc, command_pid = _start_slow_update(projects_dir, backups_dir, "--json")
    os.kill(command_pid, signal.SIGTERM)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 128 + signal.SIGTERM, stderr
    result = json.loads(stdout)
    assert result["rolled_back"] is True and result["returncode"] == 143
    assert _projects(projects_dir) == before


@pytest.mark.slow
def test_guard_cli_sigterm_to_guard_itself_reaches_the_command(
    projects_dir: Path, backups_dir: Path
) -> None:
    before = _projects(projects_dir)
    proc, _command_pid = _start_slow_update(projects_dir, backups_dir)
    proc.send_signal(signal.SIGTERM)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr  # guard was interrupted: 130 like every command
    assert "interrupted" in stderr and "rolled back" in stderr
    assert _projects(projects_dir) == before


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


# Like update.sh in the field trial: a background child writes into a project 3 s later,
# and an unrelated `sleep 30` would be left behind.
BACKGROUND_UPDATER = f"""
set -e
root="$1"; marker="$2"
( sleep 3; echo late > "$root/{ORTHO}/late_write.json" ) &
sleep 30 &
echo half > "$root/{ORTHO}/device_profile.json"
echo $$ > "$marker"
wait
"""


@pytest.mark.parametrize("how", ["sigterm", "sigint", "sighup", "failure"])
@pytest.mark.slow
def test_guard_ends_the_commands_whole_process_group_before_restoring(
    projects_dir: Path, backups_dir: Path, tmp_path: Path, how: str
) -> None:
    before = _projects(projects_dir)
    marker = tmp_path / "started"
    script = (
        BACKGROUND_UPDATER if how != "failure" else BACKGROUND_UPDATER.replace("wait\n", "exit 7\n")
    )
    proc = subprocess.Popen(
        _cmd("guard", "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
             "--", "sh", "-c", script, "update.sh", projects_dir, marker),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while not (marker.exists() and marker.read_text().strip()) and time.monotonic() < deadline:
        time.sleep(0.02)
    pgid = int(marker.read_text())
    if how == "sigterm":
        proc.send_signal(signal.SIGTERM)
    elif how == "sigint":
        proc.send_signal(signal.SIGINT)
    elif how == "sighup":  # the terminal closed
        proc.send_signal(signal.SIGHUP)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == (7 if how == "failure" else 130), stderr
    assert "rolled back" in stderr
    # Every process of the command is gone before guard returns: nothing writes later.
    assert not _group_alive(pgid)
    time.sleep(3.5)
    assert not (projects_dir / ORTHO / "late_write.json").exists()
    assert _projects(projects_dir) == before


@pytest.mark.slow
def test_guard_cli_backup_failure_means_the_command_never_runs(
    projects_dir: Path, tmp_path: Path
) -> None:
    ran = tmp_path / "ran"
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"a file where the backups folder should go")
    done = subprocess.run(
        _cmd("guard", "--all", "--projects-dir", projects_dir, "--output-dir", blocker / "b",
             "--", sys.executable, "-c", f"open({str(ran)!r}, 'w')"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert not ran.exists()
    assert done.stderr.startswith("error: ") and "Traceback" not in done.stderr


@pytest.mark.slow
def test_guard_cli_unknown_command_is_a_usage_error(projects_dir: Path, backups_dir: Path) -> None:
    done = subprocess.run(
        _cmd("guard", "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
             "--", "no-such-updater-xyz"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 2
    assert "no-such-updater-xyz" in done.stderr
