import os
from pathlib import Path

from conftest import age_files

from crmkit.incremental import blobs, parallel, signing
from crmkit.incremental.cache import MAGIC
from crmkit.loading.loader import CACHE_FILE, load_workspace

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


def test_an_altered_blob_is_never_unpickled(make_workspace):
    """The records of each file are a signed blob: a changed byte means a re-parse."""
    root = make_workspace(FILES)
    age_files(root)
    load_workspace(root)
    (blob_file,) = (root / ".crmkit" / "cache").glob("blobs-*")
    data = bytearray(blob_file.read_bytes())
    data[len(data) // 2] ^= 0xFF
    blob_file.write_bytes(bytes(data))
    ws = load_workspace(root)
    assert ws.stats.parsed == 1 and ws.stats.from_cache == 2
    assert sorted(ws.customers) == ["a", "b"] and ws.interactions[0].amount == 10


def test_a_cache_signed_on_another_machine_is_ignored(make_workspace, monkeypatch, tmp_path):
    """A ``.crmkit/`` folder committed to a repository must never be unpickled: the
    digest is keyed with a secret outside the workspace."""
    root = make_workspace(FILES)
    age_files(root)
    load_workspace(root)
    monkeypatch.setenv(signing.KEY_ENV, str(tmp_path / "other-machine-key"))
    signing.machine_key.cache_clear()
    try:
        assert stats(load_workspace(root)) == (3, 3, 0)
        assert (tmp_path / "other-machine-key").stat().st_mode & 0o077 == 0
    finally:
        signing.machine_key.cache_clear()


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


def test_edited_loader_code_invalidates_the_cache(make_workspace, monkeypatch, tmp_path):
    """An editable install keeps ``__version__`` while its loader changes: the cache's
    version holds a digest of the loading and model code, so records parsed by the
    older code are not taken."""
    from crmkit.incremental import cache

    package = Path(cache.__file__).resolve().parent.parent
    assert cache._VERSION.endswith(
        "/" + cache.source_digest(package / "loading", package / "model"))
    code = tmp_path / "code"
    code.mkdir()
    (code / "schema.py").write_text("A = 1\n")
    (code / "notes.txt").write_text("not code\n")
    before = cache.source_digest(code)
    (code / "notes.txt").write_text("still not code\n")
    assert cache.source_digest(code) == before
    (code / "schema.py").write_text("A = 2\n")
    os.utime(code / "schema.py", ns=(1, 1))
    assert cache.source_digest(code) != before

    root = make_workspace(FILES)
    age_files(root)
    load_workspace(root)
    assert stats(load_workspace(root)) == (3, 0, 3)
    monkeypatch.setattr(cache, "_VERSION", cache._VERSION[:-12] + cache.source_digest(code))
    assert stats(load_workspace(root)) == (3, 3, 0)


def test_a_change_appends_one_blob_and_dead_blobs_are_compacted(make_workspace,
                                                                  monkeypatch):
    """A one-file change must not rewrite the records of every file: it appends one
    blob; once most of the blob file is outdated, the next save keeps only live blobs."""
    files = {f"customers/c{i:02}.yaml": f"name: C{i}\n" for i in range(12)}
    root = make_workspace(files)
    age_files(root)
    folder = root / ".crmkit" / "cache"

    def blob_files():
        return sorted(folder.glob("blobs-*"))

    load_workspace(root)
    (first,) = blob_files()
    size = first.stat().st_size
    monkeypatch.setattr(blobs, "MIN_COMPACT", 0)
    monkeypatch.setattr(blobs, "SLACK", 1.5)
    path = root / "customers" / "c00.yaml"
    path.write_text("name: Changed c00\n")
    os.utime(path, (1_600_000_001, 1_600_000_001))
    ws = load_workspace(root)
    assert stats(ws) == (12, 1, 11)
    assert blob_files() == [first] and size < first.stat().st_size < size * 1.2
    for n, name in enumerate(["c01", "c02", "c03", "c04", "c05", "c06"], start=2):
        path = root / "customers" / f"{name}.yaml"
        path.write_text(f"name: Changed {name}\n")
        os.utime(path, (1_600_000_000 + n, 1_600_000_000 + n))
        ws = load_workspace(root)
        assert stats(ws) == (12, 1, 11)
    (compacted,) = blob_files()
    assert compacted != first and compacted.stat().st_size < size * 1.5
    assert ws.customers["c06"].name == "Changed c06"
    again = load_workspace(root)
    assert stats(again) == (12, 0, 12) and again.customers == ws.customers


def test_parallel_cold_load_equals_the_serial_one(make_workspace, monkeypatch):
    """Forked workers parse (and pickle cache segments) exactly like one process."""
    files = {f"customers/c{i:03}.yaml": f"name: Customer {i}\nemail: c{i}@example.com\n"
             for i in range(40)}
    files.update({f"interactions/2025/i{i:03}.yaml":
                  f"customer: c{i % 45:03}\ndate: 2025-01-{i % 28 + 1:02}\ntype: call\n"
                  f"summary: call {i}\n" for i in range(120)})
    files["interactions/2025/broken.yaml"] = "customer: [\n"
    root = make_workspace(files)
    age_files(root)
    serial = load_workspace(root, use_cache=False)
    monkeypatch.setattr(parallel, "MIN_ITEMS", 10)
    monkeypatch.setattr(parallel, "CHUNK", 7)
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    monkeypatch.setattr(parallel.threading, "active_count", lambda: 1)  # other tests' threads
    used = []
    original = parallel._map
    monkeypatch.setattr(parallel, "_map", lambda *a: used.append(1) or original(*a))
    cold = load_workspace(root)
    assert used, "the parallel path was not taken"
    assert stats(cold) == (161, 161, 0)
    assert cold.customers == serial.customers
    assert cold.interactions == serial.interactions
    assert [str(d) for d in cold.diagnostics] == [str(d) for d in serial.diagnostics]
    assert any("unknown customer 'c040'" in str(d) for d in cold.diagnostics)
    warm = load_workspace(root)  # from the blobs the workers wrote
    assert stats(warm) == (161, 0, 161)
    assert warm.interactions == serial.interactions


def test_no_workers_are_forked_while_other_threads_run(monkeypatch):
    """Forking a process with threads (crmkit watch's observer) risks deadlocks."""
    import threading

    monkeypatch.setattr(parallel, "MIN_ITEMS", 1)
    monkeypatch.setattr(parallel, "cores", lambda: 2)
    items = list(range(10))
    if threading.active_count() == 1:
        chunks = parallel.map_chunks(lambda chunk: sum(chunk), items)
        assert chunks is not None and sum(chunks) == 45
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert parallel.map_chunks(lambda chunk: sum(chunk), items) is None
    finally:
        stop.set()
        other.join()
