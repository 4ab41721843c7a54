"""The real program in a subprocess: version, plain text for pipes and NO_COLOR, JSON only."""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

import fda_vault
from tests.cli.conftest import RunModule
from tests.conftest import CARDIAC, ORTHO, CliCall, MakeProject, backup_json, rewrite_archive
from tests.terminal import run_on_terminal, screen_lines

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


@pytest.mark.slow
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
    return run_on_terminal(args, env, columns=int(env.get("COLUMNS", "80")))


@pytest.mark.slow
def test_no_color_on_a_terminal_gives_plain_text(sample: dict[str, Path]) -> None:
    env = {"TERM": "xterm-256color", "NO_COLOR": "1", "COLUMNS": "300"}
    for args, code in [
        (["list", "--backups-dir", sample["backups"]], 0),
        (["list", sample["backups"] / "missing.zip"], 2),
    ]:
        status, output = _run_on_a_terminal(args, env)
        assert status == code
        assert not ANSI.search(output.decode("utf-8", "replace")), (args, output)


@pytest.mark.slow
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


@pytest.mark.parametrize("columns", [80, 60])
@pytest.mark.slow
def test_list_never_cuts_an_archive_name_on_a_narrow_terminal(
    make_backup: Any, frozen_clock: Any, tmp_path: Path, make_project: MakeProject, columns: int
) -> None:
    """Field trial: at 80 columns names and dates were cut (``K251099_ct_s…``)."""
    root = tmp_path / "p"
    long_name = "K251099_ct_scanner_dose_reduction_software"
    make_project(root, long_name, {"device_profile.json": b"{}"})
    make_project(root, ORTHO, {"device_profile.json": b"{}"})
    made = [make_backup(root, tmp_path / "b", "-p", long_name)]
    frozen_clock.set(2026, 11, 26, 7, 2, 27)
    made.append(make_backup(root, tmp_path / "b", "--all"))
    status, output = run_on_terminal(
        ["list", "--backups-dir", tmp_path / "b"], {"NO_COLOR": "1"}, columns=columns
    )
    assert status == 0
    lines = screen_lines(output)
    for archive in made:
        assert any(archive.name in line for line in lines), (archive.name, lines)
    assert "…" not in output.decode()
    assert any("2026-11-26 07:02:27" in line for line in lines)
    # Beyond the title and the archive names (never cut, so the terminal may wrap them),
    # every line fits.
    names = {archive.name for archive in made}
    assert all(len(line) <= columns for line in lines[1:] if line not in names), lines


@pytest.mark.slow
def test_list_is_a_table_where_it_fits(sample: dict[str, Path]) -> None:
    status, output = run_on_terminal(
        ["list", "--backups-dir", sample["backups"]], {"NO_COLOR": "1"}, columns=200
    )
    assert status == 0
    assert "created (UTC)" in output.decode()


@pytest.mark.slow
def test_guard_output_starts_on_a_clean_line_after_the_progress_bar(
    projects_dir: Path, tmp_path: Path
) -> None:
    """Field trial: ``verifying ━━━ 0.0/5.2 MiB ? -:--:--`` stayed on screen with the
    command's output glued onto it."""
    (projects_dir / ORTHO / "big.bin").write_bytes(os.urandom(8 << 20))
    status, output = run_on_terminal(
        ["guard", "--all", "--projects-dir", projects_dir, "--output-dir", tmp_path / "b",
         "--", sys.executable, "-c", "print('UPDATER-SAYS' + '-HELLO')"],
        {"NO_COLOR": "1"},
    )  # fmt: skip
    assert status == 0, output
    (line,) = [line for line in screen_lines(output) if "UPDATER-SAYS-HELLO" in line]
    assert line == "UPDATER-SAYS-HELLO"
    assert "MB/s" not in output.decode()  # one unit system: KiB/s, MiB/s as in summaries


@pytest.mark.slow
def test_piped_output_has_no_trailing_blanks(
    run_module: RunModule, sample: dict[str, Path]
) -> None:
    """Field trial: piped summaries were padded with blanks up to 112 columns."""
    for args in (
        ["list", "--backups-dir", sample["backups"]],
        ["list", sample["good"]],
        ["backup", "-p", ORTHO, "--projects-dir", sample["projects"],
         "--output-dir", sample["backups"]],
    ):  # fmt: skip
        done = run_module(*args)
        assert done.returncode == 0, done.stderr
        lines = done.stdout.splitlines()
        assert lines and all(line == line.rstrip() for line in lines), (args, done.stdout)
