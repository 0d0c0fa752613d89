"""An account's own page, `/account`, for admins and owners alike: its address (a new one takes effect once
confirmed from a link mailed to it), whether and how often alerts come, its language, and its password
(the current one needed; every other login of the account ends)."""

from __future__ import annotations

from flask import Blueprint, flash, redirect, render_template, session, url_for
from flask_babel import force_locale, gettext, lazy_gettext
from flask_login import current_user, login_user

from core.links import Purpose
from flask_front_end import accounts, before_claiming, browser_language, extensions, limiter, mails, public
from flask_front_end.forms import AddressForm, ChangePasswordForm, ConfirmForm, PreferencesForm

account = Blueprint("account", __name__)


@account.get("/account")
@before_claiming
def page():
    return _page()


def _page(status: int = 200, **forms):
    """The page with each form fresh, but the one just sent, which shows what was wrong with it."""
    chosen = accounts.preferences(extensions.engine(), current_user.user_id)
    fresh = {
        "address_form": AddressForm(formdata=None),
        "preferences_form": PreferencesForm(
            formdata=None,
            data={
                "alerts": chosen.alerts,
                "alert_schedule": chosen.alert_schedule,
                "language": chosen.language or "",
            },
        ),
        "password_form": ChangePasswordForm(formdata=None),
    }
    page = render_template("account.html", chosen=chosen, can_mail=mails.can_send(), **{**fresh, **forms})
    return page, status


@account.post("/account/preferences")
@before_claiming
def preferences():
    form = PreferencesForm()
    if not form.validate_on_submit():
        return _page(400, preferences_form=form)
    accounts.set_preferences(
        extensions.engine(),
        current_user.user_id,
        form.alerts.data,
        form.alert_schedule.data,
        form.language.data or None,
    )
    with force_locale(form.language.data or browser_language()):  # said in the language just chosen
        flash(gettext("Your choices are saved."), "info")
    return redirect(url_for("account.page"))


@account.post("/account/password")
@before_claiming
@limiter.limit(
    lambda: extensions.settings().login_rate_limit,  # each is a guess at the current password
    error_message=lazy_gettext("Too many password changes from here; wait a minute and try again."),
)
def password():
    form = ChangePasswordForm()
    if not form.validate_on_submit():
        return _page(400, password_form=form)
    if accounts.authenticate(current_user.username, form.current.data) is None:
        form.current.errors = [gettext("That is not your current password.")]
        return _page(400, password_form=form)
    user = current_user._get_current_object()
    accounts.set_password(extensions.engine(), user.username, form.password.data)  # ends every login...
    session.permanent = True
    login_user(accounts.begin_session(user, remember=False))  # ...but this one goes on with a new one
    flash(gettext("Your password is changed; every other login of the account has ended."), "info")
    return redirect(url_for("account.page"))


@account.post("/account/address")
@before_claiming
@mails.inbox_limited
def address():
    if not mails.can_send():
        flash(
            gettext("This site cannot send mail to confirm a new address: ask its operator to change it."),
            "error",
        )
        return redirect(url_for("account.page"))
    form = AddressForm()
    if not form.validate_on_submit():
        return _page(400, address_form=form)
    was = accounts.preferences(extensions.engine(), current_user.user_id).email
    change = {"user": current_user.user_id, "was": was, "new_email": form.email.data}
    confirm = mails.signed_link("account.confirm_address", Purpose.CONFIRM, change)
    if not mails.sent(form.email.data, mails.confirm_new_address(confirm)):
        return mails.not_sent_now()
    flash(
        gettext(
            "A mail is on its way to %(address)s: open its link to make it your address.",
            address=form.email.data,
        ),
        "info",
    )
    return redirect(url_for("account.page"))


@account.route("/account/address/<token>", methods=["GET", "POST"])
@public  # the link is the proof, opened from the mail in whichever browser
def confirm_address(token: str):
    change = _change(token)
    if change is None:
        return mails.link_no_longer_works(gettext("Ask for the change again on your account page."))
    with mails.in_language_of(change["user"]):
        return _confirm_address(change)


def _confirm_address(change: dict):
    form = ConfirmForm()
    new = change["new_email"]
    if form.validate_on_submit():
        if not accounts.change_address(extensions.engine(), change["user"], change["was"], new):
            return mails.link_no_longer_works(gettext("Ask for the change again on your account page."))
        message = gettext("Mail for your account goes to %(address)s from now on.", address=new)
        return render_template("notice.html", title=gettext("Address changed"), message=message)
    message = gettext("Mail for your account will go to %(address)s.", address=new)
    return render_template(
        "one_button.html",
        title=gettext("Confirm your new address"),
        message=message,
        form=form,
        button=gettext("Confirm"),
    )


def _change(token: str) -> dict | None:
    """The change a genuine, unexpired link confirms, while the account's address is still the one it
    was changed from (a link works once, and not after another change)."""
    change = mails.read(Purpose.CONFIRM, token, {"user", "was", "new_email"})
    if change is None or type(change["user"]) is not int or not isinstance(change["new_email"], str):
        return None
    if not accounts.is_email(change["new_email"]):
        return None
    chosen = accounts.preferences(extensions.engine(), change["user"])
    return change if chosen is not None and chosen.email == change["was"] else None
