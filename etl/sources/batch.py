"""What every sensor source hands the steps, whichever it is (see etl.sources.sensor_sources): sensors in
SENSOR_COLUMNS, and one `Batch` per reading request with readings in READING_COLUMNS, our units."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.schema import sensors as sensors_table
from core.vocabulary import SENSOR_VARIABLES
from etl.quarantine import REFUSED, REPAIRED, Quarantined
from etl.sources.http import SourceError

READING_COLUMNS = ["sensor_id", "ts", *SENSOR_VARIABLES]
SENSOR_COLUMNS = [
    "sensor_id",
    "identifier",
    "name",
    "serial_number",
    "owner_id",
    "latitude",
    "longitude",
    "first_sample_at",
    "last_sample_at",
]


@dataclass(frozen=True)
class Batch:
    """The answer to one reading request: its sensors and window, the readings taken from it, the
    sensors it did not fully answer for (all of them when the request failed: `error`), the records
    quarantined, counts of what was dropped, and any history the source keeps beside its readings
    (anomalies of an imported kind, as ISMN's flags)."""

    codes: tuple[str, ...]
    start: dt.datetime
    end: dt.datetime
    readings: pd.DataFrame | None = None
    error: SourceError | None = None
    incomplete: dict[str, str] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    history: pd.DataFrame | None = None

    @classmethod
    def failed(cls, codes, start, end, error: SourceError) -> Batch:
        return cls(tuple(codes), start, end, error=error, incomplete={c: str(error) for c in codes})


# The text columns of a sensor a record may fill too long, with their widths in the schema.
TEXT_WIDTHS = {name: sensors_table.c[name].type.length for name in ("identifier", "name", "serial_number")}


def checked_readings(
    source: str,
    frame: pd.DataFrame,
    times: pd.Series,
    where: list[str],
    not_after: dt.datetime,
    changing: np.ndarray | None = None,
) -> tuple[pd.DataFrame, list[Quarantined]]:
    """Rows (sensor_id and our variables, in our units) of files or tables, held to the APIs' rules: an
    unreadable or future time refuses the row; a value outside what any sensor can send is kept as
    missing. Both are quarantined under `source`, with `where` naming the row (file and line)."""
    quarantined = []
    unreadable = times.isna().to_numpy()
    future = (times > pd.Timestamp(not_after)).to_numpy()
    changing = np.zeros(len(frame), dtype=bool) if changing is None else changing
    for i in np.flatnonzero(unreadable | future):
        why = "time in the future" if future[i] else "time unreadable"
        if changing[i]:
            why = "time at a clock change (it does not exist, or comes twice): write it with its UTC offset"
        quarantined.append(Quarantined(source, frame["sensor_id"].iat[i], REFUSED, why, where[i]))
    frame = frame.assign(ts=times)
    for variable, about in SENSOR_VARIABLES.items():
        values = frame[variable].to_numpy(dtype=float)
        impossible = ~np.isnan(values) & ~((values >= about.possible_low) & (values <= about.possible_high))
        for i in np.flatnonzero(impossible & ~(unreadable | future)):
            why = f"{variable} {values[i]:g} {about.unit} is no reading: stored as missing"
            record = {"row": where[i], "variable": variable}  # two bad values of a row: two records
            quarantined.append(Quarantined(source, frame["sensor_id"].iat[i], REPAIRED, why, record))
        frame[variable] = np.where(impossible, np.nan, values)
    keep = ~(unreadable | future)
    frame = frame[keep]
    frame = frame.dropna(subset=list(SENSOR_VARIABLES), how="all")
    return frame[READING_COLUMNS].reset_index(drop=True), quarantined
