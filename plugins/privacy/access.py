"""``privacy export``: everything held about one person, as one JSON document.

Their profile, derived values, segments and predictions, every interaction and deal
(with its ``fields``), their open reminders and the emails crmkit would draft for them,
their records that fail validation (as written, with the problems), the lines of other
files that mention them, and every file that holds something about them: records,
other files, generated files and crmkit's own copies (:mod:`.finding`).
"""

from __future__ import annotations

from typing import Any

import crmkit

from .finding import (
    CACHE_FOLDER,
    GENERATED,
    OWN,
    RECORD,
    Found,
    Person,
    lines_of,
    their_entries,
)


def document(app: crmkit.App, person: Person, found: list[Found]) -> dict[str, Any]:
    ws = app.workspace
    cid = person.id
    customer = ws.customers.get(cid)
    # their interactions load even when their customer file does not
    interactions = (list(ws.history(cid)) if customer is not None
                    else [i for i in ws.interactions if i.customer == cid])
    deals = [d for d in ws.deals.values() if d.customer == cid]
    reminders = ([r for r in app.reminders() if r.customer == cid]
                 if customer is not None else [])
    invalid, mentions = _unloaded(app, found, person, interactions, deals)
    generated = sorted(f.rel for f in found if f.area in (GENERATED, OWN))
    if (ws.root / CACHE_FOLDER).is_dir():
        generated.append(CACHE_FOLDER + "/")
    return {
        "exported": app.today.isoformat(), "business": ws.settings.business,
        "customer": customer.to_json() if customer is not None else None,
        "derived": app.customer(cid).derived.to_json() if customer is not None else None,
        "segments": app.labels()[cid] if customer is not None else None,
        "predictions": _predictions(app, cid) if customer is not None else None,
        "interactions": [i.to_json() for i in interactions],
        "deals": [{"id": d.id, "title": d.title, "stage": d.stage, "value": d.value,
                   "probability": d.probability, "expected_close": d.expected_close,
                   "source": d.source, "campaign": d.campaign, "reason": d.reason,
                   "notes": d.notes, "fields": dict(d.fields), "file": str(d.location)}
                  for d in deals],
        "reminders": [r.to_json(app.today) for r in reminders],
        "drafts": _drafts(app, customer, reminders),
        "invalid_records": invalid,
        "mentions": mentions,
        "referred": [c.id for c in ws.customers.values() if c.referred_by == cid],
        "files": sorted(f.rel for f in found if f.area not in (GENERATED, OWN)),
        "generated_files": generated,
    }


def _predictions(app: crmkit.App, customer_id: str) -> dict[str, float] | None:
    """The purchase model's prediction for them (the ``predict`` plugin's label), if
    that plugin is on and its model fits."""
    try:
        value = app.labels().column("_prediction").get(customer_id)
    except KeyError:
        return None
    if not isinstance(value, dict):
        return None
    return {k: round(v, 4) if isinstance(v, float) else v for k, v in value.items()}


def _drafts(app: crmkit.App, customer: crmkit.Customer | None,
            reminders: list[crmkit.Reminder]) -> list[dict[str, Any]]:
    """The emails crmkit drafts for their open reminders (only with email consent and an
    address, as ``crmkit drafts`` does; not for held-back ones)."""
    if customer is None or not customer.consent.email or not customer.emails:
        return []
    drafts = []
    for reminder in reminders:
        if reminder.suppressed or reminder.snoozed_until:
            continue
        draft = app.draft_email(reminder)
        if draft is not None:
            drafts.append({"reminder": reminder.id, "to": draft.to, "subject": draft.subject,
                           "body": draft.body, "locale": draft.locale})
    return drafts


def _unloaded(app: crmkit.App, found: list[Found], person: Person, interactions: list,
              deals: list) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Their records that did not load (as written, with what is wrong), and the lines of
    other files that mention them."""
    loaded_lines = {(i.location.path, i.location.line) for i in interactions}
    loaded_files = {i.location.path for i in interactions} | {d.location.path for d in deals}
    if person.id in app.workspace.customers:
        loaded_files.add(app.workspace.customers[person.id].location.path)
    problems: dict[str, list[Any]] = {}
    for d in app.workspace.diagnostics:
        if d.location is not None:
            problems.setdefault(d.location.path, []).append(d)
    invalid: list[dict[str, Any]] = []
    mentions: list[dict[str, Any]] = []
    for item in found:
        if item.area in (GENERATED, OWN) or item.unreadable is not None:
            continue
        lines = [line.rstrip("\r\n\x85\u2028\u2029") for line in lines_of(item.text)]
        theirs: set[int] = set()
        if item.area == RECORD:
            entries = their_entries(item, person.ids)
            if entries.whole and not entries.spans and item.rel not in loaded_files:
                invalid.append(_invalid(item.rel, 1, item.text, problems.get(item.rel, [])))
            if entries.whole and not entries.spans:
                theirs = set(range(1, len(lines) + 1))
            if entries.kind == "entries":
                for start, end, col in entries.spans:
                    theirs.update(range(start, end))
                    if (item.rel, start) not in loaded_lines:
                        found_problems = [p for p in problems.get(item.rel, [])
                                          if start <= p.location.line < end]
                        invalid.append(_invalid(item.rel, start,
                                                "\n".join(lines[start - 1:end - 1]) + "\n",
                                                found_problems, col))
        for mention in item.mentions:
            if mention.line not in theirs and mention.line <= len(lines):
                mentions.append({"source": f"{item.rel}:{mention.line}",
                                 "text": lines[mention.line - 1].strip(), "why": mention.what})
    return invalid, mentions


def _invalid(rel: str, line: int, text: str, problems: list[Any], col: int = 1
             ) -> dict[str, Any]:
    return {"source": f"{rel}:{line}:{col}", "text": text,
            "problems": [str(p) for p in problems]}
