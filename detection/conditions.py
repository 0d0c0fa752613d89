"""Conditions: what a garden goes through that is not a fault, but would trip the checks.

- frozen soil: a probe in frozen soil reads ice, not water, and holds its reading (or drops it as the
  water freezes) until the thaw: stuck, broken or out of the soil to the rules, unlike any day to the
  model. Soil freezes after days of frost, so it is recognised from how cold the soil must be: the air
  temperature, the sensor's own and its station's, followed with the lag of the soil (`soil_lag`).
- snow cover: a sensor buried in snow is dark and sits near 0 °C, whatever the air above does: stuck,
  broken, flat while the station swings, an unusual day. Recognised hour by hour from its own air
  temperature (near 0 °C and barely moving: snow insulates) and light (dark at hours the sun reaches it
  on the days around).
- a watering system wets the soil at the same hour every day, rain or not: soil moisture rising without
  rain, days of a shape the model never learnt. Recognised from the hour of each day's sharpest rise.

`find_conditions` returns them as flags of their own kinds (the detector is "condition"), kept and shown
with an explanation but never making a sensor faulty. `stand_down` blanks the readings the checks would
misjudge while a condition lasts (and a margin around it): the rules, the models and the station checks
then see a gap there. A stuck or broken probe is still found once the thaw comes, since it stays stuck
or broken after.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.ndimage import maximum_filter1d, minimum_filter1d

from core.lag import exponential_lag
from core.times import DAY, HOUR, HOUR_NS, epoch_ns, moment_ns
from core.vocabulary import SENSOR_VARIABLES, AnomalyKind, Detector
from detection.checks import (
    DEFAULT,
    NOTHING,
    SOAKING,
    Configuration,
    FrozenSoilThresholds,
    SnowCoverThresholds,
    WateringSystemThresholds,
    register,
)
from detection.rules import Flag, sensor_then_time

SECOND = pd.Timedelta(seconds=1)
DEFAULT_FROZEN = FrozenSoilThresholds()
DEFAULT_SNOW = SnowCoverThresholds()
DEFAULT_WATERING = WateringSystemThresholds()
WATERING_EDGE = 4 * DAY

# What each condition blanks, for the checks that stand down for it (each check declares which:
# `detection.checks.Check.stands_down`).
BLANKS = {
    AnomalyKind.FROZEN_SOIL: ("soil_moisture",),
    AnomalyKind.SNOW_COVER: ("soil_moisture", "air_temperature", "light"),
    AnomalyKind.WATERING_SYSTEM: ("soil_moisture",),
}
FLOAT_SLACK = 1e-9  # what floating point adds to a difference of readings in tenths


class Grid:
    """Readings of many sensors (or stations) on one calendar of `unit` steps (hours, days): each
    reading's cell, sensor by sensor, for per-cell sums, extremes and counts all at once (integer codes
    throughout: grouping by millions of ids and times as pandas keys is what costs)."""

    def __init__(self, frame: pd.DataFrame, key: str, unit_ns: int = HOUR_NS):
        sensors = (
            frame[key] if isinstance(frame[key].dtype, pd.CategoricalDtype) else frame[key].astype("category")
        )
        self.ids = sensors.cat.categories.to_numpy(dtype=object)
        codes = sensors.cat.codes.to_numpy().astype(np.int64)
        self.ns = epoch_ns(frame["ts"])
        first = int(self.ns.min()) // unit_ns if len(self.ns) else 0
        last = int(self.ns.max()) // unit_ns if len(self.ns) else 0
        self.width = last - first + 1
        self.times = pd.to_datetime(np.arange(first, last + 1) * unit_ns, utc=True)
        self.codes = codes
        self.cell = np.where(codes >= 0, codes * self.width + (self.ns // unit_ns - first), -1)
        self.shape = (len(self.ids), self.width)

    def reduce(self, values: np.ndarray, how: str, keep: np.ndarray | None = None) -> np.ndarray:
        """Per cell, the "mean", "min", "max" or "count" of `values` (NaN where it has none)."""
        keep = ~np.isnan(values) & (self.cell >= 0) if keep is None else keep & (self.cell >= 0)
        cell, values = self.cell[keep], values[keep]
        size = self.shape[0] * self.shape[1]
        count = np.bincount(cell, minlength=size)
        if how == "count":
            return count.reshape(self.shape)
        if how == "mean":
            with np.errstate(invalid="ignore", divide="ignore"):
                out = np.bincount(cell, weights=values, minlength=size) / count
        else:
            out = np.full(size, np.inf if how == "min" else -np.inf)
            (np.minimum if how == "min" else np.maximum).at(out, cell, values)
            out[count == 0] = np.nan
        return out.reshape(self.shape)


def _plausible(frame: pd.DataFrame, variable: str) -> np.ndarray:
    """The values of `variable` inside the vocabulary's range, NaN elsewhere (a probe reading -60 °C says
    nothing of the frost)."""
    values = frame[variable].to_numpy(dtype=np.float64, na_value=np.nan)
    low, high = SENSOR_VARIABLES[variable].low, SENSOR_VARIABLES[variable].high
    with np.errstate(invalid="ignore"):
        return np.where((values >= low) & (values <= high), values, np.nan)


@dataclass
class Garden:
    """What the conditions are recognised from: the readings, the stations and links where given, and
    the readings' hours (frost and snow look at the same ones; `grid` if given)."""

    readings: pd.DataFrame
    stations: pd.DataFrame | None
    links: pd.DataFrame | None
    grid: Grid | None = None

    @cached_property
    def hourly(self) -> Grid:
        return self.grid or Grid(self.readings, "sensor_id")


def find_conditions(
    readings: pd.DataFrame,
    stations: pd.DataFrame | None = None,
    links: pd.DataFrame | None = None,
    config: Configuration = DEFAULT,
    hourly: Grid | None = None,
) -> list[tuple[str, Flag]]:
    """The conditions `config` selects, on every sensor of `readings` (sensor_id, a UTC ts column and the
    variables): (sensor_id, flag) pairs. The station's air temperature (`stations`, `links`) helps tell
    frost where given. `hourly`: the readings' `Grid` by hour, if already made."""
    if readings.empty or readings["sensor_id"].isna().all():
        return []
    garden = Garden(readings, stations, links, hourly)
    found = []
    for check in config.running(Detector.CONDITION):
        found += check.function(garden, config.thresholds[check.name])
    return found


@register("frozen_soil")
def _frozen_soil(garden: Garden, t: FrozenSoilThresholds) -> list[tuple[str, Flag]]:
    if not {"soil_moisture", "air_temperature"} <= set(garden.readings):
        return []
    return frozen_soil(garden.readings, garden.stations, garden.links, t, garden.hourly)


@register("snow_cover")
def _snow_cover(garden: Garden, t: SnowCoverThresholds) -> list[tuple[str, Flag]]:
    return snow_cover(garden.readings, t, garden.hourly) if "air_temperature" in garden.readings else []


@register("watering_system")
def _watering_system(garden: Garden, t: WateringSystemThresholds) -> list[tuple[str, Flag]]:
    return watering_system(garden.readings, t) if "soil_moisture" in garden.readings else []


class Views:
    """The readings as each set of conditions leaves them for the checks that stand down for it
    (`detection.checks.Check.stands_down`), each blanked once and kept: `views[stands_down]`. `hourly`:
    the readings' `Grid` by hour, if already made (one serves every view)."""

    def __init__(
        self,
        readings: pd.DataFrame,
        conditions: list[tuple[str, Flag]],
        config: Configuration,
        hourly: Grid | None = None,
    ):
        self.readings, self.conditions, self.config = readings, conditions, config
        self._made: dict[frozenset, pd.DataFrame] = {NOTHING: readings}
        self._hourly = hourly

    def __getitem__(self, stands_down: frozenset) -> pd.DataFrame:
        if stands_down not in self._made:
            conditions = self.conditions
            if SOAKING in stands_down:
                conditions = soaking(conditions, self.config)
            kinds = [kind for kind in stands_down if kind != SOAKING]
            self._made[stands_down] = stand_down(self.readings, conditions, kinds, self._hourly)
        return self._made[stands_down]

    def prepare(self, checks) -> Views:
        """Every view `checks` need, made now (before threads share them)."""
        for check in checks:
            self[check.stands_down]
        return self


def soaking(conditions: list[tuple[str, Flag]], config: Configuration = DEFAULT) -> list[tuple[str, Flag]]:
    """The conditions with each frozen spell and each watering season lengthened by the days the garden
    stays wetter than the station's weather explains after it (the `soaked` of their thresholds: the
    thaw's snowmelt, a summer of watering): for the checks that take soil moisture for the weather."""
    after = {
        kind: config.thresholds[kind.value].soaked
        for kind in (AnomalyKind.FROZEN_SOIL, AnomalyKind.WATERING_SYSTEM)
        if kind.value in config.thresholds
    }
    return [
        (sensor, replace(flag, end=flag.end + after[flag.kind]) if flag.kind in after else flag)
        for sensor, flag in conditions
    ]


# --- frozen soil ----------------------------------------------------------------------------------------


def frozen_soil(
    readings: pd.DataFrame,
    stations: pd.DataFrame | None,
    links: pd.DataFrame | None,
    t: FrozenSoilThresholds = DEFAULT_FROZEN,
    grid: Grid | None = None,
) -> list[tuple[str, Flag]]:
    """Spells in which the soil under the sensor is likely frozen: the soil's temperature, estimated from
    the air's (the sensor's own, or its station's, whichever is colder, unless the sensor's own is
    `warm_sensor` or more) lagged by `soil_lag`, below `below`; widened by `margin` either side, as the
    ground freezes and thaws unevenly."""
    grid = grid or Grid(readings, "sensor_id")
    air = grid.reduce(_plausible(readings, "air_temperature"), "mean")
    has_soil = grid.reduce(readings["soil_moisture"].to_numpy(dtype=np.float64, na_value=np.nan), "count")
    ids, hours = grid.ids, grid.times
    soil = _lagged(air, t.soil_lag / HOUR)
    station_soil = _station_soil(stations, links, ids, hours, t)
    with np.errstate(invalid="ignore"):
        station_soil[soil >= t.warm_sensor] = np.nan  # a warm sensor is not in frozen ground
    source = np.where(np.isnan(soil) | (station_soil < soil), 1, 0)  # who says frost: 0 sensor, 1 station
    coldest = np.fmin(soil, station_soil)
    with np.errstate(invalid="ignore"):
        frozen = (coldest < t.below) & (has_soil.sum(axis=1) > 0)[:, None]
    margin = int(t.margin / HOUR)
    widened = maximum_filter1d(frozen.astype(np.uint8), 2 * margin + 1, axis=1, mode="constant").astype(bool)
    found = []
    for row, first, last in _true_runs(widened):
        spell = slice(first, last + 1)
        frost = frozen[row, spell]
        lowest = float(np.nanmin(coldest[row, spell]))
        days = frost.sum() / 24
        said = "its WOW station" if np.mean(source[row, spell][frost]) > 0.5 else "its own air temperature"
        text = (
            f"soil likely frozen for {days:.1f} days (as {said} tells, the soil down to {lowest:.1f} °C): "
            "soil moisture reads ice, and its checks stand down until the thaw"
        )
        flag = Flag(
            "soil_moisture",
            AnomalyKind.FROZEN_SOIL,
            hours[first],
            hours[last] + HOUR - pd.Timedelta(seconds=1),
            1.0 + max(0.0, t.below - lowest),
            text,
        )
        found.append((ids[row], flag))
    return found


def _lagged(values: np.ndarray, lag_hours: float) -> np.ndarray:
    """Each row followed with an exponential lag of `lag_hours` (gaps carried over by their last value);
    NaN before a row's first value and after its last (rows of a chunk span different windows). A row
    starts from the mean of its first day, not its first hour: a window may open on a frosty night."""
    known = ~np.isnan(values)
    started = np.maximum.accumulate(known, axis=1)
    started &= np.maximum.accumulate(known[:, ::-1], axis=1)[:, ::-1]
    filled = pd.DataFrame(values).ffill(axis=1).bfill(axis=1).fillna(0.0).to_numpy()
    first = np.argmax(known, axis=1)[:, None] + np.arange(24)[None, :]
    first_day = np.take_along_axis(filled, np.minimum(first, filled.shape[1] - 1), axis=1).mean(axis=1)
    filled = np.where(started, filled, first_day[:, None])  # before its first value, it starts there
    alpha = 1.0 / max(lag_hours, 1.0)
    out = exponential_lag(filled, alpha, first_day)
    return np.where(started, out, np.nan)


def _station_soil(stations, links, ids, hours, t: FrozenSoilThresholds) -> np.ndarray:
    """The soil's temperature estimated from each sensor's station (rows as `ids`), NaN without one."""
    out = np.full((len(ids), len(hours)), np.nan)
    if stations is None or links is None or stations.empty or "air_temperature" not in stations:
        return out
    link = links[links["site_id"].notna()].drop_duplicates("sensor_id").set_index("sensor_id")["site_id"]
    sites = link.reindex(ids).astype(object)
    mine = stations[stations["site_id"].isin(set(sites.dropna()))]
    if mine.empty:
        return out
    grid = Grid(mine, "site_id")
    lagged = pd.DataFrame(
        _lagged(grid.reduce(_plausible(mine, "air_temperature"), "mean"), t.soil_lag / HOUR),
        index=grid.ids,
        columns=grid.times,
    ).reindex(columns=hours)
    found = sites.notna().to_numpy()
    out[found] = lagged.reindex(sites[found]).to_numpy()
    return out


def _true_runs(mask: np.ndarray) -> Iterable[tuple[int, int, int]]:
    """(row, first, last) of each run of True along the rows of a 2-D mask."""
    padded = np.zeros((mask.shape[0], mask.shape[1] + 2), dtype=np.int8)
    padded[:, 1:-1] = mask
    edges = np.diff(padded, axis=1)
    rows, starts = np.nonzero(edges == 1)
    _, stops = np.nonzero(edges == -1)  # row-major: the same order as the starts
    return zip(rows, starts, stops - 1)


# --- snow cover -----------------------------------------------------------------------------------------


def snow_cover(
    readings: pd.DataFrame, t: SnowCoverThresholds = DEFAULT_SNOW, grid: Grid | None = None
) -> list[tuple[str, Flag]]:
    """Spells in which a sensor lay under snow: its air temperature between `coldest` and `warmest`,
    moving no more than `flat` within an hour and from one hour to the next, for `min_duration` at least,
    never as bright as `dark` and `darkness` times the brightest light of that hour of the day within
    `around` days, and dark (under that share) for two hours at least when the sun would reach it (a calm
    cold night alone is no evidence, nor a sensor without light), or lasting a day and a night (as in
    deep winter the days around may be buried too). Widened by `margin` either side, as the snow comes
    and goes."""
    grid = grid or Grid(readings, "sensor_id")
    air = _plausible(readings, "air_temperature")
    low, high, means = (grid.reduce(air, how) for how in ("min", "max", "mean"))
    ids, hours = grid.ids, grid.times
    # Snow insulates: within each hour, and from one hour to the next, the reading barely moves.
    # (Readings come in tenths: 3.5 - 3.2 is 0.30000000000000027 in floating point, and is still 0.3.)
    change = np.abs(np.diff(means, axis=1))
    flat = t.flat + FLOAT_SLACK
    with np.errstate(invalid="ignore"):
        steady = np.zeros(means.shape, dtype=bool)
        steady[:, 1:] |= change <= flat
        steady[:, :-1] |= change <= flat
        buried = steady & (high - low <= flat) & (low > t.coldest) & (high < t.warmest)
        # And it is dark: an hour as bright as days around it can be is no hour under snow.
        light = (
            grid.reduce(readings["light"].to_numpy(dtype=np.float64, na_value=np.nan), "max")
            if "light" in readings
            else np.full(grid.shape, np.nan)
        )
        usual = _brightest_at_hour(light, hours, t.around)
        bright = (light >= t.dark) & (light >= t.darkness * usual)
        # Evidence: hours the sun reaches the sensor on the days around, dark now. At night all is dark.
        dark_by_day = (usual >= t.dark) & (light < t.darkness * usual)
    # Snow does not come and go within an hour or two: a stir that long (a gust, the sensor's own noise
    # in tenths) inside a buried spell does not end it.
    buried = _bridged(buried, int(t.stir / HOUR)) & ~bright & (low > t.coldest) & (high < t.warmest)
    found = []
    for row, first, last in _true_runs(buried):
        hours_buried = last - first + 1
        if hours_buried < t.min_duration / HOUR:
            continue
        if hours_buried < 24 and dark_by_day[row, first : last + 1].sum() < 2:
            continue  # calm and cold for hours, with no dark daylight hour (or no light): nothing says snow
        text = (
            f"under snow for {_duration(hours_buried)}: dark, and near 0 °C whatever the air does; "
            "its checks stand down until it melts"
        )
        start, end = hours[first] - t.margin, hours[last] + HOUR + t.margin - SECOND
        found.append(
            (ids[row], Flag("light", AnomalyKind.SNOW_COVER, start, end, hours_buried / 24 + 1, text))
        )
    return found


def _bridged(mask: np.ndarray, hours: int) -> np.ndarray:
    """Each row with its gaps of up to `hours` filled (a closing: dilate, then erode). The ends of a
    row stay as they were."""
    if hours < 1:
        return mask
    size = 2 * ((hours + 1) // 2) + 1  # a window reaching (size - 1) / 2 either side fills gaps twice that
    grown = maximum_filter1d(mask.astype(np.uint8), size, axis=1, mode="constant")
    closed = minimum_filter1d(grown, size, axis=1, mode="constant", cval=0)
    return closed.astype(bool) | mask


def _duration(hours: int) -> str:
    return f"{hours} h" if hours < 48 else f"{hours / 24:.1f} days"


def _brightest_at_hour(light: np.ndarray, hours: pd.DatetimeIndex, days: int) -> np.ndarray:
    """Per sensor and hour, the brightest light at the same hour of the day within `days` days either
    side (-inf where none): how bright that hour can be there in that season."""
    before = hours[0].hour
    after = (-(before + light.shape[1])) % 24
    padded = np.pad(np.nan_to_num(light, nan=-np.inf), ((0, 0), (before, after)), constant_values=-np.inf)
    by_day = padded.reshape(light.shape[0], -1, 24)
    brightest = maximum_filter1d(by_day, 2 * days + 1, axis=1, mode="nearest")
    return brightest.reshape(light.shape[0], -1)[:, before : before + light.shape[1]]


# --- watering system ------------------------------------------------------------------------------------


def watering_days(readings: pd.DataFrame, t: WateringSystemThresholds = DEFAULT_WATERING) -> pd.DataFrame:
    """(sensor_id, day, hour) of the days a watering system wetted the soil: the day's sharpest rise of
    soil moisture (at least `min_rise` in one sample) came within `same_hour` of the same time of day
    on at least `min_days` of the seven days around it."""
    days = Grid(readings, "sensor_id", 24 * HOUR_NS)
    soil = readings["soil_moisture"].to_numpy(dtype=np.float64, na_value=np.nan)
    present = np.flatnonzero(~np.isnan(soil) & (days.codes >= 0))
    order = present[sensor_then_time(days.codes[present], days.ns[present])]
    rise = np.full(len(soil), np.nan)
    codes = days.codes[order]
    rise[order[1:]] = np.where(codes[1:] == codes[:-1], np.diff(soil[order]), np.nan)
    with np.errstate(invalid="ignore"):
        wetted = rise >= t.min_rise
    if not wetted.any():
        return pd.DataFrame({"sensor_id": [], "day": pd.to_datetime([], utc=True), "hour": []})
    # Each day's sharpest rise, and the hour of the day it came at (looked for among the rises alone).
    sharpest = days.reduce(rise, "max", wetted).ravel()
    at = np.flatnonzero(wetted)
    at = at[rise[at] == sharpest[days.cell[at]]]
    grid = np.full(days.shape[0] * days.shape[1], np.nan)
    grid[days.cell[at]] = (days.ns[at] % (24 * HOUR_NS)) / HOUR_NS
    grid = grid.reshape(days.shape)
    same = np.zeros(grid.shape, dtype=np.int64)
    tolerance = t.same_hour / HOUR
    width = grid.shape[1]
    for shift in range(-3, 4):
        if abs(shift) >= width:
            continue
        other = np.full(grid.shape, np.nan)
        if shift >= 0:
            other[:, : width - shift] = grid[:, shift:]
        else:
            other[:, -shift:] = grid[:, :shift]
        gap = np.abs(grid - other)
        with np.errstate(invalid="ignore"):
            same += np.minimum(gap, 24 - gap) <= tolerance
    rows, columns = np.nonzero(same >= t.min_days)
    return pd.DataFrame(
        {"sensor_id": days.ids[rows], "day": days.times[columns], "hour": grid[rows, columns]}
    )


def watering_system(
    readings: pd.DataFrame, t: WateringSystemThresholds = DEFAULT_WATERING
) -> list[tuple[str, Flag]]:
    """Spells of days wetted by a watering system, days without a wetting up to `max_gap_days` included."""
    days = watering_days(readings, t)
    earliest, latest = readings["ts"].min().floor("D"), readings["ts"].max().floor("D")
    found = []
    for sensor, own in days.groupby("sensor_id"):
        own = own.sort_values("day")
        new = own["day"].diff() > pd.Timedelta(days=t.max_gap_days + 1)
        for _, spell in own.groupby(new.cumsum()):
            first, last = spell["day"].iloc[0], spell["day"].iloc[-1]
            hour = float(spell["hour"].median())
            count = len(spell)
            text = (
                f"soil wetted every day at about {int(hour):02d}:{int(hour % 1 * 60):02d} UTC "
                f"on {count} days, "
                "rain or not: a watering system, not a fault; the checks that take every rise for rain "
                "stand down"
            )
            # The first and last days of a spell have fewer such days around them: widened by as many
            # (within the readings).
            first = max(first - WATERING_EDGE, earliest)
            last = min(last + WATERING_EDGE, latest)
            end = last + DAY - SECOND
            flag = Flag("soil_moisture", AnomalyKind.WATERING_SYSTEM, first, end, count / t.min_days, text)
            found.append((sensor, flag))
    return found


# --- snow that melts later -------------------------------------------------------------------------------

SNOW_BELOW_C = 0.5  # air temperature under which precipitation falls as snow
MELT_MM_PER_C_HOUR = 3.0 / 24  # degree-day melt, a textbook 3 mm of water per °C above zero per day


def ground_water(precipitation: np.ndarray, air: np.ndarray) -> np.ndarray:
    """Per site (rows) and hour: the water reaching the ground, from the precipitation (mm an hour) and
    the air temperature: what falls below SNOW_BELOW_C lies as snow and reaches the soil as it melts, by
    degree-days. Hours without a temperature count their precipitation as rain."""
    air = np.nan_to_num(air, nan=10.0)
    rain = np.nan_to_num(precipitation, nan=0.0)
    snowing = air < SNOW_BELOW_C
    water = np.where(snowing, 0.0, rain)
    pack = np.zeros(rain.shape[0])
    melting = MELT_MM_PER_C_HOUR * np.clip(air, 0.0, None)
    for hour in range(rain.shape[1]):
        melt = np.minimum(pack, melting[:, hour])
        pack += np.where(snowing[:, hour], rain[:, hour], 0.0) - melt
        water[:, hour] += melt
    return np.where(np.isnan(precipitation), np.nan, water)


# --- standing the checks down ---------------------------------------------------------------------------


def stand_down(
    readings: pd.DataFrame,
    conditions: list[tuple[str, Flag]],
    kinds: Iterable[AnomalyKind],
    hourly: Grid | None = None,
) -> pd.DataFrame:
    """`readings` with the values blanked that the conditions of `kinds` make misleading (`BLANKS`), over
    each condition's span; the same frame when there is nothing to blank. `hourly`: the readings'
    `Grid` by hour, if already made."""
    kinds = set(kinds)
    chosen = [(sensor, flag) for sensor, flag in conditions if flag.kind in kinds]
    if not chosen:
        return readings
    grid = hourly or Grid(readings, "sensor_id")
    blanked, found = {}, {}
    for variable in ("soil_moisture", "air_temperature", "light"):
        spans = tuple((s, f) for s, f in chosen if variable in BLANKS[f.kind])
        if variable not in readings or not spans:
            continue
        if spans not in found:  # snow alone blanks the air and the light over the same spans
            found[spans] = _inside(grid, list(spans))
        if found[spans].any():
            blanked[variable] = readings[variable].mask(found[spans])
    return readings.assign(**blanked) if blanked else readings


def _inside(grid: Grid, spans: list[tuple[str, Flag]]) -> np.ndarray:
    """Per reading of `grid`, whether it lies in one of the spans of its sensor (all readings at once:
    the spans, merged per sensor, are searched by sensor and time together)."""
    index = {sensor: i for i, sensor in enumerate(grid.ids)}
    table = pd.DataFrame(
        {
            "code": [index.get(s, -1) for s, _ in spans],
            "start": [moment_ns(f.start) for _, f in spans],
            "end": [moment_ns(f.end) for _, f in spans],
        }
    )
    table = table[table["code"] >= 0].sort_values(["code", "start"])
    if table.empty:
        return np.zeros(len(grid.ns), dtype=bool)
    # Merge each sensor's overlapping spans, so that they are disjoint and sorted.
    code, start, end = (table[c].to_numpy(dtype=np.int64) for c in ("code", "start", "end"))
    reach = pd.Series(end).groupby(code).cummax().to_numpy()
    new = np.ones(len(code), dtype=bool)
    new[1:] = (code[1:] != code[:-1]) | (start[1:] > reach[:-1])
    end = np.maximum.reduceat(reach, np.flatnonzero(new))
    code, start = code[new], start[new]
    # Readings and spans ordered by (sensor, time) as one key: sensor first, then seconds.
    origin = min(int(grid.ns.min()), int(start.min()))
    scale = 2**33  # seconds: past the year 2240, far beyond any reading
    first = code * scale + (start - origin) // 10**9
    last = code * scale + (end - origin) // 10**9
    rows = np.flatnonzero(np.isin(grid.codes, code))  # the readings of sensors with a span: few, mostly
    key = grid.codes[rows] * scale + (grid.ns[rows] - origin) // 10**9
    at = np.searchsorted(first, key, side="right") - 1
    inside = np.zeros(len(grid.ns), dtype=bool)
    inside[rows] = (at >= 0) & (key <= last[np.maximum(at, 0)])
    return inside
