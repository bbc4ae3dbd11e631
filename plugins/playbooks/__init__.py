"""Playbooks: planned sequences of touch points, written as files (``playbooks/*.yaml``).

A playbook says what starts it (an interaction, or entering a lifecycle stage),
which steps follow at which offsets (each a reminder: title, channel, email
template, priority), what stops it and whether it repeats.  Each playbook is
registered as a :class:`crmkit.ReminderKind` of its own (named after its file), so
its steps are reminders like any other: ids (``playbook/customer/day/step``),
``crmkit done``/``snooze``, drafts, the frequency cap, the calendar, ``show``,
``reminders.<playbook>`` in ``crmkit.yaml``.  ``crmkit check`` reports every problem
in a playbook at its place; ``crmkit playbooks`` lists them with who is in which
step.  See docs/playbooks.md.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit import Diagnostic, ReminderKind

from .model import Playbook, check_against, parse_all
from .runs import dues, left_out


def kind_of(playbook: Playbook) -> ReminderKind:
    """The playbook as a reminder kind: its rule yields the steps to do."""
    return ReminderKind(
        playbook.name, partial(dues, playbook),
        playbook.description or f"playbook: {playbook.trigger.describe()}",
        priority=playbook.priority, channel=playbook.channel, reads=playbook.reads(),
        where=playbook.where, title=playbook.title or playbook.description)


@crmkit.hookimpl
def crmkit_register(register: Any, settings: Any) -> None:
    if settings is None:  # disabled: nothing to register
        return
    taken: set[str] = set()
    for parsed in parse_all(settings.playbooks):  # problems: see crmkit_validate
        # the segments of a playbook that cannot be used too: the core reports their
        # unknown names along with the playbook's other errors
        for label in parsed.labels:
            if label.name not in taken:
                taken.add(label.name)
                register(label)
        if parsed.playbook is not None:
            register(kind_of(parsed.playbook))


@crmkit.hookimpl
def crmkit_validate(workspace: crmkit.Workspace, today: dt.date,
                    interaction_types: Iterable[str],
                    template_dirs: Iterable[Path]) -> Iterator[Diagnostic]:
    settings = workspace.settings
    types, folders = tuple(interaction_types), tuple(template_dirs)
    for parsed in parse_all(settings.playbooks):
        yield from parsed.problems
        yield from check_against(parsed, types, folders, settings.locale)
        if parsed.playbook is not None:
            yield from left_out(parsed.playbook, workspace, today)


@crmkit.hookimpl
def crmkit_register_commands(cli: click.Group) -> None:
    from .cli import playbooks_command

    cli.add_command(playbooks_command)
