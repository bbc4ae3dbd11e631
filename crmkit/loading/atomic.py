"""Writing files without ever losing data.

New files are written to a temporary file in the same folder, flushed, then
*linked* into place: ``os.link`` fails if the name exists, so two concurrent
``crmkit log`` runs can never clobber each other and a crash leaves no half file.
On Linux that temporary file has no name (``O_TMPFILE``), so a killed run leaves
no copy of the record behind either.

Permissions: generated output (``public=True``: reports, the calendar, drafts) gets
the mode any program's new file gets, ``0666`` less the umask (``0644`` usually), so a
web server can serve the output folder.  Everything else a temporary file is made
for stays private (``0600``: caches, the outbox journal, exports of one person's
data), and a file that is replaced keeps the mode it had (a record edited by a
command stays as its owner set it).
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Iterable
from pathlib import Path

_UMASK: list[int] = []


def _umask() -> int:
    """The process's umask, read once (``os.umask`` can only be read by setting it)."""
    if not _UMASK:
        try:
            with open("/proc/self/status", encoding="ascii") as status:
                mask = next(int(line.split()[1], 8) for line in status
                            if line.startswith("Umask:"))
        except (OSError, StopIteration, ValueError, IndexError):
            mask = os.umask(0o022)
            os.umask(mask)
        _UMASK.append(mask)
    return _UMASK[0]


def _mode_for(path: Path, public: bool) -> int | None:
    """The permission bits for a file replacing ``path``: ``None`` keeps ``mkstemp``'s 0600."""
    if public:
        return 0o666 & ~_umask()
    try:
        return stat.S_IMODE(os.stat(path).st_mode)
    except OSError:
        return None


def _write_temp(path: Path, data: bytes, durable: bool = True, mode: int | None = None
                ) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        if mode is not None and mode != 0o600:
            os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            if durable:
                os.fsync(handle.fileno())
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return Path(tmp)


def _link_unnamed(path: Path, data: bytes) -> bool:
    """Linux: write ``data`` to a file that has no name yet (``O_TMPFILE``), then link it
    in as ``path``.  A run killed at any moment leaves nothing behind (a named temporary
    file would stay, with the record's personal data).  ``False`` where this is not
    available (other systems, some filesystems): the caller uses a named temporary file."""
    flag = getattr(os, "O_TMPFILE", None)
    if flag is None or not os.path.isdir("/proc/self/fd"):
        return False
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path.parent, flag | os.O_WRONLY, 0o600)
    except OSError:
        return False
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
        folder = os.open(path.parent, os.O_RDONLY)
        try:  # linkat(AT_SYMLINK_FOLLOW): fails if the name exists, like os.link below
            os.link(f"/proc/self/fd/{fd}", path.name, dst_dir_fd=folder)
        except FileExistsError:
            raise
        except OSError:
            return False
        finally:
            os.close(folder)
    finally:
        os.close(fd)
    return True


def create_new(path: Path, data: bytes) -> None:
    """Create ``path`` with ``data``; raise ``FileExistsError`` if it already exists."""
    if _link_unnamed(path, data):
        return
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


def replace(path: Path, data: bytes | str, durable: bool = True, public: bool = False
            ) -> bool:
    """Atomically replace ``path`` (files crmkit owns, such as caches and output, or a
    user's file that a command was explicitly asked to change).  Text is written as UTF-8.

    ``durable=False`` is for generated files that the next build writes again
    (reports, the reminder calendar): still never a half file under the name, but
    not forced to disk before the rename (``crmkit watch`` writes them after every
    save; after a power cut the next build makes them again).

    ``public=True`` for output meant to be shared or served: ``0666`` less the umask.
    Otherwise a replaced file keeps its mode and a new one is ``0600``.  Public output
    whose file already holds these bytes with that mode is left alone: its mtime and
    inode stay, so ``crmkit watch`` rewrites only the pages a change touched (and a web
    server, rsync or a browser's cache sees no change).  Returns whether the file was
    written (``False``: it already held ``data``).
    """
    given = data
    if public and _unchanged(path, given):
        return False
    if isinstance(data, str):
        data = data.encode("utf-8")
    if public and _same_bytes(path, data):
        _remember(path, given)
        return False
    tmp = _write_temp(path, data, durable, _mode_for(path, public))
    try:
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if public:
        _remember(path, given)
    return True


#: Public output written (or found equal) by this process: path → (the data's length and
#: hash, inode, size, mtime).  The same text again on an untouched file needs no read: a
#: kept page's text is the same object, whose hash Python keeps (the text itself is not
#: held here, so a one-off build does not keep 10,000 pages in memory).
_WRITTEN: dict[str, tuple[tuple[int, int], int, int, int]] = {}
_KEEP_WRITTEN = 100_000


def _unchanged(path: Path, data: bytes | str) -> bool:
    """Whether ``path`` still holds what this process last wrote there (the same text):
    one ``stat``, no read."""
    name = str(path)
    kept = _WRITTEN.get(name)
    return kept is not None and kept[0] == (len(data), hash(data)) and untouched(name)


def untouched(path: str) -> bool:
    """Whether the public output ``path`` is still the file this process last wrote or
    found holding its text there (one ``stat``): ``crmkit watch`` skips a page whose
    data did not change only while nobody else deleted or rewrote it."""
    return not touched((path,))


def touched(paths: Iterable[str]) -> list[int]:
    """The positions in ``paths`` of the files that are not :func:`untouched`: one
    ``stat`` each, in a loop lean enough for the 10,000 pages of every watch rebuild
    (0.05 s with a call per page)."""
    written = _WRITTEN.get
    stat_of = os.stat
    mode = 0o666 & ~_umask()
    found = []
    for i, path in enumerate(paths):
        kept = written(path)
        if kept is None:
            found.append(i)
            continue
        try:
            st = stat_of(path)
        except OSError:
            found.append(i)
            continue
        if st.st_mtime_ns != kept[3] or st.st_ino != kept[1] or st.st_size != kept[2] \
                or st.st_mode & 0o7777 != mode:
            found.append(i)
    return found


def _same_bytes(path: Path, data: bytes) -> bool:
    """Whether the regular file ``path`` holds exactly ``data`` with the public mode."""
    try:
        st = os.lstat(path)
        if not stat.S_ISREG(st.st_mode) or st.st_size != len(data) \
                or stat.S_IMODE(st.st_mode) != 0o666 & ~_umask():
            return False
        with open(path, "rb") as handle:
            return handle.read(len(data) + 1) == data
    except OSError:
        return False


def _remember(path: Path, data: bytes | str) -> None:
    try:
        st = os.stat(path)
    except OSError:
        return
    if len(_WRITTEN) > _KEEP_WRITTEN:
        _WRITTEN.clear()
    _WRITTEN[str(path)] = ((len(data), hash(data)), st.st_ino, st.st_size, st.st_mtime_ns)


def write_atomically(path: Path, data: bytes | str) -> None:
    """Replace ``path`` with ``data`` atomically and durably (text as UTF-8): never a
    half-written file under the name, even after a crash."""
    replace(Path(path), data)
