"""The compact central-directory reader: same view as zipfile on good archives, an
IntegrityError (never another exception) on bad ones."""

from __future__ import annotations

import re
import struct
import time
import zipfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fda_vault._errors import IntegrityError, UsageError
from fda_vault._members import iter_member, open_archive
from fda_vault._zipindex import ZipFormatError, ZipIndex
from fda_vault._zipwriter import ZipWriter

MTIME = time.mktime((2024, 5, 17, 10, 30, 42, 0, 0, -1))


def _write(path: Path, members: dict[str, bytes], *, size_hint: int | None = None) -> Path:
    with path.open("wb") as fp:
        writer = ZipWriter(fp)
        for name, data in members.items():
            hint = len(data) if size_hint is None else size_hint
            writer.add_file(name, [data], mtime=MTIME, mode=0o644, size_hint=hint, level=6)
        writer.close()
    return path


def _same_as_zipfile(path: Path) -> None:
    with ZipIndex(path) as index, zipfile.ZipFile(path) as zf:
        ours = [
            (m.filename, m.CRC, m.compress_size, m.file_size, m.header_offset, m.compress_type)
            for m in index.infolist()
        ]
        theirs = [
            (i.filename, i.CRC, i.compress_size, i.file_size, i.header_offset, i.compress_type)
            for i in zf.infolist()
        ]
        assert ours == theirs


def test_matches_zipfile_on_a_plain_archive(tmp_path: Path) -> None:
    path = _write(tmp_path / "a.zip", {"projects/p/a.txt": b"abc" * 999, "projects/p/é.md": b""})
    _same_as_zipfile(path)
    with ZipIndex(path) as index:
        member = index.getinfo("projects/p/a.txt")
        assert b"".join(iter_member(index, member, 2997, path)) == b"abc" * 999


def test_reads_zip64_size_fields(tmp_path: Path) -> None:
    # A size hint of 4 GiB makes the writer use ZIP64 headers for a small payload.
    path = _write(tmp_path / "z64.zip", {"projects/p/big.bin": b"x" * 5000}, size_hint=1 << 32)
    with ZipIndex(path) as index:
        member = index.getinfo("projects/p/big.bin")
        assert (member.file_size, member.header_offset) == (5000, 0)
        assert b"".join(iter_member(index, member, 5000, path)) == b"x" * 5000
    _same_as_zipfile(path)


@pytest.mark.slow
def test_reads_the_zip64_end_record_of_65536_members(tmp_path: Path) -> None:
    members = {f"projects/p/{i:05d}": b"" for i in range(65_536)}
    path = _write(tmp_path / "many.zip", members)
    with ZipIndex(path) as index:
        assert len(index.infolist()) == 65_536
        assert index.getinfo("projects/p/65535").file_size == 0


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda data: b"", "empty"),
        (lambda data: data[:10], "too short"),
        (lambda data: data.replace(b"PK\x05\x06", b"XX\x05\x06"), "end-of-directory"),
        (lambda data: data.replace(b"PK\x01\x02", b"PK\x01\x09", 1), "central directory"),
        (lambda data: data[:-40] + data[-22:], "central directory"),
    ],
)
def test_damage_is_an_integrity_error(tmp_path: Path, damage: object, words: str) -> None:
    good = _write(tmp_path / "good.zip", {"projects/p/a.txt": b"hello" * 100})
    bad = tmp_path / "bad.zip"
    bad.write_bytes(damage(good.read_bytes()))  # type: ignore[operator]
    with pytest.raises(ZipFormatError) as info:
        ZipIndex(bad)
    assert words in str(info.value)
    # The archive layer says it in fda-vault's terms: exit 3, naming the file.
    with pytest.raises(IntegrityError) as translated:
        open_archive(bad)
    assert words in translated.value.why and translated.value.what == str(bad)


def test_central_directory_pointing_past_its_end_is_refused(tmp_path: Path) -> None:
    good = _write(tmp_path / "good.zip", {"projects/p/a.txt": b"hello"})
    data = bytearray(good.read_bytes())
    eocd = data.rfind(b"PK\x05\x06")
    struct.pack_into("<I", data, eocd + 16, len(data) + 100)  # central directory offset
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    with pytest.raises(ZipFormatError):
        ZipIndex(bad)


def test_a_missing_file_is_the_systems_error_here_and_a_usage_error_above(
    tmp_path: Path,
) -> None:
    with pytest.raises(FileNotFoundError):
        ZipIndex(tmp_path / "nope.zip")
    with pytest.raises(UsageError):
        open_archive(tmp_path / "nope.zip")


@settings(
    max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(position=st.integers(min_value=0), value=st.integers(min_value=0, max_value=255))
def test_any_single_byte_change_opens_or_raises_integrity_error(
    tmp_path: Path, position: int, value: int
) -> None:
    good = tmp_path / "good.zip"
    if not good.exists():
        _write(good, {"projects/p/a.txt": b"hello" * 100, "projects/p/b.txt": b"bye"})
    data = bytearray(good.read_bytes())
    data[position % len(data)] = value
    bad = tmp_path / "mutant.zip"
    bad.write_bytes(bytes(data))
    try:
        with ZipIndex(bad) as index:
            index.infolist()
    except ZipFormatError:
        pass


def test_members_beyond_4_gib_use_zip64_offsets(tmp_path: Path) -> None:
    """DESIGN: archives over 4 GiB work. A sparse 5 GiB start puts every member there."""
    path = tmp_path / "huge.zip"
    with path.open("wb") as fp:
        fp.seek(5 << 30)  # a hole: costs no disk space
        writer = ZipWriter(fp)
        writer.add_file("projects/p/a.txt", [b"far away " * 100], mtime=MTIME, mode=0o644,
                        size_hint=900, level=6)  # fmt: skip
        writer.add_file("projects/p/b.bin", [b"\x00\xff" * 50], mtime=MTIME, mode=0o644,
                        size_hint=100, level=0)  # fmt: skip
        writer.close()
    with ZipIndex(path) as index:
        a = index.getinfo("projects/p/a.txt")
        assert a.header_offset > 1 << 32
        assert b"".join(iter_member(index, a, 900, path)) == b"far away " * 100
    _same_as_zipfile(path)


class _InMemory:
    """A RandomAccess over bytes that counts its reads (as a ranged-GET source would)."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.size = len(data)
        self.reads: list[tuple[int, int]] = []

    def pread(self, length: int, offset: int, /) -> bytes:
        self.reads.append((offset, length))
        return self.data[offset : offset + length]

    def close(self) -> None:
        pass


def test_any_random_access_source_reads_like_a_file(tmp_path: Path) -> None:
    """What object storage will plug in: the index and the member readers use only pread."""
    path = _write(tmp_path / "a.zip", {"projects/p/a.txt": b"hello" * 1000, "projects/p/b": b""})
    source = _InMemory(path.read_bytes())
    with ZipIndex(Path("remote.zip"), source=source) as index:
        info = index.getinfo("projects/p/a.txt")
        assert b"".join(iter_member(index, info, 5000, Path("remote.zip"))) == b"hello" * 1000
    assert source.reads and all(length <= source.size for _, length in source.reads)


def test_a_member_needing_a_zip_version_beyond_6_3_is_refused(tmp_path: Path) -> None:
    """Found by the mutation test: "version needed" 8.4 on one entry. Python's zipfile and
    unzip refuse such a member; so do we, naming it (the whole archive is unreadable)."""
    good = _write(tmp_path / "good.zip", {"projects/p/a.txt": b"hello"})
    data = bytearray(good.read_bytes())
    central = data.rfind(b"PK\x01\x02")
    data[central + 6] = 84  # version needed to extract, low byte
    bad = tmp_path / "bad.zip"
    bad.write_bytes(bytes(data))
    with pytest.raises(ZipFormatError, match=re.escape("projects/p/a.txt needs ZIP version 8.4")):
        ZipIndex(bad)
    with pytest.raises(IntegrityError):
        open_archive(bad)


def test_member_times_are_zipfiles(tmp_path: Path) -> None:
    """The index keeps each member's DOS time (legacy ZIPs take their mtimes from it)."""
    path = tmp_path / "t.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(zipfile.ZipInfo("projects/p/a", date_time=(2023, 7, 14, 13, 5, 58)), b"x")
    with ZipIndex(path) as index, zipfile.ZipFile(path) as zf:
        assert index.getinfo("projects/p/a").date_time == zf.getinfo("projects/p/a").date_time
