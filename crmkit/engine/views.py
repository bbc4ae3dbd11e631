"""What a rule sees: one customer as of a day, or everybody, read-only.

A per-customer rule gets a :class:`CustomerView`: the record, the history up to
today, the planned interactions, the derived values, the deals, the rule's
options, today, and only the labels and metrics it declared in ``reads``
(reading another one raises :class:`UndeclaredRead`, so a rule cannot depend on
something the core does not know it depends on).  An ``over_all`` rule gets a
:class:`Population`; ``across`` steps get a :class:`Scope` (today, settings,
options and nothing about any customer).

The names an expression can use are the :data:`VARIABLES` below plus every
registered label.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from ..model import Customer, Deal, Derived, Interaction, OptionValues, Settings

if TYPE_CHECKING:
    from .evaluate import Engine


class UndeclaredRead(LookupError):
    """A rule read a label or metric it did not declare in ``reads``."""


def _days_since(view: CustomerView, day: dt.date | None) -> int | None:
    return (view.today - day).days if day else None


def _address(view: CustomerView, part: str) -> str | None:
    address = view.customer.address
    return getattr(address, part) if address else None


#: The customer's variables in expressions: the record and the derived values.
_VARIABLE_FUNCTIONS: dict[str, Callable[[CustomerView], Any]] = {
    "id": lambda v: v.id,
    "name": lambda v: v.customer.name,
    "company": lambda v: v.customer.company,
    "tags": lambda v: list(v.customer.tags),
    "source": lambda v: v.customer.source,
    "referred_by": lambda v: v.customer.referred_by,
    "city": lambda v: _address(v, "city"),
    "postal_code": lambda v: _address(v, "postal_code"),
    "country": lambda v: _address(v, "country"),
    "email_consent": lambda v: v.customer.consent.email,
    "has_email": lambda v: bool(v.customer.emails),
    "has_phone": lambda v: bool(v.customer.phones),
    "preferred_channel": lambda v: v.customer.preferred_channel,
    "locale": lambda v: v.customer.locale,
    "services": lambda v: [s.name for s in v.customer.services],
    "fields": lambda v: dict(v.customer.fields),
    "revenue": lambda v: v.derived.revenue,
    "revenue_12m": lambda v: v.derived.revenue_12m,
    "purchase_count": lambda v: v.derived.purchase_count,
    "average_order_value": lambda v: v.derived.average_order_value,
    "complaints": lambda v: v.derived.complaint_count,
    "interaction_count": lambda v: v.derived.interaction_count,
    "days_since_last_purchase": lambda v: _days_since(v, v.derived.last_purchase),
    "days_since_last_contact": lambda v: _days_since(v, v.derived.last_contact),
    "days_since_first_purchase": lambda v: _days_since(v, v.derived.first_purchase),
    "days_since_first_contact": lambda v: _days_since(v, v.derived.first_contact),
    "last_score": lambda v: v.derived.last_score,
}
VARIABLES = tuple(_VARIABLE_FUNCTIONS)


#: What a rule's reads resolve to while it runs: a label's column ``{id: value}`` or a
#: metric's figure (in a one-element tuple).
Resolved = dict[str, Any]
_UNRESOLVED = object()


class Reads(Mapping[str, Any]):
    """The labels (or metrics) a rule declared, for one customer."""

    __slots__ = ("_allowed", "_customer", "_engine", "_resolved", "_what")

    def __init__(self, engine: Engine, customer: str | None, allowed: frozenset[str] | None,
                 what: str, resolved: Resolved | None = None) -> None:
        self._engine = engine
        self._customer = customer
        self._allowed = allowed
        self._what = what
        self._resolved = resolved or {}

    def __getitem__(self, name: str) -> Any:
        found = self._resolved.get(name, _UNRESOLVED)
        if found is not _UNRESOLVED:  # the common case: read from what was resolved
            if type(found) is tuple:  # a metric's figure
                return found[0]
            if self._customer is None:
                raise LookupError(f"{name!r} is a label: read it as "
                                  f"customer.labels[{name!r}]")
            return found.get(self._customer)
        allowed = self._allowed
        if allowed is not None and name not in allowed:
            declared = ", ".join(sorted(allowed)) or "nothing"
            raise UndeclaredRead(
                f"{name!r} is not declared: add it to the rule's reads=(...) "
                f"(it declares {declared})")
        return self._engine.read(name, self._customer)

    def get(self, name: str, default: Any = None) -> Any:
        """The value, or ``default`` if no plugin registers ``name`` (an optional read)."""
        value = self[name]
        return default if value is None and name not in self._engine.names() else value

    def __iter__(self) -> Iterator[str]:
        return iter(sorted(self._allowed) if self._allowed is not None
                    else self._engine.names())

    def __len__(self) -> int:
        return len(list(iter(self)))

    def __contains__(self, name: object) -> bool:
        return name in (self._allowed if self._allowed is not None else self._engine.names())

    def __repr__(self) -> str:
        return f"<{self._what} of {self._customer}: {', '.join(self)}>"


class CustomerView:
    """One customer as of ``today``, as a rule sees them (read-only)."""

    __slots__ = ("_engine", "_labels", "_metrics", "_reads", "_resolved", "customer", "id",
                 "options")

    def __init__(self, engine: Engine, customer: Customer, options: OptionValues,
                 reads: frozenset[str] | None, resolved: Resolved | None = None) -> None:
        self._engine = engine
        self._reads = reads
        self._resolved = resolved
        self._labels = self._metrics = None
        self.id = customer.id
        #: The record (``customers/<id>.yaml``).
        self.customer = customer
        #: The rule's validated options (``options.after_days``).
        self.options = options

    @property
    def today(self) -> dt.date:
        return self._engine.today

    @property
    def settings(self) -> Settings:
        return self._engine.settings

    @property
    def labels(self) -> Reads:
        """The labels the rule declared in ``reads``, by name."""
        if self._labels is None:
            self._labels = Reads(self._engine, self.id, self._reads, "labels", self._resolved)
        return self._labels

    @property
    def metrics(self) -> Reads:
        """The metrics the rule declared in ``reads`` (whole-population values)."""
        if self._metrics is None:
            self._metrics = Reads(self._engine, None, self._reads, "metrics", self._resolved)
        return self._metrics

    @property
    def history(self) -> tuple[Interaction, ...]:
        """The interactions up to and including today, oldest first."""
        return self._engine.history(self.id)[0]

    @property
    def planned(self) -> tuple[Interaction, ...]:
        """The interactions dated after today (planned visits, scheduled calls)."""
        return self._engine.history(self.id)[1]

    @property
    def derived(self) -> Derived:
        """Values computed from the history: last contact, revenue, open follow-ups..."""
        return self._engine.derived(self.id)

    @property
    def deals(self) -> tuple[Deal, ...]:
        return self._engine.workspace.deals_of(self.id)

    @property
    def variables(self) -> Mapping[str, Any]:
        """What an expression can read of this customer (variables and labels)."""
        return Variables(self)

    def __repr__(self) -> str:
        return f"<CustomerView {self.id} as of {self.today}>"


class Variables(Mapping[str, Any]):
    """A customer's variables for expressions, computed when read."""

    __slots__ = ("_view",)

    def __init__(self, view: CustomerView) -> None:
        self._view = view

    def get(self, name: str, default: Any = None) -> Any:  # what expressions call
        function = _VARIABLE_FUNCTIONS.get(name)
        value = function(self._view) if function is not None else self._view.labels[name]
        return default if value is None else value

    def __getitem__(self, name: str) -> Any:
        return self.get(name)

    def __iter__(self) -> Iterator[str]:
        return iter(VARIABLES)

    def __len__(self) -> int:
        return len(VARIABLES)


class Scope:
    """What an ``across`` step knows besides the parts: the day, settings, options and
    the metrics it declared in ``reads``."""

    __slots__ = ("metrics", "options", "settings", "today")

    def __init__(self, engine: Engine, options: OptionValues, reads: frozenset[str]) -> None:
        self.today: dt.date = engine.today
        self.settings: Settings = engine.settings
        self.options = options
        self.metrics = Reads(engine, None, reads, "metrics")


class Population:
    """Everybody as of ``today``, for ``over_all`` rules (which run every time)."""

    def __init__(self, engine: Engine, options: OptionValues,
                 reads: frozenset[str] | None) -> None:
        self._engine = engine
        self._reads = reads
        self.today: dt.date = engine.today
        self.settings: Settings = engine.settings
        self.options = options
        self._views: tuple[CustomerView, ...] | None = None

    @property
    def customers(self) -> tuple[CustomerView, ...]:
        """Every customer, by id."""
        if self._views is None:
            engine = self._engine
            self._views = tuple(CustomerView(engine, c, self.options, self._reads)
                                for c in engine.workspace.customers.values())
        return self._views

    def customer(self, customer_id: str) -> CustomerView | None:
        record = self._engine.workspace.customers.get(customer_id)
        return None if record is None else CustomerView(self._engine, record, self.options,
                                                        self._reads)

    @property
    def deals(self) -> Mapping[str, Deal]:
        return self._engine.workspace.deals

    @property
    def interactions(self) -> tuple[Interaction, ...]:
        """Every interaction up to and including today, oldest first."""
        return self._engine.interactions()

    @property
    def metrics(self) -> Reads:
        return Reads(self._engine, None, self._reads, "metrics")

    def labels(self, name: str) -> dict[str, Any]:
        """``{customer_id: value}`` of a label the rule declared."""
        if self._reads is not None and name not in self._reads:
            raise UndeclaredRead(f"{name!r} is not declared: add it to the rule's reads=(...)")
        return dict(self._engine.column(name))
