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
from typing import Any

import click

import crmkit
from crmkit import ConfigSection, Customer, CustomerView, EmailDraft, Interaction, Option, Reminder

NAME = "drafts"
SECURITY = ("starttls", "ssl", "none")


def long_date(day: dt.date | None, locale: str = "en") -> str:
    """``3. Dezember 2026`` / ``December 3, 2026`` (Babel's CLDR data)."""
    return crmkit.translations(locale).date(day, "long")


def money(amount: Decimal | float | None, currency: str | None = None, locale: str = "en") -> str:
    """``1.234,50 €`` / ``€1,234.50`` (Babel's CLDR data); without a currency the number."""
    return crmkit.translations(locale).money(amount, currency)


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


def template_name(base: str, locale: str) -> str:
    return f"{base}.{locale}.txt.j2"


@dataclass(frozen=True, slots=True)
class Skipped:
    reminder: Reminder
    reason: str


def _trigger(c: CustomerView, reminder: Reminder) -> Interaction | None:
    if reminder.source is None:
        return None
    for interaction in (*c.history, *c.planned):
        if interaction.location == reminder.source:
            return interaction
    return None


def render(templates: Any, reminder: Reminder, c: CustomerView, base: str | None = None,
           locale: str | None = None) -> EmailDraft | None:
    """The draft for ``reminder``, or ``None`` if there is no template for its kind.

    ``base`` is the kind's template (default ``email/<kind>``); the template is the
    customer's locale (``locale`` overrides it), else the workspace's, else English.
    """
    import jinja2

    customer = c.customer
    if not customer.emails:
        return None
    settings = c.settings
    base = base or f"email/{reminder.kind}"
    locale = locale or customer.locale or settings.locale
    for candidate in dict.fromkeys((locale, settings.locale, "en")):
        try:
            template = templates.get_template(template_name(base, candidate))
            locale = candidate
            break
        except jinja2.TemplateNotFound:
            continue
    else:
        return None
    derived = c.derived
    sender = settings.sender
    context = {
        "customer": customer, "first_name": first_name(customer),
        "salutation": default_salutation(customer, locale), "reminder": reminder,
        "details": dict(reminder.details), "interaction": _trigger(c, reminder),
        "derived": derived, "segments": _labels(c),
        "years_as_customer": int(derived.years_as_customer(c.today)),
        "business": settings.business, "sender": sender,
        "sender_phone": sender.phone if sender else None,
        "locale": locale, "today": c.today,
    }
    text = template.render(context)
    head, _, body = text.partition("\n")
    if not head.startswith("Subject:"):
        raise ValueError(f"template {template.name} must start with a 'Subject:' line")
    return EmailDraft(reminder=reminder, to=customer.emails[0],
                      subject=head.removeprefix("Subject:").strip(),
                      body=body.lstrip("\n"), locale=locale, template=template.name)


def _labels(c: CustomerView) -> dict[str, Any]:
    return {name: c.labels[name] for name in c.labels if not name.startswith("_")}


def skip_reason(reminder: Reminder, customer: Customer | None) -> str | None:
    """Why this reminder gets no email, or ``None``."""
    if customer is None:
        return "unknown customer"
    if reminder.suppressed:
        return reminder.suppressed
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
SMTP = {
    "host": Option(None, "The SMTP server.", kind="text"),
    "port": Option(None, "Default: 465 with ssl, else 587.", kind="integer", minimum=1,
                   maximum=65535),
    "security": Option("starttls", "How the connection is secured.", choices=SECURITY),
    "user": Option(None, "Who logs in.", kind="text"),
    "password_env": Option("CRMKIT_SMTP_PASSWORD", "The environment variable that holds the "
                           "password (its name starts with CRMKIT_).",
                           check=lambda name: None if str(name).startswith("CRMKIT_") else (
                               f"'email.smtp.password_env' must name a CRMKIT_ variable, not "
                               f"{name!r}: a workspace must not choose which of your secrets "
                               "crmkit sends to its SMTP server")),
    "timeout": Option(30.0, "Seconds to wait for the server.", minimum=1),
}
SETTINGS_EXAMPLE += "\n  max_per_customer: 1        # emails per customer and run"


def smtp_settings(settings: Any) -> Any:
    """The SMTP settings, or ``None`` without a host."""
    from .mail import SmtpSettings

    smtp = settings.options("email").smtp
    if not smtp.host:
        return None
    port = smtp.port or (465 if smtp.security == "ssl" else 587)
    return SmtpSettings(host=smtp.host, port=port, security=smtp.security, user=smtp.user,
                        password_env=smtp.password_env, timeout=smtp.timeout)


# --- hooks ------------------------------------------------------------------------------


@crmkit.hookimpl
def crmkit_register(register: Any) -> None:
    register(ConfigSection("email", "How `crmkit drafts --send` sends (SMTP).",
                           SETTINGS_EXAMPLE, options={
                               "smtp": SMTP,
                               "max_per_customer": Option(
                                   1, "At most this many emails per customer and run of "
                                   "'drafts' (the most important first).", minimum=1)}))


@crmkit.hookimpl
def crmkit_jinja_filters() -> dict[str, Any]:
    # `money` (amount, currency, locale) comes with every template environment
    return {"longdate": long_date}


@crmkit.hookimpl(trylast=True)
def crmkit_draft_email(reminder: Reminder, kind: crmkit.ReminderKind | None,
                       customer: CustomerView, templates: Any) -> EmailDraft | None:
    return render(templates, reminder, customer, kind.email_template if kind else None)


@crmkit.hookimpl
def crmkit_register_commands(cli: click.Group) -> None:
    from .cli import drafts_command

    cli.add_command(drafts_command)


def drafts_for(app: crmkit.App, reminders: list[Reminder]
               ) -> Iterator[EmailDraft | Skipped]:
    """A draft, or the reason there is none, for each reminder."""
    customers = app.workspace.customers
    for reminder in reminders:
        reason = skip_reason(reminder, customers.get(reminder.customer))
        if reason:
            yield Skipped(reminder, reason)
            continue
        draft = app.draft_email(reminder)
        yield draft if draft is not None else Skipped(
            reminder, f"no email template for {reminder.kind!r}")
