"""A workspace: a folder with ``takt.toml`` and, by default, one DuckDB file; or a PostgreSQL database.

The folder and every file takt creates in it are readable by their owner only (0700 / 0600). Its secrets live
in files next to the data, never in the database: the master key (:mod:`takt.privacy.crypto`) and the identity
verification secret (:func:`verification_secret`, :mod:`takt.ingest.verification`).
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from takt import services as services_mod
from takt import settings as settings_mod
from takt.errors import TaktError
from takt.privacy.crypto import default_master_key_path, load_or_create_secret_file
from takt.services import Services
from takt.settings import Settings
from takt.storage import engines
from takt.storage.base import Storage

VERIFICATION_SECRET_PREFIX = "tk_v_"


def verification_secret_path(anchor: str) -> Path:
    """The verification secret's file: beside the master key (``<duckdb file>.verification-secret``; for
    PostgreSQL under ``$TAKT_KEY_DIR``). Every server of a workspace needs the same one, like the master key."""
    return default_master_key_path(anchor).with_suffix(".verification-secret")


def verification_secret(anchor: str) -> str:
    """The workspace's identity-verification secret (``tk_v_`` + 64 hex digits), created on first use. Its
    backend computes ``HMAC-SHA256(secret, userId)`` for the people it has logged in; never print it except
    through an explicit admin command."""
    path = verification_secret_path(anchor)
    raw = load_or_create_secret_file(
        path, lambda: (VERIFICATION_SECRET_PREFIX + secrets.token_hex(32)).encode("ascii"))
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        text = ""
    if not text.startswith(VERIFICATION_SECRET_PREFIX) or len(text) < len(VERIFICATION_SECRET_PREFIX) + 32:
        raise TaktError(f"the verification secret file {path} does not hold a verification secret "
                        f"({VERIFICATION_SECRET_PREFIX}…)", code="invalid_setting", status=500)
    return text

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

    @property
    def single_owner(self) -> bool:
        """Whether one process owns the workspace's database while it is open (:attr:`Storage.single_owner`)."""
        return engines.single_owner(self._database_url())

    def _database_url(self) -> str | None:
        url: str | None = self.settings["database_url"] or None
        if url and not url.startswith(("postgresql://", "postgres://")):
            raise TaktError(
                f"setting 'database_url': expected postgresql://…, got a {url.split(':', 1)[0]!r} URL",
                code="invalid_setting", status=500,
            )
        return url

    def open_storage(self, read_only: bool = False) -> Storage:
        """The workspace's storage, opened, with its :class:`~takt.services.Services` built (the one place they
        are: every caller that opens the workspace gets its stores, runner and writer from there)."""
        storage = engines.open_engine(self._database_url(), self.duckdb_path, read_only=read_only,
                                      memory_limit=self.settings["duckdb_memory_limit"] or None)
        services_mod.attach(storage, self.settings)
        return storage

    def open_services(self, read_only: bool = False) -> Services:
        """The workspace's services over a newly opened storage (close it with ``services.storage.close()``)."""
        storage = self.open_storage(read_only)
        return services_mod.services_of(storage)

    @property
    def anchor(self) -> str:
        """Where the workspace's secret files are found (the storage's :attr:`~takt.storage.base.Storage.anchor`)."""
        return self.settings["database_url"] or str(self.duckdb_path)

    def verification_secret(self) -> str:
        return verification_secret(self.anchor)


def resolve_path(path: str | os.PathLike[str] | None) -> Path:
    if path is None:
        path = os.environ.get("TAKT_WORKSPACE") or "."
    return Path(path).expanduser().resolve()


def init(path: str | os.PathLike[str], database_url: str | None = None) -> Workspace:
    """Create a workspace folder with its settings file (and, by default, its DuckDB file)."""
    p = Path(path).expanduser().resolve()
    existed = p.exists()
    p.mkdir(mode=0o700, parents=True, exist_ok=True)
    if not existed:
        os.chmod(p, 0o700)  # mkdir's mode is masked by the umask
    toml = p / "takt.toml"
    if not toml.exists():
        text = DEFAULT_TOML
        if database_url:
            text += f'database_url = "{database_url}"\n'
        fd = os.open(toml, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
    ws = open_workspace(p)
    storage = ws.open_storage()
    storage.close()
    ws.verification_secret()  # created now, beside the master key
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
