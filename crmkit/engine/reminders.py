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


def reminder_of(due: Due, kind: ReminderKind, customer: Customer, priority: int) -> Reminder:
    if not isinstance(due, Due):
        raise TypeError(f"a reminder kind's rule yields crmkit.Due values, not {due!r}")
    source = due.source
    return Reminder(
        due=due.date, customer=customer.id, kind=kind.name, title=due.title,
        reason=due.reason, channel=kind.channel or channel_for(customer),
        priority=due.priority if due.priority is not None else priority,
        source=source.location if isinstance(source, Interaction) else customer.location,
        details=FrozenMap(due.details) if due.details else NO_DETAILS)


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
            held[id(reminder)] = (f"at most {limit} contacts in {days} days: {recent} "
                                  f"outbound contact(s) lately, {kept} more important "
                                  "reminder(s)")
    if not held:
        return tuple(ordered)
    return tuple(replace(r, suppressed=held[id(r)]) if id(r) in held else r for r in ordered)
