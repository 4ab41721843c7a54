"""``fda-vault restore`` end to end: plans, prompts, refusals and JSON."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fda_vault._output import Terminal
from fda_vault._restore import RestorePlan, RestoreResult
from tests.conftest import CARDIAC, GLUCOSE, ORTHO, CliCall
from tests.tree import snapshot
from tests.zipbytes import flip_member_byte


def _projects(root: Path) -> dict[str, object]:
    return {p.name: snapshot(p) for p in sorted(root.iterdir()) if not p.name.startswith(".")}


@pytest.fixture
def interactive(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend a human sits at a terminal (CliRunner's stdin is not a TTY)."""
    monkeypatch.setattr(Terminal, "interactive", property(lambda _self: True))


def test_restore_into_target_dir_then_identical(
    cli: CliCall, archive: Path, projects_dir: Path, tmp_path: Path
) -> None:
    target = tmp_path / "elsewhere"
    first = cli("restore", archive, "--target-dir", target)
    assert first.exit_code == 0, first.stderr
    assert "every file verified" in first.stdout
    assert snapshot(target / CARDIAC) == snapshot(projects_dir / CARDIAC)
    second = cli("restore", archive, "--target-dir", target)
    assert second.exit_code == 0, second.stderr
    assert "identical" in second.stdout


def test_selective_restore_with_project_option(cli: CliCall, archive: Path, tmp_path: Path) -> None:
    target = tmp_path / "t"
    result = cli("restore", archive, "-p", ORTHO, "--target-dir", target, "--json")
    assert result.exit_code == 0, result.stderr
    parsed = RestoreResult.model_validate_json(result.stdout)
    assert parsed.created == [ORTHO] and parsed.files == 1
    assert [p.name for p in target.iterdir() if not p.name.startswith(".")] == [ORTHO]


def test_unknown_project_is_a_usage_error(cli: CliCall, archive: Path, tmp_path: Path) -> None:
    result = cli("restore", archive, "-p", "nope", "--target-dir", tmp_path / "t")
    assert result.exit_code == 2
    assert "nope" in result.stderr and CARDIAC in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_archive_is_exit_2(cli: CliCall, tmp_path: Path) -> None:
    result = cli("restore", tmp_path / "nope.zip", "--target-dir", tmp_path / "t")
    assert result.exit_code == 2
    assert "nope.zip" in result.stderr


def test_damaged_archive_is_exit_3_and_writes_nothing(
    cli: CliCall, archive: Path, projects_dir: Path
) -> None:
    flip_member_byte(archive, f"projects/{ORTHO}/device_profile.json")
    (projects_dir / ORTHO / "device_profile.json").write_bytes(b"mine")
    before = _projects(projects_dir)
    result = cli("restore", archive, "--projects-dir", projects_dir, "--force")
    assert result.exit_code == 3, result.stderr
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert _projects(projects_dir) == before


def test_dry_run_json_is_the_plan_and_writes_nothing(
    cli: CliCall, archive: Path, projects_dir: Path
) -> None:
    (projects_dir / CARDIAC / "device_profile.json").write_bytes(b"edited")
    (projects_dir / CARDIAC / "scratch.md").write_bytes(b"new work")
    before = snapshot(projects_dir)
    result = cli("restore", archive, "--projects-dir", projects_dir, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    plan = RestorePlan.model_validate_json(result.stdout)
    assert plan.dry_run is True
    cardiac = next(p for p in plan.projects if p.name == CARDIAC)
    assert (cardiac.action, cardiac.differing, cardiac.only_on_disk) == (
        "overwrite",
        ["device_profile.json"],
        ["scratch.md"],
    )
    assert snapshot(projects_dir) == before


def test_dry_run_table_names_the_changes(cli: CliCall, archive: Path, projects_dir: Path) -> None:
    (projects_dir / GLUCOSE / "device_profile.json").write_bytes(b"edited")
    result = cli("restore", archive, "--projects-dir", projects_dir, "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "dry run" in result.stdout
    assert f"{GLUCOSE}: changes if restored" in result.stdout
    assert "differing (replaced)" in result.stdout


def test_collision_without_terminal_exits_4_and_changes_nothing(
    cli: CliCall, archive: Path, projects_dir: Path
) -> None:
    (projects_dir / ORTHO / "device_profile.json").write_bytes(b"newer work")
    before = _projects(projects_dir)
    result = cli("restore", archive, "--projects-dir", projects_dir)
    assert result.exit_code == 4
    assert ORTHO in result.stderr and "--force" in result.stderr
    assert _projects(projects_dir) == before


def test_collision_under_json_exits_4_with_error_object(
    cli: CliCall, archive: Path, projects_dir: Path
) -> None:
    (projects_dir / ORTHO / "device_profile.json").write_bytes(b"newer work")
    result = cli("restore", archive, "--projects-dir", projects_dir, "--json")
    assert result.exit_code == 4
    error = json.loads(result.stdout)["error"]
    assert error["exit_code"] == 4 and ORTHO in error["message"]


@pytest.mark.usefixtures("interactive")
def test_interactive_yes_overwrites(cli: CliCall, archive: Path, projects_dir: Path) -> None:
    original = (projects_dir / ORTHO / "device_profile.json").read_bytes()
    (projects_dir / ORTHO / "device_profile.json").write_bytes(b"newer work")
    result = cli("restore", archive, "--projects-dir", projects_dir, input="y\n")
    assert result.exit_code == 0, result.stderr
    assert "Overwrite 1 project?" in result.stderr
    assert (projects_dir / ORTHO / "device_profile.json").read_bytes() == original


@pytest.mark.usefixtures("interactive")
def test_interactive_no_refuses(cli: CliCall, archive: Path, projects_dir: Path) -> None:
    (projects_dir / ORTHO / "device_profile.json").write_bytes(b"newer work")
    (projects_dir / CARDIAC / "device_profile.json").write_bytes(b"newer too")
    before = _projects(projects_dir)
    result = cli("restore", archive, "--projects-dir", projects_dir, input="n\n")
    assert result.exit_code == 4
    assert "Overwrite 2 projects?" in result.stderr
    assert _projects(projects_dir) == before


@pytest.mark.parametrize("flag", ["--force", "--yes", "-y"])
def test_force_and_yes_overwrite_without_asking(
    cli: CliCall, archive: Path, projects_dir: Path, flag: str
) -> None:
    original = (projects_dir / ORTHO / "device_profile.json").read_bytes()
    (projects_dir / ORTHO / "device_profile.json").write_bytes(b"newer work")
    result = cli("restore", archive, "--projects-dir", projects_dir, flag, "--json")
    assert result.exit_code == 0, result.stderr
    assert RestoreResult.model_validate_json(result.stdout).overwritten == [ORTHO]
    assert (projects_dir / ORTHO / "device_profile.json").read_bytes() == original


def test_dry_run_verifies_the_data_before_showing_a_plan(
    cli: CliCall, archive: Path, projects_dir: Path, tmp_path: Path
) -> None:
    flip_member_byte(archive, f"projects/{ORTHO}/device_profile.json")
    target = tmp_path / "fresh"
    result = cli("restore", archive, "--target-dir", target, "--dry-run")
    assert result.exit_code == 3
    assert "device_profile.json" in result.stderr and "Restore plan" not in result.stdout
    assert not target.exists()
