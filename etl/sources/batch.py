"""What every sensor source hands the steps, whichever it is (see etl.sources.sensor_sources): sensors in
SENSOR_COLUMNS, and one `Batch` per reading request with readings in READING_COLUMNS, our units."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import pandas as pd

from core.schema import sensors as sensors_table
from core.vocabulary import SENSOR_VARIABLES
from etl.quarantine import Quarantined
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
    quarantined and counts of what was dropped."""

    codes: tuple[str, ...]
    start: dt.datetime
    end: dt.datetime
    readings: pd.DataFrame | None = None
    error: SourceError | None = None
    incomplete: dict[str, str] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)

    @classmethod
    def failed(cls, codes, start, end, error: SourceError) -> Batch:
        return cls(tuple(codes), start, end, error=error, incomplete={c: str(error) for c in codes})


# The text columns of a sensor a record may fill too long, with their widths in the schema.
TEXT_WIDTHS = {name: sensors_table.c[name].type.length for name in ("identifier", "name", "serial_number")}
