"""The audit trail of a backups location: one hash-chained event per operation.

Every operation that creates, reads for restore, verifies, deletes or copies archives
appends an :class:`AuditEvent` (21 CFR Part 11 §11.10(e): who, when, what, the outcome):
UTC time, user, host, version, the command line (options only name files: no secret is
ever an argument), the exit code and ``reason``, the archives with their SHA-256, the
projects, counts and bytes. Each event holds the SHA-256 of the one before it (``prev``)
and its position (``seq``), so an edited, removed or reordered event breaks the chain;
each new archive's manifest records the head of the chain when it was written
(``audit_head``), so a truncated or wholly replaced trail disagrees with the archives.

Where it lives:

* a local folder: ``fda-vault-audit.jsonl``, one event per line, appended under an
  exclusive ``flock`` (concurrent runs never interleave) with one ``write`` and ``fsync``
  per event. A line cut short by a kill has no newline: the next append seals it (a
  newline) and says so in its own event (``sealed_torn``), so the torn line stays in the
  history, reported by ``log --verify``, never dropped or rewritten;
* object storage: one object per event, ``<prefix>/fda-vault-audit/<seq>.json`` (zero
  padded: a listing gives the order), each created with ``If-None-Match: *`` so that two
  runs racing for one number never overwrite each other (the loser takes the next).
"""

from __future__ import annotations

import fcntl
import getpass
import hashlib
import itertools
import json
import os
import random
import socket
import time
from collections.abc import Callable, Iterator
from contextlib import suppress
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, NamedTuple, Protocol

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from fda_vault import __version__
from fda_vault._errors import FdaVaultError, IntegrityError, OperationError
from fda_vault._fsio import fsync_path, os_failure
from fda_vault._manifest import AuditAnchor

if TYPE_CHECKING:
    from fda_vault._backup import BackupResult
    from fda_vault._copy import CopyResult
    from fda_vault._crypto import Keys
    from fda_vault._drill import DrillResult
    from fda_vault._guard import GuardResult
    from fda_vault._importer import ImportResult
    from fda_vault._prune import PruneResult
    from fda_vault._restore import RestorePlan, RestoreResult
    from fda_vault._s3 import ArchivePath, S3Prefix
    from fda_vault._storage import BackupsLocation
    from fda_vault._verify import VerifyResult

__all__ = [
    "GENESIS",
    "OBJECT_TRAIL_PREFIX",
    "TRAIL_NAME",
    "AuditArchive",
    "AuditEvent",
    "AuditTrail",
    "LocalTrail",
    "ObjectTrail",
    "TrailEntry",
    "event_draft",
]

TRAIL_NAME = "fda-vault-audit.jsonl"
OBJECT_TRAIL_PREFIX = "fda-vault-audit"
GENESIS = "0" * 64  # the ``prev`` of the first event
_SEQ_DIGITS = 12
_TAIL_READ = 64 << 10
MAX_EVENT_BYTES = 16 << 20  # an event of a prune of 50,000 archives is ~10 MB
_RACE_WAIT = 60.0  # seconds an event may keep losing the race for its number


class AuditArchive(BaseModel):
    """One archive an event concerns, and what was done with it."""

    name: str
    action: str = Field(
        description="created (and read back), created_unverified (--no-verify), verified, "
        "damaged, missing, restored, planned, deleted, kept, to delete, copied, would copy, "
        "present, skipped, failed, drilled, live_mismatch"
    )
    sha256: str | None = Field(default=None, description="of the archive file, when known")
    bytes: int | None = None
    detail: str | None = Field(default=None, description="why (prune's reasons, a failure)")


class AuditEvent(BaseModel):
    """One line (or object) of the trail."""

    model_config = ConfigDict(extra="forbid")

    seq: int = Field(ge=1, description="1 for the first event, then +1 per line")
    prev: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the line before")
    time: str = Field(description="ISO 8601 UTC, microseconds")
    user: str
    host: str
    version: str = Field(description="fda-vault's version")
    command: str
    args: list[str] = Field(description="the command line after `fda-vault`")
    outcome: Literal["ok", "failed", "damaged", "refused", "interrupted"]
    exit_code: int
    reason: str | None = None
    error: str | None = Field(default=None, description="the error line, if it failed")
    archives: list[AuditArchive] = Field(default_factory=list)
    projects: list[str] = Field(default_factory=list)
    files: int | None = None
    bytes: int | None = None
    sealed_torn: bool = Field(
        default=False, description="the line before is an interrupted append this one sealed"
    )


class TrailEntry(NamedTuple):
    """One stored event as found: its position, its bytes and where it is."""

    seq: int
    raw: bytes
    where: str


def _line_sha(raw: bytes) -> str:
    return hashlib.sha256(raw).hexdigest()


def _serialize(event: AuditEvent) -> bytes:
    # Compact and in field order ("seq" first: even a torn line shows its number).
    return event.model_dump_json(exclude_defaults=False).encode()


def event_draft(
    command: str,
    args: list[str],
    exit_code: int,
    outcome: str,
    **fields: Any,
) -> dict[str, Any]:
    """The fields of an event other than its place in the chain (``seq``, ``prev``)."""
    try:
        user = getpass.getuser()
    except (OSError, KeyError):
        user = f"uid {os.getuid()}"
    return {
        "time": datetime.now(timezone.utc).isoformat(timespec="microseconds"),
        "user": user,
        "host": socket.gethostname(),
        "version": __version__,
        "command": command,
        "args": args,
        "outcome": outcome,
        "exit_code": exit_code,
        **fields,
    }


class AuditTrail(Protocol):
    """Where a location's events are kept."""

    def __str__(self) -> str: ...

    def exists(self) -> bool:
        """True when at least one event was ever written."""
        ...

    def append(self, draft: dict[str, Any]) -> AuditEvent:
        """Add one event at the head of the chain, durably."""
        ...

    def entries(self) -> Iterator[TrailEntry]:
        """Every stored event in order (raw: a damaged one is for the checker to judge)."""
        ...

    def anchor(self) -> AuditAnchor | None:
        """The current head, as an archive records it (None: nothing written yet, or the
        trail cannot be read: the archive then records no anchor)."""
        ...

    def unsealed_tail(self) -> bytes:
        """Bytes after the last complete event: an append cut short and not sealed yet."""
        ...


class LocalTrail:
    """``fda-vault-audit.jsonl`` in a backups folder."""

    def __init__(self, folder: Path) -> None:
        self.path = folder / TRAIL_NAME

    def __str__(self) -> str:
        return str(self.path)

    def exists(self) -> bool:
        return self.path.exists()

    def append(self, draft: dict[str, Any]) -> AuditEvent:
        created = not self.path.exists()
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise os_failure(self.path, exc, "cannot append to the audit trail") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # released when fd closes, or its holder dies
            seq, prev, torn = _local_head(fd)
            event = AuditEvent(seq=seq + 1, prev=prev, sealed_torn=torn is not None, **draft)
            line = (b"\n" if torn is not None else b"") + _serialize(event) + b"\n"
            _write_all(fd, line)
            os.fsync(fd)
        except OSError as exc:
            raise os_failure(self.path, exc, "cannot append to the audit trail") from None
        finally:
            os.close(fd)
        if created:
            fsync_path(self.path.parent)
        return event

    def entries(self) -> Iterator[TrailEntry]:
        try:
            fp = self.path.open("rb")
        except FileNotFoundError:
            return
        except OSError as exc:
            raise os_failure(self.path, exc, "cannot read the audit trail") from None
        with fp:
            number = 0
            while True:
                try:
                    line = fp.readline(MAX_EVENT_BYTES + 1)
                except OSError as exc:
                    raise os_failure(self.path, exc, "cannot read the audit trail") from None
                if not line.endswith(b"\n"):
                    if len(line) <= MAX_EVENT_BYTES:
                        return  # the end: empty, or an unsealed torn line
                    while line and not line.endswith(b"\n"):  # longer than any event:
                        line = fp.readline(1 << 20)  # kept as its first bytes (not one)
                    line = b"\x00oversized"
                number += 1
                yield TrailEntry(number, line.rstrip(b"\n"), f"{self.path}: line {number}")

    def unsealed_tail(self) -> bytes:
        try:
            with self.path.open("rb") as fp:
                size = fp.seek(0, os.SEEK_END)
                fp.seek(max(0, size - MAX_EVENT_BYTES))
                data = fp.read()
        except OSError:
            return b""
        return data[data.rfind(b"\n") + 1 :]

    def anchor(self) -> AuditAnchor | None:
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            seq, sha, _ = _local_head(fd)
            first = os.pread(fd, _TAIL_READ, 0)
            while b"\n" not in first and len(first) < os.fstat(fd).st_size:
                first = os.pread(fd, len(first) * 4, 0)
        except OSError:
            return None
        finally:
            os.close(fd)
        if seq == 0:
            return None
        return AuditAnchor(trail=_line_sha(first.split(b"\n", 1)[0]), seq=seq, sha256=sha)


def _write_all(fd: int, line: bytes) -> None:
    """Append ``line``; if the disk fills (or the file size limit is met) part way, take
    back what this append wrote (the lock is held: nothing follows it) and raise."""
    size = os.fstat(fd).st_size
    view = memoryview(line)
    try:
        while view:
            view = view[os.write(fd, view) :]
    except OSError:
        with suppress(OSError):
            os.ftruncate(fd, size)
        raise


def _local_head(fd: int) -> tuple[int, str, bytes | None]:
    """(number of lines, SHA-256 of the last line, the torn bytes after it or None)."""
    size = os.fstat(fd).st_size
    if size == 0:
        return 0, GENESIS, None
    # The last line and the one before it; a long event (prune of many archives) may
    # need a longer look back.
    span = min(size, _TAIL_READ)
    while True:
        tail = os.pread(fd, span, size - span)
        complete_end = tail.rfind(b"\n")  # -1: no complete line in the span
        start = tail.rfind(b"\n", 0, complete_end) if complete_end > 0 else -1
        if start >= 0 or span == size:
            break
        if span >= 2 * MAX_EVENT_BYTES:  # no event is that long: judged as one bad line
            return _count_lines(fd, size) + 1, _line_sha(tail), None
        span = min(size, span * 4)
    torn = tail[complete_end + 1 :] or None
    if complete_end < 0:  # only a torn first line
        return 1, _line_sha(tail), tail
    last = tail[start + 1 : complete_end]
    seq = _seq_of(last)
    if seq is None:  # a sealed torn line, or damage: count the lines instead
        seq = _count_lines(fd, size)
    return seq + (1 if torn else 0), _line_sha(torn) if torn else _line_sha(last), torn


def _seq_of(raw: bytes) -> int | None:
    try:
        value = json.loads(raw).get("seq")
    except (ValueError, AttributeError):
        return None
    return value if isinstance(value, int) else None


def _count_lines(fd: int, size: int) -> int:
    count, offset = 0, 0
    while offset < size:
        block = os.pread(fd, 1 << 20, offset)
        count += block.count(b"\n")
        offset += len(block)
    return count


class ObjectTrail:
    """One object per event under ``<prefix>/fda-vault-audit/``."""

    def __init__(self, where: S3Prefix) -> None:
        self.where = where
        self.folder = where.key(OBJECT_TRAIL_PREFIX) + "/"

    def __str__(self) -> str:
        return f"s3://{self.where.bucket}/{self.folder}"

    def _key(self, seq: int) -> str:
        return f"{self.folder}{seq:0{_SEQ_DIGITS}d}.json"

    def _listing(self) -> list[tuple[str, int]]:
        """(key, size) of every object under the trail's prefix, in key order."""
        from fda_vault._s3 import client, remote_error

        found: list[tuple[str, int]] = []
        try:
            pages = client().get_paginator("list_objects_v2")
            for page in pages.paginate(Bucket=self.where.bucket, Prefix=self.folder):
                found.extend((str(i["Key"]), int(i["Size"])) for i in page.get("Contents", []))
        except Exception as exc:
            raise remote_error(exc, self, "cannot list the audit trail") from None
        return sorted(found)

    def _keys(self) -> list[str]:
        return [key for key, _ in self._listing()]

    def _get(self, key: str) -> bytes:
        from fda_vault._s3 import call, client

        response = call(
            self, "cannot read the audit trail", client().get_object,
            Bucket=self.where.bucket, Key=key,
        )  # fmt: skip
        return bytes(response["Body"].read())

    def exists(self) -> bool:
        return bool(self._keys())

    def _head(self, keys: list[str] | None = None) -> tuple[int, str]:
        """(the newest event's seq, its SHA-256), from ``keys`` (a listing) if given."""
        keys = self._keys() if keys is None else keys
        if not keys:
            return 0, GENESIS
        last = keys[-1]
        seq = _seq_of_key(last, self.folder)
        if seq is None:
            raise IntegrityError(f"s3://{self.where.bucket}/{last}", "not an audit event name")
        return seq, _line_sha(self._get(last))

    def append(self, draft: dict[str, Any]) -> AuditEvent:
        from fda_vault._s3 import _is_client_error, client, remote_error

        s3 = client()
        deadline = time.monotonic() + _RACE_WAIT
        for attempt in itertools.count():
            if attempt and time.monotonic() > deadline:
                break
            if attempt:  # lost a race: step aside a random while, so that one writer
                pause = random.uniform(0, min(0.5, 0.01 * 2**attempt))  # noqa: S311 (jitter)
                time.sleep(pause)  # wins each round
            seq, prev = self._head()
            event = AuditEvent(seq=seq + 1, prev=prev, **draft)
            try:
                s3.put_object(
                    Bucket=self.where.bucket,
                    Key=self._key(event.seq),
                    Body=_serialize(event),
                    IfNoneMatch="*",
                    ContentType="application/json",
                )
            except Exception as exc:
                if _is_client_error(exc, "PreconditionFailed", "412", "ConditionalRequestConflict"):
                    continue  # another run took this number: chain onto its event
                raise remote_error(exc, self, "cannot append to the audit trail") from None
            return event
        raise OperationError(self, "cannot append to the audit trail: too many racing writers")

    def entries(self) -> Iterator[TrailEntry]:
        for key, size in self._listing():
            seq = _seq_of_key(key, self.folder)
            raw = self._get(key) if size <= MAX_EVENT_BYTES else b"\x00oversized"
            yield TrailEntry(seq or 0, raw, f"s3://{self.where.bucket}/{key}")

    def unsealed_tail(self) -> bytes:
        return b""  # an object is written whole or not at all

    def anchor(self) -> AuditAnchor | None:
        try:
            keys = self._keys()
            if not keys:
                return None
            seq, sha = self._head(keys)
            first = _line_sha(self._get(keys[0]))
        except FdaVaultError:
            return None
        return AuditAnchor(trail=first, seq=seq, sha256=sha)


def _seq_of_key(key: str, folder: str) -> int | None:
    name = key.removeprefix(folder).removesuffix(".json")
    return int(name) if len(name) == _SEQ_DIGITS and name.isdigit() else None


def parse_event(raw: bytes) -> AuditEvent | None:
    """The event in ``raw``, or None when it is not one (torn, edited into invalid)."""
    try:
        return AuditEvent.model_validate_json(raw)
    except ValidationError:
        return None


# --- checking the chain and the anchors -------------------------------------------------


class TrailProblem(BaseModel):
    """Where the trail stops being trustworthy, and why."""

    where: str = Field(description="the line or object, or the archive that disagrees")
    seq: int | None = Field(default=None, description="the first event in doubt")
    detail: str


class TrailReport(BaseModel):
    """``log --verify``: the chain checked event by event, then against the archives."""

    trail: str
    intact: bool
    events: int
    head: str | None = Field(default=None, description="SHA-256 of the newest event")
    anchors_checked: int = Field(description="archives whose recorded head was compared")
    problems: list[TrailProblem]
    warnings: list[str] = Field(description="interrupted appends, sealed and kept")
    notes: list[str] = Field(description="archives that could not be compared, and why")


class _Chain(NamedTuple):
    shas: list[str]  # the SHA-256 of each stored line, in order
    events: list[AuditEvent | None]  # None: a torn (sealed) line


def _walk_chain(
    entries: list[TrailEntry], problems: list[TrailProblem], warnings: list[str]
) -> _Chain:
    shas: list[str] = []
    events: list[AuditEvent | None] = []
    prev = GENESIS
    parsed = [parse_event(entry.raw) for entry in entries]
    for index, (entry, event) in enumerate(zip(entries, parsed, strict=True)):
        number = index + 1
        if entry.seq != number:
            problems.append(
                TrailProblem(
                    where=entry.where,
                    seq=number,
                    detail=f"event {number} is missing (the next one stored is {entry.seq}): "
                    "events were removed",
                )
            )
            break
        if event is None:
            after = parsed[index + 1] if index + 1 < len(parsed) else None
            if after is not None and after.sealed_torn and after.prev == _line_sha(entry.raw):
                warnings.append(
                    f"{entry.where}: an append cut short ({len(entry.raw)} bytes; the run was "
                    f"killed while writing), sealed and recorded by event {number + 1}"
                )
            else:
                problems.append(
                    TrailProblem(
                        where=entry.where,
                        seq=number,
                        detail="not a valid event: edited, damaged, or a torn line nothing sealed",
                    )
                )
                break
        elif event.seq != number:
            problems.append(
                TrailProblem(
                    where=entry.where,
                    seq=min(number, event.seq),
                    detail=f"event {event.seq} stands at position {number}: events were "
                    "removed, inserted or reordered",
                )
            )
            break
        elif event.prev != prev:
            problems.append(
                TrailProblem(
                    where=entry.where,
                    seq=max(1, number - 1),
                    detail=f"event {number} does not chain onto event {number - 1}: that one "
                    "was edited, or events were removed or reordered there",
                )
            )
            break
        elif event.sealed_torn and (index == 0 or events[-1] is not None):
            problems.append(
                TrailProblem(
                    where=entry.where,
                    seq=number,
                    detail="claims to seal a torn line that is not there",
                )
            )
            break
        prev = _line_sha(entry.raw)
        shas.append(prev)
        events.append(event)
    return _Chain(shas, events)


def check_trail(location: BackupsLocation, keys: Keys | None = None) -> TrailReport:
    """Check the trail of ``location`` (a :class:`~fda_vault._storage.BackupsLocation`):
    every event's place and link, then each archive's recorded head against it."""
    from fda_vault._crypto import NO_KEYS
    from fda_vault._errors import DecryptError
    from fda_vault._members import open_archive, read_manifest

    trail = location.trail()
    entries = list(trail.entries())
    problems: list[TrailProblem] = []
    warnings: list[str] = []
    notes: list[str] = []
    chain = _walk_chain(entries, problems, warnings)
    torn = trail.unsealed_tail()
    if torn and not problems:
        problems.append(
            TrailProblem(
                where=f"{trail}: line {len(entries) + 1}",
                seq=len(entries) + 1,
                detail=f"the last line is cut short ({len(torn)} bytes): a run was killed "
                "while appending; the next event will seal it",
            )
        )
    genesis = chain.shas[0] if chain.shas else None
    done: dict[str, set[str]] = {}  # action -> the archives the trail says it was done to
    for event in chain.events:
        for archive in event.archives if event is not None else []:
            done.setdefault(archive.action, set()).add(archive.name)
    created = done.get("created", set()) | done.get("created_unverified", set())
    copied = done.get("copied", set())
    anchors = 0
    unanchored, locked = 0, 0
    disagree: list[TrailProblem] = []
    for stored in location.archives():
        if stored.parsed.kind == "legacy-tar":
            continue
        try:
            with open_archive(stored.path, keys or NO_KEYS) as zf:
                manifest = read_manifest(zf, stored.path)
        except DecryptError:
            locked += 1
            continue
        except FdaVaultError as exc:
            notes.append(f"{stored.name}: not compared ({exc.why}; `verify` it)")
            continue
        anchor = manifest.audit_head
        if anchor is None:
            unanchored += 1
            continue
        anchors += 1
        problem = _anchor_problem(stored.name, anchor, genesis, chain, created, copied)
        if problem is not None:
            seq, detail = problem
            disagree.append(TrailProblem(where=stored.name, seq=seq, detail=detail))
    if unanchored:
        notes.append(f"{unanchored} archive(s) record no trail head (made before 1.2)")
    if locked:
        notes.append(
            f"{locked} encrypted archive(s) not compared: give --identity or --passphrase-file"
        )
    # The chain's own first break first, then the archives that disagree, oldest first.
    problems.extend(sorted(disagree, key=lambda p: p.seq or 0))
    return TrailReport(
        trail=str(trail),
        intact=not problems,
        events=len(entries),
        head=chain.shas[-1] if chain.shas else None,
        anchors_checked=anchors,
        problems=problems,
        warnings=warnings,
        notes=notes,
    )


def _anchor_problem(
    name: str,
    anchor: AuditAnchor,
    genesis: str | None,
    chain: _Chain,
    created: set[str],
    copied: set[str],
) -> tuple[int, str] | None:
    """(the first event in doubt, why) when the archive disagrees with the trail."""
    if anchor.trail != genesis:
        if name in copied:
            return None  # made elsewhere: its head is in the trail of the location it came from
        return anchor.seq, (
            "its manifest records a head of another trail, and this trail does not record "
            "copying it in: the trail was replaced"
        )
    if anchor.seq > len(chain.shas):
        return len(chain.shas) + 1, (
            f"its manifest records event {anchor.seq} as the head, the trail has "
            f"{len(chain.shas)} intact events: the trail was truncated"
        )
    if chain.shas[anchor.seq - 1] != anchor.sha256:
        return anchor.seq, (
            f"its manifest records event {anchor.seq} as {anchor.sha256[:16]}…, the trail's is "
            f"{chain.shas[anchor.seq - 1][:16]}…: the trail was rewritten"
        )
    if name not in created and name not in copied:
        return anchor.seq + 1, (
            "the trail does not record creating it: events after its head were removed"
        )
    return None


# --- reading it --------------------------------------------------------------------


class AuditLog(BaseModel):
    """``log``: the events of a trail, newest first (filtered)."""

    trail: str
    events: list[AuditEvent]
    unreadable: int = Field(description="stored lines that are not events (log --verify says why)")


def read_log(
    location: BackupsLocation,
    *,
    projects: list[str] | None = None,
    since: datetime | None = None,
) -> AuditLog:
    """The events of ``location``'s trail, newest first: only those naming one of
    ``projects`` (if given) and at or after ``since`` (if given)."""
    trail = location.trail()
    events: list[AuditEvent] = []
    unreadable = 0
    for entry in trail.entries():
        event = parse_event(entry.raw)
        if event is None:
            unreadable += 1
            continue
        if projects and not set(projects) & set(event.projects):
            continue
        if since is not None and datetime.fromisoformat(event.time) < since:
            continue
        events.append(event)
    events.reverse()
    return AuditLog(trail=str(trail), events=events, unreadable=unreadable)


# --- recording a command ------------------------------------------------------------

_OUTCOMES = {0: "ok", 3: "damaged", 4: "refused", 130: "interrupted"}


class AuditRecorder:
    """What one command records: the trails it touches, its result or error, then one
    event in each trail (``cli.py`` drives it; the library's functions return models)."""

    def __init__(self, command: str, args: list[str]) -> None:
        self.command = command
        self.args = args
        self.result: BaseModel | None = None
        self.error: FdaVaultError | None = None
        self._places: list[tuple[Path | str, bool]] = []

    def at(self, spec: Path | str, *, create: bool = False) -> None:
        """Record in the trail of the location ``spec``; ``create``: start it if it has
        none (commands that write archives do, readers add only to a trail that exists)."""
        if all(str(spec) != str(known) for known, _ in self._places):
            self._places.append((spec, create))

    def at_archive(self, path: ArchivePath) -> None:
        """Record in the trail of the location holding the archive ``path``."""
        from fda_vault._s3 import ObjectPath

        if isinstance(path, ObjectPath):
            folder = path.key.rsplit("/", 1)[0] if "/" in path.key else ""
            self.at(f"s3://{path.bucket}/{folder}")
        else:
            self.at(Path(path).parent)

    def draft(self, exit_code: int) -> dict[str, Any]:
        """The event's fields, from the result (or the error) and the exit code."""
        fields = summarize(self.result) if self.result is not None else {}
        error = self.error
        return event_draft(
            self.command,
            self.args,
            exit_code,
            _OUTCOMES.get(exit_code, "failed"),
            reason=error.reason if error is not None else ("damaged" if exit_code == 3 else None),
            error=error.message if error is not None else None,
            **fields,
        )

    def write(self, exit_code: int) -> list[str]:
        """Append the event to each trail; a warning line for each that could not be
        written (the command's own outcome never depends on it; a command that failed
        says so in its one error line, which a trail on the same lost disk or server
        would only repeat)."""
        from fda_vault._storage import open_location

        warnings = []
        draft: dict[str, Any] | None = None  # one event, the same in every trail
        for spec, create in self._places:
            try:
                location = open_location(spec)
                trail = location.trail()
                if not (trail.exists() or (create and location.exists())):
                    continue
                draft = draft or self.draft(exit_code)
                trail.append(draft)
            except FdaVaultError as exc:
                if self.error is None:
                    warnings.append(f"audit trail not written: {exc.message}")
            except Exception as exc:  # a bug here must never cost the command its outcome
                warnings.append(f"audit trail not written: unexpected {type(exc).__name__}: {exc}")
        return warnings


def summarize(result: BaseModel) -> dict[str, Any]:
    """The archives, projects, counts and bytes of a command's result."""
    # By the class's name: importing every command's module to test isinstance cost each
    # command ~30 ms of start-up.
    summary = _SUMMARIES.get(type(result).__name__)
    return summary(result) if summary is not None else {}


def _guard_summary(result: GuardResult) -> dict[str, Any]:
    fields = summarize(result.backup)
    if result.restore is not None:
        restored = summarize(result.restore)
        fields["archives"] = fields["archives"] + restored["archives"]
    return fields


def _backup_summary(result: BackupResult) -> dict[str, Any]:
    made = []
    if not result.unchanged:
        made.append(
            AuditArchive(
                name=Path(result.archive).name,
                action="created" if result.verified else "created_unverified",
                sha256=result.archive_sha256,
                bytes=result.archive_size,
            )
        )
    return {"archives": made, "projects": result.projects, "files": result.files,
            "bytes": result.bytes}  # fmt: skip


def _verify_summary(result: VerifyResult) -> dict[str, Any]:
    return {
        "archives": [
            AuditArchive(
                name=_name(report.archive),
                action="verified" if report.ok else report.status,
                sha256=report.sha256,
                detail=None if report.ok else "; ".join(p.detail for p in report.problems[:3]),
            )
            for report in result.archives
        ],
        "projects": sorted({p for report in result.archives for p in report.projects}),
        "files": sum(report.files_checked for report in result.archives),
        "bytes": sum(report.bytes_checked for report in result.archives),
    }


def _restore_plan_summary(result: RestorePlan) -> dict[str, Any]:
    return {
        "archives": [AuditArchive(name=_name(result.archive), action="planned")],
        "projects": [project.name for project in result.projects],
    }


def _restore_summary(result: RestoreResult) -> dict[str, Any]:
    action = "planned" if result.dry_run else "restored"
    return {
        "archives": [AuditArchive(name=_name(result.archive), action=action,
                                  sha256=result.archive_sha256)],
        "projects": result.restored,
        "files": result.files,
        "bytes": result.bytes,
    }  # fmt: skip


def _prune_summary(result: PruneResult) -> dict[str, Any]:
    return {
        "archives": [
            AuditArchive(
                name=decision.file,
                action="kept" if decision.kept else ("to delete" if result.dry_run else "deleted"),
                bytes=decision.bytes,
                detail="; ".join(decision.reasons),
            )
            for decision in result.archives
        ],
        "bytes": result.bytes_freed,
    }


def _copy_summary(result: CopyResult) -> dict[str, Any]:
    return {
        "archives": [
            AuditArchive(name=item.file, action=str(item.status), sha256=item.sha256,
                         bytes=item.bytes, detail=item.detail)
            for item in result.archives
        ],
        "bytes": result.bytes_copied,
    }  # fmt: skip


def _drill_summary(result: DrillResult) -> dict[str, Any]:
    return {
        "archives": [
            AuditArchive(
                name=item.archive,
                # damaged or failed; else a live file that differs; else drilled
                action=item.status if item.status != "ok"
                else "live_mismatch" if item.live_mismatches else "drilled",
                sha256=item.sha256,
                bytes=item.restored_bytes,
                detail="; ".join([*item.problems, *(f"live file differs: {p}"
                                                    for p in item.live_mismatches[:20])])
                or None,
            )
            for item in result.archives
        ],
        "projects": sorted({p for item in result.archives for p in item.projects}),
        "files": sum(item.restored_files for item in result.archives),
        "bytes": sum(item.restored_bytes for item in result.archives),
    }  # fmt: skip


def _import_summary(result: ImportResult) -> dict[str, Any]:
    return {
        "archives": [
            AuditArchive(
                name=_name(item.archive or item.source),
                action="created" if item.archive else "failed",
                detail=f"imported from {_name(item.source)} ({item.source_sha256})"
                if item.archive
                else item.error,
            )
            for item in result.archives
        ],
        "files": sum(item.files for item in result.archives),
        "bytes": sum(item.bytes for item in result.archives),
    }


_SUMMARIES: dict[str, Callable[[Any], dict[str, Any]]] = {
    "GuardResult": _guard_summary,
    "BackupResult": _backup_summary,
    "VerifyResult": _verify_summary,
    "RestorePlan": _restore_plan_summary,
    "RestoreResult": _restore_summary,
    "PruneResult": _prune_summary,
    "CopyResult": _copy_summary,
    "DrillResult": _drill_summary,
    "ImportResult": _import_summary,
}


def _name(path: str) -> str:
    return path.rstrip("/").rsplit("/", 1)[-1]


def trail_head_for_archive(location: BackupsLocation) -> AuditAnchor | None:
    """The head a new archive in ``location`` records; a location without a trail gets
    one first (its opening event), so that even its first archive anchors it. None
    when the trail cannot be read or written: the backup goes on without an anchor."""
    trail = location.trail()
    try:
        anchor = trail.anchor()
        if anchor is None and not trail.exists():
            trail.append(event_draft("audit-trail-start", [], 0, "ok"))
            anchor = trail.anchor()
    except FdaVaultError:
        return None
    return anchor


# Actions after which an archive's every byte was found intact at that time.
_FULL_CHECKS = {"verified", "drilled", "created"}


def last_full_checks(location: BackupsLocation) -> dict[str, str]:
    """When each archive of ``location`` was last fully checked, by the trail: a verify,
    a drill, or the read-back of the backup that wrote it (ISO 8601 UTC)."""
    trail = location.trail()
    when: dict[str, str] = {}
    for entry in trail.entries():
        event = parse_event(entry.raw)
        if event is None or (event.command == "verify" and event.exit_code not in (0, 3)):
            continue
        for archive in event.archives:
            if archive.action in _FULL_CHECKS:
                when[archive.name] = event.time
    return when
