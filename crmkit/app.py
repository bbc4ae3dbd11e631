"""One crmkit run: the workspace, its plugins and the date it is computed for.

Commands (built-in and from plugins) receive the :class:`App` with
``@crmkit.pass_app`` and ask it for what they need; everything is loaded on
first use, so ``crmkit --help`` and ``crmkit init`` never touch a workspace.
"""

from __future__ import annotations

import bisect
import datetime as dt
import gc
import itertools
import operator
import shutil
from collections.abc import Iterable
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from . import parallel
from .cache import CACHE_DIR, ParseCache
from .diagnostics import CrmkitError, Diagnostic
from .loader import find_workspace, load_workspace, read_settings_data
from .model import Customer, Workspace
from .plugins import PluginHost, load_plugins
from .records import write_customer, write_interaction
from .results import EmailDraft, Metric, Reminder, ReportSection, Segmentation
from .schema import BASE_INTERACTION_TYPES, did_you_mean, time_zone
from .snapshot import Snapshot
from .templates import template_environment
from .yamlsource import ParsedFile, YamlMap

if TYPE_CHECKING:
    import jinja2


class App:
    def __init__(self, workspace: str | Path | None = None, today: dt.date | None = None,
                 verbose: bool = False, use_cache: bool = True,
                 parse_cache: ParseCache | None = None, one_shot: bool = False) -> None:
        self.workspace_option = workspace
        self._today = today
        self.verbose = verbose
        self.use_cache = use_cache
        self.parse_cache = parse_cache
        #: This process ends with the command (the ``crmkit`` command line).
        self.one_shot = one_shot
        #: Problems raised by plugin hooks during this run (after loading).
        self.problems: list[Diagnostic] = []

    @cached_property
    def root(self) -> Path:
        return find_workspace(self.workspace_option)

    @cached_property
    def _settings_file(self):
        return read_settings_data(self.root)

    @property
    def settings_file(self) -> ParsedFile:
        """``crmkit.yaml`` as parsed (before plugins load)."""
        return self._settings_file[0]

    @cached_property
    def host(self) -> PluginHost:
        """The loaded plugins; only installed ones when there is no workspace."""
        try:
            root = self.root
        except Exception:
            return load_plugins(None)
        return load_plugins(root, self._settings_file[1])

    @cached_property
    def workspace(self) -> Workspace:
        workspace = load_workspace(self.root, self.host, use_cache=self.use_cache,
                                   settings_file=self.settings_file,
                                   cache=self.parse_cache, today=self._today)
        if self.one_shot:
            # The records live as long as this process: keep the cyclic garbage
            # collector from walking 100,000s of them again and again while the
            # command computes (a long-running watch must not freeze anything).
            gc.freeze()
        return workspace

    def at(self, day: dt.date) -> App:
        """The same workspace and plugins as of another day (e.g. last week, to compare)."""
        if day == self._today:
            return self
        others = self.__dict__.setdefault("_others", {})
        if day not in others:
            others[day] = self.sharing(day, "workspace", "templates")
        return others[day]

    def sharing(self, day: dt.date | None, *loaded: str) -> App:
        """A new App for ``day`` with this one's plugins and settings file, and the
        ``loaded`` parts (``"workspace"``, ``"templates"``) already loaded by this one."""
        other = App(self.workspace_option, day, self.verbose, self.use_cache, self.parse_cache)
        for name in ("root", "_settings_file", "host", *loaded):
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other

    def use_workspace(self, workspace: Workspace) -> None:
        """Take ``workspace`` as loaded (``crmkit watch`` applies changes itself)."""
        self.__dict__["workspace"] = workspace

    @property
    def has_workspace(self) -> bool:
        """Whether the workspace is loaded (or given) already."""
        return "workspace" in self.__dict__

    @property
    def today(self) -> dt.date:
        """``--today``, else today's date in the workspace's time zone (read from
        ``crmkit.yaml`` alone: knowing the day must not cost loading every record)."""
        if self._today is None:
            # An unknown zone is reported by parse_settings, which uses UTC too.
            tz = time_zone(self.raw_setting("timezone", "UTC")) or time_zone("UTC")
            self._today = dt.datetime.now(tz).date()
        return self._today

    def raw_setting(self, key: str, default: str) -> str:
        """A text setting of ``crmkit.yaml`` as written, before the workspace is loaded."""
        data = self._settings_file[0].data
        value = data.get(key) if isinstance(data, YamlMap) else None
        return value.strip() if isinstance(value, str) and value.strip() else default

    @cached_property
    def snapshot(self) -> Snapshot:
        return Snapshot(self.workspace, self.today)

    def segments(self) -> Segmentation:
        return self._segments

    @cached_property
    def _segments(self) -> Segmentation:
        labels, problems = self.host.collect("crmkit_segments", snapshot=self.snapshot)
        self.problems.extend(problems)
        return Segmentation.combined(labels)

    def reminders(self) -> list[Reminder]:
        """All open reminders, sorted by due date, then customer id, then kind."""
        return self._reminders

    @cached_property
    def _reminders(self) -> list[Reminder]:
        found, problems = self.host.collect("crmkit_reminders", snapshot=self.snapshot,
                                            segments=self.segments())
        self.problems.extend(problems)
        reminders = self.snapshot.kept("crmkit.reminders", _sorted_reminders, found,
                                       update=_resorted)
        verdicts, problems = self.host.collect("crmkit_suppress_reminders", reminders=reminders,
                                               snapshot=self.snapshot, segments=self.segments())
        self.problems.extend(problems)
        reasons: dict[Reminder, str] = {}
        for verdict in verdicts:
            for reminder, reason in verdict.items():
                reasons.setdefault(reminder, reason)
        return list(self.snapshot.kept("crmkit.held_back", _held_back, reminders, reasons))

    @cached_property
    def templates(self) -> jinja2.Environment:
        """Jinja environment: workspace ``templates/``, then plugin folders and filters."""
        env, problems = template_environment(self.root, self.host)
        self.problems.extend(problems)
        return env

    def draft_email(self, reminder: Reminder) -> EmailDraft | None:
        """The first plugin's draft for ``reminder``, or ``None`` if no plugin drafts it."""
        draft, problems = self.host.first("crmkit_draft_email", reminder=reminder,
                                          snapshot=self.snapshot, segments=self.segments(),
                                          templates=self.templates)
        self.problems.extend(problems)
        return draft

    def report_sections(self, report: str) -> list[ReportSection]:
        """Every plugin's sections for ``report``, in ``order``, then by name (once per run:
        a report is rendered as HTML and as Markdown)."""
        kept = self.__dict__.setdefault("_sections", {})
        if report not in kept:
            kept[report] = self._collect_sections(report)
        return kept[report]

    def _collect_sections(self, report: str) -> list[ReportSection]:
        found, problems = self.host.collect(
            "crmkit_report_sections", report=report, snapshot=self.snapshot,
            segments=self.segments(), reminders=self.reminders())
        self.problems.extend(problems)
        return sorted(found, key=lambda s: (s.order, s.name))

    def require_customer(self, customer_id: str) -> Customer:
        """The customer, or a one-line error with a suggestion (for commands)."""
        customer = self.workspace.customers.get(customer_id)
        if customer is None:
            raise CrmkitError(f"unknown customer {customer_id!r}"
                              f"{did_you_mean(customer_id, self.workspace.customers)}; "
                              "see 'crmkit customers'")
        return customer

    def interaction_types(self) -> list[str]:
        """Every interaction type files may use: the base ones, crmkit.yaml's, plugins'."""
        extra, _ = self.host.collect("crmkit_interaction_types")
        return sorted({*BASE_INTERACTION_TYPES, *self.workspace.settings.interaction_types,
                       *map(str, extra)})

    def record_interaction(self, data: dict[str, Any], dry_run: bool = False) -> str:
        """Write a new interaction file (validated, atomic, never overwriting).

        ``data`` is what the file holds (``customer``, ``date``, ``type``, ...); empty
        values are left out. Returns the workspace-relative path. Raises
        :class:`~crmkit.CrmkitError` for invalid data; ``dry_run`` only checks.
        """
        rel, _ = write_interaction(self.workspace, dict(data), self.interaction_types(),
                                   dry_run=dry_run)
        return rel

    def record_customer(self, customer_id: str, data: dict[str, Any],
                        dry_run: bool = False) -> str:
        """Write ``customers/<customer_id>.yaml`` like :meth:`record_interaction`."""
        return write_customer(self.workspace, customer_id, dict(data), dry_run=dry_run)

    def build(self) -> list[Path]:
        """Let every plugin write its generated files (``crmkit_build``)."""
        written, problems = self.host.collect("crmkit_build", app=self)
        self.problems.extend(problems)
        return [Path(p) for p in written]

    def clear_caches(self) -> None:
        """Delete the parse cache and the kept outputs of read-only commands: after an
        erasure they would still hold copies of the erased data."""
        shutil.rmtree(self.root / CACHE_DIR, ignore_errors=True)

    def display_path(self, path: Path) -> str:
        """``path`` as users see it: relative to the workspace when it is inside it."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    def warn_about_problems(self) -> None:
        """For commands other than ``check``: say once that the workspace has errors, and
        print what plugin hooks reported during this run (on stderr)."""
        errors = self.workspace.errors + [p for p in self.problems if p.is_error]
        if errors:
            click.echo(f"warning: the workspace has {len(errors)} error(s); "
                       "run 'crmkit check' to see them", err=True)
        for problem in self.problems:
            click.echo(str(problem), err=True)

    def metrics(self, wanted: Iterable[str] | None = None) -> list[Metric]:
        """Every plugin's KPIs as of ``today``, or only the ones named in ``wanted``
        (plugins then skip the others' work, e.g. segmenting every customer);
        computed once per run."""
        key = None if wanted is None else frozenset(wanted)
        kept = self.__dict__.setdefault("_metrics", {})
        if key is not None and None in kept:
            return [m for m in kept[None] if m.name in key]
        later = self.__dict__.get("_metrics_later", {}).pop(key, None)
        if later is not None and key not in kept:
            kept[key], problems = later()
            self.problems.extend(problems)
        if key not in kept:
            found, problems = self.host.collect(
                "crmkit_metrics", snapshot=self.snapshot, wanted=key,
                segments=self.segments() if key is None else Segmentation.deferred(self.segments))
            self.problems.extend(problems)
            kept[key] = found if key is None else [m for m in found if m.name in key]
        return kept[key]

    def metrics_in_background(self, wanted: Iterable[str] | None = None) -> None:
        """Start computing :meth:`metrics` (``wanted``) in a forked process, to run while
        this one does other work; the later ``metrics(wanted)`` call takes the result.
        A one-off report starts last week's figures this way.  Where forking is not
        possible or not safe (not Linux, one core, threads), in ``crmkit watch`` (the
        kept values make them cheap) and before the workspace is loaded, nothing
        happens and ``metrics`` computes them when asked."""
        key = None if wanted is None else frozenset(wanted)
        pending = self.__dict__.setdefault("_metrics_later", {})
        if key in self.__dict__.get("_metrics", {}) or key in pending \
                or not self.has_workspace or self.workspace.memo.active:
            return  # it would load everything again; or in watch, kept values are cheaper
        before = len(self.problems)

        def compute() -> tuple[list[Metric], list[Diagnostic]]:
            pending.pop(key, None)  # computed here, or afresh if the process failed
            return self.metrics(wanted), self.problems[before:]

        later = parallel.in_background(compute)
        if later is not None:
            pending[key] = later


_ORDER = operator.attrgetter("due", "customer", "kind", "title")


class _Ordered(list):  # type: ignore[type-arg]
    """Reminders in order, with their sort keys and whether two of them sort equal."""

    keys: list[tuple[Any, ...]]
    ties: bool


def _sorted_reminders(found: list[Reminder]) -> list[Reminder]:
    keys = list(map(_ORDER, found))
    order = sorted(range(len(found)), key=keys.__getitem__)  # stable, as sorted(found)
    ordered = _Ordered(found[i] for i in order)
    ordered.keys = [keys[i] for i in order]
    ordered.ties = any(a == b for a, b in itertools.pairwise(ordered.keys))
    return ordered


def _same_run(a: list[Any], b: list[Any], limit: int | None = None) -> int:
    """How many items at the start of ``a`` and ``b`` are the same objects (at most
    ``limit``)."""
    differs = itertools.compress(itertools.count(), map(operator.is_not, a, b))
    run = next(differs, min(len(a), len(b)))
    return run if limit is None else min(run, limit)


def _resorted(before: tuple[list[Reminder]], ordered: list[Reminder], found: list[Reminder]
              ) -> list[Reminder] | None:
    """:func:`_sorted_reminders` of ``found`` from the order of the reminders found
    before: the ones gone taken out, the new ones put in their place.  Only where no
    two reminders sort equal (the order of equals is the order found): the same list."""
    if not isinstance(ordered, _Ordered) or ordered.ties:
        return None
    (previous,) = before
    # a plugin's reminders come customer by customer, so what changed is one stretch
    # between the same objects at the start and at the end (found in C, by identity)
    head = _same_run(previous, found)
    tail = _same_run(previous[::-1], found[::-1], min(len(previous), len(found)) - head)
    was_between = previous[head:len(previous) - tail]
    now_between = found[head:len(found) - tail]
    if len(was_between) + len(now_between) > len(found) // 8 + 8:
        return None  # many changed (a new day's rules): a sort costs less
    was = {id(r) for r in was_between}
    now = {id(r) for r in now_between}
    added = [r for r in now_between if id(r) not in was]
    gone = [r for r in was_between if id(r) not in now]
    if len(now) != len(now_between):
        return None  # the same object twice
    result = _Ordered(ordered)
    keys = list(ordered.keys)
    for reminder in gone:
        i = bisect.bisect_left(keys, _ORDER(reminder))
        if i == len(keys) or result[i] is not reminder:
            return None
        del result[i], keys[i]
    for reminder in added:
        key = _ORDER(reminder)
        i = bisect.bisect_left(keys, key)
        if i < len(keys) and keys[i] == key:
            return None
        result.insert(i, reminder)
        keys.insert(i, key)
    result.keys, result.ties = keys, False
    return result


def _held_back(reminders: list[Reminder], reasons: dict[Reminder, str]) -> list[Reminder]:
    held = {r.customer for r in reasons}  # hashing a reminder costs: only theirs
    return [replace(r, suppressed=reasons[r])
            if r.customer in held and r in reasons and not r.suppressed else r
            for r in reminders]


pass_app = click.make_pass_decorator(App)
