"""Listing rows decoded in one pass (codec.infos_from_rows) give exactly what the per-row path
gives, and leave to it every row that is not as the store writes it."""

from __future__ import annotations

import datetime as dt
import uuid

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from redis_sessions import codec

USER = "ann é"

times = st.datetimes(
    min_value=dt.datetime(2000, 1, 1),
    max_value=dt.datetime(2100, 1, 1),
    timezones=st.just(dt.timezone.utc),
).map(lambda t: codec.iso(t).encode())


@st.composite
def rows(draw: st.DrawFn) -> list[bytes | None]:
    goal = draw(st.none() | st.text(max_size=40).map(msgspec.json.encode))
    folder = draw(st.none() | st.uuids().map(lambda u: str(u).encode()))
    ended = draw(st.none() | times)
    version = str(draw(st.integers(1, 10**15 - 1))).encode()
    sid = str(draw(st.uuids())).encode()
    return [sid, USER.encode(), folder, draw(times), draw(times), ended, version, goal]


def per_row(flat: list[bytes | None]) -> list[object]:
    width = 1 + len(codec.LISTING_FIELDS)
    return [
        codec.info_from_row(flat[i], flat[i + 1 : i + width], USER)  # type: ignore[arg-type]
        for i in range(0, len(flat), width)
    ]


@given(st.lists(rows(), max_size=8))
def test_one_pass_equals_the_per_row_path(listing: list[list[bytes | None]]) -> None:
    flat = [value for row in listing for value in row]
    fast = codec.infos_from_rows(flat, USER)
    assert fast is not None
    assert [repr(info) for info in fast] == [repr(info) for info in per_row(flat)]


def good_row() -> list[bytes | None]:
    now = codec.iso(dt.datetime(2026, 11, 30, 12, tzinfo=dt.timezone.utc)).encode()
    return [str(uuid.uuid4()).encode(), USER.encode(), None, now, now, None, b"3", b'"a goal"']


def test_a_good_row_goes_in_one_pass() -> None:
    assert codec.infos_from_rows(good_row(), USER) is not None


def test_rows_not_as_the_store_writes_them_go_the_per_row_way() -> None:
    odd: list[tuple[int, bytes | None]] = [
        (1, b"bob"),  # another owner
        (3, b"2026-11-30T12:00:00+02:00"),  # not UTC (a tool wrote it): the per-row path converts
        (4, b"2026-11-30T12:00:00"),  # no timezone: damage
        (4, None),  # no updated_at
        (5, b"2026-11-30T13:00:00Z"),  # ended, written another way
        (5, b"2026-11-30T13:00:00+00:00+00:00"),
        (6, b"-1"),
        (6, b""),
        (6, b"1234567890123456"),  # more digits than any layer holds exactly
        (7, b'"x","version":99'),  # a goal that is not one JSON string
        (7, b"null"),
        (7, b""),
        (7, b'["x"]'),
        (2, b'abc"def'),  # a folder id with a quote
        (2, b"abc\\def"),
        (0, b"not-a-uuid"),  # valid JSON, not a UUID: the decode refuses, the per-row path says why
    ]
    for index, value in odd:
        row = good_row()
        row[index] = value
        assert codec.infos_from_rows(row, USER) is None, (index, value)
        assert codec.infos_from_rows([*good_row(), *row], USER) is None  # one odd row is enough
