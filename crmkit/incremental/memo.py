"""Rule results kept while their inputs are the same, in ``crmkit watch`` and between runs.

The engine (:mod:`crmkit.engine.evaluate`) asks for every rule through here.
What a per-customer rule reads is known exactly (the registration says it): the
customer's record and history, the day, the rule's options, and the columns of
the labels and metrics it declared.  So a kept value is valid unless

* the customer's files changed (:meth:`Memo.changed`, told by
  :mod:`crmkit.incremental.reload` in watch and by :mod:`crmkit.incremental.state`
  between runs), or
* the customer's value in one of the declared columns differs from last time
  (columns that are the very same object are skipped in one step), or
* the options changed (the table starts over).

A step over all customers' parts (``across``) is kept while its inputs are equal.
When a recomputed value equals the kept one, the kept object stays (early
cutoff), so whoever reads it skips it in one step too.

Between runs the tables are kept one by one (:meth:`Memo.export`): a run loads
only the tables it asks for, and writes back only those it changed.  A table
names the columns it was computed from by the version of the table they came
from; if that table moved on without it, it is computed afresh.  Changes of runs
that did not load a table are logged and applied when it is loaded.  No plugin
sees any of this: a rule is a plain function.
"""

from __future__ import annotations

import bisect
import copyreg
import dataclasses
import datetime as dt
import io
import itertools
import operator
import pickle
import zlib
from collections.abc import Callable, Hashable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .blobs import BlobLog, Ref

V = TypeVar("V")
#: Days whose values are kept (today, a week ago for comparisons, and after midnight).
KEEP_DAYS = 4
#: Changes remembered: a table not used for longer is computed afresh.
KEEP_CHANGES = 64
#: Runs whose changes are remembered for tables kept on disk.
KEEP_EPOCHS = 64
_MISSING = object()

#: What a per-customer computation returns: values, and the failures by customer.
Computed = tuple[dict[str, Any], dict[str, Any]]
#: A table or whole value on disk: (epoch written, version, pickled content: for a
#: table its header and its parts, see :func:`_shards`).
Stored = tuple[int, tuple[int, int], Any]
TableKey = tuple[dt.date | None, Hashable]


class _Table:
    """One rule's kept values on one day, valid as of ``generation``."""

    __slots__ = ("columns", "dirty", "failures", "generation", "ids", "result", "shards",
                 "shared", "stale", "touched", "values", "version")

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.values: dict[str, Any] = {}
        self.failures: dict[str, Any] = {}
        self.shared: Hashable = None
        self.columns: tuple[Any, ...] | None = None
        self.ids: list[str] | None = None
        self.result: dict[str, Any] | None = None
        #: Customers whose files changed since the last call.
        self.stale: set[str] = set()
        #: Names the result this table hands out: (the run's epoch, a count), new with
        #: every new result, so that a table kept between runs knows what it was
        #: computed from.
        self.version: tuple[int, int] = (0, 0)
        #: Differs from what is on disk (to be written back).
        self.dirty = True
        #: As loaded from disk: the values in :data:`SHARDS` pickled parts, and the
        #: customers whose values changed since (only their parts are pickled again).
        self.shards: tuple[bytes, ...] | None = None
        self.touched: set[str] = set()

    def clear(self) -> None:
        self.values = {}  # a new one: results handed out earlier may read the old one
        self.failures.clear()
        self.stale.clear()
        self.columns = self.ids = self.result = self.shards = None
        self.dirty = True


class _Whole:
    __slots__ = ("dirty", "inputs", "value", "version")

    def __init__(self, inputs: tuple[Any, ...], value: Any, version: tuple[int, int]) -> None:
        self.inputs = inputs
        self.value = value
        self.version = version
        self.dirty = True


class Memo:
    """Inactive (every call computes) unless a caller turns it on: ``crmkit watch``,
    and a one-off run that keeps its results for the next (:mod:`.state`)."""

    def __init__(self, active: bool = False) -> None:
        self.active = active
        self.generation = 0
        self._changes: dict[int, frozenset[str]] = {}
        self._days: dict[dt.date | None, tuple[dict[Hashable, _Table],
                                                dict[Hashable, _Whole],
                                                dict[Hashable, Any]]] = {}
        # -- kept between runs --
        #: The runs so far that saved (each run's changes are logged under its epoch).
        self.epoch = 0
        self._log: dict[int, frozenset[str]] = {}
        #: Tables and whole values on disk, not loaded yet.
        self._stored: dict[tuple[str, dt.date | None, Hashable], Stored] = {}
        #: Loaded tables' results as they were on disk (what others were computed from).
        self._loaded: dict[tuple[str, dt.date | None, Hashable],
                           tuple[tuple[int, int], Any]] = {}
        #: Customers changed in this run (logged when it saves).
        self._changed_now: set[str] = set()
        #: What was on disk, to write back unchanged.
        self._original: dict[tuple[str, dt.date | None, Hashable], Stored] = {}
        #: Where the tables' parts are (:mod:`crmkit.incremental.blobs`).
        self.store: BlobLog | None = None
        self._exported: dict[tuple[str, Any, Any], Stored] = {}
        #: What happened to each table in this process (for ``--verbose``).
        self._kept: set[Hashable] = set()
        self._updated: set[Hashable] = set()
        self._computed: set[Hashable] = set()
        self._recomputed: set[str] = set()
        self._counter = itertools.count(1)

    def _new_version(self) -> tuple[int, int]:
        return (self.epoch + 1, next(self._counter))

    def changed(self, customer_ids: frozenset[str] | set[str] | list[str]) -> None:
        """Say that these customers' records or histories were replaced: their kept
        values are out of date.  (Whoever changes a loaded workspace must call this.)"""
        self.generation += 1
        self._changes[self.generation] = frozenset(customer_ids)
        self._changes.pop(self.generation - KEEP_CHANGES, None)
        self._changed_now.update(customer_ids)

    def _changed_since(self, generation: int) -> set[str] | None:
        if generation < self.generation - KEEP_CHANGES + 1:
            return None
        found: set[str] = set()
        for g in range(generation + 1, self.generation + 1):
            found.update(self._changes[g])
        return found

    def _day(self, day: dt.date | None) -> tuple[dict[Hashable, _Table], dict[Hashable, _Whole],
                                                 dict[Hashable, Any]]:
        kept = self._days.get(day)
        if kept is None:
            if len(self._days) >= KEEP_DAYS:
                del self._days[next(iter(self._days))]
            kept = self._days[day] = ({}, {}, {})
        return kept

    def _table(self, key: Hashable, day: dt.date | None) -> _Table:
        tables = self._day(day)[0]
        table = tables.get(key)
        if table is None:
            table = tables[key] = self._load_table(key, day) or _Table(self.generation)
        elif table.generation != self.generation:
            changed = self._changed_since(table.generation)
            if changed is None:
                table.clear()
            elif changed:  # recomputed on the next call; the old values stay to compare with
                table.stale.update(changed)  # (on disk, the log of changes says as much)
            table.generation = self.generation
        return table

    def per_customer(self, key: Hashable, day: dt.date | None, ids: list[str],
                     compute: Callable[[list[str]], Computed], columns: tuple[Any, ...] = (),
                     shared: Hashable = None) -> tuple[dict[str, Any], dict[str, Any]]:
        """``compute``'s value for each of ``ids``, and the failures: kept per customer
        while the customer is not :meth:`changed`, their value in each of ``columns``
        (dicts by customer id, or whole-population values) is equal and ``shared``
        is equal.  Returns the same dict object as last time when nothing moved."""
        if not self.active:
            return compute(ids)
        table = self._table(key, day)
        if table.result is not None:
            self._kept.add((key, day))
        if table.shared != shared or table.columns is None \
                or len(table.columns) != len(columns):
            table.clear()
            table.shared = shared
        values = table.values
        todo = table.stale
        table.stale = set()
        same_ids = table.ids is not None and ids == table.ids
        moved_in_columns = None if table.columns is None else _moved_in(
            table.columns, columns, ids)
        if moved_in_columns is None:  # new, or a whole-population value changed
            todo = set(ids)
        else:
            todo.update(moved_in_columns)
        if table.columns is None or any(map(operator.is_not, table.columns, columns)):
            table.columns = columns
            table.dirty = True
        if not same_ids:
            known = set(ids)
            for cid in [c for c in values if c not in known]:
                del values[cid]
                table.failures.pop(cid, None)
                table.touched.add(cid)
            todo.update(cid for cid in ids if cid not in values)
        moved = False
        order = _in_order(todo, ids)
        where = (key, day)
        if order:
            if len(order) == len(ids):
                self._computed.add(where)
            elif where not in self._computed:
                self._updated.add(where)
                self._recomputed.update(order)
            computed, failures = compute(order)
            if table.result is None and type(values) is dict and not values \
                    and len(order) == len(ids):
                # the first computation (a cold run): everything is new, in order
                table.values = dict(computed)
                table.failures.update(failures)
                table.version = self._new_version()
                table.result, table.ids, table.dirty = computed, list(ids), True
                return computed, table.failures
            kept_failures = table.failures
            for cid in order:
                new = computed[cid]
                old = values.get(cid, _MISSING)
                if old is _MISSING or not _equal(old, new):
                    values[cid] = new  # else the old object stays: readers skip it
                    table.touched.add(cid)
                    moved = True
                failure = failures.get(cid, _MISSING)
                if failure is not kept_failures.get(cid, _MISSING):
                    if failure is _MISSING:
                        del kept_failures[cid]
                    else:
                        kept_failures[cid] = failure
                    table.dirty = True
            if moved:
                table.dirty = True
        if same_ids and table.result is not None:
            if not moved:
                return table.result, table.failures
            table.version = self._new_version()
            kept = table.result
            if isinstance(kept, _Column | _Changed):
                # kept from the last run, read part by part: the new result names the
                # changes over it instead of reading every part
                base = kept.base if isinstance(kept, _Changed) else kept
                changes = dict(kept.changes) if isinstance(kept, _Changed) else {}
                for cid in order:
                    changes[cid] = values[cid]
                if len(changes) < len(ids) // 4:
                    table.result = _Changed(base, changes)
                    return table.result, table.failures
            elif len(order) < len(ids) // 4:
                # the same order: the last result with the new values, which remembers
                # what it was made from
                table.result = _Updated(kept, order, values)
                return table.result, table.failures
        result = {cid: values[cid] for cid in ids}
        table.version = self._new_version()
        table.result, table.ids = result, list(ids)
        table.dirty = True
        return result, table.failures

    def summary(self) -> str:
        """One line on what was kept and what computed (``--verbose``)."""
        from ..engine.i18n import cli_ngettext as ngettext

        kept = {k for k in self._kept if k not in self._computed and k not in self._updated}
        return ngettext("rule results: %(computed)d computed, %(kept)d kept from earlier runs, "
                        "%(updated)d updated for %(num)d customer",
                        "rule results: %(computed)d computed, %(kept)d kept from earlier runs, "
                        "%(updated)d updated for %(num)d customers", len(self._recomputed)) % {
            "computed": len(self._computed), "kept": len(kept), "updated": len(self._updated),
            "num": len(self._recomputed)}

    def whole(self, key: Hashable, day: dt.date | None, inputs: tuple[Any, ...],
              compute: Callable[[], V]) -> V:
        """``compute()``, kept while ``inputs`` are equal to last time's (a step over all
        customers' parts, such as ranking them, whose inputs rarely change)."""
        if not self.active:
            return compute()
        wholes = self._day(day)[1]
        kept = wholes.get(key)
        if kept is None:
            kept = self._load_whole(key, day)
            if kept is not None:
                wholes[key] = kept
        if kept is not None and _same(kept.inputs, inputs):
            return kept.value  # type: ignore[no-any-return]
        value = compute()
        if kept is not None and _equal(kept.value, value):
            kept.inputs, kept.dirty = inputs, True  # the same value: its object stays
            return kept.value  # type: ignore[no-any-return]
        wholes[key] = _Whole(inputs, value, self._new_version())
        return value

    def state(self, key: Hashable, day: dt.date | None, make: Callable[[], V]) -> V:
        """An object kept for ``key`` and ``day`` in this process (made afresh when the
        memo is off; never kept between runs)."""
        if not self.active:
            return make()
        states = self._day(day)[2]
        kept = states.get(key, _MISSING)
        if kept is _MISSING:
            kept = states[key] = make()
        return kept  # type: ignore[no-any-return]

    def one(self, key: Hashable, day: dt.date | None, customer_id: str,
            compute: Callable[[], V]) -> V:
        """One customer's value of something that depends on their data and the day
        alone (the derived values; never kept between runs)."""
        if not self.active:
            return compute()
        states = self._day(day)[2]
        table = states.get(key)
        if table is None:
            table = states[key] = _Table(self.generation)
        elif table.generation != self.generation:
            changed = self._changed_since(table.generation)
            if changed is None:
                table.values.clear()
            else:
                for cid in changed:
                    table.values.pop(cid, None)
            table.generation = self.generation
        value = table.values.get(customer_id, _MISSING)
        if value is _MISSING:
            value = table.values[customer_id] = compute()
        return value  # type: ignore[no-any-return]

    def outputs_to_make(self, key: Hashable, day: dt.date | None, ids: list[str],
                        columns: tuple[Any, ...], shared: Any) -> set[str] | None:
        """Which customers' outputs (one page each) must be made again since the last
        :meth:`outputs_made` for ``key``: those :meth:`changed` since, new ones, and
        those whose value in one of ``columns`` differs; ``None`` for everybody (the
        memo is off, nothing was made for this day yet, ``shared`` differs, or the
        changes are too old to know).  Customers that are gone are not named."""
        if not self.active:
            return None
        kept = self._day(day)[2].get(("outputs", key))
        if kept is None:
            return None
        generation, old_columns, old_shared, old_ids = kept
        if len(old_columns) != len(columns) or not _equal(old_shared, shared):
            return None
        changed = self._changed_since(generation)
        if changed is None:
            return None
        moved_in_columns = _moved_in(old_columns, columns, ids)
        if moved_in_columns is None:
            return None
        todo = set(changed) | moved_in_columns
        if ids != old_ids:
            todo.update(set(ids).difference(old_ids))
        return todo

    def outputs_made(self, key: Hashable, day: dt.date | None, ids: list[str],
                     columns: tuple[Any, ...], shared: Any) -> None:
        """Say that the outputs of ``key`` were made for ``ids`` from ``columns`` and
        ``shared`` (kept in this process only, like :meth:`state`)."""
        if self.active:
            self._day(day)[2][("outputs", key)] = (self.generation, columns, shared, ids)

    # --- between runs ---------------------------------------------------------------

    def export(self, store: BlobLog) -> tuple[int, dict[int, frozenset[str]],
                                              dict[tuple[str, Any, Any], Stored]]:
        """What to keep for the next run: the epoch, the log of changes, and every table
        and whole value (those this run changed pickled afresh, the rest as they were).
        Values that cannot be pickled are left out (computed afresh next time)."""
        epoch = self.epoch + 1
        log = {e: c for e, c in self._log.items() if e > epoch - KEEP_EPOCHS}
        log[epoch] = frozenset(self._changed_now)
        days = _days_to_keep(list(self._days), self._stored)
        stored = {k: v for k, v in self._stored.items()
                  if k[1] in days and v[0] > epoch - KEEP_EPOCHS}
        refs: dict[int, tuple[Any, ...]] = {}
        for (what, day, key), (version, value) in self._loaded.items():
            refs[id(value)] = (what, day, key, version)
        for day, (tables, wholes, _) in self._days.items():
            for key, table in tables.items():
                self._table(key, day)  # the changes since it was last used, into its stale set
                if table.result is not None:
                    refs[id(table.result)] = ("t", day, key, table.version)
            for key, whole in wholes.items():
                refs[id(whole.value)] = ("w", day, key, whole.version)
        for day, (tables, wholes, _) in self._days.items():
            if day not in days:
                continue
            for key, table in tables.items():
                where = ("t", day, key)
                if table.result is None:
                    stored.pop(where, None)
                elif not table.dirty and where in self._original:
                    stored[where] = self._original[where]
                else:
                    columns = tuple(_reference(c, refs) for c in table.columns or ())
                    header = (table.failures, table.shared, columns, table.ids, table.stale)
                    try:
                        payload = (store.put(_dumps(header)), _shards(table, store))
                    except Exception:  # a value that cannot be pickled: afresh next run
                        stored.pop(where, None)
                        continue
                    stored[where] = (epoch, table.version, payload)
            for key, whole in wholes.items():
                where = ("w", day, key)
                if not whole.dirty and where in self._original:
                    stored[where] = self._original[where]
                else:
                    inputs = tuple(_reference(i, refs) for i in whole.inputs)
                    try:
                        stored[where] = (epoch, whole.version,
                                         store.put(_dumps((inputs, whole.value))))
                    except Exception:
                        stored.pop(where, None)
        self._exported = stored
        return epoch, log, stored

    @classmethod
    def restore(cls, epoch: int, log: dict[int, frozenset[str]],
                stored: dict[tuple[str, Any, Any], Stored], store: BlobLog) -> Memo:
        """An active memo with what :meth:`export` kept; tables load when asked for."""
        memo = cls(active=True)
        memo.epoch, memo._log, memo._stored = epoch, dict(log), dict(stored)
        memo._original = dict(stored)
        memo.store = store
        return memo

    def refs(self) -> Iterator[Ref]:
        """Every blob that what :meth:`export` returned refers to."""
        for _, _, payload in self._exported.values():
            if isinstance(payload, tuple):
                yield payload[0]
                yield from payload[1]
            else:
                yield payload

    def _changes_after(self, epoch: int) -> set[str] | None:
        if epoch < self.epoch and epoch + 1 not in self._log:
            return None  # older than the log: nothing can be trusted
        found: set[str] = set()
        for e in range(epoch + 1, self.epoch + 1):
            found.update(self._log.get(e, ()))
        found.update(self._changed_now)
        return found

    def _load_table(self, key: Hashable, day: dt.date | None) -> _Table | None:
        entry = self._stored.pop(("t", day, key), None)
        if entry is None or self.store is None:
            return None
        epoch, version, (header, shards) = entry
        store = self.store
        try:
            failures, shared, columns, ids, stale = pickle.loads(store.get(header))
            blobs = [store.get(ref) for ref in shards]  # checked now, unpickled when read
        except Exception:
            return None
        table = _Table(self.generation)
        table.version = version
        changed = self._changes_after(epoch)
        resolved = [self._resolve(c) for c in columns]
        if changed is None or any(c is _MISSING for c in resolved) or len(blobs) != SHARDS:
            return table  # computed afresh: a new result (version) for its readers
        values = _Sharded(blobs)
        table.values, table.failures, table.shared, table.ids = values, failures, shared, ids
        table.columns = tuple(resolved)
        table.result = _Column(ids, values)
        table.stale = set(stale) | changed
        table.shards = shards
        table.dirty = False
        self._loaded[("t", day, key)] = (version, table.result)
        return table

    def _load_whole(self, key: Hashable, day: dt.date | None) -> _Whole | None:
        entry = self._stored.pop(("w", day, key), None)
        if entry is None or self.store is None:
            return None
        _, version, ref = entry
        try:
            inputs, value = pickle.loads(self.store.get(ref))
        except Exception:
            return None
        resolved = tuple(self._resolve(i) for i in inputs)
        if any(i is _MISSING for i in resolved):
            return _Whole((_MISSING,), value, version)  # inputs unknown: recomputed
        whole = _Whole(resolved, value, version)
        whole.dirty = False
        self._loaded[("w", day, key)] = (version, value)
        return whole

    def _resolve(self, reference: tuple[Any, ...]) -> Any:
        """A column or input as it was when the table was computed (``_MISSING`` if what
        it came from has moved on since)."""
        if reference[0] == "v":
            return reference[1]
        what, day, key, version = reference
        loaded = self._loaded.get((what, day, key))
        if loaded is None:
            if what == "t":
                self._table(key, day)
            else:
                whole = self._load_whole(key, day)
                if whole is not None:
                    self._day(day)[1][key] = whole
            loaded = self._loaded.get((what, day, key))
        if loaded is None or loaded[0] != version:
            return _MISSING
        return loaded[1]


def _reference(value: Any, refs: dict[int, tuple[Any, ...]]) -> tuple[Any, ...]:
    found = refs.get(id(value))
    return found if found is not None else ("v", value)


#: A table's values are kept in this many parts, by customer: a run that changes a
#: few customers pickles a few parts again, not 10,000 values.
SHARDS = 16


def _shard_of(customer_id: str) -> int:
    return zlib.crc32(customer_id.encode("utf-8", "surrogatepass")) % SHARDS


def _shards(table: _Table, store: BlobLog) -> tuple[Ref, ...]:
    """The table's values in :data:`SHARDS` pickled parts; the parts without a touched
    customer are the ones it was loaded from."""
    values = table.values
    old = table.shards
    if old is not None and len(old) == SHARDS:
        redo = {_shard_of(cid) for cid in table.touched}
    else:
        old, redo = None, set(range(SHARDS))
    if isinstance(values, _Sharded):
        parts = [values.current(i) if i in redo else {} for i in range(SHARDS)]
    else:
        parts = [{} for _ in range(SHARDS)]
        for cid, value in values.items():
            i = _shard_of(cid)
            if i in redo:
                parts[i][cid] = value
    return tuple(store.put(_dumps(parts[i])) if i in redo or old is None else old[i]
                 for i in range(SHARDS))


class _Sharded:
    """A kept table's values: :data:`SHARDS` parts by customer, each unpickled when a
    customer in it is first read (a run that changed a few customers reads a few).

    The parts as loaded never change (results handed out earlier read them, see
    :class:`_Column`); what this run computes goes to ``changes`` (and ``deleted``)."""

    __slots__ = ("blobs", "changes", "deleted", "parts")

    def __init__(self, blobs: list[bytes]) -> None:
        self.blobs: list[bytes | None] = list(blobs)
        self.parts: list[dict[str, Any] | None] = [None] * SHARDS
        self.changes: dict[str, Any] = {}
        self.deleted: set[str] = set()

    def part(self, i: int) -> dict[str, Any]:
        """Shard ``i`` as loaded."""
        found = self.parts[i]
        if found is None:
            blob = self.blobs[i]
            assert blob is not None
            try:
                found = pickle.loads(blob)
            except Exception as exc:  # checked against its digest: code that changed
                raise BrokenState(f"a kept rule result cannot be read: {exc}") from exc
            self.parts[i] = found
            self.blobs[i] = None
        return found

    def current(self, i: int) -> dict[str, Any]:
        """Shard ``i`` with this run's changes."""
        found = {cid: value for cid, value in self.part(i).items() if cid not in self.deleted}
        found.update((cid, value) for cid, value in self.changes.items()
                     if _shard_of(cid) == i)
        return found

    def loaded(self, cid: str, default: Any = None) -> Any:
        return self.part(_shard_of(cid)).get(cid, default)

    def get(self, cid: str, default: Any = None) -> Any:
        found = self.changes.get(cid, _MISSING)
        if found is not _MISSING:
            return found
        if cid in self.deleted:
            return default
        return self.part(_shard_of(cid)).get(cid, default)

    def __getitem__(self, cid: str) -> Any:
        found = self.get(cid, _MISSING)
        if found is _MISSING:
            raise KeyError(cid)
        return found

    def __setitem__(self, cid: str, value: Any) -> None:
        self.changes[cid] = value
        self.deleted.discard(cid)

    def __delitem__(self, cid: str) -> None:
        if cid not in self:
            raise KeyError(cid)
        self.changes.pop(cid, None)
        self.deleted.add(cid)

    def __contains__(self, cid: str) -> bool:
        return self.get(cid, _MISSING) is not _MISSING

    def __iter__(self) -> Iterator[str]:
        for i in range(SHARDS):
            yield from self.current(i)

    def items(self) -> Iterator[tuple[str, Any]]:
        for i in range(SHARDS):
            yield from self.current(i).items()


class BrokenState(Exception):
    """What the last run kept cannot be read after all (see :mod:`.state`)."""


class _Column(Mapping[str, Any]):
    """A kept table's result: its customers in order, each value read when asked for."""

    __slots__ = ("_ids", "_values", "ids")

    def __init__(self, ids: list[str], values: _Sharded) -> None:
        """``values``' parts as loaded: what this run computes does not show here."""
        self.ids = ids
        self._ids = dict.fromkeys(ids)
        self._values = values

    def __getitem__(self, cid: str) -> Any:
        if cid not in self._ids:
            raise KeyError(cid)
        return self._values.loaded(cid)

    def get(self, cid: str, default: Any = None) -> Any:
        return self._values.loaded(cid) if cid in self._ids else default

    def __contains__(self, cid: object) -> bool:
        return cid in self._ids

    def __iter__(self) -> Iterator[str]:
        return iter(self.ids)

    def __len__(self) -> int:
        return len(self.ids)


class _Updated(dict):  # type: ignore[type-arg]
    """A result made from the one before (``previous``) by new values for ``changed``
    customers: comparing the two looks at those alone instead of 10,000 values
    (:func:`_moved`; a purchase in ``crmkit watch`` compares about 30 columns).  Only one
    step back is held, and it pickles as a plain dict."""

    __slots__ = ("changed", "previous")

    def __init__(self, previous: dict[str, Any], changed: list[str],
                 values: dict[str, Any]) -> None:
        super().__init__(previous)
        for cid in changed:
            self[cid] = values[cid]
        self.previous: dict[str, Any] | None = previous
        self.changed = changed
        if isinstance(previous, _Updated):
            previous.previous = None  # one step back, not a chain of 10,000-value dicts

    def __reduce__(self) -> tuple[Any, ...]:
        return dict, (dict(self),)


class _Changed(Mapping[str, Any]):
    """A result that differs from a kept one (``base``) in ``changes`` only."""

    __slots__ = ("base", "changes")

    def __init__(self, base: _Column, changes: dict[str, Any]) -> None:
        self.base, self.changes = base, changes

    def __getitem__(self, cid: str) -> Any:
        found = self.changes.get(cid, _MISSING)
        return self.base[cid] if found is _MISSING else found

    def get(self, cid: str, default: Any = None) -> Any:
        found = self.changes.get(cid, _MISSING)
        return self.base.get(cid, default) if found is _MISSING else found

    def __contains__(self, cid: object) -> bool:
        return cid in self.base

    def __iter__(self) -> Iterator[str]:
        return iter(self.base)

    def __len__(self) -> int:
        return len(self.base)


class _Reducers(dict):  # type: ignore[type-arg]
    """How to pickle each type, decided the first time one is met (a pickler looks its
    ``dispatch_table`` up per object, in C).  Slotted dataclasses (most rule values)
    are pickled as their field values: their generic ``__getstate__``/``__setstate__``
    cost a ``fields()`` call per object, a third of loading 20,000 reminders.  Other
    types as they would be anyway."""

    def __missing__(self, kind: type) -> Callable[[Any], Any]:
        if issubclass(kind, type):
            raise KeyError(kind)  # classes (of a metaclass such as ABCMeta): by name
        names = _slotted_fields(kind)
        if names is not None:
            _SLOTTED[kind] = names
            getter = operator.attrgetter(*names) if len(names) > 1 else None

            def reduce(obj: Any) -> tuple[Any, ...]:
                values = getter(obj) if getter is not None else (getattr(obj, names[0]),)
                return _rebuild, (kind, values)

            found: Callable[[Any], Any] = reduce
        else:
            found = copyreg.dispatch_table.get(kind) or operator.methodcaller(
                "__reduce_ex__", pickle.HIGHEST_PROTOCOL)
        self[kind] = found
        return found


_REDUCERS = _Reducers()
_SLOTTED: dict[type, tuple[str, ...] | None] = {}


def _slotted_fields(kind: type) -> tuple[str, ...] | None:
    getstate = getattr(kind, "__getstate__", None)
    if (dataclasses.is_dataclass(kind) and "__slots__" in vars(kind)
            and getattr(getstate, "__name__", "") == "_dataclass_getstate"
            and kind.__reduce__ is object.__reduce__
            and kind.__reduce_ex__ is object.__reduce_ex__):
        return tuple(f.name for f in dataclasses.fields(kind))
    return None


def _rebuild(kind: type, values: tuple[Any, ...]) -> Any:
    names = _SLOTTED.get(kind)
    if not names:
        names = _SLOTTED[kind] = tuple(f.name for f in dataclasses.fields(kind))
    obj = object.__new__(kind)
    for name, value in zip(names, values, strict=True):
        object.__setattr__(obj, name, value)
    return obj


def _dumps(value: Any) -> bytes:
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
    pickler.dispatch_table = _REDUCERS
    pickler.dump(value)
    return buffer.getvalue()


#: Lists of ids seen last (each rebuild's engines ask with lists equal to the last
#: rebuild's) and each id's place in them.
_places: list[tuple[list[str], dict[str, int]]] = []


def _in_order(todo: set[str], ids: list[str]) -> list[str]:
    """The customers of ``todo`` that are among ``ids``, in the order of ``ids``: a
    few looked up by their place (a scan of 10,000 ids per table and change cost
    0.1 s per rebuild in ``crmkit watch``)."""
    if not todo:
        return []
    if len(todo) * 16 > len(ids):
        return [cid for cid in ids if cid in todo]
    place = next((found for known, found in _places if known is ids or known == ids), None)
    if place is None:
        place = {cid: i for i, cid in enumerate(ids)}
        _places.insert(0, (ids, place))
        del _places[4:]
    return sorted((cid for cid in todo if cid in place), key=place.__getitem__)


def _days_to_keep(used: list[dt.date | None],
                  stored: dict[tuple[str, Any, Any], Stored]) -> set[dt.date | None]:
    """The days whose values are kept: this run's, then the most recently written."""
    days: dict[dt.date | None, int] = dict.fromkeys(used, 1 << 62)
    for (_, day, _), (epoch, _, _) in stored.items():
        days[day] = max(days.get(day, 0), epoch)
    return set(sorted(days, key=days.__getitem__, reverse=True)[:KEEP_DAYS])


def _equal(a: Any, b: Any) -> bool:
    if a is b:
        return True
    try:
        return type(a) is type(b) and bool(a == b)
    except Exception:  # values without a plain equality (arrays)
        return False


def _same(a: tuple[Any, ...], b: tuple[Any, ...]) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b, strict=True):
        if x is y:
            continue
        if isinstance(x, _Column | _Changed) and isinstance(y, _Column | _Changed):
            if _moved(x, y, list(y)) != []:
                return False
            continue
        try:
            if not bool(x == y):
                return False
        except Exception:  # values without a plain equality (arrays): not the same
            return False
    return True


def _moved_in(old_columns: tuple[Any, ...], columns: tuple[Any, ...], ids: list[str]
              ) -> set[str] | None:
    """The customers whose value differs in any of the columns (:func:`_moved`), or
    ``None`` when a whole-population value among them differs: everybody."""
    found: set[str] = set()
    for old, new in zip(old_columns, columns, strict=True):
        if old is not new:
            differ = _moved(old, new, ids)
            if differ is None:
                return None
            found.update(differ)
    return found


def _moved(old: Any, new: Any, ids: list[str]) -> list[str] | None:
    """The customers whose value differs between two columns, or ``None`` when the
    columns are whole-population values that differ (or cannot be compared)."""
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        try:
            return [] if bool(old == new) else None
        except Exception:
            return None
    if isinstance(new, _Updated) and new.previous is old:
        try:
            return [cid for cid in new.changed if new[cid] != old[cid]]
        except Exception:
            return None
    base_old = old.base if isinstance(old, _Changed) else old
    base_new = new.base if isinstance(new, _Changed) else new
    if base_old is base_new and isinstance(base_old, _Column):
        # both a kept result with changes: only the changed customers can differ
        named = set(old.changes if isinstance(old, _Changed) else ())
        named.update(new.changes if isinstance(new, _Changed) else ())
        try:
            return [cid for cid in named if new.get(cid, _MISSING) != old.get(cid, _MISSING)]
        except Exception:
            return None
    try:
        if len(old) == len(new) and list(old) == list(new):
            # the same customers in the same order; an unchanged value is the very same
            # object (the memo keeps it), so the others are found in C and only they
            # are compared (dict values, such as the site's contacts, compare slowly)
            other = itertools.compress(new.items(), map(operator.is_not, new.values(),
                                                        old.values()))
            return [cid for cid, value in other if value != old[cid]]
        return [cid for cid in ids if new.get(cid, _MISSING) != old.get(cid, _MISSING)]
    except Exception:
        return None


def _replaced(last: Mapping[str, Any], new: Mapping[str, Any]) -> list[str]:
    """The customers whose value in ``new`` is not the very object it was in ``last``,
    those who came and those who left: of an :class:`_Updated` made from ``last``, among
    its changed customers alone (the same customers), else by a scan of both."""
    if new is last:  # nothing moved: the memo returned the same result
        return []
    if isinstance(new, _Updated) and new.previous is last:
        return [cid for cid in new.changed if last[cid] is not new[cid]]
    changed = [cid for cid, value in new.items() if last.get(cid, _MISSING) is not value]
    stayed = len(new) - sum(1 for cid in changed if cid not in last)
    if stayed != len(last):  # somebody left
        changed.extend(cid for cid in last if cid not in new)
    return changed


class Ordered:
    """Items of many customers in one sorted list, kept up to date block by block.

    ``blocks`` maps each customer to their items (a tuple, in a fixed order).  A
    stable sort of all blocks, in customer order, by ``key`` puts items with equal
    keys in block order (the key starts with something of the customer's, so equal
    keys only occur within a block); taking a changed customer's old items out
    and putting the new ones in with ``bisect_right``, in block order, gives the
    very same list.  With many changes, sorting afresh is cheaper.
    """

    def __init__(self, key: Callable[[Any], Any]) -> None:
        self.key = key
        self.blocks: dict[str, tuple[Any, ...]] | None = None
        self.items: list[Any] = []
        self.keys: list[Any] = []

    def update(self, blocks: dict[str, tuple[Any, ...]]) -> list[Any]:
        last = self.blocks
        if last is None:
            return self._sort(blocks)
        changed = _replaced(last, blocks)
        if not changed:
            self.blocks = blocks
            return self.items
        if len(changed) > len(blocks) // 8 + 8:
            return self._sort(blocks)
        items, keys = list(self.items), list(self.keys)
        key = self.key
        for cid in changed:
            for item in last.get(cid, ()):
                k = key(item)
                i = bisect.bisect_left(keys, k)
                while i < len(items) and items[i] is not item and keys[i] == k:
                    i += 1
                if i == len(items) or items[i] is not item:
                    return self._sort(blocks)
                del items[i], keys[i]
        for cid in changed:
            for item in blocks.get(cid, ()):
                k = key(item)
                i = bisect.bisect_right(keys, k)
                items.insert(i, item)
                keys.insert(i, k)
        self.blocks, self.items, self.keys = blocks, items, keys
        return items

    def _sort(self, blocks: dict[str, tuple[Any, ...]]) -> list[Any]:
        flat = list(itertools.chain.from_iterable(blocks.values()))
        keys = list(map(self.key, flat))
        order = sorted(range(len(flat)), key=keys.__getitem__)  # stable
        self.items = [flat[i] for i in order]
        self.keys = [keys[i] for i in order]
        self.blocks = blocks
        return self.items


class OrderedIds:
    """The customers in the order of their values in one column, kept up to date.

    A column's unchanged values are the very same objects from one rebuild to the
    next (the memo keeps them), so the customers whose value is another object are
    taken out and put back with ``bisect`` instead of sorting 10,000 again.  Each
    customer's place is ``(0, value, id)``, or ``(1, id)`` without a value (last):
    every place differs, so the order is the one a fresh sort gives.  The values must
    compare with each other (strings, numbers, dates, tuples of them).
    """

    def __init__(self) -> None:
        self.column: Mapping[str, Any] | None = None
        self.ids: list[str] = []
        self.places: list[Any] = []

    def update(self, column: Mapping[str, Any]) -> list[str]:
        last = self.column
        if last is None:
            return self._sort(column)
        changed = _replaced(last, column)
        if not changed:
            self.column = column
            return self.ids
        if len(changed) > len(column) // 8 + 8:
            return self._sort(column)
        ids, places = list(self.ids), list(self.places)
        for cid in changed:
            if cid in last:
                place = _place(cid, last[cid])
                i = bisect.bisect_left(places, place)
                if i == len(places) or places[i] != place:  # not where it was put
                    return self._sort(column)
                del ids[i], places[i]
        for cid in changed:
            if cid in column:
                place = _place(cid, column[cid])
                i = bisect.bisect_left(places, place)
                ids.insert(i, cid)
                places.insert(i, place)
        self.column, self.ids, self.places = column, ids, places
        return ids

    def _sort(self, column: Mapping[str, Any]) -> list[str]:
        places = sorted(_place(cid, value) for cid, value in column.items())
        self.column, self.places = column, places
        self.ids = [place[-1] for place in places]
        return self.ids


def _place(cid: str, value: Any) -> tuple[Any, ...]:
    return (1, cid) if value is None else (0, value, cid)
