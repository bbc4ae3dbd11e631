"""When each deal entered each stage: from git, else from interactions, else the file.

``git log`` of ``deals/`` is read in one pass (one process for every deal, not one
per deal): each commit's author date and the ``stage:`` lines its diff adds.  A
workspace that is no git repository, or a deal no commit knows, falls back to the
interactions of the deal's customer that name the deal (``fields: {deal: ID, stage:
STAGE}``), and a deal nothing names to its file's modification day.
"""

from __future__ import annotations

import datetime as dt
import os
import re
import subprocess
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import crmkit

#: The stage a deal file without ``stage`` has (the core's default).
DEFAULT_STAGE = "open"
CLOSED = ("won", "lost")
_DATE_MARK = "\x01"
_STAGE_LINE = re.compile(r"""^stage:\s*(['"]?)([^'"#\s]+)\1\s*(?:#.*)?$""")


@dataclass
class Timeline:
    """A deal's stages over time, oldest first, and where that was read from."""

    changes: list[tuple[dt.date, str]] = field(default_factory=list)
    basis: str = "none"  # "git" | "interactions" | "file" | "none"

    @property
    def opened(self) -> dt.date | None:
        """The first day the deal is known (``None`` when only the file's day is)."""
        return self.changes[0][0] if self.changes and self.basis != "file" else None

    def entered(self, stage: str) -> dt.date | None:
        """The last day the deal entered ``stage`` (``None`` if it never did)."""
        found = None
        for day, name in self.changes:
            if name == stage:
                found = day
        return found

    def stage_on(self, day: dt.date) -> str | None:
        """The stage the deal was in on ``day`` (``None`` before its first known day)."""
        found = None
        for when, name in self.changes:
            if when > day:
                break
            found = name
        return found

    def last_change(self) -> dt.date | None:
        return self.changes[-1][0] if self.changes else None

    def add(self, day: dt.date, stage: str) -> None:
        if not self.changes or self.changes[-1][1] != stage:
            self.changes.append((day, stage))


def parse_git_log(text: str, today: dt.date) -> dict[str, Timeline]:
    """The stage changes of every ``deals/<id>.yaml`` in the output of
    ``git log --reverse -p -U0 --format=%x01%aI -- deals/`` (paths relative to the
    workspace), by deal id; commits dated after ``today`` do not count."""
    timelines: dict[str, Timeline] = {}
    day: dt.date | None = None
    path: str | None = None
    created = deleted = False
    added: str | None = None
    removed = False

    def finish() -> None:
        if day is None or path is None or day > today:
            return
        deal_id = _deal_id(path)
        if deal_id is None:
            return
        if deleted:
            timelines.pop(deal_id, None)
            return
        timeline = timelines.setdefault(deal_id, Timeline(basis="git"))
        if created:  # a new file (or one added again): its history starts here
            timeline.changes.clear()
            timeline.add(day, added or DEFAULT_STAGE)
        elif added is not None:
            timeline.add(day, added)
        elif removed:  # the stage line went: the default stage
            timeline.add(day, DEFAULT_STAGE)

    for line in text.splitlines():
        if line.startswith(_DATE_MARK):
            finish()
            path, created, deleted, added, removed = None, False, False, None, False
            try:
                day = dt.date.fromisoformat(line[1:].strip()[:10])
            except ValueError:
                day = None
        elif line.startswith("diff --git "):
            finish()
            path, created, deleted, added, removed = None, False, False, None, False
            path = line.rsplit(" b/", 1)[-1]
        elif line.startswith("new file mode"):
            created = True
        elif line.startswith("deleted file mode"):
            deleted = True
        elif line.startswith("+") and not line.startswith("+++"):
            m = _STAGE_LINE.match(line[1:].rstrip("\r"))
            if m:
                added = m.group(2)
        elif line.startswith("-") and not line.startswith("---") \
                and _STAGE_LINE.match(line[1:].rstrip("\r")):
            removed = True
    finish()
    return timelines


def _deal_id(path: str) -> str | None:
    parts = path.split("/")
    if len(parts) != 2 or parts[0] != "deals" or not parts[1].endswith((".yaml", ".yml")):
        return None
    return parts[1].rsplit(".", 1)[0]


#: What makes git use another repository than the one the workspace's folder is in.
_REPOSITORY_VARIABLES = frozenset({
    "GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_COMMON_DIR", "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES", "GIT_NAMESPACE"})


def git_log(root: Path) -> str | None:
    """The one ``git log`` of ``deals/``, or ``None`` where git cannot say (no git, no
    repository, no commit)."""
    # the repository the workspace is in, found from its folder: not one that GIT_DIR
    # and friends name (set in a git hook, or by hand for another repository)
    env = {k: v for k, v in os.environ.items() if k not in _REPOSITORY_VARIABLES}
    env.update(GIT_CONFIG_NOSYSTEM="1", LC_ALL="C")
    try:  # one process: outside a repository, or before its first commit, git log fails
        log = subprocess.run(
            ["git", "-C", str(root), "log", "--reverse", "--no-renames", "--relative",
             "--no-color", "--no-ext-diff", "--no-textconv", "-p", "-U0",
             f"--format={_DATE_MARK}%aI", "--", "deals/"],
            capture_output=True, text=True, encoding="utf-8", errors="replace", env=env,
            timeout=120)
    except (OSError, subprocess.SubprocessError):
        return None
    return log.stdout if log.returncode == 0 else None


def from_interactions(interactions: Iterable[crmkit.Interaction], today: dt.date
                      ) -> dict[str, list[tuple[dt.date, str | None]]]:
    """One pass over ``interactions``: those that name a deal (``fields.deal``), with
    the stage they record (``fields.stage``), by deal id, oldest first."""
    named: dict[str, list[tuple[dt.date, str | None]]] = {}
    for i in interactions:
        fields = i.fields
        if not fields or i.date > today:
            continue
        deal = fields.get("deal")
        if isinstance(deal, str) and deal:
            stage = fields.get("stage")
            named.setdefault(deal, []).append((i.date, stage if isinstance(stage, str)
                                               else None))
    for events in named.values():
        events.sort(key=lambda e: e[0])
    return named


def timelines(root: Path, deals: Mapping[str, crmkit.Deal],
              history: Callable[[str], Iterable[crmkit.Interaction]], today: dt.date,
              use_git: bool = True) -> dict[str, Timeline]:
    """Every deal's timeline: git where it knows the deal, else the interactions of
    its customer (``history(customer_id)``) that name it, else its file's modification
    day (if not after ``today``).  Only the histories of deals git does not know are
    read, each customer's once."""
    from_git = {}
    if use_git:
        text = git_log(root)
        if text is not None:
            from_git = parse_git_log(text, today)
    missing = {d.customer for i, d in deals.items()
               if i not in from_git or not from_git[i].changes}
    named = from_interactions((i for cid in sorted(missing) for i in history(cid)), today)
    found: dict[str, Timeline] = {}
    for deal_id, deal in deals.items():
        timeline = from_git.get(deal_id)
        if timeline is None or not timeline.changes:
            timeline = _from_named(named.get(deal_id, ()), deal)
        if timeline is None:
            timeline = _from_file(root, deal, today)
        elif timeline.changes[-1][1] != deal.stage:
            # changed since the last commit (or nothing recorded the change): the file's day
            timeline.add(min(_mtime_day(root, deal) or today, today), deal.stage)
        found[deal_id] = timeline
    return found


def _from_named(events: Iterable[tuple[dt.date, str | None]], deal: crmkit.Deal
                ) -> Timeline | None:
    events = list(events)
    if not events:
        return None
    timeline = Timeline(basis="interactions")
    first_stage = next((s for _, s in events if s), None)
    timeline.add(events[0][0], events[0][1] or (first_stage if first_stage else deal.stage
                                                if deal.stage not in CLOSED else "open"))
    for day, stage in events[1:]:
        if stage:
            timeline.add(day, stage)
    if timeline.changes[-1][1] != deal.stage and deal.stage in CLOSED:
        timeline.add(events[-1][0], deal.stage)  # closed: on the last day that names it
    return timeline


def _mtime_day(root: Path, deal: crmkit.Deal) -> dt.date | None:
    try:
        return dt.date.fromtimestamp((root / deal.location.path).stat().st_mtime)
    except OSError:
        return None


def _from_file(root: Path, deal: crmkit.Deal, today: dt.date) -> Timeline:
    day = _mtime_day(root, deal)
    if day is None or day > today:
        return Timeline()
    return Timeline([(day, deal.stage)], basis="file")
