"""``prune``: restic ``forget`` policies over two years of backups, and every safety rule."""

from __future__ import annotations

import errno
import hashlib
import importlib
import os
import stat
import zipfile
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from fda_vault._errors import LockedError, OperationError, UsageError
from fda_vault._locking import folder_lock
from fda_vault._manifest import BackupManifest, FileEntry
from fda_vault._prune import (
    REASON_NEWEST,
    REASON_NO_INTACT_NEWER,
    REASON_NOT_CONFIRMED,
    REASON_UNKNOWN_SET,
    PruneDecision,
    PruneResult,
    RetentionPolicy,
    plan_prune,
    prune,
)
from tests.conftest import CARDIAC

# ``fda_vault._prune`` the attribute is the function; the module is in sys.modules.
prune_module = importlib.import_module("fda_vault._prune")

UTC = timezone.utc
NOW = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)
FIRST_DAY = date(2023, 1, 1)
LAST_DAY = date(2024, 12, 31)


def write_archive(
    folder: Path,
    label: str,
    when: datetime,
    *,
    projects: Sequence[str] | None = None,
    name_time: datetime | None = None,
    suffix: str = "",
) -> Path:
    """A small valid fda-vault archive whose manifest and name carry chosen times.

    ``projects`` defaults to ``[label]`` (or two projects for all_projects/multi_project);
    ``name_time`` (default ``when``) is the UTC stamp in the file name.
    """
    if projects is None:
        projects = ["alpha", "beta"] if label in {"all_projects", "multi_project"} else [label]
    folder.mkdir(parents=True, exist_ok=True)
    data = f"# notes of {label} at {when.isoformat()}\n".encode()
    entries = [
        FileEntry(
            path=f"{project}/notes.md",
            size=len(data),
            sha256=hashlib.sha256(data).hexdigest(),
            mtime=when.timestamp(),
            mode=0o644,
        )
        for project in projects
    ]
    manifest = BackupManifest(
        backup_timestamp=when.isoformat(),
        projects=list(projects),
        total_projects=len(projects),
        total_files=len(entries),
        total_bytes=sum(e.size for e in entries),
        checksums={e.path: e.sha256 for e in entries},
        files=entries,
        created_by="fda-vault tests",
    )
    stamp = f"{name_time or when:%Y%m%d_%H%M%S}"
    path = folder / f"{label}_backup_{stamp}{suffix}.zip"
    members = [(f"projects/{e.path}", data) for e in entries]
    members += [
        ("checksums.txt", manifest.checksums_txt()),
        ("metadata.json", manifest.to_json_bytes()),
    ]
    with zipfile.ZipFile(path, "x", zipfile.ZIP_DEFLATED) as zf:
        for name, payload in members:
            info = zipfile.ZipInfo(name, date_time=(2024, 1, 1, 0, 0, 0))
            info.external_attr = (stat.S_IFREG | 0o644) << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(info, payload)
    return path


def nightly(folder: Path, label: str, first: date, last: date, hour: int = 2) -> list[Path]:
    """One archive a day at ``hour``:00 UTC from ``first`` to ``last``, inclusive."""
    paths = []
    day = first
    while day <= last:
        when = datetime(day.year, day.month, day.day, hour, tzinfo=UTC)
        paths.append(write_archive(folder, label, when))
        day += timedelta(days=1)
    return paths


def kept_days(result: PruneResult | Sequence[PruneDecision]) -> set[date]:
    """The days of the kept archives."""
    decisions = result.archives if isinstance(result, PruneResult) else result
    return {datetime.fromisoformat(d.timestamp).date() for d in decisions if d.kept}


def reasons_on(result: PruneResult, day: date) -> list[str]:
    """The reasons of the archive made on ``day``."""
    (decision,) = [d for d in result.archives if datetime.fromisoformat(d.timestamp).date() == day]
    return decision.reasons


def days(first: date, last: date) -> set[date]:
    """Every day from ``first`` to ``last``, inclusive."""
    return {first + timedelta(days=n) for n in range((last - first).days + 1)}


def month_ends(first: date, last: date) -> set[date]:
    """The last day of every month between ``first`` and ``last``."""
    return {d for d in days(first, last) if (d + timedelta(days=1)).day == 1}


def assert_safe(result: PruneResult) -> None:
    """The invariants: per group the newest is kept; nothing goes without a newer intact."""
    groups: dict[str, list[PruneDecision]] = {}
    for decision in result.archives:
        groups.setdefault(decision.group, []).append(decision)
    for decisions in groups.values():
        newest_first = sorted(decisions, key=lambda d: (d.timestamp, d.file), reverse=True)
        assert newest_first[0].kept
        intact_newer = False
        for decision in newest_first:
            assert decision.kept or intact_newer, decision
            intact_newer = intact_newer or (decision.intact and decision.kept)


@pytest.fixture(scope="module")
def two_years(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """731 nightly backups of one project, 2023-01-01 to 2024-12-31 at 02:00 UTC."""
    folder = tmp_path_factory.mktemp("two_years") / "backups"
    nightly(folder, CARDIAC, FIRST_DAY, LAST_DAY)
    return folder


D = date
DEC_2024 = days(D(2024, 12, 1), D(2024, 12, 31))

# (policy, exactly the days kept). The newest backup is 2024-12-31 (a Tuesday, in ISO
# week 2025-W01, whose Monday is 2024-12-30): weeks cross the year boundary as restic's.
POLICY_CASES: list[tuple[dict[str, Any], set[date]]] = [
    ({"keep_last": 1}, {D(2024, 12, 31)}),
    ({"keep_last": 3}, {D(2024, 12, 31), D(2024, 12, 30), D(2024, 12, 29)}),
    ({"keep_hourly": 3}, {D(2024, 12, 31), D(2024, 12, 30), D(2024, 12, 29)}),
    ({"keep_daily": 7}, days(D(2024, 12, 25), D(2024, 12, 31))),
    ({"keep_weekly": 4}, {D(2024, 12, 31), D(2024, 12, 29), D(2024, 12, 22), D(2024, 12, 15)}),
    ({"keep_monthly": 3}, {D(2024, 12, 31), D(2024, 11, 30), D(2024, 10, 31)}),
    # More months than there are: every month end, February 2023 and leap 2024 included.
    ({"keep_monthly": 36}, month_ends(FIRST_DAY, LAST_DAY)),
    ({"keep_yearly": 5}, {D(2024, 12, 31), D(2023, 12, 31)}),
    ({"keep_within": "7d"}, days(D(2024, 12, 25), D(2024, 12, 31))),
    ({"keep_within": "30d"}, days(D(2024, 12, 2), D(2024, 12, 31))),
    # Months are calendar months as Go's AddDate: 31 Dec - 1 month = "31 Nov" = 1 Dec.
    ({"keep_within": "1m"}, days(D(2024, 12, 2), D(2024, 12, 31))),
    ({"keep_within": "1m1d"}, DEC_2024),
    ({"keep_within": "2m"}, days(D(2024, 11, 1), D(2024, 12, 31))),
    ({"keep_within": "1y"}, days(D(2024, 1, 1), D(2024, 12, 31))),
    ({"keep_within": "5m7d3h"}, days(D(2024, 7, 24), D(2024, 12, 31))),
    ({"keep_within": "47h"}, {D(2024, 12, 30), D(2024, 12, 31)}),
    ({"keep_within": "48h"}, {D(2024, 12, 30), D(2024, 12, 31)}),
    ({"keep_within": "49h"}, {D(2024, 12, 29), D(2024, 12, 30), D(2024, 12, 31)}),
    ({"keep_within": "2y5m7d3h"}, days(FIRST_DAY, LAST_DAY)),
    ({"keep_last": 1, "keep_within": "7d"}, days(D(2024, 12, 25), D(2024, 12, 31))),
    (
        {"keep_last": 2, "keep_monthly": 2, "keep_yearly": 3},
        {D(2024, 12, 31), D(2024, 12, 30), D(2024, 11, 30), D(2023, 12, 31)},
    ),
    (
        {"keep_daily": 3, "keep_within": "10d", "keep_yearly": 1},
        days(D(2024, 12, 22), D(2024, 12, 31)),
    ),
    # restic's documented example policy (daily 7, weekly 5, monthly 12, yearly 75): the
    # 7 dailies, the weekly ones they do not already hold, month ends, year ends.
    (
        {"keep_daily": 7, "keep_weekly": 5, "keep_monthly": 12, "keep_yearly": 75},
        days(D(2024, 12, 25), D(2024, 12, 31))
        | {D(2024, 12, 22), D(2024, 12, 15), D(2024, 12, 8)}
        | month_ends(D(2024, 1, 1), LAST_DAY)
        | {D(2023, 12, 31)},
    ),
]


@pytest.mark.parametrize(
    ("policy", "expected"),
    POLICY_CASES,
    ids=[",".join(f"{k}={v}" for k, v in p.items()) for p, _ in POLICY_CASES],
)
@pytest.mark.slow
def test_policy_keeps_exactly(two_years: Path, policy: dict[str, Any], expected: set[date]) -> None:
    result = prune(two_years, RetentionPolicy(**policy), dry_run=True, now=NOW)
    assert result.dry_run
    assert len(result.archives) == 731
    assert kept_days(result) == expected
    assert result.kept == len(expected)
    assert result.removed == 731 - len(expected)
    assert result.bytes_freed == sum(d.bytes for d in result.archives if not d.kept)
    assert result.ok
    assert_safe(result)
    assert len(list(two_years.iterdir())) == 731  # a dry run deletes nothing


@pytest.mark.slow
def test_restic_documented_combination_reasons(two_years: Path) -> None:
    policy = RetentionPolicy(keep_daily=7, keep_weekly=5, keep_monthly=12, keep_yearly=75)
    result = prune(two_years, policy, dry_run=True, now=NOW)
    assert reasons_on(result, D(2024, 12, 31)) == ["daily 1", "weekly 1", "monthly 1", "yearly 1"]
    assert reasons_on(result, D(2024, 12, 29)) == ["daily 3", "weekly 2"]
    assert reasons_on(result, D(2024, 12, 8)) == ["weekly 5"]
    assert reasons_on(result, D(2024, 2, 29)) == ["monthly 11"]
    assert reasons_on(result, D(2023, 12, 31)) == ["yearly 2"]
    assert reasons_on(result, D(2024, 12, 7)) == []
    assert result.policy == "keep daily 7, weekly 5, monthly 12, yearly 75"


@pytest.mark.slow
def test_reasons_accumulate_with_last_and_within(two_years: Path) -> None:
    result = prune(two_years, RetentionPolicy(keep_last=2, keep_within="3d"), dry_run=True, now=NOW)
    assert reasons_on(result, D(2024, 12, 31)) == ["last 1", "within 3d"]
    assert reasons_on(result, D(2024, 12, 30)) == ["last 2", "within 3d"]
    assert reasons_on(result, D(2024, 12, 29)) == ["within 3d"]


def test_restic_example_twelve_sundays_keep_daily_4(tmp_path: Path) -> None:
    """restic's docs: one backup every Sunday for 12 weeks; --keep-daily 4 keeps 4."""
    sundays = [datetime(2019, 9, 1, 11, tzinfo=UTC) + timedelta(weeks=n) for n in range(12)]
    for when in sundays:
        write_archive(tmp_path, "work", when)
    result = prune(tmp_path, RetentionPolicy(keep_daily=4), dry_run=True, now=NOW)
    kept = [d for d in result.archives if d.kept]
    assert [d.timestamp for d in kept] == [t.isoformat() for t in reversed(sundays[-4:])]
    assert [d.reasons for d in kept] == [["daily 1"], ["daily 2"], ["daily 3"], ["daily 4"]]
    assert result.removed == 8


def test_hourly_keeps_the_newest_of_each_hour(tmp_path: Path) -> None:
    start = datetime(2024, 5, 6, 10, 0, tzinfo=UTC)
    for n in range(7):  # 10:00 10:20 10:40 11:00 11:20 11:40 12:00
        write_archive(tmp_path, "alpha", start + timedelta(minutes=20 * n))
    result = prune(tmp_path, RetentionPolicy(keep_hourly=3), dry_run=True, now=NOW)
    kept = {d.timestamp[11:16]: d.reasons for d in result.archives if d.kept}
    assert kept == {"12:00": ["hourly 1"], "11:40": ["hourly 2"], "10:40": ["hourly 3"]}


def test_policy_applies_per_label(tmp_path: Path) -> None:
    nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 5))
    nightly(tmp_path, "beta", D(2024, 3, 1), D(2024, 3, 3))
    nightly(tmp_path, "all_projects", D(2024, 2, 1), D(2024, 2, 2))
    result = prune(tmp_path, RetentionPolicy(keep_last=1), dry_run=True, now=NOW)
    kept = {(d.label, d.timestamp[:10]) for d in result.archives if d.kept}
    assert kept == {("alpha", "2024-01-05"), ("beta", "2024-03-03"), ("all_projects", "2024-02-02")}
    assert result.removed == 4 + 2 + 1


def test_labels_option_restricts_and_leaves_others_untouched(tmp_path: Path) -> None:
    alpha = nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 5))
    beta = nightly(tmp_path, "beta", D(2024, 1, 1), D(2024, 1, 5))
    result = prune(tmp_path, RetentionPolicy(keep_last=1), labels=["alpha"], now=NOW)
    assert {d.label for d in result.archives} == {"alpha"}
    assert [p.exists() for p in alpha] == [False, False, False, False, True]
    assert all(p.exists() for p in beta)


def test_unknown_label_is_a_usage_error(tmp_path: Path) -> None:
    nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 2))
    with pytest.raises(UsageError, match="labels present: alpha"):
        prune(tmp_path, RetentionPolicy(keep_last=1), labels=["alhpa"], now=NOW)


def test_multi_project_archives_are_grouped_by_project_set(tmp_path: Path) -> None:
    for day in (1, 2, 3):
        write_archive(tmp_path, "multi_project", datetime(2024, 1, day, tzinfo=UTC))
    for day in (4, 5):
        write_archive(
            tmp_path,
            "multi_project",
            datetime(2024, 1, day, tzinfo=UTC),
            projects=["gamma", "delta"],
        )
    result = prune(tmp_path, RetentionPolicy(keep_last=1), dry_run=True, now=NOW)
    kept = {(d.group, d.timestamp[:10]) for d in result.archives if d.kept}
    # The newer {gamma, delta} backups never stand in for alpha and beta.
    assert kept == {
        ("multi_project (alpha, beta)", "2024-01-03"),
        ("multi_project (delta, gamma)", "2024-01-05"),
    }


def test_unreadable_multi_project_archive_is_kept(tmp_path: Path) -> None:
    nightly(tmp_path, "multi_project", D(2024, 1, 1), D(2024, 1, 3))
    (tmp_path / "multi_project_backup_20230101_020000.zip").write_bytes(b"junk" * 10)
    result = prune(tmp_path, RetentionPolicy(keep_last=1), now=NOW)
    (junk,) = [d for d in result.archives if not d.intact]
    assert junk.kept
    assert junk.reasons == [REASON_UNKNOWN_SET]
    assert (tmp_path / junk.file).exists()
    assert result.removed == 2


# --- safety rules -------------------------------------------------------------


@pytest.mark.parametrize(
    "policy",
    [
        RetentionPolicy(),
        RetentionPolicy(keep_last=0, keep_daily=0),
        RetentionPolicy(keep_within="0d"),
        RetentionPolicy(keep_within="0y0m0d0h"),
    ],
)
@pytest.mark.parametrize("dry_run", [True, False])
def test_no_keep_option_is_a_usage_error(
    tmp_path: Path, policy: RetentionPolicy, dry_run: bool
) -> None:
    paths = nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 3))
    with pytest.raises(UsageError, match="no keep option"):
        prune(tmp_path, policy, dry_run=dry_run, now=NOW)
    assert all(p.exists() for p in paths)


@pytest.mark.parametrize("text", ["30", "d30", "30x", "1w", "1y1y", "-3d", "3 d", "1.5d", ""])
def test_bad_duration_is_a_usage_error(tmp_path: Path, text: str) -> None:
    nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 3))
    with pytest.raises(UsageError, match="--keep-within"):
        prune(tmp_path, RetentionPolicy(keep_within=text or " "), dry_run=True, now=NOW)


def test_missing_backups_folder_is_a_usage_error(tmp_path: Path) -> None:
    for dry_run in (True, False):
        with pytest.raises(UsageError, match="backups folder not found"):
            prune(tmp_path / "nope", RetentionPolicy(keep_last=1), dry_run=dry_run)


def test_empty_folder_is_fine(tmp_path: Path) -> None:
    result = prune(tmp_path, RetentionPolicy(keep_last=1))
    assert (result.kept, result.removed, result.bytes_freed, result.ok) == (0, 0, 0, True)


def test_prune_deletes_exactly_the_plan_and_counts_bytes(tmp_path: Path) -> None:
    paths = nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 10))
    sizes = {p.name: p.stat().st_size for p in paths}
    plan = plan_prune(tmp_path, RetentionPolicy(keep_last=3), now=NOW)
    result = prune(tmp_path, RetentionPolicy(keep_last=3), now=NOW)
    assert not result.dry_run
    # Same decisions; the second run trusts what the first one verified.
    assert [d.model_dump(exclude={"check"}) for d in result.archives] == [
        d.model_dump(exclude={"check"}) for d in plan.archives
    ]
    assert {d.check for d in plan.archives} == {"verified"}
    assert all(d.check.startswith("verified earlier ") for d in result.archives)
    removed = {d.file for d in result.archives if not d.kept}
    assert len(removed) == 7
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".zip") == sorted(
        set(sizes) - removed
    )
    assert result.bytes_freed == sum(sizes[name] for name in removed)


def test_damaged_newest_keeps_the_newest_good_one(tmp_path: Path) -> None:
    paths = nightly(tmp_path, CARDIAC, D(2024, 1, 1), D(2024, 1, 6))
    newest = paths[-1]
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])  # truncated
    result = prune(tmp_path, RetentionPolicy(keep_last=1), now=NOW)
    by_file = {d.file: d for d in result.archives}
    assert by_file[newest.name].kept and not by_file[newest.name].intact
    assert by_file[newest.name].reasons == ["last 1"]
    assert by_file[newest.name].problem
    assert by_file[paths[-2].name].kept
    assert by_file[paths[-2].name].reasons == [REASON_NO_INTACT_NEWER]
    assert [p.exists() for p in paths] == [False, False, False, False, True, True]
    assert not result.ok
    assert_safe(result)


def test_garbage_newest_keeps_older_ones_until_an_intact_one(tmp_path: Path) -> None:
    paths = nightly(tmp_path, CARDIAC, D(2024, 1, 1), D(2024, 1, 6))
    paths[-1].write_bytes(os.urandom(4096))  # garbage under a valid name
    paths[-2].write_bytes(b"")  # empty
    result = prune(tmp_path, RetentionPolicy(keep_daily=1), now=NOW)
    assert [p.exists() for p in paths] == [False, False, False, True, True, True]
    # Unreadable manifests: the time comes from the file name.
    times = {d.file: d.timestamp for d in result.archives}
    assert times[paths[-1].name] == "2024-01-06T02:00:00+00:00"
    assert_safe(result)


def test_everything_damaged_deletes_nothing(tmp_path: Path) -> None:
    paths = nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 4))
    for path in paths:
        path.write_bytes(b"PK\x03\x04 not really")
    result = prune(tmp_path, RetentionPolicy(keep_last=1), now=NOW)
    assert result.removed == 0
    assert all(p.exists() for p in paths)
    assert [d.reasons for d in result.archives] == [["last 1"]] + [[REASON_NO_INTACT_NEWER]] * 3


def test_damaged_old_archive_goes_when_a_newer_one_is_intact(tmp_path: Path) -> None:
    paths = nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 4))
    paths[1].write_bytes(b"garbage")
    result = prune(tmp_path, RetentionPolicy(keep_last=1), now=NOW)
    assert [p.exists() for p in paths] == [False, False, False, True]
    assert result.ok  # what is left is intact


def test_structure_problem_counts_as_damaged(tmp_path: Path) -> None:
    """A newer archive whose checksums.txt disagrees with its manifest is not intact."""
    paths = nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 3))
    newest = paths[-1]
    with zipfile.ZipFile(newest) as zf:
        members = [(info, zf.read(info)) for info in zf.infolist()]
    newest.unlink()
    with zipfile.ZipFile(newest, "w") as zf:
        for info, payload in members:
            zf.writestr(
                info,
                b"0" * 64 + b"  projects/alpha/notes.md\n"
                if info.filename == "checksums.txt"
                else payload,
            )
    result = prune(tmp_path, RetentionPolicy(keep_last=1), now=NOW)
    assert [d.intact for d in result.archives] == [False, True, True]
    assert "checksums.txt" in (result.archives[0].problem or "")
    assert [p.exists() for p in paths] == [False, True, True]


def test_archive_renamed_to_another_label_is_not_intact_for_it(tmp_path: Path) -> None:
    paths = nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 3))
    # beta's newer backup, renamed by hand to look like alpha's.
    impostor = write_archive(tmp_path / "elsewhere", "beta", datetime(2024, 2, 1, tzinfo=UTC))
    fake = impostor.rename(tmp_path / "alpha_backup_20240201_000000.zip")
    result = prune(tmp_path, RetentionPolicy(keep_last=1), now=NOW)
    by_file = {d.file: d for d in result.archives}
    assert by_file[fake.name].problem == "holds beta, not alpha"
    assert [p.exists() for p in paths] == [False, False, True]


def test_manifest_time_wins_over_the_name(tmp_path: Path) -> None:
    old_name = write_archive(
        tmp_path,
        "alpha",
        datetime(2024, 6, 1, tzinfo=UTC),
        name_time=datetime(2020, 1, 1, tzinfo=UTC),
    )
    other = write_archive(tmp_path, "alpha", datetime(2024, 5, 1, tzinfo=UTC))
    result = prune(tmp_path, RetentionPolicy(keep_last=1), now=NOW)
    assert old_name.exists() and not other.exists()
    assert result.archives[0].timestamp == "2024-06-01T00:00:00+00:00"


def test_same_second_suffixes_order_numerically(tmp_path: Path) -> None:
    when = datetime(2024, 1, 1, 2, tzinfo=UTC)
    base = write_archive(tmp_path, "alpha", when)
    two = write_archive(tmp_path, "alpha", when, suffix="_2")
    ten = write_archive(tmp_path, "alpha", when, suffix="_10")
    prune(tmp_path, RetentionPolicy(keep_last=1), now=NOW)
    assert [base.exists(), two.exists(), ten.exists()] == [False, False, True]


def test_future_backups_do_not_move_keep_within(tmp_path: Path) -> None:
    """As restic: --keep-within counts from the newest backup that is not in the future."""
    nightly(tmp_path, "alpha", D(2025, 1, 1), D(2025, 1, 10))
    future = write_archive(tmp_path, "alpha", datetime(2030, 1, 1, tzinfo=UTC))
    now = datetime(2025, 1, 10, 12, tzinfo=UTC)
    result = prune(tmp_path, RetentionPolicy(keep_within="3d"), dry_run=True, now=now)
    assert kept_days(result) == {D(2025, 1, 8), D(2025, 1, 9), D(2025, 1, 10), D(2030, 1, 1)}
    assert result.archives[0].file == future.name


def test_huge_duration_keeps_everything(tmp_path: Path) -> None:
    paths = nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 3))
    result = prune(tmp_path, RetentionPolicy(keep_within="9999y"), now=NOW)
    assert result.removed == 0
    assert all(p.exists() for p in paths)


def test_non_archives_are_never_touched(tmp_path: Path) -> None:
    outside = write_archive(tmp_path / "outside", "alpha", datetime(2020, 1, 1, tzinfo=UTC))
    nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 3))
    strangers = [
        tmp_path / "notes.txt",
        tmp_path / "alpha_backup_2024.zip",
        tmp_path / "alpha_backup_20240101_020000.zip.tmp",
        tmp_path / "alpha_backup_20241399_020000.zip",  # not a real date
        tmp_path / "alpha_backup_20200101_000000.ZIP",
        tmp_path / "alpha-20200101.zip",
    ]
    for path in strangers:
        path.write_bytes(b"keep me")
    folder_named_like_one = tmp_path / "alpha_backup_20200102_000000.zip"
    folder_named_like_one.mkdir()
    link = tmp_path / "alpha_backup_20200103_000000.zip"
    link.symlink_to(outside)
    result = prune(tmp_path, RetentionPolicy(keep_last=1), now=NOW)
    names = {d.file for d in result.archives}
    assert names == {f"alpha_backup_2024010{n}_020000.zip" for n in (1, 2, 3)}
    assert all(p.read_bytes() == b"keep me" for p in strangers)
    assert folder_named_like_one.is_dir()
    assert link.is_symlink() and outside.exists()


def test_real_backup_archives_pass_the_quick_check(
    make_backup: Callable[..., Path], projects_dir: Path, backups_dir: Path
) -> None:
    first = make_backup(projects_dir, backups_dir, "-p", CARDIAC)
    result = prune(backups_dir, RetentionPolicy(keep_last=1), dry_run=True)
    assert [(d.file, d.intact, d.kept) for d in result.archives] == [(first.name, True, True)]
    assert result.archives[0].reasons == ["last 1"]


def test_lock_is_held_while_deleting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    paths = nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 3))
    real_unlink = os.unlink
    seen: list[str] = []

    def unlink_checking_lock(path: Any, *args: Any, **kwargs: Any) -> None:
        if str(path).endswith(".zip"):
            with pytest.raises(LockedError), folder_lock(tmp_path, timeout=0):
                pass
            seen.append(os.path.basename(path))
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", unlink_checking_lock)
    prune(tmp_path, RetentionPolicy(keep_last=1), now=NOW)
    # Oldest first.
    assert seen == [paths[0].name, paths[1].name]


def test_locked_folder_fails_and_deletes_nothing(tmp_path: Path) -> None:
    paths = nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 3))
    with folder_lock(tmp_path):
        with pytest.raises(LockedError):
            prune(tmp_path, RetentionPolicy(keep_last=1), lock_timeout=0.1, now=NOW)
        # Planning needs no lock: a dry run works while a backup is being written.
        assert prune(tmp_path, RetentionPolicy(keep_last=1), dry_run=True).removed == 2
    assert all(p.exists() for p in paths)


def test_only_approved_files_are_deleted(tmp_path: Path) -> None:
    paths = nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 4))
    result = prune(tmp_path, RetentionPolicy(keep_last=1), approved=[paths[1].name], now=NOW)
    assert [p.exists() for p in paths] == [True, False, True, True]
    by_file = {d.file: d for d in result.archives}
    assert by_file[paths[0].name].reasons == [REASON_NOT_CONFIRMED]
    assert by_file[paths[2].name].reasons == [REASON_NOT_CONFIRMED]
    assert result.removed == 1


def test_approval_never_overrides_a_fresh_plan(tmp_path: Path) -> None:
    """A file approved earlier but kept by the plan made under the lock stays."""
    paths = nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 3))
    result = prune(
        tmp_path, RetentionPolicy(keep_last=1), approved=[p.name for p in paths], now=NOW
    )
    assert paths[-1].exists()
    assert result.removed == 2


def test_failed_delete_names_the_file_and_what_was_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = nightly(tmp_path, "alpha", D(2024, 1, 1), D(2024, 1, 4))
    real_unlink = os.unlink

    def failing_unlink(path: Any, *args: Any, **kwargs: Any) -> None:
        if os.path.basename(path) == paths[1].name:
            raise PermissionError(errno.EACCES, "Permission denied", str(path))
        real_unlink(path, *args, **kwargs)

    monkeypatch.setattr(os, "unlink", failing_unlink)
    with pytest.raises(OperationError, match=r"permission denied.*1 older archive") as caught:
        prune(tmp_path, RetentionPolicy(keep_last=1), now=NOW)
    assert paths[1].name in caught.value.what
    assert [p.exists() for p in paths] == [False, True, True, True]


def test_guards_hold_even_if_no_rule_keeps_anything(monkeypatch: pytest.MonkeyPatch) -> None:
    """Defence in depth: were the policy code to keep nothing, the guards still would."""
    archives = [
        prune_module._Archive(
            path=Path(f"alpha_backup_2024010{n}_000000.zip"),
            label="alpha",
            group="alpha",
            time=datetime(2024, 1, n, tzinfo=UTC),
            size=1,
            problem="damaged" if n == 3 else None,
            check="damaged: damaged" if n == 3 else "verified",
        )
        for n in (3, 2, 1)
    ]
    monkeypatch.setattr(prune_module, "_policy_reasons", lambda items, *_: [[] for _ in items])
    decisions = prune_module._decide_group(archives, RetentionPolicy(keep_last=1), None, NOW)
    assert [d.reasons for d in decisions] == [[REASON_NEWEST], [REASON_NO_INTACT_NEWER], []]
