"""Data-quality checks beyond the file format: duplicates and records that do not add up.

Registered as :class:`crmkit.Check` rules: per customer (their interactions), and
across everybody's contact details (duplicates).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import crmkit
from crmkit import Check, Customer, CustomerView, Diagnostic, Interaction, Location, Workspace

NAME = "checks"


def _phone_key(phone: str) -> str:
    digits = re.sub(r"\D", "", phone)
    if phone.strip().startswith("+"):
        return digits
    if digits.startswith("00"):
        return digits[2:]
    return digits.lstrip("0")[-9:]


#: A customer's emails and phones with their comparison keys, and where they are written.
ContactKeys = tuple[tuple[tuple[str, str], ...], Location, tuple[tuple[str, str], ...], Location]


def contact_keys(customer: Customer) -> ContactKeys:
    emails = tuple((email, email.strip().lower()) for email in customer.emails)
    phones = tuple((phone, _phone_key(phone)) for phone in customer.phones)
    return (emails, customer.locate("emails" if "emails" in customer.locations else "email"),
            phones, customer.locate("phones" if "phones" in customer.locations else "phone"))


def contact_keys_of(c: CustomerView) -> ContactKeys:
    return contact_keys(c.customer)


def duplicates(keys: Mapping[str, ContactKeys], scope: Any = None) -> list[Diagnostic]:
    """Customers with the email or the phone of a customer before them (by id)."""
    seen_email: dict[str, str] = {}
    seen_phone: dict[str, str] = {}
    found = []
    for customer_id, (emails, email_at, phones, phone_at) in keys.items():
        for email, key in emails:
            if key in seen_email:
                found.append(Diagnostic.error(
                    f"duplicate customer: {seen_email[key]!r} has the same email {email!r}",
                    email_at, source=NAME))
            else:
                seen_email[key] = customer_id
        for phone, key in phones:
            if len(key) >= 6 and key in seen_phone and seen_phone[key] != customer_id:
                found.append(Diagnostic.warning(
                    f"possible duplicate: {seen_phone[key]!r} has the same phone {phone!r}",
                    phone_at, source=NAME))
            else:
                seen_phone.setdefault(key, customer_id)
    return found


def interaction_checks(c: CustomerView) -> Iterator[Diagnostic]:
    """Records that do not add up, in every interaction of the customer (planned ones
    too)."""
    return _interaction_checks((*c.history, *c.planned), c.settings.currency)


#: What a phone number is written with besides digits (``+49 (0)3643 123-45``,
#: ``0361/55 66``, ``+49 30 123;ext=7`` as RFC 3966 writes an extension).
PHONE_CHARACTERS = re.compile(r"[0-9+()\-/. \t\u00a0]*(;[a-z0-9=;-]*)?", re.IGNORECASE)


def phone_checks(c: CustomerView) -> Iterator[Diagnostic]:
    """A phone with letters or other signs in it, or with fewer than 3 digits: nobody can
    dial it, and the site shows it without a ``tel:`` link."""
    customer = c.customer
    where = customer.locate("phones" if "phones" in customer.locations else "phone")
    for phone in customer.phones:
        digits = sum(ch in "0123456789" for ch in phone)
        if digits < 3 or not PHONE_CHARACTERS.fullmatch(phone.strip()):
            yield Diagnostic.warning(
                f"phone {phone!r} is not a phone number (digits, spaces and + ( ) - / . "
                "only): it gets no tel: link", where, source=NAME)


def duplicate_purchases(c: CustomerView) -> Iterator[Diagnostic]:
    """The same amount bought again within ``days`` days, written in another file: the
    same purchase logged twice (by two people, or by two clones)?"""
    days = c.options.days
    earlier: list[Interaction] = []
    for purchase in (i for i in c.history if i.type == "purchase" and i.amount is not None):
        for before in reversed(earlier):
            if (purchase.date - before.date).days > days:
                break
            if before.amount == purchase.amount and before.currency == purchase.currency \
                    and before.location.path != purchase.location.path:
                yield Diagnostic.warning(
                    f"possible duplicate purchase: the same amount {purchase.amount} on "
                    f"{before.date.isoformat()} in {before.location.path} (same purchase logged "
                    "twice? delete one file)", purchase.locate("amount"), source=NAME)
                break
        earlier.append(purchase)


@crmkit.hookimpl
def crmkit_register(register: Any) -> None:
    register(Check("duplicates", contact_keys_of, across=duplicates))
    register(Check("interactions", interaction_checks))
    register(Check("phones", phone_checks))
    register(Check("duplicate_purchases", duplicate_purchases, options={
        "days": crmkit.Option(3, "Purchases of one customer with the same amount at most "
                                 "this many days apart, in different files, are reported.",
                              minimum=0)}))


@crmkit.hookimpl
def crmkit_validate(workspace: Workspace) -> Iterator[Diagnostic]:
    for deal in workspace.deals.values():
        if deal.is_open and deal.value is None:
            yield Diagnostic.warning("open deal without 'value'", deal.location, source=NAME)


def _interaction_checks(history: Iterable[Interaction], currency: str) -> Iterator[Diagnostic]:
    for interaction in history:
        kind = interaction.type
        if (kind in ("purchase", "quote") and interaction.amount is None
                and "amount" not in interaction.locations):  # an invalid one: an error
            yield Diagnostic.warning(f"{kind} without 'amount'", interaction.location, source=NAME)
        if kind == "feedback" and interaction.score is None and interaction.summary is None:
            yield Diagnostic.warning("feedback without 'score' or 'summary'",
                                     interaction.location, source=NAME)
        if interaction.amount is not None and interaction.currency not in (None, currency):
            yield Diagnostic.warning(
                f"amount in {interaction.currency}, not the workspace currency {currency}: "
                "not counted in revenue", interaction.locate("currency"), source=NAME)
        if interaction.score is not None and kind != "feedback":
            yield Diagnostic.warning(f"'score' on a {kind}; scores belong to feedback",
                                     interaction.locate("score"), source=NAME)
        if interaction.follow_up is not None and interaction.follow_up.date < interaction.date:
            yield Diagnostic.warning("'follow_up' is dated before the interaction itself",
                                     interaction.locate("follow_up"), source=NAME)
