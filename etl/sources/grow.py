"""The Thingful GROW API: sensors (locations), their series, and their readings.

`get_*` calls the API; `parse_*` turns an answer into a DataFrame and counts the records it had to skip.
All calls are POSTs with `Authorization: Bearer <key>`. Timestamps are `yyyymmddHHMMSS` in UTC. A reading
request names at most 10 sensors and spans at most 10 days, so longer fetches are split into windows.
Variables arrive as one series each and are joined by timestamp, never by position.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.schema import ID_PATTERN, is_id
from core.times import grow_stamp, spans
from core.vocabulary import GROW_CODES, GROW_DATA_SOURCE, SENSOR_VARIABLES
from etl.quarantine import REFUSED, REPAIRED, Quarantined, clean_text, number
from etl.settings import EtlSettings
from etl.sources.batch import READING_COLUMNS, SENSOR_COLUMNS, TEXT_WIDTHS, Batch
from etl.sources.http import HttpPolicy, Source, SourceError, in_order

log = logging.getLogger(__name__)

SENSORS_SOURCE = "grow sensors"  # the quarantine's names of the two kinds of GROW record
READINGS_SOURCE = "grow readings"
MAX_LOCATIONS = 10
MAX_WINDOW = dt.timedelta(days=10)
NO_DATA = -9999.0
# The API's variable codes and our column names; calibrated soil moisture is the soil moisture we keep.
VARIABLES = {f"{GROW_DATA_SOURCE}.{GROW_CODES[name]}": name for name in SENSOR_VARIABLES}


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

    def field(a: int, b: int) -> np.ndarray:
        return (digits[:, a:b] * 10 ** np.arange(b - a - 1, -1, -1)).sum(axis=1)

    year, month, day = field(0, 4), field(4, 6), field(6, 8)
    hour, minute, second = field(8, 10), field(10, 12), field(12, 14)
    valid &= (
        (year >= 1970)
        & (month >= 1)
        & (month <= 12)
        & (day >= 1)
        & (day <= 31)
        & (hour < 24)
        & (minute < 60)
        & (second < 60)
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


def parse_locations(payload) -> tuple[pd.DataFrame, list[Quarantined]]:
    """`entity/locations/get` → one row per sensor, and the records that could not be taken as they came.

    X is the longitude and Y the latitude, whatever some published examples show. A record without a
    usable code or coordinates is refused; text too long for its column or holding NUL is repaired (cut,
    cleaned); an owner id outside the id pattern is dropped. Both kinds are quarantined.
    """
    if not isinstance(payload, dict) or not isinstance(payload.get("Locations"), dict):
        raise ValueError("the answer has no Locations object")
    rows, quarantined = [], []
    for key, record in payload["Locations"].items():
        try:
            code = record.get("Code") or str(key).split("#", 1)[1]
        except (AttributeError, IndexError):
            quarantined.append(
                Quarantined(SENSORS_SOURCE, str(key), REFUSED, "not a location record", record)
            )
            continue
        if not is_id(code):
            why = f"sensor code outside the id pattern {ID_PATTERN}"
            quarantined.append(Quarantined(SENSORS_SOURCE, str(code), REFUSED, why, record))
            continue
        try:
            latitude, longitude = float(record["Y"]), float(record["X"])
            if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
                raise ValueError
        except (KeyError, TypeError, ValueError, OverflowError):
            why = "no coordinates in range (Y latitude, X longitude)"
            quarantined.append(Quarantined(SENSORS_SOURCE, code, REFUSED, why, record))
            continue
        name = record.get("Name")
        row = {
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
        repairs = []
        for column, width in TEXT_WIDTHS.items():
            row[column], problem = clean_text(row[column], width)
            if problem:
                repairs.append(f"{column}: {problem}")
        if row["owner_id"] is not None and not is_id(row["owner_id"]):
            row["owner_id"] = None
            repairs.append("owner id outside the id pattern: stored as unknown")
        if repairs:
            quarantined.append(Quarantined(SENSORS_SOURCE, code, REPAIRED, "; ".join(repairs), record))
        rows.append(row)
    frame = pd.DataFrame(rows, columns=SENSOR_COLUMNS)
    for column in ("first_sample_at", "last_sample_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame.drop_duplicates("sensor_id", keep="last").reset_index(drop=True), quarantined


def _serial_from_name(name) -> str | None:
    """Flower Power names end with the serial ("… soil sensor PI040297AA4A030551")."""
    if isinstance(name, str) and name.split() and name.split()[-1].startswith("PI"):
        return name.split()[-1]
    return None


@dataclass(frozen=True)
class Samples:
    """The samples of a `timeSeries/get` answer, long form: one item per sample, in answer order. A
    sample's sensor and variable are those of its series (`entry`), so what holds per sensor is worked
    out once per series, not once per sample."""

    entry_codes: list[str]  # per series kept: its sensor
    entry_variables: np.ndarray  # per series kept: index into VARIABLES' names (int64)
    entry: np.ndarray  # per sample: the series it belongs to (int64)
    stamps: np.ndarray  # datetime64[s], NaT where unreadable
    readable: np.ndarray  # the stamp could be read
    values: np.ndarray  # float64; NaN where the value is not a number
    no_data: np.ndarray  # the value is the series' NoDataValue
    raw_values: list  # as they came, for the quarantine
    raw_stamps: list
    series: set  # (code, variable name) of every series the answer holds
    extra: dict  # code → samples of series we do not keep (raw soil moisture) or malformed entries

    @property
    def variables(self) -> np.ndarray:
        """The variable of each sample: index into VARIABLES' names."""
        return self.entry_variables[self.entry]


def samples_of(payload) -> Samples:
    """`timeSeries/get` → every sample with its sensor and variable; ValueError if there is no Data list."""
    if not isinstance(payload, dict) or not isinstance(payload.get("Data"), list):
        raise ValueError("the answer has no Data list")
    names = list(VARIABLES.values())
    codes, variables, lengths, no_data, raw_values, raw_stamps = [], [], [], [], [], []
    series, extra = set(), {}
    for entry in payload["Data"]:
        if not isinstance(entry, dict):
            continue  # not a series: whatever it held is missing, and the sensor's gap says so
        variable_code, code = entry.get("VariableCode"), entry.get("LocationCode")
        variable = VARIABLES.get(variable_code) if isinstance(variable_code, str) else None
        if not code:
            code = str(entry.get("LocationIdentifier", "")).rsplit("#", 1)[-1]
        if not isinstance(code, str):  # a list or an object where a code should be
            continue
        points = entry.get("Data")
        if variable is None or not code or not isinstance(points, list):
            # a series we do not keep, such as raw soil moisture, or no series at all
            extra[code] = extra.get(code, 0) + (len(points) if isinstance(points, list) else 0)
            continue
        values, stamps = _point_fields(points)
        raw_values += values
        raw_stamps.append(stamps)
        series.add((code, variable))
        codes.append(code)
        variables.append(names.index(variable))
        lengths.append(len(points))
        no_data.append(number(entry.get("NoDataValue", NO_DATA)))

    entry = np.repeat(np.arange(len(codes)), lengths)
    value = _numbers(raw_values)
    when, readable = _series_stamps(raw_stamps)
    return Samples(
        entry_codes=codes,
        entry_variables=np.array(variables, dtype=np.int64),
        entry=entry,
        stamps=when,
        readable=readable,
        values=value,
        no_data=value == np.array(no_data, dtype=np.float64)[entry],
        raw_values=raw_values,
        raw_stamps=[stamp for stamps in raw_stamps for stamp in stamps],
        series=series,
        extra=extra,
    )


def _series_stamps(stamps_of_series: list[list]) -> tuple[np.ndarray, np.ndarray]:
    """The stamps of every series, parsed (see parse_grow_timestamps). A sensor's variables usually come
    with the same stamps: each distinct list is parsed once."""
    distinct: list[list] = []
    which = []
    for stamps in stamps_of_series:
        # The series of one sensor come together: compare with the last few distinct lists only.
        match = next(
            (k for k in range(len(distinct) - 1, max(len(distinct) - 5, -1), -1) if distinct[k] == stamps),
            None,
        )
        if match is None:
            distinct.append(stamps)
            match = len(distinct) - 1
        which.append(match)
    if not distinct:
        return np.array([], "M8[s]"), np.array([], bool)
    when, readable = parse_grow_timestamps([stamp for stamps in distinct for stamp in stamps])
    ends = np.cumsum([len(stamps) for stamps in distinct])
    starts = ends - [len(stamps) for stamps in distinct]
    pieces = [slice(starts[k], ends[k]) for k in which]
    return np.concatenate([when[p] for p in pieces]), np.concatenate([readable[p] for p in pieces])


@dataclass(frozen=True)
class Answer:
    """An answer held against its request: the readings to store, the sensors it did not fully answer
    for (with why), the records quarantined, and counts of what was dropped."""

    readings: pd.DataFrame
    incomplete: dict[str, str]
    quarantined: list[Quarantined]
    counts: dict[str, int]


def check_answer(
    payload, codes: Sequence[str], start: dt.datetime, end: dt.datetime, not_after: dt.datetime
) -> Answer:
    """Take from an answer exactly what was asked: the requested sensors and variables, samples in
    [start, end]. A requested sensor or variable missing from the answer, a sample that had to be
    refused (unreadable, or stamped after `not_after`: a wrong clock) or a value that cannot be a
    reading (Infinity, 1e999, outside the variable's possible range; stored as missing) leaves its
    sensor incomplete for this window, so it is asked again. Samples of sensors not asked for and
    samples outside the window are dropped and counted."""
    samples = samples_of(payload)
    names = list(VARIABLES.values())
    requested = set(codes)
    asked = np.array([code in requested for code in samples.entry_codes], dtype=bool)[samples.entry]
    counts = {
        "unrequested": int((~asked).sum()) + sum(n for c, n in samples.extra.items() if c not in requested)
    }
    incomplete: dict[str, list[str]] = {}

    def note(code: str, why: str) -> None:
        incomplete.setdefault(code, []).append(why)

    partial = []  # sensors with some variables left out: their rows wait for a full answer
    for code in codes:
        missing = [n for n in names if (code, n) not in samples.series]
        if len(missing) == len(names):
            note(code, "left out of the answer")
        elif missing:
            note(code, f"{', '.join(missing)} left out of the answer")
            partial.append(code)

    limit, first, last = (np.datetime64(_naive(t), "s") for t in (not_after, start, end))
    future = asked & samples.readable & (samples.stamps > limit)
    unreadable = asked & (~samples.readable | _not_numbers(samples.values, samples.raw_values))
    inside = asked & samples.readable & ~future & (samples.stamps >= first) & (samples.stamps <= last)
    counts["outside_window"] = int((asked & samples.readable & ~future & ~inside).sum())
    value = np.where(samples.no_data, np.nan, samples.values)
    low = np.array([SENSOR_VARIABLES[n].possible_low for n in names])[samples.variables]
    high = np.array([SENSOR_VARIABLES[n].possible_high for n in names])[samples.variables]
    impossible = inside & ~samples.no_data & ~((value >= low) & (value <= high)) & ~unreadable
    waiting = np.array([code in partial for code in samples.entry_codes], dtype=bool)[samples.entry]
    keep = inside & ~unreadable & ~waiting
    value = np.where(impossible, np.nan, value)

    quarantined = []
    for flags, action, why in (
        (future, REFUSED, f"stamped in the future (after {not_after:%Y-%m-%d %H:%M} UTC)"),
        (unreadable & asked, REFUSED, "unreadable sample"),
        (impossible, REPAIRED, "not a possible reading: stored as missing"),
    ):
        for i in np.flatnonzero(flags):
            series = samples.entry[i]
            code, variable = samples.entry_codes[series], names[samples.entry_variables[series]]
            record = {
                "LocationCode": code,
                "VariableCode": f"{GROW_DATA_SOURCE}.{GROW_CODES[variable]}",
                "DateTime": samples.raw_stamps[i],
                "Value": samples.raw_values[i],
            }
            quarantined.append(Quarantined(READINGS_SOURCE, code, action, f"{variable} {why}", record))
            note(code, f"{variable} {why}")
    counts["future"] = int(future.sum())
    if keep.any():
        sensor_of_series, sensors = pd.factorize(pd.Index(samples.entry_codes, dtype=object))
        series = samples.entry[keep]
        readings = join_by_timestamp(
            sensor_of_series[series],
            np.asarray(sensors, dtype=object),
            samples.entry_variables[series],
            samples.stamps[keep],
            value[keep],
            names,
        )
    else:
        readings = pd.DataFrame(columns=READING_COLUMNS)
    reasons = {code: "; ".join(dict.fromkeys(why)) for code, why in incomplete.items()}
    return Answer(readings, reasons, quarantined, counts)


def _naive(when: dt.datetime) -> dt.datetime:
    return when.astimezone(dt.UTC).replace(tzinfo=None)


def _not_numbers(values: np.ndarray, raw: list) -> np.ndarray:
    """Which samples had no number at all ("warm", null): malformed. A number that is not finite
    (Infinity, 1e999, NaN) is a number, and an impossible reading."""
    result = np.zeros(len(values), dtype=bool)
    for i in np.flatnonzero(np.isnan(values)):
        result[i] = not isinstance(raw[i], float)
    return result


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
    except (TypeError, ValueError, OverflowError):
        return np.array([number(v) for v in raw], dtype=np.float64)


def join_by_timestamp(sensors, codes, variables, stamps, values, names: list[str]) -> pd.DataFrame:
    """Long samples (sensor, variable, time, value) → a row per (sensor, time) and a column per variable.
    `sensors` index the sensor codes `codes`."""
    ts = stamps.astype("datetime64[s]").astype(np.int64)
    order = np.lexsort((ts, sensors))
    sensors, ts = sensors[order], ts[order]
    new_row = np.ones(len(order), dtype=bool)
    new_row[1:] = (sensors[1:] != sensors[:-1]) | (ts[1:] != ts[:-1])
    row = np.cumsum(new_row) - 1
    table = np.full((int(row[-1]) + 1, len(names)), np.nan)
    table[row, variables[order]] = values[order]
    frame = pd.DataFrame(table, columns=names)
    frame.insert(0, "sensor_id", codes[sensors[new_row]])
    frame.insert(1, "ts", pd.to_datetime(ts[new_row], unit="s", utc=True).as_unit("us"))
    return frame


def bearer(key: str) -> str:
    """The Authorization header for a key. 2019's back end sent the grow-api secret's value as the header
    itself, so a stored value may already read `Bearer …`: it is used as it is, not doubled."""
    key = key.strip()
    return key if key[:7].lower() == "bearer " else f"Bearer {key}"


class GrowClient:
    """The GROW API at the configured base URL, with the configured key and retry policy."""

    name = "grow"
    state_key = "grow"  # its name in fetch_state
    max_sensors = MAX_LOCATIONS

    def __init__(self, settings: EtlSettings):
        key = settings.grow_api_key.get_secret_value() if settings.grow_api_key else ""
        policy = HttpPolicy.from_settings(settings)
        self.source = Source("GROW API", settings.grow_api_url, {"Authorization": bearer(key)}, policy)
        self.workers = settings.fetch_workers
        self.settings = settings

    def not_after(self) -> dt.datetime:
        """The latest time a sample may be stamped: now, plus the tolerance for clocks a little ahead."""
        return self.settings.now() + dt.timedelta(hours=self.settings.future_tolerance_hours)

    def get_sensors(self) -> tuple[pd.DataFrame, list[Quarantined]]:
        """Every sensor the API knows, with owner, place and the span of its samples, and the records
        that could not be taken as they came."""
        payload = self.source.request_json(
            "POST", "entity/locations/get", "sensor list", json={"DataSourceCodes": [GROW_DATA_SOURCE]}
        )
        try:
            sensors, quarantined = parse_locations(payload)
        except (ValueError, TypeError, OverflowError) as exc:
            raise SourceError(f"GROW API sensor list: {exc}") from None
        if quarantined:
            log.warning(
                "GROW API sensor list: %d records refused or repaired (quarantined)", len(quarantined)
            )
        return sensors, quarantined

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
            answer = check_answer(payload, codes, start, end, self.not_after())
        except SourceError as exc:
            return Batch.failed(codes, start, end, exc)
        except (ValueError, TypeError, OverflowError) as exc:
            # An answer shaped like nothing we know: the request counts as failed (its sensors are asked
            # again), never as a crash of the night.
            return Batch.failed(codes, start, end, SourceError(f"GROW API {what}: malformed answer ({exc})"))
        if answer.incomplete:
            log.warning(
                "GROW API %s: incomplete for %s",
                what,
                "; ".join(f"{code}: {why}" for code, why in answer.incomplete.items()),
            )
        return Batch(
            tuple(codes),
            start,
            end,
            answer.readings,
            None,
            answer.incomplete,
            answer.quarantined,
            answer.counts,
        )

    def request_windows(self, codes: Sequence[str], start: dt.datetime, end: dt.datetime):
        return request_windows(codes, start, end)

    def iter_readings(self, codes: Sequence[str], start: dt.datetime, end: dt.datetime) -> Iterator[Batch]:
        """Every request of a fetch, in order; see iter_windows."""
        return self.iter_windows(request_windows(codes, start, end))

    def iter_windows(
        self, windows: Sequence[tuple[Sequence[str], dt.datetime, dt.datetime]]
    ) -> Iterator[Batch]:
        """Run requests in a bounded pool; batches come back in the order of `windows`, and only a few
        are ever waiting, however slowly the caller takes them."""
        return in_order(lambda window: self.get_readings_window(*window), windows, self.workers, "grow")

    def get_readings(self, codes: Sequence[str], start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        """All readings of these sensors in [start, end]; SourceError if any request failed for good."""
        frames, failures = [], []
        for batch in self.iter_readings(codes, start, end):
            if batch.error is not None:
                failures.append(batch.error)
            elif batch.incomplete:
                what = "; ".join(f"{code}: {why}" for code, why in batch.incomplete.items())
                failures.append(SourceError(f"GROW API answered incompletely ({what})"))
            elif len(batch.readings):
                frames.append(batch.readings)
        if failures:
            more = f" (and {len(failures) - 1} more failed requests)" if len(failures) > 1 else ""
            raise SourceError(f"{failures[0]}{more}")
        if not frames:
            return pd.DataFrame(columns=READING_COLUMNS)
        return pd.concat(frames, ignore_index=True).sort_values(["sensor_id", "ts"], ignore_index=True)
