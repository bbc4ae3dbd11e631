"""Data protection: erasure that finds everything and can be finished after a failure,
access requests that hold everything, and no personal data left behind by a killed run.

The basic export and forget cases are in tests/test_import_export.py."""

import json
import os
import signal
import subprocess
import time

import pytest
from conftest import CRMKIT, DEFAULT_SETTINGS

TODAY = "2026-11-23"


# --- a killed import ---------------------------------------------------------------------


def record_folder_leftovers(root):
    """Every file below the record folders that is not a complete record file."""
    found = []
    for folder in ("customers", "interactions"):
        for path in (root / folder).rglob("*"):
            if path.is_file() and (path.name.startswith(".") or path.suffix != ".yaml"):
                found.append(path)
    return found


def letters(n):
    """``n`` as three letters: names that no duplicate check takes for one person."""
    return "".join(chr(ord("a") + n // 26 ** k % 26) for k in range(3)).capitalize()


def test_import_killed_mid_run_leaves_no_temporary_file(tmp_path):
    """A real ``crmkit import --apply``, killed with SIGKILL while it writes: no
    temporary file (with a person's data) stays, and every file it made is complete."""
    root = tmp_path / "ws"
    (root / "customers").mkdir(parents=True)
    (root / "crmkit.yaml").write_text(DEFAULT_SETTINGS, encoding="utf-8")
    rows = ["name;email;phone"] + [f"Anna {letters(n)}mann;anna{n:04d}@example.de;"
                                   f"+49 3643 {n:06d}" for n in range(3000)]
    source = tmp_path / "people.csv"
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    env = {**os.environ, "CRMKIT_BACKGROUND": "0"}
    process = subprocess.Popen([CRMKIT, "-w", root, "--today", TODAY, "import", "csv", source,
                                "--apply"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    seen_temporary = False
    try:
        # Kill it the moment a temporary file shows once it has written a few files (the
        # window of the old code), else once it has written a few hundred.
        while time.monotonic() < deadline and process.poll() is None:
            names = os.listdir(root / "customers")
            if len(names) > 5 and any(n.endswith(".tmp") for n in names):
                seen_temporary = True
                break
            if len(names) >= 300:
                break
        assert process.poll() is None, process.stderr.read().decode()
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    made = sorted((root / "customers").glob("*.yaml"))
    assert made, "killed before it wrote anything"
    assert record_folder_leftovers(root) == [], seen_temporary
    for path in made:  # complete files only
        text = path.read_text(encoding="utf-8")
        assert text.startswith("name: Anna ") and "import_id:" in text, path


# --- forget: everything, by link and by content ------------------------------------------

CONSENT = "consent: {email: true, since: 2024-01-01, how: web form}\n"
ANNA = ("name: Anna Berg\nemail: anna@example.de\nphone: +49 3643 812345\n" + CONSENT
        + "birthday: 1980-11-25\n")


def holding(root, *needles):
    """Every file below ``root`` (but .git) whose bytes contain one of ``needles``."""
    found = []
    for path in sorted(root.rglob("*")):
        if path.is_file() and ".git" not in path.relative_to(root).parts:
            data = path.read_bytes()
            if any(n.encode() in data for n in needles):
                found.append(path.relative_to(root).as_posix())
    return found


def snapshot(root):
    """The workspace's files (not crmkit's caches, which any command may write)."""
    return {p.relative_to(root).as_posix(): p.read_bytes()
            for p in sorted(root.rglob("*")) if p.is_file()
            and p.relative_to(root).parts[0] != ".crmkit"}


def test_forget_finds_their_records_that_fail_validation(make_workspace, run):
    """Records of theirs with a bad date, broken YAML or an unknown type, a deal with a bad
    value, a temporary file a killed run left: all found and gone; a customer whose id
    merely starts with theirs ('anna-maria') is someone else."""
    root = make_workspace({
        "customers/anna.yaml": ANNA,
        "customers/anna-maria.yaml": "name: Anna Maria\nreferred_by: anna\n",
        "customers/bert.yaml": "name: Bert\nreferred_by: anna-maria\n",
        "interactions/bad-date.yaml": "customer: anna\ndate: 2026-13-01\ntype: call\n",
        "interactions/broken.yaml": "customer: anna\ndate: 2026-01-02\nsummary: [unclosed\n",
        "interactions/odd-type.yaml": "customer: anna\ndate: 2026-01-03\ntype: seance\n",
        "interactions/log.yaml": "- {customer: bert, date: 2026-01-02, type: call}\n"
                                 "- customer: anna\n  date: 2026-02-30\n  type: call\n"
                                 "- {customer: anna-maria, date: 2026-01-04, type: call}\n",
        "deals/bath.yaml": "customer: anna\ntitle: Bath\nvalue: lots\n",
        "customers/.anna.yaml.k2x9q0ab.tmp": ANNA,
    })
    before = run("-w", root, "--today", TODAY, "check")
    assert before.exit_code == 1  # the invalid records are errors
    result = run("-w", root, "--today", TODAY, "privacy", "forget", "anna", "--yes")
    assert result.exit_code == 0, result.output
    assert holding(root, "anna@example.de", "812345", "Anna Berg", "anna\n") == []
    assert result.stdout.splitlines()[:11] == [
        "Erasing anna (Anna Berg):",
        "  edit   customers/anna-maria.yaml ('referred_by: anna' removed)",
        "  edit   interactions/log.yaml (1 entry cut out, 2 of other customers kept)",
        "  delete customers/.anna.yaml.k2x9q0ab.tmp (crmkit's own copy)",
        "  clear  .crmkit/cache/ (crmkit's caches: copies of what was read and printed)",
        "  delete deals/bath.yaml (their deal)",
        "  delete interactions/bad-date.yaml (their interactions)",
        "  delete interactions/broken.yaml (their interactions; not valid YAML)",
        "  delete interactions/odd-type.yaml (their interactions)",
        "  delete customers/anna.yaml (their customer file, last)",
        "erased anna: 6 files deleted, 2 edited, 0 generated files deleted; crmkit's "
        "caches cleared",
    ]
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.yaml")) == [
        "crmkit.yaml", "customers/anna-maria.yaml", "customers/bert.yaml",
        "interactions/log.yaml"]
    assert (root / "customers/bert.yaml").read_text() == "name: Bert\nreferred_by: anna-maria\n"
    assert (root / "interactions/log.yaml").read_text() == (
        "- {customer: bert, date: 2026-01-02, type: call}\n"
        "- {customer: anna-maria, date: 2026-01-04, type: call}\n")
    assert run("-w", root, "--today", TODAY, "check").exit_code == 0


def test_forget_a_customer_whose_own_file_does_not_load(make_workspace, run):
    root = make_workspace({
        "customers/anna.yaml": "name: Anna\nemail: anna@example.de\nbirthday: 1980-02-31\n",
        "customers/cleo.yaml": "name: [Cleo\nemail: cleo@example.de\n",
        "interactions/a.yaml": "customer: anna\ndate: 2026-01-01\ntype: call\n",
        "interactions/c.yaml": "- {customer: cleo, date: 2026-01-01, type: call}\n"
                               "- {customer: anna, date: 2026-01-02, type: call}\n",
    })
    anna = run("-w", root, "privacy", "forget", "anna", "--yes")  # loads, with an error
    assert anna.exit_code == 0, anna.output
    cleo = run("-w", root, "privacy", "forget", "cleo", "--yes")  # not even YAML
    assert cleo.exit_code == 0, cleo.output
    assert cleo.stdout.startswith(
        "cleo's customer file does not load (see 'crmkit check'): read as far as it goes\n"
        "Erasing cleo:\n"
        "  clear  .crmkit/cache/ (crmkit's caches: copies of what was read and printed)\n"
        "  delete interactions/c.yaml (their interactions)\n"
        "  delete customers/cleo.yaml (their customer file, last)\n")
    assert holding(root, "anna", "cleo") == []
    assert sorted(p.name for p in root.rglob("*.yaml")) == ["crmkit.yaml"]
    unknown = run("-w", root, "privacy", "forget", "anna", "--yes")
    assert unknown.exit_code == 1 and "unknown customer 'anna'" in unknown.stderr


def test_forget_after_their_customer_file_was_deleted_by_hand(make_workspace, run):
    """What an earlier crmkit, stopped half-way, left: interactions of a customer whose
    file is gone ('unknown customer' errors) are still found by their id."""
    root = make_workspace({
        "interactions/a.yaml": "customer: anna\ndate: 2026-01-01\ntype: call\n",
        "interactions/log.yaml": "- {customer: bert, date: 2026-01-02, type: call}\n"
                                 "- {customer: anna, date: 2026-01-03, type: call}\n",
        "customers/bert.yaml": "name: Bert\n",
    })
    result = run("-w", root, "privacy", "forget", "anna", "--yes")
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "anna's customer file is gone: looking for their id only (their emails and phone "
        "numbers are not known)\nErasing anna:\n")
    assert holding(root, "anna") == []
    assert run("-w", root, "check").exit_code == 0


def test_forget_and_export_find_records_that_name_a_merged_id(make_workspace, run):
    """After ``crmkit merge anna anna-old``, another clone may still write records for
    ``anna-old``: they are Anna's (the loader links them through ``aliases``), so an
    access request lists them and erasure deletes them; 'anna-oldenburg' is someone else."""
    root = make_workspace({
        "customers/anna.yaml": ANNA + "aliases: [anna-old]\n",
        "customers/anna-oldenburg.yaml": "name: Anna Oldenburg\nreferred_by: anna-old\n",
        "interactions/later.yaml": "customer: anna-old\ndate: 2026-03-01\ntype: call\n",
        "interactions/log.yaml": "- {customer: anna-oldenburg, date: 2026-01-02, type: call}\n"
                                 "- {customer: anna-old, date: 2026-01-03, type: note}\n",
        "interactions/broken.yaml": "customer: anna-old\ndate: 2026-01-02\nsummary: [x\n",
    })
    exported = run("-w", root, "--today", TODAY, "privacy", "export", "anna")
    assert exported.exit_code == 0, exported.output
    document = json.loads(exported.stdout)
    assert [i["date"] for i in document["interactions"]] == ["2026-01-03", "2026-03-01"]
    assert document["referred"] == ["anna-oldenburg"]
    assert [r["source"] for r in document["invalid_records"]] == ["interactions/broken.yaml:1:1"]
    result = run("-w", root, "--today", TODAY, "privacy", "forget", "anna", "--yes")
    assert result.exit_code == 0, result.output
    assert sorted(p.relative_to(root).as_posix() for p in root.rglob("*.yaml")) == [
        "crmkit.yaml", "customers/anna-oldenburg.yaml", "interactions/log.yaml"]
    assert (root / "interactions/log.yaml").read_text() == (
        "- {customer: anna-oldenburg, date: 2026-01-02, type: call}\n")
    assert (root / "customers/anna-oldenburg.yaml").read_text() == "name: Anna Oldenburg\n"


def test_forget_deletes_generated_files_that_mention_them(make_workspace, run):
    """Reports, the reminder calendar, their .eml drafts and the mbox (which also holds
    others' drafts) go; what does not mention them stays; the outbox entry goes."""
    root = make_workspace({
        "customers/anna.yaml": ANNA,
        "customers/bert.yaml": "name: Bert Ohm\nemail: bert@example.de\n" + CONSENT
                               + "birthday: 1970-11-26\n",
        ".crmkit/outbox/0a1b2c.json": '{"reminder": "birthday/anna/2026-11-25", '
                                      '"customer": "anna", "to": "anna@example.de"}\n',
    })
    for args in (["build"], ["drafts"], ["drafts", "--format", "mbox"]):
        assert run("-w", root, "--today", TODAY, *args).exit_code == 0
    drafts = sorted(p.name for p in (root / "out/drafts").iterdir())
    assert drafts == ["2026-11-25-anna-birthday.eml", "2026-11-26-bert-birthday.eml",
                      "drafts.mbox"]
    assert holding(root / "out", "anna@example.de")
    result = run("-w", root, "--today", TODAY, "privacy", "forget", "anna", "--yes")
    assert result.exit_code == 0, result.output
    assert holding(root, "anna", "Anna Berg", "812345") == []
    assert sorted(p.name for p in (root / "out/drafts").iterdir()) == [
        "2026-11-26-bert-birthday.eml"]
    for line in ["  delete out/drafts/2026-11-25-anna-birthday.eml (generated)",
                 "  delete out/drafts/drafts.mbox (generated)",
                 "  delete out/reminders.ics (generated)",
                 "  delete .crmkit/outbox/0a1b2c.json (crmkit's own copy)",
                 "out/: generated files that mentioned them are deleted; 'crmkit build' (and "
                 "'crmkit drafts') make them again"]:
        assert line in result.stdout.splitlines()


def test_phone_numbers_are_found_in_any_notation():
    from crmkit_plugins.privacy.finding import Matcher, Person

    matcher = Matcher(Person("anna", phones=("+49 3643 812345",)), ["anna"])
    for text in ["+49 3643 812345", "+4936438123 45", "03643 812345", "03643/812345",
                 "(03643) 81 23 45", "+49 (0)3643 812345", "0049 3643-812345", "3643812345"]:
        assert [m.what for m in matcher.find(f"x: {text}\n".encode())] == [
            "their phone +49 3643 812345"], text
    for text in ["+49 3643 8123456", "13643812345", "03643 812346"]:
        assert matcher.find(f"x: {text}\n".encode()) == [], text


def test_a_mention_crmkit_cannot_remove_stops_the_plan_before_anything_changes(
        make_workspace, run):
    root = make_workspace({
        "customers/anna.yaml": ANNA,
        "customers/bert.yaml": "name: Bert\nnotes: Annas Bruder, erreichbar über "
                               "anna@example.de\n",
        "templates/notes.txt": "Anna: 03643 / 81 23 45\n",
        "interactions/a.yaml": "customer: anna\ndate: 2026-01-01\ntype: call\n",
    })
    before = snapshot(root)
    result = run("-w", root, "privacy", "forget", "anna", "--yes")
    assert result.exit_code == 1
    assert result.stdout.splitlines()[-3:] == [
        "These mention them, and crmkit cannot change them by itself:",
        "  customers/bert.yaml:2: their email anna@example.de",
        "  templates/notes.txt:1: their phone +49 3643 812345",
    ]
    assert result.stderr == (
        "Error: nothing was changed: edit these by hand (or, for a file whose mention is not "
        "about them, add --keep FILE), then run 'crmkit privacy forget anna' again\n")
    assert snapshot(root) == before
    (root / "customers/bert.yaml").write_text("name: Bert\nnotes: Annas Bruder\n")
    done = run("-w", root, "privacy", "forget", "anna", "--yes", "--keep",
               root / "templates/notes.txt")
    assert done.exit_code == 0, done.output
    assert "  keep   templates/notes.txt (as asked)" in done.stdout
    assert ("The working tree no longer holds their id, emails or phone numbers (searched "
            "again after erasing). Left as asked: templates/notes.txt.") in done.stdout
    assert holding(root, "anna") == []
    wrong = run("-w", make_workspace({"customers/anna.yaml": ANNA}), "privacy", "forget",
                "anna", "--keep", "customers/anna.yaml")
    assert wrong.exit_code == 1
    assert "--keep customers/anna.yaml: not among the files crmkit cannot change" in wrong.stderr


# --- forget: finished by running it again --------------------------------------------------

SHARED = {
    "customers/anna.yaml": ANNA,
    "customers/bert.yaml": "name: Bert\nreferred_by: anna\n",
    "interactions/log.yaml": "- {customer: bert, date: 2026-01-02, type: call}\n"
                             "- {customer: anna, date: 2026-01-03, type: call}\n",
    "interactions/a1.yaml": "customer: anna\ndate: 2026-01-04\ntype: purchase\namount: 5\n",
    "interactions/a2.yaml": "customer: anna\ndate: 2026-01-05\ntype: visit\n",
    "deals/d.yaml": "customer: anna\ntitle: Bath\n",
    "out/old-report.md": "anna owes 5\n",
}


def failing_on(monkeypatch, root, n):
    """``os.unlink`` and ``os.replace`` fail on their ``n``-th call for a file of the
    workspace (crmkit's caches aside), as a file that cannot be removed would."""
    calls = []
    real = {"unlink": os.unlink, "replace": os.replace}

    def patched(name):
        def call(*args, **kwargs):
            target = str(args[-1] if name == "replace" else args[0])
            if target.startswith(str(root)) and "/.crmkit/" not in target:
                calls.append(target)
                if len(calls) == n:
                    raise PermissionError(13, "Permission denied", target)
            return real[name](*args, **kwargs)
        return call

    monkeypatch.setattr(os, "unlink", patched("unlink"))
    monkeypatch.setattr(os, "replace", patched("replace"))
    return calls


def test_forget_stopped_at_any_step_is_finished_by_running_it_again(make_workspace, run,
                                                                     monkeypatch):
    """A failure at each step in turn: the customer file is still there (so no 'unknown
    customer', no orphaned interactions), and a second run ends where one run ends."""
    from crmkit import App

    reference = make_workspace(SHARED)
    assert run("-w", reference, "privacy", "forget", "anna", "--yes").exit_code == 0
    expected = snapshot(reference)
    told = []
    n = 0
    while True:
        n += 1
        root = make_workspace(SHARED)
        with monkeypatch.context() as patch:
            calls = failing_on(patch, root, n)
            first = run("-w", root, "privacy", "forget", "anna", "--yes")
        if len(calls) < n:  # there was no n-th step: every failure point was tried
            assert first.exit_code == 0 and n == 8, (n, first.output)
            break
        assert first.exit_code == 1, first.output
        assert (root / "customers/anna.yaml").exists()
        problems = [str(d) for d in App(root).workspace.diagnostics]
        assert not any("unknown customer" in p for p in problems), problems
        second = run("-w", root, "privacy", "forget", "anna", "--yes")
        assert second.exit_code == 0, second.output
        assert snapshot(root) == expected, n
        told.append(first.stderr)
    for n, message in enumerate(told, start=1):  # what the interrupted runs said
        assert message.startswith(f"Error: could not {'edit' if n <= 2 else 'delete'} "), n
        assert message.endswith(" left (their customer file goes last, so nothing is lost "
                                "track of): run 'crmkit privacy forget anna' again to "
                                "finish\n"), message


#: Loaded by the ``crmkit`` process through PYTHONPATH: removing ``deals/d.yaml`` fails,
#: as a file that cannot be removed would.
UNDELETABLE = """\
import os

_unlink = os.unlink


def unlink(path, *args, **kwargs):
    if str(path).endswith("/deals/d.yaml"):
        raise PermissionError(13, "Permission denied", str(path))
    return _unlink(path, *args, **kwargs)


os.unlink = unlink
"""


def test_forget_speaks_the_terminals_language(make_workspace, tmp_path):
    """The real ``crmkit`` under LANG=de_DE.UTF-8: the plan, what needs work by hand, a
    run stopped half-way and the run that finishes it, in German; data (ids, paths,
    field names, values) as written.  Under LANG=C the same plan reads in English."""
    root = make_workspace({
        "customers/anna.yaml": ANNA,
        "customers/bert.yaml": "name: Bert\nreferred_by: anna\n",
        "interactions/log.yaml": "- {customer: bert, date: 2026-01-02, type: call}\n"
                                 "- {customer: anna, date: 2026-01-03, type: call}\n",
        "interactions/a1.yaml": "customer: anna\ndate: 2026-01-04\ntype: visit\n",
        "deals/d.yaml": "customer: anna\ntitle: Bad\n",
        "templates/notes.txt": "Anna: 03643 / 81 23 45\n",
    })
    hooks = tmp_path / "hooks"
    hooks.mkdir()
    (hooks / "sitecustomize.py").write_text(UNDELETABLE, encoding="utf-8")

    def forget(language, *args, undeletable=False):
        env = {**os.environ, "CRMKIT_BACKGROUND": "0", "LANG": language}
        if undeletable:
            env["PYTHONPATH"] = str(hooks)
        return subprocess.run([CRMKIT, "-w", root, "--today", TODAY, "privacy", "forget",
                               "anna", *args], capture_output=True, text=True, timeout=120,
                              env=env, stdin=subprocess.DEVNULL)

    before = snapshot(root)
    english = forget("C")
    assert english.returncode == 1
    assert english.stdout.splitlines()[1:3] == [
        "  edit   customers/bert.yaml ('referred_by: anna' removed)",
        "  edit   interactions/log.yaml (1 entry cut out, 1 of other customers kept)"]
    assert english.stdout.splitlines()[-1] == (
        "  templates/notes.txt:1: their phone +49 3643 812345")
    stopped = forget("de_DE.UTF-8")
    assert stopped.returncode == 1
    assert stopped.stdout.splitlines() == [
        "Löschen von anna (Anna Berg):",
        "  ändern   customers/bert.yaml ('referred_by: anna' entfernt)",
        "  ändern   interactions/log.yaml (1 Eintrag herausgeschnitten, 1 Eintrag anderer "
        "Kunden bleibt)",
        "  leeren   .crmkit/cache/ (crmkits Zwischenspeicher: Kopien des Gelesenen und "
        "Ausgegebenen)",
        "  löschen  deals/d.yaml (ihr Geschäft)",
        "  löschen  interactions/a1.yaml (ihre Interaktionen)",
        "  löschen  customers/anna.yaml (ihre Kundendatei, zuletzt)",
        "Diese Dateien erwähnen die Person, und crmkit kann sie nicht selbst ändern:",
        "  templates/notes.txt:1: ihre Telefonnummer +49 3643 812345",
    ]
    assert stopped.stderr == (
        "Fehler: nichts wurde geändert: diese Dateien von Hand bearbeiten (oder, wenn die "
        "Erwähnung nicht die Person meint, --keep DATEI angeben), dann 'crmkit privacy "
        "forget anna' erneut ausführen\n")
    assert snapshot(root) == before
    half = forget("de_DE.UTF-8", "--yes", "--keep", "templates/notes.txt", undeletable=True)
    assert half.returncode == 1
    assert "  belassen templates/notes.txt (wie gewünscht)" in half.stdout.splitlines()
    assert half.stderr == (
        "Fehler: deals/d.yaml ließ sich nicht löschen: Permission denied. 3 von 6 Schritten "
        "erledigt, 3 offen (ihre Kundendatei kommt zuletzt, so geht nichts verloren): "
        "'crmkit privacy forget anna' noch einmal ausführen, um es abzuschließen\n")
    assert (root / "customers/anna.yaml").exists() and (root / "deals/d.yaml").exists()
    # whether crmkit's cache is there again after the stopped run depends on timing (a
    # run keeps nothing of files changed within the last 2 s); the plan clears it when
    # it is, and that step is said in German too
    (root / ".crmkit" / "cache").mkdir(parents=True, exist_ok=True)
    done = forget("de_DE.UTF-8", "--yes", "--keep", "templates/notes.txt")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:6] == [
        "Löschen von anna (Anna Berg):",
        "  leeren   .crmkit/cache/ (crmkits Zwischenspeicher: Kopien des Gelesenen und "
        "Ausgegebenen)",
        "  löschen  deals/d.yaml (ihr Geschäft)",
        "  löschen  interactions/a1.yaml (ihre Interaktionen)",
        "  löschen  customers/anna.yaml (ihre Kundendatei, zuletzt)",
        "  belassen templates/notes.txt (wie gewünscht)",
    ]
    assert "Die Änderung committen, z. B.:" in lines
    assert "  git commit -m 'Kundendaten von anna löschen (DSGVO Art. 17)'" in lines
    assert lines[-1] == "dann mit --force pushen und alle mit einem Klon bitten, neu zu klonen."
    assert holding(root, "anna", "Anna Berg", "81 23 45") == ["templates/notes.txt"]


def test_forget_asks_in_the_terminals_language(make_workspace):
    """Without --yes the real ``crmkit`` asks "Fortfahren? [j/N]" under LANG=de: 'nein'
    changes nothing, 'j' goes on (click's own question took only y/yes)."""
    root = make_workspace({"customers/anna.yaml": ANNA,
                           "interactions/a1.yaml": "customer: anna\ndate: 2026-01-04\n"
                                                   "type: visit\n"})

    def forget(answer):
        env = {**os.environ, "CRMKIT_BACKGROUND": "0", "LANG": "de_DE.UTF-8", "LC_ALL": ""}
        return subprocess.run([CRMKIT, "-w", root, "--today", TODAY, "privacy", "forget",
                               "anna"], input=answer, capture_output=True, text=True,
                              timeout=120, env=env)

    before = snapshot(root)
    no = forget("nein\n")
    assert no.returncode == 130  # as for Ctrl-C
    assert no.stdout.endswith("Das lässt sich in crmkit nicht rückgängig machen (nur über "
                              "git). Fortfahren? [j/N]: ")
    assert no.stderr == "abgebrochen\n"
    assert snapshot(root) == before
    yes = forget("j\n")
    assert yes.returncode == 0, yes.stderr
    assert not (root / "customers/anna.yaml").exists()
    assert not (root / "interactions/a1.yaml").exists()


def test_the_printed_git_commands_are_quoted_for_the_shell(make_workspace, run, tmp_path):
    root = make_workspace({
        "customers/anna.yaml": ANNA,
        "customers/bert.yaml": "name: Bert\nreferred_by: anna\n",
        "interactions/$(touch pwned).yaml": "customer: anna\ndate: 2026-01-04\ntype: call\n",
        "interactions/it's; rm -rf x.yaml": "customer: anna\ndate: 2026-01-05\ntype: call\n",
    })
    result = run("-w", root, "privacy", "forget", "anna", "--yes")
    assert result.exit_code == 0, result.output
    after = result.stdout.split("Commit that, e.g.:\n")[1]
    commands = [line for line in after.splitlines() if line.startswith("  ")]
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "x").mkdir()
    # each command as pasted into a shell, with `git` printing the arguments it gets
    script = "git() { printf '%s\\n' \"$@\"; }\n" + "\n".join(commands) + "\n"
    out = subprocess.run(["bash", "-c", script], cwd=scratch, capture_output=True, text=True)
    assert sorted(p.name for p in scratch.iterdir()) == ["x"]  # nothing ran, nothing removed
    assert out.returncode == 0, out.stderr
    assert sum(line.startswith("  git ") for line in commands) == 5
    words = out.stdout.splitlines()
    assert "interactions/$(touch pwned).yaml" in words
    assert "interactions/it's; rm -rf x.yaml" in words
    assert words[words.index("commit"):words.index("commit") + 3] == [
        "commit", "-m", "Erase customer anna (GDPR art. 17)"]


# --- export: everything held about them ---------------------------------------------------


def test_export_holds_everything_about_them(make_workspace, run):
    """Deal fields, records that fail validation (as written, with what is wrong), open
    reminders, drafts, mentions elsewhere and generated files."""
    root = make_workspace({
        "customers/anna.yaml": ANNA + "referred_by: bert\n",
        "customers/bert.yaml": "name: Bert\nnotes: Schwager von anna@example.de\n",
        "interactions/ok.yaml": "customer: anna\ndate: 2026-01-04\ntype: purchase\n"
                                "amount: 50\n",
        "interactions/bad.yaml": "customer: anna\ndate: 2026-13-01\ntype: call\n"
                                 "summary: Rückruf\n",
        "interactions/log.yaml": "- {customer: bert, date: 2026-01-02, type: call}\n"
                                 "- customer: anna\n  date: 2026-01-03\n  type: seance\n",
        "interactions/broken.yaml": "customer: anna\nsummary: [oops\n",
        "deals/bath.yaml": "customer: anna\ntitle: Bath\nvalue: 900\n"
                           "fields: {tiles: Marmor, floor_m2: 6}\n",
    })
    assert run("-w", root, "--today", TODAY, "build").exit_code == 0
    result = run("-w", root, "--today", TODAY, "privacy", "export", "anna")
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["deals"][0]["fields"] == {"tiles": "Marmor", "floor_m2": 6}
    assert [(r["source"], r["text"]) for r in doc["invalid_records"]] == [
        ("interactions/bad.yaml:1:1",
         "customer: anna\ndate: 2026-13-01\ntype: call\nsummary: Rückruf\n"),
        ("interactions/broken.yaml:1:1", "customer: anna\nsummary: [oops\n"),
        ("interactions/log.yaml:2:3", "- customer: anna\n  date: 2026-01-03\n  type: seance\n"),
    ]
    assert doc["invalid_records"][0]["problems"] == [
        "interactions/bad.yaml:2:7: error: 'date': '2026-13-01' is not a valid date or time "
        "(month must be in 1..12)"]
    assert "unknown interaction type 'seance'" in doc["invalid_records"][2]["problems"][0]
    assert [i["type"] for i in doc["interactions"]] == ["purchase"]
    assert doc["deals"][0]["file"] == "deals/bath.yaml:1:1"
    # the deal has had no activity since its file's day (stale_deal, 30 days)
    assert [r["id"] for r in doc["reminders"]] == ["stale_deal/anna/2026-02-03/bath",
                                                   "stay_in_touch/anna/2026-03-05",
                                                   "birthday/anna/2026-11-25"]
    birthday = next(d for d in doc["drafts"] if d["reminder"].startswith("birthday/"))
    assert birthday["to"] == "anna@example.de" and birthday["body"].startswith("Dear Anna,")
    assert doc["mentions"] == [{"source": "customers/bert.yaml:2",
                                "text": "notes: Schwager von anna@example.de",
                                "why": "their email anna@example.de"}]
    assert doc["files"] == ["customers/anna.yaml", "customers/bert.yaml", "deals/bath.yaml",
                            "interactions/bad.yaml", "interactions/broken.yaml",
                            "interactions/log.yaml", "interactions/ok.yaml"]
    assert "out/reminders.ics" in doc["generated_files"]
    assert "predictions" in doc and doc["predictions"] is None  # too little history to fit


def test_export_has_their_prediction(make_workspace, run):
    from test_predict import simulated_workspace

    root = simulated_workspace(make_workspace)
    predicted = json.loads(run("-w", root, "--today", "2026-06-01", "predict", "--format",
                               "json").stdout)["customers"]
    cid = sorted(predicted)[0]
    doc = json.loads(run("-w", root, "--today", "2026-06-01", "privacy", "export",
                         cid).stdout)
    assert doc["predictions"]["p_alive"] == pytest.approx(predicted[cid]["p_alive"], abs=1e-4)
    assert doc["predictions"]["clv"] == pytest.approx(predicted[cid]["clv"], abs=0.01)
    assert set(doc["predictions"]) == {"p_alive", "expected_purchases", "expected_spend",
                                       "clv"}


def test_export_of_a_customer_whose_file_does_not_load(make_workspace, run):
    root = make_workspace({
        "customers/cleo.yaml": "name: [Cleo\nemail: cleo@example.de\n",
        "interactions/c.yaml": "customer: cleo\ndate: 2026-01-01\ntype: call\n",
    })
    doc = json.loads(run("-w", root, "privacy", "export", "cleo").stdout)
    assert doc["customer"] is None
    # their interaction is left out until their file is fixed: it is there, as written
    assert [(r["source"], r["text"]) for r in doc["invalid_records"]] == [
        ("customers/cleo.yaml:1:1", "name: [Cleo\nemail: cleo@example.de\n"),
        ("interactions/c.yaml:1:1", "customer: cleo\ndate: 2026-01-01\ntype: call\n")]
    assert doc["invalid_records"][1]["problems"] == []
    assert doc["interactions"] == []


def test_file_names_with_control_characters_neither_reach_the_terminal_nor_break_commands(
        make_workspace):
    """A template named with an escape sequence that mentions the person: the plan line
    shows the name without it; the suggested git commands name the file exactly (bash's
    ``$'...'``), which bash turns back into the name."""
    from crmkit_plugins.privacy.erasure import line, shell_word

    name = "notes\x1b[2J\u009b.txt"
    root = make_workspace({"customers/anna.yaml": ANNA, f"templates/{name}": "anna\n"})
    result = subprocess.run([CRMKIT, "-w", root, "--today", TODAY, "privacy", "forget", "anna"],
                            capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL,
                            env={**os.environ, "CRMKIT_BACKGROUND": "0", "LANG": "C"})
    assert result.returncode == 1
    assert "\x1b" not in result.stdout + result.stderr
    assert "\u009b" not in result.stdout + result.stderr
    # both escape sequences removed (the second, 0x9b, is a CSI: it takes ".t" along)
    assert "  templates/notesxt:1: their id" in result.stdout.splitlines()
    assert line("delete", f"templates/{name}") == "delete templates/notesxt"
    for text in (name, "it's a $(b) \\ c\td", "Müller.yaml"):
        word = shell_word(text)
        assert "\x1b" not in word and "\u009b" not in word
        echoed = subprocess.run(["bash", "-c", f"printf %s {word}"], capture_output=True,
                                timeout=30).stdout.decode("utf-8")
        assert echoed == text
