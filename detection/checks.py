"""Every check detection can run, registered in one place, as in SaQC's registry: a unique name, the
kinds of anomaly it can emit, its detector, its variable and its thresholds, a frozen dataclass whose
defaults are the tuned values. Which checks run and with which thresholds is configuration:

    from detection.checks import configure
    config = configure("-unusual_day,-stuck.light", {"spike.air_temperature": {"threshold": 6}})
    anomalies = detect(readings, config=config)

A check's group is its name before the dot (`spike` is both spike checks). A misspelt check or threshold
name is an error, never silently ignored. The detector modules (rules, reference, model) run the checks
the configuration selects; this module knows what exists, not how to run it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import difflib
import json
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, TypeVar

import pandas as pd

from core.times import HOUR
from core.vocabulary import SENSOR_VARIABLES, AnomalyKind, Detector


class Source(StrEnum):
    """Where a threshold's value comes from, recorded beside it (`Annotated[type, source]`) and shown by
    `python -m etl checks`: real probes are the yardstick, the simulator only where they cannot say."""

    PHYSICS = "physics"
    DATASHEET = "datasheet"
    STANDARD = "QC standard"  # ISMN's flags (Dorigo et al. 2013), QARTOD
    Y2019 = "2019"
    REAL = "fitted on real data"  # ../shared/realdata, benchmarks/bench_real.py
    SIMULATOR = "fitted on the simulator"


PHYSICS, DATASHEET, STANDARD, REAL, SIMULATOR = (
    Source.PHYSICS,
    Source.DATASHEET,
    Source.STANDARD,
    Source.REAL,
    Source.SIMULATOR,
)

# --- thresholds, one dataclass per type of check (durations are pd.Timedelta: "12h" in JSON) ---------------


@dataclass(frozen=True)
class RangeThresholds:
    low: Annotated[float, DATASHEET]  # lowest plausible value, in the variable's unit
    high: Annotated[float, DATASHEET]  # highest plausible value, in the variable's unit


@dataclass(frozen=True)
class SpikeThresholds:
    # leap from the median of the samples around, in the variable's unit
    threshold: Annotated[float, SIMULATOR]
    window: Annotated[pd.Timedelta, SIMULATOR] = 2 * HOUR  # span of that median
    # smaller leaps, many of them close together: a burst of noise
    burst_threshold: Annotated[float | None, REAL] = None
    burst_window: Annotated[pd.Timedelta, REAL] = 6 * HOUR  # span in which they come ...
    burst_share: Annotated[float, REAL] = 0.3  # ... as at least this share of its samples (and three)
    # ... and this many times the sensor's usual change from one sample to the next
    burst_over_usual: Annotated[float, REAL] = 3.0
    # a leap up after which the reading stays this share of it higher is rain soaking in, not a spike
    wetting: Annotated[float | None, REAL] = None
    rain_mm: Annotated[float | None, REAL] = (
        None  # mm the station recorded just before a leap: rain, not a spike
    )
    rain_within: Annotated[pd.Timedelta, REAL] = 6 * HOUR  # ... within this
    # or the reading itself rose this much within that time (no station to say): a storm soaking in
    wet_rise: Annotated[float | None, REAL] = None


@dataclass(frozen=True)
class BreakThresholds:
    threshold: Annotated[float, SIMULATOR]  # jump between two samples, in the variable's unit
    direction: Annotated[int, PHYSICS] = 0  # +1 rises only, -1 falls only, 0 both
    # before and after the jump, whose medians must differ
    window: Annotated[pd.Timedelta, SIMULATOR] = 6 * HOUR
    # a jump of this share of the level it leaves is a break too (dry soil falls little in %) ...
    relative: Annotated[float | None, REAL] = None
    least: Annotated[float, REAL] = 1.0  # ... if it is this large at least (the variable's unit)
    rain_mm: Annotated[float | None, REAL] = None  # mm the station recorded before a fall: a storm draining
    rain_within: Annotated[pd.Timedelta, REAL] = 12 * HOUR  # ... within this
    # or the reading itself rose this much within that time (no station to say): a storm draining
    wet_rise: Annotated[float | None, REAL] = None

    def __post_init__(self) -> None:
        if self.direction not in (-1, 0, 1):
            raise ValueError(f"direction must be -1, 0 or 1, not {self.direction}")


@dataclass(frozen=True)
class StuckThresholds:
    min_duration: Annotated[pd.Timedelta, STANDARD] = 12 * HOUR  # the same value at least this long
    tolerance: Annotated[float, SIMULATOR] = 0.01  # a change no larger (variable's unit) is no change
    # runs below this level are left alone up to longest_night
    ignore_below: Annotated[float | None, PHYSICS] = None
    # a winter night in the far north of Europe is shorter
    longest_night: Annotated[pd.Timedelta, PHYSICS] = 20 * HOUR
    # ... and this many times as long as the sensor holds still on the days around
    usual_factor: Annotated[float, REAL] = 2.0
    # a day's longest hold counts up to this in what is usual
    usual_cap: Annotated[pd.Timedelta, REAL] = 7 * 24 * HOUR
    context_days: Annotated[int, REAL] = 15  # the days either side that say what is usual
    # ... read on this many of them at least, else a hold must outlast a night and a day too: a day or
    # two around (the rest under frost or snow, or before the first reading) may show the sensor resting
    # long, but not that it rests briefly (their weather may have moved it)
    usual_days: Annotated[int, PHYSICS] = 3
    # a level no live probe holds (soil moisture: exactly 0 %)
    impossible: Annotated[float | None, PHYSICS] = None
    wet_mm: Annotated[float, PHYSICS] = 10.0  # mm the station recorded while the value held ...
    # ... and it held this long after: the rain never reached it
    after_rain: Annotated[pd.Timedelta, PHYSICS] = 6 * HOUR
    # a hold that ends this many of the sensor's steps away from where it held ...
    hidden_steps: Annotated[float, REAL] = 3.0
    # ... and this far (variable's unit) hid a change: else the sensor was at rest
    hidden_change: Annotated[float, REAL] = 0.5
    # a hold that ends in a fall this large (variable's unit) is stuck however long the sensor holds around
    hidden_fall: Annotated[float | None, REAL] = None
    # a hold that ends where it held (hid nothing) outlasts the usual this often
    rest_factor: Annotated[float, REAL] = 4.0
    # a hold hid a change only where it ends in a leap: its first step this many times the steps after
    # it. Soil at rest moves off a step at a time (frost, a shower soaking in); light and air always move.
    leap_ratio: Annotated[float | None, PHYSICS] = None
    # a hold that ends in a rise with this much water (mm) at the station within `answer_within` either
    # side of its end was a probe at rest answering the rain
    answered_mm: Annotated[float, PHYSICS] = 1.0
    answer_within: Annotated[pd.Timedelta, PHYSICS] = 3 * HOUR
    # %: soil this dry, at its sensor's lowest, rests until rain: a surface dries to about half its wilting
    # point (FAO-56, ch. 7), and garden soils wilt at 20 % or less
    air_dry: Annotated[float | None, PHYSICS] = None


@dataclass(frozen=True)
class ProbeOutOfSoilThresholds:
    dry: Annotated[float, PHYSICS] = 4.0  # %: soil in a garden does not dry below this
    # %: the median of the day before, for a fall from moist soil ...
    wet_before: Annotated[float, SIMULATOR] = 6.0
    # ... to at most this share of it: soil dries over days, a pulled probe in hours
    fall_ratio: Annotated[float, SIMULATOR] = 2.0
    min_duration: Annotated[pd.Timedelta, SIMULATOR] = 12 * HOUR  # below `dry` at least this long


@dataclass(frozen=True)
class SaturationThresholds:
    level: Annotated[float, PHYSICS] = 45.0  # %: at or above is saturated
    tolerance: Annotated[float, SIMULATOR] = 0.3  # %: half the spread a plateau may have
    # ISMN's D10 (Dorigo et al. 2013): a plateau of 12 h or more
    min_duration: Annotated[pd.Timedelta, STANDARD] = 12 * HOUR
    leap_in: Annotated[float | None, REAL] = 5.0  # %: leapt onto from the sample before, unless it rained ...
    long_plateau: Annotated[pd.Timedelta, REAL] = 72 * HOUR  # ... or held this long: wet soil drains in days
    rain_mm: Annotated[float, PHYSICS] = 1.0  # mm the station recorded before the leap: rain filled the soil
    rain_within: Annotated[pd.Timedelta, PHYSICS] = 6 * HOUR


@dataclass(frozen=True)
class BatteryThresholds:
    empty: Annotated[float, DATASHEET] = 5.0  # %: at or below, readings degrade and then stop


@dataclass(frozen=True)
class TemperatureThresholds:
    # °C: a day's mean off the station by more is biased
    max_mean_difference: Annotated[float, SIMULATOR] = 4.0
    # °C warmer in the station's warm hours than its cold ones: in the sun
    max_warm_excess: Annotated[float, SIMULATOR] = 1.0
    # a day/night swing under this share of the station's: indoors
    min_swing_ratio: Annotated[float, SIMULATOR] = 0.3
    # °C: ... when the station's own swing is at least this
    min_station_swing: Annotated[float, SIMULATOR] = 5.0
    min_hours: Annotated[int, SIMULATOR] = 16  # hours with both sensor and station for a day to be judged


@dataclass(frozen=True)
class RisingWithoutRainThresholds:
    min_step: Annotated[float, SIMULATOR] = 0.2  # %: a day's median above the day before's by this is a rise
    min_rise: Annotated[float, SIMULATOR] = 1.0  # %: over the whole run of rising dry days
    max_rain_mm: Annotated[float, SIMULATOR] = 1.0  # mm over the day and the one before: dry
    # % per mm of the most the station recorded: a light shower that the gauge half-caught explains a
    # small rise (soil gains about 1-2 % per mm of rain that reaches it)
    explained_per_mm: Annotated[float, PHYSICS] = 2.0
    # hours of rain reports over those two days, else no evidence
    min_rain_hours: Annotated[int, SIMULATOR] = 36


@dataclass(frozen=True)
class DriftThresholds:
    # share of yesterday's rain and warmth a garden still feels today
    memory: Annotated[float, SIMULATOR] = 0.85
    min_days: Annotated[int, SIMULATOR] = 20  # daily medians a sensor needs to be judged
    # a drift starts no closer than this to either end of the history
    edge_days: Annotated[int, SIMULATOR] = 7
    # days: on a record longer than a season, a ramp that would start before the first day it may (the
    # whole record walks) is a season the weather's fading sums miss, not a probe that began to drift
    season_days: Annotated[int, SIMULATOR] = 91
    # level test: share of what the weather leaves over a ramp must explain
    min_explained: Annotated[float, REAL] = 0.75
    # %: level test: how far the ramp moved the reading by the last day
    min_change: Annotated[float, REAL] = 10.0
    # %/day: a probe's calibration drifts slowly; a level walking away faster is a season turning
    max_rate: Annotated[float, REAL] = 1.5
    # level test: a fall over a ramp of `dry_spell_days` or more whose days had under `dry_spell_mm` a
    # day at the station, and under `dry_spell_share` of the days before, is soil drying through a dry
    # spell: over weeks the fading sums (`memory`: a week) follow the soil; over a month, drying adds up
    dry_spell_days: Annotated[int, PHYSICS] = 28
    dry_spell_mm: Annotated[float, SIMULATOR] = 1.0
    dry_spell_share: Annotated[float, SIMULATOR] = 0.5
    # mm: drying test: a dry day has at most this, that day and the one before
    dry_rain_mm: Annotated[float, SIMULATOR] = 0.5
    min_dry_days: Annotated[int, SIMULATOR] = 15  # drying test: dry days needed
    # drying test: share a change of drying rate must explain
    min_dry_explained: Annotated[float, SIMULATOR] = 0.65
    shared_days: Annotated[int, SIMULATOR] = 10  # a drift a neighbour shares, starting this close, is weather


@dataclass(frozen=True)
class UnusualDayThresholds:
    # reconstruction error over the model's calibrated threshold
    min_error_ratio: Annotated[float, SIMULATOR] = 1.0


@dataclass(frozen=True)
class UnusualSoilDayThresholds(UnusualDayThresholds):
    # a day the station had this much rain is not judged: storms are unusual
    wet_day_rain_mm: Annotated[float, SIMULATOR] = 1.0


@dataclass(frozen=True)
class MovedThresholds:
    min_jump: Annotated[float, SIMULATOR] = 2.0  # %: soil moisture moving this much between two samples ...
    min_share: Annotated[float, SIMULATOR] = 0.25  # ... and this share of its level
    # the light's level after over before (or before over after) at least this
    light_ratio: Annotated[float, SIMULATOR] = 2.3
    days: Annotated[int, SIMULATOR] = 7  # days either side that set the light's level


@dataclass(frozen=True)
class FrozenSoilThresholds:
    below: Annotated[float, PHYSICS] = 0.5  # °C: soil estimated colder than this may be frozen
    # the soil's temperature follows the air's this slowly
    soil_lag: Annotated[pd.Timedelta, PHYSICS] = 48 * HOUR
    # the checks stand down this long before the freeze and after the thaw
    margin: Annotated[pd.Timedelta, SIMULATOR] = 24 * HOUR
    # °C: the station's frost counts for a sensor whose own estimate is below this (snow keeps a buried
    # sensor near 0 °C); a sensor warmer than that is indoors, or faulty, not in frozen ground
    warm_sensor: Annotated[float, SIMULATOR] = 3.0
    # after the thaw, snowmelt and thawing ground soak a garden, each in its own days, beyond what the
    # station's rain gauge shows: the checks that take every rise for rain stand down this much longer
    soaked: Annotated[pd.Timedelta, SIMULATOR] = 14 * 24 * HOUR


@dataclass(frozen=True)
class SnowCoverThresholds:
    warmest: Annotated[float, PHYSICS] = 1.5  # °C: a buried sensor's air temperature stays below this ...
    # °C: ... and above this: a few cm of snow pass on a third of the air's frost or less (snow conducts
    # 0.1-0.4 W/m/K, Sturm et al. 1997), so under -30 °C air a buried head stays above about -10 °C
    coldest: Annotated[float, PHYSICS] = -10.0
    # °C: ... moving less within an hour and from hour to hour (snow insulates it)
    flat: Annotated[float, SIMULATOR] = 0.3
    min_duration: Annotated[pd.Timedelta, SIMULATOR] = 2 * HOUR  # buried at least this long
    dark: Annotated[float, SIMULATOR] = 2.0  # an hour as bright as this, in the light's unit, ...
    # ... and as this share of that hour's brightest around it, is not under snow
    darkness: Annotated[float, SIMULATOR] = 0.25
    around: Annotated[int, SIMULATOR] = 30  # days either side that say how bright the sensor can be
    margin: Annotated[pd.Timedelta, SIMULATOR] = 6 * HOUR  # the checks stand down this long before and after
    stir: Annotated[pd.Timedelta, SIMULATOR] = 2 * HOUR  # a spell this short of being buried does not end it


@dataclass(frozen=True)
class WateringSystemThresholds:
    # %: soil moisture rising this much in one sample wets the soil
    min_rise: Annotated[float, SIMULATOR] = 0.8
    same_hour: Annotated[pd.Timedelta, SIMULATOR] = 0.75 * HOUR  # the wettings of a system differ by less
    min_days: Annotated[int, SIMULATOR] = 5  # days of seven wetted at the same hour
    max_gap_days: Annotated[int, SIMULATOR] = 3  # days without (rain, a power cut) that do not end it
    # a garden kept wet all summer takes weeks to dry to what the weather alone leaves it: the checks
    # that take every rise or fall for the weather's stand down this much longer
    soaked: Annotated[pd.Timedelta, SIMULATOR] = 21 * 24 * HOUR


Thresholds = TypeVar("Thresholds")


# --- the registry ---------------------------------------------------------------------------------------

# What a check stands down for: the conditions whose spans blank the readings it looks at (see
# `detection.conditions.stand_down`). SOAKING is frozen soil and a watering system lengthened by the days
# the garden stays wetter than the station's weather explains after them (their `soaked` thresholds).
FROST, SNOW, WATERING = AnomalyKind.FROZEN_SOIL, AnomalyKind.SNOW_COVER, AnomalyKind.WATERING_SYSTEM
SOAKING = "soaking"
NOTHING: frozenset = frozenset()
WINTER = frozenset({FROST, SNOW})  # ice and snow make readings misleading to most checks
WET = WINTER | {WATERING, SOAKING}  # ... and a watering system to those that take every rise for rain


@dataclass(frozen=True)
class Check:
    """One registered check: what it is called, finds and looks at, its default thresholds (and where a
    value given here comes from, where that differs from its dataclass's), and the conditions it stands
    down for. Its function is bound by the detector module that runs it (`register`)."""

    name: str
    detector: Detector
    kinds: tuple[AnomalyKind, ...]
    variable: str
    defaults: object  # a frozen thresholds dataclass
    stands_down: frozenset = WINTER
    sources: Mapping[str, Source] = field(default_factory=dict)

    @property
    def group(self) -> str:
        return self.name.split(".")[0]

    @property
    def function(self) -> Callable:
        """What runs the check, as its detector module registered it for its group."""
        try:
            return FUNCTIONS[self.group]
        except KeyError:
            raise LookupError(f"no function is registered for the check {self.name!r}") from None

    def provenance(self) -> dict[str, Source]:
        """Each threshold's source, by name."""
        hints = typing.get_type_hints(type(self.defaults), include_extras=True)
        found = {
            f.name: next(
                (m for m in getattr(hints[f.name], "__metadata__", ()) if isinstance(m, Source)), None
            )
            for f in dataclasses.fields(self.defaults)
        }
        return {**found, **self.sources}


FUNCTIONS: dict[str, Callable] = {}


def register(group: str) -> Callable[[Callable], Callable]:
    """Bind the function below to every check of `group`, as SaQC's @register does: the detector modules
    say how a check runs, this registry what it is; the dispatcher (`detection.detect`) runs what a
    configuration selects."""
    if not any(check.group == group for check in CHECKS.values()):
        raise ValueError(f"no check of group {group!r} is registered")

    def bind(function: Callable) -> Callable:
        FUNCTIONS[group] = function
        return function

    return bind


def _registry() -> dict[str, Check]:
    kind = AnomalyKind

    def rule(name: str, found: AnomalyKind, variable: str, thresholds: object, **more) -> Check:
        return Check(name, Detector.RULE, (found,), variable, thresholds, **more)

    def model(variable: str, thresholds: object, stands_down: frozenset) -> Check:
        name = f"unusual_day.{variable}"
        return Check(name, Detector.MODEL, (kind.UNUSUAL_DAY,), variable, thresholds, stands_down)

    checks = [
        # A frozen probe cannot read 200 %: the ranges look at the readings as read, whatever holds.
        *(
            rule(
                f"range.{v.name}",
                kind.OUT_OF_RANGE,
                v.name,
                RangeThresholds(v.low, v.high),
                stands_down=NOTHING,
            )
            for v in SENSOR_VARIABLES.values()
        ),
        # An air temperature that leaps and comes back is a spike under snow as anywhere (snow brings
        # steps, not spikes); soil moisture's is not: a frozen probe thawing for an hour leaps and comes back.
        rule(
            "spike.air_temperature", kind.SPIKE, "air_temperature", SpikeThresholds(8.0), stands_down=NOTHING
        ),
        rule(
            "spike.soil_moisture",
            kind.SPIKE,
            "soil_moisture",
            SpikeThresholds(10.0, burst_threshold=1.5, wetting=0.25, rain_mm=1.0, wet_rise=5.0),
        ),
        rule("break.air_temperature", kind.BREAK, "air_temperature", BreakThresholds(6.0)),
        # Soil moisture rises suddenly with rain: only its sudden falls are breaks; 4 % fitted on ISMN's
        # clean windows (drainage after a downpour falls back to where it was, which a break never does).
        rule(
            "break.soil_moisture",
            kind.BREAK,
            "soil_moisture",
            BreakThresholds(4.0, direction=-1, relative=0.35, rain_mm=1.0, wet_rise=5.0),
            sources={"threshold": REAL},
        ),
        rule("stuck.air_temperature", kind.STUCK, "air_temperature", StuckThresholds()),
        rule("stuck.light", kind.STUCK, "light", StuckThresholds(ignore_below=0.5)),  # 0 all night
        rule(
            "stuck.soil_moisture",
            kind.STUCK,
            "soil_moisture",
            # no probe in soil reads 0; soil dries slowly, and moves off a rest a step at a time
            StuckThresholds(impossible=0.0, hidden_fall=1.0, leap_ratio=3.0, air_dry=10.0),
        ),
        rule("probe_out_of_soil", kind.PROBE_OUT_OF_SOIL, "soil_moisture", ProbeOutOfSoilThresholds()),
        # Ice reads dry: a frozen probe does not leap to saturation and hold there (flagit's test frame).
        rule("saturation", kind.SATURATION, "soil_moisture", SaturationThresholds(), stands_down=NOTHING),
        rule("battery_exhausted", kind.BATTERY_EXHAUSTED, "battery_level", BatteryThresholds()),
        Check(
            "temperature",
            Detector.REFERENCE,
            (kind.TEMPERATURE_BIAS, kind.HOT_SPOT, kind.NO_DAILY_CYCLE),
            "air_temperature",
            TemperatureThresholds(),
        ),
        Check(
            "rising_without_rain",
            Detector.REFERENCE,
            (kind.RISING_WITHOUT_RAIN,),
            "soil_moisture",
            RisingWithoutRainThresholds(),
            stands_down=WET,
        ),
        Check(
            "drift", Detector.REFERENCE, (kind.DRIFT,), "soil_moisture", DriftThresholds(), stands_down=WET
        ),
        rule("moved", kind.MOVED, "soil_moisture", MovedThresholds()),
        Check(
            "frozen_soil",
            Detector.CONDITION,
            (kind.FROZEN_SOIL,),
            "soil_moisture",
            FrozenSoilThresholds(),
            stands_down=NOTHING,
        ),
        Check(
            "snow_cover",
            Detector.CONDITION,
            (kind.SNOW_COVER,),
            "light",
            SnowCoverThresholds(),
            stands_down=NOTHING,
        ),
        Check(
            "watering_system",
            Detector.CONDITION,
            (kind.WATERING_SYSTEM,),
            "soil_moisture",
            WateringSystemThresholds(),
            stands_down=NOTHING,
        ),
        model("soil_moisture", UnusualSoilDayThresholds(), WET),
        model("light", UnusualDayThresholds(), WINTER),
        model("air_temperature", UnusualDayThresholds(), WINTER),
    ]
    return {check.name: check for check in checks}


CHECKS = _registry()
GROUPS = list(dict.fromkeys(check.group for check in CHECKS.values()))


# --- overriding thresholds by name -----------------------------------------------------------------------


def override_thresholds(check: str, thresholds: Thresholds, changes: Mapping[str, object]) -> Thresholds:
    """`thresholds` with some values changed by name (as from JSON: numbers, durations as "12h"); an
    unknown name or a value of the wrong type is a ValueError naming the check and the threshold."""
    names = [f.name for f in dataclasses.fields(thresholds)]
    for name in changes:
        if name not in names:
            raise ValueError(f"{check} has no threshold {name!r} (its thresholds: {', '.join(names)})")
    types = typing.get_type_hints(type(thresholds))
    values = {
        name: _typed(check, name, types[name], getattr(thresholds, name), v) for name, v in changes.items()
    }
    try:
        return dataclasses.replace(thresholds, **values)
    except ValueError as exc:
        raise ValueError(f"{check}: {exc}") from None


def _typed(check: str, name: str, kind: object, default: object, value: object) -> object:
    """A JSON value as the type the threshold has."""
    allowed = typing.get_args(kind) or (kind,)
    if value is None and type(None) in allowed:
        return None
    if pd.Timedelta in allowed:
        if isinstance(value, str | dt.timedelta):
            try:
                duration = pd.Timedelta(value)
            except ValueError:
                duration = pd.NaT
            if duration is not pd.NaT and duration > pd.Timedelta(0):
                return duration
        example = f"{default / HOUR:g}h" if isinstance(default, pd.Timedelta) else "12h"
        raise ValueError(f"{check}: {name} must be a duration such as '{example}', not {value!r}")
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if int in allowed and number and float(value).is_integer():
        return int(value)
    if float in allowed and number:
        return float(value)
    whole = " whole" if int in allowed else ""
    raise ValueError(f"{check}: {name} must be a{whole} number, not {value!r}")


def format_thresholds(thresholds: object) -> str:
    """`name=value` pairs, durations in hours: `threshold=8 window=2h`."""
    return " ".join(f"{f.name}={_shown(getattr(thresholds, f.name))}" for f in dataclasses.fields(thresholds))


def _shown(value: object) -> str:
    if isinstance(value, pd.Timedelta):
        return f"{value / HOUR:g}h"
    return "none" if value is None else f"{value:g}"


# --- configuration: which checks run, with which thresholds -----------------------------------------------


@dataclass(frozen=True)
class Configuration:
    """The checks that run (names) and every check's thresholds, the defaults unless overridden."""

    selected: frozenset[str] = frozenset(CHECKS)
    thresholds: Mapping[str, object] = field(
        default_factory=lambda: {name: check.defaults for name, check in CHECKS.items()}
    )

    def runs(self, name: str) -> bool:
        return name in self.selected

    def running(self, detector: Detector) -> list[Check]:
        """The selected checks of one detector, in the registry's order."""
        return [c for c in CHECKS.values() if c.detector == detector and c.name in self.selected]


def select_checks(spec: str) -> frozenset[str]:
    """The checks named by "all" or comma-separated names and groups; a name with a leading "-" is left
    out (of all the checks, when nothing is named to run)."""
    words = [word.strip() for word in spec.split(",") if word.strip()]
    if not words:
        raise ValueError("no check named: say 'all', or name checks or groups separated by commas")
    chosen = set() if any(not word.startswith("-") for word in words) else set(CHECKS)
    for word in words:
        named = _named(word.removeprefix("-").strip())
        chosen = chosen - named if word.startswith("-") else chosen | named
    if not chosen:
        raise ValueError(f"{spec!r} selects no check")
    return frozenset(chosen)


def _named(word: str) -> set[str]:
    if word == "all":
        return set(CHECKS)
    named = {name for name, check in CHECKS.items() if word in (name, check.group)}
    if not named:
        hint = _did_you_mean(word, [*GROUPS, *CHECKS]) or f" (groups: {', '.join(GROUPS)})"
        raise ValueError(f"unknown check or group {word!r}{hint}")
    return named


def with_thresholds(overrides: Mapping[str, Mapping[str, object]]) -> dict[str, object]:
    """Every check's thresholds, with `overrides` ({check name: {threshold: value}}) applied."""
    for name in overrides:
        if name not in CHECKS:
            raise ValueError(f"unknown check {name!r} in the thresholds{_did_you_mean(name, list(CHECKS))}")
    return {
        name: override_thresholds(name, check.defaults, overrides.get(name, {}))
        for name, check in CHECKS.items()
    }


def parse_thresholds(text: str) -> dict[str, dict[str, object]]:
    """Threshold overrides from JSON text ({check name: {threshold: value}}); empty text is none."""
    if not text.strip():
        return {}
    try:
        overrides = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(overrides, dict) or not all(isinstance(v, dict) for v in overrides.values()):
        raise ValueError('must be a JSON object of objects, e.g. {"spike.air_temperature": {"threshold": 6}}')
    return overrides


def configure(
    checks: str = "all", thresholds: Mapping[str, Mapping[str, object]] | None = None
) -> Configuration:
    """The configuration that runs `checks` (see `select_checks`) with `thresholds` overridden."""
    return Configuration(select_checks(checks), with_thresholds(thresholds or {}))


def _did_you_mean(word: str, candidates: list[str]) -> str:
    near = [c for c in candidates if c.split(".")[0] == word] or difflib.get_close_matches(
        word, candidates, n=2
    )
    return f": did you mean {' or '.join(repr(n) for n in near)}?" if near else ""


# The models are off unless asked for (DETECT_CHECKS=all): on year-long simulated networks with winters
# they found no fault that the rules and the stations did not (`python -m devtools.evaluate`'s table of
# what each detector finds alone; docs/detection.md, "How well it works").
DEFAULT_CHECKS = "all,-unusual_day"
EVERY = Configuration()
DEFAULT = Configuration(select_checks(DEFAULT_CHECKS))
