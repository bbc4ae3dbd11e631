import datetime as dt
import json

import icalendar
import pytest

from crmkit import App, Reminder

SETTINGS = "business: X\ntimezone: Europe/Berlin\n"


def reminders(make_workspace, files, today, settings=SETTINGS, kind=None, everything=False):
    app = App(make_workspace(files, settings=settings), dt.date.fromisoformat(today))
    assert [d for d in app.workspace.diagnostics if d.is_error] == []
    found = [r for r in app.reminders() if (everything or not r.suppressed)
             and (kind is None or r.kind == kind)]
    assert app.problems == []
    return [(r.due.isoformat(), r.customer, r.kind) for r in found], found


def only(kind, make_workspace, files, today, settings=SETTINGS):
    return reminders(make_workspace, files, today, settings, kind=kind)[0]


LEAP = {"customers/lea.yaml": "name: Lea\nbirthday: 1980-02-29\n"}


def test_birthday_feb_29_and_grace(make_workspace):
    assert only("birthday", make_workspace, LEAP, "2027-02-20") == [
        ("2027-02-28", "lea", "birthday")]
    assert only("birthday", make_workspace, LEAP, "2028-02-20") == [
        ("2028-02-29", "lea", "birthday")]


@pytest.mark.parametrize(("today", "due"), [
    ("2027-03-02", "2027-02-28"),  # 2 days late: still open (grace 3 days)
    ("2027-03-04", "2028-02-29"),  # past the grace: next year's
])
def test_birthday_grace_days(make_workspace, today, due):
    assert only("birthday", make_workspace, LEAP, today) == [(due, "lea", "birthday")]


def test_birthday_resolved_by_contact_in_the_week_before(make_workspace):
    files = {**LEAP, "interactions/a.yaml":
             "customer: lea\ndate: 2027-02-22\ntype: message\n"}
    assert only("birthday", make_workspace, files, "2027-02-25") == []
    early = {**LEAP, "interactions/a.yaml": "customer: lea\ndate: 2027-02-10\ntype: message\n"}
    assert only("birthday", make_workspace, early, "2027-02-25") == [
        ("2027-02-28", "lea", "birthday")]


SERVICE = {
    "customers/sam.yaml": """\
        name: Sam
        services:
          - {name: Boiler, interval: 6 months, start: 2024-01-01}
          - {name: Solar, interval: 1 year, start: 2026-03-01}
    """,
    "interactions/s.yaml": """\
        - {customer: sam, date: 2025-04-10, type: service, service: Boiler}
        - {customer: sam, date: 2025-08-31, type: service, service: Boiler}
    """,
}


def test_service_due_after_the_interval_across_the_year_end(make_workspace):
    # 2025-08-31 + 6 months = 2026-02-28 (month end clamped); Solar: not serviced yet, so
    # one year after its start
    assert only("service_due", make_workspace, SERVICE, "2026-01-15") == [
        ("2026-02-28", "sam", "service_due"), ("2027-03-01", "sam", "service_due")]


def test_service_due_resolved_by_the_service_or_a_planned_one(make_workspace):
    files = {**SERVICE, "interactions/t.yaml": """\
        - {customer: sam, date: 2026-03-02, type: service, service: Boiler}
        - {customer: sam, date: 2026-04-10, type: service, service: Solar}
    """}
    # Boiler serviced on 03-02 → next 2026-09-02; Solar planned for 04-10 → no reminder
    assert only("service_due", make_workspace, files, "2026-03-20") == [
        ("2026-09-02", "sam", "service_due")]


def test_follow_up_resolved_by_contact_but_not_by_a_note(make_workspace):
    files = {"customers/fay.yaml": "name: Fay\n", "interactions/f.yaml": """\
        - {customer: fay, date: "2026-05-01T23:30:00+00:00", type: call,
           follow_up: {date: 2026-05-08, what: send prices}}
        - {customer: fay, date: 2026-05-03, type: note}
    """}
    assert only("follow_up", make_workspace, files, "2026-05-10") == [
        ("2026-05-08", "fay", "follow_up")]
    files["interactions/g.yaml"] = "customer: fay\ndate: 2026-05-09\ntype: email\n"
    assert only("follow_up", make_workspace, files, "2026-05-10", ) == []


def test_follow_up_on_a_late_evening_call_counts_from_its_local_date(make_workspace):
    # 23:30 UTC on 05-01 is 01:30 on 05-02 in Berlin: a call on 05-01 came before it,
    # and one at 01:00 on 05-02 too; one later on 05-02 (or without a time) answers it.
    promise = '- {customer: fay, date: "2026-05-01T23:30:00+00:00", type: call, ' \
              'follow_up: 2026-05-08}\n'
    for other, answered in (("2026-05-01", False), ('"2026-05-02T01:00:00+02:00"', False),
                            ('"2026-05-02T09:00:00+02:00"', True), ("2026-05-02", True)):
        files = {"customers/fay.yaml": "name: Fay\n", "interactions/f.yaml": promise
                 + f"- {{customer: fay, date: {other}, type: call}}\n"}
        open_ones = only("follow_up", make_workspace, files, "2026-05-10")
        assert open_ones == ([] if answered else [("2026-05-08", "fay", "follow_up")]), other


QUOTE = {"customers/quin.yaml": "name: Quin\n",
         "interactions/q.yaml": "customer: quin\ndate: 2026-05-01\ntype: quote\namount: 900\n"}


def test_quote_follow_up(make_workspace):
    assert only("quote_follow_up", make_workspace, QUOTE, "2026-05-10") == [
        ("2026-05-15", "quin", "quote_follow_up")]
    # the customer calling us is no follow-up; an Instagram comment neither
    called_us = {**QUOTE, "interactions/c.yaml": "- {customer: quin, date: 2026-05-03, type: "
                 "call, direction: inbound}\n- {customer: quin, date: 2026-05-04, type: social, "
                 "channel: instagram}\n"}
    assert only("quote_follow_up", make_workspace, called_us, "2026-05-20") == [
        ("2026-05-15", "quin", "quote_follow_up")]


@pytest.mark.parametrize("later", [
    "customer: quin\ndate: 2026-05-05\ntype: purchase\namount: 900\n",
    "customer: quin\ndate: 2026-05-16\ntype: call\n",
    # an email before the due day asking about the quote settles it (it did not, once:
    # drafts --send sent the same question every day)
    "customer: quin\ndate: 2026-05-03\ntype: email\ndirection: outbound\n",
])
def test_quote_follow_up_resolved(make_workspace, later):
    files = {**QUOTE, "interactions/later.yaml": later}
    assert only("quote_follow_up", make_workspace, files, "2026-05-20") == []


def test_stale_quotes_and_quotes_with_their_own_follow_up_are_left_alone(make_workspace):
    assert only("quote_follow_up", make_workspace, QUOTE, "2026-11-01") == []
    own = {**QUOTE, "interactions/q.yaml": "customer: quin\ndate: 2026-05-01\ntype: quote\n"
                                           "follow_up: 2026-05-07\n"}
    assert only("quote_follow_up", make_workspace, own, "2026-05-10") == []
    assert only("follow_up", make_workspace, own, "2026-05-10") == [
        ("2026-05-07", "quin", "follow_up")]


THANKS = {"customers/tom.yaml": "name: Tom\n",
          "interactions/p.yaml": "customer: tom\ndate: 2026-05-28\ntype: purchase\namount: 300\n"}


def test_thank_you(make_workspace):
    assert only("thank_you", make_workspace, THANKS, "2026-06-01") == [
        ("2026-05-29", "tom", "thank_you")]
    thanked = {**THANKS, "interactions/e.yaml": "customer: tom\ndate: 2026-05-30\ntype: email\n"}
    assert only("thank_you", make_workspace, thanked, "2026-06-01") == []
    assert only("thank_you", make_workspace, THANKS, "2026-07-15") == []  # older than 30 days
    settings = SETTINGS + "reminders:\n  thank_you: {min_amount: 500}\n"
    assert only("thank_you", make_workspace, THANKS, "2026-06-01", settings) == []


def test_feedback_request(make_workspace):
    files = {"customers/vic.yaml": "name: Vic\n", "interactions/s.yaml": """\
        - {customer: vic, date: 2026-05-01, type: service}
        - {customer: vic, date: 2026-05-20, type: purchase, amount: 50}
    """}
    # the small purchase (< 200) is no trigger; the service is: due 14 days later
    assert only("feedback_request", make_workspace, files, "2026-05-21") == [
        ("2026-05-15", "vic", "feedback_request")]
    files["interactions/f.yaml"] = "customer: vic\ndate: 2026-05-18\ntype: feedback\nscore: 9\n"
    assert only("feedback_request", make_workspace, files, "2026-05-21") == []


def test_stay_in_touch_by_tag_and_segment(make_workspace):
    files = {
        "customers/val.yaml": "name: Val\ntags: [vip]\n",
        "customers/lee.yaml": "name: Lee\ntags: [vip]\n",
        "interactions/a.yaml": """\
            - {customer: val, date: 2026-01-10, type: purchase, amount: 100}
            - {customer: val, date: 2026-03-01, type: call}
            - {customer: lee, date: 2026-03-01, type: call}
        """,
    }
    settings = SETTINGS + "reminders:\n  stay_in_touch:\n    rules:\n      - {tag: vip, days: 45}\n"
    # val: last contact 03-01 + 45 days; lee is a lead (no purchase): left to other kinds
    assert only("stay_in_touch", make_workspace, files, "2026-04-01", settings) == [
        ("2026-04-15", "val", "stay_in_touch")]
    # by default A customers every 60 days: val is the only buyer, so A
    assert only("stay_in_touch", make_workspace, files, "2026-04-01") == [
        ("2026-04-30", "val", "stay_in_touch")]


LIFECYCLE = {
    "customers/ria.yaml": "name: Ria\n",
    "customers/lou.yaml": "name: Lou\n",
    "customers/bad.yaml": "name: Bad\n",
    "interactions/p.yaml": """\
        - {customer: ria, date: 2025-01-01, type: purchase, amount: 200}
        - {customer: ria, date: 2025-02-01, type: purchase, amount: 200}
        - {customer: lou, date: 2023-01-01, type: purchase, amount: 900}
        - {customer: lou, date: 2023-02-01, type: purchase, amount: 900}
        - {customer: bad, date: 2023-01-01, type: purchase, amount: 900}
        - {customer: bad, date: 2023-02-01, type: complaint}
        - {customer: bad, date: 2023-02-02, type: complaint}
    """,
}


def test_at_risk_and_win_back(make_workspace):
    # Stages from the churn risk (docs/segments.md), here with new_days 20.  The usual
    # gap is 31 days (ria's and lou's); as of 2025-02-25 the open spells are ria 24/31,
    # lou 754/31, bad 786/31 and the gaps 1 and 1 (in usual gaps): at 1, 2 of 4 end, so
    # S(u) = 1 − u/2 up to 1, then 1/2.  ria, quiet 24 days: S(114/31) / S(24/31) =
    # 0.5 / 0.613 = 0.816 ≥ 0.8, at risk since quiet day 24 (0.5 / (1 − q/62) ≥ 0.8 from
    # q = 23.25 on); lou: lost since quiet day 30 (0.5 / (1 − q/62) ≥ 0.95 from 29.4),
    # 1800 revenue → worth winning back; bad: two complaints → not
    settings = SETTINGS + "segmentation:\n  lifecycle: {new_days: 20}\n"
    found = sorted(reminders(make_workspace, LIFECYCLE, "2025-02-25", settings)[0])
    assert [r for r in found if r[2] in ("at_risk", "win_back")] == [
        ("2023-03-03", "lou", "win_back"), ("2025-02-25", "ria", "at_risk")]
    called = {**LIFECYCLE, "interactions/c.yaml": "customer: ria\ndate: 2025-02-25\ntype: call\n"}
    assert only("at_risk", make_workspace, called, "2025-02-25", settings) == []


def test_loyalty_reward_every_nth_purchase(make_workspace):
    purchases = "".join(f"- {{customer: kim, date: 2026-0{m}-01, type: purchase, amount: 10}}\n"
                        for m in (1, 2, 3))
    files = {"customers/kim.yaml": "name: Kim\n", "interactions/p.yaml": purchases}
    settings = SETTINGS + "reminders:\n  loyalty_reward: {every: 3}\n"
    assert only("loyalty_reward", make_workspace, files, "2026-03-10", settings) == [
        ("2026-03-02", "kim", "loyalty_reward")]
    assert only("loyalty_reward", make_workspace, files, "2026-03-10") == []  # every 10


def test_kinds_can_be_switched_off(make_workspace):
    settings = SETTINGS + "reminders:\n  birthday: {enabled: false}\n"
    assert only("birthday", make_workspace, LEAP, "2027-02-20", settings) == []


def test_frequency_cap_holds_back_low_priority_reminders(make_workspace):
    files = {"customers/max.yaml": "name: Max\nbirthday: 1970-06-10\n", "interactions/a.yaml": """\
        - {customer: max, date: 2026-05-20, type: call, direction: outbound}
        - {customer: max, date: 2026-05-25, type: email, direction: outbound,
           follow_up: 2026-06-05}
    """}
    shown, _ = reminders(make_workspace, files, "2026-06-01")
    assert shown == [("2026-06-05", "max", "follow_up")]
    everything, found = reminders(make_workspace, files, "2026-06-01", everything=True)
    assert everything == [("2026-06-05", "max", "follow_up"), ("2026-06-10", "max", "birthday")]
    assert found[1].suppressed == (
        "held back: at most 2 contacts in 30 days: 2 outbound contact(s) lately, 1 more important "
        "reminder(s)")


def test_reminders_by_customer_and_by_due_days(make_workspace):
    """Each customer's reminders (held back ones only when asked for), in the order of
    reminders(); after a change, an unchanged customer's entry is the same tuple."""
    from crmkit.cli.watch import Watcher

    root = make_workspace({
        "customers/max.yaml": "name: Max\nbirthday: 1970-06-10\n",
        "customers/lea.yaml": "name: Lea\nbirthday: 1980-06-20\n",
        "customers/ute.yaml": "name: Ute\n",
        "interactions/a.yaml": """\
        - {customer: max, date: 2026-05-20, type: call, direction: outbound}
        - {customer: max, date: 2026-05-25, type: email, direction: outbound,
           follow_up: 2026-06-05}
    """})
    watcher = Watcher(root, dt.date(2026, 6, 1), lambda line: None)
    app = watcher.next_app(None)
    every = app.reminders_by_customer()
    shown = app.reminders_by_customer(suppressed=False)
    assert {cid: [(r.due.isoformat(), r.kind) for r in found]
            for cid, found in every.items()} == {
        "lea": [("2026-06-20", "birthday")], "ute": [],
        "max": [("2026-06-05", "follow_up"), ("2026-06-10", "birthday")]}
    assert every["max"][1].suppressed.startswith("held back")
    assert {cid: [r.kind for r in found] for cid, found in shown.items()} == {
        "lea": ["birthday"], "max": ["follow_up"], "ute": []}
    assert [r for found in shown.values() for r in found] == sorted(
        app.reminders(suppressed=False), key=lambda r: r.customer)
    # a window of due days, both ends included, either open
    due = [(r.due.isoformat(), r.customer, r.kind) for r in app.reminders(
        suppressed=False, due_until=dt.date(2026, 6, 10))]
    assert due == [("2026-06-05", "max", "follow_up")]
    due = [(r.due.isoformat(), r.customer, r.kind) for r in app.reminders(
        due_from=dt.date(2026, 6, 6), due_until=dt.date(2026, 6, 10))]
    assert due == [("2026-06-10", "max", "birthday")]  # held back: only with suppressed
    assert [r.customer for r in app.reminders(suppressed=False,
                                              due_from=dt.date(2026, 6, 20))] == ["lea"]
    (root / "customers" / "lea.yaml").write_text("name: Lea\nbirthday: 1980-06-21\n")
    app = watcher.next_app({"customers/lea.yaml"})
    again = app.reminders_by_customer(suppressed=False)
    assert again["max"] is shown["max"] and again["ute"] is shown["ute"]
    assert [r.due.isoformat() for r in again["lea"]] == ["2026-06-21"]


def test_bad_reminder_settings_are_diagnostics(make_workspace):
    settings = SETTINGS + ("reminders:\n  birthdy: {}\n  thank_you: {after_days: soon}\n"
                           "  stay_in_touch: {rules: [{tag: vip}]}\n")
    app = App(make_workspace(settings=settings), dt.date(2026, 1, 1))
    assert [str(d) for d in app.workspace.diagnostics] == [
        "crmkit.yaml:4:3: error: unknown setting 'birthdy' in 'reminders' "
        "(did you mean 'birthday'?)",
        "crmkit.yaml:5:27: error: 'reminders.thank_you.after_days' must be a whole number of "
        "at least 0, not 'soon'",
        "crmkit.yaml:6:26: error: 'reminders.stay_in_touch.rules': each rule needs 'days' "
        "and either 'segment' or 'tag': {segment: abc=A, days: 60} or {tag: vip, days: 45}",
    ]


CLI_FILES = {
    "customers/ann.yaml": "name: Ann <b>\nbirthday: 1980-06-20\nemail: ann@x.de\n"
                          "consent: {email: true, since: 2020-01-01}\n",
    "customers/bob.yaml": "name: Bob\nphone: '123'\n",
    "interactions/a.yaml": """\
        - {customer: bob, date: 2026-05-20, type: call, follow_up: 2026-05-30}
        - {customer: ann, date: 2026-05-20, type: quote, amount: 100, summary: "Pipes | valves"}
    """,
}


def test_reminders_cli_sorting_window_and_json(make_workspace, run):
    root = make_workspace(CLI_FILES, settings=SETTINGS)
    out = run("-w", root, "--today", "2026-06-01", "reminders", "--format", "json")
    data = json.loads(out.stdout)
    assert [(r["due"], r["customer"], r["kind"], r["overdue"]) for r in data] == [
        ("2026-05-30", "bob", "follow_up", True),
        ("2026-06-03", "ann", "quote_follow_up", False),
        ("2026-06-20", "ann", "birthday", False)]
    assert set(data[0]) >= {"due", "customer", "kind", "title", "channel", "priority",
                            "overdue", "reason"}
    assert data[0]["channel"] == "phone" and data[1]["channel"] == "email"
    short = run("-w", root, "--today", "2026-06-01", "reminders", "--within", "7",
                "--kind", "quote_follow_up", "--kind", "follow_up", "--format", "json")
    assert [r["kind"] for r in json.loads(short.stdout)] == ["follow_up", "quote_follow_up"]
    table = run("-w", root, "--today", "2026-06-01", "reminders", "--customer", "bob")
    assert table.stdout.splitlines()[2].startswith("2026-05-30  follow_up/bob/2026-05-30  ")
    assert table.stdout.splitlines()[2].endswith("OVERDUE")
    assert table.stderr == ("1 reminder (1 overdue) up to 2026-07-01\n"
                            "mark one done: crmkit done ID; later: crmkit snooze ID --for 1w\n")


def test_reminders_cli_errors(make_workspace, run):
    root = make_workspace(CLI_FILES, settings=SETTINGS)
    kind = run("-w", root, "reminders", "--kind", "birthdays")
    assert kind.exit_code == 1 and "unknown reminder kind 'birthdays' (did you mean " \
        "'birthday'?)" in kind.stderr
    who = run("-w", root, "reminders", "--customer", "bobby")
    assert "unknown customer 'bobby'" in who.stderr


def test_markdown_escapes_customer_data(make_workspace, run):
    root = make_workspace(CLI_FILES, settings=SETTINGS)
    md = run("-w", root, "--today", "2026-06-01", "reminders", "--format", "md").stdout
    assert md.startswith("# Reminders as of June 1, 2026\n\n## Overdue (1)\n")
    assert "Ask about the quote: Pipes \\| valves (€100.00)" in md
    assert "| Jun 20, 2026 | ann | Birthdays | Birthday of Ann &lt;b&gt; (46) | email |" in md
    assert "Birthday of Ann &lt;b&gt; (46)" in md


def test_ics_is_valid_and_uids_are_stable(make_workspace, run):
    root = make_workspace(CLI_FILES, settings=SETTINGS)
    args = ("-w", root, "--today", "2026-06-01", "reminders", "--format", "ics")
    first = run(*args).stdout_bytes.decode("utf-8")
    calendar = icalendar.Calendar.from_ical(first)
    events = calendar.walk("VEVENT")
    assert [str(e["summary"]) for e in events] == [
        "Follow up: call", "Ask about the quote: Pipes | valves (€100.00)",
        "Birthday of Ann <b> (46)"]
    assert events[2].decoded("dtstart") == dt.date(2026, 6, 20)
    assert "\r\n" in first and all(len(line.encode()) <= 75 for line in first.split("\r\n"))
    # a day later, the same reminders keep their UIDs
    later = icalendar.Calendar.from_ical(run("-w", root, "--today", "2026-06-02", "reminders",
                                             "--format", "ics").stdout_bytes)
    assert [str(e["uid"]) for e in later.walk("VEVENT")] == [str(e["uid"]) for e in events]
    assert len({str(e["uid"]) for e in events}) == 3


def test_the_kept_order_of_reminders_updated_equals_a_fresh_sort(monkeypatch):
    """crmkit watch re-sorts the reminders by taking out a changed customer's old ones and
    putting in the new ones: the same objects in the same order as a stable sort of
    everybody's, ties within a customer included."""
    import random

    from crmkit.engine.reminders import ORDER
    from crmkit.incremental.memo import Ordered

    rng = random.Random(5)

    def reminders(cid: str) -> tuple[Reminder, ...]:
        return tuple(Reminder(dt.date(2026, 1, 1) + dt.timedelta(days=rng.randrange(9)), cid,
                              rng.choice(["birthday", "follow_up"]), rng.choice("AB"), "why")
                     for _ in range(rng.randrange(4)))

    def fresh(blocks: dict[str, tuple[Reminder, ...]]) -> list[int]:
        flat = [r for cid in blocks for r in blocks[cid]]
        return [id(r) for r in sorted(flat, key=ORDER)]

    sorts = []
    sort = Ordered._sort
    monkeypatch.setattr(Ordered, "_sort", lambda self, blocks: sorts.append(1) or sort(
        self, blocks))
    for _ in range(100):
        blocks = {f"c{n:03d}": reminders(f"c{n:03d}") for n in range(rng.randrange(1, 200))}
        order = Ordered(ORDER)
        assert [id(r) for r in order.update(blocks)] == fresh(blocks)
        for _ in range(5):
            blocks = dict(blocks)
            for _ in range(rng.randrange(4)):
                cid = f"c{rng.randrange(220):03d}"
                if rng.random() < 0.2:
                    blocks.pop(cid, None)
                else:
                    blocks[cid] = reminders(cid)
            blocks = dict(sorted(blocks.items()))
            assert [id(r) for r in order.update(blocks)] == fresh(blocks)
    assert len(sorts) < 200  # of 600 orders, most after small changes are updates


def test_a_long_calendar_written_on_every_core_is_the_one_written_alone():
    """A one-off run writes a calendar of thousands of events in forked workers: the
    same bytes, in the same order, as one process (run in a process of its own: forking
    needs a process without threads)."""
    import subprocess
    import sys

    script = """
import datetime as dt, hashlib
from crmkit import Reminder
from crmkit.engine.calendar import to_ics
from crmkit.incremental import parallel
day = dt.date(2026, 6, 1)
reminders = [Reminder(day + dt.timedelta(days=n % 40), f"c{n:04d}", "birthday",
                      f"Geburtstag von Kund*in {n}", f"wird {n % 90} <am {n}>",
                      channel="phone" if n % 2 else None, id=f"birthday/c{n:04d}/{n}")
             for n in range(parallel.MIN_ITEMS + 300)]
both = [to_ics(reminders, day, "Bäckerei: reminders", "k", "de", {"birthday": "Geburtstage"},
               one_shot=one_shot) for one_shot in (True, False)]
assert parallel.map_chunks(len, reminders) is not None, "no forking here"
print(both[0] == both[1], both[0].count(b"BEGIN:VEVENT"), "Geburtstage" in both[0].decode())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    if "no forking here" in done.stderr:
        pytest.skip("this machine cannot fork workers (one core, or not Linux)")
    assert done.stdout.split() == ["True", "2300", "True"], done.stderr
