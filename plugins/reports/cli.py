"""``crmkit report``: render a report to HTML or Markdown; fail a CI job on request."""

from __future__ import annotations

import sys
from pathlib import Path

import click

import crmkit

FAIL_ON = ("overdue", "at_risk", "errors")


def _(message: str) -> str:
    """What the command says itself, in the terminal's language (LANG), not the
    workspace's."""
    return crmkit.translations(terminal=True).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return crmkit.translations(terminal=True).ngettext(singular, plural, n)


@click.command("report")
@click.argument("name", default="dashboard")
@click.option("--format", "fmt", type=click.Choice(["html", "md"]), default="html",
              show_default=True)
@click.option("--out", "out", metavar="DIR|-",
              help="Folder to write to (default: the output folder + /reports); '-' prints "
                   "to stdout, e.g. into $GITHUB_STEP_SUMMARY.")
@click.option("--list", "list_reports", is_flag=True, help="List the available reports.")
@click.option("--fail-on", "fail_on", multiple=True, type=click.Choice(FAIL_ON),
              help="Exit 1 (after writing) when there are overdue reminders, customers at "
                   "risk, or workspace errors. Repeatable.")
@crmkit.pass_app(pure=lambda p: p["out"] == "-" or p["list_reports"])
def report_command(app: crmkit.App, name: str, fmt: str, out: str | None, list_reports: bool,
                   fail_on: tuple[str, ...]) -> None:
    """Render the report NAME (default: dashboard; also: weekly)."""
    from . import available_reports, render_report, write_report

    if list_reports:
        for report, formats in available_reports(app.templates).items():
            click.echo(f"{report}  ({', '.join(formats)})")
        return
    if out == "-":
        sys.stdout.write(render_report(app, name, fmt))
        sys.stdout.flush()
    else:
        path = write_report(app, name, fmt, Path(out) if out else None)
        click.echo(_("wrote %(path)s") % {"path": app.display_path(path)}, err=out == "-")
    app.warn_about_problems()
    reasons = []
    if "overdue" in fail_on:
        overdue = [r for r in app.reminders() if not r.suppressed and r.overdue(app.today)]
        if overdue:
            reasons.append(ngettext("%(num)d overdue reminder", "%(num)d overdue reminders",
                                    len(overdue)) % {"num": len(overdue)})
    if "at_risk" in fail_on:
        at_risk = [c for c, stage in app.labels().column("lifecycle").items()
                   if stage == "at_risk"]
        if at_risk:
            reasons.append(ngettext("%(num)d customer at risk", "%(num)d customers at risk",
                                    len(at_risk)) % {"num": len(at_risk)})
    if "errors" in fail_on and app.workspace.errors:
        errors = len(app.workspace.errors)
        reasons.append(ngettext("%(num)d error in the workspace",
                                "%(num)d errors in the workspace", errors) % {"num": errors})
    if reasons:
        click.echo(_("failing: %(reasons)s (--fail-on)") % {"reasons": ", ".join(reasons)},
                   err=True)
        raise SystemExit(1)

