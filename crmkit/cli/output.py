"""Printing for the CLI: aligned tables for people, JSON for scripts."""

from __future__ import annotations

import datetime as dt
import json
import unicodedata
from collections.abc import Iterable, Sequence
from decimal import Decimal
from typing import Any

import click

from ..model.text import clean

__all__ = ["clean", "day", "echo_json", "money", "table", "to_json", "width"]


def _default(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if hasattr(value, "to_json"):
        return value.to_json()
    if hasattr(value, "items"):
        return dict(value.items())
    raise TypeError(f"cannot write {type(value).__name__} as JSON")


def to_json(data: Any) -> str:
    return json.dumps(data, default=_default, ensure_ascii=False, indent=2)


def echo_json(data: Any, file: Any = None) -> None:
    """Print ``data`` as JSON (dates as ISO text, decimals as numbers), or write it to
    ``file``."""
    click.echo(to_json(data), file=file)


def width(text: str) -> int:
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    headers = [clean(h) for h in headers]
    cells = [[clean(c) for c in row] for row in rows]
    widths = [width(h) for h in headers]
    for row in cells:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], width(cell))

    def line(row: Sequence[str]) -> str:
        parts = [cell + " " * (widths[i] - width(cell)) for i, cell in enumerate(row)]
        return "  ".join(parts).rstrip()

    out = [line(list(headers)), line(["-" * w for w in widths])]
    out.extend(line(row) for row in cells)
    return "\n".join(out)


def money(amount: Decimal | None, currency: str) -> str:
    """``1,253.00 EUR`` in an English terminal (as before, and as the docs show it), else
    in the terminal language's format (``1.253,00 €``)."""
    if amount is None:
        return ""
    from ..engine.i18n import cli_translations

    t = cli_translations()
    if t.language != "en":
        return t.money(amount, currency)
    return f"{amount:,.2f} {currency}"


def day(value: dt.date | None) -> str:
    return value.isoformat() if value else ""
