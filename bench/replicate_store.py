"""Replicate a DuckDB workspace's profile projection K times: a large workspace for `takt serve` benchmarks.

    python bench/replicate_store.py --source WS --out WS2 --copies K [--memory-limit 2GB] [--force]

Folding a log of a million people takes longer than a benchmark session has, so this builds a workspace that
looks, to `takt serve`, like one whose projection was fully built over K times as many people: the source
folder is copied (DuckDB file, master key, takt.toml, keys, …) and every per-profile projection row is appended
K-1 more times with renamed ids and identifiers:

* ``profile_states`` (the state blob's contact points and identifier traits renamed, positions kept),
* ``identity_clusters`` (the ``data`` record and the ``idx`` blob: cluster, merge, conflict and split ids,
  identifiers, separations), ``identity_members``,
* every table with a ``profile_id`` column (``profile_contactability``, model scores, …),
* the per-profile parts of ``projection_snapshots``: the contactability marker's pending profiles and the live
  segments' members and due times.

``profile_store_meta`` and the contactability marker keep their position (the log's), so the server starts
from the store without folding or recomputing anything (see ``docs/profiles.md``).

**Renaming** (copy ``k`` = 1 … K-1; copy 0 is the source's rows unchanged): ids ``p_``/``mrg_``/``cf_`` + 20 hex
keep their length, the first 4 hex digits replaced by ``x`` and ``k`` in base 36 (``p_x001…``: never a source
id, as ``x`` is no hex digit); an ``email`` value gets
the local-part prefix ``r0001.``; a ``phone`` value gets ``0001`` appended (unique, not dialable); any other
identifier value gets ``-r0001`` appended. Each source row is renamed once in Python (decoded, renamed field by
field, encoded into a template holding placeholders for ``k``); DuckDB then expands the templates for all
copies in set-based ``INSERT … SELECT … CROSS JOIN`` (the copies' tags) statements. The primary keys reject any id a copy
would share with another row.

**What is not replicated: the log.** It keeps only the source's events. A copy's state still lists the
positions of the events its source profile folded (so states have their real size), so a copy's timeline shows
its source's events, and no event names a copy's identifiers: `takt rebuild` on the result would drop every
copy. The result is for measuring the serving path (start, memory, reads), not for folding.

**Sealed rows** (``takt.profiles.sealed``): the source's rows are opened in the copy first (states and clusters
decrypted, ``idx`` and member rows rebuilt from the cluster records), renamed and expanded as above, then every
row is sealed again as the server writes it: a new key per copied profile id, identifiers as keyed hashes.

The workspace is built in ``OUT.partial`` and renamed to ``OUT`` when complete (an interrupted run leaves no
half-built workspace), then checkpointed, so the server does not replay a large WAL at start.
"""

from __future__ import annotations

import argparse
import re
import shutil
import struct
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pyarrow as pa
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from takt import settings as settings_mod  # noqa: E402
from takt.errors import TaktError  # noqa: E402
from takt.identity.config import IdentityConfig  # noqa: E402
from takt.log.sealing import Sealer  # noqa: E402
from takt.policy.segment_functions import MARKER  # noqa: E402
from takt.privacy.crypto import MasterKey, Random, default_master_key_path  # noqa: E402
from takt.profiles.sealed import SealedProfileStore  # noqa: E402
from takt.profiles.state import BLOB_MAGIC  # noqa: E402
from takt.profiles.store import STORE_FORMAT  # noqa: E402
from takt.segments.live import SNAPSHOT_NAME as SEGMENTS_SNAPSHOT  # noqa: E402
from takt.storage.duckdb_profiles import DuckDBProfileStore  # noqa: E402

MAX_COPIES = 9_999
"""Tags are 4 hex digits in ids and 4 decimal digits in identifier values."""
HEX = "\x1eH\x1e"
"""Placeholder for the copy's tag in ids (:func:`tag_hex`: 4 characters)."""
DEC = "\x1eD\x1e"
"""Placeholder for the copy number in decimal (4 digits), in identifier values."""
HEX_JSON = orjson.dumps(HEX)[1:-1].decode()
DEC_JSON = orjson.dumps(DEC)[1:-1].decode()
"""The placeholders as they appear inside a JSON string (orjson escapes control characters)."""
ROWS_PER_STATEMENT = 60_000
"""About how many rows one INSERT writes (a profile state is some KB: this bounds DuckDB's working memory)."""
_ID = re.compile(r"(p_|mrg_|cf_)[0-9a-f]{20}")
_HEAD = struct.Struct("<4sI")


_B36 = "0123456789abcdefghijklmnopqrstuvwxyz"


def tag_hex(k: int) -> str:
    """Copy ``k``'s tag in ids: ``x`` (never a hex digit, so no copy id is a source id) and ``k`` in base 36."""
    return "x" + _B36[k // 1296 % 36] + _B36[k // 36 % 36] + _B36[k % 36]


def tag_dec(k: int) -> str:
    return f"{k:04d}"


class Renamer:
    """Renames a source row's ids and identifiers into a template with the placeholders :data:`HEX` and
    :data:`DEC`; :meth:`fill` gives copy ``k`` of a template (the SQL does the same with ``replace``)."""

    def __init__(self, config: IdentityConfig):
        self.config = config
        self.types = set(config.types)
        self.trait_types = {trait: ty for ty, trait in reversed(config.trait_sources)}

    @staticmethod
    def fill(template: str, k: int) -> str:
        return template.replace(HEX, tag_hex(k)).replace(DEC, tag_dec(k))

    def id(self, value: str) -> str:
        """A profile, cluster, merge or conflict id: same shape, the first 4 hex digits are the copy's."""
        m = _ID.fullmatch(value)
        if m is None:  # an id of another shape: still unique per copy
            return f"{value}~{HEX}"
        return m.group(1) + HEX + value[len(m.group(1)) + 4:]

    def value(self, type_name: str, value: str) -> str:
        """An identifier's value (normalized or as a trait holds it) in the copy."""
        if type_name == "email" and "@" in value:
            return f"r{DEC}.{value}"
        if type_name == "phone":
            return value + DEC
        return f"{value}-r{DEC}"

    def ident(self, identifier: str) -> str:
        type_name, sep, value = identifier.partition(":")
        if not sep:
            return self.id(identifier)
        return f"{type_name}:{self.value(type_name, value)}"

    def _maybe_ident(self, text: str, type_name: str) -> str:
        """A conflict's value: an identifier (``unmerged``) or the value of one of type ``type_name``."""
        head, sep, _ = text.partition(":")
        if sep and head in self.types:
            return self.ident(text)
        return self.value(type_name, text)

    def cluster(self, rec: dict[str, Any]) -> dict[str, Any]:
        """An :meth:`IdentityGraph.record` row."""
        ident, pid = self.ident, self.id
        out = dict(rec)
        out["id"] = pid(rec["id"])
        out["founder"] = ident(rec["founder"])
        out["identifiers"] = [ident(i) for i in rec["identifiers"]]
        out["links"] = [{**lk, "ids": [ident(i) for i in lk["ids"]]} for lk in rec["links"]]
        out["merges"] = [{**m, "id": pid(m["id"]), "survivor": pid(m["survivor"]), "absorbed": pid(m["absorbed"]),
                          "via": [ident(i) for i in m["via"]]} for m in rec["merges"]]
        out["conflicts"] = [{**c, "key": pid(c["key"]), "identifiers": [ident(i) for i in c["identifiers"]],
                             "values": [self._maybe_ident(str(v), str(c.get("type") or "")) for v in c["values"]]}
                            for c in rec["conflicts"]]
        out["splits"] = [{**s, "profiles": [pid(p) for p in s["profiles"]]} for s in rec["splits"]]
        if "separated" in rec:
            out["separated"] = {ident(i): [ident(o) for o in others] for i, others in rec["separated"].items()}
        return out

    def index(self, idx: dict[str, Any]) -> dict[str, Any]:
        """A cluster's ``idx`` (merges as ``[merge id, via identifier, absorbed id]``, separations)."""
        return {**idx,
                "merges": [[self.id(m), self.ident(v), self.id(a)] for m, v, a in idx["merges"]],
                "separated": {self.ident(i): [self.ident(o) for o in others]
                              for i, others in idx["separated"].items()}}

    def state_body(self, body: dict[str, Any]) -> dict[str, Any]:
        """The JSON part of a profile state blob: identifier traits and identifier contact points."""
        out = dict(body)
        traits = dict(body["traits"])
        for name, trait in body["traits"].items():
            ty = self.trait_types.get(name)
            if ty is not None and isinstance(trait, dict) and isinstance(trait.get("value"), str):
                traits[name] = {**trait, "value": self.value(ty, trait["value"])}
        out["traits"] = traits
        contacts: dict[str, Any] = {}
        for key, cp in body["contacts"].items():
            ty = key.partition(":")[0]
            if ty in self.types:
                cp = {**cp, "value": self.value(ty, cp["value"])} if isinstance(cp.get("value"), str) else cp
                contacts[self.ident(key)] = cp
            else:
                contacts[key] = cp
        out["contacts"] = contacts
        return out


def json_template(data: Any) -> str:
    text = orjson.dumps(data).decode()
    return text


def check_source_text(what: str, text: str | bytes) -> None:
    raw = text.encode() if isinstance(text, str) else text
    for token in (HEX_JSON, DEC_JSON, HEX, DEC):
        if token.encode() in raw:
            raise TaktError(f"{what} already holds the placeholder {token!r}: cannot replicate it",
                            code="invalid_source")


# ---- templates of the source rows ----
def pages(con: duckdb.DuckDBPyConnection, table: str, columns: str, key: str, batch: int) -> Iterator[list[Any]]:
    """The rows of ``table`` by ``key``, ``batch`` at a time (keyset pagination: no result held open while the
    caller writes on the connection)."""
    after = ""
    while rows := con.execute(f"SELECT {columns} FROM {table} WHERE {key} > ? ORDER BY {key} LIMIT {batch}",
                              [after]).fetchall():
        yield rows
        after = str(rows[-1][0])


def state_templates(con: duckdb.DuckDBPyConnection, r: Renamer, batch: int) -> Iterator[pa.Table]:
    """(id, position, head, body) of every source profile state: the blob's binary head (positions and event
    keys, kept) and its JSON body as a template."""
    for rows in pages(con, "profile_states", "id, position, data", "id", batch):
        ids, positions, heads, bodies = [], [], [], []
        for pid, position, data in rows:
            blob = bytes(data)
            magic, n = _HEAD.unpack_from(blob)
            if magic != BLOB_MAGIC:
                raise TaktError(f"profile {pid!r}: not a profile state blob", code="invalid_source")
            at = _HEAD.size + 16 * n
            check_source_text(f"profile {pid!r}", blob[at:])
            ids.append(r.id(str(pid)))
            positions.append(int(position))
            heads.append(blob[:at])
            bodies.append(json_template(r.state_body(orjson.loads(blob[at:]))))
        yield pa.table({"id": ids, "position": pa.array(positions, pa.int64()), "head": pa.array(heads, pa.binary()),
                        "body": bodies})


def cluster_templates(con: duckdb.DuckDBPyConnection, r: Renamer, batch: int) -> Iterator[pa.Table]:
    for rows in pages(con, "identity_clusters", "id, data, idx", "id", batch):
        ids, datas, idxs, olds = [], [], [], []
        for cid, data, idx in rows:
            check_source_text(f"cluster {cid!r}", bytes(data))
            olds.append(str(cid))
            ids.append(r.id(str(cid)))
            datas.append(json_template(r.cluster(orjson.loads(bytes(data)))))
            idxs.append(json_template(r.index(orjson.loads(bytes(idx)))))
        yield pa.table({"old": olds, "id": ids, "data": datas, "idx": idxs})


def member_templates(con: duckdb.DuckDBPyConnection, r: Renamer, batch: int) -> Iterator[pa.Table]:
    for rows in pages(con, "identity_members", "identifier, cluster", "identifier", batch):
        yield pa.table({"identifier": [r.ident(str(i)) for i, _ in rows], "cluster": [r.id(str(c)) for _, c in rows]})


def load_templates(con: duckdb.DuckDBPyConnection, name: str, parts: Iterable[pa.Table]) -> int:
    """The templates into a temporary table ``name``; returns its rows."""
    made = False
    for part in parts:
        con.register("takt_tpl_part", part)
        if not made:
            con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM takt_tpl_part")
            made = True
        else:
            con.execute(f"INSERT INTO {name} SELECT * FROM takt_tpl_part")
        con.unregister("takt_tpl_part")
    if not made:
        return 0
    row = one(con, f"SELECT count(*) FROM {name}")
    return int(row[0]) if row else 0


# ---- expanding ----
def fill_sql(column: str, json: bool) -> str:
    """SQL giving copy ``r.k`` of a template column (``json``: placeholders as escaped in JSON); ``r`` is a
    row of the tags table (``k``, ``tid``: :func:`tag_hex`, ``tdec``: :func:`tag_dec`)."""
    hx, dc = (HEX_JSON, DEC_JSON) if json else (HEX, DEC)
    hx_sql, dc_sql = "'" + hx.replace("'", "''") + "'", "'" + dc.replace("'", "''") + "'"
    return f"replace(replace({column}, {hx_sql}, r.tid), {dc_sql}, r.tdec)"


def copy_ranges(copies: int, rows_per_copy: int) -> Iterator[tuple[int, int]]:
    """[first, last) copy numbers per statement (1 … copies-1)."""
    step = max(1, ROWS_PER_STATEMENT // max(1, rows_per_copy))
    for first in range(1, copies, step):
        yield first, min(copies, first + step)


def profile_id_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, list[str]]]:
    """(table, columns) of every base table in the main schema with a ``profile_id`` column."""
    rows = con.execute(
        "SELECT c.table_name, list(c.column_name ORDER BY c.ordinal_position) FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_schema, table_name) "
        "WHERE c.table_schema = 'main' AND t.table_type = 'BASE TABLE' GROUP BY c.table_name "
        "HAVING list_contains(list(c.column_name), 'profile_id') ORDER BY 1").fetchall()
    return [(str(t), [str(c) for c in cols]) for t, cols in rows]


def one(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any] | None = None) -> Any:
    """The first row of a query, or ``None`` (the result is read to its end: DuckDB refuses other work on the
    connection while a result is open)."""
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def replicate(source: Path, out: Path, copies: int, *, memory_limit: str = "2GB", force: bool = False,
              say: Callable[[str], None] = print, console: Console | None = None) -> dict[str, Any]:
    """Build ``out`` from ``source`` with ``copies`` times its profiles; returns the counts."""
    if copies < 1 or copies > MAX_COPIES:
        raise TaktError(f"--copies must be between 1 and {MAX_COPIES}, got {copies}", code="invalid_argument")
    source, out = source.resolve(), out.resolve()
    if not (source / "takt.toml").exists():
        raise TaktError(f"{source} is not a takt workspace (no takt.toml)", code="not_found")
    settings = settings_mod.load(source, env={})
    if settings["database_url"]:
        raise TaktError(f"{source} keeps its data in PostgreSQL: only DuckDB workspaces can be replicated",
                        code="unsupported")
    db_rel = Path(settings["duckdb_file"])
    if db_rel.is_absolute() or ".." in db_rel.parts:
        raise TaktError(f"{source}: the DuckDB file {db_rel} is outside the workspace folder; copy it in first",
                        code="unsupported")
    if not (source / db_rel).exists():
        raise TaktError(f"{source / db_rel} does not exist", code="not_found")
    if out == source or source in out.parents:
        raise TaktError(f"--out {out} must lie outside the source workspace", code="invalid_argument")
    if out.exists():
        if not force:
            raise TaktError(f"{out} exists (pass --force to replace it)", code="exists")
        shutil.rmtree(out)
    # a server writing the source holds the DuckDB lock: refuse rather than copy a file being written
    try:
        duckdb.connect(str(source / db_rel), read_only=True).close()
    except duckdb.IOException as e:
        raise TaktError(f"{source / db_rel} is in use (stop the server first): {e}", code="locked") from None
    config = IdentityConfig.from_settings(settings)
    renamer = Renamer(config)
    partial = out.with_name(out.name + ".partial")
    if partial.exists():
        shutil.rmtree(partial)
    started = time.perf_counter()
    say(f"copying {source} → {partial} …")
    shutil.copytree(source, partial)
    try:
        counts = _expand(partial / db_rel, copies, renamer, memory_limit, say, console)
        partial.rename(out)
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)
        raise
    counts["seconds"] = round(time.perf_counter() - started, 1)
    return counts


def _expand(db: Path, copies: int, r: Renamer, memory_limit: str, say: Callable[[str], None],
            console: Console | None) -> dict[str, Any]:
    con = duckdb.connect(str(db))
    try:
        con.execute("SET memory_limit = " + "'" + memory_limit.replace("'", "''") + "'")
        con.execute("SET preserve_insertion_order = false")
        meta = one(con, "SELECT position, format FROM profile_store_meta WHERE name = 'profiles'")
        if not meta or int(meta[1]) != STORE_FORMAT:
            raise TaktError("the source has no profile store in this version's format: build its profiles first "
                            "(`takt rebuild`, or a server that ran until caught up)", code="invalid_source")
        log_row = one(con, "SELECT coalesce(max(position), 0), count(*) FROM events")
        assert log_row is not None
        if int(meta[0]) != int(log_row[0]):
            say(f"note: the profile store reflects position {int(meta[0]):,}, the log ends at {int(log_row[0]):,}: "
                "the server will fold the rest at start")
        store = _sealed_store(con, db)
        say("opening the sealed source rows …")
        _unseal(con, store)
        say("renaming the source rows into templates …")
        n_states = load_templates(con, "tpl_states", state_templates(con, r, 2_000))
        n_clusters = load_templates(con, "tpl_clusters", cluster_templates(con, r, 2_000))
        n_members = load_templates(con, "tpl_members", member_templates(con, r, 10_000))
        if n_states == 0:
            raise TaktError("the source has no profile states: nothing to replicate", code="invalid_source")
        con.register("takt_tags", pa.table({"k": pa.array(range(1, copies), pa.int64()),
                                            "tid": [tag_hex(k) for k in range(1, copies)],
                                            "tdec": [tag_dec(k) for k in range(1, copies)]}))
        con.execute("CREATE TEMP TABLE tags AS SELECT * FROM takt_tags")
        con.unregister("takt_tags")
        tables = profile_id_tables(con)
        other_rows = {}
        for t, _ in tables:
            row = one(con, f"SELECT count(*) FROM {quote(t)}")
            other_rows[t] = int(row[0]) if row else 0
        total = (copies - 1) * (n_states + n_clusters + n_members + sum(other_rows.values()))
        progress = Progress(TextColumn("{task.description:<26}"), BarColumn(), MofNCompleteColumn(),
                            TimeElapsedColumn(), console=console or Console(stderr=True), transient=False)
        with progress:
            task = progress.add_task("appending copies", total=total)

            def run(label: str, sql: str, per_copy: int) -> None:
                progress.update(task, description=label)
                for first, last in copy_ranges(copies, per_copy):
                    con.execute(sql.replace("{range}", f"(SELECT * FROM tags WHERE k >= {first} AND k < {last}) r"))
                    progress.advance(task, (last - first) * per_copy)

            run("profile_states",
                f"INSERT INTO profile_states SELECT {fill_sql('t.id', False)}, t.position, "
                f"t.head || encode({fill_sql('t.body', True)}) FROM tpl_states t CROSS JOIN {{range}}", n_states)
            run("identity_clusters",
                f"INSERT INTO identity_clusters SELECT {fill_sql('t.id', False)}, encode({fill_sql('t.data', True)}), "
                f"encode({fill_sql('t.idx', True)}) FROM tpl_clusters t CROSS JOIN {{range}}", n_clusters)
            run("identity_members",
                f"INSERT INTO identity_members SELECT {fill_sql('t.identifier', False)}, "
                f"{fill_sql('t.cluster', False)} FROM tpl_members t CROSS JOIN {{range}}", n_members)
            for table, cols in tables:
                select = ", ".join(fill_sql("m.id", False) if c == "profile_id" else f"s.{quote(c)}" for c in cols)
                # only the source's rows: their profile ids are the clusters' original ids
                run(table, f"INSERT INTO {quote(table)} ({', '.join(quote(c) for c in cols)}) SELECT {select} "
                           f"FROM {quote(table)} s JOIN tpl_clusters m ON s.profile_id = m.old CROSS JOIN {{range}}",
                    other_rows[table])
        snaps = _snapshots(con, r, copies)
        say("sealing every row under its profile's key …")
        _reseal(con, store)
        say("checkpoint …")
        con.execute("CHECKPOINT")
        counts: dict[str, Any] = {}
        for t in ("profile_states", "identity_clusters", "identity_members", *(t for t, _ in tables)):
            row = one(con, f"SELECT count(*) FROM {quote(t)}")
            counts[t] = int(row[0]) if row else 0
        counts["snapshots_updated"] = snaps
        counts["events"] = int(log_row[1])
        counts["copies"] = copies
        counts["source_profiles"] = n_states
        return counts
    finally:
        con.close()


# ---- the sealed store (takt.profiles.sealed): opened before the templating, sealed again after it ----
def _sealed_store(con: duckdb.DuckDBPyConnection, db: Path) -> SealedProfileStore:
    """The workspace's profile store over ``con``, with its master key (copied with the folder)."""
    master = MasterKey.load_or_create(default_master_key_path(str(db)))

    def fetch(sids: list[str]) -> dict[str, tuple[str, bytes]]:
        rows = con.execute("SELECT subject, key_id, wrapped FROM privacy_subject_keys "
                           "WHERE subject IN (SELECT unnest(?::VARCHAR[]))", [sids]).fetchall()
        return {str(sid): (str(kid), bytes(w)) for sid, kid, w in rows}

    return SealedProfileStore(DuckDBProfileStore(con), Sealer(master, fetch))


def _cluster_idx(rec: dict[str, Any]) -> bytes:
    """A cluster's ``idx`` from its record, as the projector writes it (``takt.profiles.projector._record``)."""
    return orjson.dumps({"merges": [[m["id"], m["via"][0], m["absorbed"]] for m in rec["merges"]],
                         "separated": rec.get("separated", {})})


def _update(con: duckdb.DuckDBPyConnection, table: str, key: str, cols: dict[str, list[Any]]) -> None:
    con.register("takt_rows", pa.table(cols))
    sets = ", ".join(f"{c} = r.{c}" for c in cols if c != key)
    con.execute(f"UPDATE {table} SET {sets} FROM takt_rows r WHERE {table}.{key} = r.{key}")
    con.unregister("takt_rows")


def _replace_members(con: duckdb.DuckDBPyConnection, rows: list[tuple[str, str]]) -> None:
    con.execute("DELETE FROM identity_members")
    con.register("takt_rows", pa.table({"identifier": [i for i, _ in rows], "cluster": [c for _, c in rows]}))
    con.execute("INSERT INTO identity_members SELECT identifier, cluster FROM takt_rows")
    con.unregister("takt_rows")


def _unseal(con: duckdb.DuckDBPyConnection, store: SealedProfileStore) -> None:
    """The source's rows in plaintext in this (temporary) copy: state and cluster data opened, ``idx`` and
    the member rows rebuilt from the cluster records (their hashes cannot be renamed)."""
    members: list[tuple[str, str]] = []
    for rows in pages(con, "profile_states", "id, data", "id", 2_000):
        opened = store._opened(b"profile", {str(i): bytes(d) for i, d in rows})
        _update(con, "profile_states", "id", {"id": list(opened), "data": pa.array(list(opened.values()),
                                                                                     pa.binary())})
    for rows in pages(con, "identity_clusters", "id, data", "id", 2_000):
        opened = store._opened(b"cluster", {str(i): bytes(d) for i, d in rows})
        recs = {cid: orjson.loads(d) for cid, d in opened.items()}
        members += [(ident, cid) for cid, rec in recs.items() for ident in rec["identifiers"]]
        _update(con, "identity_clusters", "id", {"id": list(opened), "data": pa.array(list(opened.values()),
                                                                                        pa.binary()),
                                                 "idx": pa.array([_cluster_idx(x) for x in recs.values()],
                                                                 pa.binary())})
    _replace_members(con, members)


def _reseal(con: duckdb.DuckDBPyConnection, store: SealedProfileStore) -> None:
    """Every row sealed as the server writes it: a key per profile id (made for the copies), keyed hashes."""
    rnd = Random()
    for table, cols in (("profile_states", "id, data"), ("identity_clusters", "id, data, idx")):
        for rows in pages(con, table, cols, "id", 2_000):
            created: list[tuple[str, str, bytes]] = []
            keys = store._keys([str(r[0]) for r in rows], create=created)
            if created:
                con.executemany("INSERT INTO privacy_subject_keys (subject, key_id, wrapped) VALUES (?, ?, ?) "
                                "ON CONFLICT DO NOTHING", [list(k) for k in created])
            what = b"profile" if table == "profile_states" else b"cluster"
            cols_out: dict[str, Any] = {
                "id": [str(r[0]) for r in rows],
                "data": pa.array([store._seal(keys[str(r[0])], what, str(r[0]), bytes(r[1]), rnd) for r in rows],
                                 pa.binary())}
            if table == "identity_clusters":
                cols_out["idx"] = pa.array([store._seal_idx(keys[str(r[0])], str(r[0]), bytes(r[2]), rnd)
                                            for r in rows], pa.binary())
            _update(con, table, "id", cols_out)
    rows = con.execute("SELECT identifier, cluster FROM identity_members").fetchall()
    _replace_members(con, [(store.lookup_id(str(i)), str(c)) for i, c in rows])


def _snapshots(con: duckdb.DuckDBPyConnection, r: Renamer, copies: int) -> list[str]:
    """The per-profile parts of the projection snapshots, for every copy."""
    done = []

    def ids_for(pids: Iterable[str]) -> list[str]:
        tpl = [r.id(p) for p in pids]
        return [Renamer.fill(t, k) for k in range(1, copies) for t in tpl]

    row = one(con, "SELECT data FROM projection_snapshots WHERE name = ?", [MARKER])
    if row is not None:
        data = orjson.loads(bytes(row[0]))
        if isinstance(data, dict) and data.get("pending"):
            data["pending"] = sorted({*data["pending"], *ids_for(data["pending"])})
            con.execute("UPDATE projection_snapshots SET data = ? WHERE name = ?", [orjson.dumps(data), MARKER])
            done.append(MARKER)
    row = one(con, "SELECT data FROM projection_snapshots WHERE name = ?", [SEGMENTS_SNAPSHOT])
    if row is not None:
        data = orjson.loads(bytes(row[0]))
        if isinstance(data, dict) and isinstance(data.get("members"), dict):
            for members in data["members"].values():
                tpl = [(r.id(p), v) for p, v in members.items()]
                members.update((Renamer.fill(t, k), v) for k in range(1, copies) for t, v in tpl)
            due = [list(d) for d in data.get("due", [])]
            data["due"] = sorted([*due, *([n, Renamer.fill(r.id(p), k), t] for k in range(1, copies)
                                          for n, p, t in due)])
            con.execute("UPDATE projection_snapshots SET data = ? WHERE name = ?",
                        [orjson.dumps(data), SEGMENTS_SNAPSHOT])
            done.append(SEGMENTS_SNAPSHOT)
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", required=True, metavar="WS", help="the workspace to replicate (DuckDB, built)")
    ap.add_argument("--out", required=True, metavar="WS2", help="the workspace to create")
    ap.add_argument("--copies", required=True, type=int, metavar="K",
                    help=f"how many times the source's profiles the result holds (the source's rows count as one; "
                         f"at most {MAX_COPIES})")
    ap.add_argument("--memory-limit", default="2GB", help="DuckDB's memory limit while appending (default 2GB)")
    ap.add_argument("--force", action="store_true", help="replace --out if it exists")
    args = ap.parse_args()
    console = Console(stderr=True)

    def say(msg: str) -> None:
        console.print(msg, highlight=False)

    try:
        counts = replicate(Path(args.source), Path(args.out), args.copies, memory_limit=args.memory_limit,
                           force=args.force, say=say, console=console)
    except TaktError as e:
        console.print(f"[red]error[/red] ({e.code}): {e}", highlight=False)
        sys.exit(2)
    say(f"{args.out}: {counts['profile_states']:,} profile states, {counts['identity_clusters']:,} identity "
        f"clusters, {counts['identity_members']:,} identifiers ({counts['copies']} × {counts['source_profiles']:,} "
        f"profiles) in {counts['seconds']} s")
    for t, n in counts.items():
        if t not in ("profile_states", "identity_clusters", "identity_members", "snapshots_updated", "events",
                     "copies", "source_profiles", "seconds"):
            say(f"  {t}: {n:,} rows")
    if counts["snapshots_updated"]:
        say(f"  snapshots updated: {', '.join(counts['snapshots_updated'])}")
    say(f"note: the log holds only the source's {counts['events']:,} events. A copy's state lists its source "
        "profile's event positions, so its timeline shows the source's events and no event names its "
        "identifiers; `takt rebuild` would drop the copies. Use the result to measure serving, not folding.")
    print(orjson.dumps(counts).decode())


if __name__ == "__main__":
    main()
