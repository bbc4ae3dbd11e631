"""The data model: what a workspace's files mean once they are loaded.

These dataclasses cross the plugin boundary, so they are frozen and typed.  Every
record keeps the :class:`~crmkit.diagnostics.Location` it was written at so that
plugins can report problems with ``path:line:col`` too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from operator import attrgetter
from types import MappingProxyType
from typing import Any

from .diagnostics import Location
from .ids import slugify

#: Interaction types that are records, not contact with the customer.
#: Interaction types that are not contact with the customer: internal notes, and the
#: records ``crmkit done`` and ``crmkit snooze`` write.
NON_CONTACT_TYPES = frozenset({"note", "done", "snooze"})
#: Interaction types that are a conversation: without a ``direction`` they count as
#: reaching out to the customer.
CONVERSATION_TYPES = frozenset({"call", "email", "message", "letter", "card", "meeting",
                                "visit"})


_FIELD_GETTERS: dict[type, Callable[[Any], tuple[Any, ...]]] = {}


def _reduce_by_fields(self: Any) -> tuple[Any, ...]:
    """Pickle a frozen dataclass as a constructor call: much faster to load than the
    generic ``__setstate__`` of slotted dataclasses (the parse cache holds 100,000s)."""
    kind = type(self)
    getter = _FIELD_GETTERS.get(kind)
    if getter is None:
        names = tuple(kind.__dataclass_fields__)
        single = attrgetter(*names)
        getter = _FIELD_GETTERS[kind] = (
            single if len(names) > 1 else lambda record: (single(record),))
    return (kind, getter(self))


class FrozenMap(dict):
    """A read-only dict for records' free ``fields`` (unlike a mapping proxy, it pickles,
    so records can live in the parse cache)."""

    __slots__ = ()

    def _read_only(self, *args: Any, **kwargs: Any) -> Any:
        raise TypeError("records are read-only")

    __setitem__ = __delitem__ = clear = pop = popitem = setdefault = update = _read_only
    __ior__ = _read_only

    def __reduce__(self) -> tuple[Any, ...]:
        return (FrozenMap, (dict(self),))


class OptionValues(Mapping[str, Any]):
    """Validated settings of one section of ``crmkit.yaml`` (a rule's options): read
    them as ``options.after_days`` or ``options["after_days"]``.  Frozen and hashable,
    so they can be compared and kept."""

    __slots__ = ("_data", "_hash")

    def __init__(self, data: Mapping[str, Any] | None = None) -> None:
        object.__setattr__(self, "_data", dict(data or {}))
        object.__setattr__(self, "_hash", None)

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __getattr__(self, key: str) -> Any:
        try:
            return self._data[key]
        except KeyError:
            raise AttributeError(f"no option {key!r}; the declared options are: "
                                 f"{', '.join(sorted(self._data)) or 'none'}") from None

    def __setattr__(self, key: str, value: Any) -> None:
        raise TypeError("options are read-only")

    def __iter__(self):
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, OptionValues):
            return self._data == other._data
        return NotImplemented

    def __hash__(self) -> int:
        if self._hash is None:
            object.__setattr__(self, "_hash", hash(tuple(sorted(
                (k, _hashable(v)) for k, v in self._data.items()))))
        return self._hash

    def __repr__(self) -> str:
        return f"OptionValues({self._data!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (OptionValues, (self._data,))


def _hashable(value: Any) -> Any:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _hashable(v)) for k, v in value.items()))
    return value


def _empty_map() -> MappingProxyType:
    return MappingProxyType({})


def _empty_fields() -> FrozenMap:
    return FrozenMap()


@dataclass(frozen=True, slots=True)
class Interval:
    """A recurring interval such as ``12 months`` or ``90 days``."""

    count: int
    unit: str  # "days" | "weeks" | "months" | "years"

    def add_to(self, day: dt.date, times: int = 1) -> dt.date:
        """The date ``times`` intervals after ``day`` (month ends are clamped, Feb 29 → 28)."""
        n = self.count * times
        if self.unit == "days":
            return day + dt.timedelta(days=n)
        if self.unit == "weeks":
            return day + dt.timedelta(weeks=n)
        months = n * 12 if self.unit == "years" else n
        year, month0 = divmod(day.month - 1 + months, 12)
        year += day.year
        month = month0 + 1
        last = (dt.date(year + (month == 12), month % 12 + 1, 1) - dt.timedelta(days=1)).day
        return dt.date(year, month, min(day.day, last))

    def __str__(self) -> str:
        unit = self.unit[:-1] if self.count == 1 else self.unit
        return f"{self.count} {unit}"

    __reduce__ = _reduce_by_fields


@dataclass(frozen=True, slots=True)
class Consent:
    """Recorded permission to send email (GDPR): whether, since when and how it was given."""

    email: bool = False
    since: dt.date | None = None
    how: str | None = None

    __reduce__ = _reduce_by_fields


@dataclass(frozen=True, slots=True)
class Address:
    street: str | None = None
    postal_code: str | None = None
    city: str | None = None
    country: str | None = None

    def one_line(self) -> str:
        town = " ".join(p for p in (self.postal_code, self.city) if p)
        return ", ".join(p for p in (self.street, town, self.country) if p)

    __reduce__ = _reduce_by_fields


@dataclass(frozen=True, slots=True)
class Service:
    """A recurring contract, e.g. the annual boiler maintenance."""

    name: str
    interval: Interval
    start: dt.date | None = None
    notes: str | None = None

    __reduce__ = _reduce_by_fields


@dataclass(frozen=True, slots=True)
class Customer:
    """One person or organisation, from ``customers/<id>.yaml``."""

    id: str
    name: str
    location: Location
    #: How letters address them, e.g. "Liebe Anna" or "Dear Mr O'Connor".
    salutation: str | None = None
    company: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    address: Address | None = None
    birthday: dt.date | None = None
    tags: tuple[str, ...] = ()
    source: str | None = None
    referred_by: str | None = None
    consent: Consent = field(default_factory=Consent)
    preferred_channel: str | None = None
    locale: str | None = None
    stage: str | None = None
    notes: str | None = None
    services: tuple[Service, ...] = ()
    fields: Mapping[str, Any] = field(default_factory=_empty_fields)
    #: Where each top-level key's value was written, for diagnostics.
    locations: Mapping[str, Location] = field(default_factory=_empty_fields)
    #: The campaign that brought them (one of ``sources.campaigns`` in crmkit.yaml).
    campaign: str | None = None
    #: Former ids of this customer (``crmkit merge``): records naming one of them are
    #: this customer's.
    aliases: tuple[str, ...] = ()
    #: The team member who looks after them (one of ``team`` in crmkit.yaml).
    owner: str | None = None

    @staticmethod
    def id_for(name: str) -> str:
        """The id crmkit gives a customer called ``name`` (``Jürgen Weiß`` →
        ``juergen-weiss``; ``""`` when nothing of the name is left)."""
        return slugify(name)

    @property
    def email(self) -> str | None:
        return self.emails[0] if self.emails else None

    def locate(self, key: str) -> Location:
        return self.locations.get(key, self.location)

    def to_json(self) -> dict[str, Any]:
        """The customer as JSON-ready data: one shape for ``show``, exports and access
        requests."""
        address = self.address
        return {
            "id": self.id, "name": self.name, "salutation": self.salutation,
            "company": self.company, "emails": list(self.emails), "phones": list(self.phones),
            "address": ({"street": address.street, "postal_code": address.postal_code,
                         "city": address.city, "country": address.country}
                        if address else None),
            "birthday": _day(self.birthday), "tags": list(self.tags), "source": self.source,
            "campaign": self.campaign, "referred_by": self.referred_by,
            "consent": {"email": self.consent.email, "since": _day(self.consent.since),
                        "how": self.consent.how},
            "preferred_channel": self.preferred_channel, "locale": self.locale,
            "stage": self.stage, "notes": self.notes,
            "services": [{"name": s.name, "interval": str(s.interval), "start": _day(s.start),
                          "notes": s.notes} for s in self.services],
            "fields": dict(self.fields), "aliases": list(self.aliases), "owner": self.owner,
        }

    __reduce__ = _reduce_by_fields


def _day(value: dt.date | None) -> str | None:
    return value.isoformat() if value else None


@dataclass(frozen=True, slots=True)
class Item:
    name: str
    quantity: Decimal = Decimal(1)
    price: Decimal | None = None

    __reduce__ = _reduce_by_fields


@dataclass(frozen=True, slots=True)
class FollowUp:
    date: dt.date
    what: str | None = None

    __reduce__ = _reduce_by_fields


@dataclass(frozen=True, slots=True)
class Interaction:
    """One event in a customer's history, from a file below ``interactions/``."""

    customer: str
    date: dt.date
    type: str
    location: Location
    #: The full timestamp if one was given, converted to the workspace time zone.
    at: dt.datetime | None = None
    channel: str | None = None
    direction: str | None = None
    summary: str | None = None
    amount: Decimal | None = None
    currency: str | None = None
    items: tuple[Item, ...] = ()
    discount: Decimal | None = None
    payment: str | None = None
    score: int | None = None
    service: str | None = None
    follow_up: FollowUp | None = None
    #: The reminder ids this interaction resolves (``done``: for good; ``snooze``:
    #: until ``until``), e.g. ``("service_due/meier-hans/2026-11-21",)``.
    resolves: tuple[str, ...] = ()
    #: Until when a ``snooze`` holds its reminders back.
    until: dt.date | None = None
    #: On a ``done``: the kinds of the reminders it resolves never come back for
    #: this customer.
    never: bool = False
    #: Who recorded it (``crmkit done``/``snooze``/``drafts --send``).
    by: str | None = None
    fields: Mapping[str, Any] = field(default_factory=_empty_fields)
    locations: Mapping[str, Location] = field(default_factory=_empty_fields)

    @property
    def is_contact(self) -> bool:
        """Whether this was contact with the customer (a ``note`` is internal)."""
        return self.type not in NON_CONTACT_TYPES

    @property
    def is_conversation(self) -> bool:
        """A call, email, message, letter, card, meeting or visit, either way."""
        return self.type in CONVERSATION_TYPES

    @property
    def reaches_out(self) -> bool:
        """Whether we contacted the customer: ``direction: outbound``, or a
        conversation (call, email, message, letter, card, meeting, visit) without a
        direction.  What settles a follow-up, a thank-you, a greeting."""
        if self.direction is not None:
            return self.direction == "outbound" and self.type not in NON_CONTACT_TYPES
        return self.is_conversation

    def is_after(self, other: Interaction) -> bool:
        """Whether this happened after ``other``: a later day, or the same day unless
        both have a time and this one's is earlier (files of one day sort by name,
        which says nothing of when they were written)."""
        if self.date != other.date:
            return self.date > other.date
        return not (self.at and other.at and self.at < other.at)

    @property
    def sort_key(self) -> tuple[dt.date, dt.datetime | None, str, int]:
        at = self.at.replace(tzinfo=None) if self.at else None
        return (self.date, at or dt.datetime.combine(self.date, dt.time()),
                self.location.path, self.location.line)

    def locate(self, key: str) -> Location:
        return self.locations.get(key, self.location)

    def to_json(self) -> dict[str, Any]:
        """The interaction as JSON-ready data (amounts stay decimals for the encoder)."""
        return {
            "date": self.date.isoformat(), "at": self.at.isoformat() if self.at else None,
            "type": self.type, "channel": self.channel, "direction": self.direction,
            "summary": self.summary, "amount": self.amount,
            "currency": self.currency if self.amount is not None else None,
            "items": [item.name for item in self.items], "score": self.score,
            "payment": self.payment, "discount": self.discount, "service": self.service,
            "follow_up": ({"date": self.follow_up.date.isoformat(), "what": self.follow_up.what}
                          if self.follow_up else None),
            "resolves": list(self.resolves),
            "until": self.until.isoformat() if self.until else None,
            "never": self.never, "by": self.by,
            "fields": dict(self.fields), "source": str(self.location),
        }

    __reduce__ = _reduce_by_fields


@dataclass(frozen=True, slots=True)
class Deal:
    """An open or closed sales opportunity, from ``deals/<id>.yaml``."""

    id: str
    customer: str
    title: str
    location: Location
    stage: str = "open"
    value: Decimal | None = None
    probability: Decimal | None = None
    expected_close: dt.date | None = None
    notes: str | None = None
    fields: Mapping[str, Any] = field(default_factory=_empty_fields)
    locations: Mapping[str, Location] = field(default_factory=_empty_fields)
    #: Where the deal came from and the campaign (``sources`` in crmkit.yaml).
    source: str | None = None
    campaign: str | None = None
    #: Why it was won or lost.
    reason: str | None = None

    @property
    def is_open(self) -> bool:
        return self.stage not in ("won", "lost")

    def locate(self, key: str) -> Location:
        return self.locations.get(key, self.location)

    __reduce__ = _reduce_by_fields


@dataclass(frozen=True, slots=True)
class Sender:
    name: str
    email: str
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class TeamMember:
    """One of ``team`` in crmkit.yaml: who may own customers (``owner:``)."""

    name: str
    email: str | None = None


@dataclass(frozen=True, slots=True)
class Settings:
    """``crmkit.yaml``: the workspace's own settings plus the sections plugins own."""

    business: str
    sender: Sender | None = None
    locale: str = "en"
    currency: str = "EUR"
    timezone: str = "UTC"
    output: str = "out"
    disable_plugins: tuple[str, ...] = ()
    interaction_types: tuple[str, ...] = ()
    #: Top-level sections owned by plugins, as written (``YamlMap`` values keep marks).
    sections: MappingProxyType[str, Any] = field(default_factory=_empty_map)
    location: Location = field(default_factory=lambda: Location("crmkit.yaml"))
    locations: Mapping[str, Location] = field(default_factory=_empty_fields)
    #: The validated values of every declared section, by dotted path
    #: (``"reminders.birthday"``): defaults filled in, wrong values replaced by them.
    values: Mapping[str, OptionValues] = field(default_factory=_empty_map)
    #: The files of ``playbooks/`` as written, by workspace-relative path (``YamlMap``
    #: values keep marks; ``None`` for a file that does not parse): read with the
    #: settings, for the plugin that gives them a meaning (the stock ``playbooks``).
    playbooks: Mapping[str, Any] = field(default_factory=_empty_map)
    #: ``team``: the people who share the workspace's repository (docs/team.md).
    team: tuple[TeamMember, ...] = ()

    def member(self, who: str | None) -> TeamMember | None:
        """The team member ``who`` names: a name (any case) or an email; else ``None``."""
        if not who:
            return None
        key = " ".join(who.split()).casefold()
        for member in self.team:
            if key in (member.name.casefold(), (member.email or "").casefold()):
                return member
        return None

    def section(self, name: str) -> Any:
        """A top-level section as written (a mapping that remembers where each value
        is), or an empty mapping when absent."""
        return self.sections.get(name) or {}

    def options(self, path: str) -> OptionValues:
        """The validated values of a declared section or rule (``"prediction"``,
        ``"reminders.birthday"``); empty when nothing is declared there."""
        return self.values.get(path) or _NO_OPTIONS

    def locate(self, key: str) -> Location:
        return self.locations.get(key, self.location)


_NO_OPTIONS = OptionValues()
