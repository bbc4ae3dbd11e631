import datetime as dt
import json
from types import SimpleNamespace

from crmkit_plugins.segments import (
    LIFECYCLE,
    abc_classes,
    lifecycle,
    quintile_cuts,
    quintile_score,
    quintile_scores,
)

from crmkit import App

TODAY = dt.date(2026, 6, 1)
RULES = {key: option.default for key, option in LIFECYCLE.items()}
ABC = SimpleNamespace(options=SimpleNamespace(a=0.8, b=0.95))


def days_ago(*n):
    return [TODAY - dt.timedelta(days=d) for d in n]


def test_lifecycle_stages_by_the_documented_rule():
    assert lifecycle([], TODAY, RULES) == ("lead", None)
    first = TODAY - dt.timedelta(days=30)
    assert lifecycle([first], TODAY, RULES) == ("new", first)
    # repeat buyer, usual gap 100 days: at risk after max(90, 1.5*100)=150 days quiet,
    # lost after max(365, 3*100, 150)=365 days
    regular = days_ago(400, 300, 200)
    assert lifecycle(regular + days_ago(100), TODAY, RULES) == (
        "active", regular[0] + dt.timedelta(days=91))
    last = TODAY - dt.timedelta(days=200)
    assert lifecycle([*regular[:2], last], TODAY, RULES) == ("at_risk", last + dt.timedelta(151))
    last = TODAY - dt.timedelta(days=366)
    assert lifecycle([*days_ago(566, 466), last], TODAY, RULES) == (
        "lost", last + dt.timedelta(days=366))
    # exactly at the threshold is not yet at risk
    last = TODAY - dt.timedelta(days=150)
    assert lifecycle([*days_ago(350, 250), last], TODAY, RULES)[0] == "active"


def test_lifecycle_of_one_time_buyers_uses_the_defaults():
    assert lifecycle(days_ago(365), TODAY, RULES)[0] == "active"
    assert lifecycle(days_ago(366), TODAY, RULES)[0] == "at_risk"
    assert lifecycle(days_ago(731), TODAY, RULES) == ("lost", TODAY)


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
    # anna: purchases 2024-01-10, 2024-03-10, 2026-05-01 → gaps 60, 782 → median 421
    # → at risk after 632 days; last purchase 31 days ago → active
    assert anna["lifecycle"] == "active" and anna["abc"] == "A"
    assert anna["segments"] == {"weimar_big": True, "quiet": False}
    assert (seg["bert"]["lifecycle"], seg["bert"]["win_back_worthy"]) == ("lost", True)
    assert (seg["cara"]["lifecycle"], seg["cara"]["win_back_worthy"]) == ("lost", False)
    assert (seg["dino"]["lifecycle"], seg["dino"]["win_back_worthy"]) == ("lost", False)
    assert seg["emil"]["lifecycle"] == "active" and seg["emil"]["lifecycle_since"] is None
    assert seg["lead"] == {"lifecycle": "lead", "lifecycle_since": None,
                           "lifecycle_basis": None, "abc": "C", "rfm": None,
                           "win_back_worthy": False,
                           "segments": {"weimar_big": False, "quiet": False},
                           "p_alive": None, "clv": None}
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
    assert data["bert"] == {"lifecycle": "lost", "lifecycle_since": "2025-02-05",
                            "lifecycle_basis": None, "abc": "C", "rfm": data["bert"]["rfm"],
                            "win_back_worthy": True, "p_alive": None, "clv": None}
    lost = run("-w", root, "--today", TODAY.isoformat(), "customers", "--segment",
               "lifecycle=lost", "--format", "json")
    assert [c["id"] for c in json.loads(lost.stdout)] == ["bert", "cara", "dino"]
    table = run("-w", root, "--today", TODAY.isoformat(), "segments")
    assert table.stderr == ("6 customers: 1 lead, 2 active, 3 lost\nlifecycle: the documented "
                            "heuristic (4 customers with repeat purchases, the model needs "
                            "50)\n")
    missing = run("-w", root, "segments", "--customer", "ann")
    assert "unknown customer 'ann' (did you mean 'anna'?)" in missing.stderr


def test_same_day_purchases_count_as_one_purchase_day(make_workspace):
    # Two purchases on one day make a one-time buyer (at risk after 365 days), not a
    # regular with a usual gap of 0 days (who would be at risk after the 90-day minimum).
    root = make_workspace({
        "customers/sam.yaml": "name: Sam\n",
        "interactions/p.yaml": (purchase("sam", "2025-05-01", 10)
                                + purchase("sam", "2025-05-01", 20)),
    })
    seg = App(root, dt.date(2026, 3, 1)).labels()
    assert seg["sam"]["lifecycle"] == "active"
    assert App(root, dt.date(2026, 5, 2)).labels()["sam"]["lifecycle"] == "at_risk"
