"""``crmkit drafts``: review emails for due reminders (.eml, mbox, JSON), send on request."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from pathlib import Path

import click

import crmkit
from crmkit import EmailDraft

FORMATS = ("eml", "mbox", "json")


def _(message: str) -> str:
    """What the command says itself, in the terminal's language (LANG)."""
    return crmkit.translations(terminal=True).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return crmkit.translations(terminal=True).ngettext(singular, plural, n)


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
@click.option("--within", type=click.IntRange(0, 3660), metavar="DAYS",
              help="Draft for reminders due up to DAYS from today (overdue ones included; "
                   "default 7, and 0 with --send: nothing goes out before its day).")
@click.option("--kind", "kinds", multiple=True, metavar="KIND", help="Only this kind (repeatable).")
@click.option("--customer", "customers", multiple=True, metavar="ID",
              help="Only this customer (repeatable).")
@click.option("--owner", metavar="NAME",
              help="Only the customers this team member owns (docs/team.md).")
@click.option("--mine", is_flag=True,
              help="Only my customers: owned by git's user.name (or $CRMKIT_USER).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Folder for the drafts (default: the workspace's output folder + /drafts).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="eml", show_default=True,
              help="eml: one file per draft; mbox: one drafts.mbox; json: print, write nothing.")
@click.option("--send", is_flag=True, help="Send the drafts via SMTP (email.smtp in crmkit.yaml) "
              "and record each sent email as an interaction.")
@click.option("--yes", is_flag=True, help="With --send: do not ask for confirmation (an "
              "email that may have gone out in an interrupted run is held back, not resent).")
@click.option("--resend", multiple=True, metavar="ID",
              help="With --send: send the email for reminder ID even though an interrupted "
                   "run may have sent it (repeatable).")
@crmkit.pass_app
def drafts_command(app: crmkit.App, within: int | None, kinds: tuple[str, ...],
                   customers: tuple[str, ...], owner: str | None, mine: bool,
                   out_dir: Path | None, fmt: str, send: bool, yes: bool,
                   resend: tuple[str, ...]) -> None:
    """Emails for due reminders, from templates, for customers who agreed to email.

    Customers without consent or address are listed at the end: call them instead.
    With --send, each email is recorded as an interaction right after the server
    took it (resolving its reminder), so no run sends it twice (docs/drafts.md).
    """
    if within is None:
        within = 0 if send else 7
    if resend and not send:
        raise click.UsageError(_("--resend only means something with --send"))
    if send:
        from .outbox import Outbox

        with Outbox(app).sending():  # before anything is read: a run that just ended
            _drafts(app, within, kinds, customers, out_dir, fmt, send, yes, resend,
                    (owner, mine))
        return
    _drafts(app, within, kinds, customers, out_dir, fmt, send, yes, resend, (owner, mine))


def _drafts(app: crmkit.App, within: int, kinds: tuple[str, ...], customers: tuple[str, ...],
            out_dir: Path | None, fmt: str, send: bool, yes: bool, resend: tuple[str, ...],
            owners: tuple[str | None, bool] = (None, False)) -> None:
    from . import Skipped, drafts_for, smtp_settings
    from .mail import build_message, draft_file_name, write_eml, write_mbox

    ws = app.workspace
    for cid in customers:
        app.require_customer(cid)
    owned = app.owned_by(*owners)
    horizon = app.today + dt.timedelta(days=within)
    today = app.today
    reminders = [r for r in app.reminders() if r.due <= horizon
                 and (not kinds or r.kind in kinds) and (not customers or r.customer in customers)
                 and (owned is None or r.customer in owned)
                 and not r.snoozed_until and not (r.expires and r.expires < today)]
    if ws.settings.sender is None:
        raise crmkit.CrmkitError(_("crmkit.yaml has no 'sender' (name and email): drafts "
                                   "need a From address"))
    sender = ws.settings.sender
    when = _when(app)
    drafts: list[tuple[EmailDraft, object]] = []
    skipped: list[Skipped] = []
    for item in drafts_for(app, reminders):
        if isinstance(item, Skipped):
            skipped.append(item)
            continue
        customer = ws.customers[item.reminder.customer]
        refused = refused_before(app, item)
        if refused:
            skipped.append(Skipped(item.reminder, refused))
            continue
        try:
            drafts.append((item, build_message(item, sender, customer.name, when)))
        except (ValueError, TypeError) as exc:
            skipped.append(Skipped(item.reminder, f"invalid address {item.to!r}: {exc}"))
    drafts = _one_per_customer(app, drafts, skipped)

    if send:
        _send(app, drafts, skipped, yes, smtp_settings, resend,
              {ws.output_dir / "drafts", *([out_dir] if out_dir else [])})
        return
    if fmt == "json":
        crmkit.echo_json({
            "drafts": [{"id": d.reminder.id, "due": d.reminder.due.isoformat(),
                        "customer": d.reminder.customer,
                        "kind": d.reminder.kind, "to": d.to, "subject": d.subject,
                        "body": d.body, "locale": d.locale, "template": d.template,
                        "file": draft_file_name(d)} for d, _ in drafts],
            "skipped": [{"id": s.reminder.id, "due": s.reminder.due.isoformat(),
                         "customer": s.reminder.customer,
                         "kind": s.reminder.kind, "reason": s.reason} for s in skipped],
        })
        app.warn_about_problems()
        return
    folder = out_dir or (ws.output_dir / "drafts")
    if fmt == "mbox":
        path = write_mbox(folder / "drafts.mbox", [m for _, m in drafts])
        click.echo(ngettext("wrote %(num)d draft to %(path)s", "wrote %(num)d drafts to %(path)s",
                            len(drafts)) % {"num": len(drafts), "path": app.display_path(path)})
    else:
        paths = write_eml(app, folder, [(draft_file_name(d), m) for d, m in drafts])
        for path in paths:
            click.echo(_("wrote %(path)s") % {"path": app.display_path(path)})
        click.echo(ngettext("%(num)d draft in %(folder)s", "%(num)d drafts in %(folder)s",
                            len(paths)) % {"num": len(paths), "folder": app.display_path(folder)})
    _report_skipped(skipped)
    app.warn_about_problems()


def _one_per_customer(app: crmkit.App, drafts: list, skipped: list) -> list:
    """At most ``email.max_per_customer`` emails per customer and day (those sent
    earlier today count): the most important (priority, then due date) go; the
    others wait, with the reason."""
    from . import Skipped

    limit = int(app.workspace.settings.options("email").max_per_customer)
    ranked = sorted(drafts, key=lambda d: (d[0].reminder.priority, d[0].reminder.due))
    counts: dict[str, list[str]] = {}
    chosen = set()
    for draft, _ in ranked:
        cid = draft.reminder.customer
        first = counts.get(cid)
        if first is None:
            first = counts[cid] = _sent_today(app, cid)
        if len(first) < limit:
            first.append(draft.reminder.id)
            chosen.add(draft.reminder.id)
        else:
            skipped.append(Skipped(draft.reminder, f"at most {limit} email(s) per customer "
                                   f"and day (email.max_per_customer): {first[0]} goes "
                                   "first"))
    return [d for d in drafts if d[0].reminder.id in chosen]


def _sent_today(app: crmkit.App, customer_id: str) -> list[str]:
    """What crmkit sent this customer today (its records' reminder ids)."""
    return [rid for i in app.customer(customer_id).history
            if i.date == app.today and i.type == "email" and i.fields.get("message_id")
            for rid in (i.resolves or ("an email",))]


def _report_skipped(skipped: list) -> None:
    if not skipped:
        return
    click.echo("\n" + ngettext("No email for %(num)d reminder:", "No email for %(num)d reminders:",
                                len(skipped)) % {"num": len(skipped)})
    for s in skipped:
        click.echo(f"  {_describe(s)}: {s.reason}")


def _send(app: crmkit.App, drafts: list, skipped: list, yes: bool, smtp_settings,
          resend: tuple[str, ...], folders: set[Path]) -> None:
    """Send one message at a time, each recorded before the next one goes out.

    Before a message goes out an outbox entry is written; once the server took it,
    the email is recorded below ``interactions/`` (``resolves`` its reminder, so no
    later run drafts it again) and the entry removed.  An entry left behind by a run
    that stopped in between means the message may have been accepted: this run asks
    (or, with --yes, holds that reminder back) instead of sending it again.
    """
    from . import Skipped
    from .mail import ConnectionLost, Mailer
    from .outbox import Outbox

    problems = [d for d in app.workspace.errors
                if d.location is not None and d.location.path == "crmkit.yaml"
                and "'email" in d.message]
    if problems:
        raise crmkit.CrmkitError(_("fix the email settings first: %(problem)s")
                                 % {"problem": problems[0]})
    settings = smtp_settings(app.workspace.settings)
    if settings is None:
        raise crmkit.CrmkitError(_("no SMTP server configured: add email.smtp.host to "
                                   "crmkit.yaml (see docs/drafts.md)"))
    outbox = Outbox(app)
    entries = outbox.entries()
    waiting = {entry.reminder for entry in entries}
    for rid in resend:
        if rid not in waiting:
            click.echo(_("note: --resend %(id)s: no email of an interrupted run waits for it")
                       % {"id": rid}, err=True)
    held, recorded = _unconfirmed(app, outbox, entries, yes, set(resend))
    drafts = [d for d in drafts if d[0].reminder.id not in recorded]
    if held:
        drafts, unsure = ([d for d in drafts if d[0].reminder.id not in held],
                          [d for d in drafts if d[0].reminder.id in held])
        skipped.extend(Skipped(d.reminder, f"may have gone out on {held[d.reminder.id]} "
                               "in a run that stopped before recording it: run "
                               "'crmkit drafts --send' without --yes to decide, or "
                               f"--resend {d.reminder.id}") for d, _ in unsure)
    if not drafts:
        click.echo(_("nothing to send"))
        _report_skipped(skipped)
        if held:
            raise SystemExit(1)
        return
    for draft, _message in drafts:
        click.echo(f"  {_describe(draft)} → {draft.to}: {draft.subject}")
    if not yes:
        app.confirm(ngettext("Send %(num)d email via %(server)s?",
                             "Send %(num)d emails via %(server)s?", len(drafts)) % {
            "num": len(drafts), "server": f"{settings.host}:{settings.port}"})
    sent: list[str] = []
    sent_ids: set[str] = set()
    failed = 0
    stopped: str | None = None
    with Mailer(settings) as mailer:
        for draft, msg in drafts:
            reminder = draft.reminder
            try:
                entry = outbox.add(reminder.id, reminder.customer, draft.to, draft.subject,
                                   str(msg["Message-ID"]))
            except OSError as exc:
                stopped = _("cannot write the outbox journal (%(error)s), so %(email)s and "
                            "the rest were not sent") % {"error": exc.strerror or exc,
                                                         "email": _describe(draft)}
                break
            try:
                refusal = mailer.send(msg)
            except ConnectionLost as exc:
                stopped = _("connection lost while sending %(email)s (%(error)s): it may "
                            "have gone out; the next run asks before sending it again") % {
                    "email": f"{_describe(draft)} → {draft.to}", "error": exc}
                break
            if refusal is not None:
                outbox.remove(entry)
                failed += 1
                later = ("" if refusal.permanent
                         else " " + _("(for now: the next run tries again)"))
                click.echo(_("failed: %(email)s: %(reason)s") % {
                    "email": f"{_describe(draft)} → {draft.to}", "reason": refusal.text}
                    + later, err=True)
                if refusal.permanent:
                    _record_refusal(app, draft, msg, refusal.text)
                continue
            try:
                rel = _record_sent(app, draft, msg)
            except (crmkit.CrmkitError, OSError) as exc:
                sent.append(f"{_describe(draft)} → {draft.to} " + _("(not recorded)"))
                stopped = _("%(email)s went out but could not be recorded (%(error)s); "
                            "%(file)s keeps it, so no run sends it again; the rest were not "
                            "sent") % {
                    "email": _describe(draft), "error": getattr(exc, "strerror", None) or exc,
                    "file": app.display_path(outbox.folder / entry.file_name)}
                break
            outbox.remove(entry)
            sent.append(f"{_describe(draft)} → {draft.to}")
            sent_ids.add(str(msg["Message-ID"]))
            for folder in folders:
                _forget_draft_file(folder, draft)
            click.echo(_("sent: %(email)s (recorded in %(file)s)") % {
                "email": f"{_describe(draft)} → {draft.to}", "file": rel})
    for folder in folders:
        _forget_mbox_drafts(folder, sent_ids)
    click.echo(_("%(sent)d sent, %(failed)d failed") % {"sent": len(sent), "failed": failed}
               + (", " + _("%(num)d not sent") % {"num": len(drafts) - len(sent) - failed}
                  if stopped else ""))
    _report_skipped(skipped)
    if stopped:
        click.echo(_("stopped: %(reason)s") % {"reason": stopped}, err=True)
        if sent:
            click.echo(ngettext("%(num)d email went out in this run:",
                                "%(num)d emails went out in this run:", len(sent))
                       % {"num": len(sent)}, err=True)
            for line in sent:
                click.echo(f"  {line}", err=True)
    if failed or stopped or held:
        raise SystemExit(1)


def _unconfirmed(app: crmkit.App, outbox, entries: list, yes: bool, resend: set[str]
                 ) -> tuple[dict[str, str], set[str]]:
    """Settle the outbox entries earlier runs left: those recorded since, or whose
    reminder is no longer open, are removed; for the others, ask (without --yes) or
    hold the reminder back.  Returns ``{reminder id: when}`` of those held back and
    the ids of those recorded as sent now."""
    open_ids = {r.id for r in app.reminders()}
    held: dict[str, str] = {}
    recorded: set[str] = set()
    for entry in entries:
        if entry.reminder not in open_ids or _recorded(app, entry):
            outbox.remove(entry)
            continue
        if entry.reminder in resend:
            outbox.remove(entry)
            continue
        question = _("An email to %(to)s (%(subject)s, %(id)s) may have gone out on "
                     "%(when)s: the run stopped before recording it.") % {
            "to": entry.to, "subject": repr(entry.subject), "id": entry.reminder,
            "when": entry.started}
        if yes:
            click.echo(_("held back: %(question)s") % {"question": question}, err=True)
            held[entry.reminder] = entry.started
            continue
        click.echo(question)
        answer = app.choose(_("Record it as sent (y), send it again (n), or decide later "
                              "(s)?"), ["y", "n", "s"], "s")
        if answer == "y":
            rel = app.record_interaction({
                "customer": entry.customer, "date": app.today, "type": "email",
                "channel": "email", "direction": "outbound", "summary": entry.subject,
                "resolves": [entry.reminder], "by": app.user,
                "fields": {"message_id": entry.message_id, "to": entry.to,
                           "recorded": "after an interrupted run"}}, now=True)
            outbox.remove(entry)
            recorded.add(entry.reminder)
            click.echo(_("recorded in %(file)s") % {"file": rel})
        elif answer == "n":
            outbox.remove(entry)
        else:
            held[entry.reminder] = entry.started
    return held, recorded


def _recorded(app: crmkit.App, entry) -> bool:
    if entry.customer not in app.workspace.customers:
        return False
    view = app.customer(entry.customer)
    return any(i.fields.get("message_id") == entry.message_id
               for i in (*view.history, *view.planned))


def _record_sent(app: crmkit.App, draft: EmailDraft, msg) -> str:
    return app.record_interaction({
        "customer": draft.reminder.customer, "date": app.today, "type": "email",
        "channel": "email", "direction": "outbound", "summary": draft.subject,
        "resolves": [draft.reminder.id], "by": app.user,
        "fields": {"message_id": str(msg["Message-ID"]), "to": draft.to},
    }, now=True)


def _record_refusal(app: crmkit.App, draft: EmailDraft, msg, refusal: str) -> None:
    """A note, so that the next run does not try the same address again."""
    try:
        app.record_interaction({
            "customer": draft.reminder.customer, "date": app.today, "type": "note",
            "summary": f"Email not delivered to {draft.to}: {refusal}", "by": app.user,
            "fields": {"message_id": str(msg["Message-ID"]), "to": draft.to,
                       "delivery": "refused", "reminder": draft.reminder.id},
        }, now=True)
    except (crmkit.CrmkitError, OSError) as exc:
        click.echo(_("warning: the refusal could not be recorded: %(error)s") % {"error": exc},
                   err=True)


def refused_before(app: crmkit.App, draft: EmailDraft) -> str | None:
    """Why not to try again: the server refused this address for this reminder."""
    for i in app.customer(draft.reminder.customer).history:
        fields = i.fields
        if (i.type == "note" and fields.get("delivery") == "refused"
                and fields.get("reminder") == draft.reminder.id and fields.get("to") == draft.to):
            return (f"the server refused {draft.to} on {i.date.isoformat()} ({i.location}): "
                    "fix the address, or 'crmkit done ID'")
    return None


def _forget_draft_file(folder: Path, draft: EmailDraft) -> None:
    """A sent draft leaves the drafts folder: it must not be sent again from a mail
    client."""
    from .mail import draft_file_name, is_ours

    path = folder / draft_file_name(draft)
    if path.is_file() and is_ours(path):
        path.unlink()


def _forget_mbox_drafts(folder: Path, message_ids: set[str]) -> None:
    """The same for ``drafts.mbox``: the sent messages are taken out of it."""
    path = folder / "drafts.mbox"
    if not message_ids or not path.is_file():
        return
    import mailbox

    box = mailbox.mbox(path, create=False)
    try:
        box.lock()
        gone = [key for key, msg in box.iteritems() if msg["Message-ID"] in message_ids]
        for key in gone:
            box.remove(key)
        if gone:
            box.flush()  # written to a new file, then renamed into place
    finally:
        box.unlock()
        box.close()
