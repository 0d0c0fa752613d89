"""The Thingful GROW API: sensors (locations), their series, and their readings.

`get_*` calls the API; `parse_*` turns an answer into a DataFrame and counts the records it had to skip.
All calls are POSTs with `Authorization: Bearer <key>`. Timestamps are `yyyymmddHHMMSS` in UTC. A reading
request names at most 10 sensors and spans at most 10 days, so longer fetches are split into windows.
Variables arrive as one series each and are joined by timestamp, never by position.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import deque
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.times import grow_stamp, spans
from core.vocabulary import GROW_CODES, GROW_DATA_SOURCE, SENSOR_VARIABLES
from etl.settings import EtlSettings
from etl.sources.http import HttpPolicy, Source, SourceError

log = logging.getLogger(__name__)

MAX_LOCATIONS = 10
MAX_WINDOW = dt.timedelta(days=10)
NO_DATA = -9999.0
# The API's variable codes and our column names; calibrated soil moisture is the soil moisture we keep.
VARIABLES = {f"{GROW_DATA_SOURCE}.{GROW_CODES[name]}": name for name in SENSOR_VARIABLES}
READING_COLUMNS = ["sensor_id", "ts", *VARIABLES.values()]
SENSOR_COLUMNS = [
    "sensor_id",
    "identifier",
    "name",
    "serial_number",
    "owner_id",
    "latitude",
    "longitude",
    "first_sample_at",
    "last_sample_at",
]


@dataclass(frozen=True)
class Batch:
    """The answer to one reading request: its sensors and window, and readings or the error."""

    codes: tuple[str, ...]
    start: dt.datetime
    end: dt.datetime
    readings: pd.DataFrame | None = None
    error: SourceError | None = None
    skipped: int = 0


def request_windows(
    codes: Sequence[str], start: dt.datetime, end: dt.datetime
) -> list[tuple[tuple[str, ...], dt.datetime, dt.datetime]]:
    """Split a fetch into requests of at most 10 sensors × 10 days, without overlap (timestamps are
    whole seconds, so the next window starts one second after the last one ended)."""
    groups = [tuple(codes[i : i + MAX_LOCATIONS]) for i in range(0, len(codes), MAX_LOCATIONS)]
    return [(group, a, b) for group in groups for a, b in spans(start, end, MAX_WINDOW)]


def parse_grow_timestamps(stamps: Sequence) -> tuple[np.ndarray, np.ndarray]:
    """'yyyymmddHHMMSS' strings (UTC) → (datetime64[s] array, valid mask). Invalid ones are NaT."""
    try:
        raw = np.array(stamps, dtype="S15")  # one byte more than needed, so longer strings show
    except (TypeError, ValueError, UnicodeEncodeError):
        raw = np.array([s if isinstance(s, str) and s.isascii() else "" for s in stamps], dtype="S15")
    fast = _iso_parse(raw)
    if fast is not None:
        return fast, np.ones(len(raw), dtype=bool)
    digits = raw.view(np.uint8).reshape(len(raw), 15)[:, :14].astype(np.int64) - ord("0")
    valid = ((digits >= 0) & (digits <= 9)).all(axis=1) & (
        raw.view(np.uint8).reshape(len(raw), 15)[:, 14] == 0
    )
    digits = np.where(valid[:, None], digits, 0)

    def number(a: int, b: int) -> np.ndarray:
        return (digits[:, a:b] * 10 ** np.arange(b - a - 1, -1, -1)).sum(axis=1)

    year, month, day = number(0, 4), number(4, 6), number(6, 8)
    hour, minute, second = number(8, 10), number(10, 12), number(12, 14)
    valid &= (
        (month >= 1) & (month <= 12) & (day >= 1) & (day <= 31) & (hour < 24) & (minute < 60) & (second < 60)
    )
    months = np.where(valid, (year - 1970) * 12 + month - 1, 0).astype("datetime64[M]")
    days = months.astype("datetime64[D]") + np.where(valid, day - 1, 0)
    valid &= days.astype("datetime64[M]") == months  # 31 April rolls into May: not a date
    seconds = days.astype("datetime64[s]") + (hour * 3600 + minute * 60 + second)
    return np.where(valid, seconds, np.datetime64("NaT")), valid


# Where each of the 14 digits goes in 'YYYY-MM-DDTHH:MM:SS'.
_ISO_POSITIONS = [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]
_ISO_TEMPLATE = np.frombuffer(b"0000-00-00T00:00:00", dtype=np.uint8)


def _iso_parse(raw: np.ndarray) -> np.ndarray | None:
    """The common case, fast: every stamp is 14 digits of a real date; numpy parses them as ISO text.
    None when any stamp is not, for the careful path to sort out."""
    chars = raw.view(np.uint8).reshape(len(raw), 15)
    if not len(raw) or chars[:, 14].any() or ((chars[:, :14] < ord("0")) | (chars[:, :14] > ord("9"))).any():
        return None
    iso = np.tile(_ISO_TEMPLATE, (len(raw), 1))
    iso[:, _ISO_POSITIONS] = chars[:, :14]
    try:
        return iso.view("S19").ravel().astype("datetime64[s]")
    except ValueError:
        return None


def _grow_time(value) -> pd.Timestamp | None:
    if value is None:
        return None
    stamps, valid = parse_grow_timestamps([str(value)])
    return pd.Timestamp(stamps[0], tz="UTC") if valid[0] else None


def parse_locations(payload) -> tuple[pd.DataFrame, int]:
    """`entity/locations/get` → one row per sensor, and how many records were malformed.

    X is the longitude and Y the latitude, whatever some published examples show.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("Locations"), dict):
        raise ValueError("the answer has no Locations object")
    rows, skipped = [], 0
    for key, record in payload["Locations"].items():
        try:
            code = record.get("Code") or str(key).split("#", 1)[1]
            latitude, longitude = float(record["Y"]), float(record["X"])
            if not (isinstance(code, str) and code and -90 <= latitude <= 90 and -180 <= longitude <= 180):
                raise ValueError
        except (AttributeError, IndexError, KeyError, TypeError, ValueError):
            skipped += 1
            continue
        name = record.get("Name")
        rows.append(
            {
                "sensor_id": code,
                "identifier": record.get("Identifier") or f"Grow.Thingful#{code}",
                "name": name,
                "serial_number": record.get("SerialNumber") or _serial_from_name(name),
                "owner_id": record.get("UserUid"),
                "latitude": latitude,
                "longitude": longitude,
                "first_sample_at": _grow_time(record.get("FirstSampleTimestamp")),
                "last_sample_at": _grow_time(
                    record.get("LastAvailableSampleTimestamp") or record.get("LastFetchedSampleTimestamp")
                ),
            }
        )
    frame = pd.DataFrame(rows, columns=SENSOR_COLUMNS)
    for column in ("first_sample_at", "last_sample_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.drop_duplicates("sensor_id", keep="last").reset_index(drop=True), skipped


def _serial_from_name(name) -> str | None:
    """Flower Power names end with the serial ("… soil sensor PI040297AA4A030551")."""
    if isinstance(name, str) and name.split() and name.split()[-1].startswith("PI"):
        return name.split()[-1]
    return None


def parse_time_series(payload) -> tuple[pd.DataFrame, int]:
    """`timeSeries/get` → readings joined by (sensor, timestamp), and how many samples were malformed.

    NoDataValue (-9999) becomes NaN. A sample whose value or timestamp is unreadable is skipped.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("Data"), list):
        raise ValueError("the answer has no Data list")
    names = list(VARIABLES.values())
    sensors, variables, no_data, raw_values, raw_stamps = [], [], [], [], []
    skipped = 0
    for entry in payload["Data"]:
        if not isinstance(entry, dict):
            skipped += 1
            continue
        variable = VARIABLES.get(entry.get("VariableCode"))
        if variable is None:
            continue  # a series we do not keep, such as raw soil moisture
        code = entry.get("LocationCode") or str(entry.get("LocationIdentifier", "")).rsplit("#", 1)[-1]
        points = entry.get("Data")
        if not code or not isinstance(points, list):
            skipped += 1
            continue
        values, stamps = _point_fields(points)
        raw_values += values
        raw_stamps += stamps
        sensors.append((code, len(points)))
        variables.append((names.index(variable), len(points)))
        no_data.append((_number(entry.get("NoDataValue", NO_DATA)), len(points)))
    if not raw_values:
        return pd.DataFrame(columns=READING_COLUMNS), skipped

    def repeat(pairs, dtype):
        return np.repeat(np.array([p[0] for p in pairs], dtype=dtype), [p[1] for p in pairs])

    value = _numbers(raw_values)
    when, valid = parse_grow_timestamps(raw_stamps)
    keep = valid & ~np.isnan(value)
    value = np.where(value == repeat(no_data, np.float64), np.nan, value)
    skipped += int((~keep).sum())
    joined = join_by_timestamp(
        repeat(sensors, object)[keep], repeat(variables, np.int64)[keep], when[keep], value[keep], names
    )
    return joined, skipped


def _point_fields(points: list) -> tuple[list, list]:
    try:
        return [p["Value"] for p in points], [p["DateTime"] for p in points]
    except (KeyError, TypeError):  # some sample is not a proper object: take what can be taken
        return (
            [p.get("Value") if isinstance(p, dict) else None for p in points],
            [p.get("DateTime") if isinstance(p, dict) else None for p in points],
        )


def _numbers(raw: list) -> np.ndarray:
    """Sample values as floats, NaN where a value is not a number."""
    try:
        return np.array(raw, dtype=np.float64)
    except (TypeError, ValueError):
        return np.array([_number(v) for v in raw], dtype=np.float64)


def _number(value) -> float:
    if isinstance(value, bool) or value is None:
        return np.nan
    try:
        return float(value)
    except (TypeError, ValueError):
        return np.nan


def join_by_timestamp(sensors, variables, stamps, values, names: list[str]) -> pd.DataFrame:
    """Long samples (sensor, variable, time, value) → a row per (sensor, time) and a column per variable."""
    codes, uniques = pd.factorize(sensors)
    ts = stamps.astype("datetime64[s]").astype(np.int64)
    order = np.lexsort((ts, codes))
    codes, ts = codes[order], ts[order]
    new_row = np.ones(len(order), dtype=bool)
    new_row[1:] = (codes[1:] != codes[:-1]) | (ts[1:] != ts[:-1])
    row = np.cumsum(new_row) - 1
    table = np.full((int(row[-1]) + 1, len(names)), np.nan)
    table[row, variables[order]] = values[order]
    frame = pd.DataFrame(table, columns=names)
    frame.insert(0, "sensor_id", np.asarray(uniques, dtype=object)[codes[new_row]])
    frame.insert(1, "ts", pd.to_datetime(ts[new_row], unit="s", utc=True).as_unit("us"))
    return frame


class GrowClient:
    """The GROW API at the configured base URL, with the configured key and retry policy."""

    def __init__(self, settings: EtlSettings):
        key = settings.grow_api_key.get_secret_value() if settings.grow_api_key else ""
        policy = HttpPolicy(settings.http_timeout_s, settings.http_attempts, settings.http_backoff_s)
        self.source = Source("GROW API", settings.grow_api_url, {"Authorization": f"Bearer {key}"}, policy)
        self.workers = settings.fetch_workers

    def get_sensors(self) -> pd.DataFrame:
        """Every sensor the API knows, with owner, place and the span of its samples."""
        payload = self.source.request_json(
            "POST", "entity/locations/get", "sensor list", json={"DataSourceCodes": [GROW_DATA_SOURCE]}
        )
        try:
            sensors, skipped = parse_locations(payload)
        except ValueError as exc:
            raise SourceError(f"GROW API sensor list: {exc}") from None
        if skipped:
            log.warning("GROW API sensor list: skipped %d malformed sensor records", skipped)
        return sensors

    def get_readings_window(self, codes: Sequence[str], start: dt.datetime, end: dt.datetime) -> Batch:
        """One request: at most 10 sensors over at most 10 days."""
        what = f"readings of {','.join(codes)} {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M}"
        body = {
            "Readers": [
                {
                    "DataSourceCode": GROW_DATA_SOURCE,
                    "Settings": {
                        "LocationCodes": list(codes),
                        "VariableCodes": list(VARIABLES),
                        "StartDate": grow_stamp(start),
                        "EndDate": grow_stamp(end),
                        "Order": "asc",
                        "StructureType": "TimeSeries",
                        "CalculationType": "None",
                    },
                }
            ]
        }
        try:
            payload = self.source.request_json("POST", "timeSeries/get", what, json=body)
            readings, skipped = parse_time_series(payload)
        except SourceError as exc:
            return Batch(tuple(codes), start, end, error=exc)
        except ValueError as exc:
            return Batch(tuple(codes), start, end, error=SourceError(f"GROW API {what}: {exc}"))
        if skipped:
            log.warning("GROW API %s: skipped %d malformed samples", what, skipped)
        return Batch(tuple(codes), start, end, readings=readings, skipped=skipped)

    def iter_readings(self, codes: Sequence[str], start: dt.datetime, end: dt.datetime) -> Iterator[Batch]:
        """Every request of a fetch, in order; see iter_windows."""
        return self.iter_windows(request_windows(codes, start, end))

    def iter_windows(
        self, windows: Sequence[tuple[Sequence[str], dt.datetime, dt.datetime]]
    ) -> Iterator[Batch]:
        """Run requests in a bounded pool; batches come back in the order of `windows`, and only a few
        are ever waiting, however slowly the caller takes them."""
        ahead = 4 * self.workers
        with ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="grow") as pool:
            pending: deque = deque()
            for window in windows:
                pending.append(pool.submit(self.get_readings_window, *window))
                if len(pending) >= ahead:
                    yield pending.popleft().result()
            while pending:
                yield pending.popleft().result()

    def get_readings(self, codes: Sequence[str], start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        """All readings of these sensors in [start, end]; SourceError if any request failed for good."""
        frames, failures = [], []
        for batch in self.iter_readings(codes, start, end):
            if batch.error is not None:
                failures.append(batch.error)
            elif len(batch.readings):
                frames.append(batch.readings)
        if failures:
            more = f" (and {len(failures) - 1} more failed requests)" if len(failures) > 1 else ""
            raise SourceError(f"{failures[0]}{more}")
        if not frames:
            return pd.DataFrame(columns=READING_COLUMNS)
        return pd.concat(frames, ignore_index=True).sort_values(["sensor_id", "ts"], ignore_index=True)
