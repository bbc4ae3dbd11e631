"""The churn risk and the stages built on it (issue 17): the Pareto/NBD maths on
hand-checked numbers, and every stage rule of the heuristic on a hand-built workspace
whose Kaplan-Meier survival is worked out below by hand."""

import datetime as dt
import json
import math
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from crmkit_plugins.predict.model import (
    History,
    ParetoNbd,
    churn_risk_all,
    fit_pareto,
    p_alive_all,
    pareto_log_likelihood,
    risk_crossing_all,
)
from crmkit_plugins.segments import Activity, rhythm

from crmkit import App

# Fader, Hardie & Lee's Pareto/NBD fit of the CDNOW sample
CDNOW = ParetoNbd(r=0.5533, alpha=10.5776, s=0.6061, beta=11.6689, log_likelihood=-9595.0,
                  customers=2357, converged=True)


def arrays(*values):
    return [np.array([v], dtype=float) for v in values]


@pytest.mark.parametrize(("x", "t_x", "T", "t"), [(0, 0.0, 30.0, 13.0), (2, 20.0, 38.0, 13.0),
                                                  (5, 30.0, 31.0, 39.0)])
def test_churn_risk_is_the_chance_of_no_purchase_by_the_model_itself(x, t_x, T, t):
    """The likelihood ratio equals its definition: 1 − P(alive) + P(alive) × E[P(no
    purchase in t | λ, μ)], with λ ~ Gamma(r+x, α+T) and μ ~ Gamma(s, β+T) given alive
    (a customer alive at T who drops out at τ < t buys only before τ)."""
    from scipy import stats

    m = CDNOW
    # the expectation over both posteriors on a Gauss-Legendre grid of their quantiles
    nodes, weights = np.polynomial.legendre.leggauss(400)
    u, w = (nodes + 1) / 2, weights / 2
    lam = stats.gamma(m.r + x, scale=1 / (m.alpha + T)).ppf(u)[:, None]
    mu = stats.gamma(m.s, scale=1 / (m.beta + T)).ppf(u)[None, :]
    total = lam + mu
    none_bought = mu / total * (1 - np.exp(-total * t)) + np.exp(-total * t)
    quiet = float(w @ none_bought @ w)
    alive = float(p_alive_all(m, *arrays(x, t_x, T))[0])
    assert 0 < alive < 1  # one-time buyers too: unlike BG/NBD, not 1 by construction
    expected = 1 - alive + alive * quiet
    assert float(churn_risk_all(m, t, *arrays(x, t_x, T))[0]) == pytest.approx(expected,
                                                                                abs=1e-5)


def test_churn_risk_rises_while_nothing_is_bought_and_falls_with_purchases():
    weeks = np.array([10.0, 20.0, 40.0, 80.0])
    quiet = churn_risk_all(CDNOW, 13, np.zeros(4), np.zeros(4), weeks)
    assert list(quiet) == sorted(quiet) and quiet[0] < quiet[-1] < 1
    alive = p_alive_all(CDNOW, np.zeros(4), np.zeros(4), weeks)
    assert list(alive) == sorted(alive, reverse=True) and alive[0] < 1
    # the same age and last purchase, more purchases: less risk
    more = churn_risk_all(CDNOW, 13, np.array([1.0, 4.0]), np.array([20.0, 20.0]),
                          np.array([30.0, 30.0]))
    assert more[1] < more[0]
    # a longer horizon: less chance to stay without a purchase
    assert churn_risk_all(CDNOW, 52, *arrays(1, 20.0, 30.0))[0] < churn_risk_all(
        CDNOW, 13, *arrays(1, 20.0, 30.0))[0]


def test_the_crossing_is_where_the_risk_reaches_the_threshold():
    x, t_x, T = (np.array(v, dtype=float) for v in ([1, 3, 0], [10, 30, 0], [60, 32, 50]))
    risk = churn_risk_all(CDNOW, 13, x, t_x, T)
    weeks = risk_crossing_all(CDNOW, 13, x, t_x, T, 0.8)
    for n in range(3):
        if risk[n] >= 0.8:
            assert t_x[n] <= weeks[n] <= T[n]
            # at or just past the crossing: a hundredth of a week before, still below
            assert churn_risk_all(CDNOW, 13, *arrays(x[n], t_x[n], weeks[n]))[0] >= 0.8
            assert churn_risk_all(CDNOW, 13, *arrays(x[n], t_x[n], weeks[n] - 0.01))[0] < 0.8
        else:
            assert math.isnan(weeks[n])
    assert risk[1] < 0.8  # a regular who bought two weeks ago


def test_pareto_fit_recovers_the_parameters_it_was_simulated_with():
    rng = np.random.default_rng(3)
    r, alpha, s, beta = 0.8, 8.0, 0.5, 12.0
    data = []
    for k in range(3000):
        rate, death = rng.gamma(r, 1 / alpha), rng.gamma(s, 1 / beta)
        T = float(rng.uniform(30, 40))
        life = min(rng.exponential(1 / death), T)
        times, now = [], rng.exponential(1 / rate)
        while now < life:
            times.append(now)
            now += rng.exponential(1 / rate)
        data.append(History(f"c{k}", len(times), times[-1] if times else 0.0, T, None))
    model = fit_pareto(data)
    assert model.converged
    # the maximum: at least as likely as the true parameters, and near them (β, the
    # scale of the drop-out rates, is the least well determined by 40 weeks of data)
    x, t_x, T = (np.array([getattr(h, k) for h in data]) for k in ("x", "t_x", "T"))
    truth = pareto_log_likelihood(np.log([r, alpha, s, beta]), x, t_x, T)
    assert model.log_likelihood >= truth
    assert (model.r, model.alpha, model.s) == pytest.approx((r, alpha, s), rel=0.35)
    assert beta / 1.5 < model.beta < beta * 1.5


def test_the_workspace_survival_of_gaps_by_hand():
    today = dt.date(2026, 6, 1)

    def part(gaps, quiet, scale=None):
        last = today - dt.timedelta(days=quiet)
        return Activity(last, last, last, tuple(gaps), scale, "gaps" if scale else None, 1)

    # a: gaps 100, 100, 100, his own rhythm; b: one-time buyer; c: one gap of 200.
    # The usual gap is the median of the mean gaps 100 and 200 = 150; in units of it
    # (a: of his own 100) the gaps are 1, 1, 1 (a) and 1.333 (c); still open: 0.5 (a),
    # 1.333 (b), 2 (c).  At 1: 3 of the 6 not yet over end → S = 1/2; at 1.333: 1 of 3
    # → S = 1/3; linear in between (from 1 at 0), 1/3 after.
    shape = rhythm({"a": part((100, 100, 100), 50, 100), "b": part((), 200),
                    "c": part((200,), 300), "lead": None},
                   SimpleNamespace(options=SimpleNamespace(usual_gap_days=365), today=today))
    assert shape.usual_days == 150
    assert shape.points == pytest.approx((1.0, 4 / 3))
    assert shape.survival == pytest.approx((1 / 2, 1 / 3))
    # a, quiet 50 days: P(no purchase in the next 100 days) = S(1.5) / S(0.5)
    # = (1/3) / (3/4)
    assert shape.risk(50, 100, 100) == pytest.approx(4 / 9)
    # S(1.2) = 1/2 − (1/6) × 0.2 / (1/3) = 0.4
    assert shape.risk(120, 100, 100) == pytest.approx((1 / 3) / 0.4)
    assert shape.risk(300, 150, 150) == 1.0  # beyond every gap seen: nobody came back
    nothing = rhythm({"b": part((), 200)},
                     SimpleNamespace(options=SimpleNamespace(usual_gap_days=365), today=today))
    # without repeat activity, everybody comes back within usual_gap_days (S falls
    # linearly from 1 at 0 to 0 at one usual gap)
    assert (nothing.usual_days, nothing.risk(200, 365, 365), nothing.risk(365, 365, 365)) == (
        365, 0.0, 1.0)


TODAY = dt.date(2026, 6, 1)


def ago(n: int) -> str:
    return (TODAY - dt.timedelta(days=n)).isoformat()


def buys(cid: str, *days: int, amount: int = 200) -> str:
    return "".join(f"- {{customer: {cid}, date: {ago(d)}, type: purchase, amount: {amount}}}\n"
                   for d in days)


CONTRACT = f"services:\n  - {{name: Wartung, interval: 1 year, start: {ago(880)}}}\n"
STAGES = {
    "customers/reg.yaml": "name: Reg\n",
    "customers/mid.yaml": "name: Mid\n",
    "customers/late.yaml": "name: Late\n",
    "customers/once.yaml": "name: Once\n",
    "customers/fresh.yaml": "name: Fresh\n",
    "customers/newbie.yaml": "name: Newbie\n",
    "customers/lead.yaml": "name: Lead\n",
    "customers/ann.yaml": "name: Ann\n" + CONTRACT,
    "customers/kept.yaml": "name: Kept\n" + CONTRACT,
    "interactions/p.yaml": (
        buys("reg", 350, 250, 150, 50) + buys("mid", 410, 310, 210, 110)
        + buys("late", 500, 400, 300, 200) + buys("once", 200, amount=100)
        + buys("fresh", 95) + buys("newbie", 30)
        # two purchases 440 days apart, quiet for 440 days, the annual maintenance missed
        + buys("ann", 880, 440, amount=400)
        + f"- {{customer: ann, date: {ago(440)}, type: service, service: Wartung}}\n"
        # the same, but serviced 300 days ago: the contract keeps her
        + buys("kept", 880, 440, amount=400)
        + f"- {{customer: kept, date: {ago(300)}, type: service, service: Wartung}}\n"),
}
SETTINGS = ("business: X\nsegmentation:\n  lifecycle: {activity_types: [purchase], "
            "at_risk_above: 0.6, lost_above: 0.9}\n")


def test_a_risk_exactly_at_the_threshold_starts_the_stage_that_day(make_workspace):
    """k1's gaps are 365 and 249 days (usual gap: their mean 307); k0 bought once 357
    days ago, k2 204 days ago.  In units of 307 days the gaps end at 249/307 and
    365/307, with 4 of 5 and then 2 of 4 still open: S = 3/4 at 0.811, 3/8 at 1.189.
    After 336 quiet days k0's risk S((336 + 307)/307) / S(336/307) is 0.8 exactly,
    the at-risk threshold: at risk from that day, 2026-10-21.  (Interpolating with
    np.interp made it 0.7999999999999999, and the day, and so the reminder's id,
    moved to 2026-10-22: a reminder marked done came back.)"""
    root = make_workspace({
        "customers/k0.yaml": "name: K0\n", "customers/k1.yaml": "name: K1\n",
        "customers/k2.yaml": "name: K2\n",
        "interactions/p.yaml": "".join(
            f"- {{customer: {cid}, date: {day}, type: purchase, amount: 100}}\n"
            for cid, day in (("k0", "2025-11-19"), ("k1", "2023-01-02"), ("k1", "2024-01-02"),
                             ("k1", "2024-09-07"), ("k2", "2026-04-21")))})
    app = App(root, dt.date(2026, 11, 11))
    shape = app.metric("_rhythm").value
    assert (shape.usual_days, shape.survival) == (307.0, (0.75, 0.375))
    assert shape.risk(336, 307, 307) == 0.8
    assert app.labels()["k0"]["lifecycle"] == "at_risk"
    assert app.labels()["k0"]["lifecycle_since"] == "2026-10-21"
    assert "at_risk/k0/2026-10-21" in {r.id for r in app.reminders()}


def test_a_purchase_today_moves_the_buyers_risk_now_and_the_rhythm_tomorrow(make_workspace):
    """The workspace above, and k2 buys again today, 204 days after her first purchase.
    Today the rhythm is the history before today's: the same S (3/4 at 0.811, 3/8 at
    1.189, usual gap 307), so k0 stays at risk from 2026-10-21; k2, quiet 0 days with the
    usual 307, has risk S(1) / S(0) = 3/4 - 3/8 * (58/307) / (116/307) = 0.5625.
    Tomorrow her gap counts: the mean gaps are 307 and 204, usual 255.5; in those units
    the gaps end at 0.798 (k2), 0.975 and 1.429 (k1) with 5, 4 and 2 gaps that long
    (the quiet spells 1/255.5, 358/255.5 and 796/255.5 count as open gaps): S = 4/5,
    3/5, 3/10."""
    purchases = (("k0", "2025-11-19"), ("k1", "2023-01-02"), ("k1", "2024-01-02"),
                 ("k1", "2024-09-07"), ("k2", "2026-04-21"), ("k2", "2026-11-11"))
    root = make_workspace({
        "customers/k0.yaml": "name: K0\n", "customers/k1.yaml": "name: K1\n",
        "customers/k2.yaml": "name: K2\n",
        "interactions/p.yaml": "".join(
            f"- {{customer: {cid}, date: {day}, type: purchase, amount: 100}}\n"
            for cid, day in purchases)})
    app = App(root, dt.date(2026, 11, 11))
    shape = app.metric("_rhythm").value
    assert (shape.usual_days, shape.survival) == (307.0, (0.75, 0.375))
    labels = app.labels()
    assert (labels["k0"]["lifecycle"], labels["k0"]["lifecycle_since"]) == (
        "at_risk", "2026-10-21")
    assert labels["k2"]["churn_risk"] == pytest.approx(0.5625, abs=0.001)
    tomorrow = App(root, dt.date(2026, 11, 12)).metric("_rhythm").value
    assert tomorrow.usual_days == 255.5
    assert tomorrow.survival == pytest.approx((0.8, 0.6, 0.3))


def test_the_first_repeat_purchase_logged_today_is_no_evidence_until_tomorrow(make_workspace):
    """a buys again today, the first repeat purchase in the workspace: the rhythm before
    today has no gap, so the shape is assumed (the usual 365 days) and the reason says
    that nobody had bought twice before today; tomorrow her gap of 41 days is evidence."""
    root = make_workspace({
        "customers/a.yaml": "name: A\n", "customers/b.yaml": "name: B\n",
        "interactions/p.yaml": buys("a", 41, 0) + buys("b", 71)},
        settings="business: X\nsegmentation:\n  lifecycle: {activity_types: [purchase]}\n")
    labels = App(root, TODAY).labels()
    assert labels["a"]["churn_reason"] == (
        "no purchase for 0 days; 2 occasions so far, usually every 365 days in this "
        "workspace; nobody here had bought twice before today: assumed back within 365 days")
    tomorrow = App(root, TODAY + dt.timedelta(days=1)).metric("_rhythm").value
    assert (tomorrow.assumed, tomorrow.usual_days) == (False, 41)


def test_each_stage_rule_on_a_hand_built_workspace(make_workspace):
    """Worked out by hand.  Mean gaps: reg, mid, late 100; ann, kept 440 → usual 100.
    Own rhythm: reg, mid, late (three gaps) 100 days; ann and kept (one gap) their
    contract's 365 days; once and fresh the usual 100.  Horizon: 90 days, at least the
    rhythm: 100, or 365 for ann and kept.  In units of the rhythm the gaps are nine 1s
    and 440/365 = 1.2055 twice; still open: reg 0.5, mid 1.1, late 2, once 2, fresh 0.95,
    newbie 0.3, ann and kept 1.2055: 19 in all.  At 1: 9 of 16 end → S = 7/16; at
    1.2055: 2 of 6 end → S = 7/24.  Linear in between: S(u) = 1 − 0.5625 u up to 1,
    7/16 − 0.70972 (u − 1) up to 1.2055 (slope (7/24 − 7/16) / (75/365)), 7/24 after.
    Thresholds here 0.6 and 0.9."""
    app = App(make_workspace(STAGES, settings=SETTINGS), TODAY)
    assert [d for d in app.workspace.diagnostics if d.is_error] == []
    labels = app.labels()
    got = {cid: (row["lifecycle"], row["lifecycle_since"], row["churn_risk"])
           for cid, row in labels.items()}
    assert got == {
        # quiet 50: S(1.5) / S(0.5) = (7/24) / 0.71875
        "reg": ("active", ago(350 - 91), 0.406),
        # quiet 110: S(2.1) / S(1.1) = (7/24) / 0.36653 = 0.796 ≥ 0.6; since quiet day 92,
        # the first with (7/24) / (1 − 0.005625 q) ≥ 0.6
        "mid": ("at_risk", ago(110 - 92), 0.796),
        # quiet 200: S(3) / S(2) = 1 ≥ 0.9; since quiet day 116, the first with
        # S(q / 100) ≤ (7/24) / 0.9, that is q / 100 ≥ 1.15982
        "late": ("lost", ago(200 - 116), 1.0),
        "once": ("lost", ago(200 - 116), 1.0),
        # one purchase 95 days ago: S(1.95) / S(0.95) = (7/24) / 0.465625 = 0.626
        "fresh": ("at_risk", ago(95 - 92), 0.626),
        "newbie": ("new", ago(30), 0.351),
        "lead": ("lead", None, None),
        # quiet 440 = 1.2055 contract years: S(2.21) / S(1.2055) = 1; lost since quiet
        # day 424 (424 / 365 ≥ 1.15982).  Her single gap of 440 days does not become her
        # "usual" (the old rule kept her active until day 552)
        "ann": ("lost", ago(440 - 424), 1.0),
        # the same history, but serviced within the contract's year: kept active
        "kept": ("active", ago(880 - 91), 1.0),
    }
    assert labels["kept"]["lifecycle_basis"] is None  # the model is not used at all
    assert app.labels().column("_stage")["kept"][2] == "contract"
    assert labels["ann"]["churn_reason"] == (
        "no purchase for 440 days; service contract every 365 days; 0% chance to buy in the "
        "next 365 days")
    assert labels["mid"]["churn_reason"] == (
        "no purchase for 110 days; usually every 100 days; 20% chance to buy in the next "
        "100 days")
    assert labels["once"]["churn_reason"] == (
        "no purchase for 200 days; one occasion so far, usually every 100 days in this "
        "workspace; 0% chance to buy in the next 100 days")
    # the at-risk and win-back reminders follow the stages, with the reason in words
    found = {(r.customer, r.kind): r for r in app.reminders()
             if r.kind in ("at_risk", "win_back") and not r.suppressed}
    assert sorted(found) == [("ann", "win_back"), ("fresh", "at_risk"), ("late", "win_back"),
                             ("mid", "at_risk")]  # once: worth 100, not winning back
    assert found[("mid", "at_risk")].due == TODAY - dt.timedelta(days=18)
    assert found[("mid", "at_risk")].reason.endswith(labels["mid"]["churn_reason"])


def test_the_churn_reason_follows_the_workspace_locale(make_workspace):
    """The same workspace as above in German: the same figures, German words (the
    reason is a label, so JSON carries it in the workspace's language too)."""
    app = App(make_workspace(STAGES, settings=SETTINGS + "locale: de\n"), TODAY)
    labels = app.labels()
    assert labels["ann"]["churn_reason"] == (
        "440 Tage ohne Kauf; Wartungsvertrag alle 365 Tage; 0\xa0% Chance auf einen Kauf "
        "innerhalb von 365 Tagen")
    assert labels["mid"]["churn_reason"] == (
        "110 Tage ohne Kauf; meist alle 100 Tage; 20\xa0% Chance auf einen Kauf innerhalb "
        "von 100 Tagen")
    assert labels["once"]["churn_reason"] == (
        "200 Tage ohne Kauf; bisher ein Mal, bei allen Kunden meist alle 100 Tage; 0\xa0% "
        "Chance auf einen Kauf innerhalb von 100 Tagen")
    assert labels["mid"]["churn_risk"] == 0.796  # the figures do not change


def test_churn_risk_in_segments_json_show_and_the_dashboard(make_workspace):
    root = make_workspace(STAGES, settings=SETTINGS)
    crmkit = str(Path(sys.executable).parent / "crmkit")
    env = {**os.environ, "CRMKIT_BACKGROUND": "0"}

    def run(*args):
        done = subprocess.run([crmkit, "-w", str(root), "--today", TODAY.isoformat(), *args],
                              capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
        return done.stdout

    data = json.loads(run("segments", "--format", "json", "--customer", "mid"))
    assert (data["mid"]["churn_risk"], data["mid"]["lifecycle"]) == (0.796, "at_risk")
    shown = run("show", "mid")
    assert ("Churn reason:       no purchase for 110 days; usually every 100 days; 20% chance "
            "to buy in the next 100 days") in shown
    assert "churn_risk=0.796" in shown
    dashboard = run("report", "dashboard", "--format", "md", "--out", "-")
    # value at risk without a model: revenue of the last 12 months × churn risk; mid's
    # 600 × 0.796 leads late's 400 × 1, reg's 800 × 0.406 and fresh's 200 × 0.626; ann
    # and kept bought more than a year ago
    table = dashboard[dashboard.index("| value at risk |"):].splitlines()[2:6]
    assert table == ["| Mid | 80% | €600.00 | €477.60 |", "| Late | 100% | €400.00 | €400.00 |",
                     "| Reg | 41% | €800.00 | €324.80 |", "| Fresh | 63% | €200.00 | €125.20 |"]


def test_lost_below_at_risk_is_an_error_in_crmkit_yaml(make_workspace):
    root = make_workspace({}, settings=(
        "business: X\nsegmentation:\n  lifecycle: {at_risk_above: 0.9, lost_above: 0.5}\n"))
    assert [str(d) for d in App(root, TODAY).workspace.diagnostics] == [
        "crmkit.yaml:3:47: error: 'segmentation.lifecycle.lost_above' must not be smaller "
        "than 'at_risk_above'"]
