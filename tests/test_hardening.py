"""Bad input never crashes crmkit, hostile data stays inert, and no data is lost."""

import datetime as dt
import json
import os
import re
import subprocess

import pytest
from conftest import CRMKIT
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmkit import App
from crmkit.loading.atomic import create_new
from crmkit.loading.loader import load_workspace
from crmkit.loading.yamlsource import parse_yaml

YAMLISH = st.text(alphabet=st.sampled_from(list("abc:-[]{}&*!|>'\"#%@ \n\t0123.,?")),
                  max_size=200)


@given(st.binary(max_size=400))
@settings(max_examples=300, deadline=None)
def test_arbitrary_bytes_never_crash_the_parser(data):
    parsed = parse_yaml(data, "x.yaml")  # must not raise, whatever the bytes
    assert all(d.location is not None and d.location.path == "x.yaml"
               for d in parsed.diagnostics)


@given(YAMLISH, YAMLISH)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                   HealthCheck.function_scoped_fixture])
def test_arbitrary_yaml_in_workspace_files_never_crashes_the_loader(tmp_path_factory, a, b):
    root = tmp_path_factory.mktemp("ws")
    (root / "crmkit.yaml").write_text("business: X\n")
    (root / "customers").mkdir()
    (root / "interactions").mkdir()
    (root / "customers" / "a.yaml").write_text(a, encoding="utf-8")
    (root / "interactions" / "b.yaml").write_text(b, encoding="utf-8")
    workspace = load_workspace(root, use_cache=False)
    for diagnostic in workspace.diagnostics:
        assert diagnostic.location is not None and diagnostic.location.path


def diagnostics(root):
    return [str(d) for d in load_workspace(root, use_cache=False).diagnostics]


def test_tabs_and_an_unclosed_quote_point_at_the_place(make_workspace):
    root = make_workspace({"customers/a.yaml": "name: A\n\temail: a@x.de\n",
                           "customers/b.yaml": "name: 'B\n"})
    found = diagnostics(root)
    assert found[0].startswith("customers/a.yaml:2:1: error: invalid YAML")
    assert "tab" in found[0]
    assert found[1].startswith("customers/b.yaml:2:1: error: invalid YAML")


def test_a_50_mb_file_loads_and_a_50_mb_binary_is_refused(make_workspace):
    note = "Sehr lange Notiz. " * (50 * 1024 * 1024 // 18)
    root = make_workspace({"customers/big.yaml": f"name: Big\nnotes: '{note}'\n",
                           "customers/blob.yaml": b"\x00\xff" * (25 * 1024 * 1024)})
    workspace = load_workspace(root, use_cache=False)
    assert len(workspace.customers["big"].notes) > 50_000_000
    assert [str(d) for d in workspace.diagnostics] == [
        "customers/blob.yaml:1:1: error: binary file, not YAML"]


HOSTILE = "=cmd|' /C calc'!A0 <b>bold</b>\r\nBcc: x@evil.example"


def test_hostile_customer_data_stays_inert_in_every_output(make_workspace, run):
    name = json.dumps(HOSTILE)
    root = make_workspace({
        "customers/evil.yaml": f"name: {name}\nemail: evil@example.de\ntags: [{name}]\n"
                               "birthday: 1980-06-03\n"
                               "consent: {email: true, since: 2024-01-01}\n",
        "interactions/a.yaml": f"customer: evil\ndate: 2026-05-20\ntype: call\n"
                               f"summary: {name}\nfollow_up: 2026-05-25\n",
    }, settings="business: X\nsender: {name: S, email: s@example.de}\n")
    base = ("-w", root, "--today", "2026-06-01")
    table = run(*base, "customers").stdout
    assert "\r" not in table and table.count("\n") == 3  # header, rule, one row
    reminders_md = run(*base, "reminders", "--format", "md").stdout
    assert "<b>" not in reminders_md and "&lt;b&gt;" in reminders_md
    assert "Bcc:" not in reminders_md.split("|")[0]
    ics = run(*base, "reminders", "--format", "ics").stdout_bytes
    assert b"\r\nBcc:" not in ics
    html = run(*base, "report", "weekly", "--out", "-").stdout
    assert "<b>bold</b>" not in html and "&lt;b&gt;bold&lt;/b&gt;" in html
    markdown = run(*base, "report", "weekly", "--format", "md", "--out", "-").stdout
    assert "<b>" not in markdown
    import csv
    import io

    rows = list(csv.DictReader(io.StringIO(run(*base, "export", "csv").stdout.lstrip("\ufeff"))))
    assert rows[0]["name"].startswith("'=cmd|") and rows[0]["tags"].startswith("'=cmd|")
    drafts = json.loads(run(*base, "drafts", "--format", "json").stdout)["drafts"]
    assert drafts and all("\n" not in d["subject"] for d in drafts)
    run(*base, "drafts")
    eml = next((root / "out" / "drafts").glob("*.eml")).read_bytes()
    assert b"\nBcc:" not in eml.split(b"\n\n")[0]
    shown = json.loads(run(*base, "show", "evil", "--format", "json").stdout)
    assert shown["customer"]["name"] == HOSTILE  # JSON keeps the data exactly


LINKS = ("[Rabatt](https://evil.example/a) ![](https://evil.example/p.png) "
         "www.evil.example <https://evil.example> http://evil.example x@evil.example")


def test_links_in_customer_data_are_plain_text_in_every_markdown_output(make_workspace, run):
    """A CI job summary renders the Markdown: customer data must not become a link, an
    image or an autolink there (md_cell: backslash escapes, a WORD JOINER before ``@``)."""
    text = json.dumps(LINKS)
    root = make_workspace({
        "customers/link.yaml": f"name: {text}\nsource: {text}\npreferred_channel: {text}\n",
        "interactions/a.yaml": f"customer: link\ndate: 2026-05-20\ntype: call\n"
                               f"channel: {text}\nsummary: {text}\nfollow_up: 2026-05-25\n",
        "interactions/b.yaml": "customer: link\ndate: 2026-05-21\ntype: purchase\n"
                               "amount: 100\n",
        "interactions/c.yaml": f"customer: link\ndate: 2026-05-22\ntype: complaint\n"
                               f"summary: {text}\n",
        "deals/d.yaml": f"customer: link\ntitle: {text}\nstage: proposal\nvalue: 10\n",
    }, settings=f"business: {text}\nsender: {{name: S, email: s@example.de}}\n")
    base = ("-w", root, "--today", "2026-06-01")
    run(*base, "build")
    outputs = {
        "reminders": run(*base, "reminders", "--format", "md").stdout,
        "weekly": run(*base, "report", "weekly", "--format", "md", "--out", "-").stdout,
        "dashboard": run(*base, "report", "dashboard", "--format", "md", "--out", "-").stdout,
        "out/reminders.md": (root / "out" / "reminders.md").read_text(encoding="utf-8"),
    }
    for name, markdown in outputs.items():
        assert markdown.count("evil.example") >= 6, name  # the data is there, as text
        assert "[Rabatt]" not in markdown and "![]" not in markdown, name
        assert re.search("[a-z]://", markdown) is None and "<https" not in markdown, name
        assert "www.evil" not in markdown, name
        assert "\u2060@evil" in markdown and re.search("[^\u2060]@evil", markdown) is None, name


def test_no_escape_sequence_from_workspace_data_reaches_the_terminal(make_workspace, run,
                                                                      tmp_path):
    """Field keys (show), file names (check) and imported names (the dry run) can hold
    ESC sequences, carriage returns and bidi overrides: crmkit.clean removes them."""
    trap = "\x1b[2K\r\x1b[1Aok\u202e\x9b31m\x1b]8;;https://evil.example\x07"
    root = make_workspace({
        "customers/anna.yaml": f"name: Anna\nfields: {{{json.dumps('key' + trap)}: "
                               f"{json.dumps('value' + trap)}}}\n",
        f"customers/{trap}.yaml": "name: Bad\n",
        f"interactions/{trap}.yaml": "customer: nobody\ndate: 2026-05-01\ntype: call\n",
    })
    csv_file = tmp_path / "people.csv"
    csv_file.write_text(f"name,email\nEva{trap},eva@example.de\n", encoding="utf-8")
    base = ("-w", root, "--today", "2026-06-01")
    shown = run(*base, "show", "anna")
    checked = run(*base, "check")
    imported = run(*base, "import", "csv", csv_file)
    for result in (shown, checked, imported):
        for text in (result.stdout, result.stderr):
            assert not any(c in text for c in "\x1b\x9b\r\u202e\x07"), repr(text)
    assert "key" in shown.stdout and "value" in shown.stdout
    assert checked.stdout.count("customers/") >= 1 and "interactions/" in checked.stdout
    assert "Eva" in imported.stdout


def test_concurrent_log_runs_never_clobber_each_other(make_workspace):
    root = make_workspace({"customers/anna.yaml": "name: Anna\n"})
    processes = [subprocess.Popen([CRMKIT, "-w", root, "log", "anna", "-t", "call",
                                   "--date", "2026-05-01", "-m", f"call {n}"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for n in range(8)]
    outputs = [p.communicate(timeout=60) for p in processes]
    assert all(p.returncode == 0 for p in processes), outputs
    files = sorted((root / "interactions" / "2026").glob("*.yaml"))
    assert len(files) == 8
    summaries = sorted(load_workspace(root, use_cache=False).interactions,
                       key=lambda i: i.summary or "")
    assert [i.summary for i in summaries] == [f"call {n}" for n in range(8)]
    assert not list((root / "interactions" / "2026").glob(".*"))  # no temp files left


def test_a_crash_while_writing_leaves_no_half_file(tmp_path, monkeypatch):
    target = tmp_path / "customers" / "anna.yaml"

    def crash(fd):
        raise OSError("disk full")

    monkeypatch.setattr(os, "fsync", crash)
    with pytest.raises(OSError, match="disk full"):
        create_new(target, b"name: Anna\n")
    assert not target.exists()
    assert list(target.parent.iterdir()) == []


def test_create_never_overwrites(tmp_path):
    target = tmp_path / "a.yaml"
    target.write_text("mine\n")
    with pytest.raises(FileExistsError):
        create_new(target, b"theirs\n")
    assert target.read_text() == "mine\n"


def test_a_read_only_workspace_gives_a_clear_error(make_workspace, run, monkeypatch):
    root = make_workspace({"customers/anna.yaml": "name: Anna\n"})

    import crmkit.loading.atomic

    def refuse(*args, **kwargs):  # what a read-only folder does to the first write
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(crmkit.loading.atomic.tempfile, "mkstemp", refuse)
    monkeypatch.setattr(crmkit.loading.atomic, "_link_unnamed", refuse)  # Linux: O_TMPFILE
    result = run("-w", root, "log", "anna", "-t", "call", "--date", "2026-05-01")
    assert result.exit_code == 1
    # the name ends in six base32 characters from the record's text and author (name_suffix)
    assert re.fullmatch(r"Error: cannot write interactions/2026/2026-05-01-anna-call-[a-z2-7]{6}"
                        r"\.yaml: Permission denied\n", result.stderr), result.stderr
    assert App(root, dt.date(2026, 5, 2)).workspace.interactions == ()


def test_linked_folders_are_not_followed(make_workspace, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "x.yaml").write_text("name: Outside\n")
    root = make_workspace({"customers/a.yaml": "name: A\n"})
    (root / "customers" / "more").symlink_to(outside, target_is_directory=True)
    workspace = load_workspace(root, use_cache=False)
    assert list(workspace.customers) == ["a"]
    assert [str(d) for d in workspace.diagnostics] == [
        "customers/more: warning: ignored: a linked folder (crmkit does not follow folder links)"]


def test_a_crashing_plugin_command_names_the_plugin(make_workspace, run):
    root = make_workspace({"plugins/broken_cmd.py": (
        "import click\nimport crmkit\n\n@crmkit.hookimpl\ndef crmkit_register_commands(cli):\n"
        "    @cli.command()\n    def boom():\n        '''Always fails.'''\n"
        "        return {}['missing']\n")})
    result = run("-w", root, "boom")
    assert result.exit_code == 1
    assert result.stderr == ("Error: plugin 'broken_cmd' failed in 'crmkit boom': "
                             "KeyError: 'missing'\n")
    assert run("-w", root, "check").exit_code == 0  # the rest of crmkit is unaffected


@pytest.mark.parametrize("amount", ["1e27", "1e100", "-2e15", "1e999999999"])
def test_an_absurd_amount_is_a_located_error_and_the_rest_still_works(make_workspace, run,
                                                                      amount):
    """An amount of 1e27 made every sum overflow: reminders printed "0 reminders",
    check said 0 errors; 1e999999999 hung 'log'."""
    root = make_workspace({
        "customers/anna.yaml": "name: Anna\nbirthday: 1980-06-10\n",
        "customers/bert.yaml": "name: Bert\n",
        "interactions/a.yaml": "- {customer: anna, date: 2026-05-01, type: purchase, "
                               "amount: 300}\n"
                               f"- {{customer: bert, date: 2026-05-02, type: purchase, "
                               f"amount: {amount}}}\n",
    })
    check = run("-w", root, "check")
    assert check.exit_code == 1
    assert f"interactions/a.yaml:2:62: error: 'amount': '{amount}' is too large" in check.stdout
    reminders = run("-w", root, "--today", "2026-06-01", "reminders", "--format", "json")
    assert [r["id"] for r in json.loads(reminders.stdout)] == [
        # anna's thanks expired on 05-31; bert's purchase without a valid amount earns
        # thanks but no feedback request (those need 200)
        "thank_you/bert/2026-05-03", "feedback_request/anna/2026-05-15",
        "birthday/anna/2026-06-10"]
    for command in (["show", "bert"], ["export", "csv", "--out", "-"], ["segments"]):
        assert run("-w", root, "--today", "2026-06-01", *command).exit_code == 0, command
    logged = subprocess.run([str(CRMKIT), "-w", str(root), "log", "anna", "-t", "purchase",
                             "--amount", amount], capture_output=True, text=True, timeout=60)
    assert logged.returncode == 1
    assert f"--amount: '{amount}' is not a number below 999,999,999,999" in logged.stderr


def test_a_build_that_cannot_write_exits_1_naming_the_output_folder(make_workspace, run):
    """It exited 0, blaming a line inside Python's pathlib.py."""
    root = make_workspace({"customers/anna.yaml": "name: Anna\n"})
    (root / "out").write_text("a file where the output folder should be\n")
    result = run("-w", root, "build")
    assert result.exit_code == 1
    assert "error: plugin 'reports': cannot write out/reports/dashboard.html in the output " \
        "folder out: Not a directory" in result.stderr
    assert "the build is incomplete: 2 plugins could not write their files" in result.stderr
    assert "pathlib" not in result.stderr and "workspace has" not in result.stderr


def test_a_long_customer_id_still_gets_its_records_written(make_workspace, run):
    """A 240-character id made 'log', 'done' and recording a sent email fail with
    "File name too long" (the email was out, its record not)."""
    cid = "k" + "-lang" * 47 + "x"
    root = make_workspace({f"customers/{cid}.yaml": "name: Lang\n"})
    out = run("-w", root, "--today", "2026-06-01", "log", cid, "-t", "call")
    assert out.exit_code == 0, out.output
    [path] = (root / "interactions" / "2026").iterdir()
    assert len(path.name) < 120 and f"customer: {cid}\n" in path.read_text()
    assert run("-w", root, "check").exit_code == 0


def test_add_customer_refuses_another_customers_email(make_workspace, run):
    """It wrote the file, and then 'check' failed (on the older customer's file)."""
    root = make_workspace({"customers/sophie-lang.yaml":
                           "name: Sophie Lang\nemail: Sophie@Lang.example\n"})
    result = run("-w", root, "add", "customer", "--name", "Sophie L.",
                  "--email", "sophie@lang.example ")
    assert result.exit_code == 1
    assert result.stderr.count("\n") == 1
    assert "'sophie-lang' already has the email 'Sophie@Lang.example'" in result.stderr
    assert "crmkit duplicates" in result.stderr
    assert not (root / "customers" / "sophie-l.yaml").exists()
    assert run("-w", root, "check").exit_code == 0


@pytest.mark.parametrize("expression", ["not " * 1400 + "true",
                                        "(" * 480 + "true" + ")" * 480,
                                        "tags contains " + "[" * 400 + "]" * 400])
def test_a_deeply_nested_segment_expression_is_a_located_error(make_workspace, run,
                                                                expression):
    """Under the size limit, a few hundred levels of nesting crashed 'check' and
    'segments' with a RecursionError instead of a located error."""
    root = make_workspace({"customers/anna.yaml": "name: Anna\n"},
                          settings=f"business: X\nsegments:\n  deep: {expression}\n")
    check = run("-w", root, "check")
    assert check.exit_code == 1
    assert "crmkit.yaml:3:9: error: segment 'deep': the expression is nested too deeply " \
        "(more than 50 levels" in check.stdout
    assert run("-w", root, "segments").exit_code == 0


def test_the_longest_allowed_segment_expression_runs(make_workspace, run):
    """A chain of 'or' as long as the size limit allows is evaluated without recursing
    once per term."""
    root = make_workspace({"customers/anna.yaml": "name: Anna\n"},
                          settings="business: X\nsegments:\n  long: "
                                   + " or ".join(["not true"] * 370) + " or true\n")
    assert run("-w", root, "check").exit_code == 0
    out = run("-w", root, "customers", "--segment", "long", "--format", "json")
    assert out.exit_code == 0 and [c["id"] for c in json.loads(out.stdout)] == ["anna"]


@pytest.mark.parametrize("business", ['"Muster\\nGmbH"', '"Muster\\u2028GmbH"', "M" * 201])
def test_business_is_one_bounded_line_and_the_calendar_survives_anyway(make_workspace, run,
                                                                       business):
    """A newline in 'business' passed check and crashed the calendar in build."""
    root = make_workspace({"customers/anna.yaml": "name: Anna\nbirthday: 1980-06-10\n"},
                          settings=f"business: {business}\n")
    check = run("-w", root, "check")
    assert check.exit_code == 1
    assert "crmkit.yaml:1:11: error: 'business' must be one line of at most 200 " \
        "characters" in check.stdout
    from crmkit.engine.calendar import to_ics

    ics = to_ics([], dt.date(2026, 6, 1), "Muster\r\nGmbH\u2028: reminders")
    assert b"X-WR-CALNAME:Muster GmbH : reminders\r\n" in ics


def test_an_xlsx_whose_dimension_lies_is_read_in_full(make_workspace, run, tmp_path):
    """A <dimension> claiming one cell made every row but the header disappear: the
    import said "nothing to create"."""
    import re
    import zipfile

    import openpyxl

    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Name", "E-Mail"])
    for n in range(40):
        sheet.append([f"Kunde {n}", f"k{n}@example.de"])
    honest = tmp_path / "honest.xlsx"
    book.save(honest)
    lying = tmp_path / "lying.xlsx"
    with zipfile.ZipFile(honest) as source, zipfile.ZipFile(lying, "w") as target:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, n = re.subn(rb'<dimension ref="[^"]*"', b'<dimension ref="A1"', data)
                assert n == 1
            target.writestr(item, data)
    root = make_workspace({})
    out = run("-w", root, "import", "xlsx", lying)
    assert out.exit_code == 0, out.output
    assert "lying.xlsx: 40 rows (xlsx)" in out.output
    assert "40 new, 0 existing" in out.output, out.output


ESCAPES = [
    '{{ cycler.__init__.__globals__.os.popen("touch MARKER").read() }}',
    '{{ "".__class__.__mro__[1].__subclasses__() }}',
    "{{ lipsum.__globals__['os'].system('touch MARKER') }}",
    "{{ self._TemplateReference__context.cycler.__init__.__globals__.os }}",
    # the run and the file system: the report's `app` is for plugins' filters to read
    "{{ app.root.joinpath('MARKER').write_text('x') }}",
    "{{ app.workspace.root.joinpath('MARKER').write_text('x') }}",
    "{{ app.write_named(app.root.joinpath('MARKER'), 'x', true) }}",
    "{{ app.host }}",
]


@pytest.mark.parametrize("escape", ESCAPES)
def test_a_workspace_template_cannot_reach_python(make_workspace, run, tmp_path, escape):
    """Workspace templates render in Jinja's sandbox: an escape is a located error in
    the template, nothing runs; stock templates still render."""
    marker = tmp_path / "pwned"
    files = {"customers/a.yaml": "name: A\nemail: a@x.de\n",
             "interactions/i.yaml": "customer: a\ndate: 2026-01-02\ntype: purchase\n"
                                    "amount: 10\n"}
    plain = make_workspace(files)
    for args in (["report", "--format", "md", "--out", "-"],
                 ["report", "weekly", "--format", "md", "--out", "-"],
                 ["report", "pipeline", "--out", "-"]):
        result = run("-w", plain, "--today", "2026-03-01", *args)
        assert result.exit_code == 0, (args, result.stderr)
    root = make_workspace({**files, "templates/reports/dashboard.md.j2":
                           "Hello\n\n" + escape.replace("MARKER", str(marker)) + "\n"})
    result = run("-w", root, "--today", "2026-03-01", "report", "--format", "md", "--out", "-")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: templates/reports/dashboard.md.j2:3:1: plugin "
                                    "'reports' failed in 'crmkit report': SecurityError: ")
    built = run("-w", root, "--today", "2026-03-01", "build")
    assert built.exit_code == 1
    assert "templates/reports/dashboard.md.j2:3:1: error: plugin 'reports' failed in " \
           "crmkit_build: SecurityError: " in built.stderr
    assert not marker.exists()


def test_a_failing_rule_makes_the_command_exit_1_and_the_rest_still_shows(make_workspace,
                                                                          run):
    """One bad rule never switches off the others, nor hides that the job is not done."""
    root = make_workspace({
        "customers/a.yaml": "name: A\nemail: a@x.de\nbirthday: 1980-03-10\n",
        "customers/b.yaml": "name: B\nemail: b@x.de\nbirthday: 1981-03-12\n",
        "plugins/broken.py": (
            "import crmkit\n\n\n"
            "def explode(customer):\n"
            "    if customer.id == 'b':\n"
            "        raise ValueError('boom')\n\n\n"
            "def shaky(customer):\n"
            "    raise ValueError('label boom')\n\n\n"
            "@crmkit.hookimpl\n"
            "def crmkit_register(register):\n"
            "    register(crmkit.ReminderKind('explode', explode, 'fails for b'))\n"
            "    register(crmkit.Label('shaky', shaky))\n")})
    kind = ("plugins/broken.py:6:1: error: plugin 'broken': reminder kind 'explode' failed "
            "for customer 'b': ValueError: boom")
    for args in (["reminders"], ["show", "b"], ["reminders", "--format", "json"]):
        result = run("-w", root, "--today", "2026-03-01", *args)
        assert result.exit_code == 1, (args, result.output)
        assert kind in result.stderr.splitlines(), args
        assert "birthday/a/2026-03-10" in result.stdout or args[0] == "show"
        assert "birthday/b/2026-03-12" in result.stdout
    result = run("-w", root, "--today", "2026-03-01", "segments")
    assert result.exit_code == 1
    assert any("label 'shaky' failed for customer 'a'" in line
               for line in result.stderr.splitlines())
    assert [line.split()[0] for line in result.stdout.splitlines()[2:4]] == ["a", "b"]
    # a command that does not run the broken rules does its job
    assert run("-w", root, "--today", "2026-03-01", "customers").exit_code == 0


def test_every_command_says_a_record_folder_is_linked_out(make_workspace, tmp_path):
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    (outside / "o.yaml").write_text("name: Outside\n")
    root = make_workspace({"interactions/i.yaml": "customer: a\ndate: 2026-01-02\n"
                                                  "type: call\n"})
    (root / "customers").symlink_to(outside, target_is_directory=True)
    line = ("customers: error: ignored: a link to a folder outside the workspace (crmkit "
            "does not read through it; move the folder into the workspace)")
    env = {**os.environ, "CRMKIT_BACKGROUND": "0"}
    for args in (["customers"], ["reminders"], ["segments"], ["customers"],
                 ["--no-cache", "show", "a"]):
        result = subprocess.run([str(CRMKIT), "-w", str(root), *args], capture_output=True,
                                text=True, env=env, timeout=120)
        assert result.stderr.splitlines().count(line) == 1, (args, result.stderr)
        assert "Outside" not in result.stdout
