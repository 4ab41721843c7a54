"""Encrypted archives: writing one as a stream, and reading one at random offsets.

``X.zip.age`` (or ``X.zip.gpg``) is exactly the ZIP an unencrypted backup writes, as one
standard age (or OpenPGP) file. Both formats can only be read from the start, and the
ZIP's index is at its end, so each encrypted archive has an **index** beside it,
``X.zip.idx.age`` (``.idx.gpg``), encrypted the same way: the plaintext of the archive's
last members and directory (``checksums.txt``, ``metadata.json``, the central directory)
with their offset. ``list`` reads only the index; the commands that read file data
decrypt the archive once, in order, in a thread of their own, into a
:class:`~fda_vault._crypto.SealedScratch`, and read it there at any offset; the index
must then equal the archive's decrypted end. An archive whose index is missing is still
read (decrypted whole first).

Writing: :class:`EncryptingSink` is the seekable file the ZIP writer needs, over a
stream that can only go forward: it holds the open entry (whose header is patched when
the entry ends, or which is cut off when its source changed while read) and passes
everything before it on; an entry larger than a few MiB waits in a sealed scratch file,
never as plaintext on disk.
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fda_vault._crypto import Encryptor, Keys, Kind, SealedScratch, decrypt_bytes, decrypt_stream
from fda_vault._errors import IntegrityError, UsageError
from fda_vault._s3 import ArchivePath, ObjectPath
from fda_vault._storage import archive_of_index, index_path, read_from

__all__ = ["ArchiveIndex", "CipherOut", "DecryptedArchive", "EncryptingSink", "read_index"]

_INDEX_MAGIC = b"fda-vault archive index 1\n"
_INDEX_HEAD = struct.Struct("<QQ")  # the tail's offset in the archive, the archive's size
_MAX_INDEX = 256 << 20  # the manifest's cap twice, and a directory of a million names


@dataclass(frozen=True)
class ArchiveIndex:
    """The plaintext end of an encrypted archive: ``tail`` = its bytes from
    ``tail_offset`` to ``size``."""

    kind: Kind
    tail_offset: int
    size: int
    tail: bytes

    def to_bytes(self) -> bytes:
        return _INDEX_MAGIC + _INDEX_HEAD.pack(self.tail_offset, self.size) + self.tail

    @classmethod
    def from_bytes(cls, kind: Kind, data: bytes, archive: object) -> ArchiveIndex:
        head = len(_INDEX_MAGIC) + _INDEX_HEAD.size
        if not data.startswith(_INDEX_MAGIC) or len(data) < head:
            raise IntegrityError(archive, "its index is not a fda-vault archive index")
        tail_offset, size = _INDEX_HEAD.unpack_from(data, len(_INDEX_MAGIC))
        tail = data[head:]
        if tail_offset + len(tail) != size:
            raise IntegrityError(archive, "its index does not describe the archive's end")
        return cls(kind, tail_offset, size, tail)


def read_index(path: ArchivePath, kind: Kind, keys: Keys) -> ArchiveIndex | None:
    """The index beside ``path``, decrypted; None when there is none. UsageError when
    ``path`` is itself an index."""
    archive = archive_of_index(path.name)
    if archive is not None:
        raise UsageError(path, f"the index of {archive}, not an archive (name that one)")
    where = index_path(path)
    if where is None:
        return None
    try:
        pieces = []
        total = 0
        for piece in read_from(where, 0):
            total += len(piece)
            if total > _MAX_INDEX:
                raise IntegrityError(where, "too large to be an archive index")
            pieces.append(piece)
    except FileNotFoundError:
        return None
    except UsageError as exc:
        if exc.reason == "not_found":
            return None
        raise
    return ArchiveIndex.from_bytes(kind, decrypt_bytes(kind, keys, b"".join(pieces), path), path)


class DecryptedArchive:
    """:class:`~fda_vault._zipindex.RandomAccess` over the plaintext of an encrypted
    archive. Reads at or after the index's tail are answered from the index; the first
    read before it starts the decryption (a thread), which the reads wait for."""

    def __init__(self, path: ArchivePath, kind: Kind, keys: Keys, index: ArchiveIndex | None):
        if isinstance(path, ObjectPath):
            from fda_vault._s3 import head

            # A missing object: not_found now, not from the thread.
            self.stored_size = int(head(path)["ContentLength"])
        elif not path.is_file():
            raise UsageError(path, "no such archive", reason="not_found")
        else:
            self.stored_size = path.stat().st_size  # of the ciphertext
        self._path = path
        self._kind = kind
        self._keys = keys
        self._index = index
        self._scratch = SealedScratch(cache_blocks=6)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        if index is None:
            self._start()
            failure = self._scratch.wait_end()
            if failure is not None:
                self.close()
                raise failure
            self.size = self._scratch.size
        else:
            self.size = index.size

    def _start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._decrypt, daemon=True)
                self._thread.start()

    def _decrypt(self) -> None:
        try:
            source = self._path if isinstance(self._path, Path) else read_from(self._path, 0)
            decrypt_stream(
                self._kind, self._keys, source, self._scratch.append, self._path, self._stop
            )
        except BaseException as exc:
            self._scratch.end(exc)
        else:
            self._scratch.end()

    def pread(self, length: int, offset: int, /) -> bytes:
        index = self._index
        if index is not None and offset + length > index.tail_offset:
            start = max(offset, index.tail_offset)
            tail = index.tail[start - index.tail_offset : offset + length - index.tail_offset]
            if offset >= index.tail_offset:
                return tail
            return self._scratch_read(index.tail_offset - offset, offset) + tail
        return self._scratch_read(length, offset)

    def _scratch_read(self, length: int, offset: int) -> bytes:
        self._start()
        return self._scratch.pread(length, offset)

    def check_whole(self) -> None:
        """Wait until the whole ciphertext is decrypted and authenticated, and check the
        index against it: DecryptError, or IntegrityError naming what differs."""
        self._start()
        failure = self._scratch.wait_end()
        if failure is not None:
            raise failure
        index = self._index
        if index is None:
            return
        if self._scratch.size != index.size:
            raise IntegrityError(
                self._path,
                f"the archive decrypts to {self._scratch.size} bytes, its index says {index.size}",
            )
        at = index.tail_offset
        for piece in self._scratch.iter_from(at):
            if piece != index.tail[at - index.tail_offset : at - index.tail_offset + len(piece)]:
                raise IntegrityError(self._path, "its index differs from the archive's end")
            at += len(piece)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self._scratch.close()


class CipherOut:
    """Where an encryptor writes: the archive's file (or upload), each byte also fed to
    ``tap`` (the archive's hash); a multipart upload is told it may send what is written."""

    def __init__(self, fp: IO[bytes] | Any, tap: Callable[[bytes], None]) -> None:
        self._fp = fp
        self._tap = tap
        self._settle = getattr(fp, "settle", None)
        self.written = 0

    def write(self, data: bytes) -> int:
        self._fp.write(data)
        self._tap(data)
        self.written += len(data)
        if self._settle is not None:
            self._settle(self.written)
        return len(data)

    def flush(self) -> None:
        return None


_SPILL_AT = 8 << 20  # an open entry held in memory up to this size...
_HEAD_ROOM = 1 << 16  # ...then all of it but its first bytes (the header) waits sealed


class EncryptingSink:
    """A seekable, write-only file for the ZIP writer over an :class:`Encryptor`.

    The writer only seeks back into the open entry (to patch its header, or to cut it
    off): everything before the offset given to :meth:`settle` goes to the encryptor,
    the rest is held. ``keep_from(offset)``: the plaintext from ``offset`` to the end is
    also kept (:attr:`kept`), for the archive's index.
    """

    def __init__(self, encryptor: Encryptor) -> None:
        self._encryptor = encryptor
        self._base = 0  # the offset of the first held byte
        self._head = bytearray()  # held bytes in memory: [base, base + len(head))
        self._spill: SealedScratch | None = None  # held bytes after the head
        self._pos = 0
        self._end = 0
        self._keep_from: int | None = None
        self._passed = 0  # bytes handed to the encryptor
        self.kept = bytearray()

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        assert whence == 0
        self._pos = offset
        return offset

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        return None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        size = len(data)
        if self._pos == self._end:
            if self._spill is not None:
                self._spill.append(data)
            else:
                self._head += data
                if len(self._head) > _SPILL_AT:
                    self._spill = SealedScratch()
                    self._spill.append(memoryview(self._head)[_HEAD_ROOM:])
                    del self._head[_HEAD_ROOM:]
            self._end += size
        else:
            at = self._pos - self._base
            assert at >= 0 and at + size <= len(self._head), "a patch outside the held header"
            self._head[at : at + size] = data
        self._pos += size
        return size

    def truncate(self, size: int | None = None) -> int:
        end = self._pos if size is None else size
        assert end >= self._base, "cut into bytes already encrypted"
        if end == self._base:
            self._head.clear()
            self._drop_spill()
        else:
            assert self._spill is None and end - self._base <= len(self._head)
            del self._head[end - self._base :]
        self._end = end
        return end

    def _drop_spill(self) -> None:
        if self._spill is not None:
            self._spill.close()
            self._spill = None

    def keep_from(self, offset: int) -> None:
        self._keep_from = offset

    def settle(self, offset: int) -> None:
        """No byte before ``offset`` will change: encrypt the held bytes up to it."""
        if offset <= self._base:
            return
        assert offset == self._end, "the writer settles at the end of what it wrote"
        self._pass_on(self._head)
        self._head = bytearray()
        if self._spill is not None:
            self._spill.end()
            for piece in self._spill.iter_from(0):
                self._pass_on(piece)
            self._drop_spill()
        self._base = offset

    def _pass_on(self, data: bytes | bytearray | memoryview) -> None:
        if not data:
            return
        if self._keep_from is not None:
            skip = max(0, self._keep_from - self._passed)
            if skip < len(data):
                self.kept += data[skip:]
        self._encryptor.write(data)
        self._passed += len(data)

    def finish(self) -> None:
        """Encrypt what is held and end the ciphertext (after the writer's close)."""
        self.settle(self._end)
        self._encryptor.close()

    def abort(self) -> None:
        self._drop_spill()
        self._encryptor.abort()
