from __future__ import annotations

import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st
from redis.crc import key_slot

from redis_sessions import InvalidInput, StoreConfig
from redis_sessions.keys import (
    KeySpace,
    check_user_id,
    check_uuid,
    decode_user,
    encode_user,
    uuid_text,
)

user_ids = st.text(st.characters(exclude_categories=("Cs",)), min_size=1, max_size=256)


@given(user_ids)
def test_encoding_is_reversible_and_never_breaks_the_tag(user_id: str) -> None:
    encoded = encode_user(user_id)
    assert decode_user(encoded) == user_id
    assert not set(encoded) & {"{", "}", ":", " ", "*", "?", "["}
    assert encoded.isascii()


@given(user_ids, user_ids)
def test_distinct_users_never_share_or_reach_into_keys(a: str, b: str) -> None:
    keys = KeySpace("rs")
    sid = str(uuid.uuid4())
    if a == b:
        return
    a_keys = [keys.session(a, sid), keys.index(a), keys.folder(a, sid), *keys.session_keys(a, sid)]
    b_tag = keys.user_tag(b) + ":"
    assert keys.user_tag(a) != keys.user_tag(b)
    assert not any(k.startswith(b_tag) for k in a_keys)


@given(user_ids)
def test_all_keys_of_a_user_share_one_hash_slot(user_id: str) -> None:
    keys = KeySpace("rs")
    sid = str(uuid.uuid4())
    slots = {
        key_slot(k.encode())
        for k in [keys.index(user_id), keys.folder(user_id, sid), *keys.session_keys(user_id, sid)]
    }
    assert len(slots) == 1


def test_readable_ids_stay_readable() -> None:
    keys = KeySpace("rs")
    assert keys.session("alice@example.com", "0" * 8 + "-0000-4000-8000-" + "0" * 12) == (
        "rs:{u:alice@example.com}:s:00000000-0000-4000-8000-000000000000"
    )
    assert keys.index("a{b}:c") == "rs:{u:a%7Bb%7D%3Ac}:idx"


@pytest.mark.parametrize("bad", ["", "x" * 257, 42, None, "\ud800"])
def test_bad_user_ids(bad: object) -> None:
    with pytest.raises(InvalidInput):
        check_user_id(bad)


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "not-a-uuid",
        "8C7E3A4E-1B2F-4C5D-9E6F-0A1B2C3D4E5F",
        "{8c7e3a4e-1b2f-4c5d-9e6f-0a1b2c3d4e5f}",
        "8c7e3a4e1b2f4c5d9e6f0a1b2c3d4e5f",
        "8c7e3a4e-1b2f-4c5d-9e6f-0a1b2c3d4e5f\n",
        7,
        None,
    ],
)
def test_only_canonical_uuids_name_sessions(bad: object) -> None:
    with pytest.raises(InvalidInput, match="canonical UUID"):
        check_uuid(bad)


def test_uuid_objects_are_accepted() -> None:
    u = uuid.uuid4()
    assert check_uuid(u) == str(u) and check_uuid(str(u)) == str(u)


def test_the_text_of_uuid_objects_is_memoized_right_and_bounded() -> None:
    """check_uuid keeps the text of the UUID objects it met (uuid's __str__ is Python code): each
    still gets its own text, met again or not, equal objects or the same one; the memo is bounded."""
    ids = [uuid.uuid4() for _ in range(5000)]
    assert [check_uuid(u) for u in ids] == [str(u) for u in ids]
    again = [*ids[-10:], *(uuid.UUID(int=u.int) for u in ids[-10:]), *ids[:10]]
    assert [check_uuid(u) for u in again] == [str(u) for u in again]
    assert uuid_text.cache_info().currsize <= 4096

    class Braced(uuid.UUID):  # a subclass that writes itself otherwise names its canonical text
        def __str__(self) -> str:
            return "{" + super().__str__() + "}"

    assert check_uuid(Braced(int=ids[0].int)) == str(ids[0])


@pytest.mark.parametrize("prefix", ["", "a{b}", "a:b", "x" * 65, "sp ace"])
def test_bad_prefixes(prefix: str) -> None:
    with pytest.raises(InvalidInput):
        StoreConfig(key_prefix=prefix)


@pytest.mark.parametrize(
    "option",
    [
        {"cache_ttl": 0},
        {"cache_size": -1},
        {"max_messages": 0},
        {"max_context_bytes": 10},
        {"cache_sweep_interval": 0},
    ],
)
def test_bad_config(option: dict[str, float]) -> None:
    with pytest.raises(InvalidInput):
        StoreConfig(**option)  # type: ignore[arg-type]


def test_config_is_keyword_only() -> None:
    with pytest.raises(TypeError):
        StoreConfig("rs")  # type: ignore[misc]
