"""Rule checks over sensors' readings, in the spirit of SaQC, IOOS QARTOD and the ISMN soil moisture
flags: each rule is a small function with its thresholds as parameters, works on any sampling (15-minute,
hourly or irregular; windows are in time, not in samples), and returns the intervals it flags.

Every anomaly has the same shape: variable, kind, start, end, score (how far past the threshold, ≥ 1)
and a one-line explanation a person can read. `check_sensors` runs the rules a configuration selects
(`detection.checks`: all of them by default) on many sensors at once: each variable's samples of every
sensor lie in flat arrays sorted by sensor and time (`Samples`), and each rule is a few array operations
over all of them, its runs and windows never crossing from one sensor to the next; only the flagged
intervals are looped over, to word them. `check_sensor` and the `check_*` functions are the same rules
on one sensor's readings or series. The functions' default thresholds are those of the registry's
dataclasses.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from functools import cached_property

import numpy as np
import pandas as pd
from pandas.api.indexers import BaseIndexer
from scipy.ndimage import maximum_filter1d

from core.times import duration_ns, epoch_ns
from core.vocabulary import SENSOR_VARIABLES, AnomalyKind, Detector, model_range, source_of
from detection.checks import (
    DEFAULT,
    NOTHING,
    BatteryThresholds,
    BreakThresholds,
    Configuration,
    MovedThresholds,
    ProbeOutOfSoilThresholds,
    SaturationThresholds,
    SnowCoverThresholds,
    SpikeThresholds,
    StuckThresholds,
    register,
)

# Durations the rules use inside (their thresholds are in detection.checks).
HOURS_1 = pd.Timedelta(hours=1)
HOURS_3 = pd.Timedelta(hours=3)
HOURS_6 = pd.Timedelta(hours=6)
HOURS_24 = pd.Timedelta(hours=24)
SECOND = pd.Timedelta(seconds=1)
# Samples further apart than this are not compared as neighbours by the break rule: across a gap (no
# upload, or readings blanked while a condition lasted) a change is no jump.
MAX_NEIGHBOUR_GAP = HOURS_3
SAMPLE_INTERVAL = pd.Timedelta(minutes=15)  # GROW's
LIT_GAP = 0.8  # share of a gap's days with light for a move across it to be judged

# A gap in a sensor's series is more than this many of its own steps (and more than the check's span in
# time): consecutive daily means are neighbours, not a gap.
GAP_STEPS = 1.5
MEDIAN_CELLS = 2**22  # values side by side at most in one pass of `_medians` (32 MB)


@dataclass(frozen=True)
class Flag:
    """One flagged interval of one variable."""

    variable: str
    kind: AnomalyKind
    start: pd.Timestamp
    end: pd.Timestamp
    score: float
    explanation: str


# A rule's answer: (sensor code, flag) pairs, the code indexing `Samples.sensor_ids`.
Found = list[tuple[int, Flag]]


@dataclass(frozen=True)
class Rain:
    """What each sensor's station saw fall, hour by hour (`detection.reference.station_rain`): per
    sensor id, the hours (ns) and two running totals (mm): the water reaching the ground (rain, and snow
    as it melts), which may excuse a rise, and the rain alone that fell where the air was warm enough for
    it to fall as rain, the only witness that a probe should have moved (a snowpack guessed from a station
    miles away is none)."""

    hours: dict[str, np.ndarray]
    total: dict[str, np.ndarray]
    liquid: dict[str, np.ndarray]

    def between(
        self, sensor_ids: np.ndarray, start: np.ndarray, end: np.ndarray, liquid: bool = False
    ) -> np.ndarray:
        """Per (sensor, start, end), the mm that reached its station's ground from start to end (0
        without one); the rain that fell as rain alone if `liquid`."""
        totals = self.liquid if liquid else self.total
        fell = np.zeros(len(sensor_ids))
        # Each sensor's rows found by one grouping of the ids, not by comparing every id with each sensor.
        codes, names = pd.factorize(sensor_ids)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        for code, sensor in enumerate(names):
            if sensor not in self.hours:
                continue
            mine = order[bounds[code] : bounds[code + 1]]
            hours, total = self.hours[sensor], np.concatenate([[0.0], totals[sensor]])
            upto = np.searchsorted(hours, end[mine], side="right")
            since = np.searchsorted(hours, start[mine], side="left")
            fell[mine] = total[upto] - total[since]
        return fell


FLOAT_SLACK = 1e-9  # what floating point adds to a difference of readings in steps


# --- many sensors' samples in flat arrays ---------------------------------------------------------------


@dataclass(frozen=True)
class Samples:
    """One variable's present values of many sensors, sorted by sensor and then time: sample i is
    `values[i]` of sensor `sensor_ids[sensor[i]]` at `ns[i]` (nanoseconds since 1970, UTC)."""

    variable: str
    sensor: np.ndarray  # int64 codes, non-decreasing
    ns: np.ndarray  # int64: plain integers are cheap to sort, search and subset
    values: np.ndarray  # float64, no NaN
    sensor_ids: np.ndarray
    clock: pd.DatetimeIndex  # empty, of the readings' time type: the flags' times come back in it

    @classmethod
    def of_series(cls, series: pd.Series, variable: str) -> Samples:
        """One sensor's series of `variable`, indexed by time."""
        series = series.sort_index()
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        sensor = np.zeros(len(series), dtype=np.int64)
        times = pd.DatetimeIndex(series.index)
        return cls(variable, sensor, epoch_ns(times), values, np.array(["sensor"]), times[:0]).present()

    def where(self, keep: np.ndarray) -> Samples:
        """The samples `keep` marks (these same samples when it marks them all)."""
        if keep.all():
            return self
        return Samples(
            self.variable, self.sensor[keep], self.ns[keep], self.values[keep], self.sensor_ids, self.clock
        )

    def present(self) -> Samples:
        return self.where(~np.isnan(self.values))

    def times(self, positions: np.ndarray) -> pd.DatetimeIndex:
        """The times of some samples, in the readings' own time type (unit and time zone)."""
        utc = pd.DatetimeIndex(self.ns[positions].astype("datetime64[ns]"), tz="UTC")
        return utc.tz_convert(self.clock.tz).as_unit(self.clock.unit)

    @cached_property
    def plausible(self) -> Samples:
        """The values inside the vocabulary's range: those outside are the range rule's business, and a
        value far out would make every neighbour look like a spike or a break."""
        low, high = self.ranges(SENSOR_VARIABLES[self.variable].low, SENSOR_VARIABLES[self.variable].high)
        return self.where((self.values >= low) & (self.values <= high))

    def ranges(self, low: float, high: float) -> tuple[np.ndarray | float, np.ndarray | float]:
        """Each sample's plausible range: [low, high], or its sensor model's where the vocabulary gives
        one for the source the sensor comes from (openSenseMap's light reads higher)."""
        sources = [source_of(str(sensor_id)) for sensor_id in self.sensor_ids]
        if all(source == "grow" for source in sources):
            return low, high
        bounds = np.array([model_range(source, self.variable, low, high) for source in sources])
        return bounds[self.sensor, 0], bounds[self.sensor, 1]

    def of_sensors_with(self, at_least: int) -> Samples:
        """The samples of the sensors that have `at_least` of them (a rule needs a few to judge)."""
        counts = np.bincount(self.sensor, minlength=len(self.sensor_ids))
        if counts[counts > 0].min(initial=at_least) >= at_least:
            return self  # every sensor has them: nothing to drop, and no pass over every sample to say so
        return self.where(counts[self.sensor] >= at_least)

    @cached_property
    def step(self) -> np.ndarray:
        """Per sample, the step its sensor reports in (ns): the median time between its samples. A check
        that needs a few neighbours finds them within a span of time, at least a few such steps wide, so
        it means the same at 3 minutes, 15 minutes, an hour or a day."""
        return self._steps[self.sensor]

    @cached_property
    def _steps(self) -> np.ndarray:
        """`step` per sensor code (0 for a sensor without two samples). The time between samples is taken
        where it is read (`_even_subset`) only: a pass less over every sample."""
        at = _even_subset(self.follows_same_sensor)
        per_sensor = np.zeros(len(self.sensor_ids), dtype=np.int64)
        if len(at):
            medians = _per_sensor(self.ns[at] - self.ns[at - 1], self.sensor[at], "median")
            per_sensor[medians.index.to_numpy()] = medians.to_numpy().astype(np.int64)
        return per_sensor

    @cached_property
    def resolution(self) -> np.ndarray:
        """Per sample, the step in value its sensor reports in: the 1st percentile of its changes from one
        sample to the next that are not nil (0.1 % for a probe reporting in tenths; far less for daily
        means or a noisy analogue reading). 0 where a sensor never changes."""
        return self.sensor_resolution[self.sensor]

    @cached_property
    def sensor_resolution(self) -> np.ndarray:
        """`resolution` per sensor code: a rule that derives a bound from it derives it once a sensor."""
        change = np.abs(np.diff(self.values, prepend=self.values[:1]))
        moved = self.follows_same_sensor & (change > 1e-9)  # not a float's rounding
        per_sensor = np.zeros(len(self.sensor_ids))
        at = _even_subset(moved)
        if len(at):
            low = _per_sensor(change[at], self.sensor[at], "quantile")
            per_sensor[low.index.to_numpy()] = low.to_numpy()
        return per_sensor

    def span(self, duration: pd.Timedelta, steps: float = GAP_STEPS) -> np.ndarray:
        """Per sample, `duration` or `steps` of its sensor's steps, whichever is longer (ns): how far a
        check defined in time reaches on a sensor that reports more sparsely than that."""
        least = duration_ns(duration)
        if steps * self._longest_step <= least:  # no sensor reports that sparsely: the same for all
            return np.broadcast_to(np.int64(least), (len(self.ns),))
        return np.maximum(least, (steps * self.step).astype(np.int64))

    @cached_property
    def _longest_step(self) -> int:
        return int(self._steps.max(initial=0))  # a sensor without samples has step 0, as one sample has

    @cached_property
    def follows_same_sensor(self) -> np.ndarray:
        """Per sample, whether the sample before is of the same sensor."""
        same = np.zeros(len(self.sensor), dtype=bool)
        same[1:] = self.sensor[1:] == self.sensor[:-1]
        return same

    @cached_property
    def _sensor_bounds(self) -> tuple[np.ndarray, np.ndarray]:
        """Each sensor's run of samples, in order: the position of its first and the position past its
        last."""
        begins = np.flatnonzero(~self.follows_same_sensor)
        return begins, np.append(begins[1:], len(self.sensor))

    def segments(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per sample of `rows`, the position of its sensor's first sample and the position past its last
        (found among the sensors' runs: rules ask for a few samples, not all)."""
        begins, ends = self._sensor_bounds
        run = np.searchsorted(begins, rows, side="right") - 1
        return begins[run], ends[run]

    def search(self, rows: np.ndarray, targets: np.ndarray, side: str) -> np.ndarray:
        """For each of `rows`, where `targets` (ns) would go among its own sensor's times, as
        np.searchsorted with `side` on that sensor's samples alone, but as a position among all: a
        binary search run on every row at once, each within its sensor."""
        low, high = self.segments(rows)
        last = max(len(self.ns) - 1, 0)
        for _ in range(int((high - low).max(initial=0)).bit_length()):  # each round halves every span
            middle = (low + high) // 2
            searching = low < high
            at = self.ns[np.minimum(middle, last)]
            beyond = searching & ((at <= targets) if side == "right" else (at < targets))
            low = np.where(beyond, middle + 1, low)
            high = np.where(searching & ~beyond, middle, high)
        return low

    def neighbours(self, span: pd.Timedelta | np.ndarray, after: bool, most: int = 16) -> np.ndarray:
        """Per sample, how many of its sensor's samples next to it lie within `span` of it (a duration,
        or one per sample in ns), before or `after` it, ends included (`around`)."""
        return self.around(span, most)[1 if after else 0]

    def around(self, span: pd.Timedelta | np.ndarray, most: int = 16) -> tuple[np.ndarray, np.ndarray]:
        """Per sample, how many of its sensor's samples next to it lie within `span` of it (a duration,
        or one per sample in ns), before it and after it, ends included. Counted by comparing each
        sample i with sample i + k, k = 1, 2, ... while any is within: as many steps as a window holds
        samples, each over all samples at once, and each pair's distance in time serving both counts
        (i's after, i + k's before, each by its own limit); past `most` steps, by binary search."""
        n = len(self.ns)
        limit = np.broadcast_to(
            np.asarray(duration_ns(span) if isinstance(span, pd.Timedelta) else span), (n,)
        )
        before, after = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64)
        after_near = before_near = np.zeros(0, dtype=bool)
        k = 0
        for k in range(1, min(most, n - 1) + 1):
            same = self.sensor[k:] == self.sensor[:-k]
            apart = self.ns[k:] - self.ns[:-k]
            after_near = same & (apart <= limit[:-k])  # sample i has sample i + k within its span
            before_near = same & (apart <= limit[k:])  # sample i + k has sample i within its span
            # Samples are in time order: the k-th is within only if the nearer ones are, so none stops it.
            if not (after_near.any() or before_near.any()):
                return before, after
            after[:-k] += after_near
            before[k:] += before_near
        dense = np.flatnonzero(after_near)  # denser than `most` samples a window: search instead
        after[dense] = self.search(dense, self.ns[dense] + limit[dense], "right") - dense - 1
        dense = np.flatnonzero(before_near) + k
        before[dense] = dense - self.search(dense, self.ns[dense] - limit[dense], "left")
        return before, after


PER_SENSOR_SAMPLES = 200_000  # a sensor's typical step or change is read from this many samples at most


def _even_subset(keep: np.ndarray) -> np.ndarray:
    """The positions where `keep`, an even subset of them when there are many: a sensor's typical step or
    change is as plain in every tenth sample."""
    at = np.flatnonzero(keep)
    return at[:: max(1, len(at) // PER_SENSOR_SAMPLES)]


def _per_sensor(values: np.ndarray, sensor: np.ndarray, how: str) -> pd.Series:
    """The median (or 1st percentile) of each sensor's `values`, by sensor code."""
    grouped = pd.Series(values).groupby(sensor)
    return grouped.median() if how == "median" else grouped.quantile(0.01)


def _runs(sensor: np.ndarray, ns: np.ndarray, flagged: np.ndarray, max_gap: pd.Timedelta | np.ndarray):
    """Flagged samples of one sensor no further than `max_gap` (a duration, or one per sample in ns)
    from the flagged one before make one run: the positions of each run's first and last sample."""
    at = np.flatnonzero(flagged)
    if len(at) == 0:
        return at, at
    gap = duration_ns(max_gap) if isinstance(max_gap, pd.Timedelta) else np.asarray(max_gap)[at[1:]]
    new = np.ones(len(at), dtype=bool)
    new[1:] = (sensor[at[1:]] != sensor[at[:-1]]) | (np.diff(ns[at]) > gap)
    return at[new], at[np.append(new[1:], True)]


def _over_runs(reduce: np.ufunc, values: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """`reduce` over values[first:last + 1] of each run (runs in order, not overlapping), samples
    between a run's flagged ones included."""
    if len(first) == 0:
        return values[:0]
    bounds = np.column_stack([first, last + 1]).ravel()
    return reduce.reduceat(np.append(values, values[-1:]), bounds)[::2]


def _medians(values: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """np.median of values[low:high] (none empty) for each pair of bounds, all at once: the slices side
    by side, padded with NaN (sorted last), and the middle of each taken by its length (the mean of the
    two middle values, as np.median, for an even length)."""
    lengths = high - low
    out = np.empty(len(lengths))
    width = int(lengths.max(initial=1))
    step = max(1, MEDIAN_CELLS // width)
    for begin in range(0, len(lengths), step):  # a few passes at most, to bound the memory
        part = slice(begin, begin + step)
        count = lengths[part]
        columns = np.arange(width)
        inside = columns < count[:, None]
        taken = np.where(inside, low[part, None] + columns, 0)
        grid = np.where(inside, values[taken], np.nan)
        grid.sort(axis=1)
        rows = np.arange(len(count))
        out[part] = (grid[rows, (count - 1) // 2] + grid[rows, count // 2]) / 2
    return out


class _Windows(BaseIndexer):
    """Window bounds computed beforehand, for pandas' rolling aggregations."""

    def get_window_bounds(self, num_values=0, min_periods=None, center=None, closed=None, step=None):
        return self.start, self.end


def _centred_windows(samples: Samples, window: pd.Timedelta) -> tuple[np.ndarray, np.ndarray]:
    """Per sample, the bounds (start included, end not) of its sensor's samples within `window`
    centred on it, both ends included: from t − window/2 to t + window/2, and at least its sensor's
    step either side, so that a sample always has its neighbours to be judged by (an hourly sensor
    has none within a 2-hour window that leaves one end out)."""
    rows = np.arange(len(samples.ns))
    half = samples.span(pd.Timedelta(duration_ns(window) // 2, unit="ns"), steps=1.0)
    before, after = samples.around(half)
    return rows - before, rows + 1 + after


def _leaps(
    values: np.ndarray, start: np.ndarray, end: np.ndarray, threshold: float, min_periods: int
) -> np.ndarray:
    """Per sample, how far it lies from the median of values[start:end] (NaN with fewer than
    `min_periods` values there), worked out only where that can exceed `threshold`; elsewhere 0. The
    median lies between the window's lowest and highest value, so only a sample farther than
    `threshold` from one of those can leap that far: their medians are few, the rolling extremes cheap."""
    rolling = pd.Series(values).rolling(_Windows(start=start, end=end), min_periods=min_periods)
    with np.errstate(invalid="ignore"):
        far = (rolling.max().to_numpy() - values > threshold) | (
            values - rolling.min().to_numpy() > threshold
        )
    leaps = np.where(end - start >= min_periods, 0.0, np.nan)
    leaps[far] = np.abs(values[far] - _medians(values, start[far], end[far]))
    return leaps


def intervals(mask: pd.Series, max_gap: pd.Timedelta = HOURS_1) -> list[tuple[pd.Timestamp, pd.Timestamp]]:
    """Flagged samples (a boolean series indexed by time) → [start, end] intervals; flagged samples
    closer than `max_gap` belong to one interval."""
    times = mask.index
    one = np.zeros(len(mask), dtype=np.int64)
    first, last = _runs(one, epoch_ns(times), mask.to_numpy(dtype=bool), max_gap)
    return [(times[a], times[b]) for a, b in zip(first, last)]


def day_runs(flagged: pd.DataFrame) -> list[pd.DataFrame]:
    """Flagged (sensor_id, day) rows split into runs of consecutive days of one sensor."""
    if flagged.empty:
        return []
    flagged = flagged.sort_values(["sensor_id", "day"])
    new_run = (flagged["sensor_id"] != flagged["sensor_id"].shift()) | (flagged["day"].diff() != HOURS_24)
    return [run for _, run in flagged.groupby(np.cumsum(new_run.to_numpy()))]


def _fmt(variable: str, value: float) -> str:
    return SENSOR_VARIABLES[variable].format(value)


def _label(variable: str) -> str:
    return SENSOR_VARIABLES[variable].label


# --- the rules, over many sensors at once ---------------------------------------------------------------


def _spans(samples: Samples, first: np.ndarray, last: np.ndarray):
    """Each run's sensor code, start and end time (timestamps taken all at once: one by one is slow)."""
    return zip(samples.sensor[first], samples.times(first), samples.times(last))


def range_flags(samples: Samples, low: float, high: float) -> Found:
    """Values outside what the sensor can plausibly read: [low, high], or its model's range."""
    variable, values = samples.variable, samples.values
    lows, highs = (np.broadcast_to(bound, values.shape) for bound in samples.ranges(low, high))
    first, last = _runs(samples.sensor, samples.ns, (values < lows) | (values > highs), samples.span(HOURS_1))
    highest = _over_runs(np.maximum, values, first, last)
    worst = np.where(highest > highs[first], highest, _over_runs(np.minimum, values, first, last))
    unit = SENSOR_VARIABLES[variable].unit
    return [
        (
            sensor,
            Flag(
                variable,
                AnomalyKind.OUT_OF_RANGE,
                start,
                end,
                1 + max(w - hi, lo - w) / (hi - lo),
                f"{_label(variable)} read {_fmt(variable, w)}, outside {lo:g} to {hi:g} {unit}",
            ),
        )
        for (sensor, start, end), w, lo, hi in zip(
            _spans(samples, first, last), worst, lows[first], highs[first]
        )
    ]


def stuck_flags(
    samples: Samples,
    min_duration: pd.Timedelta = StuckThresholds.min_duration,
    tolerance: float = StuckThresholds.tolerance,
    ignore_below: float | None = StuckThresholds.ignore_below,
    longest_night: pd.Timedelta = StuckThresholds.longest_night,
    usual_factor: float = StuckThresholds.usual_factor,
    usual_cap: pd.Timedelta = StuckThresholds.usual_cap,
    context_days: int = StuckThresholds.context_days,
    usual_days: int = StuckThresholds.usual_days,
    impossible: float | None = StuckThresholds.impossible,
    wet_mm: float = StuckThresholds.wet_mm,
    after_rain: pd.Timedelta = StuckThresholds.after_rain,
    hidden_steps: float = StuckThresholds.hidden_steps,
    hidden_change: float = StuckThresholds.hidden_change,
    hidden_fall: float | None = StuckThresholds.hidden_fall,
    rest_factor: float = StuckThresholds.rest_factor,
    leap_ratio: float | None = StuckThresholds.leap_ratio,
    answered_mm: float = StuckThresholds.answered_mm,
    answer_within: pd.Timedelta = StuckThresholds.answer_within,
    air_dry: float | None = StuckThresholds.air_dry,
    rain: Rain | None = None,
) -> Found:
    """A value that holds while it should have moved. Real probes report in steps and hold still when
    nothing changes (a dry night, a dry season moving one step a day), so a hold is judged against the
    sensor itself: it is stuck when it lasts `min_duration` and, if it hid a change (it ends in a leap
    to where the soil got), `usual_factor` times the holds the sensor shows on the days around it (each
    day's longest hold within `context_days`, each counted up to `usual_cap`, so that a probe stuck for
    weeks does not excuse itself; and a night and a day, twice, where fewer than `usual_days` of them
    were read), or else `rest_factor` times the longest the sensor rested within one of its steps on
    those days (a calm soil on a step's edge flicks across it: `_rests`). It is stuck whatever the
    days around show when it holds at an `impossible` level (a soil probe reading exactly 0 % is
    disconnected, not dry), or when its station recorded `wet_mm` of rain (falling as rain, not a
    snowpack's guessed melt) and it still held `after_rain` later (`rain`, where the sensor has a
    station). A hold that ends in a rise as `answered_mm` of water reaches the station was at
    rest, the probe answering the rain, unless it outlasted what the sensor rests (at its floor aside);
    so was one at the sensor's lowest level, `air_dry` or below, while its station saw less than
    `wet_mm` fall. Holds under `ignore_below` are left alone up to `longest_night`: light is 0 all
    night, not for a day and a night (a winter night in the far north of Europe lasts under 20
    hours)."""
    samples = samples.of_sensors_with(3)
    variable, values, ns = samples.variable, samples.values, samples.ns
    if len(values) == 0:
        return []
    starts, ends = _holds(samples, tolerance, min_duration)
    durations = ns[ends] - ns[starts]
    # Most holds are a sample or two. Only those of three samples or more that last (long enough to be
    # stuck, or to have held through rain) are judged, and the arrays below are theirs alone.
    lasts = durations >= duration_ns(min_duration)
    if rain is not None:
        lasts |= durations > duration_ns(after_rain)
    judging = np.flatnonzero((ends - starts >= 2) & lasts)
    first, last, lasting = starts[judging], ends[judging], durations[judging]
    enough = (last - first >= 2) & (lasting >= duration_ns(min_duration))
    judged = np.flatnonzero(enough)  # only holds long enough to be stuck
    # What is usual, twice: the longest the sensor held exactly on the days around (against which a hold
    # that hid a change is judged), and the longest it rested within one of its steps, flicking across
    # a step's edge as a calm soil sitting on it does (against which a hold that hid nothing is).
    usual, usual_rest = np.full(len(first), np.nan), np.full(len(first), np.nan)
    read = np.full(len(first), np.nan)  # how many of the days around were read
    for into, lasted in ((usual, durations), (usual_rest, _rests(samples, starts, ends, min_duration))):
        into[judged], read[judged] = _usual_holds(
            samples.sensor[starts],
            ns[starts],
            lasted,
            usual_cap,
            context_days,
            len(samples.sensor_ids),
            judging[judged],
        )
    # A day or two read around (the rest under frost or snow, or not yet recorded) can show that the
    # sensor rests long, in a calm spell, but not that it rests briefly: their weather may have moved
    # it. Judged by so few, a hold must outlast a night and a day, twice over, too.
    with np.errstate(invalid="ignore"):
        floor = np.where(read < usual_days, usual_factor * duration_ns(HOURS_24), 0.0)
    # How the hold ended: where the sensor went on from (NaN while it still holds, or after a gap). A
    # probe at rest goes on a step or two from where it held; one that was stuck goes on from where the
    # soil got to meanwhile. Soil dries slowly: a fall hidden by a hold is a stuck probe, a rise may be
    # the rain that ended a dry spell, so a hold that ends in a rise must also be long for the sensor.
    # And a stuck probe leaps back to where the soil got; one at rest moves off a step at a time as the
    # soil starts to freeze, or a shower soaks in.
    went_on, leapt = np.full(len(first), np.nan), np.zeros(len(first), dtype=bool)
    level, leapt[judged] = _went_on(samples, first[judged], last[judged], min_duration, leap_ratio)
    went_on[judged] = level - values[first[judged]]
    with np.errstate(invalid="ignore"):
        resolution = samples.sensor_resolution[samples.sensor[first]]
        moved = np.abs(went_on) >= np.maximum(hidden_steps * resolution, hidden_change)
    # A hold that ends in a rise as the rain comes was a probe at rest, and a working one: it answered.
    answered = np.zeros(len(first), dtype=bool)
    if rain is not None:
        rose = np.flatnonzero(moved & (went_on > 0))
        water = rain.between(
            samples.sensor_ids[samples.sensor[last[rose]]],
            ns[last[rose]] - duration_ns(answer_within),
            ns[last[rose]] + duration_ns(answer_within),
        )
        answered[rose[water >= answered_mm]] = True
        # ... a probe at rest: one that held far longer than the sensor ever rests was stuck, and the
        # rain that came as it ended, chance; unless it rested at its floor, where soil waits for rain
        outlasted = answered & (lasting >= np.maximum(rest_factor * usual_rest, floor))
        if air_dry is not None:
            outlasted &= ~((values[first] <= air_dry) & _at_its_floor(samples, first))
        answered &= ~outlasted
    hidden = moved & leapt & ~answered
    # A hold not yet over (at the end of what is read) is judged as one at rest: only its end can show
    # what it hid, and a look that ends inside it must not say more than one that sees it end.
    # No other day to tell what is usual (the first night of a history, or all of it one hold): a night
    # and a day, twice over.
    unknown = np.isnan(usual)
    usual = np.where(unknown, duration_ns(HOURS_24), usual)
    usual = np.where(hidden | unknown, usual, usual_rest)
    factor = np.where(hidden | unknown, usual_factor, rest_factor)
    longer = enough & (lasting >= np.maximum(factor * usual, floor)) & ~answered
    if rain is not None and air_dry is not None:  # dry soil at its floor rests until rain (or it leaps)
        dry = np.flatnonzero(longer & ~hidden & (values[first] <= air_dry))
        longer[dry[_at_rest_on_the_floor(samples, first[dry], last[dry], rain, wet_mm)]] = False
    if hidden_fall is not None:
        longer |= enough & hidden & (went_on <= -hidden_fall)
    at_impossible = np.zeros_like(enough)
    if impossible is not None:
        at_impossible = enough & (np.abs(values[first] - impossible) <= tolerance)
    wet = np.zeros(len(first), dtype=bool)
    fell = np.zeros(len(first))
    if rain is not None:
        held = (last - first >= 2) & (lasting > duration_ns(after_rain))
        candidates = np.flatnonzero(held & ~longer & ~at_impossible)
        fell[candidates] = rain.between(
            samples.sensor_ids[samples.sensor[first[candidates]]],
            ns[first[candidates]],
            ns[last[candidates]] - duration_ns(after_rain),
            liquid=True,
        )
        wet = fell >= wet_mm
    long = longer | at_impossible | wet
    if ignore_below is not None:  # nights (dark or cold) are let be
        long &= ~((values[first] < ignore_below) & (lasting < duration_ns(longest_night)))
    keep = np.flatnonzero(long)
    found = []
    spans = _spans(samples, first[keep], last[keep])
    for (sensor, start, end), level, i in zip(spans, values[first[keep]], keep):
        hours = (end - start) / HOURS_1
        text = f"{_label(variable)} stuck at {_fmt(variable, float(level))} for {_duration(hours)}"
        if at_impossible[i]:
            text += ": no probe in soil reads that"
        elif wet[i]:
            text += f", while its WOW station recorded {fell[i]:.0f} mm of rain"
        elif usual[i] > 0 and not unknown[i]:
            usually = _duration(usual[i] / duration_ns(HOURS_1))
            text += f", when it holds still for {usually} at most on the days around"
        score = max(hours / (min_duration / HOURS_1), 1.0)
        found.append((sensor, Flag(variable, AnomalyKind.STUCK, start, end, score, text)))
    return found


def _at_rest_on_the_floor(
    samples: Samples, first: np.ndarray, last: np.ndarray, rain: Rain, wet_mm: float
) -> np.ndarray:
    """Per hold, whether it held at its sensor's lowest level (within two of its steps) while its
    station saw less than `wet_mm` fall (what would have moved it, were it stuck): soil dried to air-dry
    has no reason to move until rain comes, and a probe stuck there would read the same. A probe stuck
    higher hides the soil drying below it."""
    if len(first) == 0:
        return np.zeros(0, dtype=bool)
    ids = samples.sensor_ids[samples.sensor[first]]
    witnessed = np.isin(ids, list(rain.hours))
    dry = rain.between(ids, samples.ns[first], samples.ns[last]) < wet_mm
    return _at_its_floor(samples, first) & witnessed & dry


def _at_its_floor(samples: Samples, first: np.ndarray) -> np.ndarray:
    """Per sample of `first`, whether it lies within two of its sensor's steps of the sensor's lowest."""
    begins = np.flatnonzero(~samples.follows_same_sensor)  # samples run sensor by sensor
    floor = np.full(len(samples.sensor_ids), np.inf)
    floor[samples.sensor[begins]] = np.minimum.reduceat(samples.values, begins)
    sensor = samples.sensor[first]
    return samples.values[first] <= floor[sensor] + 2 * samples.sensor_resolution[sensor] + FLOAT_SLACK


def _went_on(
    samples: Samples, first: np.ndarray, last: np.ndarray, gap: pd.Timedelta, leap_ratio: float | None
) -> tuple[np.ndarray, np.ndarray]:
    """Per hold, the median of its sensor's samples in the few hours (or steps) after it, NaN where it
    holds to its sensor's last sample or a gap follows it; and whether it ended in a leap: its first step
    more than `leap_ratio` times the median step of those samples (any end, without a ratio)."""
    values = samples.values
    after = np.minimum(last + 1, len(samples.ns) - 1)
    follows = (last + 1 < len(samples.ns)) & samples.follows_same_sensor[after]
    follows &= samples.ns[after] - samples.ns[last] <= samples.span(gap)[last]
    within = samples.search(after, samples.ns[after] + samples.span(HOURS_3, steps=2.0)[after], "right")
    level, leapt = np.full(len(first), np.nan), np.zeros(len(first), dtype=bool)
    start, end = after[follows], np.maximum(within[follows], after[follows] + 1)
    level[follows] = _medians(values, start, end)
    if leap_ratio is None:
        return level, np.ones(len(first), dtype=bool)
    steps = np.abs(np.diff(values, append=values[-1:]))  # steps[i]: from sample i to the next
    pace = np.zeros(len(start))
    more = end - 1 > start  # the steps between the samples after the hold
    pace[more] = _medians(steps, start[more], end[more] - 1)
    leapt[follows] = steps[last[follows]] > leap_ratio * pace
    return level, leapt


def _duration(hours: float) -> str:
    return f"{hours:.0f} h" if hours < 48 else f"{hours / 24:.1f} days"


def _holds(samples: Samples, tolerance: float, min_duration: pd.Timedelta) -> tuple[np.ndarray, np.ndarray]:
    """Runs of unchanged samples: first and last position of each. A run starts wherever the value moved
    (by more than `tolerance`, or than half the sensor's resolution where that is finer: daily means
    move by less than a probe's step), a sensor begins, or a gap opens longer than the run must last
    and than a few of the sensor's steps (readings blanked while a condition lasted, say)."""
    values, ns = samples.values, samples.ns
    change = np.abs(np.diff(values))
    still = np.minimum(tolerance, samples.sensor_resolution / 2)[samples.sensor[1:]]
    moved = ~samples.follows_same_sensor
    moved[1:] |= (change > still) | (np.diff(ns) > samples.span(min_duration)[1:])
    starts = np.flatnonzero(moved)
    return starts, np.append(starts[1:] - 1, len(values) - 1)


def _rests(samples: Samples, starts: np.ndarray, ends: np.ndarray, min_duration: pd.Timedelta) -> np.ndarray:
    """Per hold (`_holds`' runs), how long it lasted, or, for the first hold of a rest, how long the rest
    lasted: a run of short holds (under `min_duration`) of one sensor, without a gap, whose levels stay
    within one of its steps. A calm soil sitting on the edge between two steps flicks across it hour
    by hour; each hold is short, but the soil never moved. Two grids of cells two steps wide, the second
    shifted by a step, put any two neighbouring steps in one cell: the longer run of either counts."""
    ns, sensor = samples.ns, samples.sensor[starts]
    lasted = (ns[ends] - ns[starts]).astype(float)
    resolution = samples.sensor_resolution[sensor]
    short = lasted < duration_ns(min_duration)
    follows = np.zeros(len(starts), dtype=bool)
    follows[1:] = (sensor[1:] == sensor[:-1]) & short[1:] & short[:-1]
    follows[1:] &= ns[starts[1:]] - ns[ends[:-1]] <= samples.span(min_duration)[starts[1:]]
    with np.errstate(divide="ignore", invalid="ignore"):
        steps = samples.values[starts] / (2 * resolution)  # levels in steps are halves: a cell's 0.25 margin
    follows &= np.isfinite(steps)  # a sensor that never moved has no step
    rests = lasted.copy()
    for shift in (0.25, 0.75):
        cell = np.floor(steps + shift)
        same = follows.copy()
        same[1:] &= cell[1:] == cell[:-1]
        first = np.flatnonzero(~same)
        last = np.append(first[1:] - 1, len(starts) - 1)
        rests[first] = np.maximum(rests[first], ns[ends[last]] - ns[starts[first]])
    return rests


def _usual_holds(
    sensor: np.ndarray,
    start: np.ndarray,
    lasting: np.ndarray,
    cap: pd.Timedelta,
    days: int,
    sensors: int,
    asked: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Per hold of `asked` (positions among the holds, which come in sensor and time order, as `_holds`
    gives them), how long its sensor holds still on the other days around it: the longest hold starting
    on any of the `days` days before or after the one it starts on, each counted up to `cap` (a probe
    stuck for weeks must not excuse itself; its own day is left out, so one hold never does), NaN for
    none; and on how many of those days it was read (a hold starts on each)."""
    # Days counted from each sensor's own first: sensors of one chunk may be read at different times,
    # and a calendar over all of them would grow with their history.
    day = start // duration_ns(HOURS_24)
    begins = np.flatnonzero(np.diff(sensor, prepend=-1))
    day -= np.repeat(day[begins], np.diff(begins, append=len(day)))
    width = int(day.max()) + 1 + days  # and `days` empty days after the last: the days after any day
    # Each sensor's longest hold of each day, -inf for none (no maximum). The holds of one sensor and
    # day lie side by side, so one reduceat takes every day's longest (ufunc.at is slow, pandas slower).
    cell = sensor * width + day
    runs = np.flatnonzero(np.diff(cell, prepend=-1))
    longest = np.full(sensors * width, -np.inf)
    longest[cell[runs]] = np.maximum.reduceat(np.minimum(lasting, duration_ns(cap)).astype(float), runs)
    # Day d: the longest of days d - days + 1 to d (origin puts the window's end on d, not its middle).
    trailing = maximum_filter1d(
        longest.reshape(sensors, width), days, axis=1, mode="constant", cval=-np.inf, origin=(days - 1) // 2
    )
    # How many days of the same windows were read: by running sums.
    read = np.zeros((sensors, width + 1))
    read[:, 1:] = np.cumsum(np.isfinite(longest).reshape(sensors, width), axis=1)
    sensor, day = sensor[asked], day[asked]
    before = np.where(day > 0, trailing[sensor, day - 1], -np.inf)
    usual = np.maximum(before, trailing[sensor, day + days])
    count = read[sensor, day] - read[sensor, np.maximum(day - days, 0)]  # days d - days to d - 1
    count += read[sensor, day + days + 1] - read[sensor, day + 1]  # days d + 1 to d + days
    return np.where(usual == -np.inf, np.nan, usual), count  # NaN: no other day


def spike_flags(
    samples: Samples,
    threshold: float,
    window: pd.Timedelta = SpikeThresholds.window,
    burst_threshold: float | None = SpikeThresholds.burst_threshold,
    burst_window: pd.Timedelta = SpikeThresholds.burst_window,
    burst_share: float = SpikeThresholds.burst_share,
    burst_over_usual: float = SpikeThresholds.burst_over_usual,
    wetting: float | None = SpikeThresholds.wetting,
    rain_mm: float | None = SpikeThresholds.rain_mm,
    rain_within: pd.Timedelta = SpikeThresholds.rain_within,
    wet_rise: float | None = SpikeThresholds.wet_rise,
    rain: Rain | None = None,
) -> Found:
    """Samples that leap away from the median of the samples around them by more than `threshold`
    (units of the variable) and come back; and bursts of noise: within `burst_window`, at least three
    samples and `burst_share` of them leaping more than `burst_threshold`, and `burst_over_usual` times
    the sensor's usual change from one sample to the next (a loose wire or a failing probe scatters its
    readings; soil itself never does, and a probe that always scatters so is judged by its own).
    Given `wetting`, a leap up after which the reading stays that share of the leap above where it was
    is a downpour soaking in, not a spike: volcanic and cracked soils shoot up and drain within hours;
    so is any leap within `rain_within` after the sensor's station recorded `rain_mm` (`rain`, where it
    has one), or within it after the reading itself rose by `wet_rise` (where no station says): a
    storm's bursts wet and drain such soils hour by hour."""
    samples = samples.of_sensors_with(5)
    variable = samples.variable
    start, end = _centred_windows(samples, window)
    least = threshold if burst_threshold is None else min(threshold, burst_threshold)
    jump = _on_both_sides(_leaps(samples.values, start, end, least, min_periods=3), start, end)
    with np.errstate(invalid="ignore"):
        above = jump > threshold
    above[_steps_not_spikes(samples.values, start, end, np.flatnonzero(above), threshold)] = False
    if wetting is not None:
        above[_soaking_in(samples, np.flatnonzero(above), wetting)] = False
    if burst_threshold is not None:
        # Leaps from a wider median: among scattered readings, the middle of five is nearer the soil's.
        scatter = _scatter(samples, 2 * window, burst_threshold)
        rough = np.maximum(burst_threshold, burst_over_usual * _usual_change(samples))
        above |= _bursts(samples, scatter, rough, burst_window, burst_share)
    if rain is not None and rain_mm is not None and above.any():
        at = np.flatnonzero(above)
        fell = rain.between(
            samples.sensor_ids[samples.sensor[at]], samples.ns[at] - duration_ns(rain_within), samples.ns[at]
        )
        above[at[fell >= rain_mm]] = False
    if wet_rise is not None and above.any():
        at = np.flatnonzero(above)
        above[at[_wetted(samples, at, rain_within, wet_rise)]] = False
    first, last = _runs(samples.sensor, samples.ns, above, samples.span(HOURS_6))
    counts = _over_runs(np.add, above.astype(np.int64), first, last)
    peaks = _over_runs(np.fmax, jump, first, last)  # fmax: a sample without a median is left out
    return [
        (
            sensor,
            Flag(
                variable,
                AnomalyKind.SPIKE,
                start,
                end,
                float(peak / threshold),
                f"{count} {_label(variable)} spike{'s' if count > 1 else ''} of up to {_fmt(variable, peak)}",
            ),
        )
        for (sensor, start, end), count, peak in zip(_spans(samples, first, last), counts, peaks)
    ]


def _on_both_sides(leaps: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
    """The leaps of the samples with neighbours on both sides in their window, NaN for the others: a
    sample at the edge of what is read (a window's, a gap's) has only one side to leap from, and a
    trend on that side would pass for a leap."""
    rows = np.arange(len(leaps))
    return np.where((start < rows) & (end > rows + 1), leaps, np.nan)


def _wetted(samples: Samples, at: np.ndarray, within: pd.Timedelta, rise: float) -> np.ndarray:
    """Per sample of `at`, whether its sensor's level rose by `rise` within `within` before it: the
    median of the few hours (or steps) around it above the median of the hours before `within`. Rain
    soaking in lifts the level for hours; noise and a failing probe scatter about it."""
    ns = samples.ns[at]
    near = samples.span(HOURS_3, steps=2.0)[at]
    back = samples.span(within, steps=2.0)[at]
    now_low = samples.search(at, ns - near, "right")
    now_high = samples.search(at, ns + near, "right")
    was_low = samples.search(at, ns - back - near, "left")
    was_high = samples.search(at, ns - back, "right")
    seen = was_high > was_low
    wet = np.zeros(len(at), dtype=bool)
    now = _medians(samples.values, now_low[seen], now_high[seen])
    was = _medians(samples.values, was_low[seen], was_high[seen])
    wet[seen] = now - was >= rise
    return wet


def _usual_change(samples: Samples) -> np.ndarray:
    """Per sample, the median change of its sensor's readings from one sample to the next."""
    at = _even_subset(samples.follows_same_sensor)
    usual = np.zeros(len(samples.sensor_ids))
    if len(at):
        change = np.abs(samples.values[at] - samples.values[at - 1])
        medians = _per_sensor(change, samples.sensor[at], "median")
        usual[medians.index.to_numpy()] = medians.to_numpy()
    return usual[samples.sensor]


def _soaking_in(samples: Samples, candidates: np.ndarray, wetting: float) -> np.ndarray:
    """The candidates that leap up and after which the next sample stays `wetting` of the leap above
    the one before: water soaking in and draining, not a reading that leaps and comes back."""
    values, n = samples.values, len(samples.values)
    inside = (candidates > 0) & (candidates < n - 1)
    at = candidates[inside]
    at = at[samples.follows_same_sensor[at] & samples.follows_same_sensor[at + 1]]
    before, after = values[at - 1], values[at + 1]
    up = values[at] - before
    return at[(up > 0) & (after - before >= wetting * up)]


def _centred_at(samples: Samples, rows: np.ndarray, window: pd.Timedelta) -> tuple[np.ndarray, np.ndarray]:
    """`_centred_windows` for some samples only (found by search, not by counting every sample's)."""
    half = samples.span(pd.Timedelta(duration_ns(window) // 2, unit="ns"), steps=1.0)[rows]
    low = samples.search(rows, samples.ns[rows] - half, "left")
    return low, samples.search(rows, samples.ns[rows] + half, "right")


def _scatter(samples: Samples, window: pd.Timedelta, threshold: float) -> np.ndarray:
    """Per sample, how far it lies from the median of the samples within `window` centred on it (five
    at least, some on either side), worked out where a neighbour lies more than `threshold` from it (a
    sample level with both of its neighbours scatters from none); elsewhere 0."""
    values, same = samples.values, samples.follows_same_sensor
    step = np.abs(np.diff(values, prepend=values[:1]))
    # Whether the step from the sample before is over the threshold (a step of 0 from another sensor's),
    # or the step to the next: compared as they come, with no arrays of steps made on the way.
    nothing = threshold < 0.0
    jumped = np.where(same, step > threshold, nothing)
    rows = np.flatnonzero(jumped | np.append(jumped[1:], nothing))
    out = np.zeros(len(values))
    low, high = _centred_at(samples, rows, window)
    ok = (high - low >= 5) & (low < rows) & (high > rows + 1)
    out[rows[ok]] = np.abs(values[rows[ok]] - _medians(values, low[ok], high[ok]))
    return out


def _bursts(
    samples: Samples, jump: np.ndarray, threshold: float | np.ndarray, window: pd.Timedelta, share: float
) -> np.ndarray:
    """The samples leaping more than `threshold` where, within `window` centred on them, at least three
    samples and `share` of all do: a burst of noise, at any sampling step."""
    with np.errstate(invalid="ignore"):
        rough = jump > threshold
    rows = np.flatnonzero(rough)
    if len(rows) == 0:
        return rough
    low, high = _centred_at(samples, rows, window)
    counted = np.concatenate([[0], np.cumsum(rough)])
    many = counted[high] - counted[low]
    # Five samples in the window at least: three rough daily means are weather, not a burst.
    keep = (many >= 3) & (many >= share * (high - low)) & (high - low >= 5)
    burst = np.zeros(len(rough), dtype=bool)
    burst[rows[keep]] = True
    return burst


def _steps_not_spikes(
    values: np.ndarray, start: np.ndarray, end: np.ndarray, candidates: np.ndarray, threshold: float
) -> np.ndarray:
    """The candidates that sit level with the samples on one side of them: the edge of a step (a watering
    can, say, with a sample missing beside it to tip the window's median), not a leap that comes back.
    A side needs two samples to say so."""
    level = np.zeros(len(candidates), dtype=bool)
    for low, high in ((start[candidates], candidates), (candidates + 1, end[candidates])):
        enough = high - low >= 2
        middle = np.full(len(candidates), np.nan)
        middle[enough] = _medians(values, low[enough], high[enough])
        with np.errstate(invalid="ignore"):
            level |= np.abs(values[candidates] - middle) <= threshold
    return candidates[level]


def probe_out_of_soil_flags(
    samples: Samples,
    dry: float = ProbeOutOfSoilThresholds.dry,
    wet_before: float = ProbeOutOfSoilThresholds.wet_before,
    fall_ratio: float = ProbeOutOfSoilThresholds.fall_ratio,
    min_duration: pd.Timedelta = ProbeOutOfSoilThresholds.min_duration,
) -> Found:
    """Soil moisture that falls from a moist level to near zero and stays there: the probe is out of
    the soil (soil itself does not dry to ~0 % in a garden). The level it falls from is the day
    before's, at least `wet_before` and `fall_ratio` times the level it stays at: dry Mediterranean soil
    at 7 % falls as far in the hour a probe is pulled as it dries in a summer."""
    values, ns = samples.values, samples.ns
    first, last = _runs(samples.sensor, ns, values < dry, samples.span(HOURS_3))
    long = ns[last] - ns[first] >= duration_ns(min_duration)
    first, last = first[long], last[long]
    # The day before (at least a few of the sensor's steps), leaving out the fall itself; after a gap
    # (readings blanked while the soil was frozen, say), the day's worth of samples before the gap.
    before_span = samples.span(HOURS_24, steps=2.5)[first]
    low = samples.search(first, ns[first] - before_span, "left")
    high = samples.search(first, ns[first] - duration_ns(HOURS_3), "right")
    gap = high <= low
    start_of_sensor = samples.segments(first)[0]
    anchor = ns[np.maximum(first - 1, 0)] - before_span
    high = np.where(gap, first, high)
    low = np.where(gap, np.maximum(start_of_sensor, samples.search(first, anchor, "left")), low)
    seen = high > low
    first, last, low, high = first[seen], last[seen], low[seen], high[seen]
    before, during = _medians(values, low, high), _medians(values, first, last + 1)
    moist = ~(before < wet_before) & ~(before < fall_ratio * during)
    found = []
    for (sensor, start, end), was, now in zip(
        _spans(samples, first[moist], last[moist]), before[moist], during[moist]
    ):
        hours = (end - start) / HOURS_1
        text = (
            f"soil moisture fell from {was:.1f} % to {now:.1f} % "
            f"and stayed there {hours:.0f} h: probe out of the soil?"
        )
        score = float(was / max(now, 0.5))
        found.append((sensor, Flag(samples.variable, AnomalyKind.PROBE_OUT_OF_SOIL, start, end, score, text)))
    return found


def saturation_flags(
    samples: Samples,
    level: float = SaturationThresholds.level,
    tolerance: float = SaturationThresholds.tolerance,
    min_duration: pd.Timedelta = SaturationThresholds.min_duration,
    leap_in: float | None = SaturationThresholds.leap_in,
    long_plateau: pd.Timedelta = SaturationThresholds.long_plateau,
    rain_mm: float = SaturationThresholds.rain_mm,
    rain_within: pd.Timedelta = SaturationThresholds.rain_within,
    rain: Rain | None = None,
) -> Found:
    """Soil moisture pinned at a high ceiling: a plateau at saturation (or a probe in standing water),
    flat within `tolerance` for `min_duration`. Given `leap_in`, a plateau must also be leapt onto by that
    much from the sample before (a soil that fills with rain rises to its ceiling; a failing probe
    jumps there) unless its station recorded `rain_mm` within `rain_within` before, or it must last
    `long_plateau`: a wet soil drains within days."""
    values, ns = samples.values, samples.ns
    first, last = _runs(samples.sensor, ns, values >= level, samples.span(HOURS_1))
    spread = _over_runs(np.maximum, values, first, last) - _over_runs(np.minimum, values, first, last)
    lasting = ns[last] - ns[first]
    flat = (lasting >= duration_ns(min_duration)) & ~(spread > 2 * tolerance)
    if leap_in is not None:
        before = np.maximum(first - 1, 0)
        leapt = (first > 0) & samples.follows_same_sensor[first] & (values[first] - values[before] >= leap_in)
        if rain is not None:
            ids = samples.sensor_ids[samples.sensor[first]]
            leapt &= rain.between(ids, ns[first] - duration_ns(rain_within), ns[first]) < rain_mm
        flat &= leapt | (lasting >= duration_ns(long_plateau))
    first, last = first[flat], last[flat]
    found = []
    for (sensor, start, end), middle in zip(_spans(samples, first, last), _medians(values, first, last + 1)):
        hours = (end - start) / HOURS_1
        text = f"soil moisture flat at {middle:.1f} % for {_duration(hours)}: saturated"
        score = hours / (min_duration / HOURS_1)
        found.append((sensor, Flag(samples.variable, AnomalyKind.SATURATION, start, end, score, text)))
    return found


@dataclass(frozen=True)
class Jumps:
    """Jumps after which the level stays shifted: the sample each lands on, the medians of the windows
    before and after, and the last sample of the window after."""

    when: np.ndarray
    before: np.ndarray
    after: np.ndarray
    last: np.ndarray


def lasting_jumps(
    samples: Samples, threshold: float | np.ndarray, direction: int, window: pd.Timedelta
) -> Jumps:
    """Jumps of more than `threshold` (or each sample's) between two samples no further apart than
    MAX_NEIGHBOUR_GAP after which the median of the `window` after (at least a few of the sensor's
    steps) differs from the median of the `window` before by at least half the jump, on the same side.
    `direction` +1 or -1 looks only at rises or falls. A jump is sudden in hours: over a day, soil
    dries that far by itself (Vale da Lama's daily means fall 5-7 % after a watering)."""
    values, ns = samples.values, samples.ns
    jump = np.full(len(values), np.nan)
    jump[1:] = np.diff(values)
    jump[~samples.follows_same_sensor] = np.nan  # no jump from one sensor to the next
    jump[1:][np.diff(ns) > duration_ns(MAX_NEIGHBOUR_GAP)] = np.nan  # nor across a gap
    with np.errstate(invalid="ignore"):
        candidates = np.abs(jump) > threshold
    if direction:
        candidates &= np.sign(jump) == direction
    when = np.flatnonzero(candidates)
    reach = samples.span(window, steps=2.5)[when]
    before_low = samples.search(when, ns[when] - reach, "left")
    before_high = samples.search(when, ns[when] - duration_ns(SECOND), "right")
    after_low = samples.search(when, ns[when], "left")
    after_high = samples.search(when, ns[when] + reach, "right")
    enough = (before_high - before_low >= 2) & (after_high - after_low >= 2)
    when, jump, after_high = when[enough], jump[when[enough]], after_high[enough]
    before = _medians(values, before_low[enough], before_high[enough])
    after = _medians(values, after_low[enough], after_high)
    shift = after - before
    stays = (np.sign(shift) == np.sign(jump)) & ~(np.abs(shift) < np.abs(jump) / 2)
    return Jumps(when[stays], before[stays], after[stays], after_high[stays] - 1)


def break_flags(
    samples: Samples,
    threshold: float,
    direction: int = BreakThresholds.direction,
    window: pd.Timedelta = BreakThresholds.window,
    relative: float | None = BreakThresholds.relative,
    least: float = BreakThresholds.least,
    rain_mm: float | None = BreakThresholds.rain_mm,
    rain_within: pd.Timedelta = BreakThresholds.rain_within,
    wet_rise: float | None = BreakThresholds.wet_rise,
    rain: Rain | None = None,
) -> Found:
    """A sudden break: a jump of more than `threshold` between two samples after which the level stays
    shifted (see `lasting_jumps`; a spike comes back and is not a break), or, given `relative`, of that
    share of the level it leaves (`least` at least): dry soil at 5 % that loses 2 % in an hour has lost
    as much as wet soil losing 15 %. `direction` +1 or -1 looks only at rises or falls (soil moisture
    rises suddenly with rain, so only its falls are breaks). A jump within `rain_within` after the
    sensor's station recorded `rain_mm` (`rain`, where it has one), or after the reading itself rose
    by `wet_rise`, is a storm draining away."""
    samples = samples.of_sensors_with(3)
    variable = samples.variable
    at = threshold
    if relative is not None:  # each sample's threshold by the level before it
        before = np.abs(np.concatenate([samples.values[:1], samples.values[:-1]]))
        at = np.minimum(threshold, np.maximum(least, relative * before))
    jumps = _beyond_before(samples, lasting_jumps(samples, at, direction, window), window)
    if rain is not None and rain_mm is not None and len(jumps.when):
        ids = samples.sensor_ids[samples.sensor[jumps.when]]
        ns = samples.ns[jumps.when]
        dry = rain.between(ids, ns - duration_ns(rain_within), ns) < rain_mm
        jumps = Jumps(*(field[dry] for field in (jumps.when, jumps.before, jumps.after, jumps.last)))
    if wet_rise is not None and len(jumps.when):
        dry = ~_wetted(samples, jumps.when - 1, rain_within, wet_rise)  # the level before the fall
        jumps = Jumps(*(field[dry] for field in (jumps.when, jumps.before, jumps.after, jumps.last)))
    if variable == "air_temperature":
        jumps = _not_out_of_snow(samples, jumps)
    return [
        (
            sensor,
            Flag(
                variable,
                AnomalyKind.BREAK,
                start,
                end,
                float(abs(now - was) / threshold),
                f"{_label(variable)} jumped from {_fmt(variable, was)} to {_fmt(variable, now)} "
                "and stayed there",
            ),
        )
        for (sensor, start, end), was, now in zip(
            _spans(samples, jumps.when, jumps.last), jumps.before, jumps.after
        )
    ]


def _beyond_before(samples: Samples, jumps: Jumps, window: pd.Timedelta) -> Jumps:
    """The jumps whose new level lies beyond every sample of the window before by half the jump: soil
    draining after a downpour falls back to where it was before the rain, which a break never does."""
    low = samples.search(jumps.when, samples.ns[jumps.when] - samples.span(window, 2.5)[jumps.when], "left")
    high = np.maximum(jumps.when, low + 1)
    lowest = _over_runs(np.minimum, samples.values, low, high - 1)
    highest = _over_runs(np.maximum, samples.values, low, high - 1)
    half = np.abs(jumps.after - jumps.before) / 2
    fell = jumps.after < jumps.before
    keep = np.where(fell, jumps.after <= lowest - half, jumps.after >= highest + half)
    return Jumps(jumps.when[keep], jumps.before[keep], jumps.after[keep], jumps.last[keep])


def _not_out_of_snow(samples: Samples, jumps: Jumps) -> Jumps:
    """The jumps but those up out of a plateau held near 0 °C: snow that buried a sensor (too briefly,
    or too much by night, to be seen as snow cover) melting off it in the morning, not a break. The
    plateau is the snow's least time buried just before the jump (two samples at least), not the
    break's whole window: snow that fell only a few hours before it melted off leaves the air it fell
    through in that window."""
    snow = SnowCoverThresholds()
    low = samples.search(jumps.when, samples.ns[jumps.when] - duration_ns(snow.min_duration), "left")
    high = jumps.when - 1
    top = _over_runs(np.maximum, samples.values, low, high)
    bottom = _over_runs(np.minimum, samples.values, low, high)
    held = (bottom >= snow.coldest) & (top <= snow.warmest) & (top - bottom <= 2 * snow.flat)
    held &= high - low >= 1
    keep = ~(held & (jumps.after > jumps.before))
    return Jumps(jumps.when[keep], jumps.before[keep], jumps.after[keep], jumps.last[keep])


def moved_flags(
    soil: Samples,
    light: Samples | None,
    min_jump: float = MovedThresholds.min_jump,
    min_share: float = MovedThresholds.min_share,
    light_ratio: float = MovedThresholds.light_ratio,
    days: int = MovedThresholds.days,
) -> Found:
    """A sensor moved to another pot or garden: soil moisture jumps either way by more than `min_jump`
    and `min_share` of its level, and stays there (`lasting_jumps`), at the moment its light changes
    level by `light_ratio` or more. Across a gap in the soil's readings (blanked in frozen soil) the
    levels and the light either side of it are compared, if the light was seen through it, and only a
    fall counts.
    Rain wets the soil suddenly too, and clouds dim the light for days, so the light's level on either
    side is the mean of the three brightest of `days` days (more than half of them seen): the weather
    changes a day's light, not its ceiling for days on end, while a new place changes the shade for good."""
    if light is None or len(light.values) == 0:
        return []
    soil = soil.of_sensors_with(3)
    # A sensor moved while its soil checks stood down for frost is judged by the levels either side.
    jumps = lasting_jumps(_gaps_closed(soil), min_jump, 0, BreakThresholds.window)
    # Dry soil moves little in %: a move is judged by how much it changed the level, relative too.
    relative = np.abs(jumps.after - jumps.before) >= min_share * np.maximum(jumps.before, 1.0)
    jumps = Jumps(*(field[relative] for field in (jumps.when, jumps.before, jumps.after, jumps.last)))
    if len(jumps.when) == 0:
        return []
    # The brightest light of each sensor's day, on one calendar (sensors as in the soil's codes).
    day_ns = duration_ns(HOURS_24)
    light_ids = {sensor_id: code for code, sensor_id in enumerate(light.sensor_ids)}
    to_soil = np.array([light_ids.get(sensor_id, -1) for sensor_id in soil.sensor_ids])
    first_day = min(int(light.ns.min()), int(soil.ns.min())) // day_ns
    last_day = max(int(light.ns.max()), int(soil.ns.max())) // day_ns
    width = last_day - first_day + 1
    brightest = np.full(len(light.sensor_ids) * width, -np.inf)  # flat: ufunc.at is slow on 2-D indices
    np.maximum.at(brightest, light.sensor * width + (light.ns // day_ns - first_day), light.values)
    brightest = brightest.reshape(len(light.sensor_ids), width)
    sensor = to_soil[soil.sensor[jumps.when]]
    day = soil.ns[jumps.when] // day_ns - first_day
    day_before = soil.ns[jumps.when - 1] // day_ns - first_day  # earlier, across a gap
    known = sensor >= 0
    ratio = np.full(len(day), np.nan)
    for i in np.flatnonzero(known):
        row = brightest[sensor[i]]
        if day[i] - day_before[i] > 1 and np.isfinite(row[day_before[i] : day[i] + 1]).mean() < LIT_GAP:
            continue  # the light went too (snow, or the sensor offline): nothing tells a move from it
        before = row[max(0, day_before[i] - days) : day_before[i]]
        after = row[day[i] + 1 : day[i] + 1 + days]
        before, after = before[np.isfinite(before)], after[np.isfinite(after)]
        if min(len(before), len(after)) > days // 2:
            # The mean of the three brightest days: one clear day among cloudy ones does not set it.
            was, now = np.sort(before)[-3:].mean(), np.sort(after)[-3:].mean()
            if min(was, now) > 0.5:
                ratio[i] = now / was
    with np.errstate(invalid="ignore"):
        moved = (ratio >= light_ratio) | (ratio <= 1 / light_ratio)
    # Across a gap only a fall counts: the thaw that ends a frozen spell wets the soil itself.
    across = soil.ns[jumps.when] - soil.ns[jumps.when - 1] > duration_ns(MAX_NEIGHBOUR_GAP)
    moved &= ~(across & (jumps.after > jumps.before))
    found = []
    for (code, start, end), was, now, r in zip(
        _spans(soil, jumps.when[moved], jumps.last[moved]),
        jumps.before[moved],
        jumps.after[moved],
        ratio[moved],
    ):
        text = (
            f"soil moisture jumped from {was:.1f} % to {now:.1f} % as its light's level changed "
            f"{r:.1f}×: moved to another pot or garden?"
        )
        score = float(max(r, 1 / r) / light_ratio)
        found.append((code, Flag(soil.variable, AnomalyKind.MOVED, start, end, score, text)))
    return found


def _gaps_closed(samples: Samples) -> Samples:
    """The samples as if every gap longer than MAX_NEIGHBOUR_GAP had been one sample interval long: the
    level before a spell without readings then meets the level after it. The positions are the same,
    so flags take their times from `samples`."""
    step = np.zeros(len(samples.ns), dtype=np.int64)
    step[1:] = np.diff(samples.ns)
    gap = samples.follows_same_sensor & (step > duration_ns(MAX_NEIGHBOUR_GAP))
    if not gap.any():
        return samples
    shortened = np.where(gap, step - duration_ns(SAMPLE_INTERVAL), 0)
    return replace(samples, ns=samples.ns - np.cumsum(shortened))


def battery_flags(samples: Samples, empty: float = BatteryThresholds.empty) -> Found:
    """A battery at or below `empty` %: readings degrade and then stop."""
    first, last = _runs(samples.sensor, samples.ns, samples.values <= empty, samples.span(HOURS_6))
    lowest = _over_runs(np.minimum, samples.values, first, last)
    return [
        (
            sensor,
            Flag(
                samples.variable,
                AnomalyKind.BATTERY_EXHAUSTED,
                start,
                end,
                float(1 + (empty - least) / empty),
                f"battery at {least:.0f} %: readings will degrade and stop",
            ),
        )
        for (sensor, start, end), least in zip(_spans(samples, first, last), lowest)
    ]


def _keywords(thresholds: object) -> dict:
    return {f.name: getattr(thresholds, f.name) for f in fields(thresholds)}


class _Same:
    """One frame, whatever a check stands down for (readings given without their views)."""

    def __init__(self, readings: pd.DataFrame):
        self.readings = readings

    def __getitem__(self, stands_down: frozenset) -> pd.DataFrame:
        return self.readings


def as_views(readings):
    """`readings` as views by what a check stands down for (`detection.conditions.Views`): given as a
    plain frame, the same frame for every check."""
    return _Same(readings) if isinstance(readings, pd.DataFrame) else readings


@dataclass(frozen=True)
class Sensors:
    """What a rule is given: each variable's samples of every sensor, as the conditions the rule stands
    down for leave them, the variable its check looks at, and the stations' rain where known."""

    samples: dict[str, Samples]
    variable: str
    rain: Rain | None = None

    @property
    def own(self) -> Samples:
        return self.samples[self.variable]


@register("range")
def _range(on: Sensors, t) -> Found:
    return range_flags(on.own, t.low, t.high)


@register("spike")
def _spike(on: Sensors, t) -> Found:
    return spike_flags(on.own.plausible, **_keywords(t), rain=on.rain)  # a storm's leaps are rain


@register("break")
def _break(on: Sensors, t) -> Found:
    return break_flags(on.own.plausible, **_keywords(t), rain=on.rain)  # a storm drains away


@register("stuck")
def _stuck(on: Sensors, t) -> Found:
    return stuck_flags(on.own, **_keywords(t), rain=on.rain)  # a value held through rain is stuck


@register("probe_out_of_soil")
def _probe_out_of_soil(on: Sensors, t) -> Found:
    return probe_out_of_soil_flags(on.own, **_keywords(t))


@register("saturation")
def _saturation(on: Sensors, t) -> Found:
    return saturation_flags(on.own, **_keywords(t), rain=on.rain)  # a storm fills a soil to its ceiling


@register("battery_exhausted")
def _battery_exhausted(on: Sensors, t) -> Found:
    return battery_flags(on.own, **_keywords(t))


@register("moved")
def _moved(on: Sensors, t) -> Found:
    return moved_flags(on.own, on.samples.get("light"), **_keywords(t))  # the light beside the soil


def check_sensors(
    readings, config: Configuration = DEFAULT, rain: Rain | None = None
) -> list[tuple[str, Flag]]:
    """The rules `config` selects (all, by default) on every sensor of `readings`: a frame with
    sensor_id, a UTC ts column and the columns it has of soil_moisture, air_temperature, light and
    battery_level, or `detection.conditions.Views` of it (each rule then sees the readings as the
    conditions it stands down for leave them). Returns (sensor_id, flag) pairs, sensor by sensor (in
    sensor_id order), each sensor's flags rule by rule in the registry's order."""
    views = as_views(readings)
    readings = views[NOTHING]
    checks = [c for c in config.running(Detector.RULE) if c.variable in readings]
    if not checks or readings.empty:
        return []
    variables = [c.variable for c in checks]
    if "moved" in {c.name for c in checks} and "light" in readings:
        variables.append("light")  # the moved check looks at the light beside the soil
    variables = list(dict.fromkeys(variables))
    frames = {check.stands_down: views[check.stands_down] for check in checks}
    samples = sensor_samples(readings, variables, frames)
    found: Found = []
    for check in checks:
        on = Sensors(samples[check.stands_down], check.variable, rain)
        found += check.function(on, config.thresholds[check.name])
    found.sort(key=lambda pair: pair[0])  # stable: each sensor's flags stay in the rules' order
    ids = next(iter(samples[checks[0].stands_down].values())).sensor_ids
    return [(ids[code], flag) for code, flag in found]


def sensor_samples(readings: pd.DataFrame, variables: list[str], frames: dict | None = None):
    """Each variable's samples of every sensor of `readings` (sensor_id, a UTC ts column and the
    variables), the rows put in sensor and time order once for all of them. Given `frames` (the same
    rows, some values blanked, by any key), the samples of each by the same key instead (a frame given
    twice is read once)."""
    sensor, ids = pd.factorize(readings["sensor_id"], sort=True)
    times = pd.DatetimeIndex(readings["ts"])
    ns = epoch_ns(times)
    order = sensor_then_time(sensor, ns)
    order = order[sensor[order] >= 0]  # rows without a sensor id belong to no sensor
    sensor, ns = sensor[order].astype(np.int64), ns[order]
    ids = np.asarray(ids, dtype=object)

    def of(frame: pd.DataFrame) -> dict[str, Samples]:
        return {
            variable: Samples(
                variable,
                sensor,
                ns,
                frame[variable].to_numpy(np.float64, na_value=np.nan)[order],
                ids,
                times[:0],
            ).present()
            for variable in variables
        }

    if frames is None:
        return of(readings)
    read: dict[int, dict[str, Samples]] = {}
    for frame in frames.values():
        read.setdefault(id(frame), of(frame) if id(frame) not in read else read[id(frame)])
    return {key: read[id(frame)] for key, frame in frames.items()}


def sensor_then_time(sensor: np.ndarray, ns: np.ndarray) -> np.ndarray:
    """The order that sorts rows by sensor and then time (none to do if they already are). Readings
    mostly come in time order within each sensor (read sensor by sensor, or hour by hour), and then a
    stable sort by sensor alone gives that order: a radix sort where the codes fit in 16 bits, several
    times faster than sorting by both."""
    same = sensor[1:] == sensor[:-1]
    if np.all((sensor[1:] > sensor[:-1]) | (same & (ns[1:] > ns[:-1]))):
        return np.arange(len(sensor))
    narrow = sensor.max() < 2**15  # codes from pd.factorize: -1 (no sensor) and up
    order = np.argsort(sensor.astype(np.int16) if narrow else sensor, kind="stable")
    by_sensor, times = sensor[order], ns[order]
    if np.all((by_sensor[1:] != by_sensor[:-1]) | (times[1:] >= times[:-1])):
        return order
    return np.lexsort((ns, sensor))


# --- one sensor ------------------------------------------------------------------------------------------


def check_sensor(readings: pd.DataFrame, config: Configuration = DEFAULT) -> list[Flag]:
    """The rules `config` selects (all, by default) on one sensor's readings: a frame indexed by UTC
    time with the columns it has of soil_moisture, air_temperature, light and battery_level."""
    frame = readings.rename_axis("ts").reset_index().assign(sensor_id="sensor")
    return [flag for _, flag in check_sensors(frame, config)]


def _on_one(rule: Callable[..., Found], series: pd.Series, variable: str, *thresholds, **named) -> list[Flag]:
    return [flag for _, flag in rule(Samples.of_series(series, variable), *thresholds, **named)]


def check_range(series: pd.Series, variable: str, limits: tuple[float, float] | None = None) -> list[Flag]:
    """Values outside what the sensor can plausibly read (by default the vocabulary's range)."""
    low, high = limits or (SENSOR_VARIABLES[variable].low, SENSOR_VARIABLES[variable].high)
    return _on_one(range_flags, series, variable, low, high)


def check_stuck(series: pd.Series, variable: str, *thresholds, **named) -> list[Flag]:
    """`stuck_flags` on one series indexed by time."""
    return _on_one(stuck_flags, series, variable, *thresholds, **named)


def check_spikes(series: pd.Series, variable: str, *thresholds, **named) -> list[Flag]:
    """`spike_flags` on one series indexed by time."""
    return _on_one(spike_flags, series, variable, *thresholds, **named)


def check_break(series: pd.Series, variable: str, *thresholds, **named) -> list[Flag]:
    """`break_flags` on one series indexed by time."""
    return _on_one(break_flags, series, variable, *thresholds, **named)


def check_probe_out_of_soil(series: pd.Series, *thresholds, **named) -> list[Flag]:
    """`probe_out_of_soil_flags` on one soil moisture series indexed by time."""
    return _on_one(probe_out_of_soil_flags, series, "soil_moisture", *thresholds, **named)


def check_saturation(series: pd.Series, *thresholds, **named) -> list[Flag]:
    """`saturation_flags` on one soil moisture series indexed by time."""
    return _on_one(saturation_flags, series, "soil_moisture", *thresholds, **named)


def check_battery(series: pd.Series, *thresholds, **named) -> list[Flag]:
    """`battery_flags` on one battery level series indexed by time."""
    return _on_one(battery_flags, series, "battery_level", *thresholds, **named)
