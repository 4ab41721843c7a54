"""Repeat backups: which files a backup may copy unread from its parent archive.

The parent is the newest archive of the same label in the same backups location whose
data is known intact (a recorded full check of the unchanged file, :mod:`._verified`).
A file is copied from it (its stored bytes, unread and not deflated again) only when all
of this holds, else it is read from the source as in a first backup:

- the parent recorded the file's identity when it read it (size, ``mtime_ns``,
  ``ctime_ns``, inode, device) and the CRC-32 of its stored bytes, and the file has that
  identity now: a program that puts the mtime back still changes the ctime; another disk
  or a restored tree changes the device or inode;
- its mtime and ctime are at least :data:`RACE_WINDOW_NS` older than the parent backup's
  start ("racy git"): a file written in the same clock tick as the parent read it could
  have changed without its times saying so;
- the last full read of this line of archives (``last_full_read``) is younger than
  ``--full-every`` days, and ``--rehash`` was not given.

The copied bytes are checked against that CRC-32 as they are read from the parent (a
mismatch: the file is packed fresh and the run warns, naming the parent) and again when
the new archive is read back.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import NamedTuple

from fda_vault._crypto import NO_KEYS, Keys
from fda_vault._diagnostics import Diagnostic
from fda_vault._errors import FdaVaultError
from fda_vault._legacy import FORMAT_FDA_VAULT
from fda_vault._manifest import BackupManifest, FileEntry
from fda_vault._members import DATA_PREFIX, open_archive, read_manifest
from fda_vault._packer import PackSource
from fda_vault._storage import BackupsLocation, StoredArchive, sha256_of
from fda_vault._verified import VerificationRecords
from fda_vault._zipindex import Member, ZipIndex

__all__ = [
    "RACE_WINDOW_NS",
    "Parent",
    "Reuse",
    "ReusePlan",
    "find_parent",
    "plan_reuse",
]

RACE_WINDOW_NS = 3_000_000_000


class Reuse(NamedTuple):
    """One file to copy from the parent: the source as scanned, the parent's entry and
    member."""

    src: PackSource
    entry: FileEntry
    member: Member


@dataclass
class Parent:
    """The open parent archive (close it when the backup is written)."""

    stored: StoredArchive
    index: ZipIndex
    manifest: BackupManifest
    sha256: str

    @property
    def name(self) -> str:
        """The parent's file name."""
        return self.stored.name

    def close(self) -> None:
        """Release the parent's file."""
        self.index.close()


@dataclass
class ReusePlan:
    """What a backup copies and what it reads: ``reused`` from ``parent``, ``fresh`` from
    the source; ``full_read`` says why nothing is reused (None when reuse was allowed)."""

    parent: Parent | None
    reused: list[Reuse]
    fresh: list[PackSource]
    full_read: str | None


def find_parent(
    folder: BackupsLocation, label: str, records: VerificationRecords, keys: Keys = NO_KEYS
) -> tuple[Parent | None, str | None, list[Diagnostic]]:
    """The newest archive of ``label`` known intact, opened (with ``keys`` if it is
    encrypted): (parent, why there is none, warnings). An archive that cannot be read
    (an encrypted one without its key too) is passed over with a warning."""
    warnings: list[Diagnostic] = []
    candidates = [
        stored
        for stored in folder.archives()
        if stored.parsed.label == label and stored.parsed.kind == "zip"
    ]
    if not candidates:
        return None, "first backup of this label", warnings
    for stored in reversed(candidates):  # names sort by time: newest last
        if records.earlier(stored.path, identity=stored.identity) is None:
            continue
        try:
            index = open_archive(stored.path, keys)
        except FdaVaultError as exc:  # gone (pruned meanwhile), unreadable, damaged
            warnings.append(_passed_over(stored, exc.why))
            continue
        try:
            manifest = read_manifest(index, stored.path)
            if manifest.source_format != FORMAT_FDA_VAULT:
                index.close()
                continue
            digest = records.sha256(stored.path, stored.identity) or sha256_of(stored.path)
        except FdaVaultError as exc:
            index.close()
            warnings.append(_passed_over(stored, exc.why))
            continue
        except OSError as exc:
            index.close()
            warnings.append(_passed_over(stored, str(exc)))
            continue
        except BaseException:
            index.close()
            raise
        return Parent(stored, index, manifest, digest), None, warnings
    return None, "no earlier backup of this label is known intact (verify one)", warnings


def _passed_over(stored: StoredArchive, why: str) -> Diagnostic:
    return Diagnostic(
        reason="parent_unusable",
        path=str(stored.path),
        detail=f"not used as the parent of this backup ({why}); its files are read fresh",
    )


def _timestamp_ns(iso: str) -> int | None:
    try:
        moment = datetime.fromisoformat(iso)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return int(moment.timestamp()) * 1_000_000_000


def plan_reuse(
    sources: list[PackSource],
    parent: Parent | None,
    *,
    started: datetime,
    full_every_days: int,
    no_parent_why: str | None,
) -> ReusePlan:
    """Split ``sources`` into files to copy from ``parent`` and files to read
    (``no_parent_why``: why there is no parent, when there is none)."""
    if parent is None:
        return ReusePlan(None, [], sources, no_parent_why or "no parent")
    manifest = parent.manifest
    parent_start = _timestamp_ns(manifest.backup_timestamp)
    last_full = _timestamp_ns(manifest.last_full_read or "")
    if parent_start is None or last_full is None:
        return ReusePlan(parent, [], sources, f"{parent.name} records no file identities")
    age = started - datetime.fromtimestamp(last_full / 1e9, started.tzinfo)
    if age >= timedelta(days=full_every_days):
        days = f"{full_every_days} day" + ("" if full_every_days == 1 else "s")
        return ReusePlan(parent, [], sources, f"every file is read every {days} (--full-every)")
    settled = parent_start - RACE_WINDOW_NS
    by_path = {entry.path: entry for entry in manifest.files}
    getinfo = parent.index.getinfo
    reused: list[Reuse] = []
    fresh: list[PackSource] = []
    racy = 0
    for src in sources:
        entry = by_path.get(src.key)
        now = src.identity
        if (
            entry is None
            or now is None
            or entry.compressed_crc32 is None
            or (entry.size, entry.mtime_ns, entry.ctime_ns, entry.inode, entry.device) != now
        ):
            fresh.append(src)
            continue
        if now.mtime_ns >= settled or now.ctime_ns >= settled:
            racy += 1
            fresh.append(src)
            continue
        try:
            member = getinfo(DATA_PREFIX + src.key)
        except KeyError:
            fresh.append(src)
            continue
        reused.append(Reuse(src, entry, member))
    why = None
    if not reused:
        why = (
            f"{racy} unchanged files changed less than 3 s before {parent.name} began"
            if racy
            else f"no file is unchanged since {parent.name}"
        )
    return ReusePlan(parent, reused, fresh, why)
