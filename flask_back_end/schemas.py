"""What the back end accepts and answers: query schemas (validated, 400 on a bad value) and answer
schemas (they write the OpenAPI document, and the schemathesis tests hold every answer to them)."""

from __future__ import annotations

import datetime as dt

from apiflask import Schema
from apiflask.fields import Boolean, DateTime, Dict, Float, Integer, List, Nested, Raw, String
from apiflask.validators import Length, OneOf, Range, Regexp
from marshmallow import ValidationError, validates_schema

from core.schema import ID_PATTERN
from core.times import as_utc
from core.vocabulary import SENSOR_VARIABLES, AnomalyKind, Answer, Detector, NotAFault
from core.vocabulary import Health as Status  # `Health` here is the answer schema below
from flask_back_end.map_clusters import MAX_VIEW_PX, MAX_ZOOM, view_pixels

STATUSES = tuple(status.value for status in Status)
UNCHECKED = "unchecked"  # a sensor without a health row: detection has not seen it yet
COUNTED = (*STATUSES, UNCHECKED)  # what the counts per status count
MAX_PER_PAGE = 1000
VARIABLES = tuple(SENSOR_VARIABLES)
# Dates outside these years are typing mistakes, and far ones overflow date arithmetic.
EARLIEST = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
LATEST = dt.datetime(2200, 1, 1, tzinfo=dt.UTC)
CODE = ID_PATTERN  # sensor and owner ids: the URL converter and the 2019 parameters use it


def text(max_length: int, min_length: int = 1, **kwargs) -> String:
    """A free-text parameter: bounded, and without control characters (PostgreSQL refuses NUL)."""
    return String(
        validate=[
            Length(min=min_length, max=max_length),
            Regexp(r"^[^\x00-\x1f\x7f]*$", error="control character"),
        ],
        **kwargs,
    )


def code(**kwargs) -> String:
    """A sensor or owner id: 1–64 letters, digits or . _ - : @."""
    return String(validate=Regexp(f"^{CODE}$", error="1 to 64 letters, digits or . _ - : @"), **kwargs)


# --- queries --------------------------------------------------------------------------------------------
class PageQuery(Schema):
    page = Integer(load_default=1, validate=Range(min=1, max=1_000_000))
    per_page = Integer(load_default=100, validate=Range(min=1, max=MAX_PER_PAGE))


def utc_in_range(data: dict, names: tuple[str, ...]) -> None:
    """Zone-less times are UTC (as in 2019); every time within EARLIEST..LATEST."""
    for name in names:
        if data.get(name) is None:
            continue
        when = as_utc(data[name])
        if not EARLIEST <= when <= LATEST:
            raise ValidationError(f"between {EARLIEST.year} and {LATEST.year}", name)
        data[name] = when


class TimeRangeQuery(Schema):
    """`start` and `end`, ISO 8601; without a zone they are UTC."""

    start = DateTime()
    end = DateTime()

    @validates_schema
    def _utc_and_ordered(self, data, **_):
        utc_in_range(data, ("start", "end"))
        if "start" in data and "end" in data and data["start"] > data["end"]:
            raise ValidationError("start must not be after end", "start")


_NUMBER = r"\s*[-+]?[0-9]+(\.[0-9]*)?\s*"
BBOX_PATTERN = f"^{_NUMBER},{_NUMBER},{_NUMBER},{_NUMBER}$"


class SensorQuery(PageQuery):
    status = String(validate=OneOf(STATUSES))
    owner = text(64)
    q = text(200, metadata={"description": "text in the address"})
    bbox = String(metadata={"description": "min_lon,min_lat,max_lon,max_lat", "pattern": BBOX_PATTERN})

    @validates_schema
    def _bbox(self, data, **_):
        if "bbox" in data:
            data["bbox"] = parse_bbox(data["bbox"])


def parse_bbox(value: str) -> tuple[float, float, float, float]:
    try:
        west, south, east, north = (float(part) for part in value.split(","))
    except ValueError:
        raise ValidationError("four numbers: min_lon,min_lat,max_lon,max_lat", "bbox") from None
    if not (-180 <= west <= east <= 180 and -90 <= south <= north <= 90):  # NaN fails this too
        raise ValidationError("longitudes in -180..180 and latitudes in -90..90, min before max", "bbox")
    return west, south, east, north


class ReadingsQuery(TimeRangeQuery):
    max_points = Integer(load_default=1000, validate=Range(min=2, max=20_000))


class AnomalyQuery(TimeRangeQuery, PageQuery):
    """Anomalies that overlap [start, end]."""


class ChangesQuery(Schema):
    since = text(
        200,
        metadata={"description": "the cursor the previous page gave (`cursor`); none: from the beginning"},
    )
    limit = Integer(load_default=500, validate=Range(min=1, max=5000))


class OwnerFilter(Schema):
    owner = text(64, metadata={"description": "only this owner's sensors"})


class MapViewQuery(OwnerFilter):
    zoom = Integer(
        required=True,
        validate=Range(min=0, max=MAX_ZOOM),
        metadata={"description": "the map's zoom level (Web Mercator, as Leaflet's and Google's)"},
    )
    bbox = String(
        metadata={
            "description": f"min_lon,min_lat,max_lon,max_lat; at most {MAX_VIEW_PX:,} pixels a side at "
            "the zoom. Default: the whole world",
            "pattern": BBOX_PATTERN,
        }
    )
    status = String(validate=OneOf(COUNTED), metadata={"description": "only the sensors of this status"})

    @validates_schema
    def _view(self, data, **_):
        data["bbox"] = parse_bbox(data["bbox"]) if "bbox" in data else (-180.0, -90.0, 180.0, 90.0)
        if "zoom" in data:
            width, height = view_pixels(data["zoom"], data["bbox"])
            if max(width, height) > MAX_VIEW_PX:
                raise ValidationError(
                    f"{width:,.0f} × {height:,.0f} pixels at zoom {data['zoom']}: at most {MAX_VIEW_PX:,} "
                    "a side (send the view's bbox, or a lower zoom)",
                    "bbox",
                )


class AddressQuery(OwnerFilter):
    q = text(200, min_length=2, required=True, metadata={"description": "2 characters or more"})
    limit = Integer(load_default=10, validate=Range(min=1, max=50))


# --- answers --------------------------------------------------------------------------------------------
class ErrorOut(Schema):
    error = String(required=True, metadata={"description": "bad_request, unauthorized, not_found, …"})
    message = String(required=True, metadata={"description": "what went wrong; for a 400, which parameter"})


class HealthOut(Schema):
    status = String(required=True, validate=OneOf(("ok", "unavailable")))
    database = String(required=True, validate=OneOf(("reachable", "unreachable")))


class PageMeta(Schema):
    page = Integer(required=True)
    per_page = Integer(required=True)
    total_items = Integer(required=True)
    total_pages = Integer(required=True)


class PageLinks(Schema):
    self = String(required=True)
    first = String(required=True)
    last = String(required=True)
    prev = String()
    next = String()


class Paged(Schema):
    meta = Nested(PageMeta, required=True, attribute="_meta", data_key="_meta")
    links = Nested(PageLinks, required=True, attribute="_links", data_key="_links")


LatestReading = Schema.from_dict(
    {"ts": DateTime(required=True), **{v: Float(allow_none=True) for v in VARIABLES}}, name="LatestReading"
)


class SensorSummary(Schema):
    sensor_id = String(required=True)
    name = String(allow_none=True)
    owner_id = String(allow_none=True)
    latitude = Float(allow_none=True)
    longitude = Float(allow_none=True)
    address = String(allow_none=True)
    status = String(
        allow_none=True,
        validate=OneOf(STATUSES),
        metadata={"description": f"{', '.join(STATUSES)}; null: not checked yet"},
    )
    latest = Nested(
        LatestReading,
        allow_none=True,
        metadata={"description": "its latest reading, battery too; null if none"},
    )


class SensorPage(Paged):
    items = List(Nested(SensorSummary), required=True)


class SensorMap(Schema):
    fields = List(
        String(), required=True, metadata={"example": ["sensor_id", "latitude", "longitude", "status"]}
    )
    rows = List(List(Raw(allow_none=True)), required=True, metadata={"description": "one list per sensor"})


class Table(Schema):
    fields = List(String(), required=True)
    rows = List(List(Raw(allow_none=True)), required=True, metadata={"description": "one list a row"})


class MapView(Schema):
    zoom = Integer(required=True)
    statuses = List(String(), required=True, metadata={"description": "the order of `by_status`"})
    counts = Dict(
        keys=String(validate=OneOf(COUNTED)),
        values=Integer(),
        required=True,
        metadata={"description": "the network's sensors per status, whatever the view"},
    )
    bounds = List(
        Float(),
        required=True,
        allow_none=True,
        metadata={"description": "min_lon,min_lat,max_lon,max_lat of the sensors shown; null: none"},
    )
    clusters = Nested(
        Table,
        required=True,
        metadata={"description": "latitude, longitude (the centroid), count, by_status, bounds"},
    )
    sensors = Nested(
        Table,
        required=True,
        metadata={"description": "the single sensors: sensor_id, latitude, longitude, status"},
    )


class Health(Schema):
    status = String(allow_none=True, validate=OneOf(STATUSES))
    reason = String(allow_none=True)
    latest_reading_at = DateTime(
        allow_none=True, metadata={"description": "the latest reading analysed; a silent sensor's last"}
    )
    last_anomaly_at = DateTime(allow_none=True)
    days_since_anomaly = Float(allow_none=True)
    counts = Dict(allow_none=True, metadata={"description": "anomalies by kind and by variable"})


class Station(Schema):
    site_id = String(allow_none=True)
    name = String(allow_none=True)
    distance_km = Float(allow_none=True)
    reason = String(allow_none=True, metadata={"description": "why no station is linked, when none is"})


class Pause(Schema):
    pause_id = Integer(required=True)
    start_at = DateTime(required=True)
    end_at = DateTime(required=True)
    note = String(allow_none=True)
    paused_by = String(required=True)


class SensorDetail(SensorSummary):
    identifier = String(allow_none=True)
    serial_number = String(allow_none=True)
    first_sample_at = DateTime(allow_none=True)
    last_sample_at = DateTime(allow_none=True)
    days_active = Integer(allow_none=True)
    place = String(allow_none=True)
    country = String(allow_none=True)
    address_latitude = Float(allow_none=True)
    address_longitude = Float(allow_none=True)
    health = Nested(Health, required=True)
    station = Nested(Station, required=True)
    pauses = List(
        Nested(Pause),
        required=True,
        metadata={"description": "spans its owner paused it for maintenance, latest first: a year's"},
    )

    class Meta:
        exclude = ("status",)


def _reading_fields() -> dict:
    fields = {"ts": DateTime(required=True)}
    for variable in VARIABLES:
        fields[variable] = Float(allow_none=True)
        fields[f"{variable}_min"] = Float(allow_none=True, metadata={"description": "only when downsampled"})
        fields[f"{variable}_max"] = Float(allow_none=True, metadata={"description": "only when downsampled"})
    return fields


ReadingPoint = Schema.from_dict(_reading_fields(), name="ReadingPoint")


class Readings(Schema):
    sensor_id = String(required=True)
    start = DateTime(required=True)
    end = DateTime(required=True)
    readings = Integer(required=True, metadata={"description": "readings in the range"})
    downsampled = Boolean(required=True, metadata={"description": "points are per-bucket mean, min and max"})
    items = List(Nested(ReadingPoint), required=True)


class AnomalyAnswer(Schema):
    answer = String(required=True, validate=OneOf([answer.value for answer in Answer]))
    reason = String(allow_none=True, validate=OneOf([reason.value for reason in NotAFault]))
    note = String(allow_none=True)
    answered_by = String(required=True)
    answered_at = DateTime(required=True)


class AnomalyFound(Schema):
    """An anomaly as detection stored it."""

    variable = String(required=True)
    kind = String(required=True, validate=OneOf([kind.value for kind in AnomalyKind]))
    start_at = DateTime(required=True)
    end_at = DateTime(required=True)
    score = Float(allow_none=True)
    detector = String(required=True, validate=OneOf([detector.value for detector in Detector]))
    explanation = String(allow_none=True)


class Anomaly(AnomalyFound):
    answer = Nested(AnomalyAnswer, allow_none=True, metadata={"description": "what its owner said of it"})


class Change(Schema):
    kind = String(required=True, validate=OneOf(["readings", "anomaly", "health"]))
    changed_at = DateTime(required=True)
    day = String(metadata={"description": "readings: the UTC day whose readings changed"})
    source = String(metadata={"description": "readings: grow, opensensemap or files"})
    sensor_id = String(metadata={"description": "anomaly, health: the sensor"})
    anomaly = Nested(AnomalyFound, metadata={"description": "anomaly: as it is now"})
    status = String(allow_none=True, metadata={"description": "health: the sensor's status now"})


class ChangePage(Schema):
    changes = List(Nested(Change), required=True)
    cursor = String(
        allow_none=True, required=True, metadata={"description": "pass it as `since` for what changed next"}
    )
    more = Boolean(required=True, metadata={"description": "more changes wait after this page"})


class AnomalyPage(Paged):
    items = List(Nested(Anomaly), required=True)


class ComparisonHour(Schema):
    ts = DateTime(required=True)
    air_temperature = Float(allow_none=True)
    soil_moisture = Float(allow_none=True)
    station_air_temperature = Float(allow_none=True)
    station_rainfall = Float(allow_none=True, metadata={"description": "mm in the hour"})


class WowStation(Schema):
    site_id = String(allow_none=True)
    name = String(allow_none=True)
    distance_km = Float(allow_none=True)


class WowComparison(Schema):
    sensor_id = String(required=True)
    station = Nested(WowStation, required=True)
    start = DateTime(required=True)
    end = DateTime(required=True)
    items = List(Nested(ComparisonHour), required=True)


# One count per status of the vocabulary, so a new status is counted (and documented) without an edit here.
StatusCounts = Schema.from_dict({status: Integer(required=True) for status in COUNTED}, name="StatusCounts")


class OwnerStats(Schema):
    owner_id = String(required=True)
    sensors = Integer(required=True)
    by_status = Nested(StatusCounts, required=True)
    anomalies = Integer(required=True)
    latest_reading_at = DateTime(allow_none=True)


class NetworkCounts(Schema):
    sensors = Integer(required=True)
    owners = Integer(required=True, metadata={"description": "distinct owners of those sensors"})
    # A plain mapping, as /status_counts answers: nesting StatusCounts here too registers it twice.
    by_status = Dict(
        keys=String(validate=OneOf(COUNTED)),
        values=Integer(),
        required=True,
        metadata={"description": "sensors per status, as /status_counts"},
    )


class Address(Schema):
    address = String(required=True)
    sensors = Integer(required=True)


class Addresses(Schema):
    items = List(Nested(Address), required=True)
