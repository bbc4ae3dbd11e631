"""Data protection (GDPR/DSGVO): access requests, erasure, retention, consent checks.

Both commands start from :mod:`.finding`: everything the workspace holds about one
person, by link (the records that name them, valid or not) and by content (every file
that mentions their id, emails or phones).  ``crmkit privacy export CUSTOMER`` gives
it as one JSON document (:mod:`.access`).  ``crmkit privacy forget CUSTOMER`` shows a
plan, then erases it in steps that a re-run finishes if anything stops them
(:mod:`.erasure`).  crmkit never rewrites git history; it prints how to.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit import Check, ConfigSection, CustomerView, Diagnostic, Option

from . import access, erasure
from .finding import GENERATED, RECORD, Found, Person, person_of, scan, their_entries
from .language import _, ngettext

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


# --- commands and hooks -----------------------------------------------------------------


def locate(app: crmkit.App, customer_id: str) -> tuple[Person, list[Found]]:
    """The person and every file that holds something about them.  Their customer file
    need not load (or, after an interrupted erasure or a hand-deleted file, exist): a
    record that names them is enough; otherwise "unknown customer"."""
    person = person_of(app, customer_id)
    found = scan(app, person)
    if not person.loaded and not any(
            f.area == RECORD and f.unreadable is None
            and ((e := their_entries(f, person.ids)).whole or e.spans) for f in found):
        app.require_customer(customer_id)
    return person, found


@click.group("privacy")
def privacy_group() -> None:
    """Data protection: access requests (export) and erasure (forget)."""


# Not pure (see crmkit.pass_app): it reads every file of the workspace (generated ones too), which
# a replayed output would not notice changing; and the replay cache would keep a copy.
@privacy_group.command("export")
@click.argument("customer_id", metavar="CUSTOMER")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (default: stdout).")
@click.option("--force", is_flag=True,
              help="Replace an existing --out file that crmkit did not write.")
@crmkit.pass_app
def privacy_export(app: crmkit.App, customer_id: str, out: Path | None, force: bool) -> None:
    """Everything held about CUSTOMER as one JSON document (an access request): records
    (also those that fail validation), predictions, open reminders, drafts, and every
    file that mentions them."""
    person, found = locate(app, customer_id)
    document = access.document(app, person, found)
    if out is None:
        crmkit.echo_json(document)
    else:
        buffer = io.StringIO()
        crmkit.echo_json(document, file=buffer)
        app.write_named(out, buffer.getvalue(), force)
        click.echo(_("wrote %(path)s") % {"path": out}, err=True)


@privacy_group.command("forget")
@click.argument("customer_id", metavar="CUSTOMER")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@click.option("--keep", "keep", multiple=True, metavar="FILE",
              help="Leave FILE as it is although it mentions them (e.g. a word that happens "
                   "to be their id); only for files crmkit cannot change by itself. "
                   "Repeatable.")
@crmkit.pass_app
def privacy_forget(app: crmkit.App, customer_id: str, yes: bool, keep: tuple[str, ...]) -> None:
    """Erase CUSTOMER: their records and every file that mentions them (after showing
    the plan and confirmation).  Interrupted, it is finished by running it again."""
    person, found = locate(app, customer_id)
    root = app.workspace.root
    plan = erasure.plan_erasure(person, found, root, tuple(_relative(app, k) for k in keep))
    if not person.loaded:
        click.echo((
            _("%(id)s's customer file does not load (see 'crmkit check'): read as far as it "
              "goes")
            if any(f.folder == "customers" and their_entries(f, person.ids).whole
                   for f in found) else
            _("%(id)s's customer file is gone: looking for their id only (their emails and "
              "phone numbers are not known)")) % {"id": customer_id})
    click.echo(_("Erasing %(who)s:") % {
        "who": customer_id + (f" ({crmkit.clean(person.name)})" if person.name else "")})
    for step in plan.ordered():
        click.echo(f"  {step}")
    for rel in plan.kept:
        click.echo("  " + erasure.line("keep", rel, _("as asked")))
    if plan.by_hand:
        click.echo(_("These mention them, and crmkit cannot change them by itself:"))
        for _file, where in plan.by_hand:
            click.echo(f"  {crmkit.clean(where)}")
        raise crmkit.CrmkitError(_(
            "nothing was changed: edit these by hand (or, for a file whose mention is not "
            "about them, add --keep FILE), then run '%(command)s' again") % {
            "command": f"crmkit privacy forget {customer_id}"})
    if not yes:
        app.confirm(_("This cannot be undone from crmkit (only from git). Go on?"))
    try:
        done = erasure.apply(app, plan)
    finally:
        app.forget_state()  # nothing kept from this run: it read what is now erased
    deleted = sum(1 for s in done if s.action == "delete" and s.area != GENERATED)
    generated = sum(1 for s in done if s.area == GENERATED)
    edited = sum(1 for s in done if s.action == "edit")
    click.echo(_("erased %(id)s: %(deleted)s deleted, %(edited)d edited, %(generated)s "
                 "deleted; crmkit's caches cleared") % {
        "id": customer_id, "edited": edited,
        "deleted": ngettext("%(num)d file", "%(num)d files", deleted) % {"num": deleted},
        "generated": ngettext("%(num)d generated file", "%(num)d generated files", generated)
        % {"num": generated}})
    left = [f for f in scan(app, person) if f.rel not in plan.kept]
    if left:
        for f in left:
            click.echo("  " + _("still there: %(file)s") % {"file": crmkit.clean(f.rel)})
        raise crmkit.CrmkitError(ngettext(
            "%(num)d file still holds their data (changed while crmkit ran?): run "
            "'%(command)s' again",
            "%(num)d files still hold their data (changed while crmkit ran?): run "
            "'%(command)s' again", len(left)) % {
            "num": len(left), "command": f"crmkit privacy forget {customer_id}"})
    if generated:
        click.echo(_("%(folder)s/: generated files that mentioned them are deleted; "
                     "'crmkit build' (and 'crmkit drafts') make them again") % {
            "folder": app.display_path(app.workspace.output_dir)})
    click.echo(_("The working tree no longer holds their id, emails or phone numbers "
                 "(searched again after erasing).") + (
                   " " + _("Left as asked: %(files)s.") % {
                       "files": ", ".join(map(crmkit.clean, plan.kept))}
                   if plan.kept else ""))
    click.echo(erasure.git_instructions(plan, done))


def _relative(app: crmkit.App, given: str) -> str:
    """A ``--keep`` path as the plan names files: relative to the workspace."""
    root = app.workspace.root.resolve()
    path = Path(given)
    for candidate in ([path] if path.is_absolute() else [root / path, Path.cwd() / path]):
        try:
            return candidate.resolve().relative_to(root).as_posix()
        except ValueError:
            continue
    return given


@crmkit.hookimpl
def crmkit_register(register: Any) -> None:
    register(ConfigSection(NAME, "Data protection: how long to keep leads.", SETTINGS_EXAMPLE,
                           options={"retention": RETENTION}))
    register(Check("consent_and_retention", customer_findings, settings=NAME))


@crmkit.hookimpl
def crmkit_register_commands(cli: click.Group) -> None:
    cli.add_command(privacy_group)
