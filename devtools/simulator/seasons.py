"""Seasons in the simulated weather: cold spells and heat waves by region, snow, and soil that freezes.

`generate` calls these with plain arrays; each is a small piece of physics, simple but of the right shape:

- a place's seasonal swing says how continental its climate is: inland and in the north winters bring
  more, longer and deeper cold spells than on the Atlantic and Mediterranean coasts; summers bring heat
  waves, dry and sunny, everywhere;
- precipitation below SNOW_BELOW_C lies as a snowpack (mm of water) that melts by degree-days; a sensor
  under more than SNOW_COVER_MM of it is buried: its light is darkened and its air temperature held near
  0 °C by the snow around it;
- the soil's temperature follows the air's with a lag of days (the snow's temperature under snow); below
  FREEZE_C the probe reads ice rather than water and holds its reading, or drops it as the water turns to
  ice, until the soil thaws (above THAW_C).
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

SNOW_BELOW_C = 0.5  # air temperature under which precipitation falls as snow
MELT_MM_PER_C_STEP = 3.0 / 96  # degree-day melt: 3 mm of water per °C above zero per day
SNOW_COVER_MM = 3.0  # a snowpack of more water than this buries a sensor (about 3 cm of snow)
SOIL_LAG_STEPS = 1.5 * 96  # the soil's temperature follows the air's with this time constant
FREEZE_C = -0.3  # soil below this is frozen
THAW_C = 0.1  # ... until it is above this again
ICE_RAMP_STEPS = 32  # a freezing probe's reading falls over this long, then holds


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


def snowpack(precipitation: np.ndarray, air: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per place or sensor (rows) and step: the snowpack (mm of water) and the water reaching the ground (rain
    that fell as rain, and snowmelt), from the precipitation (mm per step) and the air temperature."""
    snowing = air < SNOW_BELOW_C
    pack = np.zeros(precipitation.shape[0])
    packs = np.empty_like(precipitation)
    ground = np.where(snowing, 0.0, precipitation).astype(np.float32)
    potential_melt = MELT_MM_PER_C_STEP * np.clip(air, 0.0, None)
    for t in range(precipitation.shape[1]):
        melt = np.minimum(pack, potential_melt[:, t])
        pack = pack + np.where(snowing[:, t], precipitation[:, t], 0.0) - melt
        packs[:, t] = pack
        ground[:, t] += melt
    return packs.astype(np.float32), ground


def under_snow(air: np.ndarray) -> np.ndarray:
    """What a sensor buried in snow reads for air temperature: near 0 °C, barely following the air."""
    return np.clip(0.1 * air - 0.3, -1.5, 0.3)


def soil_temperature(air: np.ndarray) -> np.ndarray:
    """The soil's temperature per sensor (rows) and step: the air's, lagged by SOIL_LAG_STEPS."""
    alpha = 1.0 / SOIL_LAG_STEPS
    start = air[:, :96].mean(axis=1, keepdims=True) * (1 - alpha)  # the first day's, not its first hour's
    soil, _ = lfilter([alpha], [1.0, alpha - 1.0], air, axis=1, zi=start)
    return soil.astype(np.float32)


def frozen(soil_temperature: np.ndarray) -> np.ndarray:
    """Per sensor and step, whether the soil is frozen: it freezes below FREEZE_C and thaws above THAW_C."""
    state = np.zeros(soil_temperature.shape[0], dtype=bool)
    out = np.empty(soil_temperature.shape, dtype=bool)
    for t in range(soil_temperature.shape[1]):
        column = soil_temperature[:, t]
        state = np.where(state, column < THAW_C, column < FREEZE_C)
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
