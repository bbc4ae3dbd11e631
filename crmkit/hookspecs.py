"""The plugin hooks: these docstrings are the reference documentation.

Every hook is optional for a plugin, and an implementation may accept any subset
of the arguments, by name.  Rules (labels, reminder kinds, metrics, checks,
report sections) and importers are *registered* with ``crmkit_register``, in
llm's style: the core decides when to run them and what to keep.  Hooks that
contribute plain things (template folders, filters, interaction types) return
them.  docs/plugin-hooks.md has a worked example for each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    import jinja2

    from .engine.app import App
    from .engine.rules import Registrable, ReminderKind
    from .engine.values import EmailDraft, Reminder
    from .engine.views import CustomerView
    from .model import Diagnostic, Settings, Workspace

hookspec = pluggy.HookspecMarker("crmkit")
hookimpl = pluggy.HookimplMarker("crmkit")


@hookspec
def crmkit_register(register: Callable[[Registrable], None], settings: Settings) -> None:
    """Register what this plugin provides: call ``register(...)`` with
    :class:`~crmkit.Label`, :class:`~crmkit.ReminderKind`, :class:`~crmkit.Metric`,
    :class:`~crmkit.Check`, :class:`~crmkit.ReportSection`,
    :class:`~crmkit.ConfigSection` and :class:`~crmkit.Importer` objects.

    ``settings`` is ``crmkit.yaml`` as written, for registrations that depend on it
    (a label for each segment the user defined).  Names are checked: two plugins
    registering the same name is an error, and so is a rule that reads a name
    nobody registered.
    """


@hookspec
def crmkit_register_commands(cli: click.Group) -> None:
    """Add commands to the ``crmkit`` CLI with ``@cli.command()``.

    A command gets the current run through ``@crmkit.pass_app`` (``app.workspace``,
    ``app.customer(id)``, ``app.labels()``, ``app.reminders()``...).
    """


@hookspec
def crmkit_interaction_types() -> Iterable[str]:
    """Add interaction types (beyond call, email, purchase, ...) that files may use."""


@hookspec
def crmkit_validate(workspace: Workspace, today: dt.date, interaction_types: tuple[str, ...],
                    template_dirs: tuple[Path, ...]) -> Iterable[Diagnostic]:
    """Check the whole loaded workspace and return problems as diagnostics.

    The escape hatch for checks that fit no :class:`~crmkit.Check` (deals, settings
    that depend on each other, files a plugin reads such as the playbooks): it runs
    on every load.  ``today`` is the run's ``--today``; ``interaction_types`` are the
    types files may use (the base ones, ``crmkit.yaml``'s and the plugins');
    ``template_dirs`` are the folders templates are looked up in, the workspace's
    ``templates/`` first.  Point each diagnostic at ``record.location`` or
    ``record.locate(field)`` so users can jump to it.
    """


@hookspec(firstresult=True)
def crmkit_draft_email(reminder: Reminder, kind: ReminderKind | None, customer: CustomerView,
                       templates: jinja2.Environment) -> EmailDraft | None:
    """Draft an email for a reminder; the first plugin that returns a draft wins.

    ``kind`` is the reminder's kind as registered (``kind.email_template`` names its
    template: the reminder's own where its rule gave one, as a playbook step does);
    ``customer`` is the customer it is for (every label readable); ``templates`` is
    the Jinja environment (the workspace's ``templates/`` first, then the plugins'
    template folders).  Return ``None`` for reminders this plugin
    does not draft; a plugin that raises is reported and the next one is asked.
    """


@hookspec
def crmkit_build(app: App) -> Iterable[Path]:
    """Write this plugin's generated files (reports, calendars) for ``app``.

    Called by ``crmkit build`` and by ``crmkit watch`` after every change.  Write
    with ``app.write_output(relative_path, data)`` and return the paths written.
    """


@hookspec
def crmkit_template_dirs() -> Iterable[Path]:
    """Folders with Jinja templates; the workspace's ``templates/`` always wins."""


@hookspec
def crmkit_jinja_filters() -> Mapping[str, Callable[..., Any]]:
    """Functions by name for every template crmkit renders, as filters
    (``{{ x | name }}``) and as functions (``{{ name(x) }}``)."""
