"""Data protection (GDPR/DSGVO): access requests, erasure, retention, consent checks.

``crmkit privacy export CUSTOMER`` gives everything stored about one person as
one JSON document.  ``crmkit privacy forget CUSTOMER`` removes the person from
the working tree after confirmation: their customer file, interaction files
and deals are deleted; their entries in shared interaction files and
``referred_by`` lines in other customers' files are cut out line by line (every
edit is checked to leave all other records exactly as they were before anything
is written).  crmkit never rewrites git history; it prints how to.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml

import crmkit
from crmkit import Check, ConfigSection, CustomerView, Diagnostic, Option

NAME = "privacy"
SETTINGS_EXAMPLE = """\
privacy:
  retention:
    lead_days: 1095        # leads without contact for 3 years are reported by crmkit check"""


# --- checks -----------------------------------------------------------------------------


RETENTION = {"lead_days": Option(None, "Leads without contact for this many days are "
                                       "reported.", kind="integer", minimum=1)}


def customer_findings(c: CustomerView) -> Iterator[Diagnostic]:
    """Email without consent, and a lead kept past the retention period."""
    customer = c.customer
    history = c.history
    if not customer.consent.email:
        for i in history:
            if i.type == "email" and i.direction == "outbound":
                yield Diagnostic.warning(
                    f"email sent to {customer.id!r}, who has no recorded email consent",
                    i.location, source=NAME)
                break
    days = c.options.retention.lead_days
    if days is None or any(i.type == "purchase" for i in history):
        return
    contacts = [i.date for i in history if i.is_contact]
    if contacts and (c.today - contacts[-1]).days > days:
        yield Diagnostic.warning(
            f"lead without contact since {contacts[-1].isoformat()} (retention: "
            f"{days} days): erase with 'crmkit privacy forget {customer.id}'",
            customer.location, source=NAME)


# --- erasure ----------------------------------------------------------------------------


@dataclass
class ErasurePlan:
    customer: str
    delete: list[str] = field(default_factory=list)
    edits: dict[str, str] = field(default_factory=dict)  # path -> new text
    notes: list[str] = field(default_factory=list)


def _lines_without(text: str, spans: list[tuple[int, int]]) -> str:
    """``text`` without the 1-based, end-exclusive line spans."""
    lines = text.splitlines(keepends=True)
    drop = {n for start, end in spans for n in range(start, end)}
    return "".join(line for n, line in enumerate(lines, start=1) if n not in drop)


def _item_spans(path: Path, customer: str) -> tuple[list[tuple[int, int]], int] | None:
    """Line spans of the customer's entries in a list file, and how many entries remain."""
    text = path.read_text(encoding="utf-8")
    data = yaml.compose(text, Loader=yaml.SafeLoader)
    if not isinstance(data, yaml.SequenceNode):
        return None
    total = len(text.splitlines()) + 1
    spans, remaining = [], 0
    items = data.value
    for n, item in enumerate(items):
        owner = None
        if isinstance(item, yaml.MappingNode):
            for key, value in item.value:
                if key.value == "customer" and isinstance(value, yaml.ScalarNode):
                    owner = value.value
        if owner != customer:
            remaining += 1
            continue
        start = item.start_mark.line + 1
        end = items[n + 1].start_mark.line + 1 if n + 1 < len(items) else total
        spans.append((start, end))
    return spans, remaining


def plan_erasure(app: crmkit.App, customer_id: str) -> ErasurePlan:
    ws = app.workspace
    customer = ws.customers[customer_id]
    plan = ErasurePlan(customer_id, delete=[customer.location.path])
    files: dict[str, list[crmkit.Interaction]] = {}
    for i in ws.history(customer_id):
        files.setdefault(i.location.path, []).append(i)
    for rel in sorted(files):
        spans = _item_spans(ws.root / rel, customer_id)
        if spans is None or spans[1] == 0:
            plan.delete.append(rel)
        else:
            text = (ws.root / rel).read_text(encoding="utf-8")
            plan.edits[rel] = _lines_without(text, spans[0])
            plan.notes.append(f"{rel}: {len(spans[0])} entr(y/ies) cut out, "
                              f"{spans[1]} of other customers kept")
    for deal in ws.deals_of(customer_id):
        plan.delete.append(deal.location.path)
    for other in ws.customers.values():
        if other.referred_by == customer_id:
            where = other.locate("referred_by")
            text = (ws.root / other.location.path).read_text(encoding="utf-8")
            plan.edits[other.location.path] = _lines_without(text, [(where.line,
                                                                      where.line + 1)])
            plan.notes.append(f"{other.location.path}: 'referred_by: {customer_id}' removed")
    return plan


def verify(app: crmkit.App, plan: ErasurePlan) -> None:
    """Each edited file must parse to exactly its old records minus the forgotten ones."""
    ws = app.workspace
    for rel, new_text in plan.edits.items():
        old = yaml.safe_load((ws.root / rel).read_text(encoding="utf-8"))
        new = yaml.safe_load(new_text)
        if isinstance(old, list):
            expected = [x for x in old if not (isinstance(x, dict)
                                               and x.get("customer") == plan.customer)]
        else:
            expected = {k: v for k, v in old.items() if k != "referred_by"}
        if new != expected:
            raise crmkit.CrmkitError(f"cannot cut {plan.customer} out of {rel} safely "
                                     "(unusual layout); edit it by hand, nothing was changed")


def execute(app: crmkit.App, plan: ErasurePlan) -> None:
    root = app.workspace.root
    for rel, text in plan.edits.items():
        app.write_file(root / rel, text)
    for rel in plan.delete:
        (root / rel).unlink(missing_ok=True)


def git_instructions(plan: ErasurePlan) -> str:
    paths = " ".join(f"--path {p}" for p in sorted(plan.delete))
    lines = [
        "The working tree no longer holds their data. Commit that, e.g.:",
        f"  git add -A && git commit -m 'Erase customer {plan.customer} (GDPR art. 17)'",
        "Older commits still do. crmkit does not rewrite history; to purge it, with "
        "git-filter-repo:",
        f"  git filter-repo --invert-paths {paths}",
    ]
    if plan.edits:
        lines += [
            "and for the edited files (their older versions still mention the customer),",
            "list the texts to scrub in a file and run:",
            "  git filter-repo --replace-text scrub.txt",
        ]
    lines.append("then force-push and ask everyone with a clone to re-clone.")
    return "\n".join(lines)


# --- commands and hooks -----------------------------------------------------------------


@click.group("privacy")
def privacy_group() -> None:
    """Data protection: access requests (export) and erasure (forget)."""


@crmkit.read_only(writes_when=lambda p: p["out"] is not None)
@privacy_group.command("export")
@click.argument("customer_id", metavar="CUSTOMER")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (default: stdout).")
@crmkit.pass_app
def privacy_export(app: crmkit.App, customer_id: str, out: Path | None) -> None:
    """Everything stored about CUSTOMER as one JSON document (an access request)."""
    app.require_customer(customer_id)
    ws = app.workspace
    customer = ws.customers[customer_id]
    history = ws.history(customer_id)
    document: dict[str, Any] = {
        "exported": app.today.isoformat(), "business": ws.settings.business,
        "customer": customer.to_json(),
        "derived": app.customer(customer_id).derived.to_json(),
        "segments": app.labels()[customer_id],
        "interactions": [i.to_json() for i in history],
        "deals": [{"id": d.id, "title": d.title, "stage": d.stage, "value": d.value,
                   "probability": d.probability, "expected_close": d.expected_close,
                   "notes": d.notes, "source": str(d.location)}
                  for d in ws.deals_of(customer_id)],
        "referred": [c.id for c in ws.customers.values() if c.referred_by == customer_id],
        "files": sorted({customer.location.path, *(i.location.path for i in history),
                         *(d.location.path for d in ws.deals_of(customer_id))}),
    }
    if out is None:
        crmkit.echo_json(document)
    else:
        with out.open("w", encoding="utf-8") as handle:
            crmkit.echo_json(document, file=handle)
        click.echo(f"wrote {out}", err=True)


@privacy_group.command("forget")
@click.argument("customer_id", metavar="CUSTOMER")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@crmkit.pass_app
def privacy_forget(app: crmkit.App, customer_id: str, yes: bool) -> None:
    """Erase CUSTOMER: their files, interactions and deals (after confirmation)."""
    app.require_customer(customer_id)
    plan = plan_erasure(app, customer_id)
    verify(app, plan)
    click.echo(f"Erasing {customer_id}:")
    for rel in plan.delete:
        click.echo(f"  delete {rel}")
    for note in plan.notes:
        click.echo(f"  edit   {note}")
    if not yes:
        click.confirm("This cannot be undone from crmkit (only from git). Go on?", abort=True)
    execute(app, plan)
    app.clear_caches()
    click.echo(f"erased {customer_id}: {len(plan.delete)} file(s) deleted, "
               f"{len(plan.edits)} edited; crmkit's caches cleared")
    output = app.workspace.output_dir
    if output.is_dir() and any(output.iterdir()):
        click.echo(f"{app.display_path(output)}/ was generated before: run 'crmkit build' "
                   "(or delete it) so that it no longer mentions them")
    click.echo(git_instructions(plan))


@crmkit.hookimpl
def crmkit_register(register: Any) -> None:
    register(ConfigSection(NAME, "Data protection: how long to keep leads.", SETTINGS_EXAMPLE,
                           options={"retention": RETENTION}))
    register(Check("consent_and_retention", customer_findings, settings=NAME))


@crmkit.hookimpl
def crmkit_register_commands(cli: click.Group) -> None:
    cli.add_command(privacy_group)
