"""``metadata.json``: the BackupManifest of archive format v1 (DESIGN.md)."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from functools import cache

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    TypeAdapter,
    ValidationError,
    field_validator,
)
from pydantic.dataclasses import dataclass

from fda_vault._errors import IntegrityError

__all__ = [
    "FORMAT_VERSION",
    "RESERVED_PROJECT_NAME",
    "AuditAnchor",
    "BackupManifest",
    "ExcludeInfo",
    "FileEntry",
    "ImportedFrom",
    "ParentInfo",
    "SchemaInfo",
    "SkippedEntry",
    "has_control_char",
    "is_safe_segment",
    "parse_manifest",
    "project_of",
]

FORMAT_VERSION = "1.2.0"
# The default backups folder lives in the projects root; no archive may replace it.
RESERVED_PROJECT_NAME = "backups"
SCHEMA_DESCRIPTION = (
    "fda-vault backup archive: metadata.json describes every file under "
    "projects/<project>/; checksums.txt holds the same SHA-256 values for sha256sum -c."
)


_CONTROL = re.compile("[\x00-\x1f\x7f]")


def has_control_char(text: str) -> bool:
    """True when ``text`` holds a C0 control character or DEL."""
    return _CONTROL.search(text) is not None


def project_of(path: str) -> str:
    """The project of a manifest path: ``"<project>/<path>"`` -> ``"<project>"``."""
    return path.partition("/")[0]


def is_safe_segment(name: str) -> bool:
    """True when ``name`` is one harmless path segment: no separator, dots or control."""
    return (
        bool(name)
        and name not in {".", ".."}
        and "/" not in name
        and "\\" not in name
        and not has_control_char(name)
        and not (len(name) >= 2 and name[1] == ":")
    )


class _Model(BaseModel):
    # Readers ignore unknown fields so that every 1.x archive stays readable.
    model_config = ConfigDict(extra="ignore")


# A slotted pydantic dataclass, not a BaseModel: an archive of 20,000 files holds 20,000 of
# these, and a BaseModel instance costs ~500 bytes more (its __dict__ and field set).
@dataclass(slots=True, config=ConfigDict(extra="ignore"))
class FileEntry:
    """One backed-up file."""

    path: str = Field(description='"<project>/<path>", POSIX separators')
    size: int = Field(ge=0, description="uncompressed size in bytes")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256, lowercase hex")
    mtime: float = Field(description="modification time, seconds since the epoch")
    mode: int = Field(ge=0, le=0o7777, description="permission bits")
    # Added in 1.0 beyond the original table: a float cannot hold nanoseconds exactly.
    mtime_ns: int | None = Field(
        default=None, description="modification time in nanoseconds, exact (optional)"
    )
    # Added in 1.1 for repeat backups (1.0 readers ignore them): the source file's
    # identity when it was read, which tells the next backup that the file is unchanged.
    ctime_ns: int | None = Field(
        default=None, description="status-change time in nanoseconds when read (optional)"
    )
    inode: int | None = Field(default=None, description="inode number when read (optional)")
    device: int | None = Field(default=None, description="device number when read (optional)")
    compressed_crc32: int | None = Field(
        default=None,
        ge=0,
        le=0xFFFFFFFF,
        description="CRC-32 of the member's bytes as stored in the ZIP (compressed), so a "
        "later backup can copy them unread and still check them (optional)",
    )
    reused_from: str | None = Field(
        default=None,
        pattern=r"^[0-9a-f]{64}$",
        description="SHA-256 of the archive whose member was copied here unchanged; "
        "absent when the file was read from the source (optional)",
    )


class ParentInfo(_Model):
    """The archive a repeat backup copied unchanged files from (added in 1.1; optional)."""

    archive: str = Field(description="the parent archive's file name")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the parent archive")
    backup_timestamp: str = Field(description="when the parent backup started")


class SkippedEntry(_Model):
    """Something under a project that was deliberately not backed up."""

    path: str
    reason: str


class ExcludeInfo(_Model):
    """The ``--exclude`` patterns given and how many files they left out."""

    patterns: list[str] = Field(default_factory=list)
    excluded_files: int = 0


class SchemaInfo(_Model):
    """Version and description of the metadata schema (kept from the original format)."""

    version: str = "1.0"
    description: str = SCHEMA_DESCRIPTION


class ImportedFrom(_Model):
    """Where an archive made by ``fda-vault import`` came from (added in 1.0; optional)."""

    file: str = Field(description="the original archive's file name")
    format: str = Field(description="its format, e.g. 'legacy (fda-tools tar.gz)'")
    sha256: str = Field(description="SHA-256 of the original archive file")
    created_by: str = Field(default="", description="the original's created_by, if any")


class AuditAnchor(_Model):
    """The head of the backups location's audit trail when the archive was written (added
    in 1.2; optional): a truncated or replaced trail disagrees with it (``log --verify``)."""

    trail: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of the trail's 1st event")
    seq: int = Field(ge=1, description="the number of the trail's newest event")
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$", description="SHA-256 of that event")


class BackupManifest(_Model):
    """The content of ``metadata.json``."""

    backup_version: str = FORMAT_VERSION
    backup_timestamp: str = Field(description="ISO 8601 with UTC offset, when the backup started")
    projects: list[str]
    total_projects: int = Field(ge=0)
    total_files: int = Field(ge=0)
    total_bytes: int = Field(default=0, ge=0)
    checksums: dict[str, str] = Field(description='"<project>/<path>" -> SHA-256 hex')
    files: list[FileEntry] = Field(default_factory=list)
    empty_dirs: list[str] = Field(default_factory=list)
    skipped: list[SkippedEntry] = Field(default_factory=list)
    exclude: ExcludeInfo = Field(default_factory=ExcludeInfo)
    created_by: str = ""
    imported_from: ImportedFrom | None = Field(
        default=None, description="set by `fda-vault import`: the legacy archive it came from"
    )
    parent: ParentInfo | None = Field(
        default=None, description="the archive unchanged files were copied from (1.1)"
    )
    last_full_read: str | None = Field(
        default=None,
        description="ISO 8601: the start of the newest backup in this archive's line that "
        "read every file from the source (1.1; --full-every counts from it)",
    )
    audit_head: AuditAnchor | None = Field(
        default=None,
        description="the head of the location's audit trail when this archive was written "
        "(1.2; `fda-vault log --verify` checks the trail against it)",
    )
    schema_: SchemaInfo = Field(default_factory=SchemaInfo, alias="schema")

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    # Which format the archive is in (fda_vault.legacy): set by readers, never read from
    # or written to metadata.json, so no archive can claim to be another format.
    _source_format: str = PrivateAttr(default="fda-vault")

    @property
    def source_format(self) -> str:
        """ "fda-vault", or the legacy format this manifest was read from."""
        return self._source_format

    @source_format.setter
    def source_format(self, value: str) -> None:
        self._source_format = value

    @field_validator("backup_version")
    @classmethod
    def _major_is_one(cls, value: str) -> str:
        if value.split(".")[0] != "1":
            raise ValueError(f"unsupported format version {value!r} (this fda-vault reads 1.x)")
        return value

    @field_validator("projects")
    @classmethod
    def _projects_are_segments(cls, value: list[str]) -> list[str]:
        for name in value:
            if not is_safe_segment(name) or name.startswith("."):
                raise ValueError(f"project name {name!r} is not a single safe path segment")
            if name == RESERVED_PROJECT_NAME:
                raise ValueError(f"project name {name!r} is reserved for the backups folder")
        if len(set(value)) != len(value):
            raise ValueError("project names repeat")
        return value

    def to_json_bytes(self) -> bytes:
        """Serialize as written into the archive (by alias, compact, UTF-8)."""
        # Straight to bytes, and compact: indenting 20,000 file entries would make the
        # document half again as large, and every reader holds it whole while parsing.
        return self.__pydantic_serializer__.to_json(self, by_alias=True)

    def to_json_chunks(self, batch: int = 2_000) -> Iterator[bytes]:
        """:meth:`to_json_bytes`, byte for byte, in pieces of ``batch`` files.

        A manifest of 20,000 files is then never serialized whole: pydantic's growing
        buffer and the bytes copied out of it held about twice its size at once.
        """
        shell = self.model_copy(update={"checksums": {}, "files": []}).to_json_bytes()
        # Keys and strings are quoted and escaped: these markers occur once, as fields.
        head, rest = shell.split(b'"checksums":{}', 1)
        middle, tail = rest.split(b'"files":[]', 1)
        checksums_json, files_json = _piece_serializers()
        yield head + b'"checksums":{'
        items = list(self.checksums.items())
        for start in range(0, len(items), batch):
            piece = checksums_json(dict(items[start : start + batch]))
            yield (b"," if start else b"") + piece[1:-1]
        yield b"}" + middle + b'"files":['
        for start in range(0, len(self.files), batch):
            piece = files_json(self.files[start : start + batch])
            yield (b"," if start else b"") + piece[1:-1]
        yield b"]" + tail

    def checksums_txt(self) -> bytes:
        """The ``checksums.txt`` member: sorted ``sha256sum -c`` lines."""
        return b"".join(self.checksums_txt_chunks())

    def checksums_txt_chunks(self, lines: int = 8192) -> Iterator[bytes]:
        """:meth:`checksums_txt` in pieces of ``lines`` whole lines (~1 MiB by default)."""
        # Ordered by (digest, path): the digests have one length and the text between
        # is the same, so sorting the lines without their newline sorts by exactly that
        # (string comparisons: several times faster than comparing (digest, path) tuples).
        ordered = sorted([f"{e.sha256}  projects/{e.path}" for e in self.files])
        for start in range(0, len(ordered), lines):
            batch = ordered[start : start + lines]
            batch.append("")  # a newline after the last line too
            yield "\n".join(batch).encode()

    def checksums_txt_size(self) -> int:
        """The length of :meth:`checksums_txt`, without building it."""
        # Each line: 64 hex digits, two spaces, "projects/", the path, a newline.
        return sum(76 + len(e.path.encode()) for e in self.files)

    def checksums_txt_matches(self, raw: bytes) -> bool:
        """True when ``raw`` is exactly :meth:`checksums_txt`, without building it whole."""
        view = memoryview(raw)
        position = 0
        for piece in self.checksums_txt_chunks():
            if view[position : position + len(piece)] != piece:
                return False
            position += len(piece)
        return position == len(raw)


@cache
def _piece_serializers() -> tuple[
    Callable[[dict[str, str]], bytes], Callable[[list[FileEntry]], bytes]
]:
    """JSON of a part of ``checksums`` and of ``files``, as the manifest writes them (built
    on first use: a validator costs start-up time that list and verify never need)."""
    return TypeAdapter(dict[str, str]).dump_json, TypeAdapter(list[FileEntry]).dump_json


@cache
def _entries_validator() -> Callable[[list[dict[str, object]]], list[FileEntry]]:
    return TypeAdapter(list[FileEntry]).validate_python


def file_entries(fields: list[dict[str, object]]) -> list[FileEntry]:
    """:class:`FileEntry` of each dict of fields, validated in one call (a fifth of the
    cost of one call per entry: a backup of 20,000 small files makes 20,000)."""
    return _entries_validator()(fields)


def parse_manifest(raw: bytes | bytearray, archive_name: str) -> BackupManifest:
    """Parse ``metadata.json`` bytes, raising IntegrityError naming the first problem."""
    try:
        # pydantic parses and validates in one pass in Rust: a large manifest costs little.
        manifest = BackupManifest.model_validate_json(raw)
    except ValidationError as exc:
        if exc.errors()[0]["type"].startswith("json"):
            raise IntegrityError(
                archive_name, f"metadata.json is not valid JSON ({exc.errors()[0]['msg']})"
            ) from None
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "(root)"
        raise IntegrityError(archive_name, f"metadata.json field {where}: {first['msg']}") from None
    # `checksums` repeats every file's digest: hold each digest once (~110 B a file).
    checksums = manifest.checksums
    parents: dict[str, str] = {}  # and each parent's SHA-256 once, not once a copied file
    for entry in manifest.files:
        if checksums.get(entry.path) == entry.sha256:
            checksums[entry.path] = entry.sha256
        if entry.reused_from is not None:
            entry.reused_from = parents.setdefault(entry.reused_from, entry.reused_from)
    return manifest
