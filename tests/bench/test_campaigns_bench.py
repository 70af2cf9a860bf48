"""``bench/campaigns.py`` at a tiny size: a campaign to every person and a triggered one are sent through a real
server into the benchmark's SMTP sink, and every figure of issue 14 is reported with its target."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_benchmark_sends_every_email_and_reports_its_figures() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "campaigns.py"), "--people", "30", "--triggers", "3",
                          "--timeout", "120", "--json"], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    f = result["figures"]
    assert f["emails_received"] == 30 and f["campaign_status"]["sent"] == 30
    assert f["triggered_emails"] == 3 and f["p99_send_delay_ms"] > 0
    assert f["sends_per_s"] > 0 and f["peak_rss_mb"] > 0 and 0 < f["decide_share"] < 1
    assert set(result["results"]) == {"sends_per_s", "p99_send_delay_ms"} and result["failures"] == []
