"""``import``: turn archives of the original scripts into verified fda-vault archives.

The new archive keeps the original's label and time in its name, says in its manifest
what it was imported from (``imported_from``: file, format, SHA-256, ``created_by``), and
is written, verified and published like a backup (temporary name, fsync, read back,
never replacing a file). The original is never changed or deleted.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack
from datetime import datetime, timezone
from pathlib import Path
from typing import IO

from pydantic import BaseModel, Field

from fda_vault import __version__
from fda_vault._archive import Archive
from fda_vault._audit import trail_head_for_archive
from fda_vault._backup import finish_archive
from fda_vault._errors import ExitCode, FdaVaultError, IntegrityError, UsageError
from fda_vault._fsio import (
    os_failure,
    sha256_file,
)
from fda_vault._legacy import FORMAT_LEGACY_TAR, FORMAT_LEGACY_ZIP
from fda_vault._legacytar import convert_tar, is_legacy_tar, scan_tar
from fda_vault._locking import DEFAULT_LOCK_TIMEOUT
from fda_vault._manifest import AuditAnchor, BackupManifest, ImportedFrom
from fda_vault._members import DATA_PREFIX
from fda_vault._progress import NO_PROGRESS, Progress
from fda_vault._storage import BackupsFolder, archive_label, parse_archive_name
from fda_vault._verified import record_verified
from fda_vault._verify import verify_written
from fda_vault._zipwriter import ZipWriter

__all__ = ["ImportResult", "ImportedArchive", "import_legacy"]


class ImportedArchive(BaseModel):
    """One legacy archive: the fda-vault archive made from it, or why none was."""

    source: str
    source_format: str | None = None
    source_sha256: str | None = None
    archive: str | None = Field(default=None, description="the new archive (None on failure)")
    files: int = 0
    bytes: int = 0
    error: str | None = None
    exit_code: int = 0


class ImportResult(BaseModel):
    """Every archive given, each imported or not."""

    ok: bool
    archives: list[ImportedArchive]

    @property
    def exit_code(self) -> int:
        """The worst of the archives' codes (damaged 3 over usage 2 over failure 1)."""
        codes = {a.exit_code for a in self.archives}
        for code in (ExitCode.INTEGRITY, ExitCode.USAGE, ExitCode.FAILURE):
            if code in codes:
                return int(code)
        return max(codes, default=0)


def _name_parts(source: Path, manifest_time: str, projects: list[str]) -> tuple[str, datetime]:
    """The label and UTC time for the new name: the original's, else from its manifest."""
    parsed = parse_archive_name(source.name)
    if parsed is not None and parsed.time is not None:
        return parsed.label, parsed.time
    try:
        when = datetime.fromisoformat(manifest_time)
    except ValueError:
        when = datetime.now(timezone.utc)
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    label = archive_label(projects, all_projects=False)
    return label, when.astimezone(timezone.utc).replace(microsecond=0)


def _hashed(chunks: Iterable[bytes], hasher: hashlib._Hash, progress: Progress) -> Iterator[bytes]:
    """``chunks``, each fed to ``hasher`` and counted as progress on the way."""
    for chunk in chunks:
        hasher.update(chunk)
        progress.advance(len(chunk))
        yield chunk


def _write_from_legacy_zip(
    opened: Archive,
    out: IO[bytes],
    imported_from: ImportedFrom,
    progress: Progress,
    audit_head: AuditAnchor | None,
) -> tuple[BackupManifest, str]:
    """Write the files of an opened ``backup_project.py`` ZIP (its structure checked) into
    a new archive: each is read once, its size, CRC-32 and SHA-256 checked on the way."""
    legacy = opened.manifest
    writer = ZipWriter(out)
    progress.start("importing", legacy.total_bytes)
    for entry in legacy.files:
        name = DATA_PREFIX + entry.path
        hasher = hashlib.sha256()
        writer.add_file(
            name, _hashed(opened.read(entry), hasher, progress), mtime=entry.mtime,
            mode=entry.mode, size_hint=entry.size, level=6,
        )  # fmt: skip
        if hasher.hexdigest() != entry.sha256:
            raise IntegrityError(f"{opened.path}: {name}", "content does not match its SHA-256")
    progress.finish()
    manifest = BackupManifest(
        backup_timestamp=legacy.backup_timestamp,
        projects=legacy.projects,
        total_projects=len(legacy.projects),
        total_files=len(legacy.files),
        total_bytes=legacy.total_bytes,
        checksums=dict(legacy.checksums),
        files=list(legacy.files),
        created_by=f"fda-vault {__version__}",
        imported_from=imported_from,
        audit_head=audit_head,
    )
    digest = finish_archive(writer, manifest)
    return manifest, digest


def _import_one(
    source: Path, output_dir: Path, lock_timeout: float, progress: Progress
) -> ImportedArchive:
    if not source.is_file():
        raise UsageError(
            source, "no such archive" if not source.exists() else "not a file", reason="not_found"
        )
    source_sha = sha256_file(source)
    with ExitStack() as stack:
        tar = is_legacy_tar(source)
        opened: Archive | None = None
        if tar:
            scan = scan_tar(source)
            time_text, projects, created_by = scan.created_at, scan.projects, ""
            source_format = FORMAT_LEGACY_TAR
        else:
            opened = stack.enter_context(Archive.open(source))
            legacy = opened.manifest
            if legacy.source_format != FORMAT_LEGACY_ZIP:
                raise UsageError(source, "already an fda-vault archive: nothing to import")
            opened.require()  # names, membership, checksums.txt; the data as it is copied
            time_text, projects = legacy.backup_timestamp, legacy.projects
            created_by, source_format = legacy.created_by, FORMAT_LEGACY_ZIP
        imported_from = ImportedFrom(
            file=source.name, format=source_format, sha256=source_sha, created_by=created_by
        )
        label, when = _name_parts(source, time_text, projects)
        folder = BackupsFolder(output_dir)
        folder.create()
        with folder.lock(lock_timeout):
            name = folder.unused_name(label, when)
            audit_head = trail_head_for_archive(folder)
            try:
                with folder.new_archive(name) as pending:
                    with pending.open(expected_size=0) as out:
                        if opened is None:
                            manifest, digest = convert_tar(
                                source, scan, out, progress=progress,
                                imported_from=imported_from, audit_head=audit_head,
                            )  # fmt: skip
                        else:
                            manifest, digest = _write_from_legacy_zip(
                                opened, out, imported_from, progress, audit_head
                            )
                        pending.finish(out)
                    pending.sync()
                    report = verify_written(pending.readable, manifest, digest, progress=progress)
                    if not report.ok:
                        first = report.problems[0]
                        raise IntegrityError(
                            pending.readable,
                            f"verification after writing failed: {first.detail}",
                        )
                    final = folder.publish(pending, name)
            except OSError as exc:
                raise os_failure(output_dir, exc, "cannot write the archive") from None
    record_verified(final)
    return ImportedArchive(
        source=str(source), source_format=source_format, source_sha256=source_sha,
        archive=str(final), files=manifest.total_files, bytes=manifest.total_bytes,
    )  # fmt: skip


def import_legacy(
    sources: Sequence[Path],
    *,
    output_dir: Path,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    progress: Progress = NO_PROGRESS,
) -> ImportResult:
    """Import each legacy archive into ``output_dir``; each reported, none deleted."""
    results = []
    for source in sources:
        try:
            results.append(_import_one(source, output_dir, lock_timeout, progress))
        except FdaVaultError as exc:
            results.append(
                ImportedArchive(source=str(source), error=exc.message, exit_code=int(exc.exit_code))
            )
    return ImportResult(ok=all(r.error is None for r in results), archives=results)
