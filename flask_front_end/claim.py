"""Claiming sensors: an owner account that signed itself up shows which GROW owner's sensors are its own
by that owner id and the serial number printed on one of them (`/account/claim`), and from then on sees
them. A wrong owner id and a wrong serial get one and the same refusal; attempts are limited per account
and per client address. Serial numbers are read here only, and never shown or logged.
"""

from __future__ import annotations

import hmac
import logging

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import gettext, lazy_gettext
from flask_limiter.util import get_remote_address
from flask_login import current_user
from sqlalchemy import select

from core.schema import is_id, sensors
from flask_front_end import accounts, before_claiming, extensions, limiter
from flask_front_end.forms import ClaimForm

logger = logging.getLogger(__name__)
claim = Blueprint("claim", __name__)
REFUSAL = lazy_gettext(
    "No sensor of that owner id has that serial number. Check both as printed on the sensor."
)


def _account() -> str:
    """Whose attempts the account limit counts (a stranger's, by address, before the login check)."""
    if current_user.is_authenticated:
        return f"claim-account:{current_user.user_id}"
    return f"claim-address:{get_remote_address()}"


@claim.route("/account/claim", methods=["GET", "POST"])
@before_claiming
@limiter.limit(
    lambda: extensions.settings().claim_rate_limit,
    methods=["POST"],
    key_func=_account,
    error_message=lazy_gettext(
        "Too many attempts at claiming sensors for this account; wait an hour and try again."
    ),
)
@limiter.limit(
    lambda: extensions.settings().claim_address_rate_limit,
    methods=["POST"],
    error_message=lazy_gettext(
        "Too many attempts at claiming sensors from here; wait an hour and try again."
    ),
)
def page():
    if not current_user.unclaimed:  # an admin sees all; an owner account has claimed its owner already
        return render_template("claim.html", form=None), 400 if request.method == "POST" else 200
    form = ClaimForm()
    if not form.validate_on_submit():
        return render_template("claim.html", form=form), 400 if request.method == "POST" else 200
    owner_id, engine = form.owner_id.data, extensions.engine()
    fits = is_id(owner_id) and serial_fits(engine, owner_id, form.serial_number.data)
    if fits and accounts.set_owner(engine, current_user.user_id, owner_id):
        logger.info("account %s claimed the sensors of owner %s", current_user.user_id, owner_id)
        flash(gettext("These are your sensors now: the maps and pages show them."), "info")
        return redirect(url_for("pages.home"))
    form.serial_number.data = ""  # never sent back, right or wrong
    flash(str(REFUSAL), "error")
    return render_template("claim.html", form=form), 400


def serial_fits(engine, owner_id: str, typed: str) -> bool:
    """Whether a sensor of `owner_id` has the serial number typed."""
    with engine.connect() as connection:
        printed = connection.scalars(
            select(sensors.c.serial_number).where(sensors.c.owner_id == owner_id)
        ).all()
    return any(same_serial(typed, serial) for serial in printed)


def same_serial(typed: str, printed: str | None) -> bool:
    """A serial as typed and as printed on the sensor: trimmed, in any case. An empty one fits none."""
    typed, printed = typed.strip().casefold(), (printed or "").strip().casefold()
    return bool(printed) and hmac.compare_digest(typed.encode(), printed.encode())
