"""Records as JSON-ready dicts: one shape for `show`, `customers`, exports and access requests."""

from __future__ import annotations

from typing import Any

from .model import Customer, Interaction
from .output import day


def interaction_json(i: Interaction) -> dict[str, Any]:
    return {
        "date": i.date.isoformat(), "at": i.at.isoformat() if i.at else None, "type": i.type,
        "channel": i.channel, "direction": i.direction, "summary": i.summary,
        "amount": i.amount, "currency": i.currency if i.amount is not None else None,
        "items": [item.name for item in i.items], "score": i.score, "payment": i.payment,
        "discount": i.discount, "service": i.service,
        "follow_up": ({"date": i.follow_up.date.isoformat(), "what": i.follow_up.what}
                      if i.follow_up else None),
        "fields": dict(i.fields), "source": str(i.location),
    }


def customer_json(c: Customer) -> dict[str, Any]:
    return {
        "id": c.id, "name": c.name, "salutation": c.salutation, "company": c.company,
        "emails": list(c.emails),
        "phones": list(c.phones),
        "address": ({"street": c.address.street, "postal_code": c.address.postal_code,
                     "city": c.address.city, "country": c.address.country}
                    if c.address else None),
        "birthday": day(c.birthday) or None, "tags": list(c.tags), "source": c.source,
        "referred_by": c.referred_by,
        "consent": {"email": c.consent.email, "since": day(c.consent.since) or None,
                    "how": c.consent.how},
        "preferred_channel": c.preferred_channel, "locale": c.locale, "stage": c.stage,
        "notes": c.notes,
        "services": [{"name": s.name, "interval": str(s.interval),
                      "start": day(s.start) or None} for s in c.services],
        "fields": dict(c.fields),
    }
