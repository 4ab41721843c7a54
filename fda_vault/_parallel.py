"""Spreading member work over the cores: batches sized so small files don't drown in
scheduling overhead and large ones still spread."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, TYPE_CHECKING, Any, Generic, TypeVar, cast

if TYPE_CHECKING:
    from fda_vault._progress import Progress

__all__ = [
    "ForkedMap",
    "SharedProgress",
    "batches",
    "can_fork",
    "forks_pay",
    "map_in_forks",
    "map_in_threads",
    "map_over_cores",
    "process_alive",
    "worker_count",
    "workers_for",
]

T = TypeVar("T")
R = TypeVar("R")

_BATCH_BYTES = 8 << 20
_BATCH_ITEMS = 256
# Below this mean size per file, threads cost more than they give: a small file is mostly
# Python work under the GIL, and threads handing it back and forth burn system time.
# Measured on 24,355 files of 6.6 KB (restore into tmpfs): 2.9 s on one thread, 4.1 s
# on two; on the default corpus (145 KB per file) two threads are 1.5x faster.
_THREADS_FROM_MEAN_SIZE = 64 << 10


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` of this host exists (another user's counts as alive)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def worker_count() -> int:
    """Cores this process may use (at most 8: beyond that the reader is the bottleneck)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, 8))


def workers_for(total_bytes: int, files: int) -> int:
    """How many threads to spread ``files`` files of ``total_bytes`` bytes over."""
    if files == 0 or total_bytes < files * _THREADS_FROM_MEAN_SIZE:
        return 1
    return worker_count()


def batches(items: Iterable[T], size_of: Callable[[T], int]) -> list[list[T]]:
    """Consecutive groups of about 8 MiB or 256 items, whichever comes first."""
    groups: list[list[T]] = []
    current: list[T] = []
    weight = 0
    for item in items:
        current.append(item)
        weight += size_of(item)
        if weight >= _BATCH_BYTES or len(current) >= _BATCH_ITEMS:
            groups.append(current)
            current, weight = [], 0
    if current:
        groups.append(current)
    return groups


def map_in_threads(
    function: Callable[[T], R], work: Sequence[T], *, workers: int | None = None
) -> Iterator[R]:
    """``map`` over threads (the work must release the GIL: hashing, inflating, I/O).

    Results come in order; the first exception is raised once every thread stopped, so
    callers can clean up knowing nothing is still writing.
    """
    workers = min(worker_count() if workers is None else workers, len(work))
    if workers <= 1:
        yield from map(function, work)
        return
    # Imported here: ~14 ms that list, and every run on small files, never need.
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(workers) as pool:
        futures = [pool.submit(function, item) for item in work]
        try:
            for future in futures:
                yield future.result()
        finally:
            for future in futures:
                future.cancel()


class SharedProgress:
    """Progress of work that :func:`map_in_forks` may spread: this process reports as it
    goes; a child is silent (``silence``, its ``in_child``), and what the children did is
    reported at once when their results are back (``settle`` with the total done)."""

    def __init__(self, progress: Progress) -> None:
        self._progress = progress
        self._here = 0
        self._silent = False

    def advance(self, size: int) -> None:
        if not self._silent:
            self._here += size
            self._progress.advance(size)

    def silence(self) -> None:
        self._silent = True

    def settle(self, total: int) -> None:
        self._progress.advance(max(0, total - self._here))


def can_fork() -> bool:
    """Whether :func:`map_in_forks` can use processes here (Linux, more than one core)."""
    return sys.platform == "linux" and worker_count() > 1


# From this many files too small for threads (see workers_for), processes pay: measured
# on 20,000 JSON records of 1-5 KB on 2 cores, verify 0.53 -> 0.45 s in-process.
_FORKS_FROM_FILES = 2000


def forks_pay(files: int, threads: int) -> bool:
    """Whether ``files`` files that get ``threads`` threads are worth processes instead."""
    return threads == 1 and files >= _FORKS_FROM_FILES and can_fork()


def map_over_cores(
    function: Callable[[T], R],
    work: Sequence[T],
    *,
    files: int,
    threads: int,
    forkable: bool,
    progress: SharedProgress,
    done: Callable[[R], int],
) -> list[R]:
    """``map`` over the cores: ``threads`` threads (see :func:`workers_for`), or, where
    ``forkable`` work on ``files`` files pays for it (:func:`forks_pay`), one process per
    core; then ``done(result)``, the bytes a result stands for, reports the workers' part
    to ``progress``. The first failure is raised once every worker stopped."""
    if forkable and forks_pay(files, threads):
        results = map_in_forks(function, work, in_child=progress.silence)
        progress.settle(sum(map(done, results)))
        return results
    return list(map_in_threads(function, work, workers=threads))


def map_in_forks(
    function: Callable[[T], R],
    work: Sequence[T],
    *,
    in_child: Callable[[], None] | None = None,
) -> list[R]:
    """``map`` over processes, for work that is mostly Python (thousands of small files,
    where threads only take turns under the GIL): the work is cut into one contiguous
    share per core; this process does the first, a forked child each other one, which
    hands back its results (or its exception) pickled through a pipe. Results in order.

    A child only computes: it must not print, lock or touch anything another thread of
    this process might hold (it has only the thread that forked it). Children die with
    this process (PR_SET_PDEATHSIG), and are killed when it fails or is interrupted.
    ``in_child`` runs first in each child (to silence progress reporting, for example).
    """
    workers = min(worker_count(), len(work))
    if workers <= 1 or not can_fork():
        return list(map(function, work))
    import pickle

    step = -(-len(work) // workers)
    shares = [work[i : i + step] for i in range(0, len(work), step)]

    def run(pipe: IO[bytes], share: Sequence[T]) -> None:
        try:
            if in_child is not None:
                in_child()
            outcome: tuple[bool, object] = (True, [function(item) for item in share])
        except BaseException as exc:  # handed to the parent, which raises it
            outcome = (False, exc)
        pipe.write(pickle.dumps(outcome))

    children: list[tuple[int, int]] = []  # (pid, read end)
    try:
        for share in shares[1:]:
            children.append(_fork(run, share))
        results = [function(item) for item in shares[0]]
        while children:
            pid, fd = children[0]
            with os.fdopen(fd, "rb") as pipe:
                data = pipe.read()
            os.waitpid(pid, 0)
            del children[0]  # reaped: its pid may be another process's from now on
            # Our own child's bytes, through a pipe only it and we hold.
            results.extend(_outcome(pickle.loads(data) if data else None, pid))  # noqa: S301
        return results
    finally:
        _stop(children)


class ForkedMap(Generic[T, R]):
    """``map`` over processes, results streamed back in order as they are ready: item
    ``i`` goes to child ``i % n`` (one per core, started at once), which pickles each
    result into a pipe of its own. A child works ahead of the reader by what its pipe
    holds, then waits, so memory stays bounded however long the work is. For long runs
    of small Python work consumed in order (the backup's small files); children as in
    :func:`map_in_forks`. Use it as a context manager: leaving it stops the children."""

    def __init__(self, function: Callable[[T], R], work: Sequence[T]) -> None:
        import pickle

        self._loads = pickle.loads
        self._work = len(work)
        self._next = 0
        self._children: list[int] = []
        self._pipes: list[IO[bytes]] = []
        workers = min(worker_count(), len(work))

        def run(pipe: IO[bytes], share: Sequence[T]) -> None:
            for item in share:
                try:
                    ok, message = True, pickle.dumps((True, function(item)))
                except BaseException as exc:  # handed to the parent, which raises it
                    ok, message = False, pickle.dumps((False, exc))
                pipe.write(len(message).to_bytes(8, "little") + message)
                pipe.flush()
                if not ok:
                    return

        try:
            for k in range(workers):
                pid, fd = _fork(run, work[k::workers])
                self._children.append(pid)
                self._pipes.append(os.fdopen(fd, "rb"))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ForkedMap[T, R]:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __iter__(self) -> ForkedMap[T, R]:
        return self

    def __next__(self) -> R:
        if self._next >= self._work:
            raise StopIteration
        k = self._next % len(self._pipes)
        pipe = self._pipes[k]
        size = int.from_bytes(pipe.read(8), "little")
        data = pipe.read(size) if size else b""
        # Our own child's bytes, through a pipe only it and we hold; cut short, it died.
        message = self._loads(data) if data and len(data) == size else None
        self._next += 1
        return cast("R", _outcome(message, self._children[k]))

    def close(self) -> None:
        """Stop the children (those still working are killed) and reap them."""
        for pipe in self._pipes:
            pipe.close()
        _stop([(pid, -1) for pid in self._children])
        self._pipes, self._children = [], []


def _outcome(message: tuple[bool, object] | None, pid: int) -> Any:
    """A child's result, or the exception it sent raised here."""
    ok, value = message if message is not None else (False, None)
    if not ok:
        if isinstance(value, BaseException):
            raise value
        raise RuntimeError(f"worker process {pid} ended without a result")
    return value


def _stop(children: list[tuple[int, int]]) -> None:
    """Kill and reap children still running (this process failed, was interrupted, or
    stopped early); close their pipes."""
    for pid, fd in children:
        with contextlib.suppress(OSError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(OSError):
            os.waitpid(pid, 0)
        if fd >= 0:
            with contextlib.suppress(OSError):  # (already closed if it was being read)
                os.close(fd)


def _fork(run: Callable[[IO[bytes], Sequence[T]], None], share: Sequence[T]) -> tuple[int, int]:
    """Start a child that calls ``run(pipe, share)``, ``pipe`` the write end of a new
    pipe; (its pid, the read end)."""
    import ctypes  # noqa: F401 - for the child's _die_with_parent, imported once here

    read_end, write_end = os.pipe()
    with contextlib.suppress(OSError, AttributeError):  # Linux: let a child work ahead
        import fcntl

        fcntl.fcntl(write_end, fcntl.F_SETPIPE_SZ, _PIPE_BYTES)
    with warnings.catch_warnings():
        # Python 3.12+ warns of a fork while other threads run: the child takes none of
        # their locks (it computes, and writes to its own pipe), as map_in_forks requires.
        warnings.simplefilter("ignore", DeprecationWarning)
        pid = os.fork()
    if pid:
        os.close(write_end)
        return pid, read_end
    # The child: it never returns into the caller's code, and leaves with os._exit (no
    # atexit handlers, no stdio buffers flushed twice).
    code = 1
    try:
        os.close(read_end)
        _die_with_parent()
        signal.signal(signal.SIGINT, signal.SIG_DFL)  # Ctrl-C: the parent reports it
        with os.fdopen(write_end, "wb") as pipe:
            run(pipe, share)
        code = 0
    finally:
        os._exit(code)


_PIPE_BYTES = 1 << 20  # Linux's default limit for an unprivileged pipe


def _die_with_parent() -> None:
    """Ask Linux to SIGKILL this process when its parent dies (a kill -9 of fda-vault
    leaves no worker behind)."""
    import ctypes  # imported by the parent before it forks (see _fork): no cost here

    with contextlib.suppress(OSError, AttributeError):
        # The process's own symbols hold libc's prctl (find_library ran ldconfig: ~4 ms).
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() == 1:  # the parent died before the request: nobody to work for
        os._exit(1)


_PR_SET_PDEATHSIG = 1  # linux/prctl.h
