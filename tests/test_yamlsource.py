import datetime as dt
import pickle

import yaml

from crmkit.loading.yamlsource import YamlList, YamlMap, parse_yaml


def messages(parsed):
    return [str(d) for d in parsed.diagnostics]


def test_values_keep_their_line_and_column():
    text = b"name: Anna\nservices:\n  - name: Wartung\n    interval: 1 year\n"
    parsed = parse_yaml(text, "c.yaml")
    assert parsed.diagnostics == []
    data = parsed.data
    assert isinstance(data, YamlMap)
    assert data.marks["name"] == (1, 7)
    assert data.key_marks["services"] == (2, 1)
    services = data["services"]
    assert isinstance(services, YamlList)
    assert services.marks[0] == (3, 5)
    assert services[0].marks["interval"] == (4, 15)


def test_yaml_11_booleans_stay_text_but_true_false_are_booleans():
    data = parse_yaml(b"country: NO\nanswer: yes\nflag: on\nok: true\nbad: False\n", "x").data
    assert data == {"country": "NO", "answer": "yes", "flag": "on", "ok": True, "bad": False}


def test_dates_are_dates_and_impossible_dates_stay_text_for_the_schema():
    data = parse_yaml(b"a: 2026-02-28\nb: 2026-02-30\n", "x").data
    assert data["a"] == dt.date(2026, 2, 28)
    assert data["b"] == "2026-02-30"


def test_duplicate_keys_are_errors_and_the_first_value_wins():
    parsed = parse_yaml(b"name: A\nemail: a@x.de\nname: B\n", "c.yaml")
    assert parsed.data["name"] == "A"
    assert messages(parsed) == [
        "c.yaml:3:1: error: duplicate key 'name' (first defined at line 1); the first value is used"
    ]


def test_syntax_error_names_line_and_column():
    parsed = parse_yaml(b"name: Anna\nemail: [a@b.de\n", "c.yaml")
    assert parsed.data is None
    assert messages(parsed) == [
        "c.yaml:3:1: error: invalid YAML: did not find expected ',' or ']' "
        "(while parsing a flow sequence at line 2)"
    ]


def test_object_constructing_tags_are_refused():
    parsed = parse_yaml(b"x: !!python/object/apply:os.system ['true']\n", "e.yaml")
    assert parsed.data is None
    assert messages(parsed) == [
        "e.yaml:1:4: error: unsupported tag 'tag:yaml.org,2002:python/object/apply:os.system'"
    ]


def test_billion_laughs_is_refused_quickly():
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ",".join(f"*{prev}" for _ in range(9)) + "]")
    parsed = parse_yaml("\n".join(lines).encode(), "bomb.yaml")
    assert parsed.data is None
    assert "alias bomb" in parsed.diagnostics[0].message


def test_small_aliases_and_merge_keys_work():
    text = b"base: &b {city: Weimar, country: DE}\naddr:\n  <<: *b\n  street: Markt 1\n"
    data = parse_yaml(text, "x").data
    assert data["addr"] == {"street": "Markt 1", "city": "Weimar", "country": "DE"}


def test_invalid_utf8_binary_and_bom():
    bad = parse_yaml(b"name: ok\nnote: caf\xe9\n", "c.yaml")
    assert messages(bad) == ["c.yaml:2:10: error: file is not valid UTF-8 (save it as UTF-8)"]
    binary = parse_yaml(b"\x89PNG\r\n\x1a\n\x00\x00", "img.yaml")
    assert messages(binary) == ["img.yaml:1:1: error: binary file, not YAML"]
    bom = parse_yaml("\ufeffname: Jürgen\n".encode(), "c.yaml")
    assert bom.data == {"name": "Jürgen"} and bom.diagnostics == []


def test_deep_nesting_is_a_diagnostic_not_a_crash():
    parsed = parse_yaml(b"a: " + b"[" * 200 + b"]" * 200 + b"\n", "deep.yaml")
    assert parsed.data is None
    assert "nesting" in parsed.diagnostics[0].message


def test_located_values_survive_pickling_for_the_cache():
    data = parse_yaml(b"x: 1\ny:\n  - z: 2\n", "f").data
    copy = pickle.loads(pickle.dumps(data))
    assert copy == data
    assert copy.marks == {"x": (1, 4), "y": (3, 3)}
    assert copy["y"].marks == [(3, 5)]
    assert copy["y"][0].marks == {"z": (3, 8)}


# --- the fast path for simple files agrees with the full parser ---------------------------

from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from crmkit.loading.yamlsource import _parse_simple, parse_text  # noqa: E402

KEYS = ["customer", "date", "type", "a_b", "x1", "true", "null", "y", "on", "No", "<<", "ü",
        "1", "key"]
VALUES = ["call", "Anna Meier", "", " ", "yes", "no", "on", "NO", "12", "-5", "+3", "1_000",
          "0x1F", "0o17", "1:30", "1.5", ".inf", "-.inf", ".nan", "1e3", "2026-02-30",
          "2026-11-01", "2026-11-01 10:30:00", "2026-11-01T10:30:00+01:00", "a # b", "a#b",
          "a: b", "a:", "a:b", "[a, b]", "[a,b]", "[ a , b ]", "[]", "[ ]", "[a, [b]]",
          "[a, b,]", "[1, 2.5, true]", "[Heizkörper entlüften]", "[a  b]", "'q'", '"q"',
          "it's", "x  y", "Grüße", "~", "Null", "NULL", "=", "=SUM(A1)", "<<", "- a", "-a",
          "? x", "&anchor", "*alias", "!tag x", "|", ">", "%x", "@x", "`x", "{a: 1}", "a\tb",
          "a\rb", "\ufeffx", "x\x85y", "x\u2028y", "caf\u00e9", "\U0001f600", "a,b", "1,5"]
LINE = st.one_of(
    st.builds(lambda k, sep, v, tail: f"{k}{sep}{v}{tail}", st.sampled_from(KEYS),
              st.sampled_from([": ", ":  ", ":", " : "]), st.sampled_from(VALUES),
              st.sampled_from(["", " ", "  # note"])),
    st.sampled_from(["", "# a comment", "  indented: 1", "---", "...", "- item", "  ",
                     "plain words", "key: |", "  text"]),
)


@settings(max_examples=400, deadline=None)
@given(st.lists(LINE, min_size=1, max_size=6), st.sampled_from(["\n", ""]))
def test_the_fast_path_for_simple_files_agrees_with_the_full_parser(lines, end):
    text = "\n".join(lines) + end
    simple = _parse_simple(text)
    if simple is None:
        return  # not simple: the full parser reads it
    full = parse_text(text, "x.yaml")
    assert full.diagnostics == []
    assert_same(simple, full.data)


def assert_same(a, b):
    assert type(a) is type(b)
    if isinstance(a, YamlMap):
        assert list(a) == list(b) and a.start == b.start
        assert a.marks == b.marks and a.key_marks == b.key_marks
        for key in a:
            assert_same(a[key], b[key])
    elif isinstance(a, YamlList):
        assert len(a) == len(b) and a.start == b.start and a.marks == b.marks
        for x, y in zip(a, b, strict=True):
            assert_same(x, y)
    else:
        assert repr(a) == repr(b)


def test_typical_record_files_take_the_fast_path():
    text = ("customer: c000471\ndate: 2023-11-13\ntype: purchase\namount: 181.16\n"
            "items: [Thermostatventil, Dichtung]\n# imported\nsummary: Rückfrage zum Termin\n")
    simple = _parse_simple(text)
    assert simple is not None
    assert_same(simple, parse_text(text, "x.yaml").data)
    assert simple["items"].marks == [(5, 9), (5, 27)]


def test_amounts_are_written_as_plain_numbers_that_read_back_the_same():
    """``import transactions`` wrote a whole amount as ``!!float '99'``."""
    from decimal import Decimal

    from crmkit.loading.yamlsource import dump_yaml
    data = {"a": Decimal("99"), "b": Decimal("49.90"), "c": Decimal("-50"),
            "d": Decimal("1E+3")}
    text = dump_yaml(data)
    assert text == "a: 99\nb: 49.90\nc: -50\nd: 1000\n"
    assert {k: Decimal(str(v)) for k, v in yaml.safe_load(text).items()} == data
