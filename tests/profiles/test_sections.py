"""Profile sections: later layers add keys to the profile JSON through one registry."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from takt.profiles import sections as sections_module
from takt.profiles.sections import add_sections, register_section, unregister_section


def test_a_registered_section_is_added_and_none_leaves_it_out(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sections_module, "_SECTIONS", {})  # only this test's section: others read real stores
    seen: list[str] = []

    def section(storage: object, profile: dict[str, object], now: datetime) -> object:
        seen.append(str(profile["id"]))
        return {"now": now.isoformat()} if profile["id"] == "p1" else None

    register_section("example_section", section)  # type: ignore[arg-type]
    try:
        now = datetime(2026, 1, 1, tzinfo=UTC)
        one = add_sections(None, {"id": "p1"}, now)  # type: ignore[arg-type]
        two = add_sections(None, {"id": "p2"}, now)  # type: ignore[arg-type]
    finally:
        unregister_section("example_section")
    assert one["example_section"] == {"now": "2026-01-01T00:00:00+00:00"}
    assert "example_section" not in two
    assert seen == ["p1", "p2"]


def test_a_section_cannot_replace_core_data() -> None:
    with pytest.raises(ValueError, match="traits"):
        register_section("traits", lambda s, p, n: None)
