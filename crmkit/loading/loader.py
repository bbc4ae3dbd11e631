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
import zoneinfo
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar

from ..incremental import parallel
from ..incremental.cache import CACHE_DIR, Key, ParseCache, file_key, gc_paused, too_new
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
CACHE_FILE = CACHE_DIR / "parse.pickle"
YAML_SUFFIXES = (".yaml", ".yml")
RECORD_FOLDERS = ("customers", "interactions", "deals")


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
        raise CrmkitError(f"{start}: not a crmkit workspace (no {CONFIG_FILE}); "
                          "create one with 'crmkit init DIR'")
    here = Path.cwd().resolve()
    for folder in (here, *here.parents):
        if (folder / CONFIG_FILE).is_file():
            return folder
    raise CrmkitError(f"no {CONFIG_FILE} found in {here} or any parent folder; "
                      "use -w PATH, set CRMKIT_WORKSPACE, or create one with 'crmkit init DIR'")


def is_editor_file(name: str) -> bool:
    """Hidden files, editor backups and swap files (vim, emacs), and partial downloads."""
    return (name.startswith((".", "#", "~")) or name == "4913"
            or name.endswith(("~", ".swp", ".swx", ".swo", ".tmp", ".part", ".crdownload")))


def iter_files(root: Path, folder: str, out: list[Diagnostic]
               ) -> Iterator[tuple[os.DirEntry, str]]:
    """Yield ``(entry, relative posix path)`` of YAML files below ``root/folder``, sorted.

    ``os.scandir`` entries carry their stat results, which keeps a warm run close
    to the cost of listing the folders.
    """
    base = root / folder
    if not base.is_dir():
        return
    root_text = str(root.resolve())
    stack = [(str(base), folder)]
    while stack:
        path, rel_dir = stack.pop()
        try:
            with os.scandir(path) as scan:
                entries = sorted(scan, key=lambda e: e.name)
        except OSError as exc:
            out.append(Diagnostic.error(f"cannot read folder: {exc.strerror}",
                                        Location(rel_dir)))
            continue
        subdirs = []
        for entry in entries:
            name = entry.name
            if entry.is_symlink() and entry.is_dir():
                out.append(Diagnostic.warning(
                    "ignored: a linked folder (crmkit does not follow folder links)",
                    Location(f"{rel_dir}/{name}")))
                continue
            if entry.is_dir(follow_symlinks=False):
                if not name.startswith("."):
                    subdirs.append((entry.path, f"{rel_dir}/{name}"))
                continue
            if is_editor_file(name):
                continue
            rel = f"{rel_dir}/{name}"
            if not name.endswith(YAML_SUFFIXES):
                out.append(Diagnostic.warning("ignored: not a .yaml file", Location(rel)))
                continue
            if entry.is_symlink():
                target = os.path.realpath(entry.path)
                if os.path.commonpath([root_text, target]) != root_text:
                    out.append(Diagnostic.error(
                        "ignored: symlink points outside the workspace", Location(rel)))
                    continue
            yield entry, rel
        stack.extend(reversed(subdirs))


class _Reader:
    """Reads files through the parse cache and counts what it did."""

    def __init__(self, root: Path, cache: ParseCache) -> None:
        self.root = root
        self.cache = cache
        self.files = 0
        self.seen: set[str] = set()
        #: Records parsed ahead, in parallel (:mod:`crmkit.parallel`), by path.
        self.prefetched: dict[str, Any] = {}
        self._segments: list[tuple[bytes, dict[str, tuple[Key, Any]]]] = []

    def read(self, entry: os.DirEntry, rel: str, build: Callable[[ParsedFile], T]) -> T:
        """``build``'s records from the file, from the cache when the file is unchanged."""
        self.files += 1
        self.seen.add(rel)
        try:
            key = file_key(entry.stat())
        except OSError as exc:
            return build(ParsedFile(rel, None, [Diagnostic.error(
                f"cannot read: {exc.strerror}", Location(rel))]))
        cached = self.cache.get(rel, key)
        if cached is not None:
            return cached
        if rel in self.prefetched:
            return self.prefetched.pop(rel)  # the cache gets it with its segment
        records = read_records(entry.path, rel, build)
        self.cache.put(rel, key, records)
        return records

    def prefetch(self, files: list[tuple[os.DirEntry, str, Callable[[ParsedFile], Any]]]
                 ) -> None:
        """Parse the files the cache does not have on every core, when there are many
        (a cold start).  :meth:`read` takes their records from here; the parse cache
        gets them as the segments the workers pickled."""
        if len(files) - len(self.cache.entries) < parallel.MIN_ITEMS:
            return  # too few files can be missing to be worth a look (a warm start)
        missing = []
        for entry, rel, build in files:
            try:
                key = file_key(entry.stat())
            except OSError:
                continue
            if not self.cache.has(rel, key):
                missing.append((entry.path, rel, build, key))
        chunks = parallel.map_chunks(_read_chunk, missing)
        if chunks is None:
            return
        try:
            for segment, racy in chunks:
                entries = pickle.loads(segment)
                self._segments.append((segment, entries))
                self.prefetched.update((rel, entry[1]) for rel, entry in entries.items())
                self.prefetched.update(racy)
        except Exception:  # no workers (e.g. a sandbox): read() parses the rest itself
            return

    def finish(self) -> None:
        """Hand the prefetched segments to the parse cache (after reading, so that
        the reads count them as parsed, not as cache hits)."""
        for segment, entries in self._segments:
            self.cache.add_segment(segment, entries)
        self._segments.clear()


def read_records(path: str, rel: str, build: Callable[[ParsedFile], T]) -> T:
    """Read, parse and ``build`` one file; problems become diagnostics, never exceptions."""
    try:
        with open(path, "rb") as handle:
            data = handle.read()
    except OSError as exc:
        return build(ParsedFile(rel, None, [Diagnostic.error(
            f"cannot read: {exc.strerror}", Location(rel))]))
    return build(parse_yaml(data, rel))


def _read_chunk(jobs: Sequence[tuple[str, str, Callable[[ParsedFile], Any], Key]]
                ) -> tuple[bytes, dict[str, Any]]:
    """In a worker: the records of some files, pickled as a parse cache segment, and
    those of files too new to cache (:func:`~crmkit.cache.too_new`)."""
    entries: dict[str, tuple[Key, Any]] = {}
    racy: dict[str, Any] = {}
    for path, rel, build, key in jobs:
        records = read_records(path, rel, build)
        if too_new(key[1]):
            racy[rel] = records
        else:
            entries[rel] = (key, records)
    return pickle.dumps(entries, protocol=pickle.HIGHEST_PROTOCOL), racy


def read_settings_data(root: Path) -> tuple[ParsedFile, list[str]]:
    """Parse ``crmkit.yaml`` and pick out ``disable_plugins`` (needed before plugins load)."""
    rel = CONFIG_FILE
    try:
        parsed = parse_yaml((root / rel).read_bytes(), rel)
    except OSError as exc:
        raise CrmkitError(f"{root / rel}: cannot read: {exc.strerror}") from exc
    disabled: list[str] = []
    if isinstance(parsed.data, YamlMap):
        value = parsed.data.get("disable_plugins")
        if isinstance(value, list):
            disabled = [str(v) for v in value if isinstance(v, str)]
        elif isinstance(value, str):
            disabled = [value]
    return parsed, disabled


def _stem_id(rel: str, kind: str, out: list[Diagnostic]) -> str | None:
    stem = rel.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    if not ID_PATTERN.match(stem):
        out.append(Diagnostic.error(
            f"{kind} id {stem!r} (the file name) must be a lowercase slug: "
            "a-z, 0-9 and '-', e.g. 'anna-mueller'", Location(rel)))
        return None
    return stem


def load_workspace(root: Path, host: PluginHost | None = None, use_cache: bool = True,
                   settings_file: ParsedFile | None = None,
                   cache: ParseCache | None = None, today: dt.date | None = None,
                   registry: Registry | None = None, memo: Memo | None = None) -> Workspace:
    """Load the workspace at ``root``.  Never raises for bad content: see ``diagnostics``.

    ``cache`` lets a long-running caller (``crmkit watch``) keep the parse cache in
    memory between loads; it is then not written to disk by this call.  With plugins
    (``host``) their registrations are collected unless ``registry`` is given.
    """
    return load_workspace_files(root, host, use_cache, settings_file, cache, today,
                                registry, memo)[0]


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

    def file_problems(self) -> list[Diagnostic]:
        """Every problem the loader found (not the plugins' checks)."""
        found = list(self.other_problems)
        for problems in self.problems_at.values():
            found.extend(problems)
        return found


def load_workspace_files(root: Path, host: PluginHost | None = None, use_cache: bool = True,
                         settings_file: ParsedFile | None = None,
                         cache: ParseCache | None = None, today: dt.date | None = None,
                         registry: Registry | None = None, memo: Memo | None = None
                         ) -> tuple[Workspace, LoadedFiles]:
    """:func:`load_workspace`, and what it read per file."""
    with gc_paused():
        return _load_workspace(root, host, use_cache, settings_file, cache, today, registry,
                               memo)


def preliminary_settings(settings_file: ParsedFile) -> Settings:
    """``crmkit.yaml`` as written, every section accepted: what plugins get to register
    their rules (before anything is validated against what they declare)."""
    return parse_settings(settings_file.data, CONFIG_FILE, [], None)


def settings_with_values(settings_file: ParsedFile, registry: Registry | None,
                         out: list[Diagnostic]) -> Settings:
    """``crmkit.yaml`` checked against the core's keys and everything plugins declared."""
    from ..engine.settings import validate

    claimed = set(registry.tree.children) if registry is not None else set()
    settings = parse_settings(settings_file.data, CONFIG_FILE, out, lambda: claimed)
    if registry is None:
        return settings
    values, problems = validate(registry.tree, settings.sections, settings.locate,
                                registry.names())
    out.extend(problems)
    settings = replace(settings, values=MappingProxyType(values))
    registry.complete(settings)
    return settings


def _load_workspace(root: Path, host: PluginHost | None, use_cache: bool,
                    settings_file: ParsedFile | None, cache: ParseCache | None,
                    today: dt.date | None, registry: Registry | None, memo: Memo | None
                    ) -> tuple[Workspace, LoadedFiles]:
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
    keep_in_memory = cache is not None
    if cache is None:
        cache = ParseCache(root / CACHE_FILE if use_cache else None, fingerprint)
    cache.use_fingerprint(fingerprint)
    hits, misses = cache.hits, cache.misses
    reader = _Reader(root, cache)
    interaction_records = _interaction_builder(known_types, tz, settings)
    builders: dict[str, Callable[[str], Callable[[ParsedFile], Any]]] = {
        "customers": customer_records, "interactions": lambda rel: interaction_records,
        "deals": lambda rel: _stem_records(rel, "deal", parse_deal)}
    jobs = {folder: [(entry, rel, builders[folder](rel))
                     for entry, rel in iter_files(root, folder, out)]
            for folder in RECORD_FOLDERS}
    reader.prefetch([job for folder in RECORD_FOLDERS for job in jobs[folder]])
    parts = {folder: {rel: reader.read(entry, rel, build) for entry, rel, build in jobs[folder]}
             for folder in RECORD_FOLDERS}
    loaded = LoadedFiles(customers=parts["customers"], interactions=parts["interactions"],
                         deals=parts["deals"], broken={},
                         interaction_records=interaction_records)
    reader.finish()
    cache.prune(reader.seen)
    if not keep_in_memory:
        cache.save()

    customers, loaded.broken = _customers(loaded.customers, out)
    interactions, dropped = _interactions(loaded.interactions, out)
    deals = _deals(loaded.deals, out)
    interactions.sort(key=lambda i: i.sort_key)  # once; the per-customer lists keep the order
    by_customer = _link(customers, interactions, deals, out, loaded.broken, dropped)
    linked = tuple(i for i in interactions if i.customer in customers)
    for diagnostic in out:
        path = diagnostic.location.path if diagnostic.location else None
        if path in loaded.customers or path in loaded.interactions or path in loaded.deals:
            loaded.problems_at.setdefault(path, []).append(diagnostic)
        else:
            loaded.other_problems.append(diagnostic)
    workspace = Workspace(
        root=root, settings=settings,
        customers=MappingProxyType(dict(sorted(customers.items()))), interactions=linked,
        deals=MappingProxyType(deals), diagnostics=(),
        by_customer=MappingProxyType(by_customer),
        deals_by_customer=deals_index(deals),
        stats=LoadStats(reader.files, cache.misses - misses, cache.hits - hits),
    )
    return with_plugin_checks(workspace, out, host, today, registry, memo), loaded


def deals_index(deals: Mapping[str, Deal]) -> MappingProxyType[str, tuple[Deal, ...]]:
    grouped: dict[str, list[Deal]] = {}
    for deal_id in sorted(deals):
        deal = deals[deal_id]
        grouped.setdefault(deal.customer, []).append(deal)
    return MappingProxyType({cid: tuple(items) for cid, items in grouped.items()})


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
        problems_from_plugins, failures = host.call(
            "crmkit_validate", workspace=workspace, today=today)
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


def _deals(files: dict[str, DealParts], out: list[Diagnostic]) -> dict[str, Deal]:
    deals: dict[str, Deal] = {}
    for rel, (deal_id, deal, problems) in files.items():
        out.extend(problems)
        if deal_id is None or deal is None:
            continue
        if deal_id in deals:
            out.append(Diagnostic.error(f"duplicate deal id {deal_id!r}", Location(rel)))
            continue
        deals[deal_id] = deal
    return deals


def unknown_customer(customer_id: str, customers: Mapping[str, Customer]) -> str:
    return f"unknown customer {customer_id!r}{did_you_mean(customer_id, customers)}"


def _link(customers: dict[str, Customer], interactions: list[Interaction],
          deals: dict[str, Deal], out: list[Diagnostic], broken: dict[str, str],
          dropped: Dropped) -> dict[str, tuple[Interaction, ...]]:
    """Check references between records and index interactions per customer
    (``interactions`` is sorted, so each customer's history is too)."""
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
    for deal in deals.values():
        if deal.customer in broken:
            continue
        if deal.customer not in customers:
            out.append(Diagnostic.error(unknown_customer(deal.customer, customers),
                                        deal.locate("customer")))
    for customer in customers.values():
        out.extend(referral_problems(customer, customers, broken))
    return {cid: tuple(items) for cid, items in grouped.items()}


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
