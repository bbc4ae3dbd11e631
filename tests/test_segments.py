import datetime as dt
import json
from types import SimpleNamespace

import pytest
from crmkit_plugins.segments import (
    abc_classes,
    occasions,
    quintile_cuts,
    quintile_score,
    quintile_scores,
)

from crmkit import App

TODAY = dt.date(2026, 6, 1)
ABC = SimpleNamespace(options=SimpleNamespace(a=0.8, b=0.95))


def days_ago(*n):
    return [TODAY - dt.timedelta(days=d) for d in n]


def test_abc_pareto_with_ties_broken_by_id():
    revenue = {"a": 700, "b": 200, "e": 50, "c": 50, "d": 0}
    classes = abc_classes({k: __import__("decimal").Decimal(v) for k, v in revenue.items()},
                          ABC)
    # a: 0% before → A; b: 70% before → A; c: 90% → B; e: 95% → C (tie with c, later id)
    assert classes == {"a": "A", "b": "A", "c": "B", "e": "C", "d": "C"}


def test_abc_without_revenue_is_all_c():
    assert abc_classes({"a": __import__("decimal").Decimal(0)}, ABC) == {"a": "C"}


def test_quintile_scores():
    assert quintile_scores({str(i): i for i in range(1, 11)}) == {
        "1": 1, "2": 1, "3": 2, "4": 2, "5": 3, "6": 3, "7": 4, "8": 4, "9": 5, "10": 5}
    assert quintile_scores({"x": 5, "y": 5, "z": 1}) == {"x": 2, "y": 2, "z": 1}


def test_quintile_cuts_give_the_scores_of_ranking_everybody():
    import random

    rng = random.Random(3)
    for n in [1, 2, 3, 4, 5, 6, 7, 9, 10, 11, 99, 250]:
        for spread in (3, 40, 10_000):  # many ties, some, hardly any
            values = {str(k): rng.randrange(spread) for k in range(n)}
            cuts = quintile_cuts(values.values())
            assert {cid: quintile_score(v, cuts) for cid, v in values.items()} == \
                quintile_scores(values), (n, spread)


def purchase(cid, day, amount, **extra):
    fields = "".join(f", {k}: {v}" for k, v in extra.items())
    return f"- {{customer: {cid}, date: {day}, type: purchase, amount: {amount}{fields}}}\n"


WORKSPACE = {
    "customers/anna.yaml": "name: Anna\ntags: [weimar]\n",
    "customers/bert.yaml": "name: Bert\n",
    "customers/cara.yaml": "name: Cara\n",
    "customers/dino.yaml": "name: Dino\n",
    "customers/emil.yaml": "name: Emil\nstage: active\n",
    "customers/lead.yaml": "name: Lead\n",
    "interactions/p.yaml": (
        purchase("anna", "2024-01-10", 300) + purchase("anna", "2024-03-10", 400)
        # bert: lost, profitable, no complaints → worth winning back
        + purchase("bert", "2024-01-05", 600) + purchase("bert", "2024-02-05", 100)
        # cara: lost, profitable, but paid late twice
        + purchase("cara", "2024-01-05", 500, payment="late")
        + purchase("cara", "2024-02-05", 500, payment="late")
        # dino: lost, profitable, only bought on discount
        + purchase("dino", "2024-01-05", 500, discount=20)
        + purchase("dino", "2024-02-05", 500, discount=15)
        + "- {customer: anna, date: 2025-11-01, type: call}\n"
        + purchase("anna", "2026-05-01", 250)
        # emil: a one-time buyer long ago, but the file says active
        + purchase("emil", "2023-01-01", 50)
    ),
}


def test_labels_on_a_hand_built_workspace(make_workspace):
    root = make_workspace(WORKSPACE, settings=(
        "business: X\nsegments:\n  weimar_big: tags contains \"weimar\" and revenue_12m > 200\n"
        "  quiet: days_since_last_contact > 365\n"))
    app = App(root, TODAY)
    assert app.workspace.diagnostics == ()
    seg = app.labels()
    anna = seg["anna"]
    # anna: purchases 2024-01-10, 2024-03-10, 2026-05-01: two gaps, too few for a rhythm
    # of her own; this workspace's usual gap is 31 days (the median of the mean gaps 421,
    # 31, 31, 31), and nobody here came back 31 days after a purchase who had not
    # by then: quiet for 31 days, she is at risk (tests/test_churn.py pins the maths)
    assert anna["lifecycle"] == "at_risk" and anna["abc"] == "A"
    assert anna["churn_reason"] == (
        "no purchase or service for 31 days; 3 occasions so far, usually every 31 days in "
        f"this workspace; {round(100 * (1 - anna['churn_risk']))}% chance to buy in the "
        "next 90 days")
    assert anna["segments"] == {"weimar_big": True, "quiet": False}
    assert (seg["bert"]["lifecycle"], seg["bert"]["win_back_worthy"]) == ("lost", True)
    assert (seg["cara"]["lifecycle"], seg["cara"]["win_back_worthy"]) == ("lost", False)
    assert (seg["dino"]["lifecycle"], seg["dino"]["win_back_worthy"]) == ("lost", False)
    assert seg["emil"]["lifecycle"] == "active" and seg["emil"]["lifecycle_since"] is None
    assert seg["emil"]["churn_risk"] == 1.0  # the file decides the stage, not the risk
    lead = {"lifecycle": "lead", "lifecycle_since": None, "lifecycle_basis": None,
            "abc": "C", "rfm": None, "win_back_worthy": False,
            "segments": {"weimar_big": False, "quiet": False}, "p_alive": None,
            "clv": None, "churn_risk": None, "churn_reason": None}
    assert {k: seg["lead"][k] for k in lead} == lead
    # only anna bought in the last 365 days
    assert [c for c in seg if seg[c]["abc"] == "A"] == ["anna"]
    # RFM over the 5 buyers: anna is the most recent (R rank 4 of 5 → 5) and most frequent
    # (→ 5); her 950 is the middle value of 50, 700, 950, 1000, 1000 (rank 2 → 3)
    assert seg["anna"]["rfm"] == "553"
    assert seg["emil"]["rfm"] == "111"


def test_bad_settings_and_expressions_are_diagnostics(make_workspace):
    root = make_workspace({"customers/a.yaml": "name: A\nstage: gone\n"}, settings=(
        "business: X\n"
        "segmentation:\n  abc: {a: 1.5}\n  lifecylce: {}\n"
        "segments:\n  broken: revenue >\n  typo: revnue > 1\n  abc: true\n"))
    messages = [str(d) for d in App(root, TODAY).workspace.diagnostics]
    assert messages == [
        "crmkit.yaml:3:12: error: 'segmentation.abc.a' must be a number between 0 and 1, "
        "not 1.5",
        "crmkit.yaml:4:3: error: unknown setting 'lifecylce' in 'segmentation' "
        "(did you mean 'lifecycle'?)",
        "crmkit.yaml:6:11: error: segment 'broken': expected a value, found the end of the "
        "expression (column 10 of the expression)",
        "crmkit.yaml:7:9: error: segment 'typo': unknown name 'revnue' (did you mean "
        "'revenue'?) (column 1 of the expression)",
        "crmkit.yaml:8:8: error: segment name 'abc' is taken by a label of plugin "
        "'segments'; choose another name",
        "customers/a.yaml:2:8: error: 'stage' must be one of lead, new, active, at_risk, "
        "lost, not 'gone'",
    ]


def test_segments_command_json_and_filter(make_workspace, run):
    root = make_workspace(WORKSPACE)
    out = run("-w", root, "--today", TODAY.isoformat(), "segments", "--format", "json")
    data = json.loads(out.stdout)
    assert sorted(data) == ["anna", "bert", "cara", "dino", "emil", "lead"]
    bert = {"lifecycle": "lost", "lifecycle_since": "2024-04-02", "lifecycle_basis": None,
            "abc": "C", "rfm": data["bert"]["rfm"], "win_back_worthy": True, "p_alive": None,
            "clv": None, "churn_risk": 1.0, "churn_reason": (
                "no purchase or service for 847 days; 2 occasions so far, usually every 31 "
                "days in this workspace; 0% chance to buy in the next 90 days")}
    assert {k: data["bert"][k] for k in bert} == bert
    lost = run("-w", root, "--today", TODAY.isoformat(), "customers", "--segment",
               "lifecycle=lost", "--format", "json")
    assert [c["id"] for c in json.loads(lost.stdout)] == ["bert", "cara", "dino"]
    table = run("-w", root, "--today", TODAY.isoformat(), "segments")
    assert table.stderr == ("6 customers: 1 lead, 1 active, 1 at_risk, 3 lost\nlifecycle: the "
                            "churn risk from this workspace's gaps between purchases (4 "
                            "customers with repeat purchases, the model needs 50)\n")
    missing = run("-w", root, "segments", "--customer", "ann")
    assert "unknown customer 'ann' (did you mean 'anna'?)" in missing.stderr


def test_same_day_purchases_count_as_one_purchase_day(make_workspace):
    # Two purchases on one day make a one-time buyer, not a regular with a usual gap of
    # 0 days.  With no repeat activity in the workspace, everybody is assumed to come back
    # after usual_gap_days (365): active until then, lost after.
    root = make_workspace({
        "customers/sam.yaml": "name: Sam\n",
        "interactions/p.yaml": (purchase("sam", "2025-05-01", 10)
                                + purchase("sam", "2025-05-01", 20)),
    })
    seg = App(root, dt.date(2026, 3, 1)).labels()
    assert seg["sam"]["lifecycle"] == "active"
    assert seg["sam"]["churn_risk"] == 0.0
    # the reason says it is an assumption, never "100% chance to buy" without evidence
    assert seg["sam"]["churn_reason"] == (
        "no purchase or service for 304 days; one occasion so far, usually every 365 days in "
        "this workspace; nobody here had bought twice before today: assumed back within 365 days")
    later = App(root, dt.date(2026, 5, 2)).labels()["sam"]
    assert (later["lifecycle"], later["lifecycle_since"]) == ("lost", "2026-05-01")


def test_occasions_are_counted_from_their_first_day():
    daily = [TODAY + dt.timedelta(days=n) for n in range(20)]
    # a day more than 7 days after the occasion's first day starts the next one
    assert occasions(daily, 7) == [daily[0], daily[8], daily[16]]
    assert occasions(daily[:1], 7) == daily[:1] and occasions([], 7) == []


VISITS = {
    # kai: maintenance contract; bought twice long ago, services every year since (the
    # last six days ago), no invoice logged for them
    "customers/kai.yaml": """\
        name: Kai
        email: kai@example.de
        consent: {email: true, since: 2022-01-01}
        services:
          - {name: Wartung, interval: 1 year, start: 2022-01-01}
    """,
    # uwe: the same visits without a contract
    "customers/uwe.yaml": "name: Uwe\n",
    # ole: a contract whose last service is more than a year and 30 days ago
    "customers/ole.yaml": """\
        name: Ole
        services:
          - {name: Wartung, interval: 1 year, start: 2022-01-01}
    """,
    "interactions/h.yaml": "".join(
        purchase(cid, "2022-01-05", 900) + purchase(cid, "2022-02-05", 900)
        for cid in ("kai", "uwe", "ole")) + "".join(
        f"- {{customer: {cid}, date: {day}, type: service}}\n"
        for cid in ("kai", "uwe") for day in ("2024-11-20", "2025-11-14", "2026-11-17"))
        + "- {customer: ole, date: 2025-09-01, type: service, service: Wartung}\n",
}
TODAY_VISITS = dt.date(2026, 11, 23)


def _stages(make_workspace, settings="business: X\n", today=TODAY_VISITS, files=VISITS):
    app = App(make_workspace(files, settings=settings), today)
    assert [d for d in app.workspace.diagnostics if d.is_error] == []
    labels = app.labels()
    assert app.problems == []
    reminders = sorted((r.customer, r.kind, r.due.isoformat()) for r in app.reminders()
                       if not r.suppressed and r.kind in ("win_back", "at_risk", "service_due"))
    return {cid: (row["lifecycle"], row["lifecycle_since"]) for cid, row in labels.items()}, \
        reminders


def test_services_count_as_activity_by_default(make_workspace):
    stages, reminders = _stages(make_workspace)
    # kai and uwe: occasions 2022-01-05, 2022-02-05, 2024-11-20, 2025-11-14, 2026-11-17;
    # quiet for six days → active (since the first purchase + 91 days)
    assert stages["kai"] == stages["uwe"] == ("active", "2022-04-06")
    # ole: purchases 31 days apart and a service on 2025-09-01; two gaps are too few for
    # a rhythm of her own, so her contract's year is her rhythm; 448 days quiet is 1.23
    # contract years, but she once came back after 1304 days (3.57 years): her risk is
    # 0.595, still active
    assert stages["ole"] == ("active", "2022-04-06")
    # kai's service is due a year after the last; ole's is overdue
    assert reminders == [("kai", "service_due", "2027-11-17"),
                         ("ole", "service_due", "2026-09-01")]


def test_the_measured_bug_with_purchases_only_and_the_contract_that_prevents_it(
        make_workspace):
    purchases_only = "business: X\nsegmentation:\n  lifecycle: {activity_types: [purchase]}\n"
    stages, reminders = _stages(make_workspace, purchases_only)
    # purchases alone: quiet since 2022-02-05 for 1752 days, with the workspace's usual
    # gap of 31 days (everybody's two purchases were 31 days apart): lost within a month
    assert stages["uwe"] == ("lost", "2022-03-04")
    # kai's contract was serviced six days ago, within its interval: never lost
    assert stages["kai"] == ("active", "2022-04-06")
    # ole's last service (2025-09-01) is more than a year and 30 days ago: lost, within a
    # contract year after her last purchase
    assert stages["ole"] == ("lost", "2022-12-15")
    assert reminders == [("kai", "service_due", "2027-11-17"),
                         ("ole", "service_due", "2026-09-01"), ("ole", "win_back", "2022-12-15"),
                         ("uwe", "win_back", "2022-03-04")]


@pytest.mark.parametrize(("today", "kept"), [
    ("2026-10-01", True),   # 2025-09-01 + 1 year + 30 days
    ("2026-10-02", False),
])
def test_a_contract_keeps_the_customer_for_its_interval_and_the_tolerance(
        make_workspace, today, kept):
    purchases_only = "business: X\nsegmentation:\n  lifecycle: {activity_types: [purchase]}\n"
    stages, _ = _stages(make_workspace, purchases_only, dt.date.fromisoformat(today))
    assert (stages["ole"][0] == "active") is kept
    longer = purchases_only.replace("}", ", contract_tolerance_days: 60}")
    stages, _ = _stages(make_workspace, longer, dt.date.fromisoformat("2026-10-02"))
    assert stages["ole"][0] == "active"


def test_a_contract_that_has_not_started_keeps_nobody(make_workspace):
    files = {**VISITS, "customers/kai.yaml": VISITS["customers/kai.yaml"].replace(
        "start: 2022-01-01", "start: 2027-01-01")}
    purchases_only = "business: X\nsegmentation:\n  lifecycle: {activity_types: [purchase]}\n"
    stages, _ = _stages(make_workspace, purchases_only, files=files)
    assert stages["kai"][0] == "lost"


def test_activity_types_are_configurable(make_workspace):
    # with meetings counting too, yearly meetings (the last a month ago) keep uwe active:
    # gaps 31, 1353 and 365 days, his own rhythm 365; 34 days quiet
    files = {**VISITS, "interactions/m.yaml":
             "- {customer: uwe, date: 2025-10-20, type: meeting}\n"
             "- {customer: uwe, date: 2026-10-20, type: meeting}\n"}
    settings = ("business: X\nsegmentation:\n"
                "  lifecycle: {activity_types: [purchase, meeting]}\n")
    stages, _ = _stages(make_workspace, settings, files=files)
    assert stages["uwe"][0] == "active"
    assert stages["ole"][0] == "lost"  # services do not count here
    uwe = App(make_workspace(files, settings=settings), TODAY_VISITS).labels()["uwe"]
    assert uwe["churn_reason"] == (
        "no purchase or meeting for 34 days; usually every 365 days; 26% chance to buy in "
        "the next 365 days")


MODEL_PLUGIN = '''\
import datetime as dt

import crmkit


@crmkit.hookimpl
def crmkit_register(register):
    # a purchase model that says everybody is lost since 2025-01-01
    register(crmkit.Label("_model_risk", lambda c: {
        "risk": 0.99, "horizon_days": 90, "at_risk_since": "2024-12-01",
        "lost_since": "2025-01-01", "reason": "the model says so", "basis": "model"}))
    register(crmkit.Metric("model_status", "trusted", over_all=lambda population: None))
'''


def test_a_contract_overrides_the_purchase_model_too(make_workspace):
    files = {**VISITS, "plugins/model.py": MODEL_PLUGIN}
    settings = "business: X\ndisable_plugins: [predict]\n"
    app = App(make_workspace(files, settings=settings), TODAY_VISITS)
    assert [d for d in app.workspace.diagnostics if d.is_error] == []
    labels = app.labels()
    assert (labels["kai"]["lifecycle"], labels["kai"]["lifecycle_since"],
            labels["kai"]["lifecycle_basis"]) == ("active", "2022-04-06", "contract")
    assert (labels["uwe"]["lifecycle"], labels["uwe"]["lifecycle_since"],
            labels["uwe"]["lifecycle_basis"]) == ("lost", "2025-01-01", "model")
    assert sorted((r.customer, r.kind) for r in app.reminders()
                  if r.kind in ("win_back", "at_risk")) == [("ole", "win_back"),
                                                           ("uwe", "win_back")]


PURCHASES_ONLY = "business: X\nsegmentation:\n  lifecycle: {activity_types: [purchase]}\n"


@pytest.mark.parametrize(("call", "stage"), [
    ("{customer: uwe, date: 2026-10-01, type: call, direction: inbound}", "active"),  # 53 days
    ("{customer: uwe, date: 2026-09-01, type: call, direction: inbound}", "lost"),  # 83 days
    ("{customer: uwe, date: 2026-11-20, type: call, direction: outbound}", "lost"),  # we called
    ("{customer: uwe, date: 2026-11-20, type: note, direction: inbound}", "lost"),  # internal
])
def test_a_conversation_the_customer_started_keeps_them_active(make_workspace, call, stage):
    files = {**VISITS, "interactions/c.yaml": f"- {call}\n"}
    stages, reminders = _stages(make_workspace, PURCHASES_ONLY, files=files)
    assert stages["uwe"][0] == stage
    if stage == "active":  # (a later contact settles a win-back anyway: not asserted)
        assert not [r for r in reminders if r[0] == "uwe" and r[1] == "win_back"]
        labels = App(make_workspace(files, settings=PURCHASES_ONLY), TODAY_VISITS).labels()
        assert labels.column("_stage")["uwe"][2] == "engaged"
        assert labels["uwe"]["churn_risk"] > 0.95  # the risk itself is unchanged


def test_an_open_deal_keeps_the_customer_active_and_a_closed_one_does_not(make_workspace):
    """The measured case: a customer negotiating a maintenance contract was `lost` and
    got a win-back reminder.  Also through the kept state between runs: the deal's
    customer has no changed file of their own when the deal is won."""
    import subprocess

    from conftest import CRMKIT, age_files

    deal = "customer: uwe\ntitle: Wartungsvertrag\nstage: {stage}\nvalue: 1200\n"
    root = make_workspace({**VISITS, "deals/uwe-wartung.yaml": deal.format(stage="proposal")},
                          settings=PURCHASES_ONLY)
    age_files(root)

    def stage_of(*options: str) -> str:
        out = subprocess.run([CRMKIT, "-w", root, "--today", str(TODAY_VISITS), *options,
                              "segments", "--format", "json"],
                             capture_output=True, text=True, check=True).stdout
        return json.loads(out)["uwe"]["lifecycle"]

    assert stage_of() == "active"
    (root / "deals/uwe-wartung.yaml").write_text(deal.format(stage="lost"), encoding="utf-8")
    age_files(root)
    assert stage_of() == "lost" == stage_of("--no-cache")
