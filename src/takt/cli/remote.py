"""The CLI's second way in: through the server that holds the workspace.

A DuckDB file is owned by one process. While ``takt serve`` (or ``takt demo``) runs, it records itself in the
workspace's ``serve.json`` (its URL and pid, readable only by the owner, removed when it stops); a record whose
pid is gone is stale and ignored. The commands that make sense over HTTP then go through that server's API with
an admin key, taken from, in order: ``--key``, ``TAKT_ADMIN_KEY``, ``TAKT_KEY``, and the admin key that
``takt demo`` keeps in the workspace's owner-only ``demo-keys.json``. ``--api URL`` names a server explicitly
(e.g. one serving a PostgreSQL workspace elsewhere).
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from takt.errors import TaktError

SERVE_FILE = "serve.json"
DEMO_KEYS_FILE = "demo-keys.json"  # takt.demo.feed.KEYS_FILE (not imported: the demo pulls in much)
KEY_ENV = ("TAKT_ADMIN_KEY", "TAKT_KEY")


@dataclass(frozen=True)
class ServerRecord:
    url: str
    pid: int


def pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, someone else's
    return True


def write_record(workspace: Path, url: str, pid: int | None = None) -> Path:
    """Record the server (owner-only: the file tells where an admin API listens)."""
    path = workspace / SERVE_FILE
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(json.dumps({"pid": pid if pid is not None else os.getpid(), "url": url}))
    return path


def remove_record(workspace: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        (workspace / SERVE_FILE).unlink()


def read_record(workspace: Path) -> ServerRecord | None:
    """The server recorded in ``workspace``, or None (none, unreadable, or stale: its process is gone)."""
    try:
        data = json.loads((workspace / SERVE_FILE).read_text(encoding="utf-8"))
        record = ServerRecord(str(data["url"]), int(data["pid"]))
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record if pid_alive(record.pid) else None


def find_key(workspace: Path | None, given: str | None) -> str | None:
    """The admin key to use: ``given``, the environment, or the demo's owner-only key file."""
    if given:
        return given
    for var in KEY_ENV:
        if os.environ.get(var):
            return os.environ[var]
    if workspace is not None:
        try:
            admin = json.loads((workspace / DEMO_KEYS_FILE).read_text(encoding="utf-8")).get("admin")
        except (OSError, ValueError, AttributeError):
            return None
        return str(admin) if admin else None
    return None


class Api:
    """A small JSON client for one server and key."""

    def __init__(self, url: str, key: str):
        self.url = url.rstrip("/")
        self.key = key

    def path(self, *parts: str) -> str:
        return "/" + "/".join(quote(p, safe="") for p in parts)

    def request(self, method: str, path: str, params: dict[str, Any] | None = None, body: Any = None,
                timeout: float = 600) -> Any:
        import urllib.error
        import urllib.request

        import orjson

        query = {k: v for k, v in (params or {}).items() if v is not None}
        url = self.url + path + (f"?{urlencode(query)}" if query else "")
        data = orjson.dumps(body) if body is not None else None
        headers = {"Authorization": f"Bearer {self.key}"}
        if data is not None:
            headers["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                raw = resp.read()
                return orjson.loads(raw) if raw else None
        except urllib.error.HTTPError as e:
            errors: list[dict[str, Any]] = []
            try:
                answer = orjson.loads(e.read())
                msg = answer.get("message", str(e))
                errors = [x for x in answer.get("errors", []) if isinstance(x, dict)]
            except Exception:  # a body that is not takt's error shape
                msg = str(e)
            raise TaktError(f"{self.url}: {e.code} {msg}", code="api_error", status=e.code, errors=errors) from None
        except urllib.error.URLError as e:
            raise TaktError(f"cannot reach {self.url}: {e.reason}", code="api_error") from None

    def get(self, path: str, **params: Any) -> Any:
        return self.request("GET", path, params)

    def post(self, path: str, body: Any, **params: Any) -> Any:
        return self.request("POST", path, params, body if body is not None else {})

    def put(self, path: str, body: Any) -> Any:
        return self.request("PUT", path, None, body)

    def delete(self, path: str) -> Any:
        return self.request("DELETE", path)


def _workspace_path(workspace: str) -> Path | None:
    from takt import workspace as ws_mod

    return ws_mod.resolve_path(workspace)


def server_api(workspace: str, api: str | None, key: str | None) -> Api | None:
    """The server to go through: ``--api`` when given; else the live server recorded in a DuckDB workspace
    (it owns the file); else None: the command opens the workspace itself."""
    path = _workspace_path(workspace)
    if api:
        found = find_key(path, key)
        if not found:
            raise TaktError(f"--api needs a key: --key KEY, or {' or '.join(KEY_ENV)}", code="usage")
        return Api(api, found)
    if path is None:
        return None
    record = read_record(path)
    if record is None or not _single_owner(path):
        return None
    found = find_key(path, key)
    if not found:
        raise TaktError(
            f"the workspace is held by `takt serve` (pid {record.pid}) at {record.url}; the CLI goes through its API "
            f"with an admin key: give --key KEY or set TAKT_ADMIN_KEY (or run with --api {record.url} --key KEY), "
            "or stop the server", code="workspace_locked")
    return Api(record.url, found)


def _single_owner(path: Path) -> bool:
    """Whether the workspace's database is owned by one process (so a recorded server holds it)."""
    from takt import workspace as ws_mod

    try:
        return ws_mod.open_workspace(str(path)).single_owner
    except TaktError:
        return False


def no_endpoint(workspace: str, command: str, instead: str = "") -> None:
    """Fail clearly when the workspace is held by a server and ``command`` has no HTTP endpoint."""
    path = _workspace_path(workspace)
    record = read_record(path) if path is not None else None
    if record is not None and _single_owner(path):  # type: ignore[arg-type]
        raise TaktError(
            f"`takt {command}` works on the workspace itself, and `takt serve` (pid {record.pid}, {record.url}) holds "
            f"it; the API has no endpoint for it{(': ' + instead) if instead else ''}. Stop the server "
            "(Ctrl-C, or kill " + str(record.pid) + ") and run the command again.", code="workspace_locked")
