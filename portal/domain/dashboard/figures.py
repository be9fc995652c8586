"""The partner's customer table: each customer's licence figures, kept per
company in dashboard_figure and counted again when stale, sorted and paged in
one statement."""

from __future__ import annotations

import sqlite3
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any, cast, overload

from portal import db
from portal.domain import partner_settings
from portal.domain.access import Actor, require_partner_manager, under_wing
from portal.domain.licences.status import EXPIRING_WITHIN
from portal.domain.licences.tabs import allocate_tab, seats_unused
from portal.domain.pages import PER_PAGE as PER_PAGE  # the dashboard table's default, for its page
from portal.tables import Company

SOON = timedelta(days=30)
# Sortable figures, as the SQL names them; numbers sort largest first unless asked otherwise.
SORTS = ("name", "expired", "expiring_72h", "expiring_30d", "free", "pending", "waiting")
DEFAULT_SORT = "expired"
FIGURES = ("expired", "expiring_72h", "expiring_30d", "unlicensed", "free", "pending", "next_end")
SHOWN = ("expired", "expiring_72h", "expiring_30d", "free", "pending", "waiting")  # each also as "<name>_text"


PER_PAGE_CHOICES = (25, 50)


@dataclass(frozen=True)
class CustomerQuery:
    """Search, sort and position of the customer table; `alerts_only` keeps the
    customers low on seats (at or below their partner's free-seat alert, with
    users waiting). `after` and `before` are the id of a customer of the table
    (the last row of the page before, the first of the page after): the page is
    the rows just after (before) it in the table's order, found by comparing the
    sort key, so page 80 costs what page 1 does. An id that is not a customer
    under the actor's wing positions nothing: the first page."""

    q: str = ""
    sort: str = DEFAULT_SORT
    descending: bool = True
    alerts_only: bool = False
    after: int | None = None
    before: int | None = None
    per_page: int = PER_PAGE

    def first_page(self) -> CustomerQuery:
        return replace(self, after=None, before=None)


@dataclass(frozen=True)
class CustomerPage:
    """A page of the customer table: its rows, where they stand among the `total`
    customers shown ("26–50 of 2,000"), and how to reach the pages either side."""

    items: list[dict[str, Any]]
    total: int
    first: int  # the position of the first row, from 1; 0 when there are none
    per_page: int = PER_PAGE

    @property
    def last(self) -> int:
        return self.first + len(self.items) - 1 if self.items else 0

    @property
    def has_previous(self) -> bool:
        return self.first > 1

    @property
    def has_next(self) -> bool:
        return bool(self.items) and self.last < self.total

    @property
    def previous_before(self) -> int | None:
        return int(self.items[0]["id"]) if self.has_previous else None

    @property
    def next_after(self) -> int | None:
        return int(self.items[-1]["id"]) if self.has_next else None


@dataclass(frozen=True)
class Listing:
    page: CustomerPage
    alerts: int  # customers low on seats among those searched
    pending: int  # requested orders of every customer under the wing
    settings: partner_settings.PartnerSettings  # what applies to the actor's own company
    # Changes whenever a batch, an order, a subscription or the name of a customer
    # under the wing does, or a partner's name or place (the customers' highest
    # batch_version with their count and the sum of their ids, so that a customer
    # gone or added changes it too; then the same of the wing's other companies):
    # the version of the parts kept between loads (portal.domain.dashboard.kept).
    version: str = ""


# --- the figures, kept per company ----------------------------------------------------
#
# dashboard_figure (migration 0004) keeps each company's figures as computed at
# `computed_at`, with the next instants at which the clock alone would change
# them; triggers set computed_at to NULL when a tally row, a batch or an order
# of the company changes. A row is used only while fresh (below); the page's
# statement computes every other row from scratch in the same snapshot, so the
# figures shown are exact whatever the rows hold, and then writes those rows
# back (refresh), so the next page reads 25 rows instead of aggregating the wing.


def _fresh(now: datetime) -> tuple[str, list[Any]]:
    """SQL true for a figure row (alias f) that holds the figures at `now`."""
    sql = (
        "(f.computed_at IS NOT NULL AND f.computed_at <= {} AND (f.next_change IS NULL OR f.next_change > {}) "
        "AND (f.next_batch_change IS NULL OR f.next_batch_change > {}) "
        "AND (f.next_72h IS NULL OR f.next_72h > {}) AND (f.next_30d IS NULL OR f.next_30d > {}))"
    )
    return sql, [now, now, now, now + EXPIRING_WITHIN, now + SOON]


def _scratch(ids_sql: str, ids_args: list[Any], now: datetime) -> tuple[str, list[Any]]:
    """Each company in `ids_sql` (a SELECT of ids, or a list of them) with its
    figures counted from licence_tally, licence_batch and licence_order at `now`,
    and the next instants they change: the definition the kept rows follow."""
    sql = f"""
SELECT company.id AS company,
  COALESCE(t.expired, 0) AS expired, COALESCE(t.expiring_72h, 0) AS expiring_72h,
  COALESCE(t.expiring_30d, 0) AS expiring_30d, COALESCE(t.unlicensed, 0) AS unlicensed,
  COALESCE(b.free, 0) AS free, COALESCE(o.pending, 0) AS pending, b.next_end,
  t.next_change, b.next_batch_change, t.next_72h, t.next_30d
FROM company
LEFT JOIN (
  SELECT company,
    SUM(CASE WHEN ends_at <= {{}} THEN users ELSE 0 END) AS expired,
    SUM(CASE WHEN ends_at > {{}} AND ends_at <= {{}} THEN users ELSE 0 END) AS expiring_72h,
    SUM(CASE WHEN ends_at > {{}} AND ends_at <= {{}} THEN users ELSE 0 END) AS expiring_30d,
    SUM(CASE WHEN ends_at IS NULL THEN users ELSE 0 END) AS unlicensed,
    MIN(CASE WHEN ends_at > {{}} THEN ends_at END) AS next_change,
    MIN(CASE WHEN ends_at > {{}} THEN ends_at END) AS next_72h,
    MIN(CASE WHEN ends_at > {{}} THEN ends_at END) AS next_30d
  FROM licence_tally WHERE company IN ({ids_sql}) GROUP BY company
) AS t ON t.company = company.id
LEFT JOIN (
  SELECT company,
    SUM(CASE WHEN starts_at <= {{}} AND ends_at > {{}} THEN seats - allocated ELSE 0 END) AS free,
    MIN(CASE WHEN starts_at <= {{}} AND ends_at > {{}} THEN ends_at END) AS next_end,
    MIN(CASE WHEN starts_at > {{}} THEN starts_at WHEN ends_at > {{}} THEN ends_at END) AS next_batch_change
  FROM licence_batch WHERE company IN ({ids_sql}) GROUP BY company
) AS b ON b.company = company.id
LEFT JOIN (
  SELECT company, COUNT(*) AS pending FROM licence_order
  WHERE status = 'requested' AND company IN ({ids_sql}) GROUP BY company
) AS o ON o.company = company.id
WHERE company.id IN ({ids_sql})"""
    h72, d30 = now + EXPIRING_WITHIN, now + SOON
    args = [now, now, h72, now, d30, now, h72, d30, *ids_args, now, now, now, now, now, now]
    return sql, args + ids_args + ids_args + ids_args


def _wing(actor: Actor) -> str:
    """under_wing as SQL text, to write into statements that nest it (the path is checked there)."""
    under_wing(actor)
    return f"company.path LIKE '{actor.company_path}%'"


def _stale_ids(actor: Actor, now: datetime) -> tuple[str, list[Any]]:
    """The wing's customers whose kept figures are not fresh at `now`."""
    fresh, args = _fresh(now)
    sql = (
        "SELECT f.company FROM dashboard_figure AS f JOIN company ON company.id = f.company "
        f"WHERE company.kind = 'customer' AND {_wing(actor)} AND NOT {fresh}"
    )
    return sql, args


async def _alert_settings(actor: Actor) -> tuple[str, partner_settings.PartnerSettings]:
    """Each customer's free-seat alert as SQL over company.path (the nearest
    company above it with saved settings wins, as partner_settings.for_path
    reads it for one), and the settings that apply to the actor's own company."""
    ancestors = ", ".join(str(int(part)) for part in actor.company_path.strip("/").split("/"))
    rows = await Company.raw(
        "SELECT company.id, company.path, partner_setting.low_seat_threshold, partner_setting.max_order_quantity "
        f"FROM partner_setting JOIN company ON company.id = partner_setting.company "
        f"WHERE {_wing(actor)} OR company.id IN ({ancestors})"
    )
    rows.sort(key=lambda row: len(row["path"]), reverse=True)  # the nearest first
    own = next(
        (
            partner_settings.PartnerSettings(r["max_order_quantity"], r["low_seat_threshold"], r["id"])
            for r in rows
            if actor.company_path.startswith(r["path"])
        ),
        partner_settings.PartnerSettings(),
    )
    default = partner_settings.DEFAULT_LOW_SEAT_THRESHOLD
    if not rows:
        return str(default), own
    # Paths are ids and slashes, thresholds integers: safe to write into the SQL.
    cases = " ".join(f"WHEN company.path LIKE '{r['path']}%' THEN {int(r['low_seat_threshold'])}" for r in rows)
    return f"CASE {cases} ELSE {default} END", own


async def customer_figures(actor: Actor, query: CustomerQuery, now: datetime) -> Listing:
    """One page of the wing's customers with expired, expiring (72 h, 30 days),
    unlicensed and waiting users, free seats of running batches, pending
    requests, the low-seat alert and seats unused (free while users wait); how
    many customers are alerted, and the wing's pending requests.

    First from the kept rows alone (a short statement, planned in a fraction of
    a millisecond), which also counts the rows that are not fresh; if any, they
    are refreshed and the page is asked again with those rows counted from
    scratch in the same statement, so what is shown is exact either way."""
    require_partner_manager(actor)
    threshold_sql, settings = await _alert_settings(actor)
    rows = await _figures_page(actor, query, now, threshold_sql, recount=False)
    if rows[0]["stale_rows"]:
        await refresh(actor, now)
        rows = await _figures_page(actor, query, now, threshold_sql, recount=True)
    head = rows[0]
    backwards = query.before is not None and query.after is None
    if (query.after is not None or query.before is not None) and (
        not head["cursor_found"] or (backwards and int(head["before_cursor"]) < _per_page(query))
    ):
        # The customer named is not in the table (another tenant's, or gone), or
        # fewer rows than a page lie before it: the first page, full.
        return await customer_figures(actor, query.first_page(), now)
    items = []
    for row in rows:
        if row["id"] is None:
            continue  # no page rows: the totals alone
        row["alert"] = bool(row["alert"])
        # From the row's own figures: no statement more for the flag.
        row["unused"] = seats_unused(int(row["free"]), int(row["waiting"]))
        row["allocate_tab"] = allocate_tab(int(row["expired"]))
        row["next_end"] = db_datetime(row["next_end"])
        # As the table writes them ("1,234"): formatted in the template, they were a tenth of the page's render.
        for name in SHOWN:
            row[f"{name}_text"] = f"{int(row[name]):,}"
        items.append(row)
    before = int(head["before_cursor"] or 0)
    first = (before - len(items) + 1 if backwards else before + 1) if items else 0
    return Listing(
        page=CustomerPage(items=items, total=int(head["total"]), first=first, per_page=_per_page(query)),
        alerts=int(head["alerts"]),
        pending=int(head["wing_pending"]),
        settings=settings,
        version=str(head["wing_version"]),
    )


def _per_page(query: CustomerQuery) -> int:
    return query.per_page if query.per_page in PER_PAGE_CHOICES else PER_PAGE


def _order_key(query: CustomerQuery, alias: str) -> tuple[list[str], bool]:
    """The table's order as a row value over `alias` (a unique key: the figure,
    then the name, then the id) and whether it ascends. Numbers that read largest
    first are negated, so that names still read from A among equal figures and one
    row-value comparison finds the rows after a cursor."""
    sort = query.sort if query.sort in SORTS else DEFAULT_SORT
    if sort == "name":
        return [f"{alias}.name", f"{alias}.id"], not query.descending
    figure = f"-{alias}.{sort}" if query.descending else f"{alias}.{sort}"
    return [figure, f"{alias}.name", f"{alias}.id"], True


async def _figures_page(
    actor: Actor, query: CustomerQuery, now: datetime, threshold_sql: str, recount: bool
) -> list[dict[str, Any]]:
    """The page's rows after one row of totals' columns (total, alerts,
    wing_pending, stale_rows, the cursor's: cursor_found and before_cursor, and
    wing_version, see Listing); a LEFT JOIN so that the totals come back even when the
    page is empty. With `recount`, rows not fresh are counted from scratch (s) and
    stale_rows counts those; without, it counts the rows that were not fresh,
    whose figures are then not to be trusted.

    After a cursor, before_cursor counts the rows shown up to and with it (the
    page starts one further); before one, the rows shown before it (the page ends
    there)."""
    key, ascending = _order_key(query, "marked")
    page_key, _ = _order_key(query, "page")
    row = f"({', '.join(key)})"
    marked, shown, args = _marked(actor, query, now, threshold_sql, recount)
    backwards = query.before is not None and query.after is None
    cursor = query.before if backwards else query.after
    # Walking back is walking the reversed order forward.
    forward = ascending != backwards
    direction, outer = ("ASC" if forward else "DESC"), ("ASC" if ascending else "DESC")
    where, before_cursor, cursor_found = "", "0", "0"
    if cursor is not None:
        # An int (the web reads it as one), written into the SQL as one.
        cursor_key, _ = _order_key(query, "c")
        beyond = (
            f"{row} {'>' if forward else '<'} "
            f"(SELECT {', '.join(cursor_key)} FROM marked AS c WHERE c.id = {int(cursor)})"
        )
        where = f" AND {beyond}"
        before_cursor = (
            f"SUM(CASE WHEN {shown} = 1 AND {beyond} THEN 1 ELSE 0 END)"
            if backwards
            else f"SUM(CASE WHEN {shown} = 1 AND {beyond} THEN 0 WHEN {shown} = 1 THEN 1 ELSE 0 END)"
        )
        cursor_found = f"SUM(CASE WHEN marked.id = {int(cursor)} THEN 1 ELSE 0 END)"
    sql = f"""{marked}
SELECT totals.*, page.* FROM (
  SELECT COALESCE(SUM({shown}), 0) AS total, COALESCE(SUM(marked.alert * marked.matches), 0) AS alerts,
    COALESCE(SUM(marked.pending), 0) AS wing_pending, COALESCE(SUM(marked.stale), 0) AS stale_rows,
    COALESCE({cursor_found}, 0) AS cursor_found, COALESCE({before_cursor}, 0) AS before_cursor,
    COALESCE(MAX(marked.batch_version), 0) || ':' || COUNT(*) || ':' || COALESCE(SUM(marked.id), 0) || '/' || (
      SELECT COALESCE(MAX(n.batch_version), 0) || ':' || COUNT(*) || ':' || COALESCE(SUM(n.company), 0)
      FROM dashboard_figure AS n JOIN company ON company.id = n.company
      WHERE company.kind <> 'customer' AND {_wing(actor)}
    ) AS wing_version
  FROM marked
) AS totals LEFT JOIN (
  SELECT marked.* FROM marked WHERE {shown} = 1{where}
  ORDER BY {", ".join(f"{k} {direction}" for k in key)} LIMIT {_per_page(query)}
) AS page ON 1 = 1
ORDER BY {", ".join(f"{k} {outer}" for k in page_key)}"""
    return cast("list[dict[str, Any]]", await Company.raw(sql, *args))


def _marked(
    actor: Actor, query: CustomerQuery, now: datetime, threshold_sql: str, recount: bool
) -> tuple[str, str, list[Any]]:
    """WITH figures, marked: the wing's customers with their figures, whether
    each matches the search (`matches`) and is low on seats (`alert`); the SQL
    that is 1 for a customer the table shows; the arguments."""
    match, args = "1", []
    if query.q.strip():
        search = db.contains("company.name", query.q.strip()).querystring
        match, args = f"CASE WHEN {search.template} THEN 1 ELSE 0 END", list(search.args)
    if recount:
        stale_sql, stale_args = _stale_ids(actor, now)
        scratch, scratch_args = _scratch(stale_sql, stale_args, now)
        columns = ", ".join(f"CASE WHEN s.company IS NULL THEN f.{n} ELSE s.{n} END AS {n}" for n in FIGURES)
        stale = "CASE WHEN s.company IS NULL THEN 0 ELSE 1 END"
        recounted = f"LEFT JOIN ({scratch}) AS s ON s.company = company.id"
        args += scratch_args
    else:
        fresh, fresh_args = _fresh(now)
        columns = ", ".join(f"f.{n}" for n in FIGURES)
        stale = f"CASE WHEN {fresh} THEN 0 ELSE 1 END"
        recounted = ""
        args += fresh_args
    shown = "marked.alert * marked.matches" if query.alerts_only else "marked.matches"
    sql = f"""
WITH figures AS (
  SELECT company.id, company.name, {match} AS matches, {columns}, {stale} AS stale, {threshold_sql} AS threshold,
    f.batch_version
  FROM company JOIN dashboard_figure AS f ON f.company = company.id {recounted}
  WHERE company.kind = 'customer' AND {_wing(actor)}
),
marked AS (
  SELECT figures.*, figures.expired + figures.unlicensed AS waiting,
    CASE WHEN figures.free <= figures.threshold AND figures.expired + figures.unlicensed > 0 THEN 1 ELSE 0 END
      AS alert
  FROM figures
)"""
    return sql, shown, args


async def customer_ids(actor: Actor, query: CustomerQuery, now: datetime) -> list[int]:
    """Every customer the table shows for `query`, on every page (its search and
    "Only customers low on seats"), by the same figures: what "every match"
    of a bulk action covers."""
    require_partner_manager(actor)
    threshold_sql, _ = await _alert_settings(actor)
    await refresh(actor, now)
    marked, shown, args = _marked(actor, query, now, threshold_sql, recount=True)
    rows = await Company.raw(f"{marked}\nSELECT marked.id FROM marked WHERE {shown} = 1 ORDER BY marked.id", *args)
    return [int(row["id"]) for row in rows]


async def refresh(actor: Actor, now: datetime) -> int:
    """Counts again the wing's stale figure rows and keeps them; returns how many.
    Best effort: rows another transaction holds are left for the next page (their
    figures are counted by every page until then), and on SQLite a busy database
    leaves them too.

    On PostgreSQL the rows are locked first (SKIP LOCKED: a page never waits) and
    counted by the next statement, whose snapshot is taken with the locks held: a
    writer that changes a company's tally, batches or orders locks its figure row
    in a trigger, so its change is either committed before that snapshot or marks
    the row stale after this transaction."""
    stale_sql, stale_args = _stale_ids(actor, now)
    columns = ", ".join(
        f"{name} = s.{name}" for name in (*FIGURES, "next_change", "next_batch_change", "next_72h", "next_30d")
    )
    try:
        async with db.write_transaction():
            locked = f"{stale_sql} ORDER BY f.company{db.skip_locked('f')}"
            ids = [row["company"] for row in await Company.raw(locked, *stale_args)]
            if not ids:
                return 0
            listed = ", ".join(str(int(i)) for i in ids)
            scratch, scratch_args = _scratch(listed, [], now)
            await Company.raw(
                f"UPDATE dashboard_figure SET {columns}, computed_at = {{}} FROM ({scratch}) AS s "
                "WHERE dashboard_figure.company = s.company",
                now,
                *scratch_args,
            )
            return len(ids)
    except sqlite3.OperationalError:  # database is locked: the next page tries again
        return 0


async def figures_drift(now: datetime) -> list[dict[str, Any]]:
    """Kept figure rows that claim to be fresh at `now` yet differ from counting
    from scratch (empty when the triggers keep every write path right)."""
    fresh, fresh_args = _fresh(now)
    scratch, scratch_args = _scratch("SELECT id FROM company", [], now)
    differs = " OR ".join(f"NOT (f.{name} = s.{name} OR (f.{name} IS NULL AND s.{name} IS NULL))" for name in FIGURES)
    rows = await Company.raw(
        f"SELECT f.company, {', '.join(f'f.{n} AS kept_{n}, s.{n} AS counted_{n}' for n in FIGURES)} "
        f"FROM dashboard_figure AS f JOIN ({scratch}) AS s ON s.company = f.company WHERE {fresh} AND ({differs})",
        *scratch_args,
        *fresh_args,
    )
    return cast("list[dict[str, Any]]", rows)


@overload
def db_datetime(value: None) -> None: ...
@overload
def db_datetime(value: datetime | str) -> datetime: ...
def db_datetime(value: datetime | str | None) -> datetime | None:
    """An aggregate's timestamp: SQLite hands MIN(ends_at) back as the text it stores."""
    if value is None or isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
