"""Predictive retention: who is still "alive", what they will buy, what they are worth.

Fits the BG/NBD and Gamma-Gamma models (``model.py``) on the workspace's purchase
history up to the end of the month before ``--today``'s and predicts every
customer from their history as of ``--today``.  Everything is registered with the
core:

* ``_purchase_model`` (a metric): the fit, from each customer's purchase summary
  at the end of last month; kept by the core while those summaries are the same,
  so a purchase logged today or yesterday does not fit the models again (they are
  fitted once a month, or when a purchase of an earlier month is entered);
* ``_prediction`` (a label, computed with numpy for many customers at once) and
  the labels ``p_alive`` and ``clv``;
* ``_model_lifecycle``: repeat buyers' stage from P(alive), which the segments
  plugin reads when it is there (``prediction.use_for_segments``);
* the metrics ``expected_value``, ``value_at_risk`` and ``model_status``, a
  dashboard section and ``crmkit predict``.

Disabling this plugin removes all of it: the segments fall back to their
heuristic.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
from collections.abc import Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit import ConfigSection, CustomerView, Diagnostic, Label, Metric, Option, ReportSection

from .model import (
    MIN_REPEAT_CUSTOMERS,
    MIN_TO_FIT,
    Fit,
    Forecast,
    History,
    crossing_week,
    fit,
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
OPTIONS = {
    "horizon_days": Option(365, "CLV and expected purchases over this many days.", minimum=1),
    "discount_rate": Option(0.10, "Yearly, for CLV.", minimum=0, maximum=1),
    "min_repeat_customers": Option(MIN_REPEAT_CUSTOMERS, "Segments use the model from this "
                                   "many customers with repeat purchases on.", minimum=2),
    "at_risk_below": Option(0.5, "At risk below this P(alive).", minimum=0, maximum=1),
    "lost_below": Option(0.2, "Lost below this P(alive).", minimum=0, maximum=1),
    "use_for_segments": Option(True, "Whether lifecycle stages come from the model."),
}


# --- each customer's purchases ----------------------------------------------------------


def _purchase_days(c: CustomerView, day: dt.date) -> tuple[list[dt.date], list[float]]:
    """The distinct purchase days up to ``day`` and each day's total."""
    currency = c.settings.currency
    totals: dict[dt.date, float] = {}
    for i in c.history:
        if i.type == "purchase" and i.date <= day:
            amount = i.amount if i.amount is not None and i.currency in (None, currency) \
                else Decimal(0)
            totals[i.date] = totals.get(i.date, 0.0) + float(amount)
    days = sorted(totals)
    return days, [totals[d] for d in days]


def summary_today(c: CustomerView) -> History | None:
    days, totals = _purchase_days(c, c.today)
    return summarise(days, totals, c.today, c.id)


def calibration_end(today: dt.date) -> dt.date:
    """The last day of the history the models are fitted on: the end of last month."""
    return today.replace(day=1) - dt.timedelta(days=1)


def summary_at_calibration(c: CustomerView) -> History | None:
    end = calibration_end(c.today)
    days, totals = _purchase_days(c, end)
    return summarise(days, totals, end, c.id)


def summaries(c: CustomerView) -> tuple[History | None, History | None]:
    """The purchase summary as of today and at the end of last month, from one pass."""
    days, totals = _purchase_days(c, c.today)
    end = calibration_end(c.today)
    before = bisect.bisect_right(days, end)
    return (summarise(days, totals, c.today, c.id),
            summarise(days[:before], totals[:before], end, c.id))


# --- the model --------------------------------------------------------------------------


def fit_models(summaries: Mapping[str, History | None], scope: Any) -> Fit:
    """Both models fitted on everybody's purchases up to the end of last month."""
    histories = [h for h in summaries.values() if h is not None]
    return fit(histories, scope.options.min_repeat_customers)


def predictions(customers: list[CustomerView]) -> list[dict[str, float] | None]:
    """P(alive), expected purchases and spend, and CLV of each customer (numpy, all at
    once); ``None`` without purchases or without a usable fit."""
    fitted: Fit = customers[0].metrics["_purchase_model"] if customers else None
    if fitted is None or not fitted.usable:
        return [None] * len(customers)
    options = customers[0].options
    histories = {c.id: h for c in customers if (h := c.labels["_purchases"][0]) is not None}
    found = predict(fitted, list(histories.values()), options.horizon_days,
                    options.discount_rate)
    return [_as_dict(found[c.id]) if c.id in found else None for c in customers]


def _as_dict(p: Any) -> dict[str, float]:
    return {"p_alive": p.p_alive, "expected_purchases": p.expected_purchases,
            "expected_spend": p.expected_spend, "clv": p.clv}


def trustworthy(fitted: Fit, options: Any) -> bool:
    return (fitted.problem is None and fitted.bgnbd is not None and fitted.bgnbd.converged
            and fitted.repeat_customers >= options.min_repeat_customers)


def model_lifecycle(c: CustomerView) -> tuple[str, dt.date | None] | None:
    """A repeat buyer's stage from P(alive) and the day it fell below the threshold,
    when the fit is trustworthy and ``use_for_segments`` is on; else ``None``."""
    options = c.options
    fitted: Fit = c.metrics["_purchase_model"]
    if not options.use_for_segments or not trustworthy(fitted, options):
        return None
    history = c.labels["_purchases"][0]
    if history is None or history.x == 0:
        return None
    model = fitted.bgnbd
    assert model is not None
    first = c.today - dt.timedelta(days=round(history.T * 7))
    for stage, threshold in (("lost", options.lost_below), ("at_risk", options.at_risk_below)):
        week = crossing_week(model, history, threshold)
        if week is not None:
            return stage, first + dt.timedelta(days=round(week * 7))
    return "active", None


def _rounded(field: str, digits: int) -> Any:
    def label(c: CustomerView) -> float | None:
        if c.labels["_model_lifecycle"] is None:
            return None  # shown where the model decides the stage
        prediction = c.labels["_prediction"]
        return round(prediction[field], digits) if prediction else None

    return label


def model_status(population: Any) -> str | None:
    """Why the segments do not use the model (``None`` when they do)."""
    options = population.options
    fitted: Fit = population.metrics["_purchase_model"]
    if not options.use_for_segments:
        return "prediction.use_for_segments is false"
    if fitted.repeat_customers < options.min_repeat_customers:
        return (f"{fitted.repeat_customers} customers with repeat purchases, the model needs "
                f"{options.min_repeat_customers}")
    if not trustworthy(fitted, options):
        return fitted.problem or "no trustworthy fit"
    return None


def _predicted(c: CustomerView) -> tuple[str, dict[str, float]] | None:
    prediction = c.labels["_prediction"]
    return (c.customer.name, prediction) if prediction else None


def expected_value(parts: Mapping[str, Any], scope: Any) -> Decimal | None:
    found = [p for p in parts.values() if p is not None]
    if not found:
        return None
    return Decimal(f"{sum(p[1]['clv'] for p in found):.2f}")


def value_at_risk(parts: Mapping[str, Any], scope: Any, top: int = 10) -> list[dict[str, Any]]:
    """Customers whose value if they stayed (CLV / P(alive)) is most in doubt:
    value at risk = CLV / P(alive) × (1 − P(alive))."""
    candidates = []
    for cid, found in parts.items():
        if found is None:
            continue
        name, p = found
        if 0 < p["p_alive"] < 0.999:
            candidates.append((-p["clv"] / p["p_alive"] * (1 - p["p_alive"]), cid, name, p))
    ranked = heapq.nsmallest(top, candidates)
    return [{"customer": cid, "name": name, "p_alive": p["p_alive"], "clv": p["clv"],
             "value_at_risk": -minus_at_stake} for minus_at_stake, cid, name, p in ranked]


def N_(message: str) -> str:
    """Marks a text for translation (``pybabel extract``); translated when shown."""
    return message


def problem_in(fitted: Fit, locale: str | None) -> str | None:
    """:attr:`Fit.problem` in the workspace's language (the cases of :func:`fit`)."""
    if fitted.problem is None:
        return None
    t = crmkit.translations(locale)
    facts = {"customers": fitted.customers, "repeat": fitted.repeat_customers,
             "needed": fitted.min_repeat_customers}
    if fitted.bgnbd is None:
        facts["needed"] = min(MIN_TO_FIT, fitted.min_repeat_customers)
        return t.gettext("too little history to fit: %(customers)d customers with purchases, "
                         "%(repeat)d of them with repeat purchases (need at least "
                         "%(needed)d)") % facts
    if not fitted.bgnbd.converged:
        return t.gettext("the purchase model found no stable fit on %(customers)d customers "
                         "with purchases (%(repeat)d with repeat purchases); it needs more, "
                         "and more varied, purchase history") % facts
    return t.gettext("indicative only: %(repeat)d customers with repeat purchases, "
                     "%(needed)d are needed before segments use the model") % facts


def _section_context(app: crmkit.App) -> dict[str, Any]:
    figures = app.metrics(["expected_value", "value_at_risk", "_purchase_model"])
    fitted: Fit = figures["_purchase_model"].value
    return {"expected": figures["expected_value"], "at_risk": figures["value_at_risk"].value,
            "problem": problem_in(fitted, app.workspace.settings.locale),
            "horizon": app.workspace.settings.options(NAME).horizon_days}


# --- hooks ------------------------------------------------------------------------------


@crmkit.hookimpl
def crmkit_register(register: Any) -> None:
    register(ConfigSection(NAME, "Predictive CRM (BG/NBD, Gamma-Gamma).", SETTINGS_EXAMPLE,
                           options=OPTIONS))
    register(Label("_purchases", summaries))
    register(Metric("_purchase_model", "The fitted purchase and spend models",
                    lambda c: c.labels["_purchases"][1], across=fit_models,
                    reads=("_purchases",), settings=NAME))
    register(Label("_prediction", predictions, many=True,
                   reads=("_purchase_model", "_purchases"), settings=NAME))
    register(Label("_model_lifecycle", model_lifecycle,
                   reads=("_purchase_model", "_purchases"), settings=NAME))
    register(Label("p_alive", _rounded("p_alive", 3), reads=("_prediction", "_model_lifecycle"),
                   description="the probability that the customer still buys (BG/NBD)"))
    register(Label("clv", _rounded("clv", 2), reads=("_prediction", "_model_lifecycle"),
                   description="expected value over the horizon"))
    register(Metric("model_status", "Why the segments use the heuristic",
                    over_all=model_status, reads=("_purchase_model",), settings=NAME))
    register(Metric("expected_value", N_("Expected value of the customer base"), _predicted,
                    across=expected_value, reads=("_prediction",), unit="currency",
                    description=N_("BG/NBD and Gamma-Gamma fitted on the purchase history")))
    register(Metric("value_at_risk", N_("Highest value at risk"), _predicted,
                    across=value_at_risk, reads=("_prediction",), unit="currency",
                    description=N_("CLV if they stay × (1 − P(alive))")))
    register(ReportSection("dashboard", "prediction", N_("Prediction"),
                           "reports/sections/prediction", _section_context, order=95,
                           pure=True))


@crmkit.hookimpl
def crmkit_validate(workspace: crmkit.Workspace) -> Iterator[Diagnostic]:
    values = workspace.settings.options(NAME)
    if values and values.lost_below > values.at_risk_below:
        raw = workspace.settings.section(NAME)
        line, col = getattr(raw, "marks", {}).get("lost_below", (0, 0))
        yield Diagnostic.error("'prediction.lost_below' must not be above 'at_risk_below'",
                               crmkit.Location("crmkit.yaml", line, col), source="predict")


@crmkit.hookimpl
def crmkit_template_dirs() -> list[Path]:
    return [Path(__file__).parent / "templates"]


@crmkit.hookimpl
def crmkit_register_commands(cli: click.Group) -> None:
    cli.add_command(predict_command)


def forecast_of(app: crmkit.App, horizon: int | None) -> Forecast:
    """Every customer's prediction as of today (over ``horizon`` days if given)."""
    options = app.workspace.settings.options(NAME)
    fitted: Fit = app.metrics(["_purchase_model"])["_purchase_model"].value
    horizon = horizon or options.horizon_days
    result = Forecast(fitted.bgnbd, fitted.gamma_gamma, horizon_days=horizon,
                      discount_rate=options.discount_rate,
                      repeat_customers=fitted.repeat_customers, problem=fitted.problem,
                      min_repeat_customers=options.min_repeat_customers)
    if fitted.usable:
        histories = [h for c in app.customers() if (h := summary_today(c)) is not None]
        result.predictions = predict(fitted, histories, horizon, options.discount_rate)
    return result


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
    result = forecast_of(app, horizon)
    if customers:
        result.predictions = {k: v for k, v in result.predictions.items() if k in customers}
    if fmt == "json":
        crmkit.echo_json(forecast_json(result))
        app.warn_about_problems()
        return
    model, spend = result.bgnbd, result.gamma_gamma
    if model is None or not model.converged:
        click.echo(f"no prediction: {result.problem}")
        app.warn_about_problems()
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
    app.warn_about_problems()
