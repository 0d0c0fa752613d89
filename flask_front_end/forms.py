"""The forms of the pages where people make and keep their own accounts: what each asks and the rules
its answers meet. Each carries its CSRF token (Flask-WTF)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, PasswordField, SelectField, StringField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import DataRequired, EqualTo, Length, ValidationError

from core.schema import ALERT_SCHEDULES
from flask_front_end.accounts import LANGUAGES, MIN_PASSWORD, is_email


def _trimmed(value):
    return value.strip() if isinstance(value, str) else value


def _mail_address(form, field) -> None:
    """One address, no line break (which could add a header to a mail) nor anything else odd."""
    if not is_email(field.data or ""):
        raise ValidationError("Enter one email address, such as name@example.org.")


class AddressForm(FlaskForm):
    email = StringField(
        "Email address",
        filters=[_trimmed],
        validators=[DataRequired("Enter your email address."), Length(max=254), _mail_address],
    )


class SignupForm(AddressForm):
    # The address names the account, and a username has at most 64 characters.
    email = StringField(
        "Email address",
        filters=[_trimmed],
        validators=[
            DataRequired("Enter your email address."),
            Length(max=64, message="An address this long cannot name an account: ask the operator for one."),
            _mail_address,
        ],
    )


class NewPasswordForm(FlaskForm):
    password = PasswordField(
        "New password",
        description=f"At least {MIN_PASSWORD} characters: a few words you will remember are best.",
        validators=[
            DataRequired("Choose a password."),
            Length(min=MIN_PASSWORD, max=200, message=f"A password needs {MIN_PASSWORD} to 200 characters."),
        ],
    )
    repeat = PasswordField(
        "The same password again",
        validators=[
            DataRequired("Type the password again."),
            EqualTo("password", "The two passwords differ."),
        ],
    )


class ChangePasswordForm(NewPasswordForm):
    current = PasswordField("Current password", validators=[DataRequired("Type your current password.")])


class ClaimForm(FlaskForm):
    owner_id = StringField(
        "GROW owner id",
        filters=[_trimmed],
        validators=[DataRequired("Enter your GROW owner id."), Length(max=200)],
    )
    serial_number = StringField(
        "Serial number of one of your sensors",
        validators=[DataRequired("Enter the serial number printed on one of your sensors."), Length(max=200)],
    )


# Each schedule the database allows, in words (a new one fails here until it has them).
SCHEDULES = {"nightly": "The night it happens", "weekly": "Once a week at most"}


class PreferencesForm(FlaskForm):
    alerts = BooleanField("Mail me when a sensor of mine turns faulty or silent")
    alert_schedule = SelectField(
        "How often", choices=[SelectChoice(value, SCHEDULES[value]) for value in ALERT_SCHEDULES]
    )
    language = SelectField(
        "Language",
        description="Pages and mails in your language are on their way; your choice is kept for them.",
        choices=[SelectChoice("", "As my browser asks")]
        + [SelectChoice(code, name) for code, name in LANGUAGES.items()],
    )


class ConfirmForm(FlaskForm):
    """A button and its CSRF token: a link in a mail opens a page, and only pressing it acts (a mail
    scanner that opens every link changes nothing)."""
