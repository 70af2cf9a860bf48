"""Human output for the CLI: tables for lists, short summaries for one object (rich, on standard output).

Ids are always printed whole (a column holding ids never wraps or truncates them), so any id shown can be given
back to another command. ``--json`` bypasses all of this.
"""

from __future__ import annotations

import io
import shutil
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.table import Table

TOP_TRAITS = 12
TOP_INTERESTS = 8


class _Out:
    """Prints rich renderables through click (so output goes where click sends it), lines without trailing
    blanks; colour only on a terminal."""

    def print(self, what: Any = "") -> None:
        width = max(shutil.get_terminal_size((160, 24)).columns, 100)
        tty = sys.stdout.isatty()
        buf = Console(file=io.StringIO(), width=width, highlight=False, soft_wrap=False, force_terminal=tty,
                      color_system="auto" if tty else None)
        buf.print(what)
        text = buf.file.getvalue()  # type: ignore[attr-defined]
        click.echo("\n".join(line.rstrip() for line in text.rstrip("\n").split("\n")))


def console() -> _Out:
    """Standard output; as wide as the terminal, or wide enough not to break lines when piped."""
    return _Out()


def table(columns: Sequence[str], rows: Iterable[Sequence[Any]], ids: Sequence[str] = (), title: str | None = None,
          header: bool = True) -> Table:
    """A table; the ``ids`` columns never wrap. Without ``header`` each line is one row (for lists a script
    reads line by line, whose first column says what the row is)."""
    rows = [[_cell(v) for v in r] for r in rows]
    t = Table(title=title, title_justify="left", show_edge=False, pad_edge=False, box=None, header_style="bold",
              show_header=header)
    for i, c in enumerate(columns):
        if c in ids:
            width = max([len(c), *(len(r[i]) for r in rows)])
            t.add_column(c, no_wrap=True, min_width=width, overflow="ignore")
        else:
            t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*r)
    return t


def _cell(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k}: {_cell(x)}" for k, x in v.items())
    if isinstance(v, list):
        return ", ".join(_cell(x) for x in v)
    return str(v)


def _day(t: Any) -> str:
    return str(t)[:19].replace("T", " ") if t else "-"


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], ids: Sequence[str] = (),
                empty: str = "nothing to show", title: str | None = None, header: bool = True) -> None:
    rows = list(rows)
    out = console()
    if not rows:
        out.print(empty)
        return
    out.print(table(columns, rows, ids, title, header))


# ---- profiles
def _name(profile: dict[str, Any]) -> str | None:
    traits = profile.get("traits") or {}
    for k in ("name", "full_name", "fullName"):
        v = (traits.get(k) or {}).get("value") if isinstance(traits.get(k), dict) else traits.get(k)
        if v:
            return str(v)
    parts = []
    for k in ("first_name", "last_name", "firstName", "lastName"):
        t = traits.get(k)
        v = t.get("value") if isinstance(t, dict) else t
        if v:
            parts.append(str(v))
    return " ".join(parts) or None


def profile_summary(p: dict[str, Any], consent: Sequence[dict[str, Any]] = ()) -> None:
    """Identity, top traits and contact points with provenance, consent, top interests, segments, scores, CLV."""
    out = console()
    name = _name(p)
    stats = p.get("stats") or {}
    out.print(f"[bold]profile {p['id']}[/]" + (f"  {name}" if name else ""))
    out.print(f"  {stats.get('events', 0)} events, first seen {_day(stats.get('first_seen'))}, "
              f"last seen {_day(stats.get('last_seen'))}; touchpoints: "
              + (", ".join(sorted(p.get("touchpoints") or {})) or "-"))
    out.print("  identifiers: " + (", ".join(p.get("identifiers") or []) or "-"))
    if p.get("merges"):
        out.print(f"  merged from {len(p['merges'])} other profile(s)")
    rows: list[tuple[Any, ...]]
    traits = p.get("traits") or {}
    if traits:
        rows = [(k, t.get("value") if isinstance(t, dict) else t, (t or {}).get("provenance"), (t or {}).get("source"),
                 _day((t or {}).get("at"))) for k, t in sorted(traits.items())[:TOP_TRAITS]]
        more = f" (first {TOP_TRAITS} of {len(traits)}; --json for all)" if len(traits) > TOP_TRAITS else ""
        out.print(table(("trait", "value", "provenance", "source", "at"), rows, title=f"\ntraits{more}"))
    cps = p.get("contact_points") or []
    if cps:
        rows = [(c.get("type"), c.get("value"), c.get("provenance"), c.get("source"), c.get("customer_given"),
                 c.get("verified"), _day(c.get("last_seen"))) for c in cps]
        out.print(table(("contact point", "value", "provenance", "source", "customer given", "verified", "last seen"),
                        rows, title="\ncontact points"))
    if consent:
        rows = [(s.get("purpose"), s.get("channel"), s.get("contact_point"), s.get("status"), s.get("confirmed"),
                 _day(s.get("since"))) for s in consent]
        out.print(table(("purpose", "channel", "contact point", "status", "confirmed", "since"), rows,
                        title="\nconsent"))
    interests = p.get("interests") or []
    if interests:
        rows = [(i.get("key"), i.get("score")) for i in interests[:TOP_INTERESTS]]
        out.print(table(("interest", "score"), rows, title="\ntop interests"))
    segments = p.get("segments")
    if segments is not None:
        out.print("\nsegments: " + (", ".join(f"{s['name']} v{s['version']}" for s in segments) or "none"))
    scores = p.get("scores")
    if scores:
        rows = [(m, s.get("score"), s.get("version"), _day(s.get("scored_at"))) for m, s in sorted(scores.items())]
        out.print(table(("model", "score", "version", "scored at"), rows, title="\nscores"))
    clv = p.get("clv")
    if clv:
        out.print("\nCLV: " + _cell(clv))
    out.print("\n(everything: --json)")


def search_table(body: dict[str, Any]) -> None:
    found = body.get("profiles") or []
    rows = [(p["id"], p.get("name"), "; ".join(f"{m['field']} {m['value']}" for m in p.get("matched", [])),
             p.get("events")) for p in found]
    print_table(("profile", "name", "matched", "events"), rows, ids=("profile",),
                empty=f"no profile matches {body.get('query')!r}")
    if body.get("next_after"):
        Console(stderr=True).print(f"more: --after {body['next_after']}")


def timeline_table(body: dict[str, Any]) -> None:
    rows = []
    for e in body.get("events") or []:
        what = e.get("event") or e.get("name") or e.get("type")
        rows.append((_day(e.get("timestamp")), e.get("position"), e.get("type"), what, e.get("source"),
                     e.get("messageId")))
    print_table(("time", "position", "type", "event", "source", "message id"), rows, ids=("message id",),
                empty="no events", title=f"profile {body.get('profile_id')}: events, newest first")
    if body.get("next_before"):
        Console(stderr=True).print(f"older: --before {body['next_before']}")
