"""Reading the audit log: the entries under the actor's wing, newest first, in
words, narrowed by the "Add Filter" spec (who, what, company, dates), a page at a
time from a cursor, or all of them for a CSV download."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterable, Mapping
from typing import Any

from piccolo.custom_types import Combinable
from piccolo.query import Select

from portal.domain.access import Actor, require_partner_manager, under_wing
from portal.domain.audit.sentences import GROUPS, SENTENCES
from portal.domain.filters import Filter, FilterSet, as_date, as_int, day_end, day_start, one_of
from portal.domain.keyset import Keyset, KeysetPage
from portal.tables import MANAGER_ROLES, AuditEntry, Company, User

CHUNK = 2000
# Beyond this the page says "More than 10,000 entries": counting a long log to the
# last entry would cost every page more than the page itself (the CSV has them all).
COUNT_UP_TO = 10_000


def _what(group: str) -> Combinable:
    """The actions of a group of the "What" filter; "other": every action no sentence names."""
    if group == "other":
        clause: Combinable = AuditEntry.action.not_in([kind.action for kind in SENTENCES.kinds.values()])
        for prefix in SENTENCES.prefixes:
            clause &= AuditEntry.action.not_like(prefix + "%")
        return clause
    clause = AuditEntry.action.is_in([k.action for k in SENTENCES.kinds.values() if k.group == group] or [""])
    for prefix, kind in SENTENCES.prefixes.items():
        if kind.group == group:
            clause |= AuditEntry.action.like(prefix + "%")
    return clause


AUDIT_FILTERS = FilterSet(
    Filter("who", "Who", "select", as_int, lambda v: AuditEntry.actor == v, "Anyone"),
    Filter("what", "What", "select", one_of(GROUPS), _what, "Anything"),
    Filter("company", "Company", "select", as_int, lambda v: AuditEntry.company == v, "Any company"),
    Filter("from", "From", "date", as_date, lambda v: AuditEntry.at >= day_start(v)),
    Filter("to", "Until", "date", as_date, lambda v: AuditEntry.at < day_end(v)),
)


def parse_filters(params: Mapping[str, Any]) -> dict[str, Any]:
    return AUDIT_FILTERS.parse(params)


def keyset(secret: bytes) -> Keyset:
    return Keyset(AuditEntry.at, AuditEntry.id, secret, scope="audit")


def _where(actor: Actor, filters: Mapping[str, Any]) -> Combinable:
    require_partner_manager(actor)
    return AUDIT_FILTERS.where(filters, under_wing(actor, AuditEntry.company.path))


def _query(where: Combinable) -> Callable[[], Select[Any]]:
    return lambda: (
        AuditEntry.select(
            AuditEntry.id,
            AuditEntry.at,
            AuditEntry.action,
            AuditEntry.detail,
            AuditEntry.actor.name.as_alias("actor_name"),
            AuditEntry.actor.email.as_alias("actor_email"),
            AuditEntry.company.name.as_alias("company_name"),
            AuditEntry.acting_as.name.as_alias("acting_as_name"),
        )
        .where(where)
        .output(load_json=True)
    )


def _in_words(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    for row in rows:
        row["sentence"] = SENTENCES.sentence(row["action"], row["detail"], row["company_name"])
    return rows


async def list_entries(
    actor: Actor, filters: Mapping[str, Any], cursor: str | None, secret: bytes
) -> KeysetPage[dict[str, Any]]:
    """A page of the log under the wing, newest first; `cursor` (from a page's
    links, signed with `secret`) says where it starts; a bad one is the first page."""
    where = _where(actor, filters)
    walk = keyset(secret)
    total, more = await walk.count_up_to(where, COUNT_UP_TO)
    page = await walk.page(_query(where), total, walk.decode(cursor), total_is_more=more)
    _in_words(page.items)
    return page


async def iter_entries(
    actor: Actor, filters: Mapping[str, Any], chunk: int = CHUNK
) -> AsyncIterator[list[dict[str, Any]]]:
    """Every entry `list_entries` would show, newest first, `chunk` at a time."""
    where = _where(actor, filters)
    async for rows in keyset(b"").walk(_query(where), chunk):
        yield _in_words(rows)


async def filter_choices(actor: Actor, names: Iterable[str]) -> dict[str, list[dict[str, Any]]]:
    """The options of the "Add Filter" selects among `names`: the people who may
    act under the wing, the groups of "What", the companies under the wing."""
    require_partner_manager(actor)
    names = set(names)
    choices: dict[str, list[dict[str, Any]]] = {}
    if "who" in names:
        # The managers under the wing and those of the companies above it, who act
        # inside it too: read from the users, not from the log, which may be long.
        above = [int(part) for part in actor.company_path.strip("/").split("/")]
        people = (
            await User.select(User.id, User.name, User.email)
            .where(
                (under_wing(actor, User.company.path) | User.company.is_in(above))
                & User.role.is_in(list(MANAGER_ROLES))
            )
            .order_by(User.name)
        )
        choices["who"] = [{"id": p["id"], "name": f"{p['name']} ({p['email']})"} for p in people]
    if "what" in names:
        choices["what"] = [{"id": key, "name": label} for key, label in GROUPS.items()]
    if "company" in names:
        choices["company"] = (
            await Company.select(Company.id, Company.name).where(under_wing(actor)).order_by(Company.name)
        )
    return choices
