"""``prune``: restic-style retention policies that never delete the last good backup.

Archives are grouped by the label in their name (a project, ``all_projects``), and
``multi_project`` archives further by their set of projects, like restic's grouping by
paths. Within a group, newest first, each ``--keep-*`` rule marks what it keeps:

- ``keep_last N``: the N newest archives;
- ``keep_hourly/daily/weekly/monthly/yearly N``: for the N most recent UTC hours, days,
  ISO weeks (Monday to Sunday), months or years that have archives, the newest of each;
- ``keep_within DURATION`` (``30d``, ``6m``, ``2y5m7d3h``): every archive newer than the
  newest one (not counting future ones) minus DURATION.

Then the safety rules, which only ever keep more: the newest archive of a group is kept;
an archive is removed only when a newer one of its group is intact, so the newest
intact archive always survives. Intact means every member's data was checked (CRC-32 and
SHA-256, after the structure, manifest and ``checksums.txt``), by this run or by a
recorded full check of the same unchanged file (:mod:`fda_vault._verified`); files whose
names are not ``<label>_backup_<stamp>.zip`` (or the original library's
``fda_backup_<label>_<stamp>_<micro>.tar.gz``), and symlinks and folders, are never looked
at, let alone deleted.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import BaseModel, Field

from fda_vault._archive import Archive
from fda_vault._checks import Problem
from fda_vault._crypto import NO_KEYS, Keys
from fda_vault._errors import (
    DecryptError,
    FdaVaultError,
    OperationError,
    UsageError,
    os_error_reason,
)
from fda_vault._fsio import describe_os_error
from fda_vault._legacy import FORMAT_FDA_VAULT, FORMAT_LEGACY_TAR, is_legacy_tar
from fda_vault._locking import DEFAULT_LOCK_TIMEOUT
from fda_vault._progress import NO_PROGRESS, Progress
from fda_vault._s3 import ArchivePath
from fda_vault._storage import (
    ALL_PROJECTS_LABEL,
    MULTI_PROJECT_LABEL,
    BackupsLocation,
    StoredArchive,
    open_location,
)
from fda_vault._verified import FileIdentity, VerificationRecords, file_identity

__all__ = [
    "PruneDecision",
    "PrunePlan",
    "PruneResult",
    "RetentionPolicy",
    "plan_prune",
    "prune",
]

REASON_NEWEST = "newest"
REASON_NO_INTACT_NEWER = "no newer intact backup"
REASON_UNKNOWN_SET = "project set unreadable"
REASON_NOT_CONFIRMED = "not in the confirmed plan"
REASON_LOCKED = "locked until"  # + the date: S3 Object Lock retention still running
# Failures of a remote store that say nothing about an archive: the prune stops.
_UNREACHABLE = {"network", "access_denied", "no_such_bucket", "no_credentials", "server_error"}

_DURATION_RE = re.compile(r"(?:\d+[ymdh])+")
_DURATION_PART_RE = re.compile(r"(\d+)([ymdh])")


class RetentionPolicy(BaseModel):
    """What to keep; 0 (or no duration) turns a rule off. Rules are ORed."""

    keep_last: int = Field(default=0, ge=0)
    keep_hourly: int = Field(default=0, ge=0)
    keep_daily: int = Field(default=0, ge=0)
    keep_weekly: int = Field(default=0, ge=0)
    keep_monthly: int = Field(default=0, ge=0)
    keep_yearly: int = Field(default=0, ge=0)
    keep_within: str | None = None

    def describe(self) -> str:
        """``keep last 3, daily 7, within 30d``."""
        parts = [
            f"{name} {count}"
            for name, count in (
                ("last", self.keep_last),
                ("hourly", self.keep_hourly),
                ("daily", self.keep_daily),
                ("weekly", self.keep_weekly),
                ("monthly", self.keep_monthly),
                ("yearly", self.keep_yearly),
            )
            if count
        ]
        if self.keep_within:
            parts.append(f"within {self.keep_within}")
        return "keep " + (", ".join(parts) or "everything")


class PruneDecision(BaseModel):
    """One archive: kept (with every reason) or removed."""

    file: str
    label: str
    group: str
    timestamp: str = Field(description="ISO 8601 UTC: the manifest's, else the file name's")
    bytes: int
    kept: bool
    reasons: list[str]
    format: str = Field(default=FORMAT_FDA_VAULT, description="fda-vault, or a legacy format")
    intact: bool = Field(description="every member's data checked and found intact")
    check: str = Field(
        description="'verified' (by this run), 'verified earlier <time>' (a recorded full "
        "check of the unchanged file) or 'damaged: <why>'"
    )
    problem: str | None = None


class PrunePlan(BaseModel):
    """Which archives a policy keeps and why, newest first in each group; nothing deleted."""

    backups_dir: str
    policy: RetentionPolicy
    archives: list[PruneDecision]


class PruneResult(BaseModel):
    """A prune done (or, with ``dry_run``, only planned): kept/removed and bytes freed."""

    dry_run: bool
    backups_dir: str
    policy: str
    kept: int
    removed: int
    bytes_freed: int = Field(description="archive bytes deleted (or, in a dry run, to delete)")
    ok: bool = Field(description="every kept archive is intact")
    archives: list[PruneDecision]


@dataclass(frozen=True)
class Duration:
    years: int = 0
    months: int = 0
    days: int = 0
    hours: int = 0

    def before(self, moment: datetime) -> datetime | None:
        """``moment`` minus this duration, calendar-wise like Go's AddDate; None before year 1."""
        total_months = moment.year * 12 + (moment.month - 1) - self.years * 12 - self.months
        year, month0 = divmod(total_months, 12)
        if year < 1:
            return None
        # Day overflow rolls on, as in Go: 31 March minus one month is 3 March (or 2 March).
        start = moment.replace(year=year, month=month0 + 1, day=1)
        try:
            return start + timedelta(days=moment.day - 1 - self.days, hours=-self.hours)
        except OverflowError:
            return None


def parse_duration(text: str, option: str = "--keep-within") -> Duration:
    """``2y5m7d3h`` -> Duration; units y, m (months), d, h, each at most once (the one
    grammar of durations: ``--keep-within``, a config's ``keep.within``, ``--max-age``)."""
    cleaned = text.strip().lower()
    if not _DURATION_RE.fullmatch(cleaned):
        raise UsageError(f"{option} {text!r}", "not a duration; use e.g. 30d, 6m, 1y or 2y5m7d3h")
    values: dict[str, int] = {}
    for number, unit in _DURATION_PART_RE.findall(cleaned):
        if unit in values:
            raise UsageError(f"{option} {text!r}", f"the unit {unit!r} appears twice")
        values[unit] = int(number)
    return Duration(
        years=values.get("y", 0),
        months=values.get("m", 0),
        days=values.get("d", 0),
        hours=values.get("h", 0),
    )


def _checked_policy(policy: RetentionPolicy) -> Duration | None:
    """The parsed ``keep_within``; UsageError for an empty policy (it would keep nothing)."""
    within = parse_duration(policy.keep_within) if policy.keep_within else None
    if within == Duration():
        within = None
    counts = (
        policy.keep_last,
        policy.keep_hourly,
        policy.keep_daily,
        policy.keep_weekly,
        policy.keep_monthly,
        policy.keep_yearly,
    )
    if within is None and not any(counts):
        raise UsageError(
            "no keep option",
            "give at least one of --keep-last/-hourly/-daily/-weekly/-monthly/-yearly N "
            "or --keep-within DURATION",
        )
    return within


@dataclass
class _Archive:
    path: ArchivePath
    label: str
    group: str | None  # None: a multi_project archive whose project set cannot be read
    time: datetime
    size: int
    problem: str | None
    check: str
    format: str = FORMAT_FDA_VAULT

    @property
    def order(self) -> tuple[datetime, int, str]:
        # Same second: the suffixed name (_1, _2 … _10) is the later one; longer sorts later.
        return (self.time, len(self.path.name), self.path.name)


def _parse_time(text: str) -> datetime | None:
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return moment.astimezone(timezone.utc)


class _Checked(NamedTuple):
    time: datetime | None
    projects: list[str] | None
    problem: str | None
    check: str
    format: str = FORMAT_FDA_VAULT


def _check(
    path: ArchivePath,
    label: str,
    records: VerificationRecords,
    progress: Progress,
    identity: FileIdentity | None = None,
    keys: Keys = NO_KEYS,
) -> _Checked:
    """(manifest time, projects, first problem, check) with every member's data checked,
    here (one open of the archive) or by a recorded full verify of the unchanged file.
    An object store that cannot be reached fails the prune: nothing is judged by it."""
    try:
        identity = identity or file_identity(path)
        earlier = records.earlier(path, identity=identity)
        if earlier is not None and is_legacy_tar(path):
            # Its data is known intact: only its time and projects are needed, which its
            # headers give without converting it.
            from fda_vault._legacytar import scan_tar  # tarfile costs start-up

            scan = scan_tar(path)
            when, projects, source_format = scan.created_at, scan.projects, FORMAT_LEGACY_TAR
            problem = None
        else:
            with Archive.open(path, progress=progress, keys=keys) as opened:
                manifest = opened.manifest
                when, projects = manifest.backup_timestamp, manifest.projects
                source_format = manifest.source_format
                problems = opened.problems()
                if not problems and earlier is None:
                    problems = opened.data_problems(progress=progress)[2]
                problem = _first(problems)
    except FdaVaultError as exc:
        if exc.reason in _UNREACHABLE or isinstance(exc, DecryptError):
            raise  # nothing may be judged by an archive nobody could read
        unreadable = exc.why or exc.message
        return _Checked(None, None, unreadable, f"damaged: {unreadable}")
    except OSError as exc:
        unreadable = describe_os_error(exc)
        return _Checked(None, None, unreadable, f"damaged: {unreadable}")
    single = label not in {ALL_PROJECTS_LABEL, MULTI_PROJECT_LABEL}
    if problem is None and single and projects != [label]:
        # Renamed by hand: it is not a backup of the project its name says.
        problem = f"holds {', '.join(projects) or 'no project'}, not {label}"
    if problem is not None:
        check = f"damaged: {problem}"
    elif earlier is not None:
        check = f"verified earlier {earlier.isoformat().replace('+00:00', 'Z')}"
    else:
        check = "verified"
        records.add(path, identity)
    return _Checked(_parse_time(when), projects, problem, check, source_format)


def _first(problems: Sequence[Problem]) -> str | None:
    """The first problem as ``<path>: <kind>: <detail>`` (None when there is none)."""
    if not problems:
        return None
    first = problems[0]
    return f"{first.path}: {first.kind}: {first.detail}"


def _inspect(
    stored: StoredArchive, records: VerificationRecords, progress: Progress, keys: Keys
) -> _Archive | None:
    path, label = stored.path, stored.parsed.label
    stamped = stored.parsed.time
    if stamped is None:
        return None  # not a real date: not something we may touch
    if isinstance(path, Path):
        try:
            path.lstat()
        except OSError:
            return None  # gone
    checked = _check(path, label, records, progress, stored.identity, keys)
    group: str | None = label
    if label == MULTI_PROJECT_LABEL:
        projects = checked.projects
        group = f"{label} ({', '.join(sorted(projects))})" if projects is not None else None
    return _Archive(
        path=path,
        label=label,
        group=group,
        time=checked.time or stamped,
        size=stored.size,
        problem=checked.problem,
        check=checked.check,
        format=checked.format,
    )


def _scan(
    folder: BackupsLocation, labels: Sequence[str], progress: Progress, keys: Keys
) -> list[_Archive]:
    records = VerificationRecords()
    try:
        return _scan_with(folder, labels, records, progress, keys)
    finally:
        records.save()  # what this run verified, whatever happens next


def _scan_with(
    folder: BackupsLocation,
    labels: Sequence[str],
    records: VerificationRecords,
    progress: Progress,
    keys: Keys,
) -> list[_Archive]:
    if not folder.exists():
        raise UsageError(str(folder), "backups folder not found", reason="not_found")
    found: list[_Archive] = []
    seen_labels: set[str] = set()
    for stored in folder.archives():
        label = stored.parsed.label
        seen_labels.add(label)
        if labels and label not in labels:
            continue
        archive = _inspect(stored, records, progress, keys)
        if archive is not None:
            found.append(archive)
    unknown = [name for name in labels if name not in seen_labels]
    if unknown:
        present = ", ".join(sorted(seen_labels)) or "none"
        raise UsageError(
            f"no backups labelled {unknown[0]!r} in {folder}", f"labels present: {present}"
        )
    return found


_Bucket = Callable[[datetime, int], Any]
_BUCKETS: tuple[tuple[str, str, _Bucket], ...] = (
    ("last", "keep_last", lambda t, nr: nr),
    ("hourly", "keep_hourly", lambda t, nr: (t.date(), t.hour)),
    ("daily", "keep_daily", lambda t, nr: t.date()),
    ("weekly", "keep_weekly", lambda t, nr: t.isocalendar()[:2]),
    ("monthly", "keep_monthly", lambda t, nr: (t.year, t.month)),
    ("yearly", "keep_yearly", lambda t, nr: t.year),
)


def _policy_reasons(
    newest_first: Sequence[_Archive],
    policy: RetentionPolicy,
    within: Duration | None,
    now: datetime,
) -> list[list[str]]:
    """restic's ApplyPolicy: for each archive, every rule that keeps it ("daily 3")."""
    reasons: list[list[str]] = [[] for _ in newest_first]
    threshold: datetime | None = None
    if within is not None and newest_first:
        # As restic: measured from the newest archive that is not in the future.
        past = [a.time for a in newest_first if a.time <= now]
        latest = max(past) if past else newest_first[0].time
        threshold = within.before(latest)
    last_key: dict[str, object] = {}
    used: dict[str, int] = {}
    for nr, archive in enumerate(newest_first):
        for name, field, bucket in _BUCKETS:
            allowed: int = getattr(policy, field)
            if used.get(name, 0) >= allowed:
                continue
            key = bucket(archive.time, nr)
            if name not in last_key or key != last_key[name]:
                last_key[name] = key
                used[name] = used.get(name, 0) + 1
                reasons[nr].append(f"{name} {used[name]}")
        if within is not None and (threshold is None or archive.time > threshold):
            reasons[nr].append(f"within {policy.keep_within}")
    return reasons


def _decide_group(
    newest_first: Sequence[_Archive],
    policy: RetentionPolicy,
    within: Duration | None,
    now: datetime,
) -> list[PruneDecision]:
    reasons = _policy_reasons(newest_first, policy, within, now)
    decisions = []
    intact_newer = False
    for nr, archive in enumerate(newest_first):
        why = reasons[nr]
        # Both rules below are also implied by the policy; they are kept explicit so that
        # no policy bug can ever remove the newest, or the newest intact, archive.
        if nr == 0 and not why:
            why.append(REASON_NEWEST)
        if not why and not intact_newer:
            why.append(REASON_NO_INTACT_NEWER)
        decisions.append(_decision(archive, why))
        intact_newer = intact_newer or archive.problem is None
    return decisions


def _decision(archive: _Archive, reasons: list[str]) -> PruneDecision:
    return PruneDecision(
        file=archive.path.name,
        label=archive.label,
        group=archive.group or f"{archive.label} (unreadable)",
        timestamp=archive.time.astimezone(timezone.utc).isoformat(),
        bytes=archive.size,
        kept=bool(reasons),
        reasons=reasons,
        format=archive.format,
        intact=archive.problem is None,
        check=archive.check,
        problem=archive.problem,
    )


def plan_prune(
    backups_dir: Path | str,
    policy: RetentionPolicy,
    *,
    labels: Sequence[str] = (),
    now: datetime | None = None,
    progress: Progress = NO_PROGRESS,
    keys: Keys = NO_KEYS,
) -> PrunePlan:
    """Apply ``policy`` to the archives in ``backups_dir`` (a folder or ``s3://…``; only
    ``labels`` if given). An archive under S3 Object Lock is kept until its date."""
    within = _checked_policy(policy)
    now = now or datetime.now(timezone.utc)
    groups: dict[str, list[_Archive]] = {}
    decisions: list[PruneDecision] = []
    folder = open_location(backups_dir)
    for archive in _scan(folder, labels, progress, keys):
        if archive.group is None:
            # Which projects it holds is unknown, so no other archive can stand in for it.
            decisions.append(_decision(archive, [REASON_UNKNOWN_SET]))
        else:
            groups.setdefault(archive.group, []).append(archive)
    for group in sorted(groups):
        newest_first = sorted(groups[group], key=lambda a: a.order, reverse=True)
        decisions.extend(_decide_group(newest_first, policy, within, now))
    decisions = [_unless_locked(folder, d) for d in decisions]
    return PrunePlan(backups_dir=str(folder), policy=policy, archives=decisions)


def _unless_locked(folder: BackupsLocation, decision: PruneDecision) -> PruneDecision:
    """A removal the store would refuse (Object Lock) becomes a keep, with its date."""
    if decision.kept:
        return decision
    until = folder.locked_until(decision.file)
    if until is None:
        return decision
    stamp = until.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")
    return decision.model_copy(update={"kept": True, "reasons": [f"{REASON_LOCKED} {stamp}"]})


def _restrict(plan: PrunePlan, approved: Collection[str]) -> PrunePlan:
    """Remove only what was approved; what the fresh plan adds is kept."""
    archives = [
        d.model_copy(update={"kept": True, "reasons": [REASON_NOT_CONFIRMED]})
        if not d.kept and d.file not in approved
        else d
        for d in plan.archives
    ]
    return plan.model_copy(update={"archives": archives})


def _delete(folder: BackupsLocation, doomed: Sequence[PruneDecision]) -> None:
    """Delete each archive, oldest first, then make the removals durable."""
    deleted = 0
    try:
        for decision in sorted(doomed, key=lambda d: (d.timestamp, d.file)):
            try:
                if not folder.delete(decision.file):
                    continue  # already gone: what we wanted
            except OSError as exc:
                done = f"; {deleted} older archive(s) were deleted before it" if deleted else ""
                raise OperationError(
                    folder.where(decision.file),
                    f"cannot delete: {describe_os_error(exc)}{done}",
                    reason=os_error_reason(exc),
                ) from None
            deleted += 1
    finally:
        if deleted:
            folder.sync()


def _result(plan: PrunePlan, *, dry_run: bool) -> PruneResult:
    removed = [d for d in plan.archives if not d.kept]
    return PruneResult(
        dry_run=dry_run,
        backups_dir=plan.backups_dir,
        policy=plan.policy.describe(),
        kept=len(plan.archives) - len(removed),
        removed=len(removed),
        bytes_freed=sum(d.bytes for d in removed),
        ok=all(d.intact for d in plan.archives if d.kept),
        archives=plan.archives,
    )


def prune(
    backups_dir: Path | str,
    policy: RetentionPolicy,
    *,
    labels: Sequence[str] = (),
    dry_run: bool = False,
    approved: Collection[str] | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    now: datetime | None = None,
    progress: Progress = NO_PROGRESS,
    keys: Keys = NO_KEYS,
) -> PruneResult:
    """Delete the archives ``policy`` does not keep (none with ``dry_run``).

    ``approved`` (file names, e.g. those of a plan a user confirmed) limits what may be
    deleted: the plan is made again under the folder's lock and only what both plans
    remove is deleted. ``keys`` open encrypted archives (without them, prune stops
    with DecryptError rather than judge an archive it cannot read).
    """
    _checked_policy(policy)
    if dry_run:
        plan = plan_prune(backups_dir, policy, labels=labels, now=now, progress=progress, keys=keys)
        return _result(plan, dry_run=True)
    folder = open_location(backups_dir)
    if not folder.exists():
        raise UsageError(str(folder), "backups folder not found", reason="not_found")
    with folder.lock(lock_timeout):
        plan = plan_prune(backups_dir, policy, labels=labels, now=now, progress=progress, keys=keys)
        if approved is not None:
            plan = _restrict(plan, set(approved))
        _delete(folder, [d for d in plan.archives if not d.kept])
    return _result(plan, dry_run=False)
