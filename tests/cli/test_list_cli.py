"""``fda-vault list`` end to end: the backups folder, one archive's contents, --files."""

from __future__ import annotations

import errno
import hashlib
import json
import os
from pathlib import Path

import pytest

from fda_vault._catalog import ArchiveContents, BackupList
from tests.conftest import CARDIAC, GLUCOSE, ORTHO, CliCall, FrozenClock, backup_json


@pytest.fixture
def dated_archives(
    cli: CliCall, projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock
) -> list[Path]:
    """Three archives, returned newest first (created in another order)."""
    made = {}
    for stamp, args in [
        ((2026, 5, 1, 8, 0, 0), ["-p", ORTHO]),
        ((2026, 7, 1, 8, 0, 0), ["--all"]),
        ((2026, 1, 1, 8, 0, 0), ["-p", CARDIAC, "-p", GLUCOSE]),
    ]:
        frozen_clock.set(*stamp)
        data = backup_json(cli, *args, "--projects-dir", projects_dir, "--output-dir", backups_dir)
        made[stamp] = Path(data["archive"])
    return [made[k] for k in sorted(made, reverse=True)]


def test_folder_table_is_newest_first(
    cli: CliCall, dated_archives: list[Path], backups_dir: Path
) -> None:
    result = cli("list", "--backups-dir", backups_dir)
    assert result.exit_code == 0, result.stderr
    positions = [result.stdout.index(p.name) for p in dated_archives]
    assert positions == sorted(positions)
    for heading in ("file", "created", "projects", "files", "data", "archive"):
        assert heading in result.stdout
    assert "2026-07-01 08:00:00" in result.stdout  # shown in UTC


def test_folder_json_matches_the_model(
    cli: CliCall, dated_archives: list[Path], backups_dir: Path
) -> None:
    result = cli("list", "--backups-dir", backups_dir, "--json")
    assert result.exit_code == 0
    listing = BackupList.model_validate_json(result.stdout)
    assert [b.file for b in listing.backups] == [p.name for p in dated_archives]
    assert [b.archive_bytes for b in listing.backups] == [p.stat().st_size for p in dated_archives]
    assert listing.backups[0].projects == sorted([CARDIAC, GLUCOSE, ORTHO])


def test_folder_from_environment_and_default(
    cli: CliCall, projects_dir: Path, dated_archives: list[Path], backups_dir: Path
) -> None:
    via_env = cli("list", "--json", env={"FDA_VAULT_BACKUP_DIR": str(backups_dir)})
    assert via_env.exit_code == 0
    assert len(json.loads(via_env.stdout)["backups"]) == 3
    backup_json(cli, "-p", ORTHO, "--projects-dir", projects_dir)  # into <root>/backups
    via_root = cli("list", "--projects-dir", projects_dir, "--json")
    assert via_root.exit_code == 0
    assert json.loads(via_root.stdout)["backups_dir"] == str(projects_dir / "backups")
    assert len(json.loads(via_root.stdout)["backups"]) == 1


def test_damaged_archive_is_flagged_in_the_folder_listing(
    cli: CliCall, dated_archives: list[Path], backups_dir: Path
) -> None:
    broken = backups_dir / "broken_backup_20990101_000000.zip"
    broken.write_bytes(b"garbage")
    result = cli("list", "--backups-dir", backups_dir)
    assert result.exit_code == 0
    assert "DAMAGED" in result.stdout
    assert result.stdout.index(broken.name) < result.stdout.index(dated_archives[0].name)


def test_empty_folder(cli: CliCall, tmp_path: Path) -> None:
    result = cli("list", "--backups-dir", tmp_path)
    assert result.exit_code == 0
    assert "no backups" in result.stdout
    as_json = cli("list", "--backups-dir", tmp_path, "--json")
    assert as_json.exit_code == 0
    assert BackupList.model_validate_json(as_json.stdout).backups == []


def test_before_the_first_backup_there_are_no_backups_yet(cli: CliCall, tmp_path: Path) -> None:
    """Field trial: ``backups folder not found``, exit 2, before the first backup."""
    result = cli("list", "--backups-dir", tmp_path / "none")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.strip() == (
        f"no backups yet in {tmp_path / 'none'}; `fda-vault backup --all` will write them there"
    )
    as_json = cli("list", "--backups-dir", tmp_path / "none", "--json")
    assert as_json.exit_code == 0
    assert json.loads(as_json.stdout)["backups"] == []


def test_a_file_instead_of_the_backups_folder_exits_2(cli: CliCall, tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    result = cli("list", "--backups-dir", tmp_path / "file", "--json")
    assert result.exit_code == 2
    assert json.loads(result.stdout)["error"]["exit_code"] == 2
    assert str(tmp_path / "file") in result.stderr


def test_archive_contents_per_project(cli: CliCall, archive: Path, projects_dir: Path) -> None:
    result = cli("list", archive)
    assert result.exit_code == 0, result.stderr
    for name in (CARDIAC, GLUCOSE, ORTHO):
        assert name in result.stdout
    assert "total" in result.stdout
    # Without --files, no checksum is printed.
    profile = (projects_dir / ORTHO / "device_profile.json").read_bytes()
    assert hashlib.sha256(profile).hexdigest() not in result.stdout


def test_archive_contents_json(cli: CliCall, archive: Path, projects_dir: Path) -> None:
    result = cli("list", archive, "--json")
    assert result.exit_code == 0
    contents = ArchiveContents.model_validate_json(result.stdout)
    assert contents.file_list is None
    by_name = {p.name: p for p in contents.projects}
    assert set(by_name) == {CARDIAC, GLUCOSE, ORTHO}
    ortho_files = [p for p in (projects_dir / ORTHO).rglob("*") if p.is_file()]
    assert by_name[ORTHO].files == len(ortho_files)
    assert by_name[ORTHO].bytes == sum(p.stat().st_size for p in ortho_files)


def test_files_flag_lists_every_file_with_size_and_sha256(
    cli: CliCall, archive: Path, projects_dir: Path
) -> None:
    result = cli("list", archive, "--files")
    assert result.exit_code == 0, result.stderr
    for project in (CARDIAC, GLUCOSE, ORTHO):
        for path in (projects_dir / project).rglob("*"):
            if path.is_file():
                rel = f"{project}/{path.relative_to(projects_dir / project).as_posix()}"
                line = next(x for x in result.stdout.splitlines() if rel in x)
                assert hashlib.sha256(path.read_bytes()).hexdigest() in line
                assert f" {path.stat().st_size} " in line


def test_files_flag_json(cli: CliCall, archive: Path, projects_dir: Path) -> None:
    result = cli("list", archive, "--files", "--json")
    assert result.exit_code == 0
    contents = ArchiveContents.model_validate_json(result.stdout)
    assert contents.file_list is not None
    listed = {e.path: e.sha256 for e in contents.file_list}
    expected = {
        f"{p.relative_to(projects_dir).as_posix()}": hashlib.sha256(p.read_bytes()).hexdigest()
        for project in (CARDIAC, GLUCOSE, ORTHO)
        for p in (projects_dir / project).rglob("*")
        if p.is_file()
    }
    assert listed == expected


def test_missing_archive_exits_2(cli: CliCall, tmp_path: Path) -> None:
    result = cli("list", tmp_path / "nope.zip")
    assert result.exit_code == 2
    assert "Traceback" not in result.stderr
    assert "nope.zip" in result.stderr


@pytest.mark.parametrize("content", [b"", b"not a zip"], ids=["empty", "text"])
def test_unreadable_archive_exits_3(cli: CliCall, tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "x_backup_20260101_000000.zip"
    path.write_bytes(content)
    result = cli("list", path, "--json")
    assert result.exit_code == 3
    error = json.loads(result.stdout)["error"]
    assert error["kind"] == "integrity"
    assert error["exit_code"] == 3
    assert "Traceback" not in result.stderr


def test_io_error_while_reading_the_manifest_exits_1(
    cli: CliCall, archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def failing_pread(fd: int, n: int, offset: int) -> bytes:
        raise OSError(errno.EIO, "Input/output error")

    # Members are read with os.pread: a dying disk fails exactly there.
    monkeypatch.setattr(os, "pread", failing_pread)
    result = cli("list", archive, "--json")
    assert result.exit_code == 1
    assert json.loads(result.stdout)["error"]["exit_code"] == 1
    assert "Traceback" not in result.stderr
    assert "Input/output error" in result.stderr
