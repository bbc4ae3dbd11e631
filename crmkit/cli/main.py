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
        """Each plugin's commands (``crmkit_register_commands``, called through pluggy),
        guarded so that a crash names the plugin."""
        cached = ctx.meta.get("crmkit.plugin_commands")
        if cached is not None:
            return cached  # type: ignore[no-any-return]
        app = self._app(ctx)
        group = _PluginGroup(app)
        _, problems = app.host.call("crmkit_register_commands", cli=group)
        for problem in problems:
            click.echo(f"error: {problem.message}", err=True)
        commands = {name: _guarded(command, group.owners[name])
                    for name, command in group.commands.items() if name not in self.commands}
        ctx.meta["crmkit.plugin_commands"] = commands
        return commands

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *self._plugin_commands(ctx)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        return self._plugin_commands(ctx).get(cmd_name)

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
                f"{exc}; crmkit removed what it kept from earlier runs: run the command "
                "again") from None
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
                    and ctx.meta.get(replay.META_READ_ONLY)):
                replay.keep(app.root, key, code, recorder.chunks)

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


class _PluginGroup(click.Group):
    """Collects plugins' commands and which plugin added each (the first one wins)."""

    def __init__(self, app: App) -> None:
        super().__init__()
        self.app = app
        self.owners: dict[str, str] = {}

    def add_command(self, cmd: click.Command, name: str | None = None) -> None:
        name = name or cmd.name
        if name is None or name in self.commands:
            return
        super().add_command(cmd, name)
        self.owners[name] = self.app.host.current or "?"


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
        click.echo(f"Error: {clean(exc)}", err=True)
        sys.exit(1)
    except OSError as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"Error: {clean(exc)}", err=True)  # OSError names the file
        sys.exit(1)
    except Exception as exc:
        if verbose:
            traceback.print_exc()
        click.echo(f"Error: unexpected {type(exc).__name__}: {clean(exc)} "
                   "(run with --verbose for the traceback)", err=True)
        sys.exit(1)
