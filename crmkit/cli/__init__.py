"""The command line: the ``crmkit`` group, its built-in commands, ``crmkit watch``."""

from . import commands  # noqa: F401  (registers the built-in commands on the group)
from .main import cli, main

__all__ = ["cli", "main"]
