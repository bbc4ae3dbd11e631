"""The property behind the state between runs: a one-off command that starts from what
earlier commands kept prints exactly what the same command prints from scratch
(``--no-cache``), after any sequence of edits and commands.

The workspace is the one of tests/test_watch_equals_build.py (the stock plugins and
the two plugins from the docs, two playbooks).  Hypothesis interleaves its edits (of the
playbooks too), plus customers that appear and disappear, interactions naming a
customer who does not exist and a customer file that breaks, with commands in any
order (``show`` after ``check`` reads labels ``check`` never computed) on this day or
another.  Every command runs twice: from the state, then with ``--no-cache``, and
both outputs must be equal.
"""

from __future__ import annotations

import datetime as dt
import gc
import importlib
import os
import re
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import CRMKIT, age_files, write_files
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from test_watch_equals_build import EDITS, NAMES, TODAY, workspace_files

from crmkit.engine.app import BACKGROUND_LOCK
from crmkit.incremental import parallel, state
from crmkit.incremental.cache import STATE_FILE

cli_main = importlib.import_module("crmkit.cli.main")  # the package exports main()


def new_customer(root: Path, cid: str, n: int) -> str:
    rel = f"customers/new{n}.yaml"
    write_files(root, {rel: f"name: New {n}\nreferred_by: {cid}\nbirthday: 1990-06-0{n % 9 + 1}\n"})
    return rel


def remove_customer(root: Path, cid: str, n: int) -> str:
    rel = f"customers/new{n}.yaml"
    if not (root / rel).exists():
        rel = f"customers/{cid}.yaml"
    (root / rel).unlink(missing_ok=True)
    return rel


def stranger(root: Path, cid: str, n: int) -> str:
    """An interaction of a customer who does not exist (yet: ``new{n}``)."""
    rel = f"interactions/s{n}.yaml"
    write_files(root, {rel: f"customer: new{n}\ndate: 2026-05-0{n % 9 + 1}\ntype: call\n"})
    return rel


def broken_customer(root: Path, cid: str, n: int) -> str:
    rel = f"customers/{cid}.yaml"
    write_files(root, {rel: "name: [unclosed\n"} if n % 2 else
                {rel: f"name: {cid.title()}\nemail: {cid}@example.com\n"})
    return rel


ALL_EDITS = {**EDITS, "new customer": new_customer, "remove customer": remove_customer,
             "stranger": stranger, "broken customer": broken_customer}
COMMANDS = {
    "check": ["check"],
    "weekly": ["report", "weekly", "--format", "md", "--out", "-"],
    "segments": ["segments", "--format", "json"],
    "reminders": ["reminders", "--format", "json"],
    "show": ["show", "{cid}", "--format", "json"],
    "customers": ["customers", "--segment", "big", "--format", "json"],
    "dashboard": ["report", "dashboard", "--format", "md", "--out", "-"],
    "predict": ["predict", "--format", "json"],
}
DAYS = [TODAY, TODAY + dt.timedelta(days=1), TODAY - dt.timedelta(days=7)]

edit = st.tuples(st.just("edit"), st.sampled_from(sorted(ALL_EDITS)),
                 st.sampled_from(NAMES), st.integers(0, 5))
command = st.tuples(st.just("run"), st.sampled_from(sorted(COMMANDS)),
                    st.sampled_from(NAMES), st.integers(0, len(DAYS) - 1))
steps = st.lists(st.one_of(edit, command, command), min_size=2, max_size=12)


def run(root: Path, args: list[str], day: dt.date, no_cache: bool) -> tuple[int, str]:
    options = ["-w", str(root), "--today", day.isoformat(), *(["--no-cache"] * no_cache)]
    result = CliRunner().invoke(cli_main.cli, [*options, *args])
    gc.unfreeze()  # a one-off run freezes what it loaded: not here, in one test process
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output


@pytest.fixture
def one_off(monkeypatch):
    """Commands run as in the ``crmkit`` process: from the state, keeping it."""
    monkeypatch.setattr(cli_main, "_one_shot", True)


@settings(max_examples=25, deadline=None, suppress_health_check=[
    HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(steps)
@example([("run", "check", "anna", 0), ("edit", "purchase yesterday", "bert", 1),
          ("run", "show", "bert", 0), ("run", "weekly", "anna", 0)])
@example([("edit", "address", "anna", 4), ("run", "show", "anna", 0), ("edit", "deal", "anna", 0),
          ("run", "dashboard", "anna", 0)])  # a deal added: anna is engaged, not lost
@example([("run", "weekly", "anna", 0), ("edit", "new customer", "anna", 2),
          ("run", "check", "anna", 0), ("edit", "stranger", "anna", 2),
          ("run", "segments", "anna", 0), ("edit", "remove customer", "anna", 2),
          ("run", "check", "anna", 0)])
@example([("run", "reminders", "anna", 0), ("edit", "broken customer", "cleo", 1),
          ("run", "check", "anna", 0), ("edit", "broken customer", "cleo", 0),
          ("run", "reminders", "anna", 0), ("run", "dashboard", "anna", 2)])
@example([("run", "reminders", "anna", 0), ("edit", "call", "anna", 0),
          ("run", "reminders", "anna", 0), ("run", "reminders", "anna", 0),
          ("run", "show", "anna", 0)])
@example([("run", "reminders", "anna", 0), ("edit", "playbook", "anna", 0),
          ("run", "reminders", "anna", 0), ("edit", "purchase today", "cleo", 1),
          ("run", "show", "cleo", 0), ("edit", "playbook", "anna", 4),
          ("run", "weekly", "anna", 0)])
@example([("run", "weekly", "anna", 0), ("edit", "settings", "anna", 1),
          ("run", "weekly", "anna", 0), ("edit", "plugin", "anna", 2),
          ("run", "customers", "anna", 1), ("run", "show", "anna", 1)])
@example([("run", "check", "anna", 0), ("edit", "call", "anna", 0),
          ("run", "check", "anna", 0), ("edit", "delete", "anna", 0),
          ("run", "show", "anna", 0)])  # a file too new to keep, then gone
@example([("edit", "address", "anna", 0), ("run", "check", "anna", 0),
          ("edit", "remove customer", "anna", 0), ("run", "check", "anna", 0)])
# ... a customer's file, too new to keep: the index still says whose it was
def test_a_run_from_the_state_prints_what_a_fresh_run_prints(one_off, steps):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        write_files(root, workspace_files())
        age_files(root, 3600)
        for n, (what, name, cid, number) in enumerate(steps):
            if what == "edit":
                try:
                    changed = ALL_EDITS[name](root, cid, number)
                except FileNotFoundError:
                    continue  # an edit of a customer removed earlier

                if (root / changed).exists() and number % 3:  # an old, unique mtime
                    os.utime(root / changed, (1_700_000_000 + n, 1_700_000_000 + n))
                # else just written: "racy", never taken from what a run kept
                continue
            args = [a.replace("{cid}", cid) for a in COMMANDS[name]]
            day = DAYS[number]
            kept = run(root, args, day, no_cache=False)
            fresh = run(root, args, day, no_cache=True)
            assert kept == fresh, (name, cid, day, steps[:n + 1])


def test_the_state_is_used(one_off, tmp_path):
    """The property above is only worth something if runs do start from the state."""
    root = tmp_path / "ws"
    write_files(root, workspace_files())
    age_files(root, 3600)
    run(root, ["check"], TODAY, no_cache=False)
    assert (root / STATE_FILE).is_file()
    calls = []
    original = state._load
    state._load = lambda *a, **k: calls.append(1) or original(*a, **k)  # type: ignore
    try:
        write_files(root, {"interactions/late.yaml": "customer: anna\ndate: 2026-05-31\n"
                                                     "type: call\n"})
        os.utime(root / "interactions/late.yaml", (1_700_000_000, 1_700_000_000))
        code, out = run(root, ["show", "anna"], TODAY, no_cache=False)
    finally:
        state._load = original  # type: ignore
    assert calls and code == 0 and "call" in out


def _crmkit(root: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {k: v for k, v in os.environ.items()
                   if k not in ("CI", "CRMKIT_BACKGROUND")}
    return subprocess.run([str(CRMKIT), "-v", "-w", str(root), "--today", TODAY.isoformat(),
                           *args], capture_output=True, text=True, timeout=120,
                          env={**environment, **env})


def test_after_a_command_the_days_rules_are_computed_in_the_background(tmp_path):
    """``show`` after ``check`` (on an unchanged workspace: nothing to replay) finds every
    rule's results, computed by the warm-up that ``check`` left behind; the command
    itself returns at once (its output pipes are not held open)."""
    root = tmp_path / "ws"
    write_files(root, workspace_files())
    age_files(root, 3600)
    started = time.monotonic()
    checked = _crmkit(root, "check", CRMKIT_BACKGROUND_MIN="1")
    assert checked.returncode == 0 and time.monotonic() - started < 60
    parallel.wait_for(root / BACKGROUND_LOCK)
    shown = _crmkit(root, "show", "anna", CRMKIT_BACKGROUND_MIN="1")
    assert shown.returncode == 0 and "Anna" in shown.stdout
    assert re.search(r"rule results: 0 computed, [1-9]\d* kept", shown.stderr), shown.stderr


@pytest.mark.parametrize("switch", [{"CRMKIT_BACKGROUND": "0"}, {"CI": "true"}])
def test_no_warm_up_when_switched_off_or_in_ci(tmp_path, switch):
    root = tmp_path / "ws"
    write_files(root, workspace_files())
    age_files(root, 3600)
    _crmkit(root, "check", CRMKIT_BACKGROUND_MIN="1", **switch)
    parallel.wait_for(root / BACKGROUND_LOCK)
    shown = _crmkit(root, "show", "anna", CRMKIT_BACKGROUND_MIN="1", **switch)
    assert re.search(r"rule results: [1-9]\d* computed", shown.stderr), shown.stderr


def test_a_broken_state_in_a_plugins_command_is_the_cores_error(one_off, tmp_path,
                                                                  monkeypatch):
    """Not "plugin 'people' failed": the state is removed and the next run works."""
    root = tmp_path / "ws"
    write_files(root, workspace_files())
    age_files(root, 3600)
    run(root, ["check"], TODAY, no_cache=False)

    def broken(*args, **kwargs):
        raise state.BrokenState("the kept records of x.yaml cannot be read")

    monkeypatch.setattr(state, "_load", broken)
    code, out = run(root, ["export", "csv", "--out", "-"], TODAY, no_cache=False)
    assert code == 1 and "plugin" not in out
    assert "crmkit removed what it kept from earlier runs: run the command again" in out
    assert not (root / STATE_FILE).exists()


def test_records_that_cannot_be_read_from_the_state_are_read_from_their_files(one_off,
                                                                               tmp_path):
    """A damaged blob file once ended a command ("the kept records ... cannot be
    read"); an unchanged file is simply read again."""
    root = tmp_path / "ws"
    write_files(root, workspace_files())
    age_files(root, 3600)
    run(root, ["check"], TODAY, no_cache=False)
    (blob_file,) = (root / ".crmkit" / "cache").glob("blobs-*")
    data = bytearray(blob_file.read_bytes())
    for k in range(0, len(data), 97):
        data[k] ^= 0xFF  # every blob damaged
    blob_file.write_bytes(bytes(data))
    kept = run(root, ["show", "anna", "--format", "json"], TODAY, no_cache=False)
    assert kept == run(root, ["show", "anna", "--format", "json"], TODAY, no_cache=True)
    assert kept[0] == 0
