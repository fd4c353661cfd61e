"""Tenant isolation: a token of one enterprise is invisible and untouchable to another's
AccessToken through every operation, and a foreign id answers exactly like a non-existent one."""

from __future__ import annotations

import uuid

from tests.support import (
    WINDOW,
    Deployment,
    add,
    assert_error,
    get_all,
    make_tenant,
    token_parameters,
)


def test_foreign_tokens_are_invisible_and_untouchable(shared_deployment: Deployment) -> None:
    owner, stranger = make_tenant(shared_deployment), make_tenant(shared_deployment)
    order = uuid.uuid4()
    (token,) = add(owner, token_parameters(service_order=order))
    foreign, missing = token["Id"], str(uuid.uuid4())

    assert get_all(stranger, ResourceAccessTokenIds=[foreign]) == []
    assert get_all(stranger, ServiceOrderIds=[str(order)]) == []
    assert get_all(stranger, CollidingUtc=WINDOW) == []
    assert (
        get_all(
            stranger, UpdatedUtc={"StartUtc": token["UpdatedUtc"], "EndUtc": token["UpdatedUtc"]}
        )
        == []
    )

    def same_answer(operation: str, make_body: object, message: str) -> None:
        assert callable(make_body)
        for_foreign = assert_error(stranger.mews(operation, **make_body(foreign)), 400, message)
        for_missing = assert_error(stranger.mews(operation, **make_body(missing)), 400, message)
        assert for_foreign["Message"].replace(foreign, "ID") == for_missing["Message"].replace(
            missing, "ID"
        )

    same_answer(
        "getAll",
        lambda i: {"CollidingUtc": WINDOW, "Limitation": {"Count": 5, "Cursor": i}},
        "Invalid Cursor",
    )
    same_answer(
        "update",
        lambda i: {
            "ResourceAccessTokenUpdates": [{"ResourceAccessTokenId": i, "Value": {"Value": "0#"}}]
        },
        "Invalid ResourceAccessTokenId",
    )
    same_answer("delete", lambda i: {"Ids": [i]}, "Invalid Ids")

    assert_error(
        stranger.mews(
            "getAll",
            CollidingUtc=WINDOW,
            EnterpriseIds=[str(owner.enterprise_id)],
            Limitation={"Count": 5},
        ),
        403,
        "Enterprise",
    )
    assert_error(
        stranger.mews(
            "add",
            ResourceAccessTokenParameters=[token_parameters()],
            EnterpriseId=str(owner.enterprise_id),
        ),
        403,
        "Enterprise",
    )
    # A stranger adding a token for the owner's service order gets its own, separate token.
    (own,) = add(stranger, token_parameters(service_order=order))
    assert own["EnterpriseId"] == str(stranger.enterprise_id)
    # The owner's token is exactly as it was.
    assert get_all(owner, ServiceOrderIds=[str(order)]) == [token]
