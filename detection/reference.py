"""Reference checks: sensors against their nearest live WOW station, day by day.

A station a few km away feels the same weather. A sensor in full sun reads far warmer than it by day; a
sensor indoors keeps a flat temperature while the station swings; a biased sensor sits off it; soil only
wets with rain, so soil moisture climbing through dry days, or walking away from what the rain explains,
is a drifting probe. Both sides are first brought to hourly values by time (mean temperature, summed
rainfall), so any sampling works on either side.

The checks work on many sensors at once (`check_against_stations`: one pass of grouped operations
over all of them, not a loop per sensor, of the checks a configuration selects); the `check_*`
functions of one sensor and one station are the same checks for a notebook. Thresholds are the
registry's dataclasses (`detection.checks`), overridden by name.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import pandas as pd

from core.times import DAY, HOUR_NS
from core.vocabulary import AnomalyKind, Detector
from detection.checks import (
    DEFAULT,
    Configuration,
    DriftThresholds,
    RisingWithoutRainThresholds,
    TemperatureThresholds,
    override_thresholds,
    register,
)
from detection.conditions import ground_water
from detection.rules import Flag, Rain, as_views, day_runs

END_OF_DAY = DAY - pd.Timedelta(seconds=1)

MIN_SIDE = 5  # days on either side of a drift's start


def check_against_stations(
    readings, stations: pd.DataFrame, links: pd.DataFrame, config: Configuration = DEFAULT
) -> list[tuple[str, Flag]]:
    """The station checks `config` selects (all, by default) on every linked sensor: `readings`
    (sensor_id, ts, air_temperature, soil_moisture; or `detection.conditions.Views` of them, each check
    then seeing them as the conditions it stands down for leave them), `stations` (site_id, ts,
    air_temperature, rainfall), `links` (sensor_id, site_id, distance_km). Returns (sensor_id, flag)
    pairs."""
    views = as_views(readings)
    links = links[links["site_id"].notna()][["sensor_id", "site_id", "distance_km"]]
    linked = set(links["sensor_id"])
    stations = stations[stations["site_id"].isin(set(links["site_id"]))]
    if stations.empty:
        return []
    # The stations' ids (long strings) as categories, once, in the reports and the links alike: every
    # grouping and join by station below then goes by their codes, not by hashing the ids again.
    sites = pd.CategoricalDtype(sorted(set(links["site_id"])))
    stations = stations.assign(site_id=stations["site_id"].astype(sites))
    links = links.assign(site_id=links["site_id"].astype(sites))
    found, gardens = [], {}
    for check in config.running(Detector.REFERENCE):
        frame = views[check.stands_down]
        if id(frame) not in gardens:  # checks standing down for the same conditions share their days
            mine = frame["sensor_id"].isin(linked)
            gardens[id(frame)] = Gardens(frame if mine.all() else frame[mine], stations, links)
        if not gardens[id(frame)].readings.empty:
            found += check.function(gardens[id(frame)], config.thresholds[check.name])
    return without_common(found, links)


@dataclass
class Gardens:
    """What a station check is given: the linked sensors' readings, their stations' reports and the
    links, and the daily tables the checks share, made once."""

    readings: pd.DataFrame
    stations: pd.DataFrame
    links: pd.DataFrame

    @cached_property
    def soil_days(self) -> pd.DataFrame:
        return soil_days(self.readings, self.stations, self.links)

    def has(self, reading: str, station: str) -> bool:
        return reading in self.readings and station in self.stations


@register("temperature")
def _temperature(on: Gardens, t: TemperatureThresholds) -> list[tuple[str, Flag]]:
    if not on.has("air_temperature", "air_temperature"):
        return []
    return temperature_flags(temperature_days(on.readings, on.stations, on.links, t.min_hours), t)


@register("rising_without_rain")
def _rising_without_rain(on: Gardens, t: RisingWithoutRainThresholds) -> list[tuple[str, Flag]]:
    return rain_flags(on.soil_days, t) if on.has("soil_moisture", "rainfall") else []


@register("drift")
def _drift(on: Gardens, t: DriftThresholds) -> list[tuple[str, Flag]]:
    return drift_flags(on.soil_days, on.stations, t) if on.has("soil_moisture", "rainfall") else []


# What weather the station did not see can raise in every garden around it at once, and how close in
# time two such flags must start to be one event: a day for the daily station checks, three hours for a
# jump in air temperature (a front, or snow sliding off).
COMMON = {
    (AnomalyKind.RISING_WITHOUT_RAIN, "soil_moisture"): DAY,
    (AnomalyKind.TEMPERATURE_BIAS, "air_temperature"): DAY,
    (AnomalyKind.HOT_SPOT, "air_temperature"): DAY,
    (AnomalyKind.NO_DAILY_CYCLE, "air_temperature"): DAY,
    (AnomalyKind.BREAK, "air_temperature"): pd.Timedelta(hours=3),
    (AnomalyKind.MOVED, "soil_moisture"): DAY,  # a thaw, or snow leaving every garden at once
}


def without_common(found: list[tuple[str, Flag]], links: pd.DataFrame) -> list[tuple[str, Flag]]:
    """Sensors fail one at a time; weather the station missed (a shower, snow it did not measure, a
    front) comes to every garden around it at once, and goes at once. A flag of a COMMON kind that
    another sensor linked to the same station raised too, starting and ending within that kind's time
    of it, is such weather: both are left out. A fault that lasts is not, whatever began beside it.
    (The drift check has its own, longer rule: `_without_shared`.)"""
    site_of = links.drop_duplicates("sensor_id").set_index("sensor_id")["site_id"].to_dict()
    by_site: dict[tuple, list[tuple[pd.Timestamp, str]]] = {}
    for sensor, flag in found:
        key = (flag.kind, flag.variable)
        if key in COMMON and site_of.get(sensor) is not None:
            by_site.setdefault((site_of[sensor], *key), []).append((flag.start, flag.end, sensor))
    common = set()
    for (_, kind, variable), events in by_site.items():
        events.sort()
        within = COMMON[(kind, variable)]
        for i, (start, end, sensor) in enumerate(events):
            for later, later_end, other in events[i + 1 :]:
                if later - start > within:
                    break
                if other != sensor and abs(later_end - end) <= within:
                    common |= {(sensor, kind, variable, start), (other, kind, variable, later)}
    return [(s, f) for s, f in found if (s, f.kind, f.variable, f.start) not in common]


# --- air temperature ----------------------------------------------------------------------------------


def _hourly(frame: pd.DataFrame, key: str, column: str, how: str = "mean") -> pd.DataFrame:
    present = frame.loc[frame[column].notna(), [key, "ts", column]]  # not the other columns: copies cost
    hours = present["ts"].dt.floor("h")
    return (
        getattr(present.groupby([present[key], hours])[column], how)()
        .rename_axis([key, "hour"])
        .reset_index()
    )


def temperature_days(
    readings: pd.DataFrame,
    stations: pd.DataFrame,
    links: pd.DataFrame,
    min_hours: int = TemperatureThresholds.min_hours,
) -> pd.DataFrame:
    """Per sensor and UTC day with `min_hours` hours on both sides: mean and largest difference (sensor −
    station, °C), each side's day/night swing (°C), and the warm-hours excess: how much more the sensor
    exceeds the station in the station's warmest third of the day's hours than in its coldest third
    (the sun's share; the station's own hours tell day from night, so no longitude is needed)."""
    sensor = _hourly(readings, "sensor_id", "air_temperature").rename(columns={"air_temperature": "sensor"})
    station = _hourly(stations, "site_id", "air_temperature").rename(columns={"air_temperature": "station"})
    both = sensor.merge(links, on="sensor_id").merge(station, on=["site_id", "hour"])
    both["day"] = both["hour"].dt.floor("D")
    both["difference"] = both["sensor"] - both["station"]
    by_day = both.groupby(["sensor_id", "day"])
    rank = by_day["station"].rank(pct=True)
    both["warm"] = both["difference"].where(rank > 2 / 3)
    both["cold"] = both["difference"].where(rank <= 1 / 3)
    table = by_day.agg(
        site_id=("site_id", "first"),
        distance_km=("distance_km", "first"),
        hours=("difference", "size"),
        mean_difference=("difference", "mean"),
        largest_difference=("difference", "max"),
        sensor_max=("sensor", "max"),
        sensor_min=("sensor", "min"),
        station_max=("station", "max"),
        station_min=("station", "min"),
        warm=("warm", "mean"),
        cold=("cold", "mean"),
    ).reset_index()
    table["sensor_swing"] = table["sensor_max"] - table["sensor_min"]
    table["station_swing"] = table["station_max"] - table["station_min"]
    table["warm_excess"] = table["warm"] - table["cold"]
    columns = ["sensor_id", "day", "site_id", "distance_km", "hours", "mean_difference", "largest_difference"]
    table = table[table["hours"] >= min_hours]
    return table[[*columns, "sensor_swing", "station_swing", "warm_excess"]].reset_index(drop=True)


def temperature_flags(
    days: pd.DataFrame, thresholds: TemperatureThresholds | None = None
) -> list[tuple[str, Flag]]:
    """One kind per day: a flat sensor is indoors whatever its offset; a sensor warmed by the sun (the
    median warm-hours excess of the day and its neighbours) is a hot spot; what else is off on average
    is a bias (or drift). Consecutive days of one kind make one flag."""
    if days.empty:
        return []
    t = thresholds or TemperatureThresholds()
    days = days.sort_values(["sensor_id", "day"]).reset_index(drop=True)
    days["excess"] = _centred_median(days, "warm_excess")
    flat = (days["station_swing"] >= t.min_station_swing) & (
        days["sensor_swing"] < t.min_swing_ratio * days["station_swing"]
    )
    sunny = ~flat & (days["excess"] > t.max_warm_excess)
    biased = ~flat & ~sunny & (days["mean_difference"].abs() > t.max_mean_difference)
    days["swing_ratio"] = days["sensor_swing"] / days["station_swing"].where(days["station_swing"] > 0)
    found = []
    kinds = (
        (AnomalyKind.TEMPERATURE_BIAS, biased),
        (AnomalyKind.HOT_SPOT, sunny),
        (AnomalyKind.NO_DAILY_CYCLE, flat),
    )
    for kind, bad in kinds:
        for run in day_runs(days[bad]):
            found.append((run["sensor_id"].iloc[0], _temperature_flag(kind, run, t)))
    return found


def _temperature_flag(kind: AnomalyKind, run: pd.DataFrame, t: TemperatureThresholds) -> Flag:
    where = _where(run)
    if kind == AnomalyKind.TEMPERATURE_BIAS:
        worst = run["mean_difference"].abs().max()
        side = "above" if run["mean_difference"].mean() > 0 else "below"
        score = worst / t.max_mean_difference
        text = f"air temperature on average {worst:.1f} °C {side} {where}"
    elif kind == AnomalyKind.HOT_SPOT:
        worst = run["excess"].max()
        score = worst / t.max_warm_excess
        text = (
            f"air temperature {worst:.1f} °C warmer by day than by night relative to {where}, "
            f"up to {run['largest_difference'].max():.1f} °C above it: in full sun?"
        )
    else:
        worst = run["swing_ratio"].min()
        score = t.min_swing_ratio / max(worst, 0.01)
        text = (
            f"air temperature swings {run['sensor_swing'].median():.1f} °C a day, "
            f"{where} {run['station_swing'].median():.1f} °C: indoors or covered?"
        )
    return Flag("air_temperature", kind, run["day"].iloc[0], run["day"].iloc[-1] + END_OF_DAY, float(score),
                text + _on_days(len(run)))  # fmt: skip


# --- soil moisture and rain -----------------------------------------------------------------------------


def soil_days(readings: pd.DataFrame, stations: pd.DataFrame, links: pd.DataFrame) -> pd.DataFrame:
    """Per sensor and UTC day: the median soil moisture, its change since the sensor's previous day,
    and the station's rain over that day and the one before (mm) with the hours that had a report."""
    # The sun dries the soil too: the sensor's own light, where it has one. One grouping by sensor and
    # day for both (its days without soil moisture left out after).
    daily = {"median": ("soil_moisture", "median"), "readings": ("soil_moisture", "count")}
    if "light" in readings:
        daily["light"] = ("light", "mean")
    days = readings.groupby([readings["sensor_id"], readings["ts"].dt.floor("D").rename("day")]).agg(**daily)
    median = days[days.pop("readings") > 0].reset_index()
    median.insert(3, "step", median.groupby("sensor_id")["median"].diff())
    rain = _rain_days(stations)
    table = median.merge(links, on="sensor_id").merge(rain, on=["site_id", "day"], how="left")
    return table


def _rain_days(stations: pd.DataFrame) -> pd.DataFrame:
    """Per site and day: rain (mm) and hours reported, that day and over it and the day before. Snow
    counts when it melts (`ground_water`), where the station reports its air temperature."""
    reports = stations[stations["rainfall"].notna()]
    hourly = _hourly(reports, "site_id", "rainfall", "sum")
    if "air_temperature" in stations and len(hourly):
        hourly["rainfall"] = _with_snowmelt(hourly, _hourly(stations, "site_id", "air_temperature"))
    hourly["day"] = hourly["hour"].dt.floor("D")
    days = hourly.groupby(["site_id", "day"]).agg(rain_day=("rainfall", "sum"), hours_day=("hour", "size"))
    days = days.reset_index()
    previous = days.groupby("site_id")[["day", "rain_day", "hours_day"]].shift()
    follows = (days["day"] - previous["day"]) == DAY
    days["rain"] = (days["rain_day"] + previous["rain_day"]).where(follows)
    days["hours"] = (days["hours_day"] + previous["hours_day"]).where(follows)
    return days


SNOW_MEMORY = pd.Timedelta(days=7)
# Above this air temperature precipitation falls as rain alone (the US Army Corps of Engineers' 1956 snow
# hydrology: all rain above about +3 °C); below it, some may be snow, whatever the gauge says.
ALL_RAIN_ABOVE_C = 3.0  # station hours read before a sensor's first: snow fallen then melts later


def station_rain(stations: pd.DataFrame, links: pd.DataFrame, readings: pd.DataFrame) -> Rain | None:
    """Hour by hour, the water reaching the ground at each linked sensor's station (snow when it
    melts), for the rules that ask whether rain should have moved a reading: each station over the
    span of its sensors' `readings` only (and the week before, for the snow lying then), so that its
    memory follows the readings', not the history's. All stations at once, each on its own hours."""
    if "rainfall" not in stations or readings.empty:
        return None
    links = links[links["site_id"].notna()].drop_duplicates("sensor_id")
    spans = readings.groupby("sensor_id", observed=True)["ts"].agg(["min", "max"])
    sites = links.join(spans, on="sensor_id").dropna(subset=["min"]).groupby("site_id")
    reach = sites.agg(start=("min", "min"), end=("max", "max"))
    # Each report's station as a code (the long ids hashed once): its reach and its grouping go by code.
    codes, names = pd.factorize(stations["site_id"], sort=True)
    start = pd.DatetimeIndex(reach["start"].reindex(names)) - SNOW_MEMORY  # NaT: no sensor of its own
    end = pd.DatetimeIndex(reach["end"].reindex(names))
    ts = pd.DatetimeIndex(stations["ts"])
    inside = (codes >= 0) & (ts >= start[codes]) & (ts <= end[codes])
    own, site = stations[inside], codes[inside]
    hour = own["ts"].dt.floor("h")
    fell = pd.to_numeric(own["rainfall"], errors="coerce")  # a column of Nones reads as objects
    known = fell.notna().to_numpy()
    rain = fell[known].groupby([site[known], hour[known]]).sum()  # by site, then hour
    water, warm = rain, rain
    if "air_temperature" in own and len(rain):
        air = pd.to_numeric(own["air_temperature"], errors="coerce").groupby([site, hour]).mean()
        reached, felt = _reaching_ground(rain, air)
        water = pd.Series(reached, index=rain.index)
        # Rain that fell as rain alone: a gauge filling below ALL_RAIN_ABOVE_C may be catching snow.
        warm = rain.where(np.nan_to_num(felt, nan=ALL_RAIN_ABOVE_C) >= ALL_RAIN_ABOVE_C, 0.0)
    hours, total, liquid = {}, {}, {}
    for (code, fallen), (_, rained) in zip(
        water.groupby(level=0, sort=False), warm.groupby(level=0, sort=False)
    ):
        hours[names[code]] = fallen.index.get_level_values(1).as_unit("ns").asi8
        total[names[code]] = np.nancumsum(fallen.to_numpy(dtype=float))
        liquid[names[code]] = np.nancumsum(rained.to_numpy(dtype=float))
    site_of = links.set_index("sensor_id")["site_id"]
    mine = site_of[site_of.isin(set(hours))]
    return Rain(*({s: of[site] for s, site in mine.items()} for of in (hours, total, liquid)))


def _reaching_ground(rain: pd.Series, air: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Per hour of `rain` (mm, by site and hour), the water that reached the ground (`ground_water`),
    and the air temperature it fell in:
    each site from its first hour of rain reports to its last, with its hourly air temperature
    interpolated across those hours. One pass over the hours for all sites, a row each: before its first
    hour a row holds no snow, so it starts from none, as it would alone."""
    rows, sites = pd.factorize(rain.index.get_level_values(0))
    hour = rain.index.get_level_values(1).as_unit("ns").asi8 // HOUR_NS
    origin = int(hour.min())
    column = hour - origin
    first = pd.Series(column).groupby(rows).min().to_numpy()
    last = pd.Series(column).groupby(rows).max().to_numpy()
    shape = (len(sites), int(column.max()) + 1)
    precipitation = np.full(shape, np.nan)
    precipitation[rows, column] = rain.to_numpy(dtype=float)
    # A site's air temperatures within its own hours only: the interpolation sees no others.
    air_rows = sites.get_indexer(air.index.get_level_values(0))
    air_column = air.index.get_level_values(1).as_unit("ns").asi8 // HOUR_NS - origin
    inside = air_rows >= 0
    inside[inside] &= (air_column[inside] >= first[air_rows[inside]]) & (
        air_column[inside] <= last[air_rows[inside]]
    )
    temperature = np.full(shape, np.nan)
    temperature[air_rows[inside], air_column[inside]] = air.to_numpy(dtype=float)[inside]
    temperature = pd.DataFrame(temperature.T).interpolate(limit_direction="both").to_numpy().T
    return ground_water(precipitation, temperature)[rows, column], temperature[rows, column]


def _with_snowmelt(rain: pd.DataFrame, air: pd.DataFrame) -> np.ndarray:
    """The hourly rain (site_id, hour, rainfall) as water reaching the ground: snow when it melts."""
    rain_grid = rain.pivot(index="site_id", columns="hour", values="rainfall")
    air_grid = air.pivot(index="site_id", columns="hour", values="air_temperature")
    hours = pd.date_range(rain_grid.columns.min(), rain_grid.columns.max(), freq="h")
    rain_grid = rain_grid.reindex(columns=hours)
    air_grid = air_grid.reindex(index=rain_grid.index, columns=hours).interpolate(
        axis=1, limit_direction="both"
    )
    water = pd.DataFrame(
        ground_water(rain_grid.to_numpy(dtype=float), air_grid.to_numpy(dtype=float)),
        index=rain_grid.index,
        columns=hours,
    )
    return water.stack().reindex(pd.MultiIndex.from_frame(rain[["site_id", "hour"]])).to_numpy()


def rain_flags(
    days: pd.DataFrame, thresholds: RisingWithoutRainThresholds | None = None
) -> list[tuple[str, Flag]]:
    """Dry days on which soil moisture keeps rising: the day's median above the day before's by
    `min_step` on two or more days in a row, `min_rise` in all (and `explained_per_mm` more per mm of
    the most the station recorded), while it recorded no more than `max_rain_mm` over each day and the
    one before. A watering can wets the soil once and is left alone;
    days the station has too few rain reports for are too (no rain gauge is no evidence)."""
    t = thresholds or RisingWithoutRainThresholds()
    known = days.dropna(subset=["step", "rain", "hours"])
    rising = (
        (known["hours"] >= t.min_rain_hours)
        & (known["rain"] <= t.max_rain_mm)
        & (known["step"] >= t.min_step)
    )
    found = []
    for run in day_runs(known[rising]):
        rise = run["step"].sum()
        if len(run) < 2 or rise < t.min_rise + t.explained_per_mm * run["rain"].max():
            continue
        text = (
            f"soil moisture rose {rise:.1f} % over {len(run)} dry days "
            f"({_where(run)} recorded {run['rain'].max():.1f} mm of rain)"
        )
        first, last = run["day"].iloc[0], run["day"].iloc[-1] + END_OF_DAY
        kind = AnomalyKind.RISING_WITHOUT_RAIN
        flag = Flag("soil_moisture", kind, first, last, float(rise / t.min_rise), text)
        found.append((run["sensor_id"].iloc[0], flag))
    return found


def drift_flags(
    days: pd.DataFrame, stations: pd.DataFrame, thresholds: DriftThresholds | None = None
) -> list[tuple[str, Flag]]:
    """Soil moisture that walks away from what the station's weather explains: a drifting probe.

    Two tests over a sensor's daily medians (`min_days` of them at least), either of which flags it:

    - level: a garden's soil moisture follows the rain it has had lately and how fast it dries, which
      the warmth of the last days sets; both come from the station as exponentially fading daily
      values (`memory` per day). So do the other gardens by the same station, where there are some
      (`_neighbour_index`): they show the weather as soil sees it, saturation and season included.
      After fitting those, a ramp starting on some day must explain at least `min_explained` of what
      they leave over and move the reading by `min_change` % by the last day.
    - drying, for sensors without such neighbours: on dry days soil dries at a rate set by how wet it
      is, the warmth and the light. After fitting that, a change of rate from some day on (a drift adds
      its own slope) must explain at least `min_dry_explained` of the rest. Needs `min_dry_days`.

    A drift may start no closer than `edge_days` to either end; on a record longer than `season_days`,
    one that would start at that edge walks all along: a season. One that a neighbour shares is weather
    (see `_without_shared`)."""
    t = thresholds or DriftThresholds()
    counts = days.groupby("sensor_id")["median"].transform("size")
    long = days[(counts >= t.min_days) & days["site_id"].notna()]
    if long.empty:
        return []
    weather = _daily_weather(stations[stations["site_id"].isin(set(long["site_id"]))])
    neighbours = _neighbour_index(long)
    rained = {site for site, daily in weather.items() if daily["rainfall"].notna().any()}
    faded = {}  # the station's faded weather over a calendar: the same for its sensors of the same days
    candidates = []
    for sensor, own in long.set_index("day").groupby("sensor_id"):
        site = own["site_id"].iloc[0]
        if site not in rained:  # no rain report: the station explains nothing
            continue
        span = (site, own.index[0], own.index[-1])
        if span not in faded:
            daily = weather[site].reindex(pd.date_range(own.index[0], own.index[-1], freq="D"))
            faded[span] = (daily, _faded(daily, t.memory))
        daily, weather_faded = faded[span]
        around = neighbours[sensor].reindex(daily.index) if sensor in neighbours else None
        # Where neighbours witness the weather the level test is the sharper one (measured: the drying
        # test then adds false alarms, not drifts); without them, the drying test helps.
        found = _level_drift(own, weather_faded, daily["rainfall"], around, t) or (
            None if sensor in neighbours else _drying_drift(own, daily, t)
        )
        if found is not None:
            candidates.append((sensor, site, *found))
    return _without_shared(candidates, t.shared_days)


def _without_shared(candidates: list[tuple], within_days: float) -> list[tuple[str, Flag]]:
    """Probes fail one at a time; the weather changes for a whole town. A drift that another sensor
    linked to the same station shows too, the same way and starting within `within_days`, is weather
    the station does not explain (a wet spell saturating the soils, say), not a fault."""
    window = pd.Timedelta(days=within_days)
    kept = []
    for sensor, site, sign, flag in candidates:
        shared = any(
            other != sensor
            and other_site == site
            and other_sign == sign
            and abs(other_flag.start - flag.start) <= window
            for other, other_site, other_sign, other_flag in candidates
        )
        if not shared:
            kept.append((sensor, flag))
    return kept


def _neighbour_index(long: pd.DataFrame, min_neighbours: int = 2) -> dict[str, pd.Series]:
    """Per sensor, how wet the other gardens by its station are each day: the median of their daily
    medians, each standardised over its own history (gardens differ in level and range, not in when
    it rains). Only for sensors with at least `min_neighbours` such neighbours."""
    spread = long.groupby("sensor_id")["median"].transform("std").replace(0, np.nan)
    standard = (long["median"] - long.groupby("sensor_id")["median"].transform("mean")) / spread
    table = long.assign(standard=standard).pivot_table(index="day", columns="sensor_id", values="standard")
    site_of = long.groupby("sensor_id")["site_id"].first()
    index = {}
    for _, members in site_of.groupby(site_of):
        if len(members) <= min_neighbours:
            continue
        # Every member's others side by side: (days, members, members - 1), one median for all.
        others = [[j for j in range(len(members)) if j != i] for i in range(len(members))]
        wet = table.reindex(columns=members.index).to_numpy()[:, others]  # a sensor all NaN is no column
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "All-NaN slice encountered", RuntimeWarning)
            middle = np.nanmedian(wet, axis=2)
        middle = pd.DataFrame(middle, index=table.index, columns=members.index)
        index.update(middle.interpolate(limit_direction="both").items())
    return index


def _faded(weather: pd.DataFrame, memory: float) -> pd.DataFrame:
    """Daily weather as a garden still feels it: exponentially fading by `memory` a day."""
    faded = weather.assign(rainfall=weather["rainfall"].fillna(0.0))  # no report, no rain counted
    return faded.ewm(alpha=1 - memory, adjust=False, ignore_na=True).mean().ffill().bfill()


def _level_drift(
    own: pd.DataFrame, faded: pd.DataFrame, rain: pd.Series, neighbours: pd.Series | None, t: DriftThresholds
) -> tuple[float, Flag] | None:
    columns = [faded[name].to_numpy() for name in faded.columns]
    if neighbours is not None:  # the other gardens by the station show the weather as soil sees it
        columns.append(neighbours.interpolate(limit_direction="both").to_numpy())
    weather = np.column_stack(columns)
    day = _days_from_first(own.index)
    # The weather's days start on the sensor's first: its days are rows. Plain arrays, not frames: this
    # runs for every sensor.
    covariates = weather[day.astype(np.int64)][:, ~np.isnan(weather).any(axis=0)]
    explained, split, slope = _best_change(day, covariates, own["median"].to_numpy(), t.edge_days, "ramp")
    change = slope * (day[-1] - split)
    if explained < t.min_explained or abs(change) < t.min_change or abs(slope) > t.max_rate:
        return None
    if split <= t.edge_days and day[-1] > t.season_days:  # it walks from the start: a season
        return None
    start = own.index[0] + pd.Timedelta(days=split)
    if change < 0 and _a_dry_spell(rain, start, own.index[-1], t):
        return None
    text = (
        f"soil moisture drifted {change:+.1f} % since {start:%d %b} beyond what the weather at "
        f"{_where(own)} explains: a drifting probe?"
    )
    return np.sign(change), Flag(
        "soil_moisture",
        AnomalyKind.DRIFT,
        start,
        own.index[-1] + END_OF_DAY,
        abs(change) / t.min_change,
        text,
    )


def _a_dry_spell(rain: pd.Series, start: pd.Timestamp, end: pd.Timestamp, t: DriftThresholds) -> bool:
    """Whether the station's rain from `start` to `end`, `dry_spell_days` or more, was a dry spell:
    under `dry_spell_mm` a day and under `dry_spell_share` of what fell before. Soil dries through a
    dry spell by what the warm days took, summed day after day, which fading sums of rain and warmth
    do not follow past a few weeks: a fall then is the soil drying, not a probe drifting (wetting
    follows the rain, which they do)."""
    if end - start < pd.Timedelta(days=t.dry_spell_days):
        return False
    before, during = rain[rain.index < start].mean(), rain[(rain.index >= start) & (rain.index <= end)].mean()
    return bool(during < t.dry_spell_mm and during < t.dry_spell_share * before)


def _drying_drift(own: pd.DataFrame, daily: pd.DataFrame, t: DriftThresholds) -> tuple[float, Flag] | None:
    level = own["median"].reindex(daily.index)
    change = level.diff()
    rain = daily["rainfall"]
    dry = (rain.fillna(np.inf) + rain.shift().fillna(np.inf) <= t.dry_rain_mm) & change.notna()
    if dry.sum() < t.min_dry_days or daily["air_temperature"].isna().all():
        return None
    before = level.shift()[dry].to_numpy()  # how wet the soil was as the day began
    warmth = daily["air_temperature"].interpolate().ffill().bfill()[dry].to_numpy()
    columns = [before, before * warmth, warmth]
    if "light" in own and own["light"].notna().any():
        light = own["light"].reindex(daily.index).interpolate().ffill().bfill()[dry].to_numpy()
        columns += [before * light, light]
    day = _days_from_first(daily.index)[dry.to_numpy()]
    explained, split, rate = _best_change(
        day, np.column_stack(columns), change[dry].to_numpy(), t.edge_days, "step"
    )
    if explained < t.min_dry_explained:
        return None
    start = daily.index[0] + pd.Timedelta(days=split)
    text = (
        f"soil moisture on dry days changes {rate:+.2f} % a day more since {start:%d %b} than the weather "
        f"at {_where(own)} explains: a drifting probe?"
    )
    return np.sign(rate), Flag(
        "soil_moisture",
        AnomalyKind.DRIFT,
        start,
        own.index[-1] + END_OF_DAY,
        explained / t.min_dry_explained,
        text,
    )


def _days_from_first(days: pd.DatetimeIndex) -> np.ndarray:
    """Each of `days` as days since the first, from their integer times: as dividing their timedeltas
    by a day, without the TimedeltaIndex (this runs for every sensor)."""
    ns = days.as_unit("ns").asi8
    return (ns - ns[0]) / DAY.value


def _daily_weather(stations: pd.DataFrame) -> dict[str, pd.DataFrame]:
    """Per site, daily rain (mm) and mean air temperature (°C) where reported."""
    columns = [c for c in ("rainfall", "air_temperature") if c in stations]
    day = stations["ts"].dt.floor("D").rename("day")
    grouped = stations.groupby([stations["site_id"], day])
    daily = grouped[columns].agg({c: ("sum" if c == "rainfall" else "mean") for c in columns})
    if "rainfall" in columns:  # a day without one rain report is unknown, not dry
        daily["rainfall"] = daily["rainfall"].where(grouped["rainfall"].count() > 0)
    if "air_temperature" not in daily:
        daily["air_temperature"] = np.nan
    return {site: own.droplevel(0) for site, own in daily.groupby(level=0)}


def _best_change(
    day: np.ndarray, covariates: np.ndarray, y: np.ndarray, edge: int, shape: str
) -> tuple[float, float, float]:
    """Fit y ≈ a + covariates·c; then, for every day k (all at once, by the normal equations), the same
    plus b·max(0, day − k) (a ramp) or b·[day ≥ k] (a step). Return the share of the first fit's
    residual the best k removes, that k (days from the first), and its b."""
    base = np.column_stack([np.ones_like(y), covariates])
    coef, *_ = np.linalg.lstsq(base, y, rcond=None)
    rss0 = float(((y - base @ coef) ** 2).sum())
    starts = np.arange(day[0] + edge, day[-1] - edge + 1)
    if rss0 <= 0 or len(starts) == 0:
        return 0.0, 0.0, 0.0
    after = day[None, :] - starts[:, None]  # (starts, days)
    change = np.clip(after, 0, None) if shape == "ramp" else (after >= 0).astype(float)
    columns = np.concatenate(
        [change[:, None, :], np.broadcast_to(base.T, (len(starts), *base.T.shape))], axis=1
    )
    gram = np.einsum("kid,kjd->kij", columns, columns)
    moment = np.einsum("kid,d->ki", columns, y)
    fit = np.linalg.solve(gram + 1e-9 * np.eye(columns.shape[1]), moment[..., None])[..., 0]
    rss = (y**2).sum() - (fit * moment).sum(axis=1)
    # At least MIN_SIDE samples on each side of k, so that one odd day cannot pass for a change.
    later = (after >= 0).sum(axis=1)
    rss[~np.isfinite(rss) | (later < MIN_SIDE) | (len(day) - later < MIN_SIDE)] = np.inf
    best = int(np.argmin(rss))
    if not np.isfinite(rss[best]):
        return 0.0, 0.0, 0.0
    return float(1 - rss[best] / rss0), float(starts[best] - day[0]), float(fit[best, 0])


# --- shared pieces --------------------------------------------------------------------------------------


def _centred_median(days: pd.DataFrame, column: str) -> pd.Series:
    """Median of each day's value and its neighbours' (the rows before and after, same sensor), given
    at least two of the three."""
    same_before = days["sensor_id"] == days["sensor_id"].shift()
    same_after = days["sensor_id"] == days["sensor_id"].shift(-1)
    values = np.column_stack(
        [
            days[column].shift().where(same_before),
            days[column],
            days[column].shift(-1).where(same_after),
        ]
    ).astype(float)
    enough = (~np.isnan(values)).sum(axis=1) >= 2
    with np.errstate(all="ignore"):
        middle = np.where(enough, np.nanmedian(np.where(enough[:, None], values, 0.0), axis=1), np.nan)
    return pd.Series(middle, index=days.index)


def _where(rows: pd.DataFrame) -> str:
    return f"WOW station {rows['site_id'].iloc[0]} ({rows['distance_km'].iloc[0]:.1f} km)"


def _on_days(count: int) -> str:
    return f" on {count} day{'s' if count > 1 else ''}"


# --- one sensor, one station (for a notebook) -------------------------------------------------------------


def _one(
    sensor: pd.Series,
    station: pd.Series,
    station_id: str,
    distance_km: float,
    column: str,
    station_column: str,
):
    readings = pd.DataFrame({"sensor_id": "sensor", "ts": sensor.index, column: sensor.to_numpy()})
    stations = pd.DataFrame({"site_id": station_id, "ts": station.index, station_column: station.to_numpy()})
    links = pd.DataFrame({"sensor_id": ["sensor"], "site_id": [station_id], "distance_km": [distance_km]})
    return readings, stations, links


def daily_comparison(
    sensor_temperature: pd.Series,
    station_temperature: pd.Series,
    min_hours: int = TemperatureThresholds.min_hours,
) -> pd.DataFrame:
    """`temperature_days` of one sensor and one station, indexed by day."""
    frames = _one(
        sensor_temperature, station_temperature, "station", 0.0, "air_temperature", "air_temperature"
    )
    return temperature_days(*frames, min_hours=min_hours).set_index("day")


def check_temperature_against_station(
    sensor_temperature: pd.Series,
    station_temperature: pd.Series,
    station: str,
    distance_km: float,
    **thresholds,
) -> list[Flag]:
    """The temperature checks, thresholds (`TemperatureThresholds`) overridden by name."""
    t = override_thresholds("temperature", TemperatureThresholds(), thresholds)
    frames = _one(
        sensor_temperature, station_temperature, station, distance_km, "air_temperature", "air_temperature"
    )
    return [flag for _, flag in temperature_flags(temperature_days(*frames, min_hours=t.min_hours), t)]


def check_soil_against_rain(
    soil_moisture: pd.Series, station_rainfall: pd.Series, station: str, distance_km: float, **thresholds
) -> list[Flag]:
    """The rising-without-rain check, thresholds (`RisingWithoutRainThresholds`) overridden by name."""
    t = override_thresholds("rising_without_rain", RisingWithoutRainThresholds(), thresholds)
    readings, stations, links = _one(
        soil_moisture, station_rainfall, station, distance_km, "soil_moisture", "rainfall"
    )
    return [flag for _, flag in rain_flags(soil_days(readings, stations, links), t)]


def check_soil_drift(
    soil_moisture: pd.Series,
    station_rainfall: pd.Series,
    station: str,
    distance_km: float,
    station_temperature: pd.Series | None = None,
    **thresholds,
) -> list[Flag]:
    """The drift check, thresholds (`DriftThresholds`) overridden by name."""
    t = override_thresholds("drift", DriftThresholds(), thresholds)
    readings, stations, links = _one(
        soil_moisture, station_rainfall, station, distance_km, "soil_moisture", "rainfall"
    )
    if station_temperature is not None:
        temperature = station_temperature.rename("air_temperature").rename_axis("ts").reset_index()
        stations = stations.merge(temperature.assign(site_id=station), on=["site_id", "ts"], how="outer")
    days = soil_days(readings, stations, links)
    return [flag for _, flag in drift_flags(days, stations, t)]
