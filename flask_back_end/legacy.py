"""The 2019 back end's routes, answering in their original shapes so old clients keep working.

Shapes as the 2019 code produced them (what its map and chart pages read):
- `/api/all_grow_{true,healthy,recovered,faulty}_json`, `/grow_by_address`, `/grow_by_owner`: a list of
  `all_sensor_info` rows: sensor_id, days_active, start_date, end_date (`2019-05-24T20:00:00`, UTC),
  latitude, longitude, address, owner_id.
- `/api/indiv_grow_data`: the GROW `timeSeries/get` answer (`{"Data": [{"VariableCode": ..., "Data":
  [{"Value", "DateTime": "yyyymmddHHMMSS", ...}]}]}`, newest first) for light, air temperature and
  calibrated soil moisture at the times all three have (2019's charts read them side by side) — now
  from our database instead of a call to GROW per page view.
- `/api/check_faulty_grow`: `[]` for a sensor without anomalies, else `[[days_since_anomaly,
  "<last anomaly, HTTP date>"]]`.
- `/api/get_wow_data`: `{"distance": [km], "datetime": [...], "air_temp": [...], "rainfall": [...]}`.
- `/owner_stats`: `{"owner_id", "healthy": [ids], "recovered": [ids], "faulty": [ids]}`.
- `/healthy_stats`, `/recovered_stats`, `/faulty_stats` (by owner_id): per sensor `[[sensor_id,
  battery_level, soil_moisture, light, air_temperature, "<latest reading, HTTP date>"]]`.

2019 knew three statuses, and its clients read exactly those three lists. A sensor in a later status
(silent: no reading for days) is in the lists of all sensors (`all_grow_true_json`, `grow_by_address`,
`grow_by_owner`) and in none of the three status lists, nor in `/owner_stats`.

What changed: every route needs the service token like the rest of the API (2019's were open to anyone),
parameters are validated (400 naming the parameter instead of a 500), and an unknown sensor is a 404.
"""

from __future__ import annotations

import datetime as dt
import math

from apiflask import APIBlueprint, Schema, abort
from apiflask.fields import Float, Integer, List, String
from marshmallow import ValidationError, validates_schema
from sqlalchemy import and_, select
from werkzeug.http import http_date

from core.db import read_frame
from core.schema import readings, sensor_health, sensors
from core.times import grow_stamp, parse_grow_stamp, parse_utc
from core.vocabulary import GROW_CODES, GROW_DATA_SOURCE, GROW_TIME_FORMAT, Health
from flask_back_end.api import ensure_sensor, json_response, sensor_filters, station_link, station_reports
from flask_back_end.extensions import engine
from flask_back_end.schemas import code, text, utc_in_range

legacy = APIBlueprint("legacy", __name__, tag="2019 routes")

# GROW variable code suffix → our column, in the order 2019 asked for them.
GROW_VARIABLES = {GROW_CODES[name]: name for name in ("light", "air_temperature", "soil_moisture")}
MAX_SPAN = dt.timedelta(days=31)  # 2019 asked for 9 days; longer ranges belong to /api/v1 (downsampled)
# The statuses 2019's clients know, in /owner_stats' order; later ones (silent) never show in their lists.
STATUSES_2019 = (Health.HEALTHY.value, Health.RECOVERED.value, Health.FAULTY.value)


# --- parameters ------------------------------------------------------------------------------------------
TIME_2019 = "UTC, 2019-05-24T20:00:00 or 20190524200000"
TIME_2019_PATTERN = (
    r"^\s*([0-9]{14}|[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?)?)\s*$"
)


class SensorParam(Schema):
    sensor_id = code(required=True)


class SensorRangeParams(SensorParam):
    start = String(required=True, metadata={"description": TIME_2019, "pattern": TIME_2019_PATTERN})
    end = String(required=True, metadata={"description": TIME_2019, "pattern": TIME_2019_PATTERN})

    @validates_schema
    def _times(self, data, **_):
        for name in ("start", "end"):
            data[name] = parse_2019_time(data[name], name)
        utc_in_range(data, ("start", "end"))
        if data["start"] > data["end"]:
            raise ValidationError("start must not be after end", "start")
        if data["end"] - data["start"] > MAX_SPAN:
            raise ValidationError(f"at most {MAX_SPAN.days} days; use /api/v1 for longer ranges", "end")


def parse_2019_time(value: str, name: str) -> dt.datetime:
    """2019 clients sent `2019-05-24T20:00:00` (and GROW's own `20190524200000`); both are UTC."""
    for parse in (parse_utc, parse_grow_stamp):
        try:
            return parse(value.strip())
        except ValueError:
            continue
    raise ValidationError("a time like 2019-05-24T20:00:00 or 20190524200000", name)


class AddressParam(Schema):
    address = text(512, required=True)


class OwnerParam(Schema):
    owner_id = code(required=True)


# --- answers (for the OpenAPI document; old clients read them as described above) ----------------------
class SensorInfo2019(Schema):
    sensor_id = String(required=True)
    days_active = Integer(allow_none=True)
    start_date = String(allow_none=True, metadata={"example": "2019-05-01T10:15:00"})
    end_date = String(allow_none=True, metadata={"example": "2019-05-24T20:00:00"})
    latitude = Float(allow_none=True)
    longitude = Float(allow_none=True)
    address = String(allow_none=True)
    owner_id = String(allow_none=True)


class WowData2019(Schema):
    distance = List(
        Float(allow_none=True),
        required=True,
        metadata={"description": "one number: km to the station (null where 2019 left it empty)"},
    )
    datetime = List(String(), required=True)
    air_temp = List(Float(allow_none=True), required=True)
    rainfall = List(Float(allow_none=True), required=True)


class OwnerStats2019(Schema):
    owner_id = String(required=True)
    healthy = List(String(), required=True)
    recovered = List(String(), required=True)
    faulty = List(String(), required=True)


def _json_answer(description: str, schema: dict) -> dict:
    return {200: {"description": description, "content": {"application/json": {"schema": schema}}}}


GROW_ANSWER = {
    "type": "object",
    "required": ["Data"],
    "properties": {
        "Data": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["VariableCode", "Data"],
                "properties": {
                    "LocationCode": {"type": "string"},
                    "LocationIdentifier": {"type": "string"},
                    "VariableCode": {"type": "string"},
                    "StartDate": {"type": "string"},
                    "EndDate": {"type": "string"},
                    "Data": {
                        "type": "array",
                        "items": {
                            "type": "object",
                            "required": ["Value", "DateTime"],
                            "properties": {
                                "Value": {"type": "number"},
                                "DateTime": {"type": "string", "pattern": "^[0-9]{14}$"},
                                "Availability": {"type": "integer"},
                                "Quality": {"type": "integer"},
                            },
                        },
                    },
                },
            },
        }
    },
}
FAULT_ANSWER = {
    "type": "array",
    "maxItems": 1,
    "items": {
        "type": "array",
        "items": {"type": ["integer", "string"]},  # [days, "Tue, 28 May 2019 00:00:00 GMT"]
        "minItems": 2,
        "maxItems": 2,
    },
}
LATEST_ANSWER = {
    "type": "array",
    "items": {
        "type": "array",
        "minItems": 1,
        "maxItems": 1,
        "items": {
            "type": "array",
            "items": {"type": ["string", "number", "null"]},  # id, four readings, HTTP date
            "minItems": 6,
            "maxItems": 6,
        },
    },
}


# --- routes ------------------------------------------------------------------------------------------------
def route(
    path: str, summary: str, params: type[Schema] | None = None, output=None, answer=None, missing=None
):
    """A 2019 GET route: query parameters validated, answers documented (`missing`: when it answers
    404). It needs the token like every route not `flask_back_end.public`."""

    def register(view):
        responses = {**(answer or {}), **({404: missing} if missing else {})}
        view = legacy.doc(summary=f"2019: {summary}", responses=responses or None)(view)
        if output is not None:
            view = legacy.output(output)(view)
        if params is not None:
            view = legacy.input(params, location="query", arg_name="params")(view)
        return legacy.get(path)(view)

    return register


SENSOR_LIST = SensorInfo2019(many=True)


@route("/api/all_grow_true_json", "every sensor, as all_sensor_info rows", output=SENSOR_LIST)
def all_grow_true_json():
    return json_response(sensor_info_rows({}))


@route("/api/all_grow_healthy_json", "the healthy sensors", output=SENSOR_LIST)
def all_grow_healthy_json():
    return json_response(sensor_info_rows({"status": Health.HEALTHY.value}))


@route("/api/all_grow_recovered_json", "the recovered sensors", output=SENSOR_LIST)
def all_grow_recovered_json():
    return json_response(sensor_info_rows({"status": Health.RECOVERED.value}))


@route("/api/all_grow_faulty_json", "the faulty sensors", output=SENSOR_LIST)
def all_grow_faulty_json():
    return json_response(sensor_info_rows({"status": Health.FAULTY.value}))


def sensor_info_rows(filters: dict) -> list[dict]:
    """Sensors as 2019's all_sensor_info rows, ordered by sensor id."""
    query = (
        select(
            sensors.c.sensor_id,
            sensors.c.days_active,
            sensors.c.first_sample_at,
            sensors.c.last_sample_at,
            sensors.c.latitude,
            sensors.c.longitude,
            sensors.c.address,
            sensors.c.owner_id,
        )
        .select_from(sensors.outerjoin(sensor_health))
        .where(*sensor_filters(filters))
        .order_by(sensors.c.sensor_id)
    )
    with engine().connect() as connection:
        rows = connection.execute(query).all()
    return [
        {
            "sensor_id": row.sensor_id,
            "days_active": row.days_active,
            "start_date": _naive_iso(row.first_sample_at),
            "end_date": _naive_iso(row.last_sample_at),
            "latitude": row.latitude,
            "longitude": row.longitude,
            "address": row.address,
            "owner_id": row.owner_id,
        }
        for row in rows
    ]


def _naive_iso(when: dt.datetime | None) -> str | None:
    """PostgreSQL's row_to_json of a timestamp without zone, as 2019 stored them (UTC)."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S") if when else None


@route(
    "/api/indiv_grow_data",
    "a sensor's light, air temperature and soil moisture in GROW's timeSeries/get shape",
    params=SensorRangeParams,
    answer=_json_answer("GROW's answer shape, newest sample first", GROW_ANSWER),
    missing="no such sensor",
)
def indiv_grow_data(params):
    sensor_id, start, end = params["sensor_id"], params["start"], params["end"]
    with engine().connect() as connection:
        ensure_sensor(connection, sensor_id)
        frame = read_frame(
            connection,
            select(readings.c.ts, *[readings.c[column] for column in GROW_VARIABLES.values()])
            .where(readings.c.sensor_id == sensor_id, readings.c.ts.between(start, end))
            .order_by(readings.c.ts.desc()),
        )
    # 2019's chart code reads the three series side by side by position: keep only the times all three
    # have, so its rows line up.
    frame = frame.dropna(subset=list(GROW_VARIABLES.values()))
    stamps = frame["ts"].dt.strftime(GROW_TIME_FORMAT).tolist() if len(frame) else []
    series = []
    for suffix, column in GROW_VARIABLES.items():
        values = frame[column].tolist() if len(frame) else []
        samples = [
            {"Value": value, "DateTime": stamp, "Availability": 1, "Quality": 0}
            for value, stamp in zip(values, stamps, strict=True)
        ]
        series.append(
            {
                "LocationCode": sensor_id,
                "LocationIdentifier": f"Grow.Thingful#{sensor_id}",
                "VariableCode": f"{GROW_DATA_SOURCE}.{suffix}",
                "StartDate": grow_stamp(start),
                "EndDate": grow_stamp(end),
                "Data": samples,
            }
        )
    return json_response({"Data": series})


@route(
    "/api/check_faulty_grow",
    "days since the sensor's last anomaly and when it was ([] when it has none)",
    params=SensorParam,
    answer=_json_answer("[[days_since_anomaly, last anomaly as an HTTP date]] or []", FAULT_ANSWER),
    missing="no such sensor",
)
def check_faulty_grow(params):
    sensor_id = params["sensor_id"]
    with engine().connect() as connection:
        ensure_sensor(connection, sensor_id)
        row = connection.execute(
            select(sensor_health.c.days_since_anomaly, sensor_health.c.last_anomaly_at).where(
                sensor_health.c.sensor_id == sensor_id
            )
        ).first()
    if row is None or row.last_anomaly_at is None:
        return json_response([])
    days = math.floor(row.days_since_anomaly or 0)  # 2019 stored whole days (timedelta.days)
    return json_response([[days, http_date(row.last_anomaly_at)]])


@route(
    "/api/get_wow_data",
    "the linked WOW station's air temperature and rainfall, and its distance",
    params=SensorRangeParams,
    output=WowData2019,
    missing="no such sensor, or no WOW station linked to it",
)
def get_wow_data(params):
    sensor_id, start, end = params["sensor_id"], params["start"], params["end"]
    with engine().connect() as connection:
        ensure_sensor(connection, sensor_id)
        link = station_link(connection, sensor_id)
        if link is None:
            abort(404, f"no WOW station is linked to sensor {sensor_id}")
        reports = station_reports(connection, link.site_id, start, end)
    return {
        "distance": [None if link.distance_km is None else float(link.distance_km)],  # 2019 left some empty
        "datetime": reports["ts"].dt.strftime("%Y-%m-%dT%H:%M:%S").tolist() if len(reports) else [],
        "air_temp": _nullable(reports["air_temperature"]),
        "rainfall": _nullable(reports["rainfall"]),
    }


def _nullable(values) -> list:
    return [None if value is None or math.isnan(value) else float(value) for value in values]


@route("/grow_by_address", "the sensors at exactly this address", params=AddressParam, output=SENSOR_LIST)
def grow_by_address(params):
    return json_response(sensor_info_rows({"address_either": params["address"]}))


@route("/grow_by_owner", "one owner's sensors", params=OwnerParam, output=SENSOR_LIST)
def grow_by_owner(params):
    return json_response(sensor_info_rows({"owner": params["owner_id"]}))


@route("/owner_stats", "one owner's sensor ids by status", params=OwnerParam, output=OwnerStats2019)
def owner_stats(params):
    owner_id = params["owner_id"]
    with engine().connect() as connection:
        rows = connection.execute(
            select(sensor_health.c.status, sensors.c.sensor_id)
            .select_from(sensors.join(sensor_health))
            .where(sensors.c.owner_id == owner_id, sensor_health.c.status.in_(STATUSES_2019))
            .order_by(sensors.c.sensor_id)
        ).all()
    answer = {"owner_id": owner_id, **{status: [] for status in STATUSES_2019}}
    for status, sensor_id in rows:
        answer[status].append(sensor_id)
    return answer


LATEST = _json_answer(
    "[[[sensor_id, battery_level, soil_moisture, light, air_temperature, time]]]", LATEST_ANSWER
)


@route("/healthy_stats", "an owner's healthy sensors with their latest reading", OwnerParam, answer=LATEST)
def healthy_stats(params):
    return json_response(latest_readings(params["owner_id"], Health.HEALTHY.value))


@route(
    "/recovered_stats", "an owner's recovered sensors with their latest reading", OwnerParam, answer=LATEST
)
def recovered_stats(params):
    return json_response(latest_readings(params["owner_id"], Health.RECOVERED.value))


@route("/faulty_stats", "an owner's faulty sensors with their latest reading", OwnerParam, answer=LATEST)
def faulty_stats(params):
    return json_response(latest_readings(params["owner_id"], Health.FAULTY.value))


def latest_readings(owner_id: str, status: str) -> list:
    """Each of the owner's sensors with this status and its latest reading, in 2019's nesting."""
    latest = and_(
        readings.c.sensor_id == sensor_health.c.sensor_id, readings.c.ts == sensor_health.c.latest_reading_at
    )
    query = (
        select(
            sensors.c.sensor_id,
            readings.c.battery_level,
            readings.c.soil_moisture,
            readings.c.light,
            readings.c.air_temperature,
            readings.c.ts,
        )
        .select_from(sensors.join(sensor_health).join(readings, latest))
        .where(sensors.c.owner_id == owner_id, sensor_health.c.status == status)
        .order_by(sensors.c.sensor_id)
    )
    with engine().connect() as connection:
        rows = connection.execute(query).all()
    return [[[*row[:-1], http_date(row.ts)]] for row in rows]
