"""Rendered text kept while what it is rendered from is the same (``crmkit watch``).

Two kinds of text are kept, both only where the core knows every input:

* a report section declared ``pure`` is rendered with its own context alone, so
  its text is kept while the template is the same object and the context is equal;
* the ``rows`` filter renders each item of a long list with a row template that
  sees the item and the filter's arguments alone, so each row's text is kept
  while the item is the same object (or an equal dict of plain values) and the
  template and arguments are the same.

A template that changes on disk is a new template object, so nothing stale is
reused.  Plugins never see this module.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal
from typing import Any

#: The last text of each pure section template, with the context it was made from.
_SECTIONS: dict[Any, tuple[Any, dict[str, Any], str]] = {}
#: Rendered rows per (row template, arguments), by item identity; and by value.
_ROWS: dict[tuple[Any, ...], dict[int, tuple[Any, str]]] = {}
_ROWS_BY_VALUE: dict[tuple[Any, ...], str] = {}
_KEEP_ROWS = 200_000
#: Value types whose equal values always print the same (unlike 1.0 and 1.00 as Decimals).
_PLAIN = frozenset({str, int, bool, type(None), dt.date})


def render_pure(template: Any, context: dict[str, Any], key: str | None = None) -> str:
    """``template.render(context)``, or its last text when the template and the
    context are the same as last time.  ``key`` tells apart several texts of one
    template (one page per customer): each is kept under its own key.  The same
    text is returned as the very same object, so that writing it can tell cheaply
    that nothing changed (:func:`crmkit.loading.atomic.replace`)."""
    name = template.name if key is None else (template.name, key)
    kept = _SECTIONS.get(name)
    if kept is not None and kept[0] is template and _equal(kept[1], context):
        return kept[2]
    text: str = template.render(context)
    _SECTIONS[name] = (template, context, text)
    return text



def _equal(before: dict[str, Any], now: dict[str, Any]) -> bool:
    try:
        return bool(before == now)
    except Exception:  # values without a plain equality (numpy arrays): render again
        return False


def _value_key(item: Any) -> tuple[Any, ...] | None:
    """A hashable stand-in for a dict row's value, or ``None`` for anything else.  Equal
    keys mean the rows print the same: each value goes in with its type, and decimals
    and floats by their exact text."""
    if type(item) is not dict:
        return None
    kinds = tuple(map(type, item.values()))
    if _PLAIN.issuperset(kinds):  # the common row, keyed without a loop in Python
        return (tuple(item), kinds, tuple(item.values()))
    parts = []
    for key, value in item.items():
        kind = type(value)
        if kind in _PLAIN:
            parts.append((key, kind, value))
        elif kind is Decimal or kind is float:
            parts.append((key, kind, repr(value)))
        else:
            return None
    return tuple(parts)


def rows(eval_ctx: Any, items: Iterable[Any], name: str, **context: Any) -> Any:
    """``{{ items | rows("reports/rows/reminder.md.j2", today=today) }}``: each item
    rendered by the row template (as ``item``, with ``context`` and nothing else),
    one after another."""
    from markupsafe import Markup

    env = eval_ctx.environment
    template = env.get_template(name)
    extra = tuple(sorted(context.items()))
    try:
        hash(extra)
    except TypeError:  # arguments that cannot be a key: nothing is kept
        table: dict[int, tuple[Any, str]] = {}
        by_values = False
    else:
        if sum(map(len, _ROWS.values())) > _KEEP_ROWS or len(_ROWS_BY_VALUE) > _KEEP_ROWS:
            _ROWS.clear()
            _ROWS_BY_VALUE.clear()
        table = _ROWS.setdefault((name, template, extra), {})
        by_values = True
    get = table.get
    out = []
    row_context = None
    for item in items:
        kept = get(id(item))
        if kept is not None and kept[0] is item:
            out.append(kept[1])
            continue
        value = _value_key(item) if by_values else None
        by_value = (template, extra, value) if value is not None else None
        text = _ROWS_BY_VALUE.get(by_value) if by_value is not None else None
        if text is None:
            if row_context is None:  # one context for all rows: as fast as a loop
                row_context = template.new_context(dict(context))
            row_context.vars["item"] = item
            text = env.concat(template.root_render_func(row_context))
            if by_value is not None:
                _ROWS_BY_VALUE[by_value] = text
        table[id(item)] = (item, text)
        out.append(text)
    text = "".join(out)
    return Markup(text) if eval_ctx.autoescape else text


#: Per list (a name), its items last time, what they were made with, and their text by
#: item identity (the items are held, so no other object can have their ids).
_LISTS: dict[str, tuple[list[Any], Any, dict[int, Any]]] = {}


def each(name: str, items: list[Any], extra: Any, make: Any) -> list[Any]:
    """``make(item)`` for each item, reusing last time's result for items that are the
    very same objects (with an equal ``extra``): after a change, most of thousands of
    listed reminders are the objects of the last rebuild.  ``make`` must depend on
    nothing but the item and ``extra``."""
    last = _LISTS.get(name)
    by_id = last[2] if last is not None and last[1] == extra else {}
    get = by_id.get
    made = [get(id(item)) or make(item) for item in items]
    _LISTS[name] = (items, extra, dict(zip(map(id, items), made, strict=True)))
    return made
