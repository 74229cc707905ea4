"""Data files read as tables: CSV, TSV, JSON, JSON lines and Parquet.

Files are read with pandas / pyarrow under our own checks, so that every failure a user can cause
becomes a DataError with a next step instead of a parser traceback. What was repaired on the way
(encoding, missing header, separator, torn last JSONL line) is recorded in
`frame.attrs["read_report"]` and ends up in the curation lineage.

Decisions:
- Repaired: non-UTF-8 text (decoded as Windows-1252 / Latin-1), UTF-16 exports (Excel "Unicode
  text"), a UTF-8 byte-order mark, a CSV/TSV without a header row when the first row is clearly data
  (its label cell is a number or repeats a later label, or its text cell is a sentence), a CSV that
  is really tab- or semicolon-separated, a .json file that holds JSON lines, `{"data": [...]}`
  wrappers, and a torn (incomplete) LAST line of a JSONL file, which is skipped with a warning.
- Refused: empty files, header-only files, binary files (Excel workbooks, zip archives, images),
  rows with more fields than the header, quotes that never close, invalid JSON, invalid JSONL lines
  anywhere but the last line (reported with their line number), and broken Parquet files.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
from pathlib import Path
from typing import Any

import pandas as pd

from core.data.cells import INT_LIKE
from core.errors import DataError

SUPPORTED_SUFFIXES = (".csv", ".tsv", ".json", ".jsonl", ".ndjson", ".parquet")
_FORMATS = {
    ".csv": "csv",
    ".tsv": "tsv",
    ".json": "json",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".parquet": "parquet",
}
_SEPARATORS = {"csv": ",", "tsv": "\t"}
# Magic numbers of formats people upload by mistake, with the fix to suggest.
_BINARY_SIGNATURES = (
    (b"PK\x03\x04", "an Excel workbook or a zip archive: save it as CSV (File > Save as > CSV UTF-8)"),
    (b"\xd0\xcf\x11\xe0", "an old Excel (.xls) workbook: save it as CSV (File > Save as > CSV UTF-8)"),
    (b"PAR1", "a Parquet file: give it the .parquet extension"),
    (b"\x1f\x8b", "gzip-compressed: unpack it first"),
    (b"%PDF", "a PDF document, not a table"),
    (b"\x89PNG", "a PNG image, not a table"),
)
_INT_LIKE = re.compile(INT_LIKE)
# Files are read whole (pandas needs several times their size in RAM); uploads are capped lower, by
# server.maxUploadSize in .streamlit/config.toml.
DEFAULT_MAX_FILE_MB = 2048


def max_file_bytes() -> int:
    """Largest data file read into memory: $TUNEBOARD_MAX_FILE_MB (default 2048 MB)."""
    try:
        megabytes = float(os.environ.get("TUNEBOARD_MAX_FILE_MB", "") or DEFAULT_MAX_FILE_MB)
    except ValueError:
        megabytes = DEFAULT_MAX_FILE_MB
    return int(max(megabytes, 0.001) * 2**20)


def _format_of(path: Path) -> str:
    suffix = path.suffix.lower()
    if suffix not in _FORMATS:
        raise DataError(
            f"{path.name} has the extension '{suffix or '(none)'}', which Tuneboard cannot read: "
            f"use one of {', '.join(SUPPORTED_SUFFIXES)}.",
            field="data.path",
        )
    return _FORMATS[suffix]


def read_table(path: str | Path, *, max_rows: int | None = None) -> pd.DataFrame:
    """Read a CSV/TSV/JSON/JSONL/Parquet file into a DataFrame, repairing what is decidable."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"Data file {path} does not exist: check the path or upload the file again.", field="data.path")
    if path.is_dir():
        raise DataError(f"{path} is a folder: choose a data file inside it.", field="data.path")
    if not path.resolve().is_file():
        # A FIFO, socket or device would block or never end: read_bytes() must only see regular files.
        raise DataError(f"{path} is not a regular file: point data.path at a data file.", field="data.path")
    fmt = _format_of(path)
    try:
        size = path.stat().st_size
        limit = max_file_bytes()
        if size > limit:
            raise DataError(
                f"{path.name} is {size / 2**20:.1f} MB, more than Tuneboard reads at once "
                f"({limit / 2**20:.0f} MB): split or sample it, or raise TUNEBOARD_MAX_FILE_MB.",
                field="data.path",
            )
        raw = path.read_bytes() if fmt != "parquet" else b""
    except OSError as err:
        raise DataError(f"Cannot read {path.name}: {err.strerror or err}. Check its permissions.", field="data.path") from None
    if size == 0:
        raise DataError(f"{path.name} is empty (0 bytes): export the data again.", field="data.path")
    report: dict[str, Any] = {"path": str(path), "format": fmt, "encoding": None, "repairs": [], "warnings": []}

    if fmt == "parquet":
        frame = _read_parquet(path, max_rows)
    else:
        text = _decode(raw, path.name, report)
        if not text.strip():
            raise DataError(f"{path.name} holds only blank space: export the data again.", field="data.path")
        if fmt in ("csv", "tsv"):
            frame = _read_delimited(text, fmt, path.name, max_rows, report)
        elif fmt == "json":
            frame = _read_json(text, path.name, max_rows, report)
        else:
            frame = _read_jsonl(text, path.name, max_rows, report)

    frame = _tidy_columns(frame, path.name, report)
    if len(frame.columns) == 0:
        raise DataError(f"{path.name} has no columns: export the data again with a header row.", field="data.path")
    if len(frame) == 0:
        cols = ", ".join(map(str, frame.columns))
        raise DataError(f"{path.name} has a header ({cols}) but no data rows: export the rows too.", field="data.path")
    if max_rows is not None:
        frame = frame.head(max_rows)
    frame.attrs["read_report"] = report
    return frame


# ---- text decoding --------------------------------------------------------------------------

def _decode(raw: bytes, name: str, report: dict[str, Any]) -> str:
    """Decode bytes as UTF-8, else UTF-16 (by BOM), else Windows-1252 / Latin-1; refuse binaries."""
    if raw[:2] in (b"\xff\xfe", b"\xfe\xff"):
        try:
            text = raw.decode("utf-16")
        except UnicodeDecodeError:
            raise DataError(f"{name} claims to be UTF-16 but cannot be decoded: save it as CSV UTF-8.") from None
        report["encoding"] = "utf-16"
        report["repairs"].append("decoded as UTF-16 (an Excel 'Unicode text' export)")
        return text
    for signature, what in _BINARY_SIGNATURES:
        if raw.startswith(signature):
            raise DataError(f"{name} is not a text table; it looks like {what}.", field="data.path")
    head = raw[:8192]
    # Text files have no NUL bytes and few control characters; binaries have many.
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    if b"\x00" in head or controls > len(head) * 0.05:
        raise DataError(
            f"{name} looks like a binary file, not text: export it as CSV, TSV, JSON, JSONL or Parquet.",
            field="data.path",
        )
    try:
        text = raw.decode("utf-8-sig")
        report["encoding"] = "utf-8"
        if raw.startswith(b"\xef\xbb\xbf"):
            report["repairs"].append("removed a UTF-8 byte-order mark")
        return text
    except UnicodeDecodeError:
        pass
    # Windows-1252 is what spreadsheet exports on Windows use; Latin-1 decodes any byte as a fallback.
    for encoding, label in (("cp1252", "Windows-1252"), ("latin-1", "Latin-1")):
        try:
            text = raw.decode(encoding)
        except UnicodeDecodeError:
            continue
        report["encoding"] = encoding
        report["repairs"].append(f"the file is not UTF-8: decoded it as {label} (accents may need checking)")
        return text
    raise DataError(f"{name} has an unknown text encoding: save it as UTF-8.")  # unreachable: latin-1 decodes all


# ---- delimited files ------------------------------------------------------------------------

def _pick_separator(text: str, fmt: str, report: dict[str, Any]) -> str:
    """The expected separator, unless the first lines clearly use another one."""
    expected = _SEPARATORS[fmt]
    lines = [line for line in _first_lines(text, 20) if line.strip()]
    if not lines or expected in lines[0]:
        return expected
    for candidate, label in (("\t", "tabs"), (",", "commas"), (";", "semicolons"), ("|", "pipes")):
        if candidate != expected and all(candidate in line for line in lines):
            report["repairs"].append(f"the file is separated by {label}, not by '{expected}': read it that way")
            return candidate
    return expected


def _first_lines(text: str, count: int) -> list[str]:
    """text.splitlines()[:count], without splitting a whole file of a million lines to look at its first few."""
    size = 1 << 16
    while True:
        lines = text[:size].splitlines()
        # One line more than asked for proves the first `count` are whole (the last one may be cut).
        if size >= len(text) or len(lines) > count:
            return lines[:count]
        size *= 4


def _read_csv(text: str, sep: str, name: str, header: int | None, max_rows: int | None) -> pd.DataFrame:
    """pandas.read_csv with everything as text, its parser errors turned into DataErrors."""
    try:
        frame = pd.read_csv(
            io.StringIO(text),
            sep=sep,
            header=header,
            dtype=str,
            keep_default_na=False,  # "nan", "None", "" stay as written; curation decides what is null
            na_filter=False,
            nrows=max_rows,
            skip_blank_lines=True,
            engine="c",
        )
    except pd.errors.EmptyDataError:
        raise DataError(f"{name} has no rows or columns: export the data again.", field="data.path") from None
    except pd.errors.ParserError as err:
        raise DataError(_explain_parser_error(str(err), name, sep), field="data.path") from None
    except (ValueError, csv.Error) as err:
        raise DataError(f"{name} could not be parsed as a table ({err}): check its format.", field="data.path") from None
    if not isinstance(frame.index, pd.RangeIndex):
        # When the first data row has one field more than the header, pandas silently turns the first
        # column into the index and shifts every value one column to the left.
        sep_name = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(sep, repr(sep))
        raise DataError(
            f"{name}: the first data row has more fields than the header ({len(frame.columns)}). A text "
            f"probably contains a {sep_name} without quotes, or each line ends with an extra {sep_name}: "
            f"put that text in double quotes, or remove the extra {sep_name}.",
            field="data.path",
        )
    return frame


def _explain_parser_error(message: str, name: str, sep: str) -> str:
    """Turn pandas' C-parser messages into a sentence a user can act on."""
    sep_name = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}.get(sep, repr(sep))
    fields = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", message)
    if fields:
        expected, line, saw = fields.groups()
        return (
            f"{name}: line {line} has {saw} fields where the header has {expected}. A text probably "
            f"contains a {sep_name} without quotes: put that text in double quotes, or remove the extra {sep_name}."
        )
    eof = re.search(r"EOF inside string starting (?:at|on) (?:row|line) (\d+)", message)
    if eof:
        return (
            f"{name}: a double quote opened on line {int(eof.group(1)) + 1} is never closed (broken quoting). "
            'Close the quote, or double the quote characters inside texts ("").'
        )
    return f"{name} could not be parsed ({message.strip()}): check the separator and the quoting."


def _looks_headerless(frame: pd.DataFrame) -> bool:
    """True when the 'header' pandas found is really the first data row (1 or 2 columns only)."""
    columns = [str(c) for c in frame.columns]
    if len(columns) not in (1, 2) or len(frame) == 0:
        return False
    first = columns[0]
    if _INT_LIKE.match(first.strip()):
        return False  # "0, 1": a frame saved with its default column numbers; keep that header
    # A column name is a word or two; a sentence in the header row is a review.
    sentence = len(first.split()) >= 4
    if len(columns) == 1:
        return sentence
    label_head = columns[1].strip()
    labels = frame.iloc[:, 1].astype(str).str.strip()
    numeric_head = bool(_INT_LIKE.match(label_head))
    numeric_rest = labels.str.match(_INT_LIKE).mean() >= 0.9
    repeats = label_head != "" and bool(labels.eq(label_head).any())
    return (numeric_head and numeric_rest) or repeats or (sentence and not label_head.isidentifier())


def _read_delimited(text: str, fmt: str, name: str, max_rows: int | None, report: dict[str, Any]) -> pd.DataFrame:
    sep = _pick_separator(text, fmt, report)
    frame = _read_csv(text, sep, name, 0, max_rows)
    if _looks_headerless(frame):
        frame = _read_csv(text, sep, name, None, max_rows)
        names = ["text", "label"][: len(frame.columns)]
        frame.columns = names
        report["repairs"].append(f"the first row is data, not a header: named the columns {', '.join(names)}")
    return frame


# ---- JSON and JSON lines --------------------------------------------------------------------

def _records_frame(records: list[Any], name: str, where: str) -> pd.DataFrame:
    bad = next((i for i, r in enumerate(records) if not isinstance(r, dict)), None)
    if bad is not None:
        raise DataError(
            f"{name}: {where} {bad + 1} is {type(records[bad]).__name__}, not an object like "
            '{"text": "...", "label": 1}: every row must be an object with named fields.',
            field="data.path",
        )
    return pd.DataFrame.from_records(records)


def _read_json(text: str, name: str, max_rows: int | None, report: dict[str, Any]) -> pd.DataFrame:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        if err.msg == "Extra data":
            # Several JSON values one after another: it is a JSON-lines file with a .json name.
            report["repairs"].append("the file holds one JSON object per line (JSON lines): read it that way")
            return _read_jsonl(text, name, max_rows, report)
        raise DataError(
            f"{name} is not valid JSON: {err.msg} at line {err.lineno}, column {err.colno}. Fix the file there.",
            field="data.path",
        ) from None
    if isinstance(data, dict):
        lists = {k: v for k, v in data.items() if isinstance(v, list)}
        if len(lists) == 1 and len(data) == 1 and all(isinstance(r, dict) for r in next(iter(lists.values()))):
            key = next(iter(lists))
            report["repairs"].append(f"used the records under the key {key!r}")
            data = lists[key]
        elif data and len(lists) == len(data) and len({len(v) for v in lists.values()}) == 1:
            return pd.DataFrame(data)  # column-oriented: {"text": [...], "label": [...]}
        else:
            raise DataError(
                f"{name} holds a JSON object, not a table: use a list of rows like "
                '[{"text": "...", "label": 1}] or columns like {"text": [...], "label": [...]}.',
                field="data.path",
            )
    if not isinstance(data, list):
        raise DataError(f"{name} holds a single JSON value, not a list of rows.", field="data.path")
    if max_rows is not None:
        data = data[:max_rows]
    return _records_frame(data, name, "row")


def _read_jsonl(text: str, name: str, max_rows: int | None, report: dict[str, Any]) -> pd.DataFrame:
    lines = text.splitlines()
    last = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    records: list[Any] = []
    for i, line in enumerate(lines):
        if max_rows is not None and len(records) >= max_rows:
            break
        if not line.strip():
            continue
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError as err:
            if i == last and records:
                # A writer killed mid-line leaves a torn last line; everything before it is intact.
                report["warnings"].append(f"line {i + 1} is incomplete (a torn write?) and was skipped")
                break
            raise DataError(
                f"{name}: line {i + 1} is not valid JSON ({err.msg}, column {err.colno}). Fix or delete that line.",
                field="data.path",
            ) from None
    if not records:
        raise DataError(f"{name} has no JSON rows: export the data again.", field="data.path")
    return _records_frame(records, name, "line")


# ---- Parquet --------------------------------------------------------------------------------

def _read_parquet(path: Path, max_rows: int | None) -> pd.DataFrame:
    import pyarrow as pa
    import pyarrow.parquet as pq

    with open(path, "rb") as handle:
        head = handle.read(4)
        handle.seek(max(path.stat().st_size - 4, 0), os.SEEK_SET)
        tail = handle.read(4)
    # A Parquet file starts and ends with PAR1; anything shorter than both markers is not one.
    if head != b"PAR1" or tail != b"PAR1" or path.stat().st_size < 12:
        raise DataError(
            f"{path.name} is not a complete Parquet file (it may be truncated or another format): export it again.",
            field="data.path",
        )
    try:
        parquet = pq.ParquetFile(path)
        if max_rows is None:
            table = parquet.read()
        else:
            batches = []
            for batch in parquet.iter_batches(batch_size=min(max_rows, 65_536)):
                batches.append(batch)
                if sum(b.num_rows for b in batches) >= max_rows:
                    break
            table = pa.Table.from_batches(batches, schema=parquet.schema_arrow)
        return table.to_pandas()
    except (pa.ArrowException, OSError, ValueError) as err:
        raise DataError(f"{path.name} is a damaged Parquet file ({err}): export it again.", field="data.path") from None


def _tidy_columns(frame: pd.DataFrame, name: str, report: dict[str, Any]) -> pd.DataFrame:
    """Column names as stripped strings, so ' text' in a header still maps to 'text'."""
    original = list(frame.columns)
    tidy = [str(c).strip() for c in original]
    if tidy != [str(c) for c in original]:
        report["repairs"].append("removed spaces around column names")
    if len(set(tidy)) != len(tidy):
        dupes = sorted({c for c in tidy if tidy.count(c) > 1})
        raise DataError(f"{name} has repeated column names ({', '.join(dupes)}): give each column its own name.")
    frame.columns = tidy
    return frame
