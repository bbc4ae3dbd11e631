"""The docs are part of the product: their examples run, their references match the code."""

import inspect
import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO
from console_blocks import DOC_FILES, check_file

from crmkit import hookspecs
from crmkit.engine.plugins import load_plugins

HOOKS_DOC = (REPO / "docs" / "plugin-hooks.md").read_text(encoding="utf-8")
HOOKS = sorted(name for name, fn in vars(hookspecs).items()
               if name.startswith("crmkit_") and callable(fn))


@pytest.mark.parametrize("doc", DOC_FILES, ids=lambda p: p.name)
def test_console_examples_print_what_the_docs_say(doc):
    mismatches = check_file(doc)
    assert not mismatches, "\n\n".join(
        f"$ {cmd}\n--- documented\n{want}--- actual\n{got}" for cmd, want, got in mismatches)


def test_every_hook_is_documented_with_its_exact_arguments():
    assert len(HOOKS) == 8
    for name in HOOKS:
        args = ", ".join(inspect.signature(getattr(hookspecs, name)).parameters)
        assert f"\n## {name}({args})\n" in HOOKS_DOC, name
    documented = re.findall(r"^## (crmkit_\w+)\(", HOOKS_DOC, re.MULTILINE)
    assert sorted(documented) == HOOKS


def test_every_hook_has_a_docstring():
    for name in HOOKS:
        assert len(inspect.getdoc(getattr(hookspecs, name)) or "") > 40, name


def test_every_hook_example_loads_as_a_plugin_and_does_what_the_page_says(make_workspace,
                                                                       run):
    import datetime as dt

    from crmkit import App

    blocks = re.findall(r"^```python\n(.*?)^```", HOOKS_DOC, re.MULTILINE | re.DOTALL)
    assert len(blocks) == len(HOOKS) + 1  # crmkit_register has a second example
    files = {f"plugins/example_{i}.py": code for i, code in enumerate(blocks)}
    root = make_workspace({
        **files,
        "customers/anna.yaml": "name: Anna Berg\nemail: anna@x.de\nconsent: {email: true, "
                               "since: 2020-01-01}\ntags: [gewerbe]\nbirthday: 1980-02-03\n"
                               "address: {city: Weimar}\n",
        "customers/bert.yaml": "name: Bert\n",
        "interactions/a.yaml": "- {customer: anna, date: 2025-02-02, type: purchase, "
                               "amount: 5000}\n- {customer: anna, date: 2025-03-01, "
                               "type: feedback, score: 9}\n- {customer: bert, date: 2025-04-01, "
                               "type: workshop}\n",
        "deals/d.yaml": "customer: anna\ntitle: Big\nvalue: 100\n",
        "templates/sections/check_ins.md.j2": "{% for r in due %}{{ r.customer | initials }}"
                                              "{% endfor %}\n",
        "people.txt": "Cleo Camp;cleo@x.de\n",
    })
    host = load_plugins(root)
    assert host.diagnostics == []
    implemented = {hook for p in host.plugins if p.name.startswith("example_") for hook in p.hooks}
    assert sorted(implemented) == HOOKS
    today = dt.date(2026, 2, 1)
    app = App(root, today)
    assert [d.message for d in app.workspace.diagnostics] == [
        "business customer without 'company'", "open deal without 'expected_close'"]
    assert app.labels()["anna"]["big_spender"] is True  # 5,000 in the last 12 months
    assert app.labels()["anna"]["segments"]["in_weimar"] is True
    [check_in] = [r for r in app.reminders() if r.kind == "check_in"]
    assert (check_in.customer, check_in.due) == ("anna", dt.date(2026, 3, 1))
    assert app.draft_email(check_in).subject == "How are you doing?"
    assert app.metric("average_score").value == 9
    assert app.workspace.settings.options("b2b").tag == "gewerbe"
    assert "Cleo Camp" in run("-w", root, "import", "lines", root / "people.txt").stdout
    assert run("-w", root, "emails", "--tag", "gewerbe").stdout == "anna@x.de\n"
    app.build()
    assert (root / "out" / "birthdays.txt").read_text() == "02-03 Anna Berg\n"
    weekly = (root / "out" / "reports" / "weekly.md").read_text(encoding="utf-8")
    assert "## Check-ins due\n\na\n" in weekly


def test_writing_plugins_shows_the_tested_examples_verbatim():
    doc = (REPO / "docs" / "writing-plugins.md").read_text(encoding="utf-8")
    examples = REPO / "docs" / "examples"
    for module in sorted(examples.glob("*/crmkit_*.py")):
        assert f"```python\n{module.read_text()}```" in doc, module
    referrals = examples / "referrals" / "pyproject.toml"
    assert f"```toml\n{referrals.read_text()}```" in doc
    template = examples / "busy_area" / "templates" / "busy_area.md.j2"
    assert f"```text\n{template.read_text()}```" in doc


def test_the_reminder_kind_example_is_at_most_25_lines():
    module = REPO / "docs" / "examples" / "anniversary" / "crmkit_anniversary.py"
    assert len(module.read_text().splitlines()) <= 25


def test_readme_quickstart_has_two_commands_and_ci_runs_the_test_one():
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    quickstart = readme.split("## Quickstart", 1)[1].split("\n## ", 1)[0]
    commands = re.findall(r"^```sh\n(.*?)\n```", quickstart, re.MULTILINE | re.DOTALL)
    assert len(commands) == 2 and all("\n" not in c for c in commands)
    assert "example_workspace" in commands[0]
    assert commands[1] in (REPO / ".ci" / "run").read_text(encoding="utf-8")


def test_code_is_ruff_clean():
    result = subprocess.run([sys.executable, "-m", "ruff", "check", str(REPO)],
                            capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert Path(REPO / "pyproject.toml").read_text().count("[tool.ruff") >= 1


def test_ci_examples_are_valid_yaml_and_run_crmkit_as_the_readme_installs_it(tmp_path):
    import shlex
    import shutil

    import yaml

    doc = (REPO / "docs" / "ci.md").read_text(encoding="utf-8")
    blocks = [yaml.safe_load(b) for b in re.findall(r"^```yaml\n(.*?)^```", doc,
                                                    re.MULTILINE | re.DOTALL)]
    assert len(blocks) == 3
    sending = blocks[2]  # steps to add: send, then commit the records back, always
    assert sending[0]["run"] == ".venv/bin/crmkit drafts --send --yes"
    assert sending[1]["if"] == "always()" and "git add interactions/" in sending[1]["run"]
    github = [step.get("run", "") for step in blocks[0]["jobs"]["report"]["steps"]]
    gitlab = blocks[1]["crm-weekly"]["script"]
    # the workspace's own plugins run in CI only when the job says it trusts them
    assert blocks[0]["jobs"]["report"]["env"]["CRMKIT_TRUST_WORKSPACE"] == "1"
    assert blocks[1]["crm-weekly"]["variables"]["CRMKIT_TRUST_WORKSPACE"] == "1"
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert "python3 -m venv .venv && .venv/bin/pip install -e ." in readme
    for lines in (github, gitlab):
        assert "python3 -m venv .venv && .venv/bin/pip install -e ./_crmkit" in lines
    workspace = tmp_path / "ws"
    shutil.copytree(REPO / "example_workspace", workspace,
                    ignore=shutil.ignore_patterns("out", ".crmkit"))
    crmkit = str(Path(sys.executable).parent / "crmkit")
    for line in [*github, *gitlab]:
        if ".venv/bin/crmkit" not in line:
            continue
        command = shlex.split(line.split(">>")[0].split("|")[0])
        command[0] = crmkit
        result = subprocess.run([command[0], "--today", "2026-11-23", *command[1:]],
                                cwd=workspace, capture_output=True, text=True)
        expected = 1 if "--fail-on" in command else 0  # the example has overdue reminders
        assert result.returncode == expected, (line, result.stderr)
