"""The property behind every cache: what ``crmkit watch`` writes after any sequence of edits
is byte for byte what a fresh ``crmkit build`` writes.

The workspace runs the stock plugins and two plugins taken verbatim from the docs
(docs/examples): a reminder kind of one customer (``anniversary``) and a label over
everybody with a weekly-report section and a filter that looks customers up through
the template context (``busy_area``).  Hypothesis applies random edits (a rename, a
purchase today, yesterday or long ago, a call, a deletion, a referral or an address
change, a settings change, a template change, a change to a plugin file); after each,
the watcher rebuilds incrementally and a fresh build runs on a copy of the workspace.
Customers come and go, deals change stage, the language switches, two files change
in one rebuild, and the day moves on.
Two playbooks (a quote's follow-ups, and onboarding for new customers in a segment)
take part, and so do edits of them.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from pathlib import Path

from conftest import REPO, write_files
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crmkit import App
from crmkit.cli.watch import Watcher

TODAY = dt.date(2026, 6, 1)
EXAMPLES = REPO / "docs" / "examples"
SETTINGS = """\
business: Watch GmbH
sender: {name: Tess Ter, email: tess@test.example}
locale: en
currency: EUR
timezone: Europe/Berlin
segments:
  big: revenue > 500
reminders:
  within_days: 60
  stay_in_touch:
    rules:
      - {segment: busy_area, days: 30}
      - {segment: abc=A, days: 45}
"""
CUSTOMERS = {
    "anna": "name: Anna\nbirthday: 1980-06-05\nemail: anna@example.com\n"
            "consent: {email: true}\naddress: {postal_code: '99423', city: Weimar}\n",
    "bert": "name: Bert\nreferred_by: anna\nphone: '+49 30 1234'\n"
            "address: {postal_code: '99423'}\n",
    "cleo": "name: Cleo\nservices:\n  - {name: Wartung, interval: 12 months, "
            "start: 2025-01-10}\naddress: {postal_code: '10115'}\n",
    "dora": "name: Dora\nsource: referral\nreferred_by: anna\n",
}
INTERACTIONS = {
    "interactions/a1.yaml": "customer: anna\ndate: 2025-05-28\ntype: purchase\namount: 1200\n",
    "interactions/b1.yaml": "customer: bert\ndate: 2025-03-01\ntype: purchase\namount: 90\n",
    # Bert's second purchase, a year after his first: the only repeat gap (366 days), so he
    # stays active (stay_in_touch for busy_area) while Anna's one purchase 369 days ago makes
    # her lost (win_back); without it everybody with a purchase is lost on TODAY
    "interactions/b2.yaml": "customer: bert\ndate: 2026-03-02\ntype: purchase\namount: 300\n",
    "interactions/c1.yaml": "- {customer: cleo, date: 2025-02-01, type: service, "
                            "service: Wartung}\n- {customer: cleo, date: 2026-04-01, "
                            "type: quote, amount: 500}\n",
    "interactions/d1.yaml": "customer: dora\ndate: 2026-05-20\ntype: call\n"
                            "follow_up: 2026-05-27\n",
}
PLAYBOOKS = {
    "playbooks/quote.yaml": "trigger: {type: quote}\nsteps:\n"
                            "  - {name: ask, after: 3 days, title: Ask about the quote}\n"
                            "  - {name: again, after: 8 weeks, title: Ask again}\n"
                            "stop: [{type: purchase}]\n",
    "playbooks/welcome.yaml": "trigger: {stage: new, segment: 'revenue > 100'}\nsteps:\n"
                              "  - {name: hello, after: 0 days, title: Welcome}\n"
                              "  - {name: tips, after: 30 days, title: Tips}\n",
}
NAMES = sorted(CUSTOMERS)


def workspace_files() -> dict[str, str]:
    anniversary = EXAMPLES / "anniversary" / "crmkit_anniversary.py"
    busy = EXAMPLES / "busy_area"
    return {
        "crmkit.yaml": SETTINGS,
        **{f"customers/{cid}.yaml": text for cid, text in CUSTOMERS.items()},
        **INTERACTIONS,
        **PLAYBOOKS,
        "plugins/anniversary.py": anniversary.read_text(encoding="utf-8"),
        "plugins/busy_area.py": (busy / "crmkit_busy_area.py").read_text(encoding="utf-8"),
        **{f"templates/{p.name}": p.read_text(encoding="utf-8")
           for p in sorted((busy / "templates").iterdir())},
    }


def _replace(root: Path, rel: str, old: str, new: str) -> str:
    path = root / rel
    path.write_text(path.read_text(encoding="utf-8").replace(old, new), encoding="utf-8")
    return rel


def _toggle(root: Path, rel: str, text: str) -> str:
    """The file deleted, or written again with ``text`` if it was."""
    if (root / rel).exists():
        (root / rel).unlink()
    else:
        write_files(root, {rel: text})
    return rel


def rename(root: Path, cid: str, n: int) -> str:
    text = (root / f"customers/{cid}.yaml").read_text(encoding="utf-8")
    lines = [f"name: {cid.title()} {'Neu' * (n + 1)}" if line.startswith("name:") else line
             for line in text.splitlines()]
    write_files(root, {f"customers/{cid}.yaml": "\n".join(lines) + "\n"})
    return f"customers/{cid}.yaml"


def interaction(root: Path, cid: str, n: int, kind: str, days_ago: int) -> str:
    day = TODAY - dt.timedelta(days=days_ago)
    extra = f"amount: {100 + 300 * n}\n" if kind == "purchase" else "direction: outbound\n"
    rel = f"interactions/e{n}-{cid}.yaml"
    write_files(root, {rel: f"customer: {cid}\ndate: {day}\ntype: {kind}\n{extra}"})
    return rel


def delete(root: Path, cid: str, n: int) -> str:
    rel = f"interactions/e{n}-{cid}.yaml"
    if not (root / rel).exists():
        rel = sorted(INTERACTIONS)[n % len(INTERACTIONS)]
    (root / rel).unlink(missing_ok=True)
    return rel


def page_gone(root: Path, cid: str, n: int) -> str:
    """A customer's page deleted (and another's overwritten) behind watch's back, then
    an unrelated call logged: watch must write both pages again."""
    (root / "out" / "customers" / f"{cid}.html").unlink(missing_ok=True)
    other = root / "out" / "customers" / f"{NAMES[(NAMES.index(cid) + 1) % len(NAMES)]}.html"
    if other.exists():
        other.write_text("stale", encoding="utf-8")
    return interaction(root, NAMES[(NAMES.index(cid) + 2) % len(NAMES)], n, "call", 400)


def referral(root: Path, cid: str, n: int) -> str:
    rel = f"customers/{cid}.yaml"
    text = (root / rel).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("referred_by:")]
    other = NAMES[n % len(NAMES)]
    if other != cid:
        lines.append(f"referred_by: {other}")
    write_files(root, {rel: "\n".join(lines) + "\n"})
    return rel


def address(root: Path, cid: str, n: int) -> str:
    rel = f"customers/{cid}.yaml"
    text = (root / rel).read_text(encoding="utf-8")
    lines = [line for line in text.splitlines() if not line.startswith("address:")]
    lines.append(f"address: {{postal_code: '{['99423', '10115', '80331'][n % 3]}'}}")
    write_files(root, {rel: "\n".join(lines) + "\n"})
    return rel


SETTINGS_CHANGES = [
    ("within_days: 60", "within_days: 7"),
    ("big: revenue > 500", "big: revenue > 50 and busy_area"),
    ("days: 30}", "days: 3}"),
    ("currency: EUR\n", "currency: EUR\nreminders_unused: 1\n"),  # an error: kept going
    ("reminders:\n", "reminders:\n  anniversary: {min_years: 2, grace_days: 30}\n"),
    ("reminders:\n", "reminders:\n  birthday: {enabled: false}\n"),
]


def settings_change(root: Path, cid: str, n: int) -> str:
    old, new = SETTINGS_CHANGES[n % len(SETTINGS_CHANGES)]
    return _replace(root, "crmkit.yaml", old, new)


def template_change(root: Path, cid: str, n: int) -> str:
    if n % 2:
        return _replace(root, "templates/busy_area.md.j2", "- ", f"{n}. ")
    rel = "templates/reports/sections/new_leads.md.j2"
    write_files(root, {rel: f"New leads ({n}): {{{{ customers | length }}}}\n"})
    return rel


PLUGIN_CHANGES = [
    ("plugins/anniversary.py", "years with us", "years as our customer"),
    ("plugins/anniversary.py", '"grace_days": 7', '"grace_days": 400'),
    ("plugins/busy_area.py", "top > 1 and", "top > 0 and"),
    ("plugins/busy_area.py", ".customer.name", ".customer.name.upper()"),
]


def plugin_change(root: Path, cid: str, n: int) -> str:
    rel, old, new = PLUGIN_CHANGES[n % len(PLUGIN_CHANGES)]
    return _replace(root, rel, old, new)


SETTLES = {"anna": "birthday/anna/2026-06-05", "bert": "at_risk/bert/2026-01-01",
           "cleo": "service_due/cleo/2026-02-01", "dora": "follow_up/dora/2026-05-27"}


def settle(root: Path, cid: str, n: int) -> str:
    """``crmkit done``, ``done --never`` or ``snooze`` (until tomorrow or later) of one
    of the customer's reminders, as the commands write them."""
    rel = f"interactions/settle{n}-{cid}.yaml"
    kind = ("done", "snooze", "done")[n % 3]
    extra = (f"until: {TODAY + dt.timedelta(days=1 + n // 3)}\n" if kind == "snooze"
             else "never: true\n" if n % 3 == 2 else "")
    write_files(root, {rel: f"customer: {cid}\ndate: {TODAY}\ntype: {kind}\n"
                            f"resolves: [{SETTLES[cid]}]\n{extra}"})
    return rel


PLAYBOOK_CHANGES = [
    ("playbooks/quote.yaml", "after: 3 days", "after: 5 days"),
    ("playbooks/quote.yaml", "Ask again", "Ask once more"),
    ("playbooks/welcome.yaml", "revenue > 100", "revenue > 1000"),
    ("playbooks/quote.yaml", "stop: [{type: purchase}]", "stop: [{type: call}]"),
    ("playbooks/welcome.yaml", "", ""),  # deleted, or written again
    ("playbooks/quote.yaml", "after: 8 weeks", "after: soon"),  # an error: kept going
]


def playbook_change(root: Path, cid: str, n: int) -> str:
    rel, old, new = PLAYBOOK_CHANGES[n % len(PLAYBOOK_CHANGES)]
    if old and not (root / rel).exists():
        write_files(root, {rel: PLAYBOOKS[rel]})  # deleted by an earlier step: back, edited
    if old:
        return _replace(root, rel, old, new)
    return _toggle(root, rel, PLAYBOOKS[rel])


def new_customer(root: Path, cid: str, n: int) -> str:
    rel = f"customers/new{n}.yaml"
    write_files(root, {rel: f"name: Neu {n}\nreferred_by: {cid}\nemail: neu{n}@example.com\n"
                            "address: {postal_code: '99423'}\n"})
    return rel


def customer_gone(root: Path, cid: str, n: int) -> str:
    """A customer's file deleted (their interactions and referrals now name nobody: an
    error the rebuild goes on with), or written again if it was."""
    return _toggle(root, f"customers/{cid}.yaml", CUSTOMERS[cid])


def deal(root: Path, cid: str, n: int) -> str:
    rel = f"deals/d{n % 3}.yaml"
    stage = ("proposal", "negotiation", "won")[n % 3]
    write_files(root, {rel: f"customer: {cid}\ntitle: Kessel {n}\nstage: {stage}\n"
                            f"value: {1000 + 100 * n}\nprobability: 50%\n"
                            "expected_close: 2026-07-15\n"})
    return rel


def locale(root: Path, cid: str, n: int) -> str:
    text = (root / "crmkit.yaml").read_text(encoding="utf-8")
    old, new = ("locale: en", "locale: de") if "locale: en" in text else ("locale: de",
                                                                          "locale: en")
    return _replace(root, "crmkit.yaml", old, new)


EDITS = {
    "rename": rename,
    "new customer": new_customer,
    "customer gone": customer_gone,
    "deal": deal,
    "locale": locale,
    "settle": settle,
    "purchase today": lambda root, cid, n: interaction(root, cid, n, "purchase", 0),
    "purchase yesterday": lambda root, cid, n: interaction(root, cid, n, "purchase", 1),
    "purchase long ago": lambda root, cid, n: interaction(root, cid, n, "purchase", 380),
    "call": lambda root, cid, n: interaction(root, cid, n, "call", 2),
    "delete": delete,
    "page gone": page_gone,
    "referral": referral,
    "address": address,
    "settings": settings_change,
    "template": template_change,
    "plugin": plugin_change,
    "playbook": playbook_change,
}
#: Edits that change the customer's own file: a call instead where it is gone.
EDITS_OF_THE_FILE = frozenset({"rename", "referral", "address"})
#: Edits of watch's own (see :func:`apply`): two files in one rebuild; the day moving on.
WATCH_EDITS = ("next day", "two at once")
steps = st.lists(st.tuples(st.sampled_from(sorted(EDITS) + list(WATCH_EDITS)),
                           st.sampled_from(NAMES),
                           st.integers(0, 11)), min_size=1, max_size=6)


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.relative_to(folder).as_posix(): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def fresh_build(root: Path, scratch: Path, day: dt.date = TODAY) -> dict[str, bytes]:
    copy = scratch / "copy"
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(root, copy, ignore=shutil.ignore_patterns("out", ".crmkit"))
    App(copy, day, use_cache=False).build()
    return outputs(copy / "out")


def apply(root: Path, watcher: Watcher, edit: str, cid: str, n: int) -> set[str]:
    """The files an edit changed (the watcher's day moved on for "next day")."""
    if edit == "two at once":
        other = NAMES[(NAMES.index(cid) + 1) % len(NAMES)]
        if not (root / f"customers/{other}.yaml").exists():  # gone ("customer gone")
            return {interaction(root, cid, n, "purchase", 0),
                    interaction(root, other, n, "call", 2)}
        return {interaction(root, cid, n, "purchase", 0), rename(root, other, n)}
    if edit in EDITS_OF_THE_FILE and not (root / f"customers/{cid}.yaml").exists():
        return {interaction(root, cid, n, "call", 2)}  # gone ("customer gone")
    if edit == "next day":
        assert watcher.today is not None
        watcher.today += dt.timedelta(days=1 + n % 2)
        return {interaction(root, cid, n, "call", 0)}
    return {EDITS[edit](root, cid, n)}


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps)
@example([("purchase yesterday", "bert", 1), ("rename", "anna", 0), ("plugin", "anna", 3)])
@example([("address", "cleo", 0), ("template", "anna", 1), ("settings", "dora", 1)])
@example([("referral", "dora", 1), ("delete", "anna", 0), ("call", "dora", 0)])
@example([("page gone", "bert", 0), ("rename", "cleo", 1), ("page gone", "dora", 2)])
@example([("address", "anna", 0), ("customer gone", "bert", 3), ("rename", "bert", 7),
          ("customer gone", "bert", 7), ("locale", "cleo", 9)])
@example([("purchase today", "dora", 1), ("playbook", "anna", 2), ("playbook", "cleo", 3),
          ("purchase yesterday", "cleo", 0), ("playbook", "dora", 4)])
@example([("playbook", "anna", 10), ("address", "anna", 0), ("playbook", "cleo", 8)])
@example([("new customer", "anna", 1), ("deal", "bert", 2), ("locale", "cleo", 0),
          ("two at once", "dora", 1), ("next day", "bert", 0), ("customer gone", "anna", 0),
          ("deal", "cleo", 4), ("customer gone", "anna", 1), ("locale", "dora", 3)])
def test_watch_writes_what_a_fresh_build_writes(edits):
    with tempfile.TemporaryDirectory() as tmp:
        root, scratch = Path(tmp) / "ws", Path(tmp) / "scratch"
        scratch.mkdir()
        write_files(root, workspace_files())
        lines: list[str] = []
        watcher = Watcher(root, TODAY, lines.append)
        assert watcher.rebuild(None)
        assert outputs(root / "out") == fresh_build(root, scratch)
        for edit, cid, n in edits:
            changed = apply(root, watcher, edit, cid, n)
            if not watcher.rebuild(changed):
                continue  # a broken file: the last good output stays (tested elsewhere)
            assert watcher.today is not None
            assert outputs(root / "out") == fresh_build(root, scratch, watcher.today), (
                edit, cid, n, lines)


def test_the_example_plugins_take_part(tmp_path):
    """The property above is only worth something if the docs' plugins do something here."""
    root = tmp_path / "ws"
    write_files(root, workspace_files())
    app = App(root, TODAY)
    assert app.workspace.errors == []
    assert {r.kind for r in app.reminders()} >= {"anniversary", "follow_up", "stay_in_touch",
                                                 "quote", "win_back"}
    assert app.labels().column("lifecycle") == {"anna": "lost", "bert": "active",
                                                "cleo": "lost", "dora": "lead"}
    assert app.labels().column("busy_area") == {"anna": True, "bert": True, "cleo": False,
                                                "dora": False}
    weekly = App(root, TODAY).build()
    text = (root / "out" / "reports" / "weekly.md").read_text(encoding="utf-8")
    assert "## Where most customers live\n\n- Anna\n- Bert\n" in text
    assert any(p.name == "weekly.html" for p in weekly)
