"""The site ``crmkit build`` writes into the output folder, linked from one start page.

::

    index.html                  the start page: the dashboard
    reports/weekly.html         this week's to-do (and the other reports)
    customers/<id>.html         one page per customer: the 360° view
    lists/index.html            the lists: per lifecycle stage, ABC class and segment
    lists/<list>.html           one list, names linked to the customers' pages
    playbooks.html              the playbooks and what is open from them

Every page extends ``reports/_base.html.j2`` and links relatively (the folder works
from ``file://`` and from ``crmkit watch --serve``).  A customer's page is a pure
function of the customer and the values it reads (labels, segments, open reminders,
the referrer): the pages are rendered and written with
:meth:`crmkit.App.write_customer_pages`, which renders them on every core in a one-off
build and in ``crmkit watch`` renders again only the pages of customers a change
touched, and leaves a file that already holds its page alone.
Pages crmkit wrote for customers (or lists) that are gone are removed.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Iterable
from decimal import ROUND_HALF_EVEN, Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import crmkit
from crmkit import CustomerView, Reminder

CUSTOMER_TEMPLATE = "site/customer.html.j2"
LIST_TEMPLATE = "site/list.html.j2"
LISTS_TEMPLATE = "site/lists.html.j2"
PLAYBOOKS_TEMPLATE = "site/playbooks.html.j2"
CUSTOMERS = "customers"
LISTS = "lists"
#: The lifecycle stages in the order a customer goes through them.
STAGES = ("lead", "new", "active", "at_risk", "lost")
#: What every page crmkit writes carries (``reports/_base.html.j2``): only such files
#: are ever removed from the site's folders.
GENERATOR = b'<meta name="generator" content="crmkit">'


def N_(message: str) -> str:
    """Marks a text for translation (``pybabel extract``); translated when shown."""
    return message


#: The words of the site's pages, looked up once per build in the workspace's language
#: (``w["due"]`` in the templates): ``_()`` inside a template block costs a context of
#: its own per call, tens of thousands of them for 10,000 pages.
WORDS = (N_('ABC class'), N_('ABC classes'), N_('Contact'), N_('Customers'),
         N_('Dashboard'), N_('Deals'), N_('History'), N_('Lifecycle stages'),
         N_('No deals.'), N_('No interactions yet.'),
         N_("No playbooks: a playbook is a file in the workspace's playbooks/ folder."),
         N_('No segments in crmkit.yaml.'), N_('Nobody.'),
         N_('Nothing open from this playbook.'), N_('Nothing open.'), N_('Open reminders'),
         N_('Pages'), N_('Pipeline'), N_('Playbooks'), N_('RFM'), N_('Segments'),
         N_('Status'), N_('This week'), N_('address'), N_('amount'), N_('birthday'),
         N_('channel'), N_('churn risk'), N_('company'), N_('contract'),
         N_('customer since'), N_('customer'), N_('date'), N_('deal'), N_('due'),
         N_('email consent'), N_('email'), N_('expected close'), N_('file'),
         N_('last contact'), N_('last purchase'), N_('lifecycle stage'),
         N_('looked after by'), N_('mark as done'), N_('no purchase yet'), N_('no'),
         N_('notes'), N_('phone'), N_('place'), N_('prefers'), N_('purchases'), N_('referred by'),
         N_('revenue'), N_('revenue, 12 months'), N_('score'), N_('segments'), N_('since'),
         N_('source'), N_('stage'), N_('summary'), N_('switched off'), N_('tags'),
         N_('value'), N_('what'), N_('win back'), N_('worth winning back'), N_('yes'))


class Words(dict[str, str]):
    """The site's words in one language.  Hashed by identity: the same object is handed
    to every page and row of a process, so kept rows and pages compare it cheaply."""

    __hash__ = object.__hash__  # type: ignore[assignment]


@lru_cache(maxsize=8)
def words(locale: str | None) -> Words:
    t = crmkit.translations(locale)
    return Words((word, t.gettext(word)) for word in WORDS)


# --- links ------------------------------------------------------------------------------


#: Fewer digits than this make no ``tel:`` link (``javascript:alert(2)`` is no number).
TEL_DIGITS = 3


def tel(phone: str | None) -> str | None:
    """A ``tel:`` link as RFC 3966 writes one: ``+49 36453 7788`` → ``tel:+49364537788``,
    a leading ``+`` kept (a global number) and only the ASCII digits before any ``;``
    parameter; ``None`` for fewer than :data:`TEL_DIGITS` digits."""
    if not phone:
        return None
    number = phone.strip().split(";", 1)[0]
    digits = re.sub(r"[^0-9]", "", number)
    if len(digits) < TEL_DIGITS:
        return None
    return "tel:" + ("+" if number.startswith("+") else "") + digits


def mailto(email: str | None) -> str | None:
    """``mailto:`` with the address percent-encoded (nothing in it can add a header)."""
    return "mailto:" + quote(email.strip(), safe="@.-_+") if email and "@" in email else None


#: Where an address may go on to the next line: after these (``buchhaltung.|rechnung@|
#: praxis-|weimar.de``), never between two letters.
BREAK_AFTER = re.compile(r"([@._+/-])")


def breakable(text: str | None) -> Any:
    """The Jinja filter ``email | breakable``: ``text`` escaped, with a line-break
    opportunity (``<wbr>``) after each ``@ . _ + / -``, so that an address longer than a
    phone is wide wraps at its punctuation instead of overflowing its card."""
    from markupsafe import Markup, escape

    return Markup(BREAK_AFTER.sub(r"\1<wbr>", str(escape(text or ""))))


def name_key(name: str) -> str:
    """How people sort names (DIN 5007-1): accents and case do not count, ``ß`` is
    ``ss``, so "Bäckerei Krause" comes before "Björn Schäfer" and "Özlem" among the O."""
    import unicodedata

    decomposed = unicodedata.normalize("NFKD", name)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def page_name(customer_id: str) -> str:
    """The file of a customer's page (ids are file stems, so never a ``/``)."""
    return f"{customer_id}.html"


def file_part(name: str) -> str:
    """A segment's name as part of a file name: letters, digits, ``_`` and ``-``; anything
    else as its code point (two names never share a file)."""
    return "".join(ch if ch.isascii() and (ch.isalnum() or ch in "_-") else f"~{ord(ch):x}"
                   for ch in name) or "~"


def contact(customer: crmkit.Customer) -> dict[str, Any]:
    """Id, name, first phone and email (with their links) and town: what a row needs to
    act on.  A list's rows are these values, so an edit that does not change them (a
    note, say) leaves the list pages as they are."""
    phone = customer.phones[0] if customer.phones else None
    email = customer.email
    address = customer.address
    return {"customer": customer.id, "name": customer.name, "company": customer.company,
            "phone": phone, "tel": tel(phone), "email": email, "mailto": mailto(email),
            "city": address.city if address is not None else None}


#: The helper label with each customer's :func:`contact` (kept per customer by the core,
#: so that the rows of thousands of reminders do not work it out again on each rebuild).
CONTACT = "_contact"


def contact_label(customer: CustomerView) -> dict[str, Any]:
    """The rule of the label :data:`CONTACT`."""
    return contact(customer.customer)


#: The helper label with the key that orders each customer in the lists (:func:`sort_name`).
SORT_NAME = "_sort_name"


def sort_name(customer: CustomerView) -> tuple[str, str, str]:
    """How a customer sorts in the lists: by :func:`name_key`, then the name as written,
    then the id (two people of one name keep an order).  A label, so that the core keeps
    the lists in this order (``labels().ordered``) and a change moves only the customers
    whose key changed, instead of sorting 10,000 again."""
    found = customer.customer
    return (name_key(found.name), found.name, found.id)


#: The helper label with each customer's churn risk as their page shows it
#: (:func:`churn_shown`).
CHURN_SHOWN = "_churn_shown"
_PERCENT = Decimal("0.01")


def churn_shown(customer: CustomerView) -> float | None:
    """``churn_risk`` in whole percents (``0.82``), rounded as the ``percentage`` filter
    rounds it (the decimal text, half to even): a purchase moves every customer's risk
    a little, and a page is made again only where the percentage it shows changed, not
    for the hundreds of customers whose third decimal did."""
    risk = customer.labels.get("churn_risk")
    if risk is None:
        return None
    return float(Decimal(repr(risk)).quantize(_PERCENT, rounding=ROUND_HALF_EVEN))


#: What a reminder's row holds where its customer has no :data:`CONTACT` (its rule
#: failed for them: said as an error); the templates then show the id.
NO_CONTACT = dict.fromkeys(("name", "company", "phone", "tel", "email", "mailto", "city"))


def reminder_rows(app: crmkit.App, reminders: Iterable[Reminder]) -> list[dict[str, Any]]:
    """The reminders as rows of plain values with their customers' names and contact
    links (:meth:`crmkit.App.reminder_rows` with :data:`CONTACT`)."""
    return app.reminder_rows(reminders, CONTACT, NO_CONTACT)


def history_rows(history: tuple[crmkit.Interaction, ...], w: Words, currency: str | None,
                 locale: str | None) -> Any:
    """The rows of a customer's history, newest first, as HTML (the Jinja filter
    ``history_rows``): written here rather than by a row template because a cold build
    writes 100,000 of them (a row template costs 10 times as much under the sandbox).
    Every value is escaped; dates, words and money in ``locale``."""
    from markupsafe import Markup, escape

    t = crmkit.translations(locale)
    date, what, channel, summary, amount, score = (
        escape(w[k]) for k in ("date", "what", "channel", "summary", "amount", "score"))
    rows = []
    for i in reversed(history):
        text = escape(i.summary or "")
        if i.score is not None:
            text += Markup(" [%s %s]") % (score, i.score)
        money = t.money(i.amount, i.currency or currency) if i.amount is not None else ""
        rows.append(
            f'<tr><td class="day" data-label="{date}">{escape(t.date(i.date, "medium"))}</td>'
            f'<td data-label="{what}">{escape(t.word(i.type))}</td>'
            f'<td data-label="{channel}">{escape(t.word(i.channel))}</td>'
            f'<td data-label="{summary}">{text}</td>'
            f'<td class="num" data-label="{amount}">{escape(money)}</td></tr>\n')
    return Markup("".join(rows))


# --- contexts ---------------------------------------------------------------------------


def _base(app: crmkit.App, root: str, title: str) -> dict[str, Any]:
    settings = app.workspace.settings
    return {"business": settings.business, "today": app.today, "currency": settings.currency,
            "locale": settings.locale, "title": title, **page_variables(app, root)}


def page_variables(app: crmkit.App, root: str) -> dict[str, Any]:
    """What a report needs to be a page of the site: ``root`` (the way to the output
    folder), the site's words and whether there is a pipeline page (the navigation)."""
    return {"root": root, "pipeline": _has_pipeline(app),
            "w": words(app.workspace.settings.locale)}


def _has_pipeline(app: crmkit.App) -> bool:
    from . import available_reports

    return "html" in available_reports(app.templates).get("pipeline", [])


#: The labels a customer's page shows, where a plugin provides them (``churn_risk`` and
#: ``churn_reason`` come from segments, refined by predict; either may be disabled).
SHOWN_LABELS = ("lifecycle", "lifecycle_since", "abc", "rfm", "win_back_worthy",
                "churn_risk", "churn_reason")


#: Where a segment's yes/no column goes in a customer page's ``values``.
SEGMENT = "segment:"


def customer_page(view: CustomerView, values: dict[str, Any]) -> dict[str, Any]:
    """Everything one customer's page shows: the record, what is derived from the
    history, the labels the page names, the segments, open reminders, who referred
    them, deals and the history (newest first in the page), from the view and the
    customer's ``values`` (:meth:`crmkit.App.write_customer_pages`: in ``crmkit watch``
    a page is made again only when these change)."""
    customer = view.customer
    labels = {name: values.get(name) for name in SHOWN_LABELS}
    labels["segments"] = tuple(name[len(SEGMENT):] for name, value in values.items()
                               if name.startswith(SEGMENT) and value is True)
    return {"title": customer.name, "customer": customer, "labels": labels,
            "reminders": values.get("reminders") or (), "referrer": values.get("referrer"),
            "deals": view.deals, "derived": view.derived, "history": view.history}


# --- writing ----------------------------------------------------------------------------


def open_reminders(app: crmkit.App) -> list[Reminder]:
    """The reminders shown by default: not snoozed, expired or held back by the cap."""
    return app.reminders(suppressed=False)


def build(app: crmkit.App) -> list[Path]:
    """Write the site's own pages (the reports are written by the plugin's build)."""
    from . import render_report

    workspace = app.workspace
    customers = workspace.customers
    t = crmkit.translations(workspace.settings.locale)
    written = [app.write_output("index.html", render_report(app, "dashboard", "html", root=""))]

    labels = app.labels()
    listed = labels[next(iter(customers))] if customers else {}
    columns = {name: labels.column(name) for name in SHOWN_LABELS if name in listed}
    if "churn_risk" in columns:
        columns["churn_risk"] = labels.column(CHURN_SHOWN)
    group = listed.get("segments")
    segments = {name: labels.column(name) for name in group} if isinstance(group, dict) else {}
    referred = list(itertools.compress(customers, map(operator.attrgetter("referred_by"),
                                                      customers.values())))  # loops in C
    referrers = {cid: (quote(page_name(by)), customers[by].name) for cid in referred
                 if (by := customers[cid].referred_by) in customers}
    reads = {**columns, **{SEGMENT + name: column for name, column in segments.items()},
             "reminders": app.reminders_by_customer(suppressed=False),
             "referrer": referrers}
    pages = app.write_customer_pages(CUSTOMER_TEMPLATE, CUSTOMERS, customer_page, reads,
                                     _base(app, "../", ""))
    written += pages
    app.prune_pages(CUSTOMERS, set(map(page_name, customers)), GENERATOR)

    written += _lists(app, t, columns, segments)
    written.append(_playbooks(app))
    return written


def _lists(app: crmkit.App, t: Any, columns: dict[str, dict[str, Any]],
           segments: dict[str, dict[str, Any]]) -> list[Path]:
    """A page per lifecycle stage, ABC class and segment, and the page that lists them.
    Their rows are the customers' :data:`CONTACT` values, so a row is rendered again
    only when what it shows changed."""
    labels = app.labels()
    by_name = labels.ordered(SORT_NAME)  # ids
    contacts = labels.column(CONTACT)
    rows_by_name = [contacts.get(cid) or {**NO_CONTACT, "customer": cid} for cid in by_name]

    def members(column: dict[str, Any]) -> list[dict[str, Any]]:
        """The rows (by name) of the customers in a segment (``True`` in ``column``):
        loops in C, as every change in watch makes these lists again."""
        return list(itertools.compress(rows_by_name, map(
            operator.is_, map(column.get, by_name), itertools.repeat(True))))

    lists: list[tuple[str, str, str, list[dict[str, Any]]]] = []  # (file, group, title, rows)
    stage = columns.get("lifecycle", {})
    stages: dict[str, list[dict[str, Any]]] = {s: [] for s in STAGES} if stage else {}
    abc = columns.get("abc", {})
    classes: dict[str, list[dict[str, Any]]] = {}
    for groups, column in ((stages, stage), (classes, abc)):
        for row, value in zip(rows_by_name, map(column.get, by_name), strict=True):
            if isinstance(value, str):
                found = groups.get(value)
                if found is None:
                    found = groups[value] = []  # in the order the values occur
                found.append(row)
    for name, found in stages.items():
        lists.append((f"stage-{file_part(name)}", "stage", t.word(name), found))
    for letter in sorted(classes):
        lists.append((f"abc-{file_part(letter)}", "abc",
                      t.gettext(N_("ABC class %(class)s")) % {"class": letter},
                      classes[letter]))
    for name in sorted(segments):
        lists.append((f"segment-{file_part(name)}", "segment", name,
                      members(segments[name])))

    folder = app.workspace.output_dir / LISTS
    site = _base(app, "../", "")
    pages = [(folder / f"{file}.html",
              {**site, "title": title, "rows": tuple(found),
               "count": t.ngettext("%(num)s customer", "%(num)s customers", len(found)) % {
                   "num": len(found)}})
             for file, _group, title, found in lists]
    written = app.write_pages(LIST_TEMPLATE, pages)
    overview = tuple((group, f"{file}.html", title, len(found))
                     for file, group, title, found in lists)
    context = {**site, "title": t.gettext(N_("Customers")), "lists": overview}
    written.append(app.write_output(folder / "index.html",
                                    app.render_page(LISTS_TEMPLATE, context, "index")))
    app.prune_pages(folder, {"index.html", *(path.name for path, _ in pages)}, GENERATOR)
    return written


def _playbooks(app: crmkit.App) -> Path:
    """The playbooks (reminder kinds the ``playbooks`` plugin registers, one per file of
    ``playbooks/``) with the reminders open from each."""
    kinds = [k for k in app.kinds() if app.plugin_of(k) == "playbooks"]
    enabled = {k.name for k in app.enabled_kinds()}
    open_by_kind: dict[str, list[dict[str, Any]]] = {}
    if kinds:
        names = {k.name for k in kinds}
        for row in reminder_rows(app, [r for r in open_reminders(app) if r.kind in names]):
            open_by_kind.setdefault(row["kind"], []).append(row)
    playbooks = [{"name": k.name, "description": k.description,
                  "file": k.where.path if k.where is not None else None,
                  "enabled": k.name in enabled, "reminders": open_by_kind.get(k.name, [])}
                 for k in sorted(kinds, key=lambda k: k.name)]
    t = crmkit.translations(app.workspace.settings.locale)
    context = {**_base(app, "", t.gettext(N_("Playbooks"))), "playbooks": playbooks}
    return app.write_output("playbooks.html",
                            app.render_page(PLAYBOOKS_TEMPLATE, context, "playbooks"))

