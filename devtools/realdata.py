"""The real sensor corpus (`REALDATA_DIR`, by default `../shared/realdata`) read into plain frames.

Nothing here is written by this project: ISMN soil moisture files of TAHMO, AMMA-CATCH, SCAN Hawaii,
COSMOS and older networks with ISMN's own quality flags; the weather that SCAN Hawaii's stations record
beside their probes; the daily means of the real GROW sensors of Quinta Vale da Lama; flagit's test frame
with its four injected events. Each folder's README_PROVENANCE.md says where it comes from. The files are
only ever read from that folder, never copied into the repository.

    from devtools.realdata import ismn_soil_series, clean_windows
    windows = [w for series in ismn_soil_series() for w in clean_windows(series)]
"""

from __future__ import annotations

import io
import os
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path

import numpy as np
import pandas as pd

from core.times import HOUR

DEFAULT_DIR = Path(__file__).resolve().parent.parent.parent / "shared" / "realdata"
ISMN_FOLDERS = (  # the ISMN downloads holding soil moisture, each with its own layout
    "ismn_tahmo_ammacatch_smps",
    "ismn_scan_hawaii_qa4sm",
    "ismn_cosmos_smosmania",
    "ismn_multinetwork_pytesmo",
)
SCAN_HAWAII = "ismn_scan_hawaii_qa4sm"
VDL_DAILY = Path("grow_vdl_ludwa6") / "dailyData.csv"
FLAGIT_FRAME = Path("flagit_test_frame") / "flagit_test_dataframe.csv"

GOOD = "G"  # ISMN: a value that passed every check
MISSING_FLAG = "M"
MISSING_VALUE = -9999.0
PERCENT_PER_M3_M3 = 100.0  # volumetric water content: 0.25 m³/m³ is 25 %
# The top of the probe no deeper than 10 cm, what a garden sensor measures; SCAN's "10 cm" probe sits at
# 4 inches (0.1016 m) and counts as one.
SHALLOW_M = 0.1016
EPOCH = pd.Timestamp(0, tz="UTC")

# `NETWORK_NETWORK_STATION_var_from_to_sensor_start_end.stm`; station and sensor may hold '_' or ','.
FILE_NAME = re.compile(
    r"^(?P<prefix>.+)_(?P<variable>sm|ta|p|ts|su|sd|sweq)_(?P<depth_from>-?[\d.]+)_(?P<depth_to>-?[\d.]+)"
    r"_(?P<sensor>.+)_(?P<start>\d{8})_(?P<end>\d{8})\.stm$"
)
DATE = re.compile(r"^\d{4}/\d{2}/\d{2}$")
CSE_FIELDS = 15  # date time date time network network station lat lon elev from to value flag provider


class RealDataMissing(FileNotFoundError):
    """The real corpus is not where REALDATA_DIR (or its default) says."""


def realdata_dir() -> Path:
    """Where the real corpus is: REALDATA_DIR, else `../shared/realdata` beside the repository."""
    return Path(os.environ.get("REALDATA_DIR") or DEFAULT_DIR).expanduser().resolve()


def available() -> bool:
    """Whether the real corpus is there to read (its README and the ISMN folders)."""
    folder = realdata_dir()
    return (folder / "README.md").is_file() and all((folder / name).is_dir() for name in ISMN_FOLDERS)


def require() -> Path:
    """The corpus folder, or a clear error saying where it was looked for and how to point elsewhere."""
    if not available():
        raise RealDataMissing(
            f"the real sensor corpus is not at {realdata_dir()}: set REALDATA_DIR to the folder that holds "
            "ismn_tahmo_ammacatch_smps/, ismn_scan_hawaii_qa4sm/, grow_vdl_ludwa6/, …"
        )
    return realdata_dir()


# --- ISMN files -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IsmnFile:
    """One ISMN series: where and how it was measured, and its samples (ts UTC, value, ismn_flag,
    provider_flag), missing values as NaN."""

    network: str
    station: str
    variable: str  # sm (m³/m³), ta (°C), p (mm in the hour)
    depth_from: float
    depth_to: float
    sensor: str
    path: Path
    frame: pd.DataFrame


def read_stm(path: Path) -> IsmnFile:
    """An ISMN `.stm` file in whichever layout it comes: header + values (CR-only line endings too) or
    one CSE record per line (or all records on one line)."""
    text = Path(path).read_text(encoding="latin-1")  # text mode turns CR-only endings into lines
    first = text.split(maxsplit=1)[0] if text.strip() else ""
    if DATE.match(first):
        return _read_cse(Path(path), text)
    return _read_header_values(Path(path), text)


def _read_header_values(path: Path, text: str) -> IsmnFile:
    """`CSE Network Station lat lon elev from to sensor…` then `YYYY/MM/DD HH:MM value flag provider`."""
    header, _, body = text.partition("\n")
    fields = header.split()
    if len(fields) < 9:
        raise ValueError(f"{path.name}: the first line is not an ISMN header: {header[:80]!r}")
    named = FILE_NAME.match(path.name)
    frame = pd.read_csv(
        io.StringIO(body),
        sep=r"\s+",
        header=None,
        names=["date", "time", "value", "ismn_flag", "provider_flag"],
        dtype={"date": str, "time": str, "value": float, "ismn_flag": str, "provider_flag": str},
    )
    return IsmnFile(
        network=fields[1],
        station=_station_of(named, fields[2]),
        variable=named["variable"] if named else "sm",
        depth_from=float(fields[6]),
        depth_to=float(fields[7]),
        sensor=named["sensor"] if named else " ".join(fields[8:]),
        path=path,
        frame=_samples(frame),
    )


def _station_of(named: re.Match | None, header_station: str) -> str:
    """The station as its file names it (`AtebubuSHS,Atebubu`), which has no spaces; else the header's."""
    if named is None:
        return header_station
    parts = named["prefix"].split("_", 2)
    return parts[2] if len(parts) == 3 else header_station


def _read_cse(path: Path, text: str) -> IsmnFile:
    """The CSE layout: every record carries its network, station, position and depths."""
    tokens = np.array(text.split(), dtype=object)
    if len(tokens) % CSE_FIELDS:
        raise ValueError(f"{path.name}: {len(tokens)} fields are not whole CSE records of {CSE_FIELDS}")
    records = tokens.reshape(-1, CSE_FIELDS)
    frame = pd.DataFrame(
        {
            "date": records[:, 0].astype(str),
            "time": records[:, 1].astype(str),
            "value": records[:, 12].astype(float),
            "ismn_flag": records[:, 13].astype(str),
            "provider_flag": records[:, 14].astype(str),
        }
    )
    return IsmnFile(
        network=str(records[0, 4]),
        station=str(records[0, 6]),
        variable="sm",  # the CSE files here hold soil moisture only
        depth_from=float(records[0, 10]),
        depth_to=float(records[0, 11]),
        sensor="n.s.",  # the layout names no sensor
        path=path,
        frame=_samples(frame),
    )


def _samples(frame: pd.DataFrame) -> pd.DataFrame:
    """ts (UTC) from date and time; -9999 or ISMN flag M as missing; sorted, one sample per time."""
    ts = pd.to_datetime(frame["date"] + " " + frame["time"], format="%Y/%m/%d %H:%M", utc=True)
    flag = frame["ismn_flag"].fillna("").astype(str)
    value = frame["value"].astype(float)
    value = value.mask((value == MISSING_VALUE) | (flag == MISSING_FLAG))
    samples = pd.DataFrame(
        {"ts": ts, "value": value, "ismn_flag": flag, "provider_flag": frame["provider_flag"].astype(str)}
    )
    return samples.drop_duplicates("ts", keep="last").sort_values("ts", ignore_index=True)


# --- soil moisture series ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SoilSeries:
    """One probe's soil moisture: ts (UTC), soil_moisture (%), ismn_flag; `station` as the file names
    it, `collection` the corpus folder it came from."""

    series_id: str
    network: str
    station: str
    depth_from: float
    depth_to: float
    sensor: str
    collection: str
    frame: pd.DataFrame


def series_id(network: str, station: str, depth_from: float, sensor: str) -> str:
    """A stable id naming the probe: `ismn:TAHMO/AtebubuSHS,Atebubu/0.10/TEROS12`."""
    return f"ismn:{network}/{station}/{depth_from:.2f}/{sensor}"


def soil_series_of(ismn: IsmnFile, collection: str) -> SoilSeries:
    """An ISMN soil moisture file as a series in % (ISMN keeps m³/m³); missing samples left out."""
    frame = ismn.frame[ismn.frame["value"].notna()].reset_index(drop=True)
    frame = pd.DataFrame(
        {
            "ts": frame["ts"],
            "soil_moisture": (frame["value"] * PERCENT_PER_M3_M3).round(6),
            "ismn_flag": frame["ismn_flag"],
        }
    )
    return SoilSeries(
        series_id=series_id(ismn.network, ismn.station, ismn.depth_from, ismn.sensor),
        network=ismn.network,
        station=ismn.station,
        depth_from=ismn.depth_from,
        depth_to=ismn.depth_to,
        sensor=ismn.sensor,
        collection=collection,
        frame=frame,
    )


def ismn_soil_series(shallow: bool = True) -> tuple[SoilSeries, ...]:
    """Every ISMN soil moisture series of the corpus (only those starting ≤ 10 cm deep when `shallow`),
    in %, in a stable order. Series with no value at all are left out."""
    return _soil_series(require(), shallow)


@cache  # read once per folder: the benchmark asks several times
def _soil_series(folder: Path, shallow: bool) -> tuple[SoilSeries, ...]:
    found = []
    for collection in ISMN_FOLDERS:
        for path in sorted((folder / collection).rglob("*.stm")):
            named = FILE_NAME.match(path.name)
            if named and named["variable"] != "sm":
                continue  # not soil moisture: read only for the stations
            if named and shallow and float(named["depth_from"]) > SHALLOW_M:
                continue  # deep: no need to read it
            ismn = read_stm(path)
            if ismn.variable != "sm" or (shallow and ismn.depth_from > SHALLOW_M):
                continue
            series = soil_series_of(ismn, collection)
            if len(series.frame):
                found.append(series)
    return tuple(found)


# --- the stations beside SCAN Hawaii's probes --------------------------------------------------------------


def site_id_of(station: str) -> str:
    return f"scan:{station}"


def scan_hawaii_stations() -> pd.DataFrame:
    """The weather SCAN Hawaii's stations record beside their probes: site_id, ts (UTC),
    air_temperature (°C, 2 m), rainfall (mm in the hour). Only values ISMN flags G are kept."""
    return _stations(require()).copy()


@cache
def _stations(folder: Path) -> pd.DataFrame:
    columns = {"ta": "air_temperature", "p": "rainfall"}
    parts: dict[str, list[pd.Series]] = {column: [] for column in columns.values()}
    for path in sorted((folder / SCAN_HAWAII).rglob("*.stm")):
        named = FILE_NAME.match(path.name)
        if not named or named["variable"] not in columns:
            continue
        ismn = read_stm(path)
        good = ismn.frame[ismn.frame["value"].notna() & (ismn.frame["ismn_flag"] == GOOD)]
        index = pd.MultiIndex.from_arrays([pd.Series(site_id_of(ismn.station), index=good.index), good["ts"]])
        parts[columns[ismn.variable]].append(pd.Series(good["value"].to_numpy(), index=index))
    joined = {
        column: pd.concat(series)
        if series
        else pd.Series(dtype=float, index=pd.MultiIndex.from_arrays([[], []]))
        for column, series in parts.items()
    }
    stations = pd.DataFrame(joined).rename_axis(["site_id", "ts"]).reset_index()
    return stations.sort_values(["site_id", "ts"], ignore_index=True)


def station_links(series: list[SoilSeries] | tuple[SoilSeries, ...]) -> pd.DataFrame:
    """sensor_id (the series id), site_id, distance_km = 0: each SCAN Hawaii probe beside its own
    station, where that station recorded weather."""
    sites = set(scan_hawaii_stations()["site_id"])
    rows = [
        (s.series_id, site_id_of(s.station), 0.0)
        for s in series
        if s.collection == SCAN_HAWAII and site_id_of(s.station) in sites
    ]
    return pd.DataFrame(rows, columns=["sensor_id", "site_id", "distance_km"])


# --- clean windows --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Window:
    """`days` of one series' hourly samples, every one present and flagged G: ts, soil_moisture."""

    window_id: str
    series_id: str
    network: str
    station: str
    collection: str
    frame: pd.DataFrame

    @property
    def start(self) -> pd.Timestamp:
        return self.frame["ts"].iloc[0]

    @property
    def end(self) -> pd.Timestamp:
        return self.frame["ts"].iloc[-1]


def clean_windows(series: SoilSeries, days: int = 30) -> list[Window]:
    """Non-overlapping windows of `days` whole UTC days (from midnight) in which every hourly sample is
    present and flagged exactly G: 24 × days samples each."""
    frame = series.frame
    good = frame[(frame["ismn_flag"] == GOOD) & frame["soil_moisture"].notna()]
    good = good[good["ts"].dt.minute.eq(0) & good["ts"].dt.second.eq(0)]
    if good.empty:
        return []
    hours = ((good["ts"] - EPOCH) // HOUR).to_numpy()
    length = 24 * days
    windows = []
    for first, last in _runs_of_consecutive(hours):
        start = first + (-first) % 24  # the first midnight of the run
        while start + length - 1 <= last:
            rows = slice(np.searchsorted(hours, start), np.searchsorted(hours, start) + length)
            part = good.iloc[rows][["ts", "soil_moisture"]].reset_index(drop=True)
            windows.append(
                Window(
                    window_id=f"{series.series_id}@{part['ts'].iloc[0]:%Y-%m-%d}",
                    series_id=series.series_id,
                    network=series.network,
                    station=series.station,
                    collection=series.collection,
                    frame=part,
                )
            )
            start += length
    return windows


def _runs_of_consecutive(hours: np.ndarray) -> list[tuple[int, int]]:
    """(first, last) of each run of whole hours that follow one another without a gap."""
    breaks = np.flatnonzero(np.diff(hours) != 1)
    firsts = np.concatenate([[0], breaks + 1])
    lasts = np.concatenate([breaks, [len(hours) - 1]])
    return [(int(hours[a]), int(hours[b])) for a, b in zip(firsts, lasts)]


# --- real GROW: Vale da Lama ------------------------------------------------------------------------------


def vdl_daily() -> pd.DataFrame:
    """Vale da Lama's 218 Flower Power sensors, one daily mean a day: sensor_id (the FP id), ts (12:00
    UTC of the date: the middle of the day the mean covers), soil_moisture (%). Days with no sample
    (NAs_Ratio 1) or no value are left out."""
    raw = pd.read_csv(require() / VDL_DAILY, dtype={"id": str, "dates": str})
    present = raw[raw["soil_moisture_percent"].notna() & (raw["NAs_Ratio"] < 1)]
    ts = pd.to_datetime(present["dates"], format="%Y-%m-%d", utc=True) + pd.Timedelta(hours=12)
    return pd.DataFrame(
        {
            "sensor_id": present["id"],
            "ts": ts,
            "soil_moisture": present["soil_moisture_percent"].astype(float),
        }
    ).sort_values(["sensor_id", "ts"], ignore_index=True)


# --- flagit's test frame ----------------------------------------------------------------------------------

# The events flagit's tests inject, by row (its README; the break's 1.0 % holds rows 40-59 in the
# frame): what each is, and the flags ISMN would give.
FLAGIT_EVENTS = (
    ("spike", 30, 30, "D06"),
    ("negative_break", 40, 59, "D07/D09"),
    ("out_of_range", 70, 70, "C02/C03"),
    ("saturated_plateau", 80, 99, "D10"),
)


@dataclass(frozen=True)
class FlagitFrame:
    """flagit's test frame: ts (UTC), soil_moisture (%), air_temperature, soil_temperature,
    precipitation; and its injected events (kind, first_row, last_row, start, end, ismn_flags)."""

    frame: pd.DataFrame
    events: pd.DataFrame


def flagit_frame() -> FlagitFrame:
    raw = pd.read_csv(require() / FLAGIT_FRAME)
    frame = pd.DataFrame(
        {
            "ts": pd.to_datetime(raw["utc"], utc=True),
            "soil_moisture": raw["soil_moisture"].astype(float),
            "air_temperature": raw["air_temperature"].astype(float),
            "soil_temperature": raw["soil_temperature"].astype(float),
            "precipitation": raw["precipitation"].astype(float),
        }
    )
    events = pd.DataFrame(
        [
            (kind, first, last, frame["ts"].iloc[first], frame["ts"].iloc[last], flags)
            for kind, first, last, flags in FLAGIT_EVENTS
        ],
        columns=["kind", "first_row", "last_row", "start", "end", "ismn_flags"],
    )
    return FlagitFrame(frame, events)
