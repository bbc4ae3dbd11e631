"""Questions to the person at the terminal, answered in their language.

click's ``confirm`` shows ``[y/N]`` and takes only ``y``/``yes``: a German user who
types ``j`` is told "invalid input".  Here the letters come from the catalogue
(``[j/N]``, ``j``/``ja``), and the English words are always taken too.
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from ..engine.i18n import Translations, cli_translations


def _answers(t: Translations) -> dict[str, str]:
    """The answer letters and words in the terminal's language, by their English ones
    (``y``: yes, ``n``: no, ``s``: skip, decide later), with a context of their own in
    the catalogue: a bare "s" could mean seconds elsewhere."""
    return {"y": t.pgettext("answer", "y"), "yes": t.pgettext("answer", "yes"),
            "n": t.pgettext("answer", "n"), "no": t.pgettext("answer", "no"),
            "s": t.pgettext("answer", "s")}


def _either(t: Translations, letters: Sequence[str]) -> str:
    """``j oder n``, ``y, n, or s``: the letters as the language lists alternatives."""
    from babel.lists import format_list

    try:
        return str(format_list(list(letters), style="or", locale=t.locale))
    except (ValueError, LookupError):  # a language Babel does not know
        return ", ".join(letters)


def _ask(prompt: str, typed: dict[str, str], default: str, shown: Sequence[str]) -> str:
    """Ask until the answer is one of ``typed`` (lower case, by what is returned); an
    empty answer is ``default`` (shown in brackets when it is not empty); anything else
    is told the ``shown`` choices, as the language lists alternatives."""
    t = cli_translations()
    while True:
        answer = click.prompt(prompt, default=default,
                              show_default=bool(default)).strip().lower()
        if answer in typed:
            return typed[answer]
        click.echo(t.gettext("Please answer %(letters)s.") % {
            "letters": _either(t, shown)}, err=True)


def confirm(question: str) -> None:
    """Go on only if the person at the terminal says yes; no is the default.  Anything
    else is asked again; no, an empty answer, Ctrl-C or the end of the input abort
    (click's ``Abort``: the ``crmkit`` command says "aborted" and exits with status 130,
    as for Ctrl-C)."""
    words = _answers(cli_translations())
    typed = {"": "n"}
    typed.update((w.lower(), "y") for w in ("y", "yes", words["y"], words["yes"]))
    typed.update((w.lower(), "n") for w in ("n", "no", words["n"], words["no"]))
    prompt = f"{question} [{words['y']}/{words['n'].upper()}]"
    if _ask(prompt, typed, "", [words["y"], words["n"]]) != "y":
        raise click.Abort()


def choose(question: str, letters: Sequence[str], default: str) -> str:
    """One of ``letters`` (English ones among ``y``, ``n``, ``s``, named in
    ``question``), typed in English or in the terminal's language (``j`` for ``y`` in
    German); an empty answer is ``default``.  Returns the English letter."""
    words = _answers(cli_translations())
    shown = [words.get(letter, letter) for letter in letters]
    typed = {word.lower(): letter for word, letter in zip(shown, letters, strict=True)}
    typed.update({letter: letter for letter in letters})
    return _ask(question, typed, words.get(default, default), shown)
