"""The Met Office WOW API: observations by site or bounding box, and which stations are live.

`GET observations/byversion` with `site_id` or a bounding box, `start_time` and `end_time` (ISO 8601),
and the header `Ocp-Apim-Subscription-Key`. Answers are `{"Object": [...]}` or, on some deployments, a
bare list. A station is live when it reported both air temperature and rainfall recently. When the API
cannot say, a saved byversion answer (the 2019 `wow_observations_europe.json`) stands in.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import SettingsError
from core.times import spans
from etl.settings import EtlSettings
from etl.sources.http import HttpPolicy, Source, SourceError

log = logging.getLogger(__name__)

# WOW's field names → ours, in one place.
FIELDS = {
    "SiteId": "site_id",
    "Latitude": "latitude",
    "Longitude": "longitude",
    "ReportEndDateTime": "ts",
    "DryBulbTemperature_Celsius": "air_temperature",
    "RainfallAmount_Millimetre": "rainfall",
    "RelativeHumidity": "relative_humidity",
    "IsOfficial": "is_official",
    "IsLatestVersion": "is_latest_version",
}
OBSERVATION_COLUMNS = list(FIELDS.values())
STORED_COLUMNS = ["site_id", "ts", "air_temperature", "rainfall", "relative_humidity"]  # wow_observations
STATION_COLUMNS = ["site_id", "latitude", "longitude", "is_official", "last_report_at", "is_live"]
MAX_SITE_WINDOW = dt.timedelta(days=31)
MAX_BOX_WINDOW = dt.timedelta(hours=6)


@dataclass(frozen=True)
class Box:
    """A bounding box in degrees."""

    top: float
    left: float
    bottom: float
    right: float


EUROPE = Box(top=72.0, left=-25.0, bottom=34.0, right=45.0)


def wow_time(when: dt.datetime) -> str:
    if when.tzinfo is None:
        raise ValueError("WOW times must be timezone-aware")
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")


def parse_observations(payload) -> tuple[pd.DataFrame, int]:
    """A byversion answer → one row per observation (latest versions only), and how many were malformed.

    Reports end at `ts` (UTC); rainfall is mm since the previous report. Any value may be missing.
    """
    records = payload.get("Object") if isinstance(payload, dict) else payload
    if not isinstance(records, list):
        raise ValueError("the answer is neither {'Object': [...]} nor a list")
    frame = pd.DataFrame.from_records([r for r in records if isinstance(r, dict)], columns=list(FIELDS))
    skipped = len(records) - len(frame)
    frame = frame.rename(columns=FIELDS)
    frame["ts"] = pd.to_datetime(frame["ts"], format="ISO8601", utc=True, errors="coerce")
    for column in ("latitude", "longitude", "air_temperature", "rainfall", "relative_humidity"):
        frame[column] = pd.to_numeric(frame[column], errors="coerce")
    usable = frame["ts"].notna() & np.array([_site_id_ok(v) for v in frame["site_id"]], dtype=bool)
    skipped += int((~usable).sum())
    frame = frame[usable & (frame["is_latest_version"] != False)].copy()  # noqa: E712 - None counts as latest
    frame["site_id"] = frame["site_id"].astype(str)
    frame["is_official"] = frame["is_official"].map(lambda v: v if isinstance(v, bool) else None)
    frame = frame.drop(columns="is_latest_version")
    frame = frame.drop_duplicates(["site_id", "ts"], keep="last")
    return frame.sort_values(["site_id", "ts"], ignore_index=True), skipped


def _site_id_ok(value) -> bool:
    """WOW site ids are numbers or GUIDs, up to 36 characters."""
    if isinstance(value, str):
        return 0 < len(value) <= 36
    return isinstance(value, int) and not isinstance(value, bool)


def live_stations(observations: pd.DataFrame, now: dt.datetime, hours: float) -> pd.DataFrame:
    """One row per site seen, with its last report of both temperature and rainfall, and whether that
    is within `hours` of `now`."""
    if observations.empty:
        return pd.DataFrame(columns=STATION_COLUMNS)
    complete = observations[observations["air_temperature"].notna() & observations["rainfall"].notna()]
    last_complete = complete.groupby("site_id")["ts"].max().rename("last_report_at")
    sites = observations.sort_values("ts").groupby("site_id").last()[["latitude", "longitude", "is_official"]]
    stations = sites.join(last_complete).reset_index()
    stations = stations[stations["latitude"].between(-90, 90) & stations["longitude"].between(-180, 180)]
    since = pd.Timestamp(now) - pd.Timedelta(hours=hours)
    stations["is_live"] = stations["last_report_at"].notna() & (stations["last_report_at"] >= since)
    return stations[STATION_COLUMNS].reset_index(drop=True)


def read_byversion_file(path: str | Path) -> pd.DataFrame:
    """Observations from a saved byversion answer (the fallback station list)."""
    try:
        payload = json.loads(Path(path).read_text())
        observations, skipped = parse_observations(payload)
    except (OSError, ValueError) as exc:
        raise SettingsError(f"WOW_STATIONS_FILE {path}: {exc}") from None
    if skipped:
        log.warning("%s: skipped %d malformed observations", path, skipped)
    return observations


class WowClient:
    """The WOW API at the configured base URL, with the configured key and retry policy."""

    def __init__(self, settings: EtlSettings):
        key = settings.wow_api_key.get_secret_value() if settings.wow_api_key else ""
        policy = HttpPolicy(settings.http_timeout_s, settings.http_attempts, settings.http_backoff_s)
        self.source = Source("WOW API", settings.wow_api_url, {"Ocp-Apim-Subscription-Key": key}, policy)
        self.has_key = bool(key)
        self.live_hours = settings.wow_live_hours
        self.stations_file = settings.wow_stations_file

    def _observations(self, params: dict, what: str) -> pd.DataFrame:
        payload = self.source.request_json("GET", "observations/byversion", what, params=params)
        try:
            observations, skipped = parse_observations(payload)
        except ValueError as exc:
            raise SourceError(f"WOW API {what}: {exc}") from None
        if skipped:
            log.warning("WOW API %s: skipped %d malformed observations", what, skipped)
        return observations

    def get_site_observations(self, site_id: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        """One station's observations with reports ending in [start, end]."""
        frames = [
            self._observations(
                {"site_id": site_id, "start_time": wow_time(a), "end_time": wow_time(b)},
                f"observations of site {site_id} {a:%Y-%m-%d %H:%M}..{b:%Y-%m-%d %H:%M}",
            )
            for a, b in spans(start, end, MAX_SITE_WINDOW)
        ]
        return _concat(frames, OBSERVATION_COLUMNS[:-1])

    def get_box_observations(self, box: Box, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
        """Every station's observations inside a bounding box, reports ending in [start, end]."""
        frames = []
        for a, b in spans(start, end, MAX_BOX_WINDOW):
            params = {
                "top_left_lat": box.top,
                "top_left_long": box.left,
                "bottom_right_lat": box.bottom,
                "bottom_right_long": box.right,
                "start_time": wow_time(a),
                "end_time": wow_time(b),
            }
            frames.append(
                self._observations(params, f"observations in box {a:%Y-%m-%d %H:%M}..{b:%Y-%m-%d %H:%M}")
            )
        return _concat(frames, OBSERVATION_COLUMNS[:-1])

    def get_live_stations(self, now: dt.datetime, box: Box = EUROPE) -> tuple[pd.DataFrame, str]:
        """The stations in `box` with whether each is live at `now`, and where the list came from."""
        recent = self.get_recent(now, box)
        return recent.stations, recent.origin

    def get_recent(self, now: dt.datetime, box: Box = EUROPE) -> Recent:
        """Every station's reports of the last WOW_LIVE_HOURS in `box`, and the stations judged by them.

        When the API fails (or no key is set) and a saved byversion file is configured, the file stands
        in for the station list, judged live relative to its own latest report; it brings no
        observations worth keeping.
        """
        try:
            if not self.has_key:
                raise SourceError("WOW API: no WOW_API_KEY set")
            since = now - dt.timedelta(hours=self.live_hours)
            observations = self.get_box_observations(box, since, now)
            return Recent(live_stations(observations, now, self.live_hours), observations, since, "WOW API")
        except SourceError as exc:
            if self.stations_file is None:
                raise
            log.warning("%s; using the saved station list %s", exc, self.stations_file)
        observations = read_byversion_file(self.stations_file)
        latest = observations["ts"].max() if len(observations) else now
        stations = live_stations(observations, latest, self.live_hours)
        return Recent(stations, observations.iloc[:0], None, str(self.stations_file))


@dataclass(frozen=True)
class Recent:
    """What a look at the last hours of WOW gives: the stations, their observations since `since`
    (None when none came), and where it all came from."""

    stations: pd.DataFrame
    observations: pd.DataFrame
    since: dt.datetime | None
    origin: str


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if len(f)]
    if not frames:
        return pd.DataFrame(columns=columns)
    return pd.concat(frames, ignore_index=True).drop_duplicates(["site_id", "ts"], keep="last")
