"""Property-based API testing with schemathesis: every operation in ``/openapi.json``, fed generated valid and
invalid requests through the real ASGI app (DuckDB in a temporary folder, real keys), answers without a
server error and only with statuses, content types, headers and bodies that the document declares; and on
the collection endpoints a request the document calls valid is accepted (``positive_data_acceptance``)."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    positive_data_acceptance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from takt.api import app as app_module
from takt.api.app import create_app
from takt.api.openapi import document
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage

MAX_EXAMPLES = 12  # per operation and mode (the short aliases share a handler with their long path: fewer)
ALIAS_EXAMPLES = 4
PRIMARY = {"/v1/track", "/v1/identify", "/v1/page", "/v1/screen", "/v1/group", "/v1/alias", "/v1/batch"}
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance,
          response_schema_conformance, response_headers_conformance]
# The collection API also promises that whatever its document calls valid is stored (2xx).
COLLECT_CHECKS = [*CHECKS, positive_data_acceptance]


class Api:
    def __init__(self, path: Path):
        self.storage = DuckDBStorage(path / "takt.duckdb")
        now = datetime.now(UTC)
        _, w = self.storage.keys.create("write", "website", None, "customer_provided", now=now)
        _, a = self.storage.keys.create("admin", "ops", None, None, now=now)
        self.write_key, self.admin_key = w.reveal(), a.reveal()
        self.app = create_app(self.storage, load(None, env={}))
        self.schema = schemathesis.openapi.from_asgi("/openapi.json", self.app)

    def headers_for(self, operation: dict[str, Any]) -> dict[str, str]:
        """Credentials the operation's ``security`` asks for (a write key, or an admin key as Bearer)."""
        schemes = {name for req in operation.get("security", []) for name in req}
        if "writeKeyBasic" in schemes:
            return {"Authorization": "Basic " + base64.b64encode(f"{self.write_key}:".encode()).decode()}
        if "bearer" in schemes:
            return {"Authorization": f"Bearer {self.admin_key}"}
        return {}


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    a = Api(tmp_path_factory.mktemp("schemathesis"))
    try:
        yield a
    finally:
        a.storage.close()


def served_document() -> dict[str, Any]:
    """The document as ``/openapi.json`` serves it (with the paths other packages add)."""
    extra: dict[str, Any] = {}
    for fn in app_module.OPENAPI_PATHS:
        extra.update(fn())
    return document(extra)


def _cases() -> list[Any]:
    """(path, method, mode) for every documented operation; invalid data only where there is input."""
    out = []
    for path, item in served_document()["paths"].items():
        for method, op in item.items():
            modes = [GenerationMode.POSITIVE]
            if op.get("requestBody") or op.get("parameters"):
                modes.append(GenerationMode.NEGATIVE)
            for mode in modes:
                label = "valid" if mode is GenerationMode.POSITIVE else "invalid"
                out.append(pytest.param(path, method, mode, id=f"{method.upper()} {path} {label}"))
    return out


@pytest.mark.parametrize("path,method,mode", _cases())
def test_operation_conforms_to_the_document(api: Api, path: str, method: str, mode: GenerationMode) -> None:
    operation = api.schema[path][method]
    spec = served_document()["paths"][path][method]
    headers = api.headers_for(spec)
    collect = spec.get("operationId", "").startswith("collect")
    checks = COLLECT_CHECKS if collect else CHECKS
    seen: dict[int, int] = {}
    examples = MAX_EXAMPLES if path in PRIMARY or method == "get" else ALIAS_EXAMPLES

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=examples, deadline=None, derandomize=True, database=None,
              suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        response = case.call_and_validate(headers=headers, checks=checks)
        seen[response.status_code] = seen.get(response.status_code, 0) + 1

    run()
    assert sum(seen.values()) > 0
    if collect and mode is GenerationMode.POSITIVE:
        # the valid cases really reached the log (positive_data_acceptance already asks each for a 2xx)
        assert seen.get(200, 0) > 0, seen
    if collect and mode is GenerationMode.NEGATIVE:
        assert seen.get(400, 0) > 0, seen
    if mode is GenerationMode.POSITIVE and path == "/v1/batch":
        assert api.storage.log.count() > 0  # what was acknowledged is in the log
