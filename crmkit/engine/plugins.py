"""Finding, loading and calling plugins.

Plugins come from three places, and the stock plugins are not special:

* :data:`DEFAULT_PLUGINS`, crmkit's own (``plugins/`` in the repository, the
  ``crmkit_plugins`` package), loaded like datasette's default plugins;
* the ``crmkit`` entry-point group of installed distributions;
* ``*.py`` files in the workspace's ``plugins/`` folder, like pytest's conftest.

``crmkit.yaml``'s ``disable_plugins`` blocks any of them by name.  Every hook is
called through pluggy (so plugins may wrap hooks); each implementation runs
inside a guard: one that raises becomes a diagnostic naming the plugin and the
hook, and the next implementation still runs (for a ``firstresult`` hook too).
``CRMKIT_TRACE_PLUGINS=1`` prints which plugin answered which hook with what.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import re
import sys
import sysconfig
import time
import traceback
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from .. import hookspecs
from ..model import CrmkitError, Diagnostic, Location

ENTRY_POINT_GROUP = "crmkit"
LOCAL_PLUGIN_DIR = "plugins"
TRACE_VARIABLE = "CRMKIT_TRACE_PLUGINS"

#: crmkit's own plugins, in the order they are registered: each is a package of
#: ``crmkit_plugins`` that uses only the public API and imports no other plugin.
DEFAULT_PLUGINS = (
    "checks",
    "segments",
    "reminders",
    "playbooks",
    "drafts",
    "kpis",
    "reports",
    "people",
    "privacy",
    "predict",
    "team",
    "pipeline",
)
STOCK_PACKAGE = "crmkit_plugins"


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """What ``crmkit plugins`` shows about one plugin."""

    name: str
    kind: str  # "stock" | "installed" | "workspace"
    origin: str  # the module for stock and installed ones, the path for workspace files
    version: str | None
    hooks: tuple[str, ...] = ()
    disabled: bool = False


@dataclass
class PluginHost:
    """The plugin manager plus what we learned while loading plugins."""

    pm: pluggy.PluginManager
    plugins: list[PluginInfo] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    #: The workspace folder: workspace plugins' places are shown relative to it.
    root: Path | None = None
    #: The plugin whose hook implementation is running (for registrations).
    current: str | None = None
    #: Failures of hook implementations, as they happen.
    failures: list[Diagnostic] = field(default_factory=list)
    trace: Callable[[str], None] | None = None

    def call(self, hook: str, kinds: Iterable[str] | None = None, **kwargs: Any
             ) -> tuple[list[Any], list[Diagnostic]]:
        """Call ``hook`` on every plugin (through pluggy; with ``kinds``, only on the
        plugins of those kinds: ``"stock"``, ``"installed"``, ``"workspace"``) and flatten
        the iterables they return; a plugin that raises becomes a diagnostic, the others'
        results are kept."""
        results, problems = self._call(hook, kwargs, kinds)
        found: list[Any] = []
        for value in results or ():
            if isinstance(value, Mapping) or not isinstance(value, Iterable) \
                    or isinstance(value, str | bytes):
                found.append(value)
            else:
                found.extend(value)
        return found, problems

    def first(self, hook: str, **kwargs: Any) -> tuple[Any, list[Diagnostic]]:
        """Call a ``firstresult`` hook: the first plugin that returns something wins;
        one that raises is reported and the next one is asked."""
        result, problems = self._call(hook, kwargs)
        return result, problems

    def _call(self, hook: str, kwargs: dict[str, Any], kinds: Iterable[str] | None = None
              ) -> tuple[Any, list[Diagnostic]]:
        before = len(self.failures)
        caller = getattr(self.pm.hook, hook)
        if kinds is not None:
            wanted = set(kinds)
            others = [self.pm.get_plugin(p.name) for p in self.plugins
                      if p.kind not in wanted and not p.disabled]
            caller = self.pm.subset_hook_caller(hook, [p for p in others if p is not None])
        try:
            result = caller(**kwargs)
        except Exception as exc:  # a hook wrapper that raised: nothing else can
            self.failures.append(hook_failure(_plugin_in_traceback(exc, self), hook, exc,
                                              self.root))
            result = None if _is_firstresult(caller) else []
        problems = self.failures[before:]
        del self.failures[before:]
        return result, problems

    def names(self) -> set[str]:
        return {p.name for p in self.plugins if not p.disabled}

    @contextmanager
    def running(self, plugin: str) -> Iterator[None]:
        previous, self.current = self.current, plugin
        try:
            yield
        finally:
            self.current = previous


def _is_firstresult(caller: Any) -> bool:
    spec = getattr(caller, "spec", None)
    return bool(spec and spec.opts.get("firstresult"))


def hook_failure(plugin: str, hook: str, exc: BaseException, root: Path | None = None
                 ) -> Diagnostic:
    if isinstance(exc, CrmkitError):  # said in words, e.g. an output it cannot write
        return Diagnostic.error(f"plugin {plugin!r}: {exc}", source=plugin)
    where = location_in_traceback(exc, root=root)
    return Diagnostic.error(
        f"plugin {plugin!r} failed in {hook}: {type(exc).__name__}: {exc}", where, source=plugin)


def _plugin_in_traceback(exc: BaseException, host: PluginHost) -> str:
    files = {getattr(host.pm.get_plugin(p.name), "__file__", None): p.name
             for p in host.plugins if not p.disabled}
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename in files:
            return files[frame.filename]
    return "?"


_CORE = str(Path(__file__).resolve().parent.parent)
_STDLIB = sysconfig.get_paths()["stdlib"]


def location_in_traceback(exc: BaseException, path: Path | None = None,
                          root: Path | None = None) -> Location | None:
    """Where ``exc`` was raised: the innermost frame in ``path`` if given, else the
    innermost one outside Python's standard library and crmkit's core (the plugin's
    own line, usually); relative to the workspace when it is inside it."""
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename and (path is None or
                                                          Path(exc.filename) == path):
        return Location(_shown(exc.filename, root), exc.lineno or 0, exc.offset or 0)
    template = _template_error_place(exc)
    if template is not None and path is None:
        return Location(_shown(template[0], root), template[1], 0)
    if path is None:
        outside = [f for f in frames if not f.filename.startswith((_CORE, _STDLIB))
                   and not _JINJA.search(f.filename)]
        frames = outside or frames
    for frame in reversed(frames):
        if path is None or Path(frame.filename) == path:
            return Location(_shown(frame.filename, root), frame.lineno or 0, 0)
    return None


#: Jinja's and MarkupSafe's own frames: a failure in a template is the template's (Jinja
#: puts the template's file and line into the traceback), not the library's.
_JINJA = re.compile(r"[\\/](jinja2|markupsafe)[\\/]")


def _template_error_place(exc: BaseException) -> tuple[str, int] | None:
    """A Jinja syntax error's template file and line (it is no Python SyntaxError)."""
    if type(exc).__module__.startswith("jinja2") and getattr(exc, "filename", None) \
            and getattr(exc, "lineno", None):
        return str(exc.filename), int(exc.lineno)  # type: ignore[attr-defined]
    return None


def template_in_traceback(exc: BaseException, root: Path | None = None
                          ) -> Location | None:
    """The template (``*.j2``) line where ``exc`` was raised, if it was raised in one."""
    template = _template_error_place(exc)
    if template is not None:
        return Location(_shown(template[0], root), template[1], 0)
    for frame in reversed(traceback.extract_tb(exc.__traceback__)):
        if frame.filename.endswith(".j2"):
            return Location(_shown(frame.filename, root), frame.lineno or 0, 0)
        if not _JINJA.search(frame.filename):
            return None
    return None


def _shown(filename: str, root: Path | None) -> str:
    if root is not None:
        try:
            return Path(filename).resolve().relative_to(root.resolve()).as_posix()
        except ValueError:
            pass
    return filename


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("crmkit")
    pm.add_hookspecs(hookspecs)
    return pm


def _hooks_of(pm: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    return tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))


def _guard(host: PluginHost, plugin_name: str, hook: str, function: Callable[..., Any]
           ) -> Callable[..., Any]:
    """``function`` as pluggy calls it, with a failure turned into a diagnostic (and
    ``None``, so that pluggy goes on with the next plugin) and, when tracing, a line."""
    def guarded(*args: Any) -> Any:
        started = time.perf_counter()
        try:
            with host.running(plugin_name):
                result = function(*args)
                if inspect.isgenerator(result):  # drained here, so a failure is this plugin's
                    result = list(result)
        except Exception as exc:
            host.failures.append(hook_failure(plugin_name, hook, exc, host.root))
            if host.trace:
                host.trace(f"{hook} <- {plugin_name}: failed: {type(exc).__name__}: {exc}")
            return None
        if host.trace:
            took = (time.perf_counter() - started) * 1000
            host.trace(f"{hook} <- {plugin_name}: {_summary(result)} ({took:.1f} ms)")
        return result

    guarded.__wrapped__ = function  # type: ignore[attr-defined]
    return guarded


def _summary(result: Any) -> str:
    if result is None:
        return "nothing"
    if isinstance(result, list | tuple | set | dict):
        return f"{len(result)} item(s)"
    return type(result).__name__


def _register(host: PluginHost, module: ModuleType, info: PluginInfo,
              where: Location | None) -> None:
    try:
        host.pm.register(module, name=info.name)
    except (pluggy.PluginValidationError, ValueError) as exc:
        host.diagnostics.append(Diagnostic.error(
            f"plugin {info.name!r} cannot be used: {exc}", where, source=info.name))
        return
    unknown = [
        name for name in dir(module)
        if name.startswith("crmkit_") and callable(getattr(module, name))
        and not hasattr(host.pm.hook, name)
    ]
    for name in unknown:
        host.diagnostics.append(Diagnostic.error(
            f"plugin {info.name!r} implements unknown hook {name!r}; "
            "see docs/plugin-hooks.md for the hook names", where, source=info.name))
    try:
        host.pm.check_pending()
    except pluggy.PluginValidationError as exc:
        host.pm.unregister(module)
        host.diagnostics.append(Diagnostic.error(
            f"plugin {info.name!r} cannot be used: {exc}", where, source=info.name))
        return
    for caller in host.pm.get_hookcallers(module) or ():
        for impl in caller.get_hookimpls():
            if impl.plugin is module and not (impl.wrapper or impl.hookwrapper):
                impl.function = _guard(host, info.name, caller.name, impl.function)
    host.plugins.append(PluginInfo(info.name, info.kind, info.origin, info.version,
                                   _hooks_of(host.pm, module)))


def _version() -> str | None:
    from .. import __version__

    return __version__


def load_default_plugins(host: PluginHost, disabled: Iterable[str]) -> None:
    blocked = set(disabled)
    for name in DEFAULT_PLUGINS:
        module_name = f"{STOCK_PACKAGE}.{name}"
        if name in blocked:
            host.plugins.append(PluginInfo(name, "stock", module_name, _version(),
                                           disabled=True))
            continue
        try:
            module = importlib.import_module(module_name)
        except Exception as exc:
            host.diagnostics.append(Diagnostic.error(
                f"plugin {name!r} ({module_name}) failed to import: "
                f"{type(exc).__name__}: {exc}", location_in_traceback(exc), source=name))
            continue
        _register(host, module, PluginInfo(name, "stock", module_name, _version()), None)


def load_entry_point_plugins(host: PluginHost, disabled: Iterable[str]) -> None:
    blocked = set(disabled)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist
        version = dist.version if dist is not None else None
        if ep.name in blocked:
            host.plugins.append(PluginInfo(ep.name, "installed", ep.value, version,
                                           disabled=True))
            continue
        if host.pm.has_plugin(ep.name) or any(p.name == ep.name for p in host.plugins):
            host.diagnostics.append(Diagnostic.error(
                f"installed plugin {ep.name!r} ({ep.value}) has the name of a plugin that "
                "is loaded already; it is left out", source=ep.name))
            continue
        try:
            module = ep.load()
        except Exception as exc:
            host.diagnostics.append(Diagnostic.error(
                f"plugin {ep.name!r} ({ep.value}) failed to import: "
                f"{type(exc).__name__}: {exc}", location_in_traceback(exc), source=ep.name))
            continue
        _register(host, module, PluginInfo(ep.name, "installed", ep.value, version), None)


def workspace_plugin_files(root: Path) -> list[Path]:
    """The workspace's ``plugins/*.py`` that would be loaded (not those starting with
    ``_``), by name."""
    folder = root / LOCAL_PLUGIN_DIR
    try:
        return sorted(p for p in folder.glob("*.py") if not p.name.startswith("_"))
    except OSError:
        return []


# --- trust: whose workspace plugins run ---------------------------------------------------
#
# A workspace's plugins/*.py is code.  A cloned repository is somebody else's, so, like
# git's safe.directory, its plugins run only in a workspace the user trusts: one made
# with ``crmkit init``, one named with ``crmkit trust``, or any with
# CRMKIT_TRUST_WORKSPACE=1 (CI, where the checkout is the job's own).

TRUST_VARIABLE = "CRMKIT_TRUST_WORKSPACE"
TRUST_FILE_VARIABLE = "CRMKIT_TRUST_FILE"


def trust_file() -> Path:
    """``$CRMKIT_TRUST_FILE``, else ``$XDG_CONFIG_HOME/crmkit/trusted`` (else
    ``~/.config/crmkit/trusted``): one absolute workspace path a line (``*`` trusts
    every workspace), outside any workspace so that no repository can trust itself."""
    configured = os.environ.get(TRUST_FILE_VARIABLE)
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"),
                                                            ".config")
    return Path(base) / "crmkit" / "trusted"


def _trusted_lines() -> list[str]:
    try:
        text = trust_file().read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return []
    return [line.strip() for line in text.splitlines()
            if line.strip() and not line.lstrip().startswith("#")]


def _same_folder(a: str | Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def is_trusted(root: Path) -> bool:
    """Whether the workspace's own plugins may run: ``$CRMKIT_TRUST_WORKSPACE`` says
    so, or :func:`trust_file` lists the folder (or ``*``)."""
    if os.environ.get(TRUST_VARIABLE, "").strip().lower() not in ("", "0", "false", "no"):
        return True
    return any(line == "*" or _same_folder(line, root) for line in _trusted_lines())


def trust(root: Path) -> bool:
    """Add ``root`` (absolute, resolved) to :func:`trust_file`; ``False`` if it was
    listed already.  Raises :class:`OSError` if the file cannot be written."""
    from ..loading.atomic import replace

    lines = _trusted_lines()
    if any(line != "*" and _same_folder(line, root) for line in lines):
        return False
    path = trust_file()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        text = ("# Workspaces whose plugins/*.py crmkit runs (crmkit trust DIR adds "
                "one)\n")
    if text and not text.endswith("\n"):
        text += "\n"
    path.parent.mkdir(parents=True, exist_ok=True)
    replace(path, text + str(root.resolve()) + "\n")
    return True


def may_define_command(root: Path, name: str) -> bool:
    """Whether a workspace plugin may add the command ``name``: its name (or the
    function name click derives it from) appears in a ``plugins/*.py``.  A mistyped
    command is refused without running any workspace code."""
    spellings = {name, name.replace("-", "_")}
    for path in workspace_plugin_files(root):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        if any(spelling in text for spelling in spellings):
            return True
    return False


def load_workspace_plugins(host: PluginHost, root: Path, disabled: Iterable[str]) -> None:
    """Import each ``plugins/*.py`` of the workspace by path, named by its file stem."""
    blocked = set(disabled)
    for path in workspace_plugin_files(root):
        name = path.stem
        rel = path.relative_to(root).as_posix()
        if name in blocked:
            host.plugins.append(PluginInfo(name, "workspace", rel, None, disabled=True))
            continue
        if host.pm.has_plugin(name) or any(p.name == name for p in host.plugins):
            host.diagnostics.append(Diagnostic.error(
                f"workspace plugin {name!r} has the same name as an installed plugin; "
                "rename the file", Location(rel), source=name))
            continue
        module_name = f"crmkit_workspace_plugins.{name}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            continue
        module = importlib.util.module_from_spec(spec)
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            sys.modules.pop(module_name, None)
            frame = location_in_traceback(exc, path)
            where = Location(rel, frame.line, frame.col) if frame else Location(rel)
            host.diagnostics.append(Diagnostic.error(
                f"workspace plugin {name!r} failed to import: {type(exc).__name__}: {exc}",
                where, source=name))
            continue
        _register(host, module, PluginInfo(name, "workspace", rel, None), Location(rel))


def load_plugins(root: Path | None, disabled: Iterable[str] = (), *,
                 workspace: bool = True) -> PluginHost:
    """Load every enabled plugin: crmkit's own, installed entry points, then (unless
    ``workspace`` is false: see :func:`add_workspace_plugins`) the workspace's own."""
    disabled = tuple(disabled)
    host = PluginHost(new_plugin_manager(), root=root)
    if os.environ.get(TRACE_VARIABLE, "").strip() not in ("", "0"):
        host.trace = lambda line: print(f"[plugins] {line}", file=sys.stderr)
    load_default_plugins(host, disabled)
    load_entry_point_plugins(host, disabled)
    if workspace:
        add_workspace_plugins(host, root, disabled)
    return host


def add_workspace_plugins(host: PluginHost, root: Path | None, disabled: Iterable[str],
                          load: bool = True) -> None:
    """Load the workspace's ``plugins/*.py`` into ``host`` (when ``load``; otherwise
    they are listed as not loaded), then warn about ``disable_plugins`` names that
    no plugin has."""
    disabled = tuple(disabled)
    if root is not None and load:
        load_workspace_plugins(host, root, disabled)
    elif root is not None:
        for path in workspace_plugin_files(root):
            host.plugins.append(PluginInfo(path.stem, "workspace",
                                           path.relative_to(root).as_posix(), None,
                                           disabled=True))
    known = {p.name for p in host.plugins}
    for name in disabled:
        if name not in known:
            host.diagnostics.append(Diagnostic.warning(
                f"disable_plugins names {name!r}, but no such plugin is installed"
                f"{_did_you_mean(name, known)}", Location("crmkit.yaml")))


def _did_you_mean(name: str, known: Iterable[str]) -> str:
    from ..loading.schema import did_you_mean

    return did_you_mean(name, known, "en")  # for a diagnostic: English


def disabled_stock_modules(host: PluginHost) -> list[tuple[str, ModuleType]]:
    """The disabled stock plugins' modules (crmkit's own code, safe to import): their
    settings sections are accepted and ignored while they are off."""
    found = []
    for info in host.plugins:
        if info.disabled and info.kind == "stock":
            try:
                found.append((info.name, importlib.import_module(info.origin)))
            except Exception:
                continue
    return found
