"""Who brought us whom: a complete crmkit plugin in one file.

Works as a workspace plugin (copy it to ``plugins/referrals.py``) and as an
installed package (see pyproject.toml next to it).
"""

from __future__ import annotations

from collections import Counter
from decimal import Decimal

import click

import crmkit


def referrer_of(customer: crmkit.CustomerView) -> str | None:
    """Per customer: who referred them."""
    return customer.customer.referred_by


def top_referrers(referrers: dict[str, str | None], scope) -> dict[str, bool]:
    """Over everybody: who referred at least ``top_referrer_min`` others."""
    counts = Counter(r for r in referrers.values() if r)
    return {cid: counts[cid] >= scope.options.top_referrer_min for cid in referrers}


def source_without_referrer(customer: crmkit.CustomerView):
    record = customer.customer
    if record.source == "referral" and not record.referred_by:
        yield crmkit.Diagnostic.warning(
            "source is 'referral' but 'referred_by' is missing: who referred them?",
            record.locate("source"), source="referrals")


@crmkit.hookimpl
def crmkit_register(register):
    register(crmkit.ConfigSection(
        "referrals", "Who counts as a top referrer.",
        example="referrals:\n  top_referrer_min: 2",
        options={"top_referrer_min": crmkit.Option(2, "Referrals that make a top referrer.",
                                                   minimum=1)}))
    register(crmkit.Label("top_referrer", referrer_of, across=top_referrers,
                          settings="referrals", description="referred enough others"))
    register(crmkit.Check("referral_source", source_without_referrer))


@crmkit.hookimpl
def crmkit_register_commands(cli):
    @cli.command()
    @crmkit.pass_app(pure=True)
    def referrals(app: crmkit.App):
        """Who referred whom, and the revenue that came with them."""
        referred: dict[str, list[crmkit.CustomerView]] = {}
        for customer in app.customers():
            if customer.customer.referred_by:
                referred.setdefault(customer.customer.referred_by, []).append(customer)
        currency = app.workspace.settings.currency
        for referrer, customers in sorted(referred.items()):
            revenue = sum((c.derived.revenue for c in customers), Decimal(0))
            names = ", ".join(c.id for c in customers)
            click.echo(f"{referrer}: {names} ({revenue:.2f} {currency})")
