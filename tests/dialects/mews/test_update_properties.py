"""Property: a Mews update changes exactly the properties it names (`{"Value": …}`), keeps every
other one, and a change that would leave the validity empty is refused with nothing changed —
checked over HTTP against a model, for random subsets of fields."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support import Deployment, make_tenant, scaled, token_parameters

BASE = datetime(2033, 1, 1, tzinfo=UTC)
FLAGS = ("Bed", "Room", "Floor", "Building")


def _utc(hours: int) -> str:
    return (BASE + timedelta(hours=hours)).strftime("%Y-%m-%dT%H:%M:%SZ")


changes = st.fixed_dictionaries(
    {},
    optional={
        "Value": st.just("new"),  # made unique below: the property's tokens must not collide
        "ValidityStartUtc": st.integers(0, 100),
        "ValidityEndUtc": st.integers(0, 100),
        "Permissions": st.fixed_dictionaries({}, optional={f: st.booleans() for f in FLAGS}),
    },
)


@settings(
    max_examples=scaled(25),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(start=st.integers(0, 50), length=st.integers(1, 50), change=changes)
def test_an_update_changes_exactly_what_it_names(
    shared_deployment: Deployment, start: int, length: int, change: dict[str, Any]
) -> None:
    # A tenant (an AccessToken) per example: all examples on one would meet its rate limit.
    tenant = make_tenant(shared_deployment)
    value = f"{uuid.uuid4().int % 10**9:09d}#"
    created = tenant.mews(
        "add",
        ResourceAccessTokenParameters=[
            token_parameters(value=value, start=_utc(start), end=_utc(start + length))
        ],
    )
    assert created.status_code == 200, created.text
    before = created.json()["ResourceAccessTokens"][0]
    update: dict[str, Any] = {"ResourceAccessTokenId": before["Id"]}
    expected = dict(before)
    if "Value" in change:
        new_value = f"{uuid.uuid4().int % 10**9:09d}#"
        update["Value"] = {"Value": new_value}
        expected["Value"] = new_value
    for name in ("ValidityStartUtc", "ValidityEndUtc"):
        if name in change:
            update[name] = {"Value": _utc(change[name])}
            expected[name] = _utc(change[name])
    if "Permissions" in change:
        update["Permissions"] = {f: {"Value": v} for f, v in change["Permissions"].items()}
        expected["Permissions"] = {**before["Permissions"], **change["Permissions"]}
    answer = tenant.mews("update", ResourceAccessTokenUpdates=[update])
    after = tenant.mews(
        "getAll", ResourceAccessTokenIds=[before["Id"]], Limitation={"Count": 1}
    ).json()["ResourceAccessTokens"][0]
    if expected["ValidityStartUtc"] >= expected["ValidityEndUtc"]:
        assert answer.status_code == 403, answer.text
        assert after == before  # refused: nothing changed
        return
    assert answer.status_code == 200, answer.text
    unchanged = ("UpdatedUtc",)
    assert {k: v for k, v in after.items() if k not in unchanged} == {
        k: v for k, v in expected.items() if k not in unchanged
    }
