"""Resetting a forgotten password by mail: each active account at an address asked for at `/reset` gets a
link (`/reset/<token>`, an hour) to choose a new password, which ends every login of the account.

A link carries a fingerprint of the account's password and address: it works once, and not after either
changes. The answer to the asking is the same for every address: one without an account gets a mail
saying so (with the sign-up link), so nobody learns who has an account here.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, url_for
from flask_babel import force_locale, gettext, lazy_gettext

from core.links import Purpose
from flask_front_end import accounts, extensions, limiter, mails, page_language, public
from flask_front_end.forms import AddressForm, NewPasswordForm

reset = Blueprint("reset", __name__)


@reset.route("/reset", methods=["GET", "POST"])
@public
@limiter.limit(
    lambda: extensions.settings().reset_rate_limit,
    methods=["POST"],
    error_message=lazy_gettext("Too many password resets asked from here; wait a while and try again."),
)
@mails.inbox_limited
def ask():
    if not mails.can_send():
        return mails.no_mail_here()
    form = AddressForm()
    if not form.validate_on_submit():
        page = render_template("ask_address.html", form=form, asking="reset")
        return page, 400 if request.method == "POST" else 200
    holders = accounts.holders_of(extensions.engine(), form.email.data)
    if not holders:
        sent = mails.sent(form.email.data, mails.no_account_here(mails.link("signup.ask")))
        return mails.on_its_way() if sent else mails.not_sent_now()
    sent = [mails.sent(holder.email, _reset_mail(holder)) for holder in holders]
    return mails.on_its_way() if all(sent) else mails.not_sent_now()


def _reset_mail(holder: accounts.Holder) -> mails.Mail:
    """In the language the account chose, else in the asker's."""
    with force_locale(holder.language or page_language()):
        return mails.reset_password(holder.username, _link(holder))


def _link(holder: accounts.Holder) -> str:
    payload = {"user": holder.user_id, "fingerprint": holder.fingerprint}
    return mails.signed_link("reset.choose", Purpose.RESET, payload)


@reset.route("/reset/<token>", methods=["GET", "POST"])
@public
def choose(token: str):
    user = _account(token)
    if user is None:
        return mails.link_no_longer_works(gettext("Ask for a new one on the password reset page."))
    form = NewPasswordForm()
    if form.validate_on_submit():
        accounts.set_password(extensions.engine(), user.username, form.password.data)
        flash(
            gettext("Your password is changed, and every login of the account has ended: log in with it."),
            "info",
        )
        return redirect(url_for("auth.login"))
    page = render_template(
        "choose_password.html", form=form, title=gettext("Choose a new password"), account=user.username
    )
    return page, 400 if request.method == "POST" else 200


def _account(token: str) -> accounts.User | None:
    """The account a genuine, unexpired reset link names, while the link still fits it."""
    payload = mails.read(Purpose.RESET, token, {"user", "fingerprint"})
    if payload is None or type(payload["user"]) is not int or not isinstance(payload["fingerprint"], str):
        return None
    return accounts.account_to_reset(extensions.engine(), payload["user"], payload["fingerprint"])
