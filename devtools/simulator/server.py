"""The simulator's HTTP server: GROW API, WOW API and Google reverse geocoding, from a generated network.

It checks requests as production does (keys, at most 10 LocationCodes and 10 days per GROW request) and
can misbehave on request: latency, 5xx, 429 with Retry-After, truncated bodies and HTML instead of JSON.
`POST /sim/clock {"now": "<ISO time>"}` moves the simulated present, so late uploads can arrive.
"""

from __future__ import annotations

import datetime as dt
import json
import random
import threading
import time
from dataclasses import dataclass, field

import numpy as np
import orjson
from flask import Flask, Response, jsonify, request

from core.times import parse_grow_stamp, parse_utc
from core.vocabulary import GROW_DATA_SOURCE
from devtools.simulator.network import MISSING, NODATA, SCALE, STEP, Network, Window

GROW_NODATA = -9999
# Variable code suffix → (stored variable, DataSourceVariableId, unit, display name)
GROW_SERIES = {
    "soil_moisture": ("soil_moisture", 1, "%", "Soil Moisture"),
    "light": ("light", 2, "mol/m2/d", "Light"),
    "air_temperature": ("air_temperature", 3, "°C", "Air Temperature"),
    "calibrated_soil_moisture": ("soil_moisture", 4, "%", "Calibrated Soil Moisture"),
    "battery_level": ("battery_level", 5, "%", "Battery Level"),
}
GROW_MAX_LOCATIONS = 10
GROW_MAX_DAYS = 10
WOW_MAX_DAYS_PER_SITE = 31
WOW_MAX_DAYS_PER_BOX = 1
FAILURES = ("5xx", "429", "truncated", "html")


@dataclass
class Misbehaviour:
    """How often and how the server fails; all off by default."""

    error_rate: float = 0.0
    failures: tuple[str, ...] = FAILURES
    latency_ms: float = 0.0
    retry_after_s: int = 1
    seed: int = 0
    rng: random.Random = field(init=False)
    lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self):
        unknown = set(self.failures) - set(FAILURES)
        if unknown:
            raise ValueError(f"unknown failure kinds {sorted(unknown)}; choose from {', '.join(FAILURES)}")
        self.rng = random.Random(self.seed)

    def draw(self) -> str | None:
        with self.lock:
            if self.failures and self.rng.random() < self.error_rate:
                return self.rng.choice(self.failures)
        return None


@dataclass
class Keys:
    grow: str = "sim-grow-key"
    wow: str = "sim-wow-key"
    google: str = "AIzaSim-google-key"


def grow_timestamps(times_us: np.ndarray) -> np.ndarray:
    """µs since 1970 → GROW's 'yyyymmddHHMMSS' strings (UTC)."""
    iso = np.datetime_as_string((times_us // 1_000_000).astype("datetime64[s]"), unit="s").astype("S19")
    digits = iso.view(np.uint8).reshape(-1, 19)[:, [0, 1, 2, 3, 5, 6, 8, 9, 11, 12, 14, 15, 17, 18]]
    return np.ascontiguousarray(digits).view("S14").ravel().astype(str)


def _grow_time(value: str) -> dt.datetime:
    return parse_grow_stamp(value)


def _grow_stamp(when: dt.datetime) -> str:
    return when.astimezone(dt.UTC).strftime("%Y%m%d%H%M%S")


def _value_texts() -> np.ndarray:
    """JSON text of every stored int16 value: a lookup beats formatting a million floats."""
    texts = np.array([f"{v / SCALE:.2f}".rstrip("0").rstrip(".") for v in range(-32768, 32768)], dtype=object)
    texts[NODATA + 32768] = str(GROW_NODATA)
    return texts


class Simulator:
    """The state behind the server: the network, the simulated present, keys and misbehaviour."""

    def __init__(self, network: Network, now: dt.datetime | None, keys: Keys, misbehaviour: Misbehaviour):
        self.network = network
        self.now = now or min(dt.datetime.now(dt.UTC), network.end)
        self.keys = keys
        self.misbehaviour = misbehaviour
        self.value_texts = _value_texts()

    def visible_steps(self) -> list[tuple[int, int] | None]:
        """Per sensor, its first and last uploaded step at the simulated present (None: nothing yet)."""
        sensors = self.network.sensors
        last = np.minimum(self.network.uploaded_until(self.now) - 1, sensors["last_step"].to_numpy())
        first = sensors["first_step"].to_numpy()
        return [(int(f), int(la)) if la >= f else None for f, la in zip(first, last)]


def create_app(
    network: Network,
    now: dt.datetime | None = None,
    keys: Keys | None = None,
    misbehaviour: Misbehaviour | None = None,
) -> Flask:
    """The simulator as a WSGI app: GROW under /grow/api, WOW under /wow/api, geocoding under /maps/api."""
    app = Flask(__name__)
    app.json.sort_keys = False
    sim = Simulator(network, now, keys or Keys(), misbehaviour or Misbehaviour())
    app.extensions["simulator"] = sim

    @app.before_request
    def misbehave():
        if request.path.startswith("/sim/"):
            return None
        if sim.misbehaviour.latency_ms:
            time.sleep(sim.misbehaviour.latency_ms / 1000)
        failure = sim.misbehaviour.draw()
        request.environ["sim.failure"] = failure
        if failure == "5xx":
            status = sim.misbehaviour.rng.choice([500, 502, 503])
            return _grow_error(status, "Error detail: simulated-failure")
        if failure == "429":
            response = _grow_error(429, "Rate limit is exceeded. Try again later.")
            response.headers["Retry-After"] = str(sim.misbehaviour.retry_after_s)
            return response
        if failure == "html":
            return Response(
                "<html><body><h1>Service Unavailable</h1></body></html>", 200, mimetype="text/html"
            )
        return None

    @app.after_request
    def truncate(response: Response):
        if request.environ.get("sim.failure") == "truncated" and response.status_code == 200:
            body = response.get_data()
            response.set_data(body[: max(1, len(body) // 2)])
        return response

    @app.post("/sim/clock")
    def set_clock():
        body = request.get_json(silent=True) or {}
        try:
            sim.now = parse_utc(body["now"])
        except (KeyError, TypeError, ValueError):
            return jsonify({"error": "bad_request", "message": 'send {"now": "<ISO 8601 time>"}'}), 400
        return jsonify({"now": sim.now.isoformat()})

    @app.get("/sim/health")
    def health():
        return jsonify({"status": "ok", "now": sim.now.isoformat(), "sensors": len(network.sensors)})

    _grow_routes(app, sim)
    _wow_routes(app, sim)
    _google_routes(app, sim)
    return app


# --- GROW ---------------------------------------------------------------------------------------------


def _grow_error(status: int, message: str) -> Response:
    response = jsonify({"Exception": {"Name": status, "Message": message}})
    response.status_code = status
    return response


def _grow_authorised(sim: Simulator) -> bool:
    return request.headers.get("Authorization", "") == f"Bearer {sim.keys.grow}"


def _grow_routes(app: Flask, sim: Simulator) -> None:
    network = sim.network

    @app.post("/grow/api/entity/locations/get")
    def locations():
        if not _grow_authorised(sim):
            return _grow_error(401, "Unauthorized: a valid API key is required")
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or body.get("DataSourceCodes") != [GROW_DATA_SOURCE]:
            return _grow_error(400, f'the body must be {{"DataSourceCodes": ["{GROW_DATA_SOURCE}"]}}')
        owner = body.get("UserId")
        found = {}
        visible = sim.visible_steps()
        for i, row in network.sensors.iterrows():
            steps = visible[i]
            if steps is None or (owner and row["owner_id"] != owner):
                continue
            first, last = (network.start + s * STEP for s in steps)
            found[f"Grow.Thingful#{row['sensor_id']}"] = {
                "Code": row["sensor_id"],
                "DataSourceGroupCode": "Grow.Thingful",
                "Identifier": f"Grow.Thingful#{row['sensor_id']}",
                "Name": row["name"],
                "SerialNumber": row["serial_number"],
                "UserUid": row["owner_id"],
                "LocationId": i + 1,
                "ProjectionId": 3,
                "X": row["longitude"],
                "Y": row["latitude"],
                "Z": 0,
                "FirstSampleTimestamp": int(_grow_stamp(first)),
                "LastAvailableSampleTimestamp": int(_grow_stamp(last)),
                "LastFetchedSampleTimestamp": int(_grow_stamp(last)),
            }
        return jsonify({"Locations": found})

    @app.post("/grow/api/entity/timeSeriesInformations/get")
    def time_series_informations():
        if not _grow_authorised(sim):
            return _grow_error(401, "Unauthorized: a valid API key is required")
        found, n = {}, 0
        visible = sim.visible_steps()
        for i, row in network.sensors.iterrows():
            steps = visible[i]
            if steps is None:
                continue
            first, last = (_grow_stamp(network.start + s * STEP) for s in steps)
            for _, variable_id, _, _ in GROW_SERIES.values():
                n += 1
                found[str(n)] = {
                    "TimeSeriesInformationId": n,
                    "LocationIdentifier": f"Grow.Thingful.{row['sensor_id']}",
                    "DataSourceVariableId": variable_id,
                    "StartDate": first,
                    "EndDate": last,
                }
        return jsonify({"TimeSeriesInformations": found})

    @app.post("/grow/api/timeSeries/get")
    def time_series():
        if not _grow_authorised(sim):
            return _grow_error(401, "Unauthorized: a valid API key is required")
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return _grow_error(400, "Unexpected error parsing JSON payload: request body must be valid JSON")
        problem, query = _check_time_series_request(body)
        if problem:
            return _grow_error(400, problem)
        codes, variables, start, end, ascending = query
        return Response(
            _time_series_body(sim, codes, variables, start, end, ascending), mimetype="application/json"
        )


def _check_time_series_request(body: dict):
    readers = body.get("Readers")
    if not isinstance(readers, list) or len(readers) != 1:
        return "exactly one Reader is supported", None
    reader = readers[0] if isinstance(readers[0], dict) else {}
    if reader.get("DataSourceCode") != GROW_DATA_SOURCE:
        return f"DataSourceCode must be {GROW_DATA_SOURCE}", None
    settings = reader.get("Settings")
    if not isinstance(settings, dict):
        return "Settings are required", None
    codes, variables = settings.get("LocationCodes"), settings.get("VariableCodes")
    if not isinstance(codes, list) or not codes or not all(isinstance(c, str) for c in codes):
        return "LocationCodes must be a non-empty list of sensor codes", None
    if len(codes) > GROW_MAX_LOCATIONS:
        return f"at most {GROW_MAX_LOCATIONS} LocationCodes per request", None
    prefix = f"{GROW_DATA_SOURCE}."
    if not isinstance(variables, list) or not variables:
        return "VariableCodes must be a non-empty list", None
    unknown = [v for v in variables if not (isinstance(v, str) and v.removeprefix(prefix) in GROW_SERIES)]
    if unknown or not all(v.startswith(prefix) for v in variables):
        return f"unknown VariableCodes: {unknown or variables}", None
    try:
        start, end = _grow_time(settings["StartDate"]), _grow_time(settings["EndDate"])
    except (KeyError, TypeError, ValueError):
        return "StartDate and EndDate must be yyyymmddHHMMSS", None
    if end < start:
        return "EndDate is before StartDate", None
    if end - start > dt.timedelta(days=GROW_MAX_DAYS):
        return f"time range exceeds the maximum of {GROW_MAX_DAYS} days", None
    ascending = str(settings.get("Order", "")).lower() == "asc"
    return None, (codes, [v.removeprefix(prefix) for v in variables], start, end, ascending)


def _time_series_body(sim: Simulator, codes, variables, start, end, ascending) -> str:
    """Build the answer as text: one entry per (location, variable), samples in the requested order."""
    network = sim.network
    limits = network.uploaded_until(sim.now)
    entries, meta_locations = [], {}
    for code in dict.fromkeys(codes):
        i = network.sensor_index.get(code)
        if i is None:
            continue
        row = network.sensor_records[i]
        window = network.window(start, end, int(row["phase_s"]))
        last = min(window.last, int(limits[i]) - 1)
        if last < window.first:
            continue
        times = network.sensor_times_us(i, Window(window.first, last))
        stamps = grow_timestamps(times)
        meta_locations[code] = {
            "Identifier": f"Grow.Thingful#{code}",
            "Name": row["name"],
            "DataSourceGroupCode": "Grow.Thingful",
            "Code": code,
            "X": row["longitude"],
            "Y": row["latitude"],
            "Z": 0,
            "ProjectionId": 3,
        }
        for suffix in variables:
            stored, variable_id, _, _ = GROW_SERIES[suffix]
            raw = np.asarray(network.grow[stored][i, window.first : last + 1])
            if suffix == "soil_moisture":  # the raw reading, before calibration
                raw = np.where(raw > NODATA, np.round(raw * 0.85 + 200), raw).astype(np.int16)
            keep = np.flatnonzero(raw != MISSING)
            if not ascending:
                keep = keep[::-1]
            texts = sim.value_texts[raw[keep].astype(np.int64) + 32768].tolist()
            points = ",".join(
                [
                    f'{{"Value":{v},"DateTime":"{t}","Availability":1,"Quality":0}}'
                    for v, t in zip(texts, stamps[keep].tolist())
                ]
            )
            header = {
                "StartDate": _grow_stamp(start),
                "EndDate": _grow_stamp(end),
                "LocationIdentifier": f"Grow.Thingful#{code}",
                "LocationCode": code,
                "SensorName": row["name"],
                "SerialNumber": row["serial_number"],
                "DataType": "Double",
                "VariableCode": f"{GROW_DATA_SOURCE}.{suffix}",
                "DataSourceVariableId": variable_id,
                "NoDataValue": GROW_NODATA,
                "CalculationType": "None",
                "Interval": {"Type": "None", "Value": 0.0},
                "TimeZoneOffset": "+0000",
                "IsCumulative": False,
                "UseQuality": False,
                "Data": None,
            }
            entries.append(json.dumps(header)[:-5] + "[" + points + "]}")  # replace the trailing `null}`
    meta = {
        "Locations": meta_locations,
        "Variables": {
            f"{GROW_DATA_SOURCE}.{s}": {
                "State": 1,
                "Name": GROW_SERIES[s][3],
                "Code": f"{GROW_DATA_SOURCE}.{s}",
                "UnitCode": GROW_SERIES[s][2],
                "VariableId": GROW_SERIES[s][1],
            }
            for s in variables
        },
        "Projections": {
            "3": {
                "ProjectionId": 3,
                "Name": "WGS84",
                "Epsg": 4326,
                "ProjectionString": "+proj=longlat +ellps=WGS84 +datum=WGS84 +no_defs ",
            }
        },
    }
    return '{"Data":[' + ",".join(entries) + '],"Meta":' + json.dumps(meta) + "}"


# --- WOW ----------------------------------------------------------------------------------------------


def wow_observations(network: Network, sites: list[str], start: dt.datetime, end: dt.datetime) -> list[dict]:
    """The stations' reports with ReportEndDateTime in [start, end], as WOW's byversion answers them."""
    found = network.station_observations(sites, start, end)
    site_ids = found["site_id"].tolist()
    rows = np.array([network.station_index[site] for site in site_ids], dtype=np.int64)
    stations = network.stations
    ends = found["ts"].dt.tz_convert(None).to_numpy()
    steps = (ends - np.datetime64(network.start.replace(tzinfo=None))) // np.timedelta64(STEP)  # for Id
    interval = stations["interval_steps"].to_numpy(dtype=np.int64)[rows] * np.timedelta64(STEP)

    def values(name: str) -> list:
        v = found[name].to_numpy()
        return np.where(np.isnan(v), None, v).tolist()

    columns = zip(
        site_ids,
        steps.tolist(),
        stations["latitude"].to_numpy(dtype=float)[rows].tolist(),
        stations["longitude"].to_numpy(dtype=float)[rows].tolist(),
        stations["is_official"].to_numpy(dtype=bool)[rows].tolist(),
        np.datetime_as_string(ends - interval, unit="s").tolist(),
        np.datetime_as_string(ends, unit="s").tolist(),
        values("air_temperature"),
        values("rainfall"),
        values("relative_humidity"),
    )
    return [
        {
            "Id": f"{site}-{step}",
            "SiteId": site,
            "Latitude": latitude,
            "Longitude": longitude,
            "IsOfficial": official,
            "IsLatestVersion": True,
            "Version": 1,
            "ReportStartDateTime": began,
            "ReportEndDateTime": ended,
            "DryBulbTemperature_Celsius": temperature,
            "RainfallAmount_Millimetre": rain,
            "RelativeHumidity": humidity,
        }
        for site, step, latitude, longitude, official, began, ended, temperature, rain, humidity in columns
    ]


def _wow_time(value: str | None) -> dt.datetime:
    if not value:
        raise ValueError("missing")
    return parse_utc(value)


def _wow_error(status: int, message: str) -> Response:
    response = jsonify({"statusCode": status, "message": message})
    response.status_code = status
    return response


def _wow_routes(app: Flask, sim: Simulator) -> None:
    network = sim.network
    app.config["WOW_BARE_LIST"] = False

    @app.get("/wow/api/observations/byversion")
    def byversion():
        if request.headers.get("Ocp-Apim-Subscription-Key") != sim.keys.wow:
            return _wow_error(401, "Access denied due to invalid subscription key.")
        args = request.args
        try:
            start, end = _wow_time(args.get("start_time")), _wow_time(args.get("end_time"))
        except ValueError:
            return _wow_error(400, "start_time and end_time must be ISO 8601 times, e.g. 2019-05-10T19:41:57")
        if end < start:
            return _wow_error(400, "end_time is before start_time")
        end = min(end, sim.now)
        box = [
            args.get(k) for k in ("top_left_lat", "top_left_long", "bottom_right_lat", "bottom_right_long")
        ]
        if args.get("site_id"):
            if end - start > dt.timedelta(days=WOW_MAX_DAYS_PER_SITE):
                return _wow_error(400, f"a site query spans at most {WOW_MAX_DAYS_PER_SITE} days")
            site = args["site_id"]
            found = wow_observations(network, [site], start, end) if site in network.station_index else []
        elif all(box):
            try:
                top, left, bottom, right = (float(v) for v in box)
            except ValueError:
                return _wow_error(400, "the bounding box needs four numbers")
            if end - start > dt.timedelta(days=WOW_MAX_DAYS_PER_BOX):
                return _wow_error(400, f"a bounding-box query spans at most {WOW_MAX_DAYS_PER_BOX} day")
            stations = network.stations
            inside = stations[
                stations["latitude"].between(bottom, top) & stations["longitude"].between(left, right)
            ]
            found = wow_observations(network, list(inside["site_id"]), start, end)
        else:
            return _wow_error(400, "give site_id or the four bounding-box parameters")
        payload = found if app.config["WOW_BARE_LIST"] else {"Object": found}
        return Response(orjson.dumps(payload), mimetype="application/json")


# --- Google reverse geocoding -------------------------------------------------------------------------


def _google_routes(app: Flask, sim: Simulator) -> None:
    @app.get("/maps/api/geocode/json")
    def geocode():
        if request.args.get("key") != sim.keys.google:
            return jsonify(
                {
                    "status": "REQUEST_DENIED",
                    "error_message": "The provided API key is invalid.",
                    "results": [],
                }
            )
        try:
            lat, lng = (float(v) for v in request.args["latlng"].split(","))
        except (KeyError, ValueError):
            return jsonify({"status": "INVALID_REQUEST", "results": []})
        import reverse_geocode

        place = reverse_geocode.get((lat, lng))
        parts = [p for p in (place.get("city"), place.get("state"), place.get("country")) if p]
        return jsonify(
            {
                "status": "OK",
                "results": [
                    {
                        "formatted_address": ", ".join(parts),
                        "address_components": [
                            {
                                "long_name": place.get("city"),
                                "short_name": place.get("city"),
                                "types": ["locality", "political"],
                            },
                            {
                                "long_name": place.get("country"),
                                "short_name": place.get("country_code"),
                                "types": ["country", "political"],
                            },
                        ],
                        "geometry": {"location": {"lat": lat, "lng": lng}},
                        "types": ["locality", "political"],
                    }
                ],
            }
        )
