"""The settings registry: sources, validation with the key named, and documentation."""

from __future__ import annotations

from pathlib import Path

import pytest

from takt import settings as s
from takt.errors import SettingsError

ROOT = Path(__file__).resolve().parents[1]


def test_defaults_toml_and_environment_in_that_order(tmp_path: Path) -> None:
    (tmp_path / "takt.toml").write_text("[ingest]\nmax_batch_events = 100\n[server]\nport = 9000\n")
    st = s.load(tmp_path, env={"TAKT_SERVER__PORT": "9100"})
    assert st["ingest.max_batch_events"] == 100
    assert st["server.port"] == 9100
    assert st["ingest.max_event_bytes"] == 32 * 1024
    assert st.origins["server.port"] == "TAKT_SERVER__PORT"


@pytest.mark.parametrize("toml,key", [
    ("[ingest]\nmax_batch_events = \"many\"\n", "ingest.max_batch_events"),
    ("[ingest]\nmax_batch_events = -1\n", "ingest.max_batch_events"),
    ("[server]\nprot = 1\n", "server.prot"),
    ("duckdb_file = 3\n", "duckdb_file"),
    ("duckdb_memory_limit = \"lots\"\n", "duckdb_memory_limit"),
])
def test_invalid_values_name_the_key(tmp_path: Path, toml: str, key: str) -> None:
    (tmp_path / "takt.toml").write_text(toml)
    with pytest.raises(SettingsError) as e:
        s.load(tmp_path, env={})
    assert e.value.key == key and key in str(e.value)


def test_unknown_setting_suggests_a_close_name(tmp_path: Path) -> None:
    (tmp_path / "takt.toml").write_text("[server]\nprot = 1\n")
    with pytest.raises(SettingsError, match=r"did you mean 'server\.port'"):
        s.load(tmp_path, env={})


def test_invalid_environment_value_names_the_variable() -> None:
    with pytest.raises(SettingsError, match="TAKT_SERVER__PORT"):
        s.load(None, env={"TAKT_SERVER__PORT": "eighty"})


def test_every_setting_has_help_and_is_documented() -> None:
    s._load_all_modules()
    for setting in s.REGISTRY.values():
        assert setting.help.strip(), setting.name
    doc = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    missing = [name for name in s.REGISTRY if f"`{name}`" not in doc]
    assert not missing, f"undocumented settings (run `takt settings --markdown > docs/settings.md`): {missing}"


def test_secret_settings_are_redacted() -> None:
    setting = s.REGISTRY["database_url"]
    assert s.redact(setting, "postgresql://u:pw@h/db") == "********"


@pytest.mark.parametrize("value,expected", [("256MB", "244.1 MiB"), ("", None)])
def test_duckdb_memory_limit_reaches_the_workspace_database(tmp_path: Path, value: str,
                                                           expected: str | None) -> None:
    from takt import workspace as ws_mod

    ws = ws_mod.init(tmp_path / "ws")
    (ws.path / "takt.toml").write_text(f"duckdb_memory_limit = \"{value}\"\n")
    ws = ws_mod.open_workspace(ws.path)
    with ws.open_storage() as storage:
        limit = getattr(storage, "con").execute(  # noqa: B009 - DuckDBStorage's connection
            "SELECT current_setting('memory_limit')").fetchall()[0][0]
    if expected is None:  # DuckDB's own default: a share of the machine's memory, more than the 1GB we set
        assert limit != "953.6 MiB" and limit != "244.1 MiB"
    else:
        assert limit == expected
