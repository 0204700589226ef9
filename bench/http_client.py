"""A minimal asyncio HTTP/1.1 keep-alive client for the load benchmark: one connection per virtual
user, content-length bodies only (what the service sends). Far cheaper per request than a general
client, so the load generator takes less of the CPU it shares with the server."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any


class Connection:
    """A minimal HTTP/1.1 keep-alive client connection (content-length bodies only)."""

    def __init__(self, host: str, port: int, token: str) -> None:
        self.host, self.port = host, port
        self.auth = f"Authorization: Bearer {token}\r\n".encode()
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def request(self, method: str, path: str, body: Any = None) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        payload = b"" if body is None else json.dumps(body).encode()
        head = f"{method} {path} HTTP/1.1\r\nHost: {self.host}\r\n".encode() + self.auth
        if body is not None:
            head += f"Content-Type: application/json\r\nContent-Length: {len(payload)}\r\n".encode()
        self.writer.write(head + b"\r\n" + payload)
        try:
            raw = await self.reader.readuntil(b"\r\n\r\n")
            lines = raw.decode("latin-1").split("\r\n")
            status = int(lines[0].split(" ", 2)[1])
            length = 0
            for line in lines[1:]:
                name, _, value = line.partition(":")
                if name.lower() == "content-length":
                    length = int(value)
            data = await self.reader.readexactly(length) if length else b""
        except Exception:
            await self.close()
            raise
        return status, data

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(Exception):
                await self.writer.wait_closed()
        self.reader = self.writer = None
