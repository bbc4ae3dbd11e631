"""Replaying read-only commands: when nothing they read has changed, print what they printed.

A warm ``crmkit check`` of 100,000 files would otherwise rebuild every record just
to print the same lines again.  Like ``make`` or ruff's cache, crmkit keeps the
output of pure commands (``@crmkit.pass_app(pure=True)``) under a key
made of everything the output can depend on:

* the command line, the workspace folder and the day it is computed for;
* every file in the workspace (path, size, mtime, inode), except the output
  folder and hidden folders such as ``.git`` and ``.crmkit``: records, settings,
  templates and workspace plugins alike;
* every file of crmkit's and each installed plugin's package, so that editing
  or upgrading a plugin counts as a change;
* crmkit's and Python's version, whether output goes to a terminal and in
  which encoding, the ``CRMKIT_*`` environment variables and the terminal's
  language (``LANG``, ``LC_ALL``, ``LC_MESSAGES``, ``LANGUAGE``: the CLI speaks it).

If any workspace file was modified in the last two seconds (its mtime could
repeat after a quick second edit, the "racy" case), nothing is replayed or
kept.  Output is kept under the key of the files as they were when the run
started: a file changed while it ran has a newer mtime, so that key never comes
back.  ``--no-cache`` turns replaying off.
"""

from __future__ import annotations

import functools
import hashlib
import io
import os
import sys
from collections.abc import Callable
from importlib.metadata import entry_points
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TextIO

import click

from .. import __version__
from ..engine.plugins import ENTRY_POINT_GROUP, STOCK_PACKAGE
from .cache import too_new
from .scan import SKIPPED_DIRS, Listing, walk
from .signing import CACHE_DIR, read_checked, write_checked

REPLAY_DIR = CACHE_DIR / "replay"
MAGIC = b"crmkit-replay\n"
KEEP = 16
MAX_OUTPUT = 64 * 1024 * 1024
RECORD_FOLDERS = frozenset({"customers", "interactions", "deals"})
META_READ_ONLY = "crmkit.read_only"
#: The variables gettext reads for the terminal's language.
LANGUAGE_VARIABLES = frozenset({"LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"})

Chunks = list[tuple[int, bytes]]  # (1 = stdout | 2 = stderr, bytes), in the order written


def pure_command(callback: Callable[..., Any],
                 pure: bool | Callable[[dict[str, Any]], bool]) -> Callable[..., Any]:
    """``callback`` (a command's, as :func:`crmkit.pass_app` makes it) marked so that its
    output may be replayed: always when ``pure`` is true, or for the runs whose
    parameters ``pure(params)`` holds for (e.g. not those with ``--out DIR``)."""
    def marked(*args: Any, **kwargs: Any) -> Any:
        if pure is True or (callable(pure) and pure(kwargs)):
            click.get_current_context().meta[META_READ_ONLY] = True
        return callback(*args, **kwargs)

    functools.update_wrapper(marked, callback)
    marked.crmkit_pure = True  # type: ignore[attr-defined]
    return marked


def may_replay(command: click.Command) -> bool:
    """Whether some runs of ``command`` may be replayed (see :func:`pure_command`)."""
    return bool(getattr(command.callback, "crmkit_pure", False))


def code_files() -> tuple[bytes, ...]:
    """``path size mtime`` of every file of crmkit and of each installed plugin package."""
    folders: dict[str, None] = {str(Path(__file__).resolve().parent.parent): None}
    stock = find_spec(STOCK_PACKAGE)
    if stock is not None and stock.submodule_search_locations:
        folders.update(dict.fromkeys(stock.submodule_search_locations))
    lines = []
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        version = ep.dist.version if ep.dist is not None else ""
        lines.append(f"ep {ep.name} {ep.value} {version}\n".encode())
        try:
            spec = find_spec(ep.value.split(":")[0].split(".")[0])
        except (ImportError, ValueError):
            continue
        if spec is None:
            continue
        if spec.submodule_search_locations:
            folders.update(dict.fromkeys(spec.submodule_search_locations))
        elif spec.origin:
            folders[spec.origin] = None
    for folder in folders:
        for dirpath, dirnames, filenames in os.walk(folder):
            dirnames[:] = [d for d in dirnames if d not in SKIPPED_DIRS]
            for name in filenames:
                try:
                    st = os.stat(os.path.join(dirpath, name))
                except OSError:
                    continue
                lines.append(f"{dirpath}/{name}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
        if os.path.isfile(folder):
            st = os.stat(folder)
            lines.append(f"{folder}\0{st.st_size}\0{st.st_mtime_ns}\n".encode())
    return tuple(sorted(lines))


def replay_key(root: Path, argv: list[str], today: str, output_folder: str
               ) -> tuple[str | None, Listing]:
    """The key of this run's output (``None`` if a file is too new to be trusted), and
    what the walk saw of the record folders (for the loader: one walk per run)."""
    digest = hashlib.blake2b(digest_size=20)
    environment = sorted((k, v) for k, v in os.environ.items()
                         if k.startswith("CRMKIT_") or k in LANGUAGE_VARIABLES)
    streams = [(_isatty(s), getattr(s, "encoding", None)) for s in (sys.stdout, sys.stderr)]
    from ..engine.plugins import is_trusted  # its plugins may run or not: other output

    digest.update(repr((__version__, sys.version, str(root), argv, today, streams,
                        environment, is_trusted(root))).encode())
    digest.update(b"".join(code_files()))
    newest, listing = walk(root, frozenset({output_folder.strip("/").split("/")[0]}), digest,
                           RECORD_FOLDERS)
    if too_new(newest):
        return None, listing
    return digest.hexdigest(), listing


def _isatty(stream: TextIO) -> bool:
    try:
        return stream.isatty()
    except (AttributeError, ValueError):
        return False


def play(root: Path, key: str) -> int | None:
    """Write the kept output for ``key`` and return its exit code; ``None`` if none is kept."""
    stored = read_checked(root / REPLAY_DIR / key, MAGIC)
    if not isinstance(stored, tuple) or len(stored) != 2:
        return None
    code, chunks = stored
    streams = {1: sys.stdout, 2: sys.stderr}
    for fd, data in chunks:
        stream = streams[fd]
        stream.flush()
        stream.buffer.write(data)
        stream.buffer.flush()
    return int(code)


def keep(root: Path, key: str, code: int, chunks: Chunks) -> None:
    """Keep a run's output under ``key``; only the newest :data:`KEEP` runs are kept."""
    folder = root / REPLAY_DIR
    if not write_checked(folder / key, MAGIC, (code, chunks)):
        return
    try:
        entries = sorted(folder.iterdir(), key=lambda p: p.stat().st_mtime_ns, reverse=True)
        for old in entries[KEEP:]:
            old.unlink()
    except OSError:
        return


class _Tee(io.RawIOBase):
    """Passes bytes on to a stream and notes them (in order, across stdout and stderr)."""

    def __init__(self, target: Any, fd: int, recorder: Recorder) -> None:
        self.target = target
        self.fd = fd
        self.recorder = recorder

    def writable(self) -> bool:
        return True

    def isatty(self) -> bool:
        return _isatty(self.target)

    def write(self, data: Any) -> int:
        data = bytes(data)
        self.target.write(data)
        self.target.flush()
        self.recorder.note(self.fd, data)
        return len(data)


class Recorder:
    """Records what is written to stdout and stderr while it is active."""

    def __init__(self) -> None:
        self.chunks: Chunks = []
        self.size = 0
        self.saved: tuple[TextIO, TextIO] | None = None
        self.recorded = False

    def note(self, fd: int, data: bytes) -> None:
        self.size += len(data)
        if self.size <= MAX_OUTPUT:
            self.chunks.append((fd, data))

    @property
    def complete(self) -> bool:
        return self.size <= MAX_OUTPUT

    def __enter__(self) -> Recorder:
        out, err = sys.stdout, sys.stderr
        if not (hasattr(out, "buffer") and hasattr(err, "buffer")):
            return self
        out.flush()
        err.flush()
        self.saved = (out, err)
        self.recorded = True
        sys.stdout = self._wrap(out, 1)
        sys.stderr = self._wrap(err, 2)
        return self

    def _wrap(self, stream: Any, fd: int) -> TextIO:
        return io.TextIOWrapper(_Tee(stream.buffer, fd, self),  # type: ignore[arg-type]
                                encoding=stream.encoding, errors=stream.errors,
                                write_through=True)

    def __exit__(self, *exc: object) -> None:
        if self.saved is None:
            return
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = self.saved
        self.saved = None
