"""Extract, update and compile crmkit's gettext catalogues with Babel.

    .venv/bin/python tools/translations.py            # extract, update the .po, compile
    .venv/bin/python tools/translations.py --check    # exit 1 if anything is missing or stale

Extraction reads what babel.cfg names into crmkit/locale/crmkit.pot; each
language's crmkit/locale/<lang>/LC_MESSAGES/crmkit.po is updated from it (new
messages empty, vanished ones dropped) and compiled to crmkit.mo next to it, which
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="only report untranslated or stale messages (exit 1 if any)")
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
            run("update", "-i", str(POT), "-o", str(po), "-l", language, "--no-wrap",
                "--ignore-obsolete", "--no-fuzzy-matching")
        else:
            run("init", "-i", str(POT), "-o", str(po), "-l", language, "--no-wrap")
    for language in LANGUAGES:
        po = LOCALE / language / "LC_MESSAGES" / "crmkit.po"
        run("compile", "-i", str(po), "-o", str(po.with_suffix(".mo")), "-l", language,
            "--statistics")
    return 0


if __name__ == "__main__":
    sys.exit(main())
