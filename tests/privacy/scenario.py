"""The scenario of issue 13's erasure and export tests: one person whose email identity keeps apart in three
profiles — a CRM row (``crm_id`` + email) the person's login joins, a second user id with the same email (the
unique-id guard refuses the merge) and a public client's claim of the address — beside another person."""

from __future__ import annotations

import base64
import csv
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from starlette.testclient import TestClient

from takt.ingest.records import ImportOptions, import_file
from takt.storage.base import Storage

NOW = datetime(2026, 11, 24, 12, 0, tzinfo=UTC)


@dataclass(frozen=True)
class Keys:
    admin: dict[str, str]
    """Bearer headers of an admin key."""
    server: dict[str, str]
    """Basic headers of a server (backend) write key."""
    public: dict[str, str]
    """Basic headers of a public write key (its identity is a claim)."""


def crm_file(tmp_path: Path, c: dict[str, str]) -> Path:
    path = tmp_path / "customers.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["crm_id", "email", "first_name", "last_name", "updated_at"])
        w.writerow([f"crm-{c['user']}", c["email"], c["name"].split()[0], c["name"].split()[1],
                    "2026-11-01T10:00:00Z"])
        w.writerow(["crm-other", "other@example.com", "Otto", "Other", "2026-11-01T10:00:00Z"])
    return path


def prepare(storage: Storage, tmp_path: Path, c: dict[str, str]) -> Keys:
    """Import the CRM file (the person and another) and create the keys."""
    summary = import_file(storage.log, crm_file(tmp_path, c), "customers", ImportOptions(source="crm"), now=NOW)
    assert summary.imported == 2, summary
    _, server = storage.keys.create("write", "backend", None, "customer_provided", now=NOW)
    _, public = storage.keys.create("write", "web", None, "customer_provided", now=NOW, trust="public")
    _, admin = storage.keys.create("admin", "a", now=NOW)

    def basic(key: Any) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"{key.reveal()}:".encode()).decode()}

    return Keys({"Authorization": f"Bearer {admin.reveal()}"}, basic(server), basic(public))


def send(client: TestClient, keys: Keys, c: dict[str, str], batch: list[dict[str, Any]]) -> set[str]:
    """Send the person's events (``batch``, through the server key) and the public client's claim of the email;
    catch the projection up; the ids of the person's three profiles (asserted apart)."""
    assert client.post("/v1/batch", json={"batch": batch}, headers=keys.server).status_code == 200
    claim = {"type": "identify", "anonymousId": "anon-claim", "traits": {"email": c["email"]}}
    assert client.post("/v1/batch", json={"batch": [claim]}, headers=keys.public).status_code == 200
    client.app.state.ctx.extras["profiles"].catch_up()  # type: ignore[attr-defined]
    found = [client.get("/v1/profiles", params={"identifier": i}, headers=keys.admin)
             for i in (f"crm_id:crm-{c['user']}", f"user_id:{c['user']}-2", "anonymous_id:anon-claim")]
    assert all(r.status_code == 200 for r in found), [r.text for r in found]
    ids = {r.json()["id"] for r in found}
    assert len(ids) == 3, "identity keeps the three apart (the scenario of the issue)"
    return ids
