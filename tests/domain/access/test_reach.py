""" "Which doors a credential reaches" is written twice: as the four joins of the door check's one
statement (``access/repository.py``, ``door_view``) and as ``Tree.reach`` (``credentials/
collisions.py``) that the collision rule walks. On random resource trees and tokens, on SQLite
and PostgreSQL, both must name the same resources."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from keyledger.domain.access import repository as access_repository
from keyledger.domain.credentials.collisions import Tree, reach_check
from keyledger.domain.credentials.models import Permissions, ReservationTokenDraft, TokenType
from keyledger.domain.credentials.reservations import add_reservation_tokens
from keyledger.domain.events.models import Actor
from keyledger.domain.properties.models import Scope
from keyledger.domain.properties.service import add_property
from keyledger.domain.resources import repository as resources_repository
from keyledger.domain.resources.models import ResourceDraft, ResourceKind
from keyledger.domain.resources.service import save_resources
from keyledger.kit.clock import utc_now
from keyledger.store import Store
from tests.support import DatabaseFactory, settings_for

KINDS = list(ResourceKind)


@st.composite
def trees(draw: st.DrawFn) -> list[tuple[int | None, ResourceKind]]:
    """A forest as (parent index, kind), parents first; a parent is always of a higher kind
    (a lower rank), as the resource service requires."""
    nodes: list[tuple[int | None, ResourceKind]] = []
    for _ in range(draw(st.integers(min_value=1, max_value=14))):
        kind = draw(st.sampled_from(KINDS))
        parents = [index for index, (_, k) in enumerate(nodes) if k.rank < kind.rank]
        # Mostly under a parent, so that trees four levels deep are common.
        orphan = not parents or draw(st.integers(min_value=0, max_value=4)) == 0
        nodes.append((None if orphan else draw(st.sampled_from(parents)), kind))
    return nodes


@pytest.fixture
def store(databases: DatabaseFactory) -> Iterator[Store]:
    url = databases.new_url()
    store = Store(settings_for(url))
    yield store
    store.dispose()


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@example(  # a full chain, a token at its bed, another without a resource
    tree=[(None, KINDS[0]), (0, KINDS[1]), (1, KINDS[2]), (2, KINDS[3])], held=[3, -1], reader=0
)
@given(
    tree=trees(),
    held=st.lists(st.integers(min_value=-1, max_value=13), min_size=1, max_size=6),
    reader=st.integers(min_value=0, max_value=13),
)
def test_the_door_check_and_the_collision_rule_agree_on_reach(
    store: Store, tree: list[tuple[int | None, ResourceKind]], held: list[int], reader: int
) -> None:
    prop = add_property(store, name="Reach")
    uids = [uuid.uuid4() for _ in tree]
    drafts = [
        ResourceDraft(uid, None if parent is None else uids[parent], kind, f"R{index}")
        for index, (uid, (parent, kind)) in enumerate(zip(uids, tree, strict=True))
    ]
    save_resources(
        store,
        actor=Actor.system(),
        batches={prop: drafts},
        on_reach_change=reach_check(store.sealer),
    )
    now = utc_now()
    # One token per entry of ``held``: at resource ``n`` (modulo the tree), or none for -1; each
    # value its own, so no two collide.
    tokens = add_reservation_tokens(
        store,
        scope=Scope((prop,)),
        actor=Actor.system(),
        drafts=[
            ReservationTokenDraft(
                service_order_id=uuid.uuid4(),
                token_type=TokenType.PIN_CODE,
                value=f"{number}-{index}",
                valid_from=now - timedelta(hours=1),
                valid_to=now + timedelta(hours=1),
                permissions=Permissions(bed=True, room=True, floor=True, building=True),
                resource_id=None if number < 0 else uids[number % len(uids)],
            )
            for index, number in enumerate(held)
        ],
    )
    with store.read() as conn:
        memory = Tree(resources_repository.tree_of(conn, [prop.id]).values())
        for token in tokens:
            (view,) = access_repository.door_view(
                conn,
                properties={prop.id: prop},
                property_ids=[prop.id],
                reader_uid=uids[reader % len(uids)],
                token_type=TokenType.PIN_CODE,
                value=token.value,
                since=now,
                sealer=store.sealer,
            )
            ((candidate, by_sql),) = view.candidates
            assert candidate.uid == token.uid
            by_python = memory.reach(token)
            expected = None if by_python is None else {node.uid for node in by_python}
            assert by_sql == expected
            if token.resource_id is not None:
                assert token.resource_id in by_sql  # type: ignore[operator]
