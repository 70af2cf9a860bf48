"""Row readers for imported files: CSV, Parquet and JSON lines, streamed.

Each reader yields ``(row_number, row)`` pairs: ``row_number`` counts data rows from 1 (a CSV's header is not
a row), ``row`` maps column names to values (strings from CSV; typed values from Parquet and JSON). A file
that cannot be read at all is a :class:`~takt.errors.TaktError` naming the file and the problem; a single
malformed JSON line is yielded as a row whose ``_unreadable`` key explains why, so it is rejected, not lost.
"""

from __future__ import annotations

import codecs
import csv
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from takt.errors import TaktError

UNREADABLE = "_unreadable"
"""Key of a pseudo-row standing for a line that could not be parsed (JSON lines only)."""

FORMATS = ("csv", "parquet", "jsonl")

_SUFFIXES = {
    ".csv": "csv", ".tsv": "csv", ".txt": "csv",
    ".parquet": "parquet", ".pq": "parquet",
    ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "jsonl",
}


def file_error(path: Path, message: str) -> TaktError:
    return TaktError(f"{path}: {message}", code="invalid_file", status=400)


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt:
        if fmt not in FORMATS:
            raise file_error(path, f"unknown format {fmt!r}; use one of {', '.join(FORMATS)}")
        return fmt
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise file_error(path, f"cannot tell the format from the suffix {path.suffix!r}; "
                               "use .csv, .parquet or .jsonl (or --format)")
    return found


@dataclass
class RowReader:
    """An opened input file: its format, its columns (when the format has a header) and its rows."""

    path: Path
    format: str

    def columns(self) -> list[str] | None:
        """The header's column names, or ``None`` for JSON lines (each line has its own keys)."""
        if self.format == "csv":
            with self._open_csv() as f:
                reader = csv.reader(f, dialect=self._dialect())
                try:
                    return [c.strip() for c in next(reader)]
                except StopIteration:
                    raise file_error(self.path, "the file is empty (no header row)") from None
                except csv.Error as e:
                    raise file_error(self.path, f"not readable as CSV: {e}") from None
        if self.format == "parquet":
            return list(self._parquet().schema_arrow.names)
        return None

    def check_encoding(self) -> None:
        """CSV only: the whole file decodes as UTF-8, checked before any row is imported (a decoding error
        half-way through could not be skipped like a bad row)."""
        if self.format != "csv":
            return
        decoder = codecs.getincrementaldecoder("utf-8-sig")()
        offset = 0
        lines = 1
        with open(self.path, "rb") as f:
            while chunk := f.read(1 << 20):
                try:
                    decoder.decode(chunk)
                except UnicodeDecodeError as e:
                    line = lines + chunk[: e.start].count(b"\n")
                    raise file_error(self.path, f"line {line} (byte {offset + e.start}) is not UTF-8; "
                                                "save the file as UTF-8") from None
                offset += len(chunk)
                lines += chunk.count(b"\n")
            try:
                decoder.decode(b"", final=True)
            except UnicodeDecodeError:
                raise file_error(self.path, "the file ends in the middle of a UTF-8 character") from None

    def estimate_rows(self) -> int | None:
        """How many rows there are (exact for Parquet; the line count for CSV and JSON lines)."""
        if self.format == "parquet":
            return int(self._parquet().metadata.num_rows)
        lines = 0
        with open(self.path, "rb") as f:
            while chunk := f.read(1 << 20):
                lines += chunk.count(b"\n")
        if self.format == "csv":
            lines -= 1
        return max(lines, 0)

    def rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        if self.format == "csv":
            yield from self._csv_rows()
        elif self.format == "parquet":
            yield from self._parquet_rows()
        else:
            yield from self._jsonl_rows()

    # ---- CSV ----
    def _open_csv(self):  # type: ignore[no-untyped-def]
        try:
            return open(self.path, encoding="utf-8-sig", newline="")
        except OSError as e:
            raise file_error(self.path, f"cannot open: {e.strerror}") from None

    def _dialect(self) -> type[csv.Dialect] | str:
        if self.path.suffix.lower() == ".tsv":
            return "excel-tab"
        with self._open_csv() as f:
            sample = f.read(64 * 1024)
        try:
            return csv.Sniffer().sniff(sample, delimiters=",;\t|")
        except csv.Error:
            return "excel"

    def _csv_rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        dialect = self._dialect()
        with self._open_csv() as f:
            reader = csv.reader(f, dialect=dialect)
            try:
                header = [c.strip() for c in next(reader)]
            except StopIteration:
                return
            except (csv.Error, UnicodeDecodeError) as e:
                raise file_error(self.path, f"not readable as CSV: {e}") from None
            n = 0
            while True:
                try:
                    values = next(reader)
                except StopIteration:
                    return
                except UnicodeDecodeError as e:
                    raise file_error(self.path, f"row {n + 1} is not UTF-8: {e}") from None
                except csv.Error as e:
                    n += 1
                    yield n, {UNREADABLE: f"not readable as CSV: {e}"}
                    continue
                if not values:  # a blank line
                    continue
                n += 1
                row: dict[str, Any] = {}
                for i, col in enumerate(header):
                    row[col] = values[i] if i < len(values) else None
                if len(values) > len(header):
                    row["_extra_values"] = values[len(header):]
                yield n, row

    # ---- Parquet ----
    def _parquet(self):  # type: ignore[no-untyped-def]
        import pyarrow.parquet as pq

        try:
            return pq.ParquetFile(self.path)
        except OSError as e:
            raise file_error(self.path, f"not readable as Parquet: {e}") from None
        except Exception as e:  # pyarrow raises ArrowInvalid for non-Parquet bytes
            raise file_error(self.path, f"not readable as Parquet: {e}") from None

    def _parquet_rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        n = 0
        for batch in self._parquet().iter_batches(batch_size=5000):
            for row in batch.to_pylist():
                n += 1
                yield n, row

    # ---- JSON lines ----
    def _jsonl_rows(self) -> Iterator[tuple[int, dict[str, Any]]]:
        try:
            f = open(self.path, "rb")  # noqa: SIM115
        except OSError as e:
            raise file_error(self.path, f"cannot open: {e.strerror}") from None
        with f:
            head = f.read(4096).lstrip()
            if head.startswith(b"["):
                raise file_error(self.path, "holds a JSON array; takt reads JSON lines (one object per line)")
            f.seek(0)
            n = 0
            for line in f:
                if not line.strip():
                    continue
                n += 1
                try:
                    value = orjson.loads(line)
                except orjson.JSONDecodeError as e:
                    yield n, {UNREADABLE: f"not valid JSON: {e}", "_line": line.decode("utf-8", "replace")[:500]}
                    continue
                if not isinstance(value, dict):
                    yield n, {UNREADABLE: "a line must be a JSON object", "_line": line.decode("utf-8", "replace")[:500]}
                    continue
                yield n, value


def open_rows(path: str | Path, fmt: str | None = None) -> RowReader:
    p = Path(path)
    if not p.exists():
        raise file_error(p, "no such file")
    if p.is_dir():
        raise file_error(p, "is a directory, not a file")
    return RowReader(p, detect_format(p, fmt))
