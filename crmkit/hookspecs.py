"""The plugin hooks: these docstrings are the reference documentation.

Every hook is optional for a plugin.  Hooks that collect things return an
iterable (``None`` counts as nothing); the core gathers the results of all
plugins.  docs/plugin-hooks.md has a worked example for each.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import click
    import jinja2

    from .app import App
    from .diagnostics import Diagnostic
    from .model import Workspace
    from .results import (
        ConfigSection,
        EmailDraft,
        Importer,
        JinjaFilter,
        Metric,
        Reminder,
        ReportSection,
        Segmentation,
        SegmentLabel,
    )
    from .snapshot import Snapshot

hookspec = pluggy.HookspecMarker("crmkit")
hookimpl = pluggy.HookimplMarker("crmkit")


@hookspec
def crmkit_register_commands(cli: click.Group) -> None:
    """Add commands to the ``crmkit`` CLI with ``@cli.command()``.

    A command gets the current workspace through ``@crmkit.pass_app``
    (``app.workspace``, ``app.snapshot``, ``app.segments()``...).
    """


@hookspec
def crmkit_config_sections() -> Iterable[ConfigSection]:
    """Claim top-level sections of ``crmkit.yaml`` for this plugin.

    Unknown top-level keys are errors; a claimed section is accepted and its
    content is available as ``workspace.settings.section(name)``.  Validate it in
    :func:`crmkit_validate`.
    """


@hookspec
def crmkit_interaction_types() -> Iterable[str]:
    """Add interaction types (beyond call, email, purchase, ...) that files may use."""


@hookspec
def crmkit_validate(workspace: Workspace, today: dt.date) -> Iterable[Diagnostic]:
    """Check the loaded workspace and return problems as diagnostics.

    Called once per load, after the core's own checks; ``today`` is the run's
    ``--today`` (for rules such as data retention).  Point each diagnostic at
    the record's ``location`` (or ``record.locate(field)``) so users can jump to it.
    """


@hookspec
def crmkit_segments(snapshot: Snapshot) -> Iterable[SegmentLabel] | Segmentation:
    """Label customers as of ``snapshot.today`` (lifecycle stage, ABC class, ...).

    Return :class:`~crmkit.SegmentLabel` objects, or labels for many customers at
    once as ``Segmentation.of({customer_id: {name: value}})``.
    """


@hookspec
def crmkit_reminders(snapshot: Snapshot, segments: Segmentation) -> Iterable[Reminder]:
    """Return the reminders that are open as of ``snapshot.today``.

    A reminder is resolved by the history (a later interaction), never by
    editing a field, so compute it from ``snapshot.history(customer_id)``.
    """


@hookspec
def crmkit_suppress_reminders(reminders: list[Reminder], snapshot: Snapshot,
                              segments: Segmentation) -> Mapping[Reminder, str] | None:
    """Hold back some of all plugins' reminders, each with a reason.

    Runs after :func:`crmkit_reminders` has been called on every plugin, so a
    rule such as a frequency cap sees every reminder.  Held-back reminders keep
    existing (``crmkit reminders --all`` shows them with the reason); the first
    reason given for a reminder wins.
    """


@hookspec(firstresult=True)
def crmkit_draft_email(reminder: Reminder, snapshot: Snapshot, segments: Segmentation,
                       templates: jinja2.Environment) -> EmailDraft | None:
    """Draft an email for a reminder; the first plugin that returns a draft wins.

    ``templates`` is the Jinja environment (the workspace's ``templates/`` first,
    then the plugins' template folders, with the plugins' filters).  Return
    ``None`` for reminders this plugin does not draft.
    """


@hookspec
def crmkit_metrics(snapshot: Snapshot, segments: Segmentation,
                   wanted: frozenset[str] | None) -> Iterable[Metric]:
    """Compute KPIs as of ``snapshot.today`` for reports and ``--format json``.

    ``wanted`` names the metrics the caller needs (``None``: all of them), so a
    plugin can skip the expensive ones nobody asked for (a report compares six
    figures with last week's); returning others too is harmless.  ``segments``
    is computed on first use: leave it alone when no wanted metric needs it.
    """


@hookspec
def crmkit_report_sections(report: str, snapshot: Snapshot, segments: Segmentation,
                           reminders: list[Reminder]) -> Iterable[ReportSection]:
    """Contribute sections to the report called ``report`` (e.g. ``"weekly"``)."""


@hookspec
def crmkit_build(app: App) -> Iterable[Path]:
    """Write this plugin's generated files (reports, calendars) for ``app``.

    Called by ``crmkit build`` and by ``crmkit watch`` after every change.  Write
    below ``app.workspace.output_dir`` and return the paths written.
    """


@hookspec
def crmkit_importers() -> Iterable[Importer]:
    """Importers for ``crmkit import FORMAT FILE`` (CSV, vCard, a CRM's export, ...)."""


@hookspec
def crmkit_template_dirs() -> Iterable[Path]:
    """Folders with Jinja templates; the workspace's ``templates/`` always wins."""


@hookspec
def crmkit_jinja_filters() -> Mapping[str, JinjaFilter]:
    """Jinja filters by name, available in every template crmkit renders."""
