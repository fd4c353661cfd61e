"""Rules for the resource tree: a parent exists in the same property and is of a higher kind
(Building > Floor > Room > Bed), so the tree has no cycles; a resource with children cannot go."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from datetime import datetime
from uuid import UUID

from sqlalchemy import Connection

from keyledger.domain.events import models as records
from keyledger.domain.events import repository as events
from keyledger.domain.events.models import Actor
from keyledger.domain.properties.models import Property, Scope
from keyledger.domain.resources import repository
from keyledger.domain.resources.models import Resource, ResourceDraft
from keyledger.kit.clock import utc_now
from keyledger.kit.errors import InvalidInput, ResourceNotFound, RuleViolation
from keyledger.store import Store
from keyledger.store.locks import advisory_key, serialise_on


def _check_tree(tree: Mapping[UUID, Resource], changed: Sequence[UUID]) -> None:
    for uid in changed:
        resource = tree[uid]
        if not resource.name.strip() or len(resource.name) > 200:
            raise InvalidInput(f"Resource {uid}: a name has 1 to 200 characters.", subject="name")
        if resource.parent_uid is None:
            continue
        parent = tree.get(resource.parent_uid)
        if parent is None:
            raise InvalidInput(
                f"Resource {uid}: parent {resource.parent_uid} is not a resource of this property.",
                subject="parent",
            )
        if parent.kind.rank >= resource.kind.rank:
            raise RuleViolation(
                f"Resource {uid}: a {resource.kind} cannot be inside a {parent.kind}.",
                subject="kind",
            )
    for resource in tree.values():  # a child must stay below its parent after a kind change
        parent = tree.get(resource.parent_uid) if resource.parent_uid else None
        if parent is not None and parent.kind.rank >= resource.kind.rank:
            raise RuleViolation(
                f"Resource {resource.uid}: a {resource.kind} cannot be inside a {parent.kind}.",
                subject="kind",
            )


#: Called in the write transaction with the resources whose place in the tree changed (new,
#: moved, or of another kind): the access rules that depend on the tree check them
#: (``access.collisions.reach_check``). Required, so that no caller can skip them.
ReachCheck = Callable[[Connection, Property, Collection[UUID]], None]


def save_resources(
    store: Store,
    *,
    actor: Actor,
    batches: Mapping[Property, Sequence[ResourceDraft]],
    on_reach_change: ReachCheck,
) -> list[Resource]:
    """Create or replace resources of one or more properties, atomically."""
    now = utc_now()
    saved: list[Resource] = []
    with store.write() as conn:
        # A property's tree is checked whole, then written: its writers take turns (an advisory
        # lock per property on PostgreSQL, in key order), so a save under a parent and the
        # parent's deletion never both succeed.
        serialise_on(conn, (advisory_key("tree", prop.id) for prop in batches))
        for prop, drafts in batches.items():
            tree = {uid: r for (_, uid), r in repository.tree_of(conn, [prop.id]).items()}
            before = dict(tree)
            for draft in drafts:
                tree[draft.uid] = Resource(
                    prop.id, draft.uid, draft.parent_uid, draft.kind, draft.name
                )
            _check_tree(tree, [draft.uid for draft in drafts])
            for draft in drafts:
                repository.upsert(conn, tree[draft.uid], now=now)
                saved.append(tree[draft.uid])
            on_reach_change(
                conn,
                prop,
                [
                    draft.uid
                    for draft in drafts
                    if draft.uid not in before
                    or (before[draft.uid].parent_uid, before[draft.uid].kind)
                    != (draft.parent_uid, draft.kind)
                ],
            )
            events.append_many(
                conn,
                [
                    records.resource_saved(
                        property_id=prop.id,
                        resource_uid=draft.uid,
                        kind=str(draft.kind),
                        parent_uid=draft.parent_uid,
                    )
                    for draft in drafts
                ],
                actor=actor,
                now=now,
            )
    return saved


def list_resources(store: Store, *, scope: Scope) -> list[Resource]:
    with store.read() as conn:
        tree = repository.tree_of(conn, scope.property_ids)
    return in_tree_order(tree.values())


def in_tree_order(resources: Iterable[Resource]) -> list[Resource]:
    """Parents before children (by kind), then by property and id: re-importable as it is."""
    return sorted(resources, key=lambda r: (r.property_id, r.kind.rank, str(r.uid)))


def ambiguous_resource(uid: UUID) -> InvalidInput:
    """A portfolio token named a resource uid that more than one of its properties holds."""
    return InvalidInput(
        f"Resource {uid} exists in more than one enterprise of the token: give EnterpriseId.",
        subject="enterprise",
    )


def _one(found: list[Resource], uid: UUID) -> Resource:
    """The one resource ``uid`` in scope: none is not found; several (a portfolio token whose
    properties each hold ``uid``) must be told apart by EnterpriseId, never picked."""
    if not found:
        raise ResourceNotFound(f"No resource {uid} in scope.", subject="resource")
    if len(found) > 1:
        raise ambiguous_resource(uid)
    return found[0]


def find_resource(store: Store, *, scope: Scope, uid: UUID) -> Resource:
    with store.read() as conn:
        return _one(repository.find(conn, property_ids=scope.property_ids, uid=uid), uid)


def delete_resource(store: Store, *, scope: Scope, actor: Actor, uid: UUID) -> None:
    with store.write() as conn:
        found = _one(repository.find(conn, property_ids=scope.property_ids, uid=uid), uid)
        serialise_on(conn, [advisory_key("tree", found.property_id)])
        tree = repository.tree_of(conn, [found.property_id])
        children = [r.uid for r in tree.values() if r.parent_uid == uid]
        if children:
            raise RuleViolation(
                f"Resource {uid} has {len(children)} child resource(s); delete them first.",
                subject="resource",
            )
        repository.remove(conn, property_id=found.property_id, uid=uid)
        events.append(
            conn,
            records.resource_deleted(property_id=found.property_id, resource_uid=uid),
            actor=actor,
            now=utc_now(),
        )


def import_resources(
    conn: Connection, *, prop: Property, drafts: Sequence[ResourceDraft], now: datetime
) -> None:
    """Write resources (parents first) under the tree rule, without events: records that existed
    before this store saw them (the demo's building, ``cli/demo.py``), whose reach concerns no
    token yet. Runs in the caller's write transaction."""
    serialise_on(conn, [advisory_key("tree", prop.id)])
    tree = {uid: r for (_, uid), r in repository.tree_of(conn, [prop.id]).items()}
    for draft in drafts:
        tree[draft.uid] = Resource(prop.id, draft.uid, draft.parent_uid, draft.kind, draft.name)
    _check_tree(tree, [draft.uid for draft in drafts])
    for draft in drafts:
        repository.upsert(conn, tree[draft.uid], now=now)
