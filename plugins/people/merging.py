"""``crmkit merge KEEP OTHER``: two records of one person become one.

A plan first; with ``--apply`` its steps run:

1. every record file that names OTHER (``customer: OTHER`` in interactions and deals,
   reminder ids ``kind/OTHER/date`` in ``resolves``, ``referred_by: OTHER`` in other
   customers) is edited on those lines only, the rest of the file byte for byte; each
   edit is checked to change exactly those values;
2. KEEP's file gets what only OTHER had (emails, phones, tags, services, and fields
   KEEP lacks; KEEP wins where both differ, and the plan lists those) and
   ``aliases: [OTHER]``, so that records another clone writes later for OTHER are
   KEEP's too; the keys it does not change stay as written. How they found us
   (``source``, ``campaign``, ``referred_by``) is one story, KEEP's or else OTHER's,
   never a mix; the email consent is one of the two, whole with its evidence (``since``,
   ``how``): an opt-out over a consent, else the one with more evidence, else KEEP's;
3. OTHER's file is deleted, last.

Each step is atomic (a replace, an unlink) and checks that its file did not change
since the plan; whatever stops the run half-way, ``crmkit merge KEEP OTHER --apply``
again finishes it (OTHER's file goes last, so the next run still finds everything).
A file crmkit cannot edit safely stops the plan before anything is changed; a record
file that is not valid YAML is left as it is (the alias links it once it is fixed).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click
import yaml

import crmkit

RECORD_FOLDERS = ("customers", "interactions", "deals")
SUFFIXES = (".yaml", ".yml")
#: Keys whose values are lists that are united, not chosen.
LIST_KEYS = ("email", "emails", "phone", "phones", "tags", "services", "aliases")
#: How they found us: one story, taken whole from one of the two.
ACQUISITION = ("source", "campaign", "referred_by")
_DELETE = object()


def _(message: str) -> str:
    """What the command says itself, in the terminal's language (LANG)."""
    return crmkit.translations(terminal=True).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return crmkit.translations(terminal=True).ngettext(singular, plural, n)


@dataclass
class Step:
    action: str  # "edit" | "delete"
    rel: str
    note: str
    text: str | None = None
    planned_from: str | None = None

    def __str__(self) -> str:
        # TRANSLATORS: a merge plan line's first word, padded to the longer of the two.
        edit, delete = _("edit"), _("delete")
        verb = edit if self.action == "edit" else delete
        return f"{verb:<{max(len(edit), len(delete))}} {self.rel} ({self.note})"


@dataclass
class Plan:
    keep: str
    other: str
    steps: list[Step] = field(default_factory=list)
    #: What KEEP's file kept where OTHER's differed.
    conflicts: list[str] = field(default_factory=list)
    #: Files crmkit cannot edit safely: ``"path: why"``; any of them stops the plan.
    by_hand: list[str] = field(default_factory=list)
    #: Files left as they are (not valid YAML): the alias links them.
    left: list[str] = field(default_factory=list)
    #: What KEEP's file takes from OTHER's.
    taken: list[str] = field(default_factory=list)
    #: Which email consent is kept where the two disagree.
    consent: str | None = None


def _digest(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _load(text: str) -> Any:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # a safe loader


def _as_list(data: dict[str, Any], single: str, many: str) -> list[Any]:
    value = data.get(many, data.get(single))
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def _phone_key(phone: Any) -> str:
    digits = re.sub(r"\D", "", str(phone))
    return digits[-9:] if len(digits) >= 6 else str(phone).strip()


def _values(values: list[Any]) -> str:
    return ", ".join(map(str, values))


def _kept(key: str, keep_id: str, mine: str, other_id: str, theirs: str) -> str:
    """A difference KEEP won: ``key`` (a field's name) and both values, as written."""
    return _("%(key)s: %(keep)s's %(mine)s kept, %(other)s had %(theirs)s") % {
        "key": key, "keep": keep_id, "mine": mine, "other": other_id, "theirs": theirs}


def _united(keep: list[Any], other: list[Any], key: Any) -> tuple[list[Any], list[Any]]:
    """``keep`` then what of ``other`` it lacks (compared by ``key``); and what was added."""
    seen = {key(v) for v in keep}
    added = []
    for value in other:
        if key(value) not in seen:
            seen.add(key(value))
            added.append(value)
    return [*keep, *added], added


def merged_customer(keep_id: str, keep: dict[str, Any], other_id: str, other: dict[str, Any]
                    ) -> tuple[dict[str, Any], list[str], list[str], str | None]:
    """KEEP's data after the merge (as an update: key -> value or ``_DELETE``), what was
    taken from OTHER, the conflicts KEEP won, and the line saying which email consent
    is kept where the two disagree (``None`` where they do not)."""
    update: dict[str, Any] = {}
    added: list[str] = []
    conflicts: list[str] = []
    for single, many, key in (("email", "emails", lambda e: str(e).casefold()),
                              ("phone", "phones", _phone_key)):
        mine = _as_list(keep, single, many)
        values, new = _united(mine, _as_list(other, single, many), key)
        if new:
            said = (ngettext("email %(values)s", "emails %(values)s", len(new))
                    if single == "email" else
                    ngettext("phone %(values)s", "phones %(values)s", len(new)))
            added.append(said % {"values": _values(new)})
            if len(values) == 1:
                update[single] = values[0]
            else:
                update[many] = values
                if single in keep:
                    update[single] = _DELETE
    tags, new_tags = _united(_as_list(keep, "tags", "tags"), _as_list(other, "tags", "tags"),
                             str)
    if new_tags:
        update["tags"] = tags
        added.append(ngettext("tag %(values)s", "tags %(values)s", len(new_tags))
                     % {"values": _values(new_tags)})
    mine_services = [s for s in _as_list(keep, "services", "services") if isinstance(s, dict)]
    names = {s.get("name"): s for s in mine_services}
    new_services = []
    for service in _as_list(other, "services", "services"):
        if not isinstance(service, dict):
            continue
        if service.get("name") not in names:
            new_services.append(service)
        elif names[service.get("name")] != service:
            conflicts.append(_("service %(name)s: %(keep)s's kept")
                             % {"name": repr(service.get("name")), "keep": keep_id})
    if new_services:
        update["services"] = [*_as_list(keep, "services", "services"), *new_services]
        added.append(ngettext("service %(values)s", "services %(values)s", len(new_services))
                     % {"values": _values([s.get("name") for s in new_services])})
    aliases = [a for a in (*_as_list(keep, "aliases", "aliases"), other_id,
                           *_as_list(other, "aliases", "aliases")) if a != keep_id]
    update["aliases"] = list(dict.fromkeys(aliases))
    _merge_acquisition(keep_id, keep, other_id, other, update, added, conflicts)
    consent_note = _merge_consent(keep_id, keep, other_id, other, update, added, conflicts)
    for key, value in other.items():
        if key in LIST_KEYS or key in ACQUISITION or key == "consent":
            continue
        if key == "fields" and isinstance(value, dict) and isinstance(keep.get(key), dict):
            fields = dict(keep[key])
            for name, v in value.items():
                if name not in fields:
                    fields[name] = v
                    added.append(f"fields.{name}")
                elif fields[name] != v:
                    conflicts.append(_kept(f"fields.{name}", keep_id, repr(fields[name]),
                                           other_id, repr(v)))
            if fields != keep[key]:
                update[key] = fields
        elif key not in keep or keep[key] in (None, "", [], {}):
            if value not in (None, "", [], {}):
                update[key] = value
                added.append(key)
        elif keep[key] != value:
            conflicts.append(_kept(key, keep_id, _short(keep[key]), other_id, _short(value)))
    return update, added, conflicts, consent_note


def _acquisition(data: dict[str, Any], ids: tuple[str, str]) -> dict[str, Any]:
    """How they found us, as far as ``data`` says (a ``referred_by`` naming KEEP or
    OTHER says nothing: after the merge it would name the customer itself)."""
    return {key: data[key] for key in ACQUISITION
            if data.get(key) not in (None, "") and not (key == "referred_by"
                                                        and data[key] in ids)}


def _describe_keys(values: dict[str, Any]) -> str:
    return ", ".join(f"{key} {_short(value)}" for key, value in values.items())


def _merge_acquisition(keep_id: str, keep: dict[str, Any], other_id: str,
                       other: dict[str, Any], update: dict[str, Any], added: list[str],
                       conflicts: list[str]) -> None:
    """``source``, ``campaign`` and ``referred_by`` tell one story (how they found us):
    KEEP's is kept whole when it has one, else OTHER's is taken whole. Taking OTHER's
    campaign beside KEEP's source would credit a campaign with a customer it did not
    bring."""
    mine = _acquisition(keep, (keep_id, other_id))
    theirs = _acquisition(other, (keep_id, other_id))
    if keep.get("referred_by") == other_id:
        update["referred_by"] = _DELETE  # it would name the customer itself
    if not mine:
        for key, value in theirs.items():
            update[key] = value
            added.append(f"{key} {_short(value)}")
    elif theirs and theirs != mine:
        conflicts.append(_kept(_("how they found us"), keep_id, _describe_keys(mine),
                               other_id, _describe_keys(theirs)))


def _consent_text(consent: Any) -> str:
    """A consent in full (its evidence is never cut short)."""
    if not isinstance(consent, dict):
        return _short(consent)
    return "{" + ", ".join(f"{k}: {str(v).lower() if isinstance(v, bool) else v}"
                           for k, v in consent.items()) + "}"


def _evidence(consent: dict[str, Any]) -> int:
    return sum(consent.get(key) not in (None, "") for key in ("since", "how"))


def _describe_consent(consent: dict[str, Any]) -> str:
    parts = [str(consent[key]) for key in ("since", "how") if consent.get(key) not in (None, "")]
    return ", ".join(parts) if parts else _("no date or how recorded")


def _merge_consent(keep_id: str, keep: dict[str, Any], other_id: str, other: dict[str, Any],
                   update: dict[str, Any], added: list[str], conflicts: list[str]
                   ) -> str | None:
    """One consent, never mixed from two (its date and how are its evidence): where
    both said the same, the one with more evidence (KEEP's on a tie); where one opted
    out, the opt-out (the more restrictive choice), said in the line returned."""
    mine, theirs = keep.get("consent"), other.get("consent")
    if theirs in (None, {}) or mine == theirs:
        return None
    if mine in (None, {}):
        update["consent"] = theirs
        added.append(f"consent {_consent_text(theirs)}")
        return None
    if not (isinstance(mine, dict) and isinstance(theirs, dict)
            and isinstance(mine.get("email"), bool) and isinstance(theirs.get("email"), bool)):
        conflicts.append(_kept("consent", keep_id, _consent_text(mine), other_id,
                               _consent_text(theirs)))
        return None
    if mine["email"] == theirs["email"]:
        if _evidence(theirs) > _evidence(mine):
            update["consent"] = theirs
            added.append(_("consent %(consent)s (its evidence; %(keep)s's was %(was)s)") % {
                "consent": _consent_text(theirs), "keep": keep_id, "was": _consent_text(mine)})
        else:
            conflicts.append(_kept("consent", keep_id, _consent_text(mine), other_id,
                                   _consent_text(theirs)))
        return None
    out_id, out, in_id, given = ((keep_id, mine, other_id, theirs) if not mine["email"]
                                 else (other_id, theirs, keep_id, mine))
    if out is theirs:
        update["consent"] = theirs
        added.append(f"consent {_consent_text(theirs)}")
    return _("%(out)s opted out of email (%(out_evidence)s), %(in)s had opted in "
             "(%(in_evidence)s): the opt-out is kept, the more restrictive choice") % {
        "out": out_id, "out_evidence": _describe_consent(out), "in": in_id,
        "in_evidence": _describe_consent(given)}


def _short(value: Any) -> str:
    if isinstance(value, dict):
        text = "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"
    elif isinstance(value, str):
        text = repr(value)
    else:
        text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --- editing YAML text, keeping everything else -------------------------------------------

_TOP_KEY = re.compile(r"^([A-Za-z_][\w-]*)\s*:")


def _blocks(lines: list[str]) -> dict[str, tuple[int, int]]:
    """Each top-level key's lines ``[start, end)`` (its value included, trailing blank
    lines and comments not)."""
    found: dict[str, tuple[int, int]] = {}
    i = 0
    while i < len(lines):
        m = _TOP_KEY.match(lines[i])
        if not m:
            i += 1
            continue
        end = i + 1
        last = end
        while end < len(lines):
            line = lines[end]
            if line[:1] in (" ", "\t") or line.startswith("- ") or line.rstrip("\r\n") == "-":
                end += 1
                last = end
            elif not line.strip():
                end += 1
            else:
                break
        found[m.group(1)] = (i, last)
        i = last
    return found


def _dump(key: str, value: Any) -> str:
    return yaml.safe_dump({key: value}, allow_unicode=True, sort_keys=False,
                          default_flow_style=False, width=4096)


def set_keys(text: str, update: dict[str, Any]) -> str:
    """``text`` with the top-level keys in ``update`` replaced, added or (``_DELETE``)
    removed; every other line as it was."""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines[-1] += "\n"
    blocks = _blocks(lines)
    replaced: dict[int, tuple[int, str]] = {}
    appended = []
    for key, value in update.items():
        if key in blocks:
            start, end = blocks[key]
            if start not in replaced:
                replaced[start] = (end, "" if value is _DELETE else _dump(key, value))
            elif value is not _DELETE:  # 'emails' where 'email' was
                replaced[start] = (end, _dump(key, value))
        elif value is not _DELETE:
            single = {"emails": "email", "phones": "phone"}.get(key)
            if single in blocks and update.get(single) is _DELETE:
                start, end = blocks[single]
                replaced[start] = (end, _dump(key, value))
            else:
                appended.append(_dump(key, value))
    out = []
    i = 0
    while i < len(lines):
        if i in replaced:
            end, new = replaced[i]
            out.append(new)
            i = end
        else:
            out.append(lines[i])
            i += 1
    return "".join(out) + "".join(appended)


_CUSTOMER_LINE = r"^(\s*(?:-\s+)?{key}:[ \t]*)([\"']?){old}\2([ \t]*(?:#.*)?)$"


def repoint(text: str, key: str, old: str, new: str, ids_too: bool) -> str:
    """``key: old`` lines become ``key: new``; with ``ids_too`` also reminder ids
    ``kind/old/date`` (in ``resolves``)."""
    pattern = re.compile(_CUSTOMER_LINE.format(key=key, old=re.escape(old)), re.M)
    text = pattern.sub(lambda m: f"{m.group(1)}{m.group(2)}{new}{m.group(2)}{m.group(3)}",
                       text)
    if ids_too:
        text = re.sub(rf"(?<=/){re.escape(old)}(?=/\d{{4}}-\d{{2}}-\d{{2}})", new, text)
    return text


def _expected(data: Any, folder: str, old: str, new: str) -> Any:
    """What the file's data must be after re-pointing."""
    if folder == "customers":
        if isinstance(data, dict) and data.get("referred_by") == old:
            return {**data, "referred_by": new}
        return data
    if isinstance(data, list):
        return [_expected(item, folder, old, new) for item in data]
    if not isinstance(data, dict) or data.get("customer") != old:
        return data
    result = {**data, "customer": new}
    if folder == "interactions" and "resolves" in data:
        ids = data["resolves"]

        def moved(rid: Any) -> Any:
            return re.sub(rf"(?<=/){re.escape(old)}(?=/\d{{4}}-\d{{2}}-\d{{2}})", new, rid) \
                if isinstance(rid, str) else rid
        result["resolves"] = [moved(r) for r in ids] if isinstance(ids, list) else moved(ids)
    return result


def _record_files(root: Path) -> list[tuple[str, Path]]:
    found = []
    for folder in RECORD_FOLDERS:
        base = root / folder
        if not base.is_dir():
            continue
        for dirpath, dirnames, filenames in os.walk(base):
            dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
            for name in sorted(filenames):
                if name.endswith(SUFFIXES) and not name.startswith("."):
                    path = Path(dirpath) / name
                    found.append((path.relative_to(root).as_posix(), path))
    return found


def plan_merge(app: crmkit.App, keep_id: str, other_id: str) -> Plan:
    """What merging ``other_id`` into ``keep_id`` takes; changes nothing."""
    ws = app.workspace
    if keep_id == other_id:
        raise crmkit.CrmkitError(_("KEEP and OTHER are the same customer"))
    keep = app.require_customer(keep_id)
    if other_id not in ws.customers and other_id in keep.aliases \
            and not (ws.root / "customers" / f"{other_id}.yaml").exists():
        raise AlreadyMerged(_("%(other)s is already merged into %(keep)s (an alias of it)")
                            % {"other": other_id, "keep": keep_id})
    other = app.require_customer(other_id)
    plan = Plan(keep_id, other_id)
    root = ws.root
    keep_rel, other_rel = keep.location.path, other.location.path
    for rel, path in _record_files(root):
        if rel in (keep_rel, other_rel):
            continue
        data = path.read_bytes()
        if other_id.encode() not in data:
            continue
        try:
            text = data.decode("utf-8")
            old = _load(text)
        except (UnicodeDecodeError, yaml.YAMLError):
            plan.left.append(_("%(file)s: not valid YAML, left as it is (the alias links it "
                               "once it is fixed)") % {"file": rel})
            continue
        folder = rel.split("/", 1)[0]
        wanted = _expected(old, folder, other_id, keep_id)
        if wanted == old:
            continue  # a mention in a text, not a link
        what = "referred_by" if folder == "customers" else "customer"
        new_text = repoint(text, what, other_id, keep_id, folder == "interactions")
        try:
            ok = _load(new_text) == wanted
        except yaml.YAMLError:
            ok = False
        if not ok:
            plan.by_hand.append(_("%(file)s: cannot re-point it safely (unusual layout, or YAML "
                                  "anchors): write '%(line)s' by hand")
                                % {"file": rel, "line": f"{what}: {keep_id}"})
            continue
        plan.steps.append(Step("edit", rel, f"{what}: {other_id} -> {keep_id}", new_text,
                               _digest(data)))
    keep_data_raw = (root / keep_rel).read_bytes()
    keep_text = keep_data_raw.decode("utf-8")
    keep_data = _load(keep_text)
    other_data = _load((root / other_rel).read_text(encoding="utf-8"))
    update, added, conflicts, plan.consent = merged_customer(keep_id, keep_data, other_id,
                                                             other_data)
    plan.conflicts = conflicts
    plan.taken = added
    if update.get("aliases") == keep_data.get("aliases"):
        del update["aliases"]
    new_keep = set_keys(keep_text, update)
    expected = {k: v for k, v in {**keep_data, **update}.items() if v is not _DELETE}
    if _load(new_keep) != expected:
        plan.by_hand.append(_("%(file)s: cannot add to it safely (unusual layout): add "
                              "%(keys)s by hand") % {"file": keep_rel, "keys": ", ".join(update)})
    elif new_keep != keep_text:
        alias = f"aliases: [{other_id}]"
        note = (_("adds from %(other)s: %(what)s") % {"other": other_id,
                                                      "what": "; ".join([*added, alias])}
                if added else _("adds %(what)s") % {"what": alias})
        plan.steps.append(Step("edit", keep_rel, note, new_keep, _digest(keep_data_raw)))
    plan.steps.append(Step("delete", other_rel,
                           _("%(other)s's customer file, last") % {"other": other_id}))
    return plan


class AlreadyMerged(crmkit.CrmkitError):
    """OTHER is gone and an alias of KEEP: nothing to do."""


def apply(app: crmkit.App, plan: Plan) -> int:
    """Run the steps in order (OTHER's file last); returns how many ran."""
    root = app.workspace.root
    done = 0
    for step in plan.steps:
        path = root / step.rel
        try:
            if step.action == "edit":
                current = path.read_bytes()
                if _digest(current) != step.planned_from:
                    raise crmkit.CrmkitError(_("it changed since the plan was made"))
                app.write_file(path, step.text or "")
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        except (OSError, crmkit.CrmkitError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            failed = (_("could not edit %(file)s: %(reason)s.") if step.action == "edit"
                      else _("could not delete %(file)s: %(reason)s."))
            raise crmkit.CrmkitError(" ".join((
                failed % {"file": step.rel, "reason": reason},
                ngettext("%(done)d of %(num)d step done; %(other)s's file goes last, so run "
                         "'%(command)s' again to finish",
                         "%(done)d of %(num)d steps done; %(other)s's file goes last, so run "
                         "'%(command)s' again to finish", len(plan.steps))
                % {"done": done, "num": len(plan.steps), "other": plan.other,
                   "command": f"crmkit merge {plan.keep} {plan.other} --apply"}))) from None
        done += 1
    return done


@click.command("merge")
@click.argument("keep")
@click.argument("other")
@click.option("--apply", "do_apply", is_flag=True,
              help="Merge (default: show the plan and change nothing).")
@crmkit.pass_app
def merge_command(app: crmkit.App, keep: str, other: str, do_apply: bool) -> None:
    """Merge customer OTHER into KEEP: their emails, phones, tags and services united
    (KEEP wins where both differ), OTHER's interactions and deals re-pointed, OTHER's
    file deleted and kept as an alias of KEEP. Shows the plan unless --apply."""
    try:
        plan = plan_merge(app, keep, other)
    except AlreadyMerged as exc:
        click.echo(_("%(reason)s: nothing to do") % {"reason": exc})
        return
    ws = app.workspace
    click.echo(_("Merging %(other)s into %(keep)s:") % {
        "other": f"{other} ({crmkit.clean(ws.customers[other].name)})",
        "keep": f"{keep} ({crmkit.clean(ws.customers[keep].name)})"})
    for step in plan.steps:
        click.echo(f"  {crmkit.clean(str(step))}")
    # TRANSLATORS: labels of the merge plan's last lines, padded to the longest one.
    labels = {"differs": _("differs:"), "consent": _("consent:"), "left": _("left:"),
              "by_hand": _("by hand:")}
    width = max(map(len, labels.values()))
    lines = [*(("differs", c) for c in plan.conflicts),
             *((("consent", plan.consent),) if plan.consent else ()),
             *(("left", note) for note in plan.left),
             *(("by_hand", note) for note in plan.by_hand)]
    for label, text in lines:
        click.echo(f"  {labels[label]:<{width}} {crmkit.clean(text)}")
    if plan.by_hand:
        raise crmkit.CrmkitError(ngettext(
            "%(num)d file crmkit cannot change safely; nothing was changed",
            "%(num)d files crmkit cannot change safely; nothing was changed",
            len(plan.by_hand)) % {"num": len(plan.by_hand)})
    if not do_apply:
        click.echo(ngettext("dry run: nothing changed; --apply runs the %(num)d step",
                            "dry run: nothing changed; --apply runs the %(num)d steps",
                            len(plan.steps)) % {"num": len(plan.steps)})
        return
    apply(app, plan)
    edited = sum(1 for s in plan.steps if s.action == "edit")
    click.echo(ngettext("merged %(other)s into %(keep)s: %(num)d file edited, 1 deleted; "
                        "records naming %(other)s (from other clones too) are now %(keep)s's",
                        "merged %(other)s into %(keep)s: %(num)d files edited, 1 deleted; "
                        "records naming %(other)s (from other clones too) are now %(keep)s's",
                        edited) % {"other": other, "keep": keep, "num": edited})
