"""``crmkit git``: a team on one repository (docs/team.md).

``crmkit git install`` tells git (in this clone) to merge customer, interaction and
deal files with ``crmkit git merge-driver``, which merges two edits of one record
field by field: a conflict only where both sides changed the same field
differently; lists (tags, emails, phones, ...) both sides added to become the
union.  A true conflict leaves git's usual markers around that field, and
``crmkit check`` reports them as an unresolved merge conflict at ``path:line``.

The driver does not read the workspace (its ``crmkit.yaml`` may itself be in the
middle of a merge): it sees only the three versions of one file.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import click

from ..engine.app import App, pass_app
from ..engine.i18n import cli_gettext as _
from ..engine.i18n import cli_ngettext as ngettext
from ..model import CrmkitError
from .main import cli

#: What ``.gitattributes`` needs, relative to the workspace folder.
ATTRIBUTES = tuple(f"{pattern} merge=crmkit" for pattern in (
    "customers/*.yaml", "customers/*.yml", "interactions/**/*.yaml", "interactions/**/*.yml",
    "deals/*.yaml", "deals/*.yml"))
ATTRIBUTES_HEADER = ("# crmkit: records merge field by field; each clone runs "
                     "'crmkit git install' once (docs/team.md)")
_MISSING: Any = object()


@cli.group()
def git() -> None:
    """Merge records field by field in a shared git repository (docs/team.md)."""


def _git(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True,
                              timeout=60)
    except (OSError, subprocess.SubprocessError) as exc:
        raise CrmkitError(_("cannot run git: %(error)s") % {"error": exc}) from None


def driver_command() -> str:
    """The driver as git runs it: this Python's crmkit, whatever ``$PATH`` holds then
    (a GUI client or an IDE often has no virtual environment on its ``$PATH``)."""
    return f"{shlex.quote(sys.executable)} -m crmkit git merge-driver %O %A %B %P"


@git.command("install")
@pass_app
def install(app: App) -> None:
    """Write .gitattributes (customers/, interactions/, deals/ merge with crmkit) and
    the merge driver into this clone's .git/config.  Each clone runs it once: git
    does not share .git/config."""
    root = app.root
    found = _git(root, "rev-parse", "--show-toplevel")
    if found.returncode != 0:
        raise CrmkitError(_("%(folder)s is not in a git repository; run 'git init' first")
                          % {"folder": root})
    from ..loading.atomic import replace

    attributes = root / ".gitattributes"
    try:
        text = attributes.read_text(encoding="utf-8") if attributes.exists() else ""
    except (OSError, UnicodeDecodeError) as exc:
        raise CrmkitError(_("cannot read %(file)s: %(error)s") % {
            "file": ".gitattributes", "error": exc}) from None
    present = {" ".join(line.split()) for line in text.splitlines()}
    missing = [line for line in ATTRIBUTES if line not in present]
    if missing:
        added = ([ATTRIBUTES_HEADER] if ATTRIBUTES_HEADER not in present else []) + missing
        new = text + ("\n" if text and not text.endswith("\n") else "") + "\n".join(added)
        replace(attributes, new + "\n", public=True)
        click.echo(".gitattributes: " + ngettext(
            "%(num)d line added (commit it: every clone shares it)",
            "%(num)d lines added (commit it: every clone shares it)", len(missing))
            % {"num": len(missing)})
    else:
        click.echo(".gitattributes: " + _("already set up"))
    for key, value in (("merge.crmkit.name", "crmkit records, field by field"),
                       ("merge.crmkit.driver", driver_command())):
        done = _git(root, "config", "--local", key, value)
        if done.returncode != 0:
            raise CrmkitError(_("%(command)s failed: %(error)s") % {
                "command": f"git config {key}", "error": done.stderr.strip()})
    click.echo(f"git config merge.crmkit.driver: {driver_command()}")
    click.echo(_("(in this clone only: every clone runs '%(command)s' once)")
               % {"command": "crmkit git install"})


@git.command("merge-driver")
@click.argument("base", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("ours", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("theirs", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("path", required=False, default="")
def merge_driver(base: Path, ours: Path, theirs: Path, path: str) -> None:
    """Merge THEIRS into OURS (git's %O %A %B %P): exit 0 when merged, 1 when a
    conflict was left in OURS between git's markers."""
    from ..loading.atomic import replace

    texts = []
    for file in (base, ours, theirs):
        try:
            texts.append(file.read_bytes().decode("utf-8"))
        except (OSError, UnicodeDecodeError):
            texts.append(None)
    merged = None
    if None not in texts:
        merged = merge_texts(texts[0], texts[1], texts[2], path or "record")
    if merged is None:  # not a mapping of records: git's own line-by-line merge
        done = subprocess.run(["git", "merge-file", "-L", "ours", "-L", "base", "-L",
                               f"theirs{f' ({path})' if path else ''}", str(ours), str(base),
                               str(theirs)], check=False)
        sys.exit(0 if done.returncode == 0 else 1)
    text, conflicts = merged
    replace(ours, text)
    if conflicts:
        what = (_("both sides created this record, with different %(fields)s")
                if texts[0] is not None and not texts[0].strip()
                else _("both sides changed %(fields)s")) % {"fields": ", ".join(conflicts)}
        click.echo(f"crmkit: {path or ours}: {what}", err=True)
        sys.exit(1)


# --- the merge ---------------------------------------------------------------------------


class _Record:
    """One version of a record file: its lines before the first key, and each top-level
    key's value and lines (comments and blank lines just above a key go with it)."""

    def __init__(self, text: str, path: str) -> None:
        from ..loading.yamlsource import YamlMap, parse_yaml

        self.preamble = ""
        self.values: dict[Any, Any] = {}
        self.blocks: dict[Any, str] = {}
        self.ok = True
        if not text.strip():
            return
        parsed = parse_yaml(text.encode("utf-8"), path)
        data = parsed.data
        if not isinstance(data, YamlMap) or any(d.is_error for d in parsed.diagnostics):
            self.ok = False
            return
        lines = text.splitlines(keepends=True)
        if lines and not lines[-1].endswith("\n"):
            lines[-1] += "\n"
        starts = [(data.key_marks[key], key) for key in data]
        if any(col != 1 for (_, col), _ in starts) or \
                len({line for (line, _), _ in starts}) != len(starts):
            self.ok = False  # a flow mapping, or keys not each on a line of their own
            return
        starts.sort(key=lambda item: item[0][0])
        first = starts[0][0][0] - 1 if starts else len(lines)
        pending = lines[:first]
        self.preamble = "".join(pending)
        pending = []
        for i, ((line, _column), key) in enumerate(starts):
            end = starts[i + 1][0][0] - 1 if i + 1 < len(starts) else len(lines)
            own = lines[line - 1:end]
            trailing: list[str] = []
            if i + 1 < len(starts):
                while own and (not own[-1].strip() or own[-1].startswith("#")):
                    trailing.insert(0, own.pop())
            self.blocks[key] = "".join(pending + own)
            self.values[key] = data[key]
            pending = trailing

    def get(self, key: Any) -> tuple[Any, str]:
        return self.values.get(key, _MISSING), self.blocks.get(key, "")


def _same(a: Any, b: Any) -> bool:
    return a is b if _MISSING in (a, b) else bool(a == b)


def _union(base: Any, ours: Any, theirs: Any) -> list[Any] | None:
    """Both sides changed a list of plain values: what either added, without what
    either removed; ``None`` when these are not such lists."""
    def items(value: Any) -> list[Any] | None:
        if value is _MISSING or value is None:
            return []
        if isinstance(value, list) and all(isinstance(v, (str, int, float)) and
                                           not isinstance(v, bool) for v in value):
            return list(value)
        return None

    b, o, t = items(base), items(ours), items(theirs)
    if b is None or o is None or t is None or not isinstance(ours, list) \
            or not isinstance(theirs, list):
        return None
    removed = [v for v in b if v not in o or v not in t]
    merged = [v for v in o if v not in removed]
    merged += [v for v in t if v not in merged and v not in removed]
    return merged


def _merge_mapping(base: Any, ours: Any, theirs: Any) -> dict[Any, Any] | None:
    """Both sides changed a nested mapping (address, consent, fields): merged key by
    key, or ``None`` if one of its keys conflicts."""
    if not isinstance(ours, dict) or not isinstance(theirs, dict):
        return None
    base = base if isinstance(base, dict) else {}
    keys = list(ours) + [k for k in theirs if k not in ours]
    merged: dict[Any, Any] = {}
    for key in keys:
        b, o, t = base.get(key, _MISSING), ours.get(key, _MISSING), theirs.get(key, _MISSING)
        if _same(o, t) or _same(t, b):
            value = o
        elif _same(o, b):
            value = t
        else:
            value = _union(b, o, t)
            if value is None:
                return None
        if value is not _MISSING:
            merged[key] = value
    return merged


def _render(key: Any, value: Any, style_of: str) -> str:
    """``key: value`` as a block of its own, in the flow style ``[a, b]`` if that is how
    ``style_of`` (ours) wrote it; the comments above it in ``style_of`` are kept."""
    from ..loading.yamlsource import dump_yaml

    lines = style_of.splitlines(keepends=True)
    above = []
    while lines and (not lines[0].strip() or lines[0].startswith("#")):
        above.append(lines.pop(0))
    first = lines[0] if lines else ""
    after_colon = first.split(":", 1)[1].strip() if ":" in first else ""
    if isinstance(value, list) and after_colon.startswith("["):
        items = [dump_yaml([v]).strip()[2:] for v in value]
        if all("\n" not in item for item in items):
            return "".join(above) + f"{dump_yaml(key).strip().removesuffix('...').strip()}: " \
                f"[{', '.join(items)}]\n"
    return "".join(above) + dump_yaml({key: _plain(value)})


def _plain(value: Any) -> Any:
    """Located YAML values as plain ones, for dumping."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def merge_texts(base_text: str, ours_text: str, theirs_text: str, path: str
                ) -> tuple[str, list[str]] | None:
    """The three-way merge of one record file: the merged text and the fields both
    sides changed differently (between conflict markers in the text); ``None`` when a
    version is not a mapping of keys (git's line merge then does the work)."""
    base, ours, theirs = (_Record(t, path) for t in (base_text, ours_text, theirs_text))
    if not (base.ok and ours.ok and theirs.ok):
        return None
    new_on_both = not base_text.strip()
    order = list(ours.blocks)
    theirs_order = list(theirs.blocks)
    for i, key in enumerate(theirs_order):
        if key in order:
            continue
        before = [k for k in theirs_order[:i] if k in order]
        order.insert(order.index(before[-1]) + 1 if before else 0, key)
    if base.blocks:
        order += [k for k in base.blocks if k not in order]
    if ours.preamble == theirs.preamble or theirs.preamble == base.preamble:
        out = [ours.preamble]
    else:
        out = [theirs.preamble if ours.preamble == base.preamble else ours.preamble]
    conflicts: list[str] = []
    for key in order:
        (b, _text), (o, o_text), (t, t_text) = base.get(key), ours.get(key), theirs.get(key)
        if _same(o, t):
            out.append(o_text)
        elif _same(o, b):
            out.append(t_text)
        elif _same(t, b):
            out.append(o_text)
        else:
            # a file both sides created (git's empty base): two people may have given
            # two customers one id, so lists and mappings are not joined: a conflict
            merged: Any = None if new_on_both else _union(b, o, t)
            if merged is None and not new_on_both:
                merged = _merge_mapping(b, o, t)
            if merged is not None:
                out.append(_render(key, merged, o_text))
            else:
                conflicts.append(str(key))
                out.append(f"<<<<<<< ours\n{o_text}=======\n{t_text}>>>>>>> theirs"
                           f"{f' ({path})' if path else ''}\n")
    text = "".join(out)
    if not conflicts:
        from ..loading.yamlsource import YamlMap, parse_yaml

        check = parse_yaml(text.encode("utf-8"), path)
        if text.strip() and (not isinstance(check.data, YamlMap)
                             or any(d.is_error for d in check.diagnostics)):
            return None
    return text, conflicts
