"""The profile store with every identifying value sealed under the person's key (crypto-shredding, as the log).

A :class:`SealedProfileStore` wraps a backend's :class:`~takt.profiles.store.ProfileStore` and changes what
reaches its rows, nothing of what the projector sees:

* ``profile_states.data`` and ``identity_clusters.data`` are sealed with AES-GCM under the data key of the
  subject ``profile:<profile id>`` (one key per profile; the cluster of a profile has the profile's id), the
  associated data binding the blob to its table and id. The key is made on the first write of the profile and
  stored wrapped in ``privacy_subject_keys`` in the same transaction as the rows (:attr:`StoreWrite.keys`).
* ``identity_members.identifier`` holds a keyed hash of the identifier (HMAC under the master key,
  :meth:`~takt.privacy.crypto.MasterKey.lookup_id`), so lookups by identifier keep working and the table names
  nobody without the master key.
* ``identity_clusters.idx`` (what the graph keeps in memory for every cluster) keeps its merges with the
  linking identifier as that keyed hash (an unmerge by merge id looks the hash up like an identifier: see
  :meth:`members`), and its separations (rare: after an unmerge) sealed like the data.

Erasing a person destroys the keys of their profile ids (``profile:<id>``, see :func:`profile_subject`) with
their other keys: the rows the erasure rewrites, and every copy of older rows in free blocks, WAL files or dead
tuples, are then ciphertext nobody can open, with no rewrite of the database file.
"""

from __future__ import annotations

import base64
import logging
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from takt.log.sealing import Sealer
from takt.privacy.crypto import NONCE_BYTES, Random, new_key
from takt.profiles.store import LOAD_BATCH, ProfileStore, StoreWrite

logger = logging.getLogger(__name__)

HASHED = "~"
"""Prefix of a keyed identifier hash in ``idx`` merges (no identifier type starts with it)."""


def profile_subject(profile_id: str) -> str:
    """The subject whose key seals a profile's rows (erasure destroys it with the person's other keys)."""
    return "profile:" + profile_id


class SealedProfileStore(ProfileStore):
    """See the module doc. Thread-safe as far as the wrapped store is (the key cache is)."""

    def __init__(self, inner: ProfileStore, sealer: Sealer):
        self.inner = inner
        self.sealer = sealer
        self.master = sealer.master

    # ---- keys ----
    def _sid(self, pid: str) -> str:
        return self.master.subject_id(profile_subject(pid))

    def _keys(self, pids: Sequence[str], create: list[tuple[str, str, bytes]] | None = None
              ) -> dict[str, AESGCM | None]:
        """pid → its cipher (``None``: no key, the profile was erased). ``create``: make the missing keys and
        add their rows to it."""
        sids = {pid: self._sid(pid) for pid in pids}
        self.sealer._load(sids.values())
        out: dict[str, AESGCM | None] = {}
        rnd: Random | None = None
        for pid, sid in sids.items():
            entry = self.sealer.cache.get(sid)
            if entry is None and create is not None:
                rnd = rnd or Random(4_096)
                key_id, dk, wrapped = new_key(self.master, sid, rnd)
                create.append((sid, key_id, wrapped))
                entry = self.sealer.cache.put(sid, key_id, dk)
            out[pid] = entry[1] if entry is not None else None
        return out

    @staticmethod
    def _seal(aead: AESGCM | None, table: bytes, pid: str, data: bytes, rnd: Random) -> bytes:
        assert aead is not None
        nonce = rnd.take(NONCE_BYTES)
        return nonce + aead.encrypt(nonce, data, table + b"\x1f" + pid.encode())

    @staticmethod
    def _open(aead: AESGCM | None, table: bytes, pid: str, blob: bytes) -> bytes | None:
        if aead is None:
            return None
        try:
            return aead.decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], table + b"\x1f" + pid.encode())
        except InvalidTag:
            return None

    def lookup_id(self, identifier: str) -> str:
        return identifier if identifier.startswith(HASHED) else HASHED + self.master.lookup_id(identifier)

    # ---- writes ----
    def write(self, w: StoreWrite) -> None:
        pids = sorted({p for p, _ in w.profiles} | {c for c, _, _ in w.clusters})
        created: list[tuple[str, str, bytes]] = []
        keys = self._keys(pids, create=created)
        rnd = Random(min(65_536, 16 * (len(w.profiles) + 2 * len(w.clusters)) + 64))
        sealed = StoreWrite(
            w.position, replace=w.replace, removed_profiles=w.removed_profiles, removed_clusters=w.removed_clusters,
            profiles=[(p, self._seal(keys[p], b"profile", p, d, rnd)) for p, d in w.profiles],
            clusters=[(c, self._seal(keys[c], b"cluster", c, d, rnd), self._seal_idx(keys[c], c, x, rnd))
                      for c, d, x in w.clusters],
            members=[(self.lookup_id(m), c) for m, c in w.members],
            keys=[*w.keys, *created], tables=w.tables)
        try:
            self.inner.write(sealed)
        except BaseException:
            self.sealer.forget(sid for sid, _, _ in created)  # never stored: not to be used again
            raise

    def _seal_idx(self, aead: AESGCM | None, cid: str, raw: bytes, rnd: Random) -> bytes:
        idx = orjson.loads(raw)
        out: dict[str, Any] = {"merges": [[mid, self.lookup_id(via), absorbed] for mid, via, absorbed in idx["merges"]]}
        if idx.get("separated"):
            blob = self._seal(aead, b"separated", cid, orjson.dumps(idx["separated"]), rnd)
            out["sep"] = base64.b64encode(blob).decode()
        return orjson.dumps(out)

    # ---- reads ----
    def _opened(self, table: bytes, rows: dict[str, bytes]) -> dict[str, bytes]:
        """The rows opened; a row whose key is gone is left out: its person was erased and the row waits for
        the rebuild that follows every erasure (an erasure interrupted before it, say)."""
        keys = self._keys(sorted(rows))
        out: dict[str, bytes] = {}
        for pid, blob in rows.items():
            data = self._open(keys[pid], table, pid, blob)
            if data is None:
                logger.warning("the %s row of %s does not open (its key was destroyed by an erasure): left out",
                               table.decode(), pid)
                continue
            out[pid] = data
        return out

    def load(self, ids: Sequence[str]) -> dict[str, bytes]:
        sids = {pid: self._sid(pid) for pid in ids}
        if any(self.sealer.cache.get(sid) is None for sid in sids.values()):
            # keys not in memory: read them with the rows, in one query
            keyed = self.inner.load_keyed(list(sids), list(sids.values()))
            for pid, (_, key) in keyed.items():
                if key is not None and self.sealer.cache.get(sids[pid]) is None:
                    self.sealer.cache.put(sids[pid], key[0], self.master.unwrap(sids[pid], key[1]))
            return self._opened(b"profile", {pid: blob for pid, (blob, _) in keyed.items()})
        return self._opened(b"profile", self.inner.load(ids))

    def profiles(self, batch: int = LOAD_BATCH) -> Iterator[tuple[str, bytes]]:
        rows: dict[str, bytes] = {}
        for pid, blob in self.inner.profiles(batch):
            rows[pid] = blob
            if len(rows) >= batch:
                yield from self._opened(b"profile", rows).items()
                rows = {}
        yield from self._opened(b"profile", rows).items()

    def clusters(self, batch: int = LOAD_BATCH) -> Iterator[bytes]:
        # the cluster rows carry no id outside the sealed blob: ids from the index, then rows by id
        ids = [cid for cid, _ in self.inner.cluster_index(batch)]
        for i in range(0, len(ids), batch):
            yield from self.load_clusters(ids[i:i + batch]).values()

    def cluster_index(self, batch: int = LOAD_BATCH) -> Iterator[tuple[str, bytes]]:
        pending: list[tuple[str, dict[str, Any]]] = []

        def flush() -> Iterator[tuple[str, bytes]]:
            sealed = {cid: base64.b64decode(x["sep"]) for cid, x in pending if "sep" in x}
            opened = self._opened(b"separated", sealed) if sealed else {}
            for cid, x in pending:
                if "sep" in x and cid not in opened:
                    continue  # erased
                sep = orjson.loads(opened[cid]) if cid in opened else {}
                yield cid, orjson.dumps({"merges": x["merges"], "separated": sep})

        for cid, raw in self.inner.cluster_index(batch):
            pending.append((cid, orjson.loads(raw)))
            if len(pending) >= batch:
                yield from flush()
                pending = []
        yield from flush()

    def load_clusters(self, ids: Sequence[str]) -> dict[str, bytes]:
        return self._opened(b"cluster", self.inner.load_clusters(ids))

    def members(self, identifiers: Sequence[str]) -> dict[str, str]:
        hashed = {self.lookup_id(i): i for i in identifiers}
        return {hashed[h]: cid for h, cid in self.inner.members(sorted(hashed)).items()}

    # ---- unchanged ----
    def position(self) -> int | None:
        return self.inner.position()

    def profile_ids(self) -> list[str]:
        return self.inner.profile_ids()

    def changed_since(self, position: int) -> list[str]:
        return self.inner.changed_since(position)

    def clear(self) -> None:
        self.inner.clear()

    def count(self) -> int:
        return self.inner.count()

    # ---- the segment contract tables (no identifying values: takt.privacy.identifying) ----
    @property
    def has_tables(self) -> bool:  # type: ignore[override]
        return self.inner.has_tables

    def tables_position(self) -> int | None:
        return self.inner.tables_position()

    def write_tables(self, w: Any) -> None:
        self.inner.write_tables(w)
