"""What the workspace holds about one person, found by link and by content.

By link: the records that name them (``customer: ID``, ``referred_by: ID``), read from
the raw YAML, so that records failing validation (a bad date, an unknown type, a file
that is not valid YAML) are found as well.  By content: every file of the workspace
but ``.git/`` is searched for their id, their email addresses and their phone numbers
in the usual notations (``+49 3643 880011``, ``03643/880011``, ...); generated files
also for their name.  Both ``privacy export`` and ``privacy forget`` start here.
"""

from __future__ import annotations

import bisect
import html
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

import crmkit

from .language import _

RECORD_FOLDERS = ("customers", "interactions", "deals")
YAML_SUFFIXES = (".yaml", ".yml")
#: crmkit's own folder (caches, the outbox journal): git-ignored, never hand-edited.
OWN_FOLDER = ".crmkit"
#: The caches in it: copies of what was read and printed, cleared as a whole.
CACHE_FOLDER = f"{OWN_FOLDER}/cache"
#: A named temporary file of crmkit's atomic writes (``.NAME.XXXXXXXX.tmp``), as a
#: killed run may leave it (where new files cannot be written unnamed).
LEFTOVER = re.compile(r"^\..+\.[a-z0-9_]{8}\.tmp$")
#: Where a file is: a record, a generated file (the output folder), crmkit's own
#: (``.crmkit/``, a leftover temporary file), or anything else.
RECORD, GENERATED, OWN, OTHER = "record", "generated", "own", "other"
#: Shorter phone numbers (without prefix) are not searched for: too many false finds.
MIN_PHONE_DIGITS = 6
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_TEXT_LOADER = getattr(yaml, "CBaseLoader", yaml.BaseLoader)
_CUSTOMER_VALUE = re.compile(r"""\bcustomer\s*:\s*["']?([^\s"',}\]#]+)""")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
#: Line breaks as YAML counts them (so that line numbers agree with the parser's).
_BREAK = re.compile(rb"\r\n|[\r\n]|\xc2\x85|\xe2\x80[\xa8\xa9]")
_LINE = re.compile(r"[^\r\n\x85\u2028\u2029]*(?:\r\n|[\r\n\x85\u2028\u2029])"
                   r"|[^\r\n\x85\u2028\u2029]+\Z")


@dataclass(frozen=True)
class Person:
    """Whom to look for: the id, and what else identifies them in text."""

    id: str
    name: str | None = None
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    #: Their customer file loads as a valid record.
    loaded: bool = False
    #: Ids of records merged into theirs (``aliases:``): files written later by another
    #: clone may still name them by one of these.
    aliases: tuple[str, ...] = ()

    @property
    def ids(self) -> frozenset[str]:
        return frozenset((self.id, *self.aliases))


@dataclass(frozen=True)
class Mention:
    line: int
    what: str  # "their id", "their email a@b.de", ... (as the export's JSON says it)
    #: The same for a person to read, in the terminal's language.
    said: str = ""

    def __str__(self) -> str:
        return f"{self.line}: {self.what}"


@dataclass
class Found:
    """A file that holds something about the person."""

    rel: str
    area: str
    mentions: list[Mention] = field(default_factory=list)
    data: bytes = b""
    #: Why it could not be read, if it could not.
    unreadable: str | None = None

    @property
    def text(self) -> str:
        return self.data.decode("utf-8", errors="replace")

    @property
    def folder(self) -> str:
        return self.rel.split("/", 1)[0]


def person_of(app: crmkit.App, customer_id: str) -> Person:
    """The person as their customer file describes them, also when it does not load
    (then read from the raw YAML, or from its text if that is not even YAML)."""
    customer = app.workspace.customers.get(customer_id)
    if customer is not None:
        return Person(customer_id, customer.name, tuple(customer.emails),
                      tuple(customer.phones), loaded=True, aliases=tuple(customer.aliases))
    for path in customer_files(app.workspace.root, customer_id):
        try:
            text = path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            continue
        data = safe_data(text)
        if isinstance(data, dict):
            name = data.get("name") if isinstance(data.get("name"), str) else None
            return Person(customer_id, name, _texts(data, "email", "emails"),
                          _texts(data, "phone", "phones"),
                          aliases=_texts(data, "aliases", "aliases"))
        return Person(customer_id, None, tuple(dict.fromkeys(_EMAIL.findall(text))),
                      tuple(m.group(1).strip() for m in re.finditer(
                          r"phones?\s*:\s*\[?\s*['\"]?([+\d][\d ()/.-]{5,})", text)))
    return Person(customer_id)


def _texts(data: dict[str, Any], one: str, many: str) -> tuple[str, ...]:
    values = data.get(many) if many in data else data.get(one)
    values = values if isinstance(values, list) else [values]
    return tuple(str(v) for v in values if isinstance(v, (str, int)) and str(v).strip())


def customer_files(root: Path, customer_id: str) -> list[Path]:
    """``customers/**/ID.yaml`` (and ``.yml``): their customer file, wherever it is."""
    folder = root / "customers"
    if not folder.is_dir():
        return []
    return sorted(p for suffix in YAML_SUFFIXES for p in folder.rglob(customer_id + suffix)
                  if p.is_file() and not p.is_symlink())


def safe_data(text: str) -> Any:
    """The YAML's data with every value as text (a date that does not exist is still
    data), or ``None`` if it is not valid YAML (or uses anchors: crmkit's loader bounds
    their expansion, this plain reader does not)."""
    try:
        if any(isinstance(t, yaml.AliasToken) for t in yaml.scan(text, Loader=_LOADER)):
            return None
        return yaml.load(text, Loader=_TEXT_LOADER)  # constructs nothing but text
    except (yaml.YAMLError, RecursionError, ValueError):
        return None


# --- searching text ---------------------------------------------------------------------


def _phone_pattern(phone: str) -> bytes | None:
    """A pattern for a phone number in any common notation: with or without the
    country code, trunk zero and separators (``+49 (0)3643 88-00 11``, ``03643880011``)."""
    digits = re.sub(r"\D", "", phone)
    stripped = phone.strip()
    if stripped.startswith("+"):
        cores = [digits[k:] for k in (1, 2, 3)]
    elif digits.startswith("00"):
        cores = [digits[2 + k:] for k in (1, 2, 3)]
    elif digits.startswith("0"):
        cores = [digits[1:]]
    else:
        cores = [digits]
    cores = [c for c in dict.fromkeys(cores) if len(c) >= MIN_PHONE_DIGITS]
    if not cores:
        return None
    sep = rb"[ \t./()\-]*"
    prefix = rb"(?:(?:\+|00)\d{1,3}" + sep + rb"(?:\(0\)" + sep + rb")?|0" + sep + rb")?"
    bodies = b"|".join(sep.join(d.encode() for d in core) for core in cores)
    return rb"(?<!\d)" + prefix + rb"(?:" + bodies + rb")(?!\d)"


class Matcher:
    """Finds a person's id, emails and phones (and, in generated files, name) in bytes."""

    def __init__(self, person: Person, other_ids: Iterable[str]) -> None:
        # (what, the same for a person to read, pattern)
        parts: list[tuple[str, str, bytes]] = []
        for email in person.emails:
            parts.append((f"their email {email}",
                          _("their email %(email)s") % {"email": email},
                          rb"(?i:(?<![a-z0-9._%+-])" + re.escape(email.encode())
                          + rb")(?![a-z0-9-]|\.[a-z0-9])"))
        for phone in person.phones:
            pattern = _phone_pattern(phone)
            if pattern is not None:
                parts.append((f"their phone {phone}",
                              _("their phone %(phone)s") % {"phone": phone}, pattern))
        # last: where an email address starts with their id, the address is the mention
        for alias in person.aliases:
            parts.append((f"their former id {alias}",
                          _("their former id %(id)s") % {"id": alias},
                          rb"(?<![a-z0-9])" + re.escape(alias.encode()) + rb"(?![a-z0-9])"))
        slug = re.escape(person.id.encode())
        parts.append(("their id", _("their id"),
                      rb"(?<![a-z0-9])" + slug + rb"(?![a-z0-9])"))
        self._labels = [label for label, _said, _pattern in parts]
        self._said = {label: said for label, said, _pattern in parts}
        self._said["their name"] = _("their name")
        self._pattern = re.compile(b"|".join(b"(" + p + b")" for _label, _said, p in parts))
        names = {person.name, html.escape(person.name or "")} if person.name and \
            len(person.name.strip()) >= 4 else set()
        self._name = re.compile(b"|".join(
            rb"(?<![A-Za-z0-9])" + re.escape(n.encode()) + rb"(?![A-Za-z0-9])"
            for n in sorted(names))) if names else None
        # Longer ids that contain this one ("anna-maria" for "anna") are other people.
        longer = [i for i in other_ids if i not in person.ids
                  and any(own in i for own in person.ids)]
        self._shadows = re.compile(b"|".join(
            rb"(?<![a-z0-9])" + re.escape(i.encode()) + rb"(?![a-z0-9])"
            for i in sorted(longer, key=len, reverse=True))) if longer else None

    def find(self, data: bytes, generated: bool = False) -> list[Mention]:
        """The lines that mention them; in a generated file also their name (and any
        mention at all, with folded lines joined, as in iCalendar and email headers)."""
        if generated:
            data = re.sub(rb"\r?\n[ \t]", b"", data)
        shadowed = ([m.span() for m in self._shadows.finditer(data)]
                    if self._shadows is not None else [])
        found: dict[tuple[int, str], None] = {}
        starts: list[int] = []

        def line(offset: int) -> int:
            if not starts:
                starts.extend(m.end() for m in _BREAK.finditer(data))
            return bisect.bisect_right(starts, offset) + 1

        for match in self._pattern.finditer(data):
            label = self._labels[match.lastindex - 1] if match.lastindex else "?"
            start = match.start()
            if (label == "their id" or label.startswith("their former id")) and any(
                    a <= start < b for a, b in shadowed):
                continue
            found[(line(start), label)] = None
        if generated and self._name is not None:
            for match in self._name.finditer(data):
                found[(line(match.start()), "their name")] = None
        return [Mention(n, what, self._said.get(what, what)) for n, what in found]


# --- the walk -----------------------------------------------------------------------------


def area_of(rel: str, output: str | None) -> str:
    name = rel.rsplit("/", 1)[-1]
    if output is not None and (rel == output or rel.startswith(output + "/")):
        return GENERATED
    if rel.startswith(OWN_FOLDER + "/") or LEFTOVER.match(name):
        return OWN
    folder = rel.split("/", 1)[0]
    if (folder in RECORD_FOLDERS and "/" in rel and name.endswith(YAML_SUFFIXES)
            and not name.startswith((".", "#", "~"))):
        return RECORD
    return OTHER


def scan(app: crmkit.App, person: Person) -> list[Found]:
    """Every file of the workspace that holds something about ``person`` (their own
    customer file always), sorted by path; ``.git/`` and crmkit's caches are not read
    (the caches are cleared as a whole)."""
    root = app.workspace.root
    try:
        output: str | None = app.workspace.output_dir.resolve().relative_to(
            root.resolve()).as_posix()
    except ValueError:
        output = None
    matcher = Matcher(person, app.workspace.customers)
    theirs = {p.relative_to(root).as_posix() for p in customer_files(root, person.id)}
    found = []
    for rel, path in _files(str(root)):
        area = area_of(rel, output)
        try:
            with open(path, "rb") as handle:
                data = handle.read()
        except OSError as exc:
            found.append(Found(rel, area, unreadable=exc.strerror or str(exc)))
            continue
        mentions = matcher.find(data, generated=area == GENERATED)
        if mentions or rel in theirs:
            found.append(Found(rel, area, mentions, data))
    return found


def _files(root: str) -> Iterator[tuple[str, str]]:
    """``(relative path, path)`` of every regular file below ``root``, sorted; links are
    not followed (one inside the workspace is read where it points to); ``.git/`` and
    the caches are left out."""
    stack = [("", root)]
    while stack:
        prefix, folder = stack.pop()
        try:
            with os.scandir(folder) as listing:
                entries = sorted(listing, key=lambda e: e.name)
        except OSError:
            continue
        subfolders = []
        for entry in entries:
            rel = prefix + entry.name
            if entry.is_dir(follow_symlinks=False):
                if rel not in (".git", CACHE_FOLDER):
                    subfolders.append((rel + "/", entry.path))
            elif entry.is_file(follow_symlinks=False):
                yield rel, entry.path
        stack.extend(reversed(subfolders))


# --- their records in a record file -----------------------------------------------------


@dataclass
class Entries:
    """Their records in one record file."""

    #: The whole file is theirs (delete it).
    whole: bool = False
    #: Otherwise: 1-based, end-exclusive line spans of their records, with their start
    #: column, to cut out.
    spans: list[tuple[int, int, int]] = field(default_factory=list)
    #: Records of other people kept in the file.
    others: int = 0
    #: What kind of reference a span is ("entries", "referred_by").
    kind: str = "entries"
    #: Why crmkit cannot work out their part of this file.
    problem: str | None = None
    #: The file is not valid YAML.
    broken: bool = False


def their_entries(found: Found, ids: str | Iterable[str]) -> Entries:
    """Which part of a record file is theirs: their customer file, interaction files and
    deals wholly; entries of shared interaction files and other customers'
    ``referred_by`` line by line.  ``ids``: their id, or it with their aliases."""
    ids = frozenset((ids,) if isinstance(ids, str) else ids)
    rel, text = found.rel, found.text
    stem = rel.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if found.folder == "customers" and stem in ids:
        return Entries(whole=True)
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except (yaml.YAMLError, RecursionError, ValueError):
        owners = set(_CUSTOMER_VALUE.findall(text))
        if found.folder != "customers" and owners and owners <= ids:
            return Entries(whole=True, broken=True)
        return Entries(broken=True, problem=(
            _("not valid YAML, and it names other customers too") if owners - ids
            else _("not valid YAML")))
    if node is None:
        return Entries()
    if found.folder == "customers":
        return _referral(node, ids)
    if isinstance(node, yaml.MappingNode):
        if _value(node, "customer") in ids:
            return Entries(whole=True)
        return Entries(others=1)
    if found.folder == "interactions" and isinstance(node, yaml.SequenceNode):
        total = len(lines_of(text)) + 1
        entries = Entries()
        items = node.value
        for n, item in enumerate(items):
            if not (isinstance(item, yaml.MappingNode) and _value(item, "customer") in ids):
                entries.others += 1
                continue
            end = items[n + 1].start_mark.line + 1 if n + 1 < len(items) else total
            entries.spans.append((item.start_mark.line + 1, end, item.start_mark.column + 1))
        entries.whole = bool(entries.spans) and entries.others == 0
        return entries
    return Entries(others=1)


def _value(node: yaml.MappingNode, key: str) -> str | None:
    for k, v in node.value:
        if isinstance(k, yaml.ScalarNode) and k.value == key and isinstance(v, yaml.ScalarNode):
            return str(v.value)
    return None


def _referral(node: Any, ids: frozenset[str]) -> Entries:
    """Another customer's file: the ``referred_by`` line that names them."""
    if not isinstance(node, yaml.MappingNode):
        return Entries(others=1)
    for k, v in node.value:
        if (isinstance(k, yaml.ScalarNode) and k.value == "referred_by"
                and isinstance(v, yaml.ScalarNode) and v.value in ids):
            end = v.end_mark.line + (1 if v.end_mark.column else 0)
            return Entries(spans=[(k.start_mark.line + 1, max(end, k.start_mark.line) + 1,
                                   k.start_mark.column + 1)],
                           others=1, kind="referred_by")
    return Entries(others=1)


def lines_of(text: str) -> list[str]:
    """``text``'s lines with their line breaks, split where YAML counts lines."""
    return _LINE.findall(text)


def lines_without(text: str, spans: Iterable[tuple[int, int, int]]) -> str:
    """``text`` without the 1-based, end-exclusive line spans."""
    drop = cut_lines(spans)
    return "".join(line for n, line in enumerate(lines_of(text), start=1) if n not in drop)


def cut_lines(spans: Iterable[tuple[int, int, int]]) -> set[int]:
    return {n for start, end, _ in spans for n in range(start, end)}
