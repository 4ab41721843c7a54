"""``restore``: exact, verified, all-or-nothing restores with a plan and a journal.

Every selected project is extracted into a private staging folder inside the target,
each byte checked against the manifest's SHA-256 as it is written, made durable, and
only then swapped in with renames (see ``journal.py``). Any failure, Ctrl-C or kill
leaves every project entirely as it was, or (once all is staged) entirely restored.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from fda_vault._archive import Archive
from fda_vault._checks import problems_error
from fda_vault._crypto import NO_KEYS, Keys
from fda_vault._errors import (
    FdaVaultError,
    IntegrityError,
    InterruptedByUser,
    OperationError,
    RefusedError,
    UsageError,
    os_error_reason,
)
from fda_vault._fsio import describe_os_error, os_failure, sha256_file, sync_filesystem
from fda_vault._journal import Journal, finish_interrupted, recover_interrupted
from fda_vault._legacy import FORMAT_FDA_VAULT, format_notes
from fda_vault._locking import DEFAULT_LOCK_TIMEOUT, tree_lock
from fda_vault._manifest import BackupManifest, FileEntry, project_of
from fda_vault._members import DATA_PREFIX, fits_one_read, iter_member, read_small_members
from fda_vault._parallel import SharedProgress, batches, map_over_cores, workers_for
from fda_vault._progress import NO_PROGRESS, Progress
from fda_vault._s3 import ArchivePath
from fda_vault._verified import VerificationRecords
from fda_vault._zipindex import Member, ZipIndex

__all__ = [
    "ProjectPlan",
    "RestorePlan",
    "RestoreResult",
    "plan_restore",
    "restore",
]

Action = Literal["create", "overwrite", "identical"]
_BLOCK = 4096  # files occupy whole blocks; folders and inodes cost a block each
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)


class ProjectPlan(BaseModel):
    """What restoring one project would do, file by file."""

    name: str
    action: Action
    files: int
    bytes: int
    only_in_backup: list[str]
    only_on_disk: list[str]
    differing: list[str]
    identical: int
    bytes_only_in_backup: int
    bytes_only_on_disk: int
    bytes_differing: int
    bytes_identical: int


class RestorePlan(BaseModel):
    """The whole restore, before anything is written (``--dry-run`` prints this)."""

    archive: str
    target_dir: str
    dry_run: bool
    projects: list[ProjectPlan]
    bytes_to_write: int
    free_bytes: int
    recovered: list[str]
    format: str = FORMAT_FDA_VAULT
    notes: list[str] = Field(default_factory=list, description="what the format does not record")

    @property
    def overwrites(self) -> list[str]:
        """Projects that exist at the target and would change."""
        return [p.name for p in self.projects if p.action == "overwrite"]


class RestoreResult(BaseModel):
    """What a restore did."""

    archive: str
    target_dir: str
    dry_run: bool = False
    restored: list[str]
    created: list[str]
    overwritten: list[str]
    identical: list[str]
    files: int
    bytes: int
    duration_seconds: float
    bytes_per_second: float
    recovered: list[str]
    format: str = FORMAT_FDA_VAULT
    notes: list[str] = Field(default_factory=list, description="what the format does not record")
    archive_sha256: str | None = Field(
        default=None,
        description="SHA-256 of the archive file, when recorded by its last full check",
    )


@dataclass
class _DiskFile:
    size: int
    path: Path


def _disk_state(root: Path) -> tuple[dict[str, _DiskFile], set[str], set[str]]:
    """Regular files, other entries (symlinks, specials) and empty folders under ``root``."""
    files: dict[str, _DiskFile] = {}
    others: set[str] = set()
    empty: set[str] = set()
    for current, dirs, names in os.walk(root, followlinks=False):
        rel_dir = os.path.relpath(current, root)
        prefix = "" if rel_dir == "." else rel_dir.replace(os.sep, "/") + "/"
        if not dirs and not names and prefix:
            empty.add(prefix[:-1])
        for name in names + [d for d in dirs if os.path.islink(os.path.join(current, d))]:
            full = Path(current, name)
            st = full.lstat()
            if stat.S_ISREG(st.st_mode):
                files[prefix + name] = _DiskFile(st.st_size, full)
            else:
                others.add(prefix + name)
    return files, others, empty


def _plan_project(
    target: Path, name: str, files: Sequence[FileEntry], empty_dirs: Sequence[str]
) -> ProjectPlan:
    """The plan of one project, from its files and empty folders in the manifest."""
    cut = len(name) + 1
    wanted = {e.path[cut:]: e for e in files}
    wanted_empty = {d[cut:] for d in empty_dirs}
    total = sum(e.size for e in wanted.values())
    live = target / name
    if not live.exists() and not live.is_symlink():
        return ProjectPlan(
            name=name, action="create", files=len(wanted), bytes=total,
            only_in_backup=sorted(wanted), only_on_disk=[], differing=[], identical=0,
            bytes_only_in_backup=total, bytes_only_on_disk=0, bytes_differing=0,
            bytes_identical=0,
        )  # fmt: skip
    if live.is_symlink() or not live.is_dir():
        disk: dict[str, _DiskFile] = {}
        others: set[str] = {name}
        empty: set[str] = set()
    else:
        disk, others, empty = _disk_state(live)
    only_backup = sorted(set(wanted) - set(disk))
    only_disk = sorted((set(disk) - set(wanted)) | others)
    differing: list[str] = []
    same = same_bytes = 0
    for rel in sorted(set(wanted) & set(disk)):
        entry = wanted[rel]
        if disk[rel].size == entry.size and sha256_file(disk[rel].path) == entry.sha256:
            same += 1
            same_bytes += entry.size
        else:
            differing.append(rel)
    unchanged = not only_backup and not only_disk and not differing and empty == wanted_empty
    return ProjectPlan(
        name=name,
        action="identical" if unchanged else "overwrite",
        files=len(wanted),
        bytes=total,
        only_in_backup=only_backup,
        only_on_disk=only_disk,
        differing=differing,
        identical=same,
        bytes_only_in_backup=sum(wanted[r].size for r in only_backup),
        bytes_only_on_disk=sum(disk[r].size for r in only_disk if r in disk),
        bytes_differing=sum(wanted[r].size for r in differing),
        bytes_identical=same_bytes,
    )


def _check_target(target: Path, archive: ArchivePath, selected: Sequence[str]) -> None:
    if not isinstance(archive, Path):
        return  # an object is in no project folder
    archive_real = os.path.realpath(archive)
    for name in selected:
        live = os.path.realpath(target / name)
        if archive_real.startswith(live + os.sep):
            raise UsageError(
                f"{archive}", f"lies inside project folder {target / name}, which it would replace"
            )


def _check_space(target: Path, manifest: BackupManifest, projects: Sequence[str]) -> None:
    """Refuse before writing when the staged copy cannot fit (bytes or inodes)."""
    chosen = set(projects)
    files = [e for e in manifest.files if project_of(e.path) in chosen]
    folders = {e.path.rsplit("/", 1)[0] for e in files} | {
        d for d in manifest.empty_dirs if project_of(d) in chosen
    }
    need_inodes = len(files) + len(folders) + 8
    need_bytes = sum(-(-e.size // _BLOCK) * _BLOCK for e in files) + _BLOCK * need_inodes
    fs = os.statvfs(target)
    free_bytes = fs.f_bavail * fs.f_frsize
    if need_bytes > free_bytes:
        raise OperationError(
            target,
            f"disk full: the restore needs {need_bytes} bytes, {free_bytes} are free "
            "(nothing was written)",
            reason="disk_full",
        )
    if fs.f_files and need_inodes > fs.f_favail:  # f_files is 0 where inodes are unlimited
        raise OperationError(
            target,
            f"disk full: the restore needs {need_inodes} inodes, {fs.f_favail} are free "
            "(nothing was written)",
            reason="disk_full",
        )


def _case_insensitive(target: Path) -> bool:
    """True when ``target``'s filesystem folds case (names differing in case collide)."""
    probe = target / f".fda-vault-Case-Probe-{os.getpid()}"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        return (target / probe.name.lower()).exists()
    finally:
        probe.unlink()


def _prepare_target(target: Path) -> None:
    if target.exists() and not target.is_dir():
        raise UsageError(target, "target is not a folder")
    try:
        target.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise os_failure(target, exc, "cannot create target") from None


def _build_plan(
    archive: ArchivePath,
    target: Path,
    manifest: BackupManifest,
    selected: Sequence[str],
    dry_run: bool,
    recovered: list[str],
) -> RestorePlan:
    # Each project's entries, in one pass over the manifest (not one pass per project).
    files: dict[str, list[FileEntry]] = defaultdict(list)
    empty_dirs: dict[str, list[str]] = defaultdict(list)
    for entry in manifest.files:
        files[project_of(entry.path)].append(entry)
    for folder in manifest.empty_dirs:
        empty_dirs[project_of(folder)].append(folder)
    plans = [_plan_project(target, name, files[name], empty_dirs[name]) for name in selected]
    to_write = sum(p.bytes for p in plans if p.action != "identical")
    free = shutil.disk_usage(target if target.exists() else target.parent).free
    return RestorePlan(
        archive=str(archive), target_dir=str(target), dry_run=dry_run, projects=plans,
        bytes_to_write=to_write, free_bytes=free, recovered=recovered,
        format=manifest.source_format, notes=format_notes(manifest.source_format),
    )  # fmt: skip


def plan_restore(
    archive: ArchivePath,
    *,
    target_dir: Path,
    projects: Sequence[str] | None = None,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    progress: Progress = NO_PROGRESS,
    keys: Keys = NO_KEYS,
) -> RestorePlan:
    """What ``restore`` would do, writing nothing (but finishing an interrupted restore).

    The selected projects' data is verified in full first (sizes and SHA-256), so a plan
    is only shown, and a question only asked, for an archive that can be restored.
    """
    with Archive.open(archive, progress=progress, keys=keys) as opened:
        opened.require()
        selected = opened.select(projects)
        _check_target(target_dir, archive, selected)
        _files, _bytes, problems = opened.data_problems(set(selected), progress=progress)
        if problems:
            raise problems_error(archive, problems)
        # A plan writes nothing unless a crashed restore must be finished.
        recovered = finish_interrupted(target_dir, lock_timeout)
        return _build_plan(archive, target_dir, opened.manifest, selected, True, recovered)


class _Folders:
    """Creates staging folders one level at a time, refusing any that is not a real folder.

    Each folder is made and checked once (then remembered), not once per file in it: with
    thousands of small files that is most of the system calls of a restore. Inside the
    0700 staging folder, folders get the usual 0755 (less the umask).
    """

    def __init__(self) -> None:
        self._checked: set[str] = set()

    def folder(self, base: str, rel_dir: str) -> str:
        """``base/rel_dir`` (``rel_dir`` in POSIX form, its segments already validated),
        every level made (once) and checked; a folder seen before costs one lookup."""
        path = f"{base}/{rel_dir}"
        if path in self._checked:
            return path
        current = base
        for part in rel_dir.split("/"):
            current = f"{current}/{part}"
            if current in self._checked:
                continue
            with suppress(FileExistsError):
                os.mkdir(current, 0o755)
            if not stat.S_ISDIR(os.lstat(current).st_mode):
                raise IntegrityError(current, "a parent folder is a symlink or a file; refusing")
            self._checked.add(current)
        return path


def _extract_file(
    zf: ZipIndex,
    archive: ArchivePath,
    entry: FileEntry,
    info: Member,
    root: str,
    folders: _Folders,
    progress: SharedProgress,
    data: bytes | None = None,
) -> None:
    """Write one file (``info``, its member) under ``root`` (its path starts with the
    project), hashing every byte; ``data``: its bytes, already read and checked
    (:func:`read_small_members`)."""
    # Plain strings and a bare descriptor: with thousands of small files, Path objects
    # and file wrappers were a good part of a restore's time.
    parent, _, name = entry.path.rpartition("/")
    dest = f"{folders.folder(root, parent)}/{name}"
    hasher = hashlib.sha256()
    fd = os.open(dest, _WRITE_FLAGS, 0o600)
    try:
        chunks = (data,) if data is not None else iter_member(zf, info, entry.size, archive)
        for chunk in chunks:
            hasher.update(chunk)
            _write_all(fd, chunk)
            progress.advance(len(chunk))
        if hasher.hexdigest() != entry.sha256:
            raise IntegrityError(
                f"{archive}: {DATA_PREFIX}{entry.path}", "content does not match its SHA-256"
            )
        # Permission bits only: never setuid, setgid or sticky.
        os.fchmod(fd, entry.mode & 0o777)
        if entry.mtime_ns is not None:
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
        else:
            os.utime(fd, (entry.mtime, entry.mtime))
    finally:
        os.close(fd)


def _write_all(fd: int, data: bytes) -> None:
    """Write every byte: a write to a regular file may be cut short (as a disk fills)."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        if written <= 0:  # not seen on Linux (it reports ENOSPC), but never loop forever
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        view = view[written:]


# Called with each file's number before it is staged: fault-injection tests set it (a
# disk filling up, Ctrl-C at file N); None in normal runs.
_before_each_file: Callable[[int], None] | None = None


def _stage(
    zf: ZipIndex,
    archive: ArchivePath,
    manifest: BackupManifest,
    journal: Journal,
    progress: Progress,
) -> int:
    """Extract and verify every journaled project into staging; return the byte count."""
    chosen = set(journal.projects)
    entries = [e for e in manifest.files if project_of(e.path) in chosen]
    total = sum(e.size for e in entries)
    progress.start("restoring", total)
    root = str(journal.staging / "new")
    folders = _Folders()
    for project in journal.projects:
        folders.folder(root, project)

    hook = _before_each_file
    shared = SharedProgress(progress)

    def extract(batch: list[tuple[int, FileEntry]]) -> int:
        # Small members are read together (one pread for a run of them), larger streamed.
        infos = [zf.getinfo(DATA_PREFIX + entry.path) for _, entry in batch]
        smalls = [fits_one_read(info, e.size) for info, (_, e) in zip(infos, batch, strict=True)]
        wanted = [(info, e.size) for info, (_, e), small in zip(infos, batch, smalls, strict=True)
                  if small]  # fmt: skip
        small_data = read_small_members(zf, wanted, archive)
        for (count, entry), info, small in zip(batch, infos, smalls, strict=True):
            if hook is not None:
                hook(count)
            data = next(small_data) if small else None
            if isinstance(data, IntegrityError):
                raise data
            _extract_file(zf, archive, entry, info, root, folders, shared, data)
        return sum(entry.size for _, entry in batch)

    # Files spread over the cores: threads when they are large enough to gain from it
    # (see workers_for), processes for thousands of small ones (the staging folder is
    # theirs alone, and they die with this process); the first failure stops all before
    # any cleanup.
    work = batches(enumerate(entries), lambda item: item[1].size)
    map_over_cores(
        extract, work, files=len(entries), threads=workers_for(total, len(entries)),
        forkable=zf.is_local_file, progress=shared, done=lambda size: size,
    )  # fmt: skip
    for folder in manifest.empty_dirs:
        if project_of(folder) in chosen:
            folders.folder(root, folder)
    progress.finish()
    # One sync makes every staged byte durable before the swap (cheaper than per-file fsync).
    sync_filesystem(journal.staging)
    return total


def restore(
    archive: ArchivePath,
    *,
    target_dir: Path,
    projects: Sequence[str] | None = None,
    overwrite: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    progress: Progress = NO_PROGRESS,
    keys: Keys = NO_KEYS,
) -> RestoreResult:
    """Restore projects from ``archive`` into ``target_dir``, all or nothing.

    Raises RefusedError when an existing project would change and ``overwrite`` is False.
    A tar.gz of the original library is first converted into a temporary fda-vault ZIP
    (checked on the way) and restored from that (:meth:`Archive.open`).
    """
    clock = time.monotonic()
    with Archive.open(archive, progress=progress, keys=keys) as opened:
        opened.require()
        selected = opened.select(projects)
        manifest = opened.manifest
        _check_target(target_dir, archive, selected)
        _prepare_target(target_dir)
        with tree_lock(target_dir, lock_timeout):
            recovered = recover_interrupted(target_dir)
            if _case_insensitive(target_dir):
                opened.require("names", casefold=True)
            plan = _build_plan(archive, target_dir, manifest, selected, False, recovered)
            if plan.overwrites and not overwrite:
                raise RefusedError(
                    f"restore would overwrite {len(plan.overwrites)} existing project(s): "
                    f"{', '.join(plan.overwrites)}",
                    "use --force or --yes, or --dry-run to see the differences",
                )
            changing = [p for p in plan.projects if p.action != "identical"]
            _check_space(target_dir, manifest, [p.name for p in changing])
            written = 0
            if changing:
                written = _apply(opened, target_dir, changing, progress)
    duration = time.monotonic() - clock
    return RestoreResult(
        archive=str(archive),
        target_dir=str(target_dir),
        restored=[p.name for p in changing],
        created=[p.name for p in changing if p.action == "create"],
        overwritten=[p.name for p in changing if p.action == "overwrite"],
        identical=[p.name for p in plan.projects if p.action == "identical"],
        files=sum(p.files for p in changing),
        bytes=written,
        duration_seconds=round(duration, 3),
        bytes_per_second=round(written / duration, 1) if duration > 0 else 0.0,
        recovered=recovered,
        format=manifest.source_format,
        notes=format_notes(manifest.source_format),
        archive_sha256=VerificationRecords().sha256(archive),
    )


def _apply(
    opened: Archive,
    target: Path,
    changing: Sequence[ProjectPlan],
    progress: Progress,
) -> int:
    zf, archive, manifest = opened.index, opened.path, opened.manifest
    journal = Journal(
        target=target,
        # Recovery may run from another folder.
        archive=str(archive.absolute() if isinstance(archive, Path) else archive),
        projects=[p.name for p in changing],
        existed=[p.name for p in changing if p.action == "overwrite"],
    )
    try:
        journal.write("staging")
        journal.create_staging()
        written = _stage(zf, archive, manifest, journal, progress)
        opened.require_whole()  # an encrypted archive: authenticated to its last byte
        journal.swap_in()
        journal.finish()
    except BaseException as exc:
        try:
            journal.roll_back()
        except OSError as cleanup:
            raise OperationError(
                target,
                f"restore failed ({exc}) and so did the rollback ({describe_os_error(cleanup)}); "
                "the next fda-vault run on this target completes it",
            ) from None
        if isinstance(exc, KeyboardInterrupt):
            raise InterruptedByUser("restore interrupted", "every project is as it was") from None
        if isinstance(exc, OSError) and not isinstance(exc, FdaVaultError):
            raise OperationError(
                getattr(exc, "filename", None) or target,
                f"{describe_os_error(exc)}; every project is as it was",
                reason=os_error_reason(exc),
            ) from None
        raise
    return written
