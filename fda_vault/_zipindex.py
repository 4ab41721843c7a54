"""The central directory of a ZIP archive, read compactly and defensively.

``zipfile.ZipInfo`` costs about 1 KB per member; an index of 20,000 files would be most of
our memory budget. This reader keeps what verify, list and restore need (a few slots per
member), reads the directory in one ``pread``, understands ZIP64, and turns every
malformation into an :class:`IntegrityError` instead of an exception from deep inside.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType
from typing import Protocol

from fda_vault._zipformat import (
    CENTRAL,
    CENTRAL_SIG,
    EOCD,
    EOCD_SIG,
    FLAG_UTF8,
    LOCAL_HEADER,
    LOCAL_SIG,
    MAX16,
    MAX32,
    MAX_COMMENT,
    MAX_EXTRACT_VERSION,
    ZIP64_EOCD,
    ZIP64_EOCD_SIG,
    ZIP64_EXTRA_ID,
    ZIP64_LOCATOR,
    ZIP64_LOCATOR_SIG,
)

__all__ = ["EXTRA_ALLOWANCE", "LocalFile", "Member", "RandomAccess", "ZipFormatError", "ZipIndex"]

_EOCD, _ZIP64_LOCATOR, _ZIP64_EOCD, _CENTRAL = EOCD, ZIP64_LOCATOR, ZIP64_EOCD, CENTRAL
# A member's first read takes its local header too: room for an extra field that long.
EXTRA_ALLOWANCE = 64
_RAW_CHUNK = 1 << 20


class RandomAccess(Protocol):
    """Bytes at any offset of an archive: a local file today; a ranged GET of an object
    in object storage is the next implementation."""

    size: int

    def pread(self, length: int, offset: int, /) -> bytes:
        """Up to ``length`` bytes at ``offset`` (fewer only at the end)."""

    def close(self) -> None:
        """Release what reading holds; safe to call twice."""


class LocalFile:
    """:class:`RandomAccess` over a local file: ``pread`` on one descriptor, so threads
    can share it."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        try:
            self.size = os.fstat(self._fd).st_size
        except BaseException:
            os.close(self._fd)
            raise

    def pread(self, length: int, offset: int, /) -> bytes:
        """``os.pread`` (looked up at each call, so a test can make the disk fail)."""
        return os.pread(self._fd, length, offset)

    def close(self) -> None:
        """Close the descriptor once."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


class ZipFormatError(ValueError):
    """The file is not a readable ZIP archive (the message says why)."""


class Member:
    """One central-directory record (the attributes of ``zipfile.ZipInfo`` we use)."""

    __slots__ = (
        "CRC",
        "compress_size",
        "compress_type",
        "dos_datetime",
        "external_attr",
        "file_size",
        "filename",
        "flag_bits",
        "header_offset",
    )

    def __init__(
        self,
        filename: str,
        flag_bits: int,
        compress_type: int,
        crc: int,
        compress_size: int,
        file_size: int,
        header_offset: int,
        external_attr: int,
        dos_datetime: int = 0,
    ) -> None:
        self.filename = filename
        self.flag_bits = flag_bits
        self.compress_type = compress_type
        self.CRC = crc
        self.compress_size = compress_size
        self.file_size = file_size
        self.header_offset = header_offset
        self.external_attr = external_attr
        self.dos_datetime = dos_datetime  # (date << 16) | time, as in the directory

    @property
    def raw_name(self) -> bytes:
        """The name's bytes as stored: decoding them (strict UTF-8, or cp437, which maps
        all 256 byte values) is reversible, so they are not kept (memory: ~90 B a member)."""
        name = self.filename
        # ASCII is the same in both encodings, and UTF-8's codec is the fast one.
        return name.encode("utf-8" if self.flag_bits & FLAG_UTF8 or name.isascii() else "cp437")

    @property
    def date_time(self) -> tuple[int, int, int, int, int, int]:
        """The DOS modification time as (year, month, day, hour, minute, second), the
        fields of ``zipfile.ZipInfo.date_time`` (local time, 2-second steps)."""
        date, clock = self.dos_datetime >> 16, self.dos_datetime & 0xFFFF
        return (
            (date >> 9) + 1980, (date >> 5) & 0xF, date & 0x1F,
            clock >> 11, (clock >> 5) & 0x3F, (clock & 0x1F) * 2,
        )  # fmt: skip

    def is_dir(self) -> bool:
        """A folder entry (its name ends with ``/``)."""
        return self.filename.endswith("/")


def _zip64_values(extra: bytes, wanted: list[bool]) -> list[int]:
    """The 64-bit size/offset fields that the 32-bit record marked as overflowing."""
    pos = 0
    while pos + 4 <= len(extra):
        tag, length = struct.unpack_from("<HH", extra, pos)
        if tag == ZIP64_EXTRA_ID:
            count = sum(wanted)
            if length < 8 * count:
                raise ValueError("ZIP64 extra field too short")
            return list(struct.unpack_from(f"<{count}Q", extra, pos + 4))
        pos += 4 + length
    raise ValueError("ZIP64 extra field missing")


class ZipIndex:
    """An open archive: its members by name, and the descriptor to read them from."""

    def __init__(self, path: Path | object, source: RandomAccess | None = None) -> None:
        """Read the directory of the archive at ``path`` (through ``source`` if given, e.g.
        ranged reads of a remote object, ``path`` then only naming it): OSError as the
        system gives it, ZipFormatError when it is not a readable ZIP."""
        self.path = path
        if source is None:
            assert isinstance(path, Path)
            source = LocalFile(path)
        self.source: RandomAccess = source
        self.pread = self.source.pread  # bound once: the member readers call it per read
        # A forked worker may share a local file's descriptor; not an object's connections.
        self.is_local_file = isinstance(source, LocalFile)
        try:
            self._members = self._read_directory()
        except ZipFormatError:
            self.close()
            raise
        except (ValueError, struct.error, IndexError, UnicodeDecodeError) as exc:
            self.close()
            raise ZipFormatError(str(exc)) from None
        except BaseException:
            self.close()
            raise
        self._by_name = {m.filename: m for m in self._members}

    def _bad(self, why: str) -> ZipFormatError:
        return ZipFormatError(why)

    def _read_directory(self) -> list[Member]:
        size = self.source.size
        if size < _EOCD.size:
            raise self._bad("too short to be a ZIP file" if size else "empty file")
        # An archive without a comment (every one we write) ends with its end record:
        # the last bytes are read first, the comment's whole reach only if need be (a
        # source that reads far back at a cost, such as an encrypted one, is spared it).
        tail_len = min(size, _ZIP64_LOCATOR.size + _EOCD.size)
        tail = self.pread(tail_len, size - tail_len)
        at = tail_len - _EOCD.size
        if tail[at : at + 4] != EOCD_SIG or tail[-2:] != b"\0\0":
            tail_len = min(size, MAX_COMMENT + _EOCD.size)
            tail = self.pread(tail_len, size - tail_len)
            at = tail.rfind(EOCD_SIG)
        if at < 0 or at + _EOCD.size > len(tail):
            raise self._bad("no end-of-directory record: not a ZIP file, or truncated")
        eocd_offset = size - tail_len + at
        _sig, _disk, _cd_disk, _n_disk, count, cd_size, cd_offset, _comment = _EOCD.unpack_from(
            tail, at
        )
        locator_at = at - _ZIP64_LOCATOR.size
        if locator_at >= 0 and tail[locator_at : locator_at + 4] == ZIP64_LOCATOR_SIG:
            _lsig, _ldisk, z64_offset, _ndisks = _ZIP64_LOCATOR.unpack_from(tail, locator_at)
            record = self.pread(_ZIP64_EOCD.size, z64_offset)
            if len(record) != _ZIP64_EOCD.size or record[:4] != ZIP64_EOCD_SIG:
                raise self._bad("bad ZIP64 end-of-directory record")
            fields = _ZIP64_EOCD.unpack(record)
            count, cd_size, cd_offset = fields[7], fields[8], fields[9]
            eocd_offset = z64_offset
        elif count == MAX16 or MAX32 in (cd_size, cd_offset):
            raise self._bad("ZIP64 record missing")
        if cd_offset + cd_size > eocd_offset:
            raise self._bad("central directory runs past its end record (truncated?)")
        directory = self.pread(cd_size, cd_offset)
        if len(directory) != cd_size:
            raise self._bad("central directory truncated")
        members: list[Member] = []
        append, unpack, end = members.append, _CENTRAL.unpack_from, len(directory)
        pos = 0
        for _ in range(count):
            if pos + _CENTRAL.size > end:
                raise self._bad("central directory truncated")
            (sig, _made, need, flags, method, dos_time, dos_date, crc, csize, usize, name_len,
             extra_len, comment_len, _disk, _internal, external, offset) = unpack(
                directory, pos
            )  # fmt: skip
            if sig != CENTRAL_SIG:
                raise self._bad("bad central directory record")
            name_at = pos + _CENTRAL.size
            extra_at = name_at + name_len
            pos = extra_at + extra_len + comment_len
            if pos > end:
                raise self._bad("central directory truncated")
            raw_name = directory[name_at:extra_at]
            if usize == MAX32 or csize == MAX32 or offset == MAX32:
                wanted = [usize == MAX32, csize == MAX32, offset == MAX32]
                values = iter(_zip64_values(directory[extra_at : extra_at + extra_len], wanted))
                usize = next(values) if wanted[0] else usize
                csize = next(values) if wanted[1] else csize
                offset = next(values) if wanted[2] else offset
            utf8 = flags & FLAG_UTF8 or raw_name.isascii()  # ASCII: same text either way
            name = raw_name.decode("utf-8" if utf8 else "cp437")
            if need & 0xFF > MAX_EXTRACT_VERSION:
                # A feature no reader here has (unzip and Python's zipfile refuse it too).
                raise self._bad(f"{name} needs ZIP version {(need & 0xFF) / 10:.1f}")
            append(
                Member(name, flags, method, crc, csize, usize, offset, external,
                       (dos_date << 16) | dos_time)
            )  # fmt: skip
        return members

    def data_offset(self, member: Member, head: bytes | memoryview = b"") -> int:
        """Offset of ``member``'s data, after checking its local header (signature, and the
        same name as in the directory); ``head`` may hold bytes already read from the
        header's offset. ZipFormatError when the header is bad."""
        raw_name = member.raw_name
        if len(head) < LOCAL_HEADER.size + len(raw_name):
            head = self.pread(LOCAL_HEADER.size + len(raw_name), member.header_offset)
        if len(head) < LOCAL_HEADER.size:
            raise ZipFormatError("local header truncated")
        signature, name_len, extra_len = LOCAL_HEADER.unpack_from(head)
        if signature != LOCAL_SIG:
            raise ZipFormatError("bad local header signature")
        if head[LOCAL_HEADER.size : LOCAL_HEADER.size + name_len] != raw_name:
            raise ZipFormatError("local header names another file")
        return int(member.header_offset) + LOCAL_HEADER.size + int(name_len) + int(extra_len)

    def raw_chunks(self, member: Member, chunk: int = _RAW_CHUNK) -> Iterator[bytes]:
        """``member``'s data exactly as stored (compressed), ``chunk`` bytes at a time; a
        small member costs one ``pread`` with its header. ZipFormatError when the header
        is bad or the archive ends inside the data."""
        left = member.compress_size
        first = self.pread(
            LOCAL_HEADER.size + len(member.raw_name) + EXTRA_ALLOWANCE + min(left, chunk),
            member.header_offset,
        )
        start = self.data_offset(member, first)
        position = start
        data = first[start - member.header_offset : start - member.header_offset + left]
        while True:
            if data:
                yield data
                left -= len(data)
                position += len(data)
            if left <= 0:
                return
            data = self.pread(min(chunk, left), position)
            if not data:
                raise ZipFormatError(f"{member.filename}: archive truncated inside this member")

    def infolist(self) -> list[Member]:
        """Every member, in directory order (duplicates included)."""
        return self._members

    def getinfo(self, name: str) -> Member:
        """The member called ``name`` (the last one, if the name repeats); KeyError if none."""
        return self._by_name[name]

    def close(self) -> None:
        """Release the source (the file descriptor)."""
        self.source.close()

    def __enter__(self) -> ZipIndex:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
