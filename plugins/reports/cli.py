"""``crmkit report``: render a report to HTML or Markdown; fail a CI job on request."""

from __future__ import annotations

import sys
from pathlib import Path

import click

import crmkit

FAIL_ON = ("overdue", "at_risk", "errors")


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
        click.echo(f"wrote {app.display_path(path)}", err=out == "-")
    app.warn_about_problems()
    reasons = []
    if "overdue" in fail_on:
        overdue = [r for r in app.reminders() if not r.suppressed and r.overdue(app.today)]
        if overdue:
            reasons.append(f"{len(overdue)} overdue reminder(s)")
    if "at_risk" in fail_on:
        at_risk = [c for c, stage in app.labels().column("lifecycle").items()
                   if stage == "at_risk"]
        if at_risk:
            reasons.append(f"{len(at_risk)} customer(s) at risk")
    if "errors" in fail_on and app.workspace.errors:
        reasons.append(f"{len(app.workspace.errors)} error(s) in the workspace")
    if reasons:
        click.echo(f"failing: {', '.join(reasons)} (--fail-on)", err=True)
        raise SystemExit(1)

