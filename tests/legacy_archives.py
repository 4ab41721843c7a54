"""Archives in the original scripts' formats, written from the format facts (issue 19):
the project's own helper, no code of the original project.

- ``backup_project.py`` ZIP: ``metadata.json`` with the original fields only (no ``files``),
  ``checksums.txt`` lines ``<sha256>  <project>/<path>``, members
  ``projects/<project>/<path>`` deflated at level 6, no folder entries, symlinks left out.
- ``project_backup.py`` tar.gz: ``<project>/<path>`` (one project) or
  ``projects/<project>/<path>`` (all), plus ``manifest.json`` (created_at, project_name,
  source_dir, file_count, files); no checksums.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import tarfile
import zipfile
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path


def _files(root: Path, project: str) -> Iterator[tuple[str, Path]]:
    """(relative POSIX path, file) of every regular file of a project, symlinks left out."""
    base = root / project
    for current, dirs, names in os.walk(base):
        dirs.sort()
        for name in sorted(names):
            path = Path(current, name)
            if path.is_symlink() or not path.is_file():
                continue
            yield path.relative_to(base).as_posix(), path


def make_legacy_zip(
    root: Path, projects: Sequence[str], out: Path, *, when: datetime | None = None
) -> Path:
    """A ``backup_project.py`` ZIP of ``projects`` under ``root``, written to ``out``."""
    checksums: dict[str, str] = {}
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        for project in projects:
            for rel, path in _files(root, project):
                key = f"{project}/{rel}"
                checksums[key] = hashlib.sha256(path.read_bytes()).hexdigest()
                zf.write(path, arcname=f"projects/{key}")
        metadata = {
            "backup_version": "1.0.0",
            "backup_timestamp": (when or datetime.now()).isoformat(),
            "projects": list(projects),
            "total_projects": len(projects),
            "total_files": len(checksums),
            "checksums": checksums,
            "created_by": "fda-tools/backup_project.py",
            "schema": {"version": "1.0", "description": "FDA 510(k) project backup"},
        }
        zf.writestr("metadata.json", json.dumps(metadata, indent=2))
        zf.writestr("checksums.txt", "".join(f"{d}  {k}\n" for k, d in sorted(checksums.items())))
    return out


def make_legacy_tar(
    root: Path,
    out: Path,
    *,
    project: str | None = None,
    when: datetime | None = None,
    extra: Sequence[tarfile.TarInfo | tuple[tarfile.TarInfo, bytes]] = (),
    manifest_first: bool = False,
) -> Path:
    """A ``project_backup.py`` tar.gz of one project (``project``) or of every project
    folder under ``root``; ``extra`` entries (hostile ones) are added after the files."""
    # Every project folder: hidden ones and the backups folder are not projects.
    projects = [project] if project else sorted(
        p.name for p in root.iterdir()
        if p.is_dir() and not p.name.startswith(".") and p.name != "backups"
    )  # fmt: skip
    members: list[tuple[str, Path]] = []
    folders: list[tuple[str, Path]] = []
    for name in projects:
        prefix = f"{name}/" if project else f"projects/{name}/"
        members += [(prefix + rel, path) for rel, path in _files(root, name)]
        for current, dirs, _names in os.walk(root / name):
            for folder in sorted(dirs):
                path = Path(current, folder)
                folders.append((prefix + path.relative_to(root / name).as_posix(), path))
    manifest = {
        "created_at": (when or datetime.now()).isoformat(),
        "project_name": project,
        "source_dir": str(root),
        "file_count": len(members),
        "files": [name for name, _ in members],
    }
    raw = json.dumps(manifest, indent=2).encode()
    info = tarfile.TarInfo("manifest.json")
    info.size = len(raw)
    with tarfile.open(out, "w:gz") as tar:
        if manifest_first:
            tar.addfile(info, io.BytesIO(raw))
        for name, path in folders + members:  # tarfile.add(project) writes folders too
            tar.add(path, arcname=name, recursive=False)
        for item in extra:
            entry, data = item if isinstance(item, tuple) else (item, b"")
            tar.addfile(entry, io.BytesIO(data) if data else None)
        if not manifest_first:
            tar.addfile(info, io.BytesIO(raw))
    return out


def tar_entry(name: str, kind: bytes = tarfile.REGTYPE, **fields: object) -> tarfile.TarInfo:
    """A tar header (for hostile entries): ``kind`` SYMTYPE, LNKTYPE, CHRTYPE, ..."""
    entry = tarfile.TarInfo(name)
    entry.type = kind
    for key, value in fields.items():
        setattr(entry, key, value)
    return entry
