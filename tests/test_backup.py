"""``backup`` as a library: what gets collected, hashed, named and written, and how."""

from __future__ import annotations

import errno
import hashlib
import importlib
import os
import re
import stat
import unicodedata
import zipfile
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, Union

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fda_vault import __version__
from fda_vault._audit import TRAIL_NAME
from fda_vault._backup import BackupResult, archive_label, backup, list_projects
from fda_vault._errors import ExitCode, IntegrityError, OperationError, UsageError
from fda_vault._manifest import BackupManifest, is_safe_segment
from fda_vault._progress import SilentProgress
from fda_vault._verify import verify_archive
from fda_vault._zipwriter import ZipWriter
from tests.conftest import CARDIAC, GLUCOSE, ORTHO, FrozenClock, MakeProject, cardiac_files
from tests.tree import snapshot, swap_like_a_restore

STAMP_RE = r"\d{8}_\d{6}"


def _run(projects_dir: Path, output_dir: Path, *names: str, **kwargs: Any) -> BackupResult:
    return backup(list(names), projects_dir=projects_dir, output_dir=output_dir, **kwargs)


def _manifest(archive: str | Path) -> BackupManifest:
    with zipfile.ZipFile(archive) as zf:
        return BackupManifest.model_validate_json(zf.read("metadata.json"))


def _files_on_disk(project: Path) -> dict[str, Path]:
    found = {}
    for path in project.rglob("*"):
        if path.is_file() and not path.is_symlink():
            found[path.relative_to(project).as_posix()] = path
    return found


# --- checksums ----------------------------------------------------------------


def test_manifest_sha256_equals_hashlib_of_every_file(
    projects_dir: Path, backups_dir: Path
) -> None:
    result = backup(all_projects=True, projects_dir=projects_dir, output_dir=backups_dir)
    manifest = _manifest(result.archive)
    expected = {}
    for project in (CARDIAC, GLUCOSE, ORTHO):
        for rel, path in _files_on_disk(projects_dir / project).items():
            expected[f"{project}/{rel}"] = hashlib.sha256(path.read_bytes()).hexdigest()
    assert {e.path: e.sha256 for e in manifest.files} == expected
    assert manifest.checksums == expected
    assert hashlib.sha256(b"").hexdigest() == expected[f"{CARDIAC}/empty.txt"]
    with zipfile.ZipFile(result.archive) as zf:
        lines = zf.read("checksums.txt").decode("utf-8").splitlines()
    assert sorted(lines) == lines
    assert set(lines) == {f"{sha}  projects/{path}" for path, sha in expected.items()}


def test_large_file_hashed_across_many_chunks(
    tmp_path: Path, make_project: MakeProject, backups_dir: Path
) -> None:
    data = os.urandom(1 << 20) * 3 + b"tail"  # several read chunks, not a multiple of one
    root = tmp_path / "p"
    make_project(root, "big", {"scan.pdf": data})
    result = _run(root, backups_dir, "big")
    entry = _manifest(result.archive).files[0]
    assert entry.size == len(data)
    assert entry.sha256 == hashlib.sha256(data).hexdigest()
    with zipfile.ZipFile(result.archive) as zf:
        assert zf.read("projects/big/scan.pdf") == data


def test_result_describes_the_archive(projects_dir: Path, backups_dir: Path) -> None:
    result = _run(projects_dir, backups_dir, CARDIAC)
    path = Path(result.archive)
    files = _files_on_disk(projects_dir / CARDIAC)
    assert path.parent == backups_dir
    assert result.projects == [CARDIAC]
    assert result.files == len(files)
    assert result.bytes == sum(p.stat().st_size for p in files.values())
    assert result.archive_size == path.stat().st_size
    assert result.archive_sha256 == hashlib.sha256(path.read_bytes()).hexdigest()
    assert result.verified is True
    assert result.skipped == []
    assert result.duration_seconds >= 0


def test_manifest_header_fields(projects_dir: Path, backups_dir: Path) -> None:
    before = datetime.now().astimezone().replace(microsecond=0)
    result = _run(projects_dir, backups_dir, GLUCOSE, ORTHO)
    manifest = _manifest(result.archive)
    stamp = datetime.fromisoformat(manifest.backup_timestamp)
    assert stamp.utcoffset() is not None
    assert stamp.utcoffset().total_seconds() == 0  # type: ignore[union-attr]
    assert before <= stamp <= datetime.now().astimezone()
    assert manifest.backup_version.startswith("1.")
    assert manifest.created_by == f"fda-vault {__version__}"
    assert manifest.projects == [GLUCOSE, ORTHO]
    assert manifest.total_projects == 2
    assert manifest.total_files == len(manifest.files) == 3
    assert manifest.total_bytes == sum(e.size for e in manifest.files)


def test_mtime_and_mode_are_recorded(
    tmp_path: Path, make_project: MakeProject, backups_dir: Path
) -> None:
    root = tmp_path / "p"
    project = make_project(root, "perm", {"script.sh": b"#!/bin/sh\n", "secret.json": b"{}"})
    os.chmod(project / "script.sh", 0o750)
    os.chmod(project / "secret.json", 0o600)
    os.utime(project / "script.sh", (1_600_000_000, 1_600_000_000.25))
    os.utime(project / "secret.json", (1_000_000_000, 1_000_000_000))
    entries = {e.path: e for e in _manifest(_run(root, backups_dir, "perm").archive).files}
    assert entries["perm/script.sh"].mode == 0o750
    assert entries["perm/secret.json"].mode == 0o600
    assert entries["perm/script.sh"].mtime == pytest.approx(1_600_000_000.25, abs=1e-6)
    assert entries["perm/secret.json"].mtime == 1_000_000_000


# --- collecting project files ----------------------------------------------------


def test_projects_are_direct_subfolders_except_hidden_and_backups(projects_dir: Path) -> None:
    (projects_dir / "backups").mkdir()
    (projects_dir / "elsewhere").symlink_to(projects_dir / CARDIAC)
    assert list_projects(projects_dir) == sorted([CARDIAC, GLUCOSE, ORTHO])


def test_a_custom_backups_folder_inside_the_root_is_not_a_project(projects_dir: Path) -> None:
    vault = projects_dir / "vault"
    vault.mkdir()
    # An old default backups folder stays out too: "backups" is reserved, so no archive can
    # ever carry a project of that name that a restore would swap over the backups.
    (projects_dir / "backups").mkdir()
    assert list_projects(projects_dir, vault) == sorted([CARDIAC, GLUCOSE, ORTHO])


def test_all_never_backs_up_the_backups_folder(projects_dir: Path) -> None:
    default_backups = projects_dir / "backups"
    first = backup(all_projects=True, projects_dir=projects_dir, output_dir=default_backups)
    second = backup(all_projects=True, projects_dir=projects_dir, output_dir=default_backups)
    manifest = _manifest(second.archive)
    assert manifest.projects == sorted([CARDIAC, GLUCOSE, ORTHO])
    assert ".cache" not in manifest.projects
    assert not any(e.path.startswith(("backups/", ".cache/")) for e in manifest.files)
    assert first.archive != second.archive


def test_an_output_folder_inside_a_project_is_not_backed_up(
    projects_dir: Path,
) -> None:
    inside = projects_dir / ORTHO / "my_backups"
    _run(projects_dir, inside, ORTHO)
    second = _run(projects_dir, inside, ORTHO)
    paths = [e.path for e in _manifest(second.archive).files]
    assert paths == [f"{ORTHO}/device_profile.json"]
    assert f"{ORTHO}/my_backups" not in _manifest(second.archive).empty_dirs


def test_files_empty_dirs_nested_and_unicode_are_all_kept(
    projects_dir: Path, backups_dir: Path
) -> None:
    result = _run(projects_dir, backups_dir, CARDIAC)
    manifest = _manifest(result.archive)
    expected = {f"{CARDIAC}/{rel}" for rel, data in cardiac_files().items() if data is not None}
    assert {e.path for e in manifest.files} == expected
    assert f"{CARDIAC}/notes/réunion_été_📝.md" in expected
    assert manifest.empty_dirs == [f"{CARDIAC}/drafts/empty_section"]
    with zipfile.ZipFile(result.archive) as zf:
        names = set(zf.namelist())
        for rel, data in cardiac_files().items():
            if data is None:
                assert f"projects/{CARDIAC}/{rel}" in names
                assert zf.getinfo(f"projects/{CARDIAC}/{rel}").is_dir()
            else:
                assert zf.read(f"projects/{CARDIAC}/{rel}") == data


def test_symlinks_are_recorded_and_never_followed(
    tmp_path: Path, make_project: MakeProject, backups_dir: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = b"SECRET-OUTSIDE-THE-PROJECT"
    (outside / "secret.txt").write_bytes(secret)
    root = tmp_path / "p"
    project = make_project(root, "links", {"real.txt": b"real"})
    (project / "to_file").symlink_to(outside / "secret.txt")
    (project / "to_dir").symlink_to(outside, target_is_directory=True)
    (project / "dangling").symlink_to(tmp_path / "nowhere")
    (project / "inner").symlink_to("real.txt")

    result = _run(root, backups_dir, "links")
    manifest = _manifest(result.archive)
    assert [e.path for e in manifest.files] == ["links/real.txt"]
    skipped = {s.path: s.reason for s in manifest.skipped}
    assert set(skipped) == {"links/to_file", "links/to_dir", "links/dangling", "links/inner"}
    assert all("symbolic link" in reason for reason in skipped.values())
    assert result.skipped == manifest.skipped
    with zipfile.ZipFile(result.archive) as zf:
        for info in zf.infolist():
            assert secret not in zf.read(info)


def test_fifos_are_skipped_without_being_opened(
    tmp_path: Path, make_project: MakeProject, backups_dir: Path
) -> None:
    root = tmp_path / "p"
    project = make_project(root, "special", {"data.csv": b"a,b\n"})
    os.mkfifo(project / "pipe")  # opening it for reading would block forever
    manifest = _manifest(_run(root, backups_dir, "special").archive)
    assert [e.path for e in manifest.files] == ["special/data.csv"]
    assert [(s.path, s.reason) for s in manifest.skipped] == [
        ("special/pipe", "special file (FIFO)")
    ]


def test_non_portable_names_are_skipped_and_recorded(
    tmp_path: Path, make_project: MakeProject, backups_dir: Path
) -> None:
    root = tmp_path / "p"
    project = make_project(root, "names", {"ok.txt": b"ok", "back\\slash.txt": b"b"})
    (project / unicodedata.normalize("NFC", "café.md")).write_bytes(b"nfc")
    (project / unicodedata.normalize("NFD", "café.md")).write_bytes(b"nfd")
    manifest = _manifest(_run(root, backups_dir, "names").archive)
    paths = [e.path for e in manifest.files]
    # Exactly one of the two "café.md" survives: restoring both on macOS would clash.
    assert len(paths) == 2
    assert "names/ok.txt" in paths
    assert {unicodedata.normalize("NFC", p) for p in paths} == {
        "names/ok.txt",
        unicodedata.normalize("NFC", "names/café.md"),
    }
    reasons = {s.path: s.reason for s in manifest.skipped}
    assert "backslash" in reasons["names/back\\slash.txt"]
    assert any("NFC" in r for r in reasons.values())
    assert len(reasons) == 2


def test_a_file_name_that_is_not_utf8_is_skipped(
    tmp_path: Path, make_project: MakeProject, backups_dir: Path
) -> None:
    root = tmp_path / "p"
    project = make_project(root, "latin1", {"ok.txt": b"ok"})
    with open(os.path.join(os.fsencode(project), b"r\xe9sum\xe9.txt"), "wb") as fp:
        fp.write(b"latin-1 name")
    result = _run(root, backups_dir, "latin1")
    manifest = _manifest(result.archive)
    assert [e.path for e in manifest.files] == ["latin1/ok.txt"]
    assert len(manifest.skipped) == 1
    assert "UTF-8" in manifest.skipped[0].reason
    assert manifest.skipped[0].path.startswith("latin1/r")
    assert verify_archive(Path(result.archive)).ok


# --- exclusions -------------------------------------------------------------------


def test_exclude_patterns_leave_files_out_and_are_counted(
    tmp_path: Path, make_project: MakeProject, backups_dir: Path
) -> None:
    root = tmp_path / "p"
    make_project(
        root,
        "ex",
        {
            "keep.txt": b"k",
            "draft.tmp": b"t",
            "sub/notes.tmp": b"t",
            "sub/keep.md": b"k",
            "guidance_cache/a.pdf": b"c",
            "guidance_cache/deep/b.pdf": b"c",
            "sub/cache/c.bin": b"c",
            "cache": b"a regular file called cache stays",
        },
    )
    patterns = ["*.tmp", "guidance_cache/", "cache/"]
    result = _run(root, backups_dir, "ex", excludes=patterns)
    manifest = _manifest(result.archive)
    assert sorted(e.path for e in manifest.files) == ["ex/cache", "ex/keep.txt", "ex/sub/keep.md"]
    assert manifest.exclude.patterns == patterns
    assert manifest.exclude.excluded_files == 5
    assert result.excluded_files == 5


def test_exclude_matches_paths_inside_the_project(
    tmp_path: Path, make_project: MakeProject, backups_dir: Path
) -> None:
    root = tmp_path / "p"
    make_project(root, "ex", {"drafts/a.md": b"a", "final/a.md": b"a", "drafts/b.txt": b"b"})
    manifest = _manifest(_run(root, backups_dir, "ex", excludes=["drafts/*.md"]).archive)
    assert sorted(e.path for e in manifest.files) == ["ex/drafts/b.txt", "ex/final/a.md"]
    assert manifest.exclude.excluded_files == 1


def test_no_exclude_records_nothing_excluded(projects_dir: Path, backups_dir: Path) -> None:
    manifest = _manifest(_run(projects_dir, backups_dir, ORTHO).archive)
    assert manifest.exclude.patterns == []
    assert manifest.exclude.excluded_files == 0


# --- names, modes, atomicity ----------------------------------------------------------


def test_archive_label() -> None:
    assert archive_label(["one"], all_projects=False) == "one"
    assert archive_label(["one", "two"], all_projects=False) == "multi_project"
    assert archive_label(["one"], all_projects=True) == "all_projects"


@pytest.mark.parametrize(
    ("names", "all_projects", "label"),
    [
        ([GLUCOSE], False, GLUCOSE),
        ([CARDIAC, ORTHO], False, "multi_project"),
        ([], True, "all_projects"),
    ],
    ids=["single-unicode", "multi", "all"],
)
def test_file_name_carries_label_and_utc_stamp(
    projects_dir: Path,
    backups_dir: Path,
    frozen_clock: FrozenClock,
    names: list[str],
    all_projects: bool,
    label: str,
) -> None:
    frozen_clock.set(2026, 1, 2, 3, 4, 5)
    result = backup(
        names, all_projects=all_projects, projects_dir=projects_dir, output_dir=backups_dir
    )
    assert Path(result.archive).name == f"{label}_backup_20260102_030405.zip"
    assert _manifest(result.archive).backup_timestamp == "2026-01-02T03:04:05+00:00"


def test_file_name_pattern_with_the_real_clock(projects_dir: Path, backups_dir: Path) -> None:
    name = Path(_run(projects_dir, backups_dir, ORTHO).archive).name
    assert re.fullmatch(rf"{ORTHO}_backup_{STAMP_RE}\.zip", name)


def test_an_existing_archive_is_never_overwritten(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock
) -> None:
    first = Path(_run(projects_dir, backups_dir, ORTHO).archive)
    original = first.read_bytes()
    second = Path(_run(projects_dir, backups_dir, ORTHO).archive)
    third = Path(_run(projects_dir, backups_dir, ORTHO).archive)
    stem = f"{ORTHO}_backup_20260314_150926"
    assert [first.name, second.name, third.name] == [
        f"{stem}.zip",
        f"{stem}_1.zip",
        f"{stem}_2.zip",
    ]
    assert first.read_bytes() == original


def test_a_foreign_file_with_the_same_name_is_kept(
    projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock
) -> None:
    backups_dir.mkdir()
    taken = backups_dir / f"{ORTHO}_backup_20260314_150926.zip"
    taken.write_bytes(b"someone else's file")
    result = _run(projects_dir, backups_dir, ORTHO)
    assert Path(result.archive).name == f"{ORTHO}_backup_20260314_150926_1.zip"
    assert taken.read_bytes() == b"someone else's file"


@pytest.mark.parametrize("umask", [0o022, 0o000])
def test_archive_is_0600_and_new_backups_folder_0700(
    projects_dir: Path, tmp_path: Path, umask: int
) -> None:
    (tmp_path / "disk").mkdir()
    output = tmp_path / "disk" / "backups"
    old = os.umask(umask)
    try:
        result = _run(projects_dir, output, ORTHO)
    finally:
        os.umask(old)
    assert stat.S_IMODE(output.stat().st_mode) == 0o700
    assert stat.S_IMODE(Path(result.archive).stat().st_mode) == 0o600


def test_a_missing_parent_of_the_backups_folder_is_an_error_naming_it(
    projects_dir: Path, tmp_path: Path
) -> None:
    """An unmounted USB disk: the "second copy" must not land on the internal disk."""
    unmounted = tmp_path / "media" / "usb"
    with pytest.raises(OperationError) as info:
        backup(projects=[ORTHO], projects_dir=projects_dir, output_dir=unmounted / "backups")
    assert info.value.what == str(unmounted)
    assert "is the disk mounted?" in info.value.why
    assert not (tmp_path / "media").exists()


def test_no_temporary_file_is_left(projects_dir: Path, backups_dir: Path) -> None:
    backup(all_projects=True, projects_dir=projects_dir, output_dir=backups_dir)
    assert list(backups_dir.glob("*.tmp")) == []
    assert len(list(backups_dir.glob("*.zip"))) == 1


def test_a_stale_temporary_file_from_a_killed_run_is_removed(
    projects_dir: Path, backups_dir: Path
) -> None:
    backups_dir.mkdir(mode=0o700)
    stale = backups_dir / "all_projects_backup_20200101_000000.zip.tmp"
    stale.write_bytes(b"half an archive")
    _run(projects_dir, backups_dir, ORTHO)
    assert not stale.exists()


def test_disk_full_while_writing_leaves_nothing(
    projects_dir: Path, backups_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def disk_full(self: ZipWriter) -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(ZipWriter, "close", disk_full)
    with pytest.raises(OperationError) as info:
        _run(projects_dir, backups_dir, CARDIAC)
    assert info.value.exit_code == ExitCode.FAILURE
    assert "disk full" in info.value.message
    assert list(backups_dir.iterdir()) == [] or all(
        p.name.startswith(".fda-vault.lock") or p.name == TRAIL_NAME for p in backups_dir.iterdir()
    )


def test_a_failed_verification_leaves_no_archive(
    projects_dir: Path, backups_dir: Path, damage_before_verification: str
) -> None:
    """The archive is damaged between writing and verifying: nothing is published."""
    with pytest.raises(IntegrityError) as info:
        _run(projects_dir, backups_dir, ORTHO, level=0)
    assert info.value.exit_code == ExitCode.INTEGRITY
    assert "verification" in info.value.message
    assert damage_before_verification in info.value.message
    assert list(backups_dir.glob("*.zip*")) == []


def test_no_verify_still_writes_a_valid_archive(projects_dir: Path, backups_dir: Path) -> None:
    result = _run(projects_dir, backups_dir, CARDIAC, verify=False)
    assert result.verified is False
    assert verify_archive(Path(result.archive)).ok


def _unreadable(monkeypatch: pytest.MonkeyPatch, target: Path) -> None:
    """Make ``os.open`` of one file fail with EACCES (tests run as root, chmod cannot)."""
    real_open = os.open

    def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) == os.fspath(target):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def test_an_unreadable_file_fails_the_backup_naming_it(
    projects_dir: Path, backups_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = projects_dir / CARDIAC / "pdfs" / "K201234_summary.pdf"
    _unreadable(monkeypatch, target)
    with pytest.raises(OperationError) as info:
        _run(projects_dir, backups_dir, CARDIAC)
    assert info.value.exit_code == ExitCode.FAILURE
    assert str(target) in info.value.message
    assert "permission denied" in info.value.message
    assert list(backups_dir.glob("*.zip*")) == []


def test_skip_unreadable_records_the_file(
    projects_dir: Path, backups_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = projects_dir / CARDIAC / "pdfs" / "K201234_summary.pdf"
    _unreadable(monkeypatch, target)
    result = _run(projects_dir, backups_dir, CARDIAC, skip_unreadable=True)
    manifest = _manifest(result.archive)
    key = f"{CARDIAC}/pdfs/K201234_summary.pdf"
    assert key not in {e.path for e in manifest.files}
    assert [s.path for s in manifest.skipped] == [key]
    assert "unreadable" in manifest.skipped[0].reason
    assert [(w.reason, w.path) for w in result.warnings] == [("left_out", str(target))]
    assert verify_archive(Path(result.archive)).ok


# A real chmod 000 file (even as root, with its override dropped) is tested in
# tests/test_faults.py::test_permission_denied_fails_naming_the_file_unless_skipped.


# --- compression -----------------------------------------------------------------------


def test_level_0_stores_everything(projects_dir: Path, backups_dir: Path) -> None:
    result = _run(projects_dir, backups_dir, CARDIAC, level=0)
    with zipfile.ZipFile(result.archive) as zf:
        data = [i for i in zf.infolist() if i.filename.startswith("projects/") and not i.is_dir()]
        assert data
        assert {i.compress_type for i in data} == {zipfile.ZIP_STORED}


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(70_000, id="small: judged by deflating it"),
        pytest.param(3 * 1024 * 1024 + 5, id="several blocks: judged from samples first"),
    ],
)
def test_text_is_deflated_and_random_bytes_stored(
    tmp_path: Path, make_project: MakeProject, backups_dir: Path, size: int
) -> None:
    root = tmp_path / "p"
    text_data = (b"predicate device %d, " * (size // 20 + 1))[:size]
    make_project(root, "mix", {"text.md": text_data, "noise.bin": os.urandom(size)})
    result = _run(root, backups_dir, "mix")
    with zipfile.ZipFile(result.archive) as zf:
        text = zf.getinfo("projects/mix/text.md")
        noise = zf.getinfo("projects/mix/noise.bin")
        assert zf.read(text) == text_data
    assert text.compress_type == zipfile.ZIP_DEFLATED
    assert text.compress_size < text.file_size // 10
    assert noise.compress_type == zipfile.ZIP_STORED
    assert noise.compress_size == size
    assert verify_archive(Path(result.archive)).ok


@pytest.mark.parametrize("level", [-1, 10])
def test_a_level_out_of_range_is_a_usage_error(
    projects_dir: Path, backups_dir: Path, level: int
) -> None:
    with pytest.raises(UsageError):
        _run(projects_dir, backups_dir, ORTHO, level=level)
    assert not backups_dir.exists()


# --- usage errors ------------------------------------------------------------------


def test_unknown_project_names_the_existing_ones(projects_dir: Path, backups_dir: Path) -> None:
    with pytest.raises(UsageError) as info:
        _run(projects_dir, backups_dir, "K000000_nope")
    assert info.value.exit_code == ExitCode.USAGE
    assert "K000000_nope" in info.value.message
    for name in (CARDIAC, GLUCOSE, ORTHO):
        assert name in info.value.message
    assert not backups_dir.exists()


@pytest.mark.parametrize("hidden", [".cache", "backups", "README.txt"])
def test_what_is_not_a_project_cannot_be_named(projects_dir: Path, hidden: str) -> None:
    with pytest.raises(UsageError):
        _run(projects_dir, projects_dir / "backups", hidden)


def test_all_and_named_projects_together_is_a_usage_error(
    projects_dir: Path, backups_dir: Path
) -> None:
    with pytest.raises(UsageError):
        backup([ORTHO], all_projects=True, projects_dir=projects_dir, output_dir=backups_dir)


def test_nothing_selected_is_a_usage_error(projects_dir: Path, backups_dir: Path) -> None:
    with pytest.raises(UsageError):
        backup([], projects_dir=projects_dir, output_dir=backups_dir)


def test_a_missing_projects_root_is_a_usage_error(tmp_path: Path, backups_dir: Path) -> None:
    with pytest.raises(UsageError, match="not found"):
        backup(all_projects=True, projects_dir=tmp_path / "nope", output_dir=backups_dir)


def test_a_backups_path_that_is_a_file_is_an_operation_error(
    projects_dir: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker"
    blocker.write_bytes(b"")
    with pytest.raises(OperationError) as info:
        _run(projects_dir, blocker, ORTHO)
    assert info.value.exit_code == ExitCode.FAILURE
    assert str(blocker) in info.value.message


# --- round trip ----------------------------------------------------------------------

_NAME_CHARS = st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\")


def _nfc(text: str) -> str:
    return unicodedata.normalize("NFC", text)


_names = (
    st.text(_NAME_CHARS, min_size=1, max_size=12)
    .map(_nfc)
    .filter(lambda s: s not in {".", ".."} and len(s.encode("utf-8")) <= 200)
)
_project_names = _names.filter(lambda s: is_safe_segment(s) and not s.startswith("."))
_file = st.tuples(
    st.binary(max_size=300),
    st.sampled_from([0o600, 0o640, 0o644, 0o700, 0o755]),
    st.integers(min_value=315_532_800, max_value=4_000_000_000),
)
_Tree = dict[str, Union[tuple[bytes, int, int], "_Tree"]]
_tree = st.recursive(
    _file, lambda children: st.dictionaries(_names, children, max_size=3), max_leaves=8
)
_projects = st.dictionaries(
    _project_names, st.dictionaries(_names, _tree, max_size=4), min_size=1, max_size=3
)


def _materialize(
    folder: Path,
    tree: _Tree,
    prefix: str,
    files: dict[str, tuple[bytes, int, int]],
    empty: set[str],
) -> None:
    for name, node in tree.items():
        path = folder / name
        key = f"{prefix}/{name}"
        if isinstance(node, dict):
            path.mkdir()
            if not node:
                empty.add(key)
            _materialize(path, node, key, files, empty)
        else:
            data, mode, mtime = node
            path.write_bytes(data)
            os.chmod(path, mode)
            os.utime(path, (mtime, mtime))
            files[key] = node


@settings(
    max_examples=30,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(projects=_projects)
@pytest.mark.slow
def test_round_trip_random_trees(tmp_path_factory: pytest.TempPathFactory, projects: Any) -> None:
    base = tmp_path_factory.mktemp("round")
    root = base / "projects"
    root.mkdir()
    files: dict[str, tuple[bytes, int, int]] = {}
    empty: set[str] = set()
    for project, tree in projects.items():
        (root / project).mkdir()
        _materialize(root / project, tree, project, files, empty)

    result = backup(all_projects=True, projects_dir=root, output_dir=base / "out")
    manifest = _manifest(result.archive)
    assert manifest.projects == sorted(projects)
    assert manifest.skipped == []
    assert {e.path for e in manifest.files} == set(files)
    assert set(manifest.empty_dirs) == empty
    for entry in manifest.files:
        data, mode, mtime = files[entry.path]
        assert entry.size == len(data)
        assert entry.sha256 == hashlib.sha256(data).hexdigest()
        assert entry.mode == mode
        assert entry.mtime == mtime

    extracted = base / "extracted"
    with zipfile.ZipFile(result.archive) as zf:
        zf.extractall(extracted)
    for key, (data, _mode, _mtime) in files.items():
        assert (extracted / "projects" / key).read_bytes() == data
    for key in empty:
        folder = extracted / "projects" / key
        assert folder.is_dir()
        assert list(folder.iterdir()) == []
    on_disk = {
        p.relative_to(extracted / "projects").as_posix()
        for p in (extracted / "projects").rglob("*")
        if p.is_file()
    }
    assert on_disk == set(files)


# --- the manifest size cap readers apply --------------------------------------------


def test_a_manifest_too_large_for_readers_is_refused_while_writing(
    projects_dir: Path, backups_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Readers refuse a metadata.json over the cap, so backup never publishes one."""
    monkeypatch.setattr(importlib.import_module("fda_vault._backup"), "MAX_MANIFEST_BYTES", 2_000)
    with pytest.raises(OperationError) as info:
        _run(projects_dir, backups_dir, CARDIAC)
    assert info.value.exit_code == ExitCode.FAILURE
    assert "metadata.json" in info.value.message and "fewer projects" in info.value.message
    assert list(backups_dir.glob("*.zip*")) == []


def test_every_reader_applies_the_manifest_cap(
    projects_dir: Path, backups_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """verify, and backup's own check of what it wrote, both refuse an oversized manifest."""
    archive = Path(_run(projects_dir, backups_dir, CARDIAC).archive)
    monkeypatch.setattr(importlib.import_module("fda_vault._members"), "MAX_MANIFEST_BYTES", 2_000)
    report = verify_archive(archive)
    assert [(p.path, p.kind) for p in report.problems] == [("metadata.json", "manifest")]
    assert "too large" in report.problems[0].detail
    with pytest.raises(IntegrityError) as info:
        _run(projects_dir, backups_dir, CARDIAC)
    assert "too large" in info.value.message
    assert list(backups_dir.glob("*.zip*")) == [archive]


class _DuringPacking(SilentProgress):
    """Runs ``action`` once, at the first block packed: "while the backup reads"."""

    def __init__(self, action: Callable[[], None]) -> None:
        self.action: Callable[[], None] | None = action

    def advance(self, nbytes: int) -> None:
        if self.action is not None:
            action, self.action = self.action, None
            action()


def test_backup_leaves_the_projects_root_exactly_as_it_found_it(
    projects_dir: Path, tmp_path: Path
) -> None:
    """Field trial: every backup left .fda-vault.lock and .fda-vault.lock.holder there."""
    before = snapshot(projects_dir)
    backup(all_projects=True, projects_dir=projects_dir, output_dir=tmp_path / "elsewhere")
    assert snapshot(projects_dir) == before


def test_two_backups_of_the_same_projects_to_two_folders_run_side_by_side(
    projects_dir: Path, tmp_path: Path
) -> None:
    second: list[BackupResult] = []

    def second_backup() -> None:  # runs while the first one is packing
        second.append(
            backup(all_projects=True, projects_dir=projects_dir, output_dir=tmp_path / "usb",
                   lock_timeout=0)
        )  # fmt: skip

    first = backup(
        all_projects=True,
        projects_dir=projects_dir,
        output_dir=tmp_path / "local",
        progress=_DuringPacking(second_backup),
    )
    assert verify_archive(Path(first.archive)).ok
    assert len(second) == 1 and verify_archive(Path(second[0].archive)).ok


def test_a_project_swapped_during_the_backup_fails_naming_it(
    projects_dir: Path, backups_dir: Path
) -> None:
    """What a restore does (rename in a new tree) while a backup reads: caught, no archive."""

    def swap() -> None:
        swap_like_a_restore(projects_dir, ORTHO)

    with pytest.raises(OperationError) as info:
        backup(
            projects=[ORTHO], projects_dir=projects_dir, output_dir=backups_dir,
            progress=_DuringPacking(swap),
        )  # fmt: skip
    assert info.value.what == str(projects_dir / ORTHO)
    assert "replaced while it was being backed up" in info.value.why
    assert list(backups_dir.glob("*.zip*")) == []
