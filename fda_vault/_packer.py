"""The backup data path: read each file once, hash it, compress it on every core.

One thread reads files in order, feeds SHA-256 and CRC-32, and hands blocks to a pool
that deflates them (ISA-L and hashlib release the GIL). Results are written strictly in
order, so when a file turns out to have changed while it was read, its entry is the
last thing in the archive and can be cut off and read again later.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import stat
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from fda_vault._deflate import compress_block, crc32, fastest_level_fits, looks_incompressible
from fda_vault._diagnostics import Diagnostic
from fda_vault._errors import FdaVaultError, OperationError, os_error_reason
from fda_vault._fsio import describe_os_error
from fda_vault._manifest import FileEntry, SkippedEntry, file_entries
from fda_vault._members import DATA_PREFIX, read_raw_checked
from fda_vault._parallel import ForkedMap, forks_pay, worker_count
from fda_vault._progress import Progress
from fda_vault._s3 import ObjectPath
from fda_vault._verified import FileIdentity
from fda_vault._zipformat import STORED
from fda_vault._zipindex import Member, ZipIndex
from fda_vault._zipwriter import BuiltEntry, ZipWriter, file_attr, small_entry

__all__ = ["BLOCK_SIZE", "PackSource", "Packer"]

BLOCK_SIZE = 1 << 20
# Blocks smaller than this are deflated on the reading thread: handing them to the pool
# costs more than compressing them. Files smaller than this are hashed there too.
_INLINE_BELOW = 64 << 10
# Blocks waiting for the hashing thread, at most (it bounds memory when it falls behind).
_HASH_QUEUE = 8
# A first block that deflate cannot shrink by 3% marks a file not worth compressing.
_INCOMPRESSIBLE_RATIO = 0.97
# A first block at least this large is judged from samples before it is compressed: most
# large incompressible files (PDFs, images) then cost no deflate at all.
_SAMPLE_FROM = 256 << 10
_TRIAL_FROM = 64 << 10  # blocks this large get the fastest-level trial (~1% of their cost)
_OPEN_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


@dataclass(frozen=True)
class PackSource:
    """One regular file to back up."""

    key: str  # "<project>/<path>"
    path: str  # a str, not a Path: there is one per file and a Path costs 3x more
    # As the scan saw it, what reuse is decided by: the identity and the mode, not a whole
    # stat_result (with 24,000 files that is ~9 MiB less).
    identity: FileIdentity | None = None
    mode: int = 0


@dataclass
class _Job:
    """One attempt at one file."""

    src: PackSource
    attempt: int
    before: os.stat_result
    after: os.stat_result | None = None
    hasher: hashlib._Hash = field(default_factory=hashlib.sha256)
    crc: int = 0
    size: int = 0
    stored_crc: int = 0  # CRC-32 of the bytes written to the archive (compressed or not)
    stored: bool | None = None  # decided by the first block's result
    mark: int = -1
    hashed: Future[None] | None = None  # the last block handed to the hashing thread


@dataclass
class _Block:
    job: _Job
    raw: bytes
    compressed: Future[bytes] | bytes | None
    first: bool
    last: bool


class _SourceError(Exception):
    def __init__(self, exc: OSError) -> None:
        super().__init__(describe_os_error(exc))
        self.reason = os_error_reason(exc)


class Packer:
    """Adds files to a ZipWriter; collects manifest entries, skips and warnings.

    ``forkable``: thousands of small files may be packed by worker processes (see
    :meth:`pack`). Only where the archive goes to a local file unencrypted: the threads
    of an upload or an encryption could hold a C library lock (the time zone's, taken
    by the ``gmtime`` of request signing) at the fork, which a child computing
    ``localtime`` for its entries would then wait for forever."""

    def __init__(
        self,
        writer: ZipWriter,
        *,
        level: int,
        skip_unreadable: bool,
        progress: Progress,
        workers: int | None = None,
        forkable: bool = True,
    ) -> None:
        self.writer = writer
        self._forkable = forkable
        self.level = level
        self.skip_unreadable = skip_unreadable
        self.progress = progress
        self.entries: list[FileEntry] = []
        self.skipped: list[SkippedEntry] = []
        self.warnings: list[Diagnostic] = []
        self._workers = worker_count() if workers is None else workers
        self._pending: deque[_Block] = deque()
        self._retry: list[PackSource] = []
        self._pool: ThreadPoolExecutor | None = None
        self._hashing: ThreadPoolExecutor | None = None
        self._hash_queue: deque[Future[None]] = deque()

    def copy_reused(
        self,
        items: Sequence[tuple[PackSource, FileEntry, Member]],
        parent: ZipIndex,
        parent_sha256: str,
    ) -> list[tuple[PackSource, str]]:
        """Copy each file's member from ``parent`` as stored (no read of the source, no
        deflate), its stored bytes checked against the CRC-32 recorded when they were
        written; each entry records ``reused_from``. Returns the files whose copy failed
        (a mismatch, or a read error in the parent) with why: they are to be packed."""
        failed: list[tuple[PackSource, str]] = []
        writer = self.writer
        archive = parent.path
        assert isinstance(archive, Path | ObjectPath)
        for src, entry, member in items:
            identity = src.identity
            assert identity is not None and entry.compressed_crc32 is not None
            mark = writer.tell()
            try:
                writer.add_raw_entry(
                    DATA_PREFIX + src.key,
                    mtime=identity.mtime_ns / 1e9,
                    external_attr=file_attr(stat.S_IMODE(src.mode)),
                    stored=member.compress_type == STORED,
                    crc32=member.CRC,
                    size=entry.size,
                    compressed_size=member.compress_size,
                    data=read_raw_checked(parent, member, entry.compressed_crc32, archive),
                )
            except FdaVaultError as exc:  # raised while reading the parent, never writing
                writer.rollback_to(mark)
                failed.append((src, exc.why))
                continue
            # The parent's own entry, marked (not a copy: 24,000 of them are ~12 MB).
            entry.reused_from = parent_sha256
            self.entries.append(entry)
            self.progress.advance(entry.size)
        return failed

    def pack(self, sources: Sequence[PackSource]) -> None:
        """Add every source, retrying once each file that changed while it was read."""
        work = _plan(sources)
        small = sum(len(item) for item in work if isinstance(item, list))
        # Thousands of small files are mostly Python work: packed in one process per core
        # (forked before the pack starts its threads; a child only reads and computes).
        built: contextlib.AbstractContextManager[Iterator[_Batch | None]] = (
            ForkedMap(self._pack_batch, work)
            if self._forkable and self._workers > 1 and forks_pay(small, 1)
            else contextlib.nullcontext(map(self._pack_batch, work))
        )
        pool = ThreadPoolExecutor(self._workers) if self.level and self._workers > 1 else None
        self._pool = pool
        # SHA-256 and CRC-32 of larger files on a thread of their own: one thread keeps
        # each file's blocks in order, and the reading thread (the critical path) is free
        # to read, queue and write.
        hashing = ThreadPoolExecutor(1) if self._workers > 1 else None
        self._hashing = hashing
        try:
            with built as batches:
                for item, batch in zip(work, batches, strict=True):
                    if isinstance(item, list):
                        self._add_batch(item, batch)
                    else:
                        self._read(item, attempt=1)
            self._drain(0)
            retry, self._retry = self._retry, []
            for src in retry:
                self._read(src, attempt=2)
            self._drain(0)
        finally:
            self._pending.clear()
            self._hash_queue.clear()
            for executor in (pool, hashing):
                if executor is not None:
                    executor.shutdown(wait=True, cancel_futures=True)
            self._pool = self._hashing = None

    # --- small files, whole and in batches --------------------------------------
    def _pack_batch(self, item: list[PackSource] | PackSource) -> _Batch | None:
        return _pack_batch(item, self.level) if isinstance(item, list) else None

    def _add_batch(self, sources: list[PackSource], batch: _Batch | None) -> None:
        """Write the entries of a batch in order; a file the batch left to this process
        (changed, grown, unreadable...) is read here, in its place, the usual way."""
        assert batch is not None
        data, files = batch
        self._drain(0)  # the blocks of the files before it first
        start = end = 0
        run: list[BuiltEntry] = []
        fields: list[dict[str, object]] = []
        for src, built in zip(sources, files, strict=True):
            if built is None:
                if run:
                    self._add_run(data[start:end], run, fields)
                    run, fields, start = [], [], end
                self._read(src, attempt=1)
                self._drain(0)
                continue
            entry, size, sha256, mtime, mode, mtime_ns, ctime_ns, ino, dev, stored_crc = built
            run.append(entry)
            end += entry[9]
            fields.append(
                {
                    "path": src.key, "size": size, "sha256": sha256, "mtime": mtime,
                    "mode": mode, "mtime_ns": mtime_ns, "ctime_ns": ctime_ns, "inode": ino,
                    "device": dev, "compressed_crc32": stored_crc,
                }
            )  # fmt: skip
        if run:
            self._add_run(data[start:end], run, fields)

    def _add_run(self, data: bytes, run: list[BuiltEntry], fields: list[dict[str, object]]) -> None:
        self.writer.add_built(data, run)
        entries = file_entries(fields)
        self.entries += entries
        self.progress.advance(sum(entry.size for entry in entries))

    # --- reading (in order) -------------------------------------------------
    def _leave_out(self, src: PackSource, reason: str) -> None:
        self.skipped.append(SkippedEntry(path=src.key, reason=reason))
        self.warnings.append(
            Diagnostic(reason="left_out", path=src.path, detail=f"{reason}; not backed up")
        )

    def _read(self, src: PackSource, attempt: int) -> None:
        try:
            fd = os.open(src.path, _OPEN_FLAGS)
        except FileNotFoundError:
            self._leave_out(src, "deleted during the backup")
            return
        except OSError as exc:
            self._unreadable(src, _SourceError(exc))
            return
        try:
            before = os.fstat(fd)
            if not stat.S_ISREG(before.st_mode):
                self._leave_out(src, "replaced by a non-regular file during the backup")
                return
            job = _Job(src=src, attempt=attempt, before=before)
            self._read_blocks(fd, job)
        except _SourceError as exc:
            # Drop what was queued for this file; its entry (if begun) is the archive's tail.
            self._drain(0, stop_at=job)
            if job.mark >= 0:
                self.writer.rollback_to(job.mark)
            self._unreadable(src, exc)
        finally:
            os.close(fd)

    def _read_blocks(self, fd: int, job: _Job) -> None:
        # Asking for one byte more than the file holds finds its end in one read, and
        # costs no 1 MiB buffer for a 7 KB file (allocating and trimming one took
        # two-thirds of the time of reading 20,000 small files).
        block = self._os_read(fd, min(BLOCK_SIZE, job.before.st_size + 1))
        first = True
        while True:
            # A small file read whole in one go needs no second read to find its end (if it
            # grew meanwhile, the size check in _finish catches it).
            whole = first and len(block) == job.before.st_size and len(block) < BLOCK_SIZE
            following = self._os_read(fd, BLOCK_SIZE) if block and not whole else b""
            last = not following
            self._hash(job, block)
            job.size += len(block)
            self.progress.advance(len(block))
            if last:
                job.after = os.fstat(fd)  # before the last block is queued: see _finish
            self._queue(_Block(job, block, self._compress(job, block, first, last), first, last))
            if last:
                return
            block, first = following, False

    def _hash(self, job: _Job, block: bytes) -> None:
        if self._hashing is None or job.before.st_size < _INLINE_BELOW:
            _hash_block(job, block)
            return
        while len(self._hash_queue) >= _HASH_QUEUE:
            self._hash_queue.popleft().result()
        job.hashed = self._hashing.submit(_hash_block, job, block)
        self._hash_queue.append(job.hashed)

    @staticmethod
    def _os_read(fd: int, size: int) -> bytes:
        try:
            return os.read(fd, size)
        except OSError as exc:
            raise _SourceError(exc) from None

    def _compress(
        self, job: _Job, block: bytes, first: bool, last: bool
    ) -> Future[bytes] | bytes | None:
        if self.level == 0 or job.stored:
            return None
        if first and len(block) >= _SAMPLE_FROM and looks_incompressible(block):
            job.stored = True
            return None
        # Each block on its own: a file of text may go on with zeros (padding, a disk image).
        fastest = len(block) >= _TRIAL_FROM and fastest_level_fits(block)
        if self._pool is None or len(block) < _INLINE_BELOW:
            return compress_block(block, self.level, last, fastest=fastest)
        return self._pool.submit(compress_block, block, self.level, last, fastest=fastest)

    def _queue(self, block: _Block) -> None:
        self._pending.append(block)
        # Enough blocks in flight to keep every worker busy, few enough to bound memory.
        self._drain(2 * self._workers + 2)

    def _unreadable(self, src: PackSource, exc: _SourceError) -> None:
        if self.skip_unreadable:
            self._leave_out(src, f"unreadable ({exc})")
            return
        raise OperationError(
            src.path,
            f"cannot read: {exc}; use --skip-unreadable to leave it out",
            reason=exc.reason,
        )

    # --- writing (in order) -------------------------------------------------
    def _drain(self, keep: int, stop_at: _Job | None = None) -> None:
        while len(self._pending) > keep:
            block = self._pending[0]
            if stop_at is not None and block.job is stop_at:
                # Blocks of a failed file are discarded, never written.
                self._pending = deque(b for b in self._pending if b.job is not stop_at)
                continue
            self._pending.popleft()
            self._write(block)

    def _write(self, block: _Block) -> None:
        job = block.job
        data = _result(block.compressed)
        if block.first and block.last:
            self._write_whole(job, block.raw, data)
            return
        if block.first:
            # No data: --level 0, or the samples showed it would not compress.
            job.stored = data is None or len(data) > len(block.raw) * _INCOMPRESSIBLE_RATIO
            job.mark = self.writer.tell()
            self.writer.begin_entry(
                DATA_PREFIX + job.src.key,
                mtime=job.before.st_mtime,
                external_attr=file_attr(stat.S_IMODE(job.before.st_mode)),
                size_hint=job.before.st_size,
                stored=job.stored,
            )
        written = block.raw if job.stored or data is None else data
        job.stored_crc = crc32(written, job.stored_crc)
        self.writer.write_data(written)
        if block.last:
            self._finish(job)

    def _write_whole(self, job: _Job, raw: bytes, compressed: bytes | None) -> None:
        """A file in one block: decide, write header and data at once, nothing to patch."""
        _wait_hashed(job)
        if _changed_while_read(job):
            self._changed(job)  # nothing was written: no rollback needed
            return
        stored = compressed is None or len(compressed) > len(raw) * _INCOMPRESSIBLE_RATIO
        data = raw if stored or compressed is None else compressed
        job.stored_crc = crc32(data)
        self.writer.add_whole_entry(
            DATA_PREFIX + job.src.key,
            mtime=job.before.st_mtime,
            external_attr=file_attr(stat.S_IMODE(job.before.st_mode)),
            data=data,
            crc32=job.crc,
            size=job.size,
            stored=stored,
            size_hint=job.before.st_size,
        )
        self._record(job)

    def _record(self, job: _Job) -> None:
        before = job.before
        self.entries.append(
            FileEntry(
                path=job.src.key,
                size=job.size,
                sha256=job.hasher.hexdigest(),
                mtime=before.st_mtime,
                mode=stat.S_IMODE(before.st_mode) & 0o777,
                mtime_ns=before.st_mtime_ns,
                ctime_ns=before.st_ctime_ns,
                inode=before.st_ino,
                device=before.st_dev,
                compressed_crc32=job.stored_crc,
            )
        )

    def _finish(self, job: _Job) -> None:
        _wait_hashed(job)
        changed = _changed_while_read(job)
        if not changed:
            try:
                self.writer.end_entry(crc32=job.crc, size=job.size)
            except OverflowError:
                changed = True  # grew past 4 GiB: read it again with ZIP64 headers
        if changed:
            self.writer.rollback_to(job.mark)
            self._changed(job)
            return
        self._record(job)

    def _changed(self, job: _Job) -> None:
        if job.attempt == 1:
            self._retry.append(job.src)
        elif self.skip_unreadable:
            self._leave_out(job.src, "changed while it was being read (twice)")
        else:
            raise OperationError(
                job.src.path,
                "changed while it was being read (twice); back it up when idle",
                reason="changed_while_read",
            )


# What a batch holds of each file: its entry as built, then the manifest's fields (size,
# SHA-256, mtime, mode, mtime_ns, ctime_ns, inode, device, CRC-32 as stored); None for a
# file left to the usual path.
_BuiltFile = tuple[BuiltEntry, int, str, float, int, int, int, int, int, int]
_Batch = tuple[bytes, list[_BuiltFile | None]]
_BATCH_FILES = 256
_BATCH_BYTES = 1 << 20


def _plan(sources: Sequence[PackSource]) -> list[list[PackSource] | PackSource]:
    """``sources`` in order, runs of small files grouped in batches of up to 256 files
    or 1 MiB; each other file alone."""
    work: list[list[PackSource] | PackSource] = []
    batch: list[PackSource] = []
    weight = 0
    for src in sources:
        size = src.identity.size if src.identity is not None else _INLINE_BELOW
        if size >= _INLINE_BELOW:
            if batch:
                work.append(batch)
                batch, weight = [], 0
            work.append(src)
            continue
        batch.append(src)
        weight += size
        if len(batch) >= _BATCH_FILES or weight >= _BATCH_BYTES:
            work.append(batch)
            batch, weight = [], 0
    if batch:
        work.append(batch)
    return work


def _pack_batch(sources: list[PackSource], level: int) -> _Batch:
    """Read, hash and deflate small files whole, each with one open, fstat, read, fstat,
    close, and build their entries: the work of :meth:`Packer._read` for a file read in
    one go, without its objects per file. Pure, so it runs in a worker process. A file
    that is anything but a regular file read whole and unchanged is left (None) to the
    usual path, which knows every way to report it."""
    pieces: list[bytes] = []
    files: list[_BuiltFile | None] = []
    for src in sources:
        try:
            fd = os.open(src.path, _OPEN_FLAGS)
        except OSError:
            files.append(None)
            continue
        try:
            before = os.fstat(fd)
            size = before.st_size
            if not stat.S_ISREG(before.st_mode) or size >= _INLINE_BELOW:
                files.append(None)
                continue
            raw = os.read(fd, size + 1)
            after = os.fstat(fd)
        except OSError:
            files.append(None)
            continue
        finally:
            os.close(fd)
        if (
            len(raw) != size
            or after.st_size != size
            or after.st_mtime_ns != before.st_mtime_ns
        ):  # fmt: skip
            files.append(None)
            continue
        crc = crc32(raw)
        compressed = compress_block(raw, level, True) if level else None
        stored = compressed is None or len(compressed) > size * _INCOMPRESSIBLE_RATIO
        data = raw if stored or compressed is None else compressed
        mode = stat.S_IMODE(before.st_mode)
        header, entry = small_entry(
            DATA_PREFIX + src.key, mtime=before.st_mtime, external_attr=file_attr(mode),
            data=data, crc32=crc, size=size, stored=stored,
        )  # fmt: skip
        pieces += (header, data)
        files.append(
            (
                entry, size, hashlib.sha256(raw).hexdigest(), before.st_mtime, mode & 0o777,
                before.st_mtime_ns, before.st_ctime_ns, before.st_ino, before.st_dev,
                crc if data is raw else crc32(data),
            )
        )  # fmt: skip
    return b"".join(pieces), files


def _hash_block(job: _Job, block: bytes) -> None:
    job.hasher.update(block)
    job.crc = crc32(block, job.crc)


def _wait_hashed(job: _Job) -> None:
    """Wait until every block of ``job`` is hashed (the thread takes them in order)."""
    if job.hashed is not None:
        job.hashed.result()


def _changed_while_read(job: _Job) -> bool:
    before, after = job.before, job.after
    assert after is not None
    return (
        job.size != before.st_size
        or after.st_size != before.st_size
        or after.st_mtime_ns != before.st_mtime_ns
    )


def _result(compressed: Future[bytes] | bytes | None) -> bytes | None:
    if isinstance(compressed, Future):
        return compressed.result()
    return compressed
