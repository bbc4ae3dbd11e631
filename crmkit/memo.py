"""Values computed per customer, kept while the customer's data is the same.

``crmkit watch`` applies a changed file to the loaded workspace
(:mod:`crmkit.reload`) and tells the memo which customers it touched
(:meth:`CustomerMemo.changed`).  A plugin that asks
:meth:`crmkit.Snapshot.per_customer_many` for values computed from each
customer's record and history gets the kept values of every other customer, so
a rebuild after one edit recomputes one customer, not 10,000.  Knowing the
changed customers (instead of checking each customer's data again) keeps a
lookup of 10,000 kept values at a millisecond.  A step over all customers
(:meth:`CustomerMemo.whole`, :meth:`crmkit.Snapshot.kept`) is kept while its
inputs are equal.  In a one-off command the memo is off.
"""

from __future__ import annotations

import datetime as dt
import itertools
import operator
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")
#: Days whose values are kept (today, a week ago for comparisons, and after midnight).
KEEP_DAYS = 4
#: Changes remembered: a table not used for longer is computed afresh.
KEEP_CHANGES = 32
#: What a value depends on besides the customer's data: one tuple for every customer,
#: or a value per customer id.
Depends = tuple[object, ...] | Mapping[str, object] | None
_MISSING = object()


class _Table:
    """One name's kept values on one day, all valid as of ``generation``."""

    __slots__ = ("depends", "dropped", "generation", "last", "last_ids", "last_result", "shared",
                 "values")

    def __init__(self, generation: int) -> None:
        self.generation = generation
        self.values: dict[str, Any] = {}
        self.depends: dict[str, object] = {}
        self.shared: tuple[object, ...] = ()
        #: The per-customer ``depends`` mapping of the last call (equal: nothing moved).
        self.last: Mapping[str, object] | None = None
        #: The ids and the result of the last call (asked for the same ids: a copy).
        self.last_ids: list[str] | None = None
        self.last_result: dict[str, Any] = {}
        #: The customers whose values were dropped since the last call.
        self.dropped: set[str] = set()

    def clear(self) -> None:
        self.values.clear()
        self.depends.clear()
        self.dropped.clear()
        self.last = self.last_ids = None


class CustomerMemo:
    """Inactive (every call computes) unless a long-running caller turns it on: in a
    one-off command nothing would be reused, and keeping 100,000s of entries costs
    time (allocations, garbage collection)."""

    def __init__(self, active: bool = False) -> None:
        self.active = active
        self.generation = 0
        self._changes: dict[int, frozenset[str]] = {}
        #: Per day: the per-customer tables and the values of :meth:`whole`.
        self._days: dict[dt.date | None, tuple[dict[str, _Table], dict[str, Any]]] = {}

    def changed(self, customer_ids: Iterable[str]) -> None:
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

    def _day(self, day: dt.date | None) -> tuple[dict[str, _Table], dict[str, Any]]:
        kept = self._days.get(day)
        if kept is None:
            if len(self._days) >= KEEP_DAYS:
                del self._days[next(iter(self._days))]
            kept = self._days[day] = ({}, {})
        return kept

    def _table(self, name: str, day: dt.date | None) -> _Table:
        tables = self._day(day)[0]
        table = tables.get(name)
        if table is None:
            table = tables[name] = _Table(self.generation)
        elif table.generation != self.generation:
            changed = self._changed_since(table.generation)
            if changed is None:
                table.clear()
            else:
                for cid in changed:
                    table.values.pop(cid, None)
                    table.depends.pop(cid, None)
                table.dropped.update(changed)
            table.generation = self.generation
        return table

    def many(self, name: str, day: dt.date | None, ids: Iterable[str],
             compute: Callable[[list[str]], Mapping[str, T]], depends: Depends = None
             ) -> dict[str, T]:
        """The value ``compute`` gave for each of ``ids`` on ``day``, kept while the
        customer is not :meth:`changed` and ``depends`` is equal; ``compute`` gets
        the ids without a kept value and returns ``{id: value}``."""
        ids = list(ids)  # kept as the last call's ids: the caller's list may change
        if not self.active:
            return dict(compute(ids))
        table = self._table(name, day)
        values = table.values
        same_ids = ids == table.last_ids
        if isinstance(depends, Mapping):
            last = table.last
            if same_ids and last is not None and list(depends) == list(last):
                # the values of the last call, in the same order: compared pairwise in C
                moved = itertools.compress(depends, map(operator.ne, depends.values(),
                                                        last.values()))
                todo = self._missing(table, moved)
            elif depends == last:
                todo = [cid for cid in ids if cid not in values]
            else:
                kept = table.depends
                todo = [cid for cid in ids
                        if cid not in values or kept.get(cid, _MISSING) != depends[cid]]
            table.last = depends
        else:
            shared = depends or ()
            if shared != table.shared:
                table.clear()
                table.shared = shared
                same_ids = False
            kept = table.depends  # values kept by one() with other depends
            if not kept and same_ids:  # only the dropped ones can be missing
                todo = self._missing(table, ())
            else:
                todo = [cid for cid in ids if cid not in values or (
                    kept and kept.get(cid, shared) != shared)]
        table.dropped.clear()
        if todo:
            computed = compute(todo)
            for cid in todo:
                values[cid] = computed[cid]
            if isinstance(depends, Mapping):
                for cid in todo:
                    table.depends[cid] = depends[cid]
            elif table.depends:
                for cid in todo:
                    table.depends.pop(cid, None)
        if same_ids:
            result = dict(table.last_result)  # the same order, in one copy
            for cid in todo:
                result[cid] = values[cid]
        else:
            result = {cid: values[cid] for cid in ids}
        table.last_ids, table.last_result = ids, result
        return dict(result)

    @staticmethod
    def _missing(table: _Table, moved: Iterable[str]) -> list[str]:
        """With the same ids as last time: the customers whose depends ``moved`` or whose
        values were dropped since (the others' values are all there)."""
        last = table.last_result
        return sorted({*moved, *table.dropped} & last.keys())

    def whole(self, name: str, day: dt.date | None, compute: Callable[..., T],
              inputs: tuple[object, ...],
              update: Callable[..., T | None] | None = None) -> T:
        """``compute(*inputs)``, kept while ``inputs`` are equal to last time's (for a
        step over all customers, such as ranking them, whose inputs rarely change).

        When they are not, ``update(last_inputs, last_value, *inputs)`` may make the
        value from the last one (it must equal ``compute(*inputs)``; ``None``: it
        cannot, and ``compute`` runs)."""
        if not self.active:
            return compute(*inputs)
        wholes = self._day(day)[1]
        kept = wholes.get(name)
        if kept is not None and kept[0] == inputs:
            return kept[1]  # type: ignore[no-any-return]
        value = update(kept[0], kept[1], *inputs) if kept is not None and update else None
        if value is None:
            value = compute(*inputs)
        wholes[name] = (inputs, value)
        return value

    def one(self, name: str, day: dt.date | None, customer_id: str, compute: Callable[[], T],
            depends: tuple[object, ...]) -> T:
        """:meth:`many` for one customer, with what else its value depends on."""
        table = self._table(name, day) if self.active else None
        if table is None:
            return compute()
        if customer_id in table.values and \
                table.depends.get(customer_id, table.shared) == depends:
            return table.values[customer_id]
        table.last = table.last_ids = None  # the last many() call is out of date
        value = table.values[customer_id] = compute()
        table.depends[customer_id] = depends
        return value
