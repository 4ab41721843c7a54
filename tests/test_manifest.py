"""BackupManifest: the metadata.json schema of archive format v1."""

from __future__ import annotations

import hashlib
import json
from typing import Any

import pytest
from pydantic import ValidationError

from fda_vault._errors import ExitCode, IntegrityError
from fda_vault._manifest import (
    FORMAT_VERSION,
    BackupManifest,
    FileEntry,
    is_safe_segment,
    parse_manifest,
)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _manifest(**overrides: Any) -> BackupManifest:
    files = [
        FileEntry(path="alpha/b.txt", size=2, sha256=_sha(b"bb"), mtime=1.5, mode=0o644),
        FileEntry(path="alpha/a/c.md", size=1, sha256=_sha(b"c"), mtime=2.0, mode=0o600),
        FileEntry(path="béta/x", size=0, sha256=_sha(b""), mtime=3.0, mode=0o755),
    ]
    fields: dict[str, Any] = {
        "backup_timestamp": "2026-03-14T15:09:26+00:00",
        "projects": ["alpha", "béta"],
        "total_projects": 2,
        "total_files": len(files),
        "total_bytes": 3,
        "checksums": {f.path: f.sha256 for f in files},
        "files": files,
        "empty_dirs": ["alpha/empty"],
        "created_by": "fda-vault test",
    }
    fields.update(overrides)
    return BackupManifest(**fields)


def test_json_round_trip_keeps_every_field() -> None:
    manifest = _manifest()
    parsed = parse_manifest(manifest.to_json_bytes(), "x.zip")
    assert parsed == manifest


def test_metadata_json_has_the_original_and_the_new_fields() -> None:
    data = json.loads(_manifest().to_json_bytes())
    original = {
        "backup_version",
        "backup_timestamp",
        "projects",
        "total_projects",
        "total_files",
        "checksums",
        "created_by",
        "schema",
    }
    added = {"files", "total_bytes", "empty_dirs", "skipped"}
    assert original | added <= set(data)
    assert "schema_" not in data  # serialized under its alias
    assert data["schema"]["version"] == "1.0"
    assert data["backup_version"] == FORMAT_VERSION == "1.2.0"
    first = data["files"][0]
    assert {k: first[k] for k in ("path", "size", "sha256", "mtime", "mode")} == {
        "path": "alpha/b.txt",
        "size": 2,
        "sha256": _sha(b"bb"),
        "mtime": 1.5,
        "mode": 0o644,
    }


def test_checksums_txt_is_sorted_sha256sum_format() -> None:
    text = _manifest().checksums_txt().decode("utf-8")
    lines = text.splitlines()
    assert lines == sorted(lines)
    assert text.endswith("\n")
    assert f"{_sha(b'c')}  projects/alpha/a/c.md" in lines
    assert f"{_sha(b'')}  projects/béta/x" in lines
    assert len(lines) == 3


@pytest.mark.parametrize("version", ["1.0.0", "1.4.2", "1.99.0"])
def test_any_1x_version_is_accepted(version: str) -> None:
    raw = _manifest(backup_version=version).to_json_bytes()
    assert parse_manifest(raw, "a.zip").backup_version == version


@pytest.mark.parametrize("version", ["2.0.0", "0.9.0", "10.0.0"])
def test_another_major_version_is_rejected(version: str) -> None:
    data = json.loads(_manifest().to_json_bytes())
    data["backup_version"] = version
    with pytest.raises(IntegrityError) as info:
        parse_manifest(json.dumps(data).encode(), "a.zip")
    assert info.value.exit_code == ExitCode.INTEGRITY
    assert "backup_version" in info.value.message


def test_unknown_fields_are_ignored() -> None:
    data = json.loads(_manifest().to_json_bytes())
    data["added_in_1_9"] = {"anything": [1, 2]}
    data["files"][0]["xattrs"] = {"user.k": "v"}
    assert parse_manifest(json.dumps(data).encode(), "a.zip") == _manifest()


def test_a_manifest_with_only_the_original_fields_is_readable() -> None:
    original = {
        "backup_version": "1.0.0",
        "backup_timestamp": "2025-01-01T00:00:00+00:00",
        "projects": ["alpha"],
        "total_projects": 1,
        "total_files": 1,
        "checksums": {"alpha/a.txt": _sha(b"a")},
        "created_by": "backup_project.py",
        "schema": {"version": "1.0", "description": "original"},
    }
    manifest = parse_manifest(json.dumps(original).encode(), "old.zip")
    assert manifest.files == []
    assert manifest.empty_dirs == []
    assert manifest.skipped == []
    assert manifest.total_bytes == 0
    assert manifest.checksums == {"alpha/a.txt": _sha(b"a")}


@pytest.mark.parametrize(
    "raw",
    [b"", b"{not json", b"\xff\xfe", b"[1, 2]", b'"text"', b"{}"],
    ids=["empty", "broken", "not-utf8", "list", "string", "missing-fields"],
)
def test_parse_manifest_rejects_garbage_with_integrity_error(raw: bytes) -> None:
    with pytest.raises(IntegrityError) as info:
        parse_manifest(raw, "bad.zip")
    assert info.value.exit_code == 3
    assert info.value.what == "bad.zip"
    assert "metadata.json" in info.value.why


@pytest.mark.parametrize(
    "projects",
    [["../evil"], [".hidden"], ["a/b"], ["a\\b"], [""], ["C:"], ["x\ny"], ["dup", "dup"]],
)
def test_project_names_must_be_single_safe_segments(projects: list[str]) -> None:
    with pytest.raises(ValidationError):
        _manifest(projects=projects, total_projects=len(projects))


@pytest.mark.parametrize(
    ("name", "safe"),
    [
        ("K241234_cardiac", True),
        ("capteur_glycémie_血糖", True),
        ("with space", True),
        ("", False),
        (".", False),
        ("..", False),
        ("a/b", False),
        ("a\\b", False),
        ("tab\there", False),
        ("del\x7f", False),
        ("C:evil", False),
    ],
)
def test_is_safe_segment(name: str, safe: bool) -> None:
    assert is_safe_segment(name) is safe


@pytest.mark.parametrize(
    "fields",
    [
        {"sha256": "A" * 64},
        {"sha256": "0" * 63},
        {"size": -1},
        {"mode": 0o10000},
        {"mode": -1},
    ],
)
def test_file_entry_rejects_bad_values(fields: dict[str, Any]) -> None:
    base: dict[str, Any] = {"path": "p/f", "size": 0, "sha256": "0" * 64, "mtime": 0.0, "mode": 0}
    with pytest.raises(ValidationError):
        FileEntry(**{**base, **fields})


@pytest.mark.parametrize("batch", [1, 2, 2_000])
def test_json_in_pieces_is_the_same_document(batch: int) -> None:
    """Backup writes metadata.json piece by piece; readers must get the very same bytes."""
    odd = FileEntry(path='alpha/q"uote\\d é.txt', size=5, sha256=_sha(b"odd"), mtime=4.25, mode=0)
    manifest = _manifest(
        files=[*_manifest().files, odd],
        checksums={**_manifest().checksums, odd.path: odd.sha256},
        total_files=4,
        total_bytes=8,
        skipped=[{"path": "alpha/link", "reason": 'symlink "checksums":{}'}],
    )
    assert b"".join(manifest.to_json_chunks(batch)) == manifest.to_json_bytes()
    empty = _manifest(files=[], checksums={}, total_files=0, total_bytes=0)
    assert b"".join(empty.to_json_chunks(batch)) == empty.to_json_bytes()


def test_checksums_txt_in_pieces_and_its_size() -> None:
    manifest = _manifest()
    whole = manifest.checksums_txt()
    pieces = list(manifest.checksums_txt_chunks(lines=2))
    assert b"".join(pieces) == whole
    assert len(pieces) > 1 and all(piece.endswith(b"\n") for piece in pieces)
    assert manifest.checksums_txt_size() == len(whole)
