"""Logging for every command: plain lines on stderr, and no secret ever written out."""

from __future__ import annotations

import logging
import sys

from core.settings import CoreSettings

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


def configure_logging(settings: CoreSettings) -> None:
    """Send log lines to stderr at the configured level, with secrets redacted."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.addFilter(SecretRedactor(settings.secret_values()))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.log_level)
    for name in CHATTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    # Each retry of urllib3 is a warning; our sources report the outcome once, naming what was asked.
    logging.getLogger("urllib3").setLevel(logging.ERROR)
