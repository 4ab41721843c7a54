"""Crash-safe swapping of staged projects into a target folder.

A restore stages every project under ``<target>/.fda-vault-staging-<id>/new/`` and
records its intent in ``<target>/.fda-vault-journal.json`` (written atomically). The
journal's ``state`` says which way an interrupted restore must be completed:

- ``staging``: nothing visible changed yet; recovery deletes the staging folder.
- ``swapping``: every byte is staged, verified and on disk; recovery rolls *forward*,
  moving the remaining staged projects in (old versions go to ``old/``).
- ``rolling_back``: an in-process failure was undoing the swap; recovery rolls *back*,
  putting every ``old/`` project back and removing the new ones.

Each step is a ``rename`` inside one filesystem, so after recovery every project is
entirely its old or entirely its new version.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fda_vault._errors import OperationError
from fda_vault._fsio import fsync_path, os_failure
from fda_vault._locking import tree_lock

__all__ = [
    "JOURNAL_NAME",
    "STAGING_PREFIX",
    "Journal",
    "finish_interrupted",
    "needs_recovery",
    "recover_interrupted",
]

JOURNAL_NAME = ".fda-vault-journal.json"
_JOURNAL_TMP = JOURNAL_NAME + ".tmp"  # a journal being written (renamed when whole)
STAGING_PREFIX = ".fda-vault-staging-"

STAGING = "staging"
SWAPPING = "swapping"
ROLLING_BACK = "rolling_back"


def remove_tree(path: Path) -> None:
    """Delete ``path`` without following symlinks (a symlink itself is just unlinked)."""
    if path.is_symlink() or not path.is_dir():
        path.unlink(missing_ok=True)
        return
    shutil.rmtree(path)


@dataclass
class Journal:
    """The on-disk record of one restore into ``target``."""

    target: Path
    archive: str
    projects: list[str]
    existed: list[str]
    staging_name: str = field(default_factory=lambda: f"{STAGING_PREFIX}{uuid.uuid4().hex[:12]}")
    state: str = STAGING

    @property
    def staging(self) -> Path:
        """The staging folder (same filesystem as the target)."""
        return self.target / self.staging_name

    def new_path(self, project: str) -> Path:
        """Where ``project`` is staged."""
        return self.staging / "new" / project

    def old_path(self, project: str) -> Path:
        """Where the replaced version of ``project`` waits until the swap is complete."""
        return self.staging / "old" / project

    def write(self, state: str) -> None:
        """Record ``state`` durably (temp file, fsync, rename, fsync the folder)."""
        path = self.target / JOURNAL_NAME
        tmp = self.target / _JOURNAL_TMP
        payload = {
            "state": state,
            "archive": self.archive,
            "projects": self.projects,
            "existed": self.existed,
            "staging": self.staging_name,
        }
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with open(fd, "w", encoding="utf-8") as fp:
            json.dump(payload, fp)
            fp.flush()
            os.fsync(fp.fileno())
        tmp.replace(path)
        fsync_path(self.target)
        self.state = state  # only once it is on disk: recovery reads the disk, not us

    @classmethod
    def load(cls, target: Path) -> Journal | None:
        """The journal left in ``target``, if any."""
        path = target / JOURNAL_NAME
        try:
            data: Any = json.loads(path.read_text(encoding="utf-8"))
            journal = cls(
                target=target,
                archive=str(data["archive"]),
                projects=[str(p) for p in data["projects"]],
                existed=[str(p) for p in data["existed"]],
                staging_name=str(data["staging"]),
                state=str(data["state"]),
            )
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise OperationError(
                path, f"unreadable restore journal ({exc}); see the runbook"
            ) from None
        if not journal.staging_name.startswith(STAGING_PREFIX) or "/" in journal.staging_name:
            raise OperationError(path, "restore journal names an unexpected staging folder")
        return journal

    def create_staging(self) -> None:
        """Make the private staging folder (mode 0700)."""
        for sub in ("", "new", "old"):
            (self.staging / sub).mkdir(mode=0o700)

    def swap_in(self) -> None:
        """Move every staged project in; the caller rolls back on an exception."""
        self.write(SWAPPING)
        for project in self.projects:
            self._forward(project)
        fsync_path(self.target)

    def _forward(self, project: str) -> None:
        new, live, old = self.new_path(project), self.target / project, self.old_path(project)
        if not new.exists() and not new.is_symlink():
            return  # already moved in
        if live.exists() or live.is_symlink():
            live.rename(old)
        new.rename(live)

    def _backward(self, project: str) -> None:
        live, old = self.target / project, self.old_path(project)
        trash = self.staging / "new" / project
        if old.exists() or old.is_symlink():
            if live.exists() or live.is_symlink():
                live.rename(trash)
            old.rename(live)
        elif (
            project not in self.existed
            and (live.exists() or live.is_symlink())
            and not trash.exists()
        ):
            live.rename(trash)  # it is ours: the project did not exist before

    def roll_back(self) -> None:
        """Put every project back as it was, then clean up."""
        if self.state == SWAPPING:
            try:
                self.write(ROLLING_BACK)
            except OSError:
                # A full disk may refuse even the journal. Undo anyway: renames need no
                # space, and if we die mid-way the journal still says "swapping", whose
                # recovery (forward) also ends with no project mixed.
                self.state = ROLLING_BACK
        if self.state == ROLLING_BACK:
            for project in self.projects:
                self._backward(project)
            fsync_path(self.target)
        self.finish()

    def roll_forward(self) -> None:
        """Complete an interrupted swap, then clean up."""
        for project in self.projects:
            self._forward(project)
        fsync_path(self.target)
        self.finish()

    def finish(self) -> None:
        """Delete the staging folder (old versions included) and the journal."""
        if self.staging.exists():
            remove_tree(self.staging)
        (self.target / JOURNAL_NAME).unlink(missing_ok=True)
        (self.target / _JOURNAL_TMP).unlink(missing_ok=True)
        fsync_path(self.target)


def needs_recovery(target: Path) -> bool:
    """True when an interrupted restore left a journal (or a half-written one) or a
    staging folder in ``target``."""
    return (
        (target / JOURNAL_NAME).exists()
        or (target / _JOURNAL_TMP).exists()
        or any(target.glob(f"{STAGING_PREFIX}*"))
    )


def recover_interrupted(target: Path) -> list[str]:
    """Finish or roll back a restore interrupted in ``target``; say what was done.

    Call with the target's lock held, before doing anything else there.
    """
    messages: list[str] = []
    if not target.is_dir():
        return messages
    try:
        journal = Journal.load(target)
        if journal is not None:
            names = ", ".join(journal.projects)
            if journal.state == SWAPPING:
                journal.roll_forward()
                messages.append(
                    f"finished an interrupted restore of {names} from {journal.archive}"
                )
            else:
                journal.roll_back()
                messages.append(
                    f"rolled back an interrupted restore of {names} from {journal.archive}; "
                    "the projects are as they were before it"
                )
        # A journal write killed before its rename never took effect (the journal on
        # disk, if any, was just followed); staging folders without a journal were
        # never visible: both are only removed.
        (target / _JOURNAL_TMP).unlink(missing_ok=True)
        for leftover in target.glob(f"{STAGING_PREFIX}*"):
            remove_tree(leftover)
            messages.append(f"removed the leftover staging folder {leftover.name}")
    except OSError as exc:
        raise os_failure(target, exc, "cannot recover an interrupted restore") from None
    return messages


def finish_interrupted(target: Path, lock_timeout: float) -> list[str]:
    """If a restore was interrupted in ``target``, take its lock and finish or roll back
    that restore (:func:`recover_interrupted`); otherwise touch nothing, not even a lock."""
    if not target.is_dir() or not needs_recovery(target):
        return []
    with tree_lock(target, lock_timeout):
        return recover_interrupted(target)
