"""Cursor pagination: newest first, every token exactly once, stable under concurrent inserts."""

from __future__ import annotations

from typing import Any

from tests.support import WINDOW, Tenant, add, token_parameters


def _page(tenant: Tenant, count: int, cursor: str | None) -> dict[str, Any]:
    response = tenant.mews(
        "getAll", CollidingUtc=WINDOW, Limitation={"Count": count, "Cursor": cursor}
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def test_traversal_of_2100_tokens_sees_each_once_newest_first_despite_inserts(
    tenant: Tenant,
) -> None:
    original: set[str] = set()
    for batch, size in enumerate((1000, 1000, 100)):
        made = add(tenant, *[token_parameters(value=f"{batch}-{n}#") for n in range(size)])
        original |= {t["Id"] for t in made}
    assert len(original) == 2100

    seen: list[dict[str, Any]] = []
    cursor: str | None = None
    pages = 0
    while True:
        body = _page(tenant, 97, cursor)
        tokens = body["ResourceAccessTokens"]
        if not tokens:
            assert body["Cursor"] is None
            break
        assert body["Cursor"] == tokens[-1]["Id"]
        seen.extend(tokens)
        cursor = body["Cursor"]
        pages += 1
        # New tokens arrive between pages; they are newer than everything already paged.
        add(tenant, token_parameters(), token_parameters())

    seen_ids = [t["Id"] for t in seen]
    assert len(seen_ids) == len(set(seen_ids)), "a token was returned twice"
    assert original <= set(seen_ids)
    assert pages >= 2100 // 97
    keys = [(t["CreatedUtc"], t["Id"]) for t in seen]
    assert keys == sorted(keys, reverse=True), "not newest first"


def test_cursor_of_the_last_page_returns_an_empty_page(tenant: Tenant) -> None:
    tokens = add(tenant, token_parameters(), token_parameters(), token_parameters())
    first = _page(tenant, 2, None)
    second = _page(tenant, 2, first["Cursor"])
    third = _page(tenant, 2, second["Cursor"])
    assert len(first["ResourceAccessTokens"]) == 2
    assert len(second["ResourceAccessTokens"]) == 1
    assert third == {"ResourceAccessTokens": [], "Cursor": None}
    paged = {t["Id"] for t in first["ResourceAccessTokens"] + second["ResourceAccessTokens"]}
    assert paged == {t["Id"] for t in tokens}
