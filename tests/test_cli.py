import json
import re
import subprocess
import sys

import yaml
from conftest import CRMKIT, EXAMPLE

BASIC = {
    "customers/anna-mueller.yaml": """\
        name: Anna Müller
        email: anna@example.de
        tags: [weimar, vip]
        consent: {email: true, since: 2024-01-02, how: web form}
        services:
          - {name: Wartung, interval: 1 year, start: 2024-01-15}
    """,
    "customers/bob.yaml": "name: Bob Brown\ntags: [erfurt]\n",
    "interactions/2025/a.yaml": """\
        - {customer: anna-mueller, date: 2025-03-01, type: purchase, amount: 200,
           summary: Wartung}
        - {customer: anna-mueller, date: 2025-12-01, type: call, summary: Termin,
           follow_up: {date: 2025-12-10, what: send the offer}}
        - {customer: anna-mueller, date: 2026-02-01, type: visit, summary: planned check}
    """,
    "deals/anna-bath.yaml": "customer: anna-mueller\ntitle: Bathroom\nvalue: 9000\n"
                            "probability: 0.5\n",
}


def test_init_creates_a_workspace_that_checks_clean(tmp_path, run):
    target = tmp_path / "shop"
    result = run("init", target, "--business", "Bäckerei Sonne", "--locale", "de")
    assert result.exit_code == 0, result.output
    assert "created" in result.output
    settings = yaml.safe_load((target / "crmkit.yaml").read_text(encoding="utf-8"))
    assert settings["business"] == "Bäckerei Sonne" and settings["locale"] == "de"
    assert "/.crmkit/" in (target / ".gitignore").read_text()
    for folder in ("customers", "interactions", "deals", "templates", "plugins"):
        assert (target / folder).is_dir()
    check = run("-w", target, "check")
    assert check.exit_code == 0
    assert check.stdout == "0 customers, 0 interactions, 0 deals: 0 errors, 0 warnings\n"
    again = run("init", target)
    assert again.exit_code == 1
    assert "already exists; not overwriting it" in again.output


def test_check_exit_codes_and_json(make_workspace, run):
    root = make_workspace(BASIC)
    ok = run("-w", root, "check")
    assert ok.exit_code == 0
    assert ok.stdout == "2 customers, 3 interactions, 1 deal: 0 errors, 0 warnings\n"
    (root / "customers" / "bad.yaml").write_text("name: X\nemail: nope\n")
    bad = run("-w", root, "check", "--format", "json")
    assert bad.exit_code == 1
    report = json.loads(bad.stdout)
    assert report["ok"] is False and report["errors"] == 1 and report["customers"] == 3
    assert report["diagnostics"] == [{
        "severity": "error", "message": "'nope' is not a valid email address",
        "path": "customers/bad.yaml", "line": 2, "col": 8, "source": "crmkit"}]


def test_check_strict_fails_on_warnings(make_workspace, run):
    root = make_workspace({
        "customers/a.yaml": "name: A\n",
        "interactions/p.yaml": "customer: a\ndate: 2024-01-01\ntype: purchase\n"})
    assert run("-w", root, "check").exit_code == 0
    strict = run("-w", root, "check", "--strict")
    assert strict.exit_code == 1
    assert "interactions/p.yaml:1:1: warning: purchase without 'amount'" in strict.stdout


def test_add_customer_creates_a_valid_file_and_never_overwrites(make_workspace, run):
    root = make_workspace(BASIC)
    result = run("-w", root, "--today", "2026-01-05", "add", "customer", "--name", "Jürgen Weiß",
                 "--email", "j@weiss.example", "--phone", "+49 171 1", "--tag", "weimar",
                 "--birthday", "1955-12-10", "--referred-by", "anna-mueller",
                 "--email-consent", "phone call")
    assert result.exit_code == 0, result.output
    assert result.stdout == "created customers/juergen-weiss.yaml\n"
    text = (root / "customers" / "juergen-weiss.yaml").read_text(encoding="utf-8")
    assert text == (
        "name: Jürgen Weiß\nemail: j@weiss.example\nphone: +49 171 1\n"
        "birthday: 1955-12-10\nreferred_by: anna-mueller\ntags:\n- weimar\n"
        "consent:\n  email: true\n  since: 2026-01-05\n  how: phone call\n")
    assert run("-w", root, "check").exit_code == 0
    again = run("-w", root, "add", "customer", "--name", "Jürgen Weiß")
    assert again.exit_code == 1
    assert "customers/juergen-weiss.yaml already exists; not overwriting it" in again.output
    assert (root / "customers" / "juergen-weiss.yaml").read_text(encoding="utf-8") == text


def test_add_customer_rejects_bad_input_without_writing(make_workspace, run):
    root = make_workspace(BASIC)
    bad_email = run("-w", root, "add", "customer", "--name", "X Y", "--email", "x@")
    assert bad_email.exit_code == 1
    assert "'x@' is not a valid email address" in bad_email.output
    bad_ref = run("-w", root, "add", "customer", "--name", "X Y", "--referred-by", "anna")
    assert "unknown customer 'anna' (did you mean 'anna-mueller'?)" in bad_ref.output
    bad_id = run("-w", root, "add", "customer", "../evil", "--name", "Evil")
    assert bad_id.exit_code == 1
    assert "'../evil' is not a valid id: use a lowercase slug" in bad_id.stderr
    assert not (root / "customers" / "x-y.yaml").exists()
    assert not (root / "evil.yaml").exists()


def test_log_writes_a_new_interaction_file_each_time(make_workspace, run):
    root = make_workspace(BASIC)
    args = ("-w", root, "--today", "2026-03-05", "log", "anna-mueller", "-t", "call",
            "-m", "Asked about heat pumps", "--direction", "inbound",
            "--follow-up", "2026-03-12", "--follow-up-what", "send brochure")
    first = run(*args)
    assert first.exit_code == 0, first.output
    # the name ends in a suffix derived from the text and the user (docs/team.md)
    found = re.fullmatch(r"created (interactions/2026/2026-03-05-anna-mueller-call-"
                         r"([a-z2-7]{6}))\.yaml\n", first.stdout)
    assert found, first.stdout
    name = found.group(1)
    second = run(*args)
    assert second.stdout == f"created {name}-2.yaml\n"  # the same text twice: numbered
    text = (root / f"{name}.yaml").read_text()
    assert text == ("customer: anna-mueller\ndate: 2026-03-05\ntype: call\ndirection: inbound\n"
                    "summary: Asked about heat pumps\nfollow_up:\n  date: 2026-03-12\n"
                    "  what: send brochure\n")
    shown = json.loads(run("-w", root, "--today", "2026-03-06", "show", "anna-mueller",
                           "--format", "json").stdout)
    assert sorted(o["source"] for o in shown["open_follow_ups"]
                  if o["what"] == "send brochure") == [f"{name}-2.yaml:1:1", f"{name}.yaml:1:1"]


def test_log_purchase_with_amount(make_workspace, run):
    root = make_workspace(BASIC)
    result = run("-w", root, "log", "bob", "-t", "purchase", "--date", "2026-01-02",
                 "--amount", "49,90", "--item", "Siphon", "--payment", "paid")
    assert result.exit_code == 0, result.output
    [written] = (root / "interactions/2026").glob("2026-01-02-bob-purchase-*.yaml")
    data = yaml.safe_load(written.read_text())
    assert data["amount"] == 49.9 and data["items"] == ["Siphon"]
    shown = json.loads(run("-w", root, "--today", "2026-01-03", "show", "bob",
                           "--format", "json").stdout)
    assert shown["derived"]["revenue"] == "49.90"


def test_log_errors(make_workspace, run):
    root = make_workspace(BASIC)
    unknown = run("-w", root, "log", "ana-mueller", "-t", "call")
    assert unknown.exit_code == 1
    assert unknown.stderr == ("Error: unknown customer 'ana-mueller' (did you mean "
                              "'anna-mueller'?); see 'crmkit customers'\n")
    bad_type = run("-w", root, "log", "bob", "-t", "cal")
    assert "unknown interaction type 'cal' (did you mean 'call'?)" in bad_type.stderr
    bad_date = run("-w", root, "log", "bob", "-t", "call", "--date", "2026-02-30")
    assert bad_date.exit_code == 1
    assert "'2026-02-30' is not a valid date" in bad_date.stderr
    bad_amount = run("-w", root, "log", "bob", "-t", "purchase", "--amount", "lots")
    assert "--amount: 'lots' is not a number" in bad_amount.stderr
    assert not (root / "interactions" / "2026").exists()


def test_show_text(make_workspace, run):
    root = make_workspace(BASIC)
    result = run("-w", root, "--today", "2026-01-10", "show", "anna-mueller")
    assert result.exit_code == 0
    assert result.stdout == """\
Anna Müller  [anna-mueller]
===========================
Email:              anna@example.de
Tags:               weimar, vip
Email consent:      yes, since 2024-01-02 (web form)
Service:            Wartung, every 1 year since 2024-01-15

As of 2026-01-10
Customer since:     2025-03-01
Last contact:       2025-12-01
Last purchase:      2025-03-01
Purchases:          1
Revenue:            200.00 EUR
Revenue 12 months:  200.00 EUR
Avg order value:    200.00 EUR
Segments:           lifecycle=active (since 2025-05-31), abc=A, rfm=111
Churn reason:       no purchase or service for 315 days; service contract every 365 days; \
nobody here had bought twice before today: assumed back within 365 days

Reminders (crmkit done ID, crmkit snooze ID --for 1w)
  2025-01-15  Wartung due (overdue)
              service_due/anna-mueller/2025-01-15
  2025-12-10  Follow up: send the offer (overdue)
              follow_up/anna-mueller/2025-12-10
  2025-12-31  Deal 'Bathroom' has gone quiet: get in touch with Anna Müller (overdue)
              stale_deal/anna-mueller/2025-12-31/anna-bath
  2026-01-30  Stay in touch with Anna Müller (held back by the frequency cap)
              stay_in_touch/anna-mueller/2026-01-30

Deals
  anna-bath: Bathroom [open, 50%] 9,000.00 EUR

Planned
  2026-02-01  visit — planned check

History (2 interactions)
  2025-12-01  call — Termin
  2025-03-01  purchase — Wartung [200.00 EUR]
"""


def test_show_json_and_unknown_customer(make_workspace, run):
    root = make_workspace(BASIC)
    data = json.loads(run("-w", root, "--today", "2026-01-10", "show", "anna-mueller",
                          "--format", "json").stdout)
    assert data["as_of"] == "2026-01-10"
    assert data["customer"]["emails"] == ["anna@example.de"]
    assert data["derived"]["revenue_12m"] == "200.00"
    assert [h["type"] for h in data["history"]] == ["call", "purchase"]
    assert [p["type"] for p in data["planned"]] == ["visit"]
    assert data["deals"][0]["probability"] == 0.5
    missing = run("-w", root, "show", "zed")
    assert missing.exit_code == 1 and "unknown customer 'zed'" in missing.stderr


def test_customers_filter_and_json(make_workspace, run):
    root = make_workspace(BASIC)
    table = run("-w", root, "--today", "2026-01-10", "customers", "--tag", "weimar")
    assert table.stdout.splitlines() == [
        "id            name         company  tags         last contact  purchases  revenue 12m",
        "------------  -----------  -------  -----------  ------------  ---------  -----------",
        "anna-mueller  Anna Müller           weimar, vip  2025-12-01    1          200.00 EUR",
    ]
    assert table.stderr == "1 of 2 customers\n"
    listed = json.loads(run("-w", root, "customers", "--format", "json").stdout)
    assert [c["id"] for c in listed] == ["anna-mueller", "bob"]
    # Anna's one purchase was on 2025-03-01 under a yearly contract and no one else bought:
    # she is due back within a year of it, so lost once 365 days have passed without her,
    # but not while her deal is open (docs/segments.md: talking to us keeps a customer)
    none = run("-w", root, "--today", "2026-01-10", "customers", "--segment", "lifecycle=lost")
    assert none.stderr == "0 of 2 customers\n"
    lost = run("-w", root, "--today", "2026-06-01", "customers", "--segment", "lifecycle=lost",
               "--format", "json")
    assert json.loads(lost.stdout) == []
    (root / "deals/anna-bath.yaml").write_text(
        "customer: anna-mueller\ntitle: Bathroom\nvalue: 9000\nstage: lost\n", encoding="utf-8")
    lost = run("-w", root, "--today", "2026-06-01", "customers", "--segment", "lifecycle=lost",
               "--format", "json")
    assert [c["id"] for c in json.loads(lost.stdout)] == ["anna-mueller"]
    unknown = run("-w", root, "customers", "--segment", "vip")
    assert unknown.exit_code == 2
    assert "segment 'vip': unknown name 'vip'" in unknown.stderr


def test_customers_segment_filter_uses_plugin_labels(make_workspace, run):
    root = make_workspace({**BASIC, "plugins/seg.py": (
        "import crmkit\n\n@crmkit.hookimpl\ndef crmkit_register(register):\n"
        "    register(crmkit.Label('tier', lambda c: 'gold' if 'vip' in c.customer.tags\n"
        "                          else 'std'))\n"
        "    register(crmkit.Label('weimar', 'tags contains \"weimar\"', group='segments'))\n")})
    gold = run("-w", root, "customers", "--segment", "tier=gold", "--format", "json")
    assert [c["id"] for c in json.loads(gold.stdout)] == ["anna-mueller"]
    weimar = run("-w", root, "customers", "--segment", "weimar", "--format", "json")
    assert [c["id"] for c in json.loads(weimar.stdout)] == ["anna-mueller"]


def test_plugins_command(make_workspace, run):
    root = make_workspace(settings="business: X\ndisable_plugins: [checks]\n")
    listing = json.loads(run("-w", root, "plugins", "--format", "json").stdout)
    assert {"name": "checks", "kind": "stock", "origin": "crmkit_plugins.checks",
            "version": "0.1.0", "enabled": False, "hooks": [], "registers": {}} in listing
    segments = next(p for p in listing if p["name"] == "segments")
    assert "lifecycle" in segments["registers"]["labels"]
    assert "crmkit_register" in segments["hooks"]
    table = run("-w", root, "plugins").stdout
    assert re.search(r"^checks +stock +0\.1\.0 +\(disabled\)$", table, re.MULTILINE)
    assert re.search(r"^reminders +stock +0\.1\.0 +11 reminder kinds, 1 settings section ",
                     table, re.MULTILINE)


def test_global_option_errors_are_one_line(make_workspace, run, tmp_path):
    root = make_workspace(BASIC)
    bad_today = run("-w", root, "--today", "tomorrow", "check")
    assert bad_today.exit_code == 2
    assert "'tomorrow' is not a date; write YYYY-MM-DD" in bad_today.stderr
    nowhere = run("-w", tmp_path, "check")
    assert nowhere.exit_code == 1
    assert "not a crmkit workspace (no crmkit.yaml)" in nowhere.stderr
    typo = run("-w", root, "chek")
    assert typo.exit_code == 2
    assert "no such command 'chek' (did you mean 'check'?)" in typo.stderr


def test_plugin_commands_and_help(make_workspace, run):
    root = make_workspace({"plugins/hello.py": (
        "import click\nimport crmkit\n\n@crmkit.hookimpl\ndef crmkit_register_commands(cli):\n"
        "    @cli.command()\n    @crmkit.pass_app\n    def hello(app):\n"
        "        '''Say hello to every customer.'''\n"
        "        click.echo(f'hello {app.workspace.settings.business}')\n")})
    assert run("-w", root, "hello").stdout == "hello Test GmbH\n"
    assert "Say hello to every customer." in run("-w", root, "hello", "--help").stdout
    # crmkit --help runs no workspace code (tests/test_trust.py), so it cannot list it
    assert "hello" not in run("-w", root, "--help").stdout


def test_installed_command_runs_as_a_real_process(tmp_path):
    """The console script itself, on the example workspace and on a broken copy."""
    ok = subprocess.run([CRMKIT, "-w", EXAMPLE, "check"], capture_output=True, text=True)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.endswith("0 errors, 0 warnings\n")
    module = subprocess.run([sys.executable, "-m", "crmkit", "--version"], capture_output=True,
                            text=True)
    assert module.stdout == "crmkit, version 0.1.0\n"
    broken = tmp_path / "ws"
    subprocess.run(["cp", "-r", str(EXAMPLE), str(broken)], check=True)
    (broken / "customers" / "mueller-anna.yaml").write_text("name: Anna\n  email: x\n")
    result = subprocess.run([CRMKIT, "-w", broken, "check"], capture_output=True, text=True)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "customers/mueller-anna.yaml: warning: 18 interaction(s) of 'mueller-anna' are left "
        "out until this file is fixed",
        "customers/mueller-anna.yaml:2:8: error: invalid YAML: mapping values are not allowed "
        "in this context",
        "30 customers, 339 interactions, 10 deals: 1 error, 1 warning"]  # 357 - 18
    assert "Traceback" not in result.stderr
    show = subprocess.run([CRMKIT, "-w", broken, "--today", "2026-11-23", "show",
                           "schaefer-bjoern"], capture_output=True, text=True)
    assert show.returncode == 0 and "Björn Schäfer" in show.stdout
    assert "the workspace has 1 error; run 'crmkit check' to see it" in show.stderr
