"""Every kind of e-mail the portal sends, in one registry: its label (the
Notifications page's Kind filter), its subject (a Jinja template over its
fields) and the fields its queue gives it. Its text and HTML are the templates
`templates/email/<name>.txt` and `<name>.html`.

A new kind is an entry here and its two templates; the code that causes it
queues the kind's name with its fields (`emails.queue`).

Kinds `about_batch` are queued by the expiry sweep with no fields but the
reminder's days: their facts (product, seats, users losing access, the end) are
read from the batch when the e-mail goes."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Kind:
    name: str
    label: str
    subject: str
    fields: tuple[str, ...]
    about_batch: bool = False
    # Sent to a person about their own account (invitation, password): never
    # copied, never shown to other managers.
    personal: bool = False
    # A partner may write its own subject and text (portal/domain/branding/);
    # the digest's tables of rows are the portal's own.
    editable: bool = True

    @property
    def template_fields(self) -> tuple[str, ...]:
        """The names a partner's template of this kind may use, each a plain value
        (text, number, yes/no or an instant): nothing to reach into."""
        if self.about_batch:
            return BATCH_TEMPLATE_FIELDS
        return (*self.fields, "sender_name")


_BATCH_FIELDS = ("days",)
# What a reminder or notice knows when it goes (read from its batch then).
BATCH_TEMPLATE_FIELDS = (
    "company_name",
    "product_name",
    "seats",
    "losing",
    "ended",
    "ends",
    "within",
    "days",
    "expired_url",
    "request_url",
    "sender_name",
)

_ALL = (
    Kind(
        "expiry_reminder",
        "Reminder before licenses end",
        "{{ b.product_name }} for {{ b.company_name }} ends within {{ within }}",
        _BATCH_FIELDS,
        about_batch=True,
    ),
    Kind(
        "expiry_notice",
        "Licenses ended",
        "{{ b.product_name }} for {{ b.company_name }} has ended",
        _BATCH_FIELDS,
        about_batch=True,
    ),
    Kind(
        "trial_reminder",
        "Trial ending",
        "Your free trial for {{ b.company_name }} ends within {{ within }}",
        _BATCH_FIELDS,
        about_batch=True,
    ),
    Kind(
        "trial_notice",
        "Trial ended",
        "Your free trial for {{ b.company_name }} has ended: Upgrade Now",
        _BATCH_FIELDS,
        about_batch=True,
    ),
    Kind(
        "order_requested",
        "Licenses requested",
        "{{ company_name }} requests {{ quantity }} licenses",
        (
            "company_id",
            "company_name",
            "quantity",
            "product_name",
            "requested_by",
            "po_number",
            "renewal",
            "renews_ending",
            "coterm_ends_at",
        ),
    ),
    Kind(
        "order_assigned",
        "Licenses ready",
        "{{ quantity }} licenses "
        "{% if renewal %}renewed until {{ ends_at|day }}{% else %}are ready to allocate{% endif %}",
        (
            "company_id",
            "company_name",
            "quantity",
            "product_name",
            "paid",
            "renewal",
            "starts_at",
            "ends_at",
            "cotermed",
            "moving",
        ),
    ),
    Kind(
        "order_declined",
        "Order declined",
        "Your order of {{ quantity }} licenses was declined",
        ("quantity", "declined_by", "reason"),
    ),
    Kind(
        "invitation",
        "Invitation",
        "You are {{ as_what }} of {{ company_name }} on the License Portal",
        ("name", "invited_by", "as_what", "company_name", "hours", "set_password_path"),
        personal=True,
    ),
    Kind(
        "password_reset",
        "Password reset",
        "Set a new password for the License Portal",
        ("name", "email", "hours", "set_password_path"),
        personal=True,
    ),
    Kind(
        "subscription_renewed",
        "Subscription renewed",
        "Your {{ tier_name }} license is renewed until {{ new_end|short_day }}",
        ("company_id", "company_name", "tier_name", "seats", "old_end", "new_end", "invoice", "amount", "paid_by"),
    ),
    Kind(
        "renewal_charge_failed",
        "Renewal charge failed",
        "{% if confirm %}Confirm the payment of the {{ tier_name }} license renewal"
        "{% else %}We could not charge your card for the {{ tier_name }} license renewal{% endif %}",
        (
            "company_id",
            "company_name",
            "tier_name",
            "reason",
            "invoice",
            "invoice_id",
            "amount",
            "confirm",
            "retry_on",
            "ends_on",
        ),
    ),
    Kind(
        "subscription_lapsed",
        "Subscription lapsed",
        "The license subscription of {{ company_name }} has lapsed",
        ("company_id", "company_name", "reason", "term_end"),
    ),
    Kind(
        "renewal_invoice",
        "Renewal invoice",
        "Renewal invoice {{ invoice_number }} for the licenses of {{ company_name }}",
        ("company_name", "invoice_number", "invoice", "invoice_id", "amount", "term_end"),
    ),
    Kind(
        "renewal_invoice_reminder",
        "Renewal invoice reminder",
        "Reminder: the licenses of {{ company_name }} end on {{ term_end|short_day }}; "
        "invoice {{ invoice_number }} is unpaid",
        ("company_name", "invoice_number", "invoice", "invoice_id", "amount", "term_end"),
    ),
    Kind(
        "subscription_cancellation",
        "Cancellation requested",
        "{{ company_name }} requests cancellation of its subscription",
        ("company_id", "company_name", "requested_by", "term_end"),
    ),
    Kind(
        "subscription_cancelled",
        "Subscription cancelled",
        "Your subscription is cancelled",
        ("term_end",),
    ),
    Kind(
        "payment_disputed",
        "Payment disputed",
        "A card payment is disputed: invoice {{ invoice_number }} of {{ company_name }}",
        ("company_name", "invoice_number", "invoice_id", "amount", "reason", "answer_by"),
    ),
    Kind(
        "second_factor_reset",
        "Second factor reset",
        "Your second factor for the License Portal was reset",
        ("name", "email", "by", "by_company"),
        personal=True,
    ),
    Kind(
        "refund_issued",
        "Refund issued",
        "Refund of {{ amount }} for invoice {{ number }}",
        ("amount", "number", "company_name", "reason", "to_card", "credit_note", "invoice_id"),
    ),
    Kind(
        "webhook_disabled",
        "Webhook endpoint switched off",
        "A webhook endpoint was switched off",
        ("url", "reason", "endpoint_id"),
    ),
    Kind(
        "card_expiring",
        "Card expiring",
        "Update your card before your renewal on {{ renews_on|short_day }}",
        ("company_id", "company_name", "renews_on", "last4", "expires"),
    ),
    Kind(
        "auto_renewal_notice",
        "Automatic renewal ahead",
        "{% if renews %}{{ product_name }} for {{ company_name }} renews automatically on {{ on_day|day }}"
        "{% else %}A renewal of {{ product_name }} for {{ company_name }} is placed on {{ on_day|day }}{% endif %}",
        ("company_name", "product_name", "renews", "on_day", "ends_at", "new_end", "same_quantity", "seats", "holders"),
    ),
    Kind(
        "auto_renewed",
        "Renewed automatically",
        "{{ seats }} licenses renewed automatically until {{ ends_at|day }}",
        ("company_id", "company_name", "product_name", "seats", "starts_at", "ends_at", "moving"),
    ),
    Kind(
        "auto_renewal_placed",
        "Renewal placed for approval",
        "A renewal of {{ seats }} licenses is waiting for approval",
        ("company_name", "product_name", "seats", "starts_at", "ends_at"),
    ),
    Kind(
        "weekly_digest",
        "Weekly digest",
        "This week at {{ partner_name }}: {{ counts.ending }} ending, {{ counts.lapsed }} not renewed, "
        "{{ counts.failed }} failed charges, {{ counts.waiting }} orders waiting",
        ("partner_name", "since", "until", "counts", "ending", "lapsed", "failed", "waiting"),
        editable=False,
    ),
)

KINDS: dict[str, Kind] = {kind.name: kind for kind in _ALL}
# The Kind filter's choices: name → label.
LABELS: dict[str, str] = {kind.name: kind.label for kind in _ALL}


def get(name: str) -> Kind:
    try:
        return KINDS[name]
    except KeyError:
        raise LookupError(f"No e-mail kind {name!r}: add it to portal/domain/emails/kinds.py") from None
