"""Rule checks over one sensor's readings, in the spirit of SaQC, IOOS QARTOD and the ISMN soil moisture
flags: each rule is a small function with its thresholds as parameters, works on any sampling (15-minute,
hourly or irregular; windows are in time, not in samples), and returns the intervals it flags.

Every anomaly has the same shape: variable, kind, start, end, score (how far past the threshold, ≥ 1)
and a one-line explanation a person can read. `check_sensor` runs the rules a configuration selects
(`detection.checks`: all of them by default) on one sensor's readings. The functions' default
thresholds are those of the registry's dataclasses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields

import numpy as np
import pandas as pd

from core.vocabulary import SENSOR_VARIABLES, AnomalyKind, Detector
from detection.checks import (
    DEFAULT,
    BatteryThresholds,
    BreakThresholds,
    Configuration,
    ProbeOutOfSoilThresholds,
    SaturationThresholds,
    SpikeThresholds,
    StuckThresholds,
)

# Durations the rules use inside (their thresholds are in detection.checks).
HOURS_1 = pd.Timedelta(hours=1)
HOURS_3 = pd.Timedelta(hours=3)
HOURS_6 = pd.Timedelta(hours=6)
HOURS_24 = pd.Timedelta(hours=24)


@dataclass(frozen=True)
class Flag:
    """One flagged interval of one variable."""

    variable: str
    kind: AnomalyKind
    start: pd.Timestamp
    end: pd.Timestamp
    score: float
    explanation: str


def intervals(mask: pd.Series, max_gap: pd.Timedelta = HOURS_1) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Flagged samples (a boolean series indexed by time) → [start, end] intervals; flagged samples
    closer than `max_gap` belong to one interval."""
    times = mask.index[mask.to_numpy(dtype=bool)]
    if len(times) == 0:
        return []
    breaks = np.flatnonzero((times[1:] - times[:-1]) > max_gap) + 1  # unit-safe: no raw integers
    starts = np.concatenate([[0], breaks])
    ends = np.concatenate([breaks - 1, [len(times) - 1]])
    return [(times[a], times[b]) for a, b in zip(starts, ends)]


def day_runs(flagged: pd.DataFrame) -> list[pd.DataFrame]:
    """Flagged (sensor_id, day) rows split into runs of consecutive days of one sensor."""
    if flagged.empty:
        return []
    flagged = flagged.sort_values(["sensor_id", "day"])
    new_run = (flagged["sensor_id"] != flagged["sensor_id"].shift()) | (flagged["day"].diff() != HOURS_24)
    return [run for _, run in flagged.groupby(np.cumsum(new_run.to_numpy()))]


def _fmt(variable: str, value: float) -> str:
    return SENSOR_VARIABLES[variable].format(value)


def _label(variable: str) -> str:
    return SENSOR_VARIABLES[variable].label


def check_range(series: pd.Series, variable: str, limits: tuple[float, float] | None = None) -> list[Flag]:
    """Values outside what the sensor can plausibly read (by default the vocabulary's range)."""
    low, high = limits or (SENSOR_VARIABLES[variable].low, SENSOR_VARIABLES[variable].high)
    outside = (series < low) | (series > high)
    flags = []
    for start, end in intervals(outside):
        part = series[start:end]
        worst = part.max() if part.max() > high else part.min()
        span = high - low
        score = 1 + max(worst - high, low - worst) / span
        flags.append(
            Flag(
                variable,
                AnomalyKind.OUT_OF_RANGE,
                start,
                end,
                score,
                f"{_label(variable)} read {_fmt(variable, worst)}, "
                f"outside {low:g} to {high:g} {SENSOR_VARIABLES[variable].unit}",
            )
        )
    return flags


def check_stuck(
    series: pd.Series,
    variable: str,
    min_duration: pd.Timedelta = StuckThresholds.min_duration,
    tolerance: float = StuckThresholds.tolerance,
    ignore_below: float | None = StuckThresholds.ignore_below,
    longest_night: pd.Timedelta = StuckThresholds.longest_night,
) -> list[Flag]:
    """The same value for at least `min_duration` (a live sensor always wobbles a little). Runs under
    `ignore_below` are left alone up to `longest_night`: light is legitimately 0 all night, but not for
    a day and a night (a winter night in the far north of Europe lasts under 20 hours)."""
    values = series.dropna()
    if len(values) < 3:
        return []
    # Runs of unchanged samples, found with arrays: a run starts wherever the value moved.
    moved = np.abs(np.diff(values.to_numpy())) > tolerance
    starts = np.concatenate([[0], np.flatnonzero(moved) + 1])
    ends = np.concatenate([starts[1:] - 1, [len(values) - 1]])
    times = values.index
    long = (ends - starts >= 2) & ((times[ends] - times[starts]) >= min_duration)
    flags = []
    for first, last in zip(starts[long], ends[long]):
        level = float(values.iloc[first])
        start, end = times[first], times[last]
        if ignore_below is not None and level < ignore_below and end - start < longest_night:
            continue
        hours = (end - start) / pd.Timedelta(hours=1)
        flags.append(
            Flag(
                variable,
                AnomalyKind.STUCK,
                start,
                end,
                hours / (min_duration / pd.Timedelta(hours=1)),
                f"{_label(variable)} stuck at {_fmt(variable, level)} for {hours:.0f} h",
            )
        )
    return flags


def check_spikes(
    series: pd.Series,
    variable: str,
    threshold: float,
    window: pd.Timedelta = SpikeThresholds.window,
) -> list[Flag]:
    """Samples that leap away from the median of the samples around them by more than `threshold`
    (units of the variable) and come back."""
    values = series.dropna()
    if len(values) < 5:
        return []
    around = values.rolling(window, center=True, min_periods=3).median()
    jump = (values - around).abs()
    flags = []
    for start, end in intervals(jump > threshold, max_gap=HOURS_6):
        part = jump[start:end]
        count = int((part > threshold).sum())
        flags.append(
            Flag(
                variable,
                AnomalyKind.SPIKE,
                start,
                end,
                float(part.max() / threshold),
                f"{count} {_label(variable)} spike{'s' if count > 1 else ''} "
                f"of up to {_fmt(variable, part.max())}",
            )
        )
    return flags


def check_probe_out_of_soil(
    series: pd.Series,
    dry: float = ProbeOutOfSoilThresholds.dry,
    wet_before: float = ProbeOutOfSoilThresholds.wet_before,
    min_duration: pd.Timedelta = ProbeOutOfSoilThresholds.min_duration,
) -> list[Flag]:
    """Soil moisture that falls from a moist level to near zero and stays there: the probe is out of
    the soil (soil itself does not dry to ~0 % in a garden)."""
    values = series.dropna()
    flags = []
    for start, end in intervals(values < dry, max_gap=HOURS_3):
        if end - start < min_duration:
            continue
        before = values[start - HOURS_24 : start - HOURS_3]  # the day before, leaving out the fall itself
        if before.empty or before.median() < wet_before:
            continue
        hours = (end - start) / HOURS_1
        flags.append(
            Flag(
                "soil_moisture",
                AnomalyKind.PROBE_OUT_OF_SOIL,
                start,
                end,
                float(before.median() / max(values[start:end].median(), 0.5)),
                f"soil moisture fell from {before.median():.1f} % to {values[start:end].median():.1f} % "
                f"and stayed there {hours:.0f} h: probe out of the soil?",
            )
        )
    return flags


def check_saturation(
    series: pd.Series,
    level: float = SaturationThresholds.level,
    tolerance: float = SaturationThresholds.tolerance,
    min_duration: pd.Timedelta = SaturationThresholds.min_duration,
) -> list[Flag]:
    """Soil moisture pinned at a high ceiling: a plateau at saturation (or a probe in standing water)."""
    values = series.dropna()
    high = values >= level
    flags = []
    for start, end in intervals(high):
        part = values[start:end]
        if end - start < min_duration or part.max() - part.min() > 2 * tolerance:
            continue
        hours = (end - start) / HOURS_1
        flags.append(
            Flag(
                "soil_moisture",
                AnomalyKind.SATURATION,
                start,
                end,
                hours / (min_duration / HOURS_1),
                f"soil moisture flat at {part.median():.1f} % for {hours:.0f} h: saturated",
            )
        )
    return flags


def check_break(
    series: pd.Series,
    variable: str,
    threshold: float,
    direction: int = BreakThresholds.direction,
    window: pd.Timedelta = BreakThresholds.window,
) -> list[Flag]:
    """A sudden break: a jump of more than `threshold` between two samples after which the level stays
    shifted (the median of the `window` after differs from the median of the `window` before by at least
    half the jump, on the same side; a spike comes back and is not a break). `direction` +1 or -1 looks
    only at rises or falls (soil moisture rises suddenly with rain, so only its falls are breaks)."""
    values = series.dropna()
    if len(values) < 3:
        return []
    jump = values.diff()
    candidates = jump.abs() > threshold
    if direction:
        candidates &= np.sign(jump) == direction
    flags = []
    for when in values.index[candidates.to_numpy(dtype=bool)]:
        before = values[when - window : when - pd.Timedelta(seconds=1)]
        after = values[when : when + window]
        if len(before) < 2 or len(after) < 2:
            continue
        shift = after.median() - before.median()
        if np.sign(shift) != np.sign(jump[when]) or abs(shift) < abs(jump[when]) / 2:
            continue
        flags.append(
            Flag(
                variable,
                AnomalyKind.BREAK,
                when,
                after.index[-1],
                float(abs(shift) / threshold),
                f"{_label(variable)} jumped from {_fmt(variable, before.median())} to "
                f"{_fmt(variable, after.median())} and stayed there",
            )
        )
    return flags


def check_battery(series: pd.Series, empty: float = BatteryThresholds.empty) -> list[Flag]:
    """A battery at or below `empty` %: readings degrade and then stop."""
    values = series.dropna()
    flags = []
    for start, end in intervals(values <= empty, max_gap=HOURS_6):
        flags.append(
            Flag(
                "battery_level",
                AnomalyKind.BATTERY_EXHAUSTED,
                start,
                end,
                float(1 + (empty - values[start:end].min()) / empty),
                f"battery at {values[start:end].min():.0f} %: readings will degrade and stop",
            )
        )
    return flags


def _plausible(series: pd.Series, variable: str) -> pd.Series:
    """The values inside the vocabulary's range: those outside are the range rule's business, and a
    value far out would make every neighbour look like a spike or a break."""
    return series.where(series.between(SENSOR_VARIABLES[variable].low, SENSOR_VARIABLES[variable].high))


def _keywords(thresholds: object) -> dict:
    return {f.name: getattr(thresholds, f.name) for f in fields(thresholds)}


# How each group of rules runs on one variable's series with one check's thresholds.
RULES: dict[str, Callable[[pd.Series, str, object], list[Flag]]] = {
    "range": lambda series, variable, t: check_range(series, variable, (t.low, t.high)),
    "spike": lambda series, variable, t: check_spikes(_plausible(series, variable), variable, **_keywords(t)),
    "break": lambda series, variable, t: check_break(_plausible(series, variable), variable, **_keywords(t)),
    "stuck": lambda series, variable, t: check_stuck(series, variable, **_keywords(t)),
    "probe_out_of_soil": lambda series, _, t: check_probe_out_of_soil(series, **_keywords(t)),
    "saturation": lambda series, _, t: check_saturation(series, **_keywords(t)),
    "battery_exhausted": lambda series, _, t: check_battery(series, **_keywords(t)),
}


def check_sensor(readings: pd.DataFrame, config: Configuration = DEFAULT) -> list[Flag]:
    """The rules `config` selects (all, by default) on one sensor's readings: a frame indexed by UTC
    time with the columns it has of soil_moisture, air_temperature, light and battery_level."""
    readings = readings.sort_index()
    flags: list[Flag] = []
    for check in config.running(Detector.RULE):
        if check.variable in readings:
            flags += RULES[check.group](
                readings[check.variable], check.variable, config.thresholds[check.name]
            )
    return flags
