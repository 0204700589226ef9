"""The session store as an HTTP service (optional extra ``http``: Litestar, uvicorn, PyJWT).

``create_app(store=..., auth=AuthConfig(...))`` is an ASGI app for teams that mount it in their
own server; ``redis-sessions serve`` runs it on uvicorn. Every route but ``/healthz`` and
``/readyz`` needs ``Authorization: Bearer <JWT>``, and acts for the token's ``sub`` only.

The names load on first use, so the command line can register ``serve`` without the extra.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ._app import create_app
    from ._auth import AuthConfig
    from ._patch import merge_patch

__all__ = ["AuthConfig", "create_app", "merge_patch"]

_WHERE = {"create_app": "._app", "AuthConfig": "._auth", "merge_patch": "._patch"}


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name], __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
