"""Model evidence: days whose reconstruction error exceeds the model's calibrated threshold.

All sensors' days of one variable go through its model together (batched), not a model call per
sensor-day as in 2019. Consecutive anomalous days of one sensor make one anomaly.
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from detection.autoencoder import Autoencoder, daily_windows
from detection.rules import NAMES, day_runs

DAY = pd.Timedelta(days=1)


def check_with_models(
    readings: pd.DataFrame, models: Mapping[str, Autoencoder], wet_days: pd.DataFrame | None = None
) -> list[dict]:
    """Anomaly rows (the anomalies table's columns) from every model whose variable `readings` holds:
    a frame with sensor_id, a UTC ts column and the variables. `wet_days` (sensor_id, day) are days
    on which the sensor's station recorded rain: a storm makes a soil moisture day like no other, so
    on those days the soil moisture model's word is not taken (the rules still look)."""
    rows = []
    for variable, model in models.items():
        if variable not in readings:
            continue
        windows = daily_windows(readings, variable)
        ratio = model.errors(windows.values) / model.threshold
        flagged = windows.keys.assign(ratio=ratio)[ratio > 1]
        if variable == "soil_moisture" and wet_days is not None and len(flagged):
            rained = flagged.merge(wet_days.assign(wet=True), on=["sensor_id", "day"], how="left")["wet"]
            flagged = flagged[~rained.fillna(False).to_numpy(dtype=bool)]
        rows += [_row(variable, run) for run in day_runs(flagged)]
    return rows


def _row(variable: str, run: pd.DataFrame) -> dict:
    days = len(run)
    worst = float(run["ratio"].max())
    return {
        "sensor_id": run["sensor_id"].iloc[0],
        "variable": variable,
        "kind": "unusual_day",
        "start_at": run["day"].iloc[0],
        "end_at": run["day"].iloc[-1] + DAY - pd.Timedelta(seconds=1),
        "score": round(worst, 3),
        "detector": "model",
        "explanation": f"{NAMES[variable]} unlike a normal day on {days} day{'s' if days > 1 else ''} "
        f"(model error up to {worst:.1f}× its threshold)",
    }
