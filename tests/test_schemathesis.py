"""schemathesis against keyledger's own OpenAPI description, on a real server on loopback with the
demo records: every operation of every dialect, with valid credentials injected so the examples
reach the core, answers no 5xx, with a documented status code, content type and body schema.

CI runs ``KEYLEDGER_SCHEMATHESIS_EXAMPLES`` (default 100) examples per operation; the full-size
run: ``KEYLEDGER_SCHEMATHESIS_EXAMPLES=400 python -m pytest tests/test_schemathesis.py``.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from keyledger.cli.demo import ACCESS_TOKEN, CLIENT_TOKEN, provision_demo
from tests.mews_schema import assert_valid_mews_response, documented_statuses
from tests.support import MEWS_PATH, DatabaseFactory, deploy, scaled

EXAMPLES = int(os.environ.get("KEYLEDGER_SCHEMATHESIS_EXAMPLES", str(scaled(100))))
# Every operation runs inside this one test: its time limit grows with its size.
pytestmark = [pytest.mark.timeout(300 * max(1, EXAMPLES // 100)), pytest.mark.slow]
BASIC = "Basic " + base64.b64encode(b"example@nexudus.com:Example1234").decode()
MEWS_CREDENTIALS = {"ClientToken": CLIENT_TOKEN, "AccessToken": ACCESS_TOKEN, "Client": "st 1.0"}


@pytest.fixture(scope="module")
def demo_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    factory = DatabaseFactory("sqlite", tmp_path_factory.mktemp("schemathesis"))
    deployment = deploy(
        factory.new_url(),
        mews_rate_limit=0,
        nexudus_rate_limit=0,
        auth_failures_per_caller=0,
        auth_failures_per_account=0,
        auth_failures_per_address=0,
    )
    provision_demo(deployment.store)
    schema = schemathesis.openapi.from_url(f"{deployment.server.url}/openapi.json")
    schema.config.update(base_url=deployment.server.url)
    yield schema
    deployment.close()


schema = schemathesis.pytest.from_fixture("demo_api")


def _authenticate(case: Any) -> None:
    """Valid credentials, so that generated examples reach the core (authentication has tests of
    its own)."""
    headers = dict(case.headers or {})
    if case.path.startswith("/api/connector/"):
        if isinstance(case.body, dict):
            case.body = {**case.body, **MEWS_CREDENTIALS}
    elif case.path.startswith("/api/v1/"):
        headers["Authorization"] = f"Bearer {ACCESS_TOKEN}"
    elif case.path.startswith("/api/spaces/"):
        headers["Authorization"] = BASIC
    case.headers = headers


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=True,
)
def test_every_operation_answers_within_its_description(case: Any) -> None:
    _authenticate(case)
    response = case.call_and_validate(
        checks=[
            not_a_server_error,
            status_code_conformance,
            content_type_conformance,
            response_schema_conformance,
        ]
    )
    operation = case.path.rsplit("/", 1)[1]
    if (
        case.path.startswith(MEWS_PATH)
        and case.method.upper() == "POST"
        and response.content
        and response.status_code in documented_statuses(operation)
    ):
        # Mews answers also fit the schema Mews publishes (../shared/spec); 404 and 413, which
        # the contract adds, have the same shape and are checked against our own description.
        assert_valid_mews_response(operation, response.status_code, response.json())
