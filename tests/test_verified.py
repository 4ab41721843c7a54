"""The record of full verifications that prune trusts: identity, age, damage."""

from __future__ import annotations

import json
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from fda_vault._verified import (
    RECORD_MAX_AGE,
    file_identity,
    record_verified,
    records_path,
    verified_earlier,
)


@pytest.fixture
def archive_file(tmp_path: Path) -> Path:
    path = tmp_path / "K1_backup_20260101_000000.zip"
    path.write_bytes(b"PK archive bytes")
    return path


def test_recorded_then_trusted_while_unchanged(archive_file: Path) -> None:
    assert verified_earlier(archive_file) is None
    record_verified(archive_file)
    when = verified_earlier(archive_file)
    assert when is not None and abs(datetime.now(timezone.utc) - when) < timedelta(minutes=1)
    assert records_path().is_relative_to(Path.home() / ".cache" / "fda-vault")


def test_any_write_or_replacement_voids_the_record(archive_file: Path, tmp_path: Path) -> None:
    record_verified(archive_file)
    before = archive_file.stat()
    archive_file.write_bytes(b"PK archive byteZ")  # same size
    os.utime(archive_file, ns=(before.st_atime_ns, before.st_mtime_ns))  # mtime put back
    assert verified_earlier(archive_file) is None  # the ctime moved
    record_verified(archive_file)
    copy = tmp_path / "copy.zip"
    copy.write_bytes(archive_file.read_bytes())
    os.replace(copy, archive_file)  # another inode under the same name
    assert verified_earlier(archive_file) is None


def test_old_records_expire(archive_file: Path) -> None:
    record_verified(archive_file)
    later = datetime.now(timezone.utc) + RECORD_MAX_AGE + timedelta(hours=1)
    assert verified_earlier(archive_file, now=later) is None


def test_a_damaged_or_foreign_record_file_is_ignored(archive_file: Path) -> None:
    records_path().parent.mkdir(parents=True, exist_ok=True)
    records_path().write_text("{not json")
    assert verified_earlier(archive_file) is None
    record_verified(archive_file)  # rewrites it whole
    assert verified_earlier(archive_file) is not None
    data = json.loads(records_path().read_text())
    forged = {k: {**v, "identity": [1, 2, 3, 4, 5]} for k, v in data.items()}
    records_path().write_text(json.dumps(forged))
    assert verified_earlier(archive_file) is None
    assert file_identity(archive_file).size == archive_file.stat().st_size


def test_recording_never_fails_a_command(
    archive_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocker = Path.home() / "cache-is-a-file"
    blocker.write_bytes(b"")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    record_verified(archive_file)  # cannot write: silently no record
    assert verified_earlier(archive_file) is None
