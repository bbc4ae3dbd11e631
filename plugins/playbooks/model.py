"""The playbook file format: ``playbooks/<name>.yaml`` in, a :class:`Playbook` and
diagnostics out.

Every problem is reported at its ``path:line:col`` (unknown keys with a
did-you-mean, offsets that are not offsets, steps without a title); a playbook
with a problem in its structure is not loaded at all, so that a half-understood
playbook never reminds anybody of anything.  What needs the rest of the
workspace (interaction types, templates) is checked by :func:`check_against`.
Segment expressions are compiled by the core, as labels of this plugin
(:meth:`Playbook.labels`), which reports their unknown names at their place.
See docs/playbooks.md.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
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
TOP_KEYS = ("description", "trigger", "steps", "stop", "repeat", "expires_after", "priority",
            "channel")
TRIGGER_KEYS = ("type", "text", "direction", "nth", "stage", "tag", "segment")
STEP_KEYS = ("name", "after", "title", "channel", "priority", "template", "stop")
STOP_KEYS = ("type", "text", "direction", "tag", "segment")
DEFAULT_EXPIRY = "30 days"


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

    def __str__(self) -> str:
        return f"{self.count} {self.unit[:-1] if self.count == 1 else self.unit}"


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
    summary, an item or the service, ignoring case), in ``direction``."""

    types: tuple[str, ...] = ()
    texts: tuple[str, ...] = ()
    direction: str | None = None
    def __call__(self, interaction: Interaction) -> bool:
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

    def describe(self) -> str:
        what = " or ".join(self.types) if self.types else "interaction"
        if self.direction:
            what = f"{self.direction} {what}"
        if self.texts:
            what += " mentioning " + " or ".join(repr(t) for t in self.texts)
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

    def describe(self) -> str:
        if self.match is not None:
            return self.match.describe()
        if self.tag is not None:
            return f"tag {self.tag}"
        return f"segment {self.segment}"


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

    def describe(self) -> str:
        if self.stage is not None:
            text = f"entering stage {self.stage}"
        else:
            assert self.match is not None
            text = self.match.describe()
            if self.nth > 1:
                text += f", from the {_ordinal(self.nth)} on"
        if self.tag is not None:
            text += f", tagged {self.tag}"
        if self.segment is not None:
            text += f", in segment {self.segment}"
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

    def labels(self) -> list[crmkit.Label]:
        """A label for each segment expression (the core compiles it, checks its names
        and keeps its values per customer)."""
        return [crmkit.Label(c.label, c.segment, where=c.segment_where or c.where,
                             description=f"a segment of playbook {self.name}")
                for c in self.conditions() if c.label is not None and c.segment is not None]

    def reads(self) -> tuple[str, ...]:
        """What the playbook's rule reads: the lifecycle for a stage trigger, and its
        segment labels (optional: a segment that does not compile is reported once, by
        the core, and never holds)."""
        found = ["lifecycle", "lifecycle_since"] if self.trigger.stage else []
        found.extend(f"{c.label}?" for c in self.conditions() if c.label is not None)
        return tuple(found)

    def describe_repeat(self) -> str:
        if self.every is not None:
            return f"every {self.every}"
        return "once" if self.repeat == "once" else "each trigger"


# --- reading a file ---------------------------------------------------------------------


class _Reader:
    """Typed, located access to one playbook file's values; problems are collected."""

    def __init__(self, path: str) -> None:
        self.path = path
        self.problems: list[Diagnostic] = []
        #: Interaction types as written, and where (checked against the known ones).
        self.types: list[tuple[str, Location]] = []
        #: Each step's template: (step, the template as written or None, its channel,
        #: where), checked against the template folders.
        self.templates: list[tuple[str, str | None, str | None, Location]] = []

    def at(self, mark: tuple[int, int] | None) -> Location:
        return Location(self.path, *(mark or (1, 1)))

    def place(self, mapping: Any, key: str) -> Location:
        marks = getattr(mapping, "marks", {})
        return self.at(marks.get(key) or getattr(mapping, "start", None))

    def error(self, where: Location, message: str) -> None:
        self.problems.append(Diagnostic.error(message, where, source=NAME))

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
                           f"{crmkit.did_you_mean(str(key), allowed)}; "
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
        return found


def _match(r: _Reader, mapping: Mapping[str, Any]) -> Match | None:
    types, places = r.texts(mapping, "type")
    texts, _ = r.texts(mapping, "text")
    direction = r.text(mapping, "direction", "")
    if direction is not None and direction not in DIRECTIONS:
        r.error(r.place(mapping, "direction"),
                f"'direction' must be inbound or outbound, not {direction!r}"
                f"{crmkit.did_you_mean(direction, DIRECTIONS)}")
        direction = None
    r.types.extend(zip(types, places, strict=True))
    if not types and not texts and direction is None:
        return None
    return Match(types, texts, direction)


# A segment's label is named ``_playbook_<name>_Trigger``, ``..._Stop<n>`` or
# ``..._Step_<step>_Stop<n>``: a playbook's name has no capitals, so no two playbooks'
# labels can have the same name.


def _segment(r: _Reader, mapping: Mapping[str, Any], label: str
             ) -> tuple[str | None, str | None, Location | None]:
    text = r.text(mapping, "segment", "")
    if text is None:
        return None, None, None
    return text, label, r.place(mapping, "segment")


def _condition(r: _Reader, value: Any, where: Location, what: str, label: str
               ) -> Condition | None:
    mapping = r.mapping(value, where, what, STOP_KEYS)
    if mapping is None:
        return None
    match = _match(r, mapping)
    tag = r.text(mapping, "tag", what)
    segment, label_name, place = _segment(r, mapping, label)
    kinds = sum(x is not None for x in (match, tag, segment))
    if kinds != 1:
        r.error(where, f"{what} needs one of: an interaction (type, text, direction), "
                       "a 'tag' or a 'segment'" + (", not several" if kinds else ""))
        return None
    return Condition(where, match, tag, segment, label_name, place)


def _conditions(r: _Reader, mapping: Mapping[str, Any], key: str, what: str, prefix: str
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
        condition = _condition(r, item, where, f"{what} {n + 1}", f"{prefix}{n + 1}")
        if condition is None:
            return None
        found.append(condition)
    return tuple(found)


def _trigger(r: _Reader, data: Mapping[str, Any], name: str) -> Trigger | None:
    if data.get("trigger") is None:
        r.error(r.at(getattr(data, "start", None)),
                "a playbook needs a 'trigger': an interaction (type, text) or a "
                "lifecycle stage")
        return None
    where = r.place(data, "trigger")
    mapping = r.mapping(data["trigger"], where, "the trigger", TRIGGER_KEYS)
    if mapping is None:
        return None
    match = _match(r, mapping)
    stage = r.text(mapping, "stage", "the trigger")
    tag = r.text(mapping, "tag", "the trigger")
    segment, label, place = _segment(r, mapping, f"_playbook_{name}_Trigger")
    nth = mapping.get("nth", 1)
    if isinstance(nth, bool) or not isinstance(nth, int) or nth < 1:
        r.error(r.place(mapping, "nth"), f"'nth' must be a whole number of at least 1, "
                                         f"not {nth!r}")
        return None
    if stage is not None and stage not in STAGES:
        why = (" (a lead has no day it began: no purchase yet)" if stage == "lead" else
               crmkit.did_you_mean(stage, STAGES))
        r.error(r.place(mapping, "stage"),
                f"'stage' must be one of {', '.join(STAGES)}, not {stage!r}{why}")
        return None
    if (match is None) == (stage is None):
        r.error(where, "the trigger needs either an interaction (type, text, direction) or "
                       "a 'stage', not both" if match is not None else
                "the trigger needs an event with a day: an interaction (type, text, "
                "direction) or entering a lifecycle 'stage' (a tag or a segment alone has no "
                "day: crmkit keeps no history of when they were added)")
        return None
    if stage is not None and "nth" in mapping:
        r.error(r.place(mapping, "nth"), "'nth' counts interactions; a stage trigger has none")
        return None
    return Trigger(where, match, nth, stage, tag, segment, label, place)


def _steps(r: _Reader, data: Mapping[str, Any], name: str) -> tuple[Step, ...] | None:
    value = data.get("steps")
    if not isinstance(value, list) or not value:
        r.error(r.place(data, "steps") if "steps" in data else
                r.at(getattr(data, "start", None)),
                "a playbook needs 'steps': a list of {name, after, title}")
        return None
    marks = getattr(value, "marks", [])
    steps: list[Step] = []
    seen: dict[str, Location] = {}
    ok = True
    for n, item in enumerate(value):
        where = r.at(marks[n] if n < len(marks) else None)
        what = f"step {n + 1}"
        mapping = r.mapping(item, where, what, STEP_KEYS)
        if mapping is None:
            ok = False
            continue
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
        after = r.offset(mapping, "after", what)
        title = r.text(mapping, "title", what, required=True)
        template = r.text(mapping, "template", what)
        if template is not None and (template.startswith(("/", "\\")) or ".." in
                                     template.replace("\\", "/").split("/")):
            r.error(r.place(mapping, "template"),
                    f"'template' must name a template below templates/, not {template!r}")
            template = None
            ok = False
        channel = r.text(mapping, "channel", what)
        if step_name is not None:
            r.templates.append((step_name, template, channel, where))
        priority = r.priority(mapping)
        stop = _conditions(r, mapping, "stop", f"stop condition of step {n + 1}",
                           f"_playbook_{name}_Step_{step_name}_Stop")
        if step_name is None or after is None or title is None or stop is None or (
                "priority" in mapping and priority is None):
            ok = False
            continue
        seen[step_name] = r.place(mapping, "name")
        steps.append(Step(step_name, after, title, where, channel, priority, template, stop))
    return tuple(steps) if ok else None


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
    return "each", span


@dataclass(frozen=True, slots=True)
class Parsed:
    """What one file says: the playbook (``None``: too broken to use), its problems, and
    what it refers to elsewhere (checked by :func:`check_against`)."""

    name: str
    playbook: Playbook | None
    problems: list[Diagnostic]
    types: tuple[tuple[str, Location], ...] = ()
    templates: tuple[tuple[str, str | None, str | None, Location], ...] = ()
    channel: str | None = None


def parse(path: str, data: Any) -> Parsed:
    """One playbook file: the playbook, if it can be used, and every problem in it."""
    r = _Reader(path)
    name = Path(path).name.rsplit(".", 1)[0]
    playbook = _playbook(r, name, path, data)
    channel = data.get("channel") if isinstance(data, Mapping) else None
    return Parsed(name, playbook, r.problems, tuple(r.types), tuple(r.templates),
                  channel if isinstance(channel, str) else None)


def _playbook(r: _Reader, name: str, path: str, data: Any) -> Playbook | None:
    if not PLAYBOOK_NAME.match(name):
        r.error(r.at(None), f"playbook name {name!r} (the file name) must be lowercase "
                            "letters, digits, '-' and '_', e.g. 'heating-installation': it "
                            "becomes the reminders' kind")
        return None
    if data is None:
        r.error(r.at(None), "empty playbook: it needs a 'trigger' and 'steps'")
        return None
    mapping = r.mapping(data, r.at(getattr(data, "start", None)), "a playbook", TOP_KEYS)
    if mapping is None:
        return None
    before = len(r.problems)
    trigger = _trigger(r, mapping, name)
    steps = _steps(r, mapping, name)
    stop = _conditions(r, mapping, "stop", "stop condition", f"_playbook_{name}_Stop")
    repeat = _repeat(r, mapping)
    expiry = r.offset(mapping, "expires_after", "") if "expires_after" in mapping else \
        parse_offset(DEFAULT_EXPIRY)
    priority = r.priority(mapping)
    channel = r.text(mapping, "channel", "a playbook")
    description = r.text(mapping, "description", "a playbook") or ""
    if trigger is None or steps is None or stop is None or repeat is None or expiry is None \
            or any(p.is_error for p in r.problems[before:]):
        return None
    repeat_mode, every = repeat
    if every is not None:
        start = dt.date(2001, 1, 31)
        for step in steps:
            if step.after.add_to(start) >= every.add_to(start):
                r.error(step.where, f"step {step.name!r} comes {step.after} after the start, "
                                    f"not before the run starts again (every {every})")
        if len(r.problems) > before:
            return None
    return Playbook(name, path, trigger, steps, stop, description, repeat_mode, every, expiry,
                    priority if priority is not None else 3, channel)


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
            parsed = Parsed(parsed.name, None, parsed.problems, parsed.types, parsed.templates,
                            parsed.channel)
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
                f"unknown interaction type {kind!r}{crmkit.did_you_mean(kind, known)} "
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
