import csv
import datetime as dt
import io
import json
import subprocess
from pathlib import Path

import openpyxl
import pytest
import vobject
import yaml
from conftest import CRMKIT, EXAMPLE, age_files

from crmkit import App

FIXTURES = Path(__file__).parent / "fixtures"
TODAY = "2026-11-23"



def run_import(run, root, *args):
    return run("-w", root, "--today", TODAY, "import", *args)


def test_excel_csv_with_semicolons_and_cp1252(make_workspace, run):
    root = make_workspace()
    dry = run_import(run, root, "csv", FIXTURES / "kunden_excel.csv")
    assert dry.exit_code == 0, dry.output
    assert dry.stdout.splitlines() == [
        "kunden_excel.csv: 5 rows (csv)",
        "  row 2: new customer anna-mueller (Anna Müller)",
        "  row 3: new customer juergen-weiss (Jürgen Weiß)",
        "  row 4: new customer oezlem-yilmaz (Özlem Yilmaz)",
        "  row 5: new customer bjoern-schaefer (Björn Schäfer)",
        "    warning: birthday '31.02.1969' is not a date, left out",
        "  row 6: new customer baeckerei-krause-ohg (Bäckerei Krause OHG)",
        "5 new, 0 existing (left unchanged), 0 already imported, 0 invalid",
        "dry run: nothing written; --apply creates the 5 new files",
    ]
    assert not (root / "customers").exists()
    applied = run_import(run, root, "csv", FIXTURES / "kunden_excel.csv", "--apply")
    assert "    created customers/anna-mueller.yaml" in applied.stdout
    anna = yaml.safe_load((root / "customers/anna-mueller.yaml").read_text(encoding="utf-8"))
    assert anna["name"] == "Anna Müller" and anna["email"] == "anna.mueller@example.de"
    assert anna["phone"] == "03643 812345" and anna["birthday"] == dt.date(1978, 12, 3)
    assert anna["address"] == {"street": "Schillerstraße 12", "postal_code": "99423",
                               "city": "Weimar"}
    assert anna["notes"] == "Stammkundin" and anna["fields"]["import_id"]
    krause = yaml.safe_load((root / "customers/baeckerei-krause-ohg.yaml").read_text())
    assert krause["company"] == "Bäckerei Krause OHG" == krause["name"]
    assert run("-w", root, "check").exit_code == 0


def test_a_row_with_more_values_than_columns_is_invalid_not_shifted(make_workspace, run,
                                                                     tmp_path):
    """``Weimar; Thüringen`` unquoted in a semicolon file moved every later value one
    field on (postal code '2', city '99423') and the last one was dropped, silently."""
    source = tmp_path / "extra.csv"
    source.write_text("name;street;postal_code;city\n"
                      "Anna Berg;Markt 2;99423;Weimar\n"
                      "Bert Kurz;Am Horn; 2;99423;Weimar\n"
                      "Cleo Lang;Ring 1;99425;Weimar;;\n", encoding="utf-8")
    root = make_workspace()
    dry = run_import(run, root, "csv", source)
    # the row is named, the others are planned, and the import is not done: exit 1
    assert dry.exit_code == 1, dry.output
    assert dry.stderr.endswith("error: 1 row was not imported (invalid, named above): correct "
                               "extra.csv and import it again (rows already imported are "
                               "recognised)\n")
    assert "  row 2: new customer anna-berg (Anna Berg)" in dry.stdout
    assert ("  row 3: invalid: 5 values but 4 columns (a value with an unquoted delimiter?): "
            "the values would land in the wrong fields") in dry.stdout
    assert "  row 4: new customer cleo-lang (Cleo Lang)" in dry.stdout  # empty cells: fine


def test_reimport_is_idempotent_and_never_edits(make_workspace, run):
    root = make_workspace()
    run_import(run, root, "csv", FIXTURES / "kunden_excel.csv", "--apply")
    before = {p: p.read_bytes() for p in (root / "customers").iterdir()}
    again = run_import(run, root, "csv", FIXTURES / "kunden_excel.csv", "--apply")
    assert "0 new, 0 existing (left unchanged), 5 already imported, 0 invalid" in again.stdout
    assert {p: p.read_bytes() for p in (root / "customers").iterdir()} == before


def test_rows_match_existing_customers_with_evidence(make_workspace, run):
    root = make_workspace({
        "customers/anna.yaml": "name: Anna Müller\nemail: ANNA.MUELLER@example.de\n",
        "customers/jw.yaml": "name: J. Weiss\nphone: +49 171 2233445\n",
        "customers/yilmaz.yaml": "name: Oezlem Yilmaz\naddress: {postal_code: '99423'}\n",
        "customers/bjoern.yaml": "name: Björn Schaefer\naddress: {city: Erfurt}\n",
    })
    out = run_import(run, root, "csv", FIXTURES / "kunden_excel.csv").stdout.splitlines()
    assert out[1:7] == [
        "  row 2: existing customer anna: same email anna.mueller@example.de",
        "  row 3: existing customer jw: same phone 0171 2233445 and a similar name",
        "  row 4: new customer oezlem-yilmaz (Özlem Yilmaz); possible match yilmaz: same "
        "name and address",
        "  row 5: new customer bjoern-schaefer (Björn Schäfer)",
        "    warning: birthday '31.02.1969' is not a date, left out",
        "  row 6: new customer baeckerei-krause-ohg (Bäckerei Krause OHG)",
    ]


def test_vcard_3_and_4(make_workspace, run):
    root = make_workspace()
    for name in ("contacts_v3.vcf", "contacts_v4.vcf"):
        result = run_import(run, root, "vcard", FIXTURES / name, "--apply")
        assert "0 invalid" in result.stdout, result.output
    ws = App(root, dt.date(2026, 11, 23)).workspace
    assert sorted(ws.customers) == ["emily-clarke", "james-oconnor", "lena-fischer",
                                    "lukas-kaiser"]
    emily, lena = ws.customers["emily-clarke"], ws.customers["lena-fischer"]
    assert emily.emails == ("emily.clarke@example.co.uk",) and emily.tags == ("english", "weimar")
    assert emily.address.city == "Weimar" and emily.address.postal_code == "99425"
    assert emily.birthday == dt.date(1988, 12, 1)
    assert ws.customers["james-oconnor"].company == "O'Connor Design"
    assert lena.birthday == dt.date(1992, 2, 29)
    assert lena.phones == ("+49-3643-654321",)  # vCard 4's tel: URI, as a number
    assert ws.diagnostics == ()


def test_hubspot_export(make_workspace, run):
    root = make_workspace()
    result = run_import(run, root, "hubspot", FIXTURES / "hubspot_contacts.csv", "--apply")
    assert "3 new" in result.stdout
    sophie = yaml.safe_load((root / "customers/sophie-braun.yaml").read_text())
    assert sophie["phone"] == "+49 176 1112223" and sophie["source"] == "Social media"
    assert sophie["fields"]["hubspot_id"] == "101"
    assert sophie["fields"]["hubspot_lifecycle_stage"] == "lead"


def test_xlsx_made_with_openpyxl(make_workspace, run, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["First Name", "Last Name", "E-Mail", "Birthday", "Tags", "Zip", "City"])
    sheet.append(["Grete", "Groß", "grete@example.de", dt.datetime(1960, 5, 17), "vip, weimar",
                  99423, "Weimar"])
    sheet.append(["=HYPERLINK(\"x\")", "", "", None, "", None, ""])
    path = tmp_path / "list.xlsx"
    book.save(path)
    root = make_workspace()
    result = run_import(run, root, "xlsx", path, "--apply", "--tag", "imported")
    assert result.exit_code == 0, result.output
    grete = yaml.safe_load((root / "customers/grete-gross.yaml").read_text(encoding="utf-8"))
    assert grete["birthday"] == dt.date(1960, 5, 17) and grete["tags"] == [
        "vip", "weimar", "imported"]
    assert grete["address"] == {"postal_code": "99423", "city": "Weimar"}


def test_column_mapping_override(make_workspace, run, tmp_path):
    path = tmp_path / "k.csv"
    path.write_text("Kontakt,Mail,Egal\nMax Muster,max@example.de,x\n", encoding="utf-8")
    root = make_workspace()
    no_name = run_import(run, root, "csv", path)
    assert no_name.exit_code == 1
    assert "no name column among Kontakt, Mail, Egal; map one with --map" in no_name.stderr
    mapped = run_import(run, root, "csv", path, "--map", "Kontakt=name", "--map", "Egal=ignore",
                        "--format", "json")
    data = json.loads(mapped.stdout)
    assert data["new"] == 1 and data["rows"][0]["customer"] == "max-muster"


def test_transactions_with_german_amounts_and_idempotency(make_workspace, run):
    root = make_workspace({"customers/mueller-anna.yaml":
                           "name: Anna Müller\nemail: anna.mueller@example.de\n"})
    first = run_import(run, root, "transactions", FIXTURES / "transactions.csv", "--apply")
    created = [line for line in first.stdout.splitlines() if line.startswith("    created ")]
    assert [c.split("-purchase")[0] for c in created] == [
        "    created interactions/2026/2026-11-05-mueller-anna",
        "    created interactions/2026/2026-11-06-mueller-anna",
        "    created interactions/2026/2026-11-06-mueller-anna"]
    assert len(set(created)) == 3
    assert [line for line in first.stdout.splitlines()[1:] if line.startswith("  row")] == [
        "  row 2: new purchase of mueller-anna (by email anna.mueller@example.de)",
        "  row 3: new purchase of mueller-anna (by id mueller-anna)",
        "  row 4: invalid: no customer matches 'nobody@example.de' (by id, email or exact "
        "name)",
        "  row 5: invalid: amount 'zwölf' is not a number",
        "  row 6: new purchase of mueller-anna (by id mueller-anna)",
    ]
    derived = App(root, dt.date(2026, 11, 23)).customer("mueller-anna").derived
    assert f"{derived.revenue:.2f}" == "1334.30"  # 1.234,50 + 49,90 + 49,90
    assert first.exit_code == 1 and "error: 2 rows were not imported" in first.stderr
    again = run_import(run, root, "transactions", FIXTURES / "transactions.csv", "--apply")
    assert "0 new, 0 existing (left unchanged), 3 already imported, 2 invalid" in again.stdout
    assert again.exit_code == 1
    as_json = run_import(run, root, "transactions", FIXTURES / "transactions.csv",
                         "--format", "json")
    assert as_json.exit_code == 1 and json.loads(as_json.stdout)["invalid"] == 2


def test_unknown_import_format(make_workspace, run):
    result = run_import(run, make_workspace(), "vcf", FIXTURES / "contacts_v3.vcf")
    assert "unknown import format 'vcf'" in result.stderr and "vcard" in result.stderr


def test_duplicates_with_evidence(make_workspace, run):
    root = make_workspace({
        "customers/anna.yaml": "name: Anna Müller\nphone: +49 3643 812345\n",
        "customers/anna-m.yaml": "name: A. Mueller\nphone: 03643 812345\n",
        "customers/bert.yaml": "name: Bert Brown\naddress: {postal_code: '99423'}\n",
        "customers/bert-2.yaml": "name: Bert Browne\naddress: {postal_code: '99423'}\n",
        "customers/carl.yaml": "name: Carl Clay\naddress: {city: Weimar}\n",
        "customers/carl-2.yaml": "name: Carl Clay\naddress: {city: Erfurt}\n",
    })
    result = run("-w", root, "duplicates")
    assert result.exit_code == 1
    assert result.stdout.splitlines() == [
        "anna ~ anna-m: same phone 03643 812345 and a similar name",
        "bert ~ bert-2: similar name ('Bert Brown') at the same address",
    ]


def test_csv_export_guards_against_formula_injection(make_workspace, run):
    root = make_workspace({
        "customers/evil.yaml": 'name: "=HYPERLINK(\\"http://x\\")"\ntags: ["@risk"]\n'
                               "phone: '+49 1'\n",
        "customers/good.yaml": "name: Good Person\nemail: good@example.de\n",
    })
    out = run("-w", root, "export", "csv").stdout
    assert out.startswith("\ufeffid,name,")
    rows = list(csv.DictReader(io.StringIO(out.lstrip("\ufeff"))))
    evil = rows[0]
    assert evil["name"] == "'=HYPERLINK(\"http://x\")" and evil["tags"] == "'@risk"
    assert evil["phone"] == "'+49 1"
    assert rows[1]["name"] == "Good Person" and rows[1]["email"] == "good@example.de"


def test_vcard_and_json_export_of_a_segment(make_workspace, run):
    root = make_workspace({
        "customers/anna.yaml": "name: Anna Müller\nemail: anna@example.de\ntags: [vip]\n"
                               "birthday: 1980-02-29\n",
        "customers/bert.yaml": "name: Bert\n",
        "interactions/a.yaml": "customer: anna\ndate: 2026-01-01\ntype: purchase\namount: 5\n",
    })
    cards = list(vobject.readComponents(run("-w", root, "export", "vcard", "--tag", "vip").stdout))
    assert [c.fn.value for c in cards] == ["Anna Müller"]
    assert cards[0].n.value.family == "Müller" and cards[0].email.value == "anna@example.de"
    data = json.loads(run("-w", root, "--today", TODAY, "export", "json", "--segment",
                          "lifecycle=lead").stdout)
    assert [c["id"] for c in data] == ["bert"]
    typo = run("-w", root, "export", "csv", "--tag", "vipp")
    assert typo.exit_code == 1 and typo.stdout == ""
    assert "no customer has the tag 'vipp' (did you mean 'vip'?)" in typo.stderr


def test_privacy_export_has_everything_about_one_person(make_workspace, run):
    root = make_workspace({
        "customers/anna.yaml": "name: Anna\nemail: a@example.de\n",
        "customers/bert.yaml": "name: Bert\nreferred_by: anna\n",
        "interactions/log.yaml": "- {customer: anna, date: 2026-01-01, type: call}\n"
                                 "- {customer: bert, date: 2026-01-02, type: call}\n",
        "interactions/p.yaml": "customer: anna\ndate: 2026-02-01\ntype: purchase\namount: 9\n",
        "deals/d.yaml": "customer: anna\ntitle: Bath\nvalue: 100\n",
    })
    doc = json.loads(run("-w", root, "--today", TODAY, "privacy", "export", "anna").stdout)
    assert doc["customer"]["emails"] == ["a@example.de"]
    assert [i["type"] for i in doc["interactions"]] == ["call", "purchase"]
    assert [d["id"] for d in doc["deals"]] == ["d"] and doc["referred"] == ["bert"]
    assert doc["files"] == ["customers/anna.yaml", "customers/bert.yaml", "deals/d.yaml",
                            "interactions/log.yaml", "interactions/p.yaml"]
    assert doc["mentions"] == [{"source": "customers/bert.yaml:2", "text": "referred_by: anna",
                                "why": "their id"}]
    assert doc["derived"]["revenue"] == "9.00"


def test_forget_removes_everything_of_that_person_and_nothing_else(make_workspace, run):
    root = make_workspace({
        "customers/anna.yaml": "name: Anna\nemail: a@example.de\n",
        "customers/bert.yaml": "# Bert, our neighbour\nname: Bert\nreferred_by: anna\n"
                               "tags: [x]\n",
        "customers/cleo.yaml": "name: Cleo\n",
        "interactions/log.yaml": "# phone log\n- customer: bert\n  date: 2026-01-02\n"
                                 "  type: call\n- customer: anna\n  date: 2026-01-03\n"
                                 "  type: call\n  summary: |\n    multi\n    line\n"
                                 "- {customer: cleo, date: 2026-01-04, type: call}\n",
        "interactions/only-anna.yaml": "- {customer: anna, date: 2026-01-05, type: email}\n",
        "interactions/p.yaml": "customer: anna\ndate: 2026-02-01\ntype: purchase\namount: 9\n",
        "deals/d.yaml": "customer: anna\ntitle: Bath\n",
        "deals/e.yaml": "customer: cleo\ntitle: Roof\nvalue: 10\n",
    })
    age_files(root)
    before = App(root, dt.date(2026, 11, 23)).workspace
    shown = subprocess.run([CRMKIT, "-w", root, "show", "anna"], capture_output=True)
    assert b"a@example.de" in shown.stdout
    subprocess.run([CRMKIT, "-w", root, "show", "anna"], capture_output=True)
    cached = [p for p in (root / ".crmkit").rglob("*") if p.is_file()]
    assert any(b"a@example.de" in p.read_bytes() for p in cached)  # parse cache, replay
    refused = run("-w", root, "privacy", "forget", "anna", input="n\n")
    assert refused.exit_code == 1 and (root / "customers/anna.yaml").exists()
    result = run("-w", root, "privacy", "forget", "anna", "--yes")
    assert result.exit_code == 0, result.output
    assert ("  git filter-repo --invert-paths \\\n    --path customers/anna.yaml \\\n"
            in result.stdout)
    after = App(root, dt.date(2026, 11, 23)).workspace
    assert after.diagnostics == ()
    assert sorted(after.customers) == ["bert", "cleo"] and list(after.deals) == ["e"]
    assert not any("anna" in p.read_text() for p in root.rglob("*.yaml"))
    assert not any(b"a@example.de" in p.read_bytes() for p in root.rglob("*") if p.is_file())
    assert (root / "customers/bert.yaml").read_text() == (
        "# Bert, our neighbour\nname: Bert\ntags: [x]\n")
    assert (root / "interactions/log.yaml").read_text() == (
        "# phone log\n- customer: bert\n  date: 2026-01-02\n  type: call\n"
        "- {customer: cleo, date: 2026-01-04, type: call}\n")
    kept = [(i.customer, i.date, i.type) for i in before.interactions if i.customer != "anna"]
    assert [(i.customer, i.date, i.type) for i in after.interactions] == kept


def test_check_warns_about_email_without_consent_and_retention(make_workspace, run):
    root = make_workspace({
        "customers/old-lead.yaml": "name: Old Lead\n",
        "customers/fresh.yaml": "name: Fresh\n",
        "interactions/a.yaml": "- {customer: old-lead, date: 2022-01-10, type: call}\n"
                               "- {customer: fresh, date: 2026-11-01, type: email, "
                               "direction: outbound}\n",
    }, settings="business: X\nprivacy:\n  retention: {lead_days: 1095}\n")
    out = run("-w", root, "--today", TODAY, "check").stdout.splitlines()
    assert out[:2] == [
        "customers/old-lead.yaml:1:1: warning: lead without contact since 2022-01-10 "
        "(retention: 1095 days): erase with 'crmkit privacy forget old-lead'",
        "interactions/a.yaml:2:3: warning: email sent to 'fresh', who has no recorded email "
        "consent",
    ]


@pytest.mark.parametrize("text", ["1.234,56", "1,234.56", "1234.56", "1234,56"])
def test_amounts_in_both_notations(text):
    from crmkit_plugins.people.importers import parse_amount

    assert str(parse_amount(text)) == "1234.56"


# --- issue 20: import that never drops a person, a lossless round trip ------------------

DE_SETTINGS = """\
business: Test GmbH
locale: de
currency: EUR
timezone: Europe/Berlin
"""


def _export(run, root, fmt, out):
    result = run("-w", root, "--today", TODAY, "export", fmt, "--no-derived", "--out", out)
    assert result.exit_code == 0, result.output
    return out.read_bytes()


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_round_trip_of_the_example_workspace_is_byte_identical(make_workspace, run, tmp_path,
                                                               fmt):
    first = _export(run, EXAMPLE, fmt, tmp_path / f"first.{fmt}")
    root = make_workspace()
    imported = run_import(run, root, fmt, tmp_path / f"first.{fmt}", "--apply")
    count = len(App(EXAMPLE).workspace.customers)
    assert f"{count} new, 0 existing (left unchanged), 0 already imported, 0 invalid" in \
        imported.stdout, imported.output
    assert "warning" not in imported.stdout
    assert _export(run, root, fmt, tmp_path / f"second.{fmt}") == first
    # and what the files hold is the same, not only what the export shows
    ws, example = App(root).workspace, App(EXAMPLE).workspace
    assert {c: ws.customers[c].to_json() for c in ws.customers} == {
        c: example.customers[c].to_json() for c in example.customers}
    assert "'+49" not in (root / "customers/schwarz-julia.yaml").read_text(encoding="utf-8")
    assert ws.customers["krueger-martin"].referred_by == "neumann-klaus"
    julia = ws.customers["schwarz-julia"].consent
    assert (julia.email, julia.since, julia.how) == (True, dt.date(2026, 6, 1), "Webformular")


TRICKY = {
    "customers/anna.yaml": """\
        name: "'t Hooft, Anna"
        emails: [anna@example.de, anna.work@example.de]
        phones: ["+49 3643 812345", "-112", "0171 2233445"]
        address: {street: Am Markt 1, postal_code: '04229', city: Leipzig, country: DE}
        birthday: 1980-02-29
        tags: [vip, weimar]
        referred_by: bert
        consent: {email: false, how: "=widerrufen am Telefon"}
        salutation: Liebe Anna
        company: "'=Firma"
        preferred_channel: phone
        locale: de
        stage: customer
        aliases: [anna-old]
        notes: |
          Zeile eins
          @zwei; "drei"
        services:
        - {name: Wartung, interval: 12 months, start: 2024-03-01, notes: "Keller, Tür links"}
        fields:
          kundennummer: 10023
          text_number: '5'
          since: 2020-01-01
          formula: =SUM(A1:A3)
          quoted: "'=x"
          dash: "- item"
          empty_list: []
          nested: {a: [1, two], b: null}
          flag: true
        """,
    "customers/bert.yaml": "name: Bert\nconsent: {email: true, since: 2024-01-02, how: web}\n",
}


@pytest.mark.parametrize("fmt", ["csv", "json"])
def test_round_trip_keeps_every_value_and_type(make_workspace, run, tmp_path, fmt):
    source = make_workspace(TRICKY)
    first = _export(run, source, fmt, tmp_path / f"first.{fmt}")
    if fmt == "csv":
        text = first.decode("utf-8-sig")
        assert ",'+49 3643 812345; -112; 0171 2233445," in text  # one guard per cell
        assert ",'=SUM(A1:A3)," in text and ",'=widerrufen am Telefon," in text
        assert ",''=Firma," in text  # looks guarded: one more apostrophe, taken off again
    root = make_workspace()
    result = run_import(run, root, fmt, tmp_path / f"first.{fmt}", "--apply")
    assert "2 new" in result.stdout, result.output
    assert _export(run, root, fmt, tmp_path / f"second.{fmt}") == first
    before, after = App(source).workspace.customers, App(root).workspace.customers
    if fmt == "csv":
        assert after["anna"].to_json() == before["anna"].to_json()
    assert dict(after["anna"].fields) == {  # JSON has no dates: the date comes back as text
        "kundennummer": 10023, "text_number": "5",
        "since": dt.date(2020, 1, 1) if fmt == "csv" else "2020-01-01",
        "formula": "=SUM(A1:A3)", "quoted": "'=x", "dash": "- item", "empty_list": [],
        "nested": {"a": [1, "two"], "b": None}, "flag": True}
    assert after["anna"].phones == ("+49 3643 812345", "-112", "0171 2233445")
    assert after["anna"].services[0].notes == "Keller, Tür links"


def test_a_default_export_with_derived_columns_imports_the_same_customers(
        make_workspace, run, tmp_path):
    out = tmp_path / "all.csv"
    assert run("-w", EXAMPLE, "--today", TODAY, "export", "csv", "--delimiter", ";", "--out",
               out).exit_code == 0
    root = make_workspace()
    assert f"{len(App(EXAMPLE).workspace.customers)} new" in run_import(
        run, root, "csv", out, "--apply").stdout
    assert _export(run, root, "csv", tmp_path / "a.csv") == _export(
        run, EXAMPLE, "csv", tmp_path / "b.csv")


HOUSEHOLD = ("Vorname;Nachname;E-Mail;Telefon\n"
             "Anke;Weißenfels;anke@example.de;+49 3643 812345\n"
             "Lisa;Weißenfels;lisa@example.de;03643/81 23 45\n"
             "Tom;Weissenfels-Kahl;tom@example.de;0049 (0)3643 812345\n"
             "Jörg;Weissenfels;;03643 812345\n")


def test_a_household_sharing_a_landline_is_imported_person_by_person(make_workspace, run,
                                                                     tmp_path):
    path = tmp_path / "haushalt.csv"
    path.write_text(HOUSEHOLD, encoding="utf-8")
    root = make_workspace({"customers/joerg-weissenfels.yaml":
                           "name: Jörg Weißenfels\nemail: joerg@example.de\n"
                           "phone: 03643 812345\n"})
    result = run_import(run, root, "csv", path, "--apply")
    assert result.stdout.splitlines()[1:] == [
        "  row 2: new customer anke-weissenfels (Anke Weißenfels); possible match "
        "joerg-weissenfels: same phone +49 3643 812345, but another name ('Jörg Weißenfels')",
        "    created customers/anke-weissenfels.yaml",
        "  row 3: new customer lisa-weissenfels (Lisa Weißenfels); possible match "
        "joerg-weissenfels: same phone 03643/81 23 45, but another name ('Jörg Weißenfels')",
        "    created customers/lisa-weissenfels.yaml",
        "  row 4: new customer tom-weissenfels-kahl (Tom Weissenfels-Kahl); possible match "
        "joerg-weissenfels: same phone 0049 (0)3643 812345, but another name "
        "('Jörg Weißenfels')",
        "    created customers/tom-weissenfels-kahl.yaml",
        "  row 5: existing customer joerg-weissenfels: same phone 03643 812345 and a similar "
        "name",
        "3 new (3 possible matches), 1 existing (left unchanged), 0 already imported, "
        "0 invalid",
    ]
    ws = App(root).workspace
    assert sorted(ws.customers) == ["anke-weissenfels", "joerg-weissenfels",
                                    "lisa-weissenfels", "tom-weissenfels-kahl"]
    assert ws.customers["lisa-weissenfels"].phones == ("03643/81 23 45",)


def test_skip_possible_leaves_out_only_possible_matches(make_workspace, run, tmp_path):
    path = tmp_path / "haushalt.csv"
    path.write_text(HOUSEHOLD, encoding="utf-8")
    root = make_workspace()  # an empty workspace: rows match earlier rows
    out = run_import(run, root, "csv", path, "--skip-possible").stdout.splitlines()
    assert out[1:] == [
        "  row 2: new customer anke-weissenfels (Anke Weißenfels)",
        "  row 3: skipped (Lisa Weißenfels; --skip-possible): possible match row 2 "
        "(anke-weissenfels): same phone 03643/81 23 45, but another name ('Anke Weißenfels')",
        "  row 4: skipped (Tom Weissenfels-Kahl; --skip-possible): possible match row 2 "
        "(anke-weissenfels): same phone 0049 (0)3643 812345, but another name "
        "('Anke Weißenfels')",
        "  row 5: skipped (Jörg Weissenfels; --skip-possible): possible match row 2 "
        "(anke-weissenfels): same phone 03643 812345, but another name ('Anke Weißenfels')",
        "1 new, 0 existing (left unchanged), 0 already imported, 0 invalid, 3 skipped "
        "(possible matches)",
        "dry run: nothing written; --apply creates the 1 new file",
    ]
    assert "4 new (3 possible matches)" in run_import(run, root, "csv", path).stdout


def test_same_email_within_one_file_is_one_person(make_workspace, run, tmp_path):
    path = tmp_path / "k.csv"
    path.write_text("Name,E-Mail,Telefon\nAnna Roth,anna@example.de,0171 1\n"
                    "A. Roth,ANNA@example.de,\n", encoding="utf-8")
    out = run_import(run, make_workspace(), "csv", path).stdout.splitlines()
    assert out[2] == ("  row 3: existing customer anna-roth: the same person as row 2: same "
                      "email ANNA@example.de")


def test_xlsx_numbers_keep_their_leading_zeros_and_every_person(make_workspace, run, tmp_path):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["Vorname", "Nachname", "Telefon", "PLZ", "Ort", "Land", "Geburtstag"])
    # Excel stored 03643 812345 as the number 3643812345 and 04229 as 4229
    sheet.append(["Anke", "Weißenfels", 3643812345, 4229, "Leipzig", "", "31.02.1969"])
    sheet.append(["Lisa", "Weißenfels", 3643812345, 4229, "Leipzig", "", None])
    sheet.append(["Jörg", "Weißenfels", 493643812345, 4229, "Leipzig", "Deutschland", None])
    sheet.append(["Maria", "Huber", 6641234567, 1010, "Wien", "Österreich", None])
    sheet.cell(row=3, column=4).number_format = "00000"  # shown as 04229 in Excel
    path = tmp_path / "kunden.xlsx"
    book.save(path)
    root = make_workspace(settings=DE_SETTINGS)
    result = run_import(run, root, "xlsx", path, "--apply")
    assert result.exit_code == 0, result.output
    assert "4 new (2 possible matches)" in result.stdout
    assert ("    warning: phone 3643812345 was a number in the spreadsheet (its leading 0 "
            "lost): read as 03643812345") in result.stdout
    assert ("    warning: postal code 4229 was a number in the spreadsheet (its leading zero "
            "lost): read as 04229") in result.stdout
    assert "    warning: birthday '31.02.1969' is not a date, left out" in result.stdout
    ws = App(root).workspace
    people = {c.name: c for c in ws.customers.values()}
    assert sorted(people) == ["Anke Weißenfels", "Jörg Weißenfels", "Lisa Weißenfels",
                              "Maria Huber"]
    assert people["Anke Weißenfels"].phones == ("03643812345",)
    assert people["Anke Weißenfels"].birthday is None
    assert people["Jörg Weißenfels"].phones == ("+493643812345",)
    assert {people[n].address.postal_code for n in people if "Weißenfels" in n} == {"04229"}
    assert people["Maria Huber"].address.postal_code == "1010"  # not German: as it was
    assert people["Maria Huber"].phones == ("6641234567",)
    assert ("    warning: phone 6641234567 was a number in the spreadsheet: check it for a "
            "lost leading 0 or +") in result.stdout


def test_transactions_match_names_in_the_customer_column(make_workspace, run, tmp_path):
    path = tmp_path / "kasse.csv"
    path.write_text("Datum;Kunde;Betrag\n05.11.2026;Anna Müller;1.600,00\n"
                    "06.11.2026;anna.mueller@example.de;1600,00\n"
                    "07.11.2026;mueller-anna;1,600.00\n"
                    "08.11.2026;Bert Weiß;10,00\n"
                    "09.11.2026;Nobody Known;10,00\n", encoding="utf-8")
    root = make_workspace({
        "customers/mueller-anna.yaml": "name: Anna Müller\nemail: anna.mueller@example.de\n",
        "customers/bert.yaml": "name: Bert Weiß\n",
        "customers/bert-2.yaml": "name: Bert Weiss\n",
    })
    out = [line for line in run_import(run, root, "transactions", path, "--apply")
           .stdout.splitlines() if line.startswith("  row")]
    assert out == [
        "  row 2: new purchase of mueller-anna (by name Anna Müller)",
        "  row 3: new purchase of mueller-anna (by email anna.mueller@example.de)",
        "  row 4: new purchase of mueller-anna (by id mueller-anna)",
        "  row 5: invalid: the name 'Bert Weiß' is several customers' (bert, bert-2): give "
        "the id or email",
        "  row 6: invalid: no customer matches 'Nobody Known' (by id, email or exact name)",
    ]
    history = App(root, dt.date(2026, 11, 23)).customer("mueller-anna").history
    assert [i.amount for i in history] == [1600, 1600, 1600]


@pytest.mark.parametrize("text", ["1.600,00", "1600,00", "1,600.00", "1600", "1.600",
                                  "1 600,00 €"])
def test_log_amount_takes_the_formats_import_takes(make_workspace, text):
    root = make_workspace({"customers/anna.yaml": "name: Anna\n"})
    result = subprocess.run([CRMKIT, "-w", root, "--today", TODAY, "log", "anna", "-t",
                             "purchase", "--amount", text], capture_output=True, text=True,
                            env={**__import__("os").environ, "CRMKIT_BACKGROUND": "0"})
    assert result.returncode == 0, result.stderr
    written = yaml.safe_load((root / result.stdout.split()[-1]).read_text())
    assert written["amount"] == 1600


def test_log_amount_refuses_what_is_not_a_number(make_workspace, run):
    root = make_workspace({"customers/anna.yaml": "name: Anna\n"})
    for text in ("zwölf", "1,2,3", "1.23,4"):
        result = run("-w", root, "log", "anna", "-t", "purchase", "--amount", text)
        assert result.exit_code == 1 and "is not a number" in result.stderr
    assert not (root / "interactions").exists()
