import datetime as dt
import os
import subprocess
from decimal import Decimal

import pytest
from conftest import CRMKIT, REPO

from crmkit.engine.plugins import load_plugins
from crmkit.loading.loader import find_workspace, load_workspace
from crmkit.model.diagnostics import CrmkitError

ANNA = """\
name: Anna Müller
email: anna@example.de
birthday: 1980-02-29
tags: [weimar, vip]
consent: {email: true, since: 2024-01-02, how: web form}
services:
  - name: Wartung
    interval: 12 months
    start: 2024-01-15
fields:
  heating: gas
"""


def diagnostics(ws):
    return [str(d) for d in ws.diagnostics]


def test_valid_workspace_loads_records_with_their_fields(make_workspace):
    root = make_workspace({
        "customers/anna-mueller.yaml": ANNA,
        "interactions/2024/a.yaml": """\
            customer: anna-mueller
            date: 2024-03-01
            type: purchase
            amount: 199.90
            items: [Wartung, {name: Dichtung, quantity: 2, price: 4.5}]
            payment: late
            follow_up: {date: 2024-03-15, what: ask about the boiler}
        """,
        "interactions/2024/calls.yaml": """\
            - {customer: anna-mueller, date: 2024-02-01, type: call, direction: inbound}
            - {customer: anna-mueller, date: "2024-02-02T18:30:00+00:00", type: email}
        """,
        "deals/anna-bad.yaml": """\
            customer: anna-mueller
            title: New bathroom
            value: 12000
            probability: 40%
            expected_close: 2024-06-30
        """,
    })
    ws = load_workspace(root)
    assert diagnostics(ws) == []
    anna = ws.customers["anna-mueller"]
    assert anna.name == "Anna Müller"
    assert anna.emails == ("anna@example.de",)
    assert anna.birthday == dt.date(1980, 2, 29)
    assert anna.consent.email and anna.consent.since == dt.date(2024, 1, 2)
    assert anna.services[0].interval.count == 12 and anna.services[0].interval.unit == "months"
    assert anna.fields["heating"] == "gas"
    history = ws.history("anna-mueller")
    assert [i.type for i in history] == ["call", "email", "purchase"]
    email = history[1]
    # 18:30 UTC is 19:30 in Berlin; the date stays 2024-02-02.
    assert email.at is not None and email.at.hour == 19 and email.date == dt.date(2024, 2, 2)
    purchase = history[2]
    assert purchase.amount == Decimal("199.90") and purchase.currency == "EUR"
    assert [i.name for i in purchase.items] == ["Wartung", "Dichtung"]
    assert purchase.items[1].quantity == 2
    assert purchase.follow_up is not None and purchase.follow_up.what == "ask about the boiler"
    assert str(purchase.location) == "interactions/2024/a.yaml:1:1"
    assert str(history[0].location) == "interactions/2024/calls.yaml:1:3"
    deal = ws.deals["anna-bad"]
    assert deal.probability == Decimal("0.4") and deal.is_open


def test_late_evening_datetime_lands_on_the_local_date(make_workspace):
    root = make_workspace({
        "customers/a.yaml": "name: A\n",
        "interactions/x.yaml": 'customer: a\ndate: "2024-05-01T23:30:00+00:00"\ntype: call\n',
    })
    (call,) = load_workspace(root).interactions
    assert call.date == dt.date(2024, 5, 2)  # 01:30 in Berlin (CEST)


def test_broken_files_give_exact_diagnostics_and_the_rest_still_loads(make_workspace):
    root = make_workspace({
        "customers/anna-mueller.yaml": ANNA,
        "customers/bob.yaml": "name: Bob\nemail: [bob@x.de\n",
        "customers/Carl_X.yaml": "name: Carl\n",
        "customers/dora.yaml": "name: Dora\nemial: dora@x.de\nbirthday: 1990-13-01\n",
        "customers/eve.yaml": "- name: Eve\n",
        "customers/fred.yaml": "company: Fred GmbH\nemail: fred-at-example\n",
        "interactions/ok.yaml": "customer: anna-mueller\ndate: 2024-01-01\ntype: call\n",
        "interactions/bad.yaml": """\
            customer: anna-muller
            date: 2024-02-30
            type: cal
            amount: zwölf
            score: 11
            direction: sideways
        """,
        "interactions/list.yaml": """\
            - customer: anna-mueller
              date: 2024-01-02
              type: purchase
              amount: 10
            - just text
            - customer: nobody
              date: 2024-01-03
              type: call
        """,
        "deals/d1.yaml": "customer: ghost\ntitle: T\nprobability: 150%\n",
    })
    ws = load_workspace(root)
    assert diagnostics(ws) == [
        "customers/Carl_X.yaml: error: customer id 'Carl_X' (the file name) must be a "
        "lowercase slug: a-z, 0-9 and '-', e.g. 'anna-mueller'",
        "customers/bob.yaml:3:1: error: invalid YAML: did not find expected ',' or ']' "
        "(while parsing a flow sequence at line 2)",
        "customers/dora.yaml:2:1: error: unknown field 'emial' in a customer "
        "(did you mean 'email'?)",
        "customers/dora.yaml:3:11: error: 'birthday': '1990-13-01' is not a valid date "
        "(month must be in 1..12)",
        "customers/eve.yaml:1:1: error: expected a customer mapping (key: value lines), "
        "found a list",
        "customers/fred.yaml:1:1: error: missing required field 'name'",
        "customers/fred.yaml:2:8: error: 'fred-at-example' is not a valid email address",
        "deals/d1.yaml:1:11: error: unknown customer 'ghost'",
        "deals/d1.yaml:3:14: error: 'probability' must be between 0 and 1 (or '0%' to '100%')",
        "interactions/bad.yaml:1:11: error: unknown customer 'anna-muller' "
        "(did you mean 'anna-mueller'?)",
        "interactions/bad.yaml:2:7: error: 'date': '2024-02-30' is not a valid date or time "
        "(day is out of range for month)",
        "interactions/bad.yaml:3:7: error: unknown interaction type 'cal' (did you mean "
        "'call'?) (add it to 'interaction_types' in crmkit.yaml if it is yours)",
        "interactions/bad.yaml:4:9: error: 'amount' must be a number, not 'zwölf'",
        "interactions/bad.yaml:5:8: error: 'score' must be a whole number from 0 to 10, not 11",
        "interactions/bad.yaml:6:12: error: 'direction' must be one of inbound, outbound, "
        "not 'sideways'",
        "interactions/list.yaml:5:3: error: list item must be an interaction mapping",
        "interactions/list.yaml:6:13: error: unknown customer 'nobody'",
    ]
    # What was fine is still there.
    assert sorted(ws.customers) == ["anna-mueller", "dora"]
    assert [(i.type, i.date.day) for i in ws.interactions] == [("call", 1), ("purchase", 2)]


def test_unknown_settings_are_errors_with_a_suggestion(make_workspace):
    root = make_workspace(settings="business: X\nlocal: de\ntimezone: Mars/Base\n"
                                   "currency: euro\n")
    assert diagnostics(load_workspace(root)) == [
        "crmkit.yaml:2:1: error: unknown setting 'local' (did you mean 'locale'?)",
        "crmkit.yaml:3:11: error: unknown time zone 'Mars/Base' (use an IANA name such as "
        "'Europe/Berlin')",
        "crmkit.yaml:4:11: error: 'currency' must be a three-letter ISO code such as EUR, "
        "not 'euro'",
    ]


def test_plugin_sections_are_accepted_only_when_a_plugin_claims_them(make_workspace):
    root = make_workspace(settings="business: X\nreferrals:\n  top_referrer_min: 3\n")
    assert diagnostics(load_workspace(root)) == [
        "crmkit.yaml:2:1: error: unknown setting 'referrals'"]
    (root / "plugins").mkdir()
    source = REPO / "docs" / "examples" / "referrals" / "crmkit_referrals.py"
    (root / "plugins" / "referrals.py").write_text(source.read_text(encoding="utf-8"))
    ws = load_workspace(root, load_plugins(root))
    assert diagnostics(ws) == []
    assert ws.settings.section("referrals") == {"top_referrer_min": 3}
    assert ws.settings.options("referrals").top_referrer_min == 3


def test_extra_interaction_types_from_settings(make_workspace):
    root = make_workspace({
        "customers/a.yaml": "name: A\n",
        "interactions/x.yaml": "customer: a\ndate: 2024-01-01\ntype: workshop\n",
    }, settings="business: X\ninteraction_types: [workshop]\n")
    ws = load_workspace(root)
    assert diagnostics(ws) == [] and ws.interactions[0].type == "workshop"


def test_duplicate_ids_and_dangling_referrals(make_workspace):
    root = make_workspace({
        "customers/a.yaml": "name: A\nreferred_by: zed\n",
        "customers/a.yml": "name: A again\n",
        "customers/b.yaml": "name: B\nreferred_by: b\n",
    })
    assert diagnostics(load_workspace(root)) == [
        "customers/a.yaml:2:14: error: 'referred_by': unknown customer 'zed'",
        "customers/a.yml: error: duplicate customer id 'a' (also in customers/a.yaml)",
        "customers/b.yaml:2:14: error: 'referred_by' names the customer itself",
    ]


def test_editor_junk_is_ignored_and_other_files_are_warned_about(make_workspace):
    root = make_workspace({
        "customers/a.yaml": "name: A\n",
        "customers/.a.yaml.swp": b"\x00binary",
        "customers/a.yaml~": "name: old\n",
        "customers/README.md": "hello",
    })
    ws = load_workspace(root)
    assert list(ws.customers) == ["a"]
    assert diagnostics(ws) == ["customers/README.md: warning: ignored: not a .yaml file"]


def test_a_record_named_with_a_leading_dot_is_skipped_with_a_warning(make_workspace, run):
    """Hidden files are not read, but a whole record named ``.anna.yaml`` is not dropped
    without a word; editor files that start with a dot stay silent."""
    root = make_workspace({
        "customers/.anna.yaml": "name: Anna\n",
        "customers/bert.yaml": "name: Bert\n",
        "customers/.bert.yaml.swp": b"\x00swap",
        "customers/._bert.yaml": b"\x00\x05\x16\x07",  # macOS's resource fork
        "customers/.gitkeep": "",
        "interactions/2026/..call.yml": "customer: bert\ndate: 2026-05-01\ntype: call\n",
        "deals/.yaml": "customer: bert\n",
        "playbooks/.quote.yaml": "trigger: quote\n",
    })
    if hasattr(os, "symlink"):
        os.symlink("user@host.4242:1", root / "customers" / ".#bert.yaml")  # emacs' lock
    ws = load_workspace(root)
    assert list(ws.customers) == ["bert"] and ws.interactions == ()
    skipped = "warning: skipped: file names starting with a dot are not read"
    assert diagnostics(ws) == [
        f"customers/.anna.yaml: {skipped} (rename it to anna.yaml)",
        f"deals/.yaml: {skipped}",
        f"interactions/2026/..call.yml: {skipped} (rename it to call.yml)",
        f"playbooks/.quote.yaml: {skipped} (rename it to quote.yaml)"]
    result = run("-w", root, "check", "--strict")
    assert result.exit_code == 1
    assert f"customers/.anna.yaml: {skipped} (rename it to anna.yaml)\n" in result.stdout
    # every other command says that files were not read, in the terminal's language
    said = subprocess.run([CRMKIT, "-w", str(root), "reminders"], capture_output=True,
                          text=True, env={**os.environ, "LANG": "de_DE.UTF-8"})
    assert said.returncode == 0
    assert ("Warnung: 4 Dateien im Arbeitsbereich wurden nicht gelesen; 'crmkit check' "
            "zeigt sie\n") in said.stderr
    (root / "customers" / ".anna.yaml").rename(root / "customers" / "anna.yaml")
    for rel in ("deals/.yaml", "interactions/2026/..call.yml", "playbooks/.quote.yaml"):
        (root / rel).unlink()
    said = subprocess.run([CRMKIT, "-w", str(root), "build"], capture_output=True, text=True,
                          env={**os.environ, "LANG": "C"})
    assert said.returncode == 0 and "not read" not in said.stderr


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks on this platform")
def test_symlink_out_of_the_workspace_is_refused(make_workspace, tmp_path):
    secret = tmp_path / "secret.yaml"
    secret.write_text("name: Secret\n")
    root = make_workspace({"customers/a.yaml": "name: A\n"})
    (root / "customers" / "s.yaml").symlink_to(secret)
    ws = load_workspace(root)
    assert list(ws.customers) == ["a"]
    assert diagnostics(ws) == [
        "customers/s.yaml: error: ignored: symlink points outside the workspace"]


def test_find_workspace_walks_up_and_honours_env_and_option(make_workspace, monkeypatch):
    root = make_workspace()
    deep = root / "customers" / "sub"
    deep.mkdir(parents=True)
    monkeypatch.chdir(deep)
    monkeypatch.delenv("CRMKIT_WORKSPACE", raising=False)
    assert find_workspace() == root.resolve()
    monkeypatch.chdir(root.parent)
    with pytest.raises(CrmkitError, match=r"no crmkit\.yaml found"):
        find_workspace()
    monkeypatch.setenv("CRMKIT_WORKSPACE", str(root))
    assert find_workspace() == root.resolve()
    with pytest.raises(CrmkitError, match="not a crmkit workspace"):
        find_workspace(root / "customers")


def test_a_broken_customer_file_does_not_flood_its_interactions_with_errors(make_workspace):
    root = make_workspace({
        "customers/anna.yaml": "name: [Anna\n",
        "interactions/a.yaml": "- {customer: anna, date: 2024-01-01, type: call}\n"
                               "- {customer: anna, date: 2024-01-02, type: call}\n",
    })
    assert diagnostics(load_workspace(root)) == [
        "customers/anna.yaml: warning: 2 interaction(s) of 'anna' are left out until this "
        "file is fixed",
        "customers/anna.yaml:2:1: error: invalid YAML: did not find expected ',' or ']' "
        "(while parsing a flow sequence at line 1)",
    ]


CONFLICT = "unresolved merge conflict: git left its <<<<<<< ======= >>>>>>> markers here"


def test_merge_conflict_markers_are_named_as_such_wherever_git_left_them(make_workspace):
    root = make_workspace({
        "customers/anna.yaml": "name: Anna\n<<<<<<< HEAD\nphone: '1'\n=======\nphone: '2'\n"
                               ">>>>>>> theirs\n",
        # diff3 style, in a list of interactions
        "interactions/a.yaml": "- {customer: bob, date: 2024-01-01, type: call}\n"
                               "<<<<<<< ours\n- {customer: bob, date: 2024-01-02, type: call}\n"
                               "||||||| base\n=======\n"
                               "- {customer: bob, date: 2024-01-03, type: call}\n>>>>>>> b\n",
        "customers/bob.yaml": "name: Bob\n",
        # a line of equals signs in a text, without <<<<<<< or >>>>>>>, is text
        "customers/cleo.yaml": "name: Cleo\nnotes: |\n  Heading\n  =======\n  text\n",
    })
    ws = load_workspace(root)
    assert diagnostics(ws) == [
        "customers/anna.yaml:2:1: error: " + CONFLICT + " (and at lines 4, 6); keep the right "
        "lines, delete the markers and commit (docs/team.md)",
        "interactions/a.yaml:2:1: error: " + CONFLICT + " (and at lines 4, 5, 7); keep the "
        "right lines, delete the markers and commit (docs/team.md)",
    ]
    assert sorted(ws.customers) == ["bob", "cleo"]
    assert ws.customers["cleo"].notes == "Heading\n=======\ntext"


def test_a_merge_conflict_in_crmkit_yaml_is_one_error_not_an_empty_file(make_workspace):
    root = make_workspace(settings="business: X\n<<<<<<< HEAD\nlocale: de\n=======\n"
                                   "locale: en\n>>>>>>> other\n")
    from crmkit import App

    assert [str(d) for d in App(root).workspace.diagnostics if d.is_error] == [
        "crmkit.yaml:2:1: error: " + CONFLICT + " (and at lines 4, 6); keep the right lines, "
        "delete the markers and commit (docs/team.md)"]
