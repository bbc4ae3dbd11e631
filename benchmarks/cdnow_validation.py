"""Validate crmkit's BG/NBD and Gamma-Gamma fits against the published CDNOW results.

Fader, Hardie & Lee (2005) fit the CDNOW sample (2,357 customers who made their
first purchase in Q1 1997; calibration period up to 1997-09-30, time in weeks,
repeat purchases only, same-day purchases merged) and report
r = 0.243, α = 4.414, a = 0.793, b = 2.426 (log-likelihood −9582.4) and, for the
946 repeat customers, p = 6.25, q = 3.74, γ = 15.44.

This script downloads the `lifetimes` wheel from PyPI (the data ships inside it),
imports the transactions into a fresh workspace with `crmkit import`, runs
`crmkit --today 1997-10-01 predict` (crmkit fits on the complete days before
``--today``, so the fit covers exactly the calibration period) and prints paper
and crmkit side by side, then compares predicted and actual repeat purchases in
the rest of the 39-week holdout period (1997-10-02 to 1998-06-30, what the
predictions as of 1997-10-01 are about) by number of calibration repeat
purchases, as the paper's Figure 4 does.

Then it judges crmkit's churn risk (``churn_risk`` of ``crmkit segments``: the
chance of no purchase in the next 90 days, from the Pareto/NBD model) and its
stages against what happened: "churned" = no purchase in the holdout.  Targets
(issue 17): ROC AUC of churn_risk >= that of days since the last purchase; the
at_risk+lost set at least as precise as the same number of customers with the
longest recency (ties in recency count at their average); churn rising from
active to at_risk to lost; the aggregate holdout forecast within 5 %.  The
alternatives it compares (BG/NBD, MBG/NBD, Pareto/NBD over 90 days and over the
holdout, a recency-calibrated form) are computed here with scipy from the same
histories.  It exits 1 if a parameter differs at two decimals or a target is
missed.

    python benchmarks/cdnow_validation.py
"""

from __future__ import annotations

import collections
import datetime as dt
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

CRMKIT = str(Path(sys.executable).parent / "crmkit")
CALIBRATION_END = dt.date(1997, 9, 30)
PREDICTED_ON = CALIBRATION_END + dt.timedelta(days=1)
HOLDOUT_END = dt.date(1998, 6, 30)
PAPER = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426, "log_likelihood": -9582.4,
         "p": 6.25, "q": 3.74, "gamma": 15.44, "repeat_customers": 946}


def crmkit(*args: str, cwd: Path) -> str:
    result = subprocess.run([CRMKIT, *args], cwd=cwd, capture_output=True, text=True)
    if result.returncode != 0:
        sys.exit(f"crmkit {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                        "--dest", tmp, "lifetimes==0.11.3"], check=True,
                       stderr=subprocess.DEVNULL)
        wheel = next(tmp_path.glob("*ifetimes-*.whl"))
        raw = zipfile.ZipFile(wheel).read("lifetimes/datasets/CDNOW_sample.txt").decode()
        rows = [line.split() for line in raw.splitlines() if line.strip()]
        print(f"CDNOW sample: {len(rows)} transactions")

        ws = tmp_path / "cdnow"
        crmkit("init", str(ws), "--business", "CDNOW sample", "--currency", "USD",
               "--timezone", "UTC", cwd=tmp_path)
        ids = sorted({r[0] for r in rows})
        (tmp_path / "customers.csv").write_text(
            "id,name\n" + "".join(f"c{i},CDNOW customer {i}\n" for i in ids))
        (tmp_path / "transactions.csv").write_text("customer,date,amount\n" + "".join(
            f"c{cid},{d[:4]}-{d[4:6]}-{d[6:]},{amount}\n" for cid, _, d, _, amount in rows))
        crmkit("import", "csv", str(tmp_path / "customers.csv"), "--apply", cwd=ws)
        crmkit("import", "transactions", str(tmp_path / "transactions.csv"), "--apply", cwd=ws)
        holdout_days = (HOLDOUT_END - PREDICTED_ON).days
        fit = json.loads(crmkit("--today", PREDICTED_ON.isoformat(), "predict",
                                "--horizon", str(holdout_days), "--format", "json", cwd=ws))
        labels = json.loads(crmkit("--today", PREDICTED_ON.isoformat(), "segments",
                                   "--format", "json", cwd=ws))

    model, spend = fit["bgnbd"], fit["gamma_gamma"]
    ours = {"r": model["r"], "alpha": model["alpha"], "a": model["a"], "b": model["b"],
            "log_likelihood": model["log_likelihood"], "p": spend["p"], "q": spend["q"],
            "gamma": spend["gamma"], "repeat_customers": spend["customers"]}
    print(f"\n{'':18}{'paper':>10}{'crmkit':>12}")
    failures = 0
    for key, published in PAPER.items():
        value = ours[key]
        digits = 1 if key == "log_likelihood" else 0 if key == "repeat_customers" else 2
        ok = round(value, digits) == round(published, digits)
        failures += not ok
        shown = 1 if key == "log_likelihood" else 0 if key == "repeat_customers" else 4
        print(f"{key:18}{published:>10}{value:>12.{shown}f}  {'ok' if ok else 'DIFFERS'}")
    pareto = fit["pareto_nbd"]
    print(f"Pareto/NBD (churn risk): r={pareto['r']:.3f} alpha={pareto['alpha']:.3f} "
          f"s={pareto['s']:.3f} beta={pareto['beta']:.3f} (log-likelihood "
          f"{pareto['log_likelihood']:.1f}; published 0.553, 10.578, 0.606, 11.669, -9595.0)")

    days = collections.defaultdict(set)
    for cid, _, d, _, _ in rows:
        days[f"c{cid}"].add(dt.date(int(d[:4]), int(d[4:6]), int(d[6:])))
    ids = sorted(fit["customers"])
    calibration = {c: sorted(x for x in days[c] if x <= CALIBRATION_END) for c in ids}
    actual = {c: sum(1 for x in days[c] if PREDICTED_ON < x <= HOLDOUT_END) for c in ids}
    churned = {c: actual[c] == 0 for c in ids}
    quarter = PREDICTED_ON + dt.timedelta(days=fit["churn_horizon_days"])
    churned_90 = {c: not any(PREDICTED_ON < x <= quarter for x in days[c]) for c in ids}
    recency = {c: (PREDICTED_ON - max(x for x in days[c] if x <= PREDICTED_ON)).days
               for c in ids}
    risk = {c: labels[c]["churn_risk"] for c in ids}
    stage = {c: labels[c]["lifecycle"] for c in ids}
    failures += compare(ids, calibration, days, churned, churned_90, recency, risk, stage,
                        fit, holdout_days)
    return 1 if failures else 0


def auc(score: dict[str, float], outcome: dict[str, bool]) -> float:
    """ROC AUC: the chance that a churner scores above a stayer (ties count half)."""
    from scipy.stats import rankdata

    ids = list(score)
    ranks = rankdata([score[c] for c in ids])
    positive = [r for c, r in zip(ids, ranks, strict=True) if outcome[c]]
    n1, n0 = len(positive), len(ids) - len(positive)
    return (sum(positive) - n1 * (n1 + 1) / 2) / (n1 * n0)


def top_precision(score: dict[str, float], outcome: dict[str, bool], n: int) -> float:
    """Share of churners among the ``n`` highest scores; customers tied at the cut
    count with their average (what a random order among them gives)."""
    ordered = sorted(score.values(), reverse=True)
    if n == 0:
        return float("nan")
    cut = ordered[n - 1]
    above = [c for c in score if score[c] > cut]
    tied = [c for c in score if score[c] == cut]
    share = sum(outcome[c] for c in tied) / len(tied)
    return (sum(outcome[c] for c in above) + (n - len(above)) * share) / n


def histories(calibration: dict[str, list[dt.date]], end: dt.date, on: dt.date):
    """(x, t_x, T) arrays in weeks: T to ``on``; only days up to ``end`` count."""
    import numpy as np

    rows = []
    for found in calibration.values():
        found = [d for d in found if d <= end]
        rows.append((len(found) - 1, (found[-1] - found[0]).days / 7,
                     (on - found[0]).days / 7) if found else (np.nan, np.nan, np.nan))
    return tuple(np.array(v, dtype=float) for v in zip(*rows, strict=True))


def compare(ids, calibration, days, churned, churned_90, recency, risk, stage, fit,
            holdout_days) -> int:
    import numpy as np
    from crmkit_plugins.predict.model import (
        History,
        ParetoNbd,
        churn_risk_all,
        expected_purchases_all,
        fit_bgnbd,
        fit_pareto,
    )
    from scipy.optimize import minimize
    from scipy.special import gammaln, hyp2f1

    x, t_x, T = histories(calibration, CALIBRATION_END, PREDICTED_ON)
    _, _, T_fit = histories(calibration, CALIBRATION_END, CALIBRATION_END)
    data = [History(c, int(x[n]), t_x[n], T_fit[n], None) for n, c in enumerate(ids)]
    horizon, quarter = holdout_days / 7, fit["churn_horizon_days"] / 7
    bg = fit_bgnbd(data)
    pareto = ParetoNbd(**{k: fit["pareto_nbd"][k] for k in (
        "r", "alpha", "s", "beta", "log_likelihood", "customers", "converged")})

    def bg_risk(t):  # 1 - P(alive) + P(alive) (α+T)^(r+x) / (α+T+t)^(r+x)
        _, alive = expected_purchases_all(bg, t, x, t_x, T)
        return 1 - alive + alive * ((bg.alpha + T) / (bg.alpha + T + t)) ** (bg.r + x)

    def mbg_parts(p, T_):  # Batislam et al. (2007): drop-out also right after the first
        r, al, a, b = p
        head = gammaln(r + x) - gammaln(r) + r * np.log(al) + gammaln(a + b) + gammaln(
            b + x + 1) - gammaln(b) - gammaln(a + b + x + 1)
        return head, -(r + x) * np.log(al + T_), np.log(a) - np.log(b + x) - (r + x) * np.log(
            al + t_x)

    def mbg_nll(lp):
        head, alive, dead = mbg_parts(np.exp(lp), T_fit)
        return -np.sum(head + np.logaddexp(alive, dead))

    mbg = np.exp(minimize(mbg_nll, np.zeros(4), method="Nelder-Mead",
                          options={"maxiter": 20000, "maxfev": 20000, "fatol": 1e-9,
                                   "xatol": 1e-9}).x)

    def mbg_risk(t):
        _, now_alive, dead = mbg_parts(mbg, T)
        _, later_alive, _ = mbg_parts(mbg, T + t)
        return np.exp(np.logaddexp(later_alive, dead) - np.logaddexp(now_alive, dead))

    def mbg_expected(t):
        r, al, a, b = mbg
        alive = 1 / (1 + (a / (b + x)) * ((al + T) / (al + t_x)) ** (r + x))
        hyper = hyp2f1(r + x, b + x + 1, a + b + x, t / (al + T + t))
        return (a + b + x) / (a - 1) * (1 - hyper * ((al + T) / (al + T + t)) ** (r + x)) * alive

    def pareto_expected(t):
        r, al, s, be = pareto.r, pareto.alpha, pareto.s, pareto.beta
        from crmkit_plugins.predict.model import p_alive_all

        alive = p_alive_all(pareto, x, t_x, T)
        return (r + x) * (be + T) / ((al + T) * (s - 1)) * (
            1 - ((be + T) / (be + T + t)) ** (s - 1)) * alive

    # a recency-calibrated form: a logistic regression of churn on the Pareto/NBD risk
    # and log recency, fitted on an in-sample backtest (as of 1997-07-01, churn = no
    # purchase in July to September), applied as of 1997-10-01
    back_on = dt.date(1997, 7, 1)
    bx, btx, bT = histories(calibration, back_on - dt.timedelta(days=1), back_on)
    _, _, bT_fit = histories(calibration, back_on - dt.timedelta(days=1),
                             back_on - dt.timedelta(days=1))
    back_pareto = fit_pareto([History(c, int(bx[n]), btx[n], bT_fit[n], None)
                              for n, c in enumerate(ids)])
    back_days = (CALIBRATION_END - back_on).days + 1
    back_risk = churn_risk_all(back_pareto, back_days / 7, bx, btx, bT)
    back_recency = np.array([(back_on - max(d for d in calibration[c] if d < back_on)).days
                             for c in ids], dtype=float)
    back_churn = np.array([not any(back_on <= d <= CALIBRATION_END for d in calibration[c])
                           for c in ids], dtype=float)

    def features(p, rec):
        p = np.clip(p, 1e-6, 1 - 1e-6)
        return np.column_stack([np.ones_like(p), np.log(p / (1 - p)), np.log1p(rec)])

    def logistic_nll(w, f, y):
        z = f @ w
        return np.sum(np.logaddexp(0, z) - y * z)

    weights = minimize(logistic_nll, np.zeros(3), args=(features(back_risk, back_recency),
                                                        back_churn)).x
    rec = np.array([recency[c] for c in ids], dtype=float)

    def calibrated(t):
        z = features(churn_risk_all(pareto, t, x, t_x, T), rec) @ weights
        return 1 / (1 + np.exp(-z))

    # the aggregate forecast calibrated on the same backtest: expected / actual there
    back_bg = fit_bgnbd([History(c, int(bx[n]), btx[n], bT_fit[n], None)
                         for n, c in enumerate(ids)])
    back_expected = expected_purchases_all(back_bg, back_days / 7, bx, btx, bT)[0].sum()
    back_actual = sum(1 for c in ids for d in calibration[c] if back_on <= d)
    scale = back_actual / back_expected
    bg_expected = np.array([fit["customers"][c]["expected_purchases"] for c in ids])

    crmkit_set = [c for c in ids if stage[c] in ("at_risk", "lost")]
    n = len(crmkit_set)
    candidates = [
        ("days since last purchase (recency)", rec, None),
        ("BG/NBD, 90 days", bg_risk(quarter), bg_expected),
        ("BG/NBD, holdout (39 weeks)", bg_risk(horizon), None),
        ("MBG/NBD, 90 days", mbg_risk(quarter), mbg_expected(horizon)),
        ("MBG/NBD, holdout", mbg_risk(horizon), None),
        ("crmkit churn_risk (Pareto/NBD, 90 days+)", np.array([risk[c] for c in ids]),
         pareto_expected(horizon)),
        ("Pareto/NBD, 90 days", churn_risk_all(pareto, quarter, x, t_x, T), None),
        ("Pareto/NBD, holdout", churn_risk_all(pareto, horizon, x, t_x, T), None),
        ("Pareto/NBD + recency, backtest-calibrated", calibrated(quarter), None),
        (f"BG/NBD E[Y], backtest-calibrated (×{scale:.3f})", -bg_expected * scale,
         bg_expected * scale),
    ]
    total_actual = sum(1 for c in ids for d in days[c] if PREDICTED_ON < d <= HOLDOUT_END)
    print(f"\nchurned (no purchase {PREDICTED_ON + dt.timedelta(days=1)} to {HOLDOUT_END}): "
          f"{sum(churned.values())} of {len(ids)}; in the first 90 days: "
          f"{sum(churned_90.values())}")
    print(f"{'signal':46}{'AUC':>7}{'AUC 90d':>9}{f'top {n}':>9}{'forecast':>10}")
    found = {}
    for name, values, expected in candidates:
        score = dict(zip(ids, values.tolist(), strict=True))
        forecast = (f"{100 * (expected.sum() / total_actual - 1):+.1f} %"
                    if expected is not None else "")
        found[name] = (auc(score, churned), top_precision(score, churned, n))
        print(f"{name:46}{found[name][0]:>7.4f}{auc(score, churned_90):>9.4f}"
              f"{found[name][1]:>9.3f}{forecast:>10}")
    print(f"(holdout: {total_actual} actual repeat purchases; forecasts: the sum of each "
          "customer's expected purchases)")

    by_stage = collections.defaultdict(list)
    for c in ids:
        by_stage[stage[c]].append(churned[c])
    print("\nchurn by crmkit stage:  " + ";  ".join(
        f"{s} {len(by_stage[s])}: {100 * sum(by_stage[s]) / len(by_stage[s]):.1f} %"
        for s in ("active", "at_risk", "lost") if by_stage[s]))
    crmkit_precision = sum(churned[c] for c in crmkit_set) / n if n else float("nan")

    groups: dict[int, list[str]] = collections.defaultdict(list)
    for k, c in enumerate(ids):
        groups[min(int(x[k]), 7)].append(c)
    pareto_expected_h = dict(zip(ids, pareto_expected(horizon).tolist(), strict=True))
    print(f"\nholdout ({PREDICTED_ON + dt.timedelta(days=1)} to {HOLDOUT_END}) by calibration "
          "repeat purchases x (the paper's Figure 4)")
    print(f"{'x':>4}{'customers':>11}{'actual':>9}{'BG/NBD':>9}{'Pareto':>9}{'churn_risk':>12}"
          f"{'churned':>9}")
    for k in sorted(groups):
        cs = groups[k]
        bought = sum(sum(1 for d in days[c] if PREDICTED_ON < d <= HOLDOUT_END) for c in cs)
        print(f"{f'{k}+' if k == 7 else k:>4}{len(cs):>11}{bought / len(cs):>9.2f}"
              f"{sum(fit['customers'][c]['expected_purchases'] for c in cs) / len(cs):>9.2f}"
              f"{sum(pareto_expected_h[c] for c in cs) / len(cs):>9.2f}"
              f"{sum(risk[c] for c in cs) / len(cs):>12.3f}"
              f"{100 * sum(churned[c] for c in cs) / len(cs):>8.1f}%")
    total_bg = float(bg_expected.sum())
    print(f"total: {total_actual} actual, {total_bg:.0f} predicted (BG/NBD), "
          f"{sum(pareto_expected_h.values()):.0f} (Pareto/NBD) repeat purchases")

    recency_auc, recency_precision = found[candidates[0][0]]
    churn = [sum(by_stage[s]) / len(by_stage[s]) if by_stage[s] else float("nan")
             for s in ("active", "at_risk", "lost")]
    targets = [
        ("ROC AUC of churn_risk >= recency's", auc(risk, churned) >= recency_auc,
         f"{auc(risk, churned):.4f} vs {recency_auc:.4f}"),
        (f"at_risk+lost ({n}) at least as precise as recency's top {n}",
         crmkit_precision >= recency_precision,
         f"{crmkit_precision:.3f} vs {recency_precision:.3f}"),
        ("churn rising active -> at_risk -> lost", churn[0] < churn[1] < churn[2],
         " -> ".join(f"{100 * v:.1f} %" for v in churn)),
        ("aggregate holdout forecast within 5 % (BG/NBD)",
         abs(total_bg / total_actual - 1) <= 0.05,
         f"{100 * (total_bg / total_actual - 1):+.1f} %"),
    ]
    print("\ntargets")
    for name, ok, shown in targets:
        print(f"  {'met   ' if ok else 'MISSED'}  {name}: {shown}")
    return sum(not ok for _, ok, _ in targets)


if __name__ == "__main__":
    sys.exit(main())
