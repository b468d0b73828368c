"""Reading delimited text fast (pyarrow.csv) and naming the bad line when
that fails (slow path, Python's csv module, only on error)."""

from __future__ import annotations

import csv
import gzip
import io
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pcsv

from backtest.errors import DataError

DELIMS = (",", ";", "\t", "|")


def read_bytes(path: Path) -> bytes:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DataError(f"{path}: cannot read ({exc.strerror})") from None
    if data[:2] == b"\x1f\x8b":
        try:
            data = gzip.decompress(data)
        except (OSError, EOFError) as exc:
            raise DataError(f"{path}: broken gzip file ({exc})") from None
    return data


def first_lines(data: bytes, n: int = 2) -> list[str]:
    out = []
    for raw in data[:65536].splitlines():
        line = raw.decode("utf-8", "replace").lstrip("\ufeff").strip()
        if line:
            out.append(line)
        if len(out) >= n:
            break
    return out


def sniff_delimiter(line: str) -> str:
    counts = {d: line.count(d) for d in DELIMS}
    best = max(counts, key=counts.get)
    return best if counts[best] else ","


def is_number(s: str) -> bool:
    try:
        float(s.strip().strip('"'))
        return True
    except ValueError:
        return False


def read_csv(data: bytes, source: str, *, names=None, skip_rows=0, delimiter=",",
             column_types=None, include=None) -> pa.Table:
    """pyarrow CSV read; on failure, a one-line DataError naming the line."""
    try:
        return pcsv.read_csv(
            io.BytesIO(data),
            read_options=pcsv.ReadOptions(column_names=names, skip_rows=skip_rows,
                                          block_size=1 << 22),
            parse_options=pcsv.ParseOptions(delimiter=delimiter),
            convert_options=pcsv.ConvertOptions(
                column_types=column_types or {}, include_columns=include,
                strings_can_be_null=True,
            ),
        )
    except pa.ArrowInvalid as exc:
        raise DataError(locate_bad_line(data, source, names, skip_rows, delimiter,
                                        column_types or {}, str(exc))) from None


def locate_bad_line(data: bytes, source, names, skip_rows, delimiter, types, fallback) -> str:
    text = io.StringIO(data.decode("utf-8", "replace").lstrip("\ufeff"))
    reader = csv.reader(text, delimiter=delimiter)
    header = None
    ncols = len(names) if names else None
    for lineno, row in enumerate(reader, start=1):
        if not row or all(not f.strip() for f in row):
            continue
        if lineno <= skip_rows:
            continue
        if names is None and header is None:
            header = row
            ncols = len(row)
            continue
        cols = names or header
        if ncols is not None and len(row) != ncols:
            return (f"{source}: line {lineno}: expected {ncols} columns, found {len(row)}")
        for name, value in zip(cols, row):
            t = types.get(name)
            if t is None or not value.strip():
                continue
            if pa.types.is_integer(t):
                try:
                    int(value.strip())
                except ValueError:
                    return (f"{source}: column '{name}': line {lineno}: {value!r} is not an integer")
            elif pa.types.is_floating(t) and not is_number(value):
                return f"{source}: column '{name}': line {lineno}: {value!r} is not a number"
    first = fallback.strip().splitlines()[0] if fallback.strip() else "unreadable"
    return f"{source}: cannot parse as CSV ({first})"
