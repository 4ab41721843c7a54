"""``list``: the backups in a folder, or the contents of one archive (manifest only)."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from pydantic import BaseModel, Field

from fda_vault._archive import Archive
from fda_vault._errors import FdaVaultError
from fda_vault._legacy import FORMAT_FDA_VAULT, FORMAT_LEGACY_TAR, format_notes, is_legacy_tar
from fda_vault._manifest import BackupManifest, FileEntry, SkippedEntry, project_of
from fda_vault._members import open_archive, read_manifest
from fda_vault._storage import ARCHIVE_NAME_RE, BackupsFolder

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


def archive_names(backups_dir: Path) -> list[str]:
    """The names of the archives in ``backups_dir`` (files only, symlinks not followed)."""
    try:
        return [archive.name for archive in BackupsFolder(backups_dir).archives()]
    except FdaVaultError:
        return []


def list_backups(backups_dir: Path) -> BackupList:
    """Every archive in ``backups_dir`` (ours and the original scripts'), newest first;
    damaged ones flagged. A folder not made yet simply has none."""
    found: list[tuple[str, BackupSummary]] = []  # (UTC stamp from the name, summary)
    for archive in BackupsFolder(backups_dir).archives():
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

                scan = scan_tar(path)
                summary.created, summary.projects = scan.created_at, scan.projects
                summary.files, summary.data_bytes = len(scan.files), scan.total_bytes
                summary.format = FORMAT_LEGACY_TAR
            else:
                with open_archive(path) as zf:
                    manifest = read_manifest(zf, path)
                summary.created = manifest.backup_timestamp
                summary.projects = manifest.projects
                summary.files = manifest.total_files
                summary.data_bytes = manifest.total_bytes
                summary.format = manifest.source_format
        except FdaVaultError as exc:
            summary.error = exc.why
        found.append((archive.parsed.stamp, summary))
    # The stamp in the name is UTC and sortable; it orders damaged archives too.
    found.sort(key=lambda item: (item[0], item[1].file), reverse=True)
    return BackupList(backups_dir=str(backups_dir), backups=[summary for _, summary in found])


def describe_archive(path: Path, *, with_files: bool = False) -> ArchiveContents:
    """Per-project counts (and optionally every file) of one archive, from its manifest."""
    if is_legacy_tar(path) and not with_files:
        return _describe_legacy_tar(path)
    with Archive.open(path) as opened:
        # Names only (no data is read): a hostile archive is refused even when just listed.
        opened.require("names")
        manifest = opened.manifest
    if manifest.source_format == FORMAT_LEGACY_TAR:
        _name_legacy_tar(manifest)  # converted to list each file's SHA-256 (it has none)
    return _contents(path, manifest, manifest.source_format, with_files=with_files)


def _name_legacy_tar(manifest: BackupManifest) -> None:
    manifest.created_by = "fda-tools/project_backup.py"
    manifest.backup_version = "(tar.gz)"


def _describe_legacy_tar(path: Path) -> ArchiveContents:
    """A tar.gz of the original library, from its headers (read and checked)."""
    from fda_vault._legacytar import scan_tar  # tarfile costs start-up

    scan = scan_tar(path)
    manifest = BackupManifest(
        backup_timestamp=scan.created_at, projects=scan.projects,
        total_projects=len(scan.projects), total_files=len(scan.files),
        total_bytes=scan.total_bytes, checksums={}, empty_dirs=scan.empty_dirs(),
        files=[FileEntry(path=m.path, size=m.size, sha256="0" * 64, mtime=m.mtime,
                         mode=m.mode) for m in scan.files],
    )  # fmt: skip
    _name_legacy_tar(manifest)
    return _contents(path, manifest, FORMAT_LEGACY_TAR, with_files=False)


def _contents(
    path: Path, manifest: BackupManifest, source_format: str, *, with_files: bool
) -> ArchiveContents:
    counts: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0])
    for entry in manifest.files:
        bucket = counts[project_of(entry.path)]
        bucket[0] += 1
        bucket[1] += entry.size
    for folder in manifest.empty_dirs:
        counts[project_of(folder)][2] += 1
    return ArchiveContents(
        archive=str(path),
        created=manifest.backup_timestamp,
        created_by=manifest.created_by,
        backup_version=manifest.backup_version,
        archive_bytes=path.stat().st_size,
        total_files=manifest.total_files,
        total_bytes=manifest.total_bytes,
        projects=[
            ProjectContents(name=p, files=counts[p][0], bytes=counts[p][1], empty_dirs=counts[p][2])
            for p in manifest.projects
        ],
        skipped=manifest.skipped,
        format=source_format,
        notes=format_notes(source_format),
        file_list=list(manifest.files) if with_files else None,
    )
