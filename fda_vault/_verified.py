"""A record of full verifications, so that an unchanged archive is not re-read every day.

``prune`` may delete an archive only when a newer one is known intact, and "intact" means
every member's data was checked (CRC-32 and SHA-256). Reading every archive on every
prune would cost gigabytes a night, so each full check that passes (``backup``'s own
read-back, ``verify``, ``prune``) is recorded with the archive file's identity: size,
``mtime_ns``, ``ctime_ns``, inode and device. A later run trusts the record only while the
file still has that identity (any write, even one that resets the mtime, changes the
ctime) and the record is younger than :data:`RECORD_MAX_AGE`: silent decay of the disk
changes no metadata, so old records expire and the data is read again.

The record is a cache under ``$XDG_CACHE_HOME/fda-vault`` (default ``~/.cache``): losing
or deleting it costs only a re-read. Writing it is best effort and never fails a command.
"""

from __future__ import annotations

import json
import os
from contextlib import suppress
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from fda_vault._config import xdg_home
from fda_vault._errors import FdaVaultError

if TYPE_CHECKING:
    from fda_vault._s3 import ArchivePath

__all__ = [
    "RECORD_MAX_AGE",
    "FileIdentity",
    "VerificationRecords",
    "file_identity",
    "identity_of",
    "record_verified",
    "records_path",
    "verified_earlier",
]

RECORD_MAX_AGE = timedelta(days=30)
_MAX_RECORDS = 5000  # a few years of nightly archives in several folders
_LOCK_WAIT = 2.0


class FileIdentity(NamedTuple):
    """What changes when a file's bytes may have changed."""

    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    dev: int


def identity_of(st: os.stat_result) -> FileIdentity:
    """The identity in a ``stat`` result (also what a repeat backup judges files by)."""
    return FileIdentity(st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino, st.st_dev)


def file_identity(path: ArchivePath) -> FileIdentity:
    """The identity of ``path`` (not following a symlink); of an object, from its HEAD
    (size, time and ETag: a rewrite gives a new ETag). OSError when it is gone."""
    if isinstance(path, Path):
        return identity_of(os.lstat(path))
    from fda_vault._errors import UsageError
    from fda_vault._s3 import head, object_identity

    try:
        meta = head(path)
    except UsageError as exc:
        raise FileNotFoundError(2, exc.why, str(path)) from None
    return object_identity(int(meta["ContentLength"]), str(meta["ETag"]), meta["LastModified"])


def records_path() -> Path:
    """``$XDG_CACHE_HOME/fda-vault/verified.json`` (default ``~/.cache/fda-vault/...``)."""
    return xdg_home("XDG_CACHE_HOME", ".cache") / "fda-vault" / "verified.json"


def _key(path: ArchivePath) -> str:
    return os.path.realpath(path) if isinstance(path, Path) else str(path)


def _load(file: Path) -> dict[str, dict[str, object]]:
    try:
        data = json.loads(file.read_bytes())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


class VerificationRecords:
    """The records, read once for a run that checks many archives (prune, verify) and
    written once at its end: not one read and one rewrite of the whole file per archive."""

    def __init__(self) -> None:
        self._on_disk = _load(records_path())
        self._new: dict[str, dict[str, object]] = {}

    def earlier(
        self,
        path: ArchivePath,
        *,
        now: datetime | None = None,
        identity: FileIdentity | None = None,
    ) -> datetime | None:
        """When ``path`` was last fully verified, if it is unchanged since (``identity``:
        as just listed, else looked up) and the record is recent; None otherwise (the data
        must be read)."""
        if identity is None:
            try:
                identity = file_identity(path)
            except OSError:
                return None
        key = _key(path)
        record = self._new.get(key) or self._on_disk.get(key)
        if not isinstance(record, dict) or record.get("identity") != list(identity):
            return None
        try:
            when = datetime.fromisoformat(str(record.get("verified_at")))
        except ValueError:
            return None
        if when.tzinfo is None:
            return None
        moment = now or datetime.now(timezone.utc)
        if not moment - RECORD_MAX_AGE <= when <= moment:
            return None
        return when

    def sha256(self, path: ArchivePath, identity: FileIdentity | None = None) -> str | None:
        """The SHA-256 of ``path``'s bytes recorded with its check (by ``backup``, which
        hashes what it writes), while the file is unchanged; None if not recorded."""
        if self.earlier(path, identity=identity) is None:
            return None
        record = self._new.get(_key(path)) or self._on_disk.get(_key(path)) or {}
        digest = record.get("sha256")
        return digest if isinstance(digest, str) and len(digest) == 64 else None

    def add(
        self, path: ArchivePath, identity: FileIdentity | None = None, sha256: str | None = None
    ) -> None:
        """Note that ``path`` (``identity``: as it was when its check began, by default as
        it is now; ``sha256``: of its bytes, if known) passed a full check; kept until
        :meth:`save`. A SHA-256 recorded earlier for the same unchanged file is kept."""
        with suppress(OSError, FdaVaultError):
            identity = identity or file_identity(path)
            key = _key(path)
            earlier = self._new.get(key) or self._on_disk.get(key) or {}
            if sha256 is None and earlier.get("identity") == list(identity):
                digest = earlier.get("sha256")
                sha256 = digest if isinstance(digest, str) else None
            record: dict[str, object] = {
                "identity": list(identity),
                "verified_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            }
            if sha256 is not None:
                record["sha256"] = sha256
            self._new[key] = record

    def save(self) -> None:
        """Merge what was added into the file, under its lock (best effort, never fails)."""
        if not self._new:
            return
        from filelock import FileLock, Timeout  # imported only to write: list never does

        with suppress(OSError):
            file = records_path()
            file.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            try:
                with FileLock(f"{file}.lock", mode=0o600, timeout=_LOCK_WAIT):
                    records = _load(file)  # again: another run may have added since
                    for key, record in self._new.items():
                        records.pop(key, None)  # re-inserted last: the dict keeps age order
                        records[key] = record
                    for stale in list(records)[: max(0, len(records) - _MAX_RECORDS)]:
                        del records[stale]
                    tmp = file.with_name(f"{file.name}.{os.getpid()}.tmp")
                    tmp.write_text(json.dumps(records), encoding="utf-8")
                    os.replace(tmp, file)
            except Timeout:
                return  # another run is writing it: these records are only a saving
            self._on_disk, self._new = records, {}


def verified_earlier(path: ArchivePath, *, now: datetime | None = None) -> datetime | None:
    """:meth:`VerificationRecords.earlier` for one archive."""
    return VerificationRecords().earlier(path, now=now)


def record_verified(
    path: ArchivePath, identity: FileIdentity | None = None, sha256: str | None = None
) -> None:
    """Record one passed full check (:meth:`VerificationRecords.add`, then save)."""
    records = VerificationRecords()
    records.add(path, identity, sha256)
    records.save()
