"""Charts of the reports as Vega-Lite specifications, rendered to SVG or PNG with vl-convert (no network), so the
same specification serves a web page and the files; and the report's main table as CSV."""

from __future__ import annotations

import csv
import io
from typing import Any

SCHEMA = "https://vega.github.io/schema/vega-lite/v5.json"
DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")


def _title(report: dict[str, Any], what: str) -> dict[str, Any]:
    s = report["scope"]
    return {"text": what, "subtitle": f"{s['segment']} · {s['from'][:10]} – {s['to'][:10]}"}


def touchpoints_spec(report: dict[str, Any]) -> dict[str, Any]:
    """Interactions by touchpoint and purpose (stacked bars) above the hour-of-week heatmap."""
    heat = [{"day": DAYS[r["hour_of_week"] // 24], "hour": r["hour_of_week"] % 24, "events": r["events"]}
            for r in report["hour_of_week"]]
    return {
        "$schema": SCHEMA, "title": _title(report, "Touchpoints"), "vconcat": [
            {"data": {"values": report["by_purpose"]}, "mark": "bar", "width": 420, "height": 220,
             "encoding": {"x": {"field": "touchpoint", "type": "nominal", "title": "touchpoint"},
                          "y": {"field": "events", "type": "quantitative", "aggregate": "sum",
                                "title": "interactions"},
                          "color": {"field": "purpose", "type": "nominal", "title": "purpose"}}},
            {"data": {"values": heat}, "mark": "rect", "width": 420, "height": 160,
             "encoding": {"x": {"field": "hour", "type": "ordinal", "title": "hour (local time)"},
                          "y": {"field": "day", "type": "ordinal", "sort": list(DAYS), "title": "day"},
                          "color": {"field": "events", "type": "quantitative", "aggregate": "sum",
                                    "title": "interactions"}}},
        ]}


def paths_spec(report: dict[str, Any]) -> dict[str, Any]:
    rows = [{"path": " → ".join(p["path"]), "conversions": p["conversions"]} for p in report["paths"]]
    return {"$schema": SCHEMA, "title": _title(report, f"Paths to {report['goal']}"),
            "data": {"values": rows}, "mark": "bar", "width": 420,
            "encoding": {"y": {"field": "path", "type": "nominal", "sort": "-x", "title": "path"},
                         "x": {"field": "conversions", "type": "quantitative", "title": "conversions"}}}


def attribution_spec(report: dict[str, Any]) -> dict[str, Any]:
    rows = [{"touchpoint": r["touchpoint"], "model": m, "credit": r[m]}
            for r in report["touchpoints"] for m in report["models"]]
    return {"$schema": SCHEMA, "title": _title(report, f"Attribution of {report['goal']}"),
            "data": {"values": rows}, "mark": "bar", "width": 480, "height": 260,
            "encoding": {"x": {"field": "touchpoint", "type": "nominal", "title": "touchpoint"},
                         "xOffset": {"field": "model", "type": "nominal"},
                         "y": {"field": "credit", "type": "quantitative", "title": "conversions credited"},
                         "color": {"field": "model", "type": "nominal", "title": "model"}}}


SPECS = {"touchpoints": touchpoints_spec, "paths": paths_spec, "attribution": attribution_spec}


def spec(kind: str, report: dict[str, Any]) -> dict[str, Any]:
    return SPECS[kind](report)


def svg(chart: dict[str, Any]) -> str:
    import vl_convert

    return str(vl_convert.vegalite_to_svg(chart))


def png(chart: dict[str, Any], scale: float = 1.0) -> bytes:
    import vl_convert

    return bytes(vl_convert.vegalite_to_png(chart, scale=scale))


def table_rows(kind: str, report: dict[str, Any]) -> tuple[list[str], list[list[Any]]]:
    """The report's main table: (columns, rows)."""
    if kind == "touchpoints":
        cols = ["touchpoint", "purpose", "events", "people"]
        return cols, [[r[c] for c in cols] for r in report["by_purpose"]]
    if kind == "paths":
        return ["path", "conversions", "people"], [[" > ".join(p["path"]), p["conversions"], p["people"]]
                                                  for p in report["paths"]]
    cols = ["touchpoint", *report["models"], "people"]
    return cols, [[r[c] for c in cols] for r in report["touchpoints"]]


def to_csv(kind: str, report: dict[str, Any]) -> str:
    cols, rows = table_rows(kind, report)
    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(cols)
    w.writerows(rows)
    return buf.getvalue()
