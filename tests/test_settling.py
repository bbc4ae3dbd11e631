"""Reminder ids, and what settles a reminder: ``resolves``, ``crmkit done``,
``crmkit snooze``, ``--never`` and expiry (docs/reminders.md is the contract)."""

import datetime as dt
import json
import re

import pytest

from crmkit import App

SETTINGS = "business: X\ntimezone: Europe/Berlin\nreminders: {frequency_cap: {enabled: false}}\n"
ANNA = {"customers/anna.yaml": "name: Anna\nbirthday: 1980-06-10\nphones: ['+49 1']\n"}


def open_ids(make_workspace, files, today, everything=False):
    app = App(make_workspace(files, settings=SETTINGS), dt.date.fromisoformat(today))
    assert [d for d in app.workspace.diagnostics if d.is_error] == []
    return {r.id: r for r in app.reminders() if everything or not r.suppressed}


def test_ids_name_kind_customer_and_day_and_tell_two_apart(make_workspace):
    files = {
        "customers/bo.yaml": """\
            name: Bo
            services:
              - {name: Wartung, interval: 1 year, start: 2025-06-01}
              - {name: Filter, interval: 1 year, start: 2025-06-01}
            """,
        "interactions/a.yaml": """\
            - {customer: bo, date: 2026-05-01, type: call, follow_up: 2026-06-05}
            - {customer: bo, date: 2026-05-02, type: call, direction: inbound,
               follow_up: 2026-06-05}
            """,
    }
    ids = sorted(open_ids(make_workspace, files, "2026-06-01"))
    assert ids == ["follow_up/bo/2026-06-05", "follow_up/bo/2026-06-05/2",
                   "service_due/bo/2026-06-01/filter", "service_due/bo/2026-06-01/wartung"]


def test_resolves_settles_exactly_the_ids_named(make_workspace):
    files = {**ANNA, "interactions/a.yaml": """\
        - {customer: anna, date: 2026-05-01, type: call, direction: inbound,
           follow_up: 2026-05-20}
        - {customer: anna, date: 2026-05-02, type: note, follow_up: 2026-05-21}
        - {customer: anna, date: 2026-05-25, type: note,
           resolves: [follow_up/anna/2026-05-20]}
        """}
    assert sorted(open_ids(make_workspace, files, "2026-06-01")) == [
        "birthday/anna/2026-06-10", "follow_up/anna/2026-05-21"]


def test_a_resolves_dated_in_the_future_does_not_settle_yet(make_workspace):
    files = {**ANNA, "interactions/a.yaml": """\
        - {customer: anna, date: 2026-06-20, type: done,
           resolves: [birthday/anna/2026-06-10]}
        """}
    assert "birthday/anna/2026-06-10" in open_ids(make_workspace, files, "2026-06-01")
    assert "birthday/anna/2026-06-10" not in open_ids(make_workspace, files, "2026-06-20")


@pytest.mark.parametrize(("greeting", "settled"), [
    ("{customer: anna, date: 2026-06-05, type: email, direction: outbound}", True),
    ("{customer: anna, date: 2026-06-12, type: card}", True),
    ("{customer: anna, date: 2026-06-13, type: call}", True),   # the last day of grace
    ("{customer: anna, date: 2026-06-02, type: call}", False),  # eight days early
    ("{customer: anna, date: 2026-06-10, type: call, direction: inbound}", False),
    ("{customer: anna, date: 2026-06-10, type: service}", False),  # maintenance visit
    ("{customer: anna, date: 2026-06-10, type: quote}", False),
])
def test_a_birthday_is_settled_by_a_greeting_only(make_workspace, greeting, settled):
    files = {**ANNA, "interactions/a.yaml": f"- {greeting}\n"}
    ids = open_ids(make_workspace, files, "2026-06-13")
    assert ("birthday/anna/2026-06-10" not in ids) is settled


def test_a_birthday_not_greeted_in_time_is_listed_as_expired(make_workspace):
    expired = open_ids(make_workspace, ANNA, "2026-06-14", everything=True)
    birthday = expired["birthday/anna/2026-06-10"]
    assert birthday.suppressed == "expired on 2026-06-13, not done"
    assert "birthday/anna/2026-06-10" not in open_ids(make_workspace, ANNA, "2026-06-14")
    # a month later it is no longer listed; next year's is due
    later = open_ids(make_workspace, ANNA, "2026-07-14", everything=True)
    assert list(later) == ["birthday/anna/2027-06-10"]


def test_a_follow_up_is_settled_by_reaching_out_after_it(make_workspace):
    base = "- {customer: anna, date: 2026-05-10, type: meeting, follow_up: 2026-05-20}\n"
    cases = {
        "- {customer: anna, date: 2026-05-09, type: call}\n": False,  # before
        "- {customer: anna, date: 2026-05-12, type: social, direction: inbound}\n": False,
        "- {customer: anna, date: 2026-05-12, type: social, direction: outbound}\n": True,
        "- {customer: anna, date: 2026-05-10, type: email}\n": True,  # later the same day
        "- {customer: anna, date: 2026-05-11, type: purchase}\n": False,
    }
    for other, settled in cases.items():
        files = {**ANNA, "interactions/a.yaml": base + other}
        ids = open_ids(make_workspace, files, "2026-05-25")
        assert ("follow_up/anna/2026-05-20" not in ids) is settled, other


def test_a_quote_follow_up_is_settled_by_an_email_before_its_due_day(make_workspace):
    files = {**ANNA, "interactions/a.yaml": """\
        - {customer: anna, date: 2026-05-01, type: quote, amount: 900}
        - {customer: anna, date: 2026-05-03, type: email, direction: outbound,
           resolves: [quote_follow_up/anna/2026-05-15]}
        """}
    assert "quote_follow_up/anna/2026-05-15" not in open_ids(make_workspace, files, "2026-05-16")


def test_done_snooze_and_never_from_the_command_line(make_workspace, run):
    root = make_workspace({**ANNA, "interactions/a.yaml": """\
        - {customer: anna, date: 2026-05-10, type: meeting, follow_up: 2026-05-20}
        """}, settings=SETTINGS)
    day = ("-w", root, "--today", "2026-06-01")
    listed = json.loads(run(*day, "reminders", "--format", "json").stdout)
    assert [r["id"] for r in listed] == ["follow_up/anna/2026-05-20", "birthday/anna/2026-06-10"]

    done = run(*day, "done", "follow_up/anna/2026-05-20", "--note", "called her")
    assert done.exit_code == 0, done.output
    written = re.fullmatch(r"done: follow_up/anna/2026-05-20 \(recorded in "
                           r"(interactions/2026/2026-06-01-anna-done-[a-z2-7]{6}\.yaml)\)\n",
                           done.stdout)
    assert written, done.stdout
    record = (root / written.group(1)).read_text()
    assert "type: done\nsummary: called her\nresolves:\n- follow_up/anna/2026-05-20\n" in record
    again = run(*day, "done", "follow_up/anna/2026-05-20")
    assert again.exit_code == 1 and f"is settled already, in {written.group(1)}" \
        in again.stderr
    typo = run(*day, "done", "birthday/anna/2026-06-11")
    assert typo.exit_code == 1 and "(did you mean 'birthday/anna/2026-06-10'?)" in typo.stderr

    snooze = run(*day, "snooze", "birthday/anna/2026-06-10", "--for", "1w")
    assert snooze.exit_code == 0, snooze.output
    assert "snoozed until 2026-06-08: birthday/anna/2026-06-10" in snooze.stdout
    assert json.loads(run(*day, "reminders", "--format", "json").stdout) == []
    held = json.loads(run(*day, "reminders", "--all", "--format", "json").stdout)
    assert [(r["id"], r["snoozed_until"]) for r in held] == [
        ("birthday/anna/2026-06-10", "2026-06-08")]
    assert held[0]["suppressed"].startswith("snoozed until 2026-06-08 by ")
    back = json.loads(run("-w", root, "--today", "2026-06-08", "reminders", "--format",
                          "json").stdout)
    assert [r["id"] for r in back] == ["birthday/anna/2026-06-10"]

    never = run("-w", root, "--today", "2026-06-08", "done", "birthday/anna/2026-06-10",
                "--never")
    assert never.exit_code == 0 and never.stdout.startswith("never again: ")
    next_year = json.loads(run("-w", root, "--today", "2027-06-01", "reminders", "--all",
                               "--format", "json").stdout)
    assert [r for r in next_year if r["kind"] == "birthday"] == []


def test_snooze_needs_a_day_after_today(make_workspace, run):
    root = make_workspace(ANNA, settings=SETTINGS)
    day = ("-w", root, "--today", "2026-06-01")
    both = run(*day, "snooze", "birthday/anna/2026-06-10")
    assert both.exit_code == 2 and "give either --until YYYY-MM-DD or --for" in both.stderr
    past = run(*day, "snooze", "birthday/anna/2026-06-10", "--until", "2026-06-01")
    assert past.exit_code == 2 and "is not after today" in past.stderr
    month = run(*day, "snooze", "birthday/anna/2026-06-10", "--for", "1m")
    assert "snoozed until 2026-07-01" in month.stdout
    assert not (root / "interactions" / "2026" / "2026-06-01-anna-snooze-2.yaml").exists()


def test_records_that_settle_reminders_are_checked(make_workspace, run):
    root = make_workspace({**ANNA, "interactions/a.yaml": """\
        - {customer: anna, date: 2026-05-01, type: done, resolves: [birthday/anna]}
        - {customer: anna, date: 2026-05-01, type: done, resolves: [birthday/bob/2026-06-10]}
        - {customer: anna, date: 2026-05-01, type: snooze, resolves: [birthday/anna/2026-06-10]}
        - {customer: anna, date: 2026-05-01, type: done}
        """}, settings=SETTINGS)
    out = run("-w", root, "check")
    assert out.exit_code == 1
    assert ("interactions/a.yaml:1:61: error: 'resolves': item 1, 'birthday/anna', is not a "
            "reminder id") in out.stdout
    assert ("interactions/a.yaml:2:61: error: 'resolves': 'birthday/bob/2026-06-10' is a "
            "reminder of 'bob', not of this interaction's customer 'anna'") in out.stdout
    assert ("interactions/a.yaml:3:3: error: a 'snooze' record needs 'until'") in out.stdout
    assert ("interactions/a.yaml:4:3: error: a 'done' record needs 'resolves'") in out.stdout


def test_the_calendar_uid_comes_from_the_id(make_workspace, run):
    root = make_workspace(ANNA, settings=SETTINGS)
    ics = run("-w", root, "--today", "2026-06-01", "reminders", "--format", "ics").stdout
    import hashlib

    uid = hashlib.sha1(b"birthday/anna/2026-06-10").hexdigest()[:20]
    assert f"UID:{uid}@crmkit" in ics
    assert all(len(line.encode()) <= 75 for line in ics.splitlines())  # RFC 5545 folding
    unfolded = re.sub(r"\r?\n[ \t]", "", ics)  # as a calendar reader joins folded lines
    assert "id: birthday/anna/2026-06-10" in unfolded


def test_records_written_today_are_ordered_by_when_they_were_written(make_workspace, run):
    """Files of one day sort by name: a second snooze (…-snooze-2.yaml) sorted before
    the first, and a call logged after a purchase (…-call.yaml) before it.  Records
    crmkit writes for today carry the time, so the later one counts."""
    import zoneinfo

    today = dt.datetime.now(zoneinfo.ZoneInfo("Europe/Berlin")).date()
    born = (today + dt.timedelta(days=10)).replace(year=1980)
    root = make_workspace({"customers/anna.yaml": f"name: Anna\nbirthday: {born}\n"},
                          settings=SETTINGS)
    [birthday] = [r["id"] for r in json.loads(run("-w", root, "reminders", "--format",
                                                  "json").stdout)]
    assert run("-w", root, "snooze", birthday, "--for", "2w").exit_code == 0
    assert run("-w", root, "snooze", birthday, "--for", "3d").exit_code == 0
    held = json.loads(run("-w", root, "reminders", "--all", "--format", "json").stdout)
    assert [r["snoozed_until"] for r in held] == [(today + dt.timedelta(days=3)).isoformat()]

    assert run("-w", root, "log", "anna", "-t", "purchase", "--amount", "80").exit_code == 0
    thanks = [r["id"] for r in json.loads(run("-w", root, "reminders", "--format",
                                              "json").stdout) if r["kind"] == "thank_you"]
    assert len(thanks) == 1
    assert run("-w", root, "log", "anna", "-t", "call", "--direction", "outbound").exit_code == 0
    after = json.loads(run("-w", root, "reminders", "--format", "json").stdout)
    assert [r for r in after if r["kind"] == "thank_you"] == []


def test_a_snooze_past_the_last_day_brings_the_reminder_back(make_workspace, run):
    """Snoozing a birthday past its grace made it come back as "expired"."""
    root = make_workspace(ANNA, settings=SETTINGS)
    day = ("-w", root, "--today", "2026-06-01")
    out = run(*day, "snooze", "birthday/anna/2026-06-10", "--until", "2026-06-20")
    assert out.exit_code == 0, out.output
    for today, listed in (("2026-06-20", True), ("2026-06-23", True), ("2026-06-24", False)):
        back = json.loads(run("-w", root, "--today", today, "reminders", "--format",
                              "json").stdout)  # open for its 3 days of grace
        assert [r["id"] for r in back] == (["birthday/anna/2026-06-10"] if listed else [])
    gone = json.loads(run("-w", root, "--today", "2026-06-24", "reminders", "--all",
                          "--format", "json").stdout)
    assert gone[0]["suppressed"] == "expired on 2026-06-23, not done"
    too_far = run(*day, "snooze", "birthday/anna/2026-06-10", "--until", "2026-07-20")
    assert too_far.exit_code == 2
    assert "is no longer listed after 2026-07-13 (it expires on 2026-06-13)" in too_far.stderr


def test_check_reports_every_bad_id_and_a_snooze_that_ends_before_it_starts(make_workspace,
                                                                            run):
    root = make_workspace({**ANNA, "interactions/a.yaml": """\
        - {customer: anna, date: 2026-05-01, type: done,
           resolves: [birthday/anna/2026-13-40, bogus, birthday/bob/2026-06-10]}
        - {customer: anna, date: 2026-05-01, type: snooze, until: 2026-04-01,
           resolves: [birthday/anna/2026-06-10]}
        """}, settings=SETTINGS)
    out = run("-w", root, "check").stdout
    assert "'resolves': item 1, 'birthday/anna/2026-13-40', is not a reminder id" in out
    assert "'resolves': item 2, 'bogus', is not a reminder id" in out
    assert "'birthday/bob/2026-06-10' is a reminder of 'bob'" in out
    assert "interactions/a.yaml:3:59: error: 'until' (2026-04-01) must be after the " \
        "snooze's date" in out


@pytest.mark.parametrize("rid", ["follow_up/anna/2026-05-20", "respond/anna/2026-05-13"])
def test_never_is_refused_where_it_would_hide_the_next_promise(make_workspace, run, rid):
    root = make_workspace({**ANNA, "interactions/a.yaml": """\
        - {customer: anna, date: 2026-05-10, type: complaint, follow_up: 2026-05-20}
        """}, settings=SETTINGS)
    out = run("-w", root, "--today", "2026-06-01", "done", rid, "--never")
    assert out.exit_code == 2 and "not for" in out.stderr
    assert not (root / "interactions" / "2026").exists()


def test_snooze_for_too_long_or_nothing_is_a_clear_error(make_workspace, run):
    root = make_workspace(ANNA, settings=SETTINGS)
    day = ("-w", root, "--today", "2026-06-01", "snooze", "birthday/anna/2026-06-10", "--for")
    for span, message in (("99999999d", "'99999999d' is too far ahead"),
                          ("0d", "Invalid value for --for: 2026-06-01 is not after today")):
        out = run(*day, span)
        assert out.exit_code == 2 and message in out.stderr, out.stderr


def test_two_of_one_occasion_get_ids_a_record_can_name(make_workspace, run):
    root = make_workspace({"customers/bo.yaml": """\
        name: Bo
        services:
          - {name: Wartung, interval: 1 year, start: 2025-06-01}
          - {name: Wartung, interval: 1 year, start: 2025-06-01}
          - {name: Filter, interval: 1 year, start: 2025-06-01}
        """}, settings=SETTINGS)
    listed = json.loads(run("-w", root, "--today", "2026-06-01", "reminders", "--format",
                            "json").stdout)
    ids = sorted(r["id"] for r in listed)
    assert ids == ["service_due/bo/2026-06-01/filter", "service_due/bo/2026-06-01/wartung",
                   "service_due/bo/2026-06-01/wartung-2"]
    done = run("-w", root, "--today", "2026-06-01", "done", ids[2])
    assert done.exit_code == 0 and run("-w", root, "check").exit_code == 0
