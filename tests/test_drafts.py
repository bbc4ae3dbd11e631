import datetime as dt
import email
import email.policy
import json
import mailbox
import re
import socket

import pytest
from conftest import EXAMPLE
from crmkit_plugins.drafts import render
from crmkit_plugins.reminders import KINDS

from crmkit import App

TODAY = "2026-06-01"
SETTINGS = """\
business: Blumen Berg
sender: {name: Berta Berg, email: berta@blumen.example, phone: 0123 456}
locale: de
timezone: Europe/Berlin
"""
CONSENT = "consent: {email: true, since: 2024-01-01, how: web form}\n"
FILES = {
    "customers/anna.yaml": "name: Anna Müller\nemail: anna@example.de\n" + CONSENT,
    "customers/bert.yaml": "name: Bert Brown\nemail: bert@example.com\nlocale: en\n"
                           "salutation: Dear Mr Brown\n" + CONSENT,
    "customers/cleo.yaml": "name: Cleo\nemail: cleo@example.de\nphone: '0171 1'\n",
    "customers/dora.yaml": "name: Dora\nphone: '0171 2'\n",
    "customers/eve.yaml": 'name: "Eve\\r\\nBcc: victim@evil.example"\nemail: eve@example.de\n'
                          + CONSENT,
    "interactions/a.yaml": "".join(
        f"- {{customer: {c}, date: 2026-05-20, type: call, summary: Offer for roses, "
        f"follow_up: 2026-05-28}}\n" for c in ("anna", "bert", "cleo", "dora", "eve")),
}


def test_every_kind_renders_in_both_locales_on_the_example_workspace():
    # 23 Nov has every stock kind but at_risk (the churn risk makes its customers active
    # or lost that day); on 1 Nov lange-michael is at risk
    apps = [App(EXAMPLE, dt.date(2026, 11, 23)), App(EXAMPLE, dt.date(2026, 11, 1))]
    enabled = {kind.name for kind in apps[0].enabled_kinds()}
    # the reminders plugin's kinds and the pipeline plugin's stale_deal
    stock = {kind.name for kind in KINDS if kind.name in enabled} | {"stale_deal"}
    assert len(stock) >= len(KINDS)  # the example's quote playbook replaces one
    assert stock <= enabled
    by_kind = {}
    for app in apps:
        for reminder in app.reminders():
            customer = app.workspace.customers[reminder.customer]
            # playbooks: test_playbooks.py; respond: a request needs a real answer
            if customer.emails and reminder.kind in stock - {"respond"}:
                by_kind.setdefault(reminder.kind, (app, reminder))
    assert sorted(by_kind) == sorted(stock - {"respond"})
    for kind, (app, reminder) in by_kind.items():
        sender = app.workspace.settings.sender
        for locale in ("de", "en"):
            draft = render(app.templates, reminder, app.customer(reminder.customer),
                           locale=locale)
            assert draft is not None and draft.template == f"email/{kind}.{locale}.txt.j2"
            assert draft.subject and "{{" not in draft.subject + draft.body
            assert "None" not in draft.subject + draft.body, (kind, locale, draft.body)
            assert draft.body.rstrip().endswith(app.workspace.settings.business)
            assert sender.name in draft.body


def run_drafts(run, root, *args):
    return run("-w", root, "--today", TODAY, "drafts", *args)


def test_eml_files_parse_back_with_correct_headers(make_workspace, run, tmp_path):
    root = make_workspace(FILES, settings=SETTINGS)
    result = run_drafts(run, root)
    assert result.exit_code == 0, result.output
    folder = root / "out" / "drafts"
    names = sorted(p.name for p in folder.glob("*.eml"))
    assert names == ["2026-05-28-anna-follow_up.eml", "2026-05-28-bert-follow_up.eml",
                     "2026-05-28-eve-follow_up.eml"]
    raw = (folder / names[0]).read_bytes()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["From"] == "Berta Berg <berta@blumen.example>"
    assert msg["To"] == "Anna Müller <anna@example.de>"
    assert msg["Subject"] == "Unser Gespräch vom 20. Mai 2026"
    assert msg["Date"].datetime == dt.datetime(2026, 6, 1, 9, 0,
                                               tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert msg["Message-ID"].endswith("@blumen.example>")
    assert msg.get_content_charset() == "utf-8"
    body = msg.get_content()
    assert body.startswith("Guten Tag Anna Müller,\n\nwie besprochen melde ich mich noch "
                           "einmal bei Ihnen zum Thema „Offer for roses“.")
    assert "Herzliche Grüße\nBerta Berg\nBlumen Berg\n" in body
    bert = email.message_from_bytes((folder / names[1]).read_bytes(),
                                    policy=email.policy.default)
    assert bert["Subject"] == "Our conversation on May 20, 2026"  # CLDR's English
    assert bert.get_content().startswith("Dear Mr Brown,\n")
    # skipped: no consent, no address
    assert "No email for 2 reminders:" in result.stdout
    assert "2026-05-28 cleo follow_up: no email consent: suggest a call" in result.stdout
    assert "2026-05-28 dora follow_up: no email address: suggest a call" in result.stdout
    # re-running writes the same files, no duplicates, same Message-IDs
    run_drafts(run, root)
    assert sorted(p.name for p in folder.glob("*.eml")) == names
    again = email.message_from_bytes((folder / names[0]).read_bytes(),
                                     policy=email.policy.default)
    assert again["Message-ID"] == msg["Message-ID"]


def test_drafts_that_are_no_longer_due_are_removed_but_other_files_kept(make_workspace, run):
    root = make_workspace(FILES, settings=SETTINGS)
    run_drafts(run, root)
    folder = root / "out" / "drafts"
    (folder / "my-notes.eml").write_text("Subject: mine\n\nkeep me\n")
    run("-w", root, "--today", TODAY, "log", "anna", "-t", "call", "-m", "talked")
    run_drafts(run, root)
    assert sorted(p.name for p in folder.glob("*.eml")) == [
        "2026-05-28-bert-follow_up.eml", "2026-05-28-eve-follow_up.eml", "my-notes.eml"]


def test_header_injection_is_impossible(make_workspace, run):
    root = make_workspace(FILES, settings=SETTINGS)
    run_drafts(run, root, "--customer", "eve")
    raw = (root / "out" / "drafts" / "2026-05-28-eve-follow_up.eml").read_bytes()
    msg = email.message_from_bytes(raw, policy=email.policy.default)
    assert msg["Bcc"] is None
    assert [a.addr_spec for a in msg["To"].addresses] == ["eve@example.de"]
    assert msg["To"].addresses[0].display_name == "Eve Bcc victim evil example"
    headers = raw.partition(b"\n\n")[0]
    assert b"\nBcc:" not in headers
    assert msg.get_content().startswith("Guten Tag Eve  Bcc: victim@evil.example,\n")


def test_json_reports_drafts_and_skipped(make_workspace, run):
    root = make_workspace(FILES, settings=SETTINGS)
    data = json.loads(run_drafts(run, root, "--format", "json").stdout)
    assert [(d["customer"], d["locale"], d["to"]) for d in data["drafts"]] == [
        ("anna", "de", "anna@example.de"), ("bert", "en", "bert@example.com"),
        ("eve", "de", "eve@example.de")]
    assert data["skipped"] == [
        {"id": "follow_up/cleo/2026-05-28", "due": "2026-05-28", "customer": "cleo",
         "kind": "follow_up", "reason": "no email consent: suggest a call"},
        {"id": "follow_up/dora/2026-05-28", "due": "2026-05-28", "customer": "dora",
         "kind": "follow_up", "reason": "no email address: suggest a call"}]
    assert not (root / "out").exists()


def test_mbox(make_workspace, run):
    root = make_workspace(FILES, settings=SETTINGS)
    result = run_drafts(run, root, "--format", "mbox")
    assert "wrote 3 drafts to out/drafts/drafts.mbox" in result.stdout
    box = mailbox.mbox(root / "out" / "drafts" / "drafts.mbox", factory=lambda f: (
        email.message_from_binary_file(f, policy=email.policy.default)))
    assert [m["To"] for m in box] == [
        "Anna Müller <anna@example.de>", "Bert Brown <bert@example.com>",
        "Eve Bcc victim evil example <eve@example.de>"]


def test_workspace_templates_override_the_shipped_ones(make_workspace, run):
    files = {**FILES, "templates/email/follow_up.de.txt.j2":
             "Subject: Hallo {{ first_name }}\n\nKurz und knapp.\n"}
    root = make_workspace(files, settings=SETTINGS)
    data = json.loads(run_drafts(run, root, "--format", "json").stdout)
    anna = data["drafts"][0]
    assert (anna["subject"], anna["body"]) == ("Hallo Anna", "Kurz und knapp.\n")
    assert data["drafts"][1]["subject"] == "Our conversation on May 20, 2026"  # en: shipped


def test_no_sender_is_a_clear_error(make_workspace, run):
    root = make_workspace(FILES, settings="business: X\n")
    result = run_drafts(run, root)
    assert result.exit_code == 1
    assert "crmkit.yaml has no 'sender'" in result.stderr


# --- sending against a real SMTP server on 127.0.0.1 ------------------------------------


class Recorder:
    """An aiosmtpd handler that keeps what it receives and refuses one address."""

    def __init__(self, refuse: str) -> None:
        self.refuse = refuse
        self.messages: list[tuple[list[str], bytes]] = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address == self.refuse:
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append((list(envelope.rcpt_tos), envelope.content))
        return "250 Message accepted for delivery"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp_server():
    from aiosmtpd.controller import Controller

    handler = Recorder(refuse="bert@example.com")
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    try:
        yield controller, handler
    finally:
        controller.stop()


def smtp_settings(port: int) -> str:
    return SETTINGS + f"email:\n  smtp: {{host: 127.0.0.1, port: {port}, security: none}}\n"


def test_send_records_sent_emails_and_reports_the_refused_one(make_workspace, run, smtp_server):
    controller, handler = smtp_server
    root = make_workspace(FILES, settings=smtp_settings(controller.port))
    result = run_drafts(run, root, "--send", "--yes")
    assert result.exit_code == 1
    assert "failed: 2026-05-28 bert follow_up → bert@example.com: recipient refused: 550 " \
           "5.1.1 mailbox unavailable" in result.stderr
    sent = re.search(r"sent: 2026-05-28 anna follow_up → anna@example.de \(recorded in "
                     r"(interactions/2026/2026-06-01-anna-email-[a-z2-7]{6}\.yaml)\)",
                     result.stdout)
    assert sent, result.stdout
    assert "2 sent, 1 failed" in result.stdout
    assert sorted(rcpts[0] for rcpts, _ in handler.messages) == [
        "anna@example.de", "eve@example.de"]
    received = email.message_from_bytes(handler.messages[0][1], policy=email.policy.default)
    assert received["Subject"] == "Unser Gespräch vom 20. Mai 2026"
    recorded = (root / sent.group(1)).read_text()
    assert "type: email\n" in recorded and "direction: outbound\n" in recorded
    assert not list((root / "interactions/2026").glob("2026-06-01-bert-email*"))
    # the sent ones resolved their reminders; bert's is still due, but his address was
    # refused: recorded, and not tried again
    [note] = (root / "interactions/2026").glob("2026-06-01-bert-note-*.yaml")
    assert "Email not delivered to bert@example.com: recipient refused: 550" in \
        note.read_text()
    left = json.loads(run_drafts(run, root, "--format", "json").stdout)
    assert left["drafts"] == []
    [bert] = [s for s in left["skipped"] if s["customer"] == "bert"]
    assert bert["reason"].startswith("the server refused bert@example.com on 2026-06-01")


def test_send_asks_first_and_no_means_nothing_sent(make_workspace, run, smtp_server):
    controller, handler = smtp_server
    root = make_workspace(FILES, settings=smtp_settings(controller.port))
    result = run("-w", root, "--today", TODAY, "drafts", "--send", input="n\n")
    assert "Send 3 emails via 127.0.0.1" in result.output
    assert result.exit_code == 1 and handler.messages == []
    assert not (root / "interactions" / "2026").exists()


def test_send_without_a_server_records_nothing(make_workspace, run):
    root = make_workspace(FILES, settings=smtp_settings(free_port()))
    result = run_drafts(run, root, "--send", "--yes")
    assert result.exit_code == 1
    assert "cannot connect to 127.0.0.1" in result.stderr and "nothing was sent" in result.stderr
    assert not (root / "interactions" / "2026").exists()
    unconfigured = make_workspace(FILES, settings=SETTINGS)
    missing = run_drafts(run, unconfigured, "--send", "--yes")
    assert "no SMTP server configured" in missing.stderr


@pytest.mark.parametrize("name", [
    "Mueller, <attacker@evil.example>, Kundin seit vielen Jahren aus Weimar sehr lang",
    'a"b; c@d <e>, ' * 6,
    "Zoë Müller, <x@y.z>; \"quoted\" " * 3,
    "Dr. Ö. Y., \"Praxis\" <praxis@evil.example>; bcc: x@evil.example " + "sehr " * 20,
    "@" * 200, "x" * 75 + ",<y@evil.example>",
])
def test_no_name_can_add_a_recipient(name):
    """Names with <>, ", ",", ";" and "@" at lengths that fold: the To header, parsed
    back as a mail client would (reply all, or sending the draft), names the customer
    alone."""
    from email.utils import getaddresses

    from crmkit_plugins.drafts.mail import build_message

    from crmkit import EmailDraft, Reminder

    reminder = Reminder(dt.date(2026, 6, 1), "k", "birthday", "t", "r", id="birthday/k/2026-06-01")
    draft = EmailDraft(reminder, "kunde@example.de", "Hallo", "Text", "de")
    sender = type("Sender", (), {"name": name, "email": "info@firma.example"})
    msg = build_message(draft, sender, name, dt.datetime(2026, 6, 1, 9, tzinfo=dt.UTC))
    parsed = email.message_from_bytes(msg.as_bytes(), policy=email.policy.default)
    assert [a.addr_spec for a in parsed["To"].addresses] == ["kunde@example.de"]
    assert [a for _, a in getaddresses([str(parsed["To"])])] == ["kunde@example.de"]
    assert [a.addr_spec for a in parsed["From"].addresses] == ["info@firma.example"]
