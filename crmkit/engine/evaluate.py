"""The rule engine: every registered rule, computed for one workspace as of one day.

Labels, reminder kinds, metrics and checks are all computed the same way: a
per-customer rule runs on a :class:`~crmkit.engine.views.CustomerView` of each
customer, with exactly the inputs it declared; an ``across`` step turns all
customers' results into labels, diagnostics or one figure; an ``over_all`` rule
sees everybody.  Everything goes through the memo (:mod:`crmkit.incremental.memo`),
which keeps per-customer results while their declared inputs are the same; in a
one-off command it is off and every rule simply runs.

A rule that raises for one customer is reported once (with the number of
customers it failed for) and the others go on.
"""

from __future__ import annotations

import bisect
import datetime as dt
import itertools
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import replace
from typing import Any

from ..incremental.memo import Memo, Ordered
from ..model import Customer, Derived, Diagnostic, Interaction, OptionValues, Workspace, derive
from .plugins import location_in_traceback
from .registry import Registry
from .reminders import ORDER, capped, distinct_ids, reminder_of, settled
from .rules import Check, Label, Metric, ReminderKind
from .values import Due, MetricValue, Reminder
from .views import CustomerView, Population, Scope


class _Failure:
    __slots__ = ("diagnostic",)

    def __init__(self, diagnostic: Diagnostic) -> None:
        self.diagnostic = diagnostic


class Engine:
    """Computes the registered rules for ``workspace`` as of ``today``."""

    def __init__(self, workspace: Workspace, registry: Registry, today: dt.date,
                 memo: Memo | None = None) -> None:
        self.workspace = workspace
        self.registry = registry
        self.today = today
        self.settings = workspace.settings
        self.memo = memo or Memo()
        self.ids = list(workspace.customers)
        self.problems: list[Diagnostic] = []
        self._history: dict[str, tuple[tuple[Interaction, ...], tuple[Interaction, ...]]] = {}
        self._derived: dict[str, Derived] = {}
        self._columns: dict[str, dict[str, Any]] = {}
        self._results: dict[str, Any] = {}
        self._metric_values: dict[str, MetricValue] = {}
        self._computing: set[str] = set()
        self._reminders: list[Reminder] | None = None
        self._shown: list[Reminder] | None = None
        self._reported: set[Hashable] = set()
        #: Results of this run by rule (metrics may share a per-customer rule and an
        #: ``across`` step: each runs once).
        self._nodes: dict[Hashable, dict[str, Any]] = {}
        self._acrosses: dict[Hashable, Any] = {}

    # --- a customer's basics --------------------------------------------------------

    def history(self, customer_id: str) -> tuple[tuple[Interaction, ...], tuple[Interaction, ...]]:
        """The customer's interactions up to today, and those after it."""
        split = self._history.get(customer_id)
        if split is None:
            everything = self.workspace.history(customer_id)
            cut = bisect.bisect_right(everything, self.today, key=_date)
            split = self._history[customer_id] = (everything[:cut], everything[cut:])
        return split

    def derived(self, customer_id: str) -> Derived:
        value = self._derived.get(customer_id)
        if value is None:
            value = self._derived[customer_id] = self.memo.one(
                "crmkit.derived", self.today, customer_id,
                lambda: derive(self.workspace.history(customer_id), self.today,
                               self.settings.currency, customer_id))
        return value

    def interactions(self) -> tuple[Interaction, ...]:
        everything = self.workspace.interactions
        return everything[:bisect.bisect_right(everything, self.today, key=_date)]

    def view(self, customer: Customer, options: OptionValues | None = None,
             reads: frozenset[str] | None = None) -> CustomerView:
        return CustomerView(self, customer, options or OptionValues(), reads)

    # --- reading labels and metrics -------------------------------------------------

    def names(self) -> list[str]:
        return [*self.registry.labels, *self.registry.metrics]

    def read(self, name: str, customer_id: str | None) -> Any:
        if name in self.registry.labels:
            if customer_id is None:
                raise LookupError(f"{name!r} is a label: read it as customer.labels[{name!r}]")
            return self.column(name).get(customer_id)
        if name in self.registry.metrics:
            return self.metric_result(name)
        return None  # an optional read ("name?") that no plugin registers

    def _inputs(self, reads: frozenset[str]) -> tuple[tuple[Any, ...], dict[str, Any]]:
        """The current values of what a rule reads (label columns, metric figures), in
        order, and by name for the rule's views."""
        found = []
        resolved: dict[str, Any] = {}
        for name in sorted(reads):
            if name in self.registry.labels:
                found.append(column := self.column(name))
                resolved[name] = column
            elif name in self.registry.metrics:
                found.append(value := self.metric_result(name))
                resolved[name] = (value,)
        return tuple(found), resolved

    # --- per-customer rules ---------------------------------------------------------

    def per_customer(self, key: Hashable, rule: Callable[[Any], Any],
                     reads: frozenset[str], options: OptionValues, describe: str,
                     owner: str, wrap: Callable[[Any, Customer], Any] | None = None,
                     failed: Any = None, ids: list[str] | None = None,
                     many: bool = False) -> dict[str, Any]:
        """``rule`` for every customer (or ``ids``), kept per customer while its inputs
        stay the same; ``wrap(result, customer)`` post-processes a result.  With
        ``many``, ``rule`` takes a list of customers and returns a list of results."""
        if ids is None and key in self._nodes:
            return self._nodes[key]
        inputs, resolved = self._inputs(reads)
        customers = self.workspace.customers

        def failure(cid: str, exc: Exception) -> _Failure:
            return _Failure(Diagnostic.error(
                f"plugin {owner!r}: {describe} failed for customer {cid!r}: "
                f"{type(exc).__name__}: {exc}",
                location_in_traceback(exc, root=self.workspace.root), source=owner))

        def compute(todo: list[str]) -> tuple[dict[str, Any], dict[str, Any]]:
            out: dict[str, Any] = {}
            failures: dict[str, Any] = {}
            if many:
                records = [customers[cid] for cid in todo]

                def at_once(records: list[Customer]) -> list[Any]:
                    results = list(rule([CustomerView(self, c, options, reads, resolved)
                                         for c in records]))
                    if len(results) != len(records):
                        raise ValueError(f"returned {len(results)} values for "
                                         f"{len(records)} customers")
                    return results

                try:
                    pairs = list(zip(records, at_once(records), strict=True))
                except Exception:
                    # one customer's bad data must not switch off everybody's value:
                    # each alone, so that only the ones it fails for fail
                    pairs = []
                    for customer in records:
                        try:
                            pairs.append((customer, at_once([customer])[0]))
                        except Exception as exc:
                            out[customer.id] = failed
                            failures[customer.id] = failure(customer.id, exc)
                for customer, value in pairs:
                    out[customer.id] = wrap(value, customer) if wrap else value
                return out, failures
            view = CustomerView
            for cid in todo:
                customer = customers[cid]
                try:
                    value = rule(view(self, customer, options, reads, resolved))
                    out[cid] = wrap(value, customer) if wrap is not None else value
                except Exception as exc:
                    out[cid] = failed
                    failures[cid] = failure(cid, exc)
            return out, failures

        values, failures = self.memo.per_customer(key, self.today, self.ids if ids is None
                                                  else ids, compute, inputs, options)
        if failures:
            self._report(key, failures)
        if ids is None:
            self._nodes[key] = values
        return values

    def _report(self, key: Hashable, failures: Mapping[str, Any]) -> None:
        if key in self._reported:
            return
        self._reported.add(key)
        first = failures[min(failures)].diagnostic
        more = len(failures) - 1
        if more:
            first = Diagnostic(first.severity, f"{first.message} (and {more} more "
                               f"customer{'s' if more > 1 else ''})", first.location,
                               first.source)
        self.problems.append(first)

    def _rule_failed(self, owner: str, describe: str, exc: Exception) -> None:
        self.problems.append(Diagnostic.error(
            f"plugin {owner!r}: {describe} failed: {type(exc).__name__}: {exc}",
            location_in_traceback(exc, root=self.workspace.root), source=owner))

    def _across(self, rule: Label | Metric | Check, parts: dict[str, Any], describe: str
                ) -> Any:
        assert rule.across is not None
        options = self.registry.options_of(rule, self.settings)
        reads = self.registry.reads_of(rule)
        scope = Scope(self, options, reads)
        across = rule.across
        key = ("across", self.registry.shared_name(rule))
        if key not in self._acrosses:
            metrics = tuple(self.metric_result(r) for r in sorted(reads)
                            if r in self.registry.metrics)
            scope.metrics._resolved = {r: (v,) for r, v in zip(
                [r for r in sorted(reads) if r in self.registry.metrics], metrics, strict=True)}
            self._acrosses[key] = self.memo.whole(key, self.today, (parts, options, *metrics),
                                                  lambda: across(parts, scope))
        return self._acrosses[key]

    def _over_all(self, rule: Label | Metric | Check) -> Any:
        assert rule.over_all is not None
        options = self.registry.options_of(rule, self.settings)
        return rule.over_all(Population(self, options, self.registry.reads_of(rule)))

    # --- labels ---------------------------------------------------------------------

    def column(self, name: str) -> dict[str, Any]:
        """``{customer_id: value}`` of one label, for every customer."""
        column = self._columns.get(name)
        if column is not None:
            return column
        if name in self._computing:  # a circle of labels: reported by the registry
            return {}
        self._computing.add(name)
        try:
            column = self._label(self.registry.labels[name])
        finally:
            self._computing.discard(name)
        self._columns[name] = column
        return column

    def _label(self, label: Label) -> dict[str, Any]:
        registry = self.registry
        owner = registry.owner(label)
        describe = f"label {label.name!r}"
        reads = registry.reads_of(label)
        options = registry.options_of(label, self.settings)
        if label.over_all is not None:
            try:
                found = self._over_all(label)
                return {cid: found.get(cid) for cid in self.ids}
            except Exception as exc:
                self._rule_failed(owner, describe, exc)
                return dict.fromkeys(self.ids)
        rule = label.rule
        if isinstance(rule, str):
            expression = registry.expressions[label.name]
            rule = expression.__call__
        assert callable(rule)
        parts = self.per_customer(("label", label.name), rule, reads, options,
                                  describe, owner, many=label.many)
        if label.across is None:
            return parts
        try:
            found = self._across(label, parts, describe)
        except Exception as exc:
            self._rule_failed(owner, describe, exc)
            return dict.fromkeys(self.ids)
        return self.memo.whole(("label-column", label.name), self.today, (found,),
                               lambda: {cid: found.get(cid) for cid in self.ids})

    def labels(self) -> Labels:
        """Every label of every customer (a mapping ``id -> {name: value}``)."""
        return Labels(self)

    # --- metrics --------------------------------------------------------------------

    def metric_result(self, name: str) -> Any:
        """A metric's figure (what rules that read it see)."""
        if name not in self._results:
            self._results[name] = self._metric(name)
        return self._results[name][0]

    def metric(self, name: str) -> MetricValue:
        if name not in self._metric_values:
            self.metric_result(name)
            figure, description = self._results[name]
            metric = self.registry.metrics[name]
            unit = self.settings.currency if metric.unit == "currency" else metric.unit
            self._metric_values[name] = MetricValue(name, metric.title, figure, unit,
                                                    description)
        return self._metric_values[name]

    def _metric(self, name: str) -> tuple[Any, str]:
        if name in self._computing:
            return None, ""
        metric = self.registry.metrics[name]
        owner = self.registry.owner(metric)
        describe = f"metric {name!r}"
        self._computing.add(name)
        try:
            if metric.over_all is not None:
                result = self._over_all(metric)
            else:
                assert metric.rule is not None
                parts = self.per_customer(
                    ("metric-part", self.registry.shared_name(metric)), metric.rule,
                    self.registry.reads_of(metric),
                    self.registry.options_of(metric, self.settings), describe, owner,
                    many=metric.many)
                result = self._across(metric, parts, describe)
            figure = metric.value(result) if metric.value is not None else result
            text = metric.description
            description = text(result) if callable(text) else text
        except Exception as exc:
            self._rule_failed(owner, describe, exc)
            return None, ""
        finally:
            self._computing.discard(name)
        return figure, description

    # --- reminders ------------------------------------------------------------------

    def kinds(self) -> list[ReminderKind]:
        """The enabled reminder kinds."""
        return [k for k in self.registry.kinds.values()
                if self.registry.options_of(k, self.settings).get("enabled", True)]

    def reminders(self) -> list[Reminder]:
        """Every enabled kind's reminders, the frequency cap applied, in order (by due
        date, customer, kind, title)."""
        if self._reminders is None:
            blocks = self._reminder_blocks()
            order = self.memo.state(("crmkit.order",), self.today, lambda: Ordered(ORDER))
            self._reminders = order.update(blocks)
        return self._reminders

    def shown_reminders(self) -> list[Reminder]:
        """:meth:`reminders` without the held-back ones (``suppressed``), in order."""
        if self._shown is None:
            self._shown = [r for r in self.reminders() if not r.suppressed]
        return self._shown

    def reminders_by_customer(self, suppressed: bool = True
                              ) -> Mapping[str, tuple[Reminder, ...]]:
        """Each customer's reminders in order (without the held-back ones unless
        ``suppressed``): kept per customer, so an entry is the very same tuple while that
        customer's reminders are, and after a change only the changed customers' are new."""
        blocks = self._reminder_blocks()
        if suppressed:
            return blocks
        return self.memo.per_customer(
            ("crmkit.shown reminders",), self.today, self.ids,
            lambda todo: ({cid: tuple(r for r in blocks[cid] if not r.suppressed)
                           for cid in todo}, {}), (blocks,))[0]

    def _reminder_blocks(self) -> dict[str, tuple[Reminder, ...]]:
        registry = self.registry
        kinds = self.kinds()
        found = []
        for kind in kinds:
            options = registry.options_of(kind, self.settings)
            priority = options.get("priority", kind.priority)

            def wrap(dues: Iterable[Any], customer: Customer, kind: ReminderKind = kind,
                     priority: int = priority) -> tuple[Reminder, ...]:
                return distinct_ids(tuple(_own(reminder_of(due, kind, customer, priority), due)
                                          for due in dues or ()))

            found.append(self.per_customer(("kind", kind.name), kind.rule,
                                           registry.reads_of(kind), options,
                                           f"reminder kind {kind.name!r}",
                                           registry.owner(kind), wrap, failed=(),
                                           many=kind.many))
        cap = self.settings.options("reminders.frequency_cap")
        today = self.today

        def final(view: CustomerView) -> tuple[Reminder, ...]:
            cid = view.id
            items = list(itertools.chain.from_iterable(column[cid] for column in found))
            history = view.history
            return capped(settled(items, history, today), history, today, cap)

        return self.memo.per_customer(
            ("crmkit.reminders", tuple(k.name for k in kinds)), today, self.ids,
            lambda todo: ({cid: final(self.view(self.workspace.customers[cid]))
                           for cid in todo}, {}),
            tuple(found), cap)[0]

    # --- checks ---------------------------------------------------------------------

    def checks(self) -> list[Diagnostic]:
        """What every registered check finds."""
        found: list[Diagnostic] = []
        for check in self.registry.checks.values():
            found.extend(self._check(check))
        return found

    def _check(self, check: Check) -> Iterator[Diagnostic]:
        owner = self.registry.owner(check)
        describe = f"check {check.name!r}"
        options = self.registry.options_of(check, self.settings)
        try:
            if check.over_all is not None:
                found = list(self._over_all(check))
            else:
                assert check.rule is not None
                if check.across is None:
                    per = self.per_customer(("check", check.name), check.rule,
                                            frozenset(), options, describe, owner,
                                            lambda result, customer: tuple(result or ()),
                                            failed=(), many=check.many)
                    found = list(itertools.chain.from_iterable(per.values()))
                else:
                    parts = self.per_customer(("check-part", check.name),
                                              check.rule, frozenset(), options, describe,
                                              owner, many=check.many)
                    found = list(self._across(check, parts, describe))
        except Exception as exc:
            self._rule_failed(owner, describe, exc)
            return
        for item in found:
            if not isinstance(item, Diagnostic):
                self.problems.append(Diagnostic.error(
                    f"plugin {owner!r}: {describe} returned {item!r}, not a crmkit.Diagnostic",
                    check.where, source=owner))
                continue
            yield item


def _date(interaction: Interaction) -> dt.date:
    return interaction.date


def _own(reminder: Reminder, due: Due) -> Reminder:
    """The reminder with the channel and email template its ``Due`` names, if it names
    any (a playbook step's own, instead of the kind's)."""
    if due.channel is None and due.template is None:
        return reminder
    return replace(reminder, channel=due.channel or reminder.channel, template=due.template)


class Labels(Mapping[str, dict[str, Any]]):
    """Every customer's labels, as ``{customer_id: {name: value, group: {...}}}``, in the
    order the labels were registered; computed when first read."""

    def __init__(self, engine: Engine) -> None:
        self._engine = engine
        self._rows: dict[str, dict[str, Any]] = {}

    def column(self, name: str) -> dict[str, Any]:
        """``{customer_id: value}`` of one label."""
        return self._engine.column(name)

    def ordered(self, name: str) -> list[str]:
        """The customer ids in the order of their values of the label ``name`` (then by
        id; customers without a value last, by id), such as the customers by name for a
        list.  The values must compare with each other (strings, numbers, dates, tuples
        of them).  In ``crmkit watch`` the order is kept and only customers whose value
        changed move, instead of sorting everybody after every change."""
        from ..incremental.memo import OrderedIds

        column = self._engine.column(name)
        kept = self._engine.memo.state(("crmkit.ordered", name), self._engine.today,
                                       OrderedIds)
        return list(kept.update(column))

    def __getitem__(self, customer_id: str) -> dict[str, Any]:
        row = self._rows.get(customer_id)
        if row is None:
            if customer_id not in self._engine.workspace.customers:
                raise KeyError(customer_id)
            row = {}
            for name, label in self._engine.registry.labels.items():
                if name.startswith("_") or not label.listed:
                    continue
                value = self._engine.column(name).get(customer_id)
                if label.group:
                    row.setdefault(label.group, {})[name] = value
                else:
                    row[name] = value
            self._rows[customer_id] = row
        return row

    def __iter__(self) -> Iterator[str]:
        return iter(self._engine.ids)

    def __len__(self) -> int:
        return len(self._engine.ids)

    def __contains__(self, customer_id: object) -> bool:
        return customer_id in self._engine.workspace.customers

    def matches(self, customer_id: str, selector: Any) -> bool:
        """Whether the customer is in the segment ``selector`` (a compiled expression)."""
        view = self._engine.view(self._engine.workspace.customers[customer_id])
        return bool(selector(view.variables))
