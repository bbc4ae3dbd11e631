"""The dashboard's figures of issue 18 (part 3) on a small hand-built workspace: the
change against the previous period, money owed, leads and customers by source with
the conversion, the pipeline by stage with the weighted forecast by month (the
configured stage probabilities), won and lost, and what is due today."""

import datetime as dt
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

from crmkit_plugins import reports
from crmkit_plugins.pipeline import dashboard as pipeline_dashboard

from crmkit import App

CRMKIT = str(Path(sys.executable).with_name("crmkit"))
TODAY = dt.date(2026, 6, 30)  # the period: (2025-06-30, 2026-06-30]; compared: 2025-06-30
SETTINGS = """\
business: X
locale: en
currency: EUR
pipeline:
  stages:
    - {name: lead, probability: 0.2}
    - {name: proposal, probability: 0.6}
  history: interactions
payments: {terms_days: 10}
"""
FILES = {
    "customers/a.yaml": "name: Anna\nsource: web\n",
    "customers/b.yaml": "name: Bert\nsource: web\n",
    "customers/c.yaml": "name: Cleo\nsource: fair\n",
    "customers/d.yaml": "name: Dora\nsource: fair\n",
    "customers/e.yaml": "name: Emil\n",
    "interactions/h.yaml": """\
        - {customer: a, date: 2025-03-01, type: call}
        - {customer: a, date: 2025-04-01, type: purchase, amount: 100, payment: paid}
        - {customer: a, date: 2026-06-10, type: purchase, amount: 200, payment: open}
        - {customer: a, date: 2026-06-25, type: purchase, amount: 50, payment: unpaid}
        - {customer: b, date: 2026-02-01, type: call}
        - {customer: b, date: 2026-03-01, type: purchase, amount: 300, payment: unpaid}
        - customer: c
          date: 2026-05-01
          type: call
          follow_up: {date: 2026-06-30, what: Call back about the offer}
        - {customer: d, date: 2024-08-01, type: call}
        - {customer: d, date: 2026-01-10, type: purchase, amount: 80, payment: late}
        - {customer: e, date: 2024-09-01, type: purchase, amount: 500, payment: paid}
    """,
    # the deals' stage history (pipeline.history: interactions)
    "interactions/deals.yaml": """\
        - {customer: a, date: 2025-05-01, type: note, fields: {deal: big, stage: lead}}
        - {customer: a, date: 2026-05-01, type: note, fields: {deal: big, stage: proposal}}
        - {customer: a, date: 2025-01-10, type: note, fields: {deal: gone, stage: proposal}}
        - {customer: a, date: 2025-06-01, type: note, fields: {deal: gone, stage: lost}}
        - {customer: b, date: 2026-02-01, type: note, fields: {deal: done, stage: proposal}}
        - {customer: b, date: 2026-03-01, type: note, fields: {deal: done, stage: won}}
        - {customer: b, date: 2026-03-01, type: note, fields: {deal: own, stage: proposal}}
        - {customer: c, date: 2026-05-01, type: note, fields: {deal: small, stage: lead}}
    """,
    "deals/big.yaml": "customer: a\ntitle: Big\nvalue: 1000\nstage: proposal\n"
                      "expected_close: 2026-07-15\n",
    "deals/own.yaml": "customer: b\ntitle: Own\nvalue: 200\nstage: proposal\n"
                      "probability: 0.9\nexpected_close: 2026-07-20\n",
    "deals/small.yaml": "customer: c\ntitle: Small\nvalue: 500\nstage: lead\n"
                        "expected_close: 2026-08-03\n",
    "deals/gone.yaml": "customer: a\ntitle: Gone\nvalue: 400\nstage: lost\n",
    "deals/done.yaml": "customer: b\ntitle: Done\nvalue: 700\nstage: won\n",
}


def _app(make_workspace, settings: str = SETTINGS) -> App:
    app = App(make_workspace(FILES, settings=settings), TODAY, use_cache=False)
    assert app.workspace.diagnostics == ()
    return app


def _values(app: App, *names: str) -> dict:
    return {k: m.value for k, m in app.metrics(names).items()}


def test_money_owed_and_who_owes_me(make_workspace):
    app = _app(make_workspace)
    m = app.metrics(("money_owed", "who_owes", "late_payments"))
    # open or unpaid: a 200 (due 06-20: 10 days over) + 50 (due 07-05: not yet), b 300
    # (due 03-11: 111 days over); d's 80 was paid late
    assert m["money_owed"].value == Decimal(550)
    assert m["money_owed"].description == "3 unpaid purchases, €500.00 of it overdue"
    assert m["who_owes"].value == [
        {"customer": "b", "name": "Bert", "amount": Decimal(300), "purchases": 1,
         "days_overdue": 111, "overdue_amount": Decimal(300)},
        {"customer": "a", "name": "Anna", "amount": Decimal(250), "purchases": 2,
         "days_overdue": 10, "overdue_amount": Decimal(200)}]
    assert m["late_payments"].value == 1
    # a year earlier nothing was open: a's purchase of 2025-04-01 is paid
    assert _values(app.at(dt.date(2025, 6, 30)), "money_owed", "who_owes") == {
        "money_owed": Decimal(0), "who_owes": []}


def test_new_leads_and_customers_by_source_and_a_year_earlier(make_workspace):
    app = _app(make_workspace)
    # leads: first in touch in the period: b (web, bought), c (fair, not); new customers:
    # first purchase in the period: b and d (fair, in touch since 2024)
    assert _values(app, "new_leads", "new_customers", "lead_conversion", "leads_by_source") == {
        "new_leads": 2, "new_customers": 2, "lead_conversion": 0.5,
        "leads_by_source": [
            {"source": "fair", "leads": 1, "won": 0, "new_customers": 1, "conversion": 0.0},
            {"source": "web", "leads": 1, "won": 1, "new_customers": 1, "conversion": 1.0}]}
    # as of 2025-06-30: leads a (web, bought), d (fair, not yet), e (no source, bought)
    before = _values(app.at(dt.date(2025, 6, 30)), "new_leads", "new_customers",
                     "lead_conversion", "leads_by_source")
    assert before == {
        "new_leads": 3, "new_customers": 2, "lead_conversion": 0.6667,
        "leads_by_source": [
            {"source": "web", "leads": 1, "won": 1, "new_customers": 1, "conversion": 1.0},
            {"source": None, "leads": 1, "won": 1, "new_customers": 1, "conversion": 1.0},
            {"source": "fair", "leads": 1, "won": 0, "new_customers": 0, "conversion": 0.0}]}


def test_by_source_agrees_with_crmkit_sources(make_workspace):
    app = _app(make_workspace)
    root = app.root
    found = subprocess.run([CRMKIT, "-w", str(root), "--today", TODAY.isoformat(), "sources",
                            "--since", "2025-07-01", "--format", "json"],
                           capture_output=True, text=True, env={"CRMKIT_BACKGROUND": "0",
                                                                "PATH": "/usr/bin:/bin"})
    assert found.returncode == 0, found.stderr
    rows = {r["name"]: (r["leads"], r["won"]) for r in json.loads(found.stdout)["sources"]}
    mine = {r["source"]: (r["leads"], r["won"]) for r in _values(
        app, "leads_by_source")["leads_by_source"]}
    assert rows == mine == {"fair": (1, 0), "web": (1, 1)}


def test_the_weighted_pipeline_uses_the_configured_stage_probabilities(make_workspace):
    # big 1000 × 0.6 (proposal) + small 500 × 0.2 (lead) + own 200 × 0.9 (its own)
    app = _app(make_workspace)
    assert _values(app, "pipeline_value", "pipeline_weighted") == {
        "pipeline_value": Decimal(1700), "pipeline_weighted": Decimal("880.00")}
    # the pipeline plugin's own figure agrees
    assert pipeline_dashboard.context(app)["open"]["weighted"] == Decimal("880.00")
    # without the pipeline plugin, the kpis plugin's defaults (lead 0.1, proposal 0.5)
    alone = _app(make_workspace, "business: X\nlocale: en\ndisable_plugins: [pipeline]\n")
    assert _values(alone, "pipeline_weighted") == {"pipeline_weighted": Decimal("730.00")}


def test_pipeline_by_stage_forecast_won_and_lost_against_the_previous_period(make_workspace):
    found = pipeline_dashboard.context(_app(make_workspace))
    assert (found["since"], found["before_since"], found["before_end"]) == (
        dt.date(2025, 7, 1), dt.date(2024, 7, 1), dt.date(2025, 6, 30))
    assert [(s["stage"], s["count"], s["value"], s["weighted"], s["count_before"],
             s["weighted_before"]) for s in found["stages"]] == [
        ("lead", 1, Decimal(500), Decimal(100), 1, Decimal(200)),  # then: big as a lead
        ("proposal", 2, Decimal(1200), Decimal(780), 0, Decimal(0))]
    assert found["open_before"] == {"count": 1, "value": Decimal(1000),
                                    "weighted": Decimal(200)}
    # the weighted forecast by month of expected close
    assert [(m["month"], m["count"], m["value"], m["weighted"]) for m in found["forecast"]] \
        == [("2026-07", 2, Decimal(1200), Decimal(780)), ("2026-08", 1, Decimal(500),
                                                            Decimal(100))]
    # won in the period: done (2026-03-01); lost in the previous one: gone (2025-06-01)
    assert (found["won"], found["lost"]) == ({"count": 1, "value": Decimal(700)},
                                             {"count": 0, "value": Decimal(0)})
    assert (found["won_before"], found["lost_before"]) == ({"count": 0, "value": Decimal(0)},
                                                           {"count": 1, "value": Decimal(400)})
    assert (found["win_rate"], found["win_rate_before"]) == (1.0, 0.0)


def test_due_today_names_the_customers(make_workspace):
    found = reports.due_today(_app(make_workspace))
    cleo = [r for r in found["items"] if r["customer"] == "c"]
    assert [(r["kind"], r["name"]) for r in cleo] == [("follow_up", "Cleo")]
    assert all(r["id"].split("/")[2] == "2026-06-30" for r in found["items"])


def test_changes_as_people_read_them():
    assert reports.difference(Decimal(550), Decimal(0), "EUR", "en")["text"] == "+€550.00"
    assert reports.difference(Decimal(110), Decimal(100), "EUR", "de")["text"] == "+10\xa0%"
    assert reports.difference(0.5, 0.6667, "ratio", "en")["text"] == "\u221217 pp"
    assert reports.difference(0.5, 0.6667, "ratio", "de")["text"] == "\u221217 Pp."
    assert reports.difference(2, 3, None, "en") == {
        "text": "\u22121", "direction": "down", "word": "down", "arrow": "▼"}
    assert reports.difference(3, 3, None, "de")["word"] == "unverändert"
    assert reports.difference(None, 3) is None
    html = str(reports.change(Decimal(120), Decimal(100), "EUR", True, "en"))
    assert html == ('<span class="change down"><span aria-hidden="true">▲</span> +20%'
                    '<span class="sr"> (up)</span></span>')  # a rise of what is worse: red


def _dashboard(root, fmt: str = "md") -> subprocess.CompletedProcess[str]:
    """``crmkit report dashboard --format FMT`` as a real process, in an English terminal."""
    env = {"CRMKIT_BACKGROUND": "0", "PATH": "/usr/bin:/bin"}
    done = subprocess.run([CRMKIT, "-w", str(root), "--today", TODAY.isoformat(), "report",
                           "dashboard", "--format", fmt, "--out", "-"], capture_output=True,
                          text=True, env=env)
    assert done.returncode == 0, done.stderr
    return done


def test_the_dashboard_shows_every_new_figure_with_its_change(make_workspace):
    root = _app(make_workspace).root
    text = _dashboard(root).stdout
    assert "Changes against June 30, 2025: the last 12 months against the 12 months " \
        "before." in text
    assert "| Money owed (3 unpaid purchases, €500.00 of it overdue) | €550.00 | " \
        "▲ +€550.00 | €0.00 |" in text
    assert "| Bert | €300.00 | 1 | 111 days |" in text
    assert "| Anna | €250.00 | 2 | 10 days |" in text
    assert "| New leads, last 12 months | 2 | ▼ \u22121 | 3 |" in text
    assert "| fair | 1 | 0 | 0% | 1 | = ±0 |" in text
    assert "| proposal | 60% | 2 | €1,200.00 | €780.00 | ▲ +€780.00 |" in text
    assert "| 2026-07 | 2 | €1,200.00 | €780.00 |" in text
    assert "| Won | €700.00 (1) | ▲ +€700.00 | €0.00 (0) |" in text
    assert "| Cleo |" in text  # due today
    # the key figures and the other sections against the 12 months before: revenue a 250,
    # b 300, d 80 against a 100 and e 500
    assert "| Revenue, last 12 months | €630.00 | ▲ +5% | €600.00 |" in text
    assert "| 2026-04 | €0.00 | €100.00 | ▼ \u2212100% |" in text  # against 2025-04
    assert "| 2026-06 | €250.00 | €0.00 | ▲ +€250.00 |" in text
    assert "| €250.00 | €100.00 | ▲ +150% |" in text  # Anna among the top customers
    assert "0 complaints in the last 12 months; a year earlier 0 (= ±0)." in text
    html = _dashboard(root, "html")
    assert '<section id="money_owed"' in html.stdout and '<td data-label="customer">Bert' \
        in html.stdout
    assert '<span class="sr"> (up)</span>' in html.stdout


def test_open_deals_show_names_and_the_probability_they_are_weighted_with(make_workspace):
    # big and small have no probability of their own: their stage's (proposal 0.6,
    # lead 0.2 in crmkit.yaml); own has 0.9
    found = reports.pipeline(_app(make_workspace))
    assert [(d["title"], d["name"], d["page"], d["probability"], d["own"])
            for d in found["deals"]] == [
        ("Big", "Anna", "customers/a.html", Decimal("0.6"), False),
        ("Own", "Bert", "customers/b.html", Decimal("0.9"), True),
        ("Small", "Cleo", "customers/c.html", Decimal("0.2"), False)]
    # the probabilities shown give the weighted figure: 600 + 180 + 100
    assert sum(d["value"] * d["probability"] for d in found["deals"]) \
        == found["metrics"]["pipeline_weighted"].value == Decimal("880.00")
    # without the pipeline plugin nothing says a stage's probability: only a deal's own
    alone = reports.pipeline(_app(make_workspace, "business: X\nlocale: en\n"
                                  "disable_plugins: [pipeline]\n"))
    assert [d["probability"] for d in alone["deals"]] == [None, Decimal("0.9"), None]


def test_complaints_name_their_customers(make_workspace):
    files = {**FILES, "interactions/c.yaml": (
        "customer: d\ndate: 2026-05-05\ntype: complaint\nsummary: Late\n")}
    app = App(make_workspace(files, settings=SETTINGS), TODAY, use_cache=False)
    rows = reports.complaints(app)["rows"]
    assert [(r["date"], r["name"], r["page"], r["summary"]) for r in rows] == [
        (dt.date(2026, 5, 5), "Dora", "customers/d.html", "Late")]


def test_the_stage_tables_say_which_probability_they_show(make_workspace):
    md = _dashboard(_app(make_workspace).root)
    assert "| stage | default probability | deals | value | weighted | change |" in md.stdout
    assert "Weighted: each deal's value times its own probability, else its stage's " \
        "default probability." in md.stdout
    # the open deals: names, and Big with its stage's 60 %
    assert "| Big | Anna | proposal | €1,000.00 | 60% |" in md.stdout
