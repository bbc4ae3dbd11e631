"""Creating new record files: validated first, written atomically, never overwriting.

``crmkit add customer``, ``crmkit log`` and plugins (through
:meth:`crmkit.App.record_interaction`) all go through here, so every file crmkit
writes passes the same checks as ``crmkit check``.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import zoneinfo
from collections.abc import Callable, Iterable
from typing import Any

from ..engine.i18n import cli_gettext as _
from ..model import Interaction, Workspace
from ..model.diagnostics import CrmkitError, Diagnostic
from ..model.ids import slugify
from .atomic import create_new
from .schema import parse_customer, parse_interaction
from .yamlsource import dump_yaml, parse_yaml


def _as_date(value: Any) -> Any:
    """``"2026-03-05"`` → a date (dumped unquoted, as a person writes it); else unchanged."""
    if isinstance(value, str):
        try:
            return (dt.datetime.fromisoformat(value) if ("T" in value or ":" in value)
                    else dt.date.fromisoformat(value))
        except ValueError:
            return value
    return value


def check_record(text: str, rel: str, parse: Callable[[Any, str, list[Diagnostic]], Any]) -> Any:
    """Run the loader's checks on a new file's text; raise ``CrmkitError`` on errors."""
    problems: list[Diagnostic] = []
    parsed = parse_yaml(text.encode("utf-8"), rel)
    problems.extend(parsed.diagnostics)
    result = parse(parsed.data, rel, problems)
    errors = [p for p in problems if p.is_error]
    if errors:
        raise CrmkitError("; ".join(p.message for p in errors))
    return result


def _create(workspace: Workspace, rel: str, text: str) -> None:
    try:
        create_new(workspace.root / rel, text.encode("utf-8"))
    except PermissionError as exc:
        raise CrmkitError(_("cannot write %(file)s: %(error)s") % {
            "file": rel, "error": exc.strerror}) from None


def write_customer(workspace: Workspace, customer_id: str, data: dict[str, Any],
                   dry_run: bool = False) -> str:
    """Create ``customers/<id>.yaml``; returns its workspace-relative path.

    With ``dry_run`` the data is checked (``CrmkitError`` if invalid) but nothing written.
    """
    from .schema import ID_PATTERN

    if not ID_PATTERN.match(customer_id):
        raise CrmkitError(_("%(id)s is not a valid customer id") % {"id": repr(customer_id)})
    for key in ("birthday",):
        if key in data:
            data[key] = _as_date(data[key])
    if isinstance(data.get("consent"), dict) and "since" in data["consent"]:
        data["consent"]["since"] = _as_date(data["consent"]["since"])
    rel = f"customers/{customer_id}.yaml"
    text = dump_yaml(data)
    customer = check_record(text, rel, lambda d, r, out: parse_customer(d, r, customer_id, out))
    if customer is not None:
        _refuse_shared_email(workspace, customer_id, customer.emails)
    if dry_run:
        if (workspace.root / rel).exists():
            raise CrmkitError(_("%(file)s already exists") % {"file": rel})
        return rel
    try:
        _create(workspace, rel, text)
    except FileExistsError:
        raise CrmkitError(_("%(file)s already exists; not overwriting it (pass another id)")
                          % {"file": rel}) from None
    return rel


def _refuse_shared_email(workspace: Workspace, customer_id: str,
                         emails: Iterable[str]) -> None:
    """A new customer with another's email would make ``crmkit check`` fail (the
    duplicates check compares emails case-insensitively): refuse before writing."""
    seen: set[str] = set()
    for email in emails:
        key = email.strip().lower()
        if key in seen:
            raise CrmkitError(_("the email %(email)s is given twice") % {"email": repr(email)})
        seen.add(key)
    for other in workspace.customers.values():
        if other.id == customer_id:
            continue
        shared = sorted(e for e in other.emails if e.strip().lower() in seen)
        if shared:
            raise CrmkitError(_(
                "%(id)s already has the email %(email)s; not creating a duplicate (update "
                "%(id)s, or see 'crmkit duplicates')") % {
                "id": repr(other.id), "email": repr(shared[0])})


def name_suffix(text: str, author: str = "") -> str:
    """Six characters derived from a new record's text and who writes it: two clones of
    one repository never write the same name for different records (docs/team.md), and
    the same record written by the same person is one file, whichever clone wrote it."""
    digest = hashlib.sha256(f"{author}\0{text}".encode()).digest()
    return base64.b32encode(digest[:5]).decode("ascii").lower()[:6]


def write_interaction(workspace: Workspace, data: dict[str, Any],
                      known_types: Iterable[str], dry_run: bool = False, author: str = ""
                      ) -> tuple[str, Interaction]:
    """Create ``interactions/<year>/<date>-<customer>-<type>-<suffix>.yaml``: the suffix
    (:func:`name_suffix` of the text and ``author``) keeps clones from writing the same
    name for different records.

    With ``dry_run`` the data is checked (``CrmkitError`` if invalid) but nothing written.
    """
    customer_id = str(data.get("customer"))
    if customer_id not in workspace.customers:
        from .schema import did_you_mean

        raise CrmkitError(_("unknown customer %(id)s") % {"id": repr(customer_id)}
                          + did_you_mean(customer_id, workspace.customers))
    data = {k: v for k, v in data.items() if v not in (None, "", [], {})}
    data["date"] = _as_date(data.get("date"))
    follow_up = data.get("follow_up")
    if isinstance(follow_up, dict):
        data["follow_up"] = {**follow_up, "date": _as_date(follow_up.get("date"))}
    elif follow_up is not None:
        data["follow_up"] = _as_date(follow_up)
    text = dump_yaml(data)
    settings = workspace.settings
    tz = zoneinfo.ZoneInfo(settings.timezone)
    record: Interaction | None = check_record(
        text, "interaction", lambda d, r, out: parse_interaction(
            d, r, out, frozenset(known_types), tz, settings.currency, workspace.customers))
    assert record is not None
    # the name only helps a person find the file (the record says whose it is): a
    # long id must not make it longer than a file system allows
    base = (f"interactions/{record.date.year}/{record.date.isoformat()}-"
            f"{customer_id[:80].rstrip('-')}-{slugify(record.type)}-"
            f"{name_suffix(text, author)}")
    if dry_run:
        return f"{base}.yaml", record
    for attempt in range(1, 1000):  # the same text twice in this clone: numbered
        rel = f"{base}.yaml" if attempt == 1 else f"{base}-{attempt}.yaml"
        try:
            _create(workspace, rel, text)
            return rel, record
        except FileExistsError:
            continue
    raise CrmkitError(f"too many files named {base}-N.yaml")
