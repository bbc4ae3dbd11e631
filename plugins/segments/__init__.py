"""Segmentation: lifecycle stage, ABC class, RFM code, win-back worthiness and the
workspace's own segments, for every customer as of ``--today``.

Every label is a rule registered with the core: a plain function of one customer
(or of everybody's parts, for ABC and RFM).  docs/segments.md states the rules
exactly.  The stages at risk and lost are thresholds on the churn risk, the chance
of no purchase within a horizon: from ``_model_risk`` where a plugin registers it
(the predict plugin, from its fitted Pareto/NBD model), else from the workspace's own
distribution of gaps between occasions.  Either way, a
customer kept by a service contract (serviced within its interval) is never at
risk or lost.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import click

import crmkit
from crmkit import ConfigSection, CustomerView, Label, Option

NAME = "segments"
LIFE = "segmentation.lifecycle"
STAGES = ("lead", "new", "active", "at_risk", "lost")

LIFECYCLE = {
    "activity_types": Option(("purchase", "service"), "Interaction types that count as "
                             "activity for the stage (their distinct days)."),
    "occasion_days": Option(7, "Activity days this close after an occasion's first day "
                            "belong to it (a service and its invoice days later are one "
                            "occasion, not a rhythm of a few days).", minimum=0),
    "contract_tolerance_days": Option(
        30, "A customer whose service contract was serviced at most its interval plus "
        "this many days ago is never at risk or lost.", minimum=0),
    "new_days": Option(90, "A first activity this recent makes a customer new.", minimum=1),
    "engaged_days": Option(
        60, "A conversation the customer started this recently (or an open deal) keeps them "
        "active whatever the churn risk says.", minimum=0),
    "churn_horizon_days": Option(
        90, "The churn risk is the chance of no purchase within this many days (at least "
        "the workspace's usual gap between purchases).", minimum=1),
    "at_risk_above": Option(0.8, "At risk from this churn risk on.", minimum=0, maximum=1),
    "lost_above": Option(0.95, "Lost from this churn risk on.", minimum=0, maximum=1),
    "rhythm_min_gaps": Option(3, "A customer's own rhythm counts from this many gaps "
                              "between occasions on.", minimum=1),
    "usual_gap_days": Option(365, "The usual gap assumed while the workspace has no "
                             "repeat activity at all.", minimum=1),
}
ABC = {
    "window_days": Option(365, "Revenue of this many days up to today counts.", minimum=1),
    "a": Option(0.8, "Share of revenue the A customers make.", minimum=0, maximum=1),
    "b": Option(0.95, "Share of revenue the A and B customers make.", minimum=0, maximum=1),
}
WIN_BACK = {
    "min_revenue": Option(500.0, "Worth winning back from this value on.", minimum=0),
    "max_complaints": Option(2, "From this many complaints on, not worth it.", minimum=1),
    "max_late_payments": Option(2, "From this many late payments on, not worth it.",
                                minimum=1),
    "discount_only_share": Option(0.8, "Bought on discount this often: not worth it.",
                                  minimum=0, maximum=1),
}

SETTINGS_EXAMPLE = """\
segmentation:
  lifecycle: {activity_types: [purchase, service], new_days: 90, churn_horizon_days: 90,
              at_risk_above: 0.8, lost_above: 0.95, contract_tolerance_days: 30}
  abc: {window_days: 365, a: 0.8, b: 0.95}
  win_back: {min_revenue: 500, max_complaints: 2, max_late_payments: 2}"""
SEGMENTS_EXAMPLE = """\
segments:
  vip: revenue_12m > 5000 or tags contains "vip"
  weimar_regulars: tags contains "weimar" and lifecycle == "active\""""


# --- lifecycle --------------------------------------------------------------------------


def _(message: str) -> str:
    """What a command says itself, in the terminal's language (LANG)."""
    return crmkit.translations(terminal=True).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return crmkit.translations(terminal=True).ngettext(singular, plural, n)


def activity_days(history: Iterable[crmkit.Interaction], types: Iterable[str] = ("purchase",)
                  ) -> list[dt.date]:
    """Distinct days with an interaction of ``types`` (several on one day count once)."""
    wanted = frozenset(types)
    return sorted({i.date for i in history if i.type in wanted})


def under_contract(c: CustomerView) -> bool:
    """Whether a service contract that has started keeps the customer: its latest
    ``service`` (``service: NAME``, or none with a single contract, the rule of
    ``service_due``) is at most one interval plus ``contract_tolerance_days`` ago."""
    services = c.customer.services
    if not services:
        return False
    today = c.today
    tolerance = dt.timedelta(days=c.options.contract_tolerance_days)
    single = len(services) == 1
    for service in services:
        if service.start is not None and service.start > today:
            continue
        last = None
        for i in c.history:
            if i.type == "service" and (i.service == service.name or (single and not i.service)):
                last = i.date
        if last is not None and today <= service.interval.add_to(last) + tolerance:
            return True
    return False


def occasions(days: list[dt.date], within: int) -> list[dt.date]:
    """The first day of each occasion: a day more than ``within`` days after the first
    day of the occasion before it starts a new one."""
    starts: list[dt.date] = []
    for day in days:
        if not starts or (day - starts[-1]).days > within:
            starts.append(day)
    return starts


def contract_days(c: CustomerView) -> int | None:
    """The shortest interval (days) of the customer's service contracts that have started."""
    today = c.today
    found = [(s.interval.add_to(today) - today).days for s in c.customer.services
             if s.start is None or s.start <= today]
    return min(found) if found else None


@dataclass(frozen=True, slots=True)
class Activity:
    """A customer's activity as the churn risk sees it."""

    first: dt.date
    last: dt.date
    last_start: dt.date  # the first day of the last occasion
    gaps: tuple[int, ...]  # days between the first days of consecutive occasions
    scale: int | None  # their own rhythm (days): median gap, or a contract's interval
    own: str | None  # "gaps" or "contract": where the scale comes from
    purchases: int


def activity(c: CustomerView) -> Activity | None:
    return _activity(c, c.history)


def _activity(c: CustomerView, history: Sequence[crmkit.Interaction]) -> Activity | None:
    days = activity_days(history, c.options.activity_types)
    if not days:
        return None
    starts = occasions(days, c.options.occasion_days)
    gaps = tuple((b - a).days for a, b in itertools.pairwise(starts))
    scale, own = None, None
    if len(gaps) >= c.options.rhythm_min_gaps:
        scale, own = max(1, round(statistics.median(gaps))), "gaps"
    elif (interval := contract_days(c)) is not None:
        scale, own = max(1, interval), "contract"
    return Activity(days[0], days[-1], starts[-1], gaps, scale, own,
                    len(activity_days(history)))


def rhythm_part(c: CustomerView) -> Activity | None:
    """A customer's part of the workspace's rhythm: their activity before today.  The
    rhythm is what the history before today shows, so a purchase logged today lowers
    the buyer's own risk at once and moves everybody else's rhythm the next day, not
    10,000 risks in the middle of the day (and stages do not twitch while you work)."""
    found: Activity | None = c.labels["_activity"]
    if found is None or found.last < c.today:
        return found
    today = c.today
    return _activity(c, [i for i in c.history if i.date < today])


@dataclass(frozen=True, slots=True)
class Rhythm:
    """The workspace's distribution of gaps between occasions, each measured in its
    customer's usual gap (Kaplan-Meier: the current quiet spells count as gaps that
    have lasted at least that long), linear between the points where gaps ended so
    that a small workspace's risk does not jump from nothing to certainty."""

    usual_days: float  # the median of the repeat customers' mean gaps
    points: tuple[float, ...]  # where the survival falls
    survival: tuple[float, ...]  # P(gap > point), in units of the usual gap
    #: No repeat activity in the workspace yet: the shape is an assumption
    #: (everybody comes back within ``usual_gap_days``), not evidence.
    assumed: bool = False

    def curve(self) -> tuple[Any, Any]:
        """The points and the survival as arrays, from (0, 1) on (u < 0 cannot occur: the
        history ends today)."""
        import numpy as np

        return (np.array((0.0, *self.points)), np.array((1.0, *self.survival)))

    def risks(self, quiet: Any, scale: Any, horizon: Any, curve: Any = None) -> Any:
        """P(no activity in the next ``horizon`` days | quiet for ``quiet`` days), for
        customers whose usual gap is ``scale`` days (arrays: a purchase changes the
        rhythm, and so every customer's risk).  The survival P(gap > u) is 1 at 0,
        linear between the points and the last value after them; ``curve`` is
        :meth:`curve`, if made already."""
        import numpy as np

        points, survival = self.curve() if curve is None else curve
        now = _surviving(quiet / scale, points, survival)
        later = _surviving((quiet + horizon) / scale, points, survival)
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(now <= 0, 1.0, np.minimum(1.0, later / now))

    def risk(self, quiet: float, scale: float, horizon: float) -> float:
        """:meth:`risks` of one customer."""
        import numpy as np

        return float(self.risks(np.array([quiet], dtype=float), scale, horizon)[0])


def _surviving(u: Any, points: Any, survival: Any) -> Any:
    """P(gap > u) for an array of ``u``, linear between the points (which start at 0,
    where it is 1) and the last value after them.  Not ``np.interp``: its formula
    rounds differently in the last bit, and a risk of exactly 0.8 that became
    0.7999999999999999 moved an at-risk day, and so a reminder's id."""
    import numpy as np

    n = np.searchsorted(points, u, side="right")  # points[n - 1] <= u < points[n]
    beyond = n == len(points)
    after = np.minimum(n, len(points) - 1)
    before = np.maximum(n - 1, 0)
    x0, y0 = points[before], survival[before]
    with np.errstate(divide="ignore", invalid="ignore"):
        between = y0 + (survival[after] - y0) * (u - x0) / (points[after] - x0)
    return np.where(beyond, survival[-1], between)


def rhythm(parts: Mapping[str, Activity | None], scope: Any) -> Rhythm:
    options = scope.options
    found = [p for p in parts.values() if p is not None]
    means = [sum(p.gaps) / len(p.gaps) for p in found if p.gaps]
    usual = statistics.median(means) if means else float(options.usual_gap_days)
    import numpy as np

    today = scope.today
    gaps: list[int] = []  # every gap, and its customer's scale, in customer order
    gap_scales: list[float] = []
    quiet: list[int] = []  # each customer's current quiet spell (a gap not ended yet)
    scales: list[float] = []
    for p in found:
        scale = p.scale or usual
        gaps.extend(p.gaps)
        gap_scales.extend([scale] * len(p.gaps))
        quiet.append((today - p.last_start).days)
        scales.append(scale)
    # in units of the customer's usual gap; arrays: a purchase makes this again
    events = np.array(gaps, dtype=float) / np.array(gap_scales, dtype=float)
    durations = np.sort(np.concatenate(
        (events, np.array(quiet, dtype=float) / np.array(scales, dtype=float))))
    ended_at, ended = np.unique(events, return_counts=True)
    at_risk = len(durations) - np.searchsorted(durations, ended_at, side="left")
    points = ended_at.tolist()
    survival = np.cumprod(1 - ended / at_risk).tolist()
    if not points:  # no repeat activity yet: everybody comes back after the usual gap
        return Rhythm(usual, (1.0,), (0.0,), assumed=True)
    return Rhythm(usual, tuple(points), tuple(survival))


def _since(risk_at: Any, quiet: Any, threshold: float) -> Any:
    """Per customer, the first quiet day (0..quiet) at which the risk reached
    ``threshold`` (it rises with the quiet days: bisection, all customers at once).
    ``risk_at(days, which)`` is the risk of the customers ``which`` after ``days``."""
    import numpy as np

    low, high = np.zeros_like(quiet), quiet.copy()
    while (open_ := np.flatnonzero(low < high)).size:
        middle = (low[open_] + high[open_]) // 2
        reached = risk_at(middle, open_) >= threshold
        high[open_[reached]] = middle[reached]
        low[open_[~reached]] = middle[~reached] + 1
    return low


def heuristic_risks(views: list[CustomerView]) -> list[dict[str, Any] | None]:
    """The churn risk from the workspace's own gaps, where no trustworthy model gives it,
    of many customers at once: a purchase changes the workspace's rhythm and so every
    customer's risk, and 10,000 of them one by one cost half a second in watch."""
    import numpy as np

    found = [(n, a) for n, c in enumerate(views) if (a := c.labels["_activity"]) is not None]
    results: list[dict[str, Any] | None] = [None] * len(views)
    if not found:
        return results
    first = views[0]  # what every view shares: the day, the options, the rhythm
    options, today, shape = first.options, first.today, first.metrics["_rhythm"]
    activity: list[Activity] = [a for _n, a in found]
    scales = [a.scale or shape.usual_days for a in activity]
    horizons = [max(options.churn_horizon_days, round(scale)) for scale in scales]
    quiets = [(today - a.last).days for a in activity]
    scale, horizon = np.array(scales, dtype=float), np.array(horizons, dtype=float)
    offset = np.array([(a.last - a.last_start).days for a in activity], dtype=float)
    quiet = np.array(quiets, dtype=np.int64)

    curve = shape.curve()

    def risk_at(days: Any, which: Any) -> Any:
        return shape.risks(days + offset[which], scale[which], horizon[which], curve)

    risks = shape.risks(quiet + offset, scale, horizon, curve)
    since = {}
    for stage, threshold in (("at_risk", options.at_risk_above), ("lost", options.lost_above)):
        # only where the risk reached the threshold: the day it did
        days = _since(risk_at, np.where(risks >= threshold, quiet, 0), threshold).tolist()
        since[stage] = [(a.last + dt.timedelta(days=d)).isoformat() if risk >= threshold
                        else None for a, d, risk in zip(activity, days, risks, strict=True)]
    words = _Reasons(crmkit.translations(first.settings.locale), options, shape)
    for m, ((n, a), risk) in enumerate(zip(found, risks.tolist(), strict=True)):
        results[n] = {"risk": risk, "horizon_days": horizons[m],
                      "at_risk_since": since["at_risk"][m], "lost_since": since["lost"][m],
                      "reason": words.reason(a, quiets[m], scales[m], risk, horizons[m]),
                      "basis": "heuristic"}
    return results


class _Reasons:
    """The churn reasons in the workspace's language, each part made once per text
    (thousands of customers share their quiet days, rhythm and chance)."""

    def __init__(self, t: Any, options: Any, shape: Rhythm) -> None:
        self.t, self.shape = t, shape
        if "service" in options.activity_types:
            self.what = t.gettext("purchase or service")
        else:
            either = t.gettext("or")  # outside the f-string, where pybabel finds it
            self.what = f" {either} ".join(t.word(x) for x in options.activity_types)
        self.parts: dict[tuple[Any, ...], str] = {}

    def reason(self, found: Activity, quiet: int, scale: float, risk: float,
               horizon: int) -> str:
        shape, parts = self.shape, self.parts
        usual_key = ("usual", found.own, found.scale, len(found.gaps))
        usual = parts.get(usual_key)
        if usual is None:
            usual = parts[usual_key] = self._usual(found)
        quiet_text = parts.get(("quiet", quiet))
        if quiet_text is None:
            quiet_text = parts[("quiet", quiet)] = self.t.ngettext(
                "no %(what)s for %(num)s day", "no %(what)s for %(num)s days", quiet) % {
                "what": self.what, "num": self.t.decimal(quiet)}
        if shape.assumed:  # no evidence: say what is assumed, not a made-up chance
            chance = self.t.ngettext(
                "nobody here had bought twice before today: assumed back within %(num)s day",
                "nobody here had bought twice before today: assumed back within %(num)s days",
                round(scale)) % {"num": self.t.decimal(round(scale))}
        else:
            percent = self.t.percent(1 - risk)
            chance = parts.get(("chance", percent, horizon))
            if chance is None:
                chance = parts[("chance", percent, horizon)] = self.t.ngettext(
                    "%(percent)s chance to buy in the next %(num)s day",
                    "%(percent)s chance to buy in the next %(num)s days", horizon) % {
                    "percent": percent, "num": self.t.decimal(horizon)}
        return f"{quiet_text}; {usual}; {chance}"

    def _usual(self, found: Activity) -> str:
        t = self.t
        if found.own == "gaps":
            return t.ngettext("usually every %(num)s day", "usually every %(num)s days",
                              found.scale) % {"num": t.decimal(found.scale)}
        if found.own == "contract":
            return t.ngettext("service contract every %(num)s day",
                              "service contract every %(num)s days",
                              found.scale) % {"num": t.decimal(found.scale)}
        count = len(found.gaps) + 1
        workspace_days = round(self.shape.usual_days)
        return t.ngettext("one occasion so far", "%(num)s occasions so far", count) % {
            "num": t.decimal(count)} + t.ngettext(
            ", usually every %(num)s day in this workspace",
            ", usually every %(num)s days in this workspace", workspace_days) % {
            "num": t.decimal(workspace_days)}


def churn(views: list[CustomerView]) -> list[dict[str, Any] | None]:
    """The churn risks: the purchase model's where it is trustworthy, else the
    heuristic's (those computed together)."""
    results = [c.labels.get("_model_risk") for c in views]
    left = [n for n, found in enumerate(results) if found is None]
    for n, found in zip(left, heuristic_risks([views[n] for n in left]), strict=True):
        results[n] = found
    return results


def stage(views: list[CustomerView]) -> list[tuple[str, str | None, str]]:
    """Each customer's stage, the day it began and what decided it (``stage:`` in the
    file, the purchase model, the heuristic, or a service contract or a conversation
    that overrode them).  Many customers at once: a purchase changes every churn risk,
    and so asks again for every stage."""
    if not views:
        return []
    first = views[0]  # what every view shares
    options, today = first.options, first.today
    new_days, lost_above, at_risk_above = (options.new_days, options.lost_above,
                                           options.at_risk_above)
    after_new = dt.timedelta(days=new_days + 1)
    actives: dict[dt.date, str] = {}  # the first day of being active, by first activity
    results: list[tuple[str, str | None, str]] = []
    for c in views:
        own = c.customer.stage
        if own in STAGES:
            results.append((own, None, "file"))
            continue
        labels = c.labels
        found: Activity | None = labels["_activity"]
        if found is None:
            results.append(("lead", None, "heuristic"))
            continue
        if (today - found.first).days <= new_days:
            results.append(("new", found.first.isoformat(), "heuristic"))
            continue
        risk = labels["_churn"]
        active_since = actives.get(found.first)
        if active_since is None:
            active_since = actives[found.first] = (found.first + after_new).isoformat()
        if risk is None:  # activity that is not a purchase, with the model deciding
            results.append(("active", active_since, "heuristic"))
            continue
        basis, value = risk["basis"], risk["risk"]
        if value >= lost_above:
            result = "lost", risk["lost_since"], basis
        elif value >= at_risk_above:
            result = "at_risk", risk["at_risk_since"], basis
        else:
            result = "active", active_since, basis
        if result[0] != "active":
            if under_contract(c):
                result = "active", active_since, "contract"
            elif engaged(c):
                result = "active", active_since, "engaged"
        results.append(result)
    return results


def engaged(c: CustomerView) -> bool:
    """Whether the customer is plainly still with us, whatever their purchases say: an
    open deal, or a conversation they started within ``engaged_days``.  Someone
    who asked for a maintenance contract last month is not "lost" for not having
    bought since (and must not get a win-back letter)."""
    if any(deal.is_open for deal in c.deals):
        return True
    start = c.today - dt.timedelta(days=c.options.engaged_days)
    for i in reversed(c.history):  # oldest first: the recent end only
        if i.date < start:
            return False
        if i.direction == "inbound" and i.is_conversation and i.date <= c.today:
            return True
    return False


def churn_risk(views: list[CustomerView]) -> list[float | None]:
    """Many at once, as ``_churn`` changes: for every customer after a purchase."""
    return [round(found["risk"], 3) if (found := c.labels["_churn"]) else None
            for c in views]


def churn_reason(views: list[CustomerView]) -> list[str | None]:
    return [found["reason"] if (found := c.labels["_churn"]) else None for c in views]


def lifecycle_label(c: CustomerView) -> str:
    return c.labels["_stage"][0]


def lifecycle_since(c: CustomerView) -> str | None:
    return c.labels["_stage"][1]


def lifecycle_basis(c: CustomerView) -> str | None:
    """What decided the stage, where the purchase model decides some customers' stages
    (otherwise every stage is the heuristic's: ``None``)."""
    if c.metrics.get("model_status", "not registered") is not None:
        return None
    return c.labels["_stage"][2]


# --- ABC --------------------------------------------------------------------------------


def window_revenue(c: CustomerView) -> Decimal:
    """Revenue inside the ABC window, in the workspace currency."""
    start = c.today - dt.timedelta(days=c.options.window_days)
    currency = c.settings.currency
    return sum((i.amount for i in c.history
                if i.type == "purchase" and i.amount is not None and i.date > start
                and i.currency in (None, currency)), Decimal(0))


def abc_classes(revenue: Mapping[str, Decimal], scope: Any) -> dict[str, str]:
    """A: the fewest top customers making ≥ a of revenue; B: up to b; C: the rest."""
    a, b = scope.options.a, scope.options.b
    if b < a:
        a, b = 0.8, 0.95  # reported by crmkit check (see check_settings)
    total = sum((r for r in revenue.values() if r > 0), Decimal(0))
    classes = dict.fromkeys(revenue, "C")
    if total <= 0:
        return classes
    # highest revenue first, equal revenue by id (the sort is stable, reversed too)
    ranked = sorted(sorted(cid for cid, r in revenue.items() if r > 0),
                    key=revenue.__getitem__, reverse=True)
    cumulative = Decimal(0)
    # the share before a customer is below a ⇔ the revenue before them is below a × total
    a_revenue, b_revenue = Decimal(str(a)) * total, Decimal(str(b)) * total
    for cid in ranked:
        if cumulative < a_revenue:
            classes[cid] = "A"
        elif cumulative < b_revenue:
            classes[cid] = "B"
        else:
            break
        cumulative += revenue[cid]
    return classes


# --- RFM --------------------------------------------------------------------------------


def quintile_scores(values: dict[str, Any]) -> dict[str, int]:
    """1-5 by rank (higher value = higher score); equal values get equal scores."""
    ordered = sorted(values.values())
    n = len(ordered)
    first_rank: dict[Any, int] = {}
    for rank, value in enumerate(ordered):
        first_rank.setdefault(value, rank)
    return {cid: 1 + (5 * first_rank[v]) // n for cid, v in values.items()}


def quintile_cuts(values: Iterable[Any]) -> tuple[Any, ...]:
    """The values to exceed for a :func:`quintile_scores` score of 2, 3, 4 and 5.

    A value's score is 1 + 5·rank // n, its rank the number of smaller values; the
    score is at least s once rank >= ⌈(s−1)·n/5⌉, that is once the value exceeds
    the value at that place in sorted order.  With the cuts a customer's score
    needs no ranking of everybody (:func:`quintile_score`).
    """
    ordered = sorted(values)
    n = len(ordered)
    return tuple(ordered[-(-(s - 1) * n // 5) - 1] for s in range(2, 6)) if n else ()


def quintile_score(value: Any, cuts: tuple[Any, ...]) -> int:
    return 1 + bisect.bisect_left(cuts, value)  # the cuts are in order: those below value


def rfm_values(c: CustomerView) -> tuple[int, int, Decimal] | None:
    """Recency (negative days since the last purchase: recent = high), frequency and
    monetary value; ``None`` without a purchase."""
    d = c.derived
    if d.last_purchase is None:
        return None
    return -(c.today - d.last_purchase).days, d.purchase_count, d.revenue


def rfm_cuts(values: Mapping[str, tuple[int, int, Decimal] | None], scope: Any
             ) -> tuple[tuple[Any, ...], ...]:
    bought = [v for v in values.values() if v is not None]
    return tuple(quintile_cuts(v[n] for v in bought) for n in range(3))


def rfm_code(c: CustomerView) -> str | None:
    value = c.labels["_rfm_values"]
    if value is None:
        return None
    cuts = c.metrics["_rfm_cuts"]
    return "".join(str(quintile_score(v, cut)) for v, cut in zip(value, cuts, strict=True))


def rfm_digit(position: int) -> Any:
    def digit(c: CustomerView) -> int | None:
        code = c.labels["rfm"]
        return int(code[position]) if code else None

    return digit


# --- win-back ---------------------------------------------------------------------------


def is_bad_customer(history: Iterable[crmkit.Interaction], rules: Mapping[str, Any]) -> bool:
    """Complained a lot, paid late repeatedly, or only ever bought on discount."""
    history = list(history)
    purchases = [i for i in history if i.type == "purchase"]
    complaints = sum(1 for i in history if i.type == "complaint")
    late = sum(1 for i in purchases if i.payment in ("late", "unpaid"))
    discounted = sum(1 for i in purchases if i.discount)
    discount_only = (len(purchases) >= 2
                     and discounted / len(purchases) >= rules["discount_only_share"])
    return (complaints >= rules["max_complaints"] or late >= rules["max_late_payments"]
            or discount_only)


def win_back_worthy(c: CustomerView) -> bool:
    """At risk or lost, worth at least ``min_revenue`` (what they would be worth if they
    stayed, where the purchase model says so; else their revenue), and not a bad
    customer."""
    if c.labels["lifecycle"] not in ("at_risk", "lost"):
        return False
    modelled = c.labels.get("_model_risk") is not None
    prediction = c.labels.get("_prediction") if modelled else None
    if prediction is not None and prediction["p_alive"] > 0:
        value = Decimal(f"{prediction['clv'] / prediction['p_alive']:.2f}")
    else:
        value = c.derived.revenue
    return value >= Decimal(str(c.options.min_revenue)) and not is_bad_customer(
        c.history, c.options)


# --- checks ------------------------------------------------------------------------------


def check_stage(c: CustomerView) -> Iterable[crmkit.Diagnostic]:
    customer = c.customer
    if customer.stage is not None and customer.stage not in STAGES:
        yield crmkit.Diagnostic.error(
            f"'stage' must be one of {', '.join(STAGES)}, not {customer.stage!r}"
            f"{crmkit.did_you_mean(customer.stage, STAGES, 'en')}", customer.locate("stage"),
            source=NAME)


@crmkit.hookimpl
def crmkit_validate(workspace: crmkit.Workspace) -> Iterable[crmkit.Diagnostic]:
    settings = workspace.settings
    abc = settings.options("segmentation.abc")
    if abc and abc.b < abc.a:
        raw = settings.section("segmentation").get("abc")
        yield crmkit.Diagnostic.error(
            "'segmentation.abc.b' must not be smaller than 'a'",
            _place(raw, "b") if isinstance(raw, Mapping) else settings.locate("segmentation"),
            source=NAME)
    life = settings.options(LIFE)
    if life and life.lost_above < life.at_risk_above:
        raw = settings.section("segmentation").get("lifecycle")
        yield crmkit.Diagnostic.error(
            "'segmentation.lifecycle.lost_above' must not be smaller than 'at_risk_above'",
            _place(raw, "lost_above") if isinstance(raw, Mapping)
            else settings.locate("segmentation"), source=NAME)


# --- registration -----------------------------------------------------------------------


MODEL = "_model_risk?"


@crmkit.hookimpl
def crmkit_register(register: Any, settings: Any) -> None:
    register(ConfigSection("segmentation", "Thresholds of lifecycle, ABC and win-back rules.",
                           SETTINGS_EXAMPLE))
    register(ConfigSection("segments", "Your own segments: name: expression.",
                           SEGMENTS_EXAMPLE))
    register(Label("_stage", stage, reads=("_activity", "_churn"), options=LIFECYCLE,
                   settings=LIFE, many=True))
    register(Label("_activity", activity, settings=LIFE))
    register(crmkit.Metric("_rhythm", "The workspace's gaps between occasions",
                           rhythm_part, across=rhythm,
                           reads=("_activity",), settings=LIFE))
    register(Label("_churn", churn, reads=("_activity", "_rhythm", MODEL), settings=LIFE,
                   many=True))
    register(Label("churn_risk", churn_risk, reads=("_churn",), many=True,
                   description="the chance of no purchase within the churn horizon"))
    register(Label("churn_reason", churn_reason, reads=("_churn",), many=True,
                   description="the churn risk in words"))
    register(Label("lifecycle", lifecycle_label, reads=("_stage",),
                   description="lead, new, active, at_risk or lost (docs/segments.md)"))
    register(Label("lifecycle_since", lifecycle_since, reads=("_stage",),
                   description="the day the stage began"))
    register(Label("lifecycle_basis", lifecycle_basis, reads=("_stage", "model_status?"),
                   description="what decided the stage: file, model, heuristic, contract "
                               "or engaged"))
    register(Label("abc", window_revenue, across=abc_classes, options=ABC,
                   settings="segmentation.abc", description="A, B or C by revenue"))
    register(Label("_rfm_values", rfm_values))
    register(crmkit.Metric("_rfm_cuts", "RFM quintile cuts", lambda c: c.labels["_rfm_values"],
                           across=rfm_cuts, reads=("_rfm_values",)))
    register(Label("rfm", rfm_code, reads=("_rfm_cuts", "_rfm_values"),
                   description="recency, frequency, monetary quintiles, e.g. 553"))
    for position, letter in enumerate("rfm"):
        register(Label(letter, rfm_digit(position), reads=("rfm",), listed=False,
                       description=f"the {'RFM'[position]} digit of rfm"))
    register(Label("win_back_worthy", win_back_worthy,
                   reads=("lifecycle", "_prediction?", MODEL),
                   options=WIN_BACK, settings="segmentation.win_back",
                   description="at risk or lost, and worth winning back"))
    register(crmkit.Check("stage", check_stage))
    own = settings.section("segments") if settings is not None else {}
    if isinstance(own, Mapping):
        for name, text in own.items():
            where = _place(own, name)
            register(Label(str(name), text if isinstance(text, str) else "",
                           group="segments", where=where,
                           description="a segment of this workspace's crmkit.yaml"))


def _place(section: Any, key: str) -> crmkit.Location:
    marks = getattr(section, "marks", {})
    line, col = marks.get(key, (0, 0))
    return crmkit.Location("crmkit.yaml", line, col)


def _why(app: crmkit.App) -> str:
    """Why the model does not decide the stages, in the terminal's language: the predict
    plugin's message and values (``_model_status_message``), else its English
    ``model_status``; ``""`` without either."""
    status = app.metrics(["model_status"]).get("model_status")
    if status is None or not status.value:
        return ""
    said = app.metrics(["_model_status_message"]).get("_model_status_message")
    if said is not None and isinstance(said.value, (tuple, list)):
        message, values = said.value
        return f" ({_(message) % values})"
    return f" ({status.value})"


def _label_text(labels: dict[str, Any]) -> str:
    return ", ".join(k for k, v in labels.items() if v is True)


@crmkit.hookimpl
def crmkit_register_commands(cli: click.Group) -> None:
    @cli.command("segments")
    @click.option("--customer", "customer_ids", multiple=True, metavar="ID",
                  help="Only these customers (repeatable).")
    @click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                  show_default=True)
    @crmkit.pass_app(pure=True)
    def segments_command(app: crmkit.App, customer_ids: tuple[str, ...], fmt: str) -> None:
        """Lifecycle stage, ABC class, RFM code and segments of every customer."""
        labels = app.labels()
        for cid in customer_ids:
            app.require_customer(cid)
        ids = [cid for cid in labels if not customer_ids or cid in customer_ids]
        if fmt == "json":
            crmkit.echo_json({cid: labels[cid] for cid in ids})
            app.warn_about_problems()
            return
        rows = []
        for cid in ids:
            row = labels[cid]
            rows.append([cid, row.get("lifecycle"), row.get("abc"), row.get("rfm"),
                         _("yes") if row.get("win_back_worthy") else "",
                         _label_text(row.get("segments", {}))])
        # the cells are values, as segment expressions write them (lifecycle == "active")
        headers = [_("customer"), _("lifecycle"), _("abc"), _("rfm"), _("win-back"),
                   _("segments")]
        click.echo(crmkit.table(headers, rows))
        counts: dict[str, int] = {}
        for cid in ids:
            counts[labels[cid].get("lifecycle")] = counts.get(labels[cid].get("lifecycle"),
                                                              0) + 1
        t = crmkit.translations(terminal=True)  # English: the stage values, as before
        summary = ", ".join(f"{counts[s]} {s if t.language == 'en' else t.word(s)}"
                            for s in STAGES if s in counts)
        click.echo(ngettext("%(num)d customer", "%(num)d customers", len(ids))
                   % {"num": len(ids)} + f": {summary}", err=True)
        basis = labels.column("lifecycle_basis")
        if any(value == "model" for value in basis.values()):
            click.echo(_("lifecycle") + ": " + _("from the churn risk of the fitted "
                                                 "Pareto/NBD model"), err=True)
        else:
            click.echo(_("lifecycle") + ": " + _("the churn risk from this workspace's gaps "
                                                 "between purchases") + _why(app), err=True)
        app.warn_about_problems()
