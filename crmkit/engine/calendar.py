"""The reminder calendar (RFC 5545), the same for every kind of reminder.

icalendar writes each event; an event's text depends on the reminder and the day
alone, so the core keeps it across ``crmkit watch`` rebuilds
(:func:`crmkit.incremental.render.each`): icalendar takes about a millisecond per
event, and a calendar holds thousands.  A one-off run writes a long calendar's events
on every core instead (:func:`crmkit.incremental.parallel.map_chunks`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import itertools
from collections.abc import Mapping

from ..incremental import parallel, render
from .i18n import translations
from .values import Reminder


def reminder_uid(reminder: Reminder) -> str:
    """From the reminder's id: stable across runs, so a subscribed calendar updates
    instead of duplicating."""
    return f"{hashlib.sha1(reminder.id.encode()).hexdigest()[:20]}@crmkit"


def _event(reminder: Reminder, today: dt.date, locale: str | None,
           categories: Mapping[str, str]) -> bytes:
    import icalendar  # lazily: only calendars need it

    t = translations(locale)

    event = icalendar.Event()
    event.add("uid", reminder_uid(reminder))
    event.add("dtstamp", dt.datetime.combine(today, dt.time(), tzinfo=dt.UTC))
    event.add("dtstart", reminder.due)
    event.add("dtend", reminder.due + dt.timedelta(days=1))
    event.add("summary", reminder.title)
    lines = [reminder.reason, t.gettext("customer: %(id)s") % {"id": reminder.customer},
             t.gettext("id: %(id)s") % {"id": reminder.id}]
    if reminder.channel:
        lines.append(t.gettext("channel: %(channel)s") % {"channel": t.word(reminder.channel)})
    event.add("description", "\n".join(lines))
    # what a calendar app shows and filters by: the kind's title in the workspace's
    # language ("Geburtstage"), not its key
    event.add("categories", [categories.get(reminder.kind) or reminder.kind])
    event.add("priority", min(9, max(1, reminder.priority)))
    event.add("transp", "TRANSPARENT")
    return bytes(event.to_ical())


def to_ics(reminders: list[Reminder], today: dt.date, name: str, key: str = "calendar",
           locale: str | None = None, categories: Mapping[str, str] | None = None,
           one_shot: bool = False) -> bytes:
    """A calendar of ``reminders`` called ``name``, its events in ``locale``'s words and
    each in the category ``categories[kind]`` (the kind's title); ``key`` names the list
    for reuse (one per file or output).  ``one_shot``: nothing in this process writes
    the calendar again, so a long one is written on every core instead of kept."""
    categories = dict(categories or {})
    import icalendar

    calendar = icalendar.Calendar()
    calendar.add("prodid", "-//crmkit//reminders//EN")
    calendar.add("version", "2.0")
    # one line whatever the caller passes: a property value may not hold a line break
    calendar.add("x-wr-calname", " ".join(name.split()))
    head, end = calendar.to_ical().rsplit(b"END:VCALENDAR", 1)
    def event(reminder: Reminder) -> bytes:
        return _event(reminder, today, locale, categories)

    chunks = parallel.map_all(lambda chunk: [event(r) for r in chunk], reminders) \
        if one_shot else None
    events = itertools.chain.from_iterable(chunks) if chunks is not None else \
        render.each(key, reminders, (today, locale, sorted(categories.items())), event)
    return head + b"".join(events) + b"END:VCALENDAR" + end
