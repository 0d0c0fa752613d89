"""Signing up by mail: an address asked for at `/signup` gets a link, and the link (`/signup/confirm/
<token>`) makes an owner account named by the address, with the password its holder chooses there.

The answer to the asking is the same for every address: one that has an account already gets a mail
saying so (with the login and reset links) instead of a link, so nobody learns who has an account here.
"""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext, lazy_gettext
from flask_login import login_user

from core.links import Purpose
from flask_front_end import accounts, extensions, limiter, mails, public
from flask_front_end.forms import NewPasswordForm, SignupForm

signup = Blueprint("signup", __name__)


@signup.route("/signup", methods=["GET", "POST"])
@public
@limiter.limit(
    lambda: extensions.settings().signup_rate_limit,
    methods=["POST"],
    error_message=lazy_gettext("Too many sign-ups from here; wait a while and try again."),
)
@mails.inbox_limited
def ask():
    if not mails.can_send():
        return mails.no_mail_here()
    form = SignupForm()
    if not form.validate_on_submit():
        page = render_template("ask_address.html", form=form, asking="signup")
        return page, 400 if request.method == "POST" else 200
    email = form.email.data
    if accounts.has_account(extensions.engine(), email):
        mail = mails.already_signed_up(mails.link("auth.login"), mails.link("reset.ask"))
    else:
        mail = mails.confirm_signup(mails.signed_link("signup.confirm", Purpose.CONFIRM, {"email": email}))
    return mails.on_its_way() if mails.sent(email, mail) else mails.not_sent_now()


@signup.route("/signup/confirm/<token>", methods=["GET", "POST"])
@public
def confirm(token: str):
    email = _confirmed(token)
    if email is None:
        return mails.link_no_longer_works(gettext("Sign up again for a new one."))
    engine = extensions.engine()
    if accounts.has_account(engine, email):  # the link used again: nothing is made or changed
        flash(gettext("This address has an account already: log in."), "info")
        return redirect(url_for("auth.login"))
    form = NewPasswordForm()
    if form.validate_on_submit():
        user = accounts.sign_up(engine, email, form.password.data)
        if user is None:
            flash(gettext("This address has an account already: log in."), "info")
            return redirect(url_for("auth.login"))
        session.permanent = True
        login_user(accounts.begin_session(user, remember=False))
        flash(gettext("Your account is made. One step is left: show which sensors are yours."), "info")
        return redirect(url_for("claim.page"))
    page = render_template(
        "choose_password.html", form=form, title=gettext("Choose a password"), account=email
    )
    return page, 400 if request.method == "POST" else 200


def _confirmed(token: str) -> str | None:
    """The address a genuine, unexpired sign-up link confirms, if it can name an account."""
    payload = mails.read(Purpose.CONFIRM, token, {"email"})
    email = payload["email"] if payload else None
    if not isinstance(email, str) or not accounts.is_email(email) or len(accounts.folded(email)) > 64:
        return None
    return email
