"""Reminders: the stock kinds of the communication calendar, and where it is shown.

Each kind is a :class:`crmkit.ReminderKind`: a plain function of one customer
that yields what is due.  A reminder is resolved by the history, never by
editing a field: the rule of each kind says which later interaction makes it
disappear (docs/reminders.md).  The core gives every kind, this plugin's and any
other's, the same treatment: options and ``enabled`` in ``crmkit.yaml``, the
channel, the frequency cap, ``--kind``, drafts and the calendar this plugin
writes (``crmkit reminders``, ``reminders.ics``, ``reminders.md``).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import click

import crmkit
from crmkit import ConfigSection, CustomerView, Due, Interaction, Option, ReminderKind

NAME = "reminders"
TEMPLATES = Path(__file__).parent / "templates"
#: How long an expired reminder stays listed (as expired) with ``reminders --all``.
LISTED_AFTER_EXPIRY = dt.timedelta(days=30)
#: A greeting counts from this many days before the birthday.
GREET_EARLY = dt.timedelta(days=7)
#: What a birthday greeting is.
GREETING_TYPES = frozenset({"call", "email", "message", "letter", "card", "visit"})


def N_(message: str) -> str:
    """Marks a text for translation (``pybabel extract``); translated where it is used."""
    return message



def _t(c: CustomerView) -> Any:
    """The workspace's language: reminders are read by the business."""
    return crmkit.translations(c.settings.locale)


def _word(t: Any, interaction_type: str) -> str:
    return str(t.word(interaction_type))


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


def _reached_out_after(history: tuple[Interaction, ...], event: Interaction) -> bool:
    """Whether we contacted the customer after ``event`` (the same day counts unless
    both have a time and the contact's is earlier: Interaction.is_after)."""
    for i in reversed(history):
        if i.date < event.date:
            return False
        if i is not event and i.reaches_out and i.is_after(event):
            return True
    return False


def _listed(c: CustomerView, expires: dt.date) -> bool:
    """Still worth listing: open, or expired less than a month ago."""
    return c.today <= expires + LISTED_AFTER_EXPIRY


# --- the kinds --------------------------------------------------------------------------


def birthday(c: CustomerView) -> Iterator[Due]:
    """The next birthday (Feb 29 is celebrated on Feb 28 in other years), open until
    ``grace_days`` after the day; resolved by a greeting (an outbound call, email,
    message, letter, card or visit) from a week before to the end of the grace."""
    born = c.customer.birthday
    if born is None:
        return
    today = c.today
    grace = dt.timedelta(days=c.options.grace_days)
    for year in (today.year - 1, today.year, today.year + 1):
        day = _anniversary(born, year)
        if not _listed(c, day + grace):
            continue
        start, end = day - GREET_EARLY, day + grace
        if not any(start <= i.date <= end and i.type in GREETING_TYPES and i.reaches_out
                   for i in c.history):
            age, t = day.year - born.year, _t(c)
            yield Due(day, t.gettext("Birthday of %(name)s (%(age)d)")
                      % {"name": c.customer.name, "age": age},
                      t.gettext("born %(day)s") % {"day": t.date(born, "medium")},
                      details={"age": age}, expires=end)
        if end >= today:  # this one is open: the next is a year away
            return


def _anniversary(born: dt.date, year: int) -> dt.date:
    try:
        return born.replace(year=year)
    except ValueError:  # Feb 29 in a non-leap year
        return dt.date(year, 2, 28)


def service_due(c: CustomerView) -> Iterator[Due]:
    """Each contract is due one interval after its last ``service`` interaction (or,
    before the first, after its start); resolved by that service, or by a service
    already planned after today."""
    services = c.customer.services
    single = len(services) == 1
    for service in services:
        def matches(i: Interaction, name: str = service.name, only: bool = single) -> bool:
            return i.type == "service" and (i.service == name or (only and not i.service))

        if any(matches(i) for i in c.planned):
            continue
        last = _latest(c.history, matches)
        t = _t(c)
        if last is not None:
            due = service.interval.add_to(last.date)
            reason = t.gettext("last %(service)s on %(day)s") % {
                "service": service.name, "day": t.date(last.date, "medium")}
        elif service.start is not None:
            due = service.interval.add_to(service.start)
            reason = t.gettext("contract started %(day)s, no service yet") % {
                "day": t.date(service.start, "medium")}
        else:
            continue
        yield Due(due, t.gettext("%(service)s due") % {"service": service.name},
                  t.gettext("%(reason)s; every %(interval)s") % {
                      "reason": reason,
                      "interval": t.duration(service.interval.count, service.interval.unit)},
                  last,
                  details={"service": service.name, "interval": str(service.interval)},
                  occasion=None if single else service.name)


def follow_up(c: CustomerView) -> Iterator[Due]:
    """An interaction's ``follow_up``; resolved by reaching out to the customer (an
    outbound contact) after that interaction."""
    for item in c.derived.open_follow_ups:
        t = _t(c)
        what = item.follow_up.what or item.interaction.summary or \
            _word(t, item.interaction.type)
        yield Due(item.follow_up.date, t.gettext("Follow up: %(what)s") % {"what": what},
                  t.gettext("%(type)s on %(day)s") % {
                      "type": _word(t, item.interaction.type),
                      "day": t.date(item.interaction.date, "medium")},
                  item.interaction, details={"what": what})


def quote_follow_up(c: CustomerView) -> Iterator[Due]:
    """``after_days`` after the latest quote (without a follow_up of its own), until
    ``max_age_days`` after it; resolved by a purchase since the quote or by reaching
    out to the customer after it."""
    history = c.history
    quote = _latest(history, lambda i: i.type == "quote")
    if quote is None or quote.follow_up is not None:
        return
    expires = quote.date + dt.timedelta(days=c.options.max_age_days)
    if not _listed(c, expires):
        return
    due = quote.date + dt.timedelta(days=c.options.after_days)
    if _any_after(history, quote.date, lambda i: i.type == "purchase", inclusive=True):
        return
    if _reached_out_after(history, quote):
        return
    t = _t(c)
    amount = f" ({t.money(quote.amount, quote.currency)})" if quote.amount is not None else ""
    what = quote.summary or ", ".join(i.name for i in quote.items) or t.gettext("quote")
    yield Due(due, t.gettext("Ask about the quote: %(what)s") % {"what": what} + amount,
              t.gettext("quote on %(day)s, no purchase since") % {
                  "day": t.date(quote.date, "medium")}, quote, expires=expires)


def thank_you(c: CustomerView) -> Iterator[Due]:
    """``after_days`` after the latest purchase (of at least ``min_amount``), until
    ``max_age_days`` after it; resolved by reaching out to the customer after the
    purchase."""
    history = c.history
    purchase = _latest(history, lambda i: i.type == "purchase")
    if purchase is None:
        return
    expires = purchase.date + dt.timedelta(days=c.options.max_age_days)
    if not _listed(c, expires):
        return
    if purchase.amount is not None and purchase.amount < Decimal(str(c.options.min_amount)):
        return
    if _reached_out_after(history, purchase):
        return
    t = _t(c)
    what = purchase.summary or ", ".join(i.name for i in purchase.items) or \
        t.gettext("the purchase")
    yield Due(purchase.date + dt.timedelta(days=c.options.after_days),
              t.gettext("Thank %(name)s for: %(what)s") % {"name": c.customer.name,
                                                           "what": what},
              t.gettext("purchase on %(day)s") % {"day": t.date(purchase.date, "medium")},
              purchase, expires=expires)


def feedback_request(c: CustomerView) -> Iterator[Due]:
    """``after_days`` after the latest interaction of ``types`` (default service and
    purchase, at least ``min_amount`` for purchases), until ``max_age_days`` after
    it; resolved by feedback or a complaint since, or by reaching out to the customer
    on or after the due day."""
    types = set(c.options.types)
    minimum = Decimal(str(c.options.min_amount))

    def trigger(i: Interaction) -> bool:
        if i.type not in types:
            return False
        return i.type != "purchase" or (i.amount is not None and i.amount >= minimum)

    history = c.history
    event = _latest(history, trigger)
    if event is None:
        return
    expires = event.date + dt.timedelta(days=c.options.max_age_days)
    if not _listed(c, expires):
        return
    due = event.date + dt.timedelta(days=c.options.after_days)
    if _any_after(history, event.date, lambda i: i.type in ("feedback", "complaint")):
        return
    if _any_after(history, due, lambda i: i.reaches_out, True):
        return
    t = _t(c)
    what = event.summary or event.service or _word(t, event.type)
    yield Due(due, t.gettext("Ask for feedback: %(what)s") % {"what": what},
              t.gettext("%(type)s on %(day)s") % {"type": _word(t, event.type),
                                                  "day": t.date(event.date, "medium")},
              event, expires=expires)


def _check_rule(rule: Any) -> str | None:
    kinds = [k for k in ("segment", "tag") if rule.get(k) is not None]
    if len(kinds) != 1 or rule.get("days") is None:
        return ("each rule needs 'days' and either 'segment' or 'tag': "
                "{segment: abc=A, days: 60} or {tag: vip, days: 45}")
    return None


def _check_rules(rules: Any) -> str | None:
    for rule in rules:
        problem = _check_rule(rule)
        if problem:
            return f"'reminders.stay_in_touch.rules': {problem}"
    return None


def stay_in_touch(c: CustomerView) -> Iterator[Due]:
    """Per segment or tag, a contact every N days (the shortest matching cadence); due
    N days after the last contact, resolved by any contact.  Leads and lost customers
    are left to the other kinds."""
    if c.labels["lifecycle"] in ("lead", "lost"):
        return
    last = c.derived.last_contact
    if last is None:
        return
    for i in c.history:  # "done" without a contact: the next round counts from then
        if i.type == "done" and i.date > last and any(
                rid.startswith("stay_in_touch/") for rid in i.resolves):
            last = i.date
    matching = []
    t = _t(c)
    for rule in c.options.rules:
        if rule.tag is not None:
            if rule.tag in c.customer.tags:
                matching.append((rule.days, t.gettext("tag %(tag)s") % {"tag": rule.tag}))
        elif rule.segment(c):
            matching.append((rule.days, t.gettext("segment %(segment)s")
                             % {"segment": rule.segment.text}))
    if not matching:
        return
    days, why = min(matching)
    yield Due(last + dt.timedelta(days=days),
              t.gettext("Stay in touch with %(name)s") % {"name": c.customer.name},
              t.ngettext("%(why)s: every %(num)d day; last contact %(day)s",
                         "%(why)s: every %(num)d days; last contact %(day)s", days)
              % {"why": why, "num": days, "day": t.date(last, "medium")},
              details={"days": days, "last_contact": last})


#: The reason of the stage reminders, per stage.
STAGE_SINCE = {"at_risk": N_("at risk since %(day)s; last purchase %(last)s"),
               "lost": N_("lost since %(day)s; last purchase %(last)s")}


def _stage_reminder(stage: str, title: str, extra: str | None = None
                    ) -> Callable[[CustomerView], Iterator[Due]]:
    def rule(c: CustomerView) -> Iterator[Due]:
        since = c.labels["lifecycle_since"]
        if c.labels["lifecycle"] != stage or not since:
            return
        if extra and c.labels[extra] is not True:
            return
        day = dt.date.fromisoformat(since)
        # a conversation either way: someone at risk who called us is in touch
        if _any_after(c.history, day, lambda i: i.is_conversation, inclusive=True):
            return
        last = c.derived.last_purchase
        t = _t(c)
        detail = t.gettext(STAGE_SINCE[stage]) % {
            "day": t.date(day, "medium"),
            "last": t.date(last, "medium") if last else t.gettext("never")}
        reason = c.labels.get("churn_reason")  # the churn risk in words (segments plugin)
        yield Due(day, t.gettext(title) % {"name": c.customer.name},
                  f"{detail}; {reason}" if reason else detail)

    rule.__doc__ = (f"When the customer became {stage}"
                    + (f" (and {extra})" if extra else "")
                    + "; resolved by a call, email, message, letter, card, meeting or visit "
                    "since (either way).")
    return rule


def loyalty_reward(c: CustomerView) -> Iterator[Due]:
    """Every ``every``-th purchase earns a reward, until ``max_age_days`` after it;
    resolved by reaching out to the customer after it."""
    history = c.history
    purchases = [i for i in history if i.type == "purchase"]
    if not purchases or len(purchases) % c.options.every:
        return
    milestone = purchases[-1]
    expires = milestone.date + dt.timedelta(days=c.options.max_age_days)
    if not _listed(c, expires):
        return
    if _reached_out_after(history, milestone):
        return
    t, count = _t(c), len(purchases)
    yield Due(milestone.date + dt.timedelta(days=1),
              t.gettext("Reward %(name)s: purchase no. %(num)d") % {"name": c.customer.name,
                                                                     "num": count},
              t.ngettext("%(num)d purchase, the latest on %(day)s",
                         "%(num)d purchases, the latest on %(day)s", count)
              % {"num": count, "day": t.date(milestone.date, "medium")},
              milestone, details={"count": len(purchases)}, expires=expires)


def add_working_days(day: dt.date, count: int) -> dt.date:
    """The day ``count`` working days (Monday to Friday) after ``day``; 0: ``day``."""
    while count > 0:
        day += dt.timedelta(days=1)
        if day.weekday() < 5:
            count -= 1
    return day


def answers(answer: Interaction, request: Interaction) -> bool:
    """Whether reaching out answers a request: on a later day, or on its day unless
    both have times and the answer's is earlier (files of one day sort by name, not
    by when they happened)."""
    if answer is request or not answer.reaches_out or answer.date < request.date:
        return False
    if answer.date > request.date:
        return True
    return answer.at is None or request.at is None or answer.at >= request.at


def _unanswered(history: tuple[Interaction, ...], types: frozenset[str]) -> list[Interaction]:
    """The requests of ``types`` (not outbound) that no later outreach answers, oldest
    first: those after the day of the latest outreach, and on that day those the
    day's outreaches do not answer."""
    requests: list[Interaction] = []
    day_answers: list[Interaction] = []
    for i in reversed(history):
        if day_answers and i.date < day_answers[0].date:
            break
        if i.reaches_out:
            if not day_answers or i.date == day_answers[0].date:
                day_answers.append(i)
        elif i.type in types and i.direction != "outbound":
            requests.append(i)
    return [r for r in reversed(requests) if not any(answers(a, r) for a in day_answers)]


def respond(c: CustomerView) -> Iterator[Due]:
    """Every inbound request (an interaction of ``types``, default support and
    complaint, that is not ``direction: outbound``) is due ``respond_within``
    working days (Monday to Friday) after its day, until ``max_age_days`` after
    it; resolved by reaching out to the customer after it (on its day too, unless
    both have times and the answer's is earlier); one answer settles every request
    before it."""
    within = c.options.respond_within
    max_age = dt.timedelta(days=c.options.max_age_days)
    for request in _unanswered(c.history, frozenset(c.options.types)):
        expires = request.date + max_age
        if not _listed(c, expires):
            continue
        t = _t(c)
        noun = _word(t, request.type)
        title = (t.gettext("Answer the %(request)s: %(summary)s")
                 % {"request": noun, "summary": request.summary} if request.summary
                 else t.gettext("Answer the %(request)s of %(name)s")
                 % {"request": noun, "name": c.customer.name})
        via = f" ({t.word(request.channel)})" if request.channel else ""
        yield Due(add_working_days(request.date, within), title,
                  t.ngettext("%(type)s on %(day)s%(via)s, no answer since; answer within "
                             "%(num)d working day",
                             "%(type)s on %(day)s%(via)s, no answer since; answer within "
                             "%(num)d working days", within)
                  % {"type": noun, "day": t.date(request.date, "medium"), "via": via,
                     "num": within}, request,
                  details={"type": request.type, "summary": request.summary,
                           "working_days": within},
                  expires=expires)


DEFAULT_CADENCE = ({"segment": "abc=A", "days": 60}, {"segment": "abc=B", "days": 120})

KINDS = (
    ReminderKind("birthday", birthday, "birthday greeting", priority=3, title=N_("Birthdays"),
                 options={"grace_days": Option(3, "Open this many days after.", minimum=0)}),
    ReminderKind("service_due", service_due, "service contract interval reached", priority=2,
                 title=N_("Services due")),
    ReminderKind("follow_up", follow_up, "an interaction's follow_up date", priority=1,
                 title=N_("Follow-ups")),
    ReminderKind("quote_follow_up", quote_follow_up, "a quote without purchase", priority=2,
                 title=N_("Quotes to follow up"),
                 options={"after_days": Option(14, minimum=0),
                          "max_age_days": Option(180, minimum=1)}),
    ReminderKind("thank_you", thank_you, "thanks after a purchase", priority=3,
                 title=N_("Thank-yous"),
                 options={"after_days": Option(1, minimum=0),
                          "max_age_days": Option(30, minimum=1),
                          "min_amount": Option(0.0, minimum=0)}),
    ReminderKind("feedback_request", feedback_request, "ask for feedback", priority=4,
                 title=N_("Feedback requests"),
                 options={"after_days": Option(14, minimum=0),
                          "max_age_days": Option(60, minimum=1),
                          "types": Option(("service", "purchase")),
                          "min_amount": Option(200.0, minimum=0)}),
    ReminderKind("stay_in_touch", stay_in_touch, "contact cadence per segment or tag",
                 priority=4, reads=("lifecycle",), title=N_("Stay in touch"),
                 options={"rules": Option(
                     DEFAULT_CADENCE, "Contact every 'days' days when 'segment' (a label "
                     "selector such as abc=A, or an expression) or 'tag' matches.",
                     kind="list", check=_check_rules,
                     items={"segment": Option(None, kind="expression"),
                            "tag": Option(None, kind="text"),
                            "days": Option(None, kind="integer", minimum=1)})}),
    ReminderKind("at_risk", _stage_reminder("at_risk", N_("%(name)s is at risk: get in touch")),
                 "customer became at risk", priority=2, title=N_("Customers at risk"),
                 reads=("lifecycle", "lifecycle_since", "churn_reason?")),
    ReminderKind("win_back", _stage_reminder("lost", N_("Win back %(name)s"), "win_back_worthy"),
                 "lost but worth winning back", priority=3, title=N_("Win-backs"),
                 reads=("lifecycle", "lifecycle_since", "win_back_worthy", "churn_reason?")),
    ReminderKind("loyalty_reward", loyalty_reward, "every Nth purchase", priority=3,
                 title=N_("Loyalty rewards"),
                 options={"every": Option(10, minimum=2),
                          "max_age_days": Option(60, minimum=1)}),
    ReminderKind("respond", respond, "an inbound request without an answer", priority=1,
                 title=N_("Requests to answer"),
                 options={"respond_within": Option(2, "Working days (Monday to Friday) "
                                                   "to answer in.", minimum=0),
                          "types": Option(("support", "complaint"),
                                          "The interaction types that are requests."),
                          "max_age_days": Option(30, minimum=1)}),
)

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
  loyalty_reward: {enabled: false}
  respond: {respond_within: 2}"""


# --- hooks ------------------------------------------------------------------------------


@crmkit.hookimpl
def crmkit_register(register: Any) -> None:
    register(ConfigSection(NAME, "Which reminders, when, and how often to contact a customer.",
                           SETTINGS_EXAMPLE, options={"within_days": Option(
                               30, "What the calendar and 'crmkit reminders' show ahead.",
                               minimum=0)}))
    for kind in KINDS:
        register(kind)


@crmkit.hookimpl
def crmkit_template_dirs() -> list[Path]:
    return [TEMPLATES]


@crmkit.hookimpl
def crmkit_build(app: crmkit.App) -> list[Path]:
    """``reminders.ics`` (for a calendar subscription) and ``reminders.md``: the overdue
    reminders and those due in the next ``within_days``, in the output folder."""
    from .cli import write_outputs

    return write_outputs(app)


@crmkit.hookimpl
def crmkit_register_commands(cli: click.Group) -> None:
    from .cli import done_command, reminders_command, snooze_command

    cli.add_command(reminders_command)
    cli.add_command(done_command)
    cli.add_command(snooze_command)
