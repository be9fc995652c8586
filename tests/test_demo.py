from portal.demo_data import DEMO_LOGINS, DEMO_PASSWORD, DEMO_STAFF, load_demo
from portal.tables import Company, User
from tests.factories import T0
from tests.support import sign_in


async def test_demo_data_fills_an_empty_database_once(client):
    assert await load_demo(T0) is True
    assert await load_demo(T0) is False
    kinds = {k: await Company.count().where(Company.kind == k) for k in ("partner", "sub_partner", "customer")}
    assert kinds["partner"] == 1 and kinds["sub_partner"] == 2 and kinds["customer"] >= 10
    assert await User.count().where(User.role == "learner") >= 200
    # Every company has a manager (a partner's: its partner admin), and every demo login signs in.
    managed = {
        row["company"] for row in await User.select(User.company).where(User.role.is_in(["manager", "partner_admin"]))
    }
    assert managed == {row["id"] for row in await Company.select(Company.id)}
    staff = await User.select(User.email, User.role).where(User.email.is_in([e for e, _, _ in DEMO_STAFF]))
    assert sorted(row["role"] for row in staff) == ["account_manager", "billing", "read_only"]
    for email in [e for e, _, _ in DEMO_LOGINS] + [e for e, _, _ in DEMO_STAFF]:
        client.cookies.clear()
        await sign_in(client, email, DEMO_PASSWORD)
