"""docs/policy.md lists every reason code with its sentence and every policy setting with its default."""

from __future__ import annotations

import json
import re
from dataclasses import fields
from pathlib import Path

import takt.policy.config  # registers the settings
from takt.policy import PolicySettings
from takt.policy.reasons import REASONS
from takt.settings import REGISTRY, SETTINGS_MODULES

DOC = Path(__file__).resolve().parents[2] / "docs" / "policy.md"


def _table(heading: str) -> list[list[str]]:
    text = DOC.read_text(encoding="utf-8")
    section = text.split(f"## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row.strip("|").split(" | ")] for row in rows]


def test_every_reason_code_is_documented_with_its_sentence() -> None:
    documented = {row[0].strip("`"): row[1] for row in _table("Reason codes")}
    missing = sorted(set(REASONS) - set(documented))
    assert not missing, f"reason codes missing from docs/policy.md: {missing}"
    unknown = sorted(set(documented) - set(REASONS))
    assert not unknown, f"docs/policy.md lists codes policy does not have: {unknown}"
    for code, sentence in REASONS.items():
        assert documented[code] == sentence, code


def test_the_required_reason_codes_exist() -> None:
    required = {"no_consent", "withdrawn", "objected", "not_double_opted_in", "third_party_contact_point",
                "observed_contact_point", "no_contact_point", "budget_exhausted", "daily_limit", "quiet_hours",
                "suppressed", "complaint_cooloff", "not_preferred_channel", "one_channel_per_message",
                "allowed"}
    assert required <= set(REASONS)


def test_every_policy_setting_is_documented_with_its_default() -> None:
    documented = {row[0].strip("`"): row[1].strip("`") for row in _table("Settings")}
    registered = {name: s for name, s in REGISTRY.items() if name.startswith("policy.")}
    assert len(registered) == 8
    assert set(documented) == set(registered)
    for name, setting in registered.items():
        assert json.loads(documented[name]) == setting.default, name
        assert re.search(re.escape(setting.help), DOC.read_text(encoding="utf-8")), name


def test_policy_settings_defaults_are_the_registered_defaults() -> None:
    for f in fields(PolicySettings):
        if f.name == "suppression_key":
            continue
        assert REGISTRY[f"policy.{f.name}"].default == f.default, f.name
    assert "takt.policy.config" in SETTINGS_MODULES
    assert takt.policy.config.DEFAULTS["policy.max_marketing_per_day"] == 1


def test_every_suppression_reason_and_standing_code_is_documented() -> None:
    from takt.policy.segment_functions import STANDING
    from takt.policy.suppression_store import SUPPRESSION_REASONS

    documented = {row[0].strip("`") for row in _table("Suppression list")}
    assert documented == set(SUPPRESSION_REASONS)
    contactable = DOC.read_text(encoding="utf-8").split("## Contactable, in segments\n", 1)[1]
    for code in STANDING:
        assert f"`{code}`" in contactable, code
