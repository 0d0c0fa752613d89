"""`python -m etl.notify_owners`: mail each owner whose sensors turned faulty or silent since their last
mail, one mail a day at most, listing each sensor with its reason in words, its chart link and what to try;
in the same mail, once each, a reminder of a sensor still bad a week after its mail, and a note that a
sensor they were told of is well again.

What was told whom is kept in `mail_ledger`, one row per account and episode (a sensor faulty since its
last anomaly, or silent since its latest reading). The step queues the new episodes, then mails each
account its queued ones; a mail server that refuses or cannot be reached leaves them queued for the next
night (counted as `mail_failed` in the run's record, never failing the step), so each alert goes once. An
episode that ended before any mail went (the sensor well again) is marked stale, not sent. Without
SMTP_HOST nothing is queued or sent. Each mail is in its account's language (`users.language`, else
English), from the catalogues the dashboard reads too (core.i18n); the reasons stay detection's English.
It is the nightly job's last step, and it looks at the whole network (an owner's sensors may lie in any
shard): in a sharded night shard 1 mails, once every shard has analysed its sensors, and the others have
nothing to do.
"""

from __future__ import annotations

import logging
from urllib.parse import quote

import click
import pandas as pd
from sqlalchemy import bindparam, case, func, insert, select, update

from core import i18n, links
from core.answers import counts_for_health
from core.db import read_frame
from core.i18n import N_
from core.links import Purpose
from core.mail import MailError
from core.schema import anomalies, anomaly_answers, mail_ledger, sensor_health, sensor_pauses, sensors, users
from core.vocabulary import NOT_FAULTS, AnomalyKind
from etl.commands import Command, run_alone
from etl.quarantine import clean_text
from etl.shard import Shard
from etl.step import StepContext

log = logging.getLogger(__name__)

NAME = "notify_owners"
BAD = ("faulty", "silent")
REMIND_AFTER = pd.Timedelta(days=7)  # still bad this long after its mail: one reminder
LEDGER_KEEP = pd.Timedelta(days=400)  # a closed episode is forgotten this long after it was queued
WELL = ("healthy", "recovered")
EPOCH = pd.Timestamp(0, tz="UTC")  # the episode of a sensor faulty with no anomaly time: there is one
# What to try, by the kind of the sensor's last fault (and for a silent one): the words of the mail, in
# English here (N_: marked for the catalogues), translated into each account's language as it is written.
ADVICE = {
    AnomalyKind.STUCK: N_("the probe may have lost touch with the soil: push it firmly back into moist soil"),
    AnomalyKind.PROBE_OUT_OF_SOIL: N_("push the probe back into the soil, up to the line on the sensor"),
    AnomalyKind.SATURATION: N_("water may stand around it: move it out of the puddle or the pot's bottom"),
    AnomalyKind.BATTERY_EXHAUSTED: N_("change its battery (one AAA)"),
    AnomalyKind.TEMPERATURE_BIAS: N_("move it out of direct sun or the greenhouse: it reads its own heat"),
    AnomalyKind.HOT_SPOT: N_("move it out of full sun, or shade it: it reads far warmer than the air"),
    AnomalyKind.NO_DAILY_CYCLE: N_("it seems indoors or covered: move it out of the greenhouse or the shed"),
    AnomalyKind.RISING_WITHOUT_RAIN: N_("its soil gets wetter with no rain: look for a leak or a drip line"),
    AnomalyKind.DRIFT: N_(
        "its soil moisture walks away from the weather: check it still stands where it was"
    ),
    AnomalyKind.MOVED: N_("it seems to have moved: put it back where it was"),
}
DAMAGED = N_("check it stands upright and undamaged: a knock, or water inside, gives wild values")
SILENT = N_("no reading for days: change its battery (one AAA), and check the phone app still syncs it")
LOOK = N_("look at its chart")
# A sensor's health as the mails say it.
STATUS_WORDS = {
    "faulty": N_("faulty"),
    "silent": N_("silent"),
    "healthy": N_("healthy"),
    "recovered": N_("recovered"),
    "paused": N_("paused"),
}
ENGLISH = i18n.translations(i18n.SOURCE)


def run(context: StepContext) -> int:
    if context.shard.index != 1:
        return 0  # shard 1 mails for the whole network
    server = context.settings.mail_server()
    if server is None:
        log.info("SMTP_HOST names no mail server: no alerts are sent")
        return 0
    if context.settings.link_secret() is None:
        log.warning("MAIL_LINK_SECRET is unset: the alerts go without their one-click unsubscribe link")
    now = pd.Timestamp(context.now)
    with context.engine.begin() as connection:
        current = read_frame(connection, _bad_sensors())
        current["since"] = _episodes(current)
        written = _queue(connection, current, now)
        written += _mark_stale(connection, current)
        written += _mark_answered(
            connection, read_frame(connection, _ledger()), _owners_spoke(connection, now)
        )
        written += _close_answered(connection, read_frame(connection, _ledger()), current, now)
        written += _forget_closed(connection, now)
        ledger = read_frame(connection, _ledger())
        ledger = ledger[ledger["outcome"].ne("answered")]  # told, and answered: nothing more to say
        kinds = _last_fault_kinds(connection, list(ledger["sensor_id"].unique()))
        last_told = _last_told(connection)
    ledger["kind"] = ledger["sensor_id"].map(kinds)
    news, reminders, recovered = _due(ledger, current, now)
    for user_id in sorted(set(news["user_id"]) | set(reminders["user_id"]) | set(recovered["user_id"])):
        mine = [part[part["user_id"] == user_id] for part in (news, reminders, recovered)]
        first = pd.concat(mine).iloc[0]
        if not _may_mail(first["alert_schedule"], last_told.get(user_id), now):
            continue  # one mail a day (or a week) at most: these wait
        message = _message(server, first, mine, context)
        with context.engine.begin() as connection:  # tried, before it goes: a crash mid-send says so
            written += _set(connection, mine[0], attempts=mail_ledger.c.attempts + 1)
        try:
            server.send(message)
        except MailError as exc:
            context.tally.add("mail_failed")
            log.warning("%s; the mail to account %s waits for the next night", exc, user_id)
            with context.engine.begin() as connection:
                _set(connection, mine[0], error=clean_text(str(exc), 500)[0])
            if exc.unreachable:  # each try would wait out the timeout: the rest wait for the next night
                log.warning("the mail server cannot be reached: tonight's other mails wait too")
                break
            continue
        sent = now.to_pydatetime()
        with context.engine.begin() as connection:
            written += _set(connection, mine[0], sent_at=sent, outcome="sent", error=None)
            written += _set(connection, mine[1], reminded_at=sent)
            written += _set(connection, mine[2], recovered_at=sent)
        log.info("mailed account %s: %d new, %d reminders, %d well again", user_id, *map(len, mine))
    return written


def _forget_closed(connection, now: pd.Timestamp) -> int:
    """Episodes closed long ago (never sent, answered, or told well again), queued over LEDGER_KEEP ago:
    the ledger stays the size of a year, not of the network's whole life. Open ones stay, however old."""
    closed = (mail_ledger.c.outcome == "stale") | (
        mail_ledger.c.outcome.in_(("sent", "answered")) & mail_ledger.c.recovered_at.is_not(None)
    )
    old = mail_ledger.c.queued_at < (now - LEDGER_KEEP).to_pydatetime()
    return connection.execute(mail_ledger.delete().where(closed, old)).rowcount


def _may_mail(schedule: str, last: pd.Timestamp | None, now: pd.Timestamp) -> bool:
    """Nightly: not yet today (UTC); weekly: not in the six days before today either (by calendar day,
    so a night that runs an hour earlier than last week's still mails)."""
    if last is None:
        return True
    first_day = now.floor("D") - pd.Timedelta(days=6 if schedule == "weekly" else 0)
    return last < first_day


def _last_told(connection) -> dict[int, pd.Timestamp]:
    """When each account was last mailed anything."""
    noted = case((mail_ledger.c.outcome == "sent", mail_ledger.c.recovered_at))  # answered: closed unsaid
    told = [func.max(mail_ledger.c.sent_at), func.max(mail_ledger.c.reminded_at), func.max(noted)]
    rows = connection.execute(select(mail_ledger.c.user_id, *told).group_by(mail_ledger.c.user_id))
    last = {}
    for user_id, *times in rows:
        known = [pd.Timestamp(t) for t in times if t is not None]
        if known:
            last[user_id] = max(t if t.tzinfo else t.tz_localize("UTC") for t in known)
    return last


def _owners_spoke(connection, now: pd.Timestamp) -> dict[str, pd.Timestamp]:
    """When someone last answered an anomaly of each sensor, or a pause of it began (a pause planned for
    next month says nothing of today's fault until then)."""
    said = select(anomaly_answers.c.sensor_id, anomaly_answers.c.answered_at.label("at"))
    paused = select(
        sensor_pauses.c.sensor_id, sensor_pauses.c.created_at, sensor_pauses.c.start_at.label("at")
    ).where(sensor_pauses.c.start_at <= now.to_pydatetime())
    spoke = {}
    for query in (said, paused):
        for row in connection.execute(query):
            at = max(pd.Timestamp(moment) for moment in row[1:])  # a pause: made, and begun
            spoke[row.sensor_id] = max(spoke.get(row.sensor_id, at), at)
    return spoke


def _mark_answered(connection, ledger: pd.DataFrame, spoke: dict[str, pd.Timestamp]) -> int:
    """Episodes mailed, after which someone answered for the sensor or paused it: they know, so no
    reminder and no "well again" note follow (outcome `answered`)."""
    sent_at = pd.to_datetime(ledger["sent_at"], utc=True)
    spoke_at = pd.to_datetime(ledger["sensor_id"].map(spoke), utc=True)
    answered = ledger[ledger["outcome"].eq("sent") & (spoke_at > sent_at)]
    return _set(connection, answered, outcome="answered")


def _due(ledger: pd.DataFrame, current: pd.DataFrame, now: pd.Timestamp):
    """What each account is owed: episodes queued and not sent; episodes told a week ago or more and still
    going, not yet reminded; episodes told, now over with the sensor well, not yet said to be well."""
    ledger["since"] = pd.to_datetime(ledger["since"], utc=True)
    going = ledger[EPISODE].merge(current[EPISODE].drop_duplicates(), on=EPISODE, how="left", indicator=True)
    going = going["_merge"].eq("both").to_numpy()
    told = ledger["outcome"].eq("sent").to_numpy()
    sent_at = pd.to_datetime(ledger["sent_at"], utc=True)
    news = ledger[ledger["sent_at"].isna().to_numpy() & ledger["outcome"].isna().to_numpy()]
    week = (sent_at <= now - REMIND_AFTER).to_numpy()
    reminders = ledger[told & going & week & ledger["reminded_at"].isna().to_numpy()]
    well = ledger["health"].isin(WELL).to_numpy()
    recovered = ledger[told & ~going & well & ledger["recovered_at"].isna().to_numpy()]
    return news, reminders, recovered


# An account that is told anything: active, with alerts on and an address. An owner account hears of
# its owner's sensors; an admin account of every sensor, in one digest.
WANTS_MAIL = (users.c.is_active, users.c.alerts, users.c.email.is_not(None))
SEES = (sensors.c.owner_id == users.c.owner_id) | (users.c.role == "admin")


def _bad_sensors():
    """Each faulty or silent sensor, for each account that wants alerts, has an address and sees it."""
    return (
        select(
            users.c.user_id,
            sensors.c.sensor_id,
            sensor_health.c.status,
            sensor_health.c.last_anomaly_at,
            sensor_health.c.latest_reading_at,
            sensor_health.c.reason,
        )
        .join(sensors, SEES)
        .join(sensor_health, sensor_health.c.sensor_id == sensors.c.sensor_id)
        .where(*WANTS_MAIL, sensor_health.c.status.in_(BAD))
    )


def _episodes(current: pd.DataFrame) -> pd.Series:
    """When each sensor's present trouble began: its last anomaly if faulty, its latest reading if silent."""
    faulty = pd.to_datetime(current["last_anomaly_at"], utc=True)
    silent = pd.to_datetime(current["latest_reading_at"], utc=True)
    since = faulty.where(current["status"] == "faulty", silent)
    return since.fillna(EPOCH)


EPISODE = ["user_id", "sensor_id", "status"]  # one open episode of each at a time


def _open_episodes():
    """Ledger rows of episodes not over: queued, or told (and answered) and not yet closed."""
    return (mail_ledger.c.outcome.is_(None) & mail_ledger.c.sent_at.is_(None)) | (
        mail_ledger.c.outcome.in_(("sent", "answered")) & mail_ledger.c.recovered_at.is_(None)
    )


def _queue(connection, current: pd.DataFrame, now: pd.Timestamp) -> int:
    """Ledger rows for the bad sensors no open episode covers. A fault that goes on is one episode though
    its last anomaly's end moves every night (detection extends it): it is the account, sensor and status
    that continue, not the time. A key told before (the same sensor bad again since the same moment, as
    when an owner takes back a *not a fault*) is not told twice."""
    columns = [*EPISODE, "since"]
    open_rows = read_frame(
        connection, select(*(mail_ledger.c[name] for name in EPISODE)).where(_open_episodes())
    )
    known = read_frame(connection, select(*(mail_ledger.c[name] for name in columns)))
    known["since"] = pd.to_datetime(known["since"], utc=True)
    new = current.merge(open_rows.drop_duplicates(), on=EPISODE, how="left", indicator=True)
    new = new[new["_merge"] == "left_only"].drop(columns="_merge")
    new = new.merge(known, on=columns, how="left", indicator=True)
    new = new[new["_merge"] == "left_only"]
    if new.empty:
        return 0
    rows = [
        {
            "user_id": int(row.user_id),
            "sensor_id": row.sensor_id,
            "status": row.status,
            "since": row.since.to_pydatetime(),
            "reason": row.reason,
            "queued_at": now.to_pydatetime(),
        }
        for row in new.itertuples()
    ]
    connection.execute(insert(mail_ledger), rows)
    return len(rows)


def _mark_stale(connection, current: pd.DataFrame) -> int:
    """Queued episodes that are over (the sensor well again, or its account no longer sees it): never
    sent."""
    queued = read_frame(
        connection,
        select(mail_ledger.c.mail_id, *(mail_ledger.c[name] for name in EPISODE)).where(
            mail_ledger.c.sent_at.is_(None), mail_ledger.c.outcome.is_(None)
        ),
    )
    live = queued.merge(current[EPISODE].drop_duplicates(), on=EPISODE, how="inner")["mail_id"]
    over = sorted(set(queued["mail_id"]) - set(live))
    if over:
        connection.execute(update(mail_ledger).where(mail_ledger.c.mail_id.in_(over)).values(outcome="stale"))
    return len(over)


def _close_answered(connection, ledger: pd.DataFrame, current: pd.DataFrame, now: pd.Timestamp) -> int:
    """Answered episodes whose sensor is no longer bad: over, with nothing to tell (recovered_at, no
    mail). Its sensor bad again later is a new episode."""
    answered = ledger[ledger["outcome"].eq("answered")]
    going = answered[EPISODE].merge(
        current[EPISODE].drop_duplicates(), on=EPISODE, how="left", indicator=True
    )
    return _set(
        connection, answered[going["_merge"].eq("left_only").to_numpy()], recovered_at=now.to_pydatetime()
    )


def _ledger():
    """Every episode told or to tell, with its account's address and name, the sensor's name and its
    health now."""
    columns = ("mail_id", "user_id", "sensor_id", "status", "since", "sent_at", "outcome")
    return (
        select(
            *(mail_ledger.c[name] for name in columns),
            mail_ledger.c.reminded_at,
            mail_ledger.c.recovered_at,
            mail_ledger.c.reason,
            users.c.username,
            users.c.email,
            users.c.role,
            users.c.alert_schedule,
            users.c.language,
            sensors.c.name,
            sensors.c.owner_id,
            sensors.c.place,
            sensors.c.country,
            sensor_health.c.status.label("health"),
        )
        .join(users, users.c.user_id == mail_ledger.c.user_id)
        .join(sensors, (sensors.c.sensor_id == mail_ledger.c.sensor_id) & SEES)  # still theirs to see
        .outerjoin(sensor_health, sensor_health.c.sensor_id == mail_ledger.c.sensor_id)
        .where(_open_episodes(), *WANTS_MAIL)
        .order_by(mail_ledger.c.user_id, mail_ledger.c.sensor_id)
    )


def _last_fault_kinds(connection, sensor_ids: list[str]) -> dict[str, str]:
    """Each sensor's latest fault's kind, of those that still speak to its health (conditions, imported
    history and what its owner explained are not faults): in SQL, a batch of sensors at a time."""
    kinds = {}
    for i in range(0, len(sensor_ids), 2_000):
        ranked = (
            select(
                anomalies.c.sensor_id,
                anomalies.c.kind,
                func.row_number()
                .over(
                    partition_by=anomalies.c.sensor_id,
                    order_by=[anomalies.c.end_at.desc(), anomalies.c.score.desc()],
                )
                .label("rank"),
            )
            .where(
                anomalies.c.sensor_id.in_(sensor_ids[i : i + 2_000]),
                anomalies.c.kind.not_in([kind.value for kind in NOT_FAULTS]),
                counts_for_health(),
            )
            .subquery()
        )
        kinds.update(
            connection.execute(select(ranked.c.sensor_id, ranked.c.kind).where(ranked.c.rank == 1)).all()
        )
    return kinds


def _set(connection, rows: pd.DataFrame, **values) -> int:
    if rows.empty:
        return 0
    connection.execute(
        update(mail_ledger).where(mail_ledger.c.mail_id == bindparam("id")).values(**values),
        [{"id": int(mail_id)} for mail_id in rows["mail_id"]],
    )
    return len(rows)


def _message(server, account, mine: list[pd.DataFrame], context: StepContext):
    """The mail to one account: its owner's alert, or an admin's digest of the network; with a signed
    one-click unsubscribe link (RFC 8058) when MAIL_LINK_SECRET is set."""
    base = context.settings.dashboard_url.rstrip("/")
    secret = context.settings.link_secret()
    stop = None
    if secret:
        stop = (
            f"{base}/unsubscribe/{links.sign(secret, Purpose.UNSUBSCRIBE, {'user': int(account['user_id'])})}"
        )
    words = i18n.translations(account["language"])  # the account's language, else English
    if account["role"] == "admin":
        title = digest_subject(*mine, words=words)
        text = digest_body(account["username"], *mine, base, stop, words=words)
    else:
        title = subject(*map(len, mine), words=words)
        text = body(account["username"], *mine, context, stop, words=words)
    message = server.message(account["email"], title, text)
    if stop:
        message["List-Unsubscribe"] = f"<{stop}>"
        message["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    return message


def subject(new: int, reminders: int, recovered: int, words=ENGLISH) -> str:
    ngettext = words.ngettext
    if new:
        said = ngettext(
            "GROW-WOW: a sensor needs a look", "GROW-WOW: %(count)d of your sensors need a look", new
        )
        return said % {"count": new}
    if reminders:
        said = ngettext(
            "GROW-WOW: a sensor still needs a look",
            "GROW-WOW: %(count)d sensors still need a look",
            reminders,
        )
        return said % {"count": reminders}
    said = ngettext(
        "GROW-WOW: a sensor is well again", "GROW-WOW: %(count)d sensors are well again", recovered
    )
    return said % {"count": recovered}


def body(
    username: str, new, reminders, recovered, context: StepContext, stop: str | None = None, words=ENGLISH
) -> str:
    """The mail's words: plain text, every name and reason cut to one printable line."""
    _ = words.gettext
    base = context.settings.dashboard_url.rstrip("/")
    parts = [_("Hello %(name)s,") % {"name": _line(username, 64)}, ""]
    for heading, rows, advised in (
        (_("Since our last mail, these sensors of yours need a look:"), new, True),
        (_("Still not well a week after our mail:"), reminders, True),
        (_("Well again:"), recovered, False),
    ):
        if rows.empty:
            continue
        parts += [heading, ""]
        for row in rows.itertuples():
            state = _state(row.status, row.since, words)
            page = f"{base}/sensors/{quote(row.sensor_id, safe='')}"
            if advised:
                lines = [
                    f"- {_label(row)}: {state}",
                    "  " + _("Why: %(reason)s") % {"reason": _reason(row.reason, words)},
                    "  " + _("Try: %(advice)s") % {"advice": _(advice(row.status, row.kind))},
                    "  " + _("Not a fault, or fixed it? Say so: %(link)s") % {"link": f"{page}#answers"},
                ]
            else:
                now = _(STATUS_WORDS.get(row.health, row.health))
                lines = [
                    f"- {_label(row)}: "
                    + _("%(health)s (it was %(state)s)") % {"health": now, "state": state}
                ]
            parts += [*lines, "  " + _("Charts: %(link)s") % {"link": page}, ""]
    return "\n".join(parts + _footer(base, stop, words)) + "\n"


def _label(row) -> str:
    """A sensor as a mail names it: its name and id, or its id alone."""
    name = _line(row.name, 80) if isinstance(row.name, str) and row.name.strip() else None
    return f"{name} ({row.sensor_id})" if name else row.sensor_id


def _state(status: str, since, words) -> str:
    """The state of an episode in the mail's language ("faulty since 2019-06-10 03:00 UTC"), without a
    time when none is known."""
    said = words.gettext(STATUS_WORDS.get(status, status))
    since = pd.Timestamp(since)
    if since == EPOCH:
        return said
    return words.gettext("%(status)s since %(time)s UTC") % {
        "status": said,
        "time": f"{since:%Y-%m-%d %H:%M}",
    }


def _reason(reason, words) -> str:
    """The sensor's reason, as the nightly analysis stored it (in English: detection's own words)."""
    return _line(reason, 300) if isinstance(reason, str) else words.gettext("no reason recorded")


def _footer(base: str, stop: str | None, words=ENGLISH) -> list[str]:
    _ = words.gettext
    how_often = _("You get at most one of these mails a day, or a week: choose at %(link)s") % {
        "link": f"{base}/account"
    }
    return [
        how_often,
        _("Stop these mails: %(link)s") % {"link": stop}
        if stop
        else _("Ask your operator to stop these mails."),
    ]


DIGEST_LISTED = 50  # sensors a digest names; the map has the rest


def digest_subject(new: pd.DataFrame, reminders: pd.DataFrame, recovered: pd.DataFrame, words=ENGLISH) -> str:
    counts = new["status"].value_counts()
    faulty, silent, well, still = (
        int(counts.get("faulty", 0)),
        int(counts.get("silent", 0)),
        len(recovered),
        len(reminders),
    )
    ngettext = words.ngettext
    counted = (
        (faulty, ngettext("%(count)d faulty", "%(count)d faulty", faulty)),
        (silent, ngettext("%(count)d silent", "%(count)d silent", silent)),
        (well, ngettext("%(count)d well again", "%(count)d well again", well)),
    )
    said = [text % {"count": n} for n, text in counted if n]
    if not said:
        said = [
            ngettext("%(count)d still bad after a week", "%(count)d still bad after a week", still)
            % {"count": still}
        ]
    return words.gettext("GROW-WOW network digest: %(news)s") % {"news": ", ".join(said)}


def digest_body(
    username: str, new, reminders, recovered, base: str, stop: str | None = None, words=ENGLISH
) -> str:
    """An admin's digest: how many sensors turned faulty or silent, recovered, or stay bad a week on;
    where most of the new ones are; and the new ones by name, the first DIGEST_LISTED."""
    _ = words.gettext
    counts = new["status"].value_counts()
    parts = [
        _("Hello %(name)s,") % {"name": _line(username, 64)},
        "",
        _("Since the last digest, across the network:"),
        _("Newly faulty: %(count)d") % {"count": counts.get("faulty", 0)},
        _("Newly silent: %(count)d") % {"count": counts.get("silent", 0)},
        _("Well again: %(count)d") % {"count": len(recovered)},
        _("Still bad a week after the last digest: %(count)d") % {"count": len(reminders)},
        "",
    ]
    places = new["place"].where(new["place"].notna(), new["country"]).dropna().map(lambda p: _line(p, 60))
    if not places.empty:
        worst = sorted(places.value_counts().items(), key=lambda item: (-item[1], item[0]))[:5]
        where = ", ".join(f"{place} ({n})" for place, n in worst)
        parts += [_("Where most are: %(places)s") % {"places": where}, ""]
    if not new.empty:
        parts += [_("New:"), ""]
    for row in new.head(DIGEST_LISTED).itertuples():
        owner = _line(row.owner_id, 64) if isinstance(row.owner_id, str) else _("none")
        state = _state(row.status, row.since, words)
        parts += [
            "- "
            + _("%(sensor)s, owner %(owner)s: %(state)s")
            % {"sensor": _label(row), "owner": owner, "state": state},
            "  " + _("Why: %(reason)s") % {"reason": _reason(row.reason, words)},
            "  " + _("Charts: %(link)s") % {"link": f"{base}/sensors/{quote(row.sensor_id, safe='')}"},
        ]
    if len(new) > DIGEST_LISTED:
        more = {"count": len(new) - DIGEST_LISTED, "link": f"{base}/all_grow_map"}
        parts.append(_("... and %(count)d more: %(link)s") % more)
    return "\n".join([*parts, "", *_footer(base, stop, words)]) + "\n"


def advice(status: str, kind: str | None) -> str:
    """What to try, in English (the mail translates it)."""
    if status == "silent":
        return SILENT
    if kind in ADVICE:
        return ADVICE[AnomalyKind(kind)]
    if kind in (AnomalyKind.OUT_OF_RANGE, AnomalyKind.SPIKE, AnomalyKind.BREAK):
        return DAMAGED
    return LOOK


def _line(text: str, width: int) -> str:
    """One printable line: control characters (a newline in a sensor's name) gone, cut to `width`."""
    return clean_text(" ".join(str(text).split()), width)[0]


@click.command(NAME, cls=Command, context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Mail each owner account (with an address, alerts on) its sensors gone faulty or silent since its
    last mail: SMTP_HOST, SMTP_PORT, SMTP_SECURITY, SMTP_USER and SMTP_PASSWORD name the server."""
    run_alone(NAME, run, Shard())


if __name__ == "__main__":
    main(prog_name=f"python -m etl.{NAME}")
