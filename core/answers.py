"""What owners say of their sensors, and what it changes: an answer to an anomaly (a real fault; not a
fault, with a reason; fixed it) and a pause for maintenance. The dashboard records them; the nightly
analysis reads `counts_for_health` to leave out what an owner explained; `export-labels` writes them out.

- *Not a fault*: that anomaly, as far as it reached when answered, no longer makes its sensor faulty. It
  stays in the history, answered. Should it grow on (detection extends an anomaly while it lasts, and
  takes in one that starts right after), it counts again: what the owner explained was the part seen.
- *Fixed it*: every anomaly of the sensor that ended by the end of the day of the fix is behind it; the
  next run judges the sensor afresh. One that goes on past that day was not fixed, and counts.
- A pause: anomalies lying inside it make no sensor faulty, and while it lasts the sensor is `paused`.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import and_, exists, insert, select, update
from sqlalchemy.sql.elements import ColumnElement

from core.db import read_frame
from core.i18n import N_
from core.schema import anomalies, anomaly_answers, sensor_pauses
from core.vocabulary import NOT_FAULTS, Answer, NotAFault

NOTE_MAX = 500  # characters of an answer's or a pause's note
PAUSE_MAX = dt.timedelta(days=366)  # a pause is for maintenance or a winter, not for ever


class AnswerError(ValueError):
    """An answer or a pause that cannot be taken; the message says why, for the owner (marked for the
    catalogues: the dashboard shows it translated)."""


def _same_anomaly(answers=anomaly_answers):
    return and_(
        answers.c.sensor_id == anomalies.c.sensor_id,
        answers.c.variable == anomalies.c.variable,
        answers.c.kind == anomalies.c.kind,
        answers.c.start_at == anomalies.c.start_at,
    )


def counts_for_health() -> ColumnElement[bool]:
    """Whether a row of `anomalies` still speaks to its sensor's health: not answered *not a fault* (up
    to where it reached then), not ended by a *fixed it* of its sensor, and not lying inside one of its
    sensor's pauses."""
    within = anomalies.c.end_at <= anomaly_answers.c.excuses_until
    explained = exists().where(_same_anomaly(), anomaly_answers.c.answer == Answer.NOT_A_FAULT.value, within)
    fixed = exists().where(
        anomaly_answers.c.sensor_id == anomalies.c.sensor_id,
        anomaly_answers.c.answer == Answer.FIXED.value,
        within,
    )
    paused = exists().where(
        sensor_pauses.c.sensor_id == anomalies.c.sensor_id,
        sensor_pauses.c.start_at <= anomalies.c.start_at,
        sensor_pauses.c.end_at >= anomalies.c.end_at,
    )
    return and_(~explained, ~fixed, ~paused)


def paused_now(connection, now: dt.datetime) -> set[str]:
    """The sensors inside a pause at `now` (a few: not every sensor of a shard, one by one)."""
    rows = connection.execute(
        select(sensor_pauses.c.sensor_id).where(
            sensor_pauses.c.start_at <= now,
            sensor_pauses.c.end_at > now,
        )
    )
    return set(rows.scalars())


def check_answer(answer: str, reason: str | None, note: str | None) -> tuple[Answer, str | None, str | None]:
    """The answer as stored, or AnswerError: *not a fault* needs its reason, and *other* its note."""
    try:
        said = Answer(answer)
    except ValueError:
        raise AnswerError(f"an answer is one of {', '.join(a.value for a in Answer)}") from None
    note = " ".join((note or "").split())[:NOTE_MAX] or None  # one line: it goes into CSVs and mails
    if said is not Answer.NOT_A_FAULT:
        return said, None, note
    if reason not in {r.value for r in NotAFault}:
        raise AnswerError(N_("say why it is not a fault"))
    if reason == NotAFault.OTHER and not note:
        raise AnswerError(N_("say in a note what it was"))
    return said, reason, note


def record_answer(
    connection,
    anomaly: dict,
    answer: str,
    reason: str | None,
    note: str | None,
    user_id: int | None,
    username: str,
    now: dt.datetime,
) -> None:
    """Store what was said of `anomaly` (sensor_id, variable, kind, start_at), replacing an earlier
    answer to it. Only faults are answered: conditions and imported history are not verdicts."""
    said, reason, note = check_answer(answer, reason, note)
    if anomaly["kind"] in {kind.value for kind in NOT_FAULTS}:
        raise AnswerError(N_("conditions and imported history need no answer"))
    key = {name: anomaly[name] for name in ("sensor_id", "variable", "kind", "start_at")}
    found = select(anomalies.c.end_at).where(*(anomalies.c[name] == value for name, value in key.items()))
    end = connection.execute(found).scalar()
    if end is None:
        raise AnswerError(N_("there is no such anomaly of this sensor (found again since? reload the page)"))
    if said is Answer.FIXED:  # the whole day of the fix: a daily check's anomaly ends at its midnight
        end = max(
            end, dt.datetime.combine(now.astimezone(dt.UTC).date(), dt.time(), dt.UTC) + dt.timedelta(days=1)
        )
    values = {
        "answer": said.value,
        "reason": reason,
        "note": note,
        "user_id": user_id,
        "answered_by": username,
        "answered_at": now,
        "excuses_until": end,
    }
    where = [anomaly_answers.c[name] == value for name, value in key.items()]
    if not connection.execute(update(anomaly_answers).where(*where).values(values)).rowcount:
        connection.execute(insert(anomaly_answers).values({**key, **values}))


def add_pause(
    connection,
    sensor_id: str,
    start: dt.datetime,
    end: dt.datetime,
    note: str | None,
    user_id: int | None,
    username: str,
    now: dt.datetime,
) -> int:
    """Pause a sensor from `start` to `end`; AnswerError if the span is empty or longer than a year."""
    if end <= start:
        raise AnswerError(N_("a pause ends after it starts"))
    if end - start > PAUSE_MAX:
        raise AnswerError(N_("a pause lasts a year at most"))
    if start < now - PAUSE_MAX or end > now + PAUSE_MAX:
        raise AnswerError(N_("a pause lies within a year of today"))
    note = " ".join((note or "").split())[:NOTE_MAX] or None
    values = {
        "sensor_id": sensor_id,
        "start_at": start,
        "end_at": end,
        "note": note,
        "user_id": user_id,
        "paused_by": username,
        "created_at": now,
    }
    return connection.execute(
        insert(sensor_pauses).values(values).returning(sensor_pauses.c.pause_id)
    ).scalar_one()


def end_pause(connection, sensor_id: str, pause_id: int, now: dt.datetime) -> bool:
    """End a pause of this sensor now (it stays as history up to now); False if there is none going."""
    going = update(sensor_pauses).where(
        sensor_pauses.c.pause_id == pause_id,
        sensor_pauses.c.sensor_id == sensor_id,
        sensor_pauses.c.end_at > now,
        sensor_pauses.c.start_at < now,
    )
    if connection.execute(going.values(end_at=now)).rowcount:
        return True
    # One not begun yet goes altogether.
    later = sensor_pauses.delete().where(
        sensor_pauses.c.pause_id == pause_id,
        sensor_pauses.c.sensor_id == sensor_id,
        sensor_pauses.c.start_at >= now,
    )
    return bool(connection.execute(later).rowcount)


LABEL_COLUMNS = [
    "sensor_id",
    "variable",
    "kind",
    "start_at",
    "end_at",
    "score",
    "detector",
    "explanation",
    "answer",
    "reason",
    "note",
    "answered_by",
    "answered_at",
]


def labels(connection) -> pd.DataFrame:
    """Every answer beside the anomaly it answers (LABEL_COLUMNS), by sensor and time. An answer whose
    anomaly is no longer stored (found again with another start) keeps its key, the rest empty."""
    query = (
        select(
            *(anomaly_answers.c[name] for name in ("sensor_id", "variable", "kind", "start_at")),
            anomalies.c.end_at,
            anomalies.c.score,
            anomalies.c.detector,
            anomalies.c.explanation,
            *(anomaly_answers.c[name] for name in ("answer", "reason", "note", "answered_by", "answered_at")),
        )
        .select_from(anomaly_answers.outerjoin(anomalies, _same_anomaly()))
        .order_by(anomaly_answers.c.sensor_id, anomaly_answers.c.start_at, anomaly_answers.c.kind)
    )
    return read_frame(connection, query).reindex(columns=LABEL_COLUMNS)


def precision_by_kind(answered: pd.DataFrame) -> pd.DataFrame:
    """What owners said, per kind of anomaly: how many answered, how many real (a real fault, or one they
    fixed), how many not, and the precision that makes (real over answered); `labels()`'s frame in."""
    real = answered["answer"].isin([Answer.REAL_FAULT.value, Answer.FIXED.value])
    table = (
        answered.assign(real=real, not_a_fault=~real)
        .groupby("kind")
        .agg(answered=("answer", "size"), real=("real", "sum"), not_a_fault=("not_a_fault", "sum"))
    )
    table["precision"] = table["real"] / table["answered"]
    reasons = (
        answered[~real].groupby("kind")["reason"].agg(lambda said: ", ".join(sorted(set(said.dropna()))))
    )
    return table.assign(reasons=reasons.reindex(table.index).fillna("")).sort_index()
