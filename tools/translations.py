"""Extract, update and compile crmkit's gettext catalogues with Babel.

    .venv/bin/python tools/translations.py            # extract, update the .po, compile
    .venv/bin/python tools/translations.py --check    # exit 1 if anything is missing or stale

Extraction reads what babel.cfg names into crmkit/locale/crmkit.pot; each
language's crmkit/locale/<lang>/LC_MESSAGES/crmkit.po is updated from it (new
messages empty; vanished ones kept, so that no translation is lost to a branch
that still uses it, unless --prune) and compiled to crmkit.mo next to it, which
ships in the package.  Translate the empty ``msgstr`` entries of the .po, then run
this again.  tests/test_i18n.py fails while a message has no translation or a .mo
is older than its .po.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCALE = REPO / "crmkit" / "locale"
POT = LOCALE / "crmkit.pot"
LANGUAGES = ("de",)
PYBABEL = str(Path(sys.executable).parent / "pybabel")


def run(*args: str) -> None:
    subprocess.run([PYBABEL, "-q", *args], cwd=REPO, check=True)


def extract() -> None:
    run("extract", "-F", "babel.cfg", "-o", str(POT), "--add-location=file", "--sort-output",
        "--no-wrap", "--project=crmkit", "--copyright-holder=crmkit", "-c", "TRANSLATORS:",
        ".")


def update(po: Path, language: str, prune: bool) -> None:
    """``pybabel update`` without fuzzy matching, keeping vanished messages unless
    ``prune``."""
    from babel.messages.pofile import read_po, write_po

    with open(POT, "rb") as handle:
        template = read_po(handle)
    with open(po, "rb") as handle:
        catalogue = read_po(handle, locale=language)
    catalogue.update(template, no_fuzzy_matching=True, update_header_comment=False)
    if not prune:
        for key, message in list(catalogue.obsolete.items()):
            if message.string and (isinstance(message.string, str) or all(message.string)):
                message.locations = []
                catalogue[key] = message
    catalogue.obsolete.clear()
    with open(po, "wb") as handle:
        write_po(handle, catalogue, width=0, sort_output=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="only report untranslated or stale messages (exit 1 if any)")
    parser.add_argument("--prune", action="store_true",
                        help="drop the messages the sources no longer use")
    args = parser.parse_args(argv)
    if args.check:
        sys.path.insert(0, str(REPO / "tests"))
        from test_i18n import problems  # the test's own checks

        found = problems()
        for line in found:
            print(line)
        return 1 if found else 0
    extract()
    for language in LANGUAGES:
        po = LOCALE / language / "LC_MESSAGES" / "crmkit.po"
        if po.exists():
            update(po, language, args.prune)
        else:
            run("init", "-i", str(POT), "-o", str(po), "-l", language, "--no-wrap")
    for language in LANGUAGES:
        po = LOCALE / language / "LC_MESSAGES" / "crmkit.po"
        run("compile", "-i", str(po), "-o", str(po.with_suffix(".mo")), "-l", language,
            "--statistics")
    return 0


if __name__ == "__main__":
    sys.exit(main())
