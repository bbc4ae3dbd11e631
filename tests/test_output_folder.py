"""The output folder (``output`` in crmkit.yaml) cannot point at the records, the
workspace itself, .git, or (through a link) outside the workspace; the watcher ignores
it however it is spelled.  Real processes, real links, real file events."""

import os
import subprocess

import pytest
from conftest import CRMKIT, DEFAULT_SETTINGS
from test_watch import FILES, Watch

from crmkit.cli.watch import is_ignored


def crmkit(root, *args):
    return subprocess.run([CRMKIT, "-w", root, "--today", "2026-06-01", *args],
                          capture_output=True, text=True,
                          env={**os.environ, "CRMKIT_BACKGROUND": "0"})


@pytest.mark.parametrize("output", ["./out", "generated/site", "out/", "generated//site/."])
def test_an_output_folder_inside_the_workspace_does_not_make_watch_rebuild_itself(
        make_workspace, output):
    root = make_workspace(FILES, settings=DEFAULT_SETTINGS + f"output: {output}\n")
    watch = Watch(root)
    try:
        watch.expect(r"start: wrote \d+ of \d+ files?\b")
        watch.expect("watching for changes")
        assert [line for line in watch.quiet(1.5) if "wrote" in line] == []
        assert (root / output / "reports" / "weekly.md").is_file()
        (root / "customers" / "bert.yaml").write_text("name: Bert Brown\n")
        watch.expect(r"customers/bert\.yaml: wrote")
        assert [line for line in watch.quiet(1.5) if "wrote" in line] == []
        assert watch.stop() == 0
    finally:
        if watch.process.poll() is None:
            watch.process.kill()


def test_nested_output_folders_are_ignored():
    assert is_ignored("generated/site/reports/x.html", "generated/site")
    # a read file whose name merely starts like the output folder is not in it
    assert not is_ignored("customers/site.yaml", "customers/site")
    assert is_ignored("generated/other.yaml", "generated/site")  # crmkit does not read it


@pytest.mark.parametrize("output", [".", "./", "customers", "interactions/site", "deals",
                                    "playbooks", "plugins/out", "templates", ".git",
                                    ".git/site", ".crmkit", "out/../customers"])
def test_output_may_not_be_the_workspace_or_hold_or_sit_in_its_records(make_workspace,
                                                                        output):
    root = make_workspace(FILES, settings=DEFAULT_SETTINGS + f"output: '{output}'\n")
    before = sorted(p.relative_to(root) for p in root.rglob("*"))
    checked = crmkit(root, "check")
    assert checked.returncode == 1
    assert "crmkit.yaml:6:9: error: 'output'" in checked.stdout + checked.stderr
    for command in (["build"], ["drafts"]):
        result = crmkit(root, *command)
        assert result.returncode == 1, (command, result.stdout)
        assert result.stderr.startswith("Error: crmkit.yaml:6:9: 'output'"), result.stderr
    assert sorted(p.relative_to(root) for p in root.rglob("*")
                  if p.relative_to(root).parts[0] != ".crmkit") == [
        p for p in before if p.parts[0] != ".crmkit"]


def test_an_output_folder_linked_outside_the_workspace_is_refused(make_workspace, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    root = make_workspace(FILES)
    (root / "out").symlink_to(outside, target_is_directory=True)
    for command in (["build"], ["drafts"], ["drafts", "--format", "mbox"]):
        result = crmkit(root, *command)
        assert result.returncode == 1, (command, result.stdout, result.stderr)
        line = result.stderr.strip()
        assert "\n" not in line and line.startswith("Error: crmkit.yaml:")
        assert "'output'" in line and "outside the workspace" in line
    assert list(outside.iterdir()) == []
    assert "outside the workspace" in crmkit(root, "check").stdout
    # a folder the user names on the command line is theirs to choose
    named = crmkit(root, "drafts", "--out", str(outside / "drafts"))
    assert named.returncode == 0, named.stderr
    # a link to a folder inside the workspace is fine
    (root / "out").unlink()
    (root / "site").mkdir()
    (root / "out").symlink_to(root / "site", target_is_directory=True)
    assert crmkit(root, "build").returncode == 0
    assert (root / "site" / "reports" / "weekly.md").is_file()


def test_output_linked_to_a_parent_of_the_workspace_is_refused(make_workspace):
    root = make_workspace(FILES)
    (root / "out").symlink_to(root, target_is_directory=True)
    result = crmkit(root, "build")
    assert result.returncode == 1 and "'output'" in result.stderr
    assert not (root / "reports").exists()
