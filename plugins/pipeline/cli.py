"""``crmkit sources``, ``crmkit leads`` and ``crmkit pipeline``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import click

import crmkit

from . import RULE_PREFIX, figures, reasons, scoring_rules

FORMATS = ("table", "json")


def _(message: str) -> str:
    """What the command says itself, in the terminal's language (LANG)."""
    return crmkit.translations(terminal=True).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return crmkit.translations(terminal=True).ngettext(singular, plural, n)


def _money(value: Decimal | float | None, currency: str) -> str:
    """As the core's CLI: ``1,234.00 EUR`` in an English terminal, else the terminal
    language's format (``1.234,00 €``)."""
    if value is None:
        return ""
    t = crmkit.translations(terminal=True)
    return f"{value:,.2f} {currency}" if t.language == "en" else t.money(value, currency)


def _percent(value: float | None) -> str:
    if value is None:
        return ""
    t = crmkit.translations(terminal=True)
    return f"{value:.0%}" if t.language == "en" else t.percent(value)


def _days(value: Any) -> str:
    if value is None:
        return ""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _since_option(function: Any) -> Any:
    return click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]), default=None,
                        metavar="YYYY-MM-DD", help="Start of the period.")(function)


def _day(value: Any) -> dt.date | None:
    return value.date() if value is not None else None


#: ``--format table|json`` (each use makes an option of its own).
_format_option = click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
                              show_default=True)


@click.command("sources")
@_since_option
@_format_option
@crmkit.pass_app(pure=True)
def sources_command(app: crmkit.App, since: Any, fmt: str) -> None:
    """Per source: leads, customers won, conversion, days to buy, revenue and CLV.

    A lead is a customer first in touch on or after --since (everybody without
    it); won are those who bought since. Customers with 'referred_by' and no
    'source' count under the referral source, and their referrer is credited in
    the referrers table. The predicted CLV is the 'clv' label (BG/NBD and
    Gamma-Gamma, the predict plugin) where it is fitted; the historical CLV is
    revenue per customer won.
    """
    from . import model

    settings = app.workspace.settings
    start = _day(since)
    views = app.customers()
    try:  # the predict plugin's label, when it is there (only this column is computed)
        clv = app.labels().column("clv")
    except KeyError:
        clv = {}
    found = model.sources(views, start, settings.options("sources").referral, clv)
    if fmt == "json":
        crmkit.echo_json({"since": start, "currency": settings.currency, **found})
        app.warn_about_problems()
        return
    currency = settings.currency
    for title, key in ((_("source"), "sources"), (_("campaign"), "campaigns"),
                       (_("referrer"), "referrers")):
        rows = found[key]
        if not rows:
            continue
        if key != "sources":
            click.echo("")
        predicted = any(r["predicted_clv"] is not None for r in rows)
        click.echo(crmkit.table(
            [title, _("leads"), _("won"), _("conversion"), _("median days to buy"),
             _("revenue"), _("CLV (historical)"),
             *([_("CLV (predicted)")] if predicted else [])],
            [[r["name"], r["leads"], r["won"], _percent(r["conversion"]),
              _days(r["median_days_to_purchase"]), _money(r["revenue"], currency),
              _money(r["historical_clv"], currency),
              *([_money(r["predicted_clv"], currency)] if predicted else [])]
             for r in rows]))
    leads = sum(r["leads"] for r in found["sources"])
    won = sum(r["won"] for r in found["sources"])
    period = (_("first in touch since %(day)s") % {"day": start.isoformat()} if start
              else _("all customers"))
    click.echo(ngettext("%(num)d lead (%(period)s), %(won)d won",
                        "%(num)d leads (%(period)s), %(won)d won", leads) % {
        "num": leads, "period": period, "won": won}, err=True)
    if not any(r["predicted_clv"] is not None for r in found["sources"]):
        click.echo(_("CLV (predicted): no fitted purchase model ('crmkit predict' says why); "
                     "CLV (historical) is revenue per customer won"), err=True)
    app.warn_about_problems()


@click.command("leads")
@click.option("--stage", type=click.Choice(("cold", "warm", "qualified")), default=None,
              help="Only leads in this stage.")
@_format_option
@crmkit.pass_app(pure=True)
def leads_command(app: crmkit.App, stage: str | None, fmt: str) -> None:
    """Leads (customers without a purchase) by score, with the reasons.

    The score is the sum of the points of the 'lead_scoring' rules in
    crmkit.yaml that hold; the stage (cold, warm, qualified) is the
    lead_stage label, usable in segments, reminders and playbooks.
    """
    rules = scoring_rules(app.workspace.settings)
    labels = app.labels()  # only the columns read below are computed
    scores, stages = labels.column("lead_score"), labels.column("lead_stage")
    points = {}
    for n in range(1, len(rules) + 1):
        try:
            points[f"{RULE_PREFIX}{n}"] = labels.column(f"{RULE_PREFIX}{n}")
        except KeyError:  # a rule with a mistake (reported by check) gives nothing
            points[f"{RULE_PREFIX}{n}"] = {}
    found = []
    for view in app.customers():
        if view.derived.first_purchase is not None:
            continue
        if stage is not None and stages.get(view.id) != stage:
            continue
        record = view.customer
        found.append({
            "customer": view.id, "name": record.name, "source": record.source,
            "campaign": record.campaign, "referred_by": record.referred_by,
            "first_contact": view.derived.first_contact,
            "last_contact": view.derived.last_contact,
            "score": scores.get(view.id), "stage": stages.get(view.id),
            "reasons": reasons({k: v.get(view.id) for k, v in points.items()}, rules)})
    found.sort(key=lambda r: (-(r["score"] or 0), r["customer"]))
    if fmt == "json":
        crmkit.echo_json(found)
        app.warn_about_problems()
        return
    click.echo(crmkit.table(
        [_("customer"), _("source"), _("first contact"), _("score"), _("stage"),
         _("reasons")],
        [[r["customer"], r["source"] or "", r["first_contact"] or "", r["score"], r["stage"],
          ", ".join(f"{x['rule']} {x['points']:+d}" for x in r["reasons"])]
         for r in found]))
    stages = [r["stage"] for r in found]
    counts = ", ".join(f"{stages.count(s)} {s}" for s in ("qualified", "warm", "cold")
                       if stages.count(s))
    click.echo(ngettext("%(num)d lead", "%(num)d leads", len(found)) % {"num": len(found)}
               + (": " + counts if counts else "")
               + ("" if rules else " " + _("(no lead_scoring rules in crmkit.yaml)")),
               err=True)
    app.warn_about_problems()


@click.command("pipeline")
@_since_option
@_format_option
@crmkit.pass_app
def pipeline_command(app: crmkit.App, since: Any, fmt: str) -> None:
    """Deals by stage, the forecast by month, won and lost, stale and overdue deals.

    Open deals by stage (count, value, value weighted by probability: the deal's
    own, else its stage's from 'pipeline.stages'), the forecast by month of
    expected close, the deals won and lost since --since (default: the last
    'pipeline.period_days' days) with their reasons, the win rate and the average
    cycle of the won deals (first known day to won). When a deal entered a stage
    is read from 'git log' of deals/, else from interactions naming the deal
    (fields: {deal: ID, stage: STAGE}). Stale: no contact with the customer for
    'reminders.stale_deal.days' days; overdue: expected close before today.
    """
    found = figures(app, _day(since))
    if fmt == "json":
        crmkit.echo_json(found)
        app.warn_about_problems()
        return
    currency = app.workspace.settings.currency
    click.echo(crmkit.table(
        [_("stage"), _("deals"), _("value"), _("probability"), _("weighted")],
        [[s["stage"], s["count"], _money(s["value"], currency),
          _percent(s["probability"]), _money(s["weighted"], currency)]
         for s in found["stages"]]
        + [[_("total"), found["open"]["count"], _money(found["open"]["value"], currency), "",
            _money(found["open"]["weighted"], currency)]]))
    click.echo("")
    click.echo(crmkit.table(
        [_("expected close"), _("deals"), _("value"), _("weighted")],
        [[m["month"], m["count"], _money(m["value"], currency),
          _money(m["weighted"], currency)] for m in found["forecast"]]))
    closed = ([(_("won"), r) for r in found["won"]]
              + [(_("lost"), r) for r in found["lost"]])
    click.echo("")
    click.echo(_("Closed %(since)s to %(today)s: %(won)d won (%(value)s), %(lost)d lost; win "
                 "rate %(rate)s, average cycle %(cycle)s days") % {
        "since": found["since"].isoformat(), "today": found["today"].isoformat(),
        "won": len(found["won"]), "value": _money(found["won_value"], currency),
        "lost": len(found["lost"]), "rate": _percent(found["win_rate"]) or "–",
        "cycle": _days(found["average_cycle_days"]) or "–"})
    if closed:
        click.echo(crmkit.table(
            ["", _("deal"), _("customer"), _("closed"), _("value"), _("days"), _("reason")],
            [[what, r["id"], r["customer"], r["closed"], _money(r["value"], currency),
              _days(r["cycle_days"]), r["reason"] or ""] for what, r in closed]))
    attention = ([(_("overdue"), r["id"], r["customer"],
                   ngettext("expected close %(day)s, %(num)d day ago",
                            "expected close %(day)s, %(num)d days ago", r["days_overdue"]) % {
                       "day": r["expected_close"].isoformat(), "num": r["days_overdue"]})
                  for r in found["overdue"]]
                 + [(_("stale"), r["id"], r["customer"],
                     ngettext("no contact since %(day)s (%(num)d day)",
                              "no contact since %(day)s (%(num)d days)",
                              r["days_without_activity"]) % {
                         "day": r["last_activity"].isoformat(),
                         "num": r["days_without_activity"]} if r["last_activity"]
                     else _("no contact yet")) for r in found["stale"]])
    if attention:
        click.echo("")
        click.echo(crmkit.table(["", _("deal"), _("customer"), _("why")],
                                [list(a) for a in attention]))
    if found["closed_without_date"]:
        click.echo(_("closed, but when is unknown (not counted in the period): %(deals)s")
                   % {"deals": ", ".join(found["closed_without_date"])}, err=True)
    app.warn_about_problems()
