"""Real faults: full disks, files changing or vanishing mid-read, permission denied,
concurrent runs, SIGKILL, SIGINT and SIGTERM. Real files and real processes, no mocks."""

from __future__ import annotations

import contextlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fda_vault import backup, verify_archive
from fda_vault._errors import OperationError
from fda_vault._locking import folder_lock
from fda_vault._progress import SilentProgress
from fda_vault._restore import restore
from tests.tree import snapshot

ROOT = os.geteuid() == 0


def _tmpfs(path: Path, options: str) -> Iterator[Path]:
    path.mkdir(parents=True, exist_ok=True)
    if not ROOT or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)],
        capture_output=True,
        check=False,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


@pytest.fixture
def tiny_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB filesystem."""
    yield from _tmpfs(tmp_path / "tiny", "size=1m,mode=0755")


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 24 MiB filesystem."""
    yield from _tmpfs(tmp_path / "small", "size=24m,mode=0755")


def _incompressible_project(root: Path, name: str, files: int, size: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    for i in range(files):
        path = root / name / f"sub{i % 3}" / f"scan_{i:03d}.pdf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"%PDF-1.7\n" + rng.randbytes(size))


def _cmd(*args: str | os.PathLike[str]) -> list[str]:
    return [sys.executable, "-m", "fda_vault", *(os.fspath(a) for a in args)]


@pytest.mark.slow
def test_backup_onto_a_full_disk_fails_cleanly(tmp_path: Path, tiny_disk: Path) -> None:
    projects = tmp_path / "projects"
    _incompressible_project(projects, "K1", files=6, size=500_000)
    out = tiny_disk / "backups"
    done = subprocess.run(
        _cmd("backup", "--all", "--projects-dir", projects, "--output-dir", out),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "disk full" in lines[0] and str(out) in lines[0], done.stderr
    assert "Traceback" not in done.stderr
    assert [p.name for p in out.iterdir() if p.name.endswith((".zip", ".tmp"))] == []
    as_json = subprocess.run(
        _cmd("backup", "--all", "--projects-dir", projects, "--output-dir", out, "--json"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert json.loads(as_json.stdout)["error"]["reason"] == "disk_full"


@pytest.mark.slow
def test_restore_too_big_for_the_disk_is_refused_before_writing(
    tmp_path: Path, tiny_disk: Path
) -> None:
    projects = tmp_path / "projects"
    _incompressible_project(projects, "K2", files=4, size=600_000)
    archive = Path(
        backup(projects=["K2"], projects_dir=projects, output_dir=tmp_path / "backups").archive
    )
    (tiny_disk / "K2").mkdir()
    (tiny_disk / "K2" / "current.md").write_bytes(b"the only copy of today's work")
    before = snapshot(tiny_disk)
    done = subprocess.run(
        _cmd("restore", archive, "--target-dir", tiny_disk, "--force"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "disk full" in done.stderr and "nothing was written" in done.stderr
    after = snapshot(tiny_disk)
    assert {k: v for k, v in after.items() if not k.startswith(".fda-vault.lock")} == {
        k: v for k, v in before.items() if not k.startswith(".fda-vault.lock")
    }


@pytest.mark.slow
def test_disk_filling_up_during_a_restore_changes_nothing(tmp_path: Path, small_disk: Path) -> None:
    projects = tmp_path / "projects"
    _incompressible_project(projects, "K2", files=400, size=25_000)
    archive = Path(
        backup(projects=["K2"], projects_dir=projects, output_dir=tmp_path / "backups").archive
    )
    (small_disk / "K2").mkdir()
    (small_disk / "K2" / "current.md").write_bytes(b"the only copy of today's work")
    before = snapshot(small_disk / "K2")
    proc = subprocess.Popen(
        _cmd("restore", archive, "--target-dir", small_disk, "--force"),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    # As soon as the restore starts staging, another program eats every free byte.
    deadline = time.monotonic() + 30
    while not list(small_disk.glob(".fda-vault-staging-*")) and time.monotonic() < deadline:
        time.sleep(0.001)
    with (small_disk / "filler.bin").open("wb", buffering=0) as filler:
        # posix_fallocate takes all the free space at once (tmpfs allocates real pages),
        # long before the restore has staged its 10 MB; writes mop up what is left.
        fs = os.statvfs(small_disk)
        with contextlib.suppress(OSError):
            os.posix_fallocate(filler.fileno(), 0, fs.f_bavail * fs.f_frsize)
        block = b"\0" * 65536
        with contextlib.suppress(OSError):
            while True:
                filler.write(block)  # unbuffered: nothing left to flush on close
    _, stderr = proc.communicate(timeout=120)
    (small_disk / "filler.bin").unlink()
    assert proc.returncode == 1, stderr
    assert len(stderr.strip().splitlines()) == 1
    assert "disk full" in stderr and "Traceback" not in stderr
    assert snapshot(small_disk / "K2") == before
    assert sorted(
        p.name for p in small_disk.iterdir() if not p.name.startswith(".fda-vault.lock")
    ) == ["K2"]


class _OnAdvance(SilentProgress):
    """A progress sink that acts only in ``advance``: called as each block is read, it is
    where a test can act while a file is being read."""


class _ChangeOnFirstChunk(_OnAdvance):
    """Changes the file system the moment reading begins."""

    def __init__(self, action: object) -> None:
        self.action = action
        self.fired = False

    def advance(self, nbytes: int) -> None:
        if not self.fired:
            self.fired = True
            self.action()  # type: ignore[operator]


def test_a_file_changed_once_while_read_is_read_again(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    (projects / "K3").mkdir(parents=True)
    report = projects / "K3" / "a_report.md"
    report.write_bytes(b"draft v1\n" * 200_000)

    def edit() -> None:
        with report.open("ab") as fp:
            fp.write(b"late edit\n")

    result = backup(
        projects=["K3"],
        projects_dir=projects,
        output_dir=tmp_path / "b",
        progress=_ChangeOnFirstChunk(edit),
    )
    assert result.files == 1 and result.skipped == []
    assert verify_archive(Path(result.archive)).ok
    restored = tmp_path / "r"
    restore(Path(result.archive), target_dir=restored)
    assert (restored / "K3" / "a_report.md").read_bytes().endswith(b"late edit\n")


def test_a_file_deleted_before_it_is_read_is_reported_not_fatal(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    (projects / "K4").mkdir(parents=True)
    # Larger than one block, so it is read (and the progress hook fires) before the next
    # file is even opened.
    (projects / "K4" / "a_first.md").write_bytes(b"first\n" * 400_000)
    doomed = projects / "K4" / "z_temp_export.csv"
    doomed.write_bytes(b"a,b\n")
    result = backup(
        projects=["K4"],
        projects_dir=projects,
        output_dir=tmp_path / "b",
        progress=_ChangeOnFirstChunk(doomed.unlink),
    )
    assert [(s.path, s.reason) for s in result.skipped] == [
        ("K4/z_temp_export.csv", "deleted during the backup")
    ]
    assert [w.reason for w in result.warnings] == ["left_out"]
    assert result.warnings[0].path.endswith("z_temp_export.csv")
    assert verify_archive(Path(result.archive)).ok


class _WaitForAWrite(_OnAdvance):
    """While a file is being read, waits until the writer thread has written to it again:
    the read then always overlaps a real write, however the threads happen to be
    scheduled (and whatever the file system's clock granularity)."""

    def __init__(self, wrote: threading.Event) -> None:
        self.wrote = wrote

    def advance(self, nbytes: int) -> None:
        self.wrote.clear()
        assert self.wrote.wait(10), "the writer thread stopped writing"


def test_a_file_rewritten_by_another_thread_fails_or_is_skipped(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    (projects / "K5").mkdir(parents=True)
    busy = projects / "K5" / "live_export.json"
    busy.write_bytes(b"{}" * 4_000_000)
    stop = threading.Event()
    wrote = threading.Event()

    def keep_writing() -> None:
        with busy.open("r+b") as fp:
            while not stop.is_set():
                fp.seek(random.randrange(0, 7_000_000))
                fp.write(b"[]")
                fp.seek(0, os.SEEK_END)
                fp.write(b" ")
                fp.flush()
                os.utime(fp.fileno())
                wrote.set()

    writer = threading.Thread(target=keep_writing)
    writer.start()
    try:
        with pytest.raises(OperationError) as info:
            backup(
                projects=["K5"],
                projects_dir=projects,
                output_dir=tmp_path / "b",
                progress=_WaitForAWrite(wrote),
            )
        assert "live_export.json" in info.value.message and "changed" in info.value.message
        assert list((tmp_path / "b").glob("*.zip*")) == []
        skipped = backup(
            projects=["K5"],
            projects_dir=projects,
            output_dir=tmp_path / "b",
            skip_unreadable=True,
            progress=_WaitForAWrite(wrote),
        )
    finally:
        stop.set()
        writer.join()
    assert [s.path for s in skipped.skipped] == ["K5/live_export.json"]
    assert verify_archive(Path(skipped.archive)).ok


def _without_dac(*args: str | os.PathLike[str]) -> list[str]:
    """Run as root but without the capability to ignore file permissions."""
    if not ROOT:
        return _cmd(*args)
    if shutil.which("setpriv") is None:
        pytest.skip("setpriv(1) is needed to drop root's file-permission override")
    bounding = "-dac_override,-dac_read_search"
    return ["setpriv", "--bounding-set", bounding, *_cmd(*args)]


@pytest.mark.slow
def test_permission_denied_fails_naming_the_file_unless_skipped(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    (projects / "K6").mkdir(parents=True)
    (projects / "K6" / "ok.md").write_bytes(b"fine\n")
    locked = projects / "K6" / "locked.pdf"
    locked.write_bytes(b"%PDF-1.4 secret")
    locked.chmod(0)
    out = tmp_path / "out"
    done = subprocess.run(
        _without_dac("backup", "-p", "K6", "--projects-dir", projects, "--output-dir", out),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert "locked.pdf" in done.stderr and "permission denied" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert list(out.glob("*.zip*")) == []
    skipped = subprocess.run(
        _without_dac(
            "backup", "-p", "K6", "--projects-dir", projects, "--output-dir", out,
            "--skip-unreadable",
        ),
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert skipped.returncode == 0, skipped.stderr
    assert "locked.pdf" in skipped.stderr
    (archive,) = out.glob("*.zip")
    assert verify_archive(archive).ok


@pytest.mark.slow
def test_two_concurrent_backups_both_finish_with_distinct_archives(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    _incompressible_project(projects, "K7", files=10, size=1_000_000)
    out = tmp_path / "out"
    cmd = _cmd("backup", "--all", "--projects-dir", projects, "--output-dir", out, "-q")
    first = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    second = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True)
    for proc in (first, second):
        _, stderr = proc.communicate(timeout=120)
        assert proc.returncode == 0, stderr
    archives = sorted(out.glob("*.zip"))
    assert len(archives) == 2
    assert all(verify_archive(a).ok for a in archives)


@pytest.mark.slow
def test_a_held_lock_makes_the_second_run_fail_naming_the_holder(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    (projects / "K8").mkdir(parents=True)
    (projects / "K8" / "a.md").write_bytes(b"a")
    out = tmp_path / "out"
    out.mkdir(mode=0o700)
    with folder_lock(out):
        done = subprocess.run(
            _cmd("backup", "--all", "--projects-dir", projects, "--output-dir", out,
                 "--lock-timeout", "0.3"),
            capture_output=True, text=True, timeout=60, check=False,
        )  # fmt: skip
    assert done.returncode == 1
    assert f"pid {os.getpid()}" in done.stderr and "locked" in done.stderr
    assert list(out.glob("*.zip*")) == []


@pytest.mark.slow
def test_sigkill_during_backup_never_leaves_a_bad_zip(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    _incompressible_project(projects, "K9", files=24, size=1_500_000)
    out = tmp_path / "out"
    cmd = _cmd("backup", "--all", "--projects-dir", projects, "--output-dir", out, "-q")
    clock = time.monotonic()
    subprocess.run(cmd, check=True, timeout=120)
    full_run = time.monotonic() - clock
    for fraction in (0.1, 0.3, 0.5, 0.7, 0.9):
        proc = subprocess.Popen(cmd)
        time.sleep(full_run * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        for archive in out.glob("*.zip"):
            assert verify_archive(archive).ok, f"{archive.name} after a kill at {fraction}"
    subprocess.run(cmd, check=True, timeout=120)
    assert list(out.glob("*.tmp")) == []
    assert all(verify_archive(a).ok for a in out.glob("*.zip"))


@pytest.mark.slow
def test_sigkill_during_a_reuse_backup_leaves_the_parent_and_no_bad_zip(tmp_path: Path) -> None:
    projects = tmp_path / "projects"
    _incompressible_project(projects, "K9", files=24, size=1_500_000)
    out = tmp_path / "out"
    env = {**os.environ, "XDG_CACHE_HOME": str(tmp_path / "cache")}
    cmd = _cmd("backup", "--all", "--projects-dir", projects, "--output-dir", out, "--json")
    time.sleep(4.5)  # files 3 s older than the parent's start (stamped in whole seconds)
    subprocess.run(cmd, check=True, timeout=120, env=env, capture_output=True)
    (parent,) = out.glob("*.zip")
    parent_bytes = parent.read_bytes()
    clock = time.monotonic()
    first = subprocess.run(cmd, check=True, timeout=120, env=env, capture_output=True)
    assert json.loads(first.stdout)["reused_files"] == 24
    reuse_run = time.monotonic() - clock
    for fraction in (0.2, 0.4, 0.6, 0.8):
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL)
        time.sleep(reuse_run * fraction)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert parent.read_bytes() == parent_bytes  # read, never written
        for archive in out.glob("*.zip"):
            assert verify_archive(archive).ok, f"{archive.name} after a kill at {fraction}"
    done = subprocess.run(cmd, check=True, timeout=120, env=env, capture_output=True)
    assert json.loads(done.stdout)["reused_files"] == 24  # the next run copies again
    assert list(out.glob("*.tmp")) == []
    assert all(verify_archive(a).ok for a in out.glob("*.zip"))


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
@pytest.mark.slow
def test_interrupt_removes_the_temp_archive_and_exits_130(tmp_path: Path, sig: int) -> None:
    projects = tmp_path / "projects"
    _incompressible_project(projects, "K10", files=30, size=1_500_000)
    out = tmp_path / "out"
    proc = subprocess.Popen(
        _cmd("backup", "--all", "--projects-dir", projects, "--output-dir", out),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 30
    while not list(out.glob("*.zip.tmp")) and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "interrupted" in stderr and "Traceback" not in stderr
    assert list(out.glob("*.zip*")) == []


def _processes_naming(text: str) -> set[int]:
    """Live processes whose command line holds ``text`` (a forked worker keeps fda-vault's)."""
    found = set()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            if text.encode() in cmdline.read_bytes():
                state = (cmdline.parent / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.add(int(cmdline.parent.name))
        except (OSError, IndexError):
            continue
    return found


@pytest.mark.parametrize("how", ["kill -9", "Ctrl-C", "SIGTERM"])
@pytest.mark.slow
def test_stopping_a_backup_of_thousands_of_small_files_leaves_no_worker_and_no_archive(
    tmp_path: Path, how: str
) -> None:
    """The forked pack of small files (one process per core): however fda-vault stops,
    its workers stop with it and no archive is left under a final name."""
    projects = tmp_path / "projects"
    for i in range(9000):
        path = projects / f"K24{i % 2}001_records" / "openfda" / f"K{i:06d}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(
            f'{{"k_number": "K{i:06d}", "n": {i}, "text": "{"pump " * 300}"}}'.encode()
        )
    out = tmp_path / "out"
    cmd = _cmd("backup", "--all", "--projects-dir", projects, "--output-dir", out, "-q")
    proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:  # the pack is under way: the archive is growing
        temps = list(out.glob("*.zip.tmp"))
        if temps and temps[0].stat().st_size > 300_000:
            break
        time.sleep(0.002)
    workers = _processes_naming(str(out)) - {proc.pid}
    assert workers, "no worker process was running"
    if how == "kill -9":
        proc.send_signal(signal.SIGKILL)
    elif how == "Ctrl-C":
        os.killpg(proc.pid, signal.SIGINT)  # what a terminal sends: to every process
    else:
        proc.send_signal(signal.SIGTERM)  # to fda-vault alone, as systemd's stop does
    _, stderr = proc.communicate(timeout=60)
    deadline = time.monotonic() + 10
    while _processes_naming(str(out)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _processes_naming(str(out))
    assert list(out.glob("*.zip")) == []
    if how == "kill -9":
        assert proc.returncode == -signal.SIGKILL
        subprocess.run(cmd, check=True, timeout=120)  # the next run cleans up and works
        assert list(out.glob("*.tmp")) == [] and len(list(out.glob("*.zip"))) == 1
    else:
        assert proc.returncode == 130, stderr
        assert "interrupted" in stderr and "Traceback" not in stderr
        assert list(out.glob("*.zip*")) == []


@pytest.mark.slow
def test_an_unwritable_backups_folder_is_named_not_the_lock_file(tmp_path: Path) -> None:
    """Field trial: the error named .fda-vault.lock instead of the folder the user gave."""
    projects = tmp_path / "projects"
    (projects / "K6").mkdir(parents=True)
    (projects / "K6" / "ok.md").write_bytes(b"fine\n")
    out = tmp_path / "readonly"
    out.mkdir(mode=0o500)
    done = subprocess.run(
        _without_dac("backup", "-p", "K6", "--projects-dir", projects, "--output-dir", out),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 1, done.stderr
    assert done.stderr.strip() == f"error: {out} — cannot write: permission denied"
    as_json = subprocess.run(
        _without_dac("backup", "-p", "K6", "--projects-dir", projects, "--output-dir", out,
                     "--json"),
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert json.loads(as_json.stdout)["error"]["reason"] == "permission_denied"
