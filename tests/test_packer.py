"""The backup's data path for small files: batches packed whole, in worker processes
where there are thousands, giving exactly the archive the one-process path gives."""

from __future__ import annotations

import io
import os
import random
import zipfile
from pathlib import Path

import pytest

from fda_vault import _parallel
from fda_vault._backup import _Scan, _scan_project
from fda_vault._packer import Packer, PackSource
from fda_vault._progress import NO_PROGRESS
from fda_vault._zipwriter import ZipWriter


def _project(root: Path, files: int, seed: int = 7) -> list[PackSource]:
    rng = random.Random(seed)
    for i in range(files):
        folder = root / "K240001_pump" / f"records{i % 3}"
        folder.mkdir(parents=True, exist_ok=True)
        size = rng.choice([0, 1, 900, 3000, 5000, 70_000])  # a few too large for a batch
        text = f'{{"k_number": "K{i:06d}", "statement": "{rng.random()} é pump" }}\n'.encode()
        (folder / f"K{i:06d}_{'é' if i % 7 == 0 else ''}.json").write_bytes((text * size)[:size])
    scan = _Scan()
    _scan_project(root, "K240001_pump", [], set(), False, scan)
    return scan.files


def _pack(sources: list[PackSource], workers: int) -> tuple[bytes, Packer]:
    out = io.BytesIO()
    writer = ZipWriter(out)
    packer = Packer(writer, level=6, skip_unreadable=True, progress=NO_PROGRESS, workers=workers)
    packer.pack(sources)
    writer.close()
    return out.getvalue(), packer


def _count_forks(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Two cores; the pids of the children forked from here on."""
    forks: list[int] = []
    real_fork = os.fork

    def counting_fork() -> int:
        pid = real_fork()
        if pid:
            forks.append(pid)
        return pid

    monkeypatch.setattr(_parallel, "worker_count", lambda: 2)
    monkeypatch.setattr(os, "fork", counting_fork)
    return forks


def test_forked_batches_make_the_same_archive_as_one_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = _project(tmp_path, 2600)
    assert sum(1 for s in sources if s.identity and s.identity.size >= 64 << 10) > 100
    forks = _count_forks(monkeypatch)
    forked, forked_packer = _pack(sources, workers=2)
    assert len(forks) == 2  # one process per core did the batches
    alone, alone_packer = _pack(sources, workers=1)
    assert len(forks) == 2
    assert forked == alone
    assert forked_packer.entries == alone_packer.entries
    with zipfile.ZipFile(io.BytesIO(forked)) as zf:
        assert zf.testzip() is None
        names = zf.namelist()
        assert len(names) == len(sources)
        for src in sources[:50] + sources[-50:]:
            assert zf.read("projects/" + src.key) == Path(src.path).read_bytes()


def test_the_files_a_batch_cannot_take_go_the_usual_way(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    sources = _project(tmp_path, 2100, seed=11)
    small = [s for s in sources if s.identity and s.identity.size < 64 << 10]
    gone, fifo, grown = small[5], small[700], small[1500]
    Path(gone.path).unlink()
    Path(fifo.path).unlink()
    os.mkfifo(fifo.path)
    Path(grown.path).write_bytes(b"x" * 200_000)  # now too large for its batch
    monkeypatch.setattr(_parallel, "worker_count", lambda: 2)
    data, packer = _pack(sources, workers=2)
    reasons = {entry.path: entry.reason for entry in packer.skipped}
    assert reasons == {
        gone.key: "deleted during the backup",
        fifo.key: "replaced by a non-regular file during the backup",
    }
    with zipfile.ZipFile(io.BytesIO(data)) as zf:
        assert zf.read("projects/" + grown.key) == b"x" * 200_000
        assert len(zf.namelist()) == len(sources) - 2
    recorded = {entry.path: entry for entry in packer.entries}
    assert recorded[grown.key].size == 200_000
    # In the order of the sources, whichever path packed each file.
    kept = [s.key for s in sources if s.key not in reasons]
    assert [e.path for e in packer.entries] == kept


def test_an_unreadable_file_in_a_batch_fails_the_backup_by_its_path(tmp_path: Path) -> None:
    sources = _project(tmp_path, 30, seed=3)
    victim = next(s for s in sources if s.identity and 0 < s.identity.size < 64 << 10)
    Path(victim.path).unlink()
    os.symlink("/nonexistent/target", victim.path)  # O_NOFOLLOW: ELOOP, not readable
    out = io.BytesIO()
    packer = Packer(ZipWriter(out), level=6, skip_unreadable=False, progress=NO_PROGRESS, workers=1)
    with pytest.raises(Exception) as caught:
        packer.pack(sources)
    assert victim.path in str(caught.value)
    assert "--skip-unreadable" in str(caught.value)


def test_backups_into_encryption_or_uploads_keep_the_pack_in_this_process(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A child forked while an encryption's or upload's threads run could wait forever on
    a C library lock one of them held (the time zone's): only plain local archives fork."""
    from fda_vault._backup import backup
    from fda_vault._crypto import Encryption, generate_identity, parse_recipients

    _project(tmp_path / "projects", 2600, seed=5)
    forks = _count_forks(monkeypatch)
    _secret, public = generate_identity()
    texts, recipients = parse_recipients([public])
    encrypted = backup(
        ["K240001_pump"], projects_dir=tmp_path / "projects", output_dir=tmp_path / "enc",
        encryption=Encryption(recipient_texts=texts, recipients=recipients),
    )  # fmt: skip
    assert encrypted.verified and forks == []
    plain = backup(["K240001_pump"], projects_dir=tmp_path / "projects", output_dir=tmp_path / "p")
    assert plain.verified and len(forks) >= 2  # the pack's two workers (and the read-back's)
    assert encrypted.files == plain.files == 2600
