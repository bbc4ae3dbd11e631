"""``crmkit drafts``: review emails for due reminders (.eml, mbox, JSON), send on request."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

import click

import crmkit
from crmkit import EmailDraft

FORMATS = ("eml", "mbox", "json")


def _when(app: crmkit.App) -> dt.datetime:
    tz = zoneinfo.ZoneInfo(app.workspace.settings.timezone)
    now = dt.datetime.now(tz).replace(microsecond=0)
    if now.date() == app.today:
        return now
    return dt.datetime.combine(app.today, dt.time(9, 0), tzinfo=tz)


def _describe(draft_or_reminder: object) -> str:
    r = getattr(draft_or_reminder, "reminder", draft_or_reminder)
    return f"{r.due.isoformat()} {r.customer} {r.kind}"


@click.command("drafts")
@click.option("--within", type=click.IntRange(0), default=7, show_default=True, metavar="DAYS",
              help="Draft for reminders due up to DAYS from today (overdue ones included).")
@click.option("--kind", "kinds", multiple=True, metavar="KIND", help="Only this kind (repeatable).")
@click.option("--customer", "customers", multiple=True, metavar="ID",
              help="Only this customer (repeatable).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the drafts (default: the workspace's output folder + /drafts).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="eml", show_default=True,
              help="eml: one file per draft; mbox: one drafts.mbox; json: print, write nothing.")
@click.option("--send", is_flag=True, help="Send the drafts via SMTP (email.smtp in crmkit.yaml) "
              "and record each sent email as an interaction.")
@click.option("--yes", is_flag=True, help="With --send: do not ask for confirmation.")
@crmkit.pass_app
def drafts_command(app: crmkit.App, within: int, kinds: tuple[str, ...],
                   customers: tuple[str, ...], out_dir: Path | None, fmt: str, send: bool,
                   yes: bool) -> None:
    """Emails for due reminders, from templates, for customers who agreed to email.

    Customers without consent or address are listed at the end: call them instead.
    """
    from . import Skipped, drafts_for, smtp_settings
    from .mail import build_message, draft_file_name, write_eml, write_mbox

    ws = app.workspace
    for cid in customers:
        app.require_customer(cid)
    horizon = app.today + dt.timedelta(days=within)
    reminders = [r for r in app.reminders() if r.due <= horizon
                 and (not kinds or r.kind in kinds) and (not customers or r.customer in customers)]
    if ws.settings.sender is None:
        raise crmkit.CrmkitError("crmkit.yaml has no 'sender' (name and email): "
                                 "drafts need a From address")
    sender = ws.settings.sender
    when = _when(app)
    drafts: list[tuple[EmailDraft, object]] = []
    skipped: list[Skipped] = []
    for item in drafts_for(app, reminders):
        if isinstance(item, Skipped):
            skipped.append(item)
            continue
        customer = ws.customers[item.reminder.customer]
        try:
            drafts.append((item, build_message(item, sender, customer.name, when)))
        except (ValueError, TypeError) as exc:
            skipped.append(Skipped(item.reminder, f"invalid address {item.to!r}: {exc}"))

    if send:
        _send(app, drafts, skipped, yes, smtp_settings)
        return
    if fmt == "json":
        crmkit.echo_json({
            "drafts": [{"due": d.reminder.due.isoformat(), "customer": d.reminder.customer,
                        "kind": d.reminder.kind, "to": d.to, "subject": d.subject,
                        "body": d.body, "locale": d.locale, "template": d.template,
                        "file": draft_file_name(d)} for d, _ in drafts],
            "skipped": [{"due": s.reminder.due.isoformat(), "customer": s.reminder.customer,
                         "kind": s.reminder.kind, "reason": s.reason} for s in skipped],
        })
        app.warn_about_problems()
        return
    folder = out_dir or (ws.output_dir / "drafts")
    if fmt == "mbox":
        path = write_mbox(folder / "drafts.mbox", [m for _, m in drafts])
        click.echo(f"wrote {len(drafts)} drafts to {app.display_path(path)}")
    else:
        paths = write_eml(app, folder, [(draft_file_name(d), m) for d, m in drafts])
        for path in paths:
            click.echo(f"wrote {app.display_path(path)}")
        click.echo(f"{len(paths)} drafts in {app.display_path(folder)}")
    _report_skipped(skipped)
    app.warn_about_problems()


def _report_skipped(skipped: list) -> None:
    if not skipped:
        return
    click.echo(f"\nNo email for {len(skipped)} reminder(s):")
    for s in skipped:
        click.echo(f"  {_describe(s)}: {s.reason}")


def _send(app: crmkit.App, drafts: list, skipped: list, yes: bool, smtp_settings) -> None:
    from .mail import send_all

    problems = [d for d in app.workspace.errors
                if d.location is not None and d.location.path == "crmkit.yaml"
                and "'email" in d.message]
    if problems:
        raise crmkit.CrmkitError(f"fix the email settings first: {problems[0]}")
    settings = smtp_settings(app.workspace.settings)
    if settings is None:
        raise crmkit.CrmkitError("no SMTP server configured: add email.smtp.host to "
                                 "crmkit.yaml (see docs/drafts.md)")
    if not drafts:
        click.echo("nothing to send")
        _report_skipped(skipped)
        return
    for draft, _ in drafts:
        click.echo(f"  {_describe(draft)} → {draft.to}: {draft.subject}")
    if not yes:
        click.confirm(f"Send {len(drafts)} email(s) via {settings.host}:{settings.port}?",
                      abort=True)
    results = send_all(settings, drafts)
    failed = 0
    for result in results:
        draft = result.draft
        if not result.sent:
            failed += 1
            click.echo(f"failed: {_describe(draft)} → {draft.to}: {result.error}", err=True)
            continue
        rel = app.record_interaction({
            "customer": draft.reminder.customer, "date": app.today, "type": "email",
            "channel": "email", "direction": "outbound", "summary": draft.subject,
            "fields": {"message_id": str(result.message["Message-ID"]),
                       "reminder": draft.reminder.kind},
        })
        click.echo(f"sent: {_describe(draft)} → {draft.to} (recorded in {rel})")
    click.echo(f"{len(results) - failed} sent, {failed} failed")
    _report_skipped(skipped)
    if failed:
        raise SystemExit(1)
