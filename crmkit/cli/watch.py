"""``crmkit watch``: rebuild the generated files whenever the workspace changes.

The watchdog callback only records which paths changed, under a condition; the
main loop waits until events stop for a moment (an editor's save is several
events), reloads the workspace with the parse cache kept in memory (so only the
changed files are parsed again), and lets the plugins rebuild (``crmkit_build``).
A file that is broken mid-edit shows its diagnostic and the last good output
stays.  ``--serve`` serves the output folder on 127.0.0.1, and pages reload
themselves after each rebuild.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import functools
import gc
import hashlib
import http.server
import os
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

from ..engine.app import App
from ..engine.i18n import cli_gettext as _
from ..engine.i18n import cli_ngettext as ngettext
from ..engine.plugins import LOCAL_PLUGIN_DIR
from ..engine.templates import WORKSPACE_TEMPLATES
from ..incremental.cache import ParseCache
from ..incremental.memo import Memo
from ..incremental.reload import apply_changes
from ..loading.loader import (
    CONFIG_FILE,
    PLAYBOOK_FOLDER,
    RECORD_FOLDERS,
    YAML_SUFFIXES,
    LoadedFiles,
    is_editor_file,
    is_hidden_record,
    is_not_read,
    load_workspace_files,
)
from ..model.workspace import normal_output

DEBOUNCE_SECONDS = 0.03
#: The wait once every file written in a batch has been closed: the save is complete,
#: and a program that writes several files (``git checkout``) goes on within this.
CLOSED_QUIET_SECONDS = 0.01
#: A change in these folders reloads plugins and registrations, like crmkit.yaml.
SETTINGS_FOLDERS = frozenset({LOCAL_PLUGIN_DIR, PLAYBOOK_FOLDER})
IGNORED_DIRS = frozenset({".git", ".hg", ".svn", ".crmkit", "__pycache__", ".idea", ".vscode"})
#: The folders whose ``*.yaml``/``*.yml`` files the loader reads, at any depth.
YAML_FOLDERS = frozenset({*RECORD_FOLDERS, PLAYBOOK_FOLDER})
#: Every folder crmkit reads from, besides ``crmkit.yaml`` itself.
READ_FOLDERS = YAML_FOLDERS | {LOCAL_PLUGIN_DIR, WORKSPACE_TEMPLATES}
VERSION_PATH = "/__crmkit__/version"
RELOAD_SCRIPT = f"""<script>
(function () {{
  var seen = null;
  setInterval(function () {{
    fetch("{VERSION_PATH}", {{cache: "no-store"}}).then(function (r) {{ return r.text(); }})
      .then(function (v) {{ if (seen !== null && v !== seen) location.reload(); seen = v; }})
      .catch(function () {{}});
  }}, 1000);
}})();
</script>"""


def is_read(rel: str, is_dir: bool = False) -> bool:
    """Whether crmkit reads the workspace-relative file ``rel`` (with ``is_dir``: files
    in the folder ``rel``): ``crmkit.yaml``; the ``*.yaml``/``*.yml`` files of the record
    folders and ``playbooks/``; and any file in ``plugins/`` or ``templates/`` with a
    suffix (a template may include any file there; a plugin may import a module of
    its own or read a file beside it, ``plugins/prices.csv``: stale output would be
    worse than a reload too many).  And a record file hidden by its name
    (``customers/.anna.yaml``): a build warns that it is not read, and so does the
    rebuild.  Not: other hidden files and folders, editor files
    (:func:`is_editor_file`), temporary files without a suffix (``sed -i``'s
    ``sedXXXXXX``) and everything else in the workspace."""
    parts = rel.split("/")
    name = parts[-1]
    if parts[0] not in READ_FOLDERS:
        return rel == CONFIG_FILE
    if len(parts) == 1:
        return True  # the folder itself: moved, deleted, or a link to it replaced
    if any(p.startswith(".") or p in IGNORED_DIRS for p in parts[1:-1]) or not name:
        return False
    if parts[0] in RECORD_FOLDERS and not is_dir and is_hidden_record(name):
        return True  # not read, but a record somebody named so: the rebuild says so
    if name.startswith(".") or name in IGNORED_DIRS:
        return False
    if is_dir:
        return True
    if is_editor_file(name):
        return False
    if parts[0] in YAML_FOLDERS:
        return name.endswith(YAML_SUFFIXES)
    return "." in name[1:]


def is_ignored(rel: str, output: str, is_dir: bool = False) -> bool:
    """Paths a rebuild does not care about: the output folder (however ``output``
    spells it: ``./out``, ``generated/site/``) and what crmkit does not read
    (:func:`is_read`)."""
    rel = rel.replace(os.sep, "/")
    output = normal_output(output)
    return rel == output or rel.startswith(output + "/") or not is_read(rel, is_dir)


class ChangeCollector:
    """Collects changed paths from watchdog's thread; the main loop takes them in batches."""

    def __init__(self, root: Path, output: str) -> None:
        self.root = root
        #: The output folder as written and, when it is a link, where it leads.
        self.outputs = [output]
        #: Where a folder crmkit reads leads when it is a link inside the workspace
        #: (``data/customers`` for ``customers``): events name the real path.
        self.links: dict[str, str] = {}
        self.condition = threading.Condition()
        self.changed: set[str] = set()
        self.last_event = 0.0
        #: Files written to (created, modified) and not closed since.
        self.writing: set[str] = set()
        #: The last event closed a file written to, and no other is being written:
        #: the batch is complete, so it needs no long wait (a rename still does: editors
        #: that save by renaming move the old file away before the new one arrives).
        self.complete = False

    def dispatch(self, event: object) -> None:  # the watchdog handler protocol
        is_dir = bool(getattr(event, "is_directory", False))
        kind = getattr(event, "event_type", "")
        if is_dir and kind in ("modified", "opened", "closed", "closed_no_write"):
            return
        if kind in ("opened", "closed_no_write"):
            return
        paths = [getattr(event, "src_path", ""), getattr(event, "dest_path", "")]
        for raw in paths:
            if not raw:
                continue
            path = os.fsdecode(raw)
            try:
                rel = Path(path).relative_to(self.root).as_posix()
            except ValueError:
                continue
            for real, folder in self.links.items():
                if rel == real or rel.startswith(real + "/"):
                    rel = folder + rel[len(real):]
                    break
            if rel in ("", ".") or any(is_ignored(rel, out, is_dir) for out in self.outputs):
                continue
            with self.condition:
                self.changed.add(rel)
                if kind in ("created", "modified") and not is_dir:
                    self.writing.add(rel)
                else:
                    self.writing.discard(rel)
                self.complete = kind == "closed" and not self.writing
                self.last_event = time.monotonic()
                self.condition.notify_all()

    def next_batch(self, quiet: float = DEBOUNCE_SECONDS, poll: float = 0.5) -> set[str]:
        """Block until something changed and then nothing for ``quiet`` seconds
        (:data:`CLOSED_QUIET_SECONDS` once the files written are closed)."""
        with self.condition:
            while not self.changed:
                self.condition.wait(poll)
            while True:
                wait = CLOSED_QUIET_SECONDS if self.complete else quiet
                remaining = self.last_event + wait - time.monotonic()
                if remaining <= 0:
                    break
                self.condition.wait(remaining)
            # a file created by a link (crmkit log's O_TMPFILE) is never closed under its
            # name: what was written before this batch is not waited for any more
            batch, self.changed, self.writing = self.changed, set(), set()
            return batch


#: Names the server answers to: a page of another name (a DNS rebinding attack, a
#: hostile site's requests to 127.0.0.1 under its own name) gets 421.
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost"})
#: Only the page itself: its own inline <style> and SVG, the reload script (by hash),
#: the version check and images of the same origin; no plugins, frames, forms or
#: anything from elsewhere.
_RELOAD_CODE = RELOAD_SCRIPT.removeprefix("<script>").removesuffix("</script>").encode()
_RELOAD_HASH = base64.b64encode(hashlib.sha256(_RELOAD_CODE).digest()).decode()
CONTENT_SECURITY_POLICY = (
    f"default-src 'none'; script-src 'sha256-{_RELOAD_HASH}'; "
    "style-src 'self' 'unsafe-inline'; img-src 'self' data:; connect-src 'self'; "
    "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")


class _Handler(http.server.SimpleHTTPRequestHandler):
    """Serves the regular files of the output folder (a link that leads out of it, a
    folder without ``index.html`` and anything else is 404) to requests addressed to
    127.0.0.1 or localhost; HTML pages get the reload script."""

    version: Callable[[], str] = staticmethod(lambda: "0")

    def do_GET(self) -> None:
        self._answer(head=False)

    def do_HEAD(self) -> None:
        self._answer(head=True)

    def _answer(self, head: bool) -> None:
        host, _, port = (self.headers.get("Host") or "").strip().lower().rpartition(":")
        if not host or not port.isdigit():
            host, port = (self.headers.get("Host") or "").strip().lower(), ""
        if host not in LOCAL_HOSTS or port not in ("", str(self.server.server_address[1])):
            self._send(421, b"misdirected request: use http://127.0.0.1/ or localhost\n",
                       "text/plain; charset=utf-8", head)
            return
        if self.path.split("?")[0] == VERSION_PATH:
            self._send(200, self.version().encode(), "text/plain", head)
            return
        path = self._regular_file(self.translate_path(self.path))
        if path is None:
            self._send(404, b"not found\n", "text/plain; charset=utf-8", head)
            return
        if path.suffix == ".html":
            html = path.read_text(encoding="utf-8", errors="replace")
            html = html.replace("</body>", RELOAD_SCRIPT + "</body>") if "</body>" in html \
                else html + RELOAD_SCRIPT
            self._send(200, html.encode("utf-8"), "text/html; charset=utf-8", head)
            return
        self._send(200, path.read_bytes(), self.guess_type(str(path)), head)

    def _regular_file(self, translated: str) -> Path | None:
        """The regular file (or a folder's ``index.html``) the request names, resolved
        and inside the served folder; ``None`` for anything else."""
        folder = Path(self.directory).resolve()
        try:
            path = Path(translated).resolve()
            if path.is_dir():
                path = (path / "index.html").resolve()
            if not path.is_relative_to(folder) or not stat.S_ISREG(path.stat().st_mode):
                return None
        except (OSError, RuntimeError):  # missing, unreadable, a link loop
            return None
        return path

    def _send(self, status: int, body: bytes, content_type: str, head: bool = False) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("Referrer-Policy", "no-referrer")
        self.end_headers()
        if not head:
            self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def serve(folder: Path, port: int, version: Callable[[], str]) -> http.server.HTTPServer:
    """Start serving ``folder`` on 127.0.0.1:``port`` in a thread."""
    handler = type("Handler", (_Handler,), {"version": staticmethod(version)})
    server = http.server.ThreadingHTTPServer(
        ("127.0.0.1", port), functools.partial(handler, directory=str(folder)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Watcher:
    """Rebuilds on change; ``echo`` gets one line per rebuild."""

    def __init__(self, root: Path, today: dt.date | None, echo: Callable[[str], None],
                 workspace_plugins: bool = True) -> None:
        self.root = root
        self.today = today
        self.workspace_plugins = workspace_plugins  # --no-workspace-plugins: never
        self.echo = echo
        self.cache = ParseCache(root)
        self.cache.reuse_loaded = True  # a full load after a change unpickles nothing again
        self.builds = 0
        self.output = "out"
        self.app: App | None = None
        self.files: LoadedFiles | None = None
        self._loaded_in_full = False

    def next_app(self, changed: set[str] | None) -> App:
        """The App after ``changed``: the change applied to the loaded workspace when
        :mod:`crmkit.incremental.reload` can, else a full load (through the parse cache
        in memory) that tells the memo which customers it changed.  The settings, a
        playbook (a reminder kind of its own) or a workspace plugin changed: plugins,
        registrations and everything else are loaded afresh, with a fresh memo."""
        previous = self.app
        replaced = None  # a workspace a full load replaces, keeping the memo's values
        if previous is None or changed is None or any(
                rel == CONFIG_FILE or rel.split("/", 1)[0] in SETTINGS_FOLDERS
                for rel in changed):
            app = App(self.root, self.today, parse_cache=self.cache, memo=Memo(active=True),
                      workspace_plugins=self.workspace_plugins)
        else:
            records = {rel for rel in changed if not rel.startswith(WORKSPACE_TEMPLATES + "/")}
            app = previous._sharing(self.today, *(("workspace",) if not records else ()),
                                    *(("templates",) if len(records) == len(changed) else ()))
            app.problems = []
            if records:
                updated = None if self.files is None else apply_changes(
                    previous.workspace, self.files, records, self.cache, app.host, app.today,
                    app.registry, app._memo)
                if updated is not None:
                    app.__dict__["workspace"] = updated
                else:  # a full load (a customer or a deal added, say): the memo is told
                    replaced = previous.workspace  # which customers it changed
        if "workspace" not in app.__dict__:
            self.app = self.files = None
            workspace, self.files = load_workspace_files(
                app.root, app.host, settings_file=app._settings_file[0], cache=self.cache,
                today=app.today, registry=app.registry, memo=app._memo, previous=replaced)
            app.__dict__["workspace"] = workspace
            self._loaded_in_full = True  # moved out of the collector's way after the rebuild
        self.app = app
        return app

    def rebuild(self, changed: set[str] | None = None) -> bool:
        """Reload and rebuild; ``False`` (and the old output kept) if a changed file broke."""
        started = time.perf_counter()
        gc.disable()  # collected after the rebuild, when nobody waits for it
        self._loaded_in_full = False
        try:
            return self._rebuild(changed, started)
        finally:
            gc.enable()
            if self._loaded_in_full:
                _keep_out_of_gc()
            else:
                gc.collect()

    def _rebuild(self, changed: set[str] | None, started: float) -> bool:
        app = self.next_app(changed)
        workspace = app.workspace
        self.output = workspace.settings.output
        what = _describe(changed)
        broken = [d for d in workspace.diagnostics if d.is_error and d.location
                  and (changed is None or d.location.path in changed)]
        if broken:
            for diagnostic in broken:
                self.echo(str(diagnostic))
            self.echo(f"{_clock()} {what}: " + ngettext(
                "%(num)d error, kept the last good output",
                "%(num)d errors, kept the last good output", len(broken)) % {"num": len(broken)})
            return False
        app.page_checks = []  # the pages the change did not touch: checked after the line
        written = app.build()
        for problem in app.problems:
            self.echo(str(problem))
        self.builds += 1
        took = time.perf_counter() - started
        stats = workspace.stats
        parsed = (", " + ngettext("%(num)d file parsed", "%(num)d files parsed", stats.parsed)
                  % {"num": stats.parsed}) if stats else ""
        # how many files changed, of those the build made (the others held their text);
        # a plugin that failed midway wrote files it could not name: no total then
        counts = {"changed": app.outputs_changed, "num": len(written),
                  "seconds": f"{took:.2f}"}
        if app.outputs_changed > len(written):
            done = ngettext("wrote %(changed)d file in %(seconds)s s",
                            "wrote %(changed)d files in %(seconds)s s",
                            app.outputs_changed) % counts
        else:
            done = ngettext("wrote %(changed)d of %(num)d file in %(seconds)s s",
                            "wrote %(changed)d of %(num)d files in %(seconds)s s",
                            len(written)) % counts
        self.echo(f"{_clock()} {what}: {done}{parsed}")
        for diagnostic in workspace.diagnostics if changed else ():
            if is_not_read(diagnostic) and diagnostic.location \
                    and diagnostic.location.path in changed:  # a changed file not read
                self.echo(str(diagnostic))
        warning = app.errors_warning()  # e.g. a deleted customer's interactions remain
        if warning:
            self.echo(warning)
        restored = app.restore_pages()
        if restored:
            self.echo(f"{_clock()} " + ngettext(
                "wrote again %(num)d page deleted or changed outside crmkit watch",
                "wrote again %(num)d pages deleted or changed outside crmkit watch",
                restored) % {"num": restored})
        return True

    def outputs(self) -> list[str]:
        """The output folder as written and, if it is a link, where it leads (relative)."""
        outputs = [self.output]
        with contextlib.suppress(OSError, ValueError):
            root = self.root.resolve()
            real = (self.root / self.output).resolve().relative_to(root).as_posix()
            if real not in (".", normal_output(self.output)):
                outputs.append(real)
        return outputs

    def links(self) -> dict[str, str]:
        """Where each folder crmkit reads leads, when it is a link to another folder of
        the workspace (relative), by the folder's name."""
        links = {}
        root = self.root.resolve()
        for folder in sorted(READ_FOLDERS):
            with contextlib.suppress(OSError, ValueError, RuntimeError):  # RuntimeError: a loop
                if (self.root / folder).is_symlink():
                    real = (self.root / folder).resolve().relative_to(root).as_posix()
                    if real != ".":
                        links[real] = folder
        return links

    def run(self, serve_port: int | None = None) -> None:
        from watchdog.observers import Observer  # imported lazily: only watch needs it

        self.rebuild(None)
        collector = ChangeCollector(self.root, self.output)
        collector.outputs, collector.links = self.outputs(), self.links()
        observer = Observer()
        observer.schedule(collector, str(self.root), recursive=True)
        observer.start()
        server = None
        if serve_port is not None:
            assert self.app is not None
            out = self.app.workspace.output_dir  # checked: a folder of this workspace's own
            out.mkdir(parents=True, exist_ok=True)
            server = serve(out, serve_port, lambda: str(self.builds))
            self.echo(_("serving %(folder)s/ on %(url)s (pages reload after each rebuild)")
                      % {"folder": self.output,
                         "url": f"http://127.0.0.1:{server.server_port}/"})
        self.echo(_("watching for changes; Ctrl-C stops"))
        try:
            while True:
                batch = collector.next_batch()
                collector.outputs, collector.links = self.outputs(), self.links()
                try:
                    self.rebuild(batch)
                except Exception as exc:  # a failed rebuild is logged; watching goes on
                    self.echo(f"{_clock()} " + _("rebuild failed: %(error)s") % {
                        "error": f"{type(exc).__name__}: {exc}"})
                    self.app = None  # the next change loads everything afresh
        except KeyboardInterrupt:
            pass
        finally:
            observer.stop()
            observer.join(timeout=5)
            if server is not None:
                server.shutdown()
            self.cache.save()
            self.echo(_("stopped"))


def _keep_out_of_gc() -> None:
    """Move what a full load made out of the cyclic garbage collector's way.

    The records live until their file changes, and when it does they are freed by
    reference counting (they hold no cycles).  Left to the collector, each of its
    full passes over 100,000s of them costs most of a second in the middle of a
    rebuild.  Objects frozen by the previous full load are unfrozen first, so that
    garbage among them is still collected.
    """
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _clock() -> str:
    return time.strftime("%H:%M:%S")


def _describe(changed: set[str] | None) -> str:
    if changed is None:
        return _("start")
    names = sorted(changed)
    shown = ", ".join(names[:3])
    return (_("%(files)s (+%(num)d more)") % {"files": shown, "num": len(names) - 3}
            if len(names) > 3 else shown)
