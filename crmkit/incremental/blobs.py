"""An append-only file of signed blobs: the bulk of what one run keeps for the next.

The state between runs (:mod:`crmkit.incremental.state`) holds 10,000 pickled
customer records and the rules' results in parts: 40 MB or more.  Writing all of
it after every run, and reading and checking all of it before the next, would
cost more than the runs save.  So the bulk lives here, each blob addressed by
a :class:`Ref` (offset, length and a digest keyed with this machine's key, see
:func:`crmkit.incremental.signing.machine_key`): a run appends only the blobs it
made, and reads (and checks) only the blobs it needs.  When most of the file is
blobs no state refers to any more, the next save writes the live ones to a new
file.  A blob that is missing or does not match its digest is never unpickled.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from .signing import machine_key

PREFIX = "blobs-"
#: Compact when the file is this much larger than its live blobs (and at least 64 MB).
SLACK = 2
MIN_COMPACT = 64 * 1024 * 1024


class BlobMissing(Exception):
    """A blob that is gone or altered: what referred to it is computed afresh."""


class Ref:
    """Where a blob is: its offset (known once written), length and digest."""

    __slots__ = ("digest", "length", "offset")

    def __init__(self, offset: int, length: int, digest: bytes) -> None:
        self.offset, self.length, self.digest = offset, length, digest

    def __reduce__(self) -> tuple[type, tuple[int, int, bytes]]:
        return (Ref, (self.offset, self.length, self.digest))


def sign(data: bytes) -> bytes:
    return hashlib.blake2b(data, digest_size=16, key=machine_key()).digest()


class BlobLog:
    """One blob file below ``folder``; ``name`` is the file the state refers to."""

    def __init__(self, folder: Path, name: str | None = None) -> None:
        self.folder = folder
        self.name = name or f"{PREFIX}{secrets.token_hex(6)}"
        self._view: mmap.mmap | bytes | None = None
        self._pending: list[tuple[Ref, bytes]] = []

    @property
    def path(self) -> Path:
        return self.folder / self.name

    def _data(self) -> mmap.mmap | bytes:
        if self._view is None:
            try:
                with open(self.path, "rb") as handle:
                    size = os.fstat(handle.fileno()).st_size
                    self._view = (mmap.mmap(handle.fileno(), 0, access=mmap.ACCESS_READ)
                                  if size else b"")
            except (OSError, ValueError):
                self._view = b""
        return self._view

    def open(self) -> bool:
        """Map the file now (so that a compaction by another run cannot take it away
        meanwhile); ``False`` if it is not there."""
        return len(self._data()) > 0

    def get(self, ref: Ref) -> bytes:
        """The blob at ``ref``, checked; raises :class:`BlobMissing`."""
        if ref.offset < 0:
            for pending, data in self._pending:
                if pending is ref:
                    return data
            raise BlobMissing
        view = self._data()
        if ref.offset + ref.length > len(view):  # appended since it was mapped
            self._view = None
            view = self._data()
        data = view[ref.offset:ref.offset + ref.length]
        if len(data) != ref.length or sign(bytes(data)) != ref.digest:
            raise BlobMissing
        return bytes(data)

    def put(self, data: bytes) -> Ref:
        """A reference to ``data``, written with the next :meth:`flush`."""
        ref = Ref(-1, len(data), sign(data))
        self._pending.append((ref, data))
        return ref

    def flush(self) -> bool:
        """Append what was :meth:`put` and fill in the offsets; ``False`` if it could not
        be written."""
        if not self._pending:
            return True
        offset = self.append(b"".join(blob for _, blob in self._pending))
        if offset is None:
            return False
        for ref, blob in self._pending:
            ref.offset = offset
            offset += len(blob)
        self._pending.clear()
        return True

    def append(self, data: bytes) -> int | None:
        """Append ``data`` (locked, so that runs and workers at the same time append one
        after the other); its offset, or ``None`` if it could not be written."""
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        except OSError:
            return None
        try:
            with _locked(fd):
                offset = os.fstat(fd).st_size
                view = memoryview(data)
                while view:
                    written = os.write(fd, view)
                    view = view[written:]
        except OSError:
            return None
        finally:
            os.close(fd)
        return offset

    def size(self) -> int:
        try:
            return self.path.stat().st_size
        except OSError:
            return 0

    def worth_compacting(self, used: int) -> bool:
        """Whether the file is mostly blobs nobody refers to (``used`` bytes are live)."""
        return self.size() >= max(MIN_COMPACT, SLACK * used)

    def compacted(self, live: Iterable[Ref]) -> BlobLog | None:
        """A new file with only the ``live`` blobs (their refs updated in place); ``None``
        if it could not be written."""
        refs = list({id(r): r for r in live}.values())
        new = BlobLog(self.folder)
        moved = []
        for ref in refs:
            try:
                moved.append((ref, new.put(self.get(ref))))
            except BlobMissing:
                continue
        if not new.flush():
            return None
        for ref, fresh in moved:
            ref.offset = fresh.offset
        return new

    def remove_others(self) -> None:
        """Delete blob files other than this one (after a compaction)."""
        with contextlib.suppress(OSError):
            for path in self.folder.glob(f"{PREFIX}*"):
                if path.name != self.name:
                    path.unlink()


@contextlib.contextmanager
def _locked(fd: int):  # type: ignore[no-untyped-def]
    try:
        import fcntl
    except ImportError:  # not on POSIX: one run at a time is the user's business
        yield
        return
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        yield
    finally:
        fcntl.flock(fd, fcntl.LOCK_UN)
