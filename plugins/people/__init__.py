"""People coming and going: importing customers and purchases (CSV, Excel, vCard,
HubSpot, a till's export, crmkit's own JSON), exporting them (CSV, vCard, JSON),
finding likely duplicates and merging two records of one person.  One plugin because
these share how people are matched (``matching.py``): the same rules decide whether
an imported row is a customer we know and whether two customers are probably one
person.
"""

from __future__ import annotations

from typing import Any

import click

import crmkit

from .duplicates import duplicates_command
from .exports import export_command
from .importers import importers
from .imports import import_command
from .merging import merge_command


@crmkit.hookimpl
def crmkit_register(register: Any) -> None:
    for importer in importers():
        register(importer)


@crmkit.hookimpl
def crmkit_register_commands(cli: click.Group) -> None:
    cli.add_command(import_command)
    cli.add_command(export_command)
    cli.add_command(duplicates_command)
    cli.add_command(merge_command)
