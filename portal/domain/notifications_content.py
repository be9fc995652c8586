"""What an outbox row says when it goes: subject, plain text and HTML from the
templates under templates/email/, the partner's name as the sender and a
Reply-To to the partner's first account manager.

Reminders and expiry notices are queued by one set-based statement with no
text (portal/domain/notifications_sweep.py); their text is made here when they
go, from the batch as it is then (how many users lose access), and kept on
the row, so the portal shows each e-mail as it was sent. Other e-mails carry
their text from the moment they were queued; their HTML part wraps that text."""

from __future__ import annotations

import re
from datetime import datetime
from functools import cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from markupsafe import Markup, escape

from portal.domain.outbox import Content, link
from portal.settings import PROJECT_DIR
from portal.tables import Company

BATCH_KINDS = ("expiry_reminder", "expiry_notice", "trial_reminder", "trial_notice")
_URL = re.compile(r"https?://[^\s<>\"']+")


@cache
def _env() -> Environment:
    return Environment(
        loader=FileSystemLoader(PROJECT_DIR / "templates" / "email"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )


def zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def local_time(at: datetime, time_zone: str | None) -> str:
    """The end of a batch in the company's time zone, named so it cannot be misread."""
    tz = zone(time_zone)
    local = at.astimezone(tz)
    return f"{local:%A %d %B %Y, %H:%M} ({tz.key})"


def _paragraphs(text: str) -> list[Markup]:
    """Plain text as HTML paragraphs: escaped, line breaks kept, links clickable."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        html = escape(block)
        html = Markup(_URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', str(html)))
        out.append(Markup("<br>\n").join(html.split("\n")))
    return out


async def _batches(ids: set[int]) -> dict[int, dict]:
    if not ids:
        return {}
    listed = ", ".join(str(int(i)) for i in ids)
    rows = await Company.raw(
        "SELECT b.id, b.seats, b.ends_at, b.company, p.name AS product_name, p.is_trial, "
        "c.name AS company_name, c.time_zone, "
        '(SELECT count(*) FROM allocation a JOIN portal_user u ON u.id = a."user" '
        " WHERE a.batch = b.id AND a.released_at IS NULL AND u.active "
        " AND (u.licence_ends_at IS NULL OR u.licence_ends_at <= b.ends_at)) AS losing "
        "FROM licence_batch b JOIN product p ON p.id = b.product JOIN company c ON c.id = b.company "
        f"WHERE b.id IN ({listed})"
    )
    return {row["id"]: row for row in rows}


async def _senders(company_ids: set[int]) -> dict[int, tuple[str, str | None]]:
    """Company → (the nearest partner's name, its first account manager's address)."""
    if not company_ids:
        return {}
    listed = ", ".join(str(int(i)) for i in company_ids)
    companies = await Company.raw(f"SELECT id, path FROM company WHERE id IN ({listed})")
    chains = {c["id"]: [int(p) for p in c["path"].strip("/").split("/") if p] for c in companies}
    every = {i for chain in chains.values() for i in chain}
    if not every:
        return {}
    listed = ", ".join(str(i) for i in every)
    partners = {
        row["id"]: row
        for row in await Company.raw(f"SELECT id, name FROM company WHERE id IN ({listed}) AND kind <> 'customer'")
    }
    if not partners:
        return {}
    listed = ", ".join(str(i) for i in partners)
    managers: dict[int, str] = {}
    for row in await Company.raw(
        f"SELECT company, email FROM portal_user WHERE company IN ({listed}) AND role = 'manager' AND active "
        "ORDER BY id"
    ):
        managers.setdefault(row["company"], row["email"])
    out = {}
    for company_id, chain in chains.items():
        nearest = next((i for i in reversed(chain) if i in partners), None)
        if nearest is not None:
            out[company_id] = (partners[nearest]["name"], managers.get(nearest))
    return out


async def render_rows(rows: list[dict], now: datetime | None = None) -> dict[int, Content]:
    """Content for each outbox row, by row id; a few queries for the whole list.
    With `now` (delivery), a reminder whose batch has ended by then is withdrawn."""
    # Keyed by Any: a row without a batch or company looks up None and finds nothing.
    batches: dict[Any, dict] = await _batches({r["batch"] for r in rows if r.get("batch") and not r["body"]})
    senders: dict[Any, tuple[str, str | None]] = await _senders({r["company"] for r in rows if r.get("company")})
    out = {}
    for row in rows:
        sender_name, reply_to = senders.get(row.get("company"), ("License portal", None))
        batch = batches.get(row.get("batch")) if not row["body"] else None
        if row["kind"] in BATCH_KINDS and batch is not None:
            out[row["id"]] = _batch_content(row, batch, sender_name, reply_to, now)
        else:
            context = {"subject": row["subject"], "sender_name": sender_name, "paragraphs": _paragraphs(row["body"])}
            html = row.get("html") or _env().get_template("message.html").render(context)
            out[row["id"]] = Content(row["subject"], row["body"], html, sender_name, reply_to)
    return out


def _batch_content(row: dict, batch: dict, sender_name: str, reply_to: str | None, now: datetime | None) -> Content:
    company = batch["company"]
    context = {
        "b": batch,
        "subject": row["subject"],
        "sender_name": sender_name,
        "ended": row["kind"].endswith("_notice"),
        "ends": local_time(batch["ends_at"], batch["time_zone"]),
        "expired_url": link(f"/companies/{company}/licences?tab=expired"),
        "request_url": link(f"/companies/{company}/licences/orders/new"),
    }
    env = _env()
    text = env.get_template(f"{row['kind']}.txt").render(context)
    html = env.get_template(f"{row['kind']}.html").render(context)
    withdrawn = None
    if now is not None and row["kind"].endswith("_reminder") and batch["ends_at"] <= now:
        withdrawn = "Not sent: the licenses had ended before it could go; the expiry notice says so instead."
    return Content(row["subject"], text, html, sender_name, reply_to, withdrawn)
