import datetime as dt
import json
import os
import re
import subprocess
import sys

import pytest
from conftest import CRMKIT, REPO

from crmkit.engine.plugins import DEFAULT_PLUGINS, load_plugins
from crmkit.loading.loader import load_workspace

EXAMPLE_PLUGIN = REPO / "docs" / "examples" / "referrals"

CUSTOMERS = {
    "customers/anna.yaml": "name: Anna\nsource: referral\n",
    "customers/bob.yaml": "name: Bob\nreferred_by: anna\n",
    "customers/cleo.yaml": "name: Cleo\nreferred_by: anna\n",
}


def names(host):
    return {p.name: p for p in host.plugins}


def test_stock_plugins_are_the_default_plugins_and_load_like_any_other(make_workspace):
    host = load_plugins(make_workspace())
    checks = names(host)["checks"]
    assert checks.kind == "stock" and checks.origin == "crmkit_plugins.checks"
    assert checks.hooks == ("crmkit_register", "crmkit_validate")
    assert [p.name for p in host.plugins if p.kind == "stock"] == list(DEFAULT_PLUGINS)
    assert host.diagnostics == []


def test_workspace_plugin_is_loaded_by_path_and_its_hooks_run(make_workspace):
    root = make_workspace({**CUSTOMERS, "plugins/referrals.py":
                           (EXAMPLE_PLUGIN / "crmkit_referrals.py").read_text()})
    host = load_plugins(root)
    info = names(host)["referrals"]
    assert info.kind == "workspace" and info.origin == "plugins/referrals.py"
    assert set(info.hooks) == {"crmkit_register", "crmkit_register_commands"}
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
        "crmkit.yaml: warning: disable_plugins names 'chekcs', but no such plugin is installed "
        "(did you mean 'checks'?)"]


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


def test_a_plugin_label_through_the_app(make_workspace):
    from crmkit import App

    root = make_workspace({**CUSTOMERS, "plugins/referrals.py":
                           (EXAMPLE_PLUGIN / "crmkit_referrals.py").read_text()},
                          settings="business: X\nreferrals: {top_referrer_min: 2}\n")
    app = App(root, dt.date(2026, 1, 1))
    assert app.labels()["anna"]["top_referrer"] is True
    assert app.labels()["bob"]["top_referrer"] is False
    assert app.plugin_of(app.registry.labels["top_referrer"]) == "referrals"


@pytest.fixture(scope="module")
def installed_example(tmp_path_factory):
    """The docs' example plugins, pip-installed as real packages into a folder."""
    target = tmp_path_factory.mktemp("site")
    examples = [str(p) for p in sorted((REPO / "docs" / "examples").iterdir())
                if (p / "pyproject.toml").is_file()]
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), *examples],
        check=True, capture_output=True, cwd=tmp_path_factory.mktemp("build"))
    return target


def test_the_docs_example_works_as_an_installed_package(make_workspace, installed_example):
    root = make_workspace({**CUSTOMERS},
                          settings="business: X\nreferrals:\n  top_referrer_min: 1\n")
    env = {**os.environ, "PYTHONPATH": str(installed_example)}
    listing = subprocess.run([CRMKIT, "-w", root, "plugins", "--format", "json"], env=env,
                             capture_output=True, text=True, check=True)
    plugins = {p["name"]: p for p in json.loads(listing.stdout)}
    for name in ("referrals", "anniversary", "busy_area"):
        assert (plugins[name]["kind"], plugins[name]["version"]) == ("installed", "1.0.0")
    assert plugins["anniversary"]["registers"] == {"reminder kinds": ["anniversary"]}
    kinds = subprocess.run([CRMKIT, "-w", root, "reminders", "--list-kinds"], env=env,
                           capture_output=True, text=True, check=True).stdout
    assert re.search(r"^anniversary +anniversary +yes +3 +thanks on the anniversary$", kinds,
                     re.MULTILINE)
    (root / "templates").mkdir()
    for template in (REPO / "docs" / "examples" / "busy_area" / "templates").iterdir():
        (root / "templates" / template.name).write_text(template.read_text())
    weekly = subprocess.run([CRMKIT, "-w", root, "report", "weekly", "--format", "md",
                             "--out", "-"], env=env, capture_output=True, text=True, check=True)
    assert "## Where most customers live\n\nNobody shares a postal code." in weekly.stdout
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


EVERY_KIND_OF_RULE = """\
import datetime as dt
import crmkit

def call_vip(c):
    if c.labels["vip"]:
        yield crmkit.Due(c.today + dt.timedelta(days=3), "Call", "VIP")
    if c.id == "bob":
        yield crmkit.Due(dt.date(2020, 1, 1), "Old", "test")

def draft(reminder, kind, customer):
    if reminder.kind == "call_vip" and reminder.customer == "anna":
        return crmkit.EmailDraft(reminder, "anna@x.de", "Hi", "Body", "en")

@crmkit.hookimpl
def crmkit_register(register):
    register(crmkit.Label("vip", lambda c: c.id == "anna"))
    register(crmkit.ReminderKind("call_vip", call_vip, "call the VIPs", reads=("vip",)))
    register(crmkit.Metric("how_many", "How many", lambda c: 1,
                           across=lambda parts, scope: len(parts)))
    register(crmkit.ReportSection("weekly", "b", "B", "b", order=2))
    register(crmkit.ReportSection("weekly", "a", "A", "a", lambda app: {"n": 2}, order=2))
    register(crmkit.ReportSection("weekly", "z", "Z", "z", order=1))

@crmkit.hookimpl
def crmkit_draft_email(reminder, kind, customer):
    return draft(reminder, kind, customer)
"""


def test_every_kind_of_rule_through_the_app(make_workspace):
    from crmkit import App

    root = make_workspace({**CUSTOMERS, "plugins/every.py": EVERY_KIND_OF_RULE})
    app = App(root, dt.date(2026, 1, 1))
    reminders = [r for r in app.reminders() if r.kind == "call_vip"]
    assert [(r.customer, r.title, r.overdue(app.today), r.priority) for r in reminders] == [
        ("bob", "Old", True, 3), ("anna", "Call", False, 3)]
    draft = app.draft_email(reminders[1])
    assert draft is not None and draft.to == "anna@x.de"
    assert app.draft_email(reminders[0]) is None  # nobody drafts it: no template for the kind
    assert app.metric("how_many").value == 3
    sections = [s for s in app.report_sections("weekly") if s.name in ("z", "a", "b")]
    assert [s.name for s in sections] == ["z", "a", "b"]  # by order, then name
    assert sections[1].context(app) == {"n": 2}
    assert not {"z", "a", "b"} & {s.name for s in app.report_sections("dashboard")}
    assert app.problems == []


def _plugin_packages() -> list[str]:
    return sorted(p.name for p in (REPO / "plugins").iterdir()
                  if (p / "__init__.py").is_file())


def test_stock_plugins_use_only_the_public_api_and_never_import_each_other():
    """Stock plugins are ordinary plugins: they import `crmkit`, never its submodules,
    and nothing of another plugin."""
    import ast

    import crmkit

    for package in _plugin_packages():
        for path in sorted((REPO / "plugins" / package).rglob("*.py")):
            where = f"{package}/{path.name}"
            tree = ast.parse(path.read_text(encoding="utf-8"))
            for node in ast.walk(tree):
                if isinstance(node, ast.ImportFrom):
                    module = node.module or ""
                    if node.level == 0:
                        assert not module.startswith(("crmkit.", "crmkit_plugins")), \
                            f"{where}: {module}"
                    else:  # relative: only within the plugin's own package
                        assert node.level == 1, f"{where}: {'.' * node.level}{module}"
                if isinstance(node, ast.Import):
                    for alias in node.names:
                        assert not alias.name.startswith(("crmkit.", "crmkit_plugins")), \
                            f"{where}: {alias.name}"
                if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) \
                        and node.value.id == "crmkit":
                    assert node.attr in crmkit.__all__, f"{where}: crmkit.{node.attr}"


def test_the_public_api_is_small_and_says_nothing_about_caching():
    """Issue 15: at most 30 names, none of the core's keeping and replaying."""
    import crmkit

    assert len(crmkit.__all__) <= 30
    caching = ("cache", "memo", "replay", "read_only", "snapshot", "durable", "incremental",
               "background", "sharing", "deferred", "kept")
    assert not [n for n in crmkit.__all__ if any(w in n.lower() for w in caching)]
    # the one exception: after an erasure, a privacy plugin must delete the copies
    # crmkit keeps (docs/security.md), so it has to be able to ask for it
    assert [n for n in dir(crmkit.App) if not n.startswith("_")
            and any(w in n.lower() for w in caching)] == ["clear_caches"]


def test_every_stock_plugin_is_listed_once_in_default_plugins():
    from importlib.metadata import entry_points

    assert sorted(DEFAULT_PLUGINS) == _plugin_packages()
    assert len(set(DEFAULT_PLUGINS)) == len(DEFAULT_PLUGINS)
    # and none of them is registered a second time as an entry point
    assert not [ep for ep in entry_points(group="crmkit")
                if ep.value.startswith("crmkit_plugins")]
