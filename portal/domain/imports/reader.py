"""A spreadsheet file as rows, read as a stream: the whole file is never in memory.

What people upload: UTF-8 with or without BOM, UTF-16 (Excel's "Unicode text"),
Windows-1252; comma, semicolon or tab; quoted fields holding delimiters and
newlines; CRLF or LF; a header row or none ("Column 1", …); blank lines and
trailing empty columns. The encoding is charset-normalizer's guess when the
bytes are neither marked nor UTF-8; the delimiter is csv.Sniffer's on a sample.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from charset_normalizer import from_bytes

from portal.domain.errors import DomainError
from portal.domain.imports.addresses import parse_cell

SAMPLE_BYTES = 64 * 1024
# Code pages of other scripts, and multi-byte encodings: a guess of these is kept.
_OTHER_SCRIPTS = (
    "cp1251",
    "cp1253",
    "cp1255",
    "cp1256",
    "cp866",
    "cp855",
    "koi8",
    "iso8859_5",
    "iso8859_6",
    "iso8859_7",
    "iso8859_8",
    "mac_cyrillic",
    "mac_greek",
    "big5",
    "gb",
    "hz",
    "shift_jis",
    "euc",
    "cp932",
    "cp949",
    "cp950",
    "iso2022",
    "utf",
    "tis",
    "cp874",
    "johab",
)
BOM_THEN = "bom+"  # an encoding named "bom+cp1252": a UTF-8 mark, then Windows-1252
SAMPLE_ROWS = 500
SHOWN_ROWS = 5
DELIMITERS = ",;\t"
SAVE_AS_CSV = (
    "This is not a CSV file: it looks like {what}. Open it in your spreadsheet program and "
    "save it as CSV (in Excel: File → Save As → CSV UTF-8), then upload that file."
)
_SIGNATURES = {
    b"PK\x03\x04": "an Excel workbook (.xlsx) or another zipped file",
    b"\xd0\xcf\x11\xe0": "an old Excel workbook (.xls)",
    b"%PDF": "a PDF document",
    b"\x89PNG": "an image",
    b"\xff\xd8\xff": "an image",
    b"GIF8": "an image",
    b"{\\rtf": "a Word document",
}
# Column names that say "the user's own address", and those that say "someone else's".
_USER_NAMES = re.compile(
    r"^(e-?mail|e-?mail address|primary e-?mail|work e-?mail|mail|email \[required\]|"
    r"email address \[required\]|user e-?mail|learner e-?mail|user_?email)$"
)
_LOGIN_NAMES = re.compile(r"(user ?principal ?name|^upn$|^login|^username|^user name|^sign-?in)")
# At the start of a word (camelCase lowered included): "mother" is not "other".
_OTHER_NAMES = re.compile(
    r"(?<![a-z])(manager|supervisor|recovery|secondary|alternate|proxy|alias|personal|other|parent|"
    r"emergency|backup|cc|forward|owner|sponsor|reports to|line manager)"
)

# An unclosed quote makes the rest of the file one field: let it, and let the
# row be reported, rather than fail with csv's field limit of 128 KB.
csv.field_size_limit(64 * 1024 * 1024)


class CsvRefused(DomainError):
    """The file cannot be imported; the message says why and what to do."""


@dataclass(frozen=True)
class Layout:
    encoding: str
    delimiter: str
    has_header: bool
    columns: tuple[str, ...]
    guess: int | None  # the column most like the users' own e-mail addresses
    first_rows: tuple[tuple[str, ...], ...]  # the first data rows, as shown


def detect_encoding(head: bytes) -> str:
    if head.startswith(codecs.BOM_UTF8):
        # Some tools put the UTF-8 mark before Windows-1252 text: believe the bytes.
        rest = _utf8_or_guess(head[3:])
        return "utf-8-sig" if rest == "utf-8" else BOM_THEN + rest
    for bom, name in (
        (codecs.BOM_UTF32_LE, "utf-32"),
        (codecs.BOM_UTF32_BE, "utf-32"),
        (codecs.BOM_UTF16_LE, "utf-16"),
        (codecs.BOM_UTF16_BE, "utf-16"),
    ):
        if head.startswith(bom):
            return name
    for signature, what in _SIGNATURES.items():
        if head.startswith(signature):
            raise CsvRefused(SAVE_AS_CSV.format(what=what))
    if b"\x00" in head:
        # UTF-16 without a BOM: every other byte of plain text is zero.
        even, odd = head[0::2], head[1::2]
        if odd and odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.1 * len(even):
            return "utf-16-le"
        if even and even.count(0) > 0.4 * len(even) and odd.count(0) < 0.1 * len(odd):
            return "utf-16-be"
        # Otherwise a NUL is dropped when read, here as anywhere later in the file:
        # whether the file is binary is the share of control characters (inspect).
        head = head.replace(b"\x00", b"")
    return _utf8_or_guess(head)


def _utf8_or_guess(head: bytes) -> str:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    best = from_bytes(head).best()
    if best is None:
        return "cp1252"
    # A few accented letters fit any Latin code page about as well (charset-normalizer
    # may say Baltic DOS for "Zoë"); Excel on Windows writes Windows-1252. So a guess
    # that is not a non-Latin script is read as Windows-1252 when the bytes allow it.
    if best.encoding.startswith(_OTHER_SCRIPTS):
        return best.encoding
    try:
        head.decode("cp1252")
        return "cp1252"
    except UnicodeDecodeError:
        return best.encoding


def _open_text(path: Path, encoding: str) -> io.TextIOWrapper:
    # newline="" leaves line ends to csv (quoted newlines, CRLF); undecodable bytes become U+FFFD.
    raw = open(path, "rb")  # noqa: SIM115 (the wrapper returned owns and closes it)
    if encoding.startswith(BOM_THEN):
        raw.seek(len(codecs.BOM_UTF8))
        encoding = encoding.removeprefix(BOM_THEN)
    return io.TextIOWrapper(raw, encoding=encoding, errors="replace", newline="")


def _split_records(text: str, delimiter: str) -> tuple[int, int]:
    """(records that `delimiter` splits into two cells or more, non-blank records)."""
    split = total = 0
    try:
        for cells in csv.reader(io.StringIO(text.replace("\x00", "")), delimiter=delimiter, strict=False):
            if any(cell.strip() for cell in cells):
                total += 1
                split += len(cells) > 1
    except csv.Error:
        pass
    return split, total


def _sniff_delimiter(sample: str) -> str:
    """The sniffed delimiter when it splits most records; otherwise the file is
    one column (a cell that merely starts with a tab or holds a comma does not
    make it two), read with the delimiter that splits the fewest records."""
    cut = max(sample.rfind("\n"), 0) or len(sample)
    text = sample[:cut]
    splits = {d: _split_records(text, d) for d in DELIMITERS}
    try:
        sniffed = csv.Sniffer().sniff(text, delimiters=DELIMITERS).delimiter
    except csv.Error:
        sniffed = max(DELIMITERS, key=lambda d: splits[d][0])
    splitting = [d for d in DELIMITERS if splits[d][0] and 2 * splits[d][0] >= splits[d][1]]
    if sniffed in splitting:
        return sniffed
    if splitting:
        return max(splitting, key=lambda d: splits[d][0])
    return min(DELIMITERS, key=lambda d: splits[d][0])  # ties: ",", the first


def _without_nul(stream: io.TextIOWrapper) -> Iterator[str]:
    for line in stream:
        yield line.replace("\x00", "") if "\x00" in line else line


def _trimmed(cells: list[str]) -> list[str]:
    end = len(cells)
    while end and not cells[end - 1].strip():
        end -= 1
    return cells[:end]


def _records(path: Path, encoding: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(first line of the record, its cells) for every non-blank record."""
    with _open_text(path, encoding) as stream:
        reader = csv.reader(_without_nul(stream), delimiter=delimiter, quotechar='"', doublequote=True, strict=False)
        line = 1
        while True:
            try:
                cells = next(reader)
            except StopIteration:
                return
            except csv.Error as exc:  # what strict=False still refuses
                raise CsvRefused(
                    f"Line {line} of the file cannot be read as CSV ({exc}). Nothing was imported."
                ) from None
            start, line = line, reader.line_num + 1
            cells = _trimmed(cells)
            if cells:
                yield start, cells


def _looks_like_header(cells: list[str]) -> bool:
    return not any("@" in cell for cell in cells)


def _name_score(name: str) -> float:
    name = name.strip().lower()
    if _OTHER_NAMES.search(name):
        return -1.0
    if _USER_NAMES.match(name):
        return 1.0
    if _LOGIN_NAMES.search(name):
        return 0.6
    if "mail" in name:
        return 0.4
    return 0.0


def _guess(columns: tuple[str, ...], rows: list[list[str]], named: bool) -> int | None:
    best, best_score = None, 0.0
    for index, column in enumerate(columns):
        cells = [row[index] for row in rows if index < len(row) and row[index].strip()]
        if not cells:
            continue
        parsed = [parse_cell(cell) for cell in cells]
        found = sum(1 for address, _, _ in parsed if address)
        if not found:
            continue
        lists = sum(1 for _, _, is_list in parsed if is_list)
        score = found / len(cells) - lists / len(cells) + (_name_score(column) if named else 0.0)
        if best is None or score > best_score:
            best, best_score = index, score
    return best


def _guess_format(path: Path) -> tuple[str, str]:
    """(encoding, delimiter) from the file's first SAMPLE_BYTES; refuses an empty or binary file."""
    with open(path, "rb") as f:
        head = f.read(SAMPLE_BYTES)
    if not head.strip():
        raise CsvRefused("The file is empty. Choose a CSV file with a column of e-mail addresses.")
    encoding = detect_encoding(head)
    with _open_text(path, encoding) as stream:
        sample = stream.read(SAMPLE_BYTES)
    control = sum(1 for ch in sample if ord(ch) < 32 and ch not in "\t\r\n")
    if control > 0.05 * max(len(sample), 1):
        raise CsvRefused(SAVE_AS_CSV.format(what="a binary file"))
    return encoding, _sniff_delimiter(sample)


def inspect(path: Path, known: tuple[str, str] | None = None) -> Layout:
    """Encoding, delimiter, header, column names and the guessed e-mail column,
    from the first SAMPLE_ROWS records; refuses what cannot be imported. With
    `known` (encoding, delimiter), a file inspected before is not guessed at again."""
    encoding, delimiter = known or _guess_format(path)
    records: list[list[str]] = []
    for _, cells in _records(path, encoding, delimiter):
        records.append(cells)
        if len(records) > SAMPLE_ROWS:
            break
    if not records:
        raise CsvRefused("The file has no rows. Choose a CSV file with a column of e-mail addresses.")
    has_header = _looks_like_header(records[0])
    data = records[1:] if has_header else records
    width = max(len(r) for r in records)
    header = records[0] if has_header else []
    columns = tuple(
        (header[i].strip() if i < len(header) and header[i].strip() else f"Column {i + 1}")[:100] for i in range(width)
    )
    guess = _guess(columns, data, named=has_header)
    if guess is None:
        raise CsvRefused(
            "No column of this file holds e-mail addresses. "
            "Upload a file with a column of your users' e-mail addresses."
        )
    shown = tuple(tuple(row[i] if i < len(row) else "" for i in range(width)) for row in data[:SHOWN_ROWS])
    return Layout(encoding, delimiter, has_header, columns, guess, shown)


def rows(path: Path, encoding: str, delimiter: str, has_header: bool) -> Iterator[tuple[int, list[str]]]:
    """Every non-blank data row, as (line, cells), one at a time."""
    records = _records(path, encoding, delimiter)
    if has_header:
        next(records, None)
    yield from records
