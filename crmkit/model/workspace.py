"""A loaded workspace: settings, records, and every problem found on the way."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from .diagnostics import Diagnostic
from .records import Customer, Deal, Interaction, Settings


def _empty_map() -> MappingProxyType:
    return MappingProxyType({})


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
    The collections are read-only; a run that starts from the last run's state
    (:mod:`crmkit.incremental.state`) reads each customer only when asked.
    """

    root: Path
    settings: Settings
    customers: Mapping[str, Customer]
    interactions: Sequence[Interaction]
    deals: Mapping[str, Deal]
    diagnostics: tuple[Diagnostic, ...]
    by_customer: Mapping[str, tuple[Interaction, ...]] = field(default_factory=_empty_map)
    deals_by_customer: Mapping[str, tuple[Deal, ...]] = field(default_factory=_empty_map)
    stats: LoadStats | None = None

    def history(self, customer_id: str) -> tuple[Interaction, ...]:
        """All interactions of one customer, oldest first (planned ones included)."""
        return self.by_customer.get(customer_id, ())

    def deals_of(self, customer_id: str) -> tuple[Deal, ...]:
        """The customer's deals, by id."""
        return self.deals_by_customer.get(customer_id, ())

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def output_dir(self) -> Path:
        return self.root / self.settings.output
