"""Unsubscribing from alerts with one click, without logging in: `/unsubscribe/<token>`, the link in every
alert mail (made by the nightly job with MAIL_LINK_SECRET, 90 days). Opening it shows one button (a mail
scanner that opens every link changes nothing); a POST turns the account's alerts off. The POST needs no
CSRF token: mail clients send it themselves (RFC 8058, `List-Unsubscribe=One-Click`), and the signed
token is the proof.
"""

from __future__ import annotations

from flask import Blueprint, render_template, request
from flask_babel import gettext

from core.links import Purpose
from flask_front_end import accounts, csrf, extensions, mails, public

unsubscribe = Blueprint("unsubscribe", __name__)


@unsubscribe.route("/unsubscribe/<token>", methods=["GET", "POST"])
@public
@csrf.exempt
def page(token: str):
    payload = mails.read(Purpose.UNSUBSCRIBE, token, {"user"})
    if payload is None or type(payload["user"]) is not int:
        return mails.link_no_longer_works(gettext("Turn alerts off on your account page instead."))
    with mails.in_language_of(payload["user"]):  # whoever opens the mail, in the account's language
        return _stop(payload["user"])


def _stop(user_id: int):
    if request.method == "POST":
        accounts.stop_alerts(extensions.engine(), user_id)
        message = gettext(
            "Alerts are off: no more mail about your sensors. Your account page turns them on again."
        )
        return render_template("notice.html", title=gettext("Alerts are off"), message=message)
    message = gettext("Stop the mails about your sensors going faulty or silent?")
    stop = gettext("Stop alerts")
    return render_template("one_button.html", title=stop, message=message, form=None, button=stop)
