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
    """The example workspace plus a customer whose name is a script (and whose email is
    longer than a phone is wide), rendered."""
    root = tmp_path_factory.mktemp("browser") / "ws"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("out", ".crmkit"))
    (root / "customers" / "evil.yaml").write_text(
        f'name: "{EVIL}"\nsource: web\n'
        f"emails: [buchhaltung.rechnungseingang@zahnarztpraxis-dr-yilmaz-weimar.de]\n")
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


# --- layout: a phone (390 px) and a desktop (1280 px), every page of the site --------------

#: What the layout checks measure in the page, returned to Python.  Words: a Range over
#: each word (each run of non-space characters) of each text node gives one client rect
#: per line the word is laid out on.  A word on two lines is looked at letter by letter:
#: the line may end at punctuation (``zahnarztpraxis-dr-|yilmaz``, ``follow_up/|...``)
#: but never between two letters or digits (``Thoma|s``, ``Rechn|ung``), which is what
#: break-all, overflow-wrap: anywhere or hyphenation would do; the computed styles are
#: checked for the first two as well.  Values (a tile's figure, amounts, dates) must be
#: on one line.
LAYOUT = r"""() => {
  const SCROLLS = 'pre, .scroll';  // elements meant to scroll sideways
  const INSIDE = /[\p{L}\p{N}]/u;  // a line ending between two of these breaks a word
  const doc = document.documentElement;
  const out = {scroll: doc.scrollWidth - doc.clientWidth, height: doc.scrollHeight,
               overflowing: [], breaking: [], broken: [], wrapped: [], words: 0};
  const where = el => {
    const section = el.closest('section');
    const cls = typeof el.className === 'string' && el.className.trim()
      ? '.' + el.className.trim().split(/\s+/).join('.') : '';
    return (section && section.id ? '#' + section.id + ' ' : '') + el.tagName.toLowerCase() + cls;
  };
  const range = document.createRange();
  const lines = () => {
    const tops = [];
    for (const r of range.getClientRects())
      if (r.width > 0 && !tops.some(t => Math.abs(t - r.top) < 3)) tops.push(r.top);
    return tops;
  };
  for (const el of document.body.querySelectorAll('*')) {
    if (el.closest('svg')) continue;
    const style = getComputedStyle(el);
    if (el.scrollWidth > el.clientWidth + 1 && el.clientWidth > 1 &&  // not screen-reader text
        !(el.matches(SCROLLS) && /auto|scroll/.test(style.overflowX)))
      out.overflowing.push(`${where(el)}: ${el.scrollWidth} > ${el.clientWidth}`);
    if ((style.wordBreak === 'break-all' || style.overflowWrap === 'anywhere') &&
        [...el.childNodes].some(n => n.nodeType === Node.TEXT_NODE && n.data.trim()))
      out.breaking.push(`${where(el)}: ${style.wordBreak}, ${style.overflowWrap}`);
  }
  const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (node.parentElement.closest('svg')) continue;
    for (const m of node.data.matchAll(/\S+/g)) {
      out.words++;
      range.setStart(node, m.index); range.setEnd(node, m.index + m[0].length);
      if (m[0].length < 2 || lines().length < 2) continue;
      let top = null;
      for (let i = 0; i < m[0].length; i++) {
        range.setStart(node, m.index + i); range.setEnd(node, m.index + i + 1);
        const [here] = lines();
        if (here === undefined) continue;
        if (top !== null && here - top > 3 && INSIDE.test(m[0][i - 1]) && INSIDE.test(m[0][i]))
          out.broken.push(`${where(node.parentElement)}: ${m[0].slice(0, i)}|${m[0].slice(i)}`);
        top = here;
      }
    }
  }
  for (const el of document.querySelectorAll('.tile .value, td.num, td.day, .nowrap')) {
    range.selectNodeContents(el);
    if (lines().length > 1) out.wrapped.push(`${where(el)}: ${el.textContent.trim()}`);
  }
  return out;
}"""

#: Each table of class "cards": how it shows, and each cell's label against its heading.
CARDS = r"""() => [...document.querySelectorAll('table.cards')].map(table => {
  const headings = [...table.querySelectorAll('thead th')].map(th => th.textContent.trim());
  const cells = [...table.querySelectorAll('tbody td')].map(td => ({
    label: td.dataset.label ?? null, heading: headings[td.cellIndex] ?? null,
    first: td.cellIndex === 0, before: getComputedStyle(td, '::before').content}));
  return {headings, cells, thead: table.tHead ? getComputedStyle(table.tHead).display : null,
          rows: [...table.querySelectorAll('tbody tr')].map(tr => getComputedStyle(tr).display)};
})"""

#: In print: what is still shown of the navigation, shadows, and the cards' page breaks.
PRINT = r"""() => ({
  main: getComputedStyle(document.querySelector('main')).display,
  nav: [...document.querySelectorAll('nav')].filter(n => n.getClientRects().length).length,
  shadows: [...document.querySelectorAll('*')].filter(
    e => getComputedStyle(e).boxShadow !== 'none').length,
  splittable: [...document.querySelectorAll('section, .tile, tr')].filter(
    e => getComputedStyle(e).breakInside !== 'avoid').length,
  urls: [...document.querySelectorAll('a[href]')].filter(
    a => !['none', 'normal'].includes(getComputedStyle(a, '::after').content)).length,
  links: [...document.querySelectorAll('a[href]')].filter(a => a.getClientRects().length &&
    getComputedStyle(a).color !== getComputedStyle(a.parentElement).color
  ).map(a => a.textContent)})"""

WIDTHS = (390, 1280)


@pytest.fixture(scope="module")
def sites(rendered, tmp_path_factory):
    """Every HTML page of the example's site, in German (with the hostile customer,
    from ``rendered``) and in English, by locale."""
    root = tmp_path_factory.mktemp("browser-en") / "ws"
    shutil.copytree(EXAMPLE, root, ignore=shutil.ignore_patterns("out", ".crmkit"))
    settings = root / "crmkit.yaml"
    text = settings.read_text()
    assert "\nlocale: de\n" in text
    settings.write_text(text.replace("\nlocale: de\n", "\nlocale: en\n"))
    subprocess.run([CRMKIT, "-w", root, "--today", "2026-11-23", "build"], check=True,
                   capture_output=True)
    pages = {}
    for locale, out in (("de", rendered.parent), ("en", root / "out")):
        pages[locale] = {p.relative_to(out).as_posix(): p for p in sorted(out.rglob("*.html"))}
        assert {"reports/dashboard.html", "reports/weekly.html",
                "reports/pipeline.html"} <= set(pages[locale])
    return pages


@pytest.fixture(scope="module")
def layouts(browser, sites):
    """LAYOUT and CARDS measured on every page, in both locales, at both widths, by
    (locale, width, page); and PRINT on the German pages, by ("de", "print", page).
    One browser tab for all: each page's HTML goes in with set_content (a page is
    self-contained: the file's address changes nothing), 2-3 times as fast as
    navigating to each file."""
    measure = f"() => ({{layout: ({LAYOUT})(), cards: ({CARDS})()}})"
    measured = {}
    page = browser.new_page()
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 844})
        for locale, files in sites.items():
            for name, file in files.items():
                page.set_content(file.read_text(encoding="utf-8"))
                measured[locale, width, name] = page.evaluate(measure)
    page.emulate_media(media="print")
    for name, file in sites["de"].items():
        page.set_content(file.read_text(encoding="utf-8"))
        measured["de", "print", name] = page.evaluate(PRINT)
    page.close()
    return measured


def problems(layouts, width, kind):
    return {f"{locale} {name}": found["layout"][kind][:5]
            for (locale, w, name), found in layouts.items()
            if w == width and found["layout"][kind]}


def test_every_page_was_measured(layouts, sites):
    pages = sum(len(files) for files in sites.values())
    assert len(layouts) == pages * len(WIDTHS) + len(sites["de"])


@pytest.mark.parametrize("width", WIDTHS)
def test_no_page_scrolls_sideways_and_nothing_overflows_its_box(layouts, width):
    scrolling = {f"{locale} {name}": found["layout"]["scroll"]
                 for (locale, w, name), found in layouts.items()
                 if w == width and found["layout"]["scroll"] > 0}
    assert scrolling == {}
    # at 1280 px this is also "no card hides columns behind a scrollbar": a section
    # whose table is wider than the section overflows it
    assert problems(layouts, width, "overflowing") == {}


@pytest.mark.parametrize("width", WIDTHS)
def test_no_word_is_broken_inside(layouts, width):
    assert problems(layouts, width, "breaking") == {}  # no break-all, no anywhere
    assert problems(layouts, width, "broken") == {}
    assert sum(found["layout"]["words"] for (_, w, _), found in layouts.items()
               if w == width) > 2000  # the words were looked at


@pytest.mark.parametrize("width", WIDTHS)
def test_amounts_dates_and_tile_values_stay_on_one_line(layouts, width):
    assert problems(layouts, width, "wrapped") == {}


def test_tables_become_labelled_cards_on_a_phone(layouts):
    seen = 0
    for (locale, width, name), found in layouts.items():
        for table in found["cards"] if width in WIDTHS else ():
            rows = set(table["rows"])
            if width == 390:
                assert table["thead"] == "none" and "table-row" not in rows, name
            else:
                assert table["thead"] == "table-header-group" and rows == {"table-row"}, name
            for cell in table["cells"]:
                if cell["label"] is None:  # the row's title (a deal's stage, won or lost)
                    assert cell["first"], (locale, name, table["headings"])
                    continue
                assert cell["label"] == cell["heading"], (locale, name, cell)
                if width == 390:
                    assert cell["before"] == f'"{cell["label"]}"', (locale, name, cell)
                seen += 1
    assert seen > 200
    weekly = layouts["de", 390, "reports/weekly.html"]["cards"]
    assert weekly[0]["headings"] == ["fällig", "Kunde", "was", "Kanal", "ID"]


def test_the_weekly_report_is_compact_on_a_phone(layouts, record_property):
    """The issue measured 5,500 px at 390 px; with every reminder a compact card (date
    and customer on a line, what to do, channel and id) the phone page is not even twice
    the desktop page: before it was five times as long (14,679 px against 2,892)."""
    for locale in ("de", "en"):
        phone = layouts[locale, 390, "reports/weekly.html"]["layout"]["height"]
        desktop = layouts[locale, 1280, "reports/weekly.html"]["layout"]["height"]
        record_property(f"weekly_height_{locale}", {"390": phone, "1280": desktop})
        print(f"weekly.html ({locale}): {phone} px at 390 px, {desktop} px at 1280 px")
        assert phone < 2 * desktop


def test_print_has_no_navigation_or_shadows_and_keeps_cards_whole(layouts):
    printed = {name: found for (_, width, name), found in layouts.items() if width == "print"}
    assert printed and all(p["nav"] == 0 and p["shadows"] == 0 and p["splittable"] == 0
                           and p["urls"] == 0 and p["links"] == [] for p in printed.values()
                           ), printed  # links print as the text around them, no URL
    # the print stylesheet was in effect: the sections run down the page, not in a grid
    assert {p["main"] for p in printed.values()} == {"block"}
