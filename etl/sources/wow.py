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
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from core.errors import SettingsError
from core.schema import is_id
from core.times import spans
from core.vocabulary import STATION_VARIABLES
from etl.quarantine import REFUSED, REPAIRED, Quarantined, number
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
        frame[column] = _floats(frame[column])
    usable = frame["ts"].notna() & np.array([_site_id_ok(v) for v in frame["site_id"]], dtype=bool)
    skipped += int((~usable).sum())
    frame = frame[usable & (frame["is_latest_version"] != False)].copy()  # noqa: E712 - None counts as latest
    frame["site_id"] = frame["site_id"].astype(str)
    frame["is_official"] = frame["is_official"].map(lambda v: v if isinstance(v, bool) else None)
    frame = frame.drop(columns="is_latest_version")
    frame = frame.drop_duplicates(["site_id", "ts"], keep="last")
    return frame.sort_values(["site_id", "ts"], ignore_index=True), skipped


def _site_id_ok(value) -> bool:
    """WOW site ids are numbers or GUIDs, up to 36 characters, within the id pattern."""
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    return isinstance(value, str) and len(value) <= 36 and is_id(value)


def _floats(series: pd.Series) -> pd.Series:
    """Values as floats, NaN where not a number; an integer too large for a float is infinite."""
    try:
        return pd.to_numeric(series, errors="coerce").astype(float)
    except (OverflowError, TypeError, ValueError):
        return series.map(number).astype(float)


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


OBSERVATIONS_SOURCE = "wow observations"  # the quarantine's name for WOW records


@dataclass(frozen=True)
class Answer:
    """Observations held against their request: the rows to keep, the sites not fully answered for
    (with why), the records quarantined, counts of what was dropped, and the sites seen in every
    window asked (for a bounding box: the stations it covered)."""

    observations: pd.DataFrame
    incomplete: dict[str, str] = field(default_factory=dict)
    quarantined: list[Quarantined] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=dict)
    seen_in_every_window: frozenset[str] = frozenset()


def check_observations(
    payload,
    start: dt.datetime,
    end: dt.datetime,
    not_after: dt.datetime,
    site: str | None = None,
    box: Box | None = None,
) -> Answer:
    """Take from a byversion answer exactly what was asked: the site (or the stations inside the box),
    reports ending in [start, end]. A report stamped after `not_after` (a wrong clock) or unreadable is
    refused; a value that cannot be a report (Infinity, outside the variable's possible range) is stored
    as missing. Both are quarantined and leave their site incomplete, to be asked again; reports of
    sites not asked for or outside the window are dropped and counted.

    Works on plain arrays and builds one frame at the end: a night asks thousands of stations for a
    day each, and a frame operation per check would cost more than the request itself."""
    records = payload.get("Object") if isinstance(payload, dict) else payload
    if not isinstance(records, list):
        raise ValueError("the answer is neither {'Object': [...]} nor a list")
    quarantined, incomplete = [], {}

    def refuse(rows, action, why, site_ids=None):
        for i in np.flatnonzero(rows):
            site_id = None if site_ids is None else site_ids[i]
            quarantined.append(Quarantined(OBSERVATIONS_SOURCE, site_id, action, why, usable[i]))
            if site_id is not None and (site is None or site_id == site):
                incomplete.setdefault(site_id, why)

    usable = [r for r in records if isinstance(r, dict)]
    for record in records:
        if not isinstance(record, dict):
            quarantined.append(
                Quarantined(OBSERVATIONS_SOURCE, None, REFUSED, "not an observation record", record)
            )
    fields = {ours: [r.get(theirs) for r in usable] for theirs, ours in FIELDS.items()}
    ts = pd.to_datetime(pd.Series(fields["ts"], dtype=object), format="ISO8601", utc=True, errors="coerce")
    stamps = ts.to_numpy(dtype="datetime64[ns]")
    readable = ~np.isnat(stamps) & np.array([_site_id_ok(v) for v in fields["site_id"]], dtype=bool)
    refuse(~readable, REFUSED, "unreadable observation (time or site id)")
    site_ids = np.array([str(v) for v in fields["site_id"]], dtype=object)
    numbers = {c: _float_array(fields[c]) for c in ("latitude", "longitude", *STATION_VARIABLES)}

    if site is not None:
        asked = site_ids == site
    elif box is not None:
        latitude, longitude = numbers["latitude"], numbers["longitude"]
        asked = (latitude >= box.bottom) & (latitude <= box.top)
        asked &= (longitude >= box.left) & (longitude <= box.right)
    else:
        asked = np.ones(len(usable), dtype=bool)
    counts = {"unrequested": int((readable & ~asked).sum())}
    candidates = readable & asked
    future = candidates & (stamps > _utc64(not_after))
    refuse(future, REFUSED, f"stamped in the future (after {not_after:%Y-%m-%d %H:%M} UTC)", site_ids)
    counts["future"] = int(future.sum())
    candidates &= ~future
    inside = candidates & (stamps >= _utc64(start)) & (stamps <= _utc64(end))
    counts["outside_window"] = int((candidates & ~inside).sum())
    for name, variable in STATION_VARIABLES.items():
        values, sent = numbers[name], _sent(fields[name])
        impossible = inside & sent & ~((values >= variable.possible_low) & (values <= variable.possible_high))
        refuse(impossible, REPAIRED, f"{name} not a possible report: stored as missing", site_ids)
        values[impossible] = np.nan
    keep = np.flatnonzero(inside & np.array([v != False for v in fields["is_latest_version"]], dtype=bool))  # noqa: E712 - None counts as latest
    official = [fields["is_official"][i] for i in keep]
    observations = pd.DataFrame(
        {
            "site_id": site_ids[keep],
            "latitude": numbers["latitude"][keep],
            "longitude": numbers["longitude"][keep],
            "ts": ts.array[keep],
            **{name: numbers[name][keep] for name in STATION_VARIABLES},
            "is_official": pd.Series([v if isinstance(v, bool) else None for v in official], dtype=object),
        }
    )
    kept = stamps[keep]
    if not (len(set(site_ids[keep])) <= 1 and (kept[1:] > kept[:-1]).all()):  # one site in order: done
        observations = observations.drop_duplicates(["site_id", "ts"], keep="last").sort_values(
            ["site_id", "ts"], ignore_index=True
        )
    return Answer(observations, incomplete, quarantined, counts, frozenset(observations["site_id"]))


def _utc64(when: dt.datetime) -> np.datetime64:
    return np.datetime64(pd.Timestamp(when).tz_convert("UTC").tz_localize(None), "ns")


def _float_array(values: list) -> np.ndarray:
    """Values as a float array, NaN where not a number; plain numbers (the usual answer) go straight."""
    if {type(v) for v in values} <= {float, int, type(None)}:
        try:
            return np.array([np.nan if v is None else v for v in values], dtype=float)
        except OverflowError:
            pass
    return _floats(pd.Series(values, dtype=object)).to_numpy(dtype=float, copy=True)


def _sent(values: list) -> np.ndarray:
    """Which values were sent at all: not null (a text such as "NaN" or "warm" was sent, and is an
    impossible report)."""
    return np.array([v is not None and not (isinstance(v, float) and v != v) for v in values], dtype=bool)


class WowClient:
    """The WOW API at the configured base URL, with the configured key and retry policy."""

    def __init__(self, settings: EtlSettings):
        key = settings.wow_api_key.get_secret_value() if settings.wow_api_key else ""
        policy = HttpPolicy.from_settings(settings)
        self.source = Source("WOW API", settings.wow_api_url, {"Ocp-Apim-Subscription-Key": key}, policy)
        self.has_key = bool(key)
        self.live_hours = settings.wow_live_hours
        self.stations_file = settings.wow_stations_file
        self.settings = settings

    def not_after(self) -> dt.datetime:
        """The latest time a report may be stamped: now, plus the tolerance for clocks a little ahead."""
        return self.settings.now() + dt.timedelta(hours=self.settings.future_tolerance_hours)

    def _answer(self, params: dict, what: str, start, end, site=None, box=None) -> Answer:
        if not self.has_key:
            raise SourceError("WOW API: no WOW_API_KEY set")
        payload = self.source.request_json("GET", "observations/byversion", what, params=params)
        try:
            answer = check_observations(payload, start, end, self.not_after(), site=site, box=box)
        except (ValueError, TypeError, OverflowError) as exc:
            # An answer shaped like nothing we know fails this request, never the night.
            raise SourceError(f"WOW API {what}: malformed answer ({exc})") from None
        if answer.quarantined:
            log.warning("WOW API %s: %d records refused or repaired", what, len(answer.quarantined))
        return answer

    def get_site_observations(self, site_id: str, start: dt.datetime, end: dt.datetime) -> Answer:
        """One station's observations with reports ending in [start, end]."""
        answers = []
        for a, b in spans(start, end, MAX_SITE_WINDOW):
            params = {"site_id": site_id, "start_time": wow_time(a), "end_time": wow_time(b)}
            what = f"observations of site {site_id} {a:%Y-%m-%d %H:%M}..{b:%Y-%m-%d %H:%M}"
            answers.append(_partial(answers, a, self._answer, params, what, a, b, site=site_id))
        return _combine(answers)

    def get_box_observations(self, box: Box, start: dt.datetime, end: dt.datetime) -> Answer:
        """Every station's observations inside a bounding box, reports ending in [start, end]."""
        answers = []
        for a, b in spans(start, end, MAX_BOX_WINDOW):
            params = {
                "top_left_lat": box.top,
                "top_left_long": box.left,
                "bottom_right_lat": box.bottom,
                "bottom_right_long": box.right,
                "start_time": wow_time(a),
                "end_time": wow_time(b),
            }
            what = f"observations in box {a:%Y-%m-%d %H:%M}..{b:%Y-%m-%d %H:%M}"
            answers.append(_partial(answers, a, self._answer, params, what, a, b, box=box))
        return _combine(answers)

    def get_live_stations(self, now: dt.datetime, box: Box = EUROPE) -> tuple[pd.DataFrame, str]:
        """The stations in `box` with whether each is live at `now`, and where the list came from: the
        API, or the saved station file when the API cannot say."""
        try:
            recent = self.get_recent(now, box)
        except SourceError as exc:
            if self.stations_file is None:
                raise
            log.warning("%s; using the saved station list %s", exc, self.stations_file)
            recent = self.saved_stations()
        return recent.stations, recent.origin

    def get_recent(self, now: dt.datetime, box: Box = EUROPE) -> Recent:
        """Every station's reports of the last WOW_LIVE_HOURS in `box`, and the stations judged by them.
        SourceError when the API cannot answer."""
        since = now - dt.timedelta(hours=self.live_hours)
        answer = self.get_box_observations(box, since, now)
        stations = live_stations(answer.observations, now, self.live_hours)
        return Recent(stations, answer.observations, since, "WOW API", answer)

    def saved_stations(self) -> Recent:
        """The saved byversion file (WOW_STATIONS_FILE) as a station list, judged live relative to its
        own latest report; it brings no observations worth keeping. Only for seeding an empty database:
        the file's dates are not today's."""
        if self.stations_file is None:
            raise SettingsError("no WOW_STATIONS_FILE is set")
        observations = read_byversion_file(self.stations_file)
        latest = observations["ts"].max() if len(observations) else dt.datetime.now(dt.UTC)
        stations = live_stations(observations, latest, self.live_hours)
        return Recent(
            stations, observations.iloc[:0], None, str(self.stations_file), Answer(observations.iloc[:0])
        )


@dataclass(frozen=True)
class Recent:
    """What a look at the last hours of WOW gives: the stations, their observations since `since`
    (None when none came), where it all came from, and the answer it was taken from."""

    stations: pd.DataFrame
    observations: pd.DataFrame
    since: dt.datetime | None
    origin: str
    answer: Answer


class PartialAnswer(SourceError):
    """A call of several windows failed at one: `answer` holds what the windows before it gave (their
    records to quarantine, their observations), answered up to `failed_from`, where the failed one began."""

    def __init__(self, message: str, answer: Answer, failed_from: dt.datetime):
        super().__init__(message)
        self.answer, self.failed_from = answer, failed_from


def _partial(answers: list[Answer], window_start: dt.datetime, ask, *args, **kwargs) -> Answer:
    """Ask for the next window; if it fails, fail with what the earlier windows gave."""
    try:
        return ask(*args, **kwargs)
    except SourceError as exc:
        raise PartialAnswer(str(exc), _combine(answers), window_start) from None


def _combine(answers: list[Answer]) -> Answer:
    """The answers of consecutive windows as one: a site is seen in every window only if each saw it."""
    frames = [a.observations for a in answers if len(a.observations)]
    if frames:
        observations = pd.concat(frames, ignore_index=True).drop_duplicates(["site_id", "ts"], keep="last")
    else:
        observations = pd.DataFrame(columns=OBSERVATION_COLUMNS[:-1])
    incomplete, counts = {}, {}
    for a in answers:
        for site, why in a.incomplete.items():
            incomplete.setdefault(site, why)
        for name, n in a.counts.items():
            counts[name] = counts.get(name, 0) + n
    seen = frozenset.intersection(*(a.seen_in_every_window for a in answers)) if answers else frozenset()
    return Answer(observations, incomplete, [q for a in answers for q in a.quarantined], counts, seen)
