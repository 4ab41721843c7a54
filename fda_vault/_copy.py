"""``copy``: the archives of one location that another lacks, copied byte for byte.

How a user keeps the offsite copy of the 3-2-1 rule: ``backup`` locally, ``copy`` to
``s3://…``, ``prune`` each. Between any two locations (folder ↔ object storage, object
storage ↔ object storage, folder ↔ folder). Each archive missing at the destination (by
name) is streamed from the source, its SHA-256 computed on the way, written under a
temporary name, read back at the destination and hashed again; only when the two agree
is it published, never replacing anything. Bytes are copied, not opened.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Literal

from pydantic import BaseModel

from fda_vault._errors import ExitCode, FdaVaultError, IntegrityError, InterruptedByUser, UsageError
from fda_vault._fsio import os_failure
from fda_vault._locking import DEFAULT_LOCK_TIMEOUT
from fda_vault._progress import NO_PROGRESS, Progress
from fda_vault._s3 import ArchivePath
from fda_vault._storage import (
    BackupsLocation,
    ObjectLock,
    StoredArchive,
    index_name,
    index_path,
    open_location,
    read_from,
    sha256_of,
)
from fda_vault._verified import VerificationRecords

__all__ = ["CopiedArchive", "CopyResult", "copy_archives"]

CopyStatus = Literal["copied", "would copy", "present", "skipped", "failed"]


class CopiedArchive(BaseModel):
    """One archive of the source and what became of it."""

    file: str
    bytes: int
    status: CopyStatus
    sha256: str | None = None  # of the bytes, the same at both ends (copied only)
    destination: str | None = None
    detail: str | None = None  # why skipped or failed
    reason: str | None = None  # of a failure: "damaged" when the bytes did not hold


class CopyResult(BaseModel):
    """A copy run: every archive of the source (those of the labels asked for)."""

    source: str
    destination: str
    dry_run: bool
    archives: list[CopiedArchive]
    copied: int
    bytes_copied: int
    duration_seconds: float

    @property
    def exit_code(self) -> ExitCode:
        """3 when a copy did not match its source (or the source changed or was damaged
        while read), 1 when one failed otherwise, else 0."""
        if any(a.status == "failed" and a.reason == "damaged" for a in self.archives):
            return ExitCode.INTEGRITY
        return ExitCode.FAILURE if any(a.status == "failed" for a in self.archives) else ExitCode.OK


_MISMATCH = "the copy read back differs from the source; nothing was published"


def copy_archives(
    source: Path | str,
    destination: Path | str,
    *,
    labels: Sequence[str] = (),
    dry_run: bool = False,
    object_lock: ObjectLock | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    progress: Progress = NO_PROGRESS,
) -> CopyResult:
    """Copy every archive of ``source`` (of ``labels``, if given) that ``destination``
    has not, verified at the destination; ``object_lock`` sets the retention of each
    copy in object storage. An archive that fails is reported and the others go on."""
    clock = time.monotonic()
    src = open_location(source)
    dst = open_location(destination, object_lock)
    if not src.exists():
        raise UsageError(str(src), "backups folder not found", reason="not_found")
    if str(src) == str(dst):
        raise UsageError(str(dst), "is the source too")
    wanted = [a for a in src.archives() if not labels or a.parsed.label in labels]
    if dry_run:
        present = {a.name for a in dst.archives()} if dst.exists() else set()
        return _result(src, dst, [_planned(a, present) for a in wanted], True, clock)
    dst.create()
    records = VerificationRecords()
    outcomes: list[CopiedArchive] = []
    with dst.lock(lock_timeout):
        dst.remove_stale_temps()
        present = {a.name for a in dst.archives()}
        todo = [a for a in wanted if a.name not in present and a.parsed.kind == "zip"]
        progress.start("copying", sum(a.size for a in todo))
        try:
            for stored in wanted:
                if stored not in todo:
                    outcomes.append(_planned(stored, present))
                    continue
                outcomes.append(_copy_one(stored, dst, records, progress))
        finally:
            progress.finish()
            records.save()
    return _result(src, dst, outcomes, False, clock)


def _planned(stored: StoredArchive, present: set[str]) -> CopiedArchive:
    if stored.name in present:
        return CopiedArchive(file=stored.name, bytes=stored.size, status="present")
    if stored.parsed.kind != "zip":
        return CopiedArchive(
            file=stored.name,
            bytes=stored.size,
            status="skipped",
            detail="a tar.gz of the original library: import it first (fda-vault import)",
        )
    return CopiedArchive(file=stored.name, bytes=stored.size, status="would copy")


def _copy_one(
    stored: StoredArchive, dst: BackupsLocation, records: VerificationRecords, progress: Progress
) -> CopiedArchive:
    """Copy one archive (an encrypted one's index first: no key is needed for either)."""
    name = stored.name
    index = index_name(name)
    try:
        source_index = index_path(stored.path)
        if index is not None and source_index is not None:
            try:
                _transfer(source_index, dst, index, NO_PROGRESS, 0)
            except (FileNotFoundError, UsageError) as exc:
                if isinstance(exc, UsageError) and exc.reason != "not_found":
                    raise
                # No index at the source: the copy is read the way the original is.
        try:
            final, digest = _transfer(stored.path, dst, name, progress, stored.size)
        except BaseException:
            if index is not None:
                with suppress(Exception):
                    dst.delete_index(name)
            raise
    except KeyboardInterrupt:
        raise InterruptedByUser(name, "interrupted; the copy in progress was removed") from None
    except FileExistsError:
        return CopiedArchive(
            file=name, bytes=stored.size, status="present", detail="appeared meanwhile"
        )
    except IntegrityError as exc:
        return _failed(stored, exc.why, exc.reason)
    except FdaVaultError as exc:
        return _failed(stored, exc.message, exc.reason)
    except OSError as exc:
        failure = os_failure(str(dst.where(name)), exc, "cannot write")
        return _failed(stored, failure.message, failure.reason)
    if records.earlier(stored.path, identity=stored.identity) is not None:
        # The same bytes as an archive known intact: the copy is known intact too.
        records.add(final, sha256=digest)
    return CopiedArchive(
        file=name, bytes=stored.size, status="copied", sha256=digest, destination=str(final)
    )


def _transfer(
    source: ArchivePath, dst: BackupsLocation, name: str, progress: Progress, size: int
) -> tuple[ArchivePath, str]:
    """Stream ``source`` (``size`` bytes, 0 if not known) into a temporary name at
    ``dst``, read it back, publish it as ``name``: (where, SHA-256)."""
    with dst.new_archive(name) as pending:
        fp = pending.open(size)
        settle = getattr(fp, "settle", None)
        hasher = hashlib.sha256()
        try:
            for chunk in read_from(source, 0):
                hasher.update(chunk)
                fp.write(chunk)
                if settle is not None:
                    settle(fp.tell())  # nothing is ever rewritten: parts may go
                progress.advance(len(chunk))
            pending.finish(fp)
        finally:
            fp.close()
        pending.sync()
        digest = hasher.hexdigest()
        if sha256_of(pending.readable) != digest:
            raise IntegrityError(pending.readable, _MISMATCH)
        return dst.publish(pending, name), digest


def _failed(stored: StoredArchive, detail: str, reason: str) -> CopiedArchive:
    return CopiedArchive(
        file=stored.name, bytes=stored.size, status="failed", detail=detail, reason=reason
    )


def _result(
    src: BackupsLocation,
    dst: BackupsLocation,
    outcomes: list[CopiedArchive],
    dry_run: bool,
    clock: float,
) -> CopyResult:
    copied = [o for o in outcomes if o.status == "copied"]
    return CopyResult(
        source=str(src),
        destination=str(dst),
        dry_run=dry_run,
        archives=outcomes,
        copied=len(copied),
        bytes_copied=sum(o.bytes for o in copied),
        duration_seconds=round(time.monotonic() - clock, 3),
    )
