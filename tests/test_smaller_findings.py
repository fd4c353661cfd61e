"""Issue 12, finding 7: demo data is not an event; responses are not cached or sniffed; /docs
works offline."""

from __future__ import annotations

import re
from collections.abc import Iterator

import httpx
import pytest
from sqlalchemy import func, select

from keyledger.cli.demo import ACCESS_TOKEN, CLIENT_TOKEN, HOTEL, provision_demo
from keyledger.store.schema import events, resources
from tests.support import MEWS_PATH, NEXUDUS_PATH, DatabaseFactory, Deployment, deploy

DEMO_USER = ("example@nexudus.com", "Example1234")
BEARER = {"Authorization": f"Bearer {ACCESS_TOKEN}"}


def test_demo_data_is_not_an_event(databases: DatabaseFactory) -> None:
    deployment = deploy(databases.new_url())
    try:
        provision_demo(deployment.store)
        provision_demo(deployment.store)  # a restart provisions nothing again
        with deployment.store.read() as conn:
            assert conn.execute(select(func.count()).select_from(resources)).scalar_one() == 5
            assert conn.execute(select(func.count()).select_from(events)).scalar_one() == 0
        listed = deployment.http.get(
            "/api/v1/resources", params={"EnterpriseId": str(HOTEL)}, headers=BEARER
        ).json()["Resources"]
        assert [r["Name"] for r in listed][:3] == ["Main building", "Floor 1", "Room 101"]
        assert deployment.http.get("/api/v1/events", headers=BEARER).json()["Events"] == []
    finally:
        deployment.close()


@pytest.fixture(scope="module")
def demo_server(sqlite_databases: DatabaseFactory) -> Iterator[Deployment]:
    deployment = deploy(sqlite_databases.new_url())
    provision_demo(deployment.store)
    yield deployment
    deployment.close()


def _mews(http: httpx.Client, operation: str, **body: object) -> httpx.Response:
    credentials = {"ClientToken": CLIENT_TOKEN, "AccessToken": ACCESS_TOKEN, "Client": "t 1.0"}
    return http.post(f"{MEWS_PATH}/{operation}", json={**credentials, **body})


def test_no_response_is_stored_or_sniffed(demo_server: Deployment) -> None:
    """Every answer of every dialect, successes (which carry PINs, voucher codes and bearer
    tokens) and errors alike, says no-store and nosniff."""
    http = demo_server.http
    token_grant = {"grant_type": "password", "username": DEMO_USER[0], "password": DEMO_USER[1]}
    responses = {
        "mews getAll (PIN values)": _mews(
            http,
            "getAll",
            EnterpriseIds=[str(HOTEL)],
            ResourceAccessTokenIds=["90eff5aa-36b4-4689-80c0-ab3a00bb412e"],
            Limitation={"Count": 10},
        ),
        "mews error": _mews(http, "getAll"),
        "mews unknown": http.post("/api/connector/v1/nothing"),
        "nexudus list (voucher codes)": http.get(NEXUDUS_PATH, auth=DEMO_USER),
        "nexudus error": http.get(NEXUDUS_PATH, auth=("nobody@example.com", "wrong")),
        "token (bearer secrets)": http.post("/api/token", data=token_grant),
        "token error": http.post("/api/token", data={"grant_type": "nothing"}),
        "v1 check": http.post(
            "/api/v1/access/check",
            json={
                "ResourceId": "65d4b117-4e60-44a3-9580-c582117eff98",
                "Type": "PinCode",
                "Value": "4711#",
                "At": "2020-10-09T10:00:00Z",
            },
            headers=BEARER,
        ),
        "v1 hotspot (voucher)": http.post(
            "/api/v1/hotspot/sessions",
            json={"BusinessId": 12345678, "AccessCode": "00002", "DeviceId": "aa:bb"},
            headers=BEARER,
        ),
        "v1 error": http.get("/api/v1/resources"),
        "healthz": http.get("/healthz"),
        "metrics": http.get("/metrics"),
        "openapi": http.get("/openapi.json"),
        "nowhere": http.get("/nowhere"),
    }
    assert responses["mews getAll (PIN values)"].status_code == 200
    assert responses["token (bearer secrets)"].status_code == 200
    assert responses["nexudus list (voucher codes)"].status_code == 200
    for name, response in responses.items():
        assert response.headers.get_list("cache-control") == ["no-store"], name
        assert response.headers.get_list("x-content-type-options") == ["nosniff"], name


def test_swagger_ui_is_served_from_the_package(demo_server: Deployment) -> None:
    http = demo_server.http
    page = http.get("/docs")
    assert page.status_code == 200
    assert page.headers["x-content-type-options"] == "nosniff"
    assert "no-store" not in page.headers.get("cache-control", "")
    linked = re.findall(r"""(?:src|href)=['"]([^'"]+)['"]""", page.text)
    assert "/docs/assets/swagger-ui-bundle.js" in linked
    assert "/docs/assets/swagger-ui.css" in linked
    assert "//" not in page.text  # nothing from another host
    for path in linked:
        asset = http.get(path)
        assert asset.status_code == 200, path
        assert asset.headers["x-content-type-options"] == "nosniff"
        assert asset.content, path
    script = http.get("/docs/assets/swagger-ui-bundle.js")
    assert "javascript" in script.headers["content-type"]
    assert "SwaggerUIBundle" in script.text
