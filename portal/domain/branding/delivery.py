"""What a partner's words and brand change in e-mails as they go: for each
company, the nearest partner's own subject and text of each kind (else the
portal's), and the nearest partner's logo and colour. A stored template that
fails on the real values (it passed on made-up ones when saved) is never sent:
the portal's own goes instead, and the failure is logged."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from portal.domain.branding import brand as brands
from portal.domain.branding import sandbox
from portal.domain.emails.kinds import Kind
from portal.tables.branding import PartnerEmailTemplate

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Override:
    company_id: int  # whose words
    subject: str
    body: str


@dataclass
class Branding:
    """Per company id: its brand and its partners' words by kind."""

    brand: dict[int, brands.Brand] = field(default_factory=dict)
    words: dict[int, dict[str, Override]] = field(default_factory=dict)

    def brand_context(self, company_id: int | None) -> dict[str, Any]:
        found = self.brand.get(company_id) if company_id is not None else None
        return {"brand": found}

    def override(self, company_id: int | None, kind: Kind) -> Override | None:
        if company_id is None:
            return None
        return self.words.get(company_id, {}).get(kind.name)


async def for_companies(company_ids: set[int], kinds: set[str]) -> Branding:
    """Brands and words for the companies of a list of e-mails: three queries."""
    paths = await brands.company_paths(company_ids)
    if not paths:
        return Branding()
    found = await brands.for_paths(paths)
    ancestors = {cid: brands._ancestors(path) for cid, path in paths.items()}
    every = sorted({a for chain in ancestors.values() for a in chain})
    words: dict[int, dict[str, Override]] = {}
    if kinds and every:
        rows = await PartnerEmailTemplate.select(
            PartnerEmailTemplate.company,
            PartnerEmailTemplate.kind,
            PartnerEmailTemplate.subject,
            PartnerEmailTemplate.body,
        ).where(PartnerEmailTemplate.company.is_in(every) & PartnerEmailTemplate.kind.is_in(sorted(kinds)))
        saved = {(r["company"], r["kind"]): Override(r["company"], r["subject"], r["body"]) for r in rows}
        for cid, chain in ancestors.items():
            for kind in kinds:
                nearest = next((saved[(a, kind)] for a in chain if (a, kind) in saved), None)
                if nearest is not None:
                    words.setdefault(cid, {})[kind] = nearest
    return Branding(found, words)


def render_override(override: Override, kind: Kind, context: dict[str, Any]) -> tuple[str, str] | None:
    """Subject and text in the partner's words, or None (logged) when they fail on these values."""
    values = {name: context[name] for name in kind.template_fields if name in context}
    try:
        return sandbox.render_pair(override.subject, override.body, kind.template_fields, values, context["base_url"])
    except sandbox.TemplateRefused as refused:
        log.warning(
            "partner template refused at delivery; the portal's own goes instead",
            extra={"kind": kind.name, "partner": override.company_id, "refusal": str(refused.refusal)},
        )
    except Exception:
        log.exception(
            "partner template failed at delivery; the portal's own goes instead",
            extra={"kind": kind.name, "partner": override.company_id},
        )
    return None
