"""The rule language: small, safe expressions over one customer.

    tags contains "weimar" and revenue_12m > 1000
    lifecycle in ["at_risk", "lost"] or not email_consent
    fields.heating == "gas"
    abc=A                       (a selector: label abc equals "A", ignoring case)

Used wherever a person writes a rule in ``crmkit.yaml``: user-defined
segments, the conditions of reminder kinds, ``--segment`` on the command line.
The names are the customer's variables (:mod:`crmkit.engine.views`) and every
registered label, so a label from any plugin can be used; unknown names are
errors with a did-you-mean.  No Python ``eval``: expressions are parsed into
closures over a mapping of variables, so they can only read values, never call
anything.  Comparisons with a missing value (``null``) are false, except
``== null`` / ``!= null``.  Errors carry the 1-based column inside the expression.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from ..loading.schema import did_you_mean

Variables = Mapping[str, Any]
Compiled = Callable[[Variables], Any]

_TOKEN = re.compile(r"""
    \s*(?:
      (?P<number>\d+(?:\.\d+)?)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')
    | (?P<op>==|!=|<=|>=|<|>|\(|\)|\[|\]|,)
    | (?P<name>[A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_-]+)*)
    )""", re.VERBOSE)
_KEYWORDS = {"and", "or", "not", "in", "contains", "true", "false", "null"}
_COMPARE = {"==", "!=", "<", "<=", ">", ">=", "in", "contains", "not in"}


class ExpressionError(ValueError):
    def __init__(self, message: str, column: int) -> None:
        super().__init__(message)
        self.message = message
        self.column = column


@dataclass(frozen=True, slots=True)
class _Token:
    kind: str  # number, string, op, name, keyword, end
    text: str
    column: int


def _tokenize(text: str) -> list[_Token]:
    tokens, pos = [], 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        match = _TOKEN.match(text, pos)
        if not match or match.end() == pos:
            column = pos + len(text[pos:]) - len(text[pos:].lstrip()) + 1
            raise ExpressionError(f"unexpected character {text[column - 1]!r}", column)
        kind = match.lastgroup or "op"
        value = match.group(kind)
        column = match.start(kind) + 1
        if kind == "name" and value in _KEYWORDS:
            kind = "keyword"
        tokens.append(_Token(kind, value, column))
        pos = match.end()
    tokens.append(_Token("end", "", len(text) + 1))
    return tokens


def _compare(op: str, left: Any, right: Any) -> bool:
    if op == "==":
        return left == right
    if op == "!=":
        return left != right
    if op == "contains":
        left, right = right, left
        op = "in"
    if op in ("in", "not in"):
        if right is None or left is None:
            return op == "not in"
        if isinstance(right, str):
            found = isinstance(left, str) and left.lower() in right.lower()
        else:
            found = left in right
        return found if op == "in" else not found
    if left is None or right is None:
        return False
    if isinstance(left, (int, float, Decimal)) and isinstance(right, (int, float, Decimal)):
        left, right = Decimal(str(left)), Decimal(str(right))
    elif type(left) is not type(right):
        return False
    try:
        return {"<": left < right, "<=": left <= right, ">": left > right,
                ">=": left >= right}[op]
    except TypeError:
        return False


#: More terms than this are refused: nobody writes them by hand, and evaluating a
#: chain of thousands of ``or`` would exhaust the stack at run time.
MAX_TERMS = 500
#: Parentheses, lists and ``not`` nested deeper than this are refused: parsing and
#: evaluating recurse once per level, and a few hundred levels exhaust the stack.
MAX_DEPTH = 50


class _Parser:
    def __init__(self, text: str, names: Iterable[str] | None) -> None:
        self.tokens = _tokenize(text)
        if len(self.tokens) > 3 * MAX_TERMS:
            raise ExpressionError(f"the expression is too long (more than {MAX_TERMS} terms)",
                                  1)
        self.index = 0
        self.depth = 0
        self.names = set(names) if names is not None else None
        self.used: set[str] = set()

    @property
    def current(self) -> _Token:
        return self.tokens[self.index]

    def take(self) -> _Token:
        token = self.tokens[self.index]
        self.index += 1
        return token

    def nest(self, token: _Token) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"the expression is nested too deeply (more than {MAX_DEPTH} "
                                  "levels of parentheses, lists or 'not')", token.column)

    def expect(self, text: str) -> None:
        if self.current.text != text:
            found = repr(self.current.text) if self.current.text else "the end of the expression"
            raise ExpressionError(f"expected {text!r}, found {found}", self.current.column)
        self.take()

    def parse(self) -> Compiled:
        node = self.or_()
        if self.current.kind != "end":
            hint = did_you_mean(self.current.text, ("and", "or", "not", "in", "contains"), "en")
            raise ExpressionError(f"unexpected {self.current.text!r}{hint}", self.current.column)
        return node

    def or_(self) -> Compiled:
        nodes = [self.and_()]
        while self.current.text == "or":
            self.take()
            nodes.append(self.and_())
        if len(nodes) == 1:
            return nodes[0]
        # one closure for the whole chain: evaluating it never recurses per term
        return lambda v: any(node(v) for node in nodes)

    def and_(self) -> Compiled:
        nodes = [self.not_()]
        while self.current.text == "and":
            self.take()
            nodes.append(self.not_())
        if len(nodes) == 1:
            return nodes[0]
        return lambda v: all(node(v) for node in nodes)

    def not_(self) -> Compiled:
        if self.current.text == "not" and self.current.kind == "keyword":
            self.nest(self.take())
            inner = self.not_()
            self.depth -= 1
            return lambda v: not inner(v)
        return self.comparison()

    def comparison(self) -> Compiled:
        left = self.operand()
        op = self.current.text
        following = self.tokens[self.index + 1].text if self.current.kind != "end" else ""
        if self.current.kind == "keyword" and op == "not" and following == "in":
            self.take()
            op = "not in"
        elif op not in _COMPARE or self.current.kind not in ("op", "keyword"):
            return left
        self.take()
        right = self.operand()
        return lambda v: _compare(op, left(v), right(v))

    def operand(self) -> Compiled:
        token = self.take()
        if token.kind == "number":
            number = Decimal(token.text)
            return lambda v: number
        if token.kind == "string":
            text = re.sub(r"\\(.)", r"\1", token.text[1:-1])
            return lambda v: text
        if token.kind == "keyword" and token.text in ("true", "false", "null"):
            constant = {"true": True, "false": False, "null": None}[token.text]
            return lambda v: constant
        if token.text == "(":
            self.nest(token)
            node = self.or_()
            self.expect(")")
            self.depth -= 1
            return node
        if token.text == "[":
            self.nest(token)
            items: list[Compiled] = []
            while self.current.text != "]":
                items.append(self.operand())
                if self.current.text == ",":
                    self.take()
                elif self.current.text != "]":
                    raise ExpressionError("expected ',' or ']'", self.current.column)
            self.take()
            self.depth -= 1
            return lambda v: [item(v) for item in items]
        if token.kind == "name":
            return self.variable(token)
        found = repr(token.text) if token.text else "the end of the expression"
        raise ExpressionError(f"expected a value, found {found}", token.column)

    def variable(self, token: _Token) -> Compiled:
        head, *rest = token.text.split(".")
        if self.names is not None and head not in self.names:
            raise ExpressionError(f"unknown name {head!r}{did_you_mean(head, self.names, 'en')}",
                                  token.column)
        self.used.add(head)

        def lookup(variables: Variables) -> Any:
            value = variables.get(head)
            for key in rest:
                value = value.get(key) if isinstance(value, Mapping) else None
            return value

        return lookup


_SELECTOR = re.compile(r"\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*([^=\s].*?)\s*\Z")


class Expression:
    """A compiled expression: call it with a customer's variables (any mapping, or a
    customer view) to get its value.  ``names`` are the variables it reads."""

    __slots__ = ("_compiled", "names", "text")

    def __init__(self, text: str, compiled: Compiled, names: frozenset[str]) -> None:
        self.text = text
        self._compiled = compiled
        self.names = names

    def __call__(self, variables: Variables | Any) -> Any:
        if not isinstance(variables, Mapping):
            variables = variables.variables
        return self._compiled(variables)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Expression) and other.text == self.text

    def __hash__(self) -> int:
        return hash(("expression", self.text))

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (compile_expression, (self.text,))


def _selector(name: str, wanted: str) -> Compiled:
    def matches(variables: Variables) -> bool:
        value = variables.get(name)
        return value is not None and str(value).lower() == wanted.lower()

    return matches


def compile_expression(text: str, names: Iterable[str] | None = None) -> Expression:
    """Compile ``text``; with ``names``, unknown variable names are errors.  A selector
    ``NAME=VALUE`` (as ``--segment`` takes it) means "``NAME`` equals ``VALUE``,
    ignoring case"."""
    if not isinstance(text, str) or not text.strip():
        raise ExpressionError("empty expression", 1)
    selector = _SELECTOR.match(text)
    if selector:
        name, wanted = selector.groups()
        wanted = wanted.strip("\"'")
        if names is not None and name not in set(names):
            raise ExpressionError(f"unknown name {name!r}{did_you_mean(name, names, 'en')}",
                                  text.index(name) + 1)
        return Expression(text, _selector(name, wanted), frozenset({name}))
    parser = _Parser(text, names)
    compiled = parser.parse()
    return Expression(text, compiled, frozenset(parser.used))
