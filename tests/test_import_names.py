"""`crmkit import` of a name written 'Last, First': one customer, whichever the spelling."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml
from conftest import CRMKIT
from crmkit_plugins.people.importers import person_name

TODAY = "2026-11-23"


def _crmkit(root, *args):
    env = {**os.environ, "CRMKIT_BACKGROUND": "0", "LANG": "C", "LC_ALL": "C"}
    return subprocess.run([CRMKIT, "-w", root, "--today", TODAY, *args], capture_output=True,
                          text=True, env=env, timeout=120)


def _customers(root):
    return {p.stem: yaml.safe_load(p.read_text(encoding="utf-8"))
            for p in sorted((root / "customers").glob("*.yaml"))}


@pytest.mark.parametrize(("written", "turned"), [
    ("Müller, Anna", "Anna Müller"),
    ("  Müller ,  Anna Maria ", "Anna Maria Müller"),
    ("von der Heide, Dr. Eva", "Dr. Eva von der Heide"),
    ("Müller-Lüdenscheidt, Anna", "Anna Müller-Lüdenscheidt"),
    ("O'Brien, Seán", "Seán O'Brien"),
    # left as written: no comma, two commas, a company, a suffix, only a title, digits,
    # a family name of two words that is no 'von der'
    ("Anna Müller", None),
    ("Müller, Anna, Weimar", None),
    ("Müller, Schmidt & Partner", None),
    ("Krause, GmbH", None),
    ("Bäckerei Krause, Weimar", None),
    ("Smith, Jr.", None),
    ("Meier, Dr.", None),
    ("Praxis 7, Weimar", None),
])
def test_person_name(written, turned):
    assert person_name(written) == turned


def test_both_spellings_are_one_customer(make_workspace, tmp_path):
    root = make_workspace()
    first = tmp_path / "first.csv"
    first.write_text('name,email\n"Müller, Anna",anna@example.de\n', encoding="utf-8")
    result = _crmkit(root, "import", "csv", first, "--apply")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1:4] == [
        "  row 2: new customer anna-mueller (Anna Müller)",
        "    warning: name 'Müller, Anna' read as 'Anna Müller' (written 'Last, First')",
        "    created customers/anna-mueller.yaml",
    ]
    assert _customers(root)["anna-mueller"]["name"] == "Anna Müller"
    second = tmp_path / "second.csv"
    second.write_text("name,email\nAnna Müller,anna@example.de\n", encoding="utf-8")
    again = _crmkit(root, "import", "csv", second, "--apply")
    assert again.returncode == 0, again.stderr
    assert again.stdout.splitlines()[1] == "  row 2: already imported (anna-mueller)"
    assert list(_customers(root)) == ["anna-mueller"]


def test_a_name_alone_in_both_spellings_is_one_customer(make_workspace, tmp_path):
    root = make_workspace()
    for name, text in (("a.csv", 'name\n"Müller, Anna"\n'), ("b.csv", "name\nAnna Müller\n")):
        (tmp_path / name).write_text(text, encoding="utf-8")
        result = _crmkit(root, "import", "csv", tmp_path / name, "--apply")
        assert result.returncode == 0, result.stderr
    assert _customers(root) == {"anna-mueller": {
        "name": "Anna Müller", "fields": {"import_id": _customers(root)["anna-mueller"][
            "fields"]["import_id"]}}}


def test_a_customer_written_last_first_before_is_a_possible_match(make_workspace, tmp_path):
    root = make_workspace({"customers/mueller-anna.yaml": "name: Müller, Anna\n"})
    path = tmp_path / "b.csv"
    path.write_text("name,phone\nAnna Müller,0171 5550000\n", encoding="utf-8")
    result = _crmkit(root, "import", "csv", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == (
        "  row 2: new customer anna-mueller (Anna Müller); possible match mueller-anna: the "
        "same name ('Müller, Anna'), nothing else to tell them apart")
    skipped = _crmkit(root, "import", "csv", path, "--skip-possible", "--apply")
    assert skipped.returncode == 0, skipped.stderr
    assert list(_customers(root)) == ["mueller-anna"]


def test_the_same_name_at_two_known_addresses_is_not_a_match(make_workspace, tmp_path):
    root = make_workspace({"customers/anna-mueller.yaml":
                           "name: Anna Müller\naddress: {postal_code: '99423'}\n"})
    path = tmp_path / "b.csv"
    path.write_text('name,postal_code\n"Müller, Anna",10115\n', encoding="utf-8")
    result = _crmkit(root, "import", "csv", path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[1] == "  row 2: new customer anna-mueller-2 (Anna Müller)"


def test_a_company_with_a_comma_keeps_its_name(make_workspace, tmp_path):
    root = make_workspace()
    path = tmp_path / "c.csv"
    path.write_text('name\n"Müller, Schmidt & Partner"\n"Bäckerei Krause, Weimar"\n',
                    encoding="utf-8")
    result = _crmkit(root, "import", "csv", path, "--apply")
    assert result.returncode == 0, result.stderr
    assert "warning" not in result.stdout
    assert sorted(c["name"] for c in _customers(root).values()) == [
        "Bäckerei Krause, Weimar", "Müller, Schmidt & Partner"]


def test_vcard_name_with_a_comma(make_workspace, tmp_path):
    root = make_workspace()
    path = tmp_path / "c.vcf"
    # an unescaped comma cuts FN short ('Müller'): N has the given name; an escaped
    # one is 'Last, First'
    path.write_text("BEGIN:VCARD\nVERSION:3.0\nFN:Müller, Anna\nN:Müller;Anna;;;\n"
                    "EMAIL:anna@example.de\nEND:VCARD\n"
                    "BEGIN:VCARD\nVERSION:3.0\nFN:Krause\\, Bert\nN:Krause;Bert;;;\n"
                    "END:VCARD\n", encoding="utf-8")
    result = _crmkit(root, "import", "vcard", path, "--apply")
    assert result.returncode == 0, result.stderr
    customers = _customers(root)
    assert sorted(customers) == ["anna-mueller", "bert-krause"]
    assert customers["anna-mueller"]["name"] == "Anna Müller"
    assert customers["bert-krause"]["name"] == "Bert Krause"


def test_duplicates_finds_the_two_spellings(make_workspace):
    root = make_workspace({"customers/mueller-anna.yaml": "name: Müller, Anna\n",
                           "customers/anna-mueller.yaml": "name: Anna Müller\n",
                           "customers/anna-m.yaml": "name: Anna Müller\n"
                                                    "address: {postal_code: '10115'}\n"})
    result = _crmkit(root, "duplicates")
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        "anna-m ~ anna-mueller: the same name ('Anna Müller'), nothing else to tell them "
        "apart",
        "anna-m ~ mueller-anna: the same name ('Anna Müller'), nothing else to tell them "
        "apart",
    ]
    assert "2 likely duplicates among 3 customers" in result.stderr
