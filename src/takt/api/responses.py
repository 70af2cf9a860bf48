"""JSON responses (orjson) and the single place error bodies are made."""

from __future__ import annotations

import logging
from typing import Any

import orjson
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from takt.errors import TaktError

logger = logging.getLogger(__name__)


class JSON(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content, option=orjson.OPT_NON_STR_KEYS)


SUCCESS = b'{"success":true}'


def success() -> Response:
    return Response(SUCCESS, media_type="application/json")


def error_response(err: TaktError) -> Response:
    return JSON(err.to_json(), status_code=err.status, headers=err.headers or None)


async def takt_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, TaktError)
    return error_response(exc)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 400: "bad_request", 413: "too_large"}


async def http_error_handler(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    message = exc.detail if isinstance(exc.detail, str) else "request failed"
    if exc.status_code == 404:
        message = f"no endpoint at {request.url.path}"
    elif exc.status_code == 405:
        message = f"{request.method} is not allowed on {request.url.path}"
    return error_response(TaktError(message, code=code, status=exc.status_code,
                                    headers=dict(exc.headers or {})))


async def internal_error_handler(request: Request, exc: Exception) -> Response:
    """A 500 names only the error's type to the client; the traceback goes to the server's log."""
    logger.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    return error_response(TaktError(f"internal error: {type(exc).__name__}", code="internal", status=500))
