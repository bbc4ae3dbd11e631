"""crmkit: a plugin-based, static-file CRM.

The public plugin API is what this module exports; plugins import nothing else.
"""

__version__ = "0.1.0"

from .app import App, pass_app
from .diagnostics import CrmkitError, Diagnostic, Location, Severity
from .hookspecs import hookimpl
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
from .output import clean, echo_json, table
from .results import (
    ConfigSection,
    EmailDraft,
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
    "did_you_mean",
    "echo_json",
    "hookimpl",
    "pass_app",
    "table",
]
