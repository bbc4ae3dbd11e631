import os

from conftest import age_files

from crmkit.cache import MAGIC
from crmkit.loader import CACHE_FILE, load_workspace

FILES = {
    "customers/a.yaml": "name: A\n",
    "customers/b.yaml": "name: B\n",
    "interactions/x.yaml": "customer: a\ndate: 2024-01-01\ntype: purchase\namount: 10\n",
}


def stats(ws):
    return (ws.stats.files, ws.stats.parsed, ws.stats.from_cache)


def test_second_run_on_an_unchanged_workspace_parses_nothing(make_workspace):
    root = make_workspace(FILES)
    age_files(root)
    assert stats(load_workspace(root)) == (3, 3, 0)
    assert (root / CACHE_FILE).is_file()
    assert (root / ".crmkit" / ".gitignore").read_text() == "*\n"
    second = load_workspace(root)
    assert stats(second) == (3, 0, 3)
    assert second.customers["a"].name == "A"
    assert second.interactions[0].amount == 10


def test_an_edited_file_is_parsed_again(make_workspace):
    root = make_workspace(FILES)
    age_files(root)
    load_workspace(root)
    path = root / "interactions" / "x.yaml"
    path.write_text("customer: a\ndate: 2024-01-01\ntype: purchase\namount: 99\n")
    os.utime(path, (1_600_000_000, 1_600_000_000))  # a different, old mtime
    ws = load_workspace(root)
    assert stats(ws) == (3, 1, 2)
    assert ws.interactions[0].amount == 99


def test_same_size_edit_within_the_same_second_is_not_missed(make_workspace):
    root = make_workspace(FILES)
    load_workspace(root)  # files are brand new: "racy", so not cached
    (root / "customers" / "a.yaml").write_text("name: Z\n")  # same size
    ws = load_workspace(root)
    assert ws.customers["a"].name == "Z"


def test_deleted_files_disappear(make_workspace):
    root = make_workspace(FILES)
    age_files(root)
    load_workspace(root)
    (root / "customers" / "b.yaml").unlink()
    ws = load_workspace(root)
    assert sorted(ws.customers) == ["a"]


def test_a_corrupt_cache_is_ignored(make_workspace):
    root = make_workspace(FILES)
    age_files(root)
    load_workspace(root)
    cache = root / CACHE_FILE
    blob = bytearray(cache.read_bytes())
    blob[-5] ^= 0xFF  # flip a byte in the payload: checksum no longer matches
    cache.write_bytes(bytes(blob))
    ws = load_workspace(root)
    assert stats(ws) == (3, 3, 0)
    assert sorted(ws.customers) == ["a", "b"]
    cache.write_bytes(MAGIC + b"garbage")
    assert stats(load_workspace(root)) == (3, 3, 0)
    cache.write_bytes(b"")
    assert sorted(load_workspace(root).customers) == ["a", "b"]


def test_cached_diagnostics_are_reported_again(make_workspace):
    root = make_workspace({"customers/a.yaml": "name: A\nname: B\n"})
    age_files(root)
    first = [str(d) for d in load_workspace(root).diagnostics]
    second_ws = load_workspace(root)
    assert second_ws.stats.from_cache == 1
    assert [str(d) for d in second_ws.diagnostics] == first != []


def test_read_only_cache_folder_still_loads(make_workspace):
    root = make_workspace(FILES)
    (root / ".crmkit").write_text("not a folder")  # cache cannot be written
    ws = load_workspace(root)
    assert sorted(ws.customers) == ["a", "b"]


def test_no_cache_option(make_workspace):
    root = make_workspace(FILES)
    age_files(root)
    load_workspace(root, use_cache=False)
    assert not (root / CACHE_FILE).exists()


def test_cached_records_equal_freshly_read_ones(make_workspace):
    root = make_workspace({
        "customers/a.yaml": "name: A\nemail: a@x.de\nfields: {heating: gas}\n"
                            "services: [{name: W, interval: 1 year, start: 2024-01-01}]\n",
        "interactions/x.yaml": "- {customer: a, date: '2024-01-01T10:00:00+00:00', type: purchase,"
                               " amount: 10.5, items: [{name: X, quantity: 2}], follow_up: "
                               "{date: 2024-02-01, what: call}}\n"
                               "- {customer: ghost, date: 2024-01-02, type: call}\n"
                               "- {customer: ghost, date: 2024-13-02, type: call}\n",
    })
    age_files(root)
    fresh = load_workspace(root)
    cached = load_workspace(root)
    assert stats(cached) == (2, 0, 2)
    assert cached.customers == fresh.customers and cached.interactions == fresh.interactions
    assert cached.customers["a"].fields == {"heating": "gas"}
    assert [str(d) for d in cached.diagnostics] == [str(d) for d in fresh.diagnostics] == [
        "interactions/x.yaml:2:14: error: unknown customer 'ghost'",
        "interactions/x.yaml:3:14: error: unknown customer 'ghost'",
        "interactions/x.yaml:3:27: error: 'date': '2024-13-02' is not a valid date or time "
        "(month must be in 1..12)",
    ]


def test_changed_interaction_types_invalidate_the_cache(make_workspace):
    root = make_workspace({"customers/a.yaml": "name: A\n",
                           "interactions/x.yaml": "customer: a\ndate: 2024-01-01\n"
                                                  "type: workshop\n"})
    age_files(root)
    assert next(d.message for d in load_workspace(root).diagnostics).startswith(
        "unknown interaction type 'workshop'")
    (root / "crmkit.yaml").write_text("business: X\ninteraction_types: [workshop]\n")
    again = load_workspace(root)
    assert again.diagnostics == () and again.interactions[0].type == "workshop"
    assert stats(again)[1] == 2  # re-read: the fingerprint changed
