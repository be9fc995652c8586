"""A partner's own subject and text for a kind of e-mail: checked in the sandbox
against the kind's fields and made-up values before it is saved (a template
that cannot be rendered is never stored), reset to the portal's own, and sent
to the manager as a test. Each change is audited."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from portal.domain import audit, outbox
from portal.domain.access import Actor, Capability, require, require_partner_manager
from portal.domain.branding import sandbox
from portal.domain.branding.samples import sample
from portal.domain.emails.kinds import KINDS, Kind
from portal.domain.errors import NotFound, ValidationFailed
from portal.settings import PROJECT_DIR
from portal.tables.branding import PartnerEmailTemplate

_EMAIL_TEMPLATES = PROJECT_DIR / "templates" / "email"
_INCLUDE = re.compile(r'\{%-? include "([^"]+)" -?%\}\n?')


@dataclass(frozen=True)
class Wording:
    """What a kind of e-mail says for a partner: its own, one above it, or the portal's."""

    kind: Kind
    subject: str
    body: str
    own: bool  # saved by this partner
    inherited_from: int | None = None  # the company above whose words these are


def editable_kind(name: str) -> Kind:
    kind = KINDS.get(name)
    if kind is None or not kind.editable:
        raise NotFound("No such kind of e-mail.")
    return kind


def editable_kinds() -> list[Kind]:
    return [kind for kind in KINDS.values() if kind.editable]


def built_in(kind: Kind) -> tuple[str, str]:
    """The portal's own subject and text, as a starting point to edit. A batch's
    facts are plain fields in a partner's template (`b.seats` is `seats`)."""
    # A partner's template has no other files to include: theirs are written in.
    body = _INCLUDE.sub(
        lambda m: (_EMAIL_TEMPLATES / m.group(1)).read_text(), (_EMAIL_TEMPLATES / f"{kind.name}.txt").read_text()
    )
    subject = kind.subject
    if kind.about_batch:
        subject, body = (text.replace("b.", "") for text in (subject, body))
    return subject, body


def _ancestors(path: str) -> list[int]:
    return [int(part) for part in reversed(path.strip("/").split("/")) if part]


async def wording(actor: Actor, name: str) -> Wording:
    """The words the partner's customers get today for this kind."""
    require_partner_manager(actor)
    kind = editable_kind(name)
    ids = _ancestors(actor.company_path)
    rows = {
        row["company"]: row
        for row in await PartnerEmailTemplate.select(
            PartnerEmailTemplate.company, PartnerEmailTemplate.subject, PartnerEmailTemplate.body
        ).where(PartnerEmailTemplate.company.is_in(ids) & (PartnerEmailTemplate.kind == kind.name))
    }
    for company_id in ids:
        if company_id in rows:
            row = rows[company_id]
            own = company_id == actor.company_id
            return Wording(kind, row["subject"], row["body"], own, None if own else company_id)
    subject, body = built_in(kind)
    return Wording(kind, subject, body, own=False)


async def own_kinds(actor: Actor) -> set[str]:
    """The kinds this partner has its own words for."""
    rows = await PartnerEmailTemplate.select(PartnerEmailTemplate.kind).where(
        PartnerEmailTemplate.company == actor.company_id
    )
    return {row["kind"] for row in rows}


def rendered(kind: Kind, subject: str, body: str, sender_name: str, base_url: str) -> tuple[str, str]:
    """Subject and text over made-up values, its links under `base_url`, or
    TemplateRefused with the line at fault."""
    return sandbox.render_pair(subject, body, kind.template_fields, sample(kind, sender_name), base_url)


def _checked(kind: Kind, subject: str, body: str, sender_name: str) -> tuple[str, str]:
    try:
        return rendered(kind, subject, body, sender_name, base_url="")  # checked only: no link is kept
    except sandbox.TemplateRefused as refused:
        raise ValidationFailed({refused.refusal.field: str(refused.refusal)}) from None


async def save(actor: Actor, name: str, *, subject: str, body: str, now: datetime) -> Wording:
    """The partner's own words for this kind, for its customers and the companies under it."""
    require_partner_manager(actor)
    require(actor, Capability.SETTINGS)
    kind = editable_kind(name)
    body = body.replace("\r\n", "\n")
    _checked(kind, subject, body, actor.company_name)
    row = PartnerEmailTemplate(
        company=actor.company_id, kind=kind.name, subject=subject, body=body, updated_at=now, updated_by=actor.user_id
    )
    await PartnerEmailTemplate.insert(row).on_conflict(
        target=(PartnerEmailTemplate.company, PartnerEmailTemplate.kind),
        action="DO UPDATE",
        values=[
            PartnerEmailTemplate.subject,
            PartnerEmailTemplate.body,
            PartnerEmailTemplate.updated_at,
            PartnerEmailTemplate.updated_by,
        ],
    )
    await audit.record(actor, "branding.template_save", actor.company_id, now, {"kind": kind.name, "label": kind.label})
    return Wording(kind, subject, body, own=True)


async def reset(actor: Actor, name: str, now: datetime) -> bool:
    """Back to the words of the partner above, or the portal's. Returns whether there was anything to reset."""
    require_partner_manager(actor)
    require(actor, Capability.SETTINGS)
    kind = editable_kind(name)
    where = (PartnerEmailTemplate.company == actor.company_id) & (PartnerEmailTemplate.kind == kind.name)
    if not await PartnerEmailTemplate.exists().where(where):
        return False
    await PartnerEmailTemplate.delete().where(where)
    await audit.record(
        actor, "branding.template_reset", actor.company_id, now, {"kind": kind.name, "label": kind.label}
    )
    return True


async def send_test(actor: Actor, name: str, *, subject: str, body: str, now: datetime) -> str:
    """The words as typed, over made-up values, to the manager's own address
    through the outbox (with the partner's brand when it goes). A template that
    cannot be rendered is refused, as it would be on saving. Returns the address."""
    require_partner_manager(actor)
    require(actor, Capability.SETTINGS)
    kind = editable_kind(name)
    rendered_subject, text = _checked(kind, subject, body.replace("\r\n", "\n"), actor.company_name)
    await outbox.queue_email(
        kind.name,
        actor.company_id,
        [actor.email],
        f"[Test] {rendered_subject}",
        text,
        now,
        f"branding-test:{actor.user_id}:{kind.name}:{now.isoformat()}",
    )
    await audit.record(actor, "branding.template_test", actor.company_id, now, {"kind": kind.name, "label": kind.label})
    return actor.email
