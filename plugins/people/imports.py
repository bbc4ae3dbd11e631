"""``crmkit import``: bring customers and purchases in from other tools, safely.

A dry run by default: every row is shown as new, matching an existing customer
(with the evidence), already imported, or invalid (with the reason).
``--apply`` then writes new files only; existing files are never edited.  Each
created record remembers its ``import_id`` (a hash of the row's content), so
importing the same file again creates nothing new.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit import Importer, ImportOptions, ImportRow

from .matching import PeopleIndex, Person, email_key, name_key, place_key, similar_names

PROGRESS_FROM = 1000


@dataclass
class Outcome:
    row: ImportRow
    status: str  # new | existing | already | invalid | skipped
    customer: str | None = None
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    file: str | None = None
    #: A possible match (created anyway, unless --skip-possible): the evidence.
    possible: str | None = None
    #: Values left out or read differently, the rest of the row imported.
    warnings: list[str] = field(default_factory=list)


def import_id(importer: str, data: dict[str, Any], seen: dict[str, int]) -> str:
    """Stable for the same content; the n-th identical row gets its own id."""
    canonical = json.dumps(data, sort_keys=True, default=str, ensure_ascii=False)
    digest = hashlib.sha1(f"{importer}\n{canonical}".encode()).hexdigest()[:16]
    seen[digest] = seen.get(digest, 0) + 1
    return digest if seen[digest] == 1 else f"{digest}-{seen[digest]}"


def _person(key: str, data: dict[str, Any]) -> Person:
    emails = data.get("emails") or ([data["email"]] if data.get("email") else [])
    phones = data.get("phones") or ([data["phone"]] if data.get("phone") else [])
    address = data.get("address") or {}
    return Person(key, data.get("name", ""), tuple(emails), tuple(phones),
                  place_key(address.get("postal_code"), address.get("city")))


def _new_id(wanted: str | None, name: str, taken: set[str]) -> str:
    base = wanted if wanted and _valid_id(wanted) else None
    base = base or crmkit.Customer.id_for(name) or "customer"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _valid_id(text: str) -> bool:
    return bool(re.fullmatch(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?", text))


GERMANY = ("de", "deu", "deutschland", "germany", "allemagne")


def restore_numbers(data: dict[str, Any], numbers: list[str], locale: str) -> list[str]:
    """Put back the leading zeros a spreadsheet dropped from numbers: a postal code of a
    German address (the row's country, else the workspace's locale ``de``) has 5 digits;
    a German phone number stored as a number lost its ``0`` (or its ``+`` before 49).
    Says what it did, or what it could not know."""
    told = []
    address = data.get("address") or {}
    country = str(address.get("country") or "").strip().casefold()
    german = country in GERMANY if country else locale == "de"
    for what in numbers:
        if what == "postal_code":
            code = address.get("postal_code", "")
            if german and code.isdigit() and len(code) < 5:
                address["postal_code"] = code.zfill(5)
                told.append(_("postal code %(code)s was a number in the spreadsheet (its "
                              "leading zero lost): read as %(read)s")
                            % {"code": code, "read": address["postal_code"]})
            elif code.isdigit() and len(code) < 5:
                told.append(_("postal code %(code)s was a number in the spreadsheet: check it "
                              "for lost leading zeros") % {"code": code})
            continue
        key = "phones" if "phones" in data else "phone"
        phones = data[key] if isinstance(data[key], list) else [data[key]]
        i = int(what.split(":")[1])
        digits = phones[i]
        if german:
            phones[i] = "+" + digits if digits.startswith("49") and len(digits) >= 11 \
                else "0" + digits
            told.append(_("phone %(phone)s was a number in the spreadsheet (its leading "
                          "%(lost)s lost): read as %(read)s")
                        % {"phone": digits, "lost": "+" if phones[i][0] == "+" else "0",
                           "read": phones[i]})
        else:
            told.append(_("phone %(phone)s was a number in the spreadsheet: check it for a "
                          "lost leading 0 or +") % {"phone": digits})
        data[key] = phones if key == "phones" else phones[0]
    return told


@dataclass
class _Known:
    """What the rows are matched against: the workspace, and the rows planned so far."""

    index: PeopleIndex
    by_name: dict[str, list[str]]
    known_ids: dict[str, str]
    taken: set[str]
    #: Customers planned by this import: id -> row number.
    planned: dict[str, int] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)


def plan(app: crmkit.App, importer: Importer, rows: Iterable[ImportRow],
         tags: tuple[str, ...], skip_possible: bool = False) -> list[Outcome]:
    """Decide what each row would become; writes nothing."""
    ws = app.workspace
    known_ids: dict[str, str] = {}
    for c in ws.customers.values():
        if isinstance(c.fields.get("import_id"), str):
            known_ids[c.fields["import_id"]] = c.id
    for i in ws.interactions:
        if isinstance(i.fields.get("import_id"), str):
            known_ids[i.fields["import_id"]] = i.customer
    by_name: dict[str, list[str]] = {}
    for c in ws.customers.values():
        by_name.setdefault(name_key(c.name), []).append(c.id)
    known = _Known(PeopleIndex(Person.of(c) for c in ws.customers.values()), by_name,
                   known_ids, set(ws.customers))
    outcomes = []
    for row in rows:
        if row.problems:
            outcomes.append(Outcome(row, "invalid", note="; ".join(row.problems)))
            continue
        data = dict(row.data)
        if row.kind == "customer":
            outcomes.append(_plan_customer(app, importer, row, data, tags, known,
                                           skip_possible))
        else:
            outcomes.append(_plan_interaction(app, importer, row, data, known))
    return outcomes


def _plan_customer(app: crmkit.App, importer: Importer, row: ImportRow, data: dict[str, Any],
                   tags: tuple[str, ...], known: _Known, skip_possible: bool) -> Outcome:
    ws = app.workspace
    wanted = data.pop("_id", None)
    warnings = list(data.pop("_warnings", ()))
    numbers = data.pop("_numbers", ())
    if numbers:
        data = copy.deepcopy(data)
        warnings.extend(restore_numbers(data, list(numbers), ws.settings.locale))
    key = import_id(importer.name, data, known.seen)
    if key in known.known_ids:
        return Outcome(row, "already", known.known_ids[key], _("imported before"),
                       warnings=warnings)
    person = _person(f"row {row.row}", data)
    if wanted in ws.customers and (
            similar_names(person.name, ws.customers[wanted].name)
            or {email_key(e) for e in person.emails}
            & {email_key(e) for e in ws.customers[wanted].emails}):
        return Outcome(row, "existing", wanted, _("same id %(id)s") % {"id": wanted},
                       warnings=warnings)
    match = known.index.find(person)
    possible = None
    if match is not None and match.certain:
        if match.key in known.planned:
            return Outcome(row, "existing", match.key,
                           _("the same person as row %(row)d: %(evidence)s") % {
                               "row": known.planned[match.key], "evidence": match.evidence},
                           warnings=warnings)
        return Outcome(row, "existing", match.key, match.evidence, warnings=warnings)
    if match is not None:
        where = (_("row %(row)d (%(customer)s)") % {"row": known.planned[match.key],
                                                     "customer": match.key}
                 if match.key in known.planned else match.key)
        possible = f"{where}: {match.evidence}"
        if skip_possible:
            return Outcome(row, "skipped", match.key, data.get("name", ""), possible=possible,
                           warnings=warnings)
    customer_id = _new_id(wanted, data.get("name", ""), known.taken)
    if tags:
        data["tags"] = [*data.get("tags", []), *(t for t in tags if t not in data.get("tags", []))]
    if customer_id != wanted:  # an id given in the file is its identity; else the row's hash
        data["fields"] = {**data.get("fields", {}), "import_id": key}
    try:
        rel = app.record_customer(customer_id, data, dry_run=True)
    except crmkit.CrmkitError as exc:
        return Outcome(row, "invalid", note=str(exc), warnings=warnings)
    known.taken.add(customer_id)
    known.planned[customer_id] = row.row
    known.index.add(_person(customer_id, data))
    return Outcome(row, "new", customer_id, data.get("name", ""), data, rel, possible,
                   warnings)


def _find_customer(ws: crmkit.Workspace, index: PeopleIndex, by_name: dict[str, list[str]],
                   value: str) -> tuple[str | None, str]:
    """A customer named by id, email or exact name; else ``None`` and why not."""
    text = value.strip()
    if text in ws.customers:
        return text, _("by id %(value)s") % {"value": text}
    if found := index.by_email.get(email_key(text)):
        return found, _("by email %(value)s") % {"value": text}
    ids = by_name.get(name_key(text), [])
    if len(ids) == 1:
        return ids[0], _("by name %(value)s") % {"value": text}
    if ids:
        return None, (_("the name %(name)s is several customers' (%(ids)s): give the id or "
                        "email") % {"name": repr(text), "ids": ", ".join(sorted(ids))})
    return None, ""


def _plan_interaction(app: crmkit.App, importer: Importer, row: ImportRow,
                      data: dict[str, Any], known: _Known) -> Outcome:
    ws = app.workspace
    given = [str(v) for v in (data.pop(k, None) for k in ("customer", "customer_email",
                                                          "customer_phone", "customer_name"))
             if v not in (None, "")]
    customer = None
    how = ""
    problems = []
    for value in given:
        customer, how = _find_customer(ws, known.index, known.by_name, value)
        if customer is not None:
            break
        if how:
            problems.append(how)
    if customer is None:
        who = " / ".join(repr(v) for v in given) or "?"
        return Outcome(row, "invalid",
                       note="; ".join(problems) or _("no customer matches %(who)s (by id, "
                                                     "email or exact name)") % {"who": who})
    key = import_id(importer.name, {**data, "customer": customer}, known.seen)
    if key in known.known_ids:
        return Outcome(row, "already", customer, _("imported before"))
    data = {"customer": customer, **data, "fields": {"import_id": key}}
    try:
        rel = app.record_interaction(data, dry_run=True)
    except crmkit.CrmkitError as exc:
        return Outcome(row, "invalid", customer, str(exc))
    t = crmkit.translations(terminal=True)
    return Outcome(row, "new", customer, t.gettext("%(type)s of %(customer)s (%(how)s)") % {
        "type": t.word(data["type"]), "customer": customer, "how": how}, data, rel)


def apply(app: crmkit.App, outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        if outcome.status != "new":
            continue
        if outcome.row.kind == "customer":
            outcome.file = app.record_customer(outcome.customer or "", outcome.data)
        else:
            outcome.file = app.record_interaction(outcome.data)


def _(message: str) -> str:
    """What the command says itself, in the terminal's language (LANG)."""
    return crmkit.translations(terminal=True).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return crmkit.translations(terminal=True).ngettext(singular, plural, n)


def _describe(o: Outcome) -> str:
    """One row's outcome for people (the notes and the evidence are the plan's, as the
    JSON has them)."""
    values = {"customer": o.customer, "note": o.note, "possible": o.possible}
    if o.status == "new":
        what = (_("new customer %(customer)s (%(note)s)") if o.row.kind == "customer"
                else _("new %(note)s")) % values
        return what + ("; " + _("possible match %(possible)s") % values if o.possible else "")
    if o.status == "existing":
        return _("existing customer %(customer)s: %(note)s") % values
    if o.status == "already":
        return _("already imported (%(customer)s)") % values
    if o.status == "skipped":
        return _("skipped (%(note)s; --skip-possible): possible match %(possible)s") % values
    return _("invalid: %(note)s") % values


@click.command("import")
@click.argument("source_format", metavar="FORMAT")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--map", "mappings", multiple=True, metavar="COLUMN=FIELD",
              help="Use COLUMN for FIELD (name, first_name, last_name, company, email, phone, "
                   "mobile, birthday, street, postal_code, city, country, tags, notes, source, "
                   "id, referred_by, email_consent, consent_since, consent_how, services, "
                   "fields.NAME; for transactions: customer, customer_email, customer_name, "
                   "date, amount, item, currency) or 'ignore'. Repeatable.")
@click.option("--encoding", help="The file's encoding (default: UTF-8, else Windows-1252).")
@click.option("--delimiter", help="The CSV delimiter (default: detected).")
@click.option("--tag", "tags", multiple=True, help="Add this tag to every new customer.")
@click.option("--skip-possible", is_flag=True,
              help="Do not create rows that possibly match a customer (a shared phone, a "
                   "similar name at the same address); default: create them, with the "
                   "evidence shown.")
@click.option("--apply", "do_apply", is_flag=True, help="Write the new files (default: dry run).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@crmkit.pass_app
def import_command(app: crmkit.App, source_format: str, file: Path, mappings: tuple[str, ...],
                   encoding: str | None, delimiter: str | None, tags: tuple[str, ...],
                   skip_possible: bool, do_apply: bool, fmt: str) -> None:
    """Import FILE in FORMAT (csv, xlsx, vcard, hubspot, json, transactions): a dry run
    unless --apply; new files only, never edits; a second run creates nothing new. A row
    matching a customer (same email, or same phone and a similar name) is left out; a
    possible match is created unless --skip-possible."""
    importers = app.importers()
    if source_format not in importers:
        raise crmkit.CrmkitError(
            _("unknown import format %(format)s") % {"format": repr(source_format)}
            + crmkit.did_you_mean(source_format, importers) + "; "
            + _("known: %(formats)s") % {"formats": ", ".join(importers)})
    mapping = {}
    for item in mappings:
        column, sep, target = item.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise crmkit.CrmkitError(f"--map {item!r}: " + _("write COLUMN=FIELD"))
        mapping[column.strip()] = target.strip()
    options = ImportOptions(mapping, encoding, delimiter)
    importer = importers[source_format]
    try:
        rows = list(importer.read(file, options))
    except (UnicodeDecodeError, LookupError) as exc:
        raise crmkit.CrmkitError(f"{file}: " + _("cannot decode (%(error)s); try --encoding")
                                 % {"error": exc}) from None
    if len(rows) >= PROGRESS_FROM and fmt == "text":
        with click.progressbar(length=len(rows), label=_("checking"), file=sys.stderr) as bar:
            outcomes = plan(app, importer, _counting(rows, bar), tags, skip_possible)
    else:
        outcomes = plan(app, importer, rows, tags, skip_possible)
    if do_apply:
        apply(app, outcomes)
    counts = {s: sum(1 for o in outcomes if o.status == s)
              for s in ("new", "existing", "already", "invalid", "skipped")}
    possible = sum(1 for o in outcomes if o.status == "new" and o.possible)
    if fmt == "json":
        crmkit.echo_json({
            "format": source_format, "file": str(file), "applied": do_apply, **counts,
            "possible": possible,
            "rows": [{"row": o.row.row, "kind": o.row.kind, "status": o.status,
                      "customer": o.customer, "note": o.note, "possible_match": o.possible,
                      "warnings": o.warnings, "file": o.file}
                     for o in outcomes]})
        _fail_on_invalid(counts["invalid"], file)
        return
    click.echo(f"{crmkit.clean(file.name)}: " + ngettext(
        "%(num)d row (%(format)s)", "%(num)d rows (%(format)s)", len(outcomes)) % {
        "num": len(outcomes), "format": source_format})
    for o in outcomes:  # a name in the file must not rewrite the lines shown
        click.echo("  " + _("row %(row)s: %(outcome)s") % {
            "row": o.row.row, "outcome": crmkit.clean(_describe(o))})
        for warning in o.warnings:
            click.echo("    " + _("warning: %(message)s") % {"message": crmkit.clean(warning)})
        if do_apply and o.file:
            click.echo("    " + _("created %(path)s") % {"path": crmkit.clean(o.file)})
    summary = _("%(num)d new") % {"num": counts["new"]}
    if possible:
        summary += " " + ngettext("(%(num)d possible match)", "(%(num)d possible matches)",
                                  possible) % {"num": possible}
    summary += ", " + _("%(existing)d existing (left unchanged), %(already)d already "
                        "imported, %(invalid)d invalid") % counts
    if counts["skipped"]:
        summary += ", " + _("%(skipped)d skipped (possible matches)") % counts
    click.echo(summary)
    if not do_apply:
        click.echo(ngettext("dry run: nothing written; --apply creates the %(num)d new file",
                            "dry run: nothing written; --apply creates the %(num)d new files",
                            counts["new"]) % {"num": counts["new"]}
                   if counts["new"] else _("dry run: nothing to create"))
    _fail_on_invalid(counts["invalid"], file)


def _fail_on_invalid(invalid: int, file: Path) -> None:
    """Exit 1 when rows were left out: the import is not done (a CI job or a script
    must not read "success" while people are missing)."""
    if invalid:
        click.echo(ngettext(
            "error: %(num)d row was not imported (invalid, named above): correct %(file)s "
            "and import it again (rows already imported are recognised)",
            "error: %(num)d rows were not imported (invalid, named above): correct %(file)s "
            "and import it again (rows already imported are recognised)", invalid) % {
            "num": invalid, "file": crmkit.clean(file.name)}, err=True)
        raise SystemExit(1)


def _counting(rows: list[ImportRow], bar: Any) -> Iterable[ImportRow]:
    for row in rows:
        yield row
        bar.update(1)
