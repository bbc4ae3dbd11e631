"""Key figures of the business as of ``--today``, for reports and ``--format json``.

Most figures are sums over every customer's :class:`Contribution` (a plain
function of one customer, registered as the per-customer rule of each metric;
the core computes it once per customer and keeps it while the customer's data is
the same); the definitions are in docs/reports.md.  "The period" is the 365 days
up to and including ``--today``; "the previous period" the 365 days before it.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import statistics
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import crmkit
from crmkit import CustomerView, Interaction, Metric, Option

NAME = "kpis"


def N_(message: str) -> str:
    """Marks a title for translation (``pybabel extract``); reports translate it when shown."""
    return message

STAGES = ("lead", "new", "active", "at_risk", "lost")
STAGE_PROBABILITY = {"lead": Decimal("0.1"), "qualified": Decimal("0.3"),
                     "proposal": Decimal("0.5"), "negotiation": Decimal("0.7"),
                     "open": Decimal("0.5")}
TOP = 10
#: The interaction types that are requests to answer (the ``respond`` reminder's default).
REQUEST_TYPES = frozenset({"support", "complaint"})


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
    #: The first purchase was in the period.
    new_customer: bool = False


def contribution(c: CustomerView) -> Contribution:
    """One customer's part of the figures."""
    today = c.today
    currency = c.settings.currency
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
    for i in c.history:
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
    first_contact = c.derived.first_contact
    first_purchase = c.derived.first_purchase
    return Contribution(len(days), bought_now, bought_before, lifetime, revenue_12m, orders_12m,
                        tuple(by_month.items()), nps, tuple(complaints),
                        first_contact is not None and first_contact > start,
                        first_purchase is not None and first_purchase > start)


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
    new_customers_12m: int = 0
    nps_scores: list[int] = field(default_factory=list)
    complaints: list[Interaction] = field(default_factory=list)
    #: The customers with the highest revenue in the period, best first.
    top: list[str] = field(default_factory=list)
    #: Every customer's revenue in the period, highest first.
    ranked: list[float] = field(default_factory=list)
    #: The workspace's, for the descriptions of the figures.
    locale: str = "en"


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
        if part.new_customer:
            t.new_customers_12m += 1
    return t


def merged_totals(blocks: tuple[Totals, ...], today: dt.date) -> Totals:
    """The blocks' sums added up, in order, and the rankings.  Decimal sums are exact,
    so adding block sums gives the very value (and exponent) of one long sum."""
    t = Totals(by_month=dict.fromkeys(month_keys(today), Decimal(0)))
    for block in blocks:
        for name in ("orders_12m", "buyers", "repeaters", "retained", "buyers_before",
                     "new_leads_12m", "converted_12m", "new_customers_12m", "revenue_12m"):
            setattr(t, name, getattr(t, name) + getattr(block, name))
        for key, amount in block.by_month.items():
            t.by_month[key] += amount
        t.per_customer_12m.update(block.per_customer_12m)
        t.lifetime.extend(block.lifetime)
        t.nps_scores.extend(block.nps_scores)
        t.complaints.extend(block.complaints)
    revenue = t.per_customer_12m
    # the first TOP of the sorted list, without sorting thousands of Decimals (slow to
    # compare); floats sort in the order of the Decimals they come from
    t.top = heapq.nsmallest(TOP, revenue, key=lambda cid: (-revenue[cid], cid))
    t.ranked = sorted(map(float, revenue.values()), reverse=True)
    t.complaints.sort(key=lambda i: i.sort_key, reverse=True)
    return t


def totals_of(parts: Mapping[str, Contribution], scope: Any) -> Totals:
    """Every customer's contribution summed (kept by the core while the parts are the
    same)."""
    result = totals(dict(parts), scope.today)
    result.locale = scope.settings.locale  # for the descriptions
    return result


def _stages(parts: Mapping[str, str | None], scope: Any) -> dict[str, int]:
    stages = Counter(parts.values())
    return {s: stages.get(s, 0) for s in STAGES}


def _revenue_by_abc(parts: Mapping[str, tuple[str | None, Decimal]], scope: Any
                    ) -> dict[str, Decimal]:
    by_abc = {"A": Decimal(0), "B": Decimal(0), "C": Decimal(0)}
    for abc, revenue in parts.values():
        if revenue:
            by_abc[abc or "C"] += revenue
    return by_abc


def _abc_and_revenue(c: CustomerView) -> tuple[str | None, Decimal]:
    return c.labels["abc"], c.derived.revenue_12m


def _top_customers(population: Any) -> list[dict[str, Any]]:
    """The rows of the top customers (``_totals.top``): over everybody, as it looks up a
    handful of customers (per-customer parts that read ``_totals`` were all made again
    by every purchase, which moves the totals)."""
    t: Totals = population.metrics["_totals"]
    rows = []
    for cid in t.top:
        found = population.customer(cid)
        rows.append({"customer": cid, "name": found.customer.name if found else cid,
                     "revenue": t.per_customer_12m[cid],
                     "abc": found.labels["abc"] if found else None})
    return rows


def _at_risk_row(c: CustomerView) -> dict[str, object] | None:
    if c.labels["lifecycle"] != "at_risk":
        return None
    derived = c.derived
    return {"customer": c.id, "name": c.customer.name, "since": c.labels["lifecycle_since"],
            "last_purchase": derived.last_purchase, "revenue": derived.revenue}


def _present(parts: Mapping[str, Any], scope: Any) -> list[Any]:
    return [row for row in parts.values() if row is not None]


def _one(c: CustomerView) -> int:
    return 1


def _count(parts: Mapping[str, int], scope: Any) -> int:
    return len(parts)


def _pipeline(population: Any) -> tuple[Decimal, Decimal, int, str]:
    """The open deals' value, weighted by the deal's own probability, else its stage's:
    ``pipeline.stages`` in crmkit.yaml as the pipeline plugin reads them (its
    ``_stage_probabilities``), the defaults above without that plugin."""
    configured = population.metrics.get("_stage_probabilities")
    stages = configured if configured is not None else STAGE_PROBABILITY
    open_deals = [d for d in population.deals.values() if d.is_open and d.value]
    value = sum((d.value for d in open_deals), Decimal(0))
    weighted = sum((d.value * (d.probability if d.probability is not None
                               else stages.get(d.stage, Decimal("0.5")))
                    for d in open_deals), Decimal(0))
    return (value, weighted.quantize(Decimal("0.01")), len(open_deals),
            population.settings.locale)  # the locale: for the description


def _distribution(t: Totals) -> dict[int, int]:
    distribution = dict.fromkeys(range(11), 0)
    for score in t.nps_scores:
        distribution[score] += 1
    return distribution


def _nps(t: Totals) -> int | None:
    scores = t.nps_scores
    promoters = sum(1 for s in scores if s >= 9)
    detractors = sum(1 for s in scores if s <= 6)
    return round(100 * (promoters - detractors) / len(scores)) if scores else None


def _retention(t: Totals) -> float | None:
    return _ratio(t.retained, t.buyers_before)


def working_days_between(start: dt.date, end: dt.date) -> int:
    """The working days (Monday to Friday) after ``start`` up to and including ``end``:
    0 on the same day, 1 from a Friday to the Monday after."""
    weeks, rest = divmod((end - start).days, 7)
    days = 5 * weeks
    for n in range(1, rest + 1):
        if (start + dt.timedelta(days=n)).weekday() < 5:
            days += 1
    return days


def _answers(answer: Interaction, request: Interaction) -> bool:
    """The ``respond`` reminder's rule (docs/reminders.md): reaching out on a later day,
    or on the request's day unless both have times and the answer's is earlier."""
    if answer is request or not answer.reaches_out or answer.date < request.date:
        return False
    if answer.date > request.date:
        return True
    return answer.at is None or request.at is None or answer.at >= request.at


def first_responses(c: CustomerView) -> tuple[int | None, ...]:
    """Per inbound request (support or complaint, not outbound) in the period: the
    working days until the first answer, or ``None`` while it has none."""
    start = c.today - dt.timedelta(days=365)
    history = c.history
    answers = [n for n, i in enumerate(history) if i.reaches_out]
    days = [history[n].date for n in answers]
    found: list[int | None] = []
    for request in history:
        if request.date <= start or request.type not in REQUEST_TYPES \
                or request.direction == "outbound":
            continue
        first = None
        for k in range(bisect.bisect_left(days, request.date), len(answers)):
            answer = history[answers[k]]
            if _answers(answer, request):
                first = working_days_between(request.date, answer.date)
                break
        found.append(first)
    return tuple(found)


def _median_response(parts: Mapping[str, tuple[int | None, ...]], scope: Any
                     ) -> tuple[float | int | None, int, int, str]:
    """The median working days to the first answer, the requests answered and those
    without an answer."""
    answered = sorted(d for times in parts.values() for d in times if d is not None)
    waiting = sum(1 for times in parts.values() for d in times if d is None)
    return ((statistics.median(answered) if answered else None), len(answered), waiting,
            scope.settings.locale)  # the locale: for the description


# --- money owed ---------------------------------------------------------------------------

#: The payment states of a purchase that is not paid yet (docs/workspace-format.md).
OWED = frozenset({"open", "unpaid"})
PAYMENT_EXAMPLE = """\
payments:
  terms_days: 14"""
PAYMENT_OPTIONS = {
    "terms_days": Option(14, "Days after a purchase its payment is due; an open or unpaid "
                             "purchase is overdue after them.", minimum=0),
}


@dataclass(frozen=True, slots=True)
class Owed:
    """One customer's unpaid purchases (``payment: open`` or ``unpaid``) up to today."""

    name: str
    amount: Decimal
    purchases: int
    #: The days since the oldest unpaid purchase fell due (0: none is overdue yet).
    days_overdue: int
    overdue_amount: Decimal
    #: Purchases of the period recorded as paid late (``payment: late``).
    paid_late: int


def owed(c: CustomerView) -> Owed | None:
    """What the customer owes as of today: the purchases whose ``payment`` is open or
    unpaid, due ``terms_days`` after their date."""
    today = c.today
    currency = c.settings.currency
    start = today - dt.timedelta(days=365)
    terms = dt.timedelta(days=c.options.terms_days)
    amount = overdue_amount = Decimal(0)
    count = late = days = 0
    for i in c.history:
        if i.type != "purchase" or i.payment is None:
            continue
        if i.payment == "late" and i.date > start:
            late += 1
        if i.payment in OWED and _counted(i, currency):
            count += 1
            amount += i.amount  # type: ignore[operator]
            overdue = (today - (i.date + terms)).days
            if overdue > 0:
                overdue_amount += i.amount  # type: ignore[operator]
                days = max(days, overdue)
    if not count and not late:
        return None
    return Owed(c.customer.name, amount, count, days, overdue_amount, late)


@dataclass(frozen=True, slots=True)
class Debts:
    """Everybody's unpaid purchases: the total and who owes what, most overdue first."""

    total: Decimal
    overdue: Decimal
    purchases: int
    paid_late: int
    rows: tuple[dict[str, Any], ...]
    locale: str
    currency: str


def _debts(parts: Mapping[str, Owed | None], scope: Any) -> Debts:
    found = [(cid, part) for cid, part in parts.items() if part is not None and part.purchases]
    found.sort(key=lambda f: (-f[1].days_overdue, -f[1].amount, f[0]))
    return Debts(
        sum((p.amount for _, p in found), Decimal(0)),
        sum((p.overdue_amount for _, p in found), Decimal(0)),
        sum(p.purchases for _, p in found),
        sum(p.paid_late for p in parts.values() if p is not None),
        tuple({"customer": cid, "name": p.name, "amount": p.amount, "purchases": p.purchases,
               "days_overdue": p.days_overdue, "overdue_amount": p.overdue_amount}
              for cid, p in found),
        scope.settings.locale, scope.settings.currency)


def _debts_note(d: Debts) -> str:
    t = crmkit.translations(d.locale)
    text = t.ngettext("%(num)d unpaid purchase, %(overdue)s of it overdue",
                      "%(num)d unpaid purchases, %(overdue)s of it overdue", d.purchases)
    return text % {"num": d.purchases, "overdue": t.money(d.overdue, d.currency)} \
        if d.purchases else t.gettext("nothing unpaid")


def _figure(name: str, title: str, value: Any, unit: str | None = None,
            description: Any = "") -> Metric:
    return Metric(name, title, contribution, across=totals_of, value=value, unit=unit,
                  description=description)


METRICS = (
    Metric("customers", N_("Customers"), _one, across=_count),
    Metric("stages", N_("Customers by lifecycle stage"),
           lambda c: c.labels["lifecycle"], across=_stages, reads=("lifecycle",)),
    _figure("revenue_12m", N_("Revenue, last 12 months"), lambda t: t.revenue_12m, "currency"),
    _figure("revenue_by_month", N_("Revenue by month"),
            lambda t: [{"month": k, "revenue": v} for k, v in t.by_month.items()], "currency"),
    Metric("revenue_by_abc", N_("Revenue by ABC class, last 12 months"), _abc_and_revenue,
           across=_revenue_by_abc, reads=("abc",), unit="currency"),
    _figure("average_order_value", N_("Average order value, last 12 months"),
            lambda t: (t.revenue_12m / t.orders_12m).quantize(Decimal("0.01"))
            if t.orders_12m else None, "currency"),
    _figure("repeat_purchase_rate", N_("Repeat purchase rate"),
            lambda t: _ratio(t.repeaters, t.buyers), "ratio",
            N_("customers with purchases on two or more days / customers with a purchase")),
    _figure("retention_rate", N_("Retention rate"), _retention, "ratio",
            N_("buyers of the previous 12 months who bought again in the last 12 months")),
    _figure("churn_rate", N_("Churn rate"),
            lambda t: round(1 - r, 4) if (r := _retention(t)) is not None else None, "ratio",
            N_("1 - retention rate")),
    _figure("historical_clv", N_("Historical customer lifetime value"),
            lambda t: (sum(t.lifetime, Decimal(0)) / len(t.lifetime)).quantize(Decimal("0.01"))
            if t.lifetime else None, "currency", N_("all-time revenue per customer who bought")),
    _figure("nps", N_("Net Promoter Score, last 12 months"), _nps, "points",
            lambda t: crmkit.translations(t.locale).ngettext(
                "latest score per customer; %(num)d response",
                "latest score per customer; %(num)d responses",
                len(t.nps_scores)) % {"num": len(t.nps_scores)}),
    _figure("nps_distribution", N_("Feedback scores, last 12 months"), _distribution),
    _figure("lead_conversion", N_("Lead to customer conversion"),
            lambda t: _ratio(t.converted_12m, t.new_leads_12m), "ratio",
            lambda t: crmkit.translations(t.locale).ngettext(
                "of %(num)d customer first in touch in the last 12 months, the share that bought",
                "of %(num)d customers first in touch in the last 12 months, the share that "
                "bought", t.new_leads_12m) % {"num": t.new_leads_12m}),
    Metric("pipeline_value", N_("Open pipeline"), over_all=_pipeline, value=lambda p: p[0],
           unit="currency", description=lambda p: crmkit.translations(p[3]).ngettext(
               "%(num)d open deal", "%(num)d open deals", p[2]) % {"num": p[2]},
           reads=("_stage_probabilities?",)),
    Metric("pipeline_weighted", N_("Open pipeline, weighted by probability"), over_all=_pipeline,
           value=lambda p: p[1], unit="currency", reads=("_stage_probabilities?",)),
    _figure("_totals", "The sums every figure above is made of", lambda t: t),
    Metric("top_customers", N_("Top customers, last 12 months"), over_all=_top_customers,
           reads=("abc", "_totals"), unit="currency"),
    _figure("pareto", N_("Cumulative share of revenue by customers ranked"),
            lambda t: list(t.ranked), "currency"),
    Metric("at_risk", N_("Customers at risk"), _at_risk_row, across=_present,
           reads=("lifecycle", "lifecycle_since"), unit="currency"),
    Metric("first_response_time", N_("Median first response, last 12 months"),
           first_responses, across=_median_response, value=lambda r: r[0],
           unit="working days",
           description=lambda r: crmkit.translations(r[3]).gettext(
               "support requests and complaints: %(answered)d answered, %(waiting)d without "
               "an answer") % {"answered": r[1], "waiting": r[2]}),
    _figure("new_leads", N_("New leads, last 12 months"), lambda t: t.new_leads_12m, None,
            N_("customers first in touch in the last 12 months")),
    _figure("new_customers", N_("New customers, last 12 months"),
            lambda t: t.new_customers_12m, None,
            N_("customers whose first purchase was in the last 12 months")),
    Metric("money_owed", N_("Money owed"), owed, across=_debts, value=lambda d: d.total,
           unit="currency", description=_debts_note, options=PAYMENT_OPTIONS,
           settings="payments"),
    Metric("who_owes", N_("Who owes me"), owed, across=_debts, value=lambda d: list(d.rows),
           unit="currency", options=PAYMENT_OPTIONS, settings="payments"),
    Metric("late_payments", N_("Purchases paid late, last 12 months"), owed, across=_debts,
           value=lambda d: d.paid_late, options=PAYMENT_OPTIONS, settings="payments",
           description=N_("purchases recorded as paid late (payment: late)")),
    _figure("complaints", N_("Complaints, last 12 months"),
            lambda t: [{"customer": i.customer, "date": i.date, "summary": i.summary}
                       for i in t.complaints]),
)


@crmkit.hookimpl
def crmkit_register(register: Any) -> None:
    register(crmkit.ConfigSection("payments", "When an unpaid purchase is overdue (the "
                                  "dashboard's money owed).", PAYMENT_EXAMPLE,
                                  options=PAYMENT_OPTIONS))
    for metric in METRICS:
        register(metric)
