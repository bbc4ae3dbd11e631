"""The site `crmkit build` writes: start page, this week's to-do, a page per customer, the
lists, the playbooks; linked, escaped, translated, pruned, and served by watch --serve."""

from __future__ import annotations

import datetime as dt
import os
import re
import shutil
import subprocess
import urllib.request
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote, urlsplit

from conftest import CRMKIT, DEFAULT_SETTINGS
from crmkit_plugins.reports import site
from test_watch import Watch

from crmkit import App
from crmkit.engine.app import PARALLEL_PAGES

TODAY = "2026-06-01"
SETTINGS = DEFAULT_SETTINGS + """\
segments:
  good_customers: revenue > 100
"""
FILES = {
    # Anna: a customer with a purchase, a phone, an email, a birthday next week
    "customers/anna.yaml": """\
        name: Anna Adler
        phones: ["+49 3643 123-45"]
        emails: [anna@example.com]
        address: {street: Hauptstraße 1, postal_code: "99423", city: Weimar}
        birthday: 1980-06-05
        referred_by: bert
        """,
    # a hostile name and email: everything must stay text
    "customers/bert.yaml": """\
        name: "<script>alert(1)</script> Bert"
        emails: ["bert+x@example.com"]
        """,
    "customers/cleo.yaml": "name: Cleo Clark\n",
    "interactions/a1.yaml": ("customer: anna\ndate: 2026-03-01\ntype: purchase\n"
                             "amount: 1234.5\nsummary: New boiler\n"),
    "interactions/a2.yaml": ("customer: anna\ndate: 2026-05-20\ntype: call\n"
                             "summary: <b>asked</b> about the bill\n"),
    "deals/d1.yaml": ("customer: anna\ntitle: Solar panels\nstage: proposal\nvalue: 8000\n"
                      "probability: 0.5\nexpected_close: 2026-07-01\n"),
}


def build(root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([CRMKIT, "-w", root, "--today", TODAY, *args, "build"],
                          capture_output=True, text=True,
                          env={**os.environ, "CRMKIT_BACKGROUND": "0"})
    assert done.returncode == 0, done.stderr
    return done


class Links(HTMLParser):
    """Every href of a page, and the text outside tags."""

    def __init__(self) -> None:
        super().__init__()
        self.hrefs: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.scripts += tag == "script"
        self.hrefs += [value for name, value in attrs if name == "href" and value]


def links(page: Path) -> Links:
    parser = Links()
    parser.feed(page.read_text(encoding="utf-8"))
    return parser


def test_the_site_is_linked_and_every_link_resolves(make_workspace):
    root = make_workspace(FILES, settings=SETTINGS)
    build(root)
    out = root / "out"
    pages = {p.relative_to(out).as_posix() for p in out.rglob("*.html")}
    assert {"index.html", "reports/weekly.html", "reports/dashboard.html", "playbooks.html",
            "customers/anna.html", "customers/bert.html", "customers/cleo.html",
            "lists/index.html", "lists/stage-active.html", "lists/stage-lead.html",
            "lists/segment-good_customers.html"} <= pages
    reached = {"index.html"}
    for page in sorted(pages):
        found = links(out / page)
        assert found.scripts == 0, page
        for href in found.hrefs:
            if href.startswith(("tel:", "mailto:")):
                continue
            assert not urlsplit(href).scheme and not href.startswith("/"), (page, href)
            target = (out / page).parent / unquote(href)
            assert target.is_file(), (page, href)  # relative: works from file:// too
            reached.add(target.resolve().relative_to(out.resolve()).as_posix())
    # every page is linked from somewhere (the start page is the dashboard; the copy in
    # reports/ is where CI jobs and links from before the site find it)
    assert pages - {"reports/dashboard.html"} <= reached
    # the navigation on every page, with links relative to the page's folder
    assert 'href="../lists/index.html"' in (out / "customers/anna.html").read_text()
    assert 'href="lists/index.html"' in (out / "index.html").read_text()
    assert 'href="../index.html"' in (out / "reports/weekly.html").read_text()


def test_a_customer_page_is_the_360_degree_view(make_workspace):
    root = make_workspace(FILES, settings=SETTINGS)
    build(root)
    anna = (root / "out/customers/anna.html").read_text()
    assert "<h1>Anna Adler</h1>" in anna
    assert '<a href="tel:+4936431234 5">' not in anna
    assert '<a href="tel:+49364312345">+49 3643 123-45</a>' in anna
    assert '<a href="mailto:anna@example.com">anna@<wbr>example.<wbr>com</a>' in anna
    assert "Hauptstraße 1, 99423 Weimar" in anna
    # referred by Bert: his name, escaped, linked to his page
    assert ('<a href="bert.html">&lt;script&gt;alert(1)&lt;/script&gt; Bert</a>') in anna
    # stage, segment, churn risk with its reason (labels of the segments plugin)
    assert re.search(r"lifecycle stage</dt><dd>active", anna)
    assert "good_customers" in anna
    assert re.search(r"churn risk</dt><dd>\d+%: ", anna)
    # the birthday reminder with its id and the command that marks it done
    assert "Birthday of Anna Adler (46)" in anna
    assert "<code>crmkit done birthday/anna/2026-06-05</code>" in anna
    # the deal and the history, newest first, money and dates in the locale
    assert "Solar panels" in anna and "€8,000.00" in anna and "Jul 1, 2026" in anna
    history = anna[anna.index('<section id="history"'):]
    assert history.index("May 20, 2026") < history.index("Mar 1, 2026")
    assert "€1,234.50" in anna and "&lt;b&gt;asked&lt;/b&gt; about the bill" in anna
    # the lead without anything: a page too, saying so
    cleo = (root / "out/customers/cleo.html").read_text()
    assert "No interactions yet." in cleo and "Nothing open." in cleo


def test_names_are_escaped_everywhere(make_workspace):
    root = make_workspace(FILES, settings=SETTINGS)
    build(root)
    for page in (root / "out").rglob("*.html"):
        text = page.read_text()
        assert "<script>alert" not in text, page
    bert = (root / "out/customers/bert.html").read_text()
    assert "<h1>&lt;script&gt;alert(1)&lt;/script&gt; Bert</h1>" in bert
    assert 'href="mailto:bert%2Bx@example.com"' not in bert
    assert '<a href="mailto:bert+x@example.com">bert+<wbr>x@<wbr>example.<wbr>com</a>' in bert


def test_the_weekly_to_do_names_and_links_customers(make_workspace):
    root = make_workspace(FILES, settings=SETTINGS)
    build(root)
    weekly = (root / "out/reports/weekly.html").read_text()
    assert '<a href="../customers/anna.html">Anna Adler</a>' in weekly
    assert '<a class="nowrap" href="tel:+49364312345">+49 3643 123-45</a>' in weekly
    assert '<a href="mailto:anna@example.com">anna@<wbr>example.<wbr>com</a>' in weekly
    assert "crmkit done <wbr><span>birthday/</span>" in weekly  # the id: for the command
    md = (root / "out/reports/weekly.md").read_text()
    assert "| Jun 5, 2026 | Anna Adler | Birthday of Anna Adler (46) |" in md


def test_the_site_speaks_german(make_workspace):
    root = make_workspace(FILES, settings=SETTINGS.replace("locale: en", "locale: de"))
    build(root)
    anna = (root / "out/customers/anna.html").read_text()
    assert '<html lang="de">' in anna
    for text in ("<h2>Kontakt</h2>", "<h2>Offene Erinnerungen</h2>", "<h2>Verlauf (2)</h2>",
                 "Lebenszyklus</dt><dd>aktiv", "als erledigt markieren",
                 "Geburtstag von Anna Adler (46)", "1.234,50\xa0€", "20.05.2026",
                 ">Übersicht</a>", ">Diese Woche</a>", ">Kunden</a>"):
        assert text in anna, text
    for text in ("Contact", "Open reminders", "History", "mark as done", "Dashboard"):
        assert text not in anna, text
    lists = (root / "out/lists/index.html").read_text()
    assert "<h2>Lebenszyklus-Phasen</h2>" in lists and ">aktiv</a> (1)" in lists
    assert "1 Kunde" in (root / "out/lists/stage-active.html").read_text()
    assert "2 Kunden" in (root / "out/lists/stage-lead.html").read_text()


def test_pages_of_customers_that_are_gone_are_removed_and_nothing_else(make_workspace):
    root = make_workspace(FILES, settings=SETTINGS)
    build(root)
    folder = root / "out/customers"
    mine = folder / "notes.html"
    mine.write_text("<p>my own page</p>")  # not crmkit's: stays
    (folder / "readme.txt").write_text("mine")
    (root / "customers/cleo.yaml").unlink()
    build(root)
    assert not (folder / "cleo.html").exists()
    assert (folder / "anna.html").exists() and mine.read_text() == "<p>my own page</p>"
    assert (folder / "readme.txt").exists()
    assert "cleo.html" not in (root / "out/lists/stage-lead.html").read_text()


def test_a_site_folder_linked_out_of_the_output_folder_is_never_written_or_pruned(
        make_workspace, tmp_path):
    """Found by an attacker's pass: ``out/customers`` as a link to another folder made
    the build write every customer page there and delete a page-like file in it."""
    root = make_workspace(FILES, settings=SETTINGS)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    victim = elsewhere / "victim.html"
    victim.write_text('<meta name="generator" content="crmkit"> not yours')
    (root / "out").mkdir()
    (root / "out/customers").symlink_to(elsewhere)
    done = subprocess.run([CRMKIT, "-w", root, "--today", TODAY, "build"],
                          capture_output=True, text=True,
                          env={**os.environ, "CRMKIT_BACKGROUND": "0"})
    assert done.returncode == 1
    assert f"out/customers is a link to {elsewhere}, outside the output folder: crmkit " \
           "writes nothing there" in done.stderr
    assert sorted(p.name for p in elsewhere.iterdir()) == ["victim.html"]
    assert victim.read_text().endswith("not yours")


def test_unchanged_pages_are_not_rewritten(make_workspace):
    root = make_workspace(FILES, settings=SETTINGS)
    build(root)
    out = root / "out"

    def stamps() -> dict[str, tuple[int, int]]:
        return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns)
                for p in (out / "customers").glob("*.html")}

    before = stamps()
    index = (out / "index.html").stat()
    build(root)
    assert stamps() == before  # same inode, same mtime: not written again
    assert (out / "index.html").stat().st_ino == index.st_ino
    (root / "customers/cleo.yaml").write_text("name: Cleo Clarke\n")
    build(root)
    after = stamps()
    assert after["cleo.html"] != before["cleo.html"]
    assert after["anna.html"] == before["anna.html"]
    assert "Cleo Clarke" in (out / "customers/cleo.html").read_text()


def test_pages_written_on_every_core_are_those_one_process_writes(make_workspace):
    """From PARALLEL_PAGES customers on, ``crmkit build`` renders and writes the customer
    pages in forked workers: byte for byte what one process writes (``crmkit watch``'s
    build, in this process), with the usual permissions, and nobody left out."""
    files = dict(FILES)
    many = PARALLEL_PAGES + 40
    for n in range(many):
        files[f"customers/k{n:03d}.yaml"] = f"name: Kunde {n} Müller\nreferred_by: anna\n"
        files[f"interactions/k{n:03d}.yaml"] = (
            f"customer: k{n:03d}\ndate: 2026-0{1 + n % 5}-1{n % 9}\ntype: purchase\n"
            f"amount: {n}.5\nsummary: Kauf <{n}>\n")
    root = make_workspace(files, settings=SETTINGS.replace("locale: en", "locale: de"))
    build(root)
    folder = root / "out/customers"
    on_every_core = {p.name: p.read_bytes() for p in folder.iterdir()}
    umask = os.umask(0)
    os.umask(umask)
    public = 0o666 & ~umask
    assert {p.stat().st_mode & 0o777 for p in folder.iterdir()} == {public}
    shutil.rmtree(root / "out")
    App(root, dt.date.fromisoformat(TODAY)).build()
    alone = {p.name: p.read_bytes() for p in folder.iterdir()}
    assert len(on_every_core) == many + 3
    assert on_every_core == alone
    assert "Kauf &lt;7&gt;" in alone["k007.html"].decode()


def test_watch_serves_the_start_page_and_rewrites_only_touched_pages(make_workspace):
    root = make_workspace(FILES, settings=SETTINGS)
    watch = Watch(root, "--serve", "--port", "0")
    try:
        url = re.search(r"http://127\.0\.0\.1:\d+/", watch.expect("serving out/ on")).group(0)
        watch.expect("watching for changes")
        with urllib.request.urlopen(url, timeout=5) as answer:
            start = answer.read().decode()
        assert answer.status == 200
        assert "<h1>Dashboard</h1>" in start and 'href="reports/weekly.html"' in start
        with urllib.request.urlopen(url + "customers/anna.html", timeout=5) as answer:
            assert "<h1>Anna Adler</h1>" in answer.read().decode()
        anna = (root / "out/customers/anna.html").stat()

        def stamps() -> dict[Path, tuple[int, int]]:
            return {p: (p.stat().st_ino, p.stat().st_mtime_ns)
                    for p in (root / "out").rglob("*") if p.is_file()}

        before = stamps()
        (root / "customers/cleo.yaml").write_text("name: Cleo Clarke\n")
        line = watch.expect(r"customers/cleo\.yaml: wrote")
        assert "Cleo Clarke" in (root / "out/customers/cleo.html").read_text()
        # the line counts the files that changed, of all the build made
        after = stamps()
        changed = [p for p in after if before.get(p) != after[p]]
        found = re.search(r"wrote (\d+) of (\d+) files", line)
        assert found and int(found[1]) == len(changed) and int(found[2]) == len(after)
        assert root / "out/customers/cleo.html" in changed and len(changed) < len(after) / 2
        now = (root / "out/customers/anna.html").stat()
        assert (now.st_ino, now.st_mtime_ns) == (anna.st_ino, anna.st_mtime_ns)
        (root / "customers/cleo.yaml").unlink()
        watch.expect(r"customers/cleo\.yaml: wrote")
        assert not (root / "out/customers/cleo.html").exists()
        assert watch.stop() == 0
    finally:
        if watch.process.poll() is None:
            watch.process.kill()


# --- names everywhere, ids only where a command needs them (issue 18 review) -------------

ACTING = {
    "customers/bjoern.yaml": "name: Björn Schäfer\nphones: ['+49 30 123;phone-context=evil']\n",
    "customers/baeckerei.yaml": "name: Bäckerei Krause\nphones: ['javascript:alert(2)']\n",
    "customers/anton.yaml": "name: anton Zander\n",
    "customers/oezlem.yaml": "name: Özlem Aydın\n",
    "interactions/h.yaml": """\
        - {customer: bjoern, date: 2026-05-02, type: complaint, channel: web,
           summary: Too loud}
        - {customer: baeckerei, date: 2026-05-03, type: call, channel: instagram}
        - {customer: anton, date: 2026-05-04, type: purchase, amount: 200, channel: visit}
        """,
    "deals/by-stage.yaml": "customer: bjoern\ntitle: Boiler\nstage: proposal\nvalue: 1000\n",
    "deals/own.yaml": ("customer: baeckerei\ntitle: Oven\nstage: proposal\nvalue: 500\n"
                       "probability: 0.8\n"),
}
GERMAN = DEFAULT_SETTINGS.replace("locale: en", "locale: de")


def test_the_dashboard_names_and_links_customers_of_deals_and_complaints(make_workspace):
    root = make_workspace(ACTING, settings=GERMAN)
    build(root)
    for page, root_way in (("index.html", ""), ("reports/dashboard.html", "../")):
        text = (root / "out" / page).read_text()
        deals = text[text.index('<section id="pipeline"'):]
        deals = deals[:deals.index("</section>")]
        # the customer's name, linked to their page from where the dashboard is
        assert (f'<td data-label="Kunde"><a href="{root_way}customers/bjoern.html">'
                'Björn Schäfer</a></td>') in deals, page
        assert f'<a href="{root_way}customers/baeckerei.html">Bäckerei Krause</a>' in deals
        assert ">bjoern<" not in deals and ">baeckerei<" not in deals
        # Boiler has no probability of its own: its stage's (proposal, 50 %) is shown
        assert re.search(r'Boiler</td>.*?data-label="Wahrscheinlichkeit">50\xa0%</td>',
                         deals), page
        assert re.search(r'Oven</td>.*?data-label="Wahrscheinlichkeit">80\xa0%</td>', deals)
        complaints = text[text.index('<section id="complaints"'):]
        complaints = complaints[:complaints.index("</section>")]
        assert '<table class="cards">' in complaints
        assert (f'<td data-label="Kunde"><a href="{root_way}customers/bjoern.html">'
                'Björn Schäfer</a></td><td data-label="was">Too loud</td>') in complaints
    # the pipeline page's board links them too
    board = (root / "out/reports/pipeline.html").read_text()
    assert '<a href="../customers/baeckerei.html">Bäckerei Krause</a>' in board
    md = (root / "out/reports/dashboard.md").read_text()
    assert "| Boiler | Björn Schäfer | Angebot | 1.000,00\xa0€ | 50\xa0% |" in md
    assert "| Björn Schäfer | Too loud |" in md
    # ids only where a command needs them: the reminders' ids (`crmkit done ID`)
    without_ids = re.sub(r"`[^`]*`", "", md)
    assert "bjoern" not in without_ids and "baeckerei" not in without_ids


def test_a_page_reads_the_churn_risk_in_the_whole_percents_it_shows():
    """A purchase moves every customer's risk in its third decimal; a page is made again
    only where the percentage it shows changed, so the value it reads is that
    percentage, rounded exactly as the page's ``percentage`` filter rounds."""
    from types import SimpleNamespace

    from crmkit import translations

    def shown(risk):
        return site.churn_shown(SimpleNamespace(labels={"churn_risk": risk}))

    assert [shown(x) for x in (0.812, 0.815, 0.805, None)] == [0.81, 0.82, 0.8, None]
    for locale in ("de", "en"):
        t = translations(locale)
        for n in range(1001):
            assert t.percent(shown(n / 1000)) == t.percent(n / 1000), (locale, n)


def test_a_long_email_may_wrap_at_its_punctuation_only():
    """An address longer than a phone is wide overflowed its card (the browser tests
    measure it on the example at 390 px); it now wraps after ``@ . - _ + /`` only."""
    assert str(site.breakable("buchhaltung.rechnung@praxis-yilmaz.de")) == \
        "buchhaltung.<wbr>rechnung@<wbr>praxis-<wbr>yilmaz.<wbr>de"
    assert str(site.breakable('<b onclick="x">a@b</b>')) == \
        "&lt;b onclick=&#34;x&#34;&gt;a@<wbr>b&lt;/<wbr>b&gt;"
    assert str(site.breakable(None)) == ""


def test_tel_links_keep_the_plus_and_junk_gets_none(make_workspace):
    assert site.tel("+49 30 123;phone-context=evil") == "tel:+4930123"
    assert site.tel(" +49 (0)3643 123-45") == "tel:+490364312345"
    assert site.tel("0361 55 66") == "tel:03615566"
    assert site.tel("javascript:alert(2)") is None  # one digit: no number
    assert site.tel("12") is None and site.tel("") is None and site.tel(None) is None
    assert site.tel("١٢٣٤٥") is None  # digits of other scripts are not dialled
    root = make_workspace(ACTING, settings=GERMAN)
    build(root)
    bjoern = (root / "out/customers/bjoern.html").read_text()
    assert '<a href="tel:+4930123">+49 30 123;phone-context=evil</a>' in bjoern
    baeckerei = (root / "out/customers/baeckerei.html").read_text()
    assert "tel:" not in baeckerei and "javascript:alert(2)" in baeckerei  # shown, not linked


def test_channels_and_sources_are_words_in_german(make_workspace):
    root = make_workspace(ACTING, settings=GERMAN)
    build(root)
    bjoern = (root / "out/customers/bjoern.html").read_text()
    assert '<td data-label="Kanal">Webformular</td>' in bjoern
    baeckerei = (root / "out/customers/baeckerei.html").read_text()
    assert '<td data-label="Kanal">Instagram</td>' in baeckerei
    from crmkit import translations

    de, en = translations("de"), translations("en")
    assert [de.word(w) for w in ("web", "website", "instagram", "fair", "referral", "ad")] \
        == ["Webformular", "Website", "Instagram", "Messe", "Empfehlung", "Anzeige"]
    assert [en.word(w) for w in ("web", "website", "instagram")] == [
        "web form", "website", "Instagram"]
    assert de.word("baumesse-2026") == "baumesse-2026"  # the user's own words as they are


def test_lists_sort_names_as_people_do(make_workspace):
    assert sorted(["Björn Schäfer", "Bäckerei Krause", "anton Zander", "Özlem Aydın",
                   "Otto Ost", "Straße", "Strasse B"], key=site.name_key) == [
        "anton Zander", "Bäckerei Krause", "Björn Schäfer", "Otto Ost", "Özlem Aydın",
        "Straße", "Strasse B"]
    root = make_workspace(ACTING, settings=GERMAN)
    build(root)
    page = (root / "out/lists/index.html").read_text()
    assert page  # the lists exist
    names = re.findall(r'customers/[a-z]+\.html">([^<]+)</a>',
                       (root / "out/lists/stage-lead.html").read_text())
    assert names == ["Bäckerei Krause", "Björn Schäfer", "Özlem Aydın"], names


def test_check_warns_about_a_phone_nobody_can_dial(make_workspace):
    root = make_workspace(ACTING, settings=GERMAN)
    done = subprocess.run([CRMKIT, "-w", root, "--today", TODAY, "check"], capture_output=True,
                          text=True, env={**os.environ, "CRMKIT_BACKGROUND": "0"})
    assert "customers/baeckerei.yaml:2:9: warning: phone 'javascript:alert(2)' is not a " \
        "phone number" in done.stdout + done.stderr
    assert "bjoern.yaml" not in done.stdout + done.stderr  # an RFC 3966 parameter is fine


def test_customers_kept_in_order_are_always_the_order_a_fresh_sort_gives(monkeypatch):
    """``Labels.ordered`` (the lists' order by name): after random changes (a value
    replaced by another or by an equal one, a value gone to ``None``, customers added
    and removed; given as a new column or, as the memo makes it, as the last one with
    the customers it updated) the kept order is the fresh sort's, ties broken by id and
    customers without a value last; and a few changes do not sort everybody again."""
    import random

    from crmkit.incremental.memo import OrderedIds, _Updated

    rng = random.Random(7)
    updated: list[int] = []
    names = ["Anna", "anna", "Ärger", "Bert", "Zoe", None]

    def value() -> tuple[str, str] | None:
        name = rng.choice(names)
        return None if name is None else (name.lower(), name)

    def fresh(column: dict[str, tuple[str, str] | None]) -> list[str]:
        return ([cid for cid, v in sorted(((c, v) for c, v in column.items() if v is not None),
                                          key=lambda cv: (cv[1], cv[0]))]
                + sorted(c for c, v in column.items() if v is None))

    sorts = []
    sort = OrderedIds._sort
    monkeypatch.setattr(OrderedIds, "_sort", lambda self, column: sorts.append(1) or sort(
        self, column))
    for _ in range(60):
        column = {f"c{n:03d}": value() for n in range(rng.randrange(1, 300))}
        order = OrderedIds()
        assert order.update(column) == fresh(column)
        for _ in range(6):
            before, column = column, dict(column)
            for _ in range(rng.randrange(5)):
                cid = f"c{rng.randrange(320):03d}"
                roll = rng.random()
                if roll < 0.2:
                    column.pop(cid, None)
                elif roll < 0.4 and cid in column and column[cid] is not None:
                    column[cid] = (column[cid][0], column[cid][1])  # equal, another object
                else:
                    column[cid] = value()
            if list(column) == list(before) and rng.random() < 0.5:
                # as the memo makes it: the last column and which customers it updated
                # (some with the very same value)
                changed = [c for c in column if column[c] is not before[c]]
                changed += rng.sample(list(column), min(2, len(column)))
                column = _Updated(before, changed, column)
                updated.append(1)
            assert order.update(column) == fresh(column)
    assert len(sorts) < 150  # of 420 orders, most after small changes are updates
    assert len(updated) > 50


def test_reminder_rows_are_the_same_dicts_until_their_reminder_or_contact_changes(
        make_workspace):
    """``App.reminder_rows`` in watch: after Bert's name changes, Anna's row is the very
    dict of the last rebuild (its rendered row is kept), Bert's is new and has the new
    name; a one-off App makes equal rows."""
    from crmkit.cli.watch import Watcher

    root = make_workspace({"customers/anna.yaml": "name: Anna\nbirthday: 1980-06-05\n",
                           "customers/bert.yaml": "name: Bert\nbirthday: 1971-06-07\n"},
                          settings=SETTINGS)
    watcher = Watcher(root, dt.date.fromisoformat(TODAY), lambda line: None)
    watcher.rebuild(None)

    def rows() -> dict[str, dict]:
        app = watcher.app
        found = site.reminder_rows(app, [r for r in app.reminders() if r.kind == "birthday"])
        return {row["customer"]: row for row in found}

    before = rows()
    assert (before["anna"]["name"], before["bert"]["name"]) == ("Anna", "Bert")
    assert before["anna"]["tel"] is None and before["anna"]["id"].startswith("birthday/anna/")
    (root / "customers" / "bert.yaml").write_text("name: Bert Brandt\nbirthday: 1971-06-07\n")
    watcher.rebuild({"customers/bert.yaml"})
    after = rows()
    assert after["anna"] is before["anna"]
    assert after["bert"] is not before["bert"] and after["bert"]["name"] == "Bert Brandt"
    fresh = App(root, dt.date.fromisoformat(TODAY))
    assert {row["customer"]: row for row in site.reminder_rows(fresh, [
        r for r in fresh.reminders() if r.kind == "birthday"])} == after


def test_a_note_renders_no_list_page_again_and_a_new_name_does(make_workspace, monkeypatch):
    """The lists' rows are the customers' ``_contact`` values (what a row shows): in
    watch, a note on Anna renders her page again but no list; her new name renders
    the lists she is on."""
    from crmkit.cli.watch import Watcher
    from crmkit.incremental import render

    root = make_workspace(FILES, settings=SETTINGS)
    watcher = Watcher(root, dt.date.fromisoformat(TODAY), lambda line: None)
    watcher.rebuild(None)
    rendered: list[str] = []
    original = render.render_pure

    def counting(template, context, key=None):
        text = original(template, context, key)
        if render._SECTIONS[template.name if key is None else (template.name, key)][1] \
                is context:  # rendered, not kept
            rendered.append(template.name)
        return text

    monkeypatch.setattr(render, "render_pure", counting)
    anna = root / "customers/anna.yaml"
    anna.write_text(anna.read_text() + "notes: prefers mornings\n")
    watcher.rebuild({"customers/anna.yaml"})
    assert "prefers mornings" in (root / "out/customers/anna.html").read_text()
    assert site.LIST_TEMPLATE not in rendered
    anna.write_text(anna.read_text().replace("Anna Adler", "Anna Amsel"))
    watcher.rebuild({"customers/anna.yaml"})
    assert site.LIST_TEMPLATE in rendered
    assert any("Anna Amsel" in p.read_text() for p in (root / "out/lists").glob("*.html"))
