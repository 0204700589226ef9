"""Migration between the original backend's PostgreSQL tables and the store (issue #16).

``redis-sessions migrate import|export|verify --postgres DSN`` (``_cli``; the README's "Migrating
from the original backend" has the runbook). The modules, all private:

- ``_pg``: the original's schema and a streamed read of it (server-side cursors merged by session);
- ``_shape``: the context in the original's lean dict, read leniently as its reader did;
- ``_toredis`` and ``_write``: a session's rows as the store's records, written by one script each;
- ``_fromredis``: the store's records back as rows; ``_import``, ``_export``, ``_verify``: the runs;
- ``_report``: issues (JSON lines), summary and progress.

Needs the optional extra ``redis-sessions[postgres]`` (psycopg 3). Importing this package, or
``_cli``, does not import psycopg: running a command does.
"""

from __future__ import annotations
