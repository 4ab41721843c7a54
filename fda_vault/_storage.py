"""Where archives live: the one owner of a backups location.

A location keeps the file-name convention (made and parsed here only), lists its
archives with one rule (files named like archives, never symlinks or folders), writes a
new archive so that it appears under its final name only complete and never replacing
another, deletes, cleans up what a killed run left, and takes the location's lock.

:class:`BackupsFolder` (a local folder) is the implementation today; object storage is
to be the next one, which is why callers go through these methods and never touch the
archives with ``os`` calls of their own.

The projects side has its owner too: :class:`ProjectsFolder` lists projects and finishes a
restore that was interrupted there.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Literal, NamedTuple, Protocol

from fda_vault._errors import UsageError
from fda_vault._fsio import fsync_path, make_backups_dir, os_failure, publish_no_clobber
from fda_vault._journal import finish_interrupted
from fda_vault._locking import DEFAULT_LOCK_TIMEOUT, folder_lock, tree_lock
from fda_vault._manifest import RESERVED_PROJECT_NAME

__all__ = [
    "ALL_PROJECTS_LABEL",
    "ARCHIVE_NAME_RE",
    "LEGACY_TAR_NAME_RE",
    "MULTI_PROJECT_LABEL",
    "TMP_SUFFIX",
    "ArchiveName",
    "BackupsFolder",
    "BackupsLocation",
    "ProjectsFolder",
    "StoredArchive",
    "archive_label",
    "parse_archive_name",
]

ALL_PROJECTS_LABEL = "all_projects"
MULTI_PROJECT_LABEL = "multi_project"
TMP_SUFFIX = ".tmp"
_STAMP = "%Y%m%d_%H%M%S"

ARCHIVE_NAME_RE = re.compile(r"^(?P<label>.+)_backup_(?P<stamp>\d{8}_\d{6})(?:_\d+)?\.zip$")
# The original library's tar.gz archives (fda_vault.legacytar).
LEGACY_TAR_NAME_RE = re.compile(
    r"^fda_backup_(?P<label>.+)_(?P<stamp>\d{8}_\d{6})_(?P<micro>\d{6})\.tar\.gz$"
)


class ArchiveName(NamedTuple):
    """What an archive's file name says: its label, its UTC time and its kind."""

    label: str
    stamp: str  # YYYYMMDD_HHMMSS, UTC: sorts as time does
    kind: Literal["zip", "legacy-tar"]

    @property
    def time(self) -> datetime | None:
        """The stamp as a UTC time (None if it is no real date)."""
        try:
            return datetime.strptime(self.stamp, _STAMP).replace(tzinfo=timezone.utc)
        except ValueError:
            return None


def parse_archive_name(name: str) -> ArchiveName | None:
    """The parts of ``<label>_backup_<stamp>[_N].zip`` (or the original library's
    ``fda_backup_<label>_<stamp>_<micro>.tar.gz``); None for any other name."""
    match = ARCHIVE_NAME_RE.match(name)
    if match:
        return ArchiveName(match["label"], match["stamp"], "zip")
    match = LEGACY_TAR_NAME_RE.match(name)
    if match:
        return ArchiveName(match["label"], match["stamp"], "legacy-tar")
    return None


def archive_label(projects: list[str] | tuple[str, ...], all_projects: bool) -> str:
    """The file-name label: the project, ``all_projects`` or ``multi_project``."""
    if all_projects:
        return ALL_PROJECTS_LABEL
    return projects[0] if len(projects) == 1 else MULTI_PROJECT_LABEL


@dataclass(frozen=True)
class StoredArchive:
    """One archive of a location, as listed."""

    name: str
    parsed: ArchiveName
    size: int
    path: Path  # where readers open it (a local file today)


class BackupsLocation(Protocol):
    """Where archives live: what every command needs of a backups location. A local
    folder (:class:`BackupsFolder`) implements it; an object-storage prefix is to be the
    next implementation, so nothing outside an implementation touches archives with
    ``os`` calls of its own."""

    def exists(self) -> bool:
        """True when the location is there (a missing one has no archives yet)."""

    def create(self) -> None:
        """Make the location (never its parents)."""

    def archives(self) -> list[StoredArchive]:
        """Every archive by name, sorted by name."""

    def lock(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> AbstractContextManager[None]:
        """One writer at a time."""

    def unused_name(self, label: str, started: datetime) -> str:
        """A new archive name that replaces nothing."""

    def new_archive(self, name: str) -> AbstractContextManager[Path]:
        """A temporary place to write ``name``; removed unless published."""

    def publish(self, tmp: Path, name: str) -> Path:
        """Give a written, verified archive its final name, never replacing one."""

    def delete(self, name: str) -> bool:
        """Delete one archive; False if it was gone."""

    def sync(self) -> None:
        """Make creations and deletions durable."""

    def remove_stale_temps(self) -> None:
        """Remove what a killed run left."""


class BackupsFolder:
    """A backups location on a local (or mounted) file system."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        """True when the folder is there (a missing one simply has no archives yet)."""
        return self.path.exists()

    def create(self) -> None:
        """Create the folder (mode 0700) if missing; never its parents."""
        make_backups_dir(self.path)

    def archives(self) -> list[StoredArchive]:
        """Every archive by name, sorted by name; symlinks and folders are never archives."""
        if not self.path.exists():
            return []
        if not self.path.is_dir():
            raise UsageError(self.path, "not a folder", reason="not_found")
        try:
            entries = list(os.scandir(self.path))
        except OSError as exc:
            raise os_failure(self.path, exc) from None
        found = []
        for entry in entries:
            parsed = parse_archive_name(entry.name)
            if parsed is None:
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                size = entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue  # gone while listing
            found.append(StoredArchive(entry.name, parsed, size, Path(entry.path)))
        return sorted(found, key=lambda a: a.name)

    def lock(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> AbstractContextManager[None]:
        """The folder's lock: one writer (backup, prune, import) at a time."""
        return folder_lock(self.path, timeout)

    def unused_name(self, label: str, started: datetime) -> str:
        """``<label>_backup_<UTC stamp>.zip``, with ``_1``, ``_2``… if taken (or being
        written)."""
        stem = f"{label}_backup_{started.astimezone(timezone.utc):{_STAMP}}"
        name, n = f"{stem}.zip", 0
        while (self.path / name).exists() or (self.path / f"{name}{TMP_SUFFIX}").exists():
            n += 1
            name = f"{stem}_{n}.zip"
        return name

    @contextmanager
    def new_archive(self, name: str) -> Iterator[Path]:
        """A temporary file to write ``name`` into; removed unless :meth:`publish`ed."""
        tmp = self.path / f"{name}{TMP_SUFFIX}"
        try:
            yield tmp
        finally:
            tmp.unlink(missing_ok=True)

    def publish(self, tmp: Path, name: str) -> Path:
        """Give the written, verified ``tmp`` its final ``name``; never replaces a file."""
        final = self.path / name
        publish_no_clobber(tmp, final)
        return final

    def delete(self, name: str) -> bool:
        """Delete one archive; False if it was already gone."""
        try:
            os.unlink(self.path / name)
        except FileNotFoundError:
            return False
        return True

    def sync(self) -> None:
        """Make creations and deletions in the folder durable."""
        fsync_path(self.path)

    def remove_stale_temps(self) -> None:
        """Remove ``*.zip.tmp`` left by a killed run (call with the lock held)."""
        for leftover in self.path.glob(f"*.zip{TMP_SUFFIX}"):
            with suppress(OSError):
                leftover.unlink()


class ProjectsFolder:
    """The projects root: which projects there are; restores interrupted in it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def projects(self, backups: Path | None = None) -> list[str]:
        """Direct sub-folders, except hidden ones, the backups folder and ``backups``."""
        if not self.path.is_dir():
            raise UsageError(self.path, "projects folder not found", reason="not_found")
        backups_real = os.path.realpath(backups) if backups else None
        try:
            entries = list(os.scandir(self.path))
        except OSError as exc:
            raise os_failure(self.path, exc) from None
        names = []
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            if backups_real and os.path.realpath(entry.path) == backups_real:
                continue
            if entry.name == RESERVED_PROJECT_NAME:
                continue  # the default backups folder, even when backups now go elsewhere
            names.append(entry.name)
        return sorted(names)

    def finish_interrupted(self, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> list[str]:
        """Finish or roll back a restore interrupted here (nothing else is written)."""
        return finish_interrupted(self.path, lock_timeout)

    def lock(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> AbstractContextManager[None]:
        """The folder's lock, held by a restore; nothing is written into the folder."""
        return tree_lock(self.path, timeout)
