"""``backup``: read every project file once, hash and compress it, write a verified archive."""

from __future__ import annotations

import fnmatch
import hashlib
import os
import stat
import time
import unicodedata
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import IO, NamedTuple, cast

from pydantic import BaseModel, Field

from fda_vault import __version__
from fda_vault._audit import trail_head_for_archive
from fda_vault._config import DEFAULT_FULL_EVERY_DAYS, DEFAULT_LEVEL
from fda_vault._crypto import NO_KEYS, Encryption, Encryptor, Keys, encrypt_bytes, new_identity
from fda_vault._diagnostics import Diagnostic
from fda_vault._encrypted import ArchiveIndex, CipherOut, CutAfterEncrypting, EncryptingSink
from fda_vault._errors import (
    IntegrityError,
    InterruptedByUser,
    OperationError,
    UsageError,
)
from fda_vault._follow import FollowedMember, ReadBehind
from fda_vault._fsio import (
    HashAsWritten,
    describe_os_error,
    os_failure,
)
from fda_vault._locking import DEFAULT_LOCK_TIMEOUT
from fda_vault._manifest import (
    AuditAnchor,
    BackupManifest,
    ExcludeInfo,
    ParentInfo,
    SkippedEntry,
    has_control_char,
    is_safe_segment,
)
from fda_vault._members import (
    CHECKSUMS_NAME,
    DATA_PREFIX,
    MANIFEST_NAME,
    MAX_MANIFEST_BYTES,
)
from fda_vault._packer import Packer, PackSource
from fda_vault._progress import NO_PROGRESS, Progress
from fda_vault._reuse import (
    Parent,
    ReusePlan,
    find_parent,
    plan_reuse,
)
from fda_vault._signing import SIGNATURE_SUFFIX, SigningKey, prehash, trusted_comment
from fda_vault._storage import (
    BackupsFolder,
    BackupsLocation,
    ObjectLock,
    PendingArchive,
    ProjectsFolder,
    archive_label,
    index_name,
    open_location,
    read_from,
)
from fda_vault._verified import VerificationRecords, identity_of, record_verified
from fda_vault._verify import VerifyReport, verify_written
from fda_vault._zipwriter import ZipWriter

__all__ = [
    "BackupResult",
    "archive_label",
    "backup",
    "finish_archive",
    "list_projects",
    "scan_project",
]


class BackupResult(BaseModel):
    """What ``backup`` wrote."""

    archive: str
    projects: list[str]
    files: int
    bytes: int
    archive_size: int
    archive_sha256: str
    duration_seconds: float
    verified: bool
    skipped: list[SkippedEntry]
    excluded_files: int
    warnings: list[Diagnostic] = Field(
        description="each with a reason: left_out, recovered, same_disk, parent_unusable, "
        "parent_damaged (README)"
    )
    parent: str | None = Field(
        default=None, description="the archive unchanged files were copied from, if any"
    )
    reused_files: int = Field(default=0, description="files copied unread from the parent")
    reused_bytes: int = Field(default=0, description="their bytes (uncompressed)")
    full_read: str | None = Field(
        default=None, description="why every file was read from the source, if it was"
    )
    encrypted: str | None = Field(
        default=None,
        description="age or gpg (OpenPGP AES-256) when the archive is encrypted; None if not",
    )
    recipients: list[str] = Field(
        default_factory=list, description="the age recipients (public keys) it is encrypted to"
    )
    unchanged: bool = Field(
        default=False,
        description="--skip-if-unchanged found nothing changed: no archive was written and "
        "`archive` is the parent",
    )
    signed_by: str | None = Field(
        default=None, description="the minisign key id that signed it (--sign-key)"
    )


@dataclass
class _Scan:
    files: list[PackSource] = field(default_factory=list)
    total_bytes: int = 0
    empty_dirs: list[tuple[str, Path]] = field(default_factory=list)
    skipped: list[SkippedEntry] = field(default_factory=list)
    excluded: int = 0


def list_projects(projects_dir: Path, backups_dir: Path | None = None) -> list[str]:
    """Names of the projects: direct sub-folders, except hidden ones and the backups folder."""
    return ProjectsFolder(projects_dir).projects(backups_dir)


def _excluded(rel: str, name: str, is_dir: bool, patterns: Sequence[str]) -> bool:
    for pattern in patterns:
        if pattern.endswith("/"):
            if is_dir and (
                fnmatch.fnmatchcase(rel, pattern[:-1]) or fnmatch.fnmatchcase(name, pattern[:-1])
            ):
                return True
        elif fnmatch.fnmatchcase(rel, pattern) or fnmatch.fnmatchcase(name, pattern):
            return True
    return False


def _count_files(path: str) -> int:
    count = 0
    for _root, _dirs, files in os.walk(path, followlinks=False):
        count += len(files)
    return count


def _name_problem(name: str) -> str | None:
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return "file name is not valid UTF-8"
    if "\\" in name or has_control_char(name):
        return "file name has a backslash or control character (not portable)"
    return None


def _scan_project(
    projects_dir: Path,
    project: str,
    patterns: Sequence[str],
    skip_dirs: set[str],
    skip_unreadable: bool,
    scan: _Scan,
) -> None:
    seen_nfc: dict[str, str] = {}

    def walk(directory: str, rel_dir: str) -> bool:
        """Walk one folder; True when something inside it was kept."""
        try:
            entries = sorted(os.scandir(directory), key=lambda e: e.name)
        except OSError as exc:
            where = f"{project}/{rel_dir}".rstrip("/")
            if skip_unreadable:
                scan.skipped.append(SkippedEntry(path=where, reason=describe_os_error(exc)))
                return True
            raise os_failure(directory, exc, "cannot read folder") from None
        kept = False
        for entry in entries:
            rel = f"{rel_dir}{entry.name}"
            key = f"{project}/{rel}"
            problem = _name_problem(entry.name)
            if problem:
                # A non-UTF-8 name holds surrogate escapes that JSON cannot carry:
                # record its bytes as \xNN instead.
                shown = os.fsencode(key).decode("utf-8", "backslashreplace")
                scan.skipped.append(SkippedEntry(path=shown, reason=problem))
                continue
            nfc = unicodedata.normalize("NFC", key)
            if nfc in seen_nfc:
                scan.skipped.append(
                    SkippedEntry(path=key, reason=f"same name as {seen_nfc[nfc]} after Unicode NFC")
                )
                continue
            seen_nfc[nfc] = key
            try:
                st = entry.stat(follow_symlinks=False)
            except FileNotFoundError:
                continue  # vanished between listing and stat: nothing to back up
            except OSError as exc:
                if skip_unreadable:
                    scan.skipped.append(SkippedEntry(path=key, reason=describe_os_error(exc)))
                    continue
                raise os_failure(entry.path, exc) from None
            if stat.S_ISLNK(st.st_mode):
                scan.skipped.append(SkippedEntry(path=key, reason="symbolic link (not followed)"))
            elif stat.S_ISDIR(st.st_mode):
                if os.path.realpath(entry.path) in skip_dirs:
                    continue
                if _excluded(rel, entry.name, True, patterns):
                    scan.excluded += _count_files(entry.path)
                    continue
                if walk(entry.path, rel + "/"):
                    kept = True
                else:
                    scan.empty_dirs.append((key, Path(entry.path)))
                    kept = True
            elif stat.S_ISREG(st.st_mode):
                if _excluded(rel, entry.name, False, patterns):
                    scan.excluded += 1
                    continue
                scan.files.append(PackSource(key, entry.path, identity_of(st), st.st_mode))
                scan.total_bytes += st.st_size
                kept = True
            else:
                kind = (
                    "FIFO"
                    if stat.S_ISFIFO(st.st_mode)
                    else "socket"
                    if stat.S_ISSOCK(st.st_mode)
                    else "device"
                )
                scan.skipped.append(SkippedEntry(path=key, reason=f"special file ({kind})"))
        return kept

    walk(str(projects_dir / project), "")


def scan_project(
    projects_dir: Path, project: str, excludes: Sequence[str] = ()
) -> list[tuple[str, str]]:
    """(``"<project>/<path>"``, file) of every regular file a backup of ``project`` would
    read, by the same rules (symlinks and special files left out, ``excludes`` applied;
    unreadable folders are left out rather than fatal)."""
    scan = _Scan()
    _scan_project(projects_dir, project, excludes, set(), True, scan)
    return [(source.key, source.path) for source in scan.files]


class _Written(NamedTuple):
    """A written archive: its manifest (to verify it against) and what the result needs."""

    manifest: BackupManifest
    manifest_sha256: str  # of the metadata.json bytes written
    excluded: int
    warnings: list[Diagnostic]
    reused_files: int
    reused_bytes: int
    hashed: int  # how many of the archive's first bytes the hash saw as they were written
    size: int  # of the archive (as stored: encrypted, when it is)
    archive_index: ArchiveIndex | None  # an encrypted archive's: its plaintext end
    followed: dict[int, FollowedMember]  # large members read back while being written


_REWRITES = 2  # an encrypted archive is written again at most this often (CutAfterEncrypting)


def _write_archive(
    pending: PendingArchive,
    scan: _Scan,
    plan: ReusePlan,
    digest: HashAsWritten,
    *,
    level: int,
    skip_unreadable: bool,
    progress: Progress,
    started: datetime,
    projects: list[str],
    patterns: Sequence[str],
    encryption: Encryption | None = None,
    own: object = None,
    audit_head: AuditAnchor | None = None,
    sign_key: SigningKey | None = None,
    follow: bool = False,
) -> _Written:
    """Write the archive; ``follow``: read its large members back as they are written
    (a local, unencrypted archive about to be verified)."""
    parent = plan.parent
    reuse_warnings: list[Diagnostic] = []
    # An upper bound of the archive's size (it sizes an upload's parts): every byte
    # stored, plus the headers, the directory and the manifest.
    expected = scan.total_bytes + (len(scan.files) + 64) * 4096 + MAX_MANIFEST_BYTES
    fp = pending.open(expected)
    sink: EncryptingSink | None = None
    cipher_out: CipherOut | None = None
    readable = pending.readable
    behind = ReadBehind(str(readable)) if follow and isinstance(readable, Path) else None
    try:
        if encryption is None:
            writer = ZipWriter(
                fp, tap=digest.feed, settle=getattr(fp, "settle", None), follow=behind
            )
        else:
            # The ciphertext is written in order and never again: all of it is hashed
            # on its way to the file.
            cipher_out = CipherOut(fp, digest.feed)
            sink = EncryptingSink(Encryptor(encryption, cipher_out, own=own))
            writer = ZipWriter(cast("IO[bytes]", sink), settle=sink.settle)
        packer = Packer(
            writer, level=level, skip_unreadable=skip_unreadable, progress=progress,
            forkable=encryption is None and isinstance(readable, Path),
        )  # fmt: skip
        progress.start("backing up", scan.total_bytes)
        fresh = plan.fresh
        if parent is not None and plan.reused:
            failed = packer.copy_reused(plan.reused, parent.index, parent.sha256)
            fresh = fresh + [src for src, _why in failed]
            reuse_warnings = [
                Diagnostic(
                    reason="parent_damaged",
                    path=str(parent.stored.path),
                    detail=f"{why}; {src.key} was read from the source instead",
                )
                for src, why in failed
            ]
        reused_files = len(packer.entries)
        reused_bytes = sum(e.size for e in packer.entries)
        packer.pack(fresh)
        progress.finish()
        for key, path in scan.empty_dirs:
            try:
                st = os.stat(path, follow_symlinks=False)
                mtime, mode = st.st_mtime, stat.S_IMODE(st.st_mode)
            except OSError:
                mtime, mode = time.time(), 0o755
            writer.add_dir(f"{DATA_PREFIX}{key}/", mtime=mtime, mode=mode)
        entries = sorted(packer.entries, key=lambda e: e.path)
        manifest = BackupManifest(
            backup_timestamp=started.isoformat(),
            projects=projects,
            total_projects=len(projects),
            total_files=len(entries),
            total_bytes=sum(e.size for e in entries),
            checksums={e.path: e.sha256 for e in entries},
            files=entries,
            empty_dirs=sorted(key for key, _ in scan.empty_dirs),
            skipped=[*scan.skipped, *packer.skipped],
            exclude=ExcludeInfo(patterns=list(patterns), excluded_files=scan.excluded),
            created_by=f"fda-vault {__version__}",
            parent=ParentInfo(
                archive=parent.name,
                sha256=parent.sha256,
                backup_timestamp=parent.manifest.backup_timestamp,
            )
            if parent is not None and reused_files
            else None,
            # A backup that copied nothing read every file: the count of --full-every
            # starts again from it.
            last_full_read=parent.manifest.last_full_read
            if parent is not None and reused_files
            else started.isoformat(),
            audit_head=audit_head,
        )
        del entries
        if sink is not None:
            sink.keep_from(writer.tell())  # checksums.txt, metadata.json, the directory
        manifest_sha256 = finish_archive(writer, manifest, sign_key)
        size = writer.tell()
        index = None
        if sink is not None and cipher_out is not None and encryption is not None:
            sink.finish()
            index = ArchiveIndex(encryption.kind, size - len(sink.kept), size, bytes(sink.kept))
            size = cipher_out.written
            sink = None
        pending.finish(fp)
        followed = behind.results() if behind is not None else {}
    finally:
        if behind is not None:
            behind.close()  # at once, on a failure; after results(), nothing left to do
        if sink is not None:
            sink.abort()
        fp.close()
    return _Written(
        manifest=manifest,
        manifest_sha256=manifest_sha256,
        excluded=scan.excluded,
        # The scan's leftovers (symlinks, special files, ...) and the packer's, in order.
        warnings=[
            Diagnostic(reason="left_out", path=item.path, detail=f"{item.reason}; not backed up")
            for item in scan.skipped
        ]
        + reuse_warnings
        + packer.warnings,
        reused_files=reused_files,
        reused_bytes=reused_bytes,
        hashed=writer.tapped if cipher_out is None else cipher_out.written,
        size=size,
        archive_index=index,
        followed=followed,
    )


def finish_archive(
    writer: ZipWriter, manifest: BackupManifest, sign_key: SigningKey | None = None
) -> str:
    """Write ``checksums.txt`` and ``metadata.json`` (and, with ``sign_key``, a minisign
    signature of each) and the ZIP directory; the SHA-256 of the ``metadata.json`` bytes
    written (what ``verify_written`` checks the archive by)."""
    # Both are written in pieces: with tens of thousands of files, building either
    # whole was the peak of a backup's memory.
    # The signatures' prehashes, only for a signed archive (BLAKE2b of 12 MB: ~20 ms).
    checksums_digest = prehash() if sign_key is not None else None
    manifest_digest = prehash() if sign_key is not None else None
    writer.add_file(
        CHECKSUMS_NAME,
        _hashed(manifest.checksums_txt_chunks(), checksums_digest),
        mtime=time.time(),
        mode=0o644,
        size_hint=manifest.checksums_txt_size(),
        level=6,
    )
    manifest_hash = hashlib.sha256()
    writer.add_file(
        MANIFEST_NAME,
        _hashed(_readable_manifest(manifest.to_json_chunks(), manifest_hash), manifest_digest),
        mtime=time.time(),
        mode=0o644,
        # Never larger (checked on the way), and far below 4 GiB: no ZIP64 needed.
        size_hint=MAX_MANIFEST_BYTES,
        level=6,
    )
    if sign_key is not None:
        assert manifest_digest is not None and checksums_digest is not None
        for member, digest in (
            (MANIFEST_NAME, manifest_digest),
            (CHECKSUMS_NAME, checksums_digest),
        ):
            comment = trusted_comment(manifest.backup_timestamp, member)
            signature = sign_key.sign(digest.digest(), comment).encode()
            writer.add_file(
                member + SIGNATURE_SUFFIX, [signature], mtime=time.time(), mode=0o644,
                size_hint=len(signature), level=0,
            )  # fmt: skip
    writer.close()
    return manifest_hash.hexdigest()


def _hashed(pieces: Iterable[bytes], hasher: hashlib.blake2b | None) -> Iterator[bytes]:
    if hasher is None:
        yield from pieces
        return
    for piece in pieces:
        hasher.update(piece)
        yield piece


def _readable_manifest(pieces: Iterable[bytes], hasher: hashlib._Hash) -> Iterator[bytes]:
    """``metadata.json`` as written: each piece fed to ``hasher``, and refused as soon as
    it grows past what readers accept (an archive restore would refuse is never made)."""
    size = 0
    for piece in pieces:
        size += len(piece)
        if size > MAX_MANIFEST_BYTES:
            raise OperationError(
                MANIFEST_NAME,
                f"the manifest passes {MAX_MANIFEST_BYTES >> 20} MiB, more than readers "
                "accept; back up fewer projects per archive",
            )
        hasher.update(piece)
        yield piece


def _select_projects(
    names: Sequence[str], all_projects: bool, projects_dir: Path, output_dir: Path | None
) -> list[str]:
    available = list_projects(projects_dir, output_dir)
    if all_projects:
        if names:
            raise UsageError("--all and --project", "give one or the other")
        if not available:
            raise UsageError(projects_dir, "no projects to back up")
        return available
    if not names:
        raise UsageError("no project given", "use -p/--project NAME or --all")
    unknown = [n for n in names if n not in available]
    if unknown:
        known = ", ".join(available) or "none"
        raise UsageError(
            f"unknown project {unknown[0]!r}",
            f"projects in {projects_dir}: {known}",
            reason="unknown_project",
        )
    return list(dict.fromkeys(names))


def backup(
    projects: Sequence[str] = (),
    *,
    all_projects: bool = False,
    projects_dir: Path,
    output_dir: Path | str,
    level: int = DEFAULT_LEVEL,
    verify: bool = True,
    excludes: Sequence[str] = (),
    skip_unreadable: bool = False,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    progress: Progress = NO_PROGRESS,
    warn_same_disk: bool = True,
    rehash: bool = False,
    full_every_days: int = DEFAULT_FULL_EVERY_DAYS,
    skip_if_unchanged: bool = False,
    object_lock: ObjectLock | None = None,
    encryption: Encryption | None = None,
    keys: Keys = NO_KEYS,
    sign_key: SigningKey | None = None,
) -> BackupResult:
    """Back up the named projects (or all) into a new verified archive in ``output_dir``
    (a folder, or ``s3://BUCKET/PREFIX``: ``object_lock`` then sets each new archive's
    retention).

    Files unchanged since the parent (the newest archive of the same label known intact)
    are copied from it unread (:mod:`fda_vault._reuse`); ``rehash`` reads every file, as
    does a backup ``full_every_days`` after the last one that did. ``skip_if_unchanged``
    writes nothing when the parent already holds exactly these files.
    ``encryption``: the archive is written encrypted (age recipients or a passphrase),
    with its index beside it; ``keys`` open an encrypted parent (without them its files
    are read fresh). ``sign_key``: the archive carries minisign signatures of its
    ``metadata.json`` and ``checksums.txt`` (:mod:`fda_vault._signing`).
    ``warn_same_disk``: warn when the backups folder is inside the projects root on the
    same disk (the default layout), where one ``rm -rf`` or disk failure takes both.
    """
    if not 0 <= level <= 9:
        raise UsageError(f"--level {level}", "must be 0 (store) to 9")
    if full_every_days < 0:
        raise UsageError(f"--full-every {full_every_days}", "must be 0 (always) or more days")
    clock = time.monotonic()
    started = datetime.now(timezone.utc).replace(microsecond=0)
    folder = open_location(output_dir, object_lock)
    local = folder.path if isinstance(folder, BackupsFolder) else None
    selected = _select_projects(projects, all_projects, projects_dir, local)
    for name in selected:
        if not is_safe_segment(name):
            raise UsageError(f"project {name!r}", "not a single safe path segment")
    folder.create()
    label = archive_label(selected, all_projects)
    with folder.lock(lock_timeout):
        # Nothing is written into the projects root (no lock, no note): only a restore
        # interrupted there is finished first. A restore that swaps a project while we
        # read it is caught by the project folder's identity, checked again at the end.
        recovered = ProjectsFolder(projects_dir).finish_interrupted(lock_timeout)
        identities = {name: _folder_identity(projects_dir / name) for name in selected}
        folder.remove_stale_temps()
        scan = _Scan()
        skip_dirs = {os.path.realpath(local)} if local is not None else set()
        for name in selected:
            _scan_project(projects_dir, name, excludes, skip_dirs, skip_unreadable, scan)
        parent: Parent | None = None
        no_parent: str | None = "--rehash"
        parent_warnings: list[Diagnostic] = []
        if not rehash:
            parent, no_parent, parent_warnings = find_parent(
                folder, label, VerificationRecords(), keys
            )
        try:
            plan = plan_reuse(
                scan.files, parent, started=started, full_every_days=full_every_days,
                no_parent_why=no_parent,
            )  # fmt: skip
            warnings = [
                Diagnostic(reason="recovered", path="", detail=line) for line in recovered
            ] + parent_warnings
            if skip_if_unchanged and parent is not None and _nothing_changed(scan, plan, selected):
                return _unchanged_result(parent, selected, clock, warnings)
            name = folder.unused_name(label, started, encryption.suffix if encryption else "")
            digest = HashAsWritten()
            audit_head = trail_head_for_archive(folder)
            # An age archive also goes to a key made for this run and forgotten after it:
            # the only way to read back what was written with public keys alone.
            own = new_identity() if encryption is not None and encryption.kind == "age" else None
            check_keys = (
                Keys(own=(own,)) if own is not None
                else Keys(passphrase_file=encryption.passphrase_file) if encryption is not None
                else NO_KEYS
            )  # fmt: skip
            try:
                with folder.new_archive(name) as pending:
                    for attempt in range(1, _REWRITES + 2):
                        try:
                            written = _write_archive(
                                pending,
                                scan,
                                plan,
                                digest,
                                level=level,
                                skip_unreadable=skip_unreadable,
                                progress=progress,
                                started=started,
                                projects=selected,
                                patterns=excludes,
                                encryption=encryption,
                                own=own,
                                audit_head=audit_head,
                                sign_key=sign_key,
                                follow=verify and encryption is None,
                            )
                            break
                        except CutAfterEncrypting:
                            # A large file changed while it was read, its first bytes
                            # already encrypted: the archive is written again.
                            if attempt > _REWRITES:
                                raise OperationError(
                                    name, "a large file kept changing while it was read; "
                                    "nothing was written", reason="changed_while_read",
                                ) from None  # fmt: skip
                            digest.close()
                            digest = HashAsWritten()
                            pending.restart()
                    full_read = plan.full_read
                    del scan, plan  # not needed to verify: keep the peak low
                    archive_sha, report = _check_written(
                        pending, written, digest, verify, progress, check_keys
                    )
                    _check_unchanged(projects_dir, identities)
                    if written.archive_index is not None and encryption is not None:
                        _publish_index(folder, name, written.archive_index, encryption, own)
                    try:
                        final = folder.publish(pending, name)
                    except BaseException:
                        if written.archive_index is not None:
                            folder.delete_index(name)
                        raise
            except KeyboardInterrupt:
                raise InterruptedByUser(name, "interrupted; no archive was written") from None
            except OSError as exc:
                raise os_failure(str(folder), exc, "cannot write the archive") from None
            finally:
                digest.close()
        finally:
            if parent is not None:
                parent.close()
        if report is not None:
            record_verified(final, sha256=archive_sha)  # prune may trust it without reading it
    manifest = written.manifest
    return BackupResult(
        archive=str(final),
        projects=selected,
        files=manifest.total_files,
        bytes=manifest.total_bytes,
        archive_size=written.size,
        archive_sha256=archive_sha,
        duration_seconds=round(time.monotonic() - clock, 3),
        verified=verify,
        skipped=manifest.skipped,
        excluded_files=written.excluded,
        # The recovery's own line names the projects and the archive (the runbook shows it).
        warnings=warnings
        + written.warnings
        + (_same_disk_warning(projects_dir, local) if warn_same_disk and local else []),
        parent=manifest.parent.archive if manifest.parent else None,
        reused_files=written.reused_files,
        reused_bytes=written.reused_bytes,
        full_read=None
        if written.reused_files
        else (full_read or "no copy from the parent passed its check"),
        encrypted=encryption.kind if encryption is not None else None,
        signed_by=sign_key.public_key.key_id_text if sign_key is not None else None,
        recipients=list(encryption.recipient_texts) if encryption is not None else [],
    )


def _publish_index(
    folder: BackupsLocation, name: str, index: ArchiveIndex, encryption: Encryption, own: object
) -> None:
    """Write the encrypted archive's index beside it, before the archive appears (an
    archive is never listed without its index; an index alone is cleaned up later)."""
    index_file = index_name(name)
    assert index_file is not None
    data = encrypt_bytes(encryption, index.to_bytes(), own=own)
    with folder.new_archive(index_file) as pending:
        fp = pending.open(len(data))
        try:
            fp.write(data)
            pending.finish(fp)
        finally:
            fp.close()
        pending.sync()
        folder.publish(pending, index_file)


def _check_written(
    pending: PendingArchive,
    written: _Written,
    digest: HashAsWritten,
    verify: bool,
    progress: Progress,
    keys: Keys = NO_KEYS,
) -> tuple[str, VerifyReport | None]:
    """Make the written archive durable, finish its hash (``digest`` saw
    ``written.hashed`` bytes as they were written: the rest is read back) and
    (``verify``) read it back: (SHA-256, report). IntegrityError when the read-back finds
    a problem."""
    # Flushing to disk, finishing the archive's hash (only what a cut made the tap miss
    # is read back) and verifying it wait on the same fresh file: side by side they cost
    # about the longest.
    tmp = pending.readable
    with ThreadPoolExecutor(2) as side:
        synced = side.submit(pending.sync)
        hashed = side.submit(digest.finish, partial(read_from, tmp), written.hashed)
        report = (
            verify_written(
                tmp,
                written.manifest,
                written.manifest_sha256,
                progress=progress,
                keys=keys,
                index=written.archive_index,
                followed=written.followed,
            )
            if verify
            else None
        )
        synced.result()
        archive_sha = hashed.result()
    if report is not None and not report.ok:
        first = report.problems[0]
        raise IntegrityError(
            tmp, f"verification after writing failed: {first.path}: {first.detail}"
        )
    return archive_sha, report


def _nothing_changed(scan: _Scan, plan: ReusePlan, projects: list[str]) -> bool:
    """True when a new archive would hold what the parent holds: the same projects,
    files (each one unchanged), empty folders and left-out entries."""
    parent = plan.parent
    if parent is None or plan.fresh:
        return False
    manifest = parent.manifest
    return (
        manifest.projects == projects
        and len(plan.reused) == len(manifest.files)
        and {reuse.src.key for reuse in plan.reused} == {e.path for e in manifest.files}
        and sorted(key for key, _ in scan.empty_dirs) == manifest.empty_dirs
        and sorted(item.path for item in scan.skipped) == sorted(i.path for i in manifest.skipped)
    )


def _unchanged_result(
    parent: Parent, projects: list[str], clock: float, warnings: list[Diagnostic]
) -> BackupResult:
    """The result of a backup that wrote nothing: the parent holds these files already."""
    manifest = parent.manifest
    return BackupResult(
        archive=str(parent.stored.path),
        projects=projects,
        files=manifest.total_files,
        bytes=manifest.total_bytes,
        archive_size=parent.stored.size,
        archive_sha256=parent.sha256,
        duration_seconds=round(time.monotonic() - clock, 3),
        verified=True,  # the parent is known intact: that is what made it the parent
        skipped=manifest.skipped,
        excluded_files=manifest.exclude.excluded_files,
        warnings=warnings,
        parent=parent.name,
        reused_files=manifest.total_files,
        reused_bytes=manifest.total_bytes,
        unchanged=True,
    )


def _same_disk_warning(projects_dir: Path, output_dir: Path) -> list[Diagnostic]:
    """The 3-2-1 advice, when the backups live inside the projects root on its disk."""
    try:
        inside = Path(os.path.realpath(output_dir)).is_relative_to(os.path.realpath(projects_dir))
        same_disk = os.stat(output_dir).st_dev == os.stat(projects_dir).st_dev
    except OSError:
        return []
    if not (inside and same_disk):
        return []
    return [
        Diagnostic(
            reason="same_disk",
            path=str(output_dir),
            detail="these backups are inside the projects folder, on the same disk: one disk "
            "failure or rm -rf takes both; keep a copy elsewhere (--output-dir on another "
            "disk; --same-disk-ok silences this)",
        )
    ]


def _check_unchanged(projects_dir: Path, identities: dict[str, tuple[int, int] | None]) -> None:
    """Fail naming a project whose folder was replaced (a restore's swap) since the scan."""
    for name, identity in identities.items():
        if _folder_identity(projects_dir / name) != identity:
            raise OperationError(
                projects_dir / name,
                "was replaced while it was being backed up (by a restore?); "
                "no archive was written: run the backup again",
                reason="changed_while_read",
            )


def _folder_identity(folder: Path) -> tuple[int, int] | None:
    """(device, inode) of a project folder: a restore's swap gives it a new inode."""
    try:
        st = os.lstat(folder)
    except OSError:
        return None
    return st.st_dev, st.st_ino
