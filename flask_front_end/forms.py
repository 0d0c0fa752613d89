"""The forms of the pages where people make and keep their own accounts: what each asks and the rules
its answers meet. Each carries its CSRF token (Flask-WTF). Labels and messages are lazy: each is
translated when a page shows it, in that page's language."""

from __future__ import annotations

from flask_babel import lazy_gettext
from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from core.i18n import LANGUAGES
from core.schema import ALERT_SCHEDULES
from flask_front_end.accounts import MIN_PASSWORD, is_email

ONE_ADDRESS = lazy_gettext("Enter one email address, such as name@example.org.")


def _trimmed(value):
    return value.strip() if isinstance(value, str) else value


def _mail_address(form, field) -> None:
    """One address, no line break (which could add a header to a mail) nor anything else odd."""
    if not is_email(field.data or ""):
        raise ValidationError(ONE_ADDRESS)


class AddressForm(FlaskForm):
    email = StringField(
        lazy_gettext("Email address"),
        filters=[_trimmed],
        validators=[DataRequired(lazy_gettext("Enter your email address.")), Length(max=254), _mail_address],
    )


class SignupForm(AddressForm):
    # The address names the account, and a username has at most 64 characters.
    email = StringField(
        lazy_gettext("Email address"),
        filters=[_trimmed],
        validators=[
            DataRequired(lazy_gettext("Enter your email address.")),
            Length(
                max=64,
                message=lazy_gettext(
                    "An address this long cannot name an account: ask the operator for one."
                ),
            ),
            _mail_address,
        ],
    )


class NewPasswordForm(FlaskForm):
    password = PasswordField(
        lazy_gettext("New password"),
        description=lazy_gettext(
            "At least %(count)d characters: a few words you will remember are best.", count=MIN_PASSWORD
        ),
        validators=[
            DataRequired(lazy_gettext("Choose a password.")),
            Length(
                min=MIN_PASSWORD,
                max=200,
                message=lazy_gettext("A password needs %(count)d to 200 characters.", count=MIN_PASSWORD),
            ),
        ],
    )
    repeat = PasswordField(
        lazy_gettext("The same password again"),
        validators=[
            DataRequired(lazy_gettext("Type the password again.")),
            EqualTo("password", lazy_gettext("The two passwords differ.")),
        ],
    )


class ChangePasswordForm(NewPasswordForm):
    current = PasswordField(
        lazy_gettext("Current password"),
        validators=[DataRequired(lazy_gettext("Type your current password."))],
    )


class ClaimForm(FlaskForm):
    owner_id = StringField(
        lazy_gettext("GROW owner id"),
        filters=[_trimmed],
        validators=[DataRequired(lazy_gettext("Enter your GROW owner id.")), Length(max=200)],
    )
    serial_number = StringField(
        lazy_gettext("Serial number of one of your sensors"),
        validators=[
            DataRequired(lazy_gettext("Enter the serial number printed on one of your sensors.")),
            Length(max=200),
        ],
    )


# Each schedule the database allows, in words (a new one fails here until it has them).
SCHEDULES = {
    "nightly": lazy_gettext("The night it happens"),
    "weekly": lazy_gettext("Once a week at most"),
}


class PreferencesForm(FlaskForm):
    alerts = BooleanField(lazy_gettext("Mail me when a sensor of mine turns faulty or silent"))
    alert_schedule = SelectField(
        lazy_gettext("How often"),
        choices=[SelectChoice(value, SCHEDULES[value]) for value in ALERT_SCHEDULES],
    )
    # Each language by its own name, so whoever reads it can find theirs.
    language = SelectField(
        lazy_gettext("Language"),
        description=lazy_gettext(
            "Pages and mails come in the language chosen here. Left to the browser, the pages follow its "
            "language and the nightly alerts come in English."
        ),
        choices=[SelectChoice("", lazy_gettext("As my browser asks"))]
        + [SelectChoice(code, name) for code, name in LANGUAGES.items()],
    )


class ConfirmForm(FlaskForm):
    """A button and its CSRF token: a link in a mail opens a page, and only pressing it acts (a mail
    scanner that opens every link changes nothing)."""
