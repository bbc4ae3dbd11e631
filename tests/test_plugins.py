import datetime as dt
import json
import os
import subprocess
import sys

import pytest
from conftest import CRMKIT, REPO

from crmkit.loader import load_workspace
from crmkit.plugins import load_plugins

EXAMPLE_PLUGIN = REPO / "docs" / "examples" / "referrals"

CUSTOMERS = {
    "customers/anna.yaml": "name: Anna\nsource: referral\n",
    "customers/bob.yaml": "name: Bob\nreferred_by: anna\n",
    "customers/cleo.yaml": "name: Cleo\nreferred_by: anna\n",
}


def names(host):
    return {p.name: p for p in host.plugins}


def test_stock_plugins_come_from_the_entry_point_group(make_workspace):
    host = load_plugins(make_workspace())
    checks = names(host)["checks"]
    assert checks.kind == "stock" and checks.origin == "crmkit_plugins.checks"
    assert checks.hooks == ("crmkit_validate",)
    assert host.diagnostics == []


def test_workspace_plugin_is_loaded_by_path_and_its_hooks_run(make_workspace):
    root = make_workspace({**CUSTOMERS, "plugins/referrals.py":
                           (EXAMPLE_PLUGIN / "crmkit_referrals.py").read_text()})
    host = load_plugins(root)
    info = names(host)["referrals"]
    assert info.kind == "workspace" and info.origin == "plugins/referrals.py"
    assert set(info.hooks) == {"crmkit_config_sections", "crmkit_validate", "crmkit_segments",
                               "crmkit_register_commands"}
    ws = load_workspace(root, host)
    assert [str(d) for d in ws.diagnostics] == [
        "customers/anna.yaml:2:9: warning: source is 'referral' but 'referred_by' is missing: "
        "who referred them?"]


def test_plugins_can_be_disabled_by_name(make_workspace):
    root = make_workspace({
        "customers/a.yaml": "name: A\nemail: same@x.de\n",
        "customers/b.yaml": "name: B\nemail: same@x.de\n",
        "plugins/noisy.py": "import crmkit\n\n@crmkit.hookimpl\ndef crmkit_validate(workspace):\n"
                            "    return [crmkit.Diagnostic.warning('noise')]\n",
    })
    enabled = load_workspace(root, load_plugins(root))
    assert [d.message for d in enabled.diagnostics] == [
        "noise", "duplicate customer: 'a' has the same email 'same@x.de'"]
    host = load_plugins(root, ["checks", "noisy"])
    assert {p.name for p in host.plugins if p.disabled} == {"checks", "noisy"}
    assert load_workspace(root, host).diagnostics == ()


def test_disabling_an_unknown_plugin_is_a_warning(make_workspace):
    host = load_plugins(make_workspace(), ["chekcs"])
    assert [str(d) for d in host.diagnostics] == [
        "crmkit.yaml: warning: disable_plugins names 'chekcs', but no such plugin is installed"]


def test_a_plugin_that_fails_to_import_is_named_and_the_rest_works(make_workspace):
    root = make_workspace({
        "customers/a.yaml": "name: A\n",
        "plugins/broken.py": "import crmkit\n\nx = 1\nraise RuntimeError('boom')\n",
        "plugins/syntax.py": "def oops(:\n",
        "plugins/good.py": "import crmkit\n\n@crmkit.hookimpl\ndef crmkit_interaction_types():\n"
                           "    return ['workshop']\n",
    })
    host = load_plugins(root)
    assert [str(d) for d in host.diagnostics] == [
        "plugins/broken.py:4:1: error: workspace plugin 'broken' failed to import: "
        "RuntimeError: boom",
        "plugins/syntax.py:1:10: error: workspace plugin 'syntax' failed to import: "
        "SyntaxError: invalid syntax (syntax.py, line 1)",
    ]
    assert "good" in names(host) and "broken" not in names(host)
    (root / "interactions").mkdir()
    (root / "interactions" / "w.yaml").write_text("customer: a\ndate: 2024-01-01\ntype: workshop\n")
    ws = load_workspace(root, host)
    assert len(ws.interactions) == 1
    assert sum(d.is_error for d in ws.diagnostics) == 2


def test_a_hook_that_raises_names_plugin_and_hook_and_others_still_count(make_workspace):
    root = make_workspace({
        "customers/a.yaml": "name: A\nemail: same@x.de\n",
        "customers/b.yaml": "name: B\nemail: same@x.de\n",
        "plugins/crashy.py": "import crmkit\n\n@crmkit.hookimpl\ndef crmkit_validate(workspace):\n"
                             "    return 1 / 0\n",
    })
    ws = load_workspace(root, load_plugins(root))
    messages = [d.message for d in ws.diagnostics]
    assert "plugin 'crashy' failed in crmkit_validate: ZeroDivisionError: division by zero" \
        in messages
    assert "duplicate customer: 'a' has the same email 'same@x.de'" in messages


def test_misspelled_hook_and_wrong_arguments_fail_loudly(make_workspace):
    root = make_workspace({
        "plugins/typo.py": "import crmkit\n\n@crmkit.hookimpl\ndef crmkit_validtae(workspace):\n"
                           "    return []\n",
        "plugins/args.py": "import crmkit\n\n@crmkit.hookimpl\ndef crmkit_validate(wrkspace):\n"
                           "    return []\n",
    })
    host = load_plugins(root)
    messages = [d.message for d in host.diagnostics]
    assert any("'typo'" in m and "crmkit_validtae" in m for m in messages), messages
    assert any("'args'" in m and "wrkspace" in m for m in messages), messages
    assert "args" not in names(host) and "typo" not in names(host)


def test_segments_hook_through_the_app(make_workspace):
    from crmkit import App

    root = make_workspace({**CUSTOMERS, "plugins/referrals.py":
                           (EXAMPLE_PLUGIN / "crmkit_referrals.py").read_text()},
                          settings="business: X\nreferrals: {top_referrer_min: 2}\n")
    app = App(root, dt.date(2026, 1, 1))
    assert app.segments()["anna"]["top_referrer"] is True
    assert "top_referrer" not in app.segments()["bob"]


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """The docs' example plugin, pip-installed as a real package into a folder."""
    target = tmp_path_factory.mktemp("site")
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(EXAMPLE_PLUGIN)],
        check=True, capture_output=True, cwd=tmp_path_factory.mktemp("build"))
    return target


def test_the_docs_example_works_as_an_installed_package(make_workspace, installed_example):
    root = make_workspace({**CUSTOMERS},
                          settings="business: X\nreferrals:\n  top_referrer_min: 1\n")
    env = {**os.environ, "PYTHONPATH": str(installed_example)}
    listing = subprocess.run([CRMKIT, "-w", root, "plugins", "--format", "json"], env=env,
                             capture_output=True, text=True, check=True)
    plugins = {p["name"]: p for p in json.loads(listing.stdout)}
    assert plugins["referrals"]["kind"] == "installed"
    assert plugins["referrals"]["version"] == "1.0.0"
    out = subprocess.run([CRMKIT, "-w", root, "referrals"], env=env, capture_output=True,
                         text=True, check=True)
    assert out.stdout == "anna: bob, cleo (0.00 EUR)\n"
    check = subprocess.run([CRMKIT, "-w", root, "check"], env=env, capture_output=True,
                           text=True)
    assert check.returncode == 0
    assert "customers/anna.yaml:2:9: warning: source is 'referral'" in check.stdout
    # and without the package, the section is unknown: proof it was the plugin
    bare = subprocess.run([CRMKIT, "-w", root, "check"], capture_output=True, text=True,
                          env={k: v for k, v in env.items() if k != "PYTHONPATH"})
    assert bare.returncode == 1
    assert "crmkit.yaml:2:1: error: unknown setting 'referrals'" in bare.stdout


EVERY_RESULT_HOOK = """\
import datetime as dt
import crmkit

@crmkit.hookimpl
def crmkit_reminders(snapshot, segments):
    for c in snapshot.customers:
        if segments.label(c.id, "vip"):
            yield crmkit.Reminder(due=snapshot.today + dt.timedelta(days=3), customer=c.id,
                                  kind="call_vip", title="Call", reason="VIP")
    yield crmkit.Reminder(due=dt.date(2020, 1, 1), customer="bob", kind="old",
                          title="Old", reason="test")

@crmkit.hookimpl
def crmkit_segments(snapshot):
    yield crmkit.SegmentLabel("anna", "vip", True)

@crmkit.hookimpl
def crmkit_draft_email(reminder, snapshot):
    if reminder.kind == "call_vip":
        return crmkit.EmailDraft(reminder, "anna@x.de", "Hi", "Body", "en")

@crmkit.hookimpl
def crmkit_metrics(snapshot):
    return [crmkit.Metric("customers", "Customers", len(snapshot.customers))]

@crmkit.hookimpl
def crmkit_report_sections(report, reminders):
    if report == "weekly":
        return [crmkit.ReportSection("b", "B", "b.md.j2", order=2),
                crmkit.ReportSection("a", "A", "a.md.j2", {"n": len(reminders)}, order=2),
                crmkit.ReportSection("z", "Z", "z.md.j2", order=1)]
"""


def test_result_hooks_through_the_app(make_workspace):
    from crmkit import App

    root = make_workspace({**CUSTOMERS, "plugins/every.py": EVERY_RESULT_HOOK})
    app = App(root, dt.date(2026, 1, 1))
    reminders = app.reminders()
    assert [(r.customer, r.kind, r.overdue(app.today)) for r in reminders] == [
        ("bob", "old", True), ("anna", "call_vip", False)]
    draft = app.draft_email(reminders[1])
    assert draft is not None and draft.to == "anna@x.de"
    assert app.draft_email(reminders[0]) is None
    ours = [m for m in app.metrics() if m.label == "Customers" and m.unit is None
            and m.description == ""]
    assert ("customers", 3) in [(m.name, m.value) for m in ours]
    sections = [s for s in app.report_sections("weekly") if s.name in ("z", "a", "b")]
    assert [s.name for s in sections] == ["z", "a", "b"]  # by order, then name
    assert sections[1].context == {"n": 2}
    assert not {"z", "a", "b"} & {s.name for s in app.report_sections("dashboard")}
    assert app.problems == []


def test_stock_plugins_use_only_the_public_api():
    """Stock plugins are ordinary plugins: they import `crmkit`, never its submodules."""
    import ast

    for path in sorted((REPO / "plugins").glob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                assert not node.module.startswith("crmkit."), f"{path.name}: {node.module}"
            if isinstance(node, ast.Import):
                for alias in node.names:
                    assert not alias.name.startswith("crmkit."), f"{path.name}: {alias.name}"
            if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                    and node.value.id == "crmkit":
                import crmkit
                assert node.attr in crmkit.__all__, f"{path.name}: crmkit.{node.attr}"


def test_stock_plugins_are_registered_as_entry_points():
    from importlib.metadata import entry_points

    registered = {ep.name: ep.value for ep in entry_points(group="crmkit")}
    modules = {p.stem for p in (REPO / "plugins").glob("*.py")} - {"__init__"}
    helpers = {"expressions", "reminders_cli", "drafts_cli", "mail", "charts", "reports_cli",
               "matching", "clv_model"}
    assert {n: v for n, v in registered.items() if v.startswith("crmkit_plugins.")} == {
        m: f"crmkit_plugins.{m}" for m in modules - helpers}
