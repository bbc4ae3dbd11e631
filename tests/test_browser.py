"""The HTML reports in a real headless Chromium (Debian's, never a downloaded one).

tools/screenshots.py refreshes the screenshots in docs/ with the same browser setup.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from conftest import CRMKIT, EXAMPLE

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
EVIL = "<script>alert(1)</script>"


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """The example workspace plus a customer whose name is a script, rendered."""
    root = tmp_path_factory.mktemp("browser") / "ws"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("out", ".crmkit"))
    (root / "customers" / "evil.yaml").write_text(f'name: "{EVIL}"\nsource: web\n')
    (root / "interactions" / "evil.yaml").write_text(
        "- {customer: evil, date: 2026-11-20, type: purchase, amount: 9999}\n"
        "- {customer: evil, date: 2026-11-21, type: complaint, summary: \"<img src=x "
        "onerror=alert(2)>\"}\n")
    subprocess.run([CRMKIT, "-w", root, "--today", "2026-11-23", "build"], check=True,
                   capture_output=True)
    return root / "out" / "reports"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("CI"):  # CI must run them: .ci/run installs chromium
            pytest.fail("no chromium in CI: apt-get install chromium (.ci/run does)")
        pytest.skip("no chromium: apt-get install chromium (Debian's package) to run these")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        yield instance
        instance.close()


def open_page(browser, path: Path, width: int = 1280, height: int = 1600):
    page = browser.new_page(viewport={"width": width, "height": height})
    events = {"errors": [], "dialogs": [], "requests": []}
    page.on("console", lambda m: events["errors"].append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: events["errors"].append(str(e)))
    page.on("dialog", lambda d: (events["dialogs"].append(d.message), d.dismiss()))
    page.on("request", lambda r: events["requests"].append(r.url))
    page.goto(path.as_uri())
    page.wait_for_load_state("load")
    return page, events


# dashboard: revenue, lifecycle, ABC/Pareto, scores and the pipeline plugin's funnel
@pytest.mark.parametrize(("report", "charts"), [("dashboard", 5), ("weekly", 0)])
def test_reports_render_cleanly_and_show_hostile_names_as_text(browser, rendered, report,
                                                              charts):
    page, events = open_page(browser, rendered / f"{report}.html")
    assert events["errors"] == [] and events["dialogs"] == []
    assert all(url.startswith("file://") for url in events["requests"]), events["requests"]
    assert page.locator("svg.chart").count() == charts
    if report == "dashboard":
        assert page.locator("#top_customers").get_by_text(EVIL).count() == 1
        assert page.locator("#complaints").get_by_text("<img src=x onerror=alert(2)>").count() == 1
        bars = page.locator("#revenue svg.chart rect.bar")
        assert bars.count() == 12
        assert page.locator("#kpi-revenue_12m .value").inner_text().endswith("\xa0€")  # de
        # the funnel: German steps; the example's 7, 7, 6, 3 plus the hostile customer,
        # first in touch by a purchase on 20 Nov, who reached every step
        funnel = page.locator("#funnel svg.chart")
        assert funnel.locator("rect.bar").count() == 4
        assert funnel.locator("text").all_text_contents() == [
            "Interessent", "8", "qualifiziert", "8", "Angebot", "7", "gewonnen", "4"]
    else:
        thanks = page.locator("#overdue").get_by_text(f"{EVIL} danken für:", exact=False)
        assert thanks.count() == 1
    page.close()


def test_dashboard_fits_a_phone_and_prints(browser, rendered):
    page, events = open_page(browser, rendered / "dashboard.html", width=390, height=844)
    assert events["errors"] == []
    overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0
    for chart in page.locator("svg.chart").all():  # the funnel too: scaled, not cut off
        box = chart.bounding_box()
        assert box["width"] > 0 and box["x"] >= 0 and box["x"] + box["width"] <= 390
    pdf = page.pdf()  # print layout renders
    assert pdf.startswith(b"%PDF") and len(pdf) > 10_000
    page.close()
