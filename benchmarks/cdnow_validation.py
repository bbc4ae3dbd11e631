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
purchases, as the paper's Figure 4 does.  It exits 1 if a parameter differs at
two decimals.

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

    # Holdout: actual repeat purchases (distinct days) after the day of the prediction.
    days = collections.defaultdict(set)
    for cid, _, d, _, _ in rows:
        days[f"c{cid}"].add(dt.date(int(d[:4]), int(d[4:6]), int(d[6:])))
    groups: dict[int, list[tuple[float, int]]] = collections.defaultdict(list)
    for cid, prediction in fit["customers"].items():
        calibration = sorted(x for x in days[cid] if x <= CALIBRATION_END)
        actual = sum(1 for x in days[cid] if PREDICTED_ON < x <= HOLDOUT_END)
        groups[min(len(calibration) - 1, 7)].append((prediction["expected_purchases"], actual))
    print(f"\nholdout ({PREDICTED_ON + dt.timedelta(days=1)} to {HOLDOUT_END}): mean repeat "
          "purchases by calibration repeat purchases")
    print(f"{'x':>4}{'customers':>11}{'actual':>9}{'predicted':>11}")
    for x in sorted(groups):
        pairs = groups[x]
        actual = sum(a for _, a in pairs) / len(pairs)
        predicted = sum(p for p, _ in pairs) / len(pairs)
        label = f"{x}+" if x == 7 else str(x)
        print(f"{label:>4}{len(pairs):>11}{actual:>9.2f}{predicted:>11.2f}")
    total_actual = sum(a for pairs in groups.values() for _, a in pairs)
    total_predicted = sum(p for pairs in groups.values() for p, _ in pairs)
    print(f"total: {total_actual} actual, {total_predicted:.0f} predicted repeat purchases")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
