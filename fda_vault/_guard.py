"""Back up, change, and undo if the change fails: ``safeguard()`` and ``run_guarded()``.

The original updater printed "Continuing without backup" when its backup failed. Here a
failed backup means the change never starts, and a failed change is rolled back with the
same all-or-nothing restore as ``fda-vault restore``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from pydantic import BaseModel, Field

from fda_vault._backup import BackupResult, backup
from fda_vault._errors import OperationError, UsageError
from fda_vault._locking import DEFAULT_LOCK_TIMEOUT
from fda_vault._progress import NO_PROGRESS, Progress
from fda_vault._restore import RestoreResult, restore

__all__ = ["STOP_GRACE_SECONDS", "GuardResult", "Snapshot", "run_guarded", "safeguard"]


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
    returncode: int = Field(description="the command's exit status (128+N: killed by signal N)")
    interrupted: bool = Field(
        default=False,
        description="guard itself got Ctrl-C, SIGTERM or SIGHUP: the command's processes "
        "were stopped and the projects rolled back (exit 130)",
    )
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
        warn_same_disk=False,  # a safety backup for a rollback, not the offsite copy
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


# After asking the command's processes to stop (SIGTERM), how long they get before SIGKILL.
STOP_GRACE_SECONDS = 5.0
_POLL = 0.05
_PR_SET_CHILD_SUBREAPER = 36


def _set_subreaper(on: bool) -> None:
    """Linux: while on, orphans of the command are re-parented to us, so we can reap them
    (a container's PID 1 may never reap, and a zombie still counts as a group member)."""
    libc_name = ctypes.util.find_library("c")
    if sys.platform != "linux" or not libc_name:
        return
    with suppress(OSError, AttributeError):
        ctypes.CDLL(libc_name, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0)


def _group_alive(pgid: int) -> bool:
    """True while a process of the group exists; reaps those of it re-parented to us
    (only that group's: a program using guard as a library keeps its other children)."""
    with suppress(ChildProcessError):
        while os.waitpid(-pgid, os.WNOHANG)[0] > 0:
            pass
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # a member changed user: it exists
    return True


def _signal_group(pgid: int, signum: int) -> None:
    with suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def _end_group(pgid: int, grace: float) -> None:
    """SIGTERM to every process of the group, SIGKILL after ``grace`` s; wait until gone."""
    for signum in (signal.SIGTERM, signal.SIGKILL):
        if not _group_alive(pgid):
            return
        _signal_group(pgid, signum)
        deadline = time.monotonic() + grace
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(_POLL)


class _Stop:
    """Ctrl-C, SIGTERM and SIGHUP while guard runs: noted, never raised, acted on by us."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.at = 0.0
        self._previous: dict[int, object] = {}

    def __enter__(self) -> _Stop:
        for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
            self._previous[sig] = signal.signal(sig, self._note)
        return self

    def __exit__(self, *_exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)  # type: ignore[arg-type]

    def _note(self, signum: int, _frame: FrameType | None) -> None:
        if self.signum is None:
            self.signum = signum
            self.at = time.monotonic()


def _run_command(
    command: Sequence[str], stdout_to_stderr: bool, stop: _Stop | None, grace: float
) -> int:
    """Run ``command`` in a session of its own; end its whole process group when it fails
    or when we are stopped, and return only once none of its processes is left.

    Its own session keeps the terminal's Ctrl-C away from it: we decide, and stop every
    process it started, background ones included, before anything is restored.
    """
    _set_subreaper(True)
    try:
        return _run_in_session(command, stdout_to_stderr, stop, grace)
    finally:
        _set_subreaper(False)


def _run_in_session(
    command: Sequence[str], stdout_to_stderr: bool, stop: _Stop | None, grace: float
) -> int:
    try:
        child = subprocess.Popen(
            list(command), stdout=2 if stdout_to_stderr else None, start_new_session=True
        )
    except FileNotFoundError:
        raise UsageError(command[0], "command not found") from None
    except PermissionError:
        raise UsageError(command[0], "command is not executable") from None
    except OSError as exc:
        raise OperationError(command[0], f"cannot start the command ({exc})") from None
    pgid = child.pid
    asked = killed = False
    while True:
        try:
            returncode = child.wait(timeout=_POLL)
            break
        except subprocess.TimeoutExpired:
            pass
        if stop is not None and stop.signum is not None:
            if not asked:
                _signal_group(pgid, signal.SIGTERM)
                asked = True
            elif not killed and time.monotonic() - stop.at > grace:
                _signal_group(pgid, signal.SIGKILL)
                killed = True
    # A command killed by signal N reports -N; the shell convention is 128 + N.
    status = 128 - returncode if returncode < 0 else returncode
    if status != 0 or (stop is not None and stop.signum is not None):
        _end_group(pgid, grace)
    return status


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
    grace: float = STOP_GRACE_SECONDS,
) -> GuardResult:
    """Back up, run ``command``, and restore the projects if it fails or is killed.

    The command runs in its own session. If it fails, or guard gets Ctrl-C, SIGTERM or
    SIGHUP, every process it started is ended (SIGTERM, then SIGKILL after ``grace``
    seconds) and waited for before the projects are restored.
    """
    if not command:
        raise UsageError("no command given", "put it after --, e.g. guard --all -- make update")
    if shutil.which(command[0]) is None:  # before the backup: nothing to undo, nothing to keep
        raise UsageError(command[0], "command not found or not executable")
    snapshot = _take_snapshot(
        projects, all_projects, projects_dir, backups_dir, lock_timeout, progress
    )
    in_main = threading.current_thread() is threading.main_thread()
    # Signal handlers can only be set from the main thread; elsewhere signals act as usual.
    with _Stop() if in_main else nullcontext() as stop:
        exit_status = _run_command(command, stdout_to_stderr, stop, grace)
        interrupted = stop is not None and stop.signum is not None
        # A signal during the rollback waits for it: a half-done rollback helps nobody.
        if (exit_status != 0 or interrupted) and rollback:
            snapshot.roll_back(projects_dir, lock_timeout)
        elif exit_status == 0 and not keep_on_success:
            snapshot.discard()
    return GuardResult(
        command=list(command),
        returncode=exit_status,
        interrupted=interrupted,
        backup=snapshot.backup,
        rolled_back=snapshot.rolled_back,
        restore=snapshot.restore,
        backup_kept=snapshot.kept,
    )
