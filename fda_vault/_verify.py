"""``verify``: structure, manifest, names, and every file's size and SHA-256."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from fda_vault._archive import Archive
from fda_vault._checks import Problem
from fda_vault._crypto import NO_KEYS, Keys
from fda_vault._errors import ExitCode, IntegrityError, UsageError
from fda_vault._legacy import (
    FORMAT_FDA_VAULT,
    FORMAT_LEGACY_TAR,
    TAR_NOTE,
    format_notes,
    is_legacy_tar,
)
from fda_vault._manifest import BackupManifest
from fda_vault._members import (
    MANIFEST_NAME,
    iter_member,
    manifest_member,
    open_archive,
    read_manifest,
)
from fda_vault._progress import NO_PROGRESS, Progress
from fda_vault._s3 import ArchivePath
from fda_vault._verified import VerificationRecords, file_identity
from fda_vault._zipindex import ZipIndex

if TYPE_CHECKING:
    from fda_vault._encrypted import ArchiveIndex

__all__ = [
    "VerifyReport",
    "VerifyResult",
    "verify",
    "verify_archive",
    "verify_written",
]


class VerifyReport(BaseModel):
    """The full check of one archive."""

    archive: str
    ok: bool
    status: Literal["ok", "damaged", "missing"] = "ok"
    format: str = Field(default=FORMAT_FDA_VAULT, description="fda-vault, or a legacy format")
    notes: list[str] = Field(
        default_factory=list, description="what the archive's format does not record"
    )
    projects: list[str]
    files_checked: int
    bytes_checked: int
    problems: list[Problem]


class VerifyResult(BaseModel):
    """The check of every archive named."""

    ok: bool
    archives: list[VerifyReport]

    @property
    def exit_code(self) -> ExitCode:
        """The worst of the reports: damaged (3) over missing (2) over intact (0)."""
        statuses = {report.status for report in self.archives}
        if "damaged" in statuses:
            return ExitCode.INTEGRITY
        if "missing" in statuses:
            return ExitCode.USAGE
        return ExitCode.OK


def _unreadable_report(
    path: ArchivePath, problem: Problem, status: Literal["damaged", "missing"] = "damaged"
) -> VerifyReport:
    """The report of an archive that could not even be opened or whose manifest is bad."""
    return VerifyReport(
        archive=str(path), ok=False, status=status, projects=[], files_checked=0,
        bytes_checked=0, problems=[problem],
    )  # fmt: skip


def verify_archive(
    path: ArchivePath, *, progress: Progress = NO_PROGRESS, keys: Keys = NO_KEYS
) -> VerifyReport:
    """Check one archive fully; every problem is reported (a missing file too), none
    raised but DecryptError (an encrypted archive that ``keys`` do not open)."""
    if is_legacy_tar(path):
        return _verify_legacy_tar(path, progress)
    zf = _open_or_report(path, keys)
    if isinstance(zf, VerifyReport):
        return zf
    with zf:
        try:
            manifest = read_manifest(zf, path)
        except IntegrityError as exc:
            return _manifest_report(path, exc.why)
        return _check_archive(zf, manifest, path, progress)


def verify_written(
    path: ArchivePath,
    manifest: BackupManifest,
    manifest_sha256: str,
    *,
    progress: Progress = NO_PROGRESS,
    keys: Keys = NO_KEYS,
    index: ArchiveIndex | None = None,
) -> VerifyReport:
    """Check an archive just written from ``manifest``, as fully as :func:`verify_archive`
    (an encrypted one: decrypted with ``keys``, read through its ``index``).

    Its ``metadata.json`` must be, byte for byte, what was serialized (same SHA-256), so
    the manifest in memory is exactly what any reader parses from the disk: parsing it
    again would only double the memory of a large backup. Everything else is read back;
    members copied unchanged from a parent archive, fully checked there, are checked by
    the CRC-32 of their stored bytes (``check_file_data``'s ``copied_as_stored``).
    """
    zf = _open_or_report(path, keys, index)
    if isinstance(zf, VerifyReport):
        return zf
    with zf:
        try:
            info = manifest_member(zf, path)  # the readers' size cap applies here too
            hasher = hashlib.sha256()
            for chunk in iter_member(zf, info, info.file_size, path):
                hasher.update(chunk)
            if hasher.hexdigest() != manifest_sha256:
                raise IntegrityError(path, "metadata.json differs from what was written")
        except IntegrityError as exc:
            return _manifest_report(path, exc.why)
        return _check_archive(zf, manifest, path, progress, copied_as_stored=True)


def _verify_legacy_tar(path: ArchivePath, progress: Progress) -> VerifyReport:
    """A tar.gz of the original library: checked while :meth:`Archive.open` converts it
    (names, entry types, file list, gzip CRC-32), then as any archive."""
    try:
        with Archive.open(path, progress=progress) as opened:
            return _check_archive(opened.index, opened.manifest, path, progress)
    except IntegrityError as exc:
        member = exc.what.removeprefix(f"{path}: ")  # the report names the archive already
        problem = Problem(path=member, kind="corrupt", detail=exc.why)
        report = _unreadable_report(path, problem)
    return report.model_copy(update={"format": FORMAT_LEGACY_TAR, "notes": [TAR_NOTE]})


def _open_or_report(
    path: ArchivePath, keys: Keys, index: ArchiveIndex | None = None
) -> ZipIndex | VerifyReport:
    """The open archive, or the report of one that is not a readable ZIP (DecryptError,
    no key or the wrong one, is raised: it says nothing of the archive)."""
    try:
        return open_archive(path, keys, index=index)
    except UsageError as exc:
        problem = Problem(path=str(path), kind="missing", detail=exc.why)
        return _unreadable_report(path, problem, status="missing")
    except IntegrityError as exc:
        return _unreadable_report(path, Problem(path=str(path), kind="structure", detail=exc.why))


def _manifest_report(path: ArchivePath, why: str) -> VerifyReport:
    return _unreadable_report(path, Problem(path=MANIFEST_NAME, kind="manifest", detail=why))


def _check_archive(
    zf: ZipIndex,
    manifest: BackupManifest,
    path: ArchivePath,
    progress: Progress,
    *,
    copied_as_stored: bool = False,
) -> VerifyReport:
    archive = Archive(path, zf, manifest)
    problems = archive.problems()
    files, nbytes, data_problems = archive.data_problems(
        progress=progress, copied_as_stored=copied_as_stored
    )
    problems.extend(data_problems)
    return VerifyReport(
        archive=str(path),
        ok=not problems,
        status="damaged" if problems else "ok",
        format=manifest.source_format,
        notes=format_notes(manifest.source_format),
        projects=manifest.projects,
        files_checked=files,
        bytes_checked=nbytes,
        problems=problems,
    )


def verify(
    archives: Sequence[ArchivePath], *, progress: Progress = NO_PROGRESS, keys: Keys = NO_KEYS
) -> VerifyResult:
    """Check every archive, each reported (intact, damaged or missing); ``ok`` only when all
    are intact. Each intact one is recorded (:mod:`fda_vault._verified`) for ``prune``."""
    reports = []
    records = VerificationRecords()
    for path in archives:
        try:
            identity = file_identity(path)
        except OSError:
            identity = None  # missing: the report says so
        report = verify_archive(path, progress=progress, keys=keys)
        if report.ok and identity is not None:
            records.add(path, identity)
        reports.append(report)
    records.save()
    return VerifyResult(ok=all(r.ok for r in reports), archives=reports)
