"""Never send twice: ``drafts --send`` against a real SMTP server on 127.0.0.1, run
again on the same day and on the following days, killed mid-batch (really, in a
subprocess) and unable to record what it sent."""

import asyncio
import email
import email.policy
import os
import re
import signal
import subprocess
import threading
from collections import Counter

import pytest
from conftest import CRMKIT
from test_drafts import free_port

SETTINGS = """\
business: Sanitär Sommer
sender: {{name: Sina Sommer, email: sina@sommer.example}}
locale: de
timezone: Europe/Berlin
reminders: {{frequency_cap: {{enabled: false}}}}
email:
  smtp: {{host: 127.0.0.1, port: {port}, security: none}}
"""
CONSENT = "consent: {email: true, since: 2024-01-01, how: Formular}\n"


def customers(n):
    """``n`` customers, each with one service due on 2026-06-01 and a birthday soon."""
    return {f"customers/k{i:02d}.yaml": (
        f"name: Kunde {i}\nemail: k{i:02d}@example.de\n{CONSENT}"
        "services: [{name: Wartung, interval: 1 year, start: 2025-06-01}]\n")
        for i in range(n)}


class Server:
    """An aiosmtpd handler that keeps every message and can stall one: it takes the
    message (as a server that wrote it to its queue) and then does not answer."""

    def __init__(self, refuse=(), stall_at=None, later=()):
        self.refuse = set(refuse)
        self.later = set(later)
        self.stall_at = stall_at
        self.stalled = threading.Event()
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address in self.refuse:
            return "550 5.1.1 mailbox unavailable"
        if address in self.later:
            return "451 4.3.0 try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(email.message_from_bytes(envelope.content,
                                                      policy=email.policy.default))
        if self.stall_at is not None and len(self.messages) == self.stall_at:
            self.stalled.set()
            await asyncio.sleep(60)
        return "250 Message accepted for delivery"

    def reminders(self):
        return Counter(m["X-Crmkit-Reminder"] for m in self.messages)


@pytest.fixture
def smtp():
    from aiosmtpd.controller import Controller

    started = []

    def start(**options):
        handler = Server(**options)
        controller = Controller(handler, hostname="127.0.0.1", port=free_port())
        controller.start()
        started.append(controller)
        return controller.port, handler

    yield start
    for controller in started:
        controller.stop()


def stem(name):
    """A record's file name without its six-character suffix (crmkit/loading/writing.py
    derives it from the text, and the text holds a random Message-ID)."""
    match = re.fullmatch(r"(.+)-[a-z2-7]{6}\.yaml", name)
    assert match, name
    return match[1]


def recorded_in(output, root):
    """The record a 'recorded in ...' line names, read from the workspace."""
    found = re.findall(r"\brecorded in (\S+\.yaml)\n", output)
    assert len(found) == 1, output
    [rel] = found
    return rel, (root / rel).read_text(encoding="utf-8")


def send(run, root, today, *more, input=None):
    return run("-w", root, "--today", today, "drafts", "--send", "--within", "0", *more,
               input=input)


def test_runs_on_one_day_and_the_following_days_send_each_message_once(
        make_workspace, run, smtp):
    port, server = smtp()
    files = {**customers(3), "interactions/q.yaml": (
        "customer: k00\ndate: 2026-05-10\ntype: quote\namount: 900\n"
        "summary: Angebot Badsanierung\n")}
    root = make_workspace(files, settings=SETTINGS.format(port=port))
    first = send(run, root, "2026-06-01", "--yes")
    assert first.exit_code == 0, first.output
    # k00 has two reminders due: one email per customer and run, the quote first
    assert "3 sent, 0 failed" in first.stdout
    assert "at most 1 email(s) per customer and day (email.max_per_customer): " \
           "quote_follow_up/k00/2026-05-24 goes first" in first.stdout
    # a second run the same day sends k00 nothing more: the day's email was sent
    same_day = send(run, root, "2026-06-01", "--yes")
    assert same_day.exit_code == 0 and "nothing to send" in same_day.stdout
    for today in ("2026-06-01", "2026-06-02", "2026-06-03", "2026-06-10"):
        again = send(run, root, today, "--yes")
        assert again.exit_code == 0, again.output
    assert server.reminders() == {
        "quote_follow_up/k00/2026-05-24": 1, "service_due/k00/2026-06-01": 1,
        "service_due/k01/2026-06-01": 1, "service_due/k02/2026-06-01": 1}
    # each went out once, and each is recorded once, resolving its reminder
    records = sorted((root / "interactions/2026").glob("*-email*.yaml"))
    assert len(records) == 4
    assert all("resolves:\n- " in r.read_text() for r in records)
    assert "nothing to send" in send(run, root, "2026-06-11", "--yes").stdout


def test_sent_drafts_leave_the_drafts_folder(make_workspace, run, smtp):
    port, _ = smtp()
    root = make_workspace(customers(2), settings=SETTINGS.format(port=port))
    written = run("-w", root, "--today", "2026-06-01", "drafts", "--within", "0")
    assert written.exit_code == 0
    folder = root / "out" / "drafts"
    assert sorted(p.name for p in folder.iterdir()) == [
        "2026-06-01-k00-service_due.eml", "2026-06-01-k01-service_due.eml"]
    (folder / "mine.eml").write_text("Subject: mine\n\nnot crmkit's\n")
    assert send(run, root, "2026-06-01", "--yes").exit_code == 0
    assert sorted(p.name for p in folder.iterdir()) == ["mine.eml"]


def test_a_refused_recipient_is_recorded_and_reported_and_not_tried_again(
        make_workspace, run, smtp):
    port, server = smtp(refuse={"k01@example.de"})
    root = make_workspace(customers(3), settings=SETTINGS.format(port=port))
    first = send(run, root, "2026-06-01", "--yes")
    assert first.exit_code == 1, first.output
    assert "2 sent, 1 failed" in first.stdout
    assert "failed: 2026-06-01 k01 service_due → k01@example.de: recipient refused: 550 " \
           "5.1.1 mailbox unavailable" in first.stderr
    second = send(run, root, "2026-06-02", "--yes")
    assert second.exit_code == 0 and "nothing to send" in second.stdout
    assert "k01 service_due: the server refused k01@example.de on 2026-06-01" in second.stdout
    assert sorted(server.reminders()) == ["service_due/k00/2026-06-01",
                                          "service_due/k02/2026-06-01"]


def test_a_run_that_cannot_record_stops_and_says_what_went_out(make_workspace, run, smtp):
    port, server = smtp()
    root = make_workspace(customers(4), settings=SETTINGS.format(port=port))
    (root / "interactions").mkdir()
    (root / "interactions" / "2026").write_text("a file where the folder should be\n")
    broken = send(run, root, "2026-06-01", "--yes")
    assert broken.exit_code == 1
    assert "1 sent, 0 failed, 3 not sent" in broken.stdout  # one went out, unrecorded
    assert "stopped: 2026-06-01 k00 service_due went out but could not be recorded" \
        in broken.stderr
    assert ".crmkit/outbox/" in broken.stderr and "so no run sends it again" in broken.stderr
    assert "1 email went out in this run:\n  2026-06-01 k00 service_due → k00@example.de" \
        in broken.stderr
    assert len(server.messages) == 1

    (root / "interactions" / "2026").unlink()
    held = send(run, root, "2026-06-01", "--yes")
    assert held.exit_code == 1  # sent the others, held k00's back: someone must decide
    assert "held back: An email to k00@example.de" in held.stderr
    assert "3 sent, 0 failed" in held.stdout
    assert server.reminders()["service_due/k00/2026-06-01"] == 1

    decided = send(run, root, "2026-06-01", input="y\n")
    assert decided.exit_code == 0, decided.output
    rel, text = recorded_in(decided.stdout, root)
    assert stem(rel) == "interactions/2026/2026-06-01-k00-email"
    # the record is of the message that went out in the broken run
    [k00] = [m for m in server.messages
             if m["X-Crmkit-Reminder"] == "service_due/k00/2026-06-01"]
    assert f"message_id: {k00['Message-ID']}\n" in text
    assert "resolves:\n- service_due/k00/2026-06-01\n" in text
    assert "nothing to send" in decided.stdout
    assert not list((root / ".crmkit" / "outbox").glob("*.json"))
    assert all(n == 1 for n in server.reminders().values()) and len(server.messages) == 4


def test_resend_sends_again_on_request(make_workspace, run, smtp):
    port, server = smtp()
    root = make_workspace(customers(1), settings=SETTINGS.format(port=port))
    (root / "interactions").mkdir()
    (root / "interactions" / "2026").write_text("not a folder\n")
    assert send(run, root, "2026-06-01", "--yes").exit_code == 1
    (root / "interactions" / "2026").unlink()
    again = send(run, root, "2026-06-01", "--yes", "--resend", "service_due/k00/2026-06-01")
    assert again.exit_code == 0, again.output
    assert server.reminders()["service_due/k00/2026-06-01"] == 2


def test_killed_mid_batch_then_run_again_sends_no_message_twice(make_workspace, smtp):
    """The server has taken the third message when the process is killed (-9) before
    it could hear so, let alone record it: the next run sends the rest and holds the
    third back; answering 'y' records it."""
    port, server = smtp(stall_at=3)
    root = make_workspace(customers(6), settings=SETTINGS.format(port=port))
    env = {**os.environ, "CRMKIT_BACKGROUND": "0"}
    command = [str(CRMKIT), "-w", str(root), "--today", "2026-06-01", "drafts", "--send",
               "--within", "0"]
    process = subprocess.Popen([*command, "--yes"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, env=env)
    assert server.stalled.wait(60)
    process.send_signal(signal.SIGKILL)
    process.wait(30)
    assert len(server.messages) == 3
    recorded = sorted(p.name for p in (root / "interactions" / "2026").iterdir())
    assert [stem(n) for n in recorded] == ["2026-06-01-k00-email", "2026-06-01-k01-email"]
    assert len(list((root / ".crmkit" / "outbox").glob("*.json"))) == 1

    server.stall_at = None
    rerun = subprocess.run([*command, "--yes"], capture_output=True, text=True, env=env,
                           timeout=120)
    assert rerun.returncode == 1, rerun.stderr
    assert "held back: An email to k02@example.de" in rerun.stderr
    assert "3 sent, 0 failed" in rerun.stdout
    assert server.reminders() == {f"service_due/k{i:02d}/2026-06-01": 1 for i in range(6)}

    decide = subprocess.run(command, input="y\n", capture_output=True, text=True, env=env,
                            timeout=120)
    assert decide.returncode == 0, decide.stderr
    rel, text = recorded_in(decide.stdout, root)
    assert stem(rel) == "interactions/2026/2026-06-01-k02-email"
    [k02] = [m for m in server.messages
             if m["X-Crmkit-Reminder"] == "service_due/k02/2026-06-01"]
    assert f"message_id: {k02['Message-ID']}\n" in text
    assert "nothing to send" in decide.stdout
    assert len(server.messages) == 6
    # each of the six recorded once
    recorded = sorted(p.name for p in (root / "interactions" / "2026").iterdir())
    assert [stem(n) for n in recorded] == [f"2026-06-01-k{i:02d}-email" for i in range(6)]


def test_two_runs_at_once_do_not_both_send(make_workspace, run, smtp):
    port, server = smtp(stall_at=1)
    root = make_workspace(customers(2), settings=SETTINGS.format(port=port))
    env = {**os.environ, "CRMKIT_BACKGROUND": "0"}
    first = subprocess.Popen([str(CRMKIT), "-w", str(root), "--today", "2026-06-01", "drafts",
                              "--send", "--within", "0", "--yes"], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert server.stalled.wait(60)
        second = send(run, root, "2026-06-01", "--yes")
        assert second.exit_code == 1
        assert "another 'crmkit drafts --send' is sending from this workspace" in second.stderr
    finally:
        first.kill()
        first.wait(30)
    assert len(server.messages) == 1


def test_the_password_comes_only_from_a_crmkit_variable(make_workspace, run):
    settings = SETTINGS.format(port=25).replace(
        "security: none}", "security: starttls, user: me, password_env: GITHUB_TOKEN}")
    root = make_workspace(customers(1), settings=settings)
    check = run("-w", root, "check")
    assert check.exit_code == 1
    assert "crmkit.yaml:7:" in check.stdout and "'email.smtp.password_env' must name a " \
        "CRMKIT_ variable, not 'GITHUB_TOKEN'" in check.stdout
    sent = send(run, root, "2026-06-01", "--yes")
    assert sent.exit_code == 1 and "fix the email settings first" in sent.stderr


def test_no_password_in_clear_except_to_this_machine(make_workspace, run, monkeypatch):
    monkeypatch.setenv("CRMKIT_SMTP_PASSWORD", "geheim")
    settings = SETTINGS.format(port=25).replace(
        "host: 127.0.0.1, port: 25, security: none}",
        "host: smtp.example.com, port: 25, security: none, user: me}")
    root = make_workspace(customers(1), settings=settings)
    sent = send(run, root, "2026-06-01", "--yes")
    assert sent.exit_code == 1
    assert "'email.smtp.security: none' would send the password to smtp.example.com in " \
        "clear" in sent.stderr and "nothing was sent" in sent.stderr


def test_a_non_ascii_password_is_not_shown_in_the_error(make_workspace, run, monkeypatch):
    from aiosmtpd.controller import Controller
    from aiosmtpd.smtp import AuthResult

    monkeypatch.setenv("CRMKIT_SMTP_PASSWORD", "Grüße-sind-geheim")
    controller = Controller(Server(), hostname="127.0.0.1", port=free_port(),
                            auth_require_tls=False,
                            authenticator=lambda *args: AuthResult(success=False))
    controller.start()
    try:
        settings = SETTINGS.format(port=controller.port).replace(
            "security: none}", "security: none, user: me}")
        root = make_workspace(customers(1), settings=settings)
        sent = send(run, root, "2026-06-01", "--yes")
    finally:
        controller.stop()
    assert sent.exit_code == 1
    assert "SMTP login to 127.0.0.1 failed: the user name or password has characters the " \
        "login cannot carry; nothing was sent" in sent.stderr
    assert "Grüße" not in sent.output and "geheim" not in sent.output
    assert "position" not in sent.stderr


def test_send_sends_nothing_before_its_day(make_workspace, run, smtp):
    """With --send the default horizon is today: a birthday greeting a week early is
    no greeting (plain drafts still look 7 days ahead)."""
    port, server = smtp()
    files = {"customers/bo.yaml": f"name: Bo\nemail: bo@example.de\n{CONSENT}"
                                  "birthday: 1980-06-05\n"}
    root = make_workspace(files, settings=SETTINGS.format(port=port))
    early = run("-w", root, "--today", "2026-06-01", "drafts", "--send", "--yes")
    assert early.exit_code == 0 and "nothing to send" in early.stdout
    assert server.messages == []
    written = run("-w", root, "--today", "2026-06-01", "drafts")
    assert "wrote out/drafts/2026-06-05-bo-birthday.eml" in written.stdout
    on_the_day = run("-w", root, "--today", "2026-06-05", "drafts", "--send", "--yes")
    assert "1 sent, 0 failed" in on_the_day.stdout
    assert run("-w", root, "drafts", "--resend", "x").exit_code == 2


def test_a_server_saying_try_later_is_tried_again(make_workspace, run, smtp):
    """A 4xx answer (greylisting) is no refusal for good: nothing recorded, and the
    next run sends it."""
    port, server = smtp(later={"k00@example.de"})
    root = make_workspace(customers(1), settings=SETTINGS.format(port=port))
    first = send(run, root, "2026-06-01", "--yes")
    assert first.exit_code == 1
    assert "recipient refused: 451 4.3.0 try again later (for now: the next run tries " \
        "again)" in first.stderr
    assert not (root / "interactions").exists()
    server.later.clear()
    second = send(run, root, "2026-06-02", "--yes")
    assert "1 sent, 0 failed" in second.stdout
    assert server.reminders() == {"service_due/k00/2026-06-01": 1}


def test_sent_drafts_leave_an_mbox_and_another_drafts_folder(make_workspace, run, smtp):
    import mailbox

    port, _ = smtp()
    root = make_workspace(customers(2), settings=SETTINGS.format(port=port))
    day = ("-w", root, "--today", "2026-06-01", "drafts", "--within", "0")
    assert run(*day, "--format", "mbox").exit_code == 0
    assert run(*day, "--out", root / "mine").exit_code == 0
    sent = run(*day, "--send", "--yes", "--customer", "k00", "--out", root / "mine")
    assert "1 sent, 0 failed" in sent.stdout
    assert sorted(p.name for p in (root / "mine").iterdir()) == [
        "2026-06-01-k01-service_due.eml"]
    sent = run(*day, "--send", "--yes", "--customer", "k01")
    box = mailbox.mbox(root / "out" / "drafts" / "drafts.mbox")
    assert [m["X-Crmkit-Reminder"] for m in box] == []  # both were sent


def test_an_outbox_that_cannot_be_used_sends_nothing_and_says_so(make_workspace, run, smtp):
    port, server = smtp()
    root = make_workspace(customers(1), settings=SETTINGS.format(port=port))
    (root / ".crmkit").mkdir()
    (root / ".crmkit" / "outbox").write_text("a file where the outbox should be\n")
    out = send(run, root, "2026-06-01", "--yes")
    assert out.exit_code == 1
    assert "cannot use the outbox .crmkit/outbox (" in out.stderr and "nothing was sent" \
        in out.stderr
    assert server.messages == []
