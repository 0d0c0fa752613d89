"""The simulator's HTTP server: GROW API, WOW API and Google reverse geocoding, from a generated network.

It checks requests as production does (keys, at most 10 LocationCodes and 10 days per GROW request) and
misbehaves on request (`Misbehaviour`, everything off by default):

- it fails: latency, 5xx, 429 with Retry-After, truncated bodies, HTML instead of JSON, WOW down (503);
- it lies in a 200 answer, as a hostile upstream might: it leaves out requested sensors or variables,
  stamps a sensor's samples in the future (a wrong clock), adds a code nobody asked for, poisons sensor
  names (a NUL, 500 characters), adds location records whose Code is no valid id, writes non-finite
  numbers (`Infinity`, `1e999`: not JSON), holds a day of readings back until later days have arrived,
  and trickles a body a few bytes at a time.

Every draw is a stable hash of (seed, simulated night = the UTC date of the present, kind of
misbehaviour, the thing drawn for), so the same request on the same night gets the same answer, the
next night draws afresh, and a run is repeatable. Late days leave the night out: a day once held back
stays held back until it is due, so a served reading never vanishes and `Network.visible_readings`
still describes what is finally served.

Control endpoints (they never misbehave):

- `POST /sim/clock {"now": "<ISO time>"}` moves the simulated present, so late uploads can arrive.
- `GET /sim/misbehaviour` gives the settings; `POST /sim/misbehaviour {"<field>": <value>, ...}` sets the
  fields given (400 with a message for an unknown field, a wrong type or a value out of range).
- `GET /sim/poisoned` (and `Simulator.poisoned()`) lists each poisoned record served whole so far, once,
  in the order first served. Omissions, late days, unasked codes and trickles are not poison: there is
  nothing of theirs for a client to store. The entries:

      {"kind": "name", "source": "grow", "sensor_id": str, "name": str}   # a Name in Locations
      {"kind": "id", "source": "grow", "code": str}                      # an extra location's Code
      {"kind": "value", "source": "grow", "sensor_id": str, "variable": str, "variable_code": str,
       "DateTime": str, "text": str}
      {"kind": "value", "source": "wow", "site_id": str, "variable": "air_temperature",
       "variable_code": "DryBulbTemperature_Celsius", "DateTime": str, "text": str}
      {"kind": "future", "source": "grow", "sensor_id": str, "variable": str, "variable_code": str,
       "DateTime": str, "true_time": str}
      {"kind": "future", "source": "wow", "site_id": str, "DateTime": str, "true_time": str}

  `variable` is our name (soil_moisture for both GROW's raw and calibrated codes), `variable_code` the
  code served (e.g. "Thingful.Connectors.GROWSensors.calibrated_soil_moisture"). `DateTime` is the
  stamp as served (GROW "yyyymmddHHMMSS"; WOW the ReportEndDateTime), `true_time` the stamp the sample
  would have had, in the same format. `text` is the literal written: Infinity, -Infinity, 1e999, -1e999.
"""

from __future__ import annotations

import datetime as dt
import functools
import hashlib
import json
import random
import re
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields, replace

import numpy as np
import orjson
from flask import Flask, Response, has_request_context, jsonify, request

from core.times import parse_grow_stamp, parse_utc
from core.vocabulary import GROW_DATA_SOURCE
from devtools.simulator import osem
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

NON_FINITE = ("Infinity", "-Infinity", "1e999", "-1e999")  # what a sloppy JSON writer emits for ±inf
POISONED_NAME_LENGTH = 500
BAD_ID_LENGTH = 80  # beyond the 64 characters an id may have
UNASKED_SAMPLES = 4  # per variable of a code nobody asked for
TRICKLE_BYTES = 4
DAY_US = 86_400_000_000
# Plausible readings for a code nobody asked for: (low, high) per stored variable.
PLAUSIBLE = {
    "soil_moisture": (15.0, 45.0),
    "light": (0.0, 20.0),
    "air_temperature": (8.0, 24.0),
    "battery_level": (40.0, 100.0),
}
NON_NEGATIVE = ("latency_ms", "retry_after_s", "future_shift_days", "late_days", "trickle_s")


@dataclass
class Misbehaviour:
    """How often and how the server fails or lies; all off by default (see the module docstring)."""

    error_rate: float = 0.0
    failures: tuple[str, ...] = FAILURES
    latency_ms: float = 0.0
    retry_after_s: int = 1
    seed: int = 0
    # Lies in a 200 answer; each rate is a probability per thing named.
    omit_sensor_rate: float = 0.0  # per requested code: no entries and no Meta.Locations for it
    omit_variable_rate: float = 0.0  # per variable of a kept code: no entry for it
    future_rate: float = 0.0  # per code (GROW) or site (WOW) in an answer: all its stamps shifted
    future_shift_days: float = 30.0
    unrequested_rate: float = 0.0  # per answer: entries of a made-up code nobody asked for
    poison_name_rate: float = 0.0  # per listed sensor: a Name holding a NUL, or 500 characters long
    bad_id_rate: float = 0.0  # per listed sensor: an extra location record with an invalid Code
    infinity_rate: float = 0.0  # per sample value: a non-finite literal instead of the number
    late_rate: float = 0.0  # per (sensor, day): the day held back until `late_days` after its end
    late_days: float = 2.0
    trickle_rate: float = 0.0  # per request: the body sent TRICKLE_BYTES at a time, `trickle_s` apart
    trickle_s: float = 1.0
    wow_down: bool = False  # every WOW request answers 503
    rng: random.Random = field(init=False)
    lock: threading.Lock = field(init=False, default_factory=threading.Lock)

    def __post_init__(self):
        self.failures = tuple(self.failures)
        unknown = set(self.failures) - set(FAILURES)
        if unknown:
            raise ValueError(f"unknown failure kinds {sorted(unknown)}; choose from {', '.join(FAILURES)}")
        for name in self.settings():
            value = getattr(self, name)
            if name.endswith("_rate") and not 0 <= value <= 1:
                raise ValueError(f"{name} must be between 0 and 1, not {value}")
            if name in NON_NEGATIVE and not value >= 0:
                raise ValueError(f"{name} must be at least 0, not {value}")
        self.rng = random.Random(self.seed)

    def draw(self) -> str | None:
        with self.lock:
            if self.failures and self.rng.random() < self.error_rate:
                return self.rng.choice(self.failures)
        return None

    def settings(self) -> dict:
        """The fields one may set, with their values (JSON-ready)."""
        return {
            f.name: list(value) if isinstance(value := getattr(self, f.name), tuple) else value
            for f in fields(self)
            if f.init
        }

    def changed(self, changes) -> Misbehaviour:
        """A copy with the fields of `changes` (a decoded JSON object) set; ValueError says what is wrong."""
        if not isinstance(changes, dict):
            raise ValueError("send a JSON object of misbehaviour fields")
        kinds = {f.name: f.type for f in fields(self) if f.init}
        unknown = sorted(set(changes) - set(kinds))
        if unknown:
            raise ValueError(f"unknown fields {unknown}; the fields are {', '.join(kinds)}")
        return replace(self, **{name: _setting(name, kinds[name], v) for name, v in changes.items()})


def _setting(name: str, kind: str, value):
    """A JSON value as the field's type, or ValueError (a bool is no number; an int is a float)."""
    number = isinstance(value, int | float) and not isinstance(value, bool)
    if kind == "float" and number:
        return float(value)
    if kind == "int" and number and isinstance(value, int):  # 2.0 is no integer
        return value
    if kind == "bool" and isinstance(value, bool):
        return value
    if kind.startswith("tuple") and isinstance(value, list) and all(isinstance(v, str) for v in value):
        return tuple(value)
    expected = {"float": "a number", "int": "an integer", "bool": "true or false"}.get(
        kind, "a list of strings"
    )
    raise ValueError(f"{name} must be {expected}, not {json.dumps(value)}")


@dataclass
class Keys:
    grow: str = "sim-grow-key"
    wow: str = "sim-wow-key"
    google: str = "AIzaSim-google-key"


# --- stable draws ---------------------------------------------------------------------------------------

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_MIX = (np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB))


def stable_key(*identity) -> int:
    """A 64-bit hash of the identity, the same in every process (Python's hash() is salted per process)."""
    text = "\x1f".join(str(part) for part in identity).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "little")


def stable_hashes(key, things) -> np.ndarray:
    """A 64-bit hash of each thing (an integer: a time, a day) mixed with a key: splitmix64, vectorised."""
    with np.errstate(over="ignore"):
        x = np.asarray(things, dtype=np.int64).view(np.uint64) * _GOLDEN + np.asarray(key, dtype=np.uint64)
        x = (x ^ (x >> np.uint64(30))) * _MIX[0]
        x = (x ^ (x >> np.uint64(27))) * _MIX[1]
    return x ^ (x >> np.uint64(31))


def uniform(hashes: np.ndarray) -> np.ndarray:
    """Hashes as numbers in [0, 1)."""
    return (hashes >> np.uint64(11)).astype(np.float64) * 2.0**-53


def night_of(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).date().isoformat()


def _us(when: dt.datetime) -> int:
    return (when - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)


@dataclass(frozen=True)
class Draws:
    """The misbehaviour's draws on one simulated night: pure functions of the seed, the night, the kind
    of misbehaviour and the thing drawn for."""

    misbehaviour: Misbehaviour
    night: str

    @classmethod
    def at(cls, misbehaviour: Misbehaviour, now: dt.datetime) -> Draws:
        return cls(misbehaviour, night_of(now))

    def key(self, kind: str, *thing) -> int:
        return stable_key(self.misbehaviour.seed, self.night, kind, *thing)

    def hit(self, rate: float, kind: str, *thing) -> bool:
        return rate > 0 and self.key(kind, *thing) < rate * 2**64


def on_time(misbehaviour: Misbehaviour, code: str, times_us: np.ndarray, now: dt.datetime) -> np.ndarray:
    """Per sample, whether its day is served at `now`: a late day waits until `late_days` after its end.
    Drawn per (sensor, day) without the night, so a day once served never vanishes again."""
    days = times_us // DAY_US
    key = stable_key(misbehaviour.seed, "late", code)
    late = uniform(stable_hashes(key, days)) < misbehaviour.late_rate
    due = (days + 1) * DAY_US + round(misbehaviour.late_days * DAY_US)
    return ~late | (due <= _us(now))


def write_non_finite(
    key: int, rate: float, texts: list[str], numbers: np.ndarray, times: np.ndarray
) -> list[int]:
    """Replace in `texts`, with probability `rate` per sample drawn on its true time, a number by a
    non-finite literal; `numbers` marks the samples that have a number. Returns the positions replaced."""
    hashes = stable_hashes(key, times)
    hit = np.flatnonzero((uniform(hashes) < rate) & numbers)
    for k, pick in zip(hit.tolist(), (hashes[hit] & np.uint64(3)).tolist()):
        texts[k] = NON_FINITE[pick]
    return hit.tolist()


def poisoned_name(position: int, serial: str) -> str:
    """Alternately (by the sensor's position in the network) a name with a NUL and a 500-character one."""
    if position % 2 == 0:
        return f"Flower\u0000Power {serial}"
    part = f"Flower Power {serial} "
    return (part * (POISONED_NAME_LENGTH // len(part) + 1))[:POISONED_NAME_LENGTH]


def bad_code(position: int, code: str) -> str:
    """Alternately a code with a space and a slash, and one of 80 characters: no valid id either way."""
    return f"{code} / old" if position % 2 == 0 else f"{code}-".ljust(BAD_ID_LENGTH, "x")


def unasked_code(key: int) -> str:
    return f"unasked{key % 10**8:08d}"  # longer than any generated id, so no sensor has it


def unasked_times_us(start: dt.datetime, end: dt.datetime) -> np.ndarray:
    """A few times, to the second, spread inside [start, end]."""
    first, last = _us(start), _us(end)
    parts = np.arange(1, UNASKED_SAMPLES + 1, dtype=np.int64)
    spread = first + parts * (last - first) // (UNASKED_SAMPLES + 1)
    return spread // 1_000_000 * 1_000_000


def grow_timestamps(times_us: np.ndarray) -> np.ndarray:
    """µs since 1970 → GROW's 'yyyymmddHHMMSS' strings (UTC), as an object array. The date part is
    formatted once per day and the time of day looked up: formatting a million stamps whole is slow."""
    seconds = np.asarray(times_us, dtype=np.int64) // 1_000_000
    days, of_day = np.divmod(seconds, 86_400)
    dates = {int(d): _date_text(int(d)) for d in np.unique(days)}
    texts = _times_of_day()
    return np.array([dates[d] + texts[t] for d, t in zip(days.tolist(), of_day.tolist())], dtype=object)


def _date_text(day: int) -> str:
    return (dt.date(1970, 1, 1) + dt.timedelta(days=day)).strftime("%Y%m%d")


@functools.cache
def _times_of_day() -> list[str]:
    return [f"{s // 3600:02d}{s // 60 % 60:02d}{s % 60:02d}" for s in range(86_400)]


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
    """The state behind the server: the network, the simulated present, keys, misbehaviour and the record
    of the poisoned records served."""

    def __init__(self, network: Network, now: dt.datetime | None, keys: Keys, misbehaviour: Misbehaviour):
        self.network = network
        self.now = now or min(dt.datetime.now(dt.UTC), network.end)
        self.keys = keys
        self.misbehaviour = misbehaviour
        self.value_texts = _value_texts()
        self._poisoned: dict[tuple, None] = {}  # an ordered set of records, as tuples of their items
        self._poisoned_lock = threading.Lock()

    def visible_steps(self) -> list[tuple[int, int] | None]:
        """Per sensor, its first and last uploaded step at the simulated present (None: nothing yet)."""
        sensors = self.network.sensors
        last = np.minimum(self.network.uploaded_until(self.now) - 1, sensors["last_step"].to_numpy())
        first = sensors["first_step"].to_numpy()
        return [(int(f), int(la)) if la >= f else None for f, la in zip(first, last)]

    def serving(self, records: Iterable[dict]) -> None:
        """Note poisoned records put into the current answer: remembered once it is served whole."""
        records = list(records)
        if records and has_request_context():
            request.environ.setdefault("sim.poisoned", []).extend(records)
        elif records:
            self.remember(records)

    def remember(self, records: Iterable[dict]) -> None:
        with self._poisoned_lock:
            for record in records:
                self._poisoned.setdefault(tuple(record.items()), None)

    def poisoned(self) -> list[dict]:
        """Each poisoned record served so far, once, in the order first served (shapes: module docstring)."""
        with self._poisoned_lock:
            return [dict(items) for items in self._poisoned]


def create_app(
    network: Network,
    now: dt.datetime | None = None,
    keys: Keys | None = None,
    misbehaviour: Misbehaviour | None = None,
) -> Flask:
    """The simulator as a WSGI app: GROW under /grow/api, WOW under /wow/api, geocoding under /maps/api,
    openSenseMap under /osem."""
    app = Flask(__name__)
    app.json.sort_keys = False
    sim = Simulator(network, now, keys or Keys(), misbehaviour or Misbehaviour())
    app.extensions["simulator"] = sim

    @app.before_request
    def misbehave():
        if request.path.startswith("/sim/"):
            return None
        misbehaviour = sim.misbehaviour
        if misbehaviour.wow_down and request.path.startswith("/wow/"):
            return _wow_error(503, "The service is unavailable: WOW is down tonight. Try again later.")
        if misbehaviour.latency_ms:
            time.sleep(misbehaviour.latency_ms / 1000)
        failure = misbehaviour.draw()
        request.environ["sim.failure"] = failure
        if failure == "5xx":
            status = misbehaviour.rng.choice([500, 502, 503])
            return _grow_error(status, "Error detail: simulated-failure")
        if failure == "429":
            response = _grow_error(429, "Rate limit is exceeded. Try again later.")
            response.headers["Retry-After"] = str(misbehaviour.retry_after_s)
            return response
        if failure == "html":
            return Response(
                "<html><body><h1>Service Unavailable</h1></body></html>", 200, mimetype="text/html"
            )
        return None

    @app.after_request
    def deliver(response: Response):
        poisoned = request.environ.pop("sim.poisoned", [])
        if response.status_code != 200 or request.path.startswith("/sim/"):
            return response
        if request.environ.get("sim.failure") == "truncated":  # unreadable: nothing poisoned was served
            body = response.get_data()
            response.set_data(body[: max(1, len(body) // 2)])
            return response
        if request.environ.get("sim.failure") is None and _trickles(sim):
            return _trickled(response, sim.misbehaviour.trickle_s, lambda: sim.remember(poisoned))
        sim.remember(poisoned)
        return response

    @app.post("/sim/clock")
    def set_clock():
        body = request.get_json(silent=True) or {}
        try:
            sim.now = parse_utc(body["now"])
        except (KeyError, TypeError, ValueError):
            return jsonify({"error": "bad_request", "message": 'send {"now": "<ISO 8601 time>"}'}), 400
        return jsonify({"now": sim.now.isoformat()})

    @app.route("/sim/misbehaviour", methods=["GET", "POST"])
    def set_misbehaviour():
        if request.method == "POST":
            try:
                sim.misbehaviour = sim.misbehaviour.changed(request.get_json(silent=True))
            except ValueError as exc:
                return jsonify({"error": "bad_request", "message": str(exc)}), 400
        return jsonify(sim.misbehaviour.settings())

    @app.get("/sim/poisoned")
    def poisoned():
        return jsonify(sim.poisoned())

    @app.get("/sim/health")
    def health():
        return jsonify({"status": "ok", "now": sim.now.isoformat(), "sensors": len(network.sensors)})

    _grow_routes(app, sim)
    _wow_routes(app, sim)
    osem.routes(app, sim)
    _google_routes(app, sim)
    return app


def _trickles(sim: Simulator) -> bool:
    """Whether this request's answer trickles: drawn on the request itself (method, path, query, body)."""
    misbehaviour = sim.misbehaviour
    if not misbehaviour.trickle_rate:
        return False
    draws = Draws.at(misbehaviour, sim.now)
    return draws.hit(
        misbehaviour.trickle_rate, "trickle", request.method, request.full_path, request.get_data()
    )


def _trickled(response: Response, pause_s: float, served) -> Response:
    """The same answer, streamed a few bytes at a time: a client with only a per-read timeout waits on."""
    body = response.get_data()

    def pieces() -> Iterator[bytes]:
        for k in range(0, len(body), TRICKLE_BYTES):
            if k:
                time.sleep(pause_s)
            yield body[k : k + TRICKLE_BYTES]
        served()  # runs only once the last piece went out

    headers = [(k, v) for k, v in response.headers.items() if k.lower() != "content-length"]
    return Response(pieces(), status=response.status_code, headers=headers)


# --- GROW ---------------------------------------------------------------------------------------------


def _grow_error(status: int, message: str) -> Response:
    response = jsonify({"Exception": {"Name": status, "Message": message}})
    response.status_code = status
    return response


def _grow_authorised(sim: Simulator) -> bool:
    return request.headers.get("Authorization", "") == f"Bearer {sim.keys.grow}"


def _location_record(position: int, row, first: dt.datetime, last: dt.datetime) -> dict:
    return {
        "Code": row["sensor_id"],
        "DataSourceGroupCode": "Grow.Thingful",
        "Identifier": f"Grow.Thingful#{row['sensor_id']}",
        "Name": row["name"],
        "SerialNumber": row["serial_number"],
        "UserUid": row["owner_id"],
        "LocationId": position + 1,
        "ProjectionId": 3,
        "X": row["longitude"],
        "Y": row["latitude"],
        "Z": 0,
        "FirstSampleTimestamp": int(_grow_stamp(first)),
        "LastAvailableSampleTimestamp": int(_grow_stamp(last)),
        "LastFetchedSampleTimestamp": int(_grow_stamp(last)),
    }


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
        misbehaviour = sim.misbehaviour
        draws = Draws.at(misbehaviour, sim.now)
        found, poisoned = {}, []
        visible = sim.visible_steps()
        for i, row in network.sensors.iterrows():
            steps = visible[i]
            if steps is None or (owner and row["owner_id"] != owner):
                continue
            first, last = (network.start + s * STEP for s in steps)
            record = _location_record(i, row, first, last)
            code = record["Code"]
            if draws.hit(misbehaviour.poison_name_rate, "name", code):
                record["Name"] = poisoned_name(i, row["serial_number"])
                poisoned.append({"kind": "name", "source": "grow", "sensor_id": code, "name": record["Name"]})
            found[record["Identifier"]] = record
            if draws.hit(misbehaviour.bad_id_rate, "bad_id", code):
                bad = bad_code(i, code)
                found[f"Grow.Thingful#{bad}"] = {
                    **_location_record(i, row, first, last),
                    "Code": bad,
                    "Identifier": f"Grow.Thingful#{bad}",
                    "LocationId": len(network.sensors) + i + 1,
                }
                poisoned.append({"kind": "id", "source": "grow", "code": bad})
        sim.serving(poisoned)
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


def _points(texts: list[str], stamps: list[str]) -> str:
    return ",".join(
        [f'{{"Value":{v},"DateTime":"{t}","Availability":1,"Quality":0}}' for v, t in zip(texts, stamps)]
    )


def _series_entry(code, name, serial, suffix, start, end, points: str) -> str:
    """One (location, variable) entry of a timeSeries answer, its samples already written as text."""
    header = {
        "StartDate": _grow_stamp(start),
        "EndDate": _grow_stamp(end),
        "LocationIdentifier": f"Grow.Thingful#{code}",
        "LocationCode": code,
        "SensorName": name,
        "SerialNumber": serial,
        "DataType": "Double",
        "VariableCode": f"{GROW_DATA_SOURCE}.{suffix}",
        "DataSourceVariableId": GROW_SERIES[suffix][1],
        "NoDataValue": GROW_NODATA,
        "CalculationType": "None",
        "Interval": {"Type": "None", "Value": 0.0},
        "TimeZoneOffset": "+0000",
        "IsCumulative": False,
        "UseQuality": False,
        "Data": None,
    }
    return json.dumps(header)[:-5] + "[" + points + "]}"  # replace the trailing `null}`


def _meta_location(code, name, longitude, latitude) -> dict:
    return {
        "Identifier": f"Grow.Thingful#{code}",
        "Name": name,
        "DataSourceGroupCode": "Grow.Thingful",
        "Code": code,
        "X": longitude,
        "Y": latitude,
        "Z": 0,
        "ProjectionId": 3,
    }


def _time_series_body(sim: Simulator, codes, variables, start, end, ascending) -> str:
    """Build the answer as text: one entry per requested (location, variable), samples in the requested
    order (none when the window holds none)."""
    network, now, misbehaviour = sim.network, sim.now, sim.misbehaviour
    draws = Draws.at(misbehaviour, now)
    limits = network.uploaded_until(now)
    entries, meta_locations, poisoned = [], {}, []
    for code in dict.fromkeys(codes):
        i = network.sensor_index.get(code)
        if i is None or draws.hit(misbehaviour.omit_sensor_rate, "omit_sensor", code):
            continue
        row = network.sensor_records[i]
        window = network.sensor_window(i, start, end)
        # A sensor with nothing uploaded in the window still gets its entries, with no samples: the
        # answer says "nothing there", which a client can tell from a sensor left out.
        last = max(min(window.last, int(limits[i]) - 1), window.first - 1)
        times = network.sensor_times_us(i, Window(window.first, last))
        served = on_time(misbehaviour, code, times, now) if misbehaviour.late_rate else None
        shift_us = 0
        if draws.hit(misbehaviour.future_rate, "future", "grow", code):  # a phone with a wrong clock
            shift_us = round(misbehaviour.future_shift_days * 86_400) * 1_000_000
        stamps = grow_timestamps(times + shift_us)
        meta_locations[code] = _meta_location(code, row["name"], row["longitude"], row["latitude"])
        for suffix in variables:
            if draws.hit(misbehaviour.omit_variable_rate, "omit_variable", code, suffix):
                continue
            stored = GROW_SERIES[suffix][0]
            raw = np.asarray(network.grow[stored][i, window.first : last + 1])
            if suffix == "soil_moisture":  # the raw reading, before calibration
                raw = np.where(raw > NODATA, np.round(raw * 0.85 + 200), raw).astype(np.int16)
            sampled = raw != MISSING
            if served is not None:
                sampled &= served
            keep = np.flatnonzero(sampled)
            if not ascending:
                keep = keep[::-1]
            texts = sim.value_texts[raw[keep].astype(np.int64) + 32768].tolist()
            kept_stamps = stamps[keep].tolist()
            if misbehaviour.infinity_rate or shift_us:
                about = {
                    "source": "grow",
                    "sensor_id": code,
                    "variable": stored,
                    "variable_code": f"{GROW_DATA_SOURCE}.{suffix}",
                }
                if misbehaviour.infinity_rate:
                    key = draws.key("infinity", "grow", code, suffix)
                    hit = write_non_finite(
                        key, misbehaviour.infinity_rate, texts, raw[keep] > NODATA, times[keep]
                    )
                    poisoned += [
                        {"kind": "value", **about, "DateTime": kept_stamps[k], "text": texts[k]} for k in hit
                    ]
                if shift_us:
                    true_stamps = grow_timestamps(times[keep]).tolist()
                    poisoned += [
                        {"kind": "future", **about, "DateTime": served_at, "true_time": true_at}
                        for served_at, true_at in zip(kept_stamps, true_stamps)
                    ]
            points = _points(texts, kept_stamps)
            entries.append(_series_entry(code, row["name"], row["serial_number"], suffix, start, end, points))
    if draws.hit(misbehaviour.unrequested_rate, "unrequested", "grow", *codes, *variables, start, end):
        key = draws.key("unasked", "grow", *codes, *variables, start, end)
        code = unasked_code(key)
        meta_locations[code] = _meta_location(code, "Unasked sensor", -1.5, 52.5)
        entries += _unasked_entries(key, code, variables, start, end, min(end, max(start, now)), ascending)
    sim.serving(poisoned)
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


def _unasked_entries(key: int, code: str, variables, start, end, until, ascending) -> list[str]:
    """Entries of a code nobody asked for: a few plausible samples per variable in [start, until]."""
    stamps = grow_timestamps(unasked_times_us(start, until)).tolist()
    entries = []
    for n, suffix in enumerate(variables):
        low, high = PLAUSIBLE[GROW_SERIES[suffix][0]]
        values = low + (high - low) * uniform(stable_hashes(key + n, np.arange(len(stamps))))
        texts = [f"{v:.2f}" for v in values]
        order = slice(None) if ascending else slice(None, None, -1)
        points = _points(texts[order], stamps[order])
        entries.append(_series_entry(code, "Unasked sensor", f"PI{key:016X}", suffix, start, end, points))
    return entries


# --- WOW ----------------------------------------------------------------------------------------------


def wow_observations(network: Network, sites: list[str], start: dt.datetime, end: dt.datetime) -> list[dict]:
    """The stations' reports with ReportEndDateTime in [start, end], as WOW's byversion answers them."""
    found = network.station_reports(sites, start, end)
    rows, stations = found.stations, network.stations
    ends = found.ends_us.astype("datetime64[us]")
    steps = (ends - np.datetime64(network.start.replace(tzinfo=None))) // np.timedelta64(STEP)  # for Id
    interval = stations["interval_steps"].to_numpy(dtype=np.int64)[rows] * np.timedelta64(STEP)

    def values(name: str) -> list:
        v = found.values[name]
        return np.where(np.isnan(v), None, v).tolist()

    columns = zip(
        stations["site_id"].to_numpy(dtype=object)[rows].tolist(),
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


def _shift_future_sites(draws: Draws, found: list[dict]) -> list[dict]:
    """Stamp every report of a site drawn for this answer `future_shift_days` late (a wrong clock);
    returns the records of what was shifted."""
    misbehaviour = draws.misbehaviour
    sites = dict.fromkeys(o["SiteId"] for o in found)
    wrong = {site for site in sites if draws.hit(misbehaviour.future_rate, "future", "wow", site)}
    shift = dt.timedelta(seconds=round(misbehaviour.future_shift_days * 86_400))
    shifted = []
    for observation in found:
        if observation["SiteId"] in wrong:
            true_end = observation["ReportEndDateTime"]
            for name in ("ReportStartDateTime", "ReportEndDateTime"):
                observation[name] = (dt.datetime.fromisoformat(observation[name]) + shift).isoformat()
            shifted.append(
                {
                    "kind": "future",
                    "source": "wow",
                    "site_id": observation["SiteId"],
                    "DateTime": observation["ReportEndDateTime"],
                    "true_time": true_end,
                }
            )
    return shifted


_NON_FINITE_MARK = "@sim-non-finite:"  # stands in a temperature until the body is text


def _mark_non_finite(draws: Draws, found: list[dict], true_ends: list[str]) -> tuple[list[str], list[dict]]:
    """Mark, with probability `infinity_rate` per report (drawn on site and true end), its temperature
    for a non-finite literal; returns the literals, in mark order, and the records of what was marked."""
    sites = [o["SiteId"] for o in found]
    keys = {site: draws.key("infinity", "wow", site) for site in dict.fromkeys(sites)}
    texts = [o["DryBulbTemperature_Celsius"] for o in found]
    hit = write_non_finite(
        np.array([keys[site] for site in sites], dtype=np.uint64),
        draws.misbehaviour.infinity_rate,
        texts,
        np.array([t is not None for t in texts], dtype=bool),
        np.array(true_ends, dtype="datetime64[s]").astype(np.int64),
    )
    literals, records = [], []
    for k in hit:
        found[k]["DryBulbTemperature_Celsius"] = f"{_NON_FINITE_MARK}{len(literals)}"
        literals.append(texts[k])
        records.append(
            {
                "kind": "value",
                "source": "wow",
                "site_id": sites[k],
                "variable": "air_temperature",
                "variable_code": "DryBulbTemperature_Celsius",
                "DateTime": found[k]["ReportEndDateTime"],
                "text": texts[k],
            }
        )
    return literals, records


def _write_marks(body: bytes, literals: list[str]) -> bytes:
    """Write each marked temperature as its bare literal: JSON no encoder would write."""
    pattern = re.compile(b'"' + re.escape(_NON_FINITE_MARK.encode()) + rb'(\d+)"')
    return pattern.sub(lambda m: literals[int(m[1])].encode(), body)


def _unasked_observations(key: int, start: dt.datetime, end: dt.datetime, latitude, longitude) -> list[dict]:
    """Reports of a made-up site nobody asked for: a few plausible ones in [start, end]."""
    site = unasked_code(key)
    ends = unasked_times_us(start, end).astype("datetime64[us]").astype("datetime64[s]")
    u = uniform(stable_hashes(key, np.arange(2 * len(ends)))).reshape(2, -1)
    columns = zip(
        np.datetime_as_string(ends - np.timedelta64(STEP // dt.timedelta(seconds=1), "s"), unit="s").tolist(),
        np.datetime_as_string(ends, unit="s").tolist(),
        np.round(8 + 16 * u[0], 1).tolist(),
        np.round(50 + 45 * u[1], 1).tolist(),
    )
    return [
        {
            "Id": f"{site}-{n}",
            "SiteId": site,
            "Latitude": latitude,
            "Longitude": longitude,
            "IsOfficial": False,
            "IsLatestVersion": True,
            "Version": 1,
            "ReportStartDateTime": began,
            "ReportEndDateTime": ended,
            "DryBulbTemperature_Celsius": temperature,
            "RainfallAmount_Millimetre": 0.0,
            "RelativeHumidity": humidity,
        }
        for n, (began, ended, temperature, humidity) in enumerate(columns)
    ]


def _outside(top: float, left: float, bottom: float, right: float) -> tuple[float, float]:
    """A point just north (or, at the pole, south) of the box."""
    latitude = top + 1 if top + 1 <= 90 else bottom - 1
    return latitude, (left + right) / 2


def _wow_body(sim: Simulator, found: list[dict], elsewhere, start, end, bare: bool) -> bytes:
    """The byversion answer as bytes, with the misbehaviour drawn for it; `elsewhere` is where a site
    nobody asked for would stand (latitude, longitude)."""
    misbehaviour = sim.misbehaviour
    draws = Draws.at(misbehaviour, sim.now)
    literals, poisoned = [], []
    if misbehaviour.future_rate or misbehaviour.infinity_rate:
        true_ends = [o["ReportEndDateTime"] for o in found]
        if misbehaviour.future_rate:
            poisoned += _shift_future_sites(draws, found)
        if misbehaviour.infinity_rate:
            literals, marked = _mark_non_finite(draws, found, true_ends)
            poisoned += marked
    query = sorted(request.args.items())
    if draws.hit(misbehaviour.unrequested_rate, "unrequested", "wow", *query):
        found = found + _unasked_observations(draws.key("unasked", "wow", *query), start, end, *elsewhere)
    sim.serving(poisoned)
    body = orjson.dumps(found if bare else {"Object": found})
    return _write_marks(body, literals) if literals else body


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
            elsewhere = (52.5, -1.5)
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
            elsewhere = _outside(top, left, bottom, right)
        else:
            return _wow_error(400, "give site_id or the four bounding-box parameters")
        body = _wow_body(sim, found, elsewhere, start, end, app.config["WOW_BARE_LIST"])
        return Response(body, mimetype="application/json")


# --- Google reverse geocoding -------------------------------------------------------------------------


STREETS = ("Garden Lane", "Station Road", "Rue des Jardins", "Hauptstraße", "Via Roma", "Calle Mayor")


def simulated_street(latitude: float, longitude: float) -> tuple[int, str]:
    """A house number and street for a point, the same every time it is asked."""
    key = stable_key("street", round(latitude, 5), round(longitude, 5))
    return 1 + key % 120, STREETS[(key // 120) % len(STREETS)]


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
        # Google answers to the street, where the offline geocoder names only the nearest town.
        number, street = simulated_street(lat, lng)
        parts = [f"{street} {number}", *(p for p in (place.get("city"), place.get("country")) if p)]
        return jsonify(
            {
                "status": "OK",
                "results": [
                    {
                        "formatted_address": ", ".join(parts),
                        "address_components": [
                            {"long_name": str(number), "short_name": str(number), "types": ["street_number"]},
                            {"long_name": street, "short_name": street, "types": ["route"]},
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
