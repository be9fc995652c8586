"""A partner's logo and colour. The logo is a small PNG or JPEG kept in the
database and served at an address made of its digest; SVG is refused (it can
carry script and links), and the type is read from the file's first bytes, not
from what the browser says. The colour is #rrggbb and nothing else, so it can
go into a style sheet and an e-mail's inline style as it is."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from portal.domain import audit
from portal.domain.access import Actor, Capability, require, require_partner_manager
from portal.domain.errors import ValidationFailed
from portal.tables import Company
from portal.tables.branding import PartnerBrand

LOGO_LIMIT = 200_000  # bytes: a header logo, not a photograph
_COLOUR = re.compile(r"#[0-9a-f]{6}")
_TYPES = ((b"\x89PNG\r\n\x1a\n", "image/png"), (b"\xff\xd8\xff", "image/jpeg"))


@dataclass(frozen=True)
class Brand:
    company_id: int
    company_name: str
    colour: str | None = None
    logo_digest: str | None = None

    @property
    def logo_path(self) -> str | None:
        return f"/brand/logo/{self.logo_digest}" if self.logo_digest else None

    @property
    def colour_path(self) -> str | None:
        """The style sheet that sets --partner-color to the colour."""
        return f"/brand/colour/{self.colour[1:]}" if self.colour else None


def checked_colour(text: str) -> str | None:
    text = text.strip().lower()
    if not text:
        return None
    if not _COLOUR.fullmatch(text):
        raise ValidationFailed({"colour": "Give the colour as # and six hexadecimal digits, such as #1f6feb."})
    return text


def logo_type(data: bytes) -> str:
    """image/png or image/jpeg, from the file's own first bytes; anything else is refused."""
    if len(data) > LOGO_LIMIT:
        raise ValidationFailed({"logo": f"The logo is {len(data):,} bytes; use one of at most {LOGO_LIMIT:,}."})
    for magic, media_type in _TYPES:
        if data.startswith(magic):
            return media_type
    raise ValidationFailed({"logo": "Use a PNG or JPEG image; SVG and other files are not accepted."})


def is_colour(text: str) -> bool:
    return bool(_COLOUR.fullmatch(f"#{text}"))


async def own_brand(actor: Actor) -> Brand:
    """The partner's own brand (empty when it set none)."""
    require_partner_manager(actor)
    rows = await PartnerBrand.select(PartnerBrand.colour, PartnerBrand.logo_digest).where(
        PartnerBrand.company == actor.company_id
    )
    row = rows[0] if rows else {}
    return Brand(actor.company_id, actor.company_name, row.get("colour"), row.get("logo_digest"))


async def save(
    actor: Actor, *, colour: str, logo: bytes | None, remove_logo: bool, now: datetime
) -> tuple[Brand, Brand]:
    """The partner's colour, and its logo when one is given (or none, removed).
    Returns the brand before and after, to say what changed."""
    require_partner_manager(actor)
    require(actor, Capability.SETTINGS)
    before = await own_brand(actor)
    checked = checked_colour(colour)
    values: dict[str, Any] = {"colour": checked}
    if logo:
        values |= {"logo": logo, "logo_type": logo_type(logo), "logo_digest": hashlib.sha256(logo).hexdigest()}
    elif remove_logo:
        values |= {"logo": None, "logo_type": None, "logo_digest": None}
    row = PartnerBrand(company=actor.company_id, updated_at=now, updated_by=actor.user_id, **values)
    columns = [getattr(PartnerBrand, name) for name in values]
    await PartnerBrand.insert(row).on_conflict(
        target=PartnerBrand.company,
        action="DO UPDATE",
        values=[*columns, PartnerBrand.updated_at, PartnerBrand.updated_by],
    )
    after = await own_brand(actor)
    await audit.record(
        actor,
        "branding.brand_save",
        actor.company_id,
        now,
        {
            "colour": after.colour,
            "logo": "changed" if after.logo_digest != before.logo_digest else "kept",
            "has_logo": bool(after.logo_digest),
        },
    )
    return before, after


async def logo(digest: str) -> tuple[bytes, str] | None:
    """A logo by its digest, for its address: bytes and type."""
    rows = await PartnerBrand.select(PartnerBrand.logo, PartnerBrand.logo_type).where(
        PartnerBrand.logo_digest == digest
    )
    if not rows or rows[0]["logo"] is None:
        return None
    return bytes(rows[0]["logo"]), rows[0]["logo_type"]


def _ancestors(path: str) -> list[int]:
    return [int(part) for part in reversed(path.strip("/").split("/")) if part]


async def for_path(company_path: str) -> Brand | None:
    """The brand of the nearest partner at or above the company with one."""
    found = await for_paths({0: company_path})
    return found.get(0)


async def for_paths(paths: dict[int, str]) -> dict[int, Brand]:
    """for_path for many companies (key → path) at once: one query."""
    wanted = sorted({a for path in paths.values() for a in _ancestors(path)})
    if not wanted:
        return {}
    rows = await PartnerBrand.select(
        PartnerBrand.company,
        PartnerBrand.company.name.as_alias("company_name"),
        PartnerBrand.colour,
        PartnerBrand.logo_digest,
    ).where(
        PartnerBrand.company.is_in(wanted)
        & ((PartnerBrand.colour.is_not_null()) | (PartnerBrand.logo_digest.is_not_null()))
    )
    brands = {r["company"]: Brand(r["company"], r["company_name"], r["colour"], r["logo_digest"]) for r in rows}
    out = {}
    for key, path in paths.items():
        nearest = next((brands[a] for a in _ancestors(path) if a in brands), None)
        if nearest is not None:
            out[key] = nearest
    return out


async def company_paths(company_ids: set[int]) -> dict[int, str]:
    if not company_ids:
        return {}
    rows = await Company.select(Company.id, Company.path).where(Company.id.is_in(sorted(company_ids)))
    return {row["id"]: row["path"] for row in rows}
