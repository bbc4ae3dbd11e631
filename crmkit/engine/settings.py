"""Declared settings: every section of ``crmkit.yaml`` checked against what plugins declare.

Plugins declare their settings (a :class:`~crmkit.ConfigSection`'s ``options``, a
rule's ``options`` at its ``settings`` path, every reminder kind's ``enabled`` and
``priority``); the core checks ``crmkit.yaml`` against all of them in one place:
unknown keys with a did-you-mean, values of the wrong type or out of bounds,
expressions with unknown names, each reported at its ``path:line:col``.  A wrong
value falls back to the default, so one typo never switches a rule off.  What a
rule sees is the validated :class:`~crmkit.model.OptionValues`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..loading.schema import did_you_mean
from ..loading.yamlsource import YamlList, YamlMap
from ..model import Diagnostic, Location, OptionValues
from .expressions import ExpressionError, compile_expression
from .rules import Option, OptionSpec

CONFIG = "crmkit.yaml"


def as_option(spec: OptionSpec) -> Option:
    return spec if isinstance(spec, Option) else Option(spec)


@dataclass
class Node:
    """One mapping of ``crmkit.yaml``: the options declared in it and its sub-mappings."""

    options: dict[str, Option] = field(default_factory=dict)
    children: dict[str, Node] = field(default_factory=dict)
    #: Who declared each key (for conflicts).
    owners: dict[str, str] = field(default_factory=dict)
    #: Declared without options and nothing under it: anything goes (the plugin reads it).
    free: bool = False
    #: Declared by a disabled plugin: accepted and ignored.
    ignored: bool = False

    def declare(self, path: Iterable[str], options: Mapping[str, OptionSpec], owner: str
                ) -> list[str]:
        """Add ``options`` at ``path``; returns the keys that someone else declared already."""
        node = self
        for key in path:
            node = node.children.setdefault(key, Node())
            node.owners.setdefault("", owner)
        node.free = False
        return node._add(options, owner)

    def _add(self, options: Mapping[str, OptionSpec], owner: str) -> list[str]:
        clashes = []
        for key, spec in options.items():
            if isinstance(spec, Mapping) and not isinstance(spec, Option):
                child = self.children.setdefault(key, Node())
                child.owners.setdefault("", owner)
                clashes.extend(f"{key}.{k}" for k in child._add(spec, owner))
                continue
            if key in self.options and self.owners.get(key) != owner:
                clashes.append(key)
                continue
            self.options[key] = as_option(spec)
            self.owners[key] = owner
        return clashes

    def keys(self) -> list[str]:
        return [*self.options, *self.children]


class _Validator:
    def __init__(self, names: Iterable[str]) -> None:
        self.names = frozenset(names)
        self.diagnostics: list[Diagnostic] = []
        self.values: dict[str, OptionValues] = {}

    def problem(self, message: str, where: Location, owner: str) -> None:
        self.diagnostics.append(Diagnostic.error(message, where, source=owner or "crmkit"))

    def mapping(self, node: Node, raw: Any, path: str, where: Location) -> OptionValues:
        owner = node.owners.get("", "crmkit")
        if raw is not None and not isinstance(raw, Mapping):
            self.problem(f"'{path}' must be a mapping (key: value lines)", where, owner)
            raw = None
        raw = raw or {}
        for key in raw:
            if key not in node.options and key not in node.children:
                self.problem(f"unknown setting {key!r} in '{path}'"
                             f"{did_you_mean(str(key), node.keys(), 'en')}",
                             _key_place(raw, key, where), owner)
        values: dict[str, Any] = {}
        for key, option in node.options.items():
            here = _place(raw, key, where)
            if key in raw and raw[key] is not None:
                values[key] = self.option(option, raw[key], f"{path}.{key}", here,
                                          node.owners.get(key, owner))
            elif option.type in ("expression", "list") and option.default is not None:
                default = option.default  # compiled like a value that was written
                if isinstance(default, tuple):
                    default = list(default)
                values[key] = self.option(option, default, f"{path}.{key}", here,
                                          node.owners.get(key, owner))
            else:
                values[key] = _frozen(option.default)
        for key, child in node.children.items():
            if child.ignored:
                continue
            values[key] = self.mapping(child, raw.get(key), f"{path}.{key}",
                                       _place(raw, key, where))
        result = OptionValues(values)
        self.values[path] = result
        return result

    def option(self, option: Option, value: Any, name: str, where: Location, owner: str
               ) -> Any:
        kind = option.type
        checked, message = _typed(kind, option, value, self.names)
        before = len(self.diagnostics)
        if message is None and kind == "list":
            checked = self.items(option, value, name, where, owner)
        if message is None and option.check is not None and len(self.diagnostics) == before:
            message = option.check(checked)
        if message is not None:
            if isinstance(message, tuple):  # an expression's error: (message, column)
                text, column = message
                message = f"'{name}': {text} (column {column} of the expression)"
            elif not message.startswith("'"):
                message = f"'{name}' {message}"
            self.problem(message, where, owner)
            return _frozen(option.default)
        return checked

    def items(self, option: Option, value: Any, name: str, where: Location, owner: str
              ) -> tuple[OptionValues, ...]:
        node = Node()
        node._add(option.items or {}, owner)
        node.owners[""] = owner
        found = []
        marks = value.marks if isinstance(value, YamlList) else []
        for n, item in enumerate(value):
            line, col = marks[n] if n < len(marks) else (where.line, where.col)
            found.append(self.mapping(node, item, f"{name}[{n + 1}]",
                                      Location(CONFIG, line, col)))
        return tuple(found)


def _typed(kind: str, option: Option, value: Any, names: frozenset[str]
           ) -> tuple[Any, str | tuple[str, int] | None]:
    """The value as its kind wants it, or a message."""
    bounds = _bounds(option)
    if kind == "boolean":
        return (value, None) if isinstance(value, bool) else (None, f"must be true or false, "
                                                                   f"not {value!r}")
    if kind in ("integer", "number"):
        numeric = (int,) if kind == "integer" else (int, float)
        if isinstance(value, bool) or not isinstance(value, numeric) or (
                option.minimum is not None and value < option.minimum) or (
                option.maximum is not None and value > option.maximum):
            what = "a whole number" if kind == "integer" else "a number"
            return None, f"must be {what}{bounds}, not {value!r}"
        return (float(value) if kind == "number" else value), None
    if kind == "text":
        if not isinstance(value, str):
            return None, f"must be text, not {value!r}"
        if option.choices and value not in option.choices:
            return None, (f"must be one of {', '.join(option.choices)}, not {value!r}"
                          f"{did_you_mean(value, option.choices, 'en')}")
        return value, None
    if kind == "texts":
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            return None, "must be a list of text"
        bad = [v for v in value if option.choices and v not in option.choices]
        if bad:
            return None, (f"{bad[0]!r} is not one of {', '.join(option.choices)}"
                          f"{did_you_mean(bad[0], option.choices, 'en')}")
        return tuple(value), None
    if kind == "date":
        if isinstance(value, dt.date) and not isinstance(value, dt.datetime):
            return value, None
        return None, f"must be a date (YYYY-MM-DD), not {value!r}"
    if kind == "expression":
        if not isinstance(value, str):
            return None, f"must be an expression (text), not {value!r}"
        try:
            return compile_expression(value, names), None
        except ExpressionError as exc:
            return None, (exc.message, exc.column)
    if kind == "list":
        if not isinstance(value, list) or not all(isinstance(v, Mapping) for v in value):
            return None, "must be a list of mappings"
        return value, None
    return _frozen(value), None


def _bounds(option: Option) -> str:
    if option.minimum is not None and option.maximum is not None:
        return f" between {option.minimum:g} and {option.maximum:g}"
    if option.minimum is not None:
        return f" of at least {option.minimum:g}"
    if option.maximum is not None:
        return f" of at most {option.maximum:g}"
    return ""


def _frozen(value: Any) -> Any:
    """Plain values of a section, made hashable (options are compared and kept)."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, Mapping) and not isinstance(value, OptionValues):
        return OptionValues({k: _frozen(v) for k, v in value.items()})
    return value


def _place(raw: Any, key: str, where: Location) -> Location:
    if isinstance(raw, YamlMap) and key in raw.marks:
        return Location(CONFIG, *raw.marks[key])
    if isinstance(raw, YamlMap) and raw.start[0]:
        return Location(CONFIG, *raw.start)
    return where


def _key_place(raw: Any, key: str, where: Location) -> Location:
    if isinstance(raw, YamlMap) and key in raw.key_marks:
        return Location(CONFIG, *raw.key_marks[key])
    return where


def validate(tree: Node, sections: Mapping[str, Any], locate: Any, names: Iterable[str]
             ) -> tuple[dict[str, OptionValues], list[Diagnostic]]:
    """The values of every declared section, and the problems found in them.

    ``sections`` are the top-level sections of ``crmkit.yaml`` as written;
    ``locate(key)`` is where a top-level key is; ``names`` are what expressions may
    read (variables and labels)."""
    validator = _Validator(names)
    for key, node in tree.children.items():
        if node.free or node.ignored:
            continue
        validator.mapping(node, sections.get(key), key, locate(key))
    return validator.values, validator.diagnostics
