"""Who brought us whom: a complete crmkit plugin in one file.

Works as a workspace plugin (copy it to ``plugins/referrals.py``) and as an
installed package (see pyproject.toml next to it).
"""

from __future__ import annotations

from decimal import Decimal

import click

import crmkit


@crmkit.hookimpl
def crmkit_config_sections():
    return [crmkit.ConfigSection(
        name="referrals",
        description="Who counts as a top referrer.",
        example="referrals:\n  top_referrer_min: 2",
    )]


def _min_referrals(settings: crmkit.Settings) -> int:
    value = settings.section("referrals").get("top_referrer_min", 2)
    return value if isinstance(value, int) and value > 0 else 2


@crmkit.hookimpl
def crmkit_validate(workspace: crmkit.Workspace):
    value = workspace.settings.section("referrals").get("top_referrer_min", 2)
    if not isinstance(value, int) or value < 1:
        yield crmkit.Diagnostic.error(
            "'referrals.top_referrer_min' must be a whole number of at least 1",
            workspace.settings.locate("referrals"), source="referrals")
    for customer in workspace.customers.values():
        if customer.source == "referral" and not customer.referred_by:
            yield crmkit.Diagnostic.warning(
                "source is 'referral' but 'referred_by' is missing: who referred them?",
                customer.locate("source"), source="referrals")


def _referred(snapshot: crmkit.Snapshot) -> dict[str, list[str]]:
    referred: dict[str, list[str]] = {}
    for customer in snapshot.customers:
        if customer.referred_by:
            referred.setdefault(customer.referred_by, []).append(customer.id)
    return referred


@crmkit.hookimpl
def crmkit_segments(snapshot: crmkit.Snapshot):
    minimum = _min_referrals(snapshot.settings)
    for referrer, customers in _referred(snapshot).items():
        if len(customers) >= minimum:
            yield crmkit.SegmentLabel(referrer, "top_referrer", True)


@crmkit.hookimpl
def crmkit_register_commands(cli: click.Group):
    @cli.command()
    @crmkit.pass_app
    def referrals(app: crmkit.App):
        """Who referred whom, and the revenue that came with them."""
        snapshot = app.snapshot
        currency = snapshot.settings.currency
        for referrer, customers in sorted(_referred(snapshot).items()):
            revenue = sum((snapshot.derived(c).revenue for c in customers), Decimal(0))
            click.echo(f"{referrer}: {', '.join(customers)} ({revenue:.2f} {currency})")
