"""Get: where leads come from, how warm they are, and the deals in the pipeline.

* ``sources`` in crmkit.yaml lists the sources and campaigns customers and deals may
  name (checked, with a did-you-mean); ``crmkit sources`` shows per source the leads,
  the customers won, the conversion, the days to the first purchase, revenue and CLV.
* ``lead_scoring`` gives points per condition (expressions of the segment language):
  the ``lead_score`` and ``lead_stage`` labels (cold, warm, qualified) for segments,
  reminders and playbooks; ``crmkit leads`` lists leads by score with the reasons.
* ``pipeline`` configures the deal stages; ``crmkit pipeline`` shows the deals by
  stage, the forecast by month, won and lost, win rate and cycle length (stage history
  from ``git log`` of ``deals/``), stale and overdue deals; the ``stale_deal``
  reminder; the pipeline report and the dashboard's funnel.

docs/pipeline.md defines every figure.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit import ConfigSection, CustomerView, Diagnostic, Label, Metric, Option, ReportSection

from . import dashboard, model
from .history import CLOSED

NAME = "pipeline"
RULE_PREFIX = "_lead_rule_"


def N_(message: str) -> str:
    """Marks a text for translation (``pybabel extract``); translated when shown."""
    return message


#: The funnel's steps, as the dashboard shows them (translated there).
FUNNEL_STEPS = (N_("lead"), N_("qualified"), N_("offer"), N_("won"))

SOURCES_EXAMPLE = """\
sources:
  known: [website, ad, instagram, fair, referral]
  campaigns: [herbst-2026]
  referral: referral"""
SCORING_EXAMPLE = """\
lead_scoring:
  rules:
    'source == "referral"': 30
    email_consent: 10
    days_since_last_contact > 60: -20
  warm: 20
  qualified: 50"""
PIPELINE_EXAMPLE = """\
pipeline:
  stages:
    - {name: lead, probability: 0.1}
    - {name: qualified, probability: 0.3}
    - {name: proposal, probability: 0.5}
    - {name: negotiation, probability: 0.7}
  offer_stage: proposal
  history: git"""

SOURCE_OPTIONS = {
    "known": Option((), "The sources customers and deals may name (empty: any).",
                    kind="texts"),
    "campaigns": Option((), "The campaigns customers and deals may name (empty: any).",
                        kind="texts"),
    "referral": Option("referral", "The source of customers someone referred "
                                   "('referred_by' without a 'source' counts as it)."),
}


def _stage_list_problem(stages: Any) -> str | None:
    names = [s.get("name") for s in stages]
    if not names:
        return "must name at least one stage"
    for name in names:
        if not isinstance(name, str) or not name:
            return "needs a 'name' for every stage"
        if name in CLOSED:
            return f"lists {name!r}: won and lost are always there, after the open stages"
    if len(set(names)) != len(names):
        return "names a stage twice"
    return None


PIPELINE_OPTIONS = {
    "stages": Option(tuple({"name": k, "probability": v}
                           for k, v in model.DEFAULT_STAGES.items()),
                     "The open stages in order, each with its default probability.",
                     kind="list", items={
                         "name": Option(None, "The stage's word.", kind="text"),
                         "probability": Option(0.5, "Its default probability.", minimum=0,
                                               maximum=1)},
                     check=_stage_list_problem),
    "offer_stage": Option(None, "From this stage on a deal has an offer (the dashboard's "
                                "funnel); default: proposal, else the last stage.",
                          kind="text"),
    "history": Option("git", "Where stage changes come from: git (falls back to "
                             "interactions naming the deal) or interactions.",
                      choices=("git", "interactions")),
    "period_days": Option(365, "Won and lost of this many days up to today, without "
                               "--since.", minimum=1),
}
SCORING_OPTIONS = {
    "rules": Option({}, "Points per condition: 'expression: points'."),
}
STAGE_OPTIONS = {
    "warm": Option(20, "A lead with this score or more is warm."),
    "qualified": Option(50, "A lead with this score or more is qualified."),
}


def stages_of(settings: Any) -> dict[str, float]:
    """The open stages in order with their default probabilities."""
    return {s["name"]: s["probability"] for s in settings.options(NAME).stages}


def offer_stages(settings: Any) -> frozenset[str]:
    """The open stages from ``offer_stage`` on (default: proposal, else the last)."""
    return offer_stages_of(settings.options(NAME))


def offer_stages_of(options: Any) -> frozenset[str]:
    """:func:`offer_stages` from the options of ``pipeline`` in crmkit.yaml."""
    stages = [s["name"] for s in options.stages]
    offer = options.offer_stage
    if offer is None:
        offer = "proposal" if "proposal" in stages else stages[-1] if stages else None
    return frozenset(stages[stages.index(offer):] if offer in stages else ())


# --- lead scoring -----------------------------------------------------------------------


def scoring_rules(settings: Any) -> list[tuple[str, Any, crmkit.Location]]:
    """``(expression, points, place)`` per rule as written in ``lead_scoring.rules``."""
    if settings is None:
        return []
    section = settings.section("lead_scoring")
    rules = section.get("rules") if isinstance(section, Mapping) else None
    if not isinstance(rules, Mapping):
        return []
    marks = getattr(rules, "marks", {})
    found = []
    for text, points in rules.items():
        line, col = marks.get(text, (0, 0))
        found.append((str(text), points, crmkit.Location("crmkit.yaml", line, col)))
    return found


def _points(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def lead_score(c: CustomerView) -> int | None:
    """The points of every rule that holds for a lead (no purchase); ``None`` for a
    customer who bought."""
    if c.derived.first_purchase is not None:
        return None
    rules = c.options.rules
    score = 0
    for n, (_text, points) in enumerate(rules.items(), start=1):
        if c.labels.get(f"{RULE_PREFIX}{n}") is True:
            score += _points(points)
    return score


def lead_stage(c: CustomerView) -> str | None:
    """cold, warm or qualified for a lead (no purchase); ``None`` for a customer."""
    score = c.labels["lead_score"]
    if score is None:
        return None
    return model.lead_stage(score, c.options.warm, c.options.qualified)


def reasons(labels: Mapping[str, Any], rules: list[tuple[str, Any, Any]]
            ) -> list[dict[str, Any]]:
    """The rules that gave a customer points (from their labels)."""
    return [{"rule": text, "points": _points(points)}
            for n, (text, points, _) in enumerate(rules, start=1)
            if labels.get(f"{RULE_PREFIX}{n}") is True and _points(points)]


# --- sources: checks --------------------------------------------------------------------


def _unknown(value: str | None, known: tuple[str, ...], what: str, where: crmkit.Location
             ) -> Iterator[Diagnostic]:
    if value is not None and known and value not in known:
        listed = "sources.campaigns" if what == "campaign" else "sources.known"
        yield Diagnostic.error(
            f"{what} {value!r} is not one of {listed!r} in crmkit.yaml"
            f"{crmkit.did_you_mean(value, known, 'en')}", where, source=NAME)


def check_sources(c: CustomerView) -> Iterator[Diagnostic]:
    record = c.customer
    yield from _unknown(record.source, c.options.known, "source", record.locate("source"))
    yield from _unknown(record.campaign, c.options.campaigns, "campaign",
                        record.locate("campaign"))


# --- the stale_deal reminder -----------------------------------------------------------


def stale_deal(c: CustomerView) -> Iterator[crmkit.Due]:
    """An open deal whose customer has had no contact for ``days`` days."""
    open_deals = [d for d in c.deals if d.is_open]
    if not open_deals:
        return
    last = model.last_activity(c.history)
    if last is None:
        return
    due = last + dt.timedelta(days=c.options.days)
    t = crmkit.translations(c.settings.locale)
    for deal in open_deals:
        yield crmkit.Due(
            due, t.gettext("Deal '%(deal)s' has gone quiet: get in touch with %(name)s")
            % {"deal": deal.title, "name": c.customer.name},
            t.gettext("no contact since %(day)s (%(stage)s)")
            % {"day": t.date(last, "medium"), "stage": t.word(deal.stage)},
            occasion=deal.id,
            details={"deal": deal.id, "title": deal.title, "stage": deal.stage,
                     "last_contact": last})


# --- validation -------------------------------------------------------------------------


@crmkit.hookimpl
def crmkit_validate(workspace: crmkit.Workspace) -> Iterator[Diagnostic]:
    settings = workspace.settings
    stages = stages_of(settings)
    allowed = (*stages, *CLOSED)
    known = settings.options("sources")
    for deal in workspace.deals.values():
        if deal.stage not in allowed:
            yield Diagnostic.error(
                f"'stage' must be one of {', '.join(allowed)}, not {deal.stage!r}"
                f"{crmkit.did_you_mean(deal.stage, allowed, 'en')} (the stages are "
                "'pipeline.stages' in crmkit.yaml)", deal.locate("stage"), source=NAME)
        yield from _unknown(deal.source, known.known, "source", deal.locate("source"))
        yield from _unknown(deal.campaign, known.campaigns, "campaign",
                            deal.locate("campaign"))
    offer = settings.options(NAME).offer_stage
    if offer is not None and offer not in stages and offer != "won":
        yield Diagnostic.error(
            f"'pipeline.offer_stage' must be one of the stages, not {offer!r}"
            f"{crmkit.did_you_mean(offer, stages, 'en')}", _place(settings, "offer_stage"),
            source=NAME)
    for text, points, where in scoring_rules(settings):
        if not _points(points) and points != 0:
            yield Diagnostic.error(f"lead_scoring rule {text!r}: points must be a whole "
                                   f"number, not {points!r}", where, source=NAME)
    scoring = settings.options("lead_scoring")
    if scoring and scoring.qualified < scoring.warm:
        yield Diagnostic.error("'lead_scoring.qualified' must not be smaller than 'warm'",
                               _place(settings, "qualified", "lead_scoring"), source=NAME)


def _place(settings: Any, key: str, section: str = NAME) -> crmkit.Location:
    raw = settings.section(section)
    marks = getattr(raw, "marks", {})
    if key in marks:
        line, col = marks[key]
        return crmkit.Location("crmkit.yaml", line, col)
    return settings.locate(section)


# --- reports ----------------------------------------------------------------------------


def figures(app: crmkit.App, since: dt.date | None = None,
            found: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The pipeline's figures as of ``app.today`` (won and lost since ``since``);
    ``found``: the deals' timelines, if already read (:func:`deal_timelines`)."""
    ws = app.workspace
    settings = ws.settings
    options = settings.options(NAME)
    stages = stages_of(settings)
    today = app.today
    if since is None:
        since = today - dt.timedelta(days=options.period_days - 1)
    if found is None:
        found = deal_timelines(app)
    referral = settings.options("sources").referral
    rows = []
    activity: dict[str, dt.date | None] = {}
    for deal_id, deal in sorted(ws.deals.items()):
        customer = ws.customers.get(deal.customer)
        if deal.customer not in activity:
            activity[deal.customer] = model.last_activity(
                i for i in ws.history(deal.customer) if i.date <= today)
        source = model.source_of(customer, referral) if customer else None
        rows.append(model.deal_row(deal, found[deal_id], stages,
                                   None if source == model.NO_SOURCE else source,
                                   activity[deal.customer], today))
    stale_days = settings.options("reminders.stale_deal").days or 30
    return model.pipeline(rows, stages, since, today, stale_days)


def deal_timelines(app: crmkit.App) -> dict[str, Any]:
    """When each deal entered each stage, as of ``app.today`` (docs/pipeline.md)."""
    from .history import timelines

    ws = app.workspace
    return timelines(ws.root, ws.deals, ws.history, app.today,
                     use_git=ws.settings.options(NAME).history == "git")


def funnel_step(c: CustomerView) -> str | None:
    """The rule of the helper label ``_funnel_step`` (:func:`model.funnel_step`): kept per
    customer by the core, so the dashboard's funnel does not look at everybody again
    after each change."""
    since = c.today - dt.timedelta(days=c.options.period_days - 1)
    return model.funnel_step(c, c.labels["lead_stage"], offer_stages_of(c.options), since)


def funnel(app: crmkit.App) -> list[tuple[str, int]]:
    return model.funnel(app.labels().column("_funnel_step").values())


def _board(app: crmkit.App) -> dict[str, Any]:
    found = figures(app)
    deals = {r["id"]: r for r in found["deals"]}
    customers = app.workspace.customers
    return {"figures": found, "deals": deals,
            "names": {r["customer"]: customers[r["customer"]].name for r in found["deals"]
                      if r["customer"] in customers}}


def _funnel(app: crmkit.App) -> dict[str, Any]:
    period = app.workspace.settings.options(NAME).period_days
    return {"funnel_steps": funnel(app), "period_days": period}


PIPELINE_SECTIONS = (
    ("pipeline_summary", N_("Pipeline")),
    ("pipeline_board", N_("Board by stage")),
    ("pipeline_forecast", N_("Forecast, won and lost")),
)


# --- registration -----------------------------------------------------------------------


@crmkit.hookimpl
def crmkit_register(register: Any, settings: Any) -> None:
    register(ConfigSection("sources", "Where leads come from: the sources and campaigns "
                           "customers and deals may name.", SOURCES_EXAMPLE))
    register(ConfigSection("lead_scoring", "Points per condition for leads, and the "
                           "scores that make them warm and qualified.", SCORING_EXAMPLE))
    register(ConfigSection(NAME, "The deal stages and where their history comes from.",
                           PIPELINE_EXAMPLE, options=PIPELINE_OPTIONS))
    register(crmkit.Check("sources", check_sources, options=SOURCE_OPTIONS,
                          settings="sources"))
    rules = scoring_rules(settings)
    for n, (text, _points_given, where) in enumerate(rules, start=1):
        register(Label(f"{RULE_PREFIX}{n}", text, listed=False, where=where,
                       description=f"lead_scoring rule {text!r}"))
    register(Label("lead_score", lead_score,
                   reads=tuple(f"{RULE_PREFIX}{n}?" for n in range(1, len(rules) + 1)),
                   options=SCORING_OPTIONS, settings="lead_scoring",
                   description="points of the lead_scoring rules that hold (leads only)"))
    register(Label("lead_stage", lead_stage, reads=("lead_score",), options=STAGE_OPTIONS,
                   settings="lead_scoring",
                   description="cold, warm or qualified by lead_score (leads only)"))
    register(Label("_funnel_step", funnel_step, reads=("lead_stage",),
                   options=PIPELINE_OPTIONS, settings=NAME))
    register(crmkit.ReminderKind("stale_deal", stale_deal,
                                 "an open deal without contact for 'days' days",
                                 priority=2, title=N_("Deals gone quiet"),
                                 options={"days": Option(30, minimum=1)}))
    for order, (name, title) in enumerate(PIPELINE_SECTIONS):
        register(ReportSection("pipeline", name, title, f"reports/sections/{name}", _board,
                               order=10 * (order + 1)))
    register(ReportSection("dashboard", "funnel", N_("Funnel: lead to won"),
                           "reports/sections/funnel", _funnel, order=85))
    register(Metric("_stage_probabilities", "The open stages' probabilities (pipeline.stages)",
                    over_all=dashboard.stage_probabilities, settings=NAME))
    register(Metric("leads_by_source", N_("New leads and customers by source"),
                    dashboard.source_part, across=dashboard.by_source,
                    options=SOURCE_OPTIONS, settings="sources",
                    description=N_("leads: first in touch in the last 12 months; won: those "
                                   "of them who bought; new customers: first purchase in "
                                   "the last 12 months")))
    register(ReportSection("dashboard", "pipeline_dashboard", N_("Pipeline and forecast"),
                           "reports/sections/pipeline_dashboard", dashboard.context,
                           order=82, pure=True))


@crmkit.hookimpl
def crmkit_template_dirs() -> list[Path]:
    return [Path(__file__).parent / "templates"]


@crmkit.hookimpl
def crmkit_register_commands(cli: click.Group) -> None:
    from .cli import leads_command, pipeline_command, sources_command

    for command in (sources_command, leads_command, pipeline_command):
        cli.add_command(command)

