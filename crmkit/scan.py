"""Folder listings shared within one command.

A command that may be replayed first walks the whole workspace to make its
replay key (:mod:`crmkit.replay`); when it then runs, the loader lists the
record folders again.  While :func:`sharing` is on, the walk keeps each
folder's entries (with their ``stat`` results cached by ``os.scandir``) and the
loader takes them instead of listing the 110,000 files a second time.  Each
listing is taken at most once, and all are dropped when the command ends: a
later load (``crmkit watch``) always lists afresh.  A file changed between the
walk and the load is no risk: the key made after the run differs, so the output
is not kept for replaying.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator

_listings: dict[str, list[os.DirEntry[str]]] | None = None


@contextlib.contextmanager
def sharing() -> Iterator[None]:
    """Keep the listings :func:`remember` gets until the end of the block."""
    global _listings
    _listings = {}
    try:
        yield
    finally:
        _listings = None


def remember(path: str, entries: list[os.DirEntry[str]]) -> None:
    if _listings is not None:
        _listings[path] = entries


def listing(path: str) -> list[os.DirEntry[str]]:
    """The entries of the folder at ``path``: the ones remembered in this command, or
    ``os.scandir``'s (``OSError`` if the folder cannot be read)."""
    if _listings is not None:
        entries = _listings.pop(path, None)
        if entries is not None:
            return entries
    with os.scandir(path) as scan:
        return list(scan)
