"""Snapshots of folder trees, to prove that an operation changed exactly what it should."""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

Snapshot = dict[str, tuple[str, ...]]


def snapshot(root: Path, *, with_times: bool = True) -> Snapshot:
    """Every entry under ``root``: kind, content hash, permission bits (and mtime)."""
    result: Snapshot = {}
    if not root.exists():
        return result
    for current, dirs, files in os.walk(root, followlinks=False):
        for name in sorted(dirs + files):
            path = Path(current, name)
            rel = path.relative_to(root).as_posix()
            st = path.lstat()
            mode = oct(stat.S_IMODE(st.st_mode))
            if stat.S_ISLNK(st.st_mode):
                result[rel] = ("link", os.readlink(path))
            elif stat.S_ISDIR(st.st_mode):
                result[rel] = ("dir",)
            else:
                digest = hashlib.sha256(path.read_bytes()).hexdigest()
                times = (str(st.st_mtime_ns),) if with_times else ()
                result[rel] = ("file", digest, mode, *times)
    return result


def swap_like_a_restore(root: Path, project: str) -> None:
    """Replace ``root/project`` by a copy, as a restore's swap does (a new folder inode)."""
    import shutil

    shutil.copytree(root / project, root / ".staged")
    os.rename(root / project, root / ".old")
    os.rename(root / ".staged", root / project)
