"""The mails the dashboard sends to people who ask at its pages (confirm an address, an account exists
already, reset a password), the signed links in them, and what a page answers about sending one.

Links point at DASHBOARD_URL, never at the host a request named: a forged Host header cannot send a
link somewhere else. Mail goes out only when both SMTP_HOST and MAIL_LINK_SECRET are set (`can_send`);
one inbox gets only so many of these mails, whoever asks (`inbox_limited`). Each mail is in the language
of the request that sends it (the account's, else the browser's), or of the account it goes to.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from typing import NamedTuple

from flask import render_template, request, url_for
from flask_babel import force_locale, gettext, lazy_gettext, ngettext

from core import links
from core.links import Purpose
from core.mail import MailError
from flask_front_end import accounts, extensions, limiter, page_language

logger = logging.getLogger(__name__)
SITE = "GROW–WOW"


class Mail(NamedTuple):
    subject: str
    body: str


def can_send() -> bool:
    settings = extensions.settings()
    return settings.mail_server() is not None and bool(settings.link_secret())


def sent(to: str, mail: Mail) -> bool:
    """Send `mail` to `to`; False when the server cannot be reached or refuses, logged with the
    server's words only (never the address or the link, which acts without a login)."""
    server = extensions.settings().mail_server()
    try:
        server.send(server.message(to, mail.subject, mail.body))
    except MailError as error:
        logger.warning("mail %r not sent: %s", mail.subject, error)
        return False
    return True


def link(endpoint: str, **values) -> str:
    """A page's address as people open it from a mail."""
    return extensions.settings().dashboard_url.rstrip("/") + url_for(endpoint, **values)


def signed_link(endpoint: str, purpose: Purpose, payload: dict) -> str:
    """A page's address with a token of `purpose` holding `payload` (core.links)."""
    return link(endpoint, token=links.sign(extensions.settings().link_secret(), purpose, payload))


def read(purpose: Purpose, token: str, keys: set[str]) -> dict | None:
    """A link's payload if its token is genuine, of `purpose`, within its lifetime and holding exactly
    `keys` (a confirmation of a new address is no sign-up); else None."""
    secret = extensions.settings().link_secret()
    payload = links.read(secret, purpose, token) if secret else None
    return payload if payload is not None and set(payload) == keys else None


def _hours(purpose: Purpose) -> str:
    hours = links.LIFETIME_S[purpose] // 3600
    return ngettext("%(num)d hour", "%(num)d hours", hours)


# --- how often one inbox gets them ------------------------------------------------------------------------
def _inbox_asked() -> str:
    """The address a request asks mail for, as accounts fold it: counted whoever asks, from anywhere."""
    return "inbox:" + accounts.folded(request.form.get("email", ""))[:254]


inbox_limited = limiter.shared_limit(
    lambda: extensions.settings().inbox_rate_limit,
    scope="inbox",
    key_func=_inbox_asked,
    methods=["POST"],
    error_message=lazy_gettext("Too many mails asked for this address; wait an hour and try again."),
)


# --- what a page answers ----------------------------------------------------------------------------------
def no_mail_here():
    """Without SMTP_HOST or MAIL_LINK_SECRET nothing can be confirmed by mail: the operator makes accounts."""
    message = gettext(
        "This site cannot send mail, so its accounts are made by its operator, who can also set a new "
        "password: ask them."
    )
    return render_template("notice.html", title=gettext("No mail from this site"), message=message), 200


def on_its_way():
    """The one answer to a request for mail, whether the address has an account or not."""
    message = gettext(
        "If the address can take what you asked for, a mail is on its way to it. It may take a few "
        "minutes; look in the spam folder too."
    )
    return render_template("notice.html", title=gettext("Look in your mail"), message=message), 200


def not_sent_now():
    message = gettext("We could not send mail just now. Nothing has changed: please try again later.")
    return render_template("notice.html", title=gettext("Mail not sent"), message=message), 503


def link_no_longer_works(what: str):
    message = gettext(
        "This link no longer works: it has expired, been used already or been altered. %(what)s", what=what
    )
    return render_template("notice.html", title=gettext("Link no longer works"), message=message), 400


@contextmanager
def in_language_of(user_id: int):
    """What follows (a page opened from a mail's link, by whoever opens it) in the language the account
    chose, else the request's."""
    chosen = accounts.preferences(extensions.engine(), user_id)
    with force_locale((chosen.language if chosen else None) or page_language()):
        yield


# --- the words of each mail: plain text, in the request's language -----------------------------------------
def _mail(subject: str, *paragraphs: str) -> Mail:
    """A greeting, the paragraphs (a link alone in its own, so nothing breaks it), and the site's name."""
    return Mail(subject, "\n\n".join([gettext("Hello,"), *paragraphs, SITE]) + "\n")


def confirm_signup(confirm: str) -> Mail:
    return _mail(
        gettext("Confirm your address for %(site)s", site=SITE),
        gettext(
            "Someone, probably you, asked for a %(site)s account with this address. To make it, open this "
            "link and choose a password:",
            site=SITE,
        ),
        confirm,
        gettext(
            "The link works for %(hours)s. If you did not ask, ignore this mail: no account is made "
            "without it.",
            hours=_hours(Purpose.CONFIRM),
        ),
    )


def already_signed_up(login: str, reset: str) -> Mail:
    return _mail(
        gettext("You already have a %(site)s account", site=SITE),
        gettext(
            "Someone, probably you, asked to sign up to %(site)s with this address, but it has an account "
            "already. Log in here:",
            site=SITE,
        ),
        login,
        gettext("Forgotten the password? Choose a new one here:"),
        reset,
        gettext("If you did not ask, ignore this mail: nothing has changed."),
    )


def reset_password(username: str, reset: str) -> Mail:
    return _mail(
        gettext("Reset your %(site)s password", site=SITE),
        gettext(
            "Someone, probably you, asked to reset the password of the account %(account)s on %(site)s. To "
            "choose a new one, open this link:",
            account=username,
            site=SITE,
        ),
        reset,
        gettext(
            "The link works once, for %(hours)s. If you did not ask, ignore this mail: your password stays "
            "as it is.",
            hours=_hours(Purpose.RESET),
        ),
    )


def no_account_here(signup: str) -> Mail:
    return _mail(
        gettext("About resetting a %(site)s password", site=SITE),
        gettext(
            "Someone, probably you, asked to reset a %(site)s password for this address, but no account "
            "here has it. Perhaps your account has another address, or its operator made it for you: ask "
            "them. To make an account with this address, sign up here:",
            site=SITE,
        ),
        signup,
        gettext("If you did not ask, ignore this mail."),
    )


def confirm_new_address(confirm: str) -> Mail:
    return _mail(
        gettext("Confirm your new address for %(site)s", site=SITE),
        gettext(
            "Someone, probably you, asked for the mail of a %(site)s account to come to this address. To "
            "confirm it, open this link:",
            site=SITE,
        ),
        confirm,
        gettext(
            "The link works for %(hours)s. Until then, mail keeps going to the old address. If you did not "
            "ask, ignore this mail: nothing changes without it.",
            hours=_hours(Purpose.CONFIRM),
        ),
    )
