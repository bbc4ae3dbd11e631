"""Reports: the KPI dashboard and the weekly to-do report, as HTML and Markdown.

A report is a layout template ``reports/<name>.<format>.j2`` plus the sections
registered for it (:class:`crmkit.ReportSection`, any plugin's); each section
names a template base, rendered as ``<template>.<format>.j2``.  A workspace
overrides any of them, or adds a report, by putting a template of that name in
its ``templates/`` folder.  This plugin's sections are pure: each says what it
shows through its context.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote

import click

import crmkit
from crmkit import CustomerView, Label, Reminder, ReportSection

from . import charts, site

NAME = "reports"
FORMATS = {"html": "html", "md": "md"}


def N_(message: str) -> str:
    """Marks a text for translation (``pybabel extract``); translated when shown."""
    return message

#: Dashboard sections and the metrics each shows.
DASHBOARD_SECTIONS = (
    ("kpis", N_("Key figures"), ("revenue_12m", "average_order_value", "repeat_purchase_rate",
                             "retention_rate", "churn_rate", "historical_clv", "nps",
                             "lead_conversion", "first_response_time", "pipeline_weighted")),
    ("revenue", N_("Revenue"), ("revenue_by_month",)),
    ("lifecycle", N_("Lifecycle"), ("stages",)),
    ("abc", N_("ABC and Pareto"), ("pareto", "revenue_by_abc")),
    ("nps", N_("Feedback"), ("nps", "nps_distribution")),
    ("top_customers", N_("Top customers"), ("top_customers",)),
    ("at_risk", N_("Customers at risk"), ("at_risk",)),
    ("pipeline", N_("Open deals"), ("pipeline_value", "pipeline_weighted")),
    ("complaints", N_("Complaints"), ("complaints",)),
)
#: Where the sections of ``DASHBOARD_ADDED`` go among those above (10, 20, ...): what is
#: due today first, money owed after the key figures, sources after the lifecycle.
DASHBOARD_ADDED_ORDER = {"due_today": 5, "money_owed": 15, "sources": 35}
#: Every dashboard figure is compared with the same figure this many days earlier: the
#: figures of the last 12 months with those of the 12 months before.
COMPARE_DAYS = 365
#: Metrics compared week over week in the weekly report.
WEEKLY_METRICS = ("customers", "revenue_12m", "average_order_value", "repeat_purchase_rate",
                  "nps", "pipeline_weighted")
#: How far back the weekly report lists open quotes.
QUOTE_DAYS = 60


def percent(value: float | None, locale: str | None = None) -> str:
    """``42%`` / ``42 %`` (Babel's CLDR data), ``–`` for nothing."""
    return crmkit.translations(locale).percent(value)


def number(value: Any, unit: str | None = None, locale: str | None = None) -> str:
    """A metric value for people in ``locale``: money with the currency's decimals
    (``1.234,56 €``), ratios as percent, days with their plural."""
    if value is None:
        return "–"
    t = crmkit.translations(locale)
    if unit == "ratio":
        return t.percent(value)
    if _money_unit(unit):
        return t.money(value, unit)
    if unit == "points":
        return f"{value:+d}" if isinstance(value, int) else str(value)
    if unit in ("days", "working days") and isinstance(value, int | float | Decimal):
        many = 1 if value == 1 else 2
        text = t.ngettext("%(num)s day", "%(num)s days", many) if unit == "days" else \
            t.ngettext("%(num)s working day", "%(num)s working days", many)
        return text % {"num": t.decimal(value)}
    if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
        return t.decimal(value)
    return str(value)


_ARROWS = {"up": "▲", "down": "▼", "same": "="}
#: Figures where less is better (a rise is shown as bad).
LESS_IS_BETTER = frozenset({"churn_rate", "first_response_time", "money_owed", "late_payments",
                            "at_risk", "complaints"})


#: Figures of today's deal files alone: nothing says what they were a year ago (the
#: pipeline section compares the open pipeline through the stage history).
SNAPSHOT = frozenset({"pipeline_value", "pipeline_weighted"})
#: Not compared either: the lifecycle a year ago is the churn model run again for that
#: day (2 of the 3 s the comparison cost a cold dashboard at 1,000 customers).
NOT_COMPARED = SNAPSHOT | {"stages", "at_risk"}


def _money_unit(unit: str | None) -> bool:
    return bool(unit) and len(unit) == 3 and unit.isupper()  # type: ignore[arg-type]


def difference(now: Any, before: Any, unit: str | None = None, locale: str | None = None
               ) -> dict[str, str] | None:
    """How ``now`` differs from ``before`` for people in ``locale``: ``text`` (``+12 %``
    for money, ``+5 pp`` for ratios, ``−3`` for counts), ``direction`` (up, down,
    same) and ``word`` (its name for screen readers); ``None`` when either is missing."""
    numbers = (int, float, Decimal)
    if not isinstance(now, numbers) or not isinstance(before, numbers) \
            or isinstance(now, bool) or isinstance(before, bool):
        return None
    t = crmkit.translations(locale)
    delta = Decimal(str(now)) - Decimal(str(before))
    direction = "up" if delta > 0 else "down" if delta < 0 else "same"
    sign = "+" if delta > 0 else "\u2212" if delta < 0 else "±"
    if unit == "ratio":
        text = t.gettext("%(num)s pp") % {"num": sign + t.decimal(abs(delta) * 100, 0)}
    elif _money_unit(unit) and before:
        text = sign + t.percent(abs(delta / Decimal(str(before))))
    elif _money_unit(unit):
        text = sign + t.money(abs(delta), unit)
    else:
        text = sign + t.decimal(abs(delta))
    words = {"up": t.gettext("up"), "down": t.gettext("down"), "same": t.gettext("unchanged")}
    return {"text": text, "direction": direction, "word": words[direction],
            "arrow": _ARROWS[direction]}


def change(now: Any, before: Any, unit: str | None = None, worse: bool = False,
           locale: str | None = None) -> Any:
    """The change as HTML: an arrow, the difference and, for screen readers, the word
    (``▲ +12 %`` / "up"); green when it is better, red when worse (``worse``: a rise
    is worse), ``–`` when there is nothing to compare with."""
    import markupsafe

    found = difference(now, before, unit, locale)
    if found is None:
        return markupsafe.Markup('<span class="change">–</span>')
    good = {"up": "down" if worse else "up", "down": "up" if worse else "down"}
    css = good.get(found["direction"], "same")
    return markupsafe.Markup(
        '<span class="change {}"><span aria-hidden="true">{}</span> {}'
        '<span class="sr"> ({})</span></span>').format(
            css, found["arrow"], found["text"], found["word"])


def change_md(now: Any, before: Any, unit: str | None = None, locale: str | None = None
              ) -> str:
    """The change as text for Markdown: ``▲ +12 %``, ``–`` with nothing to compare."""
    found = difference(now, before, unit, locale)
    return "–" if found is None else f"{found['arrow']} {found['text']}"


# --- what the weekly report lists, per customer ------------------------------------------


def _week_ago(c: CustomerView) -> dt.date:
    return c.today - dt.timedelta(days=7)


def new_lead(c: CustomerView) -> dict[str, Any] | None:
    """A lead whose first contact was in the last seven days."""
    first = c.derived.first_contact
    if c.labels["lifecycle"] != "lead" or not first or first <= _week_ago(c):
        return None
    return {"name": c.customer.name, "source": c.customer.source}


def newly_at_risk(c: CustomerView) -> dict[str, Any] | None:
    """A customer who became at risk in the last seven days."""
    since = c.labels["lifecycle_since"]
    if c.labels["lifecycle"] != "at_risk" or not since or \
            dt.date.fromisoformat(since) <= _week_ago(c):
        return None
    return {"name": c.customer.name, "since": since}


def open_quote(c: CustomerView) -> dict[str, Any] | None:
    """The latest quote of the last 60 days, if no purchase came since."""
    start = c.today - dt.timedelta(days=QUOTE_DAYS)
    latest = None
    for i in c.history:
        if i.type == "quote" and i.date > start:
            latest = i
    if latest is None or any(i.type == "purchase" and i.date >= latest.date
                             for i in c.history):
        return None
    return {"customer": c.id, "name": c.customer.name, "date": latest.date,
            "amount": latest.amount, "currency": latest.currency, "summary": latest.summary}


def _listed(app: crmkit.App, label: str) -> list[Any]:
    return [row for row in app.labels().column(label).values() if row is not None]


# --- section contexts -------------------------------------------------------------------


def _by_kind(app: crmkit.App, items: list[Reminder]
             ) -> list[tuple[str, list[dict[str, Any]]]]:
    """The reminders (as rows with their customer's name and contact links,
    :func:`site.reminder_rows`) grouped by kind, each group headed by its kind's title in the
    workspace's language (``Geburtstage``), in the order of the kinds' names; with a
    ``team`` in crmkit.yaml, by owner first (``Anna Berger · Birthdays``)."""
    groups: dict[str, list[Reminder]] = {}
    for r in items:
        groups.setdefault(r.kind, []).append(r)
    t = crmkit.translations(app.workspace.settings.locale)
    kinds = {k.name: k for k in app.kinds()}

    def title(name: str) -> str:
        kind = kinds.get(name)
        text = (kind.title if kind is not None else "") or name.replace("_", " ")
        return t.gettext(text)

    customers = app.workspace.customers
    by_kind = [(title(name), site.reminder_rows(app, found))
               for name, found in sorted(groups.items())]
    settings = app.workspace.settings
    if not settings.team:
        return by_kind
    # a team (docs/team.md): each member's reminders together, in the team's order,
    # then those of customers nobody owns
    order = {member.name: i for i, member in enumerate(settings.team)}
    nobody = t.gettext(N_("no owner"))

    def owner(r: dict[str, Any]) -> str:
        customer = customers.get(r["customer"])
        member = settings.member(customer.owner if customer else None)
        return member.name if member else nobody

    grouped: list[tuple[int, str, str, list[dict[str, Any]]]] = []
    for kind_title, found in by_kind:
        mine: dict[str, list[dict[str, Any]]] = {}
        for r in found:
            mine.setdefault(owner(r), []).append(r)
        grouped += [(order.get(name, len(order)), name, kind_title, items)
                    for name, items in mine.items()]
    grouped.sort(key=lambda g: (g[0], g[1]))
    return [(f"{name} · {kind_title}", items) for _, name, kind_title, items in grouped]


def due_between(app: crmkit.App, first: dt.date | None, last: dt.date | None
                ) -> list[Reminder]:
    """The reminders shown by default (:func:`site.open_reminders`) due from ``first``
    to ``last`` (either end open with ``None``)."""
    return app.reminders(suppressed=False, due_from=first, due_until=last)


def overdue(app: crmkit.App) -> dict[str, Any]:
    items = due_between(app, None, app.today - dt.timedelta(days=1))
    return {"groups": _by_kind(app, items), "count": len(items)}


def this_week(app: crmkit.App) -> dict[str, Any]:
    items = due_between(app, app.today, app.today + dt.timedelta(days=7))
    return {"groups": _by_kind(app, items), "count": len(items)}


def kpi_changes(app: crmkit.App) -> dict[str, Any]:
    now = app.metrics(WEEKLY_METRICS)
    before = app.at(app.today - dt.timedelta(days=7)).metrics(WEEKLY_METRICS)
    return {"changes": [(now[k], before.get(k)) for k in WEEKLY_METRICS if k in now]}


def compared_day(app: crmkit.App) -> dt.date:
    """The day the dashboard compares with (``COMPARE_DAYS`` before today)."""
    return app.today - dt.timedelta(days=COMPARE_DAYS)


def _showing(names: tuple[str, ...]) -> Callable[[crmkit.App], dict[str, Any]]:
    def context(app: crmkit.App) -> dict[str, Any]:
        day = compared_day(app)
        earlier = tuple(n for n in names if n not in NOT_COMPARED)
        return {"metrics": app.metrics(names), "before": app.at(day).metrics(earlier),
                "compared": day, "less_is_better": sorted(LESS_IS_BETTER & set(names))}

    return context


def due_today(app: crmkit.App) -> dict[str, Any]:
    """The reminders due today (not held back), with the customers' names, and how many
    are overdue."""
    customers = app.workspace.customers
    items = [{"title": r.title, "kind": r.kind, "id": r.id, "customer": r.customer,
              "name": customers[r.customer].name if r.customer in customers else r.customer}
             for r in due_between(app, app.today, app.today)]
    overdue = due_between(app, None, app.today - dt.timedelta(days=1))
    return {"items": items, "overdue": len(overdue)}


DASHBOARD_ADDED = (
    ("due_today", N_("Due today"), due_today),
    ("money_owed", N_("Money owed"),
     _showing(("money_owed", "who_owes", "late_payments"))),
    ("sources", N_("New leads and customers by source"),
     _showing(("leads_by_source", "new_leads", "new_customers", "lead_conversion"))),
)


def top_customers(app: crmkit.App) -> dict[str, Any]:
    """The top customers and what each bought in the 12 months before."""
    found = _showing(("top_customers",))(app)
    before = app.at(found["compared"]).metric("_totals").value.per_customer_12m
    found["previous"] = {row["customer"]: before.get(row["customer"], Decimal(0))
                         for row in found["metrics"]["top_customers"].value}
    return found


def customer_link(context: Any, customer_id: str, name: str | None = None,
                  known: bool = True) -> Any:
    """The Jinja filter ``customer_id | customer_link(name)``: the customer's name (else
    the id) linked to their page, where the page is part of the site (the template's
    ``root`` is the way to the output folder: ``""`` or ``"../"``); the name alone
    outside the site (``root`` missing or ``None``) or for a customer without a page
    (``known=False``)."""
    import markupsafe

    shown = markupsafe.escape(name if name is not None else customer_id)
    root = context.get("root")
    if not known or not isinstance(root, str):
        return shown
    return markupsafe.Markup('<a href="{}{}/{}">{}</a>').format(
        root, site.CUSTOMERS, quote(site.page_name(customer_id)), shown)


def _customer(customers: Mapping[str, crmkit.Customer], customer_id: str) -> dict[str, Any]:
    """A customer as a row shows them: the name, and the page to link to (``None`` when
    there is no such customer: then the id is shown, unlinked)."""
    found = customers.get(customer_id)
    if found is None:
        return {"customer": customer_id, "name": customer_id, "page": None}
    return {"customer": customer_id, "name": found.name,
            "page": site.CUSTOMERS + "/" + quote(site.page_name(customer_id))}


def pipeline(app: crmkit.App) -> dict[str, Any]:
    """The open deals with their customer's name and the probability they are weighted
    with: their own, else their stage's (``_stage_probabilities`` of the pipeline plugin,
    as the weighted figure reads it; none shown for a stage without one)."""
    found = app.metrics(("pipeline_value", "pipeline_weighted", "_stage_probabilities"))
    stages = found.pop("_stage_probabilities", None)
    by_stage = stages.value if stages is not None else {}
    customers = app.workspace.customers
    deals = []
    for d in sorted((d for d in app.workspace.deals.values() if d.is_open), key=lambda d: d.id):
        own = d.probability is not None
        deals.append({**_customer(customers, d.customer), "title": d.title, "stage": d.stage,
                      "value": d.value, "own": own,
                      "probability": d.probability if own else by_stage.get(d.stage)})
    return {"metrics": found, "deals": deals}


def complaints(app: crmkit.App) -> dict[str, Any]:
    """The complaints of the last 12 months with their customer's name."""
    found = _showing(("complaints",))(app)
    customers = app.workspace.customers
    found["rows"] = [{**row, **_customer(customers, row["customer"])}
                     for row in found["metrics"]["complaints"].value]
    return found


WEEKLY_SECTIONS = (
    ("overdue", N_("Overdue"), overdue),
    ("this_week", N_("This week"), this_week),
    ("new_leads", N_("New leads"), lambda app: {"customers": _listed(app, "_new_lead")}),
    ("open_quotes", N_("Quotes without an answer"),
     lambda app: {"quotes": _listed(app, "_open_quote")}),
    ("newly_at_risk", N_("Newly at risk"),
     lambda app: {"customers": _listed(app, "_newly_at_risk")}),
    ("kpi_changes", N_("This week's numbers"), kpi_changes),
)


# --- rendering --------------------------------------------------------------------------


def available_reports(env: Any) -> dict[str, list[str]]:
    """Report names and their formats, from every template folder."""
    reports: dict[str, set[str]] = {}
    for name in env.list_templates(filter_func=lambda n: n.startswith("reports/")
                                   and n.count("/") == 1 and n.endswith(".j2")):
        stem = name.removeprefix("reports/").removesuffix(".j2")
        report, _, fmt = stem.rpartition(".")
        if report and not report.startswith("_") and fmt in FORMATS:
            reports.setdefault(report, set()).add(fmt)
    return {name: sorted(fmts) for name, fmts in sorted(reports.items())}


class Metrics(Mapping[str, Any]):
    """Every metric by name for templates, each computed when first read."""

    def __init__(self, app: crmkit.App) -> None:
        self._app = app

    def __getitem__(self, name: str) -> Any:
        found = self._app.metrics([name])
        if name not in found:
            raise KeyError(name)
        return found[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._app.metrics())

    def __len__(self) -> int:
        return len(self._app.metrics())

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and bool(self._app.metrics([name]))


def render_report(app: crmkit.App, name: str, fmt: str, root: str | None = None) -> str:
    """Render report ``name`` in ``fmt`` ("html" or "md"); with ``root`` (the way from
    the page to the output folder, ``../`` for ``reports/``) as a page of the site,
    with its navigation."""
    import jinja2

    env = app.templates
    try:
        layout = env.get_template(f"reports/{name}.{fmt}.j2")
    except jinja2.TemplateNotFound:
        from .cli import _

        known = available_reports(env)
        if name in known:
            raise crmkit.CrmkitError(_("report %(name)s has no %(format)s template; it comes as "
                                       "%(formats)s") % {"name": repr(name), "format": fmt,
                                                         "formats": ", ".join(known[name])}
                                     ) from None
        raise crmkit.CrmkitError(_("unknown report %(name)s") % {"name": repr(name)}
                                 + crmkit.did_you_mean(name, known) + "; "
                                 + _("see '%(command)s'") % {"command": "crmkit report --list"}
                                 ) from None
    settings = app.workspace.settings
    variables = {
        "business": settings.business, "today": app.today, "currency": settings.currency,
        "locale": settings.locale, "report": name, "app": app, "metrics": Metrics(app),
    }
    if root is not None and fmt == "html":
        variables.update(site.page_variables(app, root))
    sections = app.render_sections(name, fmt, variables)
    return layout.render({**variables, "sections": sections})


def write_report(app: crmkit.App, name: str, fmt: str, out: Path | None = None) -> Path:
    file = f"{name}.{FORMATS[fmt]}"
    if out is None:
        return app.write_output(Path("reports") / file, render_report(app, name, fmt, "../"))
    return app.write_file(out / file, render_report(app, name, fmt))


# --- hooks ------------------------------------------------------------------------------


@crmkit.hookimpl
def crmkit_register(register: Any) -> None:
    for order, (name, title, metrics) in enumerate(DASHBOARD_SECTIONS):
        context = {"pipeline": pipeline, "top_customers": top_customers,
                   "complaints": complaints}.get(name) \
            or _showing(metrics)
        register(ReportSection("dashboard", name, title, f"reports/sections/{name}", context,
                               order=10 * (order + 1), pure=True))
    for name, title, context in DASHBOARD_ADDED:
        register(ReportSection("dashboard", name, title, f"reports/sections/{name}", context,
                               order=DASHBOARD_ADDED_ORDER[name], pure=True))
    for order, (name, title, context) in enumerate(WEEKLY_SECTIONS):
        register(ReportSection("weekly", name, title, f"reports/sections/{name}", context,
                               order=10 * (order + 1), pure=True))
    register(Label("_new_lead", new_lead, reads=("lifecycle",)))
    register(Label("_newly_at_risk", newly_at_risk, reads=("lifecycle", "lifecycle_since")))
    register(Label("_open_quote", open_quote))
    register(Label(site.CONTACT, site.contact_label))
    register(Label(site.SORT_NAME, site.sort_name))
    register(Label(site.CHURN_SHOWN, site.churn_shown, reads=("churn_risk?",)))


@crmkit.hookimpl
def crmkit_template_dirs() -> list[Path]:
    return [Path(__file__).parent / "templates"]


@crmkit.hookimpl
def crmkit_jinja_filters() -> dict[str, Any]:
    import jinja2  # only when templates are rendered

    def in_locale(function: Callable[..., str]) -> Callable[..., str]:
        """``function`` in the template's ``locale`` (a variable of every report)."""
        def localised(context: Any, *args: Any) -> str:
            locale = context.get("locale")
            return function(*args, locale=locale if isinstance(locale, str) else None)

        return jinja2.pass_context(localised)

    return {"percent": in_locale(percent), "number": in_locale(number),
            "change": in_locale(change), "change_md": in_locale(change_md),
            "customer_link": jinja2.pass_context(customer_link),
            "tel": site.tel, "mailto": site.mailto, "breakable": site.breakable,
            "history_rows": site.history_rows,
            "funnel_chart": charts.funnel,
            "pareto_chart": charts.pareto, "score_chart": charts.score_distribution,
            "monthly_chart": charts.monthly}


@crmkit.hookimpl
def crmkit_build(app: crmkit.App) -> list[Path]:
    written = []
    for name, formats in available_reports(app.templates).items():
        for fmt in formats:
            written.append(write_report(app, name, fmt))
    return written + site.build(app)


@crmkit.hookimpl
def crmkit_register_commands(cli: click.Group) -> None:
    from .cli import report_command

    cli.add_command(report_command)
