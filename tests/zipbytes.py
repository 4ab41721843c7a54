"""Raw byte surgery on ZIP archives, for damage and tamper tests."""

from __future__ import annotations

import zipfile
from pathlib import Path


def member_data_offset(archive: Path, member: str) -> tuple[int, int]:
    """(offset, length) of a member's stored bytes inside the archive file."""
    data = archive.read_bytes()
    with zipfile.ZipFile(archive) as zf:
        info = zf.getinfo(member)
    header = info.header_offset
    name_len = int.from_bytes(data[header + 26 : header + 28], "little")
    extra_len = int.from_bytes(data[header + 28 : header + 30], "little")
    return header + 30 + name_len + extra_len, info.compress_size


def flip_member_byte(archive: Path, member: str, out: Path | None = None) -> Path:
    """Flip one bit in the middle of a member's stored data; write to ``out`` or in place."""
    start, length = member_data_offset(archive, member)
    data = bytearray(archive.read_bytes())
    data[start + length // 2] ^= 0x40
    target = out or archive
    target.write_bytes(bytes(data))
    return target
