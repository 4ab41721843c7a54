"""The only Typer module: parse options, call one library function, render its result."""

from __future__ import annotations

import os
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Optional

import typer

from fda_vault import __version__
from fda_vault.backup import DEFAULT_LEVEL
from fda_vault.backup import backup as run_backup
from fda_vault.catalog import describe_archive, list_backups
from fda_vault.config import resolve_backups_dir, resolve_projects_dir
from fda_vault.errors import ExitCode, FdaVaultError, InterruptedByUser, OperationError
from fda_vault.locking import DEFAULT_LOCK_TIMEOUT
from fda_vault.output import Terminal
from fda_vault.verify import verify as run_verify

__all__ = ["app", "main"]

app = typer.Typer(
    name="fda-vault",
    help="Verifiable, restorable ZIP backups of FDA 510(k) project folders.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)

# Options shared by every command.
JsonOpt = Annotated[
    bool, typer.Option("--json", help="Print one JSON document on stdout, nothing else.")
]
QuietOpt = Annotated[
    bool, typer.Option("--quiet", "-q", help="No progress and no summary; errors still on stderr.")
]
DebugOpt = Annotated[
    bool, typer.Option("--debug", help="Show the traceback of unexpected errors.", hidden=True)
]
ProjectsDirOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--projects-dir",
        help="Projects root [env FDA_VAULT_PROJECTS_DIR; default ~/fda-510k-data/projects].",
        show_default=False,
    ),
]
LockTimeoutOpt = Annotated[
    float,
    typer.Option("--lock-timeout", min=0, help="Seconds to wait for another run's lock."),
]


def _version(value: bool) -> None:
    if value:
        typer.echo(f"fda-vault {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Show the version."),
    ] = False,
) -> None:
    """Verifiable, restorable ZIP backups of FDA 510(k) project folders."""


@contextmanager
def _reporting(term: Terminal, debug: bool) -> Iterator[None]:
    """Turn every failure into one error line and its documented exit code."""
    debug = debug or os.environ.get("FDA_VAULT_DEBUG") == "1"
    try:
        yield
    except typer.Exit:
        raise
    except FdaVaultError as exc:
        term.error(exc)
        raise typer.Exit(int(exc.exit_code)) from None
    except KeyboardInterrupt:
        term.error(InterruptedByUser("interrupted", "nothing was left half-done"))
        raise typer.Exit(int(ExitCode.INTERRUPTED)) from None
    except Exception as exc:  # unexpected: still one line, unless debugging
        if debug:
            traceback.print_exc()
        term.error(OperationError(f"unexpected {type(exc).__name__}", str(exc) or repr(exc)))
        raise typer.Exit(int(ExitCode.FAILURE)) from None


@app.command()
def backup(
    project: Annotated[
        Optional[list[str]],
        typer.Option(
            "--project", "-p", help="Project to back up (repeatable).", show_default=False
        ),
    ] = None,
    all_projects: Annotated[bool, typer.Option("--all", help="Back up every project.")] = False,
    projects_dir: ProjectsDirOpt = None,
    output_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--output-dir",
            help="Backups folder [env FDA_VAULT_BACKUP_DIR; default <projects root>/backups].",
            show_default=False,
        ),
    ] = None,
    level: Annotated[
        int,
        typer.Option("--level", min=0, max=9, help="0 stores, 1-9 deflate (faster to smaller)."),
    ] = DEFAULT_LEVEL,
    no_verify: Annotated[
        bool, typer.Option("--no-verify", help="Skip re-reading the archive after writing it.")
    ] = False,
    exclude: Annotated[
        Optional[list[str]],
        typer.Option(
            "--exclude",
            help="Leave out paths matching GLOB in a project: '*.tmp', 'cache/' (repeatable).",
            metavar="GLOB",
            show_default=False,
        ),
    ] = None,
    skip_unreadable: Annotated[
        bool,
        typer.Option(
            "--skip-unreadable", help="Record unreadable files as skipped instead of failing."
        ),
    ] = False,
    lock_timeout: LockTimeoutOpt = DEFAULT_LOCK_TIMEOUT,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Back up projects into one new, verified ZIP archive.

    Example: fda-vault backup -p K241234_cardiac_monitor --exclude '*.tmp'
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _reporting(term, debug):
        root = resolve_projects_dir(projects_dir)
        with term.progress() as progress:
            result = run_backup(
                project or [],
                all_projects=all_projects,
                projects_dir=root,
                output_dir=resolve_backups_dir(output_dir, root),
                level=level,
                verify=not no_verify,
                excludes=exclude or [],
                skip_unreadable=skip_unreadable,
                lock_timeout=lock_timeout,
                progress=progress,
            )
        term.backup_result(result)


@app.command()
def verify(
    backups: Annotated[
        list[Path],
        typer.Argument(help="Archives to check.", metavar="BACKUP...", show_default=False),
    ],
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Check archives fully: structure, manifest, names, every file's size and SHA-256.

    Exit 0 only when every archive is intact, 3 otherwise.
    Example: fda-vault verify backups/all_projects_backup_20261126_020000.zip
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _reporting(term, debug):
        with term.progress() as progress:
            result = run_verify(backups, progress=progress)
        term.verify_result(result)
        if not result.ok:
            raise typer.Exit(int(ExitCode.INTEGRITY))


@app.command("list")
def list_command(
    backup_file: Annotated[
        Optional[Path],
        typer.Argument(
            help="An archive to list; without it, list the backups folder.", metavar="[BACKUP]"
        ),
    ] = None,
    files: Annotated[
        bool, typer.Option("--files", help="List every file with size and SHA-256.")
    ] = False,
    backups_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--backups-dir",
            help="Backups folder [env FDA_VAULT_BACKUP_DIR; default <projects root>/backups].",
            show_default=False,
        ),
    ] = None,
    projects_dir: ProjectsDirOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List available backups, newest first, or what one archive holds (from its manifest).

    Examples: fda-vault list   |   fda-vault list all_projects_backup_20261126_020000.zip --files
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _reporting(term, debug):
        if backup_file is None:
            term.backup_list(list_backups(resolve_backups_dir(backups_dir, projects_dir)))
        else:
            term.archive_contents(describe_archive(backup_file, with_files=files))


def main() -> None:
    """Console-script entry point."""
    app(prog_name="fda-vault")
