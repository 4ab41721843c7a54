"""The encryption layer on its own: the streams, the sealed scratch file, the writer's
sink over a forward-only cipher stream (patches and rollbacks, large entries)."""

from __future__ import annotations

import io
import os
import threading
import zipfile
from pathlib import Path
from typing import Any

import pyrage
import pytest

from fda_vault._crypto import (
    Encryption,
    Encryptor,
    Forgotten,
    Keys,
    SealedScratch,
    decrypt_bytes,
    encrypt_bytes,
    parse_recipients,
)
from fda_vault._encrypted import CutAfterEncrypting, EncryptingSink
from fda_vault._errors import DecryptError, IntegrityError, UsageError
from fda_vault._zipwriter import ZipWriter

MTIME = 1_800_000_000.0
BIG = os.urandom(1 << 20) * 11  # 11 MiB: past what the sink holds in memory


class _Out:
    """Where an encryptor writes: in memory, and it must only ever be appended to."""

    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, chunk: bytes) -> int:
        self.data += chunk
        return len(chunk)


def _age() -> tuple[Encryption, Any]:
    identity = pyrage.x25519.Identity.generate()
    texts, parsed = parse_recipients([str(identity.to_public())])
    return Encryption(recipient_texts=texts, recipients=parsed), identity


def _write(fp: Any, settle: Any = None) -> None:
    """The same entries, with a rollback of a small and of a large (spilled) entry and a
    ZIP64 header patched at the end."""
    writer = ZipWriter(fp, settle=settle)
    writer.add_file("projects/p/a.txt", [b"first " * 100], mtime=MTIME, mode=0o644,
                    size_hint=600, level=6)  # fmt: skip
    mark = writer.tell()
    writer.add_file("projects/p/gone", [b"x" * 5000], mtime=MTIME, mode=0o644,
                    size_hint=5000, level=0)  # fmt: skip
    writer.rollback_to(mark)
    big = BIG
    writer.add_file("projects/p/big.bin", [big[: 3 << 20], big[3 << 20 :]], mtime=MTIME,
                    mode=0o644, size_hint=len(big), level=1)  # fmt: skip
    writer.add_file("projects/p/zip64.txt", [b"announced as huge"], mtime=MTIME, mode=0o644,
                    size_hint=5 << 30, level=6)  # fmt: skip
    writer.close()


@pytest.mark.parametrize("engine", ["age-binary", "pyrage"])
def test_the_sink_writes_through_a_forward_stream_what_a_file_would_hold(
    engine: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    if engine == "pyrage":
        monkeypatch.setattr("fda_vault._crypto.age_binary", lambda: None)
    plain = io.BytesIO()
    _write(plain)
    encryption, identity = _age()
    out = _Out()
    sink = EncryptingSink(Encryptor(encryption, out))
    _write(sink, sink.settle)
    sink.finish()
    assert bytes(out.data).startswith(b"age-encryption.org/v1\n")
    inner = pyrage.decrypt(bytes(out.data), [identity])
    assert inner == plain.getvalue()
    with zipfile.ZipFile(io.BytesIO(inner)) as zf:
        assert zf.namelist() == ["projects/p/a.txt", "projects/p/big.bin", "projects/p/zip64.txt"]
        assert zf.testzip() is None


def test_cutting_off_a_large_entry_already_encrypted_is_refused() -> None:
    """A small entry is held until the next one begins, so it can still be cut off; a
    large one is passed on as it grows, and cutting it off asks for a new archive."""
    encryption, _identity = _age()
    sink = EncryptingSink(Encryptor(encryption, _Out()))
    writer = ZipWriter(sink, settle=sink.settle)  # type: ignore[arg-type]
    mark = writer.tell()
    writer.add_file("projects/p/big.bin", [BIG], mtime=MTIME, mode=0o644,
                    size_hint=len(BIG), level=0)  # fmt: skip
    with pytest.raises(CutAfterEncrypting):
        writer.rollback_to(mark)
    sink.abort()


def test_the_sink_keeps_the_tail_for_the_index() -> None:
    encryption, identity = _age()
    out = _Out()
    sink = EncryptingSink(Encryptor(encryption, out))
    writer = ZipWriter(sink, settle=sink.settle)  # type: ignore[arg-type]
    writer.add_file("projects/p/a", [b"a" * 1000], mtime=MTIME, mode=0o644, size_hint=1000,
                    level=6)  # fmt: skip
    start = writer.tell()
    sink.keep_from(start)
    writer.add_file("metadata.json", [b"{}"], mtime=MTIME, mode=0o644, size_hint=2, level=6)
    writer.close()
    sink.finish()
    inner = pyrage.decrypt(bytes(out.data), [identity])
    assert bytes(sink.kept) == inner[start:]


def test_sealed_scratch_reads_back_anywhere_and_stores_no_plaintext(tmp_path: Path) -> None:
    marker = b"K241234 confidential predicate text "
    data = (marker * 100_000)[: (3 << 20) + 12345]
    folder = tmp_path / "scratch"
    folder.mkdir()
    scratch = SealedScratch(folder=str(folder), cache_blocks=1)
    for at in range(0, len(data), 70_000):
        scratch.append(data[at : at + 70_000])
    scratch.end()
    for offset, length in [(0, 10), (1 << 20, 5), ((1 << 20) - 3, 7), (len(data) - 4, 100)]:
        assert scratch.pread(length, offset) == data[offset : offset + length]
    assert scratch.pread(len(data), 5) == data[5:]
    assert list(folder.iterdir()) == []  # the file has no name
    assert scratch._file is not None
    on_disk = os.pread(scratch._file.fileno(), 10 << 20, 0)
    assert len(on_disk) >= 2 << 20 and marker not in on_disk  # blocks 0-1 went there
    scratch.close()


def test_a_forgetting_scratch_drops_blocks_read_whole_and_keeps_the_others() -> None:
    block = 1 << 20
    scratch = SealedScratch(cache_blocks=1, forgets=True)
    scratch.append(b"a" * block)
    assert scratch.pread(block // 2, 0) == b"a" * (block // 2)
    assert scratch.pread(block // 2, block // 2) == b"a" * (block // 2)  # block 0 read whole
    scratch.append(b"b" * block)  # block 0 leaves memory: dropped, never written
    scratch.append(b"c" * block)  # block 1 leaves memory unread: sealed to the file
    scratch.end()
    assert scratch.pread(4, block) == b"bbbb"  # from the file
    with pytest.raises(Forgotten):
        scratch.pread(4, 0)
    scratch.close()


def test_a_paced_writer_waits_for_readers_until_released() -> None:
    scratch = SealedScratch(cache_blocks=2, paced=True)
    written = threading.Event()

    def write() -> None:
        for _ in range(5):
            scratch.append(b"x" * (1 << 20))
        written.set()

    writer = threading.Thread(target=write)
    writer.start()
    assert not written.wait(0.3)  # two blocks ahead of nobody's reads: it waits
    assert scratch.pread(1, 4 << 20) == b"x"  # a reader further on lets it go on
    assert written.wait(5)
    writer.join()
    paced = SealedScratch(cache_blocks=1, paced=True)
    done = threading.Thread(target=lambda: [paced.append(b"y" * (1 << 20)) for _ in range(4)])
    done.start()
    done.join(0.3)
    assert done.is_alive()
    paced.release()  # the whole stream is wanted now
    done.join(5)
    assert not done.is_alive() and paced.size == 4 << 20
    scratch.close()
    paced.close()


def test_a_reader_waits_for_bytes_and_gets_the_failure_if_they_never_come() -> None:
    scratch = SealedScratch()
    got: list[bytes] = []
    reader = threading.Thread(target=lambda: got.append(scratch.pread(4, 10)))
    reader.start()
    scratch.append(b"0123456789")
    reader.join(0.2)
    assert reader.is_alive()  # bytes 10-13 are not there yet
    scratch.append(b"abcdef")
    reader.join(5)
    assert got == [b"abcd"]
    scratch.end(IntegrityError("x.zip.age", "truncated"))
    with pytest.raises(IntegrityError, match="truncated"):
        scratch.pread(10, 12)
    assert scratch.pread(3, 12) == b"cde"
    scratch.close()


def test_small_files_round_trip_with_age_and_gpg(tmp_path: Path) -> None:
    encryption, identity = _age()
    sealed = encrypt_bytes(encryption, b"index bytes")
    assert decrypt_bytes("age", Keys(own=(identity,)), sealed, "x") == b"index bytes"
    with pytest.raises(DecryptError) as missing:
        decrypt_bytes("age", Keys(), sealed, "x.zip.age")
    assert missing.value.reason == "no_key"
    passphrase = tmp_path / "pass"
    passphrase.write_text("a long passphrase\n")
    gpg = Encryption(passphrase_file=passphrase)
    sealed = encrypt_bytes(gpg, b"index bytes")
    assert decrypt_bytes("gpg", Keys(passphrase_file=passphrase), sealed, "x") == b"index bytes"
    wrong = tmp_path / "wrong"
    wrong.write_text("another\n")
    with pytest.raises(DecryptError) as refused:
        decrypt_bytes("gpg", Keys(passphrase_file=wrong), sealed, "x.zip.gpg")
    assert refused.value.reason == "wrong_key"
    with pytest.raises(IntegrityError):
        decrypt_bytes("gpg", Keys(passphrase_file=passphrase), b"not openpgp at all", "x")


def test_recipients_are_checked_line_by_line(tmp_path: Path) -> None:
    good = str(pyrage.x25519.Identity.generate().to_public())
    listed = tmp_path / "recipients"
    listed.write_text(f"# comment\n\n{good}\n  {good}  \n")
    texts, parsed = parse_recipients([f"@{listed}", good])
    assert texts == (good, good, good) and len(parsed) == 3
    for bad, where in [
        ("ssh-ed25519 AAAAnotbase64", "--encrypt-to ssh-ed25519"),
        ("age1qqqq", "--encrypt-to age1qqqq"),
        ("hello", "--encrypt-to hello"),
        (f"@{tmp_path / 'missing'}", "missing"),
    ]:
        with pytest.raises(UsageError) as refused:
            parse_recipients([bad])
        assert where in refused.value.message
    empty = tmp_path / "empty"
    empty.write_text("# nobody\n")
    with pytest.raises(UsageError, match="no recipient"):
        parse_recipients([f"@{empty}"])
