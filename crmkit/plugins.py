"""Finding, loading and calling plugins.

Plugins come from two places, and the stock plugins are not special:

* the ``crmkit`` entry-point group of installed distributions (crmkit's own
  plugins in ``plugins/`` are registered there, exactly like third-party ones);
* ``*.py`` files in the workspace's ``plugins/`` folder, like pytest's conftest.

``crmkit.yaml``'s ``disable_plugins`` blocks any of them by name.  A plugin that
fails to import, or whose hook raises, becomes a diagnostic naming it; the
other plugins carry on.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import traceback
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .diagnostics import Diagnostic, Location

ENTRY_POINT_GROUP = "crmkit"
LOCAL_PLUGIN_DIR = "plugins"


@dataclass(frozen=True, slots=True)
class PluginInfo:
    """What ``crmkit plugins`` shows about one plugin."""

    name: str
    kind: str  # "stock" | "installed" | "workspace"
    origin: str  # "module" for entry points, the workspace-relative path for local files
    version: str | None
    hooks: tuple[str, ...] = ()
    disabled: bool = False


@dataclass
class PluginHost:
    """The plugin manager plus what we learned while loading plugins."""

    pm: pluggy.PluginManager
    plugins: list[PluginInfo] = field(default_factory=list)
    diagnostics: list[Diagnostic] = field(default_factory=list)

    def collect(self, hook: str, **kwargs: Any) -> tuple[list[Any], list[Diagnostic]]:
        """Call ``hook`` on every plugin and flatten the iterables they return.

        An exception in one plugin becomes an error diagnostic naming the plugin
        and the hook; the results of the others are kept.
        """
        results: list[Any] = []
        problems: list[Diagnostic] = []
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            try:
                value = impl.function(**{k: kwargs[k] for k in impl.argnames})
                if value is None:
                    continue
                if isinstance(value, Mapping):  # one result, not an iterable of results
                    results.append(value)
                else:
                    results.extend(value)
            except Exception as exc:
                problems.append(_hook_failure(impl.plugin_name, hook, exc))
        return results, problems

    def first(self, hook: str, **kwargs: Any) -> tuple[Any, list[Diagnostic]]:
        """Call ``hook`` until a plugin returns something other than ``None``."""
        for impl in reversed(getattr(self.pm.hook, hook).get_hookimpls()):
            try:
                value = impl.function(**{k: kwargs[k] for k in impl.argnames})
            except Exception as exc:
                return None, [_hook_failure(impl.plugin_name, hook, exc)]
            if value is not None:
                return value, []
        return None, []

    def names(self) -> set[str]:
        return {p.name for p in self.plugins if not p.disabled}


def _hook_failure(plugin: str, hook: str, exc: BaseException) -> Diagnostic:
    where = _location_in_traceback(exc)
    return Diagnostic.error(
        f"plugin {plugin!r} failed in {hook}: {type(exc).__name__}: {exc}", where, source=plugin
    )


def _location_in_traceback(exc: BaseException, path: Path | None = None) -> Location | None:
    """The innermost frame (in ``path`` if given) where ``exc`` was raised."""
    frames = traceback.extract_tb(exc.__traceback__)
    if isinstance(exc, SyntaxError) and exc.filename and (path is None or
                                                          Path(exc.filename) == path):
        return Location(exc.filename, exc.lineno or 0, exc.offset or 0)
    for frame in reversed(frames):
        if path is None or Path(frame.filename) == path:
            return Location(frame.filename, frame.lineno or 0, 0)
    return None


def new_plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager("crmkit")
    pm.add_hookspecs(hookspecs)
    return pm


def _hooks_of(pm: pluggy.PluginManager, plugin: object) -> tuple[str, ...]:
    return tuple(sorted(caller.name for caller in pm.get_hookcallers(plugin) or ()))


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
    host.plugins.append(PluginInfo(info.name, info.kind, info.origin, info.version,
                                   _hooks_of(host.pm, module)))


def load_entry_point_plugins(host: PluginHost, disabled: Iterable[str]) -> None:
    blocked = set(disabled)
    for ep in sorted(entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist
        kind = "stock" if dist is not None and dist.name == "crmkit" else "installed"
        version = dist.version if dist is not None else None
        if ep.name in blocked:
            host.plugins.append(PluginInfo(ep.name, kind, ep.value, version, disabled=True))
            continue
        if host.pm.has_plugin(ep.name):
            continue
        try:
            module = ep.load()
        except Exception as exc:
            host.diagnostics.append(Diagnostic.error(
                f"plugin {ep.name!r} ({ep.value}) failed to import: "
                f"{type(exc).__name__}: {exc}", _location_in_traceback(exc), source=ep.name))
            continue
        _register(host, module, PluginInfo(ep.name, kind, ep.value, version), None)


def load_workspace_plugins(host: PluginHost, root: Path, disabled: Iterable[str]) -> None:
    """Import each ``plugins/*.py`` of the workspace by path, named by its file stem."""
    folder = root / LOCAL_PLUGIN_DIR
    if not folder.is_dir():
        return
    blocked = set(disabled)
    for path in sorted(folder.glob("*.py")):
        name = path.stem
        rel = path.relative_to(root).as_posix()
        if name.startswith("_"):
            continue
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
            frame = _location_in_traceback(exc, path)
            where = Location(rel, frame.line, frame.col) if frame else Location(rel)
            host.diagnostics.append(Diagnostic.error(
                f"workspace plugin {name!r} failed to import: {type(exc).__name__}: {exc}",
                where, source=name))
            continue
        _register(host, module, PluginInfo(name, "workspace", rel, None), Location(rel))


def load_plugins(root: Path | None, disabled: Iterable[str] = ()) -> PluginHost:
    """Load every enabled plugin: installed entry points, then the workspace's own."""
    disabled = tuple(disabled)
    host = PluginHost(new_plugin_manager())
    load_entry_point_plugins(host, disabled)
    if root is not None:
        load_workspace_plugins(host, root, disabled)
    known = {p.name for p in host.plugins}
    for name in disabled:
        if name not in known:
            host.diagnostics.append(Diagnostic.warning(
                f"disable_plugins names {name!r}, but no such plugin is installed",
                Location("crmkit.yaml")))
    return host
