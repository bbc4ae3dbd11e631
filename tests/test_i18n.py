"""German and English throughout: the catalogues are complete and compiled, and what the
business reads (reports, reminders, the calendar) is in the workspace's language."""

from __future__ import annotations

import gettext
import io
import os
import re
import shutil
import stat
import subprocess
from pathlib import Path

import icalendar
from conftest import CRMKIT, EXAMPLE, REPO

import crmkit

LOCALE = REPO / "crmkit" / "locale"
LANGUAGES = ("de",)
PYBABEL = Path(CRMKIT).parent / "pybabel"


def problems(tmp: Path | None = None) -> list[str]:
    """What is wrong with the catalogues: a message in the sources (``pybabel extract``
    with babel.cfg) that a language's .po lacks or leaves untranslated or fuzzy, a
    translation with placeholders the message does not have, a .mo that does not hold
    exactly what its .po says (stale: compile with tools/translations.py)."""
    import tempfile

    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    found: list[str] = []
    with tempfile.TemporaryDirectory() as folder:
        pot = Path(folder) / "crmkit.pot"
        subprocess.run([PYBABEL, "-q", "extract", "-F", "babel.cfg", "-o", pot, "."],
                       cwd=REPO, check=True, capture_output=True)
        with open(pot, "rb") as handle:
            extracted = read_po(handle)
    for language in LANGUAGES:
        po_path = LOCALE / language / "LC_MESSAGES" / "crmkit.po"
        with open(po_path, "rb") as handle:
            catalogue = read_po(handle, locale=language)
        for message in extracted:
            if not message.id:
                continue
            shown = message.id if isinstance(message.id, str) else message.id[0]
            where = ", ".join(f"{f}" for f, _ in message.locations[:2])
            translated = catalogue.get(message.id, message.context)
            if translated is None:
                found.append(f"{language}: not in the .po: {shown!r} ({where})")
            elif not (translated.string if isinstance(translated.string, str)
                      else all(translated.string)):
                found.append(f"{language}: untranslated: {shown!r} ({where})")
            elif translated.fuzzy:
                found.append(f"{language}: fuzzy: {shown!r} ({where})")
        for message, errors in catalogue.check():
            for error in errors:
                found.append(f"{language}: {message.id!r}: {error}")
        compiled = io.BytesIO()
        write_mo(compiled, catalogue)
        compiled.seek(0)
        fresh = gettext.GNUTranslations(compiled)._catalog  # type: ignore[attr-defined]
        with open(po_path.with_suffix(".mo"), "rb") as handle:
            shipped = gettext.GNUTranslations(handle)._catalog  # type: ignore[attr-defined]
        if fresh != shipped:
            differ = sorted(str(k) for k in set(fresh) ^ set(shipped)
                            | {k for k in fresh if k in shipped and fresh[k] != shipped[k]})
            found.append(f"{language}: crmkit.mo is stale ({len(differ)} messages differ, "
                         f"e.g. {differ[:1]}): run tools/translations.py")
    return found


def test_every_message_has_a_german_translation_and_the_mo_is_current():
    assert problems() == []


#: The names babel's Python extractor takes messages from (its default keywords).
GETTEXT_CALLS = frozenset({"_", "gettext", "ngettext", "pgettext", "npgettext", "ugettext",
                           "ungettext", "dgettext", "dngettext", "N_"})


def messages_inside_f_strings(source: str) -> list[int]:
    """The lines of ``source`` where a gettext call with its message sits inside an
    f-string's braces: on Python 3.11 an f-string is one token to ``pybabel extract``,
    so such a message is never extracted and stays English (or is kept only as a
    vanished message)."""
    import ast

    lines = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.JoinedStr):
            continue
        for part in ast.walk(node):
            if isinstance(part, ast.Call) and any(  # a message written there (not _(name))
                    isinstance(a, ast.Constant) and isinstance(a.value, str)
                    for a in part.args):
                name = getattr(part.func, "id", None) or getattr(part.func, "attr", None)
                if name in GETTEXT_CALLS:
                    lines.append(part.lineno)
    return sorted(set(lines))


def test_no_message_hides_inside_an_f_string():
    assert messages_inside_f_strings('x = f"{t.gettext(\'or\')} y"\n') == [1]
    assert messages_inside_f_strings('either = t.gettext("or")\nx = f" {either} "\n') == []
    assert messages_inside_f_strings('x = f"{_(STATES[s])}"\n') == []  # marked with N_
    found = [f"{path.relative_to(REPO)}:{line}"
             for folder in ("crmkit", "plugins") for path in sorted((REPO / folder).rglob("*.py"))
             for line in messages_inside_f_strings(path.read_text(encoding="utf-8"))]
    assert found == []


def test_cldr_numbers_money_dates_and_plurals():
    import datetime as dt
    from decimal import Decimal

    de, en = crmkit.translations("de"), crmkit.translations("en")
    assert de.money(Decimal("1234.56"), "EUR") == "1.234,56\xa0€"
    assert en.money(Decimal("1234.56"), "EUR") == "€1,234.56"
    assert de.date(dt.date(2026, 11, 23)) == "23. November 2026"
    assert de.date(dt.date(2026, 11, 23), "medium") == "23.11.2026"
    assert en.date(dt.date(2026, 11, 23)) == "November 23, 2026"
    one, many = ("latest score per customer; %(num)d response",
                 "latest score per customer; %(num)d responses")
    assert de.ngettext(one, many, 1) % {"num": 1} == "letzte Bewertung je Kunde; 1 Antwort"
    assert de.ngettext(one, many, 2) % {"num": 2} == "letzte Bewertung je Kunde; 2 Antworten"
    assert de.percent(0.85) == "85\xa0%"
    # floats are kept by the whole percent they show, rounded as Babel rounds them (the
    # decimal text, half to even): 0.695 is 70 %, 0.125 is 12 %, -0.001 is -0 %
    assert [en.percent(x) for x in (0.695, 0.125, 0.135, -0.001, 0.6949999)] == [
        "70%", "12%", "14%", "-0%", "69%"]
    assert (en.percent(float("inf")), de.percent(float("-inf"))) == ("∞%", "-∞\xa0%")
    # an unknown or missing locale is English; de_DE.UTF-8 is German
    assert crmkit.translations(None).gettext("Overdue") == "Overdue"
    assert crmkit.translations("xx").money(1, "EUR") == "€1.00"
    assert crmkit.translations("de_DE.UTF-8").gettext("Overdue") == "Überfällig"
    assert crmkit.translations("de") is de  # read once per process


def test_terminal_locale():
    from crmkit.engine.i18n import terminal_locale

    assert terminal_locale({}) == "en"
    assert terminal_locale({"LANG": "C.UTF-8"}) == "en"
    assert terminal_locale({"LANG": "de_DE.UTF-8"}) == "de_DE"
    assert terminal_locale({"LANG": "en_US.UTF-8", "LC_ALL": "de_AT.UTF-8"}) == "de_AT"


FILES = {
    "customers/anna.yaml": "name: Anna Adler\nbirthday: 1980-11-28\nemail: a@example.de\n"
                           "consent: {email: {date: 2026-01-01, how: form}}\n",
    "customers/bert.yaml": "name: Bert Bach\n",
    "interactions/2026.yaml": """\
        - {customer: anna, date: 2026-11-02, type: purchase, amount: 1234.56, summary: Kessel}
        - {customer: anna, date: 2026-11-03, type: feedback, score: 9}
        - {customer: bert, date: 2025-01-10, type: purchase, amount: 100}
        - {customer: bert, date: 2025-02-10, type: purchase, amount: 100}
    """,
}


def build(root: Path, today: str = "2026-11-23") -> None:
    done = subprocess.run([CRMKIT, "-w", root, "--today", today, "build"],
                          capture_output=True, text=True,
                          env={**os.environ, "CRMKIT_BACKGROUND": "0"})
    assert done.returncode == 0, done.stderr


def test_a_german_workspace_reads_german(make_workspace):
    root = make_workspace(FILES, settings="business: Test GmbH\nlocale: de\ncurrency: EUR\n"
                                          "timezone: Europe/Berlin\n")
    build(root)
    weekly = (root / "out/reports/weekly.md").read_text()
    assert weekly.startswith("# Diese Woche: Test GmbH\n\nStand: 23. November 2026.\n")
    assert "**Geburtstage** (1)" in weekly
    assert "| 28.11.2026 | Anna Adler | Geburtstag von Anna Adler (46) | E-Mail |" in weekly
    dashboard = (root / "out/reports/dashboard.md").read_text()
    assert "| Umsatz, letzte 12 Monate | 1.234,56\xa0€ |" in dashboard
    assert "NPS +100 (letzte Bewertung je Kunde; 1 Antwort); ein Jahr zuvor –" in dashboard
    assert "| Offene Forderungen (nichts unbezahlt) | 0,00\xa0€ |" in dashboard
    assert "## Kundenbindungsrate" not in dashboard and "| Kundenbindungsrate |" in dashboard
    html = (root / "out/reports/dashboard.html").read_text()
    assert '<html lang="de">' in html and "<h2>ABC und Pareto</h2>" in html
    calendar = icalendar.Calendar.from_ical((root / "out/reminders.ics").read_bytes())
    assert str(calendar["x-wr-calname"]) == "Test GmbH: Erinnerungen"
    [birthday] = [e for e in calendar.walk("VEVENT") if "Geburtstag" in str(e["summary"])]
    assert str(birthday["description"]).splitlines() == [
        "geboren am 28.11.1980", "Kunde: anna", "ID: birthday/anna/2026-11-28",
        "Kanal: E-Mail"]
    md = (root / "out/reminders.md").read_text()
    assert md.startswith("# Erinnerungen, Stand 23. November 2026\n")
    assert "| 28.11.2026 | anna | Geburtstage | Geburtstag von Anna Adler (46) |" in md


#: English a German report must not contain (outside ids and code): the words of
#: every heading, label and reminder text crmkit writes.
ENGLISH = re.compile(r"\b(the|of|and|for|due|customers?|revenue|rate|week|overdue|nothing|"
                     r"reminders?|since|last|purchases?|open|deals?|risk|value|"
                     r"responses?|probability|dashboard|birthday|win|thank|stay|follow|"
                     r"generated|channel|kind|what|date|days?|months?|answer|as of|"
                     r"lead|lost|active|new|figures?|feedback|complaints?|none|never)\b",
                     re.IGNORECASE)
#: German a report in English must not contain (crmkit's words, not the user's).
GERMAN = re.compile(r"\b(Kunden?|fällig|Überfällig|Umsatz|Geburtstag|Geburtstage|Stand|"
                    r"Erinnerungen|gefährdet|Nichts|Rückmeldungen?|Wahrscheinlichkeit|"
                    r"Werktage?|zurückgewinnen|Kennzahlen?|verloren|Kanal|Betrag|"
                    r"Diese Woche|Übersicht|Dankeschöns|Wiedervorlagen)\b|\d,\d\d\xa0€")


def _readable(path: Path) -> str:
    """What a person reads in an output: text without markup, code, ids and styles."""
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".ics":
        calendar = icalendar.Calendar.from_ical(text)
        parts = [str(calendar["x-wr-calname"])]
        for event in calendar.walk("VEVENT"):
            parts.append(str(event["summary"]))
            parts += [line for line in str(event["description"]).splitlines()
                      if not line.startswith(("ID:", "id:", "Kunde:", "customer:"))]
        return "\n".join(parts)
    text = re.sub(r"<style>.*?</style>|<code>.*?</code>|`[^`]*`", " ", text, flags=re.S)
    return re.sub(r"<[^>]+>", " ", text)


def _example(tmp_path: Path, locale: str) -> Path:
    root = tmp_path / f"example-{locale}"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("out", ".crmkit"))
    settings = root / "crmkit.yaml"
    settings.write_text(re.sub(r"(?m)^locale: \w+$", f"locale: {locale}", settings.read_text()))
    build(root)
    return root


def _stock_outputs(root: Path) -> list[Path]:
    return [root / "out/reports" / f"{name}.{fmt}" for name in ("dashboard", "weekly")
            for fmt in ("html", "md")] + [root / "out/reminders.md", root / "out/reminders.ics"]


def test_the_example_workspace_in_german_has_no_english_left(tmp_path):
    root = _example(tmp_path, "de")
    left = {}
    for path in _stock_outputs(root):
        for line in _readable(path).splitlines():
            words = ENGLISH.findall(line)
            if words:
                left.setdefault(path.name, []).append((words, line.strip()[:120]))
    assert left == {}


def _users_texts(root: Path) -> list[str]:
    """Every text of the workspace's own files (names, summaries, playbook titles, ...),
    longest first: the user's words, which stay as written whatever the locale."""
    import yaml

    found: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, str) and len(value) >= 4:
            found.add(value)
        elif isinstance(value, dict):
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    for path in root.rglob("*.yaml"):
        if "out" not in path.relative_to(root).parts:
            walk(yaml.safe_load(path.read_text(encoding="utf-8")))
    return sorted(found, key=len, reverse=True)


def test_the_example_workspace_in_english_has_no_german_but_the_users(tmp_path):
    root = _example(tmp_path, "en")
    assert '<html lang="en">' in (root / "out/reports/weekly.html").read_text()
    users = _users_texts(root)
    left = {}
    for path in _stock_outputs(root):
        for line in _readable(path).splitlines():
            for text in users:  # the user's own words are not crmkit's German
                line = line.replace(text, " ")
            words = GERMAN.findall(line)
            if words:
                left.setdefault(path.name, []).append((words, line.strip()[:120]))
    assert left == {}


def test_outputs_are_readable_by_others_and_the_cache_is_not(make_workspace):
    """A web server serves the output folder: 0644 files in 0755 folders (umask 022);
    what crmkit keeps for itself (.crmkit/) stays 0600."""
    root = make_workspace(FILES)
    done = subprocess.run(["sh", "-c", 'umask 022 && exec "$0" "$@"', CRMKIT, "-w", root,
                           "--today", "2026-11-23", "build"], capture_output=True, text=True,
                          env={**os.environ, "CRMKIT_BACKGROUND": "0"})
    assert done.returncode == 0, done.stderr
    written = [p for p in (root / "out").rglob("*")]
    assert {p.name for p in written} >= {"reports", "weekly.html", "reminders.ics"}
    for path in written:
        mode = stat.S_IMODE(path.stat().st_mode)
        assert mode == (0o755 if path.is_dir() else 0o644), (path, oct(mode))
    kept = [p for p in (root / ".crmkit").rglob("*") if p.is_file() and p.name != ".gitignore"]
    assert kept and all(stat.S_IMODE(p.stat().st_mode) & 0o077 == 0 for p in kept)


# --- the CLI's own messages: the terminal's language ------------------------------------

CLI_FILES = {
    "customers/anna.yaml": "name: Anna Adler\nbirthday: 1980-11-28\n",
    "customers/bert.yaml": "name: Bert Bach\nbirthday: 1970-12-01\n",
    "interactions/2026.yaml": "- {customer: bert, date: 2026-01-10, type: purchase, "
                              "amount: 100}\n",
}


def crmkit_in(root: Path, language: dict[str, str], *args: str
              ) -> subprocess.CompletedProcess[str]:
    """``crmkit`` run as a user runs it, with the terminal's language variables
    ``language`` (the others unset)."""
    env = {k: v for k, v in os.environ.items()
           if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    return subprocess.run([CRMKIT, "-w", root, "--today", "2026-11-23", *args],
                          capture_output=True, text=True,
                          env={**env, **language, "CRMKIT_BACKGROUND": "0"})


GERMAN_TERMINAL = {"LANG": "de_DE.UTF-8"}
ENGLISH_TERMINAL = {"LANG": "C"}


def test_the_cli_speaks_the_terminals_language(make_workspace):
    """The workspace is English (``locale: en``): the reminder titles stay English; what
    the CLI itself says follows LANG."""
    root = make_workspace(CLI_FILES)
    de = crmkit_in(root, GERMAN_TERMINAL, "check")
    assert (de.returncode, de.stdout) == (
        0, "2 Kunden, 1 Interaktion, 0 Geschäfte: 0 Fehler, 0 Warnungen\n")
    en = crmkit_in(root, ENGLISH_TERMINAL, "check")
    assert (en.returncode, en.stdout) == (
        0, "2 customers, 1 interaction, 0 deals: 0 errors, 0 warnings\n")
    # the table's headings and the summary; the titles are the workspace's (English)
    de = crmkit_in(root, GERMAN_TERMINAL, "reminders", "--kind", "birthday")
    assert de.stdout.splitlines()[0].split() == ["fällig", "id", "Titel", "Kanal", "Prio",
                                                 "Status"]
    assert "Birthday of Anna Adler (46)" in de.stdout
    assert de.stderr == ("2 Erinnerungen (0 überfällig) bis 2026-12-23\n"
                         "als erledigt markieren: crmkit done ID; später: "
                         "crmkit snooze ID --for 1w\n")
    one = crmkit_in(root, GERMAN_TERMINAL, "reminders", "--kind", "birthday", "--customer",
                    "anna")
    assert one.stderr.startswith("1 Erinnerung (0 überfällig) bis 2026-12-23\n")
    en = crmkit_in(root, ENGLISH_TERMINAL, "reminders", "--kind", "birthday")
    assert en.stdout.splitlines()[0].split() == ["due", "id", "title", "channel", "prio",
                                                 "status"]
    assert en.stderr.startswith("2 reminders (0 overdue) up to 2026-12-23\n")
    one = crmkit_in(root, ENGLISH_TERMINAL, "reminders", "--kind", "birthday", "--customer",
                    "anna")
    assert one.stderr.startswith("1 reminder (0 overdue) up to 2026-12-23\n")


def test_cli_errors_and_did_you_mean_in_the_terminals_language(make_workspace):
    root = make_workspace(CLI_FILES)
    de = crmkit_in(root, GERMAN_TERMINAL, "log", "annaa", "-t", "call")
    assert (de.returncode, de.stderr) == (
        1, "Fehler: unbekannter Kunde 'annaa' (meinten Sie 'anna'?); siehe 'crmkit customers'\n")
    en = crmkit_in(root, ENGLISH_TERMINAL, "log", "annaa", "-t", "call")
    assert (en.returncode, en.stderr) == (
        1, "Error: unknown customer 'annaa' (did you mean 'anna'?); see 'crmkit customers'\n")
    # click's own words too: a mistyped option and a missing one
    de = crmkit_in(root, GERMAN_TERMINAL, "check", "--formt", "json")
    assert de.returncode == 2
    assert de.stderr.endswith("Fehler: Unbekannte Option '--formt'. Meinten Sie '--format'?\n")
    assert "Hilfe mit 'crmkit check --help'." in de.stderr
    de = crmkit_in(root, GERMAN_TERMINAL, "log", "anna")
    assert de.stderr.endswith("Fehler: Fehlende Option '-t' / '--type'.\n")
    en = crmkit_in(root, ENGLISH_TERMINAL, "log", "anna")
    assert en.stderr.endswith("Error: Missing option '-t' / '--type'.\n")
    de = crmkit_in(root, GERMAN_TERMINAL, "chek")
    assert de.stderr.endswith("Fehler: unbekannter Befehl 'chek' (meinten Sie 'check'?)\n")
    # a diagnostic stays English (editors and CI read it; the parse cache keeps it)
    (root / "customers/carl.yaml").write_text("name: Carl\nemial: c@example.de\n")
    (root / "interactions/typo.yaml").write_text("customer: annaa\ndate: 2026-11-02\n"
                                                 "type: call\n")
    de = crmkit_in(root, GERMAN_TERMINAL, "check")
    assert de.returncode == 1
    assert ("customers/carl.yaml:2:1: error: unknown field 'emial' in a customer "
            "(did you mean 'email'?)") in de.stdout
    assert ("interactions/typo.yaml:1:11: error: unknown customer 'annaa' "
            "(did you mean 'anna'?)") in de.stdout
    assert de.stdout.endswith(": 2 Fehler, 0 Warnungen\n")


def test_log_and_the_languages_order(make_workspace):
    """``log`` says what it wrote; LANGUAGE, LC_ALL, LC_MESSAGES and LANG are read in
    gettext's order, and ``C``/``POSIX`` or a language crmkit lacks is English."""
    root = make_workspace(CLI_FILES)
    de = crmkit_in(root, GERMAN_TERMINAL, "log", "anna", "-t", "call", "-m", "Rückruf")
    [written] = (root / "interactions").rglob("*call*.yaml")
    rel = written.relative_to(root).as_posix()
    assert (de.returncode, de.stdout) == (0, f"{rel} angelegt\n")
    for language, word in (({"LC_ALL": "de_AT.UTF-8", "LANG": "en_US.UTF-8"}, "Kunden"),
                           ({"LC_ALL": "C", "LANG": "de_DE.UTF-8"}, "customers"),
                           ({"LC_MESSAGES": "de_CH.UTF-8"}, "Kunden"),
                           ({"LANGUAGE": "de", "LANG": "en_GB.UTF-8"}, "Kunden"),
                           ({"LANG": "POSIX"}, "customers"), ({"LANG": "fr_FR.UTF-8"},
                                                              "customers"), ({}, "customers")):
        shown = crmkit_in(root, language, "check").stdout
        assert shown.startswith(f"2 {word}, 2 ")


def test_a_replayed_output_is_in_the_language_asked_for(make_workspace):
    """Read-only commands replay their output while nothing changed: the terminal's
    language is part of what decides that."""
    from conftest import age_files

    root = make_workspace(CLI_FILES)
    age_files(root)
    for _ in range(2):
        assert crmkit_in(root, GERMAN_TERMINAL, "check").stdout.startswith("2 Kunden")
        assert crmkit_in(root, ENGLISH_TERMINAL, "check").stdout.startswith("2 customers")


def test_clicks_words_are_still_clicks():
    """The messages of click crmkit's catalogue translates are click's own, word for
    word (a new click that changed one would show it in English again)."""
    import click

    from crmkit.cli import clickwords

    source = "".join(path.read_text(encoding="utf-8")
                     for path in Path(click.__file__).parent.glob("*.py"))
    assert [m for m in clickwords.MESSAGES if f'"{m}"' not in source] == []
    singular, plural = clickwords.plurals(1), clickwords.plurals(2)
    assert [m for m in singular + plural if f'"{m}"' not in source] == []
    de = crmkit.translations("de")
    assert de.gettext("Error: {message}") == "Fehler: {message}"
    assert de.ngettext("{value!r} is not {choice}.", "{value!r} is not one of {choices}.",
                       2) == "{value!r} ist nicht eines von {choices}."


def test_done_and_import_say_what_they_did_in_the_terminals_language(make_workspace):
    root = make_workspace(CLI_FILES)
    de = crmkit_in(root, GERMAN_TERMINAL, "done", "birthday/anna/2026-11-28")
    [record] = (root / "interactions").rglob("*-done-*.yaml")
    rel = record.relative_to(root).as_posix()
    assert (de.returncode, de.stdout) == (
        0, f"erledigt: birthday/anna/2026-11-28 (festgehalten in {rel})\n")
    again = crmkit_in(root, ENGLISH_TERMINAL, "done", "birthday/anna/2026-11-28")
    assert (again.returncode, again.stderr) == (
        1, f"Error: 'birthday/anna/2026-11-28' is settled already, in {rel}:1:1\n")
    (root / "people.csv").write_text("name,email\nCarla Christ,carla@example.de\n"
                                     "Dora Dietz,dora@example.de\n", encoding="utf-8")
    de = crmkit_in(root, GERMAN_TERMINAL, "import", "csv", str(root / "people.csv"))
    assert de.returncode == 0, de.stderr
    assert de.stdout.splitlines() == [
        "people.csv: 2 Zeilen (csv)",
        "  Zeile 2: neuer Kunde carla-christ (Carla Christ)",
        "  Zeile 3: neuer Kunde dora-dietz (Dora Dietz)",
        "2 neu, 0 bestehend (unverändert), 0 schon importiert, 0 ungültig",
        "Probelauf: nichts geschrieben; --apply legt die 2 neuen Dateien an"]
    en = crmkit_in(root, ENGLISH_TERMINAL, "import", "csv", str(root / "people.csv"))
    assert en.stdout.splitlines()[-1] == ("dry run: nothing written; --apply creates the "
                                          "2 new files")


#: A small English workspace for the commands' own lines (issue 18's review): bert bought
#: twice and is lost, anna bought a boiler (the playbook's trigger), carl too, and a
#: service stopped his run.
MIXED_FILES = {
    "customers/anna.yaml": "name: Anna Adler\nemail: anna@example.de\n",
    "customers/bert.yaml": "name: Bert Bach\n",
    "customers/carl.yaml": "name: Carl Christ\n",
    "interactions/2026.yaml": (
        "- {customer: bert, date: 2025-11-10, type: purchase, amount: 1200}\n"
        "- {customer: bert, date: 2026-01-10, type: purchase, amount: 53.5}\n"
        "- {customer: anna, date: 2026-11-02, type: purchase, amount: 80, "
        "summary: Neue Therme}\n"
        "- {customer: carl, date: 2026-11-01, type: purchase, amount: 90, summary: Therme}\n"
        "- {customer: carl, date: 2026-11-05, type: service, summary: Wartung}\n"),
    "playbooks/heating.yaml": (
        "title: After a new boiler\ntrigger:\n  type: purchase\n  text: [Therme]\n"
        "steps:\n  - {name: offer, after: 0 days, title: Offer maintenance}\n"
        "  - {name: insulation, after: 90 days, title: Offer insulation}\n"
        "stop:\n  - {type: service}\n"),
    "sales.csv": "customer,date,amount\nanna,2026-11-20,40\nnobody@example.de,2026-11-21,10\n"
                 "bert,2026-11-22,zwölf\n",
    "people.csv": "name,email\nDora Dietz,not-an-email\n",
    "dates.csv": "customer,date\nanna,2026-11-20\n",
}


def test_import_says_its_rows_in_the_terminals_language(make_workspace):
    """The rows' notes, problems and warnings are built in the terminal's language: no
    English half-sentence inside a German line; LANG=C as before."""
    root = make_workspace(MIXED_FILES)
    de = crmkit_in(root, GERMAN_TERMINAL, "import", "transactions", str(root / "sales.csv"))
    assert de.returncode == 1  # two rows were not imported
    assert de.stdout.splitlines()[1:4] == [
        "  Zeile 2: neu: Kauf von anna (nach ID anna)",
        "  Zeile 3: ungültig: kein Kunde passt zu 'nobody@example.de' (nach ID, E-Mail oder "
        "genauem Namen)",
        "  Zeile 4: ungültig: Betrag 'zwölf' ist keine Zahl"]
    de = crmkit_in(root, GERMAN_TERMINAL, "import", "csv", str(root / "people.csv"))
    assert de.stdout.splitlines()[1:3] == [
        "  Zeile 2: neuer Kunde dora-dietz (Dora Dietz)",
        "    Warnung: E-Mail 'not-an-email' ist keine E-Mail-Adresse, weggelassen"]
    en = crmkit_in(root, ENGLISH_TERMINAL, "import", "transactions", str(root / "sales.csv"))
    assert en.stdout.splitlines()[1:4] == [
        "  row 2: new purchase of anna (by id anna)",
        "  row 3: invalid: no customer matches 'nobody@example.de' (by id, email or exact "
        "name)",
        "  row 4: invalid: amount 'zwölf' is not a number"]
    en = crmkit_in(root, ENGLISH_TERMINAL, "import", "csv", str(root / "people.csv"))
    assert en.stdout.splitlines()[2] == (
        "    warning: email 'not-an-email' is not an email address, left out")
    de = crmkit_in(root, GERMAN_TERMINAL, "import", "transactions", str(root / "dates.csv"))
    assert (de.returncode, de.stderr) == (1, (
        "Fehler: dates.csv: keine Spalte für amount unter customer, date; mit --map "
        "'SPALTE=FELD' zuordnen\n"))
    en = crmkit_in(root, ENGLISH_TERMINAL, "import", "transactions", str(root / "dates.csv"))
    assert (en.returncode, en.stderr) == (1, (
        "Error: dates.csv: no column for amount among customer, date; map with --map "
        "'COLUMN=FIELD'\n"))


def test_segments_show_and_playbooks_in_the_terminals_language(make_workspace):
    root = make_workspace(MIXED_FILES)
    de = crmkit_in(root, GERMAN_TERMINAL, "segments")
    assert de.returncode == 0, de.stderr
    assert de.stdout.splitlines()[0].split() == [
        "Kunde", "Lebenszyklus", "ABC", "RFM", "Rückgewinnung", "Segmente"]
    assert de.stderr.splitlines() == [  # the stages as words; the model's numbers kept
        "3 Kunden: 2 neu, 1 verloren",
        "Lebenszyklus: das Abwanderungsrisiko aus den Abständen zwischen den Käufen dieses "
        "Arbeitsbereichs (Kunden mit Wiederholungskäufen: 1, das Modell braucht 50)"]
    en = crmkit_in(root, ENGLISH_TERMINAL, "segments")
    assert en.stdout.splitlines()[0].split() == [
        "customer", "lifecycle", "abc", "rfm", "win-back", "segments"]
    assert en.stderr.splitlines() == [
        "3 customers: 2 new, 1 lost",
        "lifecycle: the churn risk from this workspace's gaps between purchases (1 customers "
        "with repeat purchases, the model needs 50)"]

    de = crmkit_in(root, GERMAN_TERMINAL, "show", "bert")
    lines = de.stdout.splitlines()
    assert "Umsatz:             1.253,50\xa0€" in lines  # CLDR's, as the reports have it
    assert any(line.startswith("Abwanderungsgrund:  ") for line in lines)
    assert "Churn reason" not in de.stdout
    en = crmkit_in(root, ENGLISH_TERMINAL, "show", "bert").stdout.splitlines()
    assert "Revenue:            1,253.50 EUR" in en
    assert any(line.startswith("Churn reason:       ") for line in en)

    de = crmkit_in(root, GERMAN_TERMINAL, "playbooks")
    assert de.returncode == 0, de.stderr
    rows = [line.split("  ") for line in de.stdout.splitlines()]
    cells = [[cell.strip() for cell in row if cell.strip()] for row in rows]
    assert cells[2] == ["heating", "Kauf mit 'Therme'", "offer +0 Tage, insulation +90 Tage",
                        "bei jedem Auslöser"]
    assert cells[6] == ["heating", "anna", "2026-11-02", "1/2 offer", "2026-11-02",
                        "überfällig"]
    assert cells[7] == ["heating", "carl", "2026-11-01", "beendet: Wartung am 2026-11-05 "
                        "(Wartung)"]
    assert de.stderr == "1 Playbook, 2 Durchläufe: 1 überfällig, 1 beendet\n"
    for english in ("mentioning", "days", "each trigger", "overdue", "stopped", "purchase"):
        assert english not in de.stdout + de.stderr
    en = crmkit_in(root, ENGLISH_TERMINAL, "playbooks")
    assert "purchase mentioning 'Therme'  offer +0 days, insulation +90 days  each trigger" \
        in en.stdout
    assert "stopped: service on 2026-11-05 (Wartung)" in en.stdout
    assert en.stderr == "1 playbook, 2 runs: 1 overdue, 1 stopped\n"
    # JSON keeps the data's English words in any terminal
    data = crmkit_in(root, GERMAN_TERMINAL, "playbooks", "--format", "json")
    [playbook] = __import__("json").loads(data.stdout)
    assert (playbook["trigger"], playbook["repeat"]) == ("purchase mentioning 'Therme'",
                                                         "each trigger")
    assert [r["status"] for r in playbook["runs"]] == [
        "overdue", "stopped: service on 2026-11-05 (Wartung)"]
