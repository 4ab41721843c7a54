"""``list``: the backups folder newest first, and one archive's contents from its manifest."""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import pytest

from fda_vault._backup import backup
from fda_vault._catalog import ARCHIVE_NAME_RE, describe_archive, list_backups
from fda_vault._errors import ExitCode, IntegrityError, UsageError
from tests.conftest import CARDIAC, GLUCOSE, ORTHO, FrozenClock, cardiac_files, glucose_files


@pytest.fixture
def three_backups(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock
) -> dict[str, Path]:
    """Backups made at known times, deliberately not in chronological order of creation."""
    made = {}
    frozen_clock.set(2026, 2, 1, 9, 0, 0)
    made["middle"] = backup([ORTHO], projects_dir=projects_dir, output_dir=backups_dir)
    frozen_clock.set(2026, 3, 1, 9, 0, 0)
    made["newest"] = backup(all_projects=True, projects_dir=projects_dir, output_dir=backups_dir)
    frozen_clock.set(2025, 12, 31, 23, 59, 59)
    made["oldest"] = backup([CARDIAC, GLUCOSE], projects_dir=projects_dir, output_dir=backups_dir)
    return {key: Path(result.archive) for key, result in made.items()}


def test_backups_are_listed_newest_first(three_backups: dict[str, Path], backups_dir: Path) -> None:
    listing = list_backups(backups_dir)
    assert listing.backups_dir == str(backups_dir)
    assert [b.file for b in listing.backups] == [
        three_backups["newest"].name,
        three_backups["middle"].name,
        three_backups["oldest"].name,
    ]
    newest, middle, oldest = listing.backups
    assert newest.label == "all_projects"
    assert newest.projects == sorted([CARDIAC, GLUCOSE, ORTHO])
    assert newest.created == "2026-03-01T09:00:00+00:00"
    assert middle.label == ORTHO
    assert middle.projects == [ORTHO]
    assert middle.files == 1
    assert oldest.label == "multi_project"
    assert oldest.created == "2025-12-31T23:59:59+00:00"


def test_summary_sizes_come_from_manifest_and_disk(
    three_backups: dict[str, Path], backups_dir: Path
) -> None:
    summary = next(
        b for b in list_backups(backups_dir).backups if b.file == three_backups["oldest"].name
    )
    data = [*cardiac_files().values(), *glucose_files().values()]
    assert summary.files == sum(1 for d in data if d is not None)
    assert summary.data_bytes == sum(len(d) for d in data if d is not None)
    assert summary.archive_bytes == three_backups["oldest"].stat().st_size
    assert summary.path == str(three_backups["oldest"])
    assert summary.error is None


def test_suffixed_archives_of_the_same_second_are_listed(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock
) -> None:
    first = backup([ORTHO], projects_dir=projects_dir, output_dir=backups_dir)
    second = backup([ORTHO], projects_dir=projects_dir, output_dir=backups_dir)
    files = {b.file for b in list_backups(backups_dir).backups}
    assert files == {Path(first.archive).name, Path(second.archive).name}


def test_other_files_are_ignored_and_damaged_archives_flagged(
    three_backups: dict[str, Path], backups_dir: Path
) -> None:
    (backups_dir / "notes.txt").write_text("hello")
    (backups_dir / "holiday.zip").write_bytes(b"PK\x05\x06" + b"\0" * 18)
    (backups_dir / "x_backup_20260101_000000.zip.tmp").write_bytes(b"partial")
    (backups_dir / "dir_backup_20260101_000000.zip").mkdir()
    broken = backups_dir / "broken_backup_20270101_000000.zip"
    broken.write_bytes(b"not a zip at all")
    listing = list_backups(backups_dir)
    assert [b.file for b in listing.backups] == [
        broken.name,
        three_backups["newest"].name,
        three_backups["middle"].name,
        three_backups["oldest"].name,
    ]
    damaged = listing.backups[0]
    assert damaged.error
    assert damaged.created is None
    assert damaged.archive_bytes == len(b"not a zip at all")
    assert all(b.error is None for b in listing.backups[1:])


def test_an_empty_folder_lists_nothing(tmp_path: Path) -> None:
    assert list_backups(tmp_path).backups == []


def test_a_missing_folder_has_no_backups_yet(tmp_path: Path) -> None:
    assert list_backups(tmp_path / "nope").backups == []


def test_a_file_instead_of_the_folder_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "file").write_bytes(b"")
    with pytest.raises(UsageError) as info:
        list_backups(tmp_path / "file")
    assert info.value.exit_code == ExitCode.USAGE


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("all_projects_backup_20260101_120000.zip", "all_projects"),
        ("K1_backup_x_backup_20260101_120000_3.zip", "K1_backup_x"),
        ("glycémie_backup_20260101_120000.zip", "glycémie"),
    ],
)
def test_archive_name_pattern(name: str, label: str) -> None:
    match = ARCHIVE_NAME_RE.match(name)
    assert match is not None
    assert match["label"] == label


@pytest.mark.parametrize(
    "name", ["backup_20260101_120000.zip", "p_backup_2026_120000.zip", "p_backup_20260101.zip"]
)
def test_names_that_are_not_archives(name: str) -> None:
    assert ARCHIVE_NAME_RE.match(name) is None


def test_describe_archive_counts_per_project(archive: Path) -> None:
    contents = describe_archive(archive)
    assert contents.archive == str(archive)
    assert [p.name for p in contents.projects] == sorted([CARDIAC, GLUCOSE, ORTHO])
    by_name = {p.name: p for p in contents.projects}
    cardiac = [d for d in cardiac_files().values() if d is not None]
    assert by_name[CARDIAC].files == len(cardiac)
    assert by_name[CARDIAC].bytes == sum(len(d) for d in cardiac)
    assert by_name[CARDIAC].empty_dirs == 1
    assert by_name[GLUCOSE].empty_dirs == 1
    assert by_name[ORTHO].files == 1
    assert by_name[ORTHO].empty_dirs == 0
    assert contents.total_files == sum(p.files for p in contents.projects)
    assert contents.total_bytes == sum(p.bytes for p in contents.projects)
    assert contents.archive_bytes == archive.stat().st_size
    assert contents.created_by.startswith("fda-vault ")
    assert contents.backup_version.startswith("1.")
    assert contents.file_list is None


def test_describe_archive_with_files(archive: Path, projects_dir: Path) -> None:
    contents = describe_archive(archive, with_files=True)
    assert contents.file_list is not None
    listed = {e.path: (e.size, e.sha256) for e in contents.file_list}
    pdf = projects_dir / CARDIAC / "pdfs" / "K201234_summary.pdf"
    data = pdf.read_bytes()
    assert listed[f"{CARDIAC}/pdfs/K201234_summary.pdf"] == (
        len(data),
        hashlib.sha256(data).hexdigest(),
    )
    assert len(listed) == contents.total_files


def test_describe_reads_only_the_manifest(archive: Path) -> None:
    """Damaged data does not slow or stop a listing: list never reads file data."""
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(f"projects/{CARDIAC}/pdfs/K201234_summary.pdf")
        data_at = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra) + 3
    raw = bytearray(archive.read_bytes())
    raw[data_at] ^= 0xFF
    archive.write_bytes(bytes(raw))
    assert describe_archive(archive).total_files > 0


def test_describe_archive_errors(tmp_path: Path) -> None:
    with pytest.raises(UsageError):
        describe_archive(tmp_path / "missing.zip")
    not_zip = tmp_path / "x.zip"
    not_zip.write_bytes(b"text")
    with pytest.raises(IntegrityError) as info:
        describe_archive(not_zip)
    assert info.value.exit_code == ExitCode.INTEGRITY
    foreign = tmp_path / "foreign.zip"
    with zipfile.ZipFile(foreign, "w") as zf:
        zf.writestr("a.txt", "a")
    with pytest.raises(IntegrityError, match=r"metadata\.json"):
        describe_archive(foreign)
