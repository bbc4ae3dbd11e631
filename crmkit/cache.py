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
        try:
            blob = path.read_bytes()
        except OSError:
            return {}
        header = len(MAGIC) + 32
        if not blob.startswith(MAGIC) or len(blob) < header:
            return {}
        digest, payload = blob[len(MAGIC):header], blob[header:]
        if hashlib.blake2b(payload, digest_size=32).digest() != digest:
            return {}
        try:
            version, stored_fingerprint, entries = pickle.loads(payload)
        except Exception:
            return {}
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
        payload = pickle.dumps((_VERSION, self.fingerprint, self.entries),
                               protocol=pickle.HIGHEST_PROTOCOL)
        digest = hashlib.blake2b(payload, digest_size=32).digest()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            gitignore = self.path.parent.parent / ".gitignore"
            if not gitignore.exists():
                gitignore.write_text("*\n", encoding="utf-8")
            replace(self.path, MAGIC + digest + payload)
        except OSError:
            return  # a read-only workspace still works, just without the cache
        self.dirty = False


def file_key(stat: os.stat_result) -> Key:
    return (stat.st_size, stat.st_mtime_ns)
