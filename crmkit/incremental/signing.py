"""Signed files below ``.crmkit/``: only what crmkit wrote on this machine is read back.

Caches are pickles, and unpickling runs code.  A workspace is often a git
repository of somebody else's, and ``.crmkit/`` could be committed to it; so
every cache file carries a digest keyed with a secret of this machine (kept
outside any workspace, :func:`machine_key`).  A file that is missing, corrupt,
truncated, from another machine or unreadable is never unpickled: the worst a
bad cache can do is cost the time to compute afresh.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import pickle
from pathlib import Path
from typing import Any

from ..loading.atomic import replace

CACHE_DIR = Path(".crmkit") / "cache"
KEY_ENV = "CRMKIT_CACHE_KEY_FILE"


@functools.cache
def machine_key() -> bytes:
    """The secret that signs this machine's caches: ``$XDG_CACHE_HOME/crmkit/key`` (else
    ``~/.cache/crmkit/key``), made on first use, readable by its owner only.

    Caches are pickles, and unpickling runs code: only what crmkit itself wrote
    here may be read back.  Where no key can be kept, a key for this process alone
    is used (caches then last one run: slower, never unsafe)."""
    configured = os.environ.get(KEY_ENV)
    if configured:
        path = Path(configured)
    else:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"),
                                                               ".cache")
        path = Path(base) / "crmkit" / "key"
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key[:32]
    except OSError:
        pass
    key = os.urandom(32)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as handle:
            handle.write(key)
    except FileExistsError:  # another run made it meanwhile
        try:
            stored = path.read_bytes()
        except OSError:
            return key
        return stored[:32] if len(stored) >= 32 else key
    except OSError:
        return key
    return key


def _digest(payload: bytes) -> bytes:
    return hashlib.blake2b(payload, digest_size=32, key=machine_key()).digest()


def read_checked(path: Path, magic: bytes) -> Any:
    """What :func:`write_checked` stored at ``path``; ``None`` if it is missing, corrupt,
    truncated, signed by another machine or unreadable (caches are only ever a
    shortcut)."""
    try:
        blob = path.read_bytes()
    except OSError:
        return None
    header = len(magic) + 32
    if not blob.startswith(magic) or len(blob) < header:
        return None
    digest, payload = blob[len(magic):header], blob[header:]
    if not hmac.compare_digest(_digest(payload), digest):
        return None
    try:
        return pickle.loads(payload)
    except Exception:
        return None


def write_checked(path: Path, magic: bytes, value: Any) -> bool:
    """Pickle ``value`` to ``path`` below ``.crmkit/`` with a checksum, atomically; ``False``
    if the workspace is read-only (which still works, just without the cache)."""
    payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
    digest = _digest(payload)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for folder in path.parents:
            if folder.name == ".crmkit" and not (folder / ".gitignore").exists():
                (folder / ".gitignore").write_text("*\n", encoding="utf-8")
        replace(path, magic + digest + payload, durable=False)  # a torn file fails the check
    except OSError:
        return False
    return True
