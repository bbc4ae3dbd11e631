"""The ``crmkit`` command group and entry point.

Plugins add commands through ``crmkit_register_commands``; a read-only command's
output is replayed while nothing it reads has changed
(:mod:`crmkit.incremental.replay`).
"""

from __future__ import annotations

import datetime as dt
import sys
import traceback
from pathlib import Path
from typing import Any

import click

from .. import __version__
from ..engine.app import App
from ..engine.i18n import cli_gettext as _
from ..engine.i18n import install_for_click
from ..engine.plugins import PluginHost, may_define_command, template_in_traceback, trust_file
from ..engine.plugins import trust as trust_workspace
from ..incremental import replay
from ..incremental.memo import BrokenState
from ..loading.schema import did_you_mean
from ..model import CrmkitError
from ..model.text import clean


def _parse_today(ctx: click.Context, param: click.Parameter, value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(_("%(value)s is not a date; write YYYY-MM-DD")
                                % {"value": repr(value)}) from None


class CrmkitGroup(click.Group):
    """A group that also offers the commands plugins register."""

    def _app(self, ctx: click.Context) -> App:
        if not isinstance(ctx.obj, App):
            ctx.obj = App(ctx.params.get("workspace"), ctx.params.get("today"),
                          bool(ctx.params.get("verbose")),
                          use_cache=not ctx.params.get("no_cache"), one_shot=_one_shot,
                          workspace_plugins=not ctx.params.get("no_workspace_plugins"))
        return ctx.obj

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        ctx.meta["crmkit.argv"] = list(args)
        return super().parse_args(ctx, args)

    def _plugin_commands(self, ctx: click.Context, workspace: bool = False
                         ) -> dict[str, click.Command]:
        """Each plugin's commands (``crmkit_register_commands``, called through pluggy),
        guarded so that a crash names the plugin: crmkit's own and installed plugins',
        or (``workspace``) the workspace plugins' ones."""
        key = "crmkit.workspace_commands" if workspace else "crmkit.plugin_commands"
        cached = ctx.meta.get(key)
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        app = self._app(ctx)
        host = app.host if workspace else app.base_host
        group = _PluginGroup(host)
        kinds = ("workspace",) if workspace else ("stock", "installed")
        _, problems = host.call("crmkit_register_commands", kinds=kinds, cli=group)
        for problem in problems:
            click.echo(f"error: {problem.message}", err=True)
        taken = self.commands if workspace is False else {
            **self.commands, **self._plugin_commands(ctx)}
        commands = {name: _guarded(command, group.owners[name])
                    for name, command in group.commands.items() if name not in taken}
        ctx.meta[key] = commands
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        """Built-in commands and those of crmkit's own and installed plugins: listing
        runs no workspace code (a workspace plugin's command runs when named)."""
        return sorted({*super().list_commands(ctx), *self._plugin_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        command = self._plugin_commands(ctx).get(cmd_name)
        if command is not None:
            return command
        app = self._app(ctx)
        try:
            root = app.root
        except CrmkitError:
            return None
        if not may_define_command(root, cmd_name):
            return None  # a mistyped command: no workspace code runs to find out
        return self._plugin_commands(ctx, workspace=True).get(cmd_name)

    def invoke(self, ctx: click.Context) -> Any:
        finished = False
        try:
            result = self._invoke_or_replay(ctx)
            finished = True
            return result
        except CrmkitError as exc:
            finished = True
            raise click.ClickException(clean(str(exc))) from None
        except BrokenState as exc:
            ctx.obj.forget_state()
            raise click.ClickException(
                _("%(problem)s; crmkit removed what it kept from earlier runs: run the "
                  "command again") % {"problem": exc}) from None
        except (SystemExit, click.exceptions.Exit, click.ClickException):
            finished = True
            raise
        finally:
            if finished and isinstance(ctx.obj, App):
                ctx.obj.save_state()  # not after Ctrl-C or a crash: quit quickly

    def _invoke_or_replay(self, ctx: click.Context) -> Any:
        """Replay a read-only command's output if nothing it read has changed
        (:mod:`crmkit.replay`); otherwise run it, and keep its output if it was read-only."""
        app = self._app(ctx)
        inputs = self._replay_inputs(ctx, app)
        key, listing = replay.replay_key(*inputs) if inputs else (None, None)
        if listing is not None:
            app._listing = listing  # the loader walks no second time
        if inputs is None or key is None:
            return self._run(ctx)
        code = replay.play(app.root, key)
        if code is not None:
            if app.verbose:
                click.echo(_("(replayed: nothing changed since this command last ran; "
                             "--no-cache runs it again)"), err=True)
            if code:
                sys.exit(code)
            return None
        recorder = replay.Recorder()
        code = None
        try:
            with recorder:
                try:
                    result = self._run(ctx)
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
                    and ctx.meta.get(replay.META_READ_ONLY)):
                replay.keep(app.root, key, code, recorder.chunks)

    def _run(self, ctx: click.Context) -> Any:
        """Run the command; then say which record folders could not be read (``check``
        lists them itself) and print what plugins reported: exit 1 if a rule or hook
        failed (one bad rule never switches the others off, nor hides that it failed)."""
        try:
            result = super().invoke(ctx)
        except (SystemExit, click.exceptions.Exit, click.ClickException, CrmkitError):
            self._warn_unread(ctx)
            raise
        self._warn_unread(ctx)
        if isinstance(ctx.obj, App) and ctx.obj.report_problems():
            sys.exit(1)
        return result

    @staticmethod
    def _warn_unread(ctx: click.Context) -> None:
        app = ctx.obj
        if not isinstance(app, App) or ctx.invoked_subcommand == "check":
            return
        for problem in app.unread_folders():
            if problem not in app._printed:
                app._printed.add(problem)
                click.echo(str(problem), err=True)

    def _replay_inputs(self, ctx: click.Context, app: App
                       ) -> tuple[Path, list[str], str, str] | None:
        """What :func:`replay.replay_key` needs, if the command about to run may be
        read-only; else ``None``."""
        if ctx.params.get("no_cache") or not self._may_be_read_only(ctx):
            return None
        try:
            return (app.root, ctx.meta.get("crmkit.argv", []), app.today.isoformat(),
                    app._raw_setting("output", "out"))
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
        return replay.may_replay(command)

    def resolve_command(self, ctx: click.Context, args: list[str]):
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as exc:
            if args and "No such command" in str(exc):
                choices = self.list_commands(ctx)
                raise click.UsageError(_("no such command %(name)s") % {"name": repr(args[0])}
                                       + did_you_mean(args[0], choices), ctx) from None
            raise


class _PluginGroup(click.Group):
    """Collects plugins' commands and which plugin added each (the first one wins)."""

    def __init__(self, host: PluginHost) -> None:
        super().__init__()
        self.host = host
        self.owners: dict[str, str] = {}

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if name is None or name in self.commands:
            return
        super().add_command(cmd, name)
        self.owners[name] = self.host.current or "?"


def _guarded(command: click.Command, plugin: str) -> click.Command:
    """Turn an unexpected exception in a plugin's command into an error naming the plugin."""
    original = command.invoke

    def invoke(ctx: click.Context) -> Any:
        try:
            return original(ctx)
        except (click.ClickException, click.exceptions.Exit, click.Abort, CrmkitError,
                SystemExit, KeyboardInterrupt, BrokenState):
            raise  # BrokenState: the core's, not the plugin's (the state is removed)
        except Exception as exc:
            app = ctx.find_object(App)
            where = template_in_traceback(exc, app.root if app is not None else None)
            raise CrmkitError((f"{where}: " if where else "") + _(
                "plugin %(plugin)s failed in 'crmkit %(command)s': %(error)s") % {
                "plugin": repr(plugin), "command": command.name,
                "error": f"{type(exc).__name__}: {exc}"}) from exc

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
@click.option("--no-workspace-plugins", is_flag=True,
              help="Do not run the workspace's plugins/*.py, trusted or not (see "
                   "'crmkit trust').")
@click.version_option(__version__, prog_name="crmkit")
@click.pass_context
def cli(ctx: click.Context, workspace: Path | None, today: dt.date | None, verbose: bool,
        no_cache: bool, no_workspace_plugins: bool) -> None:
    """crmkit: customers and interactions as YAML files, plugins that think along.

    Run a command with --help for details; docs/cli.md has examples.  Commands of
    the workspace's own plugins/*.py run when named but are not listed here
    (listing runs no workspace code).
    """
    if not isinstance(ctx.obj, App):
        ctx.obj = App(workspace, today, verbose, use_cache=not no_cache, one_shot=_one_shot,
                      workspace_plugins=not no_workspace_plugins)


@cli.command()
@click.argument("directory", required=False,
                type=click.Path(file_okay=False, exists=True, path_type=Path))
@click.pass_obj
def trust(app: App, directory: Path | None) -> None:
    """Let the workspace's own plugins/*.py run (default: the current workspace).

    A workspace's plugins are code.  Like git's safe.directory, crmkit runs them
    only in workspaces you trust: one you made with 'crmkit init', one you named
    here, or any when CRMKIT_TRUST_WORKSPACE=1 is set (CI).  The list is
    $XDG_CONFIG_HOME/crmkit/trusted (default ~/.config/crmkit/trusted).
    """
    root = directory if directory is not None else app.root
    try:
        added = trust_workspace(root)
    except OSError as exc:
        raise CrmkitError(_("cannot record %(folder)s as trusted in %(file)s: %(error)s") % {
            "folder": root, "file": trust_file(), "error": exc.strerror or exc}) from None
    shown = clean(directory if directory is not None else root)
    click.echo((_("trusted %(folder)s: its plugins/*.py will run") if added
                else _("%(folder)s is trusted already")) % {"folder": shown})


_one_shot = False  # True in the ``crmkit`` process itself: see App.one_shot


def main(argv: list[str] | None = None) -> None:
    """Entry point: clear one-line errors instead of tracebacks (unless --verbose)."""
    global _one_shot
    _one_shot = True
    install_for_click()  # click's own words (Error:, No such option) in the terminal's language
    args = sys.argv[1:] if argv is None else argv
    verbose = "-v" in args or "--verbose" in args
    try:
        cli.main(args=args, prog_name="crmkit", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo(_("aborted"), err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except CrmkitError as exc:
        click.echo(_("Error: %(message)s") % {"message": clean(exc)}, err=True)
        sys.exit(1)
    except OSError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(_("Error: %(message)s") % {"message": clean(exc)},
                   err=True)  # OSError names the file
        sys.exit(1)
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        click.echo(_("Error: unexpected %(error)s (run with --verbose for the traceback)")
                   % {"error": f"{type(exc).__name__}: {clean(exc)}"}, err=True)
        sys.exit(1)
