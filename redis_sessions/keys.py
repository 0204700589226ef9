"""Every Redis key name the store uses is built here, and nowhere else.

Layout (default prefix ``rs``; ``<u>`` is the user id, percent-encoded as below):

    rs:{u:<u>}:s:<session_id>          hash   the session record (metadata + one field per context field)
    rs:{u:<u>}:s:<session_id>:msgs     hash   turn_no -> message JSON
    rs:{u:<u>}:s:<session_id>:wb       hash   snapshot_index -> whiteboard actions JSON
    rs:{u:<u>}:idx                     zset   session_id scored by last activity (epoch microseconds:
                                              the record's updated_at exactly)
    rs:{u:<u>}:f:<folder_id>           hash   a folder of the user
    rs:{u:<u>}:req:<request_id>        string the reply of a write already applied, kept for a short
                                              window (PX) so a resent request is not applied twice
    rs:{u:<u>}:s:<session_id>:state    hash   the session's free-form state: field -> JSON (integrations)
    rs:{u:<u>}:us:<scope>              hash   the user's free-form state in one scope (an app): field -> JSON
    rs:{u:<u>}:ext:<scope>             zset   "<session_id> <external id>": the user's sessions that an
                                              integration (Google ADK) names by its own ids, by last write
    rs:{a:<scope>}:as                  hash   the free-form state of one scope (an app), shared by its users
    rs:{x<n>}:exp                      zset   "<u>:<session_id>" of live sessions, scored by last activity
    rs:{x<n>}:ended                    zset   the same for ended sessions (their own retention)
    rs:sweep-lock                      string held (with a TTL) by the sweep job that is running
    rs:invalidate                      pub/sub channel: "<u>:<session_id>|<epoch ms>" per write

Everything of one user carries the hash tag ``{u:<u>}``, so every script touches one hash slot and the
store runs on Redis Cluster. The expiry indexes exist once per hash slot: ``x<n>`` is the first tag
of that form (n = 0, 1, 2, ...) whose slot is the slot of ``u:<u>``, so a user's keys and the expiry
entries of their sessions always share a slot, and a sweep visits 16384 small indexes whatever the
number of users.

The user id is percent-encoded (UTF-8) with only ``A-Z a-z 0-9 - . _ ~ @`` left as they are. The
encoding is injective (it can be decoded back), and its output never contains ``{``, ``}`` or ``:``, so
two different users can neither share a key nor have one user's key reach into the other's namespace,
whatever characters their ids hold. Readable ids (UUIDs, e-mail addresses) stay readable in redis-cli.
"""

from __future__ import annotations

import binascii
import functools
import re
import urllib.parse
import uuid
from typing import Final, NamedTuple

from .exceptions import InvalidInput

MAX_USER_ID_CHARS: Final = 256
SLOTS: Final = 16384
_SAFE: Final = "-._~@"
_CANONICAL_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}\Z")
_PREFIX = re.compile(r"[A-Za-z0-9_.\-]{1,64}\Z")
_REQUEST_ID = re.compile(r"[A-Za-z0-9_.\-]{1,64}\Z")
_REQUEST_KEY_ID = re.compile(r"[A-Za-z0-9_.\-]{1,80}\Z")  # a caller's id, or one the store drew


def check_prefix(prefix: str) -> str:
    """Return ``prefix`` if it can start key names (1-64 of ``A-Z a-z 0-9 _ . -``)."""
    if not isinstance(prefix, str) or not _PREFIX.match(prefix):
        raise InvalidInput(
            f"key prefix must be 1-64 characters of A-Z a-z 0-9 _ . -, got {prefix!r}"
        )
    return prefix


def check_user_id(user_id: object) -> str:
    """Return ``user_id`` if it is 1 to 256 characters that UTF-8 can encode."""
    if not isinstance(user_id, str):
        raise InvalidInput(f"user_id must be a str, got {type(user_id).__name__}")
    if not 1 <= len(user_id) <= MAX_USER_ID_CHARS:
        raise InvalidInput(
            f"user_id must be 1 to {MAX_USER_ID_CHARS} characters, got {len(user_id)}"
        )
    try:
        user_id.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"user_id is not valid Unicode text: {exc.reason}") from exc
    return user_id


def check_request_id(value: object) -> str:
    """Return ``value`` if it can name a write request (1-64 of ``A-Z a-z 0-9 _ . -``)."""
    if not isinstance(value, str) or not _REQUEST_ID.match(value):
        raise InvalidInput(
            f"request_id must be 1-64 characters of A-Z a-z 0-9 _ . -, got {value!r}"
        )
    return value


def check_uuid(value: object, what: str = "session_id") -> str:
    """Return the canonical text of a UUID (lowercase ``8-4-4-4-12``); raise InvalidInput otherwise.

    Accepts a ``uuid.UUID`` or its canonical string; any other spelling can never name a session.
    """
    if isinstance(value, uuid.UUID):  # a subclass may write itself otherwise: its number's text
        return uuid_text(value if value.__class__ is uuid.UUID else uuid.UUID(int=value.int))
    if isinstance(value, str) and _CANONICAL_UUID.match(value):
        return value
    raise InvalidInput(f"{what} must be a canonical UUID (lowercase 8-4-4-4-12 hex), got {value!r}")


@functools.lru_cache(maxsize=4096)
def uuid_text(value: uuid.UUID) -> str:
    """``str(value)`` of a ``uuid.UUID``, memoized: uuid's own ``__str__`` is Python code (0.5 µs),
    and every call with a UUID (session ids are UUIDs) needs its text once or twice."""
    return str(value)


@functools.lru_cache(maxsize=4096)
def encode_user(user_id: str) -> str:
    """The user id as it appears inside key names (see the module docstring). Memoized: a write
    builds several keys of the same user."""
    return urllib.parse.quote(user_id, safe=_SAFE)


def decode_user(encoded: str) -> str:
    """Inverse of :func:`encode_user`."""
    return urllib.parse.unquote(encoded, errors="strict")


@functools.lru_cache(maxsize=4096)
def _user_keys(prefix: str, user_id: str) -> tuple[str, str, str, str]:
    """(tag, session index, live expiry index, ended expiry index) of a user under ``prefix``.
    Memoized: every write needs all four, and the slot takes a CRC16."""
    encoded = encode_user(user_id)
    tag = f"{prefix}:{{u:{encoded}}}"
    return (tag, f"{tag}:idx", *_slot_expiry(prefix, key_slot(f"u:{encoded}")))


def _slot_expiry(prefix: str, slot: int) -> tuple[str, str]:
    base = f"{prefix}:{{{slot_tags()[slot]}}}"
    return f"{base}:exp", f"{base}:ended"


class KeySpace:
    """Builds the key names under one prefix. Pure: no I/O, no state but the prefix."""

    __slots__ = ("prefix",)

    def __init__(self, prefix: str) -> None:
        self.prefix: str = check_prefix(prefix)

    def user_tag(self, user_id: str) -> str:
        """``rs:{u:<u>}``: the start of every key of the user (includes the hash tag)."""
        return _user_keys(self.prefix, user_id)[0]

    def user_pattern(self, user_id: str) -> str:
        """A SCAN MATCH pattern for every key of the user (glob characters escaped)."""
        return _glob_escape(self.user_tag(user_id)) + ":*"

    def pattern(self) -> str:
        """A SCAN MATCH pattern for every key of the store (everything under the prefix)."""
        return _glob_escape(self.prefix) + ":*"

    def session(self, user_id: str, session_id: str) -> str:
        """The record key of a session: ``rs:{u:<u>}:s:<session_id>``."""
        return f"{self.user_tag(user_id)}:s:{session_id}"

    def session_keys(self, user_id: str, session_id: str) -> tuple[str, str, str]:
        """(record, messages, snapshots) of one session."""
        record = self.session(user_id, session_id)
        return record, f"{record}:msgs", f"{record}:wb"

    def session_write_keys(self, user_id: str, session_id: str) -> list[str]:
        """KEYS[1..6] of every script that writes a session: record, messages, snapshots, the
        user's index, and the live and ended expiry indexes of the user's slot."""
        tag, index, live, ended = _user_keys(self.prefix, user_id)
        record = f"{tag}:s:{session_id}"
        return [record, f"{record}:msgs", f"{record}:wb", index, live, ended]

    def session_prefix(self, user_id: str) -> str:
        """What precedes a session id in the record key (scripts append the id to it)."""
        return f"{self.user_tag(user_id)}:s:"

    def session_state(self, user_id: str, session_id: str) -> str:
        """The free-form state hash of a session: ``rs:{u:<u>}:s:<session_id>:state`` (its
        scripts also name it from the record key: see ``state_key`` in lua/_lib.lua)."""
        return f"{self.session(user_id, session_id)}:state"

    def user_state(self, user_id: str, scope: str) -> str:
        """The user's free-form state in one scope (an app): ``rs:{u:<u>}:us:<scope>``, the
        scope percent-encoded as user ids are."""
        return f"{self.user_tag(user_id)}:us:{encode_user(scope)}"

    def scoped_index(self, user_id: str, scope: str) -> str:
        """The user's sessions that an integration names by its own ids in one scope:
        ``rs:{u:<u>}:ext:<scope>`` (entries ``<session_id> <external id>``)."""
        return f"{self.user_tag(user_id)}:ext:{encode_user(scope)}"

    def scoped_index_pattern(self, scope: str) -> str:
        """A SCAN MATCH pattern for the scoped index of ``scope`` of every user."""
        return f"{_glob_escape(self.prefix)}:{{u:*}}:ext:{_glob_escape(encode_user(scope))}"

    def app_state(self, scope: str) -> str:
        """The free-form state of one scope (an app), shared by all its users:
        ``rs:{a:<scope>}:as`` (its own hash tag: not in any user's slot)."""
        return f"{self.prefix}:{{a:{encode_user(scope)}}}:as"

    def index(self, user_id: str) -> str:
        """The user's session index: ``rs:{u:<u>}:idx``."""
        return f"{self.user_tag(user_id)}:idx"

    def folder(self, user_id: str, folder_id: str) -> str:
        """The key of a folder of the user: ``rs:{u:<u>}:f:<folder_id>``."""
        return f"{self.user_tag(user_id)}:f:{folder_id}"

    def request(self, user_id: str, request_id: str) -> str:
        """Where a write script keeps the reply of request ``request_id`` for the replay window."""
        return f"{self.user_tag(user_id)}:req:{request_id}"

    def user_slot(self, user_id: str) -> int:
        """The Redis Cluster hash slot of every key of the user."""
        return key_slot(f"u:{encode_user(user_id)}")

    def expiry(self, user_id: str) -> tuple[str, str]:
        """(live, ended) expiry indexes of the user's hash slot."""
        return _user_keys(self.prefix, user_id)[2:]

    def slot_expiry(self, slot: int) -> tuple[str, str]:
        """(live, ended) expiry indexes of one hash slot."""
        return _slot_expiry(self.prefix, slot)

    def sweep_lock(self) -> str:
        """The lock a running sweep job holds: ``rs:sweep-lock``."""
        return f"{self.prefix}:sweep-lock"

    def invalidation_channel(self) -> str:
        """The pub/sub channel on which every write announces the session it changed."""
        return f"{self.prefix}:invalidate"

    @staticmethod
    def expiry_member(user_id: str, session_id: str) -> str:
        """The entry of a session in an expiry index: ``<u>:<session_id>``."""
        return f"{encode_user(user_id)}:{session_id}"

    @staticmethod
    def parse_expiry_member(member: bytes | str) -> tuple[str, str]:
        """(user_id, session_id) of an expiry index entry; raises ValueError if malformed."""
        text = member.decode() if isinstance(member, bytes) else member
        encoded, sep, session_id = text.rpartition(":")
        if not sep or not encoded or not _CANONICAL_UUID.match(session_id):
            raise ValueError(f"malformed expiry entry {text!r}")
        return decode_user(encoded), session_id

    def classify(self, key: bytes | str) -> KeyInfo | None:
        """What a key under the prefix is (None if the store does not write such keys)."""
        text = key.decode() if isinstance(key, bytes) else key
        match = _KEY_FORMS.match(text)
        if match is None or match["prefix"] != self.prefix:
            return None
        if match["tag"].startswith("u:"):
            try:
                user = decode_user(match["tag"][2:])
            except UnicodeDecodeError:
                return None
            rest = match["rest"]
            if rest == "idx":
                return KeyInfo("index", user, None)
            parts = rest.split(":")
            if len(parts) == 2 and parts[0] == "req" and _REQUEST_KEY_ID.match(parts[1]):
                return KeyInfo("req", user, None)
            if len(parts) == 2 and parts[0] in ("us", "ext") and _is_encoded(parts[1]):
                return KeyInfo("ustate" if parts[0] == "us" else "ext", user, None)
            if len(parts) == 2 and parts[0] in ("s", "f") and _CANONICAL_UUID.match(parts[1]):
                return KeyInfo("record" if parts[0] == "s" else "folder", user, parts[1])
            if (
                len(parts) == 3
                and parts[0] == "s"
                and parts[2] in ("msgs", "wb", "state")
                and _CANONICAL_UUID.match(parts[1])
            ):
                return KeyInfo(parts[2], user, parts[1])
            return None
        if (
            match["tag"].startswith("a:")
            and match["rest"] == "as"
            and _is_encoded(match["tag"][2:])
        ):
            return KeyInfo("astate", None, None)
        if match["rest"] in ("exp", "ended") and match["tag"] in _tag_set():
            return KeyInfo(match["rest"], None, None)
        return None


class KeyInfo(NamedTuple):
    """A key classified by ``KeySpace.classify``: kind is record, msgs, wb, state (a session's
    free-form state), index, folder, req (a write's remembered reply), ustate (a user's state in a
    scope), ext (a user's scoped index), astate (a scope's shared state), exp, ended."""

    kind: str
    user_id: str | None
    session_id: str | None


_KEY_FORMS = re.compile(r"(?P<prefix>[^:{}]+):\{(?P<tag>[^{}]*)\}:(?P<rest>.+)\Z", re.S)


@functools.cache
def _tag_set() -> frozenset[str]:
    return frozenset(slot_tags())


def key_slot(tag: str) -> int:
    """The Redis Cluster hash slot of a hash tag's content (CRC16/XMODEM mod 16384)."""
    return binascii.crc_hqx(tag.encode(), 0) % SLOTS


@functools.cache
def slot_tags() -> tuple[str, ...]:
    """For each hash slot, the first tag ``x<n>`` that hashes to it (computed once, ~50 ms)."""
    table: list[str | None] = [None] * SLOTS
    missing, n = SLOTS, 0
    while missing:
        tag = f"x{n}"
        slot = key_slot(tag)
        if table[slot] is None:
            table[slot] = tag
            missing -= 1
        n += 1
    return tuple(t for t in table if t is not None)


def check_scope(scope: object) -> str:
    """Return ``scope`` (an app name, for state shared by its sessions) if it is 1 to 256
    characters that UTF-8 can encode."""
    if not isinstance(scope, str) or not 1 <= len(scope) <= MAX_USER_ID_CHARS:
        raise InvalidInput(
            f"scope must be a str of 1 to {MAX_USER_ID_CHARS} characters, got {scope!r}"
        )
    try:
        scope.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"scope is not valid Unicode text: {exc.reason}") from exc
    return scope


def _is_encoded(text: str) -> bool:
    """Whether ``text`` is what ``encode_user`` makes of some text."""
    try:
        return bool(text) and encode_user(decode_user(text)) == text
    except UnicodeDecodeError:
        return False


def _glob_escape(text: str) -> str:
    return re.sub(r"([*?\[\]\\])", r"\\\1", text)
