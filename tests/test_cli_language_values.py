"""`show` and `predict` say values as the terminal's language writes them (words for
types, channels and stages, its dates and numbers); JSON keeps the data; the churn
reason is the workspace's text (docs/translating.md).  Real `crmkit` processes."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from pathlib import Path

from conftest import CRMKIT

GERMAN = {"LANG": "de_DE.UTF-8"}
ENGLISH = {"LANG": "C"}


def crmkit_in(root: Path, language: dict[str, str], today: str, *args: str
              ) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    return subprocess.run([CRMKIT, "-w", root, "--today", today, *args], capture_output=True,
                          text=True, env={**env, **language, "CRMKIT_BACKGROUND": "0"})


SHOP = {
    "customers/anna.yaml": (
        "name: Anna Adler\nbirthday: 1980-03-07\nsource: referral\npreferred_channel: phone\n"
        "consent: {email: true, since: 2026-10-01, how: Formular}\n"),
    "interactions/2026.yaml": (
        "- {customer: anna, date: 2026-10-20, type: call, channel: phone, summary: Anfrage}\n"
        "- {customer: anna, date: 2026-11-03, type: purchase, channel: visit, amount: 1234.5,"
        " summary: Therme}\n"),
    "deals/anna-wartung.yaml": (
        "customer: anna\ntitle: Wartungsvertrag\nstage: qualified\nvalue: 300\n"
        "probability: 0.5\n"),
}


def test_show_says_types_channels_stages_and_dates_in_the_terminals_language(
        make_workspace):
    root = make_workspace(SHOP)  # an English workspace (locale: en)
    de = crmkit_in(root, GERMAN, "2026-11-23", "show", "anna")
    assert de.returncode == 0, de.stderr
    lines = de.stdout.splitlines()
    for line in ("Geburtstag:         07.03.1980", "Quelle:             Empfehlung",
                 "E-Mail-Einwilligung: ja, seit 01.10.2026 (Formular)",
                 "Bevorzugt:          Telefon", "Stand 23.11.2026",
                 "Kunde seit:         03.11.2026", "Letzter Kontakt:    03.11.2026",
                 "  anna-wartung: Wartungsvertrag [qualifiziert, 50\xa0%] 300,00\xa0€",
                 "  03.11.2026  Kauf (Besuch) — Therme [1.234,50\xa0€]",
                 "  20.10.2026  Anruf (Telefon) — Anfrage"):
        assert line in lines, (line, lines)
    # the first purchase 20 days ago: the stage "new" since that day, as a word
    [segments] = [line for line in lines if line.startswith("Segmente:")]
    assert "Lebenszyklus: neu (seit 03.11.2026)" in segments
    assert "lifecycle" not in segments and "=" not in segments

    en = crmkit_in(root, ENGLISH, "2026-11-23", "show", "anna")
    lines = en.stdout.splitlines()  # as before: the values as the files write them
    for line in ("Birthday:           1980-03-07", "Source:             referral",
                 "Prefers:            phone", "As of 2026-11-23",
                 "  anna-wartung: Wartungsvertrag [qualified, 50%] 300.00 EUR",
                 "  2026-11-03  purchase (visit) — Therme [1,234.50 EUR]",
                 "  2026-10-20  call (phone) — Anfrage"):
        assert line in lines, (line, lines)
    [segments] = [line for line in lines if line.startswith("Segments:")]
    assert "lifecycle=new (since 2026-11-03)" in segments

    # JSON is data: the same in any terminal
    data = [crmkit_in(root, language, "2026-11-23", "show", "anna", "--format", "json")
            for language in (GERMAN, ENGLISH)]
    assert data[0].stdout == data[1].stdout
    assert '"type": "purchase"' in data[0].stdout


def test_the_churn_reason_is_the_workspaces_text(make_workspace):
    """The reason is written for the business (the site, the win-back reminders, the
    label): a German terminal shows an English workspace's reason, under its own
    heading."""
    files = {"customers/bert.yaml": "name: Bert Bach\n",
             "interactions/2025.yaml": (
                 "- {customer: bert, date: 2025-01-10, type: purchase, amount: 100}\n"
                 "- {customer: bert, date: 2025-03-10, type: purchase, amount: 100}\n")}
    english_workspace = make_workspace(files)
    lines = crmkit_in(english_workspace, GERMAN, "2026-11-23", "show", "bert"
                      ).stdout.splitlines()
    [reason] = [line for line in lines if line.startswith("Abwanderungsgrund:")]
    assert reason.startswith("Abwanderungsgrund:  no purchase or service for 623 days; ")
    german_workspace = make_workspace(files, settings=(
        "business: T\nsender: {name: T, email: t@t.example}\nlocale: de\ncurrency: EUR\n"))
    lines = crmkit_in(german_workspace, ENGLISH, "2026-11-23", "show", "bert"
                      ).stdout.splitlines()
    [reason] = [line for line in lines if line.startswith("Churn reason:")]
    assert reason.startswith("Churn reason:       623 Tage ohne Kauf oder Wartung; ")


def _sales() -> dict[str, str]:
    """17 customers (13 buying again, some of them long gone): enough for BG/NBD to fit."""
    spec = [("a", 0, 30, 8, 1500), ("b", 10, 60, 4, 80), ("c", 20, 90, 2, 120),
            ("d", 5, 25, 3, 40), ("e", 40, 0, 1, 300), ("f", 15, 20, 2, 60),
            ("g", 3, 20, 12, 25), ("h", 60, 0, 1, 90), ("i", 30, 15, 2, 200),
            ("j", 50, 100, 2, 55), ("k", 7, 40, 5, 70), ("l", 25, 10, 2, 110),
            ("m", 12, 35, 3, 45), ("n", 80, 0, 1, 65), ("o", 2, 12, 4, 30),
            ("p", 100, 0, 1, 50), ("q", 9, 50, 2, 95)]
    files, rows = {}, []
    for cid, offset, gap, count, amount in spec:
        files[f"customers/{cid}.yaml"] = f"name: {cid.upper()} Person\n"
        first = dt.date(2025, 1, 1) + dt.timedelta(days=offset)
        rows.extend(f"- {{customer: {cid}, date: {first + dt.timedelta(days=gap * k)}, "
                    f"type: purchase, amount: {amount}}}\n" for k in range(count))
    files["interactions/sales.yaml"] = "".join(rows)
    return files


def _cells(text: str) -> list[list[str]]:
    return [line.split() for line in text.splitlines()]


def test_predict_says_its_numbers_in_the_terminals_format(make_workspace):
    root = make_workspace(_sales())
    de = crmkit_in(root, GERMAN, "2026-01-15", "predict")
    en = crmkit_in(root, ENGLISH, "2026-01-15", "predict")
    assert (de.returncode, en.returncode) == (0, 0), (de.stderr, en.stderr)
    de_lines, en_lines = de.stdout.splitlines(), en.stdout.splitlines()
    assert en_lines[0].startswith("BG/NBD on 17 customers: r=")
    assert de_lines[0].startswith("BG/NBD für 17 Kunden: r=")
    assert en_lines[2] == ("note: indicative only: 13 customers with repeat purchases, 50 "
                           "are needed before segments use the model")
    assert de_lines[2] == ("Hinweis: nur ein Anhaltspunkt: 13 Kunden mit "
                           "Wiederholungskäufen, 50 braucht es, bevor die Segmente das "
                           "Modell nutzen")
    header = en_lines.index("customer  P(alive)  purchases 365d  avg order EUR  CLV EUR")
    en_rows = _cells("\n".join(en_lines[header + 2:]))
    de_rows = _cells("\n".join(de_lines[header + 2:]))
    assert len(en_rows) == len(de_rows) == 17
    swap = str.maketrans({",": ".", ".": ","})
    for en_row, de_row in zip(en_rows, de_rows, strict=True):
        assert de_row == [en_row[0], *(cell.translate(swap) for cell in en_row[1:])]
    # customer a buys for 1,500.00 each time: the thousands as German groups them
    assert de_rows[0][0] == "a" and de_rows[0][3] == "1.500,00"
    assert en_rows[0][3] == "1,500.00"
    # JSON is data: the same in any terminal
    data = [crmkit_in(root, language, "2026-01-15", "predict", "--format", "json").stdout
            for language in (GERMAN, ENGLISH)]
    assert data[0] == data[1] and '"p_alive": ' in data[0]
