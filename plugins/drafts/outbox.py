"""The outbox journal: what ``drafts --send`` is about to hand to the SMTP server.

An entry is written (durably) before a message goes out and removed once the
sent email is recorded below ``interactions/``.  An entry left behind means the
run stopped in between (killed, the connection lost, the record not writable):
the message may have been accepted, so the next run asks instead of sending it
again.  Entries live in ``.crmkit/outbox/`` (not committed: ``.gitignore``), one
JSON file per message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import json
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import crmkit

from .cli import _

FOLDER = Path(".crmkit") / "outbox"


@dataclass(frozen=True, slots=True)
class Entry:
    reminder: str
    customer: str
    to: str
    subject: str
    message_id: str
    started: str  # ISO timestamp

    @property
    def file_name(self) -> str:
        return hashlib.sha1(self.message_id.encode()).hexdigest()[:24] + ".json"


class Outbox:
    def __init__(self, app: crmkit.App) -> None:
        self.app = app
        self.folder = app.root / FOLDER

    def entries(self) -> list[Entry]:
        """Every entry left behind, oldest first; an unreadable one is an error (it may
        stand for a message that went out)."""
        found = []
        for path in sorted(self.folder.glob("*.json")) if self.folder.is_dir() else ():
            try:
                data: Any = json.loads(path.read_text(encoding="utf-8"))
                found.append(Entry(**{k: str(data[k]) for k in Entry.__slots__}))
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise crmkit.CrmkitError(
                    f"{self.app.display_path(path)}: unreadable outbox entry ({exc}): it may "
                    "stand for an email that went out; look at it, then delete it") from None
        return sorted(found, key=lambda e: e.started)

    def add(self, reminder: str, customer: str, to: str, subject: str, message_id: str
            ) -> Entry:
        entry = Entry(reminder, customer, to, subject, message_id,
                      dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat())
        self.app.write_file(self.folder / entry.file_name,
                            json.dumps(asdict(entry), ensure_ascii=False, indent=1) + "\n")
        return entry

    @contextlib.contextmanager
    def sending(self) -> Iterator[None]:
        """Held while one run sends: a second ``drafts --send`` at the same time would
        read the same due reminders and send them again."""
        import fcntl

        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            handle = open(self.folder / ".lock", "a+b")  # noqa: SIM115 (closed below)
        except OSError as exc:
            raise crmkit.CrmkitError(_(
                "cannot use the outbox %(folder)s (%(error)s): it keeps what is being sent, so "
                "nothing was sent") % {"folder": self.app.display_path(self.folder),
                                       "error": exc.strerror or exc}) from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise crmkit.CrmkitError(_("another '%(command)s' is sending from this "
                                           "workspace; nothing was sent")
                                         % {"command": "crmkit drafts --send"}) from None
            yield

    def remove(self, entry: Entry) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.folder / entry.file_name).unlink()
