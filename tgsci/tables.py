"""CSV tables for people (molecules.csv, plans.csv, sweep summaries)."""

from __future__ import annotations

import csv
import io


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
