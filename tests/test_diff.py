"""``fda-vault diff``: an archive against the live projects, or two archives."""

from __future__ import annotations

import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import CARDIAC, GLUCOSE, ORTHO, CliCall, FrozenClock, backup_json
from tests.legacy_archives import make_legacy_tar, make_legacy_zip


def _diff(cli: CliCall, *args: str | Path, code: int = 0) -> dict[str, Any]:
    result = cli("diff", *args, "--json")
    assert result.exit_code == code, result.stderr
    data: dict[str, Any] = json.loads(result.stdout)
    return data


def _edit_every_way(root: Path) -> None:
    """One change of each kind, in three projects."""
    (root / CARDIAC / "device_profile.json").write_bytes(b'{"device": "v2"}')  # changed
    (root / CARDIAC / "data_manifest.json").unlink()  # removed
    (root / GLUCOSE / "new_pull.json").write_bytes(b"[]")  # added
    os.chmod(root / ORTHO / "device_profile.json", 0o600)  # metadata only (mode)
    touched = root / GLUCOSE / "device_profile.json"
    os.utime(touched, (1_700_000_000, 1_700_000_000))  # metadata only (time)


def test_archive_against_live_projects_every_kind(
    cli: CliCall, archive: Path, projects_dir: Path
) -> None:
    assert _diff(cli, archive, "--projects-dir", projects_dir)["changed"] == []
    _edit_every_way(projects_dir)
    data = _diff(cli, archive, "--projects-dir", projects_dir)
    assert data["changed"] == [f"{CARDIAC}/device_profile.json"]
    assert data["removed"] == [f"{CARDIAC}/data_manifest.json"]
    assert data["added"] == [f"{GLUCOSE}/new_pull.json"]
    assert sorted(data["metadata_only"]) == sorted(
        [f"{ORTHO}/device_profile.json", f"{GLUCOSE}/device_profile.json"]
    )
    assert data["against_live"] is True
    human = cli("diff", archive, "--projects-dir", projects_dir)
    assert human.exit_code == 0
    assert "1 added, 1 removed, 1 changed, 2 metadata only" in human.stdout
    assert "new_pull.json" in human.stdout and "metadata only" in human.stdout


def test_exit_code_6_only_when_asked_and_different(
    cli: CliCall, archive: Path, projects_dir: Path
) -> None:
    same = cli("diff", archive, "--projects-dir", projects_dir, "--exit-code")
    assert same.exit_code == 0 and "(no differences)" in same.stdout
    (projects_dir / ORTHO / "notes.md").write_bytes(b"x")
    assert cli("diff", archive, "--projects-dir", projects_dir).exit_code == 0
    assert cli("diff", archive, "--projects-dir", projects_dir, "--exit-code").exit_code == 6


def test_same_size_and_time_is_not_read_unless_content(
    cli: CliCall, archive: Path, projects_dir: Path
) -> None:
    """A rewrite that keeps size and mtime (a program resetting it): only --content sees it."""
    target = projects_dir / ORTHO / "device_profile.json"
    before = target.stat()
    target.write_bytes(bytes(b ^ 1 for b in target.read_bytes()))
    os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
    quick = _diff(cli, archive, "--projects-dir", projects_dir)
    assert (quick["changed"], quick["files_read"]) == ([], 0)
    full = _diff(cli, archive, "--projects-dir", projects_dir, "--content")
    assert full["changed"] == [f"{ORTHO}/device_profile.json"]
    assert full["files_read"] > 0


def test_two_archives_and_a_project_selection(
    cli: CliCall, frozen_clock: FrozenClock, projects_dir: Path, backups_dir: Path
) -> None:
    first = Path(backup_json(cli, "--all", "--projects-dir", projects_dir,
                             "--output-dir", backups_dir)["archive"])  # fmt: skip
    _edit_every_way(projects_dir)
    frozen_clock.set(2026, 3, 15, 0, 0, 0)
    second = Path(backup_json(cli, "--all", "--projects-dir", projects_dir,
                              "--output-dir", backups_dir)["archive"])  # fmt: skip
    data = _diff(cli, first, second)
    assert data["against_live"] is False
    assert data["added"] == [f"{GLUCOSE}/new_pull.json"]
    assert data["removed"] == [f"{CARDIAC}/data_manifest.json"]
    assert data["changed"] == [f"{CARDIAC}/device_profile.json"]
    assert len(data["metadata_only"]) == 2
    only = _diff(cli, first, second, "-p", ORTHO)
    assert (only["metadata_only"], only["added"]) == ([f"{ORTHO}/device_profile.json"], [])
    unknown = cli("diff", first, second, "-p", "K000000_nope")
    assert unknown.exit_code == 2


@pytest.mark.parametrize("kind", ["zip", "tar"])
def test_legacy_archives_diff_at_their_precision(
    cli: CliCall, projects_dir: Path, tmp_path: Path, kind: str
) -> None:
    old = tmp_path / "old"
    old.mkdir()
    if kind == "zip":
        made = make_legacy_zip(projects_dir, [CARDIAC, GLUCOSE, ORTHO],
                               old / "all_projects_backup_20250101_000000.zip")  # fmt: skip
    else:
        made = make_legacy_tar(projects_dir, old / "fda_backup_all_projects_20250101_000000_"
                               "000000.tar.gz", when=datetime(2025, 1, 1))  # fmt: skip
    clean = _diff(cli, made, "--projects-dir", projects_dir)
    assert clean["changed"] == clean["metadata_only"] == clean["added"] == [], clean
    (projects_dir / ORTHO / "device_profile.json").write_bytes(b"{}")
    assert _diff(cli, made, "--projects-dir", projects_dir)["changed"] == [
        f"{ORTHO}/device_profile.json"
    ]


def test_a_damaged_archive_is_refused(cli: CliCall, archive: Path, tmp_path: Path) -> None:
    bad = tmp_path / "bad_backup_20260101_000000.zip"
    bad.write_bytes(archive.read_bytes()[:-30])
    result = cli("diff", bad)
    assert result.exit_code == 3
    assert result.stderr.startswith("error: ")
