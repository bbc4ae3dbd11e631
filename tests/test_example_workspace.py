"""The example workspace must stay clean and show every feature something real."""

import datetime as dt
from collections import Counter

from conftest import EXAMPLE

from crmkit import App

TODAY = dt.date(2026, 11, 23)


def test_example_workspace_is_clean_and_believable():
    app = App(EXAMPLE, TODAY, use_cache=False)
    ws = app.workspace
    assert ws.diagnostics == ()
    assert 30 <= len(ws.customers) <= 40
    assert 300 <= len(ws.interactions) <= 400
    assert len(ws.deals) >= 4
    types = Counter(i.type for i in ws.interactions)
    for kind in ("purchase", "quote", "service", "complaint", "feedback", "call", "email"):
        assert types[kind] >= 3, kind
    assert {i.date.year for i in ws.interactions} == {2023, 2024, 2025, 2026}
    customers = ws.customers.values()
    assert sum(1 for c in customers if c.services) >= 8
    assert sum(1 for c in customers if c.birthday) >= 25
    assert any(c.birthday == dt.date(1992, 2, 29) for c in customers)
    assert any(not c.consent.email and c.emails for c in customers)
    assert any(c.locale == "en" for c in customers)
    assert any(ch in c.name for c in customers for ch in "äöüß")


def test_example_has_customers_in_every_stage_of_life():
    app = App(EXAMPLE, TODAY, use_cache=False)
    customers = app.customers()
    derived = [c.derived for c in customers]
    leads = [d for d in derived if d.purchase_count == 0]
    new = [d for d in derived if d.first_purchase and (TODAY - d.first_purchase).days < 120]
    quiet = [d for d in derived if d.last_purchase and (TODAY - d.last_purchase).days > 700]
    assert len(leads) >= 3 and len(new) >= 3 and len(quiet) >= 3
    quotes_never_booked = [
        c.id for c in customers
        if any(i.type == "quote" for i in c.history) and c.derived.purchase_count == 0]
    assert len(quotes_never_booked) >= 2
    assert any(d.open_follow_ups for d in derived)
    interactions = [i for c in customers for i in c.history]
    assert sum(1 for i in interactions if i.payment == "late") >= 2
    assert sum(1 for i in interactions if i.discount) >= 2


def test_the_example_runs_every_playbook():
    app = App(EXAMPLE, TODAY, use_cache=False)
    reminders = app.reminders()
    shown = {r.kind for r in reminders if not r.suppressed}
    assert {"heating", "onboarding", "quote"} <= shown
    assert "premium-upsell" in {r.kind for r in reminders}  # held back by the cap today


def test_the_hand_written_files_are_the_generators():
    """tools/make_example_workspace.py copies the playbooks and their templates from
    tools/example_workspace_files/: edit them there."""
    source = EXAMPLE.parent / "tools" / "example_workspace_files"
    files = [p for p in sorted(source.rglob("*")) if p.is_file()]
    assert len(files) >= 4
    for path in files:
        assert (EXAMPLE / path.relative_to(source)).read_bytes() == path.read_bytes(), path
