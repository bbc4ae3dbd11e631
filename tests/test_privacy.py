"""Data protection: erasure that finds everything and can be finished after a failure,
access requests that hold everything, and no personal data left behind by a killed run.

The basic export and forget cases are in tests/test_import_export.py."""

import os
import signal
import subprocess
import time

from conftest import CRMKIT, DEFAULT_SETTINGS

TODAY = "2026-11-23"


# --- a killed import ---------------------------------------------------------------------


def record_folder_leftovers(root):
    """Every file below the record folders that is not a complete record file."""
    found = []
    for folder in ("customers", "interactions"):
        for path in (root / folder).rglob("*"):
            if path.is_file() and (path.name.startswith(".") or path.suffix != ".yaml"):
                found.append(path)
    return found


def letters(n):
    """``n`` as three letters: names that no duplicate check takes for one person."""
    return "".join(chr(ord("a") + n // 26 ** k % 26) for k in range(3)).capitalize()


def test_import_killed_mid_run_leaves_no_temporary_file(tmp_path):
    """A real ``crmkit import --apply``, killed with SIGKILL while it writes: no
    temporary file (with a person's data) stays, and every file it made is complete."""
    root = tmp_path / "ws"
    (root / "customers").mkdir(parents=True)
    (root / "crmkit.yaml").write_text(DEFAULT_SETTINGS, encoding="utf-8")
    rows = ["name;email;phone"] + [f"Anna {letters(n)}mann;anna{n:04d}@example.de;"
                                   f"+49 3643 {n:06d}" for n in range(3000)]
    source = tmp_path / "people.csv"
    source.write_text("\n".join(rows) + "\n", encoding="utf-8")
    env = {**os.environ, "CRMKIT_BACKGROUND": "0"}
    process = subprocess.Popen([CRMKIT, "-w", root, "--today", TODAY, "import", "csv", source,
                                "--apply"], env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    seen_temporary = False
    try:
        # Kill it the moment a temporary file shows once it has written a few files (the
        # window of the old code), else once it has written a few hundred.
        while time.monotonic() < deadline and process.poll() is None:
            names = os.listdir(root / "customers")
            if len(names) > 5 and any(n.endswith(".tmp") for n in names):
                seen_temporary = True
                break
            if len(names) >= 300:
                break
        assert process.poll() is None, process.stderr.read().decode()
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.wait()
    assert process.returncode == -signal.SIGKILL
    made = sorted((root / "customers").glob("*.yaml"))
    assert made, "killed before it wrote anything"
    assert record_folder_leftovers(root) == [], seen_temporary
    for path in made:  # complete files only
        text = path.read_text(encoding="utf-8")
        assert text.startswith("name: Anna ") and "import_id:" in text, path
