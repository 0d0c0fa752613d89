"""openSenseMap (the open platform behind senseBox): boxes with a soil-moisture sensor, and their readings.

The contract, from the API's documentation (docs.opensensemap.org) and its open-source server
(github.com/sensebox/openSenseMap-API):

- `GET /boxes?bbox=lon_sw,lat_sw,lon_ne,lat_ne&grouptag=…&exposure=…` lists boxes, and `GET /boxes/:boxId`
  one box: `_id` (24 hex digits), `name`, `exposure` (indoor, outdoor, mobile, unknown), `grouptag`,
  `currentLocation.coordinates` ([longitude, latitude, height]), `createdAt`, `lastMeasurementAt`,
  and `sensors`: `_id`, `title`, `unit`, `sensorType`. No key is needed to read.
- `GET /boxes/:boxId/data/:sensorId?from-date=…&to-date=…&format=json` gives one sensor's measurements,
  newest first, at most 10,000 of them, over at most a month: `createdAt` (RFC 3339, milliseconds, UTC),
  `value` (a string) and `location`. from-date and to-date go together; from after to is refused.

How it becomes ours: a box is one sensor, `osem:<box id>`, and its owner is the box too (openSenseMap
shows no user). Indoor and mobile boxes, and boxes without a soil-moisture sensor, are skipped and
counted. Each box's sensors are matched to our variables by title and unit (`OPENSENSEMAP_VARIABLES`),
light converted from lux. A senseBox measures every minute or so; readings are kept as 15-minute means
(bins from the quarter hour), the cadence detection works at, so a request window starts on a quarter
hour and a bin is never split between two requests. A window holding more than 10,000 measurements is
read page by page, each ending just before the oldest measurement of the one before.
"""

from __future__ import annotations

import datetime as dt
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from core.times import as_utc, spans
from core.vocabulary import OPENSENSEMAP_VARIABLES, SENSOR_VARIABLES, SOURCE_PREFIXES
from etl.quarantine import REFUSED, REPAIRED, Quarantined, clean_text
from etl.settings import EtlSettings
from etl.sources.batch import READING_COLUMNS, SENSOR_COLUMNS, TEXT_WIDTHS, Batch
from etl.sources.http import HttpPolicy, Source, SourceError, in_order

log = logging.getLogger(__name__)

NAME = "opensensemap"
STATE_KEY = "osem"  # its name in fetch_state
PREFIX = next(p for p, name in SOURCE_PREFIXES.items() if name == NAME)  # ids apart from GROW's
SENSORS_SOURCE = "osem boxes"  # the quarantine's names of its two kinds of record
READINGS_SOURCE = "osem measurements"
MAX_WINDOW = dt.timedelta(days=28)  # the API serves at most a month per request
PAGE = 10_000  # measurements per answer, newest first
BIN = pd.Timedelta(minutes=15)
SKIPPED_EXPOSURES = {"indoor", "mobile"}  # a sensor indoors or on the move is no garden's
BOX_ID_LENGTH = 24


def sensor_id_of(box_id: str) -> str:
    return f"{PREFIX}{box_id}"


def box_of(sensor_id: str) -> str:
    return sensor_id.removeprefix(PREFIX)


def _is_box_id(value) -> bool:
    return (
        isinstance(value, str) and len(value) == BOX_ID_LENGTH and all(c in "0123456789abcdef" for c in value)
    )


def variables_of(box: dict) -> dict[str, str]:
    """A box's sensors that measure our variables: {variable: the openSenseMap sensor id}, matched by
    title and unit (the first sensor of each)."""
    found: dict[str, str] = {}
    for sensor in box.get("sensors") or []:
        if not isinstance(sensor, dict) or not _is_box_id(sensor.get("_id")):
            continue
        title = str(sensor.get("title", "")).strip().lower()
        unit = str(sensor.get("unit", "")).strip()
        for variable, how in OPENSENSEMAP_VARIABLES.items():
            if variable not in found and title in how.titles and unit == how.unit:
                found[variable] = sensor["_id"]
    return found


@dataclass
class Boxes:
    """The boxes listed, as our sensors, with each one's sensors by variable and what was skipped."""

    sensors: pd.DataFrame
    variables: dict[str, dict[str, str]]  # box id → {variable: sensor id}
    quarantined: list[Quarantined] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)


def parse_boxes(payload) -> Boxes:
    """`GET /boxes` (a list) or `GET /boxes/:id` (one box) → our sensors. A box without a usable id or
    position is refused (quarantined); indoor or mobile boxes and boxes with no soil moisture are
    skipped and counted by why."""
    items = payload if isinstance(payload, list) else [payload]
    if not all(isinstance(item, dict) for item in items):
        raise ValueError("the answer is not a list of boxes")
    rows, variables, quarantined, skipped = [], {}, [], {}
    for box in items:
        box_id = box.get("_id")
        if not _is_box_id(box_id):
            quarantined.append(Quarantined(SENSORS_SOURCE, str(box_id)[:64], REFUSED, "no box id", box))
            continue
        exposure = str(box.get("exposure", "unknown"))
        if exposure in SKIPPED_EXPOSURES:
            skipped[exposure] = skipped.get(exposure, 0) + 1
            continue
        measured = variables_of(box)
        if "soil_moisture" not in measured:
            skipped["no soil moisture"] = skipped.get("no soil moisture", 0) + 1
            continue
        try:
            longitude, latitude = (float(x) for x in box["currentLocation"]["coordinates"][:2])
            if not (-90 <= latitude <= 90 and -180 <= longitude <= 180):
                raise ValueError
        except (KeyError, TypeError, ValueError, OverflowError):
            why = "no position in range (currentLocation.coordinates: longitude, latitude)"
            quarantined.append(Quarantined(SENSORS_SOURCE, sensor_id_of(box_id), REFUSED, why, box))
            continue
        name, problem = clean_text(box.get("name"), TEXT_WIDTHS["name"])
        if problem:
            quarantined.append(
                Quarantined(SENSORS_SOURCE, sensor_id_of(box_id), REPAIRED, f"name: {problem}", box)
            )
        rows.append(
            {
                "sensor_id": sensor_id_of(box_id),
                "identifier": f"opensensemap#{box_id}",
                "name": name,
                "serial_number": None,
                "owner_id": sensor_id_of(box_id),  # openSenseMap shows no owner: the box stands for one
                "latitude": latitude,
                "longitude": longitude,
                "first_sample_at": box.get("createdAt"),
                "last_sample_at": box.get("lastMeasurementAt"),
            }
        )
        variables[box_id] = measured
    frame = pd.DataFrame(rows, columns=SENSOR_COLUMNS)
    for column in ("first_sample_at", "last_sample_at"):
        frame[column] = pd.to_datetime(frame[column], utc=True, errors="coerce", format="ISO8601")
    return Boxes(
        frame.drop_duplicates("sensor_id", keep="last").reset_index(drop=True),
        variables,
        quarantined,
        skipped,
    )


def measurements(
    payload, box_id: str, variable: str, not_after: dt.datetime
) -> tuple[pd.DataFrame, list[Quarantined]]:
    """One page of `GET /boxes/:box/data/:sensor` → (ts, value in our unit), and the records refused
    (a time that cannot be read, or after `not_after`) or repaired (a value that is no number, or that no
    sensor of the model can send: kept as missing). All at once: a page holds 10,000."""
    if not isinstance(payload, list):
        raise ValueError("the answer is not a list of measurements")
    how, ours = OPENSENSEMAP_VARIABLES[variable], SENSOR_VARIABLES[variable]
    records = [record if isinstance(record, dict) else {} for record in payload]
    stamps = pd.to_datetime(
        pd.Series([r.get("createdAt") for r in records], dtype=object),
        utc=True,
        errors="coerce",
        format="ISO8601",
    )
    raw = pd.Series([r.get("value") for r in records], dtype=object)
    values = pd.to_numeric(raw, errors="coerce").to_numpy(dtype=float) * how.to_ours
    unreadable = stamps.isna().to_numpy()
    future = (stamps > pd.Timestamp(not_after)).to_numpy()
    impossible = ~(np.isfinite(values) & (values >= ours.possible_low) & (values <= ours.possible_high))
    code = sensor_id_of(box_id)
    quarantined = [
        Quarantined(
            READINGS_SOURCE,
            code,
            REFUSED if unreadable[i] or future[i] else REPAIRED,
            f"{variable}: "
            + (
                "measurement time unreadable"
                if unreadable[i]
                else "measurement stamped in the future"
                if future[i]
                else f"value {raw[i]!r} is no reading: stored as missing"
            ),
            payload[i],
        )
        for i in np.flatnonzero(unreadable | future | impossible)
    ]
    keep = ~(unreadable | future)
    values = np.where(impossible, np.nan, values)
    return pd.DataFrame({"ts": stamps[keep].reset_index(drop=True), variable: values[keep]}), quarantined


def quarter_hours(series: dict[str, pd.DataFrame], sensor_id: str) -> pd.DataFrame:
    """Each variable's measurements → 15-minute means from the quarter hour, the variables side by side
    (READING_COLUMNS; a variable the box does not measure is missing)."""
    binned = []
    for variable, frame in series.items():
        if len(frame):
            bins = frame["ts"].dt.floor(BIN)
            binned.append(frame[variable].groupby(bins).mean().rename(variable))
    if not binned:
        return pd.DataFrame(columns=READING_COLUMNS)
    joined = pd.concat(binned, axis=1, sort=True)
    joined.index.name = "ts"
    joined = joined.reset_index()
    joined.insert(0, "sensor_id", sensor_id)
    for column in READING_COLUMNS[2:]:
        if column not in joined:
            joined[column] = math.nan
    joined["ts"] = joined["ts"].dt.as_unit("us")
    return joined[READING_COLUMNS].astype({c: "float64" for c in READING_COLUMNS[2:]})


def request_windows(
    codes: Sequence[str], start: dt.datetime, end: dt.datetime
) -> list[tuple[tuple[str, ...], dt.datetime, dt.datetime]]:
    """One box per request, windows of at most MAX_WINDOW starting on a quarter hour."""
    first = pd.Timestamp(start).floor(BIN).to_pydatetime()
    return [((code,), a, b) for code in codes for a, b in spans(first, end, MAX_WINDOW)]


class OpenSenseMapClient:
    """openSenseMap at the configured base URL: the boxes the settings select (a bounding box, a
    grouptag, or a list of box ids) and their readings."""

    name = NAME
    state_key = STATE_KEY
    max_sensors = 1

    def __init__(self, settings: EtlSettings):
        policy = HttpPolicy.from_settings(settings)
        self.source = Source("openSenseMap API", settings.osem_api_url, {}, policy)
        self.workers = settings.fetch_workers
        self.settings = settings
        self.box_variables: dict[str, dict[str, str]] = {}

    def not_after(self) -> dt.datetime:
        return self.settings.now() + dt.timedelta(hours=self.settings.future_tolerance_hours)

    def get_sensors(self) -> tuple[pd.DataFrame, list[Quarantined]]:
        """The boxes selected, as sensors, and the records that could not be taken as they came."""
        settings = self.settings
        try:
            if settings.osem_box_ids:
                payload = self._boxes_by_id(
                    [box.strip() for box in settings.osem_box_ids.split(",") if box.strip()]
                )
            else:
                params = {"format": "json"}
                if settings.osem_bbox:
                    params["bbox"] = settings.osem_bbox
                if settings.osem_grouptag:
                    params["grouptag"] = settings.osem_grouptag
                payload = self.source.request_json("GET", "boxes", "box list", params=params)
            boxes = parse_boxes(payload)
        except (ValueError, TypeError, OverflowError) as exc:
            raise SourceError(f"openSenseMap API box list: {exc}") from None
        self.box_variables.update(boxes.variables)
        if boxes.skipped:
            log.info(
                "openSenseMap: %d boxes with soil moisture; skipped %s",
                len(boxes.sensors),
                ", ".join(f"{n} {why}" for why, n in sorted(boxes.skipped.items())),
            )
        return boxes.sensors, boxes.quarantined

    def request_windows(self, codes, start, end):
        return request_windows(codes, start, end)

    def _boxes_by_id(self, boxes: list[str]) -> list[dict]:
        """The boxes named, each asked on its own: one deleted (404) or refused is left out and logged;
        all of them failing is the source failing."""
        found, failures = [], []
        for box in boxes:
            try:
                found.append(self.source.request_json("GET", f"boxes/{box}", f"box {box}"))
            except SourceError as exc:
                failures.append(exc)
                log.warning("%s; the other boxes are read", exc)
        if failures and not found:
            raise failures[0]
        return found

    def _variables(self, box_id: str) -> dict[str, str]:
        if box_id not in self.box_variables:
            payload = self.source.request_json("GET", f"boxes/{box_id}", f"box {box_id}")
            self.box_variables[box_id] = variables_of(payload if isinstance(payload, dict) else {})
        return self.box_variables[box_id]

    def _pages(self, box_id: str, sensor: str, variable: str, start: dt.datetime, end: dt.datetime):
        """Every measurement of one sensor from `start` to the last millisecond of `end`'s second (the
        next window starts on the next second), page by page, newest first, 10,000 a page. A page ends at
        the oldest time of the page before, inclusive: measurements sharing that time are not lost, and
        those seen twice are dropped."""
        frames, quarantined = [], []
        to = pd.Timestamp(end).floor("s") + pd.Timedelta(milliseconds=999)
        not_after = self.not_after()
        while True:
            params = {"from-date": _rfc3339(start), "to-date": _rfc3339(to), "format": "json"}
            what = f"{variable} of box {box_id} {start:%Y-%m-%d %H:%M}..{to:%Y-%m-%d %H:%M}"
            payload = self.source.request_json("GET", f"boxes/{box_id}/data/{sensor}", what, params=params)
            page, refused = measurements(payload, box_id, variable, not_after)
            frames.append(page)
            quarantined += refused
            oldest = page["ts"].min()
            if len(payload) < PAGE or pd.isna(oldest) or oldest >= to or oldest <= pd.Timestamp(start):
                # The last page; or one whose times are all one (more than 10,000 measurements in a
                # millisecond cannot be paged: kept as they came).
                break
            to = oldest
        every = pd.concat(frames, ignore_index=True)
        return every.drop_duplicates(["ts", variable], ignore_index=True), quarantined

    def get_readings_window(self, codes: Sequence[str], start: dt.datetime, end: dt.datetime) -> Batch:
        """One box over one window: each of its variables' measurements, as 15-minute means."""
        (code,) = codes
        box_id = box_of(code)
        try:
            series, quarantined = {}, []
            for variable, sensor in self._variables(box_id).items():
                series[variable], refused = self._pages(box_id, sensor, variable, start, end)
                quarantined += refused
        except SourceError as exc:
            return Batch.failed(codes, start, end, exc)
        except (ValueError, TypeError, OverflowError, KeyError) as exc:
            error = SourceError(f"openSenseMap API box {box_id}: malformed answer ({exc})")
            return Batch.failed(codes, start, end, error)
        if "soil_moisture" not in series:
            error = SourceError(f"openSenseMap API box {box_id}: no soil-moisture sensor any more")
            return Batch.failed(codes, start, end, error)
        readings = quarter_hours(series, code)
        first, last = pd.Timestamp(start).floor(BIN), pd.Timestamp(end)
        readings = readings[(readings["ts"] >= first) & (readings["ts"] <= last)].reset_index(drop=True)
        return Batch(tuple(codes), start, end, readings, quarantined=quarantined)

    def iter_windows(self, windows) -> Iterator[Batch]:
        return in_order(lambda window: self.get_readings_window(*window), windows, self.workers, STATE_KEY)


def _rfc3339(when) -> str:
    return as_utc(pd.Timestamp(when).to_pydatetime()).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"
