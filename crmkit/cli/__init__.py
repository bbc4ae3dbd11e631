"""The command line: the ``crmkit`` group, its built-in commands, ``crmkit watch``,
``crmkit git``."""

# importing them registers the built-in commands on the group (git: crmkit git ...)
from . import commands, git  # noqa: F401
from .main import cli, main

__all__ = ["cli", "main"]
