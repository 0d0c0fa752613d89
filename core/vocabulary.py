"""The words of the domain, defined once: what a sensor and a station measure (with units and plausible
ranges), the health a sensor can be in, and the kinds of anomaly and the detectors that find them.

The schema, the sources, detection, the API's schemas, the dashboard and the README's tables take
these from here (tests check the README against them), so a new kind or variable is added in one place.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from core.i18n import N_

GROW_DATA_SOURCE = "Thingful.Connectors.GROWSensors"
GROW_TIME_FORMAT = "%Y%m%d%H%M%S"  # GROW's times, always UTC


@dataclass(frozen=True)
class Variable:
    """One measured quantity: its column name, how a person calls it (in English, marked for the
    catalogues: the pages translate it), its unit, the values a sensor in a garden can plausibly read
    ([low, high]: outside is an anomaly to detect), and the values it can possibly send at all
    ([possible_low, possible_high]: outside is a transmission error, stored as missing and quarantined,
    never a reading)."""

    name: str
    label: str
    unit: str
    low: float
    high: float
    possible_low: float
    possible_high: float

    def format(self, value: float) -> str:
        return f"{value:.1f} {self.unit}"


# A Parrot Flower Power's four series, in the readings table's column order, with the GROW API's code
# of each (calibrated soil moisture is the soil moisture we keep).
SENSOR_VARIABLES = {
    # A faulty probe reads soil moisture far over 100 % and air temperature far beyond the weather: the
    # possible ranges keep those (detection must see them) and refuse only what no sensor can send.
    "soil_moisture": Variable("soil_moisture", N_("soil moisture"), "%", 0.0, 65.0, -50.0, 1000.0),
    "air_temperature": Variable("air_temperature", N_("air temperature"), "°C", -30.0, 55.0, -100.0, 150.0),
    "light": Variable("light", N_("light"), "mol/m²/d", 0.0, 150.0, -10.0, 1000.0),
    "battery_level": Variable("battery_level", N_("battery"), "%", 0.0, 100.0, -10.0, 110.0),
}
GROW_CODES = {
    "soil_moisture": "calibrated_soil_moisture",
    "air_temperature": "air_temperature",
    "light": "light",
    "battery_level": "battery_level",
}


@dataclass(frozen=True)
class SourceVariable:
    """How one source's sensor model sends one of our variables: the unit it sends, the factor that
    turns that into ours, and the range the model can read at all in our unit (its datasheet's), where
    that differs from the vocabulary's. The names it goes by on that source match case-insensitively."""

    unit: str
    titles: tuple[str, ...]
    to_ours: float = 1.0
    model_low: float | None = None
    model_high: float | None = None


# openSenseMap's senseBox:home (sensor titles as its sensor layouts name them, German and English).
# Light: the TSL45315 sends illuminance in lux, we keep photosynthetic light in mol/m²/d. In daylight
# 1 lx is about 0.0185 µmol/m²/s of PAR, and a day is 86,400 s: 1 lx ≈ 0.0016 mol/m²/d. The TSL45315
# reads up to 220,000 lx (352 mol/m²/d), so full sun may read above the Flower Power's 150.
LIGHT_PER_LUX = 0.0185 * 86_400 / 1e6
OPENSENSEMAP_VARIABLES = {
    "soil_moisture": SourceVariable("%", ("bodenfeuchte", "soil moisture", "bodenfeuchtigkeit")),
    "air_temperature": SourceVariable("°C", ("temperatur", "temperature", "lufttemperatur")),
    "light": SourceVariable(
        "lx",
        ("beleuchtungsstärke", "illuminance", "light intensity"),
        LIGHT_PER_LUX,
        0.0,
        220_000 * LIGHT_PER_LUX,
    ),
    "battery_level": SourceVariable("%", ("batterie", "battery", "akku")),
}

# The sources whose sensor models differ from GROW's, by the prefix their sensor ids carry (GROW's ids
# carry none, as 2019 stored them), and how each sends our variables.
SOURCE_PREFIXES = {"osem:": "opensensemap", "file:": "files"}
SOURCE_VARIABLES = {"opensensemap": OPENSENSEMAP_VARIABLES}


def source_of(sensor_id: str) -> str:
    """Which source a sensor comes from, by its id."""
    return next((name for prefix, name in SOURCE_PREFIXES.items() if sensor_id.startswith(prefix)), "grow")


def model_range(source: str, variable: str, low: float, high: float) -> tuple[float, float]:
    """The plausible range of a variable for a source's sensor model: its datasheet's where the vocabulary
    gives one, else [low, high] (the configured range, which is the Flower Power's)."""
    how = SOURCE_VARIABLES.get(source, {}).get(variable)
    if how is None:
        return low, high
    return (
        low if how.model_low is None else how.model_low,
        high if how.model_high is None else how.model_high,
    )


# What a WOW station reports that we keep.
STATION_VARIABLES = {
    "air_temperature": Variable("air_temperature", "air temperature", "°C", -60.0, 60.0, -100.0, 100.0),
    "rainfall": Variable("rainfall", "rainfall", "mm", 0.0, 500.0, 0.0, 2000.0),
    "relative_humidity": Variable("relative_humidity", "relative humidity", "%", 0.0, 100.0, 0.0, 110.0),
}


class Health(StrEnum):
    """A sensor's health, with the 2019 meaning (see `etl.analyse_anomalies`)."""

    HEALTHY = "healthy"  # no anomaly ever
    FAULTY = "faulty"  # the last anomaly ended less than FAULTY_DAYS before the latest reading
    RECOVERED = "recovered"  # anomalies, the last FAULTY_DAYS or more before the latest reading
    SILENT = "silent"  # no reading for SILENT_DAYS: whatever it was, nobody can tell now
    PAUSED = "paused"  # its owner paused it for maintenance until a day not yet come: nothing is judged


class Detector(StrEnum):
    """The three kinds of evidence, and what recognises the garden's conditions."""

    RULE = "rule"  # a rule over the sensor's own series
    MODEL = "model"  # a per-variable autoencoder over each day
    REFERENCE = "reference"  # the sensor against its nearest live WOW station
    CONDITION = "condition"  # not a fault: frost, snow, a watering system (see CONDITIONS)


class AnomalyKind(StrEnum):
    """What an anomaly says is wrong. Each kind has one detector and a meaning for people."""

    OUT_OF_RANGE = "out_of_range"
    STUCK = "stuck"
    SPIKE = "spike"
    BREAK = "break"
    PROBE_OUT_OF_SOIL = "probe_out_of_soil"
    SATURATION = "saturation"
    BATTERY_EXHAUSTED = "battery_exhausted"
    UNUSUAL_DAY = "unusual_day"
    TEMPERATURE_BIAS = "temperature_bias"
    HOT_SPOT = "hot_spot"
    NO_DAILY_CYCLE = "no_daily_cycle"
    RISING_WITHOUT_RAIN = "rising_without_rain"
    DRIFT = "drift"
    MOVED = "moved"
    FROZEN_SOIL = "frozen_soil"
    SNOW_COVER = "snow_cover"
    WATERING_SYSTEM = "watering_system"
    MODEL_2019 = "2019-model"  # history brought over from a 2019 deployment (python -m etl import-2019)
    ISMN_FLAG = "ismn-flag"  # history from ISMN's quality control of its files (python -m etl import-files)

    @property
    def detector(self) -> Detector:
        return KIND_DETECTOR[self]

    @property
    def is_condition(self) -> bool:
        """A condition of the garden, kept and shown, that does not make a sensor faulty."""
        return self in CONDITIONS

    @property
    def label(self) -> str:
        return KIND_LABEL[self]

    @property
    def meaning(self) -> str:
        return KIND_MEANING[self]


KIND_DETECTOR = {
    AnomalyKind.OUT_OF_RANGE: Detector.RULE,
    AnomalyKind.STUCK: Detector.RULE,
    AnomalyKind.SPIKE: Detector.RULE,
    AnomalyKind.BREAK: Detector.RULE,
    AnomalyKind.PROBE_OUT_OF_SOIL: Detector.RULE,
    AnomalyKind.SATURATION: Detector.RULE,
    AnomalyKind.BATTERY_EXHAUSTED: Detector.RULE,
    AnomalyKind.UNUSUAL_DAY: Detector.MODEL,
    AnomalyKind.TEMPERATURE_BIAS: Detector.REFERENCE,
    AnomalyKind.HOT_SPOT: Detector.REFERENCE,
    AnomalyKind.NO_DAILY_CYCLE: Detector.REFERENCE,
    AnomalyKind.RISING_WITHOUT_RAIN: Detector.REFERENCE,
    AnomalyKind.DRIFT: Detector.REFERENCE,
    AnomalyKind.MOVED: Detector.RULE,
    AnomalyKind.FROZEN_SOIL: Detector.CONDITION,
    AnomalyKind.SNOW_COVER: Detector.CONDITION,
    AnomalyKind.WATERING_SYSTEM: Detector.CONDITION,
    AnomalyKind.MODEL_2019: Detector.MODEL,
    AnomalyKind.ISMN_FLAG: Detector.RULE,
}
# Conditions: what a garden goes through that would trip the checks (the checks stand down while one
# lasts), recorded so that people see it, never a reason to call a sensor faulty.
CONDITIONS = frozenset(kind for kind, detector in KIND_DETECTOR.items() if detector == Detector.CONDITION)
# What is recorded and shown but never decides a sensor's health: the conditions, and imported history
# (the days 2019's model flagged, the values ISMN's quality control flagged): today's checks judge now.
IMPORTED = frozenset({AnomalyKind.MODEL_2019, AnomalyKind.ISMN_FLAG})  # no check of ours finds these
NOT_FAULTS = CONDITIONS | IMPORTED
# What people call each kind: its value in words (the pages translate it).
KIND_LABEL = {
    AnomalyKind.OUT_OF_RANGE: N_("out of range"),
    AnomalyKind.STUCK: N_("stuck"),
    AnomalyKind.SPIKE: N_("spike"),
    AnomalyKind.BREAK: N_("break"),
    AnomalyKind.PROBE_OUT_OF_SOIL: N_("probe out of soil"),
    AnomalyKind.SATURATION: N_("saturation"),
    AnomalyKind.BATTERY_EXHAUSTED: N_("battery exhausted"),
    AnomalyKind.UNUSUAL_DAY: N_("unusual day"),
    AnomalyKind.TEMPERATURE_BIAS: N_("temperature bias"),
    AnomalyKind.HOT_SPOT: N_("hot spot"),
    AnomalyKind.NO_DAILY_CYCLE: N_("no daily cycle"),
    AnomalyKind.RISING_WITHOUT_RAIN: N_("rising without rain"),
    AnomalyKind.DRIFT: N_("drift"),
    AnomalyKind.MOVED: N_("moved"),
    AnomalyKind.FROZEN_SOIL: N_("frozen soil"),
    AnomalyKind.SNOW_COVER: N_("snow cover"),
    AnomalyKind.WATERING_SYSTEM: N_("watering system"),
    AnomalyKind.MODEL_2019: N_("2019-model"),
    AnomalyKind.ISMN_FLAG: N_("ismn-flag"),
}
KIND_MEANING = {
    AnomalyKind.OUT_OF_RANGE: N_("a value the sensor cannot plausibly read in a garden"),
    AnomalyKind.STUCK: N_(
        "a value held when it should have moved: through rain, long past its rests, at 0 %"
    ),
    AnomalyKind.SPIKE: N_("samples that leap away from their neighbours and come back"),
    AnomalyKind.BREAK: N_("a sudden jump after which the level stays shifted"),
    AnomalyKind.PROBE_OUT_OF_SOIL: N_("soil moisture falling from moist to near zero and staying there"),
    AnomalyKind.SATURATION: N_("soil moisture pinned flat at a high ceiling"),
    AnomalyKind.BATTERY_EXHAUSTED: N_("a battery nearly empty: readings degrade, then stop"),
    AnomalyKind.UNUSUAL_DAY: N_("a day unlike any normal day the model learnt"),
    AnomalyKind.TEMPERATURE_BIAS: N_("air temperature off the nearby station's on average"),
    AnomalyKind.HOT_SPOT: N_("far warmer than the station by day only: in full sun"),
    AnomalyKind.NO_DAILY_CYCLE: N_("air temperature flat while the station swings: indoors or covered"),
    AnomalyKind.RISING_WITHOUT_RAIN: N_("soil moisture climbing through days the station saw no rain"),
    AnomalyKind.DRIFT: N_("soil moisture walking away from what the station's weather explains"),
    AnomalyKind.MOVED: N_(
        "soil moisture and light changing level at the same moment: moved to another place"
    ),
    AnomalyKind.FROZEN_SOIL: N_("not a fault: frozen soil, so soil moisture holds or drops until the thaw"),
    AnomalyKind.SNOW_COVER: N_("not a fault: buried in snow, dark and near 0 °C until it melts"),
    AnomalyKind.WATERING_SYSTEM: N_("not a fault: the soil wetted every day at the same hour, rain or not"),
    AnomalyKind.MODEL_2019: N_(
        "history from 2019: a day its model flagged (the error equal to the next day's)"
    ),
    AnomalyKind.ISMN_FLAG: N_("history from ISMN: values its quality control called dubious or implausible"),
}


class Answer(StrEnum):
    """What an owner (or an admin) says of an anomaly: stored with who and when (`anomaly_answers`)."""

    REAL_FAULT = "real_fault"  # yes, it was broken: kept, and a label for judging the checks
    NOT_A_FAULT = "not_a_fault"  # something the garden did (`NotAFault`): it no longer makes a sensor faulty
    FIXED = "fixed"  # the owner mended it: the next run judges the sensor afresh from then on


class NotAFault(StrEnum):
    """Why an anomaly was no fault, as an owner says it."""

    WATERING = "watering"
    GARDENING = "gardening"  # digging, weeding, planting around it
    MOVED = "moved"  # moved on purpose
    WINTER = "winter"  # in the shed for winter
    OTHER = "other"  # with a note
