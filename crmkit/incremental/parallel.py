"""Spreading work over every core: a cold load parses 100,000 files.

Worker processes are forked, so they inherit the work list and the function
(closures included) instead of receiving them pickled; only the results travel
back.  :func:`in_background` computes one value in a forked process while the
caller does other work (a report's figures of a week ago).  Where forking is
not available or not safe (not Linux, one core, other threads running, as in
``crmkit watch`` after its start) or not worth it (a few items), both return
``None`` and the caller works alone.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import pickle
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
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


def map_chunks(function: Callable[[Sequence[T]], R], items: Sequence[T], *,
               min_items: int | None = None, chunk: int | None = None
               ) -> Iterator[R] | None:
    """``function`` over chunks of ``chunk`` (:data:`CHUNK`) ``items`` in forked workers,
    results in order; ``None`` where that is not worth it (fewer than ``min_items``,
    :data:`MIN_ITEMS`: the caller then works alone)."""
    if len(items) < (MIN_ITEMS if min_items is None else min_items) or not _can_fork():
        return None
    return _map(function, items, min(cores(), 8), CHUNK if chunk is None else chunk)


def map_all(function: Callable[[Sequence[T]], R], items: Sequence[T], *,
            min_items: int | None = None, chunk: int | None = None) -> list[R] | None:
    """All results of :func:`map_chunks`, in order; ``None`` where that is not worth it
    or a worker failed: the caller then does the work alone, and so raises the error
    as it would alone."""
    chunks = map_chunks(function, items, min_items=min_items, chunk=chunk)
    if chunks is None:
        return None
    try:
        return list(chunks)
    except Exception:
        return None


def _can_fork() -> bool:
    """Linux, a second core, and no other thread (forking with threads risks deadlocks)."""
    return cores() >= 2 and sys.platform == "linux" and threading.active_count() == 1


def _map(function: Callable[[Sequence[T]], R], items: Sequence[T], workers: int,
         chunk: int) -> Iterator[R]:
    global _work
    _work = (function, items)
    try:
        with multiprocessing.get_context("fork").Pool(workers) as pool:
            chunks = [(lo, min(lo + chunk, len(items))) for lo in range(0, len(items), chunk)]
            yield from pool.imap(_run_chunk, chunks)
    finally:
        _work = None


def in_background(function: Callable[[], R]) -> Callable[[], R] | None:
    """Start ``function()`` in a forked process; the returned function waits for its
    result (pickled back through a pipe).  ``None`` where forking is not available or
    not safe (as for :func:`map_chunks`).  If the process fails, the returned
    function computes ``function()`` itself, so errors surface as they would."""
    if not _can_fork():
        return None
    read_end, write_end = os.pipe()
    try:
        pid = os.fork()
    except OSError:
        os.close(read_end)
        os.close(write_end)
        return None
    if pid == 0:  # the child: compute, send, leave without running anything else
        status = 1
        try:
            os.close(read_end)
            with gc_paused():
                data = pickle.dumps(function(), protocol=pickle.HIGHEST_PROTOCOL)
            with os.fdopen(write_end, "wb") as pipe:
                pipe.write(data)
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)

    def result() -> R:
        with os.fdopen(read_end, "rb") as pipe:
            data = pipe.read()
        _, status = os.waitpid(pid, 0)
        if status != 0:
            return function()
        return pickle.loads(data)  # type: ignore[no-any-return]

    return result


def detach(function: Callable[[], Any], lock: Path) -> bool:
    """Run ``function()`` in a process of its own that outlives this one (stdin, stdout
    and stderr on ``/dev/null``, at a lower priority), holding an exclusive lock on
    ``lock`` while it runs (:func:`wait_for` waits for it).  ``False`` where forking is
    not available or not safe, or another such process holds the lock."""
    if not _can_fork():
        return False
    try:
        import fcntl

        lock.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock, os.O_CREAT | os.O_RDWR, 0o600)
    except (ImportError, OSError):
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        return False  # one is running already
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError:
        os.close(fd)
        return False
    if pid:  # the caller: the lock stays with the child
        os.close(fd)
        os.waitpid(pid, 0)
        return True
    try:  # the first child: a session of its own, then a grandchild nobody waits for
        os.setsid()
        if os.fork():
            os._exit(0)
        null = os.open(os.devnull, os.O_RDWR)
        for stream in (0, 1, 2):
            os.dup2(null, stream)
        with contextlib.suppress(OSError):
            os.nice(10)
        with gc_paused():
            function()
    finally:
        os._exit(0)


def wait_for(lock: Path) -> None:
    """Wait until no process started by :func:`detach` holds ``lock``."""
    try:
        import fcntl

        fd = os.open(lock, os.O_RDWR)
    except (ImportError, OSError):
        return
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
    finally:
        os.close(fd)
