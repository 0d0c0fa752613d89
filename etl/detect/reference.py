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
    """Per UTC day with enough hours on both sides: mean and largest difference (sensor − station, °C),
    each side's day/night swing (°C), and the warm-hours excess: how much more the sensor exceeds the
    station in the station's warmest third of the day's hours than in its coldest third (the sun's
    share; the station's own hours define day and night, so no longitude is needed)."""
    both = pd.DataFrame(
        {"sensor": hourly(sensor_temperature), "station": hourly(station_temperature)}
    ).dropna()
    columns = [
        "hours",
        "mean_difference",
        "largest_difference",
        "sensor_swing",
        "station_swing",
        "warm_excess",
    ]
    if both.empty:
        return pd.DataFrame(columns=columns)
    both["difference"] = both["sensor"] - both["station"]
    days = both.index.floor("D")
    by_day = both.groupby(days)
    rank = by_day["station"].rank(pct=True)
    warm = both["difference"].where(rank > 2 / 3).groupby(days).mean()
    cold = both["difference"].where(rank <= 1 / 3).groupby(days).mean()
    table = pd.DataFrame(
        {
            "hours": by_day.size(),
            "mean_difference": by_day["difference"].mean(),
            "largest_difference": by_day["difference"].max(),
            "sensor_swing": by_day["sensor"].max() - by_day["sensor"].min(),
            "station_swing": by_day["station"].max() - by_day["station"].min(),
            "warm_excess": warm - cold,
        }
    )
    return table[table["hours"] >= min_hours]


def check_temperature_against_station(
    sensor_temperature: pd.Series,
    station_temperature: pd.Series,
    station: str,
    distance_km: float,
    max_mean_difference: float = 4.0,
    max_warm_excess: float = 2.5,
    min_swing_ratio: float = 0.3,
    min_station_swing: float = 5.0,
) -> list[Flag]:
    """Days on which the sensor's air temperature disagrees with the station's: too warm or cold on
    average (bias or drift), warmer by day than by night beyond what shade allows (full sun: the median
    warm-hours excess over three days), or without the day/night swing the station shows (indoors).
    Consecutive days of one kind make one flag."""
    days = daily_comparison(sensor_temperature, station_temperature)
    where = f"WOW station {station} ({distance_km:.1f} km)"
    # One kind per day: a flat sensor is indoors whatever its offset; a sensor warmed by the sun is a
    # hot spot; what else is off on average is a bias (or drift).
    flat = (days["station_swing"] >= min_station_swing) & (
        days["sensor_swing"] < min_swing_ratio * days["station_swing"]
    )
    excess = days["warm_excess"].rolling(3, center=True, min_periods=2).median()  # a day and its neighbours
    sunny = ~flat & (excess > max_warm_excess)
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
                worst = excess.loc[first:last].max()
                score = worst / max_warm_excess
                text = (
                    f"air temperature {worst:.1f} °C warmer by day than by night relative to {where}, "
                    f"up to {span['largest_difference'].max():.1f} °C above it: in full sun?"
                )
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


def check_soil_against_rain(
    soil_moisture: pd.Series,
    station_rainfall: pd.Series,
    station: str,
    distance_km: float,
    min_step: float = 0.2,
    min_rise: float = 1.0,
    max_rain_mm: float = 1.0,
    min_rain_hours: int = 36,
) -> list[Flag]:
    """Dry days on which soil moisture keeps rising: the day's median above the day before's by
    `min_step` on two or more days in a row, `min_rise` in all, while the station recorded no more than
    `max_rain_mm` over each day and the one before. Soil only wets with water and dries between; a climb
    through a dry spell is a sensor drifting. A watering can wets the soil once, within minutes, and is
    left alone. Days for which the station has too few rain reports are left alone too (no rain gauge
    is no evidence)."""
    soil = soil_moisture.dropna()
    if soil.empty or station_rainfall.dropna().empty:
        return []
    median = soil.groupby(soil.index.floor("D")).median()
    rain = station_rainfall.dropna()
    rain_days = rain.groupby(rain.index.floor("D")).sum().rolling(2, min_periods=2).sum()
    reported = rain.resample(HOUR).size().gt(0)
    hours = reported.groupby(reported.index.floor("D")).sum().rolling(2, min_periods=2).sum()
    days = pd.DataFrame({"step": median.diff(), "rain": rain_days, "hours": hours}).dropna()
    dry_and_rising = (
        (days["hours"] >= min_rain_hours) & (days["rain"] <= max_rain_mm) & (days["step"] >= min_step)
    )
    where = f"WOW station {station} ({distance_km:.1f} km)"
    flags = []
    for first, last in _runs_of_days(dry_and_rising):
        span = days.loc[first:last]
        rise = span["step"].sum()
        if len(span) < 2 or rise < min_rise:
            continue
        flags.append(
            Flag(
                "soil_moisture",
                "rising_without_rain",
                first,
                last + pd.Timedelta(days=1) - pd.Timedelta(seconds=1),
                float(rise / min_rise),
                f"soil moisture rose {rise:.1f} % over {len(span)} dry days "
                f"({where} recorded {span['rain'].max():.1f} mm of rain)",
            )
        )
    return flags
