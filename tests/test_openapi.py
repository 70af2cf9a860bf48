"""Every HTTP route is described in the OpenAPI document."""

from __future__ import annotations

from pathlib import Path

from starlette.routing import Route

from takt.api.app import create_app
from takt.settings import load
from takt.storage.duckdb import DuckDBStorage


def test_every_route_is_documented(tmp_path: Path) -> None:
    storage = DuckDBStorage(tmp_path / "x.duckdb")
    try:
        app = create_app(storage, load(None, env={}))
        from takt.api import app as app_mod
        from takt.api.app import openapi  # noqa: F401  (the document is served by this route)
        from takt.api.openapi import document

        extra = {}
        for fn in app_mod.OPENAPI_PATHS:
            extra.update(fn())
        paths = document(extra)["paths"]
        for route in app.routes:
            if not isinstance(route, Route) or route.path == "/openapi.json":
                continue
            assert route.path in paths, f"{route.path} is not in the OpenAPI document"
            for method in route.methods or ():
                if method in ("HEAD", "OPTIONS"):
                    continue
                assert method.lower() in paths[route.path], f"{method} {route.path} is not documented"
    finally:
        storage.close()
