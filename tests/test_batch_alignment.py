"""Aligning a customer's batches to one renewal date: the partner's preview lists
each running batch, its end and the pro-rata charge (extended) or credit
(shortened); Confirm moves them all in one transaction, with their holders'
licence ends, audited, and is refused if anything changed since the preview.
Domain and page, each engine."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from portal.domain.billing import catalogue as billing_catalogue
from portal.domain.billing import money, profiles
from portal.domain.clock import utcnow
from portal.domain.dashboard import same_quantity
from portal.domain.errors import PermissionDenied, ValidationFailed
from portal.domain.licences import alignment
from portal.domain.orders import decisions, requests
from portal.tables import AuditEntry, LicenceBatch, User
from tests.support import csrf_of, sign_in
from tests.test_dashboard import NOW, actors, batch_ending, learners
from tests.test_dashboard_figures import assert_exact


async def _scene(tree, now=NOW, priced=True):
    partner, customer = await actors(tree)
    early = await batch_ending(
        partner, tree.direct, 5, now + timedelta(days=40), await learners(tree.direct, 2, "early")
    )
    late = await batch_ending(
        partner, tree.direct, 2, now + timedelta(days=100), await learners(tree.direct, 1, "late")
    )
    if priced:
        await profiles.profile(tree.partner["id"])
        await billing_catalogue.items(tree.partner["id"])  # a standard user: $30 a month, $360 a year
    return partner, customer, early, late


async def _ends_of(prefix: str, company: dict) -> set:
    rows = await User.select(User.licence_ends_at).where(
        (User.company == company["id"]) & User.email.like(f"{prefix}%")
    )
    return {r["licence_ends_at"] for r in rows}


async def test_aligning_to_the_current_term_extends_the_earlier_batch_for_a_pro_rata_charge(tree):
    partner, _, early, late = await _scene(tree)
    plan = await alignment.preview(partner, tree.direct["id"], None, NOW)
    assert plan.target == late["ends_at"]
    by_batch = {m.batch_id: m for m in plan.moves}
    assert not by_batch[late["id"]].moves  # already ends then
    moved = by_batch[early["id"]]
    # 5 seats × $360 for the 60 days added, of the 365-day term ending then: $295.890…
    assert (moved.days, moved.change_cents, plan.total_cents) == (60, 295_89, 295_89)

    await alignment.align(partner, tree.direct["id"], None, plan.version, NOW)
    batches = {b["id"]: b["ends_at"] for b in await LicenceBatch.select(LicenceBatch.id, LicenceBatch.ends_at)}
    assert batches == {early["id"]: late["ends_at"], late["id"]: late["ends_at"]}
    assert await _ends_of("early", tree.direct) == {late["ends_at"]}
    entry = await AuditEntry.select(AuditEntry.detail).where(AuditEntry.action == "batches.align").first()
    assert entry is not None and "29589" in str(entry["detail"])
    await assert_exact(partner, tree, NOW)


async def test_aligning_to_an_earlier_date_shortens_the_later_batch_for_a_credit(tree):
    partner, _, early, late = await _scene(tree)
    day = early["ends_at"].date()
    plan = await alignment.preview(partner, tree.direct["id"], day, NOW)
    assert plan.target == early["ends_at"]
    moved = next(m for m in plan.moving)
    # 2 seats × $360 for the 60 days taken off, of the 365-day term ending on the later end: $118.356… back
    assert (moved.batch_id, moved.days, moved.change_cents) == (late["id"], -60, -118_36)
    await alignment.align(partner, tree.direct["id"], day, plan.version, NOW)
    assert await _ends_of("late", tree.direct) == {early["ends_at"]}
    await assert_exact(partner, tree, NOW)


async def test_confirm_is_refused_when_the_batches_changed_since_the_preview(tree):
    partner, customer, early, late = await _scene(tree)
    plan = await alignment.preview(partner, tree.direct["id"], None, NOW)
    order = await requests.request_order(customer, tree.direct["id"], 3, None, "", NOW)
    await decisions.assign_order(partner, order["id"], NOW)  # a batch more since the preview
    with pytest.raises(ValidationFailed) as refused:
        await alignment.align(partner, tree.direct["id"], None, plan.version, NOW)
    assert "changed since this preview" in refused.value.errors["target"]
    assert (await LicenceBatch.select().where(LicenceBatch.id == early["id"]).first())["ends_at"] == early["ends_at"]
    assert await AuditEntry.count().where(AuditEntry.action == "batches.align") == 0


async def test_renewed_batches_are_kept_dates_are_checked_and_without_a_price_only_days_show(tree):
    partner, customer, early, late = await _scene(tree, priced=False)
    at = NOW + timedelta(days=15)  # the early batch ends within 30 days: Renew same quantity
    await same_quantity.renew_same_quantity(partner, early["id"], at)
    plan = await alignment.preview(partner, tree.direct["id"], None, at)
    kept = next(m for m in plan.moves if m.batch_id == early["id"])
    assert kept.kept == "already renewed: its renewal starts when it ends" and not kept.moves
    assert plan.moving == [] and plan.total_cents is None
    for day, said in ((at.date() - timedelta(days=1), "after today"), (at.date() + timedelta(days=400), "12 months")):
        with pytest.raises(ValidationFailed) as refused:
            await alignment.preview(partner, tree.direct["id"], day, at)
        assert said in refused.value.errors["target"]
    with pytest.raises(PermissionDenied):
        await alignment.preview(customer, tree.direct["id"], None, at)
    await decisions.start_trial(partner, tree.north["id"], 5, at)
    with pytest.raises(ValidationFailed) as alone:  # a trial is no term to align to
        await alignment.preview(partner, tree.north["id"], None, at)
    assert "holds no running licenses to align" in alone.value.errors["target"]
    trial = await alignment.preview(partner, tree.north["id"], at.date() + timedelta(days=10), at)
    assert [m.kept for m in trial.moves] == ["a Free trial: it ends by itself"] and trial.moving == []


async def test_the_renewal_date_page_previews_and_confirms(client, tree):
    now = utcnow()
    partner, _, early, late = await _scene(tree, now)
    await sign_in(client, tree.email("partner"))
    company = await client.get(f"/companies/{tree.direct['id']}")
    assert f'href="/companies/{tree.direct["id"]}/alignment"' in company.text
    page = await client.get(f"/companies/{tree.direct['id']}/alignment")
    text = " ".join(page.text.split())
    # The real clock: the term ending then may hold a 29 February, so the price is computed as the page's.
    charge = money.format_money(money.prorate_to(5 * 360_00, early["ends_at"], late["ends_at"]), "USD")
    assert page.status_code == 200 and f"charge {charge}" in text
    version = alignment_version(page.text)
    stale = await client.post(
        f"/companies/{tree.direct['id']}/alignment",
        data={"_csrf_token": csrf_of(page.text), "target": f"{late['ends_at']:%Y-%m-%d}", "version": version + "0"},
    )
    assert stale.status_code == 409 and "changed since this preview" in stale.text
    bad = await client.get(f"/companies/{tree.direct['id']}/alignment?target=soon")
    assert bad.status_code == 400 and "YYYY-MM-DD" in bad.text
    done = await client.post(
        f"/companies/{tree.direct['id']}/alignment",
        data={"_csrf_token": csrf_of(page.text), "target": f"{late['ends_at']:%Y-%m-%d}", "version": version},
    )
    assert done.status_code == 303
    flashed = await client.get(done.headers["location"])
    assert f"1 batch of Direct Customer now end on {late['ends_at']:%d %b %Y}; charge {charge}" in flashed.text
    assert (await LicenceBatch.select().where(LicenceBatch.id == early["id"]).first())["ends_at"] == late["ends_at"]


def alignment_version(html: str) -> str:
    marker = 'name="version" value="'
    start = html.index(marker) + len(marker)
    return html[start : html.index('"', start)]


async def test_ten_identical_confirmations_align_once(tree):
    """The same Confirm ten times at once: the first moves the ends; the others find
    them moved since the preview and change nothing."""
    partner, _, early, late = await _scene(tree)
    plan = await alignment.preview(partner, tree.direct["id"], None, NOW)
    outcomes = await asyncio.gather(
        *(alignment.align(partner, tree.direct["id"], None, plan.version, NOW) for _ in range(10)),
        return_exceptions=True,
    )
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, ValidationFailed)]
    assert (len(done), len(refused)) == (1, 9), outcomes
    batches = {b["id"]: b["ends_at"] for b in await LicenceBatch.select(LicenceBatch.id, LicenceBatch.ends_at)}
    assert batches == {early["id"]: late["ends_at"], late["id"]: late["ends_at"]}
    assert await AuditEntry.count().where(AuditEntry.action.like("%align%")) == 1
    await assert_exact(partner, tree, NOW)
