"""``crmkit export``: customers out again, as CSV, vCard or JSON; all or a segment.

CSV cells that a spreadsheet would run as a formula (starting with ``=``, ``+``,
``-``, ``@``, a tab or a carriage return) get a leading apostrophe, which
spreadsheets show as text (OWASP's advice against CSV injection); ``crmkit import``
takes it off again.  ``--no-derived`` leaves out what is computed from the
interactions: then export, import into an empty workspace and export again give the
same bytes.
"""

from __future__ import annotations

import csv
import io
import re
import sys
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit import Customer

#: What a customer file holds, as CSV columns (`crmkit import csv` reads them all back).
DATA_COLUMNS = ("id", "name", "salutation", "company", "email", "phone", "street",
                "postal_code", "city", "country", "birthday", "tags", "source", "referred_by",
                "email_consent", "consent_since", "consent_how", "preferred_channel",
                "locale", "stage", "notes", "services", "aliases")
#: Computed from the interactions: left out with --no-derived (and ignored by import).
DERIVED_COLUMNS = ("lifecycle", "abc", "last_contact", "purchase_count", "revenue")
CSV_COLUMNS = (*DATA_COLUMNS, *DERIVED_COLUMNS)
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
#: Keys of :meth:`crmkit.Customer.to_json` that the columns above hold.
_SPREAD = {"id", "name", "salutation", "company", "emails", "phones", "address", "birthday",
           "tags", "source", "referred_by", "consent", "preferred_channel", "locale", "stage",
           "notes", "services", "fields", "aliases"}


#: A cell a spreadsheet would run as a formula, or one that would look guarded
#: (apostrophes before such a start): it gets one more apostrophe, which import removes.
GUARDED = re.compile(r"^'*[=+\-@\t\r]")


def _(message: str) -> str:
    """What the command says itself, in the terminal's language (LANG)."""
    return crmkit.translations(terminal=True).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return crmkit.translations(terminal=True).ngettext(singular, plural, n)


def safe_cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if GUARDED.match(text) else text


def plain(value: Any) -> Any:
    """Records' mappings and lists (read-only, with their places in the file) as plain
    dicts and lists."""
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return value


def flow(value: Any) -> str:
    """A value as one line of YAML flow (services, free fields): read back exactly."""
    import yaml  # lazily: only exports with services or free fields need it

    text = yaml.safe_dump(plain(value), default_flow_style=True, allow_unicode=True, width=1 << 30,
                          sort_keys=False)
    return text.removesuffix("\n...\n").rstrip("\n")


def _service(s: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in s.items() if v is not None}


def customer_cells(customer: Customer) -> dict[str, Any]:
    """Everything a customer file holds, as CSV cells (free fields as ``fields.NAME``;
    any key a newer crmkit adds under its own name)."""
    data = customer.to_json()
    address = data["address"] or {}
    consent = data["consent"]
    cells: dict[str, Any] = {
        "id": data["id"], "name": data["name"], "salutation": data["salutation"],
        "company": data["company"], "email": "; ".join(data["emails"]),
        "phone": "; ".join(data["phones"]), "street": address.get("street"),
        "postal_code": address.get("postal_code"), "city": address.get("city"),
        "country": address.get("country"), "birthday": data["birthday"],
        "tags": ", ".join(data["tags"]), "source": data["source"],
        "referred_by": data["referred_by"],
        "email_consent": "yes" if consent["email"] else "no",
        "consent_since": consent["since"], "consent_how": consent["how"],
        "preferred_channel": data["preferred_channel"], "locale": data["locale"],
        "stage": data["stage"], "notes": data["notes"],
        "services": flow([_service(s) for s in data["services"]]) if data["services"] else None,
        "aliases": ", ".join(data.get("aliases", ())),
    }
    for key, value in data.items():
        if key not in _SPREAD:
            cells[key] = ", ".join(map(str, value)) if isinstance(value, list) else value
    for key, value in data["fields"].items():
        cells[f"fields.{key}"] = _field_cell(value)
    return cells


def _field_cell(value: Any) -> str:
    """A free field's value so that import reads back the same value and type: plain
    text as it is when YAML reads it so, other text double-quoted, the rest as YAML."""
    import yaml  # lazily

    if isinstance(value, str):
        if value == "" or flow(value) != value:
            return yaml.safe_dump(value, default_style='"', allow_unicode=True,
                                  width=1 << 30).removesuffix("\n...\n").rstrip("\n")
        return value
    return flow(value)


def csv_rows(app: crmkit.App, customers: list[crmkit.CustomerView], derived: bool = True
             ) -> list[dict[str, Any]]:
    rows = []
    labels_of = app.labels() if derived else None
    for view in customers:
        row = customer_cells(view.customer)
        if labels_of is not None:
            d = view.derived
            labels = labels_of[view.id]
            row.update({
                "lifecycle": labels.get("lifecycle"), "abc": labels.get("abc"),
                "last_contact": d.last_contact.isoformat() if d.last_contact else None,
                "purchase_count": d.purchase_count, "revenue": f"{d.revenue:.2f}",
            })
        rows.append(row)
    return rows


def to_csv(rows: list[dict[str, Any]], delimiter: str, derived: bool = True) -> str:
    extra = sorted({k for row in rows for k in row} - set(CSV_COLUMNS),
                   key=lambda k: (k.startswith("fields."), k))
    columns = [*DATA_COLUMNS, *extra, *(DERIVED_COLUMNS if derived else ())]
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, delimiter=delimiter,
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
@click.option("--no-derived", "no_derived", is_flag=True,
              help="Only what the customer files hold (no lifecycle, revenue, segments): "
                   "'crmkit import' reads it back into the same files.")
@crmkit.pass_app(pure=lambda p: p["out"] is None)
def export_command(app: crmkit.App, fmt: str, segments: tuple[str, ...], tags: tuple[str, ...],
                   out: Path | None, delimiter: str, force: bool, no_derived: bool) -> None:
    """Export customers (all, or a segment or tag) as CSV, vCard or JSON."""
    known = {t for c in app.workspace.customers.values() for t in c.tags}
    for tag in tags:
        if tag not in known:  # a typo would export nobody, and say nothing
            raise crmkit.CrmkitError(_("no customer has the tag %(tag)s") % {"tag": repr(tag)}
                                     + crmkit.did_you_mean(tag, known))
    chosen = [c for c in app.customers(*segments) if all(t in c.customer.tags for t in tags)]
    if fmt == "csv":
        text = to_csv(csv_rows(app, chosen, not no_derived), delimiter, not no_derived)
    elif fmt == "vcard":
        text = to_vcard([c.customer for c in chosen])
    else:
        labels = None if no_derived else app.labels()
        buffer = io.StringIO()
        crmkit.echo_json([c.customer.to_json() if labels is None else
                          {**c.customer.to_json(), "derived": c.derived.to_json(),
                           "segments": labels[c.id]} for c in chosen], file=buffer)
        text = buffer.getvalue()
    if out is None or str(out) == "-":
        sys.stdout.write(text)
    else:
        app.write_named(out, text, force)
        click.echo(ngettext("wrote %(num)d customer to %(file)s",
                            "wrote %(num)d customers to %(file)s", len(chosen))
                   % {"num": len(chosen), "file": out}, err=True)
