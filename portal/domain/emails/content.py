"""What an outbox row says when it goes: subject, plain text and HTML, rendered
from its kind's templates (templates/email/<kind>.txt and .html, the subject in
the registry, portal/domain/emails/kinds.py) and the fields queued with it; the
sender's name and Reply-To from the partner's settings (by default the
partner's name and its first account manager).

Kinds about a batch (reminders, notices) are queued by one set-based statement
with no facts (portal/domain/notifications_sweep.py); theirs are read here when
they go, from the batch as it is then (how many users lose access). What went
is kept on the row, so the portal shows each e-mail as it was sent. Rows
without fields (queued before kinds had them, copies resent as they were) go
with the text they carry."""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from functools import cache
from typing import Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, Template, select_autoescape
from markupsafe import Markup, escape

from portal.domain import partner_settings
from portal.domain.branding.delivery import Branding, render_override
from portal.domain.branding.delivery import for_companies as branding_for
from portal.domain.emails.kinds import KINDS, Kind, get
from portal.domain.keyset import KeysetPage
from portal.domain.outbox import Content, link
from portal.settings import PROJECT_DIR
from portal.tables import ACCOUNT_ROLES_SQL, Company

_URL = re.compile(r"https?://[^\s<>\"']+")


def _moment(value: Any) -> datetime | date:
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def day(value: Any) -> str:
    """ "10 March 2027": how the licence e-mails write a day."""
    return f"{_moment(value):%d %B %Y}"


def short_day(value: Any) -> str:
    """ "10 Mar 2027": how billing writes a day (its pages and e-mails)."""
    return f"{_moment(value):%d %b %Y}"


@cache
def env() -> Environment:
    environment = Environment(
        loader=FileSystemLoader(PROJECT_DIR / "templates" / "email"),
        autoescape=select_autoescape(["html"]),
        undefined=StrictUndefined,
        keep_trailing_newline=True,
    )
    environment.filters |= {"day": day, "short_day": short_day}
    environment.globals |= {"link": link}
    return environment


@cache
def _subject(kind: Kind) -> Template:
    return env().from_string(kind.subject)


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


def paragraphs(text: str) -> list[Markup]:
    """Plain text as HTML paragraphs: escaped, line breaks kept, links clickable."""
    out = []
    for block in re.split(r"\n\s*\n", text.strip()):
        html = escape(block)
        html = Markup(_URL.sub(lambda m: f'<a href="{m.group(0)}">{m.group(0)}</a>', str(html)))
        out.append(Markup("<br>\n").join(html.split("\n")))
    return out


def dumps(data: dict[str, Any]) -> str:
    """The fields as the row keeps them: instants as ISO text, which the
    templates' `day` filters read back."""
    return json.dumps(data, default=lambda v: v.isoformat(), sort_keys=True)


def check_fields(kind: Kind, data: dict[str, Any]) -> None:
    """A kind's queue gives exactly its fields: a misspelt or forgotten one
    fails where it is queued, not in a worker hours later."""
    given, wanted = set(data), set(kind.fields)
    if given != wanted:
        raise ValueError(
            f"E-mail {kind.name!r}: fields {sorted(wanted)} expected; "
            f"missing {sorted(wanted - given)}, unknown {sorted(given - wanted)}"
        )


def _subject_and_text(kind: Kind, context: dict[str, Any]) -> tuple[str, str]:
    subject = " ".join(_subject(kind).render(context).split())
    return subject, env().get_template(f"{kind.name}.txt").render(context)


def render(kind: Kind, context: dict[str, Any], words: tuple[str, str] | None = None) -> tuple[str, str, str]:
    """Subject, text and HTML of `kind` over `context` (its fields, the sender's
    name, `base_url` for its links, and the partner's brand if any); with `words`
    (a partner's own subject and text, rendered), the HTML is drawn from that text."""
    context = {"brand": None} | context
    if words is None:
        subject, text = _subject_and_text(kind, context)
        html_template = f"{kind.name}.html"
    else:
        subject, text = words
        html_template = "_message.html"
    html = env().get_template(html_template).render(context | {"subject": subject, "paragraphs": paragraphs(text)})
    return subject, text, html


def _in_partners_words(
    kind: Kind, context: dict[str, Any], branding: Branding, company_id: Any
) -> tuple[str, str, str]:
    """The e-mail in the words of the nearest partner that wrote its own, else the portal's."""
    override = branding.override(company_id, kind)
    words = render_override(override, kind, context) if override is not None else None
    return render(kind, context, words)


def preview(kind: Kind, data: dict[str, Any]) -> tuple[str, str]:
    """Subject and text as they would go now, kept on the row while it waits so
    the Notifications page can list it; the worker renders it again when it goes.
    Its links are paths: the code that queues an e-mail does not know where the
    portal is reached from outside, and what went is kept on the row when it goes."""
    # No HTML: nothing keeps it, and a bulk renewal queues thousands.
    return _subject_and_text(kind, data | {"sender_name": "", "base_url": ""})


async def _batches(ids: set[int]) -> dict[int, dict[str, Any]]:
    if not ids:
        return {}
    listed = ", ".join(str(int(i)) for i in ids)
    rows = await Company.raw(
        "SELECT b.id, b.seats, b.ends_at, b.company, p.name AS product_name, p.is_trial, "
        "c.name AS company_name, c.time_zone, "
        '(SELECT count(*) FROM allocation a JOIN portal_user u ON u.id = a."user" '
        " WHERE a.batch = b.id AND a.released_at IS NULL AND u.active "
        " AND (u.licence_ends_at IS NULL OR u.licence_ends_at <= b.ends_at)) AS losing, "
        "EXISTS (SELECT 1 FROM licence_batch nb WHERE nb.company = b.company AND nb.starts_at = b.ends_at "
        " AND nb.product = b.product) AS renewed "
        "FROM licence_batch b JOIN product p ON p.id = b.product JOIN company c ON c.id = b.company "
        f"WHERE b.id IN ({listed})"
    )
    return {row["id"]: row for row in rows}


async def _senders(company_ids: set[int]) -> dict[int, tuple[str, str | None]]:
    """Company → (the sender's name, the Reply-To address): the partner's
    settings where it set them, else the nearest partner's name and its first
    account manager's address."""
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
        f"SELECT company, email FROM portal_user WHERE company IN ({listed}) "
        f"AND role IN {ACCOUNT_ROLES_SQL} AND active ORDER BY id"
    ):
        managers.setdefault(row["company"], row["email"])
    settings = await partner_settings.for_companies(list(partners))
    out = {}
    for company_id, chain in chains.items():
        nearest = next((i for i in reversed(chain) if i in partners), None)
        if nearest is not None:
            chosen = settings[nearest]
            out[company_id] = (
                chosen.sender_name or partners[nearest]["name"],
                chosen.reply_to or managers.get(nearest),
            )
    return out


async def render_rows(rows: list[dict[str, Any]], base_url: str, now: datetime | None = None) -> dict[int, Content]:
    """Content for each outbox row, by row id, its links under `base_url` (where
    the portal is reached from outside); a few queries for the whole list. With
    `now` (delivery), a reminder whose batch has ended or been renewed by then is
    withdrawn."""
    # Keyed by Any: a row without a batch or company looks up None and finds nothing.
    batches: dict[Any, dict[str, Any]] = await _batches(
        {r["batch"] for r in rows if r.get("batch") and _fields(r) is not None and get(r["kind"]).about_batch}
    )
    companies = {r["company"] for r in rows if r.get("company")}
    senders: dict[Any, tuple[str, str | None]] = await _senders(companies)
    branding = await branding_for(companies, {r["kind"] for r in rows if _fields(r) is not None})
    out = {}
    for row in rows:
        sender_name, reply_to = senders.get(row.get("company"), ("License portal", None))
        data = _fields(row)
        brand = branding.brand_context(row.get("company"))
        if data is None:
            context = {"subject": row["subject"], "sender_name": sender_name, "paragraphs": paragraphs(row["body"])}
            context |= brand | {"base_url": base_url}
            html = row.get("html") or env().get_template("_message.html").render(context)
            out[row["id"]] = Content(row["subject"], row["body"], html, sender_name, reply_to)
            continue
        kind = get(row["kind"])
        if kind.about_batch:
            batch = batches.get(row.get("batch"))
            if batch is None:
                gone = "Not sent: its licenses are gone."
                out[row["id"]] = Content(row["subject"] or kind.label, "", "", sender_name, reply_to, gone)
                continue
            out[row["id"]] = _batch_content(kind, data, batch, sender_name, reply_to, base_url, now, branding)
        else:
            context = data | {"sender_name": sender_name, "base_url": base_url} | brand
            subject, text, html = _in_partners_words(kind, context, branding, row.get("company"))
            out[row["id"]] = Content(subject, text, html, sender_name, reply_to)
    return out


async def with_subjects(page: KeysetPage[dict[str, Any]], base_url: str) -> KeysetPage[dict[str, Any]]:
    """A page of the outbox whose waiting reminders show the subject they would go with now."""
    untitled = [row for row in page.items if not row["subject"]]
    if untitled:
        made = await render_rows(untitled, base_url)
        for row in untitled:
            row["subject"] = made[row["id"]].subject
    return page


def _fields(row: dict[str, Any]) -> dict[str, Any] | None:
    """The fields queued with the row; {} for a batch kind queued without any;
    None for a row that carries its text."""
    if row.get("data"):
        return cast("dict[str, Any] | None", json.loads(row["data"]))
    if not row.get("body") and row.get("batch") and row["kind"] in KINDS and KINDS[row["kind"]].about_batch:
        return {}
    return None


def within(days: int) -> str:
    """How a reminder names the time left: hours up to three days (the guides'
    "72 hours"), days beyond."""
    return f"{days * 24} hours" if days <= 3 else f"{days} days"


def _batch_content(
    kind: Kind,
    data: dict[str, Any],
    batch: dict[str, Any],
    sender_name: str,
    reply_to: str | None,
    base_url: str,
    now: datetime | None,
    branding: Branding | None = None,
) -> Content:
    company = batch["company"]
    days = int(data.get("days") or 3)
    context = {
        "b": batch,
        "days": days,
        "within": within(days),
        "sender_name": sender_name,
        "ended": kind.name.endswith("_notice"),
        "ends": local_time(batch["ends_at"], batch["time_zone"]),
        "base_url": base_url,
        "expired_url": f"{base_url}/companies/{company}/licences?tab=expired",
        "request_url": f"{base_url}/companies/{company}/licences/orders/new",
        # A partner's template names the batch's facts as plain fields.
        **{name: batch[name] for name in ("company_name", "product_name", "seats", "losing")},
    }
    if branding is None:
        subject, text, html = render(kind, context)
    else:
        context |= branding.brand_context(company)
        subject, text, html = _in_partners_words(kind, context, branding, company)
    withdrawn = None
    if now is not None and kind.name.endswith("_reminder"):
        if batch["ends_at"] <= now:
            withdrawn = "Not sent: the licenses had ended before it could go; the expiry notice says so instead."
        elif batch["renewed"]:
            withdrawn = "Not sent: the licenses were renewed before it could go."
    return Content(subject, text, html, sender_name, reply_to, withdrawn)
