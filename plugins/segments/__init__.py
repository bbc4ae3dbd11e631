"""Segmentation: lifecycle stage, ABC class, RFM code, win-back worthiness and the
workspace's own segments, for every customer as of ``--today``.

Every label is a rule registered with the core: a plain function of one customer
(or of everybody's parts, for ABC and RFM).  docs/segments.md states the rules
exactly.  When a plugin registers ``_model_lifecycle`` (the predict plugin, from
the fitted purchase model), repeat buyers' stages come from it.  Either way, a
customer kept by a service contract (serviced within its interval) is never at
risk or lost.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import statistics
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import click

import crmkit
from crmkit import ConfigSection, CustomerView, Label, Option

NAME = "segments"
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
    "at_risk_factor": Option(1.5, "At risk after this many times the usual gap.", minimum=1),
    "lost_factor": Option(3.0, "Lost after this many times the usual gap.", minimum=1),
    "at_risk_min_days": Option(90, "Never at risk sooner than this.", minimum=1),
    "lost_min_days": Option(365, "Never lost sooner than this.", minimum=1),
    "one_time_at_risk_days": Option(365, "A one-time buyer is at risk after this.",
                                    minimum=1),
    "one_time_lost_days": Option(730, "A one-time buyer is lost after this.", minimum=1),
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
  lifecycle: {activity_types: [purchase, service], new_days: 90, at_risk_factor: 1.5,
              lost_factor: 3.0, contract_tolerance_days: 30}
  abc: {window_days: 365, a: 0.8, b: 0.95}
  win_back: {min_revenue: 500, max_complaints: 2, max_late_payments: 2}"""
SEGMENTS_EXAMPLE = """\
segments:
  vip: revenue_12m > 5000 or tags contains "vip"
  weimar_regulars: tags contains "weimar" and lifecycle == "active\""""


# --- lifecycle --------------------------------------------------------------------------


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


def lifecycle(days: list[dt.date], today: dt.date, rules: Mapping[str, Any]
              ) -> tuple[str, dt.date | None]:
    """The heuristic stage and the day it began, from the distinct activity days."""
    if not days:
        return "lead", None
    first, last = days[0], days[-1]
    if (today - first).days <= rules["new_days"]:
        return "new", first
    starts = occasions(days, rules["occasion_days"])
    if len(starts) >= 2:
        usual = statistics.median((b - a).days for a, b in itertools.pairwise(starts))
        at_risk_after = max(rules["at_risk_min_days"], round(rules["at_risk_factor"] * usual))
        lost_after = max(rules["lost_min_days"], round(rules["lost_factor"] * usual),
                         at_risk_after)
    else:
        at_risk_after = rules["one_time_at_risk_days"]
        lost_after = rules["one_time_lost_days"]
    quiet = (today - last).days
    if quiet > lost_after:
        return "lost", last + dt.timedelta(days=lost_after + 1)
    if quiet > at_risk_after:
        return "at_risk", last + dt.timedelta(days=at_risk_after + 1)
    return "active", first + dt.timedelta(days=rules["new_days"] + 1)


def stage(c: CustomerView) -> tuple[str, str | None, str]:
    """The stage, the day it began and what decided it (``stage:`` in the file, the
    purchase model, the heuristic, or a service contract that overrode them)."""
    if c.customer.stage in STAGES:
        return c.customer.stage, None, "file"
    days = activity_days(c.history, c.options.activity_types)
    heuristic, since = lifecycle(days, c.today, c.options)
    found, basis = heuristic, "heuristic"
    model = c.labels.get("_model_lifecycle")
    if model is not None and heuristic != "new":
        model_stage, model_since = model
        found, basis = model_stage, "model"
        since = model_since if model_stage != "active" else since
    if found in ("at_risk", "lost") and under_contract(c):
        # active, as the heuristic dates it: from the end of being new
        found, basis = "active", "contract"
        since = days[0] + dt.timedelta(days=c.options.new_days + 1) if days else None
    return found, since.isoformat() if since else None, basis


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
    modelled = c.labels.get("_model_lifecycle") is not None
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
            f"{crmkit.did_you_mean(customer.stage, STAGES)}", customer.locate("stage"),
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


# --- registration -----------------------------------------------------------------------


MODEL = "_model_lifecycle?"


@crmkit.hookimpl
def crmkit_register(register: Any, settings: Any) -> None:
    register(ConfigSection("segmentation", "Thresholds of lifecycle, ABC and win-back rules.",
                           SETTINGS_EXAMPLE))
    register(ConfigSection("segments", "Your own segments: name: expression.",
                           SEGMENTS_EXAMPLE))
    register(Label("_stage", stage, reads=(MODEL,), options=LIFECYCLE,
                   settings="segmentation.lifecycle"))
    register(Label("lifecycle", lifecycle_label, reads=("_stage",),
                   description="lead, new, active, at_risk or lost (docs/segments.md)"))
    register(Label("lifecycle_since", lifecycle_since, reads=("_stage",),
                   description="the day the stage began"))
    register(Label("lifecycle_basis", lifecycle_basis, reads=("_stage", "model_status?"),
                   description="what decided the stage: file, model, heuristic or contract"))
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


def _label_text(labels: dict[str, Any]) -> str:
    return ", ".join(k for k, v in labels.items() if v is True)


@crmkit.hookimpl
def crmkit_register_commands(cli: click.Group) -> None:
    @crmkit.read_only
    @cli.command("segments")
    @click.option("--customer", "customer_ids", multiple=True, metavar="ID",
                  help="Only these customers (repeatable).")
    @click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
                  show_default=True)
    @crmkit.pass_app
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
                         "yes" if row.get("win_back_worthy") else "",
                         _label_text(row.get("segments", {}))])
        headers = ["customer", "lifecycle", "abc", "rfm", "win-back", "segments"]
        click.echo(crmkit.table(headers, rows))
        counts: dict[str, int] = {}
        for cid in ids:
            counts[labels[cid].get("lifecycle")] = counts.get(labels[cid].get("lifecycle"),
                                                              0) + 1
        summary = ", ".join(f"{counts[s]} {s}" for s in STAGES if s in counts)
        click.echo(f"{len(ids)} customers: {summary}", err=True)
        basis = labels.column("lifecycle_basis")
        if any(value == "model" for value in basis.values()):
            click.echo("lifecycle: from P(alive) of the fitted BG/NBD model for repeat "
                       "buyers", err=True)
        else:
            status = app.metrics(["model_status"]).get("model_status")
            why = f" ({status.value})" if status is not None and status.value else ""
            click.echo(f"lifecycle: the documented heuristic{why}", err=True)
        app.warn_about_problems()
