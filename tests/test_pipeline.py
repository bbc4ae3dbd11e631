"""Get: sources, lead scoring and the pipeline (plugins/pipeline), on hand-built
workspaces with hand-computed figures, run as real processes; the stage history from
a real temporary git repository."""

import json
import os
import subprocess
import textwrap

import pytest
from conftest import CRMKIT, DEFAULT_SETTINGS, EXAMPLE, write_files

from crmkit import App

ENV = {**os.environ, "CRMKIT_BACKGROUND": "0", "COLUMNS": "200"}


def crmkit(root, today, *args, ok=True):
    result = subprocess.run([str(CRMKIT), "-w", str(root), "--today", today, *args],
                            capture_output=True, text=True, env=ENV)
    if ok:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def as_json(root, today, *args):
    return json.loads(crmkit(root, today, *args, "--format", "json").stdout)


# --- sources ------------------------------------------------------------------------------

SOURCES_SETTINGS = DEFAULT_SETTINGS + """\
sources:
  known: [web, fair, referral]
  campaigns: [spring]
"""
SOURCES_FILES = {
    "customers/a.yaml": "name: Anna\nsource: web\ncampaign: spring\n",
    "customers/b.yaml": "name: Bert\nsource: web\n",
    "customers/c.yaml": "name: Cleo\nsource: fair\n",
    "customers/d.yaml": "name: Dora\nreferred_by: a\n",
    "customers/e.yaml": "name: Emil\nsource: fair\n",
    "interactions/h.yaml": """\
        - {customer: a, date: 2026-01-10, type: call}
        - {customer: a, date: 2026-01-20, type: purchase, amount: 100}
        - {customer: b, date: 2026-02-01, type: call}
        - {customer: c, date: 2026-03-01, type: email}
        - {customer: c, date: 2026-03-31, type: purchase, amount: 300}
        - {customer: c, date: 2026-05-01, type: purchase, amount: 200}
        - {customer: d, date: 2026-04-01, type: call}
        - {customer: d, date: 2026-04-05, type: purchase, amount: 50}
        - {customer: e, date: 2025-06-01, type: call}
    """,
}


def by_name(rows):
    return {r["name"]: r for r in rows}


def test_sources_conversion_days_to_buy_revenue_and_referrers(make_workspace):
    root = make_workspace(SOURCES_FILES, SOURCES_SETTINGS)
    found = as_json(root, "2026-06-30", "sources")
    sources = by_name(found["sources"])
    assert set(sources) == {"web", "fair", "referral"}
    web, fair, referral = sources["web"], sources["fair"], sources["referral"]
    # web: a bought 10 days after the first call, b did not
    assert (web["leads"], web["won"], web["conversion"]) == (2, 1, 0.5)
    assert web["median_days_to_purchase"] == 10
    assert web["revenue"] == 100 and web["historical_clv"] == 100
    # fair: c bought 30 days after the first email (300 + 200), e never did
    assert (fair["leads"], fair["won"], fair["median_days_to_purchase"]) == (2, 1, 30)
    assert fair["revenue"] == 500
    # d has no source but was referred: counted under 'referral', credited to a
    assert (referral["leads"], referral["won"], referral["median_days_to_purchase"]) == (
        1, 1, 4)
    assert by_name(found["referrers"])["a"]["revenue"] == 50
    assert by_name(found["campaigns"])["spring"]["won"] == 1
    # a period: e (first in touch in 2025) is no lead of 2026
    since = by_name(as_json(root, "2026-06-30", "sources", "--since", "2026-01-01")["sources"])
    assert (since["fair"]["leads"], since["fair"]["conversion"]) == (1, 1.0)
    table = crmkit(root, "2026-06-30", "sources").stdout
    assert "web" in table and "50%" in table


def test_sources_and_campaigns_are_checked_with_a_did_you_mean(make_workspace):
    root = make_workspace({
        "customers/a.yaml": "name: Anna\nsource: webb\n",
        "customers/b.yaml": "name: Bert\ncampaign: sprng\n",
        "deals/d.yaml": "customer: a\ntitle: T\nstage: porposal\nsource: fiar\n",
    }, SOURCES_SETTINGS)
    result = crmkit(root, "2026-06-30", "check", ok=False)
    assert result.returncode == 1
    out = result.stdout + result.stderr
    assert "customers/a.yaml:2:9: error: source 'webb' is not one of 'sources.known' in " \
           "crmkit.yaml (did you mean 'web'?)" in out
    assert "customers/b.yaml:2:11: error: campaign 'sprng' is not one of " \
           "'sources.campaigns' in crmkit.yaml (did you mean 'spring'?)" in out
    assert "deals/d.yaml:3:8: error: 'stage' must be one of lead, qualified, proposal, " \
           "negotiation, open, won, lost, not 'porposal' (did you mean 'proposal'?)" in out
    assert "deals/d.yaml:4:9: error: source 'fiar'" in out


# --- lead scoring -------------------------------------------------------------------------

SCORING_SETTINGS = DEFAULT_SETTINGS + """\
lead_scoring:
  rules:
    'source == "referral"': 30
    email_consent: 10
    days_since_last_contact > 60: -20
  warm: 20
  qualified: 40
segments:
  hot: lead_stage == "qualified"
"""
SCORING_FILES = {
    "customers/x.yaml": "name: Xena\nsource: referral\nemail: x@example.com\n"
                        "consent: {email: true, since: 2026-01-01}\n",
    "customers/y.yaml": "name: Yuri\nsource: web\nemail: y@example.com\n"
                        "consent: {email: true, since: 2026-01-01}\n",
    "customers/z.yaml": "name: Zoe\nsource: referral\n",
    "customers/w.yaml": "name: Walt\nsource: referral\n",
    "interactions/h.yaml": """\
        - {customer: x, date: 2026-06-20, type: call}
        - {customer: y, date: 2026-03-22, type: call}
        - {customer: z, date: 2026-06-25, type: email}
        - {customer: w, date: 2026-06-01, type: purchase, amount: 10}
    """,
}


def test_lead_scores_stages_and_reasons(make_workspace):
    root = make_workspace(SCORING_FILES, SCORING_SETTINGS)
    leads = as_json(root, "2026-06-30", "leads")
    # x: referral 30 + consent 10 = 40 (qualified); z: 30 (warm);
    # y: consent 10, last contact 100 days ago -20 = -10 (cold); w bought: no lead
    assert [(r["customer"], r["score"], r["stage"]) for r in leads] == [
        ("x", 40, "qualified"), ("z", 30, "warm"), ("y", -10, "cold")]
    assert leads[0]["reasons"] == [{"rule": 'source == "referral"', "points": 30},
                                   {"rule": "email_consent", "points": 10}]
    assert leads[2]["reasons"] == [{"rule": "email_consent", "points": 10},
                                   {"rule": "days_since_last_contact > 60", "points": -20}]
    app = App(root, __import__("datetime").date(2026, 6, 30))
    assert app.labels().column("lead_stage") == {"w": None, "x": "qualified", "y": "cold",
                                                 "z": "warm"}
    assert app.labels().column("lead_score") == {"w": None, "x": 40, "y": -10, "z": 30}
    assert [c.id for c in app.customers("hot")] == ["x"]
    table = crmkit(root, "2026-06-30", "leads")
    assert 'x         referral  2026-06-20     40     qualified  source == "referral" +30, ' \
           "email_consent +10" in table.stdout
    assert "3 leads: 1 qualified, 1 warm, 1 cold" in table.stderr


def test_a_qualified_lead_starts_a_playbook(make_workspace):
    files = {**SCORING_FILES, "playbooks/handover.yaml": textwrap.dedent("""\
        description: hand a qualified lead to sales
        trigger:
          type: [call, email]
          segment: 'lead_stage == "qualified"'
        repeat: once
        steps:
          - name: call
            after: 1 day
            title: Call the qualified lead
            channel: phone
    """)}
    root = make_workspace(files, SCORING_SETTINGS)
    reminders = as_json(root, "2026-06-30", "reminders", "--kind", "handover")
    assert [(r["customer"], r["due"]) for r in reminders] == [("x", "2026-06-21")]


def test_a_scoring_rule_with_an_unknown_name_is_located(make_workspace):
    settings = DEFAULT_SETTINGS + "lead_scoring:\n  rules:\n    sourse == \"web\": 5\n"
    root = make_workspace({"customers/a.yaml": "name: Anna\n"}, settings)
    result = crmkit(root, "2026-06-30", "check", ok=False)
    assert result.returncode == 1
    assert ("crmkit.yaml:8:22: error: lead_scoring rule 'sourse == \"web\"': unknown name "
            "'sourse' (did you mean 'source'?) (column 1 of the expression)"
            ) in result.stdout + result.stderr


# --- the pipeline, with its history from git ----------------------------------------------

PIPELINE_SETTINGS = DEFAULT_SETTINGS + """\
reminders:
  stale_deal: {days: 30}
"""
CUSTOMERS = {
    "customers/a.yaml": "name: Anna\nsource: web\n",
    "customers/b.yaml": "name: Bert\n",
    "interactions/h.yaml": """\
        - {customer: a, date: 2026-06-20, type: call}
        - {customer: b, date: 2026-04-01, type: call}
    """,
}


def deal(customer, title, stage, value, extra=""):
    return f"customer: {customer}\ntitle: {title}\nstage: {stage}\nvalue: {value}\n{extra}"


def git(root, *args, date=None):
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(root.parent)}
    if date:
        env.update(GIT_AUTHOR_DATE=f"{date}T12:00:00+02:00",
                   GIT_COMMITTER_DATE=f"{date}T12:00:00+02:00")
    subprocess.run(["git", "-C", str(root), *args], check=True, env=env,
                   capture_output=True)


def commit(root, date, files):
    write_files(root, files)
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", f"deals as of {date}", date=date)


@pytest.fixture
def git_workspace(make_workspace):
    root = make_workspace(CUSTOMERS, PIPELINE_SETTINGS)
    git(root, "init", "-q")
    git(root, "config", "user.name", "Tess")
    git(root, "config", "user.email", "tess@test.example")
    commit(root, "2026-01-05", {
        "deals/a.yaml": deal("a", "Alpha", "lead", 1000),
        "deals/b.yaml": deal("b", "Beta", "qualified", 2000, "expected_close: 2026-07-15\n")})
    commit(root, "2026-02-01", {"deals/d.yaml": deal("a", "Delta", "negotiation", 3000)})
    commit(root, "2026-02-10", {"deals/a.yaml": deal("a", "Alpha", "proposal", 1000)})
    commit(root, "2026-03-20", {"deals/a.yaml": deal("a", "Alpha", "won", 1000,
                                                     "reason: best price\n")})
    commit(root, "2026-04-01", {"deals/c.yaml": deal(
        "a", "Gamma", "proposal", 4000, "probability: 0.25\nexpected_close: 2026-06-10\n")})
    commit(root, "2026-05-01", {"deals/b.yaml": deal("b", "Beta", "lost", 2000,
                                                     "reason: too expensive\n")})
    commit(root, "2026-06-01", {"deals/d.yaml": deal("a", "Delta", "won", 3000)})
    commit(root, "2026-06-15", {
        "deals/e.yaml": deal("a", "Epsilon", "qualified", 3000, "expected_close: 2026-08-20\n"),
        "deals/f.yaml": deal("b", "Phi", "negotiation", 1000, "expected_close: 2026-08-05\n")})
    return root


def test_pipeline_figures_with_the_stage_history_from_git(git_workspace):
    found = as_json(git_workspace, "2026-06-30", "pipeline", "--since", "2026-01-01")
    deals = {d["id"]: d for d in found["deals"]}
    assert [(h["date"], h["stage"]) for h in deals["a"]["history"]] == [
        ("2026-01-05", "lead"), ("2026-02-10", "proposal"), ("2026-03-20", "won")]
    assert deals["a"]["history_from"] == "git"
    # cycle: a 2026-01-05 -> 2026-03-20 = 74 days, d 2026-02-01 -> 2026-06-01 = 120 days
    assert (deals["a"]["cycle_days"], deals["d"]["cycle_days"]) == (74, 120)
    assert found["average_cycle_days"] == 97.0
    assert [(r["id"], r["closed"], r["reason"]) for r in found["won"]] == [
        ("a", "2026-03-20", "best price"), ("d", "2026-06-01", None)]
    assert [(r["id"], r["closed"], r["reason"]) for r in found["lost"]] == [
        ("b", "2026-05-01", "too expensive")]
    assert found["win_rate"] == 0.6667
    assert found["won_value"] == 4000
    stages = {s["stage"]: (s["count"], s["value"], s["weighted"]) for s in found["stages"]}
    # e: 3000 x 0.3; c: 4000 x its own 0.25; f: 1000 x 0.7
    assert stages["qualified"] == (1, 3000, 900)
    assert stages["proposal"] == (1, 4000, 1000)
    assert stages["negotiation"] == (1, 1000, 700)
    assert found["open"] == {"count": 3, "value": 8000, "weighted": 2600}
    assert [(m["month"], m["count"], m["value"], m["weighted"]) for m in found["forecast"]] == [
        ("2026-06", 1, 4000, 1000), ("2026-08", 2, 4000, 1600)]
    assert [(r["id"], r["days_overdue"]) for r in found["overdue"]] == [("c", 20)]
    # b's last contact was 2026-04-01: 90 days without activity > 30
    assert [(r["id"], r["days_without_activity"]) for r in found["stale"]] == [("f", 90)]
    # a period that leaves out the first win
    later = as_json(git_workspace, "2026-06-30", "pipeline", "--since", "2026-04-01")
    assert ([r["id"] for r in later["won"]], later["average_cycle_days"]) == (["d"], 120.0)
    # as of an earlier day, later commits do not count: a was a proposal then
    before = as_json(git_workspace, "2026-03-01", "pipeline", "--since", "2026-01-01")
    a = {d["id"]: d for d in before["deals"]}["a"]
    assert [h["stage"] for h in a["history"]][:2] == ["lead", "proposal"]


def test_the_history_is_the_workspaces_own_repository_in_a_git_hook(git_workspace, tmp_path):
    """A git hook (or a user) sets GIT_DIR and GIT_WORK_TREE to another repository: the
    deals' history still comes from the repository the workspace is in."""
    other = tmp_path / "other"
    other.mkdir()
    git(other, "init", "-q")
    git(other, "config", "user.name", "Tess")
    git(other, "config", "user.email", "tess@test.example")
    commit(other, "2026-01-02", {"deals/a.yaml": deal("a", "Alpha", "lost", 1)})
    result = subprocess.run(
        [str(CRMKIT), "-w", str(git_workspace), "--today", "2026-06-30", "pipeline",
         "--format", "json"], capture_output=True, text=True,
        env={**ENV, "GIT_DIR": str(other / ".git"), "GIT_WORK_TREE": str(other)})
    assert result.returncode == 0, result.stderr
    deals = {d["id"]: d for d in json.loads(result.stdout)["deals"]}
    assert [(h["date"], h["stage"]) for h in deals["a"]["history"]] == [
        ("2026-01-05", "lead"), ("2026-02-10", "proposal"), ("2026-03-20", "won")]


def test_pipeline_table_and_the_stale_deal_reminder(git_workspace):
    out = crmkit(git_workspace, "2026-06-30", "pipeline", "--since", "2026-01-01").stdout
    assert "proposal     1      4,000.00 EUR  50%          1,000.00 EUR" in out
    assert "total        3      8,000.00 EUR               2,600.00 EUR" in out
    assert "2026-08         2      4,000.00 EUR  1,600.00 EUR" in out
    assert "2 won (4,000.00 EUR), 1 lost; win rate 67%, average cycle 97 days" in out
    assert "lost  b     b         2026-05-01  2,000.00 EUR  116   too expensive" in out
    assert "overdue  c     a         expected close 2026-06-10, 20 days ago" in out
    reminders = as_json(git_workspace, "2026-06-30", "reminders", "--kind", "stale_deal",
                        "--within", "0")
    assert [(r["id"], r["due"]) for r in reminders] == [("stale_deal/b/2026-05-01/f",
                                                         "2026-05-01")]


def test_without_git_the_history_comes_from_interactions_naming_the_deal(make_workspace):
    root = make_workspace({
        **CUSTOMERS,
        "interactions/deals.yaml": """\
            - {customer: a, date: 2026-01-05, type: call, fields: {deal: a, stage: lead}}
            - {customer: a, date: 2026-02-10, type: quote, fields: {deal: a, stage: proposal}}
            - {customer: a, date: 2026-03-20, type: purchase, amount: 1000, fields: {deal: a}}
        """,
        "deals/a.yaml": deal("a", "Alpha", "won", 1000)}, PIPELINE_SETTINGS)
    found = as_json(root, "2026-06-30", "pipeline", "--since", "2026-01-01")
    a = found["deals"][0]
    assert a["history_from"] == "interactions"
    assert [(h["date"], h["stage"]) for h in a["history"]] == [
        ("2026-01-05", "lead"), ("2026-02-10", "proposal"), ("2026-03-20", "won")]
    assert (a["closed"], a["cycle_days"], found["average_cycle_days"]) == (
        "2026-03-20", 74, 74.0)


def test_build_writes_the_pipeline_page_and_the_funnel(git_workspace):
    result = crmkit(git_workspace, "2026-06-30", "build", ok=False)
    assert "pipeline" not in result.stderr, result.stderr  # (other plugins' problems aside)
    html = (git_workspace / "out" / "reports" / "pipeline.html").read_text(encoding="utf-8")
    md = (git_workspace / "out" / "reports" / "pipeline.md").read_text(encoding="utf-8")
    for text in ("Board by stage", "Epsilon", "Gamma", "too expensive"):
        assert text in html and text in md, text
    assert "| 2026-08 | 2 | " in md and "1,600.00" in md.split("| 2026-08 | 2 | ")[1]
    dashboard = (git_workspace / "out" / "reports" / "dashboard.md").read_text(
        encoding="utf-8")
    # first in touch in the last 365 days: a and b; both have a deal past 'proposal'
    # (a won, b lost after an offer): lead 2, qualified 2, offer 2, won 1
    assert "| lead | 2 |\n| qualified | 2 |\n| offer | 2 |\n| won | 1 |" in dashboard


def test_the_example_workspace_shows_every_stage(tmp_path):
    app = App(EXAMPLE, __import__("datetime").date(2026, 11, 23), use_cache=False)
    stages = {d.stage for d in app.workspace.deals.values()}
    assert {"lead", "qualified", "proposal", "negotiation", "won", "lost"} <= stages
    assert {c.source for c in app.workspace.customers.values()} >= {
        "website", "ad", "fair", "referral"}
    assert any(c.campaign for c in app.workspace.customers.values())
    assert "qualified" in app.labels().column("lead_stage").values()


def test_an_uncommitted_stage_counts_from_the_files_day(git_workspace):
    write_files(git_workspace, {"deals/e.yaml": deal("a", "Epsilon", "proposal", 3000,
                                                     "expected_close: 2026-08-20\n")})
    day = __import__("datetime").datetime(2026, 6, 25, 12).timestamp()
    os.utime(git_workspace / "deals" / "e.yaml", (day, day))
    found = as_json(git_workspace, "2026-06-30", "pipeline")
    e = {d["id"]: d for d in found["deals"]}["e"]
    assert [(h["date"], h["stage"]) for h in e["history"]] == [
        ("2026-06-15", "qualified"), ("2026-06-25", "proposal")]
    assert e["stage_since"] == "2026-06-25"


def test_a_deal_nothing_names_has_only_its_files_day(make_workspace):
    root = make_workspace({**CUSTOMERS, "deals/w.yaml": deal("a", "Won", "won", 500)},
                          PIPELINE_SETTINGS)
    day = __import__("datetime").datetime(2026, 5, 5, 12).timestamp()
    os.utime(root / "deals" / "w.yaml", (day, day))
    found = as_json(root, "2026-06-30", "pipeline", "--since", "2026-01-01")
    w = found["deals"][0]
    assert (w["history_from"], w["closed"], w["opened"], w["cycle_days"]) == (
        "file", "2026-05-05", None, None)
    assert found["win_rate"] == 1.0 and found["average_cycle_days"] is None
    # as of a day before the file was written, nothing says when it was won
    before = as_json(root, "2026-05-01", "pipeline", "--since", "2026-01-01")
    assert before["closed_without_date"] == ["w"] and before["won"] == []


def test_the_pipeline_page_escapes_what_the_files_say(make_workspace):
    root = make_workspace({**CUSTOMERS, "deals/x.yaml": deal(
        "a", "'<script>alert(1)</script>'", "proposal", 10, "reason: '<b>no</b>'\n")},
        PIPELINE_SETTINGS)
    crmkit(root, "2026-06-30", "report", "pipeline", "--out", str(root / "site"))
    html = (root / "site" / "pipeline.html").read_text(encoding="utf-8")
    assert "<script>alert" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;" in html
