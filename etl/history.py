"""Imported history: anomalies that arrive with the data (the stretches ISMN's quality control flagged
in its files), stored beside the readings they describe, shown grey and never deciding health."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select

from core.db import read_frame
from core.load import bulk_upsert
from core.schema import anomalies

KEY = ["sensor_id", "variable", "kind", "start_at"]  # the anomalies' natural key


def store_history(connection, history: pd.DataFrame) -> int:
    """Write the stretches of `history` (ANOMALY_COLUMNS) that are new or changed: the same files read
    again write nothing. A stretch is never removed by a later read, which may hold only part of a
    station's years."""
    if history.empty:
        return 0
    stored = read_frame(
        connection,
        select(*(anomalies.c[name] for name in [*KEY, "end_at", "explanation"])).where(
            anomalies.c.sensor_id.in_(sorted(history["sensor_id"].unique())),
            anomalies.c.kind.in_(sorted(history["kind"].unique())),
        ),
    )
    if len(stored):
        stored["start_at"] = pd.to_datetime(stored["start_at"], utc=True)
        stored["end_at"] = pd.to_datetime(stored["end_at"], utc=True)
        merged = history.merge(stored, on=KEY, how="left", suffixes=("", "_stored"))
        same = (merged["end_at"] == merged["end_at_stored"]) & (
            merged["explanation"] == merged["explanation_stored"]
        )
        history = history[~same.to_numpy()]
    return bulk_upsert(connection, anomalies, history) if len(history) else 0
