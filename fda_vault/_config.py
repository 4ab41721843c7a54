"""Locations: flags first, then the environment, then the defaults (DESIGN.md)."""

from __future__ import annotations

import os
import re
from pathlib import Path

from fda_vault._errors import UsageError

__all__ = [
    "BACKUPS_ENV",
    "DEFAULT_FULL_EVERY_DAYS",
    "DEFAULT_LEVEL",
    "DEFAULT_LOCK_TIMEOUT",
    "IDENTITY_ENV",
    "PASSPHRASE_ENV",
    "PROJECTS_ENV",
    "find_archive",
    "location_of",
    "resolve_backups_dir",
    "resolve_keys",
    "resolve_projects_dir",
    "xdg_home",
]

IDENTITY_ENV = "FDA_VAULT_IDENTITY_FILE"
PASSPHRASE_ENV = "FDA_VAULT_PASSPHRASE_FILE"  # noqa: S105 (a variable name)
PROJECTS_ENV = "FDA_VAULT_PROJECTS_DIR"
BACKUPS_ENV = "FDA_VAULT_BACKUP_DIR"
DEFAULT_PROJECTS_DIR = Path("~/fda-510k-data/projects")
DEFAULT_LEVEL = 6  # --level: 0 stores, 1-9 deflate
DEFAULT_FULL_EVERY_DAYS = 30  # backup --full-every: read every file at least this often
DEFAULT_LOCK_TIMEOUT = 5.0  # --lock-timeout: seconds to wait for another run


def xdg_home(variable: str, default: str) -> Path:
    """An XDG base directory: ``$VARIABLE`` (``XDG_CONFIG_HOME``, ``XDG_CACHE_HOME``,
    ``XDG_STATE_HOME``), else ``~/DEFAULT`` (``.config``, ``.cache``, ``.local/state``)."""
    return Path(os.environ.get(variable) or os.path.join(os.path.expanduser("~"), default))


def resolve_projects_dir(flag: Path | None = None) -> Path:
    """The projects root from ``--projects-dir``, ``$FDA_VAULT_PROJECTS_DIR`` or the default."""
    if flag is not None:
        return flag.expanduser().absolute()
    env = os.environ.get(PROJECTS_ENV)
    if env:
        return Path(env).expanduser().absolute()
    return DEFAULT_PROJECTS_DIR.expanduser().absolute()


def resolve_backups_dir(flag: Path | None = None, projects_dir: Path | None = None) -> Path | str:
    """The backups location: its flag, ``$FDA_VAULT_BACKUP_DIR``, or ``<projects
    root>/backups``; a folder, or an ``s3://BUCKET/PREFIX`` URL (returned as text)."""
    if flag is not None:
        return location_of(str(flag), "--output-dir/--backups-dir")
    env = os.environ.get(BACKUPS_ENV)
    if env:
        return location_of(env, BACKUPS_ENV)
    return resolve_projects_dir(projects_dir) / "backups"


def resolve_keys(
    identities: list[Path], passphrase_file: Path | None
) -> tuple[tuple[Path, ...], Path | None]:
    """The key files: ``--identity`` flags, else ``$FDA_VAULT_IDENTITY_FILE`` (several
    separated by ``:``); ``--passphrase-file``, else ``$FDA_VAULT_PASSPHRASE_FILE``."""
    if not identities:
        env = os.environ.get(IDENTITY_ENV, "")
        identities = [Path(part) for part in env.split(os.pathsep) if part]
    if passphrase_file is None and os.environ.get(PASSPHRASE_ENV):
        passphrase_file = Path(os.environ[PASSPHRASE_ENV])
    expanded = tuple(path.expanduser().absolute() for path in identities)
    return expanded, passphrase_file.expanduser().absolute() if passphrase_file else None


# A scheme: two letters at least, so that a Windows drive letter (C:/) is not one.
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]+):/+(?P<rest>.*)$")


def location_of(location: str, given_as: str) -> Path | str:
    """A local path, or ``s3://…`` (a path type folds its ``//`` into ``/``: restored
    here); any other URL is refused plainly (rather than becoming a folder named
    ``gs:`` in the current folder)."""
    match = _URL.match(location)
    if match is None:
        return Path(location).expanduser().absolute()
    if match["scheme"].lower() != "s3":
        raise UsageError(
            f"{given_as} {location}",
            "only s3:// URLs are supported (for other stores, their S3-compatible endpoint "
            "with AWS_ENDPOINT_URL_S3, or a mounted folder)",
        )
    return f"s3://{match['rest']}"


def find_archive(path: Path, backups_dir: Path | str) -> Path | str:
    """``path`` if it exists (an ``s3://`` URL as such; any other URL is refused); a bare
    file name that does not exist here is that name in ``backups_dir`` (``restore
    all_projects_backup_…zip`` from any folder), if it is there (in object storage:
    assumed, the read tells)."""
    if _URL.match(str(path)):
        return location_of(str(path), "archive")
    if path.exists() or path.parent != Path():
        return path
    if isinstance(backups_dir, str):
        return f"{backups_dir.rstrip('/')}/{path.name}"
    candidate = backups_dir / path.name
    return candidate if candidate.is_file() else path
