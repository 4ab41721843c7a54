"""Archives of the original scripts (fda-tools), read under fda-vault's safety rules.

Users switching to fda-vault have two kinds of older backups:

- **ZIP** archives of ``backup_project.py``: named and laid out like ours
  (``metadata.json``, ``checksums.txt``, ``projects/<project>/<path>``), but the manifest
  has only the ``checksums`` map (no ``files`` list: no sizes, modes or mtimes),
  ``created_by`` is ``fda-tools/backup_project.py`` and ``checksums.txt`` lines name
  ``<project>/<path>`` without the ``projects/`` prefix. Recognised by that shape and
  ``created_by``, never by the version string (it is "1.0.0", the same as ours): an
  fda-vault archive without ``files`` is damaged, not legacy. Read in place: a manifest is
  built from the ``checksums`` map and the ZIP directory, and every rule of our own
  archives applies (names, membership, ``checksums.txt``, each SHA-256).
- **tar.gz** archives of the library ``project_backup.py`` (:mod:`fda_vault._legacytar`).

What a format does not record is filled in and said (:data:`ZIP_NOTE`, :data:`TAR_NOTE`).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import TypeGuard

from fda_vault._errors import UsageError
from fda_vault._manifest import BackupManifest, FileEntry
from fda_vault._s3 import ArchivePath, ObjectPath
from fda_vault._zipindex import ZipIndex

__all__ = [
    "DEFAULT_DIR_MODE",
    "DEFAULT_FILE_MODE",
    "FORMAT_FDA_VAULT",
    "FORMAT_LEGACY_TAR",
    "FORMAT_LEGACY_ZIP",
    "LEGACY_CREATED_BY",
    "TAR_NOTE",
    "ZIP_NOTE",
    "current_umask",
    "format_notes",
    "is_legacy_tar",
    "is_legacy_zip_manifest",
    "legacy_zip_manifest",
    "local_tar",
]

FORMAT_FDA_VAULT = "fda-vault"
FORMAT_LEGACY_ZIP = "legacy (fda-tools ZIP)"
FORMAT_LEGACY_TAR = "legacy (fda-tools tar.gz)"
LEGACY_CREATED_BY = "fda-tools/"
DEFAULT_FILE_MODE = 0o644
DEFAULT_DIR_MODE = 0o755

ZIP_NOTE = (
    f"{FORMAT_LEGACY_ZIP}: the format records no sizes, modes or modification times; "
    "sizes are taken from the ZIP directory, times from the ZIP entries (2-second steps, "
    "local time), modes are 0644 under the umask; empty folders and symbolic links were "
    "never backed up by it"
)
TAR_NOTE = (
    f"{FORMAT_LEGACY_TAR}: the format has no per-file hash, so the data is checked only by "
    "gzip's CRC-32 and the manifest.json file list; modes and times are the tar entries'"
)

_DATA_PREFIX = "projects/"  # the same layout as ours (fda_vault.members.DATA_PREFIX)


_GZIP_MAGIC = b"\x1f\x8b"


def local_tar(path: ArchivePath) -> Path:
    """``path`` of a tar.gz of the original library, which is read from local folders
    only: one in object storage is refused (UsageError) with the way round it."""
    if isinstance(path, Path):
        return path
    raise UsageError(
        path,
        "tar.gz archives of the original library are read from a local folder only: "
        "download it first, or import it (fda-vault import) before copying it",
    )


def is_legacy_tar(path: ArchivePath) -> TypeGuard[Path]:
    """True when ``path`` is a gzip file (judged by its content, not its name); an object
    named ``*.tar.gz`` is refused (:func:`local_tar`), any other object is no tar.gz."""
    if isinstance(path, ObjectPath):
        if path.name.endswith(".tar.gz"):
            local_tar(path)
        return False
    try:
        with open(path, "rb") as fp:
            return fp.read(2) == _GZIP_MAGIC
    except OSError:
        return False


def format_notes(source_format: str) -> list[str]:
    """What ``source_format`` does not record, to show beside a report (none for ours)."""
    return {FORMAT_LEGACY_ZIP: [ZIP_NOTE], FORMAT_LEGACY_TAR: [TAR_NOTE]}.get(source_format, [])


def current_umask() -> int:
    """The process umask, read without changing it where /proc tells it."""
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def is_legacy_zip_manifest(manifest: BackupManifest, raw: bytes) -> bool:
    """True for the metadata.json of a ``backup_project.py`` ZIP: made by fda-tools, with a
    ``checksums`` map and no ``files`` list at all."""
    if manifest.files or not manifest.created_by.startswith(LEGACY_CREATED_BY):
        return False
    try:
        document = json.loads(raw)
    except ValueError:
        return False
    return isinstance(document, dict) and "files" not in document


def legacy_zip_manifest(manifest: BackupManifest, zf: ZipIndex) -> BackupManifest:
    """The manifest of a legacy ZIP with what its format lacks filled in: each file's size
    from the ZIP directory, its time from the ZIP entry, mode 0644 under the umask."""
    mode = DEFAULT_FILE_MODE & ~current_umask()
    files = []
    for path, digest in sorted(manifest.checksums.items()):
        try:
            member = zf.getinfo(_DATA_PREFIX + path)
        except KeyError:  # missing: check_structure reports it
            files.append(FileEntry(path=path, size=0, sha256=digest, mtime=0.0, mode=mode))
            continue
        files.append(
            FileEntry(path=path, size=member.file_size, sha256=digest,
                      mtime=_local_time(member.date_time), mode=mode)
        )  # fmt: skip
    filled = manifest.model_copy(
        update={"files": files, "total_bytes": sum(entry.size for entry in files)}
    )
    filled.source_format = FORMAT_LEGACY_ZIP
    return filled


def _local_time(date_time: tuple[int, int, int, int, int, int]) -> float:
    """A ZIP entry's DOS time (local time) as seconds since the epoch; 0 if invalid."""
    try:
        return time.mktime((*date_time, 0, 0, -1))
    except (OverflowError, ValueError):
        return 0.0
