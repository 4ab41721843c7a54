"""The archive as one object: what every command opens to read a backup.

:meth:`Archive.open` takes any archive fda-vault reads: its own, a ``backup_project.py``
ZIP (read in place, its manifest completed) or a ``project_backup.py`` tar.gz (checked
and converted into a temporary fda-vault ZIP first, removed when the archive is closed).
The object holds the path it was opened by, the ZIP index and the manifest, and answers
the questions the commands ask, at the depth they need; its errors name the archive.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from typing import Literal

from fda_vault._checks import (
    Problem,
    check_file_data,
    check_names,
    check_structure,
    manifest_problems,
    problems_error,
)
from fda_vault._crypto import NO_KEYS, Keys
from fda_vault._errors import IntegrityError, UsageError
from fda_vault._follow import FollowedMember
from fda_vault._legacy import is_legacy_tar
from fda_vault._manifest import BackupManifest, FileEntry, project_of
from fda_vault._members import DATA_PREFIX, iter_member, open_archive, read_manifest
from fda_vault._progress import NO_PROGRESS, Progress
from fda_vault._s3 import ArchivePath
from fda_vault._zipindex import ZipIndex

__all__ = ["Archive", "Depth", "select_projects"]

# How deep a check goes: member names and the manifest only (what `list` needs), or the
# whole structure with checksums.txt (before any byte is restored). Data is apart.
Depth = Literal["names", "structure"]


def select_projects(
    asked: Sequence[str] | None, available: Sequence[str], archive: ArchivePath
) -> list[str]:
    """``asked`` without repeats (``available`` when none), or UsageError naming the
    first one that ``archive`` does not hold."""
    if not asked:
        return list(available)
    unknown = [name for name in asked if name not in available]
    if unknown:
        raise UsageError(
            f"project {unknown[0]!r} is not in {archive.name}",
            f"it holds: {', '.join(available) or 'no projects'}",
            reason="unknown_project",
        )
    return list(dict.fromkeys(asked))


class Archive:
    """One opened archive: ``path`` (as given), its ZIP ``index`` and its ``manifest``."""

    def __init__(self, path: ArchivePath, index: ZipIndex, manifest: BackupManifest) -> None:
        self.path = path
        self.index = index
        self.manifest = manifest

    @classmethod
    @contextmanager
    def open(
        cls, path: ArchivePath, *, progress: Progress = NO_PROGRESS, keys: Keys = NO_KEYS
    ) -> Iterator[Archive]:
        """Open ``path`` (UsageError if missing, IntegrityError if unreadable or not an
        archive, DecryptError if encrypted and ``keys`` do not open it); a legacy tar.gz
        is converted first, which checks it on the way."""
        with ExitStack() as stack:
            if is_legacy_tar(path):
                from fda_vault._legacytar import converted  # tarfile costs start-up

                zip_path, manifest, _digest, _scan = stack.enter_context(
                    converted(path, progress=progress)
                )
                index = stack.enter_context(open_archive(zip_path))
            else:
                index = stack.enter_context(open_archive(path, keys))
                manifest = read_manifest(index, path)
            yield cls(path, index, manifest)

    @property
    def stored_size(self) -> int:
        """The archive's size as stored (an encrypted one's: of its ciphertext)."""
        source = self.index.source
        return int(getattr(source, "stored_size", source.size))

    @property
    def source_format(self) -> str:
        """``fda-vault`` or the legacy format it was read from."""
        return self.manifest.source_format

    def problems(self, depth: Depth = "structure", *, casefold: bool = False) -> list[Problem]:
        """Every problem short of the file data, at ``depth``; ``casefold`` also refuses
        names that differ only in case (for case-insensitive targets)."""
        if depth == "names":
            return check_names(self.index, casefold=casefold)[0] + manifest_problems(self.manifest)
        return check_structure(self.index, self.manifest, self.path, casefold=casefold)

    def require(self, depth: Depth = "structure", *, casefold: bool = False) -> None:
        """Raise the first problem at ``depth`` as an IntegrityError naming the archive."""
        problems = self.problems(depth, casefold=casefold)
        if problems:
            raise problems_error(self.path, problems)

    def data_problems(
        self,
        projects: Collection[str] | None = None,
        *,
        progress: Progress = NO_PROGRESS,
        copied_as_stored: bool = False,
        followed: Mapping[int, FollowedMember] | None = None,
    ) -> tuple[int, int, list[Problem]]:
        """Read every selected file, checking size, CRC-32 and SHA-256: (files, bytes,
        problems). ``copied_as_stored``, ``followed``: see :func:`check_file_data` (a
        backup's read-back only)."""
        checked = check_file_data(
            self.index, self.manifest, self.path, progress, projects,
            copied_as_stored=copied_as_stored, followed=followed,
        )  # fmt: skip
        try:
            self.require_whole()
        except IntegrityError as exc:
            checked[2].append(Problem(path=str(self.path), kind="corrupt", detail=exc.why))
        return checked

    def require_whole(self) -> None:
        """For an encrypted archive: wait until all of it is decrypted and authenticated,
        its index equal to its end (IntegrityError / DecryptError if not). Restore calls
        it before anything is put in place; other archives have nothing to wait for."""
        check = getattr(self.index.source, "check_whole", None)
        if check is not None:
            check()

    def select(self, projects: Sequence[str] | None) -> list[str]:
        """The projects asked for (all of the archive's by default), each one in it."""
        return select_projects(projects, self.manifest.projects, self.path)

    def files_of(self, projects: Collection[str]) -> list[FileEntry]:
        """The manifest entries of the files of ``projects``."""
        chosen = set(projects)
        return [entry for entry in self.manifest.files if project_of(entry.path) in chosen]

    def read(self, entry: FileEntry) -> Iterator[bytes]:
        """A file's bytes, checked on the way (size, CRC-32, bounded inflate)."""
        info = self.index.getinfo(DATA_PREFIX + entry.path)
        return iter_member(self.index, info, entry.size, self.path)
