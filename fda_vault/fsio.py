"""Small filesystem helpers for durable, atomic, private writes."""

from __future__ import annotations

import errno
import os
from pathlib import Path

from fda_vault.errors import OperationError

__all__ = ["describe_os_error", "fsync_dir", "make_private_dir", "publish_no_clobber"]


def describe_os_error(exc: OSError) -> str:
    """A short cause for an OSError, naming disk-full plainly."""
    if exc.errno == errno.ENOSPC:
        return "disk full (no space left on device)"
    if exc.errno == errno.EDQUOT:
        return "disk quota exceeded"
    if exc.errno in {errno.EACCES, errno.EPERM}:
        return "permission denied"
    return exc.strerror or str(exc)


def fsync_dir(path: Path) -> None:
    """Make a rename or create in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def make_private_dir(path: Path) -> None:
    """Create ``path`` (and parents) if missing; a folder we create gets mode 0700."""
    if path.is_dir():
        return
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    except OSError as exc:
        raise OperationError(path, f"cannot create folder ({describe_os_error(exc)})") from None


def publish_no_clobber(tmp: Path, final: Path) -> None:
    """Give ``tmp`` the name ``final`` atomically, never replacing an existing file."""
    try:
        os.link(tmp, final)  # fails with EEXIST instead of overwriting
    except FileExistsError:
        raise
    except OSError:
        # Filesystems without hard links: rename, having checked just before.
        if final.exists():
            raise FileExistsError(errno.EEXIST, "exists", str(final)) from None
        os.rename(tmp, final)
    else:
        os.unlink(tmp)
    fsync_dir(final.parent)
