"""`takt campaign` through the CLI runner: validate offline with underlined problems; create, update, list,
show and delete on a workspace (DuckDB and PostgreSQL), checked against the workspace's names."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from takt.cli.main import main
from takt.workspace import open_workspace
from tests.test_segment_workspace import people

YAML = """name: ny-city-break
intent: marketing
audience: interest("destination:new-york") > 0
trigger: {on: schedule, cron: "0 9 * * MON", timezone: Europe/Berlin}
channels: [email, sms]
message:
  email:
    subject: "New York, {{ traits.firstName }}?"
    text: "Hi {{ traits.firstName }}. {{ unsubscribe_url }}"
    defaults: {traits.firstName: there}
  sms: {text: "New York? {{ unsubscribe_url }}"}
"""


@pytest.fixture(params=["duckdb", "postgres"])
def ws(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "ws"
    args = ["init", str(path)]
    if request.param == "postgres":
        args += ["--database-url", request.getfixturevalue("pg_url")]
    r = CliRunner().invoke(main, args)
    assert r.exit_code == 0, r.output
    with open_workspace(path).open_storage() as s:
        s.log.append(people())
    return path


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    r = CliRunner().invoke(main, ["campaign", *args], input=stdin)
    return r.exit_code, r.stdout, r.stderr


def test_validate_offline(tmp_path: Path) -> None:
    good = tmp_path / "c.yaml"
    good.write_text(YAML)
    code, out, _ = run("validate", str(good))
    assert code == 0 and "campaign 'ny-city-break' is valid" in out and "channels email, sms" in out
    bad = YAML.replace("interest(", "interst(").replace("defaults: {traits.firstName: there}", "").replace(
        "[email, sms]", "[email, sms, pusch]")
    code, _, err = run("validate", "-", stdin=bad)
    assert code == 2
    assert "audience: unknown function 'interst'" in err and "^^^^^^^ did you mean 'interest'?" in err
    assert "channels[2]: unknown channel 'pusch'" in err and "did you mean 'push'?" in err
    assert "message.email.subject: traits.firstName may be missing" in err and "line 1, column 14" in err
    code, out, _ = run("validate", "-", "--json", stdin=bad)
    assert code == 2 and json.loads(out)["code"] == "invalid_campaign"


def test_store_commands(ws: Path, tmp_path: Path) -> None:
    w = ["-w", str(ws)]
    code, out, err = run("create", *w, "-", stdin=YAML)
    assert code == 0, err
    assert "created campaign 'ny-city-break' version 1" in out
    assert run("create", *w, "-", stdin=YAML)[0] == 2  # exists
    code, out, _ = run("update", *w, "-", stdin=YAML.replace("New York?", "NYC?"))
    assert code == 0 and "updated campaign 'ny-city-break' version 2" in out
    assert "unchanged" in run("update", *w, "-", stdin=YAML.replace("New York?", "NYC?"))[1]
    code, out, _ = run("list", *w, "--json")
    assert [json.loads(line)["version"] for line in out.splitlines()] == [2]
    code, out, _ = run("show", *w, "ny-city-break", "--version", "1", "--json")
    assert json.loads(out)["document"]["message"]["sms"]["text"] == "New York? {{ unsubscribe_url }}"
    code, out, _ = run("delete", *w, "ny-city-break")
    assert code == 0 and "version 3" in out
    code, out, _ = run("show", *w, "ny-city-break", "--versions", "--json")
    assert [json.loads(line)["archived"] for line in out.splitlines()] == [False, False, True]
    code, _, err = run("create", *w, "-", stdin=YAML.replace("new-york", "new-yrok"))
    assert code == 2 and "did you mean 'destination:new-york'" in err  # the workspace's interests
    assert run("create", *w, "-", "--allow-unknown-names", stdin=YAML.replace("new-york", "new-yrok"))[0] == 0


def test_through_a_running_server(tmp_path: Path) -> None:
    """With --api the commands go through the server; its 422 keeps every problem at its field."""
    import socket
    import threading
    import time

    import uvicorn

    from takt.api.app import create_app
    from takt.clock import FixedClock
    from takt.settings import load
    from takt.storage.duckdb import DuckDBStorage
    from tests.test_segment_workspace import NOW

    storage = DuckDBStorage(tmp_path / "t.duckdb")
    storage.log.append(people())
    _, admin = storage.keys.create("admin", "ops", now=NOW)
    app = create_app(storage, load(None, env={}), FixedClock(NOW))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            time.sleep(0.05)
        assert server.started
        api = ["--api", f"http://127.0.0.1:{port}", "--key", admin.reveal()]
        code, out, err = run("create", *api, "-", stdin=YAML)
        assert code == 0, err
        assert "created campaign 'ny-city-break' version 1" in out
        code, _, err = run("create", *api, "-", stdin=YAML.replace("new-york", "new-yrok").replace(
            "name: ny-city-break", "name: other"))
        assert code == 2 and "422" in err and "audience: unknown interest" in err and "^^^" in err
        code, out, _ = run("update", *api, "-", stdin=YAML.replace("New York?", "NYC?"))
        assert code == 0 and "updated campaign 'ny-city-break' version 2" in out
        code, out, _ = run("list", *api)
        assert out.split()[:2] == ["ny-city-break", "v2"]
        code, out, _ = run("show", *api, "ny-city-break", "--version", "1", "--json")
        assert json.loads(out)["version"] == 1
        code, out, _ = run("delete", *api, "ny-city-break", "--json")
        assert json.loads(out)["archived"] is True
        code, out, _ = run("show", *api, "ny-city-break", "--versions", "--json")
        assert len(out.splitlines()) == 3
    finally:
        server.should_exit = True
        thread.join(timeout=30)
        storage.close()
