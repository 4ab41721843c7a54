"""A small streaming ZIP writer: deflate or store, UTF-8 names, ZIP64 where needed.

We write ZIP ourselves (rather than through ``zipfile``) for two reasons: an entry can
be rolled back when its source file changes under us (the backup then retries it), and
compression is a plain function of bytes, so callers may compress in worker threads.
The output is a standard archive that ``unzip`` and Python's ``zipfile`` read.
"""

from __future__ import annotations

import struct
import time
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, NamedTuple, Protocol

from fda_vault._deflate import crc32, new_deflater
from fda_vault._zipformat import (
    CENTRAL,
    CENTRAL_SIG,
    DEFLATED,
    DESCRIPTOR_SIG,
    EOCD_SIG,
    FLAG_DESCRIPTOR,
    FLAG_UTF8,
    LOCAL_SIG,
    MAX16,
    MAX32,
    STORED,
    ZIP64_EOCD_SIG,
    ZIP64_EXTRA_ID,
    ZIP64_LOCATOR_SIG,
)

__all__ = ["BuiltEntry", "EntryFollower", "EntryResult", "ZipWriter", "file_attr", "small_entry"]

# The signatures as the little-endian integers that struct.pack("<I") writes.
_LOCAL_SIG, _CENTRAL_SIG, _EOCD_SIG, _ZIP64_EOCD_SIG, _ZIP64_LOCATOR_SIG, _DESCRIPTOR_SIG = (
    int.from_bytes(sig, "little")
    for sig in (LOCAL_SIG, CENTRAL_SIG, EOCD_SIG, ZIP64_EOCD_SIG, ZIP64_LOCATOR_SIG, DESCRIPTOR_SIG)
)
_ZIP64_EXTRA_ID = ZIP64_EXTRA_ID
_MAX32, _MAX16, _FLAG_UTF8, _STORED, _DEFLATED = MAX32, MAX16, FLAG_UTF8, STORED, DEFLATED
# Deflate can expand incompressible data slightly; stay clear of the 4 GiB edge.
_ZIP64_THRESHOLD = MAX32 - (64 << 20)
_UNIX = 3
_S_IFREG = 0o100000
_S_IFDIR = 0o040000
_MSDOS_DIR = 0x10


@dataclass(frozen=True)
class EntryResult:
    """What one written entry holds."""

    crc32: int
    size: int
    compressed_size: int
    method: int


class _Record(NamedTuple):  # one per member: a tuple is made fastest, and small
    name: bytes
    flags: int
    method: int
    dos_time: int
    dos_date: int
    crc32: int
    compressed_size: int
    size: int
    offset: int
    external_attr: int
    zip64_local: bool


@dataclass(frozen=True)
class _OpenEntry:
    name: bytes
    flags: int
    method: int
    dos_time: int
    dos_date: int
    offset: int
    external_attr: int
    zip64: bool
    data_start: int
    described: bool  # its CRC and sizes follow the data (a data descriptor)


# A whole entry built apart from any writer (see :func:`small_entry`): its record
# without the offset, and the length of its header and data.
BuiltEntry = tuple[bytes, int, int, int, int, int, int, int, int, int]


def small_entry(
    name: str, *, mtime: float, external_attr: int, data: bytes, crc32: int, size: int,
    stored: bool,
) -> tuple[bytes, BuiltEntry]:  # fmt: skip
    """The local header of a whole entry far below 4 GiB whose ``data`` (stored or
    deflated) is known, and its description for :meth:`ZipWriter.add_built`. A pure
    function of its arguments, so worker processes can build entries for one writer;
    the header is the one :meth:`ZipWriter.add_whole_entry` writes."""
    encoded = name.encode("utf-8")
    dos_time, dos_date = _dos_datetime(mtime)
    flags = 0 if encoded.isascii() else _FLAG_UTF8
    method = _STORED if stored else _DEFLATED
    header = _local_header(encoded, flags, method, dos_time, dos_date, crc32, len(data), size)
    return header, (
        encoded, flags, method, dos_time, dos_date, crc32, len(data), size, external_attr,
        len(header) + len(data),
    )  # fmt: skip


def _local_header(
    encoded: bytes, flags: int, method: int, dos_time: int, dos_date: int, crc: int,
    compressed_size: int, size: int, zip64: bool = False, extra: bytes = b"",
) -> bytes:  # fmt: skip
    """A local file header and the name (and ``extra``) after it; a ZIP64 one says its
    sizes are in the extra field."""
    return (
        _LOCAL_HEADER.pack(
            _LOCAL_SIG, 45 if zip64 else 20, flags, method, dos_time, dos_date, crc,
            _MAX32 if zip64 else compressed_size, _MAX32 if zip64 else size, len(encoded),
            len(extra),
        )
        + encoded
        + extra
    )  # fmt: skip


_LOCAL_HEADER = struct.Struct("<IHHHHHIIIHH")


class EntryFollower(Protocol):
    """Reads entries back as they are written (:class:`fda_vault._follow.ReadBehind`):
    told of each streamed entry, of every byte flushed to the file, of the end, and of
    a cut."""

    def begin(
        self, name: bytes, header_offset: int, data_start: int, deflated: bool, size_hint: int
    ) -> bool:
        """A streamed entry begins; True to be told of its bytes (``written``, ``end``)."""

    def written(self, end: int) -> None:
        """Every byte before ``end`` is in the file."""

    def end(self, compressed_size: int) -> None:
        """The followed entry's data is complete and in the file."""

    def cut(self, mark: int) -> None:
        """The file was cut back to ``mark``."""


def file_attr(mode: int) -> int:
    """External attributes of a regular file with permission bits ``mode``."""
    return (_S_IFREG | (mode & 0o777)) << 16


def _dos_datetime(mtime: float) -> tuple[int, int]:
    t = time.localtime(max(mtime, 0))
    year = min(max(t.tm_year, 1980), 2107)
    if year != t.tm_year:  # outside what DOS time can say: clamp to the nearest edge
        return (0, (0 << 9) | (1 << 5) | 1) if year == 1980 else (0xBF7D, 0xFF9F)
    dos_date = ((year - 1980) << 9) | (t.tm_mon << 5) | t.tm_mday
    dos_time = (t.tm_hour << 11) | (t.tm_min << 5) | (min(t.tm_sec, 59) // 2)
    return dos_time, dos_date


class ZipWriter:
    """Append entries to a binary file, then ``close()`` writes the directory.

    Bytes are written in order and never patched: an entry whose CRC and sizes are not
    known when it begins (a file streamed as it is read) has them in a data descriptor
    after its data (flag bit 3), as streaming ZIP writers do; ``unzip`` and ``zipfile``
    read the central directory's copy. The only seek is back to the start of the open
    entry, to cut it off (:meth:`rollback_to`: its source changed while it was read).

    ``tap``, if given, receives the file's bytes in order as they are written;
    :attr:`tapped` says how many it got (0 when a rollback cut into bytes already
    tapped: the tap's result is void, and a hash of the file must read it back).

    ``settle``, if given, is told each offset before which no byte will be written again
    (the start of each new entry, and the end). A file that streams its bytes away (a
    multipart upload, an encryption) keeps only what follows that offset.

    ``follow``, if given (a local file), is told of each streamed entry and, if it
    follows that one, of its bytes as they are flushed to the file.
    """

    def __init__(
        self,
        fp: IO[bytes],
        tap: Callable[[bytes], None] | None = None,
        settle: Callable[[int], None] | None = None,
        follow: EntryFollower | None = None,
    ) -> None:
        self._fp = fp
        self._records: list[_Record] = []
        self._offset = fp.tell()
        self._open: _OpenEntry | None = None
        self._tap = tap
        self._settle = settle
        self._follow = follow
        self._following = False  # the open entry is being read back as it is written
        self.tapped = self._offset if tap is None else 0

    def _emit(self, data: bytes) -> None:
        self._fp.write(data)
        if self._tap is not None:
            self._tap(data)
            self.tapped += len(data)

    def tell(self) -> int:
        """Offset where the next entry starts (a mark for :meth:`rollback_to`)."""
        return self._offset

    def rollback_to(self, mark: int) -> None:
        """Forget an entry that failed half-way: cut the file back to ``mark``."""
        if mark < self.tapped:
            self._tap = None  # bytes the tap has seen are gone: its result is void
            self.tapped = 0
        self._open = None
        self._fp.seek(mark)
        self._fp.truncate()
        if self._follow is not None:
            self._follow.cut(mark)
            self._following = False
        self._offset = mark
        self._records = [rec for rec in self._records if rec.offset < mark]

    def add_dir(self, name: str, *, mtime: float, mode: int) -> None:
        """Add a directory entry (``name`` ends with ``/``)."""
        assert name.endswith("/")
        attr = ((_S_IFDIR | (mode & 0o777)) << 16) | _MSDOS_DIR
        self.begin_entry(name, mtime=mtime, external_attr=attr, size_hint=0, stored=True)
        self.end_entry(crc32=0, size=0)

    def add_file(
        self,
        name: str,
        chunks: Iterable[bytes],
        *,
        mtime: float,
        mode: int,
        size_hint: int,
        level: int,
    ) -> EntryResult:
        """Add a regular file from ``chunks``, deflated as they come (the whole file is
        never in memory); ``level`` 0 stores, 1-9 deflates. ``size_hint`` must not be
        smaller than the final size when that reaches 4 GiB (it selects ZIP64)."""
        self.begin_entry(
            name, mtime=mtime, external_attr=file_attr(mode), size_hint=size_hint,
            stored=level == 0,
        )  # fmt: skip
        deflater = None if level == 0 else new_deflater(level)
        crc = size = 0
        for chunk in chunks:
            crc = crc32(chunk, crc)
            size += len(chunk)
            self.write_data(chunk if deflater is None else deflater.compress(chunk))
        if deflater is not None:
            self.write_data(deflater.flush(zlib.Z_FINISH))
        return self.end_entry(crc32=crc, size=size)

    def add_whole_entry(
        self,
        name: str,
        *,
        mtime: float,
        external_attr: int,
        data: bytes,
        crc32: int,
        size: int,
        stored: bool,
        size_hint: int | None = None,
    ) -> None:
        """Add an entry whose data is all known: one write, no header to patch afterwards."""
        self.begin_entry(
            name, mtime=mtime, external_attr=external_attr,
            size_hint=size if size_hint is None else size_hint, stored=stored,
            known=(crc32, len(data), size), data=data,
        )  # fmt: skip
        self.end_entry(crc32=crc32, size=size)

    def add_built(self, data: bytes, entries: Sequence[BuiltEntry]) -> None:
        """Add whole entries built by :func:`small_entry`: ``data`` is their headers and
        data one after the other, in the order of ``entries``."""
        assert self._open is None, "an entry is already open"
        if sum(entry[9] for entry in entries) != len(data):
            raise ValueError(f"built entries do not hold the {len(data)} bytes given")
        if self._settle is not None:
            self._settle(self._offset)
        offset = self._offset
        records = self._records
        for name, flags, method, dos_time, dos_date, crc, csize, size, attr, length in entries:
            records.append(
                _Record(
                    name, flags, method, dos_time, dos_date, crc, csize, size, offset, attr,
                    False,
                )
            )  # fmt: skip
            offset += length
        self._emit(data)
        self._offset = offset

    def add_raw_entry(
        self,
        name: str,
        *,
        mtime: float,
        external_attr: int,
        stored: bool,
        crc32: int,
        size: int,
        compressed_size: int,
        data: Iterable[bytes],
    ) -> None:
        """Add an entry from another archive's member data as stored (``data``: its
        compressed bytes, copied unchanged; ``crc32`` and ``size`` describe the content):
        the header is written whole first, nothing is patched. ValueError when ``data``
        does not hold ``compressed_size`` bytes (then :meth:`rollback_to` the mark taken
        before)."""
        self.begin_entry(
            name, mtime=mtime, external_attr=external_attr,
            size_hint=max(size, compressed_size), stored=stored,
            known=(crc32, compressed_size, size),
        )  # fmt: skip
        for chunk in data:
            self.write_data(chunk)
        assert self._open is not None
        if self._offset - self._open.data_start != compressed_size:
            raise ValueError(f"{name}: raw data is not {compressed_size} bytes")
        self.end_entry(crc32=crc32, size=size)

    def begin_entry(
        self,
        name: str,
        *,
        mtime: float,
        external_attr: int,
        size_hint: int,
        stored: bool,
        known: tuple[int, int, int] | None = None,
        data: bytes = b"",
    ) -> None:
        """Write a local header; the data follows with :meth:`write_data`.

        ``known`` = (CRC-32, compressed size, size) when ``data`` is the whole entry: the
        header then carries them and :meth:`end_entry` has nothing to patch.
        """
        assert self._open is None, "an entry is already open"
        if self._settle is not None:
            self._settle(self._offset)
        encoded = name.encode("utf-8")
        zip64 = size_hint >= _ZIP64_THRESHOLD
        dos_time, dos_date = _dos_datetime(mtime)
        described = known is None
        if zip64:  # sizes in the ZIP64 extra field (zeros when a descriptor follows)
            sizes = (known[2], known[1]) if known else (0, 0)
            extra = struct.pack("<HHQQ", _ZIP64_EXTRA_ID, 16, *sizes)
        else:
            extra = b""
        flags = (0 if encoded.isascii() else _FLAG_UTF8) | (FLAG_DESCRIPTOR if described else 0)
        method = _STORED if stored else _DEFLATED
        crc, compressed_size, size = known if known else (0, 0, 0)
        header = _local_header(
            encoded, flags, method, dos_time, dos_date, crc, compressed_size, size, zip64, extra
        )
        self._emit(header + data)
        self._open = _OpenEntry(
            name=encoded,
            flags=flags,
            method=method,
            dos_time=dos_time,
            dos_date=dos_date,
            offset=self._offset,
            external_attr=external_attr,
            zip64=zip64,
            data_start=self._offset + len(header),
            described=described,
        )
        self._offset = self._open.data_start + len(data)
        if self._follow is not None and described:
            self._following = self._follow.begin(
                encoded, self._open.offset, self._open.data_start, not stored, size_hint
            )

    def write_data(self, data: bytes) -> None:
        """Append stored or compressed bytes of the open entry."""
        self._emit(data)
        self._offset += len(data)
        if self._following:
            assert self._follow is not None
            self._fp.flush()  # the bytes are in the file before they are read back
            self._follow.written(self._offset)

    def end_entry(self, *, crc32: int, size: int) -> EntryResult:
        """Write the data descriptor (if the header could not hold CRC and sizes) and
        record the entry."""
        entry = self._open
        assert entry is not None, "no entry is open"
        written = self._offset - entry.data_start
        if not entry.zip64 and (size > _MAX32 or written > _MAX32):
            raise OverflowError(f"{entry.name.decode()}: grew past 4 GiB while being read")
        if self._following:
            assert self._follow is not None
            self._follow.end(written)
            self._following = False
        if entry.described:
            if entry.zip64:
                descriptor = struct.pack("<IIQQ", _DESCRIPTOR_SIG, crc32, written, size)
            else:
                descriptor = struct.pack("<IIII", _DESCRIPTOR_SIG, crc32, written, size)
            self._emit(descriptor)
            self._offset += len(descriptor)
        self._records.append(
            _Record(
                entry.name, entry.flags, entry.method, entry.dos_time, entry.dos_date, crc32,
                written, size, entry.offset, entry.external_attr, entry.zip64,
            )
        )  # fmt: skip
        self._open = None
        return EntryResult(crc32, size, written, entry.method)

    def close(self) -> None:
        """Write the central directory and the end records."""
        fp = self._fp
        cd_start = self._offset
        directory: list[bytes] = []  # emitted in pieces of ~1 MiB, not 3 writes a member
        pending = 0
        for rec in self._records:
            fields: list[int] = []
            size32, csize32, offset32 = rec.size, rec.compressed_size, rec.offset
            if rec.zip64_local or rec.size >= _MAX32:
                fields.append(rec.size)
                size32 = _MAX32
            if rec.zip64_local or rec.compressed_size >= _MAX32:
                fields.append(rec.compressed_size)
                csize32 = _MAX32
            if rec.offset >= _MAX32:
                fields.append(rec.offset)
                offset32 = _MAX32
            extra = (
                struct.pack(f"<HH{len(fields)}Q", _ZIP64_EXTRA_ID, 8 * len(fields), *fields)
                if fields
                else b""
            )
            version = 45 if fields else 20
            directory.append(
                struct.pack(
                    "<IHHHHHHIIIHHHHHII",
                    _CENTRAL_SIG,
                    (_UNIX << 8) | version,
                    version,
                    rec.flags,
                    rec.method,
                    rec.dos_time,
                    rec.dos_date,
                    rec.crc32,
                    csize32,
                    size32,
                    len(rec.name),
                    len(extra),
                    0,
                    0,
                    0,
                    rec.external_attr,
                    offset32,
                )
            )
            directory.append(rec.name)
            directory.append(extra)
            pending += CENTRAL.size + len(rec.name) + len(extra)
            if pending >= 1 << 20:
                self._emit(b"".join(directory))
                directory, pending = [], 0
        self._emit(b"".join(directory))
        cd_end = fp.tell()
        cd_size = cd_end - cd_start
        count = len(self._records)
        if count >= _MAX16 or cd_start >= _MAX32 or cd_size >= _MAX32:
            self._emit(
                struct.pack(
                    "<IQHHIIQQQQ",
                    _ZIP64_EOCD_SIG,
                    44,
                    (_UNIX << 8) | 45,
                    45,
                    0,
                    0,
                    count,
                    count,
                    cd_size,
                    cd_start,
                )
            )
            self._emit(struct.pack("<IIQI", _ZIP64_LOCATOR_SIG, 0, cd_end, 1))
        self._emit(
            struct.pack(
                "<IHHHHIIH",
                _EOCD_SIG,
                0,
                0,
                min(count, _MAX16),
                min(count, _MAX16),
                min(cd_size, _MAX32),
                min(cd_start, _MAX32),
                0,
            )
        )
        self._offset = fp.tell()
        if self._settle is not None:
            self._settle(self._offset)
