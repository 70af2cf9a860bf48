"""The settings registry.

Every setting has a name, a default and help text. Values come, in rising priority, from the default, the
workspace's ``takt.toml`` and a ``TAKT_<NAME>`` environment variable (dots in a name become ``__``:
``ingest.max_batch_events`` is ``TAKT_INGEST__MAX_BATCH_EVENTS``). An invalid value is a
:class:`~takt.errors.SettingsError` that names the key.

Modules declare their settings with :func:`register` at import time; ``docs/settings.md`` is generated from
this registry and a test fails when a registered setting is missing there.
"""

from __future__ import annotations

import json
import os
import re
import tomllib
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from takt.errors import SettingsError

Parser = Callable[[Any], Any]


@dataclass(frozen=True)
class Setting:
    name: str
    default: Any
    help: str
    parse: Parser
    kind: str
    secret: bool = False
    choices: tuple[str, ...] = ()

    @property
    def env_var(self) -> str:
        return "TAKT_" + self.name.upper().replace(".", "__")


REGISTRY: dict[str, Setting] = {}


def _parse_int(v: Any) -> int:
    if isinstance(v, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.strip().lstrip("-").isdigit():
        return int(v.strip())
    raise ValueError(f"expected an integer, got {v!r}")


def _parse_float(v: Any) -> float:
    if isinstance(v, bool):
        raise ValueError("expected a number, got a boolean")
    if isinstance(v, int | float):
        return float(v)
    if isinstance(v, str):
        try:
            return float(v.strip())
        except ValueError:
            pass
    raise ValueError(f"expected a number, got {v!r}")


def _parse_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if isinstance(v, str) and v.strip().lower() in {"1", "true", "yes", "on"}:
        return True
    if isinstance(v, str) and v.strip().lower() in {"0", "false", "no", "off"}:
        return False
    raise ValueError(f"expected true or false, got {v!r}")


def _parse_str(v: Any) -> str:
    if isinstance(v, str):
        return v
    raise ValueError(f"expected a string, got {v!r}")


def _parse_json(v: Any) -> Any:
    """Structured settings (tables, lists) come from TOML as they are, from the environment as JSON."""
    if isinstance(v, str):
        try:
            return json.loads(v)
        except json.JSONDecodeError as e:
            raise ValueError(f"expected JSON in the environment variable: {e}") from None
    return v


_KINDS: dict[str, Parser] = {
    "int": _parse_int,
    "float": _parse_float,
    "bool": _parse_bool,
    "str": _parse_str,
    "table": _parse_json,
    "list": _parse_json,
}


def register(
    name: str,
    default: Any,
    help: str,
    *,
    kind: str | None = None,
    secret: bool = False,
    choices: tuple[str, ...] = (),
    check: Callable[[Any], None] | None = None,
) -> Setting:
    """Declare a setting. Registering the same name twice with a different definition is an error."""
    if kind is None:
        kind = {bool: "bool", int: "int", float: "float", str: "str", dict: "table", list: "list"}.get(
            type(default), "str"
        )
    base = _KINDS[kind]

    def parse(v: Any) -> Any:
        out = base(v)
        if kind == "table" and not isinstance(out, dict):
            raise ValueError(f"expected a table, got {type(out).__name__}")
        if kind == "list" and not isinstance(out, list):
            raise ValueError(f"expected a list, got {type(out).__name__}")
        if choices and out not in choices:
            raise ValueError(f"expected one of {', '.join(choices)}, got {out!r}")
        if check is not None:
            check(out)
        return out

    s = Setting(name=name, default=default, help=help, parse=parse, kind=kind, secret=secret, choices=choices)
    old = REGISTRY.get(name)
    if old is not None and (old.default != default or old.help != help):
        raise RuntimeError(f"setting {name!r} registered twice with different definitions")
    REGISTRY[name] = s
    return s


def _positive(v: Any) -> None:
    if v <= 0:
        raise ValueError(f"must be positive, got {v!r}")


# ---- core settings (other modules register their own) ----
register("database_url", "", "Where the workspace's data lives. Empty: the DuckDB file `takt.duckdb` in the "
         "workspace. `postgresql://user@host/db` uses a PostgreSQL server.", secret=True)
register("duckdb_file", "takt.duckdb", "The DuckDB database file, relative to the workspace.")


def _memory_size(v: Any) -> None:
    if v and not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", str(v).strip(), re.IGNORECASE):
        raise ValueError(f"expected a size such as 1GB or 512MB (or empty for DuckDB's own default), got {v!r}")


register("duckdb_memory_limit", "1GB", "Most memory DuckDB may use for its buffers (a size such as `1GB`; empty: "
         "DuckDB's default, 80% of the machine's RAM). Above it DuckDB evicts cached blocks of the workspace file "
         "and spills large intermediate results to a temporary folder beside it.", check=_memory_size)
register("server.host", "127.0.0.1", "Address `takt serve` listens on.")
register("server.port", 8321, "Port `takt serve` listens on.", check=_positive)
register("campaigns.run", True, "Whether `takt serve` and `takt worker` run campaigns (enrol, advance and send: "
         "docs/campaigns-running.md). Several processes may: one at a time holds the campaigns lease and sends.")
register("server.fold", "auto", "On PostgreSQL, whether `takt serve` folds the event log into profiles itself: "
         "`auto` (only while no `takt worker` runs; then one server folds and the others read what it publishes), "
         "`always` (every server folds in memory), `never` (read what `takt worker` publishes to the profile store). "
         "On DuckDB the server always folds.", choices=("auto", "always", "never"))
register("server.cors_origins", ["*"], "Origins allowed to call the collection API from a browser.")


def _log_level(v: Any) -> None:
    if str(v).lower() not in LOG_LEVELS:
        raise ValueError(f"expected one of {', '.join(LOG_LEVELS)}, got {v!r}")


LOG_LEVELS = ("debug", "info", "warning", "error")
register("server.log_level", "info", "What `takt serve` logs to stderr: `debug`, `info` (start, the projector's "
         "position, errors), `warning` or `error`. Requests are not logged; secrets and personal data never are.",
         check=_log_level)


def _base_url(v: Any) -> None:
    if v and (not str(v).startswith(("http://", "https://")) or any(ch in str(v) for ch in "?# ")):
        raise ValueError(f"expected an http(s) address such as https://takt.example.com (no query), got {v!r}")


register("server.public_base_url", "",
         "The public address customers reach this server at, e.g. `https://takt.example.com`: links in messages "
         "(unsubscribe, preference center) start with it. Never taken from a request's Host header. Empty: "
         "`http://<server.host>:<server.port>`, right for local use only (`takt serve` warns).",
         check=_base_url)
register("server.public_rate_per_minute", 60, "Requests per minute one client address may make to the endpoints "
         "that need no key (unsubscribe links, the preference center); over it: 429 with Retry-After.",
         check=_positive)
register("server.public_burst", 20, "Requests one client address may make at once to the endpoints that need no key "
         "before `server.public_rate_per_minute` applies.", check=_positive)
register("server.header_timeout_seconds", 10.0, "Seconds a client has to send a request's headers (from connecting, "
         "or from the previous response on a kept-alive connection); then the connection is closed (slow clients, "
         "slowloris).", check=_positive)
register("server.body_timeout_seconds", 30.0, "Seconds a client has to send a request body to the collection "
         "endpoints and the preference form; then 408 and the connection is closed.", check=_positive)
register("server.timeout_keep_alive_seconds", 5, "Seconds an idle kept-alive connection stays open between "
         "requests (uvicorn's timeout_keep_alive).", check=_positive)
register("ingest.max_event_bytes", 32 * 1024, "Largest accepted event, in bytes of JSON.", check=_positive)
register("ingest.max_request_bytes", 500 * 1024, "Largest accepted request body, after decompression.",
         check=_positive)
register("ingest.max_batch_events", 2500, "Most events in one batch request.", check=_positive)


def _nesting(v: Any) -> None:
    if not 1 <= v <= 200:
        raise ValueError(f"must be between 1 and 200 (what the event serializer stores), got {v!r}")


register("ingest.max_nesting_depth", 32, "Deepest nesting of objects and arrays in an event's `properties`, "
         "`traits`, `context` or `integrations`; a deeper item is refused with its field named. Any JSON body "
         "nesting deeper than 200 levels is refused whole.", check=_nesting)
register("ingest.queue_max_events", 200_000, "Events waiting for the writer before new requests get 429.",
         check=_positive)
register("ingest.group_commit_max_events", 20_000, "Most events the writer commits in one transaction.",
         check=_positive)
register("ingest.retry_after_seconds", 1, "Retry-After sent with a 429.", check=_positive)
def _iso_time(v: Any) -> None:
    from datetime import datetime

    try:
        datetime.fromisoformat(str(v).strip())
    except ValueError:
        raise ValueError(f"expected an ISO 8601 date or time such as 1970-01-01, got {v!r}") from None


def _not_negative(v: Any) -> None:
    if v < 0:
        raise ValueError(f"must not be negative, got {v!r}")


register("ingest.earliest_time", "1970-01-01T00:00:00Z", "The earliest time takt accepts as when something "
         "happened (an event's `timestamp`, an imported row's date, an `at` or `--at`): decades of CRM history, "
         "nothing older. Earlier times are refused with a reason (see docs/api.md, *Plausible times*).",
         check=_iso_time)
register("ingest.max_future_hours", 24, "How far after the time it arrives a time may lie (client clock skew) "
         "before it is refused (a declared `timestamp`, an imported date, an `at`) or replaced by the arrival "
         "time (a time derived from device clocks).", check=_not_negative)

register("api.max_at_future_days", 3660, "How far ahead of now an `at` that only asks for a view may lie (`?at=` on "
         "profiles and segments, `at` of a decision or an offer ranking): planning a year ahead is fine, the year "
         "9999 is refused. An `at` that becomes an event's time (a recorded message) keeps the tight "
         "`ingest.max_future_hours`.", check=_not_negative)
register("profiles.live", True, "Fold profiles live inside `takt serve` (reads see new events within "
         "milliseconds). Off, the server only collects: for bulk loads, with `takt rebuild` or `takt worker` "
         "bringing profiles up to date afterwards.")


def _share(v: Any) -> None:
    if not 0 < v <= 1:
        raise ValueError(f"must be more than 0 and at most 1, got {v!r}")


def _size(v: Any) -> None:
    if not re.fullmatch(r"\d+(\.\d+)?\s*(B|KB|MB|GB|TB|KiB|MiB|GiB|TiB)", str(v).strip(), re.IGNORECASE):
        raise ValueError(f"expected a size such as 64MB, got {v!r}")


# ---- segment query budgets (takt.segments.budget; what each means per engine: docs/segments.md, "Budgets")
register("segments.query_timeout_seconds", 30.0, "Longest a segment count, member export or explain may run its "
         "query; beyond it the query is stopped and the request gets 422 `query_timeout`.", check=_positive)
register("segments.query_memory_share", 0.25, "DuckDB: the share of `duckdb_memory_limit` a segment query's "
         "intermediates (hash tables, sorts) may grow by; beyond it the query is stopped (422 `query_memory`).",
         check=_share)
register("segments.query_work_mem", "64MB", "PostgreSQL: `work_mem` of a segment query (memory per sort or hash "
         "before it spills to temporary files).", check=_size)
register("segments.query_spill_limit", "1GB", "Most a segment query may spill to temporary files (PostgreSQL: "
         "`temp_file_limit`, when the role may set it); beyond it the query is stopped (422 `query_memory`).",
         check=_size)
register("segments.query_concurrency_per_key", 2, "Segment counts, member exports and explains one API key may "
         "run at once in one server; more get 429 `too_many_queries` with Retry-After.", check=_positive)
register("segments.query_concurrency", 3, "Segment counts, member exports and explains one server runs at once, "
         "all keys together (so heavy queries cannot starve ingestion); more get 429 `too_many_queries`.",
         check=_positive)


@dataclass
class Settings:
    """Resolved settings for one workspace. Read a value with ``settings["ingest.max_batch_events"]``."""

    values: dict[str, Any] = field(default_factory=dict)
    origins: dict[str, str] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Any:
        if name not in REGISTRY:
            raise KeyError(f"unknown setting {name!r}")
        return self.values.get(name, REGISTRY[name].default)

    def get(self, name: str, default: Any = None) -> Any:
        return self[name] if name in REGISTRY else default

    def items(self) -> Iterator[tuple[Setting, Any, str]]:
        for name in sorted(REGISTRY):
            yield REGISTRY[name], self[name], self.origins.get(name, "default")

    def with_values(self, **overrides: Any) -> Settings:
        """A copy with values replaced (names use ``__`` for dots); values are validated."""
        values = dict(self.values)
        origins = dict(self.origins)
        for key, raw in overrides.items():
            name = key.replace("__", ".")
            values[name] = _validate(name, raw, "override")
            origins[name] = "override"
        return Settings(values, origins)


def _flatten(table: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    for k, v in table.items():
        name = f"{prefix}{k}"
        if isinstance(v, dict) and name not in REGISTRY:
            yield from _flatten(v, name + ".")
        else:
            yield name, v


def _validate(name: str, raw: Any, origin: str) -> Any:
    setting = REGISTRY.get(name)
    if setting is None:
        from difflib import get_close_matches

        close = get_close_matches(name, list(REGISTRY), n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise SettingsError(name, f"unknown setting in {origin}{hint}")
    try:
        return setting.parse(raw)
    except ValueError as e:
        raise SettingsError(name, f"invalid value in {origin}: {e}") from None


def load(workspace: Path | None = None, env: Mapping[str, str] | None = None) -> Settings:
    """Resolve settings: defaults < ``takt.toml`` < ``TAKT_*`` environment variables."""
    _load_all_modules()
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    if workspace is not None:
        path = Path(workspace) / "takt.toml"
        if path.exists():
            try:
                data = tomllib.loads(path.read_text(encoding="utf-8"))
            except tomllib.TOMLDecodeError as e:
                raise SettingsError("takt.toml", f"{path}: {e}") from None
            for name, raw in _flatten(data):
                values[name] = _validate(name, raw, str(path))
                origins[name] = str(path)
    by_env = {s.env_var: s for s in REGISTRY.values()}
    for var, raw in env.items():
        if not var.startswith("TAKT_") or var in _NOT_SETTINGS:
            continue
        s = by_env.get(var)
        if s is None:
            continue
        values[s.name] = _validate(s.name, raw, f"environment variable {var}")
        origins[s.name] = var
    return Settings(values, origins)


# Environment variables of takt that are not workspace settings.
_NOT_SETTINGS = {"TAKT_WORKSPACE", "TAKT_TEST_POSTGRES_URL", "TAKT_API_URL", "TAKT_KEY"}

# Modules that register settings; imported so the registry is complete before anything is resolved.
SETTINGS_MODULES: list[str] = [
    "takt.identity.config",
    "takt.profiles.config",
    "takt.policy.config",
    "takt.profiles.store",
    "takt.segments.live",
    "takt.models.factory",
    "takt.campaigns.delivery.config",
    "takt.analytics.config",
]


def _load_all_modules() -> None:
    import importlib

    for mod in SETTINGS_MODULES:
        importlib.import_module(mod)


def markdown() -> str:
    """``docs/settings.md``: every registered setting with its default, environment variable and help."""
    _load_all_modules()
    lines = [
        "# Settings",
        "",
        "Generated by `takt settings --markdown` from the settings registry; a test fails when a setting is "
        "missing here.",
        "Values come from the default, then the workspace's `takt.toml` (dotted names are TOML tables: "
        "`ingest.max_batch_events` is `max_batch_events` under `[ingest]`), then `TAKT_*` environment variables.",
        "",
        "| setting | default | environment variable | what it does |",
        "| --- | --- | --- | --- |",
    ]
    for name in sorted(REGISTRY):
        st = REGISTRY[name]
        default = json.dumps(st.default) if not st.secret else '""'
        help_text = st.help.replace("|", "\\|")
        lines.append(f"| `{name}` | `{default}` | `{st.env_var}` | {help_text} |")
    return "\n".join(lines) + "\n"


def redact(setting: Setting, value: Any) -> Any:
    if setting.secret and value:
        return "********"
    return value
