"""Refresh docs/dashboard.png and docs/weekly.png from example_workspace.

Uses Debian's chromium through Playwright, like tests/test_browser.py:

    python tools/screenshots.py
"""

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from playwright.sync_api import sync_playwright

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]

with tempfile.TemporaryDirectory() as tmp:
    root = Path(tmp) / "ws"
    shutil.copytree(REPO / "example_workspace", root,
                    ignore=shutil.ignore_patterns("out", ".crmkit"))
    crmkit = Path(sys.executable).parent / "crmkit"
    subprocess.run([crmkit, "-w", root, "--today", "2026-11-23", "build"], check=True,
                   capture_output=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        for report in ("dashboard", "weekly"):
            page = browser.new_page(viewport={"width": 1280, "height": 1400})
            page.goto((root / "out" / "reports" / f"{report}.html").as_uri())
            page.screenshot(path=REPO / "docs" / f"{report}.png")
            print(f"wrote docs/{report}.png")
        browser.close()
