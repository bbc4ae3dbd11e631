"""Values computed per customer, kept while the customer's data is the same.

``crmkit watch`` applies a changed file to the loaded workspace
(:mod:`crmkit.reload`): every other customer keeps the very same record and
history objects.  A plugin that asks :meth:`crmkit.Snapshot.per_customer` for a
value computed from one customer's record and history gets the kept value for
those customers, so a rebuild after one edit recomputes one customer, not
10,000.  In a one-off command the memo is off.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

T = TypeVar("T")
#: Days whose values are kept (today, a week ago for comparisons, and after midnight).
KEEP_DAYS = 4
#: The customer record, the history, the value and what else it depended on.
_Entry = tuple[object, object, Any, tuple[object, ...]]
MISSING = object()


class CustomerMemo:
    """Inactive (every call computes) unless a long-running caller turns it on: in a
    one-off command nothing would be reused, and keeping 100,000s of entries costs
    time (allocations, garbage collection)."""

    def __init__(self, active: bool = False) -> None:
        self.active = active
        self._days: dict[dt.date | None, dict[tuple[str, str], _Entry]] = {}

    def get(self, name: str, customer: Any, history: object, compute: Callable[[], T],
            day: dt.date | None = None, depends: tuple[object, ...] = ()) -> T:
        """``compute()``, or the value it gave for this ``name``, customer and day
        while ``customer`` and ``history`` were the same objects as now and
        ``depends`` was equal."""
        if not self.active:
            return compute()
        value = self.lookup(name, customer, history, day, depends)
        if value is MISSING:
            value = compute()
            self.store(name, customer, history, day, depends, value)
        return value  # type: ignore[no-any-return]

    def lookup(self, name: str, customer: Any, history: object, day: dt.date | None,
               depends: tuple[object, ...]) -> Any:
        """The kept value, or :data:`MISSING`."""
        table = self._days.get(day)
        entry = table.get((name, customer.id)) if table is not None else None
        if entry is not None and entry[0] is customer and entry[1] is history \
                and entry[3] == depends:
            return entry[2]
        return MISSING

    def many(self, name: str, day: dt.date | None,
             wanted: Iterable[tuple[Any, object, tuple[object, ...]]],
             compute: Callable[[list[str]], Mapping[str, T]]) -> dict[str, T]:
        """:meth:`get` for many ``(customer, history, depends)`` at once: ``compute``
        gets the ids of those without a kept value."""
        table = self._days.get(day) or {}
        found: dict[str, T] = {}
        missing = []
        for customer, history, depends in wanted:
            entry = table.get((name, customer.id))
            if entry is not None and entry[0] is customer and entry[1] is history \
                    and entry[3] == depends:
                found[customer.id] = entry[2]
            else:
                missing.append((customer, history, depends))
        if missing:
            computed = compute([customer.id for customer, _, _ in missing])
            for customer, history, depends in missing:
                value = found[customer.id] = computed[customer.id]
                self.store(name, customer, history, day, depends, value)
        return found

    def store(self, name: str, customer: Any, history: object, day: dt.date | None,
              depends: tuple[object, ...], value: object) -> None:
        table = self._days.get(day)
        if table is None:
            if len(self._days) >= KEEP_DAYS:
                del self._days[next(iter(self._days))]
            table = self._days[day] = {}
        table[(name, customer.id)] = (customer, history, value, depends)
