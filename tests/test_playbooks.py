"""Playbooks (playbooks/*.yaml): trigger, offsets, stop, repeat, across year ends; the
steps as reminders (ids, done/snooze/never, resolves, drafts, cap, calendar, show);
`crmkit check`'s located errors and `crmkit playbooks` (docs/playbooks.md)."""

import datetime as dt
import json
import os
import re
import shutil
import socket

import pytest
from conftest import EXAMPLE, REPO
from crmkit_plugins.playbooks.model import parse

from crmkit import App
from crmkit.cli.watch import Watcher
from crmkit.loading.yamlsource import parse_yaml

SETTINGS = """\
business: X
sender: {name: Tess Ter, email: tess@test.example}
locale: en
timezone: Europe/Berlin
reminders: {frequency_cap: {enabled: false}}
"""
ANNA = "name: Anna\nemail: anna@x.example\nconsent: {email: true, since: 2026-01-01}\n"
HEATING = """\
description: after a heating installation
trigger:
  type: purchase
  text: [Therme, Wärmepumpe]
steps:
  - name: offer
    after: 0 days
    title: Offer maintenance
    priority: 2
  - name: facade
    after: 90 days
    title: Offer facade insulation
    channel: phone
stop:
  - {type: purchase, text: Fassade}
"""


def workspace(make_workspace, playbooks, interactions="", customers=None, settings=SETTINGS,
              extra=None):
    files = {f"customers/{cid}.yaml": text
             for cid, text in (customers or {"anna": ANNA}).items()}
    files.update({f"playbooks/{name}.yaml": text for name, text in playbooks.items()})
    if interactions:
        files["interactions/all.yaml"] = interactions
    files.update(extra or {})
    return make_workspace(files, settings=settings)


def steps(root, today, everything=False, kinds=None):
    """The playbook steps as reminders: ``{id: reminder}`` (held-back ones too with
    ``everything``)."""
    app = App(root, dt.date.fromisoformat(today), use_cache=False)
    errors = [str(d) for d in app.workspace.diagnostics if d.is_error]
    assert errors == []
    names = kinds or [k.name for k in app.kinds() if app.plugin_of(k) == "playbooks"]
    return {r.id: r for r in app.reminders()
            if r.kind in names and (everything or not r.suppressed)}


# --- trigger and offsets ---------------------------------------------------------------


def test_a_matching_interaction_starts_a_run_with_steps_at_their_offsets(make_workspace):
    root = workspace(make_workspace, {"heating": HEATING}, """\
        - {customer: anna, date: 2026-09-28, type: purchase, amount: 1177,
           items: [Neue Therme], summary: Montage erledigt}
        """)
    found = steps(root, "2026-10-01")
    assert sorted(found) == ["heating/anna/2026-09-28/offer", "heating/anna/2026-12-27/facade"]
    offer = found["heating/anna/2026-09-28/offer"]
    assert (offer.title, offer.priority, offer.channel, offer.kind) == (
        "Offer maintenance", 2, "email", "heating")
    assert offer.reason == "heating step 1/2: purchase on Sep 28, 2026"
    assert str(offer.source) == "interactions/all.yaml:1:3"
    assert offer.expires == dt.date(2026, 10, 28)  # 30 days, the default
    assert offer.template == "email/heating/offer"
    facade = found["heating/anna/2026-12-27/facade"]
    assert (facade.priority, facade.channel) == (3, "phone")


@pytest.mark.parametrize(("interaction", "starts"), [
    ("{type: purchase, summary: neue THERME eingebaut}", True),   # any case, in the summary
    ("{type: purchase, items: [Wärmepumpe 16 kW]}", True),       # in an item
    ("{type: service, service: Therme prüfen}", False),          # another type
    ("{type: purchase, summary: Thermostatventile}", False),     # not the text
])
def test_the_trigger_matches_type_and_text_in_summary_or_items(make_workspace, interaction,
                                                               starts):
    root = workspace(make_workspace, {"heating": HEATING},
                     f"- {{customer: anna, date: 2026-09-28, {interaction[1:-1]}}}\n")
    assert bool(steps(root, "2026-10-01")) is starts


def test_offsets_in_days_weeks_months_and_years_cross_year_ends(make_workspace):
    playbook = """\
        trigger: {type: purchase}
        steps:
          - {name: two-weeks, after: 2 weeks, title: A}
          - {name: two-months, after: 2 months, title: B}
          - {name: a-year, after: 1 year, title: C}
          - {name: days, after: 12, title: D}
        expires_after: 2 years
        """
    root = workspace(make_workspace, {"later": playbook},
                     "- {customer: anna, date: 2027-12-31, type: purchase}\n")
    assert sorted(steps(root, "2028-01-01")) == [
        "later/anna/2028-01-12/days",
        "later/anna/2028-01-14/two-weeks",
        "later/anna/2028-02-29/two-months",   # 31 Dec + 2 months: the end of February (leap)
        "later/anna/2028-12-31/a-year"]
    leap = workspace(make_workspace, {"later": playbook},
                     "- {customer: anna, date: 2028-02-29, type: purchase}\n")
    assert "later/anna/2029-02-28/a-year" in steps(leap, "2028-03-01")


def test_the_nth_matching_interaction_on_starts_a_run(make_workspace):
    playbook = """\
        trigger: {type: service, text: Wartung, nth: 2}
        steps: [{name: premium, after: 7 days, title: Offer premium}]
        """
    one = "- {customer: anna, date: 2025-11-20, type: service, service: Wartung Gas}\n"
    two = one + "- {customer: anna, date: 2026-11-19, type: service, service: Wartung Gas}\n"
    assert steps(workspace(make_workspace, {"upsell": playbook}, one), "2026-11-23") == {}
    assert sorted(steps(workspace(make_workspace, {"upsell": playbook}, two),
                        "2026-11-23")) == ["upsell/anna/2026-11-26/premium"]


def test_a_trigger_that_fires_again_starts_a_new_run_and_ends_the_earlier_one(make_workspace):
    quotes = """\
        - {customer: anna, date: 2026-11-01, type: quote}
        - {customer: anna, date: 2026-11-20, type: quote}
        """
    playbook = """\
        trigger: {type: quote}
        steps:
          - {name: first, after: 3 days, title: Ask}
          - {name: second, after: 10 days, title: Ask again}
        """
    root = workspace(make_workspace, {"quote": playbook}, quotes)
    assert sorted(steps(root, "2026-11-21")) == ["quote/anna/2026-11-23/first",
                                                  "quote/anna/2026-11-30/second"]
    once = workspace(make_workspace, {"quote": playbook + "repeat: once\n"}, quotes)
    assert sorted(steps(once, "2026-11-21", everything=True)) == [
        "quote/anna/2026-11-04/first", "quote/anna/2026-11-11/second"]


def test_repeat_every_starts_the_run_again_and_plans_the_next_one(make_workspace):
    playbook = """\
        trigger: {type: purchase, text: Heizung}
        steps:
          - {name: check, after: 0 days, title: Heating check}
          - {name: tips, after: 1 month, title: Tips}
        repeat: every 1 year
        """
    root = workspace(make_workspace, {"yearly": playbook},
                     "- {customer: anna, date: 2024-12-20, type: purchase, summary: Heizung}\n")
    assert sorted(steps(root, "2026-01-25", everything=True)) == [
        "yearly/anna/2025-12-20/check",   # the second run's: expired on 2026-01-19, listed
        "yearly/anna/2026-01-20/tips",
        "yearly/anna/2026-12-20/check",   # the third run, planned
        "yearly/anna/2027-01-20/tips"]
    assert sorted(steps(root, "2026-12-01", everything=True)) == [
        "yearly/anna/2026-12-20/check", "yearly/anna/2027-01-20/tips"]
    second = steps(root, "2026-12-21")["yearly/anna/2026-12-20/check"]
    assert second.reason == ("yearly step 1/2: purchase on Dec 20, 2024, repeated every "
                             "1 year (run 3)")


def test_entering_a_lifecycle_stage_starts_a_run_that_lasts_while_in_the_stage(
        make_workspace):
    playbook = """\
        trigger: {stage: new}
        steps:
          - {name: welcome, after: 0 days, title: Welcome}
          - {name: feedback, after: 14 days, title: Feedback}
          - {name: tips, after: 60 days, title: Tips}
        """
    root = workspace(make_workspace, {"onboarding": playbook},
                     "- {customer: anna, date: 2026-09-07, type: purchase, amount: 100}\n")
    found = steps(root, "2026-09-10")
    assert sorted(found) == ["onboarding/anna/2026-09-07/welcome",
                             "onboarding/anna/2026-09-21/feedback",
                             "onboarding/anna/2026-11-06/tips"]
    assert found["onboarding/anna/2026-09-07/welcome"].reason == (
        "onboarding step 1/3: new since Sep 7, 2026")
    assert str(found["onboarding/anna/2026-09-07/welcome"].source) == "customers/anna.yaml:1:1"
    # 90 days after the first purchase she is no longer new: crmkit keeps no history of
    # stages, so the run is over
    assert steps(root, "2026-12-07") == {}


def test_a_tag_or_segment_on_the_trigger_selects_who_gets_the_playbook(make_workspace):
    playbook = """\
        trigger: {type: purchase, tag: vip, segment: 'revenue > 500'}
        steps: [{name: thanks, after: 1 day, title: Thank personally}]
        """
    customers = {"anna": ANNA + "tags: [vip]\n", "bert": "name: Bert\ntags: [vip]\n",
                 "cleo": "name: Cleo\n"}
    root = workspace(make_workspace, {"vip": playbook}, """\
        - {customer: anna, date: 2026-09-01, type: purchase, amount: 900}
        - {customer: bert, date: 2026-09-01, type: purchase, amount: 90}
        - {customer: cleo, date: 2026-09-01, type: purchase, amount: 900}
        """, customers=customers)
    assert sorted(steps(root, "2026-09-01")) == ["vip/anna/2026-09-02/thanks"]


def test_segments_of_playbooks_whose_names_overlap_are_kept_apart(make_workspace):
    stop = "stop: [{segment: 'complaints > 0'}]\n"
    root = workspace(make_workspace, {
        "a": "trigger: {type: quote}\nsteps:\n  - {name: b, after: 1 day, title: A, " + stop[:-1]
             + "}\n",
        "a_b": "trigger: {type: quote}\nsteps: [{name: c, after: 2 days, title: B}]\n" + stop,
    }, "- {customer: anna, date: 2026-11-01, type: quote}\n")
    assert sorted(steps(root, "2026-11-02")) == ["a/anna/2026-11-02/b", "a_b/anna/2026-11-03/c"]


# --- stop --------------------------------------------------------------------------------


@pytest.mark.parametrize(("later", "stopped"), [
    ("{type: purchase, items: [Fassadendämmung]}", True),      # the goal: bought
    ("{type: purchase, items: [Siphon]}", False),              # another purchase
    ("{type: quote, items: [Fassade]}", False),                # not bought
])
def test_a_matching_interaction_after_the_trigger_stops_the_run(make_workspace, later,
                                                                 stopped):
    root = workspace(make_workspace, {"heating": HEATING}, f"""\
        - {{customer: anna, date: 2026-09-28, type: purchase, items: [Therme]}}
        - {{customer: anna, date: 2026-10-05, {later[1:-1]}}}
        """)
    assert (steps(root, "2026-10-06") == {}) is stopped


def test_a_stop_before_the_trigger_does_not_count(make_workspace):
    root = workspace(make_workspace, {"heating": HEATING}, """\
        - {customer: anna, date: 2026-01-05, type: purchase, items: [Fassade]}
        - {customer: anna, date: 2026-09-28, type: purchase, items: [Therme]}
        """)
    assert len(steps(root, "2026-10-01")) == 2


@pytest.mark.parametrize(("stop", "event", "tags"), [
    ("{type: complaint}", "{type: complaint, summary: Too loud}", ""),
    ("{direction: inbound}", "{type: call, direction: inbound}", ""),      # a reply
    ("{text: abgelehnt}", "{type: note, summary: Angebot abgelehnt}", ""),  # a refusal
    ("{tag: no-marketing}", "{type: note}", "tags: [no-marketing]\n"),      # an opt-out tag
    ("{segment: 'complaints > 0'}", "{type: complaint}", ""),               # a segment
])
def test_stop_conditions(make_workspace, stop, event, tags):
    playbook = f"""\
        trigger: {{type: quote}}
        steps:
          - {{name: first, after: 3 days, title: Ask}}
          - {{name: second, after: 10 days, title: Ask again}}
        stop:
          - {stop}
        """
    history = f"""\
        - {{customer: anna, date: 2026-11-01, type: quote}}
        - {{customer: anna, date: 2026-11-02, {event[1:-1]}}}
        """
    root = workspace(make_workspace, {"quote": playbook}, history,
                     customers={"anna": ANNA + tags})
    assert steps(root, "2026-11-03") == {}
    quiet = workspace(make_workspace, {"quote": playbook},
                      "- {customer: anna, date: 2026-11-01, type: quote}\n")
    assert len(steps(quiet, "2026-11-03")) == 2


def test_a_stop_ends_the_repetitions_too_and_a_new_trigger_starts_afresh(make_workspace):
    playbook = """\
        trigger: {type: purchase, text: Heizung}
        steps: [{name: check, after: 0 days, title: Heating check}]
        stop: [{type: complaint}]
        repeat: every 1 year
        """
    history = """\
        - {customer: anna, date: 2024-12-20, type: purchase, summary: Heizung}
        - {customer: anna, date: 2025-03-01, type: complaint}
        """
    root = workspace(make_workspace, {"yearly": playbook}, history)
    assert steps(root, "2026-12-21") == {}
    again = workspace(make_workspace, {"yearly": playbook}, history +
                      "- {customer: anna, date: 2026-05-01, type: purchase, summary: Heizung}\n")
    assert sorted(steps(again, "2026-12-21")) == ["yearly/anna/2027-05-01/check"]


def test_a_steps_own_stop_settles_only_that_step(make_workspace):
    playbook = """\
        trigger: {stage: new}
        steps:
          - {name: welcome, after: 0 days, title: Welcome}
          - name: feedback
            after: 14 days
            title: Ask how it went
            stop: [{type: [feedback, complaint]}]
          - {name: tips, after: 60 days, title: Tips}
        """
    root = workspace(make_workspace, {"onboarding": playbook}, """\
        - {customer: anna, date: 2026-09-07, type: purchase, amount: 100}
        - {customer: anna, date: 2026-09-20, type: feedback, score: 10}
        """)
    assert sorted(steps(root, "2026-09-22")) == ["onboarding/anna/2026-09-07/welcome",
                                                  "onboarding/anna/2026-11-06/tips"]


# --- steps are reminders ----------------------------------------------------------------


def test_steps_expire_and_stay_listed_as_expired_for_30_days(make_workspace):
    root = workspace(make_workspace, {"heating": HEATING},
                     "- {customer: anna, date: 2026-09-28, type: purchase, items: [Therme]}\n")
    offer = "heating/anna/2026-09-28/offer"
    assert offer in steps(root, "2026-10-28")
    expired = steps(root, "2026-10-29", everything=True)[offer]
    assert expired.suppressed == "expired on 2026-10-28, not done"
    assert offer in steps(root, "2026-11-27", everything=True)
    assert offer not in steps(root, "2026-11-28", everything=True)


def test_a_step_is_settled_by_resolves_done_snooze_and_never(make_workspace, run):
    root = workspace(make_workspace, {"heating": HEATING}, """\
        - {customer: anna, date: 2026-09-28, type: purchase, items: [Therme]}
        - {customer: anna, date: 2026-09-29, type: email, direction: outbound,
           resolves: [heating/anna/2026-09-28/offer]}
        """, customers={"anna": ANNA, "bert": "name: Bert\n"},
        extra={"interactions/b.yaml": "customer: bert\ndate: 2026-09-28\ntype: purchase\n"
                                      "items: [Therme]\n"})
    assert sorted(steps(root, "2026-10-01")) == [
        "heating/anna/2026-12-27/facade", "heating/bert/2026-09-28/offer",
        "heating/bert/2026-12-27/facade"]
    os.environ["CRMKIT_USER"] = "Tess"
    try:
        today = ("-w", root, "--today", "2026-10-01")
        assert run(*today, "snooze", "heating/bert/2026-09-28/offer", "--for", "1w").exit_code == 0
        assert run(*today, "done", "heating/anna/2026-12-27/facade").exit_code == 0
    finally:
        del os.environ["CRMKIT_USER"]
    found = steps(root, "2026-10-01", everything=True)
    assert sorted(found) == ["heating/bert/2026-09-28/offer", "heating/bert/2026-12-27/facade"]
    assert found["heating/bert/2026-09-28/offer"].snoozed_until == dt.date(2026, 10, 8)
    assert "heating/bert/2026-09-28/offer" in steps(root, "2026-10-08")
    result = run("-w", root, "--today", "2026-10-01", "done",
                 "heating/bert/2026-12-27/facade", "--never")
    assert result.exit_code == 0
    assert steps(root, "2026-10-08", everything=True) == {}  # the playbook, for Bert: never


def test_steps_are_drafted_with_their_own_template(make_workspace, run):
    playbook = HEATING.replace("    channel: phone\n", "    template: email/facade\n")
    root = workspace(make_workspace, {"heating": playbook},
                     "- {customer: anna, date: 2026-09-28, type: purchase, items: [Therme]}\n",
                     extra={
                         "templates/email/heating/offer.en.txt.j2":
                             "Subject: Maintenance for {{ first_name }}\n\n"
                             "Your {{ interaction.items[0].name }} of "
                             "{{ interaction.date | longdate(locale) }}.\n",
                         "templates/email/facade.en.txt.j2": "Subject: Facade\n\nInsulate.\n"})
    result = run("-w", root, "--today", "2026-10-01", "drafts", "--format", "json",
                 "--kind", "heating", "--within", "90")
    drafts = {d["id"]: d for d in json.loads(result.stdout)["drafts"]}
    offer = drafts["heating/anna/2026-09-28/offer"]
    assert (offer["subject"], offer["body"], offer["template"]) == (
        "Maintenance for Anna", "Your Therme of September 28, 2026.\n",
        "email/heating/offer.en.txt.j2")
    result = run("-w", root, "--today", "2026-12-27", "drafts", "--format", "json",
                 "--kind", "heating", "--within", "0")  # the offer expired: one per run
    [facade] = json.loads(result.stdout)["drafts"]
    assert (facade["id"], facade["template"]) == ("heating/anna/2026-12-27/facade",
                                                  "email/facade.en.txt.j2")


def test_the_frequency_cap_holds_back_steps_like_any_reminder(make_workspace):
    settings = SETTINGS.replace("reminders: {frequency_cap: {enabled: false}}\n", "")
    root = workspace(make_workspace, {"heating": HEATING}, """\
        - {customer: anna, date: 2026-09-28, type: purchase, items: [Therme]}
        - {customer: anna, date: 2026-12-01, type: call, direction: outbound}
        - {customer: anna, date: 2026-12-10, type: call, direction: outbound}
        """, settings=settings)
    facade = steps(root, "2026-12-20", everything=True)["heating/anna/2026-12-27/facade"]
    assert facade.suppressed.startswith("held back: at most 2 contacts in 30 days")


def test_a_playbook_is_a_kind_in_settings_reminders_show_and_the_calendar(make_workspace,
                                                                           run):
    settings = SETTINGS + "  heating: {priority: 1}\n"
    settings = settings.replace("reminders: {frequency_cap: {enabled: false}}\n  heating",
                                "reminders:\n  frequency_cap: {enabled: false}\n  heating")
    root = workspace(make_workspace, {"heating": HEATING},
                     "- {customer: anna, date: 2026-09-28, type: purchase, items: [Therme]}\n",
                     settings=settings)
    found = steps(root, "2026-10-01")
    assert found["heating/anna/2026-12-27/facade"].priority == 1  # crmkit.yaml's
    assert found["heating/anna/2026-09-28/offer"].priority == 2   # the step's own
    today = ("-w", root, "--today", "2026-10-01")
    kinds = json.loads(run(*today, "reminders", "--list-kinds", "--format", "json").stdout)
    assert {"kind": "heating", "plugin": "playbooks", "enabled": True, "priority": 1,
            "channel": None, "email_template": "email/heating",
            "description": "after a heating installation"} in kinds
    shown = run(*today, "show", "anna").stdout
    assert "  2026-12-27  Offer facade insulation\n              heating/anna/2026-12-27/facade" \
        in shown
    ics = run(*today, "reminders", "--kind", "heating", "--within", "90", "--format", "ics")
    assert "SUMMARY:Offer facade insulation" in ics.stdout
    off = workspace(make_workspace, {"heating": HEATING},
                    "- {customer: anna, date: 2026-09-28, type: purchase, items: [Therme]}\n",
                    settings=SETTINGS.replace("{frequency_cap: {enabled: false}}",
                                              "{heating: {enabled: false}}"))
    assert steps(off, "2026-10-01", kinds=["heating"]) == {}


# --- records that settle reminders ------------------------------------------------------

ECHO = """\
    trigger: {type: email}
    steps:
      - {name: again, after: 1 day, channel: email, template: email/birthday, priority: 1,
         title: Write again}
    """


class _Inbox:
    """An aiosmtpd handler that keeps every message it receives."""

    def __init__(self) -> None:
        self.messages: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(envelope.content)
        return "250 Message accepted for delivery"


def test_an_email_a_step_sent_never_starts_the_playbook_again(make_workspace, run):
    from aiosmtpd.controller import Controller

    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    settings = SETTINGS + f"email:\n  smtp: {{host: 127.0.0.1, port: {port}, security: none}}\n"
    root = workspace(make_workspace, {"echo": ECHO}, """\
        - {customer: anna, date: 2026-09-28, type: email, direction: inbound, summary: Hello}
        """, settings=settings)
    try:
        for day in ("2026-09-29", "2026-09-30", "2026-10-01", "2026-10-02"):
            result = run("-w", root, "--today", day, "drafts", "--send", "--yes",
                         "--kind", "echo")
            assert result.exit_code == 0, result.output
    finally:
        controller.stop()
    assert len(inbox.messages) == 1  # the step's email, once; not one a day for ever
    # one record of it (the name ends in a suffix derived from the text)
    [sent] = (root / "interactions").rglob("2026-09-29-anna-email-*.yaml")
    assert "resolves:\n- echo/anna/2026-09-29/again\n" in sent.read_text(encoding="utf-8")
    assert steps(root, "2026-10-02", everything=True) == {}


@pytest.mark.parametrize(("playbook", "history", "listed"), [
    # an email drafts --send wrote does not stop the run (the second step is still due)
    ("""\
     trigger: {type: quote}
     steps:
       - {name: first, after: 3 days, title: Ask}
       - {name: second, after: 10 days, title: Ask again}
     stop: [{direction: outbound}]
     """, """\
     - {customer: anna, date: 2026-11-01, type: quote}
     - {customer: anna, date: 2026-11-04, type: email, direction: outbound,
        resolves: [quote/anna/2026-11-04/first]}
     """, ["quote/anna/2026-11-11/second"]),
    # nor does it count towards a trigger's nth
    ("""\
     trigger: {type: email, nth: 2}
     steps: [{name: reply, after: 1 day, title: Reply}]
     """, """\
     - {customer: anna, date: 2026-11-01, type: email, direction: inbound}
     - {customer: anna, date: 2026-11-02, type: email, direction: outbound,
        resolves: [birthday/anna/2026-11-02]}
     """, []),
    # a done or snooze does not start a run whose trigger matches any interaction
    ("""\
     trigger: {text: Wartung}
     steps: [{name: offer, after: 1 day, title: Offer}]
     """, """\
     - {customer: anna, date: 2026-11-01, type: done, summary: Wartung erledigt,
        resolves: [birthday/anna/2026-11-01]}
     - {customer: anna, date: 2026-11-02, type: snooze, summary: Wartung später,
        resolves: [birthday/anna/2026-11-02], until: 2026-11-20}
     """, []),
], ids=["stop", "nth", "done-and-snooze"])
def test_records_that_settle_reminders_never_start_stop_or_count_for_a_run(
        make_workspace, playbook, history, listed):
    root = workspace(make_workspace, {"quote": playbook}, history)
    assert sorted(steps(root, "2026-11-05")) == listed


@pytest.mark.parametrize(("trigger", "channel", "warned"), [
    ("{type: email}", "email", "step 'again' (email)"),
    ("{type: email, direction: outbound}", None, "step 'again' (the customer's channel)"),
    ("{type: [call, email], text: Angebot}", "phone", "step 'again' (phone)"),
    ("{direction: outbound}", "letter", "step 'again' (letter)"),  # any type
    ("{type: message}", "whatsapp", "step 'again' (whatsapp)"),
    ("{type: email, direction: inbound}", "email", None),
    ("{type: call}", "email", None),
    ("{type: purchase}", None, None),
    ("{stage: new}", "email", None),
])
def test_check_warns_when_a_trigger_matches_what_its_own_steps_ask_for(
        make_workspace, run, trigger, channel, warned):
    playbook = ECHO.replace("{type: email}", trigger).replace(
        "channel: email", f"channel: {channel}" if channel else "channel: null")
    root = workspace(make_workspace, {"echo": playbook})
    found = [line for line in run("-w", root, "check").stdout.splitlines()
             if "warning: the trigger" in line]
    if warned is None:
        assert found == []
        return
    assert found == [
        f"playbooks/echo.yaml:1:10: warning: the trigger ({trigger_text(trigger)}) also "
        f"matches the contact that {warned} asks for: recorded with 'crmkit log', that "
        "contact starts the playbook again, and so on for ever; give the trigger 'direction: "
        "inbound' or the step another channel (records that settle a reminder, by 'drafts "
        "--send', 'done' or 'snooze', never start a run)"]


def trigger_text(trigger):
    return {"{type: email}": "email", "{type: email, direction: outbound}": "outbound email",
            "{type: [call, email], text: Angebot}": "call or email mentioning 'Angebot'",
            "{direction: outbound}": "outbound interaction",
            "{type: message}": "message"}[trigger]


# --- crmkit check -----------------------------------------------------------------------


def test_check_reports_every_problem_of_a_playbook_at_its_place(make_workspace, run):
    root = workspace(make_workspace, {
        "broken": """\
            descripton: typo
            trigger:
              type: [purchse, quote]
            steps:
              - name: first
                after: three days
                title: Hello
              - name: Second Step
                after: 2 weeks
                titel: x
                template: email/nope
            stop:
              - {tag: a, type: purchase}
            repeat: every year
            """,
        "orphan": "trigger: {tag: vip}\nsteps: [{name: a, after: 1 day, title: A}]\n",
        "segment": """\
            trigger: {type: purchase, segment: 'revenu > 5'}
            steps:
              - {name: a, after: 1 day, title: A, template: email/nope}
              - {name: b, after: 1 day, title: B, channel: email}
            """,
        "yearly": """\
            trigger: {stage: lead}
            steps: [{name: a, after: 13 months, title: A}]
            repeat: every 1 year
            """,
        "Bad Name": "trigger: {type: quote}\nsteps: [{name: a, after: 1 day, title: A}]\n",
        "birthday": "trigger: {type: quote}\nsteps: [{name: a, after: 1 day, title: A}]\n",
        "empty": "",
        "unparsable": "trigger: [\n",
    }, extra={"playbooks/notes.txt": "ideas\n"})
    result = run("-w", root, "check")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "playbooks/Bad Name.yaml:1:1: error: playbook name 'Bad Name' (the file name) must be "
        "lowercase letters, digits, '-' and '_', e.g. 'heating-installation': it becomes the "
        "reminders' kind",
        "playbooks/birthday.yaml:1:1: error: reminder kind 'birthday' is registered twice (by "
        "'reminders' and 'playbooks'); the second is left out",
        "playbooks/broken.yaml:1:1: error: unknown key 'descripton' in a playbook (did you "
        "mean 'description'?); known: description, title, trigger, steps, stop, "
        "repeat, expires_after, priority, channel",
        "playbooks/broken.yaml:3:10: error: unknown interaction type 'purchse' (did you mean "
        "'purchase'?) (crmkit.yaml's interaction_types can add one)",
        "playbooks/broken.yaml:6:12: error: 'after': 'three days' is not an offset: write a "
        "number and days, weeks, months or years (e.g. 3 days, 2 weeks, 3 months)",
        "playbooks/broken.yaml:8:5: error: step 2 needs 'title'",
        "playbooks/broken.yaml:8:11: error: step name 'Second Step' must be a lowercase slug "
        "(a-z, 0-9 and '-', e.g. 'maintenance-offer'): it is the last part of the reminders' "
        "ids",
        "playbooks/broken.yaml:10:5: error: unknown key 'titel' in step 2 (did you mean "
        "'title'?); known: name, after, title, channel, priority, template, stop",
        "playbooks/broken.yaml:13:5: error: stop condition 1 needs one of: an interaction "
        "(type, text, direction), a 'tag' or a 'segment', not several",
        "playbooks/broken.yaml:14:9: error: 'repeat' must be 'once', 'each' (a trigger that "
        "fires again starts a new run; the default) or 'every' and a span (e.g. every 1 year), "
        "not 'every year'",
        "playbooks/empty.yaml:1:1: error: empty playbook: it needs a 'trigger' and 'steps'",
        "playbooks/notes.txt: warning: ignored: not a .yaml file",
        "playbooks/orphan.yaml:1:10: error: the trigger needs an event with a day: an "
        "interaction (type, text, direction) or entering a lifecycle 'stage' (a tag or a "
        "segment alone has no day: crmkit keeps no history of when they were added)",
        "playbooks/segment.yaml:1:36: error: a segment of playbook segment: unknown name "
        "'revenu' (did you mean 'revenue'?) (column 1 of the expression)",
        "playbooks/segment.yaml:3:5: error: step 'a': no email template 'email/nope' "
        "(email/nope.en.txt.j2 in templates/ or a plugin's templates)",
        "playbooks/segment.yaml:4:5: warning: step 'b' is an email, but there is no template "
        "email/segment/b.en.txt.j2 (templates/): drafts leave it out",
        "playbooks/unparsable.yaml:2:1: error: invalid YAML: while parsing a flow node: did "
        "not find expected node content",
        "playbooks/yearly.yaml:1:18: error: 'stage' must be one of new, active, at_risk, lost, "
        "not 'lead' (a lead has no day it began: no purchase yet)",
        "playbooks/yearly.yaml:2:9: error: step 'a' comes 13 months after the start, not "
        "before the run starts again (every 1 year)",
        "1 customer, 0 interactions, 0 deals: 17 errors, 2 warnings",
    ]


def test_check_reports_every_mistake_once_and_none_hides_another(make_workspace, run):
    root = workspace(make_workspace, {
        "quote": """\
            trigger: {type: quote, segment: 'revenu > 5'}
            steps:
              - {name: first, after: 3 days, title: Ask, stop: [{tag: 5}, {segment: foo}]}
              - {name: second, after: 10 days, title: Ask again, priority: 0}
            stop:
              - {tag: 5}
              - {segment: 'complaints > 0 and bar'}
            priority: 0
            """,
        "staged": "trigger: {stage: lead, nth: 0}\nsteps: [{name: a, after: 1 day, title: A}]\n",
        "typed": "trigger: {type: 5, direction: out}\nsteps: [{name: a, after: 1 day, title: A}]\n",
    })
    assert run("-w", root, "check").stdout.splitlines() == [
        "playbooks/quote.yaml:1:33: error: a segment of playbook quote: unknown name 'revenu' "
        "(did you mean 'revenue'?) (column 1 of the expression)",
        "playbooks/quote.yaml:3:59: error: 'tag' must be text, not 5",
        "playbooks/quote.yaml:3:73: error: a segment of playbook quote: unknown name 'foo' "
        "(column 1 of the expression)",
        "playbooks/quote.yaml:4:64: error: 'priority' must be a whole number from 1 (most "
        "important) to 9, not 0",
        "playbooks/quote.yaml:6:11: error: 'tag' must be text, not 5",
        "playbooks/quote.yaml:7:15: error: a segment of playbook quote: unknown name 'bar' "
        "(column 20 of the expression)",
        "playbooks/quote.yaml:8:11: error: 'priority' must be a whole number from 1 (most "
        "important) to 9, not 0",
        "playbooks/staged.yaml:1:18: error: 'stage' must be one of new, active, at_risk, lost, "
        "not 'lead' (a lead has no day it began: no purchase yet)",
        "playbooks/staged.yaml:1:29: error: 'nth' counts interactions; a stage trigger has none",
        "playbooks/typed.yaml:1:17: error: 'type' must be a text or a list of texts, not 5",
        "playbooks/typed.yaml:1:31: error: 'direction' must be inbound or outbound, not 'out' "
        "(did you mean 'outbound'?)",
        "1 customer, 0 interactions, 0 deals: 11 errors, 0 warnings",
    ]


# --- dates crmkit cannot count to -------------------------------------------------------


def test_offsets_expiries_and_repetitions_longer_than_100_years_are_errors(make_workspace,
                                                                           run):
    root = workspace(make_workspace, {"huge": """\
        trigger: {type: purchase}
        steps:
          - {name: a, after: 7000 years, title: A}
          - {name: b, after: 99999999999999999999, title: B}
          - {name: c, after: 1201 months, title: C}
          - {name: d, after: 100 years, title: D}
        expires_after: 9000 years
        repeat: every 200 years
        """, "quote": "trigger: {type: purchase}\nsteps: [{name: a, after: 1 day, title: A}]\n"},
        "- {customer: anna, date: 2026-09-28, type: purchase, amount: 1}\n")
    longer = "is too long: at most 100 years (1200 months, 5217 weeks, 36525 days)"
    assert run("-w", root, "check").stdout.splitlines() == [
        f"playbooks/huge.yaml:3:22: error: 'after': '7000 years' {longer}",
        f"playbooks/huge.yaml:4:22: error: 'after': 99999999999999999999 {longer}",
        f"playbooks/huge.yaml:5:22: error: 'after': '1201 months' {longer}",
        f"playbooks/huge.yaml:7:16: error: 'expires_after': '9000 years' {longer}",
        f"playbooks/huge.yaml:8:9: error: 'repeat': 'every 200 years' {longer}",
        "1 customer, 1 interaction, 0 deals: 5 errors, 0 warnings",
    ]
    today = ("-w", root, "--today", "2026-10-01")
    listed = run(*today, "playbooks")
    assert listed.exit_code == 0 and "huge" not in listed.stdout  # not loaded
    reminders = run(*today, "reminders", "--kind", "quote", "--format", "json")
    assert [r["id"] for r in json.loads(reminders.stdout)] == ["quote/anna/2026-09-29/a"]


def test_a_step_after_the_last_day_crmkit_can_count_to_is_left_out_and_reported_once(
        make_workspace, run):
    root = workspace(make_workspace, {
        "late": """\
            trigger: {type: purchase}
            steps:
              - {name: soon, after: 0 days, title: Soon}
              - {name: later, after: 1 year, title: Later}
            """,
        "yearly": """\
            trigger: {type: purchase}
            steps: [{name: check, after: 0 days, title: Check}]
            repeat: every 1 year
            """,
        "onboarding": """\
            trigger: {stage: new}
            steps:
              - {name: welcome, after: 0 days, title: Welcome}
              - {name: tips, after: 6 months, title: Tips}
            """,
    }, "- {customer: anna, date: 9999-06-01, type: purchase, amount: 5}\n")
    today = ("-w", root, "--today", "9999-06-02")
    beyond = "due or expiring after 9999-11-30, the last day crmkit can plan for"
    result = run(*today, "check")
    assert result.stdout.splitlines() == [
        "playbooks/late.yaml:4:5: error: step 'later' is left out of the run started by the "
        f"purchase of 9999-06-01 (interactions/all.yaml:1:3): {beyond}",
        "playbooks/onboarding.yaml:4:5: error: step 'tips' is left out of runs that start as "
        f"late as today (9999-06-02, entering stage new): {beyond}",
        "playbooks/yearly.yaml:2:9: error: step 'check' is left out of the repetitions (every "
        "1 year) of the run started by the purchase of 9999-06-01 (interactions/all.yaml:1:3): "
        f"{beyond}",
        "1 customer, 1 interaction, 0 deals: 3 errors, 0 warnings",
    ]
    reminders = run(*today, "reminders", "--format", "json")
    assert reminders.exit_code == 0
    assert sorted(r["id"] for r in json.loads(reminders.stdout) if "/9999-" in r["id"]
                  and not r["id"].startswith("thank_you")) == [
        "late/anna/9999-06-01/soon", "onboarding/anna/9999-06-01/welcome",
        "yearly/anna/9999-06-01/check"]
    assert "failed" not in reminders.stderr
    listed = run(*today, "playbooks")
    assert listed.exit_code == 0
    assert "late        anna      9999-06-01  1/2 soon" in listed.stdout
    built = run(*today, "build")
    assert built.exit_code == 0 and "failed" not in built.stderr
    assert "Soon" in (root / "out" / "reminders.md").read_text(encoding="utf-8")


def test_a_step_after_the_next_repetition_is_an_error(make_workspace, run):
    root = workspace(make_workspace, {"yearly": """\
        trigger: {type: quote}
        steps: [{name: a, after: 13 months, title: A}]
        repeat: every 1 year
        """})
    assert run("-w", root, "check").stdout.splitlines()[0] == (
        "playbooks/yearly.yaml:2:9: error: step 'a' comes 13 months after the start, not "
        "before the run starts again (every 1 year)")


# --- crmkit playbooks -------------------------------------------------------------------


def test_the_playbooks_command_lists_who_is_in_which_step(make_workspace, run):
    quote = """\
        description: follow up a quote twice
        trigger: {type: quote}
        steps:
          - {name: first, after: 3 days, title: Ask}
          - {name: second, after: 10 days, title: Ask again}
        stop: [{type: purchase}]
        """
    customers = {"anna": ANNA, "bert": "name: Bert\n", "cleo": "name: Cleo\n",
                 "dora": "name: Dora\n"}
    root = workspace(make_workspace, {"quote": quote, "heating": HEATING}, """\
        - {customer: anna, date: 2026-11-12, type: quote}
        - {customer: bert, date: 2026-11-01, type: quote}
        - {customer: bert, date: 2026-11-10, type: purchase}
        - {customer: cleo, date: 2026-11-19, type: quote}
        - {customer: dora, date: 2026-11-01, type: quote}
        - {customer: dora, date: 2026-11-05, type: done, resolves: [quote/dora/2026-11-04/first,
           quote/dora/2026-11-11/second]}
        """, customers=customers)
    result = run("-w", root, "--today", "2026-11-23", "playbooks")
    assert result.stdout == """\
playbook  trigger                                       steps                           repeat
--------  --------------------------------------------  ------------------------------  ------------
heating   purchase mentioning 'Therme' or 'Wärmepumpe'  offer +0 days, facade +90 days  each trigger
quote     quote                                         first +3 days, second +10 days  each trigger

playbook  customer  started     step       due         status
--------  --------  ----------  ---------  ----------  ------------------------------------
quote     anna      2026-11-12  1/2 first  2026-11-15  overdue
quote     bert      2026-11-01                         stopped: purchase on 2026-11-10
quote     cleo      2026-11-19  1/2 first  2026-11-22  overdue
quote     dora      2026-11-01                         finished: every step done or settled
"""
    assert "2 playbooks, 4 runs: 2 overdue, 1 stopped, 1 finished" in result.stderr
    data = json.loads(run("-w", root, "--today", "2026-11-23", "playbooks", "quote",
                          "--customer", "anna", "--format", "json").stdout)
    assert data == [{
        "name": "quote", "path": "playbooks/quote.yaml", "description": "follow up a quote twice",
        "state": "enabled", "trigger": "quote", "repeat": "each trigger",
        "steps": [{"name": "first", "after": "3 days", "title": "Ask", "channel": None,
                   "priority": 3, "template": "email/quote/first"},
                  {"name": "second", "after": "10 days", "title": "Ask again",
                   "channel": None, "priority": 3, "template": "email/quote/second"}],
        "runs": [{"customer": "anna", "started": "2026-11-12",
                  "trigger": "interactions/all.yaml:1:3", "step": "first", "number": 1,
                  "due": "2026-11-15", "id": "quote/anna/2026-11-15/first",
                  "state": "overdue", "status": "overdue"}]}]


def test_the_playbooks_command_says_what_is_wrong(make_workspace, run):
    root = workspace(make_workspace, {"quote": "trigger: {type: quote}\n"
                                               "steps: [{name: a, after: 1 day, title: A}]\n"})
    result = run("-w", root, "playbooks", "qoute")
    assert result.exit_code == 1
    assert "no playbook 'qoute' (did you mean 'quote'?)" in result.output
    empty = workspace(make_workspace, {})
    assert "no playbooks yet" in run("-w", empty, "playbooks").stderr


# --- the core keeps nothing stale -------------------------------------------------------


def test_a_changed_playbook_is_seen_by_watch_and_by_the_state_between_runs(make_workspace,
                                                                          monkeypatch):
    import importlib

    from click.testing import CliRunner
    from conftest import age_files

    cli_main = importlib.import_module("crmkit.cli.main")
    root = workspace(make_workspace, {"heating": HEATING},
                     "- {customer: anna, date: 2026-09-28, type: purchase, items: [Therme]}\n")
    age_files(root, 3600)
    monkeypatch.setattr(cli_main, "_one_shot", True)

    def reminders(no_cache=False):
        args = ["-w", str(root), "--today", "2026-10-01", *(["--no-cache"] * no_cache),
                "reminders", "--kind", "heating", "--format", "json", "--within", "100"]
        return CliRunner().invoke(cli_main.cli, args).output

    before = reminders()
    watcher = Watcher(root, dt.date(2026, 10, 1), lambda line: None)
    watcher.rebuild(None)
    path = root / "playbooks" / "heating.yaml"
    path.write_text(HEATING.replace("90 days", "60 days").replace("Offer maintenance",
                                                                  "Offer the contract"),
                    encoding="utf-8")
    os.utime(path, (1_700_000_000, 1_700_000_000))  # an old mtime: nothing racy
    after = reminders()
    assert after != before and "heating/anna/2026-11-27/facade" in after
    assert after == reminders(no_cache=True)
    watcher.rebuild({"playbooks/heating.yaml"})
    written = (root / "out" / "reminders.md").read_text(encoding="utf-8")
    assert "Offer the contract" in written
    copy = root.parent / "fresh"
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("out", ".crmkit"))
    App(copy, dt.date(2026, 10, 1), use_cache=False).build()
    assert (copy / "out" / "reminders.md").read_text(encoding="utf-8") == written


# --- the docs ---------------------------------------------------------------------------


def test_the_docs_show_the_example_playbooks_verbatim_and_their_snippets_parse():
    doc = (REPO / "docs" / "playbooks.md").read_text(encoding="utf-8")
    files = sorted((EXAMPLE / "playbooks").glob("*.yaml"))
    assert [p.stem for p in files] == ["heating", "onboarding", "premium-upsell", "quote"]
    for path in files:
        assert f"```yaml\n{path.read_text(encoding='utf-8')}```" in doc, path
    [repeating] = re.findall(r"```yaml\n(# playbooks/heating-check.yaml.*?)```", doc, re.DOTALL)
    parsed = parse("playbooks/heating-check.yaml",
                   parse_yaml(repeating.encode(), "playbooks/heating-check.yaml").data)
    assert parsed.problems == [] and parsed.playbook is not None
    assert str(parsed.playbook.every) == "1 year"


def test_the_title_names_a_playbooks_reminders_in_reports_and_the_calendar(make_workspace, run):
    """Groups in the weekly report and calendar categories were headed by the file name
    (`heating`); now by the playbook's title, else its description, in the user's words;
    a stock kind's category is its title in the workspace's language."""
    titled = HEATING.replace("description: after a heating installation\n",
                             "description: nach dem Einbau\ntitle: Nach Heizungseinbau\n")
    purchase = ("- {customer: anna, date: 2026-05-30, type: purchase, amount: 9000, "
                "summary: Neue Therme}\n")
    root = workspace(make_workspace, {"heating": titled}, purchase,
                     settings=SETTINGS.replace("locale: en", "locale: de"),
                     extra={"customers/bert.yaml": "name: Bert\nbirthday: 1980-06-03\n"})
    ics = run("-w", root, "--today", "2026-06-01", "reminders", "--format", "ics").stdout
    categories = sorted(line for line in ics.splitlines() if line.startswith("CATEGORIES"))
    assert "CATEGORIES:Geburtstage" in categories  # bert's birthday, a stock kind
    assert "CATEGORIES:Nach Heizungseinbau" in categories
    assert not [c for c in categories if "_" in c or "heating" in c]  # no kind keys
    weekly = run("-w", root, "--today", "2026-06-01", "report", "weekly", "--format", "md",
                 "--out", "-").stdout
    assert "**Nach Heizungseinbau** (1)" in weekly and "**heating**" not in weekly
    untitled = workspace(make_workspace, {"heating": HEATING}, purchase)
    ics = run("-w", untitled, "--today", "2026-06-01", "reminders", "--format", "ics").stdout
    assert "CATEGORIES:after a heating installation" in ics
