"""A generated network on disk, as the simulator server, the tests and the evaluation read it.

Folder layout (written by `devtools.simulator.generate`):

- `network.json`: the time axis, the sensors and the WOW stations with their metadata, and the
  network's physical constants (`physics`: see `devtools.simulator.physics`).
- `grow_<variable>.npy`: sensor readings, int16 hundredths, shape (sensors, steps of 15 minutes). A
  sensor samples once in each step, at its own second of it (`phase_s`), as its own clock tells it: a
  clock that runs `clock_ppm` fast or slow, set right by the phone at each upload (`sensor_times_us`).
- `grow_syncs.npy`: when each sensor's phone uploaded, as (sensor index, step) pairs: a reading is
  served only once an upload at or after it has happened.
- `wow_<variable>.npy`: station reports, int16 hundredths, shape (stations, steps).
- `labels.csv`: the injected faults (sensor_id, variable, kind, start, end, hidden_by_frost). Never
  served.
- `conditions.csv`: what sensors went through that is no fault (sensor_id, kind: snow_cover or
  frozen_soil, start, end), the truth the simulator knows. Never served.
- `wow_observations_europe.json`: a saved WOW byversion answer (the last day), the 2019 fallback file.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import pandas as pd

from core.vocabulary import SENSOR_VARIABLES, STATION_VARIABLES

STEP = dt.timedelta(minutes=15)
STEPS_PER_DAY = 96
SCALE = 100.0  # stored values are hundredths
MISSING = -32768  # no sample at that time: nothing is served
NODATA = -32767  # a sample whose value the sensor could not give: served as the API's NoDataValue

GROW_VARIABLES = tuple(SENSOR_VARIABLES)
WOW_VARIABLES = tuple(STATION_VARIABLES)


@dataclass(frozen=True)
class Window:
    """Step indices [first, last] of the network's time axis."""

    first: int
    last: int


@dataclass(frozen=True)
class StationReports:
    """Station reports as arrays, one item per report: the station's row in `Network.stations`, the
    end of the report (µs since 1970, UTC) and each variable's value (NaN: not sent)."""

    stations: np.ndarray
    ends_us: np.ndarray
    values: dict[str, np.ndarray]


class Network:
    """Read access to a generated network; arrays are memory-mapped, so opening is cheap."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        meta_path = self.folder / "network.json"
        if not meta_path.exists():
            raise FileNotFoundError(f"{self.folder} holds no generated network (no network.json)")
        self.meta = json.loads(meta_path.read_text())
        self.start = dt.datetime.fromisoformat(self.meta["start"])
        self.steps = int(self.meta["steps"])
        self.sensors = pd.DataFrame(self.meta["sensors"])
        self.stations = pd.DataFrame(self.meta["stations"])
        self.sensor_index = {code: i for i, code in enumerate(self.sensors["sensor_id"])}
        self.station_index = {site: i for i, site in enumerate(self.stations["site_id"])}
        self._uploaded: tuple[int, np.ndarray] | None = None  # uploaded_until's last answer

    @property
    def physics(self) -> dict:
        """The network's physical constants as drawn for its seed (empty for a network made before them)."""
        return dict(self.meta.get("physics", {}))

    @property
    def end(self) -> dt.datetime:
        return self.start + self.steps * STEP

    @cached_property
    def sensor_records(self) -> list[dict]:
        """The sensors as plain dicts: a server looks them up per request, and pandas rows are slow."""
        return self.sensors.to_dict("records")

    @cached_property
    def grow(self) -> dict[str, np.ndarray]:
        return {v: np.load(self.folder / f"grow_{v}.npy", mmap_mode="r") for v in GROW_VARIABLES}

    @cached_property
    def wow(self) -> dict[str, np.ndarray]:
        return {v: np.load(self.folder / f"wow_{v}.npy", mmap_mode="r") for v in WOW_VARIABLES}

    @cached_property
    def syncs(self) -> np.ndarray:
        return np.load(self.folder / "grow_syncs.npy")

    def labels(self) -> pd.DataFrame:
        labels = pd.read_csv(self.folder / "labels.csv", dtype={"sensor_id": str})
        for column in ("start", "end"):
            labels[column] = pd.to_datetime(labels[column], utc=True)
        if "hidden_by_frost" not in labels:  # a network generated before the seasons
            labels["hidden_by_frost"] = False
        return labels

    def conditions(self) -> pd.DataFrame:
        """The true spans of snow cover and frozen soil (empty for a network made before they were kept)."""
        path = self.folder / "conditions.csv"
        if not path.exists():
            return pd.DataFrame(columns=["sensor_id", "kind", "start", "end"])
        conditions = pd.read_csv(path, dtype={"sensor_id": str})
        for column in ("start", "end"):
            conditions[column] = pd.to_datetime(conditions[column], utc=True)
        return conditions

    # --- time ---------------------------------------------------------------------------------------

    def step_of(self, when: dt.datetime) -> int:
        """The index of the step at or before `when` (may fall outside the axis)."""
        return int((when - self.start) // STEP)

    def window(self, start: dt.datetime, end: dt.datetime, phase_s: int = 0) -> Window:
        """Steps whose time (plus a phase in seconds) lies in [start, end], clipped to the axis."""
        offset = dt.timedelta(seconds=phase_s)
        first = -((self.start + offset - start) // STEP)  # ceil((start - t0) / step)
        last = (end - self.start - offset) // STEP
        return Window(max(0, int(first)), min(self.steps - 1, int(last)))

    def sensor_times_us(self, sensor: int, window: Window) -> np.ndarray:
        """Sample times of one sensor in µs since 1970: each sensor samples at its own second of each step
        (`phase_s`) by its own clock, which gains or loses `clock_ppm` from one upload (where the phone
        sets it right) to the next; a sample stays in its own step."""
        record = self.sensor_records[sensor]
        steps = np.arange(window.first, window.last + 1, dtype=np.int64)
        seconds = int(record["phase_s"]) + self._clock_error_s(sensor, steps)
        return (int(self.start.timestamp()) + steps * 900 + np.clip(seconds, 0, 899)) * 1_000_000

    def _clock_error_s(self, sensor: int, steps: np.ndarray) -> np.ndarray:
        """Whole seconds the sensor's clock is off at these steps: `clock_ppm` of the time since the last
        upload at or before each (since it was installed before the first)."""
        ppm = float(self.sensor_records[sensor].get("clock_ppm", 0.0) or 0.0)
        if ppm == 0.0 or len(steps) == 0:
            return np.zeros(len(steps), dtype=np.int64)
        synced = self._sync_steps[sensor]
        installed = int(self.sensor_records[sensor].get("installed_step", 0))
        if len(synced) == 0:  # no upload yet in the network's span
            return np.round(ppm * 1e-6 * (steps - installed) * 900).astype(np.int64)
        before = np.searchsorted(synced, steps, side="right") - 1
        since = np.where(before >= 0, synced[np.maximum(before, 0)], installed)
        return np.round(ppm * 1e-6 * (steps - since) * 900).astype(np.int64)

    @cached_property
    def _sync_steps(self) -> dict[int, np.ndarray]:
        """Per sensor, the steps of its uploads, in order."""
        syncs = self.syncs
        order = np.lexsort((syncs[:, 1], syncs[:, 0]))
        ordered = syncs[order]
        bounds = np.searchsorted(ordered[:, 0], np.arange(len(self.sensors) + 1))
        return {i: ordered[bounds[i] : bounds[i + 1], 1] for i in range(len(self.sensors))}

    def sensor_window(self, sensor: int, start: dt.datetime, end: dt.datetime) -> Window:
        """The steps of one sensor whose sample times lie in [start, end], clipped to the axis (empty when
        `last < first`)."""
        window = self.window(start - STEP, end + STEP)
        if window.last < window.first:
            return window
        times = self.sensor_times_us(sensor, window)
        first = window.first + int(np.searchsorted(times, _us(start), side="left"))
        last = window.first + int(np.searchsorted(times, _us(end), side="right")) - 1
        return Window(first, last)

    # --- what the APIs serve ------------------------------------------------------------------------

    def uploaded_until(self, now: dt.datetime) -> np.ndarray:
        """Per sensor, the first step not yet uploaded at `now` (readings at smaller steps are served).
        Read-only, and kept for the last `now` asked: every request of a night asks at the same moment,
        and working it out scans every phone's syncs (tens of milliseconds a request at 100,000 sensors,
        which would time the simulator rather than its client)."""
        now_step = self.step_of(now)
        if self._uploaded is not None and self._uploaded[0] == now_step:
            return self._uploaded[1]
        limit = np.zeros(len(self.sensors), dtype=np.int64)
        syncs = self.syncs
        done = syncs[syncs[:, 1] <= now_step]
        np.maximum.at(limit, done[:, 0], done[:, 1] + 1)
        limit = np.minimum(limit, self.steps)
        limit.flags.writeable = False
        self._uploaded = (now_step, limit)  # one tuple, swapped whole: the server's threads see either
        return limit

    def visible_readings(
        self, codes: list[str], start: dt.datetime, end: dt.datetime, now: dt.datetime
    ) -> pd.DataFrame:
        """The readings the GROW API serves at `now` for these sensors in [start, end], joined by time.

        One row per sample (sensor_id, ts, one column per variable; NaN where the value was NoData or
        not measured). This is the ground truth a client must fetch exactly.
        """
        limits = self.uploaded_until(now)
        frames = []
        for code in codes:
            i = self.sensor_index[code]
            window = self.sensor_window(i, start, end)
            last = min(window.last, int(limits[i]) - 1)
            if last < window.first:
                continue
            window = Window(window.first, last)
            raw = {v: np.asarray(self.grow[v][i, window.first : window.last + 1]) for v in GROW_VARIABLES}
            sampled = np.zeros(window.last - window.first + 1, dtype=bool)
            for values in raw.values():
                sampled |= values != MISSING
            frame = pd.DataFrame({"sensor_id": code, "ts": self.sensor_times_us(i, window)})
            for variable, values in raw.items():
                frame[variable] = np.where(values <= NODATA, np.nan, values / SCALE)
            frames.append(frame[sampled])
        if not frames:
            return pd.DataFrame(columns=["sensor_id", "ts", *GROW_VARIABLES])
        result = pd.concat(frames, ignore_index=True)
        result["ts"] = pd.to_datetime(result["ts"], unit="us", utc=True)
        return result

    def station_reports(self, sites: list[str], start: dt.datetime, end: dt.datetime) -> StationReports:
        """The reports the WOW API serves for these stations with ReportEndDateTime in [start, end], as
        arrays: the sites in the order given and each in time order (see `station_observations`)."""
        window = self.window(start, end)
        rows = np.array([self.station_index[site] for site in sites], dtype=np.int64)
        span = slice(window.first, max(window.first, window.last + 1))  # an empty window stays empty
        raw = {v: np.asarray(self.wow[v][rows, span]) for v in WOW_VARIABLES}
        # A report is a time with a temperature; row-major order keeps each site's reports together.
        site, offset = np.nonzero(raw["air_temperature"] != MISSING)
        ends_us = (int(self.start.timestamp()) + (window.first + offset).astype(np.int64) * 900) * 1_000_000
        values = {}
        for variable, stored in raw.items():
            reported = stored[site, offset]
            values[variable] = np.where(reported <= NODATA, np.nan, reported / SCALE)
        return StationReports(rows[site], ends_us, values)

    def station_observations(self, sites: list[str], start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        """The reports the WOW API serves for these stations with ReportEndDateTime in [start, end].

        One row per report, the sites in the order given and each in time order: site_id, ts (the end
        of the report, UTC) and one column per variable, NaN where the station sent no value. The
        server's answers and the evaluation both read the stations through this, so they cannot drift.
        """
        reports = self.station_reports(sites, start, end)
        frame = pd.DataFrame(
            {
                "site_id": self.stations["site_id"].to_numpy(dtype=object)[reports.stations],
                "ts": pd.to_datetime(reports.ends_us, unit="us", utc=True),
            }
        )
        for variable, values in reports.values.items():
            frame[variable] = values
        return frame


def _us(when: dt.datetime) -> int:
    """µs since 1970 of an aware datetime, exactly."""
    return (when - EPOCH) // dt.timedelta(microseconds=1)


EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
