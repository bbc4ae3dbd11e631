"""Languages: gettext catalogues for words, Babel's CLDR data for numbers, money and dates.

What the business and its customers read (reports, reminders, the calendar,
drafts) follows the workspace's ``locale`` (a customer's own for what the
customer reads); the CLI's own messages follow the terminal's (``LANG``),
English when unknown.  Messages are written in English in the source and
looked up in ``crmkit/locale/<lang>/LC_MESSAGES/crmkit.mo`` (compiled with
Babel, shipped in the package; ``tools/translations.py`` extracts and
compiles).  A plugin with its own catalogue passes its ``domain`` and
``localedir``.

Templates get Jinja's ``i18n`` extension (``_``, ``gettext``, ``ngettext``,
``{% trans %}``) and the filters ``money``, ``day``, ``decimal``, ``percentage``
and ``word``; each follows the ``locale`` variable of the template's context.

Babel is imported on first use, and each catalogue is read once per process.
"""

from __future__ import annotations

import datetime as dt
import gettext as _gettext
import math
import os
from decimal import Decimal
from functools import lru_cache
from pathlib import Path
from typing import Any

DOMAIN = "crmkit"
LOCALE_DIR = Path(__file__).resolve().parent.parent / "locale"
DEFAULT = "en"
_ONE = Decimal(1)


def N_(message: str) -> str:
    """Marks a message for ``pybabel extract`` where it is translated later."""
    return message


#: The values of crmkit's records as words (:meth:`Translations.word`): interaction
#: types, channels, lifecycle and deal stages.
WORDS = {
    "purchase": N_("purchase"), "service": N_("service"), "quote": N_("quote"),
    "support": N_("support request"), "complaint": N_("complaint"), "call": N_("call"),
    "email": N_("email"), "visit": N_("visit"), "meeting": N_("meeting"),
    "message": N_("message"), "letter": N_("letter"), "card": N_("card"),
    "feedback": N_("feedback"), "note": N_("note"), "phone": N_("phone"),
    "sms": N_("SMS"), "whatsapp": N_("WhatsApp"), "web": N_("web form"),
    "website": N_("website"), "instagram": N_("Instagram"), "facebook": N_("Facebook"),
    "fair": N_("fair"), "referral": N_("referral"), "ad": N_("ad"),
    "lead": N_("lead"), "new": N_("new"),
    "active": N_("active"), "at_risk": N_("at risk"), "lost": N_("lost"),
    "qualified": N_("qualified"), "proposal": N_("proposal"),
    "negotiation": N_("negotiation"), "open": N_("open"), "won": N_("won"),
}


def _language(locale: str | None) -> str:
    """``de_DE.UTF-8``, ``de-DE`` and ``de`` alike: ``de_DE`` / ``de``; unknown → ``en``."""
    if not locale:
        return DEFAULT
    text = locale.split(".", 1)[0].split("@", 1)[0].replace("-", "_").strip()
    if not text or text in ("C", "POSIX"):
        return DEFAULT
    return text


class Translations:
    """One language: ``gettext``/``ngettext`` for words and the CLDR formats of numbers,
    money and dates.  Get one with :func:`crmkit.translations`."""

    __slots__ = ("_babel", "_catalogue", "_formats", "_whole", "gettext", "language",
                 "locale", "ngettext", "pgettext")

    def __init__(self, locale: str, catalogue: _gettext.NullTranslations) -> None:
        self.locale = locale
        self.language = locale.split("_", 1)[0]
        self._catalogue = catalogue
        #: Bound methods, so a lookup is one call.
        self.gettext = catalogue.gettext
        self.ngettext = catalogue.ngettext
        #: A message with a context (``pgettext("answer", "y")``), where the same short
        #: English word means different things.
        self.pgettext = catalogue.pgettext
        self._formats: dict[tuple[Any, ...], str] = {}
        self._babel: Any = None
        self._whole: bool | None = None

    def _babel_locale(self) -> Any:
        """Babel's ``Locale``, parsed once (a build formats 100,000 amounts and dates)."""
        if self._babel is None:
            from babel import Locale, UnknownLocaleError

            try:
                self._babel = Locale.parse(self.locale)
            except (ValueError, UnknownLocaleError):
                self._babel = Locale.parse(DEFAULT)
        return self._babel

    def money(self, amount: Decimal | float | int | None, currency: str | None = None) -> str:
        """``1.234,56 €`` (de) / ``€1,234.56`` (en); without a currency the number with
        two decimals; ``""`` for ``None``."""
        if amount is None:
            return ""
        key = ("m", amount, currency)
        text = self._formats.get(key)
        if text is None:
            from babel.numbers import format_currency, format_decimal

            if currency:
                text = format_currency(amount, currency, locale=self._babel_locale())
            else:
                text = format_decimal(amount, "#,##0.00", locale=self._babel_locale())
            if len(self._formats) < 100_000:
                self._formats[key] = text
        return text

    def decimal(self, value: Decimal | float | int | None, digits: int | None = None) -> str:
        """A number with the locale's separators (``1.234,5``); ``digits`` fixes the
        decimals."""
        if value is None:
            return ""
        # kept by type too: the same figures recur in thousands of churn reasons
        key = ("n", type(value), value, digits)
        text = self._formats.get(key)
        if text is None:
            from babel.numbers import format_decimal

            pattern = None if digits is None else "#,##0" + ("." + "0" * digits if digits else "")
            text = format_decimal(value, pattern, locale=self._babel_locale())
            if len(self._formats) < 100_000:
                self._formats[key] = text
        return text

    def percent(self, value: float | Decimal | None) -> str:
        """``42 %`` (de) / ``42%`` (en); ``–`` for ``None``."""
        if value is None:
            return "–"
        key: tuple[Any, ...] = ("p", value)
        if type(value) is float and math.isfinite(value) and self._whole_percents():
            # kept by what is shown: 10,000 churn risks are 10,000 floats but a hundred
            # texts (rounded as Babel rounds: the decimal text, half to even)
            exact = Decimal(repr(value)).scaleb(2)
            key = ("p%", exact.quantize(_ONE), exact.is_signed())
        text = self._formats.get(key)
        if text is None:
            from babel.numbers import format_percent

            text = format_percent(value, locale=self._babel_locale())
            if len(self._formats) < 100_000:
                self._formats[key] = text
        return text

    def _whole_percents(self) -> bool:
        """Whether the locale shows percentages without decimals (all CLDR locales do)."""
        if self._whole is None:
            self._whole = self._babel_locale().percent_formats[None].frac_prec == (0, 0)
        return self._whole

    def word(self, value: str | None) -> str:
        """An interaction type, channel or stage as a word (``at_risk``: ``gefährdet``);
        a value crmkit does not know as it is."""
        if not value:
            return ""
        known = WORDS.get(value)
        return self.gettext(known) if known is not None else value

    def duration(self, count: int, unit: str) -> str:
        """``3 Monate`` / ``1 week``: ``unit`` is ``days``, ``weeks``, ``months`` or
        ``years`` (crmkit's intervals: ``every: 12 months``); any other as it is."""
        if unit == "days":
            text = self.ngettext("%(num)d day", "%(num)d days", count)
        elif unit == "weeks":
            text = self.ngettext("%(num)d week", "%(num)d weeks", count)
        elif unit == "months":
            text = self.ngettext("%(num)d month", "%(num)d months", count)
        elif unit == "years":
            text = self.ngettext("%(num)d year", "%(num)d years", count)
        else:
            return f"{count} {unit}"
        return text % {"num": count}

    def date(self, day: dt.date | str | None, format: str = "long") -> str:
        """``23. November 2026`` (de, long) / ``November 23, 2026`` (en); ``medium``
        (``23.11.2026`` / ``Nov 23, 2026``), ``short`` or a CLDR pattern as Babel takes
        it; an ISO date as text too; ``""`` for ``None``."""
        if day is None or day == "":
            return ""
        if isinstance(day, str):
            try:
                day = dt.date.fromisoformat(day)
            except ValueError:
                return day
        key = ("d", day, format)
        text = self._formats.get(key)
        if text is None:
            from babel.dates import format_date

            text = format_date(day, format, locale=self._babel_locale())
            if len(self._formats) < 100_000:
                self._formats[key] = text
        return text


@lru_cache(maxsize=64)
def translations(locale: str | None = None, domain: str = DOMAIN,
                 localedir: str | Path | None = None, *, terminal: bool = False
                 ) -> Translations:
    """The :class:`Translations` of ``locale`` (``"de"``, ``"de_DE"``; ``None`` or an
    unknown one: English) for ``domain``, read once per process.  A plugin with its
    own catalogue passes ``domain`` and ``localedir`` (the folder holding
    ``<lang>/LC_MESSAGES/<domain>.mo``).  ``terminal=True``: the terminal's language
    (:func:`terminal_locale`, read once per process), for what a CLI command says
    itself."""
    language = _language(terminal_locale() if terminal else locale)
    folder = str(localedir) if localedir is not None else str(LOCALE_DIR)
    catalogue = _gettext.translation(domain, folder, languages=[language], fallback=True)
    return Translations(language, catalogue)


def terminal_locale(environ: Any = None) -> str:
    """The terminal's language for the CLI's own messages: ``LC_ALL``, ``LC_MESSAGES``,
    ``LANG`` (as gettext reads them), English when none is set or it is ``C``."""
    env = os.environ if environ is None else environ
    for name in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = env.get(name)
        if value:
            return _language(value.split(":", 1)[0])
    return DEFAULT


def cli_translations() -> Translations:
    """The :class:`Translations` of the terminal (:func:`terminal_locale`), for the
    CLI's own messages: the environment is read once per process."""
    return translations(terminal=True)


def cli_gettext(message: str) -> str:
    """``message`` in the terminal's language.  The core's CLI code imports it as ``_``
    (the name ``pybabel extract`` looks for): ``_("wrote %(path)s") % {"path": path}``;
    a plugin uses ``crmkit.translations(terminal=True).gettext``."""
    return cli_translations().gettext(message)


def cli_ngettext(singular: str, plural: str, n: int) -> str:
    """The singular or plural of a message in the terminal's language, by its plural
    rules; CLI code imports it as ``ngettext``."""
    return cli_translations().ngettext(singular, plural, n)


def install_for_click() -> None:
    """Let click's own messages (``Error:``, ``No such option``, ``Missing option``)
    follow the terminal too: click looks its words up with :func:`gettext.gettext`,
    whose domain becomes crmkit's (the catalogue holds the ones people meet,
    :mod:`crmkit.cli.clickwords`).  Called by the ``crmkit`` process itself only."""
    _gettext.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    _gettext.textdomain(DOMAIN)


# --- Jinja ------------------------------------------------------------------------------


def _of(context: Any) -> Translations:
    locale = context.get("locale")
    return translations(locale if isinstance(locale, str) else None)


def install(env: Any) -> None:
    """Give a Jinja environment ``_``/``gettext``/``ngettext`` (``jinja2.ext.i18n``,
    new style: ``_("%(n)s days", n=3)`` and autoescaped) and the filters
    ``money(currency)``, ``day(format)``, ``decimal(digits)``, ``percentage`` and
    ``word`` (also a function: an interaction type, channel or stage as a word), all
    following the context's ``locale`` (``money`` and ``day`` also take one as their
    last argument: a draft is in the customer's)."""
    import jinja2

    @jinja2.pass_context
    def gettext(context: Any, message: str) -> str:
        return _of(context).gettext(message)

    @jinja2.pass_context
    def ngettext(context: Any, singular: str, plural: str, n: int) -> str:
        return _of(context).ngettext(singular, plural, n)

    @jinja2.pass_context
    def money(context: Any, amount: Any, currency: str | None = None,
              locale: str | None = None) -> str:
        return (translations(locale) if locale else _of(context)).money(amount, currency)

    @jinja2.pass_context
    def day(context: Any, value: Any, format: str = "long", locale: str | None = None) -> str:
        return (translations(locale) if locale else _of(context)).date(value, format)

    @jinja2.pass_context
    def decimal(context: Any, value: Any, digits: int | None = None) -> str:
        return _of(context).decimal(value, digits)

    @jinja2.pass_context
    def percentage(context: Any, value: Any) -> str:
        return _of(context).percent(value)

    @jinja2.pass_context
    def word(context: Any, value: Any) -> str:
        return _of(context).word(value)

    env.add_extension("jinja2.ext.i18n")
    env.install_gettext_callables(gettext, ngettext, newstyle=True)  # type: ignore[attr-defined]
    for name, function in (("money", money), ("day", day), ("decimal", decimal),
                           ("percentage", percentage), ("word", word)):
        env.filters[name] = function
    env.globals["word"] = word
