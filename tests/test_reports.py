import datetime as dt
import json
import xml.dom.minidom
from decimal import Decimal

from crmkit_plugins.reports import charts, render_report

from crmkit import App

TODAY = "2026-06-30"
SETTINGS = "business: Blumen Berg\nlocale: en\ntimezone: Europe/Berlin\n"
FILES = {
    "customers/evil.yaml": 'name: "<script>alert(1)</script>"\nsource: "a|b"\n',
    "customers/lea.yaml": "name: Lea\nbirthday: 1990-07-02\n",
    "interactions/a.yaml": """\
        - {customer: evil, date: 2026-06-25, type: call}
        - {customer: evil, date: 2026-06-26, type: quote, amount: 300, summary: "Roses | tulips"}
        - {customer: lea, date: 2026-06-01, type: purchase, amount: 80}
        - {customer: lea, date: 2026-06-10, type: call, follow_up: 2026-06-20}
    """,
}


def test_weekly_markdown(make_workspace, run):
    root = make_workspace(FILES, settings=SETTINGS)
    out = run("-w", root, "--today", TODAY, "report", "weekly", "--format", "md", "--out", "-")
    assert out.exit_code == 0, out.output
    md = out.stdout
    assert md.startswith("# This week: Blumen Berg\n\nAs of June 30, 2026.\n")
    overdue = md.split("## Overdue\n", 1)[1].split("## This week\n")[0]
    assert "**Follow-ups** (1)" in overdue  # the kind's title, not its name
    assert "| Jun 20, 2026 | Lea | Follow up: call | visit |" in overdue
    this_week = md.split("## This week\n", 1)[1].split("## New leads")[0]
    assert "| Jul 2, 2026 | Lea | Birthday of Lea (36) |" in this_week
    assert "- &lt;script&gt;alert(1)&lt;/script&gt; (a\\|b)" in md  # new lead, escaped
    assert "| Jun 26, 2026 | &lt;script&gt;alert(1)&lt;/script&gt; | Roses \\| tulips | " \
           "€300.00 |" in md
    assert "| Revenue, last 12 months | €80.00 | €80.00 |" in md


def test_html_escapes_customer_data_and_has_no_external_resources(make_workspace):
    root = make_workspace(FILES, settings=SETTINGS)
    app = App(root, dt.date.fromisoformat(TODAY))
    for name in ("dashboard", "weekly"):
        html = render_report(app, name, "html")
        assert "<script>alert(1)</script>" not in html
        assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
        assert "https://" not in html and "<link" not in html and "<script" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in render_report(app, "weekly", "html")


def test_report_writes_files_lists_and_fails_on_request(make_workspace, run):
    root = make_workspace(FILES, settings=SETTINGS)
    written = run("-w", root, "--today", TODAY, "report")
    assert written.stdout == "wrote out/reports/dashboard.html\n"
    assert (root / "out/reports/dashboard.html").read_text().startswith("<!DOCTYPE html>")
    listing = run("-w", root, "report", "--list").stdout
    # the stock pipeline plugin adds its report page (empty board without deals)
    assert listing == "dashboard  (html, md)\npipeline  (html, md)\nweekly  (html, md)\n"
    failing = run("-w", root, "--today", TODAY, "report", "weekly", "--fail-on", "overdue")
    assert failing.exit_code == 1
    assert "failing: 1 overdue reminder (--fail-on)" in failing.stderr
    assert (root / "out/reports/weekly.html").exists()  # written before failing
    fine = run("-w", root, "--today", "2026-06-12", "report", "weekly", "--fail-on", "overdue",
               "--fail-on", "errors")
    assert fine.exit_code == 0


def test_workspace_can_override_and_add_reports(make_workspace, run):
    files = {**FILES,
             "templates/reports/weekly.md.j2": "Custom weekly for {{ business }}\n",
             "templates/reports/owners.md.j2": "Customers: {{ metrics.customers.value }}\n"}
    root = make_workspace(files, settings=SETTINGS)
    assert run("-w", root, "report", "--list").stdout == (
        "dashboard  (html, md)\nowners  (md)\npipeline  (html, md)\nweekly  (html, md)\n")
    weekly = run("-w", root, "report", "weekly", "--format", "md", "--out", "-").stdout
    assert weekly == "Custom weekly for Blumen Berg\n"
    assert run("-w", root, "report", "owners", "--format", "md", "--out", "-").stdout == \
        "Customers: 2\n"
    html = run("-w", root, "report", "owners")
    assert "report 'owners' has no html template; it comes as md" in html.stderr
    unknown = run("-w", root, "report", "weekyl")
    assert "unknown report 'weekyl' (did you mean 'weekly'?)" in unknown.stderr


def test_build_writes_every_report_and_the_reminder_calendar(make_workspace, run):
    root = make_workspace(FILES, settings=SETTINGS)
    result = run("-w", root, "--today", TODAY, "build")
    site = ("wrote out/customers/", "wrote out/lists/", "wrote 9 files in out/lists/")
    assert sorted(line for line in result.stdout.splitlines()
                  if not line.startswith(site)) == [
        "wrote out/index.html", "wrote out/playbooks.html",
        "wrote out/reminders.ics", "wrote out/reminders.md",
        "wrote out/reports/dashboard.html", "wrote out/reports/dashboard.md",
        "wrote out/reports/pipeline.html", "wrote out/reports/pipeline.md",
        "wrote out/reports/weekly.html", "wrote out/reports/weekly.md"]
    customers = sorted(p.stem for p in (root / "customers").glob("*.yaml"))
    assert [f"wrote out/customers/{c}.html" for c in customers] == [
        line for line in result.stdout.splitlines() if line.startswith("wrote out/customers/")]
    assert (root / "out/reminders.ics").read_bytes().startswith(b"BEGIN:VCALENDAR\r\n")


def test_charts_are_well_formed_svg_with_one_bar_per_value():
    for svg, bars in (
        (charts.bar_chart([("Jan", 10), ("<Feb>", 0), ("Mar", 25.5)], "Revenue & more"), 3),
        (charts.funnel([("lead", 4), ("new", 0)], "Stages"), 2),
        (charts.score_distribution({9: 2, 3: 1}, "Scores"), 11),
    ):
        dom = xml.dom.minidom.parseString(svg)
        rects = [r for r in dom.getElementsByTagName("rect") if r.getAttribute("class") == "bar"]
        assert len(rects) == bars
    pareto = xml.dom.minidom.parseString(charts.pareto([50, 30, 20], "P"))
    (curve,) = pareto.getElementsByTagName("polyline")
    # 4 points: the origin, then 50 %, 80 %, 100 % of the plot height
    assert len(curve.getAttribute("points").split()) == 4
    assert curve.getAttribute("points").split()[-1].endswith(",16.0")  # 100 % = top
    # 10,000 customers on a 420-px chart: at most two points per pixel, the last at 100 %
    many = xml.dom.minidom.parseString(charts.pareto([1.0] * 10_000, "P"))
    points = many.getElementsByTagName("polyline")[0].getAttribute("points").split()
    assert 100 < len(points) <= 2 * 420 and points[-1] == "412.0,16.0"
    for point in points:  # equal revenue: the diagonal, from bottom left to top right
        x, y = map(float, point.split(","))
        assert abs(y - (224 - 208 * (x - 56) / 356)) <= 0.1, point


def test_metrics_json_is_serialisable(make_workspace):
    from crmkit.cli.output import to_json  # the encoder of crmkit.echo_json

    app = App(make_workspace(FILES, settings=SETTINGS), dt.date.fromisoformat(TODAY))
    data = json.loads(to_json(app.metrics()))
    assert data["revenue_12m"]["value"] == 80


def test_a_pure_section_is_rendered_again_exactly_when_its_context_changes():
    import jinja2
    import numpy as np

    from crmkit.incremental.render import render_pure

    calls = []
    env = jinja2.Environment(loader=jinja2.DictLoader({"s.j2": "{{ count(items) }} {{ title }}"}))
    env.globals["count"] = lambda items: calls.append(1) or len(items)
    section = env.get_template("s.j2")
    base = {"items": [1, 2], "title": "a"}
    assert render_pure(section, base) == "2 a"
    assert render_pure(section, {**base}) == "2 a"
    assert len(calls) == 1  # the second time came from the kept text
    assert render_pure(section, {**base, "items": [1, 2, 3]}) == "3 a"
    assert render_pure(section, {**base, "items": [1, 2, 3], "title": "b"}) == "3 b"
    assert render_pure(section, {**base, "items": np.arange(4)}) == "4 a"
    assert render_pure(section, {**base, "items": np.arange(5)}) == "5 a"
    assert len(calls) == 5
    env.loader.mapping["s.j2"] = "{{ title }}!"  # a changed template is a new one
    assert render_pure(env.get_template("s.j2"), base) == "a!"


def test_listed_rows_are_rendered_once_per_item_and_escaped_once(make_workspace):
    from crmkit import Reminder

    root = make_workspace({"templates/reports/rows/probe.md.j2": "{{ item.title }} {{ n() }}\n",
                           "templates/reports/rows/value.md.j2": "{{ item.v }} {{ n() }}\n"},
                          settings=SETTINGS)
    app = App(root, dt.date.fromisoformat(TODAY))
    env = app.templates
    renders: list[int] = []

    def n() -> int:
        renders.append(1)
        return len(renders)

    day = dt.date(2026, 7, 1)
    a, b, c = (Reminder(day, "lea", "birthday", t, "why", id=f"birthday/lea/2026-07-01/{t}")
               for t in ("A", "B", "<C>"))
    listing = env.from_string('{{ items | rows("reports/rows/probe.md.j2", n=n) }}')
    assert listing.render(items=[a, b], n=n) == "A 1\nB 2\n"
    assert listing.render(items=[b, a, c], n=n) == "B 2\nA 1\n<C> 3\n"  # a and b kept
    # kept by identity: an equal reminder made afresh is rendered again
    assert listing.render(items=[Reminder(day, "lea", "birthday", "A", "why")], n=n) == "A 4\n"
    # dict rows (a metric's, built afresh each time) are kept by value, exactly
    rows = env.from_string('{{ items | rows("reports/rows/value.md.j2", n=n) }}')
    first = rows.render(items=[{"v": Decimal("1.0")}, {"v": 2}], n=n)
    assert first == "1.0 5\n2 6\n"
    assert rows.render(items=[{"v": Decimal("1.0")}, {"v": 2}], n=n) == first
    assert rows.render(items=[{"v": Decimal("1.00")}, {"v": 2.0}, {"v": True}], n=n) == (
        "1.00 7\n2.0 8\nTrue 9\n")  # equal values that print differently: rendered
    html = env.from_string('{% autoescape true %}<table>{{ items | rows('
                           '"reports/rows/reminder.html.j2", today=today, root=root) }}'
                           '</table>{% endautoescape %}')
    from crmkit_plugins.reports.site import reminder_rows

    # lea has no customer file, so no contact: the row shows the id
    row, = reminder_rows(app, [c])
    md = env.from_string('{{ items | rows("reports/rows/reminder.md.j2") }}')
    assert md.render(items=[row]).startswith("| Jul 1, 2026 | lea | &lt;C&gt; |")
    assert html.render(items=[row], today=day, root="../") == (
        '<table><tr><td class="day" data-label="due">Jul 1, 2026</td>'
        '<td data-label="customer"><a href="../customers/lea.html">lea</a></td>'
        '<td data-label="what">&lt;C&gt;</td>'
        '<td data-label="channel"></td>'
        '<td class="id" data-label="id"><code>crmkit done <wbr><span>birthday/</span><wbr>'
        '<span>lea/</span><wbr>'
        '<span>2026-07-01/</span><wbr><span>&lt;C&gt;</span></code></td></tr>\n</table>')


def test_the_prediction_shows_churn_risk_in_percent(make_workspace):
    # the predict plugin's section, rendered with rows as its context gives them
    app = App(make_workspace(FILES, settings=SETTINGS.replace("locale: en", "locale: de")),
              dt.date.fromisoformat(TODAY), use_cache=False)
    template = app.templates.get_template("reports/sections/prediction.html.j2")
    rows = [{"customer": "lea", "name": "Lea", "churn_risk": 0.42, "worth": Decimal(100),
             "value_at_risk": Decimal(42)}]
    context = {"locale": "de", "currency": "EUR", "expected": {"value": None},
               "problem": "zu wenig", "horizon": 365, "at_risk": rows, "root": None}
    html = template.render(context)
    assert '<td class="num" data-label="Abwanderungsrisiko">42\xa0%</td>' in html
    assert "0,42" not in html
    assert '<td data-label="Kunde">Lea</td>' in html  # outside the site: no link
    # on the site's start page: the name links to the customer's page
    assert '<td data-label="Kunde"><a href="customers/lea.html">Lea</a></td>' in \
        template.render({**context, "root": ""})
    md = app.templates.get_template("reports/sections/prediction.md.j2").render(context)
    assert "| Lea | 42\xa0% | 100,00\xa0€ | 42,00\xa0€ |" in md


def test_the_weekly_report_outside_the_site_names_without_links(make_workspace, run):
    # `crmkit report weekly --out DIR` writes one page: no customers/ folder beside it
    root = make_workspace(FILES, settings=SETTINGS)
    result = run("-w", root, "--today", TODAY, "report", "weekly", "--out", "-")
    assert result.exit_code == 0, result.output
    assert "customers/" not in result.stdout
    assert '<td data-label="customer">Lea' in result.stdout
