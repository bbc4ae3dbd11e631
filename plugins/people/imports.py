"""``crmkit import``: bring customers and purchases in from other tools, safely.

A dry run by default: every row is shown as new, matching an existing customer
(with the evidence), already imported, or invalid (with the reason).
``--apply`` then writes new files only; existing files are never edited.  Each
created record remembers its ``import_id`` (a hash of the row's content), so
importing the same file again creates nothing new.
"""

from __future__ import annotations

import hashlib
import json
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit import Importer, ImportOptions, ImportRow

from .matching import PeopleIndex, Person, name_key, place_key

PROGRESS_FROM = 1000


@dataclass
class Outcome:
    row: ImportRow
    status: str  # new | existing | already | invalid
    customer: str | None = None
    note: str = ""
    data: dict[str, Any] = field(default_factory=dict)
    file: str | None = None


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
    base = base or crmkit.slugify(name) or "customer"
    candidate, n = base, 1
    while candidate in taken:
        n += 1
        candidate = f"{base}-{n}"
    return candidate


def _valid_id(text: str) -> bool:
    import re

    return bool(re.fullmatch(r"[a-z0-9](?:[a-z0-9-]*[a-z0-9])?", text))


def plan(app: crmkit.App, importer: Importer, rows: Iterable[ImportRow],
         tags: tuple[str, ...]) -> list[Outcome]:
    """Decide what each row would become; writes nothing."""
    ws = app.workspace
    known_ids: dict[str, str] = {}
    for c in ws.customers.values():
        if isinstance(c.fields.get("import_id"), str):
            known_ids[c.fields["import_id"]] = c.id
    for i in ws.interactions:
        if isinstance(i.fields.get("import_id"), str):
            known_ids[i.fields["import_id"]] = i.customer
    index = PeopleIndex(Person.of(c) for c in ws.customers.values())
    by_name: dict[str, str | None] = {}
    for c in ws.customers.values():
        key = name_key(c.name)
        by_name[key] = None if key in by_name else c.id  # None: ambiguous
    taken = set(ws.customers)
    seen: dict[str, int] = {}
    outcomes = []
    for row in rows:
        if row.problems:
            outcomes.append(Outcome(row, "invalid", note="; ".join(row.problems)))
            continue
        data = dict(row.data)
        if row.kind == "customer":
            outcomes.append(_plan_customer(app, importer, row, data, tags, known_ids, index,
                                           taken, seen))
        else:
            outcomes.append(_plan_interaction(app, importer, row, data, known_ids, index,
                                              by_name, seen))
    return outcomes


def _plan_customer(app: crmkit.App, importer: Importer, row: ImportRow, data: dict[str, Any],
                   tags: tuple[str, ...], known_ids: dict[str, str], index: PeopleIndex,
                   taken: set[str], seen: dict[str, int]) -> Outcome:
    wanted = data.pop("_id", None)
    key = import_id(importer.name, data, seen)
    if key in known_ids:
        return Outcome(row, "already", known_ids[key], "imported before")
    match = index.find(_person(f"row {row.row}", data))
    if match is not None:
        note = (f"same as {match.key}: {match.evidence}" if match.key.startswith("row ")
                else match.evidence)
        status = "invalid" if match.key.startswith("row ") else "existing"
        return Outcome(row, status, None if status == "invalid" else match.key, note)
    customer_id = _new_id(wanted, data.get("name", ""), taken)
    if tags:
        data["tags"] = [*data.get("tags", []), *(t for t in tags if t not in data.get("tags", []))]
    data["fields"] = {**data.get("fields", {}), "import_id": key}
    try:
        rel = app.record_customer(customer_id, data, dry_run=True)
    except crmkit.CrmkitError as exc:
        return Outcome(row, "invalid", note=str(exc))
    taken.add(customer_id)
    index.add(_person(customer_id, data))
    return Outcome(row, "new", customer_id, data.get("name", ""), data, rel)


def _plan_interaction(app: crmkit.App, importer: Importer, row: ImportRow,
                      data: dict[str, Any], known_ids: dict[str, str], index: PeopleIndex,
                      by_name: dict[str, str | None], seen: dict[str, int]) -> Outcome:
    ws = app.workspace
    customer = None
    how = ""
    if (given := data.pop("customer", None)) is not None:
        if given in ws.customers:
            customer, how = given, f"id {given}"
        elif (found := index.by_email.get(str(given).casefold())):
            customer, how = found, f"email {given}"
    if customer is None and (email := data.pop("customer_email", None)):
        customer = index.by_email.get(email.strip().casefold())
        how = f"email {email}"
    if customer is None and (name := data.pop("customer_name", None)):
        customer = by_name.get(name_key(name))
        how = f"name {name}"
    data.pop("customer_email", None)
    data.pop("customer_name", None)
    if customer is None or customer not in ws.customers:
        who = given or how.partition(" ")[2] or "?"
        return Outcome(row, "invalid", note=f"no customer matches {who!r}")
    key = import_id(importer.name, {**data, "customer": customer}, seen)
    if key in known_ids:
        return Outcome(row, "already", customer, "imported before")
    data = {"customer": customer, **data, "fields": {"import_id": key}}
    try:
        rel = app.record_interaction(data, dry_run=True)
    except crmkit.CrmkitError as exc:
        return Outcome(row, "invalid", customer, str(exc))
    return Outcome(row, "new", customer, f"{data['type']} of {customer} (by {how})", data, rel)


def apply(app: crmkit.App, outcomes: list[Outcome]) -> None:
    for outcome in outcomes:
        if outcome.status != "new":
            continue
        if outcome.row.kind == "customer":
            outcome.file = app.record_customer(outcome.customer or "", outcome.data)
        else:
            outcome.file = app.record_interaction(outcome.data)


def _describe(o: Outcome) -> str:
    if o.status == "new":
        what = (f"new customer {o.customer} ({o.note})" if o.row.kind == "customer"
                else f"new {o.note}")
        return what
    if o.status == "existing":
        return f"existing customer {o.customer}: {o.note}"
    if o.status == "already":
        return f"already imported ({o.customer})"
    return f"invalid: {o.note}"


@click.command("import")
@click.argument("source_format", metavar="FORMAT")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--map", "mappings", multiple=True, metavar="COLUMN=FIELD",
              help="Use COLUMN for FIELD (name, first_name, last_name, company, email, phone, "
                   "mobile, birthday, street, postal_code, city, country, tags, notes, source, "
                   "id; for transactions: customer, customer_email, customer_name, date, "
                   "amount, item, currency) or 'ignore'. Repeatable.")
@click.option("--encoding", help="The file's encoding (default: UTF-8, else Windows-1252).")
@click.option("--delimiter", help="The CSV delimiter (default: detected).")
@click.option("--tag", "tags", multiple=True, help="Add this tag to every new customer.")
@click.option("--apply", "do_apply", is_flag=True, help="Write the new files (default: dry run).")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@crmkit.pass_app
def import_command(app: crmkit.App, source_format: str, file: Path, mappings: tuple[str, ...],
                   encoding: str | None, delimiter: str | None, tags: tuple[str, ...],
                   do_apply: bool, fmt: str) -> None:
    """Import FILE in FORMAT (csv, xlsx, vcard, hubspot, transactions): a dry run unless
    --apply; new files only, never edits; a second run creates nothing new."""
    importers = app.importers()
    if source_format not in importers:
        raise crmkit.CrmkitError(
            f"unknown import format {source_format!r}"
            f"{crmkit.did_you_mean(source_format, importers)}; known: {', '.join(importers)}")
    mapping = {}
    for item in mappings:
        column, sep, target = item.partition("=")
        if not sep or not column.strip() or not target.strip():
            raise crmkit.CrmkitError(f"--map {item!r}: write COLUMN=FIELD")
        mapping[column.strip()] = target.strip()
    options = ImportOptions(mapping, encoding, delimiter)
    importer = importers[source_format]
    try:
        rows = list(importer.read(file, options))
    except (UnicodeDecodeError, LookupError) as exc:
        raise crmkit.CrmkitError(f"{file}: cannot decode ({exc}); try --encoding") from None
    if len(rows) >= PROGRESS_FROM and fmt == "text":
        with click.progressbar(length=len(rows), label="checking", file=sys.stderr) as bar:
            outcomes = plan(app, importer, _counting(rows, bar), tags)
    else:
        outcomes = plan(app, importer, rows, tags)
    if do_apply:
        apply(app, outcomes)
    counts = {s: sum(1 for o in outcomes if o.status == s)
              for s in ("new", "existing", "already", "invalid")}
    if fmt == "json":
        crmkit.echo_json({
            "format": source_format, "file": str(file), "applied": do_apply, **counts,
            "rows": [{"row": o.row.row, "kind": o.row.kind, "status": o.status,
                      "customer": o.customer, "note": o.note, "file": o.file}
                     for o in outcomes]})
        return
    click.echo(f"{crmkit.clean(file.name)}: {len(outcomes)} rows ({source_format})")
    for o in outcomes:  # a name in the file must not rewrite the lines shown
        click.echo(f"  row {o.row.row}: {crmkit.clean(_describe(o))}")
        if do_apply and o.file:
            click.echo(f"    created {crmkit.clean(o.file)}")
    click.echo(f"{counts['new']} new, {counts['existing']} existing (left unchanged), "
               f"{counts['already']} already imported, {counts['invalid']} invalid")
    if not do_apply:
        click.echo(f"dry run: nothing written; --apply creates the {counts['new']} new file(s)"
                   if counts["new"] else "dry run: nothing to create")


def _counting(rows: list[ImportRow], bar: Any) -> Iterable[ImportRow]:
    for row in rows:
        yield row
        bar.update(1)
