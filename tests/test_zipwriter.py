"""The streaming ZIP writer: what it writes must be a standard archive for zipfile and unzip."""

from __future__ import annotations

import io
import os
import shutil
import stat
import struct
import subprocess
import time
import zipfile
import zlib
from pathlib import Path

import pytest

from fda_vault._zipwriter import ZipWriter, file_attr, small_entry

MTIME = time.mktime((2024, 5, 17, 10, 30, 42, 0, 0, -1))  # local time, as DOS stores it
ZIP64_EXTRA = 0x0001
ZIP64_EOCD_SIG = b"PK\x06\x06"
ZIP64_LOCATOR_SIG = b"PK\x06\x07"
FOUR_GIB = 1 << 32


def _chunks(data: bytes, size: int = 1000) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


def _extra_ids(extra: bytes) -> list[int]:
    ids = []
    while len(extra) >= 4:
        header_id, length = struct.unpack("<HH", extra[:4])
        ids.append(header_id)
        extra = extra[4 + length :]
    return ids


def test_stored_and_deflated_entries_read_back_exactly() -> None:
    text = b"510(k) substantial equivalence\n" * 500
    binary = bytes(range(256)) * 40
    buf = io.BytesIO()
    writer = ZipWriter(buf)
    deflated = writer.add_file(
        "projects/p/a.txt", _chunks(text), mtime=MTIME, mode=0o644, size_hint=len(text), level=6
    )
    stored = writer.add_file(
        "projects/p/b.bin", _chunks(binary), mtime=MTIME, mode=0o600, size_hint=0, level=0
    )
    writer.close()

    assert deflated.size == len(text)
    assert deflated.compressed_size < len(text) // 10
    assert stored.size == stored.compressed_size == len(binary)
    with zipfile.ZipFile(buf) as zf:
        assert zf.testzip() is None
        assert zf.read("projects/p/a.txt") == text
        assert zf.read("projects/p/b.bin") == binary
        a, b = zf.getinfo("projects/p/a.txt"), zf.getinfo("projects/p/b.bin")
        assert a.compress_type == zipfile.ZIP_DEFLATED
        assert b.compress_type == zipfile.ZIP_STORED
        assert stat.S_ISREG(a.external_attr >> 16)
        assert stat.S_IMODE(a.external_attr >> 16) == 0o644
        assert stat.S_IMODE(b.external_attr >> 16) == 0o600
        assert a.date_time == (2024, 5, 17, 10, 30, 42)


def test_empty_file_and_directory_entries() -> None:
    buf = io.BytesIO()
    writer = ZipWriter(buf)
    writer.add_file("projects/p/empty", [], mtime=MTIME, mode=0o644, size_hint=0, level=6)
    writer.add_dir("projects/p/folder/", mtime=MTIME, mode=0o750)
    writer.close()
    with zipfile.ZipFile(buf) as zf:
        assert zf.read("projects/p/empty") == b""
        folder = zf.getinfo("projects/p/folder/")
        assert folder.is_dir()
        assert stat.S_ISDIR(folder.external_attr >> 16)
        assert stat.S_IMODE(folder.external_attr >> 16) == 0o750


def test_non_ascii_names_are_flagged_utf8() -> None:
    name = "projects/capteur_glycémie_血糖/réunion 📝.md"
    buf = io.BytesIO()
    writer = ZipWriter(buf)
    writer.add_file(name, [b"x"], mtime=MTIME, mode=0o644, size_hint=1, level=6)
    writer.add_file("projects/p/ascii.txt", [b"y"], mtime=MTIME, mode=0o644, size_hint=1, level=6)
    writer.close()
    with zipfile.ZipFile(buf) as zf:
        assert zf.namelist() == [name, "projects/p/ascii.txt"]
        assert zf.getinfo(name).flag_bits & 0x800
        assert not zf.getinfo("projects/p/ascii.txt").flag_bits & 0x800
        assert zf.read(name) == b"x"


def test_rollback_forgets_the_entry_and_its_bytes() -> None:
    buf = io.BytesIO()
    writer = ZipWriter(buf)
    writer.add_file("projects/p/keep", [b"keep"], mtime=MTIME, mode=0o644, size_hint=4, level=6)
    mark = writer.tell()
    writer.add_file(
        "projects/p/gone", [os.urandom(5000)], mtime=MTIME, mode=0o644, size_hint=5000, level=0
    )
    writer.rollback_to(mark)
    assert writer.tell() == mark
    writer.add_file("projects/p/after", [b"after"], mtime=MTIME, mode=0o644, size_hint=5, level=6)
    writer.close()
    with zipfile.ZipFile(buf) as zf:
        assert zf.namelist() == ["projects/p/keep", "projects/p/after"]
        assert zf.testzip() is None
        assert zf.read("projects/p/after") == b"after"
    assert len(buf.getvalue()) < 5000


def test_zip64_entry_when_the_size_hint_reaches_4_gib() -> None:
    """A file announced as >= 4 GiB gets ZIP64 headers; a small payload proves the layout."""
    payload = b"ZIP64 payload " * 1000
    buf = io.BytesIO()
    writer = ZipWriter(buf)
    writer.add_file(
        "projects/p/huge.bin",
        _chunks(payload),
        mtime=MTIME,
        mode=0o644,
        size_hint=FOUR_GIB + 1,
        level=6,
    )
    writer.add_file(
        "projects/p/huge_stored.bin",
        _chunks(payload),
        mtime=MTIME,
        mode=0o644,
        size_hint=5 * FOUR_GIB,
        level=0,
    )
    writer.add_file("projects/p/small", [b"s"], mtime=MTIME, mode=0o644, size_hint=1, level=6)
    writer.close()
    raw = buf.getvalue()
    # The local header: version 4.5 needed, 32-bit sizes set to 0xFFFFFFFF, ZIP64 extra.
    assert raw[:4] == b"PK\x03\x04"
    (version,) = struct.unpack("<H", raw[4:6])
    csize32, size32 = struct.unpack("<II", raw[18:26])
    assert version == 45
    assert csize32 == size32 == 0xFFFFFFFF
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        assert zf.testzip() is None
        assert zf.read("projects/p/huge.bin") == payload
        assert zf.read("projects/p/huge_stored.bin") == payload
        assert zf.read("projects/p/small") == b"s"
        assert ZIP64_EXTRA in _extra_ids(zf.getinfo("projects/p/huge.bin").extra)
        assert ZIP64_EXTRA not in _extra_ids(zf.getinfo("projects/p/small").extra)


@pytest.mark.slow
def test_more_than_65535_entries_use_the_zip64_end_records() -> None:
    count = 0x10000 + 3
    buf = io.BytesIO()
    writer = ZipWriter(buf)
    for i in range(count):
        writer.add_file(f"projects/p/{i}", [], mtime=MTIME, mode=0o644, size_hint=0, level=0)
    writer.add_file("projects/p/last", [b"end"], mtime=MTIME, mode=0o644, size_hint=3, level=6)
    writer.close()
    raw = buf.getvalue()
    assert ZIP64_EOCD_SIG in raw[-200:]
    assert ZIP64_LOCATOR_SIG in raw[-200:]
    with zipfile.ZipFile(io.BytesIO(raw)) as zf:
        infos = zf.infolist()
        assert len(infos) == count + 1
        assert infos[0].filename == "projects/p/0"
        assert zf.read("projects/p/last") == b"end"


def test_a_file_growing_past_4_gib_without_zip64_is_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Lower the 32-bit limit so that "4 GiB" is a few bytes: the guard is what is tested.
    monkeypatch.setattr("fda_vault._zipwriter._MAX32", 100)
    writer = ZipWriter(io.BytesIO())
    with pytest.raises(OverflowError, match="grew past 4 GiB"):
        writer.add_file(
            "projects/p/f", [b"x" * 101], mtime=MTIME, mode=0o644, size_hint=10, level=0
        )


@pytest.mark.parametrize(
    ("mtime", "expected"),
    [(0.0, (1980, 1, 1, 0, 0, 0)), (-5.0, (1980, 1, 1, 0, 0, 0))],
    ids=["epoch", "negative"],
)
def test_times_before_1980_are_clamped(mtime: float, expected: tuple[int, ...]) -> None:
    buf = io.BytesIO()
    writer = ZipWriter(buf)
    writer.add_file("projects/p/old", [b"o"], mtime=mtime, mode=0o644, size_hint=1, level=6)
    writer.close()
    with zipfile.ZipFile(buf) as zf:
        assert zf.getinfo("projects/p/old").date_time == expected
        assert zf.read("projects/p/old") == b"o"


def test_unzip_accepts_the_archive(tmp_path: Path) -> None:
    if shutil.which("unzip") is None:
        pytest.skip("unzip is not installed")
    path = tmp_path / "w.zip"
    data = os.urandom(3000) + b"a" * 3000
    with open(path, "wb") as fp:
        writer = ZipWriter(fp)
        writer.add_file(
            "projects/p/d.bin", _chunks(data), mtime=MTIME, mode=0o640, size_hint=1, level=9
        )
        writer.add_file(
            "projects/p/z64", [b"zip64"], mtime=MTIME, mode=0o644, size_hint=FOUR_GIB, level=6
        )
        writer.add_dir("projects/p/ünï/", mtime=MTIME, mode=0o755)
        writer.close()
    test = subprocess.run(["unzip", "-t", path], capture_output=True, text=True, check=False)
    assert test.returncode == 0, test.stdout + test.stderr
    out = tmp_path / "out"
    extract = subprocess.run(["unzip", "-q", path, "-d", out], capture_output=True, check=False)
    assert extract.returncode == 0
    assert (out / "projects/p/d.bin").read_bytes() == data
    assert (out / "projects/p/z64").read_bytes() == b"zip64"
    assert (out / "projects/p/ünï").is_dir()
    assert stat.S_IMODE((out / "projects/p/d.bin").stat().st_mode) == 0o640


def _tapped_archive(build: str) -> tuple[bytes, bytes, int]:
    """(archive bytes, what the tap received, writer.tapped) for one way of building."""
    fp = io.BytesIO()
    seen: list[bytes] = []
    writer = ZipWriter(fp, tap=seen.append)
    small = b"small file\n" * 10
    writer.add_whole_entry(
        "projects/K1/a.txt", mtime=MTIME, external_attr=0, data=small,
        crc32=zlib.crc32(small), size=len(small), stored=True,
    )  # fmt: skip
    raw = zlib.compress(b"x" * 5000)[2:-4]
    writer.add_raw_entry(
        "projects/K1/b.txt", mtime=MTIME, external_attr=0, stored=False,
        crc32=zlib.crc32(b"x" * 5000), size=5000, compressed_size=len(raw), data=[raw],
    )  # fmt: skip
    if build == "rollback":
        mark = writer.tell()
        writer.rollback_to(mark - 10)  # cuts into tapped bytes
    if build in {"streamed", "rollback"}:
        writer.add_file("projects/K1/c.txt", [b"streamed"], mtime=MTIME, mode=0o644,
                        size_hint=8, level=6)  # fmt: skip
    writer.close()
    return fp.getvalue(), b"".join(seen), writer.tapped


def test_the_tap_sees_every_byte_in_order_and_nothing_is_patched() -> None:
    whole, seen, tapped = _tapped_archive("whole")
    assert tapped == len(whole) and seen == whole
    whole, seen, tapped = _tapped_archive("streamed")
    # A streamed entry's CRC and sizes come after its data (a data descriptor): the
    # bytes are final as they are written, so the tap sees the whole file.
    assert tapped == len(whole) and seen == whole
    with zipfile.ZipFile(io.BytesIO(whole)) as zf:
        streamed = zf.getinfo("projects/K1/c.txt")
        assert streamed.flag_bits & 0x08 and not zf.getinfo("projects/K1/b.txt").flag_bits & 8
        assert zf.read("projects/K1/c.txt") == b"streamed"
        assert zf.read("projects/K1/b.txt") == b"x" * 5000
        assert zf.testzip() is None
    at = whole.index(b"projects/K1/c.txt") + len("projects/K1/c.txt")
    crc, csize, size = struct.unpack_from("<III", whole, whole.index(b"PK\x07\x08", at) + 4)
    assert (crc, csize, size) == (zlib.crc32(b"streamed"), streamed.compress_size, 8)
    assert struct.unpack_from("<III", whole, at - len("projects/K1/c.txt") - 16) == (0, 0, 0)


def test_a_rollback_into_tapped_bytes_voids_the_tap() -> None:
    _whole, _seen, tapped = _tapped_archive("rollback")
    assert tapped == 0


@pytest.mark.parametrize("name", ["projects/K1/a.json", "projects/K1/réunion été.md"])
@pytest.mark.parametrize("stored", [True, False])
def test_an_entry_built_apart_is_the_entry_the_writer_writes(name: str, stored: bool) -> None:
    """small_entry (built in a worker process) and add_built give the bytes, directory
    and all, that add_whole_entry gives."""
    content = b"substantial equivalence " * 40
    data = content if stored else zlib.compress(content, 6)[2:-4]
    crc = zlib.crc32(content)
    fields = {"mtime": 1_764_600_000.5, "external_attr": file_attr(0o640)}
    whole, built = io.BytesIO(), io.BytesIO()
    writer = ZipWriter(whole)
    writer.add_whole_entry(name, data=data, crc32=crc, size=len(content), stored=stored, **fields)
    writer.close()
    header, entry = small_entry(
        name, data=data, crc32=crc, size=len(content), stored=stored, **fields
    )
    writer = ZipWriter(built)
    writer.add_built(header + data, [entry])
    writer.close()
    assert built.getvalue() == whole.getvalue()
    with zipfile.ZipFile(built) as zf:
        assert zf.read(name) == content
