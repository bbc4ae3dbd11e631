"""The data model: what a workspace's files mean once they are loaded.

These dataclasses cross the plugin boundary, so they are frozen and typed.  Every
record keeps the :class:`~crmkit.diagnostics.Location` it was written at so that
plugins can report problems with ``path:line:col`` too.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from operator import attrgetter
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from .diagnostics import Diagnostic, Location
from .memo import CustomerMemo, Depends

T = TypeVar("T")
#: Interaction types that are records, not contact with the customer.
NON_CONTACT_TYPES = frozenset({"note"})


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

    @property
    def email(self) -> str | None:
        return self.emails[0] if self.emails else None

    def locate(self, key: str) -> Location:
        return self.locations.get(key, self.location)

    __reduce__ = _reduce_by_fields


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
    fields: Mapping[str, Any] = field(default_factory=_empty_fields)
    locations: Mapping[str, Location] = field(default_factory=_empty_fields)

    @property
    def is_contact(self) -> bool:
        """Whether this was contact with the customer (a ``note`` is internal)."""
        return self.type not in NON_CONTACT_TYPES

    @property
    def sort_key(self) -> tuple[dt.date, dt.datetime | None, str, int]:
        at = self.at.replace(tzinfo=None) if self.at else None
        return (self.date, at or dt.datetime.combine(self.date, dt.time()),
                self.location.path, self.location.line)

    def locate(self, key: str) -> Location:
        return self.locations.get(key, self.location)

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

    def section(self, name: str) -> Any:
        """A plugin's settings section, or an empty mapping when absent."""
        return self.sections.get(name) or {}

    def locate(self, key: str) -> Location:
        return self.locations.get(key, self.location)


@dataclass(frozen=True, slots=True)
class LoadStats:
    """What a load did: files read, parsed afresh, and taken from the parse cache."""

    files: int
    parsed: int
    from_cache: int


@dataclass(frozen=True, slots=True)
class Workspace:
    """A loaded workspace: settings, records and every problem found on the way.

    Records that were too broken to use are left out; their problems are in
    ``diagnostics``.  Interactions are sorted by date and indexed per customer.
    """

    root: Path
    settings: Settings
    customers: MappingProxyType[str, Customer]
    interactions: tuple[Interaction, ...]
    deals: MappingProxyType[str, Deal]
    diagnostics: tuple[Diagnostic, ...]
    by_customer: MappingProxyType[str, tuple[Interaction, ...]] = field(default_factory=_empty_map)
    stats: LoadStats | None = None
    #: Per-customer values of plugins, kept across ``crmkit watch`` reloads.
    memo: CustomerMemo = field(default_factory=CustomerMemo, compare=False, repr=False)

    def history(self, customer_id: str) -> tuple[Interaction, ...]:
        """All interactions of one customer, oldest first (planned ones included)."""
        return self.by_customer.get(customer_id, ())

    def per_customer(self, name: str, customer_id: str, compute: Callable[[], T],
                     *depends: object, day: dt.date | None = None) -> T:
        """``compute()`` for one customer, kept while the customer's record and history
        are unchanged and ``depends`` stays equal (see :mod:`crmkit.memo`); for checks
        in ``crmkit_validate``.  :meth:`crmkit.Snapshot.per_customer` is the same for
        a day's snapshot."""
        if customer_id not in self.customers:
            return compute()
        return self.memo.one(name, day, customer_id, compute, depends)

    def per_customer_many(self, name: str, customer_ids: Iterable[str],
                          compute: Callable[[list[str]], Mapping[str, T]],
                          depends: Depends = None, day: dt.date | None = None
                          ) -> dict[str, T]:
        """:meth:`per_customer` for many customers at once: ``compute`` gets the ids
        whose kept values are missing or out of date (all of them in a one-off
        command) and returns ``{id: value}``.  ``depends`` is what else the values
        depend on: one tuple for all customers, or ``{id: value}`` (built afresh for
        each call)."""
        return self.memo.many(name, day, customer_ids, compute, depends)

    def kept(self, name: str, compute: Callable[..., T], *inputs: object,
             update: Callable[..., T | None] | None = None) -> T:
        """``compute(*inputs)``, kept across ``crmkit watch`` reloads while ``inputs``
        stay equal; for checks over all customers in ``crmkit_validate``
        (:meth:`crmkit.Snapshot.kept` is the same for a day's snapshot)."""
        return self.memo.whole(name, None, compute, inputs, update)

    def deals_of(self, customer_id: str) -> list[Deal]:
        return [d for d in self.deals.values() if d.customer == customer_id]

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def output_dir(self) -> Path:
        return self.root / self.settings.output

    @property
    def cache_dir(self) -> Path:
        return self.root / ".crmkit"
