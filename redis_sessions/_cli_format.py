"""How the command line reads durations and prints tables, JSON and keys as redis-cli shows them."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import click
import msgspec

from . import _durations
from .keys import KeySpace
from .store import SessionStore

MAX_SHOWN = 100  # items of one key that ``keys`` prints


def parse_duration(text: str) -> dt.timedelta:
    """A duration option's text (``_durations.parse_duration``); a bad one is click.BadParameter."""
    try:
        return _durations.parse_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


class Duration(click.ParamType[dt.timedelta]):
    """A duration option: ``90s``, ``10m``, ``12h``, ``30d``, ``2w``, ``1d12h``, or bare seconds."""

    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        """The option text as a timedelta."""
        if isinstance(value, dt.timedelta):
            return value
        try:
            return parse_duration(str(value))
        except click.BadParameter as exc:
            self.fail(exc.message, param, ctx)


def human(age: dt.timedelta) -> str:
    """A duration as the options take it: ``30d``, ``12h``, ``90s``."""
    seconds = int(age.total_seconds())
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds % size == 0 and seconds >= size:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> list[str]:
    """Rows under a header line, columns padded to their widest cell (the last one is not)."""
    cells = [[str(h) for h in headers], *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = []
    for row in cells:
        padded = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=False)]
        lines.append("  ".join([*padded, row[-1]]).rstrip())
    return lines


def echo_json(value: Any) -> None:
    """Print ``value`` as indented JSON (msgspec's encoding: datetimes ISO-8601, UUIDs as text)."""
    click.echo(msgspec.json.format(msgspec.json.encode(value), indent=2).decode())


_ESCAPES = {
    ord("\\"): "\\\\",
    ord('"'): '\\"',
    ord("\n"): "\\n",
    ord("\r"): "\\r",
    ord("\t"): "\\t",
    7: "\\a",
    8: "\\b",
}


def redis_repr(value: bytes | str | int, width: int = 110) -> str:
    """A value quoted as redis-cli prints it (its sdscatrepr escaping), cut after ``width`` bytes."""
    raw = value if isinstance(value, bytes) else str(value).encode()
    cut = len(raw) > width
    out = []
    for byte in raw[:width]:
        if byte in _ESCAPES:
            out.append(_ESCAPES[byte])
        elif 32 <= byte < 127:
            out.append(chr(byte))
        else:
            out.append(f"\\x{byte:02x}")
    return '"' + "".join(out) + '"' + ("..." if cut else "")


def _arg(key: bytes) -> str:
    text = key.decode("utf-8", "backslashreplace")
    plain = all(32 < b < 127 and b not in b"\"\\'" for b in key)
    return text if plain else redis_repr(key, width=10_000)


def _text(value: bytes | str) -> str:
    return value.decode("utf-8", "backslashreplace") if isinstance(value, bytes) else value


def read_user_keys(store: SessionStore, user: str) -> list[dict[str, Any]]:
    """Every key of ``user``: ``{"key", "type", "value"}`` (a hash as a mapping, a sorted set as
    ``[member, score]`` pairs, a replay key's string with its ``pttl_ms``), text decoded from UTF-8
    (undecodable bytes backslash-escaped). SCAN, then about 2 round trips per key."""
    keyspace: KeySpace = store.keyspace
    client = store.client
    names = sorted(client.scan_iter(match=keyspace.user_pattern(user), count=1000))
    out: list[dict[str, Any]] = []
    for name in names:
        kind = _text(client.type(name))
        entry: dict[str, Any] = {"key": _text(name), "type": kind, "raw_key": name}
        if kind == "hash":
            entry["raw"] = client.hgetall(name)
            entry["value"] = {_text(f): _text(v) for f, v in entry["raw"].items()}
        elif kind == "zset":
            entry["raw"] = client.zrange(name, 0, -1, withscores=True)
            entry["value"] = [[_text(m), s] for m, s in entry["raw"]]
        elif kind == "string" and keyspace.classify(name) is not None:  # a write's replay key
            entry["pttl_ms"] = client.pttl(name)
            entry["raw"] = client.get(name)
            entry["value"] = _text(entry["raw"] or b"")
        out.append(entry)
    return out


def describe_user_keys(store: SessionStore, user: str) -> list[str]:
    """Every key of ``user``, with its content in redis-cli's numbered format (round trips: see
    ``read_user_keys``)."""
    entries = read_user_keys(store, user)
    if not entries:
        return [f"(no keys for user {user!r} under prefix {store.keyspace.prefix!r})"]
    lines = []
    for entry in entries:
        name, kind = entry["raw_key"], entry["type"]
        items: list[Any] = []
        if kind == "hash":
            lines.append(f"> HGETALL {_arg(name)}")
            for field, value in entry["raw"].items():
                items += [field, value]
        elif kind == "zset":
            lines.append(f"> ZRANGE {_arg(name)} 0 -1 WITHSCORES")
            for member, score in entry["raw"]:
                items += [member, f"{score:.17g}"]
        elif "pttl_ms" in entry:
            lines.append(
                f"> GET {_arg(name)}  (a write's reply, kept {entry['pttl_ms']} ms more for a resend)"
            )
            items.append(entry["raw"])
        else:
            lines.append(f"> TYPE {_arg(name)}  ->  {kind} (not a key this store writes)")
        lines += [f"  {i}) {redis_repr(item)}" for i, item in enumerate(items[:MAX_SHOWN], 1)]
        if len(items) > MAX_SHOWN:
            lines.append(f"  ... {len(items) - MAX_SHOWN} more")
    return lines


def short(text: str, width: int = 110) -> str:
    """``text`` cut to ``width`` characters, with an ellipsis when cut."""
    return text if len(text) <= width else text[: width - 1] + "\u2026"
