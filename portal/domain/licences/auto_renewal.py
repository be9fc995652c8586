"""Automatic renewal, per customer: the partner's choice, off by default.

A partner manager sets it on the customer's page: renew automatically, or place
the renewal for approval ("Needs approval"); how many days before a batch ends;
with the batch's quantity or with the number of users holding its seats.

`renew_due(now)` renews what is due at `now`: each running, non-trial batch of
such a customer that ends within its `days_before` (whole days, one of
DAYS_BEFORE) and is not renewed yet. "Renew automatically" places the renewal
order assigned at once: its batch starts where the renewed one ends and the
holders are carried over (licences.renewals.carry_over, the rule every renewal
path follows). "Needs approval" places the renewal order only, status
Requested, in Requested Orders: nothing is provisioned until Assign
(orders.decisions.assign_order, which applies the same rule then).

Left out, and why:
- a customer that has or had a subscription (seed 000 billing): a running one
  renews itself and its term by the billing job; a cancelled, ended or lapsed
  one is a customer who stopped, whose batches are not renewed behind its back;
- a batch that has ended (lapsed): the window closes at its end, so a job that
  was down does not renew what the customer already lost;
- a batch already renewed (a renewal order of it requested or assigned, or a
  batch starting at its end) or already claimed by this job (even if the
  partner then declined the order);
- "holders" with no holder: nothing to renew.

The renewal orders are not invoiced: this portal bills subscriptions only (seed
000's Pay Online and Pay by Invoice); a partner bills the renewal of plain
batches as it bills their orders, outside the portal.

Once, whoever runs it and however often (a double click, a retried job, two
workers): a chunk's companies are locked (their seat lock, as allocating,
"Renew same quantity" and Assign take it; PostgreSQL skips those another
worker holds), their due batches read again under the lock, and each claimed
by an audit entry whose unique dedupe key is "auto_renewal:<batch>", in the
transaction that places the order. A worker killed mid-chunk rolls it back.

Set-based per chunk: a few statements for CHUNK companies, whatever their batches.

Managers are told: `notify_due(now)` e-mails a customer's managers NOTICE_AHEAD
before the renewal day what will happen (the day, the seats); the renewal
itself e-mails them that it was done (or placed for approval, with the
partner's account managers told to Assign)."""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from portal import db
from portal.domain import audit, catalogue
from portal.domain.access import Actor, Capability, get_company, require, require_partner_manager
from portal.domain.emails import queue as emails
from portal.domain.errors import ValidationFailed
from portal.domain.licences import renewals
from portal.tables import ACCOUNT_ROLES, ACCOUNT_ROLES_SQL, Company, CompanyKind, User
from portal.tables.renewal import AutoRenewal

MODES = {"off": "Off", "renew": "Renew automatically", "approve": "Needs approval"}
QUANTITIES = {"same": "The same quantity", "holders": "The number of users holding seats"}
DAYS_BEFORE = (1, 3, 7, 14, 30)
# The managers' notice comes this long before the renewal day.
NOTICE_AHEAD = timedelta(days=7)
CHUNK = 500


@dataclass(frozen=True)
class Setting:
    mode: str = "off"
    days_before: int = 7
    quantity: str = "same"
    updated_at: datetime | None = None

    @property
    def on(self) -> bool:
        return self.mode != "off"

    @property
    def said(self) -> str:
        """The setting in a sentence, as the customer's page shows it."""
        if not self.on:
            return "Off: batches are renewed by hand (Renew same quantity, Request Licenses)."
        days = "1 day" if self.days_before == 1 else f"{self.days_before} days"
        how = "the same quantity" if self.quantity == "same" else "as many seats as users hold then"
        if self.mode == "renew":
            return f"Each batch is renewed {days} before it ends, with {how}; its users keep their licenses."
        return (
            f"{days} before a batch ends, a renewal order with {how} waits in Requested Orders; "
            "Assign renews it, its users keep their licenses."
        )


async def get_setting(actor: Actor, company_id: int) -> tuple[dict[str, Any], Setting]:
    """The customer (through the wing rule) and its setting; no row is off."""
    company = await get_company(actor, company_id)
    row = await AutoRenewal.select().where(AutoRenewal.company == company["id"]).first()
    if row is None:
        return company, Setting()
    return company, Setting(row["mode"], row["days_before"], row["quantity"], row["updated_at"])


def _checked(mode: str, days_before: int | None, quantity: str) -> Setting:
    errors = {}
    if mode not in MODES:
        errors["mode"] = "Choose Off, Renew automatically or Needs approval."
    if days_before not in DAYS_BEFORE:
        errors["days_before"] = "Choose how many days before a batch ends: " + ", ".join(map(str, DAYS_BEFORE)) + "."
    if quantity not in QUANTITIES:
        errors["quantity"] = "Choose the same quantity or the number of users holding seats."
    if errors:
        raise ValidationFailed(errors)
    assert days_before is not None
    return Setting(mode, days_before, quantity)


async def save_setting(
    actor: Actor, company_id: int, *, mode: str, days_before: int | None, quantity: str, now: datetime
) -> Setting:
    """A partner manager sets a customer's automatic renewal; audited."""
    require_partner_manager(actor)
    require(actor, Capability.LICENCES)
    company = await get_company(actor, company_id)
    if company["kind"] != CompanyKind.CUSTOMER:
        raise ValidationFailed({"mode": "Automatic renewal is set for a customer, on its own page."})
    setting = _checked(mode, days_before, quantity)
    async with db.write_transaction():
        await AutoRenewal.insert(
            AutoRenewal(
                company=company["id"],
                mode=setting.mode,
                days_before=setting.days_before,
                quantity=setting.quantity,
                updated_at=now,
                updated_by=actor.user_id,
            )
        ).on_conflict(
            target=AutoRenewal.company,
            action="DO UPDATE",
            values=[
                AutoRenewal.mode,
                AutoRenewal.days_before,
                AutoRenewal.quantity,
                AutoRenewal.updated_at,
                AutoRenewal.updated_by,
            ],
        )
        await audit.record(
            actor,
            "auto_renewal.set",
            company["id"],
            now,
            {"mode": setting.mode, "days_before": setting.days_before, "quantity": setting.quantity},
        )
    return Setting(setting.mode, setting.days_before, setting.quantity, now)


# --- The job -----------------------------------------------------------------

# Batches of customers with automatic renewal on that are not renewed and not
# ended at `now` (the one {}): _FROM, then anything joined, then _NOT_RENEWED.
_FROM = (
    "FROM licence_batch AS b "
    "JOIN auto_renewal AS r ON r.company = b.company AND r.mode <> 'off' "
    "JOIN product AS p ON p.id = b.product AND NOT p.is_trial "
)
_NOT_RENEWED = (
    "WHERE b.ends_at > {} "
    "AND NOT EXISTS (SELECT 1 FROM subscription AS s WHERE s.company = b.company) "
    "AND NOT EXISTS (SELECT 1 FROM licence_order AS o WHERE o.renews_batch = b.id "
    "AND o.status IN ('requested', 'assigned')) "
    "AND NOT EXISTS (SELECT 1 FROM licence_batch AS nb WHERE nb.company = b.company "
    "AND nb.product = b.product AND nb.starts_at = b.ends_at) "
    "AND NOT EXISTS (SELECT 1 FROM audit_entry AS claimed WHERE claimed.dedupe_key = 'auto_renewal:' || b.id) "
)
# The seats of a batch held by active users: "holders" renews that many.
_HOLDERS = (
    '(SELECT COUNT(*) FROM allocation AS a JOIN portal_user AS u ON u.id = a."user" AND u.active '
    "WHERE a.batch = b.id AND a.released_at IS NULL)"
)
_QUANTITY = f"CASE WHEN r.quantity = 'holders' THEN {_HOLDERS} ELSE b.seats END"


def _window(at: datetime) -> tuple[str, list[datetime]]:
    """Batches whose renewal day (`days_before` whole days before the end) has come
    by `at`. Bound instants, one per choice, so no date arithmetic in SQL (the
    engines do it differently)."""
    parts, args = [], []
    for days in DAYS_BEFORE:
        parts.append(f"(r.days_before = {days} AND b.ends_at <= {{}})")
        args.append(at + timedelta(days=days))
    return "(" + " OR ".join(parts) + ")", args


def _due(now: datetime) -> tuple[str, list[Any]]:
    """FROM … WHERE of the batches due at `now`, and its arguments."""
    window, args = _window(now)
    return (
        _FROM + _NOT_RENEWED + f"AND {window} AND (r.quantity <> 'holders' OR {_HOLDERS} > 0) ",
        [now, *args],
    )


async def count_due(now: datetime) -> int:
    where, args = _due(now)
    rows = await Company.raw("SELECT COUNT(*) AS n " + where, *args)
    return int(rows[0]["n"])


_DUE_COLUMNS = (
    "batch INTEGER, company INTEGER, product INTEGER, mode VARCHAR(10), seats INTEGER, "
    "old_seats INTEGER, starts_at TIMESTAMPTZ, ends_at TIMESTAMPTZ, detail TEXT, new_order INTEGER"
)
_DUE_NAMES = [part.split()[0] for part in _DUE_COLUMNS.split(", ")][:-1]


async def renew_due(now: datetime, limit: int = CHUNK) -> dict[str, int]:
    """Renew (or place for approval) the due batches of up to `limit` companies, in
    one transaction. Returns how many companies were claimed and what was done."""
    done = {"companies": 0, "renewed": 0, "placed": 0, "moved": 0}
    where, args = _due(now)
    async with db.write_transaction():
        locked = await Company.raw(
            f"SELECT c.id FROM company AS c WHERE c.id IN (SELECT b.company {where}) "
            f"ORDER BY c.id LIMIT {int(limit)}{db.skip_locked()}",
            *args,
        )
        if not locked:
            return done
        done["companies"] = len(locked)
        ids = ", ".join(str(int(row["id"])) for row in locked)
        # Read again under the lock: what another run renewed meanwhile is not due any more.
        due = await Company.raw(
            f"SELECT b.id, b.company, b.product, b.seats, b.ends_at, r.mode, {_QUANTITY} AS quantity "
            + where
            + f"AND b.company IN ({ids}) ORDER BY b.id",
            *args,
        )
        if not due:
            return done
        rows = []
        for batch in due:
            product = await catalogue.product(batch["product"])
            assert product is not None, "a batch's product is a foreign key"
            detail = {"batch": batch["id"], "mode": batch["mode"], "seats": batch["quantity"]}
            rows.append(
                (
                    batch["id"],
                    batch["company"],
                    batch["product"],
                    batch["mode"],
                    batch["quantity"],
                    batch["seats"],
                    batch["ends_at"],
                    catalogue.term_end(product, batch["ends_at"]),
                    json.dumps(detail),
                )
            )
        await db.scratch_table("auto_renewal_due", _DUE_COLUMNS)
        await db.copy_rows("auto_renewal_due", _DUE_NAMES, rows)
        ts = db.timestamp_param()
        # The claim: one audit entry per batch, unique by its key; a batch claimed before is dropped.
        claimed = await Company.raw(
            "INSERT INTO audit_entry (at, actor, acting_as, company, action, detail, dedupe_key) "
            f"SELECT {ts}, NULL, NULL, d.company, 'batch.auto_renew', {db.as_json('d.detail')}, "
            "'auto_renewal:' || d.batch FROM auto_renewal_due AS d "
            # WHERE true: SQLite reads an ON CONFLICT right after a FROM as a join's ON.
            "WHERE true ON CONFLICT (dedupe_key) DO NOTHING RETURNING dedupe_key",
            now,
        )
        if len(claimed) < len(rows):
            keys = ", ".join(f"'{row['dedupe_key']}'" for row in claimed) or "''"
            await Company.raw(f"DELETE FROM auto_renewal_due WHERE 'auto_renewal:' || batch NOT IN ({keys})")
        if not claimed:
            return done
        orders = await Company.raw(
            "INSERT INTO licence_order (company, company_path, product, quantity, status, requested_at, "
            "decided_at, renews_batch) "
            f"SELECT d.company, c.path, d.product, d.seats, "
            "CASE WHEN d.mode = 'renew' THEN 'assigned' ELSE 'requested' END, "
            f"{ts}, CASE WHEN d.mode = 'renew' THEN {ts} END, d.batch "
            "FROM auto_renewal_due AS d JOIN company AS c ON c.id = d.company RETURNING id",
            now,
            now,
        )
        order_ids = ", ".join(str(int(row["id"])) for row in orders)
        await Company.raw(
            "UPDATE auto_renewal_due SET new_order = o.id FROM licence_order AS o "
            f"WHERE o.renews_batch = auto_renewal_due.batch AND o.id IN ({order_ids})"
        )
        batches = await Company.raw(
            'INSERT INTO licence_batch ("order", company, product, seats, allocated, starts_at, ends_at) '
            "SELECT d.new_order, d.company, d.product, d.seats, 0, d.starts_at, d.ends_at "
            "FROM auto_renewal_due AS d WHERE d.mode = 'renew' RETURNING id, \"order\""
        )
        held = await renewals.carry_over([row["id"] for row in batches], now)
        renewed = await Company.raw(
            "SELECT d.batch, d.company, d.product, d.mode, d.seats, d.old_seats, d.starts_at, d.ends_at, "
            "d.new_order, c.name AS company_name, c.path AS company_path "
            "FROM auto_renewal_due AS d JOIN company AS c ON c.id = d.company ORDER BY d.batch"
        )
        new_batch_of = {row["order"]: row["id"] for row in batches}
        await _after_mails(renewed, new_batch_of, held, now)
    done["renewed"] = len(batches)
    done["placed"] = len(orders) - len(batches)
    done["moved"] = sum(held.values())
    return done


async def _managers(company_ids: set[int]) -> dict[int, list[str]]:
    if not company_ids:
        return {}
    rows = await User.select(User.company, User.email).where(
        User.company.is_in(sorted(company_ids)) & User.role.is_in(list(ACCOUNT_ROLES)) & (User.active == True)  # noqa: E712
    )
    found: dict[int, list[str]] = defaultdict(list)
    for row in rows:
        found[row["company"]].append(row["email"])
    return found


def _ancestors(path: str) -> list[int]:
    return [int(part) for part in path.strip("/").split("/")[:-1]]


async def _after_mails(
    renewed: list[dict[str, Any]], new_batch_of: dict[int, int], held: dict[int, int], now: datetime
) -> None:
    """The customer's managers are told it was done; for "Needs approval", the
    nearest account managers above are asked to Assign. One COPY for the chunk."""
    customers = await _managers({row["company"] for row in renewed})
    approving = [row for row in renewed if row["mode"] == "approve"]
    above = await _managers({a for row in approving for a in _ancestors(row["company_path"])})
    mails = emails.Batch(now)

    add = mails.add
    for row in renewed:
        product = await catalogue.product(row["product"])
        assert product is not None, "a batch's product is a foreign key"
        facts = {
            "company_name": row["company_name"],
            "product_name": product["name"],
            "seats": row["seats"],
            "starts_at": row["starts_at"],
            "ends_at": row["ends_at"],
        }
        if row["mode"] == "renew":
            moved = held.get(new_batch_of.get(row["new_order"], 0), 0)
            add(
                "auto_renewed",
                row["company"],
                customers.get(row["company"], []),
                facts | {"company_id": row["company"], "moving": moved},
                f"auto_renewed:{row['batch']}",
            )
            continue
        add(
            "auto_renewal_placed",
            row["company"],
            customers.get(row["company"], []),
            facts,
            f"auto_renewal_placed:{row['batch']}",
        )
        partner_managers = next(
            (above[a] for a in reversed(_ancestors(row["company_path"])) if above.get(a)),
            [],
        )
        add(
            "order_requested",
            row["company"],
            partner_managers,
            {
                "company_id": row["company"],
                "company_name": row["company_name"],
                "quantity": row["seats"],
                "product_name": product["name"],
                "requested_by": None,
                "po_number": None,
                "renewal": True,
                "renews_ending": row["starts_at"],
                "coterm_ends_at": None,
            },
            f"order_requested:{row['new_order']}",
        )
    await mails.write()


# --- The notice before ----------------------------------------------------------


async def notify_due(now: datetime, limit: int = 5_000) -> int:
    """E-mail the managers of customers whose batches renew within NOTICE_AHEAD
    (not yet due): the day, the product, the seats. One e-mail per batch and
    manager (dedupe key), whenever the sweep runs; returns how many were queued."""
    soon, soon_args = _window(now + NOTICE_AHEAD)
    due, due_args = _window(now)
    rows = await Company.raw(
        "SELECT b.id, b.company, b.product, b.seats, b.ends_at, r.mode, r.days_before, r.quantity, "
        f"{_HOLDERS} AS holders, c.name AS company_name, u.email " + _FROM + "JOIN company AS c ON c.id = b.company "
        f"JOIN portal_user AS u ON u.company = b.company AND u.role IN {ACCOUNT_ROLES_SQL} AND u.active "
        + _NOT_RENEWED
        + f"AND {soon} AND NOT {due} "
        "AND NOT EXISTS (SELECT 1 FROM outbox_email AS e WHERE e.dedupe_key = "
        "'auto_renewal_notice:' || b.id || ':' || u.email) "
        f"ORDER BY b.id LIMIT {int(limit)}",
        now,
        *soon_args,
        *due_args,
    )
    return await _queue_notices(rows, now)


async def _queue_notices(rows: list[dict[str, Any]], now: datetime) -> int:
    written = 0
    for row in rows:
        product = await catalogue.product(row["product"])
        assert product is not None, "a batch's product is a foreign key"
        written += await emails.queue_kind(
            "auto_renewal_notice",
            row["company"],
            [row["email"]],
            {
                "company_name": row["company_name"],
                "product_name": product["name"],
                "renews": row["mode"] == "renew",
                "on_day": row["ends_at"] - timedelta(days=row["days_before"]),
                "ends_at": row["ends_at"],
                "new_end": catalogue.term_end(product, row["ends_at"]),
                "same_quantity": row["quantity"] == "same",
                "seats": row["seats"],
                "holders": row["holders"],
            },
            now,
            dedupe=f"auto_renewal_notice:{row['id']}",
        )
    return written
