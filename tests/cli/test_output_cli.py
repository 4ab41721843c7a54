"""The real program in a subprocess: version, plain text for pipes and NO_COLOR, JSON only."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import fda_vault
from tests.cli.conftest import RunModule
from tests.conftest import CARDIAC, ORTHO, CliCall, MakeProject, backup_json, rewrite_archive

ANSI = re.compile(r"\x1b")
SGR = re.compile(r"\x1b\[[0-9;]*m")  # colour and bold/italic, as opposed to cursor moves


@pytest.fixture
def sample(cli: CliCall, projects_dir: Path, tmp_path: Path) -> dict[str, Path]:
    """A backups folder with one good and one damaged archive."""
    backups = tmp_path / "backups"
    good = Path(
        backup_json(cli, "--all", "--projects-dir", projects_dir, "--output-dir", backups)[
            "archive"
        ]
    )
    bad = rewrite_archive(
        good,
        backups / "bad_backup_20200101_000000.zip",
        drop=[f"projects/{ORTHO}/device_profile.json"],
    )
    return {"projects": projects_dir, "backups": backups, "good": good, "bad": bad}


def _commands(sample: dict[str, Path]) -> list[tuple[list[str | Path], int]]:
    """Each command with its expected exit code: successes and failures alike."""
    return [
        (
            [
                "backup",
                "-p",
                CARDIAC,
                "--projects-dir",
                sample["projects"],
                "--output-dir",
                sample["backups"],
            ],
            0,
        ),
        (["backup", "-p", "nope", "--projects-dir", sample["projects"]], 2),
        (["verify", sample["good"]], 0),
        (["verify", sample["good"], sample["bad"]], 3),
        (["verify", sample["backups"] / "missing.zip"], 2),
        (["list", "--backups-dir", sample["backups"]], 0),
        (["list", sample["good"], "--files"], 0),
        (["list", sample["backups"] / "missing.zip"], 2),
        (["--help"], 0),
        (["backup", "--help"], 0),
    ]


def test_version(run_module: RunModule) -> None:
    result = run_module("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"fda-vault {fda_vault.__version__}"


def test_no_arguments_shows_help_as_a_usage_error(run_module: RunModule) -> None:
    result = run_module()
    assert result.returncode == 2
    text = result.stdout + result.stderr
    for command in ("backup", "verify", "list"):
        assert command in text
    assert "Traceback" not in text


def test_every_help_has_an_example(cli: CliCall) -> None:
    for command in ("backup", "verify", "list"):
        result = cli(command, "--help")
        assert result.exit_code == 0
        assert "Example" in result.stdout, command


def test_piped_output_has_no_escape_codes(run_module: RunModule, sample: dict[str, Path]) -> None:
    # A colour-capable TERM, so only the pipe (or NO_COLOR) can be what keeps codes out.
    colourful = {"TERM": "xterm-256color", "COLORTERM": "truecolor"}
    runs = [(args, code, {**colourful, "NO_COLOR": "1"}) for args, code in _commands(sample)]
    runs += [(args, code, colourful) for args, code in _commands(sample)[::2]]
    # Independent processes: run them side by side to keep the suite fast.
    with ThreadPoolExecutor(max_workers=8) as pool:
        results = list(pool.map(lambda run: run_module(*run[0], env=run[2]), runs))
    for (args, code, _env), result in zip(runs, results, strict=True):
        assert result.returncode == code, (args, result.stderr)
        assert not ANSI.search(result.stdout), (args, result.stdout)
        assert not ANSI.search(result.stderr), (args, result.stderr)
        assert "Traceback" not in result.stderr


def test_user_errors_are_one_line_without_traceback(cli: CliCall, sample: dict[str, Path]) -> None:
    for args, code in _commands(sample):
        if code != 2:
            continue
        result = cli(*args)
        assert result.exit_code == code
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1, (args, result.stderr)
        assert re.fullmatch(r"error: .+ — .+", lines[0]), lines[0]


def test_json_stdout_is_exactly_one_document(cli: CliCall, sample: dict[str, Path]) -> None:
    for args, code in _commands(sample):
        if "--help" in args:
            continue
        result = cli(*args, "--json")
        assert result.exit_code == code, (args, result.stderr)
        document = json.loads(result.stdout)  # fails on any extra text
        assert isinstance(document, dict)
        if code == 2 and args[0] == "verify":  # each archive reported, the missing one too
            assert "missing" in {report["status"] for report in document["archives"]}
        elif code == 2:
            assert document["error"]["exit_code"] == 2
        assert "{" not in result.stderr


def _run_on_a_terminal(args: list[str | Path], env: Mapping[str, str]) -> tuple[int, bytes]:
    """Run the program with stdin, stdout and stderr on a pseudo-terminal."""
    pty = pytest.importorskip("pty")
    controller, terminal = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "fda_vault", *map(str, args)],
        stdin=terminal,
        stdout=terminal,
        stderr=terminal,
        env={**os.environ, **env},
        close_fds=True,
    )
    os.close(terminal)
    output = b""
    while True:
        try:
            chunk = os.read(controller, 65536)
        except OSError:  # EIO: the program closed its end
            break
        if not chunk:
            break
        output += chunk
    os.close(controller)
    return process.wait(timeout=60), output


def test_no_color_on_a_terminal_gives_plain_text(sample: dict[str, Path]) -> None:
    env = {"TERM": "xterm-256color", "NO_COLOR": "1", "COLUMNS": "300"}
    for args, code in [
        (["list", "--backups-dir", sample["backups"]], 0),
        (["list", sample["backups"] / "missing.zip"], 2),
    ]:
        status, output = _run_on_a_terminal(args, env)
        assert status == code
        assert not ANSI.search(output.decode("utf-8", "replace")), (args, output)


def test_no_color_on_a_terminal_has_no_styles_around_progress(sample: dict[str, Path]) -> None:
    """Progress bars may move the cursor on a terminal, but nothing is coloured or bold."""
    env = {"TERM": "xterm-256color", "NO_COLOR": "1"}
    for args, code in [
        (["verify", sample["good"], sample["bad"]], 3),
        (
            [
                "backup",
                "-p",
                ORTHO,
                "--projects-dir",
                sample["projects"],
                "--output-dir",
                sample["backups"],
            ],
            0,
        ),
    ]:
        status, output = _run_on_a_terminal(args, env)
        assert status == code
        assert not SGR.search(output.decode("utf-8", "replace")), (args, output)


def test_names_are_never_read_as_markup(
    cli: CliCall, tmp_path: Path, make_project: MakeProject
) -> None:
    root = tmp_path / "p"
    name = "[bold red]K1"  # a "/" would make it a path, not a name
    make_project(root, name, {"[link=x]a.md": b"a"})
    result = cli("backup", "-p", name, "--projects-dir", root, "--output-dir", tmp_path / "b")
    assert result.exit_code == 0, result.stderr
    assert name in result.stdout
    archive = next((tmp_path / "b").glob("*.zip"))
    listing = cli("list", archive, "--files")
    assert listing.exit_code == 0
    assert f"{name}/[link=x]a.md" in listing.stdout
    missing = cli("list", tmp_path / "[red]x.zip")
    assert missing.exit_code == 2
    assert "[red]x.zip" in missing.stderr
