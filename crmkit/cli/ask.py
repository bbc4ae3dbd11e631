"""Questions to the person at the terminal, answered in their language.

click's ``confirm`` shows ``[y/N]`` and takes only ``y``/``yes``: a German user who
types ``j`` is told "invalid input".  Here the letters come from the catalogue
(``[j/N]``, ``j``/``ja``), and the English words are always taken too.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from ..engine.i18n import N_, cli_translations

#: The answer letters and words, for the catalogue: yes, no, and s (skip: decide later).
WORDS = (N_("y"), N_("yes"), N_("n"), N_("no"), N_("s"))


def _words(*messages: str) -> set[str]:
    """Each message and its translation, as typed answers are compared."""
    gettext = cli_translations().gettext
    return {w.lower() for m in messages for w in (m, gettext(m))}


def confirm(question: str) -> None:
    """Go on only if the person at the terminal says yes; no is the default.  Anything
    else is asked again; no, an empty answer, Ctrl-C or the end of the input abort
    (click's ``Abort``: the ``crmkit`` command says "aborted" and exits with status 130,
    as for Ctrl-C)."""
    gettext = cli_translations().gettext
    yes, no = _words("y", "yes"), _words("n", "no")
    while True:
        answer = click.prompt(f"{question} [{gettext('y')}/{gettext('n').upper()}]",
                              default="", show_default=False).strip().lower()
        if answer in yes:
            return
        if not answer or answer in no:
            raise click.Abort()
        click.echo(gettext("Please answer %(yes)s or %(no)s.") % {
            "yes": gettext("y"), "no": gettext("n")}, err=True)


def choose(question: str, letters: Sequence[str], default: str) -> str:
    """One of ``letters`` (English ones, such as ``y``/``n``/``s``, named in
    ``question``), typed in English or in the terminal's language (``j`` for ``y`` in
    German); an empty answer is ``default``.  Returns the English letter."""
    gettext = cli_translations().gettext
    typed = {gettext(letter).lower(): letter for letter in letters}
    typed.update({letter: letter for letter in letters})
    while True:
        answer = click.prompt(question, default=gettext(default)).strip().lower()
        if answer in typed:
            return typed[answer]
        click.echo(gettext("Please answer %(letters)s.") % {
            "letters": ", ".join(gettext(letter) for letter in letters)}, err=True)
