"""Tokens in mail links: signed, for one purpose, expiring."""

import time

from core import links
from core.links import Purpose

SECRET = "a long random link secret for tests"


def test_a_token_reads_back_its_payload_for_its_own_purpose_only():
    token = links.sign(SECRET, Purpose.UNSUBSCRIBE, {"user": 7})
    assert links.read(SECRET, Purpose.UNSUBSCRIBE, token) == {"user": 7}
    assert links.read(SECRET, Purpose.RESET, token) is None  # an unsubscribe link resets no password


def test_a_token_signed_with_another_secret_or_altered_reads_as_none():
    token = links.sign(SECRET, Purpose.CONFIRM, {"email": "olive@example.org"})
    assert links.read("another secret altogether", Purpose.CONFIRM, token) is None
    _, rest = token.split(".", 1)  # the payload swapped, the signature kept
    forged = links.sign("forger's own", Purpose.CONFIRM, {"email": "mallory@example.org"}).split(".", 1)[0]
    assert links.read(SECRET, Purpose.CONFIRM, f"{forged}.{rest}") is None
    assert links.read(SECRET, Purpose.CONFIRM, "not a token") is None


def test_a_token_past_its_lifetime_reads_as_none(monkeypatch):
    token = links.sign(SECRET, Purpose.RESET, {"user": 1})
    later = time.time() + links.LIFETIME_S[Purpose.RESET] + 5
    monkeypatch.setattr(time, "time", lambda: later)
    assert links.read(SECRET, Purpose.RESET, token) is None
