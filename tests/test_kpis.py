import datetime as dt
from decimal import Decimal

from crmkit import App

TODAY = dt.date(2026, 6, 30)
FILES = {
    "customers/a.yaml": "name: Anna\n",
    "customers/b.yaml": "name: Bert\n",
    "customers/c.yaml": "name: Cleo\n",
    "customers/d.yaml": "name: Dora\n",
    "customers/e.yaml": "name: Emil\n",
    "interactions/h.yaml": """\
        - {customer: a, date: 2025-03-01, type: purchase, amount: 100}
        - {customer: a, date: 2026-01-15, type: purchase, amount: 200}
        - {customer: a, date: 2026-03-10, type: purchase, amount: 300}
        - {customer: a, date: 2026-02-01, type: feedback, score: 10}
        - {customer: a, date: 2026-04-01, type: feedback, score: 9}
        - {customer: b, date: 2025-05-01, type: purchase, amount: 400}
        - {customer: b, date: 2026-01-01, type: feedback, score: 8}
        - {customer: b, date: 2026-02-02, type: complaint, summary: too loud}
        - {customer: c, date: 2026-05-20, type: call}
        - {customer: c, date: 2026-06-01, type: purchase, amount: 50}
        - {customer: c, date: 2026-06-10, type: feedback, score: 3}
        - {customer: d, date: 2026-06-10, type: call}
        - {customer: e, date: 2024-01-01, type: purchase, amount: 1000}
    """,
    # open deals keep their customers active (docs/segments.md): with the new ones
    "deals/one.yaml": "customer: d\ntitle: One\nvalue: 1000\nprobability: 0.5\n",
    "deals/two.yaml": "customer: c\ntitle: Two\nvalue: 2000\nstage: proposal\n",
    "deals/won.yaml": "customer: c\ntitle: Won\nvalue: 5000\nstage: won\n",
}


def test_metrics_on_a_hand_built_workspace(make_workspace):
    app = App(make_workspace(FILES, settings=(
        "business: X\nsegmentation:\n  lifecycle: {at_risk_above: 0.7}\n")), TODAY)
    assert app.workspace.diagnostics == ()
    m = {name: metric.value for name, metric in app.metrics().items()}
    # the period is (2025-06-30, 2026-06-30]; the previous one (2024-06-30, 2025-06-30]
    assert m["revenue_12m"] == Decimal(550)  # a: 200 + 300, c: 50
    assert m["average_order_value"] == Decimal("183.33")  # 550 / 3 orders
    by_month = {row["month"]: row["revenue"] for row in m["revenue_by_month"]}
    months = list(by_month)
    assert (months[0], months[-1], len(months)) == ("2025-07", "2026-06", 12)
    assert {k: v for k, v in by_month.items() if v} == {
        "2026-01": 200, "2026-03": 300, "2026-06": 50}
    assert m["repeat_purchase_rate"] == 0.25  # only a bought on 2+ days, of 4 buyers
    # bought in the previous period: a, b; of them a bought again
    assert (m["retention_rate"], m["churn_rate"]) == (0.5, 0.5)
    assert m["historical_clv"] == Decimal("512.50")  # (600 + 400 + 50 + 1000) / 4
    # latest score per customer: a 9 (promoter), b 8 (passive), c 3 (detractor)
    assert m["nps"] == 0
    assert {k: v for k, v in m["nps_distribution"].items() if v} == {3: 1, 8: 1, 9: 1}
    # first contact in the period: c (bought) and d (lead)
    assert m["lead_conversion"] == 0.5
    assert m["pipeline_value"] == Decimal(3000)
    assert m["pipeline_weighted"] == Decimal("1500.00")  # 1000 × 0.5 + 2000 × 0.5 (proposal)
    assert m["revenue_by_abc"] == {"A": Decimal(500), "B": Decimal(50), "C": Decimal(0)}
    # churn risk (docs/segments.md): the usual gap is a's mean, 187 days; in units of it
    # a's gaps end at 0.289 and 1.711, with open spells a 0.599, b 2.273, c 0.155,
    # e 4.872: S = 4/5 at 0.289, 8/15 at 1.711; a, quiet 112 days: S(1.599) / S(0.599)
    # = 0.554 / 0.742 = 0.747 ≥ 0.7 → at risk; b and e: beyond every gap → lost
    assert m["stages"] == {"lead": 1, "new": 1, "active": 0, "at_risk": 1, "lost": 2}
    assert [(r["customer"], r["revenue"]) for r in m["top_customers"]] == [
        ("a", Decimal(500)), ("c", Decimal(50))]
    assert [r["customer"] for r in m["at_risk"]] == ["a"]
    assert [(r["customer"], r["summary"]) for r in m["complaints"]] == [("b", "too loud")]
    assert m["pareto"] == [500.0, 50.0]


def test_metrics_of_an_empty_workspace_are_none_not_errors(make_workspace):
    m = {name: metric.value for name, metric in App(make_workspace(), TODAY).metrics().items()}
    assert not any(name.startswith("_") for name in m)  # the plugins' helpers are not listed
    assert m["revenue_12m"] == 0 and m["average_order_value"] is None
    assert m["retention_rate"] is None and m["churn_rate"] is None and m["nps"] is None
    assert m["historical_clv"] is None and m["lead_conversion"] is None


def test_metrics_are_computed_by_name_with_only_what_they_read(make_workspace):
    root = make_workspace(FILES)
    wanted = ("revenue_12m", "nps", "pipeline_weighted")
    app = App(root, TODAY)
    some = app.metrics(wanted)
    assert list(some) == ["revenue_12m", "nps", "pipeline_weighted"]
    # nobody read a label, and the purchase model was not fitted
    engine = app._engine
    assert engine._columns == {} and "_purchase_model" not in engine._results
    full = App(root, TODAY).metrics()
    assert some == {name: full[name] for name in wanted}
    # a label-based metric that is wanted reads its labels, and only those
    assert app.metrics(["stages"]) == {"stages": full["stages"]}
    assert "lifecycle" in engine._columns and "abc" not in engine._columns
