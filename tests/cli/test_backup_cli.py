"""``fda-vault backup`` end to end: archives, names, JSON, and every exit code."""

from __future__ import annotations

import errno
import hashlib
import importlib
import json
import os
import re
import shutil
import stat
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from fda_vault._backup import BackupResult
from fda_vault._errors import ExitCode
from tests.conftest import (
    CARDIAC,
    GLUCOSE,
    ORTHO,
    CliCall,
    FrozenClock,
    MakeProject,
    backup_json,
    read_manifest_json,
)

STAMP = r"\d{8}_\d{6}"


def _zips(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.zip*")) if folder.exists() else []


def _assert_one_error_line(stderr: str, *needles: str) -> None:
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("error: ")]
    assert len(lines) == 1, stderr
    for needle in needles:
        assert needle in lines[0], (needle, lines[0])


def _error_json(stdout: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(stdout)
    assert set(data) == {"error"}
    return data["error"]  # type: ignore[no-any-return]


# --- exit 0 -------------------------------------------------------------------------


def test_single_project_backup(cli: CliCall, projects_dir: Path, backups_dir: Path) -> None:
    result = cli("backup", "-p", ORTHO, "--projects-dir", projects_dir, "--output-dir", backups_dir)
    assert result.exit_code == 0, result.stderr
    [archive] = _zips(backups_dir)
    assert re.fullmatch(rf"{ORTHO}_backup_{STAMP}\.zip", archive.name)
    assert str(archive) in result.stdout
    assert hashlib.sha256(archive.read_bytes()).hexdigest() in result.stdout
    with zipfile.ZipFile(archive) as zf:
        assert (
            zf.read(f"projects/{ORTHO}/device_profile.json")
            == (projects_dir / ORTHO / "device_profile.json").read_bytes()
        )


@pytest.mark.parametrize(
    ("args", "label", "projects"),
    [
        (["-p", GLUCOSE], GLUCOSE, [GLUCOSE]),
        (["-p", CARDIAC, "--project", ORTHO], "multi_project", [CARDIAC, ORTHO]),
        (["--all"], "all_projects", sorted([CARDIAC, GLUCOSE, ORTHO])),
    ],
    ids=["one-unicode", "several", "all"],
)
def test_label_and_projects(
    cli: CliCall,
    projects_dir: Path,
    backups_dir: Path,
    frozen_clock: FrozenClock,
    args: list[str],
    label: str,
    projects: list[str],
) -> None:
    frozen_clock.set(2026, 11, 26, 2, 0, 0)
    data = backup_json(cli, *args, "--projects-dir", projects_dir, "--output-dir", backups_dir)
    result = BackupResult.model_validate(data)
    assert Path(result.archive) == backups_dir / f"{label}_backup_20261126_020000.zip"
    assert result.projects == projects
    assert read_manifest_json(Path(result.archive))["projects"] == projects


def test_json_output_is_one_backup_result(
    cli: CliCall, projects_dir: Path, backups_dir: Path
) -> None:
    result = cli(
        "backup", "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir, "--json"
    )
    assert result.exit_code == 0, result.stderr
    parsed = BackupResult.model_validate_json(result.stdout)  # exactly one document
    archive = Path(parsed.archive)
    assert archive.is_file()
    assert parsed.archive_size == archive.stat().st_size
    assert parsed.archive_sha256 == hashlib.sha256(archive.read_bytes()).hexdigest()
    manifest = read_manifest_json(archive)
    assert parsed.files == manifest["total_files"] == len(manifest["files"])
    assert parsed.bytes == sum(f["size"] for f in manifest["files"])
    assert parsed.verified is True


def test_repeated_projects_are_backed_up_once(
    cli: CliCall, projects_dir: Path, backups_dir: Path
) -> None:
    data = backup_json(
        cli, "-p", ORTHO, "-p", ORTHO, "--projects-dir", projects_dir, "--output-dir", backups_dir
    )
    assert data["projects"] == [ORTHO]


def test_default_locations_come_from_the_environment(
    cli: CliCall, projects_dir: Path, tmp_path: Path
) -> None:
    vault = tmp_path / "vault"
    result = cli(
        "backup",
        "-p",
        ORTHO,
        "--json",
        env={"FDA_VAULT_PROJECTS_DIR": str(projects_dir), "FDA_VAULT_BACKUP_DIR": str(vault)},
    )
    assert result.exit_code == 0, result.stderr
    assert Path(json.loads(result.stdout)["archive"]).parent == vault
    assert stat.S_IMODE(vault.stat().st_mode) == 0o700


def test_default_backups_folder_is_inside_the_projects_root(
    cli: CliCall, projects_dir: Path
) -> None:
    data = backup_json(cli, "--all", "--projects-dir", projects_dir)
    archive = Path(data["archive"])
    assert archive.parent == projects_dir / "backups"
    assert stat.S_IMODE(archive.stat().st_mode) == 0o600
    assert stat.S_IMODE(archive.parent.stat().st_mode) == 0o700
    again = backup_json(cli, "--all", "--projects-dir", projects_dir)
    assert "backups" not in again["projects"]
    names = [f["path"] for f in read_manifest_json(Path(again["archive"]))["files"]]
    assert not any(".zip" in name for name in names)


def test_never_overwrites_an_existing_archive(
    cli: CliCall, projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock
) -> None:
    args = ("-p", ORTHO, "--projects-dir", projects_dir, "--output-dir", backups_dir)
    first = Path(backup_json(cli, *args)["archive"])
    before = first.read_bytes()
    second = Path(backup_json(cli, *args)["archive"])
    assert second.name == first.name.replace(".zip", "_1.zip")
    assert first.read_bytes() == before
    assert [p.name for p in _zips(backups_dir)] == sorted([first.name, second.name])


def test_exclude_and_no_verify_flags(
    cli: CliCall, tmp_path: Path, make_project: MakeProject, backups_dir: Path
) -> None:
    root = tmp_path / "p"
    make_project(
        root, "ex", {"a.md": b"a", "b.tmp": b"b", "guidance_cache/x": b"x", "guidance_cache/y": b""}
    )
    data = backup_json(
        cli,
        "-p",
        "ex",
        "--projects-dir",
        root,
        "--output-dir",
        backups_dir,
        "--exclude",
        "*.tmp",
        "--exclude",
        "guidance_cache/",
        "--no-verify",
    )
    assert data["verified"] is False
    assert data["excluded_files"] == 3
    manifest = read_manifest_json(Path(data["archive"]))
    assert [f["path"] for f in manifest["files"]] == ["ex/a.md"]
    assert manifest["exclude"] == {"patterns": ["*.tmp", "guidance_cache/"], "excluded_files": 3}


def test_level_zero_stores(cli: CliCall, projects_dir: Path, backups_dir: Path) -> None:
    data = backup_json(
        cli,
        "-p",
        CARDIAC,
        "--level",
        "0",
        "--projects-dir",
        projects_dir,
        "--output-dir",
        backups_dir,
    )
    with zipfile.ZipFile(data["archive"]) as zf:
        types = {i.compress_type for i in zf.infolist() if i.filename.startswith("projects/")}
    assert types == {zipfile.ZIP_STORED}


def test_symlinks_are_warned_about_on_stderr_only(
    cli: CliCall, projects_dir: Path, backups_dir: Path
) -> None:
    (projects_dir / ORTHO / "latest.json").symlink_to("device_profile.json")
    result = cli(
        "backup", "-p", ORTHO, "--projects-dir", projects_dir, "--output-dir", backups_dir, "--json"
    )
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["skipped"] == [
        {"path": f"{ORTHO}/latest.json", "reason": "symbolic link (not followed)"}
    ]
    human = cli("backup", "-p", ORTHO, "--projects-dir", projects_dir, "--output-dir", backups_dir)
    assert human.exit_code == 0
    assert "warning:" in human.stderr
    assert f"{ORTHO}/latest.json" in human.stderr
    assert "warning:" not in human.stdout


@pytest.mark.parametrize("mode", ["--quiet", "--json"])
def test_skipped_files_are_warned_about_under_quiet_and_json(
    cli: CliCall, projects_dir: Path, backups_dir: Path, mode: str
) -> None:
    """DESIGN: with -q (and --json) errors and warnings still go to stderr."""
    (projects_dir / ORTHO / "latest.json").symlink_to("device_profile.json")
    os.mkfifo(projects_dir / ORTHO / "pipe")
    result = cli(
        "backup", mode, "-p", ORTHO, "--projects-dir", projects_dir, "--output-dir", backups_dir
    )
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 2, result.stderr
    assert f"{ORTHO}/latest.json" in warnings[0] + warnings[1]
    assert f"{ORTHO}/pipe" in warnings[0] + warnings[1]


def test_quiet_prints_nothing_on_stdout(
    cli: CliCall, projects_dir: Path, backups_dir: Path
) -> None:
    result = cli(
        "backup", "-q", "-p", ORTHO, "--projects-dir", projects_dir, "--output-dir", backups_dir
    )
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert len(_zips(backups_dir)) == 1


def test_archive_checks_out_with_unzip_and_sha256sum(
    cli: CliCall, projects_dir: Path, backups_dir: Path, tmp_path: Path
) -> None:
    if shutil.which("unzip") is None or shutil.which("sha256sum") is None:
        pytest.skip("unzip or sha256sum is not installed")
    archive = Path(
        backup_json(cli, "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir)[
            "archive"
        ]
    )
    out = tmp_path / "unzipped"
    check = subprocess.run(
        f'unzip -q "{archive}" -d "{out}" && (cd "{out}" && sha256sum -c checksums.txt)',
        shell=True,
        capture_output=True,
        text=True,
        check=False,
    )
    assert check.returncode == 0, check.stdout + check.stderr
    ok_lines = [line for line in check.stdout.splitlines() if line.endswith(": OK")]
    assert len(ok_lines) == len(read_manifest_json(archive)["files"])
    assert (out / "projects" / CARDIAC / "drafts" / "empty_section").is_dir()
    assert (out / "projects" / CARDIAC / "notes" / "réunion_été_📝.md").read_bytes() == (
        projects_dir / CARDIAC / "notes" / "réunion_été_📝.md"
    ).read_bytes()


# --- exit 2 ---------------------------------------------------------------------------


def test_unknown_project_exits_2_and_names_the_existing_ones(
    cli: CliCall, projects_dir: Path, backups_dir: Path
) -> None:
    result = cli(
        "backup", "-p", "K999999_nope", "--projects-dir", projects_dir, "--output-dir", backups_dir
    )
    assert result.exit_code == ExitCode.USAGE == 2
    _assert_one_error_line(result.stderr, "K999999_nope", CARDIAC, GLUCOSE, ORTHO)
    assert ".cache" not in result.stderr
    assert result.stdout == ""
    assert _zips(backups_dir) == []


def test_unknown_project_under_json_prints_an_error_object(
    cli: CliCall, projects_dir: Path, backups_dir: Path
) -> None:
    result = cli(
        "backup",
        "-p",
        "K999999_nope",
        "--projects-dir",
        projects_dir,
        "--output-dir",
        backups_dir,
        "--json",
    )
    assert result.exit_code == 2
    error = _error_json(result.stdout)
    assert error["exit_code"] == 2
    assert error["kind"] == "usage"
    assert "K999999_nope" in error["message"]
    assert ORTHO in error["message"]
    _assert_one_error_line(result.stderr, "K999999_nope")


@pytest.mark.parametrize(
    "args",
    [
        ["--all", "-p", ORTHO],
        [],
        ["-p", ORTHO, "--level", "10"],
        ["-p", ORTHO, "--level", "-1"],
        ["-p", ORTHO, "--level", "fast"],
        ["-p", ORTHO, "--no-such-flag"],
        ["-p", ".cache"],
        ["-p", "README.txt"],
        ["-p", "../outside"],
    ],
    ids=[
        "all-and-project",
        "nothing",
        "level-10",
        "level-negative",
        "level-word",
        "unknown-flag",
        "hidden",
        "file",
        "dotdot",
    ],
)
def test_usage_errors_exit_2(
    cli: CliCall, projects_dir: Path, backups_dir: Path, args: list[str]
) -> None:
    result = cli("backup", *args, "--projects-dir", projects_dir, "--output-dir", backups_dir)
    assert result.exit_code == 2, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stderr.strip()
    assert _zips(backups_dir) == []


def test_missing_projects_root_exits_2(cli: CliCall, tmp_path: Path) -> None:
    result = cli("backup", "--all", "--projects-dir", tmp_path / "nowhere", "--json")
    assert result.exit_code == 2
    assert _error_json(result.stdout)["kind"] == "usage"
    _assert_one_error_line(result.stderr, str(tmp_path / "nowhere"))


# --- exit 1 --------------------------------------------------------------------------


def test_backups_path_that_is_a_file_exits_1(
    cli: CliCall, projects_dir: Path, tmp_path: Path
) -> None:
    blocker = tmp_path / "not_a_folder"
    blocker.write_bytes(b"I am a file")
    result = cli(
        "backup", "-p", ORTHO, "--projects-dir", projects_dir, "--output-dir", blocker, "--json"
    )
    assert result.exit_code == ExitCode.FAILURE == 1
    error = _error_json(result.stdout)
    assert error["exit_code"] == 1
    assert str(blocker) in error["message"]
    _assert_one_error_line(result.stderr, str(blocker))
    assert blocker.read_bytes() == b"I am a file"


def _deny_reading(monkeypatch: pytest.MonkeyPatch, target: Path) -> None:
    real_open = os.open

    def fake_open(path: Any, flags: int, *args: Any, **kwargs: Any) -> int:
        if os.fspath(path) == os.fspath(target):
            raise PermissionError(errno.EACCES, "Permission denied", os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", fake_open)


def test_unreadable_file_exits_1_naming_it(
    cli: CliCall, projects_dir: Path, backups_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = projects_dir / CARDIAC / "openfda" / "510k_records.json"
    _deny_reading(monkeypatch, target)  # tests run as root: chmod 000 would not deny
    result = cli(
        "backup", "-p", CARDIAC, "--projects-dir", projects_dir, "--output-dir", backups_dir
    )
    assert result.exit_code == 1
    _assert_one_error_line(result.stderr, str(target), "permission denied")
    assert _zips(backups_dir) == []


def test_skip_unreadable_exits_0_and_records_it(
    cli: CliCall, projects_dir: Path, backups_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    target = projects_dir / CARDIAC / "openfda" / "510k_records.json"
    _deny_reading(monkeypatch, target)
    data = backup_json(
        cli,
        "-p",
        CARDIAC,
        "--skip-unreadable",
        "--projects-dir",
        projects_dir,
        "--output-dir",
        backups_dir,
    )
    assert [s["path"] for s in data["skipped"]] == [f"{CARDIAC}/openfda/510k_records.json"]
    assert [(w["reason"], w["path"]) for w in data["warnings"]] == [("left_out", str(target))]


# A real chmod 000 file (even as root, with its override dropped) is tested in
# tests/test_faults.py::test_permission_denied_fails_naming_the_file_unless_skipped.


def test_unexpected_exception_is_one_line_exit_1(
    cli: CliCall, projects_dir: Path, backups_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("simulated bug")

    # The command imports the library function when it runs: patch it where it lives.
    monkeypatch.setattr(importlib.import_module("fda_vault._backup"), "backup", boom)
    args = ("backup", "-p", ORTHO, "--projects-dir", projects_dir, "--output-dir", backups_dir)
    result = cli(*args)
    assert result.exit_code == 1
    _assert_one_error_line(result.stderr, "RuntimeError", "simulated bug")
    debug = cli(*args, "--debug")
    assert debug.exit_code == 1
    assert "Traceback" in debug.stderr


# --- exit 3 --------------------------------------------------------------------------


@pytest.mark.usefixtures("damage_before_verification")
def test_archive_damaged_before_verification_exits_3_and_is_not_kept(
    cli: CliCall, projects_dir: Path, backups_dir: Path
) -> None:
    result = cli(
        "backup",
        "-p",
        ORTHO,
        "--level",
        "0",
        "--projects-dir",
        projects_dir,
        "--output-dir",
        backups_dir,
        "--json",
    )
    assert result.exit_code == ExitCode.INTEGRITY == 3
    assert _error_json(result.stdout)["kind"] == "integrity"
    _assert_one_error_line(result.stderr, "verification")
    assert _zips(backups_dir) == []


# --- exit 130 ------------------------------------------------------------------------


def test_ctrl_c_while_writing_exits_130_and_leaves_nothing(
    cli: CliCall, projects_dir: Path, backups_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    zipwriter = importlib.import_module("fda_vault._zipwriter")

    def interrupted(self: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(zipwriter.ZipWriter, "close", interrupted)
    result = cli(
        "backup", "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir, "--json"
    )
    assert result.exit_code == ExitCode.INTERRUPTED == 130
    assert _error_json(result.stdout)["kind"] == "interrupted"
    _assert_one_error_line(result.stderr, "interrupted")
    assert _zips(backups_dir) == []


def test_backups_inside_the_projects_folder_warn_once_unless_silenced(
    cli: CliCall, projects_dir: Path
) -> None:
    """The default layout: ``rm -rf projects`` takes the backups too (3-2-1 advice)."""
    result = cli("backup", "--all", "--projects-dir", projects_dir)
    assert result.exit_code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "same disk" in line]
    assert len(warnings) == 1 and warnings[0].startswith("warning: ")
    assert str(projects_dir / "backups") in warnings[0]
    silenced = cli("backup", "--all", "--projects-dir", projects_dir, "--same-disk-ok")
    assert silenced.exit_code == 0
    assert "same disk" not in silenced.stderr
    elsewhere = cli("backup", "--all", "--projects-dir", projects_dir,
                    "--output-dir", projects_dir.parent / "other")  # fmt: skip
    assert elsewhere.exit_code == 0
    assert "same disk" not in elsewhere.stderr


def test_a_repeat_backup_reports_what_it_copied_human_and_json(
    cli: CliCall, projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock
) -> None:
    args = ("--all", "--projects-dir", projects_dir, "--output-dir", backups_dir)
    frozen_clock.set(2030, 1, 1, 0, 0, 0)  # long after the files were written
    first = cli("backup", *args)
    assert first.exit_code == 0, first.stderr
    assert "none: every file read (first backup of this label)" in first.stdout
    frozen_clock.set(2030, 1, 2, 0, 0, 0)
    second = backup_json(cli, *args)
    parent = "all_projects_backup_20300101_000000.zip"
    assert second["parent"] == parent and second["full_read"] is None
    assert second["reused_files"] == second["files"] > 0
    assert second["reused_bytes"] == second["bytes"]
    frozen_clock.set(2030, 1, 3, 0, 0, 0)
    human = cli("backup", *args)
    copied = (
        rf"reused +{second['files']} unchanged files, .* copied from\s+all_projects_backup_2030"
    )
    assert re.search(copied, human.stdout), human.stdout
    frozen_clock.set(2030, 1, 4, 0, 0, 0)
    rehash = backup_json(cli, *args, "--rehash")
    assert rehash["reused_files"] == 0 and rehash["full_read"] == "--rehash"


def test_skip_if_unchanged_writes_nothing_and_names_the_parent(
    cli: CliCall, projects_dir: Path, backups_dir: Path, frozen_clock: FrozenClock
) -> None:
    args = ("--all", "--projects-dir", projects_dir, "--output-dir", backups_dir)
    frozen_clock.set(2030, 1, 1, 0, 0, 0)
    assert cli("backup", *args).exit_code == 0
    before = _zips(backups_dir)
    frozen_clock.set(2030, 1, 2, 0, 0, 0)
    skipped = cli("backup", *args, "--skip-if-unchanged")
    assert skipped.exit_code == 0, skipped.stderr
    assert "nothing changed since this backup: no archive written" in skipped.stdout
    assert "all_projects_backup_20300101_000000.zip" in skipped.stdout
    data = backup_json(cli, *args, "--skip-if-unchanged")
    assert data["unchanged"] is True
    assert Path(data["archive"]).name == "all_projects_backup_20300101_000000.zip"
    assert _zips(backups_dir) == before


def test_full_every_must_be_a_number_of_days(
    cli: CliCall, projects_dir: Path, backups_dir: Path
) -> None:
    result = cli(
        "backup", "--all", "--projects-dir", projects_dir, "--output-dir", backups_dir,
        "--full-every", "-1",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--full-every" in result.stderr and "Traceback" not in result.stderr
    assert _zips(backups_dir) == []
