"""Where archives live: the one owner of a backups location.

A location keeps the file-name convention (made and parsed here only), lists its
archives with one rule (files named like archives, never symlinks or folders), writes a
new archive so that it appears under its final name only complete and never replacing
another, deletes, cleans up what a killed run left, and takes the location's lock.

:class:`BackupsFolder` (a local folder) is the implementation today; object storage is
to be the next one, which is why callers go through these methods and never touch the
archives with ``os`` calls of their own.

The projects side has its owner too: :class:`ProjectsFolder` lists projects and finishes a
restore that was interrupted there.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager, suppress
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, Literal, NamedTuple, Protocol, cast

from fda_vault._errors import UsageError
from fda_vault._fsio import fsync_path, make_backups_dir, os_failure, publish_no_clobber
from fda_vault._journal import finish_interrupted
from fda_vault._locking import DEFAULT_LOCK_TIMEOUT, folder_lock, tree_lock
from fda_vault._manifest import RESERVED_PROJECT_NAME
from fda_vault._s3 import TMP_MARK, ArchivePath, ObjectPath, S3Prefix, parse_s3
from fda_vault._verified import FileIdentity

if TYPE_CHECKING:
    from fda_vault._audit import AuditTrail, LocalTrail, ObjectTrail
    from fda_vault._s3 import MultipartSink

__all__ = [
    "ALL_PROJECTS_LABEL",
    "ARCHIVE_NAME_RE",
    "LEGACY_TAR_NAME_RE",
    "MULTI_PROJECT_LABEL",
    "TMP_SUFFIX",
    "ArchiveName",
    "ArchivePath",
    "BackupsFolder",
    "BackupsLocation",
    "ObjectLock",
    "PendingArchive",
    "ProjectsFolder",
    "S3Location",
    "StoredArchive",
    "archive_label",
    "archive_of_index",
    "archive_path",
    "index_name",
    "index_path",
    "open_location",
    "parse_archive_name",
    "read_from",
    "sha256_of",
]

ALL_PROJECTS_LABEL = "all_projects"
MULTI_PROJECT_LABEL = "multi_project"
TMP_SUFFIX = ".tmp"
_STAMP = "%Y%m%d_%H%M%S"

ARCHIVE_NAME_RE = re.compile(
    r"^(?P<label>.+)_backup_(?P<stamp>\d{8}_\d{6})(?:_\d+)?\.zip(?P<cipher>\.age|\.gpg)?$"
)
# An encrypted archive's index (fda_vault._encrypted): X.zip.age -> X.zip.idx.age.
_INDEX_MARK = ".idx"
# The original library's tar.gz archives (fda_vault.legacytar).
LEGACY_TAR_NAME_RE = re.compile(
    r"^fda_backup_(?P<label>.+)_(?P<stamp>\d{8}_\d{6})_(?P<micro>\d{6})\.tar\.gz$"
)


class ArchiveName(NamedTuple):
    """What an archive's file name says: its label, its UTC time and its kind."""

    label: str
    stamp: str  # YYYYMMDD_HHMMSS, UTC: sorts as time does
    kind: Literal["zip", "legacy-tar"]
    cipher: Literal["age", "gpg"] | None = None  # an encrypted ZIP: .zip.age / .zip.gpg

    @property
    def time(self) -> datetime | None:
        """The stamp as a UTC time (None if it is no real date)."""
        try:
            return datetime.strptime(self.stamp, _STAMP).replace(tzinfo=timezone.utc)
        except ValueError:
            return None


def parse_archive_name(name: str) -> ArchiveName | None:
    """The parts of ``<label>_backup_<stamp>[_N].zip`` (or the original library's
    ``fda_backup_<label>_<stamp>_<micro>.tar.gz``); None for any other name."""
    match = ARCHIVE_NAME_RE.match(name)
    if match:
        cipher = match["cipher"]
        return ArchiveName(
            match["label"], match["stamp"], "zip", "age" if cipher == ".age" else
            "gpg" if cipher == ".gpg" else None,
        )  # fmt: skip
    match = LEGACY_TAR_NAME_RE.match(name)
    if match:
        return ArchiveName(match["label"], match["stamp"], "legacy-tar")
    return None


def index_name(name: str) -> str | None:
    """The index file of the encrypted archive ``name`` (``X.zip.age`` ->
    ``X.zip.idx.age``); None for an archive that is not encrypted."""
    parsed = parse_archive_name(name)
    if parsed is None or parsed.cipher is None:
        return None
    stem, suffix = name.rsplit(".", 1)
    return f"{stem}{_INDEX_MARK}.{suffix}"


def archive_of_index(name: str) -> str | None:
    """The archive whose index ``name`` is, or None if it is no index's name."""
    for suffix in (".age", ".gpg"):
        mark = f".zip{_INDEX_MARK}{suffix}"
        if name.endswith(mark):
            archive = f"{name.removesuffix(mark)}.zip{suffix}"
            return archive if index_name(archive) == name else None
    return None


def index_path(path: ArchivePath) -> ArchivePath | None:
    """Where the index of the encrypted archive at ``path`` is: beside it (None when its
    name is not an archive's: a renamed archive has no index)."""
    name = index_name(path.name)
    if name is None:
        return None
    if isinstance(path, ObjectPath):
        return ObjectPath(path.bucket, path.key[: -len(path.name)] + name)
    return path.with_name(name)


def archive_label(projects: list[str] | tuple[str, ...], all_projects: bool) -> str:
    """The file-name label: the project, ``all_projects`` or ``multi_project``."""
    if all_projects:
        return ALL_PROJECTS_LABEL
    return projects[0] if len(projects) == 1 else MULTI_PROJECT_LABEL


@dataclass(frozen=True)
class StoredArchive:
    """One archive of a location, as listed."""

    name: str
    parsed: ArchiveName
    size: int
    path: ArchivePath  # where readers open it: a local file or an object
    identity: FileIdentity | None = None  # an object's, from the listing (files: lstat)


class PendingArchive(Protocol):
    """An archive being written under a temporary name (:meth:`BackupsLocation.new_archive`)."""

    @property
    def readable(self) -> ArchivePath:
        """Where the written bytes can be read back before they are published."""

    def open(self, expected_size: int) -> IO[bytes]:
        """The file to write into (once); ``expected_size`` bounds the archive's size."""

    def finish(self, fp: IO[bytes]) -> None:
        """Writing is done: close ``fp`` (and, for an object, complete its upload)."""

    def sync(self) -> None:
        """Make the written bytes durable."""

    def restart(self) -> None:
        """Drop what was written, so that :meth:`open` starts again."""


class ObjectLock(NamedTuple):
    """S3 Object Lock retention for new archives."""

    mode: Literal["COMPLIANCE", "GOVERNANCE"]
    days: int


class BackupsLocation(Protocol):
    """Where archives live: what every command needs of a backups location. A local
    folder (:class:`BackupsFolder`) implements it; an object-storage prefix is to be the
    next implementation, so nothing outside an implementation touches archives with
    ``os`` calls of its own."""

    def exists(self) -> bool:
        """True when the location is there (a missing one has no archives yet)."""

    def create(self) -> None:
        """Make the location (never its parents)."""

    def archives(self) -> list[StoredArchive]:
        """Every archive by name, sorted by name."""

    def lock(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> AbstractContextManager[None]:
        """One writer at a time."""

    def unused_name(self, label: str, started: datetime, suffix: str = "") -> str:
        """A new archive name that replaces nothing (``suffix``: ``.age``, ``.gpg``)."""

    def new_archive(self, name: str) -> AbstractContextManager[PendingArchive]:
        """A temporary place to write ``name``; removed unless published."""

    def publish(self, pending: PendingArchive, name: str) -> ArchivePath:
        """Give a written, verified archive its final name, never replacing one
        (FileExistsError if the name was taken meanwhile)."""

    def where(self, name: str) -> ArchivePath:
        """Where the archive ``name`` is (or would be)."""

    def locked_until(self, name: str) -> datetime | None:
        """When an Object Lock on ``name`` ends, if it is locked now (folders: never)."""

    def delete(self, name: str) -> bool:
        """Delete one archive (an encrypted one's index too); False if it was gone."""

    def delete_index(self, name: str) -> None:
        """Delete the index of the encrypted archive ``name``, if there is one."""

    def sync(self) -> None:
        """Make creations and deletions durable."""

    def remove_stale_temps(self) -> None:
        """Remove what a killed run left."""

    def trail(self) -> AuditTrail:
        """The location's audit trail (:mod:`fda_vault._audit`)."""


class _LocalPending:
    """A ``<name>.tmp`` file in the backups folder."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    @property
    def readable(self) -> Path:
        return self.tmp

    def open(self, expected_size: int) -> IO[bytes]:
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
        fd = os.open(self.tmp, flags, 0o600)
        return open(fd, "wb", buffering=1 << 20)

    def finish(self, fp: IO[bytes]) -> None:
        fp.close()

    def sync(self) -> None:
        fsync_path(self.tmp)

    def restart(self) -> None:
        self.tmp.unlink(missing_ok=True)


class BackupsFolder:
    """A backups location on a local (or mounted) file system."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __str__(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        """True when the folder is there (a missing one simply has no archives yet)."""
        return self.path.exists()

    def create(self) -> None:
        """Create the folder (mode 0700) if missing; never its parents."""
        make_backups_dir(self.path)

    def archives(self) -> list[StoredArchive]:
        """Every archive by name, sorted by name; symlinks and folders are never archives."""
        if not self.path.exists():
            return []
        if not self.path.is_dir():
            raise UsageError(self.path, "not a folder", reason="not_found")
        try:
            entries = list(os.scandir(self.path))
        except OSError as exc:
            raise os_failure(self.path, exc) from None
        found = []
        for entry in entries:
            parsed = parse_archive_name(entry.name)
            if parsed is None:
                continue
            try:
                if not entry.is_file(follow_symlinks=False):
                    continue
                size = entry.stat(follow_symlinks=False).st_size
            except OSError:
                continue  # gone while listing
            found.append(StoredArchive(entry.name, parsed, size, Path(entry.path)))
        return sorted(found, key=lambda a: a.name)

    def lock(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> AbstractContextManager[None]:
        """The folder's lock: one writer (backup, prune, import) at a time."""
        return folder_lock(self.path, timeout)

    def unused_name(self, label: str, started: datetime, suffix: str = "") -> str:
        """``<label>_backup_<UTC stamp>.zip`` (``suffix``: ``.age`` / ``.gpg`` after it),
        with ``_1``, ``_2``… if that stamp is taken, encrypted or not (or being written)."""
        stem = f"{label}_backup_{started.astimezone(timezone.utc):{_STAMP}}"
        n = 0
        while any(
            (self.path / f"{base}{end}").exists()
            for base in ([f"{stem}.zip"] if not n else [f"{stem}_{n}.zip"])
            for end in ("", ".age", ".gpg", TMP_SUFFIX, f".age{TMP_SUFFIX}", f".gpg{TMP_SUFFIX}")
        ):
            n += 1
        return f"{stem}{f'_{n}' if n else ''}.zip{suffix}"

    @contextmanager
    def new_archive(self, name: str) -> Iterator[_LocalPending]:
        """A temporary file to write ``name`` into; removed unless :meth:`publish`ed."""
        tmp = self.path / f"{name}{TMP_SUFFIX}"
        try:
            yield _LocalPending(tmp)
        finally:
            tmp.unlink(missing_ok=True)

    def publish(self, pending: PendingArchive, name: str) -> Path:
        """Give the written, verified temporary file its final ``name``; never replaces a
        file."""
        assert isinstance(pending, _LocalPending)
        final = self.path / name
        publish_no_clobber(pending.tmp, final)
        return final

    def where(self, name: str) -> Path:
        """The path of the archive ``name``."""
        return self.path / name

    def locked_until(self, name: str) -> datetime | None:
        """Files have no Object Lock."""
        return None

    def delete(self, name: str) -> bool:
        """Delete one archive (and its index, if encrypted); False if it was already gone."""
        try:
            os.unlink(self.path / name)
        except FileNotFoundError:
            return False
        finally:
            self.delete_index(name)
        return True

    def delete_index(self, name: str) -> None:
        """Delete the index of the encrypted archive ``name`` (if there is one)."""
        index = index_name(name)
        if index is not None:
            with suppress(FileNotFoundError):
                os.unlink(self.path / index)

    def sync(self) -> None:
        """Make creations and deletions in the folder durable."""
        fsync_path(self.path)

    def trail(self) -> LocalTrail:
        """``fda-vault-audit.jsonl`` in the folder."""
        from fda_vault._audit import LocalTrail

        return LocalTrail(self.path)

    def remove_stale_temps(self) -> None:
        """Remove the temporary files a killed run left (``*.zip.tmp``, ``*.zip.age.tmp``,
        an index's) and indexes whose archive is gone (call with the lock held)."""
        for leftover in self.path.glob(f"*{TMP_SUFFIX}"):
            name = leftover.name.removesuffix(TMP_SUFFIX)
            if parse_archive_name(name) or archive_of_index(name):
                with suppress(OSError):
                    leftover.unlink()
        for index in self.path.glob(f"*{_INDEX_MARK}.*"):
            archive = archive_of_index(index.name)
            if archive is not None and not (self.path / archive).exists():
                with suppress(OSError):
                    index.unlink()


class _ObjectPending:
    """A temporary object ``<name>.tmp-<run>`` written by one multipart upload."""

    def __init__(self, where: S3Prefix, name: str) -> None:
        self.prefix, self.name = where, name
        self._begin()

    def _begin(self) -> None:
        self.temp = self.prefix.object(f"{self.name}{TMP_MARK}{uuid.uuid4().hex[:16]}")
        self.sink: MultipartSink | None = None
        self.size = 0
        self.etag = ""
        self.completed = False

    @property
    def readable(self) -> ObjectPath:
        return self.temp

    def open(self, expected_size: int) -> IO[bytes]:
        from fda_vault._s3 import MultipartSink, part_size_for

        self.sink = MultipartSink(self.temp, part_size=part_size_for(expected_size))
        return cast(IO[bytes], self.sink)

    def finish(self, fp: IO[bytes]) -> None:

        sink = self.sink
        assert sink is not None and fp is cast(IO[bytes], sink)
        self.etag = sink.complete()
        self.size = sink.size
        self.completed = True

    def sync(self) -> None:
        """Durable once the upload is complete: nothing to do."""

    def restart(self) -> None:
        """Drop what was written, to write it again from the start."""
        self.discard()
        self._begin()

    def discard(self) -> None:
        """Abort the upload, delete the temporary object (best effort)."""
        from fda_vault._s3 import client

        if self.sink is not None and not self.completed:
            self.sink.abort()
        if self.completed:
            with suppress(Exception):
                client().delete_object(Bucket=self.temp.bucket, Key=self.temp.key)


class S3Location:
    """A backups location in object storage: the objects directly under
    ``s3://BUCKET/PREFIX/``. Archives are never overwritten (conditional writes), a
    temporary object holds each archive until it is verified, and the lock is an object
    (see :func:`fda_vault._s3.object_lock`)."""

    def __init__(self, where: S3Prefix, object_lock: ObjectLock | None = None) -> None:
        self.prefix = where
        self.object_lock = object_lock

    def __str__(self) -> str:
        return str(self.prefix)

    def exists(self) -> bool:
        """True when the bucket is there (a prefix with no objects has no archives yet)."""
        from fda_vault._s3 import client, error_code, remote_error

        try:
            client().head_bucket(Bucket=self.prefix.bucket)
        except Exception as exc:
            if error_code(exc) in {"404", "NoSuchBucket", "NotFound"}:
                return False
            raise remote_error(exc, self, "cannot read") from None
        return True

    def create(self) -> None:
        """Buckets are never created here: a missing one is an error."""
        if not self.exists():
            raise UsageError(
                f"s3://{self.prefix.bucket}",
                "no such bucket (create it first, with Object Lock if you want it)",
                reason="no_such_bucket",
            )

    def _objects(self) -> Iterator[dict[str, Any]]:
        from fda_vault._s3 import client, remote_error

        pages = (
            client()
            .get_paginator("list_objects_v2")
            .paginate(Bucket=self.prefix.bucket, Prefix=self.prefix.listed, Delimiter="/")
        )
        iterator = iter(pages)
        while True:
            try:
                page = next(iterator)
            except StopIteration:
                return
            except Exception as exc:
                raise remote_error(exc, self, "cannot list") from None
            yield from page.get("Contents", [])

    def archives(self) -> list[StoredArchive]:
        """Every archive by name, sorted by name."""
        from fda_vault._s3 import object_identity

        found = []
        for item in self._objects():
            name = str(item["Key"]).rsplit("/", 1)[-1]
            parsed = parse_archive_name(name)
            if parsed is None:
                continue
            size = int(item["Size"])
            identity = object_identity(size, str(item["ETag"]), item["LastModified"])
            found.append(StoredArchive(name, parsed, size, self.where(name), identity))
        return sorted(found, key=lambda a: a.name)

    def lock(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> AbstractContextManager[None]:
        """The location's lock object: one writer (backup, prune, copy) at a time."""
        from fda_vault._s3 import object_lock

        return object_lock(self.prefix, timeout)

    def unused_name(self, label: str, started: datetime, suffix: str = "") -> str:
        """``<label>_backup_<UTC stamp>.zip`` (``suffix``: ``.age`` / ``.gpg`` after it),
        with ``_1``, ``_2``… if that stamp is taken, encrypted or not."""
        taken = {str(item["Key"]).rsplit("/", 1)[-1] for item in self._objects()}
        stem = f"{label}_backup_{started.astimezone(timezone.utc):{_STAMP}}"
        n = 0
        while {f"{stem}{f'_{n}' if n else ''}.zip{end}" for end in ("", ".age", ".gpg")} & taken:
            n += 1
        return f"{stem}{f'_{n}' if n else ''}.zip{suffix}"

    @contextmanager
    def new_archive(self, name: str) -> Iterator[_ObjectPending]:
        """A temporary object to write ``name`` into; removed unless published."""
        pending = _ObjectPending(self.prefix, name)
        try:
            yield pending
        finally:
            pending.discard()

    def publish(self, pending: PendingArchive, name: str) -> ObjectPath:
        """Copy the verified temporary object to ``name`` on the server, created only if
        absent (a multipart copy completed with ``If-None-Match: *``; a server that
        ignores the condition is still checked with a HEAD just before)."""
        from fda_vault._s3 import call, client, copy_object, head, lock_until

        assert isinstance(pending, _ObjectPending) and pending.completed
        final = self.where(name)
        try:
            head(final)
        except UsageError:
            pass  # not there: the name is free
        else:
            raise FileExistsError(17, "exists", str(final))
        lock = self.object_lock
        until = lock_until(lock.days) if lock is not None else None
        create = {"ObjectLockMode": lock.mode, "ObjectLockRetainUntilDate": until} if lock else {}
        copy_object(pending.temp, pending.size, pending.etag, final, **create)
        if lock is not None:
            # Again on the object itself: some servers (moto) ignore the retention of a
            # multipart upload.
            call(
                final,
                "cannot set the Object Lock (is Object Lock enabled on the bucket?)",
                client().put_object_retention,
                Bucket=final.bucket,
                Key=final.key,
                Retention={"Mode": lock.mode, "RetainUntilDate": until},
            )
        return final

    def where(self, name: str) -> ObjectPath:
        """The object of the archive ``name``."""
        return self.prefix.object(name)

    def locked_until(self, name: str) -> datetime | None:
        """The end of the Object Lock retention of ``name`` if it is in the future."""
        from fda_vault._s3 import head

        until = head(self.where(name)).get("ObjectLockRetainUntilDate")
        if isinstance(until, datetime) and until > datetime.now(timezone.utc):
            return until
        return None

    def delete(self, name: str) -> bool:
        """Delete one archive (in a versioned bucket: a delete marker hides it); False if
        it was gone."""
        from fda_vault._s3 import call, client, head

        target = self.where(name)
        try:
            head(target)
        except UsageError:
            return False
        call(target, "cannot delete", client().delete_object, Bucket=target.bucket, Key=target.key)
        self.delete_index(name)
        return True

    def delete_index(self, name: str) -> None:
        """Delete the index of the encrypted archive ``name`` (if there is one)."""
        from fda_vault._s3 import call, client

        index = index_name(name)
        if index is not None:
            where = self.where(index)
            call(where, "cannot delete", client().delete_object, Bucket=where.bucket, Key=where.key)

    def sync(self) -> None:
        """Object stores make each write durable before they answer it."""

    def trail(self) -> ObjectTrail:
        """One object per event under ``<prefix>/fda-vault-audit/``."""
        from fda_vault._audit import ObjectTrail

        return ObjectTrail(self.prefix)

    def remove_stale_temps(self) -> None:
        """Delete the temporary objects and abort the multipart uploads that killed runs
        left under the prefix (call with the lock held: no other run's are live)."""
        from fda_vault._s3 import call, client

        s3 = client()
        objects = list(self._objects())
        names = {str(item["Key"]).rsplit("/", 1)[-1] for item in objects}
        for item in objects:
            key = str(item["Key"])
            name = key.rsplit("/", 1)[-1]
            archive = archive_of_index(name)
            if TMP_MARK in name or (archive is not None and archive not in names):
                call(self, "cannot clean up", s3.delete_object, Bucket=self.prefix.bucket, Key=key)
        prefix = self.prefix.listed
        uploads = call(
            self, "cannot clean up", s3.list_multipart_uploads,
            Bucket=self.prefix.bucket, Prefix=prefix,
        )  # fmt: skip
        for upload in uploads.get("Uploads", []):
            name = str(upload["Key"]).removeprefix(prefix)
            if "/" in name or not (TMP_MARK in name or parse_archive_name(name)):
                continue  # not one of ours
            with suppress(Exception):
                s3.abort_multipart_upload(
                    Bucket=self.prefix.bucket, Key=upload["Key"], UploadId=upload["UploadId"]
                )


def open_location(spec: Path | str, object_lock: ObjectLock | None = None) -> BackupsLocation:
    """The backups location ``spec`` names: ``s3://BUCKET/PREFIX`` or a local folder."""
    parsed = parse_s3(str(spec))
    if parsed is not None:
        return S3Location(S3Prefix(*parsed), object_lock)
    if object_lock is not None:
        raise UsageError("--object-lock-days", "applies to s3:// locations only")
    return BackupsFolder(Path(spec))


def archive_path(spec: Path | str) -> ArchivePath:
    """The archive ``spec`` names: ``s3://BUCKET/KEY`` or a local path."""
    parsed = parse_s3(str(spec))
    if parsed is None:
        return Path(spec)
    bucket, key = parsed
    if not key:
        raise UsageError(str(spec), "names a bucket, not an archive", reason="usage")
    return ObjectPath(bucket, key)


def sha256_of(path: ArchivePath) -> str:
    """The SHA-256 of an archive's bytes (read whole)."""
    import hashlib

    hasher = hashlib.sha256()
    for chunk in read_from(path, 0):
        hasher.update(chunk)
    return hasher.hexdigest()


def read_from(path: ArchivePath, start: int) -> Iterator[bytes]:
    """The bytes of an archive from ``start`` to its end, in 1 MiB pieces."""
    if isinstance(path, ObjectPath):
        from fda_vault._s3 import S3Object

        source = S3Object(path)
        try:
            yield from source.read_from(start)
        finally:
            source.close()
        return
    with open(path, "rb") as fp:
        fp.seek(start)
        while chunk := fp.read(1 << 20):
            yield chunk


class ProjectsFolder:
    """The projects root: which projects there are; restores interrupted in it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def projects(self, backups: Path | None = None) -> list[str]:
        """Direct sub-folders, except hidden ones, the backups folder and ``backups``."""
        if not self.path.is_dir():
            raise UsageError(self.path, "projects folder not found", reason="not_found")
        backups_real = os.path.realpath(backups) if backups else None
        try:
            entries = list(os.scandir(self.path))
        except OSError as exc:
            raise os_failure(self.path, exc) from None
        names = []
        for entry in entries:
            if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
                continue
            if backups_real and os.path.realpath(entry.path) == backups_real:
                continue
            if entry.name == RESERVED_PROJECT_NAME:
                continue  # the default backups folder, even when backups now go elsewhere
            names.append(entry.name)
        return sorted(names)

    def finish_interrupted(self, lock_timeout: float = DEFAULT_LOCK_TIMEOUT) -> list[str]:
        """Finish or roll back a restore interrupted here (nothing else is written)."""
        return finish_interrupted(self.path, lock_timeout)

    def lock(self, timeout: float = DEFAULT_LOCK_TIMEOUT) -> AbstractContextManager[None]:
        """The folder's lock, held by a restore; nothing is written into the folder."""
        return tree_lock(self.path, timeout)
