"""Reference checks: a sensor against its nearest live WOW station, day by day.

A station a few km away feels the same weather. A sensor in full sun reads far warmer than it by day; a
sensor indoors keeps a flat temperature while the station swings; a drifting sensor walks away from it.
Both series are first brought to hourly values by time (mean temperature, summed rainfall), so any
sampling works on either side.
"""

from __future__ import annotations

import pandas as pd

from etl.detect.rules import Flag

HOUR = pd.Timedelta(hours=1)


def hourly(series: pd.Series, how: str = "mean") -> pd.Series:
    """Hourly values of a time-indexed series (NaN for hours without a sample)."""
    return getattr(series.dropna().resample(HOUR), how)()


def daily_comparison(
    sensor_temperature: pd.Series, station_temperature: pd.Series, min_hours: int = 16
) -> pd.DataFrame:
    """Per UTC day with enough hours on both sides: mean and largest difference (sensor − station, °C)
    and each side's day/night swing (°C)."""
    both = pd.DataFrame(
        {"sensor": hourly(sensor_temperature), "station": hourly(station_temperature)}
    ).dropna()
    if both.empty:
        return pd.DataFrame(
            columns=["hours", "mean_difference", "largest_difference", "sensor_swing", "station_swing"]
        )
    difference = both["sensor"] - both["station"]
    days = both.index.floor("D")
    table = pd.DataFrame(
        {
            "hours": difference.groupby(days).size(),
            "mean_difference": difference.groupby(days).mean(),
            "largest_difference": difference.groupby(days).max(),
            "sensor_swing": both["sensor"].groupby(days).agg(lambda s: s.max() - s.min()),
            "station_swing": both["station"].groupby(days).agg(lambda s: s.max() - s.min()),
        }
    )
    return table[table["hours"] >= min_hours]


def check_temperature_against_station(
    sensor_temperature: pd.Series,
    station_temperature: pd.Series,
    station: str,
    distance_km: float,
    max_mean_difference: float = 4.0,
    max_peak_difference: float = 8.0,
    min_swing_ratio: float = 0.3,
    min_station_swing: float = 5.0,
) -> list[Flag]:
    """Days on which the sensor's air temperature disagrees with the station's: too warm or cold on
    average, far warmer at its peak (full sun), or without the day/night swing the station shows
    (indoors). Consecutive days of one kind make one flag."""
    days = daily_comparison(sensor_temperature, station_temperature)
    where = f"WOW station {station} ({distance_km:.1f} km)"
    # One kind per day: a flat sensor is indoors whatever its offset; a sensor whose peaks outgrow the
    # station's in a bigger swing is in the sun; what else is off on average is a bias (or drift).
    flat = (days["station_swing"] >= min_station_swing) & (
        days["sensor_swing"] < min_swing_ratio * days["station_swing"]
    )
    sunny = (
        ~flat
        & (days["largest_difference"] > max_peak_difference)
        & (days["sensor_swing"] > days["station_swing"])
    )
    biased = ~flat & ~sunny & (days["mean_difference"].abs() > max_mean_difference)
    kinds = {"temperature_bias": biased, "hot_spot": sunny, "no_daily_cycle": flat}
    flags = []
    for kind, bad in kinds.items():
        for first, last in _runs_of_days(bad):
            span = days.loc[first:last]
            count = len(span)
            if kind == "temperature_bias":
                worst = span["mean_difference"].abs().max()
                side = "above" if span["mean_difference"].mean() > 0 else "below"
                score = worst / max_mean_difference
                text = f"air temperature on average {worst:.1f} °C {side} {where}"
            elif kind == "hot_spot":
                worst = span["largest_difference"].max()
                score = worst / max_peak_difference
                text = f"air temperature up to {worst:.1f} °C above {where}: in full sun?"
            else:
                worst = (span["sensor_swing"] / span["station_swing"]).min()
                score = min_swing_ratio / max(worst, 0.01)
                text = (
                    f"air temperature swings {span['sensor_swing'].median():.1f} °C a day, "
                    f"{where} {span['station_swing'].median():.1f} °C: indoors or covered?"
                )
            days_text = f" on {count} day{'s' if count > 1 else ''}"
            flags.append(
                Flag(
                    "air_temperature",
                    kind,
                    first,
                    last + pd.Timedelta(days=1) - pd.Timedelta(seconds=1),
                    float(score),
                    text + days_text,
                )
            )
    return flags


def _runs_of_days(bad: pd.Series) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Consecutive flagged days → (first day, last day)."""
    days = bad.index[bad.to_numpy(dtype=bool)]
    runs = []
    for day in days:
        if runs and day - runs[-1][1] <= pd.Timedelta(days=1):
            runs[-1] = (runs[-1][0], day)
        else:
            runs.append((day, day))
    return runs
