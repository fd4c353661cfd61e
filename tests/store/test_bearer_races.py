"""Bearer tokens against changes committed while a grant is being decided (issue 11, review of
the refresh rotation): a replay of an old refresh token while its family rotates revokes the pair
the rotation issues too, and a password grant whose password changes meanwhile issues nothing.
Both databases, on the core with real transactions."""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from keyledger.domain.callers import repository
from keyledger.domain.callers import users as user_auth
from keyledger.domain.callers.models import IssuedBearer
from keyledger.domain.callers.users import (
    PasswordCache,
    PasswordVerifier,
    add_user,
    authenticate_bearer,
    issue_bearer_for_password,
    refresh_bearer,
    set_user_password,
)
from keyledger.domain.properties.service import add_property
from keyledger.kit.clock import utc_now
from keyledger.kit.errors import Unauthenticated
from keyledger.kit.hashing import new_api_token, secret_digest
from keyledger.kit.settings import Settings
from keyledger.store import Store
from keyledger.store.schema import bearer_tokens
from tests.support import DatabaseFactory

PASSWORD = "a long password"
EMAIL = "races@example.com"
LIFETIMES = {"access_seconds": 600, "refresh_seconds": 3600}


def _grant(store: Store) -> IssuedBearer:
    """A password grant, as ``POST /api/token`` makes it."""
    return asyncio.run(
        issue_bearer_for_password(
            store,
            PasswordCache(0),
            PasswordVerifier(1),
            email=EMAIL,
            password=PASSWORD,
            **LIFETIMES,
        )
    )


@pytest.fixture
def store(databases: DatabaseFactory) -> Iterator[Store]:
    store = Store(Settings(database_url=databases.new_url()))
    prop = add_property(store, name="Races")
    add_user(
        store,
        email=EMAIL,
        password=PASSWORD,
        business_ids=[prop.business_id],
        roles=["AccessToken-List"],
    )
    yield store
    store.dispose()


def test_a_replay_during_a_rotation_revokes_the_pair_the_rotation_issues(store: Store) -> None:
    first = _grant(store)
    second = refresh_bearer(store, refresh_token=first.refresh_token, **LIFETIMES)
    # A rotation of ``second`` in flight: the old pair revoked and the new one inserted, not yet
    # committed, while the thief replays ``first``.
    third_access = new_api_token()
    in_flight = threading.Event()
    replayed: list[BaseException] = []

    def replay() -> None:
        in_flight.wait()
        try:
            refresh_bearer(store, refresh_token=first.refresh_token, **LIFETIMES)
        except BaseException as error:  # noqa: BLE001 - the outcome is what is checked
            replayed.append(error)

    thief = threading.Thread(target=replay)
    thief.start()
    now = utc_now()
    with store.write() as conn:
        found = repository.bearer_by_refresh(conn, secret_digest(second.refresh_token))
        repository.lock_user(conn, int(found.user_id))
        assert repository.revoke_bearer(conn, int(found.id), now=now) == 1
        repository.insert_bearer(
            conn,
            user_id=int(found.user_id),
            access_digest=secret_digest(third_access),
            refresh_digest=secret_digest(new_api_token()),
            access_expires=now + timedelta(seconds=600),
            refresh_expires=now + timedelta(seconds=3600),
            now=now,
            family_uid=found.family_uid,
        )
        in_flight.set()
        time.sleep(0.5)  # the replay reaches the user's lock (PostgreSQL) or the write turn
    thief.join(timeout=30)
    assert [type(error) for error in replayed] == [Unauthenticated]
    with pytest.raises(Unauthenticated):
        authenticate_bearer(store, token=third_access)


def test_a_password_changed_during_a_grant_issues_no_pair(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    checked = user_auth.authenticate_password

    async def check_then_change(*args: object, **kwargs: object) -> object:
        caller = await checked(*args, **kwargs)  # type: ignore[arg-type]
        set_user_password(store, email=EMAIL, password=f"new {uuid.uuid4()}")
        return caller

    monkeypatch.setattr(user_auth, "authenticate_password", check_then_change)
    with pytest.raises(Unauthenticated):
        _grant(store)
    with store.read() as conn:
        live = conn.execute(
            select(func.count())
            .select_from(bearer_tokens)
            .where(bearer_tokens.c.revoked_utc.is_(None))
        ).scalar_one()
    assert live == 0
