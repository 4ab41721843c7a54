"""``drill``: prove that backups restore, as an auditor asks ("have you ever restored one?").

Each chosen archive is restored for real, by the same code as ``restore`` (every byte
checked as it is staged), into a private folder beside the live projects (the same file
system: its space and permissions are the ones a real restore meets), and removed after.
Then:

* every restored file is read back from the disk and its SHA-256 compared with the
  manifest: what landed is what was backed up;
* live files whose identity (size, modification time, inode, device) is still the one the
  manifest recorded are hashed too: such a file must have the backed-up SHA-256, and one
  that differs is silent damage, of the live data or of the backup, reported by path;
* once per drill, the no-lock-in path: the system ``unzip`` extracts an unencrypted
  archive and ``sha256sum -c`` checks it, as anyone can without fda-vault.

The default choice: the newest archive of each label, plus one older archive at random.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from fda_vault._crypto import NO_KEYS, Keys
from fda_vault._errors import DecryptError, ExitCode, FdaVaultError, UsageError
from fda_vault._fsio import sha256_file
from fda_vault._manifest import FileEntry
from fda_vault._members import open_archive, read_manifest
from fda_vault._progress import NO_PROGRESS, Progress
from fda_vault._restore import restore
from fda_vault._storage import StoredArchive, open_location, read_from, sha256_of

__all__ = ["DrillArchive", "DrillResult", "NoLockIn", "choose_archives", "drill"]

DRILL_PREFIX = ".fda-vault-drill-"


class DrillArchive(BaseModel):
    """One archive restored in the drill."""

    archive: str
    sha256: str | None = Field(description="of the archive file drilled")
    label: str
    projects: list[str] = Field(default_factory=list)
    restored_files: int = 0
    restored_bytes: int = 0
    status: Literal["ok", "damaged", "failed"] = "ok"
    problems: list[str] = Field(default_factory=list, description="why it is not ok")
    live_checked: int = Field(
        default=0, description="live files with the identity the manifest recorded, hashed"
    )
    live_mismatches: list[str] = Field(
        default_factory=list,
        description="live files with the recorded identity but another SHA-256 (silent damage)",
    )
    seconds: float = 0.0


class NoLockIn(BaseModel):
    """The check anyone can make without fda-vault: ``unzip`` and ``sha256sum -c``."""

    archive: str | None = None
    status: Literal["ok", "failed", "skipped"] = "skipped"
    detail: str = ""


class DrillResult(BaseModel):
    """The drill's report: what was restored, what was found, the no-lock-in check."""

    location: str
    projects_dir: str
    started: str = Field(description="ISO 8601 UTC")
    seconds: float
    ok: bool
    archives: list[DrillArchive]
    no_lock_in: NoLockIn

    @property
    def exit_code(self) -> ExitCode:
        """3 when an archive is damaged or a live file silently differs; 1 when a restore
        failed for another reason (disk full, permission); else 0."""
        if any(a.status == "damaged" or a.live_mismatches for a in self.archives):
            return ExitCode.INTEGRITY
        if any(a.status == "failed" for a in self.archives) or self.no_lock_in.status == "failed":
            return ExitCode.FAILURE
        return ExitCode.OK


def choose_archives(
    stored: Sequence[StoredArchive],
    *,
    count: int | None = None,
    every: bool = False,
    rng: random.Random | None = None,
) -> list[StoredArchive]:
    """The archives to drill, newest first: all of them (``every``); else the newest of
    each label, then older ones at random, ``count`` in all (default: one older)."""
    ordered = sorted(stored, key=lambda a: (a.parsed.stamp, a.name), reverse=True)
    if every:
        return ordered
    newest: dict[str, StoredArchive] = {}
    for archive in ordered:
        newest.setdefault(archive.parsed.label, archive)
    chosen = list(newest.values())
    older = [a for a in ordered if a not in chosen]
    extra = (count - len(chosen)) if count is not None else 1
    if count is not None and count < len(chosen):
        return chosen[:count]
    chosen += (rng or random.SystemRandom()).sample(older, min(max(extra, 0), len(older)))
    return sorted(chosen, key=lambda a: (a.parsed.stamp, a.name), reverse=True)


def drill(
    location: Path | str,
    *,
    projects_dir: Path,
    count: int | None = None,
    every: bool = False,
    projects: Sequence[str] = (),
    keys: Keys = NO_KEYS,
    progress: Progress = NO_PROGRESS,
    rng: random.Random | None = None,
) -> DrillResult:
    """Restore the chosen archives of ``location`` into a private folder under
    ``projects_dir`` (its file system), check every byte and the live projects, run the
    no-lock-in check once, and report."""
    from datetime import datetime, timezone

    clock = time.monotonic()
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    place = open_location(location)
    stored = [a for a in place.archives() if a.parsed.kind != "legacy-tar"]
    if projects:
        stored = [a for a in stored if _may_hold(a, projects)]
    if not stored:
        raise UsageError(
            place, "no archives to drill" + (" for those projects" if projects else "")
        )
    if not projects_dir.is_dir():
        raise UsageError(projects_dir, "projects folder not found", reason="not_found")
    chosen = choose_archives(stored, count=count, every=every, rng=rng)
    reports = [_drill_one(archive, projects_dir, projects, keys, progress) for archive in chosen]
    no_lock_in = _no_lock_in(chosen, projects_dir)
    return DrillResult(
        location=str(place),
        projects_dir=str(projects_dir),
        started=started,
        seconds=round(time.monotonic() - clock, 3),
        ok=all(r.status == "ok" and not r.live_mismatches for r in reports)
        and no_lock_in.status != "failed",
        archives=reports,
        no_lock_in=no_lock_in,
    )


def _may_hold(archive: StoredArchive, projects: Sequence[str]) -> bool:
    label = archive.parsed.label
    return label in projects or label in {"all_projects", "multi_project"}


def _drill_one(
    stored: StoredArchive,
    projects_dir: Path,
    projects: Sequence[str],
    keys: Keys,
    progress: Progress,
) -> DrillArchive:
    clock = time.monotonic()
    report = DrillArchive(archive=stored.name, sha256=None, label=stored.parsed.label)
    with tempfile.TemporaryDirectory(prefix=DRILL_PREFIX, dir=projects_dir) as scratch:
        try:
            report.sha256 = sha256_of(stored.path)
            with open_archive(stored.path, keys) as zf:
                manifest = read_manifest(zf, stored.path)
            wanted = [p for p in manifest.projects if not projects or p in projects]
            if not wanted:
                report.problems.append("holds none of the projects asked for")
                report.status = "failed"
                return report
            result = restore(
                stored.path,
                target_dir=Path(scratch),
                projects=wanted,
                progress=progress,
                keys=keys,
            )
        except DecryptError:
            raise  # no key, or the wrong one: says nothing of the archive (exit 5)
        except FdaVaultError as exc:
            report.status = "damaged" if exc.exit_code == ExitCode.INTEGRITY else "failed"
            report.problems.append(exc.message)
            report.seconds = round(time.monotonic() - clock, 3)
            return report
        report.projects = wanted
        report.restored_files, report.restored_bytes = result.files, result.bytes
        entries = [e for e in manifest.files if e.path.partition("/")[0] in wanted]
        for entry in entries:
            problem = _restored_problem(Path(scratch) / entry.path, entry)
            if problem is not None:
                report.problems.append(f"{entry.path}: {problem}")
        if report.problems:
            report.status = "damaged"
        for entry in entries:
            mismatch = _live_mismatch(projects_dir / entry.path, entry)
            if mismatch is None:
                continue
            report.live_checked += 1
            if mismatch:
                report.live_mismatches.append(entry.path)
    report.seconds = round(time.monotonic() - clock, 3)
    return report


def _restored_problem(path: Path, entry: FileEntry) -> str | None:
    """Why the restored file is not the backed-up one, read back from the disk."""
    try:
        if path.stat().st_size != entry.size:
            return "restored with another size"
        if sha256_file(path) != entry.sha256:
            return "restored with another SHA-256"
    except OSError as exc:
        return f"not readable after the restore ({exc.strerror})"
    return None


def _live_mismatch(path: Path, entry: FileEntry) -> bool | None:
    """None when the live file is gone or its identity changed since the backup (it may
    differ); else whether it differs from the backup although its identity did not."""
    try:
        st = os.stat(path, follow_symlinks=False)
    except OSError:
        return None
    same = (
        st.st_size == entry.size
        and entry.mtime_ns is not None
        and st.st_mtime_ns == entry.mtime_ns
        and (entry.inode is None or st.st_ino == entry.inode)
        and (entry.device is None or st.st_dev == entry.device)
    )
    if not same:
        return None
    try:
        return sha256_file(path) != entry.sha256
    except OSError:
        return True  # the identity says unchanged, yet it cannot be read: report it


def _no_lock_in(chosen: Sequence[StoredArchive], projects_dir: Path) -> NoLockIn:
    """Extract the newest unencrypted archive with the system ``unzip`` and check it with
    ``sha256sum -c``: the path that needs nothing of fda-vault."""
    unzip, sha256sum = shutil.which("unzip"), shutil.which("sha256sum")
    if unzip is None or sha256sum is None:
        return NoLockIn(detail="unzip or sha256sum is not installed")
    plain = next((a for a in chosen if a.parsed.cipher is None), None)
    if plain is None:
        return NoLockIn(detail="every archive drilled is encrypted (the runbook's age -d path)")
    with tempfile.TemporaryDirectory(prefix=DRILL_PREFIX, dir=projects_dir) as scratch:
        try:
            local = plain.path if isinstance(plain.path, Path) else _download(plain, scratch)
        except (FdaVaultError, OSError) as exc:
            return NoLockIn(archive=plain.name, status="failed", detail=str(exc))
        extracted = Path(scratch) / "extracted"
        steps = (
            [unzip, "-q", str(local), "-d", str(extracted)],
            [sha256sum, "-c", "--quiet", "--strict", "checksums.txt"],
        )
        for command in steps:
            extracted.mkdir(exist_ok=True)
            done = subprocess.run(
                command, cwd=extracted, capture_output=True, text=True, check=False
            )
            if done.returncode != 0:
                tail = (done.stderr or done.stdout).strip().splitlines()[-1:]
                return NoLockIn(
                    archive=plain.name,
                    status="failed",
                    detail=f"{Path(command[0]).name} exited {done.returncode}: "
                    + (tail[0] if tail else ""),
                )
    return NoLockIn(
        archive=plain.name, status="ok", detail="unzip -q, then sha256sum -c: every file OK"
    )


def _download(archive: StoredArchive, scratch: str) -> Path:
    """An object's bytes in a local file (``unzip`` reads files only)."""
    local = Path(scratch) / archive.name
    with local.open("wb") as fp:
        for chunk in read_from(archive.path, 0):
            fp.write(chunk)
    return local
