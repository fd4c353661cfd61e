"""Validation of our Mews responses against Mews' own OpenAPI description (shared/spec)."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import yaml
from openapi_schema_validator import OAS30Validator, oas30_format_checker

from tests.support import shared_file

SPEC = "spec/mews-resource-access-tokens.openapi.yaml"


@lru_cache(maxsize=1)
def _document() -> dict[str, Any]:
    loaded = yaml.safe_load(shared_file(SPEC).read_text())
    assert isinstance(loaded, dict)
    return loaded


def assert_valid_mews_response(operation: str, status: int, body: Any) -> None:
    """Validate ``body`` against the schema Mews publishes for ``operation`` and ``status``."""
    document = _document()
    path = f"/api/connector/v1/resourceAccessTokens/{operation}"
    response = document["paths"][path]["post"]["responses"][str(status)]
    schema = {
        **response["content"]["application/json"]["schema"],
        "components": document["components"],
    }
    OAS30Validator(schema, format_checker=oas30_format_checker).validate(body)


def documented_statuses(operation: str) -> set[int]:
    """The status codes Mews documents for ``operation``."""
    path = f"/api/connector/v1/resourceAccessTokens/{operation}"
    return {int(status) for status in _document()["paths"][path]["post"]["responses"]}
