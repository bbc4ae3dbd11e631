"""The data model: frozen records, the loaded workspace and values derived from it.

Everything here crosses the plugin boundary, so it is frozen and typed; nothing
here reads or writes files.
"""

from .derived import Derived, OpenFollowUp, derive
from .diagnostics import CrmkitError, Diagnostic, Location, Severity, sort_key
from .records import (
    NON_CONTACT_TYPES,
    Address,
    Consent,
    Customer,
    Deal,
    FollowUp,
    FrozenMap,
    Interaction,
    Interval,
    Item,
    OptionValues,
    Sender,
    Service,
    Settings,
)
from .workspace import LoadStats, Workspace

__all__ = [
    "NON_CONTACT_TYPES",
    "Address",
    "Consent",
    "CrmkitError",
    "Customer",
    "Deal",
    "Derived",
    "Diagnostic",
    "FollowUp",
    "FrozenMap",
    "Interaction",
    "Interval",
    "Item",
    "LoadStats",
    "Location",
    "OpenFollowUp",
    "OptionValues",
    "Sender",
    "Service",
    "Settings",
    "Severity",
    "Workspace",
    "derive",
    "sort_key",
]
