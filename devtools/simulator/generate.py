"""Generate a deterministic GROW network: sensors, WOW stations, 15-minute readings and labelled faults.

The physics is simple but shared where it must be, so that a station is a fair witness:
- each place has its own weather: a day-to-day temperature anomaly, cloudiness and rain events;
  every sensor and station near it feels the same weather, with its own small offsets and noise;
- the network's physical constants (snow, melt, frost, evaporation, drainage, noise, the probes'
  reporting steps) are drawn from ranges with its seed (`physics`) and written into network.json, so no
  two seeds share them and none is the detector's;
- air temperature = climate mean + season + day/night swing (damped by cloud) + weather anomaly;
- light follows the sun's elevation at the sensor, dimmed by cloud and the sensor's shade;
- soil moisture is a bucket: it jumps with the rain the nearby stations also record, drains to field
  capacity day and night, and evaporates by day, as the sun drives it (Makkink), hardly at night; some
  gardeners water in dry spells;
- probes report in steps, as real ones do: soil moisture in the sensor's own step (0.1, 0.2 or 0.5 %),
  air temperature in tenths of a degree, with noise below the step: a dry night, or dry soil near its
  wilting point, holds the same value for hours; stations' rain gauges report whole tips of the bucket;
- the battery declines slowly; phones upload in bursts, so readings arrive late but complete; each
  sensor samples every 15 minutes by its own clock, which runs a little fast or slow until the phone
  sets it right at the next upload (`Network.sensor_times_us`);
- the seasons (`seasons`): cold spells in winter, longer and deeper inland and north, heat waves in
  summer; snow that buries sensors (dark, at the snow's temperature: never above 0 °C) and soil that
  freezes (the probe holds or drops its reading until the thaw); a few gardens have a watering system
  that wets the soil every day of the growing season at the same hour, rain or not forecast.
None of that is a fault; the true spans of snow cover and frozen soil go to conditions.csv. About a
quarter of the sensors then get one fault, whose ground truth goes to labels.csv only (with whether
frozen soil hides it from every check while it lasts).
"""

from __future__ import annotations

import datetime as dt
import json
import string
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

from devtools.simulator import seasons
from devtools.simulator.network import (
    GROW_VARIABLES,
    MISSING,
    NODATA,
    SCALE,
    STEP,
    STEPS_PER_DAY,
    WOW_VARIABLES,
)
from devtools.simulator.physics import Physics, draw_physics
from devtools.simulator.places import PLACES

FAULT_KINDS = (
    "stuck",
    "spike",
    "drift",
    "out_of_range",
    "probe_out_of_soil",
    "full_sun",
    "indoors",
    "dying_battery",
    "noisy",
    "moved",
    "indoors_for_winter",
)
FAULTY_SHARE = 0.25
# hidden_by_frost: the fault lies in frozen soil, where no check can see it (`_hidden_by_frost`)
LABEL_COLUMNS = ["sensor_id", "variable", "kind", "start", "end", "hidden_by_frost"]
NODATA_SHARE = 0.001


def generate(
    folder: str | Path,
    sensors: int,
    days: int,
    seed: int,
    end: dt.datetime | None = None,
    stations: int | None = None,
    start: dt.datetime | None = None,
) -> dict:
    """Write a network of `sensors` sensors over `days` days into `folder`: the days before `end`, or
    from `start` (one of the two)."""
    if sensors < 1 or days < 1:
        raise ValueError("a network needs at least one sensor and one day")
    if (start is None) == (end is None):
        raise ValueError("give the network's start or its end, not both")
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    # The seasons draw from a stream of their own, so that the rest of a seed's network stays as it was.
    season_rng = np.random.default_rng([seed, 17])
    physics = draw_physics(seed)
    probe_rng = np.random.default_rng([seed, 31])
    steps = days * STEPS_PER_DAY
    start = start if start is not None else end - steps * STEP
    stations = stations if stations is not None else max(8, round(sensors * 0.77))

    clock = _clock(start, steps)
    sensor_meta = _place_sensors(rng, sensors, steps)
    _probe_traits(probe_rng, sensor_meta, physics)
    station_meta = _place_stations(rng, stations, sensor_meta["place"].to_numpy())
    station_meta["rain_tip_mm"] = probe_rng.choice(
        physics.rain_tips_mm, size=len(station_meta), p=_weights(physics.rain_tip_weights)
    )
    weather = _weather(rng, clock, season_rng)

    readings, sun = _sensor_readings(rng, clock, weather, sensor_meta, season_rng, physics)
    labels = _inject_faults(rng, readings, sun, weather, sensor_meta, clock)
    reports = _station_reports(rng, clock, weather, station_meta, physics)
    _report_in_steps(readings, sensor_meta, physics)

    for variable in GROW_VARIABLES:
        stored = _quantise(readings[variable])
        stored[rng.random(stored.shape) < NODATA_SHARE] = NODATA
        stored[~readings["sampled"]] = MISSING
        np.save(folder / f"grow_{variable}.npy", stored)
    for variable in WOW_VARIABLES:
        np.save(folder / f"wow_{variable}.npy", _quantise(reports[variable]))
    np.save(folder / "grow_syncs.npy", _uploads(rng, sensor_meta, steps))

    sensor_meta["first_step"] = readings["sampled"].argmax(axis=1)
    sensor_meta["last_step"] = steps - 1 - readings["sampled"][:, ::-1].argmax(axis=1)
    meta = {
        "seed": seed,
        "start": start.isoformat(),
        "steps": steps,
        "sensors": sensor_meta.drop(
            columns=[
                "shade",
                "offset",
                "watered",
                "battery_start",
                "battery_rate",
                "snow_exposure",
                "buried_light",
                "irrigation_hour",
                "irrigation_mm",
                *PROBE_COLUMNS,
            ]
        )
        .assign(watering_system=sensor_meta["irrigation_hour"].notna())
        .to_dict("records"),
        "stations": station_meta.drop(columns=["offset", "rain_factor"]).to_dict("records"),
        "physics": physics.as_dict(),
    }
    (folder / "network.json").write_text(json.dumps(meta, default=_plain))
    labels.to_csv(folder / "labels.csv", index=False)
    _conditions(readings, sensor_meta, clock).to_csv(folder / "conditions.csv", index=False)
    _write_fallback_file(folder)
    return {"sensors": sensors, "stations": stations, "steps": steps, "faults": len(labels)}


def _weights(weights) -> np.ndarray:
    weights = np.asarray(weights, dtype=np.float64)
    return weights / weights.sum()


def _plain(value):
    if isinstance(value, np.generic):
        return value.item()
    raise TypeError(f"cannot write {type(value)}")


def _quantise(values: np.ndarray) -> np.ndarray:
    scaled = np.round(np.nan_to_num(values, nan=MISSING / SCALE) * SCALE)
    return np.clip(scaled, MISSING, 32767).astype(np.int16)


# --- time and sun ------------------------------------------------------------------------------------


def _clock(start: dt.datetime, steps: int) -> dict[str, np.ndarray]:
    times = pd.date_range(start, periods=steps, freq=STEP)
    day_of_year = (times.day_of_year + times.hour / 24 + times.minute / 1440).to_numpy(dtype=np.float64)
    return {
        "utc_hours": (times.hour + times.minute / 60).to_numpy(dtype=np.float32),
        "day_of_year": day_of_year.astype(np.float32),
        "day": ((times - times[0].normalize()).days).to_numpy(),
        "declination": np.radians(23.44 * np.sin(2 * np.pi * (284 + day_of_year) / 365.25)).astype(
            np.float32
        ),
        "start": start,
    }


def solar_elevation_sine(latitude: np.ndarray, longitude: np.ndarray, clock: dict) -> np.ndarray:
    """sin(solar elevation) for each place (rows) at each step (columns)."""
    lat = np.radians(latitude.astype(np.float32))[:, None]
    solar_hour = (clock["utc_hours"][None, :] + longitude.astype(np.float32)[:, None] / 15.0) % 24
    hour_angle = np.radians((solar_hour - 12.0) * 15.0)
    decl = clock["declination"][None, :]
    return np.sin(lat) * np.sin(decl) + np.cos(lat) * np.cos(decl) * np.cos(hour_angle)


def _local_solar_hour(longitude: np.ndarray, clock: dict) -> np.ndarray:
    return (clock["utc_hours"][None, :] + longitude.astype(np.float32)[:, None] / 15.0) % 24


# --- where things are --------------------------------------------------------------------------------


def _codes(rng: np.random.Generator, count: int, length: int = 8) -> list[str]:
    alphabet = np.array(list(string.ascii_lowercase + string.digits))
    codes: set[str] = set()
    ordered = []
    while len(ordered) < count:
        code = "".join(rng.choice(alphabet, length))
        if code not in codes and not code[0].isdigit():
            codes.add(code)
            ordered.append(code)
    return ordered


def _place_sensors(rng: np.random.Generator, count: int, steps: int) -> pd.DataFrame:
    weights = np.array([3.0 if p.uk else 1.0 for p in PLACES])
    place = np.sort(rng.choice(len(PLACES), size=count, p=weights / weights.sum()))
    lat = np.array([PLACES[p].latitude for p in place]) + rng.normal(0, 0.08, count)
    lon = np.array([PLACES[p].longitude for p in place]) + rng.normal(0, 0.12, count)
    # Owners garden in one place and own one to several sensors.
    owner, owners, current, left = [], 0, None, 0
    for p in place:
        if p != current or left == 0:
            current, left, owners = p, int(rng.geometric(0.35)), owners + 1
            owner_id = str(uuid.UUID(bytes=rng.bytes(16), version=4))
        owner.append(owner_id)
        left -= 1
    serials = [f"PI040297AA4A{rng.integers(16**6):06X}" for _ in range(count)]
    names = [
        f"Parrot Flower Power soil sensor {s}" if rng.random() < 0.7 else f"{rng.choice(_BEDS)} {s[-4:]}"
        for s in serials
    ]
    days = steps / STEPS_PER_DAY
    battery_start = rng.uniform(60, 100, count)
    installed = np.where(rng.random(count) < 0.15, rng.integers(0, max(1, steps // 2), count), 0)
    return pd.DataFrame(
        {
            "sensor_id": _codes(rng, count),
            "name": names,
            "serial_number": serials,
            "owner_id": owner,
            "place": place,
            "latitude": np.round(lat, 6),
            "longitude": np.round(lon, 6),
            "phase_s": rng.integers(0, 900, count),
            "installed_step": installed,
            "shade": rng.uniform(0.35, 1.0, count),
            "offset": rng.normal(0, 0.6, count),
            "watered": rng.random(count) < 0.10,
            "battery_start": battery_start,
            # Clean batteries last the whole period with room to spare.
            "battery_rate": rng.uniform(0.05, 1.0, count) * np.minimum(0.3, (battery_start - 15) / days),
        }
    )


_BEDS = ("Tomato bed", "Allotment plot", "Herb garden", "Orchard", "Raised bed", "Vegetable patch", "Lawn")


def nearest_place(latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """Index of the nearest of PLACES to each point (equirectangular distance is enough here)."""
    lat0 = np.array([p.latitude for p in PLACES])
    lon0 = np.array([p.longitude for p in PLACES])
    dlat = latitude[:, None] - lat0[None, :]
    dlon = (longitude[:, None] - lon0[None, :]) * np.cos(np.radians(latitude))[:, None]
    return np.argmin(dlat**2 + dlon**2, axis=1)


def _place_stations(rng: np.random.Generator, count: int, sensor_places: np.ndarray) -> pd.DataFrame:
    """Dense in the UK, sparser elsewhere; at least two near every place that has sensors."""
    used = np.unique(sensor_places)
    anchors = list(np.repeat(used, 2))
    spreads = [0.12] * len(anchors)
    uk = np.array([i for i, p in enumerate(PLACES) if p.uk])
    others = np.array([i for i, p in enumerate(PLACES) if not p.uk])
    while len(anchors) < count:
        draw = rng.random()
        if draw < 0.55:
            anchors.append(rng.choice(uk))
            spreads.append(0.8)
        elif draw < 0.88:
            anchors.append(rng.choice(others))
            spreads.append(0.6)
        else:
            anchors.append(rng.integers(len(PLACES)))
            spreads.append(2.5)
    anchors = np.array(anchors[:count])
    spread = np.array(spreads[:count])
    lat = np.array([PLACES[p].latitude for p in anchors]) + rng.normal(0, 1, count) * spread * 0.7
    lon = np.array([PLACES[p].longitude for p in anchors]) + rng.normal(0, 1, count) * spread
    numeric = rng.random(count) < 0.6
    site_ids = [
        str(900000 + i * 7 + int(rng.integers(7)))
        if numeric[i]
        else str(uuid.UUID(bytes=rng.bytes(16), version=4))
        for i in range(count)
    ]
    state = rng.choice(["live", "stopped", "no_rain_gauge"], size=count, p=[0.85, 0.08, 0.07])
    weather_of = nearest_place(lat, lon)  # a station feels the weather where it stands
    return pd.DataFrame(
        {
            "site_id": site_ids,
            "name": [f"{PLACES[p].name} WOW {i}" for i, p in enumerate(weather_of)],
            "place": weather_of,
            "latitude": np.round(lat, 5),
            "longitude": np.round(lon, 5),
            "is_official": rng.random(count) < 0.05,
            "interval_steps": rng.choice([1, 2, 4], size=count, p=[0.5, 0.2, 0.3]),
            "state": state,
            "offset": rng.normal(0, 0.4, count),
            "rain_factor": rng.uniform(0.75, 1.25, count),
        }
    )


# --- weather per place -------------------------------------------------------------------------------


def _weather(rng: np.random.Generator, clock: dict, season_rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Temperature anomaly (°C), cloudiness (0..1) and rain (mm per 15 minutes) for each place."""
    steps = len(clock["utc_hours"])
    days = int(clock["day"][-1]) + 2
    n = len(PLACES)
    anomaly_daily = np.zeros((n, days))
    for d in range(1, days):
        anomaly_daily[:, d] = 0.8 * anomaly_daily[:, d - 1] + rng.normal(0, 1.6, n)
    rainy = rng.random((n, days)) < np.array([p.rain_day_chance for p in PLACES])[:, None]
    day_of_year = pd.date_range(clock["start"].date(), periods=days, freq="D").day_of_year.to_numpy()
    continental = seasons.continentality([p.seasonal_swing for p in PLACES])
    spell = seasons.spells(season_rng, day_of_year, continental)
    lat = np.array([p.latitude for p in PLACES])
    lon = np.array([p.longitude for p in PLACES])
    spell = seasons.shared_by_neighbours(spell, lat, lon)
    heat_wave = spell > 2.0  # dry and sunny
    anomaly_daily += spell
    rainy &= ~heat_wave
    cloud_daily = np.clip(rng.normal(0.35, 0.2, (n, days)) + 0.45 * rainy - 0.25 * heat_wave, 0, 1)
    position = clock["day"] + clock["utc_hours"] / 24.0
    anomaly = np.vstack([np.interp(position, np.arange(days), row) for row in anomaly_daily])
    cloud = np.vstack([np.interp(position, np.arange(days), row) for row in cloud_daily])
    rain = np.zeros((n, steps), dtype=np.float32)
    for r, d in zip(*np.nonzero(rainy)):
        for _ in range(int(rng.integers(1, 3))):
            first = d * STEPS_PER_DAY + int(rng.integers(0, STEPS_PER_DAY))
            length = int(rng.integers(2, 24))  # half an hour to six hours
            rate = rng.exponential(PLACES[r].rain_rate) / 4  # mm per 15 minutes
            shape = rng.uniform(0.3, 1.7, length)
            last = min(steps, first + length)
            if first < steps:
                rain[r, first:last] += (rate * shape[: last - first]).astype(np.float32)
    # Rain cools the day it falls.
    anomaly -= 1.5 * np.minimum(1.0, rain * 4)
    return {"anomaly": anomaly.astype(np.float32), "cloud": cloud.astype(np.float32), "rain": rain}


def _climate(places: np.ndarray, attribute: str) -> np.ndarray:
    return np.array([getattr(PLACES[p], attribute) for p in places], dtype=np.float32)


BLEND_KM = 40.0  # weather changes over about this distance: neighbours a few km apart feel the same


def _felt(weather: dict, latitude: np.ndarray, longitude: np.ndarray, names: tuple[str, ...]) -> dict:
    """The weather at these points (rows): the places' weather, each weighed by how much nearer the
    nearest place is (BLEND_KM): a smooth field, in which a garden and a station a few km apart feel
    nearly the same weather, wherever they stand."""
    lat0 = np.array([p.latitude for p in PLACES])
    lon0 = np.array([p.longitude for p in PLACES])
    km = 111.2 * np.hypot(
        latitude[:, None] - lat0[None, :],
        (longitude[:, None] - lon0[None, :]) * np.cos(np.radians(latitude))[:, None],
    )
    weights = np.exp(-(km - km.min(axis=1, keepdims=True)) / BLEND_KM)
    weights = (weights / weights.sum(axis=1, keepdims=True)).astype(np.float32)
    return {name: weights @ weather[name] for name in names}


def _air_temperature(places, latitude, longitude, offset, clock, felt) -> np.ndarray:
    """Air temperature at points of these places (rows), from the weather `felt` there (rows alike)."""
    season = np.cos(2 * np.pi * (clock["day_of_year"] - 200) / 365.25)
    solar_hour = _local_solar_hour(longitude, clock)
    daily = np.cos(2 * np.pi * (solar_hour - 15.0) / 24.0)
    return (
        _climate(places, "mean_temperature")[:, None]
        + _climate(places, "seasonal_swing")[:, None] * season[None, :]
        + _climate(places, "daily_swing")[:, None] * (1 - 0.6 * felt["cloud"]) * daily
        + felt["anomaly"]
        + offset.astype(np.float32)[:, None]
    )


# --- sensors -----------------------------------------------------------------------------------------


def _seasonal_traits(rng, meta: pd.DataFrame) -> None:
    """How exposed each sensor is to snow, how dark it is under snow, and whether its garden has a
    watering system (its local hour and mm a day)."""
    n = len(meta)
    meta["snow_exposure"] = rng.uniform(0.6, 1.4, n)  # drifts pile snow up, wind scours it off
    # A few cm of snow let a few % of the light through (Perovich 2007: e-folding depth of 2-5 cm).
    meta["buried_light"] = rng.uniform(0.02, 0.1, n)
    system = rng.random(n) < 0.06
    meta["irrigation_hour"] = np.where(
        system, rng.choice([5.0, 6.0, 20.0, 21.0], n) + rng.uniform(0, 0.5, n), np.nan
    )
    meta["irrigation_mm"] = np.where(system, rng.uniform(2.0, 4.0, n), np.nan)


def _probe_traits(rng, meta: pd.DataFrame, physics: Physics) -> None:
    """Each sensor's probe and soil, within the network's ranges: the step its soil moisture reports in
    (`soil_moisture_step`) and how fast or slow its clock runs (`clock_ppm`), both kept in network.json;
    how it reads ice; and its soil: saturation, wilting point, field capacity, the depth it senses, how
    much a mm of rain wets it."""
    n = len(meta)
    meta["soil_moisture_step"] = rng.choice(physics.soil_steps, size=n, p=_weights(physics.soil_step_weights))
    holds = rng.random(n) < physics.holding_probe_share
    meta["ice_share"] = np.where(holds, 0.0, rng.uniform(physics.ice_drop_low, physics.ice_drop_high, n))
    meta["saturation"] = rng.uniform(38, 52, n)  # % by volume: the soil's porosity, loam to clay loam
    meta["wilting"] = rng.uniform(4, 10, n)  # % by volume, sandy loam to loam (Saxton & Rawls 2006)
    share = rng.uniform(physics.field_capacity_low, physics.field_capacity_high, n)
    meta["field_capacity"] = meta["wilting"] + share * (meta["saturation"] - meta["wilting"])
    meta["depth_mm"] = rng.uniform(physics.depth_low_mm, physics.depth_high_mm, n)
    meta["gain"] = rng.uniform(physics.gain_low, physics.gain_high, n)
    meta["can_mm"] = rng.uniform(8, 14, n)  # what a watering can gives the probe's patch, in % of water
    meta["clock_ppm"] = np.round(rng.uniform(-1, 1, n) * physics.clock_ppm_max, 1)


PROBE_COLUMNS = ["ice_share", "saturation", "wilting", "field_capacity", "depth_mm", "gain", "can_mm"]


def _sensor_readings(
    rng, clock, weather, meta: pd.DataFrame, season_rng, physics: Physics
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    places = meta["place"].to_numpy()
    n, steps = len(meta), len(clock["utc_hours"])
    lat, lon = meta["latitude"].to_numpy(), meta["longitude"].to_numpy()
    sun = np.clip(solar_elevation_sine(lat, lon, clock), 0, None)
    felt = _felt(weather, lat, lon, ("anomaly", "cloud", "rain"))
    cloud = felt["cloud"]
    _seasonal_traits(season_rng, meta)

    air = _air_temperature(places, lat, lon, meta["offset"].to_numpy(), clock, felt)
    light = 55.0 * sun**1.2 * (1 - 0.75 * cloud) * meta["shade"].to_numpy(dtype=np.float32)[:, None]
    light *= 1 + rng.normal(0, physics.light_noise_share, (n, steps)).astype(np.float32)
    rain_factor = rng.uniform(0.8, 1.2, n).astype(np.float32)[:, None]
    rain = felt["rain"] * rain_factor

    # Snow lies where the sensor's own air is cold enough, and buries it: dark, and the snow's temperature
    # whatever the air does; the soil follows the air (or the snow) days late, and a probe in frozen soil
    # reads ice.
    snowpack, water = seasons.snowpack(rain, air, physics)
    buried = snowpack * meta["snow_exposure"].to_numpy()[:, None] > physics.burying_snow_mm
    felt_air = np.where(buried, seasons.under_snow(air, physics), air).astype(np.float32)
    light = np.where(buried, light * meta["buried_light"].to_numpy()[:, None], light).astype(np.float32)
    is_frozen = seasons.frozen(seasons.soil_temperature(felt_air, physics), physics)
    irrigation = _irrigation_steps(meta, clock, lon)
    demand = _evaporation(sun, cloud, air, buried, physics)
    soil = _soil_moisture(
        rng, meta, physics, water, demand, _local_solar_hour(lon, clock), is_frozen, irrigation
    )
    soil = _frozen_reading(soil, is_frozen, meta["ice_share"].to_numpy(), physics)
    eddies = np.where(buried, 0.0, rng.normal(0, physics.air_turbulence_c, (n, steps)))
    noise = eddies + rng.normal(0, physics.thermometer_noise_c, (n, steps))
    air = (felt_air + noise).astype(np.float32)

    days = np.arange(steps, dtype=np.float32) / STEPS_PER_DAY
    battery = meta["battery_start"].to_numpy()[:, None] - meta["battery_rate"].to_numpy()[:, None] * days
    battery = np.floor(battery).astype(np.float32)  # the sensor reports whole percent

    sampled = np.arange(steps)[None, :] >= meta["installed_step"].to_numpy()[:, None]
    readings = {
        "soil_moisture": soil,
        "air_temperature": air,
        "light": light,
        "battery_level": battery,
        "rain": rain,
        "cloud": cloud,
        "sampled": sampled,
        "frozen": is_frozen,
        "buried": buried,
    }
    return readings, sun


def _report_in_steps(readings: dict[str, np.ndarray], meta: pd.DataFrame, physics: Physics) -> None:
    """What the probes report, faults and all: soil moisture in each sensor's step, air temperature in
    tenths of a degree, light in hundredths (the GROW API's), battery in whole percent."""
    step = meta["soil_moisture_step"].to_numpy(dtype=np.float64)[:, None]
    readings["soil_moisture"] = (np.round(readings["soil_moisture"] / step) * step).astype(np.float32)
    air_step = physics.air_step_c
    readings["air_temperature"] = (np.round(readings["air_temperature"] / air_step) * air_step).astype(
        np.float32
    )
    readings["light"] = np.round(readings["light"], 2).astype(np.float32)


SOLAR_CONSTANT_W = 1361.0  # W/m² at the top of the atmosphere
LATENT_HEAT_MJ_KG = 2.45  # MJ to evaporate 1 kg (1 mm over a m²) of water (FAO-56)
PSYCHROMETRIC_KPA_C = 0.066  # γ near sea level, kPa/°C (FAO-56)


def _evaporation(sun, cloud, air, buried, physics: Physics) -> np.ndarray:
    """Per sensor (rows) and step, the mm of water the garden's soil can lose: Makkink's evaporation from
    the sun's radiation and the air's temperature, and a little at night; none under snow."""
    seconds = 86_400 / STEPS_PER_DAY
    radiation = SOLAR_CONSTANT_W * physics.clear_sky_transmissivity * sun * (1 - 0.75 * cloud)
    radiation_mj = radiation * seconds / 1e6
    t = np.clip(air, -20.0, 45.0)
    saturation_slope = 4098 * 0.6108 * np.exp(17.27 * t / (t + 237.3)) / (t + 237.3) ** 2  # kPa/°C
    weight = saturation_slope / (saturation_slope + PSYCHROMETRIC_KPA_C)
    by_day = physics.makkink_coefficient * weight * radiation_mj / LATENT_HEAT_MJ_KG
    at_night = physics.night_evaporation_mm_hour * seconds / 3600 * (t > 0)
    return np.where(buried, 0.0, by_day + at_night).astype(np.float32)


CONDITION_COLUMNS = ["sensor_id", "kind", "start", "end"]


def _conditions(readings: dict[str, np.ndarray], meta: pd.DataFrame, clock: dict) -> pd.DataFrame:
    """The ground truth of what each sensor went through that is no fault, as spans of steps while it was
    sampled: buried in snow (`snow_cover`) and in frozen soil (`frozen_soil`). Never served: for an
    evaluation to say how well detection tells them."""
    rows = []
    for kind, mask in (("snow_cover", readings["buried"]), ("frozen_soil", readings["frozen"])):
        mask = mask & readings["sampled"]
        edges = np.diff(mask.astype(np.int8), axis=1, prepend=0, append=0)
        for sensor, first in zip(*np.nonzero(edges == 1)):
            last = int(np.flatnonzero(edges[sensor, first:] == -1)[0]) + first - 1
            rows.append(
                {
                    "sensor_id": meta.at[sensor, "sensor_id"],
                    "kind": kind,
                    "start": (clock["start"] + int(first) * STEP).isoformat(),
                    "end": (clock["start"] + last * STEP).isoformat(),
                }
            )
    return pd.DataFrame(rows, columns=CONDITION_COLUMNS)


def _irrigation_steps(meta: pd.DataFrame, clock: dict, longitude: np.ndarray) -> np.ndarray:
    """Per sensor and step, the mm a watering system gives then: at its local hour every day from
    mid-April to early October."""
    hour = meta["irrigation_hour"].to_numpy()
    solar_hour = _local_solar_hour(longitude, clock)
    with np.errstate(invalid="ignore"):
        now = (solar_hour >= hour[:, None]) & (solar_hour < hour[:, None] + 0.25)
    season = (clock["day_of_year"] >= 105) & (clock["day_of_year"] <= 280)
    return np.where(now & season[None, :], meta["irrigation_mm"].to_numpy()[:, None], 0.0).astype(np.float32)


def _soil_moisture(
    rng, meta, physics: Physics, water, demand, solar_hour, is_frozen, irrigation
) -> np.ndarray:
    """Bucket model per sensor: wets up with rain or snowmelt (or a watering can, or a watering system),
    drains above field capacity day and night, and loses what the day's evaporation `demand` takes, less
    as it dries (FAO-56's water stress), past the wilting point towards air-dry; frozen soil neither wets
    nor dries.
    The probe's noise is below its reporting step: whatever does not move holds its reading."""
    n, steps = water.shape
    saturation = meta["saturation"].to_numpy(dtype=np.float32)
    wilting = meta["wilting"].to_numpy(dtype=np.float32)
    air_dry = np.float32(physics.air_dry_share) * wilting
    field = meta["field_capacity"].to_numpy(dtype=np.float32)
    gain = meta["gain"].to_numpy(dtype=np.float32)  # % per mm of rain
    per_mm = (100.0 / meta["depth_mm"].to_numpy()).astype(np.float32)  # % per mm evaporated
    can = meta["can_mm"].to_numpy(dtype=np.float32)
    watered = meta["watered"].to_numpy()
    drain = np.float32(-np.expm1(-physics.drainage_per_day / STEPS_PER_DAY))
    soil = np.empty((n, steps), dtype=np.float32)
    level = np.minimum(rng.uniform(18, 35, n), field).astype(np.float32)
    dry_since = np.zeros(n, dtype=np.int64)
    evening = (solar_hour >= 19.0) & (solar_hour < 19.25)
    for t in range(steps):
        wet = water[:, t] > 0
        dry_since = np.where(wet, 0, dry_since + 1)
        given = water[:, t] + irrigation[:, t]
        moved = level + gain * given * (1 - level / saturation).clip(0, 1)
        moved = moved - drain * np.maximum(moved - field, 0)
        stress = ((moved - air_dry) / (field - air_dry)).clip(0, 1)
        moved = moved - demand[:, t] * per_mm * stress
        thirsty = watered & evening[:, t] & (moved < wilting + 0.4 * (field - wilting))
        moved = np.where(thirsty & (dry_since > 3 * STEPS_PER_DAY), moved + can, moved)
        level = np.where(is_frozen[:, t], level, moved)
        soil[:, t] = level
    noise = physics.soil_noise_share_of_step * meta["soil_moisture_step"].to_numpy(dtype=np.float32)
    return soil + np.where(is_frozen, 0.0, rng.normal(0, 1, (n, steps)) * noise[:, None]).astype(np.float32)


def _frozen_reading(
    soil: np.ndarray, is_frozen: np.ndarray, ice_share: np.ndarray, physics: Physics
) -> np.ndarray:
    """What the probe reads: the liquid water, except in frozen soil, where it holds its last reading or
    falls to a share of it over a few hours as the water turns to ice, and holds that until the thaw."""
    since = seasons.steps_frozen(is_frozen)
    ramp = physics.ice_ramp_hours * STEPS_PER_DAY / 24
    fall = ice_share[:, None] * np.minimum(1.0, since / ramp)
    return np.where(is_frozen, soil * (1.0 - fall), soil).astype(np.float32)


def _uploads(rng, meta: pd.DataFrame, steps: int) -> np.ndarray:
    """(sensor, step) of every upload: bursts every few hours to a week, and one at the very end."""
    rows = []
    for i in range(len(meta)):
        mean_gap = rng.choice([0.25, 1.0, 2.0, 5.0]) * STEPS_PER_DAY
        t = int(meta.at[i, "installed_step"])
        while True:
            t += max(1, int(rng.exponential(mean_gap)))
            if t >= steps:
                break
            rows.append((i, t))
        if rng.random() < 0.9:  # most phones have uploaded everything by the end
            rows.append((i, steps - 1))
    return np.array(rows, dtype=np.int64).reshape(-1, 2)


# --- faults ------------------------------------------------------------------------------------------


def _inject_faults(rng, readings, sun, weather, meta: pd.DataFrame, clock) -> pd.DataFrame:
    """Give about a quarter of the sensors one fault each, cycling through every kind."""
    steps = readings["soil_moisture"].shape[1]
    eligible = np.flatnonzero(meta["installed_step"].to_numpy() < steps // 3)
    count = min(len(eligible), max(1, round(FAULTY_SHARE * len(meta))))
    chosen = rng.choice(eligible, size=count, replace=False)
    kinds = [FAULT_KINDS[i % len(FAULT_KINDS)] for i in range(count)]
    rng.shuffle(kinds)
    # What sensors read before their faults: a sensor brought back out reads its garden again.
    original = {variable: series[chosen].copy() for variable, series in readings.items()}
    original["rows"] = {sensor: row for row, sensor in enumerate(chosen)}
    labels = []
    for sensor, kind in zip(chosen, kinds):
        first_ok = int(meta.at[sensor, "installed_step"])
        span = steps - first_ok
        start = first_ok + int(rng.uniform(0.2, 0.7) * span)
        fault = _FAULTS[kind]
        if kind == "indoors_for_winter":  # in when autumn comes, out in spring
            start = _autumn_step(clock, first_ok, steps, start)
        variable, start, end = fault(rng, readings, sun, weather, meta, sensor, start, steps)
        if kind == "indoors_for_winter":
            end = min(end, _spring_step(clock, start, steps))
            _back_outside(readings, sensor, end + 1, original)
        if kind in INDOORS:  # no snow and no frost in the house
            readings["buried"][sensor, start : end + 1] = False
            readings["frozen"][sensor, start : end + 1] = False
        labels.append(
            {
                "sensor_id": meta.at[sensor, "sensor_id"],
                "variable": variable,
                "kind": kind,
                "start": (clock["start"] + start * STEP).isoformat(),
                "end": (clock["start"] + end * STEP).isoformat(),
                "hidden_by_frost": _hidden_by_frost(
                    kind, variable, readings["frozen"][sensor, start : end + 1]
                ),
            }
        )
    return pd.DataFrame(labels, columns=LABEL_COLUMNS)


INDOORS = {"indoors", "indoors_for_winter"}
# Faults of soil moisture that a probe in ice looks like: it holds its reading, or falls, and holds that.
ICE_LOOKS_LIKE = {"stuck", "probe_out_of_soil"}
THAW_SEEN = 3 * STEPS_PER_DAY


def _hidden_by_frost(kind: str, variable: str, frozen: np.ndarray) -> bool:
    """Whether a soil moisture fault that ice looks like has no thaw of THAW_SEEN or longer in it: a probe
    in ice reads what a stuck or pulled one does, and the checks stand down from a day before a frost to
    a day after it, so none can tell this fault while it lasts."""
    if kind not in ICE_LOOKS_LIKE or variable != "soil_moisture":
        return False
    edges = np.diff(np.concatenate([[0], (~frozen).astype(np.int8), [0]]))
    longest = (np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)).max(initial=0)
    return bool(longest < THAW_SEEN)


def _days(rng, low: float, high: float) -> int:
    return int(rng.uniform(low, high) * STEPS_PER_DAY)


PLACING_TRIES = 40
STUCK_MOVES = 4  # steps of its own a stuck reading's garden moves while it holds, at the least


def _stuck(rng, readings, sun, weather, meta, i, start, steps):
    """The reading holds while the garden's moves: a probe that reports in steps holds its value by
    itself while nothing changes, so the fault is put where the true reading would have moved by several
    of its steps (tried at other times of the sensor's span when it would not)."""
    variable = rng.choice(["soil_moisture", "soil_moisture", "air_temperature", "light"])
    step = {"soil_moisture": float(meta.at[i, "soil_moisture_step"]), "air_temperature": 0.1}.get(
        variable, 0.01
    )
    series = readings[variable]
    first_ok = int(meta.at[i, "installed_step"])
    for _ in range(PLACING_TRIES):
        end = min(steps - 1, start + _days(rng, 2, 8))
        held = series[i, start : end + 1]
        if np.ptp(held) >= STUCK_MOVES * step:
            break
        start = first_ok + int(rng.uniform(0.2, 0.7) * (steps - first_ok))
    series[i, start : end + 1] = series[i, start]
    return variable, start, end


def _spike(rng, readings, sun, weather, meta, i, start, steps):
    variable = rng.choice(["soil_moisture", "air_temperature"])
    end = min(steps - 1, start + _days(rng, 3, 10))
    hits = start + np.flatnonzero(rng.random(end - start + 1) < 0.04)
    size = rng.uniform(12, 25, len(hits)) if variable == "air_temperature" else rng.uniform(15, 35, len(hits))
    readings[variable][i, hits] += size * rng.choice([-1, 1], len(hits))
    return variable, start, end


def _drift(rng, readings, sun, weather, meta, i, start, steps):
    variable = rng.choice(["soil_moisture", "air_temperature"])
    total = rng.uniform(10, 20) * (rng.choice([-1, 1]) if variable == "soil_moisture" else 1)
    readings[variable][i, start:] += np.linspace(0, total, steps - start, dtype=np.float32)
    return variable, start, steps - 1


def _out_of_range(rng, readings, sun, weather, meta, i, start, steps):
    variable = rng.choice(["soil_moisture", "air_temperature"])
    end = min(steps - 1, start + _days(rng, 1, 5))
    length = end - start + 1
    if variable == "air_temperature":
        level = rng.choice([rng.uniform(62, 90), rng.uniform(-60, -42)])
    else:
        level = rng.uniform(110, 200)
    readings[variable][i, start : end + 1] = level + rng.normal(0, 0.5, length)
    return variable, start, end


PULLED_FALL = 3.0  # a pulled probe's reading falls to a third of its soil's at the most


def _probe_out_of_soil(rng, readings, sun, weather, meta, i, start, steps):
    """The probe is pulled out and reads the air's few %: put where its soil is wet enough for that to
    show (tried at other times of the sensor's span when it is not): a probe pulled from soil as dry as
    air reads is no fault anyone can see."""
    soil = readings["soil_moisture"]
    floor = rng.uniform(0.3, 3.0)
    first_ok = int(meta.at[i, "installed_step"])
    for _ in range(PLACING_TRIES):
        if soil[i, start] >= PULLED_FALL * floor:
            break
        start = first_ok + int(rng.uniform(0.2, 0.7) * (steps - first_ok))
    fall = np.exp(-np.arange(steps - start) / 4.0)  # gone within a few hours
    soil[i, start:] = floor + (soil[i, start] - floor) * fall + rng.normal(0, 0.1, steps - start)
    return "soil_moisture", start, steps - 1


def _full_sun(rng, readings, sun, weather, meta, i, start, steps):
    heat = rng.uniform(8, 16) * sun[i, start:] * (1 - 0.6 * readings["cloud"][i, start:])
    readings["air_temperature"][i, start:] += heat
    readings["light"][i, start:] /= float(meta.at[i, "shade"])  # nothing shades it any more
    return "air_temperature", start, steps - 1


def _indoors(rng, readings, sun, weather, meta, i, start, steps):
    length = steps - start
    hours = np.arange(length) / 4.0
    room = rng.uniform(18, 23)
    readings["air_temperature"][i, start:] = (
        room + 0.8 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.2, length)
    )
    readings["light"][i, start:] = np.round(rng.uniform(0.3, 2.0) * (sun[i, start:] > 0), 2)
    soil = readings["soil_moisture"]
    soil[i, start:] = soil[i, start] * np.exp(-np.arange(length) / (12 * STEPS_PER_DAY)) + rng.normal(
        0, 0.15, length
    )
    return "air_temperature", start, steps - 1


def _dying_battery(rng, readings, sun, weather, meta, i, start, steps):
    end = min(steps - 1, start + _days(rng, 2, 6))
    length = end - start + 1
    battery = readings["battery_level"]
    battery[i, start : end + 1] = np.floor(np.linspace(battery[i, start], 0, length))
    erratic = start + int(0.6 * length)
    for variable, sd in (("soil_moisture", 5.0), ("air_temperature", 3.0)):
        readings[variable][i, erratic : end + 1] += rng.normal(0, sd, end + 1 - erratic)
    readings["sampled"][i, end + 1 :] = False  # then it stops
    return "battery_level", start, end


def _noisy(rng, readings, sun, weather, meta, i, start, steps):
    variable = rng.choice(["soil_moisture", "air_temperature"])
    end = min(steps - 1, start + _days(rng, 3, 15)) if rng.random() < 0.5 else steps - 1
    sd = rng.uniform(4, 8) if variable == "soil_moisture" else rng.uniform(2.5, 4)
    readings[variable][i, start : end + 1] += rng.normal(0, sd, end - start + 1)
    return variable, start, end


def _moved(rng, readings, sun, weather, meta, i, start, steps):
    """The sensor goes to another pot or garden: its soil, its shade and its shelter all change at once."""
    soil = readings["soil_moisture"]
    wetter = rng.random() < 0.5
    soil[i, start:] *= rng.uniform(1.5, 2.0) if wetter else rng.uniform(0.4, 0.65)
    np.clip(soil[i, start:], 0.5, 60.0, out=soil[i, start:])
    brighter = rng.random() < 0.5
    readings["light"][i, start:] *= rng.uniform(2.2, 3.5) if brighter else rng.uniform(0.2, 0.42)
    np.clip(readings["light"][i, start:], 0.0, 149.0, out=readings["light"][i, start:])
    readings["air_temperature"][i, start:] += rng.uniform(1.0, 2.5) * rng.choice([-1, 1])
    return "soil_moisture", start, steps - 1


def _autumn_step(clock: dict, first_ok: int, steps: int, otherwise: int) -> int:
    """The first step from mid-October on (after the sensor's first tenth of the span), else `otherwise`."""
    day_of_year = clock["day_of_year"]
    earliest = first_ok + (steps - first_ok) // 10
    autumn = np.flatnonzero((day_of_year[earliest:] >= 288) & (day_of_year[earliest:] < 330))
    return earliest + int(autumn[0]) if len(autumn) else otherwise


def _spring_step(clock: dict, start: int, steps: int) -> int:
    """The last step before the spring (mid-March to April) that follows `start`: the first step that
    enters it after a step outside it (the end of the network if none)."""
    day_of_year = clock["day_of_year"][start:]
    spring = (day_of_year >= 75) & (day_of_year < 110)
    entering = np.flatnonzero(spring[1:] & ~spring[:-1]) + 1
    return start + int(entering[0]) - 1 if len(entering) else steps - 1


def _indoors_for_winter(rng, readings, sun, weather, meta, i, start, steps):
    """Brought into the house for the winter: a warm room, window light, a pot watered now and then."""
    length = steps - start
    hours = np.arange(length) / 4.0
    readings["air_temperature"][i, start:] = (
        rng.uniform(15, 20) + 0.7 * np.sin(2 * np.pi * hours / 24) + rng.normal(0, 0.2, length)
    )
    readings["light"][i, start:] = np.round(rng.uniform(0.5, 3.0) * sun[i, start:], 2)
    week = 7 * STEPS_PER_DAY
    readings["soil_moisture"][i, start:] = (
        12 + 14 * np.exp(-(np.arange(length) % week) / (3 * STEPS_PER_DAY)) + rng.normal(0, 0.15, length)
    )
    return "air_temperature", start, steps - 1


def _back_outside(readings, i, first: int, original) -> None:
    """From `first` on the sensor reads its garden again, as it would have without its fault."""
    row = original["rows"][i]
    for variable in ("soil_moisture", "air_temperature", "light"):
        readings[variable][i, first:] = original[variable][row, first:]


_FAULTS = {
    "stuck": _stuck,
    "spike": _spike,
    "drift": _drift,
    "out_of_range": _out_of_range,
    "probe_out_of_soil": _probe_out_of_soil,
    "full_sun": _full_sun,
    "indoors": _indoors,
    "dying_battery": _dying_battery,
    "noisy": _noisy,
    "moved": _moved,
    "indoors_for_winter": _indoors_for_winter,
}


# --- stations ----------------------------------------------------------------------------------------


def _station_reports(rng, clock, weather, meta: pd.DataFrame, physics: Physics) -> dict[str, np.ndarray]:
    """What each station reports, at its own interval: temperature in tenths, the rain its gauge tipped
    since the last report (whole tips of its bucket), humidity in whole percent."""
    places = meta["place"].to_numpy()
    n, steps = len(meta), len(clock["utc_hours"])
    lat, lon = meta["latitude"].to_numpy(), meta["longitude"].to_numpy()
    felt = _felt(weather, lat, lon, ("anomaly", "cloud", "rain"))
    air = _air_temperature(places, lat, lon, meta["offset"].to_numpy(), clock, felt)
    air += rng.normal(0, physics.station_air_noise_c, (n, steps)).astype(np.float32)
    rain = felt["rain"] * meta["rain_factor"].to_numpy(dtype=np.float32)[:, None]
    base = _climate(places, "mean_temperature")[:, None]
    humidity = np.clip(72 + 20 * (rain > 0) - 1.8 * (air - base) + rng.normal(0, 3, (n, steps)), 15, 100)

    interval = meta["interval_steps"].to_numpy()
    reports = (np.arange(steps)[None, :] % interval[:, None]) == (interval[:, None] - 1)
    stopped = (meta["state"] == "stopped").to_numpy()
    stop_at = steps - rng.integers(2 * STEPS_PER_DAY, 10 * STEPS_PER_DAY, n)
    reports &= ~(stopped[:, None] & (np.arange(steps)[None, :] >= stop_at[:, None]))
    # Rain since the previous report: the bucket's tips (a running count), differenced at report times.
    tip = meta["rain_tip_mm"].to_numpy(dtype=np.float64)[:, None]
    cumulative = np.floor(np.cumsum(rain, axis=1, dtype=np.float64) / tip) * tip
    rain = np.diff(cumulative, axis=1, prepend=0.0)
    rainfall = np.full((n, steps), np.nan, dtype=np.float32)
    for i in range(n):
        at = np.flatnonzero(reports[i])
        totals = cumulative[i, at]
        rainfall[i, at] = np.diff(totals, prepend=cumulative[i, at[0]] - rain[i, at[0]] if len(at) else 0)
    rainfall[(meta["state"] == "no_rain_gauge").to_numpy()] = np.nan
    air = np.where(reports, np.round(air, 1), np.nan)
    humidity = np.where(reports, np.round(humidity), np.nan)
    rainfall = np.where(reports, np.round(rainfall, 2), np.nan)
    return {"air_temperature": air, "rainfall": rainfall, "relative_humidity": humidity}


def _write_fallback_file(folder: Path) -> None:
    """Each station's latest report of the last day as a WOW byversion answer, like 2019's saved file."""
    from devtools.simulator.network import Network
    from devtools.simulator.server import wow_observations

    network = Network(folder)
    day = dt.timedelta(days=1)
    latest = {}  # per site, in the stations' order: reports come grouped by site, in time order
    for observation in wow_observations(
        network, list(network.stations["site_id"]), network.end - day, network.end
    ):
        latest[observation["SiteId"]] = observation
    (folder / "wow_observations_europe.json").write_text(json.dumps({"Object": list(latest.values())}))
