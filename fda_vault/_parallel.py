"""Spreading member work over the cores: batches sized so small files don't drown in
scheduling overhead and large ones still spread."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TypeVar

__all__ = ["batches", "map_in_threads", "worker_count", "workers_for"]

T = TypeVar("T")
R = TypeVar("R")

_BATCH_BYTES = 8 << 20
_BATCH_ITEMS = 256
# Below this mean size per file, threads cost more than they give: a small file is mostly
# Python work under the GIL, and threads handing it back and forth burn system time.
# Measured on 24,355 files of 6.6 KB (restore into tmpfs): 2.9 s on one thread, 4.1 s
# on two; on the default corpus (145 KB per file) two threads are 1.5x faster.
_THREADS_FROM_MEAN_SIZE = 64 << 10


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
