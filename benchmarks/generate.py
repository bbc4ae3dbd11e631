"""A synthetic workspace of any size, deterministic for a seed.

    python benchmarks/generate.py DIR --customers 10000 --interactions 100000

Customers have names with umlauts, emails, phones, addresses, birthdays, tags,
consent and some maintenance contracts; interactions are spread over three
years with a realistic mix of types (calls, emails, purchases with amounts and
items, quotes, services, feedback with scores, complaints, follow-ups), one per
file in interactions/<year>/<month>/ as `crmkit log` would write them.
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import shutil
from pathlib import Path

FIRST = ("Anna", "Jürgen", "Özlem", "Björn", "Lena", "Thomas", "Sabine", "Emily", "James",
         "Monika", "Klaus", "Julia", "Frank", "Ursula", "Michael", "Carina", "Eva", "Lukas")
LAST = ("Müller", "Weiß", "Yılmaz", "Schäfer", "Fischer", "Becker", "Hoffmann", "Clarke",
        "O'Connor", "Richter", "Neumann", "Schwarz", "Zimmermann", "Hartmann", "Lange")
CITIES = (("99423", "Weimar"), ("99425", "Weimar"), ("99084", "Erfurt"), ("07743", "Jena"),
          ("99510", "Apolda"))
TYPES = (("call", 30), ("email", 20), ("purchase", 20), ("visit", 6), ("quote", 6),
         ("service", 6), ("feedback", 5), ("complaint", 2), ("note", 3), ("meeting", 2))


def generate(root: Path, customers: int, interactions: int, seed: int = 42,
             start: dt.date = dt.date(2023, 11, 1), days: int = 3 * 365) -> None:
    rng = random.Random(seed)
    if root.exists():
        shutil.rmtree(root)
    (root / "customers").mkdir(parents=True)
    (root / "crmkit.yaml").write_text(
        "business: Synthetic GmbH\nsender: {name: Bench Mark, email: bench@example.com}\n"
        "locale: de\ncurrency: EUR\ntimezone: Europe/Berlin\n", encoding="utf-8")
    ids = []
    for n in range(customers):
        first, last = rng.choice(FIRST), rng.choice(LAST)
        cid = f"c{n:06d}"
        ids.append(cid)
        plz, city = rng.choice(CITIES)
        lines = [f"name: {first} {last}", f"email: {cid}@example.com",
                 f"phone: '+49 3643 {rng.randint(100000, 999999)}'",
                 f"address: {{street: Hauptstraße {rng.randint(1, 99)}, postal_code: '{plz}', "
                 f"city: {city}}}",
                 f"birthday: {rng.randint(1940, 2000)}-{rng.randint(1, 12):02d}-"
                 f"{rng.randint(1, 28):02d}",
                 f"tags: [{rng.choice(['weimar', 'erfurt', 'vip', 'gewerbe'])}]"]
        if rng.random() < 0.7:
            lines.append("consent: {email: true, since: 2023-01-01, how: web form}")
        if rng.random() < 0.3:
            lines.append("services:\n  - {name: Wartung, interval: 12 months, "
                         "start: 2023-06-01}")
        (root / "customers" / f"{cid}.yaml").write_text("\n".join(lines) + "\n",
                                                        encoding="utf-8")
    kinds = [k for k, weight in TYPES for _ in range(weight)]
    # Some customers are much more active than others.
    weights = [rng.paretovariate(1.5) for _ in ids]
    chosen = rng.choices(ids, weights=weights, k=interactions)
    for n, cid in enumerate(chosen):
        day = start + dt.timedelta(days=rng.randrange(days))
        kind = rng.choice(kinds)
        lines = [f"customer: {cid}", f"date: {day.isoformat()}", f"type: {kind}"]
        if kind in ("purchase", "quote"):
            lines += [f"amount: {rng.randint(20, 3000)}.{rng.randint(0, 99):02d}",
                      "items: [Thermostatventil]"]
        if kind == "feedback":
            lines.append(f"score: {rng.randint(0, 10)}")
        if kind in ("call", "email"):
            lines.append(f"direction: {rng.choice(['inbound', 'outbound'])}")
            lines.append("summary: Rückfrage zum Termin")
        if rng.random() < 0.03:
            lines.append(f"follow_up: {(day + dt.timedelta(days=14)).isoformat()}")
        folder = root / "interactions" / f"{day.year}" / f"{day.month:02d}"
        folder.mkdir(parents=True, exist_ok=True)
        (folder / f"{day.isoformat()}-{cid}-{kind}-{n}.yaml").write_text(
            "\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--customers", type=int, default=1000)
    parser.add_argument("--interactions", type=int, default=10000)
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    generate(args.root, args.customers, args.interactions, args.seed)
    print(f"wrote {args.customers} customers and {args.interactions} interactions "
          f"to {args.root}")


if __name__ == "__main__":
    main()
