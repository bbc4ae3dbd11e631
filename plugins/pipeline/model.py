"""The figures of ``crmkit sources``, ``leads`` and ``pipeline``: plain functions of the
records, the labels and the deals' timelines (docs/pipeline.md defines each)."""

from __future__ import annotations

import datetime as dt
import statistics
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import crmkit

from .history import CLOSED, Timeline

#: The stages a workspace has unless ``pipeline.stages`` says otherwise, in the
#: board's order, with their default probabilities (a deal's own ``probability`` wins).
DEFAULT_STAGES = {"lead": 0.1, "qualified": 0.3, "proposal": 0.5, "negotiation": 0.7,
                  "open": 0.5}
NO_SOURCE = "(none)"
CENT = Decimal("0.01")


def _ratio(part: int, whole: int) -> float | None:
    return round(part / whole, 4) if whole else None


def _money(value: Decimal) -> Decimal:
    return value.quantize(CENT)


# --- sources ----------------------------------------------------------------------------


def source_of(customer: crmkit.Customer, referral: str) -> str:
    """The source a customer counts under: their own, else the referral source when
    someone referred them, else ``(none)``."""
    if customer.source:
        return customer.source
    return referral if customer.referred_by else NO_SOURCE


@dataclass
class SourceRow:
    """One source's (or campaign's, or referrer's) figures."""

    name: str
    leads: int = 0
    won: int = 0
    revenue: Decimal = Decimal(0)
    days: list[int] | None = None
    clvs: list[float] | None = None

    def add(self, view: crmkit.CustomerView, clv: float | None) -> None:
        derived = view.derived
        self.leads += 1
        if derived.first_purchase is None:
            return
        self.won += 1
        self.revenue += derived.revenue
        if derived.first_contact is not None:
            (self.days if self.days is not None else self._start_days()).append(
                (derived.first_purchase - derived.first_contact).days)
        if clv is not None:
            (self.clvs if self.clvs is not None else self._start_clvs()).append(clv)

    def _start_days(self) -> list[int]:
        self.days = []
        return self.days

    def _start_clvs(self) -> list[float]:
        self.clvs = []
        return self.clvs

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name, "leads": self.leads, "won": self.won,
            "conversion": _ratio(self.won, self.leads),
            "median_days_to_purchase": statistics.median(self.days) if self.days else None,
            "revenue": _money(self.revenue),
            "historical_clv": _money(self.revenue / self.won) if self.won else None,
            "predicted_clv": round(statistics.fmean(self.clvs), 2) if self.clvs else None,
        }


def sources(views: Iterable[crmkit.CustomerView], since: dt.date | None, referral: str,
            clv: Mapping[str, Any] | None = None) -> dict[str, list[dict[str, Any]]]:
    """Per source, per campaign and per referrer: the leads first in touch on or after
    ``since`` (everybody without it) and what became of them."""
    by_source: dict[str, SourceRow] = {}
    by_campaign: dict[str, SourceRow] = {}
    by_referrer: dict[str, SourceRow] = {}
    clv = clv or {}
    for view in views:
        first = view.derived.first_contact
        if since is not None and (first is None or first < since):
            continue
        record = view.customer
        value = clv.get(view.id)
        value = float(value) if isinstance(value, (int, float, Decimal)) else None
        name = source_of(record, referral)
        by_source.setdefault(name, SourceRow(name)).add(view, value)
        if record.campaign:
            by_campaign.setdefault(record.campaign, SourceRow(record.campaign)).add(view, value)
        if record.referred_by:
            by_referrer.setdefault(record.referred_by, SourceRow(record.referred_by)).add(
                view, value)

    def ordered(rows: dict[str, SourceRow]) -> list[dict[str, Any]]:
        return [r.to_json() for r in sorted(rows.values(), key=lambda r: (-r.leads, r.name))]

    return {"sources": ordered(by_source), "campaigns": ordered(by_campaign),
            "referrers": ordered(by_referrer)}


# --- lead scoring -----------------------------------------------------------------------


def lead_stage(score: int, warm: int, qualified: int) -> str:
    if score >= qualified:
        return "qualified"
    return "warm" if score >= warm else "cold"


# --- the pipeline -----------------------------------------------------------------------


def probability(deal: crmkit.Deal, stages: Mapping[str, float]) -> Decimal:
    """The deal's own probability, else its stage's; won is 1, lost 0."""
    if deal.stage == "won":
        return Decimal(1)
    if deal.stage == "lost":
        return Decimal(0)
    if deal.probability is not None:
        return deal.probability
    return Decimal(str(stages.get(deal.stage, 0.5)))


def _month(day: dt.date) -> str:
    return f"{day.year:04d}-{day.month:02d}"


def deal_row(deal: crmkit.Deal, timeline: Timeline, stages: Mapping[str, float],
             source: str | None, last_activity: dt.date | None, today: dt.date
             ) -> dict[str, Any]:
    p = probability(deal, stages)
    value = deal.value if deal.value is not None else Decimal(0)
    closed = timeline.entered(deal.stage) if deal.stage in CLOSED else None
    opened = timeline.opened
    return {
        "id": deal.id, "customer": deal.customer, "title": deal.title, "stage": deal.stage,
        "value": deal.value, "probability": float(p), "weighted": _money(value * p),
        "expected_close": deal.expected_close, "source": deal.source or source,
        "campaign": deal.campaign, "reason": deal.reason, "opened": opened,
        "closed": closed,
        "cycle_days": (closed - opened).days if closed and opened else None,
        "stage_since": timeline.entered(deal.stage),
        "history": [{"date": d, "stage": s} for d, s in timeline.changes],
        "history_from": timeline.basis, "last_activity": last_activity,
        "days_without_activity": (today - last_activity).days if last_activity else None,
    }


def pipeline(rows: list[dict[str, Any]], stages: Mapping[str, float], since: dt.date,
             today: dt.date, stale_days: int) -> dict[str, Any]:
    """The pipeline's figures from every deal's row (:func:`deal_row`)."""
    open_rows = [r for r in rows if r["stage"] not in CLOSED]
    order = list(stages) + sorted({r["stage"] for r in open_rows} - set(stages))
    by_stage = []
    for stage in order:
        in_stage = [r for r in open_rows if r["stage"] == stage]
        by_stage.append({
            "stage": stage, "probability": stages.get(stage), "count": len(in_stage),
            "value": _money(sum((r["value"] or Decimal(0) for r in in_stage), Decimal(0))),
            "weighted": _money(sum((r["weighted"] for r in in_stage), Decimal(0))),
            "deals": [r["id"] for r in in_stage]})
    forecast: dict[str, dict[str, Any]] = {}
    for r in sorted(open_rows, key=lambda r: (r["expected_close"] or dt.date.max, r["id"])):
        key = _month(r["expected_close"]) if r["expected_close"] else "none"
        month = forecast.setdefault(key, {"month": key, "count": 0, "value": Decimal(0),
                                          "weighted": Decimal(0)})
        month["count"] += 1
        month["value"] += r["value"] or Decimal(0)
        month["weighted"] += r["weighted"]
    for month in forecast.values():
        month["value"], month["weighted"] = _money(month["value"]), _money(month["weighted"])
    closed = [r for r in rows if r["stage"] in CLOSED]
    in_period = [r for r in closed if r["closed"] and since <= r["closed"] <= today]
    undated = [r["id"] for r in closed if r["closed"] is None]
    won = [r for r in in_period if r["stage"] == "won"]
    lost = [r for r in in_period if r["stage"] == "lost"]
    cycles = [r["cycle_days"] for r in won if r["cycle_days"] is not None]

    def closed_row(r: dict[str, Any]) -> dict[str, Any]:
        return {k: r[k] for k in ("id", "customer", "title", "value", "closed", "reason",
                                  "cycle_days")}

    return {
        "today": today, "since": since,
        "open": {"count": len(open_rows),
                 "value": _money(sum((r["value"] or Decimal(0) for r in open_rows),
                                     Decimal(0))),
                 "weighted": _money(sum((r["weighted"] for r in open_rows), Decimal(0)))},
        "stages": by_stage,
        "forecast": sorted(forecast.values(), key=lambda m: (m["month"] == "none",
                                                             m["month"])),
        "won": [closed_row(r) for r in sorted(won, key=lambda r: (r["closed"], r["id"]))],
        "lost": [closed_row(r) for r in sorted(lost, key=lambda r: (r["closed"], r["id"]))],
        "won_value": _money(sum((r["value"] or Decimal(0) for r in won), Decimal(0))),
        "win_rate": _ratio(len(won), len(won) + len(lost)),
        "average_cycle_days": round(statistics.fmean(cycles), 1) if cycles else None,
        "closed_without_date": undated,
        "stale_days": stale_days,
        "stale": [{"id": r["id"], "customer": r["customer"], "title": r["title"],
                   "last_activity": r["last_activity"],
                   "days_without_activity": r["days_without_activity"]}
                  for r in open_rows if r["last_activity"] is None
                  or r["days_without_activity"] > stale_days],
        "overdue": [{"id": r["id"], "customer": r["customer"], "title": r["title"],
                     "expected_close": r["expected_close"],
                     "days_overdue": (today - r["expected_close"]).days}
                    for r in sorted(open_rows, key=lambda r: (r["expected_close"]
                                                              or dt.date.max, r["id"]))
                    if r["expected_close"] and r["expected_close"] < today],
        "deals": rows,
    }


def open_on(deals: Mapping[str, crmkit.Deal], timelines: Mapping[str, Timeline],
            stages: Mapping[str, float], day: dt.date) -> dict[str, Any]:
    """The open pipeline as it was on ``day``, from the stage history: per stage the
    deals, their value and the value weighted by the stage's probability (the deal's
    own where it is still in that stage), and the totals.  A deal counts with today's
    value; one not known yet on ``day`` does not count."""
    by_stage: dict[str, dict[str, Any]] = {}
    for deal_id, deal in sorted(deals.items()):
        timeline = timelines.get(deal_id)
        stage = timeline.stage_on(day) if timeline is not None else None
        if stage is None or stage in CLOSED:
            continue
        p = deal.probability if stage == deal.stage and deal.probability is not None \
            else Decimal(str(stages.get(stage, 0.5)))
        value = deal.value if deal.value is not None else Decimal(0)
        row = by_stage.setdefault(stage, {"count": 0, "value": Decimal(0),
                                          "weighted": Decimal(0)})
        row["count"] += 1
        row["value"] += value
        row["weighted"] += _money(value * p)  # per deal, as deal_row rounds
    for row in by_stage.values():
        row["value"], row["weighted"] = _money(row["value"]), _money(row["weighted"])
    return {"stages": by_stage,
            "count": sum(r["count"] for r in by_stage.values()),
            "value": _money(sum((r["value"] for r in by_stage.values()), Decimal(0))),
            "weighted": _money(sum((r["weighted"] for r in by_stage.values()), Decimal(0)))}


def last_activity(history: Iterable[crmkit.Interaction]) -> dt.date | None:
    """The last contact with the customer (any interaction that is a contact)."""
    last = None
    for i in history:
        if i.is_contact:
            last = i.date
    return last


#: The funnel's steps, in order.
FUNNEL_STEPS = ("lead", "qualified", "offer", "won")


def funnel_step(view: crmkit.CustomerView, stage: str | None, offer_stages: frozenset[str],
                since: dt.date) -> str | None:
    """The furthest step of the funnel a customer first in touch on or after ``since``
    reached (``stage``: their lead stage); ``None`` for one in touch before."""
    first = view.derived.first_contact
    if first is None or first < since:
        return None
    if view.derived.first_purchase is not None or any(d.stage == "won" for d in view.deals):
        return "won"
    if any(i.type == "quote" for i in view.history) or any(
            d.stage in offer_stages or d.stage == "lost" for d in view.deals):
        return "offer"
    return "qualified" if stage == "qualified" else "lead"


def funnel(steps: Iterable[str | None]) -> list[tuple[str, int]]:
    """How many customers are leads, qualified, got an offer and bought, from each one's
    :func:`funnel_step`: each step counts those who reached it or a later one."""
    import collections

    reached = collections.Counter(steps)
    counts, total = [], 0
    for step in reversed(FUNNEL_STEPS):
        total += reached[step]
        counts.append((step, total))
    return counts[::-1]
