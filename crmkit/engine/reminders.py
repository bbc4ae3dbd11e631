"""What every reminder kind gets from the core: the channel, the priority, the cap, the order.

A kind's rule yields :class:`~crmkit.Due` values; :func:`reminder_of` makes the
:class:`~crmkit.Reminder`.  The frequency cap then holds back, per customer,
reminders of lower priority once the customer had enough outbound contacts
lately (``reminders.frequency_cap``, docs/reminders.md), whatever plugin's kind
they are.  Reminders are listed by due date, customer, kind and title.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import replace
from operator import attrgetter

from ..model import Customer, FrozenMap, Interaction, OptionValues
from ..model.ids import slugify
from .rules import ReminderKind
from .values import Due, Reminder

#: The details of a reminder without any (one object for all of them).
NO_DETAILS = FrozenMap()
#: The order reminders are listed in.
ORDER = attrgetter("due", "customer", "kind", "title")


def channel_for(customer: Customer) -> str:
    """The customer's preferred channel, else email where allowed, else phone."""
    if customer.preferred_channel:
        return customer.preferred_channel
    if customer.consent.email and customer.emails:
        return "email"
    return "phone" if customer.phones else "email" if customer.emails else "visit"


def reminder_id(kind: str, customer: str, day: dt.date, occasion: str | None = None) -> str:
    """``kind/customer/YYYY-MM-DD[/occasion]``: stable while the reminder is the same."""
    rid = f"{kind}/{customer}/{day.isoformat()}"
    return f"{rid}/{slugify(occasion)}" if occasion else rid


def reminder_of(due: Due, kind: ReminderKind, customer: Customer, priority: int) -> Reminder:
    if not isinstance(due, Due):
        raise TypeError(f"a reminder kind's rule yields crmkit.Due values, not {due!r}")
    source = due.source
    return Reminder(
        due=due.date, customer=customer.id, kind=kind.name, title=due.title,
        reason=due.reason, channel=kind.channel or channel_for(customer),
        priority=due.priority if due.priority is not None else priority,
        source=source.location if isinstance(source, Interaction) else customer.location,
        details=FrozenMap(due.details) if due.details else NO_DETAILS,
        id=reminder_id(kind.name, customer.id, due.date, due.occasion), expires=due.expires)


def distinct_ids(reminders: tuple[Reminder, ...]) -> tuple[Reminder, ...]:
    """One kind's reminders of one customer, two with the same id told apart by
    ``/2``, ``/3``... (``-2`` after an occasion), in the order the rule yielded them."""
    if len(reminders) < 2 or len({r.id for r in reminders}) == len(reminders):
        return reminders
    seen: dict[str, int] = {}
    out = []
    for r in reminders:
        n = seen[r.id] = seen.get(r.id, 0) + 1
        if n > 1:  # one more part, or the occasion numbered: an id has at most four
            r = replace(r, id=f"{r.id}-{n}" if r.id.count("/") == 3 else f"{r.id}/{n}")
        out.append(r)
    return tuple(out)


def settled(reminders: Iterable[Reminder], history: tuple[Interaction, ...],
            today: dt.date) -> list[Reminder]:
    """One customer's reminders without those the history settles: an interaction's
    ``resolves`` removes exactly those ids (a ``done`` with ``never`` every reminder
    of their kinds); a ``snooze`` holds them back until its ``until`` (the latest
    snooze counts); a reminder past its ``expires`` is held back as expired."""
    resolved: set[str] = set()
    never: set[str] = set()
    snoozed: dict[str, Interaction] = {}
    for i in history:
        if not i.resolves:
            continue
        if i.type == "snooze":
            for rid in i.resolves:
                snoozed[rid] = i
            continue
        resolved.update(i.resolves)
        if i.never and i.type == "done":
            never.update(rid.partition("/")[0] for rid in i.resolves)
    out = []
    for r in reminders:
        if r.id in resolved or r.kind in never:
            continue
        snooze = snoozed.get(r.id)
        expires = r.expires
        if snooze is not None and snooze.until is not None and expires is not None \
                and snooze.until > expires:
            # snoozed past its last day: it comes back for as long as it was open
            expires = snooze.until + max(expires - r.due, dt.timedelta())
        if snooze is not None and snooze.until is not None and snooze.until > today:
            why = f"snoozed until {snooze.until.isoformat()}"
            if snooze.by:
                why += f" by {snooze.by}"
            if snooze.summary:
                why += f": {snooze.summary}"
            r = replace(r, suppressed=why, snoozed_until=snooze.until)
        elif expires is not None and expires < today:
            r = replace(r, suppressed=f"expired on {expires.isoformat()}, not done")
        out.append(r)
    return out


def capped(reminders: Iterable[Reminder], history: tuple[Interaction, ...], today: dt.date,
           cap: OptionValues) -> tuple[Reminder, ...]:
    """One customer's reminders, in order, with those the frequency cap holds back
    marked: of priority > ``protect_priority`` and due within the cap window, once the
    customer had ``max_contacts`` outbound interactions in the last ``days``
    (counting the reminders kept before them, most important first)."""
    ordered = sorted(reminders, key=ORDER)
    if not cap.enabled or not ordered:
        return tuple(ordered)
    limit, days, protect = cap.max_contacts, cap.days, cap.protect_priority
    window_start = today - dt.timedelta(days=days)
    horizon = today + dt.timedelta(days=days)
    recent = sum(1 for i in history if i.direction == "outbound" and i.date > window_start)
    budget = limit - recent
    kept = 0
    held: dict[int, str] = {}
    counted = [r for r in ordered if r.due <= horizon and not r.suppressed]
    for reminder in sorted(counted, key=lambda r: (r.priority, r.due, r.kind)):
        if reminder.priority <= protect or budget > 0:
            budget -= 1
            kept += 1
        else:
            held[id(reminder)] = (f"held back: at most {limit} contacts in {days} days: "
                                  f"{recent} outbound contact(s) lately, {kept} more "
                                  "important reminder(s)")
    if not held:
        return tuple(ordered)
    return tuple(replace(r, suppressed=held[id(r)]) if id(r) in held else r for r in ordered)
