"""Email as RFC 5322 messages: built with the standard library, written as .eml or
mbox, sent over SMTP.  Header injection is impossible by construction: every
header value passes through ``email.headerregistry`` and the ``default`` policy,
which refuse line breaks, and display names are flattened to one line first.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import email.policy
import hashlib
import mailbox
import os
import smtplib
import ssl
from collections.abc import Iterable
from dataclasses import dataclass
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import crmkit
from crmkit import EmailDraft

HEADER_REMINDER = "X-Crmkit-Reminder"


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    host: str
    port: int
    security: str  # "starttls" | "ssl" | "none"
    user: str | None
    password_env: str
    timeout: float = 30.0


def message_id(draft: EmailDraft, sender: Any) -> str:
    """Stable per reminder, so a re-run produces the same message."""
    r = draft.reminder
    key = f"{r.customer}|{r.kind}|{r.due.isoformat()}|{r.source.path if r.source else ''}"
    domain = sender.email.rpartition("@")[2]
    return f"<{hashlib.sha1(key.encode()).hexdigest()[:24]}.crmkit@{domain}>"


def draft_file_name(draft: EmailDraft) -> str:
    r = draft.reminder
    return f"{r.due.isoformat()}-{r.customer}-{r.kind}.eml"


def build_message(draft: EmailDraft, sender: Any, customer_name: str,
                  when: dt.datetime) -> EmailMessage:
    """A complete message; raises ``ValueError`` for an address that is not one."""
    msg = EmailMessage(policy=email.policy.default)
    msg["From"] = Address(display_name=crmkit.clean(sender.name), addr_spec=sender.email)
    msg["To"] = Address(display_name=crmkit.clean(customer_name), addr_spec=draft.to)
    msg["Subject"] = " ".join(crmkit.clean(draft.subject).split())
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = message_id(draft, sender)
    r = draft.reminder
    msg[HEADER_REMINDER] = f"{r.kind}; customer={r.customer}; due={r.due.isoformat()}"
    msg.set_content(draft.body, charset="utf-8", cte="quoted-printable")
    return msg


def write_eml(app: crmkit.App, folder: Path, messages: list[tuple[str, EmailMessage]]
              ) -> list[Path]:
    """Write one .eml per message; remove crmkit's own drafts that are no longer due."""
    written = []
    for name, msg in messages:
        path = folder / name
        app.write_file(path, msg.as_bytes())
        written.append(path)
    keep = {p.name for p in written}
    if folder.is_dir():
        for old in folder.glob("*.eml"):
            if old.name not in keep and _is_ours(old):
                old.unlink()
    return written


def _is_ours(path: Path) -> bool:
    try:
        with open(path, "rb") as handle:
            head = handle.read(8192)
    except OSError:
        return False
    return f"\n{HEADER_REMINDER}:".encode() in head.replace(b"\r\n", b"\n")


def write_mbox(path: Path, messages: Iterable[EmailMessage]) -> Path:
    """All messages in one mbox file (replaced as a whole)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    box = mailbox.mbox(tmp, create=True)
    try:
        box.lock()
        for msg in messages:
            box.add(msg)
        box.flush()
    finally:
        box.unlock()
        box.close()
    os.replace(tmp, path)
    return path


@dataclass(frozen=True, slots=True)
class SendResult:
    draft: EmailDraft
    message: EmailMessage
    error: str | None = None

    @property
    def sent(self) -> bool:
        return self.error is None


def send_all(settings: SmtpSettings, batch: list[tuple[EmailDraft, EmailMessage]]
             ) -> list[SendResult]:
    """Send one by one; a refused recipient fails only that message."""
    password = os.environ.get(settings.password_env) if settings.user else None
    if settings.user and password is None:
        raise crmkit.CrmkitError(f"set the SMTP password in ${settings.password_env} "
                                 "(crmkit never reads passwords from files)")
    results: list[SendResult] = []
    try:
        if settings.security == "ssl":
            smtp: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port,
                                                  timeout=settings.timeout,
                                                  context=ssl.create_default_context())
        else:
            smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
    except (OSError, smtplib.SMTPException) as exc:
        raise crmkit.CrmkitError(f"cannot connect to {settings.host}:{settings.port}: "
                                 f"{exc}; nothing was sent") from None
    with smtp:
        try:
            if settings.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if settings.user:
                smtp.login(settings.user, password or "")
        except (OSError, smtplib.SMTPException) as exc:
            raise crmkit.CrmkitError(f"SMTP login to {settings.host} failed: {exc}; "
                                     "nothing was sent") from None
        broken: str | None = None
        for draft, msg in batch:
            if broken:
                results.append(SendResult(draft, msg, broken))
                continue
            try:
                refused = smtp.send_message(msg)
                error = (f"refused: {refused}" if refused else None)
            except smtplib.SMTPRecipientsRefused as exc:
                code, text = next(iter(exc.recipients.values()))
                error = f"recipient refused: {code} {text.decode(errors='replace')}"
            except smtplib.SMTPResponseException as exc:
                error = f"{exc.smtp_code} {exc.smtp_error.decode(errors='replace')}"
            except (OSError, smtplib.SMTPException) as exc:
                broken = error = f"connection lost: {exc}"
            results.append(SendResult(draft, msg, error))
    return results
