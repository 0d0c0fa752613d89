"""Logging for every command: plain lines on stderr, and no secret ever written out."""

from __future__ import annotations

import logging
import sys

from core.settings import CoreSettings

# Libraries that log request details (headers, bodies) at DEBUG.
CHATTY_LOGGERS = ("alembic", "botocore", "boto3", "urllib3", "s3transfer")
REDACTED = "***"


class SecretRedactor(logging.Formatter):
    """Log lines as usual, message and traceback alike, with every configured secret replaced by ***.
    It formats the whole record first: a secret in an exception's text or in a stack would pass a
    filter that looks only at the message."""

    def __init__(self, secrets: list[str]):
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        for secret in self.secrets:
            text = text.replace(secret, REDACTED)
        return text


class _RedactingHandler(logging.StreamHandler):
    """Ours: configuring again replaces it, and leaves others' handlers alone (a test runner's)."""


def configure_logging(settings: CoreSettings) -> None:
    """Send log lines to stderr at the configured level, with secrets redacted. The ETL and both web
    apps install it, each with its own role's secrets."""
    handler = _RedactingHandler(sys.stderr)
    handler.setFormatter(SecretRedactor(settings.secret_values()))
    root = logging.getLogger()
    root.handlers[:] = [h for h in root.handlers if not isinstance(h, _RedactingHandler)] + [handler]
    root.setLevel(settings.log_level)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Each retry of urllib3 is a warning; our sources report the outcome once, naming what was asked.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
