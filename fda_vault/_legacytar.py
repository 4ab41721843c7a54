"""tar.gz archives of the original library ``project_backup.py``, read defensively.

Named ``fda_backup_<label>_<YYYYMMDD_HHMMSS_ffffff>.tar.gz`` (by default in
``~/.claude/fda-510k-data/backups/``), they hold ``<project>/<path>`` (one project) or
``projects/<project>/<path>`` (all projects) and a ``manifest.json`` (``created_at``,
``project_name``, null for all, ``source_dir``, ``file_count``, ``files``: the member
names). There is no per-file hash: only gzip's CRC-32 protects the data.

Reading takes two passes over the gzip stream (memory stays flat):

1. :func:`scan_tar`: every header and ``manifest.json``, with the rules of our own
   archives: names (traversal, absolute paths, backslashes, control characters,
   duplicates, Unicode NFC twins), entry types (symlinks, hard links, devices and FIFOs
   refused), the file list against ``manifest.json``, the gzip CRC-32 and length.
2. :func:`convert_tar`: the same stream again, each file hashed (SHA-256) and written into
   an fda-vault ZIP with a full manifest, so verify and restore then run their usual,
   proven path on it, and ``import`` keeps it.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import os
import stat
import tarfile
import tempfile
import unicodedata
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, NamedTuple

from pydantic import ValidationError

from fda_vault import __version__
from fda_vault._errors import IntegrityError, UsageError
from fda_vault._fsio import fsync_path, os_failure
from fda_vault._legacy import FORMAT_LEGACY_TAR, is_legacy_tar
from fda_vault._manifest import (
    RESERVED_PROJECT_NAME,
    AuditAnchor,
    BackupManifest,
    FileEntry,
    ImportedFrom,
    project_of,
)
from fda_vault._members import DATA_PREFIX, MAX_MANIFEST_BYTES, READ_CHUNK, member_name_problem
from fda_vault._progress import NO_PROGRESS, Progress
from fda_vault._zipwriter import ZipWriter

__all__ = [
    "TAR_MANIFEST_NAME",
    "TarMember",
    "TarScan",
    "convert_tar",
    "converted",
    "is_legacy_tar",
    "scan_tar",
]

TAR_MANIFEST_NAME = "manifest.json"
_MAX_MEMBERS = 2_000_000
_STREAM_ERRORS = (tarfile.TarError, EOFError, gzip.BadGzipFile, zlib.error, ValueError)


class TarMember(NamedTuple):
    """A file or folder of the archive, named as in ours (``<project>/<path>``)."""

    path: str
    tar_name: str
    is_dir: bool
    size: int
    mode: int
    mtime: float


@dataclass
class TarScan:
    """What pass 1 found: the manifest.json facts and every member, all checked."""

    created_at: str
    project_name: str | None
    projects: list[str]
    members: list[TarMember] = field(default_factory=list)

    @property
    def files(self) -> list[TarMember]:
        """The regular files."""
        return [m for m in self.members if not m.is_dir]

    @property
    def total_bytes(self) -> int:
        """The files' bytes."""
        return sum(m.size for m in self.members if not m.is_dir)

    def empty_dirs(self) -> list[str]:
        """Folders with nothing under them (``<project>/<path>``)."""
        parents = {m.path.rsplit("/", 1)[0] for m in self.members}
        return sorted(
            m.path for m in self.members if m.is_dir and m.path not in parents and "/" in m.path
        )


@contextmanager
def _open_stream(path: Path) -> Iterator[tuple[gzip.GzipFile, tarfile.TarFile]]:
    """The archive as a one-pass tar stream over a gzip reader that checks CRC and size."""
    if not path.exists():
        raise UsageError(path, "no such archive", reason="not_found")
    if not path.is_file():
        raise UsageError(path, "not a file", reason="not_found")
    try:
        raw = open(path, "rb")  # noqa: SIM115 (closed below, after the gzip reader)
    except OSError as exc:
        raise os_failure(path, exc, "cannot read") from None
    try:
        gz = gzip.GzipFile(fileobj=raw, mode="rb")
        try:
            tar = tarfile.open(fileobj=gz, mode="r|")  # noqa: SIM115 (closed by the with)
        except _STREAM_ERRORS as exc:
            raise IntegrityError(path, f"not a readable tar.gz archive ({exc})") from None
        with tar:
            yield gz, tar
    finally:
        raw.close()


def _drain(gz: gzip.GzipFile) -> None:
    """Read to the end, where gzip checks its CRC-32 and length (tarfile stops early)."""
    while gz.read(READ_CHUNK):
        pass


def _entry_problem(info: tarfile.TarInfo) -> str | None:
    if info.issym():
        return "symlink entry"
    if info.islnk():
        return "hard link entry"
    if not (info.isreg() or info.isdir()):
        return "special entry (device, FIFO or other)"
    return None


def _read_tar_manifest(
    path: Path, tar: tarfile.TarFile, info: tarfile.TarInfo
) -> dict[str, object]:
    if not info.isreg() or info.size > MAX_MANIFEST_BYTES:
        raise IntegrityError(path, f"{TAR_MANIFEST_NAME} is not a plain file of sane size")
    handle = tar.extractfile(info)
    assert handle is not None
    try:
        document = json.loads(handle.read())
    except ValueError as exc:
        raise IntegrityError(path, f"{TAR_MANIFEST_NAME} is not valid JSON ({exc})") from None
    if not isinstance(document, dict):
        raise IntegrityError(path, f"{TAR_MANIFEST_NAME} is not a JSON object")
    return document


def scan_tar(path: Path) -> TarScan:
    """Pass 1: read and check every header and ``manifest.json`` (IntegrityError on the
    first problem). No file data is kept; all of it is read (for gzip's CRC-32)."""
    headers: list[tarfile.TarInfo] = []
    document: dict[str, object] | None = None
    with _open_stream(path) as (gz, tar):
        try:
            for info in tar:
                if info.name == TAR_MANIFEST_NAME and document is None:
                    document = _read_tar_manifest(path, tar, info)
                    continue
                problem = _entry_problem(info)
                if problem:
                    raise IntegrityError(f"{path}: {info.name}", problem)
                headers.append(info)
                if len(headers) > _MAX_MEMBERS:
                    raise IntegrityError(path, "too many members")
            _drain(gz)
        except _STREAM_ERRORS as exc:
            raise IntegrityError(path, f"damaged tar.gz ({exc})") from None
        except OSError as exc:
            raise os_failure(path, exc, "cannot read") from None
    if document is None:
        raise IntegrityError(path, f"{TAR_MANIFEST_NAME} is missing: not a fda-tools backup")
    return _checked_scan(path, document, headers)


def _checked_scan(
    path: Path, document: dict[str, object], headers: list[tarfile.TarInfo]
) -> TarScan:
    project_name = document.get("project_name")
    files = document.get("files")
    if project_name is not None and not isinstance(project_name, str):
        raise IntegrityError(path, f"{TAR_MANIFEST_NAME}: project_name is not a string")
    if not isinstance(files, list) or not all(isinstance(f, str) for f in files):
        raise IntegrityError(path, f"{TAR_MANIFEST_NAME}: files is not a list of names")
    if document.get("file_count") != len(files):
        raise IntegrityError(path, f"{TAR_MANIFEST_NAME}: file_count disagrees with files")
    # One project: "<project>/<path>"; all of them: "projects/<project>/<path>".
    prefix = f"{project_name}/" if project_name is not None else DATA_PREFIX
    members: list[TarMember] = []
    seen: dict[str, str] = {}
    for info in headers:
        name = info.name.rstrip("/") if info.isdir() else info.name
        if not name.startswith(prefix) or name == prefix.rstrip("/"):
            if info.isdir() and prefix.startswith(name + "/"):
                continue  # the folder "projects/" (or the project's own folder) itself
            raise IntegrityError(f"{path}: {info.name}", f"member outside {prefix}")
        rel = name[len(prefix) :] if project_name is None else name
        problem = member_name_problem(DATA_PREFIX + rel + ("/" if info.isdir() else ""))
        if problem:
            raise IntegrityError(f"{path}: {info.name}", problem)
        key = unicodedata.normalize("NFC", rel)
        if key in seen:
            raise IntegrityError(f"{path}: {info.name}", f"same name as {seen[key]}")
        seen[key] = info.name
        members.append(
            TarMember(
                path=rel, tar_name=info.name, is_dir=info.isdir(), size=info.size,
                mode=stat.S_IMODE(info.mode) & 0o777, mtime=float(info.mtime),
            )
        )  # fmt: skip
    listed = set(files)
    present = {m.tar_name for m in members if not m.is_dir}
    if listed != present:
        extra = sorted(present - listed)
        missing = sorted(listed - present)
        what = (
            f"{extra[0]} is not in {TAR_MANIFEST_NAME}"
            if extra
            else (f"{missing[0]} is in {TAR_MANIFEST_NAME} but not in the archive")
        )
        raise IntegrityError(path, what)
    projects = sorted({project_of(m.path) for m in members})
    if project_name is not None:
        projects = [project_name]
    for project in projects:
        problem = member_name_problem(f"{DATA_PREFIX}{project}/x")
        if problem:
            raise IntegrityError(f"{path}: {project}", problem)
        if project == RESERVED_PROJECT_NAME:
            raise IntegrityError(
                f"{path}: {project}",
                "a project named like the backups folder, which fda-vault reserves; "
                "extract this archive with tar",
            )
    created = document.get("created_at")
    return TarScan(
        created_at=created if isinstance(created, str) else "",
        project_name=project_name,
        projects=projects,
        members=members,
    )


def convert_tar(
    path: Path,
    scan: TarScan,
    out: IO[bytes],
    *,
    progress: Progress = NO_PROGRESS,
    imported_from: ImportedFrom | None = None,
    audit_head: AuditAnchor | None = None,
) -> tuple[BackupManifest, str]:
    """Pass 2: write the archive's files into an fda-vault ZIP on ``out``; (its manifest,
    the SHA-256 of its metadata.json). The data must be what pass 1 checked."""
    from fda_vault._backup import finish_archive  # backup imports much; only this needs it

    expected = {m.tar_name: m for m in scan.members if not m.is_dir}
    entries: list[FileEntry] = []
    writer = ZipWriter(out)
    progress.start("converting", scan.total_bytes)
    with _open_stream(path) as (gz, tar):
        try:
            for info in tar:
                member = expected.pop(info.name, None) if info.isreg() else None
                if member is None:
                    continue
                handle = tar.extractfile(info)
                assert handle is not None
                hasher = hashlib.sha256()

                def chunks(
                    handle: IO[bytes] = handle, hasher: hashlib._Hash = hasher
                ) -> Iterator[bytes]:
                    while chunk := handle.read(READ_CHUNK):
                        hasher.update(chunk)
                        progress.advance(len(chunk))
                        yield chunk

                result = writer.add_file(
                    DATA_PREFIX + member.path, chunks(), mtime=member.mtime, mode=member.mode,
                    size_hint=member.size, level=6,
                )  # fmt: skip
                if result.size != member.size:
                    raise IntegrityError(f"{path}: {info.name}", "size differs from its header")
                entries.append(
                    FileEntry(
                        path=member.path, size=member.size, sha256=hasher.hexdigest(),
                        mtime=member.mtime, mode=member.mode,
                    )
                )  # fmt: skip
            _drain(gz)
        except _STREAM_ERRORS as exc:
            raise IntegrityError(path, f"damaged tar.gz ({exc})") from None
    if expected:
        raise IntegrityError(path, f"{next(iter(expected))} changed between two reads")
    folders = {m.path: m for m in scan.members if m.is_dir}
    empty_dirs = scan.empty_dirs()
    for folder in empty_dirs:
        writer.add_dir(
            f"{DATA_PREFIX}{folder}/", mtime=folders[folder].mtime, mode=folders[folder].mode
        )
    entries.sort(key=lambda e: e.path)
    try:
        manifest = _converted_manifest(scan, entries, empty_dirs, imported_from)
    except ValidationError as exc:
        why = f"cannot describe it as a manifest: {exc.errors()[0]['msg']}"
        raise IntegrityError(path, why) from None
    manifest.audit_head = audit_head
    manifest_sha256 = finish_archive(writer, manifest)
    progress.finish()
    manifest.source_format = FORMAT_LEGACY_TAR
    return manifest, manifest_sha256


def _converted_manifest(
    scan: TarScan,
    entries: list[FileEntry],
    empty_dirs: list[str],
    imported_from: ImportedFrom | None,
) -> BackupManifest:
    return BackupManifest(
        backup_timestamp=scan.created_at,
        projects=scan.projects,
        total_projects=len(scan.projects),
        total_files=len(entries),
        total_bytes=sum(e.size for e in entries),
        checksums={e.path: e.sha256 for e in entries},
        files=entries,
        empty_dirs=empty_dirs,
        created_by=f"fda-vault {__version__}",
        imported_from=imported_from,
    )


@contextmanager
def converted(
    path: Path, *, progress: Progress = NO_PROGRESS
) -> Iterator[tuple[Path, BackupManifest, str, TarScan]]:
    """``path`` converted into a temporary fda-vault ZIP (in a private folder under
    ``$TMPDIR``, removed afterwards): (zip, manifest, metadata SHA-256, scan)."""
    scan = scan_tar(path)
    try:
        folder = Path(tempfile.mkdtemp(prefix="fda-vault-legacy-"))
    except OSError as exc:
        raise os_failure("temporary folder", exc) from None
    target = folder / "converted.zip"
    try:
        try:
            fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            with open(fd, "wb", buffering=READ_CHUNK) as out:
                manifest, digest = convert_tar(path, scan, out, progress=progress)
            fsync_path(target)
        except OSError as exc:
            raise os_failure(target, exc, "cannot convert") from None
        yield target, manifest, digest, scan
    finally:
        target.unlink(missing_ok=True)
        os.rmdir(folder)
