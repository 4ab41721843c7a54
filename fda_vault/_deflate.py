"""Raw deflate for ZIP members: ISA-L where installed (several times faster), else zlib.

Both produce standard deflate streams. A file is compressed as independent blocks,
each ended by a sync flush and the last by a final block, so blocks can be compressed
on several cores at once and simply concatenated (as pigz does).
"""

from __future__ import annotations

import zlib
from typing import Protocol, cast

try:
    from isal import isal_zlib

    HAVE_ISAL = True
except ImportError:  # pragma: no cover - isal has wheels for every platform we target
    HAVE_ISAL = False

__all__ = [
    "HAVE_ISAL",
    "INFLATE_ERRORS",
    "Deflater",
    "Inflater",
    "compress_block",
    "crc32",
    "fastest_level_fits",
    "looks_incompressible",
    "new_deflater",
    "new_inflater",
]

# What a decompressor raises on invalid data (ISA-L's error is not a zlib.error).
INFLATE_ERRORS: tuple[type[Exception], ...] = (zlib.error,)
if HAVE_ISAL:
    INFLATE_ERRORS = (zlib.error, cast("type[Exception]", isal_zlib.IsalError))


def _engine_level(level: int) -> tuple[bool, int]:
    """Map the user's 1-9 to (use ISA-L, its level), or zlib at that level for 7-9.

    Measured on the benchmark corpus (text-heavy 510(k) projects): ISA-L 3 is 5-10x
    faster than zlib -6 and its archives stay within 5% of ``zip -6``'s; ISA-L 2 and 1
    are faster still but 5-10% larger. 7-9 are for those who want zlib's densest output.
    """
    if not HAVE_ISAL or level >= 7:
        return False, level
    if level <= 3:
        return True, 1
    if level <= 5:
        return True, 2
    return True, 3


class Deflater(Protocol):
    """The part of a compress object that writing members needs."""

    def compress(self, data: bytes, /) -> bytes: ...

    def flush(self, mode: int = ..., /) -> bytes: ...


def new_deflater(level: int) -> Deflater:
    """A raw-deflate compressor for the user's ``level`` (1-9)."""
    use_isal, engine_level = _engine_level(level)
    if use_isal:
        deflater: Deflater = isal_zlib.compressobj(engine_level, isal_zlib.DEFLATED, -15)
        return deflater
    return zlib.compressobj(engine_level, zlib.DEFLATED, -15)


# Below this size ISA-L's level 2 packs as densely as its level 3 (measured on JSON and
# text: the same within 1% up to 8 KiB, 3% larger at 32 KiB) and runs a third faster.
_SMALL_BLOCK = 16 << 10


def compress_block(data: bytes, level: int, final: bool, *, fastest: bool = False) -> bytes:
    """Deflate ``data`` as a self-contained run of blocks; ``final`` ends the stream.
    ``fastest`` (see :func:`fastest_level_fits`): at ISA-L's fastest level."""
    use_isal, engine_level = _engine_level(level)
    if use_isal and fastest:
        engine_level = 1
    if final and use_isal:  # one call: whole small files are most of the calls
        small = engine_level == 3 and len(data) < _SMALL_BLOCK
        return isal_zlib.compress(data, 2 if small else engine_level, -15)
    if final:
        return zlib.compress(data, engine_level, -15)
    # A block that more blocks follow: sync-flushed (ISA-L's flush is the same).
    deflater: Deflater = (
        isal_zlib.compressobj(engine_level, isal_zlib.DEFLATED, -15)
        if use_isal
        else zlib.compressobj(engine_level, zlib.DEFLATED, -15)
    )
    return deflater.compress(data) + deflater.flush(zlib.Z_SYNC_FLUSH)


_TRIAL = 4 << 10
# ISA-L's fastest level on three 4 KiB samples of 1 MiB blocks, measured: zeros 0.02,
# one log line repeated 0.03, fixed-width records 0.09-0.11; varied log lines 0.20, JSON
# 0.32, Markdown 0.44, PDF-like 1.24. Below 0.15 the data is long runs of repeats, which
# ISA-L's level 1 deflates at 1.8-17 GB/s against level 3's 0.5-0.6 GB/s...
_REPETITIVE = 0.15
# ...and, for some of them, as small: zeros 0.29x and fixed-width records 1.00x level 3's
# size, but a repeated log line 2-10x (level 1 finds shorter matches). The samples tell
# them apart (level 1 ÷ level 3 on them: zeros 0.55, fixed-width 1.00, repeated lines
# 1.23-1.36): level 1 is used only where its samples are at most this much larger.
_FASTEST_FITS = 1.1


def fastest_level_fits(block: bytes) -> bool:
    """Whether ``block`` is long runs of repeated data that ISA-L's fastest level packs as
    small as level 3: a trial on three 4 KiB samples (start, middle, end) at level 0
    (1-25 µs), then, for repetitive ones only, at levels 1 and 3 (30-50 µs)."""
    if not HAVE_ISAL:
        return False
    middle = len(block) // 2
    sample = block[:_TRIAL] + block[middle : middle + _TRIAL] + block[-_TRIAL:]
    if len(isal_zlib.compress(sample, 0, -15)) >= len(sample) * _REPETITIVE:
        return False
    fastest = len(isal_zlib.compress(sample, 1, -15))
    return fastest <= len(isal_zlib.compress(sample, 3, -15)) * _FASTEST_FITS


_SAMPLE = 16 << 10
# Measured on the benchmark corpus at the fastest level: text and JSON samples shrink to
# under 0.45 of their size, PDF-like and random data grow past 1.2; 0.9 lies well between.
_SAMPLE_INCOMPRESSIBLE = 0.9


def looks_incompressible(block: bytes) -> bool:
    """A quick guess, from three 16 KiB samples (start, middle, end) deflated at the
    fastest level, that ``block`` would not compress: about 1/20 of compressing it."""
    middle = len(block) // 2
    sample = block[:_SAMPLE] + block[middle : middle + _SAMPLE] + block[-_SAMPLE:]
    packed = isal_zlib.compress(sample, 0, -15) if HAVE_ISAL else zlib.compress(sample, 1, -15)
    return len(packed) > len(sample) * _SAMPLE_INCOMPRESSIBLE


def crc32(data: bytes, value: int = 0) -> int:
    """CRC-32 as ZIP stores it (ISA-L's is ~5x faster than zlib's)."""
    if HAVE_ISAL:
        return int(isal_zlib.crc32(data, value))
    return zlib.crc32(data, value)


class Inflater(Protocol):
    """The part of a decompress object that reading members needs."""

    def decompress(self, data: bytes | memoryview, max_length: int = ...) -> bytes: ...

    @property
    def eof(self) -> bool: ...

    @property
    def unconsumed_tail(self) -> bytes: ...

    @property
    def unused_data(self) -> bytes: ...


def new_inflater() -> Inflater:
    """A raw-deflate decompressor."""
    if HAVE_ISAL:
        inflater: Inflater = isal_zlib.decompressobj(-15)
        return inflater
    return zlib.decompressobj(-15)
