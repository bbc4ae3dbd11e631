"""``crmkit reminders``: the reminders as a table, JSON, Markdown or an iCalendar feed."""

from __future__ import annotations

import datetime as dt
import hashlib
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import click

import crmkit
from crmkit import Reminder

FORMATS = ("table", "json", "md", "ics")
V = TypeVar("V")


def reminder_uid(reminder: Reminder) -> str:
    """Stable across runs, so a subscribed calendar updates instead of duplicating."""
    source = reminder.source.path if reminder.source else ""
    key = f"{reminder.customer}|{reminder.kind}|{reminder.due.isoformat()}|{source}"
    return f"{hashlib.sha1(key.encode()).hexdigest()[:20]}@crmkit"


#: Serialised events by (reminder, today) and Markdown rows by reminder: `crmkit watch`
#: rebuilds both after every change, and icalendar takes about a millisecond per event.
_EVENTS: dict[tuple[Reminder, object], bytes] = {}
_ROWS: dict[tuple[Reminder, object], str] = {}
#: The same, by the reminder object: most reminders are the very objects of the last
#: rebuild, and finding them by identity spares hashing thousands of reminders.
_SAME: dict[tuple[int, int], tuple[Reminder, object, object]] = {}
_KEEP_AT_MOST = 200_000
#: The files last written, with what they were made of: most changes leave the list
#: of shown reminders as it was, and comparing it costs less than a lookup per reminder.
_FILES: dict[Path, tuple[tuple[object, ...], bytes]] = {}


def _kept(kept: dict[tuple[Reminder, object], V], reminder: Reminder, extra: object,
          make: Callable[[], V]) -> V:
    """``kept[reminder, extra]``, made on first use (the dicts are emptied when they
    grow too big)."""
    same_key = (id(kept), id(reminder))
    same = _SAME.get(same_key)  # the entry holds the reminder, so its id is not reused
    if same is not None and same[0] is reminder and same[1] == extra:
        return same[2]  # type: ignore[return-value]
    value = kept.get((reminder, extra))
    if value is None:
        value = make()
        if len(kept) > _KEEP_AT_MOST:
            kept.clear()
        kept[reminder, extra] = value
    if len(_SAME) > _KEEP_AT_MOST:
        _SAME.clear()
    _SAME[same_key] = (reminder, extra, value)
    return value


#: Per list: its items last time, what they were made with, and their text by id (the
#: items are held, so no other object can have their ids).
_LAST: dict[str, tuple[list[Reminder], object, dict[int, object]]] = {}


def _each(name: str, items: list[Reminder], extra: object,
          make: Callable[[Reminder], V]) -> list[V]:
    """``make(item)`` for each item, found by identity among the last call's items first:
    after a change most of 8,000 listed reminders are the very objects of last time."""
    last = _LAST.get(name)
    by_id = last[2] if last is not None and last[1] == extra else {}
    get = by_id.get
    made = [get(id(item)) or make(item) for item in items]  # type: ignore[misc]
    _LAST[name] = (items, extra, dict(zip(map(id, items), made, strict=True)))
    return made  # type: ignore[return-value]


def _event(reminder: Reminder, today: dt.date) -> bytes:
    return _kept(_EVENTS, reminder, today, lambda: _ical_event(reminder, today))


def _ical_event(reminder: Reminder, today: dt.date) -> bytes:
    import icalendar  # lazily: only this format needs it

    event = icalendar.Event()
    event.add("uid", reminder_uid(reminder))
    event.add("dtstamp", dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC))
    event.add("dtstart", reminder.due)
    event.add("dtend", reminder.due + dt.timedelta(days=1))
    event.add("summary", reminder.title)
    lines = [reminder.reason, f"customer: {reminder.customer}"]
    if reminder.channel:
        lines.append(f"channel: {reminder.channel}")
    event.add("description", "\n".join(lines))
    event.add("categories", [reminder.kind])
    event.add("priority", min(9, max(1, reminder.priority)))
    event.add("transp", "TRANSPARENT")
    return event.to_ical()


def to_ics(reminders: list[Reminder], today: dt.date, business: str) -> bytes:
    """An RFC 5545 calendar: icalendar writes the calendar and each event."""
    import icalendar

    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//crmkit//reminders//EN")
    calendar.add("version", "2.0")
    calendar.add("x-wr-calname", f"{business}: reminders")
    head, end = calendar.to_ical().rsplit(b"END:VCALENDAR", 1)
    events = _each("ics", reminders, today, lambda r: _event(r, today))
    return head + b"".join(events) + b"END:VCALENDAR" + end


def _md_cell(value: object) -> str:
    return crmkit.clean(value).replace("|", "\\|").replace("<", "&lt;").replace(">", "&gt;")


def to_markdown(reminders: list[Reminder], today: dt.date, within: int) -> str:
    overdue = [r for r in reminders if r.overdue(today)]
    upcoming = [r for r in reminders if not r.overdue(today)]
    out = [f"# Reminders as of {today.isoformat()}", ""]
    for name, title, items in (
            ("overdue", f"Overdue ({len(overdue)})", overdue),
            ("upcoming", f"Next {within} days ({len(upcoming)})", upcoming)):
        out += [f"## {title}", ""]
        if not items:
            out += ["Nothing.", ""]
            continue
        out += ["| due | customer | kind | what | channel |", "|---|---|---|---|---|"]
        out.extend(_each(f"md {name}", items, None, _md_row))
        out.append("")
    return "\n".join(out)


def _md_row(r: Reminder) -> str:
    def make() -> str:
        note = f" *(held back: {r.suppressed})*" if r.suppressed else ""
        return (f"| {r.due.isoformat()} | {_md_cell(r.customer)} | {r.kind} | "
                f"{_md_cell(r.title)}{_md_cell(note)} | {_md_cell(r.channel)} |")

    return _kept(_ROWS, r, None, make)


def write_outputs(app: crmkit.App) -> list[Path]:
    from .reminders import NAME

    within = crmkit.Options(app.workspace.settings, NAME).integer("within_days", 30, 0)
    horizon = app.today + dt.timedelta(days=within)
    shown = [r for r in app.reminders() if not r.suppressed and r.due <= horizon]
    out = app.workspace.output_dir
    out.mkdir(parents=True, exist_ok=True)
    business = app.workspace.settings.business
    files = {
        out / "reminders.ics": ((shown, app.today, business),
                                lambda: to_ics(shown, app.today, business)),
        out / "reminders.md": ((shown, app.today, within),
                               lambda: to_markdown(shown, app.today, within).encode("utf-8")),
    }
    for path, (inputs, make) in files.items():
        kept = _FILES.get(path)
        data = kept[1] if kept is not None and kept[0] == inputs else make()
        _FILES[path] = (inputs, data)
        crmkit.write_atomically(path, data, durable=False)
    return list(files)


@crmkit.read_only
@click.command("reminders")
@click.option("--within", type=click.IntRange(0), metavar="DAYS",
              help="Show reminders due up to DAYS from today (default: "
                   "reminders.within_days, 30). Overdue ones are always shown.")
@click.option("--kind", "kinds", multiple=True, metavar="KIND",
              help="Only this kind (repeatable): birthday, service_due, follow_up, "
                   "quote_follow_up, thank_you, feedback_request, stay_in_touch, at_risk, "
                   "win_back, loyalty_reward, or a plugin's own.")
@click.option("--customer", "customers", multiple=True, metavar="ID",
              help="Only this customer (repeatable).")
@click.option("--all", "show_all", is_flag=True,
              help="Also show reminders held back by the frequency cap, with the reason.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True)
@crmkit.pass_app
def reminders_command(app: crmkit.App, within: int | None, kinds: tuple[str, ...],
                      customers: tuple[str, ...], show_all: bool, fmt: str) -> None:
    """What to do for whom, by due date: overdue first, then the coming days."""
    did_you_mean = crmkit.did_you_mean
    from .reminders import KINDS, NAME

    ws = app.workspace
    for cid in customers:
        app.require_customer(cid)
    if within is None:
        within = crmkit.Options(ws.settings, NAME).integer("within_days", 30, 0)
    everything = app.reminders()
    known_kinds = set(KINDS) | {r.kind for r in everything}
    for kind in kinds:
        if kind not in known_kinds:
            raise crmkit.CrmkitError(f"unknown reminder kind {kind!r}"
                                     f"{did_you_mean(kind, known_kinds)}; known: "
                                     f"{', '.join(sorted(known_kinds))}")
    today = app.today
    horizon = today + dt.timedelta(days=within)
    matching = [r for r in everything if r.due <= horizon and (not kinds or r.kind in kinds)
                and (not customers or r.customer in customers)]
    chosen = [r for r in matching if show_all or not r.suppressed]
    held = len(matching) - len(chosen)
    if fmt == "json":
        crmkit.echo_json([r.to_json(today) for r in chosen])
    elif fmt == "ics":
        sys.stdout.flush()
        sys.stdout.buffer.write(to_ics(chosen, today, ws.settings.business))  # keep CRLF
        sys.stdout.buffer.flush()
    elif fmt == "md":
        click.echo(to_markdown(chosen, today, within))
    else:
        rows = []
        for r in chosen:
            flags = "OVERDUE" if r.overdue(today) else ""
            if r.suppressed:
                flags = f"{flags} held: {r.suppressed}".strip()
            rows.append([r.due.isoformat(), r.customer, r.kind, r.title, r.channel,
                         r.priority, flags])
        click.echo(crmkit.table(["due", "customer", "kind", "title", "channel", "prio", ""], rows))
        overdue = sum(1 for r in chosen if r.overdue(today))
        summary = f"{len(chosen)} reminders ({overdue} overdue) up to {horizon.isoformat()}"
        if held:
            summary += f"; {held} held back by the frequency cap (--all shows them)"
        click.echo(summary, err=True)
    app.warn_about_problems()
