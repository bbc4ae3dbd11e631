"""crmkit: a plugin-based, static-file CRM.

The public plugin API is what this module exports; plugins import nothing else.
A plugin implements hooks (``@crmkit.hookimpl``); its rules are plain functions
registered with ``crmkit_register`` (docs/writing-plugins.md).
"""

__version__ = "0.1.0"

from .cli.output import clean, echo_json, table
from .engine.app import App, pass_app
from .engine.i18n import translations
from .engine.rules import (
    Check,
    ConfigSection,
    Importer,
    Label,
    Metric,
    Option,
    ReminderKind,
    ReportSection,
)
from .engine.values import Due, EmailDraft, ImportOptions, ImportRow, Reminder
from .engine.views import CustomerView
from .hookspecs import hookimpl
from .loading.schema import did_you_mean, parse_amount
from .model import (
    CrmkitError,
    Customer,
    Deal,
    Diagnostic,
    Interaction,
    Location,
    Workspace,
)

__all__ = [
    "App",
    "Check",
    "ConfigSection",
    "CrmkitError",
    "Customer",
    "CustomerView",
    "Deal",
    "Diagnostic",
    "Due",
    "EmailDraft",
    "ImportOptions",
    "ImportRow",
    "Importer",
    "Interaction",
    "Label",
    "Location",
    "Metric",
    "Option",
    "Reminder",
    "ReminderKind",
    "ReportSection",
    "Workspace",
    "clean",
    "did_you_mean",
    "echo_json",
    "hookimpl",
    "parse_amount",
    "pass_app",
    "table",
    "translations",
]
