"""`/api/v1`: sensors, one sensor, its readings, anomalies and WOW comparison, status counts, owner
statistics, address autocomplete. Queries are SQLAlchemy Core on the shared schema, always with bound
parameters. Answers follow `schemas.py`; the two large ones (map, readings) are built as JSON directly,
and the schema tests hold them to their schemas all the same."""

from __future__ import annotations

import datetime as dt
import math

import numpy as np
import orjson
import pandas as pd
from apiflask import APIBlueprint, abort
from flask import Response, request, url_for
from sqlalchemy import and_, func, or_, select

from core.db import read_frame, reading_span
from core.schema import (
    anomalies,
    anomaly_answers,
    readings,
    sensor_health,
    sensor_pauses,
    sensor_wow,
    sensors,
    wow_observations,
    wow_sites,
)
from flask_back_end import public, schemas
from flask_back_end.extensions import engine, map_answers, settings
from flask_back_end.schemas import COUNTED, STATUSES, UNCHECKED, VARIABLES

api = APIBlueprint("api", __name__, tag="API")

DEFAULT_SPAN = dt.timedelta(days=9)  # the 2019 charts showed nine days


@api.get("/health")
@public
@api.output(schemas.HealthOut)
@api.doc(
    summary="Is the back end up, and does it reach its database?",
    responses={
        503: {
            "description": "the database is unreachable",
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/HealthOut"}}},
        }
    },
)
def health():
    try:
        with engine().connect() as connection:
            connection.scalar(select(1))
    except Exception:  # a health check reports, it does not raise
        return {"status": "unavailable", "database": "unreachable"}, 503
    return {"status": "ok", "database": "reachable"}


@api.get("/sensors")
@api.input(schemas.SensorQuery, location="query", arg_name="query")
@api.output(schemas.SensorPage)
@api.doc(summary="Sensors with their status, filtered and paginated")
def list_sensors(query):
    columns = [
        sensors.c.sensor_id,
        sensors.c.name,
        sensors.c.owner_id,
        sensors.c.latitude,
        sensors.c.longitude,
        sensors.c.address,
        sensor_health.c.status,
    ]
    base = select(*columns).select_from(sensors.outerjoin(sensor_health)).where(*sensor_filters(query))
    # Each sensor's latest reading, which the analysis noted: one primary-key lookup per row of the page.
    latest = readings.alias("latest")
    on_latest = and_(
        latest.c.sensor_id == sensors.c.sensor_id, latest.c.ts == sensor_health.c.latest_reading_at
    )
    latest_columns = [latest.c[name].label(f"latest_{name}") for name in ("ts", *VARIABLES)]
    with_latest = base.add_columns(*latest_columns).outerjoin(latest, on_latest)
    page, per_page = query["page"], query["per_page"]
    with engine().connect() as connection:
        total = connection.scalar(select(func.count()).select_from(base.subquery()))
        rows = connection.execute(
            with_latest.order_by(sensors.c.sensor_id).limit(per_page).offset((page - 1) * per_page)
        ).all()
    return _page([_with_latest(dict(row._mapping)) for row in rows], total, query)


def _with_latest(row: dict) -> dict:
    """A sensor row with its latest_* columns gathered into `latest` (None without a reading)."""
    latest = {name: row.pop(f"latest_{name}") for name in ("ts", *VARIABLES)}
    return {**row, "latest": latest if latest["ts"] is not None else None}


def sensor_filters(query: dict) -> list:
    """WHERE conditions for the keys of `query` that filter sensors: status, owner, q, bbox, address."""
    conditions = []
    if "status" in query:
        conditions.append(sensor_health.c.status == query["status"])
    if "owner" in query:
        conditions.append(sensors.c.owner_id == query["owner"])
    if "address" in query:
        conditions.append(sensors.c.address == query["address"])
    if "address_either" in query:  # 2019's routes: today's address, or the one 2019 wrote
        either = query["address_either"]
        conditions.append(or_(sensors.c.address == either, sensors.c.address_2019 == either))
    if "q" in query:
        pattern = f"%{query['q'].lower()}%"
        conditions.append(
            or_(func.lower(sensors.c.address).like(pattern), func.lower(sensors.c.place).like(pattern))
        )
    if "bbox" in query:
        west, south, east, north = query["bbox"]
        conditions.append(sensors.c.longitude.between(west, east))
        conditions.append(sensors.c.latitude.between(south, north))
    return conditions


def _only(query: dict, *names: str) -> dict:
    return {name: query[name] for name in names if name in query}


def _page(items: list, total: int, query: dict) -> dict:
    """A page of a collection with its `_meta` and `_links` (self, first, last, prev, next); `query` is
    the route's validated query."""
    page, per_page = query["page"], query["per_page"]
    pages = max(1, math.ceil(total / per_page))
    return {
        "items": items,
        "_meta": {"page": page, "per_page": per_page, "total_items": total, "total_pages": pages},
        "_links": _page_links(page, pages, query),
    }


def _page_links(page: int, pages: int, query: dict) -> dict:
    # The links repeat, as sent, only the parameters the route's schema validated: any other argument
    # would reach url_for as one of its own keywords (endpoint, _scheme, _external, _method: a 500, or a
    # crafted link).
    validated = {name: value for name, value in request.args.items() if name in query}
    args = {**(request.view_args or {}), **validated}

    def link(number: int) -> str:
        return url_for(request.endpoint, **{**args, "page": number})

    links = {"self": link(page), "first": link(1), "last": link(pages)}
    if page > 1:
        links["prev"] = link(min(page - 1, pages))
    if page < pages:
        links["next"] = link(page + 1)
    return links


PAUSE_FIELDS = ("pause_id", "start_at", "end_at", "note", "paused_by")
ANSWER_FIELDS = ("answer", "reason", "note", "answered_by", "answered_at")
HEALTH_FIELDS = ("status", "reason", "last_anomaly_at", "days_since_anomaly", "counts", "latest_reading_at")


@api.get("/sensors/<code:sensor_id>")
@api.output(schemas.SensorDetail)
@api.doc(summary="One sensor with its health, reason, linked WOW station and latest reading (battery too)")
def one_sensor(sensor_id: str):
    query = (
        select(
            sensors,
            sensor_health.c.status,
            sensor_health.c.reason,
            sensor_health.c.last_anomaly_at,
            sensor_health.c.days_since_anomaly,
            sensor_health.c.counts,
            sensor_health.c.latest_reading_at,
            sensor_wow.c.site_id,
            sensor_wow.c.distance_km,
            sensor_wow.c.reason.label("link_reason"),
            wow_sites.c.name.label("site_name"),
        )
        .select_from(sensors.outerjoin(sensor_health).outerjoin(sensor_wow).outerjoin(wow_sites))
        .where(sensors.c.sensor_id == sensor_id)
    )
    with engine().connect() as connection:
        row = connection.execute(query).first()
        latest = connection.execute(
            select(readings.c.ts, *[readings.c[v] for v in VARIABLES])
            .where(readings.c.sensor_id == sensor_id)
            .order_by(readings.c.ts.desc())
            .limit(1)
        ).first()  # the primary key's index, read backwards: one row
        year_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=366)
        pauses = connection.execute(
            select(*(sensor_pauses.c[name] for name in PAUSE_FIELDS))
            .where(sensor_pauses.c.sensor_id == sensor_id, sensor_pauses.c.end_at >= year_ago)
            .order_by(sensor_pauses.c.start_at.desc())
        ).all()
    if row is None:
        abort(404, f"no sensor {sensor_id}")
    data = dict(row._mapping)
    data["pauses"] = [dict(pause._mapping) for pause in pauses]
    data["latest"] = dict(latest._mapping) if latest is not None else None
    station = {
        "site_id": data.pop("site_id"),
        "name": data.pop("site_name"),
        "distance_km": data.pop("distance_km"),
        "reason": data.pop("link_reason"),
    }
    health = {k: data.pop(k) for k in HEALTH_FIELDS}
    return {**data, "health": health, "station": station}


@api.get("/sensors/<code:sensor_id>/readings")
@api.input(schemas.ReadingsQuery, location="query", arg_name="query")
@api.output(schemas.Readings)
@api.doc(summary="A sensor's readings over a time range, at most max_points (min and max kept)")
def sensor_readings(sensor_id: str, query):
    with engine().connect() as connection:
        start, end = time_range(connection, sensor_id, query)
        frame = read_frame(
            connection,
            select(readings.c.ts, *[readings.c[v] for v in VARIABLES])
            .where(readings.c.sensor_id == sensor_id, readings.c.ts.between(start, end))
            .order_by(readings.c.ts),
        )
        # What the database keeps of this sensor begins here; older months may live in the archive.
        kept_from, _ = reading_span(connection, sensor_id)
    frame = with_archived(frame, sensor_id, start, end, kept_from)
    points, downsampled = downsample(frame, query["max_points"])
    # Built directly: a marshmallow pass over a thousand points would cost more than the query.
    return json_response(
        {
            "sensor_id": sensor_id,
            "start": start.isoformat(),
            "end": end.isoformat(),
            "readings": len(frame),
            "downsampled": downsampled,
            "items": points,
        }
    )


def with_archived(
    frame: pd.DataFrame, sensor_id: str, start: dt.datetime, end: dt.datetime, kept_from: dt.datetime | None
) -> pd.DataFrame:
    """The readings asked for, with those before what the database keeps read from the archive
    (ARCHIVE_DIR), where there is one."""
    root = settings().archive_store
    if root is None or (kept_from is not None and start >= kept_from):
        return frame
    from core.archive import ArchiveError, read_sensor
    from core.vocabulary import source_of

    until = min(end, kept_from - dt.timedelta(microseconds=1)) if kept_from else end
    try:
        archived = read_sensor(root, sensor_id, source_of(sensor_id), start, until)
    except ArchiveError as error:  # half a chart would look like a gap in the sensor's data
        abort(503, f"{error}; ask again later, or for a range the database keeps")
    if archived.empty:
        return frame
    frame = frame.assign(ts=pd.to_datetime(frame["ts"], utc=True))
    return pd.concat([archived, frame], ignore_index=True).sort_values("ts", ignore_index=True)


def downsample(frame: pd.DataFrame, max_points: int) -> tuple[list[dict], bool]:
    """At most `max_points` points: the readings as they are, or per time bucket the mean of each
    variable with its min and max (so a one-sample spike still shows in the bucket's max)."""
    if len(frame) <= max_points:
        return records(frame), False
    ts = frame["ts"]
    span = (ts.iloc[-1] - ts.iloc[0]) / max_points
    bucket = ((ts - ts.iloc[0]) // span).clip(upper=max_points - 1).to_numpy()
    grouped = frame.groupby(bucket)
    table = grouped[list(VARIABLES)].agg(["mean", "min", "max"])
    table.columns = [v if how == "mean" else f"{v}_{how}" for v, how in table.columns]
    table.insert(0, "ts", grouped["ts"].first().to_numpy())
    return records(table), True


def records(frame: pd.DataFrame) -> list[dict]:
    """Rows as JSON-ready dicts: times in ISO 8601 (UTC), numbers to 3 decimals, gaps as None. Column
    by column, not cell by cell: this is most of a readings answer's time."""
    if frame.empty:
        return []
    columns = {}
    for name in frame.columns:
        values = frame[name]
        if name == "ts":
            seconds = values.dt.tz_convert("UTC").dt.tz_localize(None).to_numpy().astype("datetime64[s]")
            columns[name] = np.char.add(np.datetime_as_string(seconds, unit="s"), "+00:00").tolist()
        else:
            rounded = values.astype(float).round(3)
            columns[name] = rounded.astype(object).where(rounded.notna(), None).tolist()
    names = [str(name) for name in columns]  # plain str: orjson refuses subclasses as keys
    return [dict(zip(names, row, strict=True)) for row in zip(*columns.values(), strict=True)]


def json_response(payload) -> Response:
    """orjson for the large answers: several times faster than the standard encoder."""
    return Response(orjson.dumps(payload), mimetype="application/json")


@api.get("/status_counts")
@api.output(schemas.StatusCounts)
@api.doc(summary=f"How many sensors are {', '.join(STATUSES)}, or {UNCHECKED} (not checked yet)")
def status_counts():
    with engine().connect() as connection:
        return counts_by_status(connection)


def counts_by_status(connection) -> dict[str, int]:
    status = func.coalesce(sensor_health.c.status, UNCHECKED)
    counts = dict(
        connection.execute(
            select(status, func.count()).select_from(sensors.outerjoin(sensor_health)).group_by(status)
        ).all()
    )
    return {status: counts.get(status, 0) for status in COUNTED}


@api.get("/map")
@api.input(schemas.OwnerFilter, location="query", arg_name="query")
@api.output(schemas.SensorMap)
@api.doc(
    summary="Every sensor for the map, in one compact answer: column names once, then rows",
    description="Built once each time the sensors or their health change, and served with an ETag: "
    "a request whose If-None-Match holds it is answered 304, with no body.",
)
def sensor_map(query):
    key = query.get("owner", "")  # everyone's map, or one owner's
    return _cached(*map_answers().get(engine(), key, sensor_filters(query)))


def _cached(etag: str, body: bytes) -> Response:
    """A cached JSON answer with its ETag: a request that holds the tag gets a 304 and no body."""
    answer = Response(body, mimetype="application/json")
    answer.set_etag(etag)
    answer.cache_control.no_cache = True  # a browser asks again each time: a 304 costs little
    return answer.make_conditional(request)


@api.get("/map/view")
@api.input(schemas.MapViewQuery, location="query", arg_name="query")
@api.output(schemas.MapView)
@api.doc(
    summary="The map of one view: clusters with their counts per status, single sensors once zoomed in",
    description="Clusters gather the sensors of 64-pixel squares of the zoom level (Web Mercator); a "
    "lone sensor, and every sensor from zoom 16, is a single marker. The clusters are built once each "
    "time the sensors or their health change; each view is served with an ETag (If-None-Match: 304).",
)
def map_view(query):
    key = query.get("owner", "")
    filters = sensor_filters(_only(query, "owner"))
    return _cached(
        *map_answers().view(engine(), key, filters, query["zoom"], query["bbox"], query.get("status"))
    )


@api.get("/changes")
@api.input(schemas.ChangesQuery, location="query", arg_name="query")
@api.output(schemas.ChangePage)
@api.doc(
    summary="What changed since a cursor, oldest first: days of readings, anomalies, health (for mirrors)",
    description="Start without `since`; pass each page's `cursor` as the next `since` while `more` is true, "
    "and again later for what changed since. No change is skipped or listed twice; a change is listed "
    "once it is CHANGES_SETTLE_S (10 minutes) old.",
)
def changes_since(query):
    from flask_back_end import changes

    try:
        with engine().connect() as connection:
            return changes.page(connection, query.get("since"), query["limit"], settings().changes_settle_s)
    except changes.BadCursor as error:
        abort(400, str(error))


@api.get("/sensors/<code:sensor_id>/anomalies")
@api.input(schemas.AnomalyQuery, location="query", arg_name="query")
@api.output(schemas.AnomalyPage)
@api.doc(summary="A sensor's anomalies, latest first: variable, kind, span, score, detector, explanation")
def sensor_anomalies(sensor_id: str, query):
    conditions = [anomalies.c.sensor_id == sensor_id]
    if "start" in query:
        conditions.append(anomalies.c.end_at >= query["start"])
    if "end" in query:
        conditions.append(anomalies.c.start_at <= query["end"])
    columns = [
        anomalies.c[name]
        for name in ("variable", "kind", "start_at", "end_at", "score", "detector", "explanation")
    ]
    answered = [anomaly_answers.c[name].label(f"answer_{name}") for name in ANSWER_FIELDS]
    same = and_(
        *(
            anomaly_answers.c[name] == anomalies.c[name]
            for name in ("sensor_id", "variable", "kind", "start_at")
        )
    )
    page, per_page = query["page"], query["per_page"]
    with engine().connect() as connection:
        ensure_sensor(connection, sensor_id)
        total = connection.scalar(select(func.count()).select_from(anomalies).where(*conditions))
        rows = connection.execute(
            select(*columns, *answered)
            .select_from(anomalies.outerjoin(anomaly_answers, same))
            .where(*conditions)
            .order_by(anomalies.c.start_at.desc(), anomalies.c.variable, anomalies.c.kind)
            .limit(per_page)
            .offset((page - 1) * per_page)
        ).all()
    return _page([_with_answer(dict(row._mapping)) for row in rows], total, query)


def _with_answer(row: dict) -> dict:
    """An anomaly's row with its owner's answer nested, or None."""
    said = {name: row.pop(f"answer_{name}") for name in ANSWER_FIELDS}
    return {**row, "answer": said if said["answer"] is not None else None}


def time_range(connection, sensor_id: str, query: dict) -> tuple[dt.datetime, dt.datetime]:
    """The asked range; by default the 9 days up to the sensor's latest reading (404 if no such sensor).
    At most API_MAX_RANGE_DAYS long (400 beyond): a range of decades would read a sensor's whole history
    into memory."""
    _, latest = reading_span(connection, sensor_id)
    if latest is None:
        ensure_sensor(connection, sensor_id)
        # All of it archived (READINGS_KEEP_MONTHS): the days before its last sample, from the archive.
        latest = connection.scalar(select(sensors.c.last_sample_at).where(sensors.c.sensor_id == sensor_id))
    end = query.get("end") or latest or dt.datetime.now(dt.UTC)
    start = query.get("start") or end - DEFAULT_SPAN
    longest = settings().api_max_range_days
    if end - start > dt.timedelta(days=longest):
        abort(
            400,
            f"bad parameter start, end: {start:%Y-%m-%d %H:%M}..{end:%Y-%m-%d %H:%M} UTC spans "
            f"{(end - start).days} days; at most {longest} days (API_MAX_RANGE_DAYS)",
        )
    return start, end


def ensure_sensor(connection, sensor_id: str) -> None:
    if connection.scalar(select(sensors.c.sensor_id).where(sensors.c.sensor_id == sensor_id)) is None:
        abort(404, f"no sensor {sensor_id}")


def station_link(connection, sensor_id: str):
    """The sensor's linked WOW station (site_id, distance_km, name), or None."""
    return connection.execute(
        select(sensor_wow.c.site_id, sensor_wow.c.distance_km, wow_sites.c.name)
        .select_from(sensor_wow.join(wow_sites))
        .where(sensor_wow.c.sensor_id == sensor_id)
    ).first()


def station_reports(connection, site_id: str, start: dt.datetime, end: dt.datetime) -> pd.DataFrame:
    return read_frame(
        connection,
        select(wow_observations.c.ts, wow_observations.c.air_temperature, wow_observations.c.rainfall)
        .where(wow_observations.c.site_id == site_id, wow_observations.c.ts.between(start, end))
        .order_by(wow_observations.c.ts),
    )


@api.get("/sensors/<code:sensor_id>/wow")
@api.input(schemas.TimeRangeQuery, location="query", arg_name="query")
@api.output(schemas.WowComparison)
@api.doc(summary="The sensor beside its WOW station, hour by hour: air temperature, soil moisture and rain")
def sensor_wow_comparison(sensor_id: str, query):
    with engine().connect() as connection:
        start, end = time_range(connection, sensor_id, query)
        link = station_link(connection, sensor_id)
        own = read_frame(
            connection,
            select(readings.c.ts, readings.c.air_temperature, readings.c.soil_moisture).where(
                readings.c.sensor_id == sensor_id, readings.c.ts.between(start, end)
            ),
        )
        station = station_reports(connection, link.site_id if link else "", start, end)
    hours = hourly_comparison(own, station)
    return json_response(  # a list of points, like the readings: built directly
        {
            "sensor_id": sensor_id,
            "station": {
                "site_id": link.site_id if link else None,
                "name": link.name if link else None,
                "distance_km": link.distance_km if link else None,
            },
            "start": start.isoformat(),
            "end": end.isoformat(),
            "items": records(hours),
        }
    )


def hourly_comparison(own: pd.DataFrame, station: pd.DataFrame) -> pd.DataFrame:
    """Hour by hour: the sensor's mean air temperature and soil moisture, the station's mean air
    temperature and summed rainfall (missing where a side has no sample that hour)."""
    columns = ["ts", "air_temperature", "soil_moisture", "station_air_temperature", "station_rainfall"]
    if own.empty and station.empty:
        return pd.DataFrame(columns=columns)
    sensor_side = own.set_index("ts")[["air_temperature", "soil_moisture"]].resample("1h").mean()
    station_side = pd.DataFrame(
        {
            "station_air_temperature": station.set_index("ts")["air_temperature"].resample("1h").mean(),
            "station_rainfall": station.set_index("ts")["rainfall"].resample("1h").sum(min_count=1),
        }
    )
    return sensor_side.join(station_side, how="outer").rename_axis("ts").reset_index()[columns]


@api.get("/network")
@api.output(schemas.NetworkCounts)
@api.doc(summary="The whole network in numbers: sensors, owners and sensors per status")
def network_counts():
    with engine().connect() as connection:
        sensor_count, owner_count = connection.execute(
            select(func.count(), func.count(sensors.c.owner_id.distinct()))
        ).one()
        by_status = counts_by_status(connection)
    return {"sensors": sensor_count, "owners": owner_count, "by_status": by_status}


@api.get("/owners/<code:owner_id>/stats")
@api.output(schemas.OwnerStats)
@api.doc(summary="One owner's sensors: how many, by status, with anomalies and the latest reading")
def owner_stats(owner_id: str):
    status = func.coalesce(sensor_health.c.status, UNCHECKED)
    with engine().connect() as connection:
        by_status = dict(
            connection.execute(
                select(status, func.count())
                .select_from(sensors.outerjoin(sensor_health))
                .where(sensors.c.owner_id == owner_id)
                .group_by(status)
            ).all()
        )
        if not by_status:
            abort(404, f"no sensors of owner {owner_id}")
        owned = select(sensors.c.sensor_id).where(sensors.c.owner_id == owner_id)
        found = connection.scalar(select(func.count()).where(anomalies.c.sensor_id.in_(owned)))
        latest = connection.scalar(
            select(func.max(sensor_health.c.latest_reading_at)).where(sensor_health.c.sensor_id.in_(owned))
        )
    return {
        "owner_id": owner_id,
        "sensors": sum(by_status.values()),
        "by_status": {s: by_status.get(s, 0) for s in COUNTED},
        "anomalies": found,
        "latest_reading_at": latest,
    }


@api.get("/addresses")
@api.input(schemas.AddressQuery, location="query", arg_name="query")
@api.output(schemas.Addresses)
@api.doc(summary="Address autocomplete: sensor addresses containing the text, with how many sensors each")
def addresses(query):
    pattern = f"%{query['q'].lower()}%"
    with engine().connect() as connection:
        rows = connection.execute(
            select(sensors.c.address, func.count())
            .where(func.lower(sensors.c.address).like(pattern), *sensor_filters(_only(query, "owner")))
            .group_by(sensors.c.address)
            .order_by(sensors.c.address)
            .limit(query["limit"])
        ).all()
    return {"items": [{"address": address, "sensors": count} for address, count in rows]}
