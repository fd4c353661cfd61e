"""The collision rule: two active reservation tokens with the same Type and Value must never both
open one reader at one instant, or a door check would have two candidates. A write that would
create such a pair is refused (per property, ``collision_check``; on by default).

Two tokens overlap when their validity windows overlap and some reader lies in both their reaches
(the credential's resource and its ancestors; a token without a resource reaches the whole
property) and both carry the permission flag of that reader's kind.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from uuid import UUID

from sqlalchemy import Connection

from keyledger.domain.credentials import reservation_repository as credentials
from keyledger.domain.credentials.models import Credential, flag_for
from keyledger.domain.properties import repository as properties_repository
from keyledger.domain.properties.models import Property
from keyledger.domain.resources import repository as resources
from keyledger.domain.resources.models import Resource, ResourceKind
from keyledger.kit.errors import RuleViolation
from keyledger.kit.sealing import ValueSealer


class Tree:
    """A property's resources in memory, for reach computations."""

    def __init__(self, nodes: Iterable[Resource]) -> None:
        self.nodes = {node.uid: node for node in nodes}

    def reach(self, credential: Credential) -> list[Resource] | None:
        """The credential's resource and its ancestors (None: no resource, the whole property).
        The door check computes the same reach in SQL (``access/repository.py``, four joins, as
        a tree is at most four levels deep by ``ResourceKind.rank``); change both together
        (tests/domain/access/test_reach.py compares them)."""
        if credential.resource_id is None:
            return None
        found: list[Resource] = []
        current: UUID | None = credential.resource_id
        while current is not None and current in self.nodes and len(found) < 16:
            node = self.nodes[current]
            found.append(node)
            current = node.parent_uid
        return found


def _kinds(credential: Credential) -> set[ResourceKind]:
    return {kind for kind in ResourceKind if flag_for(kind, credential.permissions)}


def _validity_overlaps(first: Credential, second: Credential) -> bool:
    assert first.valid_from and first.valid_to and second.valid_from and second.valid_to
    return first.valid_from < second.valid_to and second.valid_from < first.valid_to


def overlapping(first: Credential, second: Credential, tree: Tree) -> bool:
    if first.token_type != second.token_type or first.value != second.value:
        return False
    if not (first.is_active and second.is_active and _validity_overlaps(first, second)):
        return False
    shared = _kinds(first) & _kinds(second)
    if not shared:
        return False
    reach_first, reach_second = tree.reach(first), tree.reach(second)
    if reach_first is None and reach_second is None:
        return True
    if reach_first is None or reach_second is None:
        doors = reach_second if reach_first is None else reach_first
    else:
        common = {node.uid for node in reach_second}
        doors = [node for node in reach_first if node.uid in common]
    assert doors is not None
    return any(door.kind in shared for door in doors)


def refuse_collisions(
    conn: Connection,
    *,
    prop: Property,
    properties: Mapping[int, Property],
    written: Sequence[tuple[int, Credential]],
    sealer: ValueSealer,
) -> None:
    """Raise RuleViolation when a token being written (with its item index) would collide with
    another active token of the property or of the same request."""
    # The switch is read in this transaction, not from the caller's (possibly remembered) scope.
    if not written or not properties_repository.collision_check(conn, prop.id):
        return
    existing = credentials.reservation_tokens_with_values(
        conn,
        properties=properties,
        property_id=prop.id,
        values=list({credential.value for _, credential in written}),
        sealer=sealer,
    )
    tree = Tree(resources.tree_of(conn, [prop.id]).values())
    being_written = {credential.uid for _, credential in written}
    # Only tokens of one Type and Value can collide: compare within those groups.
    others: dict[tuple[object, str], list[Credential]] = {}
    for other in existing:
        if other.uid not in being_written and other.is_active:
            others.setdefault((other.token_type, other.value), []).append(other)
    seen: dict[tuple[object, str], list[tuple[int, Credential]]] = {}
    for index, credential in written:
        key = (credential.token_type, credential.value)
        for other in others.get(key, ()):
            if overlapping(credential, other, tree):
                raise _collision(index, credential, f"token {other.uid}")
        for earlier_index, earlier in seen.get(key, ()):
            if earlier.uid != credential.uid and overlapping(credential, earlier, tree):
                raise _collision(index, credential, f"item {earlier_index} of this request")
        seen.setdefault(key, []).append((index, credential))


def reach_check(sealer: ValueSealer) -> Callable[[Connection, Property, Collection[UUID]], None]:
    """The collision rule for a change of the resource tree (``resources.service``'s
    ``on_reach_change``): a resource created, moved or changed in kind changes what the tokens
    held at it and below it reach, so two tokens with one value that never shared a door could
    come to share one. Those tokens are checked again against the property's, on the tree as
    written in this transaction; the tree writer holds the tree's lock, and every token writer
    reads the tree under it (shared), so neither decides on a tree the other is changing."""

    def check(conn: Connection, prop: Property, changed: Collection[UUID]) -> None:
        if not changed or not properties_repository.collision_check(conn, prop.id):
            return
        nodes = resources.tree_of(conn, [prop.id]).values()
        children: dict[UUID, list[UUID]] = {}
        for node in nodes:
            if node.parent_uid is not None:
                children.setdefault(node.parent_uid, []).append(node.uid)
        below, stack = set(changed), list(changed)
        while stack:
            for child in children.get(stack.pop(), ()):
                if child not in below:
                    below.add(child)
                    stack.append(child)
        held = credentials.active_reservation_tokens_at(
            conn,
            properties={prop.id: prop},
            property_id=prop.id,
            resource_ids=sorted(below),
            sealer=sealer,
        )
        try:
            refuse_collisions(
                conn,
                prop=prop,
                properties={prop.id: prop},
                written=list(enumerate(held)),
                sealer=sealer,
            )
        except RuleViolation:
            raise RuleViolation(
                "This change of the resource tree would let two active tokens with the same "
                "Type and Value, valid at the same time, open the same door; change or delete "
                "one of them first.",
                subject="collision",
            ) from None

    return check


def _collision(index: int, credential: Credential, other: str) -> RuleViolation:
    return RuleViolation(
        f"Item {index}: this {credential.token_type} value collides with {other}: both are "
        "active in overlapping validity and could open the same door.",
        subject="collision",
    )
