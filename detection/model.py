"""Model evidence: days whose reconstruction error exceeds the model's calibrated threshold.

All sensors' days of one variable go through its model together (batched), not a model call per
sensor-day as in 2019. Consecutive anomalous days of one sensor make one anomaly. Each variable's
model is a check of its own (`unusual_day.<variable>` in `detection.checks`).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from core.vocabulary import SENSOR_VARIABLES, AnomalyKind, Detector
from detection.autoencoder import Autoencoder, daily_windows
from detection.checks import DEFAULT, Configuration
from detection.rules import day_runs

DAY = pd.Timedelta(days=1)


def check_with_models(
    readings: pd.DataFrame,
    models: Mapping[str, Autoencoder],
    wet_days: pd.DataFrame | None = None,
    config: Configuration = DEFAULT,
) -> list[dict]:
    """Anomaly rows (the anomalies table's columns) from every model whose variable `readings` holds
    and whose check `config` selects: `readings` is a frame with sensor_id, a UTC ts column and the
    variables. `wet_days` (sensor_id, day) are days on which the sensor's station recorded rain: a
    storm makes a soil moisture day like no other, so on those days the soil moisture model's word is
    not taken (the rules still look)."""
    rows = []
    for variable, model in models.items():
        check = f"unusual_day.{variable}"
        if variable not in readings or not config.runs(check):
            continue
        least = config.thresholds[check].min_error_ratio
        windows = daily_windows(readings, variable)
        ratio = model.errors(windows.values) / model.threshold
        flagged = windows.keys.assign(ratio=ratio)[ratio > least]
        if variable == "soil_moisture" and wet_days is not None and len(flagged):
            rained = flagged.merge(wet_days.assign(wet=True), on=["sensor_id", "day"], how="left")["wet"]
            flagged = flagged[~rained.fillna(False).to_numpy(dtype=bool)]
        rows += [_row(variable, run, least) for run in day_runs(flagged)]
    return rows


def _row(variable: str, run: pd.DataFrame, least: float) -> dict:
    days = len(run)
    worst = float(run["ratio"].max())
    return {
        "sensor_id": run["sensor_id"].iloc[0],
        "variable": variable,
        "kind": AnomalyKind.UNUSUAL_DAY.value,
        "start_at": run["day"].iloc[0],
        "end_at": run["day"].iloc[-1] + DAY - pd.Timedelta(seconds=1),
        "score": round(worst / least, 3),
        "detector": Detector.MODEL.value,
        "explanation": f"{SENSOR_VARIABLES[variable].label} unlike a normal day on "
        f"{days} day{'s' if days > 1 else ''} (model error up to {worst:.1f}× its threshold)",
    }
