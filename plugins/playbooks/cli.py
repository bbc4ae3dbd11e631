"""``crmkit playbooks``: the playbooks, and who is in which step."""

from __future__ import annotations

import datetime as dt
from typing import Any

import click

import crmkit
from crmkit import Reminder

from .model import NAME, Playbook, playbooks_of
from .runs import Run, runs

FORMATS = ("table", "json")


def N_(message: str) -> str:
    """Marks a message for ``pybabel extract``, translated where it is shown."""
    return message


#: A run's states (the ``state`` of ``--format json``) as the summary line says them.
STATES = {"overdue": N_("overdue"), "open": N_("open"), "snoozed": N_("snoozed"),
          "held": N_("held"), "expired": N_("expired"), "stopped": N_("stopped"),
          "opted_out": N_("opted out"), "finished": N_("finished")}


def _(message: str) -> str:
    """What the command says itself, in the terminal's language (LANG)."""
    return crmkit.translations(terminal=True).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return crmkit.translations(terminal=True).ngettext(singular, plural, n)


def _opted_out(view: crmkit.CustomerView, playbook: Playbook) -> crmkit.Interaction | None:
    """The ``crmkit done --never`` that ended the playbook for the customer, if any."""
    prefix = f"{playbook.name}/"
    for interaction in view.history:
        if interaction.type == "done" and interaction.never and any(
                rid.startswith(prefix) for rid in interaction.resolves):
            return interaction
    return None


def _said(t: Any) -> Any:
    """The language of the table: English (the data's words, as JSON has them) for
    ``t`` ``None``."""
    return t if t is not None else crmkit.translations("en")


def _state(reminder: Reminder, today: dt.date, t: Any = None) -> tuple[str, str]:
    """A listed step's state: a word for JSON and the text (English for JSON; with
    ``t``, in its language for the table)."""
    say = _said(t)
    if reminder.snoozed_until is not None:
        return "snoozed", say.gettext("snoozed until %(day)s") % {
            "day": reminder.snoozed_until.isoformat()}
    if reminder.suppressed and reminder.expires is not None and reminder.expires < today:
        return "expired", say.gettext("expired on %(day)s, not done") % {
            "day": reminder.expires.isoformat()}
    if reminder.suppressed:
        return "held", say.gettext("held back by the frequency cap")
    if reminder.due < today:
        return "overdue", say.gettext("overdue")
    return "open", say.gettext("due today") if reminder.due == today else say.gettext(
        "upcoming")


def _stop(run: Run, t: Any) -> str:
    """What ended the run: English as :class:`Run` has it, else in ``t``'s language."""
    cause = run.stopped_by
    if t is None or cause is None:
        return run.stopped or ""
    if isinstance(cause, crmkit.Interaction):
        text = t.gettext("%(type)s on %(day)s") % {"type": t.word(cause.type),
                                                   "day": cause.date.isoformat()}
        return text + (f" ({cause.summary})" if cause.summary else "")
    return cause.describe(t)


def run_row(app: crmkit.App, playbook: Playbook, view: crmkit.CustomerView,
            listed: dict[str, Reminder], t: Any = None) -> dict[str, Any] | None:
    """Where the customer stands in ``playbook``, or ``None`` if they are in no run of it
    (or its last step expired more than 30 days ago).  The ``status`` is English, as JSON
    has it; with ``t``, in its language (the table)."""
    say = _said(t)
    today = app.today
    found = runs(playbook, view)
    if not found or today > found[0].listed_until:
        return None
    run: Run = found[0]
    row: dict[str, Any] = {
        "customer": view.id, "started": run.start.isoformat(),
        "trigger": str(run.trigger.location) if run.trigger is not None else None,
        "step": None, "number": None, "due": None, "id": None, "state": "finished",
        "status": say.gettext("finished: every step done or settled")}
    if run.stopped is not None:
        row.update(state="stopped", status=say.gettext("stopped: %(what)s") % {
            "what": _stop(run, t)})
        return row
    never = _opted_out(view, playbook)
    if never is not None:
        row.update(state="opted_out", status=say.gettext(
            "opted out on %(day)s (done --never, %(where)s)") % {
            "day": never.date.isoformat(), "where": never.location})
        return row
    steps = []  # the current run's, then with `repeat: every` the next one's
    for candidate in found:
        for step in sorted(candidate.steps, key=lambda s: (s.due, s.number)):
            rid = candidate.step_id(view.id, step)
            if rid in listed:
                steps.append((candidate, step, rid, *_state(listed[rid], today, t)))
    if steps:  # the first step still to do; only if none is, the first expired one
        candidate, step, rid, state, status = min(
            steps, key=lambda found: found[3] == "expired")
        row.update(started=candidate.start.isoformat(), step=step.step.name,
                   number=step.number, due=step.due.isoformat(), id=rid, state=state,
                   status=status)
    return row


@click.command("playbooks")
@click.argument("names", nargs=-1, metavar="[PLAYBOOK]...")
@click.option("--customer", "customers", multiple=True, metavar="ID",
              help="Only this customer's runs (repeatable).")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="table",
              show_default=True)
@crmkit.pass_app(pure=True)
def playbooks_command(app: crmkit.App, names: tuple[str, ...], customers: tuple[str, ...],
                      fmt: str) -> None:
    """The playbooks (playbooks/*.yaml) and who is in which step.

    First each playbook: what starts it, its steps and whether it repeats. Then
    every customer in a run: when it started, the step they are at (the first one
    not done yet), when it is due and its state (overdue, upcoming, snoozed, held
    back, expired), or why the run ended (stopped, finished, opted out). A run is
    listed until 30 days after its last step expired. The steps themselves are
    reminders: `crmkit reminders --kind PLAYBOOK`, `crmkit done ID`.
    """
    playbooks = playbooks_of(app.workspace.settings.playbooks)
    known = {p.name: p for p in playbooks}
    for name in names:
        if name not in known:
            raise crmkit.CrmkitError(
                _("no playbook %(name)s") % {"name": repr(name)}
                + crmkit.did_you_mean(name, known) + "; "
                + (_("the playbooks are: %(names)s") % {"names": ", ".join(known)} if known
                   else _("none in playbooks/"))
                + " " + _("('crmkit check' says why a playbook file is not loaded)"))
    for cid in customers:
        app.require_customer(cid)
    chosen = [known[n] for n in dict.fromkeys(names)] if names else playbooks
    kinds = {k.name: k for k in app.kinds() if app.plugin_of(k) == NAME}
    enabled = {k.name for k in app.enabled_kinds()}
    listed: dict[str, dict[str, Reminder]] = {}
    for reminder in app.reminders():
        listed.setdefault(reminder.kind, {})[reminder.id] = reminder
    views = ([app.customer(cid) for cid in dict.fromkeys(customers)] if customers
             else app.customers())
    terminal = crmkit.translations(terminal=True)
    # the table in the terminal's language; JSON and an English terminal: the data's words
    t = None if fmt == "json" or terminal.language == "en" else terminal
    out = []
    said: dict[str, dict[str, str]] = {}
    for playbook in chosen:
        state = ("enabled" if playbook.name in enabled else
                 "disabled" if playbook.name in kinds else "not loaded")
        rows = []
        if state == "enabled":
            for view in views:
                row = run_row(app, playbook, view, listed.get(playbook.name, {}), t)
                if row is not None:
                    rows.append(row)
        out.append({
            "name": playbook.name, "path": playbook.path, "description": playbook.description,
            "state": state, "trigger": playbook.trigger.describe(),
            "repeat": playbook.describe_repeat(),
            "steps": [{"name": s.name, "after": str(s.after), "title": s.title,
                       "channel": s.channel or playbook.channel,
                       "priority": s.priority or playbook.priority,
                       "template": playbook.template(s)} for s in playbook.steps],
            "runs": rows})
        said[playbook.name] = {
            "trigger": playbook.trigger.describe(t), "repeat": playbook.describe_repeat(t),
            "state": _("disabled") if state == "disabled" else _("not loaded"),
            "steps": ", ".join(f"{s.name} +{s.after.said(t)}" for s in playbook.steps)}
    if fmt == "json":
        crmkit.echo_json(out)
        app.warn_about_problems()
        return
    click.echo(crmkit.table(
        [_("playbook"), _("trigger"), _("steps"), _("repeat"), ""],
        [[p["name"], said[p["name"]]["trigger"], said[p["name"]]["steps"],
          said[p["name"]]["repeat"], "" if p["state"] == "enabled" else said[p["name"]]["state"]]
         for p in out]))
    runs_found = [(p["name"], r) for p in out for r in p["runs"]]
    if runs_found:
        click.echo("")
        click.echo(crmkit.table(
            [_("playbook"), _("customer"), _("started"), _("step"), _("due"), _("status")],
            [[name, r["customer"], r["started"],
              f"{r['number']}/{len(known[name].steps)} {r['step']}" if r["step"] else "",
              r["due"] or "", r["status"]] for name, r in runs_found]))
    states = [r["state"] for _, r in runs_found]
    summary = (ngettext("%(num)d playbook", "%(num)d playbooks", len(out)) % {"num": len(out)}
               + ", " + ngettext("%(num)d run", "%(num)d runs", len(runs_found))
               % {"num": len(runs_found)})
    counts = [f"{states.count(s)} {_(STATES[s])}" for s in STATES if states.count(s)]
    click.echo(summary + (f": {', '.join(counts)}" if counts else ""), err=True)
    if not out:
        click.echo(_("no playbooks yet: write one in playbooks/ (docs/playbooks.md)"), err=True)
    app.warn_about_problems()
