"""Repeat backups: unchanged files copied from the parent archive, every archive whole.

The backup's clock is frozen (``frozen_clock``) at chosen moments after the files were
written, so the race rule (a file must be 3 s older than the parent's start) is met or
not met on purpose, with the real rule and the real file times.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import shutil
import subprocess
import tempfile
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fda_vault._backup import BackupResult, backup
from fda_vault._manifest import BackupManifest
from fda_vault._packer import Packer
from fda_vault._verified import VerificationRecords, file_identity
from fda_vault._verify import verify_archive
from tests.conftest import CARDIAC, GLUCOSE, FrozenClock
from tests.zipbytes import flip_member_byte, member_data_offset

PDF = f"{CARDIAC}/pdfs/K201234_summary.pdf"
PROFILE = f"{CARDIAC}/device_profile.json"


def _newest_change(root: Path) -> datetime:
    """The latest mtime or ctime of anything under ``root``."""
    newest = max(
        max(st.st_mtime_ns, st.st_ctime_ns) for st in (p.lstat() for p in [root, *root.rglob("*")])
    )
    return datetime.fromtimestamp(newest / 1e9, timezone.utc)


def _backup_at(
    clock: FrozenClock, when: datetime, projects: Path, out: Path, **kwargs: Any
) -> BackupResult:
    clock.now = when
    return backup(all_projects=True, projects_dir=projects, output_dir=out, **kwargs)


def _manifest(archive: str | Path) -> BackupManifest:
    with zipfile.ZipFile(archive) as zf:
        return BackupManifest.model_validate_json(zf.read("metadata.json"))


def _sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _stored_bytes(archive: str | Path, member: str) -> bytes:
    start, length = member_data_offset(Path(archive), member)
    with open(archive, "rb") as fp:
        fp.seek(start)
        return fp.read(length)


def _restorable_without_us(archive: Path, tmp_path: Path) -> None:
    """unzip -t, Python's zipfile, unzip + sha256sum -c and our verify all pass."""
    tested = subprocess.run(["unzip", "-tq", str(archive)], capture_output=True, text=True)
    assert tested.returncode == 0, tested.stdout + tested.stderr
    with zipfile.ZipFile(archive) as zf:
        assert zf.testzip() is None
    extract = tmp_path / f"unzip-{archive.stem}"
    subprocess.run(["unzip", "-q", str(archive), "-d", str(extract)], check=True)
    checked = subprocess.run(["sha256sum", "-c", "--quiet", "checksums.txt"], cwd=extract,
                             capture_output=True, text=True, check=False)  # fmt: skip
    assert checked.returncode == 0, checked.stdout + checked.stderr
    shutil.rmtree(extract)
    report = verify_archive(archive)
    assert report.ok, report.problems


@pytest.fixture
def settled(projects_dir: Path) -> datetime:
    """A moment well after every file under ``projects_dir`` last changed."""
    return _newest_change(projects_dir) + timedelta(minutes=1)


def test_a_repeat_backup_copies_every_unchanged_member_as_stored(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock, settled: datetime,
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    parent = _backup_at(frozen_clock, settled, projects_dir, backups_dir)
    assert parent.reused_files == 0 and parent.full_read == "first backup of this label"
    read: list[str] = []
    original_read = Packer._read

    def spy(self: Packer, src: Any, attempt: int) -> None:
        read.append(src.key)
        original_read(self, src, attempt)

    monkeypatch.setattr(Packer, "_read", spy)
    child = _backup_at(frozen_clock, settled + timedelta(minutes=1), projects_dir, backups_dir)
    assert read == []  # no source file was opened
    assert child.archive_sha256 == _sha256(child.archive)  # hashed as it was written
    assert child.reused_files == child.files == parent.files
    assert child.reused_bytes == child.bytes == parent.bytes
    assert child.parent == Path(parent.archive).name and child.full_read is None
    assert child.archive != parent.archive
    manifest = _manifest(child.archive)
    parent_sha = _sha256(parent.archive)
    assert manifest.parent is not None and manifest.parent.sha256 == parent_sha
    assert manifest.last_full_read == _manifest(parent.archive).last_full_read
    assert {e.reused_from for e in manifest.files} == {parent_sha}
    for entry in _manifest(parent.archive).files:
        name = f"projects/{entry.path}"
        assert _stored_bytes(child.archive, name) == _stored_bytes(parent.archive, name)
    _restorable_without_us(Path(child.archive), tmp_path)


def test_changes_are_read_and_everything_else_copied(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock, settled: datetime,
    tmp_path: Path,
) -> None:  # fmt: skip
    parent = _backup_at(frozen_clock, settled, projects_dir, backups_dir)
    cardiac = projects_dir / CARDIAC
    profile = cardiac / "device_profile.json"
    old = profile.stat()
    # Same size, mtime put back (as some tools do): only the ctime tells.
    profile.write_bytes(profile.read_bytes().upper())
    os.utime(profile, ns=(old.st_atime_ns, old.st_mtime_ns))
    assert profile.stat().st_size == old.st_size
    (cardiac / "data_manifest.json").chmod(0o600)  # metadata only
    (cardiac / "empty.txt").rename(cardiac / "renamed.txt")
    (cardiac / "drafts" / "predicate_comparison.md").unlink()
    (cardiac / "new.md").write_bytes(b"# new\n")
    later = _newest_change(projects_dir) + timedelta(minutes=1)
    child = _backup_at(frozen_clock, later, projects_dir, backups_dir)
    assert child.archive_sha256 == _sha256(child.archive)
    manifest = _manifest(child.archive)
    fresh = {e.path for e in manifest.files if e.reused_from is None}
    assert fresh == {
        PROFILE,
        f"{CARDIAC}/data_manifest.json",
        f"{CARDIAC}/renamed.txt",
        f"{CARDIAC}/new.md",
    }
    # Of the parent's files: one deleted, three changed (content, mode, name) are not copied.
    assert child.reused_files == len(manifest.files) - 4 == parent.files - 1 - 3
    with zipfile.ZipFile(child.archive) as zf:
        assert zf.read(f"projects/{PROFILE}") == profile.read_bytes()
        assert f"projects/{CARDIAC}/drafts/predicate_comparison.md" not in zf.namelist()
    modes = {e.path: e.mode for e in manifest.files}
    assert modes[f"{CARDIAC}/data_manifest.json"] == 0o600
    _restorable_without_us(Path(child.archive), tmp_path)


def test_files_not_3_seconds_older_than_the_parent_are_read_again(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock
) -> None:
    newest = _newest_change(projects_dir)
    # The parent started 2 s after the last change: within the race window.
    _backup_at(frozen_clock, newest + timedelta(seconds=2), projects_dir, backups_dir)
    racy = _backup_at(frozen_clock, newest + timedelta(minutes=1), projects_dir, backups_dir)
    assert racy.reused_files == 0
    assert racy.full_read is not None and "3 s" in racy.full_read
    # That child started a minute after: its own child may copy everything from it.
    settled = _backup_at(frozen_clock, newest + timedelta(minutes=2), projects_dir, backups_dir)
    assert settled.reused_files == settled.files
    assert settled.parent == Path(racy.archive).name


def test_a_file_rewritten_right_after_the_parent_with_same_size_and_mtime_is_read(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock
) -> None:
    profile = projects_dir / CARDIAC / "device_profile.json"
    before = profile.stat()
    parent = _backup_at(
        frozen_clock, _newest_change(projects_dir) + timedelta(seconds=1), projects_dir,
        backups_dir,
    )  # fmt: skip
    profile.write_bytes(profile.read_bytes().replace(b"II", b"I2"))
    os.utime(profile, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert profile.stat().st_size == before.st_size
    child = _backup_at(
        frozen_clock, _newest_change(projects_dir) + timedelta(minutes=1), projects_dir,
        backups_dir,
    )  # fmt: skip
    assert child.parent is None or child.parent == Path(parent.archive).name
    with zipfile.ZipFile(child.archive) as zf:
        assert zf.read(f"projects/{PROFILE}") == profile.read_bytes()
    assert next(e for e in _manifest(child.archive).files if e.path == PROFILE).reused_from is None


def test_a_damaged_member_in_the_parent_is_packed_fresh_with_a_warning(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock, settled: datetime,
    tmp_path: Path,
) -> None:  # fmt: skip
    parent = Path(_backup_at(frozen_clock, settled, projects_dir, backups_dir).archive)
    # Silent decay after the check: the bytes change, the record still trusts the file.
    flip_member_byte(parent, f"projects/{PDF}")
    records = VerificationRecords()
    records.add(parent, file_identity(parent))
    records.save()
    child = _backup_at(frozen_clock, settled + timedelta(minutes=1), projects_dir, backups_dir)
    assert child.archive_sha256 == _sha256(child.archive)  # a rollback voids the tap
    (warning,) = [w for w in child.warnings if w.reason == "parent_damaged"]
    assert warning.path == str(parent) and PDF in warning.detail
    assert child.reused_files == child.files - 1
    manifest = _manifest(child.archive)
    assert next(e for e in manifest.files if e.path == PDF).reused_from is None
    with zipfile.ZipFile(child.archive) as zf:
        assert zf.read(f"projects/{PDF}") == (projects_dir / PDF).read_bytes()
    _restorable_without_us(Path(child.archive), tmp_path)


def test_rehash_reads_every_file(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock, settled: datetime
) -> None:
    first = _backup_at(frozen_clock, settled, projects_dir, backups_dir)
    again = _backup_at(
        frozen_clock, settled + timedelta(minutes=1), projects_dir, backups_dir, rehash=True
    )
    assert again.reused_files == 0 and again.full_read == "--rehash"
    manifest = _manifest(again.archive)
    assert manifest.parent is None and all(e.reused_from is None for e in manifest.files)
    assert manifest.last_full_read == manifest.backup_timestamp
    assert {e.path: e.sha256 for e in manifest.files} == {
        e.path: e.sha256 for e in _manifest(first.archive).files
    }


def test_full_every_counts_days_from_the_last_backup_that_read_everything(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock, settled: datetime
) -> None:
    def after(days: float, every: int) -> BackupResult:
        return _backup_at(
            frozen_clock, settled + timedelta(days=days), projects_dir, backups_dir,
            full_every_days=every,
        )  # fmt: skip

    full = after(0, 2)
    one = after(1, 2)
    assert one.reused_files == one.files  # 1 day since the full read
    assert _manifest(one.archive).last_full_read == _manifest(full.archive).last_full_read
    # 2.5 days after the full read, counted through a parent that copied everything.
    two = after(2.5, 2)
    assert two.reused_files == 0 and two.full_read is not None
    assert "--full-every" in two.full_read
    assert _manifest(two.archive).last_full_read == _manifest(two.archive).backup_timestamp
    three = after(3, 2)
    assert three.reused_files == three.files  # counted from `two` now
    assert after(3.1, 0).reused_files == 0


def test_skip_if_unchanged_writes_nothing_until_something_changes(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock, settled: datetime
) -> None:
    parent = _backup_at(frozen_clock, settled, projects_dir, backups_dir)
    before = sorted(backups_dir.iterdir())
    same = _backup_at(
        frozen_clock, settled + timedelta(minutes=1), projects_dir, backups_dir,
        skip_if_unchanged=True,
    )  # fmt: skip
    assert same.unchanged and same.archive == parent.archive
    assert same.parent == Path(parent.archive).name
    assert same.archive_sha256 == _sha256(parent.archive)
    assert sorted(backups_dir.iterdir()) == before
    (projects_dir / GLUCOSE / "device_profile.json").unlink()  # a deletion is a change
    changed = _backup_at(
        frozen_clock, settled + timedelta(minutes=2), projects_dir, backups_dir,
        skip_if_unchanged=True,
    )  # fmt: skip
    assert not changed.unchanged and changed.archive != parent.archive
    assert changed.reused_files == changed.files == parent.files - 1


@pytest.mark.parametrize("change", ["empty_folder", "symlink"])
def test_skip_if_unchanged_sees_folders_and_left_out_entries_too(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock, settled: datetime,
    change: str,
) -> None:  # fmt: skip
    parent = _backup_at(frozen_clock, settled, projects_dir, backups_dir)
    if change == "empty_folder":
        (projects_dir / GLUCOSE / "new_empty").mkdir()
    else:
        (projects_dir / GLUCOSE / "link").symlink_to("device_profile.json")
    later = _newest_change(projects_dir) + timedelta(minutes=1)
    again = _backup_at(frozen_clock, later, projects_dir, backups_dir, skip_if_unchanged=True)
    # Every file is copied, but the new archive differs: it is written.
    assert not again.unchanged and again.archive != parent.archive
    assert again.reused_files == again.files == parent.files


def test_skip_if_unchanged_with_no_parent_writes_the_first_archive(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock, settled: datetime
) -> None:
    first = _backup_at(frozen_clock, settled, projects_dir, backups_dir, skip_if_unchanged=True)
    assert not first.unchanged and Path(first.archive).is_file()


def test_the_parent_is_the_newest_backup_known_intact(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock, settled: datetime
) -> None:
    intact = _backup_at(frozen_clock, settled, projects_dir, backups_dir)
    unchecked = _backup_at(
        frozen_clock, settled + timedelta(minutes=1), projects_dir, backups_dir, verify=False
    )
    child = _backup_at(frozen_clock, settled + timedelta(minutes=2), projects_dir, backups_dir)
    assert unchecked.archive != intact.archive
    assert child.parent == Path(intact.archive).name
    assert child.reused_files == child.files
    # Another label's archives are never a parent.
    single = backup(
        [CARDIAC], projects_dir=projects_dir, output_dir=backups_dir
    )  # the clock is still frozen at settled + 2 min
    assert single.parent is None and single.full_read == "first backup of this label"


def test_a_parent_pruned_while_it_is_read_is_not_a_failure(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock, settled: datetime,
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
) -> None:  # fmt: skip
    parent = Path(_backup_at(frozen_clock, settled, projects_dir, backups_dir).archive)
    original = Packer.copy_reused

    def prune_first(self: Packer, *args: Any) -> Any:
        parent.unlink()  # as a prune in another process would (the file stays open here)
        return original(self, *args)

    monkeypatch.setattr(Packer, "copy_reused", prune_first)
    child = _backup_at(frozen_clock, settled + timedelta(minutes=1), projects_dir, backups_dir)
    assert child.reused_files == child.files
    _restorable_without_us(Path(child.archive), tmp_path)


def test_a_parent_gone_before_it_is_opened_means_a_full_read(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock, settled: datetime,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    parent = Path(_backup_at(frozen_clock, settled, projects_dir, backups_dir).archive)
    reuse = importlib.import_module("fda_vault._reuse")
    original = reuse.open_archive

    def pruned(path: Path, *args: Any) -> Any:
        parent.unlink()
        return original(path, *args)

    monkeypatch.setattr(reuse, "open_archive", pruned)
    child = _backup_at(frozen_clock, settled + timedelta(minutes=1), projects_dir, backups_dir)
    assert child.reused_files == 0 and verify_archive(Path(child.archive)).ok
    assert [w.reason for w in child.warnings] == ["parent_unusable"]
    assert str(parent) in child.warnings[0].path


def test_a_moved_tree_is_read_in_full(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock, settled: datetime,
    tmp_path: Path,
) -> None:  # fmt: skip
    _backup_at(frozen_clock, settled, projects_dir, backups_dir)
    # A copy (as a restore makes): new inodes, every identity differs.
    moved = tmp_path / "moved"
    shutil.copytree(projects_dir, moved, symlinks=True)
    shutil.rmtree(projects_dir)
    moved.rename(projects_dir)
    later = _newest_change(projects_dir) + timedelta(minutes=1)
    child = _backup_at(frozen_clock, later, projects_dir, backups_dir)
    assert child.reused_files == 0 and child.full_read is not None


# --- property: reused and fresh members mixed over random trees and edits ------------

_NAMES = st.sampled_from(["a.json", "b.md", "c.pdf", "d/e.csv", "d/f.txt", "g/h/i.bin"])
_EDITS = st.sampled_from(["same_size", "mode", "rename", "delete", "add", "none"])


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    files=st.dictionaries(_NAMES, st.binary(min_size=0, max_size=3000), min_size=1),
    edits=st.lists(st.tuples(_EDITS, st.integers(0, 5)), max_size=6),
    racy_parent=st.booleans(),
)
def test_reused_and_fresh_members_always_give_the_live_tree(
    frozen_clock: FrozenClock,
    files: dict[str, bytes],
    edits: list[tuple[str, int]],
    racy_parent: bool,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        projects, out = Path(tmp, "projects"), Path(tmp, "backups")
        for rel, data in files.items():
            path = projects / "K1" / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
        newest = _newest_change(projects)
        # A parent that began 1 s after the last write (within the race window) or later.
        start = newest + (timedelta(seconds=1) if racy_parent else timedelta(minutes=1))
        _backup_at(frozen_clock, start, projects, out)
        touched: set[str] = set()
        for kind, pick in edits:
            live = sorted(p for p in (projects / "K1").rglob("*") if p.is_file())
            if not live:
                break
            target = live[pick % len(live)]
            if kind in {"same_size", "mode", "rename", "delete"}:
                touched.add(target.relative_to(projects).as_posix())
            if kind == "same_size":
                old = target.stat()
                data = target.read_bytes()
                target.write_bytes(bytes(b ^ 0x5A for b in data))
                os.utime(target, ns=(old.st_atime_ns, old.st_mtime_ns))
            elif kind == "mode":
                target.chmod(0o600 if target.stat().st_mode & 0o044 else 0o644)
            elif kind == "rename":
                target.rename(target.with_name(f"moved_{target.name}"))
            elif kind == "delete":
                target.unlink()
            elif kind == "add":
                target.with_name(f"new_{pick}.txt").write_bytes(b"new %d\n" % pick)
        later = max(start, _newest_change(projects)) + timedelta(minutes=1)
        child = _backup_at(frozen_clock, later, projects, out)
        archive = Path(child.archive)
        assert verify_archive(archive).ok
        live = {p.relative_to(projects).as_posix(): p for p in projects.rglob("*") if p.is_file()}
        manifest = _manifest(archive)
        assert {e.path for e in manifest.files} == set(live)
        with zipfile.ZipFile(archive) as zf:
            assert zf.testzip() is None
            for entry in manifest.files:
                path = live[entry.path]
                assert zf.read(f"projects/{entry.path}") == path.read_bytes()
                assert entry.mode == path.stat().st_mode & 0o777
        reused = {e.path for e in manifest.files if e.reused_from is not None}
        if racy_parent:
            assert reused == set()  # every file was within the parent's window
        else:
            # Every file no edit touched is copied; every touched one still there is read.
            assert reused == set(live) - touched - {p for p in live if "new_" in p or "moved_" in p}
