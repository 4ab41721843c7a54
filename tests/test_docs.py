"""The docs agree with the tool: a fresh CLI reference, every command and exit code documented."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from fda_vault._errors import ExitCode
from tests.test_runbook import copy_examples
from tools.clidoc import CLI_DOC_PATH, command_names, main, render_cli_reference

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
RUNBOOK = REPO / "docs" / "DATA_BACKUP_RECOVERY.md"
SECURITY = REPO / "docs" / "SECURITY.md"
EXPECTED_COMMANDS = {
    "key generate",
    "backup",
    "verify",
    "list",
    "restore",
    "prune",
    "guard",
    "import",
    "diff",
    "copy",
    "log",
    "drill",
    "config init",
    "config check",
    "run",
    "status",
    "schedule install",
    "schedule remove",
    "schedule status",
}
# DESIGN.md's migration table: each original command, and where users find it now.
MIGRATION = [
    ("`backup_project.py --project P` / `--all`", "`fda-vault backup -p P` / `--all`"),
    ("`backup_project.py --all --output-dir D`", "`fda-vault backup --all --output-dir D`"),
    ("`backup_project.py --list-backups`", "`fda-vault list`"),
    ("`restore_project.py --backup-file F --verify-only`", "`fda-vault verify F`"),
    ("`backup_project.py --all --quiet` (JSON for automation)", "`fda-vault backup --all --json`"),
    (
        "`restore_project.py --backup-file F [--project P] [--dry-run] [--force] [--target-dir D]`",
        "`fda-vault restore F [-p P] [--dry-run] [--force] [--target-dir D]`",
    ),
    ("`restore_project.py --backup-file F --list-contents`", "`fda-vault list F`"),
    ("`update_manager.py --update-all --backup`", "`fda-vault guard --all -- python update_"),
]


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _section(text: str, heading: str) -> str:
    """The body of the ``## heading`` section, up to the next heading of that level."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", text, re.M | re.S)
    assert match, f"no '## {heading}' section"
    return match.group(1)


def test_cli_reference_is_current() -> None:
    assert _read(CLI_DOC_PATH) == render_cli_reference(), "docs/cli.md is stale: run `make docs`"


@pytest.mark.slow
def test_cli_reference_render_is_stable_whatever_the_terminal(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    first = render_cli_reference()
    for name, value in {"COLUMNS": "37", "FORCE_COLOR": "1", "TERM": "xterm-256color"}.items():
        monkeypatch.setenv(name, value)
    assert render_cli_reference() == first
    assert "\x1b" not in first and not any(line != line.rstrip() for line in first.splitlines())


@pytest.mark.slow
def test_clidoc_main_writes_the_reference(tmp_path: Path) -> None:
    target = tmp_path / "cli.md"
    assert main([str(target)]) == 0
    assert _read(target) == render_cli_reference()


@pytest.mark.slow
def test_clidoc_runs_as_a_module(tmp_path: Path) -> None:
    target = tmp_path / "cli.md"
    done = subprocess.run(
        [sys.executable, "-m", "tools.clidoc", str(target)],
        capture_output=True, text=True, timeout=60, check=False, cwd=REPO,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert _read(target) == render_cli_reference()


def test_every_command_is_in_the_reference_and_the_readme() -> None:
    commands = set(command_names())
    assert commands == EXPECTED_COMMANDS, "a new command: document it, then update this test"
    reference, readme = _read(CLI_DOC_PATH), _read(README)
    for name in commands:
        assert f"## `fda-vault {name}`" in reference, f"{name} missing from docs/cli.md"
        assert f"Usage: fda-vault {name} " in reference
        assert f"### {name}\n" in readme, f"README has no section for {name}"
        assert f"fda-vault {name}" in readme


def _exit_code_rows(text: str) -> set[int]:
    return {int(code) for code in re.findall(r"^\| (\d+) \|", text, re.M)}


@pytest.mark.parametrize(
    ("doc", "heading"),
    [(README, "Exit codes"), (RUNBOOK, "8. Exit codes")],
    ids=["README", "runbook"],
)
def test_every_exit_code_is_documented(doc: Path, heading: str) -> None:
    assert _exit_code_rows(_section(_read(doc), heading)) == {int(code) for code in ExitCode}


def test_readme_quick_start_is_exactly_two_commands() -> None:
    section = _section(_read(README), "Quick start")
    blocks = re.findall(r"```sh\n(.*?)```", section, re.S)
    commands = [
        line.split("#", 1)[0].strip()
        for block in blocks
        for line in block.splitlines()
        if line.split("#", 1)[0].strip()
    ]
    assert commands == ["make demo", "make test"]


@pytest.mark.parametrize("doc", [README, RUNBOOK], ids=lambda p: p.name)
def test_migration_table_is_complete(doc: Path) -> None:
    text = _read(doc)
    for original, replacement in MIGRATION:
        rows = [line for line in text.splitlines() if line.startswith("|") and original in line]
        assert rows, f"{doc.name}: no row for {original}"
        assert any(replacement in row for row in rows), f"{doc.name}: {original} -> ?"


def test_docs_link_to_each_other() -> None:
    readme = _read(README)
    for target in ("docs/DATA_BACKUP_RECOVERY.md", "docs/cli.md", "docs/SECURITY.md"):
        assert f"]({target}" in readme
        assert (REPO / target).is_file()
    assert "](SECURITY.md" in _read(RUNBOOK)


def test_runbook_covers_the_five_scenarios_and_the_schedule() -> None:
    text = _read(RUNBOOK)
    for heading in (
        "### A. A project was deleted by accident",
        "### B. Disk failure: restore on a new machine",
        "### C. Corrupted project data detected and repaired",
        "### D. Rolling back a bad update",
        "### E. One project from an all-projects archive",
        "## 4. Schedules",
        "## 6. The 3-2-1 rule",
        "## 7. Troubleshooting (by error line)",
    ):
        assert heading in text
    assert "Overwrite 1 project? [y/N]" in text
    assert "fda-vault prune --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --yes" in text
    assert "[Timer]" in text and "OnCalendar=" in text
    assert "sha256sum -c checksums.txt" in text


def test_security_policy_names_the_corpus_and_a_contact() -> None:
    text = _read(SECURITY)
    for test_file in ("test_hostile.py", "test_mutations.py", "test_faults.py"):
        assert f"tests/{test_file}" in text
        assert (REPO / "tests" / test_file).is_file()
    assert "test_restore_crash.py" in text
    assert "security@" in text and "advisor" in text


def test_readme_python_api_example_runs(tmp_path: Path) -> None:
    readme = _read(README)
    (example,) = [b for b in re.findall(r"```python\n(.*?)```", readme, re.S) if "import" in b]
    home = Path.home()
    copy_examples(home / "fda-510k-data" / "projects")
    script = tmp_path / "api_example.py"
    script.write_text(example, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, script], cwd=home, capture_output=True, text=True, timeout=60,
        check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "intact: True" in done.stdout
    assert "exit 2: project 'K241234' is not in" in done.stdout


@pytest.mark.slow
def test_make_demo_runs_on_a_fresh_copy_of_the_checkout(tmp_path: Path) -> None:
    """The quick start's first command, without its install step (the venv running this
    test stands in for it): on a copy with no build/ folder, as a fresh clone has."""
    copy = tmp_path / "clone"
    copy.mkdir()
    shutil.copy(REPO / "Makefile", copy / "Makefile")
    shutil.copytree(REPO / "examples", copy / "examples")
    shutil.copy(REPO / "pyproject.toml", copy / "pyproject.toml")
    bin_dir = Path(sys.executable).parent
    done = subprocess.run(
        ["make", "-C", str(copy), "demo", f"BIN={bin_dir}", "-o", f"{bin_dir}/fda-vault"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "OK build/demo-backups/all_projects_backup_" in done.stdout
