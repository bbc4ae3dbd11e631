"""Jinja templates: the workspace's ``templates/`` first, then what plugins ship.

Templates are looked up by name, so a workspace overrides a shipped template
by putting a file of the same name in ``templates/``.  HTML and XML templates
escape every value automatically (customer data can contain anything).
Every template renders in Jinja's sandbox (templates are data a cloned workspace
brings along, not code).  Report sections are rendered here, so that the core
decides what text to reuse (:mod:`crmkit.incremental.render`): only sections
declared ``pure``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..incremental import render
from ..model import Diagnostic
from ..model.text import clean
from . import i18n

if TYPE_CHECKING:
    import jinja2

    from .app import App
    from .plugins import PluginHost
    from .rules import ReportSection

WORKSPACE_TEMPLATES = "templates"
_MARKUP = frozenset({"html", "htm", "xml", "svg"})


def _escapes(name: str | None) -> bool:
    """Autoescape ``report.html`` and ``report.html.j2`` alike."""
    return name is not None and not _MARKUP.isdisjoint(name.lower().split(".")[1:])


#: Escaped where they could mean something: ``_`` unless inside a word (``follow_up``
#: is never emphasis), ``:`` only before ``//`` (the URL autolinks).
_MD_PUNCTUATION = re.compile(r"([\\`*~\[\]|]|(?<![^\W_])_|_(?![^\W_])|:(?=//))")
_MD_ENTITY = re.compile(r"&(?=#?[0-9A-Za-z]+;)")
_MD_WWW = re.compile(r"(?<![0-9A-Za-z])(www)\.", re.IGNORECASE)
_MD_BLOCK = re.compile(r"^(\s*(?:\d+)?)([#>+=.)-])")
#: WORD JOINER: zero width, invisible, and not a character an email address can hold.
_JOINER = "\u2060"


def md_cell(value: Any) -> str:
    r"""Customer data as plain text in Markdown (a table cell, a list item, a heading):
    one line, no table breaks, no HTML, no emphasis or code, no links, images or
    autolinks.  GitHub shows the same visible text as the data.

    A backslash before ASCII punctuation is CommonMark's way to say "this character, as
    text": ``\[``, ``\]`` stop ``[text](url)`` and ``![](url)``; ``\:`` before ``//``
    stops every URL autolink (``https://``, ``http://``, ``ftp://``) and ``www\.`` the
    ``www.`` one, and the rendered and copied text is exactly the data.  ``<`` and ``>`` become
    ``&lt;``/``&gt;`` (no HTML, no ``<url>`` autolink).  GitHub finds email addresses
    (and ``mailto:``/``xmpp:`` links) after escapes are resolved, so there a backslash
    does not help: a WORD JOINER (U+2060, zero width) before ``@`` shows the same text
    and is no address.  A cell that starts like a heading, quote or list item gets its
    marker escaped."""
    text = _MD_PUNCTUATION.sub(r"\\\1", clean(value))
    text = _MD_ENTITY.sub(r"\\&", text).replace("<", "&lt;").replace(">", "&gt;")
    text = _MD_WWW.sub(r"\1\\.", text).replace("@", _JOINER + "@")
    return _MD_BLOCK.sub(r"\1\\\2", text, count=1)  # no heading, quote or list


def template_folders(root: Path | None, host: PluginHost
                     ) -> tuple[list[Path], list[Diagnostic]]:
    """Where templates are looked up, in order: the workspace's ``templates/``, then the
    plugins' folders (``crmkit_template_dirs``)."""
    folders: list[Path] = []
    if root is not None and (root / WORKSPACE_TEMPLATES).is_dir():
        folders.append(root / WORKSPACE_TEMPLATES)
    dirs, failed = host.call("crmkit_template_dirs")
    for folder in map(Path, dirs):
        if folder not in folders:
            folders.append(folder)
    return folders, failed


def _sandbox() -> type[jinja2.Environment]:
    """Jinja's sandbox, closed also around what can touch files or the run: the ``app``
    a report passes (its filters read it in Python, through ``pass_context``), paths,
    open files and modules.  A template reads data; it never calls into them."""
    import datetime as dt
    import io
    import types
    from decimal import Decimal
    from pathlib import PurePath

    from jinja2.sandbox import SandboxedEnvironment

    from .app import App
    from .plugins import PluginHost

    closed = (App, PluginHost, PurePath, io.IOBase, types.ModuleType)
    #: For a value of these types the answer depends only on the type of the object and
    #: the attribute's name, so it is kept (a page reads 100,000s of record fields).
    plain = frozenset({str, int, float, bool, type(None), Decimal, dt.date, dt.datetime,
                       tuple})
    known: dict[tuple[type, str], bool] = {}

    class Sandbox(SandboxedEnvironment):
        def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
            if type(value) in plain:
                key = (type(obj), attr)
                safe = known.get(key)
                if safe is None:
                    safe = known[key] = not isinstance(obj, closed) and \
                        super().is_safe_attribute(obj, attr, value)
                return safe
            if isinstance(obj, closed) or isinstance(value, closed) or isinstance(
                    getattr(value, "__self__", None), closed):
                return False
            return super().is_safe_attribute(obj, attr, value)

        def is_safe_callable(self, obj: Any) -> bool:
            if isinstance(getattr(obj, "__self__", None), closed):
                return False
            return super().is_safe_callable(obj)

    return Sandbox


def template_environment(root: Path | None, host: PluginHost
                         ) -> tuple[jinja2.Environment, list[Diagnostic]]:
    """A Jinja environment with the template search path and the plugins' functions."""
    import jinja2  # imported lazily: most commands never render a template

    folders, problems = template_folders(root, host)
    # Sandboxed: a workspace's templates/ come with a cloned repository, and a template
    # must not reach Python's internals (``''.__class__.__mro__``, ``os.popen``) nor the
    # file system or the run (``app.root.write_text(...)``, ``app.write_output``): an
    # unsafe attribute or call is a SecurityError at the template's line.
    env = _sandbox()(
        loader=jinja2.FileSystemLoader([str(f) for f in folders]),
        autoescape=_escapes,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    )
    env.filters["rows"] = jinja2.pass_eval_context(render.rows)
    env.filters["md"] = env.globals["md"] = md_cell
    i18n.install(env)  # _(), ngettext and money/day/decimal/percentage per the `locale`
    functions, failed = host.call("crmkit_jinja_filters")
    problems.extend(failed)
    for mapping in functions:
        if not isinstance(mapping, dict):
            continue
        env.filters.update(mapping)
        env.globals.update(mapping)
    return env, problems


def render_sections(app: App, report: str, fmt: str, variables: dict[str, Any]
                    ) -> list[dict[str, Any]]:
    """Every registered section of ``report`` rendered as ``fmt``: ``name``, ``title``
    and ``body`` of each, in order.  ``variables`` are the report's own (a section
    that is not pure sees them too).  A section whose template or context fails is
    left out with a diagnostic naming its plugin."""
    import jinja2
    from markupsafe import Markup

    env = app.templates
    registry = app.registry
    rendered = []
    for section in registry.sections_of(report):
        owner = registry.owner_of_section(section)
        name = f"{section.template}.{fmt}.j2"
        try:
            template = env.get_template(name)
        except jinja2.TemplateNotFound:
            app.problems.append(Diagnostic.warning(
                f"report section {section.name!r} (plugin {owner!r}) has no template "
                f"{name}; left out", section.where, source=owner))
            continue
        try:
            body = _render(app, section, template, variables)
        except Exception as exc:
            from .plugins import location_in_traceback

            app.problems.append(Diagnostic.error(
                f"report section {section.name!r} (plugin {owner!r}) failed: "
                f"{type(exc).__name__}: {exc}",
                location_in_traceback(exc, root=app.root) or section.where, source=owner))
            continue
        rendered.append({"name": section.name, "title": section.title,
                         "body": Markup(body) if fmt == "html" else body})
    return rendered


def _render(app: App, section: ReportSection, template: Any, variables: dict[str, Any]) -> str:
    context = _context(app, section)
    if section.pure:
        settings = app.workspace.settings
        root = variables.get("root")
        # one text kept per way to the output folder: the dashboard is also the start page
        return render.render_pure(template, {
            "business": settings.business, "today": app.today,
            "currency": settings.currency, "locale": settings.locale,
            "root": root, **context}, None if root is None else f"root={root}")
    return str(template.render({**variables, **context, "section": section}))


def _context(app: App, section: ReportSection) -> dict[str, Any]:
    """``section.context(app)``, computed once per run: a report is written as Markdown
    and as HTML, and the dashboard is also the site's start page (the context is a
    function of ``app`` alone, and a new run, or rebuild, is a new ``app``)."""
    if section.context is None:
        return {}
    kept = app.__dict__.setdefault("_section_contexts", {})
    found = kept.get(id(section))
    if found is None or found[0] is not section:
        found = kept[id(section)] = (section, dict(section.context(app)))
    return found[1]
