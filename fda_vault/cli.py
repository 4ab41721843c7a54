"""The only Typer module: parse options, call one library function, render its result."""

from __future__ import annotations

import os
import re
import signal
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, Optional

import typer
import typer.core
from typer._click import Context as ClickContext
from typer._click import HelpFormatter
from typer._click.core import ParameterSource
from typer._click.globals import get_current_context

from fda_vault import __version__
from fda_vault._config import (
    DEFAULT_FULL_EVERY_DAYS,
    DEFAULT_LEVEL,
    DEFAULT_LOCK_TIMEOUT,
    find_archive,
    resolve_backups_dir,
    resolve_keys,
    resolve_projects_dir,
)
from fda_vault._errors import (
    ExitCode,
    FdaVaultError,
    IntegrityError,
    InterruptedByUser,
    OperationError,
    UsageError,
)
from fda_vault._output import Terminal

if TYPE_CHECKING:
    from fda_vault._audit import AuditRecorder
    from fda_vault._crypto import Keys
    from fda_vault._jobconfig import JobConfig
    from fda_vault._s3 import ArchivePath
    from fda_vault._signing import PublicKey, SigningKey
    from fda_vault._storage import ObjectLock

# Each command imports the library module it needs when it runs: a `list` should not pay
# for building every pydantic model of backup, restore and prune at start-up.

__all__ = ["app", "main"]

app = typer.Typer(
    name="fda-vault",
    help="Verifiable, restorable ZIP backups of FDA 510(k) project folders.",
    no_args_is_help=True,
    add_completion=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class _Command(typer.core.TyperCommand):
    """Typer's plain help, without its Python type names: arguments are shown by their
    metavar (``BACKUP...``), not ``BACKUP <list[Path]>``, and the usage line reads
    ``BACKUP...`` and ``[BACKUP]``, not ``{BACKUP}...`` and ``[[BACKUP]]``."""

    def collect_usage_pieces(self, ctx: ClickContext) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name != "argument":
                continue
            name = param.metavar or (param.name or "").upper()
            if param.nargs != 1 and not name.endswith("..."):
                name += "..."
            pieces.append(name if param.required else f"[{name}]")
        return pieces

    def format_options(self, ctx: ClickContext, formatter: HelpFormatter) -> None:
        sections: dict[str, list[tuple[str, str]]] = {"Arguments": [], "Options": []}
        for param in self.get_params(ctx):
            record = param.get_help_record(ctx)
            if record is None:
                continue
            name, text = record
            if param.param_type_name == "argument":
                sections["Arguments"].append((re.sub(r" <[^>]*>$", "", name), text))
            else:
                sections["Options"].append((name, text))
        for title, rows in sections.items():
            if rows:
                with formatter.section(title):
                    formatter.write_dl(rows)


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
        help="Projects root (env FDA_VAULT_PROJECTS_DIR; default ~/fda-510k-data/projects).",
        show_default=False,
        metavar="DIR",
    ),
]
_BACKUPS_HELP = "Backups folder (env FDA_VAULT_BACKUP_DIR; default: backups in the projects root)."
OutputDirOpt = Annotated[
    Optional[Path],
    typer.Option("--output-dir", help=_BACKUPS_HELP, show_default=False, metavar="DIR"),
]
BackupsDirOpt = Annotated[
    Optional[Path],
    typer.Option("--backups-dir", help=_BACKUPS_HELP, show_default=False, metavar="DIR"),
]
LockTimeoutOpt = Annotated[
    float,
    typer.Option(
        "--lock-timeout", min=0, metavar="SECONDS", help="Seconds to wait for another run's lock."
    ),
]

IdentityOpt = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--identity",
        "-i",
        help="age identity file that opens encrypted archives (age-keygen's or fda-vault "
        "key generate's; an ssh-ed25519 private key too); repeatable (env "
        "FDA_VAULT_IDENTITY_FILE).",
        show_default=False,
        metavar="FILE",
    ),
]
PassphraseFileOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--passphrase-file",
        help="File whose first line is the passphrase of .zip.gpg archives (OpenPGP "
        "AES-256; env FDA_VAULT_PASSPHRASE_FILE).",
        show_default=False,
        metavar="FILE",
    ),
]


def _keys(identity: Optional[list[Path]], passphrase_file: Optional[Path]) -> Keys:
    """What may open encrypted archives: the flags, else the environment."""
    from fda_vault._crypto import Keys

    identities, passphrase = resolve_keys(identity or [], passphrase_file)
    return Keys(identity_files=identities, passphrase_file=passphrase)


LocationArg = Annotated[
    Optional[str],
    typer.Argument(
        help="Backups location: a folder or s3://BUCKET/PREFIX (default: the backups folder).",
        metavar="LOCATION",
        show_default=False,
    ),
]
TrustedKeyOpt = Annotated[
    Optional[list[Path]],
    typer.Option(
        "--trusted-key",
        help="minisign public key (fda-vault key generate --sign's FILE.pub); the archive "
        "must be signed by one of them, else exit 3; repeatable (env FDA_VAULT_TRUSTED_KEYS, "
        "':'-separated).",
        show_default=False,
        metavar="PUBFILE",
    ),
]
SignKeyOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--sign-key",
        help="Sign the archive with this minisign secret key (fda-vault key generate --sign; "
        "env FDA_VAULT_SIGN_KEY).",
        show_default=False,
        metavar="FILE",
    ),
]


def _trusted_keys(paths: Optional[list[Path]]) -> list[PublicKey]:
    """The trusted public keys: the flags, else ``FDA_VAULT_TRUSTED_KEYS``."""
    from fda_vault._signing import PublicKey

    if not paths:
        paths = [Path(p) for p in os.environ.get("FDA_VAULT_TRUSTED_KEYS", "").split(":") if p]
    return [PublicKey.load(path.expanduser()) for path in paths]


def _sign_key(path: Optional[Path]) -> SigningKey | None:
    """The signing key: the flag, else ``FDA_VAULT_SIGN_KEY``; None to sign nothing."""
    from fda_vault._signing import SigningKey

    path = path or (
        Path(os.environ["FDA_VAULT_SIGN_KEY"]) if os.environ.get("FDA_VAULT_SIGN_KEY") else None
    )
    return SigningKey.load(path.expanduser()) if path is not None else None


ObjectLockDaysOpt = Annotated[
    int,
    typer.Option(
        "--object-lock-days",
        min=0,
        metavar="DAYS",
        help="s3:// only: S3 Object Lock retention of each new archive (bucket with Object "
        "Lock enabled); 0: none.",
    ),
]
ObjectLockModeOpt = Annotated[
    str,
    typer.Option(
        "--object-lock-mode",
        metavar="MODE",
        help="compliance (nobody can delete it early) or governance (users with "
        "s3:BypassGovernanceRetention can).",
    ),
]


def _object_lock(days: int, mode: str) -> ObjectLock | None:
    """The Object Lock of new archives asked for (None: none)."""
    from fda_vault._storage import ObjectLock

    if mode not in {"compliance", "governance"}:
        raise UsageError(f"--object-lock-mode {mode}", "must be compliance or governance")
    if not days:
        return None
    return ObjectLock("COMPLIANCE" if mode == "compliance" else "GOVERNANCE", days)


def _archive_at(path: Path, backups: Path | str) -> ArchivePath:
    """The archive an argument names: a file, a bare name in the backups location, or
    ``s3://BUCKET/KEY``."""
    from fda_vault._storage import archive_path

    return archive_path(find_archive(path, backups))


def _location_arg(path: Path, name: str) -> Path | str:
    """A location argument: a folder (absolute) or ``s3://BUCKET/PREFIX``."""
    from fda_vault._config import location_of

    return location_of(str(path), name)


def _location_or_default(location: str | None, projects_dir: Path | None) -> Path | str:
    """A LOCATION argument, else the backups folder (flag, environment or default)."""
    if location:
        return _location_arg(Path(location), "LOCATION")
    return resolve_backups_dir(None, projects_dir)


def _local_only(location: Path | str, command: str) -> Path:
    """A local backups folder, or UsageError for a command that needs one."""
    if isinstance(location, str):
        raise UsageError(
            location,
            f"{command} needs a local backups folder; copy to object storage afterwards "
            "(fda-vault copy)",
        )
    return location


def _project_names(values: Optional[list[str]]) -> Optional[list[str]]:
    """``-p NAME/`` (a trailing slash from tab completion) means ``-p NAME``."""
    if values is None:
        return None
    return [value.rstrip("/") or value for value in values]


def _complete_projects(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of ``-p``: the projects of the projects root."""
    from fda_vault._backup import list_projects

    try:
        root = resolve_projects_dir(ctx.params.get("projects_dir"))
        return [name for name in list_projects(root) if name.startswith(incomplete)]
    except (FdaVaultError, OSError):
        return []


def _complete_archives(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion of an archive: files in the current folder, and the names in
    the backups folder (which the commands also find by their bare name)."""
    from fda_vault._catalog import archive_names

    found = sorted(
        str(p) for p in Path().glob(f"{incomplete}*") if p.suffix == ".zip" or p.is_dir()
    )
    try:
        folder = resolve_backups_dir(ctx.params.get("backups_dir"), ctx.params.get("projects_dir"))
        found += [name for name in archive_names(folder) if name.startswith(incomplete)]
    except (FdaVaultError, OSError):
        pass
    return list(dict.fromkeys(found))


def _project_option(text: str) -> Any:
    """``-p/--project NAME`` (repeatable, completed, a trailing slash dropped)."""
    return typer.Option(
        "--project",
        "-p",
        help=text,
        show_default=False,
        metavar="NAME",
        callback=_project_names,
        autocompletion=_complete_projects,
    )


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


# Ctrl-C (or SIGTERM) wherever it lands: inside a command (_reporting) or before one.
_INTERRUPTED = InterruptedByUser("interrupted", "nothing was left half-done")


@contextmanager
def _reporting(term: Terminal, debug: bool, audit: AuditRecorder | None = None) -> Iterator[None]:
    """Turn every failure into one error line and its documented exit code (and tell
    ``audit`` which error it was)."""
    debug = debug or os.environ.get("FDA_VAULT_DEBUG") == "1"
    try:
        yield
    except typer.Exit:
        raise
    except FdaVaultError as exc:
        _failed(term, exc, audit)
    except (KeyboardInterrupt, typer.Abort):  # Abort: Ctrl-C or EOF at a prompt
        _failed(term, _INTERRUPTED, audit)
    except Exception as exc:  # unexpected: still one line, unless debugging
        if debug:
            traceback.print_exc()
        unexpected = OperationError(
            f"unexpected {type(exc).__name__}", str(exc) or repr(exc), reason="unexpected"
        )
        _failed(term, unexpected, audit)


def _failed(term: Terminal, exc: FdaVaultError, audit: AuditRecorder | None) -> NoReturn:
    term.error(exc)
    if audit is not None:
        audit.error = exc
    raise typer.Exit(int(exc.exit_code)) from None


@contextmanager
def _audited(term: Terminal, debug: bool, command: str) -> Iterator[AuditRecorder]:
    """:func:`_reporting`, then one event in the audit trail of each location the
    command named (``audit.at``), with its result (``audit.result``) and exit code."""
    from fda_vault._audit import AuditRecorder

    context = get_current_context(silent=True)
    given = {}
    if context is not None:
        given = {
            name: value
            for name, value in context.params.items()
            if context.get_parameter_source(name) != ParameterSource.DEFAULT
        }
    audit = AuditRecorder(command, _option_words(given))
    code = 0
    try:
        with _reporting(term, debug, audit):
            yield audit
    except typer.Exit as exc:
        code = exc.exit_code
        raise
    finally:
        for line in audit.write(code):
            term.warning(line)


def _option_words(params: dict[str, Any]) -> list[str]:
    """The options a command was given, as ``name=value``. Options name files, never
    hold secrets: a passphrase or key is always read from a file (guard's command is
    recorded by its program alone)."""
    words: list[str] = []
    for name, value in params.items():
        if value in (None, [], ()) or name in {"as_json", "quiet", "debug"}:
            continue
        if name == "command" and isinstance(value, list):  # guard's: its arguments may
            words.append(f"command={value[0]} (+{len(value) - 1} arguments)")  # hold secrets
            continue
        values = value if isinstance(value, (list, tuple)) else [value]
        words.extend(f"{name}={item}" for item in values)
    return words


@app.command(cls=_Command)
def backup(
    project: Annotated[
        Optional[list[str]], _project_option("Project to back up (repeatable).")
    ] = None,
    all_projects: Annotated[bool, typer.Option("--all", help="Back up every project.")] = False,
    projects_dir: ProjectsDirOpt = None,
    output_dir: OutputDirOpt = None,
    level: Annotated[
        int,
        typer.Option(
            "--level",
            min=0,
            max=9,
            metavar="0-9",
            help="0 stores, 1-9 deflate (faster to smaller).",
        ),
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
    same_disk_ok: Annotated[
        bool,
        typer.Option(
            "--same-disk-ok",
            help="No warning when the backups folder is inside the projects folder.",
        ),
    ] = False,
    rehash: Annotated[
        bool,
        typer.Option("--rehash", help="Read every file; copy nothing from the last backup."),
    ] = False,
    full_every: Annotated[
        int,
        typer.Option(
            "--full-every",
            min=0,
            metavar="DAYS",
            help="Read every file when the last backup that did is DAYS old (0: always).",
        ),
    ] = DEFAULT_FULL_EVERY_DAYS,
    skip_if_unchanged: Annotated[
        bool,
        typer.Option(
            "--skip-if-unchanged",
            help="Write no archive when nothing changed since the last backup.",
        ),
    ] = False,
    encrypt_to: Annotated[
        Optional[list[str]],
        typer.Option(
            "--encrypt-to",
            "-r",
            help="Encrypt with age to RECIPIENT: an age1... key, an 'ssh-ed25519 ...' line, "
            "or @FILE with one per line (repeatable); writes NAME.zip.age.",
            metavar="RECIPIENT",
            show_default=False,
        ),
    ] = None,
    passphrase_file: PassphraseFileOpt = None,
    identity: IdentityOpt = None,
    sign_key: SignKeyOpt = None,
    object_lock_days: ObjectLockDaysOpt = 0,
    object_lock_mode: ObjectLockModeOpt = "governance",
    lock_timeout: LockTimeoutOpt = DEFAULT_LOCK_TIMEOUT,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Back up projects into one new, verified ZIP archive.

    Files unchanged since the newest intact backup of the same projects (same size,
    times, inode and device, and older than that backup by 3 s) are copied from it
    as stored, without reading them again; every archive still holds every file.

    --encrypt-to writes NAME.zip.age (age; open with `age -d -i KEY`), --passphrase-file
    NAME.zip.gpg (OpenPGP AES-256; `gpg -d`): the same ZIP inside, and an encrypted
    index beside it (NAME.zip.idx.age) so that listing needs no full decryption.
    --identity opens an encrypted last backup to copy unchanged files from.

    \b
    Examples:
      fda-vault backup --all
      fda-vault backup -p K241234_cardiac_monitor --exclude '*.tmp'
      fda-vault backup --all --skip-if-unchanged --json
      fda-vault backup --all --encrypt-to @team-recipients.txt
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _audited(term, debug, "backup") as audit:
        from fda_vault._backup import backup as run_backup
        from fda_vault._crypto import Encryption

        root = resolve_projects_dir(projects_dir)
        backups = resolve_backups_dir(output_dir, root)
        audit.at(backups, create=True)
        keys = _keys(identity, passphrase_file)
        encryption = Encryption.of(encrypt_to or [], keys.passphrase_file)
        signer = _sign_key(sign_key)
        with term.progress() as progress:
            result = run_backup(
                project or [],
                all_projects=all_projects,
                projects_dir=root,
                output_dir=backups,
                level=level,
                verify=not no_verify,
                excludes=exclude or [],
                skip_unreadable=skip_unreadable,
                lock_timeout=lock_timeout,
                progress=progress,
                warn_same_disk=not same_disk_ok,
                rehash=rehash,
                full_every_days=full_every,
                skip_if_unchanged=skip_if_unchanged,
                object_lock=_object_lock(object_lock_days, object_lock_mode),
                encryption=encryption,
                keys=keys,
                sign_key=signer,
            )
        audit.result = result
        term.backup_result(result)


@app.command(cls=_Command)
def verify(
    backups: Annotated[
        Optional[list[Path]],
        typer.Argument(
            help="Archives to check (a bare name is also looked for in the backups folder); "
            "with --sample, one backups location (default: the backups folder).",
            metavar="BACKUP",
            show_default=False,
            autocompletion=_complete_archives,
        ),
    ] = None,
    sample: Annotated[
        Optional[float],
        typer.Option(
            "--sample",
            metavar="PERCENT",
            help="Check PERCENT of the location's bytes, the archives least recently checked "
            "first (by its audit trail): a daily --sample 5 covers all in ~20 days.",
            show_default=False,
        ),
    ] = None,
    identity: IdentityOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    trusted_key: TrustedKeyOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Check archives fully: structure, manifest, names, every file's size and SHA-256.

    Every archive given is checked and reported (OK, DAMAGED or MISSING); the exit
    code is the worst: 3 if one is damaged, else 2 if one is missing, else 0.

    \b
    Examples:
      fda-vault verify all_projects_backup_20261126_020000.zip
      fda-vault verify --sample 5
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _audited(term, debug, "verify") as audit:
        from fda_vault._verify import sample_archives
        from fda_vault._verify import verify as run_verify

        chosen = None
        if sample is not None:
            if backups and len(backups) > 1:
                raise UsageError("--sample", "takes one backups location, not archives")
            place = _location_arg(backups[0], "BACKUP") if backups else resolve_backups_dir()
            audit.at(place, create=True)  # the trail is what the next run goes on from
            archives, chosen = sample_archives(place, sample)
        elif not backups:
            raise UsageError("verify", "name the archives to check, or give --sample PERCENT")
        else:
            archives = [_archive_at(path, resolve_backups_dir()) for path in backups]
        for archive in archives:
            audit.at_archive(archive)
        with term.progress() as progress:
            result = run_verify(
                archives,
                progress=progress,
                keys=_keys(identity, passphrase_file),
                trusted=_trusted_keys(trusted_key),
            )
        result.sample = chosen
        audit.result = result
        term.verify_result(result)
        if result.exit_code != ExitCode.OK:
            raise typer.Exit(int(result.exit_code))


@app.command("list", cls=_Command)
def list_command(
    backup_file: Annotated[
        Optional[Path],
        typer.Argument(
            help="An archive to list; without it, list the backups folder.",
            metavar="BACKUP",
            show_default=False,
            autocompletion=_complete_archives,
        ),
    ] = None,
    files: Annotated[
        bool, typer.Option("--files", help="List every file with size and SHA-256.")
    ] = False,
    backups_dir: BackupsDirOpt = None,
    projects_dir: ProjectsDirOpt = None,
    identity: IdentityOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """List available backups, newest first, or what one archive holds (from its manifest).

    \b
    Examples:
      fda-vault list
      fda-vault list all_projects_backup_20261126_020000.zip --files
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _reporting(term, debug):
        from fda_vault._catalog import describe_archive, list_backups

        folder = resolve_backups_dir(backups_dir, projects_dir)
        keys = _keys(identity, passphrase_file)
        if backup_file is None:
            term.backup_list(list_backups(folder, keys=keys))
        else:
            term.archive_contents(
                describe_archive(_archive_at(backup_file, folder), with_files=files, keys=keys)
            )


@app.command(cls=_Command)
def restore(
    backup_file: Annotated[
        Path,
        typer.Argument(
            help="The archive to restore from (a bare name is also looked for in the "
            "backups folder).",
            metavar="BACKUP",
            autocompletion=_complete_archives,
        ),
    ],
    project: Annotated[
        Optional[list[str]], _project_option("Restore only this project (repeatable).")
    ] = None,
    target_dir: Annotated[
        Optional[Path],
        typer.Option(
            "--target-dir",
            help="Where projects go (default: the projects root).",
            show_default=False,
            metavar="DIR",
        ),
    ] = None,
    projects_dir: ProjectsDirOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show the plan; write nothing.")
    ] = False,
    force: Annotated[
        bool, typer.Option("--force", help="Overwrite existing projects without asking.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Answer yes to the prompt.")] = False,
    identity: IdentityOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    lock_timeout: LockTimeoutOpt = DEFAULT_LOCK_TIMEOUT,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Restore projects from an archive exactly, verified, all or nothing.

    Existing projects that would change are shown and need a "y" or "yes" at the
    prompt (or --force/--yes); any other answer, or Ctrl-D, cancels with exit 4. Without
    a terminal, or with --json, such a restore exits 4 and changes nothing.

    \b
    Example:
      fda-vault restore all_projects_backup_20261126_020000.zip \\
          -p K241234_cardiac_monitor --dry-run
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _audited(term, debug, "restore") as audit:
        from fda_vault._restore import plan_restore
        from fda_vault._restore import restore as run_restore

        target = target_dir.expanduser().absolute() if target_dir else None
        target = target or resolve_projects_dir(projects_dir)
        archive = _archive_at(backup_file, resolve_backups_dir(None, projects_dir))
        audit.at_archive(archive)
        keys = _keys(identity, passphrase_file)
        overwrite = force or yes
        # The plan (which verifies the data first) is for showing and asking; with
        # --force/--yes there is nothing to ask, and restore() verifies every byte as it
        # stages it, before anything becomes visible.
        if dry_run or not overwrite:
            with term.progress() as progress:
                plan = plan_restore(
                    archive,
                    target_dir=target,
                    projects=project,
                    lock_timeout=lock_timeout,
                    progress=progress,
                    keys=keys,
                )
            for line in plan.recovered:
                term.warning(line)
            if dry_run:
                audit.result = plan
                term.restore_plan(plan, to_stdout=True)
                return
            if plan.overwrites:
                # The same plan, shown before asking: not a dry run, nothing written yet.
                term.restore_plan(plan.model_copy(update={"dry_run": False}), to_stdout=False)
                count = len(plan.overwrites)
                term.confirm_or_refuse(
                    f"Overwrite {count} {'project' if count == 1 else 'projects'}?",
                    command="restore",
                    refused=f"restore would overwrite {', '.join(plan.overwrites)}",
                    how="use --force or --yes",
                    nothing="nothing was changed",
                )
                overwrite = True
            del plan  # its file lists are not needed while restoring
        with term.progress() as progress:
            result = run_restore(
                archive,
                target_dir=target,
                projects=project,
                overwrite=overwrite,
                lock_timeout=lock_timeout,
                progress=progress,
                keys=keys,
            )
        audit.result = result
        for line in result.recovered:
            term.warning(line)
        term.restore_result(result)


@app.command(cls=_Command)
def prune(
    keep_last: Annotated[
        int, typer.Option("--keep-last", min=0, metavar="N", help="Keep the N newest backups.")
    ] = 0,
    keep_hourly: Annotated[
        int,
        typer.Option("--keep-hourly", min=0, metavar="N", help="Newest of each of N last hours."),
    ] = 0,
    keep_daily: Annotated[
        int,
        typer.Option("--keep-daily", min=0, metavar="N", help="Newest of each of N last days."),
    ] = 0,
    keep_weekly: Annotated[
        int,
        typer.Option(
            "--keep-weekly", min=0, metavar="N", help="Newest of each of N last ISO weeks."
        ),
    ] = 0,
    keep_monthly: Annotated[
        int,
        typer.Option("--keep-monthly", min=0, metavar="N", help="Newest of each of N last months."),
    ] = 0,
    keep_yearly: Annotated[
        int,
        typer.Option("--keep-yearly", min=0, metavar="N", help="Newest of each of N last years."),
    ] = 0,
    keep_within: Annotated[
        Optional[str],
        typer.Option(
            "--keep-within",
            metavar="DURATION",
            help="Keep all within DURATION of the newest: 30d, 6m, 1y, 2y5m7d3h.",
            show_default=False,
        ),
    ] = None,
    project: Annotated[
        Optional[list[str]],
        typer.Option(
            "--project",
            "-p",
            help="Only backups labelled NAME: a project, all_projects, multi_project (repeatable).",
            metavar="NAME",
            show_default=False,
            callback=_project_names,
        ),
    ] = None,
    backups_dir: BackupsDirOpt = None,
    projects_dir: ProjectsDirOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be kept and why; delete nothing.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Delete without asking.")] = False,
    identity: IdentityOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    lock_timeout: LockTimeoutOpt = DEFAULT_LOCK_TIMEOUT,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Delete old backups by a retention policy, never the last good one.

    Rules as restic forget, per label (multi_project: per project set): each
    --keep-* keeps the newest backup of each of its last N UTC periods that
    have backups; a backup kept by any rule stays. The newest backup always
    stays, and none is deleted unless a newer one of its label is intact:
    every file's data checked, now or by an earlier full check of the same
    unchanged file (30 days at most). Asks first unless --yes ("y" or "yes"
    deletes; any other answer, or Ctrl-D, cancels with exit 4); with no
    terminal, or with --json, exits 4 and deletes nothing. Exits 3 if a kept
    backup is damaged.

    \b
    Example:
      fda-vault prune --keep-daily 7 --keep-weekly 4 --keep-monthly 12 --dry-run
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _audited(term, debug, "prune") as audit:
        from fda_vault._prune import RetentionPolicy
        from fda_vault._prune import prune as run_prune

        folder = resolve_backups_dir(backups_dir, projects_dir)
        audit.at(folder, create=True)
        policy = RetentionPolicy(
            keep_last=keep_last,
            keep_hourly=keep_hourly,
            keep_daily=keep_daily,
            keep_weekly=keep_weekly,
            keep_monthly=keep_monthly,
            keep_yearly=keep_yearly,
            keep_within=keep_within,
        )
        labels = project or []
        keys = _keys(identity, passphrase_file)
        previewed = False
        if dry_run or yes:
            with term.progress() as progress:
                result = run_prune(
                    folder,
                    policy,
                    labels=labels,
                    dry_run=dry_run,
                    lock_timeout=lock_timeout,
                    progress=progress,
                    keys=keys,
                )
        else:
            with term.progress() as progress:
                plan = run_prune(
                    folder, policy, labels=labels, dry_run=True, progress=progress, keys=keys
                )
            doomed = [item.file for item in plan.archives if not item.kept]
            if doomed:
                noun = "backup" if len(doomed) == 1 else "backups"
                if term.interactive:
                    term.prune_result(plan, preview=True)
                term.confirm_or_refuse(
                    f"Delete {len(doomed)} {noun}?",
                    command="prune",
                    refused=f"prune would delete {len(doomed)} {noun}",
                    how="use --yes, or --dry-run to preview",
                    nothing="nothing was deleted",
                )
                previewed = True
            # Only what was shown may go: the plan is made again under the lock.
            result = run_prune(
                folder, policy, labels=labels, approved=doomed, lock_timeout=lock_timeout,
                keys=keys,
            )  # fmt: skip
        audit.result = result
        term.prune_result(result, table=not previewed)
        if not result.ok:
            raise typer.Exit(int(ExitCode.INTEGRITY))


@app.command(
    cls=_Command,
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
)
def guard(
    command: Annotated[
        list[str],
        typer.Argument(help="The command to run, after --.", metavar="-- COMMAND [ARGS]..."),
    ],
    project: Annotated[
        Optional[list[str]], _project_option("Project to protect (repeatable).")
    ] = None,
    all_projects: Annotated[bool, typer.Option("--all", help="Protect every project.")] = False,
    projects_dir: ProjectsDirOpt = None,
    output_dir: OutputDirOpt = None,
    keep_on_success: Annotated[
        bool,
        typer.Option(
            "--keep-on-success/--discard-on-success",
            help="Keep the safety backup when the command succeeds.",
        ),
    ] = True,
    no_rollback: Annotated[
        bool, typer.Option("--no-rollback", help="Only report a failure; do not restore.")
    ] = False,
    lock_timeout: LockTimeoutOpt = DEFAULT_LOCK_TIMEOUT,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Back up, run COMMAND, and restore the projects if it fails or is killed.

    The command's output and exit code pass through (under --json its stdout goes to
    stderr). If the backup fails, the command never runs. If it fails, or guard is
    interrupted (Ctrl-C, SIGTERM: exit 130), every process it started is stopped
    before the projects are rolled back.

    \b
    Example:
      fda-vault guard --all -- python3 update_manager.py --update-all
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _audited(term, debug, "guard") as audit:
        from fda_vault._guard import run_guarded

        root = resolve_projects_dir(projects_dir)
        backups = _local_only(resolve_backups_dir(output_dir, root), "guard")
        audit.at(backups, create=True)
        with term.progress() as progress:
            result = run_guarded(
                command,
                projects=project or [],
                all_projects=all_projects,
                projects_dir=root,
                backups_dir=backups,
                keep_on_success=keep_on_success,
                rollback=not no_rollback,
                stdout_to_stderr=as_json,
                lock_timeout=lock_timeout,
                progress=progress,
            )
        audit.result = result
        term.guard_result(result)
        if result.interrupted:
            raise typer.Exit(int(ExitCode.INTERRUPTED))
        if result.returncode != 0:
            raise typer.Exit(result.returncode)


@app.command(cls=_Command)
def diff(
    old: Annotated[
        Path,
        typer.Argument(
            help="The archive to compare from.",
            metavar="BACKUP",
            autocompletion=_complete_archives,
        ),
    ],
    new: Annotated[
        Optional[Path],
        typer.Argument(
            help="A second archive; without it, the live projects.",
            metavar="BACKUP_B",
            show_default=False,
            autocompletion=_complete_archives,
        ),
    ] = None,
    project: Annotated[
        Optional[list[str]], _project_option("Compare only this project (repeatable).")
    ] = None,
    content: Annotated[
        bool,
        typer.Option(
            "--content", help="Read every live file of equal size (not only changed times)."
        ),
    ] = False,
    exit_code: Annotated[
        bool, typer.Option("--exit-code", help="Exit 6 when there are differences.")
    ] = False,
    projects_dir: ProjectsDirOpt = None,
    identity: IdentityOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Show what changed: an archive against the live projects, or two archives.

    Each file is added, removed, changed (content) or metadata only (mode or time).
    A live file with the archive's size and time is not read unless --content.
    Exit 0 when it ran, whatever it found; with --exit-code, 6 when there are
    differences (failures keep their own codes).

    \b
    Examples:
      fda-vault diff all_projects_backup_20261126_020000.zip
      fda-vault diff all_projects_backup_20261126_020000.zip \\
          -p K241234_cardiac_monitor --exit-code
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _reporting(term, debug):
        from fda_vault._diff import diff as run_diff

        root = resolve_projects_dir(projects_dir)
        folder = resolve_backups_dir(None, projects_dir)
        with term.progress() as progress:
            result = run_diff(
                _archive_at(old, folder),
                _archive_at(new, folder) if new is not None else None,
                projects_dir=root,
                projects=project or [],
                content=content,
                progress=progress,
                keys=_keys(identity, passphrase_file),
            )
        term.diff_result(result)
        if exit_code and result.differences:
            raise typer.Exit(int(ExitCode.DIFFERENCES))


@app.command("copy", cls=_Command)
def copy_command(
    source: Annotated[
        Path,
        typer.Argument(
            help="Backups location to copy from: a folder or s3://BUCKET/PREFIX.",
            metavar="SOURCE",
            show_default=False,
        ),
    ],
    destination: Annotated[
        Path,
        typer.Argument(
            help="Backups location to copy to: a folder or s3://BUCKET/PREFIX.",
            metavar="DEST",
            show_default=False,
        ),
    ],
    label: Annotated[
        Optional[list[str]],
        typer.Option(
            "--label",
            "-l",
            help="Only archives with this label (a project, all_projects; repeatable).",
            metavar="LABEL",
            show_default=False,
        ),
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", "-n", help="Show what would be copied; copy nothing.")
    ] = False,
    object_lock_days: ObjectLockDaysOpt = 0,
    object_lock_mode: ObjectLockModeOpt = "governance",
    lock_timeout: LockTimeoutOpt = DEFAULT_LOCK_TIMEOUT,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Copy the archives that DEST lacks from SOURCE, each verified at DEST.

    Each is streamed, hashed (SHA-256) on the way, read back at the destination and
    hashed again, and published only when both agree; nothing is ever overwritten.

    \b
    Examples:
      fda-vault copy ~/fda-510k-data/projects/backups s3://acme-fda-backups/lap1
      fda-vault copy --dry-run s3://acme-fda-backups/lap1 ~/usb-backups
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _audited(term, debug, "copy") as audit:
        from fda_vault._copy import copy_archives

        origin, target = _location_arg(source, "SOURCE"), _location_arg(destination, "DEST")
        audit.at(origin)
        audit.at(target, create=True)
        with term.progress() as progress:
            result = copy_archives(
                origin,
                target,
                labels=label or [],
                dry_run=dry_run,
                object_lock=_object_lock(object_lock_days, object_lock_mode),
                lock_timeout=lock_timeout,
                progress=progress,
            )
        audit.result = result
        term.copy_result(result)
        if result.exit_code:
            raise typer.Exit(int(result.exit_code))


@app.command(cls=_Command)
def drill(
    location: LocationArg = None,
    archives: Annotated[
        Optional[int],
        typer.Option(
            "--archives",
            min=1,
            metavar="N",
            help="Drill N archives: the newest of each label first, then older ones at random.",
            show_default=False,
        ),
    ] = None,
    every: Annotated[bool, typer.Option("--all", help="Drill every archive.")] = False,
    project: Annotated[
        Optional[list[str]],
        _project_option("Only this project (repeatable): archives holding it, restored alone."),
    ] = None,
    projects_dir: ProjectsDirOpt = None,
    identity: IdentityOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Restore archives for real into a private folder, check every byte, and report.

    By default the newest archive of each label and one older one at random are
    restored (beside the live projects, then removed), each restored file read back
    and its SHA-256 compared; live files whose size and times are still those the
    backup recorded must have its SHA-256 (else: silent damage, named by path). Once
    per drill, the system unzip and sha256sum -c check an archive without fda-vault.
    Exit 3 when anything was found damaged, 1 when a restore failed otherwise.

    \b
    Examples:
      fda-vault drill
      fda-vault drill --archives 3 --json
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _audited(term, debug, "drill") as audit:
        from fda_vault._drill import drill as run_drill

        if every and archives is not None:
            raise UsageError("--archives and --all", "give one of them")
        root = resolve_projects_dir(projects_dir)
        place = _location_or_default(location, root)
        audit.at(place, create=True)
        with term.progress() as progress:
            result = run_drill(
                place,
                projects_dir=root,
                count=archives,
                every=every,
                projects=project or [],
                keys=_keys(identity, passphrase_file),
                progress=progress,
            )
        audit.result = result
        term.drill_result(result)
        if result.exit_code:
            raise typer.Exit(int(result.exit_code))


@app.command("log", cls=_Command)
def log_command(
    location: LocationArg = None,
    project: Annotated[
        Optional[list[str]],
        typer.Option(
            "--project",
            "-p",
            help="Only events naming PROJECT (repeatable).",
            metavar="PROJECT",
            show_default=False,
            callback=_project_names,
        ),
    ] = None,
    since: Annotated[
        Optional[str],
        typer.Option(
            "--since",
            help="Only events at or after DATE (2026-11-01, or 2026-11-01T08:00; UTC).",
            metavar="DATE",
            show_default=False,
        ),
    ] = None,
    check: Annotated[
        bool,
        typer.Option(
            "--verify",
            help="Check the chain and each archive's anchor of it: exit 0 intact, 3 broken.",
        ),
    ] = False,
    projects_dir: ProjectsDirOpt = None,
    identity: IdentityOpt = None,
    passphrase_file: PassphraseFileOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Show the audit trail of a backups location, newest first, or check it.

    Every backup, verify, restore, prune, copy, import, guard and drill appends one
    event (who, when, the options, the outcome and exit code, the archives with their
    SHA-256), chained by SHA-256 to the one before. --verify checks the chain and that
    each archive's manifest agrees with the trail it recorded as head when written.

    \b
    Examples:
      fda-vault log --since 2026-11-01
      fda-vault log --verify
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _reporting(term, debug):
        from fda_vault._audit import check_trail, read_log
        from fda_vault._storage import open_location

        place = open_location(_location_or_default(location, projects_dir))
        if check:
            report = check_trail(place, _keys(identity, passphrase_file))
            term.trail_report(report)
            if not report.intact:
                first = report.problems[0]
                term.error_line(IntegrityError(first.where, first.detail, reason="trail_broken"))
                raise typer.Exit(int(ExitCode.INTEGRITY))
            return
        term.audit_log(read_log(place, projects=project, since=_parse_since(since)))


def _parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"--since {text}", "not a date (2026-11-01 or 2026-11-01T08:00)") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _group(name: str, text: str) -> typer.Typer:
    """A command group (``fda-vault NAME COMMAND``) with the app's help options."""
    group = typer.Typer(
        name=name,
        help=text,
        no_args_is_help=True,
        context_settings={"help_option_names": ["-h", "--help"]},
    )
    app.add_typer(group)
    return group


key_app = _group(
    "key", "Keys: age identities for encrypted backups, minisign keys for signed ones."
)


@key_app.command("generate", cls=_Command)
def key_generate(
    identity_file: Annotated[
        Path,
        typer.Argument(help="Where the new secret key goes (never overwritten).", metavar="FILE"),
    ],
    sign: Annotated[
        bool,
        typer.Option(
            "--sign",
            help="A signing key instead (Ed25519, minisign's format): FILE and FILE.pub.",
        ),
    ] = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Make a new age identity in FILE (mode 0600) and print its public key.

    The file is in age-keygen's format: `age -d -i FILE` opens the backups too. Keep a
    copy offline; an archive encrypted to it cannot be opened without it (or another
    of its recipients).

    --sign makes a signing key instead: the secret in FILE (mode 0600, as `minisign -G
    -W` writes one), the public key in FILE.pub, for `backup --sign-key FILE` and
    `verify --trusted-key FILE.pub` (and `minisign -V -p FILE.pub`).

    \b
    Examples:
      fda-vault key generate ~/.config/fda-vault/age-key.txt
      fda-vault key generate --sign ~/.config/fda-vault/signing.key
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _reporting(term, debug):
        if sign:
            from fda_vault._signing import generate_signing_key

            term.generated_signing_key(generate_signing_key(identity_file.expanduser()))
            return
        from fda_vault._keys import generate_key

        term.generated_key(generate_key(identity_file.expanduser()))


ConfigOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--config",
        help="The job's config file (env FDA_VAULT_CONFIG; default "
        "~/.config/fda-vault/config.toml).",
        show_default=False,
        metavar="FILE",
    ),
]

config_app = _group("config", "The job's config file: make one, check one.")


@config_app.command("init", cls=_Command)
def config_init(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Write a commented config to start from (never over an existing file).

    \b
    Example:
      fda-vault config init --config ~/.config/fda-vault/laptop.toml
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _reporting(term, debug):
        from fda_vault._jobconfig import resolve_config_path, write_template

        written = write_template(resolve_config_path(config))
        if as_json:
            term.emit_json({"config": str(written)})
        elif not quiet:
            term.out.print(
                f"wrote {written}: edit it, then `fda-vault config check`", soft_wrap=True
            )


@config_app.command("check", cls=_Command)
def config_check(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Validate the config and print the effective settings (secrets masked).

    Every error names the file, the line and the key, exit 2. Unknown keys are errors.

    \b
    Example:
      fda-vault config check --config ~/.config/fda-vault/laptop.toml
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _reporting(term, debug):
        from fda_vault._jobconfig import load_config, masked, resolve_config_path

        path = resolve_config_path(config)
        term.config_settings(path, masked(load_config(path)))


@app.command(cls=_Command)
def run(
    config: ConfigOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what each step would do; write nothing.")
    ] = False,
    lock_timeout: Annotated[
        float,
        typer.Option(
            "--lock-timeout",
            min=0,
            metavar="SECONDS",
            help="Wait this long for another run of the same config to end (default: fail).",
        ),
    ] = 0.0,
    projects_dir: ProjectsDirOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run the whole job of the config: back up, verify, copy, prune.

    Back up into the first destination (copying unchanged files from the last backup),
    verify the new archive, copy to every other destination (each copy verified there),
    prune each destination by its own keep policy. A failed step stops the steps that
    depend on it, not the others; the exit code is the worst step's. Each step is an
    audit-trail event. notify and ping_url hear of the outcome; one that cannot be
    reached is a warning.

    \b
    Examples:
      fda-vault run --config ~/.config/fda-vault/config.toml --dry-run
      fda-vault run --json
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _reporting(term, debug):
        from fda_vault._jobconfig import load_config, resolve_config_path
        from fda_vault._run import run_job

        path = resolve_config_path(config)
        job = _with_flags(load_config(path), projects_dir)
        with term.progress() as progress:
            result = run_job(
                job, path, dry_run=dry_run, lock_timeout=lock_timeout, progress=progress
            )
        term.run_result(result)
        if result.exit_code:
            raise typer.Exit(result.exit_code)


@app.command(cls=_Command)
def status(
    config: ConfigOpt = None,
    max_age: Annotated[
        str,
        typer.Option(
            "--max-age",
            metavar="AGE",
            help="Not OK when a destination's newest intact backup is older: 26h, 2d, 1m.",
        ),
    ] = "26h",
    projects_dir: ProjectsDirOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Is the job alive? Each destination's newest intact backup, its age, the last run.

    Exit 0 when every destination has an intact backup younger than --max-age and the
    last run succeeded; else exit 1, with one line saying which (for Nagios, Zabbix,
    or a cron MAILTO).

    \b
    Example:
      fda-vault status --max-age 26h
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _reporting(term, debug):
        from fda_vault._config import resolve_keys
        from fda_vault._crypto import Keys
        from fda_vault._jobconfig import load_config, resolve_config_path
        from fda_vault._status import job_status, parse_age

        age = parse_age(max_age)
        path = resolve_config_path(config)
        job = _with_flags(load_config(path), projects_dir)
        identities, passphrase = resolve_keys(
            [job.path_of(p) for p in job.identity],
            job.path_of(job.passphrase_file) if job.passphrase_file else None,
        )
        keys = Keys(identity_files=identities, passphrase_file=passphrase)
        result = job_status(job, path, max_age=age, keys=keys)
        term.job_status(result)
        if not result.ok:
            raise typer.Exit(int(ExitCode.FAILURE))


def _with_flags(job: JobConfig, projects_dir: Path | None) -> JobConfig:
    """The config with what the command line says instead (flags override the file)."""
    if projects_dir is None:
        return job
    return job.model_copy(update={"projects_dir": str(projects_dir.expanduser().absolute())})


schedule_app = _group("schedule", "Run the job every day: a systemd user timer, or a crontab line.")
SystemdOpt = Annotated[bool, typer.Option("--systemd", help="A systemd user timer.")]
CronOpt = Annotated[bool, typer.Option("--cron", help="A line in your crontab.")]


def _schedule_kind(systemd: bool, cron: bool) -> Any:
    if systemd and cron:
        raise UsageError("--systemd and --cron", "give one of them")
    return "systemd" if systemd else "cron" if cron else None


@schedule_app.command("install", cls=_Command)
def schedule_install(
    config: ConfigOpt = None,
    at: Annotated[
        str, typer.Option("--at", metavar="HH:MM", help="Local time of the daily run.")
    ] = "02:30",
    systemd: SystemdOpt = False,
    cron: CronOpt = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Run `fda-vault run --config FILE` daily: a systemd user timer, else cron.

    The timer is Persistent (a run missed while the machine was off happens at boot),
    with a randomized delay of up to 15 minutes; the service runs at Nice=19 with idle
    I/O. Says when `loginctl enable-linger` is needed for it to run while you are
    logged out.

    \b
    Example:
      fda-vault schedule install --systemd --at 02:30
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _reporting(term, debug):
        from fda_vault._jobconfig import load_config, resolve_config_path
        from fda_vault._schedule import install

        path = resolve_config_path(config)
        load_config(path)  # a schedule of a broken config would fail every night
        term.schedule_result(install(path, at=at, kind=_schedule_kind(systemd, cron)))


@schedule_app.command("remove", cls=_Command)
def schedule_remove(
    systemd: SystemdOpt = False,
    cron: CronOpt = False,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Remove the schedule (the timer and its service, or the crontab line).

    \b
    Example:
      fda-vault schedule remove
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _reporting(term, debug):
        from fda_vault._schedule import remove

        term.schedule_result(remove(_schedule_kind(systemd, cron)))


@schedule_app.command("status", cls=_Command)
def schedule_status_command(
    config: ConfigOpt = None,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Where the job is scheduled, its next run, and how the last run went.

    \b
    Example:
      fda-vault schedule status
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _reporting(term, debug):
        from fda_vault._jobconfig import resolve_config_path
        from fda_vault._schedule import schedule_status

        term.schedule_status(schedule_status(resolve_config_path(config)))


@app.command("import", cls=_Command)
def import_command(
    legacy: Annotated[
        list[Path],
        typer.Argument(
            help="Archives of the original scripts: backup_project.py ZIPs, "
            "project_backup.py tar.gz files.",
            metavar="LEGACY",
            show_default=False,
        ),
    ],
    output_dir: OutputDirOpt = None,
    projects_dir: ProjectsDirOpt = None,
    lock_timeout: LockTimeoutOpt = DEFAULT_LOCK_TIMEOUT,
    as_json: JsonOpt = False,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Convert archives of the original scripts into verified fda-vault archives.

    Each new archive keeps the original's label and time in its name and records in its
    manifest what it was imported from (file, format, SHA-256). Originals are never
    changed or deleted. Every archive given is reported; the exit code is the worst.

    \b
    Example:
      fda-vault import ~/.claude/fda-510k-data/backups/*.tar.gz
    """
    term = Terminal(as_json=as_json, quiet=quiet)
    with _audited(term, debug, "import") as audit:
        from fda_vault._importer import import_legacy

        backups = _local_only(resolve_backups_dir(output_dir, projects_dir), "import")
        audit.at(backups, create=True)
        with term.progress() as progress:
            result = import_legacy(
                legacy, output_dir=backups, lock_timeout=lock_timeout, progress=progress
            )
        audit.result = result
        term.import_result(result)
        if result.exit_code:
            raise typer.Exit(result.exit_code)


def _terminate(signum: int, _frame: object) -> None:
    # SIGTERM (cron timeouts, systemd stop) gets the same clean rollback as Ctrl-C.
    raise KeyboardInterrupt


def _usage_error(exc: typer.TyperException, argv: list[str]) -> int:
    """A bad option or argument, caught by Typer: one line (and JSON), exit 2."""
    message = exc.format_message()
    if message:  # empty when Typer has already printed the help instead
        context = getattr(exc, "ctx", None)
        command = getattr(context, "command_path", "fda-vault")
        term = Terminal(as_json="--json" in argv)
        term.error(UsageError(message, f"see '{command} --help'"))
    return int(exc.exit_code)


@contextmanager
def _only_the_command_run(argv: list[str]) -> Iterator[None]:
    """Let Typer build only the command (or group) named first in ``argv``: it builds
    every command's parameters on each run (~40 ms of each, 19 commands), though one
    runs. Anything else (no command, an option first, an unknown name, shell
    completion) sees the whole app; the app is whole again afterwards."""
    commands, groups = app.registered_commands, app.registered_groups
    name = argv[0] if argv and not argv[0].startswith("-") else None
    if name is None or os.environ.get("_FDA_VAULT_COMPLETE"):
        yield
        return
    only = [c for c in commands if _command_name(c) == name]
    only_group = [g for g in groups if g.typer_instance and g.typer_instance.info.name == name]
    if only or only_group:
        app.registered_commands, app.registered_groups = only, only_group
    try:
        yield
    finally:
        app.registered_commands, app.registered_groups = commands, groups


def _command_name(command: typer.models.CommandInfo) -> str | None:
    """The name a command is run by (Typer's own rule for one given none)."""
    if command.name or command.callback is None:
        return command.name
    return typer.main.get_command_name(command.callback.__name__)


def main() -> None:
    """Console-script entry point."""
    signal.signal(signal.SIGTERM, _terminate)
    try:
        with _only_the_command_run(sys.argv[1:]):
            code = app(prog_name="fda-vault", standalone_mode=False)
    except typer.TyperException as exc:
        code = _usage_error(exc, sys.argv[1:])
    except (KeyboardInterrupt, typer.Abort):  # before a command began (while parsing)
        Terminal(as_json="--json" in sys.argv[1:]).error(_INTERRUPTED)
        code = int(ExitCode.INTERRUPTED)
    sys.exit(code if isinstance(code, int) else 0)
