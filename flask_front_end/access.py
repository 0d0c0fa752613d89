"""Who sees which sensor, in one place: an admin every sensor, an owner account its owner's; another
owner's sensor is a 404, as if it did not exist."""

from __future__ import annotations

from flask import abort
from flask_login import current_user

from flask_front_end.backend import BackendError, api_path
from flask_front_end.extensions import backend


def visible_sensor(sensor_id: str) -> dict:
    """The sensor from the back end if this account may see it; 404 otherwise."""
    try:
        sensor = backend().get(api_path("sensors", sensor_id))
    except BackendError as error:
        if error.status == 404:
            abort(404)
        raise
    owner = current_user.sees_owner
    if owner is not None and sensor.get("owner_id") != owner:
        abort(404)
    return sensor
