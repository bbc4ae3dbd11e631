"""The stock importers: spreadsheets (CSV, XLSX), vCard, HubSpot and transactions.

Each reads its source into :class:`crmkit.ImportRow` values in crmkit's file
format; ``crmkit import`` (plugins/imports.py) matches, validates and writes
them.  German and English column headers are recognised; ``--map
column=field`` overrides.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import crmkit
from crmkit import Importer, ImportOptions, ImportRow

#: Normalised header → field. Normalised = lower case, letters and digits only.
HEADERS = {
    "name": ("name", "fullname", "vollstaendigername", "kunde", "kundenname", "anzeigename",
             "displayname"),
    "first_name": ("vorname", "firstname", "givenname", "first"),
    "last_name": ("nachname", "lastname", "surname", "familienname", "last"),
    "company": ("firma", "company", "companyname", "unternehmen", "organisation",
                "organization", "betrieb"),
    "email": ("email", "emailadresse", "mail", "emailaddress", "eposta"),
    "phone": ("telefon", "phone", "tel", "telefonnummer", "phonenumber", "festnetz"),
    "mobile": ("mobil", "mobile", "handy", "mobiltelefon", "mobilephonenumber",
               "mobilephone", "cell"),
    "birthday": ("geburtstag", "birthday", "geburtsdatum", "dateofbirth", "birthdate"),
    "street": ("strasse", "street", "adresse", "address", "streetaddress", "anschrift"),
    "postal_code": ("plz", "postleitzahl", "zip", "postalcode", "postcode", "zipcode"),
    "city": ("ort", "stadt", "city", "wohnort"),
    "country": ("land", "country", "countryregion"),
    "tags": ("tags", "schlagworte", "kategorie", "kategorien", "category", "categories",
             "gruppe", "groups"),
    "notes": ("notiz", "notizen", "bemerkung", "bemerkungen", "notes", "note", "kommentar"),
    "source": ("quelle", "source", "leadsource", "originalsource"),
    "id": ("id", "kundenid", "customerid"),
}
TRANSACTION_HEADERS = {
    "customer": ("kunde", "customer", "kundennummer", "customerid", "kundenid", "id",
                 "customernumber"),
    "customer_email": ("email", "emailadresse", "customeremail", "mail"),
    "customer_name": ("name", "kundenname", "customername"),
    "date": ("datum", "date", "belegdatum", "rechnungsdatum", "orderdate", "kaufdatum"),
    "amount": ("betrag", "amount", "umsatz", "total", "summe", "brutto", "gesamt", "price",
               "preis"),
    "item": ("artikel", "item", "product", "produkt", "beschreibung", "description",
             "leistung", "position"),
    "currency": ("waehrung", "currency"),
}
HUBSPOT_FIELDS = {
    "recordid": "hubspot_id", "firstname": "first_name", "lastname": "last_name",
    "email": "email", "phonenumber": "phone", "mobilephonenumber": "mobile",
    "companyname": "company", "streetaddress": "street", "city": "city",
    "postalcode": "postal_code", "countryregion": "country",
    "originalsource": "source", "lifecyclestage": "hubspot_lifecycle_stage",
    "createdate": "hubspot_create_date",
}
FIELDS = (*HEADERS, "ignore")


def normalise(header: str) -> str:
    text = header.casefold().translate(str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue",
                                                      "ß": "ss"}))
    return re.sub(r"[^a-z0-9]", "", text)


def decode(data: bytes, encoding: str | None) -> str:
    """UTF-8 (with or without BOM), else Windows-1252, as Excel writes it in Germany."""
    if encoding:
        return data.decode(encoding)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("cp1252")


def read_table(path: Path, options: ImportOptions) -> tuple[list[str], list[tuple[int, list[Any]]]]:
    """Headers and ``(row number, cells)`` of a CSV or XLSX file."""
    if path.suffix.lower() in (".xlsx", ".xlsm"):
        return _read_xlsx(path)
    text = decode(path.read_bytes(), options.encoding)
    delimiter = options.delimiter or _sniff(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    rows = [(n, cells) for n, cells in enumerate(reader, start=1) if any(c.strip() for c in cells)]
    if not rows:
        return [], []
    return [h.strip() for h in rows[0][1]], rows[1:]


def _sniff(text: str) -> str:
    sample = "\n".join(text.splitlines()[:20])
    try:
        return csv.Sniffer().sniff(sample, delimiters=";,\t|").delimiter
    except csv.Error:
        first = text.splitlines()[0] if text else ""
        return max(";,\t|", key=first.count)


def _read_xlsx(path: Path) -> tuple[list[str], list[tuple[int, list[Any]]]]:
    import openpyxl  # lazily: only spreadsheet imports need it

    book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    try:
        sheet = book.worksheets[0]
        # read every row there is: a <dimension> claiming one cell made 400,000 rows
        # "nothing to create" (read-only mode trusts it)
        sheet.reset_dimensions()
        rows = [(n, ["" if c is None else c for c in cells])
                for n, cells in enumerate(sheet.iter_rows(values_only=True), start=1)
                if any(c not in (None, "") for c in cells)]
    finally:
        book.close()
    if not rows:
        return [], []
    return [str(h).strip() for h in rows[0][1]], rows[1:]


def column_fields(headers: list[str], known: dict[str, tuple[str, ...]],
                  mapping: dict[str, str]) -> tuple[dict[int, str], list[str]]:
    """Which column holds which field; ``--map`` wins; returns also unknown headers."""
    lookup = {alias: field for field, aliases in known.items() for alias in aliases}
    fields: dict[int, str] = {}
    unknown = []
    overrides = {normalise(k): v for k, v in mapping.items()}
    for i, header in enumerate(headers):
        key = normalise(header)
        field = overrides.get(key) or lookup.get(key)
        if field and field != "ignore":
            if field not in fields.values():
                fields[i] = field
        elif not field:
            unknown.append(header)
    # German exports: "Vorname" + "Name" means "Name" is the family name.
    values = set(fields.values())
    if "first_name" in values and "name" in values and "last_name" not in values:
        for i, field in list(fields.items()):
            if field == "name" and normalise(headers[i]) not in overrides:
                fields[i] = "last_name"
    return fields, unknown


def parse_date(value: Any) -> dt.date | None:
    """ISO, German (31.12.1980) and slash dates (month first when unambiguous)."""
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):
        return value
    text = str(value).strip()
    if not text:
        return None
    for fmt in ("%Y-%m-%d", "%d.%m.%Y", "%d.%m.%y", "%Y%m%d", "%Y-%m-%dT%H:%M:%S",
                "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M"):
        try:
            return dt.datetime.strptime(text, fmt).date()
        except ValueError:
            continue
    if m := re.fullmatch(r"(\d{1,2})/(\d{1,2})/(\d{4})", text):
        a, b, year = (int(x) for x in m.groups())
        month, day = (b, a) if a > 12 else (a, b)
        try:
            return dt.date(year, month, day)
        except ValueError:
            return None
    return None


def parse_amount(value: Any) -> Decimal | None:
    """1.234,56 (German), 1,234.56 (English), 1234.56 and numbers from XLSX."""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return Decimal(str(value))
    text = re.sub(r"[^\d,.\-]", "", str(value))
    if not text:
        return None
    if "," in text and "." in text:
        decimal_sep = "," if text.rfind(",") > text.rfind(".") else "."
        thousands = "." if decimal_sep == "," else ","
        text = text.replace(thousands, "").replace(decimal_sep, ".")
    elif "," in text:
        head, _, tail = text.rpartition(",")
        text = text.replace(",", ".") if len(tail) in (1, 2) and "," not in head else \
            text.replace(",", "")
    try:
        return Decimal(text)
    except InvalidOperation:
        return None


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() if value is not None else ""


def customer_row(row: int, values: dict[str, Any], extra_fields: dict[str, Any] | None = None
                 ) -> ImportRow:
    """A customer file's data from named values (first_name, email, street, ...)."""
    problems = []
    first, last = _text(values.get("first_name")), _text(values.get("last_name"))
    name = _text(values.get("name")) or " ".join(p for p in (first, last) if p) or \
        _text(values.get("company"))
    data: dict[str, Any] = {}
    if not name:
        problems.append("no name (need a name, first and last name, or a company)")
    else:
        data["name"] = name
    if company := _text(values.get("company")):
        data["company"] = company
    emails = [e for e in re.split(r"[;,\s]+", _text(values.get("email"))) if e]
    if emails:
        data["email" if len(emails) == 1 else "emails"] = emails[0] if len(emails) == 1 \
            else emails
    phones = [p for p in (_text(values.get("phone")), _text(values.get("mobile"))) if p]
    if phones:
        data["phone" if len(phones) == 1 else "phones"] = phones[0] if len(phones) == 1 \
            else phones
    address = {k: _text(values.get(k)) for k in ("street", "postal_code", "city", "country")}
    if any(address.values()):
        data["address"] = {k: v for k, v in address.items() if v}
    if values.get("birthday") not in (None, ""):
        born = parse_date(values["birthday"])
        if born is None:
            problems.append(f"birthday {_text(values['birthday'])!r} is not a date")
        else:
            data["birthday"] = born
    tags = [t.strip() for t in re.split(r"[;,]", _text(values.get("tags"))) if t.strip()]
    if tags:
        data["tags"] = tags
    for key in ("source", "notes"):
        if text := _text(values.get(key)):
            data[key] = text
    if extra_fields:
        data["fields"] = {k: v for k, v in extra_fields.items() if v not in (None, "")}
    if values.get("id"):
        data["_id"] = _text(values["id"])
    return ImportRow(row, "customer", data, tuple(problems))


def read_spreadsheet(path: Path, options: ImportOptions) -> Iterator[ImportRow]:
    headers, rows = read_table(path, options)
    fields, _ = column_fields(headers, HEADERS, dict(options.mapping))
    if not any(f in fields.values() for f in ("name", "first_name", "last_name", "company")):
        raise crmkit.CrmkitError(
            f"{path.name}: no name column among {', '.join(headers) or 'no headers'}; "
            "map one with --map 'COLUMN=name'")
    for number, cells in rows:
        values = {field: cells[i] if i < len(cells) else "" for i, field in fields.items()}
        yield customer_row(number, values)


def read_hubspot(path: Path, options: ImportOptions) -> Iterator[ImportRow]:
    headers, rows = read_table(path, options)
    wanted = {i: HUBSPOT_FIELDS[normalise(h)] for i, h in enumerate(headers)
              if normalise(h) in HUBSPOT_FIELDS}
    if "email" not in wanted.values() and "last_name" not in wanted.values():
        raise crmkit.CrmkitError(f"{path.name} does not look like a HubSpot contacts export "
                                 "(no 'Email' or 'Last Name' column)")
    for number, cells in rows:
        values = {field: cells[i] if i < len(cells) else "" for i, field in wanted.items()}
        extra = {k: _text(values.pop(k, "")) for k in
                 ("hubspot_id", "hubspot_lifecycle_stage", "hubspot_create_date")}
        row = customer_row(number, values, extra)
        data = dict(row.data)
        data.setdefault("source", "hubspot")
        yield ImportRow(row.row, row.kind, data, row.problems)


def read_transactions(path: Path, options: ImportOptions) -> Iterator[ImportRow]:
    headers, rows = read_table(path, options)
    fields, _ = column_fields(headers, TRANSACTION_HEADERS, dict(options.mapping))
    found = set(fields.values())
    missing = [f for f in ("date", "amount") if f not in found]
    if not found & {"customer", "customer_email", "customer_name"}:
        missing.insert(0, "customer")
    if missing:
        raise crmkit.CrmkitError(f"{path.name}: no column for {', '.join(missing)} among "
                                 f"{', '.join(headers)}; map with --map 'COLUMN=FIELD'")
    for number, cells in rows:
        values = {field: cells[i] if i < len(cells) else "" for i, field in fields.items()}
        problems = []
        day = parse_date(values.get("date", ""))
        amount = parse_amount(values.get("amount", ""))
        if day is None:
            problems.append(f"date {_text(values.get('date'))!r} is not a date")
        if amount is None:
            problems.append(f"amount {_text(values.get('amount'))!r} is not a number")
        data: dict[str, Any] = {"date": day, "type": "purchase", "amount": amount}
        for key in ("customer", "customer_email", "customer_name"):
            if text := _text(values.get(key)):
                data[key] = text
        if item := _text(values.get("item")):
            data["items"] = [item]
        if currency := _text(values.get("currency")):
            data["currency"] = currency.upper()
        yield ImportRow(number, "interaction", data, tuple(problems))


def read_vcard(path: Path, options: ImportOptions) -> Iterator[ImportRow]:
    import vobject  # lazily: only vCard imports need it

    text = decode(path.read_bytes(), options.encoding)
    try:
        cards = list(vobject.readComponents(text, ignoreUnreadable=True))
    except Exception as exc:
        raise crmkit.CrmkitError(f"{path.name}: not a readable vCard file ({exc})") from None
    for number, card in enumerate(cards, start=1):
        if card.name != "VCARD":
            continue
        values: dict[str, Any] = {}
        if hasattr(card, "fn"):
            values["name"] = card.fn.value
        if hasattr(card, "n") and not values.get("name"):
            n = card.n.value
            values["first_name"], values["last_name"] = n.given, n.family
        if hasattr(card, "org"):
            org = card.org.value
            values["company"] = org[0] if isinstance(org, list) else org
        values["email"] = ",".join(e.value for e in card.contents.get("email", []))
        tels = [t.value for t in card.contents.get("tel", [])]
        values["phone"] = tels[0] if tels else ""
        values["mobile"] = tels[1] if len(tels) > 1 else ""
        if adrs := card.contents.get("adr"):
            adr = adrs[0].value
            values.update(street=adr.street, postal_code=adr.code, city=adr.city,
                          country=adr.country)
        if hasattr(card, "bday"):
            values["birthday"] = card.bday.value
        if hasattr(card, "note"):
            values["notes"] = card.note.value
        if hasattr(card, "categories"):
            values["tags"] = ",".join(card.categories.value)
        yield customer_row(number, values)


def rows_of(importer: Importer, path: Path, options: ImportOptions) -> Iterable[ImportRow]:
    return importer.read(path, options)


def importers() -> list[Importer]:
    """The stock importers."""
    return [
        Importer("csv", "A customer list as CSV (Excel's ';' and Windows-1252 included)",
                 read_spreadsheet, (".csv", ".txt")),
        Importer("xlsx", "A customer list as an Excel workbook (the first sheet)",
                 read_spreadsheet, (".xlsx", ".xlsm")),
        Importer("vcard", "Contacts as vCard 3.0 or 4.0 (phones, khard, vdirsyncer)",
                 read_vcard, (".vcf", ".vcard")),
        Importer("hubspot", "HubSpot's contacts export (CSV)", read_hubspot),
        Importer("transactions",
                 "Purchases as CSV: customer (id, email or name), date, amount, item",
                 read_transactions),
    ]
