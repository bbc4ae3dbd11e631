"""What rules and plugins hand back, and what the core hands out: plain typed values."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..model import Interaction, Location


@dataclass(frozen=True, slots=True)
class Due:
    """What a reminder kind's rule yields: something to do for this customer by ``date``.

    The core makes a :class:`Reminder` of it, adding the kind, the customer, the
    channel (its own, else the kind's, else the customer's preferred one, else email
    where allowed, else phone) and the priority (its own, else the kind's, or
    ``reminders.<kind>.priority``).
    """

    date: dt.date
    title: str
    reason: str = ""
    #: The interaction that caused it (shown as the reminder's source).
    source: Interaction | None = None
    #: Facts for email templates, e.g. ``{"service": "Wartung", "age": 48}``.
    details: Mapping[str, Any] = field(default_factory=dict)
    #: Overrides the kind's priority for this one (1 = most important).
    priority: int | None = None
    #: Tells two reminders of this kind for one customer on one day apart (e.g. the
    #: service's name); becomes the last part of the reminder's id.
    occasion: str | None = None
    #: The last day it is worth doing (a birthday's grace): after it, the reminder is
    #: listed as expired (``reminders --all``), no longer as open.
    expires: dt.date | None = None
    #: Overrides the kind's channel for this one (a playbook step's own).
    channel: str | None = None
    #: Overrides the kind's email template for this one (``email/<playbook>/<step>``).
    template: str | None = None


@dataclass(frozen=True, slots=True)
class Reminder:
    """Something to do for a customer by a date, and why.

    ``id`` (``kind/customer/YYYY-MM-DD[/occasion]``) names it in every output and in
    the records that settle it: ``resolves: [ID]``, ``crmkit done ID``,
    ``crmkit snooze ID``.
    """

    due: dt.date
    customer: str
    kind: str
    title: str
    reason: str
    channel: str | None = None
    #: 1 = most important; lower priorities are held back first by the frequency cap.
    priority: int = 3
    #: The interaction or setting that caused it.
    source: Location | None = None
    #: Why it is not shown by default (snoozed, expired, the frequency cap), if it is
    #: held back.
    suppressed: str | None = None
    #: Facts for templates, e.g. ``{"service": "Wartung", "age": 48}`` (compared, not
    #: hashed: a dict has no hash).
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)
    id: str = ""
    #: A snoozed reminder comes back on this day.
    snoozed_until: dt.date | None = None
    expires: dt.date | None = None
    #: Its own email template, if its rule named one (else its kind's).
    template: str | None = None

    def overdue(self, today: dt.date) -> bool:
        return self.due < today

    def __reduce__(self) -> tuple[Any, ...]:
        # a constructor call: much faster to load than the generic state of a slotted
        # class (the kept results of a workspace hold 10,000s of reminders)
        return (Reminder, (self.due, self.customer, self.kind, self.title, self.reason,
                           self.channel, self.priority, self.source, self.suppressed,
                           self.details, self.id, self.snoozed_until, self.expires,
                           self.template))

    def to_json(self, today: dt.date) -> dict[str, Any]:
        return {
            "id": self.id, "due": self.due.isoformat(), "customer": self.customer,
            "kind": self.kind, "title": self.title, "channel": self.channel,
            "priority": self.priority, "overdue": self.overdue(today), "reason": self.reason,
            "source": str(self.source) if self.source else None,
            "suppressed": self.suppressed,
            "snoozed_until": self.snoozed_until.isoformat() if self.snoozed_until else None,
            "expires": self.expires.isoformat() if self.expires else None,
        }


@dataclass(frozen=True, slots=True)
class EmailDraft:
    """An email a plugin drafted for a reminder, ready for review."""

    reminder: Reminder
    to: str
    subject: str
    body: str
    locale: str
    template: str | None = None


@dataclass(frozen=True, slots=True)
class MetricValue:
    """A figure as computed for a day, e.g. ``repeat_purchase_rate = 0.42``."""

    name: str
    label: str
    value: Any
    unit: str | None = None
    description: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"label": self.label, "value": self.value, "unit": self.unit,
                "description": self.description}


@dataclass(frozen=True, slots=True)
class ImportRow:
    """One record read by an importer, in the workspace's file format.

    ``kind`` is ``"customer"`` or ``"interaction"``; ``data`` is what the new
    file would hold (an interaction may name its customer by ``customer``
    (an id) or by ``customer_email``/``customer_phone``/``customer_name``, which
    the import resolves).  ``row`` is the 1-based row or entry number in the
    source, for messages; ``problems`` are reasons the row cannot be imported.
    """

    row: int
    kind: str
    data: Mapping[str, Any]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class ImportOptions:
    """What the user asked for: column mapping overrides and the source's encoding."""

    mapping: Mapping[str, str] = field(default_factory=dict)
    encoding: str | None = None
    delimiter: str | None = None
