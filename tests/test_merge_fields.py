"""`crmkit merge KEEP OTHER`: how they found us and the email consent (its evidence)."""

from __future__ import annotations

import datetime as dt
import os
import subprocess

import yaml
from conftest import CRMKIT

TODAY = "2026-11-23"


def _crmkit(root, *args):
    env = {**os.environ, "CRMKIT_BACKGROUND": "0", "LANG": "C", "LC_ALL": "C"}
    return subprocess.run([CRMKIT, "-w", root, "--today", TODAY, *args], capture_output=True,
                          text=True, env=env, timeout=120)


def _merged(make_workspace, keep: str, other: str, extra: dict[str, str] | None = None):
    """Merge customers/b.yaml (``other``) into customers/a.yaml (``keep``): the plan's lines
    and a's data afterwards (checked clean)."""
    root = make_workspace({"customers/a.yaml": keep, "customers/b.yaml": other,
                           **(extra or {})})
    result = _crmkit(root, "merge", "a", "b", "--apply")
    assert result.returncode == 0, result.stdout + result.stderr
    check = _crmkit(root, "check")
    assert check.returncode == 0, check.stdout + check.stderr
    assert not (root / "customers/b.yaml").exists()
    data = yaml.safe_load((root / "customers/a.yaml").read_text(encoding="utf-8"))
    return result.stdout.splitlines(), data


def test_keeps_own_source_and_does_not_take_the_others_campaign(make_workspace):
    # a came by referral; b's fair campaign beside it would credit the fair with a
    lines, a = _merged(
        make_workspace,
        "name: Anna Müller\nsource: referral\nreferred_by: carl\n",
        "name: A. Mueller\nsource: fair\ncampaign: baumesse-2026\nreferred_by: a\n",
        {"customers/carl.yaml": "name: Carl\n"})
    assert a == {"name": "Anna Müller", "source": "referral", "referred_by": "carl",
                 "aliases": ["b"]}
    assert ("  differs: how they found us: a's source 'referral', referred_by 'carl' kept, "
            "b had source 'fair', campaign 'baumesse-2026'") in lines
    assert "  edit   customers/a.yaml (adds aliases: [b])" in lines


def test_takes_how_they_found_us_whole_where_keep_has_none(make_workspace):
    lines, a = _merged(
        make_workspace,
        "name: Anna Müller\nreferred_by: b\n",  # its duplicate says nothing
        "name: A. Mueller\nsource: fair\ncampaign: baumesse-2026\n")
    assert a == {"name": "Anna Müller", "source": "fair", "campaign": "baumesse-2026",
                 "aliases": ["b"]}
    assert ("  edit   customers/a.yaml (adds from b: source 'fair'; campaign "
            "'baumesse-2026'; aliases: [b])") in lines
    assert not any("differs: how" in line for line in lines)


def test_consent_evidence_of_other_is_kept_where_keep_has_none(make_workspace):
    lines, a = _merged(
        make_workspace,
        "name: Anna\nemail: anna@example.de\nconsent:\n  email: true\n",
        "name: Anna M\nconsent:\n  email: true\n  since: 2024-05-01\n"
        "  how: Formular auf der Messe\n")
    assert a["consent"] == {"email": True, "since": dt.date(2024, 5, 1),
                            "how": "Formular auf der Messe"}
    assert ("  edit   customers/a.yaml (adds from b: consent {email: true, since: "
            "2024-05-01, how: Formular auf der Messe} (its evidence; a's was "
            "{email: true}); aliases: [b])") in lines


def test_consent_taken_from_other_where_keep_has_none(make_workspace):
    _, a = _merged(make_workspace, "name: Anna\n",
                   "name: Anna M\nconsent: {email: true, since: 2024-05-01, how: mündlich}\n")
    assert a["consent"] == {"email": True, "since": dt.date(2024, 5, 1), "how": "mündlich"}


def test_keeps_own_consent_evidence_when_both_have_some(make_workspace):
    lines, a = _merged(
        make_workspace,
        "name: Anna\nconsent: {email: true, since: 2023-01-02, how: Auftrag}\n",
        "name: Anna M\nconsent: {email: true, since: 2024-05-01, how: Messe}\n")
    assert a["consent"] == {"email": True, "since": dt.date(2023, 1, 2), "how": "Auftrag"}
    assert ("  differs: consent: a's {email: true, since: 2023-01-02, how: Auftrag} kept, "
            "b had {email: true, since: 2024-05-01, how: Messe}") in lines


def test_an_opt_out_of_other_wins_over_keeps_consent_and_says_so(make_workspace):
    lines, a = _merged(
        make_workspace,
        "name: Bert\nemail: bert@example.de\nconsent: {email: true, since: 2024-01-01, "
        "how: mündlich}\n",
        "name: Bert K\nconsent: {email: false, since: 2025-02-01, how: Abmeldung per Mail}\n")
    assert a["consent"] == {"email": False, "since": dt.date(2025, 2, 1),
                            "how": "Abmeldung per Mail"}
    said = [line for line in lines if line.startswith("  consent: ")]
    assert said == ["  consent: b opted out of email (2025-02-01, Abmeldung per Mail), a had "
                    "opted in (2024-01-01, mündlich): the opt-out is kept, the more "
                    "restrictive choice"]


def test_keeps_own_opt_out_over_others_consent_and_says_so(make_workspace):
    lines, a = _merged(
        make_workspace,
        "name: Bert\nconsent: {email: false}\n",
        "name: Bert K\nconsent: {email: true, since: 2024-01-01, how: mündlich}\n")
    assert a["consent"] == {"email": False}
    assert ("  consent: a opted out of email (no date or how recorded), b had opted in "
            "(2024-01-01, mündlich): the opt-out is kept, the more restrictive choice"
            ) in lines
