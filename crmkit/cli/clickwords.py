"""click's own words that people meet in crmkit's errors, for the catalogue.

click looks its messages up with :func:`gettext.gettext`; the ``crmkit``
process makes crmkit's catalogue that lookup's domain
(:func:`crmkit.engine.i18n.install_for_click`), so these follow the terminal's
language like crmkit's own.  They are listed here, exactly as click writes them,
so that ``pybabel extract`` puts them in the catalogue (tests/test_i18n.py checks
that click still has each).  The words of ``--help`` are not among them: the help
texts are English (docs/translating.md), and so are their headings.
"""

from __future__ import annotations

from ..engine.i18n import N_
from ..engine.i18n import cli_ngettext as ngettext

#: Single messages.
MESSAGES = (
    N_("Error: {message}"),
    N_("Try '{command} {option}' for help."),
    N_("Invalid value: {message}"),
    N_("Invalid value for {param_hint}: {message}"),
    N_("Missing argument"),
    N_("Missing option"),
    N_("Missing parameter"),
    N_("No such option {name!r}."),
    N_("Aborted!"),
    N_("{value!r} is not a valid {number_type}."),
    N_("{value} is not in the range {range}."),
    N_("{name} {filename!r} does not exist."),
    N_("{name} {filename!r} is a file."),
    N_("{name} {filename!r} is a directory."),
    N_("file"),
    N_("directory"),
    N_("path"),
)


def plurals(n: int) -> tuple[str, ...]:
    """click's plural messages for ``n``, in the terminal's language (as click's own
    lookup finds them: tests/test_i18n.py compares)."""
    return (
        ngettext("Did you mean {possibility}?", "(Did you mean one of: {possibilities}?)", n),
        ngettext("Got unexpected extra argument ({args})",
                 "Got unexpected extra arguments ({args})", n),
        ngettext("Option {name!r} requires an argument.",
                 "Option {name!r} requires {nargs} arguments.", n),
        ngettext("{value!r} is not {choice}.", "{value!r} is not one of {choices}.", n),
    )
