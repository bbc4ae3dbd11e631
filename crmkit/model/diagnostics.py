"""Problems in the workspace are values, not exceptions.

Every loader step and every plugin returns :class:`Diagnostic` objects; the CLI
prints them as ``path:line:col: severity: message`` so editors can jump to them.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .text import clean


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"


@dataclass(frozen=True, slots=True)
class Location:
    """Where something is written: a workspace-relative path, 1-based line and column."""

    path: str
    line: int = 0
    col: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return clean(self.path)
        return f"{clean(self.path)}:{self.line}:{max(self.col, 1)}"

    def __reduce__(self) -> tuple[type, tuple[str, int, int]]:
        return (Location, (self.path, self.line, self.col))


@dataclass(frozen=True, slots=True)
class Diagnostic:
    """One problem found in the workspace, with the place it comes from."""

    severity: Severity
    message: str
    location: Location | None = None
    #: Who found it: ``"crmkit"`` for the core, else the plugin's name.
    source: str = "crmkit"

    @classmethod
    def error(cls, message: str, location: Location | None = None, source: str = "crmkit"):
        return cls(Severity.ERROR, message, location, source)

    @classmethod
    def warning(cls, message: str, location: Location | None = None, source: str = "crmkit"):
        return cls(Severity.WARNING, message, location, source)

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def __str__(self) -> str:
        where = f"{self.location}: " if self.location else ""
        return f"{where}{self.severity.value}: {clean(self.message)}"

    def __reduce__(self) -> tuple[type, tuple[object, ...]]:
        return (Diagnostic, (self.severity, self.message, self.location, self.source))

    def to_json(self) -> dict[str, object]:
        loc = self.location
        return {
            "severity": self.severity.value,
            "message": self.message,
            "path": loc.path if loc else None,
            "line": loc.line if loc and loc.line else None,
            "col": loc.col if loc and loc.line else None,
            "source": self.source,
        }


def sort_key(diagnostic: Diagnostic) -> tuple[str, int, int, str]:
    loc = diagnostic.location or Location("")
    return (loc.path, loc.line, loc.col, diagnostic.message)


class CrmkitError(Exception):
    """An error the CLI reports as one clear line (no traceback)."""
