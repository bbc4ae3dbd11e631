"""``crmkit export``: customers out again, as CSV, vCard or JSON; all or a segment.

CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return) get a leading apostrophe, which
spreadsheets show as text (OWASP's advice against CSV injection).
"""

from __future__ import annotations

import csv
import io
import sys
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit import Customer

CSV_COLUMNS = ("id", "name", "company", "email", "phone", "street", "postal_code", "city",
               "country", "birthday", "tags", "source", "referred_by", "email_consent",
               "consent_since", "consent_how", "lifecycle", "abc", "last_contact",
               "purchase_count", "revenue")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def csv_rows(app: crmkit.App, customers: list[crmkit.CustomerView]) -> list[dict[str, Any]]:
    rows = []
    labels_of = app.labels()
    for view in customers:
        c = view.customer
        d = view.derived
        a = c.address
        labels = labels_of[c.id]
        rows.append({
            "id": c.id, "name": c.name, "company": c.company, "email": "; ".join(c.emails),
            "phone": "; ".join(c.phones), "street": a.street if a else None,
            "postal_code": a.postal_code if a else None, "city": a.city if a else None,
            "country": a.country if a else None,
            "birthday": c.birthday.isoformat() if c.birthday else None,
            "tags": ", ".join(c.tags), "source": c.source, "referred_by": c.referred_by,
            "email_consent": "yes" if c.consent.email else "no",
            "consent_since": c.consent.since.isoformat() if c.consent.since else None,
            "consent_how": c.consent.how, "lifecycle": labels.get("lifecycle"),
            "abc": labels.get("abc"),
            "last_contact": d.last_contact.isoformat() if d.last_contact else None,
            "purchase_count": d.purchase_count, "revenue": f"{d.revenue:.2f}",
        })
    return rows


def to_csv(rows: list[dict[str, Any]], delimiter: str) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, delimiter=delimiter,
                            lineterminator="\r\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: safe_cell(v) for k, v in row.items()})
    return "\ufeff" + buffer.getvalue()  # the BOM makes Excel read UTF-8


def to_vcard(customers: list[Customer]) -> str:
    import vobject  # lazily: only this format needs it

    cards = []
    for c in customers:
        card = vobject.vCard()
        card.add("fn").value = c.name
        family, _, given = c.name.rpartition(" ")
        card.add("n").value = vobject.vcard.Name(family=(family and given and
                                                 c.name.split()[-1]) or c.name,
                                                 given=" ".join(c.name.split()[:-1]))
        for email in c.emails:
            card.add("email").value = email
        for phone in c.phones:
            card.add("tel").value = phone
        if c.company:
            card.add("org").value = [c.company]
        if c.address:
            a = c.address
            card.add("adr").value = vobject.vcard.Address(
                street=a.street or "", city=a.city or "", code=a.postal_code or "",
                country=a.country or "")
        if c.birthday:
            card.add("bday").value = c.birthday.isoformat()
        if c.tags:
            card.add("categories").value = list(c.tags)
        if c.notes:
            card.add("note").value = c.notes
        card.add("uid").value = f"crmkit:{c.id}"
        cards.append(card.serialize())
    return "".join(cards)


@crmkit.read_only(writes_when=lambda p: p["out"] is not None)
@click.command("export")
@click.argument("fmt", metavar="FORMAT", type=click.Choice(["csv", "vcard", "json"]))
@click.option("--segment", "segments", multiple=True, metavar="NAME[=VALUE]",
              help="Only customers in this segment (repeatable: all must match).")
@click.option("--tag", "tags", multiple=True, help="Only customers with this tag.")
@click.option("--out", "out", type=click.Path(dir_okay=False, path_type=Path),
              help="Write to this file (default, or -: stdout).")
@click.option("--delimiter", default=",", show_default=True,
              help="CSV delimiter (';' for German Excel).")
@click.option("--force", is_flag=True,
              help="Replace an existing --out file that crmkit did not write.")
@crmkit.pass_app
def export_command(app: crmkit.App, fmt: str, segments: tuple[str, ...], tags: tuple[str, ...],
                   out: Path | None, delimiter: str, force: bool) -> None:
    """Export customers (all, or a segment or tag) as CSV, vCard or JSON."""
    chosen = [c for c in app.customers(*segments) if all(t in c.customer.tags for t in tags)]
    if fmt == "csv":
        text = to_csv(csv_rows(app, chosen), delimiter)
    elif fmt == "vcard":
        text = to_vcard([c.customer for c in chosen])
    else:
        labels = app.labels()
        buffer = io.StringIO()
        crmkit.echo_json([{**c.customer.to_json(), "derived": c.derived.to_json(),
                           "segments": labels[c.id]} for c in chosen], file=buffer)
        text = buffer.getvalue()
    if out is None or str(out) == "-":
        sys.stdout.write(text)
    else:
        app.write_named(out, text, force)
        click.echo(f"wrote {len(chosen)} customers to {out}", err=True)
