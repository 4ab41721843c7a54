"""restore(): exact, verified, all-or-nothing (library level)."""

from __future__ import annotations

import importlib
import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import pytest

from fda_vault import backup
from fda_vault._errors import (
    IntegrityError,
    InterruptedByUser,
    LockedError,
    OperationError,
    RefusedError,
    UsageError,
)
from fda_vault._journal import (
    JOURNAL_NAME,
    STAGING_PREFIX,
    Journal,
    finish_interrupted,
    recover_interrupted,
)
from fda_vault._locking import tree_lock
from fda_vault._restore import plan_restore, restore
from tests.conftest import CARDIAC, GLUCOSE, ORTHO, rewrite_archive
from tests.tree import snapshot
from tests.zipbytes import flip_member_byte

# ``fda_vault._restore`` the attribute is the function; the module is in sys.modules.
restore_module = importlib.import_module("fda_vault._restore")


def _leftovers(target: Path) -> list[str]:
    return sorted(
        p.name for p in target.iterdir() if p.name.startswith((STAGING_PREFIX, JOURNAL_NAME))
    )


def _project_snapshot(root: Path) -> dict[str, object]:
    return {p.name: snapshot(p) for p in sorted(root.iterdir()) if not p.name.startswith(".")}


@pytest.fixture
def all_archive(projects_dir: Path, backups_dir: Path) -> Path:
    result = backup(all_projects=True, projects_dir=projects_dir, output_dir=backups_dir)
    return Path(result.archive)


def test_full_restore_recreates_every_project_exactly(
    projects_dir: Path, all_archive: Path, tmp_path: Path
) -> None:
    target = tmp_path / "restored"
    result = restore(all_archive, target_dir=target)
    assert sorted(result.created) == sorted([CARDIAC, GLUCOSE, ORTHO])
    for name in (CARDIAC, GLUCOSE, ORTHO):
        # Same bytes, permission bits and mtimes, empty folders and unicode names included.
        assert snapshot(target / name) == snapshot(projects_dir / name), name
    assert (target / CARDIAC / "drafts" / "empty_section").is_dir()
    assert (target / CARDIAC / "notes" / "réunion_été_📝.md").is_file()
    assert _leftovers(target) == []
    expected_files = sum(
        1
        for name in (CARDIAC, GLUCOSE, ORTHO)
        for p in (projects_dir / name).rglob("*")
        if p.is_file()
    )
    assert result.files == expected_files


def test_selective_restore_touches_only_the_named_project(
    projects_dir: Path, all_archive: Path, tmp_path: Path
) -> None:
    target = tmp_path / "t"
    result = restore(all_archive, target_dir=target, projects=[GLUCOSE])
    assert result.restored == [GLUCOSE]
    assert sorted(p.name for p in target.iterdir() if not p.name.startswith(".")) == [GLUCOSE]
    assert snapshot(target / GLUCOSE) == snapshot(projects_dir / GLUCOSE)


def test_unknown_project_names_what_the_archive_holds(all_archive: Path, tmp_path: Path) -> None:
    with pytest.raises(UsageError) as info:
        restore(all_archive, target_dir=tmp_path / "t", projects=["K000000_nope"])
    assert "K000000_nope" in info.value.message
    assert CARDIAC in info.value.message and ORTHO in info.value.message
    assert not (tmp_path / "t").exists()


def test_overwrite_is_refused_without_consent_and_changes_nothing(
    projects_dir: Path, all_archive: Path
) -> None:
    (projects_dir / CARDIAC / "device_profile.json").write_bytes(b'{"edited": true}\n')
    before = _project_snapshot(projects_dir)
    with pytest.raises(RefusedError) as info:
        restore(all_archive, target_dir=projects_dir)
    assert CARDIAC in info.value.message
    assert _project_snapshot(projects_dir) == before
    assert _leftovers(projects_dir) == []


def test_overwrite_makes_the_project_exactly_the_backup(
    projects_dir: Path, all_archive: Path, tmp_path: Path
) -> None:
    pristine = tmp_path / "pristine"
    shutil.copytree(projects_dir / CARDIAC, pristine, symlinks=True)
    (projects_dir / CARDIAC / "device_profile.json").write_bytes(b"broken")
    (projects_dir / CARDIAC / "new_since_backup.md").write_bytes(b"newer work")
    shutil.rmtree(projects_dir / CARDIAC / "pdfs")
    plan = plan_restore(all_archive, target_dir=projects_dir, projects=[CARDIAC])
    (project,) = plan.projects
    assert project.action == "overwrite"
    assert project.differing == ["device_profile.json"]
    assert project.only_on_disk == ["new_since_backup.md"]
    assert project.only_in_backup == ["pdfs/K201234_summary.pdf"]
    result = restore(all_archive, target_dir=projects_dir, projects=[CARDIAC], overwrite=True)
    assert result.overwritten == [CARDIAC]
    assert snapshot(projects_dir / CARDIAC) == snapshot(pristine)


def test_second_restore_is_a_no_op_reported_identical(all_archive: Path, tmp_path: Path) -> None:
    target = tmp_path / "t"
    restore(all_archive, target_dir=target)
    inode = (target / CARDIAC / "device_profile.json").stat().st_ino
    again = restore(all_archive, target_dir=target)
    assert again.restored == [] and again.files == 0
    assert sorted(again.identical) == sorted([CARDIAC, GLUCOSE, ORTHO])
    assert (target / CARDIAC / "device_profile.json").stat().st_ino == inode


def test_dry_run_plan_writes_nothing(projects_dir: Path, all_archive: Path, tmp_path: Path) -> None:
    (projects_dir / ORTHO / "device_profile.json").write_bytes(b"changed")
    before = snapshot(projects_dir)
    plan = plan_restore(all_archive, target_dir=projects_dir)
    assert plan.dry_run is True
    assert {p.name: p.action for p in plan.projects} == {
        CARDIAC: "identical",
        GLUCOSE: "identical",
        ORTHO: "overwrite",
    }
    assert snapshot(projects_dir) == before
    missing = tmp_path / "not-yet"
    assert plan_restore(all_archive, target_dir=missing).bytes_to_write > 0
    assert not missing.exists()


def test_permission_bits_the_umask_would_take_away_are_restored_exactly(
    all_archive: Path, tmp_path: Path
) -> None:
    manifest = json.loads(zipfile.ZipFile(all_archive).read("metadata.json"))
    cycle = [0o666, 0o664, 0o640, 0o400, 0o777, 0o644, 0o600]
    wanted = {}
    for i, entry in enumerate(manifest["files"]):
        entry["mode"] = cycle[i % len(cycle)]
        wanted[entry["path"]] = entry["mode"]
    moded = rewrite_archive(
        all_archive,
        tmp_path / "modes.zip",
        replace={"metadata.json": json.dumps(manifest).encode()},
    )
    target = tmp_path / "t"
    old = os.umask(0o027)  # takes group write and every "other" bit away from new files
    try:
        restore(moded, target_dir=target)
    finally:
        os.umask(old)
    got = {path: stat.S_IMODE((target / path).stat().st_mode) for path in wanted}
    assert got == wanted


def test_setuid_and_sticky_bits_are_never_restored(all_archive: Path, tmp_path: Path) -> None:
    manifest = json.loads(zipfile.ZipFile(all_archive).read("metadata.json"))
    for entry in manifest["files"]:
        entry["mode"] = 0o7755
    hostile = rewrite_archive(
        all_archive,
        tmp_path / "modes.zip",
        replace={"metadata.json": json.dumps(manifest).encode()},
    )
    target = tmp_path / "t"
    restore(hostile, target_dir=target)
    modes = {
        p.stat().st_mode & 0o7777
        for p in target.rglob("*")
        if p.is_file() and not p.name.startswith(".fda-vault")
    }
    assert modes == {0o755}


def test_flipped_byte_rolls_everything_back(projects_dir: Path, all_archive: Path) -> None:
    damaged = flip_member_byte(
        all_archive, f"projects/{ORTHO}/device_profile.json", all_archive.with_name("bad.zip")
    )
    for name in (CARDIAC, GLUCOSE, ORTHO):
        (projects_dir / name / "local_edit.txt").write_bytes(b"work in progress")
    before = _project_snapshot(projects_dir)
    with pytest.raises(IntegrityError) as info:
        restore(damaged, target_dir=projects_dir, overwrite=True)
    assert "device_profile.json" in info.value.message
    assert _project_snapshot(projects_dir) == before
    assert _leftovers(projects_dir) == []


@pytest.mark.parametrize("fail_at", [0, 1, 7, 12])
def test_failure_after_n_files_leaves_every_project_as_it_was(
    projects_dir: Path, all_archive: Path, fail_at: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in (CARDIAC, GLUCOSE, ORTHO):
        (projects_dir / name / "device_profile.json").write_bytes(b"edited " + name.encode())
    before = _project_snapshot(projects_dir)

    def fail(count: int) -> None:
        if count == fail_at:
            raise OSError(28, "No space left on device")

    monkeypatch.setattr(restore_module, "_before_each_file", fail)
    with pytest.raises(OperationError) as info:
        restore(all_archive, target_dir=projects_dir, overwrite=True)
    assert "disk full" in info.value.message
    assert _project_snapshot(projects_dir) == before
    assert _leftovers(projects_dir) == []


@pytest.mark.parametrize(
    ("blocks_free", "inodes_free", "words"), [(3, None, "bytes"), (None, 2, "inodes")]
)
def test_not_enough_space_is_refused_before_writing(
    all_archive: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    blocks_free: int | None,
    inodes_free: int | None,
    words: str,
) -> None:
    real = os.statvfs(tmp_path)

    class NearlyFull:
        f_frsize = real.f_frsize
        f_bavail = real.f_bavail if blocks_free is None else blocks_free
        f_blocks = real.f_blocks
        f_bfree = f_bavail
        f_files = real.f_files or 1_000_000
        f_favail = real.f_favail if inodes_free is None else inodes_free

    monkeypatch.setattr(os, "statvfs", lambda _p: NearlyFull)
    target = tmp_path / "t"
    with pytest.raises(OperationError) as info:
        restore(all_archive, target_dir=target)
    assert "disk full" in info.value.message and "nothing was written" in info.value.message
    assert words in info.value.message
    assert [p.name for p in target.iterdir() if not p.name.startswith(".fda-vault.lock")] == []


def test_names_differing_only_in_case_are_refused_on_a_case_insensitive_target(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    projects = tmp_path / "projects"
    (projects / "K1").mkdir(parents=True)
    (projects / "K1" / "Summary.md").write_bytes(b"upper")
    (projects / "K1" / "summary.md").write_bytes(b"lower")
    archive = Path(
        backup(projects=["K1"], projects_dir=projects, output_dir=tmp_path / "b").archive
    )
    restore(archive, target_dir=tmp_path / "ext4")  # a case-sensitive target takes both
    # The filesystem probe says "case-insensitive" (as on macOS or Windows shares).
    restore_module = importlib.import_module("fda_vault._restore")
    monkeypatch.setattr(restore_module, "_case_insensitive", lambda _target: True)
    target = tmp_path / "folding"
    with pytest.raises(IntegrityError) as info:
        restore(archive, target_dir=target)
    assert "summary.md" in info.value.message.lower() and "case" in info.value.message
    assert not (target / "K1").exists()


def _interrupted_journal(
    target: Path, archive: Path, projects: list[str], state: str, moved: int
) -> Journal:
    """Stage ``projects`` from ``archive`` by hand and stop after ``moved`` swaps."""
    journal = Journal(target=target, archive=str(archive), projects=projects, existed=projects)
    journal.write("staging")
    journal.create_staging()
    scratch = target.parent / "scratch"
    restore(archive, target_dir=scratch, projects=projects)
    for name in projects:
        shutil.copytree(scratch / name, journal.new_path(name))
    if state != "staging":
        journal.write("swapping")
        for name in projects[:moved]:
            (target / name).rename(journal.old_path(name))
            if moved:
                journal.new_path(name).rename(target / name)
    if state == "rolling_back":
        journal.write("rolling_back")
    return journal


@pytest.mark.parametrize(
    ("state", "moved", "expect_new"),
    [
        ("staging", 0, False),
        ("swapping", 0, True),
        ("swapping", 1, True),
        ("rolling_back", 1, False),
    ],
)
def test_recovery_completes_or_undoes_an_interrupted_restore(
    projects_dir: Path, all_archive: Path, state: str, moved: int, expect_new: bool
) -> None:
    names = [CARDIAC, ORTHO]
    backed_up = {n: snapshot(projects_dir / n) for n in names}
    for name in names:
        (projects_dir / name / "device_profile.json").write_bytes(b"old version")
    old = {n: snapshot(projects_dir / n) for n in names}
    _interrupted_journal(projects_dir, all_archive, names, state, moved)
    messages = recover_interrupted(projects_dir)
    assert messages and ("finished" in messages[0]) == expect_new
    for name in names:
        expected = backed_up[name] if expect_new else old[name]
        assert snapshot(projects_dir / name) == expected, name
    assert _leftovers(projects_dir) == []


def test_restore_refuses_an_archive_inside_the_project_it_replaces(
    projects_dir: Path, all_archive: Path
) -> None:
    inside = projects_dir / ORTHO / "copy.zip"
    shutil.copy(all_archive, inside)
    with pytest.raises(UsageError):
        restore(inside, target_dir=projects_dir, projects=[ORTHO], overwrite=True)


def test_restore_leaves_no_lock_files_in_its_target(all_archive: Path, tmp_path: Path) -> None:
    target = tmp_path / "t"
    restore(all_archive, target_dir=target)
    projects = {CARDIAC, GLUCOSE, ORTHO}
    assert {p.name for p in target.iterdir()} == projects
    with pytest.raises(RefusedError):  # refused too: nothing is left behind
        (target / CARDIAC / "device_profile.json").write_bytes(b"edited")
        restore(all_archive, target_dir=target)
    assert {p.name for p in target.iterdir()} == projects


def test_a_restore_in_progress_holds_the_target_lock(all_archive: Path, tmp_path: Path) -> None:
    target = tmp_path / "t"
    target.mkdir()
    with tree_lock(target), pytest.raises(LockedError, match="in use by another fda-vault run"):
        restore(all_archive, target_dir=target, lock_timeout=0.1)
    assert list(target.iterdir()) == []


def test_ctrl_c_while_staging_rolls_back_and_reports_an_interruption(
    projects_dir: Path, all_archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (projects_dir / CARDIAC / "device_profile.json").write_bytes(b"today's edits")
    before = _project_snapshot(projects_dir)

    def ctrl_c(count: int) -> None:
        if count == 3:
            raise KeyboardInterrupt

    monkeypatch.setattr(restore_module, "_before_each_file", ctrl_c)
    with pytest.raises(InterruptedByUser):
        restore(all_archive, target_dir=projects_dir, overwrite=True)
    assert _project_snapshot(projects_dir) == before
    assert _leftovers(projects_dir) == []


def test_a_short_write_is_finished_not_dropped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write to a regular file may be cut short (as a disk fills up): restore's writer
    goes on until every byte is written instead of leaving the file truncated."""
    restore_module = importlib.import_module("fda_vault._restore")
    payload = os.urandom(10_000)
    real_write = os.write
    calls: list[int] = []

    def short_write(fd: int, data: bytes | memoryview) -> int:
        calls.append(len(data))
        return real_write(fd, bytes(data[:1_000]))

    target = tmp_path / "out.bin"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        monkeypatch.setattr(os, "write", short_write)
        restore_module._write_all(fd, payload)
    finally:
        monkeypatch.undo()
        os.close(fd)
    assert target.read_bytes() == payload
    assert len(calls) == 10


def test_a_journal_write_killed_before_its_rename_is_removed_by_the_next_run(
    projects_dir: Path,
) -> None:
    # A kill between the first journal write and its rename: nothing else had happened.
    before = {n: snapshot(projects_dir / n) for n in (CARDIAC, ORTHO)}
    (projects_dir / f"{JOURNAL_NAME}.tmp").write_text('{"state": "stag', encoding="utf-8")
    assert finish_interrupted(projects_dir, lock_timeout=1) == []
    assert _leftovers(projects_dir) == []
    assert {n: snapshot(projects_dir / n) for n in (CARDIAC, ORTHO)} == before
