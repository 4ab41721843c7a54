"""docs/DATA_BACKUP_RECOVERY.md, run: each disaster scenario with the runbook's commands.

The projects live where the runbook puts them, ``~/fda-510k-data/projects`` (HOME is a
private temporary folder, see conftest.py), as copies of ``examples/projects``; every
command is the one the runbook shows, and every check is the outcome it promises.
"""

from __future__ import annotations

import hashlib
import re
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import fda_vault
from fda_vault._restore import RestorePlan
from tests.conftest import CliCall, backup_json
from tests.tree import snapshot

REPO = Path(__file__).resolve().parent.parent
RUNBOOK = REPO / "docs" / "DATA_BACKUP_RECOVERY.md"
CARDIAC = "K241234_cardiac_monitor"
GLUCOSE = "K243456_glucose_meter"
PUMP = "K245678_infusion_pump"
EXAMPLES = (CARDIAC, GLUCOSE, PUMP)


def copy_examples(root: Path) -> Path:
    """Copy examples/projects to ``root``, with the empty folders git cannot store."""
    shutil.copytree(REPO / "examples" / "projects", root)
    listing = (REPO / "examples" / "EMPTY_DIRS.txt").read_text(encoding="utf-8")
    for line in listing.splitlines():
        if line.strip() and not line.startswith("#"):
            empty = Path(line.strip()).relative_to("examples/projects")
            (root / empty).mkdir(parents=True, exist_ok=True)
    return root


@pytest.fixture
def projects() -> Path:
    """``~/fda-510k-data/projects``: a copy of examples/projects with its empty folders."""
    return copy_examples(Path.home() / "fda-510k-data" / "projects")


def runbook_code(marker: str) -> str:
    """The runbook's fenced ``python`` block that contains ``marker``."""
    blocks = re.findall(r"```python\n(.*?)```", RUNBOOK.read_text(encoding="utf-8"), re.S)
    (block,) = [b for b in blocks if marker in b]
    return block


def _state(root: Path, *names: str) -> dict[str, object]:
    """Content, permission bits and mtimes of each named project (all examples by default)."""
    return {name: snapshot(root / name) for name in names or EXAMPLES}


def _plan(cli: CliCall, archive: Path, *args: str) -> RestorePlan:
    result = cli("restore", archive, *args, "--dry-run", "--json")
    assert result.exit_code == 0, result.stderr
    return RestorePlan.model_validate_json(result.stdout)


# --- Scenario A: a project folder was deleted by accident -------------------------------
def test_a_accidental_deletion(cli: CliCall, projects: Path) -> None:
    archive = Path(backup_json(cli, "--all")["archive"])
    before = _state(projects)

    shutil.rmtree(projects / CARDIAC)
    dry = cli("restore", archive, "-p", CARDIAC, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "dry run: nothing written" in dry.stdout and "create" in dry.stdout
    assert not (projects / CARDIAC).exists()  # the dry run wrote nothing

    done = cli("restore", archive, "-p", CARDIAC)
    assert done.exit_code == 0, done.stderr
    assert f"restored {CARDIAC}" in done.stdout and "every file verified" in done.stdout
    assert _state(projects) == before  # byte for byte, with modes and mtimes


# --- Scenario B: the disk died; restore on a new machine from the second disk ----------
def test_b_disk_failure_restore_to_a_new_machine(
    cli: CliCall, projects: Path, tmp_path: Path
) -> None:
    second_disk = tmp_path / "mnt" / "second-disk" / "fda-backups"
    second_disk.parent.mkdir(parents=True)  # the disk, mounted
    made = backup_json(cli, "--all", "--output-dir", second_disk)
    before = _state(projects)

    shutil.rmtree(Path.home() / "fda-510k-data")  # the old disk, backups folder and all

    listed = cli("list", "--backups-dir", second_disk)
    assert listed.exit_code == 0, listed.stderr
    assert Path(made["archive"]).name in listed.stdout
    incoming = Path.home() / "fda-510k-data" / "incoming"
    incoming.mkdir(parents=True)
    copy = Path(shutil.copy2(made["archive"], incoming))
    # The copy is the archive whose SHA-256 the backup printed.
    assert hashlib.sha256(copy.read_bytes()).hexdigest() == made["archive_sha256"]
    checked = cli("verify", copy)
    assert checked.exit_code == 0, checked.stderr
    assert checked.stdout.startswith("OK ")

    done = cli("restore", copy, "--target-dir", Path.home() / "fda-510k-data" / "projects")
    assert done.exit_code == 0, done.stderr
    assert _state(projects) == before


@pytest.mark.skipif(
    not (shutil.which("unzip") and shutil.which("sha256sum")), reason="needs unzip and sha256sum"
)
def test_b_copies_check_without_fda_vault(cli: CliCall, projects: Path, tmp_path: Path) -> None:
    archive = backup_json(cli, "--all")["archive"]
    check = tmp_path / "check"
    done = subprocess.run(
        f'unzip -q "{archive}" -d "{check}" && (cd "{check}" && sha256sum -c checksums.txt)',
        shell=True, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert done.stdout.count(": OK") == 33 and "FAILED" not in done.stdout


# --- Scenario C: corrupted project data, detected and repaired --------------------------
def test_c_corrupted_data_detected_and_repaired(cli: CliCall, projects: Path) -> None:
    archive = Path(backup_json(cli, "--all")["archive"])
    before = _state(projects)
    glucose = projects / GLUCOSE
    pdf = glucose / "pdfs" / "K201544_510k_summary.pdf"
    pdf.write_bytes(pdf.read_bytes()[:1000])  # a sync tool truncated it
    pulled = glucose / "openfda" / "510k_NBW_2020-2024.json"
    data = bytearray(pulled.read_bytes())
    data[200:208] = bytes(8)  # and zeroed bytes in another file
    pulled.write_bytes(bytes(data))
    new_work = glucose / "correspondence" / "call_notes_fda_2026-11-26.md"
    new_work.write_text("# Call notes 26 Nov\n", encoding="utf-8")
    damaged = _state(projects)

    # Detect: the dry run names exactly the damaged files, and the newer work.
    dry = cli("restore", archive, "-p", GLUCOSE, "--dry-run")
    assert dry.exit_code == 0, dry.stderr
    assert "differing (replaced)" in dry.stdout and "only on disk (removed)" in dry.stdout
    (plan,) = _plan(cli, archive, "-p", GLUCOSE).projects
    assert plan.action == "overwrite"
    assert plan.differing == ["openfda/510k_NBW_2020-2024.json", "pdfs/K201544_510k_summary.pdf"]
    assert plan.only_on_disk == ["correspondence/call_notes_fda_2026-11-26.md"]

    # Without --force and without a terminal: exit 4, nothing changed.
    refused = cli("restore", archive, "-p", GLUCOSE)
    assert refused.exit_code == 4
    assert f"error: restore would overwrite {GLUCOSE}" in refused.stderr
    assert "nothing was changed" in refused.stderr
    assert _state(projects) == damaged

    # Repair: rescue the newer file, restore with --force, put the newer file back.
    rescued = Path.home() / "rescued"
    rescued.mkdir()
    shutil.copy2(new_work, rescued)
    done = cli("restore", archive, "-p", GLUCOSE, "--force")
    assert done.exit_code == 0, done.stderr
    assert _state(projects) == before
    (after,) = _plan(cli, archive, "-p", GLUCOSE).projects
    assert after.action == "identical"
    shutil.copy2(rescued / new_work.name, new_work)
    assert new_work.read_text(encoding="utf-8") == "# Call notes 26 Nov\n"


# --- Scenario D: rolling back a bad update ----------------------------------------------
def test_d_guard_rolls_back_a_failed_update(cli: CliCall, projects: Path) -> None:
    updater = Path.home() / "update_manager.py"
    updater.write_text(runbook_code("Stand-in for the toolkit"), encoding="utf-8")
    before = _state(projects)

    failed = cli("guard", "--all", "--", sys.executable, updater, "--update-all")
    assert failed.exit_code == 1  # the updater's own exit code
    assert "failed (exit 1); rolled back" in failed.stderr
    assert _state(projects) == before
    (safety,) = (projects / "backups").glob("all_projects_backup_*.zip")
    assert fda_vault.verify_archive(safety).ok

    ok = cli("guard", "-p", PUMP, "--", sys.executable, updater, "--project", PUMP)
    assert ok.exit_code == 0, ok.stderr
    assert "succeeded; backup kept:" in ok.stderr
    assert not (projects / PUMP / "data_manifest.json").exists()  # the update stays
    assert _state(projects, CARDIAC, GLUCOSE) == {n: before[n] for n in (CARDIAC, GLUCOSE)}
    assert list((projects / "backups").glob(f"{PUMP}_backup_*.zip"))


def test_d_safeguard_api_rolls_back_and_reraises(projects: Path) -> None:
    script = Path.home() / "safe_update.py"
    script.write_text(runbook_code("fda_vault.safeguard("), encoding="utf-8")
    before = _state(projects)
    done = subprocess.run(
        [sys.executable, script], cwd=Path.home(), capture_output=True, text=True,
        timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1
    assert "TimeoutError: openFDA did not answer within 30 s" in done.stderr
    assert done.stdout.startswith("safety backup: ")
    assert _state(projects) == before
    (kept,) = (projects / "backups").glob(f"{CARDIAC}_backup_*.zip")
    assert fda_vault.verify_archive(kept).ok


# --- Scenario E: one project from an all-projects archive -------------------------------
def test_e_partial_restore_from_an_all_projects_archive(cli: CliCall, projects: Path) -> None:
    archive = Path(backup_json(cli, "--all")["archive"])
    before = _state(projects)
    # Newer work in the other projects, which the partial restore must not touch.
    (projects / CARDIAC / "predicate_comparison.md").write_text("newer\n", encoding="utf-8")
    newer = _state(projects, CARDIAC, GLUCOSE)

    typo = cli("restore", archive, "-p", "K245678_infusion_pmp", "--target-dir", "~/restored")
    assert typo.exit_code == 2
    assert "is not in" in typo.stderr and all(name in typo.stderr for name in EXAMPLES)

    restored = Path.home() / "restored"
    aside = cli("restore", archive, "-p", PUMP, "--target-dir", restored)
    assert aside.exit_code == 0, aside.stderr
    assert [p.name for p in restored.iterdir() if not p.name.startswith(".")] == [PUMP]
    assert snapshot(restored / PUMP) == before[PUMP]

    (projects / PUMP / "device_profile.json").unlink()  # now damage it in place
    in_place = cli("restore", archive, "-p", PUMP, "--force")
    assert in_place.exit_code == 0, in_place.stderr
    assert _state(projects, PUMP)[PUMP] == before[PUMP]
    assert _state(projects, CARDIAC, GLUCOSE) == newer


# --- An interrupted restore is finished (or rolled back) by the next run ----------------
KILL_IN_SWAP = """
import os, signal, sys
from fda_vault import _journal as journal
from fda_vault.cli import main
original = journal.Journal._forward
def forward(self, project):
    original(self, project)
    os.kill(os.getpid(), signal.SIGKILL)
journal.Journal._forward = forward
sys.argv = ["fda-vault", *sys.argv[1:]]
main()
"""


@pytest.mark.slow
def test_interrupted_restore_is_finished_by_the_next_backup(
    cli: CliCall, projects: Path, tmp_path: Path
) -> None:
    archive = Path(backup_json(cli, "--all", "--output-dir", tmp_path / "second-disk")["archive"])
    backed_up = _state(projects)
    for name in EXAMPLES:
        with (projects / name / "predicate_comparison.md").open("a", encoding="utf-8") as fp:
            fp.write("late edit\n")
    killed = subprocess.run(
        [sys.executable, "-c", KILL_IN_SWAP, "restore", str(archive), "--force"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert (projects / ".fda-vault-journal.json").exists()

    nightly = cli("backup", "--all")
    assert nightly.exit_code == 0, nightly.stderr
    assert f"warning: finished an interrupted restore of {', '.join(EXAMPLES)}" in (nightly.stderr)
    assert _state(projects) == backed_up  # every project the backup's version, none mixed
    assert not [p for p in projects.iterdir() if p.name.startswith(".fda-vault-staging-")]


# --- The schedule: the cron line and the systemd service, as printed --------------------
def _runbook_block_lines(pattern: str) -> list[str]:
    text = RUNBOOK.read_text(encoding="utf-8")
    return re.findall(pattern, text, flags=re.MULTILINE)


@pytest.mark.slow
def test_cron_line_and_systemd_service_run_as_printed(projects: Path) -> None:
    (cron,) = _runbook_block_lines(r"^30 2 \* \* \* (.+)$")
    steps = _runbook_block_lines(r"^ExecStart=(.+)$")
    assert len(steps) == 3 and "prune --keep-daily 7 --keep-weekly 4 --keep-monthly 12" in cron
    bin_dir = Path.home() / ".local" / "bin"
    bin_dir.mkdir(parents=True)
    (bin_dir / "fda-vault").symlink_to(Path(sys.executable).parent / "fda-vault")
    env = {"HOME": str(Path.home()), "PATH": f"{bin_dir}:/usr/bin:/bin", "LANG": "C.UTF-8"}
    backups = projects / "backups"

    def run(command: str) -> None:
        done = subprocess.run(
            ["/bin/sh", "-c", command], env=env, capture_output=True, text=True,
            timeout=60, check=False,
        )  # fmt: skip
        assert done.returncode == 0, f"{command}\n{done.stderr}"
        assert done.stdout == "" and done.stderr == ""  # -q: cron mails only on trouble

    run(cron)
    assert len(list(backups.glob("all_projects_backup_*.zip"))) == 1
    for step in steps:
        # What systemd does with specifiers and $$ before running the line.
        run(step.replace("%h", str(Path.home())).replace("$$", "$"))
    archives = list(backups.glob("all_projects_backup_*.zip"))
    assert len(archives) == 1  # the second run's prune removed the first (same day)
    assert fda_vault.verify_archive(archives[0]).ok
