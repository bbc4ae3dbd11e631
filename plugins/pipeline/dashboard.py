"""The pipeline's part of the dashboard: the stages' probabilities for every plugin
(``_stage_probabilities``), new leads and customers by source (``leads_by_source``),
and the pipeline by stage with the weighted forecast and won and lost, each against
the previous period (docs/reports.md)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

import crmkit

from . import model

NAME = "pipeline"


def stage_probabilities(population: Any) -> dict[str, Decimal]:
    """The open stages of ``pipeline.stages`` with their probabilities, in order."""
    return {s["name"]: Decimal(str(s["probability"])) for s in population.options.stages}


# --- new leads and customers by source --------------------------------------------------


def source_part(c: crmkit.CustomerView) -> tuple[str, dt.date | None, dt.date | None]:
    """A customer's source (as ``crmkit sources`` counts it), first contact and first
    purchase."""
    derived = c.derived
    return (model.source_of(c.customer, c.options.referral), derived.first_contact,
            derived.first_purchase)


def by_source(parts: Mapping[str, tuple[str, dt.date | None, dt.date | None]], scope: Any
              ) -> list[dict[str, Any]]:
    """Per source, for the last 365 days: the leads (first in touch in them, as
    ``crmkit sources --since`` counts them), how many of them bought, the conversion,
    and the new customers (first purchase in them, whenever first in touch); most
    leads first."""
    since = scope.today - dt.timedelta(days=364)
    rows: dict[str, dict[str, Any]] = {}

    def row(name: str) -> dict[str, Any]:
        return rows.setdefault(name, {"source": name, "leads": 0, "won": 0,
                                      "new_customers": 0})

    for source, first_contact, first_purchase in parts.values():
        if first_contact is not None and first_contact >= since:
            found = row(source)
            found["leads"] += 1
            found["won"] += first_purchase is not None
        if first_purchase is not None and first_purchase >= since:
            row(source)["new_customers"] += 1
    for found in rows.values():
        found["conversion"] = round(found["won"] / found["leads"], 4) if found["leads"] \
            else None
        if found["source"] == model.NO_SOURCE:
            found["source"] = None
    return sorted(rows.values(), key=lambda r: (-r["leads"], -r["new_customers"],
                                                r["source"] is None, r["source"] or ""))


# --- the dashboard's pipeline section ---------------------------------------------------


def context(app: crmkit.App) -> dict[str, Any]:
    """Open deals by stage now and at the end of the previous period (from the stage
    history), the weighted forecast by month of expected close, won and lost in the
    period and in the previous one (each ``pipeline.period_days`` long)."""
    from . import deal_timelines, figures, stages_of

    settings = app.workspace.settings
    period = settings.options(NAME).period_days
    stages = stages_of(settings)
    found = deal_timelines(app)
    now = figures(app, found=found)
    before_end = app.today - dt.timedelta(days=period)
    before_since = before_end - dt.timedelta(days=period - 1)
    earlier = model.pipeline(now["deals"], stages, before_since, before_end,
                             now["stale_days"])
    then = model.open_on(app.workspace.deals, found, stages, before_end)
    rows = []
    listed = set()
    for s in now["stages"]:
        old = then["stages"].get(s["stage"], {})
        listed.add(s["stage"])
        rows.append({"stage": s["stage"], "probability": s["probability"],
                     "count": s["count"], "value": s["value"], "weighted": s["weighted"],
                     "count_before": old.get("count", 0),
                     "weighted_before": old.get("weighted", Decimal("0.00"))})
    for stage, old in sorted(then["stages"].items()):
        if stage not in listed:  # a stage no deal is in today
            rows.append({"stage": stage, "probability": stages.get(stage), "count": 0,
                         "value": Decimal("0.00"), "weighted": Decimal("0.00"),
                         "count_before": old["count"], "weighted_before": old["weighted"]})

    def closed(found: dict[str, Any], what: str) -> dict[str, Any]:
        rows = found[what]
        return {"count": len(rows), "value": sum((r["value"] or Decimal(0) for r in rows),
                                                 Decimal(0)).quantize(model.CENT)}

    return {
        "since": now["since"], "before_since": before_since, "before_end": before_end,
        "stages": rows, "open": now["open"],
        "open_before": {k: then[k] for k in ("count", "value", "weighted")},
        "forecast": now["forecast"],
        "won": closed(now, "won"), "lost": closed(now, "lost"),
        "won_before": closed(earlier, "won"), "lost_before": closed(earlier, "lost"),
        "win_rate": now["win_rate"], "win_rate_before": earlier["win_rate"],
    }
