"""Owners answer, on a sensor's page: what an anomaly was (a real fault; not a fault, and why; fixed it)
and pauses for maintenance. Anyone who may see the sensor (its owner, an admin) may answer; what was said
is stored with who and when (`core.answers`), and the next nightly run takes it into account.
"""

from __future__ import annotations

import datetime as dt

from flask import Blueprint, flash, redirect, url_for
from flask_babel import format_date, gettext, lazy_gettext
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, HiddenField, RadioField, SelectChoice, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from core import answers
from core.answers import NOTE_MAX, AnswerError
from core.vocabulary import NOT_FAULTS, Answer, NotAFault
from flask_front_end import extensions
from flask_front_end.access import visible_sensor
from flask_front_end.backend import api_path

blueprint = Blueprint("answers", __name__)

ANSWER_WORDS = {
    Answer.REAL_FAULT: lazy_gettext("a real fault"),
    Answer.NOT_A_FAULT: lazy_gettext("not a fault"),
    Answer.FIXED: lazy_gettext("a fault, and I fixed it"),
}
REASON_WORDS = {
    NotAFault.WATERING: lazy_gettext("watering"),
    NotAFault.GARDENING: lazy_gettext("gardening around it"),
    NotAFault.MOVED: lazy_gettext("I moved it on purpose"),
    NotAFault.WINTER: lazy_gettext("in the shed for winter"),
    NotAFault.OTHER: lazy_gettext("something else (say what in the note)"),
}
LISTED = 20  # the latest faults a page offers to answer; older ones are history


class AnswerForm(FlaskForm):
    variable = HiddenField(validators=[DataRequired(), Length(max=32)])
    kind = HiddenField(validators=[DataRequired(), Length(max=32)])
    start_at = HiddenField(validators=[DataRequired(), Length(max=40)])
    answer = RadioField(
        lazy_gettext("This was"), choices=[SelectChoice(a.value, words) for a, words in ANSWER_WORDS.items()]
    )
    reason = SelectField(
        lazy_gettext("If not a fault, why"),
        choices=[SelectChoice("", "—")] + [SelectChoice(r.value, words) for r, words in REASON_WORDS.items()],
        validators=[Optional()],
    )
    note = StringField(lazy_gettext("Note"), validators=[Optional(), Length(max=NOTE_MAX)])


class PauseForm(FlaskForm):
    start = DateField(lazy_gettext("From"), validators=[DataRequired()])
    end = DateField(lazy_gettext("to (the last day)"), validators=[DataRequired()])
    note = StringField(lazy_gettext("What is happening"), validators=[Optional(), Length(max=NOTE_MAX)])


class EndPauseForm(FlaskForm):
    """Ending a pause: a POST with the CSRF token."""


def page_context(sensor: dict) -> dict:
    """What the sensor page needs to offer answers: its latest faults (with what was said of them), and
    the forms."""
    found = extensions.backend().get(api_path("sensors", sensor["sensor_id"], "anomalies"), {"per_page": 200})
    not_faults = {kind.value for kind in NOT_FAULTS}
    faults = [item for item in found["items"] if item["kind"] not in not_faults][:LISTED]
    return {
        "answerable": [(item, _form_for(item)) for item in faults],
        "answer_words": {a.value: words for a, words in ANSWER_WORDS.items()},
        "reason_words": {r.value: words for r, words in REASON_WORDS.items()},
        "pause_form": PauseForm(formdata=None),
        "end_pause_form": EndPauseForm(formdata=None),
        "now": dt.datetime.now(dt.UTC).isoformat(),
    }


def _form_for(item: dict) -> AnswerForm:
    said = item.get("answer") or {}
    form = AnswerForm(
        formdata=None,
        variable=item["variable"],
        kind=item["kind"],
        start_at=item["start_at"],
        answer=said.get("answer"),
        reason=said.get("reason") or "",
        note=said.get("note") or "",
    )
    return form


def _back(sensor_id: str):
    return redirect(url_for("pages.sensor_page", sensor_id=sensor_id, _anchor="answers"))


def _refused(message: str) -> None:
    flash(gettext("Not saved: %(why)s.", why=message), "error")


@blueprint.post("/sensors/<code:sensor_id>/answers")
def answer(sensor_id: str):
    visible_sensor(sensor_id)
    form = AnswerForm()
    if not form.validate_on_submit():
        _refused(
            gettext("choose what it was")
            if form.answer.errors or not form.answer.data
            else gettext("the form was incomplete")
        )
        return _back(sensor_id)
    try:
        start = dt.datetime.fromisoformat(form.start_at.data.replace("Z", "+00:00"))
    except ValueError:
        start = None
    if start is None or start.tzinfo is None:  # the page sends it with its zone: anything else is not ours
        _refused(gettext("the anomaly's time was not a time"))
        return _back(sensor_id)
    anomaly = {
        "sensor_id": sensor_id,
        "variable": form.variable.data,
        "kind": form.kind.data,
        "start_at": start,
    }
    try:
        with extensions.engine().begin() as connection:
            answers.record_answer(
                connection,
                anomaly,
                form.answer.data,
                form.reason.data or None,
                form.note.data,
                current_user.user_id,
                current_user.username,
                dt.datetime.now(dt.UTC),
            )
    except AnswerError as error:
        _refused(gettext(str(error)))  # core.answers marks its reasons for the catalogues
        return _back(sensor_id)
    said = str(ANSWER_WORDS[Answer(form.answer.data)])
    if form.answer.data == Answer.NOT_A_FAULT:
        said += f" ({REASON_WORDS[NotAFault(form.reason.data)]})"
    flash(gettext("Saved: %(answer)s. Tonight's check takes it into account.", answer=said), "info")
    return _back(sensor_id)


@blueprint.post("/sensors/<code:sensor_id>/pauses")
def pause(sensor_id: str):
    visible_sensor(sensor_id)
    form = PauseForm()
    if not form.validate_on_submit():
        _refused(gettext("give the first and the last day of the pause"))
        return _back(sensor_id)
    start = dt.datetime.combine(form.start.data, dt.time(), dt.UTC)
    try:  # to the end of the last day
        end = dt.datetime.combine(form.end.data, dt.time(), dt.UTC) + dt.timedelta(days=1)
    except OverflowError:  # 31 December 9999
        _refused(gettext("a pause lies within a year of today"))
        return _back(sensor_id)
    try:
        with extensions.engine().begin() as connection:
            answers.add_pause(
                connection,
                sensor_id,
                start,
                end,
                form.note.data,
                current_user.user_id,
                current_user.username,
                dt.datetime.now(dt.UTC),
            )
    except AnswerError as error:
        _refused(gettext(str(error)))  # core.answers marks its reasons for the catalogues
        return _back(sensor_id)
    first, last = (format_date(day, "dd MMM y") for day in (form.start.data, form.end.data))
    flash(gettext("Paused from %(first)s to %(last)s (UTC days).", first=first, last=last), "info")
    return _back(sensor_id)


@blueprint.post("/sensors/<code:sensor_id>/pauses/<int:pause_id>/end")
def end_pause(sensor_id: str, pause_id: int):
    visible_sensor(sensor_id)
    if EndPauseForm().validate_on_submit():
        with extensions.engine().begin() as connection:
            ended = answers.end_pause(connection, sensor_id, pause_id, dt.datetime.now(dt.UTC))
        flash(gettext("The pause is over.") if ended else gettext("That pause was over already."), "info")
    return _back(sensor_id)
