"""``takt deliveries dead-letters``: list and replay from the command line."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner

from takt import workspace as ws_mod
from takt.campaigns import dead_letters as dl_mod
from takt.campaigns.dead_letter_store import dead_letters
from takt.campaigns.dead_letters import DeadLetter
from takt.campaigns.model import DeliveryResult
from takt.cli.main import main

AT = datetime(2026, 12, 8, 1, 0, tzinfo=UTC)


def run(*args: str) -> tuple[int, str]:
    r = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return r.exit_code, r.output


@pytest.fixture
def ws(tmp_path: Path) -> Iterator[str]:
    path = str(tmp_path / "ws")
    assert run("init", path)[0] == 0
    with ws_mod.open_workspace(path).open_storage() as storage:
        for i, ch in enumerate(("sms", "push")):
            dead_letters(storage).add(DeadLetter(f"msg_{i}", "winter", 1, "0", f"p_{i}", "marketing", ch,
                                                 "webhook answered 503", 5, AT))
    yield path


def test_list_and_replay(ws: str, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out = run("deliveries", "dead-letters", "-w", ws, "--json")
    assert code == 0
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["msg_0", "msg_1"]
    code, out = run("deliveries", "dead-letters", "-w", ws, "--channel", "push")
    assert code == 0 and "msg_1" in out and "msg_0" not in out

    code, out = run("deliveries", "dead-letters", "-w", ws, "--replay", "msg_0")
    assert code != 0 and "orchestrator" in out and "Traceback" not in out

    sent: list[str] = []

    def factory(storage: object, settings: object) -> dl_mod.Resend:
        return lambda letter: (sent.append(letter.id), DeliveryResult("sent"))[1]

    monkeypatch.setattr(dl_mod, "RESEND_FACTORIES", [factory])
    code, out = run("deliveries", "dead-letters", "-w", ws, "--replay", "msg_0")
    assert code == 0 and "msg_0: sent" in out and sent == ["msg_0"]
    code, out = run("deliveries", "dead-letters", "-w", ws, "--pending", "--json")
    assert [json.loads(line)["id"] for line in out.splitlines()] == ["msg_1"]
    code, out = run("deliveries", "dead-letters", "-w", ws, "--replay", "nope")
    assert code != 0 and "no dead letter" in out
