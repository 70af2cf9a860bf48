"""The ``takt`` command. Commands only translate: they open the workspace, call the core, print."""

from __future__ import annotations

import functools
import json
import os
import signal
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import click
import orjson

from takt import __version__
from takt import workspace as ws_mod
from takt.clock import system_clock
from takt.errors import TaktError, WorkspaceLocked
from takt.events.model import StoredEvent
from takt.ingest.window import Implausible, TimeWindow
from takt.settings import REGISTRY, redact
from takt.settings import load as load_settings

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
    now = system_clock()
    if not at:
        return now
    try:
        settings = load_settings(None)  # (the environment's values; every --at only asks for a view)
        window = TimeWindow.from_settings(settings)
        window = TimeWindow(window.earliest, timedelta(days=settings["api.max_at_future_days"]))
        return window.parse(at, now, option)
    except Implausible as e:
        raise click.BadParameter(f"expected a plausible ISO 8601 time (e.g. 2026-11-24 or 2026-11-24T12:00:00Z): "
                                 f"{e.reason}", param_hint=option) from None


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

    host = host or ws.settings["server.host"]
    port = port or ws.settings["server.port"]
    storage = ws.open_storage()
    app = create_app(storage, ws.settings, system_clock)
    url = f"http://{host}:{port}"
    serve_file = ws.path / SERVE_FILE
    serve_file.write_text(json.dumps({"pid": os.getpid(), "url": url}), encoding="utf-8")
    if banner is not None:
        banner(url)
    else:
        click.echo(f"takt {__version__} serving {ws.path} ({storage.backend}) on {url}")
        click.echo(f"  collection: POST {url}/v1/batch   health: {url}/health   OpenAPI: {url}/openapi.json")
    # uvicorn re-raises SIGTERM/SIGINT after its graceful shutdown; with Python's default handler that kills
    # the process before the cleanup below. This handler turns the re-raised signal into a normal exit.
    def _exit(signum: int, frame: object) -> None:
        raise SystemExit(0)

    signal.signal(signal.SIGTERM, _exit)
    try:
        uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                    timeout_graceful_shutdown=10)
    finally:
        storage.close()
        try:
            serve_file.unlink()
        except FileNotFoundError:
            pass


# ---- keys ----
@main.group()
def keys() -> None:
    """Create, list and revoke API keys."""


@keys.command("create")
@workspace_option
@click.option("--kind", type=click.Choice(["write", "read", "admin"]), required=True)
@click.option("--name", required=True, help="A name to recognise the key by.")
@click.option("--source", default=None, help="Write keys: the source it sends for (default: the name).")
@click.option("--provenance", default=None,
              type=click.Choice(["customer_provided", "crm_import", "observed", "third_party"]),
              help="Write keys: what its data is (default: observed).")
@handle_errors
def keys_create(workspace: str, kind: str, name: str, source: str | None, provenance: str | None) -> None:
    """Create a key. Its secret is printed once and stored only hashed."""
    ws = ws_mod.open_workspace(workspace)
    with ws.open_storage() as storage:
        key, secret = storage.keys.create(kind, name, source, provenance, now=system_clock())
    click.echo(f"created {key.kind} key {key.id} ({key.name})"
               + (f" for source {key.source!r}, provenance {key.provenance}" if key.source else ""))
    click.echo("secret (shown once, store it now):")
    click.echo(secret.reveal())


@keys.command("list")
@workspace_option
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def keys_list(workspace: str, as_json: bool) -> None:
    """List keys (never their secrets)."""
    ws = ws_mod.open_workspace(workspace)
    with ws.open_storage() as storage:
        rows = storage.keys.list()
    if as_json:
        click.echo(json.dumps([k.__dict__ for k in rows], default=str, indent=2))
        return
    for k in rows:
        state = "revoked" if k.revoked_at else "active"
        extra = f" source={k.source} provenance={k.provenance}" if k.source else ""
        click.echo(f"{k.id}  {k.kind:<5}  {state:<7}  {k.name}{extra}")


@keys.command("revoke")
@workspace_option
@click.argument("key")
@handle_errors
def keys_revoke(workspace: str, key: str) -> None:
    """Revoke KEY (its id or name)."""
    ws = ws_mod.open_workspace(workspace)
    with ws.open_storage() as storage:
        k = storage.keys.revoke(key, now=system_clock())
    click.echo(f"revoked {k.kind} key {k.id} ({k.name})")


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
