"""`crmkit merge KEEP OTHER`, customer aliases, and likely duplicate purchases."""

from __future__ import annotations

import datetime as dt
import os
import subprocess
from decimal import Decimal

import pytest
import yaml
from conftest import CRMKIT

from crmkit import App, CrmkitError

TODAY = "2026-11-23"

ANNA = """\
# Anna, since 2023
name: Anna Müller
email: anna@example.de
phone: +49 3643 812345
tags: [weimar]
birthday: 1978-12-03
services:
- {name: Wartung, interval: 12 months, start: 2023-12-01}
fields: {kundennummer: 7}
"""
ANNA_OLD = """\
name: A. Mueller
emails: [anna@example.de, anna.m@example.org]
phones: [03643 812345, 0171 5550000]
tags: [weimar, vip]
birthday: 1978-12-04
company: Müller Design
services:
- {name: Solar, interval: 2 years}
fields: {kundennummer: 9, newsletter: ja}
"""
FILES = {
    "customers/anna.yaml": ANNA,
    "customers/anna-old.yaml": ANNA_OLD,
    "customers/bert.yaml": "name: Bert\nreferred_by: anna-old  # at the fair\n",
    "interactions/2026/2026-03-01-anna-old-purchase.yaml":
        "# till import\ncustomer: anna-old\ndate: 2026-03-01\ntype: purchase\namount: 100\n",
    "interactions/2026/2026-04-01-anna-old-done.yaml":
        "customer: 'anna-old'\ndate: 2026-04-01\ntype: done\n"
        "resolves: [thank_you/anna-old/2026-03-02]\n",
    "interactions/2026/phone-log.yaml":
        "- customer: bert\n  date: 2026-05-01\n  type: call\n  summary: asked about anna-old\n"
        "- customer: anna-old   # she called\n  date: 2026-05-02\n  type: call\n",
    "deals/anna-solar.yaml": "customer: anna-old\ntitle: Solar\nstage: proposal\nvalue: 9000\n",
}


def _crmkit(root, *args):
    env = {**os.environ, "CRMKIT_BACKGROUND": "0"}
    return subprocess.run([CRMKIT, "-w", root, "--today", TODAY, *args], capture_output=True,
                          text=True, env=env, timeout=120)


def _texts(root):
    return {p.relative_to(root).as_posix(): p.read_text(encoding="utf-8")
            for p in sorted(root.rglob("*.yaml")) if ".crmkit" not in p.parts}


def test_the_plan_changes_nothing_and_apply_merges_everything(make_workspace):
    root = make_workspace(FILES)
    before = _texts(root)
    plan = _crmkit(root, "merge", "anna", "anna-old")
    assert plan.returncode == 0, plan.stderr
    assert plan.stdout.splitlines() == [
        "Merging anna-old (A. Mueller) into anna (Anna Müller):",
        "  edit   customers/bert.yaml (referred_by: anna-old -> anna)",
        "  edit   interactions/2026/2026-03-01-anna-old-purchase.yaml (customer: anna-old -> "
        "anna)",
        "  edit   interactions/2026/2026-04-01-anna-old-done.yaml (customer: anna-old -> anna)",
        "  edit   interactions/2026/phone-log.yaml (customer: anna-old -> anna)",
        "  edit   deals/anna-solar.yaml (customer: anna-old -> anna)",
        "  edit   customers/anna.yaml (adds from anna-old: email anna.m@example.org; "
        "phone 0171 5550000; tag vip; service Solar; company; fields.newsletter; "
        "aliases: [anna-old])",
        "  delete customers/anna-old.yaml (anna-old's customer file, last)",
        "  differs: name: anna's 'Anna Müller' kept, anna-old had 'A. Mueller'",
        "  differs: birthday: anna's 1978-12-03 kept, anna-old had 1978-12-04",
        "  differs: fields.kundennummer: anna's 7 kept, anna-old had 9",
        "dry run: nothing changed; --apply runs the 7 steps",
    ]
    assert _texts(root) == before

    applied = _crmkit(root, "merge", "anna", "anna-old", "--apply")
    assert applied.returncode == 0, applied.stderr
    assert applied.stdout.splitlines()[-1] == (
        "merged anna-old into anna: 6 files edited, 1 deleted; records naming anna-old "
        "(from other clones too) are now anna's")
    after = _texts(root)
    assert "customers/anna-old.yaml" not in after
    # only the customer lines changed; comments, quoting and other entries as they were
    assert after["interactions/2026/phone-log.yaml"] == before[
        "interactions/2026/phone-log.yaml"].replace("customer: anna-old   #",
                                                    "customer: anna   #")
    assert after["interactions/2026/2026-04-01-anna-old-done.yaml"] == (
        "customer: 'anna'\ndate: 2026-04-01\ntype: done\nresolves: [thank_you/anna/2026-03-02]\n")
    assert after["customers/bert.yaml"] == "name: Bert\nreferred_by: anna  # at the fair\n"
    assert after["deals/anna-solar.yaml"].startswith("customer: anna\ntitle: Solar\n")
    anna_text = after["customers/anna.yaml"]
    assert anna_text.startswith("# Anna, since 2023\nname: Anna Müller\nemails:\n")
    assert yaml.safe_load(anna_text) == {
        "name": "Anna Müller", "emails": ["anna@example.de", "anna.m@example.org"],
        "phones": ["+49 3643 812345", "0171 5550000"], "tags": ["weimar", "vip"],
        "birthday": dt.date(1978, 12, 3), "company": "Müller Design",
        "services": [{"name": "Wartung", "interval": "12 months",
                      "start": dt.date(2023, 12, 1)},
                     {"name": "Solar", "interval": "2 years"}],
        "fields": {"kundennummer": 7, "newsletter": "ja"}, "aliases": ["anna-old"]}
    check = _crmkit(root, "check")
    assert check.returncode == 0, check.stdout
    app = App(root, dt.date(2026, 11, 23))
    anna = app.customer("anna")
    assert [i.date.isoformat() for i in anna.history] == ["2026-03-01", "2026-04-01",
                                                         "2026-05-02"]
    assert anna.derived.revenue == Decimal(100)
    assert [d.title for d in app.workspace.deals_of("anna")] == ["Solar"]
    again = _crmkit(root, "merge", "anna", "anna-old", "--apply")
    assert again.returncode == 0
    assert again.stdout == "anna-old is already merged into anna (an alias of it): nothing to do\n"


def test_records_naming_an_alias_belong_to_the_kept_customer(make_workspace):
    root = make_workspace({
        "customers/anna.yaml": "name: Anna\naliases: [anna-old]\n",
        "customers/bert.yaml": "name: Bert\nreferred_by: anna-old\n",
        "interactions/x.yaml": "customer: anna-old\ndate: 2026-05-01\ntype: purchase\n"
                               "amount: 50\n",
        "deals/d.yaml": "customer: anna-old\ntitle: Bad\nstage: open\nvalue: 10\n",
    })
    assert _crmkit(root, "check").returncode == 0
    ws = App(root, dt.date(2026, 11, 23)).workspace
    assert [i.customer for i in ws.by_customer["anna"]] == ["anna"]
    assert ws.deals["d"].customer == "anna" and ws.customers["bert"].referred_by == "anna"
    # a command given the former id says whom it became (not "unknown customer")
    shown = _crmkit(root, "show", "anna-old")
    assert shown.returncode == 1
    assert "'anna-old' was merged into 'anna' (its 'aliases'): use 'anna'" in shown.stderr
    # an alias that is a customer's id is an error, and links nothing
    (root / "customers/anna-old.yaml").write_text("name: Old Anna\n")
    check = _crmkit(root, "check")
    assert check.returncode == 1
    assert ("customers/anna.yaml:2:10: error: alias 'anna-old' is an existing customer id "
            "(customers/anna-old.yaml): finish the merge ('crmkit merge anna anna-old') or "
            "remove the alias") in check.stdout
    # and once it is gone again, the incremental run links the records as a full load does
    (root / "customers/anna-old.yaml").unlink()
    assert _crmkit(root, "check").returncode == 0
    (root / "customers/bert.yaml").write_text("name: Bert\naliases: [anna-old]\n")
    clash = _crmkit(root, "check")
    assert "alias 'anna-old' is also an alias of 'anna'" in clash.stdout


@pytest.mark.parametrize("text", ["aliases: [anna]\n", "aliases: [Not An Id]\n"])
def test_an_alias_must_be_another_valid_id(make_workspace, text):
    root = make_workspace({"customers/anna.yaml": "name: Anna\n" + text})
    check = _crmkit(root, "check")
    assert check.returncode == 1 and "is not another customer id" in check.stdout


def test_a_file_crmkit_cannot_edit_safely_stops_the_plan(make_workspace):
    root = make_workspace({
        **FILES,
        "interactions/2026/flow.yaml": "{customer: anna-old, date: 2026-06-01, type: call}\n",
    })
    before = _texts(root)
    result = _crmkit(root, "merge", "anna", "anna-old", "--apply")
    assert result.returncode == 1
    assert ("  by hand: interactions/2026/flow.yaml: cannot re-point it safely (unusual "
            "layout, or YAML anchors): write 'customer: anna' by hand") in result.stdout
    assert "nothing was changed" in result.stderr
    assert _texts(root) == before


def test_the_plan_speaks_the_terminals_language(make_workspace):
    root = make_workspace({
        "customers/anna.yaml": "name: Anna Müller\nemail: anna@example.de\nsource: referral\n"
                               "consent: {email: true, since: 2024-01-01, how: mündlich}\n"
                               "fields: {kundennummer: 7}\n",
        "customers/anna-old.yaml": "name: A. Mueller\nemails: [anna.m@example.org, "
                                   "anna@web.example]\nphone: 0171 5550000\n"
                                   "tags: [vip, kurs]\nservices:\n"
                                   "- {name: Solar, interval: 2 years}\nsource: fair\n"
                                   "consent: {email: false, since: 2025-02-01, how: Abmeldung}\n"
                                   "fields: {kundennummer: 9}\n",
        "interactions/a.yaml": "customer: anna-old\ndate: 2026-03-01\ntype: call\n",
        "interactions/broken.yaml": "customer: anna-old\ndate: [2026-04-01\n",
    })

    def merge(language, *args):
        return subprocess.run([CRMKIT, "-w", root, "--today", TODAY, "merge", "anna",
                               "anna-old", *args], capture_output=True, text=True,
                              timeout=120, env={**os.environ, "CRMKIT_BACKGROUND": "0",
                                                "LANG": language})

    german = merge("de_DE.UTF-8")
    assert german.returncode == 0, german.stderr
    assert german.stdout.splitlines() == [
        "Zusammenführen von anna-old (A. Mueller) in anna (Anna Müller):",
        "  ändern  interactions/a.yaml (customer: anna-old -> anna)",
        "  ändern  customers/anna.yaml (ergänzt aus anna-old: E-Mails anna.m@example.org, "
        "anna@web.example; Telefonnummer 0171 5550000; Schlagwörter vip, kurs; Wartung Solar; "
        "consent {email: false, since: 2025-02-01, how: Abmeldung}; aliases: [anna-old])",
        "  löschen customers/anna-old.yaml (Kundendatei von anna-old, zuletzt)",
        "  abweichend:   wie sie uns gefunden haben: source 'referral' von anna bleibt, "
        "anna-old hatte source 'fair'",
        "  abweichend:   name: 'Anna Müller' von anna bleibt, anna-old hatte 'A. Mueller'",
        "  abweichend:   fields.kundennummer: 7 von anna bleibt, anna-old hatte 9",
        "  Einwilligung: anna-old hat E-Mails abgelehnt (2025-02-01, Abmeldung), anna hatte "
        "eingewilligt (2024-01-01, mündlich): die Ablehnung bleibt, die strengere Wahl",
        "  belassen:     interactions/broken.yaml: kein gültiges YAML, bleibt unverändert (der "
        "Alias verknüpft die Datei, sobald sie korrigiert ist)",
        "Probelauf: nichts geändert; --apply führt die 3 Schritte aus",
    ]
    english = merge("C")
    assert english.returncode == 0, english.stderr
    assert english.stdout.splitlines()[2:5] == [
        "  edit   customers/anna.yaml (adds from anna-old: emails anna.m@example.org, "
        "anna@web.example; phone 0171 5550000; tags vip, kurs; service Solar; "
        "consent {email: false, since: 2025-02-01, how: Abmeldung}; aliases: [anna-old])",
        "  delete customers/anna-old.yaml (anna-old's customer file, last)",
        "  differs: how they found us: anna's source 'referral' kept, anna-old had "
        "source 'fair'",
    ]
    assert english.stdout.splitlines()[-2] == (
        "  left:    interactions/broken.yaml: not valid YAML, left as it is (the alias links "
        "it once it is fixed)")
    # a file it cannot re-point: said in German, and nothing is changed
    (root / "interactions/flow.yaml").write_text("- {customer: anna-old, date: 2026-06-01, "
                                                 "type: call}\n")
    before = _texts(root)
    stopped = merge("de_DE.UTF-8", "--apply")
    assert stopped.returncode == 1
    assert ("  von Hand:     interactions/flow.yaml: lässt sich nicht sicher umstellen "
            "(ungewöhnliches Layout oder YAML-Anker): 'customer: anna' von Hand eintragen"
            ) in stopped.stdout.splitlines()
    assert stopped.stderr == ("Fehler: 1 Datei kann crmkit nicht sicher ändern; nichts wurde "
                              "geändert\n")
    assert _texts(root) == before


def test_an_interrupted_merge_finishes_when_run_again(make_workspace):
    from crmkit_plugins.people import merging

    root = make_workspace(FILES)
    app = App(root, dt.date(2026, 11, 23))
    plan = merging.plan_merge(app, "anna", "anna-old")
    # someone edits a file after the plan was made: that step stops the run
    deal = root / "deals/anna-solar.yaml"
    deal.write_text(deal.read_text() + "notes: changed meanwhile\n")
    with pytest.raises(CrmkitError, match=r"could not edit deals/anna-solar.yaml: it changed "
                                          r"since the plan was made. 4 of 7 steps done"):
        merging.apply(app, plan)
    assert (root / "customers/anna-old.yaml").exists()  # last, so nothing is lost track of
    half_way = _crmkit(root, "check").stdout.splitlines()  # both exist, all linked
    assert [line for line in half_way if "error:" in line] == [
        "customers/anna-old.yaml:2:9: error: duplicate customer: 'anna' has the same email "
        "'anna@example.de'"]  # as before the merge
    finished = _crmkit(root, "merge", "anna", "anna-old", "--apply")
    assert finished.returncode == 0, finished.stdout + finished.stderr
    assert "notes: changed meanwhile" in deal.read_text()
    assert deal.read_text().startswith("customer: anna\n")
    assert not (root / "customers/anna-old.yaml").exists()
    assert _crmkit(root, "check").returncode == 0


def _git(cwd, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "T", "GIT_AUTHOR_EMAIL": "t@example.org",
           "GIT_COMMITTER_NAME": "T", "GIT_COMMITTER_EMAIL": "t@example.org"}
    return subprocess.run(["git", "-C", str(cwd), *args], check=True, capture_output=True,
                          text=True, env=env)


def test_a_clone_that_still_logs_for_the_merged_customer_links_to_the_kept_one(
        make_workspace, tmp_path):
    origin = make_workspace(FILES)
    (origin / ".gitignore").write_text(".crmkit/\n")
    _git(origin, "init", "-q", "-b", "main")
    _git(origin, "add", "-A")
    _git(origin, "commit", "-q", "-m", "start")
    shared, one, two = tmp_path / "shared.git", tmp_path / "one", tmp_path / "two"
    _git(tmp_path, "clone", "-q", "--bare", str(origin), str(shared))
    _git(tmp_path, "clone", "-q", str(shared), str(one))
    _git(tmp_path, "clone", "-q", str(shared), str(two))
    # clone one merges; clone two, not knowing, logs a purchase for anna-old
    assert _crmkit(one, "merge", "anna", "anna-old", "--apply").returncode == 0
    _git(one, "add", "-A")
    _git(one, "commit", "-q", "-m", "merge anna-old into anna")
    _git(one, "push", "-q", "origin", "HEAD:main")
    logged = _crmkit(two, "log", "anna-old", "-t", "purchase", "--amount", "1.600,00",
                     "--date", "2026-11-20")
    assert logged.returncode == 0, logged.stderr
    _git(two, "add", "-A")
    _git(two, "commit", "-q", "-m", "purchase")
    _git(two, "pull", "-q", "--no-rebase", "origin", "main")
    check = _crmkit(two, "check")
    assert check.returncode == 0, check.stdout
    anna = App(two, dt.date(2026, 11, 23)).customer("anna")
    assert anna.derived.revenue == Decimal(1700)
    assert not (two / "customers/anna-old.yaml").exists()


def test_the_same_purchase_logged_twice_is_a_warning(make_workspace):
    def purchase(day, amount=49.9):
        return f"customer: anna\ndate: 2026-11-{day:02d}\ntype: purchase\namount: {amount}\n"

    root = make_workspace({
        "customers/anna.yaml": "name: Anna\n",
        "interactions/a1.yaml": purchase(2),
        "interactions/a2.yaml": purchase(5),   # 3 days later: reported
        "interactions/a3.yaml": purchase(20),  # 15 days later: a new purchase
        "interactions/a4.yaml": purchase(21, 12),  # another amount
        "interactions/list.yaml": "- " + purchase(9).replace("\n", "\n  ").rstrip() + "\n"
                                  "- " + purchase(9).replace("\n", "\n  ").rstrip() + "\n",
    })
    check = _crmkit(root, "check")
    warnings = [line for line in check.stdout.splitlines() if "duplicate purchase" in line]
    assert warnings == [
        "interactions/a2.yaml:4:9: warning: possible duplicate purchase: the same amount "
        "49.9 on 2026-11-02 in interactions/a1.yaml (same purchase logged twice? delete one "
        "file)"]
    (root / "crmkit.yaml").write_text((root / "crmkit.yaml").read_text()
                                      + "checks:\n  duplicate_purchases:\n    days: 2\n")
    assert "duplicate purchase" not in _crmkit(root, "check").stdout
