"""Restore drills: real restores into a private folder, every byte read back, the live
projects spot-checked, and the no-lock-in path run with the system unzip and sha256sum."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path
from typing import Any

import pytest

from fda_vault._drill import DRILL_PREFIX, choose_archives
from fda_vault._storage import open_location
from tests.conftest import CARDIAC, CliCall, FrozenClock, backup_json
from tests.s3servers import Bucket


def _backups(
    cli: CliCall, projects: Path, where: str | Path, clock: FrozenClock, n: int
) -> list[str]:
    made = []
    for day in range(n):
        clock.set(2026, 3, 10 + day, 2, 0, 0)
        made.append(
            backup_json(cli, "--all", "--projects-dir", projects, "--output-dir", where)["archive"]
        )
    return made


def _drill(cli: CliCall, *args: str | Path) -> tuple[int, dict[str, Any], str]:
    result = cli("drill", *args, "--json")
    return result.exit_code, json.loads(result.stdout), result.stderr


def test_the_default_drill_restores_the_newest_and_one_older_and_leaves_nothing(
    cli: CliCall, projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock
) -> None:
    made = _backups(cli, projects_dir, backups_dir, frozen_clock, 3)
    code, report, _ = _drill(cli, backups_dir, "--projects-dir", projects_dir)
    assert code == 0, report
    drilled = [item["archive"] for item in report["archives"]]
    assert len(drilled) == 2 and drilled[0] == Path(made[-1]).name
    assert drilled[1] in {Path(m).name for m in made[:-1]}
    newest = report["archives"][0]
    assert newest["status"] == "ok" and newest["restored_files"] > 0
    assert newest["live_checked"] == newest["restored_files"]  # nothing changed since
    assert report["no_lock_in"]["status"] == "ok"
    assert not [p for p in projects_dir.iterdir() if p.name.startswith(DRILL_PREFIX)]
    event = json.loads(cli("log", backups_dir, "--json").stdout)["events"][0]
    assert event["command"] == "drill" and event["outcome"] == "ok"
    assert [a["action"] for a in event["archives"]] == ["drilled", "drilled"]
    assert all(a["sha256"] for a in event["archives"])


def test_a_live_file_changed_under_an_unchanged_identity_is_found(
    cli: CliCall, projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock
) -> None:
    _backups(cli, projects_dir, backups_dir, frozen_clock, 1)
    victim = projects_dir / CARDIAC / "device_profile.json"
    before = os.stat(victim)
    data = bytearray(victim.read_bytes())
    data[0] ^= 0x20  # one flipped bit's worth: same size...
    victim.write_bytes(bytes(data))
    os.utime(victim, ns=(before.st_atime_ns, before.st_mtime_ns))  # ...same times
    code, report, stderr = _drill(cli, backups_dir, "--projects-dir", projects_dir)
    assert code == 3
    assert report["archives"][0]["status"] == "ok"  # the backup itself is fine
    assert report["archives"][0]["live_mismatches"] == [f"{CARDIAC}/device_profile.json"]
    assert f"{CARDIAC}/device_profile.json" in stderr and "silent damage" in stderr
    event = json.loads(cli("log", backups_dir, "--json").stdout)["events"][0]
    assert event["exit_code"] == 3 and event["archives"][0]["action"] == "live_mismatch"


def test_a_changed_live_file_with_new_times_is_no_finding(
    cli: CliCall, projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock
) -> None:
    _backups(cli, projects_dir, backups_dir, frozen_clock, 1)
    edited = projects_dir / CARDIAC / "device_profile.json"
    edited.write_bytes(b'{"device": "edited today"}\n')
    code, report, _ = _drill(cli, backups_dir, "--projects-dir", projects_dir)
    assert code == 0, report
    item = report["archives"][0]
    assert item["live_checked"] == item["restored_files"] - 1


def test_a_damaged_archive_fails_the_drill(
    cli: CliCall, projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock
) -> None:
    (made,) = _backups(cli, projects_dir, backups_dir, frozen_clock, 1)
    data = bytearray(Path(made).read_bytes())
    data[100] ^= 0xFF  # inside the first member's data
    Path(made).write_bytes(bytes(data))
    code, report, stderr = _drill(cli, backups_dir, "--projects-dir", projects_dir)
    assert code == 3
    assert report["archives"][0]["status"] == "damaged"
    assert Path(made).name in stderr
    assert report["no_lock_in"]["status"] == "failed"  # unzip finds it too


def test_choosing_all_n_or_one_project(
    cli: CliCall, projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock
) -> None:
    _backups(cli, projects_dir, backups_dir, frozen_clock, 4)
    code, report, _ = _drill(cli, backups_dir, "--projects-dir", projects_dir, "--all")
    assert code == 0 and len(report["archives"]) == 4
    code, report, _ = _drill(cli, backups_dir, "--projects-dir", projects_dir, "--archives", "3")
    assert code == 0 and len(report["archives"]) == 3
    code, report, _ = _drill(cli, backups_dir, "--projects-dir", projects_dir, "-p", CARDIAC)
    assert code == 0
    assert {p for item in report["archives"] for p in item["projects"]} == {CARDIAC}
    both = cli("drill", backups_dir, "--projects-dir", projects_dir, "--all", "--archives", "2")
    assert both.exit_code == 2 and both.stderr.count("\n") == 1


def test_choose_archives_takes_the_newest_of_each_label(tmp_path: Path) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    names = [
        "all_projects_backup_20260101_000000.zip",
        "all_projects_backup_20260102_000000.zip",
        "all_projects_backup_20260103_000000.zip",
        "K241234_cardiac_monitor_backup_20260101_000000.zip",
    ]
    for name in names:
        (folder / name).write_bytes(b"")
    stored = open_location(folder).archives()
    chosen = [a.name for a in choose_archives(stored, rng=random.Random(1))]
    assert len(chosen) == 3 and {names[2], names[3]} <= set(chosen)  # newest of each label
    assert (set(chosen) - {names[2], names[3]}) <= set(names[:2])  # and one older
    assert [a.name for a in choose_archives(stored, count=1)] == [names[2]]


def test_an_encrypted_archive_is_drilled_with_its_key(
    cli: CliCall, projects_dir: Path, backups_dir: Path, tmp_path: Path
) -> None:
    key = tmp_path / "age.key"
    public = json.loads(cli("key", "generate", key, "--json").stdout)["public_key"]
    backup_json(cli, "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
                "--encrypt-to", public)  # fmt: skip
    code, report, _ = _drill(cli, backups_dir, "--projects-dir", projects_dir)
    assert code == 5  # no key: said, not a damaged archive
    code, report, _ = _drill(cli, backups_dir, "--projects-dir", projects_dir, "-i", key)
    assert code == 0, report
    assert report["no_lock_in"]["status"] == "skipped"


def test_a_drill_of_object_storage(s3: Bucket, cli: CliCall, projects_dir: Path) -> None:
    backup_json(cli, "--all", "--projects-dir", projects_dir, "--output-dir", s3.url)
    code, report, _ = _drill(cli, s3.url, "--projects-dir", projects_dir)
    assert code == 0, report
    assert report["no_lock_in"]["status"] == "ok"
    assert not [p for p in projects_dir.iterdir() if p.name.startswith(DRILL_PREFIX)]


@pytest.mark.parametrize("where", ["missing", "empty"])
def test_nothing_to_drill_is_one_line(
    cli: CliCall, projects_dir: Path, tmp_path: Path, where: str
) -> None:
    folder = tmp_path / "nothing"
    if where == "empty":
        folder.mkdir()
    result = cli("drill", folder, "--projects-dir", projects_dir)
    assert result.exit_code == 2
    assert result.stderr.count("\n") == 1 and "no archives to drill" in result.stderr
