"""``crmkit reminders``: the reminders as a table, JSON, Markdown or an iCalendar feed;
and the files ``crmkit build`` writes (``reminders.ics``, ``reminders.md``)."""

from __future__ import annotations

import calendar
import datetime as dt
import re
import sys
from pathlib import Path

import click

import crmkit
from crmkit import Reminder

FORMATS = ("table", "json", "md", "ics")


def _(message: str) -> str:
    """What the command says itself, in the terminal's language (LANG), not the
    workspace's."""
    return crmkit.translations(terminal=True).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return crmkit.translations(terminal=True).ngettext(singular, plural, n)


def N_(message: str) -> str:
    """Marks a message for ``pybabel extract``; translated where it is shown."""
    return message


def to_markdown(app: crmkit.App, reminders: list[Reminder], within: int) -> str:
    today = app.today
    locale = app.workspace.settings.locale
    t = crmkit.translations(locale)
    # each kind's title in the workspace's language, as pairs (a row template's argument)
    kinds = tuple((k.name, t.gettext(k.title or k.name.replace("_", " "))) for k in app.kinds())
    context = {"today": today, "within": within, "locale": locale, "kinds": kinds,
               "overdue": [r for r in reminders if r.overdue(today)],
               "upcoming": [r for r in reminders if not r.overdue(today)]}
    return app.render_page("reminders/calendar.md.j2", context, "reminders.md")


def within_days(app: crmkit.App) -> int:
    return int(app.workspace.settings.options("reminders").within_days)


def write_outputs(app: crmkit.App) -> list[Path]:
    within = within_days(app)
    horizon = app.today + dt.timedelta(days=within)
    shown = app.reminders(suppressed=False, due_until=horizon)
    return [
        app.write_output("reminders.ics", app.calendar(shown, key="reminders.ics")),
        app.write_output("reminders.md", to_markdown(app, shown, within)),
    ]


@click.command("reminders")
@click.option("--within", type=click.IntRange(0), metavar="DAYS",
              help="Show reminders due up to DAYS from today (default: "
                   "reminders.within_days, 30). Overdue ones are always shown.")
@click.option("--kind", "kinds", multiple=True, metavar="KIND",
              help="Only this kind (repeatable); --list-kinds lists them.")
@click.option("--customer", "customers", multiple=True, metavar="ID",
              help="Only this customer (repeatable).")
@click.option("--owner", metavar="NAME",
              help="Only the customers this team member owns (docs/team.md).")
@click.option("--mine", is_flag=True,
              help="Only my customers: owned by git's user.name (or $CRMKIT_USER).")
@click.option("--all", "show_all", is_flag=True,
              help="Also show reminders held back: snoozed (until when), expired (not "
                   "done in time) and held by the frequency cap, with the reason.")
@click.option("--list-kinds", is_flag=True,
              help="List every reminder kind (any plugin's): whether it is enabled, its "
                   "priority and what it is for.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True)
@crmkit.pass_app(pure=lambda p: not p.get("mine"))  # git's user: not in the key
def reminders_command(app: crmkit.App, within: int | None, kinds: tuple[str, ...],
                      customers: tuple[str, ...], owner: str | None, mine: bool,
                      show_all: bool, list_kinds: bool, fmt: str) -> None:
    """What to do for whom, by due date: overdue first, then the coming days."""
    if list_kinds:
        _list_kinds(app, fmt)
        return
    for cid in customers:
        app.require_customer(cid)
    owned = app.owned_by(owner, mine)
    known = {k.name: k for k in app.kinds()}
    enabled = {k.name for k in app.enabled_kinds()}
    for kind in kinds:
        if kind not in known:
            raise crmkit.CrmkitError(
                _("unknown reminder kind %(kind)s") % {"kind": repr(kind)}
                + crmkit.did_you_mean(kind, known) + "; "
                + _("known: %(kinds)s") % {"kinds": ", ".join(sorted(known))})
        if kind not in enabled:
            click.echo(_("note: %(setting)s is false in crmkit.yaml; no %(kind)s reminders")
                       % {"setting": f"reminders.{kind}.enabled", "kind": kind}, err=True)
    if within is None:
        within = within_days(app)
    today = app.today
    horizon = today + dt.timedelta(days=within)
    matching = [r for r in app.reminders() if r.due <= horizon
                and (not kinds or r.kind in kinds)
                and (not customers or r.customer in customers)
                and (owned is None or r.customer in owned)]
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
            flags = _("OVERDUE") if r.overdue(today) and not r.suppressed else ""
            if r.suppressed:
                flags = f"{flags} {r.suppressed}".strip()
            rows.append([r.due.isoformat(), r.id, r.title, r.channel, r.priority, flags])
        click.echo(crmkit.table([_("due"), "id", _("title"), _("channel"), _("prio"),
                                 _("status")], rows))
        overdue = sum(1 for r in chosen if r.overdue(today) and not r.suppressed)
        summary = ngettext("%(num)d reminder (%(overdue)d overdue) up to %(day)s",
                           "%(num)d reminders (%(overdue)d overdue) up to %(day)s",
                           len(chosen)) % {"num": len(chosen), "overdue": overdue,
                                           "day": horizon.isoformat()}
        if held:
            summary += "; " + ngettext(
                "%(num)d held back (snoozed, expired or by the frequency cap: --all shows it)",
                "%(num)d held back (snoozed, expired or by the frequency cap: --all shows "
                "them)", held) % {"num": held}
        click.echo(summary, err=True)
        if chosen and not show_all:
            click.echo(_("mark one done: %(done)s; later: %(snooze)s") % {
                "done": "crmkit done ID", "snooze": "crmkit snooze ID --for 1w"}, err=True)
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
        [_("kind"), _("plugin"), _("enabled"), _("prio"), _("what")],
        [[r["kind"], r["plugin"], _("yes") if r["enabled"] else _("no"), r["priority"],
          r["description"]] for r in rows]))


# --- settling reminders: done and snooze --------------------------------------------------

_FOR = re.compile(r"^\s*(\d+)\s*(d|w|m|days?|weeks?|months?)\s*$", re.IGNORECASE)


def _open_reminders(app: crmkit.App, ids: tuple[str, ...]) -> dict[str, list[Reminder]]:
    """The reminders named, by customer; a one-line error for an id that is not one."""
    known = {r.id: r for r in app.reminders()}
    chosen: dict[str, list[Reminder]] = {}
    for rid in dict.fromkeys(ids):
        reminder = known.get(rid)
        if reminder is None:
            customer = rid.split("/")[1] if rid.count("/") >= 2 else ""
            if customer in app.workspace.customers:
                for i in app.customer(customer).history:
                    if rid in i.resolves and i.type != "snooze":
                        raise crmkit.CrmkitError(_("%(id)s is settled already, in %(file)s")
                                                 % {"id": repr(rid), "file": i.location})
            same = [k for k, r in known.items() if r.customer == customer] or list(known)
            raise crmkit.CrmkitError(
                _("no open reminder %(id)s") % {"id": repr(rid)}
                + crmkit.did_you_mean(rid, same) + "; "
                + _("'%(command)s' lists them with their ids") % {
                    "command": "crmkit reminders --all"})
        chosen.setdefault(reminder.customer, []).append(reminder)
    return chosen


def _settle(app: crmkit.App, chosen: dict[str, list[Reminder]], data: dict, fmt: str,
            verb: str) -> None:
    """Write one record per customer that settles ``chosen`` (:func:`_open_reminders`)."""
    written = []
    for customer, reminders in chosen.items():
        rel = app.record_interaction({"customer": customer, "date": app.today, **data,
                                      "resolves": [r.id for r in reminders], "by": app.user},
                                     now=True)
        written.append({"file": rel, "resolves": [r.id for r in reminders]})
    if fmt == "json":
        crmkit.echo_json(written)
        return
    for item in written:
        for rid in item["resolves"]:
            click.echo(_("%(what)s: %(id)s (recorded in %(file)s)") % {
                "what": verb, "id": rid, "file": item["file"]})


#: Kinds whose reminders are each a promise or a request: "never" would hide the next.
NO_NEVER = {
    "respond": N_("every request of theirs would go unanswered"),
    "follow_up": N_("every follow-up promised to them would be forgotten"),
}


def _format_option(function):
    return click.option("--format", "fmt", type=click.Choice(("text", "json")),
                        default="text", show_default=True)(function)


@click.command("done")
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.option("--note", metavar="TEXT", help="Why, or what was done (kept in the record).")
@click.option("--never", is_flag=True,
              help="Never remind me of this kind for this customer again (e.g. birthdays).")
@_format_option
@crmkit.pass_app
def done_command(app: crmkit.App, ids: tuple[str, ...], note: str | None, never: bool,
                 fmt: str) -> None:
    """Mark reminders done: each ID (as `crmkit reminders` shows it) disappears.

    Writes one record per customer below interactions/ (type: done, who, when, why),
    so the change is reviewable in git; delete the file to undo it.
    """
    if never:
        for rid in ids:
            kind = rid.split("/")[0]
            if kind in NO_NEVER:
                raise click.BadParameter(
                    _("not for %(kind)s: %(why)s; mark this one done without it") % {
                        "kind": repr(kind), "why": _(NO_NEVER[kind])},
                    param_hint="--never")
    _settle(app, _open_reminders(app, ids),
            {"type": "done", "summary": note, "never": never or None}, fmt,
            _("never again") if never else _("done"))
    if never and fmt != "json":
        click.echo(_("from now on no reminders of these kinds for these customers "
                     "(delete the record to undo it)"), err=True)


@click.command("snooze")
@click.argument("ids", nargs=-1, required=True, metavar="ID...")
@click.option("--until", "until", type=click.DateTime(["%Y-%m-%d"]), metavar="YYYY-MM-DD",
              help="The day the reminders come back.")
@click.option("--for", "span", metavar="N[d|w|m]", help="Or: for this long, e.g. 10d, 2w, 3m.")
@click.option("--note", metavar="TEXT", help="Why (kept in the record).")
@_format_option
@crmkit.pass_app
def snooze_command(app: crmkit.App, ids: tuple[str, ...], until: dt.datetime | None,
                   span: str | None, note: str | None, fmt: str) -> None:
    """Not now: hold reminders back until a day, then they are due again.

    Writes one record per customer below interactions/ (type: snooze); snoozed
    reminders are listed with `crmkit reminders --all`, with the day they come back.
    """
    if (until is None) == (span is None):
        raise click.UsageError(_("give either %(until)s or %(for)s") % {
            "until": "--until YYYY-MM-DD", "for": "--for N[d|w|m]"})
    day = until.date() if until is not None else _later(app.today, span or "")
    if day <= app.today:
        raise click.BadParameter(_("%(day)s is not after today (%(today)s)") % {
                                     "day": day.isoformat(), "today": app.today.isoformat()},
                                 param_hint="--until" if until is not None else "--for")
    from . import LISTED_AFTER_EXPIRY

    chosen = _open_reminders(app, ids)
    for reminders in chosen.values():
        for r in reminders:
            last = (r.expires or r.due) + LISTED_AFTER_EXPIRY
            if r.expires and day > last:
                raise click.BadParameter(
                    _("%(id)s is no longer listed after %(last)s (it expires on %(day)s): "
                      "snooze it until then at most, or mark it done") % {
                        "id": r.id, "last": last.isoformat(), "day": r.expires.isoformat()},
                    param_hint="--until/--for")
    _settle(app, chosen, {"type": "snooze", "summary": note, "until": day}, fmt,
            _("snoozed until %(day)s") % {"day": day.isoformat()})


def _later(today: dt.date, span: str) -> dt.date:
    match = _FOR.match(span)
    if not match:
        raise click.BadParameter(_("%(span)s: write a number and d, w or m, e.g. 2w")
                                 % {"span": repr(span)}, param_hint="--for")
    count, unit = int(match[1]), match[2][0].lower()
    try:
        if unit == "d":
            return today + dt.timedelta(days=count)
        if unit == "w":
            return today + dt.timedelta(weeks=count)
        month = today.month - 1 + count
        year, month = today.year + month // 12, month % 12 + 1
        return dt.date(year, month, min(today.day, calendar.monthrange(year, month)[1]))
    except (OverflowError, ValueError):
        raise click.BadParameter(_("%(span)s is too far ahead") % {"span": repr(span)},
                                 param_hint="--for") from None
