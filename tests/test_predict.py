import datetime as dt
import json
import math

import numpy as np
import pytest
from crmkit_plugins.predict.model import (
    BgNbd,
    GammaGamma,
    History,
    clv_all,
    fit_bgnbd,
    fit_gamma_gamma,
    forecast,
)

from crmkit import App

# Fader, Hardie & Lee (2005): the CDNOW fit
PAPER = BgNbd(r=0.243, alpha=4.414, a=0.793, b=2.426, log_likelihood=-9582.4,
              customers=2357, converged=True)


def test_published_example_customer():
    # x = 2, t_x = 30.43, T = 38.86 weeks: P(alive) ≈ 0.7266, E[Y(39)] ≈ 1.2259
    assert PAPER.p_alive(2, 30.43, 38.86) == pytest.approx(0.7266, abs=5e-4)
    assert PAPER.expected_purchases(39, 2, 30.43, 38.86) == pytest.approx(1.2259, abs=5e-4)
    assert PAPER.p_alive(0, 0, 38.86) == 1.0


def test_gamma_gamma_expected_spend_and_mean():
    model = GammaGamma(p=6.25, q=3.74, gamma=15.44, log_likelihood=0, customers=946,
                       converged=True)
    # E[M | x, m_x] = p (γ + x m_x) / (p x + q − 1)
    assert model.expected_spend(2, 40.0, 0) == pytest.approx(6.25 * (15.44 + 80) / (12.5 + 2.74))
    assert model.mean == pytest.approx(6.25 * 15.44 / 2.74)
    assert model.expected_spend(0, None, 35.2) == 35.2


def simulate(n: int, r: float, alpha: float, a: float, b: float, T: float, seed: int = 7):
    """Purchase histories drawn from the BG/NBD story itself."""
    rng = np.random.default_rng(seed)
    histories = []
    for k in range(n):
        rate = rng.gamma(r, 1 / alpha)
        p = rng.beta(a, b)
        t, last, x = 0.0, 0.0, 0
        while True:
            t += rng.exponential(1 / rate) if rate > 0 else math.inf
            if t > T:
                break
            x, last = x + 1, t
            if rng.random() < p:
                break
        histories.append(History(f"c{k}", x, last, T, None))
    return histories


def test_fit_recovers_the_parameters_it_was_simulated_with():
    data = simulate(5000, r=0.5, alpha=6.0, a=0.8, b=2.5, T=52)
    model = fit_bgnbd(data)
    assert model.converged
    assert model.r / model.alpha == pytest.approx(0.5 / 6.0, rel=0.1)  # mean purchase rate
    assert model.r == pytest.approx(0.5, rel=0.25)
    assert model.a / (model.a + model.b) == pytest.approx(0.8 / 3.3, rel=0.25)  # mean dropout


def test_gamma_gamma_fit_recovers_its_parameters():
    rng = np.random.default_rng(3)
    p, q, gamma = 6.0, 4.0, 15.0
    data = []
    for k in range(3000):
        x = int(rng.integers(1, 8))
        nu = rng.gamma(q, 1 / gamma)
        spends = rng.gamma(p, 1 / nu, size=x)
        data.append(History(f"c{k}", x, 1, 2, float(spends.mean())))
    model = fit_gamma_gamma(data)
    assert model.converged
    assert model.mean == pytest.approx(p * gamma / (q - 1), rel=0.1)
    assert model.q == pytest.approx(q, rel=0.3)


def clv(model: BgNbd, h: History, spend: float, horizon_days: int, rate: float) -> float:
    """The CLV definition written out per customer, as a reference for the vectorised one."""
    weeks_per_month = 365.25 / 12 / 7
    monthly_rate = (1 + rate) ** (1 / 12) - 1
    total = previous = 0.0
    for month in range(1, round(horizon_days / (365.25 / 12)) + 1):
        cumulative = model.expected_purchases(month * weeks_per_month, h.x, h.t_x, h.T)
        total += (cumulative - previous) * spend / (1 + monthly_rate) ** month
        previous = cumulative
    return total


def one_clv(horizon_days: int, rate: float) -> float:
    arrays = [np.array([v], dtype=float) for v in (3, 20.0, 30.0, 50.0)]
    return float(clv_all(PAPER, *arrays[:3], arrays[3], horizon_days, rate)[0])


def test_clv_grows_with_the_horizon_and_shrinks_with_discounting():
    one_year, two_years = one_clv(365, 0.1), one_clv(730, 0.1)
    assert 0 < one_year < two_years
    assert one_clv(365, 0.5) < one_year < one_clv(365, 0.0)
    # at most the undiscounted value of a year of purchases if surely alive
    rate = (PAPER.r + 3) / (PAPER.alpha + 30.0) * 52  # purchases a year while alive
    assert one_year < rate * 50


def test_too_little_history_is_a_clear_message_not_a_crash():
    result = forecast([History("a", 0, 0, 10, None), History("b", 1, 2, 10, 5.0)])
    assert result.predictions == {} and not result.trustworthy
    assert result.problem.startswith("too little history to fit: 2 customers with purchases")


def test_predict_command_on_a_tiny_workspace(make_workspace, run):
    root = make_workspace({"customers/a.yaml": "name: A\n",
                           "interactions/p.yaml": "customer: a\ndate: 2026-01-01\n"
                                                  "type: purchase\namount: 5\n"})
    text = run("-w", root, "--today", "2026-06-01", "predict")
    assert text.exit_code == 0
    assert text.stdout.startswith("no prediction: too little history to fit")
    data = json.loads(run("-w", root, "--today", "2026-06-01", "predict", "--format",
                          "json").stdout)
    assert data["fitted"] is False and data["customers"] == {} and data["bgnbd"] is None


def simulated_workspace(make_workspace, n=120):
    """A shop whose purchases follow the BG/NBD story, written as files."""
    rng = np.random.default_rng(11)
    start = dt.date(2024, 1, 1)
    files = {}
    lines = []
    for k in range(n):
        cid = f"c{k:03d}"
        files[f"customers/{cid}.yaml"] = f"name: Customer {k}\n"
        rate, p = rng.gamma(2.0, 1 / 20), rng.beta(1.0, 4.0)
        day = start + dt.timedelta(days=int(rng.integers(0, 60)))
        while day <= dt.date(2026, 6, 1):
            lines.append(f"- {{customer: {cid}, date: {day}, type: purchase, "
                         f"amount: {int(rng.integers(20, 200))}}}\n")
            if rng.random() < p:
                break
            day += dt.timedelta(days=max(1, int(rng.exponential(7 / rate))))
    files["interactions/sales.yaml"] = "".join(lines)
    return make_workspace(files)


def test_segments_use_the_churn_risk_when_the_fit_is_trustworthy(make_workspace, run):
    root = simulated_workspace(make_workspace)
    app = App(root, dt.date(2026, 6, 1))
    result = json.loads(run("-w", root, "--today", "2026-06-01", "predict", "--format",
                            "json").stdout)
    assert result["fitted"] and result["trustworthy"], result["note"]
    segments = app.labels()
    modelled = [cid for cid in segments if segments[cid].get("lifecycle_basis") == "model"]
    assert len(modelled) >= 50
    # one-time buyers too: the Pareto/NBD model lets them drop out
    assert any(segments[cid]["rfm"][1] == "1" for cid in modelled)
    stages = set()
    for cid in modelled:
        labels, predicted = segments[cid], result["customers"][cid]
        risk = predicted["churn_risk"]
        expected = "lost" if risk >= 0.95 else "at_risk" if risk >= 0.8 else "active"
        assert labels["lifecycle"] in (expected, "new"), (cid, risk, labels)
        stages.add(labels["lifecycle"])
        assert labels["churn_risk"] == pytest.approx(risk, abs=1e-3)
        assert labels["p_alive"] == pytest.approx(predicted["p_alive"], abs=1e-3)
        percent = int(labels["churn_reason"].split("; ")[-1].split("%")[0])
        assert abs(percent - 100 * (1 - risk)) <= 0.5 + 1e-3  # rounded from 4 digits
        assert labels["churn_reason"].endswith(
            f"{percent}% chance to buy in the next {predicted['churn_horizon_days']} days")
    assert {"active", "at_risk", "lost"} <= stages
    table = run("-w", root, "--today", "2026-06-01", "segments")
    assert "lifecycle: from the churn risk of the fitted Pareto/NBD model" in table.stderr
    dashboard = run("-w", root, "--today", "2026-06-01", "report", "dashboard", "--format",
                    "md", "--out", "-").stdout
    assert "expected over the next 365 days" in dashboard
    assert "| customer | churn risk | value if they stay | value at risk |" in dashboard


def test_models_are_fitted_on_the_months_before_this_one(make_workspace, run):
    """A purchase logged today or yesterday moves that customer's prediction, not the
    parameters (no refit of everybody in crmkit watch); next month it is in the fit."""
    from crmkit_plugins.predict import summary_at_calibration, summary_today
    from crmkit_plugins.predict.model import fit, forecast

    def histories(app, summary):
        return [h for c in app.customers() if (h := summary(c)) is not None]

    root = simulated_workspace(make_workspace)
    today = dt.date(2026, 6, 2)
    before = json.loads(run("-w", root, "--today", today.isoformat(), "predict",
                            "--format", "json").stdout)
    app = App(root, today)
    expected = fit(histories(app, summary_at_calibration))
    assert before["bgnbd"]["r"] == expected.bgnbd.r
    assert before["gamma_gamma"]["p"] == expected.gamma_gamma.p
    # every customer is predicted from today's history with those parameters
    own = forecast(histories(app, summary_today), fitted=expected).predictions
    assert before["customers"]["c000"]["clv"] == round(own["c000"].clv, 2)

    (root / "interactions" / "today.yaml").write_text(
        f"customer: c000\ndate: {today}\ntype: purchase\namount: 80\n")
    other = sorted(before["customers"])[1]
    (root / "interactions" / "yesterday.yaml").write_text(
        f"customer: {other}\ndate: {today - dt.timedelta(days=1)}\ntype: purchase\n"
        "amount: 50\n")
    after = json.loads(run("-w", root, "--today", today.isoformat(), "predict",
                           "--format", "json").stdout)
    assert after["bgnbd"] == before["bgnbd"] and after["gamma_gamma"] == before["gamma_gamma"]
    changed = {cid for cid in before["customers"]
               if before["customers"][cid] != after["customers"][cid]}
    assert "c000" in changed and changed <= {"c000", other}
    # from the first of next month the purchases are part of the fit
    next_month = dt.date(2026, 7, 1)
    later = json.loads(run("-w", root, "--today", next_month.isoformat(),
                           "predict", "--format", "json").stdout)
    with_purchases = fit(histories(App(root, next_month), summary_at_calibration))
    assert later["bgnbd"]["r"] == with_purchases.bgnbd.r != expected.bgnbd.r


def test_vectorised_predictions_equal_the_per_customer_formulas():
    from crmkit_plugins.predict.model import expected_purchases_all

    cases = [(0, 0.0, 20.0), (1, 5.0, 30.0), (2, 30.43, 38.86), (7, 50.0, 52.0)]
    x, t_x, T = (np.array([c[i] for c in cases], dtype=float) for i in range(3))
    purchases, alive = expected_purchases_all(PAPER, 39, x, t_x, T)
    values = clv_all(PAPER, x, t_x, T, np.full(4, 30.0), 365, 0.1)
    for n, (xi, txi, Ti) in enumerate(cases):
        assert purchases[n] == pytest.approx(PAPER.expected_purchases(39, xi, txi, Ti))
        assert alive[n] == pytest.approx(PAPER.p_alive(xi, txi, Ti))
        assert values[n] == pytest.approx(clv(PAPER, History("c", xi, txi, Ti, 30.0), 30.0,
                                              365, 0.1))


def test_exact_gradient_of_the_likelihood_matches_central_differences():
    from crmkit_plugins.predict.model import _log_likelihood_and_gradient, log_likelihood

    data = simulate(500, r=0.5, alpha=6.0, a=0.8, b=2.5, T=52)
    x = np.array([h.x for h in data], dtype=float)
    t_x = np.array([h.t_x for h in data])
    T = np.array([h.T for h in data])
    for point in ([0.1, 0.5, -0.2, 0.7], [-1.4, 1.5, -0.23, 0.9]):
        p = np.array(point)
        _, gradient = _log_likelihood_and_gradient(p, x, t_x, T)
        steps = np.eye(4) * 1e-6
        numeric = [(log_likelihood(p + e, x, t_x, T) - log_likelihood(p - e, x, t_x, T)) / 2e-6
                   for e in steps]
        assert gradient == pytest.approx(numeric, rel=1e-5, abs=1e-3)


def test_exact_gradient_of_the_spend_likelihood_matches_central_differences():
    from crmkit_plugins.predict.model import gamma_gamma_log_likelihood

    rng = np.random.default_rng(3)
    x = rng.integers(1, 12, 400).astype(float)
    m = rng.gamma(6.0, 15.0, 400)
    for point in ([1.8, 1.3, 2.7], [-0.5, 2.0, 0.3]):
        p = np.array(point)
        _, gradient = gamma_gamma_log_likelihood(p, x, m)
        steps = np.eye(3) * 1e-6
        numeric = [(gamma_gamma_log_likelihood(p + e, x, m)[0]
                    - gamma_gamma_log_likelihood(p - e, x, m)[0]) / 2e-6 for e in steps]
        assert gradient == pytest.approx(numeric, rel=1e-5, abs=1e-3)
