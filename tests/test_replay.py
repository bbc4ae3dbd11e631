"""Read-only commands replay their output when nothing they read has changed."""

import os
import subprocess
import time
from pathlib import Path

from conftest import CRMKIT, age_files

from crmkit.incremental.replay import REPLAY_DIR, code_files

REPLAYED = "(replayed: nothing changed since this command last ran"

FILES = {
    "customers/anna.yaml": "name: Anna Alt\nbirthday: 1980-12-01\n",
    "interactions/2026/a.yaml":
        "- {customer: anna, date: 2026-01-10, type: purchase, amount: 80}\n",
}


def crmkit(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([CRMKIT, "-v", "-w", root, "--today", "2026-11-20", *args],
                          capture_output=True, text=True)


def kept(root: Path) -> list[str]:
    folder = root / REPLAY_DIR
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


def rewrite(path: Path, text: str, age: float = 30) -> None:
    """Change a file and backdate it, as a save a while ago would have."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    past = time.time() - age
    os.utime(path, (past, past))


def test_unchanged_workspace_replays_stdout_stderr_and_exit_code(make_workspace):
    root = make_workspace({**FILES, "customers/bad.yaml": "name: [\n"})
    age_files(root)
    first = crmkit(root, "check")
    assert first.returncode == 1 and REPLAYED not in first.stderr
    assert "customers/bad.yaml:2:1: error: invalid YAML" in first.stdout
    assert len(kept(root)) == 1
    second = crmkit(root, "check")
    assert REPLAYED in second.stderr
    assert (second.returncode, second.stdout) == (1, first.stdout)
    # what the command wrote to stderr comes back too, before crmkit's note (not the
    # "rule results" line of --verbose: it tells what this run computed, and a replay
    # computes nothing)
    written = "".join(line for line in first.stderr.splitlines(True)
                      if not line.startswith("rule results:"))
    assert second.stderr.replace(REPLAYED, "").startswith(written.strip())


def test_any_change_to_the_workspace_runs_the_command_again(make_workspace):
    root = make_workspace(FILES)
    age_files(root)
    first = crmkit(root, "check")
    assert "1 customer," in first.stdout
    rewrite(root / "customers" / "bert.yaml", "name: Bert\n")
    added = crmkit(root, "check")
    assert REPLAYED not in added.stderr and "2 customers" in added.stdout
    rewrite(root / "customers" / "bert.yaml", "name: Bert Brandt\n", age=20)
    assert REPLAYED not in crmkit(root, "check").stderr
    (root / "customers" / "bert.yaml").unlink()
    removed = crmkit(root, "check")  # the same files as the first run: its output is right
    assert removed.stdout == first.stdout and "1 customer," in removed.stdout
    # a template or a workspace plugin is an input too
    rewrite(root / "plugins" / "hello.py", "X = 1\n")
    assert REPLAYED not in crmkit(root, "check").stderr
    assert REPLAYED in crmkit(root, "check").stderr


def test_other_options_or_day_are_other_runs(make_workspace):
    root = make_workspace(FILES)
    age_files(root)
    crmkit(root, "reminders", "--within", "30")
    other_day = subprocess.run([CRMKIT, "-v", "-w", root, "--today", "2026-11-21",
                                "reminders", "--within", "30"], capture_output=True, text=True)
    assert REPLAYED not in other_day.stderr
    assert REPLAYED not in crmkit(root, "reminders", "--within", "5").stderr
    assert REPLAYED in crmkit(root, "reminders", "--within", "30").stderr


def test_files_saved_just_now_are_not_trusted(make_workspace):
    """An mtime from the last two seconds could repeat after a second quick edit."""
    root = make_workspace(FILES)
    crmkit(root, "check")
    assert kept(root) == []
    assert REPLAYED not in crmkit(root, "check").stderr


def test_commands_that_write_are_never_replayed(make_workspace):
    root = make_workspace(FILES)
    age_files(root)
    for _ in range(2):
        written = crmkit(root, "report", "weekly", "--format", "md")
        assert REPLAYED not in written.stderr and "wrote out/reports/weekly.md" in written.stdout
    assert kept(root) == []
    printed = crmkit(root, "report", "weekly", "--format", "md", "--out", "-")
    assert printed.stdout.startswith("# ")
    assert crmkit(root, "report", "weekly", "--format", "md", "--out", "-").stdout \
        == printed.stdout
    assert len(kept(root)) == 1


def test_no_cache_option_runs_and_keeps_nothing(make_workspace):
    root = make_workspace(FILES)
    age_files(root)
    for _ in range(2):
        result = subprocess.run([CRMKIT, "-v", "--no-cache", "-w", root, "check"],
                                capture_output=True, text=True)
        assert REPLAYED not in result.stderr
        assert "read 2 files: 2 parsed, 0 from cache" in result.stderr
    assert kept(root) == []


def test_plugin_code_is_part_of_the_key():
    """Editing an installed plugin (or crmkit) must not replay stale output."""
    files = b"".join(code_files()).decode()
    assert "plugins/reminders/__init__.py\0" in files
    assert "crmkit/incremental/replay.py\0" in files


PLUGIN = '''
import click
import crmkit


@crmkit.hookimpl
def crmkit_register_commands(cli):
    @cli.command()
    @crmkit.pass_app(pure=True)
    def names(app):
        """Pure: prints names."""
        for c in app.customers():
            click.echo(c.customer.name)

    @cli.command()
    @click.option("--out")
    @crmkit.pass_app(pure=lambda p: p["out"] is None)
    def sometimes(app, out):
        """Pure unless --out writes a file."""
        if out:
            app.write_named(out, "x")
        click.echo(str(len(app.workspace.customers)))

    @cli.command()
    @crmkit.pass_app
    def plain(app):
        """Not declared pure: always runs."""
        click.echo("ran")
'''


def test_a_plugin_command_declared_pure_replays_and_others_run(make_workspace, tmp_path):
    root = make_workspace({**FILES, "plugins/names.py": PLUGIN})
    age_files(root)
    first = crmkit(root, "names")
    assert first.stdout == "Anna Alt\n" and REPLAYED not in first.stderr
    again = crmkit(root, "names")
    assert again.stdout == "Anna Alt\n" and REPLAYED in again.stderr
    for _ in range(2):
        assert REPLAYED not in crmkit(root, "plain").stderr
        assert REPLAYED not in crmkit(root, "sometimes", "--out", str(tmp_path / "x")).stderr
    crmkit(root, "sometimes")
    assert REPLAYED in crmkit(root, "sometimes").stderr


def test_the_terminal_language_is_part_of_the_key(make_workspace):
    """The CLI speaks the terminal's language: output kept under LANG=C is not
    replayed under LANG=de_DE.UTF-8."""
    root = make_workspace(FILES)
    age_files(root)
    crmkit(root, "check")
    assert REPLAYED in crmkit(root, "check").stderr
    german = subprocess.run([CRMKIT, "-v", "-w", root, "--today", "2026-11-20", "check"],
                            capture_output=True, text=True,
                            env={**os.environ, "LANG": "de_DE.UTF-8"})
    assert REPLAYED not in german.stderr
