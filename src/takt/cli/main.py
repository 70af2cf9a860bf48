"""The ``takt`` command. Commands only translate: they open the workspace, call the core, print."""

from __future__ import annotations

import functools
import json
import signal
import sys
import time
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
from takt.privacy.audit import cli_actor
from takt.privacy.audit import record as record_audit
from takt.settings import REGISTRY, redact
from takt.settings import load as load_settings

F = TypeVar("F", bound=Callable[..., Any])

def handle_errors(fn: F) -> F:
    """Turn takt's errors into a one-line message and exit code 2; never a stack trace."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except TaktError as e:
            msg = _held_by_server(e) or str(e)
            click.secho(msg if msg.startswith("error:") else f"error: {msg}", fg="red", err=True)
            sys.exit(2)

    return wrapper  # type: ignore[return-value]


def _held_by_server(e: TaktError) -> str | None:
    """For a command that opens the workspace itself while a server holds it (it has no HTTP endpoint): what to
    do instead."""
    if not isinstance(e, WorkspaceLocked):
        return None
    from takt.cli.remote import read_record

    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return None
    info = read_record(ws_mod.resolve_path(ctx.params.get("workspace")))
    if info is None:
        return None
    return (f"error: `{ctx.command_path}` works on the workspace itself, which `takt serve` (pid {info.pid}, "
            f"{info.url}) holds, and the API has no endpoint for it: stop the server (Ctrl-C where it runs, or "
            f"`kill {info.pid}`) and run the command again")


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
    """A lazy group: the commands other modules contribute (``PLUGINS``) are imported only when they run, so
    ``takt --help`` and the light commands never pay for scipy, LightGBM, DuckDB or pandas. ``--help`` lists
    them with the short help recorded in ``PLUGINS`` (a test keeps it equal to each command's own)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*super().list_commands(ctx), *PLUGINS})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in PLUGINS:
            self.add_command(load_plugin(cmd_name), cmd_name)
        return super().get_command(ctx, cmd_name)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            cmd = self.commands.get(name)
            if cmd is not None:
                if cmd.hidden:
                    continue
                rows.append((name, cmd.get_short_help_str(formatter.width - 6 - len(name))))
            else:
                rows.append((name, PLUGINS[name][1]))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


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


def configure_logging(level: str) -> None:
    """takt's loggers to stderr, one line per record, at ``level`` (setting ``server.log_level``)."""
    import logging

    logger = logging.getLogger("takt")
    if not any(getattr(h, "takt_server", False) for h in logger.handlers):
        handler = logging.StreamHandler()
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.takt_server = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
    logger.setLevel(level.upper())


def run_server(ws: ws_mod.Workspace, host: str | None, port: int | None, banner: Callable[[str], None] | None = None,
               extras: dict[str, Any] | None = None) -> None:
    import uvicorn

    from takt.api.app import create_app
    from takt.api.links import LOCAL_BASE, base_url_warning
    from takt.api.serving import uvicorn_options

    host = host or ws.settings["server.host"]
    port = port or ws.settings["server.port"]
    configure_logging(ws.settings["server.log_level"])
    storage = ws.open_storage()
    app = create_app(storage, ws.settings, system_clock)
    url = f"http://{host}:{port}"
    app.state.ctx.extras[LOCAL_BASE] = url  # links point here unless server.public_base_url is set
    app.state.ctx.extras.update(extras or {})  # e.g. the demo's outbox
    from takt.cli import remote

    remote.write_record(ws.path, url)  # the CLI finds this server (and goes through it) while it holds the file
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
        remote.remove_record(ws.path)


api_option = click.option("--api", envvar="TAKT_API_URL", default=None,
                          help="Go through this server's API (e.g. http://127.0.0.1:8321). Without it the CLI goes "
                               "through the server that holds the workspace, if one does.")
key_option = click.option("--key", default=None,
                          help="An admin (or read) key for the server's API (or TAKT_ADMIN_KEY, TAKT_KEY; the "
                               "demo's admin key is found in its workspace).")


def server_options(fn: F) -> F:
    """``--api`` and ``--key``: how a command reaches a server (see takt.cli.remote)."""
    return api_option(key_option(fn))  # type: ignore[no-any-return]


# ---- keys ----
@main.group()
def keys() -> None:
    """Create, list and revoke API keys (on the workspace, or through a running server with --api)."""


def _keys_server(workspace: str, api: str | None, key: str | None) -> Any:
    """The running server to manage keys through (``--api``, or the one holding the workspace), or None."""
    from takt.cli.remote import server_api

    return server_api(workspace, api, key)


def _key_line(k: dict[str, Any]) -> str:
    state = "active" if k.get("active", not k.get("revoked_at")) else "revoked"
    extra = f" source={k['source']} provenance={k['provenance']} trust={k['trust']}" if k.get("source") else ""
    return f"{k['id']}  {k['kind']:<5}  {state:<7}  {k['name']}{extra}"


def _key_dict(k: Any) -> dict[str, Any]:
    from takt.api.keys import key_json

    return key_json(k)


@keys.command("create")
@workspace_option
@server_options
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
    server = _keys_server(workspace, api, key)
    if server is not None:
        body = {k: v for k, v in (("kind", kind), ("name", name), ("source", source), ("provenance", provenance),
                                  ("trust", trust)) if v is not None}
        answer = server.post("/v1/keys", body)
        made, raw = answer["key"], answer["secret"]
    else:
        with ws_mod.open_workspace(workspace).open_storage() as storage:
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
@server_options
@click.option("--json", "as_json", is_flag=True)
@handle_errors
def keys_list(workspace: str, api: str | None, key: str | None, as_json: bool) -> None:
    """List keys (never their secrets)."""
    server = _keys_server(workspace, api, key)
    if server is not None:
        rows = server.get("/v1/keys")["keys"]
    else:
        with ws_mod.open_workspace(workspace).open_storage() as storage:
            rows = [_key_dict(k) for k in storage.keys.list()]
    if as_json:
        click.echo(json.dumps(rows, default=str, indent=2))
        return
    for k in rows:
        click.echo(_key_line(k))


@keys.command("revoke")
@workspace_option
@server_options
@click.argument("key_ref", metavar="KEY")
@handle_errors
def keys_revoke(workspace: str, api: str | None, key: str | None, key_ref: str) -> None:
    """Revoke KEY (its id or name). Through --api the server refuses it from the next request on."""
    server = _keys_server(workspace, api, key)
    if server is not None:
        rows = server.get("/v1/keys")["keys"]
        ids = [k["id"] for k in rows if k["id"] == key_ref] or [k["id"] for k in rows if k["name"] == key_ref]
        if not ids:
            raise TaktError(f"no key with id or name {key_ref!r}", code="not_found")
        if len(ids) > 1:
            raise TaktError(f"several keys are named {key_ref!r}; revoke by id", code="not_found")
        k = server.delete(server.path("v1", "keys", ids[0]))["key"]
    else:
        with ws_mod.open_workspace(workspace).open_storage() as storage:
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




def _api_get(api: str, key: str | None, path: str) -> Any:
    from takt.cli.remote import Api, find_key

    found = find_key(None, key)
    if not found:
        raise TaktError("--api needs --key (a read or admin key), or TAKT_ADMIN_KEY / TAKT_KEY", code="usage")
    return Api(api, found).request("GET", path)


def _open_log_storage(workspace: str):  # type: ignore[no-untyped-def]
    from takt.cli.remote import read_record

    ws = ws_mod.open_workspace(workspace)
    try:
        return ws.open_storage()
    except WorkspaceLocked as e:
        info = read_record(ws.path)
        if info is not None:
            raise WorkspaceLocked(
                f"the workspace is held by `takt serve` (pid {info.pid}) at {info.url}. "
                f"Use its API: add --api {info.url} --key <read or admin key>, or stop the server."
            ) from None
        raise e


@events.command("count")
@workspace_option
@server_options
@click.option("--json", "as_json", is_flag=True, help="The count, the log head and the breakdown by kind as JSON.")
@click.option("--by-kind", is_flag=True, help="Also the breakdown: events sent, and takt's own derived events.")
@handle_errors
def events_count(workspace: str, api: str | None, key: str | None, as_json: bool, by_kind: bool) -> None:
    """How many events the log holds (the same number the demo prints and /v1/events/count gives)."""
    from takt.cli.remote import server_api

    server = server_api(workspace, api, key)
    if server is not None:
        body = server.get("/v1/events/count")
    else:
        from takt.events.counts import event_counts

        with _open_log_storage(workspace) as storage:
            body = event_counts(storage.log)
    if as_json:
        click.echo(json.dumps(body, indent=2))
        return
    click.echo(body["count"])
    if by_kind:
        for group in ("sent", "derived"):
            kinds = body.get("by_kind", {}).get(group, {})
            click.echo(f"{group}: {sum(kinds.values())}", err=False)
            for kind, n in sorted(kinds.items(), key=lambda kv: (-kv[1], kv[0])):
                click.echo(f"  {kind:<28} {n}")


def _iter_api(api: str, key: str | None, after: int) -> Iterator[dict[str, Any]]:
    while True:
        page = _api_get(api, key, f"/v1/events?after={after}&limit=10000")
        if not page["events"]:
            return
        yield from page["events"]
        after = page["next_after"]


def _resolve_api(workspace: str, api: str | None, key: str | None) -> tuple[str | None, str | None]:
    """(url, key) of the server to read the log through, or (None, None) to open the workspace."""
    from takt.cli.remote import server_api

    server = server_api(workspace, api, key)
    return (server.url, server.key) if server is not None else (None, None)


def _record(se: StoredEvent) -> dict[str, Any]:
    return {"position": se.position, **se.event.to_record()}


@events.command("export")
@workspace_option
@server_options
@click.option("--after", default=0, type=int, help="Only events after this log position.")
@click.option("--format", "fmt", type=click.Choice(["jsonl"]), default="jsonl", show_default=True)
@click.option("--output", "-o", type=click.Path(dir_okay=False), default="-", help="File (default: stdout).")
@handle_errors
def events_export(workspace: str, api: str | None, key: str | None, after: int, fmt: str, output: str) -> None:
    """Every stored event with its messageId and log position, as JSON lines."""
    api, key = _resolve_api(workspace, api, key)
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
@server_options
@click.option("--after", default=None, type=int, help="Start after this position (default: the last 10).")
@click.option("--follow/--no-follow", "-f", default=True, help="Keep waiting for new events.")
@click.option("--interval", default=0.5, show_default=True, help="Seconds between polls.")
@handle_errors
def events_tail(workspace: str, api: str | None, key: str | None, after: int | None, follow: bool,
                interval: float) -> None:
    """Print new events as they arrive."""

    def emit(rec: dict[str, Any]) -> None:
        click.echo(orjson.dumps(rec).decode())

    api, key = _resolve_api(workspace, api, key)
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


# The commands other modules contribute: name → (dotted module path exposing `command`, the short help shown by
# `takt --help` without importing the module). Imported only when the command runs.
PLUGINS: dict[str, tuple[str, str]] = {
    "analytics": ("takt.cli.analytics", "Touchpoint analytics: which touchpoints people use, paths to a goal,..."),
    "audit": ("takt.cli.audit", "The audit log, newest first: who read, exported or erased personal data."),
    "campaign": ("takt.cli.campaign", "Campaigns: validate, create, update, list, show and delete campaign documents."),
    "clv": ("takt.cli.clv", "Customer lifetime value: BG/NBD, Pareto/NBD and Gamma-Gamma models."),
    "deliveries": ("takt.cli.deliveries", "Delivery: the dead-letter list of messages a channel could not deliver, and..."),
    "demo": ("takt.cli.demo", "Build a demo workspace: a travel-and-outdoor retailer's customers across..."),
    "export": ("takt.cli.export", "Export the workspace for other engines."),
    "import": ("takt.cli.imports", "Import CRM and commerce files (CSV, Parquet, JSON lines) as records in the..."),
    "models": ("takt.cli.models", "The model factory: one LightGBM model per target, validated, compared with a..."),
    "offers": ("takt.cli.offers", "The offer catalog: offers with interests, eligibility, value, validity,..."),
    "policy": ("takt.cli.policy", "Contact policy: the suppression list and who is contactable."),
    "privacy": ("takt.cli.privacy", "Data subject rights: export everything about a person, erase a person, read..."),
    "profiles": ("takt.cli.profiles", "Look at profiles: show one, search by name or identifier, its timeline."),
    "rebuild": ("takt.cli.rebuild", "Recompute identity and profiles from the whole event log (derived events are..."),
    "segment": ("takt.cli.segment", "Stored segments, and who is in a segment: create, list, count, members, explain."),
    "worker": ("takt.cli.worker", "Follow the log and keep the projections current."),
}


REGISTRATIONS = ("takt.profiles.derived", "takt.segments.live", "takt.policy.consent", "takt.policy.messages",
                 "takt.campaigns.events")
"""Modules whose import registers takt's own event kinds and which of them carry no identifiers: loaded before
any command so that every command folds and checks the log under the same rules as the server (before the group
was lazy, importing every command did this by accident)."""


def load_plugin(name: str) -> click.Command:
    """Import the module behind command ``name`` and return its command."""
    import importlib

    for module in REGISTRATIONS:
        importlib.import_module(module)
    cmd: click.Command = importlib.import_module(PLUGINS[name][0]).command
    return cmd


def settings_documented(doc: Path) -> list[str]:
    """Names of registered settings missing from ``doc`` (used by the docs test)."""
    text = doc.read_text(encoding="utf-8")
    return [name for name in REGISTRY if f"`{name}`" not in text]


if __name__ == "__main__":
    main()
