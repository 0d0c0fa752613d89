"""Detection's per-variable LSTM autoencoders: how a model is loaded and run, and the evidence it gives.

Each model looks at one UTC day of readings (96 samples of 15 minutes). A day the model has learnt to
expect comes back nearly unchanged; a day unlike the normal days it was trained on (noise, spikes, a flat
line where the sun should show, a sensor baking in the sun) comes back with a large reconstruction error.
Each model ships with its scaling and a threshold calibrated on the errors of held-out normal days, so
"anomalous" means "rarer than anything normal we have seen", not the 2019 rule (two days with exactly
equal error).

The window building is plain numpy and works on any sampling: samples are averaged into 15-minute slots
of each UTC day, short gaps are interpolated, and days with long gaps are left out. Keras (and with it
TensorFlow) is imported only when a model is loaded or run; building and training one is `models.train`,
and the shipped files live in models/ (models/README.md tells the whole story).

All sensors' days of one variable go through its model together (batched), not a model call per
sensor-day as in 2019. Consecutive anomalous days of one sensor make one anomaly. Each variable's
model is a check of its own (`unusual_day.<variable>` in `detection.checks`).
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache, cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from core.times import DAY, epoch_ns
from core.vocabulary import SENSOR_VARIABLES, AnomalyKind, Detector
from detection.checks import EVERY, Configuration, register
from detection.rules import as_views, day_runs

log = logging.getLogger(__name__)

VARIABLES = ("soil_moisture", "light", "air_temperature")
SLOTS = 96  # 15-minute slots in a day
SLOT_NS = 15 * 60 * 10**9
MAX_GAP_SLOTS = 5  # interpolate gaps up to 75 minutes (hourly data has gaps of 45)
MODEL_DIR = Path(__file__).resolve().parent.parent / "models"  # the trained files shipped with the code
# Days per forward pass: few enough that each step's arrays stay in the CPU's cache (measured: 1.3-1.5×
# the days per second of 4096, the same errors to the bit).
BATCH = 1024


@dataclass(frozen=True)
class Windows:
    """Daily windows of one variable: `keys` (sensor_id, day) row by row with `values` (n, 96)."""

    keys: pd.DataFrame
    values: np.ndarray


def daily_windows(frame: pd.DataFrame, variable: str) -> Windows:
    """Daily windows of `variable` from a frame with sensor_id, ts (UTC) and that column."""
    present = frame[variable].notna().to_numpy()
    ts = epoch_ns(frame["ts"])[present]
    values = frame[variable].to_numpy(dtype=np.float64)[present]
    codes, sensors = pd.factorize(frame["sensor_id"].to_numpy()[present])
    if len(values) == 0:
        # Typed as the days of a non-empty frame are, so that comparing them with times still works.
        no_days = pd.DataFrame(
            {"sensor_id": pd.Series([], dtype=object), "day": pd.to_datetime([], utc=True)}
        )
        return Windows(no_days, np.empty((0, SLOTS), np.float32))
    slot = ts // SLOT_NS
    day = slot // SLOTS
    first_day = day.min()
    span = int(day.max() - first_day) + 1
    key = codes.astype(np.int64) * span + (day - first_day)
    unique, row = np.unique(key, return_inverse=True)
    cell = row * SLOTS + (slot % SLOTS)
    sums = np.bincount(cell, weights=values, minlength=len(unique) * SLOTS)
    counts = np.bincount(cell, minlength=len(unique) * SLOTS)
    with np.errstate(invalid="ignore", divide="ignore"):
        grid = (sums / counts).reshape(len(unique), SLOTS)
    keep = _longest_gap(np.isnan(grid)) <= MAX_GAP_SLOTS
    grid = _interpolate_gaps(grid[keep])
    unique = unique[keep]
    keys = pd.DataFrame(
        {
            "sensor_id": sensors[unique // span],
            "day": pd.to_datetime((unique % span + first_day) * SLOTS * SLOT_NS, utc=True),
        }
    )
    return Windows(keys, grid.astype(np.float32))


def _longest_gap(missing: np.ndarray) -> np.ndarray:
    """Per row, the longest run of missing slots (a run touching either edge counts too)."""
    run = np.zeros(len(missing), dtype=np.int64)
    longest = np.zeros(len(missing), dtype=np.int64)
    for column in missing.T:  # 96 vector steps, whatever the number of rows
        run = (run + 1) * column
        np.maximum(longest, run, out=longest)
    return longest


def _interpolate_gaps(grid: np.ndarray) -> np.ndarray:
    grid = grid.copy()
    positions = np.arange(SLOTS)
    for r in np.flatnonzero(np.isnan(grid).any(axis=1)):
        row = grid[r]
        known = ~np.isnan(row)
        row[~known] = np.interp(positions[~known], positions[known], row[known])
    return grid


@dataclass
class Autoencoder:
    """One trained model with what it needs to be used: its scaling and its calibrated threshold."""

    variable: str
    model: object  # a keras.Model
    low: float
    high: float
    threshold: float
    info: dict

    def scale(self, values: np.ndarray) -> np.ndarray:
        """Each day less its own mean, in units of the variable's normal range: the model judges the
        day's shape, not its level (levels are the rules' and the station's business), and a wild value
        is clipped so that it cannot dominate the error."""
        centred = values - values.mean(axis=1, keepdims=True)
        return np.clip(centred / (self.high - self.low), -1.0, 1.0).astype(np.float32)

    def errors(self, values: np.ndarray) -> np.ndarray:
        """Mean squared reconstruction error of each daily window (rows of `values`, in units)."""
        if len(values) == 0:
            return np.empty(0, dtype=np.float32)
        scaled = self.scale(values)[..., None]
        rebuilt = np.concatenate([self._rebuild(scaled[i : i + BATCH]) for i in range(0, len(scaled), BATCH)])
        return ((scaled - rebuilt) ** 2).mean(axis=(1, 2))

    def warm_up(self) -> None:
        """Trace the forward pass now (TensorFlow takes seconds), so that the first call does not."""
        self.errors(np.zeros((1, SLOTS), dtype=np.float32))

    def _rebuild(self, batch: np.ndarray) -> np.ndarray:
        return self._forward(batch).numpy()

    @cached_property
    def _forward(self):
        """The model's forward pass compiled once for any number of days: Keras' own predict would
        trace it again for every new batch size."""
        import tensorflow as tf

        spec = tf.TensorSpec((None, SLOTS, 1), tf.float32)
        return tf.function(
            lambda days: self.model(days, training=False), input_signature=[spec], autograph=False
        )

    def save(self, folder: Path = MODEL_DIR) -> None:
        self.model.save(folder / f"{self.variable}.keras")
        meta = {"variable": self.variable, "low": self.low, "high": self.high, "threshold": self.threshold}
        (folder / f"{self.variable}.json").write_text(json.dumps({**meta, **self.info}, indent=2) + "\n")


# What TensorFlow's C++ side prints to stderr as it starts, before any setting can stop it (absl's
# pre-initialisation notice and its info lines): for the debug log, not the user's terminal.
_CHATTER = re.compile(r"^(WARNING: All log messages before absl::InitializeLog|[IW]\d{4} )")


def quiet_tensorflow() -> None:
    """Import TensorFlow with its start-up chatter kept off the terminal: its C++ side writes to the
    process's stderr at import, whatever TF_CPP_MIN_LOG_LEVEL says, so stderr is redirected to a file
    for the import; the chatter goes to the debug log, anything else to the log as a warning."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    if "tensorflow" in sys.modules:
        return
    with tempfile.TemporaryFile() as captured:
        sys.stderr.flush()
        saved = os.dup(2)
        os.dup2(captured.fileno(), 2)
        try:
            import tensorflow  # noqa: F401
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
        captured.seek(0)
        said = captured.read().decode(errors="replace")
    for line in said.splitlines():
        if line.strip():
            log.log(logging.DEBUG if _CHATTER.match(line) else logging.WARNING, "tensorflow: %s", line)


def load(variable: str, folder: Path = MODEL_DIR) -> Autoencoder:
    quiet_tensorflow()
    import keras

    meta_path = folder / f"{variable}.json"
    if not meta_path.exists():
        raise FileNotFoundError(f"no trained {variable} model in {folder}: run python -m models.train")
    meta = json.loads(meta_path.read_text())
    model = keras.saving.load_model(folder / f"{variable}.keras", compile=False)
    info = {k: v for k, v in meta.items() if k not in ("variable", "low", "high", "threshold")}
    return Autoencoder(variable, model, meta["low"], meta["high"], meta["threshold"], info)


@cache
def load_all(folder: Path = MODEL_DIR) -> dict[str, Autoencoder]:
    """The three models of a folder, loaded once per process."""
    return {variable: load(variable, Path(folder)) for variable in VARIABLES}


def shipped() -> dict[str, Autoencoder]:
    """The trained models committed in models/."""
    return load_all(MODEL_DIR)


# --- the evidence: days a model calls unusual ----------------------------------------------------------


def check_with_models(
    readings,
    models: Mapping[str, Autoencoder],
    wet_days: pd.DataFrame | None = None,
    config: Configuration = EVERY,
    memo: ErrorMemo | None = None,
) -> list[dict]:
    """Anomaly rows (the anomalies table's columns) from every model whose variable `readings` holds
    and whose check `config` selects: `readings` is a frame with sensor_id, a UTC ts column and the
    variables (or `detection.conditions.Views` of it: each model then sees it as the conditions its
    check stands down for leave it). `wet_days` (sensor_id, day) are days on which the sensor's station
    recorded rain: a storm makes a soil moisture day like no other, so on those days the soil moisture
    model is not asked (the rules still look). `memo` holds the errors of days already asked about in
    an earlier window."""
    views = as_views(readings)
    coded: dict[int, tuple[pd.DataFrame, np.ndarray]] = {}
    rows = []
    for check in config.running(Detector.MODEL):
        frame = views[check.stands_down]
        if check.variable not in models or check.variable not in frame:
            continue
        if id(frame) not in coded:
            coded[id(frame)] = _coded(frame)
        days = Days(*coded[id(frame)], check.variable, models[check.variable], wet_days, memo)
        rows += check.function(days, config.thresholds[check.name])
    return rows


def _coded(readings: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray]:
    """The readings with the sensors as category codes, and the ids: grouping small integers costs less
    than hashing the ids again for every model (measured: 2.0 s → 0.8 s for the three, 500 × 90 days)."""
    sensors = readings["sensor_id"].astype("category")
    return readings.assign(sensor_id=sensors.cat.codes), sensors.cat.categories.to_numpy()


@dataclass(frozen=True)
class Days:
    """What a model check is given: the readings (sensors coded), the ids, its variable and model, the
    wet days of the sensors' stations and the errors memo."""

    coded: pd.DataFrame
    ids: np.ndarray
    variable: str
    model: Autoencoder
    wet_days: pd.DataFrame | None
    memo: ErrorMemo | None


@register("unusual_day")
def _unusual_days(on: Days, t) -> list[dict]:
    skip = on.wet_days if on.variable == "soil_moisture" else None
    days = _error_ratios(on.coded, on.ids, on.variable, on.model, skip, on.memo)
    return [
        _row(on.variable, run, t.min_error_ratio) for run in day_runs(days[days["ratio"] > t.min_error_ratio])
    ]


def _error_ratios(
    coded: pd.DataFrame,
    ids: np.ndarray,
    variable: str,
    model: Autoencoder,
    skip: pd.DataFrame | None,
    memo: ErrorMemo | None = None,
) -> pd.DataFrame:
    """(sensor_id, day, ratio): each day's reconstruction error over the model's threshold, from
    readings whose sensor_id are codes into `ids`; the days in `skip` (sensor_id, day) are not asked
    about (the model's forward pass is most of detection's time)."""
    windows = daily_windows(coded, variable)
    days = windows.keys.assign(sensor_id=ids[windows.keys["sensor_id"].to_numpy(dtype=np.int64)])
    asked = np.ones(len(days), dtype=bool)
    if skip is not None and len(days):
        marked = days.merge(skip.drop_duplicates().assign(skip=True), on=["sensor_id", "day"], how="left")
        asked = ~marked["skip"].fillna(False).to_numpy(dtype=bool)
    days = days[asked]
    values = windows.values[asked]
    errors = model.errors(values) if memo is None else memo.errors(model, days, values)
    return days.assign(ratio=errors / model.threshold)


class ErrorMemo:
    """The models' errors of days that a later window will ask about again. A long history is checked
    in overlapping windows (`etl.detect_anomalies`), and a day's error depends on its own readings
    alone (the same to the bit in any batch), so the days of an overlap need not go through a model
    twice. Days are known by their windows' values (a digest), so a day whose readings changed in
    between is asked again. Only the days `keep` names are held, and only for the next pass."""

    def __init__(self) -> None:
        self._keep_from: dict[str, pd.Timestamp] = {}
        self._earlier: dict[tuple[str, bytes], np.float32] = {}  # kept by the pass before
        self._now: dict[tuple[str, bytes], np.float32] = {}  # kept by this pass, for the next

    def keep(self, keep_from: Mapping[str, pd.Timestamp]) -> None:
        """Hold the errors of each sensor's days from its `keep_from` time (the next pass's start),
        asked about from now on in this pass."""
        self._keep_from.update(keep_from)

    def next_pass(self) -> None:
        """A new pass begins: what the pass before kept stays for it; what came before goes."""
        self._earlier, self._now, self._keep_from = self._now, {}, {}

    def errors(self, model: Autoencoder, days: pd.DataFrame, values: np.ndarray) -> np.ndarray:
        """`model.errors(values)`, asking the model only about days not known; `days` (sensor_id,
        day) name the rows of `values`."""
        keys = [(model.variable, hashlib.blake2b(row.tobytes(), digest_size=16).digest()) for row in values]
        errors = np.array([self._earlier.get(key, np.nan) for key in keys], dtype=np.float32)
        unknown = np.isnan(errors)
        if unknown.any():
            errors[unknown] = model.errors(values[unknown])
        # A sensor not named keeps nothing (NaT); built as a list, since mapping every sensor to nothing
        # would make a column of floats.
        start = pd.to_datetime([self._keep_from.get(s, pd.NaT) for s in days["sensor_id"]], utc=True)
        kept = np.asarray(days["day"].array >= start.array)  # NaT: False
        for i in np.flatnonzero(kept):
            self._now[keys[i]] = errors[i]
        return errors


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
