"""The built-in commands: init, check, add, log, show, customers, build, watch, plugins."""

from __future__ import annotations

import datetime as dt
import shlex
import sys
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from ..engine.app import App, pass_app
from ..engine.i18n import N_, cli_translations
from ..engine.i18n import cli_gettext as _
from ..engine.i18n import cli_ngettext as ngettext
from ..engine.plugins import trust as trust_workspace
from ..engine.plugins import trust_file, workspace_plugin_files
from ..loading.schema import (
    DIRECTIONS,
    ID_PATTERN,
    LOCALES,
    MAX_NUMBER,
    PAYMENT_STATES,
    did_you_mean,
    parse_amount,
)
from ..loading.writing import write_customer
from ..model import CrmkitError, Interaction
from ..model.ids import slugify
from .main import cli
from .output import clean, day, echo_json, money, table
from .scaffold import create_workspace

FORMAT_TABLE_JSON = click.Choice(["table", "json"])


# --- init -------------------------------------------------------------------------------


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--business", help="Business name (default: the folder name).")
@click.option("--locale", type=click.Choice(LOCALES), default="en", show_default=True)
@click.option("--currency", default="EUR", show_default=True)
@click.option("--timezone", default="Europe/Berlin", show_default=True)
@click.option("--sender-name", help="Name emails are sent from.")
@click.option("--sender-email", help="Address emails are sent from.")
@pass_app
def init(app: App, directory: Path, business: str | None, locale: str, currency: str,
         timezone: str, sender_name: str | None, sender_email: str | None) -> None:
    """Create a new workspace in DIRECTORY (with a .gitignore for generated files).

    The new workspace is trusted: plugins you put in its plugins/ will run (see
    'crmkit trust')."""
    app.workspace_plugins = False  # no code of the workspace we may be standing in
    sections = list(app.registry.config_sections.values())
    name = business or directory.resolve().name
    foreign = workspace_plugin_files(directory)  # code that was there before (a clone)
    created = create_workspace(directory, name, locale, currency.upper(), timezone,
                               sender_name, sender_email, sections)
    for path in created:
        click.echo(_("created %(path)s") % {"path": path})
    if foreign:
        click.echo(_("note: %(folder)s/plugins/ already holds code (%(files)s): not trusted; "
                     "if you trust it, run '%(command)s'") % {
            "folder": clean(directory), "files": ", ".join(clean(p.name) for p in foreign),
            "command": f"crmkit trust {shlex.quote(str(directory))}"}, err=True)
    else:
        try:
            trust_workspace(directory)
        except OSError as exc:
            click.echo(_("warning: could not record %(folder)s as trusted in %(file)s "
                         "(%(error)s): run 'crmkit trust' there") % {
                "folder": clean(directory), "file": trust_file(),
                "error": exc.strerror or exc}, err=True)
    click.echo("\n" + _("Next: %(command)s") % {
        "command": f"cd {directory} && git init && crmkit add customer --name 'Anna Muster'"})


# --- check ------------------------------------------------------------------------------


@cli.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@pass_app(pure=True)
def check(app: App, fmt: str, strict: bool) -> None:
    """Validate the workspace; exit 1 if there are errors.

    Problems are printed as path:line:col: severity: message.
    """
    ws = app.workspace
    diagnostics = list(ws.diagnostics)
    if (output := ws.output_problem()) is not None and output not in diagnostics:
        diagnostics.append(output)  # a link out of the workspace: not in crmkit.yaml itself
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    if fmt == "json":
        echo_json({
            "ok": errors == 0 and not (strict and warnings),
            "errors": errors, "warnings": warnings,
            "customers": len(ws.customers), "interactions": len(ws.interactions),
            "deals": len(ws.deals),
            "diagnostics": [d.to_json() for d in diagnostics],
        })
    else:
        for diagnostic in diagnostics:
            click.echo(str(diagnostic))
        click.echo(check_summary(len(ws.customers), len(ws.interactions), len(ws.deals),
                                 errors, warnings))
        if app.verbose and ws.stats:
            click.echo(ngettext("read %(num)d file: %(parsed)d parsed, %(cached)d from cache",
                                "read %(num)d files: %(parsed)d parsed, %(cached)d from cache",
                                ws.stats.files) % {
                "num": ws.stats.files, "parsed": ws.stats.parsed,
                "cached": ws.stats.from_cache}, err=True)
    if errors or (strict and warnings):
        sys.exit(1)


def check_summary(customers: int, interactions: int, deals: int, errors: int,
                  warnings: int) -> str:
    """``2 customers, 3 interactions, 1 deal: 0 errors, 1 warning`` in the terminal's
    language."""
    return _("%(customers)s, %(interactions)s, %(deals)s: %(errors)s, %(warnings)s") % {
        "customers": ngettext("%(num)d customer", "%(num)d customers", customers)
        % {"num": customers},
        "interactions": ngettext("%(num)d interaction", "%(num)d interactions", interactions)
        % {"num": interactions},
        "deals": ngettext("%(num)d deal", "%(num)d deals", deals) % {"num": deals},
        "errors": ngettext("%(num)d error", "%(num)d errors", errors) % {"num": errors},
        "warnings": ngettext("%(num)d warning", "%(num)d warnings", warnings)
        % {"num": warnings}}


# --- add customer -----------------------------------------------------------------------


@cli.group()
def add() -> None:
    """Create a new record file (never overwrites an existing one)."""


@add.command("customer")
@click.argument("customer_id", required=False)
@click.option("--name", required=True, help="Full name (or the organisation's name).")
@click.option("--company")
@click.option("--email", "emails", multiple=True, help="Email address (repeatable).")
@click.option("--phone", "phones", multiple=True, help="Phone number (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Tag (repeatable).")
@click.option("--birthday", metavar="YYYY-MM-DD")
@click.option("--source", help="How they found us: referral, ad, website, fair, ...")
@click.option("--referred-by", metavar="CUSTOMER", help="Id of the customer who referred them.")
@click.option("--email-consent", metavar="HOW",
              help="Record email consent given today, and how (e.g. 'web form').")
@click.option("--locale", type=click.Choice(LOCALES), help="Language for their emails.")
@click.option("--notes")
@pass_app
def add_customer(app: App, customer_id: str | None, name: str, company: str | None,
                 emails: tuple[str, ...], phones: tuple[str, ...], tags: tuple[str, ...],
                 birthday: str | None, source: str | None, referred_by: str | None,
                 email_consent: str | None, locale: str | None, notes: str | None) -> None:
    """Create customers/CUSTOMER_ID.yaml (the id defaults to a slug of the name)."""
    ws = app.workspace
    customer_id = customer_id or slugify(name)
    if not customer_id:
        raise CrmkitError(_("cannot make an id from that name; pass CUSTOMER_ID"))
    if not ID_PATTERN.match(customer_id):
        example = slugify(customer_id) or "anna-mueller"
        raise CrmkitError(_("%(id)s is not a valid id: use a lowercase slug (a-z, 0-9 and "
                            "'-'), e.g. %(example)s") % {"id": repr(customer_id),
                                                        "example": repr(example)})
    if referred_by and referred_by not in ws.customers:
        raise CrmkitError("--referred-by: " + _("unknown customer %(id)s") % {
            "id": repr(referred_by)} + did_you_mean(referred_by, ws.customers))
    data: dict[str, Any] = {"name": name}
    if company:
        data["company"] = company
    if emails:
        data["email" if len(emails) == 1 else "emails"] = (
            emails[0] if len(emails) == 1 else list(emails))
    if phones:
        data["phone" if len(phones) == 1 else "phones"] = (
            phones[0] if len(phones) == 1 else list(phones))
    for key, value in (("birthday", birthday), ("source", source),
                       ("referred_by", referred_by), ("locale", locale)):
        if value:
            data[key] = value
    if tags:
        data["tags"] = list(tags)
    if email_consent:
        data["consent"] = {"email": True, "since": app.today, "how": email_consent}
    if notes:
        data["notes"] = notes
    rel = write_customer(ws, customer_id, data)
    click.echo(_("created %(path)s") % {"path": rel})


# --- log --------------------------------------------------------------------------------


@cli.command()
@click.argument("customer_id", metavar="CUSTOMER")
@click.option("-t", "--type", "kind", required=True,
              help="call, email, meeting, visit, purchase, quote, service, complaint, "
                   "feedback, support, social, message, letter, note, ...")
@click.option("-m", "--summary", help="What happened, in a sentence.")
@click.option("--date", "when", metavar="YYYY-MM-DD[THH:MM]",
              help="When (default: today; a future date plans it).")
@click.option("--channel", help="phone, email, visit, web, instagram, whatsapp, fair, ...")
@click.option("--direction", type=click.Choice(DIRECTIONS))
@click.option("--amount", help="Amount of a purchase or quote (1600, 1.600,00, 1,600.00).")
@click.option("--currency", help="Currency of the amount (default: the workspace's).")
@click.option("--item", "items", multiple=True, help="Item bought or quoted (repeatable).")
@click.option("--discount", help="Discount in percent (purchases).")
@click.option("--payment", type=click.Choice(PAYMENT_STATES), help="Payment status.")
@click.option("--score", type=click.IntRange(0, 10), help="Feedback score 0-10.")
@click.option("--service", help="Which service contract a service visit was for.")
@click.option("--follow-up", metavar="YYYY-MM-DD", help="Date to follow up.")
@click.option("--follow-up-what", metavar="TEXT", help="What to follow up about.")
@pass_app
def log(app: App, customer_id: str, kind: str, summary: str | None, when: str | None,
        channel: str | None, direction: str | None, amount: str | None, currency: str | None,
        items: tuple[str, ...], discount: str | None, payment: str | None, score: int | None,
        service: str | None, follow_up: str | None, follow_up_what: str | None) -> None:
    """Record an interaction with CUSTOMER as a new file below interactions/."""
    app.require_customer(customer_id)
    types = app.interaction_types()
    if kind not in types:
        raise CrmkitError(_("unknown interaction type %(type)s") % {"type": repr(kind)}
                          + did_you_mean(kind, types) + "; "
                          + _("known: %(types)s") % {"types": ", ".join(types)})
    data: dict[str, Any] = {"customer": customer_id, "date": when or app.today.isoformat(),
                            "type": kind, "channel": channel, "direction": direction,
                            "summary": summary, "currency": currency, "payment": payment,
                            "service": service, "items": list(items), "score": score}
    for key, value in (("amount", amount), ("discount", discount)):
        if value is not None:
            number = parse_amount(value)  # as import reads them: 1.600,00 1,600.00 1600
            if number is None:
                raise CrmkitError(f"--{key}: " + _(
                    "%(value)s is not a number (write e.g. 1600, 1.600,00 or 1,600.00)")
                    % {"value": repr(value)})
            if number.copy_abs() >= MAX_NUMBER:
                raise CrmkitError(f"--{key}: " + _("%(value)s is not a number below "
                                                   "%(limit)s") % {
                    "value": repr(value), "limit": f"{MAX_NUMBER - 1:,}"})
            data[key] = _number(number)
    if follow_up:
        data["follow_up"] = ({"date": follow_up, "what": follow_up_what} if follow_up_what
                             else follow_up)
    rel = app.record_interaction(data, now=when is None)
    click.echo(_("created %(path)s") % {"path": rel})


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


# --- show -------------------------------------------------------------------------------


def _said() -> Any:
    """The terminal's :class:`Translations` where ``show`` says values in words, ``None``
    in an English terminal: there its lines keep the values as the files write them and
    ISO dates, as before and as the docs show them (``purchase (visit)``,
    ``lifecycle=active``)."""
    t = cli_translations()
    return None if t.language == "en" else t


def _word(value: str | None) -> str:
    """A type, channel or stage as a word of the terminal's language (``Kauf``)."""
    t = _said()
    return (value or "") if t is None else t.word(value)


def _day(value: dt.date | str | None) -> str:
    """A date (or a label's ISO date) as the terminal's language writes it
    (``23.11.2026``), ISO in English."""
    t = _said()
    if t is not None:
        return t.date(value, "medium")
    return value if isinstance(value, str) else day(value)


def _describe(i: Interaction, currency: str) -> str:
    parts = [_word(i.type)]
    if i.channel:
        parts.append(f"({_word(i.channel)})")
    if i.summary:
        parts.append(f"— {i.summary}")
    elif i.items:
        parts.append(f"— {', '.join(item.name for item in i.items)}")
    if i.amount is not None:
        parts.append(f"[{money(i.amount, i.currency or currency)}]")
    if i.score is not None:
        parts.append("[" + _("score %(score)s") % {"score": i.score} + "]")
    if i.resolves:
        until = (" " + _("until %(day)s") % {"day": _day(i.until)}
                 if i.type == "snooze" and i.until else "")
        parts.append(f"({', '.join(i.resolves)}{until})")
    return clean(" ".join(parts))


#: The stock labels that are a sentence, by their title (another plugin's label is
#: titled by its name: ``next_step`` → ``Next step``).
SENTENCE_LABELS = {"churn_reason": N_("Churn reason")}

#: The stock labels by their title, where ``show`` says values in words (``_said``):
#: ``lifecycle=active`` is ``Lebenszyklus: aktiv``.  Another plugin's label keeps its
#: name; a text value is said as a word where crmkit knows it (``t.word``), a number in
#: the terminal's format, a probability as a percentage.
LABEL_TITLES = {"lifecycle": N_("lifecycle"), "abc": N_("ABC class"), "rfm": N_("RFM"),
                "churn_risk": N_("churn risk"), "win_back_worthy": N_("win-back"),
                "p_alive": N_("P(alive)"), "clv": N_("CLV")}
PERCENT_LABELS = frozenset({"churn_risk", "p_alive"})


def _label(key: str, value: Any, currency: str) -> str:
    """One label of the ``Segments`` line: ``lifecycle=active`` (English terminal),
    ``Lebenszyklus: aktiv``; a yes/no label by its name or title."""
    t = _said()
    if t is None:
        return key if value is True else f"{key}={value}"
    title = _(LABEL_TITLES[key]) if key in LABEL_TITLES else key
    if value is True:
        return title
    if key == "clv":
        said = money(Decimal(str(value)), currency)
    elif key in PERCENT_LABELS and isinstance(value, (int, float)):
        said = t.percent(value)
    elif isinstance(value, (int, float)):
        said = t.decimal(value)
    else:
        said = t.word(str(value))
    return f"{title}: {said}"


@cli.command()
@click.argument("customer_id", metavar="CUSTOMER")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("-n", "--limit", default=15, show_default=True,
              help="How many recent interactions to list (0 = all).")
@pass_app(pure=True)
def show(app: App, customer_id: str, fmt: str, limit: int) -> None:
    """The 360° view of one customer: profile, derived values, history, what is open."""
    view = app.customer(customer_id)
    customer = view.customer
    derived = view.derived
    history = view.history
    labels = app.labels()[customer_id]
    reminders = [r for r in app.reminders() if r.customer == customer_id]
    deals = list(view.deals)
    currency = app.workspace.settings.currency
    if fmt == "json":
        echo_json({
            "customer": customer.to_json(), "as_of": app.today.isoformat(),
            "derived": derived.to_json(), "segments": labels,
            "reminders": [r.to_json(app.today) for r in reminders],
            "open_follow_ups": [{"date": o.follow_up.date.isoformat(), "what": o.follow_up.what,
                                 "source": str(o.interaction.location)}
                                for o in derived.open_follow_ups],
            "deals": [{"id": d.id, "title": d.title, "stage": d.stage, "value": d.value,
                       "probability": d.probability,
                       "expected_close": day(d.expected_close) or None} for d in deals],
            "history": [i.to_json() for i in reversed(history)],
            "planned": [i.to_json() for i in view.planned],
        })
        app.warn_about_problems()
        return
    c = customer
    title = clean(c.name) + (f" ({clean(c.company)})" if c.company else "")
    lines = [f"{title}  [{c.id}]", "=" * min(79, len(title) + len(c.id) + 4)]

    def row(label: str, value: Any) -> None:
        if value not in (None, "", (), []):
            lines.append(f"{clean(label) + ':':<19} {clean(value)}")

    row(_("Email"), ", ".join(c.emails))
    row(_("Phone"), ", ".join(c.phones))
    row(_("Address"), c.address.one_line() if c.address else None)
    row(_("Birthday"), _day(c.birthday))
    row(_("Tags"), ", ".join(c.tags))
    row(_("Source"), _word(c.source))
    row(_("Referred by"), c.referred_by)
    consent = ((_("yes, since %(day)s") % {"day": _day(c.consent.since)} if c.consent.since
                else _("yes"))
               + (f" ({c.consent.how})" if c.consent.how else "")) if c.consent.email else _("no")
    row(_("Email consent"), consent)
    row(_("Prefers"), _word(c.preferred_channel))
    for s in c.services:
        row(_("Service"), (_("%(service)s, every %(interval)s since %(day)s") if s.start
                           else _("%(service)s, every %(interval)s")) % {
            "service": s.name, "day": _day(s.start),
            "interval": cli_translations().duration(s.interval.count, s.interval.unit)})
    row(_("Notes"), c.notes)
    for key, value in c.fields.items():
        row(str(key), value)
    lines.append("")
    lines.append(_("As of %(day)s") % {"day": _day(app.today)})
    row(_("Customer since"), _day(derived.first_purchase) or _("no purchase yet"))
    row(_("Last contact"), _day(derived.last_contact))
    row(_("Last purchase"), _day(derived.last_purchase))
    row(_("Purchases"), derived.purchase_count)
    row(_("Revenue"), money(derived.revenue, currency))
    row(_("Revenue 12 months"), money(derived.revenue_12m, currency))
    row(_("Avg order value"), money(derived.average_order_value, currency))
    if derived.complaint_count:
        row(_("Complaints"), derived.complaint_count)
    if labels:
        flat = []
        sentences = []  # a label that is a sentence (churn_reason) gets a line of its own
        for key, value in labels.items():
            if isinstance(value, dict):
                flat.extend(f"{k}" for k, v in value.items() if v is True)
            elif key.endswith("_since") or value in (None, False):
                continue
            elif isinstance(value, str) and " " in value:
                sentences.append((_(SENTENCE_LABELS[key]) if key in SENTENCE_LABELS
                                  else key.replace("_", " ").capitalize(), value))
            else:
                text = _label(key, value, currency)
                since = labels.get(f"{key}_since")
                flat.append(_("%(segment)s (since %(day)s)") % {"segment": text,
                                                                "day": _day(since)}
                            if since else text)
        row(_("Segments"), ", ".join(flat))
        for label, sentence in sentences:
            row(label, sentence)
    if reminders:
        lines.append("")
        lines.append(_("Reminders (%(commands)s)") % {
            "commands": "crmkit done ID, crmkit snooze ID --for 1w"})
        for r in reminders:
            if r.snoozed_until:
                flag = " " + _("(snoozed until %(day)s)") % {"day": _day(r.snoozed_until)}
            elif r.suppressed:
                flag = " " + (_("(expired on %(day)s)") % {"day": _day(r.expires)}
                              if r.expires and r.expires < app.today
                              else _("(held back by the frequency cap)"))
            else:
                flag = " " + _("(overdue)") if r.overdue(app.today) else ""
            lines.append(f"  {_day(r.due)}  {clean(r.title)}{clean(flag)}")
            lines.append(f"              {r.id}")
    if deals:
        lines.append("")
        lines.append(_("Deals"))
        for d in deals:
            prob = "" if d.probability is None else ", " + (
                f"{d.probability:.0%}" if _said() is None else _said().percent(d.probability))
            lines.append(f"  {d.id}: {clean(d.title)} [{_word(d.stage)}{prob}] "
                         f"{money(d.value, currency)}".rstrip())
    if derived.planned:
        lines.append("")
        lines.append(_("Planned"))
        for i in derived.planned:
            lines.append(f"  {_day(i.date)}  {_describe(i, currency)}")
    lines.append("")
    shown = list(reversed(history))
    if limit:
        shown = shown[:limit]
    counted = ngettext("%(num)d interaction", "%(num)d interactions", len(history)) % {
        "num": len(history)}
    if len(shown) < len(history):
        counted = _("%(counted)s, latest %(num)d") % {"counted": counted, "num": len(shown)}
    lines.append(_("History (%(counted)s)") % {"counted": counted})
    for i in shown:
        lines.append(f"  {_day(i.date)}  {_describe(i, currency)}")
    click.echo("\n".join(map(clean, lines)))  # ids, stages and keys come from files too
    app.warn_about_problems()


# --- customers --------------------------------------------------------------------------


@cli.command()
@click.option("--tag", "tags", multiple=True,
              help="Only customers with this tag (repeatable: all).")
@click.option("--segment", "segments", multiple=True, metavar="NAME[=VALUE]",
              help="Only customers in a segment, e.g. 'lifecycle=active' or a custom "
                   "segment's name (repeatable: all).")
@click.option("--format", "fmt", type=FORMAT_TABLE_JSON, default="table", show_default=True)
@pass_app(pure=True)
def customers(app: App, tags: tuple[str, ...], segments: tuple[str, ...], fmt: str) -> None:
    """List customers with their key figures."""
    everybody = len(app.workspace.customers)
    try:
        chosen = [c for c in app.customers(*segments) if all(t in c.customer.tags for t in tags)]
    except CrmkitError as exc:
        raise click.BadParameter(str(exc), param_hint="--segment") from None
    currency = app.workspace.settings.currency
    if fmt == "json":
        echo_json([{**c.customer.to_json(), "derived": c.derived.to_json()} for c in chosen])
    else:
        rows = []
        for c in chosen:
            d = c.derived
            rows.append([c.id, c.customer.name, c.customer.company, ", ".join(c.customer.tags),
                         day(d.last_contact), d.purchase_count,
                         money(d.revenue_12m, currency) if d.revenue_12m else ""])
        click.echo(table(["id", _("name"), _("company"), _("tags"), _("last contact"),
                          _("purchases"), _("revenue 12m")], rows))
        click.echo(ngettext("%(num)d of %(all)d customer", "%(num)d of %(all)d customers",
                            everybody) % {"num": len(chosen), "all": everybody}, err=True)
    app.warn_about_problems()


# --- build and watch --------------------------------------------------------------------

#: A folder with more files written by ``crmkit build`` than this is one line.
BUILD_LISTED = 8


@cli.command()
@pass_app
def build(app: App) -> None:
    """Write every generated file (reports, reminder calendar) to the output folder."""
    before = len(app.problems)
    written = app.build()
    failed = [p for p in app.problems[before:] if p.is_error]
    folders: dict[Path, list[Path]] = {}
    for path in written:
        folders.setdefault(path.parent, []).append(path)
    for folder, paths in folders.items():
        if len(paths) > BUILD_LISTED:  # the site's customer pages: one line, not 10,000
            click.echo(ngettext("wrote %(num)d file in %(folder)s/",
                                "wrote %(num)d files in %(folder)s/", len(paths))
                       % {"num": len(paths), "folder": app.display_path(folder)})
            continue
        for path in paths:
            click.echo(_("wrote %(path)s") % {"path": app.display_path(path)})
    app.warn_about_problems()
    if failed:
        raise CrmkitError(ngettext(
            "the build is incomplete: %(num)d plugin could not write its files (above)",
            "the build is incomplete: %(num)d plugins could not write their files (above)",
            len(failed)) % {"num": len(failed)})


@cli.command()
@click.option("--serve", "serve_", is_flag=True,
              help="Also serve the output folder on 127.0.0.1; pages reload themselves.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port for --serve (0 picks a free one).")
@pass_app
def watch(app: App, serve_: bool, port: int) -> None:
    """Rebuild the output whenever a workspace file changes (Ctrl-C stops)."""
    from .watch import Watcher

    watcher = Watcher(app.root, app._today, lambda line: click.echo(line),
                      workspace_plugins=app.workspace_plugins)
    try:
        watcher.run(port if serve_ else None)
    except OSError as exc:
        raise CrmkitError(_("cannot serve on %(address)s: %(error)s") % {
            "address": f"127.0.0.1:{port}", "error": exc.strerror}) from None


# --- plugins ----------------------------------------------------------------------------


@cli.command()
@click.option("--format", "fmt", type=FORMAT_TABLE_JSON, default="table", show_default=True)
@pass_app(pure=True)
def plugins(app: App, fmt: str) -> None:
    """List plugins (stock, installed, the workspace's own), what each registered and the
    hooks it implements."""
    host = app.host
    registry = app.registry
    provided: dict[str, dict[str, list[str]]] = {}
    for (kind, name), owner in registry.owners.items():
        provided.setdefault(owner, {}).setdefault(_REGISTERED[kind], []).append(name)
    infos = sorted(host.plugins, key=lambda p: (p.kind != "stock", p.kind, p.name))
    if fmt == "json":
        echo_json([{"name": p.name, "kind": p.kind, "origin": p.origin, "version": p.version,
                    "enabled": not p.disabled, "hooks": list(p.hooks),
                    "registers": provided.get(p.name, {})} for p in infos])
    else:
        def registers(name: str) -> str:
            found = provided.get(name, {})
            return ", ".join(_registered(k, len(found[k])) for k in _REGISTERED.values()
                             if k in found)

        click.echo(table([_("name"), _("kind"), _("version"), _("registers"), _("hooks")], [
            [p.name, p.kind, p.version or "", registers(p.name),
             _("(disabled)") if p.disabled else
             ", ".join(h.removeprefix("crmkit_") for h in p.hooks)] for p in infos]))
    for problem in [*host.diagnostics, *registry.diagnostics]:
        click.echo(str(problem), err=True)


_REGISTERED = {"Label": "labels", "ReminderKind": "reminder kinds", "Metric": "metrics",
               "Check": "checks", "ReportSection": "report sections",
               "ConfigSection": "settings sections", "Importer": "importers"}


def _registered(kind: str, n: int) -> str:
    """How ``crmkit plugins`` counts what a plugin registered: ``3 labels``, ``1 metric``."""
    if kind == "labels":
        text = ngettext("%(num)d label", "%(num)d labels", n)
    elif kind == "reminder kinds":
        text = ngettext("%(num)d reminder kind", "%(num)d reminder kinds", n)
    elif kind == "metrics":
        text = ngettext("%(num)d metric", "%(num)d metrics", n)
    elif kind == "checks":
        text = ngettext("%(num)d check", "%(num)d checks", n)
    elif kind == "report sections":
        text = ngettext("%(num)d report section", "%(num)d report sections", n)
    elif kind == "settings sections":
        text = ngettext("%(num)d settings section", "%(num)d settings sections", n)
    else:
        text = ngettext("%(num)d importer", "%(num)d importers", n)
    return text % {"num": n}
