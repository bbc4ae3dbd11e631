"""A playbook's run for one customer: when it started, what stopped it, what is due.

Everything here is a plain function of one customer as of one day (a
:class:`crmkit.CustomerView`), so the core keeps the results per customer like
any rule's.  The rules (docs/playbooks.md):

* **start**: the latest interaction that matches the trigger (from the ``nth``
  on; with ``repeat: once`` the first), or the day the customer entered the
  trigger's lifecycle stage (``lifecycle_since``) while they are in it; and only
  while the customer has the trigger's tag and is in its segment.  A trigger that
  fires again starts a new run and ends the earlier one.
* **repeat: every SPAN**: the run starts again every SPAN after the trigger,
  until the next trigger; the run after the current one is planned already.
* **stop**: an interaction after the trigger that matches a stop condition ends
  the run for good (its repetitions too); a stop tag or segment the customer has
  today does so while it holds.  A step's own stop conditions settle that step
  (interactions from the run's start on).
* **steps**: each step of the run is due its ``after`` after the start, open
  until ``expires_after`` after that, and listed as expired for 30 more days.
  A step is a reminder like any other: settled by ``resolves``, ``crmkit done``,
  ``crmkit snooze``, and ``crmkit done --never`` ends the playbook for the customer.
* records that settle reminders (``resolves``: ``drafts --send``, ``done``,
  ``snooze``) never start, restart or stop a run (:class:`~.model.Match`).
* a step whose due day or expiry would be after :data:`LAST_DAY` (a trigger near
  the year 9999) is left out, never a crash; ``crmkit check`` reports it once, at
  the playbook (:func:`left_out`).
"""

from __future__ import annotations

import bisect
import datetime as dt
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import crmkit
from crmkit import CustomerView, Diagnostic, Due, Interaction, Workspace

from .model import NAME, Condition, Offset, Playbook, Step

#: How long an expired step stays listed (as expired) with ``reminders --all``.
LISTED_AFTER_EXPIRY = dt.timedelta(days=30)
#: The last day a step may expire: it stays listed 30 days more, and the calendar ends
#: an event a day after it begins; Python's dates end on 9999-12-31.
LAST_DAY = dt.date.max - LISTED_AFTER_EXPIRY - dt.timedelta(days=1)


def later(span: Offset, day: dt.date, times: int = 1) -> dt.date | None:
    """``day`` plus ``span`` (``times`` over), or ``None`` if that is after
    :data:`LAST_DAY`."""
    try:
        found = span.add_to(day, times)
    except (OverflowError, ValueError):  # past 9999-12-31
        return None
    return found if found <= LAST_DAY else None


def step_days(playbook: Playbook, step: Step, start: dt.date
              ) -> tuple[dt.date, dt.date] | None:
    """The step's due day and expiry in a run that starts on ``start`` (``None``:
    after :data:`LAST_DAY`, so the step is left out)."""
    due = later(step.after, start)
    expires = later(playbook.expires_after, due) if due is not None else None
    return None if due is None or expires is None else (due, expires)


def run_starts(playbook: Playbook, anchor: dt.date, today: dt.date
               ) -> list[tuple[int, dt.date | None]]:
    """The runs computed for a trigger on ``anchor``: its own, or with ``repeat: every``
    the current repetition and the next; each as (repetition, its start or ``None``
    if after :data:`LAST_DAY`)."""
    every = playbook.every
    if every is None:
        return [(0, anchor)]
    current = every.times_until(anchor, today)
    return [(n, later(every, anchor, n)) for n in (current, current + 1)]


@dataclass(frozen=True, slots=True)
class StepDue:
    """One step of a run: when it is due and until when, and what settled it already
    (one of its own stop conditions), if anything."""

    step: Step
    number: int
    due: dt.date
    expires: dt.date
    skipped: str | None = None


@dataclass(frozen=True, slots=True)
class Run:
    playbook: Playbook
    start: dt.date
    #: The interaction that started it (``None``: entering a lifecycle stage).
    trigger: Interaction | None
    #: 0 for the trigger's own run, 1, 2, ... for its repetitions.
    repetition: int
    steps: tuple[StepDue, ...]
    #: What ended it, if a stop condition holds, and on which day (``None``: today).
    stopped: str | None = None
    stopped_on: dt.date | None = None
    #: The interaction or the condition that ended it (``crmkit playbooks`` says it in
    #: the terminal's language; ``stopped`` is the English text, as JSON has it).
    stopped_by: Interaction | Condition | None = None

    def step_id(self, customer: str, step: StepDue) -> str:
        """The id of the step's reminder (``playbook/customer/due/step``)."""
        return f"{self.playbook.name}/{customer}/{step.due.isoformat()}/{step.step.name}"

    @property
    def listed_until(self) -> dt.date:
        """The last day any of its steps is listed (open, or expired with ``--all``)."""
        return max(s.expires for s in self.steps) + LISTED_AFTER_EXPIRY

    def why(self, locale: str | None = None) -> str:
        """What started it, e.g. ``purchase on Sep 28, 2026`` or ``new since Oct 13, 2026``,
        in ``locale``'s words (``Kauf am 28.09.2026``)."""
        playbook = self.playbook
        t = crmkit.translations(locale)
        if self.trigger is not None:
            text = t.gettext("%(type)s on %(day)s") % {
                "type": t.word(self.trigger.type),
                "day": t.date(self.trigger.date, "medium")}
        else:
            text = t.gettext("%(stage)s since %(day)s") % {
                "stage": t.word(playbook.trigger.stage),
                "day": t.date(self.start, "medium")}
        if playbook.every is not None and self.repetition:
            text += t.gettext(", repeated every %(interval)s (run %(num)d)") % {
                "interval": t.duration(playbook.every.count, playbook.every.unit),
                "num": self.repetition + 1}
        return text


def _date(interaction: Interaction) -> dt.date:
    return interaction.date


def _holds(c: CustomerView, condition: Condition) -> bool:
    """Whether a tag or segment condition holds for the customer today."""
    if condition.tag is not None:
        return condition.tag in c.customer.tags
    if condition.label is not None:
        return bool(c.labels[condition.label])
    return False


def _stopped(c: CustomerView, conditions: Iterable[Condition],
             events: Iterable[Interaction]
             ) -> tuple[str | None, dt.date | None, Interaction | Condition | None]:
    """The first of ``events`` that matches one of ``conditions``, else the first tag or
    segment condition that holds: what it was, its day and the event or condition."""
    conditions = tuple(conditions)
    if not conditions:
        return None, None, None
    matches = [c.match for c in conditions if c.match is not None]
    if matches:
        for event in events:
            if any(match(event) for match in matches):
                what = f" ({event.summary})" if event.summary else ""
                return f"{event.type} on {event.date.isoformat()}{what}", event.date, event
    for condition in conditions:
        if condition.match is None and _holds(c, condition):
            return condition.describe(), None, condition
    return None, None, None


def runs(playbook: Playbook, c: CustomerView) -> list[Run]:
    """The customer's current run of ``playbook`` (none if it was not triggered, or not
    for this customer), and with ``repeat: every``, the next one."""
    trigger = playbook.trigger
    if trigger.tag is not None and trigger.tag not in c.customer.tags:
        return []
    if trigger.label is not None and not c.labels[trigger.label]:
        return []
    history = c.history
    source: Interaction | None = None
    if trigger.stage is not None:
        since = c.labels["lifecycle_since"]
        if c.labels["lifecycle"] != trigger.stage or not since:
            return []
        anchor = dt.date.fromisoformat(since)
        first = bisect.bisect_left(history, anchor, key=_date)
    else:
        match = trigger.match
        assert match is not None
        found = [n for n, i in enumerate(history) if match(i)][trigger.nth - 1:]
        if not found:
            return []
        n = found[0] if playbook.repeat == "once" else found[-1]
        source, first = history[n], n + 1
        anchor = source.date
    events = history[first:]
    stopped, stopped_on, stopped_by = _stopped(c, playbook.stop, events)
    found_runs = []
    for repetition, start in run_starts(playbook, anchor, c.today):
        if start is None:  # after LAST_DAY: reported by crmkit check (left_out)
            continue
        since = events[bisect.bisect_left(events, start, key=_date):]
        steps = []
        for number, step in enumerate(playbook.steps, start=1):
            days = step_days(playbook, step, start)
            if days is None:  # after LAST_DAY: likewise
                continue
            skipped = _stopped(c, step.stop, since)[0]
            steps.append(StepDue(step, number, *days, skipped))
        if not steps:  # every step left out
            continue
        found_runs.append(Run(playbook, start, source, repetition, tuple(steps), stopped,
                              stopped_on, stopped_by))
    return found_runs


def dues(playbook: Playbook, c: CustomerView) -> Iterator[Due]:
    """The playbook's rule: the steps of the customer's runs that are still to do."""
    today = c.today
    count = len(playbook.steps)
    t = crmkit.translations(c.settings.locale)  # the business reads reminders
    for run in runs(playbook, c):
        if run.stopped is not None:
            return
        for s in run.steps:
            if s.skipped is not None or today > s.expires + LISTED_AFTER_EXPIRY:
                continue
            step = s.step
            yield Due(
                s.due, step.title,
                t.gettext("%(playbook)s step %(num)d/%(count)d: %(why)s") % {
                    "playbook": playbook.name, "num": s.number, "count": count,
                    "why": run.why(c.settings.locale)}, run.trigger,
                details={"playbook": playbook.name, "step": step.name, "number": s.number,
                         "steps": count, "started": run.start},
                priority=step.priority, occasion=step.name, expires=s.expires,
                channel=step.channel, template=playbook.template(step))


def left_out(playbook: Playbook, workspace: Workspace, today: dt.date
             ) -> Iterator[Diagnostic]:
    """One error, at the playbook, if the latest run it has leaves out steps whose due
    day or expiry would be after :data:`LAST_DAY` (:func:`runs` skips them): the run of
    the latest trigger up to today, or for a stage trigger a run that starts today."""
    def missing(anchor: dt.date) -> list[Step]:
        starts = [start for _, start in run_starts(playbook, anchor, today)]
        return [step for step in playbook.steps
                if any(s is None or step_days(playbook, step, s) is None for s in starts)]

    if not missing(today):  # no earlier start misses anything either: nothing to look for
        return
    trigger = playbook.trigger
    if trigger.match is None:
        anchor, what = today, f"runs that start as late as today ({today.isoformat()}, " \
                              f"entering stage {trigger.stage})"
    else:
        source = _latest_trigger(playbook, workspace, today)
        if source is None:
            return
        anchor, what = source.date, (f"the run started by the {source.type} of "
                                     f"{source.date.isoformat()} ({source.location})")
        if playbook.every is not None:
            what = f"the repetitions (every {playbook.every}) of {what}"
    steps = missing(anchor)
    if not steps:
        return
    names = ", ".join(repr(s.name) for s in steps)
    yield Diagnostic.error(
        f"step{'s' if len(steps) > 1 else ''} {names} {'are' if len(steps) > 1 else 'is'} "
        f"left out of {what}: due or expiring after {LAST_DAY.isoformat()}, the last day "
        "crmkit can plan for", steps[0].where, source=NAME)


def _latest_trigger(playbook: Playbook, workspace: Workspace, today: dt.date
                    ) -> Interaction | None:
    """The interaction that started the latest run of anybody's, as :func:`runs` picks
    it (whatever the trigger's tag or segment)."""
    match, nth = playbook.trigger.match, playbook.trigger.nth
    assert match is not None
    latest: Interaction | None = None
    for cid in workspace.customers:
        history = workspace.history(cid)
        history = history[:bisect.bisect_right(history, today, key=_date)]
        found = [i for i in history if match(i)][nth - 1:]
        if found:
            source = found[0] if playbook.repeat == "once" else found[-1]
            if latest is None or source.date > latest.date:
                latest = source
    return latest
