"""``sources.read_rows``: CSV, JSON Lines and JSON arrays, by suffix or named; the unknown-column finder."""

from __future__ import annotations

from pathlib import Path

import pytest

from ctct_partner_async import BadRow
from ctct_partner_async._rows import NEW_ACCOUNT_FIELDS, PLAN_CHANGE_FIELDS, unknown_fields
from ctct_partner_async.sources import format_for, read_rows, sniff_format


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_a_json_file_may_hold_an_array_of_row_objects(tmp_path: Path) -> None:
    """A .json array gives one row per object; an item that is not an object is that item's BadRow."""
    source = write(tmp_path / "rows.json", '[\n  {"login_name": "a"},\n  {"login_name": "b"},\n  7\n]\n')
    assert list(read_rows(source)) == [
        {"login_name": "a"},
        {"login_name": "b"},
        BadRow("item 3 of the array: not a JSON object"),
    ]


def test_a_json_file_with_one_object_or_one_object_per_line(tmp_path: Path) -> None:
    """A .json file holding one (pretty-printed) object is one row; one object per line reads as JSON Lines."""
    one = write(tmp_path / "one.json", '{\n  "login_name": "a",\n  "country_code": "US"\n}\n')
    assert list(read_rows(one)) == [{"login_name": "a", "country_code": "US"}]
    lines = write(tmp_path / "lines.json", '{"login_name": "a"}\n{"login_name": "b"}\nnot json\n')
    assert list(read_rows(lines)) == [
        {"login_name": "a"},
        {"login_name": "b"},
        BadRow("line 3: not valid JSON"),
    ]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('"just text"', "not a string"),
        ("42", "not a number"),
        ("null", "not null"),
        ("[1, 2", "not valid JSON"),
    ],
)
def test_a_json_file_that_is_no_array_of_objects_is_an_error_naming_the_file(
    tmp_path: Path, text: str, message: str
) -> None:
    """A JSON document holding neither an array nor an object, or invalid JSON, is a ValueError naming the file."""
    source = write(tmp_path / "rows.json", text)
    with pytest.raises(ValueError, match=message) as caught:
        list(read_rows(source))
    assert str(source) in str(caught.value)


def test_the_format_can_be_named_whatever_the_suffix(tmp_path: Path) -> None:
    """file_format overrides the suffix; an unknown suffix without one, or an unknown format, is a ValueError."""
    source = write(tmp_path / "rows.txt", "login_name,country_code\na,US\n")
    assert list(read_rows(source, file_format="csv")) == [{"login_name": "a", "country_code": "US"}]
    with pytest.raises(ValueError, match="unknown file type"):
        read_rows(source)
    with pytest.raises(ValueError, match="unknown format"):
        read_rows(source, file_format="xml")
    assert [format_for(n) for n in ("a.CSV", "a.jsonl", "a.ndjson", "a.json")] == [
        "csv",
        "jsonl",
        "jsonl",
        "json",
    ]


def test_sniffing_stdin_by_its_first_bytes() -> None:
    """[ is a JSON array, { is JSON Lines, anything else CSV; a BOM and leading blanks don't count."""
    assert sniff_format(b'\xef\xbb\xbf  \n[{"a": 1}]') == "json"
    assert sniff_format(b'\n{"a": 1}\n') == "jsonl"
    assert sniff_format(b"login_name,country_code\n") == "csv"
    assert sniff_format(b"") == "csv"


def test_empty_and_header_only_files_have_no_rows(tmp_path: Path) -> None:
    """An empty file of each format, a CSV with only a header, and an empty JSON array give no rows."""
    for name, text in [("a.csv", ""), ("b.csv", "\n\nlogin_name,country_code\n\n"), ("c.jsonl", "\n \n"),
                       ("d.json", ""), ("e.json", " [ ] ")]:  # fmt: skip
        assert list(read_rows(write(tmp_path / name, text))) == []


def test_a_csv_header_naming_a_column_twice_is_an_error(tmp_path: Path) -> None:
    """Two columns of one name would silently lose one of them: a ValueError naming the file and column."""
    source = write(tmp_path / "a.csv", "login_name,country_code,login_name\na,US,b\n")
    with pytest.raises(ValueError, match="'login_name' more than once"):
        list(read_rows(source))


def test_a_byte_order_mark_is_not_part_of_the_first_column_or_object(tmp_path: Path) -> None:
    """A UTF-8 BOM (as spreadsheet exports write it) is skipped in CSV, JSON Lines and JSON alike."""
    for name, text in [("a.csv", "login_name\nx\n"), ("a.jsonl", '{"login_name": "x"}\n'),
                       ("a.json", '[{"login_name": "x"}]')]:  # fmt: skip
        source = tmp_path / name
        source.write_bytes(b"\xef\xbb\xbf" + text.encode())
        assert list(read_rows(source)) == [{"login_name": "x"}]


def test_unknown_fields_are_found_with_the_field_they_probably_meant() -> None:
    """Each unknown column once, in order, with the closest known field or None."""
    found = unknown_fields(
        ["login_name", "organisation_name", "contact_emial", "notes", "organisation_name", "Login_Name"],
        NEW_ACCOUNT_FIELDS,
    )
    assert found == {
        "organisation_name": "organization_name",
        "contact_emial": "contact_email",
        "notes": None,
        "Login_Name": "login_name",
    }
    assert unknown_fields(["plan_typ", "encoded_account_id"], PLAN_CHANGE_FIELDS) == {"plan_typ": "plan_type"}
