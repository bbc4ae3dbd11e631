"""The ``crmkit`` command line.  Plugins add commands through ``crmkit_register_commands``."""

from __future__ import annotations

import datetime as dt
import sys
import traceback
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

from . import __version__, replay
from .app import App, pass_app
from .diagnostics import CrmkitError
from .export import customer_json, interaction_json
from .ids import slugify
from .model import Interaction
from .output import clean, day, echo_json, money, table
from .records import write_customer
from .scaffold import create_workspace
from .schema import (
    DIRECTIONS,
    ID_PATTERN,
    LOCALES,
    PAYMENT_STATES,
    did_you_mean,
)

FORMAT_TABLE_JSON = click.Choice(["table", "json"])


def _parse_today(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"{value!r} is not a date; write YYYY-MM-DD") from None


class CrmkitGroup(click.Group):
    """A group that also offers the commands plugins register."""

    def _app(self, ctx: click.Context) -> App:
        if not isinstance(ctx.obj, App):
            ctx.obj = App(ctx.params.get("workspace"), ctx.params.get("today"),
                          bool(ctx.params.get("verbose")),
                          use_cache=not ctx.params.get("no_cache"), one_shot=_one_shot)
        return ctx.obj

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["crmkit.argv"] = list(args)
        return super().parse_args(ctx, args)

    def _plugin_commands(self, ctx: click.Context) -> dict[str, click.Command]:
        """Each plugin's commands, guarded so that a crash names the plugin."""
        app = self._app(ctx)
        commands: dict[str, click.Command] = {}
        for impl in reversed(app.host.pm.hook.crmkit_register_commands.get_hookimpls()):
            group = click.Group()
            try:
                impl.function(cli=group)
            except Exception as exc:
                click.echo(f"error: plugin {impl.plugin_name!r} failed in "
                           f"crmkit_register_commands: {type(exc).__name__}: {exc}", err=True)
                continue
            for name, command in group.commands.items():
                if name not in self.commands and name not in commands:
                    commands[name] = _guarded(command, impl.plugin_name)
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugin_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        return self._plugin_commands(ctx).get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return self._invoke_or_replay(ctx)
        except CrmkitError as exc:
            raise click.ClickException(str(exc)) from None

    def _invoke_or_replay(self, ctx: click.Context) -> Any:
        """Replay a read-only command's output if nothing it read has changed
        (:mod:`crmkit.replay`); otherwise run it, and keep its output if it was read-only."""
        app = self._app(ctx)
        inputs = self._replay_inputs(ctx, app)
        key = replay.replay_key(*inputs) if inputs else None
        if inputs is None or key is None:
            return super().invoke(ctx)
        code = replay.play(app.root, key)
        if code is not None:
            if app.verbose:
                click.echo("(replayed: nothing changed since this command last ran; "
                           "--no-cache runs it again)", err=True)
            if code:
                sys.exit(code)
            return None
        recorder = replay.Recorder()
        code = None
        try:
            with recorder:
                try:
                    result = super().invoke(ctx)
                except click.exceptions.Exit as exc:
                    code = exc.exit_code
                    raise
                except SystemExit as exc:
                    code = exc.code if isinstance(exc.code, int) else None
                    raise
                code = 0
                return result
        finally:
            if (code is not None and recorder.recorded and recorder.complete
                    and ctx.meta.get(replay.META_READ_ONLY)
                    and replay.replay_key(*inputs) == key):  # nothing changed meanwhile
                replay.keep(app.root, key, code, recorder.chunks)

    def _replay_inputs(self, ctx: click.Context, app: App
                       ) -> tuple[Path, list[str], str, str] | None:
        """What :func:`replay.replay_key` needs, if the command about to run may be
        read-only; else ``None``."""
        if ctx.params.get("no_cache") or not self._may_be_read_only(ctx):
            return None
        try:
            return (app.root, ctx.meta.get("crmkit.argv", []), app.today.isoformat(),
                    app.raw_setting("output", "out"))
        except CrmkitError:
            return None

    def _may_be_read_only(self, ctx: click.Context) -> bool:
        """Whether the command may be read-only, without loading plugins: a plugin's
        command may be (a replay is only ever kept for a run that was read-only)."""
        args = [*getattr(ctx, "_protected_args", ()), *ctx.args]
        if not args:
            return False
        command = super().get_command(ctx, args[0])
        if command is None:
            return not args[0].startswith("-")
        for arg in args[1:]:
            if not isinstance(command, click.Group):
                break
            command = command.get_command(ctx, arg)
            if command is None:
                return False
        return bool(getattr(command, "crmkit_read_only", False))

    def resolve_command(self, ctx: click.Context, args: list[str]):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            if args and "No such command" in str(exc):
                choices = self.list_commands(ctx)
                raise click.UsageError(f"no such command {args[0]!r}"
                                       f"{did_you_mean(args[0], choices)}", ctx) from None
            raise


def _guarded(command: click.Command, plugin: str) -> click.Command:
    """Turn an unexpected exception in a plugin's command into an error naming the plugin."""
    original = command.invoke

    def invoke(ctx: click.Context) -> Any:
        try:
            return original(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, CrmkitError,
                SystemExit, KeyboardInterrupt):
            raise
        except Exception as exc:
            raise CrmkitError(f"plugin {plugin!r} failed in 'crmkit {command.name}': "
                              f"{type(exc).__name__}: {exc}") from exc

    command.invoke = invoke  # type: ignore[method-assign]
    return command


@click.group(cls=CrmkitGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-w", "--workspace", type=click.Path(file_okay=False, path_type=Path),
              is_eager=True,
              help="Workspace folder (default: $CRMKIT_WORKSPACE, else the nearest "
                   "folder upwards with a crmkit.yaml).")
@click.option("--today", callback=_parse_today, metavar="YYYY-MM-DD",
              help="Compute everything as of this date (default: today).")
@click.option("-v", "--verbose", is_flag=True, help="More detail, and tracebacks on errors.")
@click.option("--no-cache", is_flag=True,
              help="Parse every file afresh and do not replay the output of read-only "
                   "commands (see docs/performance.md).")
@click.version_option(__version__, prog_name="crmkit")
@click.pass_context
def cli(ctx: click.Context, workspace: Path | None, today: dt.date | None, verbose: bool,
        no_cache: bool) -> None:
    """crmkit: customers and interactions as YAML files, plugins that think along.

    Run a command with --help for details; docs/cli.md has examples.
    """
    if not isinstance(ctx.obj, App):
        ctx.obj = App(workspace, today, verbose, use_cache=not no_cache, one_shot=_one_shot)


# --- init -------------------------------------------------------------------------------


@cli.command()
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option("--business", help="Business name (default: the folder name).")
@click.option("--locale", type=click.Choice(LOCALES), default="en", show_default=True)
@click.option("--currency", default="EUR", show_default=True)
@click.option("--timezone", default="Europe/Berlin", show_default=True)
@click.option("--sender-name", help="Name emails are sent from.")
@click.option("--sender-email", help="Address emails are sent from.")
@pass_app
def init(app: App, directory: Path, business: str | None, locale: str, currency: str,
         timezone: str, sender_name: str | None, sender_email: str | None) -> None:
    """Create a new workspace in DIRECTORY (with a .gitignore for generated files)."""
    sections, _ = app.host.collect("crmkit_config_sections")
    name = business or directory.resolve().name
    created = create_workspace(directory, name, locale, currency.upper(), timezone,
                               sender_name, sender_email, sections)
    for path in created:
        click.echo(f"created {path}")
    click.echo(f"\nNext: cd {directory} && git init && crmkit add customer --name 'Anna Muster'")


# --- check ------------------------------------------------------------------------------


@replay.read_only
@cli.command()
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("--strict", is_flag=True, help="Exit 1 on warnings too.")
@pass_app
def check(app: App, fmt: str, strict: bool) -> None:
    """Validate the workspace; exit 1 if there are errors.

    Problems are printed as path:line:col: severity: message.
    """
    ws = app.workspace
    diagnostics = list(ws.diagnostics)
    errors = sum(1 for d in diagnostics if d.is_error)
    warnings = len(diagnostics) - errors
    if fmt == "json":
        echo_json({
            "ok": errors == 0 and not (strict and warnings),
            "errors": errors, "warnings": warnings,
            "customers": len(ws.customers), "interactions": len(ws.interactions),
            "deals": len(ws.deals),
            "diagnostics": [d.to_json() for d in diagnostics],
        })
    else:
        for diagnostic in diagnostics:
            click.echo(str(diagnostic))
        summary = (f"{len(ws.customers)} customers, {len(ws.interactions)} interactions, "
                   f"{len(ws.deals)} deals: {errors} error(s), {warnings} warning(s)")
        click.echo(summary)
        if app.verbose and ws.stats:
            click.echo(f"read {ws.stats.files} files: {ws.stats.parsed} parsed, "
                       f"{ws.stats.from_cache} from cache", err=True)
    if errors or (strict and warnings):
        sys.exit(1)


# --- add customer -----------------------------------------------------------------------


@cli.group()
def add() -> None:
    """Create a new record file (never overwrites an existing one)."""


@add.command("customer")
@click.argument("customer_id", required=False)
@click.option("--name", required=True, help="Full name (or the organisation's name).")
@click.option("--company")
@click.option("--email", "emails", multiple=True, help="Email address (repeatable).")
@click.option("--phone", "phones", multiple=True, help="Phone number (repeatable).")
@click.option("--tag", "tags", multiple=True, help="Tag (repeatable).")
@click.option("--birthday", metavar="YYYY-MM-DD")
@click.option("--source", help="How they found us: referral, ad, website, fair, ...")
@click.option("--referred-by", metavar="CUSTOMER", help="Id of the customer who referred them.")
@click.option("--email-consent", metavar="HOW",
              help="Record email consent given today, and how (e.g. 'web form').")
@click.option("--locale", type=click.Choice(LOCALES), help="Language for their emails.")
@click.option("--notes")
@pass_app
def add_customer(app: App, customer_id: str | None, name: str, company: str | None,
                 emails: tuple[str, ...], phones: tuple[str, ...], tags: tuple[str, ...],
                 birthday: str | None, source: str | None, referred_by: str | None,
                 email_consent: str | None, locale: str | None, notes: str | None) -> None:
    """Create customers/CUSTOMER_ID.yaml (the id defaults to a slug of the name)."""
    ws = app.workspace
    customer_id = customer_id or slugify(name)
    if not customer_id:
        raise CrmkitError("cannot make an id from that name; pass CUSTOMER_ID")
    if not ID_PATTERN.match(customer_id):
        example = slugify(customer_id) or "anna-mueller"
        raise CrmkitError(f"{customer_id!r} is not a valid id: use a lowercase slug "
                          f"(a-z, 0-9 and '-'), e.g. {example!r}")
    if referred_by and referred_by not in ws.customers:
        raise CrmkitError(f"--referred-by: unknown customer {referred_by!r}"
                          f"{did_you_mean(referred_by, ws.customers)}")
    data: dict[str, Any] = {"name": name}
    if company:
        data["company"] = company
    if emails:
        data["email" if len(emails) == 1 else "emails"] = (
            emails[0] if len(emails) == 1 else list(emails))
    if phones:
        data["phone" if len(phones) == 1 else "phones"] = (
            phones[0] if len(phones) == 1 else list(phones))
    for key, value in (("birthday", birthday), ("source", source),
                       ("referred_by", referred_by), ("locale", locale)):
        if value:
            data[key] = value
    if tags:
        data["tags"] = list(tags)
    if email_consent:
        data["consent"] = {"email": True, "since": app.today, "how": email_consent}
    if notes:
        data["notes"] = notes
    for other in ws.customers.values():
        shared = {e.lower() for e in other.emails} & {e.lower() for e in emails}
        if shared:
            click.echo(f"warning: {other.id} has the same email ({', '.join(sorted(shared))})",
                       err=True)
    rel = write_customer(ws, customer_id, data)
    click.echo(f"created {rel}")


# --- log --------------------------------------------------------------------------------


@cli.command()
@click.argument("customer_id", metavar="CUSTOMER")
@click.option("-t", "--type", "kind", required=True,
              help="call, email, meeting, visit, purchase, quote, service, complaint, "
                   "feedback, support, social, message, letter, note, ...")
@click.option("-m", "--summary", help="What happened, in a sentence.")
@click.option("--date", "when", metavar="YYYY-MM-DD[THH:MM]",
              help="When (default: today; a future date plans it).")
@click.option("--channel", help="phone, email, visit, web, instagram, whatsapp, fair, ...")
@click.option("--direction", type=click.Choice(DIRECTIONS))
@click.option("--amount", help="Amount of a purchase or quote.")
@click.option("--currency", help="Currency of the amount (default: the workspace's).")
@click.option("--item", "items", multiple=True, help="Item bought or quoted (repeatable).")
@click.option("--discount", help="Discount in percent (purchases).")
@click.option("--payment", type=click.Choice(PAYMENT_STATES), help="Payment status.")
@click.option("--score", type=click.IntRange(0, 10), help="Feedback score 0-10.")
@click.option("--service", help="Which service contract a service visit was for.")
@click.option("--follow-up", metavar="YYYY-MM-DD", help="Date to follow up.")
@click.option("--follow-up-what", metavar="TEXT", help="What to follow up about.")
@pass_app
def log(app: App, customer_id: str, kind: str, summary: str | None, when: str | None,
        channel: str | None, direction: str | None, amount: str | None, currency: str | None,
        items: tuple[str, ...], discount: str | None, payment: str | None, score: int | None,
        service: str | None, follow_up: str | None, follow_up_what: str | None) -> None:
    """Record an interaction with CUSTOMER as a new file below interactions/."""
    app.require_customer(customer_id)
    types = app.interaction_types()
    if kind not in types:
        raise CrmkitError(f"unknown interaction type {kind!r}{did_you_mean(kind, types)}; "
                          f"known: {', '.join(types)}")
    data: dict[str, Any] = {"customer": customer_id, "date": when or app.today.isoformat(),
                            "type": kind, "channel": channel, "direction": direction,
                            "summary": summary, "currency": currency, "payment": payment,
                            "service": service, "items": list(items), "score": score}
    for key, value in (("amount", amount), ("discount", discount)):
        if value is not None:
            try:
                data[key] = _number(Decimal(value.replace(",", ".")))
            except ArithmeticError:
                raise CrmkitError(f"--{key}: {value!r} is not a number") from None
    if follow_up:
        data["follow_up"] = ({"date": follow_up, "what": follow_up_what} if follow_up_what
                             else follow_up)
    rel = app.record_interaction(data)
    click.echo(f"created {rel}")


def _number(value: Decimal) -> int | float:
    return int(value) if value == value.to_integral_value() else float(value)


# --- show -------------------------------------------------------------------------------


def _describe(i: Interaction, currency: str) -> str:
    parts = [i.type]
    if i.channel:
        parts.append(f"({i.channel})")
    if i.summary:
        parts.append(f"— {i.summary}")
    elif i.items:
        parts.append(f"— {', '.join(item.name for item in i.items)}")
    if i.amount is not None:
        parts.append(f"[{money(i.amount, i.currency or currency)}]")
    if i.score is not None:
        parts.append(f"[score {i.score}]")
    return clean(" ".join(parts))


@replay.read_only
@cli.command()
@click.argument("customer_id", metavar="CUSTOMER")
@click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
              show_default=True)
@click.option("-n", "--limit", default=15, show_default=True,
              help="How many recent interactions to list (0 = all).")
@pass_app
def show(app: App, customer_id: str, fmt: str, limit: int) -> None:
    """The 360° view of one customer: profile, derived values, history, what is open."""
    customer = app.require_customer(customer_id)
    snap = app.snapshot
    derived = snap.derived(customer_id)
    history = snap.history(customer_id)
    labels = app.segments()[customer_id]
    reminders = [r for r in app.reminders() if r.customer == customer_id and not r.suppressed]
    deals = sorted(app.workspace.deals_of(customer_id), key=lambda d: d.id)
    currency = app.workspace.settings.currency
    if fmt == "json":
        echo_json({
            "customer": customer_json(customer), "as_of": app.today.isoformat(),
            "derived": derived.to_json(), "segments": labels,
            "reminders": [r.to_json(app.today) for r in reminders],
            "open_follow_ups": [{"date": o.follow_up.date.isoformat(), "what": o.follow_up.what,
                                 "source": str(o.interaction.location)}
                                for o in derived.open_follow_ups],
            "deals": [{"id": d.id, "title": d.title, "stage": d.stage, "value": d.value,
                       "probability": d.probability,
                       "expected_close": day(d.expected_close) or None} for d in deals],
            "history": [interaction_json(i) for i in reversed(history)],
            "planned": [interaction_json(i) for i in derived.planned],
        })
        app.warn_about_problems()
        return
    c = customer
    title = clean(c.name) + (f" ({clean(c.company)})" if c.company else "")
    lines = [f"{title}  [{c.id}]", "=" * min(79, len(title) + len(c.id) + 4)]

    def row(label: str, value: Any) -> None:
        if value not in (None, "", (), []):
            lines.append(f"{label + ':':<20}{clean(value)}")

    row("Email", ", ".join(c.emails))
    row("Phone", ", ".join(c.phones))
    row("Address", c.address.one_line() if c.address else None)
    row("Birthday", day(c.birthday))
    row("Tags", ", ".join(c.tags))
    row("Source", c.source)
    row("Referred by", c.referred_by)
    consent = ("yes" + (f", since {day(c.consent.since)}" if c.consent.since else "")
               + (f" ({c.consent.how})" if c.consent.how else "")) if c.consent.email else "no"
    row("Email consent", consent)
    row("Prefers", c.preferred_channel)
    for s in c.services:
        row("Service", f"{s.name}, every {s.interval}"
            + (f" since {day(s.start)}" if s.start else ""))
    row("Notes", c.notes)
    for key, value in c.fields.items():
        row(str(key), value)
    lines.append("")
    lines.append(f"As of {app.today.isoformat()}")
    row("Customer since", day(derived.first_purchase) or "no purchase yet")
    row("Last contact", day(derived.last_contact))
    row("Last purchase", day(derived.last_purchase))
    row("Purchases", derived.purchase_count)
    row("Revenue", money(derived.revenue, currency))
    row("Revenue 12 months", money(derived.revenue_12m, currency))
    row("Avg order value", money(derived.average_order_value, currency))
    if derived.complaint_count:
        row("Complaints", derived.complaint_count)
    if labels:
        flat = []
        for key, value in labels.items():
            if isinstance(value, dict):
                flat.extend(f"{k}" for k, v in value.items() if v is True)
            elif key.endswith("_since") or value in (None, False):
                continue
            else:
                text = key if value is True else f"{key}={value}"
                since = labels.get(f"{key}_since")
                flat.append(f"{text} (since {since})" if since else text)
        row("Segments", ", ".join(flat))
    if derived.open_follow_ups:
        lines.append("")
        lines.append("Open follow-ups")
        for o in derived.open_follow_ups:
            what = clean(o.follow_up.what or o.interaction.summary)
            lines.append(f"  {day(o.follow_up.date)}  {what}  ({o.interaction.location})")
    listed = {o.interaction.location for o in derived.open_follow_ups}
    others = [r for r in reminders if r.source not in listed]
    if others:
        lines.append("")
        lines.append("Reminders")
        for r in others:
            flag = " (overdue)" if r.overdue(app.today) else ""
            lines.append(f"  {day(r.due)}  {r.kind}: {clean(r.title)}{flag}")
    if deals:
        lines.append("")
        lines.append("Deals")
        for d in deals:
            prob = f", {d.probability:.0%}" if d.probability is not None else ""
            lines.append(f"  {d.id}: {clean(d.title)} [{d.stage}{prob}] "
                         f"{money(d.value, currency)}".rstrip())
    if derived.planned:
        lines.append("")
        lines.append("Planned")
        for i in derived.planned:
            lines.append(f"  {day(i.date)}  {_describe(i, currency)}")
    lines.append("")
    shown = list(reversed(history))
    if limit:
        shown = shown[:limit]
    noun = "interaction" if len(history) == 1 else "interactions"
    lines.append(f"History ({len(history)} {noun}" +
                 (f", latest {len(shown)}" if len(shown) < len(history) else "") + ")")
    for i in shown:
        lines.append(f"  {day(i.date)}  {_describe(i, currency)}")
    click.echo("\n".join(lines))
    app.warn_about_problems()


# --- customers --------------------------------------------------------------------------


@replay.read_only
@cli.command()
@click.option("--tag", "tags", multiple=True,
              help="Only customers with this tag (repeatable: all).")
@click.option("--segment", "segments", multiple=True, metavar="NAME[=VALUE]",
              help="Only customers in a segment, e.g. 'lifecycle=active' or a custom "
                   "segment's name (repeatable: all).")
@click.option("--format", "fmt", type=FORMAT_TABLE_JSON, default="table", show_default=True)
@pass_app
def customers(app: App, tags: tuple[str, ...], segments: tuple[str, ...], fmt: str) -> None:
    """List customers with their key figures."""
    snap = app.snapshot
    labels = app.segments() if segments else None
    chosen = []
    for c in snap.customers:
        if not all(t in c.tags for t in tags):
            continue
        if labels is not None and not all(labels.matches(c.id, s) for s in segments):
            continue
        chosen.append(c)
    currency = app.workspace.settings.currency
    if fmt == "json":
        echo_json([{**customer_json(c), "derived": snap.derived(c.id).to_json()} for c in chosen])
    else:
        rows = []
        for c in chosen:
            d = snap.derived(c.id)
            rows.append([c.id, c.name, c.company, ", ".join(c.tags), day(d.last_contact),
                         d.purchase_count, money(d.revenue_12m, currency) if d.revenue_12m else ""])
        click.echo(table(["id", "name", "company", "tags", "last contact", "purchases",
                          "revenue 12m"], rows))
        click.echo(f"{len(chosen)} of {len(snap.customers)} customers", err=True)
    app.warn_about_problems()


# --- build and watch --------------------------------------------------------------------


@cli.command()
@pass_app
def build(app: App) -> None:
    """Write every generated file (reports, reminder calendar) to the output folder."""
    written = app.build()
    for path in written:
        click.echo(f"wrote {app.display_path(path)}")
    app.warn_about_problems()


@cli.command()
@click.option("--serve", "serve_", is_flag=True,
              help="Also serve the output folder on 127.0.0.1; pages reload themselves.")
@click.option("--port", default=8000, show_default=True, type=click.IntRange(0, 65535),
              help="Port for --serve (0 picks a free one).")
@pass_app
def watch(app: App, serve_: bool, port: int) -> None:
    """Rebuild the output whenever a workspace file changes (Ctrl-C stops)."""
    from .watch import Watcher

    watcher = Watcher(app.root, app._today, lambda line: click.echo(line))
    try:
        watcher.run(port if serve_ else None)
    except OSError as exc:
        raise CrmkitError(f"cannot serve on 127.0.0.1:{port}: {exc.strerror}") from None


# --- plugins ----------------------------------------------------------------------------


@replay.read_only
@cli.command()
@click.option("--format", "fmt", type=FORMAT_TABLE_JSON, default="table", show_default=True)
@pass_app
def plugins(app: App, fmt: str) -> None:
    """List plugins: stock, installed and the workspace's own, with their hooks."""
    host = app.host
    infos = sorted(host.plugins, key=lambda p: (p.kind != "stock", p.kind, p.name))
    if fmt == "json":
        echo_json([{"name": p.name, "kind": p.kind, "origin": p.origin, "version": p.version,
                    "enabled": not p.disabled, "hooks": list(p.hooks)} for p in infos])
    else:
        click.echo(table(["name", "kind", "version", "hooks"], [
            [p.name, p.kind, p.version or "", "(disabled)" if p.disabled else
             ", ".join(h.removeprefix("crmkit_") for h in p.hooks)] for p in infos]))
    for problem in host.diagnostics:
        click.echo(str(problem), err=True)


_one_shot = False  # True in the ``crmkit`` process itself: see App.one_shot


def main(argv: list[str] | None = None) -> None:
    """Entry point: clear one-line errors instead of tracebacks (unless --verbose)."""
    global _one_shot
    _one_shot = True
    args = sys.argv[1:] if argv is None else argv
    verbose = "-v" in args or "--verbose" in args
    try:
        cli.main(args=args, prog_name="crmkit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("aborted", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CrmkitError as exc:
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except OSError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"Error: {exc}", err=True)
        sys.exit(1)
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"Error: unexpected {type(exc).__name__}: {exc} "
                   "(run with --verbose for the traceback)", err=True)
        sys.exit(1)
