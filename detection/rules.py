"""Rule checks over one sensor's readings, in the spirit of SaQC, IOOS QARTOD and the ISMN soil moisture
flags: each rule is a small function with its thresholds as parameters, works on any sampling (15-minute,
hourly or irregular; windows are in time, not in samples), and returns the intervals it flags.

Every anomaly has the same shape: variable, kind, start, end, score (how far past the threshold, ≥ 1)
and a one-line explanation a person can read. `check_sensor` runs them all on one sensor's readings.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

# Durations the rules use by default.
HOURS_1 = pd.Timedelta(hours=1)
HOURS_2 = pd.Timedelta(hours=2)
HOURS_3 = pd.Timedelta(hours=3)
HOURS_6 = pd.Timedelta(hours=6)
HOURS_12 = pd.Timedelta(hours=12)
HOURS_20 = pd.Timedelta(hours=20)
HOURS_24 = pd.Timedelta(hours=24)

# Plausible values for a Parrot Flower Power in a garden (the sensor's own limits are wider).
PHYSICAL_RANGE = {
    "air_temperature": (-30.0, 55.0),  # °C
    "soil_moisture": (0.0, 65.0),  # %
    "light": (0.0, 150.0),  # mol/m²/d
    "battery_level": (0.0, 100.0),  # %
}
UNITS = {"air_temperature": "°C", "soil_moisture": "%", "light": "mol/m²/d", "battery_level": "%"}
NAMES = {
    "air_temperature": "air temperature",
    "soil_moisture": "soil moisture",
    "light": "light",
    "battery_level": "battery",
}


@dataclass(frozen=True)
class Flag:
    """One flagged interval of one variable."""

    variable: str
    kind: str
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
    return f"{value:.1f} {UNITS[variable]}"


def check_range(series: pd.Series, variable: str, limits: tuple[float, float] | None = None) -> list[Flag]:
    """Values outside what the sensor can plausibly read."""
    low, high = limits or PHYSICAL_RANGE[variable]
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
                "out_of_range",
                start,
                end,
                score,
                f"{NAMES[variable]} read {_fmt(variable, worst)}, "
                f"outside {low:g} to {high:g} {UNITS[variable]}",
            )
        )
    return flags


def check_stuck(
    series: pd.Series,
    variable: str,
    min_duration: pd.Timedelta = HOURS_12,
    tolerance: float = 0.01,
    ignore_below: float | None = None,
    longest_night: pd.Timedelta = HOURS_20,
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
                "stuck",
                start,
                end,
                hours / (min_duration / pd.Timedelta(hours=1)),
                f"{NAMES[variable]} stuck at {_fmt(variable, level)} for {hours:.0f} h",
            )
        )
    return flags


def check_spikes(
    series: pd.Series,
    variable: str,
    threshold: float,
    window: pd.Timedelta = HOURS_2,
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
                "spike",
                start,
                end,
                float(part.max() / threshold),
                f"{count} {NAMES[variable]} spike{'s' if count > 1 else ''} "
                f"of up to {_fmt(variable, part.max())}",
            )
        )
    return flags


def check_probe_out_of_soil(
    series: pd.Series,
    dry: float = 4.0,
    wet_before: float = 10.0,
    min_duration: pd.Timedelta = HOURS_12,
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
                "probe_out_of_soil",
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
    level: float = 45.0,
    tolerance: float = 0.3,
    min_duration: pd.Timedelta = HOURS_24,
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
                "saturation",
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
    direction: int = 0,
    window: pd.Timedelta = HOURS_6,
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
                "break",
                when,
                after.index[-1],
                float(abs(shift) / threshold),
                f"{NAMES[variable]} jumped from {_fmt(variable, before.median())} to "
                f"{_fmt(variable, after.median())} and stayed there",
            )
        )
    return flags


def check_battery(series: pd.Series, empty: float = 5.0) -> list[Flag]:
    """A battery at or below `empty` %: readings degrade and then stop."""
    values = series.dropna()
    flags = []
    for start, end in intervals(values <= empty, max_gap=HOURS_6):
        flags.append(
            Flag(
                "battery_level",
                "battery_exhausted",
                start,
                end,
                float(1 + (empty - values[start:end].min()) / empty),
                f"battery at {values[start:end].min():.0f} %: readings will degrade and stop",
            )
        )
    return flags


# Thresholds of the spike rule, per variable, in its units.
SPIKE_THRESHOLDS = {"air_temperature": 8.0, "soil_moisture": 10.0}
# Jumps between two samples that make a break, and which way (soil moisture only falls suddenly when
# something is wrong: it rises suddenly with rain).
BREAKS = {"air_temperature": (6.0, 0), "soil_moisture": (8.0, -1)}


def check_sensor(readings: pd.DataFrame) -> list[Flag]:
    """Every rule on one sensor's readings: a frame indexed by UTC time with the columns it has of
    soil_moisture, air_temperature, light and battery_level."""
    readings = readings.sort_index()
    flags: list[Flag] = []
    for variable in ("air_temperature", "soil_moisture", "light", "battery_level"):
        if variable in readings:
            flags += check_range(readings[variable], variable)
    for variable, threshold in SPIKE_THRESHOLDS.items():
        if variable in readings:
            inside = readings[variable].where(readings[variable].between(*PHYSICAL_RANGE[variable]))
            flags += check_spikes(inside, variable, threshold)
    for variable, (threshold, direction) in BREAKS.items():
        if variable in readings:
            inside = readings[variable].where(readings[variable].between(*PHYSICAL_RANGE[variable]))
            flags += check_break(inside, variable, threshold, direction)
    if "air_temperature" in readings:
        flags += check_stuck(readings["air_temperature"], "air_temperature")
    if "light" in readings:
        flags += check_stuck(readings["light"], "light", ignore_below=0.5)
    if "soil_moisture" in readings:
        flags += check_stuck(readings["soil_moisture"], "soil_moisture")
        flags += check_probe_out_of_soil(readings["soil_moisture"])
        flags += check_saturation(readings["soil_moisture"])
    if "battery_level" in readings:
        flags += check_battery(readings["battery_level"])
    return flags
