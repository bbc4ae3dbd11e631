"""The file formats: located YAML values in, model records and diagnostics out.

One function per file kind.  A field with a bad value is reported and left out;
a record missing what it cannot live without (a customer's name, an
interaction's date) is reported and skipped.  See docs/workspace-format.md.
"""

from __future__ import annotations

import array
import datetime as dt
import difflib
import re
import zoneinfo
from collections.abc import Callable, Container, Iterable, Iterator, Mapping
from decimal import Decimal, InvalidOperation
from types import MappingProxyType
from typing import Any

from ..model.diagnostics import Diagnostic, Location
from ..model.records import (
    Address,
    Consent,
    Customer,
    Deal,
    FollowUp,
    FrozenMap,
    Interaction,
    Interval,
    Item,
    Sender,
    Service,
    Settings,
    TeamMember,
)
from ..model.workspace import normal_output, output_problem
from .yamlsource import YamlList, YamlMap

ID_PATTERN = re.compile(r"^[a-z0-9](?:[a-z0-9-]*[a-z0-9])?$")
EMAIL_PATTERN = re.compile(r"^[^@\s<>,;:\"()\[\]\\]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
                           r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+$")
_INTERVAL = re.compile(r"^\s*(\d+)\s*(day|week|month|year)s?\s*$", re.IGNORECASE)
_PERCENT = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*%\s*$")

#: Amounts, prices and quantities are below this: a figure of 1e27 made every sum
#: overflow, and formatting 1e999999999 never ended.
MAX_NUMBER = Decimal(10) ** 12
#: The interaction types every workspace knows; ``crmkit.yaml``'s
#: ``interaction_types`` and the ``crmkit_interaction_types`` hook add more.
BASE_INTERACTION_TYPES = (
    "call", "email", "meeting", "visit", "purchase", "quote", "service", "complaint",
    "feedback", "support", "social", "message", "letter", "card", "note", "done", "snooze",
)
DIRECTIONS = ("inbound", "outbound")
PAYMENT_STATES = ("paid", "late", "open", "unpaid")
LOCALES = ("de", "en")
CUSTOMER_KEYS = (
    "name", "salutation", "company", "email", "emails", "phone", "phones", "address",
    "birthday", "tags",
    "source", "campaign", "referred_by", "consent", "preferred_channel", "locale", "stage", "notes",
    "services", "fields", "aliases", "owner",
)
INTERACTION_KEYS = (
    "customer", "date", "type", "channel", "direction", "summary", "amount", "currency",
    "items", "discount", "payment", "score", "service", "follow_up", "resolves", "until",
    "never", "by", "fields",
)
#: A reminder id: ``kind/customer/YYYY-MM-DD`` and, where a customer can have two of a
#: kind on one day, ``/occasion`` (docs/reminders.md).
REMINDER_ID = re.compile(r"^[A-Za-z0-9_.:-]+/[a-z0-9](?:[a-z0-9-]*[a-z0-9])?/"
                         r"\d{4}-\d{2}-\d{2}(?:/[a-z0-9][a-z0-9-]*)?$")
DEAL_KEYS = ("customer", "title", "stage", "value", "probability", "expected_close",
             "notes", "fields", "source", "campaign", "reason")
#: A deal's stage is one word; which words a workspace uses (and in what order) is
#: the stock ``pipeline`` plugin's setting, checked there.
DEAL_STAGE = re.compile(r"^[a-z][a-z0-9_-]*$")
SETTINGS_KEYS = ("business", "sender", "locale", "currency", "timezone", "output",
                 "disable_plugins", "interaction_types", "team")


def parse_amount(value: Any) -> Decimal | None:
    """An amount as people write it: ``1.600,00`` and ``1600,00`` (German), ``1,600.00``
    (English), ``1600``, with a currency sign or spaces around; a number (from Excel) as
    it is.  A single ``.`` or ``,`` followed by exactly three digits separates thousands
    (``1.600`` and ``1,600`` are 1600); ``1e6`` is a number too.  ``None`` if it is not
    a number."""
    if isinstance(value, (int, float, Decimal)) and not isinstance(value, bool):
        return Decimal(str(value))
    text = re.sub(r"[\s\u00a0\u202f']", "", str(value))
    if re.fullmatch(r"[+\-]?\d+(?:\.\d+)?[eE][+\-]?\d+", text):
        return Decimal(text)  # 1e27: a number (too large for an amount, as the caller says)
    text = re.sub(r"^[^\d,.+\-]+|[^\d,.]+$", "", text)  # €, EUR, $ before or after
    if not re.fullmatch(r"[+\-]?[\d.,]*\d[\d.,]*", text):
        return None
    sign = "-" if text.startswith("-") else ""
    text = text.lstrip("+-")
    if "," in text and "." in text:
        decimal_sep = "," if text.rfind(",") > text.rfind(".") else "."
        thousands = "." if decimal_sep == "," else ","
        head, _, tail = text.rpartition(decimal_sep)
        if decimal_sep in head or not re.fullmatch(r"\d{1,3}(?:" + re.escape(thousands)
                                                    + r"\d{3})*", head):
            return None
        text = head.replace(thousands, "") + "." + tail
    elif "," in text or "." in text:
        sep = "," if "," in text else "."
        head, _, tail = text.rpartition(sep)
        if text.count(sep) > 1 or len(tail) == 3:
            if not re.fullmatch(r"\d{1,3}(?:" + re.escape(sep) + r"\d{3})+", text):
                return None
            text = text.replace(sep, "")
        else:
            text = f"{head or '0'}.{tail}"
    try:
        number = Decimal(sign + text)
    except InvalidOperation:
        return None
    return number if number.is_finite() else None


def close_match(word: str, choices: Iterable[str]) -> str | None:
    """The choice ``word`` is a typo or an abbreviation of, if any."""
    options = sorted(choices)
    close = difflib.get_close_matches(word, options, n=1, cutoff=0.7)
    if not close and len(word) >= 3:
        close = ([o for o in options if o.startswith(word)]
                 or [o for o in options if word in o])[:1]
    return close[0] if close else None


def did_you_mean(word: str, choices: Iterable[str], locale: str | None = None) -> str:
    """A hint for typos and abbreviations: ``" (did you mean 'anna-mueller'?)"``,
    ``" (meinten Sie 'anna-mueller'?)"`` or ``""``; in ``locale``'s language, by default
    the terminal's (a command's message).  A diagnostic passes ``"en"``: diagnostics
    are English whatever the terminal speaks (editors and CI read them, and the
    caches keep them)."""
    close = close_match(word, choices)
    if close is None:
        return ""
    from ..engine.i18n import translations

    t = translations(locale) if locale else translations(terminal=True)
    return " " + t.gettext("(did you mean %(choice)s?)") % {"choice": repr(close)}


def hint(word: str, choices: Iterable[str]) -> str:
    """:func:`did_you_mean` in English, for diagnostics."""
    return did_you_mean(word, choices, "en")


def is_valid_email(address: str) -> bool:
    return bool(EMAIL_PATTERN.match(address)) and len(address) <= 254


class Fields:
    """Typed access to one YAML mapping that reports bad values as diagnostics."""

    def __init__(self, data: YamlMap, path: str, out: list[Diagnostic]) -> None:
        self.data = data
        self.path = path
        self.out = out

    def loc(self, key: str | None = None) -> Location:
        line, col = self.data.marks.get(key, self.data.start) if key else self.data.start
        return Location(self.path, line, col)

    def locations(self) -> Mapping[str, Location]:
        return Marks(self.path, self.data.marks)

    def error(self, key: str | None, message: str) -> None:
        self.out.append(Diagnostic.error(message, self.loc(key)))

    def warning(self, key: str | None, message: str) -> None:
        self.out.append(Diagnostic.warning(message, self.loc(key)))

    def check_keys(self, allowed: Iterable[str], what: str) -> None:
        allowed = tuple(allowed)
        known = _KEY_SETS.get(allowed)
        if known is None:
            known = _KEY_SETS[allowed] = frozenset(allowed)
        for key in self.data:
            if key not in known:
                line, col = self.data.key_marks.get(key, self.data.start)
                self.out.append(Diagnostic.error(
                    f"unknown field {key!r} in {what}{hint(str(key), allowed)}",
                    Location(self.path, line, col)))

    def present(self, key: str) -> bool:
        return self.data.get(key) is not None

    def text(self, key: str, required: bool = False) -> str | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.error(None, f"missing required field {key!r}")
            return None
        if isinstance(value, (dict, list)):
            self.error(key, f"{key!r} must be text, not a {_kind(value)}")
            return None
        if isinstance(value, bool):
            return "true" if value else "false"
        text = str(value).strip()
        if not text and required:
            self.error(key, f"{key!r} must not be empty")
            return None
        return text or None

    def choice(self, key: str, choices: Iterable[str]) -> str | None:
        value = self.text(key)
        choices = tuple(choices)
        if value is not None and value not in choices:
            self.error(key, f"{key!r} must be one of {', '.join(choices)}, not {value!r}"
                       f"{hint(value, choices)}")
            return None
        return value

    def date(self, key: str, required: bool = False) -> dt.date | None:
        value = self.data.get(key)
        if value is None:
            if required:
                self.error(None, f"missing required field {key!r}")
            return None
        return self.as_date(key, value)

    def as_date(self, key: str, value: Any) -> dt.date | None:
        if isinstance(value, dt.datetime):
            return value.date()
        if isinstance(value, dt.date):
            return value
        if isinstance(value, str):
            try:
                return dt.date.fromisoformat(value.strip())
            except ValueError as exc:
                self.error(key, f"{key!r}: {value!r} is not a valid date ({exc})")
                return None
        self.error(key, f"{key!r}: {value!r} is not a date (write YYYY-MM-DD)")
        return None

    def decimal(self, key: str) -> Decimal | None:
        value = self.data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            self.error(key, f"{key!r} must be a number, not {value!r}")
            return None
        try:
            number = Decimal(str(value).strip().replace("_", ""))
        except InvalidOperation:
            self.error(key, f"{key!r} must be a number, not {value!r}")
            return None
        if not number.is_finite():
            self.error(key, f"{key!r} must be a finite number")
            return None
        if number.copy_abs() >= MAX_NUMBER:  # copy_abs: no context, no overflow
            self.error(key, f"{key!r}: {value!r} is too large (at most {MAX_NUMBER - 1:,})")
            return None
        return number

    def text_list(self, key: str, single: str | None = None) -> tuple[str, ...]:
        """A list of strings under ``key`` (a single string is accepted too)."""
        value = self.data.get(key)
        if value is None and single is not None:
            value = self.data.get(single)
            key = single
        if value is None:
            return ()
        if isinstance(value, (str, int)) and not isinstance(value, bool):
            return (str(value).strip(),)
        if not isinstance(value, list):
            self.error(key, f"{key!r} must be a list of text")
            return ()
        items: list[str] = []
        for index, item in enumerate(value):
            if isinstance(item, (dict, list)) or item is None:
                line, col = value.marks[index] if isinstance(value, YamlList) else self.data.start
                self.out.append(Diagnostic.error(
                    f"{key!r}: item {index + 1} must be text", Location(self.path, line, col)))
                continue
            items.append(str(item).strip())
        return tuple(items)

    def mapping(self, key: str) -> YamlMap | None:
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, YamlMap):
            self.error(key, f"{key!r} must be a mapping (key: value lines)")
            return None
        return value

    def sub(self, key: str) -> Fields | None:
        value = self.mapping(key)
        return Fields(value, self.path, self.out) if value is not None else None

    def free(self, key: str = "fields") -> FrozenMap:
        value = self.mapping(key)
        return FrozenMap(value) if value else FrozenMap()


#: The allowed keys of each kind of record, as sets (checked for 100,000s of records).
_KEY_SETS: dict[tuple[str, ...], frozenset[str]] = {}
#: One tuple per order of keys: records written alike share it (also in the parse cache).
_KEY_ORDERS: dict[tuple[Any, ...], tuple[Any, ...]] = {}


class Marks(Mapping[str, Location]):
    """Where each field's value is written; ``Location`` objects are made on demand.

    Stored compactly (the keys as a tuple shared by records written alike, the lines
    and columns as bytes): a cold load unpickles 100,000 of them from the workers."""

    __slots__ = ("_keys", "_path", "_places")

    def __init__(self, path: str, marks: Mapping[Any, tuple[int, int]]) -> None:
        keys = tuple(marks)
        if len(_KEY_ORDERS) > 10_000:
            _KEY_ORDERS.clear()
        self._keys = _KEY_ORDERS.setdefault(keys, keys)
        self._path = path
        self._places = array.array("I", [n for place in marks.values() for n in place]
                                   ).tobytes()

    def __getitem__(self, key: str) -> Location:
        try:
            index = self._keys.index(key)
        except ValueError:
            raise KeyError(key) from None
        places = array.array("I")
        places.frombytes(self._places)
        return Location(self._path, places[2 * index], places[2 * index + 1])

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __eq__(self, other: object) -> bool:
        if type(other) is Marks:
            return (self._keys == other._keys and self._places == other._places
                    and self._path == other._path)
        return super().__eq__(other)

    __hash__ = None  # type: ignore[assignment]

    def __reduce__(self) -> tuple[Any, ...]:
        return (_marks, (self._path, self._keys, self._places))


def _marks(path: str, keys: tuple[Any, ...], places: bytes) -> Marks:
    marks = Marks.__new__(Marks)
    marks._path, marks._keys, marks._places = path, keys, places
    return marks


def _kind(value: Any) -> str:
    return "list" if isinstance(value, list) else "mapping" if isinstance(value, dict) else "value"


def top_mapping(data: Any, path: str, what: str, out: list[Diagnostic]) -> YamlMap | None:
    if isinstance(data, YamlMap):
        return data
    if data is None:
        out.append(Diagnostic.error(f"empty file: expected {what}", Location(path, 1, 1)))
    else:
        start = getattr(data, "start", (1, 1))
        out.append(Diagnostic.error(f"expected {what} (key: value lines), found a {_kind(data)}",
                                    Location(path, *start)))
    return None


def parse_interval(text: str) -> Interval | None:
    match = _INTERVAL.match(text)
    if not match or int(match.group(1)) <= 0:
        return None
    return Interval(int(match.group(1)), match.group(2).lower() + "s")


def _emails(f: Fields) -> tuple[str, ...]:
    key = "emails" if f.present("emails") else "email"
    emails = f.text_list("emails", single="email")
    good = []
    for email in emails:
        if is_valid_email(email):
            good.append(email)
        else:
            f.error(key, f"{email!r} is not a valid email address")
    return tuple(good)


def _services(f: Fields) -> tuple[Service, ...]:
    value = f.data.get("services")
    if value is None:
        return ()
    if not isinstance(value, YamlList):
        f.error("services", "'services' must be a list of contracts (name, interval, start)")
        return ()
    services = []
    for index, raw in enumerate(value):
        if not isinstance(raw, YamlMap):
            line, col = value.marks[index]
            f.out.append(Diagnostic.error(
                f"services: item {index + 1} must be a mapping with name and interval",
                Location(f.path, line, col)))
            continue
        s = Fields(raw, f.path, f.out)
        s.check_keys(("name", "interval", "start", "notes"), "a service")
        name = s.text("name", required=True)
        interval_text = s.text("interval", required=True)
        interval = parse_interval(interval_text) if interval_text else None
        if interval_text and interval is None:
            s.error("interval", f"'interval': {interval_text!r} is not an interval "
                    "(write e.g. '12 months', '2 years', '90 days')")
        start = s.date("start")
        if name and interval:
            services.append(Service(name, interval, start, s.text("notes")))
    return tuple(services)


def parse_customer(data: Any, path: str, customer_id: str,
                   out: list[Diagnostic]) -> Customer | None:
    raw = top_mapping(data, path, "a customer mapping", out)
    if raw is None:
        return None
    f = Fields(raw, path, out)
    f.check_keys(CUSTOMER_KEYS, "a customer")
    name = f.text("name", required=True)
    if f.present("email") and f.present("emails"):
        f.error("emails", "use either 'email' or 'emails', not both")
    address = None
    if (a := f.sub("address")) is not None:
        a.check_keys(("street", "postal_code", "city", "country"), "an address")
        address = Address(a.text("street"), a.text("postal_code"), a.text("city"),
                          a.text("country"))
    consent = Consent()
    if (c := f.sub("consent")) is not None:
        c.check_keys(("email", "since", "how"), "consent")
        email_ok = c.data.get("email", False)
        if not isinstance(email_ok, bool):
            c.error("email", "'consent.email' must be true or false")
            email_ok = False
        consent = Consent(email_ok, c.date("since"), c.text("how"))
        if email_ok and consent.since is None:
            c.warning(None, "email consent without 'since': record when it was given")
    referred_by = f.text("referred_by")
    if referred_by and not ID_PATTERN.match(referred_by):
        f.error("referred_by", f"'referred_by': {referred_by!r} is not a customer id")
        referred_by = None
    aliases = f.text_list("aliases")
    for alias in aliases:
        if not ID_PATTERN.match(alias) or alias == customer_id:
            f.error("aliases", f"'aliases': {alias!r} is not another customer id")
    aliases = tuple(a for a in aliases if ID_PATTERN.match(a) and a != customer_id)
    rest = dict(
        salutation=f.text("salutation"),
        company=f.text("company"),
        emails=_emails(f),
        phones=f.text_list("phones", single="phone"),
        birthday=f.date("birthday"),
        tags=f.text_list("tags"),
        source=f.text("source"),
        campaign=f.text("campaign"),
        owner=f.text("owner"),
        preferred_channel=f.text("preferred_channel"),
        locale=f.choice("locale", LOCALES),
        stage=f.text("stage"),
        notes=f.text("notes"),
        services=_services(f),
        fields=f.free(),
    )
    if name is None:
        return None
    return Customer(id=customer_id, name=name, location=Location(path, 1, 1), address=address,
                    referred_by=referred_by, consent=consent, locations=f.locations(),
                    aliases=aliases, **rest)


def _when(f: Fields, tz: dt.tzinfo) -> tuple[dt.date | None, dt.datetime | None]:
    value = f.data.get("date")
    if value is None:
        f.error(None, "missing required field 'date'")
        return None, None
    if isinstance(value, str):
        try:
            value = dt.datetime.fromisoformat(value.strip()) if ("T" in value or ":" in value) \
                else dt.date.fromisoformat(value.strip())
        except ValueError as exc:
            f.error("date", f"'date': {value!r} is not a valid date or time ({exc})")
            return None, None
    if isinstance(value, dt.datetime):
        at = value.replace(tzinfo=tz) if value.tzinfo is None else value.astimezone(tz)
        return at.date(), at
    if isinstance(value, dt.date):
        return value, None
    f.error("date", f"'date': {value!r} is not a date (write YYYY-MM-DD)")
    return None, None


def _items(f: Fields) -> tuple[Item, ...]:
    value = f.data.get("items")
    if value is None:
        return ()
    if isinstance(value, str):
        return (Item(value),)
    if not isinstance(value, YamlList):
        f.error("items", "'items' must be a list")
        return ()
    items = []
    for index, raw in enumerate(value):
        if isinstance(raw, YamlMap):
            i = Fields(raw, f.path, f.out)
            i.check_keys(("name", "quantity", "price"), "an item")
            name = i.text("name", required=True)
            if name:
                items.append(Item(name, i.decimal("quantity") or Decimal(1), i.decimal("price")))
        elif raw is not None and not isinstance(raw, list):
            items.append(Item(str(raw)))
        else:
            line, col = value.marks[index]
            f.out.append(Diagnostic.error(f"items: item {index + 1} must be text or a mapping",
                                          Location(f.path, line, col)))
    return tuple(items)


def _follow_up(f: Fields) -> FollowUp | None:
    value = f.data.get("follow_up")
    if value is None:
        return None
    if isinstance(value, YamlMap):
        s = Fields(value, f.path, f.out)
        s.check_keys(("date", "what"), "a follow_up")
        day = s.date("date", required=True)
        return FollowUp(day, s.text("what")) if day else None
    day = f.as_date("follow_up", value)
    return FollowUp(day) if day else None


def parse_interaction(data: Any, path: str, out: list[Diagnostic], known_types: frozenset[str],
                      tz: dt.tzinfo, currency: str,
                      customers: Container[str] | None = None,
                      dropped: list[tuple[str, Location]] | None = None) -> Interaction | None:
    """One interaction; with ``customers`` given, an unknown customer id is an error.

    An interaction too broken to use but naming a customer is added to ``dropped``,
    so the customer reference can still be checked later.
    """
    raw = top_mapping(data, path, "an interaction mapping", out)
    if raw is None:
        return None
    f = Fields(raw, path, out)
    f.check_keys(INTERACTION_KEYS, "an interaction")
    customer = f.text("customer", required=True)
    if customer is not None and customers is not None and customer not in customers:
        f.error("customer", f"unknown customer {customer!r}{hint(customer, customers)}")
        customer = None
    day, at = _when(f, tz)
    kind = f.text("type", required=True)
    if kind is not None and kind not in known_types:
        f.error("type", f"unknown interaction type {kind!r}{hint(kind, known_types)}"
                " (add it to 'interaction_types' in crmkit.yaml if it is yours)")
        kind = None
    amount = f.decimal("amount")
    if amount is not None and amount < 0 and kind != "purchase":
        f.warning("amount", "negative amount")
    discount = f.decimal("discount")
    if discount is not None and not 0 <= discount <= 100:
        f.error("discount", "'discount' is a percentage between 0 and 100")
        discount = None
    score = None
    if f.present("score"):
        value = f.data["score"]
        if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 10:
            score = value
        else:
            f.error("score", f"'score' must be a whole number from 0 to 10, not {value!r}")
    rest = dict(channel=f.text("channel"), direction=f.choice("direction", DIRECTIONS),
                summary=f.text("summary"), items=_items(f),
                payment=f.choice("payment", PAYMENT_STATES), service=f.text("service"),
                follow_up=_follow_up(f), by=f.text("by"), fields=f.free(),
                **_resolution(f, kind, customer))
    if customer is None or day is None or kind is None:
        if customer is not None and dropped is not None:
            dropped.append((customer, f.loc("customer")))
        return None
    return Interaction(
        customer=customer,
        date=day,
        type=kind,
        location=Location(path, *raw.start),
        at=at,
        amount=amount,
        currency=f.text("currency") or (currency if amount is not None else None),
        discount=discount,
        score=score,
        locations=f.locations(),
        **rest,
    )


def _is_date(text: str) -> bool:
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


_NOTHING_SETTLED: Mapping[str, Any] = MappingProxyType(
    {"resolves": (), "until": None, "never": False})


def _resolution(f: Fields, kind: str | None, customer: str | None) -> Mapping[str, Any]:
    """``resolves``, ``until`` and ``never``: which reminders this record settles."""
    data = f.data
    if kind not in ("done", "snooze") and "resolves" not in data and "until" not in data \
            and "never" not in data:
        return _NOTHING_SETTLED  # nearly every interaction: parsed 100,000s of times
    resolves = f.text_list("resolves")
    raw = f.data.get("resolves")
    bad = False
    for index, rid in enumerate(resolves):
        line, col = (raw.marks[index] if isinstance(raw, YamlList)
                     else f.data.marks.get("resolves", f.data.start))
        problem = None
        if not REMINDER_ID.match(rid) or not _is_date(rid.split("/")[2]):
            problem = (f"'resolves': item {index + 1}, {rid!r}, is not a reminder id "
                       "(kind/customer/YYYY-MM-DD, as `crmkit reminders` shows it)")
        elif customer is not None and rid.split("/")[1] != customer:
            problem = (f"'resolves': {rid!r} is a reminder of {rid.split('/')[1]!r}, "
                       f"not of this interaction's customer {customer!r}")
        if problem:  # every bad item is reported; none of them settles anything
            f.out.append(Diagnostic.error(problem, Location(f.path, line, col)))
            bad = True
    if bad:
        resolves = ()
    until = f.date("until")
    never = False
    if f.present("never"):
        value = f.data["never"]
        if isinstance(value, bool):
            never = value
        else:
            f.error("never", f"'never' must be true or false, not {value!r}")
    if kind in ("done", "snooze") and not resolves and "resolves" not in f.data:
        f.error(None, f"a {kind!r} record needs 'resolves': the reminder ids it settles")
    if kind == "snooze" and until is None and "until" not in f.data:
        f.error(None, "a 'snooze' record needs 'until': the day its reminders come back")
    day = f.data.get("date")
    if kind == "snooze" and until is not None and isinstance(day, dt.date) \
            and until <= (day.date() if isinstance(day, dt.datetime) else day):
        f.error("until", f"'until' ({until.isoformat()}) must be after the snooze's date")
        until = None
    if until is not None and kind != "snooze":
        f.warning("until", "'until' only means something on a 'snooze' record")
    if never and kind != "done":
        f.warning("never", "'never' only means something on a 'done' record")
    return {"resolves": resolves, "until": until, "never": never}


def parse_interactions(data: Any, path: str, out: list[Diagnostic], known_types: frozenset[str],
                       tz: dt.tzinfo, currency: str,
                       customers: Container[str] | None = None,
                       dropped: list[tuple[str, Location]] | None = None) -> list[Interaction]:
    """A file below ``interactions/`` holds one interaction or a list of them."""
    if isinstance(data, YamlList):
        parsed = (parse_interaction(item, path, out, known_types, tz, currency, customers,
                                    dropped) if
                  isinstance(item, YamlMap) else _not_mapping(path, data.marks[i], out)
                  for i, item in enumerate(data))
        return [i for i in parsed if i is not None]
    one = parse_interaction(data, path, out, known_types, tz, currency, customers, dropped)
    return [one] if one else []


def _not_mapping(path: str, mark: tuple[int, int], out: list[Diagnostic]) -> None:
    out.append(Diagnostic.error("list item must be an interaction mapping",
                                Location(path, *mark)))


def _probability(f: Fields) -> Decimal | None:
    value = f.data.get("probability")
    if value is None:
        return None
    if isinstance(value, str) and (m := _PERCENT.match(value)):
        number = Decimal(m.group(1)) / 100
    else:
        number = f.decimal("probability")
        if number is None:
            return None
    if not 0 <= number <= 1:
        f.error("probability", "'probability' must be between 0 and 1 (or '0%' to '100%')")
        return None
    return number


def parse_deal(data: Any, path: str, deal_id: str, out: list[Diagnostic]) -> Deal | None:
    raw = top_mapping(data, path, "a deal mapping", out)
    if raw is None:
        return None
    f = Fields(raw, path, out)
    f.check_keys(DEAL_KEYS, "a deal")
    customer = f.text("customer", required=True)
    title = f.text("title", required=True)
    if customer is None or title is None:
        return None
    stage = f.text("stage")
    if stage is not None and not DEAL_STAGE.match(stage):
        f.error("stage", f"'stage' must be one word in lower case (a stage of the "
                         f"pipeline), not {stage!r}")
        stage = None
    return Deal(
        id=deal_id, customer=customer, title=title, location=Location(path, 1, 1),
        stage=stage or "open",
        value=f.decimal("value"), probability=_probability(f),
        expected_close=f.date("expected_close"), notes=f.text("notes"),
        fields=f.free(), locations=f.locations(), source=f.text("source"),
        campaign=f.text("campaign"), reason=f.text("reason"),
    )


def time_zone(name: str) -> zoneinfo.ZoneInfo | None:
    """The IANA time zone ``name``, or ``None`` if there is no such zone."""
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        return None


#: The business name heads every report, calendar and email: one line, this long at most.
MAX_BUSINESS = 200
_LINE_BREAK_OR_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _team(f: Fields) -> tuple[TeamMember, ...]:
    """``team``: names, or mappings of ``name`` and ``email`` (docs/team.md)."""
    value = f.data.get("team")
    if value is None:
        return ()
    if not isinstance(value, YamlList):
        f.error("team", "'team' must be a list of names, or of 'name' and 'email' "
                        "mappings")
        return ()
    members: list[TeamMember] = []
    for i, item in enumerate(value):
        where = Location(f.path, *value.marks[i])
        if isinstance(item, YamlMap):
            m = Fields(item, f.path, f.out)
            m.check_keys(("name", "email"), "a team member")
            name, email = m.text("name", required=True), m.text("email")
            if email and not is_valid_email(email):
                m.error("email", f"{email!r} is not a valid email address")
                email = None
        elif isinstance(item, str) and item.strip():
            name, email = item.strip(), None
        else:
            f.out.append(Diagnostic.error(
                f"a team member is a name or a mapping with 'name', not {item!r}", where))
            continue
        if name is None:
            continue
        if any(name.casefold() == other.name.casefold() for other in members):
            f.out.append(Diagnostic.error(f"{name!r} is in the team twice", where))
            continue
        members.append(TeamMember(" ".join(name.split()), email))
    return tuple(members)


def parse_settings(data: Any, path: str, out: list[Diagnostic],
                   plugin_sections: Callable[[], Iterable[str]] | None = None) -> Settings:
    """Read ``crmkit.yaml``.  Plugin-owned sections are kept as written for their plugins;
    with ``plugin_sections=None`` every other top-level key counts as one."""
    raw = top_mapping(data, path, "a settings mapping", out)
    if raw is None:
        return Settings(business="(unnamed)", location=Location(path, 1, 1))
    f = Fields(raw, path, out)
    owned = set(plugin_sections() if plugin_sections else ())
    sections = {}
    for key in raw:
        if key in SETTINGS_KEYS:
            continue
        if key in owned or plugin_sections is None:  # None: before plugins declared theirs
            sections[key] = raw[key]
        else:
            line, col = raw.key_marks[key]
            out.append(Diagnostic.error(
                f"unknown setting {key!r}{hint(str(key), (*SETTINGS_KEYS, *owned))}",
                Location(path, line, col)))
    sender = None
    if (s := f.sub("sender")) is not None:
        s.check_keys(("name", "email", "phone"), "sender")
        name, email = s.text("name", required=True), s.text("email", required=True)
        if email and not is_valid_email(email):
            s.error("email", f"{email!r} is not a valid email address")
            email = None
        if name and email:
            sender = Sender(name, email, s.text("phone"))
    timezone = f.text("timezone") or "UTC"
    if time_zone(timezone) is None:
        f.error("timezone", f"unknown time zone {timezone!r} (use an IANA name such as "
                "'Europe/Berlin')")
        timezone = "UTC"
    currency = f.text("currency") or "EUR"
    if not re.fullmatch(r"[A-Z]{3}", currency):
        f.error("currency", f"'currency' must be a three-letter ISO code such as EUR, "
                f"not {currency!r}")
        currency = "EUR"
    output = f.text("output") or "out"
    if (problem := output_problem(output)) is not None:
        f.error("output", problem)  # kept as written: Workspace.output_dir refuses it
    else:
        output = normal_output(output)
    business = f.text("business", required=True)
    if business is not None and (len(business) > MAX_BUSINESS
                                 or _LINE_BREAK_OR_CONTROL.search(business)):
        f.error("business", f"'business' must be one line of at most {MAX_BUSINESS} "
                "characters, without line breaks or control characters (it heads reports, "
                "calendars and emails)")
        business = None
    return Settings(
        team=_team(f),
        business=business or "(unnamed)",
        sender=sender,
        locale=f.choice("locale", LOCALES) or "en",
        currency=currency,
        timezone=timezone,
        output=output,
        disable_plugins=f.text_list("disable_plugins"),
        interaction_types=f.text_list("interaction_types"),
        sections=MappingProxyType(sections),
        location=Location(path, 1, 1),
        locations=f.locations(),
    )
