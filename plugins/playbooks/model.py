"""The playbook file format: ``playbooks/<name>.yaml`` in, a :class:`Playbook` and
diagnostics out.

Every problem is reported at its ``path:line:col`` (unknown keys with a
did-you-mean, offsets that are not offsets or longer than 100 years, steps without
a title), each mistake once and none hiding another; a playbook with a problem in
its structure is not loaded at all, so that a half-understood playbook never
reminds anybody of anything.  A trigger that matches the contacts its own steps ask
for is a warning (the playbook could start itself again and again).  What needs
the rest of the workspace (interaction types, templates) is checked by
:func:`check_against`.
Segment expressions are compiled by the core, as labels of this plugin
(:attr:`Parsed.labels`, also of a playbook that cannot be used), which reports their
unknown names at their place.
See docs/playbooks.md.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import crmkit
from crmkit import Diagnostic, Interaction, Location

NAME = "playbooks"
FOLDER = "playbooks"
#: A playbook's name (its file name): it becomes a reminder kind's name.
PLAYBOOK_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
#: A step's name: the last part of its reminders' ids.
STEP_NAME = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
_OFFSET = re.compile(r"^\s*(\d+)\s*(day|week|month|year)s?\s*$", re.IGNORECASE)
_EVERY = re.compile(r"^\s*every\s+(.+)$", re.IGNORECASE)
#: The lifecycle stages a trigger can enter: those with a day they began
#: (``lifecycle_since``); a lead has no purchase, so no such day.
STAGES = ("new", "active", "at_risk", "lost")
DIRECTIONS = ("inbound", "outbound")
TOP_KEYS = ("description", "title", "trigger", "steps", "stop", "repeat", "expires_after",
            "priority", "channel")
TRIGGER_KEYS = ("type", "text", "direction", "nth", "stage", "tag", "segment")
STEP_KEYS = ("name", "after", "title", "channel", "priority", "template", "stop")
STOP_KEYS = ("type", "text", "direction", "tag", "segment")
MATCH_KEYS = ("type", "text", "direction")
DEFAULT_EXPIRY = "30 days"
#: The longest offset, expiry or repetition: 100 years in each unit.  Longer ones
#: reach past the last day Python's dates can hold (9999-12-31) from any trigger.
MAX_SPAN = {"days": 36525, "weeks": 5217, "months": 1200, "years": 100}
#: The types of interactions a step's channel produces when the contact is recorded
#: (``crmkit log``); a channel of the same name as a type produces that type too.
CONTACTS = {"email": ("email",), "call": ("phone", "call"), "letter": ("letter",),
            "message": ("message", "sms", "whatsapp", "signal", "telegram"),
            "visit": ("visit",)}


@dataclass(frozen=True, slots=True)
class Offset:
    """A span such as ``3 days``, ``2 weeks`` or ``3 months`` (month ends are clamped:
    31 January + 1 month is 28 or 29 February)."""

    count: int
    unit: str  # days | weeks | months | years

    def add_to(self, day: dt.date, times: int = 1) -> dt.date:
        n = self.count * times
        if self.unit == "days":
            return day + dt.timedelta(days=n)
        if self.unit == "weeks":
            return day + dt.timedelta(weeks=n)
        months = day.month - 1 + (n * 12 if self.unit == "years" else n)
        year, month = day.year + months // 12, months % 12 + 1
        following = dt.date(year + month // 12, month % 12 + 1, 1)
        return dt.date(year, month, min(day.day, (following - dt.timedelta(days=1)).day))

    def times_until(self, start: dt.date, day: dt.date) -> int:
        """How many whole spans fit between ``start`` and ``day`` (0 if none)."""
        if day < start or self.count == 0:
            return 0
        if self.unit in ("days", "weeks"):
            return (day - start).days // (self.count * (7 if self.unit == "weeks" else 1))
        months = (day.year - start.year) * 12 + day.month - start.month
        n = max(0, months // (self.count * (12 if self.unit == "years" else 1)))
        while n and self.add_to(start, n) > day:
            n -= 1
        return n

    @property
    def too_long(self) -> bool:
        return self.count > MAX_SPAN[self.unit]

    def __str__(self) -> str:
        return f"{self.count} {self.unit[:-1] if self.count == 1 else self.unit}"

    def said(self, t: Any = None) -> str:
        """``3 days`` as data (``t`` is ``None``), else in ``t``'s language (``3 Tage``)."""
        return str(self) if t is None else t.duration(self.count, self.unit)


def _english(t: Any) -> Any:
    """``describe``'s language: English (data: JSON, diagnostics) unless ``t`` is given."""
    return t if t is not None else crmkit.translations("en")


def _word(t: Any, value: str) -> str:
    """A type or stage as written in the file (data), else as a word in ``t``'s language."""
    return value if t is None else t.word(value)


def parse_offset(value: Any) -> Offset | None:
    """``3 days``, ``2 weeks``, ``3 months``, ``1 year`` (or a whole number of days)."""
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return Offset(value, "days")
    if not isinstance(value, str):
        return None
    match = _OFFSET.match(value)
    if not match:
        return None
    return Offset(int(match[1]), match[2].lower() + "s")


@dataclass(frozen=True, slots=True)
class Match:
    """Which interactions count: of one of ``types``, mentioning one of ``texts`` (in the
    summary, an item or the service, ignoring case), in ``direction``.  A record that
    settles reminders (``resolves``: what ``drafts --send``, ``done`` and ``snooze``
    write) never counts: the email a step sent must not start the playbook again."""

    types: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    direction: str | None = None

    def __call__(self, interaction: Interaction) -> bool:
        if interaction.resolves:  # settles reminders (drafts --send, done, snooze)
            return False
        if self.types and interaction.type not in self.types:
            return False
        if self.direction is not None and interaction.direction != self.direction:
            return False
        if not self.texts:
            return True
        written = [interaction.summary or "", interaction.service or "",
                   *(item.name for item in interaction.items)]
        haystack = "\n".join(written).casefold()
        return any(text.casefold() in haystack for text in self.texts)

    def describe(self, t: Any = None) -> str:
        """``purchase mentioning 'Therme'``: English, as JSON and diagnostics have it;
        with ``t``, in its language (``crmkit playbooks``' table)."""
        say = _english(t)
        either = say.gettext(" or ")
        what = (either.join(_word(t, x) for x in self.types) if self.types
                else say.gettext("interaction"))
        if self.direction:
            what = f"{self.direction} {what}"
        if self.texts:
            what = say.gettext("%(what)s mentioning %(texts)s") % {
                "what": what, "texts": either.join(repr(x) for x in self.texts)}
        return what


@dataclass(frozen=True, slots=True)
class Condition:
    """One stop condition: a matching interaction, a tag the customer has, or a segment
    (an expression, computed as the label ``label``) the customer is in."""

    where: Location
    match: Match | None = None
    tag: str | None = None
    segment: str | None = None
    label: str | None = None
    segment_where: Location | None = None

    def describe(self, t: Any = None) -> str:
        say = _english(t)
        if self.match is not None:
            return self.match.describe(t)
        if self.tag is not None:
            return say.gettext("tag %(tag)s") % {"tag": self.tag}
        return say.gettext("segment %(segment)s") % {"segment": self.segment}


@dataclass(frozen=True, slots=True)
class Trigger:
    """What starts a run: a matching interaction (from the ``nth`` on) or entering a
    lifecycle ``stage``; only for customers with ``tag`` and in ``segment``."""

    where: Location
    match: Match | None = None
    nth: int = 1
    stage: str | None = None
    tag: str | None = None
    segment: str | None = None
    label: str | None = None
    segment_where: Location | None = None

    def describe(self, t: Any = None) -> str:
        """English, as JSON and diagnostics have it; with ``t``, in its language."""
        say = _english(t)
        if self.stage is not None:
            text = say.gettext("entering stage %(stage)s") % {"stage": _word(t, self.stage)}
        else:
            assert self.match is not None
            text = self.match.describe(t)
            if self.nth > 1:
                text += say.gettext(", from the %(nth)s on") % {
                    "nth": _ordinal(self.nth) if say.language == "en" else f"{self.nth}."}
        if self.tag is not None:
            text += say.gettext(", tagged %(tag)s") % {"tag": self.tag}
        if self.segment is not None:
            text += say.gettext(", in segment %(segment)s") % {"segment": self.segment}
        return text


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


@dataclass(frozen=True, slots=True)
class Step:
    name: str
    after: Offset
    title: str
    where: Location
    channel: str | None = None
    priority: int | None = None
    #: The email template as written (``None``: the default, ``email/<playbook>/<step>``).
    template: str | None = None
    stop: tuple[Condition, ...] = ()


@dataclass(frozen=True, slots=True)
class Playbook:
    name: str
    path: str
    trigger: Trigger
    steps: tuple[Step, ...]
    stop: tuple[Condition, ...] = ()
    description: str = ""
    #: ``"each"`` (every trigger starts a new run) or ``"once"`` (only the first).
    repeat: str = "each"
    #: A run starts again this long after it started (``repeat: every 1 year``).
    every: Offset | None = None
    expires_after: Offset = Offset(30, "days")
    priority: int = 3
    channel: str | None = None
    #: What its reminders are grouped under in reports and calendars (the user's words).
    title: str = ""

    @property
    def where(self) -> Location:
        return Location(self.path, 1, 1)

    def template(self, step: Step) -> str:
        return step.template or f"email/{self.name}/{step.name}"

    def conditions(self) -> Iterator[Trigger | Condition]:
        yield self.trigger
        yield from self.stop
        for step in self.steps:
            yield from step.stop

    def reads(self) -> tuple[str, ...]:
        """What the playbook's rule reads: the lifecycle for a stage trigger, and its
        segment labels (optional: a segment that does not compile is reported once, by
        the core, and never holds)."""
        found = ["lifecycle", "lifecycle_since"] if self.trigger.stage else []
        found.extend(f"{c.label}?" for c in self.conditions() if c.label is not None)
        return tuple(found)

    def describe_repeat(self, t: Any = None) -> str:
        """English, as JSON has it; with ``t``, in its language."""
        say = _english(t)
        if self.every is not None:
            return say.gettext("every %(span)s") % {"span": self.every.said(t)}
        return say.gettext("once") if self.repeat == "once" else say.gettext("each trigger")


# --- reading a file ---------------------------------------------------------------------


class _Reader:
    """Typed, located access to one playbook file's values; problems are collected.

    Each mistake is one error, and a mistake never hides another: a value that is
    wrong is reported and left out, what does not depend on it is still read and
    checked (a playbook with any error is not used, though)."""

    def __init__(self, path: str, name: str) -> None:
        self.path = path
        self.name = name
        #: The start of its segment labels' names (a wrong file name is reported, and
        #: the rest is read all the same: its labels get a name the core accepts).
        self.prefix = f"_playbook_{re.sub(r'[^A-Za-z0-9_-]+', '-', name)}_"
        self.problems: list[Diagnostic] = []
        #: Interaction types as written, and where (checked against the known ones).
        self.types: list[tuple[str, Location]] = []
        #: Each step's template: (step, the template as written or None, its channel,
        #: where), checked against the template folders.
        self.templates: list[tuple[str, str | None, str | None, Location]] = []
        #: A label for each segment expression, whether or not the playbook can be used
        #: (the core compiles it and reports its unknown names at their place).
        self.labels: list[crmkit.Label] = []

    def at(self, mark: tuple[int, int] | None) -> Location:
        return Location(self.path, *(mark or (1, 1)))

    def place(self, mapping: Any, key: str) -> Location:
        marks = getattr(mapping, "marks", {})
        return self.at(marks.get(key) or getattr(mapping, "start", None))

    def error(self, where: Location, message: str) -> None:
        self.problems.append(Diagnostic.error(message, where, source=NAME))

    @property
    def failed(self) -> int:
        return sum(p.is_error for p in self.problems)

    def mapping(self, value: Any, where: Location, what: str, allowed: tuple[str, ...]
                ) -> Mapping[str, Any] | None:
        if not isinstance(value, Mapping):
            self.error(where, f"{what} must be a mapping ({', '.join(allowed[:3])}, ...)")
            return None
        key_marks = getattr(value, "key_marks", {})
        for key in value:
            if key not in allowed:
                self.error(self.at(key_marks.get(key)),
                           f"unknown key {key!r} in {what}"
                           f"{crmkit.did_you_mean(str(key), allowed, 'en')}; "
                           f"known: {', '.join(allowed)}")
        return value

    def text(self, mapping: Mapping[str, Any], key: str, what: str,
             required: bool = False) -> str | None:
        value = mapping.get(key)
        if value is None:
            if required:
                self.error(self.place(mapping, key) if key in mapping else
                           self.at(getattr(mapping, "start", None)),
                           f"{what} needs '{key}'")
            return None
        if not isinstance(value, str) or not value.strip():
            self.error(self.place(mapping, key), f"'{key}' must be text, not {value!r}")
            return None
        return value.strip()

    def texts(self, mapping: Mapping[str, Any], key: str
              ) -> tuple[tuple[str, ...], tuple[Location, ...]]:
        value = mapping.get(key)
        if value is None:
            return (), ()
        items = value if isinstance(value, list) else [value]
        marks = getattr(value, "marks", None)
        places = tuple(self.at(marks[n]) if marks else self.place(mapping, key)
                       for n in range(len(items)))
        if not items or not all(isinstance(v, str) and v.strip() for v in items):
            self.error(self.place(mapping, key),
                       f"'{key}' must be a text or a list of texts, not {value!r}")
            return (), ()
        return tuple(v.strip() for v in items), places

    def priority(self, mapping: Mapping[str, Any]) -> int | None:
        value = mapping.get("priority")
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 9:
            self.error(self.place(mapping, "priority"),
                       f"'priority' must be a whole number from 1 (most important) to 9, "
                       f"not {value!r}")
            return None
        return value

    def offset(self, mapping: Mapping[str, Any], key: str, what: str) -> Offset | None:
        value = mapping.get(key)
        found = parse_offset(value)
        if found is None:
            self.error(self.place(mapping, key) if key in mapping else
                       self.at(getattr(mapping, "start", None)),
                       f"{what} needs '{key}': a number and days, weeks, months or years "
                       f"(e.g. 3 days, 2 weeks, 3 months)" if value is None else
                       f"'{key}': {value!r} is not an offset: write a number and days, "
                       "weeks, months or years (e.g. 3 days, 2 weeks, 3 months)")
        elif found.too_long:
            self.error(self.place(mapping, key), f"'{key}': {value!r} is too long: "
                                                 f"{_AT_MOST}")
            return None
        return found

    def segment(self, mapping: Mapping[str, Any], label: str
                ) -> tuple[str | None, str | None, Location | None]:
        """The segment expression, the name of its label and its place."""
        text = self.text(mapping, "segment", "")
        if text is None:
            return None, None, None
        where = self.place(mapping, "segment")
        name = self.prefix + label
        self.labels.append(crmkit.Label(name, text, where=where,
                                        description=f"a segment of playbook {self.name}"))
        return text, name, where


_AT_MOST = (f"at most {MAX_SPAN['years']} years ({MAX_SPAN['months']} months, "
            f"{MAX_SPAN['weeks']} weeks, {MAX_SPAN['days']} days)")


def _given(mapping: Mapping[str, Any], *keys: str) -> bool:
    """Whether any of ``keys`` has a value (a wrong one too: it is reported by itself)."""
    return any(mapping.get(key) is not None for key in keys)


def _match(r: _Reader, mapping: Mapping[str, Any]) -> Match | None:
    """The interaction to match, if the mapping gives one and every part of it is
    right."""
    before = r.failed
    types, places = r.texts(mapping, "type")
    texts, _ = r.texts(mapping, "text")
    direction = r.text(mapping, "direction", "")
    if direction is not None and direction not in DIRECTIONS:
        r.error(r.place(mapping, "direction"),
                f"'direction' must be inbound or outbound, not {direction!r}"
                f"{crmkit.did_you_mean(direction, DIRECTIONS, 'en')}")
    r.types.extend(zip(types, places, strict=True))
    if r.failed > before or not _given(mapping, *MATCH_KEYS):
        return None
    return Match(types, texts, direction)


# A segment's label is named ``_playbook_<name>_Trigger``, ``..._Stop<n>`` or
# ``..._Step_<step>_Stop<n>`` (``..._Step<n>_Stop<n>`` for a step whose name is wrong):
# a playbook's name has no capitals, so no two playbooks' labels can have the same name.


def _condition(r: _Reader, value: Any, where: Location, what: str, label: str
               ) -> Condition | None:
    mapping = r.mapping(value, where, what, STOP_KEYS)
    if mapping is None:
        return None
    before = r.failed
    match = _match(r, mapping)
    tag = r.text(mapping, "tag", what)
    segment, label_name, place = r.segment(mapping, label)
    kinds = sum((_given(mapping, *MATCH_KEYS), _given(mapping, "tag"),
                 _given(mapping, "segment")))
    if kinds != 1:
        r.error(where, f"{what} needs one of: an interaction (type, text, direction), "
                       "a 'tag' or a 'segment'" + (", not several" if kinds else ""))
    if r.failed > before:
        return None
    return Condition(where, match, tag, segment, label_name, place)


def _conditions(r: _Reader, mapping: Mapping[str, Any], key: str, what: str, label: str
                ) -> tuple[Condition, ...] | None:
    value = mapping.get(key)
    if value is None:
        return ()
    if not isinstance(value, list):
        r.error(r.place(mapping, key), f"'{key}' must be a list of conditions, e.g. "
                                       "- {type: purchase, text: Fassade}")
        return None
    marks = getattr(value, "marks", [])
    found = []
    for n, item in enumerate(value):
        where = r.at(marks[n] if n < len(marks) else None)
        found.append(_condition(r, item, where, f"{what} {n + 1}", f"{label}{n + 1}"))
    return None if None in found else tuple(c for c in found if c is not None)


def _trigger(r: _Reader, data: Mapping[str, Any]) -> Trigger | None:
    if data.get("trigger") is None:
        r.error(r.at(getattr(data, "start", None)),
                "a playbook needs a 'trigger': an interaction (type, text) or a "
                "lifecycle stage")
        return None
    where = r.place(data, "trigger")
    mapping = r.mapping(data["trigger"], where, "the trigger", TRIGGER_KEYS)
    if mapping is None:
        return None
    before = r.failed
    match = _match(r, mapping)
    stage = r.text(mapping, "stage", "the trigger")
    tag = r.text(mapping, "tag", "the trigger")
    segment, label, place = r.segment(mapping, "Trigger")
    interaction, staged = _given(mapping, *MATCH_KEYS), _given(mapping, "stage")
    nth = mapping.get("nth", 1)
    if staged and "nth" in mapping:
        r.error(r.place(mapping, "nth"), "'nth' counts interactions; a stage trigger has none")
    elif isinstance(nth, bool) or not isinstance(nth, int) or nth < 1:
        r.error(r.place(mapping, "nth"), f"'nth' must be a whole number of at least 1, "
                                         f"not {nth!r}")
    if stage is not None and stage not in STAGES:
        why = (" (a lead has no day it began: no purchase yet)" if stage == "lead" else
               crmkit.did_you_mean(stage, STAGES, "en"))
        r.error(r.place(mapping, "stage"),
                f"'stage' must be one of {', '.join(STAGES)}, not {stage!r}{why}")
    if interaction == staged:
        r.error(where, "the trigger needs either an interaction (type, text, direction) or "
                       "a 'stage', not both" if interaction else
                "the trigger needs an event with a day: an interaction (type, text, "
                "direction) or entering a lifecycle 'stage' (a tag or a segment alone has no "
                "day: crmkit keeps no history of when they were added)")
    if r.failed > before:
        return None
    return Trigger(where, match, nth, stage, tag, segment, label, place)


def _steps(r: _Reader, data: Mapping[str, Any]) -> tuple[list[Step], bool]:
    """The steps that are right, and whether all of them are."""
    value = data.get("steps")
    if not isinstance(value, list) or not value:
        r.error(r.place(data, "steps") if "steps" in data else
                r.at(getattr(data, "start", None)),
                "a playbook needs 'steps': a list of {name, after, title}")
        return [], False
    marks = getattr(value, "marks", [])
    steps: list[Step] = []
    seen: dict[str, Location] = {}
    for n, item in enumerate(value):
        where = r.at(marks[n] if n < len(marks) else None)
        what = f"step {n + 1}"
        mapping = r.mapping(item, where, what, STEP_KEYS)
        if mapping is None:
            continue
        before = r.failed
        step_name = r.text(mapping, "name", what, required=True)
        if step_name is not None and (not STEP_NAME.match(step_name) or len(step_name) > 60):
            r.error(r.place(mapping, "name"),
                    f"step name {step_name!r} must be a lowercase slug (a-z, 0-9 and '-', "
                    "e.g. 'maintenance-offer'): it is the last part of the reminders' ids")
            step_name = None
        elif step_name in seen:
            r.error(r.place(mapping, "name"),
                    f"two steps named {step_name!r} (the other at {seen[step_name]})")
            step_name = None
        elif step_name is not None:
            seen[step_name] = r.place(mapping, "name")
        after = r.offset(mapping, "after", what)
        title = r.text(mapping, "title", what, required=True)
        template = r.text(mapping, "template", what)
        wrong_template = template is not None and (
            template.startswith(("/", "\\")) or ".." in template.replace("\\", "/").split("/"))
        if wrong_template:
            r.error(r.place(mapping, "template"),
                    f"'template' must name a template below templates/, not {template!r}")
        channel = r.text(mapping, "channel", what)
        if step_name is not None and _given(mapping, "template") == (template is not None) \
                and not wrong_template:
            r.templates.append((step_name, template, channel, where))
        priority = r.priority(mapping)
        stop = _conditions(r, mapping, "stop", f"stop condition of step {n + 1}",
                           f"Step_{step_name}_Stop" if step_name else f"Step{n + 1}_Stop")
        if r.failed > before or step_name is None or after is None or title is None \
                or stop is None:
            continue
        steps.append(Step(step_name, after, title, where, channel, priority, template, stop))
    return steps, len(steps) == len(value)


def _repeat(r: _Reader, data: Mapping[str, Any]) -> tuple[str, Offset | None] | None:
    value = data.get("repeat")
    if value is None:
        return "each", None
    text = value.strip().lower() if isinstance(value, str) else ""
    if text in ("each", "once"):
        return text, None
    every = _EVERY.match(text)
    span = parse_offset(every[1]) if every else None
    if span is None or span.count == 0:
        r.error(r.place(data, "repeat"),
                f"'repeat' must be 'once', 'each' (a trigger that fires again starts a new "
                f"run; the default) or 'every' and a span (e.g. every 1 year), not {value!r}")
        return None
    if span.too_long:
        r.error(r.place(data, "repeat"), f"'repeat': {value!r} is too long: {_AT_MOST}")
        return None
    return "each", span


@dataclass(frozen=True, slots=True)
class Parsed:
    """What one file says: the playbook (``None``: too broken to use), its problems, and
    what it refers to elsewhere (checked by :func:`check_against` and, for its segments'
    labels, by the core)."""

    name: str
    playbook: Playbook | None
    problems: list[Diagnostic]
    types: tuple[tuple[str, Location], ...] = ()
    templates: tuple[tuple[str, str | None, str | None, Location], ...] = ()
    channel: str | None = None
    labels: tuple[crmkit.Label, ...] = ()


def parse(path: str, data: Any) -> Parsed:
    """One playbook file: the playbook, if it can be used, and every problem in it."""
    name = Path(path).name.rsplit(".", 1)[0]
    r = _Reader(path, name)
    playbook = _playbook(r, name, path, data)
    channel = data.get("channel") if isinstance(data, Mapping) else None
    return Parsed(name, playbook, r.problems, tuple(r.types), tuple(r.templates),
                  channel if isinstance(channel, str) else None, tuple(r.labels))


def _playbook(r: _Reader, name: str, path: str, data: Any) -> Playbook | None:
    if not PLAYBOOK_NAME.match(name):
        r.error(r.at(None), f"playbook name {name!r} (the file name) must be lowercase "
                            "letters, digits, '-' and '_', e.g. 'heating-installation': it "
                            "becomes the reminders' kind")
    if data is None:
        r.error(r.at(None), "empty playbook: it needs a 'trigger' and 'steps'")
        return None
    mapping = r.mapping(data, r.at(getattr(data, "start", None)), "a playbook", TOP_KEYS)
    if mapping is None:
        return None
    trigger = _trigger(r, mapping)
    steps, all_steps = _steps(r, mapping)
    stop = _conditions(r, mapping, "stop", "stop condition", "Stop")
    repeat = _repeat(r, mapping)
    expiry = r.offset(mapping, "expires_after", "") if "expires_after" in mapping else \
        parse_offset(DEFAULT_EXPIRY)
    priority = r.priority(mapping)
    channel = r.text(mapping, "channel", "a playbook")
    description = r.text(mapping, "description", "a playbook") or ""
    title = r.text(mapping, "title", "a playbook") or ""
    repeat_mode, every = repeat or ("each", None)
    if every is not None:
        start = dt.date(2001, 1, 31)
        for step in steps:
            if step.after.add_to(start) >= every.add_to(start):
                r.error(step.where, f"step {step.name!r} comes {step.after} after the start, "
                                    f"not before the run starts again (every {every})")
    if trigger is not None:
        r.problems.extend(_loops(trigger, steps, channel, path))
    if r.failed or trigger is None or not all_steps or stop is None or repeat is None \
            or expiry is None:
        return None
    return Playbook(name, path, trigger, tuple(steps), stop, description, repeat_mode, every,
                    expiry, priority if priority is not None else 3, channel, title)


def _produces(channel: str | None, kind: str) -> bool:
    """Whether a contact on ``channel`` (``None``: the customer's, which may be any) is
    recorded as an interaction of type ``kind``."""
    if channel is None:
        return kind in CONTACTS
    return channel == kind or channel in CONTACTS.get(kind, ())


CUSTOMERS_CHANNEL = "the customer's channel"


def _loops(trigger: Trigger, steps: Iterable[Step], channel: str | None, path: str
           ) -> Iterator[Diagnostic]:
    """A warning when the trigger matches the contacts the steps ask for: recorded
    with ``crmkit log`` (not by ``drafts --send`` or ``done``, which never count), each
    such contact starts the playbook again, and so on for ever."""
    match = trigger.match
    if match is None or match.direction == "inbound":
        return
    found = []
    for step in steps:
        made = step.channel or channel
        if any(_produces(made, kind) for kind in match.types or CONTACTS):
            found.append(f"{step.name!r} ({made or CUSTOMERS_CHANNEL})")
    if not found:
        return
    several = len(found) > 1
    yield Diagnostic.warning(
        f"the trigger ({match.describe()}) also matches the contact"
        f"{'s' if several else ''} that step{'s' if several else ''} {', '.join(found)} "
        f"ask{'' if several else 's'} for: recorded with 'crmkit log', "
        f"{'each' if several else 'that contact'} starts the playbook again, and so on for "
        "ever; give the trigger 'direction: inbound' or the step another channel (records "
        "that settle a reminder, by 'drafts --send', 'done' or 'snooze', never start a run)",
        trigger.where, source=NAME)


def parse_all(files: Mapping[str, Any]) -> list[Parsed]:
    """Every file of ``playbooks/``, by path (a second file with a name taken is not
    loaded)."""
    found: list[Parsed] = []
    taken: dict[str, str] = {}
    for path in sorted(files):
        parsed = parse(path, files[path])
        playbook = parsed.playbook
        if playbook is not None and playbook.name in taken:
            parsed.problems.append(Diagnostic.error(
                f"playbook name {playbook.name!r} is taken by {taken[playbook.name]}",
                playbook.where, source=NAME))
            parsed = replace(parsed, playbook=None)
        elif playbook is not None:
            taken[playbook.name] = path
        found.append(parsed)
    return found


def playbooks_of(files: Mapping[str, Any]) -> list[Playbook]:
    """The playbooks that can be used."""
    return [p.playbook for p in parse_all(files) if p.playbook is not None]


# --- what needs the rest of the workspace ----------------------------------------------


def check_against(parsed: Parsed, types: Iterable[str], template_dirs: Iterable[Path],
                  locale: str) -> Iterator[Diagnostic]:
    """Interaction types nobody declared, and email templates that do not exist (in the
    workspace's locale or English: what drafts fall back to)."""
    known = sorted(types)
    for kind, where in parsed.types:
        if kind not in known:
            yield Diagnostic.error(
                f"unknown interaction type {kind!r}{crmkit.did_you_mean(kind, known, 'en')} "
                "(crmkit.yaml's interaction_types can add one)", where, source=NAME)
    folders = list(template_dirs)
    locales = list(dict.fromkeys((locale, "en")))
    for step, template, channel, where in parsed.templates:
        base = template or f"email/{parsed.name}/{step}"
        names = [f"{base}.{loc}.txt.j2" for loc in locales]
        if any((folder / name).is_file() for folder in folders for name in names):
            continue
        files = " or ".join(names)
        if template is not None:
            yield Diagnostic.error(
                f"step {step!r}: no email template {template!r} ({files} in templates/ or "
                "a plugin's templates)", where, source=NAME)
        elif (channel or parsed.channel) == "email":
            yield Diagnostic.warning(
                f"step {step!r} is an email, but there is no template {files} "
                "(templates/): drafts leave it out", where, source=NAME)
