"""Reports: the KPI dashboard and the weekly to-do report, as HTML and Markdown.

A report is a layout template ``reports/<name>.<format>.j2`` plus the sections
that plugins contribute for it (``crmkit_report_sections``); each section names
a template base, rendered as ``<template>.<format>.j2``.  A workspace overrides
any of them, or adds a report, by putting a template of that name in its
``templates/`` folder.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit import Metric, Reminder, ReportSection, Segmentation, Snapshot

from . import charts

NAME = "reports"
FORMATS = {"html": "html", "md": "md"}
DASHBOARD_SECTIONS = (
    ("kpis", "Key figures"), ("revenue", "Revenue"), ("lifecycle", "Lifecycle"),
    ("abc", "ABC and Pareto"), ("nps", "Feedback"), ("top_customers", "Top customers"),
    ("at_risk", "Customers at risk"), ("pipeline", "Open deals"),
    ("complaints", "Complaints"),
)
WEEKLY_SECTIONS = (
    ("overdue", "Overdue"), ("this_week", "This week"), ("new_leads", "New leads"),
    ("open_quotes", "Quotes without an answer"), ("newly_at_risk", "Newly at risk"),
    ("kpi_changes", "This week's numbers"),
)
#: Metrics compared week over week in the weekly report.
WEEKLY_METRICS = ("customers", "revenue_12m", "average_order_value", "repeat_purchase_rate",
                  "nps", "pipeline_weighted")


def md_cell(value: Any) -> str:
    """One Markdown table cell: no line breaks, no pipes, no HTML."""
    return (crmkit.clean(value).replace("\\", "\\\\").replace("|", "\\|")
            .replace("<", "&lt;").replace(">", "&gt;"))


def percent(value: float | None) -> str:
    return "–" if value is None else f"{float(value):.0%}"


def number(value: Any, unit: str | None = None) -> str:
    """A metric value for people: money with two decimals, ratios as percent."""
    if value is None:
        return "–"
    if unit == "ratio":
        return percent(value)
    if unit and len(unit) == 3 and unit.isupper():
        return f"{float(value):,.2f} {unit}"
    if unit == "points":
        return f"{value:+d}" if isinstance(value, int) else str(value)
    return str(value)


def _open_quotes(snapshot: Snapshot, days: int = 60) -> list[dict[str, Any]]:
    """The latest quote of the last ``days`` of each customer without a purchase since."""
    start = snapshot.today - dt.timedelta(days=days)

    def open_quote(customer_id: str) -> dict[str, Any] | None:
        history = snapshot.history(customer_id)
        latest = None
        for i in history:
            if i.type == "quote" and i.date > start:
                latest = i
        if latest is None or any(i.type == "purchase" and i.date >= latest.date
                                 for i in history):
            return None
        return {"customer": customer_id, "name": snapshot.workspace.customers[customer_id].name,
                "date": latest.date, "amount": latest.amount, "currency": latest.currency,
                "summary": latest.summary}

    ids = [c.id for c in snapshot.customers]
    found = snapshot.per_customer_many(f"{NAME}.open_quote", ids,
                                       lambda todo: {cid: open_quote(cid) for cid in todo},
                                       (days,))
    return [quote for cid in ids if (quote := found[cid]) is not None]


def weekly_sections(snapshot: Snapshot, segments: Segmentation, reminders: list[Reminder]
                    ) -> Iterator[ReportSection]:
    today = snapshot.today
    week_ago = today - dt.timedelta(days=7)
    next_week = today + dt.timedelta(days=7)
    shown = [r for r in reminders if not r.suppressed]
    overdue = [r for r in shown if r.due < today]
    upcoming = [r for r in shown if today <= r.due <= next_week]

    def by_kind(items: list[Reminder]) -> list[tuple[str, list[Reminder]]]:
        groups: dict[str, list[Reminder]] = {}
        for r in items:
            groups.setdefault(r.kind, []).append(r)
        return sorted(groups.items())

    derived = snapshot.all_derived()
    stage = segments.values_of("lifecycle")
    customers = snapshot.customers
    new_leads = [c for c in customers if stage.get(c.id) == "lead"
                 and (first := derived[c.id].first_contact) and first > week_ago]
    newly_at_risk = [c for c in customers if stage.get(c.id) == "at_risk"
                     and (since := segments.label(c.id, "lifecycle_since"))
                     and dt.date.fromisoformat(since) > week_ago]
    contexts = {
        "overdue": {"groups": by_kind(overdue), "count": len(overdue)},
        "this_week": {"groups": by_kind(upcoming), "count": len(upcoming)},
        "new_leads": {"customers": new_leads},
        "open_quotes": {"quotes": _open_quotes(snapshot)},
        "newly_at_risk": {"customers": newly_at_risk},
        "kpi_changes": {},
    }
    for order, (name, title) in enumerate(WEEKLY_SECTIONS):
        yield ReportSection(name, title, f"reports/sections/{name}", contexts[name],
                            order=10 * (order + 1))


def dashboard_sections() -> Iterator[ReportSection]:
    for order, (name, title) in enumerate(DASHBOARD_SECTIONS):
        yield ReportSection(name, title, f"reports/sections/{name}", {}, order=10 * (order + 1))


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


def render_report(app: crmkit.App, name: str, fmt: str) -> str:
    """Render report ``name`` in ``fmt`` ("html" or "md")."""
    import jinja2
    from markupsafe import Markup

    env = app.templates
    try:
        layout = env.get_template(f"reports/{name}.{fmt}.j2")
    except jinja2.TemplateNotFound:
        known = available_reports(env)
        if name in known:
            raise crmkit.CrmkitError(f"report {name!r} has no {fmt} template; "
                                     f"it comes as {', '.join(known[name])}") from None
        raise crmkit.CrmkitError(f"unknown report {name!r}{crmkit.did_you_mean(name, known)}; "
                                 "see 'crmkit report --list'") from None
    settings = app.workspace.settings  # loaded first: last week's App shares it
    week_ago = app.at(app.today - dt.timedelta(days=7))
    week_ago.metrics_in_background(WEEKLY_METRICS)  # on the other core, where possible
    metrics = {m.name: m for m in app.metrics()}
    before = {m.name: m for m in week_ago.metrics(WEEKLY_METRICS)}
    changes = [(metrics[k], before.get(k)) for k in WEEKLY_METRICS if k in metrics]
    base = {
        "business": settings.business, "today": app.today,
        "metrics": metrics, "changes": changes, "charts": charts, "segments": app.segments(),
        "snapshot": app.snapshot, "currency": settings.currency,
        "number": number, "percent": percent,
    }
    rendered = []
    for section in app.report_sections(name):
        try:
            template = env.get_template(f"{section.template}.{fmt}.j2")
        except jinja2.TemplateNotFound:
            app.problems.append(crmkit.Diagnostic.warning(
                f"report section {section.name!r} has no template "
                f"{section.template}.{fmt}.j2; left out"))
            continue
        body = render_section(env, template, {**base, **section.context, "section": section})
        rendered.append({"name": section.name, "title": section.title,
                         "body": Markup(body) if fmt == "html" else body})
    return layout.render({**base, "sections": rendered, "report": name})


#: The last output of each section template, with the values of the variables it
#: uses: ``crmkit watch`` renders every report after each change, and most changes
#: leave most sections as they were (a list of 5,000 reminders takes 0.1 s).
_RENDERED: dict[str, tuple[Any, frozenset[str] | None, dict[str, Any], str]] = {}
_ABSENT = object()


def render_section(env: Any, template: Any, context: dict[str, Any]) -> str:
    """``template.render(context)``, or its last output when every variable it uses
    (found by Jinja's own analysis of its source) is equal to last time.  A template
    that includes, imports or extends another is always rendered."""
    kept = _RENDERED.get(template.name)
    if kept is not None and kept[0] is template:
        names = kept[1]
        if names is not None and _equal(kept[2], {n: context.get(n, _ABSENT) for n in names}):
            return kept[3]
    else:
        names = _variables_of(env, template.name)
    body: str = template.render(context)
    if names is not None:
        _RENDERED[template.name] = (template, names,
                                    {n: context.get(n, _ABSENT) for n in names}, body)
    return body


#: Rendered rows per (row template, arguments), by item: ``crmkit watch`` renders a
#: report again when one of thousands of listed items changes; the others keep their
#: text.  Found by the item's identity first (most items are the very objects of the
#: last rebuild; each entry holds its item, so no other object has its id), else by its
#: value (items built afresh, such as the dicts of a metric).
_ROWS: dict[tuple[Any, ...], dict[int, tuple[Any, str]]] = {}
_ROWS_BY_VALUE: dict[tuple[Any, ...], str] = {}
_KEEP_ROWS = 200_000


#: Value types whose equal values always print the same (unlike 1.0 and 1.00 as Decimals).
_PLAIN = frozenset({str, int, bool, type(None), dt.date})


def _value_key(item: Any) -> tuple[Any, ...] | None:
    """A hashable stand-in for a dict row's value, or ``None`` for anything else.  Equal
    keys mean the rows print the same: each value goes in with its type, and decimals
    and floats by their exact text."""
    if type(item) is not dict:
        return None
    parts = []
    for key, value in item.items():
        kind = type(value)
        if kind in _PLAIN:
            parts.append((key, kind, value))
        elif kind is Decimal or kind is float:
            parts.append((key, kind, repr(value)))
        else:
            return None
    return tuple(parts)


def _rows(eval_ctx: Any, items: Iterable[Any], name: str, **context: Any) -> Any:
    """``{{ items | rows("reports/rows/reminder.md.j2", today=today) }}``: each item
    rendered by the row template (as ``item``, with ``context``), one after another.

    A row is kept while the item is the same object or an equal one, the template
    the same and ``context`` equal, so the row template must depend on nothing else."""
    from markupsafe import Markup

    env = eval_ctx.environment
    template = env.get_template(name)
    extra = tuple(sorted(context.items()))
    try:
        hash(extra)
    except TypeError:  # arguments that cannot be a key: nothing is kept
        table: dict[int, tuple[Any, str]] = {}
        by_values = False
    else:
        if sum(map(len, _ROWS.values())) > _KEEP_ROWS or len(_ROWS_BY_VALUE) > _KEEP_ROWS:
            _ROWS.clear()
            _ROWS_BY_VALUE.clear()
        table = _ROWS.setdefault((name, template, extra), {})
        by_values = True
    get = table.get
    out = []
    row_context = None
    for item in items:
        kept = get(id(item))
        if kept is not None and kept[0] is item:
            out.append(kept[1])
            continue
        value = _value_key(item) if by_values else None
        by_value = (template, extra, value) if value is not None else None
        text = _ROWS_BY_VALUE.get(by_value) if by_value is not None else None
        if text is None:
            if row_context is None:  # one context for all rows: as fast as a loop
                row_context = template.new_context(dict(context))
            row_context.vars["item"] = item
            text = env.concat(template.root_render_func(row_context))
            if by_value is not None:
                _ROWS_BY_VALUE[by_value] = text
        table[id(item)] = (item, text)
        out.append(text)
    text = "".join(out)
    return Markup(text) if eval_ctx.autoescape else text


def _equal(before: dict[str, Any], now: dict[str, Any]) -> bool:
    try:
        return bool(before == now)
    except Exception:  # values without a plain equality (numpy arrays): render again
        return False


def _variables_of(env: Any, name: str) -> frozenset[str] | None:
    from jinja2 import meta

    try:
        source = env.loader.get_source(env, name)[0]
        parsed = env.parse(source)
    except Exception:
        return None
    if any(True for _ in meta.find_referenced_templates(parsed)):
        return None
    return frozenset(meta.find_undeclared_variables(parsed))


def write_report(app: crmkit.App, name: str, fmt: str, out: Path) -> Path:
    path = out / f"{name}.{FORMATS[fmt]}"
    crmkit.write_atomically(path, render_report(app, name, fmt), durable=False)
    return path


# --- hooks ------------------------------------------------------------------------------


@crmkit.hookimpl
def crmkit_report_sections(report: str, snapshot: Snapshot, segments: Segmentation,
                           reminders: list[Reminder]) -> Iterator[ReportSection]:
    if report == "weekly":
        return weekly_sections(snapshot, segments, reminders)
    if report == "dashboard":
        return dashboard_sections()
    return iter(())


@crmkit.hookimpl
def crmkit_template_dirs() -> list[Path]:
    return [Path(__file__).parent / "templates"]


@crmkit.hookimpl
def crmkit_jinja_filters() -> dict[str, Any]:
    import jinja2  # the environment being made has imported it already

    return {"md": md_cell, "percent": percent, "rows": jinja2.pass_eval_context(_rows)}


@crmkit.hookimpl
def crmkit_build(app: crmkit.App) -> list[Path]:
    out = app.workspace.output_dir / "reports"
    written = []
    for name, formats in available_reports(app.templates).items():
        for fmt in formats:
            written.append(write_report(app, name, fmt, out))
    return written


@crmkit.hookimpl
def crmkit_register_commands(cli: click.Group) -> None:
    from .reports_cli import report_command

    cli.add_command(report_command)


def metric_json(metrics: list[Metric]) -> dict[str, Any]:
    return {m.name: {"label": m.label, "value": m.value, "unit": m.unit,
                     "description": m.description} for m in metrics}
