"""Throttling (409), one store behind both dialects, and the substring-search indexes."""

from __future__ import annotations

import uuid

from sqlalchemy import select, text

from keyledger.store.schema import credentials
from tests.support import (
    WINDOW,
    DatabaseFactory,
    Deployment,
    NexudusTenant,
    add,
    add_user_to,
    deploy,
    get_all,
    make_nexudus_tenant,
    make_tenant,
    token_parameters,
    two_instances_sharing_redis,
)


def test_throttled_requests_are_409_with_retry_after(databases: DatabaseFactory) -> None:
    deployment = deploy(databases.new_url(), nexudus_rate_limit=3, nexudus_rate_window_seconds=60)
    try:
        space = make_nexudus_tenant(deployment)
        assert [space.get().status_code for _ in range(3)] == [200, 200, 200]
        throttled = space.get()
        assert throttled.status_code == 409
        assert 1 <= int(throttled.headers["Retry-After"]) <= 60
        body = throttled.json()
        assert body["Status"] == 409
        assert body["WasSuccessful"] is False
        assert body["Message"].startswith("Too many requests")
        other = make_nexudus_tenant(deployment)
        assert other.get().status_code == 200
    finally:
        deployment.close()


def test_each_dialect_shows_only_what_it_can_represent(shared_deployment: Deployment) -> None:
    hotel = make_tenant(shared_deployment)
    space = NexudusTenant(
        shared_deployment.http,
        *add_user_to(shared_deployment, [hotel.business_id]),
        hotel.business_id,
        hotel.enterprise_id,
    )
    (door,) = add(hotel, token_parameters(value="777#"))
    voucher_id = space.create_id(AccessCode="WIFI-1")
    with shared_deployment.store.read() as conn:
        door_row = conn.execute(
            select(credentials.c.id).where(credentials.c.uid == uuid.UUID(door["Id"]))
        ).scalar_one()
    listed = space.get().json()
    assert [r["Id"] for r in listed["Records"]] == [voucher_id]
    assert space.get(f"/{door_row}").status_code == 404
    assert space.get(AccessToken_AccessCode="777").json()["TotalItems"] == 0
    assert space.delete(door_row).status_code == 404
    unique_id = space.get(f"/{voucher_id}").json()["UniqueId"]
    assert get_all(hotel, ResourceAccessTokenIds=[unique_id]) == []
    assert [t["Id"] for t in get_all(hotel, CollidingUtc=WINDOW)] == [door["Id"]]
    assert hotel.mews("delete", Ids=[unique_id]).status_code == 400
    assert space.get(f"/{voucher_id}").status_code == 200


def test_substring_search_uses_an_index(databases: DatabaseFactory) -> None:
    deployment = deploy(databases.new_url())
    try:
        space = make_nexudus_tenant(deployment)
        made = {
            code: space.create_id(AccessCode=code, Description=f"desk {code}")
            for code in ("ABC-123", "xyz-789", "a_c%def", "gone-456")
        }
        renamed = space.put(
            Id=made["xyz-789"],
            BusinessId=space.business_id,
            AccessCode="qqq-555",
            MinutesIncluded=1,
            Description="desk xyz-789",
        )
        assert renamed.status_code == 200
        assert space.delete(made["gone-456"]).status_code == 200
        assert space.get(AccessToken_AccessCode="xyz").json()["TotalItems"] == 0
        assert space.get(AccessToken_AccessCode="QQQ").json()["TotalItems"] == 1
        assert space.get(AccessToken_AccessCode="gone").json()["TotalItems"] == 0
        found = {r["AccessCode"] for r in space.get(AccessToken_AccessCode="c-1").json()["Records"]}
        assert found == {"ABC-123"}
        assert space.get(AccessToken_AccessCode="Q").json()["TotalItems"] == 1  # short: no index
        assert space.get(AccessToken_AccessCode="_c%").json()["TotalItems"] == 1  # literal % and _
        assert space.get(AccessToken_Description="DESK X").json()["TotalItems"] == 1
        with deployment.store.read() as conn:
            if conn.dialect.name == "sqlite":
                plan = conn.execute(
                    text(
                        "EXPLAIN QUERY PLAN SELECT id FROM credentials WHERE id IN "
                        "(SELECT rowid FROM credential_search WHERE code_key LIKE '%c-1%')"
                    )
                ).all()
                assert any("credential_search VIRTUAL TABLE INDEX" in str(row) for row in plan)
        if deployment.store.dialect == "postgresql":
            # On a table of realistic size the planner prefers the trigram index to a scan.
            with deployment.store.write() as conn:
                conn.execute(
                    text(
                        "INSERT INTO credentials (uid, property_id, kind, value, code_key, "
                        "perm_bed, perm_room, perm_floor, perm_building, minutes_included, "
                        "minutes_left, created_utc, updated_utc, created_by, updated_by) "
                        "SELECT gen_random_uuid(), property_id, 'voucher', md5(g::text), "
                        "md5(g::text), false, "
                        "false, false, false, 60, 60, now(), now(), 't', 't' "
                        "FROM generate_series(1, 20000) AS g, "
                        "(SELECT property_id FROM credentials LIMIT 1) AS p"
                    )
                )
                conn.execute(text("ANALYZE credentials"))
            with deployment.store.read() as conn:
                plan = conn.execute(
                    text(
                        "EXPLAIN SELECT id FROM credentials WHERE kind = 'voucher' "
                        "AND deleted_utc IS NULL AND code_key LIKE '%abc-123%'"
                    )
                ).all()
            assert any("ix_credentials_code_key_trgm" in str(row) for row in plan), plan
    finally:
        deployment.close()


def test_two_instances_share_the_nexudus_throttle_through_redis(databases: DatabaseFactory) -> None:
    with two_instances_sharing_redis(databases.new_url(), nexudus_rate_limit=4) as (first, second):
        space = make_nexudus_tenant(first)
        via_second = NexudusTenant(
            second.http, space.email, space.password, space.business_id, space.enterprise_id
        )
        statuses = [(space if n % 2 else via_second).get().status_code for n in range(7)]
        assert statuses.count(200) == 4
        assert statuses.count(409) == 3
