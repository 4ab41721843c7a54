"""``fda-vault prune`` end to end: policies, dry run, prompts, refusals, JSON, exit codes."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest

from fda_vault._locking import folder_lock
from fda_vault._output import Terminal
from fda_vault._prune import REASON_NO_INTACT_NEWER, PruneResult
from fda_vault._verified import verified_earlier
from tests.conftest import CARDIAC, CliCall, FrozenClock
from tests.test_prune import nightly
from tests.zipbytes import flip_member_byte


@pytest.fixture
def interactive(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend a human sits at a terminal (CliRunner's stdin is not a TTY)."""
    monkeypatch.setattr(Terminal, "interactive", property(lambda _self: True))


@pytest.fixture
def ten_days(tmp_path: Path) -> list[Path]:
    """Ten nightly backups of ``alpha`` in ``tmp_path/backups``, oldest first."""
    return nightly(tmp_path / "backups", "alpha", date(2024, 1, 1), date(2024, 1, 10))


def zips(folder: Path) -> list[str]:
    """The archive names in ``folder``, sorted."""
    return sorted(p.name for p in folder.iterdir() if p.name.endswith(".zip"))


def test_help_shows_an_example(cli: CliCall) -> None:
    result = cli("prune", "--help")
    assert result.exit_code == 0
    assert "  fda-vault prune --keep-daily 7" in result.stdout


def test_no_keep_option_exits_2(cli: CliCall, ten_days: list[Path]) -> None:
    folder = ten_days[0].parent
    for extra in ([], ["--keep-last", "0"], ["--keep-within", "0d"], ["--yes"]):
        result = cli("prune", "--backups-dir", folder, *extra)
        assert result.exit_code == 2, (extra, result.stderr)
        assert "error: no keep option" in result.stderr
    assert len(zips(folder)) == 10


@pytest.mark.parametrize(
    "args", [["--keep-last", "-1"], ["--keep-daily", "many"], ["--keep-within", "3x"]]
)
def test_bad_values_exit_2(cli: CliCall, ten_days: list[Path], args: list[str]) -> None:
    result = cli("prune", "--backups-dir", ten_days[0].parent, "--yes", *args)
    assert result.exit_code == 2, result.stderr
    assert len(zips(ten_days[0].parent)) == 10


def test_missing_backups_dir_exits_2(cli: CliCall, tmp_path: Path) -> None:
    result = cli("prune", "--backups-dir", tmp_path / "nope", "--keep-last", "1", "--yes")
    assert result.exit_code == 2
    assert "backups folder not found" in result.stderr


def test_dry_run_shows_the_table_and_deletes_nothing(cli: CliCall, ten_days: list[Path]) -> None:
    folder = ten_days[0].parent
    result = cli("prune", "--backups-dir", folder, "--keep-daily", "3", "--dry-run")
    assert result.exit_code == 0, result.stderr
    assert "Prune plan: keep daily 3" in result.stdout
    assert "daily 3" in result.stdout
    assert "remove" in result.stdout
    assert "would remove 7 of 10 backups" in result.stdout
    assert "nothing was deleted" in result.stdout
    assert len(zips(folder)) == 10


def test_dry_run_json_parses_into_the_model(cli: CliCall, ten_days: list[Path]) -> None:
    folder = ten_days[0].parent
    result = cli("prune", "--backups-dir", folder, "--keep-last", "2", "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    parsed = PruneResult.model_validate_json(result.stdout)
    assert parsed.dry_run
    assert (parsed.kept, parsed.removed) == (2, 8)
    assert parsed.bytes_freed == sum(p.stat().st_size for p in ten_days[:8])
    assert [d.reasons for d in parsed.archives[:3]] == [["last 1"], ["last 2"], []]
    assert len(zips(folder)) == 10


def test_without_yes_and_without_terminal_exits_4(cli: CliCall, ten_days: list[Path]) -> None:
    folder = ten_days[0].parent
    result = cli("prune", "--backups-dir", folder, "--keep-last", "1")
    assert result.exit_code == 4, result.stderr
    assert "error: prune would delete 9 backups" in result.stderr
    assert "--yes" in result.stderr
    assert result.stdout == ""
    assert len(zips(folder)) == 10


def test_json_without_yes_exits_4_with_an_error_object(cli: CliCall, ten_days: list[Path]) -> None:
    folder = ten_days[0].parent
    result = cli("prune", "--backups-dir", folder, "--keep-last", "1", "--json")
    assert result.exit_code == 4
    error = json.loads(result.stdout)["error"]
    assert (error["kind"], error["exit_code"]) == ("refused", 4)
    assert len(zips(folder)) == 10


def test_nothing_to_delete_needs_no_consent(cli: CliCall, ten_days: list[Path]) -> None:
    folder = ten_days[0].parent
    result = cli("prune", "--backups-dir", folder, "--keep-last", "10")
    assert result.exit_code == 0, result.stderr
    assert "removed 0 of 10 backups" in result.stdout
    assert len(zips(folder)) == 10


def test_yes_deletes_and_reports(cli: CliCall, ten_days: list[Path]) -> None:
    folder = ten_days[0].parent
    result = cli("prune", "--backups-dir", folder, "--keep-last", "3", "-y")
    assert result.exit_code == 0, result.stderr
    assert "Pruned: keep last 3" in result.stdout
    assert "removed 7 of 10 backups" in result.stdout
    assert zips(folder) == [p.name for p in ten_days[-3:]]


def test_yes_json_parses_and_matches_the_folder(cli: CliCall, ten_days: list[Path]) -> None:
    folder = ten_days[0].parent
    result = cli("prune", "--backups-dir", folder, "--keep-within", "2d", "--yes", "--json")
    assert result.exit_code == 0, result.stderr
    parsed = PruneResult.model_validate_json(result.stdout)
    assert not parsed.dry_run and parsed.ok
    assert zips(folder) == sorted(d.file for d in parsed.archives if d.kept)
    assert parsed.removed == 8


def test_quiet_prints_nothing(cli: CliCall, ten_days: list[Path]) -> None:
    folder = ten_days[0].parent
    result = cli("prune", "--backups-dir", folder, "--keep-last", "1", "--yes", "-q")
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    assert len(zips(folder)) == 1


@pytest.mark.usefixtures("interactive")
def test_interactive_yes_deletes_what_was_shown(cli: CliCall, ten_days: list[Path]) -> None:
    folder = ten_days[0].parent
    result = cli("prune", "--backups-dir", folder, "--keep-last", "4", input="y\n")
    assert result.exit_code == 0, result.stderr
    assert "Prune plan: keep last 4" in result.stderr  # the preview, before the question
    assert "Delete 6 backups?" in result.stderr
    assert "removed 6 of 10 backups" in result.stdout
    assert zips(folder) == [p.name for p in ten_days[-4:]]


@pytest.mark.usefixtures("interactive")
def test_interactive_no_exits_4_and_deletes_nothing(cli: CliCall, ten_days: list[Path]) -> None:
    folder = ten_days[0].parent
    result = cli("prune", "--backups-dir", folder, "--keep-last", "4", input="n\n")
    assert result.exit_code == 4
    assert "error: prune cancelled — nothing was deleted" in result.stderr
    assert len(zips(folder)) == 10


def test_damaged_newest_keeps_the_good_one_and_exits_3(cli: CliCall, ten_days: list[Path]) -> None:
    folder = ten_days[0].parent
    newest = ten_days[-1]
    newest.write_bytes(newest.read_bytes()[:100])
    result = cli("prune", "--backups-dir", folder, "--keep-last", "1", "--yes", "--json")
    assert result.exit_code == 3, result.stderr
    assert f"warning: {newest.name} is damaged" in result.stderr
    parsed = PruneResult.model_validate_json(result.stdout)
    assert not parsed.ok
    assert parsed.archives[1].reasons == [REASON_NO_INTACT_NEWER]
    assert zips(folder) == [p.name for p in ten_days[-2:]]


def test_project_option_restricts_labels(cli: CliCall, ten_days: list[Path]) -> None:
    folder = ten_days[0].parent
    beta = nightly(folder, "beta", date(2024, 1, 1), date(2024, 1, 3))
    result = cli("prune", "--backups-dir", folder, "--keep-last", "1", "-p", "beta", "--yes")
    assert result.exit_code == 0, result.stderr
    assert zips(folder) == sorted([*(p.name for p in ten_days), beta[-1].name])
    unknown = cli("prune", "--backups-dir", folder, "--keep-last", "1", "-p", "gamma", "--yes")
    assert unknown.exit_code == 2
    assert "no backups labelled 'gamma'" in unknown.stderr


def test_default_folder_from_projects_dir_and_environment(
    cli: CliCall, ten_days: list[Path], tmp_path: Path
) -> None:
    # ten_days live in tmp_path/backups, the default for --projects-dir tmp_path.
    dry = cli("prune", "--projects-dir", tmp_path, "--keep-last", "1", "--dry-run", "--json")
    assert dry.exit_code == 0, dry.stderr
    assert json.loads(dry.stdout)["removed"] == 9
    env = {"FDA_VAULT_BACKUP_DIR": str(tmp_path / "backups")}
    done = cli("prune", "--keep-last", "2", "--yes", "--json", env=env)
    assert done.exit_code == 0, done.stderr
    assert len(zips(tmp_path / "backups")) == 2


def test_locked_folder_exits_1_and_deletes_nothing(cli: CliCall, ten_days: list[Path]) -> None:
    folder = ten_days[0].parent
    with folder_lock(folder):
        result = cli(
            "prune", "--backups-dir", folder, "--keep-last", "1", "--yes", "--lock-timeout", "0"
        )
    assert result.exit_code == 1
    assert "locked by another fda-vault run" in result.stderr
    assert len(zips(folder)) == 10


def test_strangers_in_the_folder_survive(cli: CliCall, ten_days: list[Path]) -> None:
    folder = ten_days[0].parent
    (folder / "README.txt").write_text("mine")
    (folder / "alpha_backup_20000101_000000.zip.tmp").write_text("mine")
    result = cli("prune", "--backups-dir", folder, "--keep-last", "1", "--yes")
    assert result.exit_code == 0, result.stderr
    assert (folder / "README.txt").read_text() == "mine"
    assert (folder / "alpha_backup_20000101_000000.zip.tmp").read_text() == "mine"


def test_data_damage_in_the_newer_backup_keeps_the_older_intact_one(
    cli: CliCall,
    make_backup: Callable[..., Path],
    frozen_clock: FrozenClock,
    projects_dir: Path,
    backups_dir: Path,
) -> None:
    """Field trial: one PDF byte flipped in the newer backup; prune kept it as 'check ok'
    and deleted the older, intact one."""
    frozen_clock.set(2026, 11, 1, 2, 0, 0)
    older = make_backup(projects_dir, backups_dir, "-p", CARDIAC)
    frozen_clock.set(2026, 11, 2, 2, 0, 0)
    newer = make_backup(projects_dir, backups_dir, "-p", CARDIAC)
    flip_member_byte(newer, f"projects/{CARDIAC}/pdfs/K201234_summary.pdf")
    result = cli("prune", "--keep-last", "1", "--yes", "--backups-dir", backups_dir, "--json")
    assert result.exit_code == 3, result.stderr
    assert older.exists() and newer.exists()
    by_file = {d["file"]: d for d in json.loads(result.stdout)["archives"]}
    assert by_file[newer.name]["intact"] is False
    assert by_file[newer.name]["check"].startswith("damaged: ")
    assert "K201234_summary.pdf" in by_file[newer.name]["check"]
    assert by_file[older.name]["kept"] is True
    assert by_file[older.name]["reasons"] == [REASON_NO_INTACT_NEWER]
    assert by_file[older.name]["check"].startswith("verified")


def test_check_column_says_how_each_archive_was_checked(
    cli: CliCall,
    make_backup: Callable[..., Path],
    frozen_clock: FrozenClock,
    projects_dir: Path,
    backups_dir: Path,
) -> None:
    frozen_clock.set(2026, 11, 1, 2, 0, 0)
    made = make_backup(projects_dir, backups_dir, "--all")  # backup records its own check
    frozen_clock.set(2026, 11, 2, 2, 0, 0)
    copied = make_backup(projects_dir, backups_dir, "--all")
    # A copy (new inode, new ctime) has no recorded check: this run reads its data.
    shutil.copyfile(copied, backups_dir / "tmp.zip")
    os.replace(backups_dir / "tmp.zip", copied)
    result = cli("prune", "--keep-last", "2", "--dry-run", "--backups-dir", backups_dir, "--json")
    assert result.exit_code == 0, result.stderr
    checks = {d["file"]: d["check"] for d in json.loads(result.stdout)["archives"]}
    assert checks[copied.name] == "verified"
    assert checks[made.name].startswith("verified earlier 20")
    again = cli("prune", "--keep-last", "2", "--dry-run", "--backups-dir", backups_dir)
    assert again.exit_code == 0
    assert "verified earlier" in again.stdout


def test_a_recorded_check_is_not_trusted_once_the_file_changed(
    make_backup: Callable[..., Path], projects_dir: Path, backups_dir: Path
) -> None:
    made = make_backup(projects_dir, backups_dir, "--all")
    assert verified_earlier(made) is not None
    stat_before = made.stat()
    flip_member_byte(made, f"projects/{CARDIAC}/pdfs/K201234_summary.pdf")
    # Even with the old mtime put back, the ctime (and so the identity) changed.
    os.utime(made, ns=(stat_before.st_atime_ns, stat_before.st_mtime_ns))
    assert verified_earlier(made) is None
