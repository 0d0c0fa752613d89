"""The simulated network as openSenseMap serves it, under /osem: each sensor a senseBox:home with an SMT50
soil probe, an HDC1080 for the air and a TSL45315 for light (in lux); no battery. Beside them, as on
the real map, indoor boxes (a copy of every 20th sensor, brought in) and air-quality boxes with no soil
probe, which a client must leave out.

A senseBox measures every few minutes: each 15-minute sample of the network is served as PER_STEP
measurements three minutes apart within its quarter hour, all with its value, at odd milliseconds. Their
15-minute means are the network's readings (`expected_readings`), the truth a client must fetch.

What the real API refuses, this refuses the same way (restify's `{"code", "message"}`): from-date
without to-date (400), from after to (422), more than the documented month (422), a box id that is not
24 hex digits (422), an unknown box or sensor (404). Answers hold at most 10,000 measurements, newest
first.
"""

from __future__ import annotations

import datetime as dt
import hashlib

import numpy as np
import orjson
import pandas as pd
from flask import Flask, Response, jsonify, request

from core.times import parse_utc
from core.vocabulary import LIGHT_PER_LUX
from devtools.simulator.network import NODATA, SCALE, STEP, Network, Window

PER_STEP = 5
SPACING_S = 180
PAGE = 10_000
MAX_SPAN = dt.timedelta(days=31)
GROUPTAG = "grow-wow-sim"
EXTRA_EVERY = 20  # one indoor box and one air-quality box for every 20 sensors
# Our variable → the senseBox:home sensor serving it: title, unit, type, factor from our unit.
SENSORS = {
    "soil_moisture": ("Bodenfeuchte", "%", "SMT50", 1.0),
    "air_temperature": ("Temperatur", "°C", "HDC1080", 1.0),
    "light": ("Beleuchtungsstärke", "lx", "TSL45315", 1 / LIGHT_PER_LUX),
}
AIR_QUALITY = {"PM10": "µg/m³", "PM2.5": "µg/m³"}


def hex_id(*parts: str) -> str:
    """A stable 24-hex-digit id (openSenseMap's are MongoDB ObjectIds)."""
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:24]


def box_id(sensor_id: str) -> str:
    return hex_id("box", sensor_id)


def _error(status: int, code: str, message: str) -> Response:
    response = jsonify({"code": code, "message": message})
    response.status_code = status
    return response


class Boxes:
    """The boxes of a network: {box id: (kind, sensor index)}, kind "garden", "indoor" or "air"."""

    def __init__(self, network: Network):
        self.network = network
        self.by_id: dict[str, tuple[str, int]] = {}
        for i, record in enumerate(network.sensor_records):
            self.by_id[box_id(record["sensor_id"])] = ("garden", i)
            if i % EXTRA_EVERY == 0:
                self.by_id[hex_id("indoor", record["sensor_id"])] = ("indoor", i)
                self.by_id[hex_id("air", record["sensor_id"])] = ("air", i)

    def box(self, box: str, visible: list) -> dict | None:
        """A box as `GET /boxes/:id` shows it, or None before its first measurement."""
        kind, i = self.by_id[box]
        steps = visible[i]
        if steps is None:
            return None
        record = self.network.sensor_records[i]
        first, last = (self.network.start + s * STEP for s in steps)
        if kind == "air":
            sensors = [
                {"_id": hex_id(box, title), "title": title, "unit": unit, "sensorType": "SDS 011"}
                for title, unit in AIR_QUALITY.items()
            ]
        else:
            sensors = [
                {"_id": hex_id(box, variable), "title": title, "unit": unit, "sensorType": kind_of}
                for variable, (title, unit, kind_of, _) in SENSORS.items()
            ]
        stamp = first.strftime("%Y-%m-%dT%H:%M:%S.000Z")
        return {
            "_id": box,
            "name": record["name"] if kind == "garden" else f"{record['name']} ({kind})",
            "exposure": "indoor" if kind == "indoor" else "outdoor",
            "model": "homeV2Wifi",
            "grouptag": [GROUPTAG],
            "createdAt": stamp,
            "updatedAt": last.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "lastMeasurementAt": last.strftime("%Y-%m-%dT%H:%M:%S.000Z"),
            "currentLocation": {
                "type": "Point",
                "coordinates": [record["longitude"], record["latitude"], 0],
                "timestamp": stamp,
            },
            "sensors": sensors,
        }


def measurement_times(network: Network, sensor: int, window: Window) -> np.ndarray:
    """µs since 1970 of the PER_STEP measurements of each step in the window (steps × PER_STEP): three
    minutes apart from a few seconds after the quarter hour, at odd milliseconds."""
    steps = np.arange(window.first, window.last + 1, dtype=np.int64)
    quarter = (int(network.start.timestamp()) + steps * 900) * 1_000_000
    offsets = np.arange(PER_STEP, dtype=np.int64) * SPACING_S * 1_000_000
    jitter = (7_000 + (np.arange(PER_STEP) * 137 + sensor * 31) % 1000) * 1_000  # 7.000–7.999 s
    return quarter[:, None] + offsets[None, :] + jitter[None, :]


def served(network: Network, sensor: int, variable: str, start, end, now) -> tuple[np.ndarray, np.ndarray]:
    """(times in µs, values in our unit) of one variable of one box in [start, end], oldest first."""
    limit = int(network.uploaded_until(now)[sensor])
    window = network.window(start - STEP, end)
    window = Window(window.first, min(window.last, limit - 1))
    if window.last < window.first:
        return np.array([], dtype=np.int64), np.array([])
    raw = np.asarray(network.grow[variable][sensor, window.first : window.last + 1])
    times = measurement_times(network, sensor, window)
    keep = (raw > NODATA)[:, None] & np.ones(PER_STEP, dtype=bool)[None, :]
    values = np.repeat((raw / SCALE)[:, None], PER_STEP, axis=1)
    start_us, end_us = int(start.timestamp() * 1e6), int(end.timestamp() * 1e6)
    keep &= (times >= start_us) & (times <= end_us)
    return times[keep], values[keep]


def expected_readings(network: Network, codes: list[str], start, end, now) -> pd.DataFrame:
    """What a client must store for these network sensors: 15-minute means of what is served (a bin
    whose measurements all fall in [start, end]); our ids (`osem:<box>`), battery missing."""
    frames = []
    for code in codes:
        i = network.sensor_index[code]
        columns = {}
        for variable in SENSORS:
            times, values = served(network, i, variable, start, end, now)
            bins = pd.to_datetime(times, unit="us", utc=True).floor("15min")
            columns[variable] = pd.Series(values, index=bins).groupby(level=0).mean()
        frame = pd.DataFrame(columns).sort_index()
        if frame.empty:
            continue
        frame.index.name = "ts"
        frame = frame.reset_index()
        frame.insert(0, "sensor_id", f"osem:{box_id(code)}")
        frame["battery_level"] = np.nan
        frames.append(frame)
    if not frames:
        return pd.DataFrame(columns=["sensor_id", "ts", *SENSORS, "battery_level"])
    return pd.concat(frames, ignore_index=True)


def routes(app: Flask, sim) -> None:
    """openSenseMap's read routes under /osem, on the simulator's app."""
    boxes = Boxes(sim.network)

    @app.get("/osem/boxes")
    def list_boxes():
        visible = sim.visible_steps()
        found = [boxes.box(box, visible) for box in boxes.by_id]
        found = [box for box in found if box is not None]
        if "bbox" in request.args:
            try:
                west, south, east, north = (float(x) for x in request.args["bbox"].split(","))
            except ValueError:
                return _error(
                    422,
                    "UnprocessableEntity",
                    "Illegal value for parameter bbox. allowed values: 4 WGS84 coordinates",
                )
            found = [
                box
                for box in found
                if west <= box["currentLocation"]["coordinates"][0] <= east
                and south <= box["currentLocation"]["coordinates"][1] <= north
            ]
        if "grouptag" in request.args:
            tags = set(request.args["grouptag"].split(","))
            found = [box for box in found if tags & set(box["grouptag"])]
        if "exposure" in request.args:
            exposures = set(request.args["exposure"].split(","))
            found = [box for box in found if box["exposure"] in exposures]
        return jsonify(found)

    @app.get("/osem/boxes/<box>")
    def one_box(box: str):
        if len(box) != 24 or any(c not in "0123456789abcdef" for c in box):
            return _error(
                422, "UnprocessableEntity", "Illegal value for parameter boxId. allowed values: 24 hex digits"
            )
        if box not in boxes.by_id:
            return _error(404, "NotFound", "Box not found")
        found = boxes.box(box, sim.visible_steps())
        return jsonify(found) if found else _error(404, "NotFound", "Box not found")

    @app.get("/osem/boxes/<box>/data/<sensor>")
    def data(box: str, sensor: str):
        if box not in boxes.by_id:
            return _error(404, "NotFound", "Box not found")
        kind, i = boxes.by_id[box]
        variable = next((v for v in SENSORS if hex_id(box, v) == sensor), None)
        if kind == "air" or variable is None:
            return _error(404, "NotFound", f"Sensor with id {sensor} does not exist")
        given = [name for name in ("from-date", "to-date") if name in request.args]
        if len(given) == 1:
            return _error(400, "BadRequest", "fromDate and toDate need to be specified simultaneously")
        try:
            end = parse_utc(request.args["to-date"]) if given else sim.now
            start = parse_utc(request.args["from-date"]) if given else end - dt.timedelta(hours=48)
        except ValueError:
            return _error(
                422, "UnprocessableEntity", "Illegal value for parameter from-date or to-date: RFC 3339 dates"
            )
        if start > end:
            return _error(
                422,
                "UnprocessableEntity",
                f"Invalid time frame specified: fromDate ({start:%Y-%m-%dT%H:%M:%SZ}) is after toDate",
            )
        if end - start > MAX_SPAN:
            return _error(
                422, "UnprocessableEntity", "Invalid time frame specified: the maximum time frame is 1 month"
            )
        times, values = served(sim.network, i, variable, start, end, sim.now)
        newest = np.argsort(-times, kind="stable")[:PAGE]
        stamps = np.datetime_as_string(times[newest].astype("datetime64[us]"), unit="ms")
        texts = np.char.mod("%.2f", values[newest] * SENSORS[variable][3])
        location = [sim.network.sensor_records[i]["longitude"], sim.network.sensor_records[i]["latitude"]]
        items = [
            {"value": text, "createdAt": f"{stamp}Z", "location": location}
            for text, stamp in zip(texts.tolist(), stamps.tolist())
        ]
        return Response(orjson.dumps(items), mimetype="application/json")
