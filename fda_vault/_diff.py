"""``diff``: what changed between an archive and the live projects, or two archives.

Each file is ``added`` (only on the newer side: the live projects, or the second
archive), ``removed`` (only in the first archive), ``changed`` (other content) or
``metadata_only`` (same content, other mode or modification time). Against the live
projects, a file whose size and modification time match the archive's is taken as
unchanged without reading it (like ``rsync`` and the peers' file caches); ``content``
reads every file of equal size. Times are compared at the precision the archive's format
keeps (2 s for the original ZIPs, 1 s for the original tar.gz files), and the original ZIPs
record no modes, so modes are not compared with them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Collection, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, Field

from fda_vault._archive import Archive, select_projects
from fda_vault._backup import scan_project
from fda_vault._crypto import NO_KEYS, Keys
from fda_vault._fsio import sha256_file
from fda_vault._legacy import FORMAT_FDA_VAULT, FORMAT_LEGACY_TAR, FORMAT_LEGACY_ZIP
from fda_vault._manifest import BackupManifest, FileEntry, project_of
from fda_vault._progress import NO_PROGRESS, Progress
from fda_vault._s3 import ArchivePath

__all__ = ["DiffResult", "ProjectDiff", "diff"]

# Seconds of modification-time precision each format keeps.
_TIME_PRECISION = {FORMAT_FDA_VAULT: 0.0, FORMAT_LEGACY_ZIP: 2.0, FORMAT_LEGACY_TAR: 1.0}


class ProjectDiff(BaseModel):
    """The differences inside one project (paths relative to the project)."""

    name: str
    added: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    changed: list[str] = Field(default_factory=list)
    metadata_only: list[str] = Field(default_factory=list)
    bytes_added: int = 0
    bytes_removed: int = 0


class DiffResult(BaseModel):
    """Every difference, per project and as ``"<project>/<path>"`` lists."""

    old: str = Field(description="the archive compared from")
    new: str = Field(description="the second archive, or the live projects folder")
    against_live: bool
    projects: list[ProjectDiff]
    added: list[str]
    removed: list[str]
    changed: list[str]
    metadata_only: list[str]
    files_read: int = Field(description="live files read to compare their content")

    @property
    def differences(self) -> int:
        """How many files differ in any way."""
        return len(self.added) + len(self.removed) + len(self.changed) + len(self.metadata_only)


@dataclass
class _Side:
    """One side's files by ``"<project>/<path>"``, its projects and its format."""

    files: dict[str, FileEntry]
    projects: list[str]
    source_format: str
    exclude: list[str]


def _checked_manifest(
    path: ArchivePath, stack: ExitStack, progress: Progress, keys: Keys
) -> BackupManifest:
    """An archive's manifest with names and manifest checked (no data read); a tar.gz of
    the original library is converted first (it records no SHA-256 to compare)."""
    opened = stack.enter_context(Archive.open(path, progress=progress, keys=keys))
    opened.require("names")
    return opened.manifest


def _archive_side(path: ArchivePath, stack: ExitStack, progress: Progress, keys: Keys) -> _Side:
    manifest = _checked_manifest(path, stack, progress, keys)
    return _Side(
        files={entry.path: entry for entry in manifest.files},
        projects=list(manifest.projects),
        source_format=manifest.source_format,
        exclude=list(manifest.exclude.patterns),
    )


def _select(sides: Sequence[_Side], projects: Sequence[str], archive: ArchivePath) -> list[str]:
    return select_projects(projects, sorted({n for side in sides for n in side.projects}), archive)


def _same_time(mtime_a: float, mtime_b: float, precision: float) -> bool:
    return abs(mtime_a - mtime_b) <= precision if precision else mtime_a == mtime_b


def _entry_time(entry: FileEntry) -> float:
    return entry.mtime_ns / 1e9 if entry.mtime_ns is not None else entry.mtime


def _live_files(
    projects_dir: Path, projects: Collection[str], exclude: Sequence[str]
) -> dict[str, tuple[str, os.stat_result]]:
    """``"<project>/<path>"`` -> (file, stat) of each live file a backup would take."""
    found: dict[str, tuple[str, os.stat_result]] = {}
    for name in projects:
        if not (projects_dir / name).is_dir():
            continue  # the whole project is gone: every file of it is "removed"
        for key, path in scan_project(projects_dir, name, exclude):
            try:
                found[key] = (path, os.stat(path, follow_symlinks=False))
            except FileNotFoundError:
                continue
    return found


def diff(
    old: ArchivePath,
    new: ArchivePath | None = None,
    *,
    projects_dir: Path,
    projects: Sequence[str] = (),
    content: bool = False,
    progress: Progress = NO_PROGRESS,
    keys: Keys = NO_KEYS,
) -> DiffResult:
    """Compare archive ``old`` with archive ``new``, or with the live projects (``None``)."""
    with ExitStack() as stack:
        before = _archive_side(old, stack, progress, keys)
        after = _archive_side(new, stack, progress, keys) if new is not None else None
        selected = _select([before] if after is None else [before, after], projects, old)
        chosen = set(selected)

        def in_selection(key: str) -> bool:
            return project_of(key) in chosen

        old_files = {k: e for k, e in before.files.items() if in_selection(k)}
        precision = max(
            _TIME_PRECISION.get(before.source_format, 0.0),
            _TIME_PRECISION.get(after.source_format, 0.0) if after else 0.0,
        )
        compare_modes = FORMAT_LEGACY_ZIP not in {
            before.source_format,
            after.source_format if after else "",
        }
        result = _Collector(selected)
        files_read = 0
        if after is not None:
            new_files = {k: e for k, e in after.files.items() if in_selection(k)}
            for key in sorted(old_files.keys() | new_files.keys()):
                a, b = old_files.get(key), new_files.get(key)
                if a is None or b is None:
                    result.presence(key, a, b)
                elif a.sha256 != b.sha256 or a.size != b.size:
                    result.add(key, "changed")
                elif (compare_modes and a.mode != b.mode) or not _same_time(
                    _entry_time(a), _entry_time(b), precision
                ):
                    result.add(key, "metadata_only")
        else:
            live = _live_files(projects_dir, selected, before.exclude)
            for key in sorted(old_files.keys() | live.keys()):
                entry, found = old_files.get(key), live.get(key)
                if entry is None or found is None:
                    result.presence(key, entry, found[1].st_size if found else None)
                    continue
                path, st = found
                same_time = _same_time(_entry_time(entry), st.st_mtime_ns / 1e9, precision)
                same_mode = not compare_modes or stat.S_IMODE(st.st_mode) == entry.mode
                if st.st_size != entry.size:
                    result.add(key, "changed")
                    continue
                if content or not same_time:
                    files_read += 1
                    if sha256_file(path) != entry.sha256:
                        result.add(key, "changed")
                        continue
                if not (same_time and same_mode):
                    result.add(key, "metadata_only")
    return result.finish(
        old=str(old),
        new=str(new) if new is not None else str(projects_dir),
        against_live=new is None,
        files_read=files_read,
    )


class _Collector:
    """Gathers differences per project and as flat lists."""

    def __init__(self, projects: Sequence[str]) -> None:
        self.projects = {name: ProjectDiff(name=name) for name in projects}
        self.flat: dict[str, list[str]] = {
            "added": [], "removed": [], "changed": [], "metadata_only": [],
        }  # fmt: skip

    def add(self, key: str, kind: str) -> ProjectDiff:
        project, _, rel = key.partition("/")
        self.flat[kind].append(key)
        target = self.projects[project]
        getattr(target, kind).append(rel)
        return target

    def presence(self, key: str, old: FileEntry | None, new: FileEntry | int | None) -> None:
        """A file on one side only."""
        if old is None:
            size = new.size if isinstance(new, FileEntry) else int(new or 0)
            self.add(key, "added").bytes_added += size
        else:
            self.add(key, "removed").bytes_removed += old.size

    def finish(self, **fields: object) -> DiffResult:
        return DiffResult.model_validate(
            {"projects": list(self.projects.values()), **self.flat, **fields}
        )
