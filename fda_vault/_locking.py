"""One writer at a time per folder, two ways.

- :func:`folder_lock`, for a backups folder (ours to write in): a ``filelock`` lock file
  plus a note naming its holder, so a waiting run can say who holds it.
- :func:`tree_lock`, for a projects root or a restore target (the user's folders): an
  ``flock`` on the folder itself, so that nothing is ever written there to lock it; a
  backup then leaves the projects root exactly as it found it, and a refused restore
  leaves no trace in its target.

The OS releases both when their holder dies, so a lock left by a killed run is taken
over without any stale-lock guessing.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from fda_vault._config import DEFAULT_LOCK_TIMEOUT
from fda_vault._errors import LockedError
from fda_vault._fsio import os_failure

__all__ = ["DEFAULT_LOCK_TIMEOUT", "LOCK_NAME", "folder_lock", "holder_of", "tree_lock"]

LOCK_NAME = ".fda-vault.lock"
_HOLDER_SUFFIX = ".holder"
_POLL = 0.05


@contextmanager
def folder_lock(folder: Path, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
    """Hold the lock of ``folder``; wait up to ``timeout`` s, then fail naming the holder."""
    from filelock import FileLock, Timeout  # ~10 ms of start-up that list never needs

    lock_path = folder / LOCK_NAME
    holder_path = folder / (LOCK_NAME + _HOLDER_SUFFIX)
    lock = FileLock(lock_path, mode=0o600)
    try:
        lock.acquire(timeout=timeout)
    except Timeout:
        raise LockedError(
            folder, f"locked by another fda-vault run ({holder_of(folder)}); waited {timeout:g} s"
        ) from None
    except OSError as exc:
        # Named by the folder the user gave: the lock file is our business, not theirs.
        raise os_failure(folder, exc, "cannot write") from None
    try:
        # The note is a courtesy for the error message; the lock itself is what protects.
        with suppress(OSError):
            fd = os.open(holder_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with open(fd, "w", encoding="utf-8") as note:
                note.write(f"pid {os.getpid()} on host {socket.gethostname()}\n")
        yield
    finally:
        lock.release()


def holder_of(folder: Path) -> str:
    """Who holds ``folder``'s lock, as its note says (``pid N on host H``), or "unknown"."""
    try:
        note = (folder / (LOCK_NAME + _HOLDER_SUFFIX)).read_text(encoding="utf-8").strip()
    except OSError:
        return "unknown"
    return note or "unknown"


@contextmanager
def tree_lock(folder: Path, timeout: float = DEFAULT_LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive ``flock`` on ``folder`` itself; wait up to ``timeout`` s.

    Nothing is created in ``folder``. Renames inside it (restore's swaps) leave the lock
    in place, since the folder keeps its inode.
    """
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError as exc:
        raise os_failure(folder, exc, "cannot lock") from None
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise LockedError(
                        folder,
                        "in use by another fda-vault run (a restore into it); "
                        f"waited {timeout:g} s",
                    ) from None
                time.sleep(_POLL)
            except OSError as exc:
                raise os_failure(folder, exc, "cannot lock") from None
        yield
    finally:
        os.close(fd)
