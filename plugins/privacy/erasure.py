"""``privacy forget``: a plan first, then steps that can be finished after a failure.

The plan covers everything :mod:`.finding` finds: their records (also those that fail
validation) are deleted, their entries in shared files and ``referred_by`` lines
pointing to them are cut out (each edit checked to leave every other record exactly as
it was), generated files and crmkit's own files that mention them are deleted and the
caches cleared.  A mention crmkit cannot remove by itself (a note in another file, a
template, a file that is not valid YAML and names others too) stops the plan before
anything is changed: edit it by hand, or say ``--keep FILE`` if it is not about them.

The steps run in an order that makes a re-run finish the job: their customer file
goes last, so whatever stops the run half-way (a file that cannot be removed, a crash,
Ctrl-C), the next run still knows the person and finds what is left.  Each step on its
own is atomic (a replace, an unlink); a file that is already gone counts as done.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shlex
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import crmkit

from .finding import (
    CACHE_FOLDER,
    GENERATED,
    OWN,
    RECORD,
    Entries,
    Found,
    Mention,
    Person,
    cut_lines,
    lines_without,
    safe_data,
    their_entries,
)
from .language import _, ngettext

#: The order steps run in (the customer file last: see the module's docstring).
EDIT, DELETE_COPY, CLEAR_CACHES, DELETE_RECORD, DELETE_CUSTOMER = range(5)


@dataclass
class Step:
    order: int
    action: str  # "edit" | "delete" | "clear"
    rel: str
    note: str = ""
    #: Where the file is (:data:`.finding.RECORD`, ``GENERATED``, ``OWN``).
    area: str = RECORD
    #: For an edit: the new text, and a digest of the text it was planned from.
    text: str | None = None
    planned_from: str | None = None

    def __str__(self) -> str:
        return line(self.action, self.rel, self.note)


def line(action: str, rel: str, note: str = "") -> str:
    """A line of the plan: the verb (padded to the longest, in the terminal's language),
    the file, what it is about."""
    # TRANSLATORS: the first words of the lines of 'crmkit privacy forget's plan, padded
    # to the longest of them.
    verbs = {"edit": _("edit"), "delete": _("delete"), "clear": _("clear"), "keep": _("keep")}
    width = max(map(len, verbs.values()))
    return f"{verbs[action]:<{width}} {crmkit.clean(rel)}" + (
        f" ({crmkit.clean(note)})" if note else "")


@dataclass
class Plan:
    person: Person
    steps: list[Step] = field(default_factory=list)
    #: Mentions crmkit cannot remove by itself: ``(path, "path:line: what")``.
    by_hand: list[tuple[str, str]] = field(default_factory=list)
    #: Files left unchanged as asked (``--keep``).
    kept: list[str] = field(default_factory=list)

    def ordered(self) -> list[Step]:
        return sorted(self.steps, key=lambda s: (s.order, s.rel))


class Interrupted(crmkit.CrmkitError):
    """A step failed: the steps before it are done, the rest is left for a re-run."""


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def plan_erasure(person: Person, found: list[Found], root: Path,
                 keep: tuple[str, ...] = ()) -> Plan:
    """What forgetting ``person`` takes, from :func:`.finding.scan`'s files."""
    plan = Plan(person)
    for item in found:
        if item.unreadable is not None:
            plan.by_hand.append((item.rel, _("%(file)s: cannot be read (%(reason)s)") % {
                "file": item.rel, "reason": item.unreadable}))
        elif item.area == RECORD:
            _plan_record(plan, item)
        elif item.area == GENERATED:
            plan.steps.append(Step(DELETE_COPY, "delete", item.rel, _("generated"), GENERATED))
        elif item.area == OWN:
            plan.steps.append(Step(DELETE_COPY, "delete", item.rel, _("crmkit's own copy"), OWN))
        else:
            _by_hand(plan, item, item.mentions, "")
    if (root / CACHE_FOLDER).exists():
        plan.steps.append(Step(CLEAR_CACHES, "clear", CACHE_FOLDER + "/",
                               _("crmkit's caches: copies of what was read and printed"), OWN))
    held = {rel for rel, _why in plan.by_hand}
    for rel in keep:
        if rel not in held:
            raise crmkit.CrmkitError((
                _("--keep %(file)s: not among the files crmkit cannot change by itself "
                  "(%(files)s)") if held else
                _("--keep %(file)s: not among the files crmkit cannot change by itself "
                  "(there are none)")) % {"file": rel, "files": ", ".join(sorted(held))})
    plan.kept = sorted(set(keep))
    plan.by_hand = [(rel, why) for rel, why in plan.by_hand if rel not in plan.kept]
    return plan


def _by_hand(plan: Plan, item: Found, mentions: list[Mention], why: str) -> None:
    """``path:line: what`` for each mention; ``why`` (a reason, in the terminal's
    language) in brackets after it."""
    for mention in mentions:
        where = f"{item.rel}:{mention.line}: {mention.said or mention.what}"
        plan.by_hand.append((item.rel, f"{where} ({why})" if why else where))


def _plan_record(plan: Plan, item: Found) -> None:
    person = plan.person
    entries = their_entries(item, person.ids)
    if entries.problem is not None:
        _by_hand(plan, item, item.mentions or [Mention(1, "their record", _("their record"))],
                 entries.problem)
        return
    if entries.whole:
        order = DELETE_CUSTOMER if item.folder == "customers" else DELETE_RECORD
        what = {"customers": _("their customer file, last"),
                "interactions": _("their interactions"),
                "deals": _("their deal")}.get(item.folder, _("theirs"))
        if entries.broken:
            what = _("%(what)s; not valid YAML") % {"what": what}
        plan.steps.append(Step(order, "delete", item.rel, what))
        return
    cut = cut_lines(entries.spans)
    left = [m for m in item.mentions if m.line not in cut]
    if left:
        _by_hand(plan, item, left, "")
        return
    if not entries.spans:
        return
    try:
        text = item.data.decode("utf-8")
    except UnicodeDecodeError:
        plan.by_hand.append((item.rel, _("%(file)s: not valid UTF-8: edit it by hand")
                             % {"file": item.rel}))
        return
    new_text = lines_without(text, entries.spans)
    problem = _check_edit(item, new_text, person.ids, entries)
    if problem is not None:
        plan.by_hand.append((item.rel, f"{item.rel}: {problem}"))
        return
    n = len(entries.spans)
    note = (_("'%(line)s' removed") % {"line": f"referred_by: {person.id}"}
            if entries.kind == "referred_by" else
            ngettext("%(num)d entry cut out", "%(num)d entries cut out", n) % {"num": n}
            + ", " + ngettext("%(num)d of other customers kept",
                              "%(num)d of other customers kept", entries.others)
            % {"num": entries.others})
    plan.steps.append(Step(EDIT, "edit", item.rel, note, RECORD, new_text, _digest(item.data)))


def _check_edit(item: Found, new_text: str, ids: frozenset[str], entries: Entries) -> str | None:
    """The edited file must hold exactly its old records minus theirs."""
    old, new = safe_data(item.text), safe_data(new_text)
    if entries.kind == "referred_by":
        expected = ({k: v for k, v in old.items() if k != "referred_by"}
                    if isinstance(old, dict) else None)
    else:
        expected = ([x for x in old if not (isinstance(x, dict)
                                            and x.get("customer") in ids)]
                    if isinstance(old, list) else None)
    if expected is None or new != expected:
        return _("cannot cut their part out safely (unusual layout, or YAML anchors): "
                 "edit it by hand")
    return None


# --- applying it --------------------------------------------------------------------------


def apply(app: crmkit.App, plan: Plan) -> list[Step]:
    """Run the plan's steps in order; on the first failure raise :class:`Interrupted`
    (what was done stays done; running ``forget`` again finishes)."""
    root = app.workspace.root
    done: list[Step] = []
    for step in plan.ordered():
        try:
            _run(app, root, step)
        except (OSError, crmkit.CrmkitError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            failed = {"edit": _("could not edit %(file)s: %(reason)s."),
                      "delete": _("could not delete %(file)s: %(reason)s."),
                      "clear": _("could not clear %(file)s: %(reason)s.")}[step.action]
            raise Interrupted(" ".join((
                failed % {"file": step.rel, "reason": reason},
                ngettext("%(done)d of %(num)d step done, %(left)d left (their customer file "
                         "goes last, so nothing is lost track of): run '%(command)s' again "
                         "to finish",
                         "%(done)d of %(num)d steps done, %(left)d left (their customer file "
                         "goes last, so nothing is lost track of): run '%(command)s' again "
                         "to finish", len(plan.steps))
                % {"done": len(done), "num": len(plan.steps),
                   "left": len(plan.steps) - len(done),
                   "command": f"crmkit privacy forget {plan.person.id}"}))) from None
        done.append(step)
    return done


def _run(app: crmkit.App, root: Path, step: Step) -> None:
    path = root / step.rel
    if step.action == "edit":
        try:
            current = path.read_bytes()
        except FileNotFoundError:
            return
        if _digest(current) != step.planned_from:
            raise crmkit.CrmkitError(_("it changed since the plan was made"))
        app.write_file(path, step.text or "")
    elif step.action == "clear":
        app.clear_caches()
        if path.exists():  # clear_caches does not say why it failed: try once more
            shutil.rmtree(path)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


# --- telling ----------------------------------------------------------------------------


def git_instructions(plan: Plan, done: list[Step]) -> str:
    """How to commit the erasure and purge it from git history; every path quoted for
    the shell (a file name may hold ``$(...)``, or escape sequences: :func:`shell_word`)."""
    q = shell_word
    tracked = [s for s in done if s.area == RECORD]
    deleted = sorted(s.rel for s in tracked if s.action == "delete")
    edited = sorted(s.rel for s in tracked if s.action == "edit")
    # TRANSLATORS: a git commit message crmkit suggests.
    message = q(_("Erase customer %(id)s (GDPR art. 17)") % {"id": plan.person.id})
    lines = [_("Commit that, e.g.:")]
    if deleted:
        lines += _command("git rm -q --cached --ignore-unmatch --", [q(p) for p in deleted])
    if edited:
        lines += _command("git add --", [q(p) for p in edited])
    lines.append(f"  git commit -m {message}")
    lines.append(_("Older commits still hold it. crmkit does not rewrite history; to purge "
                   "it, with git-filter-repo:"))
    if deleted:
        lines += _command("git filter-repo --invert-paths", [f"--path {q(p)}" for p in deleted])
    if edited:
        lines += [*_("and for the edited files (their older versions still mention them), "
                     "list the texts to scrub\n(their name, emails and phone numbers as "
                     "written) one per line in a file and run:").splitlines(),
                  "  git filter-repo --replace-text scrub.txt"]
    lines.append(_("then force-push and ask everyone with a clone to re-clone."))
    return "\n".join(lines)


def shell_word(text: str) -> str:
    """``text`` as one word for a POSIX shell: :func:`shlex.quote`, or, for a name with
    a control character (which would reach the terminal as it is), bash's ``$'...'``
    with the character as ``\\xHH`` or ``\\uHHHH``, so the pasted command still names
    the file."""
    if text.isprintable():
        return shlex.quote(text)
    parts = []
    for ch in text:
        if ch in "\\'":
            parts.append("\\" + ch)
        elif ch.isprintable():
            parts.append(ch)
        elif ord(ch) < 0x80:  # above, \\u: bash writes it in UTF-8, as the name is
            parts.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            parts.append(f"\\u{ord(ch):04x}")
        else:
            parts.append(f"\\U{ord(ch):08x}")
    return "$'" + "".join(parts) + "'"


def _command(command: str, arguments: list[str]) -> list[str]:
    """A shell command as lines to paste: one argument per line when there are several."""
    if len(arguments) == 1:
        return [f"  {command} {arguments[0]}"]
    return [f"  {command} \\", *(f"    {a} \\" for a in arguments[:-1]), f"    {arguments[-1]}"]
