"""The stock importers: spreadsheets (CSV, XLSX), vCard, HubSpot and transactions.

Each reads its source into :class:`crmkit.ImportRow` values in crmkit's file
format; ``crmkit import`` (plugins/imports.py) matches, validates and writes
them.  German and English column headers are recognised; ``--map
column=field`` overrides.
"""

from __future__ import annotations

import csv
import dataclasses
import datetime as dt
import io
import re
from collections.abc import Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import crmkit
from crmkit import Importer, ImportOptions, ImportRow


def _(message: str) -> str:
    """A row's problem or warning, shown by ``crmkit import``: in the terminal's language
    (LANG), as the rest of what the command says."""
    return crmkit.translations(terminal=True).gettext(message)

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
    # the rest of what `crmkit export csv` writes, so that its files come back whole
    "salutation": ("salutation", "briefanrede"),
    "referred_by": ("referredby", "empfohlenvon"),
    "email_consent": ("emailconsent", "emaileinwilligung", "einwilligungemail"),
    "consent_since": ("consentsince", "einwilligungseit"),
    "consent_how": ("consenthow", "einwilligungwie"),
    "preferred_channel": ("preferredchannel", "bevorzugterkanal"),
    "locale": ("locale", "sprache"),
    "stage": ("stage",),
    "services": ("services", "wartungsvertraege"),
    "aliases": ("aliases",),
    "owner": ("owner", "betreuer", "zustaendig"),
}
#: Free fields: a column ``fields.NAME`` (as `crmkit export csv` writes them).
FIELD_PREFIX = "fields."
#: Keys of a customer file that the columns above do not cover (a column named like one
#: is read as it is: what `crmkit export csv` writes for keys it has no column of its own
#: for, such as ``campaign``).
PASSTHROUGH = frozenset(f.name for f in dataclasses.fields(crmkit.Customer)) - {
    "id", "location", "locations", "emails", "phones", "address", "consent", "services",
    "fields", "tags", "aliases", *HEADERS}
#: A cell with the CSV formula guard's apostrophe (plugins/people/exports.py).
GUARDED = re.compile(r"^'+[=+\-@\t\r]")
YES = ("yes", "ja", "true", "1", "x", "y", "j", "wahr")
NO = ("no", "nein", "false", "0", "n", "falsch", "")
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
    rows = [(n, [unguard(c) for c in cells]) for n, cells in enumerate(reader, start=1)
            if any(c.strip() for c in cells)]
    if not rows:
        return [], []
    return [h.strip() for h in rows[0][1]], rows[1:]


def unguard(cell: str) -> str:
    """A cell without the apostrophe that CSV exports put before ``=``, ``+``, ``-``,
    ``@``, a tab or a carriage return (so spreadsheets do not run it as a formula), and
    before apostrophes in front of those (so that a text starting ``'=`` comes back)."""
    return cell[1:] if GUARDED.match(cell) else cell


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
        rows = []
        for n, cells in enumerate(sheet.iter_rows(), start=1):
            values = [_cell_value(c) for c in cells]
            if any(v not in (None, "") for v in values):
                rows.append((n, ["" if v is None else v for v in values]))
    finally:
        book.close()
    if not rows:
        return [], []
    return [str(h).strip() for h in rows[0][1]], rows[1:]


def _cell_value(cell: Any) -> Any:
    """A cell's value; a number shown with leading zeros (a number format such as
    ``00000``, Excel's postal code format) as that text."""
    value = getattr(cell, "value", None)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        fmt = getattr(cell, "number_format", "") or ""
        if re.fullmatch(r"0+", fmt) and float(value).is_integer():
            return str(int(value)).zfill(len(fmt))
    return value


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
        if field is None and "name" in known and (
                header in PASSTHROUGH or (header.startswith(FIELD_PREFIX)
                                          and len(header) > len(FIELD_PREFIX))):
            field = header  # a customer's free field, or a key read as it is
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
    """1.234,56 (German), 1,234.56 (English), 1234.56 and numbers from XLSX: the same
    rules as ``crmkit log --amount`` (:func:`crmkit.parse_amount`)."""
    return crmkit.parse_amount(value)


def _text(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip() if value is not None else ""


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


#: Words that make a name an organisation's (``Müller, Schmidt & Partner``, ``Krause,
#: GmbH``), and name suffixes (``Smith, Jr.``): such a name is left as written.
_NOT_A_PERSON = frozenset((
    "gmbh", "mbh", "ag", "kg", "ohg", "ug", "gbr", "ev", "eg", "se", "co", "und", "and",
    "partner", "partners", "ltd", "llc", "inc", "corp", "plc", "sa", "sarl", "bv", "nv",
    "jr", "sr", "ii", "iii", "iv", "phd", "md"))
_TITLES = frozenset(("dr", "prof", "herr", "frau", "mr", "mrs", "ms", "dipl", "ing"))
#: Words that begin a family name (``von der Heide, Anna``).
_PARTICLES = frozenset(("von", "van", "vom", "zu", "zum", "zur", "der", "den", "de", "da",
                        "di", "du", "del", "della", "le", "la", "ten", "ter", "mc", "mac"))
_NAME_WORD = re.compile(r"[^\W\d_][^\W\d_.'-]*(?:[.'-][^\W\d_]*)*\.?")


def person_name(name: str) -> str | None:
    """``First Last`` for a person's name written ``Last, First`` (``Müller, Anna`` →
    ``Anna Müller``, ``von der Heide, Dr. Eva`` → ``Dr. Eva von der Heide``); ``None``
    for anything else: no comma or more than one, a digit or ``&``, a word of a company
    (``GmbH``, ``Partner``) or a suffix (``Jr.``), a family name of more than one word
    that are not ``von``/``van``/``de``..., more than three given names."""
    if name.count(",") != 1:
        return None
    last, first = (" ".join(part.split()) for part in name.split(","))
    last_words, first_words = last.split(), first.split()
    if not last_words or not first_words or len(first_words) > 3:
        return None
    if not all(_NAME_WORD.fullmatch(w) for w in (*last_words, *first_words)):
        return None
    if {w.strip(".").replace(".", "").casefold() for w in (*last_words, *first_words)} \
            & _NOT_A_PERSON:
        return None
    if any(w.casefold() not in _PARTICLES for w in last_words[:-1]):
        return None
    if all(w.strip(".").casefold() in _TITLES for w in first_words):
        return None  # 'Meier, Dr.'
    return f"{first} {last}"


def _flow(text: str) -> Any:
    """A cell written as YAML flow (`crmkit export csv`'s services and free fields)."""
    import yaml  # lazily: only these cells need it

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(text, Loader=loader)  # a safe loader


def customer_row(row: int, values: dict[str, Any], extra_fields: dict[str, Any] | None = None
                 ) -> ImportRow:
    """A customer file's data from named values (first_name, email, street, ...).

    Only a row without any name is a problem; a single bad value (a birthday that is
    not a date) is left out with a warning (``data["_warnings"]``).  Phones and postal
    codes that were numbers in a spreadsheet are named in ``data["_numbers"]``: their
    leading zeros are gone, ``crmkit import`` restores them."""
    problems = []
    warnings: list[str] = []
    first, last = _text(values.get("first_name")), _text(values.get("last_name"))
    name = _text(values.get("name")) or " ".join(p for p in (first, last) if p) or \
        _text(values.get("company"))
    if name and name == _text(values.get("name")) and name != _text(values.get("company")) \
            and (turned := person_name(name)):
        # the id comes from the name: 'Müller, Anna' and 'Anna Müller' are one customer
        warnings.append(_("name %(written)s read as %(name)s (written 'Last, First')")
                        % {"written": repr(name), "name": repr(turned)})
        name = turned
    data: dict[str, Any] = {}
    numbers: list[str] = []
    if not name:
        problems.append(_("no name (need a name, first and last name, or a company)"))
    else:
        data["name"] = name
    if salutation := _text(values.get("salutation")):
        data["salutation"] = salutation
    if company := _text(values.get("company")):
        data["company"] = company
    emails = []
    for email in (e for e in re.split(r"[;,\s]+", _text(values.get("email"))) if e):
        if re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s.]+", email):
            emails.append(email)
        else:
            warnings.append(_("email %(value)s is not an email address, left out")
                            % {"value": repr(email)})
    if emails:
        data["email" if len(emails) == 1 else "emails"] = emails[0] if len(emails) == 1 \
            else emails
    phones = []
    for key in ("phone", "mobile"):
        value = values.get(key)
        if _is_number(value):
            numbers.append(f"phone:{len(phones)}")
            phones.append(_text(value))
        else:
            phones.extend(p.strip() for p in _text(value).split(";") if p.strip())
    if phones:
        data["phone" if len(phones) == 1 else "phones"] = phones[0] if len(phones) == 1 \
            else phones
    address = {k: _text(values.get(k)) for k in ("street", "postal_code", "city", "country")}
    if _is_number(values.get("postal_code")):
        numbers.append("postal_code")
    if any(address.values()):
        data["address"] = {k: v for k, v in address.items() if v}
    if values.get("birthday") not in (None, ""):
        born = parse_date(values["birthday"])
        if born is None:
            warnings.append(_("birthday %(value)s is not a date, left out")
                            % {"value": repr(_text(values["birthday"]))})
        else:
            data["birthday"] = born
    tags = [t.strip() for t in re.split(r"[;,]", _text(values.get("tags"))) if t.strip()]
    if tags:
        data["tags"] = tags
    for key in ("source", "referred_by", "preferred_channel", "locale", "stage", "owner",
                "notes", *(k for k in values if k in PASSTHROUGH)):
        if text := _text(values.get(key)):
            data[key] = text
    _consent(values, data, warnings)
    if text := _text(values.get("services")):
        try:
            services = _flow(text)
        except Exception:  # any YAML error: this one value is left out
            services = None
        if isinstance(services, list) and all(isinstance(s, dict) for s in services):
            data["services"] = services
        else:
            warnings.append(_("services %(value)s are not a list of services, left out")
                            % {"value": repr(text)})
    if aliases := [a for a in re.split(r"[;,\s]+", _text(values.get("aliases"))) if a]:
        data["aliases"] = aliases
    free = dict(extra_fields or {})
    for key, value in values.items():
        if key.startswith(FIELD_PREFIX) and value not in (None, ""):
            try:
                free[key[len(FIELD_PREFIX):]] = _flow(value) if isinstance(value, str) else value
            except Exception:  # not YAML: the text as it is
                free[key[len(FIELD_PREFIX):]] = value
    free = {k: v for k, v in free.items() if v not in (None, "")}
    if free:
        data["fields"] = free
    if values.get("id"):
        data["_id"] = _text(values["id"])
    if warnings:
        data["_warnings"] = warnings
    if numbers:
        data["_numbers"] = numbers
    return ImportRow(row, "customer", data, tuple(problems))


def _consent(values: dict[str, Any], data: dict[str, Any], warnings: list[str]) -> None:
    given = _text(values.get("email_consent")).casefold()
    since_text = values.get("consent_since")
    how = _text(values.get("consent_how"))
    if given not in YES and given not in NO:
        warnings.append(_("email consent %(value)s is neither yes nor no, left out")
                        % {"value": repr(given)})
        return
    consent: dict[str, Any] = {"email": given in YES}
    if since_text not in (None, ""):
        since = parse_date(since_text)
        if since is None:
            warnings.append(_("consent since %(value)s is not a date, left out")
                            % {"value": repr(_text(since_text))})
        else:
            consent["since"] = since
    if how:
        consent["how"] = how
    if consent["email"] or len(consent) > 1:
        data["consent"] = consent


def _overflow(cells: list[Any], headers: list[str]) -> tuple[str, ...]:
    """A row with more filled cells than the file has columns: its values have moved
    (a value with an unquoted delimiter), so none of them can be trusted."""
    extra = [c for c in cells[len(headers):] if str(c).strip()]
    if not extra:
        return ()
    return (_("%(values)d values but %(columns)d columns (a value with an unquoted "
              "delimiter?): the values would land in the wrong fields") % {
        "values": len(headers) + len(extra), "columns": len(headers)},)


def read_spreadsheet(path: Path, options: ImportOptions) -> Iterator[ImportRow]:
    headers, rows = read_table(path, options)
    fields, _unknown = column_fields(headers, HEADERS, dict(options.mapping))
    if not any(f in fields.values() for f in ("name", "first_name", "last_name", "company")):
        raise crmkit.CrmkitError(
            f"{path.name}: " + _("no name column among %(headers)s; map one with --map "
                                 "'COLUMN=name'") % {
                "headers": ", ".join(headers) or _("no headers")})
    for number, cells in rows:
        values = {field: cells[i] if i < len(cells) else "" for i, field in fields.items()}
        row = customer_row(number, values)
        yield ImportRow(row.row, row.kind, row.data, row.problems + _overflow(cells, headers))


def read_hubspot(path: Path, options: ImportOptions) -> Iterator[ImportRow]:
    headers, rows = read_table(path, options)
    wanted = {i: HUBSPOT_FIELDS[normalise(h)] for i, h in enumerate(headers)
              if normalise(h) in HUBSPOT_FIELDS}
    if "email" not in wanted.values() and "last_name" not in wanted.values():
        raise crmkit.CrmkitError(_(
            "%(file)s does not look like a HubSpot contacts export (no 'Email' or 'Last "
            "Name' column)") % {"file": path.name})
    for number, cells in rows:
        values = {field: cells[i] if i < len(cells) else "" for i, field in wanted.items()}
        extra = {k: _text(values.pop(k, "")) for k in
                 ("hubspot_id", "hubspot_lifecycle_stage", "hubspot_create_date")}
        row = customer_row(number, values, extra)
        data = dict(row.data)
        data.setdefault("source", "hubspot")
        yield ImportRow(row.row, row.kind, data, row.problems + _overflow(cells, headers))


def read_transactions(path: Path, options: ImportOptions) -> Iterator[ImportRow]:
    headers, rows = read_table(path, options)
    fields, _unknown = column_fields(headers, TRANSACTION_HEADERS, dict(options.mapping))
    found = set(fields.values())
    missing = [f for f in ("date", "amount") if f not in found]
    if not found & {"customer", "customer_email", "customer_name"}:
        missing.insert(0, "customer")
    if missing:
        raise crmkit.CrmkitError(f"{path.name}: " + _(
            "no column for %(missing)s among %(headers)s; map with --map 'COLUMN=FIELD'") % {
            "missing": ", ".join(missing), "headers": ", ".join(headers)})
    for number, cells in rows:
        values = {field: cells[i] if i < len(cells) else "" for i, field in fields.items()}
        problems = list(_overflow(cells, headers))
        day = parse_date(values.get("date", ""))
        amount = parse_amount(values.get("amount", ""))
        if day is None:
            problems.append(_("date %(value)s is not a date")
                            % {"value": repr(_text(values.get("date")))})
        if amount is None:
            problems.append(_("amount %(value)s is not a number")
                            % {"value": repr(_text(values.get("amount")))})
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
        raise crmkit.CrmkitError(f"{path.name}: " + _("not a readable vCard file "
                                                      "(%(error)s)") % {"error": exc}) from None
    for number, card in enumerate(cards, start=1):
        if card.name != "VCARD":
            continue
        values: dict[str, Any] = {}
        if hasattr(card, "fn"):
            values["name"] = card.fn.value
        if hasattr(card, "n"):
            n = card.n.value
            given, family = _text(n.given), _text(n.family)
            # 'FN:Müller, Anna' (the comma not escaped) reads as 'Müller': N has the rest
            if not _text(values.get("name")) or (
                    given and family and _text(values["name"]) == family):
                values.pop("name", None)
                values["first_name"], values["last_name"] = given, family
        if hasattr(card, "org"):
            org = card.org.value
            values["company"] = org[0] if isinstance(org, list) else org
        values["email"] = ",".join(e.value for e in card.contents.get("email", []))
        # vCard 4 writes a number as a URI (``tel:+49-3643-654321;ext=2``): the number
        tels = [_tel_number(t.value) for t in card.contents.get("tel", [])]
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


#: Keys of `crmkit export json` that are computed, not held in the customer's file.
JSON_DERIVED = ("id", "derived", "segments")


def read_json(path: Path, options: ImportOptions) -> Iterator[ImportRow]:
    """``crmkit export json``'s customers (derived values and segments are skipped)."""
    import json

    try:
        items = json.loads(decode(path.read_bytes(), options.encoding))
    except json.JSONDecodeError as exc:
        raise crmkit.CrmkitError(f"{path.name}:{exc.lineno}:{exc.colno}: not valid JSON "
                                 f"({exc.msg})") from None
    if not isinstance(items, list):
        raise crmkit.CrmkitError(f"{path.name}: " + _(
            "not a list of customers (as 'crmkit export json' writes them)"))
    for number, item in enumerate(items, start=1):
        if not isinstance(item, dict):
            yield ImportRow(number, "customer", {},
                            (_("entry %(num)d is not an object") % {"num": number},))
            continue
        yield ImportRow(number, "customer", *_customer_of_json(item))


def _customer_of_json(item: dict[str, Any]) -> tuple[dict[str, Any], tuple[str, ...]]:
    data: dict[str, Any] = {}
    for key, value in item.items():
        if key in JSON_DERIVED or value in (None, "", [], {}):
            continue
        if key in ("emails", "phones"):
            data[key[:-1] if len(value) == 1 else key] = value[0] if len(value) == 1 else value
        elif key == "address" and isinstance(value, dict):
            if address := {k: v for k, v in value.items() if v not in (None, "")}:
                data["address"] = address
        elif key == "consent" and isinstance(value, dict):
            consent = {k: v for k, v in value.items() if v is not None}
            if consent.get("email") or len(consent) > 1:
                data["consent"] = consent
        elif key == "services" and isinstance(value, list):
            data["services"] = [{k: v for k, v in s.items() if v is not None}
                                if isinstance(s, dict) else s for s in value]
        else:
            data[key] = value
    if isinstance(item.get("id"), str):
        data["_id"] = item["id"]
    problems = () if isinstance(item.get("name"), str) and item["name"].strip() else (
        _("no name"),)
    return data, problems


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
        Importer("json", "Customers as 'crmkit export json' writes them", read_json,
                 (".json",)),
        Importer("transactions",
                 "Purchases as CSV: customer (id, email or name), date, amount, item",
                 read_transactions),
    ]


def _tel_number(value: str) -> str:
    """The phone number of a vCard ``TEL`` value: vCard 4's ``tel:`` URI without the
    scheme and its parameters, vCard 3's text as it is."""
    text = value.strip()
    if text.lower().startswith("tel:"):
        text = text[4:].split(";", 1)[0]
    return text
