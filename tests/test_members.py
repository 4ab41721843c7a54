"""Reading members: the one-call path for small members checks what the streaming path does."""

from __future__ import annotations

import os
import random
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from fda_vault._deflate import compress_block, fastest_level_fits
from fda_vault._errors import IntegrityError
from fda_vault._members import READ_CHUNK, iter_member, open_archive, read_member

NAME = "projects/p/a.json"
TEXT = b'{"k_number": "K201234", "device": "infusion pump", "notes": "%d"}\n'


def _text(size: int) -> bytes:
    lines = b"".join(TEXT % i for i in range(size // 40 + 1))
    return lines[:size]


def _archive(
    path: Path, data: bytes, *, extra: bytes = b"", method: int = zipfile.ZIP_DEFLATED
) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        info = zipfile.ZipInfo(NAME, date_time=(2026, 1, 1, 0, 0, 0))
        info.compress_type = method
        info.extra = extra
        zf.writestr(info, data)
    return path


def _both(path: Path, size: int) -> tuple[bytes, bytes]:
    with open_archive(path) as zf:
        info = zf.getinfo(NAME)
        return read_member(zf, info, size, path), b"".join(iter_member(zf, info, size, path))


@pytest.mark.parametrize("method", [zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED])
def test_a_local_extra_field_longer_than_the_first_read_allows_for(
    tmp_path: Path, method: int
) -> None:
    data = _text(5000)
    # A 300-byte unknown extra field (id 0xCAFE): the data starts past the first read's slack.
    extra = struct.pack("<HH", 0xCAFE, 300) + bytes(300)
    path = _archive(tmp_path / "extra.zip", data, extra=extra, method=method)
    assert _both(path, len(data)) == (data, data)


def _replace_data(path: Path, compressed: bytes) -> None:
    """Overwrite the member's data with ``compressed`` (zero-padded; headers unchanged)."""
    raw = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack_from("<HH", raw, 26)
    start = 30 + name_len + extra_len
    size = struct.unpack_from("<I", raw, 18)[0]
    assert len(compressed) <= size
    raw[start : start + size] = compressed.ljust(size, b"\0")
    path.write_bytes(bytes(raw))


def test_a_deflate_stream_cut_short_is_refused(tmp_path: Path) -> None:
    data = _text(20_000)
    path = _archive(tmp_path / "short.zip", data)
    deflated = zlib.compress(data, 6, -15)
    _replace_data(path, deflated[: len(deflated) // 2])
    with open_archive(path) as zf, pytest.raises(IntegrityError):
        read_member(zf, zf.getinfo(NAME), len(data), path)


def test_bytes_after_the_end_of_the_deflate_stream_are_refused(tmp_path: Path) -> None:
    data = _text(20_000)
    path = _archive(tmp_path / "tail.zip", data)
    _replace_data(path, zlib.compress(data[:-1000], 9, -15))  # ends early; zeros follow
    with open_archive(path) as zf, pytest.raises(IntegrityError) as info:
        read_member(zf, zf.getinfo(NAME), len(data), path)
    assert "after the end of the deflate stream" in info.value.why


def test_a_member_that_inflates_past_the_manifest_size_is_refused(tmp_path: Path) -> None:
    data = _text(20_000)
    path = _archive(tmp_path / "big.zip", data)
    with open_archive(path) as zf:
        info = zf.getinfo(NAME)
        info.file_size = 1000  # as a forged directory would declare, and the manifest agree
        with pytest.raises(IntegrityError) as error:
            read_member(zf, info, 1000, path)
    assert "inflates past its declared size" in error.value.why


def test_read_member_refuses_a_member_too_large_for_one_call(tmp_path: Path) -> None:
    data = _text(READ_CHUNK + 1)
    path = _archive(tmp_path / "large.zip", data)
    with open_archive(path) as zf:
        info = zf.getinfo(NAME)
        with pytest.raises(ValueError):
            read_member(zf, info, len(data), path)
        assert b"".join(iter_member(zf, info, len(data), path)) == data


@pytest.mark.parametrize("size", [0, 1, 16 * 1024 - 1, 16 * 1024, 16 * 1024 + 1, 300_000])
@pytest.mark.parametrize("level", [1, 4, 6, 9])
def test_blocks_around_the_small_block_size_inflate_back(size: int, level: int) -> None:
    data = _text(size) if size % 2 else os.urandom(size)
    whole = compress_block(data, level, final=True)
    assert zlib.decompress(whole, -15) == data
    first, rest = data[: size // 2], data[size // 2 :]
    joined = compress_block(first, level, final=False) + compress_block(rest, level, final=True)
    assert zlib.decompress(joined, -15) == data


def test_the_fastest_level_is_chosen_only_where_it_packs_as_small() -> None:
    zeros = bytes(1 << 20)
    records = b"".join(f"{i:010d} {'K240001':<20}{'':<60}\n".encode() for i in range(9000))
    line = b"2026-11-30T02:00:00Z INFO selftest flow 25.0 ml/h: ok\n"
    repeated_line = (line * 20000)[: 1 << 20]  # level 1 packs it 10x larger than level 3
    rng = random.Random(4)
    letters = b"abcdefghijklmnopqrstuvwxyz"
    words = [bytes(rng.choices(letters, k=rng.randint(2, 11))) for _ in range(900)]
    prose = b" ".join(rng.choices(words, k=180_000))[: 1 << 20]  # a draft's vocabulary
    assert fastest_level_fits(zeros) and fastest_level_fits(records)
    assert not fastest_level_fits(repeated_line)
    assert not fastest_level_fits(prose) and not fastest_level_fits(os.urandom(1 << 20))
    for data in (zeros, records):
        for final in (True, False):
            fast = compress_block(data, 6, final, fastest=True)
            assert zlib.decompressobj(-15).decompress(fast) == data
            assert len(fast) <= len(compress_block(data, 6, final)) * 1.05


def _many_small(path: Path, count: int) -> dict[str, bytes]:
    rng = random.Random(5)
    contents = {
        f"projects/K1/r/{i:05d}_{'é' if i % 9 == 0 else ''}.json": (
            f'{{"k": {i}, "v": "{rng.random()}"}}'.encode() * rng.randint(0, 60)
        )
        for i in range(count)
    }
    with zipfile.ZipFile(path, "w") as zf:
        for i, (name, data) in enumerate(contents.items()):
            zf.writestr(name, data, zipfile.ZIP_STORED if i % 5 == 0 else zipfile.ZIP_DEFLATED)
    return contents


def test_small_members_are_read_together_with_one_pread(tmp_path: Path) -> None:
    from fda_vault._members import read_small_members

    path = tmp_path / "a.zip"
    contents = _many_small(path, 300)
    with open_archive(path) as zf:
        calls: list[int] = []
        real = zf.pread

        def counting(length: int, offset: int) -> bytes:
            calls.append(length)
            return real(length, offset)

        zf.pread = counting  # type: ignore[method-assign]
        wanted = [(zf.getinfo(name), len(data)) for name, data in contents.items()]
        got = list(read_small_members(zf, wanted, path))
    assert got == list(contents.values())
    assert len(calls) == 1  # the whole run


def test_a_bad_member_among_small_ones_fails_alone_as_read_member_says(tmp_path: Path) -> None:
    from fda_vault._members import read_small_members

    path = tmp_path / "a.zip"
    contents = _many_small(path, 200)
    names = list(contents)
    with zipfile.ZipFile(path) as zf:
        infos = {i.filename: i for i in zf.infolist()}
    raw = bytearray(path.read_bytes())
    data_damaged, header_damaged = names[31], names[77]
    info = infos[data_damaged]
    assert info.compress_type == zipfile.ZIP_DEFLATED and info.compress_size > 8
    start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
    raw[start + info.compress_size // 2] ^= 0x55
    raw[infos[header_damaged].header_offset + 30] ^= 0x01  # its name in the local header
    path.write_bytes(bytes(raw))
    with open_archive(path) as zf:
        wanted = [(zf.getinfo(name), len(contents[name])) for name in names]
        got = list(read_small_members(zf, wanted, path))
        expected = {}
        for name in (data_damaged, header_damaged):
            with pytest.raises(IntegrityError) as caught:
                read_member(zf, zf.getinfo(name), len(contents[name]), path)
            expected[name] = caught.value.why
    for name, value in zip(names, got, strict=True):
        if name in expected:
            assert isinstance(value, IntegrityError) and value.why == expected[name], name
        else:
            assert value == contents[name], name
    assert "local header names another file" in expected[header_damaged]
