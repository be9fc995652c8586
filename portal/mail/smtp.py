"""SMTP_URL and the messages sent over it.

    SMTP_URL=smtp://[user:password@]host[:port][?starttls=yes|no][&from=address][&timeout=seconds]
    SMTP_URL=smtps://[user:password@]host[:port][?from=address]

smtp:// connects in plain text (port 25 by default) and upgrades with STARTTLS
when the server offers it; `starttls=yes` requires it, `starttls=no` never
tries. smtps:// is TLS from the first byte (port 465). User and password are
URL-encoded (`%40` for @). `from` is the envelope and From address; the display
name is the partner's. Unset SMTP_URL: nothing is sent, e-mails are captured."""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass
from datetime import datetime
from email.header import Header
from email.utils import format_datetime, formataddr
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

from portal.domain.outbox import Content
from portal.settings import get_settings

_YES = {"yes", "true", "1", "on", "required"}
_NO = {"no", "false", "0", "off"}


class InvalidSmtpUrl(ValueError):
    def __init__(self, problem: str) -> None:
        super().__init__(
            f"SMTP_URL is not usable: {problem}. Expected smtp://[user:password@]host[:port][?starttls=yes|no]"
            "[&from=address] or smtps://[user:password@]host[:port], or leave it unset to capture e-mails."
        )


@dataclass(frozen=True)
class SmtpConfig:
    host: str
    port: int
    use_tls: bool
    start_tls: bool | None  # None: if the server offers it
    username: str | None
    password: str | None
    from_address: str
    timeout: float = 30.0

    def client(self) -> aiosmtplib.SMTP:
        return aiosmtplib.SMTP(
            hostname=self.host,
            port=self.port,
            use_tls=self.use_tls,
            start_tls=self.start_tls,
            username=self.username,
            password=self.password,
            timeout=self.timeout,
        )

    def __repr__(self) -> str:  # never print the password in a log line
        return f"SmtpConfig({self.host}:{self.port}, tls={self.use_tls}, starttls={self.start_tls})"


def parse_smtp_url(url: str) -> SmtpConfig:
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise InvalidSmtpUrl(str(exc)) from None
    if parts.scheme not in ("smtp", "smtps"):
        raise InvalidSmtpUrl(f"the scheme must be smtp or smtps, not {parts.scheme or 'missing'!r}")
    if not parts.hostname:
        raise InvalidSmtpUrl("it names no host")
    if parts.path not in ("", "/"):
        raise InvalidSmtpUrl(f"it has a path ({parts.path!r}); options go after '?'")
    query = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(query) - {"starttls", "from", "timeout"}
    if unknown:
        raise InvalidSmtpUrl(f"unknown option {sorted(unknown)[0]!r} (known: starttls, from, timeout)")
    use_tls = parts.scheme == "smtps"
    start_tls: bool | None = None
    if "starttls" in query:
        value = query["starttls"].lower()
        if value not in _YES | _NO:
            raise InvalidSmtpUrl(f"starttls must be yes or no, not {query['starttls']!r}")
        if use_tls:
            raise InvalidSmtpUrl("starttls is for smtp://; smtps:// is TLS from the start")
        start_tls = value in _YES
    if use_tls:
        start_tls = False
    try:
        timeout = float(query.get("timeout", 30))
    except ValueError:
        raise InvalidSmtpUrl(f"timeout must be a number of seconds, not {query['timeout']!r}") from None
    if not 0 < timeout <= 600:
        raise InvalidSmtpUrl("timeout must be between 0 and 600 seconds")
    from_address = query.get("from") or _default_from()
    if "@" not in from_address or any(c in from_address for c in " <>\r\n"):
        raise InvalidSmtpUrl(f"from must be an e-mail address, not {from_address!r}")
    if (parts.username is None) != (parts.password is None):
        raise InvalidSmtpUrl("give both user and password, or neither")
    return SmtpConfig(
        host=parts.hostname,
        port=port or (465 if use_tls else 25),
        use_tls=use_tls,
        start_tls=start_tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        from_address=from_address,
        timeout=timeout,
    )


def _default_from() -> str:
    host = urlsplit(get_settings().base_url).hostname or "localhost"
    if host.replace(".", "").isdigit() or ":" in host:
        host = "localhost"
    return f"noreply@{host}"


def smtp_config() -> SmtpConfig | None:
    """The configured server, or None (capture). Raises InvalidSmtpUrl: call it
    at start so a bad SMTP_URL stops the process with the reason."""
    url = get_settings().smtp_url
    return parse_smtp_url(url) if url else None


def build_message(config: SmtpConfig, row: dict, content: Content, now: datetime) -> bytes:
    """multipart/alternative: the plain text, then the HTML, each UTF-8 in base64.
    The Message-ID is the row's, so if a message ever goes twice (see
    portal/mail/delivery.py), mail clients can tell it is the same one.

    Written out by hand: the `email` package's generator cost ~2 ms a message
    (~5 ms with the default policy), as much as the SMTP exchange itself; this
    fixed shape needs none of its generality. Header values lose any line
    break (no header injection), and non-ASCII ones are RFC 2047-encoded."""
    domain = config.from_address.rsplit("@", 1)[-1]
    boundary = f"=_outbox_{row['id']}_{secrets.token_hex(8)}"
    headers = [
        ("From", formataddr((_one_line(content.sender or ""), config.from_address), charset="utf-8")),
        ("To", _address(row["to_email"])),
        ("Subject", _header_text(content.subject)),
        *([("Reply-To", _address(content.reply_to))] if content.reply_to else []),
        ("Date", format_datetime(now)),
        ("Message-ID", f"<outbox-{row['id']}@{domain}>"),
        ("MIME-Version", "1.0"),
        ("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
    ]
    lines = [f"{name}: {value}" for name, value in headers]
    for subtype, body in (("plain", content.text), ("html", content.html)):
        lines += [
            "",
            f"--{boundary}",
            f'Content-Type: text/{subtype}; charset="utf-8"',
            "Content-Transfer-Encoding: base64",
            "",
            base64.encodebytes(body.encode()).decode("ascii").rstrip("\n").replace("\n", "\r\n"),
        ]
    lines += ["", f"--{boundary}--", ""]
    return "\r\n".join(lines).encode("ascii")


def _one_line(value: str) -> str:
    return " ".join(value.split())


def _header_text(value: str) -> str:
    value = _one_line(value)
    return value if value.isascii() else Header(value, "utf-8").encode()


def _address(value: str) -> str:
    """An address fit for a header and an envelope, or ValueError (the row fails)."""
    if not value or any(c in value for c in ' \r\n<>,;"') or value.count("@") != 1 or not value.isascii():
        raise ValueError(f"{value!r} is not an e-mail address this server can be given")
    return value
