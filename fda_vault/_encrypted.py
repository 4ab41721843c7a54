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

Writing: :class:`EncryptingSink` is the file the ZIP writer writes into, over a stream
that can only go forward. The writer never patches (streamed entries end with a data
descriptor); it may cut the open entry off when its source changed while it was read,
so the sink holds a small open entry back, and for a large one already passed on the
backup writes the archive again (:class:`CutAfterEncrypting`).
"""

from __future__ import annotations

import struct
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from fda_vault._crypto import (
    Encryptor,
    Forgotten,
    Keys,
    Kind,
    SealedScratch,
    decrypt_bytes,
    decrypt_stream,
)
from fda_vault._errors import IntegrityError, UsageError
from fda_vault._s3 import ArchivePath, ObjectPath
from fda_vault._storage import archive_of_index, index_path, read_from

__all__ = [
    "ArchiveIndex",
    "CipherOut",
    "CutAfterEncrypting",
    "DecryptedArchive",
    "EncryptingSink",
    "read_index",
]

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
    read before it starts the decryption (a thread), which the reads wait for.

    The decryption stays a few MiB ahead of the furthest read (readers that follow it,
    as verify and restore do, read from memory), and a block every byte of which has
    been read is forgotten rather than sealed to the scratch file; should it be read
    again, a second decryption from the start (kept whole) answers that read and the
    ones after it that need it.
    """

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
        self._lock = threading.Lock()
        self._streams: list[tuple[SealedScratch, threading.Event, threading.Thread]] = []
        self._tail_differs = False
        self._decrypted = 0
        # Readers follow the decryption only when the index lets them read the archive's
        # end first; without it the whole archive is decrypted before anything is read.
        self._scratch = self._new_stream(forgets=index is not None)
        if index is None:
            failure = self._scratch.wait_end()
            if failure is not None:
                self.close()
                raise failure
            self.size = self._scratch.size
        else:
            self.size = index.size
            self._scratch.mark_read(index.tail_offset, index.size - index.tail_offset)
        self._replay: SealedScratch | None = None

    def _new_stream(self, *, forgets: bool) -> SealedScratch:
        """A scratch and the thread that decrypts the archive into it, from the start
        (the first one lazily: only a read before the tail starts it)."""
        scratch = SealedScratch(cache_blocks=_AHEAD_BLOCKS, paced=forgets, forgets=forgets)
        stop = threading.Event()
        first = not self._streams
        thread = threading.Thread(target=self._decrypt, args=(scratch, stop, first), daemon=True)
        self._streams.append((scratch, stop, thread))
        if not first or self._index is None:
            thread.start()
        return scratch

    def _start(self) -> None:
        with self._lock:
            thread = self._streams[0][2]
            if thread.ident is None:
                thread.start()

    def _decrypt(self, scratch: SealedScratch, stop: threading.Event, first: bool) -> None:
        accept = self._accept_checking_tail if first and self._index is not None else scratch.append
        try:
            source = self._path if isinstance(self._path, Path) else read_from(self._path, 0)
            decrypt_stream(self._kind, self._keys, source, accept, self._path, stop)
        except BaseException as exc:
            scratch.end(exc)
        else:
            scratch.end()

    def _accept_checking_tail(self, chunk: bytes) -> None:
        """Append a decrypted piece, comparing what falls in the tail with the index."""
        index = self._index
        assert index is not None
        start, end = self._decrypted, self._decrypted + len(chunk)
        if end > index.tail_offset:
            at = max(start, index.tail_offset)
            expected = index.tail[at - index.tail_offset : end - index.tail_offset]
            if chunk[at - start :] != expected:
                self._tail_differs = True
        self._decrypted = end
        self._scratch.append(chunk)

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
        try:
            return self._scratch.pread(length, offset)
        except Forgotten:
            pass
        with self._lock:
            if self._replay is None:
                self._replay = self._new_stream(forgets=False)
        return self._replay.pread(length, offset)

    def check_whole(self) -> None:
        """Wait until the whole ciphertext is decrypted and authenticated, and check the
        index against it: DecryptError, or IntegrityError naming what differs."""
        self._start()
        self._scratch.release()
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
        if self._tail_differs:
            raise IntegrityError(self._path, "its index differs from the archive's end")

    def close(self) -> None:
        for scratch, stop, thread in self._streams:
            stop.set()
            scratch.release()
            if thread.ident is not None:
                thread.join()
            scratch.close()


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


_AHEAD_BLOCKS = 4  # MiB the decryption runs ahead of the readers, in memory
_HOLD = 2 << 20  # the open entry is held back up to this size (it may yet be cut off)


class CutAfterEncrypting(Exception):
    """The ZIP writer asked to cut off an entry (its source changed while it was read)
    whose first bytes are encrypted already: the archive must be written again."""


class EncryptingSink:
    """A write-only file for the ZIP writer over an :class:`Encryptor`.

    The writer never patches (streamed entries end with a data descriptor): it only
    cuts the open entry off when its source changed while it was read. So everything
    before the offset given to :meth:`settle` (the open entry's start) goes to the
    encryptor, and the open entry is held back while it is small (up to 2 MiB: most
    files). A larger one is passed on as it grows; cutting it off then raises
    :class:`CutAfterEncrypting` (the backup writes the archive again). ``keep_from(offset)``:
    the plaintext from ``offset`` to the end is also kept (:attr:`kept`), for the index.
    """

    def __init__(self, encryptor: Encryptor) -> None:
        self._encryptor = encryptor
        self._held = bytearray()  # the open entry's bytes not passed on yet
        self._passed = 0  # bytes handed to the encryptor
        self._entry_start = 0  # where the open entry begins
        self._cut_at: int | None = None  # where a seek back asks the next truncate to cut
        self._keep_from: int | None = None
        self.kept = bytearray()

    @property
    def _end(self) -> int:
        return self._passed + len(self._held)

    def tell(self) -> int:
        return self._end

    def seek(self, offset: int, whence: int = 0) -> int:
        """Only back into the open entry, to cut it off there (:meth:`truncate`)."""
        assert whence == 0 and self._entry_start <= offset <= self._end, "not a cut"
        if offset < self._passed:
            raise CutAfterEncrypting(offset)
        self._cut_at = offset
        return offset

    def writable(self) -> bool:
        return True

    def flush(self) -> None:
        return None

    def write(self, data: bytes | bytearray | memoryview) -> int:
        assert self._cut_at is None, "a write after a seek back, not a cut"
        self._held += data
        if len(self._held) > _HOLD:
            self._pass_on()
        return len(data)

    def truncate(self, size: int | None = None) -> int:
        end = size if size is not None else self._cut_at if self._cut_at is not None else self._end
        self._cut_at = None
        if end < self._passed:
            raise CutAfterEncrypting(end)
        del self._held[end - self._passed :]
        return end

    def keep_from(self, offset: int) -> None:
        self._keep_from = offset

    def settle(self, offset: int) -> None:
        """No byte before ``offset`` will change: pass the held bytes on."""
        assert offset == self._end, "the writer settles at the end of what it wrote"
        self._pass_on()
        self._entry_start = offset

    def _pass_on(self) -> None:
        data, self._held = self._held, bytearray()
        if not data:
            return
        if self._keep_from is not None:
            skip = max(0, self._keep_from - self._passed)
            if skip < len(data):
                self.kept += memoryview(data)[skip:]
        self._encryptor.write(data)
        self._passed += len(data)

    def finish(self) -> None:
        """Encrypt what is held and end the ciphertext (after the writer's close)."""
        self._pass_on()
        self._encryptor.close()

    def abort(self) -> None:
        self._held = bytearray()
        self._encryptor.abort()
