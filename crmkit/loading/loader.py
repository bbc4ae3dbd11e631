"""Finding and loading a workspace: files in, a :class:`Workspace` and diagnostics out.

The steps: read ``crmkit.yaml``; parse each record file (through the parse
cache); turn it into model records (:mod:`crmkit.schema`); link interactions
and deals to customers; then let plugins add their own checks.  One broken file
never hides the others.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import pickle
import stat
import time
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from ..engine.i18n import cli_gettext as _
from ..incremental import parallel, scan
from ..incremental.blobs import BlobLog, sign
from ..incremental.cache import (
    RACY_WINDOW_NS,
    STATE_FILE,
    Files,
    Key,
    ParseCache,
    file_key,
    gc_paused,
    join_ids,
)
from ..model import Customer, Deal, Interaction, LoadStats, Settings, Workspace
from ..model.diagnostics import CrmkitError, Diagnostic, Location, sort_key
from .schema import (
    BASE_INTERACTION_TYPES,
    ID_PATTERN,
    did_you_mean,
    parse_customer,
    parse_deal,
    parse_interactions,
    parse_settings,
)
from .yamlsource import ParsedFile, YamlMap, parse_yaml

if TYPE_CHECKING:
    from ..engine.plugins import PluginHost
    from ..engine.registry import Registry
    from ..incremental.memo import Memo

T = TypeVar("T")
CONFIG_FILE = "crmkit.yaml"
ENV_WORKSPACE = "CRMKIT_WORKSPACE"
CACHE_FILE = STATE_FILE
YAML_SUFFIXES = (".yaml", ".yml")
RECORD_FOLDERS = ("customers", "interactions", "deals")
#: Read with the settings (:class:`SettingsFiles`): one file per playbook.
PLAYBOOK_FOLDER = "playbooks"


def find_workspace(start: Path | str | None = None) -> Path:
    """The workspace root: ``start`` itself (``-w``), else ``$CRMKIT_WORKSPACE``, else the
    nearest folder at or above the current directory that holds ``crmkit.yaml``."""
    if start is None and os.environ.get(ENV_WORKSPACE):
        start = os.environ[ENV_WORKSPACE]
    if start is not None:
        root = Path(start).expanduser().resolve()
        if (root / CONFIG_FILE).is_file():
            return root
        if root.name == CONFIG_FILE and root.is_file():
            return root.parent
        raise CrmkitError(f"{start}: " + _("not a crmkit workspace (no %(file)s); create one "
                                           "with '%(command)s'") % {
            "file": CONFIG_FILE, "command": "crmkit init DIR"})
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise CrmkitError(_("no %(file)s found in %(folder)s or any parent folder; use -w PATH, "
                        "set CRMKIT_WORKSPACE, or create one with '%(command)s'") % {
        "file": CONFIG_FILE, "folder": here, "command": "crmkit init DIR"})


def is_editor_file(name: str) -> bool:
    """Hidden files, editor backups and swap files (vim, emacs, JetBrains' safe write),
    and partial downloads."""
    return (name.startswith((".", "#", "~")) or name == "4913"
            or name.endswith(("~", ".swp", ".swx", ".swo", ".tmp", ".part", ".crdownload",
                              "___jb_tmp___", "___jb_old___")))


def is_hidden_record(name: str) -> bool:
    """A YAML file whose name starts with a dot (``.anna.yaml``): not read, like every
    hidden file, but it may well be a record somebody named so, and a record is never
    dropped without a word.  Not: emacs' lock links (``.#anna.yaml``) and the
    resource forks macOS writes on foreign disks (``._anna.yaml``)."""
    return (name.startswith(".") and name.endswith(YAML_SUFFIXES)
            and not name.startswith((".#", "._")))


def hidden_record_warning(rel: str) -> Diagnostic:
    """What the loader says about ``rel``, a record file hidden by its name
    (:func:`is_hidden_record`): it is not read, and how to make it read."""
    plain = rel.rsplit("/", 1)[-1].lstrip(".")
    rename = f" (rename it to {plain})" if plain.endswith(YAML_SUFFIXES) else ""
    return Diagnostic.warning(f"{NOT_READ} file names starting with a dot are not read{rename}",
                              Location(rel))


#: A record file found by :func:`iter_files`: its path, workspace-relative path, and its
#: stat result (``None`` if it could not be read: reading it reports why).
Found = tuple[str, str, "os.stat_result | None"]


def _scanned(path: str) -> list[scan.Entry]:
    """A folder's entries as :mod:`crmkit.incremental.scan` lists them."""
    found: list[scan.Entry] = []
    with os.scandir(path) as entries:
        for entry in entries:
            name = entry.name
            try:
                if entry.is_dir(follow_symlinks=False):
                    found.append((name, scan.DIRECTORY, None))
                elif entry.is_symlink():
                    if entry.is_dir():
                        found.append((name, scan.LINKED_DIRECTORY, None))
                    else:
                        found.append((name, scan.LINKED_FILE, entry.stat()))
                else:
                    found.append((name, scan.FILE, entry.stat()))
            except OSError:
                found.append((name, scan.BROKEN, None))
    return found


#: What :func:`iter_files` saw of each folder, in the order it went through them: the
#: number of YAML files it yielded from the folder itself, and the problems it found.
Folders = dict[str, tuple[int, tuple[Diagnostic, ...]]]


def iter_files(root: Path, folder: str, out: list[Diagnostic],
               listing: scan.Listing | None = None, folders: Folders | None = None
               ) -> Iterator[Found]:
    """Yield the YAML files below ``root/folder``, sorted, with their stat results (from
    ``listing``, the replay key's walk, when it covers the folder)."""
    base = root / folder
    root_text = str(root.resolve())
    if base.is_symlink() and base.is_dir() and not _inside(root_text, str(base.resolve())):
        out.append(Diagnostic.error(
            "ignored: a link to a folder outside the workspace (crmkit does not read "
            "through it; move the folder into the workspace)", Location(folder)))
        if folders is not None:
            folders[folder] = (0, (out[-1],))
        return
    if listing is not None and not listing.covers(folder):
        listing = None
    if listing is None and not base.is_dir():
        return
    if listing is not None and listing.entries(folder) is None and not base.is_dir():
        return
    stack = [folder]
    while stack:
        rel_dir = stack.pop()
        found: list[Diagnostic] = []
        try:
            entries = listing.entries(rel_dir) if listing is not None else None
            if entries is None:
                entries = _scanned(str(root / rel_dir))
        except OSError as exc:
            found.append(Diagnostic.error(f"cannot read folder: {exc.strerror}",
                                          Location(rel_dir)))
            entries = []
        files, subdirs = folder_files(root, root_text, rel_dir, entries, found)
        out.extend(found)
        if folders is not None:
            folders[rel_dir] = (len(files), tuple(found))
        yield from files
        stack.extend(reversed(subdirs))


def folder_files(root: Path, root_text: str, rel_dir: str, entries: list[scan.Entry],
                 out: list[Diagnostic]) -> tuple[list[Found], list[str]]:
    """The YAML files of one folder, sorted, and its subfolders (what to skip and warn
    about: :func:`iter_files`)."""
    path = str(root / rel_dir)
    files: list[Found] = []
    subdirs = []
    for name, kind, st in sorted(entries, key=lambda e: e[0]):
        if kind == scan.LINKED_DIRECTORY:
            out.append(Diagnostic.warning(
                "ignored: a linked folder (crmkit does not follow folder links)",
                Location(f"{rel_dir}/{name}")))
            continue
        if kind == scan.DIRECTORY:
            if not name.startswith("."):
                subdirs.append(f"{rel_dir}/{name}")
            continue
        rel = f"{rel_dir}/{name}"
        if is_editor_file(name):
            if is_hidden_record(name):
                out.append(hidden_record_warning(rel))
            continue
        if not name.endswith(YAML_SUFFIXES):
            out.append(Diagnostic.warning("ignored: not a .yaml file", Location(rel)))
            continue
        full = f"{path}/{name}"
        if kind == scan.LINKED_FILE and not _inside(root_text, os.path.realpath(full)):
            out.append(Diagnostic.error(
                "ignored: symlink points outside the workspace", Location(rel)))
            continue
        if st is not None and not stat.S_ISREG(st.st_mode):
            out.append(Diagnostic.warning(
                "ignored: not a regular file (a pipe, socket or device is never read)",
                Location(rel)))
            continue
        files.append((full, rel, st))
    return files, subdirs


#: How the loader's warning about a record file it did not read begins.
NOT_READ = "skipped:"


def is_not_read(diagnostic: Diagnostic) -> bool:
    """Whether ``diagnostic`` is the loader's about a record file it did not read
    (``customers/.anna.yaml``: Anna would be missing from every command's output, so
    each says so, not only ``check``; a ``README.md`` beside the records is only
    ``check``'s business)."""
    return diagnostic.source == "crmkit" and diagnostic.message.startswith(NOT_READ)


def _inside(root_text: str, target: str) -> bool:
    """Whether the resolved path ``target`` is the workspace ``root_text`` or below it."""
    return os.path.commonpath([root_text, target]) == root_text


class _Reader:
    """Reads files through the parse cache and counts what it did."""

    def __init__(self, root: Path, cache: ParseCache) -> None:
        self.root = root
        self.cache = cache
        self.files = 0
        #: The key (size, mtime) of every file read, in order (``None``: not readable).
        self.keys: dict[str, Key | None] = {}
        #: Records parsed ahead by the workers.
        self.prefetched: dict[str, Any] = {}
        self.parsed_ahead = 0

    def read(self, path: str, rel: str, st: os.stat_result | None,
             build: Callable[[ParsedFile], T]) -> T:
        """``build``'s records from the file, from the cache when the file is unchanged."""
        self.files += 1
        try:
            key = file_key(st if st is not None else os.stat(path))
        except OSError as exc:
            self.keys[rel] = None
            return build(ParsedFile(rel, None, [Diagnostic.error(
                f"cannot read: {exc.strerror}", Location(rel))]))
        self.keys[rel] = key
        if rel in self.prefetched:
            self.parsed_ahead += 1
            records = self.prefetched.pop(rel)
            if rel not in self.cache.written:  # too new to keep: the index names its ids
                self.cache.put(rel, key, records)
            return records  # type: ignore[no-any-return]
        cached = self.cache.get(rel, key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        records = read_records(path, rel, build)
        self.cache.put(rel, key, records)
        return records

    def prefetch(self, files: list[tuple[str, str, os.stat_result | None,
                                         Callable[[ParsedFile], Any]]]) -> None:
        """Parse the files the cache does not have on every core, when there are many
        (a cold start): each worker appends the records of its files to the blob file
        (:mod:`crmkit.incremental.blobs`), and :meth:`read` takes them from there."""
        if len(files) - self.cache.entries < parallel.MIN_ITEMS:
            return  # too few files can be missing to be worth a look (a warm start)
        missing = []
        for path, rel, st, build in files:
            if st is None:
                continue
            key = file_key(st)
            if not self.cache.has(rel, key):
                missing.append((path, rel, build, key))
        store = self.cache.store
        chunks = parallel.map_chunks(
            lambda jobs: _read_chunk(jobs, store.folder if self.cache.root else None,
                                     store.name), missing)
        if chunks is None:
            return
        try:
            loads = pickle.loads
            prefetched, written = self.prefetched, self.cache.written
            for chunk, offset, entries, racy in chunks:
                # unpickled as they come, while the workers parse the next chunks
                view = memoryview(chunk)
                for rel, (key, start, length, digest, ids) in entries.items():
                    prefetched[rel] = loads(view[start:start + length])
                    if offset is not None:
                        written[rel] = (key, offset + start, length, digest, ids)
                prefetched.update(racy)
        except Exception:  # no workers (e.g. a sandbox): read() parses the rest itself
            return


def read_records(path: str, rel: str, build: Callable[[ParsedFile], T]) -> T:
    """Read, parse and ``build`` one file; problems become diagnostics, never exceptions."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return build(ParsedFile(rel, None, [Diagnostic.error(
            f"cannot read: {exc.strerror}", Location(rel))]))
    return build(parse_yaml(data, rel))


def _read_chunk(jobs: Sequence[tuple[str, str, Callable[[ParsedFile], Any], Key]],
                folder: Path | None, name: str) -> tuple[bytes, int | None, dict[str, Any],
                                                         dict[str, Any]]:
    """In a worker: parse some files and append each one's records, pickled, to the blob
    file (:mod:`crmkit.incremental.blobs`).  Returns those blobs, where they went (or
    ``None``), each file's (key, start, length, digest, ids it names), and the
    records of files too new to keep (:func:`~crmkit.incremental.cache.too_new`)."""
    blobs: list[bytes] = []
    entries: dict[str, Any] = {}
    racy: dict[str, Any] = {}
    start = 0
    limit = time.time_ns() - RACY_WINDOW_NS
    for path, rel, build, key in jobs:
        records = read_records(path, rel, build)
        if key[1] >= limit:  # too new to keep
            racy[rel] = records
            continue
        data = pickle.dumps(records, protocol=pickle.HIGHEST_PROTOCOL)
        entries[rel] = (key, start, len(data), sign(data), ids_of(rel, records))
        blobs.append(data)
        start += len(data)
    chunk = b"".join(blobs)
    offset = BlobLog(folder, name).append(chunk) if folder is not None and chunk else None
    return chunk, offset, entries, racy


def ids_of(rel: str, parts: Any) -> str:
    """The customer ids a file's records name, for the index (a customer file: its own
    id, then whom it was referred by)."""
    folder = rel.split("/", 1)[0]
    if folder == "customers":
        cid, customer, _ = parts
        if cid is None:
            return ""
        if customer is not None and customer.referred_by:
            return join_ids((cid, customer.referred_by))
        return cid  # type: ignore[no-any-return]
    if folder == "interactions":
        records, dropped, _ = parts
        if len(records) == 1 and not dropped:
            return records[0].customer  # type: ignore[no-any-return]
        return join_ids(list(dict.fromkeys(
            [r.customer for r in records] + [cid for cid, _ in dropped])))
    deal = parts[1]
    return deal.customer if deal is not None else ""  # type: ignore[no-any-return]


@dataclass
class SettingsFiles:
    """What the settings are made of, parsed before any plugin loads: ``crmkit.yaml`` and
    the files of ``playbooks/`` (plugins register a reminder kind for each playbook, so
    they are read with the settings, not with the records)."""

    config: ParsedFile
    #: Each playbook file's data by workspace-relative path (``None``: empty; a file that
    #: does not parse is left out, its problem is in ``diagnostics``).
    playbooks: dict[str, Any] = field(default_factory=dict)
    #: The problems found in all of them (syntax, ignored files in ``playbooks/``).
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def data(self) -> Any:
        """``crmkit.yaml`` as parsed."""
        return self.config.data


def read_settings_data(root: Path) -> tuple[SettingsFiles, list[str]]:
    """Parse ``crmkit.yaml`` and the playbooks, and pick out ``disable_plugins`` (needed
    before plugins load)."""
    rel = CONFIG_FILE
    try:
        parsed = parse_yaml((root / rel).read_bytes(), rel)
    except OSError as exc:
        raise CrmkitError(f"{root / rel}: " + _("cannot read: %(error)s")
                          % {"error": exc.strerror}) from exc
    disabled: list[str] = []
    if isinstance(parsed.data, YamlMap):
        value = parsed.data.get("disable_plugins")
        if isinstance(value, list):
            disabled = [str(v) for v in value if isinstance(v, str)]
        elif isinstance(value, str):
            disabled = [value]
    files = SettingsFiles(parsed, diagnostics=list(parsed.diagnostics))
    for path, rel, _stat in iter_files(root, PLAYBOOK_FOLDER, files.diagnostics):
        playbook = read_records(path, rel, lambda found: found)
        files.diagnostics.extend(playbook.diagnostics)
        if playbook.data is not None or not playbook.diagnostics:  # not: told already
            files.playbooks[rel] = playbook.data
    return files, disabled


def _stem_id(rel: str, kind: str, out: list[Diagnostic]) -> str | None:
    stem = rel.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if not ID_PATTERN.match(stem):
        out.append(Diagnostic.error(
            f"{kind} id {stem!r} (the file name) must be a lowercase slug: "
            "a-z, 0-9 and '-', e.g. 'anna-mueller'", Location(rel)))
        return None
    return stem


def load_workspace(root: Path, host: PluginHost | None = None, use_cache: bool = True,
                   settings_file: SettingsFiles | None = None,
                   cache: ParseCache | None = None, today: dt.date | None = None,
                   registry: Registry | None = None, memo: Memo | None = None,
                   listing: scan.Listing | None = None) -> Workspace:
    """Load the workspace at ``root``.  Never raises for bad content: see ``diagnostics``.

    ``cache`` lets a long-running caller (``crmkit watch``) keep the parse cache in
    memory between loads; it is then not written to disk by this call.  With plugins
    (``host``) their registrations are collected unless ``registry`` is given.
    """
    return load_workspace_files(root, host, use_cache, settings_file, cache, today,
                                registry, memo, listing)[0]


CustomerParts = tuple[str | None, Customer | None, list[Diagnostic]]
InteractionParts = tuple[list[Interaction], "Dropped", list[Diagnostic]]
DealParts = tuple[str | None, Deal | None, list[Diagnostic]]


@dataclass
class LoadedFiles:
    """What a load read, file by file: ``crmkit watch`` applies a change to it
    (:mod:`crmkit.reload`) instead of reading 100,000 unchanged files again."""

    customers: dict[str, CustomerParts]
    interactions: dict[str, InteractionParts]
    deals: dict[str, DealParts]
    #: Customer files too broken to load: id -> path.
    broken: dict[str, str]
    #: Builds an interaction file's parts from its parsed YAML.
    interaction_records: Callable[[ParsedFile], InteractionParts]
    #: The loader's problems of each record file (parse, schema and references).
    problems_at: dict[str, list[Diagnostic]] = field(default_factory=dict)
    #: The loader's other problems (settings, folders, ignored files).
    other_problems: list[Diagnostic] = field(default_factory=list)
    #: Former customer ids (``aliases:``) -> the customer they now are.
    aliases: dict[str, str] = field(default_factory=dict)

    def file_problems(self) -> list[Diagnostic]:
        """Every problem the loader found (not the plugins' checks)."""
        found = list(self.other_problems)
        for problems in self.problems_at.values():
            found.extend(problems)
        return found


def load_workspace_files(root: Path, host: PluginHost | None = None, use_cache: bool = True,
                         settings_file: SettingsFiles | None = None,
                         cache: ParseCache | None = None, today: dt.date | None = None,
                         registry: Registry | None = None, memo: Memo | None = None,
                         listing: scan.Listing | None = None, previous: Workspace | None = None
                         ) -> tuple[Workspace, LoadedFiles]:
    """:func:`load_workspace`, and what it read per file.  ``previous``: the workspace
    this load replaces, whose rule results ``memo`` keeps; the memo is told which
    customers differ before any rule runs."""
    with gc_paused():
        return _load_workspace(root, host, use_cache, settings_file, cache, today, registry,
                               memo, listing, previous)


def preliminary_settings(settings_file: SettingsFiles) -> Settings:
    """``crmkit.yaml`` as written, every section accepted, and the playbooks: what plugins
    get to register their rules (before anything is validated against what they declare)."""
    return _with_playbooks(parse_settings(settings_file.data, CONFIG_FILE, [], None),
                           settings_file)


def _with_playbooks(settings: Settings, settings_file: SettingsFiles) -> Settings:
    if not settings_file.playbooks:
        return settings
    return replace(settings, playbooks=MappingProxyType(dict(settings_file.playbooks)))


def settings_with_values(settings_file: SettingsFiles, registry: Registry | None,
                         out: list[Diagnostic]) -> Settings:
    """``crmkit.yaml`` checked against the core's keys and everything plugins declared."""
    from ..engine.settings import validate

    claimed = set(registry.tree.children) if registry is not None else set()
    unreadable = settings_file.data is None and any(
        d.is_error for d in settings_file.config.diagnostics)  # said already: not "empty"
    settings = _with_playbooks(
        parse_settings(settings_file.data, CONFIG_FILE, [] if unreadable else out,
                       lambda: claimed), settings_file)
    if registry is None:
        return settings
    values, problems = validate(registry.tree, settings.sections, settings.locate,
                                registry.names())
    out.extend(problems)
    settings = replace(settings, values=MappingProxyType(values))
    registry.complete(settings)
    return settings


@dataclass
class Prepared:
    """What a load needs before it reads a record: the checked settings, and how to
    turn each record folder's files into records."""

    settings: Settings
    #: The settings' and plugins' loading problems so far.
    problems: list[Diagnostic]
    #: A digest of what shapes the records besides the files (types, time zone, currency).
    fingerprint: str
    interaction_records: Callable[[ParsedFile], InteractionParts]

    def builder(self, folder: str, rel: str) -> Callable[[ParsedFile], Any]:
        if folder == "customers":
            return customer_records(rel)
        if folder == "interactions":
            return self.interaction_records
        return _stem_records(rel, "deal", parse_deal)


def prepare(root: Path, host: PluginHost | None, settings_file: SettingsFiles | None,
            registry: Registry | None) -> tuple[Prepared, Registry | None]:
    out: list[Diagnostic] = []
    if settings_file is None:
        settings_file, _ = read_settings_data(root)
    out.extend(settings_file.diagnostics)
    if registry is None and host is not None:
        from ..engine.registry import collect

        registry = collect(host, preliminary_settings(settings_file))
    settings = settings_with_values(settings_file, registry, out)
    extra_types = registry.interaction_types if registry is not None else ()
    known_types = frozenset((*BASE_INTERACTION_TYPES, *settings.interaction_types, *extra_types))
    tz = zoneinfo.ZoneInfo(settings.timezone)
    fingerprint = hashlib.sha1(
        f"{sorted(known_types)}|{settings.timezone}|{settings.currency}".encode()).hexdigest()
    return Prepared(settings, out, fingerprint,
                    _interaction_builder(known_types, tz, settings)), registry


def _load_workspace(root: Path, host: PluginHost | None, use_cache: bool,
                    settings_file: SettingsFiles | None, cache: ParseCache | None,
                    today: dt.date | None, registry: Registry | None, memo: Memo | None,
                    listing: scan.Listing | None = None, previous: Workspace | None = None
                    ) -> tuple[Workspace, LoadedFiles]:
    prepared, registry = prepare(root, host, settings_file, registry)
    out = prepared.problems
    keep_in_memory = cache is not None
    if cache is None:
        cache = ParseCache(root if use_cache else None, prepared.fingerprint)
    cache.use_fingerprint(prepared.fingerprint)
    hits, misses = cache.hits, cache.misses
    reader = _Reader(root, cache)
    folders: Folders = {}
    jobs = {folder: [(path, rel, st, prepared.builder(folder, rel))
                     for path, rel, st in iter_files(root, folder, out, listing, folders)]
            for folder in RECORD_FOLDERS}
    reader.prefetch([job for folder in RECORD_FOLDERS for job in jobs[folder]])
    parts = {folder: {rel: reader.read(path, rel, st, build)
                      for path, rel, st, build in jobs[folder]}
             for folder in RECORD_FOLDERS}
    loaded = LoadedFiles(customers=parts["customers"], interactions=parts["interactions"],
                         deals=parts["deals"], broken={},
                         interaction_records=prepared.interaction_records)

    customers, loaded.broken = _customers(loaded.customers, out)
    interactions, dropped = _interactions(loaded.interactions, out)
    loaded.aliases = _aliases(customers, loaded.broken, out)
    if loaded.aliases:
        customers, interactions, dropped = _resolve_aliases(loaded.aliases, customers,
                                                            interactions, dropped)
    deals, deal_problems = deals_of(loaded.deals, customers, loaded.broken, loaded.aliases)
    out.extend(deal_problems)
    interactions.sort(key=lambda i: i.sort_key)  # once; the per-customer lists keep the order
    by_customer = _link(customers, interactions, out, loaded.broken, dropped)
    linked = tuple(i for i in interactions if i.customer in customers)
    for diagnostic in out:
        path = diagnostic.location.path if diagnostic.location else None
        if path in loaded.customers or path in loaded.interactions or path in loaded.deals:
            loaded.problems_at.setdefault(path, []).append(diagnostic)
        else:
            loaded.other_problems.append(diagnostic)
    workspace = Workspace(
        root=root, settings=prepared.settings,
        customers=MappingProxyType(dict(sorted(customers.items()))), interactions=linked,
        deals=MappingProxyType(deals), diagnostics=(),
        by_customer=MappingProxyType(by_customer),
        deals_by_customer=deals_index(deals),
        stats=LoadStats(reader.files, cache.misses - misses + reader.parsed_ahead,
                        cache.hits - hits),
    )
    if use_cache or keep_in_memory:
        cache.files = _files_to_keep(cache, reader, loaded, workspace)
        if listing is not None and all(d in listing.digests for d in folders):
            cache.files.folders = {d: (listing.digests[d], count, found)
                                   for d, (count, found) in folders.items()}
        if not keep_in_memory:
            cache.save()
    if memo is not None and previous is not None:
        from ..incremental.reload import changed_customers

        memo.changed(changed_customers(previous, workspace))
    return with_plugin_checks(workspace, out, host, today, registry, memo), loaded


def _files_to_keep(cache: ParseCache, reader: _Reader, loaded: LoadedFiles,
                   workspace: Workspace) -> Files:
    """What the next run starts from (:mod:`crmkit.incremental.state`)."""
    index = cache.keep(list(reader.keys.items()), ids_of)
    customers = workspace.customers
    named = sum(1 for p in loaded.customers.values() if p[0] is not None and p[1] is not None)
    lengths = {cid: len(history) for cid, history in workspace.by_customer.items()}
    return Files(
        cache.fingerprint, index, cache.store.name,
        problems={rel: tuple(found) for rel, found in loaded.problems_at.items() if found},
        customers={cid: c.location.path for cid, c in customers.items()},
        lengths=lengths, deals=dict(loaded.deals),
        # aliases (resolved or not) are linked by a full load only
        clean=not loaded.broken and named == len(customers)
        and not any(c.aliases for c in customers.values()))


def deals_index(deals: Mapping[str, Deal]) -> MappingProxyType[str, tuple[Deal, ...]]:
    grouped: dict[str, list[Deal]] = {}
    for deal_id in sorted(deals):
        deal = deals[deal_id]
        grouped.setdefault(deal.customer, []).append(deal)
    return MappingProxyType({cid: tuple(items) for cid, items in grouped.items()})


def deals_moved(before: Mapping[str, tuple[Deal, ...]], after: Mapping[str, tuple[Deal, ...]]
                ) -> set[str]:
    """The customers whose deals differ between two :func:`deals_index` results (their
    rules read them, so the memo must compute them again)."""
    return {cid for cid in before.keys() | after.keys() if before.get(cid) != after.get(cid)}


def with_plugin_checks(workspace: Workspace, found: list[Diagnostic], host: PluginHost | None,
                       today: dt.date | None, registry: Registry | None = None,
                       memo: Memo | None = None) -> Workspace:
    """``workspace`` with its diagnostics: ``found`` by the loader, plus the plugins'
    loading and registration problems, their checks and ``crmkit_validate``."""
    out = list(found)
    if host is not None:
        out.extend(host.diagnostics)
        if today is None:
            today = dt.datetime.now(zoneinfo.ZoneInfo(workspace.settings.timezone)).date()
        if registry is not None:
            from ..engine.evaluate import Engine

            out.extend(registry.diagnostics)
            engine = Engine(workspace, registry, today, memo)
            out.extend(engine.checks())
            out.extend(engine.problems)
        from ..engine.templates import template_folders

        types = (*BASE_INTERACTION_TYPES, *workspace.settings.interaction_types,
                 *(registry.interaction_types if registry is not None else ()))
        folders, _ = template_folders(workspace.root, host)  # a failure: told when rendering
        problems_from_plugins, failures = host.call(
            "crmkit_validate", workspace=workspace, today=today,
            interaction_types=tuple(dict.fromkeys(types)), template_dirs=tuple(folders))
        for item in problems_from_plugins:
            if isinstance(item, Diagnostic):
                out.append(item)
        out.extend(failures)
    return replace(workspace, diagnostics=tuple(sorted(out, key=sort_key)))


R = TypeVar("R")


def _stem_records(rel: str, kind: str, parse: Callable[[Any, str, str, list[Diagnostic]], R | None]
                  ) -> Callable[[ParsedFile], tuple[str | None, R | None, list[Diagnostic]]]:
    """Read a file whose name is its record's id (customers, deals): the id, the record
    (``None`` if too broken or the id is invalid) and every problem, for the cache."""
    def build(parsed: ParsedFile) -> tuple[str | None, R | None, list[Diagnostic]]:
        out = list(parsed.diagnostics)
        record_id = _stem_id(rel, kind, out)
        if parsed.data is None:
            return record_id, None, out
        record = parse(parsed.data, rel, record_id or "-", out)  # report problems even so
        return record_id, record if record_id else None, out

    return build


def customer_records(rel: str) -> Callable[[ParsedFile], CustomerParts]:
    """Builds a customer file's parts (id, record, problems) from its parsed YAML."""
    return _stem_records(rel, "customer", parse_customer)


def _customers(files: dict[str, CustomerParts], out: list[Diagnostic]
               ) -> tuple[dict[str, Customer], dict[str, str]]:
    """The customers, and the ids of customer files too broken to load (id → path)."""
    customers: dict[str, Customer] = {}
    broken: dict[str, str] = {}
    for rel, (customer_id, customer, problems) in files.items():
        out.extend(problems)
        if customer_id is None:
            continue
        if customer_id in customers:
            out.append(Diagnostic.error(
                f"duplicate customer id {customer_id!r} (also in "
                f"{customers[customer_id].location.path})", Location(rel)))
            continue
        if customer is not None:
            customers[customer_id] = customer
        else:
            broken[customer_id] = rel
    return customers, broken


Dropped = list[tuple[str, Location]]


def _interaction_builder(known_types: frozenset[str], tz: dt.tzinfo, settings: Settings
                         ) -> Callable[[ParsedFile], tuple[list[Interaction], Dropped,
                                                           list[Diagnostic]]]:
    """Turns a parsed interaction file into its records, the customer references of
    records too broken to use, and every problem (what the cache keeps per file)."""
    def build(parsed: ParsedFile) -> tuple[list[Interaction], Dropped, list[Diagnostic]]:
        problems = list(parsed.diagnostics)
        refs: Dropped = []
        if parsed.data is None:
            if not parsed.diagnostics:
                problems.append(Diagnostic.warning("empty file", Location(parsed.path)))
            return [], refs, problems
        records = parse_interactions(parsed.data, parsed.path, problems, known_types, tz,
                                     settings.currency, None, refs)
        return records, refs, problems

    return build


def _interactions(files: dict[str, InteractionParts], out: list[Diagnostic]
                  ) -> tuple[list[Interaction], Dropped]:
    """Every interaction, and the customer references of those too broken to use."""
    interactions: list[Interaction] = []
    dropped: Dropped = []
    for records, refs, problems in files.values():
        out.extend(problems)
        interactions.extend(records)
        dropped.extend(refs)
    return interactions, dropped


def deals_of(files: Mapping[str, DealParts], customers: Mapping[str, Customer],
             broken: Mapping[str, str], aliases: Mapping[str, str] | None = None
             ) -> tuple[dict[str, Deal], list[Diagnostic]]:
    """The deals, and every problem of the deal files (their own, duplicate ids and
    customers that do not exist); a deal naming a former id (``aliases``) is its
    customer's."""
    deals: dict[str, Deal] = {}
    out: list[Diagnostic] = []
    for rel, (deal_id, deal, problems) in files.items():
        out.extend(problems)
        if deal_id is None or deal is None:
            continue
        if deal_id in deals:
            out.append(Diagnostic.error(f"duplicate deal id {deal_id!r}", Location(rel)))
            continue
        if aliases and deal.customer in aliases:
            deal = replace(deal, customer=aliases[deal.customer])
        deals[deal_id] = deal
    for deal in deals.values():
        if deal.customer not in customers and deal.customer not in broken:
            out.append(Diagnostic.error(unknown_customer(deal.customer, customers),
                                        deal.locate("customer")))
    return deals, out


def _aliases(customers: Mapping[str, Customer], broken: Mapping[str, str],
             out: list[Diagnostic]) -> dict[str, str]:
    """Former id -> customer, from the customers' ``aliases:`` (``crmkit merge``).  An
    alias that is also a customer's id, or another customer's alias, is an error and
    links nothing."""
    found: dict[str, str] = {}
    clashing: set[str] = set()
    for customer in customers.values():
        for alias in customer.aliases:
            where = customer.locate("aliases")
            if alias in customers or alias in broken:
                out.append(Diagnostic.error(
                    f"alias {alias!r} is an existing customer id (customers/{alias}.yaml): "
                    f"finish the merge ('crmkit merge {customer.id} {alias}') or remove the "
                    "alias", where))
            elif alias in found and found[alias] != customer.id:
                out.append(Diagnostic.error(
                    f"alias {alias!r} is also an alias of {found[alias]!r}", where))
                clashing.add(alias)
            else:
                found[alias] = customer.id
    for alias in clashing:
        found.pop(alias, None)
    return found


def _resolve_aliases(aliases: Mapping[str, str], customers: dict[str, Customer],
                     interactions: list[Interaction], dropped: Dropped
                     ) -> tuple[dict[str, Customer], list[Interaction], Dropped]:
    """Records that name a former id become its customer's."""
    interactions = [replace(i, customer=aliases[i.customer]) if i.customer in aliases else i
                    for i in interactions]
    dropped = [(aliases.get(cid, cid), where) for cid, where in dropped]
    customers = {cid: replace(c, referred_by=aliases[c.referred_by])
                 if c.referred_by in aliases else c for cid, c in customers.items()}
    return customers, interactions, dropped


def unknown_customer(customer_id: str, customers: Mapping[str, Customer]) -> str:
    return f"unknown customer {customer_id!r}{did_you_mean(customer_id, customers, 'en')}"


def _link(customers: dict[str, Customer], interactions: list[Interaction],
          out: list[Diagnostic], broken: dict[str, str],
          dropped: Dropped) -> dict[str, tuple[Interaction, ...]]:
    """Check references between customers and interactions and index interactions per
    customer (``interactions`` is sorted, so each customer's history is too)."""
    grouped: dict[str, list[Interaction]] = {}
    orphaned: dict[str, int] = {}
    for interaction in interactions:
        if interaction.customer in broken:
            orphaned[interaction.customer] = orphaned.get(interaction.customer, 0) + 1
        elif interaction.customer not in customers:
            out.append(Diagnostic.error(unknown_customer(interaction.customer, customers),
                                        interaction.locate("customer")))
        else:
            grouped.setdefault(interaction.customer, []).append(interaction)
    out.extend(dropped_problems(dropped, customers, broken))
    for customer_id, count in sorted(orphaned.items()):
        out.append(Diagnostic.warning(
            f"{count} interaction(s) of {customer_id!r} are left out until this file is fixed",
            Location(broken[customer_id])))
    for customer in customers.values():
        out.extend(referral_problems(customer, customers, broken))
    return {cid: tuple(items) for cid, items in grouped.items()}


def interaction_file_problems(parts: InteractionParts, customers: Mapping[str, Any]
                              ) -> list[Diagnostic]:
    """An interaction file's problems once linked to ``customers`` (none broken)."""
    records, refs, problems = parts
    found = list(problems)
    for record in records:
        if record.customer not in customers:
            found.append(Diagnostic.error(unknown_customer(record.customer, customers),
                                          record.locate("customer")))
    found.extend(dropped_problems(refs, customers, {}))
    return found


def dropped_problems(dropped: Dropped, customers: Mapping[str, Customer],
                     broken: Mapping[str, str]) -> Iterator[Diagnostic]:
    """Unknown customers named by interactions too broken to load."""
    for customer_id, where in dropped:
        if customer_id not in customers and customer_id not in broken:
            yield Diagnostic.error(unknown_customer(customer_id, customers), where)


def referral_problems(customer: Customer, customers: Mapping[str, Customer],
                      broken: Mapping[str, str]) -> Iterator[Diagnostic]:
    ref = customer.referred_by
    if ref and ref not in customers and ref not in broken:
        yield Diagnostic.error(f"'referred_by': {unknown_customer(ref, customers)}",
                               customer.locate("referred_by"))
    elif ref == customer.id:
        yield Diagnostic.error("'referred_by' names the customer itself",
                               customer.locate("referred_by"))
