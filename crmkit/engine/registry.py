"""Everything the plugins registered, checked and put in order.

``crmkit_register`` is called once per run (and once per settings change in
``crmkit watch``); the registry checks what came back: names are unique across
plugins, labels do not shadow the customer's variables, every name a rule reads
exists (did-you-mean otherwise), expression rules compile, and labels that read
each other form no cycle.  It also declares every setting the rules take, so the
core can validate ``crmkit.yaml`` in one place (:mod:`crmkit.engine.settings`).
"""

from __future__ import annotations

import contextlib
import inspect
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..loading.schema import did_you_mean
from ..model import Diagnostic, Location, OptionValues, Settings
from .expressions import Expression, ExpressionError, compile_expression
from .rules import (
    Check,
    ConfigSection,
    Importer,
    Label,
    Metric,
    Option,
    ReminderKind,
    ReportSection,
)
from .settings import Node
from .views import VARIABLES

if TYPE_CHECKING:
    from .plugins import PluginHost

#: Settings of every reminder kind, besides its own options.
KIND_OPTIONS = {"enabled": Option(True, "Whether this kind makes reminders at all.")}
#: The frequency cap: the core holds back reminders of every kind (docs/reminders.md).
CAP_OPTIONS = {
    "enabled": Option(True, "Whether the cap holds anything back."),
    "max_contacts": Option(2, "Outbound contacts allowed within 'days'.", minimum=0),
    "days": Option(30, "The window of the cap, in days.", minimum=1),
    "protect_priority": Option(2, "Reminders of this priority or more important are never "
                                  "held back.", minimum=0),
}
_HERE = Path(__file__).resolve().parent.parent


@dataclass
class Registry:
    labels: dict[str, Label]
    kinds: dict[str, ReminderKind]
    metrics: dict[str, Metric]
    checks: dict[str, Check]
    sections: list[ReportSection]
    importers: dict[str, Importer]
    config_sections: dict[str, ConfigSection]
    interaction_types: tuple[str, ...]
    #: Which plugin registered what, by (type name, name).
    owners: dict[tuple[str, str], str]
    diagnostics: list[Diagnostic]
    tree: Node
    #: Labels made of an expression (the text rules), compiled.
    expressions: dict[str, Expression]
    #: What each rule reads: declared, plus the names in its expressions.
    reads: dict[tuple[str, str], frozenset[str]]
    #: Labels in an order where each comes after what it reads.
    label_order: list[str]
    _shared: dict[tuple[Any, ...], str] = field(default_factory=dict)
    _settings: Settings | None = None

    def owner(self, thing: Any) -> str:
        if isinstance(thing, ReportSection):
            return self.owners.get(("ReportSection", f"{thing.report}/{thing.name}"), "?")
        return self.owners.get((type(thing).__name__, _name(thing)), "?")

    owner_of_section = owner

    def names(self) -> list[str]:
        """What expressions and ``reads`` may name: variables, labels, metrics."""
        return [*VARIABLES, *self.labels, *self.metrics]

    def reads_of(self, thing: Any) -> frozenset[str]:
        """What a rule may read: the names it declared (without the ``?`` of optional
        ones) and those in its expressions."""
        key = (type(thing).__name__, _name(thing))
        found = self.reads.get(key)
        if found is None:
            found = self.reads[key] = frozenset(r.rstrip("?") for r in thing.reads)
        return found

    def sections_of(self, report: str) -> list[ReportSection]:
        return sorted((s for s in self.sections if s.report == report),
                      key=lambda s: (s.order, s.name))

    def reports(self) -> list[str]:
        return sorted({s.report for s in self.sections})

    def shared_name(self, rule: Label | Metric | Check) -> str:
        """A name for what ``rule`` computes, the same for metrics that share their
        per-customer rule (and ``across`` step) and the same in every run of this code:
        the kept results of one rule serve them all."""
        if not isinstance(rule, Metric):
            return f"{type(rule).__name__}:{rule.name}"
        if not self._shared:  # named after the first metric that registered them
            for metric in self.metrics.values():
                self._shared.setdefault(self._share_key(metric), f"Metric:{metric.name}")
        return self._shared.get(self._share_key(rule), f"Metric:{rule.name}")

    def _share_key(self, metric: Metric) -> tuple[Any, ...]:
        options = self._settings.options(self.settings_path(metric)) if self._settings else None
        return (metric.rule, metric.across, self.reads_of(metric), options)

    def settings_path(self, rule: Any) -> str:
        if isinstance(rule, ReminderKind):
            return rule.settings
        if rule.settings:
            return rule.settings
        plural = {"Label": "labels", "Metric": "metrics", "Check": "checks"}
        return f"{plural[type(rule).__name__]}.{rule.name}"

    def options_of(self, rule: Any, settings: Settings) -> OptionValues:
        return settings.options(self.settings_path(rule))

    def complete(self, settings: Settings) -> None:
        """Add the names read by expressions in the rules' validated options, then
        put the labels in order (a cycle is an error)."""
        self._settings = settings
        self._shared.clear()
        for rule in self.rules():
            found = _expression_names(self.options_of(rule, settings))
            key = (type(rule).__name__, _name(rule))
            names = (found & (self.labels.keys() | self.metrics.keys()))
            if names:
                self.reads[key] = self.reads_of(rule) | names
        self.label_order = self._order()

    def rules(self) -> Iterable[Any]:
        yield from self.labels.values()
        yield from self.kinds.values()
        yield from self.metrics.values()
        yield from self.checks.values()

    def _order(self) -> list[str]:
        order: list[str] = []
        state: dict[str, int] = {}

        def visit(name: str, path: list[str]) -> None:
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = [*path[path.index(name):], name]
                label = self.labels[name]
                self.diagnostics.append(Diagnostic.error(
                    f"labels read each other in a circle: {' -> '.join(cycle)}",
                    label.where, source=self.owner(label)))
                return
            state[name] = 1
            for read in sorted(self.reads_of(self.labels[name])):
                if read in self.labels:
                    visit(read, [*path, name])
                elif read in self.metrics:
                    for deeper in sorted(self.reads_of(self.metrics[read])):
                        if deeper in self.labels:
                            visit(deeper, [*path, name])
            state[name] = 2
            order.append(name)

        for name in self.labels:
            visit(name, [])
        return order


def _name(thing: Any) -> str:
    return getattr(thing, "name", "")


def _expression_names(values: Any) -> frozenset[str]:
    found: set[str] = set()
    stack = [values]
    while stack:
        value = stack.pop()
        if isinstance(value, Expression):
            found |= value.names
        elif isinstance(value, OptionValues):
            stack.extend(value.values())
        elif isinstance(value, tuple):
            stack.extend(value)
    return frozenset(found)


def _caller_location(root: Path | None) -> Location | None:
    """Where in a plugin's file ``register(...)`` was called (for diagnostics)."""
    frame = sys._getframe(2)
    while frame is not None:
        filename = frame.f_code.co_filename
        if not Path(filename).resolve().is_relative_to(_HERE):
            path = Path(filename)
            if root is not None:
                try:
                    return Location(path.resolve().relative_to(root.resolve()).as_posix(),
                                    frame.f_lineno, 0)
                except ValueError:
                    pass
            return Location(filename, frame.f_lineno, 0)
        frame = frame.f_back  # type: ignore[assignment]
    return None


_KINDS = {
    Label: "label", ReminderKind: "reminder kind", Metric: "metric", Check: "check",
    ReportSection: "report section", ConfigSection: "settings section", Importer: "importer",
}


def collect(host: PluginHost, settings: Settings) -> Registry:
    """Ask every plugin what it provides (``crmkit_register``) and check it."""
    registry = Registry(labels={}, kinds={}, metrics={}, checks={}, sections=[], importers={},
                        config_sections={}, interaction_types=(), owners={}, diagnostics=[],
                        tree=Node(), expressions={}, reads={}, label_order=[])
    found: list[tuple[Any, str]] = []

    def register(thing: Any) -> None:
        plugin = host.current or "?"
        if type(thing) not in _KINDS:
            registry.diagnostics.append(Diagnostic.error(
                f"plugin {plugin!r} registered {thing!r}; register() takes "
                f"{', '.join(k.__name__ for k in _KINDS)}", _caller_location(host.root),
                source=plugin))
            return
        if getattr(thing, "where", None) is None:
            thing = replace(thing, where=_caller_location(host.root))
        found.append((thing, plugin))

    _, problems = host.call("crmkit_register", register=register, settings=settings)
    registry.diagnostics.extend(problems)
    types, problems = host.call("crmkit_interaction_types")
    registry.diagnostics.extend(problems)
    registry.interaction_types = tuple(dict.fromkeys(str(t) for t in types))
    order = {info.name: n for n, info in enumerate(host.plugins)}
    found.sort(key=lambda item: order.get(item[1], len(order)))  # stable: as registered
    for thing, plugin in found:
        _add(registry, thing, plugin)
    _declare_settings(registry, host)
    _compile_and_check_reads(registry)
    return registry


def _add(registry: Registry, thing: Any, plugin: str) -> None:
    what = _KINDS[type(thing)]
    if isinstance(thing, ReportSection):
        taken = [s for s in registry.sections
                 if (s.report, s.name) == (thing.report, thing.name)]
        if taken:
            registry.diagnostics.append(Diagnostic.error(
                f"report section {thing.name!r} of report {thing.report!r} is registered "
                f"twice (by {registry.owners[('ReportSection', thing.report + '/' + thing.name)]!r}"
                f" and {plugin!r}); the second is left out", thing.where, source=plugin))
            return
        registry.sections.append(thing)
        registry.owners[("ReportSection", thing.report + "/" + thing.name)] = plugin
        return
    table: dict[str, Any] = {
        Label: registry.labels, ReminderKind: registry.kinds, Metric: registry.metrics,
        Check: registry.checks, Importer: registry.importers,
        ConfigSection: registry.config_sections,
    }[type(thing)]
    name = thing.name
    problem = None
    if not isinstance(name, str) or not name.replace("_", "").replace("-", "").isalnum():
        problem = f"{what} name {name!r} must be letters, digits, '_' or '-'"
    elif name in table and isinstance(thing, Label) and thing.group == "segments":
        problem = (f"segment name {name!r} is taken by a label of plugin "
                   f"{registry.owners[('Label', name)]!r}; choose another name")
    elif name in table:
        problem = (f"{what} {name!r} is registered twice (by "
                   f"{registry.owners[(type(thing).__name__, name)]!r} and {plugin!r}); "
                   "the second is left out")
    elif isinstance(thing, Label) and name in VARIABLES:
        problem = (f"{'segment' if thing.group == 'segments' else what} name {name!r} is "
                   "taken by a customer variable; choose another name")
    elif (isinstance(thing, Label) and name in registry.metrics) or \
            (isinstance(thing, Metric) and name in registry.labels):
        other = "metric" if isinstance(thing, Label) else "label"
        problem = f"{what} name {name!r} is taken by a {other}"
    elif isinstance(thing, Label | Metric | Check) and \
            sum(x is not None for x in (thing.rule, thing.over_all)) != 1:
        problem = f"{what} {name!r} needs either a rule or over_all (not both)"
    elif isinstance(thing, Metric) and thing.rule is not None and thing.across is None:
        problem = f"metric {name!r}: a per-customer rule needs across= to make one figure"
    if problem:
        registry.diagnostics.append(Diagnostic.error(problem, thing.where, source=plugin))
        return
    table[name] = thing
    registry.owners[(type(thing).__name__, name)] = plugin


def _declare_settings(registry: Registry, host: PluginHost) -> None:
    tree = registry.tree
    clashes: list[tuple[str, str, Location | None]] = []

    def declare(path: str, options: Any, owner: str, where: Location | None) -> None:
        for key in tree.declare(path.split("."), options, owner):
            clashes.append((f"{path}.{key}", owner, where))

    tree.declare(["reminders"], {}, "crmkit")
    tree.declare(["reminders", "frequency_cap"], CAP_OPTIONS, "crmkit")
    for section in registry.config_sections.values():
        owner = registry.owners[("ConfigSection", section.name)]
        node = tree.children.get(section.name)
        if section.options is not None:
            declare(section.name, section.options, owner, section.where)
        elif node is None:
            tree.children[section.name] = Node(owners={"": owner}, free=True)
    for rule in registry.rules():
        owner = registry.owner(rule)
        options = dict(rule.options)
        if isinstance(rule, ReminderKind):
            options = {**KIND_OPTIONS, "priority": Option(
                rule.priority, "1 = most important.", minimum=1, maximum=9), **options}
        elif not options:
            continue
        path = registry.settings_path(rule)
        top = tree.children.get(path.split(".")[0])
        if top is not None and top.free:
            top.free = False
        declare(path, options, owner, rule.where)
    for path, owner, where in clashes:
        registry.diagnostics.append(Diagnostic.error(
            f"setting '{path}' is declared twice; {owner!r}'s is left out", where,
            source=owner))
    from .plugins import disabled_stock_modules

    for name, module in disabled_stock_modules(host):  # their sections: accepted, ignored
        function = getattr(module, "crmkit_register", None)
        seen: list[Any] = []
        if function is None:
            continue
        arguments = {"register": seen.append, "settings": None}
        accepted = inspect.signature(function).parameters
        with contextlib.suppress(Exception):  # a disabled plugin: nothing of it may stop us
            function(**{k: v for k, v in arguments.items() if k in accepted})
        for thing in seen:
            if isinstance(thing, ConfigSection) and thing.name not in tree.children:
                tree.children[thing.name] = Node(owners={"": name}, ignored=True)


def _compile_and_check_reads(registry: Registry) -> None:
    names = registry.names()
    readable = set(registry.labels) | set(registry.metrics)
    for label in list(registry.labels.values()):
        if not isinstance(label.rule, str):
            continue
        try:
            compiled = compile_expression(label.rule, names)
        except ExpressionError as exc:
            what = "segment" if label.group == "segments" else "label"
            if label.name.startswith("_") and label.description:  # a plugin's helper
                what = label.description
            else:
                what = f"{what} {label.name!r}"
            registry.diagnostics.append(Diagnostic.error(
                f"{what}: {exc.message} (column {exc.column} of the expression)",
                label.where, source=registry.owner(label)))
            del registry.labels[label.name]
            continue
        registry.expressions[label.name] = compiled
        registry.reads[("Label", label.name)] = frozenset(label.reads) | (
            compiled.names & readable)
    for rule in registry.rules():
        unknown = [r for r in rule.reads if r not in readable and not r.endswith("?")]
        for name in unknown:
            what = _KINDS[type(rule)]
            registry.diagnostics.append(Diagnostic.error(
                f"{what} {rule.name!r} reads {name!r}, which no plugin registers"
                f"{did_you_mean(name, readable, 'en')}", rule.where, source=registry.owner(rule)))
        if isinstance(rule, Check) and rule.reads:
            registry.diagnostics.append(Diagnostic.error(
                f"check {rule.name!r} reads labels; checks run before labels are computed",
                rule.where, source=registry.owner(rule)))
