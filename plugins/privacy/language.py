"""What the privacy commands say themselves, in the terminal's language (``LANG``).

Data (ids, paths, field names, values as written) is left as it is; the JSON of
``privacy export`` stays English (it is read by programs)."""

from __future__ import annotations

import crmkit


def _(message: str) -> str:
    """``message`` in the terminal's language."""
    return crmkit.translations(terminal=True).gettext(message)


def ngettext(singular: str, plural: str, n: int) -> str:
    return crmkit.translations(terminal=True).ngettext(singular, plural, n)
