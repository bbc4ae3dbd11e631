"""One walk over the workspace, for everything that needs one.

Replaying a read-only command needs a digest of every file's name, size, mtime
and inode; loading the workspace needs the record folders' files and their
stat results.  At 110,000 files each walk costs half a second, so a run walks
once: the replay key's walk keeps what it saw of the record folders (a compact
tuple per entry, not the ``DirEntry`` objects) and the loader takes it.
"""

from __future__ import annotations

import array
import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SKIPPED_DIRS = frozenset({"__pycache__", "node_modules"})
#: Entry kinds in a listing.
FILE, DIRECTORY, LINKED_DIRECTORY, LINKED_FILE, BROKEN = range(5)
#: ``(name, kind, stat result or None)``.
Entry = tuple[str, int, os.stat_result | None]


@dataclass
class Listing:
    """What a walk saw of some folders: per folder (workspace-relative), its entries in
    the order scandir gave them, or ``None`` when it could not be read."""

    root: Path
    folders: dict[str, list[Entry] | None] = field(default_factory=dict)
    #: Per folder, a digest of its entries' names, sizes, mtimes and inodes: a folder
    #: with the same digest as last time holds the same files, unchanged.
    digests: dict[str, bytes] = field(default_factory=dict)

    def entries(self, rel_dir: str) -> list[Entry] | None:
        return self.folders.get(rel_dir)

    def covers(self, folder: str) -> bool:
        return folder in self.folders or not (self.root / folder).exists()


def walk(root: Path, skip: frozenset[str], digest: Any, keep: frozenset[str] = frozenset()
         ) -> tuple[int, Listing]:
    """Hash the name, size, mtime and inode of every workspace file into ``digest``,
    skipping hidden folders, :data:`SKIPPED_DIRS` and the top-level folders in
    ``skip``; return the newest mtime and a :class:`Listing` of the top-level folders
    in ``keep``.  (Folders are hashed in scandir's order: an order that changes
    without the files changing only costs a replay.)"""
    newest = 0
    listing = Listing(root)
    stack = [(str(root), "", False)]
    while stack:
        path, rel, kept = stack.pop()
        names = [rel]
        numbers = array.array("q")
        add = numbers.extend
        named = names.append
        entries: list[Entry] | None = [] if kept else None
        try:
            scan = os.scandir(path)
        except OSError:
            names.append("\0unreadable")
            scan = None
        if scan is not None:
            with scan:
                for entry in scan:
                    name = entry.name
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            inner = kept or (not rel and name in keep)
                            if not (name.startswith(".") or name in SKIPPED_DIRS
                                    or (not rel and name in skip)):
                                stack.append((entry.path, f"{rel}{name}/", inner))
                            if entries is not None:
                                entries.append((name, DIRECTORY, None))
                            continue
                        st = entry.stat()
                    except OSError:
                        named(f"\0{name}")  # e.g. a dangling link
                        if entries is not None:
                            entries.append((name, BROKEN, None))
                        continue
                    named(name)
                    add((st.st_size, st.st_mtime_ns, st.st_ino))
                    if entries is not None:
                        if not entry.is_symlink():
                            entries.append((name, FILE, st))
                        elif entry.is_dir():
                            entries.append((name, LINKED_DIRECTORY, None))
                        else:
                            entries.append((name, LINKED_FILE, st))
        joined = "\0".join(names).encode("utf-8", "surrogateescape")
        numbered = numbers.tobytes()
        if kept:
            listing.folders[rel.rstrip("/")] = entries
            listing.digests[rel.rstrip("/")] = hashlib.blake2b(
                joined + b"\0\0" + numbered, digest_size=16).digest()
        digest.update(joined)
        digest.update(numbered)
        if numbers:
            newest = max(newest, max(numbers[1::3]))
    return newest, listing
