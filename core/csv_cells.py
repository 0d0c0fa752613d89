"""Cells of the CSV files we write, safe to open in a spreadsheet: a text cell that starts with `=`, `+`,
`-` or `@` (or a tab or carriage return) is a formula to Excel and LibreOffice, and a volunteer's sensor
name or an upstream's text can be one (`=HYPERLINK(...)`). Such a cell gets a leading `'`, which the
spreadsheet shows as text (OWASP's "CSV injection"). Numbers are left as they are: -1.5 is a number.
"""

from __future__ import annotations

import pandas as pd

FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def safe_cell(value):
    """`value`, with a leading `'` if it is text a spreadsheet would take for a formula."""
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return value


def safe_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells are `safe_cell`s (its numeric and time columns untouched)."""
    text = [c for c in frame.columns if frame[c].dtype == object or pd.api.types.is_string_dtype(frame[c])]
    if not text:
        return frame
    return frame.assign(**{c: frame[c].map(safe_cell) for c in text})


def safe_row(row: dict) -> dict:
    return {key: safe_cell(value) for key, value in row.items()}
