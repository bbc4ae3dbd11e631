"""Predictive retention: who is still "alive", what they will buy, what they are worth.

Fits the BG/NBD and Gamma-Gamma models (plugins/clv_model.py) on the
workspace's purchase history up to the day before ``--today``, once per day,
predicts every customer from their history as of ``--today``, and offers that
to the other stock plugins (segments use P(alive) when the fit is trustworthy),
to ``crmkit predict`` and to the dashboard.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit import ConfigSection, Diagnostic, Metric, Options, ReportSection, Snapshot

from .clv_model import (
    MIN_REPEAT_CUSTOMERS,
    Fit,
    Forecast,
    History,
    fit,
    forecast,
    predict,
    summarise,
)

NAME = "prediction"
SETTINGS_EXAMPLE = """\
prediction:
  horizon_days: 365          # CLV and expected purchases over this period
  discount_rate: 0.10        # yearly, for CLV
  min_repeat_customers: 50   # segments use the model only with this many repeat buyers
  at_risk_below: 0.5         # P(alive) thresholds for the lifecycle stages
  lost_below: 0.2"""


def settings_of(settings: crmkit.Settings) -> tuple[dict[str, Any], list[Diagnostic]]:
    o = Options(settings, NAME, source="predict")
    o.check_keys(("horizon_days", "discount_rate", "min_repeat_customers", "at_risk_below",
                  "lost_below", "use_for_segments"))
    values = {
        "horizon_days": o.integer("horizon_days", 365, 1),
        "discount_rate": o.number("discount_rate", 0.10, 0, 1),
        "min_repeat_customers": o.integer("min_repeat_customers", MIN_REPEAT_CUSTOMERS, 2),
        "at_risk_below": o.number("at_risk_below", 0.5, 0, 1),
        "lost_below": o.number("lost_below", 0.2, 0, 1),
        "use_for_segments": o.boolean("use_for_segments", True),
    }
    if values["lost_below"] > values["at_risk_below"]:
        o.diagnostics.append(Diagnostic.error(
            "'prediction.lost_below' must not be above 'at_risk_below'", o.locate("lost_below"),
            source="predict"))
    return values, o.diagnostics


def histories(snapshot: Snapshot, day: dt.date | None = None) -> list[History]:
    """Per customer with purchases up to ``day`` (default: today): distinct purchase
    days and each day's total, with ``T`` measured to ``day``."""
    day = day or snapshot.today
    yesterday = snapshot.today - dt.timedelta(days=1)
    ids = [c.id for c in snapshot.customers]
    if day not in (snapshot.today, yesterday):
        return [h for cid in ids if (h := purchase_history(snapshot, cid, day)) is not None]
    # today's (predictions) and yesterday's (the fit) from one pass over each history
    both = snapshot.memo(f"{NAME}:both histories", lambda: snapshot.per_customer_many(
        f"{NAME}.histories", ids,
        lambda todo: {cid: purchase_histories(snapshot, cid) for cid in todo}))
    which = 0 if day == snapshot.today else 1
    return [h for cid in ids if (h := both[cid][which]) is not None]


def purchase_history(snapshot: Snapshot, customer_id: str, day: dt.date | None = None
                     ) -> History | None:
    day = day or snapshot.today
    days, totals = _purchase_days(snapshot, customer_id, day)
    return summarise(days, totals, day, customer_id)


def purchase_histories(snapshot: Snapshot, customer_id: str
                       ) -> tuple[History | None, History | None]:
    """:func:`purchase_history` as of today and as of yesterday."""
    today = snapshot.today
    days, totals = _purchase_days(snapshot, customer_id, today)
    before = len(days) - 1 if days and days[-1] == today else len(days)
    return (summarise(days, totals, today, customer_id),
            summarise(days[:before], totals[:before], today - dt.timedelta(days=1),
                      customer_id))


def _purchase_days(snapshot: Snapshot, customer_id: str, day: dt.date
                   ) -> tuple[list[dt.date], list[float]]:
    """The distinct purchase days up to ``day`` and each day's total."""
    currency = snapshot.settings.currency
    totals: dict[dt.date, float] = {}
    for i in snapshot.history(customer_id):
        if i.type == "purchase" and i.date <= day:
            amount = i.amount if i.amount is not None and i.currency in (None, currency) \
                else Decimal(0)
            totals[i.date] = totals.get(i.date, 0.0) + float(amount)
    days = sorted(totals)
    return days, [totals[d] for d in days]


def histories_of(snapshot: Snapshot) -> list[History]:
    """:func:`histories`, once per snapshot (the predictions and the lifecycle stages
    use them)."""
    return snapshot.memo("prediction:histories", lambda: histories(snapshot))


def fit_of(snapshot: Snapshot) -> Fit:
    """The models fitted on the complete days before today: the purchase history as it
    stood at the end of yesterday.

    So the parameters stay the same all day: a purchase logged today changes that
    customer's prediction, not everybody's, and ``crmkit watch`` does not fit again
    after every sale (kept across rebuilds while the fitted histories are equal).
    """
    values, _ = settings_of(snapshot.settings)
    yesterday = snapshot.today - dt.timedelta(days=1)
    return snapshot.memo("prediction:fit", lambda: snapshot.kept(
        "prediction:fit", fit, tuple(histories(snapshot, yesterday)),
        values["min_repeat_customers"]))


def forecast_for(snapshot: Snapshot, horizon_days: int | None = None) -> Forecast:
    """Every customer's prediction as of today from :func:`fit_of`'s models (computed
    once per snapshot and horizon; kept per customer across ``crmkit watch`` rebuilds
    while the fit and the customer's purchases stay the same)."""
    values, _ = settings_of(snapshot.settings)
    horizon = horizon_days or values["horizon_days"]
    rate = values["discount_rate"]

    def compute() -> Forecast:
        fitted = fit_of(snapshot)
        current = histories_of(snapshot)
        result = forecast([], horizon, rate, values["min_repeat_customers"], fitted)
        if fitted.usable:
            by_id = {h.customer: h for h in current}
            found = snapshot.per_customer_many(
                f"{NAME}.each:{horizon}", list(by_id),
                lambda todo: predict(fitted, [by_id[c] for c in todo], horizon, rate),
                (fitted, horizon, rate))
            result.predictions = {cid: found[cid] for cid in by_id}
        return result

    return snapshot.memo(f"prediction:{horizon}", compute)


def forecast_json(result: Forecast) -> dict[str, Any]:
    model, spend = result.bgnbd, result.gamma_gamma
    fitted = bool(result.predictions)
    return {
        "trustworthy": result.trustworthy, "note": result.problem, "fitted": fitted,
        "horizon_days": result.horizon_days, "discount_rate": result.discount_rate,
        "repeat_customers": result.repeat_customers,
        "bgnbd": None if model is None or not fitted else {
            "r": model.r, "alpha": model.alpha, "a": model.a, "b": model.b,
            "log_likelihood": model.log_likelihood, "customers": model.customers,
            "converged": model.converged},
        "gamma_gamma": None if spend is None else {
            "p": spend.p, "q": spend.q, "gamma": spend.gamma,
            "log_likelihood": spend.log_likelihood, "customers": spend.customers,
            "converged": spend.converged},
        "customers": {cid: {"p_alive": round(p.p_alive, 4),
                            "expected_purchases": round(p.expected_purchases, 3),
                            "expected_spend": round(p.expected_spend, 2),
                            "clv": round(p.clv, 2)}
                      for cid, p in sorted(result.predictions.items())},
    }


def value_at_risk(result: Forecast, top: int = 10) -> list[dict[str, Any]]:
    """Customers whose value if they stayed (CLV / P(alive)) is most in doubt:
    value at risk = CLV / P(alive) × (1 − P(alive))."""
    ranked = heapq.nsmallest(top, (
        (-p.clv / p.p_alive * (1 - p.p_alive), p.customer, p)
        for p in result.predictions.values() if 0 < p.p_alive < 0.999))
    return [{"customer": p.customer, "p_alive": p.p_alive, "clv": p.clv,
             "value_at_risk": -minus_at_stake} for minus_at_stake, _, p in ranked]


# --- hooks ------------------------------------------------------------------------------


@crmkit.hookimpl
def crmkit_config_sections() -> list[ConfigSection]:
    return [ConfigSection(NAME, "Predictive CRM (BG/NBD, Gamma-Gamma).", SETTINGS_EXAMPLE)]


@crmkit.hookimpl
def crmkit_validate(workspace: crmkit.Workspace) -> list[Diagnostic]:
    return settings_of(workspace.settings)[1]


METRICS = frozenset({"prediction", "expected_value", "value_at_risk"})


@crmkit.hookimpl
def crmkit_metrics(snapshot: Snapshot, wanted: frozenset[str] | None) -> Iterator[Metric]:
    if wanted is not None and not wanted & METRICS:
        return  # fitting the models is the expensive part
    result = forecast_for(snapshot)
    currency = snapshot.settings.currency
    if not result.predictions:
        yield Metric("prediction", "Prediction", None, None, result.problem or "")
        return
    total = sum(p.clv for p in result.predictions.values())
    yield Metric("expected_value", f"Expected value of the customer base, next "
                 f"{result.horizon_days} days", Decimal(f"{total:.2f}"), currency,
                 result.problem or "BG/NBD and Gamma-Gamma fitted on the purchase history")
    yield Metric("value_at_risk", "Highest value at risk",
                 [{**row, "name": snapshot.customer(row["customer"]).name}  # type: ignore[union-attr]
                  for row in snapshot.kept(f"{NAME}.value_at_risk", value_at_risk, result)],
                 currency,
                 "CLV if they stay × (1 − P(alive))")


@crmkit.hookimpl
def crmkit_report_sections(report: str) -> list[ReportSection]:
    if report != "dashboard":
        return []
    return [ReportSection("prediction", "Prediction", "reports/sections/prediction", {},
                          order=95)]


@crmkit.hookimpl
def crmkit_template_dirs() -> list[Path]:
    return [Path(__file__).parent / "templates"]


@crmkit.hookimpl
def crmkit_register_commands(cli: click.Group) -> None:
    cli.add_command(predict_command)


@crmkit.read_only
@click.command("predict")
@click.option("--horizon", type=click.IntRange(1), metavar="DAYS",
              help="Predict over this many days (default: prediction.horizon_days, 365).")
@click.option("--customer", "customers", multiple=True, metavar="ID",
              help="Only these customers (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@crmkit.pass_app
def predict_command(app: crmkit.App, horizon: int | None, customers: tuple[str, ...],
                    fmt: str) -> None:
    """P(alive), expected purchases, expected order value and CLV per customer."""
    for cid in customers:
        app.require_customer(cid)
    result = forecast_for(app.snapshot, horizon)
    if customers:
        result.predictions = {k: v for k, v in result.predictions.items() if k in customers}
    if fmt == "json":
        crmkit.echo_json(forecast_json(result))
        return
    model, spend = result.bgnbd, result.gamma_gamma
    if model is None or not model.converged:
        click.echo(f"no prediction: {result.problem}")
        return
    click.echo(f"BG/NBD on {model.customers} customers: r={model.r:.3f} alpha={model.alpha:.3f} "
               f"a={model.a:.3f} b={model.b:.3f} (log-likelihood {model.log_likelihood:.1f})")
    if spend is not None and spend.converged:
        click.echo(f"Gamma-Gamma on {spend.customers} repeat customers: p={spend.p:.2f} "
                   f"q={spend.q:.2f} gamma={spend.gamma:.2f}")
    if result.problem:
        click.echo(f"note: {result.problem}")
    currency = app.workspace.settings.currency
    rows = [[p.customer, f"{p.p_alive:.2f}", f"{p.expected_purchases:.2f}",
             f"{p.expected_spend:,.2f}", f"{p.clv:,.2f}"]
            for p in sorted(result.predictions.values(), key=lambda p: (-p.clv, p.customer))]
    click.echo(crmkit.table(["customer", "P(alive)", f"purchases {result.horizon_days}d",
                             f"avg order {currency}", f"CLV {currency}"], rows))
