"""The billing tick: what runs every few minutes, in the order it must run.

First what a crash left paid and unprovisioned, so a renewal below finds its term
in place; then Stripe's events whose job was lost and refunds not asked of the
processor yet; then the online renewals (handed out in chunks to whoever
`queue_chunks` reaches, or renewed here); then invoice subscriptions' invoices and
reminders; last, what ran out ends or lapses."""

from __future__ import annotations

import math
from collections.abc import Awaitable, Callable
from datetime import datetime

from portal.domain.billing import refunds, settlement, stripe_events
from portal.domain.billing.payments import CardProcessor
from portal.domain.billing.renewal import invoice_subscriptions, lapse, online

CHUNK = 500
# One tick's own loops stop after this many chunks; the next tick goes on.
MAX_CHUNKS = 1_000
# A chunk stops asking cards after this long: well inside arq's job timeout (300 s), which
# would cancel it before any answer is recorded, and the chunk's 5-minute lease, after
# which another worker would take its charges for abandoned. What is not asked is
# released, due again at once, and taken by the next chunk.
ASK_FOR_S = 120.0


async def run(
    now: datetime,
    processor: CardProcessor,
    queue_chunks: Callable[[int], Awaitable[None]] | None = None,
) -> dict[str, int]:
    """One tick. With `queue_chunks`, the online renewals due are counted and that
    many chunk jobs queued (each claims its own chunk, so extra jobs find nothing);
    without, they are renewed here, chunk after chunk."""
    counts: dict[str, int] = {"provisioned_missed": await settlement.provision_missed(now)}
    counts["stripe_events_taken_up"] = await stripe_events.process_waiting(now)
    counts["refunds_sent"] = await refunds.send_waiting(now, processor=processor)
    if queue_chunks is not None:
        chunks = math.ceil(await online.count_due(now) / CHUNK)
        await queue_chunks(chunks)
        counts["chunks_queued"] = chunks
    else:
        for _ in range(MAX_CHUNKS):
            done = await online.renew_due(now, limit=CHUNK, processor=processor, ask_for_s=ASK_FOR_S)
            _add(counts, done)
            if done["claimed"] < CHUNK and not done["released"]:
                break
    for _ in range(MAX_CHUNKS):
        invoiced = await invoice_subscriptions.issue_renewal_invoices(now, limit=CHUNK)
        _add(counts, invoiced)
        if invoiced["issued"] < CHUNK:
            break
    counts["ended_or_lapsed"] = await lapse.lapse_unpaid(now)
    return counts


def _add(total: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        total[key] = total.get(key, 0) + value
