"""Back up, change, and undo if the change fails: ``safeguard()`` and ``run_guarded()``.

The original updater printed "Continuing without backup" when its backup failed. Here a
failed backup means the change never starts, and a failed change is rolled back with the
same all-or-nothing restore as ``fda-vault restore``.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from pydantic import BaseModel

from fda_vault.backup import BackupResult, backup
from fda_vault.errors import OperationError, UsageError
from fda_vault.locking import DEFAULT_LOCK_TIMEOUT
from fda_vault.progress import NO_PROGRESS, Progress
from fda_vault.restore import RestoreResult, restore

__all__ = ["GuardResult", "Snapshot", "run_guarded", "safeguard"]


@dataclass
class Snapshot:
    """The backup taken before a guarded change; ``rolled_back`` tells what happened after."""

    backup: BackupResult
    rolled_back: bool = False
    restore: RestoreResult | None = None
    kept: bool = True

    @property
    def archive(self) -> Path:
        """The safety backup's archive."""
        return Path(self.backup.archive)

    def roll_back(self, projects_dir: Path, lock_timeout: float) -> None:
        """Restore the backed-up projects as they were (all or nothing)."""
        self.restore = restore(
            self.archive,
            target_dir=projects_dir,
            projects=self.backup.projects,
            overwrite=True,
            lock_timeout=lock_timeout,
        )
        self.rolled_back = True

    def discard(self) -> None:
        """Delete the safety backup (the change succeeded and it is not wanted)."""
        self.archive.unlink(missing_ok=True)
        self.kept = False


class GuardResult(BaseModel):
    """What ``guard`` did around one command."""

    command: list[str]
    returncode: int
    backup: BackupResult
    rolled_back: bool
    restore: RestoreResult | None
    backup_kept: bool


def _take_snapshot(
    projects: Sequence[str],
    all_projects: bool,
    projects_dir: Path,
    backups_dir: Path,
    lock_timeout: float,
    progress: Progress,
) -> Snapshot:
    taken = backup(
        projects,
        all_projects=all_projects,
        projects_dir=projects_dir,
        output_dir=backups_dir,
        lock_timeout=lock_timeout,
        progress=progress,
    )
    return Snapshot(backup=taken)


@contextmanager
def safeguard(
    projects: Sequence[str] = (),
    *,
    all_projects: bool = False,
    projects_dir: Path,
    backups_dir: Path,
    keep_on_success: bool = True,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    progress: Progress = NO_PROGRESS,
) -> Iterator[Snapshot]:
    """Back up first; if the block raises, restore the projects as they were and re-raise.

    Example::

        with fda_vault.safeguard(projects=["K241234"], projects_dir=p, backups_dir=b) as snap:
            update_openfda_data(p / "K241234")
        print("backup kept at", snap.archive)

    A failed backup raises before the block runs. ``keep_on_success=False`` deletes the
    backup when the block succeeds; a backup that was used for a rollback is always kept.
    """
    snapshot = _take_snapshot(
        projects, all_projects, projects_dir, backups_dir, lock_timeout, progress
    )
    try:
        yield snapshot
    except BaseException:
        snapshot.roll_back(projects_dir, lock_timeout)
        raise
    if not keep_on_success:
        snapshot.discard()


def _run_forwarding_signals(command: Sequence[str], stdout_to_stderr: bool) -> int:
    """Run ``command``; Ctrl-C and SIGTERM go to it, not to us, so we can roll back after."""
    try:
        child = subprocess.Popen(list(command), stdout=2 if stdout_to_stderr else None)
    except FileNotFoundError:
        raise UsageError(command[0], "command not found") from None
    except PermissionError:
        raise UsageError(command[0], "command is not executable") from None
    except OSError as exc:
        raise OperationError(command[0], f"cannot start the command ({exc})") from None

    def forward(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signum)

    if threading.current_thread() is not threading.main_thread():
        return child.wait()  # signal handlers can only be set from the main thread
    # Ctrl-C reaches the child from the terminal itself; we wait for it to finish and then
    # roll back. SIGTERM (a service stop) is sent to us alone, so we pass it on.
    previous = {
        signal.SIGINT: signal.signal(signal.SIGINT, signal.SIG_IGN),
        signal.SIGTERM: signal.signal(signal.SIGTERM, forward),
    }
    try:
        return child.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def run_guarded(
    command: Sequence[str],
    *,
    projects: Sequence[str] = (),
    all_projects: bool = False,
    projects_dir: Path,
    backups_dir: Path,
    keep_on_success: bool = True,
    rollback: bool = True,
    stdout_to_stderr: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    progress: Progress = NO_PROGRESS,
) -> GuardResult:
    """Back up, run ``command``, and restore the projects if it fails or is killed."""
    if not command:
        raise UsageError("no command given", "put it after --, e.g. guard --all -- make update")
    if shutil.which(command[0]) is None:  # before the backup: nothing to undo, nothing to keep
        raise UsageError(command[0], "command not found or not executable")
    snapshot = _take_snapshot(
        projects, all_projects, projects_dir, backups_dir, lock_timeout, progress
    )
    returncode = _run_forwarding_signals(command, stdout_to_stderr)
    # A command killed by signal N reports -N; the shell convention is 128 + N.
    exit_status = 128 - returncode if returncode < 0 else returncode
    if exit_status != 0 and rollback:
        snapshot.roll_back(projects_dir, lock_timeout)
    elif exit_status == 0 and not keep_on_success:
        snapshot.discard()
    return GuardResult(
        command=list(command),
        returncode=exit_status,
        backup=snapshot.backup,
        rolled_back=snapshot.rolled_back,
        restore=snapshot.restore,
        backup_kept=snapshot.kept,
    )
