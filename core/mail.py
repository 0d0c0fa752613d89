"""Mail out: the SMTP server the settings name (host, port, STARTTLS or TLS, user; the password from the
environment or AWS Secrets Manager like every secret), and sending plain-text messages through it. A server
that cannot be reached, or refuses, is one MailError naming it, never the password."""

from __future__ import annotations

import smtplib
import ssl
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from pydantic import Field, SecretStr, field_validator

from core.errors import GrowWowError
from core.settings import CoreSettings

SECURITY = ("starttls", "tls", "none")  # "none" only for a server on loopback, as the tests' and the demo's
# Lines up to RFC 5322's 998 characters, so a subject in Greek or French is never folded: Python 3.11's
# folder splits an encoded subject at a space and drops it ("κωδικό πρόσβασης" arrives "κωδικόπρόσβασης").
# 7-bit: a body that is not ASCII goes base64 or quoted-printable, for any server.
MAIL_POLICY = policy.default.clone(max_line_length=998, cte_type="7bit")


class MailError(GrowWowError):
    """The mail server could not be reached or refused the message: nothing was sent. `unreachable`: it
    could not be reached at all (no use trying the next message now)."""

    def __init__(self, message: str, unreachable: bool = False):
        super().__init__(message)
        self.unreachable = unreachable


class MailSettings(CoreSettings):
    """What a role that sends mail reads (the nightly job's alerts)."""

    smtp_host: str | None = Field(default=None, description="the SMTP server; unset: no mail is sent")
    smtp_port: int = Field(default=587, ge=1, le=65535, description="its port: 587 STARTTLS, 465 TLS")
    smtp_security: str = Field(
        default="starttls", description="starttls, tls, or none (a server on loopback only)"
    )
    smtp_user: str | None = Field(default=None, description="the SMTP login, if the server wants one")
    smtp_timeout_s: float = Field(
        default=30.0, gt=0, le=300, description="seconds to wait on the mail server before giving up"
    )
    smtp_password: SecretStr | None = Field(default=None, description="its password (or AWS_SMTP_SECRET)")
    mail_from: str = Field(default="GROW-WOW <grow-wow@localhost>", description="the From of every mail sent")
    dashboard_url: str = Field(
        default="http://127.0.0.1:8000", description="the dashboard's address people open, for links in mails"
    )
    mail_link_secret: SecretStr | None = Field(
        default=None,
        description="signs the links in mails that act without a login (confirm, reset, unsubscribe); "
        "the nightly job and the dashboard share it",
    )
    aws_mail_link_secret: str | None = Field(
        default=None, description="the secret holding MAIL_LINK_SECRET; unset: the environment"
    )
    aws_smtp_secret: str | None = Field(
        default=None,
        description="the secret holding SMTP_PASSWORD (e.g. grow-wow-smtp); unset: the environment",
    )

    @field_validator("smtp_security")
    @classmethod
    def _known_security(cls, value: str) -> str:
        if value not in SECURITY:
            raise ValueError(f"one of {', '.join(SECURITY)}")
        return value

    def secrets_from_store(self, store) -> dict[str, SecretStr]:
        updates = super().secrets_from_store(store)
        if self.aws_smtp_secret and "smtp_password" not in self.model_fields_set:
            updates["smtp_password"] = SecretStr(
                self.from_store("SMTP_PASSWORD", store.api_key, self.aws_smtp_secret)
            )
        if self.aws_mail_link_secret and "mail_link_secret" not in self.model_fields_set:
            updates["mail_link_secret"] = SecretStr(
                self.from_store("MAIL_LINK_SECRET", store.api_key, self.aws_mail_link_secret)
            )
        return updates

    def link_secret(self) -> str | None:
        return self.mail_link_secret.get_secret_value() if self.mail_link_secret else None

    def mail_server(self) -> MailServer | None:
        """The server to send through, or None when SMTP_HOST names none."""
        if not self.smtp_host:
            return None
        password = self.smtp_password.get_secret_value() if self.smtp_password else None
        return MailServer(
            self.smtp_host,
            self.smtp_port,
            self.smtp_security,
            self.smtp_user,
            password,
            self.mail_from,
            self.smtp_timeout_s,
        )


@dataclass(frozen=True)
class MailServer:
    host: str
    port: int
    security: str
    user: str | None
    password: str | None
    sender: str
    timeout_s: float = 30.0

    def __repr__(self) -> str:  # never the password
        return f"MailServer({self.host}:{self.port}, {self.security})"

    def message(self, to: str, subject: str, body: str) -> EmailMessage:
        """A plain-text message from MAIL_FROM. Header values with a line break are refused by the email
        package itself, so nothing a sensor's name holds can add a header."""
        message = EmailMessage(policy=MAIL_POLICY)
        message["From"] = self.sender
        message["To"] = to
        message["Subject"] = subject
        message["Date"] = formatdate(localtime=False)
        message["Message-ID"] = make_msgid(domain="grow-wow")
        message.set_content(body)
        return message

    def send(self, message: EmailMessage) -> None:
        """Send one message; MailError if the server cannot be reached or refuses it."""
        where = f"the mail server {self.host}:{self.port}"
        try:
            if self.security == "tls":
                smtp = smtplib.SMTP_SSL(
                    self.host, self.port, timeout=self.timeout_s, context=ssl.create_default_context()
                )
            else:
                smtp = smtplib.SMTP(self.host, self.port, timeout=self.timeout_s)
            with smtp:
                if self.security == "starttls":
                    smtp.starttls(context=ssl.create_default_context())
                if self.user:
                    smtp.login(self.user, self.password or "")
                smtp.send_message(message)
        except smtplib.SMTPResponseException as exc:
            raise MailError(f"{where} refused: {exc.smtp_code} {_said(exc.smtp_error)}") from None
        except smtplib.SMTPRecipientsRefused as exc:
            codes = ", ".join(f"{code} {_said(text)}" for code, text in exc.recipients.values())
            raise MailError(f"{where} refused the recipient: {codes}") from None
        except (smtplib.SMTPServerDisconnected, smtplib.SMTPConnectError, OSError) as exc:
            raise MailError(f"{where} cannot be reached: {exc}", unreachable=True) from None
        except smtplib.SMTPException as exc:
            raise MailError(f"{where} failed: {exc}") from None


def _said(text: bytes | str) -> str:
    return (text.decode(errors="replace") if isinstance(text, bytes) else str(text)).strip()
