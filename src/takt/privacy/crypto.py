"""Crypto-shredding for the event log: personal data sealed under per-subject keys.

* **The master key** (32 random bytes) lives in a file *outside* the database (``<duckdb file>.master-key``
  next to a DuckDB database; for PostgreSQL under ``$TAKT_KEY_DIR``, see :func:`default_master_key_path`). It
  never enters the database. It wraps (AES-GCM) every data key and keys the HMAC that turns a subject into its
  pseudonymous id.
* **A subject** is what one event's personal data is sealed for: its ``userId``, else its ``anonymousId``,
  else its first other identifier (email, phone, … as identity extracts them), else the event itself (a
  one-off key); an ``identity.unmerge`` request's is the identifier it splits off; derived events (which name
  profiles, never people) have none and stay unsealed. Each subject has one random 32-byte **data key**,
  stored only wrapped, in the table ``privacy_subject_keys`` (``subject`` = HMAC id, ``key_id``, ``wrapped``,
  ``created_at``). A person merged from several identifiers owns several subjects: erasure destroys the key of
  every subject that any of the person's events was sealed for, and of each of their identifiers.
* **An event** is split: the *skeleton* (``v``, ``type``, ``messageId``, ``source``, ``provenance``, the
  timestamps, ``event`` and ``name``) stays readable in ``payload``, so ordering, idempotency and event-name
  analytics work without keys; everything else (identifiers, ``traits``, ``context``, ``properties``,
  ``integrations``) is sealed with AES-GCM under the subject's data key into ``sealed``
  (12-byte nonce ‖ ciphertext, associated data = source and messageId, so a sealed blob cannot be moved to
  another row). The indexed ``user_id``/``anonymous_id`` columns stay NULL for sealed events.
* **Reading** opens the sealed part transparently. When the key is gone (erased) the event comes back as its
  skeleton with ``context.erased = true``: a tombstone, never an error.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import orjson
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from takt.errors import TaktError
from takt.events.model import Event
from takt.identity.config import IdentityConfig
from takt.identity.extract import NO_IDENTITY_KINDS, identifiers_of
from takt.identity.kinds import UNMERGE

SKELETON_FIELDS = frozenset({"v", "type", "messageId", "source", "provenance", "timestamp", "receivedAt", "event",
                             "name", "originalTimestamp", "sentAt"})
"""Record fields that stay readable in ``payload``; every other field is personal and sealed."""

ERASED_MARK = "erased"
"""Key set to ``true`` in the ``context`` of an event whose personal part was erased."""

KEY_BYTES = 32
NONCE_BYTES = 12
_DEFAULT_IDENTITY = IdentityConfig()


class MasterKey:
    """The workspace's key-encryption key. Holds the bytes; ``repr`` never shows them."""

    def __init__(self, key: bytes):
        if len(key) != KEY_BYTES:
            raise TaktError(f"a master key is {KEY_BYTES} bytes, got {len(key)}", code="invalid_setting", status=500)
        self._aead = AESGCM(key)
        self._subject_mac = hmac.new(key, b"takt subject id v1", hashlib.sha256).digest()
        self._lookup_mac = hmac.new(key, b"takt identifier lookup v1", hashlib.sha256).digest()

    def __repr__(self) -> str:
        return "MasterKey(…)"

    def subject_id(self, subject: str) -> str:
        """The pseudonymous id under which a subject's key is stored (HMAC, so the table holds no identifier)."""
        return hmac.digest(self._subject_mac, subject.encode(), "sha256").hex()[:40]

    def lookup_id(self, identifier: str) -> str:
        """A keyed hash of an identifier under which projections look it up (``identity_members``): names nobody
        without the master key. Another key than :meth:`subject_id`'s, so the two tables cannot be joined."""
        return hmac.digest(self._lookup_mac, identifier.encode(), "sha256").hex()[:40]

    def wrap(self, subject_id: str, data_key: bytes) -> bytes:
        nonce = secrets.token_bytes(NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data_key, subject_id.encode())

    def unwrap(self, subject_id: str, wrapped: bytes) -> bytes:
        try:
            return self._aead.decrypt(bytes(wrapped[:NONCE_BYTES]), bytes(wrapped[NONCE_BYTES:]), subject_id.encode())
        except InvalidTag:
            raise TaktError(f"the data key of subject {subject_id} does not open with this workspace's master key "
                            "(wrong privacy.master_key_file?)", code="wrong_master_key", status=500) from None

    @staticmethod
    def load_or_create(path: Path) -> MasterKey:
        """Read the key file, creating it (mode 0600, 32 random bytes) when missing."""
        path = Path(path)
        data = load_or_create_secret_file(path, lambda: secrets.token_bytes(KEY_BYTES))
        if len(data) != KEY_BYTES:
            raise TaktError(f"the master key file {path} holds {len(data)} bytes, expected {KEY_BYTES}",
                            code="invalid_setting", status=500)
        return MasterKey(data)


def load_or_create_secret_file(path: Path, make: Callable[[], bytes]) -> bytes:
    """A secret file's bytes, creating it from ``make()`` when missing: readable by its owner only (0600, in a
    folder made 0700), written in full under a temporary name and then linked into place, so another process
    sees either no file or the whole secret, and the first link wins."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        pass
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    data = make()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:  # another process created it first
        data = path.read_bytes()
    finally:
        tmp.unlink()
    return data


def default_master_key_path(anchor: str) -> Path:
    """Where a storage keeps its master key when none is given: next to a DuckDB file (``<file>.master-key``);
    for a database URL, under ``$TAKT_KEY_DIR`` (default ``~/.local/share/takt/keys``) by a hash of its host,
    port, database and user."""
    if "://" not in anchor:
        return Path(anchor + ".master-key")
    # the database's identity, not the credentials or options: a changed password keeps finding the key
    u = urlsplit(anchor)
    ident = f"{u.hostname or ''}:{u.port or ''}/{u.path.lstrip('/')}@{u.username or ''}"
    base = Path(os.environ.get("TAKT_KEY_DIR") or Path.home() / ".local" / "share" / "takt" / "keys")
    path = base / (hashlib.sha256(ident.encode()).hexdigest()[:24] + ".master-key")
    older = base / (hashlib.sha256(anchor.encode()).hexdigest()[:24] + ".master-key")  # first releases: whole URL
    return older if older.exists() and not path.exists() else path


def subject_of(event: Event) -> str | None:
    """The subject an event's personal data is sealed for, or ``None`` when it carries none (derived events)."""
    if event.kind == UNMERGE:  # names the identifier to split off (an admin request about that person)
        ident = event.properties.get("identifier")
        return ident if isinstance(ident, str) and ident else None
    if event.kind in NO_IDENTITY_KINDS:  # derived events: they name profiles, never people
        return None
    if event.user_id:
        return "user_id:" + event.user_id
    if event.anonymous_id:
        return "anonymous_id:" + event.anonymous_id
    if not (event.traits or event.context or event.properties or event.integrations or event.group_id
            or event.previous_id):
        return None
    ids = identifiers_of(event, _DEFAULT_IDENTITY)
    if ids:
        return ids[0]
    return f"event:{event.source}\x1f{event.message_id}"


def split_record(rec: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(skeleton, personal part) of an event record."""
    skeleton: dict[str, Any] = {}
    personal: dict[str, Any] = {}
    for k, v in rec.items():
        (skeleton if k in SKELETON_FIELDS else personal)[k] = v
    return skeleton, personal


def split_event(event: Event) -> tuple[dict[str, Any], dict[str, Any]]:
    """``split_record(event.to_record(times=False))`` built directly from the event: the same two dicts with their
    keys in the same order (so the same JSON), without the whole record in between."""
    skeleton: dict[str, Any] = {"v": event.version, "type": event.kind, "messageId": event.message_id,
                                "source": event.source, "provenance": event.provenance,
                                "timestamp": event.timestamp, "receivedAt": event.received_at}
    personal: dict[str, Any] = {}
    if event.user_id is not None:
        personal["userId"] = event.user_id
    if event.anonymous_id is not None:
        personal["anonymousId"] = event.anonymous_id
    if event.event is not None:
        skeleton["event"] = event.event
    if event.name is not None:
        skeleton["name"] = event.name
    if event.group_id is not None:
        personal["groupId"] = event.group_id
    if event.previous_id is not None:
        personal["previousId"] = event.previous_id
    if event.properties:
        personal["properties"] = event.properties
    if event.traits:
        personal["traits"] = event.traits
    if event.context:
        personal["context"] = event.context
    if event.integrations:
        personal["integrations"] = event.integrations
    if event.original_timestamp is not None:
        skeleton["originalTimestamp"] = event.original_timestamp
    if event.sent_at is not None:
        skeleton["sentAt"] = event.sent_at
    if event.trust != "server":
        personal["trust"] = event.trust
    return skeleton, personal


def tombstone(skeleton: dict[str, Any]) -> dict[str, Any]:
    """The record an erased event reads back as."""
    out = {k: v for k, v in skeleton.items() if k in SKELETON_FIELDS}
    out["context"] = {ERASED_MARK: True}
    return out


def _aad(source: str, message_id: str) -> bytes:
    return source.encode() + b"\x1f" + message_id.encode()


class KeyCache:
    """Subject keys known to this process: a bounded LRU of raw data keys (32 bytes each), and a small LRU of
    the AES-GCM objects made from them. Thread-safe.

    The objects are kept apart because each holds ~2.5 KB of native cipher state: 200,000 of them took 500 MB,
    most of the demo's memory growth while it ingested. Making one from a raw key costs about a microsecond."""

    def __init__(self, master: MasterKey, size: int = 200_000, ciphers: int = 4_096):
        self.master = master
        self.size = size
        self.ciphers = max(1, ciphers)
        self._keys: OrderedDict[str, tuple[str, bytes]] = OrderedDict()
        self._aead: OrderedDict[str, tuple[str, AESGCM]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, subject_id: str) -> tuple[str, AESGCM] | None:
        with self._lock:
            hit = self._keys.get(subject_id)
            if hit is None:
                return None
            self._keys.move_to_end(subject_id)
            entry = self._aead.get(subject_id)
            if entry is None or entry[0] != hit[0]:
                entry = self._aead[subject_id] = (hit[0], AESGCM(hit[1]))
                while len(self._aead) > self.ciphers:
                    self._aead.popitem(last=False)
            else:
                self._aead.move_to_end(subject_id)
            return entry

    def put(self, subject_id: str, key_id: str, data_key: bytes) -> tuple[str, AESGCM]:
        entry = (key_id, AESGCM(data_key))
        with self._lock:
            self._keys[subject_id] = (key_id, bytes(data_key))
            while len(self._keys) > self.size:
                gone, _ = self._keys.popitem(last=False)
                self._aead.pop(gone, None)
            self._aead[subject_id] = entry
            self._aead.move_to_end(subject_id)
            while len(self._aead) > self.ciphers:
                self._aead.popitem(last=False)
        return entry

    def forget(self, subject_ids: Iterable[str]) -> None:
        with self._lock:
            for s in subject_ids:
                self._keys.pop(s, None)
                self._aead.pop(s, None)

    def clear(self) -> None:
        with self._lock:
            self._keys.clear()
            self._aead.clear()

    def __len__(self) -> int:
        with self._lock:
            return len(self._keys)


class Random:
    """Random bytes from the OS drawn in blocks (one ``os.urandom`` call per 64 KiB instead of three per event:
    the same CSPRNG output, fewer system calls). Not shared between threads."""

    def __init__(self, block: int = 65_536):
        self.block = block
        self._buf = b""
        self._at = 0

    def take(self, n: int) -> bytes:
        if self._at + n > len(self._buf):
            self._buf = os.urandom(max(self.block, n))
            self._at = 0
        out = self._buf[self._at:self._at + n]
        self._at += n
        return out


def new_key(master: MasterKey, subject_id: str, rnd: Random | None = None) -> tuple[str, bytes, bytes]:
    """A fresh data key for a subject: (key_id, data key, wrapped)."""
    rnd = rnd or Random(64)
    dk = rnd.take(KEY_BYTES)
    nonce = rnd.take(NONCE_BYTES)
    wrapped = nonce + master._aead.encrypt(nonce, dk, subject_id.encode())
    return rnd.take(8).hex(), dk, wrapped


def seal(event: Event, subject_id: str, aead: AESGCM, rnd: Random | None = None) -> tuple[bytes, bytes]:
    """(skeleton JSON, sealed personal part) of one event."""
    skeleton, personal = split_event(event)
    nonce = rnd.take(NONCE_BYTES) if rnd is not None else os.urandom(NONCE_BYTES)
    body = orjson.dumps(personal, option=orjson.OPT_UTC_Z)
    sealed = nonce + aead.encrypt(nonce, body, _aad(event.source, event.message_id))
    return orjson.dumps(skeleton, option=orjson.OPT_UTC_Z), sealed


def open_sealed(skeleton: dict[str, Any], sealed: bytes, aead: AESGCM | None) -> dict[str, Any]:
    """The full record from its skeleton and sealed part; a tombstone when the key is gone or does not fit."""
    if aead is None:
        return tombstone(skeleton)
    try:
        body = aead.decrypt(bytes(sealed[:NONCE_BYTES]), bytes(sealed[NONCE_BYTES:]),
                            _aad(skeleton["source"], skeleton["messageId"]))
    except InvalidTag:
        return tombstone(skeleton)
    skeleton.update(orjson.loads(body))
    return skeleton


def is_erased(event: Event) -> bool:
    return bool(event.context.get(ERASED_MARK)) and not (event.user_id or event.anonymous_id or event.traits
                                                         or event.properties)
