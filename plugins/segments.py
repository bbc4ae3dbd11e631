"""Segmentation: lifecycle stage, ABC class, RFM code, win-back worthiness and the
workspace's own segments, for every customer as of ``--today``.

The rules are pure functions of the snapshot; docs/segments.md states them
exactly.  Everything is linear in customers + interactions.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
import statistics
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import click

import crmkit
from crmkit import (
    ConfigSection,
    Customer,
    Diagnostic,
    Options,
    Segmentation,
    Settings,
    Snapshot,
    Workspace,
)

from .expressions import Compiled, ExpressionError, compile_expression

NAME = "segments"
STAGES = ("lead", "new", "active", "at_risk", "lost")
BUILTIN_LABELS = ("lifecycle", "lifecycle_since", "abc", "rfm", "win_back_worthy",
                  "lifecycle_basis", "p_alive", "clv")


@dataclass(frozen=True, slots=True)
class LifecycleRules:
    new_days: int = 90
    at_risk_factor: float = 1.5
    lost_factor: float = 3.0
    at_risk_min_days: int = 90
    lost_min_days: int = 365
    one_time_at_risk_days: int = 365
    one_time_lost_days: int = 730


@dataclass(frozen=True, slots=True)
class AbcRules:
    window_days: int = 365
    a: float = 0.80
    b: float = 0.95


@dataclass(frozen=True, slots=True)
class WinBackRules:
    min_revenue: float = 500.0
    max_complaints: int = 2
    max_late_payments: int = 2
    discount_only_share: float = 0.8


@dataclass(frozen=True, slots=True)
class Rules:
    lifecycle: LifecycleRules
    abc: AbcRules
    win_back: WinBackRules
    custom: dict[str, Compiled]


# --- settings ---------------------------------------------------------------------------

SETTINGS_EXAMPLE = """\
segmentation:
  lifecycle: {new_days: 90, at_risk_factor: 1.5, lost_factor: 3.0}
  abc: {window_days: 365, a: 0.8, b: 0.95}
  win_back: {min_revenue: 500, max_complaints: 2, max_late_payments: 2}"""
SEGMENTS_EXAMPLE = """\
segments:
  vip: revenue_12m > 5000 or tags contains "vip"
  weimar_regulars: tags contains "weimar" and lifecycle == "active\""""


def read_rules(settings: Settings) -> tuple[Rules, list[Diagnostic]]:
    """The rules from ``crmkit.yaml`` (defaults where a value is missing or wrong)."""
    section = Options(settings, "segmentation", source=NAME)
    section.check_keys(("lifecycle", "abc", "win_back"))
    lc = section.sub("lifecycle")
    lc.check_keys(LifecycleRules.__slots__)
    d = LifecycleRules()
    lifecycle = LifecycleRules(
        new_days=lc.integer("new_days", d.new_days, 1),
        at_risk_factor=lc.number("at_risk_factor", d.at_risk_factor, 1),
        lost_factor=lc.number("lost_factor", d.lost_factor, 1),
        at_risk_min_days=lc.integer("at_risk_min_days", d.at_risk_min_days, 1),
        lost_min_days=lc.integer("lost_min_days", d.lost_min_days, 1),
        one_time_at_risk_days=lc.integer("one_time_at_risk_days", d.one_time_at_risk_days, 1),
        one_time_lost_days=lc.integer("one_time_lost_days", d.one_time_lost_days, 1),
    )
    ab = section.sub("abc")
    ab.check_keys(AbcRules.__slots__)
    abc = AbcRules(ab.integer("window_days", 365, 1), ab.number("a", 0.8, 0, 1),
                   ab.number("b", 0.95, 0, 1))
    if abc.b < abc.a:
        section.diagnostics.append(Diagnostic.error(
            "'segmentation.abc.b' must not be smaller than 'a'", ab.locate("b"), source=NAME))
        abc = AbcRules(abc.window_days)
    wb = section.sub("win_back")
    wb.check_keys(WinBackRules.__slots__)
    w = WinBackRules()
    win_back = WinBackRules(
        wb.number("min_revenue", w.min_revenue, 0),
        wb.integer("max_complaints", w.max_complaints, 1),
        wb.integer("max_late_payments", w.max_late_payments, 1),
        wb.number("discount_only_share", w.discount_only_share, 0, 1),
    )
    custom, problems = _custom_segments(settings)
    return Rules(lifecycle, abc, win_back, custom), section.diagnostics + problems


def _custom_segments(settings: Settings) -> tuple[dict[str, Compiled], list[Diagnostic]]:
    section = Options(settings, "segments", source=NAME)
    problems = section.diagnostics
    compiled: dict[str, Compiled] = {}
    for name, text in section.data.items():
        where = section.locate(name)
        if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
            problems.append(Diagnostic.error(
                f"segment name {name!r} must be letters, digits, '_' or '-'", where, source=NAME))
            continue
        if name in BUILTIN_LABELS:
            problems.append(Diagnostic.error(
                f"segment name {name!r} is taken by a built-in label", where, source=NAME))
            continue
        try:
            compiled[name] = compile_expression(text, VARIABLES)
        except ExpressionError as exc:
            problems.append(Diagnostic.error(
                f"segment {name!r}: {exc.message} (column {exc.column} of the expression)",
                where, source=NAME))
    return compiled, problems


# --- rules ------------------------------------------------------------------------------


def purchase_days(snapshot: Snapshot, customer_id: str) -> list[dt.date]:
    """Distinct purchase dates up to today (same-day purchases count once)."""
    return sorted({i.date for i in snapshot.history(customer_id) if i.type == "purchase"})


@dataclass(frozen=True, slots=True)
class Facts:
    """What the rules need of one customer's own history (kept per customer by
    :meth:`~crmkit.Snapshot.per_customer_many` while it does not change)."""

    purchase_days: int
    #: Revenue inside the ABC window.
    window_revenue: Decimal
    #: The heuristic stage and the day it began.
    heuristic: tuple[str, dt.date | None]
    bad: bool


def customer_facts(snapshot: Snapshot, customer_id: str, rules: Rules) -> Facts:
    window_start = snapshot.today - dt.timedelta(days=rules.abc.window_days)
    currency = snapshot.settings.currency
    history = snapshot.history(customer_id)
    revenue = sum((i.amount for i in history
                   if i.type == "purchase" and i.amount is not None
                   and i.date > window_start and i.currency in (None, currency)), Decimal(0))
    days = purchase_days(snapshot, customer_id)
    return Facts(len(days), revenue, lifecycle(days, snapshot.today, rules.lifecycle),
                 is_bad_customer(snapshot, customer_id, rules.win_back))


def all_facts(snapshot: Snapshot, rules: Rules) -> dict[str, Facts]:
    """Every customer's :class:`Facts`, once per snapshot."""
    return snapshot.memo(f"{NAME}.facts", lambda: snapshot.per_customer_many(
        f"{NAME}.facts", [c.id for c in snapshot.customers],
        lambda ids: {cid: customer_facts(snapshot, cid, rules) for cid in ids}))


def lifecycle(days: list[dt.date], today: dt.date, rules: LifecycleRules
              ) -> tuple[str, dt.date | None]:
    """The stage and the day it began, from the distinct purchase dates."""
    if not days:
        return "lead", None
    first, last = days[0], days[-1]
    if (today - first).days <= rules.new_days:
        return "new", first
    if len(days) >= 2:
        usual = statistics.median((b - a).days for a, b in itertools.pairwise(days))
        at_risk_after = max(rules.at_risk_min_days, round(rules.at_risk_factor * usual))
        lost_after = max(rules.lost_min_days, round(rules.lost_factor * usual), at_risk_after)
    else:
        at_risk_after, lost_after = rules.one_time_at_risk_days, rules.one_time_lost_days
    quiet = (today - last).days
    if quiet > lost_after:
        return "lost", last + dt.timedelta(days=lost_after + 1)
    if quiet > at_risk_after:
        return "at_risk", last + dt.timedelta(days=at_risk_after + 1)
    active_since = first + dt.timedelta(days=rules.new_days + 1)
    return "active", active_since


def abc_classes(revenue: dict[str, Decimal], rules: AbcRules) -> dict[str, str]:
    """A: the fewest top customers making ≥ a of revenue; B: up to b; C: the rest."""
    total = sum((r for r in revenue.values() if r > 0), Decimal(0))
    classes = dict.fromkeys(revenue, "C")
    if total <= 0:
        return classes
    # highest revenue first, equal revenue by id (the sort is stable, reversed too)
    ranked = sorted(sorted(cid for cid, r in revenue.items() if r > 0),
                    key=revenue.__getitem__, reverse=True)
    cumulative = Decimal(0)
    # the share before a customer is below a ⇔ the revenue before them is below a × total
    a_revenue, b_revenue = Decimal(str(rules.a)) * total, Decimal(str(rules.b)) * total
    for cid in ranked:
        if cumulative < a_revenue:
            classes[cid] = "A"
        elif cumulative < b_revenue:
            classes[cid] = "B"
        else:
            break
        cumulative += revenue[cid]
    return classes


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


def rfm_codes(snapshot: Snapshot, customers: Iterable[Customer]) -> dict[str, str | None]:
    """R, F and M quintiles of every customer who bought (``None`` for the others).

    The quintile cuts are kept while nobody's recency, frequency and monetary value
    change, and each customer's code while the cuts and the customer stay the same:
    one purchase rarely moves a cut, so it rarely moves anyone else's code."""
    derived = snapshot.all_derived()
    today = snapshot.today

    def values(cid: str) -> tuple[int, int, Decimal] | None:
        d = derived[cid]
        if d.last_purchase is None:
            return None
        return -(today - d.last_purchase).days, d.purchase_count, d.revenue  # recent = high

    ids = [c.id for c in customers]
    found = snapshot.per_customer_many(
        f"{NAME}.rfm_values", ids, lambda todo: {cid: values(cid) for cid in todo})
    cuts = snapshot.kept(f"{NAME}.rfm_cuts", _rfm_cuts, found)

    def code(cid: str) -> str | None:
        value = found[cid]
        if value is None:
            return None
        return "".join(str(quintile_score(v, c)) for v, c in zip(value, cuts, strict=True))

    return snapshot.per_customer_many(f"{NAME}.rfm", ids,
                                      lambda todo: {cid: code(cid) for cid in todo}, cuts)


def _rfm_cuts(values: dict[str, tuple[int, int, Decimal] | None]
              ) -> tuple[tuple[Any, ...], ...]:
    bought = [v for v in values.values() if v is not None]
    return tuple(quintile_cuts(v[n] for v in bought) for n in range(3))


def is_bad_customer(snapshot: Snapshot, customer_id: str, rules: WinBackRules) -> bool:
    """Complained a lot, paid late repeatedly, or only ever bought on discount."""
    history = snapshot.history(customer_id)
    purchases = [i for i in history if i.type == "purchase"]
    complaints = sum(1 for i in history if i.type == "complaint")
    late = sum(1 for i in purchases if i.payment in ("late", "unpaid"))
    discounted = sum(1 for i in purchases if i.discount)
    discount_only = (len(purchases) >= 2
                     and discounted / len(purchases) >= rules.discount_only_share)
    return (complaints >= rules.max_complaints or late >= rules.max_late_payments
            or discount_only)


def customer_variables(snapshot: Snapshot, customer: Customer, labels: dict[str, Any]
                       ) -> dict[str, Any]:
    """What a user-defined segment expression can refer to."""
    d = snapshot.derived(customer.id)
    today = snapshot.today

    def days_since(day: dt.date | None) -> int | None:
        return (today - day).days if day else None

    scores = [i.score for i in snapshot.history(customer.id) if i.score is not None]
    address = customer.address
    rfm = labels.get("rfm")
    return {
        "id": customer.id, "name": customer.name, "company": customer.company,
        "tags": list(customer.tags), "source": customer.source,
        "city": address.city if address else None,
        "postal_code": address.postal_code if address else None,
        "country": address.country if address else None,
        "email_consent": customer.consent.email, "has_email": bool(customer.emails),
        "has_phone": bool(customer.phones), "preferred_channel": customer.preferred_channel,
        "locale": customer.locale, "services": [s.name for s in customer.services],
        "fields": dict(customer.fields),
        "revenue": d.revenue, "revenue_12m": d.revenue_12m,
        "purchase_count": d.purchase_count, "average_order_value": d.average_order_value,
        "complaints": d.complaint_count,
        "days_since_last_purchase": days_since(d.last_purchase),
        "days_since_last_contact": days_since(d.last_contact),
        "days_since_first_purchase": days_since(d.first_purchase),
        "last_score": scores[-1] if scores else None,
        "lifecycle": labels.get("lifecycle"), "abc": labels.get("abc"), "rfm": rfm,
        "r": int(rfm[0]) if rfm else None, "f": int(rfm[1]) if rfm else None,
        "m": int(rfm[2]) if rfm else None,
        "win_back_worthy": labels.get("win_back_worthy"),
    }


VARIABLES = (
    "id", "name", "company", "tags", "source", "city", "postal_code", "country",
    "email_consent", "has_email", "has_phone", "preferred_channel", "locale", "services",
    "fields", "revenue", "revenue_12m", "purchase_count", "average_order_value", "complaints",
    "days_since_last_purchase", "days_since_last_contact", "days_since_first_purchase",
    "last_score", "lifecycle", "abc", "rfm", "r", "f", "m", "win_back_worthy",
)


def model_stages(snapshot: Snapshot) -> tuple[dict[str, tuple[str, dt.date | None, Any]], str]:
    """Lifecycle stages from P(alive) for repeat buyers, when the fit is trustworthy.

    Returns ``({customer: (stage, since, prediction)}, why)``; empty with the reason
    when the heuristic applies.
    """
    from .clv_model import History, crossing_week
    from .predict import fit_of, forecast_for, histories_of, settings_of

    values, _ = settings_of(snapshot.settings)
    if not values["use_for_segments"]:
        return {}, "prediction.use_for_segments is false"
    histories = histories_of(snapshot)
    repeaters = sum(1 for h in histories if h.x > 0)  # purchases on two or more days
    if repeaters < values["min_repeat_customers"]:
        return {}, (f"{repeaters} customers with repeat purchases, the model needs "
                    f"{values['min_repeat_customers']}")
    result = forecast_for(snapshot)
    if not result.trustworthy or result.bgnbd is None:
        return {}, result.problem or "no trustworthy fit"
    model = result.bgnbd
    predictions = result.predictions
    thresholds = (("lost", values["lost_below"]), ("at_risk", values["at_risk_below"]))

    def stage_of(h: History) -> tuple[str, dt.date | None, Any]:
        first = snapshot.today - dt.timedelta(days=round(h.T * 7))
        for stage, threshold in thresholds:
            week = crossing_week(model, h, threshold)
            if week is not None:
                return stage, first + dt.timedelta(days=round(week * 7)), predictions[h.customer]
        return "active", None, predictions[h.customer]

    # a customer's prediction changes with their purchases or with the fit: the
    # depends of the memo, so the kept tuples hold the current predictions
    repeat = {h.customer: h for h in histories if h.x > 0}
    return snapshot.per_customer_many(
        f"{NAME}.model_stage", list(repeat),
        lambda ids: {cid: stage_of(repeat[cid]) for cid in ids},
        (fit_of(snapshot), result.horizon_days, result.discount_rate, thresholds)
    ), "model"


def segment(snapshot: Snapshot, rules: Rules) -> Segmentation:
    """Every label for every customer."""
    customers = snapshot.customers
    modelled = model_stages(snapshot)[0]
    facts = all_facts(snapshot, rules)
    abc = snapshot.kept(f"{NAME}.abc", abc_classes,
                        {cid: f.window_revenue for cid, f in facts.items()}, rules.abc)
    rfm = rfm_codes(snapshot, customers)
    any_modelled = bool(modelled)
    ids = [c.id for c in customers]
    labels = snapshot.per_customer_many(
        f"{NAME}.labels", ids,
        lambda todo: {cid: customer_labels(
            snapshot, snapshot.workspace.customers[cid], rules, facts[cid], abc[cid],
            rfm.get(cid), modelled.get(cid), any_modelled) for cid in todo},
        {cid: (abc[cid], rfm.get(cid), modelled.get(cid), any_modelled) for cid in ids})
    return Segmentation.of(labels)


def customer_labels(snapshot: Snapshot, c: Customer, rules: Rules, facts: Facts, abc: str,
                    rfm: str | None, model: tuple[str, dt.date | None, Any] | None,
                    any_modelled: bool) -> dict[str, Any]:
    """One customer's labels, given the ones computed over all customers (custom
    segments grouped under ``"segments"``)."""
    prediction = None
    if c.stage in STAGES:
        stage, since = c.stage, None
    else:
        stage, since = facts.heuristic
        if model is not None and stage != "new":
            stage, model_since, prediction = model
            since = model_since if stage != "active" else since
    if prediction is not None and prediction.p_alive > 0:
        # profitable: what they would be worth over the horizon if they stayed
        value = Decimal(f"{prediction.clv / prediction.p_alive:.2f}")
    else:
        value = snapshot.derived(c.id).revenue
    worthy = (stage in ("at_risk", "lost") and value >= Decimal(str(rules.win_back.min_revenue))
              and not facts.bad)
    labels: dict[str, Any] = {
        "lifecycle": stage, "lifecycle_since": since.isoformat() if since else None,
        "abc": abc, "rfm": rfm, "win_back_worthy": worthy,
    }
    if any_modelled:
        labels["lifecycle_basis"] = "model" if prediction is not None else "heuristic"
    if prediction is not None:
        labels["p_alive"] = round(prediction.p_alive, 3)
        labels["clv"] = round(prediction.clv, 2)
    if rules.custom:
        variables = customer_variables(snapshot, c, labels)
        labels["segments"] = {name: bool(test(variables)) for name, test in rules.custom.items()}
    return labels


# --- hooks ------------------------------------------------------------------------------


@crmkit.hookimpl
def crmkit_config_sections() -> list[ConfigSection]:
    return [
        ConfigSection("segmentation", "Thresholds of lifecycle, ABC and win-back rules.",
                      SETTINGS_EXAMPLE),
        ConfigSection("segments", "Your own segments: name: boolean expression.",
                      SEGMENTS_EXAMPLE),
    ]


@crmkit.hookimpl
def crmkit_validate(workspace: Workspace) -> list[Diagnostic]:
    _, problems = read_rules(workspace.settings)
    for customer in workspace.customers.values():
        if customer.stage is not None and customer.stage not in STAGES:
            problems.append(Diagnostic.error(
                f"'stage' must be one of {', '.join(STAGES)}, not {customer.stage!r}",
                customer.locate("stage"), source=NAME))
    return problems


@crmkit.hookimpl
def crmkit_segments(snapshot: Snapshot) -> Segmentation:
    rules, _ = read_rules(snapshot.settings)
    return segment(snapshot, rules)


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

        segmentation = app.segments()
        for cid in customer_ids:
            app.require_customer(cid)
        ids = [c.id for c in app.snapshot.customers if not customer_ids or c.id in customer_ids]
        if fmt == "json":
            crmkit.echo_json({cid: segmentation[cid] for cid in ids})
            app.warn_about_problems()
            return
        rows = []
        for cid in ids:
            labels = segmentation[cid]
            rows.append([cid, labels.get("lifecycle"), labels.get("abc"), labels.get("rfm"),
                         "yes" if labels.get("win_back_worthy") else "",
                         _label_text(labels.get("segments", {}))])
        headers = ["customer", "lifecycle", "abc", "rfm", "win-back", "segments"]
        click.echo(crmkit.table(headers, rows))
        counts: dict[str, int] = {}
        for cid in ids:
            stage = segmentation[cid].get("lifecycle")
            counts[stage] = counts.get(stage, 0) + 1
        summary = ", ".join(f"{counts[s]} {s}" for s in STAGES if s in counts)
        click.echo(f"{len(ids)} customers: {summary}", err=True)
        _, basis = model_stages(app.snapshot)
        if basis != "model":
            click.echo(f"lifecycle: the documented heuristic ({basis})", err=True)
        else:
            click.echo("lifecycle: from P(alive) of the fitted BG/NBD model for repeat "
                       "buyers", err=True)
        app.warn_about_problems()
