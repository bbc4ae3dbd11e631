"""Running a stranger's workspace (issue 19): its plugins/*.py run only where the user
trusts it, and never for --help, --version, init or a mistyped command; its
templates render in Jinja's sandbox; its committed caches are never unpickled."""

import os
import shutil
import subprocess

from conftest import CRMKIT, age_files

from crmkit.incremental import cache, replay, signing

#: A workspace plugin that leaves a line in MARKER when it is imported.
PLUGIN = """\
import pathlib

import crmkit

with open({marker!r}, "a") as out:
    out.write("imported\\n")


@crmkit.hookimpl
def crmkit_register_commands(cli):
    @cli.command()
    def hello():
        '''Say hello.'''
        print("hello")
"""


def crmkit(root, *args, cwd=None, env=None, trusted=True):
    environment = {**os.environ, "CRMKIT_BACKGROUND": "0", **(env or {})}
    if not trusted:
        environment.pop("CRMKIT_TRUST_WORKSPACE", None)
    where = ["-w", str(root)] if root is not None else []
    return subprocess.run([str(CRMKIT), *where, *args], capture_output=True, text=True,
                          cwd=cwd, env=environment, timeout=120)


def plugin_workspace(make_workspace, tmp_path):
    marker = tmp_path / "imported.txt"
    root = make_workspace({"customers/a.yaml": "name: A\n",
                           "plugins/hello.py": PLUGIN.format(marker=str(marker))})
    return root, marker


def imports(marker):
    return len(marker.read_text().splitlines()) if marker.exists() else 0


def test_help_version_init_and_mistyped_commands_run_no_workspace_code(make_workspace,
                                                                      tmp_path):
    """Even in a trusted workspace: only a command that may be the plugin's loads it."""
    root, marker = plugin_workspace(make_workspace, tmp_path)
    for args in (["--help"], ["--version"], ["init", str(tmp_path / "new")], ["chek"],
                 ["check", "--help"], ["hellp"]):
        result = crmkit(None, *args, cwd=root)
        assert imports(marker) == 0, (args, result.stderr)
    assert (tmp_path / "new" / "crmkit.yaml").exists()
    mistyped = crmkit(None, "chek", cwd=root)
    assert mistyped.returncode == 2
    assert "no such command 'chek' (did you mean 'check'?)" in mistyped.stderr
    # the positive control: naming the plugin's command runs the plugin
    result = crmkit(None, "hello", cwd=root)
    assert (result.returncode, result.stdout, imports(marker)) == (0, "hello\n", 1)


def test_an_untrusted_workspace_runs_none_of_its_plugins_until_trusted(make_workspace,
                                                                        tmp_path):
    root, marker = plugin_workspace(make_workspace, tmp_path)
    trusted = tmp_path / "config" / "trusted"
    env = {"CRMKIT_TRUST_FILE": str(trusted)}
    warning = (f"warning: not running this workspace's plugins (hello.py): {root} is not "
               f"trusted; if you trust its code, run 'crmkit trust {root}'\n")
    result = crmkit(root, "check", env=env, trusted=False)
    assert (result.returncode, result.stderr, imports(marker)) == (0, warning, 0)
    assert result.stdout.endswith("0 errors, 0 warnings\n")
    unknown = crmkit(root, "hello", env=env, trusted=False)
    assert unknown.returncode == 2 and imports(marker) == 0
    assert unknown.stderr.startswith(warning)
    listed = crmkit(root, "plugins", env=env, trusted=False)
    assert [line.split()[:2] for line in listed.stdout.splitlines() if "hello" in line] \
        == [["hello", "workspace"]] and imports(marker) == 0
    # --no-workspace-plugins: not run and not warned about, trusted or not
    quiet = crmkit(root, "--no-workspace-plugins", "check", env=env, trusted=False)
    assert (quiet.returncode, quiet.stderr, imports(marker)) == (0, "", 0)
    # trusting it: `crmkit trust` (in the workspace) records its absolute path
    result = crmkit(None, "trust", cwd=root, env=env, trusted=False)
    assert result.stdout == f"trusted {root}: its plugins/*.py will run\n"
    assert str(root.resolve()) in trusted.read_text().splitlines()
    assert crmkit(None, "trust", cwd=root, env=env, trusted=False).stdout \
        == f"{root} is trusted already\n"
    result = crmkit(root, "hello", env=env, trusted=False)
    assert (result.stdout, result.stderr, imports(marker)) == ("hello\n", "", 1)
    assert crmkit(root, "--no-workspace-plugins", "hello", env=env).returncode == 2
    assert imports(marker) == 1
    # CI: CRMKIT_TRUST_WORKSPACE=1 trusts whatever workspace it runs in
    other = tmp_path / "config" / "other"
    result = crmkit(root, "hello", env={"CRMKIT_TRUST_FILE": str(other),
                                        "CRMKIT_TRUST_WORKSPACE": "1"})
    assert (result.stdout, result.stderr, imports(marker)) == ("hello\n", "", 2)


def test_init_trusts_the_workspace_it_creates(tmp_path):
    trusted = tmp_path / "config" / "trusted"
    env = {"CRMKIT_TRUST_FILE": str(trusted)}
    new = tmp_path / "shop"
    assert crmkit(None, "init", str(new), cwd=tmp_path, env=env, trusted=False).returncode == 0
    assert trusted.read_text().splitlines()[1:] == [str(new.resolve())]
    marker = tmp_path / "imported.txt"
    (new / "plugins" / "hello.py").write_text(PLUGIN.format(marker=str(marker)))
    result = crmkit(new, "hello", env=env, trusted=False)
    assert (result.returncode, result.stdout, result.stderr) == (0, "hello\n", "")
    # init in a folder that already holds plugins (a clone) does not trust them
    clone = tmp_path / "clone"
    (clone / "plugins").mkdir(parents=True)
    (clone / "plugins" / "hello.py").write_text(PLUGIN.format(marker=str(marker)))
    result = crmkit(None, "init", "clone", cwd=tmp_path, env=env, trusted=False)
    assert result.returncode == 0 and "Next: cd clone" in result.stdout
    assert result.stderr == ("note: clone/plugins/ already holds code (hello.py): not "
                             "trusted; if you trust it, run 'crmkit trust clone'\n")
    assert str(clone.resolve()) not in trusted.read_text().splitlines()
    assert crmkit(clone, "hello", env=env, trusted=False).returncode == 2
    assert imports(marker) == 1


class Payload:
    """Unpickling this runs code: it leaves a marker file."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (shutil.copyfile, (os.devnull, self.marker))


def test_caches_committed_from_elsewhere_are_never_unpickled(make_workspace, tmp_path,
                                                              monkeypatch):
    """A clone whose author committed ``.crmkit/`` with pickles that run code, signed
    with the author's own key: this machine's key does not match, nothing runs."""
    marker = tmp_path / "pwned"
    root = make_workspace({"customers/a.yaml": "name: A\nemail: a@x.de\n",
                           "interactions/i.yaml": "customer: a\ndate: 2026-01-02\n"
                                                  "type: purchase\namount: 10\n"})
    age_files(root)
    theirs = {"CRMKIT_CACHE_KEY_FILE": str(tmp_path / "their-key")}
    assert crmkit(root, "check", env=theirs).returncode == 0
    assert crmkit(root, "customers", env=theirs).returncode == 0  # kept in replay/
    kept = [root / cache.STATE_FILE, *(root / replay.REPLAY_DIR).iterdir()]
    assert len(kept) >= 2
    monkeypatch.setenv(signing.KEY_ENV, theirs["CRMKIT_CACHE_KEY_FILE"])
    signing.machine_key.cache_clear()
    try:
        for path in kept:
            magic = path.read_bytes()[:len(cache.MAGIC if path.name == "state.pickle"
                                           else replay.MAGIC)]
            assert signing.write_checked(path, magic, Payload(str(marker)))
        # the payload is real: where the key matches, reading it runs it
        signing.read_checked(kept[0], cache.MAGIC)
        assert marker.exists()
        marker.unlink()
    finally:
        signing.machine_key.cache_clear()
    subprocess.run(["git", "init", "-q", str(root)], check=True)
    subprocess.run(["git", "-C", str(root), "add", "-f", "."], check=True)
    subprocess.run(["git", "-C", str(root), "-c", "user.name=T", "-c", "user.email=t@x.de",
                    "commit", "-qm", "with .crmkit"], check=True)
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(root), str(clone)], check=True)
    assert (clone / cache.STATE_FILE).exists()
    age_files(clone)
    ours = {"CRMKIT_CACHE_KEY_FILE": str(tmp_path / "our-key")}
    for args in (["check"], ["customers", "--format", "json"], ["check"]):
        result = crmkit(clone, *args, env=ours)
        assert result.returncode == 0, result.stderr
        assert not marker.exists(), args
    assert '"id": "a"' in crmkit(clone, "customers", "--format", "json", env=ours).stdout


def test_watch_keeps_to_no_workspace_plugins_across_reloads(make_workspace, tmp_path):
    from crmkit.cli.watch import Watcher

    root, marker = plugin_workspace(make_workspace, tmp_path)
    watcher = Watcher(root, None, lambda line: None, workspace_plugins=False)
    for changed in (None, {"plugins/hello.py"}, {"crmkit.yaml"}, {"customers/a.yaml"}):
        app = watcher.next_app(changed)
        assert [(p.name, p.disabled) for p in app.host.plugins if p.kind == "workspace"] \
            == [("hello", True)]
    assert imports(marker) == 0
    assert "hello" in [p.name for p in Watcher(root, None, print).next_app(None).host.plugins
                       if p.kind == "workspace" and not p.disabled]
    assert imports(marker) == 1
