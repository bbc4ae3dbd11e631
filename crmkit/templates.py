"""Jinja templates: the workspace's ``templates/`` first, then what plugins ship.

Templates are looked up by name, so a workspace overrides a shipped template
by putting a file of the same name in ``templates/``.  HTML and XML templates
escape every value automatically (customer data can contain anything).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from .diagnostics import Diagnostic

if TYPE_CHECKING:
    import jinja2

    from .plugins import PluginHost

WORKSPACE_TEMPLATES = "templates"
_MARKUP = frozenset({"html", "htm", "xml", "svg"})


def _escapes(name: str | None) -> bool:
    """Autoescape ``report.html`` and ``report.html.j2`` alike."""
    return name is not None and not _MARKUP.isdisjoint(name.lower().split(".")[1:])


def template_environment(root: Path | None, host: PluginHost
                         ) -> tuple[jinja2.Environment, list[Diagnostic]]:
    """A Jinja environment with the template search path and the plugins' filters."""
    import jinja2  # imported lazily: most commands never render a template

    problems: list[Diagnostic] = []
    folders: list[Path] = []
    if root is not None and (root / WORKSPACE_TEMPLATES).is_dir():
        folders.append(root / WORKSPACE_TEMPLATES)
    dirs, failed = host.collect("crmkit_template_dirs")
    problems.extend(failed)
    for folder in map(Path, dirs):
        if folder not in folders:
            folders.append(folder)
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader([str(f) for f in folders]),
        autoescape=_escapes,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    filters, failed = host.collect("crmkit_jinja_filters")
    problems.extend(failed)
    for mapping in filters:
        env.filters.update(mapping)
    return env, problems
