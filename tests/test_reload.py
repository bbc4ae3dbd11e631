"""crmkit watch applies changed files to the loaded workspace (crmkit.incremental.reload) and keeps
per-customer values (crmkit.incremental.memo): after any sequence of edits, everything must equal
what a full load and a fresh computation give."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path

import pytest
from conftest import DEFAULT_SETTINGS, write_files
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from crmkit.cli.watch import Watcher
from crmkit.engine.app import App
from crmkit.incremental.reload import apply_changes

TODAY = dt.date(2026, 6, 1)
FILES = {
    "customers/anna.yaml": "name: Anna\nbirthday: 1980-06-05\nemail: anna@example.com\n"
                           "consent: {email: true}\n",
    "customers/bert.yaml": "name: Bert\nreferred_by: anna\nphone: '+49 30 1234'\n",
    "customers/cleo.yaml": "name: Cleo\nservices:\n  - {name: Wartung, every: 12 months, "
                           "start: 2025-01-10}\n",
    "interactions/2026/a1.yaml": "customer: anna\ndate: 2026-05-01\ntype: purchase\n"
                                 "amount: 1200\n",
    "interactions/2026/b1.yaml": "customer: bert\ndate: 2025-03-01\ntype: purchase\n"
                                 "amount: 90\n",
    "interactions/2026/c1.yaml": "- {customer: cleo, date: 2025-02-01, type: service, "
                                 "service: Wartung}\n- {customer: cleo, date: 2026-04-01, "
                                 "type: quote, amount: 500}\n",
}

CUSTOMER_TEXTS = [
    "name: Anna Neu\nbirthday: 1980-06-03\nemail: anna@example.com\n",
    "name: Bert\nreferred_by: nobody\n",
    "name: Bert\nreferred_by: bert\n",
    "name: Cleo\ntags: [vip]\nstage: lost\n",
    "name: [broken\n",
    "name: Cleo\nbirthday: 2026-02-30\n",
]
INTERACTION_TEXTS = [
    "customer: anna\ndate: 2026-05-20\ntype: call\nfollow_up: {date: 2026-06-10}\n",
    "customer: bert\ndate: 2026-05-30\ntype: purchase\namount: 3000\n",
    "customer: cleo\ndate: 2026-05-02\ntype: purchase\namount: 700\n",
    "customer: nobody\ndate: 2026-05-02\ntype: call\n",
    "- {customer: anna, date: 2026-07-01, type: visit}\n- {customer: bert, date: 2024-01-01, "
    "type: complaint}\n",
    "customer: anna\ndate: 2026-13-01\ntype: call\n",
    "customer: [anna\n",
    "- {customer: ghost, date: 2026-01-01, type: nonsense}\n",
]
INTERACTION_PATHS = ["interactions/2026/a1.yaml", "interactions/2026/b1.yaml",
                     "interactions/2026/new.yaml", "interactions/2027/x.yaml"]
#: Not read, and said so (a record somebody hid by its name).
HIDDEN_PATHS = ["customers/.cleo.yaml", "interactions/2026/.h.yml"]

edits = st.one_of(
    st.tuples(st.just("write"), st.sampled_from(["customers/anna.yaml", "customers/bert.yaml",
                                                 "customers/cleo.yaml"]),
              st.sampled_from(CUSTOMER_TEXTS)),
    st.tuples(st.just("write"), st.sampled_from(INTERACTION_PATHS),
              st.sampled_from(INTERACTION_TEXTS)),
    st.tuples(st.just("delete"), st.sampled_from(INTERACTION_PATHS), st.just("")),
    st.tuples(st.just("write"), st.just("customers/dora.yaml"), st.just("name: Dora\n")),
    st.tuples(st.sampled_from(["write", "delete"]), st.sampled_from(HIDDEN_PATHS),
              st.just(INTERACTION_TEXTS[0])),
)


def outcome(app: App) -> tuple[object, ...]:
    """What users see of a workspace: records, problems, labels, reminders, KPIs."""
    ws = app.workspace
    week_ago = app.at(TODAY - dt.timedelta(days=7))
    return (dict(ws.customers), ws.interactions, dict(ws.by_customer), dict(ws.deals),
            [str(d) for d in ws.diagnostics], dict(app.labels()), app.reminders(),
            [(m.name, m.value) for m in app.metrics().values()], dict(week_ago.labels()),
            [(m.name, m.value) for m in week_ago.metrics().values()])


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(edits, min_size=1, max_size=6))
@example([("write", "interactions/2026/new.yaml", INTERACTION_TEXTS[4]),  # older than b1
          ("write", "customers/bert.yaml", CUSTOMER_TEXTS[1]),
          ("delete", "interactions/2026/a1.yaml", ""),
          ("write", "interactions/2026/b1.yaml", INTERACTION_TEXTS[6])])
@example([("write", "interactions/2026/.h.yml", INTERACTION_TEXTS[0]),
          ("write", "customers/.cleo.yaml", INTERACTION_TEXTS[0]),
          ("write", "customers/dora.yaml", "name: Dora\n"),  # a full load: both not read
          ("delete", "interactions/2026/.h.yml", "")])
def test_applied_changes_equal_a_full_load(steps):
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        write_files(root, {"crmkit.yaml": DEFAULT_SETTINGS, **FILES})
        watcher = Watcher(root, TODAY, lambda line: None)
        outcome(watcher.next_app(None))
        for action, rel, text in steps:
            if action == "write":
                write_files(root, {rel: text})
            elif (root / rel).exists():
                (root / rel).unlink()
            app = watcher.next_app({rel})
            fresh = App(root, TODAY, use_cache=False)  # a full load without any cache
            assert outcome(app) == outcome(fresh), (action, rel, text)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no pipes on this platform")
def test_a_hidden_name_that_is_not_a_regular_file_is_said_as_a_full_load_says_it(tmp_path):
    """A dangling link or a pipe named like a hidden record: what the walk of a full
    load says about it, not a file that is not there."""
    root = tmp_path
    write_files(root, {"crmkit.yaml": DEFAULT_SETTINGS, **FILES})
    watcher = Watcher(root, TODAY, lambda line: None)
    watcher.next_app(None)
    os.symlink(root / "nowhere.yaml", root / "customers" / ".gone.yaml")
    os.mkfifo(root / "interactions" / ".pipe.yaml")
    app = watcher.next_app({"customers/.gone.yaml", "interactions/.pipe.yaml"})
    fresh = App(root, TODAY, use_cache=False)
    assert sorted(map(str, app.workspace.diagnostics)) == sorted(
        map(str, fresh.workspace.diagnostics))
    assert sum(".gone.yaml" in str(d) or ".pipe.yaml" in str(d)
               for d in fresh.workspace.diagnostics) == 2


def test_customers_a_change_did_not_touch_keep_their_values(make_workspace):
    # Bert's birthday gives him a reminder of his own (his one purchase of 90 makes him lost
    # and not worth a win-back: no stage reminder)
    root = make_workspace({**FILES, "customers/bert.yaml": FILES["customers/bert.yaml"]
                           + "birthday: 1970-06-12\n"})
    watcher = Watcher(root, TODAY, lambda line: None)
    before = watcher.next_app(None)
    before.reminders()
    write_files(root, {"interactions/2026/a2.yaml":
                       "customer: anna\ndate: 2026-05-25\ntype: call\n"})
    after = watcher.next_app({"interactions/2026/a2.yaml"})
    assert after.workspace.stats.parsed == 1
    assert after.workspace.history("bert") is before.workspace.history("bert")
    assert after.workspace.history("anna") is not before.workspace.history("anna")
    assert after.customer("bert").derived is before.customer("bert").derived
    assert after.customer("anna").derived.last_contact == dt.date(2026, 5, 25)
    # rule results of customers the change did not touch are the very same objects
    assert after.labels().column("lifecycle") is not before.labels().column("lifecycle") or \
        after.labels()["anna"] == before.labels()["anna"]
    bert_reminders = [r for r in before.reminders() if r.customer == "bert"]
    assert [r.kind for r in bert_reminders] == ["birthday"]
    assert all(any(r is s for s in after.reminders()) for r in bert_reminders)
    assert after.labels()["bert"] == before.labels()["bert"]  # a call is no purchase or service
    # the churn risk is the workspace's: Anna's second purchase, half a year after her first
    # (181 days), is the first repeat gap, so the usual gap for Bert's single purchase becomes
    # 181 days instead of the default 365, from the edit of Anna's file alone
    assert "usually every 365 days in this workspace" in before.labels()["bert"]["churn_reason"]
    write_files(root, {"interactions/2025/a0.yaml":
                       "customer: anna\ndate: 2025-11-01\ntype: purchase\namount: 300\n"})
    again = watcher.next_app({"interactions/2025/a0.yaml"})
    assert again.workspace.history("bert") is before.workspace.history("bert")
    assert "usually every 181 days in this workspace" in again.labels()["bert"]["churn_reason"]
    assert dict(again.labels()) == dict(App(root, TODAY, use_cache=False).labels())


def test_what_only_a_full_load_gets_right(make_workspace):
    root = make_workspace(FILES)
    watcher = Watcher(root, TODAY, lambda line: None)
    app = watcher.next_app(None)
    write_files(root, {"customers/dora.yaml": "name: Dora\n", "interactions/notes.txt": "x",
                       "interactions/sub/deep.yaml": "customer: dora\ndate: 2026-01-01\n"
                                                     "type: call\n"})
    for changed in ({"customers/dora.yaml"}, {"interactions/notes.txt"}, {"interactions/sub"},
                    {"deals/d.yaml"}, {"crmkit.yaml"}):
        assert apply_changes(app.workspace, watcher.files, changed, watcher.cache, app.host,
                             TODAY) is None, changed
    updated = watcher.next_app({"customers/dora.yaml", "interactions/notes.txt",
                                "interactions/sub"})
    assert "dora" in updated.workspace.customers
    assert [i.customer for i in updated.workspace.history("dora")] == ["dora"]
    assert any("not a .yaml file" in str(d) for d in updated.workspace.diagnostics)
    (root / "interactions/notes.txt").unlink()  # its warning must go with it
    assert apply_changes(updated.workspace, watcher.files, {"interactions/notes.txt"},
                         watcher.cache, app.host, TODAY) is None
    again = watcher.next_app({"interactions/notes.txt"})
    assert not any("not a .yaml file" in str(d) for d in again.workspace.diagnostics)


def test_the_memo_recomputes_exactly_the_changed_customers_and_moved_columns():
    from crmkit.incremental.memo import Memo

    memo = Memo(active=True)
    asked: list[list[str]] = []

    def compute(ids: list[str]) -> tuple[dict[str, str], dict[str, str]]:
        asked.append(ids)
        return {cid: cid.upper() for cid in ids}, {}

    def values(*args: object) -> dict[str, str]:
        return memo.per_customer("n", None, *args)[0]  # type: ignore[arg-type]

    ids = ["a", "b", "c"]
    first = values(ids, compute)
    assert first == {"a": "A", "b": "B", "c": "C"}
    assert values(ids, compute) is first  # nothing moved: the very same result
    memo.changed({"b"})
    memo.changed({"c", "x"})
    values([*ids, "d"], compute)
    assert asked == [ids, ["b", "c", "d"]]
    column = {"a": 1, "b": 1, "c": 1, "d": 1}
    values([*ids, "d"], compute, (column,))  # a new column: everybody
    same = values([*ids, "d"], compute, (dict(column),))  # an equal column: nobody
    moved = values([*ids, "d"], compute, ({**column, "b": 2},))  # one moved: b
    assert asked[2:] == [[*ids, "d"], ["b"]]
    assert moved is same  # b's value came out equal: the result is the same object
    values([*ids, "d"], compute, ({**column, "b": 2},), ("option", 2))  # options: all
    assert asked[4] == [*ids, "d"]
    for _ in range(70):  # more changes than are remembered: everything afresh
        memo.changed(())
    values([*ids, "d"], compute, ({**column, "b": 2},), ("option", 2))
    assert asked[5] == [*ids, "d"]
    totals: list[int] = []
    assert memo.whole("sum", None, (1, 2), lambda: totals.append(1) or 3) == 3
    assert memo.whole("sum", None, (1, 2), lambda: totals.append(1) or 3) == 3
    assert memo.whole("sum", None, (1, 3), lambda: totals.append(1) or 4) == 4
    assert totals == [1, 1]
    off = Memo()
    off.per_customer("n", None, ids, compute)
    off.per_customer("n", None, ids, compute)
    assert asked[6:] == [ids, ids]


def test_the_memo_names_the_outputs_to_make_again():
    """``crmkit watch`` writes a customer's page again only for those this names."""
    from crmkit.incremental.memo import Memo

    memo = Memo(active=True)
    ids = ["a", "b", "c"]
    labels = {"a": "A", "b": "B", "c": "C"}
    shared = {"locale": "de"}
    # nothing made yet for this key and day: everybody
    assert memo.outputs_to_make("pages", None, ids, (labels,), shared) is None
    memo.outputs_made("pages", None, ids, (labels,), shared)
    assert memo.outputs_to_make("pages", None, ids, (labels,), shared) == set()
    assert memo.outputs_to_make("pages", None, ids, (dict(labels),), dict(shared)) == set()
    memo.changed({"b"})
    assert memo.outputs_to_make("pages", None, ids, (labels,), shared) == {"b"}
    # a value that moved in a column, and a new customer
    assert memo.outputs_to_make("pages", None, [*ids, "d"], ({**labels, "c": "X"},),
                                shared) == {"b", "c", "d"}
    # the shared part, another number of columns, or another day: everybody
    assert memo.outputs_to_make("pages", None, ids, (labels,), {"locale": "en"}) is None
    assert memo.outputs_to_make("pages", None, ids, (labels, labels), shared) is None
    assert memo.outputs_to_make("pages", dt.date(2026, 1, 2), ids, (labels,), shared) is None
    memo.outputs_made("pages", None, ids, (labels,), shared)
    assert memo.outputs_to_make("pages", None, ids, (labels,), shared) == set()
    for _ in range(70):  # more changes than are remembered: everybody
        memo.changed(())
    assert memo.outputs_to_make("pages", None, ids, (labels,), shared) is None
    off = Memo()  # the memo off (a one-off run): everybody, always
    off.outputs_made("pages", None, ids, (labels,), shared)
    assert off.outputs_to_make("pages", None, ids, (labels,), shared) is None
