"""The ``takt`` command. Commands only translate: they open the workspace, call the core, print."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from takt import __version__
from takt import workspace as ws_mod
from takt.clock import system_clock
from takt.errors import TaktError, WorkspaceLocked
from takt.events.model import StoredEvent, parse_time
from takt.privacy.audit import cli_actor
from takt.privacy.audit import record as record_audit
from takt.settings import REGISTRY, redact

F = TypeVar("F", bound=Callable[..., Any])

SERVE_FILE = "serve.json"


def handle_errors(fn: F) -> F:
    """Turn takt's errors into a one-line message and exit code 2; never a stack trace."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TaktError as e:
            msg = str(e)
            click.secho(msg if msg.startswith("error:") else f"error: {msg}", fg="red", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def at_or_now(at: str | None, option: str = "--at") -> datetime:
    """The time an ``--at`` option names (ISO 8601), or now when it is not given; a bad value is a usage error."""
    if not at:
        return system_clock()
    try:
        return parse_time(at)
    except (ValueError, TypeError):
        raise click.BadParameter(f"expected an ISO 8601 time (e.g. 2026-11-24 or 2026-11-24T12:00:00Z), got {at!r}",
                                 param_hint=option) from None


workspace_option = click.option(
    "--workspace", "-w", envvar="TAKT_WORKSPACE", default=".", show_default=True,
    type=click.Path(file_okay=False), help="The workspace folder (or TAKT_WORKSPACE).",
)


class _TaktGroup(click.Group):
    """Loads the command groups other packages contribute (``PLUGINS``) on first use, not at import time,
    so a plugin module can import this one without a cycle."""

    _loaded = False

    def _load(self) -> None:
        if not _TaktGroup._loaded:
            _TaktGroup._loaded = True
            _register_plugins(self)

    def list_commands(self, ctx: click.Context) -> list[str]:
        self._load()
        return super().list_commands(ctx)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        self._load()
        return super().get_command(ctx, cmd_name)


@click.group(cls=_TaktGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="takt")
def main() -> None:
    """takt: one event log, living customer profiles, engagement that is relevant and respectful."""


# ---- workspace ----
@main.command()
@click.argument("directory", type=click.Path(file_okay=False))
@click.option("--database-url", default=None, help="Use this PostgreSQL database instead of a DuckDB file.")
@handle_errors
def init(directory: str, database_url: str | None) -> None:
    """Create a workspace in DIRECTORY."""
    ws = ws_mod.init(directory, database_url=database_url)
    where = (ws.settings["database_url"] and "PostgreSQL") or str(ws.duckdb_path)
    click.echo(f"workspace ready: {ws.path} (data: {where})")
    click.echo(f"next: takt keys create --workspace {ws.path} --kind write --name website --provenance customer_provided")


@main.command("settings")
@workspace_option
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--markdown", is_flag=True, help="Print the settings reference (docs/settings.md).")
@handle_errors
def settings_cmd(workspace: str, as_json: bool, markdown: bool) -> None:
    """Every setting: value, where it came from, and help."""
    if markdown:
        from takt.settings import markdown as settings_markdown

        click.echo(settings_markdown(), nl=False)
        return
    ws = ws_mod.open_workspace(workspace, must_exist=False)
    rows = [
        {"name": s.name, "value": redact(s, v), "default": redact(s, s.default), "origin": origin,
         "env": s.env_var, "help": s.help}
        for s, v, origin in ws.settings.items()
    ]
    if as_json:
        click.echo(json.dumps(rows, indent=2, default=str))
        return
    for r in rows:
        click.echo(f"{r['name']} = {r['value']!r}   [{r['origin']}]")
        click.echo(f"    {r['help']}  (env {r['env']})")


# ---- serve ----
@main.command()
@workspace_option
@click.option("--host", default=None, help="Address to listen on (setting server.host).")
@click.option("--port", default=None, type=int, help="Port (setting server.port).")
@handle_errors
def serve(workspace: str, host: str | None, port: int | None) -> None:
    """Serve the HTTP API (collection, profiles, …) on this workspace."""
    run_server(ws_mod.open_workspace(workspace), host, port)


def run_server(ws: ws_mod.Workspace, host: str | None, port: int | None, banner: Callable[[str], None] | None = None) -> None:
    import uvicorn

    from takt.api.app import create_app
    from takt.api.links import LOCAL_BASE, base_url_warning
    from takt.api.serving import uvicorn_options

    host = host or ws.settings["server.host"]
    port = port or ws.settings["server.port"]
    storage = ws.open_storage()
    app = create_app(storage, ws.settings, system_clock)
    url = f"http://{host}:{port}"
    app.state.ctx.extras[LOCAL_BASE] = url  # links point here unless server.public_base_url is set
    serve_file = ws.path / SERVE_FILE
    serve_file.write_text(json.dumps({"pid": os.getpid(), "url": url}), encoding="utf-8")
    if banner is not None:
        banner(url)
    else:
        click.echo(f"takt {__version__} serving {ws.path} ({storage.backend}) on {url}")
        click.echo(f"  collection: POST {url}/v1/batch   health: {url}/health   OpenAPI: {url}/openapi.json")
        warning = base_url_warning(ws.settings, url)
        if warning:
            click.echo(warning, err=True)
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; with Python's default handler that kills
    # the process before the cleanup below. This handler turns the re-raised signal into a normal exit.
    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _exit)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                    timeout_graceful_shutdown=10, **uvicorn_options(ws.settings))
    finally:
        storage.close()
        try:
            serve_file.unlink()
        except FileNotFoundError:
            pass


# ---- keys ----
@main.group()
def keys() -> None:
    """Create, list and revoke API keys (on the workspace, or through a running server with --api)."""


keys_api_option = click.option("--api", envvar="TAKT_API_URL", default=None,
                               help="Go through a running server's API (e.g. http://127.0.0.1:8321).")
keys_key_option = click.option("--key", envvar="TAKT_KEY", default=None, help="An admin key, with --api.")


def _keys_api(api: str, key: str | None, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
    """One call to a running server's ``/v1/keys`` endpoints, its error turned into a one-line TaktError."""
    if not key:
        raise TaktError("--api needs --key (an admin key), or TAKT_KEY", code="usage")
    data = orjson.dumps(body) if body is not None else None
    headers = {"Authorization": f"Bearer {key}"}
    if data is not None:
        headers["Content-Type"] = "application/json"
    req = urllib.request.Request(api.rstrip("/") + path, data=data, method=method, headers=headers)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as e:
        try:
            err = orjson.loads(e.read())
            msg = str(TaktError(err.get("message", str(e)), errors=err.get("errors") or []))
        except Exception:
            msg = str(e)
        raise TaktError(f"{api}: {e.code} {msg}", code="api_error") from None
    except urllib.error.URLError as e:
        raise TaktError(f"cannot reach {api}: {e.reason}", code="api_error") from None


def _open_keys_storage(workspace: str):  # type: ignore[no-untyped-def]
    """The workspace's storage; when a running server holds it, an error that says to use --api."""
    ws = ws_mod.open_workspace(workspace)
    try:
        return ws.open_storage()
    except WorkspaceLocked:
        serve = ws.path / SERVE_FILE
        who, url = "another process (usually a running `takt serve`)", "http://HOST:PORT"
        if serve.exists():
            info = json.loads(serve.read_text(encoding="utf-8"))
            who, url = f"`takt serve` (pid {info.get('pid')}) at {info.get('url')}", info.get("url") or url
        raise WorkspaceLocked(
            f"the workspace's database is held by {who}. Manage keys through the running server: add "
            f"--api {url} --key <admin key> (or TAKT_API_URL and TAKT_KEY), or stop the server."
        ) from None


def _key_line(k: dict[str, Any]) -> str:
    state = "active" if k.get("active", not k.get("revoked_at")) else "revoked"
    extra = f" source={k['source']} provenance={k['provenance']} trust={k['trust']}" if k.get("source") else ""
    return f"{k['id']}  {k['kind']:<5}  {state:<7}  {k['name']}{extra}"


def _key_dict(k: Any) -> dict[str, Any]:
    from takt.api.keys import key_json

    return key_json(k)


@keys.command("create")
@workspace_option
@keys_api_option
@keys_key_option
@click.option("--kind", type=click.Choice(["write", "read", "admin"]), required=True)
@click.option("--name", required=True, help="A name to recognise the key by.")
@click.option("--source", default=None, help="Write keys: the source it sends for (default: the name).")
@click.option("--provenance", default=None,
              type=click.Choice(["customer_provided", "crm_import", "observed", "third_party"]),
              help="Write keys: what its data is (default: observed).")
@click.option("--trust", default=None, type=click.Choice(["public", "server"]),
              help="Write keys: public (default; for browsers and apps: its events are the visitor's claims) or "
                   "server (a secret key for backends and imports: its events are the company's statements).")
@handle_errors
def keys_create(workspace: str, api: str | None, key: str | None, kind: str, name: str, source: str | None,
                provenance: str | None, trust: str | None) -> None:
    """Create a key. Its secret is printed once and stored only hashed."""
    if kind == "write" and trust is None:
        trust = "public"
    if api:
        body = {k: v for k, v in (("kind", kind), ("name", name), ("source", source), ("provenance", provenance),
                                  ("trust", trust)) if v is not None}
        answer = _keys_api(api, key, "POST", "/v1/keys", body)
        made, raw = answer["key"], answer["secret"]
    else:
        with _open_keys_storage(workspace) as storage:
            created, secret = storage.keys.create(kind, name, source, provenance, now=system_clock(), trust=trust)
        made, raw = _key_dict(created), secret.reveal()
    click.echo(f"created {made['kind']} key {made['id']} ({made['name']})"
               + (f" for source {made['source']!r}, provenance {made['provenance']}, trust {made['trust']}"
                  if made.get("source") else ""))
    if made.get("trust") == "public":
        click.echo("public key: for a browser or an app. Its events are the visitor's claims; a logged-in user's "
                   "are verified with context.userHash (see `takt keys verification-secret`).")
    elif made.get("trust") == "server":
        click.echo("server key: keep it secret, on a backend. Its events are the company's statements.")
    click.echo("secret (shown once, store it now):")
    click.echo(raw)


@keys.command("list")
@workspace_option
@keys_api_option
@keys_key_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def keys_list(workspace: str, api: str | None, key: str | None, as_json: bool) -> None:
    """List keys (never their secrets)."""
    if api:
        rows = _keys_api(api, key, "GET", "/v1/keys")["keys"]
    else:
        with _open_keys_storage(workspace) as storage:
            rows = [_key_dict(k) for k in storage.keys.list()]
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    for k in rows:
        click.echo(_key_line(k))


@keys.command("revoke")
@workspace_option
@keys_api_option
@keys_key_option
@click.argument("key_ref", metavar="KEY")
@handle_errors
def keys_revoke(workspace: str, api: str | None, key: str | None, key_ref: str) -> None:
    """Revoke KEY (its id or name). Through --api the server refuses it from the next request on."""
    if api:
        rows = _keys_api(api, key, "GET", "/v1/keys")["keys"]
        ids = [k["id"] for k in rows if k["id"] == key_ref] or [k["id"] for k in rows if k["name"] == key_ref]
        if not ids:
            raise TaktError(f"no key with id or name {key_ref!r}", code="not_found")
        if len(ids) > 1:
            raise TaktError(f"several keys are named {key_ref!r}; revoke by id", code="not_found")
        k = _keys_api(api, key, "DELETE", f"/v1/keys/{urllib.parse.quote(ids[0], safe='')}")["key"]
    else:
        with _open_keys_storage(workspace) as storage:
            k = _key_dict(storage.keys.revoke(key_ref, now=system_clock()))
    click.echo(f"revoked {k['kind']} key {k['id']} ({k['name']})")


@keys.command("verification-secret")
@workspace_option
@handle_errors
def keys_verification_secret(workspace: str) -> None:
    """Print the workspace's identity-verification secret (created on first use).

    Your backend computes hex HMAC-SHA256(secret, userId) for each logged-in user and gives it to the page,
    which sends it as context.userHash with a public key: those events are then "verified". Keep it on the
    backend, like a server key. It is read from a file beside the workspace's master key, so this works while
    a server runs."""
    ws = ws_mod.open_workspace(workspace)
    click.echo(ws.verification_secret())


# ---- events ----
@main.group()
def events() -> None:
    """Count, export and follow the event log."""


api_option = click.option("--api", envvar="TAKT_API_URL", default=None,
                          help="Go through a running server's API (e.g. http://127.0.0.1:8321).")
key_option = click.option("--key", envvar="TAKT_KEY", default=None, help="A read or admin key, with --api.")


def _api_get(api: str, key: str | None, path: str) -> Any:
    if not key:
        raise TaktError("--api needs --key (a read or admin key), or TAKT_KEY", code="usage")
    req = urllib.request.Request(api.rstrip("/") + path, headers={"Authorization": f"Bearer {key}"})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return orjson.loads(resp.read())
    except urllib.error.HTTPError as e:
        try:
            body = orjson.loads(e.read())
            msg = body.get("message", str(e))
        except Exception:
            msg = str(e)
        raise TaktError(f"{api}: {e.code} {msg}", code="api_error") from None
    except urllib.error.URLError as e:
        raise TaktError(f"cannot reach {api}: {e.reason}", code="api_error") from None


def _open_log_storage(workspace: str):  # type: ignore[no-untyped-def]
    ws = ws_mod.open_workspace(workspace)
    try:
        return ws.open_storage()
    except WorkspaceLocked as e:
        serve = ws.path / SERVE_FILE
        if serve.exists():
            info = json.loads(serve.read_text(encoding="utf-8"))
            raise WorkspaceLocked(
                f"the workspace is held by `takt serve` (pid {info.get('pid')}) at {info.get('url')}. "
                f"Use its API: add --api {info.get('url')} --key <read or admin key>, or stop the server."
            ) from None
        raise e


@events.command("count")
@workspace_option
@api_option
@key_option
@handle_errors
def events_count(workspace: str, api: str | None, key: str | None) -> None:
    """How many events the log holds."""
    if api:
        click.echo(_api_get(api, key, "/v1/events/count")["count"])
        return
    with _open_log_storage(workspace) as storage:
        click.echo(storage.log.count())


def _iter_api(api: str, key: str | None, after: int) -> Iterator[dict[str, Any]]:
    while True:
        page = _api_get(api, key, f"/v1/events?after={after}&limit=10000")
        if not page["events"]:
            return
        yield from page["events"]
        after = page["next_after"]


def _record(se: StoredEvent) -> dict[str, Any]:
    return {"position": se.position, **se.event.to_record()}


@events.command("export")
@workspace_option
@api_option
@key_option
@click.option("--after", default=0, type=int, help="Only events after this log position.")
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), default="-", help="File (default: stdout).")
@handle_errors
def events_export(workspace: str, api: str | None, key: str | None, after: int, fmt: str, output: str) -> None:
    """Every stored event with its messageId and log position, as JSON lines."""
    out = sys.stdout.buffer if output == "-" else open(output, "wb")  # noqa: SIM115
    try:
        if api:
            for rec in _iter_api(api, key, after):
                out.write(orjson.dumps(rec) + b"\n")
        else:
            with _open_log_storage(workspace) as storage:
                # everybody's personal data, decrypted: audited before the first line is written
                record_audit(storage, system_clock(), cli_actor(), "events.export", None)
                for se in storage.log.iter(after=after):
                    out.write(orjson.dumps(_record(se)) + b"\n")
        out.flush()
    finally:
        if out is not sys.stdout.buffer:
            out.close()


@events.command("tail")
@workspace_option
@api_option
@key_option
@click.option("--after", default=None, type=int, help="Start after this position (default: the last 10).")
@click.option("--follow/--no-follow", "-f", default=True, help="Keep waiting for new events.")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between polls.")
@handle_errors
def events_tail(workspace: str, api: str | None, key: str | None, after: int | None, follow: bool,
                interval: float) -> None:
    """Print new events as they arrive."""

    def emit(rec: dict[str, Any]) -> None:
        click.echo(orjson.dumps(rec).decode())

    if api:
        if after is None:
            after = max(0, _api_get(api, key, "/v1/events/count")["head"] - 10)
        while True:
            for rec in _iter_api(api, key, after):
                emit(rec)
                after = rec["position"]
            if not follow:
                return
            time.sleep(interval)
    with _open_log_storage(workspace) as storage:
        record_audit(storage, system_clock(), cli_actor(), "events.read", None)  # decrypted events follow
        if after is None:
            after = max(0, storage.log.head() - 10)
        while True:
            for se in storage.log.iter(after=after):
                emit(_record(se))
                after = se.position
            if not follow:
                return
            time.sleep(interval)


# Other packages add their command groups here (dotted module paths; each module exposes `command`).
PLUGINS: list[str] = ["takt.cli.clv", "takt.cli.imports", "takt.cli.demo", "takt.cli.rebuild", "takt.cli.profiles", "takt.cli.worker", "takt.cli.segment", "takt.cli.export", "takt.cli.models", "takt.cli.offers", "takt.cli.privacy", "takt.cli.audit", "takt.cli.policy"]


def _register_plugins(group: click.Group) -> None:
    import importlib

    for mod in PLUGINS:
        m = importlib.import_module(mod)
        group.add_command(m.command)


def settings_documented(doc: Path) -> list[str]:
    """Names of registered settings missing from ``doc`` (used by the docs test)."""
    text = doc.read_text(encoding="utf-8")
    return [name for name in REGISTRY if f"`{name}`" not in text]


if __name__ == "__main__":
    main()
