"""Spreading member work over threads: batches, order, errors, and when not to."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from fda_vault import _parallel as parallel
from fda_vault._errors import IntegrityError
from fda_vault._parallel import (
    ForkedMap,
    batches,
    map_in_forks,
    map_in_threads,
    worker_count,
    workers_for,
)


def test_batches_close_at_256_items_or_8_mib() -> None:
    small = batches(range(600), lambda _: 1)
    assert [len(b) for b in small] == [256, 256, 88]
    big = batches(range(5), lambda _: 3 << 20)  # three of these pass 8 MiB
    assert [len(b) for b in big] == [3, 2]
    assert [x for b in small for x in b] == list(range(600))


def test_results_come_in_order_and_spread_over_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    names: set[str] = set()
    both_started = threading.Barrier(2, timeout=10)

    def work(item: int) -> int:
        names.add(threading.current_thread().name)
        if item < 2:
            both_started.wait()  # fails unless two threads run at once
        return item * item

    assert list(map_in_threads(work, list(range(10)))) == [i * i for i in range(10)]
    assert len(names) == 2


def test_one_worker_runs_on_the_calling_thread() -> None:
    names: set[str] = set()

    def work(item: int) -> int:
        names.add(threading.current_thread().name)
        return item

    assert list(map_in_threads(work, [1, 2, 3], workers=1)) == [1, 2, 3]
    assert names == {threading.current_thread().name}


def test_the_first_error_is_raised_after_every_thread_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Callers clean up after an error knowing that no thread is still writing."""
    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    slow_one_done = threading.Event()
    both_started = threading.Barrier(2, timeout=10)

    def work(item: int) -> int:
        both_started.wait()
        if item == 0:
            raise ValueError("first")
        time.sleep(0.2)
        slow_one_done.set()
        return item

    with pytest.raises(ValueError, match="first"):
        list(map_in_threads(work, [0, 1]))
    assert slow_one_done.is_set()


@pytest.mark.parametrize(
    ("total_bytes", "files", "threads"),
    [
        pytest.param(0, 0, False, id="nothing"),
        pytest.param(161_000_000, 24_355, False, id="many small files (6.6 KB each)"),
        pytest.param(64 * 1024 * 100 - 1, 100, False, id="just under 64 KiB each"),
        pytest.param(64 * 1024 * 100, 100, True, id="64 KiB each"),
        pytest.param(512_000_000, 3_541, True, id="the default corpus (145 KB each)"),
    ],
)
def test_small_files_are_not_worth_threads(total_bytes: int, files: int, threads: bool) -> None:
    assert workers_for(total_bytes, files) == (worker_count() if threads else 1)


def _pid_and_square(item: int) -> tuple[int, int]:
    return os.getpid(), item * item


def test_map_in_forks_gives_results_in_order_from_more_than_one_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    results = map_in_forks(_pid_and_square, list(range(9)))
    assert [square for _, square in results] == [i * i for i in range(9)]
    pids = [pid for pid, _ in results]
    assert pids[0] == os.getpid() and len(set(pids)) == 2  # the second share: a child
    with pytest.raises(ChildProcessError):
        os.waitpid(pids[-1], os.WNOHANG)  # and it was reaped


def _fails_in_the_second_share(item: int) -> int:
    if item == 7:
        raise IntegrityError("archive.zip: projects/a.json", "CRC-32 mismatch", reason="damaged")
    return item


def _open_fds() -> int:
    return len(os.listdir("/proc/self/fd"))


def _slow_in_the_third_share(item: int) -> int:
    if item >= 8:
        time.sleep(30)  # still running when the second share's failure comes back
    return _fails_in_the_second_share(item)


def test_a_failure_in_a_child_is_raised_here_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    fds = _open_fds()
    with pytest.raises(IntegrityError) as caught:
        map_in_forks(_fails_in_the_second_share, list(range(10)))
    assert _open_fds() == fds  # no pipe left open
    assert (caught.value.what, caught.value.why, caught.value.reason) == (
        "archive.zip: projects/a.json",
        "CRC-32 mismatch",
        "damaged",
    )


def _child_dies(item: int) -> int:
    if item >= 5 and os.getpid() != PARENT:
        os.kill(os.getpid(), signal.SIGKILL)
    return item


PARENT = os.getpid()


def test_a_child_that_dies_is_an_error_not_missing_results(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    with pytest.raises(RuntimeError, match="ended without a result"):
        map_in_forks(_child_dies, list(range(10)))


# A parent whose worker says its pid and sleeps; an interrupt exits 130, as the CLI does.
_SLEEPING_WORKER = """
import os, sys, time
from fda_vault import _parallel
_parallel.worker_count = lambda: 2
parent = os.getpid()
def work(item):
    if os.getpid() != parent:
        print(os.getpid(), flush=True)
    time.sleep(60)
    return item
try:
    _parallel.map_in_forks(work, [1, 2])
except KeyboardInterrupt:
    sys.exit(130)
"""


def _worker_pid(parent: subprocess.Popen[str]) -> int:
    """The pid the worker prints first (failing, not hanging, if none comes in 30 s)."""
    assert parent.stdout is not None
    ready, _, _ = select.select([parent.stdout], [], [], 30)
    assert ready, "no worker process started"
    return int(parent.stdout.readline())


def _alive(pid: int) -> bool:
    """Running (a zombie, dead but not yet reaped by whoever adopted it, is not)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, IndexError):
        return False
    return state != "Z"


@pytest.mark.parametrize(
    "call", ["_parallel.map_in_forks(work, [1, 2])", "list(_parallel.ForkedMap(work, [1, 2]))"]
)
def test_a_kill_9_of_the_parent_takes_its_worker_processes_with_it(call: str) -> None:
    script = _SLEEPING_WORKER.replace("_parallel.map_in_forks(work, [1, 2])", call)
    with subprocess.Popen(
        [sys.executable, "-c", script], stdout=subprocess.PIPE, text=True
    ) as parent:
        child = _worker_pid(parent)
        assert _alive(child)
        parent.send_signal(signal.SIGKILL)
        parent.wait(timeout=10)
    deadline = time.monotonic() + 10
    while _alive(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(child)


def test_ctrl_c_stops_the_workers_and_reaches_the_caller_as_an_interrupt() -> None:
    with subprocess.Popen(
        [sys.executable, "-c", _SLEEPING_WORKER], stdout=subprocess.PIPE, text=True,
        start_new_session=True,
    ) as parent:  # fmt: skip
        child = _worker_pid(parent)
        os.killpg(parent.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
        assert parent.wait(timeout=10) == 130
    assert not _alive(child)


def _children() -> set[int]:
    """This process's children that exist (zombies included: they are not reaped yet)."""
    found = set()
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat_file.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[1]) == os.getpid():
            found.add(int(stat_file.parent.name))
    return found


def test_a_failure_stops_the_workers_still_running(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "worker_count", lambda: 3)
    fds, children = _open_fds(), _children()
    started = time.monotonic()
    with pytest.raises(IntegrityError):
        map_in_forks(_slow_in_the_third_share, list(range(12)))
    assert time.monotonic() - started < 10
    assert _children() == children  # the sleeping third share was killed and reaped
    assert _open_fds() == fds


def _pid_and_block(item: int) -> tuple[int, int, bytes]:
    return os.getpid(), item, bytes([item % 256]) * 300_000  # several pipes' worth


def test_forked_map_streams_results_in_order_from_one_child_per_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    fds, children = _open_fds(), _children()
    with ForkedMap(_pid_and_block, list(range(40))) as results:
        got = list(results)
    assert [item for _, item, _ in got] == list(range(40))
    assert all(block == bytes([item]) * 300_000 for _, item, block in got)
    pids = [pid for pid, _, _ in got]
    assert os.getpid() not in pids and len(set(pids)) == 2
    assert pids[0::2] == [pids[0]] * 20 and pids[1::2] == [pids[1]] * 20  # round robin
    assert _children() == children and _open_fds() == fds


def test_forked_map_raises_a_childs_failure_whole_and_stops_the_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(parallel, "worker_count", lambda: 3)
    fds, children = _open_fds(), _children()
    started = time.monotonic()
    with (
        pytest.raises(IntegrityError) as caught,
        ForkedMap(_slow_in_the_third_share, list(range(12))) as results,
    ):
        list(results)
    assert time.monotonic() - started < 10  # the sleeping child was killed, not waited for
    assert caught.value.why == "CRC-32 mismatch"
    assert _children() == children and _open_fds() == fds


def test_forked_map_reports_a_child_that_died(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    with (
        pytest.raises(RuntimeError, match="ended without a result"),
        ForkedMap(_child_dies, list(range(10))) as results,
    ):
        list(results)


def test_leaving_a_forked_map_early_stops_its_children(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    fds, children = _open_fds(), _children()
    with ForkedMap(_pid_and_block, list(range(1000))) as results:
        assert next(results)[1] == 0
        assert len(_children() - children) == 2  # working ahead, then waiting on a full pipe
    assert _children() == children and _open_fds() == fds


def test_a_forked_maps_children_work_ahead_only_by_what_their_pipes_hold(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(parallel, "worker_count", lambda: 2)
    made = tmp_path / "made"

    def block(item: int) -> bytes:
        with made.open("a") as log:  # one line a result made (appends are atomic here)
            log.write(f"{item}\n")
        return bytes(300_000)

    with ForkedMap(block, list(range(1000))) as results:
        next(results)
        time.sleep(1.5)  # time enough to make hundreds more if nothing held them back
        ahead = len(made.read_text().splitlines())
    # 1 MiB pipes of 300 kB results: a few each, and one being written.
    assert ahead <= 12, ahead
