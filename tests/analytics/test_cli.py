"""``takt analytics``: tables, JSON, and chart files checked for content (the PNG decoded: its size and that it
is not blank; the SVG holding the axis titles and the data's labels), on a small demo."""

from __future__ import annotations

import csv
import struct
import zlib
from datetime import UTC, datetime
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from takt.cli.main import main
from takt.clock import FixedClock
from takt.demo.feed import build_demo
from takt.demo.generator import DemoConfig

END = datetime(2026, 11, 24, 12, tzinfo=UTC)


def decode_png(data: bytes) -> tuple[int, int, list[bytes]]:
    """(width, height, rows of RGBA/RGB pixel bytes) of an 8-bit non-interlaced PNG."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    pos, idat, header = 8, b"", b""
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos:pos + 4])
        kind, body = data[pos + 4:pos + 8], data[pos + 8:pos + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    width, height, depth, colour = struct.unpack(">IIBB", header[:10])
    assert depth == 8 and colour in (2, 6)
    bpp = 4 if colour == 6 else 3
    raw, stride, rows, prev = zlib.decompress(idat), width * bpp, [], bytearray(width * bpp)
    for y in range(height):
        f, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        rows.append(bytes(line))
        prev = line
    return width, height, rows


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path: Path = tmp_path_factory.mktemp("cli") / "d"
    build_demo(path, DemoConfig(end=END, customers=60, days=120, seed=4), clock=FixedClock(END),
               transport="testclient")
    (path / "takt.toml").write_text((path / "takt.toml").read_text() + "\n[analytics]\nmin_group_size = 2\n")
    return path


def test_attribution_prints_the_models_and_writes_charts_with_content(ws: Path, tmp_path: Path) -> None:
    png, svg, out_csv = tmp_path / "a.png", tmp_path / "a.svg", tmp_path / "a.csv"
    r = CliRunner().invoke(main, ["analytics", "attribution", "-w", str(ws), "--from", "2026-08-01", "--to",
                                  "2026-11-24T12:00:00Z", "--half-life", "3,14", "--png", str(png), "--svg",
                                  str(svg), "--csv", str(out_csv)])
    assert r.exit_code == 0, r.output
    assert "first_touch" in r.output and "markov" in r.output and "time_decay_14d" in r.output
    rows = list(csv.DictReader(out_csv.read_text().splitlines()))
    assert rows and {"touchpoint", "first_touch", "markov"} <= set(rows[0])
    width, height, pixels = decode_png(png.read_bytes())
    assert 400 < width < 2000 and 200 < height < 2000
    colours = {px[i:i + 3] for px in pixels for i in range(0, len(px), 4 if len(px) == width * 4 else 3)}
    assert len(colours) > 20, "a blank or single-colour image"
    text = svg.read_text()
    assert "conversions credited" in text and "touchpoint" in text
    for row in rows:
        assert row["touchpoint"] in text
    assert "web" in text


def test_touchpoints_and_paths_as_json_and_charts(ws: Path, tmp_path: Path) -> None:
    r = CliRunner().invoke(main, ["analytics", "touchpoints", "-w", str(ws), "--from", "2026-08-01", "--trend",
                                  "week", "--json", "--svg", str(tmp_path / "t.svg")])
    assert r.exit_code == 0, r.output
    body = orjson.loads(r.output[:r.output.rindex("}") + 1])
    assert body["by_purpose"] and body["trend_by"] == "week"
    text = (tmp_path / "t.svg").read_text()
    assert body["hour_of_week"], "the heatmap needs data"
    assert "interactions" in text and "hour (local time)" in text
    days = {("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[r["hour_of_week"] // 24] for r in body["hour_of_week"]}
    assert all(f">{d}<" in text for d in days)
    assert all(row["purpose"] in text for row in body["by_purpose"])
    r = CliRunner().invoke(main, ["analytics", "paths", "-w", str(ws), "--from", "2026-08-01", "--length", "3",
                                  "--png", str(tmp_path / "p.png")])
    assert r.exit_code == 0, r.output
    assert "conversions" in r.output
    width, height, _ = decode_png((tmp_path / "p.png").read_bytes())
    assert width > 300 and height > 100


def test_a_bad_option_is_a_usage_error_naming_it(ws: Path) -> None:
    r = CliRunner().invoke(main, ["analytics", "attribution", "-w", str(ws), "--half-life", "-1"])
    assert r.exit_code == 2 and "half_life" in r.output


def test_fresh_prints_every_source(ws: Path) -> None:
    r = CliRunner().invoke(main, ["analytics", "fresh", "-w", str(ws)])
    assert r.exit_code == 0, r.output
    assert "website" in r.output and "no SLA" in r.output and "lag_p50_seconds" in r.output
