"""Recognising the same person: normalised emails, phone numbers and names.

Used by ``crmkit import`` (does this row match an existing customer?) and
``crmkit duplicates``.  Fuzzy name comparison only happens within the same
postal code or town, so the work stays linear-ish in the number of customers.
"""

from __future__ import annotations

import difflib
import re
import unicodedata
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from crmkit import Customer

SIMILAR_NAME = 0.88
_TITLES = {"dr", "prof", "herr", "frau", "mr", "mrs", "ms", "dipl", "ing"}
_UMLAUTS = str.maketrans({"ä": "ae", "ö": "oe", "ü": "ue", "ß": "ss"})


def email_key(email: str) -> str:
    return email.strip().casefold()


def phone_key(phone: str) -> str | None:
    """The last 9 digits, so +49 3643 812345, 0049 3643 812345 and 03643 812345 agree."""
    digits = re.sub(r"\D", "", phone)
    return digits[-9:] if len(digits) >= 6 else None


def name_key(name: str) -> str:
    text = unicodedata.normalize("NFKD", name.casefold().translate(_UMLAUTS))
    text = text.encode("ascii", "ignore").decode()
    words = [w for w in re.split(r"[^a-z0-9]+", text) if w and w not in _TITLES]
    return " ".join(sorted(words))


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


class PeopleIndex:
    def __init__(self, people: Iterable[Person] = ()) -> None:
        self.by_email: dict[str, str] = {}
        self.by_phone: dict[str, str] = {}
        self.by_place: dict[str, list[tuple[str, str, str]]] = {}
        for person in people:
            self.add(person)

    def add(self, person: Person) -> None:
        for email in person.emails:
            self.by_email.setdefault(email_key(email), person.key)
        for phone in person.phones:
            if key := phone_key(phone):
                self.by_phone.setdefault(key, person.key)
        if person.place:
            self.by_place.setdefault(person.place, []).append(
                (person.key, name_key(person.name), person.name))

    def find(self, person: Person) -> Match | None:
        """The existing person this one most likely is, with the evidence."""
        for email in person.emails:
            if (key := self.by_email.get(email_key(email))) and key != person.key:
                return Match(key, f"same email {email}")
        for phone in person.phones:
            pk = phone_key(phone)
            if pk and (key := self.by_phone.get(pk)) and key != person.key:
                return Match(key, f"same phone {phone}")
        if person.place:
            wanted = name_key(person.name)
            for key, other, other_name in self.by_place.get(person.place, ()):
                if key == person.key:
                    continue
                if other == wanted:
                    return Match(key, "same name and address")
                ratio = difflib.SequenceMatcher(None, wanted, other).ratio()
                if ratio >= SIMILAR_NAME:
                    return Match(key, f"similar name ({other_name!r}) at the same address")
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
