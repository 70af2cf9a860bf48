"""A workspace: a folder with ``takt.toml`` and, by default, one DuckDB file; or a PostgreSQL database."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from takt import settings as settings_mod
from takt.errors import TaktError
from takt.settings import Settings
from takt.storage.base import Storage

DEFAULT_TOML = """\
# takt workspace settings. Every setting and its default: `takt settings`.
# Any of them can also come from a TAKT_* environment variable (dots become __).

# database_url = "postgresql://user@localhost/takt"   # default: the DuckDB file below
duckdb_file = "takt.duckdb"
"""


@dataclass
class Workspace:
    path: Path
    settings: Settings

    @property
    def backend(self) -> str:
        return "postgres" if self.settings["database_url"] else "duckdb"

    @property
    def duckdb_path(self) -> Path:
        p = Path(self.settings["duckdb_file"])
        return p if p.is_absolute() else self.path / p

    def open_storage(self, read_only: bool = False) -> Storage:
        url = self.settings["database_url"]
        if url:
            if not url.startswith(("postgresql://", "postgres://")):
                raise TaktError(
                    f"setting 'database_url': expected postgresql://…, got a {url.split(':', 1)[0]!r} URL",
                    code="invalid_setting", status=500,
                )
            from takt.storage.postgres import PostgresStorage

            return PostgresStorage(url)
        from takt.storage.duckdb import DuckDBStorage

        return DuckDBStorage(self.duckdb_path, read_only=read_only,
                             memory_limit=self.settings["duckdb_memory_limit"] or None)


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    if path is None:
        path = os.environ.get("TAKT_WORKSPACE") or "."
    return Path(path).expanduser().resolve()


def init(path: str | os.PathLike[str], database_url: str | None = None) -> Workspace:
    """Create a workspace folder with its settings file (and, by default, its DuckDB file)."""
    p = Path(path).expanduser().resolve()
    p.mkdir(parents=True, exist_ok=True)
    toml = p / "takt.toml"
    if not toml.exists():
        text = DEFAULT_TOML
        if database_url:
            text += f'database_url = "{database_url}"\n'
        toml.write_text(text, encoding="utf-8")
    ws = open_workspace(p)
    storage = ws.open_storage()
    storage.close()
    return ws


def open_workspace(path: str | os.PathLike[str] | None = None, must_exist: bool = True) -> Workspace:
    p = resolve_path(path)
    if must_exist and not (p / "takt.toml").exists():
        raise TaktError(
            f"{p} is not a takt workspace (no takt.toml). Create one with `takt init {p}` "
            "or point to one with --workspace / TAKT_WORKSPACE.",
            code="no_workspace", status=500,
        )
    return Workspace(p, settings_mod.load(p))
