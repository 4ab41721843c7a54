"""A backup's read-back of its large members, begun while the archive is being written.

A backup reads its archive back before publishing it (:func:`fda_vault._verify.verify_written`).
For a large file that is a second pass as long as the first: on long runs of repeated
data both passes are SHA-256 of every byte, one core each. :class:`ReadBehind` follows
the writer instead: each large member's bytes are read back from the file (``pread``
on a descriptor of its own, after the writer flushed them), inflated, CRC-32'd and
hashed on a thread of its own while the next bytes are being read and compressed.

What it found is only used where it matches what the archive's directory says once the
archive is complete (name, offset, sizes, CRC-32, and the data's start by the local header
read again): the final check then skips that member's data and nothing else. A member
cut off (its source changed while read), a read that failed or anything unexpected
leaves no result, and the final check reads that member in full as before.
"""

from __future__ import annotations

import hashlib
import os
import queue
import threading
from typing import NamedTuple

from fda_vault._deflate import crc32, new_inflater

__all__ = ["FOLLOW_FROM", "FollowedMember", "ReadBehind"]

# Members streamed in blocks (files of 1 MiB and more) are followed; smaller ones are
# checked at the end, where thousands of them are spread over processes.
FOLLOW_FROM = 1 << 20
_READ = 4 << 20  # bytes of the archive read at once
_OUT = 1 << 20  # inflated bytes produced at once (memory stays bounded on zeros)


class FollowedMember(NamedTuple):
    """One member as read back from the file while the archive was written."""

    name: bytes
    header_offset: int
    data_start: int
    compressed_size: int
    crc32: int  # of the inflated bytes read back
    size: int  # inflated bytes read back
    sha256: str  # of the inflated bytes read back
    deflated: bool


class _Reading:
    """The member being followed."""

    def __init__(self, name: bytes, header_offset: int, data_start: int, deflated: bool) -> None:
        self.name = name
        self.header_offset = header_offset
        self.data_start = data_start
        self.position = data_start
        self.inflater = new_inflater() if deflated else None
        self.hasher = hashlib.sha256()
        self.crc = 0
        self.size = 0

    def read_to(self, fd: int, end: int) -> None:
        while self.position < end:
            raw = os.pread(fd, min(_READ, end - self.position), self.position)
            if not raw:
                raise EOFError(f"the archive ends at {self.position}")
            self.position += len(raw)
            self._take(raw)

    def _take(self, raw: bytes) -> None:
        inflater = self.inflater
        if inflater is None:
            self._out(raw)
            return
        while raw:
            if inflater.eof:
                raise ValueError("data after the end of the deflate stream")
            out = inflater.decompress(raw, _OUT)
            raw = inflater.unconsumed_tail
            self._out(out)
            while len(out) == _OUT:  # more may wait inside with no input left (ISA-L)
                out = inflater.decompress(b"", _OUT)
                self._out(out)

    def _out(self, data: bytes) -> None:
        if data:
            self.hasher.update(data)
            self.crc = crc32(data, self.crc)
            self.size += len(data)

    def result(self, compressed_size: int) -> FollowedMember | None:
        if self.position != self.data_start + compressed_size:
            return None
        inflater = self.inflater
        if inflater is not None and (not inflater.eof or inflater.unused_data):
            return None
        return FollowedMember(
            self.name, self.header_offset, self.data_start, compressed_size, self.crc,
            self.size, self.hasher.hexdigest(), inflater is not None,
        )  # fmt: skip


class ReadBehind:
    """Follows a :class:`~fda_vault._zipwriter.ZipWriter` writing ``path`` (as its
    :class:`~fda_vault._zipwriter.EntryFollower`): the writer calls :meth:`begin`,
    :meth:`written`, :meth:`end` and :meth:`cut` in order from the one thread that
    writes; the reading runs on a thread started at the first member followed.
    :meth:`results` waits for it and gives what was read back, by header offset."""

    def __init__(self, path: str) -> None:
        self._path = path
        self._events: queue.SimpleQueue[tuple[str, object, object, object, object]] = (
            queue.SimpleQueue()
        )
        self._thread: threading.Thread | None = None
        self._results: dict[int, FollowedMember] = {}
        self._abandoned = False

    # --- the writer's side (never blocks, never raises from the reader's failures) ------
    def begin(
        self, name: bytes, header_offset: int, data_start: int, deflated: bool, size_hint: int
    ) -> bool:
        """An entry streamed in blocks begins; followed from :data:`FOLLOW_FROM` bytes."""
        if size_hint < FOLLOW_FROM:
            return False
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="read-behind", daemon=True)
            self._thread.start()
        self._events.put(("begin", name, header_offset, data_start, deflated))
        return True

    def written(self, end: int) -> None:
        """Every byte before ``end`` is in the file (flushed by the writer)."""
        self._events.put(("written", end, None, None, None))

    def end(self, compressed_size: int) -> None:
        """The open member's data is complete and in the file."""
        self._events.put(("end", compressed_size, None, None, None))

    def cut(self, mark: int) -> None:
        """The file was cut back to ``mark``: what lay beyond it is void."""
        self._events.put(("cut", mark, None, None, None))

    def results(self) -> dict[int, FollowedMember]:
        """Stop following once every member told of is read; the members read back
        whole, by header offset."""
        self._stop()
        return self._results

    def close(self) -> None:
        """Stop at once, dropping what is left to read (the backup failed)."""
        self._abandoned = True
        self._stop()

    def _stop(self) -> None:
        if self._thread is not None:
            self._events.put(("stop", None, None, None, None))
            self._thread.join()
            self._thread = None

    # --- the reading thread -------------------------------------------------
    def _run(self) -> None:
        try:
            fd = os.open(self._path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
        except OSError:
            fd = -1  # nothing is followed: the final check reads every member
        reading: _Reading | None = None
        try:
            while True:
                kind, a, b, c, d = self._events.get()
                if kind == "stop" or self._abandoned:
                    return
                if kind == "cut":
                    assert isinstance(a, int)
                    self._results = {k: v for k, v in self._results.items() if k < a}
                    if reading is not None and reading.header_offset >= a:
                        reading = None
                    continue
                if fd < 0:
                    continue
                if kind == "begin":
                    assert isinstance(a, bytes) and isinstance(b, int) and isinstance(c, int)
                    reading = _Reading(a, b, c, bool(d))
                    continue
                if reading is None:
                    continue
                try:
                    assert isinstance(a, int)
                    if kind == "written":
                        reading.read_to(fd, a)
                    else:  # "end"
                        reading.read_to(fd, reading.data_start + a)
                        found = reading.result(a)
                        if found is not None:
                            self._results[found.header_offset] = found
                        reading = None
                except Exception:  # a failed read, corrupt data (zlib's or ISA-L's error),
                    reading = None  # anything unforeseen: no result, the final check reads it
        finally:
            if fd >= 0:
                os.close(fd)
