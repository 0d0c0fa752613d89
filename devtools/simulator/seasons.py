"""Seasons in the simulated weather: cold spells and heat waves by region, snow, and soil that freezes.

`generate` calls these with plain arrays and the network's `Physics` (its constants, drawn per seed from
ranges: `physics`); each is a small piece of physics, simple but of the right shape:

- a place's seasonal swing says how continental its climate is: inland and in the north winters bring
  more, longer and deeper cold spells than on the Atlantic and Mediterranean coasts; summers bring heat
  waves, dry and sunny, everywhere;
- precipitation falls as snow below the network's snow threshold, as rain above it, mixed in a band
  between; it lies as a snowpack (mm of water) that melts by degree-days; a sensor under enough of it is
  buried: its light is darkened, and its air temperature is the snow's: damped and lagged, never above
  0 °C;
- the soil's temperature follows the air's with a lag of days (the snow's temperature under snow); below
  its freezing point the probe reads ice rather than water and holds its reading, or drops it as the
  water turns to ice, until the soil thaws.
"""

from __future__ import annotations

import numpy as np

from core.lag import exponential_lag
from devtools.simulator.network import STEPS_PER_DAY
from devtools.simulator.physics import Physics


def continentality(seasonal_swing: np.ndarray) -> np.ndarray:
    """0 on a mild coast (seasonal swing of 6 °C or less), 1 far inland (10 °C or more)."""
    return np.clip((np.asarray(seasonal_swing, dtype=float) - 6.0) / 4.0, 0.0, 1.0)


def spells(rng: np.random.Generator, day_of_year: np.ndarray, continental: np.ndarray):
    """Cold spells in winter and heat waves in summer, per place (rows) and day (columns): the extra
    temperature anomaly (°C)."""
    days = len(day_of_year)
    extra = np.zeros((len(continental), days))
    winter = (day_of_year >= 335) | (day_of_year <= 59)
    shoulder = ((day_of_year >= 305) & (day_of_year < 335)) | ((day_of_year > 59) & (day_of_year <= 80))
    summer = (day_of_year >= 160) & (day_of_year <= 240)
    for place, c in enumerate(continental):
        d = 0
        while d < days:
            cold_chance = 0.05 * (0.15 + c) * (1.0 if winter[d] else 0.4 if shoulder[d] else 0.0)
            draw = rng.random()
            if draw < cold_chance:
                length = int(rng.integers(3, 7 + int(14 * c)))
                depth = rng.uniform(3.0, 4.0 + 7.0 * c)
                extra[place, d : d + length] -= depth * _bell(length)[: days - d]
                d += length
            elif summer[d] and draw < 0.03 * (0.5 + 0.5 * c):
                length = int(rng.integers(4, 11))
                extra[place, d : d + length] += rng.uniform(4.0, 8.0) * _bell(length)[: days - d]
                d += length
            else:
                d += 1
    return extra


SPELL_REACH_KM = 250.0  # places this far apart share about a third of a spell


def shared_by_neighbours(extra: np.ndarray, latitude: np.ndarray, longitude: np.ndarray) -> np.ndarray:
    """Spells (rows: places) shared with the places around: a cold spell or a heat wave covers a region,
    not a town, so two towns an hour apart feel nearly the same one (and a station in one is a fair
    witness of a garden in the other)."""
    lat, lon = np.radians(latitude), np.radians(longitude)
    dlat = lat[:, None] - lat[None, :]
    dlon = (lon[:, None] - lon[None, :]) * np.cos((lat[:, None] + lat[None, :]) / 2)
    km = 6371.0 * np.hypot(dlat, dlon)
    weights = np.exp(-km / SPELL_REACH_KM)
    return (weights @ extra) / weights.sum(axis=1, keepdims=True)


def _bell(length: int) -> np.ndarray:
    """A spell comes on over a day or two, holds, and goes."""
    ramp = max(1, min(2, length // 3))
    edge = np.minimum(np.arange(1, length + 1), np.arange(length, 0, -1))
    return np.minimum(1.0, edge / (ramp + 1) + 0.34)


def snowpack(precipitation: np.ndarray, air: np.ndarray, physics: Physics) -> tuple[np.ndarray, np.ndarray]:
    """Per place or sensor (rows) and step: the snowpack (mm of water) and the water reaching the ground (rain
    that fell as rain, and snowmelt), from the precipitation (mm per step) and the air temperature."""
    all_rain = physics.snow_threshold_c + physics.snow_band_c
    snow_share = np.clip((all_rain - air) / (2 * physics.snow_band_c), 0.0, 1.0)
    snowfall = (precipitation * snow_share).astype(np.float32)
    ground = (precipitation - snowfall).astype(np.float32)
    melt_per_step = physics.melt_mm_per_c_day / STEPS_PER_DAY
    potential_melt = melt_per_step * np.clip(air - physics.melt_base_c, 0.0, None)
    pack = np.zeros(precipitation.shape[0])
    packs = np.empty_like(precipitation)
    for t in range(precipitation.shape[1]):
        melt = np.minimum(pack, potential_melt[:, t])
        pack = pack + snowfall[:, t] - melt
        packs[:, t] = pack
        ground[:, t] += melt
    return packs.astype(np.float32), ground


def _lagged(values: np.ndarray, steps: float, first: int) -> np.ndarray:
    """`values` (rows) followed with an exponential lag of `steps`, starting from the mean of the first
    `first` steps (not the first step's)."""
    alpha = 1.0 / max(1.0, steps)
    return exponential_lag(values, alpha, values[:, :first].mean(axis=1))


def under_snow(air: np.ndarray, physics: Physics) -> np.ndarray:
    """What a sensor buried in snow reads for air temperature (rows: sensors): the air's, lagged and damped
    by the snow, and never above 0 °C (melting snow holds 0 °C)."""
    steps = physics.under_snow_lag_hours * STEPS_PER_DAY / 24
    lagged = _lagged(air, steps, first=4)
    return np.minimum(0.0, physics.under_snow_damping * lagged).astype(np.float32)


def soil_temperature(air: np.ndarray, physics: Physics) -> np.ndarray:
    """The soil's temperature per sensor (rows) and step: the air's, lagged by the network's soil lag."""
    return _lagged(air, physics.soil_lag_days * STEPS_PER_DAY, first=STEPS_PER_DAY).astype(np.float32)


def frozen(soil_temperature: np.ndarray, physics: Physics) -> np.ndarray:
    """Per sensor and step, whether the soil is frozen: it freezes below its freezing point and thaws above
    the network's thaw temperature."""
    state = np.zeros(soil_temperature.shape[0], dtype=bool)
    out = np.empty(soil_temperature.shape, dtype=bool)
    for t in range(soil_temperature.shape[1]):
        column = soil_temperature[:, t]
        state = np.where(state, column < physics.thaw_c, column < physics.freeze_c)
        out[:, t] = state
    return out


def steps_frozen(is_frozen: np.ndarray) -> np.ndarray:
    """Per sensor and step, how many steps the soil has been frozen (0 when it is not)."""
    count = np.zeros(is_frozen.shape[0], dtype=np.int64)
    out = np.empty(is_frozen.shape, dtype=np.int64)
    for t in range(is_frozen.shape[1]):
        count = np.where(is_frozen[:, t], count + 1, 0)
        out[:, t] = count
    return out
