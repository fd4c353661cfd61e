"""The collision rule's pieces (domain/credentials/collisions.py) on tokens and a tree read from
a real SQLite store: ``Tree.reach`` and ``overlapping``."""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import timedelta

import pytest

from keyledger.domain.credentials.collisions import Tree, overlapping
from keyledger.domain.credentials.models import Credential, Permissions
from keyledger.domain.properties.service import add_property
from keyledger.domain.resources import repository as resources_repository
from keyledger.kit.clock import utc_now
from keyledger.store import Store
from tests.support import Building, add_building, add_door_tokens, door_token

NOW = utc_now().replace(microsecond=0)
HOUR = timedelta(hours=1)


@pytest.fixture
def building(sqlite_store: Store) -> Building:
    return add_building(sqlite_store, add_property(sqlite_store, name="Collisions"))


@pytest.fixture
def tree(sqlite_store: Store, building: Building) -> Tree:
    with sqlite_store.read() as conn:
        return Tree(resources_repository.tree_of(conn, [building.property.id]).values())


@pytest.fixture
def token(sqlite_store: Store, building: Building) -> Credential:
    (token,) = add_door_tokens(
        sqlite_store,
        building.property,
        [door_token("42#", NOW, NOW + 2 * HOUR, resource_id=building.room_1)],
    )
    return token


def test_reach_is_the_resource_and_its_ancestors(
    tree: Tree, token: Credential, building: Building
) -> None:
    at = [node.uid for node in tree.reach(replace(token, resource_id=building.bed_a)) or []]
    assert at == [building.bed_a, building.room_1, building.floor, building.building]
    reach_room = tree.reach(token)
    assert reach_room is not None
    assert [node.uid for node in reach_room] == [building.room_1, building.floor, building.building]
    assert tree.reach(replace(token, resource_id=None)) is None  # the whole property
    assert tree.reach(replace(token, resource_id=uuid.uuid4())) == []  # a resource not there


def test_overlap_needs_one_type_and_value(tree: Tree, token: Credential) -> None:
    twin = replace(token, uid=uuid.uuid4())
    assert overlapping(token, twin, tree)
    assert not overlapping(token, replace(twin, value="43#"), tree)
    assert not overlapping(token, replace(twin, token_type="RfidTag"), tree)  # type: ignore[arg-type]


def test_overlap_needs_both_active_and_validity_in_common(tree: Tree, token: Credential) -> None:
    twin = replace(token, uid=uuid.uuid4())
    assert not overlapping(token, replace(twin, deleted_utc=NOW), tree)
    assert not overlapping(replace(token, deleted_utc=NOW), twin, tree)
    # Validity is half-open: one ending as the other begins shares no instant.
    after = replace(twin, valid_from=NOW + 2 * HOUR, valid_to=NOW + 3 * HOUR)
    assert not overlapping(token, after, tree)
    assert overlapping(
        token, replace(after, valid_from=NOW + 2 * HOUR - timedelta(seconds=1)), tree
    )


def test_overlap_needs_a_shared_door_of_a_shared_kind(
    tree: Tree, token: Credential, building: Building
) -> None:
    twin = replace(token, uid=uuid.uuid4())
    other_room = replace(twin, resource_id=building.room_2)
    assert not overlapping(token, other_room, tree)  # two rooms: no door in common
    both_floor = Permissions(room=True, floor=True)
    assert overlapping(
        replace(token, permissions=both_floor), replace(other_room, permissions=both_floor), tree
    )  # the floor they both lie on
    # Flags of different kinds open no door together, even at one room.
    assert not overlapping(token, replace(twin, permissions=Permissions(floor=True)), tree)
    # A bed token reaches room 1 too; with the room flag both open it.
    assert overlapping(token, replace(twin, resource_id=building.bed_a), tree)
    # A token without a resource reaches the whole property: it meets any room token.
    assert overlapping(replace(token, resource_id=None), other_room, tree)
    assert overlapping(replace(token, resource_id=None), replace(twin, resource_id=None), tree)
    assert not overlapping(
        replace(token, resource_id=None, permissions=Permissions(bed=True)), other_room, tree
    )
