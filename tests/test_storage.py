"""The owners of the two folders: the archive-name convention, listing, publishing."""

from __future__ import annotations

import os
from datetime import datetime, timezone
from pathlib import Path

import pytest

from fda_vault._errors import UsageError
from fda_vault._storage import (
    BackupsFolder,
    PendingArchive,
    ProjectsFolder,
    archive_label,
    parse_archive_name,
)

UTC = timezone.utc


def test_names_are_made_and_parsed_in_one_place(tmp_path: Path) -> None:
    folder = BackupsFolder(tmp_path)
    started = datetime(2026, 11, 26, 2, 0, 0, tzinfo=UTC)
    name = folder.unused_name("K1", started)
    assert name == "K1_backup_20261126_020000.zip"
    parsed = parse_archive_name(name)
    assert parsed is not None and (parsed.label, parsed.kind, parsed.time) == ("K1", "zip", started)
    (tmp_path / name).write_bytes(b"")
    (tmp_path / "K1_backup_20261126_020000_1.zip.tmp").write_bytes(b"")  # being written
    assert folder.unused_name("K1", started) == "K1_backup_20261126_020000_2.zip"
    tar = parse_archive_name("fda_backup_all_projects_20250101_020304_123456.tar.gz")
    assert tar is not None and (tar.label, tar.stamp, tar.kind) == (
        "all_projects",
        "20250101_020304",
        "legacy-tar",
    )
    assert parse_archive_name("notes.zip") is None
    assert parse_archive_name("K1_backup_20269999_999999.zip").time is None  # type: ignore[union-attr]
    assert archive_label(["a"], False) == "a"
    assert archive_label(["a", "b"], False) == "multi_project"
    assert archive_label(["a", "b"], True) == "all_projects"


def test_listing_takes_only_files_named_like_archives(tmp_path: Path) -> None:
    (tmp_path / "K1_backup_20260101_000000.zip").write_bytes(b"12")
    (tmp_path / "K2_backup_20260101_000000.zip").mkdir()
    os.symlink(
        tmp_path / "K1_backup_20260101_000000.zip", tmp_path / "K3_backup_20260101_000000.zip"
    )
    (tmp_path / "holiday.zip").write_bytes(b"")
    listed = BackupsFolder(tmp_path).archives()
    assert [(a.name, a.size) for a in listed] == [("K1_backup_20260101_000000.zip", 2)]
    assert BackupsFolder(tmp_path / "not-yet").archives() == []
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(UsageError):
        BackupsFolder(tmp_path / "file").archives()


def write_pending(pending: PendingArchive, data: bytes) -> None:
    """Write ``data`` as an archive being written is (open, write, finish)."""
    fp = pending.open(len(data))
    fp.write(data)
    pending.finish(fp)


def test_publish_never_replaces_and_temps_are_cleaned(tmp_path: Path) -> None:
    tmp_path = tmp_path / "backups"
    tmp_path.mkdir()
    folder = BackupsFolder(tmp_path)
    name = "K1_backup_20260101_000000.zip"
    with folder.new_archive(name) as pending:
        write_pending(pending, b"new")
        tmp = pending.readable
        final = folder.publish(pending, name)
    assert final.read_bytes() == b"new" and not tmp.exists()
    with folder.new_archive(name) as pending:
        write_pending(pending, b"other")
        with pytest.raises(FileExistsError):
            folder.publish(pending, name)
    assert final.read_bytes() == b"new" and not tmp.exists()
    (tmp_path / "K9_backup_20260101_000000.zip.tmp").write_bytes(b"left by kill -9")
    folder.remove_stale_temps()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]
    assert folder.delete(name) and not folder.delete(name)


def test_projects_are_the_plain_sub_folders(tmp_path: Path) -> None:
    tmp_path = tmp_path / "projects"
    for name in ("K1", "K2", ".cache", "backups", "elsewhere"):
        (tmp_path / name).mkdir(parents=True)
    (tmp_path / "README.txt").write_bytes(b"")
    assert ProjectsFolder(tmp_path).projects(tmp_path / "elsewhere") == ["K1", "K2"]
    assert ProjectsFolder(tmp_path).finish_interrupted() == []
    assert sorted(p.name for p in tmp_path.iterdir())[-1] == "elsewhere"  # nothing written
