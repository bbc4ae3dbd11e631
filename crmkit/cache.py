"""The parse cache: a second run re-reads only files that changed.

It keeps, per file, the records read from it and their diagnostics, keyed by
workspace-relative path, size and mtime (nanoseconds), under a fingerprint of
everything else that shapes those records (crmkit's version, the interaction
types, time zone and currency): a different fingerprint empties the cache.
The cache file carries a checksum of its payload; a cache that is corrupt,
truncated, from another crmkit version or unreadable is ignored, so the worst
a bad cache can do is cost a re-parse.  Files modified in the last couple of
seconds are not cached ("racy" entries, as git calls them): their mtime could
repeat after a quick second edit of the same size.
"""

from __future__ import annotations

import hashlib
import os
import pickle
import sys
import time
from pathlib import Path
from typing import Any

from . import __version__
from .atomic import replace

MAGIC = b"crmkit-parse-cache\n"
RACY_WINDOW_NS = 2_000_000_000
_VERSION = f"{__version__}/py{sys.version_info[0]}.{sys.version_info[1]}/2"

Key = tuple[int, int]  # (size, mtime_ns)


class ParseCache:
    def __init__(self, path: Path | None, fingerprint: str = "") -> None:
        self.path = path
        self.fingerprint = fingerprint
        self.entries: dict[str, tuple[Key, Any]] = {}
        self.hits = 0
        self.misses = 0
        self.dirty = False
        if path is not None:
            self.entries = self._read(path, fingerprint)

    def use_fingerprint(self, fingerprint: str) -> None:
        """Forget every entry if what shapes the records has changed."""
        if fingerprint != self.fingerprint:
            self.entries.clear()
            self.fingerprint = fingerprint
            self.dirty = True

    @staticmethod
    def _read(path: Path, fingerprint: str) -> dict[str, tuple[Key, Any]]:
        stored = read_checked(path, MAGIC)
        if not isinstance(stored, tuple) or len(stored) != 3:
            return {}
        version, stored_fingerprint, entries = stored
        if version != _VERSION or stored_fingerprint != fingerprint \
                or not isinstance(entries, dict):
            return {}
        return entries

    def get(self, rel: str, key: Key) -> Any:
        entry = self.entries.get(rel)
        if entry is not None and entry[0] == key:
            self.hits += 1
            return entry[1]
        self.misses += 1
        return None

    def put(self, rel: str, key: Key, parsed: Any) -> None:
        if key[1] >= time.time_ns() - RACY_WINDOW_NS:
            if rel in self.entries:
                del self.entries[rel]
                self.dirty = True
            return
        self.entries[rel] = (key, parsed)
        self.dirty = True

    def prune(self, seen: set[str]) -> None:
        stale = [rel for rel in self.entries if rel not in seen]
        for rel in stale:
            del self.entries[rel]
        self.dirty = self.dirty or bool(stale)

    def save(self) -> None:
        if self.path is None or not self.dirty:
            return
        if write_checked(self.path, MAGIC, (_VERSION, self.fingerprint, self.entries)):
            self.dirty = False


def read_checked(path: Path, magic: bytes) -> Any:
    """What :func:`write_checked` stored at ``path``; ``None`` if it is missing, corrupt,
    truncated or unreadable (caches are only ever a shortcut)."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    header = len(magic) + 32
    if not blob.startswith(magic) or len(blob) < header:
        return None
    digest, payload = blob[len(magic):header], blob[header:]
    if hashlib.blake2b(payload, digest_size=32).digest() != digest:
        return None
    try:
        return pickle.loads(payload)
    except Exception:
        return None


def write_checked(path: Path, magic: bytes, value: Any) -> bool:
    """Pickle ``value`` to ``path`` below ``.crmkit/`` with a checksum, atomically; ``False``
    if the workspace is read-only (which still works, just without the cache)."""
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    digest = hashlib.blake2b(payload, digest_size=32).digest()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in path.parents:
            if folder.name == ".crmkit" and not (folder / ".gitignore").exists():
                (folder / ".gitignore").write_text("*\n", encoding="utf-8")
        replace(path, magic + digest + payload)
    except OSError:
        return False
    return True


def file_key(stat: os.stat_result) -> Key:
    return (stat.st_size, stat.st_mtime_ns)
