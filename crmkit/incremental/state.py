"""Between runs: what the last run read and computed, so that the next reads only what changed.

At 100,000 files a one-off command spends seconds on records that did not
change: reading them back from the parse cache, linking them, and computing
every rule for every customer again.  So a run keeps, in
``.crmkit/cache/state.pickle`` and the blob file beside it (both signed with this
machine's key, :mod:`crmkit.incremental.signing`):

* what the loader read (:class:`crmkit.incremental.cache.Files`): every record
  file's size and mtime, the customer ids its records name, the loader's
  problems in it, and its records as a blob; the customers and the files of
  their histories;
* the rules' results (:meth:`crmkit.incremental.memo.Memo.export`).

The next run walks the record folders as always (a change is found by size and
mtime), reads the files that changed, and starts from the kept state: a
customer's record and history are unpickled only when something asks for them,
and the memo recomputes a rule only for the customers whose files changed.
Problems of unchanged files are the kept ones; when customers appear or
disappear, every file that names them, or names a customer that does not exist
(its did-you-mean may change), is read again.

The files are kept under a fingerprint of what shapes the records (types, time
zone, currency, crmkit's version); the rules' results under a fingerprint of
crmkit's and every installed plugin's code, the workspace's plugins,
``crmkit.yaml``, ``playbooks/`` and the ``CRMKIT_*`` variables.  What this path does
not handle (a broken customer file or a duplicate id, then or now; more than
:data:`MAX_CHANGED` changed files) is loaded in full, which is always right.  A
property test (``tests/test_state.py``) compares runs that start from the state
with fresh runs after random edits.
"""

from __future__ import annotations

import array
import datetime as dt
import hashlib
import itertools
import os
import pickle
import sys
from collections.abc import Callable, Container, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from .. import __version__
from ..loading.loader import (
    PLAYBOOK_FOLDER,
    RECORD_FOLDERS,
    Folders,
    Prepared,
    SettingsFiles,
    deals_index,
    deals_moved,
    deals_of,
    folder_files,
    ids_of,
    interaction_file_problems,
    iter_files,
    prepare,
    read_records,
    referral_problems,
    with_plugin_checks,
)
from ..model import Customer, Interaction, LoadStats, Workspace
from ..model.diagnostics import Diagnostic
from . import scan
from .blobs import BlobLog, BlobMissing, Ref
from .cache import (
    RACY,
    SEPARATOR,
    FileIndex,
    Files,
    compact,
    gc_paused,
    read_kept,
    too_new,
    write_kept,
)
from .memo import BrokenState, Memo

if TYPE_CHECKING:
    from ..engine.plugins import PluginHost
    from ..engine.registry import Registry

#: More changed files than this: a full load (through the parse cache) is as quick.
MAX_CHANGED = 2000
LOCAL_PLUGIN_DIR = "plugins"
FORMAT = 2

#: A customer's record and history.
Record = tuple[Customer, tuple[Interaction, ...]]


@dataclass
class Pending:
    """What to keep when the run ends: ``files`` (whose index may still refer to blobs
    not written: ``unwritten``) and the memo's results."""

    files: Files
    store: BlobLog
    unwritten: list[tuple[int, Ref]] = field(default_factory=list)


@dataclass
class Kept:
    """What the last run kept, as read."""

    files: Files | None
    #: The rules' results, if they were computed with the same code and settings.
    memo: Memo | None
    #: The day for which every rule's results were computed (see ``App.warm_up``).
    warmed: dt.date | None = None


def fingerprint(root: Path, plugins: str = "") -> str:
    """A digest of what shapes the rules' results besides the records (``plugins``: which
    of the workspace's plugins run, see ``App.host``)."""
    from .replay import code_files

    digest = hashlib.blake2b(digest_size=20)
    environment = sorted((k, v) for k, v in os.environ.items() if k.startswith("CRMKIT_"))
    digest.update(repr((FORMAT, __version__, sys.version, str(root), environment,
                        plugins)).encode())
    digest.update(b"".join(code_files()))
    try:
        digest.update((root / "crmkit.yaml").read_bytes())
    except OSError:
        digest.update(b"\0missing")
    for folder in (LOCAL_PLUGIN_DIR, PLAYBOOK_FOLDER):  # plugin code; reminder kinds
        _digest_folder(digest, root / folder)
    return digest.hexdigest()


def _digest_folder(digest: Any, folder: Path) -> None:
    """Every file below ``folder``: its name and content."""
    if not folder.is_dir():
        return
    digest.update(f"\0{folder.name}/\0".encode())
    for dirpath, dirnames, filenames in sorted(os.walk(folder)):
        dirnames[:] = sorted(d for d in dirnames if d not in scan.SKIPPED_DIRS)
        for name in sorted(filenames):
            path = os.path.join(dirpath, name)
            digest.update(f"\0{os.path.relpath(path, folder)}\0".encode())
            try:
                with open(path, "rb") as handle:
                    digest.update(handle.read())
            except OSError:
                digest.update(b"\0unreadable")


def read(root: Path, plugins: str = "") -> Kept:
    """What the last run kept (nothing, if it is unusable)."""
    stored = read_kept(root) or {}
    files = stored.get("files")
    if not isinstance(files, Files):
        return Kept(None, None)
    rules = stored.get("rules")
    if not (isinstance(rules, tuple) and len(rules) == 3 and rules[0] == fingerprint(root, plugins)
            and rules[1] is not None):
        return Kept(files, None)
    try:
        memo = Memo.restore(*rules[1], BlobLog(files_folder(root), files.blobs))
    except Exception:
        return Kept(files, None)
    return Kept(files, memo, rules[2])


def files_folder(root: Path) -> Path:
    from .signing import CACHE_DIR

    return root / CACHE_DIR


def write(root: Path, pending: Pending, memo: Memo | None, warmed: dt.date | None = None,
          plugins: str = "") -> bool:
    """Keep ``pending`` and what ``memo`` holds for the next run: new blobs are appended
    to the blob file, then the (small) state file is replaced.  ``warmed``: the day
    every rule was computed for, if so."""
    files, store = pending.files, pending.store
    with gc_paused():
        kept = None
        if memo is not None and memo.active:
            try:
                kept = memo.export(store)
            except Exception:
                kept = None
        if not store.flush():
            return False
        for i, ref in pending.unwritten:
            files.index.offsets[i] = ref.offset
        compacted = compact(store, files.index, memo.refs() if kept and memo else ())
        if compacted is not None:
            store = compacted
            files.blobs = store.name
        rules = (fingerprint(root, plugins), kept, warmed) if kept is not None else None
        if not write_kept(root, {"files": files, "rules": rules}):
            return False
    if compacted is not None:
        store.remove_others()
    return True


# --- starting from the state -----------------------------------------------------------


class _Records:
    """The customers' records and histories, read from their files' blobs when first
    asked for (a file read in this run gives its records from ``parts``)."""

    def __init__(self, files: Files, store: BlobLog, parts: dict[str, Any],
                 reread: Callable[[str], Any] | None = None) -> None:
        self.files = files
        self.store = store
        self.parts = parts
        #: Reads an unchanged file again when its kept records cannot be read.
        self.reread = reread
        self.loaded: dict[str, Record] = {}
        self._read: dict[str, Any] = {}
        self._files_of: dict[str, list[str]] | None = None

    def _parts(self, rel: str) -> Any:
        found = self.parts.get(rel)
        if found is None:
            found = self._read.get(rel)
        if found is None:
            index = self.files.index
            i = index.position(rel)
            ref = index.blob(i) if i is not None else None
            try:
                if ref is None:
                    raise BlobMissing
                found = pickle.loads(self.store.get(ref))
            except Exception as exc:
                # the file is unchanged (the walk just saw its size and mtime): its
                # records are read from it again, as a full load would
                try:
                    if self.reread is None:
                        raise
                    found = self.reread(rel)
                except Exception:
                    raise BrokenState(f"the kept records of {rel} cannot be read") from exc
            self._read[rel] = found
        return found

    def _history_files(self, customer_id: str) -> list[str]:
        """The interaction files that name the customer (from the index, once)."""
        if self._files_of is None:
            found: dict[str, list[str]] = {}
            index = self.files.index
            for rel, joined in zip(index.names, index.refs, strict=True):
                if not joined or not rel.startswith("interactions/"):
                    continue
                if SEPARATOR in joined:
                    for cid in joined.split(SEPARATOR):
                        found.setdefault(cid, []).append(rel)
                else:
                    found.setdefault(joined, []).append(rel)
            self._files_of = found
        return self._files_of.get(customer_id, [])

    def history_without(self, customer_id: str, skip: Container[str] = ()
                        ) -> list[Interaction]:
        """The customer's kept interactions outside the files in ``skip`` (changed or
        gone: a file gone, or too new to trust last time, may have no records kept)."""
        if not self.files.lengths.get(customer_id):
            return []
        return [i for rel in self._history_files(customer_id) if rel not in skip
                for i in self._parts(rel)[0] if i.customer == customer_id]

    def customer(self, customer_id: str) -> Customer:
        found = self.loaded.get(customer_id)
        if found is not None:
            return found[0]
        return self._parts(self.files.customers[customer_id])[1]

    def __call__(self, customer_id: str) -> Record:
        found = self.loaded.get(customer_id)
        if found is None:
            customer = self.customer(customer_id)
            history = self.history_without(customer_id)
            history.sort(key=_sort_key)
            found = self.loaded[customer_id] = (customer, tuple(history))
        return found


class LazyCustomers(Mapping[str, Customer]):
    """The customers by id; a record is unpickled when it is first read."""

    def __init__(self, ids: Sequence[str], records: _Records) -> None:
        self._ids = dict.fromkeys(ids)
        self._records = records

    def __getitem__(self, customer_id: str) -> Customer:
        if customer_id not in self._ids:
            raise KeyError(customer_id)
        return self._records(customer_id)[0]

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)


class LazyHistories(Mapping[str, tuple[Interaction, ...]]):
    """Each customer's interactions (only customers who have any), read when asked for."""

    def __init__(self, lengths: dict[str, int], records: _Records) -> None:
        self._lengths = lengths
        self._records = records

    def __getitem__(self, customer_id: str) -> tuple[Interaction, ...]:
        if not self._lengths.get(customer_id):
            raise KeyError(customer_id)
        return self._records(customer_id)[1]

    def __contains__(self, customer_id: object) -> bool:
        return bool(self._lengths.get(customer_id))  # type: ignore[call-overload]

    def __iter__(self) -> Iterator[str]:
        return iter(self._lengths)

    def __len__(self) -> int:
        return len(self._lengths)


class LazyInteractions(Sequence[Interaction]):
    """Every linked interaction, oldest first: its length is known, the rest is put
    together from the histories when first read."""

    def __init__(self, count: int, histories: Mapping[str, tuple[Interaction, ...]]) -> None:
        self._count = count
        self._histories = histories
        self._all: tuple[Interaction, ...] | None = None

    def _everything(self) -> tuple[Interaction, ...]:
        if self._all is None:
            with gc_paused():
                merged = list(itertools.chain.from_iterable(self._histories.values()))
                merged.sort(key=_sort_key)  # sort keys are unique: the full load's order
            self._all = tuple(merged)
        return self._all

    def __len__(self) -> int:
        return self._count

    def __getitem__(self, index: Any) -> Any:
        return self._everything()[index]

    def __iter__(self) -> Iterator[Interaction]:
        return iter(self._everything())

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Sequence):
            return tuple(self) == tuple(other)
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]


def _sort_key(interaction: Interaction) -> tuple[object, ...]:
    return interaction.sort_key


class _FullLoad(Exception):
    """A change this path does not apply: load the workspace in full."""


def load(root: Path, files: Files, host: PluginHost | None, settings_file: SettingsFiles,
         today: dt.date | None, registry: Registry | None, memo: Memo,
         listing: scan.Listing | None) -> tuple[Workspace, Pending] | None:
    """The workspace from ``files`` and the files changed since, or ``None`` when only a
    full load gives the right answer.  Tells ``memo`` which customers changed."""
    prepared, registry = prepare(root, host, settings_file, registry)
    if not files.clean or files.fingerprint != prepared.fingerprint:
        return None
    try:
        return _load(root, files, prepared, host, today, registry, memo, listing)
    except _FullLoad:
        return None


def _walked(root: Path, files: Files, listing: scan.Listing | None, out: list[Diagnostic]
            ) -> tuple[list[str], array.array, array.array,
                       dict[str, tuple[bytes, int, tuple[Diagnostic, ...]]]]:
    """Every record file now, in the loader's order, with its size and mtime; and what
    the walk saw of each folder (for the next run)."""
    index = files.index
    if listing is not None and files.folders and _same_folders(files, listing):
        # Only folders whose digest changed (or with files too new to trust last time)
        # are looked at: if they hold the same files as before, the file list is the
        # same and only sizes and mtimes changed.
        sizes, mtimes = array.array("q", index.sizes), array.array("q", index.mtimes)
        folders = {}
        root_text = str(root.resolve())
        start = 0
        for rel_dir, (digest, count, problems) in files.folders.items():
            now = listing.digests[rel_dir]
            if now == digest and RACY not in index.sizes[start:start + count]:
                out.extend(problems)
                folders[rel_dir] = (digest, count, problems)
                start += count
                continue
            entries = listing.entries(rel_dir)
            found: list[Diagnostic] = []
            listed, _ = folder_files(root, root_text, rel_dir, entries or [], found)
            if entries is None or [rel for _, rel, _ in listed] != index.names[start:
                                                                              start + count]:
                break  # files came or went: the whole walk below
            for k, (_, _, st) in enumerate(listed, start=start):
                sizes[k] = st.st_size if st is not None else -1
                mtimes[k] = st.st_mtime_ns if st is not None else 0
            out.extend(found)
            folders[rel_dir] = (now, count, tuple(found))
            start += count
        else:
            return index.names, sizes, mtimes, folders
        del out[len(out) - sum(len(p) for _, _, p in folders.values()):]
    names: list[str] = []
    sizes, mtimes = array.array("q"), array.array("q")
    seen: Folders = {}
    for folder in RECORD_FOLDERS:
        for _, rel, st in iter_files(root, folder, out, listing, seen):
            names.append(rel)
            sizes.append(st.st_size if st is not None else -1)
            mtimes.append(st.st_mtime_ns if st is not None else 0)
    folders = {}
    if listing is not None and all(d in listing.digests for d in seen):
        folders = {d: (listing.digests[d], count, found) for d, (count, found) in seen.items()}
    return names, sizes, mtimes, folders


def _same_folders(files: Files, listing: scan.Listing) -> bool:
    """Whether the walk saw the very folders the last load went through."""
    now = [d for d in listing.digests if d.split("/", 1)[0] in RECORD_FOLDERS]
    return len(now) == len(files.folders) and all(d in files.folders for d in now)


def _load(root: Path, files: Files, prepared: Prepared, host: PluginHost | None,
          today: dt.date | None, registry: Registry | None, memo: Memo,
          listing: scan.Listing | None) -> tuple[Workspace, Pending]:
    out = list(prepared.problems)
    names, sizes, mtimes, folders = _walked(root, files, listing, out)
    index = files.index
    positions, removed = index.changes(names, sizes, mtimes)
    if len(positions) + len(removed) > MAX_CHANGED:
        raise _FullLoad
    store = BlobLog(files_folder(root), files.blobs)
    if not store.open():
        raise _FullLoad
    position = {rel: i for i, rel in enumerate(names)} if removed or positions else {}

    def folder_of(rel: str) -> str:
        return rel.split("/", 1)[0]

    parts: dict[str, Any] = {}

    def reread(i: int) -> None:
        rel = names[i]
        parts[rel] = read_records(str(root / rel), rel, prepared.builder(folder_of(rel), rel))

    for i in positions:
        reread(i)

    # Which customers there are now.
    before = files.customers
    customer_files = dict(before)
    for rel in removed:
        own = index.refs_of(rel)
        if folder_of(rel) == "customers" and own:
            if customer_files.get(own[0]) != rel:
                raise _FullLoad  # it was the second file of a duplicate id
            del customer_files[own[0]]
    fresh: dict[str, Customer] = {}

    def take_customer(rel: str) -> None:
        cid, customer, _ = parts[rel]
        if cid is None:
            return  # an invalid file name: its problems say so
        if customer is None:
            raise _FullLoad  # broken: its interactions are counted over every file
        if customer.aliases:
            raise _FullLoad  # records naming a former id are linked by the full load
        if customer_files.get(cid, rel) != rel:
            raise _FullLoad  # a duplicate id
        customer_files[cid] = rel
        fresh[cid] = customer

    for rel in list(parts):
        if folder_of(rel) == "customers":
            take_customer(rel)
    appeared = customer_files.keys() - before.keys()
    vanished = before.keys() - customer_files.keys()
    if appeared or vanished:
        # Files that name a customer who came or went, or one who does not exist (the
        # did-you-mean may change), are read again for their problems.
        moved = appeared | vanished
        for rel, named in index.all_refs():
            i = position.get(rel)
            if rel in parts or i is None:
                continue
            if folder_of(rel) == "customers":
                named = named[1:]  # the file's own id is not a reference
            if any(n in moved or n not in before for n in named):
                reread(i)
                if folder_of(rel) == "customers":
                    take_customer(rel)
    ids = sorted(customer_files)
    known = MappingProxyType(customer_files)

    # Problems of every file read again.
    problems = dict(files.problems)
    for rel in removed:
        problems.pop(rel, None)
    for rel, found in parts.items():
        folder = folder_of(rel)
        if folder == "customers":
            customer = found[1]
            listed = [*found[2], *(referral_problems(customer, known, {}) if customer else ())]
        elif folder == "interactions":
            listed = interaction_file_problems(found, known)
        else:
            listed = []  # with every deal file's, below
        if listed:
            problems[rel] = tuple(listed)
        else:
            problems.pop(rel, None)

    # The deals: few, so all of them again if any deal or customer changed.
    deal_files = files.deals
    deals_changed = bool(appeared or vanished) or any(
        folder_of(rel) == "deals" for rel in (*parts, *removed))
    if deals_changed:
        deal_files = {rel: parts[rel] if rel in parts else files.deals[rel]
                      for rel in names if folder_of(rel) == "deals"}
        for rel in deal_files:
            problems.pop(rel, None)
    deals, deal_problems = deals_of(deal_files, known, {})
    deal_customers: set[str] = set()  # whose deals differ: their rules read them
    if deals_changed:
        for problem in deal_problems:
            path = problem.location.path if problem.location else ""
            problems[path] = (*problems.get(path, ()), problem)
        deal_customers = deals_moved(deals_index(deals_of(files.deals, known, {})[0]),
                                     deals_index(deals))

    # Histories of the customers whose interaction files changed.
    records = _Records(files, store, parts, lambda rel: read_records(
        str(root / rel), rel, prepared.builder(folder_of(rel), rel)))
    touched = {rel for rel in (*parts, *removed) if folder_of(rel) == "interactions"}
    affected: set[str] = set()
    arriving: dict[str, list[Interaction]] = {}
    for rel in touched:
        affected.update(index.refs_of(rel))
        if rel in parts:
            for record in parts[rel][0]:
                arriving.setdefault(record.customer, []).append(record)
    affected.update(arriving)
    lengths = dict(files.lengths)
    histories: dict[str, tuple[Interaction, ...]] = {}
    for cid in affected:
        if cid not in customer_files:
            continue
        history = records.history_without(cid, touched) if cid in before else []
        history.extend(arriving.get(cid, ()))
        history.sort(key=_sort_key)
        histories[cid] = tuple(history)
    for cid in affected | vanished:
        lengths.pop(cid, None)
    for cid, history in histories.items():
        if history:
            lengths[cid] = len(history)
    for cid in appeared:
        histories.setdefault(cid, ())
    now: dict[str, Record] = {}
    for cid in fresh.keys() | histories.keys():
        now[cid] = (fresh[cid] if cid in fresh else records.customer(cid),
                    histories[cid] if cid in histories else records(cid)[1])
    records.loaded.update(now)

    ordered_lengths = {cid: lengths[cid] for cid in ids if cid in lengths}
    found_problems: list[Diagnostic] = list(out)
    for listed_problems in problems.values():
        found_problems.extend(listed_problems)
    customers = LazyCustomers(ids, records)
    by_customer = LazyHistories(ordered_lengths, records)
    workspace = Workspace(
        root=root, settings=prepared.settings, customers=customers,
        interactions=LazyInteractions(sum(ordered_lengths.values()), by_customer),
        deals=MappingProxyType(deals), diagnostics=(), by_customer=by_customer,
        deals_by_customer=deals_index(deals),
        stats=LoadStats(len(names), len(parts), len(names) - len(parts)))
    memo.changed(now.keys() | vanished | deal_customers)
    workspace = with_plugin_checks(workspace, found_problems, host, today, registry, memo)

    # What the next run starts from.
    unwritten: list[tuple[int, Ref]] = []
    if parts or removed:
        index = _updated_index(index, names, sizes, mtimes, removed, parts, position, store,
                               unwritten)
    kept = Files(files.fingerprint, index, store.name, problems,
                 dict(sorted(customer_files.items())), ordered_lengths, deal_files, clean=True,
                 folders=folders)
    return workspace, Pending(kept, store, unwritten)


def _updated_index(index: FileIndex, names: list[str], sizes: array.array,
                   mtimes: array.array, removed: list[str], parts: dict[str, Any],
                   position: dict[str, int], store: BlobLog,
                   unwritten: list[tuple[int, Ref]]) -> FileIndex:
    """The index after the files in ``parts`` were read again (their blobs to be
    written: ``unwritten``) and those ``removed`` are gone."""
    if not removed and names == index.names:
        refs = list(index.refs)
        offsets, lengths = array.array("q", index.offsets), array.array("q", index.lengths)
        digests = bytearray(index.digests)
    else:
        old = [index.position(rel) for rel in names]
        refs = [index.refs[j] if j is not None else "" for j in old]
        offsets = array.array("q", (index.offsets[j] if j is not None else -1 for j in old))
        lengths = array.array("q", (index.lengths[j] if j is not None else 0 for j in old))
        digests = bytearray(b"".join(index.digests[16 * j:16 * j + 16] if j is not None
                                     else bytes(16) for j in old))
    for rel, found in parts.items():
        i = position[rel]
        refs[i] = ids_of(rel, found)
        if too_new(mtimes[i]) or sizes[i] < 0:
            sizes[i] = RACY
            offsets[i] = -1
            continue
        ref = store.put(pickle.dumps(found, protocol=pickle.HIGHEST_PROTOCOL))
        unwritten.append((i, ref))
        offsets[i], lengths[i] = -1, ref.length
        digests[16 * i:16 * i + 16] = ref.digest
    return FileIndex(names, sizes, mtimes, refs, offsets, lengths, bytes(digests))

