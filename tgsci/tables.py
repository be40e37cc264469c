"""CSV tables for people (molecules.csv, plans.csv, sweep summaries): write, read, parse cells."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path


def csv_text(rows: list[dict], columns: list[str] | None = None) -> str:
    """CSV of ``rows`` (None as empty); columns default to every key, in order of first appearance."""
    if columns is None:
        columns = list(dict.fromkeys(k for row in rows for k in row))
    if not columns:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in columns})
    return buffer.getvalue()


def read_csv(path: Path) -> list[dict]:
    """Rows of a CSV file as dicts of strings; [] when the file does not exist."""
    path = Path(path)
    if not path.is_file():
        return []
    with open(path, encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def finite_float(x) -> float | None:
    """A CSV/JSON cell as a finite float, or None (empty, text, nan, inf)."""
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None
