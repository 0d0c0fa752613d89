"""A gardener's own files: CSV from a logger, and ISMN station files, read into our sensors and readings.

A folder holds either kind, side by side:

- **CSV**, described by `mapping.json` in the folder (or one named on the command line): which column
  holds the time (and its time zone, UTC unless said), which holds each variable and in which unit, and
  which column names the sensor (long format: many sensors in a file); a file without that column is one
  sensor's, named by the file (`bed-3.csv` is sensor `file:bed-3`). Where the sensors stand comes from
  `sensors.csv` (sensor, latitude, longitude, and optionally name and owner).

      {"time": {"column": "timestamp", "timezone": "Europe/Berlin"},
       "sensor_column": "logger",
       "variables": {"soil_moisture": {"column": "VWC", "unit": "m³/m³"},
                     "air_temperature": {"column": "T", "unit": "°C"}}}

- **ISMN** "header + values" files (`*.stm`, as the International Soil Moisture Network exports them):
  a header line (CSE, network, station, latitude, longitude, elevation, depth from, depth to, sensor),
  then `yyyy/mm/dd HH:MM value flag provider-flag` in UTC. The variable is in the file name (`_sm_`
  soil moisture in m³/m³, `_ta_` air temperature in °C); a station is one sensor, its shallowest soil
  moisture depth kept. A value ISMN flags D (dubious) or C (implausible) is still a reading: it is kept,
  and each stretch of values flagged alike becomes imported history (kind `ismn-flag`, shown grey with
  the sensor's history, never deciding its health, like 2019's anomalies). Rows flagged M hold nothing
  measured: they are set aside.

Every row is held to the same rules as the APIs' answers (`etl.quarantine`): a time that cannot be read
or lies in the future is refused, a value no sensor can send is stored as missing, both quarantined
with the file and line; a row's problem never stops the import. Sensor ids carry `file:`.
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import GrowWowError
from core.vocabulary import LIGHT_PER_LUX, SENSOR_VARIABLES, AnomalyKind
from detection.detect import ANOMALY_COLUMNS
from etl.quarantine import REFUSED, Quarantined, clean_text
from etl.sources.batch import READING_COLUMNS, SENSOR_COLUMNS, TEXT_WIDTHS, Batch, checked_readings
from etl.sources.http import SourceError

PREFIX = "file:"
SENSORS_SOURCE = "file sensors"
READINGS_SOURCE = "file readings"
MAPPING, SENSORS_FILE = "mapping.json", "sensors.csv"
# Each variable's units a file may use: (factor, offset) to ours.
UNITS = {
    "soil_moisture": {"%": (1.0, 0.0), "m³/m³": (100.0, 0.0), "m3/m3": (100.0, 0.0)},
    "air_temperature": {"°C": (1.0, 0.0), "C": (1.0, 0.0), "K": (1.0, -273.15), "°F": (5 / 9, -160 / 9)},
    "light": {"mol/m²/d": (1.0, 0.0), "lx": (LIGHT_PER_LUX, 0.0), "lux": (LIGHT_PER_LUX, 0.0)},
    "battery_level": {"%": (1.0, 0.0)},
}
ISMN_VARIABLES = {"sm": ("soil_moisture", "m³/m³"), "ta": ("air_temperature", "°C")}
ISMN_GOOD, ISMN_MISSING = "G", "M"
# What ISMN's quality flags say of a value (its flag list; several are joined by commas).
ISMN_FLAGS = {
    "C01": "below 0 m³/m³",
    "C02": "above 0.6 m³/m³",
    "C03": "above the soil's saturation point (HWSD)",
    "D01": "soil temperature in situ below 0 °C",
    "D02": "air temperature in situ below 0 °C",
    "D03": "GLDAS soil temperature below 0 °C",
    "D04": "rising while the station's gauge saw no rain",
    "D05": "rising while GLDAS saw no rain",
    "D06": "a spike",
    "D07": "a negative jump",
    "D08": "a positive jump",
    "D09": "low and constant for 12 h or more",
    "D10": "a saturated plateau of 12 h or more",
}
NOT_AN_ID = re.compile(r"[^A-Za-z0-9_.@\-]+")


class FilesError(GrowWowError):
    """The folder or its mapping cannot be read as described: nothing is loaded."""


@dataclass
class Folder:
    """What a folder holds, in our terms."""

    sensors: pd.DataFrame
    readings: pd.DataFrame
    quarantined: list[Quarantined] = field(default_factory=list)
    files: int = 0
    history: pd.DataFrame = field(default_factory=lambda: pd.DataFrame(columns=ANOMALY_COLUMNS))


def sensor_id(name: str) -> str:
    """Our id for a file's sensor name: `file:` and the name with anything outside the id pattern as -."""
    return f"{PREFIX}{NOT_AN_ID.sub('-', str(name).strip())[:58]}"


def convert(values: pd.Series, variable: str, unit: str) -> np.ndarray:
    if unit not in UNITS[variable]:
        known = ", ".join(UNITS[variable])
        raise FilesError(f"{variable} in {unit!r}: the units known for it are {known}")
    factor, offset = UNITS[variable][unit]
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float) * factor + offset


def read_csv_files(folder: Path, mapping: dict, not_after: dt.datetime) -> Folder:
    """The CSV files of a folder, as the mapping describes them."""
    try:
        time_column = mapping["time"]["column"]
        zone = mapping["time"].get("timezone", "UTC")
        variables = {v: (spec["column"], spec["unit"]) for v, spec in mapping["variables"].items()}
    except (KeyError, TypeError, AttributeError) as exc:
        raise FilesError(f"{MAPPING}: needs time.column and variables.<name>.column/unit ({exc})") from None
    unknown = sorted(set(variables) - set(SENSOR_VARIABLES))
    if unknown:
        raise FilesError(f"{MAPPING}: unknown variables {unknown}; ours are {list(SENSOR_VARIABLES)}")
    sensor_column = mapping.get("sensor_column")
    stated_separator, decimal = mapping.get("separator"), mapping.get("decimal")
    if stated_separator not in (None, *SEPARATORS) or decimal not in (None, ".", ","):
        raise FilesError(f'{MAPPING}: separator is one of , ; or a tab ("\\t"), decimal "." or ","')
    frames, quarantined, files = [], [], 0
    for path in _csv_files(folder):
        files += 1
        try:
            table = _read_table(path, stated_separator)
        except Unreadable as exc:
            quarantined.append(Quarantined(READINGS_SOURCE, None, REFUSED, str(exc), path.name))
            continue
        if table is None:
            quarantined.append(Quarantined(READINGS_SOURCE, None, REFUSED, "empty file", path.name))
            continue
        table, separator = table.cells, table.separator
        needed = [
            time_column,
            *(c for c, _ in variables.values()),
        ]
        missing = [c for c in needed if c not in table.columns]
        if missing:
            columns = _brief(", ".join(table.columns), 200, quoted=False)
            raise FilesError(f"{path.name}: no column {', '.join(missing)} (columns: {columns})")
        # A file without the sensor column is one sensor's, named by the file.
        long = sensor_column is not None and sensor_column in table.columns
        names = table[sensor_column] if long else pd.Series(path.stem, index=table.index)
        frame = pd.DataFrame({"sensor_id": names.map(sensor_id)})
        where = [f"{path.name} line {i + 2}" for i in range(len(table))]
        for variable in SENSOR_VARIABLES:
            if variable in variables:
                column, unit = variables[variable]
                mark = decimal or ("." if separator == "," else ",")
                numbers, unread = _numbers(table[column], unit, mark)
                frame[variable] = convert(numbers, variable, unit)
                quarantined += [
                    Quarantined(
                        READINGS_SOURCE,
                        frame.at[i, "sensor_id"],
                        REFUSED,
                        f"column {column}: {_brief(table.at[i, column], 40)} is not a number",
                        where[i],
                    )
                    for i in np.flatnonzero(unread.to_numpy())
                ]
            else:
                frame[variable] = np.nan
        times, changing = _times(table[time_column], zone)
        rows, refused = checked_readings(READINGS_SOURCE, frame, times, where, not_after, changing)
        frames.append(rows)
        quarantined += refused
    return Folder(_sensors_file(folder), _joined(frames), quarantined, files)


ISMN_STATIC = "_static_variables.csv"
MAX_COLUMNS = 1_000  # a logger writes a few dozen; more is no sensor file (pandas' renaming is quadratic)
# A year of one logger every minute is about 40 MB, of a hundred sensors every 15 minutes in one long file
# about 200 MB; a larger file is read into memory by no one (split it by month or sensor).
MAX_FILE_BYTES = 256_000_000
SEPARATORS = (",", ";", "\t")
BOMS = ((b"\xef\xbb\xbf", "utf-8-sig"), (b"\xff\xfe", "utf-16"), (b"\xfe\xff", "utf-16"))


class Unreadable(ValueError):
    """A file that cannot be a sensor file: refused alone, in one line, the others read."""


@dataclass
class Table:
    """A CSV file's cells as text, and the separator its fields were split by."""

    cells: pd.DataFrame
    separator: str


def _read_table(path: Path, separator: str | None = None) -> Table | None:
    """A CSV file as text columns; None when it holds nothing. Sniffed before it is parsed: its encoding
    from its byte order mark (Excel's "Unicode text" is UTF-16), else UTF-8, else Windows' Latin-1, as
    loggers' software often writes (°C is then one byte); its separator from its header (comma, semicolon
    or tab) unless `separator` says; and its header, which must name at most MAX_COLUMNS columns, none
    twice."""
    raw = _sized_bytes(path)
    if not raw.strip():
        return None
    encoding = next((name for bom, name in BOMS if raw.startswith(bom)), None)
    if encoding is None and b"\x00" in raw:
        raise Unreadable("holds NUL bytes: not a text file (a UTF-16 file needs its byte order mark)")
    text = None
    for candidate in [encoding] if encoding else ["utf-8", "cp1252"]:
        try:
            text = raw.decode(candidate)
            break
        except UnicodeDecodeError:
            continue
    if text is None:
        raise Unreadable("neither UTF-8 nor Latin-1 text")
    text = text.lstrip("\ufeff")
    if "\x00" in text:
        raise Unreadable("holds NUL characters: not a sensor file")
    header = text.split("\n", 1)[0].rstrip("\r")
    separator = separator or max(SEPARATORS, key=header.count)
    names, seen = [name.strip().strip('"') for name in header.split(separator)], set()
    for name in names:
        if name in seen:
            raise Unreadable(f"its header repeats the column name {_brief(name)}")
        seen.add(name)
    if len(names) > MAX_COLUMNS:
        raise Unreadable(f"its header names {len(names):,} columns: not a sensor file")
    try:
        cells = pd.read_csv(io.StringIO(text), sep=separator, dtype=str, keep_default_na=False)
    except pd.errors.EmptyDataError:
        return None
    except pd.errors.ParserError as exc:
        raise Unreadable(f"not readable as CSV ({_brief(str(exc).splitlines()[0], quoted=False)})") from None
    if not isinstance(cells.index, pd.RangeIndex):  # pandas took the extra fields' first as an index
        raise Unreadable("its rows have more fields than its header names")
    return Table(cells, separator)


def _sized_bytes(path: Path) -> bytes:
    """A file's bytes, read only if it is no larger than MAX_FILE_BYTES."""
    size = path.stat().st_size
    if size > MAX_FILE_BYTES:
        raise Unreadable(f"{_size(size)}: larger than the {_size(MAX_FILE_BYTES)} a file may be (split it)")
    return path.read_bytes()


def _size(count: int) -> str:
    """A byte count in words: `10 kB`, `3 MB`, `2.5 GB`."""
    for unit, scale in (("GB", 10**9), ("MB", 10**6), ("kB", 10**3)):
        if count >= scale:
            return f"{count / scale:.3g} {unit}"
    return f"{count} bytes"


def _brief(text: str, limit: int = 80, quoted: bool = True) -> str:
    """`text` for a message: printable, and cut to `limit` characters."""
    cleaned, _ = clean_text(text, limit)
    return repr(cleaned) if quoted else cleaned


def _numbers(cells: pd.Series, unit: str, decimal: str) -> tuple[pd.Series, pd.Series]:
    """Text cells as numbers, as the file wrote them: with its `decimal` mark (a European spreadsheet's
    is a comma: the mapping says so, or its fields are not comma-separated), and a trailing % where the
    unit is %. Also, per cell, whether it held text that is no number (empty cells are missing)."""
    text = cells.str.strip()
    if unit == "%":
        text = text.str.removesuffix("%").str.rstrip()
    if decimal == ",":
        text = text.str.replace(",", ".", regex=False)
    numbers = pd.to_numeric(text.replace("", np.nan), errors="coerce")
    return numbers, numbers.isna() & (text != "")


OFFSET = r"(?:Z|[+-]\d\d:?\d\d)$"


def _times(texts: pd.Series, zone: str) -> tuple[pd.Series, np.ndarray]:
    """Times in UTC, and which of them fell into a clock change of `zone` (an hour that does not exist,
    or comes twice: without its UTC offset such a time cannot be told). Times written with their
    offset (…+02:00, …Z) are taken as written, whatever `zone` says; the others are in `zone`."""
    texts = texts.replace("", np.nan)
    with_offset = texts.fillna("").str.strip().str.contains(OFFSET).to_numpy()
    result = pd.Series(pd.NaT, index=texts.index, dtype="datetime64[us, UTC]")
    if with_offset.any():
        parsed = pd.to_datetime(texts[with_offset], errors="coerce", format="ISO8601", utc=True)
        result[with_offset] = parsed.dt.as_unit("us")
    naive = pd.to_datetime(texts[~with_offset], errors="coerce", format="ISO8601")
    try:
        local = naive.dt.tz_localize(zone, ambiguous="NaT", nonexistent="NaT")
    except Exception as exc:  # an unknown zone name
        raise FilesError(f"{MAPPING}: time zone {zone!r}: {exc}") from None
    result[~with_offset] = local.dt.tz_convert("UTC").dt.as_unit("us")
    changing = np.zeros(len(texts), dtype=bool)
    changing[~with_offset] = (naive.notna() & local.isna()).to_numpy()
    return result, changing


def _sensors_file(folder: Path) -> pd.DataFrame:
    path = folder / SENSORS_FILE
    if not path.exists():
        return pd.DataFrame(columns=SENSOR_COLUMNS)
    try:
        read = _read_table(path)
    except Unreadable as exc:
        raise FilesError(f"{SENSORS_FILE}: {exc}") from None
    table = read.cells if read is not None else None
    if table is None or not {"sensor", "latitude", "longitude"} <= set(table.columns):
        raise FilesError(f"{SENSORS_FILE}: needs the columns sensor, latitude, longitude (and name, owner)")
    return pd.DataFrame(
        {
            "sensor_id": table["sensor"].map(sensor_id),
            "identifier": table["sensor"].map(lambda name: f"file#{name}"),
            "name": table.get("name", table["sensor"]),
            "serial_number": None,
            "owner_id": _owners(table["owner"]) if "owner" in table else None,
            "latitude": pd.to_numeric(table["latitude"], errors="coerce"),
            "longitude": pd.to_numeric(table["longitude"], errors="coerce"),
            "first_sample_at": pd.NaT,
            "last_sample_at": pd.NaT,
        }
    )


def _owners(names: pd.Series) -> pd.Series:
    """Owner names as ids (a blank one: unknown)."""
    blank = names.str.strip() == ""
    return names.map(sensor_id).str.removeprefix(PREFIX).mask(blank, None)


def read_ismn_files(folder: Path, not_after: dt.datetime) -> Folder:
    """The ISMN header + values files of a folder and the folders below it (a download as ISMN ships it:
    NETWORK/STATION/*.stm): a station is a sensor, its shallowest soil moisture."""
    frames, quarantined, histories, stations, files = [], [], [], {}, 0
    shallowest: dict[str, tuple[float, pd.DataFrame, list, pd.DataFrame]] = {}  # station → its soil moisture
    for path in sorted(folder.rglob("*.stm")):
        match = re.search(r"_(sm|ta)_-?\d", path.name)  # air temperature's depths are heights: -2.0
        if not match:
            continue
        files += 1
        variable, unit = ISMN_VARIABLES[match[1]]
        try:
            lines = _sized_bytes(path).decode("utf-8", errors="replace").splitlines()
        except Unreadable as exc:
            quarantined.append(Quarantined(READINGS_SOURCE, None, REFUSED, str(exc), path.name))
            continue
        try:
            header = lines[0].split()
            network, station = header[1], header[2]
            latitude, longitude, depth = float(header[3]), float(header[4]), float(header[6])
        except (IndexError, ValueError):
            why = "the first line is not an ISMN header (CSE network station latitude longitude …)"
            raise FilesError(f"{path.name}: {why}") from None
        code = sensor_id(f"{network}.{station}")
        stations[code] = {
            "name": f"{station} ({network}, ISMN)",
            "latitude": latitude,
            "longitude": longitude,
        }
        rows, refused, flagged = _ismn_rows(path, lines[1:], code, variable, unit, not_after)
        if variable != "soil_moisture":
            frames.append(rows)
            quarantined += refused
            histories.append(flagged)
        elif code not in shallowest or depth < shallowest[code][0]:
            shallowest[code] = (depth, rows, refused, flagged)
    for _, rows, refused, flagged in shallowest.values():
        frames.append(rows)
        quarantined += refused
        histories.append(flagged)
    sensors = pd.DataFrame(
        [
            {
                "sensor_id": code,
                "identifier": f"ismn#{code.removeprefix(PREFIX)}",
                "name": about["name"],
                "serial_number": None,
                "owner_id": None,
                "latitude": about["latitude"],
                "longitude": about["longitude"],
                "first_sample_at": pd.NaT,
                "last_sample_at": pd.NaT,
            }
            for code, about in stations.items()
        ],
        columns=SENSOR_COLUMNS,
    )
    history = pd.concat(histories, ignore_index=True) if histories else pd.DataFrame(columns=ANOMALY_COLUMNS)
    return Folder(sensors, _joined(frames), quarantined, files, history)


def _ismn_rows(path: Path, lines: list[str], code: str, variable: str, unit: str, not_after):
    """One ISMN file's values held to the APIs' rules, whatever ISMN's flag (its M rows, which hold
    nothing, set aside), and the stretches ISMN flagged as imported history."""
    body = [line.split() for line in lines if line.strip()]
    where = [f"{path.name} line {i + 2}" for i in range(len(body))]
    flags = [parts[3] if len(parts) >= 4 else "" for parts in body]
    measured = np.array([flag != ISMN_MISSING for flag in flags], dtype=bool)
    quarantined = [
        Quarantined(READINGS_SOURCE, code, REFUSED, "ISMN flag M: nothing measured", where[i])
        for i in np.flatnonzero(~measured)
    ]
    kept = [parts for parts, ok in zip(body, measured) if ok]
    texts = pd.Series([f"{p[0].replace('/', '-')}T{p[1]}" for p in kept], dtype=object)
    frame = pd.DataFrame(
        {"sensor_id": code, **dict.fromkeys(SENSOR_VARIABLES, np.nan)}, index=range(len(kept))
    )
    frame[variable] = convert(
        pd.Series([p[2] if len(p) > 2 else "" for p in kept], dtype=object), variable, unit
    )
    times = pd.to_datetime(texts, errors="coerce", format="ISO8601", utc=True).dt.as_unit("us")
    rows, refused = checked_readings(
        READINGS_SOURCE, frame, times, [w for w, ok in zip(where, measured) if ok], not_after
    )
    kept_flags = pd.Series([flag for flag, ok in zip(flags, measured) if ok], dtype=object)
    flagged = ismn_history(code, variable, kept_flags, times.where(times <= pd.Timestamp(not_after)))
    return rows, quarantined + refused, flagged


def ismn_history(code: str, variable: str, flags: pd.Series, times: pd.Series) -> pd.DataFrame:
    """Each stretch of consecutive values ISMN flagged alike (not G) as one anomaly of kind ismn-flag,
    from its first time to its last, its explanation ISMN's flags in words. Rows with no time are no
    readings: they neither start nor break a stretch."""
    rows = pd.DataFrame({"flag": flags.to_numpy(), "ts": times.to_numpy()}).dropna(subset=["ts"])
    stretch = rows["flag"].ne(rows["flag"].shift()).cumsum()
    rows = rows.assign(stretch=stretch)[~rows["flag"].str.startswith(ISMN_GOOD)]
    spans = rows.groupby("stretch").agg(flag=("flag", "first"), start_at=("ts", "min"), end_at=("ts", "max"))
    kind = AnomalyKind.ISMN_FLAG
    history = pd.DataFrame(
        {
            "sensor_id": code,
            "variable": variable,
            "kind": kind.value,
            "start_at": pd.to_datetime(spans["start_at"], utc=True),
            "end_at": pd.to_datetime(spans["end_at"], utc=True),
            "score": np.nan,
            "detector": kind.detector.value,
            "explanation": spans["flag"].map(ismn_explanation),
        }
    )
    return history[ANOMALY_COLUMNS].drop_duplicates(["start_at"], keep="last").reset_index(drop=True)


def ismn_explanation(flag: str) -> str:
    """ISMN's flags of a value in words: `C03,D10` → its two meanings."""
    codes = [code for code in flag.split(",") if code]
    words = "; ".join(ISMN_FLAGS.get(code, f"flag {code}") for code in codes) or "no flag given"
    return clean_text(f"ISMN flagged {flag}: {words}", 200)[0]


def _joined(frames: list[pd.DataFrame]) -> pd.DataFrame:
    """The rows of several files as one reading per sensor and time (variables from separate files side
    by side; a time written twice keeps its last value)."""
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=READING_COLUMNS)
    rows = pd.concat(frames, ignore_index=True)
    joined = rows.groupby(["sensor_id", "ts"], sort=True).last().reset_index()
    return joined[READING_COLUMNS]


def _csv_files(folder: Path) -> list[Path]:
    """A folder's CSV files of readings: not its sensors file, nor what ISMN ships beside its data
    (`*_static_variables.csv`: soil properties, read by no one here)."""
    return [
        path
        for path in sorted(folder.glob("*.csv"))
        if path.name != SENSORS_FILE and not path.name.endswith(ISMN_STATIC)
    ]


def read_folder(folder: Path, mapping_path: Path | None, not_after: dt.datetime) -> Folder:
    """Everything a folder holds: its CSV files (if it has a mapping) and its ISMN files. Sensors get
    the span of their readings; a sensor with readings but no position, or a position but nothing
    readable, is quarantined."""
    folder = Path(folder)
    if not folder.is_dir():
        raise FilesError(f"{folder}: no such folder")
    mapping_path = mapping_path or folder / MAPPING
    parts = [read_ismn_files(folder, not_after)]
    if mapping_path.exists():
        try:
            mapping = json.loads(mapping_path.read_text(encoding="utf-8"))
        except ValueError as exc:
            raise FilesError(f"{mapping_path.name}: not JSON ({exc})") from None
        parts.append(read_csv_files(folder, mapping, not_after))
    elif _csv_files(folder):
        raise FilesError(f"{folder}: CSV files need a {MAPPING} saying what their columns are")
    if not any(part.files for part in parts) and not (folder / SENSORS_FILE).exists():
        raise FilesError(f"{folder}: nothing to import (no CSV files beside a {MAPPING}, no ISMN .stm files)")
    readings = _joined([part.readings for part in parts])
    sensors = pd.concat(
        [part.sensors for part in parts if len(part.sensors)] or [parts[0].sensors], ignore_index=True
    )
    quarantined = [q for part in parts for q in part.quarantined]
    readings["ts"] = pd.to_datetime(readings["ts"], utc=True)
    span = readings.groupby("sensor_id")["ts"].agg(["min", "max"])
    for column, edge in (("first_sample_at", "min"), ("last_sample_at", "max")):
        sensors[column] = pd.to_datetime(sensors["sensor_id"].map(span[edge].to_dict()), utc=True)
    unplaced = sorted(set(span.index) - set(sensors["sensor_id"]))
    for code in unplaced:
        why = f"readings but no position: add it to {SENSORS_FILE}"
        quarantined.append(Quarantined(SENSORS_SOURCE, code, REFUSED, why, code))
    bad = (
        sensors["latitude"].isna()
        | sensors["longitude"].isna()
        | ~sensors["latitude"].between(-90, 90)
        | ~sensors["longitude"].between(-180, 180)
    )
    for code in sensors.loc[bad, "sensor_id"]:
        quarantined.append(Quarantined(SENSORS_SOURCE, code, REFUSED, "no position in range", code))
    sensors = sensors[~bad].drop_duplicates("sensor_id", keep="last").reset_index(drop=True)
    for column, width in TEXT_WIDTHS.items():
        sensors[column] = [
            clean_text(value, width)[0] if isinstance(value, str) else None for value in sensors[column]
        ]
    placed = set(sensors["sensor_id"])
    readings = readings[readings["sensor_id"].isin(placed)].reset_index(drop=True)
    histories = [part.history for part in parts if len(part.history)]
    history = pd.concat(histories, ignore_index=True) if histories else parts[0].history
    history = history[history["sensor_id"].isin(placed)].reset_index(drop=True)
    return Folder(sensors, readings, quarantined, sum(part.files for part in parts), history)


class FilesClient:
    """A folder of files as a nightly source (SENSOR_SOURCES=files, FILES_DIR, FILES_MAPPING): read whole
    each night, so rows a logger appends arrive like late uploads. The steps see it as any API."""

    name = "files"
    state_key = "files"
    max_sensors = 100  # no limit of its own: a request is a look into the folder already read

    def __init__(self, settings):
        self.settings = settings
        self._found: Folder | None = None

    def found(self) -> Folder:
        if self._found is None:
            if self.settings.files_dir is None:
                raise SourceError("files: FILES_DIR names no folder")
            not_after = self.settings.now() + dt.timedelta(hours=self.settings.future_tolerance_hours)
            try:
                self._found = read_folder(self.settings.files_dir, self.settings.files_mapping, not_after)
            except (FilesError, ValueError, OSError) as exc:  # the folder cannot be read: the night goes on
                raise SourceError(f"files: {exc}") from None
        return self._found

    def get_sensors(self) -> tuple[pd.DataFrame, list[Quarantined]]:
        found = self.found()
        return found.sensors, [q for q in found.quarantined if q.source == SENSORS_SOURCE]

    def request_windows(self, codes, start, end):
        size = self.max_sensors
        return [(tuple(codes[i : i + size]), start, end) for i in range(0, len(codes), size)]

    def get_readings_window(self, codes, start, end) -> Batch:
        try:
            found = self.found()
        except SourceError as exc:
            return Batch.failed(codes, start, end, exc)
        rows = found.readings
        inside = rows["sensor_id"].isin(codes) & (rows["ts"] >= start) & (rows["ts"] <= end)
        asked = set(codes)
        problems = [q for q in found.quarantined if q.source == READINGS_SOURCE and q.entity_id in asked]
        history = found.history
        flagged = (
            history["sensor_id"].isin(codes) & (history["start_at"] >= start) & (history["start_at"] <= end)
        )
        return Batch(
            tuple(codes),
            start,
            end,
            rows[inside].reset_index(drop=True),
            quarantined=problems,
            history=history[flagged].reset_index(drop=True),
        )

    def iter_windows(self, windows):
        return (self.get_readings_window(*window) for window in windows)
