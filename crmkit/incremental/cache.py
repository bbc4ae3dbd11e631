"""The parse cache: a second run re-reads only the files that changed.

Every record file's records (and their problems) are kept as one blob in the
blob file (:mod:`crmkit.incremental.blobs`), and the :class:`FileIndex` says
where, by workspace-relative path, size and mtime (nanoseconds).  All of it is
kept under a fingerprint of everything else that shapes those records (crmkit's
version and the code of its loader and records, the interaction types, time zone
and currency): a different
fingerprint starts afresh.  Files modified in the last couple of seconds are
not kept ("racy" entries, as git calls them): their mtime could repeat after a
quick second edit of the same size.

The same index and blobs are what a one-off run starts from
(:mod:`crmkit.incremental.state`), so a cold start writes each file's blob once,
in the parallel workers that parse it.  Everything is signed with this
machine's key (:mod:`crmkit.incremental.signing`).
"""

from __future__ import annotations

import array
import contextlib
import copyreg
import gc
import hashlib
import os
import pickle
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import __version__
from .blobs import BlobLog, BlobMissing, Ref
from .signing import CACHE_DIR, read_checked, write_checked

RACY_WINDOW_NS = 2_000_000_000
STATE_FILE = CACHE_DIR / "state.pickle"
MAGIC = b"crmkit-state\n"
SEPARATOR = "\0"

#: The classes in a record file's blob, pickled as a number instead of by module and
#: name (:func:`copyreg.add_extension`): 110,000 small pickles load twice as fast
#: and take a third less space.  The numbers are part of the cache's version.
RECORD_CLASSES = (
    ("crmkit.model.diagnostics", "Location"), ("crmkit.model.diagnostics", "Diagnostic"),
    ("crmkit.model.diagnostics", "Severity"), ("crmkit.model.records", "FrozenMap"),
    ("crmkit.model.records", "Customer"), ("crmkit.model.records", "Address"),
    ("crmkit.model.records", "Consent"), ("crmkit.model.records", "Service"),
    ("crmkit.model.records", "Interval"), ("crmkit.model.records", "Interaction"),
    ("crmkit.model.records", "Item"), ("crmkit.model.records", "FollowUp"),
    ("crmkit.model.records", "Deal"), ("crmkit.loading.schema", "_marks"),
    ("datetime", "date"), ("datetime", "datetime"), ("datetime", "timezone"),
    ("datetime", "timedelta"), ("decimal", "Decimal"), ("zoneinfo", "ZoneInfo"),
)
_FIRST_CODE = 0x63726B00  # "crk": far from the codes the standard library reserves
for _code, (_module, _name) in enumerate(RECORD_CLASSES, start=_FIRST_CODE):
    with contextlib.suppress(ValueError):  # registered already (a second import)
        copyreg.add_extension(_module, _name, _code)


def source_digest(*folders: Path) -> str:
    """A digest of the name, size and mtime of every Python file in ``folders``: the
    code that turns a file into records.  An edited checkout (an editable install)
    keeps ``__version__``, and records parsed by the older code must not be taken."""
    digest = hashlib.sha1()
    for folder in folders:
        for path in sorted(folder.glob("*.py")):
            try:
                st = path.stat()
            except OSError:
                continue
            digest.update(f"{path.name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:12]


_PACKAGE = Path(__file__).resolve().parent.parent
_VERSION = (f"{__version__}/py{sys.version_info[0]}.{sys.version_info[1]}/8/"
            + hashlib.sha1(repr(RECORD_CLASSES).encode()).hexdigest()[:8] + "/"
            + source_digest(_PACKAGE / "loading", _PACKAGE / "model"))

Key = tuple[int, int]  # (size, mtime_ns)


class FileIndex:
    """Every record file in the order the loader read them: its size and mtime as read,
    the customer ids its records name (for a customer file: its own id, then whom it
    was referred by) and where its blob is.  Kept as flat arrays: 110,000 files
    pickle and load in milliseconds, and an unchanged file list compares in one step."""

    def __init__(self, names: list[str], sizes: array.array, mtimes: array.array,
                 refs: list[str], offsets: array.array, lengths: array.array,
                 digests: bytes) -> None:
        self.names, self.sizes, self.mtimes, self.refs = names, sizes, mtimes, refs
        self.offsets, self.lengths, self.digests = offsets, lengths, digests
        self._positions: dict[str, int] | None = None

    def __reduce__(self) -> tuple[Any, ...]:
        return (FileIndex, (self.names, self.sizes, self.mtimes, self.refs, self.offsets,
                            self.lengths, self.digests))

    def position(self, rel: str) -> int | None:
        if self._positions is None:
            self._positions = {rel: i for i, rel in enumerate(self.names)}
        return self._positions.get(rel)

    def key(self, i: int) -> Key:
        return (self.sizes[i], self.mtimes[i])

    def blob(self, i: int) -> Ref | None:
        offset = self.offsets[i]
        if offset < 0:
            return None
        return Ref(offset, self.lengths[i], self.digests[16 * i:16 * i + 16])

    def refs_of(self, rel: str) -> tuple[str, ...]:
        i = self.position(rel)
        return split_ids(self.refs[i]) if i is not None else ()

    def all_refs(self) -> Iterator[tuple[str, tuple[str, ...]]]:
        for rel, joined in zip(self.names, self.refs, strict=True):
            if joined:
                yield rel, split_ids(joined)

    def changes(self, names: list[str], sizes: array.array, mtimes: array.array
                ) -> tuple[list[int], list[str]]:
        """The positions in ``names`` of files new or changed since, and the files gone."""
        if names == self.names:
            if sizes == self.sizes and mtimes == self.mtimes:
                return [], []
            return [i for i, (a, b, c, d) in enumerate(zip(sizes, self.sizes, mtimes,
                                                            self.mtimes, strict=True))
                    if a != b or c != d], []
        changed = []
        for i, rel in enumerate(names):
            j = self.position(rel)
            if j is None or sizes[i] != self.sizes[j] or mtimes[i] != self.mtimes[j]:
                changed.append(i)
        present = set(names)
        return changed, [rel for rel in self.names if rel not in present]


#: The size kept for a file too new to trust: never equal to a real one.
RACY = -2


def split_ids(joined: str) -> tuple[str, ...]:
    return tuple(joined.split(SEPARATOR)) if joined else ()


def join_ids(ids: tuple[str, ...] | list[str]) -> str:
    return SEPARATOR.join(ids)


class IndexBuilder:
    """Collects the index of one load, file by file, in order."""

    def __init__(self) -> None:
        self.names: list[str] = []
        self.sizes, self.mtimes = array.array("q"), array.array("q")
        self.refs: list[str] = []
        self.offsets, self.lengths = array.array("q"), array.array("q")
        self.digests: list[bytes] = []
        #: Refs not written yet (offset -1): filled in after the blob file's flush.
        self.pending: list[tuple[int, Ref]] = []
        self._limit = time.time_ns() - RACY_WINDOW_NS

    def add(self, rel: str, key: Key | None, ids: str, offset: int, length: int,
            digest: bytes) -> None:
        """A file with its blob at ``offset`` (-1: none)."""
        self.names.append(rel)
        self.refs.append(ids)
        if key is None or key[1] >= self._limit:  # unreadable or too new to trust
            self.sizes.append(RACY)
            self.mtimes.append(0 if key is None else key[1])
            offset = -1
        else:
            self.sizes.append(key[0])
            self.mtimes.append(key[1])
        self.offsets.append(offset)
        self.lengths.append(length)
        self.digests.append(digest)

    def add_ref(self, rel: str, key: Key | None, ids: str, ref: Ref | None) -> None:
        if ref is None:
            self.add(rel, key, ids, -1, 0, NO_DIGEST)
            return
        if ref.offset < 0:
            self.pending.append((len(self.names), ref))
        self.add(rel, key, ids, ref.offset, ref.length, ref.digest)

    def build(self) -> FileIndex:
        for i, ref in self.pending:
            if self.sizes[i] != RACY:
                self.offsets[i] = ref.offset
        return FileIndex(self.names, self.sizes, self.mtimes, self.refs, self.offsets,
                         self.lengths, b"".join(self.digests))


NO_DIGEST = bytes(16)


@dataclass
class Files:
    """The record files as a load read them: what the next run starts from."""

    #: What shapes the records besides the files (see the module docstring).
    fingerprint: str
    index: FileIndex
    #: The blob file the index refers to.
    blobs: str
    #: The loader's problems of each file that has any.
    problems: dict[str, tuple[Any, ...]] = field(default_factory=dict)
    #: Customer id → the file it is read from, by id.
    customers: dict[str, str] = field(default_factory=dict)
    #: Customer id → how many interactions they have (only if any).
    lengths: dict[str, int] = field(default_factory=dict)
    #: Deal file → its parts.
    deals: dict[str, Any] = field(default_factory=dict)
    #: A run may start from it without a full load (no broken or duplicate customer).
    clean: bool = False
    #: Each record folder as the walk saw it (its digest, see
    #: :class:`crmkit.incremental.scan.Listing`), how many files the loader took from
    #: it, and the problems it found there; in the loader's order.  Empty when the
    #: load had no walk to go by.
    folders: dict[str, tuple[bytes, int, tuple[Any, ...]]] = field(default_factory=dict)


def read_kept(root: Path) -> dict[str, Any] | None:
    """The state file's parts (``files``, ``rules``), if it was written by this version
    of crmkit on this machine."""
    with gc_paused():
        stored = read_checked(root / STATE_FILE, MAGIC)
    if not isinstance(stored, tuple) or len(stored) != 2 or stored[0] != _VERSION \
            or not isinstance(stored[1], dict):
        return None
    return stored[1]


def write_kept(root: Path, parts: dict[str, Any]) -> bool:
    return write_checked(root / STATE_FILE, MAGIC, (_VERSION, parts))


class ParseCache:
    """The records of each file read before, by path and key (size, mtime).

    ``crmkit watch`` keeps one in memory across reloads: what it parses stays in
    memory (:meth:`put`).  A load turns what it read into the next :class:`Files`
    (:meth:`keep`), which :meth:`save` writes."""

    def __init__(self, root: Path | None, fingerprint: str | None = None,
                 kept: Files | None = None) -> None:
        """``root=None``: nothing is read or written.  ``fingerprint=None`` takes the
        stored files whatever they were made with; :meth:`use_fingerprint` then drops
        them if that does not match."""
        self.root = root
        self.fingerprint = fingerprint or ""
        self.hits = 0
        self.misses = 0
        if kept is None and root is not None:
            stored = read_kept(root)
            found = stored.get("files") if stored else None
            kept = found if isinstance(found, Files) else None
        if kept is not None and fingerprint is not None and kept.fingerprint != fingerprint:
            kept = None
        if kept is not None:
            self.fingerprint = fingerprint or kept.fingerprint
        self.index: FileIndex | None = kept.index if kept is not None else None
        folder = (root or Path(".")) / CACHE_DIR
        self.store = BlobLog(folder, kept.blobs if kept is not None else None)
        #: Parsed in this process: (key, parts), pickled when kept.
        self.fresh: dict[str, tuple[Key, Any]] = {}
        #: With ``reuse_loaded`` (``crmkit watch``, which loads again in the same
        #: process): the parts read from the store, handed out again as the very same
        #: objects while the file's key stays (records are immutable).
        self.reuse_loaded = False
        self.loaded: dict[str, tuple[Key, Any]] = {}
        #: Files too new to trust, as read: never handed out again, but the index
        #: still names the customers they hold (a file that vanishes must say whose).
        self.racy: dict[str, tuple[Key, Any]] = {}
        #: Pickled by the parallel workers: (key, offset, length, digest, the ids the
        #: records name).
        self.written: dict[str, tuple[Key, int, int, bytes, str]] = {}
        #: What the last load read (written by :meth:`save`).
        self.files: Files | None = None

    @property
    def entries(self) -> int:
        """How many files' records are kept (known to be reusable or not)."""
        return (len(self.index.names) if self.index is not None else 0) + len(self.fresh)

    def use_fingerprint(self, fingerprint: str) -> None:
        """Forget every entry if what shapes the records has changed."""
        if fingerprint != self.fingerprint:
            self.index = None
            self.fresh.clear()
            self.loaded.clear()
            self.written.clear()
            self.fingerprint = fingerprint
            self.store = BlobLog(self.store.folder)

    def _indexed(self, rel: str, key: Key) -> Ref | None:
        index = self.index
        if index is None:
            return None
        i = index.position(rel)
        if i is None or index.sizes[i] != key[0] or index.mtimes[i] != key[1]:
            return None
        return index.blob(i)

    def has(self, rel: str, key: Key) -> bool:
        fresh = self.fresh.get(rel)
        if fresh is not None:
            return fresh[0] == key
        written = self.written.get(rel)
        if written is not None:
            return written[0] == key
        return self._indexed(rel, key) is not None

    def get(self, rel: str, key: Key) -> Any:
        """The file's parts if its key is the one kept, else ``None``."""
        fresh = self.fresh.get(rel)
        if fresh is not None and fresh[0] == key:
            self.hits += 1
            return fresh[1]
        written = self.written.get(rel)
        if written is not None and written[0] == key:
            parts = self._load(Ref(written[1], written[2], written[3]))
            if parts is not None:
                self.misses += 1  # parsed in this run, by a worker
                return parts
        loaded = self.loaded.get(rel)
        if loaded is not None and loaded[0] == key and fresh is None and written is None:
            self.hits += 1  # a full load in watch: no unpickling of 100,000 files again
            return loaded[1]
        ref = None if fresh is not None or written is not None else self._indexed(rel, key)
        if ref is not None:
            parts = self._load(ref)
            if parts is not None:
                self.hits += 1
                if self.reuse_loaded:
                    self.loaded[rel] = (key, parts)
                return parts
        self.misses += 1
        return None

    def _load(self, ref: Ref) -> Any:
        try:
            return pickle.loads(self.store.get(ref))
        except (BlobMissing, Exception):
            return None

    def put(self, rel: str, key: Key, parts: Any) -> None:
        if too_new(key[1]):
            self.forget(rel)
            self.racy[rel] = (key, parts)
            return
        self.fresh[rel] = (key, parts)

    def forget(self, rel: str) -> None:
        self.fresh.pop(rel, None)
        self.written.pop(rel, None)
        self.racy.pop(rel, None)
        self.loaded.pop(rel, None)

    def keep(self, order: list[tuple[str, Key | None]], ids_of: Callable[[str, Any], str]
             ) -> FileIndex:
        """The index of the files a load read (``order``), their blobs written: those
        parsed in this process are pickled now, the others keep theirs."""
        builder = IndexBuilder()
        add, add_ref = builder.add, builder.add_ref
        index = self.index
        fresh_of, written_of = self.fresh.get, self.written.get
        for rel, key in order:
            written = written_of(rel)
            if written is not None and written[0] == key:  # most files of a cold start
                add(rel, key, written[4], written[1], written[2], written[3])
                continue
            fresh = fresh_of(rel)
            if key is None:
                add(rel, key, "", -1, 0, NO_DIGEST)
            elif fresh is not None and fresh[0] == key:
                ref = None
                if not too_new(key[1]):
                    try:
                        ref = self.store.put(_dumps(fresh[1]))
                    except Exception:
                        ref = None
                add_ref(rel, key, ids_of(rel, fresh[1]), ref)
            elif index is not None and (i := index.position(rel)) is not None \
                    and index.key(i) == key:
                add(rel, key, index.refs[i], index.offsets[i], index.lengths[i],
                    index.digests[16 * i:16 * i + 16])
            else:
                racy = self.racy.get(rel)
                add(rel, key, ids_of(rel, racy[1]) if racy and racy[0] == key else "", -1, 0,
                    NO_DIGEST)
        if not self.store.flush():
            builder = _without_pending(builder)
        built = builder.build()
        compacted = compact(self.store, built, ())
        if compacted is not None:
            self.store = compacted
        return built

    def save(self) -> None:
        """Write what the last load read (the rules' results are the state's business:
        :mod:`crmkit.incremental.state` writes both)."""
        if self.root is None or self.files is None:
            return
        if write_kept(self.root, {"files": self.files, "rules": None}):
            self.store.remove_others()


def compact(store: BlobLog, index: FileIndex, others: Any) -> BlobLog | None:
    """A new blob file with only the blobs ``index`` and ``others`` (refs) refer to, if
    the current one is mostly dead weight (the index and refs are updated in place)."""
    extra = list(others)
    used = sum(length for offset, length in zip(index.offsets, index.lengths, strict=True)
               if offset >= 0)
    if not store.worth_compacting(used + sum(r.length for r in extra)):
        return None
    live = [index.blob(i) for i in range(len(index.names)) if index.offsets[i] >= 0]
    new = store.compacted([*live, *extra])  # type: ignore[list-item]
    if new is None:
        return None
    j = 0
    for i in range(len(index.names)):
        if index.offsets[i] >= 0:
            index.offsets[i] = live[j].offset  # type: ignore[union-attr]
            j += 1
    return new


def _without_pending(builder: IndexBuilder) -> IndexBuilder:
    """The blob file could not be written: the blobs not written are not kept."""
    for i, _ in builder.pending:
        builder.offsets[i] = -1
    builder.pending.clear()
    return builder


def _dumps(value: Any) -> bytes:
    return pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)


def too_new(mtime_ns: int) -> bool:
    """Whether a file was modified too recently to trust its mtime: a second edit of
    the same size within the clock's resolution would not change it ("racy")."""
    return mtime_ns >= time.time_ns() - RACY_WINDOW_NS


@contextlib.contextmanager
def gc_paused() -> Iterator[None]:
    """Pause the cyclic garbage collector while 100,000s of records are built.

    Records hold no reference cycles, but as the heap grows every few thousand
    new objects trigger a collection that walks all of them again: unpickling
    the cache of 110,000 files took 4.4 s with the collector and 1.6 s without.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def file_key(stat: os.stat_result) -> Key:
    return (stat.st_size, stat.st_mtime_ns)
