"""Run the ```console examples of README.md and docs/*.md and compare their output.

Each ``$ crmkit ...`` line in a console block is run (in order, per file) in a
scratch copy of the repository's example workspace, so examples that write
files never touch the real one; the lines after it up to the next ``$`` are
its expected output (stdout and stderr together).

    python tests/console_blocks.py --update   # rewrite the outputs in place
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
DOC_FILES = [p for p in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))] if p.exists()]
BLOCK = re.compile(r"^```console\n(.*?)^```\n", re.MULTILINE | re.DOTALL)


@dataclass
class Example:
    command: str
    expected: str
    span: tuple[int, int]  # of the expected text within the file


def examples(text: str) -> list[Example]:
    found = []
    for block in BLOCK.finditer(text):
        body, start = block.group(1), block.start(1)
        commands = [m for m in re.finditer(r"^\$ (.*)\n", body, re.MULTILINE)]
        for i, match in enumerate(commands):
            end = commands[i + 1].start() if i + 1 < len(commands) else len(body)
            found.append(Example(match.group(1), body[match.end():end],
                                 (start + match.end(), start + end)))
    return found


def run_command(command: str, cwd: Path) -> str:
    crmkit = Path(sys.executable).parent / "crmkit"
    args = shlex.split(command)
    # `$ LANG=de_DE.UTF-8 crmkit ...`: the terminal's language, as a shell sets it
    language = {}
    while args and args[0].partition("=")[0] in ("LANG", "LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        name, _, value = args.pop(0).partition("=")
        language[name] = value
    if args[0] == "cp" and len(args) == 3:
        shutil.copy(cwd / args[1], cwd / args[2])
        return ""
    if args[0] != "crmkit":
        raise ValueError(f"console examples run only crmkit and cp, not {args[0]!r}")
    # the records `done`, `snooze` and `drafts --send` write name who wrote them
    # a workspace's plugins run where the examples say `crmkit trust`, in a list of
    # the scratch copy's own (never the user's)
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "80", "CRMKIT_WORKSPACE": "",
           "CRMKIT_USER": "Sina Sommer", "CRMKIT_TRUST_FILE": str(cwd / ".trusted"),
           "LANG": "C.UTF-8"}  # the CLI's own words follow the terminal's: English here
    env.pop("CRMKIT_WORKSPACE")
    env.pop("CRMKIT_TRUST_WORKSPACE", None)
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES"):
        env.pop(name, None)
    env.update(language)
    result = subprocess.run([str(crmkit), *args[1:]], cwd=cwd, env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return result.stdout


def scratch_copy() -> tuple[tempfile.TemporaryDirectory, Path]:
    tmp = tempfile.TemporaryDirectory()
    root = Path(tmp.name)
    shutil.copytree(REPO / "example_workspace", root / "example_workspace",
                    ignore=shutil.ignore_patterns(".crmkit", "out"))
    shutil.copytree(REPO / "docs" / "examples", root / "docs" / "examples")
    shutil.copytree(REPO / "tests" / "fixtures", root / "tests" / "fixtures")
    # As if checked out a while ago: files changed in the last seconds are never cached.
    past = time.time() - 3600
    for path in root.rglob("*"):
        os.utime(path, (past, past))
    return tmp, root


def check_file(path: Path, update: bool = False) -> list[tuple[str, str, str]]:
    """Run one file's examples; return ``(command, expected, actual)`` for mismatches."""
    text = path.read_text(encoding="utf-8")
    found = examples(text)
    if not found:
        return []
    tmp, root = scratch_copy()
    mismatches = []
    pieces, last = [], 0
    with tmp:
        for example in found:
            actual = run_command(example.command, root)
            if actual != example.expected:
                mismatches.append((example.command, example.expected, actual))
            pieces.append(text[last:example.span[0]])
            pieces.append(actual)
            last = example.span[1]
    if update and mismatches:
        pieces.append(text[last:])
        path.write_text("".join(pieces), encoding="utf-8")
    return mismatches


if __name__ == "__main__":
    update = "--update" in sys.argv
    for doc in DOC_FILES:
        for command, _, _ in check_file(doc, update):
            print(f"{doc.relative_to(REPO)}: {'updated' if update else 'differs'}: {command}")
