"""What plugins hand back to the core: plain typed values, never ad-hoc dicts."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .diagnostics import Location

Label = str | bool | int | float | None


@dataclass(frozen=True, slots=True)
class ConfigSection:
    """A top-level section of ``crmkit.yaml`` that a plugin owns and validates."""

    name: str
    description: str
    #: A commented YAML example, shown by ``crmkit init`` and the docs.
    example: str = ""


@dataclass(frozen=True, slots=True)
class SegmentLabel:
    """One label for one customer, e.g. ``lifecycle = "active"`` or ``abc = "A"``.

    ``group`` nests the label in the JSON output (user-defined segments use
    ``"segments"``); ``None`` puts it at the top level.
    """

    customer: str
    name: str
    value: Label
    group: str | None = None


class Segmentation(Mapping[str, dict[str, Any]]):
    """All customers' labels, as ``{customer_id: {name: value, group: {...}}}``.

    A ``crmkit_segments`` hook returns :class:`SegmentLabel` objects, or a whole
    :class:`Segmentation` made with :meth:`of` (cheaper for labels of every customer).
    """

    def __init__(self, labels: Iterable[SegmentLabel] = ()) -> None:
        self._data: dict[str, dict[str, Any]] = {}
        #: The per-customer dicts belong to someone else (:meth:`of`): copy before adding.
        self._shared = False
        self.add_all(labels)

    @classmethod
    def of(cls, labels: Mapping[str, dict[str, Any]]) -> Segmentation:
        """The segmentation ``{customer_id: {name: value, group: {...}}}``; the
        dicts are taken as they are, and must not change afterwards."""
        made = cls()
        made._data = dict(labels)
        made._shared = True
        return made

    @classmethod
    def combined(cls, parts: Iterable[Segmentation | SegmentLabel]) -> Segmentation:
        """All plugins' labels in one segmentation (a single whole part is used as is)."""
        parts = list(parts)
        if len(parts) == 1 and isinstance(parts[0], Segmentation):
            return parts[0]
        made = cls()
        data = made._data
        single: list[SegmentLabel] = []  # added in one loop, in their place in the order
        for part in parts:
            if not isinstance(part, Segmentation):
                single.append(part)
                continue
            made.add_all(single)
            single = []
            for customer, labels in part._data.items():
                slot = data.setdefault(customer, {})
                for name, value in labels.items():
                    if isinstance(value, dict):
                        slot.setdefault(name, {}).update(value)
                    else:
                        slot[name] = value
        made.add_all(single)
        return made

    @classmethod
    def deferred(cls, compute: Callable[[], Segmentation]) -> Segmentation:
        """A segmentation that calls ``compute`` when it is first read (labelling every
        customer is the expensive part of a run; some callers may not need it)."""
        return _DeferredSegmentation(compute)

    def add(self, label: SegmentLabel) -> None:
        self.add_all((label,))

    def add_all(self, labels: Iterable[SegmentLabel]) -> None:
        """Add many labels in one loop (10,000s of customers have ~7 labels each)."""
        self.__dict__.pop("_values", None)
        if self._shared:
            self._data = {cid: {k: dict(v) if isinstance(v, dict) else v
                                for k, v in slot.items()} for cid, slot in self._data.items()}
            self._shared = False
        data = self._data
        for label in labels:
            slot = data.get(label.customer)
            if slot is None:
                slot = data[label.customer] = {}
            if label.group:
                slot = slot.setdefault(label.group, {})
            slot[label.name] = label.value

    def label(self, customer: str, name: str, group: str | None = None) -> Any:
        slot = self._data.get(customer, {})
        if group:
            slot = slot.get(group, {})
        return slot.get(name)

    def values_of(self, name: str, group: str | None = None) -> dict[str, Any]:
        """``{customer: value}`` of one label, for the customers that have it: one pass
        instead of a :meth:`label` call per customer."""
        cache = self.__dict__.setdefault("_values", {})
        key = (name, group)
        if key not in cache:
            if group:
                cache[key] = {cid: slot[group][name] for cid, slot in self._data.items()
                              if name in slot.get(group, ())}
            else:
                cache[key] = {cid: slot[name] for cid, slot in self._data.items()
                              if name in slot}
        return dict(cache[key])

    def matches(self, customer: str, wanted: str) -> bool:
        """Whether ``customer`` is in segment ``wanted``: ``NAME`` (a label or grouped
        segment that is true) or ``NAME=VALUE`` (a label equal to VALUE, ignoring case)."""
        labels = self._data.get(customer, {})
        name, _, value = wanted.partition("=")
        candidates = [labels.get(name)] + [v.get(name) for v in labels.values()
                                           if isinstance(v, dict)]
        for found in candidates:
            if found is None:
                continue
            if (str(found).lower() == value.lower()) if value else found is True:
                return True
        return False

    def __getitem__(self, customer: str) -> dict[str, Any]:
        return self._data.get(customer, {})

    def __iter__(self):
        return iter(sorted(self._data))

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, customer: object) -> bool:
        return customer in self._data

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Segmentation):
            return self._data == other._data
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]


class _DeferredSegmentation(Segmentation):
    def __init__(self, compute: Callable[[], Segmentation]) -> None:
        self._compute = compute

    @property  # type: ignore[override]
    def _data(self) -> dict[str, dict[str, Any]]:
        return self._compute()._data

    def add_all(self, labels: Iterable[SegmentLabel]) -> None:
        self.__dict__.pop("_values", None)
        self._compute().add_all(labels)


@dataclass(frozen=True, slots=True)
class Reminder:
    """Something to do for a customer by a date, and why."""

    due: dt.date
    customer: str
    kind: str
    title: str
    reason: str
    channel: str | None = None
    #: 1 = most important; lower priorities are suppressed first by frequency caps.
    priority: int = 3
    #: The interaction or setting that caused it.
    source: Location | None = None
    #: Why it is not shown by default (e.g. a frequency cap), if it is suppressed.
    suppressed: str | None = None
    #: Facts for templates, e.g. ``{"service": "Wartung", "age": 48}`` (compared, not
    #: hashed: a dict has no hash).
    details: Mapping[str, Any] = field(default_factory=dict, hash=False)

    def overdue(self, today: dt.date) -> bool:
        return self.due < today

    def to_json(self, today: dt.date) -> dict[str, Any]:
        return {
            "due": self.due.isoformat(), "customer": self.customer, "kind": self.kind,
            "title": self.title, "channel": self.channel, "priority": self.priority,
            "overdue": self.overdue(today), "reason": self.reason,
            "source": str(self.source) if self.source else None,
            "suppressed": self.suppressed,
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
class Metric:
    """A KPI value for reports, e.g. ``repeat_purchase_rate = 0.42``."""

    name: str
    label: str
    value: Any
    unit: str | None = None
    description: str = ""


@dataclass(frozen=True, slots=True)
class ReportSection:
    """A block of a report: a template rendered with ``context``."""

    name: str
    title: str
    template: str
    context: Mapping[str, Any] = field(default_factory=dict)
    order: int = 100


JinjaFilter = Callable[..., Any]


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


@dataclass(frozen=True, slots=True)
class Importer:
    """Reads one kind of source (a CSV export, a vCard file, ...) into rows."""

    name: str
    description: str
    read: Callable[[Any, ImportOptions], Iterable[ImportRow]]
    #: File name endings this importer is the default for, e.g. ``(".vcf",)``.
    suffixes: tuple[str, ...] = ()
