"""Spreading work over every core: a cold load parses 100,000 files.

Worker processes are forked, so they inherit the work list and the function
(closures included) instead of receiving them pickled; only the results travel
back.  Where forking is not available or not safe (not Linux, one core, other
threads running, as in ``crmkit watch`` after its start) or not worth it (a
few items), :func:`map_chunks` returns ``None`` and the caller works alone.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from .cache import gc_paused

T = TypeVar("T")
R = TypeVar("R")

#: Below this many items the start-up of the workers costs more than it saves.
MIN_ITEMS = 2000
CHUNK = 500

_work: tuple[Callable[[Any], Any], Sequence[Any]] | None = None


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _run_chunk(bounds: tuple[int, int]) -> Any:
    assert _work is not None
    function, items = _work
    with gc_paused():
        return function(items[bounds[0]:bounds[1]])


def map_chunks(function: Callable[[Sequence[T]], R], items: Sequence[T]
               ) -> Iterator[R] | None:
    """``function`` over chunks of :data:`CHUNK` ``items`` in forked workers, results in
    order; ``None`` where that is not worth it (the caller then works alone)."""
    workers = min(cores(), 8)
    if len(items) < MIN_ITEMS or workers < 2 or sys.platform != "linux" \
            or threading.active_count() > 1:  # forking with threads risks deadlocks
        return None
    return _map(function, items, workers)


def _map(function: Callable[[Sequence[T]], R], items: Sequence[T], workers: int
         ) -> Iterator[R]:
    global _work
    _work = (function, items)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            chunks = [(lo, min(lo + CHUNK, len(items))) for lo in range(0, len(items), CHUNK)]
            yield from pool.imap(_run_chunk, chunks)
    finally:
        _work = None
