"""Faults of real soil moisture probes, injected into real clean windows at a chosen sampling step.

The catalogue names the faults that the literature on in-situ and low-cost soil moisture sensors
describes, each with its source. A clean real window (hourly, every sample flagged good by ISMN) is first
resampled to the step a sensor reports in (3 min, 15 min, 1 h, 1 day), then one fault is injected at a
random time with a random size, at that step, so that it is visible there: each run of a fault covers at
least three samples of the step. What was done comes back as a label (kind, start, end, step, size).

    rng = np.random.default_rng(7)
    series = resample(window.frame, "15min")
    injected = inject(series, "stuck", "15min", rng)   # None when the window cannot show that fault
    injected.frame, injected.label

Sources (the kinds below cite them by the short name in brackets):
[ISMN]   Dorigo, W. A. et al. (2013) Global automated quality control of in situ soil moisture data from
         the International Soil Moisture Network. Vadose Zone Journal 12(3), doi:10.2136/vzj2012.0097.
         Flags C01 < 0, C02 > 0.6 m³/m³, C03 above saturation; D06 spike, D07 negative break, D08 positive
         break, D09 low constant after a drop, D10 saturated plateau.
[NASMD]  Xia, Y. et al. (2015) Automated quality control of in situ soil moisture from the North American
         Soil Moisture Database using NLDAS-2 products. J. Appl. Meteor. Climatol. 54(6), 1267-1282.
[USCRN]  Bell, J. E. et al. (2013) U.S. Climate Reference Network soil moisture and temperature
         observations. J. Hydrometeorology 14(3), 977-988: three probes per depth, a probe departing from
         its partners flagged.
[EC-5]   Bogena, H. R. et al. (2007) Evaluation of a low-cost soil water content sensor for wireless
         network applications. J. Hydrology 344(1-2), 32-42.
[Ni]     Ni, K. et al. (2009) Sensor network data fault types. ACM Trans. Sensor Networks 5(3), 25:
         outliers, stuck-at, noise, calibration drift, out-of-range and hardware (connection) faults, with
         soil moisture deployments among their examples.
[Sharma] Sharma, A. B., Golubchik, L., Govindan, R. (2010) Sensor faults: detection methods and
         prevalence in real-world datasets. ACM Trans. Sensor Networks 6(3), 23: SHORT, NOISE and CONSTANT.
[VdL]    The GROW Flower Power sensors of Quinta Vale da Lama (the real corpus, grow_vdl_ludwa6): weeks of
         days at exactly 0.0 % and week-long repeats of one value.

The size ranges are this benchmark's choice, set around the thresholds those sources test for (a spike
well past ISMN's, a drift a station can tell from the weather within the window).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.times import DAY, HOUR

STEPS = {
    "3min": pd.Timedelta(minutes=3),
    "15min": pd.Timedelta(minutes=15),
    "1h": pd.Timedelta(hours=1),
    "1d": pd.Timedelta(days=1),
}
NOON = pd.Timedelta(hours=12)  # a daily mean stands at the middle of its day
MIN_RUN = 3  # samples of its step a run of a fault covers at least, to be visible at that step
STUCK_HIDES = 1.0  # % the soil moves while a stuck probe holds, for the fault to change what is read
TRIES = 25  # onsets tried before a window is said not to show a fault
DEFAULT_RESOLUTION = 0.1  # % (a probe reporting 0.001 m³/m³), when a window never changes


@dataclass(frozen=True)
class FaultKind:
    """One kind of fault: what a probe does, where that is described, what `size` measures, and whether
    the probe's own series shows it (else it takes a station's weather to tell it from the soil)."""

    name: str
    what: str
    source: str
    size_means: str
    sensor_alone: bool = True


CATALOGUE = {
    kind.name: kind
    for kind in (
        FaultKind(
            "spike",
            "one sample leaps 10-30 % away from its neighbours and the next is back",
            "[ISMN] D06; [Ni] outliers; [Sharma] SHORT",
            "signed leap, %",
        ),
        FaultKind(
            "noise_burst",
            "6-24 h of noise of ±3-8 % on the reading (a failing contact or cable, interference)",
            "[Ni] noise; [Sharma] NOISE",
            "amplitude, %",
        ),
        FaultKind(
            "stuck",
            "the value at the onset held exactly for 1-5 days (4-10 at a daily step)",
            "[Ni] stuck-at; [Sharma] CONSTANT; [VdL] week-long repeats",
            "hours held",
        ),
        FaultKind(
            "negative_break",
            "a lasting drop of 5-15 % (or of 40-70 % of a low level) from the onset to the window's end",
            "[ISMN] D07; [NASMD]",
            "drop at the onset, %",
        ),
        FaultKind(
            "drift",
            "a linear ramp of 0.3-1.0 %/day added from the onset to the window's end",
            "[Ni] calibration drift; [USCRN] a probe departing from its partners",
            "signed %/day",
            sensor_alone=False,
        ),
        FaultKind(
            "disconnected",
            "the probe reads about 0 (0-0.5 % with tiny noise) for 1-5 days (4-10 at a daily step)",
            "[Ni] hardware/connection; [ISMN] D09; [VdL] days at exactly 0.0 %",
            "level read, %",
        ),
        FaultKind(
            "saturated_plateau",
            "a jump to 45-60 % held within ±0.2 % for 12 h-3 days",
            "[ISMN] D10",
            "plateau level, %",
        ),
        FaultKind(
            "loss_of_contact",
            "from the onset the probe stops answering to rain: a non-increasing decay from the onset "
            "value that ignores every later wetting (air gaps around the probe; its volume of "
            "measurement is a few cm across [EC-5])",
            "[EC-5]; [NASMD] a series not following the precipitation",
            "decay time constant, days",
            sensor_alone=False,
        ),
        FaultKind(
            "out_of_range",
            "hours of values above 100 % or below 0 (a volume fraction cannot be either)",
            "[ISMN] C01/C02; [Ni] out of range",
            "mean value read, %",
        ),
    )
}
SENSOR_ALONE = tuple(name for name, kind in CATALOGUE.items() if kind.sensor_alone)
NEEDS_STATION = tuple(name for name, kind in CATALOGUE.items() if not kind.sensor_alone)
DAILY_KINDS = ("stuck", "disconnected", "out_of_range")  # what daily means can still show of a fault


# --- resampling a real window to a sensor's step ----------------------------------------------------------


def resolution(values: np.ndarray) -> float:
    """The step in value a probe reports in: the smallest non-zero change between neighbours that is
    common (at least 1 % of the changes), e.g. 0.1 % for a TEROS 12 reporting 0.001 m³/m³."""
    changes = np.round(np.abs(np.diff(np.asarray(values, dtype=float))), 6)
    changes = changes[changes > 0]
    if changes.size == 0:
        return DEFAULT_RESOLUTION
    sizes, counts = np.unique(changes, return_counts=True)
    common = sizes[counts >= max(1, 0.01 * changes.size)]
    return float(common.min() if common.size else sizes.min())


def quantised(values: np.ndarray, step: float) -> np.ndarray:
    """Values rounded to multiples of a probe's step in value, as it would report them."""
    return np.round(np.round(np.asarray(values, dtype=float) / step) * step, 6)


def resample(frame: pd.DataFrame, step: str) -> pd.DataFrame:
    """An hourly window (ts, soil_moisture) as a sensor reporting every `step` would send it: finer
    steps interpolated linearly in time, then rounded to the window's own resolution so the probe still
    reports in steps; hourly as it is; daily as daily means at 12:00 UTC."""
    if step == "1h":
        return frame[["ts", "soil_moisture"]].reset_index(drop=True)
    if step == "1d":
        days = frame["ts"].dt.floor("D")
        means = frame.groupby(days)["soil_moisture"].mean()
        return pd.DataFrame({"ts": means.index + NOON, "soil_moisture": means.to_numpy()})
    ts = pd.date_range(frame["ts"].iloc[0], frame["ts"].iloc[-1], freq=STEPS[step])
    hourly = frame["soil_moisture"].to_numpy(dtype=float)
    at = _seconds(ts)
    values = np.interp(at, _seconds(frame["ts"]), hourly)
    return pd.DataFrame({"ts": ts, "soil_moisture": quantised(values, resolution(hourly))})


def _seconds(times) -> np.ndarray:
    """Seconds since the epoch, whatever the resolution pandas keeps the times in."""
    return ((pd.DatetimeIndex(times) - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)).to_numpy()


# --- injecting ----------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Label:
    """What was injected: its kind, the times of the first and last sample it changed or held, the step
    of the series, and its size (in what CATALOGUE[kind].size_means)."""

    kind: str
    start: pd.Timestamp
    end: pd.Timestamp
    step: str
    size: float


@dataclass(frozen=True)
class Injected:
    frame: pd.DataFrame  # ts, soil_moisture: the series with the fault
    label: Label


@dataclass(frozen=True)
class Change:
    """What an injector did to a series of values: the new values, the first and last row of the fault."""

    values: np.ndarray
    first: int
    last: int
    size: float


Injector = Callable[[np.ndarray, pd.Timedelta, np.random.Generator], "Change | None"]


def inject(frame: pd.DataFrame, kind: str, step: str, rng: np.random.Generator) -> Injected | None:
    """`frame` (ts, soil_moisture at `step`) with one fault of `kind` at a random time and of a random
    size, and its label; None when this window cannot show that fault at that step (too dry to be seen
    disconnected, too wet for a plateau to stand out, no wetting to ignore…) after TRIES onsets."""
    original = frame["soil_moisture"].to_numpy(dtype=float)
    at = STEPS[step]
    for _ in range(TRIES):
        change = INJECTORS[kind](original, at, rng)
        if change is not None and _visible(original, change, kind):
            injected = (
                frame[["ts", "soil_moisture"]].reset_index(drop=True).assign(soil_moisture=change.values)
            )
            ts = injected["ts"]
            label = Label(
                kind, ts.iloc[change.first], ts.iloc[change.last], step, round(float(change.size), 3)
            )
            return Injected(injected, label)
    return None


def _visible(original: np.ndarray, change: Change, kind: str) -> bool:
    """Whether the fault changed enough samples of its step to be seen: one for a spike, three for a run;
    and, for a stuck probe, whether the soil moved while it held (by STUCK_HIDES at least): held where the
    soil itself stood still, it reads what a working probe would, and no check can tell them apart."""
    changed = np.count_nonzero(np.abs(change.values - original) > 1e-9)
    if kind == "stuck":
        held = original[change.first : change.last + 1]
        return changed >= MIN_RUN and np.ptp(held) >= STUCK_HIDES
    return changed >= (1 if kind == "spike" else MIN_RUN)


def _samples(duration: pd.Timedelta, step: pd.Timedelta) -> int:
    """How many samples of `step` a fault lasting `duration` covers, at least MIN_RUN."""
    return max(MIN_RUN, round(duration / step))


def _duration(rng: np.random.Generator, low: pd.Timedelta, high: pd.Timedelta) -> pd.Timedelta:
    return low + (high - low) * rng.random()


def _onset(rng: np.random.Generator, n: int, length: int) -> int | None:
    """A random first row for a run of `length` rows that fits inside the window, with a row before it
    (a fault that starts on the window's first sample has nothing to be seen against)."""
    if length + 2 > n:
        return None
    return int(rng.integers(1, n - length))


def _onset_to_end(rng: np.random.Generator, n: int) -> int:
    """A first row for a fault that lasts to the window's end: in its second to sixth tenth, so that
    both the time before and the fault's own course are long enough to be judged."""
    return int(rng.integers(max(1, n // 10), max(2, (6 * n) // 10)))


def _run_length(kind: str, step: pd.Timedelta, rng: np.random.Generator) -> int:
    """Rows a run of `kind` covers at `step`: its duration drawn from the catalogue's range; stuck and
    disconnected last 4-10 days in daily means, where a day or two is no run at all."""
    daily = step >= DAY
    low, high = RUN_DURATIONS[kind]
    if daily and kind in ("stuck", "disconnected"):
        low, high = pd.Timedelta(days=4), pd.Timedelta(days=10)
    return _samples(_duration(rng, low, high), step)


RUN_DURATIONS = {
    "noise_burst": (pd.Timedelta(hours=6), pd.Timedelta(hours=24)),
    "stuck": (pd.Timedelta(days=1), pd.Timedelta(days=5)),
    "disconnected": (pd.Timedelta(days=1), pd.Timedelta(days=5)),
    "saturated_plateau": (pd.Timedelta(hours=12), pd.Timedelta(days=3)),
    "out_of_range": (pd.Timedelta(hours=2), pd.Timedelta(hours=12)),
}


def spike(values: np.ndarray, step: pd.Timedelta, rng: np.random.Generator) -> Change | None:
    at = _onset(rng, len(values), 1)
    if at is None:
        return None
    leap = rng.uniform(10.0, 30.0) * rng.choice([-1.0, 1.0])
    if values[at] + leap < 0:  # a leap below 0 would be out of range, another fault
        leap = -leap
    changed = values.copy()
    changed[at] += leap
    return Change(changed, at, at, leap)


def noise_burst(values: np.ndarray, step: pd.Timedelta, rng: np.random.Generator) -> Change | None:
    length = _run_length("noise_burst", step, rng)
    at = _onset(rng, len(values), length)
    if at is None:
        return None
    amplitude = rng.uniform(3.0, 8.0)
    changed = values.copy()
    run = slice(at, at + length)
    changed[run] = np.maximum(values[run] + rng.uniform(-amplitude, amplitude, length), 0.0)
    return Change(changed, at, at + length - 1, amplitude)


def stuck(values: np.ndarray, step: pd.Timedelta, rng: np.random.Generator) -> Change | None:
    length = _run_length("stuck", step, rng)
    at = _onset(rng, len(values), length)
    if at is None:
        return None
    changed = values.copy()
    changed[at : at + length] = values[at]  # exactly the value at the onset
    return Change(changed, at, at + length - 1, length * step / HOUR)


def negative_break(values: np.ndarray, step: pd.Timedelta, rng: np.random.Generator) -> Change | None:
    at = _onset_to_end(rng, len(values))
    drop = rng.uniform(5.0, 15.0)
    changed = values.copy()
    if values[at:].min() - drop >= 1.0:
        changed[at:] = values[at:] - drop
    else:  # a dry soil cannot fall 5-15 % further: the probe loses 40-70 % of its level instead
        share = rng.uniform(0.4, 0.7)
        changed[at:] = values[at:] * (1.0 - share)
        drop = values[at] * share
    return Change(changed, at, len(values) - 1, drop)


def drift(values: np.ndarray, step: pd.Timedelta, rng: np.random.Generator) -> Change | None:
    at = _onset_to_end(rng, len(values))
    rate = rng.uniform(0.3, 1.0) * rng.choice([-1.0, 1.0])
    days = np.arange(len(values) - at) * (step / DAY)
    if (values[at:] + rate * days).min() < 1.0:  # drifting below a dry soil would read below 0
        rate = abs(rate)
    changed = values.copy()
    changed[at:] = values[at:] + rate * days
    return Change(changed, at, len(values) - 1, rate)


def disconnected(values: np.ndarray, step: pd.Timedelta, rng: np.random.Generator) -> Change | None:
    length = _run_length("disconnected", step, rng)
    at = _onset(rng, len(values), length)
    if at is None or values[at : at + length].mean() < 3.0:
        return None  # a probe in soil this dry reads about 0 anyway
    level = rng.uniform(0.0, 0.5)
    changed = values.copy()
    changed[at : at + length] = np.clip(level + rng.normal(0.0, 0.03, length), 0.0, 0.5)
    return Change(changed, at, at + length - 1, level)


def saturated_plateau(values: np.ndarray, step: pd.Timedelta, rng: np.random.Generator) -> Change | None:
    length = _run_length("saturated_plateau", step, rng)
    at = _onset(rng, len(values), length)
    level = rng.uniform(45.0, 60.0)
    if at is None or level - values[at - 1 : at + length].max() < 10.0:
        return None  # a soil this wet: a plateau there would be no jump
    changed = values.copy()
    changed[at : at + length] = level + rng.uniform(-0.2, 0.2, length)
    return Change(changed, at, at + length - 1, level)


def loss_of_contact(values: np.ndarray, step: pd.Timedelta, rng: np.random.Generator) -> Change | None:
    at = _onset_to_end(rng, len(values))
    after = values[at:]
    ignored = np.minimum.accumulate(after)  # drying followed, every wetting ignored
    if (after - ignored).max() < 2.0:
        return None  # no wetting after the onset: nothing for the probe to miss
    days = np.arange(len(after)) * (step / DAY)
    tau = rng.uniform(10.0, 40.0)
    changed = values.copy()
    changed[at:] = np.minimum(ignored, values[at] * np.exp(-days / tau))
    return Change(changed, at, len(values) - 1, tau)


def out_of_range(values: np.ndarray, step: pd.Timedelta, rng: np.random.Generator) -> Change | None:
    length = _run_length("out_of_range", step, rng)
    at = _onset(rng, len(values), length)
    if at is None:
        return None
    above = rng.random() < 0.5  # either side of what a volume fraction can be
    read = rng.uniform(100.5, 150.0, length) if above else rng.uniform(-20.0, -0.5, length)
    changed = values.copy()
    changed[at : at + length] = read
    return Change(changed, at, at + length - 1, float(read.mean()))


INJECTORS: dict[str, Injector] = {
    "spike": spike,
    "noise_burst": noise_burst,
    "stuck": stuck,
    "negative_break": negative_break,
    "drift": drift,
    "disconnected": disconnected,
    "saturated_plateau": saturated_plateau,
    "loss_of_contact": loss_of_contact,
    "out_of_range": out_of_range,
}
