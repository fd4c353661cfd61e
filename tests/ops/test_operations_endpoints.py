"""Health, readiness, metrics and the OpenAPI description."""

from __future__ import annotations

import json
import re
import subprocess
import sys

from sqlalchemy import text

from keyledger.kit.settings import Settings
from keyledger.web.app import create_app
from tests.support import REPO, DatabaseFactory, Deployment, Tenant, deploy


def test_health_and_readiness(shared_deployment: Deployment) -> None:
    assert shared_deployment.http.get("/healthz").json() == {"status": "ok", "reason": None}
    ready = shared_deployment.http.get("/readyz")
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "reason": None}
    assert ready.headers["Request-Id"]


def test_readiness_reports_pending_migrations(databases: DatabaseFactory) -> None:
    deployment = deploy(databases.new_url())
    try:
        with deployment.store.write() as conn:
            conn.execute(text("UPDATE alembic_version SET version_num = 'old'"))
        response = deployment.http.get("/readyz")
        assert response.status_code == 503
        assert response.json() == {"status": "unavailable", "reason": "migrations pending"}
    finally:
        deployment.close()


def test_metrics_count_requests_by_dialect_operation_and_status(tenant: Tenant) -> None:
    def count(status: str) -> float:
        metrics = tenant.http.get("/metrics").text
        pattern = (
            r'keyledger_requests_total\{dialect="mews",operation="mews_resourceAccessTokens_add",'
            rf'status="{status}"\}} ([\d.]+)'
        )
        found = re.search(pattern, metrics)
        return float(found.group(1)) if found else 0.0

    before_ok, before_bad = count("200"), count("400")
    tenant.mews("add", ResourceAccessTokenParameters=[])
    tenant.mews("add", ResourceAccessTokenParameters=[])
    after = tenant.http.get("/metrics").text
    assert count("400") == before_bad + 2
    assert count("200") == before_ok
    assert 'keyledger_request_duration_seconds_bucket{dialect="mews"' in after


def test_openapi_describes_every_operation_with_errors(shared_deployment: Deployment) -> None:
    document = shared_deployment.http.get("/openapi.json").json()
    operations = {
        operation["operationId"]: (path, operation)
        for path, methods in document["paths"].items()
        for operation in methods.values()
    }
    for name in ("getAll", "add", "update", "delete"):
        path, operation = operations[f"mews_resourceAccessTokens_{name}"]
        assert path == f"/api/connector/v1/resourceAccessTokens/{name}"
        assert operation["tags"] == ["Mews"]
        assert {"400", "401", "403", "408", "413", "429", "500"} <= set(operation["responses"])
        schema_ref = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        assert schema_ref.rsplit("/", 1)[1] in document["components"]["schemas"]
    assert {"ops_healthz", "ops_readyz", "ops_metrics"} <= set(operations)
    docs = shared_deployment.http.get("/docs")
    assert docs.status_code == 200
    assert "swagger-ui" in docs.text


def test_committed_openapi_matches_the_code() -> None:
    """docs/openapi.json is the published description; regenerate it with `keyledger openapi`."""
    generated = subprocess.run(
        [sys.executable, "-m", "keyledger", "openapi"],
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    ).stdout
    committed = (REPO / "docs" / "openapi.json").read_text()
    assert json.loads(generated) == json.loads(committed), (
        "docs/openapi.json is stale: run `keyledger openapi > docs/openapi.json`"
    )


def test_openapi_is_the_same_from_the_app_factory() -> None:
    app = create_app(Settings(database_url="sqlite://"))
    committed = json.loads((REPO / "docs" / "openapi.json").read_text())
    assert app.openapi() == committed
