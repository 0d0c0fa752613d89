"""The pages and the JSON their scripts read. Every route needs a logged-in account (the app's rule:
none is `flask_front_end.public`); an owner account sees only its owner's sensors — another owner's
sensor is a 404 here, as if it did not exist."""

from __future__ import annotations

import csv
import io

from flask import Blueprint, Response, abort, jsonify, redirect, render_template, request, url_for
from flask_babel import gettext, lazy_gettext
from flask_limiter.util import get_remote_address
from flask_login import current_user

from core.csv_cells import safe_row
from core.schema import is_id
from core.vocabulary import IMPORTED, AnomalyKind
from flask_front_end import answers, limiter, statuses
from flask_front_end.access import visible_sensor
from flask_front_end.auth import LogoutForm
from flask_front_end.backend import BackendError, api_path
from flask_front_end.extensions import backend, settings

pages = Blueprint("pages", __name__)
# Routes outside /data/ whose errors are the back end's JSON too: a script or a download reads them.
JSON_ENDPOINTS = {"pages.autocomplete_2019", "pages.readings_csv", "pages.anomalies_csv"}


def _account() -> str:
    """Whose calls a data limit counts: the logged-in account (anonymous calls by their address, before
    the login check turns them away)."""
    if current_user.is_authenticated:
        return f"account:{current_user.user_id}"
    return f"address:{get_remote_address()}"


def _data_limit() -> str:
    return settings().data_rate_limit


# One budget for all of an account's /data/* calls, counted where RATE_LIMIT_STORAGE says.
data_limited = limiter.shared_limit(
    _data_limit,
    scope="data",
    key_func=_account,
    error_message=lazy_gettext("Too many requests for data from this account; wait a minute and try again."),
)


@pages.app_context_processor
def _page_context():
    key = settings().google_maps_browser_key
    return {
        "logout_form": LogoutForm(),
        "statuses": statuses.LOOKS,
        "status_config": statuses.config(),
        "map_config": {
            "tileUrl": settings().map_tile_url,
            "tileAttribution": settings().map_tile_attribution,
            "googleKey": key.get_secret_value() if key else None,
        },
    }


@pages.errorhandler(BackendError)
def _backend_refused(error: BackendError):
    if request.path.startswith("/data/") or request.endpoint in JSON_ENDPOINTS:
        return error.body, error.status
    # The back end's own words (English: the API's) say what went wrong.
    page = render_template("error.html", title=gettext("Data unavailable"), message=error.body["message"])
    return page, error.status


# --- pages ------------------------------------------------------------------------------------------------
@pages.get("/")
def home():
    """The network in numbers (an admin), or the owner's own sensors: how many, and how many per status."""
    owner = current_user.sees_owner
    if owner is None:
        counts = backend().get("/network")
    else:
        try:
            counts = {**backend().get(api_path("owners", owner, "stats")), "owners": None}
        except BackendError as error:
            if error.status != 404:
                raise
            counts = {"sensors": 0, "owners": None, "by_status": {}}  # no sensors yet
    return render_template("home.html", counts=counts, own=owner is not None)


@pages.get("/all_grow_map")
def all_grow_map():
    return render_template("all_grow_map.html")


@pages.get("/owner_map")
def owner_map():
    return render_template("owner_map.html")


@pages.get("/open_sensor")
def open_sensor():
    """The sensor whose id was typed in the header: its page, if this account may see it (an admin any,
    an owner their own); the not-found page otherwise, as for any sensor they may not see."""
    sensor_id = request.args.get("sensor_id", "").strip()
    if not sensor_id:
        return redirect(url_for("pages.all_grow_map"))
    if not is_id(sensor_id):
        abort(404)
    visible_sensor(sensor_id)
    return redirect(url_for("pages.sensor_page", sensor_id=sensor_id))


@pages.get("/sensors/<code:sensor_id>")
def sensor_page(sensor_id: str):
    sensor = visible_sensor(sensor_id)
    badge = statuses.badge_text(sensor["health"], sensor.get("last_sample_at"))
    imported = sorted(kind.value for kind in IMPORTED)
    return render_template(
        "sensor.html",
        sensor=sensor,
        badge=badge,
        anomaly_kinds=list(AnomalyKind),
        imported_kinds=imported,
        **answers.page_context(sensor),
    )


# --- downloads ------------------------------------------------------------------------------------------
READING_COLUMNS = ["ts", "soil_moisture", "air_temperature", "light", "battery_level"]
ANOMALY_COLUMNS = ["variable", "kind", "start_at", "end_at", "score", "detector", "explanation"]


@pages.get("/sensors/<code:sensor_id>/readings.csv")
@data_limited
def readings_csv(sensor_id: str):
    """The sensor's readings over the range asked (`start`, `end`; the sensor page's default without),
    as the readings API gives them at full resolution (up to 20,000 points, about 200 days)."""
    visible_sensor(sensor_id)
    params = {**_passed("start", "end"), "max_points": 20_000}
    answer = backend().get(api_path("sensors", sensor_id, "readings"), params)
    name = f"{sensor_id}_readings_{answer['start'][:10]}_{answer['end'][:10]}.csv"
    return _csv(answer["items"], READING_COLUMNS, name)


@pages.get("/sensors/<code:sensor_id>/anomalies.csv")
@data_limited
def anomalies_csv(sensor_id: str):
    """The sensor's anomalies (and conditions) that overlap the range asked, latest first."""
    visible_sensor(sensor_id)
    answer = backend().get(
        api_path("sensors", sensor_id, "anomalies"), {"per_page": 1000, **_passed("start", "end")}
    )
    return _csv(answer["items"], ANOMALY_COLUMNS, f"{sensor_id}_anomalies.csv")


def _csv(rows: list[dict], columns: list[str], filename: str) -> Response:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(safe_row(row) for row in rows)
    answer = Response(out.getvalue(), mimetype="text/csv")
    answer.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return answer


# --- JSON for the pages' scripts ------------------------------------------------------------------------
def _passed(*names: str) -> dict:
    """The named query parameters the browser sent, to hand on to the back end (which validates them)."""
    return {name: request.args[name] for name in names if name in request.args}


def _owner_scope(params: dict) -> dict:
    """Narrow a query to the account's owner; an owner asking for another owner gets nothing of theirs."""
    owner = current_user.sees_owner
    if owner is None:
        return params
    if params.get("owner", owner) != owner:
        abort(404)
    return {**params, "owner": owner}


@pages.get("/data/map")
@data_limited
def data_map():
    """The back end's map answer as it sent it, with its tag: the map changes once a night, so a browser
    that holds it gets 304."""
    return _tagged("/map", _owner_scope(_passed("owner")))


@pages.get("/data/map/view")
@data_limited
def data_map_view():
    """The back end's map of one view (zoom, bbox, status), narrowed to the account's owner, with its
    tag: the map page asks for one at each move, and again for a view it holds gets 304."""
    return _tagged("/map/view", _owner_scope(_passed("owner", "zoom", "bbox", "status")))


def _tagged(path: str, params: dict) -> Response:
    """A tagged answer of the back end's passed on as it came. The tag is weak here because the answer
    may go out compressed."""
    answer = backend().get_tagged(path, params, request.headers.get("If-None-Match"))
    response = Response(answer.body, status=answer.status, mimetype="application/json")
    if answer.etag:
        response.set_etag(answer.etag.removeprefix("W/").strip('"'), weak=True)
    response.cache_control.no_cache = True  # ask each time: a 304 costs little
    return response


@pages.get("/data/sensors")
@data_limited
def data_sensors():
    params = _owner_scope(_passed("status", "owner", "q", "page", "per_page"))
    return jsonify(backend().get("/sensors", params))


@pages.get("/data/sensors/<code:sensor_id>")
@data_limited
def data_sensor(sensor_id: str):
    # The serial number printed on a sensor proves a claim to it (flask_front_end.claim): no page needs
    # it, so none passes it on.
    sensor = visible_sensor(sensor_id)
    sensor.pop("serial_number", None)
    return jsonify(sensor)


@pages.get("/data/sensors/<code:sensor_id>/readings")
@data_limited
def data_readings(sensor_id: str):
    visible_sensor(sensor_id)
    return jsonify(
        backend().get(api_path("sensors", sensor_id, "readings"), _passed("start", "end", "max_points"))
    )


@pages.get("/data/sensors/<code:sensor_id>/anomalies")
@data_limited
def data_anomalies(sensor_id: str):
    visible_sensor(sensor_id)
    params = {"per_page": 1000, **_passed("start", "end", "page", "per_page")}
    return jsonify(backend().get(api_path("sensors", sensor_id, "anomalies"), params))


@pages.get("/data/sensors/<code:sensor_id>/wow")
@data_limited
def data_wow(sensor_id: str):
    visible_sensor(sensor_id)
    return jsonify(backend().get(api_path("sensors", sensor_id, "wow"), _passed("start", "end")))


@pages.get("/data/addresses")
@data_limited
def data_addresses():
    return jsonify(backend().get("/addresses", _owner_scope(_passed("q", "limit", "owner"))))


@pages.get("/autocomplete")
@data_limited
def autocomplete_2019():
    """2019's address search, in its shape: {"matching_results": [address, ...]}, the addresses of the
    sensors the account may see that contain `q` (any case). Today's pages use /data/addresses, which
    also says how many sensors stand at each."""
    found = backend().get("/addresses", _owner_scope(_passed("q", "limit")))
    return jsonify({"matching_results": [item["address"] for item in found["items"]]})


@pages.get("/data/owners/<code:owner_id>/stats")
@data_limited
def data_owner_stats(owner_id: str):
    if current_user.sees_owner not in (None, owner_id):
        abort(404)
    return jsonify(backend().get(api_path("owners", owner_id, "stats")))
