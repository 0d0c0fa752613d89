"""Links in mails that act without a login: confirm an address, reset a password, stop alerts.

Each carries a token signed with MAIL_LINK_SECRET (shared by the nightly job, which mails alerts, and the
dashboard, which mails confirmations and resets and opens every link), for one purpose only (a reset
token cannot unsubscribe), and each expires. A forged, altered, expired or misused token reads as None.
"""

from __future__ import annotations

from enum import StrEnum

from itsdangerous import BadData, URLSafeTimedSerializer


class Purpose(StrEnum):
    CONFIRM = "confirm-address"
    RESET = "reset-password"
    UNSUBSCRIBE = "unsubscribe"


# How long a link works, in seconds: a confirmation for a day, a reset for an hour, an unsubscribe link
# for as long as an old mail may sit in an inbox before someone wants out.
LIFETIME_S = {Purpose.CONFIRM: 24 * 3600, Purpose.RESET: 3600, Purpose.UNSUBSCRIBE: 90 * 24 * 3600}


def _signer(secret: str, purpose: Purpose) -> URLSafeTimedSerializer:
    if not secret:
        raise ValueError("a link needs MAIL_LINK_SECRET to sign it")
    return URLSafeTimedSerializer(secret, salt=f"grow-wow {purpose.value}")


def sign(secret: str, purpose: Purpose, payload: dict) -> str:
    """A token for a link of `purpose` holding `payload` (plain JSON values), signed and timestamped."""
    return _signer(secret, purpose).dumps(payload)


def read(secret: str, purpose: Purpose, token: str, max_age_s: int | None = None) -> dict | None:
    """The payload of a genuine token of `purpose` younger than its lifetime, else None."""
    try:
        payload = _signer(secret, purpose).loads(token, max_age=max_age_s or LIFETIME_S[purpose])
    except BadData:
        return None
    return payload if isinstance(payload, dict) else None
