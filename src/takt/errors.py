"""takt's errors, and the one JSON error shape the API produces from them.

Every error a user can cause is a :class:`TaktError` with a stable ``code`` and a message that names the
problem. The HTTP layer turns any of them into::

    {"success": false, "code": "invalid_event", "message": "...", "errors": [{"index": 3, ...}]}

with the status the error carries. Nothing else builds error bodies.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class TaktError(Exception):
    message: str
    code: str = "error"
    status: int = 400
    errors: list[dict[str, Any]] = field(default_factory=list)
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        super().__init__(self.message)

    def __str__(self) -> str:
        if not self.errors:
            return self.message
        details = "; ".join(_detail(e) for e in self.errors[:10])
        more = f" (+{len(self.errors) - 10} more)" if len(self.errors) > 10 else ""
        return f"{self.message}: {details}{more}"

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"success": False, "code": self.code, "message": self.message}
        if self.errors:
            body["errors"] = self.errors
        return body


def _detail(e: dict[str, Any]) -> str:
    where = []
    if "index" in e:
        where.append(f"item {e['index']}")
    if e.get("field"):
        where.append(str(e["field"]))
    prefix = " ".join(where)
    return f"{prefix}: {e.get('reason', '')}" if prefix else str(e.get("reason", ""))


class SettingsError(TaktError):
    def __init__(self, key: str, message: str):
        super().__init__(message=f"setting {key!r}: {message}", code="invalid_setting", status=500)
        self.key = key


def invalid(message: str, code: str = "invalid_request", errors: list[dict[str, Any]] | None = None) -> TaktError:
    return TaktError(message=message, code=code, status=400, errors=errors or [])


def unauthorized(message: str = "missing or unknown key") -> TaktError:
    return TaktError(message=message, code="unauthorized", status=401,
                     headers={"WWW-Authenticate": 'Basic realm="takt"'})


def forbidden(message: str) -> TaktError:
    return TaktError(message=message, code="forbidden", status=403)


def not_found(message: str) -> TaktError:
    return TaktError(message=message, code="not_found", status=404)


def too_large(message: str) -> TaktError:
    return TaktError(message=message, code="too_large", status=400)


def overloaded(retry_after: int) -> TaktError:
    return TaktError(message="the server is at capacity; retry later", code="overloaded", status=429,
                     headers={"Retry-After": str(retry_after)})


class WorkspaceLocked(TaktError):
    def __init__(self, message: str):
        super().__init__(message=message, code="workspace_locked", status=503)
