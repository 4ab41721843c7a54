"""Reading fda-vault archives defensively: member-name safety, bounded streaming reads.

Nothing here extracts; it only tells which names are safe and yields verified bytes.
"""

from __future__ import annotations

import stat
import unicodedata
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path

from fda_vault.errors import IntegrityError, OperationError, UsageError
from fda_vault.fsio import describe_os_error
from fda_vault.manifest import BackupManifest, is_safe_segment, parse_manifest

__all__ = [
    "CHECKSUMS_NAME",
    "DATA_PREFIX",
    "MANIFEST_NAME",
    "READ_CHUNK",
    "iter_member",
    "member_name_problem",
    "open_archive",
    "read_manifest",
]

MANIFEST_NAME = "metadata.json"
CHECKSUMS_NAME = "checksums.txt"
DATA_PREFIX = "projects/"
READ_CHUNK = 1 << 20
# A manifest of a million files is ~250 MB; anything larger is hostile.
MAX_MANIFEST_BYTES = 512 << 20


def member_name_problem(name: str) -> str | None:
    """Why ``name`` is not an acceptable member of a v1 archive, or None if it is."""
    if not name:
        return "empty member name"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "control character in member name"
    if "\\" in name:
        return "backslash in member name"
    if name.startswith("/"):
        return "absolute member path"
    if len(name) >= 2 and name[1] == ":":
        return "drive letter in member name"
    body = name[:-1] if name.endswith("/") else name
    segments = body.split("/")
    if any(seg in {"", ".", ".."} for seg in segments):
        return "'..', '.' or empty segment in member path"
    if name in {MANIFEST_NAME, CHECKSUMS_NAME}:
        return None
    if not name.startswith(DATA_PREFIX) or len(segments) < 3:
        return "member outside projects/<project>/"
    if not is_safe_segment(segments[1]) or segments[1].startswith("."):
        return "unsafe project name in member path"
    return None


def is_regular_or_dir(info: zipfile.ZipInfo) -> bool:
    """False for symlinks and other special entries, judged by their Unix attributes."""
    unix_mode = info.external_attr >> 16
    if stat.S_IFMT(unix_mode) == 0:  # no file type recorded (e.g. Python's zipfile.writestr)
        return True
    if info.is_dir():
        return stat.S_ISDIR(unix_mode)
    return stat.S_ISREG(unix_mode)


def nfc_key(name: str) -> str:
    """The key under which two names collide on a normalising filesystem."""
    return unicodedata.normalize("NFC", name)


def open_archive(path: Path) -> zipfile.ZipFile:
    """Open ``path`` as a ZIP, or raise UsageError (missing) / IntegrityError (not a ZIP)."""
    if not path.exists():
        raise UsageError(path, "no such archive")
    if not path.is_file():
        raise UsageError(path, "not a file")
    try:
        return zipfile.ZipFile(path)
    except zipfile.BadZipFile as exc:
        raise IntegrityError(path, f"not a readable ZIP archive ({exc})") from None
    except OSError as exc:
        raise OperationError(path, f"cannot read ({describe_os_error(exc)})") from None
    except (ValueError, EOFError, NotImplementedError) as exc:
        raise IntegrityError(path, f"not a readable ZIP archive ({exc})") from None


def read_manifest(zf: zipfile.ZipFile, archive: Path) -> BackupManifest:
    """Read and validate ``metadata.json`` (bounded in size)."""
    try:
        info = zf.getinfo(MANIFEST_NAME)
    except KeyError:
        raise IntegrityError(archive, "metadata.json is missing: not a fda-vault archive") from None
    if info.file_size > MAX_MANIFEST_BYTES:
        raise IntegrityError(archive, f"metadata.json declares {info.file_size} bytes (too large)")
    raw = b"".join(iter_member(zf, info, info.file_size, archive))
    return parse_manifest(raw, str(archive))


def iter_member(
    zf: zipfile.ZipFile, info: zipfile.ZipInfo, expected_size: int, archive: Path
) -> Iterator[bytes]:
    """Yield a member's bytes, never more than ``expected_size``; CRC checked at the end."""
    where = f"{archive}: {info.filename}"
    if info.file_size != expected_size:
        raise IntegrityError(
            where, f"size {info.file_size} in the ZIP directory, {expected_size} in the manifest"
        )
    produced = 0
    try:
        with zf.open(info) as member:
            while True:
                chunk = member.read(READ_CHUNK)
                if not chunk:
                    break
                produced += len(chunk)
                if produced > expected_size:
                    raise IntegrityError(where, "inflates past its declared size")
                yield chunk
    except IntegrityError:
        raise
    except (zipfile.BadZipFile, zlib.error, EOFError, ValueError, NotImplementedError) as exc:
        raise IntegrityError(where, f"corrupt data ({exc})") from None
    except RuntimeError as exc:  # encrypted members
        raise IntegrityError(where, f"unreadable member ({exc})") from None
    except OSError as exc:  # the medium failed, not the archive's content
        raise OperationError(where, f"cannot read ({describe_os_error(exc)})") from None
    if produced != expected_size:
        raise IntegrityError(where, f"holds {produced} bytes, the manifest says {expected_size}")
