"""Renewal by CSV on the domain functions, each engine: the preview's outcomes,
"Renew Licences" doing exactly them, the same file twice, changes meanwhile,
"Import Allocation", two managers at once and a failure halfway."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
from datetime import timedelta

import pytest
from dateutil.relativedelta import relativedelta
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portal.domain.access import load_actor
from portal.domain.errors import NotFound
from portal.domain.imports import apply as applying
from portal.domain.imports import preview, reader
from portal.domain.imports.reader import CsvRefused
from portal.domain.licences import allocation
from portal.domain.licences.allocation import Selection
from portal.domain.orders import decisions, requests
from portal.tables import Allocation, LicenceBatch, User
from portal.tables.dashboard import DashboardFigure
from portal.tables.imports import CsvImport, CsvImportRow
from tests.factories import T0, add_user
from tests.support import import_files_here

NOW = T0
FILES = import_files_here()


async def actors(tree):
    return (
        await load_actor(tree.managers["north"]["id"], None),
        await load_actor(tree.managers["partner"]["id"], None),
    )


async def batch(tree, seats: int, at) -> dict:
    customer, partner = await actors(tree)
    order = await requests.request_order(customer, tree.north["id"], seats, None, "", at)
    return await decisions.assign_order(partner, order["id"], at)


async def setup_north(tree, free: int = 3, now=NOW) -> dict:
    """e0…e4 expired (seats of a batch that ended), a0 active, and a running
    batch with `free` free seats."""
    customer, _ = await actors(tree)
    old = now - relativedelta(months=13)
    expired = [(await add_user(tree.north, f"e{i}@north.example", role="learner"))["id"] for i in range(5)]
    active = (await add_user(tree.north, "a0@north.example", role="learner"))["id"]
    await batch(tree, 10, old)
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=tuple(expired)), old)
    running = await batch(tree, free + 1, now - timedelta(days=1))
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=(active,)), now - timedelta(days=1))
    return running


FILE = (
    "Name;E-mail;Manager e-mail\r\n"
    "Eve Zero;e0@north.example;manager@north.example\r\n"
    "Eve One; E1@North.EXAMPLE ;manager@north.example\r\n"
    "Eve Two;Eve Two <e2@north.example>;manager@north.example\r\n"
    "Eve Again;e0@north.example;manager@north.example\r\n"
    "Ann;a0@north.example;manager@north.example\r\n"
    "\r\n"
    "Stranger;stranger@elsewhere.example;manager@north.example\r\n"
    "Typo;not an address;manager@north.example\r\n"
    "Eve Three;e3@north.example;manager@north.example\r\n"
    "Other tenant;manager@other-customer.example;manager@north.example\r\n"
)
EXPECTED = {"renew": 3, "duplicate": 1, "active": 1, "unknown": 2, "invalid": 1, "no_seat": 1}


async def upload(actor, tree, text: str = FILE, encoding: str = "cp1252", name: str = "users.csv") -> int:
    return await preview.receive(actor, tree.north["id"], name, io.BytesIO(text.encode(encoding)), NOW, FILES)


async def test_preview_sorts_every_row_and_renew_does_exactly_that(tree):
    running = await setup_north(tree)
    customer, _ = await actors(tree)
    import_id = await upload(customer, tree)
    row = await preview.get_import(customer, tree.north["id"], import_id)
    assert row["columns"] == ["Name", "E-mail", "Manager e-mail"] and row["email_column"] == 1
    assert row["preview"]["counts"] == EXPECTED and row["preview"]["free"] == 3 and row["rows"] == 9
    assert [r["line"] for r in await preview.rows_of(customer, tree.north["id"], import_id, ("duplicate",), 100)] == [5]

    result = await applying.apply(customer, tree.north["id"], import_id, NOW, FILES)
    assert result["counts"] == EXPECTED and result["renewed"] == 3 and result["changes"] == []
    renewed = await User.select(User.email).where(User.licence_ends_at == running["ends_at"])
    assert {u["email"] for u in renewed} == {
        "e0@north.example",
        "e1@north.example",
        "e2@north.example",
        "a0@north.example",
    }
    fresh = await LicenceBatch.select().where(LicenceBatch.id == running["id"]).first()
    assert fresh["allocated"] == fresh["seats"] == 4
    assert not FILES.path_of(row["stored_as"]).exists()


async def test_the_same_import_or_the_same_file_twice_renews_nobody_twice(tree):
    running = await setup_north(tree, free=5)
    customer, _ = await actors(tree)
    first = await upload(customer, tree)
    assert (await applying.apply(customer, tree.north["id"], first, NOW, FILES))["renewed"] == 4
    again = await applying.apply(customer, tree.north["id"], first, NOW, FILES)  # a retried job, a double click
    assert again["renewed"] == 4
    second = await upload(customer, tree)
    result = await applying.apply(customer, tree.north["id"], second, NOW, FILES)
    assert result["renewed"] == 0 and result["counts"]["active"] == 5
    assert await Allocation.count().where(Allocation.batch == running["id"]) == 5


async def test_what_changed_between_preview_and_renew_is_said(tree):
    await setup_north(tree)
    customer, _ = await actors(tree)
    import_id = await upload(customer, tree)
    e1 = await User.select(User.id).where(User.email == "e1@north.example").first()
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=(e1["id"],)), NOW)  # renewed by hand
    result = await applying.apply(customer, tree.north["id"], import_id, NOW, FILES)
    assert result["renewed"] == 2
    assert {(c["outcome"], c["before"], c["after"]) for c in result["changes"]} == {("renew", 3, 2), ("active", 1, 2)}


async def test_import_allocation_adds_unknown_addresses_as_learners_with_seats(tree):
    await setup_north(tree, free=10)
    customer, _ = await actors(tree)
    import_id = await upload(customer, tree)
    summary = await preview.choose_column(customer, tree.north["id"], import_id, 1, True, NOW, FILES)
    # The address with an account in another tenant is not taken over.
    assert summary["counts"]["new"] == 1 and summary["counts"]["unknown"] == 1 and summary["counts"]["renew"] == 4
    result = await applying.apply(customer, tree.north["id"], import_id, NOW, FILES)
    assert result["renewed"] == 5
    learner = await User.select().where(User.email == "stranger@elsewhere.example").first()
    assert learner["company"] == tree.north["id"] and learner["role"] == "learner" and learner["name"] == "Stranger"
    assert learner["licence_ends_at"] is not None


async def test_two_managers_importing_at_once_never_over_allocate(tree):
    running = await setup_north(tree, free=3)
    customer, partner = await actors(tree)
    mine = await upload(customer, tree)
    theirs = await upload(partner, tree, FILE.replace("e0@", "e4@"))
    results = await asyncio.gather(
        applying.apply(customer, tree.north["id"], mine, NOW, FILES),
        applying.apply(partner, tree.north["id"], theirs, NOW, FILES),
    )
    fresh = await LicenceBatch.select().where(LicenceBatch.id == running["id"]).first()
    assert fresh["allocated"] == fresh["seats"] == 4
    assert sum(r["renewed"] for r in results) == 3
    users = await Allocation.select(Allocation.user).where(Allocation.batch == running["id"])
    assert len({u["user"] for u in users}) == len(users)


async def test_a_failure_halfway_writes_nothing_and_the_retry_renews_once(tree, monkeypatch):
    running = await setup_north(tree)
    customer, _ = await actors(tree)
    import_id = await upload(customer, tree)

    async def killed(*args, **kwargs):
        raise ConnectionError("worker lost its database connection")

    # Seats inserted, the batch counted, then the connection goes: all of it rolls back.
    monkeypatch.setattr(applying.audit, "record", killed)
    with pytest.raises(ConnectionError):
        await applying.apply(customer, tree.north["id"], import_id, NOW, FILES)
    monkeypatch.undo()
    assert await Allocation.count().where(Allocation.batch == running["id"]) == 1
    assert (await CsvImport.select(CsvImport.status).where(CsvImport.id == import_id).first())["status"] == "previewed"
    result = await applying.apply(customer, tree.north["id"], import_id, NOW, FILES)
    assert result["renewed"] == 3
    assert await Allocation.count().where(Allocation.batch == running["id"]) == 4


async def test_refusals_leave_nothing(tree):
    await setup_north(tree)
    customer, _ = await actors(tree)
    directory = FILES.directory
    kept_before = set(directory.glob("*"))
    for content, message in [
        ("", "empty"),
        ("PK\x03\x04 workbook", "save it as CSV"),
        ("Name,Phone\nAnn,123\n", "No column of this file holds e-mail addresses"),
    ]:
        with pytest.raises(CsvRefused, match=message):
            await upload(customer, tree, content)
    import_id = await upload(customer, tree)
    before = await CsvImportRow.count()
    with pytest.raises(CsvRefused, match="holds no e-mail addresses"):
        await preview.choose_column(customer, tree.north["id"], import_id, 0, False, NOW, FILES)
    assert await CsvImportRow.count() == before
    assert await CsvImport.count() == 1
    kept = {p.name for p in set(directory.glob("*")) - kept_before}
    assert kept == {(await CsvImport.select(CsvImport.stored_as).first())["stored_as"]}


async def test_a_file_over_the_limit_it_is_handed_is_refused_and_nothing_kept(tree):
    await setup_north(tree)
    customer, _ = await actors(tree)
    small = dataclasses.replace(FILES, max_bytes=1024)
    kept_before = set(small.directory.glob("*"))
    message = (
        "The file is over 1 KB, the largest accepted. Split it into smaller files, or keep only the e-mail column."
    )
    with pytest.raises(CsvRefused) as refused:
        await preview.receive(
            customer, tree.north["id"], "big.csv", io.BytesIO(b"e0@north.example\n" * 100), NOW, small
        )
    assert str(refused.value) == message
    assert set(small.directory.glob("*")) == kept_before and await CsvImport.count() == 0
    assert await preview.receive(customer, tree.north["id"], "u.csv", io.BytesIO(FILE.encode()), NOW, small)


async def test_a_file_of_several_chunks_is_read_whole_and_a_failure_between_them_keeps_nothing(tree, monkeypatch):
    """The next chunk is read while the last one is written: every row arrives
    once, in order, and a write that fails between chunks leaves no import, no
    row and no file behind."""
    await setup_north(tree)
    customer, _ = await actors(tree)
    monkeypatch.setattr(preview, "CHUNK_ROWS", 3)
    import_id = await upload(customer, tree)
    lines = [r["line"] for r in await CsvImportRow.select(CsvImportRow.line).order_by(CsvImportRow.line)]
    assert lines == [2, 3, 4, 5, 6, 8, 9, 10, 11]
    assert (await preview.get_import(customer, tree.north["id"], import_id))["preview"]["counts"] == EXPECTED

    copies = 0
    real_copy = preview.db.copy_rows

    async def second_copy_fails(*args, **kwargs):
        nonlocal copies
        copies += 1
        if copies == 2:
            raise RuntimeError("the connection went away")
        await real_copy(*args, **kwargs)

    monkeypatch.setattr(preview.db, "copy_rows", second_copy_fails)
    imports, rows, kept = await CsvImport.count(), await CsvImportRow.count(), set(FILES.directory.glob("*"))
    with pytest.raises(RuntimeError, match="went away"):
        await upload(customer, tree)
    assert copies == 2
    assert (await CsvImport.count(), await CsvImportRow.count()) == (imports, rows)
    assert set(FILES.directory.glob("*")) == kept


async def test_another_tenants_import_is_not_found(tree):
    await setup_north(tree)
    customer, _ = await actors(tree)
    import_id = await upload(customer, tree)
    stranger = await load_actor(tree.managers["other"]["id"], None)
    with pytest.raises(NotFound):
        await preview.get_import(stranger, tree.north["id"], import_id)
    with pytest.raises(NotFound):
        await applying.apply(stranger, tree.north["id"], import_id, NOW, FILES)
    direct = await load_actor(tree.managers["direct"]["id"], None)
    with pytest.raises(NotFound):
        await preview.get_import(direct, tree.direct["id"], import_id)


_cells = st.one_of(
    st.sampled_from(["e0@north.example", "E1@north.example ", "a0@north.example", "x@elsewhere.example"]),
    st.emails(),
    st.text(max_size=12),
    st.sampled_from(["", '"', ";", "\n", "Eve <e2@north.example>", "smtp:e3@north.example"]),
)


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rows=st.lists(st.lists(_cells, min_size=1, max_size=3), min_size=1, max_size=20),
    delimiter=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
)
async def test_generated_files_every_row_accounted_for_and_preview_equals_renew(tree, rows, delimiter, encoding):
    if not await User.exists().where(User.email == "e0@north.example"):
        await setup_north(tree, free=2)
    customer, _ = await actors(tree)
    out = io.StringIO()
    csv.writer(out, delimiter=delimiter).writerows(rows)
    data = out.getvalue().encode(encoding, errors="replace")
    try:
        import_id = await preview.receive(customer, tree.north["id"], "gen.csv", io.BytesIO(data), NOW, FILES)
    except CsvRefused:
        return
    row = await preview.get_import(customer, tree.north["id"], import_id)
    path = FILES.path_of(row["stored_as"])
    read = sum(1 for _ in reader.rows(path, row["encoding"], row["delimiter"], row["has_header"]))
    assert (
        row["rows"]
        == read
        == sum(row["preview"]["counts"].values())
        == await CsvImportRow.count().where(CsvImportRow.csv_import == import_id)
    )
    result = await applying.apply(customer, tree.north["id"], import_id, NOW, FILES)
    assert result["counts"] == row["preview"]["counts"] and result["changes"] == []


async def _stale(tree, import_id: int, now=NOW) -> bool:
    customer, _ = await actors(tree)
    return preview.is_stale(await preview.get_import(customer, tree.north["id"], import_id), now)


async def test_a_preview_goes_stale_when_the_companys_licences_change_and_fresh_when_counted_again(tree):
    await setup_north(tree)
    customer, _ = await actors(tree)
    import_id = await upload(customer, tree)
    assert not await _stale(tree, import_id)
    await add_user(tree.other_customer, "someone@other-customer.example", role="learner")  # another company
    assert not await _stale(tree, import_id)
    e1 = await User.select(User.id).where(User.email == "e1@north.example").first()
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=(e1["id"],)), NOW)  # renewed elsewhere
    assert await _stale(tree, import_id)
    listing = await preview.company_imports(customer, tree.north["id"], 1, NOW)
    assert [(i["id"], i["stale"]) for i in listing.items] == [(import_id, True)]
    summary = await preview.refresh(customer, tree.north["id"], import_id, NOW)
    assert summary["counts"]["renew"] == 2 and not await _stale(tree, import_id)
    # A new learner of the company, and seats assigned to it, change its licences too.
    await add_user(tree.north, "new@north.example", role="learner")
    assert await _stale(tree, import_id)
    await preview.refresh(customer, tree.north["id"], import_id, NOW)
    await batch(tree, 2, NOW)
    assert await _stale(tree, import_id)


async def test_a_write_that_moves_no_ones_licence_leaves_the_preview_and_the_dashboard_fresh(tree):
    """The tally's triggers follow a change of a user's company, active flag or
    licence end; a write that sets them to what they were (or changes only a
    name) marks nothing stale, on either engine."""
    await setup_north(tree)
    customer, _ = await actors(tree)
    import_id = await upload(customer, tree)
    figure = DashboardFigure.company == tree.north["id"]
    await DashboardFigure.update({DashboardFigure.computed_at: NOW}).where(figure)
    e1 = await User.select().where(User.email == "e1@north.example").first()
    unchanged = {User.company: e1["company"], User.active: e1["active"], User.licence_ends_at: e1["licence_ends_at"]}
    await User.update({**unchanged, User.name: "Renamed"}).where(User.id == e1["id"])
    assert not await _stale(tree, import_id)
    assert (await DashboardFigure.select(DashboardFigure.computed_at).where(figure).first())["computed_at"] == NOW
    await User.update({User.active: False}).where(User.id == e1["id"])
    assert await _stale(tree, import_id)
    assert (await DashboardFigure.select(DashboardFigure.computed_at).where(figure).first())["computed_at"] is None


async def test_renewing_a_stale_preview_counts_again_and_asks_first_then_renews_once(tree):
    running = await setup_north(tree)
    customer, partner = await actors(tree)
    import_id = await upload(customer, tree)
    e1 = await User.select(User.id).where(User.email == "e1@north.example").first()
    await allocation.allocate(partner, tree.north["id"], Selection(user_ids=(e1["id"],)), NOW)
    with pytest.raises(applying.PreviewStale):
        await applying.apply(customer, tree.north["id"], import_id, NOW, FILES, refuse_stale=True)
    assert await Allocation.count().where(Allocation.batch == running["id"]) == 2  # a0 and e1 only
    row = await preview.get_import(customer, tree.north["id"], import_id)
    assert row["status"] == "previewed" and row["preview"]["counts"]["renew"] == 2 and not row["stale"]
    e2 = await User.select(User.id).where(User.email == "e2@north.example").first()
    await allocation.allocate(partner, tree.north["id"], Selection(user_ids=(e2["id"],)), NOW)
    with pytest.raises(applying.PreviewStale):  # the job's path refuses alike, before queueing
        await applying.queue(customer, tree.north["id"], import_id, NOW)
    row = await preview.get_import(customer, tree.north["id"], import_id)
    assert row["status"] == "previewed" and row["preview"]["counts"]["renew"] == 1
    result = await applying.apply(customer, tree.north["id"], import_id, NOW, FILES, refuse_stale=True)
    assert result["renewed"] == 1 and result["changes"] == []
    again = await applying.apply(customer, tree.north["id"], import_id, NOW, FILES, refuse_stale=True)
    assert again == result
    assert await Allocation.count().where(Allocation.batch == running["id"]) == 4


async def test_a_preview_goes_stale_when_the_clock_alone_changes_an_outcome(tree):
    running = await setup_north(tree)
    customer, _ = await actors(tree)
    # soon@ holds a seat of a batch that ends in 5 days: active now, renewable 72 hours before.
    soon = (await add_user(tree.north, "soon@north.example", role="learner"))["id"]
    start = NOW - relativedelta(months=12) + timedelta(days=5)
    short = await batch(tree, 1, start)
    await allocation.allocate(customer, tree.north["id"], Selection(user_ids=(soon,)), start, batch_id=short["id"])
    import_id = await upload(customer, tree, "Email\nsoon@north.example\na0@north.example\n")
    row = await preview.get_import(customer, tree.north["id"], import_id)
    assert row["preview"]["counts"] == {"active": 2}
    flips = short["ends_at"] - timedelta(hours=72)
    assert not preview.is_stale(row, flips - timedelta(seconds=1)) and preview.is_stale(row, flips)
    # Without such a user, the seats' batch ending is when the clock changes it.
    other = await upload(customer, tree, "Email\na0@north.example\ne0@north.example\n")
    row = await preview.get_import(customer, tree.north["id"], other)
    assert not preview.is_stale(row, running["ends_at"] - timedelta(seconds=1))
    assert preview.is_stale(row, running["ends_at"])
