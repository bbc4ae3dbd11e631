"""Recognising the same person: normalised emails, phone numbers and names.

Used by ``crmkit import`` (does this row match an existing customer?) and
``crmkit duplicates``.  A *match* is certain enough to leave a row out: the same
email, or the same phone and a similar name.  Anything weaker (a shared phone alone:
a household, a company's switchboard; the same or a similar name at the same
address; the same name with no differing addresses) is a *possible* match, shown with
its evidence.  Fuzzy name comparison
only happens within the same postal code or town, so the work stays linear-ish in
the number of customers.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import crmkit
from crmkit import Customer

SIMILAR_NAME = 0.88
_TITLES = {"dr", "prof", "herr", "frau", "mr", "mrs", "ms", "dipl", "ing"}
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def _(message: str) -> str:
    """The evidence of a match, shown by ``crmkit import`` and ``crmkit duplicates``: in the
    terminal's language (LANG)."""
    return crmkit.translations(terminal=True).gettext(message)


def email_key(email: str) -> str:
    return email.strip().casefold()


def phone_key(phone: str) -> str | None:
    """The last 9 digits, so +49 3643 812345, 0049 3643 812345 and 03643 812345 agree."""
    digits = re.sub(r"\D", "", phone)
    return digits[-9:] if len(digits) >= 6 else None


def name_words(name: str) -> list[str]:
    """The words of a name, lower case, umlauts spelled out, titles left out."""
    text = unicodedata.normalize("NFKD", name.casefold().translate(_UMLAUTS))
    text = text.encode("ascii", "ignore").decode()
    return [w for w in re.split(r"[^a-z0-9]+", text) if w and w not in _TITLES]


def name_key(name: str) -> str:
    return " ".join(sorted(name_words(name)))


def _same_word(a: str, b: str, ratio: float) -> bool:
    return a == b or difflib.SequenceMatcher(None, a, b).ratio() >= ratio


def similar_names(a: str, b: str) -> bool:
    """Whether two names are probably one person's: the same words (in any order), one
    name's words all in the other's (a middle name, a title), or the same first and last
    name but for a typo or an initial (``J. Weiß``, ``Jürgen Weiss``).  ``Jan`` and
    ``Jana``, or ``Anke`` and ``Jörg`` with one family name, are not."""
    wa, wb = name_words(a), name_words(b)
    if not wa or not wb:
        return False
    if sorted(wa) == sorted(wb):
        return True
    short, long = sorted((wa, wb), key=len)
    if len(short) >= 2 and set(short) <= set(long):
        return True
    if len(wa) >= 2 and len(wb) >= 2:
        for first_a, last_a in ((wa[0], wa[-1]), (wa[-1], wa[0])):
            first_b, last_b = wb[0], wb[-1]
            initial = (len(first_a) == 1 or len(first_b) == 1) and first_a[0] == first_b[0]
            if _same_word(last_a, last_b, 0.8) and (initial or _same_word(first_a, first_b,
                                                                          0.88)):
                return True
        return False
    return difflib.SequenceMatcher(None, " ".join(wa), " ".join(wb)).ratio() >= SIMILAR_NAME


def place_key(postal_code: str | None, city: str | None) -> str | None:
    if postal_code and postal_code.strip():
        return "plz:" + re.sub(r"\s", "", postal_code)
    if city and city.strip():
        return "city:" + name_key(city)
    return None


@dataclass(frozen=True, slots=True)
class Person:
    """What matching looks at, from a customer or an import row."""

    key: str
    name: str
    emails: tuple[str, ...] = ()
    phones: tuple[str, ...] = ()
    place: str | None = None

    @classmethod
    def of(cls, customer: Customer) -> Person:
        address = customer.address
        return cls(customer.id, customer.name, customer.emails, customer.phones,
                   place_key(address.postal_code if address else None,
                             address.city if address else None))


@dataclass(frozen=True, slots=True)
class Match:
    key: str
    evidence: str
    #: The same email, or the same phone and a similar name; else only possible.
    certain: bool = True


class PeopleIndex:
    def __init__(self, people: Iterable[Person] = ()) -> None:
        self.by_email: dict[str, str] = {}
        self.by_phone: dict[str, list[str]] = {}
        self.names: dict[str, str] = {}
        self.by_place: dict[str, list[tuple[str, str, str]]] = {}
        self.by_name: dict[str, list[tuple[str, str | None]]] = {}
        for person in people:
            self.add(person)

    def add(self, person: Person) -> None:
        self.names[person.key] = person.name
        for email in person.emails:
            self.by_email.setdefault(email_key(email), person.key)
        for phone in person.phones:
            if key := phone_key(phone):
                keys = self.by_phone.setdefault(key, [])
                if person.key not in keys:
                    keys.append(person.key)
        if person.place:
            self.by_place.setdefault(person.place, []).append(
                (person.key, name_key(person.name), person.name))
        if len(name_words(person.name)) >= 2:
            self.by_name.setdefault(name_key(person.name), []).append(
                (person.key, person.place))

    def find(self, person: Person) -> Match | None:
        """The existing person this one most likely is, with the evidence: a certain
        match if there is one, else a possible one."""
        for email in person.emails:
            if (key := self.by_email.get(email_key(email))) and key != person.key:
                return Match(key, _("same email %(email)s") % {"email": email})
        possible: Match | None = None
        for phone in person.phones:
            for key in self.by_phone.get(phone_key(phone) or "", ()):
                if key == person.key:
                    continue
                other_name = self.names.get(key, "")
                if similar_names(person.name, other_name):
                    return Match(key, _("same phone %(phone)s and a similar name")
                                 % {"phone": phone})
                possible = possible or Match(
                    key, _("same phone %(phone)s, but another name (%(name)s)")
                    % {"phone": phone, "name": repr(other_name)}, False)
        if possible is not None:
            return possible
        if person.place:
            wanted = name_key(person.name)
            for key, other, other_name in self.by_place.get(person.place, ()):
                if key == person.key:
                    continue
                if other == wanted:
                    return Match(key, _("same name and address"), False)
                ratio = difflib.SequenceMatcher(None, wanted, other).ratio()
                if ratio >= SIMILAR_NAME:
                    return Match(key, _("similar name (%(name)s) at the same address")
                                 % {"name": repr(other_name)}, False)
        # 'Anna Müller' and 'Müller, Anna' with nothing else to tell them apart (two
        # known addresses that differ do)
        for key, place in self.by_name.get(name_key(person.name), ()):
            if key != person.key and not (person.place and place and person.place != place):
                return Match(key, _("the same name (%(name)s), nothing else to tell them "
                                    "apart") % {"name": repr(self.names.get(key, ""))}, False)
        return None


def duplicate_pairs(people: list[Person]) -> Iterator[tuple[Person, Person, str]]:
    """Every likely pair once (the earlier by key first), with the evidence."""
    index = PeopleIndex()
    by_key = {p.key: p for p in people}
    for person in sorted(people, key=lambda p: p.key):
        match = index.find(person)
        if match is not None:
            yield by_key[match.key], person, match.evidence
        index.add(person)
