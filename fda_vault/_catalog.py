"""``list``: the backups in a folder, or the contents of one archive (manifest only)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel, Field

from fda_vault._archive import Archive
from fda_vault._crypto import NO_KEYS, Keys
from fda_vault._errors import DecryptError, FdaVaultError
from fda_vault._legacy import (
    FORMAT_FDA_VAULT,
    FORMAT_LEGACY_TAR,
    format_notes,
    is_legacy_tar,
    local_tar,
)
from fda_vault._manifest import FileEntry, SkippedEntry, project_of
from fda_vault._members import open_archive, read_manifest
from fda_vault._s3 import ArchivePath
from fda_vault._storage import ARCHIVE_NAME_RE, open_location

__all__ = [
    "ARCHIVE_NAME_RE",
    "ArchiveContents",
    "BackupList",
    "BackupSummary",
    "ProjectContents",
    "archive_names",
    "describe_archive",
    "list_backups",
]


class BackupSummary(BaseModel):
    """One archive in the backups folder."""

    file: str
    path: str
    label: str
    created: str | None
    projects: list[str]
    files: int
    data_bytes: int
    archive_bytes: int
    format: str = FORMAT_FDA_VAULT
    error: str | None = None
    encrypted: str | None = Field(default=None, description="age or gpg when it is encrypted")
    locked: bool = Field(
        default=False, description="encrypted, and no key or passphrase given opens it"
    )


class BackupList(BaseModel):
    """The backups folder, newest first."""

    backups_dir: str
    backups: list[BackupSummary]


class ProjectContents(BaseModel):
    """One project inside an archive."""

    name: str
    files: int
    bytes: int
    empty_dirs: int


class ArchiveContents(BaseModel):
    """What one archive holds, read from its manifest."""

    archive: str
    created: str
    created_by: str
    backup_version: str
    archive_bytes: int
    total_files: int
    total_bytes: int
    projects: list[ProjectContents]
    skipped: list[SkippedEntry]
    format: str = FORMAT_FDA_VAULT
    notes: list[str] = Field(default_factory=list, description="what the format does not record")
    file_list: list[FileEntry] | None = None


def archive_names(backups_dir: Path | str) -> list[str]:
    """The names of the archives in ``backups_dir`` (files only, symlinks not followed)."""
    try:
        return [archive.name for archive in open_location(backups_dir).archives()]
    except FdaVaultError:
        return []


def list_backups(backups_dir: Path | str, *, keys: Keys = NO_KEYS) -> BackupList:
    """Every archive in ``backups_dir`` (a folder or ``s3://…``; ours and the original
    scripts'), newest first; damaged ones flagged. A folder not made yet simply has none."""
    found: list[tuple[str, BackupSummary]] = []  # (UTC stamp from the name, summary)
    location = open_location(backups_dir)
    for archive in location.archives():
        path = archive.path
        summary = BackupSummary(
            file=archive.name,
            path=str(path),
            label=archive.parsed.label,
            created=None,
            projects=[],
            files=0,
            data_bytes=0,
            archive_bytes=archive.size,
        )
        try:
            if archive.parsed.kind == "legacy-tar":
                from fda_vault._legacytar import scan_tar  # tarfile costs start-up

                scan = scan_tar(local_tar(path))
                summary.created, summary.projects = scan.created_at, scan.projects
                summary.files, summary.data_bytes = len(scan.files), scan.total_bytes
                summary.format = FORMAT_LEGACY_TAR
            else:
                with open_archive(path, keys) as zf:
                    manifest = read_manifest(zf, path)
                summary.created = manifest.backup_timestamp
                summary.projects = manifest.projects
                summary.files = manifest.total_files
                summary.data_bytes = manifest.total_bytes
                summary.format = manifest.source_format
        except DecryptError as exc:
            summary.locked = True
            summary.error = exc.why
        except FdaVaultError as exc:
            summary.error = exc.why
        summary.encrypted = archive.parsed.cipher
        found.append((archive.parsed.stamp, summary))
    # The stamp in the name is UTC and sortable; it orders damaged archives too.
    found.sort(key=lambda item: (item[0], item[1].file), reverse=True)
    return BackupList(backups_dir=str(location), backups=[summary for _, summary in found])


_TAR_CREATED_BY = "fda-tools/project_backup.py"
_TAR_VERSION = "(tar.gz)"  # the format has no version field


def describe_archive(
    path: ArchivePath, *, with_files: bool = False, keys: Keys = NO_KEYS
) -> ArchiveContents:
    """Per-project counts (and optionally every file) of one archive, from its manifest."""
    if is_legacy_tar(path) and not with_files:
        return _describe_legacy_tar(path)
    with Archive.open(path, keys=keys) as opened:
        # Names only (no data is read): a hostile archive is refused even when just listed.
        opened.require("names")
        manifest = opened.manifest
        archive_bytes = opened.stored_size
    legacy_tar = manifest.source_format == FORMAT_LEGACY_TAR  # converted: each SHA-256 known
    return _contents(
        path,
        created=manifest.backup_timestamp,
        created_by=_TAR_CREATED_BY if legacy_tar else manifest.created_by,
        version=_TAR_VERSION if legacy_tar else manifest.backup_version,
        projects=manifest.projects,
        sizes=[(entry.path, entry.size) for entry in manifest.files],
        empty_dirs=manifest.empty_dirs,
        skipped=manifest.skipped,
        source_format=manifest.source_format,
        file_list=list(manifest.files) if with_files else None,
        archive_bytes=archive_bytes,
    )


def _describe_legacy_tar(path: Path) -> ArchiveContents:
    """A tar.gz of the original library, from its headers (read and checked)."""
    from fda_vault._legacytar import scan_tar  # tarfile costs start-up

    scan = scan_tar(path)
    return _contents(
        path,
        created=scan.created_at,
        created_by=_TAR_CREATED_BY,
        version=_TAR_VERSION,
        projects=scan.projects,
        sizes=[(member.path, member.size) for member in scan.files],
        empty_dirs=scan.empty_dirs(),
        skipped=[],
        source_format=FORMAT_LEGACY_TAR,
        file_list=None,
        archive_bytes=path.stat().st_size,
    )


def _contents(
    path: ArchivePath,
    *,
    created: str,
    created_by: str,
    version: str,
    projects: list[str],
    sizes: list[tuple[str, int]],
    empty_dirs: list[str],
    skipped: list[SkippedEntry],
    source_format: str,
    file_list: list[FileEntry] | None,
    archive_bytes: int,
) -> ArchiveContents:
    """Counts per project of ``sizes`` (``(path, size)`` of each file) and ``empty_dirs``."""
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for file_path, size in sizes:
        bucket = counts[project_of(file_path)]
        bucket[0] += 1
        bucket[1] += size
    for folder in empty_dirs:
        counts[project_of(folder)][2] += 1
    return ArchiveContents(
        archive=str(path),
        created=created,
        created_by=created_by,
        backup_version=version,
        archive_bytes=archive_bytes,
        total_files=len(sizes),
        total_bytes=sum(size for _, size in sizes),
        projects=[
            ProjectContents(name=p, files=counts[p][0], bytes=counts[p][1], empty_dirs=counts[p][2])
            for p in projects
        ],
        skipped=skipped,
        format=source_format,
        notes=format_notes(source_format),
        file_list=file_list,
    )
