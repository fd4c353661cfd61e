"""Issue 11, findings 5 to 8 and 10, each case as the review reported it: every bad input a 4xx
in its dialect's shape with a Request-Id, nothing written, on both databases."""

from __future__ import annotations

import json
import socket
import unicodedata
import uuid
from typing import Any

import httpx
import pytest
import structlog
from sqlalchemy import func, insert, select
from sqlalchemy.exc import DBAPIError
from starlette.requests import Request
from structlog.testing import capture_logs

from keyledger.store.schema import credentials, events
from keyledger.web import routing as common
from tests.support import (
    MEWS_PATH,
    Deployment,
    NexudusTenant,
    add_user_to,
    make_nexudus_tenant,
    make_tenant,
)

INT32_MAX = 2**31 - 1


def _nexudus_error(response: httpx.Response, status: int = 400) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["request-id"]
    body: dict[str, Any] = response.json()
    assert body["WasSuccessful"] is False
    assert body["Status"] == status
    assert "Traceback" not in response.text
    return body


def _token_error(response: httpx.Response, status: int, error: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["request-id"]
    assert response.headers["content-type"] == "application/json"
    body = response.json()
    assert set(body) == {"error", "error_description"}
    assert body["error"] == error


def _written(deployment: Deployment) -> tuple[int, int]:
    with deployment.store.read() as conn:
        return (
            int(conn.execute(select(func.count()).select_from(credentials)).scalar_one()),
            int(conn.execute(select(func.count()).select_from(events)).scalar_one()),
        )


def _minutes(space: NexudusTenant, voucher_id: int) -> tuple[int, int]:
    body = space.get(f"/{voucher_id}").json()
    return body["MinutesIncluded"], body["MinutesLeft"]


# ---- 5. integer bounds ----


def test_integers_beyond_their_columns_are_refused(space: NexudusTenant) -> None:
    """Create with MinutesIncluded or UserLimit = 2^31, PUT with 2^40, BULK_CREATE with
    Minutes = 2^40, list filters on MinutesLeft/UserLimit = 2^40: a 400 each; 2^31-1 fits."""
    body = _nexudus_error(space.create(MinutesIncluded=2**31))
    assert body["Errors"][0]["PropertyName"] == "MinutesIncluded"
    _nexudus_error(space.create(UserLimit=2**31))
    voucher = space.create_id(MinutesIncluded=INT32_MAX, UserLimit=INT32_MAX)
    assert _minutes(space, voucher) == (INT32_MAX, INT32_MAX)
    code = space.get(f"/{voucher}").json()["AccessCode"]
    replaced = space.put(
        Id=voucher, BusinessId=space.business_id, AccessCode=code, MinutesIncluded=2**40
    )
    _nexudus_error(replaced)
    assert _minutes(space, voucher) == (INT32_MAX, INT32_MAX)
    before = space.get().json()["TotalItems"]
    bulk = _nexudus_error(space.command("BULK_CREATE", Count=2, Minutes=2**40))
    assert bulk["Errors"][0]["PropertyName"] == "Minutes"
    assert space.get().json()["TotalItems"] == before
    for name in (
        "AccessToken_MinutesLeft",
        "AccessToken_UserLimit",
        "From_AccessToken_MinutesLeft",
        "To_AccessToken_UserLimit",
    ):
        found = _nexudus_error(space.get(**{name: str(2**40)}))
        assert found["Errors"][0]["PropertyName"] == name
    assert space.get(AccessToken_MinutesLeft=str(INT32_MAX)).json()["TotalItems"] == 1


def test_add_minutes_past_the_bound_is_refused_and_changes_nothing(space: NexudusTenant) -> None:
    """ADD_MINUTES past 2^31-1 (SQLite had reached 9,007,199,264,740,982 minutes)."""
    voucher = space.create_id(MinutesIncluded=INT32_MAX - 5)
    refused = _nexudus_error(space.command("ADD_MINUTES", [voucher], Minutes=10))
    assert "2147483647" in refused["Message"]
    assert _minutes(space, voucher) == (INT32_MAX - 5, INT32_MAX - 5)
    for _ in range(3):  # repeated top-ups stop at the bound
        space.command("ADD_MINUTES", [voucher], Minutes=5)
    assert _minutes(space, voucher) == (INT32_MAX, INT32_MAX)


def test_a_database_error_is_logged_without_its_values(
    shared_deployment: Deployment, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 500's log line carried SQLAlchemy's statement parameters (voucher codes): engines
    hide parameters, and a database error's text (a unique violation names the key) is not
    logged at all."""
    space = make_nexudus_tenant(shared_deployment)
    code = f"SECRET-{uuid.uuid4().hex[:10]}"
    voucher = space.create_id(AccessCode=code)
    with shared_deployment.store.read() as conn:
        row = dict(
            conn.execute(select(credentials).where(credentials.c.id == voucher)).one()._mapping
        )
    row.pop("id")
    row["uid"] = uuid.uuid4()
    with pytest.raises(DBAPIError) as raised, shared_deployment.store.write() as conn:
        conn.execute(insert(credentials), row)  # the same live code again
    assert code not in str(raised.value).split("\n[SQL")[-1].split("DETAIL")[0]
    assert "[parameters:" not in str(raised.value)
    scope = {"type": "http", "method": "POST", "path": "/x", "headers": [], "query_string": b""}
    with capture_logs() as captured:
        monkeypatch.setattr(common, "log", structlog.get_logger("keyledger.dialect"))
        common.log_unexpected(Request(scope), raised.value)
    logged = json.dumps(captured, default=repr)
    assert "unexpected_error" in logged
    assert "IntegrityError" in logged
    assert "exc_info" not in logged
    assert code not in logged


# ---- 6. NUL characters ----


def test_a_basic_email_with_nul_is_an_authentication_failure_counted_by_the_throttle(
    shared_deployment: Deployment,
) -> None:
    email = f"nul-{uuid.uuid4().hex[:8]}\x00@example.com"
    statuses = []
    for _ in range(11):
        response = shared_deployment.http.get(
            "/api/spaces/accesstokens", auth=(email, "a long password")
        )
        statuses.append(response.status_code)
        _nexudus_error(response, response.status_code)
    assert statuses == [401] * 10 + [409]


def test_token_with_nul_in_the_username_is_a_json_error(shared_deployment: Deployment) -> None:
    response = shared_deployment.http.post(
        "/api/token",
        data={"grant_type": "password", "username": "a\x00b@example.com", "password": "x"},
    )
    _token_error(response, 400, "invalid_grant")


def test_a_text_search_with_nul_is_refused(shared_deployment: Deployment) -> None:
    """Any Nexudus text search containing %00 (PostgreSQL: 500; SQLite: every voucher)."""
    space = make_nexudus_tenant(shared_deployment)
    space.create_id(Description="one")
    for name in ("AccessToken_Description", "AccessToken_AccessCode", "AccessToken_SystemId"):
        found = shared_deployment.http.get(f"/api/spaces/accesstokens?{name}=%00", auth=space.auth)
        body = _nexudus_error(found)
        assert body["Errors"][0]["PropertyName"] == name
        assert "NUL" in body["Message"]


# ---- 7. extreme timestamps ----


def test_extreme_times_in_list_filters(space: NexudusTenant) -> None:
    """Day ranges ending past year 9999 end at its last second; instants outside years 1..9999
    in UTC are a 400."""
    far = space.create_id(ValidFrom="2020-01-01T00:00:00Z", ValidTo="9999-12-31T23:59:59Z")
    near = space.create_id(ValidFrom="0001-01-01T00:00:00Z", ValidTo="2030-01-01T00:00:00Z")
    found = space.get(AccessToken_ValidTo="9999-12-31").json()
    assert [r["Id"] for r in found["Records"]] == [far]
    found = space.get(To_AccessToken_ValidTo="9999-12-31").json()
    assert {r["Id"] for r in found["Records"]} == {far, near}
    for name, text in (
        ("From_AccessToken_ValidTo", "9999-12-31T23:59:59-01:00"),
        ("AccessToken_ValidFrom", "0001-01-01T00:00:00+01:00"),
    ):
        body = _nexudus_error(space.get(**{name: text}))
        assert body["Errors"][0]["PropertyName"] == name
    found = space.get(AccessToken_ValidFrom="0001-01-01T00:00:00Z").json()
    assert [r["Id"] for r in found["Records"]] == [near]


def test_extreme_times_in_writes(shared_deployment: Deployment) -> None:
    space = make_nexudus_tenant(shared_deployment)
    tenant = make_tenant(shared_deployment)
    made = space.create_id(ValidTo="9999-12-31")
    assert space.get(f"/{made}").json()["ValidTo"].startswith("9999-12-31")
    before = _written(shared_deployment)
    _nexudus_error(space.create(ValidTo="9999-12-31T23:59:59-01:00"))
    _nexudus_error(space.create(ValidFrom="0001-01-01T00:00:00+01:00"))
    _nexudus_error(space.command("EXTEND_VALIDITY", [made], ValidTo="9999-12-31T23:00:00-02:00"))
    for start, end in (
        ("0001-01-01T00:00:00+01:00", "2030-01-01T00:00:00Z"),
        ("2030-01-01T00:00:00Z", "9999-12-31T23:59:59-01:00"),
    ):
        response = tenant.mews(
            "add",
            ResourceAccessTokenParameters=[
                {
                    "ServiceOrderId": str(uuid.uuid4()),
                    "Type": "PinCode",
                    "Value": "8642#",
                    "ValidityStartUtc": start,
                    "ValidityEndUtc": end,
                    "Permissions": {"Room": {"Value": True}},
                }
            ],
        )
        assert response.status_code == 400, response.text
        assert response.json()["RequestId"] == response.headers["request-id"]
    assert _written(shared_deployment) == before


# ---- 8. plain-text 500s without a Request-Id ----


def test_token_bodies_over_the_limit_and_any_fault_answer_in_json(
    shared_deployment: Deployment,
) -> None:
    limit = shared_deployment.settings.max_body_bytes
    response = shared_deployment.http.post(
        "/api/token",
        content=b"grant_type=password&username=x&password=" + b"y" * (limit + 1),
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    _token_error(response, 413, "invalid_request")
    response = shared_deployment.http.post(
        "/api/token",
        content=b"grant_type=password&username=x&password=" + b"y" * 65 * 1024,
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    _token_error(response, 400, "invalid_grant")  # over the old 64 KB: read, refused normally
    response = shared_deployment.http.post(
        "/api/token",
        content=b"grant_type=password&username=%ED%A0%80&password=x",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    _token_error(response, 400, "invalid_request")


@pytest.mark.parametrize("escape", ["\\ud800", "\\udfff", "\\u0001", "\\b"])
def test_lone_surrogates_and_control_characters_in_json_are_refused_everywhere(
    shared_deployment: Deployment, escape: str
) -> None:
    space = make_nexudus_tenant(shared_deployment)
    tenant = make_tenant(shared_deployment)
    before = _written(shared_deployment)
    created = (
        f'{{"BusinessId": {space.business_id}, "AccessCode": "S{escape}1", "MinutesIncluded": 5}}'
    )
    headers = {"Content-Type": "application/json"}
    for method in ("POST", "PUT"):
        response = shared_deployment.http.request(
            method,
            "/api/spaces/accesstokens",
            content=created.replace("{", '{"Id": 1, ', 1) if method == "PUT" else created,
            headers=headers,
            auth=space.auth,
        )
        _nexudus_error(response)
    credentials_json = (
        f'{{"ClientToken": "{tenant.client_token}", "AccessToken": "{tenant.access_token}", '
        f'"Client": "x{escape}"}}'
    )
    response = shared_deployment.http.post(
        f"{MEWS_PATH}/getAll", content=credentials_json, headers=headers
    )
    assert response.status_code == 400, response.text
    assert response.json()["RequestId"] == response.headers["request-id"]
    response = shared_deployment.http.post(
        "/api/v1/hotspot/sessions",
        content=f'{{"BusinessId": {tenant.business_id}, "AccessCode": "a{escape}", '
        '"DeviceId": "d"}',
        headers={**headers, "Authorization": f"Bearer {tenant.access_token}"},
    )
    assert response.status_code == 400, response.text
    assert response.json()["Error"] == "InvalidInput"
    assert _written(shared_deployment) == before


# ---- 10. look-alike voucher codes ----


def wide(text: str) -> str:
    """``text`` in fullwidth forms (what some phone keyboards type)."""
    return "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in text)


NFC = unicodedata.normalize("NFC", "Café-7Q")
NFD = unicodedata.normalize("NFD", "Café-7Q")


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (NFC, NFD),
        ("123456", wide("123456")),
        ("ABCDEF", "abcdef"),
        ("STRASSE1", "straße1"),
    ],
    ids=["nfc-nfd", "fullwidth", "case", "casefold"],
)
def test_look_alike_codes_are_one_code(
    shared_deployment: Deployment, first: str, second: str
) -> None:
    space = make_nexudus_tenant(shared_deployment)
    made = space.create_id(AccessCode=first)
    _nexudus_error(space.create(AccessCode=second))
    found = space.get(AccessToken_AccessCode=second).json()
    assert [r["Id"] for r in found["Records"]] == [made]
    other = space.create_id()
    renamed = space.put(
        Id=other, BusinessId=space.business_id, AccessCode=second, MinutesIncluded=60
    )
    _nexudus_error(renamed)
    # the voucher itself may change how its code is written
    rewritten = space.put(
        Id=made, BusinessId=space.business_id, AccessCode=second, MinutesIncluded=60
    )
    assert rewritten.status_code == 200, rewritten.text


@pytest.mark.parametrize(
    "code",
    [
        "\u200b",
        "AB\u200bC",
        " ABC",
        "ABC ",
        "A\u00adB",
        "\u202eAB",
        "\ufdfa" * 20,
        "ZQTEST1\ufe0f",
        "ZQ\u034fTEST1",
        "AB\u3164",
        "X\U000e0100",
        "\u0405QTEST1",
    ],
    ids=[
        "zwsp",
        "inner zwsp",
        "leading space",
        "trailing space",
        "soft hyphen",
        "bidi",
        "long",
        "variation selector",
        "grapheme joiner",
        "hangul filler",
        "ideographic variation selector",
        "cyrillic among latin",
    ],
)
def test_codes_with_invisible_characters_edge_spaces_or_too_long_are_refused(
    space: NexudusTenant, code: str
) -> None:
    body = _nexudus_error(space.create(AccessCode=code))
    assert body["Errors"][0]["PropertyName"] == "AccessCode"


def test_search_folds_case_alike_on_both_databases(space: NexudusTenant) -> None:
    made = space.create_id(AccessCode=NFD.upper(), Description="Le CAFÉ de la Gare")
    for term in ("é", "É", "café", unicodedata.normalize("NFD", "CAFÉ"), wide("CAFE") + "\u0301"):
        found = space.get(AccessToken_Description=term).json()
        assert [r["Id"] for r in found["Records"]] == [made], term
    for term in ("É-7", NFD.lower(), wide("CAF") + "É-" + wide("7Q")):
        found = space.get(AccessToken_AccessCode=term).json()
        assert [r["Id"] for r in found["Records"]] == [made], term
    shown = space.get(f"/{made}").json()["AccessCode"]
    assert shown == unicodedata.normalize("NFKC", NFD.upper())


def test_hotspot_log_in_takes_the_code_as_a_person_types_it(
    shared_deployment: Deployment,
) -> None:
    hotel = make_tenant(shared_deployment)
    space = NexudusTenant(
        shared_deployment.http,
        *add_user_to(shared_deployment, [hotel.business_id]),
        hotel.business_id,
        hotel.enterprise_id,
    )
    space.create_id(AccessCode=wide("W") + "ifi-" + NFC, MinutesIncluded=30)
    response = shared_deployment.http.post(
        "/api/v1/hotspot/sessions",
        json={
            "BusinessId": hotel.business_id,
            "AccessCode": "wifi-" + NFD.lower(),
            "DeviceId": "d",
        },
        headers={"Authorization": f"Bearer {hotel.access_token}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["MinutesLeft"] == 30


def test_a_raw_del_in_json_is_refused_like_an_escaped_one(shared_deployment: Deployment) -> None:
    """DEL (0x7f) is valid JSON and valid UTF-8 when sent raw: it is refused all the same."""
    space = make_nexudus_tenant(shared_deployment)
    before = _written(shared_deployment)
    body = f'{{"BusinessId": {space.business_id}, "AccessCode": "12\x7f34", "MinutesIncluded": 5}}'
    response = shared_deployment.http.post(
        "/api/spaces/accesstokens",
        content=body.encode(),
        headers={"Content-Type": "application/json"},
        auth=space.auth,
    )
    _nexudus_error(response)
    assert _written(shared_deployment) == before


def test_a_single_script_code_in_any_script_is_a_code(space: NexudusTenant) -> None:
    for code in ("東京タワー1", "ΑΒΓ-1", "한국123", "Café-9"):
        assert space.create(AccessCode=code).status_code == 200, code


def test_hotspot_log_in_ignores_spaces_a_keyboard_adds(shared_deployment: Deployment) -> None:
    hotel = make_tenant(shared_deployment)
    space = NexudusTenant(
        shared_deployment.http,
        *add_user_to(shared_deployment, [hotel.business_id]),
        hotel.business_id,
        hotel.enterprise_id,
    )
    space.create_id(AccessCode="SPACE-42", MinutesIncluded=30)
    response = shared_deployment.http.post(
        "/api/v1/hotspot/sessions",
        json={"BusinessId": hotel.business_id, "AccessCode": " space-42 ", "DeviceId": "d"},
        headers={"Authorization": f"Bearer {hotel.access_token}"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["MinutesLeft"] == 30


def test_unknown_paths_and_methods_answer_in_the_dialects_shape(
    shared_deployment: Deployment,
) -> None:
    """No framework ``{"detail": …}`` body anywhere: /api/v1 answers its own 404 shape, the
    token endpoint an RFC 6749 body for a method other than POST."""
    http = shared_deployment.http
    for method, path in (("GET", "/api/v1/nosuch"), ("DELETE", "/api/v1/hotspot/sessions")):
        response = http.request(method, path)
        assert response.status_code == 404, response.text
        body = response.json()
        assert (body["Status"], body["Error"]) == (404, "NotFound")
        assert body["RequestId"] == response.headers["request-id"]
    response = http.get("/api/token")
    _token_error(response, 405, "invalid_request")
    assert response.headers["allow"] == "POST"


def _raw_exchange(deployment: Deployment, request: bytes) -> tuple[int, dict[str, str], bytes]:
    """Send bytes no HTTP client would send; the status, headers and body of the answer."""
    url = httpx.URL(deployment.server.url)
    with socket.create_connection((url.host, url.port or 80), timeout=10) as sock:
        sock.sendall(request)
        received = b""
        while chunk := sock.recv(65536):
            received += chunk
    head, _, body = received.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines)}
    return int(status_line.split()[1]), headers, body


def test_a_request_httptools_cannot_parse_answers_json_in_the_dialects_shape(
    shared_deployment: Deployment,
) -> None:
    """A malformed Content-Length (found by schemathesis with a newer Hypothesis) was answered
    by uvicorn in text/plain; now each dialect's 400 shape, with a Request-Id, and nothing
    written."""
    before = _written(shared_deployment)
    for path, shape in (
        ("/api/spaces/accesstokens/12", {"Status", "Message", "Value", "WasSuccessful", "Errors"}),
        ("/api/token", {"Status", "Message", "Value", "WasSuccessful", "Errors"}),
        ("/api/connector/v1/resourceAccessTokens/getAll", {"Message", "RequestId"}),
        ("/api/v1/resources", {"Status", "Error", "Message", "RequestId"}),
    ):
        status, headers, body = _raw_exchange(
            shared_deployment,
            f"GET {path} HTTP/1.1\r\nHost: x\r\ncontent-length: C._|9`5\r\n\r\n".encode(),
        )
        assert (status, headers["content-type"]) == (400, "application/json"), body
        answer = json.loads(body)
        assert set(answer) == shape
        assert "not valid HTTP/1.1" in answer["Message"]
        assert uuid.UUID(headers["request-id"])
        if "RequestId" in answer:
            assert answer["RequestId"] == headers["request-id"]
    assert _written(shared_deployment) == before
