"""Support requests answered: the ``respond`` reminder (working days, inbound only,
settled by reaching out after the request or by ``done``) and the median
first-response time on the dashboard."""

import datetime as dt
import json

import pytest
from crmkit_plugins.kpis import working_days_between
from crmkit_plugins.reminders import add_working_days

from crmkit import App

SETTINGS = "business: X\ntimezone: Europe/Berlin\nreminders: {frequency_cap: {enabled: false}}\n"
RIA = {"customers/ria.yaml": "name: Ria Roth\nemail: ria@example.de\n"
                             "consent: {email: true, since: 2024-01-01}\n"}
# 2026-11-20 is a Friday
COMPLAINT = "- {customer: ria, date: 2026-11-20, type: complaint, summary: Heizung kalt}\n"


def respond(make_workspace, files, today, settings=SETTINGS, everything=False):
    app = App(make_workspace(files, settings=settings), dt.date.fromisoformat(today))
    assert [d for d in app.workspace.diagnostics if d.is_error] == []
    found = [r for r in app.reminders() if r.kind == "respond"
             and (everything or not r.suppressed)]
    assert app.problems == []
    return found


def ids(make_workspace, history, today, settings=SETTINGS):
    files = {**RIA, "interactions/h.yaml": history}
    return sorted(r.id for r in respond(make_workspace, files, today, settings))


@pytest.mark.parametrize(("day", "within", "due"), [
    ("2026-11-20", 2, "2026-11-24"),  # Friday + 2 working days: Monday, Tuesday
    ("2026-11-21", 2, "2026-11-24"),  # Saturday: the same
    ("2026-11-20", 1, "2026-11-23"),  # Friday + 1: Monday
    ("2026-11-20", 0, "2026-11-20"),  # the same day
    ("2026-11-23", 2, "2026-11-25"),  # Monday + 2: Wednesday
    ("2026-12-31", 2, "2027-01-04"),  # Thursday, across the year end: Friday, Monday
])
def test_due_after_working_days(day, within, due):
    assert add_working_days(dt.date.fromisoformat(day), within) == dt.date.fromisoformat(due)


@pytest.mark.parametrize(("start", "end", "days"), [
    ("2026-11-20", "2026-11-20", 0),  # the same day
    ("2026-11-20", "2026-11-22", 0),  # Friday to Sunday
    ("2026-11-20", "2026-11-23", 1),  # Friday to Monday
    ("2026-11-21", "2026-11-23", 1),  # Saturday to Monday
    ("2026-11-20", "2026-11-24", 2),  # Friday to Tuesday
    ("2026-11-20", "2026-11-27", 5),  # a week
    ("2026-11-18", "2026-12-03", 11),  # Wednesday to Thursday two weeks later
])
def test_working_days_between(start, end, days):
    assert working_days_between(dt.date.fromisoformat(start), dt.date.fromisoformat(end)) == days


def test_a_complaint_on_friday_is_due_on_tuesday_and_answering_then_is_in_time(make_workspace):
    files = {**RIA, "interactions/h.yaml": COMPLAINT}
    [reminder] = respond(make_workspace, files, "2026-11-23")
    assert (reminder.id, reminder.priority, reminder.channel) == (
        "respond/ria/2026-11-24", 1, "email")
    assert reminder.title == "Answer the complaint: Heizung kalt"
    assert reminder.reason == ("complaint on Nov 20, 2026, no answer since; answer within 2 "
                               "working days")
    assert reminder.expires == dt.date(2026, 12, 20)
    assert not reminder.overdue(dt.date(2026, 11, 24))  # Tuesday: due today, in time
    assert reminder.overdue(dt.date(2026, 11, 25))  # Wednesday: late
    answered = COMPLAINT + "- {customer: ria, date: 2026-11-24, type: call, direction: outbound}\n"
    assert ids(make_workspace, answered, "2026-11-24") == []
    # the answer took 2 working days: what respond_within allows
    app = App(make_workspace({**RIA, "interactions/h.yaml": answered}), dt.date(2026, 11, 24))
    assert app.metrics(["first_response_time"])["first_response_time"].value == 2


@pytest.mark.parametrize(("later", "settled"), [
    ("{customer: ria, date: 2026-11-23, type: email, direction: outbound}", True),
    ("{customer: ria, date: 2026-11-23, type: call}", True),  # a call: we reached out
    ("{customer: ria, date: 2026-11-23, type: letter}", True),
    ("{customer: ria, date: 2026-11-23, type: call, direction: inbound}", False),  # she called
    ("{customer: ria, date: 2026-11-23, type: email, direction: inbound}", False),
    ("{customer: ria, date: 2026-11-23, type: note, summary: Techniker fragen}", False),
    ("{customer: ria, date: 2026-11-23, type: service}", False),  # no direction: not an answer
    ("{customer: ria, date: 2026-11-19, type: call, direction: outbound}", False),  # before
])
def test_settled_by_reaching_out_after_the_request(make_workspace, later, settled):
    found = ids(make_workspace, COMPLAINT + f"- {later}\n", "2026-11-23")
    assert found == ([] if settled else ["respond/ria/2026-11-24"])


def test_only_inbound_requests_count(make_workspace):
    history = """\
        - {customer: ria, date: 2026-11-20, type: support, direction: outbound,
           summary: Wartungstipps geschickt}
        - {customer: ria, date: 2026-11-20, type: feedback, score: 3}
        - {customer: ria, date: 2026-11-23, type: support, direction: inbound}
    """
    app_ids = ids(make_workspace, history, "2026-11-23")
    # the outbound support is our own doing (and reaches out); feedback is no request
    assert app_ids == ["respond/ria/2026-11-25"]
    files = {**RIA, "interactions/h.yaml": history}
    [reminder] = respond(make_workspace, files, "2026-11-23")
    assert reminder.title == "Answer the support request of Ria Roth"


def test_on_the_same_day_an_answer_counts_unless_its_time_is_earlier(make_workspace):
    # files of one day sort by name: the call sorts before the complaint, yet answers it
    files = {**RIA, "interactions/2026-11-20-ria-call.yaml":
             "customer: ria\ndate: 2026-11-20\ntype: call\ndirection: outbound\n",
             "interactions/2026-11-20-ria-complaint.yaml":
             "customer: ria\ndate: 2026-11-20\ntype: complaint\n"}
    assert respond(make_workspace, files, "2026-11-23") == []
    timed = """\
        - {customer: ria, date: "2026-11-20T09:00:00", type: call, direction: outbound}
        - {customer: ria, date: "2026-11-20T10:00:00", type: complaint}
    """
    assert ids(make_workspace, timed, "2026-11-23") == ["respond/ria/2026-11-24"]
    assert ids(make_workspace, timed.replace("T09:00", "T11:00"), "2026-11-23") == []


def test_one_answer_settles_the_requests_before_it_and_not_those_after(make_workspace):
    history = """\
        - {customer: ria, date: 2026-11-16, type: support, direction: inbound}
        - {customer: ria, date: 2026-11-17, type: complaint, direction: inbound}
        - {customer: ria, date: 2026-11-18, type: email, direction: outbound}
        - {customer: ria, date: 2026-11-19, type: support, direction: inbound}
        - {customer: ria, date: 2026-11-19, type: complaint}
    """
    # two requests on one day: told apart by /2
    assert ids(make_workspace, history, "2026-11-20") == [
        "respond/ria/2026-11-23", "respond/ria/2026-11-23/2"]
    unanswered = history.replace("type: email, direction: outbound", "type: note")
    assert ids(make_workspace, unanswered, "2026-11-20") == [
        "respond/ria/2026-11-18", "respond/ria/2026-11-19", "respond/ria/2026-11-23",
        "respond/ria/2026-11-23/2"]


def test_settled_by_done_from_the_command_line(make_workspace, run):
    root = make_workspace({**RIA, "interactions/h.yaml": COMPLAINT}, settings=SETTINGS)
    done = run("-w", root, "--today", "2026-11-23", "done", "respond/ria/2026-11-24",
               "--note", "am Telefon geklärt")
    assert done.exit_code == 0, done.output
    listed = json.loads(run("-w", root, "--today", "2026-11-23", "reminders", "--all",
                            "--format", "json").stdout)
    assert [r["id"] for r in listed if r["kind"] == "respond"] == []
    # a new request after the done is a reminder of its own
    later = root / "interactions" / "later.yaml"
    later.write_text("customer: ria\ndate: 2026-11-25\ntype: support\n", encoding="utf-8")
    listed = json.loads(run("-w", root, "--today", "2026-11-25", "reminders",
                            "--format", "json").stdout)
    assert [r["id"] for r in listed if r["kind"] == "respond"] == ["respond/ria/2026-11-27"]


def test_an_old_request_expires_and_then_leaves_the_list(make_workspace):
    files = {**RIA, "interactions/h.yaml":
             "customer: ria\ndate: 2026-10-01\ntype: support\n"}
    # 30 days (max_age_days) after the request it is listed as expired, for 30 days more
    [expired] = respond(make_workspace, files, "2026-11-05", everything=True)
    assert (expired.id, expired.suppressed) == (
        "respond/ria/2026-10-05", "expired on 2026-10-31, not done")
    assert respond(make_workspace, files, "2026-11-05") == []
    assert respond(make_workspace, files, "2026-12-01", everything=True) == []


def test_options_respond_within_and_types(make_workspace):
    settings = ("business: X\nreminders:\n  frequency_cap: {enabled: false}\n"
                "  respond: {respond_within: 1, types: [support, complaint, email]}\n")
    history = COMPLAINT + "- {customer: ria, date: 2026-11-21, type: email, direction: inbound}\n"
    assert ids(make_workspace, history, "2026-11-21", settings) == [
        "respond/ria/2026-11-23", "respond/ria/2026-11-23/2"]
    assert ids(make_workspace, history, "2026-11-21") == ["respond/ria/2026-11-24"]
    off = SETTINGS.replace("}}\n", "}, respond: {enabled: false}}\n")
    assert ids(make_workspace, history, "2026-11-21", off) == []


def test_a_request_gets_no_template_email(make_workspace, run):
    """An acknowledgement sent by `drafts --send` settled the reminder and left nobody
    reminded to answer (and mailed the request's internal summary back): a request
    needs a real answer, so there is no template and no draft."""
    settings = SETTINGS + "sender: {name: Tess Ter, email: tess@x.example}\n"
    root = make_workspace({**RIA, "interactions/h.yaml": COMPLAINT}, settings=settings)
    out = run("-w", root, "--today", "2026-11-23", "drafts", "--kind", "respond",
              "--format", "json")
    data = json.loads(out.stdout)
    assert data["drafts"] == []
    assert [s["reason"] for s in data["skipped"]] == ["no email template for 'respond'"]


# --- the median first-response time ------------------------------------------------------

TODAY = dt.date(2026, 6, 30)
FILES = {
    **{f"customers/{c}.yaml": f"name: {c.upper()}\n" for c in "abcdef"},
    "interactions/h.yaml": """\
        # a: complaint on Friday, answered on Monday: 1 working day
        - {customer: a, date: 2026-05-01, type: complaint, direction: inbound}
        - {customer: a, date: 2026-05-04, type: call, direction: outbound}
        # a again: a call at 9 is before the complaint at 10; the email on Wednesday: 2
        - {customer: a, date: "2026-06-01T10:00:00", type: complaint}
        - {customer: a, date: "2026-06-01T09:00:00", type: call, direction: outbound}
        - {customer: a, date: 2026-06-03, type: email, direction: outbound}
        # b: answered the same day: 0
        - {customer: b, date: 2026-05-05, type: support}
        - {customer: b, date: 2026-05-05, type: email}
        # c: her own call is no answer; our email on Wednesday: 3 (Mon, Tue, Wed)
        - {customer: c, date: 2026-05-08, type: support, direction: inbound}
        - {customer: c, date: 2026-05-11, type: call, direction: inbound}
        - {customer: c, date: 2026-05-13, type: email, direction: outbound}
        # d: no answer yet
        - {customer: d, date: 2026-06-26, type: complaint, direction: inbound}
        # e: before the period (the 365 days up to today)
        - {customer: e, date: 2025-06-01, type: complaint}
        - {customer: e, date: 2025-06-20, type: email, direction: outbound}
        # f: our own support call is no request
        - {customer: f, date: 2026-05-10, type: support, direction: outbound}
    """,
}


def test_median_first_response_time(make_workspace, run):
    root = make_workspace(FILES)
    metric = App(root, TODAY).metrics(["first_response_time"])["first_response_time"]
    # answered after 1, 2, 0 and 3 working days: the median of 0, 1, 2, 3 is 1.5
    assert (metric.value, metric.unit) == (1.5, "working days")
    assert metric.description == "support requests and complaints: 4 answered, 1 without an answer"
    dashboard = run("-w", root, "--today", TODAY, "report", "dashboard", "--format", "md",
                    "--out", "-").stdout
    assert "| Median first response, last 12 months | 1.5 working days |" in dashboard
    html = run("-w", root, "--today", TODAY, "report", "dashboard", "--format", "html",
               "--out", "-").stdout
    assert 'id="kpi-first_response_time"' in html and "1.5 working days" in html
    # on 2026-06-02 (e before the period, a's second complaint not answered yet): 0, 1, 3
    early = App(root, dt.date(2026, 6, 2)).metrics(["first_response_time"])
    assert early["first_response_time"].value == 1
    one = run("-w", root, "--today", "2026-06-02", "report", "dashboard", "--format", "md",
              "--out", "-").stdout
    assert "| Median first response, last 12 months | 1 working day |" in one


def test_without_requests_there_is_no_median(make_workspace):
    metric = App(make_workspace({"customers/a.yaml": "name: A\n"}), TODAY).metrics(
        ["first_response_time"])["first_response_time"]
    assert metric.value is None
    assert metric.description == "support requests and complaints: 0 answered, 0 without an answer"
