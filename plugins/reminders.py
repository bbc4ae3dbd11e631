"""Reminders: the communication calendar.

Each kind is a pure function ``(snapshot, segments, options) -> reminders``.
A reminder is resolved by the history, never by editing a field: the rule of
each kind says which later interaction makes it disappear (docs/reminders.md).
A frequency cap then holds back lower-priority reminders of every plugin for
customers who were contacted often enough lately.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import click

import crmkit
from crmkit import (
    ConfigSection,
    Customer,
    Diagnostic,
    Interaction,
    Options,
    Reminder,
    Segmentation,
    Settings,
    Snapshot,
    Workspace,
)

NAME = "reminders"
#: Interaction types that count as having talked to the customer about something.
CONVERSATION_TYPES = frozenset({"call", "email", "message", "letter", "meeting", "visit"})

KindRule = Callable[[Snapshot, Segmentation, Options], Iterable[Reminder]]


@dataclass(frozen=True, slots=True)
class Kind:
    name: str
    rule: KindRule
    priority: int
    keys: tuple[str, ...]
    description: str


def channel_for(customer: Customer) -> str:
    """The customer's preferred channel, else email where allowed, else phone."""
    if customer.preferred_channel:
        return customer.preferred_channel
    if customer.consent.email and customer.emails:
        return "email"
    return "phone" if customer.phones else "email" if customer.emails else "visit"


def _reminder(kind: str, customer: Customer, due: dt.date, title: str, reason: str,
              source: Interaction | None = None, priority: int = 3, **details: object
              ) -> Reminder:
    return Reminder(due=due, customer=customer.id, kind=kind, title=title, reason=reason,
                    channel=channel_for(customer), priority=priority,
                    source=source.location if source else customer.location, details=details)


def _latest(history: Iterable[Interaction], test: Callable[[Interaction], bool]
            ) -> Interaction | None:
    found = None
    for interaction in history:
        if test(interaction):
            found = interaction
    return found


def _any_after(history: Iterable[Interaction], day: dt.date,
               test: Callable[[Interaction], bool], inclusive: bool = False) -> bool:
    return any((i.date >= day if inclusive else i.date > day) and test(i) for i in history)


def _is_conversation(i: Interaction) -> bool:
    return i.type in CONVERSATION_TYPES


# --- the kinds --------------------------------------------------------------------------


def birthdays(snapshot: Snapshot, segments: Segmentation, opts: Options) -> Iterator[Reminder]:
    """The next birthday (Feb 29 is celebrated on Feb 28 in other years); it stays
    open ``grace_days`` after the day; resolved by a contact from a week before on."""
    grace = opts.integer("grace_days", 3, 0)
    today = snapshot.today
    for customer in snapshot.customers:
        born = customer.birthday
        if born is None:
            continue
        for year in (today.year - 1, today.year, today.year + 1):
            day = _anniversary(born, year)
            if day >= today - dt.timedelta(days=grace):
                break
        history = snapshot.history(customer.id)
        if _any_after(history, day - dt.timedelta(days=7), lambda i: i.is_contact, True):
            continue
        age = day.year - born.year
        yield _reminder("birthday", customer, day, f"Birthday of {customer.name} ({age})",
                        f"born {born.isoformat()}", priority=3, age=age)


def _anniversary(born: dt.date, year: int) -> dt.date:
    try:
        return born.replace(year=year)
    except ValueError:  # Feb 29 in a non-leap year
        return dt.date(year, 2, 28)


def services_due(snapshot: Snapshot, segments: Segmentation, opts: Options
                 ) -> Iterator[Reminder]:
    """Each contract is due one interval after its last ``service`` interaction (or, before
    the first, after its start); resolved by that service, or by a service already planned
    after today."""
    for customer in snapshot.customers:
        if not customer.services:
            continue
        history = snapshot.workspace.history(customer.id)  # planned visits count too
        single = len(customer.services) == 1
        for service in customer.services:
            def matches(i: Interaction, name: str = service.name, only: bool = single) -> bool:
                return i.type == "service" and (i.service == name or (only and not i.service))

            done = [i for i in history if matches(i) and i.date <= snapshot.today]
            if any(matches(i) for i in history if i.date > snapshot.today):
                continue
            last = done[-1] if done else None
            if last is not None:
                due = service.interval.add_to(last.date)
                reason = f"last {service.name} on {last.date.isoformat()}"
            elif service.start is not None:
                due = service.interval.add_to(service.start)
                reason = f"contract started {service.start.isoformat()}, no service yet"
            else:
                continue
            yield _reminder("service_due", customer, due, f"{service.name} due",
                            f"{reason}; every {service.interval}", last, priority=2,
                            service=service.name, interval=str(service.interval))


def follow_ups(snapshot: Snapshot, segments: Segmentation, opts: Options) -> Iterator[Reminder]:
    """An interaction's ``follow_up``; resolved by any contact after that interaction."""
    for customer in snapshot.customers:
        for item in snapshot.derived(customer.id).open_follow_ups:
            what = item.follow_up.what or item.interaction.summary or item.interaction.type
            yield _reminder("follow_up", customer, item.follow_up.date, f"Follow up: {what}",
                            f"{item.interaction.type} on {item.interaction.date.isoformat()}",
                            item.interaction, priority=1, what=what)


def quote_follow_ups(snapshot: Snapshot, segments: Segmentation, opts: Options
                     ) -> Iterator[Reminder]:
    """``after_days`` after the latest quote (younger than ``max_age_days``, without a
    follow_up of its own); resolved by a purchase or newer quote since, or any
    contact on or after the due day."""
    after = opts.integer("after_days", 14, 0)
    max_age = opts.integer("max_age_days", 180, 1)
    for customer in snapshot.customers:
        history = snapshot.history(customer.id)
        quote = _latest(history, lambda i: i.type == "quote")
        if quote is None or quote.follow_up is not None:
            continue
        if (snapshot.today - quote.date).days > max_age:
            continue
        due = quote.date + dt.timedelta(days=after)
        if _any_after(history, quote.date, lambda i: i.type == "purchase", inclusive=True):
            continue
        if _any_after(history, due, lambda i: i.is_contact, inclusive=True):
            continue
        amount = f" ({quote.amount:,.2f} {quote.currency})" if quote.amount is not None else ""
        what = quote.summary or ", ".join(i.name for i in quote.items) or "quote"
        yield _reminder("quote_follow_up", customer, due, f"Ask about the quote: {what}{amount}",
                        f"quote on {quote.date.isoformat()}, no purchase since", quote,
                        priority=2)


def thank_yous(snapshot: Snapshot, segments: Segmentation, opts: Options) -> Iterator[Reminder]:
    """``after_days`` after the latest purchase (of at least ``min_amount``, younger than
    ``max_age_days``); resolved by a call, email, message, letter, meeting or visit
    after the purchase."""
    after = opts.integer("after_days", 1, 0)
    max_age = opts.integer("max_age_days", 30, 1)
    minimum = Decimal(str(opts.number("min_amount", 0, 0)))
    for customer in snapshot.customers:
        history = snapshot.history(customer.id)
        purchase = _latest(history, lambda i: i.type == "purchase")
        if purchase is None or (snapshot.today - purchase.date).days > max_age:
            continue
        if purchase.amount is not None and purchase.amount < minimum:
            continue
        if _any_after(history, purchase.date, _is_conversation):
            continue
        what = purchase.summary or ", ".join(i.name for i in purchase.items) or "the purchase"
        yield _reminder("thank_you", customer, purchase.date + dt.timedelta(days=after),
                        f"Thank {customer.name} for: {what}",
                        f"purchase on {purchase.date.isoformat()}", purchase, priority=3)


def feedback_requests(snapshot: Snapshot, segments: Segmentation, opts: Options
                      ) -> Iterator[Reminder]:
    """``after_days`` after the latest interaction of ``types`` (default service and
    purchase, at least ``min_amount`` for purchases); resolved by feedback or a
    complaint since, or any email/message/letter on or after the due day."""
    after = opts.integer("after_days", 14, 0)
    max_age = opts.integer("max_age_days", 60, 1)
    types = set(opts.text_list("types", ("service", "purchase")))
    minimum = Decimal(str(opts.number("min_amount", 200, 0)))

    def trigger(i: Interaction) -> bool:
        if i.type not in types:
            return False
        return i.type != "purchase" or (i.amount is not None and i.amount >= minimum)

    for customer in snapshot.customers:
        history = snapshot.history(customer.id)
        event = _latest(history, trigger)
        if event is None or (snapshot.today - event.date).days > max_age:
            continue
        due = event.date + dt.timedelta(days=after)
        if _any_after(history, event.date, lambda i: i.type in ("feedback", "complaint")):
            continue
        if _any_after(history, due, lambda i: i.type in ("email", "message", "letter"), True):
            continue
        what = event.summary or event.service or event.type
        yield _reminder("feedback_request", customer, due, f"Ask for feedback: {what}",
                        f"{event.type} on {event.date.isoformat()}", event, priority=4)


def _cadence_rules(opts: Options) -> list[tuple[str, str, int]]:
    """``rules`` as (kind, value, days); kind is 'segment' or 'tag'."""
    raw = opts.get("rules")
    if raw is None:
        return [("segment", "abc=A", 60), ("segment", "abc=B", 120)]
    rules = []
    if not isinstance(raw, list):
        opts.diagnostics.append(Diagnostic.error(
            "'reminders.stay_in_touch.rules' must be a list of {segment|tag, days}",
            opts.locate("rules"), source=NAME))
        return []
    for item in raw:
        keys = set(item) if isinstance(item, dict) else set()
        days = item.get("days") if isinstance(item, dict) else None
        kinds = keys & {"segment", "tag"}
        if len(kinds) != 1 or not isinstance(days, int) or days < 1 or keys - {
                "segment", "tag", "days"}:
            opts.diagnostics.append(Diagnostic.error(
                f"stay_in_touch rule {dict(item) if isinstance(item, dict) else item!r}: "
                "write {segment: 'abc=A', days: 60} or {tag: vip, days: 45}",
                opts.locate("rules"), source=NAME))
            continue
        kind = kinds.pop()
        rules.append((kind, str(item[kind]), days))
    return rules


def stay_in_touch(snapshot: Snapshot, segments: Segmentation, opts: Options
                  ) -> Iterator[Reminder]:
    """Per segment or tag, a contact every N days (the shortest matching cadence);
    due N days after the last contact, resolved by any contact. Leads and lost
    customers are left to the other kinds."""
    rules = _cadence_rules(opts)
    for customer in snapshot.customers:
        labels = segments[customer.id]
        if labels.get("lifecycle") in ("lead", "lost"):
            continue
        matching = [(days, f"{kind} {value}") for kind, value, days in rules
                    if (value in customer.tags if kind == "tag"
                        else segments.matches(customer.id, value))]
        last = snapshot.derived(customer.id).last_contact
        if not matching or last is None:
            continue
        days, why = min(matching)
        yield _reminder("stay_in_touch", customer, last + dt.timedelta(days=days),
                        f"Stay in touch with {customer.name}",
                        f"{why}: every {days} days; last contact {last.isoformat()}",
                        priority=4, days=days, last_contact=last)


def _stage_reminder(kind: str, stage: str, title: str, priority: int, extra: str | None = None
                    ) -> KindRule:
    def rule(snapshot: Snapshot, segments: Segmentation, opts: Options) -> Iterator[Reminder]:
        for customer in snapshot.customers:
            labels = segments[customer.id]
            since = labels.get("lifecycle_since")
            if labels.get("lifecycle") != stage or not since:
                continue
            if extra and labels.get(extra) is not True:
                continue
            day = dt.date.fromisoformat(since)
            history = snapshot.history(customer.id)
            if _any_after(history, day, _is_conversation, inclusive=True):
                continue
            last = snapshot.derived(customer.id).last_purchase
            yield _reminder(kind, customer, day, title.format(name=customer.name),
                            f"{stage.replace('_', ' ')} since {since}; last purchase "
                            f"{last.isoformat() if last else 'never'}", priority=priority)

    rule.__doc__ = (f"When the customer became {stage}"
                    + (f" (and {extra})" if extra else "")
                    + "; resolved by a call, email, message, letter, meeting or visit since.")
    return rule


def loyalty_rewards(snapshot: Snapshot, segments: Segmentation, opts: Options
                    ) -> Iterator[Reminder]:
    """Every ``every``-th purchase (younger than ``max_age_days``) earns a reward;
    resolved by a call, email, message, letter, meeting or visit after it."""
    every = opts.integer("every", 10, 2)
    max_age = opts.integer("max_age_days", 60, 1)
    for customer in snapshot.customers:
        history = snapshot.history(customer.id)
        purchases = [i for i in history if i.type == "purchase"]
        if not purchases or len(purchases) % every:
            continue
        milestone = purchases[-1]
        if (snapshot.today - milestone.date).days > max_age:
            continue
        if _any_after(history, milestone.date, _is_conversation):
            continue
        yield _reminder("loyalty_reward", customer, milestone.date + dt.timedelta(days=1),
                        f"Reward {customer.name}: purchase no. {len(purchases)}",
                        f"{len(purchases)} purchases, the latest on "
                        f"{milestone.date.isoformat()}", milestone, priority=3,
                        count=len(purchases))


KINDS = {k.name: k for k in (
    Kind("birthday", birthdays, 3, ("grace_days",), "birthday greeting"),
    Kind("service_due", services_due, 2, (), "service contract interval reached"),
    Kind("follow_up", follow_ups, 1, (), "an interaction's follow_up date"),
    Kind("quote_follow_up", quote_follow_ups, 2, ("after_days", "max_age_days"),
         "a quote without purchase"),
    Kind("thank_you", thank_yous, 3, ("after_days", "max_age_days", "min_amount"),
         "thanks after a purchase"),
    Kind("feedback_request", feedback_requests, 4,
         ("after_days", "max_age_days", "types", "min_amount"), "ask for feedback"),
    Kind("stay_in_touch", stay_in_touch, 4, ("rules",), "contact cadence per segment or tag"),
    Kind("at_risk", _stage_reminder("at_risk", "at_risk", "{name} is at risk: get in touch", 2),
         2, (), "customer became at risk"),
    Kind("win_back", _stage_reminder("win_back", "lost", "Win back {name}", 3,
                                     "win_back_worthy"), 3, (), "lost but worth winning back"),
    Kind("loyalty_reward", loyalty_rewards, 3, ("every", "max_age_days"),
         "every Nth purchase"),
)}

SETTINGS_EXAMPLE = """\
reminders:
  within_days: 30
  frequency_cap: {max_contacts: 2, days: 30, protect_priority: 2}
  birthday: {grace_days: 3}
  quote_follow_up: {after_days: 14}
  stay_in_touch:
    rules:
      - {segment: abc=A, days: 60}
      - {tag: vip, days: 45}
  loyalty_reward: {enabled: false}"""


def _options(settings: Settings) -> Options:
    return Options(settings, NAME, source=NAME)


def validate_settings(settings: Settings) -> list[Diagnostic]:
    root = _options(settings)
    root.check_keys(("within_days", "frequency_cap", *KINDS))
    root.integer("within_days", 30, 0)
    cap = root.sub("frequency_cap")
    cap.check_keys(("max_contacts", "days", "protect_priority", "enabled"))
    cap.integer("max_contacts", 2, 0)
    cap.integer("days", 30, 1)
    cap.integer("protect_priority", 2, 0)
    cap.boolean("enabled", True)
    for kind in KINDS.values():
        opts = root.sub(kind.name)
        opts.check_keys(("enabled", *kind.keys))
        opts.boolean("enabled", True)
        list(kind.rule(_EmptySnapshot(settings), Segmentation(), opts))  # reads every option
    return root.diagnostics


class _EmptySnapshot:
    """Lets a rule read (and so validate) its options without any customers."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.customers: list[Customer] = []
        self.today = dt.date(2000, 1, 1)


def all_reminders(snapshot: Snapshot, segments: Segmentation) -> list[Reminder]:
    """Every enabled kind's reminders.  Each kind looks at one customer at a time,
    so a customer's reminders are kept while the customer and their labels are the
    same (:meth:`~crmkit.Snapshot.per_customer_many`)."""
    root = _options(snapshot.settings)
    kinds = [(kind, opts) for kind in KINDS.values()
             if (opts := root.sub(kind.name)).boolean("enabled", True)]

    def compute(customer_ids: list[str]) -> dict[str, tuple[Reminder, ...]]:
        view = snapshot.only(customer_ids)
        found: dict[str, list[Reminder]] = {cid: [] for cid in customer_ids}
        for kind, opts in kinds:
            for reminder in kind.rule(view, segments, opts):
                found[reminder.customer].append(reminder)
        return {cid: tuple(items) for cid, items in found.items()}

    read = labels_read(root)

    def labels_of(customer_id: str) -> tuple[object, ...]:
        labels = segments[customer_id]
        return (*map(labels.get, read), *(v for v in labels.values() if type(v) is dict))

    ids = [c.id for c in snapshot.customers]
    # what each customer's labels say that the kinds read, worked out again only
    # for customers whose labels changed
    read_labels = snapshot.per_customer_many(
        f"{NAME}.labels_read", ids, lambda todo: {cid: labels_of(cid) for cid in todo},
        {cid: segments[cid] for cid in ids})
    kept = snapshot.per_customer_many(f"{NAME}.due", ids, compute, read_labels)
    return list(itertools.chain.from_iterable(kept.values()))  # in the order of ids


def labels_read(root: Options) -> tuple[str, ...]:
    """The segment labels the kinds look at: a customer's reminders are kept while
    these are equal (not, say, P(alive), which moves a little for everybody when
    anyone buys and the purchase model is fitted again)."""
    names = {"lifecycle", "lifecycle_since", "win_back_worthy"}
    names.update(value.partition("=")[0]
                 for kind, value, _ in _cadence_rules(_options(root.settings).sub("stay_in_touch"))
                 if kind == "segment")
    return tuple(sorted(names))


def frequency_cap(reminders: list[Reminder], snapshot: Snapshot) -> dict[Reminder, str]:
    """Hold back reminders of priority > ``protect_priority`` due within the cap window
    once a customer had ``max_contacts`` outbound interactions in the last ``days``
    (counting the reminders kept before them, most important first)."""
    cap = _options(snapshot.settings).sub("frequency_cap")
    if not cap.boolean("enabled", True):
        return {}
    limit = cap.integer("max_contacts", 2, 0)
    days = cap.integer("days", 30, 1)
    protect = cap.integer("protect_priority", 2, 0)
    today = snapshot.today
    window_start = today - dt.timedelta(days=days)
    horizon = today + dt.timedelta(days=days)
    by_customer: dict[str, list[Reminder]] = {}
    for reminder in reminders:
        if reminder.due <= horizon and not reminder.suppressed:
            by_customer.setdefault(reminder.customer, []).append(reminder)
    def hold(customer_id: str, items: tuple[Reminder, ...]) -> dict[Reminder, str]:
        recent = sum(1 for i in snapshot.history(customer_id)
                     if i.direction == "outbound" and i.date > window_start)
        budget = limit - recent
        kept = 0
        held: dict[Reminder, str] = {}
        for reminder in sorted(items, key=lambda r: (r.priority, r.due, r.kind)):
            if reminder.priority <= protect or budget > 0:
                budget -= 1
                kept += 1
            else:
                held[reminder] = (f"at most {limit} contacts in {days} days: {recent} "
                                  f"outbound contact(s) lately, {kept} more important "
                                  "reminder(s)")
        return held

    items_of = {cid: tuple(items) for cid, items in by_customer.items()
                if cid in snapshot.workspace.customers}
    held: dict[Reminder, str] = {}
    for customer_id in by_customer.keys() - items_of.keys():  # another plugin's stranger
        held.update(hold(customer_id, tuple(by_customer[customer_id])))
    kept = snapshot.per_customer_many(
        f"{NAME}.frequency_cap", list(items_of),
        lambda ids: {cid: hold(cid, items_of[cid]) for cid in ids},
        items_of)
    for verdicts in kept.values():
        held.update(verdicts)
    return held


# --- hooks ------------------------------------------------------------------------------


@crmkit.hookimpl
def crmkit_config_sections() -> list[ConfigSection]:
    return [ConfigSection(NAME, "Which reminders, when, and how often to contact a customer.",
                          SETTINGS_EXAMPLE)]


@crmkit.hookimpl
def crmkit_validate(workspace: Workspace) -> list[Diagnostic]:
    return validate_settings(workspace.settings)


@crmkit.hookimpl
def crmkit_reminders(snapshot: Snapshot, segments: Segmentation) -> list[Reminder]:
    return all_reminders(snapshot, segments)


@crmkit.hookimpl
def crmkit_suppress_reminders(reminders: list[Reminder], snapshot: Snapshot
                              ) -> dict[Reminder, str]:
    return frequency_cap(reminders, snapshot)


@crmkit.hookimpl
def crmkit_build(app: crmkit.App) -> list[Path]:
    """``reminders.ics`` (for a calendar subscription) and ``reminders.md``: the overdue
    reminders and those due in the next ``within_days``, in the output folder."""
    from .reminders_cli import write_outputs

    return write_outputs(app)


@crmkit.hookimpl
def crmkit_register_commands(cli: click.Group) -> None:
    from .reminders_cli import reminders_command

    cli.add_command(reminders_command)
