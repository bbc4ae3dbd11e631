"""crmkit watch with real file events (inotify through watchdog) in a real process."""

import base64
import hashlib
import http.client
import os
import queue
import re
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import CRMKIT, EXAMPLE, age_files

from crmkit.cli.watch import is_ignored

FILES = {
    "customers/anna.yaml": "name: Anna\nbirthday: 1980-06-05\n",
    "customers/bert.yaml": "name: Bert\n",
    "interactions/a.yaml": "customer: anna\ndate: 2026-05-01\ntype: purchase\namount: 100\n",
}


class Watch:
    """A running `crmkit watch`, its output lines in a queue."""

    def __init__(self, root: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [CRMKIT, "-w", root, "--today", "2026-06-01", "watch", *args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            # Ctrl-C as in a terminal: a test run started in the background (`... &`)
            # ignores SIGINT, and its children would inherit that
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:  # type: ignore[union-attr]
            self.lines.put(line.rstrip("\n"))

    def expect(self, pattern: str, timeout: float = 15) -> str:
        deadline = time.monotonic() + timeout
        seen = []
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.1)
            except queue.Empty:
                continue
            seen.append(line)
            if re.search(pattern, line):
                return line
        raise AssertionError(f"no line matching {pattern!r}; got {seen}")

    def quiet(self, seconds: float = 1.2) -> list[str]:
        """Lines printed during the next ``seconds``."""
        time.sleep(seconds)
        lines = []
        while not self.lines.empty():
            lines.append(self.lines.get())
        return lines

    def stop(self) -> int:
        self.process.send_signal(signal.SIGINT)
        return self.process.wait(timeout=15)


@pytest.fixture
def watching(make_workspace):
    root = make_workspace(FILES)
    running = Watch(root)
    running.expect(r"start: wrote \d+ of \d+ files?\b")
    running.expect("watching for changes")
    yield root, running
    if running.process.poll() is None:
        running.process.kill()


def test_edit_add_delete_and_rename_each_rebuild(watching):
    root, watch = watching
    weekly = root / "out" / "reports" / "weekly.md"
    (root / "customers" / "bert.yaml").write_text("name: Bert Brown\n")
    watch.expect(r"customers/bert\.yaml: wrote \d+ of \d+ files? in [\d.]+ s")
    (root / "customers" / "cleo.yaml").write_text("name: Cleo\n")
    (root / "interactions" / "c.yaml").write_text("customer: cleo\ndate: 2026-05-30\ntype: call\n")
    watch.expect(r"customers/cleo\.yaml, interactions/c\.yaml: wrote")
    assert "- Cleo" in weekly.read_text()  # a new lead this week
    (root / "interactions" / "c.yaml").unlink()
    watch.expect(r"interactions/c\.yaml: wrote")
    assert "- Cleo" not in weekly.read_text()
    os.rename(root / "customers" / "bert.yaml", root / "customers" / "bernd.yaml")
    watch.expect(r"customers/bernd\.yaml, customers/bert\.yaml: wrote")
    assert watch.stop() == 0
    watch.expect("stopped")


def test_pages_deleted_or_changed_behind_its_back_are_written_again_after_the_line(watching):
    """The pages a change does not touch are checked after the rebuild is reported (the
    change is shown first); those deleted or rewritten meanwhile are written again, and
    watch says how many."""
    root, watch = watching
    pages = root / "out" / "customers"
    anna, bert = (pages / "anna.html").read_text(), (pages / "bert.html").read_text()
    (pages / "anna.html").unlink()
    (pages / "bert.html").write_text("stale")
    time.sleep(0.3)  # the page events are ignored: nothing is rebuilt for them
    (root / "customers" / "cleo.yaml").write_text("name: Cleo\n")
    watch.expect(r"customers/cleo\.yaml: wrote \d+ of \d+ files")
    watch.expect(r"\d\d:\d\d:\d\d wrote again 2 pages deleted or changed outside crmkit watch$")
    assert (pages / "anna.html").read_text() == anna
    assert (pages / "bert.html").read_text() == bert
    assert (pages / "cleo.html").exists()
    (root / "customers" / "cleo.yaml").write_text("name: Cleo Clark\n")
    watch.expect(r"customers/cleo\.yaml: wrote")
    assert [line for line in watch.quiet() if "wrote again" in line] == []


def test_pages_nobody_makes_are_removed_and_nothing_else(watching):
    """A deleted customer's page goes with the rebuild; a page of crmkit's that appeared
    behind watch's back goes right after the line (as a fresh build would remove it);
    a page of the user's own stays."""
    root, watch = watching
    folder = root / "out" / "customers"
    assert (folder / "bert.html").exists()
    (root / "customers" / "bert.yaml").unlink()
    watch.expect(r"customers/bert\.yaml: wrote")
    assert not (folder / "bert.html").exists()
    ghost, mine = folder / "ghost.html", folder / "mine.html"
    ghost.write_text('<meta name="generator" content="crmkit"> an old page')
    mine.write_text("<p>my own page</p>")
    (root / "customers" / "anna.yaml").write_text("name: Anna\nbirthday: 1980-06-05\nnotes: x\n")
    watch.expect(r"customers/anna\.yaml: wrote")
    deadline = time.monotonic() + 10
    while ghost.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not ghost.exists() and mine.read_text() == "<p>my own page</p>"


def test_a_burst_of_saves_is_one_rebuild(watching):
    """A file written in parts 10 ms apart while it stays open is one rebuild (it is not
    complete until closed); saves in a row end in a rebuild of the last one."""
    root, watch = watching
    path = root / "customers" / "anna.yaml"
    with path.open("w") as handle:
        for n in range(10):
            handle.write("name: Anna Teil\nbirthday: 1980-06-05\n" if n == 0
                         else f"# part {n}\n")
            handle.flush()
            time.sleep(0.01)
    watch.expect(r"customers/anna\.yaml: wrote")
    assert [line for line in watch.quiet() if "wrote" in line] == []
    assert "Birthday of Anna Teil" in (root / "out" / "reports" / "weekly.md").read_text()
    for n in range(10):  # a program that saves again and again (each save complete)
        path.write_text(f"name: Anna Save{n}\nbirthday: 1980-06-05\n")
    watch.expect(r"customers/anna\.yaml: wrote")
    watch.quiet()  # a save more than 0.01 s after the one before is a rebuild of its own
    assert "Birthday of Anna Save9" in (root / "out" / "reports" / "weekly.md").read_text()


def test_a_save_is_complete_once_the_files_written_are_closed(tmp_path):
    """Real file events: a file still open for writing keeps the long wait (its content
    may be half there); once closed, the batch is complete and waits only briefly; a
    rename (how some editors save: the old file moved away first) waits long again.
    A batch forgets what it waited for: a file created by a link (crmkit log) is never
    closed under its name."""
    from watchdog.observers import Observer

    from crmkit.cli.watch import ChangeCollector

    (tmp_path / "customers").mkdir()
    collector = ChangeCollector(tmp_path, "out")
    observer = Observer()
    observer.schedule(collector, str(tmp_path), recursive=True)
    observer.start()

    def settled(rel: str) -> tuple[set[str], set[str], bool]:
        """The next batch, once ``rel`` is in it, and what was being written and whether
        the batch was complete just before it was taken."""
        deadline = time.monotonic() + 10
        while rel not in collector.changed and time.monotonic() < deadline:
            time.sleep(0.01)
        time.sleep(0.2)  # the rest of this step's events
        with collector.condition:
            writing, complete = set(collector.writing), collector.complete
        return collector.next_batch(), writing, complete

    try:
        path = tmp_path / "customers" / "anna.yaml"
        with path.open("w") as handle:
            handle.write("name: Anna\n")
            handle.flush()
            assert settled("customers/anna.yaml") == (
                {"customers/anna.yaml"}, {"customers/anna.yaml"}, False)
            assert collector.writing == set()
        assert settled("customers/anna.yaml") == ({"customers/anna.yaml"}, set(), True)
        os.rename(path, tmp_path / "customers" / "berta.yaml")
        assert settled("customers/berta.yaml") == (
            {"customers/anna.yaml", "customers/berta.yaml"}, set(), False)
    finally:
        observer.stop()
        observer.join(timeout=5)


def test_a_broken_file_keeps_the_last_good_output(watching):
    root, watch = watching
    weekly = root / "out" / "reports" / "weekly.md"
    before = weekly.read_text()
    (root / "customers" / "anna.yaml").write_text("name: [Anna\n")
    watch.expect(r"customers/anna\.yaml:2:1: error: invalid YAML")
    watch.expect(r"customers/anna\.yaml: 1 error, kept the last good output")
    assert weekly.read_text() == before
    (root / "customers" / "anna.yaml").write_text("name: Anna Fixed\nbirthday: 1980-06-05\n")
    watch.expect(r"customers/anna\.yaml: wrote")
    assert "Birthday of Anna Fixed" in weekly.read_text()


def test_errors_a_change_causes_elsewhere_are_said_after_the_rebuild(watching):
    """Deleting a customer leaves their interactions naming nobody: the rebuild goes on
    (nothing of the deleted file is left to keep), and says the workspace has errors."""
    root, watch = watching
    (root / "customers" / "anna.yaml").unlink()
    watch.expect(r"customers/anna\.yaml: wrote")
    watch.expect(r"^warning: the workspace has 1 error; run 'crmkit check' to see it$")
    (root / "customers" / "anna.yaml").write_text("name: Anna\n")
    watch.expect(r"customers/anna\.yaml: wrote")
    assert [line for line in watch.quiet() if "warning" in line] == []


def test_output_vcs_and_editor_files_are_ignored(watching):
    root, watch = watching
    (root / ".git").mkdir()
    (root / ".git" / "index").write_text("x")
    (root / "out" / "mine.txt").write_text("x")
    (root / "customers" / ".anna.yaml.swp").write_text("x")
    (root / "customers" / "anna.yaml~").write_text("x")
    assert [line for line in watch.quiet() if "wrote" in line] == []


def test_ignore_rules():
    assert is_ignored(".git/objects/ab", "out") and is_ignored("out/reports/x.html", "out")
    assert is_ignored(".crmkit/cache/parse.pickle", "out") and is_ignored("customers/4913", "out")
    assert is_ignored("customers/.#anna.yaml", "out") and is_ignored("customers/a.yaml.swp", "out")
    assert not is_ignored("customers/anna.yaml", "out")
    assert not is_ignored("crmkit.yaml", "out") and not is_ignored("plugins/mine.py", "out")
    # only what crmkit reads: editors' temporary files never start a rebuild
    for temp in ("customers/sedPfIKxC", "customers/anna.yaml___jb_tmp___",
                 "customers/anna.yaml___jb_old___", "customers/#anna.yaml#",
                 "customers/.anna.yaml.kate-swp", "customers/.goutputstream-Q2ZZ3",
                 "customers/anna.yaml.orig", "templates/sedX1b2c3", "plugins/mine.py~",
                 "README.md", "notes/todo.yaml", "crmkit.yaml.swp", "plugins/sedQ1w2e3",
                 "customers/.archive/anna.yaml", "customers/.#anna.yaml",
                 "customers/._anna.yaml", "playbooks/.after.yaml",
                 "plugins/__pycache__/mine.cpython-311.pyc"):
        assert is_ignored(temp, "out"), temp
    for read in ("interactions/2026/a.yml", "deals/d.yaml", "playbooks/after.yaml",
                 "templates/reports/weekly.md.j2", "templates/reports/logo.svg",
                 # a plugin's own module or data file: its output would go stale
                 "plugins/lib/x.py", "plugins/prices.csv"):
        assert not is_ignored(read, "out"), read
    # folders: a moved or deleted folder of records or of a plugin's modules counts
    assert not is_ignored("interactions/2025", "out", is_dir=True)
    assert not is_ignored("customers", "out", is_dir=True)
    assert not is_ignored("plugins/lib", "out", is_dir=True)
    assert is_ignored("customers/.archive", "out", is_dir=True)
    assert is_ignored("notes", "out", is_dir=True)
    # a record hidden by its name is not read: the rebuild says so, as a build does
    assert not is_ignored("customers/.anna.yaml", "out")
    assert not is_ignored("interactions/2026/.call.yml", "out")


def test_a_record_file_hidden_by_its_name_is_said_not_to_be_read(watching):
    """A build warns about customers/.cleo.yaml; so does watch, when it appears, and
    stops counting it once it is renamed (then Cleo is read) or deleted."""
    root, watch = watching
    hidden = root / "customers" / ".cleo.yaml"
    hidden.write_text("name: Cleo\n")
    watch.expect(r"customers/\.cleo\.yaml: wrote 0 of")
    watch.expect(r"^customers/\.cleo\.yaml: warning: skipped: file names starting with a "
                 r"dot are not read \(rename it to cleo\.yaml\)$")
    watch.expect(r"^warning: 1 file in the workspace was not read; run 'crmkit check'")
    (root / "interactions" / ".call.yml").write_text(
        "customer: anna\ndate: 2026-05-20\ntype: call\n")
    watch.expect(r"^warning: 2 files in the workspace were not read")
    hidden.rename(root / "customers" / "cleo.yaml")
    watch.expect(r"customers/cleo\.yaml: wrote")
    watch.expect(r"^warning: 1 file in the workspace was not read")
    assert (root / "out" / "customers" / "cleo.html").exists()
    (root / "interactions" / ".call.yml").unlink()
    watch.expect(r"interactions/\.call\.yml: wrote 0 of")
    assert [line for line in watch.quiet() if "warning" in line] == []


def _rebuilt(line: str, names: str) -> bool:
    """Whether ``line`` is a rebuild's line (written or kept) naming ``names`` only."""
    return re.fullmatch(rf"\d\d:\d\d:\d\d {names}: (wrote|\d+ errors?, kept) .*",
                        line) is not None


def test_an_editors_save_names_the_real_file_and_never_its_temporary_files(watching):
    """How editors save, done with real file events: the log names customers/anna.yaml
    each time and never a temporary file; a temporary file alone starts no rebuild."""
    root, watch = watching
    folder = root / "customers"
    weekly = root / "out" / "reports" / "weekly.md"
    seen = []

    def saved(step: str) -> None:
        """Rebuilds until the saved file is in the output (a save may be two batches)."""
        while True:
            line = watch.expect(r"^\d\d:\d\d:\d\d ")
            seen.append(line)
            assert _rebuilt(line, r"customers/anna\.yaml"), (step, line)
            if f"Birthday of Anna {step}" in weekly.read_text():
                return

    # sed -i: a temporary file beside the record, renamed over it
    (folder / "sedPfIKxC").write_text("name: Anna Sed\nbirthday: 1980-06-05\n")
    os.rename(folder / "sedPfIKxC", folder / "anna.yaml")
    saved("Sed")
    # vim: the old file renamed to a backup, a test file 4913, the new file written
    os.rename(folder / "anna.yaml", folder / "anna.yaml~")
    (folder / "4913").write_text("")
    (folder / "4913").unlink()
    (folder / "anna.yaml").write_text("name: Anna Vim\nbirthday: 1980-06-05\n")
    (folder / ".anna.yaml.swp").write_bytes(b"\x00swap")
    saved("Vim")
    # JetBrains' safe write: a temporary file, the old one moved aside, then removed
    (folder / "anna.yaml___jb_tmp___").write_text("name: Anna Jb\nbirthday: 1980-06-05\n")
    os.rename(folder / "anna.yaml", folder / "anna.yaml___jb_old___")
    os.rename(folder / "anna.yaml___jb_tmp___", folder / "anna.yaml")
    (folder / "anna.yaml___jb_old___").unlink()
    saved("Jb")
    # emacs: a lock link and an autosave file while editing, then the save
    os.symlink("user@host.1234:1", folder / ".#anna.yaml")
    (folder / "#anna.yaml#").write_text("name: Anna Em\n")
    (folder / "anna.yaml").write_text("name: Anna Em\nbirthday: 1980-06-05\n")
    (folder / "#anna.yaml#").unlink()
    (folder / ".#anna.yaml").unlink()
    saved("Em")
    seen += watch.quiet()
    assert [line for line in seen if re.match(r"\d\d:\d\d:\d\d ", line)
            and not _rebuilt(line, r"customers/anna\.yaml")] == []
    # a temporary file that is never renamed (an editor that crashed) rebuilds nothing
    (folder / "sedQ8kLmZ").write_text("name: Left Over\n")
    (folder / "anna.yaml.swp").write_text("x")
    assert [line for line in watch.quiet() if "wrote" in line] == []
    assert watch.stop() == 0


@pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks on this platform")
def test_a_record_folder_linked_inside_the_workspace_is_watched_by_its_name(make_workspace):
    """Events name the real path (data/customers/...); the log names the folder crmkit
    reads (customers/...), as a fresh build would read it."""
    root = make_workspace({k.replace("customers/", "data/customers/"): v
                           for k, v in FILES.items()})
    (root / "customers").symlink_to("data/customers")
    watch = Watch(root)
    try:
        watch.expect("watching for changes")
        (root / "data" / "customers" / "bert.yaml").write_text("name: Bert Brown\n")
        assert _rebuilt(watch.expect(": wrote"), r"customers/bert\.yaml")
        assert watch.stop() == 0
    finally:
        if watch.process.poll() is None:
            watch.process.kill()


def test_serve_reloads_pages_after_a_rebuild(make_workspace):
    root = make_workspace(FILES)
    watch = Watch(root, "--serve", "--port", "0")
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/", watch.expect("serving out/ on")).group(0)
        watch.expect("watching for changes")
        page = urllib.request.urlopen(url + "reports/weekly.html", timeout=5).read().decode()
        assert "__crmkit__/version" in page and "location.reload()" in page
        on_disk = (root / "out" / "reports" / "weekly.html").read_text()
        assert "<script" not in on_disk  # the file itself stays script-free
        version = urllib.request.urlopen(url + "__crmkit__/version", timeout=5).read()
        (root / "customers" / "bert.yaml").write_text("name: Bert Brown\n")
        watch.expect(r"customers/bert\.yaml: wrote")
        assert urllib.request.urlopen(url + "__crmkit__/version", timeout=5).read() != version
        assert watch.stop() == 0
    finally:
        if watch.process.poll() is None:
            watch.process.kill()


def test_start_uses_the_parse_cache_on_disk(make_workspace):
    root = make_workspace(FILES)
    age_files(root)
    subprocess.run([CRMKIT, "-w", root, "--no-cache", "check"], check=True,
                   capture_output=True)
    assert not (root / ".crmkit").exists()
    subprocess.run([CRMKIT, "-w", root, "check"], check=True, capture_output=True)
    running = Watch(root)
    try:
        assert running.expect(r"start: wrote").endswith(", 0 files parsed")
    finally:
        running.process.kill()


def test_watch_output_equals_a_fresh_build_after_each_change(tmp_path):
    """The kept per-customer values, rendered sections and rows must never show stale
    data: after each change the watched output is byte for byte what a separate
    `crmkit --no-cache build` of the same files writes."""
    root = tmp_path / "ws"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("out", ".crmkit"))
    age_files(root)
    watch = Watch(root)
    watch.expect(r"start: wrote \d+ of \d+ files?\b")
    watch.expect("watching for changes")
    customer = sorted((root / "customers").glob("*.yaml"))[0]
    some_interaction = sorted((root / "interactions").rglob("*.yaml"))[-1]
    changes = [
        ("interactions/2026/new-purchase.yaml",
         f"customer: {customer.stem}\ndate: 2026-05-30\ntype: purchase\namount: 4800\n"
         "summary: Neue Heizung\n"),
        (customer.relative_to(root).as_posix(),
         customer.read_text(encoding="utf-8").replace("name: ", "name: Dr. ", 1)),
        (some_interaction.relative_to(root).as_posix(), None),
    ]
    try:
        for n, (rel, text) in enumerate(changes):
            if text is None:
                (root / rel).unlink()
            else:
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel).write_text(text, encoding="utf-8")
            watch.expect(re.escape(rel) + ": wrote", timeout=30)
            fresh = tmp_path / f"fresh{n}"
            shutil.copytree(root, fresh, ignore=shutil.ignore_patterns("out", ".crmkit"))
            subprocess.run([CRMKIT, "-w", fresh, "--today", "2026-06-01", "--no-cache", "build"],
                           check=True, capture_output=True)
            built = sorted(p.relative_to(fresh / "out") for p in (fresh / "out").rglob("*")
                           if p.is_file())
            assert built and built == sorted(p.relative_to(root / "out")
                                             for p in (root / "out").rglob("*") if p.is_file())
            for path in built:
                assert (root / "out" / path).read_bytes() == (fresh / "out" / path).read_bytes(), \
                    (rel, path)
    finally:
        watch.process.kill()


def _get(url: str, path: str, host: str | None = None) -> tuple[int, dict, bytes]:
    """A real HTTP request, with the ``Host:`` header a browser (or an attacker) sends."""
    parsed = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parsed.hostname, parsed.port, timeout=5)
    try:
        connection.request("GET", path, headers={"Host": parsed.netloc if host is None else host})
        response = connection.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        connection.close()


@pytest.fixture
def serving(make_workspace, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("root:x:0:0:the secret\n")
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "index.html").write_text("<p>the secret</p>")
    root = make_workspace(FILES)
    watch = Watch(root, "--serve", "--port", "0")
    url = re.search(r"http://127\.0\.0\.1:\d+/", watch.expect("serving out/ on")).group(0)
    watch.expect("watching for changes")
    (root / "out" / "passwd").symlink_to("/etc/passwd")
    (root / "out" / "secret.txt").symlink_to(secret)
    (root / "out" / "secrets").symlink_to(tmp_path / "secrets", target_is_directory=True)
    (root / "out" / "empty").mkdir()
    yield root, url
    if watch.process.poll() is None:
        watch.process.kill()


def test_serve_answers_only_regular_files_inside_the_output_folder(serving):
    root, url = serving
    for path in ("/passwd", "/secret.txt", "/secrets/", "/secrets/index.html", "/empty/",
                 "/../crmkit.yaml", "/%2e%2e/crmkit.yaml", "/reports/../../crmkit.yaml"):
        status, _, body = _get(url, path)
        assert status == 404, path
        assert b"root:" not in body and b"secret" not in body and b"business" not in body
    (root / "out" / "reports" / "linked.html").symlink_to(root / "out" / "reports" /
                                                          "weekly.html")
    assert _get(url, "/reports/linked.html")[0] == 200  # a link that stays inside is fine
    assert _get(url, "/reports/weekly.md")[0] == 200


def test_serve_answers_only_requests_addressed_to_this_machine(serving):
    _, url = serving
    port = urllib.parse.urlsplit(url).port
    for host in ("127.0.0.1", f"127.0.0.1:{port}", "localhost", f"localhost:{port}",
                 f"LOCALHOST:{port}"):
        assert _get(url, "/reports/weekly.html", host)[0] == 200, host
    for host in ("evil.example", f"evil.example:{port}", f"127.0.0.1.evil.example:{port}",
                 "localhost:1", f"localhost.:{port}", "", f"[::1]:{port}",
                 f"localhost:{port}@evil.example"):
        status, _, body = _get(url, "/reports/weekly.html", host)
        assert status == 421 and b"<html" not in body.lower(), host
        assert _get(url, "/__crmkit__/version", host)[0] == 421


def test_serve_sends_nosniff_and_a_policy_that_allows_only_the_page_itself(serving):
    _, url = serving
    status, headers, body = _get(url, "/reports/dashboard.html")
    assert status == 200 and headers["X-Content-Type-Options"] == "nosniff"
    policy = dict(part.strip().split(" ", 1) for part in
                  headers["Content-Security-Policy"].split(";"))
    assert policy["default-src"] == "'none'"
    assert policy["connect-src"] == "'self'"  # the version check of the reload script
    assert policy["frame-ancestors"] == policy["base-uri"] == policy["form-action"] == "'none'"
    assert "http" not in headers["Content-Security-Policy"]
    # the only script the page runs is the reload script, allowed by its hash
    scripts = re.findall(rb"<script>(.*?)</script>", body, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0]).digest()).decode()
    assert policy["script-src"] == f"'sha256-{digest}'"
    assert "'unsafe-inline'" in policy["style-src"]  # the page's own <style>
    for path in ("/reports/weekly.md", "/reminders.ics", "/nothing-here"):
        headers = _get(url, path)[1]
        assert headers["X-Content-Type-Options"] == "nosniff", path
        assert headers["Content-Security-Policy"].startswith("default-src 'none'"), path


def test_a_plugin_that_fails_midway_is_said_and_no_total_is_made_up(make_workspace):
    """The reports plugin writes the dashboard and then fails on a broken weekly
    template: its files are not in the list the build returns, so the rebuild says how
    many files it wrote, not "8 of 2"."""
    import datetime as dt

    from crmkit.cli.watch import Watcher

    root = make_workspace({**FILES, "templates/reports/weekly.md.j2": "{{ 1 // 0 }}\n"})
    lines: list[str] = []
    assert Watcher(root, dt.date(2026, 6, 1), lines.append).rebuild(None)
    assert any("plugin 'reports' failed" in line and "ZeroDivisionError" in line
               for line in lines), lines
    done = [line for line in lines if ": wrote " in line]
    assert len(done) == 1 and re.search(r" start: wrote \d+ files in [\d.]+ s", done[0]), done
    assert (root / "out" / "reports" / "dashboard.md").exists()


def test_adding_a_customer_or_a_deal_computes_rules_for_that_customer_only(make_workspace):
    """A customer or a deal added or removed is loaded in full, but the memo is told
    which customers that load changed: the others' rule results are kept (at 10,000
    customers, adding one took 37 s when everything was computed again)."""
    import datetime as dt

    from crmkit.cli.watch import Watcher

    root = make_workspace({**FILES, "plugins/counting.py": (
        "from pathlib import Path\n\n"
        "import crmkit\n\n"
        "def seen(c):\n"
        "    with open(Path(__file__).with_name('calls.txt'), 'a') as f:\n"
        "        f.write(c.id + '\\n')\n"
        "    return len(c.history) + len(c.deals)\n\n"
        "@crmkit.hookimpl\n"
        "def crmkit_register(register):\n"
        "    register(crmkit.Label('seen', seen))\n")})
    age_files(root)
    calls = root / "plugins" / "calls.txt"

    def rebuilt(rel: str) -> list[str]:
        calls.write_text("")
        assert watcher.rebuild({rel} if rel else None)
        return sorted(calls.read_text().split())

    watcher = Watcher(root, dt.date(2026, 6, 1), lambda line: None)
    assert rebuilt("") == ["anna", "bert"]
    (root / "customers" / "cleo.yaml").write_text("name: Cleo\n")
    assert rebuilt("customers/cleo.yaml") == ["cleo"]
    (root / "deals").mkdir()
    (root / "deals" / "d1.yaml").write_text("customer: bert\ntitle: Kessel\nstage: proposal\n")
    assert rebuilt("deals/d1.yaml") == ["bert"]
    assert watcher.app is not None and watcher.app.labels()["bert"]["seen"] == 1
    (root / "customers" / "anna.yaml").unlink()  # her purchase now names nobody
    assert rebuilt("customers/anna.yaml") == []
    assert sorted(watcher.app.labels()) == ["bert", "cleo"]


def test_a_purchase_makes_no_figures_parts_again_for_everybody(make_workspace, monkeypatch):
    """A purchase moves the revenue totals; a figure's per-customer parts that depended
    on them (top_customers' did) were made again for all 10,000 customers by every
    purchase in watch.  Only the buyer's parts are made again."""
    import datetime as dt

    import crmkit.incremental.memo as memo
    from crmkit.cli.watch import Watcher

    files = {f"customers/c{i}.yaml": f"name: C{i}\n" for i in range(8)}
    files.update({f"interactions/p{i}.yaml": (
        f"- {{customer: c{i}, date: 2026-0{1 + i % 5}-0{1 + i}, type: purchase, "
        f"amount: {100 * (i + 1)}}}\n"
        f"- {{customer: c{i}, date: 2026-09-1{i}, type: purchase, amount: {50 + i}}}\n")
        for i in range(8)})
    root = make_workspace(files)
    age_files(root)
    everybody: list[str] = []
    original = memo.Memo.per_customer

    def per_customer(self, key, day, ids, compute, *args, **kwargs):
        def counted(todo):
            if len(todo) == len(ids):
                everybody.append(key)
            return compute(todo)
        return original(self, key, day, ids, counted, *args, **kwargs)

    monkeypatch.setattr(memo.Memo, "per_customer", per_customer)
    watcher = Watcher(root, dt.date(2026, 11, 11), lambda line: None)
    watcher.rebuild(None)
    (root / "interactions/new.yaml").write_text(
        "customer: c3\ndate: 2026-11-11\ntype: purchase\namount: 40\n")
    everybody.clear()
    assert watcher.rebuild({"interactions/new.yaml"})
    assert [key for key in everybody if key[0] == "metric-part"] == []
    top = watcher.app.metric("top_customers").value
    assert [row["customer"] for row in top][:2] == ["c7", "c6"]
