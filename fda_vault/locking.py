"""One writer at a time per folder: a ``filelock`` lock plus a note naming its holder."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from filelock import FileLock, Timeout

from fda_vault.config import DEFAULT_LOCK_TIMEOUT
from fda_vault.errors import LockedError, OperationError

__all__ = ["DEFAULT_LOCK_TIMEOUT", "LOCK_NAME", "folder_lock"]

LOCK_NAME = ".fda-vault.lock"
_HOLDER_SUFFIX = ".holder"


@contextmanager
def folder_lock(folder: Path, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the lock of ``folder``; wait up to ``timeout`` s, then fail naming the holder.

    The OS releases the lock when its holder dies (``flock``), so a lock left by a
    killed run is taken over without any stale-lock guessing.
    """
    lock_path = folder / LOCK_NAME
    holder_path = folder / (LOCK_NAME + _HOLDER_SUFFIX)
    lock = FileLock(lock_path, mode=0o600)
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        try:
            holder = holder_path.read_text(encoding="utf-8").strip() or "unknown"
        except OSError:
            holder = "unknown"
        raise LockedError(
            folder, f"locked by another fda-vault run ({holder}); waited {timeout:g} s"
        ) from None
    except OSError as exc:
        raise OperationError(lock_path, f"cannot take the lock ({exc.strerror or exc})") from None
    try:
        # The note is a courtesy for the error message; the lock itself is what protects.
        with suppress(OSError):
            fd = os.open(holder_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="utf-8") as note:
                note.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
        yield
    finally:
        lock.release()
