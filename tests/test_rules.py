"""The rule engine as plugin authors meet it: what a rule may read, what every registered
kind gets, how failures and names are reported, and that plugins stay plugins."""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess

from conftest import CRMKIT, REPO

from crmkit import App

TODAY = dt.date(2026, 6, 1)
EXAMPLES = REPO / "docs" / "examples"
CUSTOMERS = {
    "customers/anna.yaml": "name: Anna\nemail: anna@x.de\n"
                           "consent: {email: true, since: 2024-01-01}\ntags: [vip]\n",
    "customers/bert.yaml": "name: Bert\nphone: '0361 123'\n",
    "interactions/p.yaml": "- {customer: anna, date: 2024-05-20, type: purchase, amount: 900}\n"
                           "- {customer: anna, date: 2025-12-01, type: purchase, amount: 90}\n"
                           "- {customer: bert, date: 2025-06-10, type: purchase, amount: 50}\n",
}
ANNIVERSARY = (EXAMPLES / "anniversary" / "crmkit_anniversary.py").read_text(encoding="utf-8")


def messages(app: App) -> list[str]:
    return [str(d) for d in app.workspace.diagnostics]


def test_reading_an_undeclared_label_is_an_error_naming_plugin_rule_and_customers(
        make_workspace):
    root = make_workspace({**CUSTOMERS, "plugins/sloppy.py": (
        "import crmkit\n\n"
        "def vip(c):\n"
        "    return c.labels['abc'] == 'A'\n\n"
        "@crmkit.hookimpl\n"
        "def crmkit_register(register):\n"
        "    register(crmkit.Label('vip_a', vip))\n")})
    app = App(root, TODAY)
    assert app.labels()["anna"]["vip_a"] is None  # the others go on
    assert app.labels()["anna"]["abc"] == "A"
    assert [str(p) for p in app.problems] == [
        "plugins/sloppy.py:4:1: error: plugin 'sloppy': label 'vip_a' failed for customer "
        "'anna': UndeclaredRead: 'abc' is not declared: add it to the rule's reads=(...) "
        "(it declares nothing) (and 1 more customer)"]


def test_a_many_rule_failing_for_one_customer_fails_for_that_one_only(make_workspace):
    """A rule over many customers at once (``many=True``) that raises: the core asks
    again for each customer alone, so one bad record does not switch off the rest."""
    root = make_workspace({**CUSTOMERS, "customers/carla.yaml": "name: Carla\n",
                           "plugins/lengths.py": (
        "import crmkit\n\n"
        "def lengths(views):  # Anna and Bert have 4 letters: 10 // 0\n"
        "    return [10 // (len(c.customer.name) - 4) for c in views]\n\n"
        "@crmkit.hookimpl\n"
        "def crmkit_register(register):\n"
        "    register(crmkit.Label('per_letter', lengths, many=True))\n")})
    app = App(root, TODAY)
    assert app.labels().column("per_letter") == {"anna": None, "bert": None, "carla": 10}
    assert [str(p) for p in app.problems] == [
        "plugins/lengths.py:4:1: error: plugin 'lengths': label 'per_letter' failed for "
        "customer 'anna': ZeroDivisionError: integer division or modulo by zero "
        "(and 1 more customer)"]


def test_names_a_rule_reads_are_checked_with_a_did_you_mean(make_workspace):
    root = make_workspace({**CUSTOMERS, "plugins/typo.py": (
        "import crmkit\n\n"
        "@crmkit.hookimpl\n"
        "def crmkit_register(register):\n"
        "    register(crmkit.Label('loyal', lambda c: c.labels['lifecylce'],\n"
        "                          reads=('lifecylce',)))\n")},
        settings="business: X\nreminders:\n  stay_in_touch:\n"
                 "    rules: [{segment: 'loyl and abc == \"A\"', days: 30}]\n")
    assert messages(App(root, TODAY)) == [
        "crmkit.yaml:4:23: error: 'reminders.stay_in_touch.rules[1].segment': unknown name "
        "'loyl' (did you mean 'loyal'?) (column 1 of the expression)",
        "plugins/typo.py:5:1: error: label 'loyal' reads 'lifecylce', which no plugin "
        "registers (did you mean 'lifecycle'?)",
    ]


def test_labels_of_any_plugin_are_names_in_segments_and_reminder_rules(make_workspace):
    root = make_workspace({**CUSTOMERS, "plugins/tier.py": (
        "import crmkit\n\n"
        "@crmkit.hookimpl\n"
        "def crmkit_register(register):\n"
        "    register(crmkit.Label('tier', lambda c: 'gold' if 'vip' in c.customer.tags\n"
        "                          else 'std'))\n")},
        settings="business: X\nsegments:\n  golden: tier == \"gold\"\n"
                 "reminders:\n  stay_in_touch:\n    rules: [{segment: tier=gold, days: 30}]\n")
    app = App(root, TODAY)
    assert app.workspace.errors == []
    assert app.labels()["anna"]["segments"] == {"golden": True}
    assert [(r.customer, r.kind) for r in app.reminders() if r.kind == "stay_in_touch"] == [
        ("anna", "stay_in_touch")]
    assert [c.id for c in app.customers("golden")] == ["anna"]


def test_a_kind_from_the_docs_gets_every_stock_feature(make_workspace, run):
    root = make_workspace({**CUSTOMERS, "plugins/anniversary.py": ANNIVERSARY,
                           "templates/email/anniversary.en.txt.j2":
                           "Subject: {{ details.years }} years!\n\nThank you, "
                           "{{ customer.name }}.\n"},
                          settings="business: X\nsender: {name: S, email: s@x.de}\n"
                                   "reminders:\n  anniversary: {min_years: 2, priorty: 1, "
                                   "grace_days: 30}\n")
    app = App(root, TODAY)
    # options validated with their place and a did-you-mean; the rest still applies
    assert messages(app) == ["crmkit.yaml:4:31: error: unknown setting 'priorty' in "
                             "'reminders.anniversary' (did you mean 'priority'?)"]
    [due] = [r for r in app.reminders() if r.kind == "anniversary"]
    assert (due.customer, due.due, due.channel, due.priority) == (
        "anna", dt.date(2026, 5, 20), "email", 3)  # the channel policy: consent → email
    draft = app.draft_email(due)
    assert draft is not None and draft.subject == "2 years!"
    listed = json.loads(run("-w", root, "--today", TODAY, "reminders", "--list-kinds",
                            "--format", "json").stdout)
    assert {"kind": "anniversary", "plugin": "anniversary", "enabled": True, "priority": 3,
            "channel": None, "email_template": "email/anniversary",
            "description": "thanks on the anniversary"} in listed
    typo = run("-w", root, "--today", TODAY, "reminders", "--kind", "aniversary")
    assert "unknown reminder kind 'aniversary' (did you mean 'anniversary'?)" in typo.stderr
    ics = run("-w", root, "--today", TODAY, "reminders", "--kind", "anniversary", "--format",
              "ics").stdout
    assert "SUMMARY:2 years with us: thank Anna" in ics
    (root / "crmkit.yaml").write_text("business: X\nreminders:\n  anniversary: "
                                      "{enabled: false}\n")
    assert not [r for r in App(root, TODAY).reminders() if r.kind == "anniversary"]


def test_the_frequency_cap_holds_back_any_plugins_kind(make_workspace):
    root = make_workspace({**CUSTOMERS, "plugins/anniversary.py": ANNIVERSARY,
                           "interactions/o.yaml": "".join(
                               f"- {{customer: anna, date: 2026-05-1{d}, type: email, "
                               f"direction: outbound}}\n" for d in (1, 2))},
                          settings="business: X\nreminders:\n  anniversary: {grace_days: 30}\n")
    [held] = [r for r in App(root, TODAY).reminders()
              if r.kind == "anniversary" and r.customer == "anna"]
    assert held.suppressed and held.suppressed.startswith(
        "held back: at most 2 contacts in 30 days")


def test_a_drafter_that_raises_is_reported_and_the_stock_one_still_drafts(make_workspace):
    root = make_workspace({**CUSTOMERS,
                           "interactions/f.yaml": "customer: anna\ndate: 2026-05-25\n"
                                                  "type: call\nfollow_up: 2026-05-30\n",
                           "plugins/broken.py": (
                               "import crmkit\n\n@crmkit.hookimpl\n"
                               "def crmkit_draft_email(reminder):\n    raise KeyError('x')\n")},
                          settings="business: X\nsender: {name: S, email: s@x.de}\n")
    app = App(root, TODAY)
    [follow_up] = [r for r in app.reminders() if r.kind == "follow_up"]
    draft = app.draft_email(follow_up)
    assert draft is not None and draft.template == "email/follow_up.en.txt.j2"
    assert [p.message for p in app.problems] == [
        "plugin 'broken' failed in crmkit_draft_email: KeyError: 'x'"]


def test_hooks_go_through_pluggy_so_plugins_can_wrap_them(make_workspace):
    root = make_workspace({**CUSTOMERS,
                           "interactions/f.yaml": "customer: anna\ndate: 2026-05-25\n"
                                                  "type: call\nfollow_up: 2026-05-30\n",
                           "plugins/signature.py": (
                               "import dataclasses\nimport crmkit\n\n"
                               "@crmkit.hookimpl(wrapper=True)\n"
                               "def crmkit_draft_email(reminder):\n"
                               "    draft = yield\n"
                               "    return draft and dataclasses.replace(\n"
                               "        draft, body=draft.body + '-- signed\\n')\n")},
                          settings="business: X\nsender: {name: S, email: s@x.de}\n")
    app = App(root, TODAY)
    [follow_up] = [r for r in app.reminders() if r.kind == "follow_up"]
    assert app.draft_email(follow_up).body.endswith("-- signed\n")


def test_tracing_shows_which_plugin_answered_what(make_workspace):
    root = make_workspace(CUSTOMERS)
    result = subprocess.run([CRMKIT, "-w", root, "--today", str(TODAY), "--no-cache", "check"],
                            capture_output=True, text=True,
                            env={**os.environ, "CRMKIT_TRACE_PLUGINS": "1"})
    lines = result.stderr.splitlines()
    assert any(line.startswith("[plugins] crmkit_register <- segments: nothing (")
               for line in lines), lines
    assert any(line.startswith("[plugins] crmkit_validate <- checks: 0 item(s)")
               for line in lines), lines


def test_disabling_predict_removes_it_everywhere(make_workspace):
    settings = ("business: X\ndisable_plugins: [predict]\n"
                "prediction: {use_for_segments: false}\n")
    app = App(make_workspace(CUSTOMERS, settings=settings), TODAY)
    assert app.workspace.diagnostics == ()  # its settings section is accepted and ignored
    assert "p_alive" not in app.labels()["anna"]
    assert "expected_value" not in app.metrics()
    assert app.labels()["anna"]["lifecycle"] == "active"
    assert not [s for s in app.report_sections("dashboard") if s.name == "prediction"]


def test_a_label_over_everybody_runs_every_time_and_across_steps_are_kept(make_workspace):
    calls = {"over_all": 0, "across": 0}
    root = make_workspace(CUSTOMERS)
    from crmkit.engine.rules import Label
    from crmkit.incremental.memo import Memo

    app = App(root, TODAY, memo=Memo(active=True))

    def over_all(population):
        calls["over_all"] += 1
        return {c.id: len(population.customers) for c in population.customers}

    def across(parts, scope):
        calls["across"] += 1
        return dict.fromkeys(parts, sum(parts.values()))

    app.registry.labels["everybody"] = Label("everybody", over_all=over_all)
    app.registry.labels["total"] = Label("total", lambda c: 1, across=across)
    app.registry.owners[("Label", "everybody")] = app.registry.owners[("Label", "total")] = "t"
    for _ in range(3):
        again = app._sharing(TODAY, "workspace")
        assert again.labels().column("everybody") == {"anna": 2, "bert": 2}
        assert again.labels().column("total") == {"anna": 2, "bert": 2}
    assert calls == {"over_all": 3, "across": 1}


def test_a_result_made_from_the_last_one_names_what_moved_by_its_changes():
    """A result updated for a few customers remembers the result it was made from:
    comparing the two (what a rule that reads it does) gives exactly the customers
    whose value differs, looking at the updated ones only; one step back only, and
    it pickles as a plain dict."""
    import pickle

    from crmkit.incremental.memo import Memo, _moved

    memo = Memo(active=True)
    ids = [f"c{i:02d}" for i in range(40)]
    values = {cid: {"n": 1} for cid in ids}

    def compute(todo):
        return {cid: dict(values[cid]) for cid in todo}, {}

    first, _ = memo.per_customer("t", None, ids, compute)
    values["c03"] = {"n": 2}  # c05 is recomputed too, to an equal value
    memo.changed({"c03", "c05"})
    second, _ = memo.per_customer("t", None, ids, compute)
    assert second is not first and second["c03"] == {"n": 2} and second["c05"] is first["c05"]
    assert _moved(first, second, ids) == ["c03"]
    values["c07"] = {"n": 3}
    memo.changed({"c07"})
    third, _ = memo.per_customer("t", None, ids, compute)
    assert _moved(second, third, ids) == ["c07"]
    assert sorted(_moved(first, third, ids)) == ["c03", "c07"]  # two steps: compared in full
    assert second.previous is None  # the chain is cut: one step back is held
    again = pickle.loads(pickle.dumps(third))
    assert type(again) is dict and again == third
