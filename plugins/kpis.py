"""Key figures of the business as of ``--today``, for reports and ``--format json``.

Every metric is a pure function of the snapshot and the segment labels; the
definitions are in docs/reports.md.  "The period" is the 365 days up to and
including ``--today``; "the previous period" the 365 days before it.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal

import crmkit
from crmkit import Interaction, Metric, Segmentation, Snapshot

NAME = "kpis"
STAGES = ("lead", "new", "active", "at_risk", "lost")
STAGE_PROBABILITY = {"lead": Decimal("0.1"), "qualified": Decimal("0.3"),
                     "proposal": Decimal("0.5"), "negotiation": Decimal("0.7"),
                     "open": Decimal("0.5")}
TOP = 10


def _counted(i: Interaction, currency: str) -> bool:
    return i.type == "purchase" and i.amount is not None and i.currency in (None, currency)


def _ratio(part: int | Decimal, whole: int | Decimal) -> float | None:
    return round(float(part) / float(whole), 4) if whole else None


def month_keys(today: dt.date, months: int = 12) -> list[str]:
    """The last ``months`` calendar months up to today's, oldest first (``2026-11``)."""
    keys = []
    year, month = today.year, today.month
    for _ in range(months):
        keys.append(f"{year:04d}-{month:02d}")
        year, month = (year - 1, 12) if month == 1 else (year, month - 1)
    return keys[::-1]


@dataclass(frozen=True, slots=True)
class Contribution:
    """One customer's part of the figures (kept per customer while it does not change)."""

    purchase_days: int
    bought_now: bool
    bought_before: bool
    lifetime: Decimal | None
    revenue_12m: Decimal
    orders_12m: int
    by_month: tuple[tuple[str, Decimal], ...]
    nps: int | None
    complaints: tuple[Interaction, ...]
    new_lead: bool


def contribution(snapshot: Snapshot, customer_id: str) -> Contribution:
    today = snapshot.today
    currency = snapshot.settings.currency
    start = today - dt.timedelta(days=365)
    previous_start = today - dt.timedelta(days=730)
    days = set()
    bought_now = bought_before = False
    lifetime: Decimal | None = None
    revenue_12m = Decimal(0)
    orders_12m = 0
    by_month: dict[str, Decimal] = {}
    nps = None
    complaints = []
    for i in snapshot.history(customer_id):
        if i.type == "purchase":
            days.add(i.date)
            if i.date > start:
                bought_now = True
            elif i.date > previous_start:
                bought_before = True
        if _counted(i, currency):
            lifetime = (lifetime or Decimal(0)) + i.amount  # type: ignore[operator]
            if i.date > start:
                revenue_12m += i.amount  # type: ignore[operator]
                orders_12m += 1
                key = f"{i.date.year:04d}-{i.date.month:02d}"
                by_month[key] = by_month.get(key, Decimal(0)) + i.amount  # type: ignore[operator]
        if i.date > start:
            if i.type == "feedback" and i.score is not None:
                nps = i.score  # the latest
            if i.type == "complaint":
                complaints.append(i)
    first_contact = snapshot.derived(customer_id).first_contact
    return Contribution(len(days), bought_now, bought_before, lifetime, revenue_12m, orders_12m,
                        tuple(by_month.items()), nps, tuple(complaints),
                        first_contact is not None and first_contact > start)


@dataclass
class Totals:
    """The figures summed over every customer's :class:`Contribution`."""

    revenue_12m: Decimal = Decimal(0)
    orders_12m: int = 0
    by_month: dict[str, Decimal] = field(default_factory=dict)
    per_customer_12m: dict[str, Decimal] = field(default_factory=dict)
    buyers: int = 0
    repeaters: int = 0
    retained: int = 0
    buyers_before: int = 0
    lifetime: list[Decimal] = field(default_factory=list)
    new_leads_12m: int = 0
    converted_12m: int = 0
    nps_scores: list[int] = field(default_factory=list)
    complaints: list[Interaction] = field(default_factory=list)
    #: The customers with the highest revenue in the period, best first.
    top: list[str] = field(default_factory=list)
    #: Every customer's revenue in the period, highest first.
    ranked: list[float] = field(default_factory=list)


#: Customers per block of :func:`totals_of`: a change re-sums one block, not everybody.
BLOCK = 500


def totals_of(snapshot: Snapshot, parts: dict[str, Contribution]) -> Totals:
    """:func:`totals` of ``parts``, summed block by block: in ``crmkit watch`` each
    block's sums are kept while its customers' contributions are the same objects,
    so one changed customer re-sums one block and then merges the blocks' sums."""
    ids, values = list(parts), list(parts.values())
    today = snapshot.today
    blocks = tuple(
        snapshot.kept(f"{NAME}.totals:{start}", partial_totals, tuple(ids[start:start + BLOCK]),
                      tuple(values[start:start + BLOCK]), today)
        for start in range(0, len(ids), BLOCK))
    return snapshot.kept(f"{NAME}.totals", merged_totals, blocks, today)


def totals(parts: dict[str, Contribution], today: dt.date) -> Totals:
    """Sum the contributions of every customer."""
    return merged_totals((partial_totals(tuple(parts), tuple(parts.values()), today),), today)


def partial_totals(ids: tuple[str, ...], parts: tuple[Contribution, ...], today: dt.date
                   ) -> Totals:
    """The sums of some customers' contributions (without the rankings)."""
    t = Totals(by_month=dict.fromkeys(month_keys(today), Decimal(0)))
    by_month = t.by_month
    for cid, part in zip(ids, parts, strict=True):
        if part.bought_before:
            t.buyers_before += 1
            if part.bought_now:
                t.retained += 1
        if part.lifetime is not None:
            t.lifetime.append(part.lifetime)
        t.orders_12m += part.orders_12m
        for key, amount in part.by_month:
            if key in by_month:
                by_month[key] += amount
        if part.nps is not None:
            t.nps_scores.append(part.nps)
        t.complaints.extend(part.complaints)
        if part.purchase_days:
            t.buyers += 1
            if part.purchase_days >= 2:
                t.repeaters += 1
        if part.revenue_12m:
            t.per_customer_12m[cid] = part.revenue_12m
            t.revenue_12m += part.revenue_12m
        if part.new_lead:
            t.new_leads_12m += 1
            if part.purchase_days:
                t.converted_12m += 1
    return t


def merged_totals(blocks: tuple[Totals, ...], today: dt.date) -> Totals:
    """The blocks' sums added up, in order, and the rankings.  Decimal sums are exact,
    so adding block sums gives the very value (and exponent) of one long sum."""
    t = Totals(by_month=dict.fromkeys(month_keys(today), Decimal(0)))
    for block in blocks:
        for name in ("orders_12m", "buyers", "repeaters", "retained", "buyers_before",
                     "new_leads_12m", "converted_12m", "revenue_12m"):
            setattr(t, name, getattr(t, name) + getattr(block, name))
        for key, amount in block.by_month.items():
            t.by_month[key] += amount
        t.per_customer_12m.update(block.per_customer_12m)
        t.lifetime.extend(block.lifetime)
        t.nps_scores.extend(block.nps_scores)
        t.complaints.extend(block.complaints)
    revenue = t.per_customer_12m
    t.top = sorted(revenue, key=lambda cid: (-revenue[cid], cid))[:TOP]
    t.ranked = [float(v) for v in sorted(revenue.values(), reverse=True)]
    t.complaints.sort(key=lambda i: i.sort_key, reverse=True)
    return t


def compute(snapshot: Snapshot, segments: Segmentation,
            wanted: frozenset[str] | None = None) -> Iterator[Metric]:
    """Every metric, or the ``wanted`` ones and a few that cost nothing more; the
    segment labels are read only for the metrics that use them."""
    def want(name: str) -> bool:
        return wanted is None or name in wanted

    currency = snapshot.settings.currency
    customers = snapshot.customers
    parts = snapshot.per_customer_many(
        f"{NAME}.contribution", [c.id for c in customers],
        lambda ids: {cid: contribution(snapshot, cid) for cid in ids})
    t = totals_of(snapshot, parts)
    revenue_12m, orders_12m, by_month = t.revenue_12m, t.orders_12m, t.by_month
    per_customer_12m = t.per_customer_12m
    distribution = dict.fromkeys(range(11), 0)
    for score in t.nps_scores:
        distribution[score] += 1

    yield Metric("customers", "Customers", len(customers))
    if want("lifecycle"):
        stages = Counter(segments.values_of("lifecycle").values())
        yield Metric("lifecycle", "Customers by lifecycle stage",
                     {s: stages.get(s, 0) for s in STAGES})
    yield Metric("revenue_12m", "Revenue, last 12 months", revenue_12m, currency)
    yield Metric("revenue_by_month", "Revenue by month",
                 [{"month": k, "revenue": v} for k, v in by_month.items()], currency)
    if want("revenue_by_abc"):
        by_abc = {"A": Decimal(0), "B": Decimal(0), "C": Decimal(0)}
        abc = segments.values_of("abc")
        for cid, revenue in per_customer_12m.items():
            by_abc[abc.get(cid) or "C"] += revenue
        yield Metric("revenue_by_abc", "Revenue by ABC class, last 12 months", by_abc,
                     currency)
    yield Metric("average_order_value", "Average order value, last 12 months",
                 (revenue_12m / orders_12m).quantize(Decimal("0.01")) if orders_12m else None,
                 currency)
    yield Metric("repeat_purchase_rate", "Repeat purchase rate",
                 _ratio(t.repeaters, t.buyers), "ratio",
                 "customers with purchases on two or more days / customers with a purchase")
    retention = _ratio(t.retained, t.buyers_before)
    yield Metric("retention_rate", "Retention rate", retention, "ratio",
                 "buyers of the previous 12 months who bought again in the last 12 months")
    yield Metric("churn_rate", "Churn rate",
                 round(1 - retention, 4) if retention is not None else None, "ratio",
                 "1 - retention rate")
    yield Metric("historical_clv", "Historical customer lifetime value",
                 (sum(t.lifetime, Decimal(0)) / len(t.lifetime)).quantize(Decimal("0.01"))
                 if t.lifetime else None, currency,
                 "all-time revenue per customer who bought")
    nps_scores = t.nps_scores
    promoters = sum(1 for s in nps_scores if s >= 9)
    detractors = sum(1 for s in nps_scores if s <= 6)
    yield Metric("nps", "Net Promoter Score, last 12 months",
                 round(100 * (promoters - detractors) / len(nps_scores))
                 if nps_scores else None, "points",
                 f"latest score per customer; {len(nps_scores)} responses")
    yield Metric("nps_distribution", "Feedback scores, last 12 months", distribution)
    yield Metric("lead_conversion", "Lead to customer conversion",
                 _ratio(t.converted_12m, t.new_leads_12m), "ratio",
                 f"of {t.new_leads_12m} customers first in touch in the last 12 months, "
                 "the share that bought")
    open_deals = [d for d in snapshot.workspace.deals.values() if d.is_open and d.value]
    pipeline = sum((d.value for d in open_deals), Decimal(0))  # type: ignore[misc]
    weighted = sum((d.value * (d.probability if d.probability is not None  # type: ignore[operator]
                               else STAGE_PROBABILITY.get(d.stage, Decimal("0.5")))
                    for d in open_deals), Decimal(0))
    yield Metric("pipeline_value", "Open pipeline", pipeline, currency,
                 f"{len(open_deals)} open deals")
    yield Metric("pipeline_weighted", "Open pipeline, weighted by probability",
                 weighted.quantize(Decimal("0.01")), currency)
    if want("top_customers"):
        yield Metric("top_customers", "Top customers, last 12 months",
                     [{"customer": cid, "name": snapshot.customer(cid).name,  # type: ignore[union-attr]
                       "revenue": per_customer_12m[cid], "abc": segments.label(cid, "abc")}
                      for cid in t.top], currency)
    if want("pareto"):
        yield Metric("pareto", "Cumulative share of revenue by customers ranked",
                     list(t.ranked), currency)
    if want("at_risk"):
        stage = segments.values_of("lifecycle")
        since = segments.values_of("lifecycle_since")
        at_risk = [c.id for c in customers if stage.get(c.id) == "at_risk"]

        def row(cid: str) -> dict[str, object]:
            derived = snapshot.derived(cid)
            return {"customer": cid, "name": snapshot.workspace.customers[cid].name,
                    "since": since.get(cid), "last_purchase": derived.last_purchase,
                    "revenue": derived.revenue}

        # the same row objects while nothing about them changed: reports keep their text
        rows = snapshot.per_customer_many(f"{NAME}.at_risk", at_risk,
                                          lambda ids: {cid: row(cid) for cid in ids},
                                          {cid: since.get(cid) for cid in at_risk})
        yield Metric("at_risk", "Customers at risk", list(rows.values()), currency)
    if want("complaints"):
        yield Metric("complaints", "Complaints, last 12 months",
                     [{"customer": i.customer, "date": i.date, "summary": i.summary}
                      for i in t.complaints])


@crmkit.hookimpl
def crmkit_metrics(snapshot: Snapshot, segments: Segmentation,
                   wanted: frozenset[str] | None) -> Iterator[Metric]:
    return compute(snapshot, segments, wanted)
