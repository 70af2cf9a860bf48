"""``takt profiles show|search|timeline``: one profile (a readable summary, or the API's JSON with ``--json``),
finding a customer by name or part of an identifier, and a profile's events in time order.

Each works on the workspace itself or, while ``takt serve`` holds it, through the server's API (see
:mod:`takt.cli.remote`); both give the same documents.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import click
import orjson

from takt import workspace as ws_mod
from takt.cli.main import at_or_now, handle_errors, server_options, workspace_option
from takt.cli.remote import Api, server_api
from takt.clock import system_clock
from takt.privacy.audit import cli_actor, record
from takt.storage.base import Storage

PROFILE_ID_PREFIX = "p_"


@click.group("profiles")
def command() -> None:
    """Look at profiles: show one, search by name or identifier, its timeline."""


def _is_profile_id(ref: str) -> bool:
    return ref.startswith(PROFILE_ID_PREFIX) and ":" not in ref


def _print_json(body: Any) -> None:
    click.echo(orjson.dumps(body, option=orjson.OPT_INDENT_2).decode())


@contextmanager
def _local(workspace: str) -> Iterator[tuple[Storage, Any]]:
    """The workspace's storage and its profile projection, caught up (with a progress bar when far behind)."""
    from takt.cli.main import _open_log_storage
    from takt.cli.segment import _runner

    ws = ws_mod.open_workspace(workspace)
    with _open_log_storage(workspace) as storage:
        yield storage, _runner(ws, storage)


# ---- show
def _local_profile(storage: Storage, runner: Any, identifier: str, now: datetime) -> dict[str, Any]:
    """The profile JSON as the API gives it: the core profile plus its sections (segments, scores, CLV)."""
    from takt.api import segments as api_segments
    from takt.models import scoring
    from takt.models.clv.store import register as register_clv
    from takt.profiles.sections import add_sections

    api_segments.attach(storage, runner)
    scoring.attach(storage)
    register_clv()
    pid = identifier if _is_profile_id(identifier) else runner.find(identifier)
    body = add_sections(storage, runner.profile_json(pid, now), now)
    record(storage, system_clock(), cli_actor(), "profile.read", str(body["id"]))  # before it is printed
    return body


def _local_consent(storage: Storage, runner: Any, pid: str) -> list[dict[str, Any]]:
    from takt.api.policy import state_json
    from takt.policy import folded
    from takt.policy.from_profile import facts_from_state, person_from_profile, with_suppression
    from takt.policy.suppression_store import suppression_entries

    def lookup(points: Any) -> Any:
        return suppression_entries(storage, points)

    with runner.lock:
        state = runner.projector.profile(pid)
        base = facts_from_state(state) if state is not None and folded.exact(state) else None
    if state is None:
        return []
    if base is not None:  # the policy facts the fold kept: no events read
        facts = with_suppression(base, lookup)
    else:  # folded before the state kept them: read its events
        events = storage.log.get(sorted(set(state.positions))) if state.positions else []
        facts = person_from_profile(state, events, runner.config.identity, lookup)
    return [state_json(s) for s in facts.person.consent.states().values()]


def _remote_profile(api: Api, identifier: str, at: str | None) -> dict[str, Any]:
    if _is_profile_id(identifier):
        body: dict[str, Any] = api.get(api.path("v1", "profiles", identifier), at=at)
    else:
        body = api.get("/v1/profiles", identifier=identifier, at=at)
    body.pop("links", None)
    return body


@command.command("show")
@workspace_option
@server_options
@click.argument("identifier")
@click.option("--at", default=None, help="Decay interests to this ISO time (default: now).")
@click.option("--json", "as_json", is_flag=True,
              help="The whole profile as the API gives it (identifiers, traits, contact points, interests, "
                   "segments, scores, CLV, …).")
@handle_errors
def show(workspace: str, api: str | None, key: str | None, identifier: str, at: str | None, as_json: bool) -> None:
    """The profile holding IDENTIFIER (TYPE:VALUE, e.g. email:ann@example.com, or a profile id): a summary, or
    everything with --json."""
    server = server_api(workspace, api, key)
    consent: list[dict[str, Any]] = []
    if server is not None:
        body = _remote_profile(server, identifier, at)
        if not as_json:
            consent = server.get(server.path("v1", "profiles", str(body["id"]), "consent")).get("states", [])
    else:
        now = at_or_now(at)
        with _local(workspace) as (storage, runner):
            body = _local_profile(storage, runner, identifier, now)
            if not as_json:
                consent = _local_consent(storage, runner, str(body["id"]))
    if as_json:
        _print_json(body)
        return
    from takt.cli.render import profile_summary

    profile_summary(body, consent)


# ---- search
@command.command("search")
@workspace_option
@server_options
@click.argument("query")
@click.option("--limit", default=20, show_default=True, type=click.IntRange(1, 200), help="Profiles per page.")
@click.option("--after", default=None, help="Continue after this profile id (the previous page's last).")
@click.option("--json", "as_json", is_flag=True, help="The API's JSON page.")
@handle_errors
def search_cmd(workspace: str, api: str | None, key: str | None, query: str, limit: int, after: str | None,
               as_json: bool) -> None:
    """Find profiles by name or part of an identifier (case-insensitive): 'lindqvist', 'ann@', '+4915', 'C1000'.

    Searches what the profiles hold today: every identifier (email, phone, user id, CRM id, anonymous id, …),
    the profile id and the traits' text values. Erased people are not found."""
    server = server_api(workspace, api, key)
    if server is not None:
        body = server.get("/v1/profiles/search", q=query, limit=limit, after=after)
    else:
        with _local(workspace) as (storage, runner):
            found, nxt = runner.search(query, after, limit)
            now = system_clock()
            for p in found:
                record(storage, now, cli_actor(), "profile.search", str(p["id"]))
        body = {"query": query, "profiles": found, "next_after": nxt}
    if as_json:
        _print_json(body)
        return
    from takt.cli.render import search_table

    search_table(body)


# ---- timeline
@command.command("timeline")
@workspace_option
@server_options
@click.argument("identifier")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000), help="Events to show.")
@click.option("--before", default=None, help="The cursor a previous page printed (older events).")
@click.option("--json", "as_json", is_flag=True, help="The API's JSON page (each event with its log position).")
@handle_errors
def timeline_cmd(workspace: str, api: str | None, key: str | None, identifier: str, limit: int, before: str | None,
                 as_json: bool) -> None:
    """IDENTIFIER's events across every touchpoint in event time order, newest first, with log positions."""
    server = server_api(workspace, api, key)
    if server is not None:
        pid = identifier if _is_profile_id(identifier) else _remote_profile(server, identifier, None)["id"]
        body = server.get(server.path("v1", "profiles", str(pid), "timeline"), limit=limit, before=before)
    else:
        from takt.api.profiles import _cursor, _cursor_text

        with _local(workspace) as (_storage, runner):
            pid = identifier if _is_profile_id(identifier) else runner.find(identifier)
            events, nxt = runner.timeline(pid, _cursor(before) if before else None, limit)
        body = {"profile_id": pid, "order": "event time, newest first",
                "events": [{"position": e.position, **e.event.to_record()} for e in events],
                "next_before": _cursor_text(nxt) if nxt else None}
    if as_json:
        _print_json(body)
        return
    from takt.cli.render import timeline_table

    timeline_table(body)
