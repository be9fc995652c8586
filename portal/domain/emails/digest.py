"""The weekly digest: each partner's (and sub-partner's) managers get one
e-mail a week about the customers under its wing: what ends in the next 30
days, what ended in the last 30 without being renewed, card charges that
failed in the last week and are still unpaid, and orders waiting to be
assigned, each with a link.

`queue_digests(now)` may run at any time, as often as wanted: from Monday
07:00 UTC on, the first run of an ISO week queues that week's digests (the
dedupe key names the week), later runs find them queued and skip the partner
at the cost of one query; a week with nothing to say sends nothing. A manager
who switched it off (Profile → E-mails, `portal_user.digest_off`) gets none;
a partner whose managers all did is not read at all."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any

from portal.domain.billing.invoices import format_invoice_number
from portal.domain.billing.money import format_money
from portal.domain.emails.queue import queue_kind
from portal.tables import ACCOUNT_ROLES_SQL, Company, OutboxEmail

AHEAD = timedelta(days=30)
BEHIND = timedelta(days=30)
FAILED_SINCE = timedelta(days=7)
SENDS_FROM = (0, 7)  # Monday, 07:00 UTC
# Rows listed per part; the counts say how many in all, the links lead to the rest.
LISTED = 100
_PATH = re.compile(r"(/[0-9]+)+/")

# Renewed: a next term starts at its end (a renewal, or a subscription's next
# term), or an order renewing it was assigned; as the expiry sweep reads it.
_NOT_RENEWED = (
    "AND NOT EXISTS (SELECT 1 FROM licence_batch nb WHERE nb.company = b.company AND nb.product = b.product "
    "AND nb.starts_at = b.ends_at) "
    "AND NOT EXISTS (SELECT 1 FROM licence_order ro WHERE ro.renews_batch = b.id AND ro.status = 'assigned') "
)


def week_of(now: datetime) -> str:
    year, week, _ = now.isocalendar()
    return f"{year}-W{week:02d}"


def _wing(path: str) -> str:
    """The LIKE pattern of a partner's wing, written into the SQL (our own ids only, checked)."""
    if not _PATH.fullmatch(path):
        raise ValueError(f"not a company path: {path!r}")
    return f"'{path}%'"


async def digest(partner: dict[str, Any], now: datetime) -> dict[str, Any]:
    """The digest's fields for the partner (a row of company) at `now`."""
    wing = _wing(partner["path"])
    ending = await Company.raw(
        "SELECT c.id AS company_id, c.name AS company, p.name AS product, b.seats, b.ends_at "
        "FROM licence_batch b JOIN company c ON c.id = b.company JOIN product p ON p.id = b.product "
        f"WHERE c.path LIKE {wing} AND b.ends_at > {{}} AND b.ends_at <= {{}} " + _NOT_RENEWED + ""
        "ORDER BY b.ends_at, c.name",
        now,
        now + AHEAD,
    )
    lapsed = await Company.raw(
        "SELECT c.id AS company_id, c.name AS company, p.name AS product, b.seats, b.ends_at "
        "FROM licence_batch b JOIN company c ON c.id = b.company JOIN product p ON p.id = b.product "
        f"WHERE c.path LIKE {wing} AND b.ends_at > {{}} AND b.ends_at <= {{}} AND NOT p.is_trial " + _NOT_RENEWED + ""
        "ORDER BY b.ends_at DESC, c.name",
        now - BEHIND,
        now,
    )
    failed = await Company.raw(
        "SELECT i.id AS invoice_id, i.number, i.total_cents, i.currency, c.name AS company, "
        "(SELECT ch.decline_reason FROM card_charge ch WHERE ch.invoice = i.id ORDER BY ch.attempt DESC LIMIT 1) "
        "AS reason FROM invoice i JOIN company c ON c.id = i.company "
        f"WHERE i.company_path LIKE {wing} AND i.paid_at IS NULL AND i.voided_at IS NULL "
        "AND EXISTS (SELECT 1 FROM card_charge ch WHERE ch.invoice = i.id AND ch.status = 'declined' "
        "AND ch.attempted_at > {}) ORDER BY c.name, i.id",
        now - FAILED_SINCE,
    )
    waiting = await Company.raw(
        "SELECT c.name AS company, p.name AS product, o.quantity, o.requested_at "
        "FROM licence_order o JOIN company c ON c.id = o.company JOIN product p ON p.id = o.product "
        f"WHERE o.company_path LIKE {wing} AND o.status = 'requested' ORDER BY o.requested_at, o.id"
    )
    return {
        "partner_name": partner["name"],
        "since": now,
        "until": now + timedelta(days=7),
        "counts": {"ending": len(ending), "lapsed": len(lapsed), "failed": len(failed), "waiting": len(waiting)},
        "ending": ending[:LISTED],
        "lapsed": lapsed[:LISTED],
        "failed": [
            {
                "company": row["company"],
                "invoice_id": row["invoice_id"],
                "invoice": format_invoice_number(row["number"]) if row["number"] is not None else "draft",
                "amount": format_money(row["total_cents"], row["currency"]),
                "reason": row["reason"],
            }
            for row in failed[:LISTED]
        ],
        "waiting": waiting[:LISTED],
    }


async def queue_digests(now: datetime) -> int:
    """Queue this week's digest for every partner whose managers have not had it; how many e-mails."""
    monday = (now - timedelta(days=now.weekday())).replace(hour=SENDS_FROM[1], minute=0, second=0, microsecond=0)
    if now < monday:
        return 0
    week = week_of(now)
    partners = await Company.raw(
        "SELECT c.id, c.name, c.path FROM company c WHERE c.kind <> 'customer' AND EXISTS "
        "(SELECT 1 FROM portal_user u WHERE u.company = c.id "
        f"AND u.role IN {ACCOUNT_ROLES_SQL} AND u.active AND NOT u.digest_off) ORDER BY c.id"
    )
    # This week's, found by the creation index: nothing queued before this Monday can be.
    done = {
        int(row["dedupe_key"].split(":")[1])
        for row in await OutboxEmail.select(OutboxEmail.dedupe_key).where(
            (OutboxEmail.created_at >= monday)
            & (OutboxEmail.kind == "weekly_digest")
            & OutboxEmail.dedupe_key.like(f"weekly_digest:%:{week}:%")
        )
    }
    written = 0
    for partner in partners:
        if partner["id"] in done:
            continue
        data = await digest(partner, now)
        if not any(data["counts"].values()):
            continue
        managers = await Company.raw(
            "SELECT email FROM portal_user WHERE company = {} AND role IN "
            + ACCOUNT_ROLES_SQL
            + " AND active AND NOT digest_off ORDER BY id",
            partner["id"],
        )
        written += await queue_kind(
            "weekly_digest",
            partner["id"],
            [m["email"] for m in managers],
            data,
            now,
            dedupe=f"weekly_digest:{partner['id']}:{week}",
        )
    return written
