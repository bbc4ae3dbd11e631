"""Tests build tiny workspaces from a dict of files, like pytest's pytester."""

from __future__ import annotations

import os
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from crmkit.cli import cli

REPO = Path(__file__).resolve().parent.parent
#: The installed console script: tests run crmkit as a real process, as users do.
CRMKIT = Path(sys.executable).parent / "crmkit"
EXAMPLE = REPO / "example_workspace"

DEFAULT_SETTINGS = """\
business: Test GmbH
sender: {name: Tess Ter, email: tess@test.example}
locale: en
currency: EUR
timezone: Europe/Berlin
"""

MakeWorkspace = Callable[..., Path]

# Workspace plugins run only in trusted workspaces (docs/security.md): the tests' own
# workspaces are trusted, as in CI, and `crmkit init` records what it creates in a list
# of the test session's own, never in the user's (tests/test_trust.py unsets both).
os.environ["CRMKIT_TRUST_WORKSPACE"] = "1"
# The CLI's own messages follow the terminal's language (LANG): the tests read English.
os.environ["LANG"] = "C.UTF-8"
for _name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
    os.environ.pop(_name, None)
os.environ["CRMKIT_TRUST_FILE"] = os.path.join(
    tempfile.mkdtemp(prefix="crmkit-trust-"), "trusted")


def write_files(root: Path, files: dict[str, str | bytes]) -> None:
    for rel, content in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(textwrap.dedent(content), encoding="utf-8")


def age_files(root: Path, seconds: float = 60) -> None:
    """Backdate mtimes: the parse cache does not trust files modified seconds ago."""
    past = time.time() - seconds
    for path in root.rglob("*"):
        if path.is_file():
            os.utime(path, (past, past))


@pytest.fixture
def make_workspace(tmp_path: Path) -> MakeWorkspace:
    def make(files: dict[str, str | bytes] | None = None, settings: str = DEFAULT_SETTINGS,
             name: str = "ws") -> Path:
        root, n = tmp_path / name, 1
        while root.exists():
            n += 1
            root = tmp_path / f"{name}{n}"
        root.mkdir()
        write_files(root, {"crmkit.yaml": settings, **(files or {})})
        return root

    return make


@pytest.fixture
def run() -> Callable[..., object]:
    """Invoke the CLI in-process; returns click's Result (stdout and stderr separate)."""
    def invoke(*args: str, input: str | None = None):
        return CliRunner().invoke(cli, [str(a) for a in args], input=input,
                                  catch_exceptions=False)

    return invoke
