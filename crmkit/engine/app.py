"""One crmkit run: the workspace, its plugins and the day it is computed for.

Commands (built-in and from plugins) receive the :class:`App` with
``@crmkit.pass_app`` and ask it for what they need; everything is loaded on
first use, so ``crmkit --help`` and ``crmkit init`` never touch a workspace.
"""

from __future__ import annotations

import bisect
import contextlib
import datetime as dt
import gc
import json
import os
import shutil
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ..incremental import replay, state
from ..incremental.cache import STATE_FILE, ParseCache
from ..incremental.memo import Memo
from ..incremental.scan import Listing
from ..incremental.signing import CACHE_DIR
from ..loading.atomic import replace as replace_file
from ..loading.atomic import touched
from ..loading.loader import (
    RECORD_FOLDERS,
    SettingsFiles,
    find_workspace,
    is_not_read,
    load_workspace,
    load_workspace_files,
    preliminary_settings,
    read_settings_data,
)
from ..loading.schema import BASE_INTERACTION_TYPES, did_you_mean, time_zone
from ..loading.writing import write_customer, write_interaction
from ..loading.yamlsource import YamlMap
from ..model import CrmkitError, Customer, Diagnostic, Workspace
from ..model.workspace import OUTPUT_FORBIDDEN
from .evaluate import Engine, Labels
from .i18n import cli_gettext as _
from .i18n import cli_ngettext as ngettext
from .plugins import (
    PluginHost,
    add_workspace_plugins,
    is_trusted,
    load_plugins,
    workspace_plugin_files,
)
from .registry import Registry, collect
from .rules import Importer, ReminderKind, ReportSection
from .templates import render_sections, template_environment
from .values import EmailDraft, MetricValue, Reminder
from .views import CustomerView

if TYPE_CHECKING:
    import jinja2


#: From this many customers on, a one-off command keeps its state, and computes the
#: rest of the day's rules, in the background when it is done (:meth:`App.save_state`).
BACKGROUND_MIN = 500
BACKGROUND_LOCK = CACHE_DIR / "background.lock"
#: The files written to a path named with ``--out`` (path: inode, size, mtime): those
#: an export may replace again without ``--force``.
OUTPUTS_FILE = CACHE_DIR / "outputs.json"
#: From this many pages on, a one-off build renders them on every core
#: (:meth:`App.write_pages`), in chunks of at least :data:`PAGES_PER_CHUNK` and about an
#: eighth of the pages: a page takes about a millisecond, a worker's start much less than
#: a hundred of them.
PARALLEL_PAGES = 200
PAGES_PER_CHUNK = 50


def _written_outputs(root: Path) -> dict[str, Any]:
    try:
        kept = json.loads((root / OUTPUTS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return kept if isinstance(kept, dict) else {}


#: Rows of reminders kept for :meth:`App.reminder_rows` (of all its callers) before
#: they are made afresh: old reminders' rows are dropped then.
KEEP_ROWS = 100_000


def _due(reminder: Reminder) -> dt.date:
    return reminder.due


def _prune(folder: Path, keep: set[str], mark: bytes) -> list[Path]:
    """:meth:`App.prune_pages` of one folder, now."""
    removed: list[Path] = []
    if folder.is_symlink():  # never prune through a link (the writes refuse it too)
        return removed
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if entry.name in keep or not entry.name.endswith(".html") \
                or not entry.is_file(follow_symlinks=False):
            continue
        try:
            with open(entry.path, "rb") as handle:
                head = handle.read(1024)
            if mark in head:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            continue
    return removed


class App:
    """The current run, as commands see it."""

    def __init__(self, workspace: str | Path | None = None, today: dt.date | None = None,
                 verbose: bool = False, use_cache: bool = True, *,
                 parse_cache: ParseCache | None = None, memo: Memo | None = None,
                 one_shot: bool = False, workspace_plugins: bool = True) -> None:
        self.workspace_option = workspace
        #: Whether the workspace's own ``plugins/*.py`` may run (``--no-workspace-plugins``
        #: says no; else they run if the workspace is trusted, see :attr:`host`).
        self.workspace_plugins = workspace_plugins
        self._today = today
        self.verbose = verbose
        self.use_cache = use_cache
        self._parse_cache = parse_cache
        self._memo = memo or Memo()
        #: This process ends with the command (the ``crmkit`` command line).
        self._one_shot = one_shot
        #: Problems raised by plugins' rules and hooks during this run (after loading).
        self.problems: list[Diagnostic] = []
        #: Files of the output folder this run changed: written, not left alone for
        #: already holding their text (``crmkit watch`` says how many).
        self.outputs_changed = 0
        #: Those of them already printed (:meth:`report_problems`).
        self._printed: set[Diagnostic] = set()
        #: ``crmkit watch`` sets a list here: the pages a rebuild leaves alone are then
        #: checked (one ``stat`` each) by :meth:`restore_pages` after the rebuild is
        #: reported, not before (0.05 s of every rebuild at 10,000 customers).
        self.page_checks: list[Callable[[], int]] | None = None
        #: What the replay key's walk saw of the record folders, if it ran.
        self._listing: Listing | None = None
        #: What this run leaves for the next (:mod:`crmkit.incremental.state`), and the
        #: day for which every rule was computed (see :meth:`save_state`).
        self._pending: state.Pending | None = None
        self._warmed: dt.date | None = None

    # --- what is loaded -------------------------------------------------------------

    @cached_property
    def root(self) -> Path:
        return find_workspace(self.workspace_option)

    @cached_property
    def _settings_file(self) -> tuple[SettingsFiles, list[str]]:
        return read_settings_data(self.root)

    @cached_property
    def base_host(self) -> PluginHost:
        """crmkit's own and the installed plugins, none of the workspace's code (``crmkit
        --help``, ``init``); :attr:`host` adds the workspace's plugins to it."""
        try:
            root = self.root
        except Exception:
            return load_plugins(None)
        return load_plugins(root, self._settings_file[1], workspace=False)

    @cached_property
    def host(self) -> PluginHost:
        """The loaded plugins: :attr:`base_host` and the workspace's ``plugins/*.py`` if
        it is trusted (:func:`~crmkit.engine.plugins.is_trusted`) and not switched off
        with ``--no-workspace-plugins``.  An untrusted workspace with plugins gets one
        warning line saying how to trust it."""
        host = self.base_host
        root = host.root
        if root is None:
            return host
        files = workspace_plugin_files(root) if self.workspace_plugins else []
        load = self.workspace_plugins and (not files or is_trusted(root))
        if files and not load:
            import shlex

            click.echo(_("warning: not running this workspace's plugins (%(files)s): "
                         "%(folder)s is not trusted; if you trust its code, run "
                         "'%(command)s'") % {
                "files": ", ".join(p.name for p in files), "folder": root,
                "command": f"crmkit trust {shlex.quote(str(root))}"}, err=True)
        add_workspace_plugins(host, root, self._settings_file[1], load=load)
        return host

    @property
    def _plugins_mark(self) -> str:
        """Which workspace plugins run (the state kept between runs depends on it)."""
        return ",".join(p.origin for p in self.host.plugins
                        if p.kind == "workspace" and not p.disabled)

    @cached_property
    def registry(self) -> Registry:
        """Everything the plugins registered: labels, reminder kinds, metrics, ..."""
        try:
            settings = preliminary_settings(self._settings_file[0])
        except CrmkitError:
            from ..model import Settings

            settings = Settings(business="")
        return collect(self.host, settings)

    @cached_property
    def workspace(self) -> Workspace:
        if self._one_shot and self.use_cache and self._parse_cache is None:
            workspace = self._load_from_state()
        else:
            workspace = load_workspace(self.root, self.host, use_cache=self.use_cache,
                                       settings_file=self._settings_file[0],
                                       cache=self._parse_cache, today=self._today,
                                       registry=self.registry, memo=self._memo,
                                       listing=self._listing)
        if self._one_shot:
            # The records live as long as this process: keep the cyclic garbage
            # collector from walking 100,000s of them again and again while the
            # command computes (a long-running watch must not freeze anything).
            gc.freeze()
        return workspace

    def _load_from_state(self) -> Workspace:
        """A one-off run starts from what the last run kept and keeps what it computes
        (:mod:`crmkit.incremental.state`); without a usable state, a full load."""
        kept = state.read(self.root, self._plugins_mark)
        if kept.files is not None:
            memo = kept.memo or Memo(active=True)
            found = state.load(self.root, kept.files, self.host, self._settings_file[0],
                               self._today, self.registry, memo, self._listing)
            if found is not None:
                self._memo = memo
                self._warmed = kept.warmed if kept.memo is not None else None
                workspace, self._pending = found
                return workspace
        self._memo = Memo(active=True)
        cache = ParseCache(self.root, kept=kept.files)
        workspace, _ = load_workspace_files(
            self.root, self.host, settings_file=self._settings_file[0], cache=cache,
            today=self._today, registry=self.registry, memo=self._memo, listing=self._listing)
        if cache.files is not None:
            self._pending = state.Pending(cache.files, cache.store)
        return workspace

    def forget_state(self) -> None:
        """Remove what earlier runs kept (:mod:`crmkit.incremental.state`)."""
        self._pending = None
        with contextlib.suppress(OSError):
            (self.root / STATE_FILE).unlink()

    def save_state(self) -> None:
        """Keep what this run loaded and computed for the next one (at the end of a
        one-off command; never raises: the state is only ever a shortcut).

        In a large workspace this happens in a process of its own once the command is
        done (a second at 10,000 customers), which then also computes the rest of the
        day's rules, so that the next command (``show`` after ``check``, the first
        report of the day) finds them.  Not with ``CRMKIT_BACKGROUND=0``, and not in CI
        (``$CI``: the state is written before the command ends, nothing more computed)."""
        pending, self._pending = self._pending, None
        if pending is None:
            return
        if self.verbose:
            click.echo(self._memo.summary(), err=True)
        import os

        from ..incremental import parallel

        memo, root, today, mark = self._memo, self.root, self.today, self._plugins_mark
        big = len(self.workspace.customers) >= int(os.environ.get(
            "CRMKIT_BACKGROUND_MIN", BACKGROUND_MIN))
        warm = self._warmed != today
        if big and os.environ.get("CRMKIT_BACKGROUND") != "0" and not os.environ.get("CI"):
            def in_background() -> None:
                if not state.write(root, pending, memo, self._warmed, mark) or not warm:
                    return
                self._compute_everything()
                state.write(root, pending, memo, today, mark)

            if parallel.detach(in_background, root / BACKGROUND_LOCK):
                return
        try:
            state.write(root, pending, memo, self._warmed, mark)
        except Exception:
            if self.verbose:
                import traceback

                click.echo("crmkit: could not keep the state for the next run:\n"
                           + traceback.format_exc(), err=True)

    def _compute_everything(self) -> None:
        """Every label, reminder and metric for today (each one's failure is its own)."""
        engine = self._engine
        for name in self.registry.labels:
            with contextlib.suppress(Exception):
                engine.column(name)
        with contextlib.suppress(Exception):
            engine.reminders()
        for name in self.registry.metrics:
            with contextlib.suppress(Exception):
                engine.metric(name)

    @property
    def today(self) -> dt.date:
        """``--today``, else today's date in the workspace's time zone (read from
        ``crmkit.yaml`` alone: knowing the day must not cost loading every record)."""
        if self._today is None:
            tz = time_zone(self._raw_setting("timezone", "UTC")) or time_zone("UTC")
            self._today = dt.datetime.now(tz).date()
        return self._today

    def _raw_setting(self, key: str, default: str) -> str:
        """A text setting of ``crmkit.yaml`` as written, before the workspace is loaded."""
        data = self._settings_file[0].data
        value = data.get(key) if isinstance(data, YamlMap) else None
        return value.strip() if isinstance(value, str) and value.strip() else default

    @cached_property
    def _engine(self) -> Engine:
        engine = Engine(self.workspace, self.registry, self.today, self._memo)
        engine.problems = self.problems
        return engine

    def at(self, day: dt.date) -> App:
        """The same workspace and plugins as of another day (to compare with last week)."""
        if day == self._today:
            return self
        self.workspace  # noqa: B018  (loaded first: the other day shares it and its memo)
        others = self.__dict__.setdefault("_others", {})
        if day not in others:
            other = self._sharing(day, "workspace", "templates")
            others[day] = other
        return others[day]

    def _sharing(self, day: dt.date | None, *loaded: str) -> App:
        """A new App for ``day`` with this one's plugins, registry and settings, and the
        ``loaded`` parts (``"workspace"``, ``"templates"``) already loaded by this one."""
        other = App(self.workspace_option, day, self.verbose, self.use_cache,
                    parse_cache=self._parse_cache, memo=self._memo,
                    workspace_plugins=self.workspace_plugins)
        other.problems, other._printed = self.problems, self._printed
        for name in ("root", "_settings_file", "base_host", "host", "registry", *loaded):
            if name in self.__dict__:
                other.__dict__[name] = self.__dict__[name]
        return other

    # --- customers, labels, reminders, metrics --------------------------------------

    def customer(self, customer_id: str) -> CustomerView:
        """One customer as of ``today``, every label readable; a one-line error with a
        suggestion if there is no such customer."""
        return self._engine.view(self.require_customer(customer_id))

    def customers(self, *segments: str) -> list[CustomerView]:
        """Every customer as of ``today``, by id; with ``segments``, those in all of them
        (a label's name, ``NAME=VALUE`` or any expression of the rule language)."""
        from .expressions import ExpressionError, compile_expression

        selectors = []
        for text in segments:
            try:
                selectors.append(compile_expression(text, self.registry.names()))
            except ExpressionError as exc:
                raise CrmkitError(_("segment %(segment)s: %(error)s (column %(column)s)") % {
                    "segment": repr(text), "error": exc.message, "column": exc.column}
                    ) from None
        engine = self._engine
        views = [engine.view(c) for c in self.workspace.customers.values()]
        if selectors:
            views = [v for v in views if all(s(v.variables) for s in selectors)]
        return views

    def importers(self) -> dict[str, Importer]:
        """The registered importers by name (``crmkit import FORMAT``)."""
        return dict(self.registry.importers)

    def labels(self) -> Labels:
        """Every customer's labels: ``labels()[id]`` is ``{name: value, group: {...}}``,
        ``labels().column(name)`` is ``{id: value}``."""
        return self._engine.labels()

    def reminders(self, suppressed: bool = True, due_from: dt.date | None = None,
                  due_until: dt.date | None = None) -> list[Reminder]:
        """All open reminders of every enabled kind, by due date, customer, kind and
        title (held-back ones included, with ``suppressed`` saying why; with
        ``suppressed=False`` only those shown by default: not snoozed, expired or held
        back by the frequency cap); with ``due_from`` or ``due_until``, only those due
        from that day or up to that day (both included: a slice of the list, found by
        bisection).  Without them the list is the run's own, shared by every caller:
        copy it before changing it."""
        found = self._engine.reminders() if suppressed else self._engine.shown_reminders()
        if due_from is None and due_until is None:
            return found
        start = 0 if due_from is None else bisect.bisect_left(found, due_from, key=_due)
        end = len(found) if due_until is None else bisect.bisect_right(found, due_until,
                                                                       key=_due)
        return found[start:end]

    def reminders_by_customer(self, suppressed: bool = True
                              ) -> Mapping[str, tuple[Reminder, ...]]:
        """Every customer's open reminders (an empty tuple for none), each in the order of
        :meth:`reminders`, with ``suppressed=False`` only those shown by default.  A
        customer's entry is the very same tuple while their reminders are unchanged, so
        a page per customer compares them at almost no cost in ``crmkit watch``."""
        return self._engine.reminders_by_customer(suppressed)

    def reminder_rows(self, reminders: Iterable[Reminder], label: str | None = None,
                      default: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
        """Each reminder as a row for a table, a plain dict: its ``due``, ``customer``,
        ``kind``, ``title``, ``reason``, ``channel``, ``priority``, ``suppressed`` and
        ``id``, then ``default``, then its customer's value of ``label``, a label whose
        values are dicts (the site's ``_contact``: name, phone and links).  A row is the
        very same dict while its reminder and its customer's value are the same, so
        ``crmkit watch`` renders again only the rows a change touched of thousands of
        overdue reminders: do not change the rows."""
        column = self._engine.column(label) if label is not None else {}
        base = dict(default or {})
        kept = self._memo.state(("crmkit.reminder rows", label), self.today, dict)
        if kept.get("default") != base or len(kept.get("rows", ())) > KEEP_ROWS:
            kept.update(default=base, rows={})
        rows: dict[int, tuple[Reminder, Any, dict[str, Any]]] = kept["rows"]
        get = rows.get
        made = []
        for r in reminders:
            value = column.get(r.customer)
            found = get(id(r))
            if found is None or found[0] is not r or found[1] is not value:
                row = {"due": r.due, "customer": r.customer, "kind": r.kind, "title": r.title,
                       "reason": r.reason, "channel": r.channel, "priority": r.priority,
                       "suppressed": r.suppressed, "id": r.id, **base}
                if isinstance(value, Mapping):
                    row.update(value)
                found = rows[id(r)] = (r, value, row)  # held: no other object gets its id
            made.append(found[2])
        return made

    def calendar(self, reminders: list[Reminder], key: str = "calendar") -> bytes:
        """``reminders`` as an iCalendar feed (RFC 5545) for a calendar subscription;
        ``key`` names the feed (one per file or output)."""
        from .calendar import to_ics
        from .i18n import translations

        settings = self.workspace.settings
        t = translations(settings.locale)
        name = t.gettext("%(business)s: reminders") % {"business": settings.business}
        categories = {kind.name: t.gettext(kind.title) for kind in self.kinds() if kind.title}
        return to_ics(reminders, self.today, name, key, settings.locale, categories,
                      one_shot=self._one_shot)

    def plugin_of(self, registered: Any) -> str:
        """The name of the plugin that registered a label, kind, metric, ..."""
        return self.registry.owner(registered)

    def kinds(self) -> list[ReminderKind]:
        """Every registered reminder kind (``enabled_kinds()`` for the ones switched on)."""
        return list(self.registry.kinds.values())

    def enabled_kinds(self) -> list[ReminderKind]:
        return self._engine.kinds()

    def metric(self, name: str) -> MetricValue:
        """One metric as of ``today``."""
        if name not in self.registry.metrics:
            raise CrmkitError(_("unknown metric %(name)s") % {"name": repr(name)}
                              + did_you_mean(name, self.registry.metrics))
        return self._engine.metric(name)

    def metrics(self, names: list[str] | tuple[str, ...] | None = None
                ) -> dict[str, MetricValue]:
        """The metrics named (default: all but the plugins' helpers, whose names start
        with ``_``), computed once per run."""
        chosen = [n for n in self.registry.metrics if not n.startswith("_")] \
            if names is None else [n for n in names if n in self.registry.metrics]
        return {name: self._engine.metric(name) for name in chosen}

    # --- templates, drafts, reports -------------------------------------------------

    @cached_property
    def templates(self) -> jinja2.Environment:
        """Jinja environment: workspace ``templates/``, then plugin folders and filters."""
        env, problems = template_environment(self.root, self.host)
        self.problems.extend(problems)
        return env

    def draft_email(self, reminder: Reminder) -> EmailDraft | None:
        """The first plugin's draft for ``reminder``, or ``None`` if no plugin drafts it."""
        customer = self.workspace.customers.get(reminder.customer)
        if customer is None:
            return None
        kind = self.registry.kinds.get(reminder.kind)
        if kind is not None and reminder.template:  # its own template (a playbook step's)
            kind = replace(kind, template=reminder.template)
        draft, problems = self.host.first("crmkit_draft_email", reminder=reminder, kind=kind,
                                          customer=self._engine.view(customer),
                                          templates=self.templates)
        self.problems.extend(problems)
        return draft

    def report_sections(self, report: str) -> list[ReportSection]:
        """The sections registered for ``report``, in order."""
        return self.registry.sections_of(report)

    def render_sections(self, report: str, fmt: str, variables: dict[str, Any]
                        ) -> list[dict[str, Any]]:
        """Each section of ``report`` rendered as ``fmt`` (``name``, ``title``, ``body``)."""
        return render_sections(self, report, fmt, variables)

    def render_page(self, template: str, context: dict[str, Any], key: str) -> str:
        """The template named ``template`` rendered with ``context`` alone (it reads
        nothing else: give it ``locale`` and whatever it shows), one text per ``key``
        (a customer's id).  In ``crmkit watch`` the core returns the last text for
        ``key`` while the template and the context are equal, so a change renders again
        only the pages whose data it touched; :meth:`write_output` leaves a page whose
        file already holds that text alone."""
        from ..incremental.render import render_pure

        found = self._page_template(template)
        if self._one_shot:  # nothing renders it again in this process: keep nothing
            return str(found.render(context))
        return render_pure(found, context, key)

    def _page_template(self, template: str) -> Any:
        """The template named ``template``, looked up once per run, not once per page."""
        pages = self.__dict__.setdefault("_page_templates", {})
        found = pages.get(template)
        if found is None:
            found = pages[template] = self.templates.get_template(template)
        return found

    def write_pages(self, template: str, pages: Iterable[tuple[str | Path, dict[str, Any]]]
                    ) -> list[Path]:
        """Each ``(path, context)`` of ``pages`` rendered with ``template`` and written
        there: :meth:`render_page` and :meth:`write_output` for many pages of one
        template at once (a page per customer), each page's path its key.  A one-off
        ``crmkit build`` renders and writes them on every core; ``crmkit watch`` renders
        again only the pages whose context changed.  Returns the paths, in order."""
        targets = [(self._output_path(path), context) for path, context in pages]
        # the folders by their names (Path.parent for 10,000 pages took 0.15 s in a
        # profiled watch rebuild)
        for folder in {os.path.dirname(target) for target, _context in targets}:
            self._check_output_folder(Path(folder))  # raised here, not in a worker
        if self._one_shot and self._write_pages_in_parallel(template, targets):
            return [target for target, _context in targets]
        for target, context in targets:
            self._replace_output(target, self.render_page(template, context, str(target)))
        return [target for target, _context in targets]

    def write_customer_pages(self, template: str, folder: str | Path,
                             page: Callable[[CustomerView, dict[str, Any]], Mapping[str, Any]],
                             reads: Mapping[str, Mapping[str, Any]] | None = None,
                             common: Mapping[str, Any] | None = None) -> list[Path]:
        """A page per customer, ``<folder>/<id>.html``: ``template`` rendered with
        ``common`` and what ``page(view, values)`` returns, where ``values`` holds the
        customer's entry in each column of ``reads`` (``{name: {customer_id: value}}``,
        such as ``labels().column("abc")``; ``None`` where the customer has none).

        ``page`` reads nothing but the view and ``values``: so ``crmkit watch`` makes
        again only the pages of customers whose data changed or whose value in a
        column differs (and all of them when ``common`` or the template changed), and
        of the others only those whose file is not as it left it (one ``stat`` each:
        deleted, or written by a ``crmkit build`` meanwhile).  A one-off build writes
        them on every core (:meth:`write_pages`).  Returns the paths of all pages, by
        customer id."""
        columns = dict(reads or {})
        shared = dict(common or {})
        base = self._output_path(folder)
        customers = self.workspace.customers
        ids = list(customers)
        found = self._page_template(template)
        key = ("customer pages", str(base), template)
        memo = self._memo
        inputs = (tuple(columns.values()), (found, tuple(columns), shared))
        todo = None if self._one_shot else memo.outputs_to_make(key, self.today, ids, *inputs)
        view = self._engine.view

        def context(cid: str) -> dict[str, Any]:
            values = {name: column.get(cid) for name, column in columns.items()}
            return {**shared, **page(view(customers[cid]), values)}

        def write_page(cid: str) -> None:  # rendered here, not kept by render_page
            self._replace_output(Path(base, f"{cid}.html"), str(found.render(context(cid))))

        def restore() -> int:
            """The pages not as this process left them (deleted, or written by somebody
            else) written again; how many."""
            stale = [ids[i] for i in touched(names)]
            for cid in stale:
                write_page(cid)
            return len(stale)

        kept = memo.state(("page paths", key), None, dict)  # one list while ids stay
        if kept.get("ids") != ids:
            text = str(base)
            names = [os.path.join(text, f"{cid}.html") for cid in ids]
            kept.update(ids=ids, names=names, paths=[Path(name) for name in names])
        paths: list[Path] = kept["paths"]
        names: list[str] = kept["names"]
        if todo is not None:  # and the pages somebody else deleted or wrote (a build)
            if self.page_checks is None:
                todo.update(ids[i] for i in touched(names))
            else:
                self.page_checks.append(restore)
        if self._one_shot:
            self.write_pages(template, ((path, context(cid))
                                        for cid, path in zip(ids, paths, strict=True)))
        else:  # only changed pages render again
            self._check_output_folder(base)
            for cid in ids if todo is None else sorted(todo.intersection(customers)):
                write_page(cid)
        memo.outputs_made(key, self.today, ids, *inputs)
        return list(paths)

    def prune_pages(self, folder: str | Path, keep: Iterable[str], mark: bytes) -> list[Path]:
        """Remove the pages in ``folder`` (in the output folder) that crmkit wrote and that
        are no longer made: regular ``*.html`` files (no links, no folders) not named in
        ``keep`` whose first kilobyte holds ``mark`` (the generator line of the site's
        pages).  Nothing else is touched, and nothing through a link.  Returns what it
        removed.  In ``crmkit watch``, while ``keep`` is what it was at the last call, a
        page nobody makes any more can only have appeared behind watch's back: the
        folder is then looked at right after the rebuild's line (with the pages deleted
        behind its back, :meth:`restore_pages`), not before it."""
        base = self._output_path(folder)
        names = keep if isinstance(keep, set | frozenset) else set(keep)
        if self.page_checks is not None and not self._one_shot:
            kept = self._memo.state(("pruned pages", str(base)), None, dict)
            if kept.get("keep") == names and kept.get("mark") == mark:

                def later() -> int:
                    _prune(base, names, mark)
                    return 0  # nothing written again

                self.page_checks.append(later)
                return []
            kept.update(keep=names, mark=mark)
        return _prune(base, names, mark)

    def restore_pages(self) -> int:
        """Run the page checks :attr:`page_checks` collected during :meth:`build`:
        the customer pages deleted or changed behind the back of ``crmkit watch`` are
        written again.  Returns how many."""
        checks, self.page_checks = self.page_checks or [], []
        return sum(check() for check in checks)

    def _write_pages_in_parallel(self, template: str,
                                 targets: list[tuple[Path, dict[str, Any]]]) -> bool:
        """Render and write ``targets`` in forked workers; ``False`` where that is not
        possible or not worth it, or a worker failed (the caller then writes them all
        itself, and so raises the error as it would alone)."""
        from ..incremental import parallel

        found = self._page_template(template)  # loaded before the fork

        def write(chunk: Sequence[tuple[Path, dict[str, Any]]]) -> tuple[int, int]:
            changed = sum(replace_file(target, found.render(context), durable=False,
                                       public=True)
                          for target, context in chunk)
            return len(chunk), changed

        done = parallel.map_all(write, targets, min_items=PARALLEL_PAGES,
                                chunk=max(PAGES_PER_CHUNK, len(targets) // 8))
        if done is None or sum(pages for pages, _changed in done) != len(targets):
            return False
        self.outputs_changed += sum(changed for _pages, changed in done)
        return True

    def _output_path(self, path: str | Path) -> Path:
        target = path if isinstance(path, Path) else Path(path)
        return target if target.is_absolute() else self.workspace.output_dir / target

    # --- records and files ----------------------------------------------------------

    def require_customer(self, customer_id: str) -> Customer:
        """The customer, or a one-line error with a suggestion (for commands)."""
        customer = self.workspace.customers.get(customer_id)
        if customer is None:
            merged = next((c.id for c in self.workspace.customers.values()
                           if customer_id in c.aliases), None)
            if merged is not None:
                raise CrmkitError(_("%(id)s was merged into %(into)s (its 'aliases'): use "
                                    "%(into)s") % {"id": repr(customer_id),
                                                    "into": repr(merged)})
            names = {f"{customer_id}.yaml", f"{customer_id}.yml"}
            broken = next((d for d in self.workspace.errors if d.location is not None
                           and d.location.path.startswith("customers/")
                           and d.location.path.rsplit("/", 1)[-1] in names), None)
            if broken is not None:  # there, but it does not load (a merge conflict, ...)
                raise CrmkitError(_("customer %(id)s does not load: %(error)s") % {
                    "id": repr(customer_id), "error": broken})
            raise CrmkitError(_("unknown customer %(id)s") % {"id": repr(customer_id)}
                              + did_you_mean(customer_id, self.workspace.customers) + "; "
                              + _("see '%(command)s'") % {"command": "crmkit customers"})
        return customer

    @cached_property
    def user(self) -> str:
        """Who runs this command, for the records it writes (``by:``): git's
        ``user.name`` in the workspace, else ``$CRMKIT_USER``, else the login name."""
        import getpass
        import subprocess

        name = os.environ.get("CRMKIT_USER", "").strip()
        if name:
            return name
        try:
            found = subprocess.run(["git", "config", "user.name"], cwd=self.root,
                                   capture_output=True, text=True, timeout=5)
            name = found.stdout.strip() if found.returncode == 0 else ""
        except (OSError, subprocess.SubprocessError):
            name = ""
        if not name:
            try:
                name = getpass.getuser()
            except (OSError, KeyError):
                name = "unknown"
        return " ".join(name.split())[:100]

    def owned_by(self, owner: str | None = None, mine: bool = False) -> frozenset[str] | None:
        """The ids of the customers ``owner`` looks after (a team member's name or email,
        docs/team.md), or with ``mine`` those of :attr:`user`; ``None`` when neither is
        asked for.  A name that is not in the team (or, without a team, no customer's
        owner) is a :class:`~crmkit.CrmkitError`, never an empty list."""
        if owner and mine:
            raise CrmkitError(_("use either %(owner)s or %(mine)s, not both") % {
                "owner": "--owner", "mine": "--mine"})
        if not owner and not mine:
            return None
        who = owner or self.user
        me = (_("you are %(who)s (git config user.name, or $CRMKIT_USER), who is")
              if mine else _("--owner %(who)s is")) % {"who": repr(who)}
        settings = self.workspace.settings
        customers = self.workspace.customers.values()
        if settings.team:
            member = settings.member(who)
            if member is None:
                names = [m.name for m in settings.team]
                hint = did_you_mean(who.casefold(), {n.casefold(): n for n in names})
                for name in names:  # the suggestion as the team writes it
                    hint = hint.replace(repr(name.casefold()), repr(name))
                raise CrmkitError(_("%(who)s not in the team%(hint)s; the team (crmkit.yaml): "
                                    "%(names)s") % {"who": me, "hint": hint,
                                                     "names": ", ".join(names)})
            return frozenset(c.id for c in customers
                             if c.owner and settings.member(c.owner) == member)
        owners = {c.owner for c in customers if c.owner}
        key = " ".join(who.split()).casefold()
        found = frozenset(c.id for c in customers if c.owner and c.owner.casefold() == key)
        if not found:
            raise CrmkitError(
                _("%(who)s no customer's owner") % {"who": me} + did_you_mean(who, owners)
                + ("; " + _("owners: %(names)s") % {"names": ", ".join(sorted(owners))}
                   if owners else "")
                + " " + _("(list the team in crmkit.yaml: docs/team.md)"))
        return found

    def interaction_types(self) -> list[str]:
        """Every interaction type files may use: the base ones, crmkit.yaml's, plugins'."""
        return sorted({*BASE_INTERACTION_TYPES, *self.workspace.settings.interaction_types,
                       *self.registry.interaction_types})

    def record_interaction(self, data: dict[str, Any], dry_run: bool = False,
                           now: bool = False) -> str:
        """Write a new interaction file (validated, atomic, never overwriting).

        ``data`` is what the file holds (``customer``, ``date``, ``type``, ...); empty
        values are left out. Returns the workspace-relative path. Raises
        :class:`~crmkit.CrmkitError` for invalid data; ``dry_run`` only checks.
        ``now``: it happens as it is written (a call just logged, an email just
        sent): dated today, it gets the time too, which orders it among the day's
        records (files of one day sort by name, not by when they were written).
        """
        data = dict(data)
        stamped = now and self._stamp(data)
        # the file name's suffix is derived from the text and who writes it (two clones
        # never pick one name for two records): a time to the microsecond already
        # tells two records apart, so only a record without one asks for the user
        author = str(data.get("by") or ("" if stamped else self.user))
        rel, _ = write_interaction(self.workspace, data, self.interaction_types(),
                                   dry_run=dry_run, author=author)
        return rel

    def _stamp(self, data: dict[str, Any]) -> bool:
        day = data.get("date")
        if isinstance(day, str):
            with contextlib.suppress(ValueError):
                day = dt.date.fromisoformat(day)
        tz = time_zone(self.workspace.settings.timezone) or dt.UTC
        moment = dt.datetime.now(tz)  # to the microsecond: two records in one second
        if day in (None, moment.date()) and not isinstance(day, dt.datetime) \
                and self.today == moment.date():
            data["date"] = moment
            return True
        return False

    def record_customer(self, customer_id: str, data: dict[str, Any],
                        dry_run: bool = False) -> str:
        """Write ``customers/<customer_id>.yaml`` like :meth:`record_interaction`."""
        return write_customer(self.workspace, customer_id, dict(data), dry_run=dry_run)

    def write_output(self, path: str | Path, data: str | bytes) -> Path:
        """Replace a generated file (``path`` relative to the output folder, or absolute)
        atomically; returns where it was written.  A file that already holds ``data``
        is left alone (its mtime stays)."""
        target = self._output_path(path)
        self._check_output_folder(target.parent)
        self._replace_output(target, data)
        return target

    def _replace_output(self, target: Path, data: str | bytes) -> None:
        try:
            self.outputs_changed += replace_file(target, data, durable=False, public=True)
        except OSError as exc:
            raise CrmkitError(_("cannot write %(file)s in the output folder %(folder)s: "
                                "%(error)s") % {
                "file": self.display_path(target),
                "folder": self.display_path(self.workspace.output_dir),
                "error": exc.strerror or exc}) from None

    def _check_output_folder(self, folder: Path) -> None:
        """A folder below the output folder must really be there: a link in it (``out/
        customers`` → ``/srv/www``) would make every build write, and prune, outside
        the workspace.  Checked once per folder and run."""
        checked = self.__dict__.setdefault("_output_folders", set())
        if folder in checked:
            return
        output = self.workspace.output_dir
        if folder == output or not folder.is_relative_to(output):
            checked.add(folder)  # the output folder itself is checked with the settings
            return
        real = folder.resolve()
        if not real.is_relative_to(output.resolve()):
            raise CrmkitError(_("%(folder)s is a link to %(target)s, outside the output "
                                "folder: crmkit writes nothing there") % {
                "folder": self.display_path(folder), "target": real})
        checked.add(folder)

    def write_file(self, path: str | Path, data: str | bytes) -> Path:
        """Replace a file a command was asked to write (an edited record; for a path named
        with ``--out`` see :meth:`write_named`) atomically and durably: never a
        half-written file, even after a crash."""
        target = Path(path)
        replace_file(target, data)
        return target

    def write_named(self, path: str | Path, data: str | bytes, force: bool = False) -> Path:
        """Write a file named on the command line (an export's ``--out``), atomically.

        Never inside the workspace's own folders (records, plugins, templates, ``.git``,
        ``.crmkit``) nor over ``crmkit.yaml``, whatever ``force`` says; an existing file
        (or a link) that crmkit did not write here is replaced only with ``force``.  A
        link is replaced by the file, never written through.  Raises :class:`CrmkitError`
        naming the path."""
        target = Path(path)
        shown = str(path)
        try:
            where = target.parent.resolve() / target.name
        except OSError as exc:
            raise CrmkitError(_("cannot write %(file)s: %(error)s") % {
                "file": shown, "error": exc.strerror}) from None
        root = self.root.resolve()
        try:
            inside = where.relative_to(root).parts
        except ValueError:
            inside = ()
        if inside == ("crmkit.yaml",):
            raise CrmkitError(_("refusing to write %(file)s: it is the workspace's settings "
                                "file, which crmkit does not overwrite; choose another --out")
                              % {"file": shown})
        if inside and inside[0] in OUTPUT_FORBIDDEN:
            raise CrmkitError(_("refusing to write %(file)s: it is inside the workspace's "
                                "%(folder)s, which crmkit does not overwrite; choose another "
                                "--out") % {"file": shown, "folder": repr(inside[0])})
        written = _written_outputs(self.root)
        try:
            st = os.lstat(where)
        except FileNotFoundError:
            st = None
        except OSError as exc:
            raise CrmkitError(_("cannot write %(file)s: %(error)s") % {
                "file": shown, "error": exc.strerror}) from None
        if st is not None and not force and (
                not stat.S_ISREG(st.st_mode)
                or written.get(str(where)) != [st.st_ino, st.st_size, st.st_mtime_ns]):
            raise CrmkitError((
                _("refusing to replace %(file)s: it is a link; add --force to replace it")
                if stat.S_ISLNK(st.st_mode) else
                _("refusing to replace %(file)s: it is a file crmkit did not write; add --force "
                  "to replace it")) % {"file": shown})
        try:
            replace_file(where, data)
            st = os.lstat(where)
        except OSError as exc:
            raise CrmkitError(_("cannot write %(file)s: %(error)s") % {
                "file": shown, "error": exc.strerror}) from None
        written[str(where)] = [st.st_ino, st.st_size, st.st_mtime_ns]
        with contextlib.suppress(OSError):
            replace_file(self.root / OUTPUTS_FILE,
                         json.dumps(written, sort_keys=True), durable=False)
        return target

    def build(self) -> list[Path]:
        """Let every plugin write its generated files (``crmkit_build``); nothing at all
        when the output folder cannot be written (:meth:`Workspace.output_dir`)."""
        self.workspace.output_dir  # noqa: B018  (raises, naming `output` in crmkit.yaml)
        written, problems = self.host.call("crmkit_build", app=self)
        self.problems.extend(problems)
        return [p if isinstance(p, Path) else Path(p) for p in written]

    def clear_caches(self) -> None:
        """Delete what crmkit keeps in ``.crmkit/`` (parse cache, kept outputs): after an
        erasure they would still hold copies of the erased data.  Waits for a process
        that keeps the last command's state (it would write it back)."""
        from ..incremental import parallel

        self._pending = None  # nor may this run keep what it read
        parallel.wait_for(self.root / BACKGROUND_LOCK)
        shutil.rmtree(self.root / CACHE_DIR, ignore_errors=True)

    def display_path(self, path: Path) -> str:
        """``path`` as users see it: relative to the workspace when it is inside it."""
        try:
            return path.resolve().relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return str(path)

    def confirm(self, question: str) -> None:
        """Go on only if the person at the terminal says yes (``[j/N]`` in German; no, an
        empty answer or Ctrl-C abort: ``crmkit`` exits with status 130):
        :func:`crmkit.cli.ask.confirm`."""
        from ..cli.ask import confirm

        confirm(question)

    def choose(self, question: str, letters: Sequence[str], default: str) -> str:
        """One of the English ``letters`` that ``question`` names, typed in English or in
        the terminal's language: :func:`crmkit.cli.ask.choose`."""
        from ..cli.ask import choose

        return choose(question, letters, default)

    def warn_about_problems(self) -> None:
        """For commands other than ``check``: say once that the workspace has errors, and
        print what plugins reported during this run (on stderr)."""
        warning = self.errors_warning()
        if warning:
            click.echo(warning, err=True)
        self.report_problems()

    def errors_warning(self) -> str | None:
        """What is said when the workspace has errors, or files it did not read (by
        every command but ``check``, and by ``watch`` after a rebuild): a line each;
        ``None`` when neither."""
        lines = []
        errors = self.workspace.errors
        if errors:
            lines.append(ngettext(
                "warning: the workspace has %(num)d error; run '%(command)s' to see it",
                "warning: the workspace has %(num)d errors; run '%(command)s' to see them",
                len(errors)) % {"num": len(errors), "command": "crmkit check"})
        unread = [d for d in self.workspace.diagnostics
                  if not d.is_error and is_not_read(d)]
        if unread:
            lines.append(ngettext(
                "warning: %(num)d file in the workspace was not read; run '%(command)s' "
                "to see it",
                "warning: %(num)d files in the workspace were not read; run '%(command)s' "
                "to see them", len(unread)) % {"num": len(unread), "command": "crmkit check"})
        return "\n".join(lines) or None

    def report_problems(self) -> bool:
        """Print (on stderr) what plugins reported during this run and was not printed
        yet; whether any of it is an error: a rule or hook that failed means the
        command could not do its whole job, and it exits 1 (the CLI does this after
        every command)."""
        for problem in dict.fromkeys(self.problems):
            if problem not in self._printed:
                self._printed.add(problem)
                click.echo(str(problem), err=True)
        return any(problem.is_error for problem in self.problems)

    def unread_folders(self) -> list[Diagnostic]:
        """The record folders the loaded workspace could not read (a link out of the
        workspace): every command says so, not only ``check``."""
        if "workspace" not in self.__dict__:
            return []
        return [d for d in self.workspace.diagnostics
                if d.is_error and d.location is not None and d.location.line <= 0
                and d.location.path in RECORD_FOLDERS]


_pass_app = click.make_pass_decorator(App)


def pass_app(f: Callable[..., Any] | None = None, *,
             pure: bool | Callable[[dict[str, Any]], bool] = False) -> Any:
    """Pass the run's :class:`App` to a click command as its first argument.

    ``pure=True`` declares that the command only reads the workspace and prints: its
    output depends on nothing but the workspace's files, the plugins' code, the command
    line and the day, and it writes and sends nothing.  crmkit may then print the output
    of the last identical run instead of running it again.  ``pure=lambda params: ...``
    says for which runs that holds (``lambda p: p["out"] is None`` for a command whose
    ``--out`` writes a file).  Use it as ``@crmkit.pass_app`` or
    ``@crmkit.pass_app(pure=True)``, below the click decorators."""
    def decorate(function: Callable[..., Any]) -> Callable[..., Any]:
        passed = _pass_app(function)
        return replay.pure_command(passed, pure) if pure else passed

    return decorate(f) if f is not None else decorate
