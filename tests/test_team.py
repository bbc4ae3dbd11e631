"""A team on one repository (docs/team.md): real git, real clones, the real crmkit process.

Names crmkit writes never collide between clones; the merge driver merges two edits of
one record field by field; conflicts are named by ``crmkit check``; owners, ``--owner``
and ``--mine``; the pre-commit hook.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml
from conftest import CRMKIT, DEFAULT_SETTINGS, REPO, write_files

from crmkit.cli.git import ATTRIBUTES, merge_texts

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="needs git")

GIT_ENV = {"GIT_AUTHOR_NAME": "Test", "GIT_AUTHOR_EMAIL": "t@example.com",
           "GIT_COMMITTER_NAME": "Test", "GIT_COMMITTER_EMAIL": "t@example.com",
           "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}
ANNA = """\
# Anna, a customer since 2024
name: Anna Berg
email: anna@example.com
tags: [vip, heating]
address:
  street: Hauptstr. 1
  city: Leipzig
notes: first note
"""
TEAM = DEFAULT_SETTINGS + "team:\n  - Anna Admin\n  - {name: Ben Bauer, email: ben@test.example}\n"


def git(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True,
                            env={**os.environ, **GIT_ENV})
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def crmkit(cwd: Path, *args: str, user: str | None = "Tess Ter"
           ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, **GIT_ENV, "CRMKIT_BACKGROUND": "0", "COLUMNS": "200"}
    env.pop("CRMKIT_USER", None)
    env.pop("CRMKIT_WORKSPACE", None)
    if user is not None:
        env["CRMKIT_USER"] = user
    return subprocess.run([str(CRMKIT), *args], cwd=cwd, capture_output=True, text=True,
                          env=env)


def clones(tmp_path: Path, files: dict[str, str], install: bool = True,
           settings: str = DEFAULT_SETTINGS) -> tuple[Path, Path]:
    """A shared (bare) repository holding a workspace, and two clones of it."""
    seed = tmp_path / "seed"
    seed.mkdir()
    write_files(seed, {"crmkit.yaml": settings, **files})
    git(seed, "init", "-q", "-b", "main")
    if install:
        assert crmkit(seed, "git", "install").returncode == 0
    git(seed, "add", "-A")
    git(seed, "commit", "-qm", "start")
    git(tmp_path, "init", "-q", "--bare", "-b", "main", "shared.git")
    git(seed, "push", "-q", str(tmp_path / "shared.git"), "main")
    a, b = tmp_path / "a", tmp_path / "b"
    for clone in (a, b):
        git(tmp_path, "clone", "-q", "shared.git", clone.name)
        if install:
            assert crmkit(clone, "git", "install").returncode == 0
    return a, b


def commit_and_push(clone: Path, message: str) -> None:
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", message)
    git(clone, "push", "-q", "origin", "main")


def commit_and_pull(clone: Path, message: str) -> subprocess.CompletedProcess[str]:
    git(clone, "add", "-A")
    git(clone, "commit", "-qm", message)
    return git(clone, "pull", "-q", "--no-rebase", "origin", "main", check=False)


# --- names that never collide -----------------------------------------------------------


def test_two_clones_log_the_same_customer_on_the_same_day_and_pull_without_conflict(
        tmp_path):
    a, b = clones(tmp_path, {"customers/anna.yaml": ANNA})
    # today (stamped to the microsecond) and an explicit day, by two people
    for clone, user in ((a, "Anna Admin"), (b, "Ben Bauer")):
        assert crmkit(clone, "log", "anna", "-t", "call", user=user).returncode == 0
        logged = crmkit(clone, "log", "anna", "-t", "call", "--date", "2026-11-20",
                        "-m", "called back", user=user)
        assert logged.returncode == 0, logged.stderr
        assert re.fullmatch(r"created interactions/2026/2026-11-20-anna-call-[a-z2-7]{6}"
                            r"\.yaml\n", logged.stdout)
    commit_and_push(a, "a")
    pulled = commit_and_pull(b, "b")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    assert git(b, "status", "--porcelain").stdout == ""
    assert len(list((b / "interactions").rglob("*.yaml"))) == 4  # nothing merged away
    check = crmkit(b, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert check.stdout.endswith("1 customer, 4 interactions, 0 deals: 0 errors, "
                                 "0 warnings\n")


def test_the_same_text_by_the_same_person_is_one_name_and_numbered_within_a_clone(tmp_path):
    a, b = clones(tmp_path, {"customers/anna.yaml": ANNA})
    args = ("log", "anna", "-t", "call", "--date", "2026-11-20", "-m", "same words")
    first_a, second_a = crmkit(a, *args).stdout, crmkit(a, *args).stdout
    name = first_a.removeprefix("created ").removesuffix(".yaml\n")
    assert second_a == f"created {name}-2.yaml\n"
    assert crmkit(b, *args).stdout == first_a  # the same record: git merges it as one
    assert crmkit(b, *args, user="Ben Bauer").stdout != first_a  # another person's
    commit_and_push(a, "a")
    assert commit_and_pull(b, "b").returncode == 0
    assert len(list((b / "interactions").rglob("*.yaml"))) == 3


def test_files_named_the_old_way_keep_working(make_workspace):
    root = make_workspace({"customers/anna.yaml": ANNA,
                           "interactions/2026/2026-11-29-anna-call.yaml":
                               "customer: anna\ndate: 2026-11-29\ntype: call\n",
                           "interactions/2026/2026-11-29-anna-call-2.yaml":
                               "customer: anna\ndate: 2026-11-29\ntype: call\n"})
    check = crmkit(root, "check")
    assert check.returncode == 0 and "1 customer, 2 interactions" in check.stdout


# --- the merge driver -------------------------------------------------------------------


def test_install_writes_gitattributes_and_this_clones_driver(tmp_path):
    root = tmp_path / "ws"
    write_files(root, {"crmkit.yaml": DEFAULT_SETTINGS, ".gitattributes": "*.png binary"})
    outside = crmkit(root, "git", "install")
    assert outside.returncode == 1 and "is not in a git repository" in outside.stderr
    git(root, "init", "-q")
    first = crmkit(root, "git", "install")
    assert first.returncode == 0, first.stderr
    text = (root / ".gitattributes").read_text()
    assert text.startswith("*.png binary\n# crmkit:")  # the user's line kept, ours added
    assert text.splitlines()[2:] == list(ATTRIBUTES)
    driver = git(root, "config", "merge.crmkit.driver").stdout.strip()
    assert driver.endswith(" -m crmkit git merge-driver %O %A %B %P")
    assert driver.startswith(sys.executable) or driver.startswith(f"'{sys.executable}")
    again = crmkit(root, "git", "install")
    assert ".gitattributes: already set up" in again.stdout
    assert (root / ".gitattributes").read_text() == text
    assert git(root, "check-attr", "merge", "customers/x.yaml").stdout.strip() == \
        "customers/x.yaml: merge: crmkit"
    assert git(root, "check-attr", "merge", "interactions/2026/x.yaml").stdout.strip() == \
        "interactions/2026/x.yaml: merge: crmkit"


def test_two_edits_of_different_fields_merge_field_by_field(tmp_path):
    a, b = clones(tmp_path, {"customers/anna.yaml": ANNA})
    edit = a / "customers/anna.yaml"
    edit.write_text(edit.read_text().replace("tags: [vip, heating]", "tags: [vip, heating, solar]")
                    .replace("first note", "changed by a"))
    commit_and_push(a, "a")
    edit = b / "customers/anna.yaml"
    edit.write_text(edit.read_text().replace("tags: [vip, heating]", "tags: [heating, boiler]")
                    .replace("city: Leipzig", "city: Halle"))
    pulled = commit_and_pull(b, "b")
    assert pulled.returncode == 0, pulled.stdout + pulled.stderr
    # vip removed by b, solar added by a, boiler by b; comments and key order kept
    assert edit.read_text() == ANNA.replace(
        "tags: [vip, heating]", "tags: [heating, boiler, solar]").replace(
        "city: Leipzig", "city: Halle").replace("first note", "changed by a")
    assert crmkit(b, "check").returncode == 0


def test_the_same_field_changed_differently_is_a_conflict_check_names(tmp_path):
    a, b = clones(tmp_path, {"customers/anna.yaml": ANNA})
    for clone, email in ((a, "anna@a.example"), (b, "anna@b.example")):
        path = clone / "customers/anna.yaml"
        path.write_text(path.read_text().replace("anna@example.com", email)
                        .replace("first note", "both changed the note" if clone == a
                                 else "first note"))
    commit_and_push(a, "a")
    pulled = commit_and_pull(b, "b")
    assert pulled.returncode == 1
    assert "CONFLICT (content): Merge conflict in customers/anna.yaml" in pulled.stdout
    assert "crmkit: customers/anna.yaml: both sides changed email" in pulled.stderr
    text = (b / "customers/anna.yaml").read_text()
    assert "<<<<<<< ours\nemail: anna@b.example\n=======\nemail: anna@a.example\n" \
           ">>>>>>> theirs (customers/anna.yaml)\n" in text
    assert "notes: both changed the note\n" in text  # only a changed it: merged
    check = crmkit(b, "check")
    assert check.returncode == 1
    assert ("customers/anna.yaml:3:1: error: unresolved merge conflict: git left its "
            "<<<<<<< ======= >>>>>>> markers here (and at lines 5, 7)") in check.stdout
    assert "invalid YAML" not in check.stdout
    # a command about her says why, not "unknown customer"
    shown = crmkit(b, "show", "anna")
    assert shown.returncode == 1
    assert shown.stderr.startswith("Error: customer 'anna' does not load: customers/anna.yaml"
                                   ":3:1: error: unresolved merge conflict")


def test_both_clones_add_the_same_customer(tmp_path):
    a, b = clones(tmp_path, {"customers/anna.yaml": ANNA})
    # the same person with the same data: one file
    for clone in (a, b):
        assert crmkit(clone, "add", "customer", "--name", "Lisa Berg", "--email",
                      "lisa@example.com").returncode == 0
    commit_and_push(a, "a")
    assert commit_and_pull(b, "b").returncode == 0
    git(b, "push", "-q", "origin", "main")
    git(a, "pull", "-q", "--no-rebase", "origin", "main")
    # two different people given one id: caught, nothing of one mixed into the other
    assert crmkit(a, "add", "customer", "--name", "Tom Kurz", "--email", "tom@one.example",
                  "--tag", "a").returncode == 0
    assert crmkit(b, "add", "customer", "--name", "Tom Kurz", "--email", "tom@two.example",
                  "--tag", "b").returncode == 0
    commit_and_push(a, "a2")
    pulled = commit_and_pull(b, "b2")
    assert pulled.returncode == 1
    assert "crmkit: customers/tom-kurz.yaml: both sides created this record, with " \
           "different email, tags" in pulled.stderr
    check = crmkit(b, "check")
    assert check.returncode == 1
    assert "customers/tom-kurz.yaml:2:1: error: unresolved merge conflict" in check.stdout


def test_without_the_driver_git_conflicts_and_check_still_names_it(tmp_path):
    a, b = clones(tmp_path, {"customers/anna.yaml": ANNA}, install=False)
    for clone, city in ((a, "Halle"), (b, "Jena")):
        path = clone / "customers/anna.yaml"
        path.write_text(path.read_text().replace("Leipzig", city))
    commit_and_push(a, "a")
    assert commit_and_pull(b, "b").returncode == 1
    check = crmkit(b, "check")
    assert check.returncode == 1
    assert "customers/anna.yaml:7:1: error: unresolved merge conflict" in check.stdout


def test_merge_texts_keeps_comments_order_and_merges_mappings():
    base = "# head\nname: A\naddress:\n  city: X\n  street: S\n# about tags\ntags:\n- a\n"
    ours = "# head\nname: A\naddress:\n  city: Y\n  street: S\n# about tags\ntags:\n- a\n- b\n"
    theirs = ("# head\nname: A\nphone: '0123'\naddress:\n  city: X\n  street: T\n"
              "# about tags\ntags:\n- a\n- c\n")
    text, conflicts = merge_texts(base, ours, theirs, "customers/a.yaml")
    assert conflicts == []
    assert text == ("# head\nname: A\nphone: '0123'\naddress:\n  city: Y\n  street: T\n"
                    "# about tags\ntags:\n- a\n- b\n- c\n")
    # a key one side removed and the other left alone is removed
    assert merge_texts("name: A\nnotes: n\n", "name: A\n", "name: B\nnotes: n\n", "x") == \
        ("name: B\n", [])
    # removed on one side, changed on the other: a conflict
    text, conflicts = merge_texts("name: A\nnotes: n\n", "name: A\n", "name: A\nnotes: m\n",
                                  "x")
    assert conflicts == ["notes"]
    assert text == "name: A\n<<<<<<< ours\n=======\nnotes: m\n>>>>>>> theirs (x)\n"
    # not a mapping: left to git's own merge
    assert merge_texts("- a\n", "- b\n", "- c\n", "x") is None


def test_merge_driver_as_git_runs_it(tmp_path):
    base, ours, theirs = (tmp_path / n for n in ("O", "A", "B"))
    base.write_text("name: A\nemail: a@x.de\n")
    ours.write_text("name: A\nemail: a@y.de\n")
    theirs.write_text("name: A\nemail: a@z.de\n")
    done = crmkit(tmp_path, "git", "merge-driver", "O", "A", "B", "customers/a.yaml")
    assert done.returncode == 1
    assert ours.read_text() == ("name: A\n<<<<<<< ours\nemail: a@y.de\n=======\n"
                                "email: a@z.de\n>>>>>>> theirs (customers/a.yaml)\n")
    theirs.write_text("name: B\nemail: a@x.de\n")
    ours.write_text("name: A\nemail: a@y.de\n")
    assert crmkit(tmp_path, "git", "merge-driver", "O", "A", "B").returncode == 0
    assert ours.read_text() == "name: B\nemail: a@y.de\n"


# --- owners -----------------------------------------------------------------------------


OWNED = {
    "customers/anna.yaml": "name: Anna\nbirthday: 1980-06-10\nowner: Anna Admin\n",
    "customers/bert.yaml": "name: Bert\nbirthday: 1980-06-11\nowner: ben@test.example\n",
    "customers/cleo.yaml": "name: Cleo\nbirthday: 1980-06-12\n",
}


def reminder_ids(result: subprocess.CompletedProcess[str]) -> list[str]:
    assert result.returncode == 0, result.stderr
    return [line.split()[1] for line in result.stdout.splitlines()[2:]]


def test_owners_are_checked_against_the_team(make_workspace):
    root = make_workspace({**OWNED, "customers/dora.yaml": "name: Dora\nowner: Ben Baur\n"},
                          settings=TEAM)
    check = crmkit(root, "check")
    assert check.returncode == 1
    assert check.stdout.splitlines()[0] == (
        "customers/dora.yaml:2:8: error: 'owner': 'Ben Baur' is not in the team (did you "
        "mean 'Ben Bauer'?); the team (crmkit.yaml): Anna Admin, Ben Bauer")
    assert ": 1 error, " in check.stdout
    bad_team = make_workspace(settings=DEFAULT_SETTINGS + "team: [Anna, {email: x@y.de}, anna]\n")
    assert [line.split(": error: ")[1] for line in crmkit(bad_team, "check").stdout.splitlines()
            if ": error: " in line] == ["missing required field 'name'",
                                         "'anna' is in the team twice"]


def test_reminders_and_drafts_by_owner_and_mine(make_workspace):
    root = make_workspace(OWNED, settings=TEAM)
    day = ("--today", "2026-06-01", "reminders")
    assert reminder_ids(crmkit(root, *day)) == [
        "birthday/anna/2026-06-10", "birthday/bert/2026-06-11", "birthday/cleo/2026-06-12"]
    assert reminder_ids(crmkit(root, *day, "--owner", "ben bauer")) == [
        "birthday/bert/2026-06-11"]
    assert reminder_ids(crmkit(root, *day, "--mine", user="Anna Admin")) == [
        "birthday/anna/2026-06-10"]
    assert reminder_ids(crmkit(root, *day, "--mine", user="ben@test.example")) == [
        "birthday/bert/2026-06-11"]
    stranger = crmkit(root, *day, "--mine", user="Tess Ter")
    assert stranger.returncode == 1 and "you are 'Tess Ter' (git config user.name, or " \
        "$CRMKIT_USER), who is not in the team" in stranger.stderr
    typo = crmkit(root, *day, "--owner", "Ben")
    assert typo.returncode == 1 and "(did you mean 'Ben Bauer'?)" in typo.stderr
    both = crmkit(root, *day, "--owner", "Ben Bauer", "--mine")
    assert both.returncode == 1 and "use either --owner or --mine" in both.stderr
    drafts = crmkit(root, "--today", "2026-06-01", "drafts", "--within", "30", "--format",
                    "json", "--owner", "Anna Admin")
    assert drafts.returncode == 0, drafts.stderr
    found = yaml.safe_load(drafts.stdout)
    assert {d["customer"] for d in found["drafts"] + found["skipped"]} == {"anna"}


def test_mine_from_git_user_name_and_owners_without_a_team(make_workspace):
    root = make_workspace(OWNED)  # no team: owners are free text
    git(root, "init", "-q")
    git(root, "config", "user.name", "Anna Admin")
    assert crmkit(root, "check").returncode == 0
    day = ("--today", "2026-06-01", "reminders", "--mine")
    assert reminder_ids(crmkit(root, *day, user=None)) == ["birthday/anna/2026-06-10"]
    nobody = crmkit(root, "--today", "2026-06-01", "reminders", "--owner", "Ann Admin")
    assert nobody.returncode == 1
    assert "--owner 'Ann Admin' is no customer's owner (did you mean 'Anna Admin'?)" \
        in nobody.stderr


def test_the_weekly_report_is_grouped_by_owner_with_a_team(make_workspace):
    root = make_workspace(OWNED, settings=TEAM)
    report = crmkit(root, "--today", "2026-06-08", "report", "weekly", "--format", "md",
                    "--out", "-")
    assert report.returncode == 0, report.stderr
    assert re.findall(r"^\*\*(.*)\*\* \(\d+\)$", report.stdout, re.MULTILINE) == [
        "Anna Admin · Birthdays", "Ben Bauer · Birthdays", "no owner · Birthdays"]
    plain = make_workspace(OWNED)
    report = crmkit(plain, "--today", "2026-06-08", "report", "weekly", "--format", "md",
                    "--out", "-")
    assert re.findall(r"^\*\*(.*)\*\* \(\d+\)$", report.stdout, re.MULTILINE) == [
        "Birthdays"]


# --- pre-commit -------------------------------------------------------------------------


def test_pre_commit_hook_runs_crmkit_check_on_workspace_files(make_workspace):
    [hook] = yaml.safe_load((REPO / ".pre-commit-hooks.yaml").read_text())
    assert hook["id"] == "crmkit-check" and hook["entry"] == "crmkit check"
    assert hook["language"] == "python" and hook["pass_filenames"] is False
    files = re.compile(hook["files"])
    for path in ("crmkit.yaml", "customers/anna.yaml", "interactions/2026/x.yaml",
                 "crm/customers/anna.yaml", "deals/d.yml", "playbooks/quote.yaml"):
        assert files.search(path), path
    for path in ("README.md", "out/index.html", "docs/customers.md"):
        assert not files.search(path), path
    # what the hook runs: non-zero on a conflict left behind
    root = make_workspace({"customers/anna.yaml": textwrap.dedent("""\
        name: Anna
        <<<<<<< HEAD
        phone: '1'
        =======
        phone: '2'
        >>>>>>> other
        """)})
    entry = hook["entry"].split()
    assert entry[0] == "crmkit"
    result = crmkit(root, *entry[1:])
    assert result.returncode == 1
    assert "customers/anna.yaml:2:1: error: unresolved merge conflict" in result.stdout


def test_owner_survives_an_export_and_import(make_workspace, tmp_path):
    source = make_workspace(OWNED, settings=TEAM)
    exported = crmkit(source, "export", "csv", "--out", str(tmp_path / "people.csv"))
    assert exported.returncode == 0, exported.stderr
    target = make_workspace(settings=TEAM)
    imported = crmkit(target, "import", "csv", str(tmp_path / "people.csv"), "--apply")
    assert imported.returncode == 0, imported.stderr
    assert yaml.safe_load((target / "customers/bert.yaml").read_text())["owner"] == \
        "ben@test.example"
    assert "owner" not in yaml.safe_load((target / "customers/cleo.yaml").read_text())
    assert crmkit(target, "check").returncode == 0
