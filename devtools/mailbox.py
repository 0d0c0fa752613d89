"""The demo's mail server: a real SMTP server on loopback (aiosmtpd) that keeps every message it is sent
as a `.eml` file in a folder under var/, where any mail program or text editor opens it. The demo's
alerts, sign-up confirmations and password resets all land there; nothing leaves the machine."""

from __future__ import annotations

import datetime as dt
import re
import socket
from email import message_from_bytes, policy
from pathlib import Path

from aiosmtpd.controller import Controller

from core.settings import VAR_DIR

DEMO_MAIL_DIR = VAR_DIR / "demo-mail"


class _Keeper:
    """aiosmtpd's handler: each message received becomes one file, named by when and its subject."""

    def __init__(self, folder: Path):
        self.folder = folder

    async def handle_DATA(self, server, session, envelope):
        message = message_from_bytes(envelope.content, policy=policy.default)
        subject = re.sub(r"[^A-Za-z0-9]+", "-", str(message["Subject"] or "no subject")).strip("-")[:60]
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%S%f")
        (self.folder / f"{stamp}-{subject}.eml").write_bytes(envelope.original_content or envelope.content)
        return "250 kept"


class Mailbox:
    """Start with `Mailbox(folder)`; `.port` is where it listens on 127.0.0.1; `.stop()` ends it. The
    folder holds this run's mails only: an earlier run's links were signed with its own key, now gone."""

    def __init__(self, folder: Path = DEMO_MAIL_DIR):
        self.folder = folder
        folder.mkdir(parents=True, exist_ok=True)
        for old in folder.glob("*.eml"):
            old.unlink()
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self._controller = Controller(_Keeper(folder), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def messages(self) -> list[Path]:
        return sorted(self.folder.glob("*.eml"))

    def settings(self) -> dict:
        """The mail settings of a role that sends here."""
        return {"smtp_host": "127.0.0.1", "smtp_port": self.port, "smtp_security": "none"}

    def stop(self) -> None:
        self._controller.stop()
