"""Logging for every command: plain lines on stderr, and no secret ever written out."""

from __future__ import annotations

import logging
import sys

from etl.settings import Settings

# Libraries that log request details (headers, bodies) at DEBUG.
CHATTY_LOGGERS = ("alembic", "botocore", "boto3", "urllib3", "s3transfer")
REDACTED = "***"


class SecretRedactor(logging.Filter):
    """Replace any configured secret that slips into a log message with ***."""

    def __init__(self, secrets: list[str]):
        super().__init__()
        self.secrets = sorted({s for s in secrets if s and len(s) >= 4}, key=len, reverse=True)

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        redacted = message
        for secret in self.secrets:
            redacted = redacted.replace(secret, REDACTED)
        if redacted != message:
            record.msg, record.args = redacted, None
        return True


def secret_values(settings: Settings) -> list[str]:
    """Every secret the settings hold: API keys and the database password."""
    values = [
        s.get_secret_value()
        for s in (settings.grow_api_key, settings.wow_api_key, settings.google_api_key)
        if s
    ]
    if settings.database.password:
        values.append(str(settings.database.password))
    return values


def configure_logging(settings: Settings) -> None:
    """Send log lines to stderr at the configured level, with secrets redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretRedactor(secret_values(settings)))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Each retry of urllib3 is a warning; our sources report the outcome once, naming what was asked.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
