"""A loaded workspace: settings, records, and every problem found on the way."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

from .diagnostics import CrmkitError, Diagnostic
from .records import Customer, Deal, Interaction, Settings

#: Folders of the workspace the output folder may neither be nor sit in (the workspace
#: itself, which holds them all, is refused too): a build would write among the records,
#: and ``watch --serve`` would publish them.
OUTPUT_FORBIDDEN = ("customers", "interactions", "deals", "playbooks", "plugins", "templates",
                    ".git", ".crmkit")


def normal_output(output: str) -> str:
    """``output`` as one spelling: ``./out``, ``out/`` and ``out`` are all ``out``."""
    return posixpath.normpath(output.replace("\\", "/"))


def output_problem(output: str) -> str | None:
    """What is wrong with ``output`` (crmkit.yaml) as written, or ``None``."""
    normal = normal_output(output)
    first = normal.split("/", 1)[0]
    if output.startswith(("/", "\\")) or ":" in first or first == "..":
        return f"'output' must be a folder inside the workspace, not {output!r}"
    if normal == ".":
        return (f"'output' may not be the workspace itself ({output!r}): name a folder "
                "such as 'out'")
    if first.casefold() in OUTPUT_FORBIDDEN:
        return (f"'output' may not be {first}/ or a folder in it ({output!r}): name a "
                "folder of its own such as 'out'")
    return None


def _empty_map() -> MappingProxyType:
    return MappingProxyType({})


@dataclass(frozen=True, slots=True)
class LoadStats:
    """What a load did: files read, parsed afresh, and taken from the parse cache."""

    files: int
    parsed: int
    from_cache: int


@dataclass(frozen=True, slots=True)
class Workspace:
    """A loaded workspace: settings, records and every problem found on the way.

    Records that were too broken to use are left out; their problems are in
    ``diagnostics``.  Interactions are sorted by date and indexed per customer.
    The collections are read-only; a run that starts from the last run's state
    (:mod:`crmkit.incremental.state`) reads each customer only when asked.
    """

    root: Path
    settings: Settings
    customers: Mapping[str, Customer]
    interactions: Sequence[Interaction]
    deals: Mapping[str, Deal]
    diagnostics: tuple[Diagnostic, ...]
    by_customer: Mapping[str, tuple[Interaction, ...]] = field(default_factory=_empty_map)
    deals_by_customer: Mapping[str, tuple[Deal, ...]] = field(default_factory=_empty_map)
    stats: LoadStats | None = None

    def history(self, customer_id: str) -> tuple[Interaction, ...]:
        """All interactions of one customer, oldest first (planned ones included)."""
        return self.by_customer.get(customer_id, ())

    def deals_of(self, customer_id: str) -> tuple[Deal, ...]:
        """The customer's deals, by id."""
        return self.deals_by_customer.get(customer_id, ())

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.is_error]

    @property
    def output_dir(self) -> Path:
        """The output folder; :class:`CrmkitError` naming ``output`` in crmkit.yaml when
        it cannot be written (see :meth:`output_problem`), so nothing is written there."""
        problem = self.output_problem()
        if problem is not None:
            raise CrmkitError(f"{problem.location}: {problem.message}")
        return self.root / self.settings.output

    def output_problem(self) -> Diagnostic | None:
        """Why the output folder must not be written: ``output`` names the workspace
        itself, one of :data:`OUTPUT_FORBIDDEN`, or a place outside; or the folder is a
        link (or lies under one) that leads outside the workspace, to the workspace
        itself or into one of those folders.  (A folder named on the command line,
        like ``drafts --out``, is the user's choice and not checked here.)"""
        output = self.settings.output
        message = output_problem(output)
        if message is None:
            root = self.root.resolve()
            real = (self.root / output).resolve()
            if real != root and real.is_relative_to(root):
                inside = real.relative_to(root).as_posix()
                if output_problem(inside) is not None:
                    message = (f"'output' ({output!r}) is a link to {inside}/, which holds "
                               "records, plugins or templates: name a folder of its own")
            elif real == root:
                message = f"'output' ({output!r}) is a link to the workspace itself"
            else:
                message = (f"'output' ({output!r}) is a link to {real}, outside the workspace: "
                           "crmkit writes there only when you name the folder on the command "
                           "line")
        if message is None:
            return None
        return Diagnostic.error(message, self.settings.locate("output"))
