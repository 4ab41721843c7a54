"""``verify``: structure, manifest, names, and every file's size and SHA-256."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from contextlib import suppress
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, Field

from fda_vault._archive import Archive
from fda_vault._checks import Problem
from fda_vault._crypto import NO_KEYS, Keys
from fda_vault._errors import ExitCode, FdaVaultError, IntegrityError, UsageError
from fda_vault._follow import FollowedMember
from fda_vault._legacy import (
    FORMAT_FDA_VAULT,
    FORMAT_LEGACY_TAR,
    TAR_NOTE,
    format_notes,
    is_legacy_tar,
)
from fda_vault._manifest import BackupManifest
from fda_vault._members import (
    CHECKSUMS_NAME,
    MANIFEST_NAME,
    SIGNATURE_NAMES,
    iter_member,
    manifest_member,
    open_archive,
    read_manifest,
)
from fda_vault._progress import NO_PROGRESS, Progress
from fda_vault._s3 import ArchivePath
from fda_vault._signing import PublicKey, check_signatures, signature_key_id
from fda_vault._storage import sha256_of
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
    sha256: str | None = Field(
        default=None, description="SHA-256 of the archive file (None when it is missing)"
    )
    signed_by: str | None = Field(
        default=None,
        description="the minisign key id its signatures name (checked only when signature_checked)",
    )
    signature_checked: bool = Field(
        default=False, description="its signatures were checked against --trusted-key keys"
    )


class SampleInfo(BaseModel):
    """What ``verify --sample`` chose, and why."""

    percent: float
    location: str
    archives_total: int
    bytes_total: int
    bytes_chosen: int
    never_checked: int = Field(description="archives the trail records no full check of")
    oldest_check: str | None = Field(
        default=None, description="the least recent full check among those chosen"
    )


class VerifyResult(BaseModel):
    """The check of every archive named."""

    ok: bool
    archives: list[VerifyReport]
    sample: SampleInfo | None = Field(
        default=None, description="set by --sample: the share of the location chosen"
    )

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
    path: ArchivePath,
    *,
    progress: Progress = NO_PROGRESS,
    keys: Keys = NO_KEYS,
    trusted: Sequence[PublicKey] = (),
) -> VerifyReport:
    """Check one archive fully; every problem is reported (a missing file too), none
    raised but DecryptError (an encrypted archive that ``keys`` do not open). With
    ``trusted`` keys, an archive not signed by one of them is damaged too."""
    if is_legacy_tar(path):
        report = _verify_legacy_tar(path, progress)
        if trusted:  # the original scripts never signed anything
            unsigned = Problem(path=str(path), kind="signature", detail="not signed (legacy)")
            report.problems.append(unsigned)
            report.ok, report.status, report.signature_checked = False, "damaged", True
        return report
    zf = _open_or_report(path, keys)
    if isinstance(zf, VerifyReport):
        return zf
    with zf:
        try:
            manifest = read_manifest(zf, path)
        except IntegrityError as exc:
            return _manifest_report(path, exc.why)
        report = _check_archive(zf, manifest, path, progress)
        return _with_signature(report, zf, path, trusted)


_MAX_SIGNATURE = 4096  # a .minisig is ~300 bytes


def _with_signature(
    report: VerifyReport, zf: ZipIndex, path: ArchivePath, trusted: Sequence[PublicKey]
) -> VerifyReport:
    """``report`` with the archive's signatures: the key id they name, and with
    ``trusted`` keys, a problem for each member not signed by one of them."""
    texts: dict[str, str | None] = {}
    for member, name in zip((MANIFEST_NAME, CHECKSUMS_NAME), SIGNATURE_NAMES, strict=True):
        try:
            info = zf.getinfo(name)
        except KeyError:
            texts[member] = None
            continue
        try:
            raw = b"".join(iter_member(zf, info, min(info.file_size, _MAX_SIGNATURE), path))
            texts[member] = raw.decode("ascii")
        except (IntegrityError, UnicodeDecodeError):
            texts[member] = ""  # unreadable: no key will accept it
    named = {signature_key_id(text) for text in texts.values() if text}
    report.signed_by = ", ".join(sorted(n for n in named if n)) or None
    if not trusted:
        return report
    members: dict[str, tuple[bytes, str | None]] = {}
    for member, text in texts.items():
        info = zf.getinfo(member)
        members[member] = (b"".join(iter_member(zf, info, info.file_size, path)), text)
    signer, failures = check_signatures(members, list(trusted))
    report.signature_checked = True
    if failures:
        report.problems.extend(
            Problem(path=name, kind="signature", detail=why) for name, why in failures
        )
        report.ok, report.status = False, "damaged"
    else:
        report.signed_by = signer
    return report


def verify_written(
    path: ArchivePath,
    manifest: BackupManifest,
    manifest_sha256: str,
    *,
    progress: Progress = NO_PROGRESS,
    keys: Keys = NO_KEYS,
    index: ArchiveIndex | None = None,
    followed: Mapping[int, FollowedMember] | None = None,
) -> VerifyReport:
    """Check an archive just written from ``manifest``, as fully as :func:`verify_archive`
    (an encrypted one: decrypted with ``keys``, read through its ``index``); ``followed``:
    large members already read back from the file while it was written
    (:mod:`fda_vault._follow`), whose data is not read again where it matches.

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
        return _check_archive(
            zf, manifest, path, progress, copied_as_stored=True, followed=followed
        )


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
    followed: Mapping[int, FollowedMember] | None = None,
) -> VerifyReport:
    archive = Archive(path, zf, manifest)
    problems = archive.problems()
    files, nbytes, data_problems = archive.data_problems(
        progress=progress, copied_as_stored=copied_as_stored, followed=followed
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
    archives: Sequence[ArchivePath],
    *,
    progress: Progress = NO_PROGRESS,
    keys: Keys = NO_KEYS,
    trusted: Sequence[PublicKey] = (),
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
        report = verify_archive(path, progress=progress, keys=keys, trusted=trusted)
        if identity is not None:
            # Recorded by the backup that wrote it, else hashed once (then recorded too):
            # the audit trail names exactly which bytes were found intact or damaged.
            digest = records.sha256(path, identity) if report.ok else None
            with suppress(OSError, FdaVaultError):
                digest = digest or sha256_of(path)
            report.sha256 = digest
            if report.ok:
                records.add(path, identity, digest)
        reports.append(report)
    records.save()
    return VerifyResult(ok=all(r.ok for r in reports), archives=reports)


def sample_archives(location: Path | str, percent: float) -> tuple[list[ArchivePath], SampleInfo]:
    """The archives a rolling check covers today: ``percent`` of the location's bytes,
    those whose last full check (by the location's audit trail) is oldest first, those
    never checked before all; at least one archive. Each check is an event in the
    trail, so the next run goes on where this one stops: a daily ``--sample 5`` goes
    round every archive in about 20 days."""
    from fda_vault._audit import last_full_checks
    from fda_vault._storage import StoredArchive, open_location

    if not 0 < percent <= 100:
        raise UsageError(f"--sample {percent:g}", "must be more than 0 and at most 100 (percent)")
    place = open_location(location)
    stored = place.archives()
    if not stored:
        raise UsageError(place, "no archives to verify", reason="not_found")
    checked = last_full_checks(place)
    # Never checked first (""), then by the time of the last check, then oldest by name.
    order = sorted(stored, key=lambda a: (checked.get(a.name, ""), a.parsed.stamp, a.name))
    total = sum(a.size for a in stored)
    budget = total * percent / 100
    chosen: list[StoredArchive] = []
    taken = 0
    for archive in order:
        if chosen and taken >= budget:
            break
        chosen.append(archive)
        taken += archive.size
    times = [checked[a.name] for a in chosen if a.name in checked]
    info = SampleInfo(
        percent=percent,
        location=str(place),
        archives_total=len(stored),
        bytes_total=total,
        bytes_chosen=taken,
        never_checked=sum(1 for a in stored if a.name not in checked),
        oldest_check=min(times) if len(times) == len(chosen) and times else None,
    )
    return [a.path for a in chosen], info
