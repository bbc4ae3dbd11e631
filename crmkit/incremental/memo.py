"""Rule results kept while their inputs are the same (``crmkit watch``).

The engine (:mod:`crmkit.engine.evaluate`) asks for every rule through here.
What a per-customer rule reads is known exactly (the registration says it): the
customer's record and history, the day, the rule's options, and the columns of
the labels and metrics it declared.  So a kept value is valid unless

* :mod:`crmkit.incremental.reload` said that the customer's files changed
  (:meth:`Memo.changed`), or
* the customer's value in one of the declared columns differs from last time
  (columns that are the very same object are skipped in one step), or
* the options changed (the table starts over).

A step over all customers' parts (``across``) is kept while its inputs are equal.
No plugin sees any of this: a rule is a plain function, and the memo is off in a
one-off command, where nothing would be reused.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import operator
from collections.abc import Callable, Hashable, Mapping
from typing import Any, TypeVar

V = TypeVar("V")
#: Days whose values are kept (today, a week ago for comparisons, and after midnight).
KEEP_DAYS = 4
#: Changes remembered: a table not used for longer is computed afresh.
KEEP_CHANGES = 64
_MISSING = object()

#: What a per-customer computation returns: values, and the failures by customer.
Computed = tuple[dict[str, Any], dict[str, Any]]


class _Table:
    """One rule's kept values on one day, valid as of ``generation``."""

    __slots__ = ("columns", "failures", "generation", "ids", "result", "shared", "stale",
                 "values")

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

    def clear(self) -> None:
        self.values.clear()
        self.failures.clear()
        self.stale.clear()
        self.columns = self.ids = self.result = None


class Memo:
    """Inactive (every call computes) unless a long-running caller turns it on."""

    def __init__(self, active: bool = False) -> None:
        self.active = active
        self.generation = 0
        self._changes: dict[int, frozenset[str]] = {}
        self._days: dict[dt.date | None, tuple[dict[Hashable, _Table], dict[Hashable, Any]]] = {}

    def changed(self, customer_ids: frozenset[str] | set[str] | list[str]) -> None:
        """Say that these customers' records or histories were replaced: their kept
        values are out of date.  (Whoever changes a loaded workspace must call this.)"""
        self.generation += 1
        self._changes[self.generation] = frozenset(customer_ids)
        self._changes.pop(self.generation - KEEP_CHANGES, None)

    def _changed_since(self, generation: int) -> set[str] | None:
        if generation < self.generation - KEEP_CHANGES + 1:
            return None
        found: set[str] = set()
        for g in range(generation + 1, self.generation + 1):
            found.update(self._changes[g])
        return found

    def _day(self, day: dt.date | None) -> tuple[dict[Hashable, _Table], dict[Hashable, Any]]:
        kept = self._days.get(day)
        if kept is None:
            if len(self._days) >= KEEP_DAYS:
                del self._days[next(iter(self._days))]
            kept = self._days[day] = ({}, {})
        return kept

    def _table(self, key: Hashable, day: dt.date | None) -> _Table:
        tables = self._day(day)[0]
        table = tables.get(key)
        if table is None:
            table = tables[key] = _Table(self.generation)
        elif table.generation != self.generation:
            changed = self._changed_since(table.generation)
            if changed is None:
                table.clear()
            else:  # recomputed on the next call; the old values stay to compare with
                table.stale.update(changed)
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
        if table.shared != shared or table.columns is None \
                or len(table.columns) != len(columns):
            table.clear()
            table.shared = shared
        values = table.values
        todo = table.stale
        table.stale = set()
        same_ids = table.ids is not None and ids == table.ids
        if table.columns is None:
            todo = set(ids)
        else:
            for old, new in zip(table.columns, columns, strict=True):
                if old is new:
                    continue
                differ = _moved(old, new, ids)
                if differ is None:  # a whole-population value changed: everybody
                    todo = set(ids)
                    break
                todo.update(differ)
        table.columns = columns
        if not same_ids:
            known = set(ids)
            for cid in [c for c in values if c not in known]:
                del values[cid]
                table.failures.pop(cid, None)
            todo.update(cid for cid in ids if cid not in values)
        moved = False
        order = [cid for cid in ids if cid in todo] if todo else []
        if order:
            computed, failures = compute(order)
            for cid in order:
                new = computed[cid]
                old = values.get(cid, _MISSING)
                if old is _MISSING or not _equal(old, new):
                    values[cid] = new  # else the old object stays: readers skip it
                    moved = True
                if cid in failures:
                    table.failures[cid] = failures[cid]
                else:
                    table.failures.pop(cid, None)
        if same_ids and table.result is not None:
            if not moved:
                return table.result, table.failures
            if len(order) < len(ids) // 4:
                result = dict(table.result)  # the same order: update in place of a rebuild
                for cid in order:
                    result[cid] = values[cid]
                table.result = result
                return result, table.failures
        result = {cid: values[cid] for cid in ids}
        table.result, table.ids = result, list(ids)
        return result, table.failures

    def whole(self, key: Hashable, day: dt.date | None, inputs: tuple[Any, ...],
              compute: Callable[[], V]) -> V:
        """``compute()``, kept while ``inputs`` are equal to last time's (a step over all
        customers' parts, such as ranking them, whose inputs rarely change)."""
        if not self.active:
            return compute()
        wholes = self._day(day)[1]
        kept = wholes.get(key)
        if kept is not None and _same(kept[0], inputs):
            return kept[1]  # type: ignore[no-any-return]
        value = compute()
        wholes[key] = (inputs, value)
        return value

    def state(self, key: Hashable, day: dt.date | None, make: Callable[[], V]) -> V:
        """An object kept for ``key`` and ``day`` (made afresh when the memo is off)."""
        if not self.active:
            return make()
        wholes = self._day(day)[1]
        kept = wholes.get(key, _MISSING)
        if kept is _MISSING:
            kept = wholes[key] = make()
        return kept  # type: ignore[no-any-return]

    def one(self, key: Hashable, day: dt.date | None, customer_id: str,
            compute: Callable[[], V]) -> V:
        """One customer's value of something that depends on their data and the day
        alone (the derived values)."""
        if not self.active:
            return compute()
        table = self._table(key, day)
        value = table.values.get(customer_id, _MISSING)
        if value is _MISSING or customer_id in table.stale:
            table.stale.discard(customer_id)
            value = table.values[customer_id] = compute()
        return value  # type: ignore[no-any-return]


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
        try:
            if not bool(x == y):
                return False
        except Exception:  # values without a plain equality (arrays): not the same
            return False
    return True


def _moved(old: Any, new: Any, ids: list[str]) -> list[str] | None:
    """The customers whose value differs between two columns, or ``None`` when the
    columns are whole-population values that differ (or cannot be compared)."""
    if not (isinstance(old, Mapping) and isinstance(new, Mapping)):
        try:
            return [] if bool(old == new) else None
        except Exception:
            return None
    try:
        if len(old) == len(new) and list(old) == list(new):
            # the same customers in the same order: compared pairwise in C
            return list(itertools.compress(new.keys(), map(operator.ne, new.values(),
                                                           old.values())))
        return [cid for cid in ids if new.get(cid, _MISSING) != old.get(cid, _MISSING)]
    except Exception:
        return None


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
        changed = [cid for cid, items in blocks.items() if last.get(cid) is not items]
        changed.extend(cid for cid in last if cid not in blocks)
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
