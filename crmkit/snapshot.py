"""The workspace *as of* a day: derived values computed from the history.

Nothing here is stored in files.  ``--today`` means "as of": interactions dated
after it are planned, not history, so a report for a past day is exactly what it
would have been then.
"""

from __future__ import annotations

import bisect
import copy
import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, TypeVar

from .memo import Depends
from .model import NON_CONTACT_TYPES, Customer, FollowUp, Interaction, Workspace

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class OpenFollowUp:
    """A ``follow_up`` promised in an interaction with no contact since."""

    interaction: Interaction
    follow_up: FollowUp


@dataclass(frozen=True, slots=True)
class Derived:
    """Values computed from one customer's history up to and including ``today``."""

    customer: str
    first_contact: dt.date | None
    last_contact: dt.date | None
    first_purchase: dt.date | None
    last_purchase: dt.date | None
    purchase_count: int
    revenue: Decimal
    revenue_12m: Decimal
    average_order_value: Decimal | None
    interaction_count: int
    complaint_count: int
    open_follow_ups: tuple[OpenFollowUp, ...]
    planned: tuple[Interaction, ...]

    def years_as_customer(self, today: dt.date) -> float:
        if self.first_purchase is None:
            return 0.0
        return round((today - self.first_purchase).days / 365.25, 1)

    def to_json(self) -> dict[str, object]:
        def day(d: dt.date | None) -> str | None:
            return d.isoformat() if d else None

        return {
            "first_contact": day(self.first_contact),
            "last_contact": day(self.last_contact),
            "first_purchase": day(self.first_purchase),
            "last_purchase": day(self.last_purchase),
            "purchase_count": self.purchase_count,
            "revenue": f"{self.revenue:.2f}",
            "revenue_12m": f"{self.revenue_12m:.2f}",
            "average_order_value": (
                f"{self.average_order_value:.2f}" if self.average_order_value is not None
                else None
            ),
            "interaction_count": self.interaction_count,
            "complaint_count": self.complaint_count,
        }


def derive(history: tuple[Interaction, ...] | list[Interaction], today: dt.date,
           currency: str, customer_id: str) -> Derived:
    """Derived values for one customer; ``history`` is sorted oldest first."""
    cut = bisect.bisect_right(history, today, key=lambda i: i.date)
    past, planned = history[:cut], tuple(history[cut:])
    year_ago = today - dt.timedelta(days=365)
    first_contact = last_contact = first_purchase = last_purchase = None
    purchases = counted = complaints = 0
    revenue = revenue_12m = Decimal(0)
    promised: list[Interaction] = []
    for i in past:  # one pass: this runs for every customer, often twice per run
        kind = i.type
        if kind == "purchase":
            purchases += 1
            first_purchase = first_purchase or i.date
            last_purchase = i.date
            if i.amount is not None and i.currency in (None, currency):
                counted += 1
                revenue += i.amount
                if i.date > year_ago:
                    revenue_12m += i.amount
        elif kind == "complaint":
            complaints += 1
        if kind not in NON_CONTACT_TYPES:
            first_contact = first_contact or i.date
            last_contact = i.date
        if i.follow_up is not None:
            promised.append(i)
    # History is sorted, so "a contact dated after it" means "the last contact is later".
    open_follow_ups = tuple(
        OpenFollowUp(i, i.follow_up) for i in promised  # type: ignore[arg-type]
        if last_contact is None or last_contact <= i.date
    )
    return Derived(
        customer=customer_id,
        first_contact=first_contact,
        last_contact=last_contact,
        first_purchase=first_purchase,
        last_purchase=last_purchase,
        purchase_count=purchases,
        revenue=revenue,
        revenue_12m=revenue_12m,
        average_order_value=(revenue / counted).quantize(Decimal("0.01")) if counted else None,
        interaction_count=len(past),
        complaint_count=complaints,
        open_follow_ups=open_follow_ups,
        planned=planned,
    )


class Snapshot:
    """A workspace as of ``today``; what plugins receive to compute their rules.

    Derived values are computed once per customer on first use.
    """

    def __init__(self, workspace: Workspace, today: dt.date) -> None:
        self.workspace = workspace
        self.today = today
        self._derived: dict[str, Derived] = {}
        self._histories: dict[str, tuple[Interaction, ...]] = {}
        self._memo: dict[str, Any] = {}
        self._only: list[str] | None = None
        self._customers: list[Customer] | None = None

    @property
    def settings(self):
        return self.workspace.settings

    @property
    def customers(self) -> list[Customer]:
        """Customers sorted by id (only some of them in a view made by :meth:`only`)."""
        if self._customers is None:
            customers = self.workspace.customers
            self._customers = [customers[k] for k in (
                self._only if self._only is not None else sorted(customers))]
        return list(self._customers)  # a copy: callers may sort or filter it

    def only(self, customer_ids: Iterable[str]) -> Snapshot:
        """The same snapshot with :attr:`customers` limited to ``customer_ids``: to run a
        rule written for all customers on some of them (:meth:`per_customer_many`).
        Per-customer values are shared with this snapshot; :meth:`memo` is the view's
        own, as what it computes over "all" customers covers only these."""
        view = copy.copy(self)
        view._only = sorted(customer_ids)
        view._customers = None
        view._memo = {}
        return view

    def customer(self, customer_id: str) -> Customer | None:
        return self.workspace.customers.get(customer_id)

    def history(self, customer_id: str) -> tuple[Interaction, ...]:
        """The customer's interactions up to and including ``today``, oldest first."""
        past = self._histories.get(customer_id)
        if past is None:
            history = self.workspace.history(customer_id)
            past = history[:bisect.bisect_right(history, self.today, key=lambda i: i.date)]
            self._histories[customer_id] = past
        return past

    @property
    def interactions(self) -> tuple[Interaction, ...]:
        """Every interaction up to and including ``today``, oldest first."""
        all_ = self.workspace.interactions
        return all_[: bisect.bisect_right(all_, self.today, key=lambda i: i.date)]

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """Compute something once per snapshot (e.g. a fitted model shared by plugins)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]

    def per_customer(self, name: str, customer_id: str, compute: Callable[[], T],
                     *depends: object) -> T:
        """``compute()`` for one customer, as of ``today``, kept while the customer's
        record and history are unchanged and ``depends`` stays equal (in ``crmkit
        watch``, the customers a change did not touch: see :mod:`crmkit.memo`).

        ``compute`` must depend on nothing but this customer's record and history,
        ``today``, the settings and ``depends`` (e.g. a label computed over all
        customers); ``name`` says what it computes and starts with the plugin's name.
        """
        return self.workspace.per_customer(name, customer_id, compute, *depends, day=self.today)

    def per_customer_many(self, name: str, customer_ids: Iterable[str],
                          compute: Callable[[list[str]], Mapping[str, T]],
                          depends: Depends = None) -> dict[str, T]:
        """:meth:`per_customer` for many customers at once: ``compute`` gets the ids
        whose kept values are missing or out of date (all of them in a one-off
        command) and returns ``{id: value}``.  ``depends`` is what else the values
        depend on: one tuple for all customers, or ``{id: value}`` (built afresh for
        each call)."""
        return self.workspace.per_customer_many(name, customer_ids, compute, depends,
                                                self.today)

    def kept(self, name: str, compute: Callable[..., T], *inputs: object,
             update: Callable[..., T | None] | None = None) -> T:
        """``compute(*inputs)``, kept across ``crmkit watch`` rebuilds on the same day
        while ``inputs`` stay equal: for a step over all customers (ranking them,
        cutting quintiles) whose inputs, built afresh each time, rarely change.
        ``compute`` must depend on nothing but ``inputs``, ``today`` and the settings.

        When the inputs changed, ``update(last_inputs, last_value, *inputs)``, if
        given, may make the new value from the last one (say, re-sort a list after
        a few items changed) and must then return exactly what ``compute`` would;
        it returns ``None`` when it cannot, and ``compute`` runs."""
        return self.workspace.memo.whole(name, self.today, compute, inputs, update)

    def all_derived(self) -> dict[str, Derived]:
        """:meth:`derived` of every customer, for rules that look at all of them (in
        one pass over the per-customer memo instead of one lookup each)."""
        if len(self._derived) < len(self.workspace.customers):
            self._derived.update(self.per_customer_many(
                "crmkit.derived", sorted(self.workspace.customers), self._derive))
        return self._derived

    def derived(self, customer_id: str) -> Derived:
        cached = self._derived.get(customer_id)
        if cached is None:
            cached = self.per_customer("crmkit.derived", customer_id,
                                       lambda: self._derive((customer_id,))[customer_id])
            self._derived[customer_id] = cached
        return cached

    def _derive(self, customer_ids: Iterable[str]) -> dict[str, Derived]:
        currency = self.workspace.settings.currency
        history = self.workspace.history
        return {cid: derive(history(cid), self.today, currency, cid) for cid in customer_ids}
