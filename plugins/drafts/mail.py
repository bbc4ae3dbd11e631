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
import re
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

from .cli import _

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
    """From the reminder's id: a draft written twice, or sent after it was written, is
    the same message (a mail client or server can tell a duplicate)."""
    domain = sender.email.rpartition("@")[2]
    digest = hashlib.sha1(draft.reminder.id.encode()).hexdigest()[:24]
    return f"<{digest}.crmkit@{domain}>"


def draft_file_name(draft: EmailDraft) -> str:
    """``<due>-<customer>-<kind>[-<occasion>].eml``, from the reminder's id."""
    kind, customer, due, *rest = draft.reminder.id.split("/")
    return "-".join((due, customer, kind, *rest)) + ".eml"


#: Characters with a meaning in an address header.  A display name holding one is
#: quoted, and Python's header folding drops the quotes of a long one, so that
#: "Mueller, <attacker@evil.example>, ..." became three recipients.
_SPECIALS = re.compile(r'[<>()\[\]:;@\\,."]+')


def display_name(name: str) -> str:
    """``name`` as a display name that is words only: whatever its length and however
    the header is folded, it cannot name another recipient."""
    return " ".join(_SPECIALS.sub(" ", crmkit.clean(name)).split())


def build_message(draft: EmailDraft, sender: Any, customer_name: str,
                  when: dt.datetime) -> EmailMessage:
    """A complete message; raises ``ValueError`` for an address that is not one."""
    msg = EmailMessage(policy=email.policy.default)
    msg["From"] = Address(display_name=display_name(sender.name), addr_spec=sender.email)
    msg["To"] = Address(display_name=display_name(customer_name), addr_spec=draft.to)
    msg["Subject"] = " ".join(crmkit.clean(draft.subject).split())
    msg["Date"] = format_datetime(when)
    msg["Message-ID"] = message_id(draft, sender)
    r = draft.reminder
    msg[HEADER_REMINDER] = r.id
    msg.set_content(draft.body, charset="utf-8", cte="quoted-printable")
    return msg


def write_eml(app: crmkit.App, folder: Path, messages: list[tuple[str, EmailMessage]]
              ) -> list[Path]:
    """Write one .eml per message; remove crmkit's own drafts that are no longer due."""
    written = []
    for name, msg in messages:
        path = folder / name
        app.write_output(path, msg.as_bytes())  # output: 0644 less the umask, like reports
        written.append(path)
    keep = {p.name for p in written}
    if folder.is_dir():
        for old in folder.glob("*.eml"):
            if old.name not in keep and is_ours(old):
                old.unlink()
    return written


def is_ours(path: Path) -> bool:
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


class ConnectionLost(Exception):
    """The connection broke while a message was on its way: it may have been accepted."""


class Mailer:
    """One SMTP connection; :meth:`send` says for each message whether the server took
    it, refused it, or (raising :class:`ConnectionLost`) cannot be known."""

    def __init__(self, settings: SmtpSettings) -> None:
        self.settings = settings
        self._smtp: smtplib.SMTP | None = None

    def __enter__(self) -> Mailer:
        settings = self.settings
        password = os.environ.get(settings.password_env) if settings.user else None
        if settings.user and settings.security == "none" and not _loopback(settings.host):
            raise crmkit.CrmkitError(_(
                "'email.smtp.security: none' would send the password to %(host)s in clear: use "
                "starttls or ssl (none only for a server on this machine); nothing was sent")
                % {"host": settings.host})
        if settings.user and password is None:
            raise crmkit.CrmkitError(_(
                "set the SMTP password in %(variable)s (crmkit never reads passwords from "
                "files); nothing was sent") % {"variable": f"${settings.password_env}"})
        try:
            if settings.security == "ssl":
                smtp: smtplib.SMTP = smtplib.SMTP_SSL(settings.host, settings.port,
                                                      timeout=settings.timeout,
                                                      context=ssl.create_default_context())
            else:
                smtp = smtplib.SMTP(settings.host, settings.port, timeout=settings.timeout)
        except (OSError, smtplib.SMTPException) as exc:
            raise crmkit.CrmkitError(_("cannot connect to %(server)s: %(error)s; nothing was "
                                       "sent") % {"server": f"{settings.host}:{settings.port}",
                                                  "error": exc}) from None
        try:
            if settings.security == "starttls":
                smtp.starttls(context=ssl.create_default_context())
            if settings.user:
                smtp.login(settings.user, password or "")
        except (OSError, smtplib.SMTPException, UnicodeError) as exc:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                smtp.close()
            why = (_("the user name or password has characters the login cannot carry")
                   if isinstance(exc, UnicodeError) else str(exc))  # never the password
            raise crmkit.CrmkitError(_("SMTP login to %(host)s failed: %(reason)s; nothing was "
                                       "sent") % {"host": settings.host, "reason": why}
                                     ) from None
        self._smtp = smtp
        return self

    def __exit__(self, *exc: object) -> None:
        if self._smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._smtp.quit()
            with contextlib.suppress(OSError):
                self._smtp.close()

    def send(self, msg: EmailMessage) -> Refusal | None:
        """``None`` when the server accepted ``msg``, else why it did not take it."""
        assert self._smtp is not None
        try:
            refused = self._smtp.send_message(msg)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            return Refusal(f"recipient refused: {code} {_text(text)}", code)
        except smtplib.SMTPServerDisconnected as exc:
            raise ConnectionLost(str(exc) or "the server closed the connection") from None
        except smtplib.SMTPResponseException as exc:  # sender or data refused: not taken
            return Refusal(f"{exc.smtp_code} {_text(exc.smtp_error)}", exc.smtp_code)
        except (OSError, smtplib.SMTPException) as exc:
            raise ConnectionLost(str(exc) or type(exc).__name__) from None
        if refused:
            code, text = next(iter(refused.values()))
            return Refusal(f"recipient refused: {code} {_text(text)}", code)
        return None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why the server did not take a message; a 4xx answer (greylisting, a full
    mailbox) is for now, a 5xx one for good."""

    text: str
    code: int

    @property
    def permanent(self) -> bool:
        return self.code >= 500


def _loopback(host: str) -> bool:
    import ipaddress

    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _text(value: bytes | str) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)
