"""Refresh the screenshots in docs/ from example_workspace (German, 23 November 2026).

The dashboard and the weekly report, each on a desktop (1280 px wide: docs/dashboard.png,
docs/weekly.png) and on a phone (390 px: docs/dashboard-phone.png, docs/weekly-phone.png),
each cut off after its first screens so the files stay small.  Uses Debian's chromium
through Playwright, like tests/test_browser.py:

    .venv/bin/python tools/screenshots.py
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
#: (file in docs/, report, viewport width, height of the picture: the page is cut there)
SHOTS = (("dashboard.png", "dashboard", 1280, 1400), ("weekly.png", "weekly", 1280, 1400),
         ("dashboard-phone.png", "dashboard", 390, 1800),
         ("weekly-phone.png", "weekly", 390, 1800))


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "ws"
        shutil.copytree(REPO / "example_workspace", root,
                        ignore=shutil.ignore_patterns("out", ".crmkit"))
        crmkit = Path(sys.executable).parent / "crmkit"
        subprocess.run([crmkit, "-w", root, "--today", "2026-11-23", "build"], check=True,
                       capture_output=True)
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            for name, report, width, height in SHOTS:
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto((root / "out" / "reports" / f"{report}.html").as_uri())
                page.screenshot(path=REPO / "docs" / name)  # the viewport: the first screens
                full = page.evaluate("document.documentElement.scrollHeight")
                size = (REPO / "docs" / name).stat().st_size
                print(f"wrote docs/{name} ({width}x{height} of {width}x{full} px, "
                      f"{size // 1024} KB)")
                page.close()
            browser.close()


if __name__ == "__main__":
    main()
