"""``crmkit reminders``: the reminders as a table, JSON, Markdown or an iCalendar feed;
and the files ``crmkit build`` writes (``reminders.ics``, ``reminders.md``)."""

from __future__ import annotations

import datetime as dt
import sys
from pathlib import Path

import click

import crmkit
from crmkit import Reminder

FORMATS = ("table", "json", "md", "ics")


def to_markdown(app: crmkit.App, reminders: list[Reminder], within: int) -> str:
    today = app.today
    template = app.templates.get_template("reminders/calendar.md.j2")
    return template.render(today=today, within=within,
                           overdue=[r for r in reminders if r.overdue(today)],
                           upcoming=[r for r in reminders if not r.overdue(today)])


def within_days(app: crmkit.App) -> int:
    return int(app.workspace.settings.options("reminders").within_days)


def write_outputs(app: crmkit.App) -> list[Path]:
    within = within_days(app)
    horizon = app.today + dt.timedelta(days=within)
    shown = [r for r in app.reminders() if not r.suppressed and r.due <= horizon]
    return [
        app.write_output("reminders.ics", app.calendar(shown, key="reminders.ics")),
        app.write_output("reminders.md", to_markdown(app, shown, within)),
    ]


@crmkit.read_only
@click.command("reminders")
@click.option("--within", type=click.IntRange(0), metavar="DAYS",
              help="Show reminders due up to DAYS from today (default: "
                   "reminders.within_days, 30). Overdue ones are always shown.")
@click.option("--kind", "kinds", multiple=True, metavar="KIND",
              help="Only this kind (repeatable); --list-kinds lists them.")
@click.option("--customer", "customers", multiple=True, metavar="ID",
              help="Only this customer (repeatable).")
@click.option("--all", "show_all", is_flag=True,
              help="Also show reminders held back by the frequency cap, with the reason.")
@click.option("--list-kinds", is_flag=True,
              help="List every reminder kind (any plugin's): whether it is enabled, its "
                   "priority and what it is for.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True)
@crmkit.pass_app
def reminders_command(app: crmkit.App, within: int | None, kinds: tuple[str, ...],
                      customers: tuple[str, ...], show_all: bool, list_kinds: bool,
                      fmt: str) -> None:
    """What to do for whom, by due date: overdue first, then the coming days."""
    if list_kinds:
        _list_kinds(app, fmt)
        return
    for cid in customers:
        app.require_customer(cid)
    known = {k.name: k for k in app.kinds()}
    enabled = {k.name for k in app.enabled_kinds()}
    for kind in kinds:
        if kind not in known:
            raise crmkit.CrmkitError(f"unknown reminder kind {kind!r}"
                                     f"{crmkit.did_you_mean(kind, known)}; known: "
                                     f"{', '.join(sorted(known))}")
        if kind not in enabled:
            click.echo(f"note: reminders.{kind}.enabled is false in crmkit.yaml; "
                       f"no {kind} reminders", err=True)
    if within is None:
        within = within_days(app)
    today = app.today
    horizon = today + dt.timedelta(days=within)
    matching = [r for r in app.reminders() if r.due <= horizon
                and (not kinds or r.kind in kinds)
                and (not customers or r.customer in customers)]
    chosen = [r for r in matching if show_all or not r.suppressed]
    held = len(matching) - len(chosen)
    if fmt == "json":
        crmkit.echo_json([r.to_json(today) for r in chosen])
    elif fmt == "ics":
        sys.stdout.flush()
        sys.stdout.buffer.write(app.calendar(chosen))  # keep CRLF
        sys.stdout.buffer.flush()
    elif fmt == "md":
        click.echo(to_markdown(app, chosen, within))
    else:
        rows = []
        for r in chosen:
            flags = "OVERDUE" if r.overdue(today) else ""
            if r.suppressed:
                flags = f"{flags} held: {r.suppressed}".strip()
            rows.append([r.due.isoformat(), r.customer, r.kind, r.title, r.channel,
                         r.priority, flags])
        click.echo(crmkit.table(["due", "customer", "kind", "title", "channel", "prio", ""],
                                rows))
        overdue = sum(1 for r in chosen if r.overdue(today))
        summary = f"{len(chosen)} reminders ({overdue} overdue) up to {horizon.isoformat()}"
        if held:
            summary += f"; {held} held back by the frequency cap (--all shows them)"
        click.echo(summary, err=True)
    app.warn_about_problems()


def _list_kinds(app: crmkit.App, fmt: str) -> None:
    enabled = {k.name for k in app.enabled_kinds()}
    rows = []
    for kind in app.kinds():
        options = app.workspace.settings.options(kind.settings)
        rows.append({"kind": kind.name, "plugin": app.plugin_of(kind),
                     "enabled": kind.name in enabled,
                     "priority": options.get("priority", kind.priority),
                     "channel": kind.channel, "email_template": kind.email_template,
                     "description": kind.description})
    if fmt == "json":
        crmkit.echo_json(rows)
        return
    click.echo(crmkit.table(
        ["kind", "plugin", "enabled", "prio", "what"],
        [[r["kind"], r["plugin"], "yes" if r["enabled"] else "no", r["priority"],
          r["description"]] for r in rows]))
