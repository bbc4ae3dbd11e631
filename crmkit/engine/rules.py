"""What plugins register: rules and the settings they read, as plain declarations.

A plugin implements ``crmkit_register(register, settings)`` and calls
``register(...)`` with the objects below.  Each declares what it computes *and
what it reads*: a per-customer rule is a plain function of one customer as a
:class:`~crmkit.CustomerView` sees them (the record, the history, derived values,
the rule's options, today, and only the labels named in ``reads``).  Because the
core knows every input, it can keep results while they stay the same; because the
view offers nothing else, a rule cannot read something the core does not know
about.  ``over_all`` rules see every customer and are the escape hatch: they run
afresh every time.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..model import Location

#: What a rule's ``options`` map to: an :class:`Option`, a plain default (its type
#: is the default's type) or a mapping of those (a nested section).
OptionSpec = Any


@dataclass(frozen=True, slots=True)
class Option:
    """One setting in ``crmkit.yaml``: its default, type and bounds.

    ``kind`` is inferred from the default (``bool``, ``int``, ``float``, ``str``, a
    list of texts); give it when the default is ``None``: ``"text"``, ``"integer"``,
    ``"number"``, ``"boolean"``, ``"texts"``, ``"date"``, ``"expression"`` (a rule in
    the expression language, checked against the known names) or ``"list"`` (a list
    of mappings, each with the options in ``items``).  ``check(value)`` may return a
    message for a value that is well-typed but wrong.  A wrong value is reported at
    its ``path:line:col`` and the default is used instead.
    """

    default: Any = None
    help: str = ""
    kind: str | None = None
    minimum: float | None = None
    maximum: float | None = None
    choices: tuple[str, ...] = ()
    items: Mapping[str, OptionSpec] | None = None
    check: Callable[[Any], str | None] | None = None

    @property
    def type(self) -> str:
        if self.kind is not None:
            return self.kind
        default = self.default
        if isinstance(default, bool):
            return "boolean"
        if isinstance(default, int):
            return "integer"
        if isinstance(default, float):
            return "number"
        if isinstance(default, str):
            return "text"
        if isinstance(default, (list, tuple)) and all(isinstance(v, str) for v in default):
            return "texts"
        return "any"


@dataclass(frozen=True, slots=True)
class ConfigSection:
    """A top-level section of ``crmkit.yaml`` that a plugin owns.

    With ``options``, the core validates it (unknown keys with a did-you-mean, wrong
    values with their place) and the values are ``settings.options(name)``.
    ``example`` is shown, commented out, in the ``crmkit.yaml`` that ``crmkit init``
    writes.
    """

    name: str
    description: str
    example: str = ""
    options: Mapping[str, OptionSpec] | None = None
    where: Location | None = None


@dataclass(frozen=True, slots=True)
class Label:
    """A label of customers: ``lifecycle``, ``abc``, a segment of your own.

    * ``rule(customer) -> value``: per customer (kept while the customer's data,
      options and ``reads`` stay the same).  A text is a rule in the expression
      language: ``Label("vip", 'revenue_12m > 5000 or tags contains "vip"')``.
    * with ``across(values, scope) -> {customer_id: value}``: ``rule`` computes each
      customer's part and ``across`` turns all parts into labels (ABC classes rank
      everybody's revenue); kept while the parts are equal.
    * ``over_all(population) -> {customer_id: value}``: sees everybody, runs every
      time.

    Labels are names in expressions, ``--segment`` and other rules' ``reads`` (a
    name read with a trailing ``?`` may be missing: another plugin's label that is
    perhaps disabled).  ``group="segments"`` lists yes/no labels together
    (``crmkit segments``); a name starting with ``_`` is a plugin's own helper,
    left out of listings.  Options live at ``settings`` (default
    ``labels.<name>``) in ``crmkit.yaml``.  ``many=True``: ``rule`` takes a list of
    customers and returns a list of values (to compute them with numpy at once).
    """

    name: str
    rule: Callable[[Any], Any] | str | None = None
    across: Callable[[Mapping[str, Any], Any], Mapping[str, Any]] | None = None
    over_all: Callable[[Any], Mapping[str, Any]] | None = None
    many: bool = False
    reads: tuple[str, ...] = ()
    options: Mapping[str, OptionSpec] = field(default_factory=dict)
    settings: str | None = None
    group: str | None = None
    description: str = ""
    #: Whether ``crmkit segments``, ``show`` and exports list it (a name that exists for
    #: expressions only, such as ``r``, is not).
    listed: bool = True
    where: Location | None = None


@dataclass(frozen=True, slots=True)
class ReminderKind:
    """A kind of reminder: a rule that says what is due for a customer.

    ``rule(customer)`` yields :class:`~crmkit.Due` values.  Every kind gets the
    same treatment: ``reminders.<name>`` in ``crmkit.yaml`` takes ``enabled``,
    ``priority`` and the declared ``options``; ``crmkit reminders --kind NAME``;
    the channel policy (``channel`` fixes one); the frequency cap; the calendar;
    and an email draft from the template ``<template>.<locale>.txt.j2`` (default
    ``email/<name>``).
    """

    name: str
    rule: Callable[[Any], Iterable[Any]]
    description: str = ""
    priority: int = 3
    many: bool = False
    channel: str | None = None
    reads: tuple[str, ...] = ()
    options: Mapping[str, OptionSpec] = field(default_factory=dict)
    template: str | None = None
    where: Location | None = None
    #: What a group of these is called in reports ("Birthdays"), in English; shown
    #: translated (:func:`crmkit.translations`).  Default: the name, ``_`` as spaces.
    title: str = ""

    @property
    def settings(self) -> str:
        return f"reminders.{self.name}"

    @property
    def email_template(self) -> str:
        return self.template or f"email/{self.name}"


@dataclass(frozen=True, slots=True)
class Metric:
    """A figure of the business for reports and ``--format json``.

    * ``rule(customer)`` computes each customer's part and ``across(parts, scope)``
      the figure from all parts (kept while the parts are equal; metrics that share
      ``rule`` and ``across`` compute them once), ``value(result)`` picks this
      metric's figure from it;
    * or ``over_all(population)`` computes it from everybody, every time.

    ``unit``: ``"currency"`` (the workspace's), ``"ratio"``, ``"points"``, ``"days"``,
    ``"working days"`` or None.
    A metric is also a name that rules may ``read`` (a fitted model, quintile
    cuts); one whose name starts with ``_`` is a helper, left out of listings.
    """

    name: str
    title: str
    rule: Callable[[Any], Any] | None = None
    across: Callable[[Mapping[str, Any], Any], Any] | None = None
    over_all: Callable[[Any], Any] | None = None
    many: bool = False
    value: Callable[[Any], Any] | None = None
    unit: str | None = None
    description: str | Callable[[Any], str] = ""
    reads: tuple[str, ...] = ()
    options: Mapping[str, OptionSpec] = field(default_factory=dict)
    settings: str | None = None
    where: Location | None = None


@dataclass(frozen=True, slots=True)
class Check:
    """A data-quality check, run by ``crmkit check`` and whenever the workspace loads.

    ``rule(customer)`` yields :class:`~crmkit.Diagnostic` values for one customer;
    with ``across(parts, scope)`` it computes parts that ``across`` turns into
    diagnostics (duplicates among everybody); ``over_all(population)`` sees
    everybody.  Checks read no labels.
    """

    name: str
    rule: Callable[[Any], Any] | None = None
    across: Callable[[Mapping[str, Any], Any], Iterable[Any]] | None = None
    over_all: Callable[[Any], Iterable[Any]] | None = None
    many: bool = False
    options: Mapping[str, OptionSpec] = field(default_factory=dict)
    settings: str | None = None
    where: Location | None = None

    @property
    def reads(self) -> tuple[str, ...]:
        return ()


@dataclass(frozen=True, slots=True)
class ReportSection:
    """A block of a report (``"dashboard"``, ``"weekly"`` or your own).

    The template ``<template>.<format>.j2`` is rendered with the report's variables
    and what ``context(app)`` returns.  With ``pure=True`` the template is rendered
    with ``context(app)`` alone (plus ``business``, ``today``, ``currency`` and
    ``locale``), and its text is reused while that context is equal.
    """

    report: str
    name: str
    title: str
    template: str
    context: Callable[[Any], Mapping[str, Any]] | None = None
    order: int = 100
    pure: bool = False
    where: Location | None = None


@dataclass(frozen=True, slots=True)
class Importer:
    """Reads one kind of source (a CSV export, a vCard file, ...) into rows."""

    name: str
    description: str
    read: Callable[[Any, Any], Iterable[Any]]
    #: File name endings this importer is the default for, e.g. ``(".vcf",)``.
    suffixes: tuple[str, ...] = ()
    where: Location | None = None


Registrable = ConfigSection | Label | ReminderKind | Metric | Check | ReportSection | Importer
