"""Values derived from one customer's history *as of* a day.

Nothing here is stored in files.  ``--today`` means "as of": interactions dated
after it are planned, not history, so a report for a past day is exactly what it
would have been then.
"""

from __future__ import annotations

import bisect
import datetime as dt
from dataclasses import dataclass
from decimal import Decimal

from .records import NON_CONTACT_TYPES, FollowUp, Interaction


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
    #: The score of the latest interaction that has one (feedback, 0-10).
    last_score: int | None = None

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
    last_score = None
    revenue = revenue_12m = Decimal(0)
    promised: list[Interaction] = []
    reached: list[Interaction] = []  # the outbound contacts of the last day with any
    for i in past:  # one pass: this runs for every customer, often twice
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
            if i.reaches_out:
                if reached and reached[-1].date != i.date:
                    reached.clear()
                reached.append(i)
        if i.follow_up is not None:
            promised.append(i)
        if i.score is not None:
            last_score = i.score
    # A promise is kept by reaching out after it (the latest day with outbound
    # contact is enough to look at: the history is sorted by day).
    open_follow_ups = tuple(
        OpenFollowUp(i, i.follow_up) for i in promised  # type: ignore[arg-type]
        if not any(r is not i and r.is_after(i) for r in reached)
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
        last_score=last_score,
    )
