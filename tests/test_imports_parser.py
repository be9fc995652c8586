"""The CSV reader on files as people have them: exports shaped like Microsoft
365 / Entra ID, Google Workspace and a training platform (tests/fixtures/csv/),
and hypothesis-generated files (encodings, delimiters, quoting, line ends,
blank lines, junk): never an error but a clear refusal, and every row read."""

from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.domain.imports import reader
from portal.domain.imports.addresses import parse_cell
from portal.domain.imports.export import csv_text, safe_cell
from portal.domain.imports.reader import CsvRefused

FIXTURES = Path(__file__).parent / "fixtures" / "csv"
ENCODINGS = ["utf-8", "utf-8-sig", "utf-16", "cp1252"]
# Per property; PORTAL_FUZZ_EXAMPLES=500 digs deeper, off CI.
EXAMPLES = int(os.environ.get("PORTAL_FUZZ_EXAMPLES", "60"))


def addresses(path: Path) -> list[str | None]:
    layout = reader.inspect(path)
    return [
        parse_cell(cells[layout.guess] if layout.guess < len(cells) else "")[0]
        for _, cells in reader.rows(path, layout.encoding, layout.delimiter, layout.has_header)
    ]


@pytest.mark.parametrize(
    ("name", "column", "delimiter", "found"),
    [
        # The user principal name, not the proxy-address list next to it.
        (
            "m365_active_users.csv",
            "User principal name",
            ",",
            ["e0@north.example", "e1@north.example", "a0@north.example", "room101@north.example"],
        ),
        # `mail`, not the guest's #EXT# principal name nor the alternate address.
        ("entra_users.csv", "mail", ",", ["e0@north.example", "e1@north.example", "e2@north.example"]),
        # The user's address, not the manager's nor the recovery address.
        (
            "google_workspace_users.csv",
            "Email Address [Required]",
            ",",
            ["e0@north.example", "e3@north.example", "zoe.unal@north.example"],
        ),
        # Semicolons, a UTF-8 mark before Windows-1252, `Name <address>`, a quoted ";", a row of empty cells.
        (
            "training_platform_export.csv",
            "Learner email",
            ";",
            ["zoe.adams@north.example", "e0@north.example", "e0@north.example", "rene.cote@north.example"],
        ),
        ("excel_unicode_text.txt", "E-mail", "\t", ["e0@north.example", "e1@north.example"]),
        (
            "plain_list_no_header.csv",
            "Column 1",
            ",",
            ["e0@north.example", "e1@north.example", "e2@north.example", None],
        ),
    ],
)
def test_exports_as_people_have_them(name, column, delimiter, found):
    path = FIXTURES / name
    layout = reader.inspect(path)
    assert layout.columns[layout.guess] == column and layout.delimiter == delimiter
    assert addresses(path) == found


def test_names_survive_windows_1252_after_a_utf8_mark():
    layout = reader.inspect(FIXTURES / "training_platform_export.csv")
    assert layout.first_rows[0][0] == "Zoë Adams" and layout.first_rows[0][3] == "Phishing; spot the signs"


def test_cells_that_start_a_formula_are_neutralised():
    for dangerous in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx"):
        assert safe_cell(dangerous) == "'" + dangerous
    assert safe_cell("a=b") == "a=b"
    assert csv_text([("=cmd|' /C calc'!A0", "ok")]) == "'=cmd|' /C calc'!A0,ok\r\n"


cells = st.one_of(
    st.emails().map(lambda e: e.upper() if len(e) % 3 == 0 else e),
    st.emails().map(lambda e: f" Someone <{e}> "),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=20),
    st.sampled_from(["", " ", '"', '""', ";", ",", "\t", "\n", "\r\n", "smtp:", "@", "a@b", "x,y;z"]),
)


@st.composite
def spreadsheets(draw):
    width = draw(st.integers(1, 5))
    rows = draw(st.lists(st.lists(cells, min_size=width, max_size=width), min_size=1, max_size=25))
    delimiter = draw(st.sampled_from(list(reader.DELIMITERS)))
    encoding = draw(st.sampled_from(ENCODINGS))
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter, lineterminator=draw(st.sampled_from(["\r\n", "\n"]))).writerows(rows)
    text = out.getvalue() + ("\n\n" if draw(st.booleans()) else "")
    return rows, text.encode(encoding, errors="replace")


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(file=spreadsheets())
def test_generated_files_are_read_or_refused_never_an_error(tmp_path_factory, file):
    rows, data = file
    path = tmp_path_factory.mktemp("gen") / "f.csv"
    path.write_bytes(data)
    try:
        layout = reader.inspect(path)
        read = list(reader.rows(path, layout.encoding, layout.delimiter, layout.has_header))
    except CsvRefused as refused:
        assert str(refused)
        return
    assert all(cells for _, cells in read)  # only blank records are skipped
    lines = [line for line, _ in read]
    assert lines == sorted(set(lines))
    # A lone CR in a cell that csv.writer left unquoted is a line end (old Mac files): rows may split, never vanish.
    assert layout.guess is not None and sum(len(c) for _, c in read) >= 1


@settings(max_examples=EXAMPLES, deadline=None)
@given(
    rows=st.lists(st.lists(st.emails(), min_size=2, max_size=2), min_size=1, max_size=30),
    delimiter=st.sampled_from(list(reader.DELIMITERS)),
    encoding=st.sampled_from(ENCODINGS),
    header=st.booleans(),
)
def test_every_address_of_a_clean_file_is_read(tmp_path_factory, rows, delimiter, encoding, header):
    out = io.StringIO()
    writer = csv.writer(out, delimiter=delimiter)
    if header:
        writer.writerow(["Email", "Manager email"])
    writer.writerows(rows)
    path = tmp_path_factory.mktemp("clean") / "f.csv"
    path.write_bytes(out.getvalue().encode(encoding))
    layout = reader.inspect(path)
    assert layout.has_header == header
    read = list(reader.rows(path, layout.encoding, layout.delimiter, layout.has_header))
    assert len(read) == len(rows)
    if header:
        assert layout.guess == 0
    assert [parse_cell(cells[0])[0] for _, cells in read] == [parse_cell(r[0])[0] for r in rows]


@settings(max_examples=EXAMPLES, deadline=None)
@given(junk=st.binary(max_size=3000))
def test_junk_bytes_are_refused_or_read(tmp_path_factory, junk):
    path = tmp_path_factory.mktemp("junk") / "f.csv"
    path.write_bytes(junk)
    try:
        layout = reader.inspect(path)
        list(reader.rows(path, layout.encoding, layout.delimiter, layout.has_header))
    except CsvRefused as refused:
        assert str(refused)


@pytest.mark.parametrize(
    "head", [b"PK\x03\x04rest", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", b"%PDF-1.7", b"\x00\x01\x02\x03" * 20]
)
def test_binary_files_are_refused_with_save_as_csv(tmp_path, head):
    path = tmp_path / "f.csv"
    path.write_bytes(head)
    with pytest.raises(CsvRefused, match="save it as CSV"):
        reader.inspect(path)


def test_utf16_without_a_mark_is_read(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes("Email\tName\r\ne0@north.example\tEve\r\n".encode("utf-16-le"))
    assert addresses(path) == ["e0@north.example"]


def test_a_nul_byte_is_dropped_wherever_it_is(tmp_path):
    """A stray NUL (some exports pad with them) does not make a text file binary,
    whether it is in the first 64 KB or after: the row is read without it."""
    filler = "".join(f"f{i}@north.example\n" for i in range(reader.SAMPLE_BYTES // 18 + 100))
    assert len(filler) > reader.SAMPLE_BYTES
    early, late = tmp_path / "early.csv", tmp_path / "late.csv"
    early.write_bytes(("Email\ne0@north.example\x00\n" + filler).encode())
    late.write_bytes(("Email\n" + filler + "e0@north.example\x00\n").encode())
    assert "e0@north.example" in addresses(early)
    assert "e0@north.example" in addresses(late)
    assert sorted(a for a in addresses(early) if a) == sorted(a for a in addresses(late) if a)


def test_mostly_nul_bytes_is_still_binary(tmp_path):
    path = tmp_path / "f.csv"
    path.write_bytes(b"Email\ne0@north.example\n" + b"\x00\x07\x00\x00" * 400)
    with pytest.raises(CsvRefused, match="save it as CSV"):
        reader.inspect(path)


@pytest.mark.parametrize("header", ["Email\n", ""])
def test_one_cell_starting_with_a_tab_leaves_a_one_column_file_one_column(tmp_path, header):
    path = tmp_path / "f.csv"
    path.write_text(header + "e0@north.example\n\te1@north.example\ne2@north.example\ne3@north.example\n")
    assert reader.inspect(path).delimiter != "\t"
    assert addresses(path) == ["e0@north.example", "e1@north.example", "e2@north.example", "e3@north.example"]


def test_a_tab_separated_file_stays_tab_separated(tmp_path):
    path = tmp_path / "f.tsv"
    path.write_text("Name\tEmail\nEve\te0@north.example\n\te1@north.example\nAnn\te2@north.example\n")
    layout = reader.inspect(path)
    assert layout.delimiter == "\t" and layout.guess == 1
    assert addresses(path) == ["e0@north.example", "e1@north.example", "e2@north.example"]


def test_formulas_behind_leading_whitespace_are_neutralised():
    for dangerous in (" =1+1", "  +1", " -1", "\u00a0@SUM(A1)", "\n=1+1", " \t=HYPERLINK(x)"):
        assert safe_cell(dangerous) == "'" + dangerous
    for harmless in (" a=b", "  plain", " 1"):
        assert safe_cell(harmless) == harmless


def test_a_file_inspected_again_with_what_was_found_shows_the_same_layout(tmp_path):
    """The preview page reads the first rows again with the stored encoding and
    delimiter rather than guessing them a second time."""
    path = tmp_path / "excel.csv"
    path.write_bytes(b"\xef\xbb\xbfName;E-mail\r\nZo\xeb;zoe@north.example\r\nAnn;ann@north.example\r\n")
    guessed = reader.inspect(path)
    assert guessed.encoding == "bom+cp1252" and guessed.delimiter == ";"
    assert reader.inspect(path, known=(guessed.encoding, guessed.delimiter)) == guessed
    assert guessed.first_rows[0] == ("Zoë", "zoe@north.example")
