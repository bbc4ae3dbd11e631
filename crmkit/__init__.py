"""crmkit: a plugin-based, static-file CRM.

The public plugin API is what this module exports; plugins import nothing else.
"""

__version__ = "0.1.0"

from .app import App, pass_app
from .atomic import replace as write_atomically
from .diagnostics import CrmkitError, Diagnostic, Location, Severity
from .export import customer_json, interaction_json
from .hookspecs import hookimpl
from .ids import slugify
from .model import (
    Address,
    Consent,
    Customer,
    Deal,
    FollowUp,
    Interaction,
    Interval,
    Item,
    Sender,
    Service,
    Settings,
    Workspace,
)
from .options import Options
from .output import clean, echo_json, table, to_json
from .replay import read_only
from .results import (
    ConfigSection,
    EmailDraft,
    Importer,
    ImportOptions,
    ImportRow,
    Metric,
    Reminder,
    ReportSection,
    Segmentation,
    SegmentLabel,
)
from .schema import did_you_mean
from .snapshot import Derived, OpenFollowUp, Snapshot

__all__ = [
    "Address",
    "App",
    "ConfigSection",
    "Consent",
    "CrmkitError",
    "Customer",
    "Deal",
    "Derived",
    "Diagnostic",
    "EmailDraft",
    "FollowUp",
    "ImportOptions",
    "ImportRow",
    "Importer",
    "Interaction",
    "Interval",
    "Item",
    "Location",
    "Metric",
    "OpenFollowUp",
    "Options",
    "Reminder",
    "ReportSection",
    "SegmentLabel",
    "Segmentation",
    "Sender",
    "Service",
    "Settings",
    "Severity",
    "Snapshot",
    "Workspace",
    "__version__",
    "clean",
    "customer_json",
    "did_you_mean",
    "echo_json",
    "hookimpl",
    "interaction_json",
    "pass_app",
    "read_only",
    "slugify",
    "table",
    "to_json",
    "write_atomically",
]
