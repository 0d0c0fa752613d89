"""`python -m etl export-sensor ID --days N --out DIR`: a sensor's readings and anomalies over its last
N days as CSV, and its charts as a PNG. 2019's `graph_and_save_grow` kept a picture of each sensor's
week; this keeps the data beside it, so the picture can be checked and the numbers used elsewhere.

The span ends at the sensor's latest reading (the sensor page's default range does too), so a sensor
gone silent still exports its last days. Files: `<id>_readings.csv`, `<id>_anomalies.csv`, `<id>.png`."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from sqlalchemy import func, select

from core.csv_cells import safe_frame
from core.db import read_frame, reading_span
from core.schema import anomalies, readings, sensors
from core.vocabulary import SENSOR_VARIABLES

VARIABLES = list(SENSOR_VARIABLES)
ANOMALY_COLUMNS = ["variable", "kind", "start_at", "end_at", "score", "detector", "explanation"]


class UnknownSensor(LookupError):
    """No such sensor, or no readings to export."""


@dataclass(frozen=True)
class Export:
    sensor_id: str
    start: dt.datetime
    end: dt.datetime
    readings: pd.DataFrame  # ts and the variables, in time order
    anomalies: pd.DataFrame  # ANOMALY_COLUMNS, those overlapping the span, by start


def sensor_export(engine, sensor_id: str, days: float) -> Export:
    """The readings of the `days` up to the sensor's latest reading, and the anomalies that overlap them."""
    with engine.connect() as connection:
        if connection.scalar(select(func.count()).where(sensors.c.sensor_id == sensor_id)) == 0:
            raise UnknownSensor(f"no sensor {sensor_id!r}")
        _, end = reading_span(connection, sensor_id)
        if end is None:
            raise UnknownSensor(f"sensor {sensor_id!r} has no readings to export")
        start = end - dt.timedelta(days=days)
        rows = read_frame(
            connection,
            select(readings.c.ts, *(readings.c[v] for v in VARIABLES))
            .where(readings.c.sensor_id == sensor_id, readings.c.ts > start, readings.c.ts <= end)
            .order_by(readings.c.ts),
        )
        found = read_frame(
            connection,
            select(*(anomalies.c[c] for c in ANOMALY_COLUMNS))
            .where(
                anomalies.c.sensor_id == sensor_id, anomalies.c.end_at > start, anomalies.c.start_at <= end
            )
            .order_by(anomalies.c.start_at, anomalies.c.variable, anomalies.c.kind),
        )
    return Export(
        sensor_id, pd.Timestamp(start).tz_convert("UTC"), pd.Timestamp(end).tz_convert("UTC"), rows, found
    )


def write_export(export: Export, folder: Path) -> list[Path]:
    """The export's two CSV files and its PNG in `folder` (made if missing); returns their paths."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = [folder / f"{export.sensor_id}{end}" for end in ("_readings.csv", "_anomalies.csv", ".png")]
    safe_frame(export.readings).to_csv(paths[0], index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    safe_frame(export.anomalies).to_csv(paths[1], index=False, date_format="%Y-%m-%dT%H:%M:%SZ")
    plot_export(export, paths[2])
    return paths


def plot_export(export: Export, path: Path) -> None:
    """One chart per variable over the span, the anomalies of that variable shaded."""
    import matplotlib

    matplotlib.use("Agg")  # no screen: files only
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(VARIABLES), 1, figsize=(10, 2.2 * len(VARIABLES)), sharex=True)
    for axis, variable in zip(axes, VARIABLES):
        unit = SENSOR_VARIABLES[variable].unit
        axis.plot(export.readings["ts"], export.readings[variable], linewidth=0.8, color="#1f5f8b")
        axis.set_ylabel(f"{variable.replace('_', ' ')}\n({unit})", fontsize=8)
        for row in export.anomalies[export.anomalies["variable"] == variable].itertuples():
            axis.axvspan(
                max(row.start_at, export.start), min(row.end_at, export.end), color="#d62728", alpha=0.2
            )
        axis.grid(alpha=0.3)
    axes[0].set_title(
        f"sensor {export.sensor_id}: {export.start:%Y-%m-%d %H:%M} to {export.end:%Y-%m-%d %H:%M} UTC"
        f" ({len(export.anomalies)} anomalies shaded)",
        fontsize=9,
    )
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
