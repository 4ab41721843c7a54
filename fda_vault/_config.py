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
    "PROJECTS_ENV",
    "find_archive",
    "resolve_backups_dir",
    "resolve_projects_dir",
]

PROJECTS_ENV = "FDA_VAULT_PROJECTS_DIR"
BACKUPS_ENV = "FDA_VAULT_BACKUP_DIR"
DEFAULT_PROJECTS_DIR = Path("~/fda-510k-data/projects")
DEFAULT_LEVEL = 6  # --level: 0 stores, 1-9 deflate
DEFAULT_FULL_EVERY_DAYS = 30  # backup --full-every: read every file at least this often
DEFAULT_LOCK_TIMEOUT = 5.0  # --lock-timeout: seconds to wait for another run


def resolve_projects_dir(flag: Path | None = None) -> Path:
    """The projects root from ``--projects-dir``, ``$FDA_VAULT_PROJECTS_DIR`` or the default."""
    if flag is not None:
        return flag.expanduser().absolute()
    env = os.environ.get(PROJECTS_ENV)
    if env:
        return Path(env).expanduser().absolute()
    return DEFAULT_PROJECTS_DIR.expanduser().absolute()


def resolve_backups_dir(flag: Path | None = None, projects_dir: Path | None = None) -> Path:
    """The backups folder: its flag, ``$FDA_VAULT_BACKUP_DIR``, or ``<projects root>/backups``."""
    if flag is not None:
        return _local(str(flag), "--output-dir/--backups-dir").expanduser().absolute()
    env = os.environ.get(BACKUPS_ENV)
    if env:
        return _local(env, BACKUPS_ENV).expanduser().absolute()
    return resolve_projects_dir(projects_dir) / "backups"


# s3://bucket/prefix (Typer's Path has already folded "//" into "/"); two letters at
# least, so that a Windows drive letter (C:/) is not taken for a scheme.
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]+:/")


def _local(location: str, given_as: str) -> Path:
    """A local path; an object-storage URL is refused plainly (rather than becoming a
    folder named ``s3:`` in the current folder)."""
    if _URL.match(location):
        raise UsageError(
            f"{given_as} {location}",
            "object storage locations are not supported yet; give a local or mounted folder",
        )
    return Path(location)


def find_archive(path: Path, backups_dir: Path) -> Path:
    """``path`` if it exists; a bare file name that does not exist here but does in
    ``backups_dir`` is that file (``restore all_projects_backup_…zip`` from any folder)."""
    if path.exists() or path.parent != Path():
        return path
    candidate = backups_dir / path.name
    return candidate if candidate.is_file() else path
