"""Reading archive members defensively: member-name safety, bounded streaming reads, the manifest.

Nothing here extracts; it only tells which names are safe and yields verified bytes.
"""

from __future__ import annotations

import re
import stat
import unicodedata
import zipfile
from collections.abc import Iterable, Iterator, Sequence
from contextlib import suppress
from types import TracebackType
from typing import TYPE_CHECKING

from fda_vault._crypto import NO_KEYS, Keys, encryption_of
from fda_vault._deflate import INFLATE_ERRORS, Inflater, crc32, new_inflater
from fda_vault._errors import IntegrityError, UsageError
from fda_vault._fsio import os_failure
from fda_vault._manifest import BackupManifest, has_control_char, is_safe_segment, parse_manifest
from fda_vault._s3 import ArchivePath, ObjectPath
from fda_vault._zipformat import FLAG_ENCRYPTED, LOCAL_HEADER
from fda_vault._zipindex import EXTRA_ALLOWANCE, Member, ZipFormatError, ZipIndex

if TYPE_CHECKING:
    from fda_vault._encrypted import ArchiveIndex
    from fda_vault._follow import FollowedMember

__all__ = [
    "CHECKSUMS_NAME",
    "DATA_PREFIX",
    "MANIFEST_NAME",
    "MAX_MANIFEST_BYTES",
    "READ_CHUNK",
    "SIGNATURE_NAMES",
    "all_entries_plain",
    "all_members_plain",
    "all_paths_plain",
    "fits_one_read",
    "iter_member",
    "manifest_member",
    "member_name_problem",
    "open_archive",
    "read_back_as_listed",
    "read_manifest",
    "read_raw_checked",
    "read_small_members",
]

MANIFEST_NAME = "metadata.json"
CHECKSUMS_NAME = "checksums.txt"
# A signed archive's minisign signatures of those two (fda_vault._signing).
SIGNATURE_NAMES = (f"{MANIFEST_NAME}.minisig", f"{CHECKSUMS_NAME}.minisig")
DATA_PREFIX = "projects/"
READ_CHUNK = 1 << 20
# A manifest of a million files is ~250 MB; anything larger is hostile.
MAX_MANIFEST_BYTES = 512 << 20


# The shape of nearly every good name, as one regex: a member under projects/<project>/ whose
# project segment is not hidden and has no drive letter, with no "." or ".." segment. Names
# that do not match take the slow path, which says what is wrong (or accepts them).
_PLAIN = r"[^/\\\x00-\x1f\x7f]+"
_RELATIVE = rf"(?!\.)(?![^/]:){_PLAIN}(?:/(?!\.\.?(?:/|$)){_PLAIN})+/?"
_GOOD_MEMBER = re.compile(
    rf"projects/{_RELATIVE}|{re.escape(MANIFEST_NAME)}|{re.escape(CHECKSUMS_NAME)}"
    + "".join(f"|{re.escape(name)}" for name in SIGNATURE_NAMES)
)
_GOOD_RELATIVE = re.compile(_RELATIVE)


def member_name_problem(name: str) -> str | None:
    """Why ``name`` is not an acceptable member of a v1 archive, or None if it is."""
    if _GOOD_MEMBER.fullmatch(name):
        return None
    return _explain_member_name(name)


def _explain_member_name(name: str) -> str | None:
    """:func:`member_name_problem` without its shortcut: each rule in turn."""
    if not name:
        return "empty member name"
    if has_control_char(name):
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
    if name in {MANIFEST_NAME, CHECKSUMS_NAME, *SIGNATURE_NAMES}:
        return None
    if not name.startswith(DATA_PREFIX) or len(segments) < 3:
        return "member outside projects/<project>/"
    if not is_safe_segment(segments[1]) or segments[1].startswith("."):
        return "unsafe project name in member path"
    return None


def all_members_plain(names: Iterable[str]) -> bool:
    """True when :func:`member_name_problem` accepts every name, judged in one pass at C
    speed (~0.6 us a name); False means only that some name needs the slow path."""
    return all(map(_GOOD_MEMBER.fullmatch, names))


def all_paths_plain(paths: Iterable[str]) -> bool:
    """:func:`all_members_plain` for manifest paths (``<project>/<path>``, no prefix)."""
    return all(map(_GOOD_RELATIVE.fullmatch, paths))


def is_regular_or_dir(info: Member) -> bool:
    """False for symlinks and other special entries, judged by their Unix attributes."""
    unix_mode = info.external_attr >> 16
    if stat.S_IFMT(unix_mode) == 0:  # no file type recorded (e.g. Python's zipfile.writestr)
        return True
    if info.is_dir():
        return stat.S_ISDIR(unix_mode)
    return stat.S_ISREG(unix_mode)


# (is a folder, file type, encrypted) of every acceptable entry: see is_regular_or_dir.
_PLAIN_ENTRIES = {(False, 0, 0), (False, stat.S_IFREG, 0), (True, 0, 0), (True, stat.S_IFDIR, 0)}


def all_entries_plain(members: Iterable[Member]) -> bool:
    """True when every member is a regular file or folder by :func:`is_regular_or_dir`
    and none is encrypted, judged from one set of (folder, type, encrypted) triples."""
    kinds = {
        (m.filename.endswith("/"), stat.S_IFMT(m.external_attr >> 16), m.flag_bits & FLAG_ENCRYPTED)
        for m in members
    }
    return kinds <= _PLAIN_ENTRIES


def nfc_key(name: str) -> str:
    """The key under which two names collide on a normalising filesystem."""
    return unicodedata.normalize("NFC", name)


def open_archive(
    path: ArchivePath, keys: Keys = NO_KEYS, *, index: ArchiveIndex | None = None
) -> ZipIndex:
    """Open ``path`` as a ZIP, or raise UsageError (missing) / IntegrityError (not a ZIP)
    / OperationError (cannot be read) / DecryptError (encrypted, no or wrong key): the
    ZIP layer's errors in fda-vault's terms. An object in object storage is read with
    ranged GETs (only what is asked for). An encrypted archive (``.zip.age``,
    ``.zip.gpg``) is read through its index (``index`` if given: a backup's own, checked
    before it is published) and decrypted with ``keys`` only as far as is read."""
    kind = index.kind if index is not None else encryption_of(path.name)
    if kind is not None:
        from fda_vault._encrypted import DecryptedArchive, read_index

        if index is None:
            index = read_index(path, kind, keys)
        decrypted = DecryptedArchive(path, kind, keys, index)
        try:
            return ZipIndex(path, decrypted)
        except ZipFormatError as exc:
            decrypted.close()
            raise IntegrityError(path, f"not a readable ZIP archive ({exc})") from None
        except BaseException:
            decrypted.close()
            raise
    if isinstance(path, ObjectPath):
        from fda_vault._s3 import S3Object

        source = S3Object(path)
        try:
            return ZipIndex(path, source)
        except ZipFormatError as exc:
            source.close()
            raise IntegrityError(path, f"not a readable ZIP archive ({exc})") from None
    if not path.exists():
        raise UsageError(path, "no such archive", reason="not_found")
    if not path.is_file():
        raise UsageError(path, "not a file", reason="not_found")
    try:
        return ZipIndex(path)
    except ZipFormatError as exc:
        raise IntegrityError(path, f"not a readable ZIP archive ({exc})") from None
    except FileNotFoundError:
        raise UsageError(path, "no such archive", reason="not_found") from None
    except OSError as exc:
        raise os_failure(path, exc, "cannot read") from None


def manifest_member(zf: ZipIndex, archive: ArchivePath) -> Member:
    """The ``metadata.json`` member, refused when missing or larger than any reader takes."""
    try:
        info = zf.getinfo(MANIFEST_NAME)
    except KeyError:
        raise IntegrityError(archive, "metadata.json is missing: not a fda-vault archive") from None
    if info.file_size > MAX_MANIFEST_BYTES:
        raise IntegrityError(archive, f"metadata.json declares {info.file_size} bytes (too large)")
    return info


def read_manifest(zf: ZipIndex, archive: ArchivePath) -> BackupManifest:
    """Read and validate ``metadata.json`` (bounded in size)."""
    info = manifest_member(zf, archive)
    buffer = bytearray()  # grown in place: half the peak of joining a list of chunks
    for chunk in iter_member(zf, info, info.file_size, archive):
        buffer += chunk
    # pydantic copies a bytearray before parsing it, at the moment memory peaks; copied
    # here, before the parse, the copy is gone by then (24,355 files: 8 MiB less).
    raw = bytes(buffer)
    del buffer
    manifest = parse_manifest(raw, str(archive))
    if not manifest.files and manifest.checksums:
        from fda_vault._legacy import is_legacy_zip_manifest, legacy_zip_manifest

        if is_legacy_zip_manifest(manifest, raw):
            return legacy_zip_manifest(manifest, zf)
    return manifest


_SMALL_MEMBER = 1 << 20


def _data_start(zf: ZipIndex, info: Member, where: str, head: bytes | memoryview) -> int:
    """Offset of a member's data, its local header checked against the directory."""
    try:
        return zf.data_offset(info, head)
    except ZipFormatError as exc:
        raise IntegrityError(where, str(exc)) from None


def _checked_where(info: Member, expected_size: int, archive: ArchivePath) -> str:
    """Where a member's errors are reported, after checking what its record declares."""
    where = f"{archive}: {info.filename}"
    if info.file_size != expected_size:
        raise IntegrityError(
            where, f"size {info.file_size} in the ZIP directory, {expected_size} in the manifest"
        )
    if info.flag_bits & FLAG_ENCRYPTED:
        raise IntegrityError(where, "encrypted member")
    if info.compress_type not in {zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED}:
        raise IntegrityError(where, f"unsupported compression method {info.compress_type}")
    return where


class _ReadErrors:
    """Turns a corrupt deflate stream or a failing medium into one error naming the member."""

    __slots__ = ("where",)

    def __init__(self, where: str) -> None:
        self.where = where

    def __enter__(self) -> None:
        return None

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            return
        if isinstance(exc, INFLATE_ERRORS):
            raise IntegrityError(self.where, f"corrupt data ({exc})") from None
        if isinstance(exc, OSError):  # the medium failed, not the archive's content
            raise os_failure(self.where, exc, "cannot read") from None


def _check_stream_end(where: str, inflater: Inflater | None) -> None:
    """A deflate stream must end, and nothing may follow it in the member."""
    if inflater is not None and not inflater.eof:
        raise IntegrityError(where, "deflate stream ends early")
    if inflater is not None and inflater.unused_data:
        raise IntegrityError(where, "data after the end of the deflate stream")


def _check_end(where: str, info: Member, produced: int, expected_size: int, crc: int) -> None:
    if produced != expected_size:
        raise IntegrityError(where, f"holds {produced} bytes, the manifest says {expected_size}")
    if crc != info.CRC:
        raise IntegrityError(where, "CRC-32 mismatch")


def fits_one_read(info: Member, expected_size: int) -> bool:
    """Small enough for :func:`read_member` (read and inflated whole)."""
    return expected_size <= READ_CHUNK and info.compress_size <= _SMALL_MEMBER


def read_member(
    zf: ZipIndex,
    info: Member,
    expected_size: int,
    archive: ArchivePath,
    head: bytes | memoryview | None = None,
) -> bytes:
    """The bytes of a member of at most :data:`READ_CHUNK` bytes, checked as
    :func:`iter_member` checks them: one ``pread`` and one inflate call, no generator
    (thousands of small files are read this way). ``head``: the archive's bytes from
    the member's header on, already read (whatever it lacks is read here)."""
    where = _checked_where(info, expected_size, archive)
    if not fits_one_read(info, expected_size):
        raise ValueError(f"{where}: not a small member")  # a caller's mistake, not the archive's
    pread = zf.pread
    with _ReadErrors(where):
        if head is None:
            span = LOCAL_HEADER.size + len(info.raw_name) + EXTRA_ALLOWANCE
            head = pread(span + info.compress_size, info.header_offset)
        start = _data_start(zf, info, where, head) - info.header_offset
        raw = head[start : start + info.compress_size]
        if len(raw) != info.compress_size:  # a longer extra field than allowed for
            raw = pread(info.compress_size, info.header_offset + start)
        if len(raw) != info.compress_size:
            raise IntegrityError(where, "archive truncated inside this member")
        inflater = new_inflater() if info.compress_type == zipfile.ZIP_DEFLATED else None
        # One byte more than declared is enough to tell a member that inflates past it.
        data = bytes(raw) if inflater is None else inflater.decompress(raw, expected_size + 1)
        if len(data) > expected_size:
            raise IntegrityError(where, "inflates past its declared size")
        _check_stream_end(where, inflater)
    _check_end(where, info, len(data), expected_size, crc32(data))
    return data


# A run of small members is read with one pread where it lies together like this.
_RUN_SPAN = 16 << 20


def read_small_members(
    zf: ZipIndex, wanted: Sequence[tuple[Member, int]], archive: ArchivePath
) -> Iterator[bytes | IntegrityError]:
    """For each (member, expected size) of ``wanted``, members small enough for
    :func:`read_member`: its bytes, or the IntegrityError :func:`read_member` raises for
    it. Where they lie together in the archive (thousands of small files), their span
    is read with one ``pread`` and each member is checked in it by :func:`read_member`."""
    if not wanted:
        return
    low = min(info.header_offset for info, _size in wanted)
    high = max(
        info.header_offset + LOCAL_HEADER.size + len(info.filename) * 4 + EXTRA_ALLOWANCE
        + info.compress_size
        for info, _size in wanted
    )  # fmt: skip
    stored = sum(info.compress_size for info, _size in wanted)
    view: memoryview | None = None
    # Together: the span is about their bytes and headers (members scattered among
    # others, as a restore of one project may find them, are read one by one).
    if high - low <= min(_RUN_SPAN, 2 * stored + 2048 * len(wanted)):
        with suppress(OSError):  # then each member is read (and its error told) alone
            view = memoryview(zf.pread(high - low, low))
    for info, size in wanted:
        try:
            head = None if view is None else view[info.header_offset - low :]
            yield read_member(zf, info, size, archive, head)
        except IntegrityError as exc:
            yield exc


def iter_member(
    zf: ZipIndex, info: Member, expected_size: int, archive: ArchivePath
) -> Iterator[bytes]:
    """Yield a member's bytes, never more than ``expected_size``; CRC checked at the end.

    Reads with ``pread`` (so threads can share the archive) and inflates with ISA-L where
    available; a member can never make us produce more than the manifest declares.
    """
    if fits_one_read(info, expected_size):
        data = read_member(zf, info, expected_size, archive)
        if data:
            yield data
        return
    where = _checked_where(info, expected_size, archive)
    pread = zf.pread
    inflater = new_inflater() if info.compress_type == zipfile.ZIP_DEFLATED else None
    produced = crc = 0
    with _ReadErrors(where):
        position = _data_start(zf, info, where, b"")
        left = info.compress_size
        while left > 0:
            raw = pread(min(READ_CHUNK, left), position)
            if not raw:
                raise IntegrityError(where, "archive truncated inside this member")
            position += len(raw)
            left -= len(raw)
            while True:
                if inflater is None:
                    out, raw, more = raw, b"", False
                else:
                    if inflater.eof:
                        if raw:
                            raise IntegrityError(where, "data after the end of the deflate stream")
                        break
                    out = inflater.decompress(raw, READ_CHUNK)
                    raw = inflater.unconsumed_tail
                    # Output cut at the limit: more may be waiting even with no input left
                    # (ISA-L takes all the input in at once, zlib leaves it in the tail).
                    more = len(out) == READ_CHUNK
                produced += len(out)
                if produced > expected_size:
                    raise IntegrityError(where, "inflates past its declared size")
                crc = crc32(out, crc)
                if out:
                    yield out
                if not raw and not more:
                    break
        _check_stream_end(where, inflater)
    _check_end(where, info, produced, expected_size, crc)


def read_back_as_listed(
    zf: ZipIndex, info: Member, expected_size: int, seen: FollowedMember, archive: ArchivePath
) -> bool:
    """Whether ``seen``, a member read back from the file while it was written
    (:mod:`fda_vault._follow`), is this member as the complete archive lists it: the same
    name, offset, sizes and CRC-32, and its data where the local header, read again now,
    puts it. IntegrityError for a record or local header that is wrong in itself."""
    where = _checked_where(info, expected_size, archive)
    if not (
        seen.name == info.raw_name
        and seen.header_offset == info.header_offset
        and seen.compressed_size == info.compress_size
        and seen.size == expected_size
        and seen.crc32 == info.CRC
        and seen.deflated == (info.compress_type == zipfile.ZIP_DEFLATED)
    ):
        return False
    with _ReadErrors(where):
        return _data_start(zf, info, where, b"") == seen.data_start


def read_raw_checked(
    zf: ZipIndex, info: Member, stored_crc: int, archive: ArchivePath
) -> Iterator[bytes]:
    """A member's bytes as stored (compressed, not inflated), checked against the CRC-32
    recorded when they were written: what a repeat backup copies and reads back."""
    where = f"{archive}: {info.filename}"
    crc = 0
    with _ReadErrors(where):
        try:
            for chunk in zf.raw_chunks(info):
                crc = crc32(chunk, crc)
                yield chunk
        except ZipFormatError as exc:
            raise IntegrityError(where, str(exc)) from None
    if crc != stored_crc:
        raise IntegrityError(where, "stored bytes do not match the CRC-32 recorded when written")
