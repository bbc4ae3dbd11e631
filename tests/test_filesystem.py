"""The file system as an attacker (or a careless user) shapes it: links out of the
workspace, special files, outputs named on the command line (issue 19)."""

import contextlib
import os
import shutil
import stat
import subprocess
import threading

import pytest
from conftest import CRMKIT, age_files

from crmkit.loading.loader import load_workspace

pytestmark = pytest.mark.skipif(not hasattr(os, "symlink"), reason="no symlinks")

LINKED = ("customers: error: ignored: a link to a folder outside the workspace (crmkit "
          "does not read through it; move the folder into the workspace)")


def crmkit(root, *args):
    return subprocess.run([str(CRMKIT), "-w", str(root), *args], capture_output=True,
                          text=True, timeout=120)


def test_a_record_folder_linked_outside_the_workspace_is_not_read(make_workspace, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "o.yaml").write_text("name: Outside\n")
    root = make_workspace({"customers/a.yaml": "name: A\n", "interactions/.keep": ""})
    inside = root / "customers"
    # a first run keeps its state with the real folder ...
    assert crmkit(root, "check").returncode == 0
    shutil.rmtree(inside)
    inside.symlink_to(outside, target_is_directory=True)
    age_files(root)
    workspace = load_workspace(root, use_cache=False)
    assert list(workspace.customers) == []
    assert [str(d) for d in workspace.diagnostics] == [LINKED]
    # ... and the next run (from that state, then from its own) agrees with a fresh load
    for _ in range(2):
        result = crmkit(root, "check")
        assert result.returncode == 1
        assert result.stdout.splitlines()[0] == LINKED
        assert result.stdout == crmkit(root, "--no-cache", "check").stdout
    listed = crmkit(root, "customers")
    assert "Outside" not in listed.stdout
    assert "run 'crmkit check'" in listed.stderr
    # a link to a folder inside the workspace is the user's own arrangement
    inside.unlink()
    (root / "people").mkdir()
    (root / "people" / "b.yaml").write_text("name: B\n")
    inside.symlink_to(root / "people", target_is_directory=True)
    assert list(load_workspace(root, use_cache=False).customers) == ["b"]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs on this platform")
def test_a_fifo_among_the_interactions_is_skipped_not_read(make_workspace):
    root = make_workspace({"customers/a.yaml": "name: A\n",
                           "interactions/i.yaml": "customer: a\ndate: 2026-01-02\ntype: call\n"})
    fifo = root / "interactions" / "p.yaml"
    os.mkfifo(fifo)
    # Opening the FIFO for writing unblocks a reader that wrongly opened it (the test
    # then fails rather than hangs); it fails at once if nobody reads (ENXIO).
    stop = threading.Event()

    def unblock():
        while not stop.wait(0.2):
            with contextlib.suppress(OSError):
                os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))

    helper = threading.Thread(target=unblock, daemon=True)
    helper.start()
    try:
        result = crmkit(root, "check")
    finally:
        stop.set()
        helper.join()
    assert result.returncode == 0
    assert result.stdout.splitlines()[0] == (
        "interactions/p.yaml: warning: ignored: not a regular file (a pipe, socket or "
        "device is never read)")
    workspace = load_workspace(root, use_cache=False)
    assert len(workspace.interactions) == 1


def test_a_device_file_is_skipped_not_read(make_workspace):
    root = make_workspace({"customers/a.yaml": "name: A\n"})
    zero = os.stat("/dev/zero") if os.path.exists("/dev/zero") else None
    try:
        os.mknod(root / "customers" / "z.yaml", stat.S_IFCHR | 0o600, zero.st_rdev)
    except (AttributeError, OSError):
        pytest.skip("cannot create a device file here (needs privileges)")
    found = [str(d) for d in load_workspace(root, use_cache=False).diagnostics]
    assert found == ["customers/z.yaml: warning: ignored: not a regular file (a pipe, "
                     "socket or device is never read)"]


@pytest.mark.parametrize("command", [("export", "csv"), ("privacy", "export", "a")])
def test_out_never_replaces_a_file_crmkit_did_not_write(make_workspace, tmp_path, command):
    root = make_workspace({"customers/a.yaml": "name: A\nemail: a@x.example\n",
                           ".git/config": "[core]\n"})
    for forbidden in ("customers/x.yaml", "customers/a.yaml", ".git/config", "crmkit.yaml"):
        result = crmkit(root, *command, "--out", root / forbidden, "--force")
        assert result.returncode == 1, forbidden
        assert "refusing to write" in result.stderr
    assert result.stderr.splitlines()[-1].endswith(
        "crmkit.yaml: it is the workspace's settings file, which crmkit does not overwrite; "
        "choose another --out")
    assert (root / "customers" / "a.yaml").read_text() == "name: A\nemail: a@x.example\n"
    assert not (root / "customers" / "x.yaml").exists()
    assert (root / ".git" / "config").read_text() == "[core]\n"
    # someone else's file, and a link to one: only with --force, and never through the link
    mine = tmp_path / "mine.txt"
    mine.write_text("mine\n")
    link = tmp_path / "link.csv"
    link.symlink_to(mine)
    for target in (mine, link):
        result = crmkit(root, *command, "--out", target)
        assert result.returncode == 1 and "add --force" in result.stderr, target
    assert mine.read_text() == "mine\n" and link.is_symlink()
    assert crmkit(root, *command, "--out", link, "--force").returncode == 0
    assert mine.read_text() == "mine\n" and not link.is_symlink()
    # a file crmkit wrote may be written again; a new file needs nothing
    assert crmkit(root, *command, "--out", link).returncode == 0
    assert crmkit(root, *command, "--out", tmp_path / "new.out").returncode == 0
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []
