"""Writing files without ever losing data.

New files are written to a temporary file in the same folder, flushed, then
*linked* into place: ``os.link`` fails if the name exists, so two concurrent
``crmkit log`` runs can never clobber each other and a crash leaves no half file.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def _write_temp(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def create_new(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data``; raise ``FileExistsError`` if it already exists."""
    tmp = _write_temp(path, data)
    try:
        os.link(tmp, path)
    except OSError as exc:
        if isinstance(exc, FileExistsError):
            raise
        # Filesystems without hard links: exclusive create, then copy in.
        with open(path, "xb") as handle:
            handle.write(data)
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)


def replace(path: Path, data: bytes | str) -> None:
    """Atomically replace ``path`` (files crmkit owns, such as caches and output, or a
    user's file that a command was explicitly asked to change).  Text is written as UTF-8.
    """
    if isinstance(data, str):
        data = data.encode("utf-8")
    tmp = _write_temp(path, data)
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
