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
* ``_model_risk``: every buyer's churn risk from the Pareto/NBD model (the chance
  of no purchase within ``segmentation.lifecycle.churn_horizon_days``) and the days
  it reached the stage thresholds, which the segments plugin reads when it is there
  (``prediction.use_for_segments``);
* the metrics ``expected_value``, ``value_at_risk`` and ``model_status``, a
  dashboard section and ``crmkit predict``.

Disabling this plugin removes all of it: the segments fall back to their
heuristic.
"""

from __future__ import annotations

import bisect
import datetime as dt
import heapq
import math
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit import ConfigSection, CustomerView, Label, Metric, Option, ReportSection

from .model import (
    MIN_REPEAT_CUSTOMERS,
    MIN_TO_FIT,
    Fit,
    Forecast,
    History,
    churn_risk_all,
    fit,
    predict,
    risk_crossing_all,
    summarise,
)

NAME = "prediction"
SETTINGS_EXAMPLE = """\
prediction:
  horizon_days: 365          # CLV and expected purchases over this period
  discount_rate: 0.10        # yearly, for CLV
  min_repeat_customers: 50   # segments use the model only with this many repeat buyers"""
OPTIONS = {
    "horizon_days": Option(365, "CLV and expected purchases over this many days.", minimum=1),
    "discount_rate": Option(0.10, "Yearly, for CLV.", minimum=0, maximum=1),
    "min_repeat_customers": Option(MIN_REPEAT_CUSTOMERS, "Segments use the model from this "
                                   "many customers with repeat purchases on.", minimum=2),
    "use_for_segments": Option(True, "Whether lifecycle stages come from the model."),
}


# --- each customer's purchases ----------------------------------------------------------


def _(message: str) -> str:
    """What a command says itself, in the terminal's language (LANG)."""
    return crmkit.translations(terminal=True).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return crmkit.translations(terminal=True).ngettext(singular, plural, n)


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
            and fitted.pareto is not None and fitted.pareto.converged
            and fitted.repeat_customers >= options.min_repeat_customers)


def risk_horizons(fitted: Fit, days: int, rhythm_gaps: int, x, t_x):
    """Each customer's churn horizon (days): ``days``, but at least their usual gap
    between purchases (their own with ``rhythm_gaps`` repeats or more, else the
    workspace's), so that a customer who buys once a year is not at risk a week after
    buying for having a small chance to buy in the next 90 days."""
    import numpy as np

    usual = fitted.usual_gap_days or 0.0
    with np.errstate(divide="ignore", invalid="ignore"):
        own = np.where(x >= rhythm_gaps, 7 * t_x / np.maximum(x, 1), usual)
    return np.maximum(days, np.round(own))


def model_risks(customers: list[CustomerView]) -> list[dict[str, Any] | None]:
    """Every buyer's churn risk (Pareto/NBD, numpy for all at once), the days it reached
    the stage thresholds and the reason in words; ``None`` without purchases or when
    the segments do not use the model (``model_status``)."""
    if not customers:
        return []
    first = customers[0]
    fitted: Fit = first.metrics["_purchase_model"]
    if first.metrics["model_status"] is not None or fitted.pareto is None:
        return [None] * len(customers)
    import numpy as np

    options = first.options  # segmentation.lifecycle's (read when the segments are there)
    t = crmkit.translations(first.settings.locale)  # the reason in the workspace's language
    days = options.get("churn_horizon_days", 90)
    at_risk, lost = options.get("at_risk_above", 0.8), options.get("lost_above", 0.95)
    rhythm_gaps = options.get("rhythm_min_gaps", 3)
    found = [(n, h) for n, c in enumerate(customers)
             if (h := c.labels["_purchases"][0]) is not None]
    result: list[dict[str, Any] | None] = [None] * len(customers)
    if not found:
        return result
    x = np.array([h.x for _, h in found], dtype=float)
    t_x = np.array([h.t_x for _, h in found])
    T = np.array([h.T for _, h in found])
    horizons = risk_horizons(fitted, days, rhythm_gaps, x, t_x)
    weeks = horizons / 7
    risks = churn_risk_all(fitted.pareto, weeks, x, t_x, T)
    crossings = {name: risk_crossing_all(fitted.pareto, weeks, x, t_x, T, threshold)
                 for name, threshold in (("at_risk", at_risk), ("lost", lost))}
    for k, (n, h) in enumerate(found):
        today = customers[n].today
        start = today - dt.timedelta(days=round(h.T * 7))
        since = {name: None if np.isnan(week[k]) else
                 (start + dt.timedelta(days=math.ceil(week[k] * 7 - 1e-9))).isoformat()
                 for name, week in crossings.items()}
        quiet = round((h.T - h.t_x) * 7)
        if h.x >= rhythm_gaps:
            gap = round(h.t_x * 7 / h.x)
            usual = t.ngettext("usually every %(num)s day", "usually every %(num)s days",
                               gap) % {"num": t.decimal(gap)}
        else:
            count = int(h.x) + 1
            usual = t.ngettext("one purchase so far", "%(num)s purchases so far", count) % {
                "num": t.decimal(count)}
        risk, horizon = float(risks[k]), int(horizons[k])
        quiet_text = t.ngettext("no %(what)s for %(num)s day", "no %(what)s for %(num)s days",
                                quiet) % {"what": t.word("purchase"), "num": t.decimal(quiet)}
        chance = t.ngettext("%(percent)s chance to buy in the next %(num)s day",
                            "%(percent)s chance to buy in the next %(num)s days",
                            horizon) % {"percent": t.percent(1 - risk),
                                        "num": t.decimal(horizon)}
        result[n] = {
            "risk": risk, "horizon_days": horizon, "at_risk_since": since["at_risk"],
            "lost_since": since["lost"], "basis": "model",
            "reason": f"{quiet_text}; {usual}; {chance}"}
    return result


def _rounded(field: str, digits: int) -> Any:
    def label(c: CustomerView) -> float | None:
        if c.labels["_model_risk"] is None:
            return None  # shown where the model decides the stage
        prediction = c.labels["_prediction"]
        return round(prediction[field], digits) if prediction else None

    return label


def model_status_message(population: Any) -> tuple[str, dict[str, Any]] | None:
    """Why the segments do not use the model (``None`` when they do), as an English
    message and its values: the helper metric ``_model_status_message``, which a command
    says in the terminal's language (``crmkit segments``), while ``model_status`` keeps
    the English text as data."""
    options = population.options
    fitted: Fit = population.metrics["_purchase_model"]
    if not options.use_for_segments:
        return N_("prediction.use_for_segments is false"), {}
    if fitted.repeat_customers < options.min_repeat_customers:
        return (N_("%(repeat)d customers with repeat purchases, the model needs %(needed)d"),
                {"repeat": fitted.repeat_customers, "needed": options.min_repeat_customers})
    if not trustworthy(fitted, options):
        if fitted.problem is None and fitted.pareto is not None:
            return N_("the churn model (Pareto/NBD) found no stable fit"), {}
        if fitted.problem:
            return "%(problem)s", {"problem": fitted.problem}
        return N_("no trustworthy fit"), {}
    return None


def model_status(population: Any) -> str | None:
    """Why the segments do not use the model (``None`` when they do), in English: data,
    as ``--format json`` shows it."""
    said = population.metrics["_model_status_message"]
    return None if said is None else said[0] % said[1]


def _predicted(c: CustomerView) -> tuple[str, dict[str, float]] | None:
    prediction = c.labels["_prediction"]
    return (c.customer.name, prediction) if prediction else None


def expected_value(parts: Mapping[str, Any], scope: Any) -> Decimal | None:
    found = [p for p in parts.values() if p is not None]
    if not found:
        return None
    return Decimal(f"{sum(p[1]['clv'] for p in found):.2f}")


def _at_stake(c: CustomerView) -> tuple[str, float, float] | None:
    """The customer's name, what they are worth if they stay (CLV / P(alive) where the
    model decides their stage, else their revenue of the last 12 months) and their
    churn risk; ``None`` without a churn risk."""
    risk = c.labels.get("churn_risk")
    if risk is None:
        return None
    prediction = c.labels["_prediction"] if c.labels["_model_risk"] is not None else None
    if prediction is not None and prediction["p_alive"] > 0:
        worth = prediction["clv"] / prediction["p_alive"]
    else:
        worth = float(c.derived.revenue_12m)
    return c.customer.name, worth, risk


def value_at_risk(parts: Mapping[str, Any], scope: Any, top: int = 10) -> list[dict[str, Any]]:
    """The customers with the most value at risk: what they are worth if they stay
    × their churn risk (the chance of no purchase within the churn horizon)."""
    candidates = [(-worth * risk, cid, name, worth, risk)
                  for cid, found in parts.items() if found is not None
                  for name, worth, risk in (found,) if worth > 0 and risk > 0]
    return [{"customer": cid, "name": name, "churn_risk": risk, "worth": round(worth, 2),
             "value_at_risk": round(-minus, 2)}
            for minus, cid, name, worth, risk in heapq.nsmallest(top, candidates)]


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
    register(Label("_model_risk", model_risks, many=True,
                   reads=("_purchase_model", "_purchases", "model_status"),
                   settings="segmentation.lifecycle"))
    register(Label("p_alive", _rounded("p_alive", 3), reads=("_prediction", "_model_risk"),
                   description="the probability that the customer still buys (BG/NBD)"))
    register(Label("clv", _rounded("clv", 2), reads=("_prediction", "_model_risk"),
                   description="expected value over the horizon"))
    register(Metric("_model_status_message", "Why the segments use the heuristic, as a "
                    "message and its values", over_all=model_status_message,
                    reads=("_purchase_model",), settings=NAME))
    register(Metric("model_status", "Why the segments use the heuristic",
                    over_all=model_status, reads=("_model_status_message",), settings=NAME))
    register(Metric("expected_value", N_("Expected value of the customer base"), _predicted,
                    across=expected_value, reads=("_prediction",), unit="currency",
                    description=N_("BG/NBD and Gamma-Gamma fitted on the purchase history")))
    register(Metric("value_at_risk", N_("Highest value at risk"), _at_stake,
                    across=value_at_risk,
                    reads=("_prediction", "_model_risk", "churn_risk?"), unit="currency",
                    description=N_("value if they stay × churn risk")))
    register(ReportSection("dashboard", "prediction", N_("Prediction"),
                           "reports/sections/prediction", _section_context, order=95,
                           pure=True))


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
                      min_repeat_customers=options.min_repeat_customers,
                      pareto=fitted.pareto)
    if fitted.usable:
        histories = [h for c in app.customers() if (h := summary_today(c)) is not None]
        result.predictions = predict(fitted, histories, horizon, options.discount_rate)
        if fitted.pareto is not None and histories:
            import numpy as np

            lifecycle = app.workspace.settings.options("segmentation.lifecycle") or {}
            x = np.array([h.x for h in histories], dtype=float)
            t_x = np.array([h.t_x for h in histories])
            days = lifecycle.get("churn_horizon_days", 90)
            horizons = risk_horizons(fitted, days, lifecycle.get("rhythm_min_gaps", 3), x, t_x)
            risks = churn_risk_all(fitted.pareto, horizons / 7, x, t_x,
                                   np.array([h.T for h in histories]))
            result.risk_horizon_days = days
            result.churn_risks = {h.customer: (float(r), int(d)) for h, r, d in zip(
                histories, risks, horizons, strict=True)}
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
        "pareto_nbd": None if result.pareto is None or not fitted else {
            "r": result.pareto.r, "alpha": result.pareto.alpha, "s": result.pareto.s,
            "beta": result.pareto.beta, "log_likelihood": result.pareto.log_likelihood,
            "customers": result.pareto.customers, "converged": result.pareto.converged},
        "churn_horizon_days": result.risk_horizon_days if fitted else None,
        "gamma_gamma": None if spend is None else {
            "p": spend.p, "q": spend.q, "gamma": spend.gamma,
            "log_likelihood": spend.log_likelihood, "customers": spend.customers,
            "converged": spend.converged},
        "customers": {cid: {"p_alive": round(p.p_alive, 4),
                            "expected_purchases": round(p.expected_purchases, 3),
                            "expected_spend": round(p.expected_spend, 2),
                            "clv": round(p.clv, 2),
                            "churn_risk": round(result.churn_risks[cid][0], 4)
                            if cid in result.churn_risks else None,
                            "churn_horizon_days": result.churn_risks[cid][1]
                            if cid in result.churn_risks else None}
                      for cid, p in sorted(result.predictions.items())},
    }


@click.command("predict")
@click.option("--horizon", type=click.IntRange(1), metavar="DAYS",
              help="Predict over this many days (default: prediction.horizon_days, 365).")
@click.option("--customer", "customers", multiple=True, metavar="ID",
              help="Only these customers (repeatable).")
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table",
              show_default=True)
@crmkit.pass_app(pure=True)
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
    # the numbers in the terminal's format (0,42 and 1.234,50 in German) as the words
    # are, and the note in its language (the JSON keeps the English ``note``: data)
    t = crmkit.translations(terminal=True)
    problem = problem_in(app.metrics(["_purchase_model"])["_purchase_model"].value, t.locale)
    if model is None or not model.converged:
        click.echo(_("no prediction: %(reason)s") % {"reason": problem})
        app.warn_about_problems()
        return
    click.echo(ngettext("BG/NBD on %(num)d customer: %(fit)s", "BG/NBD on %(num)d customers: "
                        "%(fit)s", model.customers) % {
        "num": model.customers,
        "fit": f"r={t.decimal(model.r, 3)} alpha={t.decimal(model.alpha, 3)} "
               f"a={t.decimal(model.a, 3)} b={t.decimal(model.b, 3)} "
               f"(log-likelihood {t.decimal(model.log_likelihood, 1)})"})
    if spend is not None and spend.converged:
        click.echo(ngettext("Gamma-Gamma on %(num)d repeat customer: %(fit)s",
                            "Gamma-Gamma on %(num)d repeat customers: %(fit)s",
                            spend.customers) % {
            "num": spend.customers,
            "fit": f"p={t.decimal(spend.p, 2)} q={t.decimal(spend.q, 2)} "
                   f"gamma={t.decimal(spend.gamma, 2)}"})
    if problem:
        click.echo(_("note: %(reason)s") % {"reason": problem})
    currency = app.workspace.settings.currency
    rows = [[p.customer, t.decimal(p.p_alive, 2), t.decimal(p.expected_purchases, 2),
             t.decimal(p.expected_spend, 2), t.decimal(p.clv, 2)]
            for p in sorted(result.predictions.values(), key=lambda p: (-p.clv, p.customer))]
    click.echo(crmkit.table([_("customer"), "P(alive)",
                             _("purchases %(days)sd") % {"days": result.horizon_days},
                             _("avg order %(currency)s") % {"currency": currency},
                             f"CLV {currency}"], rows))
    app.warn_about_problems()
