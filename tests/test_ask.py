"""Questions at the terminal take their answers in its language (crmkit.cli.ask):
``j`` is yes under LANG=de_DE.UTF-8, and the prompt says ``[j/N]``."""

import os
import subprocess
import sys

SCRIPT = """
import click
from crmkit.cli.ask import choose, confirm
from crmkit.engine.i18n import install_for_click

install_for_click()

@click.command()
@click.argument("what")
def main(what):
    if what == "confirm":
        confirm("Go on?")
        click.echo("went on")
    else:
        click.echo("chose " + choose("Record (y), again (n) or later (s)?", ["y", "n", "s"], "s"))

main()
"""


def ask(what, language, answers):
    env = {**os.environ, "LANG": language, "LC_ALL": "", "LC_MESSAGES": ""}
    return subprocess.run([sys.executable, "-c", SCRIPT, what], input=answers,
                          capture_output=True, text=True, env=env, timeout=60)


def test_confirm_takes_the_terminals_yes():
    for answer in ("j", "ja", "J", "y", "yes"):
        german = ask("confirm", "de_DE.UTF-8", f"{answer}\n")
        assert german.returncode == 0, (answer, german.stderr)
        assert german.stdout == "Go on? [j/N]: went on\n"
    english = ask("confirm", "C.UTF-8", "y\n")
    assert english.stdout == "Go on? [y/N]: went on\n"


def test_confirm_asks_again_until_yes_or_no_and_no_aborts():
    german = ask("confirm", "de_DE.UTF-8", "vielleicht\nnein\n")
    assert german.returncode == 1
    assert "went on" not in german.stdout
    assert german.stdout.count("Go on? [j/N]: ") == 2
    assert german.stderr == "Bitte mit j oder n antworten.\nAbgebrochen!\n"
    # 'j' is German: in English it is asked again
    english = ask("confirm", "C.UTF-8", "j\nn\n")
    assert english.returncode == 1
    assert english.stderr == "Please answer y or n.\nAborted!\n"
    for answers in ("\n", ""):  # an empty answer, the end of the input
        nothing = ask("confirm", "de_DE.UTF-8", answers)
        assert nothing.returncode == 1 and "went on" not in nothing.stdout


def test_choose_returns_the_english_letter_of_a_translated_answer():
    assert ask("choose", "de_DE.UTF-8", "j\n").stdout.endswith("chose y\n")
    assert ask("choose", "de_DE.UTF-8", "y\n").stdout.endswith("chose y\n")
    assert ask("choose", "de_DE.UTF-8", "\n").stdout.endswith("chose s\n")
    again = ask("choose", "de_DE.UTF-8", "q\nN\n")
    assert again.stdout.endswith("chose n\n")
    assert again.stderr == "Bitte mit j, n oder s antworten.\n"
    english = ask("choose", "C.UTF-8", "j\ns\n")  # 'j' is German
    assert english.stdout.endswith("chose s\n")
    assert english.stderr == "Please answer y, n, or s.\n"
