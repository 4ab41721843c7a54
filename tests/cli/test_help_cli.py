"""Every ``--help``: readable at 80 columns, no type names, and every example in it runs."""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from fda_vault import _s3
from fda_vault._jobconfig import template
from tests.conftest import CliCall, FrozenClock, backup_json
from tests.legacy_archives import make_legacy_tar
from tests.s3servers import Server, boto_client, server_env
from tests.test_runbook import copy_examples
from tools.clidoc import command_names

COMMANDS = command_names()


def _help(cli: CliCall, *command: str) -> str:
    result = cli(*command, "--help", env={"COLUMNS": "80"})
    assert result.exit_code == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("command", ["", *COMMANDS])
def test_help_fits_80_columns_and_shows_no_python_types(cli: CliCall, command: str) -> None:
    text = _help(cli, *command.split())
    for line in text.splitlines():
        assert len(line) <= 80, line
    # Field trial: <bool>, <list[str]>, <float range>, {BACKUP...}..., [[BACKUP]], cut flags.
    assert not re.search(r"<[a-z][^>]*>", text), text
    assert "{" not in text and "[[" not in text and "…" not in text, text


def _examples(text: str) -> list[str]:
    """The command lines under "Example:"/"Examples:", with "\\" continuations joined."""
    examples: list[str] = []
    inside = False
    for line in text.splitlines():
        if re.match(r"\s*Examples?:\s*$", line):
            inside = True
            continue
        if inside and line.strip().startswith("fda-vault "):
            examples.append(line.strip())
        elif inside and examples and examples[-1].endswith("\\"):
            examples[-1] = examples[-1][:-1].rstrip() + " " + line.strip()
        else:
            inside = False
    return examples


def _as_a_shell_would(args: list[str]) -> list[str]:
    """~ and path globs expanded (the examples are shell lines; a quoted '*.tmp' is a
    pattern for fda-vault, and has no folder part)."""
    expanded: list[str] = []
    for arg in args:
        arg = os.path.expanduser(arg)
        expanded += sorted(glob.glob(arg)) if "*" in arg and "/" in arg else [arg]
    return expanded


def test_every_command_shows_an_example(cli: CliCall) -> None:
    for command in COMMANDS:
        assert _examples(_help(cli, *command.split())), command


@pytest.mark.slow
def test_every_example_in_help_runs(
    cli: CliCall,
    frozen_clock: FrozenClock,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    moto_server: Server,
) -> None:
    """Run as the examples assume: the projects in ~/fda-510k-data/projects, a backup
    made on 2026-11-26 at 02:00 UTC, an update_manager.py in the current folder, and a
    bucket acme-fda-backups on the S3 server of the environment."""
    for key, value in server_env(moto_server.endpoint).items():
        monkeypatch.setenv(key, value)
    _s3.client.cache_clear()
    boto_client(moto_server.endpoint).create_bucket(Bucket="acme-fda-backups")
    root = copy_examples(Path.home() / "fda-510k-data" / "projects")
    legacy = Path.home() / ".claude" / "fda-510k-data" / "backups"  # the original library's
    legacy.mkdir(parents=True)
    make_legacy_tar(root, legacy / "fda_backup_all_projects_20250101_000000_000000.tar.gz")
    frozen_clock.set(2026, 11, 26, 2, 0, 0)
    assert backup_json(cli, "--all")["archive"].endswith("all_projects_backup_20261126_020000.zip")
    frozen_clock.set(2026, 11, 27, 2, 0, 0)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "update_manager.py").write_text("import sys\nsys.exit(0)\n")
    # The team's recipients, and the key of one of them in the environment: what the
    # encrypted example assumes, so that the commands after it open its archive.
    (Path.home() / ".config" / "fda-vault").mkdir(parents=True)
    team_key = tmp_path / "team-key.txt"
    made_key = cli("key", "generate", str(team_key), "--json")
    assert made_key.exit_code == 0, made_key.stderr
    public = json.loads(made_key.stdout)["public_key"]
    (tmp_path / "team-recipients.txt").write_text(f"# the team\n{public}\n")
    monkeypatch.setenv("FDA_VAULT_IDENTITY_FILE", str(team_key))
    # The job's config, as `config init` writes it (run, status and schedule use it).
    (Path.home() / ".config" / "fda-vault" / "config.toml").write_text(template())
    ran = []
    for command in COMMANDS:
        for example in _examples(_help(cli, *command.split())):
            args = _as_a_shell_would(shlex.split(example)[1:])
            result = cli(*args)
            assert result.exit_code == 0, (example, result.stderr)
            ran.append(example)
    assert len(ran) >= len(COMMANDS)


def test_shell_completion_is_offered() -> None:
    """Typer's completion script, for the shell the program is run from (bash here)."""
    done = subprocess.run(
        # "; exit $?" keeps bash as the parent (a lone command would be exec'ed).
        ["bash", "-c", f"{shlex.quote(sys.executable)} -m fda_vault --show-completion; exit $?"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "_fda_vault_completion" in done.stdout and "complete " in done.stdout


def test_completion_of_projects_and_archives(
    cli: CliCall, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = copy_examples(Path.home() / "fda-510k-data" / "projects")
    made = backup_json(cli, "--all")
    from fda_vault import cli as cli_module  # the completion functions, as Typer calls them

    class _Context:
        def __init__(self) -> None:
            self.params: dict[str, object] = {}

    found = cli_module._complete_projects(_Context(), "K24123")  # type: ignore[arg-type]
    assert found == ["K241234_cardiac_monitor"]
    monkeypatch.chdir(tmp_path)
    names = cli_module._complete_archives(_Context(), "all_")  # type: ignore[arg-type]
    assert Path(made["archive"]).name in names
    assert root.is_dir()


def test_a_trailing_slash_on_a_project_name_is_accepted(
    cli: CliCall, projects_dir: Path, backups_dir: Path
) -> None:
    """Field trial: ``-p NAME/`` (from tab completion) was refused."""
    result = cli("backup", "-p", "K250001_ortho_screw/", "--projects-dir", projects_dir,
                 "--output-dir", backups_dir, "--json")  # fmt: skip
    assert result.exit_code == 0, result.stderr


def test_a_bare_archive_name_is_found_in_the_backups_folder(
    cli: CliCall, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Field trial: ``restore ARCHIVE_NAME`` from another folder was "no such archive"."""
    copy_examples(Path.home() / "fda-510k-data" / "projects")
    name = Path(backup_json(cli, "--all")["archive"]).name
    monkeypatch.chdir(tmp_path)
    for args in (["verify", name], ["list", name], ["restore", name, "--dry-run"],
                 ["diff", name, "--exit-code"]):  # fmt: skip
        result = cli(*args)
        assert result.exit_code == 0, (args, result.stderr)
    missing = cli("verify", "all_projects_backup_20000101_000000.zip")
    assert missing.exit_code == 2


@pytest.mark.parametrize(
    ("answer", "code"),
    [("maybe\n", 4), ("n\n", 4), ("\n", 4), ("", 4), ("y\n", 0), ("YES\n", 0)],
)
def test_only_y_or_yes_restores_any_other_answer_cancels_with_exit_4(
    cli: CliCall,
    archive: Path,
    projects_dir: Path,
    answer: str,
    code: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Field trial: "maybe" re-asked with 'Error: invalid input', Ctrl-D ("") exited 130."""
    from fda_vault import _output as output

    monkeypatch.setattr(output.Terminal, "interactive", property(lambda self: True))
    edited = projects_dir / "K250001_ortho_screw" / "device_profile.json"
    edited.write_bytes(b"edited")
    result = cli("restore", archive, "--projects-dir", projects_dir, input=answer)
    assert result.exit_code == code, result.stderr
    assert "Error: invalid input" not in result.stderr
    assert result.stderr.count("Overwrite 1 project? [y/N]:") == 1
    assert (edited.read_bytes() == b"edited") is (code == 4)


def test_running_one_command_builds_only_it_and_leaves_the_app_whole(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import typer.main  # noqa: TID251 - the test watches what Typer builds

    from fda_vault import cli

    commands, groups = list(cli.app.registered_commands), list(cli.app.registered_groups)
    seen: list[tuple[int, int]] = []
    real = typer.main.get_command

    def spy(app: typer.Typer) -> object:  # what Typer builds the command line from
        seen.append((len(app.registered_commands), len(app.registered_groups)))
        return real(app)

    monkeypatch.setattr(typer.main, "get_command", spy)
    for argv, built in (
        (["--version"], (len(commands), len(groups))),
        (["list", "--help"], (1, 0)),
        (["key", "--help"], (0, 1)),
        (["nonesuch"], (len(commands), len(groups))),
    ):
        monkeypatch.setattr(sys, "argv", ["fda-vault", *argv])
        with pytest.raises(SystemExit):
            cli.main()
        assert seen[-1] == built, argv
        assert cli.app.registered_commands == commands and cli.app.registered_groups == groups
    out = capsys.readouterr()
    assert "fda-vault list [OPTIONS]" in out.out.replace("Usage: ", "")
    assert "No such command 'nonesuch'" in out.err
