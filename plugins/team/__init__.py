"""A team on one repository: every customer's ``owner:`` is one of ``team`` in
crmkit.yaml (docs/team.md).

Registered as a :class:`crmkit.Check` over everybody (a dictionary look-up per
customer, run every time: it reads crmkit.yaml's ``team``, which per-customer results
are not kept by).  Without a ``team`` an owner is free text.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import crmkit
from crmkit import Check, Diagnostic

NAME = "team"


def owner_problems(population: Any) -> Iterator[Diagnostic]:
    settings = population.settings
    if not settings.team:
        return
    names = [member.name for member in settings.team]
    for view in population.customers:
        customer = view.customer
        owner = customer.owner
        if owner and settings.member(owner) is None:
            yield Diagnostic.error(
                f"'owner': {owner!r} is not in the team"
                f"{crmkit.did_you_mean(owner, names, 'en')}; the team (crmkit.yaml): "
                f"{', '.join(names)}", customer.locate("owner"), source=NAME)


@crmkit.hookimpl
def crmkit_register(register: Any) -> None:
    register(Check("owners", over_all=owner_problems))
