"""Safe YAML parsing that remembers where every value was written.

PyYAML's constructors drop position information, so we compose the node graph
(with the C parser when available) and build plain Python values ourselves:
mappings become :class:`YamlMap` and sequences :class:`YamlList`, both of which
carry the 1-based ``(line, col)`` of each value.  Along the way we refuse what a
CRM never needs: object-constructing tags, duplicate keys, runaway alias
expansion ("billion laughs") and absurd nesting.  YAML 1.1's ``yes``/``no``/
``on``/``off`` booleans are read as strings (YAML 1.2 style) so a country code
``NO`` stays ``"NO"``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import yaml

from ..model.diagnostics import Diagnostic, Location

try:
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader

_BOOL = "tag:yaml.org,2002:bool"
_MERGE = "tag:yaml.org,2002:merge"
_STR = "tag:yaml.org,2002:str"
_SEQ = "tag:yaml.org,2002:seq"
_MAP = "tag:yaml.org,2002:map"
MAX_DEPTH = 64


class _Loader(_BaseLoader):  # type: ignore[misc, valid-type]
    """The safe loader with YAML 1.2 booleans (only true/false)."""


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != _BOOL]
    for first, resolvers in _BaseLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)

_constructor = yaml.constructor.SafeConstructor()
_SCALAR_TAGS = {
    tag: fn
    for tag, fn in yaml.constructor.SafeConstructor.yaml_constructors.items()
    if tag is not None and tag not in (_SEQ, _MAP, "tag:yaml.org,2002:omap",
                                       "tag:yaml.org,2002:pairs", "tag:yaml.org,2002:set")
}

Mark = tuple[int, int]


class YamlMap(dict):
    """A mapping from a YAML file; ``marks[key]`` is where that key's value starts."""

    def __init__(self, start: Mark = (0, 0)) -> None:
        super().__init__()
        self.start = start
        self.marks: dict[Any, Mark] = {}
        self.key_marks: dict[Any, Mark] = {}


class YamlList(list):
    """A sequence from a YAML file; ``marks[i]`` is where item ``i`` starts."""

    def __init__(self, start: Mark = (0, 0)) -> None:
        super().__init__()
        self.start = start
        self.marks: list[Mark] = []


@dataclass(slots=True)
class ParsedFile:
    """The result of parsing one file: its data (``None`` when unusable) and problems."""

    path: str
    data: Any
    diagnostics: list[Diagnostic] = field(default_factory=list)


class _Abort(Exception):
    def __init__(self, message: str, mark: Mark) -> None:
        super().__init__(message)
        self.message = message
        self.mark = mark


def _mark(node: yaml.Node) -> Mark:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, path: str, budget: int) -> None:
        self.path = path
        self.budget = budget
        self.diagnostics: list[Diagnostic] = []

    def loc(self, mark: Mark) -> Location:
        return Location(self.path, mark[0], mark[1])

    def build(self, node: yaml.Node, depth: int = 0) -> Any:
        self.budget -= 1
        if self.budget < 0:
            raise _Abort("document expands to too many values (alias bomb?)", _mark(node))
        if depth > MAX_DEPTH:
            raise _Abort(f"nesting deeper than {MAX_DEPTH} levels", _mark(node))
        if isinstance(node, yaml.ScalarNode):
            return self.scalar(node)
        if isinstance(node, yaml.SequenceNode):
            self.check_tag(node, _SEQ)
            seq = YamlList(_mark(node))
            for item in node.value:
                seq.append(self.build(item, depth + 1))
                seq.marks.append(_mark(item))
            return seq
        if isinstance(node, yaml.MappingNode):
            self.check_tag(node, _MAP)
            return self.mapping(node, depth)
        raise _Abort(f"unsupported YAML node {type(node).__name__}", _mark(node))

    def check_tag(self, node: yaml.Node, expected: str) -> None:
        if node.tag != expected:
            raise _Abort(f"unsupported tag {node.tag!r}", _mark(node))

    def scalar(self, node: yaml.ScalarNode) -> Any:
        tag = node.tag
        if tag == "!" or tag == _STR:
            return node.value
        constructor = _SCALAR_TAGS.get(tag)
        if constructor is None:
            raise _Abort(f"unsupported tag {tag!r}", _mark(node))
        try:
            return constructor(_constructor, node)
        except (ValueError, yaml.YAMLError):
            # e.g. 2026-02-30: keep the text; the schema reports it with its place.
            return node.value

    def mapping(self, node: yaml.MappingNode, depth: int) -> YamlMap:
        result = YamlMap(_mark(node))
        merges: list[YamlMap] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE:
                merged = self.build(value_node, depth + 1)
                sources = merged if isinstance(merged, list) else [merged]
                for source in sources:
                    if not isinstance(source, YamlMap):
                        raise _Abort("'<<' merge needs a mapping", _mark(value_node))
                    merges.append(source)
                continue
            key = self.build(key_node, depth + 1)
            if isinstance(key, (list, dict)):
                raise _Abort("a mapping key must be a plain value", _mark(key_node))
            if key in result:
                first = result.key_marks[key]
                self.diagnostics.append(Diagnostic.error(
                    f"duplicate key {key!r} (first defined at line {first[0]}); "
                    "the first value is used",
                    self.loc(_mark(key_node)),
                ))
                continue
            result[key] = self.build(value_node, depth + 1)
            result.marks[key] = _mark(value_node)
            result.key_marks[key] = _mark(key_node)
        for source in merges:
            for key, value in source.items():
                if key not in result:
                    result[key] = value
                    result.marks[key] = source.marks[key]
                    result.key_marks[key] = source.key_marks[key]
        return result


def _decode(data: bytes, path: str) -> tuple[str | None, Diagnostic | None]:
    if b"\x00" in data[:8192]:
        return None, Diagnostic.error("binary file, not YAML", Location(path, 1, 1))
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        col = exc.start - (data.rfind(b"\n", 0, exc.start) + 1) + 1
        return None, Diagnostic.error(
            "file is not valid UTF-8 (save it as UTF-8)", Location(path, line, col)
        )


#: A line ``key: value`` of the simple form most record files are written in.
_SIMPLE_LINE = re.compile(
    r"([A-Za-z_][A-Za-z0-9_]*):( +)([^ \]{}#&*!|>'\"%@`,?:-][^\t]*)?\Z")
#: Anything but what a YAML reader accepts (PyYAML's ``Reader.NON_PRINTABLE``) less
#: tabs, carriage returns, a BOM and YAML 1.1's other line breaks (NEL, LS, PS).
_NOT_SIMPLE_TEXT = re.compile(
    "[^\n -~\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd\U00010000-\U0010ffff]")
#: An item of a one-line list of plain words: ``[Ventil, Dichtung]``.
_SIMPLE_ITEM = re.compile(r"[A-Za-z0-9\u00c0-\u024f][^\[\]{},:#&*!|>'\"%@`?]*\Z")
_PLAIN_TAGS = frozenset({_STR, "tag:yaml.org,2002:null", _BOOL, "tag:yaml.org,2002:int",
                         "tag:yaml.org,2002:float", "tag:yaml.org,2002:timestamp"})
_NOT_SIMPLE = object()


def _tag(value: str) -> str:
    """The tag the loader's resolver gives a plain scalar (``Resolver.resolve``)."""
    resolvers = _Loader.yaml_implicit_resolvers
    for tag, pattern in (*resolvers.get(value[0], ()), *resolvers.get(None, ())):
        if pattern.match(value):
            return tag  # type: ignore[no-any-return]
    return _STR


#: Plain scalars seen before and their (immutable) values: record files repeat the same
#: keys, types, channels and dates thousands of times.
_SEEN: dict[str, Any] = {}
_KEEP_SEEN = 50_000


def _plain(value: str) -> Any:
    """A plain scalar's value as :class:`_Builder` makes it, or ``_NOT_SIMPLE``."""
    seen = _SEEN.get(value, _SEEN)
    if seen is not _SEEN:
        return seen
    tag = _tag(value)
    if tag == _STR:
        result: Any = value
    elif tag not in _PLAIN_TAGS:
        result = _NOT_SIMPLE
    else:
        try:
            result = _SCALAR_TAGS[tag](_constructor, yaml.ScalarNode(tag, value))
        except (ValueError, yaml.YAMLError):
            result = value  # e.g. 2026-02-30, as the full parser: the schema reports it
    if len(_SEEN) >= _KEEP_SEEN:
        _SEEN.clear()
    _SEEN[value] = result
    return result


def _parse_simple(text: str) -> YamlMap | None:
    """The value of a document that is one mapping of ``key: value`` lines (each value
    a plain word or a one-line list of plain words), exactly as parsing it in full
    would make it, or ``None`` for anything else.  Most record files look like this;
    reading them without composing a node graph takes a third of the time.  Whatever
    this does not understand goes to the full parser (tested to agree)."""
    if _NOT_SIMPLE_TEXT.search(text):
        return None
    result: YamlMap | None = None
    for number, line in enumerate(text.split("\n"), start=1):
        if not line or line[0] == "#":
            continue
        match = _SIMPLE_LINE.match(line)
        if match is None:
            return None
        key, gap, raw = match.groups()
        if raw is None:
            return None  # an empty value: null, or a nested block
        value_text = raw.rstrip(" ")
        if " #" in value_text or ": " in value_text or value_text.endswith(":"):
            return None
        if result is None:
            result = YamlMap((number, 1))
        if key in result or _plain(key) != key:
            return None  # a duplicate (the full parser reports it) or a key like true
        col = len(key) + len(gap) + 2
        value = (_simple_list(value_text, number, col) if value_text[0] == "["
                 else _plain(value_text))
        if value is _NOT_SIMPLE or (value is None and value_text[0] == "["):
            return None
        result[key] = value
        result.marks[key] = (number, col)
        result.key_marks[key] = (number, 1)
    return result


def _simple_list(text: str, line: int, col: int) -> YamlList | None:
    if not text.endswith("]"):
        return None
    items = YamlList((line, col))
    inner = text[1:-1]
    if inner == "":
        return items
    offset = col + 1
    for part in inner.split(","):
        word = part.strip(" ")
        if not _SIMPLE_ITEM.match(word) or "  " in word:
            return None
        value = _plain(word)
        if value is _NOT_SIMPLE:
            return None
        items.append(value)
        items.marks.append((line, offset + len(part) - len(part.lstrip(" "))))
        offset += len(part) + 1
    return items


def parse_yaml(data: bytes, path: str) -> ParsedFile:
    """Parse one YAML document into located plain values; never raises for bad input.
    Simple files take a fast path (:func:`_parse_simple`), the others the full one."""
    text, problem = _decode(data, path)
    if text is None:
        return ParsedFile(path, None, [problem] if problem else [])
    simple = _parse_simple(text)
    if simple is not None:
        return ParsedFile(path, simple, [])
    return parse_text(text, path)


#: The lines git leaves in a file it could not merge (``|||||||``: the base, with diff3).
_CONFLICT_MARKER = re.compile(r"^(?:<{7}|\|{7}|>{7})(?: |$)|^={7}$", re.MULTILINE)


def conflict_markers(text: str) -> list[int]:
    """The lines (1-based) of merge-conflict markers in ``text``; ``[]`` when there is no
    ``<<<<<<<`` or ``>>>>>>>`` line (a lone ``=======`` is not a conflict)."""
    if "<<<<<<<" not in text and ">>>>>>>" not in text:
        return []
    found = [(m.group()[0], text.count("\n", 0, m.start()) + 1)
             for m in _CONFLICT_MARKER.finditer(text)]
    if not any(kind in "<>" for kind, _ in found):
        return []
    return [line for _, line in found]


def parse_text(text: str, path: str) -> ParsedFile:
    """:func:`parse_yaml` of decoded text, always with the full parser."""
    markers = conflict_markers(text)
    if markers:  # git's markers: a merge left unfinished, not a YAML problem to explain
        others = ", ".join(str(n) for n in markers[1:6])
        return ParsedFile(path, None, [Diagnostic.error(
            "unresolved merge conflict: git left its <<<<<<< ======= >>>>>>> markers "
            f"here{f' (and at lines {others})' if others else ''}; keep the right lines, "
            "delete the markers and commit (docs/team.md)", Location(path, markers[0], 1))])
    try:
        node = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        message = exc.problem or str(exc)
        context = exc.context_mark
        if exc.context and context and mark and context.line != mark.line:
            message += f" ({exc.context} at line {context.line + 1})"
        elif exc.context:
            message = f"{exc.context}: {message}"
        return ParsedFile(path, None, [Diagnostic.error(
            f"invalid YAML: {message}", Location(path, line, col))])
    except yaml.YAMLError as exc:
        return ParsedFile(path, None, [Diagnostic.error(f"invalid YAML: {exc}", Location(path))])
    except RecursionError:
        return ParsedFile(path, None, [Diagnostic.error(
            "invalid YAML: nesting too deep", Location(path, 1, 1))])
    if node is None:
        return ParsedFile(path, None, [])
    builder = _Builder(path, budget=2 * len(text) + 100_000)
    try:
        data_value = builder.build(node)
    except _Abort as exc:
        return ParsedFile(path, None, [*builder.diagnostics,
                                       Diagnostic.error(exc.message, builder.loc(exc.mark))])
    except RecursionError:
        return ParsedFile(path, None, [Diagnostic.error("nesting too deep", Location(path, 1, 1))])
    return ParsedFile(path, data_value, builder.diagnostics)


class _Dumper(yaml.SafeDumper):
    """Writes decimals as plain numbers (``49.90``), exactly as given."""


def _represent_decimal(dumper: yaml.SafeDumper, value: Decimal) -> yaml.ScalarNode:
    text = format(value, "f")
    # ``99`` as a float would be written ``!!float '99'``: a whole number is an int
    tag = "tag:yaml.org,2002:float" if "." in text else "tag:yaml.org,2002:int"
    return dumper.represent_scalar(tag, text)


_Dumper.add_representer(Decimal, _represent_decimal)


def dump_yaml(data: Any) -> str:
    """Render new files the way a person would write them (order kept, UTF-8, block style)."""
    return yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=True,
                     default_flow_style=False, width=88)
