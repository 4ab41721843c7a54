"""Object storage: ``s3://BUCKET/PREFIX`` as a backups location (AWS S3 and compatible
servers: MinIO, Ceph, SeaweedFS, Wasabi, Backblaze B2, Cloudflare R2).

Three pieces, each the object-storage twin of a local one:

- :class:`S3Object` reads an object with ranged GETs (the ZIP layer's ``RandomAccess``):
  1 MiB blocks, a small cache, read-ahead when reading runs forward, and ``If-Match`` on
  the ETag seen first, so an object replaced under a reader is an error, never a mix.
- :class:`MultipartSink` is the file the ZIP writer writes into: fixed-size parts
  uploaded as soon as no byte of them can change, the part where the open entry starts
  kept in memory until the entry is complete (it may be cut off), so memory stays a few parts
  whatever the archive's size, and nothing is written to the local disk.
- :class:`S3Location` is a backups location (``storage.BackupsLocation``): listing,
  never-overwrite publishing (``If-None-Match: *``), deletion that respects Object Lock,
  the location's lock (an object created with ``If-None-Match: *``), and the clean-up of
  what a killed run left (its temporary objects, its incomplete multipart uploads).

boto3 is imported on first use only (it costs ~0.3 s of start-up that local commands
never pay). Credentials, region and endpoint come from the standard AWS chain
(``AWS_PROFILE``, ``AWS_ACCESS_KEY_ID``…, ``~/.aws/config``, ``AWS_ENDPOINT_URL_S3``).
"""

from __future__ import annotations

import json
import os
import re
import socket
import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from functools import lru_cache
from pathlib import Path
from typing import Any, NoReturn

from fda_vault._errors import (
    FdaVaultError,
    IntegrityError,
    LockedError,
    OperationError,
    UsageError,
)
from fda_vault._fsio import fixed_mmap_threshold
from fda_vault._parallel import process_alive
from fda_vault._verified import FileIdentity

__all__ = [
    "LOCK_KEY_NAME",
    "TMP_MARK",
    "ArchivePath",
    "MultipartSink",
    "ObjectPath",
    "S3Object",
    "S3Prefix",
    "client",
    "parse_s3",
    "remote_error",
]

# s3://bucket/key; "s3:/bucket/key" too, which is what a path type makes of it.
_S3_URL = re.compile(r"^s3:/{1,2}(?P<bucket>[^/]+)/*(?P<key>.*)$")
LOCK_KEY_NAME = ".fda-vault.lock"
TMP_MARK = ".tmp-"  # <name>.tmp-<run>: a temporary object of a run (never an archive name)

BLOCK = 1 << 20  # ranged reads are whole, aligned 1 MiB blocks
_CACHE_BLOCKS = 24
_STREAMS = 6  # readers running forward through one object side by side (threads)
_READ_AHEAD = 8  # blocks read ahead while the reading runs forward...
_AHEAD_RUN = 4  # ...by GETs of this many blocks (measured on SeaweedFS on loopback:
# ranges of 1 MiB gave 180-350 MB/s, of 4 MiB 540-760 MB/s, with 1-4 threads)
PART_SIZE = 8 << 20  # at least 5 MiB (S3's minimum); 10,000 parts: 80 GB at this size
_MAX_PARTS = 10_000
_UPLOADS_IN_FLIGHT = 2
_COPY_PART = 1 << 30  # server-side copy in pieces of 1 GiB (S3 allows 5 GiB)
_LOCK_POLL = 0.5
LOCK_REFRESH = 60.0  # a holder rewrites its lock object this often
LOCK_STALE = 600.0  # a lock not refreshed for this long belongs to a dead run
_ENDED_EARLY = "the object ended early (truncated while read?)"


@dataclass(frozen=True)
class ObjectPath:
    """One object: what an archive's path is when it lives in object storage."""

    bucket: str
    key: str

    @property
    def name(self) -> str:
        """The last segment of the key (the archive's file name)."""
        return self.key.rsplit("/", 1)[-1]

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


# Where an archive is: a local file, or an object.
ArchivePath = Path | ObjectPath


@dataclass(frozen=True)
class S3Prefix:
    """A bucket and a prefix (no slash at either end; empty: the bucket's top)."""

    bucket: str
    prefix: str

    @property
    def listed(self) -> str:
        """What a listing of the objects directly under the prefix asks for."""
        return f"{self.prefix}/" if self.prefix else ""

    def key(self, name: str) -> str:
        """The key of ``name`` under the prefix."""
        return f"{self.prefix}/{name}" if self.prefix else name

    def object(self, name: str) -> ObjectPath:
        """The object ``name`` under the prefix."""
        return ObjectPath(self.bucket, self.key(name))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"


def parse_s3(text: str) -> tuple[str, str] | None:
    """(bucket, key or prefix without the slashes at its ends) of an ``s3://`` URL, or
    None when ``text`` is not one. UsageError for an empty bucket name."""
    match = _S3_URL.match(text)
    if match is None:
        return None
    bucket, key = match["bucket"], match["key"].strip("/")
    if not re.fullmatch(r"[a-z0-9][a-z0-9.\-_]{1,254}", bucket):
        raise UsageError(text, "not a valid bucket name", reason="usage")
    return bucket, re.sub("/+", "/", key)


# --- the client ------------------------------------------------------------------------


@lru_cache(maxsize=1)
def client() -> Any:
    """One S3 client per process (boto3 clients are thread-safe), configured from the
    standard AWS chain; retries with backoff on throttling, 5xx and dropped connections
    (botocore's ``standard`` mode, 6 attempts, unless ``AWS_RETRY_MODE`` /
    ``AWS_MAX_ATTEMPTS`` or the profile's ``retry_mode`` / ``max_attempts`` say
    otherwise); path-style addressing when the endpoint is given by
    ``AWS_ENDPOINT_URL(_S3)`` (as local and most non-AWS servers need), unless the profile
    sets an addressing style of its own."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise UsageError(
            "s3:// locations",
            "need boto3, which this installation lacks: install fda-vault with its s3 "
            "extra (pipx install '.[s3]' in a checkout, or pip install boto3 beside it)",
        ) from None

    fixed_mmap_threshold()
    endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    session = boto3.session.Session()
    profile = session._session.get_scoped_config()
    options: dict[str, Any] = {
        "retries": {
            "mode": os.environ.get("AWS_RETRY_MODE") or profile.get("retry_mode") or "standard",
            "total_max_attempts": _attempts(
                os.environ.get("AWS_MAX_ATTEMPTS") or profile.get("max_attempts") or "6"
            ),
        },
        "connect_timeout": 10,
        "read_timeout": 60,
        "max_pool_connections": 16,
    }
    if endpoint and not (profile.get("s3") or {}).get("addressing_style"):
        options["s3"] = {"addressing_style": "path"}
    region = session.region_name or "us-east-1"  # most non-AWS servers accept any
    return session.client("s3", region_name=region, config=Config(**options))


def _attempts(value: str) -> int:
    try:
        attempts = int(value)
    except ValueError:
        attempts = 0
    if attempts < 1:
        raise UsageError(
            f"max_attempts {value!r} (AWS_MAX_ATTEMPTS or the profile)",
            "not a whole number of at least 1",
        )
    return attempts


_ACCESS_CODES = {
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "ExpiredToken",
    "InvalidToken",
    "TokenRefreshRequired",
    "AuthorizationHeaderMalformed",
    "403",
}


def error_code(exc: BaseException) -> str | None:
    """The S3 error code of a botocore ``ClientError`` (None for anything else)."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return None
    code = response.get("Error", {}).get("Code")
    return str(code) if code is not None else None


def remote_error(exc: Exception, where: object, doing: str) -> FdaVaultError:
    """The fda-vault error for a failed S3 call on ``where`` (a bucket, prefix or object):
    one line with the cause and a stable reason. Credentials never appear: botocore's
    messages carry none, and only the code and the server's message are shown."""
    from botocore import exceptions as bx

    code = error_code(exc)
    if code is not None:
        message = str(getattr(exc, "response", {}).get("Error", {}).get("Message") or code)
        if code in _ACCESS_CODES:
            return OperationError(where, f"{doing}: access denied ({code})", reason="access_denied")
        if code == "NoSuchBucket":
            return UsageError(where, f"{doing}: no such bucket", reason="no_such_bucket")
        if code in {"NoSuchKey", "404", "NotFound"}:
            return UsageError(where, f"{doing}: no such object", reason="not_found")
        if code in {"PreconditionFailed", "412"}:
            return IntegrityError(
                where, f"{doing}: the object changed while it was read", reason="damaged"
            )
        if code in {"InvalidRange", "416"}:  # a read past its end: shorter than listed
            return IntegrityError(where, f"{doing}: {_ENDED_EARLY}", reason="damaged")
        return OperationError(where, f"{doing}: {code}: {message}", reason="server_error")
    if isinstance(exc, bx.NoCredentialsError | bx.PartialCredentialsError):
        return UsageError(
            where,
            f"{doing}: no AWS credentials (set AWS_PROFILE or AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY, or ~/.aws/credentials)",
            reason="no_credentials",
        )
    if isinstance(exc, bx.BotoCoreError | OSError):
        return OperationError(where, f"{doing}: {_network_cause(exc)}", reason="network")
    return OperationError(where, f"{doing}: {exc}", reason="network")


def _network_cause(exc: BaseException) -> str:
    from botocore import exceptions as bx

    if isinstance(exc, bx.EndpointConnectionError | bx.ConnectTimeoutError):
        return "cannot reach the server (is AWS_ENDPOINT_URL right, is it running?)"
    if isinstance(exc, bx.ReadTimeoutError):
        return "the server stopped answering (timeout)"
    if isinstance(exc, bx.ConnectionClosedError | bx.ResponseStreamingError):
        return "the server closed the connection"
    return f"network error ({type(exc).__name__})"


def _is_client_error(exc: BaseException, *codes: str) -> bool:
    return error_code(exc) in codes


def call(where: object, doing: str, function: Callable[..., Any], **kwargs: Any) -> Any:
    """``function(**kwargs)`` with any failure turned into :func:`remote_error`."""
    try:
        return function(**kwargs)
    except FdaVaultError:
        raise
    except Exception as exc:
        raise remote_error(exc, where, doing) from None


def head(path: ObjectPath) -> dict[str, Any]:
    """The object's HEAD (UsageError not_found when there is none)."""
    result: dict[str, Any] = call(
        path, "cannot read", client().head_object, Bucket=path.bucket, Key=path.key
    )
    return result


def object_identity(size: int, etag: str, modified: datetime) -> FileIdentity:
    """An object's identity in the shape of a file's (size, mtime_ns, ctime_ns, ino, dev):
    the ETag stands for the inode (a new object under the same key has a new one)."""
    import zlib

    # Whole seconds: a HEAD gives them (an HTTP date), a listing gives milliseconds.
    mtime_ns = int(modified.timestamp()) * 1_000_000_000
    tag = zlib.crc32(etag.strip('"').encode()) << 32 | len(etag)
    return FileIdentity(size, mtime_ns, mtime_ns, tag, 0)


# --- reading -----------------------------------------------------------------------------


_READ_BACKOFF = 0.5  # seconds before the first retry of a cut-off read, doubled each time


class S3Object:
    """An object read by ranged GETs (``RandomAccess``): whole aligned blocks, cached, with
    read-ahead while the reading runs forward. Thread-safe. ``fetched`` counts the bytes
    received (what ``list`` of a large archive is measured by)."""

    _pool: ThreadPoolExecutor | None = None
    _pool_lock = threading.Lock()

    def __init__(self, path: ObjectPath, *, size: int | None = None, etag: str | None = None):
        self.path = path
        if size is None or etag is None:
            meta = head(path)
            size, etag = int(meta["ContentLength"]), str(meta["ETag"])
        self.size = size
        self.etag = etag
        self.fetched = 0
        self._blocks: OrderedDict[int, Future[memoryview]] = OrderedDict()
        self._lock = threading.Lock()
        self._streams: list[int] = []  # the last block of each recent forward reader

    @classmethod
    def _executor(cls) -> ThreadPoolExecutor:
        with cls._pool_lock:
            if cls._pool is None:
                cls._pool = ThreadPoolExecutor(4, thread_name_prefix="s3-read")
            return cls._pool

    def _fetch(self, first: int, count: int) -> list[memoryview]:
        start = first * BLOCK
        end = min(self.size, (first + count) * BLOCK) - 1
        data = self._get(start, end)
        with self._lock:
            self.fetched += len(data)
        if len(data) != end - start + 1:
            raise IntegrityError(self.path, _ENDED_EARLY)
        whole = memoryview(data)  # blocks share the response's bytes (no copy each)
        return [whole[i : i + BLOCK] for i in range(0, len(data), BLOCK)]

    def _get(self, start: int, end: int) -> bytes:
        """The bytes ``start..end`` (inclusive). botocore retries a request that fails, but
        not a body cut off while it is read: that is retried here, with the same number of
        attempts and a backoff."""
        from botocore.exceptions import ResponseStreamingError

        s3 = client()
        attempts = int(s3.meta.config.retries.get("total_max_attempts") or 1)
        for attempt in range(1, attempts + 1):
            response = call(
                self.path,
                "cannot read",
                s3.get_object,
                Bucket=self.path.bucket,
                Key=self.path.key,
                Range=f"bytes={start}-{end}",
                IfMatch=self.etag,
            )
            try:
                data: bytes = response["Body"].read()
                return data
            except ResponseStreamingError as exc:
                if attempt == attempts:
                    raise remote_error(exc, self.path, "cannot read") from None
                time.sleep(min(_READ_BACKOFF * 2 ** (attempt - 1), 20))
            except Exception as exc:
                raise remote_error(exc, self.path, "cannot read") from None
        raise AssertionError("unreachable")  # the last attempt returns or raises

    def _future(self, index: int) -> Future[memoryview]:
        """The block ``index``, a new future if it is not cached or coming; the lock held."""
        found = self._blocks.get(index)
        if found is not None:
            self._blocks.move_to_end(index)
            return found
        future: Future[memoryview] = Future()
        self._blocks[index] = future
        while len(self._blocks) > _CACHE_BLOCKS:
            self._blocks.popitem(last=False)
        return future

    def _runs_forward(self, first: int, last: int) -> bool:
        """Whether a read of blocks ``first..last`` continues one of the recent readers
        (each thread reading its own stretch, as verify and restore do, is one); it is
        recorded as that reader's new end, or as a new reader. The lock held."""
        for i, end in enumerate(self._streams):
            if end <= first <= end + 1:
                self._streams[i] = last
                return True
        self._streams.append(last)
        del self._streams[:-_STREAMS]
        return False

    def _read_ahead(self, after: int) -> None:
        """Start fetching the blocks after ``after`` that are not cached or coming, on the
        read pool, in whole aligned runs of ``_AHEAD_RUN`` blocks (one GET each: a window
        that slid by one block would otherwise fetch one block at a time); the lock held."""
        count = self._block_count()
        end = after + _READ_AHEAD
        end = count if end >= count else end - end % _AHEAD_RUN  # whole runs only
        runs: dict[int, list[tuple[int, Future[memoryview]]]] = {}
        for index in range(after + 1, end):
            if index not in self._blocks:
                runs.setdefault(index // _AHEAD_RUN, []).append((index, self._future(index)))
        pool = self._executor()
        for run in runs.values():
            pool.submit(self._fill_run, run)

    def pread(self, length: int, offset: int, /) -> bytes:
        """Up to ``length`` bytes at ``offset``."""
        if offset >= self.size or length <= 0:
            return b""
        end = min(self.size, offset + length)
        first, last = offset // BLOCK, (end - 1) // BLOCK
        mine: list[tuple[int, Future[memoryview]]] = []
        with self._lock:
            futures = []
            for index in range(first, last + 1):
                known = index in self._blocks
                future = self._future(index)
                if not known:
                    mine.append((index, future))
                futures.append(future)
            if self._runs_forward(first, last):
                self._read_ahead(last)
        if mine:
            self._fill_run(mine)
        skip, stop = offset - first * BLOCK, end - last * BLOCK
        if len(futures) == 1:
            return futures[0].result()[skip:stop].tobytes()
        pieces = [future.result() for future in futures]
        pieces[0], pieces[-1] = pieces[0][skip:], pieces[-1][:stop]
        return b"".join(pieces)

    def _fill_run(self, mine: list[tuple[int, Future[memoryview]]]) -> None:
        """Fetch the blocks this thread owns, consecutive ones in one GET (a failure is
        handed to whoever waits for them, and raised)."""
        start = 0
        while start < len(mine):
            stop = start + 1
            while stop < len(mine) and mine[stop][0] == mine[stop - 1][0] + 1:
                stop += 1
            run = mine[start:stop]
            try:
                blocks = self._fetch(run[0][0], len(run))
            except BaseException as exc:
                for index, future in run:
                    future.set_exception(exc)
                    with self._lock:
                        self._blocks.pop(index, None)  # a later read tries again
                raise
            for (_, future), block in zip(run, blocks, strict=True):
                future.set_result(block)
            start = stop

    def _block_count(self) -> int:
        return (self.size + BLOCK - 1) // BLOCK

    def read_from(self, offset: int) -> Iterator[bytes]:
        """Every byte from ``offset`` to the end, in blocks (read ahead as it goes)."""
        while offset < self.size:
            data = self.pread(BLOCK - offset % BLOCK, offset)
            if not data:
                return
            offset += len(data)
            yield data

    def close(self) -> None:
        """Forget the cached blocks."""
        with self._lock:
            self._blocks.clear()


# --- writing -----------------------------------------------------------------------------


def part_size_for(expected: int) -> int:
    """A part size that fits ``expected`` bytes into S3's 10,000 parts (whole MiB)."""
    need = -(-expected // (_MAX_PARTS - 500))
    return max(PART_SIZE, -(-need // (1 << 20)) << 20)


class MultipartSink:
    """A write-only, seekable file over one multipart upload, for the ZIP writer.

    The file is cut into parts of ``part_size`` bytes at fixed offsets. A part is uploaded
    once full, unless it holds :meth:`settle`'s offset (the open entry's start, to which
    the writer may cut back: the writer never patches). A part uploaded after it can be
    written again after such a cut: it is uploaded again under its number, and parts
    past the final end are left out of the completed object. Memory: the pinned part,
    the part being filled and the uploads in flight.
    """

    def __init__(self, path: ObjectPath, *, part_size: int = PART_SIZE, **create: Any):
        self.path = path
        self.part_size = part_size
        self._client = client()
        self._upload_id: str = call(
            path,
            "cannot write",
            self._client.create_multipart_upload,
            Bucket=path.bucket,
            Key=path.key,
            **create,
        )["UploadId"]
        self._parts: dict[int, bytearray] = {}  # in memory, not (or no longer) uploaded
        self._etags: dict[int, str] = {}
        self._inflight: dict[int, Future[str]] = {}
        self._pool = ThreadPoolExecutor(_UPLOADS_IN_FLIGHT, thread_name_prefix="s3-upload")
        self._pos = 0
        self._size = 0
        self._settled = 0
        self._completed = False

    # file-like API used by the ZIP writer
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
        view = memoryview(data)
        size = self.part_size
        while view:
            index, at = divmod(self._pos, size)
            part = self._part(index)
            take = min(len(view), size - at)
            if at > len(part):
                part.extend(bytes(at - len(part)))
            part[at : at + take] = view[:take]
            view = view[take:]
            self._pos += take
            self._size = max(self._size, self._pos)
        self._send_ready()
        return len(data)

    def truncate(self, size: int | None = None) -> int:
        end = self._pos if size is None else size
        index, at = divmod(end, self.part_size)
        for stale in [i for i in self._parts if i > index]:
            del self._parts[stale]
        if at and index not in self._parts:
            raise AssertionError(f"cannot cut into part {index + 1}: it was uploaded")
        if index in self._parts:
            del self._parts[index][at:]
        self._size = end
        return end

    def settle(self, offset: int) -> None:
        """No byte before ``offset`` will be written again."""
        self._settled = max(self._settled, offset)
        self._send_ready()

    def _part(self, index: int) -> bytearray:
        part = self._parts.get(index)
        if part is None:
            if index in self._etags or index in self._inflight:
                # A rollback cut back into an uploaded part: only parts after the pin
                # can be, and they are rewritten from their start.
                if index * self.part_size < self._settled:
                    raise AssertionError(f"part {index + 1} was uploaded and cannot change")
                self._etags.pop(index, None)
            part = self._parts[index] = bytearray()
        return part

    def _send_ready(self) -> None:
        size = self.part_size
        pinned = self._settled // size
        for index in sorted(self._parts):
            part = self._parts[index]
            if len(part) < size or index == pinned:
                continue
            self._send(index)

    def _send(self, index: int) -> None:
        data = self._parts.pop(index)  # never written again: a rewrite starts a new one
        earlier = self._inflight.pop(index, None)
        if earlier is not None:
            earlier.result()  # the same part number: the newer upload must land last
        while len(self._inflight) >= _UPLOADS_IN_FLIGHT:
            self._collect(min(self._inflight))
        self._inflight[index] = self._pool.submit(self._upload, index, data)

    def _collect(self, index: int) -> None:
        future = self._inflight.pop(index)
        self._etags[index] = future.result()

    def _upload(self, index: int, data: bytearray) -> str:
        response = call(
            self.path,
            "cannot write",
            self._client.upload_part,
            Bucket=self.path.bucket,
            Key=self.path.key,
            UploadId=self._upload_id,
            PartNumber=index + 1,
            Body=data,
        )
        return str(response["ETag"])

    @property
    def size(self) -> int:
        """The file's size so far (after :meth:`complete`: the object's)."""
        return self._size

    def complete(self) -> str:
        """Upload what is left and make the object (all of it or nothing): its ETag."""
        last = (self._size - 1) // self.part_size
        for index in sorted(self._parts):
            if index <= last:
                self._send(index)
        for index in list(self._inflight):
            self._collect(index)
        missing = [i for i in range(last + 1) if i not in self._etags]
        if missing:
            raise AssertionError(f"part {missing[0] + 1} was never uploaded")
        parts = [{"PartNumber": i + 1, "ETag": self._etags[i]} for i in range(last + 1)]
        response = call(
            self.path,
            "cannot write",
            self._client.complete_multipart_upload,
            Bucket=self.path.bucket,
            Key=self.path.key,
            UploadId=self._upload_id,
            MultipartUpload={"Parts": parts},
            IfNoneMatch="*",
        )
        self._completed = True
        self._pool.shutdown(wait=True)
        return str(response["ETag"])

    def abort(self) -> None:
        """Give up: the server drops every part (best effort; a kill -9 leaves the upload
        to the next run's clean-up)."""
        self._pool.shutdown(wait=True, cancel_futures=True)
        if not self._completed:
            with suppress(Exception):
                self._client.abort_multipart_upload(
                    Bucket=self.path.bucket, Key=self.path.key, UploadId=self._upload_id
                )

    def close(self) -> None:
        """Nothing to close: :meth:`complete` or :meth:`abort` ends the upload."""


def copy_object(
    source: ObjectPath, size: int, etag: str, target: ObjectPath, **create: Any
) -> None:
    """Server-side copy of ``source`` (as of ``etag``) to ``target``, which must not
    exist: a multipart copy completed with ``If-None-Match: *`` (any size, never
    replacing). FileExistsError when ``target`` exists."""
    s3 = client()
    upload_id = call(
        target,
        "cannot write",
        s3.create_multipart_upload,
        Bucket=target.bucket,
        Key=target.key,
        **create,
    )["UploadId"]
    try:
        ranges = [
            (start, min(size, start + _COPY_PART) - 1) for start in range(0, size, _COPY_PART)
        ]

        def copy_part(number: int, first: int, last: int) -> dict[str, Any]:
            result = call(
                target,
                "cannot copy",
                s3.upload_part_copy,
                Bucket=target.bucket,
                Key=target.key,
                UploadId=upload_id,
                PartNumber=number,
                CopySource={"Bucket": source.bucket, "Key": source.key},
                CopySourceRange=f"bytes={first}-{last}",
                CopySourceIfMatch=etag,
            )
            return {"PartNumber": number, "ETag": result["CopyPartResult"]["ETag"]}

        with ThreadPoolExecutor(2) as pool:
            parts = list(pool.map(lambda r: copy_part(r[0] + 1, *r[1]), enumerate(ranges)))
        try:
            s3.complete_multipart_upload(
                Bucket=target.bucket,
                Key=target.key,
                UploadId=upload_id,
                MultipartUpload={"Parts": parts},
                IfNoneMatch="*",
            )
        except Exception as exc:
            if _is_client_error(exc, "PreconditionFailed", "412"):
                raise FileExistsError(17, "exists", str(target)) from None
            raise remote_error(exc, target, "cannot write") from None
    except BaseException:
        with suppress(Exception):
            s3.abort_multipart_upload(Bucket=target.bucket, Key=target.key, UploadId=upload_id)
        raise


# --- the lock ------------------------------------------------------------------------


def _holder_note() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "run": uuid.uuid4().hex,
        "time": time.time(),
    }


def _stale(note: dict[str, Any], now: float) -> bool:
    """A lock whose holder is gone: a dead process on this host, or no refresh lately."""
    pid = note.get("pid")
    if note.get("host") == socket.gethostname() and isinstance(pid, int) and not process_alive(pid):
        return True
    stamp = note.get("time")
    return not isinstance(stamp, int | float) or now - stamp > LOCK_STALE


@contextmanager
def object_lock(where: S3Prefix, timeout: float) -> Iterator[None]:
    """Hold the location's lock: the object ``<prefix>/.fda-vault.lock``, created only if
    absent (``If-None-Match: *``), rewritten every minute while held, and taken over when
    its holder is dead (same host, no such process) or silent for 10 minutes."""
    s3 = client()
    target = where.object(LOCK_KEY_NAME)
    note = _holder_note()
    deadline = time.monotonic() + timeout
    etag = _acquire(s3, target, note, deadline, timeout)
    stop = threading.Event()
    current = {"etag": etag}

    def refresh() -> None:
        while not stop.wait(LOCK_REFRESH):
            note["time"] = time.time()
            with suppress(Exception):
                response = s3.put_object(
                    Bucket=target.bucket, Key=target.key, Body=json.dumps(note).encode()
                )
                current["etag"] = response["ETag"]

    refresher = threading.Thread(target=refresh, name="s3-lock", daemon=True)
    refresher.start()
    try:
        yield
    finally:
        stop.set()
        refresher.join()
        with suppress(Exception):
            s3.delete_object(Bucket=target.bucket, Key=target.key, IfMatch=current["etag"])


def _acquire(
    s3: Any, target: ObjectPath, note: dict[str, Any], deadline: float, timeout: float
) -> str:
    while True:
        try:
            response = s3.put_object(
                Bucket=target.bucket,
                Key=target.key,
                Body=json.dumps(note).encode(),
                IfNoneMatch="*",
            )
            return str(response["ETag"])
        except Exception as exc:
            if not _is_client_error(exc, "PreconditionFailed", "412", "ConditionalRequestConflict"):
                raise remote_error(exc, target, "cannot lock") from None
        holder, etag = _read_holder(s3, target)
        if holder is not None and etag is not None and _stale(holder, time.time()):
            with suppress(Exception):  # another run may take it over first: then we wait
                s3.delete_object(Bucket=target.bucket, Key=target.key, IfMatch=etag)
            continue
        if time.monotonic() >= deadline:
            who = (
                f"pid {holder.get('pid')} on host {holder.get('host')}"
                if holder is not None
                else "unknown"
            )
            _locked(target, who, timeout)
        time.sleep(_LOCK_POLL)


def _locked(target: ObjectPath, who: str, timeout: float) -> NoReturn:
    prefix = target.key.rsplit("/", 1)[0] if "/" in target.key else ""
    raise LockedError(
        f"s3://{target.bucket}/{prefix}",
        f"locked by another fda-vault run ({who}); waited {timeout:g} s",
    )


def _read_holder(s3: Any, target: ObjectPath) -> tuple[dict[str, Any] | None, str | None]:
    try:
        response = s3.get_object(Bucket=target.bucket, Key=target.key)
        raw = response["Body"].read()
        etag = str(response["ETag"])
    except Exception as exc:
        if _is_client_error(exc, "NoSuchKey", "404"):
            return None, None  # released meanwhile: try again at once
        raise remote_error(exc, target, "cannot lock") from None
    try:
        note = json.loads(raw)
    except ValueError:
        note = {}
    return (note if isinstance(note, dict) else {}), etag


def lock_until(days: int) -> datetime:
    """The retain-until date of an archive locked for ``days`` from now."""
    return datetime.now(timezone.utc) + timedelta(days=days)
