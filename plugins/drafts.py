"""Email drafts for due reminders: one Jinja template per reminder kind and locale.

Templates live in ``templates/email/<kind>.<locale>.txt.j2`` (this plugin's
own, or the workspace's of the same name, which win).  The first line is
``Subject: ...``, then a blank line, then the body.  Only customers with
recorded email consent and an address get a draft; the others are reported as
skipped with the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit import (
    ConfigSection,
    Customer,
    Diagnostic,
    EmailDraft,
    Interaction,
    Options,
    Reminder,
    Segmentation,
    Settings,
    Snapshot,
    Workspace,
)

NAME = "drafts"
TEMPLATE_DIR = Path(__file__).parent / "templates"
MONTHS = {
    "de": ("Januar", "Februar", "März", "April", "Mai", "Juni", "Juli", "August",
           "September", "Oktober", "November", "Dezember"),
    "en": ("January", "February", "March", "April", "May", "June", "July", "August",
           "September", "October", "November", "December"),
}
SECURITY = ("starttls", "ssl", "none")


def long_date(day: dt.date | None, locale: str = "en") -> str:
    """``3. Dezember 2026`` / ``3 December 2026``."""
    if day is None:
        return ""
    month = MONTHS.get(locale, MONTHS["en"])[day.month - 1]
    return f"{day.day}. {month} {day.year}" if locale == "de" else f"{day.day} {month} {day.year}"


def money(amount: Decimal | float | None, currency: str | None = None, locale: str = "en") -> str:
    """``1.234,50 EUR`` / ``EUR 1,234.50``."""
    if amount is None:
        return ""
    text = f"{Decimal(str(amount)):,.2f}"
    if locale == "de":
        text = text.replace(",", "\0").replace(".", ",").replace("\0", ".")
        return f"{text} {currency}".strip() if currency else text
    return f"{currency} {text}".strip() if currency else text


TITLES = frozenset({"dr", "dr.", "prof", "prof.", "herr", "frau", "mr", "mr.", "mrs", "mrs.",
                    "ms", "ms.", "dipl.-ing.", "ing."})


def first_name(customer: Customer) -> str:
    """The first word of the name that is not a title ("Dr. Özlem Yılmaz" → "Özlem")."""
    if customer.company and customer.name == customer.company:
        return customer.name
    words = [w for w in customer.name.split() if w.lower() not in TITLES]
    return words[0] if words else crmkit.clean(customer.name)


def default_salutation(customer: Customer, locale: str) -> str:
    if customer.salutation:
        return crmkit.clean(customer.salutation)
    if locale == "de":
        return f"Guten Tag {crmkit.clean(customer.name)}"
    return f"Dear {crmkit.clean(first_name(customer))}"


def template_name(kind: str, locale: str) -> str:
    return f"email/{kind}.{locale}.txt.j2"


@dataclass(frozen=True, slots=True)
class Skipped:
    reminder: Reminder
    reason: str


def customer_locale(customer: Customer, settings: Settings) -> str:
    return customer.locale or settings.locale


def _trigger(snapshot: Snapshot, reminder: Reminder) -> Interaction | None:
    if reminder.source is None:
        return None
    for interaction in snapshot.history(reminder.customer):
        if interaction.location == reminder.source:
            return interaction
    return None


def render(templates: Any, reminder: Reminder, snapshot: Snapshot, segments: Segmentation,
           locale: str | None = None) -> EmailDraft | None:
    """The draft for ``reminder``, or ``None`` if there is no template for its kind.

    The template is the customer's locale (``locale`` overrides it), else the
    workspace's, else English.
    """
    import jinja2

    customer = snapshot.customer(reminder.customer)
    if customer is None or not customer.emails:
        return None
    settings = snapshot.settings
    locale = locale or customer_locale(customer, settings)
    for candidate in dict.fromkeys((locale, settings.locale, "en")):
        try:
            template = templates.get_template(template_name(reminder.kind, candidate))
            locale = candidate
            break
        except jinja2.TemplateNotFound:
            continue
    else:
        return None
    derived = snapshot.derived(customer.id)
    sender = settings.sender
    context = {
        "customer": customer, "first_name": first_name(customer),
        "salutation": default_salutation(customer, locale), "reminder": reminder,
        "details": dict(reminder.details), "interaction": _trigger(snapshot, reminder),
        "derived": derived, "segments": segments[customer.id],
        "years_as_customer": int(derived.years_as_customer(snapshot.today)),
        "business": settings.business, "sender": sender,
        "sender_phone": sender.phone if sender else None,
        "locale": locale, "today": snapshot.today,
    }
    text = template.render(context)
    head, _, body = text.partition("\n")
    if not head.startswith("Subject:"):
        raise ValueError(f"template {template.name} must start with a 'Subject:' line")
    return EmailDraft(reminder=reminder, to=customer.emails[0],
                      subject=head.removeprefix("Subject:").strip(),
                      body=body.lstrip("\n"), locale=locale, template=template.name)


def skip_reason(reminder: Reminder, snapshot: Snapshot) -> str | None:
    """Why this reminder gets no email, or ``None``."""
    customer = snapshot.customer(reminder.customer)
    if customer is None:
        return "unknown customer"
    if reminder.suppressed:
        return f"held back: {reminder.suppressed}"
    if not customer.emails:
        return "no email address: suggest a call" if customer.phones else "no email address"
    if not customer.consent.email:
        return "no email consent: suggest a call" if customer.phones else "no email consent"
    return None


# --- settings ---------------------------------------------------------------------------

SETTINGS_EXAMPLE = """\
email:
  smtp:
    host: smtp.example.com
    port: 587
    security: starttls        # starttls | ssl | none
    user: info@example.com
    password_env: CRMKIT_SMTP_PASSWORD"""


def smtp_settings(settings: Settings) -> tuple[Any, list[Diagnostic]]:
    from .mail import SmtpSettings

    root = Options(settings, "email", source=NAME)
    root.check_keys(("smtp",))
    smtp = root.sub("smtp")
    smtp.check_keys(("host", "port", "security", "user", "password_env", "timeout"))
    host = smtp.text("host")
    security = smtp.text("security", "starttls") or "starttls"
    if security not in SECURITY:
        root.diagnostics.append(Diagnostic.error(
            f"'email.smtp.security' must be one of {', '.join(SECURITY)}",
            smtp.locate("security"), source=NAME))
        security = "starttls"
    port = smtp.integer("port", 465 if security == "ssl" else 587, 1)
    result = SmtpSettings(
        host=host or "", port=port, security=security, user=smtp.text("user"),
        password_env=smtp.text("password_env", "CRMKIT_SMTP_PASSWORD") or "",
        timeout=smtp.number("timeout", 30.0, 1))
    return (result if host else None), root.diagnostics


# --- hooks ------------------------------------------------------------------------------


@crmkit.hookimpl
def crmkit_config_sections() -> list[ConfigSection]:
    return [ConfigSection("email", "How `crmkit drafts --send` sends (SMTP).", SETTINGS_EXAMPLE)]


@crmkit.hookimpl
def crmkit_validate(workspace: Workspace) -> list[Diagnostic]:
    _, problems = smtp_settings(workspace.settings)
    return problems


@crmkit.hookimpl
def crmkit_template_dirs() -> list[Path]:
    return [TEMPLATE_DIR]


@crmkit.hookimpl
def crmkit_jinja_filters() -> dict[str, Any]:
    return {"longdate": long_date, "money": money}


@crmkit.hookimpl(trylast=True)
def crmkit_draft_email(reminder: Reminder, snapshot: Snapshot, segments: Segmentation,
                       templates: Any) -> EmailDraft | None:
    return render(templates, reminder, snapshot, segments)


@crmkit.hookimpl
def crmkit_register_commands(cli: click.Group) -> None:
    from .drafts_cli import drafts_command

    cli.add_command(drafts_command)


def drafts_for(app: crmkit.App, reminders: list[Reminder]
               ) -> Iterator[EmailDraft | Skipped]:
    """A draft, or the reason there is none, for each reminder."""
    for reminder in reminders:
        reason = skip_reason(reminder, app.snapshot)
        if reason:
            yield Skipped(reminder, reason)
            continue
        draft = app.draft_email(reminder)
        yield draft if draft is not None else Skipped(
            reminder, f"no email template for {reminder.kind!r}")
