"""Who the seller is on its invoices and credit notes: the name a finance team pays
(blank: the company's own), its postal address, its tax id, and, for customers who
Pay by Invoice, how to pay (bank details, where to send a check). Kept on the
seller's billing profile; an invoice prints them as they are when it is downloaded."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from portal import db
from portal.domain import audit
from portal.domain.access import Actor, Capability, get_company, require, require_partner_manager
from portal.domain.billing import profiles
from portal.domain.errors import NotFound, PermissionDenied, ValidationFailed
from portal.tables import CompanyKind
from portal.tables.billing import BillingProfile

MAX_NAME = 200
MAX_ADDRESS = 500
MAX_ADDRESS_LINES = 6
MAX_TAX_ID = 50
MAX_INSTRUCTIONS = 1000
MAX_INSTRUCTION_LINES = 12
# VAT, EIN, ABN, GST numbers and the like: letters and digits, with the separators they are written with.
_TAX_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9 .\-/]*")


@dataclass(frozen=True)
class SellerDetails:
    legal_name: str = ""
    address: str = ""
    tax_id: str = ""
    payment_instructions: str = ""


def _lines(value: str) -> list[str]:
    """A text box's lines, each trimmed, blank ones left out (a pasted address often has some)."""
    return [" ".join(line.split()) for line in value.splitlines() if line.strip()]


def clean(details: SellerDetails) -> SellerDetails:
    """The details as they are kept, or ValidationFailed naming each field that cannot be."""
    name = " ".join(details.legal_name.split())
    address = _lines(details.address)
    tax_id = " ".join(details.tax_id.split())
    instructions = _lines(details.payment_instructions)
    errors: dict[str, str] = {}
    if len(name) > MAX_NAME:
        errors["legal_name"] = f"Use at most {MAX_NAME} characters for the name ({len(name)} now)."
    if len(address) > MAX_ADDRESS_LINES:
        errors["address"] = f"Write the address on at most {MAX_ADDRESS_LINES} lines ({len(address)} now)."
    elif len("\n".join(address)) > MAX_ADDRESS:
        errors["address"] = f"Use at most {MAX_ADDRESS} characters for the address."
    if len(tax_id) > MAX_TAX_ID:
        errors["tax_id"] = f"Use at most {MAX_TAX_ID} characters for the tax id."
    elif tax_id and not _TAX_ID.fullmatch(tax_id):
        errors["tax_id"] = (
            "A tax id has letters, digits, spaces and . - / only, as it is printed on your registration "
            "(for example GB123456789 or 12-3456789)."
        )
    if len(instructions) > MAX_INSTRUCTION_LINES:
        errors["payment_instructions"] = (
            f"Write the payment instructions on at most {MAX_INSTRUCTION_LINES} lines ({len(instructions)} now)."
        )
    elif len("\n".join(instructions)) > MAX_INSTRUCTIONS:
        errors["payment_instructions"] = f"Use at most {MAX_INSTRUCTIONS} characters for the payment instructions."
    if errors:
        raise ValidationFailed(errors)
    return SellerDetails(name, "\n".join(address), tax_id, "\n".join(instructions))


def of_profile(profile: dict[str, Any]) -> SellerDetails:
    return SellerDetails(profile["legal_name"], profile["address"], profile["tax_id"], profile["payment_instructions"])


async def seller_details(partner_id: int) -> SellerDetails:
    return of_profile(await profiles.profile(partner_id))


async def save_seller_details(actor: Actor, partner_id: int, details: SellerDetails, now: datetime) -> SellerDetails:
    """A partner manager's own company's details, as its invoices will print them."""
    require_partner_manager(actor)
    require(actor, Capability.BILLING_SETTINGS)
    if actor.read_only:
        raise PermissionDenied("Read-only managers cannot change anything.")
    seller = await get_company(actor, partner_id)
    if seller["kind"] == CompanyKind.CUSTOMER:
        raise NotFound("No such seller.")
    details = clean(details)
    await profiles.profile(partner_id)
    async with db.write_transaction():
        before = await db.for_update(BillingProfile.select().where(BillingProfile.company == partner_id)).first()
        assert before is not None, "profile() writes it"
        await BillingProfile.update(**asdict(details)).where(BillingProfile.company == partner_id)
        changed = {f: v for f, v in asdict(details).items() if before[f] != v}
        await audit.record(actor, "billing.seller_details.save", partner_id, now, {"changed": sorted(changed)})
    return details
