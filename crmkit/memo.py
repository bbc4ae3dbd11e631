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
_Table = dict[str, _Entry]  # customer id -> entry


class CustomerMemo:
    """Inactive (every call computes) unless a long-running caller turns it on: in a
    one-off command nothing would be reused, and keeping 100,000s of entries costs
    time (allocations, garbage collection)."""

    def __init__(self, active: bool = False) -> None:
        self.active = active
        self._days: dict[dt.date | None, dict[str, _Table]] = {}

    def _table(self, name: str, day: dt.date | None) -> _Table:
        tables = self._days.get(day)
        if tables is None:
            if len(self._days) >= KEEP_DAYS:
                del self._days[next(iter(self._days))]
            tables = self._days[day] = {}
        return tables.setdefault(name, {})

    def many(self, name: str, day: dt.date | None, ids: Iterable[str],
             customers: Mapping[str, Any], histories: Mapping[str, object],
             compute: Callable[[list[str]], Mapping[str, T]],
             depends: Callable[[str], tuple[object, ...]] | None) -> dict[str, T]:
        """The value ``compute`` gave for each of ``ids`` on ``day``, kept while the
        customer's record and history are the same objects as now and
        ``depends(id)`` is equal; ``compute`` gets the ids without a kept value and
        returns ``{id: value}``."""
        if not self.active:
            return dict(compute(list(ids)))
        table = self._table(name, day)
        found: dict[str, T] = {}
        missing = []
        no_history = ()
        for cid in ids:  # the hot loop of every watch rebuild: no call it can spare
            entry = table.get(cid)
            extra = depends(cid) if depends is not None else ()
            if entry is not None and entry[0] is customers[cid] \
                    and entry[1] is histories.get(cid, no_history) and entry[3] == extra:
                found[cid] = entry[2]
            else:
                missing.append((cid, extra))
        if missing:
            computed = compute([cid for cid, _ in missing])
            for cid, extra in missing:
                value = found[cid] = computed[cid]
                table[cid] = (customers[cid], histories.get(cid, no_history), value, extra)
        return found
