"""``crmkit duplicates``: customers who are probably the same person, with the evidence."""

from __future__ import annotations

import click

import crmkit

from .matching import Person, duplicate_pairs


def _(message: str) -> str:
    """What the command says itself, in the terminal's language (LANG)."""
    return crmkit.translations(terminal=True).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return crmkit.translations(terminal=True).ngettext(singular, plural, n)


@click.command("duplicates")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@crmkit.pass_app(pure=True)
def duplicates_command(app: crmkit.App, fmt: str) -> None:
    """Likely duplicate customers: same email, same phone, or the same or a very similar
    name at the same postal code or town. Exit 1 if there are any."""
    people = [Person.of(c) for c in app.workspace.customers.values()]
    pairs = list(duplicate_pairs(people))
    if fmt == "json":
        crmkit.echo_json([{"customer": a.key, "duplicate": b.key, "evidence": why}
                          for a, b, why in pairs])
    else:
        for a, b, why in pairs:
            click.echo(f"{a.key} ~ {b.key}: {why}")
        click.echo(ngettext("%(num)d likely duplicate among %(all)d customers",
                            "%(num)d likely duplicates among %(all)d customers", len(pairs))
                   % {"num": len(pairs), "all": len(people)}, err=True)
    if pairs:
        raise SystemExit(1)
